//! JSON Patch (RFC 6902, `application/json-patch+json`) and JSON Merge Patch (RFC 7396,
//! `application/merge-patch+json`), with the apiserver's error classes: a body that cannot
//! be decoded is 400 BadRequest, a decoded patch that cannot be applied is 422 Invalid.

use json_patch::{PatchErrorKind, PatchOperation};
use serde_json::{Map, Value};

use super::error::{PatchError, json_kind};

/// Upstream's cap on operations in one JSON patch (`maxJSONPatchOperations`).
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;

/// Applies a JSON Patch document to `target`.
pub fn apply_json_patch(target: &Value, body: &[u8]) -> Result<Value, PatchError> {
    let ops = decode_json_patch(body)?;
    let mut doc = target.clone();
    // On error the half-patched copy is dropped, so the unchecked variant is safe here and
    // avoids the crate's undo path (which can only fail by panicking).
    json_patch::patch_unsafe(&mut doc, &ops).map_err(|e| {
        let op = ops.get(e.operation);
        PatchError::Unprocessable(describe_failure(op, &e.kind))
    })?;
    Ok(doc)
}

/// Decodes a JSON Patch body into operations.
///
/// A body that is not an array of objects is a 400 (it cannot be decoded at all); an
/// operation that decodes as an object but is not a valid operation (unknown `op`, missing
/// `path` or `value`) is a 422, as upstream only notices those while applying.
pub fn decode_json_patch(body: &[u8]) -> Result<Vec<PatchOperation>, PatchError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| PatchError::BadRequest(e.to_string()))?;
    let Value::Array(items) = value else {
        return Err(PatchError::BadRequest(format!(
            "json: cannot unmarshal {} into Go value of type jsonpatch.Patch",
            json_kind(&value)
        )));
    };
    if let Some(bad) = items.iter().find(|i| !i.is_object()) {
        return Err(PatchError::BadRequest(format!(
            "json: cannot unmarshal {} into Go value of type jsonpatch.Operation",
            json_kind(bad)
        )));
    }
    if items.len() > MAX_JSON_PATCH_OPERATIONS {
        return Err(PatchError::TooLarge(format!(
            "The allowed maximum operations in a JSON patch is {MAX_JSON_PATCH_OPERATIONS}, got {}",
            items.len()
        )));
    }
    items.into_iter().map(decode_operation).collect()
}

fn decode_operation(item: Value) -> Result<PatchOperation, PatchError> {
    let kind = item
        .get("op")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if !matches!(
        kind.as_str(),
        "add" | "remove" | "replace" | "move" | "copy" | "test"
    ) {
        return Err(PatchError::Unprocessable(format!(
            "Unexpected kind: {kind}"
        )));
    }
    serde_json::from_value(item)
        .map_err(|e| PatchError::Unprocessable(format!("invalid {kind} operation: {e}")))
}

/// Words close to upstream's (evanphx/json-patch) for a failed operation.
fn describe_failure(op: Option<&PatchOperation>, kind: &PatchErrorKind) -> String {
    let Some(op) = op else {
        return kind.to_string();
    };
    let path = op.path().as_str();
    match (op, kind) {
        (PatchOperation::Test(_), PatchErrorKind::TestFailed) => {
            format!("testing value {path} failed: test failed")
        }
        (PatchOperation::Test(_), _) => {
            format!("testing value {path} failed: doc is missing path: {path}: missing value")
        }
        (PatchOperation::Move(m), PatchErrorKind::InvalidFromPointer) => format!(
            "move operation does not apply: doc is missing from path: {}: missing value",
            m.from
        ),
        (PatchOperation::Copy(c), PatchErrorKind::InvalidFromPointer) => format!(
            "copy operation does not apply: doc is missing from path: {}: missing value",
            c.from
        ),
        (_, PatchErrorKind::CannotMoveInsideItself) => {
            format!("move operation does not apply: cannot move {path} into its own child")
        }
        (op, _) => format!(
            "{} operation does not apply: doc is missing path: \"{path}\": missing value",
            op_name(op)
        ),
    }
}

fn op_name(op: &PatchOperation) -> &'static str {
    match op {
        PatchOperation::Add(_) => "add",
        PatchOperation::Remove(_) => "remove",
        PatchOperation::Replace(_) => "replace",
        PatchOperation::Move(_) => "move",
        PatchOperation::Copy(_) => "copy",
        PatchOperation::Test(_) => "test",
    }
}

