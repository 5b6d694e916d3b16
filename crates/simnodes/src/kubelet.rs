//! The pretend kubelet: one watch for every bound pod (`spec.nodeName!=`), a timer heap for
//! "becomes ready after `ready_delay`" and "exits after running", and a bounded pool of
//! writers for status patches and final deletions.
//!
//! Per pod it keeps only a few fields (node, IP, state); the full object is held just while
//! a write for it is pending, so 150k running pods stay cheap.

use crate::{EXIT_CODE_ANNOTATION, SimOptions, api_code, ipam, nodes, status};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Delay before retrying a failed write.
const RETRY_DELAY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum ActionKind {
    Start,
    Finish,
    Delete,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Waiting for `ready_delay` before reporting Running.
    Starting,
    /// Reported Running at this time.
    Running { started: String },
    /// Terminal (Succeeded/Failed) or rejected.
    Finished,
    /// Marked for deletion; we delete it with grace period 0.
    Deleting,
}

struct SimPod {
    namespace: String,
    name: String,
    node: usize,
    ip: Option<Ipv4Addr>,
    state: State,
    /// The latest object, kept only while a write still needs it.
    object: Option<Arc<Pod>>,
    inflight: bool,
    /// Counted in its node's active pods (admission).
    counted: bool,
}

/// Stop counting `p` against its node (it finished or went away) and free its address.
fn retire(active: &mut [usize], ips: &mut [ipam::NodeIps], p: &mut SimPod) {
    if p.counted {
        active[p.node] = active[p.node].saturating_sub(1);
        p.counted = false;
    }
    if let Some(ip) = p.ip.take() {
        ips[p.node].release(ip);
    }
}

/// One API write for the worker pool.
struct Job {
    uid: String,
    kind: ActionKind,
    namespace: String,
    name: String,
    /// The status to merge-patch (Start/Finish), or nothing for Delete.
    status: Option<Value>,
}

struct JobResult {
    uid: String,
    kind: ActionKind,
    outcome: Result<(), kube::Error>,
}

struct Kubelet {
    opts: Arc<SimOptions>,
    node_index: HashMap<String, usize>,
    ips: Vec<ipam::NodeIps>,
    active_per_node: Vec<usize>,
    pods: HashMap<String, SimPod>,
    timers: BinaryHeap<Reverse<(Instant, u64, ActionKind, String)>>,
    seq: u64,
    jobs: mpsc::UnboundedSender<Job>,
    /// uids seen since the last watch (re)start, to drop pods that vanished meanwhile.
    relist: Option<HashSet<String>>,
}

fn exit_code(pod: &Pod) -> Option<i32> {
    let policy = pod
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always");
    if policy == "Always" {
        return None;
    }
    pod.metadata
        .annotations
        .as_ref()?
        .get(EXIT_CODE_ANNOTATION)?
        .trim()
        .parse()
        .ok()
}

fn restart_policy(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always")
}

impl Kubelet {
    fn schedule(&mut self, at: Instant, kind: ActionKind, uid: &str) {
        self.seq += 1;
        self.timers
            .push(Reverse((at, self.seq, kind, uid.to_string())));
    }

    fn release(&mut self, uid: &str) {
        if let Some(mut p) = self.pods.remove(uid) {
            retire(&mut self.active_per_node, &mut self.ips, &mut p);
        }
    }

