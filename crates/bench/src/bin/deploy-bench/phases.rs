//! The measured workloads: the baseline (pods created directly through the API until all
//! are Ready) and the Deployment (create until all available, then a rolling update until
//! complete, with the available-pod minimum from the pod watch).

use crate::env::{Env, NS, Seen, pod_template};
use crate::track::{DepState, Mark, PodTracker, RsState, dep_state, rollout_complete, rs_state};
use anyhow::{Context, Result, anyhow};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedReceiver;

pub const IMAGE_1: &str = "registry.example/web:1";
pub const IMAGE_2: &str = "registry.example/web:2";
const DEPLOYMENT: &str = "web";

/// One measured phase, times in seconds from its start.
#[derive(Debug, Clone, Default)]
pub struct Phase {
    pub name: String,
    pub pods: usize,
    /// Start → goal (all Ready / all available / rollout complete); None on timeout.
    pub secs: Option<f64>,
    pub first_created: f64,
    pub last_created: f64,
    pub last_bound: f64,
    pub last_ready: f64,
    /// Least available pods seen at any pod event during a rollout.
    pub min_available: Option<usize>,
    /// Least `status.availableReplicas` the Deployment reported during a rollout.
    pub min_status_available: Option<i32>,
    pub relists: usize,
}

impl Phase {
    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name, "pods": self.pods, "secs": self.secs,
            "first_created": self.first_created, "last_created": self.last_created,
            "last_bound": self.last_bound, "last_ready": self.last_ready,
            "min_available": self.min_available, "min_status_available": self.min_status_available,
            "relists": self.relists,
        })
    }

    pub fn from_json(v: &Value) -> Phase {
        let f = |k: &str| v[k].as_f64().unwrap_or(0.0);
        Phase {
            name: v["name"].as_str().unwrap_or_default().to_string(),
            pods: v["pods"].as_u64().unwrap_or(0) as usize,
            secs: v["secs"].as_f64(),
            first_created: f("first_created"),
            last_created: f("last_created"),
            last_bound: f("last_bound"),
            last_ready: f("last_ready"),
            min_available: v["min_available"].as_u64().map(|n| n as usize),
            min_status_available: v["min_status_available"]
                .as_i64()
                .and_then(|n| i32::try_from(n).ok()),
            relists: v["relists"].as_u64().unwrap_or(0) as usize,
        }
    }

    /// Fill the pod milestones from the tracker's marks for `image` at or after `start`.
    fn milestones(&mut self, t: &PodTracker, image: Option<usize>, start: Instant) {
        let pick = |marks: &[Mark]| -> Vec<f64> {
            marks
                .iter()
                .filter(|m| image.is_none_or(|i| m.image == i) && m.at >= start)
                .map(|m| m.at.duration_since(start).as_secs_f64())
                .collect()
        };
        let created = pick(&t.created);
        self.first_created = created.first().copied().unwrap_or(0.0);
        self.last_created = created.last().copied().unwrap_or(0.0);
        self.last_bound = pick(&t.bound).last().copied().unwrap_or(0.0);
        self.last_ready = pick(&t.ready).last().copied().unwrap_or(0.0);
        self.relists = t.relists.saturating_sub(1);
    }
}

/// Prints a progress line at most once a second.
struct Progress {
    label: &'static str,
    start: Instant,
    last: Instant,
}

impl Progress {
    fn new(label: &'static str, start: Instant) -> Progress {
        Progress {
            label,
            start,
            last: start,
        }
    }

    fn tick(&mut self, line: impl FnOnce() -> String) {
        if self.last.elapsed() >= Duration::from_secs(1) {
            self.last = Instant::now();
            eprintln!(
                "[{}] {:5.1}s {}",
                self.label,
                self.start.elapsed().as_secs_f64(),
                line()
            );
        }
    }
}

fn counts(t: &PodTracker, image: Option<usize>, since: Instant) -> String {
    let n = |m: &[Mark]| {
        m.iter()
            .filter(|m| image.is_none_or(|i| m.image == i) && m.at >= since)
            .count()
    };
    format!(
        "created {} bound {} ready {} | available now {} of {} pods",
        n(&t.created),
        n(&t.bound),
        n(&t.ready),
        t.available,
        t.len()
    )
}

