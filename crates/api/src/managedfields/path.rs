//! Path elements of field sets and their two spellings: the FieldsV1 keys stored in
//! `metadata.managedFields` (`f:spec`, `k:{"name":"nginx"}`, `v:"x"`, `i:0`) and the
//! human form conflicts are reported in (`.spec`, `[name="nginx"]`, `[="x"]`, `[0]`).
//!
//! Elements are totally ordered as upstream orders them (field names, then keys, then
//! values, then indexes), and values compare numerically across ints and floats, so sets
//! built here iterate in upstream's order.

use std::cmp::Ordering;
use std::fmt;

use serde_json::{Map, Value};

use crate::strategy::errors::go_quote;

/// One step of a path into an object.
#[derive(Debug, Clone)]
pub enum PathElement {
    /// A struct field or map key: `f:name`.
    Field(String),
    /// An item of a list keyed by some of its fields, sorted by name: `k:{"name":"x"}`.
    Key(Vec<(String, Value)>),
    /// An item of a set list, by its value: `v:"x"`.
    Value(Value),
    /// An item by position (only in sets read from elsewhere; lists here are never indexed).
    Index(u64),
}

/// A path from the object root.
pub type Path = Vec<PathElement>;

impl PathElement {
    fn rank(&self) -> u8 {
        match self {
            PathElement::Field(_) => 0,
            PathElement::Key(_) => 1,
            PathElement::Value(_) => 2,
            PathElement::Index(_) => 3,
        }
    }

    /// The FieldsV1 key of this element.
    pub fn to_key(&self) -> String {
        let mut out = String::new();
        self.write_key(&mut out);
        out
    }

    /// Appends the FieldsV1 key of this element to `out` (walks reuse one buffer to look
    /// keys up without allocating).
    pub fn write_key(&self, out: &mut String) {
        use std::fmt::Write;
        // Writing to a String cannot fail.
        match self {
            PathElement::Field(name) => {
                out.push_str("f:");
                out.push_str(name);
            }
            PathElement::Key(fields) => {
                // Fields are kept sorted, so the object serializes in upstream's order.
                out.push_str("k:{");
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_json_string(out, k);
                    out.push(':');
                    let _ = write!(out, "{v}");
                }
                out.push('}');
            }
            PathElement::Value(v) => {
                let _ = write!(out, "v:{v}");
            }
            PathElement::Index(i) => {
                let _ = write!(out, "i:{i}");
            }
        }
    }

    /// Parses a FieldsV1 key. `Ok(None)` is a well-formed key of a type this version does
    /// not know (upstream skips those, so newer writers do not break older readers).
    pub fn from_key(key: &str) -> Result<Option<PathElement>, String> {
        let (kind, rest) = match key.split_once(':') {
            Some((kind, rest)) if kind.len() == 1 => (kind, rest),
            _ if key.len() < 2 => return Err(format!("key must be 2 characters long: {key}")),
            _ => return Err(format!("missing colon: {key}")),
        };
        match kind {
            "f" => Ok(Some(PathElement::Field(rest.to_string()))),
            "v" => serde_json::from_str::<Value>(rest)
                .map(|v| Some(PathElement::Value(v)))
                .map_err(|e| format!("parsing {key:?}: {e}")),
            "k" => match serde_json::from_str::<Value>(rest) {
                Ok(Value::Object(m)) => Ok(Some(PathElement::Key(m.into_iter().collect()))),
                Ok(_) => Err(format!("parsing {key:?}: expected an object")),
                Err(e) => Err(format!("parsing {key:?}: {e}")),
            },
            "i" => rest
                .parse::<u64>()
                .map(|i| Some(PathElement::Index(i)))
                .map_err(|e| format!("parsing {key:?}: {e}")),
            _ => Ok(None),
        }
    }

    /// A key element from unsorted fields.
    pub fn key(mut fields: Vec<(String, Value)>) -> PathElement {
        fields.sort_by(|a, b| a.0.cmp(&b.0));
        PathElement::Key(fields)
    }
}

