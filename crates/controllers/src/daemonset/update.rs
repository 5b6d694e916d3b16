//! DaemonSet rolling updates (upstream `rollingUpdate`). Without surge, old pods are deleted
//! while at most `maxUnavailable` nodes lack an available pod, and the core loop creates the
//! replacements. With `maxSurge`, a new pod is started beside each old one (at most
//! `maxSurge` at a time, or at once where the old pod is unavailable) and the old pod is
//! deleted once the new one is available.

use super::Controller;
use super::manage::{NodePods, is_pod_updated, template_generation};
use super::predicates::node_should_run;
use crate::util::error::{Error, Result};
use crate::util::podutil::{is_pod_available, is_terminating};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use std::sync::Arc;

fn rolling(ds: &DaemonSet) -> Option<&k8s_openapi::api::apps::v1::RollingUpdateDaemonSet> {
    let us = ds.spec.as_ref()?.update_strategy.as_ref()?;
    if us.type_.as_deref().unwrap_or("RollingUpdate") != "RollingUpdate" {
        return None;
    }
    us.rolling_update.as_ref()
}

/// Scale an int-or-percent against `total`, rounding percentages up.
fn scaled(v: Option<&IntOrString>, total: i64) -> Result<i64> {
    match v {
        None => Ok(0),
        Some(IntOrString::Int(i)) => Ok(i64::from(*i)),
        Some(IntOrString::String(s)) => {
            let p: i64 = s
                .strip_suffix('%')
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| Error::Invalid(format!("invalid value for IntOrString: {s:?}")))?;
            Ok((p * total + 99) / 100)
        }
    }
}

/// Pods allowed beyond one per node during an update.
pub(super) fn surge_count(ds: &DaemonSet, total: i64) -> Result<i64> {
    scaled(rolling(ds).and_then(|r| r.max_surge.as_ref()), total)
}

/// Nodes allowed to lack an available pod during an update.
pub(super) fn unavailable_count(ds: &DaemonSet, total: i64) -> Result<i64> {
    scaled(rolling(ds).and_then(|r| r.max_unavailable.as_ref()), total)
}

/// Whether more than one pod per node is allowed during an update.
pub(super) fn allows_surge(ds: &DaemonSet) -> bool {
    surge_count(ds, 1).is_ok_and(|n| n > 0)
}

/// A node's non-terminating `(new, old)` daemon pods.
type NewAndOld<'a> = (Option<&'a Arc<Pod>>, Option<&'a Arc<Pod>>);

/// The node's non-terminating new and old pod, or `None` if it has more than one of either
/// (the core loop cleans those up first).
fn updated_pods_on_node<'a>(
    ds: &DaemonSet,
    pods: &'a [Arc<Pod>],
    hash: &str,
) -> Option<NewAndOld<'a>> {
    let generation = template_generation(ds);
    let (mut new, mut old) = (None, None);
    for p in pods.iter().filter(|p| !is_terminating(p)) {
        let slot = if is_pod_updated(p, hash, generation) {
            &mut new
        } else {
            &mut old
        };
        if slot.is_some() {
            return None;
        }
        *slot = Some(p);
    }
    Some((new, old))
}

impl Controller {
    /// `(maxSurge, maxUnavailable)` for the nodes that should run the DaemonSet, adding an
    /// empty entry to `node_pods` for each such node without pods.
    fn desired_counts(
        &self,
        ds: &DaemonSet,
        nodes: &[Arc<Node>],
        node_pods: &mut NodePods,
    ) -> Result<(i64, i64, i64)> {
        let mut desired = 0;
        for n in nodes {
            if !node_should_run(n, ds).0 {
                continue;
            }
            desired += 1;
            node_pods.entry(n.name_any()).or_default();
        }
        let mut max_unavailable = unavailable_count(ds, desired)?;
        let max_surge = surge_count(ds, desired)?;
        // An impossible configuration (both zero) falls back to one unavailable, as upstream.
        if desired > 0 && max_unavailable == 0 && max_surge == 0 {
            max_unavailable = 1;
        }
        Ok((max_surge, max_unavailable, desired))
    }