/// `pods` pods created directly by `clients` concurrent clients; done when all are Ready.
pub async fn baseline(
    env: &mut Env,
    pods: usize,
    clients: usize,
    timeout: Duration,
) -> Result<Phase> {
    let mut rx = env.watch("baseline", None).await?;
    let api: Api<Pod> = Api::namespaced(env.client.clone(), NS);
    let template = pod_template("baseline", IMAGE_1);
    let start = Instant::now();
    let creator = tokio::spawn(r8s_bench::run_concurrent(clients, pods, move |_, i| {
        let (api, mut pod) = (api.clone(), template.clone());
        async move {
            pod["apiVersion"] = json!("v1");
            pod["kind"] = json!("Pod");
            pod["metadata"]["name"] = json!(format!("baseline-{i}"));
            let pod: Pod = serde_json::from_value(pod)?;
            api.create(&PostParams::default(), &pod).await?;
            Ok(())
        }
    }));
    let mut tracker = PodTracker::default();
    let mut progress = Progress::new("baseline", start);
    let deadline = tokio::time::Instant::now() + timeout;
    let mut secs = None;
    while secs.is_none() {
        let Ok(next) = tokio::time::timeout_at(deadline, rx.recv()).await else {
            eprintln!("[baseline] timed out: {}", counts(&tracker, None, start));
            break;
        };
        let (at, seen) = next.ok_or_else(|| anyhow!("watch channel closed"))?;
        if let Seen::Pod(ev) = seen
            && tracker.on_event(*ev, at)
            && tracker.available >= pods
        {
            secs = Some(at.duration_since(start).as_secs_f64());
        }
        progress.tick(|| counts(&tracker, None, start));
    }
    let created = creator.await??;
    eprintln!(
        "[baseline] {} creates by {clients} clients took {:.2}s (p50 {:.1} ms, p99 {:.1} ms)",
        pods,
        created.wall.as_secs_f64(),
        created.summary().p50.as_secs_f64() * 1e3,
        created.summary().p99.as_secs_f64() * 1e3
    );
    let mut phase = Phase {
        name: format!("baseline: {pods} pod creates ({clients} clients) → all Ready"),
        pods,
        secs,
        ..Default::default()
    };
    phase.milestones(&tracker, None, start);
    Ok(phase)
}

/// The watched state of one Deployment run.
struct World {
    pods: PodTracker,
    dep: DepState,
    rss: HashMap<String, RsState>,
    start: Instant,
}

impl World {
    /// Apply one event; returns whether the pod count is meaningful after it (pod events
    /// only).
    fn apply(&mut self, at: Instant, seen: Seen) -> Option<bool> {
        match seen {
            Seen::Pod(ev) => return Some(self.pods.on_event(*ev, at)),
            Seen::Deployment(d) => self.dep = dep_state(&d),
            Seen::ReplicaSet(r) => {
                let name = r.metadata.name.clone().unwrap_or_default();
                let state = rs_state(&r);
                let before = self.rss.insert(name.clone(), state.clone());
                if before.as_ref().is_none_or(|b| b.spec != state.spec) {
                    // The scaling timeline: when each ReplicaSet was resized.
                    eprintln!(
                        "[rs] {:6.2}s {name} ({}) spec.replicas → {} (status: {} replicas, {} available)",
                        at.duration_since(self.start).as_secs_f64(),
                        state.image,
                        state.spec,
                        state.replicas,
                        state.available
                    );
                }
            }
            Seen::ReplicaSetGone(name) => {
                self.rss.remove(&name);
            }
        }
        None
    }
}

