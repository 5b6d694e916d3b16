//! A manager's fields kept in their FieldsV1 form and edited in place.
//!
//! Decoding a FieldsV1 object into a [`Set`] and encoding it back costs milliseconds on a
//! large object, while a write usually changes a handful of paths. So a FieldsV1 object
//! that is exactly what encoding its own set would give back (*canonical*: every key
//! spelled as [`PathElement::write_key`] spells it, no unknown element types, `"."` only
//! beside other keys) is kept as JSON, and the set operations a write needs — removing,
//! adding and intersecting with a small set — walk only the paths of the small set.
//! Anything else is decoded into a [`Set`] as before, so the result is the same either way.
//!
//! The JSON form of a set at one level: an element that is a member with nothing below is
//! `key: {}`, one with paths below is `key: {".": {}, …}`, and one only with paths below
//! is `key: {…}` (never empty).

use serde_json::{Map, Value};

use super::path::PathElement;
use super::set::Set;

/// One manager's fields.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Fields {
    /// A canonical FieldsV1 object.
    Tree(Map<String, Value>),
    /// Decoded (the FieldsV1 object was not canonical).
    Set(Set),
}

impl Default for Fields {
    fn default() -> Self {
        Fields::Tree(Map::new())
    }
}

impl Fields {
    /// Reads a manager's `fieldsV1` (absent or null is no fields), keeping it as JSON when
    /// canonical. Errors are those of [`Set::from_fields_v1`].
    pub fn read(fields: Option<Value>) -> Result<Fields, String> {
        match fields {
            None | Some(Value::Null) => Ok(Fields::default()),
            Some(Value::Object(map)) if canonical_node(&map, true) => Ok(Fields::Tree(map)),
            Some(other) => Set::from_fields_v1(&other).map(Fields::Set),
        }
    }

    pub fn is_empty(&self) -> bool {
        match self {
            Fields::Tree(map) => map.is_empty(),
            Fields::Set(set) => set.is_empty(),
        }
    }

    /// The FieldsV1 object.
    pub fn into_value(self) -> Value {
        match self {
            Fields::Tree(map) => Value::Object(map),
            Fields::Set(set) => set.to_fields_v1(),
        }
    }

    /// The decoded set.
    pub fn into_set(self) -> Set {
        match self {
            // A canonical tree always decodes.
            Fields::Tree(map) => Set::from_fields_v1(&Value::Object(map)).unwrap_or_default(),
            Fields::Set(set) => set,
        }
    }

    /// Removes the paths of `other` ([`Set::difference`]: per node).
    pub fn remove(&mut self, other: &Set) {
        if other.is_empty() {
            return;
        }
        match self {
            Fields::Tree(map) => tree_remove(map, other, &mut String::new()),
            Fields::Set(set) => *set = set.difference(other),
        }
    }

    /// Adds the paths of `other`.
    pub fn union_with(&mut self, other: &Set) {
        match self {
            Fields::Tree(map) => tree_union(map, other, &mut String::new()),
            Fields::Set(set) => set.union_with(other),
        }
    }

    /// The paths both in `self` and `other`.
    pub fn intersection(&self, other: &Set) -> Set {
        match self {
            Fields::Tree(map) => tree_intersection(map, other, &mut String::new()),
            Fields::Set(set) => set.intersection(other),
        }
    }
}

/// The key of `pe` in `buf` (cleared first).
fn key_of<'b>(pe: &PathElement, buf: &'b mut String) -> &'b str {
    buf.clear();
    pe.write_key(buf);
    buf
}

fn is_member(node: &Map<String, Value>) -> bool {
    node.is_empty() || node.contains_key(".")
}

fn tree_remove(map: &mut Map<String, Value>, other: &Set, buf: &mut String) {
    for pe in other.members() {
        let key = key_of(pe, buf);
        let Some(Value::Object(node)) = map.get_mut(key) else {
            continue;
        };
        if node.is_empty() {
            map.remove(key);
        } else {
            // Still has paths below, so it stays (not a member any more).
            node.remove(".");
        }
    }
    for (pe, below) in other.children() {
        let key = key_of(pe, buf).to_string();
        let Some(Value::Object(node)) = map.get_mut(&key) else {
            continue;
        };
        if node.is_empty() {
            continue;
        }
        tree_remove(node, below, buf);
        if node.is_empty() {
            map.remove(&key);
        } else if node.len() == 1 && node.contains_key(".") {
            node.remove(".");
        }
    }
}