    /// One step of a rolling update towards `hash`.
    pub(super) async fn rolling_update(
        &self,
        ds: &DaemonSet,
        nodes: &[Arc<Node>],
        hash: &str,
    ) -> Result<()> {
        let mut node_pods = self.nodes_to_daemon_pods(ds, false).await?;
        let (max_surge, max_unavailable, desired) =
            self.desired_counts(ds, nodes, &mut node_pods)?;
        let min_ready = ds
            .spec
            .as_ref()
            .and_then(|s| s.min_ready_seconds)
            .unwrap_or(0);
        let now = Timestamp::now();
        let available = |p: &Pod| is_pod_available(p, min_ready, now);

        if max_surge == 0 {
            let mut unavailable = 0;
            let mut replace_now = Vec::new();
            let mut candidates = Vec::new();
            for pods in node_pods.values() {
                let Some((new, old)) = updated_pods_on_node(ds, pods, hash) else {
                    unavailable += 1;
                    continue;
                };
                match (new, old) {
                    (None, None) | (Some(_), Some(_)) => unavailable += 1,
                    (Some(new), None) => {
                        if !available(new) {
                            unavailable += 1;
                        }
                    }
                    (None, Some(old)) => {
                        if !available(old) {
                            replace_now.push(old.name_any());
                            unavailable += 1;
                        } else if unavailable < max_unavailable {
                            candidates.push(old.name_any());
                        }
                    }
                }
            }
            let room = usize::try_from((max_unavailable - unavailable).max(0))
                .unwrap_or(0)
                .min(candidates.len());
            replace_now.extend(candidates.into_iter().take(room));
            return self.sync_nodes(ds, &replace_now, &[], hash).await;
        }

        let mut delete = Vec::new();
        let mut should_not_run = Vec::new();
        let mut candidate_nodes = Vec::new();
        let mut allowed_nodes = Vec::new();
        let (mut surge, mut num_available) = (0, 0);
        for (node_name, pods) in &node_pods {
            let Some((new, old)) = updated_pods_on_node(ds, pods, hash) else {
                surge += 1;
                continue;
            };
            if let Some(p) = old.or(new)
                && available(p)
            {
                num_available += 1;
            }
            let node_runs = || {
                nodes
                    .iter()
                    .find(|n| n.metadata.name.as_deref() == Some(node_name.as_str()))
                    .is_some_and(|n| node_should_run(n, ds).0)
            };
            match (new, old) {
                (_, None) => {}
                (None, Some(old)) if !available(old) => {
                    if node_runs() {
                        allowed_nodes.push(node_name.clone());
                    } else {
                        delete.push(old.name_any());
                    }
                }
                (None, Some(old)) => {
                    if !node_runs() {
                        should_not_run.push(old.name_any());
                    } else if surge < max_surge {
                        candidate_nodes.push(node_name.clone());
                    }
                }
                (Some(new), Some(old)) => {
                    if available(new) {
                        delete.push(old.name_any());
                    } else {
                        surge += 1;
                    }
                }
            }
        }
        // With surge the owner expects full availability: only retire pods on nodes that
        // should not run them once enough pods elsewhere are available.
        let deletable = usize::try_from((num_available - desired).max(0))
            .unwrap_or(0)
            .min(should_not_run.len());
        delete.extend(should_not_run.into_iter().take(deletable));
        let room = usize::try_from((max_surge - surge).max(0))
            .unwrap_or(0)
            .min(candidate_nodes.len());
        allowed_nodes.extend(candidate_nodes.into_iter().take(room));
        self.sync_nodes(ds, &delete, &allowed_nodes, hash).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ds(ru: serde_json::Value) -> DaemonSet {
        serde_json::from_value(json!({
            "metadata": {"name": "d"},
            "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {},
                     "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": ru}}
        }))
        .unwrap()
    }

    #[test]
    fn counts_scale_and_round_up() {
        let d = ds(json!({"maxUnavailable": "25%", "maxSurge": 0}));
        assert_eq!(unavailable_count(&d, 10).unwrap(), 3);
        assert_eq!(surge_count(&d, 10).unwrap(), 0);
        assert!(!allows_surge(&d));
        let d = ds(json!({"maxUnavailable": 0, "maxSurge": "10%"}));
        assert_eq!(surge_count(&d, 10).unwrap(), 1);
        assert!(allows_surge(&d));
        let d = ds(json!({"maxUnavailable": "x%"}));
        assert!(unavailable_count(&d, 10).is_err());
    }
}
