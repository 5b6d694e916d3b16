//! Admission expressions (upstream's `admission/plugin/cel`): what ValidatingAdmissionPolicy
//! expressions and webhook `matchConditions` are compiled against and evaluated with.
//!
//! - Variables: `object` and `oldObject` (untyped, null on create and on delete
//!   respectively), `request` (typed as upstream's `kubernetes.AdmissionRequest`: a field it
//!   does not have is refused when compiling), `namespaceObject` (typed likewise, null for
//!   cluster-scoped objects), `params` (only when the policy has a `paramKind`),
//!   `authorizer` (declared, so expressions naming it compile, but not evaluated here: an
//!   expression that reaches it fails as an evaluation error) and `variables` (a policy's
//!   `spec.variables`, each evaluated at most once per evaluation, when first used; a
//!   variable may use those declared before it).
//! - Result types are checked as upstream where they can be told here ([`Ty`]): a
//!   validation must be a bool (`object.spec.paused` alone is a dyn and refused, as
//!   upstream refuses it), a message expression a string.
//! - Errors read as upstream's: `compilation failed: ERROR: <input>:1:1: …`, `must evaluate
//!   to bool but got dyn`, `expression '<expr>' resulted in error: no such key: x`,
//!   `composited variable "v" fails to evaluate: …`.

use super::check::{self, Ty};
use super::library::{env, error_text};
use super::value::json;
use cel::common::types::{CelNull, CelString, MAP_TYPE, Type};
use cel::common::value::{CowVal, Val};
use cel::context::VariableResolver;
use cel::{Context, ExecutionError, Program};
use serde_json::{Map, Value};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

/// A CEL value (what expressions evaluate to).
pub use cel::Value as CelValue;

/// Functions of upstream's authorizer library: expressions calling them compile, and fail
/// when evaluated (the `authorizer` variable is not provided).
const AUTHORIZER_FUNCTIONS: &[&str] = &[
    "path",
    "group",
    "serviceAccount",
    "resource",
    "subresource",
    "namespace",
    "name",
    "check",
    "allowed",
    "reason",
    "errored",
    "error",
    "fieldSelector",
    "labelSelector",
];

/// The type of a declared variable or field, for compile-time checks.
#[derive(Debug, Clone, Copy)]
enum FieldTy {
    Str,
    Bool,
    Int,
    Timestamp,
    Dyn,
    ListStr,
    MapStrStr,
    MapStrListStr,
    Obj(&'static ObjType),
    ListObj(&'static ObjType),
}

#[derive(Debug)]
struct ObjType {
    name: &'static str,
    fields: &'static [(&'static str, FieldTy)],
}

const GVK: ObjType = ObjType {
    name: "kubernetes.GroupVersionKind",
    fields: &[
        ("group", FieldTy::Str),
        ("version", FieldTy::Str),
        ("kind", FieldTy::Str),
    ],
};
const GVR: ObjType = ObjType {
    name: "kubernetes.GroupVersionResource",
    fields: &[
        ("group", FieldTy::Str),
        ("version", FieldTy::Str),
        ("resource", FieldTy::Str),
    ],
};
const USER_INFO: ObjType = ObjType {
    name: "kubernetes.UserInfo",
    fields: &[
        ("username", FieldTy::Str),
        ("uid", FieldTy::Str),
        ("groups", FieldTy::ListStr),
        ("extra", FieldTy::MapStrListStr),
    ],
};
/// Upstream's `BuildRequestType` (no `uid`, `object`, `oldObject`).
const REQUEST: ObjType = ObjType {
    name: "kubernetes.AdmissionRequest",
    fields: &[
        ("kind", FieldTy::Obj(&GVK)),
        ("resource", FieldTy::Obj(&GVR)),
        ("subResource", FieldTy::Str),
        ("requestKind", FieldTy::Obj(&GVK)),
        ("requestResource", FieldTy::Obj(&GVR)),
        ("requestSubResource", FieldTy::Str),
        ("name", FieldTy::Str),
        ("namespace", FieldTy::Str),
        ("operation", FieldTy::Str),
        ("userInfo", FieldTy::Obj(&USER_INFO)),
        ("dryRun", FieldTy::Bool),
        ("options", FieldTy::Dyn),
    ],
};
const NAMESPACE_SPEC: ObjType = ObjType {
    name: "kubernetes.NamespaceSpec",
    fields: &[("finalizers", FieldTy::ListStr)],
};
const NAMESPACE_CONDITION: ObjType = ObjType {
    name: "kubernetes.NamespaceCondition",
    fields: &[
        ("status", FieldTy::Str),
        ("type", FieldTy::Str),
        ("lastTransitionTime", FieldTy::Timestamp),
        ("message", FieldTy::Str),
        ("reason", FieldTy::Str),
    ],
};
const NAMESPACE_STATUS: ObjType = ObjType {
    name: "kubernetes.NamespaceStatus",
    fields: &[
        ("conditions", FieldTy::ListObj(&NAMESPACE_CONDITION)),
        ("phase", FieldTy::Str),
    ],
};
/// Upstream's `BuildNamespaceType` (its metadata declares `UID`, as upstream's does).
const NAMESPACE_METADATA: ObjType = ObjType {
    name: "kubernetes.NamespaceMetadata",
    fields: &[
        ("name", FieldTy::Str),
        ("generateName", FieldTy::Str),
        ("namespace", FieldTy::Str),
        ("labels", FieldTy::MapStrStr),
        ("annotations", FieldTy::MapStrStr),
        ("UID", FieldTy::Str),
        ("creationTimestamp", FieldTy::Timestamp),
        ("deletionGracePeriodSeconds", FieldTy::Int),
        ("deletionTimestamp", FieldTy::Timestamp),
        ("generation", FieldTy::Int),
        ("resourceVersion", FieldTy::Str),
        ("finalizers", FieldTy::ListStr),
    ],
};
const NAMESPACE: ObjType = ObjType {
    name: "kubernetes.Namespace",
    fields: &[
        ("metadata", FieldTy::Obj(&NAMESPACE_METADATA)),
        ("spec", FieldTy::Obj(&NAMESPACE_SPEC)),
        ("status", FieldTy::Obj(&NAMESPACE_STATUS)),
    ],
};

