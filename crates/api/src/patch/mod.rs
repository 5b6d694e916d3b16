//! The patch types the Kubernetes API server accepts, as pure functions over JSON values:
//!
//! - [`PatchType::Json`]: RFC 6902 JSON Patch ([`json::apply_json_patch`]);
//! - [`PatchType::Merge`]: RFC 7396 JSON Merge Patch ([`json::apply_merge_patch`]);
//! - [`PatchType::StrategicMerge`]: Kubernetes' strategic merge patch
//!   ([`strategic::strategic_merge`]), driven by per-field merge keys ([`MergeKeys`]);
//! - [`PatchType::Apply`]: server-side apply ([`apply::apply_configuration`]), for now a
//!   merge of the applied configuration without field ownership.
//!
//! Errors carry the HTTP class upstream answers with ([`PatchError`]). The merge keys of
//! built-in kinds come from [`merge_keys_for`], backed by [`patch_strategies`] — the table
//! the OpenAPI documents publish as `x-kubernetes-patch-*` extensions.

pub mod apply;
pub mod error;
pub mod json;
pub mod schema;
pub mod strategic;

use serde_json::Value;

/// The patch-strategy table shared with the OpenAPI documents.
pub use crate::openapi::{PatchStrategy, patch_strategies};
pub use apply::apply_configuration;
pub use error::PatchError;
pub use schema::{
    BuiltinMergeKeys, FieldStrategy, MergeKeys, NoMergeKeys, merge_keys_for, merge_keys_for_version,
};

/// A PATCH request's body format, from its Content-Type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PatchType {
    /// `application/json-patch+json`
    Json,
    /// `application/merge-patch+json`
    Merge,
    /// `application/strategic-merge-patch+json`
    StrategicMerge,
    /// `application/apply-patch+yaml`
    Apply,
}

impl PatchType {
    /// Every patch type, in the order upstream lists them as accepted.
    pub const ALL: [PatchType; 4] = [
        PatchType::Json,
        PatchType::Merge,
        PatchType::StrategicMerge,
        PatchType::Apply,
    ];

    /// The patch type of a Content-Type header value (parameters such as `charset` are
    /// ignored). `application/apply-patch+cbor` is not served and gives `None`.
    pub fn from_content_type(ct: &str) -> Option<PatchType> {
        let media = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match media.as_str() {
            "application/json-patch+json" => Some(PatchType::Json),
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/strategic-merge-patch+json" => Some(PatchType::StrategicMerge),
            "application/apply-patch+yaml" => Some(PatchType::Apply),
            _ => None,
        }
    }

    /// The media type of this patch type.
    pub fn content_type(self) -> &'static str {
        match self {
            PatchType::Json => "application/json-patch+json",
            PatchType::Merge => "application/merge-patch+json",
            PatchType::StrategicMerge => "application/strategic-merge-patch+json",
            PatchType::Apply => "application/apply-patch+yaml",
        }
    }
}

/// The 415 upstream answers for a patch type not served for a resource.
pub fn unsupported_patch_type(accepted: &[PatchType]) -> PatchError {
    let list: Vec<&str> = accepted.iter().map(|p| p.content_type()).collect();
    PatchError::UnsupportedMediaType(format!(
        "the body of the request was in an unknown format - accepted media types include: {}",
        list.join(", ")
    ))
}