impl Ord for PathElement {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (PathElement::Field(a), PathElement::Field(b)) => a.cmp(b),
            (PathElement::Key(a), PathElement::Key(b)) => {
                for (x, y) in a.iter().zip(b) {
                    let c = x.0.cmp(&y.0).then_with(|| compare_values(&x.1, &y.1));
                    if c != Ordering::Equal {
                        return c;
                    }
                }
                a.len().cmp(&b.len())
            }
            (PathElement::Value(a), PathElement::Value(b)) => compare_values(a, b),
            (PathElement::Index(a), PathElement::Index(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl PartialOrd for PathElement {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for PathElement {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for PathElement {}

impl fmt::Display for PathElement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathElement::Field(name) => write!(f, ".{name}"),
            PathElement::Key(fields) => {
                let parts: Vec<String> = fields
                    .iter()
                    .map(|(k, v)| format!("{k}={}", value_string(v)))
                    .collect();
                write!(f, "[{}]", parts.join(","))
            }
            PathElement::Value(v) => write!(f, "[={}]", value_string(v)),
            PathElement::Index(i) => write!(f, "[{i}]"),
        }
    }
}

/// A path kept on the stack while a walk descends (each level borrows its element), turned
/// into a [`Path`] only when an error names it: walks that never fail allocate nothing.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PathLink<'p> {
    elem: LinkElem<'p>,
    parent: Option<&'p PathLink<'p>>,
}

#[derive(Debug, Clone, Copy)]
enum LinkElem<'p> {
    Field(&'p str),
    Elem(&'p PathElement),
    Index(usize),
}

impl<'p> PathLink<'p> {
    pub fn field(parent: Option<&'p PathLink<'p>>, name: &'p str) -> PathLink<'p> {
        PathLink {
            elem: LinkElem::Field(name),
            parent,
        }
    }

    pub fn elem(parent: Option<&'p PathLink<'p>>, pe: &'p PathElement) -> PathLink<'p> {
        PathLink {
            elem: LinkElem::Elem(pe),
            parent,
        }
    }

    pub fn index(parent: Option<&'p PathLink<'p>>, i: usize) -> PathLink<'p> {
        PathLink {
            elem: LinkElem::Index(i),
            parent,
        }
    }
}

/// The path a link ends (the empty path for none).
pub(crate) fn link_path(link: Option<&PathLink>) -> Path {
    let mut out = Vec::new();
    let mut at = link;
    while let Some(l) = at {
        out.push(match l.elem {
            LinkElem::Field(name) => PathElement::Field(name.to_string()),
            LinkElem::Elem(pe) => pe.clone(),
            LinkElem::Index(i) => PathElement::Index(i as u64),
        });
        at = l.parent;
    }
    out.reverse();
    out
}

/// `s` as a JSON string, as serde_json writes it.
pub(crate) fn write_json_string(out: &mut String, s: &str) {
    if s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        use std::fmt::Write;
        let _ = write!(out, "{}", Value::String(s.to_string()));
    } else {
        out.push('"');
        out.push_str(s);
        out.push('"');
    }
}

/// A path as upstream prints it: `.spec.template.spec.containers[name="app"].image`.
pub fn path_string(path: &[PathElement]) -> String {
    path.iter().map(ToString::to_string).collect()
}

/// How upstream prints a value inside a path: strings quoted Go-style, whole floats
/// without a fraction.
fn value_string(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (_, Some(u), _) => u.to_string(),
            (_, _, Some(f)) if f.fract() == 0.0 && f.abs() < 1e21 => format!("{f:.0}"),
            _ => n.to_string(),
        },
        Value::String(s) => go_quote(s),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(value_string).collect();
            format!("[{}]", parts.join(","))
        }
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| format!("{k}={}", value_string(v)))
            .collect(),
    }
}

/// A number as upstream sees it: floats are values written with a fraction or exponent.
enum Num {
    Int(i128),
    Float(f64),
}

fn num(v: &Value) -> Option<Num> {
    let Value::Number(n) = v else { return None };
    if let Some(i) = n.as_i64() {
        Some(Num::Int(i128::from(i)))
    } else if let Some(u) = n.as_u64() {
        Some(Num::Int(i128::from(u)))
    } else {
        n.as_f64().map(Num::Float)
    }
}

fn float_cmp(a: f64, b: f64) -> Ordering {
    a.partial_cmp(&b).unwrap_or(Ordering::Equal)
}

