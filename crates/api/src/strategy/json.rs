//! Panic-free access to objects held as `serde_json::Value`.
//!
//! Strategies see client input before any typed decoding, so every field may be missing,
//! `null` or of the wrong type. The checked readers (`opt_*`) report a wrong type as a
//! [`FieldError`] and return `None`, so validation carries on with the rest of the object;
//! the `*_mut`/`default_*` helpers used by defaulting silently skip wrongly typed parts
//! (validation reports them afterwards).

use serde_json::{Map, Value};

use super::FieldError;

pub(crate) type Errs = Vec<FieldError>;
pub(crate) type Obj = Map<String, Value>;

/// `path.key` (or `key` at the root).
pub(crate) fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// `path[i]`.
pub(crate) fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

/// `path[key]` (map entries, as upstream's `Path.Key`).
pub(crate) fn key(path: &str, k: &str) -> String {
    format!("{path}[{k}]")
}

/// Member `key` of `obj`, unless absent or `null` (or `obj` is not an object).
pub(crate) fn get<'a>(obj: &'a Value, key: &str) -> Option<&'a Value> {
    match obj.as_object()?.get(key) {
        None | Some(Value::Null) => None,
        Some(v) => Some(v),
    }
}

/// Nested lookup without type errors, e.g. `at(pod, &["spec", "nodeName"])`.
pub(crate) fn at<'a>(obj: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut cur = obj;
    for seg in path {
        cur = get(cur, seg)?;
    }
    Some(cur)
}

/// String member or `None` (no error reporting).
pub(crate) fn get_str<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    get(obj, key)?.as_str()
}

/// Nested string or `""`.
pub(crate) fn str_at<'a>(obj: &'a Value, path: &[&str]) -> &'a str {
    at(obj, path).and_then(Value::as_str).unwrap_or("")
}

/// Integer member or `None` (no error reporting).
pub(crate) fn get_int(obj: &Value, key: &str) -> Option<i64> {
    get(obj, key)?.as_i64()
}

/// Boolean member or `None` (no error reporting).
pub(crate) fn get_bool(obj: &Value, key: &str) -> Option<bool> {
    get(obj, key)?.as_bool()
}

/// Array member or an empty slice (no error reporting).
pub(crate) fn get_arr<'a>(obj: &'a Value, key: &str) -> &'a [Value] {
    get(obj, key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// Checked string member.
pub(crate) fn opt_str<'a>(
    obj: &'a Value,
    key: &str,
    path: &str,
    errs: &mut Errs,
) -> Option<&'a str> {
    let v = get(obj, key)?;
    match v.as_str() {
        Some(s) => Some(s),
        None => {
            errs.push(FieldError::type_invalid(child(path, key), v, "string"));
            None
        }
    }
}

/// Checked integer member (any 64-bit integer; floats are rejected like Go's decoder does).
pub(crate) fn opt_int(obj: &Value, key: &str, path: &str, errs: &mut Errs) -> Option<i64> {
    let v = get(obj, key)?;
    match v.as_i64() {
        Some(n) => Some(n),
        None => {
            errs.push(FieldError::type_invalid(child(path, key), v, "integer"));
            None
        }
    }
}

/// Checked int32 member.
pub(crate) fn opt_i32(obj: &Value, key: &str, path: &str, errs: &mut Errs) -> Option<i64> {
    let n = opt_int(obj, key, path, errs)?;
    if n < i64::from(i32::MIN) || n > i64::from(i32::MAX) {
        errs.push(FieldError::invalid(
            child(path, key),
            &n,
            "must be between -2147483648 and 2147483647, inclusive",
        ));
        return None;
    }
    Some(n)
}

/// Checked boolean member.
pub(crate) fn opt_bool(obj: &Value, key: &str, path: &str, errs: &mut Errs) -> Option<bool> {
    let v = get(obj, key)?;
    match v.as_bool() {
        Some(b) => Some(b),
        None => {
            errs.push(FieldError::type_invalid(child(path, key), v, "boolean"));
            None
        }
    }
}

/// Checked object member; returns the member itself (as a `Value`) for further reads.
pub(crate) fn opt_obj<'a>(
    obj: &'a Value,
    key: &str,
    path: &str,
    errs: &mut Errs,
) -> Option<&'a Value> {
    let v = get(obj, key)?;
    if v.is_object() {
        Some(v)
    } else {
        errs.push(FieldError::type_invalid(child(path, key), v, "object"));
        None
    }
}

