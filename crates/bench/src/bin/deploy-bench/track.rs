//! What the benchmark's watches see: pods (with when each was first seen, bound and Ready,
//! and the running count of available pods), ReplicaSets and the Deployment.
//!
//! "Available" is what the Deployment controller's `maxUnavailable` bounds with
//! `minReadySeconds: 0`: pods that are Ready and not terminating. It is recomputed at
//! every pod event, so its minimum over a rollout is exact for the event order the API
//! server delivered (not sampled).

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use std::collections::HashMap;
use std::time::Instant;

/// What one pod looks like to the tracker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PodState {
    pub bound: bool,
    pub ready: bool,
    pub terminating: bool,
    /// Index of the pod's image in [`PodTracker::images`].
    pub image: usize,
}

impl PodState {
    fn available(&self) -> bool {
        self.ready && !self.terminating
    }
}

/// Extracts the tracked state of a pod (`images` maps image names to small indexes).
pub fn pod_state(p: &Pod, images: &mut Vec<String>) -> PodState {
    let image = p
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .and_then(|c| c.image.clone())
        .unwrap_or_default();
    let image = match images.iter().position(|i| *i == image) {
        Some(i) => i,
        None => {
            images.push(image);
            images.len() - 1
        }
    };
    let ready = p
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    PodState {
        bound: p
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| !n.is_empty()),
        ready,
        terminating: p.metadata.deletion_timestamp.is_some(),
        image,
    }
}

/// When something first happened to a pod, and with which image.
#[derive(Debug, Clone, Copy)]
pub struct Mark {
    pub at: Instant,
    pub image: usize,
}

/// Every pod of one label selection, as a watch delivers it.
#[derive(Debug, Default)]
pub struct PodTracker {
    pods: HashMap<String, PodState>,
    pub images: Vec<String>,
    /// Ready and not terminating, right now.
    pub available: usize,
    pub created: Vec<Mark>,
    pub bound: Vec<Mark>,
    pub ready: Vec<Mark>,
    /// Set while a (re)list is being delivered: counts are not meaningful then.
    relisting: Option<HashMap<String, PodState>>,
    pub relists: usize,
}

impl PodTracker {
    /// Apply one watch event seen at `at`. Returns whether `available` is meaningful now
    /// (false while a relist is under way).
    pub fn on_event(&mut self, ev: kube::runtime::watcher::Event<Pod>, at: Instant) -> bool {
        use kube::runtime::watcher::Event;
        match ev {
            Event::Init => {
                self.relists += 1;
                self.relisting = Some(HashMap::new());
                false
            }
            Event::InitApply(p) => {
                let name = p.metadata.name.clone().unwrap_or_default();
                let state = pod_state(&p, &mut self.images);
                self.marks(&name, state, at);
                if let Some(m) = self.relisting.as_mut() {
                    m.insert(name, state);
                }
                false
            }
            Event::InitDone => {
                if let Some(m) = self.relisting.take() {
                    self.pods = m;
                }
                self.available = self.pods.values().filter(|s| s.available()).count();
                true
            }
            Event::Apply(p) => {
                let name = p.metadata.name.clone().unwrap_or_default();
                let state = pod_state(&p, &mut self.images);
                self.marks(&name, state, at);
                let was = self.pods.insert(name, state);
                self.available += usize::from(state.available());
                self.available -= usize::from(was.is_some_and(|s| s.available()));
                self.relisting.is_none()
            }
            Event::Delete(p) => {
                let name = p.metadata.name.clone().unwrap_or_default();
                if let Some(was) = self.pods.remove(&name) {
                    self.available -= usize::from(was.available());
                }
                self.relisting.is_none()
            }
        }
    }

    /// Record first sightings (a pod seen for the first time, bound, Ready).
    fn marks(&mut self, name: &str, state: PodState, at: Instant) {
        let before = self.pods.get(name).copied();
        let image = state.image;
        // (During a relist `pods` still holds the previous list, so known pods are not new.)
        if before.is_none() {
            self.created.push(Mark { at, image });
        }
        if state.bound && !before.is_some_and(|b| b.bound) {
            self.bound.push(Mark { at, image });
        }
        if state.ready && !before.is_some_and(|b| b.ready) {
            self.ready.push(Mark { at, image });
        }
    }

    /// Pods currently known.
    pub fn len(&self) -> usize {
        self.pods.len()
    }

    /// Pods currently known with `image`.
    pub fn count_image(&self, image: usize) -> usize {
        self.pods.values().filter(|s| s.image == image).count()
    }

    pub fn image_index(&self, image: &str) -> Option<usize> {
        self.images.iter().position(|i| i == image)
    }
}

/// One ReplicaSet as last seen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RsState {
    pub image: String,
    pub spec: i32,
    pub replicas: i32,
    pub ready: i32,
    pub available: i32,
}