/// Upstream's total order of values: floats (compared numerically with ints), ints,
/// strings, booleans, lists, maps, null.
pub fn compare_values(a: &Value, b: &Value) -> Ordering {
    match (num(a), num(b)) {
        (Some(Num::Float(x)), Some(Num::Float(y))) => return float_cmp(x, y),
        (Some(Num::Float(x)), Some(Num::Int(y))) => return float_cmp(x, y as f64),
        (Some(Num::Int(x)), Some(Num::Float(y))) => return float_cmp(x as f64, y),
        (Some(Num::Float(_)), _) => return Ordering::Less,
        (_, Some(Num::Float(_))) => return Ordering::Greater,
        (Some(Num::Int(x)), Some(Num::Int(y))) => return x.cmp(&y),
        (Some(Num::Int(_)), _) => return Ordering::Less,
        (_, Some(Num::Int(_))) => return Ordering::Greater,
        _ => {}
    }
    let rank = |v: &Value| match v {
        Value::String(_) => 0,
        Value::Bool(_) => 1,
        Value::Array(_) => 2,
        Value::Object(_) => 3,
        _ => 4,
    };
    match (a, b) {
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => {
            for (p, q) in x.iter().zip(y) {
                let c = compare_values(p, q);
                if c != Ordering::Equal {
                    return c;
                }
            }
            x.len().cmp(&y.len())
        }
        (Value::Object(x), Value::Object(y)) => compare_maps(x, y),
        _ => rank(a).cmp(&rank(b)),
    }
}

fn compare_maps(x: &Map<String, Value>, y: &Map<String, Value>) -> Ordering {
    // serde_json maps iterate in key order, so this walks both sorted.
    for ((kx, vx), (ky, vy)) in x.iter().zip(y) {
        let c = kx.cmp(ky).then_with(|| compare_values(vx, vy));
        if c != Ordering::Equal {
            return c;
        }
    }
    x.len().cmp(&y.len())
}

/// Upstream's value equality: like `==`, but `1` equals `1.0`.
pub fn values_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(_), Value::Number(_)) => compare_values(a, b) == Ordering::Equal,
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| values_equal(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| values_equal(v, w)))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_round_trip() {
        let cases = [
            (PathElement::Field("spec".into()), "f:spec", ".spec"),
            (
                PathElement::key(vec![
                    ("protocol".into(), json!("TCP")),
                    ("containerPort".into(), json!(80)),
                ]),
                r#"k:{"containerPort":80,"protocol":"TCP"}"#,
                r#"[containerPort=80,protocol="TCP"]"#,
            ),
            (PathElement::Value(json!("x")), r#"v:"x""#, r#"[="x"]"#),
            (PathElement::Value(json!(1.5)), "v:1.5", "[=1.5]"),
            (PathElement::Index(3), "i:3", "[3]"),
        ];
        for (pe, key, shown) in cases {
            assert_eq!(pe.to_key(), key);
            assert_eq!(pe.to_string(), shown);
            assert_eq!(PathElement::from_key(key).unwrap(), Some(pe));
        }
        assert_eq!(PathElement::from_key("z:whatever").unwrap(), None);
        for bad in ["", "f", "ff:x", "k:[1]", "k:{", "v:", "i:x", "i:-1"] {
            assert!(PathElement::from_key(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn order_and_equality() {
        let f = PathElement::Field("a".into());
        let k = PathElement::key(vec![("name".into(), json!("a"))]);
        let v = PathElement::Value(json!("a"));
        let i = PathElement::Index(0);
        assert!(f < k && k < v && v < i);
        assert_eq!(PathElement::Value(json!(1)), PathElement::Value(json!(1.0)));
        assert!(compare_values(&json!(1.5), &json!(2)) == Ordering::Less);
        assert!(compare_values(&json!(5), &json!("a")) == Ordering::Less);
        assert!(compare_values(&json!("a"), &json!(true)) == Ordering::Less);
        assert!(compare_values(&json!({}), &json!(null)) == Ordering::Less);
        assert!(values_equal(&json!({"a": [1]}), &json!({"a": [1.0]})));
        assert!(!values_equal(&json!({"a": 1}), &json!({"a": 1, "b": 2})));
    }
}