/// Checked array member.
pub(crate) fn opt_arr<'a>(
    obj: &'a Value,
    key: &str,
    path: &str,
    errs: &mut Errs,
) -> Option<&'a [Value]> {
    let v = get(obj, key)?;
    match v.as_array() {
        Some(a) => Some(a.as_slice()),
        None => {
            errs.push(FieldError::type_invalid(child(path, key), v, "array"));
            None
        }
    }
}

/// Checked `map[string]string` member: entries with non-string values are reported and
/// skipped.
pub(crate) fn opt_str_map<'a>(
    obj: &'a Value,
    key_name: &str,
    path: &str,
    errs: &mut Errs,
) -> Option<Vec<(&'a str, &'a str)>> {
    let v = get(obj, key_name)?;
    let field = child(path, key_name);
    str_map_of(v, &field, errs)
}

/// Checked `map[string]string` from a value.
pub(crate) fn str_map_of<'a>(
    v: &'a Value,
    field: &str,
    errs: &mut Errs,
) -> Option<Vec<(&'a str, &'a str)>> {
    let Some(m) = v.as_object() else {
        errs.push(FieldError::type_invalid(field, v, "object"));
        return None;
    };
    let mut out = Vec::with_capacity(m.len());
    for (k, val) in m {
        match val {
            Value::String(s) => out.push((k.as_str(), s.as_str())),
            // `null` map values decode to "" in Go.
            Value::Null => out.push((k.as_str(), "")),
            other => errs.push(FieldError::type_invalid(key(field, k), other, "string")),
        }
    }
    Some(out)
}

/// Checked `[]string` member: non-string items are reported and skipped.
pub(crate) fn opt_str_list<'a>(
    obj: &'a Value,
    key_name: &str,
    path: &str,
    errs: &mut Errs,
) -> Option<Vec<&'a str>> {
    let items = opt_arr(obj, key_name, path, errs)?;
    let field = child(path, key_name);
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match item.as_str() {
            Some(s) => out.push(s),
            None => errs.push(FieldError::type_invalid(index(&field, i), item, "string")),
        }
    }
    Some(out)
}

/// An `IntOrString` field value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IntOrStr<'a> {
    Int(i64),
    Str(&'a str),
}

impl IntOrStr<'_> {
    /// Rendering used by upstream's `IntOrString.String()` in messages (no quotes).
    pub(crate) fn display(&self) -> String {
        match self {
            IntOrStr::Int(n) => n.to_string(),
            IntOrStr::Str(s) => (*s).to_string(),
        }
    }
}

/// Checked int-or-string member.
pub(crate) fn opt_int_or_str<'a>(
    obj: &'a Value,
    key_name: &str,
    path: &str,
    errs: &mut Errs,
) -> Option<IntOrStr<'a>> {
    let v = get(obj, key_name)?;
    match v {
        Value::String(s) => Some(IntOrStr::Str(s)),
        Value::Number(n) => match n.as_i64() {
            Some(i) if i >= i64::from(i32::MIN) && i <= i64::from(i32::MAX) => {
                Some(IntOrStr::Int(i))
            }
            _ => {
                errs.push(FieldError::type_invalid(
                    child(path, key_name),
                    v,
                    "int32 or string",
                ));
                None
            }
        },
        _ => {
            errs.push(FieldError::type_invalid(
                child(path, key_name),
                v,
                "int32 or string",
            ));
            None
        }
    }
}

// ---- mutation helpers for defaulting ----

/// Absent or `null`.
pub(crate) fn is_unset(m: &Obj, key: &str) -> bool {
    matches!(m.get(key), None | Some(Value::Null))
}

/// Absent, `null` or `""` — Go's zero value for a string field.
pub(crate) fn is_blank(m: &Obj, key: &str) -> bool {
    match m.get(key) {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        _ => false,
    }
}

/// Absent, `null` or `0` — Go's zero value for a non-pointer integer field.
pub(crate) fn is_zero_int(m: &Obj, key: &str) -> bool {
    match m.get(key) {
        None | Some(Value::Null) => true,
        Some(Value::Number(n)) => n.as_i64() == Some(0),
        _ => false,
    }
}

/// Sets a pointer-typed field when unset.
pub(crate) fn default_value(m: &mut Obj, key: &str, val: Value) {
    if is_unset(m, key) {
        m.insert(key.to_string(), val);
    }
}

