//! The DaemonSet core loop (upstream `manage`/`syncNodes`/`updateDaemonSetStatus`): decide
//! per node which daemon pods to create and delete, create pods pinned to their nodes in
//! slow-start batches, and record the status counters.

use super::predicates::{add_daemon_tolerations, node_should_run, pin_to_node, target_node};
use super::{
    BURST_REPLICAS, Controller, REVISION_HASH_LABEL, TEMPLATE_GENERATION_ANNOTATION,
    TEMPLATE_GENERATION_LABEL, key_string, selector,
};
use crate::events::EventType;
use crate::util::controller_ref::{self, Claimer};
use crate::util::error::{Error, Result, is_namespace_terminating, is_not_found};
use crate::util::podutil::{self, is_pod_available, is_pod_ready, phase};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Node, Pod, PodTemplateSpec};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::core::SelectorExt;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};
use serde_json::json;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Initial and maximum delay before deleting another failed daemon pod on the same node.
const FAILED_BACKOFF_INITIAL: Duration = Duration::from_secs(1);
const FAILED_BACKOFF_MAX: Duration = Duration::from_secs(15 * 60);

/// Daemon pods by target node.
pub(super) type NodePods = BTreeMap<String, Vec<Arc<Pod>>>;

/// The template generation from the DaemonSet's annotation (`None` if absent or bad).
pub(super) fn template_generation(ds: &DaemonSet) -> Option<i64> {
    ds.annotations()
        .get(TEMPLATE_GENERATION_ANNOTATION)
        .and_then(|g| g.parse().ok())
}

/// A pod is up to date if it carries the current hash (or, for old pods, generation).
pub(super) fn is_pod_updated(pod: &Pod, hash: &str, generation: Option<i64>) -> bool {
    let labels = pod.labels();
    let gen_matches =
        generation.is_some_and(|g| labels.get(TEMPLATE_GENERATION_LABEL) == Some(&g.to_string()));
    let hash_matches =
        !hash.is_empty() && labels.get(REVISION_HASH_LABEL).map(String::as_str) == Some(hash);
    hash_matches || gen_matches
}