    fn on_apply(&mut self, pod: Pod) {
        let Some(uid) = pod.metadata.uid.clone() else {
            return;
        };
        let node_name = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .unwrap_or("");
        let Some(&node) = self.node_index.get(node_name) else {
            return;
        };
        if let Some(seen) = self.relist.as_mut() {
            seen.insert(uid.clone());
        }
        let phase = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .unwrap_or("Pending")
            .to_string();
        let deleting = pod.metadata.deletion_timestamp.is_some();
        let now = Instant::now();
        if let Some(p) = self.pods.get_mut(&uid) {
            if deleting && p.state != State::Deleting {
                p.state = State::Deleting;
                p.object = None;
                self.schedule(now, ActionKind::Delete, &uid);
            } else if matches!(phase.as_str(), "Succeeded" | "Failed")
                && p.state != State::Finished
                && !deleting
            {
                // Finished by someone else (or our own write echoing back).
                p.state = State::Finished;
                p.object = None;
                retire(&mut self.active_per_node, &mut self.ips, p);
            } else if p.object.is_some() {
                p.object = Some(Arc::new(pod));
            }
            return;
        }
        // A pod we have not seen: new, or known from before a restart/relist.
        let mut p = SimPod {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            node,
            ip: None,
            state: State::Starting,
            object: None,
            inflight: false,
            counted: false,
        };
        if deleting {
            p.state = State::Deleting;
            self.pods.insert(uid.clone(), p);
            self.schedule(now, ActionKind::Delete, &uid);
            return;
        }
        if matches!(phase.as_str(), "Succeeded" | "Failed") {
            p.state = State::Finished;
            self.pods.insert(uid, p);
            return;
        }
        let status = pod.status.as_ref();
        let pod_ip = status
            .and_then(|s| s.pod_ip.as_deref())
            .and_then(|ip| ip.parse::<Ipv4Addr>().ok());
        self.active_per_node[node] += 1;
        p.counted = true;
        if phase == "Running" && pod_ip.is_some() {
            // Already started (we restarted): adopt its address.
            if let Some(ip) = pod_ip {
                self.ips[node].claim(ip);
                p.ip = Some(ip);
            }
            let started = status
                .and_then(|s| s.start_time.as_ref())
                .map(|t| t.0.to_string())
                .unwrap_or_else(nodes::now_rfc3339);
            p.state = State::Running { started };
            if exit_code(&pod).is_some() {
                p.object = Some(Arc::new(pod));
                self.schedule(now + self.opts.ready_delay, ActionKind::Finish, &uid);
            }
            self.pods.insert(uid, p);
            return;
        }
        p.object = Some(Arc::new(pod));
        self.pods.insert(uid.clone(), p);
        self.schedule(now + self.opts.ready_delay, ActionKind::Start, &uid);
    }

    /// A due timer: build the write and hand it to the pool.
    fn fire(&mut self, kind: ActionKind, uid: &str) {
        let capacity = self.opts.pods_per_node;
        let Some(p) = self.pods.get_mut(uid) else {
            return;
        };
        if p.inflight {
            return;
        }
        let at = nodes::now_rfc3339();
        let status = match (kind, &p.state) {
            (ActionKind::Delete, State::Deleting) => None,
            (ActionKind::Start, State::Starting) => {
                let Some(obj) = p.object.clone() else { return };
                let node = p.node;
                // Admission: a full node rejects the pod, as the kubelet does.
                let used = self.active_per_node[node].saturating_sub(1);
                let ip = if used < capacity as usize {
                    self.ips[node].allocate()
                } else {
                    None
                };
                let Some(p) = self.pods.get_mut(uid) else {
                    return;
                };
                match ip {
                    Some(ip) => {
                        p.ip = Some(ip);
                        let host_ip = ipam::node_ip(self.opts.global_index(node));
                        Some(status::running(&obj, host_ip, ip, &at))
                    }
                    None => Some(status::rejected_out_of_pods(used, capacity)),
                }
            }
            (ActionKind::Finish, State::Running { started }) => {
                let Some(obj) = p.object.clone() else { return };
                let code = exit_code(&obj).unwrap_or(0);
                Some(status::finished(
                    &obj,
                    code,
                    restart_policy(&obj),
                    started,
                    &at,
                ))
            }
            _ => return,
        };
        let Some(p) = self.pods.get_mut(uid) else {
            return;
        };
        p.inflight = true;
        let job = Job {
            uid: uid.to_string(),
            kind,
            namespace: p.namespace.clone(),
            name: p.name.clone(),
            status,
        };
        if self.jobs.send(job).is_err() {
            tracing::warn!("simulated kubelet writer pool is gone");
        }
    }

    fn on_result(&mut self, r: JobResult) {
        let now = Instant::now();
        let ready_delay = self.opts.ready_delay;
        let Some(p) = self.pods.get_mut(&r.uid) else {
            return;
        };
        p.inflight = false;
        match r.outcome {
            Ok(()) => match r.kind {
                ActionKind::Start if p.state == State::Starting => {
                    if p.ip.is_none() {
                        // Rejected at admission.
                        p.state = State::Finished;
                        p.object = None;
                        retire(&mut self.active_per_node, &mut self.ips, p);
                        return;
                    }
                    p.state = State::Running {
                        started: nodes::now_rfc3339(),
                    };
                    if p.object.as_deref().and_then(exit_code).is_some() {
                        self.schedule(now + ready_delay, ActionKind::Finish, &r.uid);
                    } else {
                        p.object = None;
                    }
                }
                ActionKind::Finish if matches!(p.state, State::Running { .. }) => {
                    let restarting = p.object.as_deref().is_some_and(|o| {
                        exit_code(o) != Some(0) && restart_policy(o) == "OnFailure"
                    });
                    p.object = None;
                    if !restarting {
                        p.state = State::Finished;
                        retire(&mut self.active_per_node, &mut self.ips, p);
                    }
                }
                _ => {}
            },
            Err(e) if api_code(&e) == Some(404) => {
                let uid = r.uid.clone();
                self.release(&uid);
            }
            Err(e) => {
                tracing::debug!(pod = %p.name, error = %e, "simulated kubelet write failed; retrying");
                if r.kind == ActionKind::Start
                    && let Some(ip) = p.ip.take()
                {
                    let node = p.node;
                    self.ips[node].release(ip);
                }
                self.schedule(now + RETRY_DELAY, r.kind, &r.uid);
            }
        }
    }

