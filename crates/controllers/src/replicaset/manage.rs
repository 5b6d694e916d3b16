//! Creating and deleting pods to reach `spec.replicas` (upstream `manageReplicas`).

use super::claim::{controller_of, controller_ref, matches, selector_of};
use super::pods::{deletion_order, is_active, node_name, pod_from_template};
use super::{BURST_REPLICAS, Controller, SyncError, api_message, key_of};
use crate::events::EventType;
use futures::future::join_all;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;

/// Run `count` calls of `f` in batches of 1, 2, 4, … (starting at `initial`), stopping after
/// the first batch with a failure, so a systematic error (quota, admission) costs one call
/// rather than `count`. Returns how many succeeded and the first error.
pub async fn slow_start_batch<F, Fut, E>(count: usize, initial: usize, f: F) -> (usize, Option<E>)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<(), E>>,
{
    let mut remaining = count;
    let mut successes = 0;
    let mut batch = remaining.min(initial.max(1));
    while batch > 0 {
        let results = join_all((0..batch).map(|_| f())).await;
        let mut first_err = None;
        for r in results {
            match r {
                Ok(()) => successes += 1,
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        if first_err.is_some() {
            return (successes, first_err);
        }
        remaining -= batch;
        batch = remaining.min(2 * batch);
    }
    (successes, None)
}

/// Whether the API refused because the namespace is being deleted.
pub fn namespace_terminating(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.details.as_ref().is_some_and(|d| d.causes.iter().any(|c| c.reason == "NamespaceTerminating")))
}

/// The `diff` pods to delete first: sorted by upstream's preference, with "doubled up"
/// ranks counted over `related` (pods of sibling ReplicaSets of the same Deployment).
pub fn pods_to_delete(
    owned: &[Arc<Pod>],
    related: &[Arc<Pod>],
    diff: usize,
    now: Timestamp,
) -> Vec<Arc<Pod>> {
    if diff >= owned.len() {
        return owned.to_vec();
    }
    let mut on_node: HashMap<&str, usize> = HashMap::new();
    for p in related.iter().filter(|p| is_active(p)) {
        *on_node.entry(node_name(p)).or_default() += 1;
    }
    let mut ranked: Vec<(usize, &Arc<Pod>)> = owned
        .iter()
        .map(|p| (on_node.get(node_name(p)).copied().unwrap_or(0), p))
        .collect();
    ranked.sort_by(|(ra, a), (rb, b)| deletion_order(a, *ra, b, *rb, now));
    ranked
        .into_iter()
        .take(diff)
        .map(|(_, p)| p.clone())
        .collect()
}

impl Controller {
    /// Create or delete pods so that `owned` (the active pods this ReplicaSet owns) reaches
    /// `spec.replicas`; at most [`BURST_REPLICAS`] per sync.
    pub(super) async fn manage_replicas(
        &self,
        key: &str,
        rs: &ReplicaSet,
        owned: &[Arc<Pod>],
    ) -> Result<(), SyncError> {
        let spec = rs.spec.clone().unwrap_or_default();
        let want = usize::try_from(spec.replicas.unwrap_or(1)).unwrap_or(0);
        let ns = rs.metadata.namespace.clone().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        if owned.len() < want {
            let diff = (want - owned.len()).min(BURST_REPLICAS);
            let template = spec.template.clone().unwrap_or_default();
            let name = rs.metadata.name.clone().unwrap_or_default();
            let pod = pod_from_template(&template, &name, controller_ref(rs));
            if pod.metadata.labels.as_ref().is_none_or(|l| l.is_empty()) {
                return Err(SyncError::Invalid(
                    "unable to create pods, no labels".into(),
                ));
            }
            self.shared.expectations.expect_creations(key, diff);
            let (created, err) =
                slow_start_batch(diff, 1, || self.create_pod(&api, rs, &pod)).await;
            // Creations that failed or were never tried will not show up in the informer.
            for _ in created..diff {
                self.shared.expectations.creation_observed(key);
            }
            return err.map_or(Ok(()), |e| Err(e.into()));
        }
        if owned.len() > want {
            let diff = (owned.len() - want).min(BURST_REPLICAS);
            let related = self.related_pods(rs);
            let victims = pods_to_delete(owned, &related, diff, Timestamp::now());
            self.shared
                .expectations
                .expect_deletions(key, victims.iter().map(|p| key_of(&p.metadata)));
            let results = join_all(victims.iter().map(|p| self.delete_pod(&api, rs, p))).await;
            let mut first_err = None;
            for (pod, r) in victims.iter().zip(results) {
                if let Err(e) = r {
                    // Neither a failed nor a redundant delete will be observed as a new event.
                    self.shared
                        .expectations
                        .deletion_observed(key, &key_of(&pod.metadata));
                    if !matches!(&e, kube::Error::Api(s) if s.code == 404) {
                        first_err.get_or_insert(e);
                    }
                }
            }
            return first_err.map_or(Ok(()), |e| Err(e.into()));
        }
        Ok(())
    }

    async fn create_pod(
        &self,
        api: &Api<Pod>,
        rs: &ReplicaSet,
        pod: &Pod,
    ) -> Result<(), kube::Error> {
        match api.create(&PostParams::default(), pod).await {
            Ok(created) => {
                let name = created.metadata.name.unwrap_or_default();
                self.recorder.publish_for(
                    rs,
                    EventType::Normal,
                    "SuccessfulCreate",
                    &format!("Created pod: {name}"),
                );
                Ok(())
            }
            // The namespace is going away; nothing more to do for it.
            Err(e) if namespace_terminating(&e) => Ok(()),
            Err(e) => {
                self.recorder.publish_for(
                    rs,
                    EventType::Warning,
                    "FailedCreate",
                    &format!("Error creating: {}", api_message(&e)),
                );
                Err(e)
            }
        }
    }

    async fn delete_pod(
        &self,
        api: &Api<Pod>,
        rs: &ReplicaSet,
        pod: &Pod,
    ) -> Result<(), kube::Error> {
        let name = pod.metadata.name.clone().unwrap_or_default();
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => {
                self.recorder.publish_for(
                    rs,
                    EventType::Normal,
                    "SuccessfulDelete",
                    &format!("Deleted pod: {name}"),
                );
                Ok(())
            }
            Err(e) => {
                if !matches!(&e, kube::Error::Api(s) if s.code == 404) {
                    self.recorder.publish_for(
                        rs,
                        EventType::Warning,
                        "FailedDelete",
                        &format!("Error deleting: {}", api_message(&e)),
                    );
                }
                Err(e)
            }
        }
    }

    /// Pods of every ReplicaSet with the same controller as `rs` (for the "doubled up"
    /// ranking); empty for a ReplicaSet without a controller.
    fn related_pods(&self, rs: &ReplicaSet) -> Vec<Arc<Pod>> {
        let Some(owner) = controller_of(&rs.metadata) else {
            return Vec::new();
        };
        let ns = rs.metadata.namespace.as_deref();
        let siblings: Vec<_> = self
            .replicasets
            .store()
            .state()
            .into_iter()
            .filter(|o| o.metadata.namespace.as_deref() == ns)
            .filter(|o| controller_of(&o.metadata).is_some_and(|r| r.uid == owner.uid))
            .filter_map(|o| o.spec.as_ref().and_then(|s| selector_of(&s.selector)))
            .collect();
        let mut seen = HashSet::new();
        self.pods
            .store()
            .state()
            .into_iter()
            .filter(|p| p.metadata.namespace.as_deref() == ns)
            .filter(|p| siblings.iter().any(|s| matches(s, &p.metadata)))
            .filter(|p| seen.insert(p.metadata.uid.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn slow_start_doubles_and_stops_on_error() {
        let calls = AtomicUsize::new(0);
        let (ok, err) = slow_start_batch(10, 1, || {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Ok::<(), String>(()) }
        })
        .await;
        assert_eq!((ok, err, calls.load(Ordering::SeqCst)), (10, None, 10));
        // Fail from the 4th call on: batches 1, 2 succeed, the batch of 4 fails.
        let calls = AtomicUsize::new(0);
        let batches = Mutex::new(Vec::new());
        let (ok, err) = slow_start_batch(20, 1, || {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            batches.lock().map(|mut b| b.push(n)).ok();
            async move {
                if n >= 3 {
                    Err(format!("call {n}"))
                } else {
                    Ok(())
                }
            }
        })
        .await;
        assert_eq!(ok, 3);
        assert!(err.is_some());
        assert_eq!(
            calls.load(Ordering::SeqCst),
            7,
            "1 + 2 + 4 calls, then stop"
        );
    }

    fn pod(name: &str, node: &str, ready: bool) -> Arc<Pod> {
        let conds = if ready {
            vec![
                json!({"type": "Ready", "status": "True", "lastTransitionTime": "2024-01-01T00:00:00Z"}),
            ]
        } else {
            vec![]
        };
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "uid": name, "creationTimestamp": "2024-01-01T00:00:00Z"},
                "spec": {"nodeName": node, "containers": []},
                "status": {"phase": "Running", "conditions": conds},
            }))
            .expect("pod"),
        )
    }

    #[test]
    fn victims_are_unready_then_doubled_up() {
        let now = Timestamp::now();
        let a = pod("a", "n1", true);
        let b = pod("b", "n2", true);
        let c = pod("c", "n2", true);
        let d = pod("d", "n3", false);
        let owned = vec![a.clone(), b.clone(), c.clone(), d.clone()];
        let names = |v: Vec<Arc<Pod>>| {
            v.into_iter()
                .filter_map(|p| p.metadata.name.clone())
                .collect::<Vec<_>>()
        };
        let victims = names(pods_to_delete(&owned, &owned, 2, now));
        assert_eq!(victims[0], "d", "not ready first");
        assert!(
            victims[1] == "b" || victims[1] == "c",
            "then a pod on the crowded node: {victims:?}"
        );
        assert_eq!(pods_to_delete(&owned, &owned, 9, now).len(), 4);
    }
}