/// Scheduled pods first, then oldest, then by name (upstream `podByCreationTimestampAndPhase`).
pub(super) fn sort_pods(pods: &mut [Arc<Pod>]) {
    let scheduled = |p: &Pod| {
        p.spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| !n.is_empty())
    };
    pods.sort_by(|a, b| {
        scheduled(b)
            .cmp(&scheduled(a))
            .then_with(|| {
                let ts = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
                ts(a).cmp(&ts(b))
            })
            .then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
}

/// The DaemonSet's template with the daemon tolerations and revision labels.
fn pod_template(ds: &DaemonSet, hash: &str) -> PodTemplateSpec {
    let mut t = ds
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    add_daemon_tolerations(t.spec.get_or_insert_default());
    let labels = t
        .metadata
        .get_or_insert_default()
        .labels
        .get_or_insert_default();
    if let Some(g) = template_generation(ds) {
        labels.insert(TEMPLATE_GENERATION_LABEL.into(), g.to_string());
    }
    if !hash.is_empty() {
        labels.insert(REVISION_HASH_LABEL.into(), hash.to_string());
    }
    t
}

impl Controller {
    /// Pods the DaemonSet owns (adopting matching orphans, releasing non-matching pods).
    pub(super) async fn daemon_pods(&self, ds: &DaemonSet) -> Result<Vec<Arc<Pod>>> {
        let Some(sel) = selector(ds) else {
            return Ok(Vec::new());
        };
        let ns = ds.namespace().unwrap_or_default();
        let candidates: Vec<Arc<Pod>> = self
            .pods
            .state()
            .into_iter()
            .filter(|p| p.namespace().as_deref() == Some(ns.as_str()))
            .collect();
        let owner = podutil::controller_ref(ds);
        let claimer = Claimer {
            owner: &owner,
            namespace: &ns,
            deleting: ds.metadata.deletion_timestamp.is_some(),
        };
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        controller_ref::claim(
            &api,
            &claimer,
            candidates,
            |p: &Pod| sel.matches(p.labels()),
            || self.can_adopt(ds),
        )
        .await
    }

    /// Owned pods grouped by target node; terminal pods already being deleted are left out
    /// unless `include_deleted_terminal`.
    pub(super) async fn nodes_to_daemon_pods(
        &self,
        ds: &DaemonSet,
        include_deleted_terminal: bool,
    ) -> Result<NodePods> {
        let mut map = NodePods::new();
        for pod in self.daemon_pods(ds).await? {
            if !include_deleted_terminal
                && podutil::is_terminal(&pod)
                && podutil::is_terminating(&pod)
            {
                continue;
            }
            if let Some(node) = target_node(&pod) {
                map.entry(node).or_default().push(pod);
            }
        }
        Ok(map)
    }

    /// Create missing daemon pods and delete misplaced, failed and surplus ones.
    pub(super) async fn manage(
        &self,
        ds: &DaemonSet,
        nodes: &[Arc<Node>],
        hash: &str,
    ) -> Result<()> {
        let node_pods = self.nodes_to_daemon_pods(ds, false).await?;
        let mut create = Vec::new();
        let mut delete = Vec::new();
        for node in nodes {
            let (c, d) = self.pods_should_be_on_node(node, &node_pods, ds, hash);
            create.extend(c);
            delete.extend(d);
        }
        // Unscheduled pods for nodes that no longer exist never get cleaned up otherwise.
        let existing: HashSet<String> = nodes.iter().map(|n| n.name_any()).collect();
        for (node, pods) in &node_pods {
            if existing.contains(node) {
                continue;
            }
            for p in pods {
                let unscheduled = p
                    .spec
                    .as_ref()
                    .and_then(|s| s.node_name.as_deref())
                    .is_none_or(str::is_empty);
                if unscheduled {
                    delete.push(p.name_any());
                }
            }
        }
        self.sync_nodes(ds, &delete, &create, hash).await
    }

    /// `(nodes needing a new pod, pods to delete)` for one node.
    fn pods_should_be_on_node(
        &self,
        node: &Node,
        node_pods: &NodePods,
        ds: &DaemonSet,
        hash: &str,
    ) -> (Vec<String>, Vec<String>) {
        let name = node.name_any();
        let (should_run, should_continue) = node_should_run(node, ds);
        let pods = node_pods.get(&name);
        let mut create = Vec::new();
        let mut delete = Vec::new();
        match pods {
            None if should_run => create.push(name.clone()),
            Some(pods) if should_continue => {
                let mut running = Vec::new();
                for pod in pods.iter().filter(|p| !podutil::is_terminating(p)) {
                    match phase(pod) {
                        "Failed" => {
                            // Kubelets may keep rejecting a pod: back off per node.
                            if self.failed_pod_backoff(ds, &name) {
                                continue;
                            }
                            let msg = format!(
                                "Found failed daemon pod {}/{} on node {name}, will try to kill it",
                                pod.namespace().unwrap_or_default(),
                                pod.name_any()
                            );
                            self.recorder.publish_for(
                                ds,
                                EventType::Warning,
                                "FailedDaemonPod",
                                &msg,
                            );
                            delete.push(pod.name_any());
                        }
                        "Succeeded" => {
                            let msg = format!(
                                "Found succeeded daemon pod {}/{} on node {name}, will try to delete it",
                                pod.namespace().unwrap_or_default(),
                                pod.name_any()
                            );
                            self.recorder.publish_for(
                                ds,
                                EventType::Normal,
                                "SucceededDaemonPod",
                                &msg,
                            );
                            delete.push(pod.name_any());
                        }
                        _ => running.push(pod.clone()),
                    }
                }
                sort_pods(&mut running);
                if !super::update::allows_surge(ds) {
                    // Keep only the oldest.
                    delete.extend(running.iter().skip(1).map(|p| p.name_any()));
                } else if running.is_empty() {
                    if should_run {
                        create.push(name.clone());
                    }
                } else if running.len() > 1 {
                    // Surging: keep the oldest new and the oldest old pod; drop the old one once
                    // the new one is available (or the old one stopped being ready).
                    let mut oldest_new: Option<&Arc<Pod>> = None;
                    let mut oldest_old: Option<&Arc<Pod>> = None;
                    for p in &running {
                        let slot = if p.labels().get(REVISION_HASH_LABEL).map(String::as_str)
                            == Some(hash)
                        {
                            &mut oldest_new
                        } else {
                            &mut oldest_old
                        };
                        if slot.is_none() {
                            *slot = Some(p);
                        } else {
                            delete.push(p.name_any());
                        }
                    }
                    if let (Some(new), Some(old)) = (oldest_new, oldest_old) {
                        let min_ready = ds
                            .spec
                            .as_ref()
                            .and_then(|s| s.min_ready_seconds)
                            .unwrap_or(0);
                        if !is_pod_ready(old) || is_pod_available(new, min_ready, Timestamp::now())
                        {
                            delete.push(old.name_any());
                        }
                    }
                }
            }
            Some(pods) if !should_continue => {
                delete.extend(
                    pods.iter()
                        .filter(|p| !podutil::is_terminating(p))
                        .map(|p| p.name_any()),
                );
            }
            _ => {}
        }
        (create, delete)
    }

    /// Whether deleting a failed pod on `node` must wait; otherwise arms the next delay.
    fn failed_pod_backoff(&self, ds: &DaemonSet, node: &str) -> bool {
        let generation = ds
            .status
            .as_ref()
            .and_then(|s| s.observed_generation)
            .unwrap_or(0);
        let key = format!("{}/{generation}/{node}", ds.uid().unwrap_or_default());
        let mut map = self
            .failed_backoff
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if let Some((delay, last)) = map.get(&key).copied() {
            if now < last + delay {
                let ds_key = ObjectRef::from_obj(ds);
                self.queue.add_after(ds_key, last + delay - now);
                return true;
            }
            map.insert(key, ((delay * 2).min(FAILED_BACKOFF_MAX), now));
        } else {
            map.insert(key, (FAILED_BACKOFF_INITIAL, now));
        }
        false
    }

    /// Delete `delete` and create a pod on each of `create_on`, at most
    /// [`BURST_REPLICAS`] of each; creations go in slow-start batches (1, 2, 4, …) and stop
    /// at the first batch with failures.
    pub(super) async fn sync_nodes(
        &self,
        ds: &DaemonSet,
        delete: &[String],
        create_on: &[String],
        hash: &str,
    ) -> Result<()> {
        let key = key_string(&ObjectRef::from_obj(ds));
        let ns = ds.namespace().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        let create_on = &create_on[..create_on.len().min(BURST_REPLICAS)];
        let delete = &delete[..delete.len().min(BURST_REPLICAS)];
        let template = pod_template(ds, hash);
        let mut errs = Vec::new();

        let mut pos = 0;
        let mut batch = create_on.len().min(1);
        while batch > 0 {
            let results =
                futures::future::join_all(create_on[pos..pos + batch].iter().map(|node| {
                    let mut pod =
                        podutil::pod_from_template(&template, podutil::controller_ref(ds));
                    pod.metadata.namespace = Some(ns.clone());
                    pin_to_node(pod.spec.get_or_insert_default(), node);
                    let api = api.clone();
                    async move { api.create(&PostParams::default(), &pod).await }
                }))
                .await;
            let mut failed = false;
            for r in results {
                match r {
                    Ok(p) => {
                        self.expectations.expect_creations(&key, [p.name_any()]);
                        let msg = format!("Created pod: {}", p.name_any());
                        self.recorder
                            .publish_for(ds, EventType::Normal, "SuccessfulCreate", &msg);
                    }
                    // Nothing more can be created in a terminating namespace.
                    Err(e) if is_namespace_terminating(&e) => {}
                    Err(e) => {
                        failed = true;
                        let msg = format!("Error creating: {e}");
                        self.recorder
                            .publish_for(ds, EventType::Warning, "FailedCreate", &msg);
                        errs.push(Error::api(
                            format!("creating pod for daemonset {}", ds.name_any()),
                            e,
                        ));
                    }
                }
            }
            pos += batch;
            if failed {
                break;
            }
            batch = (2 * batch).min(create_on.len() - pos);
        }

        let results = futures::future::join_all(delete.iter().map(|name| {
            let api = api.clone();
            async move { (name, api.delete(name, &DeleteParams::default()).await) }
        }))
        .await;
        for (name, r) in results {
            match r {
                Ok(_) => {
                    self.expectations.expect_deletions(&key, [name.clone()]);
                    let msg = format!("Deleted pod: {name}");
                    self.recorder
                        .publish_for(ds, EventType::Normal, "SuccessfulDelete", &msg);
                }
                Err(e) if is_not_found(&e) => {}
                Err(e) => {
                    let msg = format!("Error deleting: {e}");
                    self.recorder
                        .publish_for(ds, EventType::Warning, "FailedDelete", &msg);
                    errs.push(Error::api(format!("deleting pod {name}"), e));
                }
            }
        }
        Error::aggregate(errs)
    }

    /// Recompute and record the status counters. Returns a requeue delay when pods are
    /// ready but not yet available (minReadySeconds).
    pub(super) async fn update_status(
        &self,
        ds: &DaemonSet,
        nodes: &[Arc<Node>],
        hash: &str,
        update_observed_generation: bool,
    ) -> Result<Option<Duration>> {
        let node_pods = self.nodes_to_daemon_pods(ds, false).await?;
        let generation = template_generation(ds);
        let min_ready = ds
            .spec
            .as_ref()
            .and_then(|s| s.min_ready_seconds)
            .unwrap_or(0);
        let now = Timestamp::now();
        let (mut desired, mut current, mut misscheduled, mut ready, mut updated, mut available) =
            (0, 0, 0, 0, 0, 0);
        for node in nodes {
            let (should_run, _) = node_should_run(node, ds);
            let pods = node_pods.get(&node.name_any()).filter(|p| !p.is_empty());
            if !should_run {
                if pods.is_some() {
                    misscheduled += 1;
                }
                continue;
            }
            desired += 1;
            let Some(pods) = pods else { continue };
            current += 1;
            let mut pods = pods.clone();
            sort_pods(&mut pods);
            let pod = &pods[0];
            if is_pod_ready(pod) {
                ready += 1;
                if is_pod_available(pod, min_ready, now) {
                    available += 1;
                }
            }
            if is_pod_updated(pod, hash, generation) {
                updated += 1;
            }
        }
        let unavailable = desired - available;
        let st = ds.status.clone().unwrap_or_default();
        let unchanged = st.desired_number_scheduled == desired
            && st.current_number_scheduled == current
            && st.number_misscheduled == misscheduled
            && st.number_ready == ready
            && st.updated_number_scheduled.unwrap_or(0) == updated
            && st.number_available.unwrap_or(0) == available
            && st.number_unavailable.unwrap_or(0) == unavailable
            && st.observed_generation.unwrap_or(0) >= ds.metadata.generation.unwrap_or(0);
        if !unchanged {
            let mut status = json!({
                "desiredNumberScheduled": desired,
                "currentNumberScheduled": current,
                "numberMisscheduled": misscheduled,
                "numberReady": ready,
                "updatedNumberScheduled": updated,
                "numberAvailable": available,
                "numberUnavailable": unavailable,
            });
            if update_observed_generation {
                status["observedGeneration"] = json!(ds.metadata.generation);
            }
            let api: Api<DaemonSet> =
                Api::namespaced(self.client.clone(), &ds.namespace().unwrap_or_default());
            match api
                .patch_status(
                    &ds.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&json!({"status": status})),
                )
                .await
            {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => return Ok(None),
                Err(e) => {
                    return Err(Error::api(
                        format!("updating status of daemonset {}", ds.name_any()),
                        e,
                    ));
                }
            }
        }
        if min_ready > 0 && ready != available {
            return Ok(Some(Duration::from_secs(u64::from(
                min_ready.unsigned_abs(),
            ))));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, node: Option<&str>, labels: &[(&str, &str)]) -> Arc<Pod> {
        let mut p = Pod::default();
        p.metadata.name = Some(name.into());
        p.metadata.labels = Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        p.spec = Some(k8s_openapi::api::core::v1::PodSpec {
            node_name: node.map(str::to_string),
            ..Default::default()
        });
        Arc::new(p)
    }

    #[test]
    fn updated_by_hash_or_generation() {
        let p = pod(
            "a",
            None,
            &[
                (REVISION_HASH_LABEL, "h1"),
                (TEMPLATE_GENERATION_LABEL, "3"),
            ],
        );
        assert!(is_pod_updated(&p, "h1", None));
        assert!(!is_pod_updated(&p, "h2", None));
        assert!(is_pod_updated(&p, "h2", Some(3)));
        assert!(!is_pod_updated(&p, "", Some(4)));
    }

    #[test]
    fn scheduled_pods_sort_first() {
        let mut v = vec![
            pod("b", None, &[]),
            pod("c", Some("n"), &[]),
            pod("a", None, &[]),
        ];
        sort_pods(&mut v);
        let names: Vec<_> = v.iter().map(|p| p.name_any()).collect();
        assert_eq!(names, vec!["c", "a", "b"]);
    }

    #[test]
    fn template_gets_labels_and_tolerations() {
        let ds: DaemonSet = serde_json::from_value(json!({
            "metadata": {"name": "d", "annotations": {TEMPLATE_GENERATION_ANNOTATION: "2"}},
            "spec": {"selector": {"matchLabels": {"a": "b"}},
                     "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": []}}}
        }))
        .unwrap();
        let t = pod_template(&ds, "hh");
        let l = t.metadata.unwrap().labels.unwrap();
        assert_eq!(l[REVISION_HASH_LABEL], "hh");
        assert_eq!(l[TEMPLATE_GENERATION_LABEL], "2");
        assert_eq!(t.spec.unwrap().tolerations.unwrap().len(), 6);
    }
}
