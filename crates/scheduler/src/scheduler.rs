//! The scheduling loop: applies watch events to the cache and queue between cycles,
//! schedules one pod at a time, assumes it on the chosen node and binds it in the
//! background (bounded concurrency), and handles failures: PodScheduled=False with
//! upstream's message, a FailedScheduling event, preemption, and requeueing.

use crate::SchedulerConfig;
use crate::actions::{self, REASON_SCHEDULER_ERROR, REASON_UNSCHEDULABLE};
use crate::cache::Cache;
use crate::cycle::{self, Cycle, Failure, Sampling};
use crate::events::{Record, Recorder};
use crate::framework::{Diagnosis, Plugin, PluginSet};
use crate::informer::{Kind, Msg};
use crate::model::PodInfo;
use crate::preemption::{self, Outcome};
use crate::queue::{Queued, SchedulingQueue};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use std::collections::HashSet;
use std::sync::Arc;
use tokio::sync::Semaphore;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio::time::Instant;

/// Every plugin: node additions and relevant updates may help any pod.
const ANY: PluginSet = PluginSet::MAX;

fn pod_delete_mask() -> PluginSet {
    Plugin::NodeResourcesFit.bit()
        | Plugin::NodePorts.bit()
        | Plugin::InterPodAffinity.bit()
        | Plugin::PodTopologySpread.bit()
        | Plugin::DefaultPreemption.bit()
}

/// Claim, volume and storage class additions/updates may help pods the volume plugins
/// rejected (upstream registers no deletions for them).
fn volume_mask() -> PluginSet {
    Plugin::VolumeBinding.bit() | Plugin::VolumeZone.bit()
}

fn pod_add_mask() -> PluginSet {
    Plugin::InterPodAffinity.bit() | Plugin::PodTopologySpread.bit()
}

/// Apply an add/update (`Some`) or delete; returns whether an add or a change happened
/// (deletions return false: they never help a pod the volume plugins rejected).
fn upsert_or_remove<V: PartialEq>(
    map: &mut std::collections::HashMap<String, V>,
    key: String,
    value: Option<V>,
) -> bool {
    match value {
        Some(v) => match map.get(&key) {
            Some(old) if *old == v => false,
            _ => {
                map.insert(key, v);
                true
            }
        },
        None => {
            map.remove(&key);
            false
        }
    }
}