impl FieldTy {
    fn ty(self) -> Ty {
        match self {
            FieldTy::Str => Ty::String,
            FieldTy::Bool => Ty::Bool,
            FieldTy::Int => Ty::Int,
            FieldTy::Timestamp => Ty::Timestamp,
            FieldTy::Dyn => Ty::Dyn,
            FieldTy::ListStr => Ty::List(Box::new(Ty::String)),
            FieldTy::MapStrStr => Ty::Map(Box::new(Ty::String), Box::new(Ty::String)),
            FieldTy::MapStrListStr => Ty::Map(
                Box::new(Ty::String),
                Box::new(Ty::List(Box::new(Ty::String))),
            ),
            FieldTy::Obj(o) => Ty::Object(o.name),
            FieldTy::ListObj(o) => Ty::List(Box::new(Ty::Object(o.name))),
        }
    }
}

/// Which of the optional variables an expression may use.
#[derive(Debug, Clone, Copy, Default)]
pub struct Declarations<'a> {
    /// `params` (the policy has a `paramKind`).
    pub params: bool,
    /// `authorizer` and `authorizer.requestResource`.
    pub authorizer: bool,
    /// `variables`, with the variables declared so far; `None` where composition is not
    /// available (webhook match conditions, and policy match conditions as upstream
    /// validates them).
    pub variables: Option<&'a [Variable]>,
}

#[derive(Debug, Clone, Copy)]
enum Shape {
    Field(FieldTy),
    Variables,
    Variable(usize),
}

struct AdmissionScope<'a> {
    decls: &'a Declarations<'a>,
}

