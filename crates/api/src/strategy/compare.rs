//! Semantic comparison of JSON objects, approximating upstream's
//! `apiequality.Semantic.DeepEqual` on decoded structs: absent, `null`, `""`, `[]` and
//! `{}` all mean "zero value" and compare equal.

use serde_json::{Map, Value};

/// Drops zero-valued members recursively.
pub(crate) fn normalize(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, val) in m {
                let n = normalize(val);
                if !is_zero(&n) {
                    out.insert(k.clone(), n);
                }
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(normalize).collect()),
        other => other.clone(),
    }
}

fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
        _ => false,
    }
}

/// Semantic equality of two optional values.
pub(crate) fn semantic_eq(a: Option<&Value>, b: Option<&Value>) -> bool {
    let a = a.map(normalize).unwrap_or(Value::Null);
    let b = b.map(normalize).unwrap_or(Value::Null);
    let za = is_zero(&a);
    let zb = is_zero(&b);
    if za || zb {
        return za && zb;
    }
    a == b
}

/// Lists up to `limit` differing leaf paths as `-`/`+` lines (a compact stand-in for the
/// `cmp.Diff` output upstream appends to some messages).
pub(crate) fn diff_lines(old: &Value, new: &Value, prefix: &str, limit: usize) -> Vec<String> {
    let mut out = Vec::new();
    diff_rec(&normalize(old), &normalize(new), prefix, limit, &mut out);
    out
}

fn diff_rec(old: &Value, new: &Value, path: &str, limit: usize, out: &mut Vec<String>) {
    if out.len() >= limit * 2 || old == new {
        return;
    }
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                diff_rec(
                    a.get(k).unwrap_or(&Value::Null),
                    b.get(k).unwrap_or(&Value::Null),
                    &p,
                    limit,
                    out,
                );
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                diff_rec(x, y, &format!("{path}[{i}]"), limit, out);
            }
        }
        _ => {
            out.push(format!("-  {path}: {}", short(old)));
            out.push(format!("+  {path}: {}", short(new)));
        }
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 120 {
        let mut cut = 120;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}…", &s[..cut])
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn zero_values_compare_equal() {
        assert!(semantic_eq(
            Some(&json!({"a": "", "b": [], "c": {}, "d": null})),
            None
        ));
        assert!(semantic_eq(
            Some(&json!({"x": 1, "y": ""})),
            Some(&json!({"x": 1}))
        ));
        assert!(!semantic_eq(Some(&json!({"x": 1})), Some(&json!({"x": 2}))));
        assert!(!semantic_eq(Some(&json!(false)), None));
        assert!(semantic_eq(Some(&json!([{"a": null}])), Some(&json!([{}]))));
    }

    #[test]
    fn diffs_are_bounded() {
        let old = json!({"a": 1, "b": {"c": [1, 2]}});
        let new = json!({"a": 2, "b": {"c": [1, 3]}});
        assert_eq!(
            diff_lines(&old, &new, "spec", 10),
            [
                "-  spec.a: 1",
                "+  spec.a: 2",
                "-  spec.b.c[1]: 2",
                "+  spec.b.c[1]: 3"
            ]
        );
        assert_eq!(diff_lines(&old, &new, "", 1).len(), 2);
    }
}
