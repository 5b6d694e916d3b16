//! Constructors for [`FieldError`] that render messages exactly like upstream's
//! `field.Error.ErrorBody()` (apimachinery `util/validation/field`), so 422 causes read the
//! same as a real API server's.

use std::fmt;

use serde_json::Value;

use super::FieldError;

/// A value shown after `Invalid value:` — formatted like Go's `%v`/`%q` would for the
/// value upstream passes (strings quoted, numbers and booleans bare).
pub trait BadValue {
    fn render(&self) -> String;
}

impl BadValue for str {
    fn render(&self) -> String {
        go_quote(self)
    }
}

impl BadValue for &str {
    fn render(&self) -> String {
        go_quote(self)
    }
}

impl BadValue for String {
    fn render(&self) -> String {
        go_quote(self)
    }
}

impl BadValue for i64 {
    fn render(&self) -> String {
        self.to_string()
    }
}

impl BadValue for i32 {
    fn render(&self) -> String {
        self.to_string()
    }
}

impl BadValue for u64 {
    fn render(&self) -> String {
        self.to_string()
    }
}

impl BadValue for bool {
    fn render(&self) -> String {
        self.to_string()
    }
}

impl BadValue for Value {
    fn render(&self) -> String {
        match self {
            Value::Null => "null".to_string(),
            Value::String(s) => go_quote(s),
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => n.to_string(),
            other => other.to_string(),
        }
    }
}

/// A value that is already rendered (e.g. a Go-syntax struct dump or an int-or-string,
/// which upstream prints through its `String()` method without quotes).
pub struct Raw<'a>(pub &'a str);

impl BadValue for Raw<'_> {
    fn render(&self) -> String {
        self.0.to_string()
    }
}

/// Go's `strconv.Quote`: double quotes, backslash escapes for quotes, backslashes and
/// control characters; printable Unicode is kept as is.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => {
                let v = c as u32;
                if v <= 0xffff {
                    out.push_str(&format!("\\u{v:04x}"));
                } else {
                    out.push_str(&format!("\\U{v:08x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `%#v` of a `map[string]string` (keys sorted), as upstream prints label maps.
pub fn go_string_map<'a>(entries: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut pairs: Vec<(&str, &str)> = entries.into_iter().collect();
    pairs.sort();
    let body: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}:{}", go_quote(k), go_quote(v)))
        .collect();
    format!("map[string]string{{{}}}", body.join(", "))
}

/// Go's `%#v` of a `[]string`.
pub fn go_string_slice<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    let body: Vec<String> = items.into_iter().map(go_quote).collect();
    format!("[]string{{{}}}", body.join(", "))
}