fn tree_union(map: &mut Map<String, Value>, other: &Set, buf: &mut String) {
    for pe in other.members() {
        let key = key_of(pe, buf);
        match map.get_mut(key) {
            Some(Value::Object(node)) => {
                if !is_member(node) {
                    node.insert(".".into(), Value::Object(Map::new()));
                }
            }
            _ => {
                map.insert(key.to_string(), Value::Object(Map::new()));
            }
        }
    }
    for (pe, below) in other.children() {
        if below.is_empty() {
            continue;
        }
        let key = key_of(pe, buf).to_string();
        let existed = map.contains_key(&key);
        let node = map.entry(key).or_insert_with(|| Value::Object(Map::new()));
        let Value::Object(node) = node else { continue };
        if existed && node.is_empty() {
            // A member with nothing below yet: mark it before adding children.
            node.insert(".".into(), Value::Object(Map::new()));
        }
        tree_union(node, below, buf);
    }
}

fn tree_intersection(map: &Map<String, Value>, other: &Set, buf: &mut String) -> Set {
    let mut out = Set::new();
    for pe in other.members() {
        if let Some(Value::Object(node)) = map.get(key_of(pe, buf))
            && is_member(node)
        {
            out.insert_member(pe.clone());
        }
    }
    for (pe, below) in other.children() {
        if let Some(Value::Object(node)) = map.get(key_of(pe, buf))
            && !node.is_empty()
        {
            let both = tree_intersection(node, below, buf);
            out.set_child(pe.clone(), both);
        }
    }
    out
}

/// Whether `map` is exactly the encoding of the set it decodes to (see the module docs).
pub(crate) fn canonical_node(map: &Map<String, Value>, root: bool) -> bool {
    let mut elements = 0;
    for (key, value) in map {
        let Value::Object(child) = value else {
            return false;
        };
        if key == "." {
            if root || !child.is_empty() {
                return false;
            }
            continue;
        }
        if !canonical_key(key) || !canonical_node(child, false) {
            return false;
        }
        elements += 1;
    }
    // A lone "." decodes to a member with nothing below, written `{}`.
    elements > 0 || map.is_empty()
}

/// Whether `key` parses as a known element and is spelled as that element writes itself.
/// Conservative: anything unusual (escapes, floats, nested values) is not canonical, so
/// it is decoded instead.
pub(crate) fn canonical_key(key: &str) -> bool {
    let b = key.as_bytes();
    if b.len() < 2 || b[1] != b':' {
        return false;
    }
    let rest = &b[2..];
    match b[0] {
        b'f' => true,
        b'v' => scalar(rest, 0) == Some(rest.len()),
        b'k' => key_object(rest),
        b'i' => {
            let text = &key[2..];
            text.parse::<u64>().is_ok_and(|i| i.to_string() == text)
        }
        _ => false,
    }
}

/// `{"a":<scalar>,"b":<scalar>}` with field names in strictly increasing order.
fn key_object(b: &[u8]) -> bool {
    if b.first() != Some(&b'{') {
        return false;
    }
    let mut at = 1;
    if b.get(at) == Some(&b'}') {
        return at + 1 == b.len();
    }
    let mut previous: Option<&[u8]> = None;
    loop {
        let Some(end) = string(b, at) else {
            return false;
        };
        let name = &b[at + 1..end - 1];
        if previous.is_some_and(|p| p >= name) {
            return false;
        }
        previous = Some(name);
        if b.get(end) != Some(&b':') {
            return false;
        }
        let Some(next) = scalar(b, end + 1) else {
            return false;
        };
        match b.get(next) {
            Some(b',') => at = next + 1,
            Some(b'}') => return next + 1 == b.len(),
            _ => return false,
        }
    }
}

/// The end of a canonical scalar starting at `at`: a string without escapes, an integer
/// serde_json writes the same way back, `true`, `false` or `null`.
fn scalar(b: &[u8], at: usize) -> Option<usize> {
    match b.get(at)? {
        b'"' => string(b, at),
        b't' => literal(b, at, b"true"),
        b'f' => literal(b, at, b"false"),
        b'n' => literal(b, at, b"null"),
        b'-' | b'0'..=b'9' => {
            let digits_at = if b[at] == b'-' { at + 1 } else { at };
            let len = b[digits_at..]
                .iter()
                .take_while(|c| c.is_ascii_digit())
                .count();
            let end = digits_at + len;
            let leading_zero = b.get(digits_at) == Some(&b'0') && (len > 1 || digits_at > at);
            // Floats, exponents and numbers that may not fit an i64 are left to decoding.
            let fraction = matches!(b.get(end), Some(b'.' | b'e' | b'E'));
            (len > 0 && len <= 18 && !leading_zero && !fraction).then_some(end)
        }
        _ => None,
    }
}

