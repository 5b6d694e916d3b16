//! ControllerRevision helpers shared by the StatefulSet and DaemonSet controllers (upstream's
//! `pkg/controller/history`): naming and hashing revisions, detecting equal revisions,
//! ordering them, and creating them with hash-collision avoidance.
//!
//! A revision's `data` is a strategic-merge patch that restores the owner's pod template
//! (`{"spec":{"template":{…,"$patch":"replace"}}}`), which is what `kubectl rollout undo`
//! applies.

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Label holding the hash of a ControllerRevision's data.
pub const CONTROLLER_REVISION_HASH_LABEL: &str = "controller.kubernetes.io/hash";

/// Upper bound on create attempts when names keep colliding (upstream loops forever; a bound
/// turns a pathological store into a retried error instead of a hot loop).
const MAX_COLLISIONS: usize = 100;

/// Errors from revision bookkeeping.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// An API request failed.
    #[error("controller revision request failed: {0}")]
    Api(#[from] kube::Error),
    /// The owner's template could not be encoded or a revision's data decoded.
    #[error("invalid revision data: {0}")]
    Data(#[from] serde_json::Error),
    /// Revision data lacks `spec.template`.
    #[error("revision {0} has no spec.template in its data")]
    NoTemplate(String),
    /// Too many name collisions in a row.
    #[error("gave up creating a revision for {0} after {MAX_COLLISIONS} name collisions")]
    Collisions(String),
}

/// Characters used by [`safe_encode_string`]: no vowels, no confusable digits, so a hash
/// never spells a word.
const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// Map each byte of `s` onto the safe alphabet (upstream's `rand.SafeEncodeString`).
pub fn safe_encode_string(s: &str) -> String {
    s.bytes()
        .map(|b| SAFE_ALPHABET[usize::from(b) % SAFE_ALPHABET.len()] as char)
        .collect()
}

const FNV_OFFSET: u32 = 0x811c_9dc5;
const FNV_PRIME: u32 = 0x0100_0193;

/// 32-bit FNV-1 (multiply, then xor), as Go's `fnv.New32`.
pub fn fnv1_32(chunks: &[&[u8]]) -> u32 {
    let mut h = FNV_OFFSET;
    for b in chunks.iter().flat_map(|c| c.iter()) {
        h = h.wrapping_mul(FNV_PRIME);
        h ^= u32::from(*b);
    }
    h
}

/// 32-bit FNV-1a (xor, then multiply), as Go's `fnv.New32a`.
pub fn fnv1a_32(chunks: &[&[u8]]) -> u32 {
    let mut h = FNV_OFFSET;
    for b in chunks.iter().flat_map(|c| c.iter()) {
        h ^= u32::from(*b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// Hash of a revision's data plus the collision probe (upstream `HashControllerRevision`).
pub fn hash_revision_data(data: &Value, probe: Option<i32>) -> String {
    let raw = serde_json::to_vec(data).unwrap_or_default();
    let probe = probe.map(|p| p.to_string()).unwrap_or_default();
    safe_encode_string(&fnv1_32(&[&raw, probe.as_bytes()]).to_string())
}

/// Hash of a pod template plus collision count (upstream `controller.ComputeHash`), used for
/// DaemonSet revision names and the `controller-revision-hash` pod label.
pub fn compute_template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let raw = serde_json::to_vec(template).unwrap_or_default();
    let mut extra = Vec::new();
    if let Some(c) = collision_count {
        // Upstream writes the count as 4 little-endian bytes into an 8-byte buffer.
        extra.extend_from_slice(&(c as u32).to_le_bytes());
        extra.extend_from_slice(&[0, 0, 0, 0]);
    }
    safe_encode_string(&fnv1a_32(&[&raw, &extra]).to_string())
}

/// `prefix-hash`, with the prefix cut so the name stays within 253 characters.
pub fn revision_name(prefix: &str, hash: &str) -> String {
    let mut cut = prefix.len().min(223);
    while !prefix.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}-{hash}", &prefix[..cut])
}

/// The patch that restores `template` (upstream `getPatch` for StatefulSet and DaemonSet).
pub fn template_patch(template: &PodTemplateSpec) -> Result<Value, HistoryError> {
    let mut t = serde_json::to_value(template)?;
    if let Value::Object(m) = &mut t {
        m.insert("$patch".into(), json!("replace"));
    }
    Ok(json!({ "spec": { "template": t } }))
}

/// The pod template a revision restores (the inverse of [`template_patch`]).
pub fn template_from_revision(rev: &ControllerRevision) -> Result<PodTemplateSpec, HistoryError> {
    let name = || rev.metadata.name.clone().unwrap_or_default();
    let mut t = rev
        .data
        .as_ref()
        .and_then(|d| d.0.get("spec"))
        .and_then(|s| s.get("template"))
        .cloned()
        .ok_or_else(|| HistoryError::NoTemplate(name()))?;
    if let Value::Object(m) = &mut t {
        m.remove("$patch");
    }
    Ok(serde_json::from_value(t)?)
}

/// A new (unsaved) revision of an owner: labels copied from the template, controller ref to
/// the owner, name `owner-hash` (upstream `NewControllerRevision`).
pub fn new_controller_revision(
    owner: &OwnerReference,
    namespace: &str,
    template_labels: Option<&BTreeMap<String, String>>,
    data: Value,
    revision: i64,
    collision_count: Option<i32>,
) -> ControllerRevision {
    let hash = hash_revision_data(&data, collision_count);
    let mut labels = template_labels.cloned().unwrap_or_default();
    labels.insert(CONTROLLER_REVISION_HASH_LABEL.into(), hash.clone());
    ControllerRevision {
        metadata: ObjectMeta {
            name: Some(revision_name(&owner.name, &hash)),
            namespace: Some(namespace.to_string()),
            labels: Some(labels),
            owner_references: Some(vec![owner.clone()]),
            ..Default::default()
        },
        data: Some(RawExtension(data)),
        revision,
    }
}

fn data_of(rev: &ControllerRevision) -> Option<&Value> {
    rev.data.as_ref().map(|d| &d.0)
}

/// Whether two revisions hold the same data (hash labels, when both parse, must agree too).
pub fn equal_revision(a: &ControllerRevision, b: &ControllerRevision) -> bool {
    let hash = |r: &ControllerRevision| {
        r.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(CONTROLLER_REVISION_HASH_LABEL))
            .cloned()
    };
    if let (Some(ha), Some(hb)) = (hash(a), hash(b))
        && ha != hb
    {
        return false;
    }
    data_of(a) == data_of(b)
}

/// Revisions equal to `needle`, in input order.
pub fn find_equal_revisions<'a>(
    revisions: &'a [ControllerRevision],
    needle: &ControllerRevision,
) -> Vec<&'a ControllerRevision> {
    revisions
        .iter()
        .filter(|r| equal_revision(r, needle))
        .collect()
}