/// Go's `json.Marshal` of a string slice (`null` for an empty/nil one, HTML-safe
/// escapes), as upstream renders bad values that are lists (label selector values).
pub(crate) fn go_json_strings(values: &[String]) -> String {
    if values.is_empty() {
        return "null".to_string();
    }
    serde_json::to_string(values)
        .unwrap_or_default()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

impl FieldError {
    fn new(reason: &'static str, field: impl Into<String>, message: String) -> Self {
        FieldError {
            reason,
            field: field.into(),
            message,
        }
    }

    /// `Required value[: detail]`.
    pub fn required(field: impl Into<String>, detail: &str) -> Self {
        Self::new(
            "FieldValueRequired",
            field,
            with_detail("Required value", detail),
        )
    }

    /// `Invalid value: <value>[: detail]`.
    pub fn invalid<V: BadValue + ?Sized>(
        field: impl Into<String>,
        value: &V,
        detail: &str,
    ) -> Self {
        let head = format!("Invalid value: {}", value.render());
        Self::new("FieldValueInvalid", field, with_detail(&head, detail))
    }

    /// `Unsupported value: <value>: supported values: "A", "B"`.
    pub fn not_supported<V: BadValue + ?Sized>(
        field: impl Into<String>,
        value: &V,
        valid: &[&str],
    ) -> Self {
        let head = format!("Unsupported value: {}", value.render());
        let detail = if valid.is_empty() {
            String::new()
        } else {
            let quoted: Vec<String> = valid.iter().map(|v| go_quote(v)).collect();
            format!("supported values: {}", quoted.join(", "))
        };
        Self::new("FieldValueNotSupported", field, with_detail(&head, &detail))
    }

    /// `Duplicate value: <value>`.
    pub fn duplicate<V: BadValue + ?Sized>(field: impl Into<String>, value: &V) -> Self {
        Self::new(
            "FieldValueDuplicate",
            field,
            format!("Duplicate value: {}", value.render()),
        )
    }

    /// `Not found: <value>`.
    pub fn not_found<V: BadValue + ?Sized>(field: impl Into<String>, value: &V) -> Self {
        Self::new(
            "FieldValueNotFound",
            field,
            format!("Not found: {}", value.render()),
        )
    }

    /// `Forbidden[: detail]`.
    pub fn forbidden(field: impl Into<String>, detail: &str) -> Self {
        Self::new(
            "FieldValueForbidden",
            field,
            with_detail("Forbidden", detail),
        )
    }

    /// `Too long: may not be more than N bytes` (the value is never echoed).
    pub fn too_long(field: impl Into<String>, max_bytes: usize) -> Self {
        Self::new(
            "FieldValueTooLong",
            field,
            format!("Too long: may not be more than {max_bytes} bytes"),
        )
    }

    /// `Too many: <n>: must have at most N items`.
    pub fn too_many(field: impl Into<String>, actual: usize, max: usize) -> Self {
        Self::new(
            "FieldValueTooMany",
            field,
            format!("Too many: {actual}: must have at most {max} items"),
        )
    }

    /// A JSON value of the wrong type (upstream would fail decoding; we report the field).
    pub fn type_invalid(field: impl Into<String>, value: &Value, expected: &str) -> Self {
        Self::new(
            "FieldValueTypeInvalid",
            field,
            format!(
                "Invalid value: {}: must be of type {expected}",
                truncate_value(value)
            ),
        )
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

fn with_detail(head: &str, detail: &str) -> String {
    if detail.is_empty() {
        head.to_string()
    } else {
        format!("{head}: {detail}")
    }
}

/// Junk values can be huge; keep messages bounded.
fn truncate_value(v: &Value) -> String {
    let s = v.render();
    if s.len() > 256 {
        let mut cut = 256;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}...", &s[..cut])
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn messages_match_upstream_formats() {
        let cases: Vec<(FieldError, &str)> = vec![
            (FieldError::required("spec.x", ""), "Required value"),
            (
                FieldError::required("metadata.name", "name or generateName is required"),
                "Required value: name or generateName is required",
            ),
            (
                FieldError::invalid(
                    "spec.replicas",
                    &-1i64,
                    "must be greater than or equal to 0",
                ),
                "Invalid value: -1: must be greater than or equal to 0",
            ),
            (
                FieldError::invalid("metadata.name", "Foo", "bad"),
                "Invalid value: \"Foo\": bad",
            ),
            (
                FieldError::not_supported("spec.restartPolicy", "X", &["Always", "Never"]),
                "Unsupported value: \"X\": supported values: \"Always\", \"Never\"",
            ),
            (FieldError::duplicate("a", "b"), "Duplicate value: \"b\""),
            (FieldError::not_found("a", "vol"), "Not found: \"vol\""),
            (FieldError::forbidden("a", "nope"), "Forbidden: nope"),
            (
                FieldError::too_long("metadata.annotations", 262144),
                "Too long: may not be more than 262144 bytes",
            ),
            (
                FieldError::type_invalid("spec.replicas", &json!("3"), "integer"),
                "Invalid value: \"3\": must be of type integer",
            ),
        ];
        for (err, want) in cases {
            assert_eq!(err.message, want);
        }
    }

    #[test]
    fn go_quote_escapes() {
        assert_eq!(go_quote("a\"b\\c\n\u{1}é"), "\"a\\\"b\\\\c\\n\\x01é\"");
    }

    #[test]
    fn go_maps_and_slices() {
        assert_eq!(
            go_string_map([("b", "2"), ("a", "1")]),
            "map[string]string{\"a\":\"1\", \"b\":\"2\"}"
        );
        assert_eq!(go_string_slice(["x", "y"]), "[]string{\"x\", \"y\"}");
        assert_eq!(go_string_map([]), "map[string]string{}");
    }

    #[test]
    fn go_json_string_lists() {
        assert_eq!(go_json_strings(&[]), "null");
        assert_eq!(
            go_json_strings(&["a<".into(), "b".into()]),
            "[\"a\\u003c\",\"b\"]"
        );
    }

    #[test]
    fn huge_values_are_truncated() {
        let big = Value::String("x".repeat(10_000));
        let e = FieldError::type_invalid("f", &big, "integer");
        assert!(e.message.len() < 400);
    }
}
