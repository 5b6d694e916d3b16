//! Moving from client-side apply (`kubectl apply`, which owns fields as the
//! `kubectl-client-side-apply` *Update* manager and records the
//! `kubectl.kubernetes.io/last-applied-configuration` annotation) to server-side apply:
//!
//! - when the `kubectl` manager applies, conflicts on fields whose live value is still
//!   what the annotation recorded are not conflicts (the user is changing their own
//!   configuration), and the annotation is kept in step with the applied configuration;
//! - [`upgrade_managed_fields`] is client-go's `csaupgrade`: it folds client-side-apply
//!   entries into the server-side applier's entry. kubectl sends the result itself as a
//!   JSON patch of `metadata.managedFields` after its first server-side apply, and
//!   [`super::record_update`] honours managed fields a write sets.

use serde_json::Value;

use super::schema::Ty;
use super::set::Set;
use super::walk::{compare, field_set, validate};

/// The annotation client-side apply records its configuration in.
pub const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The manager name `kubectl apply --server-side` uses by default; only it gets the
/// client-side-apply allowances, as upstream.
pub(crate) const KUBECTL: &str = "kubectl";

/// Upstream's limit on the total size of an object's annotations.
const MAX_ANNOTATIONS_SIZE: usize = 256 * 1024;

fn annotation(obj: &Value) -> Option<&str> {
    obj.pointer("/metadata/annotations")?
        .get(LAST_APPLIED_ANNOTATION)?
        .as_str()
        .filter(|s| !s.is_empty())
}

/// Fields of the live object's last-applied configuration whose live values still match
/// it: conflicts on these are allowed for `kubectl`. `None` when there is no usable
/// annotation (absent, unparsable, another version).
pub(crate) fn allowed_conflicts(live: &Value, ty: Ty, api_version: &str) -> Option<Set> {
    let last: Value = serde_json::from_str(annotation(live)?).ok()?;
    if !last.is_object() || last.get("apiVersion").and_then(Value::as_str) != Some(api_version) {
        return None;
    }
    if !validate(&last, ty).is_empty() {
        return None;
    }
    let set = field_set(&last, ty);
    let cmp = compare(&last, live, ty);
    Some(
        set.difference(&cmp.modified)
            .difference(&cmp.added)
            .difference(&cmp.removed),
    )
}

/// After a successful apply by `kubectl`, rewrites an existing last-applied annotation
/// to the applied configuration (without the annotation itself), so a later client-side
/// apply computes its patch from what was applied last.
pub(crate) fn sync_annotation(result: &mut Value, config: &Value) {
    if annotation(result).is_none() {
        return;
    }
    let mut recorded = config.clone();
    if let Some(Value::Object(annotations)) = recorded.pointer_mut("/metadata/annotations") {
        annotations.remove(LAST_APPLIED_ANNOTATION);
    }
    // Serializing a `Value` cannot fail; the encoder upstream ends the text with a newline.
    let Ok(text) = serde_json::to_string(&recorded) else {
        return;
    };
    let Some(Value::Object(annotations)) = result.pointer_mut("/metadata/annotations") else {
        return;
    };
    annotations.insert(LAST_APPLIED_ANNOTATION.into(), Value::String(text + "\n"));
    let size: usize = annotations
        .iter()
        .map(|(k, v)| k.len() + v.as_str().map_or(0, str::len))
        .sum();
    if size > MAX_ANNOTATIONS_SIZE {
        annotations.remove(LAST_APPLIED_ANNOTATION);
    }
}

fn entry_is(entry: &Value, manager: &str, operation: &str) -> bool {
    entry.get("manager").and_then(Value::as_str) == Some(manager)
        && entry.get("operation").and_then(Value::as_str) == Some(operation)
        && entry
            .get("subresource")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
}

fn entry_set(entry: &Value) -> Result<Set, String> {
    match entry.get("fieldsV1") {
        None | Some(Value::Null) => Ok(Set::new()),
        Some(fields) => Set::from_fields_v1(fields),
    }
}