fn literal(b: &[u8], at: usize, word: &[u8]) -> Option<usize> {
    b[at..].starts_with(word).then_some(at + word.len())
}

/// The end (after the closing quote) of a string without escapes or control characters.
fn string(b: &[u8], at: usize) -> Option<usize> {
    if b.get(at) != Some(&b'"') {
        return None;
    }
    for (i, &c) in b[at + 1..].iter().enumerate() {
        match c {
            b'"' => return Some(at + 1 + i + 1),
            b'\\' => return None,
            c if c < 0x20 => return None,
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::set::testing::{f, set_of};
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_keys() {
        for good in [
            "f:spec",
            "f:",
            "f:a:b",
            r#"k:{"name":"app"}"#,
            r#"k:{"containerPort":80,"protocol":"TCP"}"#,
            r#"k:{"a":-5,"b":true,"c":null}"#,
            "k:{}",
            r#"v:"x""#,
            "v:0",
            "v:false",
            "i:0",
            "i:12",
        ] {
            assert!(canonical_key(good), "{good}");
            let pe = PathElement::from_key(good).unwrap().unwrap();
            assert_eq!(pe.to_key(), good);
        }
        for bad in [
            "",
            "f",
            "ff:x",
            "z:x",
            r#"k:{"name": "app"}"#,
            r#"k:{"b":1,"a":2}"#,
            r#"k:{"a":1,"a":2}"#,
            r#"k:{"a":1.0}"#,
            r#"k:{"a":"\"q"}"#,
            r#"k:{"a":{"b":1}}"#,
            r#"k:{"a":1}x"#,
            "v:01",
            "v:-0",
            "v:1e3",
            "v:12345678901234567890",
            "v:",
            "i:01",
            "i:-1",
            "i:",
        ] {
            assert!(!canonical_key(bad), "{bad}");
        }
    }

    #[test]
    fn canonical_trees() {
        let good = json!({"f:a": {}, "f:b": {".": {}, "f:c": {}}, "f:d": {"f:e": {}}});
        let Value::Object(m) = &good else { panic!() };
        assert!(canonical_node(m, true));
        for bad in [
            json!({".": {}}),
            json!({"f:a": {".": {}}}),
            json!({"f:a": {".": {"x": {}}, "f:b": {}}}),
            json!({"f:a": 1}),
            json!({"f:a": {"z:b": {}}}),
        ] {
            let Value::Object(m) = &bad else { panic!() };
            assert!(!canonical_node(m, true), "{bad}");
            // Decoding normalizes it, so it is kept as a set.
            assert!(matches!(
                Fields::read(Some(bad.clone())),
                Ok(Fields::Set(_)) | Err(_)
            ));
        }
    }

    #[test]
    fn tree_operations_match_set_operations() {
        let base = set_of(&[
            &[f("a")],
            &[f("a"), f("b")],
            &[f("a"), f("c"), f("d")],
            &[f("e")],
            &[f("g"), f("h")],
        ]);
        let others = [
            set_of(&[&[f("a")]]),
            set_of(&[&[f("a"), f("b")]]),
            set_of(&[&[f("a"), f("b")], &[f("a"), f("c"), f("d")]]),
            set_of(&[&[f("e")], &[f("e"), f("x")], &[f("g"), f("h")]]),
            set_of(&[&[f("g")], &[f("n"), f("m")], &[f("a"), f("c")]]),
            Set::new(),
        ];
        for other in &others {
            let tree = || Fields::read(Some(base.to_fields_v1())).unwrap();
            assert!(matches!(tree(), Fields::Tree(_)));
            let mut t = tree();
            t.remove(other);
            assert_eq!(
                t.into_value(),
                base.difference(other).to_fields_v1(),
                "{other:?}"
            );
            let mut t = tree();
            t.union_with(other);
            assert_eq!(
                t.into_value(),
                base.union(other).to_fields_v1(),
                "{other:?}"
            );
            assert_eq!(tree().intersection(other), base.intersection(other));
        }
    }
}