pub struct Scheduler {
    cfg: SchedulerConfig,
    client: kube::Client,
    pub cache: Cache,
    queue: SchedulingQueue,
    sampling: Sampling,
    rng: SmallRng,
    tx: UnboundedSender<Msg>,
    binds: Arc<Semaphore>,
    writes: Arc<Semaphore>,
    events: Recorder,
    synced: HashSet<Kind>,
    tasks: tokio::task::JoinSet<()>,
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Scheduler {
    pub fn new(
        cfg: SchedulerConfig,
        client: kube::Client,
        tx: UnboundedSender<Msg>,
        events: Recorder,
    ) -> Self {
        Scheduler {
            queue: SchedulingQueue::new(cfg.queue.clone()),
            sampling: Sampling {
                percentage: cfg.percentage_of_nodes_to_score,
                next_start: 0,
            },
            rng: SmallRng::from_os_rng(),
            binds: Arc::new(Semaphore::new(cfg.bind_concurrency.max(1))),
            writes: Arc::new(Semaphore::new(cfg.bind_concurrency.max(1))),
            cache: Cache::default(),
            synced: HashSet::new(),
            tasks: tokio::task::JoinSet::new(),
            cfg,
            client,
            tx,
            events,
        }
    }

    fn ready(&self) -> bool {
        [Kind::Node, Kind::Pod, Kind::PriorityClass]
            .iter()
            .all(|k| self.synced.contains(k))
    }

    /// Run until the watches end (they retry forever, so: until dropped).
    pub async fn run(mut self, mut rx: UnboundedReceiver<Msg>) -> anyhow::Result<()> {
        loop {
            while let Ok(m) = rx.try_recv() {
                self.handle(m);
            }
            while self.tasks.try_join_next().is_some() {}
            if self.ready()
                && let Some(q) = self.queue.pop(Instant::now())
            {
                self.schedule_one(q).await;
                tokio::task::coop::consume_budget().await;
                continue;
            }
            let wake = if self.ready() {
                self.queue.next_wakeup()
            } else {
                None
            };
            tokio::select! {
                m = rx.recv() => match m {
                    Some(m) => self.handle(m),
                    None => anyhow::bail!("scheduler event channel closed"),
                },
                _ = sleep_until_opt(wake) => {}
            }
        }
    }

    fn handle(&mut self, m: Msg) {
        let now = Instant::now();
        match m {
            Msg::Node(spec) => {
                if self.cache.upsert_node(spec) {
                    self.queue.move_for(ANY, now);
                }
            }
            Msg::NodeDeleted(name) => self.cache.remove_node(&name),
            Msg::Pod(info) => self.on_pod(info, now),
            Msg::PodDeleted(uid) => self.on_pod_deleted(&uid, now),
            Msg::PriorityClass(name, pc) => match pc {
                Some(pc) => {
                    self.cache.priority_classes.insert(name, pc);
                }
                None => {
                    self.cache.priority_classes.remove(&name);
                }
            },
            Msg::Pdb(key, pdb) => match pdb {
                Some(p) => {
                    self.cache.pdbs.insert(key, p);
                }
                None => {
                    self.cache.pdbs.remove(&key);
                }
            },
            Msg::Namespace(name, labels) => {
                let changed = match labels {
                    Some(l) => self
                        .cache
                        .namespaces
                        .insert(name, l.clone())
                        .is_none_or(|old| old != l),
                    None => self.cache.namespaces.remove(&name).is_some(),
                };
                if changed {
                    self.queue.move_for(Plugin::InterPodAffinity.bit(), now);
                }
            }
            Msg::Pvc(key, pvc) => {
                let v = &mut self.cache.volumes.pvcs;
                if upsert_or_remove(v, key, pvc) {
                    self.queue.move_for(volume_mask(), now);
                }
            }
            Msg::Pv(name, pv) => {
                if upsert_or_remove(&mut self.cache.volumes.pvs, name, pv) {
                    self.queue.move_for(volume_mask(), now);
                }
            }
            Msg::StorageClass(name, wffc) => {
                if upsert_or_remove(&mut self.cache.volumes.classes, name, wffc) {
                    self.queue.move_for(volume_mask(), now);
                }
            }
            Msg::Resync(kind, seen) => self.resync(kind, seen, now),
            Msg::Bound { uid, node, error } => self.on_bound(&uid, node, error, now),
        }
    }

    fn resync(&mut self, kind: Kind, seen: HashSet<String>, now: Instant) {
        match kind {
            Kind::Node => {
                for name in self.cache.node_names() {
                    if !seen.contains(&name) {
                        self.cache.remove_node(&name);
                    }
                }
            }
            Kind::Pod => {
                let gone: Vec<String> = self
                    .cache
                    .pods
                    .keys()
                    .filter(|u| !seen.contains(*u))
                    .cloned()
                    .collect();
                for uid in gone {
                    // Assumed pods are ours; the watch has not caught up with them yet.
                    if !self.cache.is_assumed(&uid) {
                        self.on_pod_deleted(&uid, now);
                    }
                }
            }
            Kind::PriorityClass => self.cache.priority_classes.retain(|k, _| seen.contains(k)),
            Kind::Pdb => self.cache.pdbs.retain(|k, _| seen.contains(k)),
            Kind::Namespace => self.cache.namespaces.retain(|k, _| seen.contains(k)),
            Kind::Pvc => self.cache.volumes.pvcs.retain(|k, _| seen.contains(k)),
            Kind::Pv => self.cache.volumes.pvs.retain(|k, _| seen.contains(k)),
            Kind::StorageClass => self.cache.volumes.classes.retain(|k, _| seen.contains(k)),
        }
        if self.synced.insert(kind) {
            tracing::debug!(?kind, "scheduler cache synced");
        }
    }

    fn on_pod(&mut self, info: Arc<PodInfo>, now: Instant) {
        if !info.node_name.is_empty() {
            self.queue.delete(&info.uid);
            self.cache.clear_nominated(&info.uid);
            let prev = self.cache.upsert_bound_pod(info.clone());
            let relevant = prev.as_ref().is_none_or(|p| {
                p.assumed
                    || p.info.labels != info.labels
                    || p.info.deleting != info.deleting
                    || p.info.node_name != info.node_name
            });
            if relevant {
                self.queue.move_for(pod_add_mask(), now);
            }
            return;
        }
        if info.scheduler_name != self.cfg.scheduler_name || info.deleting || info.gated {
            self.queue.delete(&info.uid);
            self.cache.clear_nominated(&info.uid);
            return;
        }
        if self.cache.is_assumed(&info.uid) {
            return;
        }
        self.cache.set_nominated(&info, &info.nominated_node);
        let prio = self.cache.priority(&info);
        self.queue.upsert(info, prio, now);
    }

    fn on_pod_deleted(&mut self, uid: &str, now: Instant) {
        self.queue.delete(uid);
        self.cache.clear_nominated(uid);
        if self.cache.remove_pod(uid).is_some() {
            self.queue.move_for(pod_delete_mask(), now);
        }
    }

    fn on_bound(
        &mut self,
        uid: &str,
        node: usize,
        error: Option<(Option<u16>, String)>,
        now: Instant,
    ) {
        let Some((code, msg)) = error else { return };
        let Some(info) = self.cache.forget(uid) else {
            return;
        };
        self.queue.move_for(pod_delete_mask(), now);
        if matches!(code, Some(404) | Some(409)) {
            // Gone, or bound by someone else: the watch brings the truth.
            tracing::debug!(pod = %info.key(), node, error = %msg, "binding not applied");
            return;
        }
        let mut pending = (*info).clone();
        pending.node_name.clear();
        let pending = Arc::new(pending);
        let prio = self.cache.priority(&pending);
        self.queue.retry(pending.clone(), prio, now);
        self.record_failure(&pending, &format!("Binding rejected: {msg}"));
    }

    async fn schedule_one(&mut self, q: Queued) {
        let info = q.info;
        match cycle::schedule(&mut self.cache, &info, &mut self.sampling, &mut self.rng) {
            Ok(node) => self.assume_and_bind(info, node).await,
            Err(Failure::Fit(diag)) => self.fit_failure(&info, diag),
            Err(Failure::NoNodes) => {
                self.queue.unschedulable(&info.uid, 0, Instant::now());
                self.report(&info, REASON_UNSCHEDULABLE, cycle::NO_NODES, None);
            }
            Err(Failure::Error(msg)) => {
                let prio = self.cache.priority(&info);
                self.queue.retry(info.clone(), prio, Instant::now());
                self.report(&info, REASON_SCHEDULER_ERROR, &msg, None);
            }
        }
    }

    async fn assume_and_bind(&mut self, info: Arc<PodInfo>, node: usize) {
        self.queue.done(&info.uid);
        self.cache.clear_nominated(&info.uid);
        let node_name = self.cache.nodes[node].name.clone();
        let mut assumed = (*info).clone();
        assumed.node_name = node_name.clone();
        assumed.nominated_node.clear();
        self.cache.assume(Arc::new(assumed), node);
        let permit = match self.binds.clone().acquire_owned().await {
            Ok(p) => p,
            Err(_) => return,
        };
        let (client, tx, events) = (self.client.clone(), self.tx.clone(), self.events.clone());
        let record_scheduled = self.cfg.record_scheduled_events;
        self.tasks.spawn(async move {
            let res =
                actions::bind(client, &info.namespace, &info.name, &info.uid, &node_name).await;
            drop(permit);
            let error = match res {
                Ok(()) => {
                    if record_scheduled {
                        events.record(Record {
                            namespace: info.namespace.clone(),
                            name: info.name.clone(),
                            uid: info.uid.clone(),
                            warning: false,
                            reason: "Scheduled",
                            action: "Binding",
                            message: format!(
                                "Successfully assigned {}/{} to {node_name}",
                                info.namespace, info.name
                            ),
                        });
                    }
                    None
                }
                Err(e) => Some((actions::api_code(&e), e.to_string())),
            };
            let _ = tx.send(Msg::Bound {
                uid: info.uid.clone(),
                node,
                error,
            });
        });
    }

    fn fit_failure(&mut self, info: &Arc<PodInfo>, diag: Diagnosis) {
        let now = Instant::now();
        let outcome = match Cycle::prefilter(&self.cache, info) {
            Ok(cycle) => preemption::preempt(&cycle, &diag, &mut self.rng),
            // PreFilter rejected the pod on every node: no eviction can help.
            Err(_) => preemption::without_cycle(&self.cache, info, diag.num_all_nodes),
        };
        let (message, nominated) = match outcome {
            Outcome::NotEligible(m) => (diag.message(Some(&format!("preemption: {m}"))), None),
            Outcome::NoCandidate(m) => {
                let clear = (!info.nominated_node.is_empty()).then_some(String::new());
                if clear.is_some() {
                    self.cache.clear_nominated(&info.uid);
                }
                (diag.message(Some(&m)), clear)
            }
            Outcome::Nominate {
                node,
                victims,
                demote,
            } => {
                let node_name = self.cache.nodes[node].name.clone();
                self.execute_preemption(info, &node_name, victims, demote);
                (diag.message(None), Some(node_name))
            }
        };
        self.queue.unschedulable(&info.uid, diag.plugins, now);
        self.report(info, REASON_UNSCHEDULABLE, &message, nominated.as_deref());
    }

    fn execute_preemption(
        &mut self,
        info: &Arc<PodInfo>,
        node: &str,
        victims: Vec<Arc<PodInfo>>,
        demote: Vec<Arc<PodInfo>>,
    ) {
        tracing::info!(pod = %info.key(), node, victims = victims.len(), "preempting");
        for v in victims {
            self.events.record(Record {
                namespace: v.namespace.clone(),
                name: v.name.clone(),
                uid: v.uid.clone(),
                warning: false,
                reason: "Preempted",
                action: "Preempting",
                message: format!("Preempted by pod {} on node {node}", info.uid),
            });
            let (client, sem, scheduler) = (
                self.client.clone(),
                self.writes.clone(),
                self.cfg.scheduler_name.clone(),
            );
            self.tasks.spawn(async move {
                let _permit = sem.acquire_owned().await;
                if let Err(e) =
                    actions::preempt_victim(client, &v.namespace, &v.name, &v.uid, &scheduler).await
                {
                    tracing::warn!(pod = %v.key(), error = %e, "preempting victim failed");
                }
            });
        }
        for d in demote {
            self.cache.clear_nominated(&d.uid);
            let patch = serde_json::json!({"status": {"nominatedNodeName": null}});
            self.spawn_status(&d, patch);
        }
        let mut nominated = (**info).clone();
        nominated.nominated_node = node.to_string();
        self.cache.set_nominated(&Arc::new(nominated), node);
    }

    fn spawn_status(&mut self, info: &PodInfo, patch: serde_json::Value) {
        let (client, sem) = (self.client.clone(), self.writes.clone());
        let (ns, name, key) = (info.namespace.clone(), info.name.clone(), info.key());
        self.tasks.spawn(async move {
            let _permit = sem.acquire_owned().await;
            if let Err(e) = actions::patch_status(client, &ns, &name, patch).await
                && actions::api_code(&e) != Some(404)
            {
                tracing::warn!(pod = %key, error = %e, "updating pod status failed");
            }
        });
    }

    fn record_failure(&self, info: &PodInfo, message: &str) {
        self.events.record(Record {
            namespace: info.namespace.clone(),
            name: info.name.clone(),
            uid: info.uid.clone(),
            warning: true,
            reason: "FailedScheduling",
            action: "Scheduling",
            message: message.to_string(),
        });
    }

    /// PodScheduled=False (only when it changes) and a FailedScheduling event.
    fn report(&mut self, info: &PodInfo, reason: &str, message: &str, nominated: Option<&str>) {
        let same = info
            .scheduled_condition
            .as_ref()
            .is_some_and(|(s, r, m)| s == "False" && r == reason && m == message);
        if !same || nominated.is_some() {
            let was_false = info
                .scheduled_condition
                .as_ref()
                .is_some_and(|(s, _, _)| s == "False");
            self.spawn_status(
                info,
                actions::unschedulable_status(reason, message, nominated, was_false),
            );
        }
        self.record_failure(info, message);
        tracing::debug!(pod = %info.key(), reason, message, "pod unschedulable");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::QueueConfig;

    #[test]
    fn volume_events_requeue_only_volume_rejections() {
        let mut m = std::collections::HashMap::new();
        assert!(upsert_or_remove(&mut m, "a".into(), Some(1)));
        assert!(!upsert_or_remove(&mut m, "a".into(), Some(1)), "unchanged");
        assert!(upsert_or_remove(&mut m, "a".into(), Some(2)));
        assert!(
            !upsert_or_remove(&mut m, "a".into(), None),
            "deletes never help"
        );
        assert!(m.is_empty());

        let p: k8s_openapi::api::core::v1::Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "d", "uid": "p"}, "spec": {"containers": [{"name": "c"}]}}))
        .expect("pod");
        let mut q = SchedulingQueue::new(QueueConfig::default());
        let t0 = Instant::now();
        q.upsert(Arc::new(PodInfo::from_pod(&p)), 0, t0);
        q.pop(t0);
        q.unschedulable("p", Plugin::VolumeBinding.bit(), t0);
        q.move_for(pod_delete_mask() | pod_add_mask(), t0);
        assert_eq!(q.stats(), (0, 0, 1), "pod events do not help");
        q.move_for(volume_mask(), t0);
        assert_eq!(q.stats(), (0, 1, 0), "claim/volume events do");
    }
}
