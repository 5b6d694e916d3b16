//! Compiling one expression: parsing (cel-go's syntax errors, word for word), then the
//! checks upstream's type checker makes that matter most without a type checker —
//! references to undeclared variables or functions, and fields a declared type does not
//! have (`self.replicsa`, `request.usr`) — reported like cel-go (`ERROR: <input>:1:5:
//! undefined field 'replicsa'` with the source line and a caret), and what the expression
//! evaluates to where that can be told ([`Ty`]). Types are otherwise checked when the
//! expression runs.
//!
//! What the variables are is the caller's [`Scope`]: CRD rules declare `self`/`oldSelf`
//! typed by the schema, admission expressions `object`, `request`, `variables`, ….

use super::library::{UNSUPPORTED_UPSTREAM, env};
use cel::common::ast::{EntryExpr, Expr, LiteralValue};
use cel::{Context, ExecutionError, IdedExpr, Program};
use std::collections::HashMap;
use std::fmt;
use std::sync::{LazyLock, Mutex};

/// The variables an expression may use, and what their fields are.
pub(crate) trait Scope {
    /// What is known of a value's type: a schema node, a declared object type, nothing.
    type Shape: Copy;
    /// The shape of variable `name`, if it is declared.
    fn variable(&self, name: &str) -> Option<Self::Shape>;
    /// The shape of field `field` of a value of `shape`; `Err` when that type has no such
    /// field (`undefined field`).
    fn field(&self, shape: Self::Shape, field: &str) -> Result<Self::Shape, ()>;
    /// The type of a value of `shape`, for result type inference.
    fn type_of(&self, _shape: Self::Shape) -> Ty {
        Ty::Unknown
    }
    /// Whether a call of `function` compiles though this server cannot evaluate it (an
    /// upstream library function not provided here).
    fn unsupported(&self, function: &str) -> bool {
        UNSUPPORTED_UPSTREAM.contains(&function)
    }
}

/// A compiled expression.
#[derive(Debug)]
pub(crate) struct Checked {
    pub program: Program,
    /// The declared variables it refers to.
    pub used: Vec<String>,
    /// What its parse tree tells of its result.
    pub kind: Kind,
    /// Its inferred result type.
    pub ty: Ty,
}

impl Checked {
    pub fn uses(&self, variable: &str) -> bool {
        self.used.iter().any(|u| u == variable)
    }
}

/// What an expression evaluates to, when the parse tree alone tells (a literal, an
/// arithmetic operator): what CRD rules are checked with.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub(crate) enum Kind {
    Bool,
    String,
    /// Not a bool, maybe a string (`a + b`).
    NotBool,
    Other,
    Unknown,
}

/// An expression's result type as cel-go's checker would name it, where it can be told
/// here; [`Ty::Unknown`] otherwise (and then nothing is refused).
#[derive(Debug, PartialEq, Eq, Clone)]
pub enum Ty {
    Bool,
    Int,
    Uint,
    Double,
    String,
    Bytes,
    Null,
    Duration,
    Timestamp,
    List(Box<Ty>),
    Map(Box<Ty>, Box<Ty>),
    /// A declared object type (`kubernetes.GroupVersionKind`).
    Object(&'static str),
    /// A value whose type is only known when the expression runs (`object.spec`).
    Dyn,
    Unknown,
}

impl fmt::Display for Ty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ty::Bool => f.write_str("bool"),
            Ty::Int => f.write_str("int"),
            Ty::Uint => f.write_str("uint"),
            Ty::Double => f.write_str("double"),
            Ty::String => f.write_str("string"),
            Ty::Bytes => f.write_str("bytes"),
            Ty::Null => f.write_str("null_type"),
            Ty::Duration => f.write_str("google.protobuf.Duration"),
            Ty::Timestamp => f.write_str("google.protobuf.Timestamp"),
            Ty::List(e) => write!(f, "list({})", e.shown()),
            Ty::Map(k, v) => write!(f, "map({}, {})", k.shown(), v.shown()),
            Ty::Object(name) => f.write_str(name),
            Ty::Dyn | Ty::Unknown => f.write_str("dyn"),
        }
    }
}

impl Ty {
    /// As a type parameter (unknown parameters are dyn).
    fn shown(&self) -> String {
        self.to_string()
    }

    /// Whether the type is known (not [`Ty::Unknown`]).
    pub fn known(&self) -> bool {
        *self != Ty::Unknown
    }

    /// The common type of two branches (`c ? a : b`, list elements).
    fn join(a: Ty, b: Ty) -> Ty {
        match (a, b) {
            (a, b) if a == b => a,
            (Ty::Unknown, _) | (_, Ty::Unknown) => Ty::Unknown,
            _ => Ty::Dyn,
        }
    }
}