    fn on_relist_done(&mut self) {
        let Some(seen) = self.relist.take() else {
            return;
        };
        let gone: Vec<String> = self
            .pods
            .keys()
            .filter(|u| !seen.contains(*u))
            .cloned()
            .collect();
        for uid in gone {
            self.release(&uid);
        }
    }
}

async fn execute(client: &kube::Client, job: &Job) -> Result<(), kube::Error> {
    let api: Api<Pod> = Api::namespaced(client.clone(), &job.namespace);
    match &job.status {
        Some(status) => {
            let patch = json!({"status": status});
            api.patch_status(&job.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map(|_| ())
        }
        None => {
            let dp = DeleteParams {
                grace_period_seconds: Some(0),
                preconditions: Some(Preconditions {
                    uid: Some(job.uid.clone()),
                    resource_version: None,
                }),
                ..Default::default()
            };
            api.delete(&job.name, &dp).await.map(|_| ())
        }
    }
}

/// Run the simulated kubelet for every node of `opts` until the pod watch ends.
pub async fn run(client: kube::Client, opts: Arc<SimOptions>) -> anyhow::Result<()> {
    let (job_tx, job_rx) = mpsc::unbounded_channel::<Job>();
    let (res_tx, mut res_rx) = mpsc::unbounded_channel::<JobResult>();
    let job_rx = Arc::new(tokio::sync::Mutex::new(job_rx));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..opts.write_concurrency.max(1) {
        let (client, rx, tx) = (client.clone(), job_rx.clone(), res_tx.clone());
        workers.spawn(async move {
            loop {
                let job = { rx.lock().await.recv().await };
                let Some(job) = job else { return };
                let outcome = execute(&client, &job).await;
                if tx
                    .send(JobResult {
                        uid: job.uid,
                        kind: job.kind,
                        outcome,
                    })
                    .is_err()
                {
                    return;
                }
            }
        });
    }
    let node_index = (0..opts.count)
        .map(|i| (nodes::node_name(&opts.name_prefix, i), i))
        .collect();
    let mut k = Kubelet {
        node_index,
        ips: (0..opts.count)
            .map(|i| ipam::NodeIps::new(opts.global_index(i)))
            .collect(),
        active_per_node: vec![0; opts.count],
        pods: HashMap::new(),
        timers: BinaryHeap::new(),
        seq: 0,
        jobs: job_tx,
        relist: None,
        opts,
    };
    let api: Api<Pod> = Api::all(client);
    let mut events = watcher(api, watcher::Config::default().fields("spec.nodeName!="))
        .default_backoff()
        .boxed();
    loop {
        // Fire every due timer first.
        let now = Instant::now();
        while let Some(Reverse((at, _, _, _))) = k.timers.peek() {
            if *at > now {
                break;
            }
            if let Some(Reverse((_, _, kind, uid))) = k.timers.pop() {
                k.fire(kind, &uid);
            }
        }
        let next = k.timers.peek().map(|Reverse((at, ..))| *at);
        tokio::select! {
            ev = events.next() => match ev {
                Some(Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p))) => k.on_apply(p),
                Some(Ok(watcher::Event::Delete(p))) => {
                    if let Some(uid) = p.metadata.uid.as_deref() {
                        k.release(uid);
                    }
                }
                Some(Ok(watcher::Event::Init)) => k.relist = Some(HashSet::new()),
                Some(Ok(watcher::Event::InitDone)) => k.on_relist_done(),
                Some(Err(e)) => tracing::warn!(error = %e, "simulated kubelet pod watch error"),
                None => anyhow::bail!("simulated kubelet pod watch ended"),
            },
            Some(r) = res_rx.recv() => k.on_result(r),
            _ = sleep_until_opt(next) => {}
        }
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
