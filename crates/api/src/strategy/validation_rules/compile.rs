//! Compiling one expression: parsing (cel-go's syntax errors, word for word), then the
//! checks upstream's type checker makes that matter most without a type checker —
//! references to undeclared variables or functions, and fields the schema does not
//! declare (`self.replicsa`) — reported like cel-go (`ERROR: <input>:1:5: undefined field
//! 'replicsa'` with the source line and a caret). Types are otherwise checked when the
//! expression runs.

use super::Node;
use super::library::{UNSUPPORTED_UPSTREAM, env};
use cel::common::ast::{EntryExpr, Expr};
use cel::{Context, ExecutionError, IdedExpr, Program};
use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

/// What an expression's `self`/`oldSelf` are: the node's schema, whether `oldSelf` is an
/// optional (`optionalOldSelf`).
pub(super) struct Scope<'a> {
    pub node: &'a Node,
    pub optional_old_self: bool,
}

/// A compiled expression.
#[derive(Debug)]
pub(super) struct Compiled {
    pub program: Program,
    pub uses_old_self: bool,
}

/// What an expression evaluates to, when the parse tree tells (a literal, an arithmetic
/// operator): upstream refuses rules that are not bool and messages that are not strings.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub(super) enum Kind {
    Bool,
    String,
    /// Not a bool, maybe a string (`a + b`).
    NotBool,
    Other,
    Unknown,
}