pub fn rs_state(rs: &ReplicaSet) -> RsState {
    let spec = rs.spec.as_ref();
    let status = rs.status.as_ref();
    RsState {
        image: spec
            .and_then(|s| s.template.as_ref())
            .and_then(|t| t.spec.as_ref())
            .and_then(|s| s.containers.first())
            .and_then(|c| c.image.clone())
            .unwrap_or_default(),
        spec: spec.and_then(|s| s.replicas).unwrap_or(1),
        replicas: status.map_or(0, |s| s.replicas),
        ready: status.and_then(|s| s.ready_replicas).unwrap_or(0),
        available: status.and_then(|s| s.available_replicas).unwrap_or(0),
    }
}

/// The Deployment's status as last seen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DepState {
    pub generation: i64,
    pub observed: i64,
    pub replicas: i32,
    pub updated: i32,
    pub ready: i32,
    pub available: i32,
}

pub fn dep_state(d: &Deployment) -> DepState {
    let s = d.status.clone().unwrap_or_default();
    DepState {
        generation: d.metadata.generation.unwrap_or(0),
        observed: s.observed_generation.unwrap_or(0),
        replicas: s.replicas.unwrap_or(0),
        updated: s.updated_replicas.unwrap_or(0),
        ready: s.ready_replicas.unwrap_or(0),
        available: s.available_replicas.unwrap_or(0),
    }
}

/// A rollout to `image` with `want` replicas is complete: the Deployment's status is
/// current and counts only updated, available pods, and every other ReplicaSet is at 0.
pub fn rollout_complete(
    d: &DepState,
    rss: &HashMap<String, RsState>,
    image: &str,
    want: i32,
) -> bool {
    d.observed >= d.generation
        && d.updated == want
        && d.available == want
        && d.replicas == want
        && rss.values().any(|r| r.image == image)
        && rss
            .values()
            .filter(|r| r.image != image)
            .all(|r| r.spec == 0 && r.replicas == 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::watcher::Event;
    use serde_json::json;

    fn pod(name: &str, node: &str, ready: bool, terminating: bool) -> Pod {
        let mut p = json!({
            "metadata": {"name": name},
            "spec": {"containers": [{"name": "app", "image": "img:1"}], "nodeName": node},
            "status": {"conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]},
        });
        if terminating {
            p["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        }
        serde_json::from_value(p).unwrap()
    }

    #[test]
    fn available_follows_ready_and_terminating() {
        let mut t = PodTracker::default();
        let now = Instant::now();
        assert!(!t.on_event(Event::Init, now));
        assert!(t.on_event(Event::InitDone, now));
        t.on_event(Event::Apply(pod("a", "", false, false)), now);
        t.on_event(Event::Apply(pod("a", "n1", false, false)), now);
        t.on_event(Event::Apply(pod("a", "n1", true, false)), now);
        t.on_event(Event::Apply(pod("b", "n1", true, false)), now);
        assert_eq!(t.available, 2);
        t.on_event(Event::Apply(pod("a", "n1", true, true)), now);
        assert_eq!(t.available, 1);
        t.on_event(Event::Delete(pod("a", "n1", true, true)), now);
        t.on_event(Event::Delete(pod("b", "n1", true, false)), now);
        assert_eq!(t.available, 0);
        assert_eq!((t.created.len(), t.bound.len(), t.ready.len()), (2, 2, 2));
    }

    #[test]
    fn a_relist_replaces_the_pods_without_new_marks() {
        let mut t = PodTracker::default();
        let now = Instant::now();
        t.on_event(Event::Init, now);
        t.on_event(Event::InitApply(pod("a", "n1", true, false)), now);
        t.on_event(Event::InitDone, now);
        t.on_event(Event::Init, now);
        t.on_event(Event::InitApply(pod("a", "n1", true, false)), now);
        assert!(t.on_event(Event::InitDone, now));
        assert_eq!((t.available, t.created.len(), t.relists), (1, 1, 2));
    }

    #[test]
    fn rollout_needs_old_replicasets_at_zero() {
        let d = DepState {
            generation: 2,
            observed: 2,
            replicas: 4,
            updated: 4,
            ready: 4,
            available: 4,
        };
        let mut rss = HashMap::new();
        let new = RsState {
            image: "img:2".into(),
            spec: 4,
            replicas: 4,
            ready: 4,
            available: 4,
        };
        rss.insert("new".to_string(), new);
        let mut old = RsState {
            image: "img:1".into(),
            spec: 0,
            replicas: 1,
            ..Default::default()
        };
        rss.insert("old".to_string(), old.clone());
        assert!(!rollout_complete(&d, &rss, "img:2", 4));
        old.replicas = 0;
        rss.insert("old".to_string(), old);
        assert!(rollout_complete(&d, &rss, "img:2", 4));
        let stale = DepState { observed: 1, ..d };
        assert!(!rollout_complete(&stale, &rss, "img:2", 4));
    }
}