/// Applies a PATCH body of type `kind` to the current object `target`.
///
/// `schema` gives strategic merge (and apply) the merge keys of the object's kind; for a
/// kind without patch metadata ([`MergeKeys::supports_strategic_merge`] false) a strategic
/// merge patch is refused with 415, as upstream refuses it for custom resources.
pub fn apply_patch(
    kind: PatchType,
    target: &Value,
    patch: &[u8],
    schema: &dyn MergeKeys,
) -> Result<Value, PatchError> {
    match kind {
        PatchType::Json => json::apply_json_patch(target, patch),
        PatchType::Merge => json::apply_merge_patch(target, patch),
        PatchType::StrategicMerge => {
            if !schema.supports_strategic_merge() {
                return Err(unsupported_patch_type(&[
                    PatchType::Json,
                    PatchType::Merge,
                    PatchType::Apply,
                ]));
            }
            let patch = strategic::decode_strategic_patch(patch)?;
            strategic::strategic_merge(target, &patch, schema)
        }
        PatchType::Apply => {
            let applied = apply::decode_apply_body(patch)?;
            apply_configuration(Some(target), &applied, schema)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn content_types() {
        let cases = [
            ("application/json-patch+json", Some(PatchType::Json)),
            ("application/merge-patch+json", Some(PatchType::Merge)),
            (
                "application/strategic-merge-patch+json",
                Some(PatchType::StrategicMerge),
            ),
            ("application/apply-patch+yaml", Some(PatchType::Apply)),
            (
                "Application/Merge-Patch+JSON; charset=utf-8",
                Some(PatchType::Merge),
            ),
            ("application/apply-patch+cbor", None),
            ("application/json", None),
            ("", None),
        ];
        for (ct, want) in cases {
            assert_eq!(PatchType::from_content_type(ct), want, "{ct}");
        }
        for p in PatchType::ALL {
            assert_eq!(PatchType::from_content_type(p.content_type()), Some(p));
        }
    }

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {
                "replicas": 1,
                "template": {"spec": {"containers": [
                    {"name": "app", "image": "app:1"},
                    {"name": "sidecar", "image": "proxy:1"}
                ]}}
            }
        })
    }

    #[test]
    fn every_patch_type_through_one_entry_point() {
        let keys = merge_keys_for("apps", "Deployment");
        let d = deployment();
        let out = apply_patch(
            PatchType::Json,
            &d,
            br#"[{"op":"replace","path":"/spec/replicas","value":3}]"#,
            &keys,
        )
        .unwrap();
        assert_eq!(out["spec"]["replicas"], 3);

        let out = apply_patch(PatchType::Merge, &d, br#"{"spec":{"replicas":2}}"#, &keys).unwrap();
        assert_eq!(out["spec"]["replicas"], 2);
        // Merge patch replaces lists…
        let body =
            br#"{"spec":{"template":{"spec":{"containers":[{"name":"app","image":"app:2"}]}}}}"#;
        let out = apply_patch(PatchType::Merge, &d, body, &keys).unwrap();
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"]
                .as_array()
                .map(Vec::len),
            Some(1)
        );
        // …strategic merge merges them by name.
        let out = apply_patch(PatchType::StrategicMerge, &d, body, &keys).unwrap();
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"],
            json!([{"name": "app", "image": "app:2"}, {"name": "sidecar", "image": "proxy:1"}])
        );
        let yaml = b"apiVersion: apps/v1\nkind: Deployment\nspec:\n  replicas: 5\n";
        let out = apply_patch(PatchType::Apply, &d, yaml, &keys).unwrap();
        assert_eq!(out["spec"]["replicas"], 5);
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"][1]["name"],
            "sidecar"
        );
    }

    #[test]
    fn strategic_merge_refused_for_unknown_kinds() {
        let keys = merge_keys_for("example.com", "Widget");
        let err = apply_patch(PatchType::StrategicMerge, &json!({}), b"{}", &keys).unwrap_err();
        assert_eq!(err.status_code(), 415);
        assert!(
            err.to_string().contains("application/merge-patch+json"),
            "{err}"
        );
        // The other types work on anything.
        let out = apply_patch(PatchType::Merge, &json!({"a": 1}), br#"{"b":2}"#, &keys).unwrap();
        assert_eq!(out, json!({"a": 1, "b": 2}));
    }

    #[test]
    fn malformed_bodies_are_bad_requests_for_every_type() {
        let keys = merge_keys_for("apps", "Deployment");
        for kind in PatchType::ALL {
            for body in [&b"{"[..], b"[", b"\x00\xff"] {
                let err = apply_patch(kind, &deployment(), body, &keys).unwrap_err();
                assert_eq!(err.status_code(), 400, "{kind:?} {body:?}: {err:?}");
            }
        }
        // Non-object bodies for the object-shaped types.
        for kind in [
            PatchType::Merge,
            PatchType::StrategicMerge,
            PatchType::Apply,
        ] {
            let err = apply_patch(kind, &deployment(), b"[1,2]", &keys).unwrap_err();
            assert_eq!(err.status_code(), 400, "{kind:?}: {err:?}");
        }
    }
}