impl check::Scope for AdmissionScope<'_> {
    type Shape = Shape;

    fn variable(&self, name: &str) -> Option<Shape> {
        Some(match name {
            "object" | "oldObject" => Shape::Field(FieldTy::Dyn),
            "request" => Shape::Field(FieldTy::Obj(&REQUEST)),
            "namespaceObject" => Shape::Field(FieldTy::Obj(&NAMESPACE)),
            "params" if self.decls.params => Shape::Field(FieldTy::Dyn),
            "authorizer" if self.decls.authorizer => Shape::Field(FieldTy::Dyn),
            "variables" if self.decls.variables.is_some() => Shape::Variables,
            _ => return None,
        })
    }

    fn field(&self, shape: Shape, field: &str) -> Result<Shape, ()> {
        match shape {
            Shape::Field(FieldTy::Obj(o)) => o
                .fields
                .iter()
                .find(|(n, _)| *n == field)
                .map(|(_, t)| Shape::Field(*t))
                .ok_or(()),
            Shape::Field(FieldTy::MapStrStr) => Ok(Shape::Field(FieldTy::Str)),
            Shape::Field(FieldTy::MapStrListStr) => Ok(Shape::Field(FieldTy::ListStr)),
            Shape::Variables => self
                .decls
                .variables
                .unwrap_or_default()
                .iter()
                .position(|v| v.name == field)
                .map(Shape::Variable)
                .ok_or(()),
            Shape::Field(_) | Shape::Variable(_) => Ok(Shape::Field(FieldTy::Dyn)),
        }
    }

    fn type_of(&self, shape: Shape) -> Ty {
        match shape {
            Shape::Field(t) => t.ty(),
            Shape::Variables => Ty::Object("kubernetes.variables"),
            Shape::Variable(i) => self
                .decls
                .variables
                .and_then(|v| v.get(i))
                .map_or(Ty::Dyn, Variable::ty),
        }
    }

    fn unsupported(&self, function: &str) -> bool {
        super::library::UNSUPPORTED_UPSTREAM.contains(&function)
            || (self.decls.authorizer && AUTHORIZER_FUNCTIONS.contains(&function))
    }
}

/// What an expression must evaluate to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    Bool,
    String,
    /// Audit annotation values.
    StringOrNull,
    Any,
}

/// A compiled admission expression.
#[derive(Debug)]
pub struct Expression {
    source: String,
    program: Program,
    ty: Ty,
}

impl Expression {
    /// The expression as written.
    pub fn source(&self) -> &str {
        &self.source
    }
}

/// Compiles `source` with the variables of `decls`; the error is upstream's compilation
/// error (`compilation failed: …`, `must evaluate to bool but got …`).
pub fn compile(
    source: &str,
    decls: &Declarations<'_>,
    expect: Expect,
) -> Result<Expression, String> {
    let scope = AdmissionScope { decls };
    let checked =
        check::compile(source, &scope).map_err(|issues| format!("compilation failed: {issues}"))?;
    let ty = checked.ty;
    let fits = match expect {
        Expect::Any => true,
        Expect::Bool => ty == Ty::Bool,
        Expect::String => ty == Ty::String,
        Expect::StringOrNull => matches!(ty, Ty::String | Ty::Null),
    };
    if !fits && ty.known() {
        return Err(match expect {
            Expect::Bool => format!("must evaluate to bool but got {ty}"),
            Expect::String => format!("must evaluate to string but got {ty}"),
            _ => format!("must evaluate to one of [string null_type] but got {ty}"),
        });
    }
    Ok(Expression {
        source: source.to_string(),
        program: checked.program,
        ty,
    })
}

/// One of a policy's `spec.variables`, compiled.
#[derive(Debug)]
pub struct Variable {
    pub name: String,
    compiled: Result<Expression, String>,
}

impl Variable {
    /// The variable's type for expressions using it (dyn when it does not compile).
    fn ty(&self) -> Ty {
        match &self.compiled {
            Ok(e) => e.ty.clone(),
            Err(_) => Ty::Dyn,
        }
    }

    /// The compilation error, if any.
    pub fn error(&self) -> Option<&str> {
        self.compiled.as_ref().err().map(String::as_str)
    }
}

/// Compiles `spec.variables` (`(name, expression)` in order): each may use those before it.
pub fn compile_variables(list: &[(String, String)], decls: Declarations<'_>) -> Vec<Variable> {
    let mut out: Vec<Variable> = Vec::with_capacity(list.len());
    for (name, source) in list {
        let compiled = {
            let decls = Declarations {
                variables: Some(&out),
                ..decls
            };
            compile(source, &decls, Expect::Any)
        };
        out.push(Variable {
            name: name.clone(),
            compiled,
        });
    }
    out
}

/// The inputs of one evaluation, as JSON (null where absent).
#[derive(Debug, Clone, Copy, Default)]
pub struct Input<'a> {
    pub object: Option<&'a Value>,
    pub old_object: Option<&'a Value>,
    /// The request's `kubernetes.AdmissionRequest` form (upstream's JSON: empty
    /// `name`, `namespace`, `subResource` left out).
    pub request: Option<&'a Value>,
    /// The namespace's object ([`namespace_object`]), for namespaced requests.
    pub namespace_object: Option<&'a Value>,
    /// The binding's parameter object; `None` when the policy has none.
    pub params: Option<&'a Value>,
}