/// A Deployment of `replicas` pods (default rolling update: 25 % surge, 25 % unavailable):
/// time to all available, then time for an image change to complete.
pub async fn deployment(
    env: &mut Env,
    replicas: usize,
    timeout: Duration,
) -> Result<(Phase, Phase)> {
    let mut rx = env.watch(DEPLOYMENT, Some(DEPLOYMENT)).await?;
    let want = i32::try_from(replicas).context("replicas")?;
    let api: Api<Deployment> = Api::namespaced(env.client.clone(), NS);
    let d: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": DEPLOYMENT, "namespace": NS},
        "spec": {
            "replicas": want,
            "selector": {"matchLabels": {"app": DEPLOYMENT}},
            "template": pod_template(DEPLOYMENT, IMAGE_1),
        },
    }))?;
    let start = Instant::now();
    let mut world = World {
        pods: PodTracker::default(),
        dep: DepState::default(),
        rss: HashMap::new(),
        start,
    };
    api.create(&PostParams::default(), &d).await?;
    let deadline = tokio::time::Instant::now() + timeout;

    // 1. Until status.availableReplicas == replicas (and the pod watch agrees, so the
    //    rollout's minimum starts from a settled count).
    let mut progress = Progress::new("deploy", start);
    let mut secs = None;
    loop {
        let Some((at, seen)) = next(&mut rx, deadline).await? else {
            eprintln!("[deploy] timed out: {}", counts(&world.pods, None, start));
            break;
        };
        world.apply(at, seen);
        if secs.is_none() && world.dep.available >= want {
            secs = Some(at.duration_since(start).as_secs_f64());
        }
        if secs.is_some() && world.pods.available >= replicas {
            break;
        }
        progress.tick(|| {
            format!(
                "{} | deployment {:?}",
                counts(&world.pods, None, start),
                world.dep
            )
        });
    }
    let mut create = Phase {
        name: format!("Deployment, {replicas} replicas → {replicas} available"),
        pods: replicas,
        secs,
        ..Default::default()
    };
    create.milestones(&world.pods, None, start);
    if secs.is_none() {
        let rollout = Phase {
            name: "rolling update (not started)".into(),
            ..Default::default()
        };
        return Ok((create, rollout));
    }

    // 2. The rolling update, with the available-pod minimum at every pod event.
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": IMAGE_2}]}}}});
    let start = Instant::now();
    world.start = start;
    api.patch(
        DEPLOYMENT,
        &PatchParams::default(),
        &Patch::Strategic(&patch),
    )
    .await?;
    let deadline = tokio::time::Instant::now() + timeout;
    let mut min_available = world.pods.available;
    let mut min_status = world.dep.available;
    let mut progress = Progress::new("rollout", start);
    let mut secs = None;
    loop {
        let Some((at, seen)) = next(&mut rx, deadline).await? else {
            eprintln!(
                "[rollout] timed out: {} | deployment {:?}",
                counts(&world.pods, None, start),
                world.dep
            );
            break;
        };
        if world.apply(at, seen) == Some(true) {
            min_available = min_available.min(world.pods.available);
        }
        if world.dep.generation > 1 {
            min_status = min_status.min(world.dep.available);
        }
        if rollout_complete(&world.dep, &world.rss, IMAGE_2, want) {
            secs = Some(at.duration_since(start).as_secs_f64());
            break;
        }
        let new = world.pods.image_index(IMAGE_2);
        progress.tick(|| {
            format!(
                "new: {} | old pods {} | deployment {:?}",
                counts(&world.pods, new.or(Some(usize::MAX)), start),
                world
                    .pods
                    .image_index(IMAGE_1)
                    .map_or(0, |i| world.pods.count_image(i)),
                world.dep
            )
        });
    }
    let mut rollout = Phase {
        name: format!("rolling update of {replicas} → complete"),
        pods: replicas,
        secs,
        min_available: Some(min_available),
        min_status_available: Some(min_status),
        ..Default::default()
    };
    let new = world.pods.image_index(IMAGE_2).unwrap_or(usize::MAX);
    rollout.milestones(&world.pods, Some(new), start);
    Ok((create, rollout))
}

/// The next watched event, or None at the deadline.
async fn next(
    rx: &mut UnboundedReceiver<(Instant, Seen)>,
    deadline: tokio::time::Instant,
) -> Result<Option<(Instant, Seen)>> {
    match tokio::time::timeout_at(deadline, rx.recv()).await {
        Ok(Some(ev)) => Ok(Some(ev)),
        Ok(None) => Err(anyhow!("watch channel closed")),
        Err(_) => Ok(None),
    }
}