/// client-go's `csaupgrade.UpgradeManagedFields`: for each name in `csa_managers`, the
/// fields its `Update` entry (of the same API version) owns move to `ssa_manager`'s
/// `Apply` entry — which is made from the newest such `Update` entry if there is none —
/// and its `Update` entries go. Returns the new `managedFields`, or `None` when nothing
/// changes.
pub fn upgrade_managed_fields(
    managed_fields: &Value,
    csa_managers: &[&str],
    ssa_manager: &str,
) -> Result<Option<Value>, String> {
    let Value::Array(original) = managed_fields else {
        return Ok(None);
    };
    let mut entries = original.clone();
    for csa in csa_managers {
        let target = match entries
            .iter()
            .position(|e| entry_is(e, ssa_manager, "Apply"))
        {
            Some(i) => i,
            None => {
                let Some(i) = entries.iter().position(|e| entry_is(e, csa, "Update")) else {
                    continue;
                };
                if let Value::Object(e) = &mut entries[i] {
                    e.insert("operation".into(), Value::String("Apply".into()));
                    e.insert("manager".into(), Value::String(ssa_manager.into()));
                }
                i
            }
        };
        let version = entries[target].get("apiVersion").cloned();
        let mut combined = entry_set(&entries[target])?;
        if let Some(csa_entry) = entries
            .iter()
            .find(|e| entry_is(e, csa, "Update") && e.get("apiVersion") == version.as_ref())
        {
            combined.union_with(&entry_set(csa_entry)?);
        }
        if let Value::Object(e) = &mut entries[target] {
            e.insert("fieldsV1".into(), combined.to_fields_v1());
        }
        entries.retain(|e| !entry_is(e, csa, "Update"));
    }
    if entries == *original {
        return Ok(None);
    }
    Ok(Some(Value::Array(entries)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn upgrade_folds_client_side_apply_into_the_applier() {
        let entries = json!([
            {"manager": "kubectl-client-side-apply", "operation": "Update", "apiVersion": "apps/v1",
             "time": "2024-01-01T00:00:00Z", "fieldsType": "FieldsV1",
             "fieldsV1": {"f:spec": {"f:replicas": {}}}},
            {"manager": "other", "operation": "Update", "apiVersion": "apps/v1",
             "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:paused": {}}}}
        ]);
        let out = upgrade_managed_fields(&entries, &["kubectl-client-side-apply"], "kubectl")
            .unwrap()
            .unwrap();
        assert_eq!(out.as_array().map(Vec::len), Some(2));
        assert_eq!(out[0]["manager"], "kubectl");
        assert_eq!(out[0]["operation"], "Apply");
        assert_eq!(out[0]["fieldsV1"], json!({"f:spec": {"f:replicas": {}}}));

        // With an existing applier entry, the fields are unioned into it.
        let entries = json!([
            {"manager": "kubectl", "operation": "Apply", "apiVersion": "apps/v1",
             "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:paused": {}}}},
            {"manager": "kubectl-client-side-apply", "operation": "Update", "apiVersion": "apps/v1",
             "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}}}
        ]);
        let out = upgrade_managed_fields(&entries, &["kubectl-client-side-apply"], "kubectl")
            .unwrap()
            .unwrap();
        assert_eq!(
            out,
            json!([{"manager": "kubectl", "operation": "Apply", "apiVersion": "apps/v1",
                    "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:paused": {}, "f:replicas": {}}}}])
        );
        // Nothing to do twice.
        assert_eq!(
            upgrade_managed_fields(&out, &["kubectl-client-side-apply"], "kubectl").unwrap(),
            None
        );
        assert_eq!(
            upgrade_managed_fields(&json!(null), &["x"], "y").unwrap(),
            None
        );
        let bad = json!([{"manager": "x", "operation": "Update", "fieldsV1": {"q": 1}}]);
        assert!(upgrade_managed_fields(&bad, &["x"], "y").is_err());
    }

    #[test]
    fn annotation_sync() {
        let mut result =
            json!({"metadata": {"annotations": {LAST_APPLIED_ANNOTATION: "{}", "a": "b"}}});
        let config = json!({"apiVersion": "v1", "kind": "ConfigMap",
                            "metadata": {"annotations": {LAST_APPLIED_ANNOTATION: "old"}}, "data": {"k": "v"}});
        sync_annotation(&mut result, &config);
        let text = result["metadata"]["annotations"][LAST_APPLIED_ANNOTATION]
            .as_str()
            .unwrap();
        assert!(text.ends_with("}\n"));
        let parsed: Value = serde_json::from_str(text).unwrap();
        assert_eq!(
            parsed,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"annotations": {}}, "data": {"k": "v"}})
        );
        // No annotation: nothing is added.
        let mut bare = json!({"metadata": {}});
        sync_annotation(&mut bare, &config);
        assert_eq!(bare, json!({"metadata": {}}));
    }
}