/// Compiles `source`; the error is cel-go's issue list.
pub(super) fn compile(source: &str, scope: &Scope<'_>) -> Result<(Compiled, Kind), String> {
    let program = env().compile(source).map_err(|e| {
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
    let mut walk = Walk {
        program: &program,
        scope,
        bound: Vec::new(),
        issues: Vec::new(),
        uses_old_self: false,
    };
    walk.expr(program.expression());
    if !walk.issues.is_empty() {
        let issues: Vec<String> = walk
            .issues
            .iter()
            .map(|(offset, message)| issue(source, *offset, message))
            .collect();
        return Err(issues.join("\n"));
    }
    let kind = kind_of(&program.expression().expr);
    let uses_old_self = walk.uses_old_self;
    Ok((
        Compiled {
            program,
            uses_old_self,
        },
        kind,
    ))
}

fn kind_of(e: &Expr) -> Kind {
    use cel::common::ast::LiteralValue;
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

/// The schema a `self.a.b` chain has reached.
#[derive(Clone, Copy)]
enum Shape<'a> {
    Node(&'a Node),
    /// No schema to check against (maps' values checked below, int-or-string, …).
    Dyn,
}

impl<'a> Shape<'a> {
    /// The shape of field `field`, or `Err` when the schema declares no such field.
    fn select(self, field: &str) -> Result<Shape<'a>, ()> {
        let Shape::Node(n) = self else {
            return Ok(Shape::Dyn);
        };
        if n.opaque {
            return Ok(Shape::Dyn);
        }
        if n.meta {
            return match field {
                "name" | "generateName" => Ok(Shape::Dyn),
                _ => Err(()),
            };
        }
        if let Some(extra) = n.additional.as_deref() {
            return Ok(Shape::Node(extra));
        }
        if n.ty != "object" && n.props.is_empty() {
            return Ok(Shape::Dyn);
        }
        match n.props.iter().find(|p| p.cel.as_deref() == Some(field)) {
            Some(p) => Ok(Shape::Node(&p.node)),
            None => Err(()),
        }
    }
}

struct Walk<'a> {
    program: &'a Program,
    scope: &'a Scope<'a>,
    /// Comprehension variables in scope.
    bound: Vec<String>,
    issues: Vec<(u32, String)>,
    uses_old_self: bool,
}

impl<'a> Walk<'a> {
    fn offset(&self, e: &IdedExpr) -> u32 {
        self.program
            .source_info()
            .offset_for(e.id)
            .map_or(0, |(start, _)| start)
    }

    fn is_bound(&self, name: &str) -> bool {
        self.bound.iter().any(|b| b == name)
    }

    fn undeclared(&mut self, e: &IdedExpr, name: &str) {
        let at = self.offset(e);
        self.issues.push((
            at,
            format!("undeclared reference to '{name}' (in container '')"),
        ));
    }

    /// The shape of a `self`/`oldSelf` field chain (`None`: not such a chain).
    fn chain(&mut self, e: &'a IdedExpr) -> Option<Shape<'a>> {
        match &e.expr {
            Expr::Ident(name) if !self.is_bound(name) => match name.as_str() {
                "self" => Some(Shape::Node(self.scope.node)),
                "oldSelf" => {
                    self.uses_old_self = true;
                    if self.scope.optional_old_self {
                        Some(Shape::Dyn)
                    } else {
                        Some(Shape::Node(self.scope.node))
                    }
                }
                _ => None,
            },
            Expr::Select(s) => {
                let shape = self.chain(&s.operand)?;
                match shape.select(&s.field) {
                    Ok(next) => Some(next),
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

    /// The dotted name `e` spells (`a.b.c`), when its root is not a variable.
    fn qualified(&self, e: &IdedExpr) -> Option<String> {
        match &e.expr {
            Expr::Ident(name) if !self.is_bound(name) && name != "self" && name != "oldSelf" => {
                Some(name.clone())
            }
            Expr::Select(s) if !s.test => {
                Some(format!("{}.{}", self.qualified(&s.operand)?, s.field))
            }
            _ => None,
        }
    }

    fn expr(&mut self, e: &'a IdedExpr) {
        match &e.expr {
            Expr::Ident(name) => {
                if self.is_bound(name) || name == "self" {
                } else if name == "oldSelf" {
                    self.uses_old_self = true;
                } else if !known(name, Probe::Ident) {
                    self.undeclared(e, name);
                }
            }
            Expr::Select(s) => {
                if self.chain(e).is_none() {
                    match self.qualified(e) {
                        Some(name) if !known(&name, Probe::Ident) => self.undeclared(e, &name),
                        Some(_) => {}
                        None => self.expr(&s.operand),
                    }
                }
            }
            Expr::Call(c) => {
                let name = &c.func_name;
                let operator =
                    name.starts_with('_') || name.starts_with('@') || name == "!_" || name == "-_";
                match c.target.as_deref() {
                    // `optional.none()`, `strings.quote(x)`: a namespaced function.
                    Some(t) if self.qualified(t).is_some() && self.chain(t).is_none() => {
                        let full = format!("{}.{name}", self.qualified(t).unwrap_or_default());
                        if !known(&full, Probe::Global) && !known(name, Probe::Member) {
                            self.undeclared(e, &full);
                        }
                    }
                    Some(t) => {
                        self.expr(t);
                        if !operator
                            && !UNSUPPORTED_UPSTREAM.contains(&name.as_str())
                            && !known(name, Probe::Member)
                        {
                            self.undeclared(e, name);
                        }
                    }
                    None => {
                        if !operator
                            && !UNSUPPORTED_UPSTREAM.contains(&name.as_str())
                            && !known(name, Probe::Global)
                        {
                            self.undeclared(e, name);
                        }
                    }
                }
                for a in &c.args {
                    self.expr(a);
                }
            }
            Expr::Comprehension(c) => {
                self.expr(&c.iter_range);
                self.expr(&c.accu_init);
                let before = self.bound.len();
                self.bound.push(c.iter_var.clone());
                if let Some(v) = &c.iter_var2 {
                    self.bound.push(v.clone());
                }
                self.bound.push(c.accu_var.clone());
                self.expr(&c.loop_cond);
                self.expr(&c.loop_step);
                self.expr(&c.result);
                self.bound.truncate(before);
            }
            Expr::List(l) => {
                for i in &l.elements {
                    self.expr(i);
                }
            }
            Expr::Map(m) => {
                for entry in &m.entries {
                    if let EntryExpr::MapEntry(me) = &entry.expr {
                        self.expr(&me.key);
                        self.expr(&me.value);
                    }
                }
            }
            Expr::Struct(s) => {
                for entry in &s.entries {
                    if let EntryExpr::StructField(f) = &entry.expr {
                        self.expr(&f.value);
                    }
                }
            }
            Expr::Literal(_) | Expr::Unspecified => {}
        }
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
            !matches!(result, Ok(Err(ExecutionError::UndeclaredReference(n)))
                if n.as_str() == name || n.as_str() == last)
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

/// Upstream's `ValidFieldPath`: a relative JSON path (`.a.b`, `['x.y']`) to a field the
/// schema of `node` declares, as the field path it names (`a.b`; `[x.y]` for a map key).
pub(super) fn field_path(path: &str, node: &Node) -> Result<String, String> {
    fn step<'n>(node: &'n Node, name: &str, out: &mut String) -> Result<&'n Node, String> {
        if let Some(p) = node.props.iter().find(|p| p.name == name) {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(name);
            Ok(&p.node)
        } else if let Some(extra) = node.additional.as_deref().filter(|_| node.props.is_empty()) {
            out.push('[');
            out.push_str(name);
            out.push(']');
            Ok(extra)
        } else {
            Err("does not refer to a valid field".to_string())
        }
    }
    let mut out = String::new();
    let mut node = node;
    let mut rest = path;
    while !rest.is_empty() {
        let (name, tail) = if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            if end == 0 {
                return Err("unexpected end of JSON path".into());
            }
            (r[..end].to_string(), &r[end..])
        } else if let Some(r) = rest.strip_prefix('[') {
            quoted(r)?
        } else {
            return Err(format!(
                "expected [ or . but got: {}",
                rest.split(['.', '[']).next().unwrap_or(rest)
            ));
        };
        node = step(node, &name, &mut out)?;
        rest = tail;
    }
    Ok(out)
}

/// `'name']…` after a `[`: the unescaped name and what follows the `]`.
fn quoted(r: &str) -> Result<(String, &str), String> {
    let Some(r) = r.strip_prefix('\'') else {
        return Err(format!(
            "expected single quoted string but got {}",
            r.split(']').next().unwrap_or("")
        ));
    };
    let mut name = String::new();
    let mut chars = r.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, c @ ('\'' | '\\'))) => name.push(c),
                Some((_, 'n')) => name.push('\n'),
                Some((_, 't')) => name.push('\t'),
                Some((_, c)) => {
                    return Err(format!("invalid string literal: invalid escape char \\{c}"));
                }
                None => break,
            },
            '\'' => {
                return match r[i + 1..].strip_prefix(']') {
                    Some(tail) => Ok((name, tail)),
                    None => Err("expected ] after the quoted name".into()),
                };
            }
            c => name.push(c),
        }
    }
    Err("unexpected end of JSON path".into())
}
