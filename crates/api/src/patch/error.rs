//! Patch errors, classified the way the upstream apiserver answers them, and Go-style value
//! formatting so messages read like upstream's (`map: map[image:nginx] does not contain
//! declared merge key: name`).

use serde_json::Value;

/// Why a patch could not be applied. The variant decides the HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// 400 BadRequest: the body is malformed for its patch type (bad JSON or YAML, wrong
    /// shape, a directive in a form the server cannot read).
    #[error("{0}")]
    BadRequest(String),
    /// 422 Invalid without causes: a well-formed patch that cannot be applied to this object
    /// (a JSON-patch path missing, a `test` op failing, lists of lists). Upstream replaces
    /// the message with a generic one; see [`PatchError::status_message`].
    #[error("{0}")]
    Unprocessable(String),
    /// 422 Invalid with a cause on field `patch`: the patched document is not an object of
    /// the kind.
    #[error("{0}")]
    Invalid(String),
    /// 500 with an empty reason: upstream returns the strategic merge's own error unwrapped
    /// (a merge key missing, an unknown `$patch` value).
    #[error("{0}")]
    Internal(String),
    /// 413: more JSON-patch operations than the server accepts.
    #[error("{0}")]
    TooLarge(String),
    /// 415: the patch type is not served for this kind (strategic merge of a custom
    /// resource).
    #[error("{0}")]
    UnsupportedMediaType(String),
}

impl PatchError {
    /// HTTP status code of the error.
    pub fn status_code(&self) -> u16 {
        match self {
            PatchError::BadRequest(_) => 400,
            PatchError::Unprocessable(_) | PatchError::Invalid(_) => 422,
            PatchError::Internal(_) => 500,
            PatchError::TooLarge(_) => 413,
            PatchError::UnsupportedMediaType(_) => 415,
        }
    }

    /// `reason` of the metav1.Status (empty for the unwrapped 500s, as upstream).
    pub fn reason(&self) -> &'static str {
        match self {
            PatchError::BadRequest(_) => "BadRequest",
            PatchError::Unprocessable(_) | PatchError::Invalid(_) => "Invalid",
            PatchError::Internal(_) => "",
            PatchError::TooLarge(_) => "RequestEntityTooLarge",
            PatchError::UnsupportedMediaType(_) => "UnsupportedMediaType",
        }
    }

    /// The detail text (what upstream logs or puts in a cause).
    pub fn detail(&self) -> &str {
        match self {
            PatchError::BadRequest(m)
            | PatchError::Unprocessable(m)
            | PatchError::Invalid(m)
            | PatchError::Internal(m)
            | PatchError::TooLarge(m)
            | PatchError::UnsupportedMediaType(m) => m,
        }
    }

    /// `message` of the metav1.Status upstream would send.
    pub fn status_message(&self) -> String {
        match self {
            // NewGenericServerResponse(422, …) drops the server's text.
            PatchError::Unprocessable(_) => {
                "the server rejected our request due to an error in our request".to_string()
            }
            PatchError::Invalid(m) => format!(" \"\" is invalid: patch: Invalid value: {m}"),
            PatchError::TooLarge(m) => format!("Request entity too large: {m}"),
            other => other.detail().to_string(),
        }
    }
}

// Messages of k8s.io/apimachinery/pkg/util/mergepatch that clients may match on.
pub(crate) const NO_LIST_OF_LISTS: &str = "lists of lists are not supported";
pub(crate) const BAD_PRIMITIVE_LIST: &str = "invalid patch format of primitive list";
pub(crate) const BAD_RETAIN_KEYS: &str = "invalid patch format of retainKeys";
pub(crate) const BAD_SET_ELEMENT_ORDER: &str = "invalid patch format of setElementOrder list";

/// `map: map[…] does not contain declared merge key: k` (500 upstream).
pub(crate) fn no_merge_key(item: &Value, key: &str) -> PatchError {
    PatchError::Internal(format!(
        "map: {} does not contain declared merge key: {key}",
        go_fmt(item)
    ))
}

/// `unknown patch type: x in map: map[…]` (500 upstream).
pub(crate) fn bad_patch_type(directive: &Value, map: &Value) -> PatchError {
    PatchError::Internal(format!(
        "unknown patch type: {} in map: {}",
        go_fmt(directive),
        go_fmt(map)
    ))
}

/// Go's name for the dynamic type of a decoded JSON value, for "expected a …" messages.
pub(crate) fn go_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float64",
        Value::Number(_) => "int64",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

/// The JSON kind word encoding/json uses in "cannot unmarshal X into …".
pub(crate) fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Formats a value as Go's `%v` prints a decoded `interface{}`: `map[a:1 b:[x y]]`.
pub(crate) fn go_fmt(v: &Value) -> String {
    let mut out = String::new();
    write_go(v, &mut out);
    out
}

fn write_go(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("<nil>"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => out.push_str(s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                write_go(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            // Go prints map keys sorted; collect explicitly in case the map keeps
            // insertion order.
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push_str("map[");
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(k);
                out.push(':');
                if let Some(val) = map.get(k.as_str()) {
                    write_go(val, out);
                }
            }
            out.push(']');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn go_formatting() {
        let v = json!({"name": "a", "ports": [{"containerPort": 80}], "x": null, "b": true});
        assert_eq!(
            go_fmt(&v),
            "map[b:true name:a ports:[map[containerPort:80]] x:<nil>]"
        );
        assert_eq!(
            no_merge_key(&json!({"image": "nginx"}), "name").to_string(),
            "map: map[image:nginx] does not contain declared merge key: name"
        );
    }

    #[test]
    fn status_mapping() {
        let e = PatchError::Unprocessable("testing value /a failed".into());
        assert_eq!((e.status_code(), e.reason()), (422, "Invalid"));
        assert!(e.status_message().starts_with("the server rejected"));
        assert_eq!(e.detail(), "testing value /a failed");
        let e = PatchError::BadRequest("bad".into());
        assert_eq!(
            (e.status_code(), e.reason(), e.status_message()),
            (400, "BadRequest", "bad".into())
        );
        let e = PatchError::Internal("x".into());
        assert_eq!((e.status_code(), e.reason()), (500, ""));
        assert_eq!(PatchError::TooLarge("n".into()).status_code(), 413);
        assert_eq!(
            PatchError::UnsupportedMediaType("n".into()).status_code(),
            415
        );
        assert_eq!(PatchError::Invalid("n".into()).status_code(), 422);
    }

    #[test]
    fn type_names() {
        assert_eq!(go_type(&json!([])), "[]interface {}");
        assert_eq!(go_type(&json!(1.5)), "float64");
        assert_eq!(json_kind(&json!("s")), "string");
    }
}