/// One evaluation's variables: converted once, shared by the expressions evaluated with
/// it; `variables.<name>` is evaluated at first use and kept.
pub struct Activation<'a> {
    object: Box<dyn Val + 'a>,
    old_object: Box<dyn Val + 'a>,
    request: Box<dyn Val + 'a>,
    namespace_object: Box<dyn Val + 'a>,
    params: Box<dyn Val + 'a>,
    variables: &'a [Variable],
    results: Vec<OnceLock<Result<Box<dyn Val>, String>>>,
    running: Vec<AtomicBool>,
}

fn val<'a>(v: Option<&'a Value>) -> Box<dyn Val + 'a> {
    match v {
        Some(v) => json(v, 0),
        None => Box::new(CelNull),
    }
}

impl<'a> Activation<'a> {
    pub fn new(input: &Input<'a>, variables: &'a [Variable]) -> Self {
        Activation {
            object: val(input.object),
            old_object: val(input.old_object),
            request: val(input.request),
            namespace_object: val(input.namespace_object),
            params: val(input.params),
            variables,
            results: variables.iter().map(|_| OnceLock::new()).collect(),
            running: variables.iter().map(|_| AtomicBool::new(false)).collect(),
        }
    }

    /// Evaluates `expr`; the error reads as upstream's (`expression '…' resulted in
    /// error: …`).
    pub fn evaluate(&self, expr: &Expression) -> Result<cel::Value, String> {
        self.execute(&expr.program).map_err(|e| {
            format!(
                "expression '{}' resulted in error: {}",
                expr.source,
                describe(&e)
            )
        })
    }

    fn execute(&self, program: &Program) -> cel::ResolveResult {
        let mut ctx = Context::with_env(env());
        ctx.set_variable_resolver(self);
        super::run(program, &ctx)
    }

    /// The value of variable `i`, evaluated now if it was not yet.
    fn variable(&self, i: usize) -> Result<&(dyn Val + 'static), ExecutionError> {
        let (Some(var), Some(cell), Some(running)) = (
            self.variables.get(i),
            self.results.get(i),
            self.running.get(i),
        ) else {
            return Err(ExecutionError::NoSuchKey(Default::default()));
        };
        if cell.get().is_none() {
            // Variables only see those declared before them; this guards the impossible.
            if running.swap(true, Ordering::AcqRel) {
                return Err(variable_error(format!(
                    "composited variable \"{}\" refers to itself",
                    var.name
                )));
            }
            let result = match &var.compiled {
                Err(e) => Err(format!(
                    "composited variable \"{}\" fails to compile: {e}",
                    var.name
                )),
                Ok(expr) => match self.execute(&expr.program) {
                    Ok(v) => Box::<dyn Val>::try_from(v).map_err(|e| {
                        format!(
                            "composited variable \"{}\" fails to evaluate: {}",
                            var.name,
                            describe(&e)
                        )
                    }),
                    Err(e) => Err(format!(
                        "composited variable \"{}\" fails to evaluate: {}",
                        var.name,
                        describe(&e)
                    )),
                },
            };
            let _ = cell.set(result);
            running.store(false, Ordering::Release);
        }
        match cell.get() {
            Some(Ok(v)) => Ok(v.as_ref()),
            Some(Err(e)) => Err(variable_error(e.clone())),
            None => Err(variable_error("variable not evaluated".into())),
        }
    }
}

fn variable_error(message: String) -> ExecutionError {
    ExecutionError::function_error("variables", message)
}

/// An evaluation error as cel-go words it.
fn describe(e: &ExecutionError) -> String {
    match e {
        ExecutionError::UndeclaredReference(n) if n.as_str().starts_with("authorizer") => {
            "authorizer checks are not supported by this server".to_string()
        }
        ExecutionError::UndeclaredReference(n) if AUTHORIZER_FUNCTIONS.contains(&n.as_str()) => {
            format!("function '{n}' is not supported by this server")
        }
        e => error_text(e),
    }
}

impl VariableResolver for Activation<'_> {
    fn resolve<'b>(&'b self, name: &str) -> Option<CowVal<'b, 'b>> {
        let v: &'b (dyn Val + 'b) = match name {
            "object" => self.object.as_ref(),
            "oldObject" => self.old_object.as_ref(),
            "request" => self.request.as_ref(),
            "namespaceObject" => self.namespace_object.as_ref(),
            "params" => self.params.as_ref(),
            "variables" => return Some(CowVal::owned(Variables { activation: self })),
            _ => return None,
        };
        Some(CowVal::Borrowed(v))
    }
}