/// Deeper expressions are refused (cel-go's parser limit), so that checking, evaluating
/// and dropping them never exhausts a thread's stack.
const MAX_DEPTH: usize = 250;

/// Longer sources are parsed on a thread of their own with a large stack: the parser
/// recurses once per nested member access, and a hostile expression (`a.a.a…` thousands
/// deep) would overflow a request thread's stack.
const MAX_INLINE_PARSE: usize = 1024;
const PARSE_STACK: usize = 256 << 20;

/// Parses `source` (and refuses it if too deep), as cel-go's issue list on error.
fn parse(source: &str) -> Result<Program, String> {
    let parsed = env().compile(source).map_err(|e| {
        // cel-go indents the source snippet by one space.
        e.to_string()
            .lines()
            .map(|l| match l.strip_prefix("| ") {
                Some(rest) => format!(" | {rest}"),
                None => l.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n")
    })?;
    if depth(parsed.expression()) > MAX_DEPTH {
        return Err(issue(
            source,
            0,
            &format!("expression recursion limit exceeded: {MAX_DEPTH}"),
        ));
    }
    Ok(parsed)
}

/// The depth of an expression tree, walked without recursion.
fn depth(root: &IdedExpr) -> usize {
    let mut deepest = 0;
    let mut stack: Vec<(&IdedExpr, usize)> = vec![(root, 1)];
    while let Some((e, d)) = stack.pop() {
        deepest = deepest.max(d);
        match &e.expr {
            Expr::Call(c) => {
                stack.extend(c.target.as_deref().map(|t| (t, d + 1)));
                stack.extend(c.args.iter().map(|a| (a, d + 1)));
            }
            Expr::Select(s) => stack.push((&s.operand, d + 1)),
            Expr::Comprehension(c) => {
                for part in [
                    &c.iter_range,
                    &c.accu_init,
                    &c.loop_cond,
                    &c.loop_step,
                    &c.result,
                ] {
                    stack.push((part, d + 1));
                }
            }
            Expr::List(l) => stack.extend(l.elements.iter().map(|i| (i, d + 1))),
            Expr::Map(m) => {
                for entry in &m.entries {
                    if let EntryExpr::MapEntry(me) = &entry.expr {
                        stack.push((&me.key, d + 1));
                        stack.push((&me.value, d + 1));
                    }
                }
            }
            Expr::Struct(st) => {
                for entry in &st.entries {
                    if let EntryExpr::StructField(f) = &entry.expr {
                        stack.push((&f.value, d + 1));
                    }
                }
            }
            Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => {}
        }
    }
    deepest
}

/// Compiles `source`; the error is cel-go's issue list.
pub(crate) fn compile<S: Scope>(source: &str, scope: &S) -> Result<Checked, String> {
    let program = if source.len() <= MAX_INLINE_PARSE {
        parse(source)?
    } else {
        let owned = source.to_string();
        std::thread::Builder::new()
            .name("cel-parse".into())
            .stack_size(PARSE_STACK)
            .spawn(move || parse(&owned))
            .map_err(|e| format!("the expression could not be parsed: {e}"))?
            .join()
            .unwrap_or_else(|_| Err("the expression could not be parsed".into()))?
    };
    let mut walk = Walk {
        program: &program,
        scope,
        bound: Vec::new(),
        issues: Vec::new(),
        used: Vec::new(),
    };
    let ty = walk.expr(program.expression());
    if !walk.issues.is_empty() {
        let issues: Vec<String> = walk
            .issues
            .iter()
            .map(|(offset, message)| issue(source, *offset, message))
            .collect();
        return Err(issues.join("\n"));
    }
    let kind = kind_of(&program.expression().expr);
    let used = walk.used;
    Ok(Checked {
        program,
        used,
        kind,
        ty,
    })
}

fn kind_of(e: &Expr) -> Kind {
    match e {
        Expr::Literal(LiteralValue::Boolean(_)) => Kind::Bool,
        Expr::Literal(LiteralValue::String(_)) => Kind::String,
        Expr::Literal(_) | Expr::List(_) | Expr::Map(_) | Expr::Struct(_) => Kind::Other,
        Expr::Call(c) => match c.func_name.as_str() {
            "_==_" | "_!=_" | "_<_" | "_<=_" | "_>_" | "_>=_" | "_&&_" | "_||_" | "!_" | "@in"
            | "matches" | "startsWith" | "endsWith" | "contains" | "hasValue" => Kind::Bool,
            "_+_" => Kind::NotBool,
            "_-_" | "_*_" | "_/_" | "_%_" | "-_" | "size" => Kind::Other,
            _ => Kind::Unknown,
        },
        _ => Kind::Unknown,
    }
}

/// One cel-go issue: `ERROR: <input>:L:C: message`, the source line and a caret under
/// column C (1-based, in characters).
fn issue(source: &str, offset: u32, message: &str) -> String {
    let offset = offset as usize;
    let (mut line, mut col) = (1, 0);
    let mut text_start = 0;
    for (i, (byte, c)) in source.char_indices().enumerate() {
        if i == offset {
            break;
        }
        if c == '\n' {
            line += 1;
            col = 0;
            text_start = byte + 1;
        } else {
            col += 1;
        }
    }
    let text = source[text_start..].lines().next().unwrap_or("");
    format!(
        "ERROR: <input>:{line}:{}: {message}\n | {text}\n | {}^",
        col + 1,
        ".".repeat(col)
    )
}

/// What a `variable.a.b` chain has reached.
#[derive(Clone, Copy)]
enum Shape<S: Copy> {
    Known(S),
    /// No type to check against.
    Dyn,
}

/// Comprehension variables in scope, with the types known of them.
struct Bound {
    name: String,
    ty: Ty,
}

struct Walk<'a, S: Scope> {
    program: &'a Program,
    scope: &'a S,
    bound: Vec<Bound>,
    issues: Vec<(u32, String)>,
    used: Vec<String>,
}

impl<'a, S: Scope> Walk<'a, S> {
    fn offset(&self, e: &IdedExpr) -> u32 {
        self.program
            .source_info()
            .offset_for(e.id)
            .map_or(0, |(start, _)| start)
    }

    fn bound(&self, name: &str) -> Option<&Bound> {
        self.bound.iter().rev().find(|b| b.name == name)
    }

    fn undeclared(&mut self, e: &IdedExpr, name: &str) {
        let at = self.offset(e);
        self.issues.push((
            at,
            format!("undeclared reference to '{name}' (in container '')"),
        ));
    }

    fn use_variable(&mut self, name: &str) -> Option<S::Shape> {
        let shape = self.scope.variable(name)?;
        if !self.used.iter().any(|u| u == name) {
            self.used.push(name.to_string());
        }
        Some(shape)
    }

    /// The shape of a `variable.field…` chain (`None`: not such a chain).
    fn chain(&mut self, e: &'a IdedExpr) -> Option<Shape<S::Shape>> {
        match &e.expr {
            Expr::Ident(name) if self.bound(name).is_none() => {
                self.use_variable(name).map(Shape::Known)
            }
            Expr::Select(s) => {
                let shape = self.chain(&s.operand)?;
                let Shape::Known(known) = shape else {
                    return Some(Shape::Dyn);
                };
                match self.scope.field(known, &s.field) {
                    Ok(next) => Some(Shape::Known(next)),
                    Err(()) => {
                        let at = self.offset(e);
                        self.issues
                            .push((at, format!("undefined field '{}'", s.field)));
                        Some(Shape::Dyn)
                    }
                }
            }
            _ => None,
        }
    }

    fn shape_type(&self, shape: Shape<S::Shape>) -> Ty {
        match shape {
            Shape::Known(s) => self.scope.type_of(s),
            Shape::Dyn => Ty::Dyn,
        }
    }

    /// The dotted name `e` spells (`a.b.c`), when its root is neither a variable nor a
    /// comprehension variable.
    fn qualified(&self, e: &IdedExpr) -> Option<String> {
        match &e.expr {
            Expr::Ident(name)
                if self.bound(name).is_none() && self.scope.variable(name).is_none() =>
            {
                Some(name.clone())
            }
            Expr::Select(s) if !s.test => {
                Some(format!("{}.{}", self.qualified(&s.operand)?, s.field))
            }
            _ => None,
        }
    }

    /// Checks `e` and infers its type.
    fn expr(&mut self, e: &'a IdedExpr) -> Ty {
        match &e.expr {
            Expr::Ident(name) => {
                if let Some(b) = self.bound(name) {
                    b.ty.clone()
                } else if let Some(shape) = self.use_variable(name) {
                    self.scope.type_of(shape)
                } else {
                    if !known(name, Probe::Ident) {
                        self.undeclared(e, name);
                    }
                    Ty::Unknown
                }
            }
            Expr::Select(s) => {
                if s.test {
                    // `has(a.b)`: a declared type must have the field tested.
                    if self.chain(e).is_none() {
                        self.expr(&s.operand);
                    }
                    return Ty::Bool;
                }
                if let Some(shape) = self.chain(e) {
                    return self.shape_type(shape);
                }
                match self.qualified(e) {
                    Some(name) => {
                        // cel-go resolves `a.b.c` as a qualified name first, then reports
                        // its root as undeclared.
                        if !known(&name, Probe::Ident) {
                            let root = root_of(e);
                            let root_name = match &root.expr {
                                Expr::Ident(n) => n.clone(),
                                _ => name,
                            };
                            self.undeclared(root, &root_name);
                        }
                        Ty::Unknown
                    }
                    None => match self.expr(&s.operand) {
                        Ty::Dyn => Ty::Dyn,
                        Ty::Map(_, v) => *v,
                        _ => Ty::Unknown,
                    },
                }
            }
            Expr::Call(c) => {
                let name = &c.func_name;
                let operator =
                    name.starts_with('_') || name.starts_with('@') || name == "!_" || name == "-_";
                let mut target_ty = None;
                match c.target.as_deref() {
                    // `optional.none()`, `strings.quote(x)`: a namespaced function.
                    Some(t) if self.qualified(t).is_some() => {
                        let full = format!("{}.{name}", self.qualified(t).unwrap_or_default());
                        if !known(&full, Probe::Global) && !known(name, Probe::Member) {
                            self.undeclared(e, &full);
                        }
                    }
                    Some(t) => {
                        target_ty = Some(self.expr(t));
                        if !operator && !self.scope.unsupported(name) && !known(name, Probe::Member)
                        {
                            self.undeclared(e, name);
                        }
                    }
                    None => {
                        if !operator && !self.scope.unsupported(name) && !known(name, Probe::Global)
                        {
                            self.undeclared(e, name);
                        }
                    }
                }
                let args: Vec<Ty> = c.args.iter().map(|a| self.expr(a)).collect();
                call_type(name, target_ty, args)
            }
            Expr::Comprehension(c) => {
                self.expr(&c.iter_range);
                let accu = self.expr(&c.accu_init);
                let before = self.bound.len();
                self.bound.push(Bound {
                    name: c.iter_var.clone(),
                    ty: Ty::Unknown,
                });
                if let Some(v) = &c.iter_var2 {
                    self.bound.push(Bound {
                        name: v.clone(),
                        ty: Ty::Unknown,
                    });
                }
                self.bound.push(Bound {
                    name: c.accu_var.clone(),
                    ty: accu,
                });
                self.expr(&c.loop_cond);
                self.expr(&c.loop_step);
                let ty = self.expr(&c.result);
                self.bound.truncate(before);
                ty
            }
            Expr::List(l) => {
                let mut elem: Option<Ty> = None;
                for i in &l.elements {
                    let t = self.expr(i);
                    elem = Some(match elem {
                        None => t,
                        Some(prev) => Ty::join(prev, t),
                    });
                }
                match elem {
                    Some(Ty::Unknown) => Ty::Unknown,
                    Some(t) => Ty::List(Box::new(t)),
                    None => Ty::List(Box::new(Ty::Dyn)),
                }
            }
            Expr::Map(m) => {
                for entry in &m.entries {
                    if let EntryExpr::MapEntry(me) = &entry.expr {
                        self.expr(&me.key);
                        self.expr(&me.value);
                    }
                }
                Ty::Unknown
            }
            Expr::Struct(s) => {
                for entry in &s.entries {
                    if let EntryExpr::StructField(f) = &entry.expr {
                        self.expr(&f.value);
                    }
                }
                Ty::Unknown
            }
            Expr::Literal(l) => match l {
                LiteralValue::Boolean(_) => Ty::Bool,
                LiteralValue::Int(_) => Ty::Int,
                LiteralValue::UInt(_) => Ty::Uint,
                LiteralValue::Double(_) => Ty::Double,
                LiteralValue::String(_) => Ty::String,
                LiteralValue::Bytes(_) => Ty::Bytes,
                LiteralValue::Null => Ty::Null,
            },
            Expr::Unspecified => Ty::Unknown,
        }
    }
}

/// The innermost operand of a select chain.
fn root_of(e: &IdedExpr) -> &IdedExpr {
    match &e.expr {
        Expr::Select(s) => root_of(&s.operand),
        _ => e,
    }
}

/// The result type of a call, as far as it is known.
fn call_type(name: &str, target: Option<Ty>, mut args: Vec<Ty>) -> Ty {
    let arith = |args: &mut Vec<Ty>| {
        let b = args.pop().unwrap_or(Ty::Unknown);
        let a = args.pop().unwrap_or(Ty::Unknown);
        // A dyn operand takes the other's type where one overload alone accepts it
        // (`'a' + dyn` can only be a string concatenation), as cel-go's checker resolves.
        let single = |t: &Ty| {
            matches!(
                t,
                Ty::Int | Ty::Uint | Ty::Double | Ty::String | Ty::Bytes | Ty::List(_)
            )
        };
        match (a, b) {
            (Ty::Unknown, _) | (_, Ty::Unknown) => Ty::Unknown,
            (Ty::Dyn, Ty::Dyn) => Ty::Dyn,
            (Ty::Dyn, t) | (t, Ty::Dyn) if single(&t) => t,
            (Ty::Dyn, _) | (_, Ty::Dyn) => Ty::Unknown,
            (a, b) if a == b => a,
            // timestamp - timestamp, timestamp + duration, …
            _ => Ty::Unknown,
        }
    };
    match name {
        "_==_"
        | "_!=_"
        | "_<_"
        | "_<=_"
        | "_>_"
        | "_>=_"
        | "_&&_"
        | "_||_"
        | "!_"
        | "@in"
        | "@not_strictly_false"
        | "matches"
        | "startsWith"
        | "endsWith"
        | "has"
        | "hasValue"
        | "isSorted"
        | "isQuantity"
        | "isIP"
        | "isCIDR"
        | "isInteger"
        | "isLessThan"
        | "isGreaterThan" => Ty::Bool,
        "contains" if target == Some(Ty::String) => Ty::Bool,
        "_+_" | "_-_" | "_*_" | "_/_" | "_%_" => {
            if name == "_-_" && matches!(args.first(), Some(Ty::Timestamp)) {
                return Ty::Unknown;
            }
            arith(&mut args)
        }
        "-_" => match args.pop() {
            Some(t @ (Ty::Int | Ty::Double | Ty::Dyn)) => t,
            _ => Ty::Unknown,
        },
        "_?_:_" => {
            let b = args.pop().unwrap_or(Ty::Unknown);
            let a = args.pop().unwrap_or(Ty::Unknown);
            Ty::join(a, b)
        }
        "_[_]" => match args.first() {
            Some(Ty::Dyn) => Ty::Dyn,
            Some(Ty::List(e)) => (**e).clone(),
            Some(Ty::Map(_, v)) => (**v).clone(),
            _ => Ty::Unknown,
        },
        "size" => Ty::Int,
        "string" | "lowerAscii" | "upperAscii" | "trim" | "replace" | "substring" | "join"
        | "format" | "charAt" | "quote" => Ty::String,
        "int" => Ty::Int,
        "uint" => Ty::Uint,
        "double" => Ty::Double,
        "bytes" => Ty::Bytes,
        "bool" => Ty::Bool,
        "duration" => Ty::Duration,
        "timestamp" => Ty::Timestamp,
        "dyn" => Ty::Dyn,
        "split" => Ty::List(Box::new(Ty::String)),
        _ => Ty::Unknown,
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Probe {
    Ident,
    Global,
    Member,
}

/// Whether the environment resolves `name` (an identifier such as a type name, or a
/// function called globally or as a method): a probe expression is evaluated and only an
/// "undeclared reference" to that name means it does not. Answers are cached.
fn known(name: &str, how: Probe) -> bool {
    static CACHE: LazyLock<Mutex<HashMap<(String, Probe), bool>>> = LazyLock::new(Mutex::default);
    const MAX: usize = 4096;
    let key = (name.to_string(), how);
    if let Ok(cache) = CACHE.lock()
        && let Some(k) = cache.get(&key)
    {
        return *k;
    }
    let source = match how {
        Probe::Ident => name.to_string(),
        Probe::Global => format!("{name}()"),
        Probe::Member => format!("null.{name}()"),
    };
    let last = name.rsplit('.').next().unwrap_or(name);
    let found = match env().compile(&source) {
        // A name that does not even parse alone is left to evaluation.
        Err(_) => true,
        Ok(p) => {
            let ctx = Context::with_env(env());
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| p.execute(&ctx)));
            match result {
                // An identifier (`a.b.c` too) is undeclared if any part of it is.
                Ok(Err(ExecutionError::UndeclaredReference(_))) if how == Probe::Ident => false,
                Ok(Err(ExecutionError::UndeclaredReference(n))) => {
                    n.as_str() != name && n.as_str() != last
                }
                _ => true,
            }
        }
    };
    if let Ok(mut cache) = CACHE.lock() {
        if cache.len() >= MAX {
            cache.clear();
        }
        cache.insert(key, found);
    }
    found
}
