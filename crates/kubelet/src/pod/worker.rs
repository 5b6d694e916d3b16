//! One task per pod: each sync compares the pod spec with what the runtime has and
//! acts — sandbox, init containers in order, app containers with restart policy and
//! crash-loop back-off, probes — then writes the status if it changed. Woken by pod
//! updates, runtime changes (the relister), probe results and back-off timers.

use super::PodContext;
use super::backoff::Backoff;
use super::container::Kind;
use super::events::{self, WARNING, reason};
use super::probe::{ProbeHandle, ProbeState};
use super::runtime::{ContainerInfo, PodRuntime};
use super::status;
use super::volumes::PodDirs;
use crate::error::Result;
use k8s_openapi::api::core::v1::{Container, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{Notify, watch};
use tracing::{debug, info, warn};

/// How often, and how long apart, a SIGKILLed container's status is re-read for its
/// OOM reason ([`PodRuntime::awaiting_oom_reason`]).
const OOM_REASON_POLLS: usize = 10;
const OOM_REASON_POLL: Duration = Duration::from_millis(200);

/// Periodic resync (refreshes configMap/secret/downwardAPI/projected volumes, retries).
const RESYNC: Duration = Duration::from_secs(60);
/// Volumes with API-backed content are refreshed at most this often.
pub(super) const VOLUME_REFRESH: Duration = Duration::from_secs(30);

/// What a sync decided about the worker's future.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    Continue,
    /// The pod is gone (deleted and cleaned up): the worker ends.
    Done,
}

pub(super) struct Worker {
    pub(super) ctx: Arc<PodContext>,
    pub(super) services: super::Services,
    pub(super) uid: String,
    pub(super) dirs: PodDirs,
    pub(super) crash_backoff: Backoff,
    pub(super) pull_backoff: Backoff,
    pub(super) pull_failed_at: HashMap<String, Instant>,
    /// The last pull error per image, for the back-off message (as upstream).
    pub(super) pull_errors: HashMap<String, String>,
    pub(super) sandbox_backoff: Backoff,
    pub(super) sandbox_failed_at: Option<Instant>,
    /// Why containers are waiting, by name.
    pub(super) waiting: HashMap<String, (String, String)>,
    pub(super) probes: HashMap<String, ProbeHandle>,
    pub(super) sandbox_ips: HashMap<String, String>,
    pub(super) volumes: Option<(HashMap<String, PathBuf>, Instant)>,
    /// The labels and annotations the volumes were last written with (downwardAPI files).
    pub(super) volume_meta: u64,
    /// Projected service-account tokens issued for the pod.
    pub(super) tokens: super::refs::Tokens,
    pub(super) last_written: Option<Value>,
    pub(super) start_time: Option<String>,
    pub(super) wake: Arc<Notify>,
    pub(super) next_wake: Option<Instant>,
}

/// Converts a CRI nanosecond timestamp to an Instant (clamped to now).
pub(super) fn instant_of(nanos: i64) -> Instant {
    let t = SystemTime::UNIX_EPOCH + Duration::from_nanos(nanos.max(0) as u64);
    let ago = SystemTime::now().duration_since(t).unwrap_or_default();
    Instant::now().checked_sub(ago).unwrap_or_else(Instant::now)
}

pub(super) fn restart_policy(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always")
}

/// Whether an exited container should run again under the pod's restart policy.
pub(super) fn should_restart(policy: &str, exit_code: i32) -> bool {
    match policy {
        "Never" => false,
        "OnFailure" => exit_code != 0,
        _ => true,
    }
}

