//! Objects as CEL sees them: JSON values typed by their schema (`integer` → int, `number` →
//! double, objects with `properties` → their declared fields under escaped names, maps →
//! maps, arrays → lists), null fields left out ("absent"), unknown fields (kept by
//! `x-kubernetes-preserve-unknown-fields`) not visible, and of the root's (or an embedded
//! resource's) metadata only `name` and `generateName`, as upstream. An object schema that
//! declares nothing but `x-kubernetes-preserve-unknown-fields` is the exception here: its
//! value is seen untyped, as JSON (lenient where upstream's typing is stricter).

use super::Node;
use cel::common::types::{
    CelBool, CelDouble, CelInt, CelList, CelMap, CelMapKey, CelNull, CelString,
};
use cel::common::value::Val;
use serde_json::Value;
use std::collections::HashMap;

use crate::cel::RESERVED;

/// The CEL field name of property `name` (upstream's escaping: `__` → `__underscores__`,
/// `.` → `__dot__`, `-` → `__dash__`, `/` → `__slash__`, reserved words → `__word__`), or
/// `None` when the name cannot be a field (then rules cannot see it).
pub(super) fn escape(name: &str) -> Option<String> {
    let first = name.chars().next()?;
    if first.is_ascii_digit() {
        return None;
    }
    if RESERVED.contains(&name) {
        return Some(format!("__{name}__"));
    }
    let mut out = String::with_capacity(name.len());
    let mut chars = name.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '_' if chars.peek() == Some(&'_') => {
                chars.next();
                out.push_str("__underscores__");
            }
            '.' => out.push_str("__dot__"),
            '-' => out.push_str("__dash__"),
            '/' => out.push_str("__slash__"),
            c if c.is_ascii_alphanumeric() || c == '_' => out.push(c),
            _ => return None,
        }
    }
    Some(out)
}

/// `v` as CEL sees it at a node of schema `node` (`None`: no schema, typed by the JSON).
pub(super) fn to_val<'a>(node: Option<&Node>, v: &'a Value, depth: usize) -> Box<dyn Val + 'a> {
    if depth > super::MAX_DEPTH {
        return Box::new(CelNull);
    }
    match v {
        Value::Null => Box::new(CelNull),
        Value::Bool(b) => Box::new(CelBool::from(*b)),
        Value::Number(n) => {
            let double = node.is_some_and(|n| n.ty == "number");
            match n.as_i64() {
                Some(i) if !double => Box::new(CelInt::from(i)),
                _ => Box::new(CelDouble::from(n.as_f64().unwrap_or(0.0))),
            }
        }
        Value::String(s) => Box::new(CelString::from(s.as_str())),
        Value::Array(items) => {
            let item = node.and_then(|n| n.items.as_deref());
            let list: Vec<Box<dyn Val + 'a>> =
                items.iter().map(|i| to_val(item, i, depth + 1)).collect();
            Box::new(CelList::from(list))
        }
        Value::Object(map) => {
            let mut out: HashMap<CelMapKey<'a>, Box<dyn Val + 'a>> = HashMap::new();
            match node {
                Some(n) if n.opaque => return to_val(None, v, depth),
                None => return crate::cel::value::json(v, depth),
                Some(n) if n.meta => {
                    for k in ["name", "generateName"] {
                        if let Some(Value::String(s)) = map.get(k) {
                            out.insert(CelMapKey::from(k), Box::new(CelString::from(s.as_str())));
                        }
                    }
                }
                Some(n) => {
                    if let Some(extra) = n.additional.as_deref() {
                        for (k, child) in map.iter().filter(|(_, c)| !c.is_null()) {
                            out.insert(
                                CelMapKey::from(k.as_str()),
                                to_val(Some(extra), child, depth + 1),
                            );
                        }
                    }
                    for p in &n.props {
                        if let (Some(cel), Some(child)) = (&p.cel, map.get(&p.name))
                            && !child.is_null()
                        {
                            out.insert(
                                CelMapKey::from(cel.clone()),
                                to_val(Some(&p.node), child, depth + 1),
                            );
                        }
                    }
                }
            }
            Box::new(CelMap::from(out))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_matches_upstream() {
        for (name, want) in [
            ("foo", Some("foo")),
            ("namespace", Some("__namespace__")),
            ("x-y", Some("x__dash__y")),
            ("a.b/c", Some("a__dot__b__slash__c")),
            ("__x", Some("__underscores__x")),
            ("a_b", Some("a_b")),
            ("1a", None),
            ("a b", None),
            ("", None),
        ] {
            assert_eq!(escape(name).as_deref(), want, "{name}");
        }
    }
}