/// `variables`: a map whose values are computed when selected.
struct Variables<'b, 'a> {
    activation: &'b Activation<'a>,
}

impl std::fmt::Debug for Variables<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("variables")
    }
}

impl Val for Variables<'_, '_> {
    fn get_type(&self) -> &Type {
        &MAP_TYPE
    }

    fn cel_type() -> &'static Type
    where
        Self: Sized,
    {
        &MAP_TYPE
    }

    fn as_indexer<'c, 'v>(&'c self) -> Option<&'c (dyn cel::common::traits::Indexer + 'v)>
    where
        Self: 'v,
    {
        Some(self)
    }

    fn clone_as_boxed<'v>(&self) -> Box<dyn Val + 'v>
    where
        Self: 'v,
    {
        Box::new(Variables {
            activation: self.activation,
        })
    }
}

impl cel::common::traits::Indexer for Variables<'_, '_> {
    fn get<'c, 'v>(&'c self, idx: &dyn Val) -> Result<CowVal<'c, 'v>, ExecutionError>
    where
        Self: 'v,
    {
        let Some(name) = idx.downcast_ref::<CelString>() else {
            return Err(ExecutionError::NoSuchKey(Default::default()));
        };
        let name = name.inner();
        let Some(i) = self
            .activation
            .variables
            .iter()
            .position(|v| v.name == name)
        else {
            return Err(ExecutionError::NoSuchKey(std::sync::Arc::new(
                name.to_string(),
            )));
        };
        let v: &'c (dyn Val + 'static) = self.activation.variable(i)?;
        Ok(CowVal::Borrowed(v))
    }

    fn steal<'v>(self: Box<Self>, idx: &dyn Val) -> Result<Box<dyn Val + 'v>, ExecutionError>
    where
        Self: 'v,
    {
        self.get(idx).map(CowVal::into_owned)
    }
}

/// One `matchConditions` entry, compiled.
#[derive(Debug)]
pub struct MatchCondition {
    pub name: String,
    compiled: Result<Expression, String>,
}

impl MatchCondition {
    pub fn compile(name: &str, expression: &str, decls: &Declarations<'_>) -> Self {
        MatchCondition {
            name: name.to_string(),
            compiled: compile(expression, decls, Expect::Bool),
        }
    }
}

/// Upstream's match condition matcher: `Ok(false)` as soon as one condition is false;
/// otherwise errors (evaluation errors, conditions that did not compile) make the
/// outcome an error (one message, or `[a, b]` for several); else `Ok(true)`.
pub fn match_conditions(
    conditions: &[MatchCondition],
    act: &Activation<'_>,
) -> Result<bool, String> {
    let mut errors: Vec<String> = Vec::new();
    for c in conditions {
        match &c.compiled {
            Err(e) => errors.push(format!("compilation error: {e}")),
            Ok(expr) => match act.evaluate(expr) {
                Ok(cel::Value::Bool(false)) => return Ok(false),
                Ok(_) => {}
                Err(e) => errors.push(e),
            },
        }
    }
    errors.dedup();
    match errors.len() {
        0 => Ok(true),
        1 => Err(errors.remove(0)),
        _ => Err(format!("[{}]", errors.join(", "))),
    }
}

/// Evaluates a compiled expression or reports its compilation error as upstream does at
/// admission time (`compilation error: …`).
pub fn evaluate(
    compiled: &Result<Expression, String>,
    act: &Activation<'_>,
) -> Result<cel::Value, String> {
    match compiled {
        Ok(expr) => act.evaluate(expr),
        Err(e) => Err(format!("compilation error: {e}")),
    }
}

/// `namespaceObject` as upstream builds it from a Namespace: its spec and status, and of
/// its metadata what `CreateNamespaceObject` copies (no managed fields, owner references).
pub fn namespace_object(ns: &Value) -> Value {
    const META: [&str; 12] = [
        "name",
        "generateName",
        "namespace",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "labels",
        "annotations",
        "finalizers",
    ];
    let mut meta = Map::new();
    if let Some(m) = ns.get("metadata").and_then(Value::as_object) {
        for k in META {
            if let Some(v) = m.get(k) {
                meta.insert(k.to_string(), v.clone());
            }
        }
    }
    let mut out = Map::new();
    out.insert("metadata".into(), Value::Object(meta));
    for k in ["spec", "status"] {
        out.insert(
            k.into(),
            ns.get(k)
                .cloned()
                .unwrap_or_else(|| Value::Object(Map::new())),
        );
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests;
