//! Compiling one rule with [`crate::cel::check`]: `self` (and `oldSelf`) are typed by the
//! schema node the rule is at, so `self.replicsa` is refused as cel-go refuses it
//! (`undefined field 'replicsa'`); types are otherwise checked when the rule runs. Also
//! upstream's `fieldPath` syntax ([`field_path`]).

use super::Node;
use crate::cel::check::{self, Kind};
use cel::Program;

/// What a rule's `self`/`oldSelf` are: the node's schema, whether `oldSelf` is an
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

/// The schema a `self.a.b` chain has reached (`None`: nothing to check against — maps'
/// values are checked below, int-or-string, an optional `oldSelf`, …).
type Shape<'a> = Option<&'a Node>;

impl<'a> check::Scope for Scope<'a> {
    type Shape = Shape<'a>;

    fn variable(&self, name: &str) -> Option<Shape<'a>> {
        match name {
            "self" => Some(Some(self.node)),
            "oldSelf" if self.optional_old_self => Some(None),
            "oldSelf" => Some(Some(self.node)),
            _ => None,
        }
    }

    fn field(&self, shape: Shape<'a>, field: &str) -> Result<Shape<'a>, ()> {
        let Some(n) = shape else {
            return Ok(None);
        };
        if n.opaque {
            return Ok(None);
        }
        if n.meta {
            return match field {
                "name" | "generateName" => Ok(None),
                _ => Err(()),
            };
        }
        if let Some(extra) = n.additional.as_deref() {
            return Ok(Some(extra));
        }
        if n.ty != "object" && n.props.is_empty() {
            return Ok(None);
        }
        match n.props.iter().find(|p| p.cel.as_deref() == Some(field)) {
            Some(p) => Ok(Some(&p.node)),
            None => Err(()),
        }
    }
}

/// Compiles `source`; the error is cel-go's issue list.
pub(super) fn compile(source: &str, scope: &Scope<'_>) -> Result<(Compiled, Kind), String> {
    let checked = check::compile(source, scope)?;
    let uses_old_self = checked.uses("oldSelf");
    Ok((
        Compiled {
            program: checked.program,
            uses_old_self,
        },
        checked.kind,
    ))
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