/// Sets a string field when blank.
pub(crate) fn default_str(m: &mut Obj, key: &str, val: &str) {
    if is_blank(m, key) {
        m.insert(key.to_string(), Value::String(val.to_string()));
    }
}

/// Sets a non-pointer integer field when zero.
pub(crate) fn default_nonzero(m: &mut Obj, key: &str, val: i64) {
    if is_zero_int(m, key) {
        m.insert(key.to_string(), Value::from(val));
    }
}

/// The object member `key`, created as `{}` when unset; `None` when it has another type.
pub(crate) fn ensure_obj<'a>(m: &'a mut Obj, key: &str) -> Option<&'a mut Obj> {
    if is_unset(m, key) {
        m.insert(key.to_string(), Value::Object(Map::new()));
    }
    m.get_mut(key)?.as_object_mut()
}

/// The existing object member `key`.
pub(crate) fn obj_mut<'a>(m: &'a mut Obj, key: &str) -> Option<&'a mut Obj> {
    m.get_mut(key)?.as_object_mut()
}

/// Applies `f` to every object item of the array member `key`.
pub(crate) fn each_obj_mut(m: &mut Obj, key: &str, mut f: impl FnMut(&mut Obj)) {
    if let Some(items) = m.get_mut(key).and_then(Value::as_array_mut) {
        for item in items.iter_mut() {
            if let Some(o) = item.as_object_mut() {
                f(o);
            }
        }
    }
}

/// Applies `f` to the object member `key` if it exists.
pub(crate) fn with_obj(m: &mut Obj, key: &str, f: impl FnOnce(&mut Obj)) {
    if let Some(o) = obj_mut(m, key) {
        f(o);
    }
}

/// The strings of a JSON array (non-strings skipped); empty when absent or not an array.
pub(crate) fn str_list(v: Option<&Value>) -> Vec<&str> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn checked_readers_report_wrong_types() {
        let obj = json!({"s": 1, "i": "x", "f": 1.5, "b": "yes", "o": [], "a": {}, "m": {"k": 1, "ok": "v"}, "n": null, "big": 99999999999u64});
        let mut errs = Vec::new();
        assert_eq!(opt_str(&obj, "s", "p", &mut errs), None);
        assert_eq!(opt_int(&obj, "i", "p", &mut errs), None);
        assert_eq!(opt_int(&obj, "f", "p", &mut errs), None);
        assert_eq!(opt_bool(&obj, "b", "p", &mut errs), None);
        assert!(opt_obj(&obj, "o", "p", &mut errs).is_none());
        assert!(opt_arr(&obj, "a", "p", &mut errs).is_none());
        assert_eq!(
            opt_str_map(&obj, "m", "p", &mut errs),
            Some(vec![("ok", "v")])
        );
        assert_eq!(opt_str(&obj, "n", "p", &mut errs), None);
        assert_eq!(opt_i32(&obj, "big", "p", &mut errs), None);
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["p.s", "p.i", "p.f", "p.b", "p.o", "p.a", "p.m[k]", "p.big"]
        );
    }

    #[test]
    fn readers_on_non_objects_are_none() {
        let mut errs = Vec::new();
        assert!(get(&json!([1]), "x").is_none());
        assert!(opt_str(&json!("str"), "x", "", &mut errs).is_none());
        assert!(errs.is_empty());
        assert_eq!(str_at(&json!({"a": {"b": "c"}}), &["a", "b"]), "c");
        assert_eq!(str_at(&json!({"a": 3}), &["a", "b"]), "");
    }

    #[test]
    fn default_helpers_respect_go_zero_values() {
        let mut m = json!({"a": "", "b": 0, "c": null, "d": "x", "e": 5, "o": 3})
            .as_object()
            .cloned()
            .unwrap_or_default();
        default_str(&mut m, "a", "A");
        default_nonzero(&mut m, "b", 7);
        default_value(&mut m, "c", json!(true));
        default_str(&mut m, "d", "no");
        default_nonzero(&mut m, "e", 1);
        assert!(ensure_obj(&mut m, "o").is_none());
        assert!(ensure_obj(&mut m, "new").is_some());
        assert_eq!(
            Value::Object(m),
            json!({"a": "A", "b": 7, "c": true, "d": "x", "e": 5, "o": 3, "new": {}})
        );
    }
}