/// Sort by revision number, ties broken by creation time then name (stable).
pub fn sort_revisions(revisions: &mut [ControllerRevision]) {
    revisions.sort_by(|a, b| {
        a.revision
            .cmp(&b.revision)
            .then_with(|| {
                let ts =
                    |r: &ControllerRevision| r.metadata.creation_timestamp.clone().map(|t| t.0);
                ts(a).cmp(&ts(b))
            })
            .then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
}

/// One more than the highest revision of a sorted list (1 for none).
pub fn next_revision(sorted: &[ControllerRevision]) -> i64 {
    sorted.last().map_or(1, |r| r.revision + 1)
}

/// Create `rev` named after the owner; on a name collision with different data, bump
/// `collision_count` and retry with the new hash (upstream `CreateControllerRevision`).
/// An existing revision with the same data is returned as is.
pub async fn create_controller_revision(
    api: &Api<ControllerRevision>,
    owner_name: &str,
    rev: &ControllerRevision,
    collision_count: &mut i32,
) -> Result<ControllerRevision, HistoryError> {
    let data = data_of(rev).cloned().unwrap_or(Value::Null);
    for _ in 0..MAX_COLLISIONS {
        let hash = hash_revision_data(&data, Some(*collision_count));
        let mut clone = rev.clone();
        let name = revision_name(owner_name, &hash);
        clone.metadata.name = Some(name.clone());
        clone
            .metadata
            .labels
            .get_or_insert_default()
            .insert(CONTROLLER_REVISION_HASH_LABEL.into(), hash);
        match api.create(&PostParams::default(), &clone).await {
            Ok(created) => return Ok(created),
            Err(kube::Error::Api(s)) if s.code == 409 && s.reason == "AlreadyExists" => {
                let existing = api.get(&name).await?;
                if data_of(&existing) == Some(&data) {
                    return Ok(existing);
                }
                *collision_count += 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(HistoryError::Collisions(owner_name.to_string()))
}

/// Set a revision's number (rollback to an earlier template re-numbers its revision).
pub async fn update_revision_number(
    api: &Api<ControllerRevision>,
    rev: &ControllerRevision,
    revision: i64,
) -> Result<ControllerRevision, HistoryError> {
    if rev.revision == revision {
        return Ok(rev.clone());
    }
    let name = rev.metadata.name.clone().unwrap_or_default();
    // A merge patch of one field cannot lose concurrent edits to others, so no retry loop.
    let patch = json!({ "revision": revision });
    Ok(api
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?)
}

/// Delete revisions, ignoring ones already gone.
pub async fn delete_revision(
    api: &Api<ControllerRevision>,
    rev: &ControllerRevision,
) -> Result<(), HistoryError> {
    let name = rev.metadata.name.clone().unwrap_or_default();
    match api.delete(&name, &Default::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner() -> OwnerReference {
        OwnerReference {
            api_version: "apps/v1".into(),
            kind: "StatefulSet".into(),
            name: "web".into(),
            uid: "u1".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }

    #[test]
    fn fnv_known_vectors() {
        // Reference values of the FNV spec for "a".
        assert_eq!(fnv1_32(&[b"a"]), 0x050c_5d7e);
        assert_eq!(fnv1a_32(&[b"a"]), 0xe40c_292c);
        assert_eq!(fnv1_32(&[b"fo", b"o"]), fnv1_32(&[b"foo"]));
    }

    #[test]
    fn safe_encoding_uses_the_alphabet() {
        let s = safe_encode_string("0123456789");
        assert_eq!(s.len(), 10);
        assert!(s.bytes().all(|b| SAFE_ALPHABET.contains(&b)));
        // '0' is byte 48 -> 48 % 27 = 21 -> '4'.
        assert!(s.starts_with('4'));
    }

    #[test]
    fn names_are_truncated_on_char_boundaries() {
        let long = "é".repeat(200);
        let n = revision_name(&long, "abc");
        assert!(n.len() <= 253);
        assert!(n.ends_with("-abc"));
        assert_eq!(revision_name("web", "x"), "web-x");
    }

    #[test]
    fn template_patch_round_trips() {
        let t: PodTemplateSpec = serde_json::from_value(json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "nginx"}]}
        }))
        .unwrap();
        let patch = template_patch(&t).unwrap();
        assert_eq!(patch["spec"]["template"]["$patch"], "replace");
        let rev = new_controller_revision(&owner(), "ns", None, patch, 1, Some(0));
        assert_eq!(template_from_revision(&rev).unwrap(), t);
        assert!(rev.metadata.name.as_deref().unwrap().starts_with("web-"));
    }

    #[test]
    fn equality_and_ordering() {
        let a = new_controller_revision(&owner(), "ns", None, json!({"a": 1}), 1, Some(0));
        let mut b = new_controller_revision(&owner(), "ns", None, json!({"a": 1}), 3, Some(0));
        let c = new_controller_revision(&owner(), "ns", None, json!({"a": 2}), 2, Some(0));
        assert!(equal_revision(&a, &b));
        assert!(!equal_revision(&a, &c));
        // A differing hash label means different, whatever the data.
        b.metadata
            .labels
            .as_mut()
            .unwrap()
            .insert(CONTROLLER_REVISION_HASH_LABEL.into(), "zzz".into());
        assert!(!equal_revision(&a, &b));
        let mut all = vec![b.clone(), c.clone(), a.clone()];
        sort_revisions(&mut all);
        assert_eq!(
            all.iter().map(|r| r.revision).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        assert_eq!(next_revision(&all), 4);
        assert_eq!(next_revision(&[]), 1);
        assert_eq!(find_equal_revisions(&all, &a).len(), 1);
    }

    #[test]
    fn probe_changes_the_hash() {
        let d = json!({"x": 1});
        assert_ne!(
            hash_revision_data(&d, Some(0)),
            hash_revision_data(&d, Some(1))
        );
        let t = PodTemplateSpec::default();
        assert_ne!(
            compute_template_hash(&t, None),
            compute_template_hash(&t, Some(1))
        );
    }
}