/// Applies a JSON Merge Patch document to `target`.
///
/// The body must be a JSON object: upstream decodes it into a map first (with kubectl's
/// default field validation), so an array or a string is a 400, as is `null`.
pub fn apply_merge_patch(target: &Value, body: &[u8]) -> Result<Value, PatchError> {
    let patch: Value = serde_json::from_slice(body)
        .map_err(|e| PatchError::BadRequest(format!("error decoding patch: {e}")))?;
    match &patch {
        Value::Object(_) => {}
        Value::Null => return Err(PatchError::BadRequest("Invalid JSON Patch".into())),
        other => {
            return Err(PatchError::BadRequest(format!(
                "error decoding patch: json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
                json_kind(other)
            )));
        }
    }
    Ok(merged_copy(target, patch))
}

/// RFC 7396 applied to a copy of `target`, copying only what the patch keeps: values the
/// patch replaces or deletes are never copied, and the patch's own values are moved in
/// (a merge patch often carries whole lists, which would otherwise be copied twice).
fn merged_copy(target: &Value, patch: Value) -> Value {
    let Value::Object(patch) = patch else {
        return patch;
    };
    let mut out: Map<String, Value> = match target {
        Value::Object(t) => t
            .iter()
            .filter(|(k, _)| !patch.contains_key(*k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        _ => Map::new(),
    };
    for (key, value) in patch {
        if value.is_null() {
            continue;
        }
        let merged = merged_copy(target.get(&key).unwrap_or(&Value::Null), value);
        out.insert(key, merged);
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "labels": {"app": "web", "tier": "fe"}},
            "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}
        })
    }

    fn jp(target: &Value, ops: Value) -> Result<Value, PatchError> {
        apply_json_patch(target, ops.to_string().as_bytes())
    }

    #[test]
    fn json_patch_operations() {
        let cases: Vec<(&str, Value, Value)> = vec![
            (
                "replace image",
                json!([{"op": "replace", "path": "/spec/containers/0/image", "value": "nginx:2"}]),
                json!("nginx:2"),
            ),
            (
                "add label then test it",
                json!([
                    {"op": "add", "path": "/metadata/labels/new", "value": "x"},
                    {"op": "test", "path": "/metadata/labels/new", "value": "x"}
                ]),
                json!("nginx:1"),
            ),
            (
                "append container with -",
                json!([{"op": "add", "path": "/spec/containers/-", "value": {"name": "d"}}]),
                json!("nginx:1"),
            ),
            (
                "copy and move",
                json!([
                    {"op": "copy", "from": "/metadata/labels/app", "path": "/metadata/labels/copy"},
                    {"op": "move", "from": "/metadata/labels/copy", "path": "/metadata/labels/moved"}
                ]),
                json!("nginx:1"),
            ),
        ];
        for (name, ops, image) in cases {
            let out = jp(&pod(), ops).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(out["spec"]["containers"][0]["image"], image, "{name}");
        }
        let out = jp(
            &pod(),
            json!([{"op": "remove", "path": "/metadata/labels/tier"}]),
        )
        .unwrap();
        assert_eq!(out["metadata"]["labels"], json!({"app": "web"}));
        let out = jp(
            &pod(),
            json!([{"op": "add", "path": "/spec/containers/-", "value": {"name": "d"}}]),
        )
        .unwrap();
        assert_eq!(out["spec"]["containers"][1], json!({"name": "d"}));
        let out = jp(
            &pod(),
            json!([
                {"op": "copy", "from": "/metadata/labels/app", "path": "/metadata/labels/copy"},
                {"op": "move", "from": "/metadata/labels/copy", "path": "/metadata/labels/moved"}
            ]),
        )
        .unwrap();
        assert_eq!(out["metadata"]["labels"]["moved"], "web");
        assert!(out["metadata"]["labels"].get("copy").is_none());
        assert_eq!(jp(&pod(), json!([])).unwrap(), pod());
    }

    #[test]
    fn json_patch_failures_are_422() {
        let cases = vec![
            (
                json!([{"op": "test", "path": "/metadata/name", "value": "other"}]),
                "testing value /metadata/name failed",
            ),
            (
                json!([{"op": "remove", "path": "/metadata/nope"}]),
                "remove operation does not apply",
            ),
            (
                json!([{"op": "replace", "path": "/spec/nope/x", "value": 1}]),
                "replace operation does not apply",
            ),
            (
                json!([{"op": "add", "path": "/a/b/c", "value": 1}]),
                "add operation does not apply",
            ),
            (
                json!([{"op": "move", "from": "/nope", "path": "/x"}]),
                "move operation does not apply: doc is missing from path: /nope",
            ),
            (json!([{"op": "foo", "path": "/x"}]), "Unexpected kind: foo"),
            (json!([{"path": "/x"}]), "Unexpected kind: "),
            (
                json!([{"op": "add", "path": "/x"}]),
                "invalid add operation",
            ),
            (json!([{"op": "remove"}]), "invalid remove operation"),
            (
                json!([{"op": "add", "path": "no-slash", "value": 1}]),
                "invalid add operation",
            ),
        ];
        for (ops, want) in cases {
            let err = jp(&pod(), ops.clone()).expect_err(&ops.to_string());
            assert!(
                matches!(err, PatchError::Unprocessable(_)),
                "{ops}: {err:?}"
            );
            assert!(err.to_string().contains(want), "{ops}: {err}");
        }
        // A failure leaves the caller's object untouched (we patch a copy).
        let target = pod();
        let _ = jp(
            &target,
            json!([
                {"op": "add", "path": "/metadata/labels/x", "value": "1"},
                {"op": "test", "path": "/metadata/name", "value": "no"}
            ]),
        );
        assert_eq!(target, pod());
    }

    #[test]
    fn json_patch_malformed_bodies_are_400() {
        for body in [
            &b"{not json"[..],
            b"{\"op\":\"add\"}",
            b"\"x\"",
            b"[1]",
            b"[[]]",
            b"",
        ] {
            let err = apply_json_patch(&pod(), body).expect_err("malformed");
            assert!(
                matches!(err, PatchError::BadRequest(_)),
                "{body:?}: {err:?}"
            );
        }
        let ops: Vec<Value> = (0..=MAX_JSON_PATCH_OPERATIONS)
            .map(|_| json!({"op": "test", "path": "/kind", "value": "Pod"}))
            .collect();
        let err = jp(&pod(), Value::Array(ops)).expect_err("too many");
        assert_eq!(err.status_code(), 413);
    }

    #[test]
    fn merge_patch() {
        let cases = vec![
            (
                json!({"metadata": {"labels": {"tier": null, "new": "y"}}}),
                json!({"app": "web", "new": "y"}),
            ),
            // Lists are replaced wholesale, nulls in new objects dropped.
            (
                json!({"metadata": {"labels": {"a": {"b": null}}}}),
                json!({"app": "web", "tier": "fe", "a": {}}),
            ),
            (json!({}), json!({"app": "web", "tier": "fe"})),
            (json!({"metadata": {"labels": null}}), Value::Null),
        ];
        for (patch, labels) in cases {
            let out = apply_merge_patch(&pod(), patch.to_string().as_bytes()).expect("merge");
            assert_eq!(out["metadata"]["labels"], labels, "{patch}");
        }
        let out = apply_merge_patch(&pod(), br#"{"spec":{"containers":[{"name":"z"}]}}"#).unwrap();
        assert_eq!(out["spec"]["containers"], json!([{"name": "z"}]));
    }

    #[test]
    fn merge_patch_matches_the_reference_merge() {
        let targets = [
            pod(),
            json!({"a": [1, {"b": null}], "c": {"d": {"e": 1}}, "f": "x"}),
            json!([1, 2]),
            json!("s"),
            json!(null),
        ];
        let patches = [
            json!({"a": {"x": null, "y": [null]}, "c": {"d": null, "g": {"h": null, "i": 2}}}),
            json!({"metadata": {"labels": {"app": null, "n": {"m": {}}}}, "spec": null}),
            json!({"f": {"g": 1}, "a": null, "z": null}),
            json!({}),
        ];
        for t in &targets {
            for p in &patches {
                let mut want = t.clone();
                json_patch::merge(&mut want, p);
                assert_eq!(merged_copy(t, p.clone()), want, "{t} + {p}");
            }
        }
    }

    #[test]
    fn merge_patch_bad_bodies_are_400() {
        for body in [&b"{"[..], b"[1,2]", b"\"s\"", b"3", b"null", b""] {
            let err = apply_merge_patch(&pod(), body).expect_err("bad");
            assert!(
                matches!(err, PatchError::BadRequest(_)),
                "{body:?}: {err:?}"
            );
        }
        let err = apply_merge_patch(&pod(), b"[1]").expect_err("array");
        assert!(err.to_string().contains("cannot unmarshal array"), "{err}");
    }
}