impl Worker {
    pub(super) fn new(
        ctx: Arc<PodContext>,
        services: super::Services,
        uid: String,
        wake: Arc<Notify>,
    ) -> Self {
        let dirs = PodDirs::new(&ctx.cfg.data_dir, &uid);
        Worker {
            ctx,
            services,
            uid,
            dirs,
            crash_backoff: Backoff::default(),
            pull_backoff: Backoff::default(),
            pull_failed_at: HashMap::new(),
            pull_errors: HashMap::new(),
            sandbox_backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(60)),
            sandbox_failed_at: None,
            waiting: HashMap::new(),
            probes: HashMap::new(),
            sandbox_ips: HashMap::new(),
            volumes: None,
            volume_meta: 0,
            tokens: Default::default(),
            last_written: None,
            start_time: None,
            wake,
            next_wake: None,
        }
    }

    /// Asks for another sync no later than `at`.
    pub(super) fn wake_at(&mut self, at: Instant) {
        self.next_wake = Some(self.next_wake.map_or(at, |w| w.min(at)));
    }

    /// The worker loop; `pod_rx` carries the latest pod (None: deleted from the API).
    /// A closed channel (agent shutdown) ends the worker without touching containers.
    pub(super) async fn run(mut self, mut pod_rx: watch::Receiver<Option<Arc<Pod>>>) {
        loop {
            let pod = pod_rx.borrow_and_update().clone();
            let outcome = match pod {
                None => {
                    self.cleanup_removed().await;
                    Outcome::Done
                }
                Some(p) => match self.sync(&p).await {
                    Ok(o) => o,
                    Err(e) => {
                        warn!(pod = %p.metadata.name.as_deref().unwrap_or_default(), "sync failed: {e}");
                        self.wake_at(Instant::now() + Duration::from_secs(2));
                        Outcome::Continue
                    }
                },
            };
            if outcome == Outcome::Done {
                return;
            }
            let until = self
                .next_wake
                .take()
                .unwrap_or_else(|| Instant::now() + RESYNC);
            tokio::select! {
                r = pod_rx.changed() => if r.is_err() { return },
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep_until(until.into()) => {}
            }
        }
    }

    pub(super) fn pod_name(pod: &Pod) -> String {
        format!(
            "{}/{}",
            pod.metadata.namespace.as_deref().unwrap_or_default(),
            pod.metadata.name.as_deref().unwrap_or_default()
        )
    }

    /// One reconciliation of the pod.
    async fn sync(&mut self, pod: &Pod) -> Result<Outcome> {
        if pod.metadata.deletion_timestamp.is_some() {
            let grace = pod.metadata.deletion_grace_period_seconds.unwrap_or(30);
            self.kill_pod(pod, grace).await;
            self.remove_all().await;
            self.delete_object(pod).await?;
            info!(pod = %Self::pod_name(pod), "pod terminated and removed");
            return Ok(Outcome::Done);
        }
        if self.start_time.is_none() {
            self.start_time = Some(
                pod.status
                    .as_ref()
                    .and_then(|s| s.start_time.as_ref())
                    .map(|t| t.0.to_string())
                    .unwrap_or_else(|| {
                        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    }),
            );
        }
        let api_phase = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .unwrap_or("");
        if status::is_terminal(api_phase) {
            // Finished pods never run again; free the sandbox (its IP) and wait for deletion.
            self.stop_sandboxes().await;
            return Ok(Outcome::Continue);
        }
        if let Some(forced) = self.deadline_exceeded(pod) {
            let grace = pod
                .spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds)
                .unwrap_or(30);
            self.kill_pod(pod, grace).await;
            let rt = PodRuntime::load(&self.ctx.cri, &self.uid).await?;
            self.write_status(pod, &rt, "", false, Some(forced)).await?;
            return Ok(Outcome::Continue);
        }

        let t0 = Instant::now();
        let mut rt = PodRuntime::load(&self.ctx.cri, &self.uid).await?;
        debug!(elapsed = ?t0.elapsed(), "runtime state loaded");
        let Some((sandbox_id, attempt, pod_ip)) = self.ensure_sandbox(pod, &rt).await? else {
            self.write_status(pod, &rt, "", false, None).await?;
            return Ok(Outcome::Continue);
        };
        let sandbox_cfg =
            super::sandbox::sandbox_config(pod, &self.ctx.cfg, &self.dirs.logs(), attempt);
        if rt.newest_sandbox().map(|s| s.id.as_str()) != Some(sandbox_id.as_str()) {
            rt = PodRuntime::load(&self.ctx.cri, &self.uid).await?;
        }
        let acted = self
            .sync_containers(pod, &rt, &sandbox_id, &sandbox_cfg, &pod_ip)
            .await?;
        if acted {
            rt = PodRuntime::load(&self.ctx.cri, &self.uid).await?;
        }
        self.refresh_volumes(pod, &pod_ip).await;
        // A kill's OOM reason may trail the exit by a moment: wait for it (2 s at most)
        // rather than report `Error` for good.
        for _ in 0..OOM_REASON_POLLS {
            let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX);
            if !rt.awaiting_oom_reason(now) {
                break;
            }
            tokio::time::sleep(OOM_REASON_POLL).await;
            rt = PodRuntime::load(&self.ctx.cri, &self.uid).await?;
        }
        for g in rt.garbage() {
            if let Err(e) = self.ctx.cri.remove_container(&g.id).await {
                debug!("removing old container {}: {e}", g.id);
            }
        }
        debug!(elapsed = ?t0.elapsed(), "containers synced");
        let phase = self.write_status(pod, &rt, &pod_ip, true, None).await?;
        debug!(elapsed = ?t0.elapsed(), "status written");
        if status::is_terminal(&phase) {
            self.stop_sandboxes().await;
        }
        Ok(Outcome::Continue)
    }

    /// `activeDeadlineSeconds` exceeded: (phase, reason, message).
    fn deadline_exceeded(
        &mut self,
        pod: &Pod,
    ) -> Option<(&'static str, &'static str, &'static str)> {
        let ads = pod.spec.as_ref()?.active_deadline_seconds?;
        let start = chrono::DateTime::parse_from_rfc3339(self.start_time.as_deref()?).ok()?;
        let end = start + chrono::Duration::seconds(ads);
        let left = end.signed_duration_since(chrono::Utc::now());
        if left > chrono::TimeDelta::zero() {
            let at = Instant::now() + left.to_std().unwrap_or_default();
            self.wake_at(at);
            return None;
        }
        Some((
            "Failed",
            "DeadlineExceeded",
            "Pod was active on the node longer than the specified deadline",
        ))
    }

    /// Init containers in order, then app containers. Returns whether anything changed.
    async fn sync_containers(
        &mut self,
        pod: &Pod,
        rt: &PodRuntime,
        sandbox_id: &str,
        sandbox_cfg: &crate::cri::api::PodSandboxConfig,
        pod_ip: &str,
    ) -> Result<bool> {
        let Some(spec) = pod.spec.as_ref() else {
            return Ok(false);
        };
        let policy = restart_policy(pod).to_string();
        let mut acted = false;
        // Adopted or restarted containers get their probes (re)started.
        self.probes
            .retain(|id, _| rt.containers.iter().any(|c| &c.id == id && c.running()));
        for c in rt.running() {
            if c.sandbox_id == sandbox_id && !self.probes.contains_key(&c.id) {
                let app = spec.containers.iter().find(|s| s.name == c.name);
                let init = spec
                    .init_containers
                    .iter()
                    .flatten()
                    .find(|s| s.name == c.name);
                if let Some(sc) = app {
                    self.spawn_probes(pod, sc, false, c, pod_ip);
                } else if let Some(sc) = init {
                    self.spawn_probes(pod, sc, true, c, pod_ip);
                }
            }
        }
        acted |= self
            .sync_ephemeral(pod, rt, sandbox_id, sandbox_cfg, pod_ip)
            .await?;
        for ic in spec.init_containers.iter().flatten() {
            let sidecar = ic.restart_policy.as_deref() == Some("Always");
            let cur = rt.in_sandbox(sandbox_id, &ic.name);
            match cur {
                Some(x) if x.exited() && x.exit_code == 0 && !sidecar => continue,
                Some(x) if x.running() => {
                    if sidecar {
                        continue;
                    }
                    return Ok(acted);
                }
                Some(x) if x.exited() => {
                    if policy == "Never" && !sidecar {
                        return Ok(acted);
                    }
                    acted |= self
                        .restart_exited(pod, ic, Kind::Init, x, sandbox_id, sandbox_cfg, pod_ip)
                        .await?;
                    if !sidecar {
                        return Ok(acted);
                    }
                }
                Some(x) => {
                    let _ = self.ctx.cri.remove_container(&x.id).await;
                    acted |= self
                        .start(
                            pod,
                            ic,
                            Kind::Init,
                            x.attempt,
                            sandbox_id,
                            sandbox_cfg,
                            pod_ip,
                            None,
                        )
                        .await?;
                    return Ok(acted);
                }
                None => {
                    let attempt = rt.latest(&ic.name).map(|l| l.attempt + 1).unwrap_or(0);
                    acted |= self
                        .start(
                            pod,
                            ic,
                            Kind::Init,
                            attempt,
                            sandbox_id,
                            sandbox_cfg,
                            pod_ip,
                            None,
                        )
                        .await?;
                    if !sidecar {
                        return Ok(acted);
                    }
                }
            }
        }
        for c in &spec.containers {
            let cur = rt.in_sandbox(sandbox_id, &c.name);
            match cur {
                None => {
                    let latest = rt.latest(&c.name);
                    if latest.is_some_and(|l| l.exited() && !should_restart(&policy, l.exit_code)) {
                        continue;
                    }
                    let attempt = latest.map(|l| l.attempt + 1).unwrap_or(0);
                    acted |= self
                        .start(
                            pod,
                            c,
                            Kind::App,
                            attempt,
                            sandbox_id,
                            sandbox_cfg,
                            pod_ip,
                            None,
                        )
                        .await?;
                }
                Some(x) if x.running() => {
                    let image_changed = x
                        .spec_image()
                        .is_some_and(|i| Some(i) != c.image.as_deref());
                    let failed = self.probes.get(&x.id).and_then(|p| p.get().failed);
                    if image_changed || failed.is_some() {
                        // Upstream's wording of the Killing event for these restarts.
                        let mut why = match failed {
                            Some(kind) => {
                                format!("Container {} failed {} probe", c.name, kind.lower())
                            }
                            None => format!("Container {} definition changed", c.name),
                        };
                        if image_changed || policy != "Never" {
                            why.push_str(", will be restarted");
                        }
                        info!(pod = %Self::pod_name(pod), container = %c.name, "{why}");
                        // A probe's own grace period applies to kills it caused only.
                        let probe = match failed {
                            Some(super::probe::ProbeKind::Startup) => c.startup_probe.as_ref(),
                            Some(_) => c.liveness_probe.as_ref(),
                            None => None,
                        };
                        let grace = probe
                            .and_then(|p| p.termination_grace_period_seconds)
                            .or(spec.termination_grace_period_seconds)
                            .unwrap_or(30);
                        self.stop_container(pod, c, x, grace, Some(&why)).await;
                        acted = true;
                        // The exit is handled by the next sync (restart policy, back-off).
                        self.wake.notify_one();
                    }
                }
                Some(x) if x.exited() => {
                    if should_restart(&policy, x.exit_code) {
                        acted |= self
                            .restart_exited(pod, c, Kind::App, x, sandbox_id, sandbox_cfg, pod_ip)
                            .await?;
                    }
                }
                Some(x) => {
                    // Created but never started (e.g. the agent stopped in between).
                    let _ = self.ctx.cri.remove_container(&x.id).await;
                    acted |= self
                        .start(
                            pod,
                            c,
                            Kind::App,
                            x.attempt,
                            sandbox_id,
                            sandbox_cfg,
                            pod_ip,
                            None,
                        )
                        .await?;
                }
            }
        }
        Ok(acted)
    }

    /// Starts ephemeral (debug) containers added since the last sync, even while init
    /// containers run, as upstream. Each runs once: never restarted, not even in a new
    /// sandbox. One with a target waits until that container runs, then joins its
    /// process namespace.
    async fn sync_ephemeral(
        &mut self,
        pod: &Pod,
        rt: &PodRuntime,
        sandbox_id: &str,
        sandbox_cfg: &crate::cri::api::PodSandboxConfig,
        pod_ip: &str,
    ) -> Result<bool> {
        let mut acted = false;
        let list = pod
            .spec
            .as_ref()
            .and_then(|s| s.ephemeral_containers.as_deref())
            .unwrap_or_default();
        for ec in list {
            if rt.latest(&ec.name).is_some() {
                continue;
            }
            let Some(c) = super::container::ephemeral_as_container(ec) else {
                continue;
            };
            let target = match ec
                .target_container_name
                .as_deref()
                .filter(|t| !t.is_empty())
            {
                Some(t) => match rt.in_sandbox(sandbox_id, t).filter(|x| x.running()) {
                    Some(x) => Some(x.id.clone()),
                    None => continue,
                },
                None => None,
            };
            acted |= self
                .start(
                    pod,
                    &c,
                    Kind::Ephemeral,
                    0,
                    sandbox_id,
                    sandbox_cfg,
                    pod_ip,
                    target.as_deref(),
                )
                .await?;
        }
        Ok(acted)
    }

    /// Restarts an exited container unless it is in crash-loop back-off.
    #[allow(clippy::too_many_arguments)]
    async fn restart_exited(
        &mut self,
        pod: &Pod,
        c: &Container,
        kind: Kind,
        x: &ContainerInfo,
        sandbox_id: &str,
        sandbox_cfg: &crate::cri::api::PodSandboxConfig,
        pod_ip: &str,
    ) -> Result<bool> {
        let now = Instant::now();
        let since = instant_of(x.finished_at);
        if let Some(until) = self.crash_backoff.in_backoff_until(&c.name, since, now) {
            let delay = self.crash_backoff.delay(&c.name).unwrap_or_default();
            let desc = events::pod_desc(pod);
            self.services.events.event(
                &events::container_ref(pod, c, kind),
                WARNING,
                reason::BACK_OFF,
                &format!(
                    "Back-off restarting failed container {} in pod {desc}",
                    c.name
                ),
            );
            let msg = format!(
                "back-off {} restarting failed container={} pod={desc}",
                super::pull::go_duration(delay),
                c.name,
            );
            self.waiting
                .insert(c.name.clone(), ("CrashLoopBackOff".into(), msg));
            self.wake_at(until);
            return Ok(false);
        }
        self.crash_backoff.next(&c.name, now);
        self.start(
            pod,
            c,
            kind,
            x.attempt + 1,
            sandbox_id,
            sandbox_cfg,
            pod_ip,
            None,
        )
        .await
    }

    /// Starts the probes of running container `c` (spec `spec`; `init` for a sidecar).
    pub(super) fn spawn_probes(
        &mut self,
        pod: &Pod,
        spec: &Container,
        init: bool,
        c: &ContainerInfo,
        pod_ip: &str,
    ) {
        let target = super::probe::Target {
            cri: self.ctx.cri.clone(),
            container_id: c.id.clone(),
            pod_ip: pod_ip.to_string(),
            ports: spec.ports.clone().unwrap_or_default(),
        };
        let started = SystemTime::UNIX_EPOCH + Duration::from_nanos(c.started_at.max(0) as u64);
        let (recorder, obj) = (
            self.services.events.clone(),
            events::container_ref(pod, spec, if init { Kind::Init } else { Kind::App }),
        );
        let on_failure: super::probe::OnFailure =
            Arc::new(move |msg: &str| recorder.event(&obj, WARNING, reason::UNHEALTHY, msg));
        if let Some(h) = super::probe::spawn(target, spec, started, self.wake.clone(), on_failure) {
            self.probes.insert(c.id.clone(), h);
        }
    }

    /// Computes and (when changed) writes the status; returns the phase.
    async fn write_status(
        &mut self,
        pod: &Pod,
        rt: &PodRuntime,
        pod_ip: &str,
        sandbox_ready: bool,
        forced: Option<(&str, &str, &str)>,
    ) -> Result<String> {
        let probes: HashMap<String, ProbeState> = self
            .probes
            .iter()
            .map(|(k, v)| (k.clone(), v.get()))
            .collect();
        let host_ip = self.ctx.cfg.node_ip.to_string();
        let start_time = self.start_time.clone().unwrap_or_default();
        let st = status::compute(&status::Input {
            pod,
            rt,
            pod_ip,
            sandbox_ready,
            host_ip: &host_ip,
            probes: &probes,
            waiting: &self.waiting,
            forced,
            start_time: &start_time,
        });
        let phase = st["phase"].as_str().unwrap_or("Pending").to_string();
        if self.last_written.as_ref() != Some(&st) {
            let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
            let name = pod.metadata.name.as_deref().unwrap_or_default();
            let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), ns);
            let patch = json!({"metadata": {"uid": self.uid}, "status": st});
            match api
                .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => self.last_written = Some(st),
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(phase)
    }

    async fn delete_object(&self, pod: &Pod) -> Result<()> {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), ns);
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(self.uid.clone()),
                resource_version: None,
            }),
            ..Default::default()
        };
        match api.delete(name, &dp).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_policies() {
        assert!(should_restart("Always", 0));
        assert!(should_restart("OnFailure", 1));
        assert!(!should_restart("OnFailure", 0));
        assert!(!should_restart("Never", 1));
    }

    #[test]
    fn instants_from_nanos() {
        let now_ns = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as i64;
        let i = instant_of(now_ns - 5_000_000_000);
        let ago = Instant::now().duration_since(i);
        assert!(
            ago >= Duration::from_secs(4) && ago <= Duration::from_secs(6),
            "{ago:?}"
        );
    }
}
