//! The namespace status conditions upstream maintains during deletion: one of each type,
//! `True` with a failure reason while the problem exists, `False` with an OK reason
//! otherwise.

use super::content::Outcome;
use k8s_openapi::api::core::v1::{Namespace, NamespaceCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{Patch, PatchParams};

/// The condition types, in upstream's order.
pub const TYPES: [&str; 5] = [
    "NamespaceDeletionDiscoveryFailure",
    "NamespaceDeletionGroupVersionParsingFailure",
    "NamespaceDeletionContentFailure",
    "NamespaceContentRemaining",
    "NamespaceFinalizersRemaining",
];

fn cond(type_: &str, failed: Option<(&str, String)>, ok: (&str, &str)) -> NamespaceCondition {
    let (status, reason, message) = match failed {
        Some((reason, message)) => ("True", reason.to_string(), message),
        None => ("False", ok.0.to_string(), ok.1.to_string()),
    };
    NamespaceCondition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: Some(reason),
        message: Some(message),
        last_transition_time: None,
    }
}

fn counts(map: &std::collections::BTreeMap<String, usize>) -> String {
    map.iter()
        .map(|(k, n)| format!("{k} has {n} resource instances"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The conditions describing `out`.
pub fn from_outcome(out: &Outcome) -> Vec<NamespaceCondition> {
    vec![
        cond(
            TYPES[0],
            out.discovery_failed
                .as_ref()
                .map(|e| ("DiscoveryFailed", format!("Discovery failed: {e}"))),
            (
                "ResourcesDiscovered",
                "All resources successfully discovered",
            ),
        ),
        cond(
            TYPES[1],
            None,
            (
                "ParsedGroupVersions",
                "All legacy kube types successfully parsed",
            ),
        ),
        cond(
            TYPES[2],
            (!out.delete_failures.is_empty()).then(|| {
                (
                    "ContentDeletionFailed",
                    format!(
                        "Failed to delete all resource types, {} remaining: {}",
                        out.delete_failures.len(),
                        out.delete_failures.join(", ")
                    ),
                )
            }),
            (
                "ContentDeleted",
                "All content successfully deleted, may be waiting on finalization",
            ),
        ),
        cond(
            TYPES[3],
            (!out.remaining.is_empty()).then(|| {
                (
                    "SomeResourcesRemain",
                    format!("Some resources are remaining: {}", counts(&out.remaining)),
                )
            }),
            ("ContentRemoved", "All content successfully removed"),
        ),
        cond(
            TYPES[4],
            (!out.finalizers_remaining.is_empty()).then(|| {
                (
                    "SomeFinalizersRemain",
                    format!(
                        "Some content in the namespace has finalizers remaining: {}",
                        out.finalizers_remaining
                            .iter()
                            .map(|(f, n)| format!("{f} in {n} resource instances"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            }),
            (
                "ContentHasNoFinalizers",
                "All content-preserving finalizers finished",
            ),
        ),
    ]
}

/// Merge `wanted` into the namespace's conditions (keeping transition times of conditions
/// whose status did not change; other condition types untouched).
pub fn merge(
    existing: &[NamespaceCondition],
    wanted: Vec<NamespaceCondition>,
) -> Vec<NamespaceCondition> {
    let now = Time(Timestamp::now());
    let mut result: Vec<NamespaceCondition> = existing
        .iter()
        .filter(|c| !TYPES.contains(&c.type_.as_str()))
        .cloned()
        .collect();
    for mut c in wanted {
        let prev = existing.iter().find(|e| e.type_ == c.type_);
        c.last_transition_time = match prev {
            Some(p) if p.status == c.status => p.last_transition_time.clone().or(Some(now.clone())),
            _ => Some(now.clone()),
        };
        result.push(c);
    }
    result
}

fn same(a: &[NamespaceCondition], b: &[NamespaceCondition]) -> bool {
    a.len() == b.len()
        && a.iter().all(|x| {
            b.iter().any(|y| {
                x.type_ == y.type_
                    && x.status == y.status
                    && x.reason == y.reason
                    && x.message == y.message
            })
        })
}

/// Write the conditions if they changed.
pub async fn update(
    api: &Api<Namespace>,
    ns: &Namespace,
    wanted: Vec<NamespaceCondition>,
) -> Result<(), kube::Error> {
    let existing = ns
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let merged = merge(&existing, wanted);
    if same(&existing, &merged) {
        return Ok(());
    }
    let name = ns.metadata.name.clone().unwrap_or_default();
    let patch = serde_json::json!({"status": {"conditions": merged}});
    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ok_outcome_gives_five_false_conditions() {
        let conds = from_outcome(&Outcome::default());
        assert_eq!(conds.len(), 5);
        assert!(conds.iter().all(|c| c.status == "False"));
        let merged = merge(&[], conds.clone());
        assert!(merged.iter().all(|c| c.last_transition_time.is_some()));
        assert!(same(&merged, &merge(&merged, conds)));
    }

    #[test]
    fn remaining_content_is_reported() {
        let mut out = Outcome::default();
        out.remaining.insert("pods".into(), 2);
        out.finalizers_remaining.insert("example.com/x".into(), 1);
        let conds = from_outcome(&out);
        let rem = conds
            .iter()
            .find(|c| c.type_ == TYPES[3])
            .map(|c| c.status.as_str());
        assert_eq!(rem, Some("True"));
        let fin = conds.iter().find(|c| c.type_ == TYPES[4]);
        assert_eq!(
            fin.and_then(|c| c.reason.as_deref()),
            Some("SomeFinalizersRemain")
        );
    }
}
