//! What a pod worker does to the runtime: create and start a container once its image is
//! there (see `image.rs`) — env, volumes, postStart hook, probes —, stop containers
//! gracefully (preStop hook, grace period) and remove everything the pod left behind.
//! Each step records upstream's events (`Created`, `Started`, `Failed`, `FailedMount`,
//! `Killing`, `FailedKillPod`, hook failures).

use super::container::{Kind, Plan, container_config};
use super::env::{DownwardContext, container_env, services_env};
use super::events::{NORMAL, Recorder, WARNING, container_ref, pod_ref, reason};
use super::refs::{ObjectCache, RefError};
use super::runtime::{ContainerInfo, PodRuntime};
use super::worker::Worker;
use crate::error::Result;
use k8s_openapi::api::core::v1::{Container, Pod};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};

/// A hash of the pod's labels and annotations (what downwardAPI volumes show).
fn metadata_fingerprint(pod: &Pod) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    pod.metadata.labels.hash(&mut h);
    pod.metadata.annotations.hash(&mut h);
    h.finish()
}

/// Upstream never stops a container with less than this grace.
const MIN_GRACE_SECS: i64 = 2;

impl Worker {
    /// Volumes of the pod (re-read from the API at most every 30 s, and when the pod's
    /// labels or annotations changed).
    async fn volume_paths(
        &mut self,
        pod: &Pod,
        cache: &mut ObjectCache,
        ctx: &DownwardContext,
    ) -> std::result::Result<
        std::collections::HashMap<String, std::path::PathBuf>,
        super::volumes::MountError,
    > {
        let meta = metadata_fingerprint(pod);
        if let Some((v, at)) = &self.volumes
            && at.elapsed() < super::worker::VOLUME_REFRESH
            && self.volume_meta == meta
        {
            return Ok(v.clone());
        }
        let v = super::volumes::prepare(&self.ctx.client, pod, &self.dirs, cache, ctx).await?;
        self.volumes = Some((v.clone(), Instant::now()));
        self.volume_meta = meta;
        Ok(v)
    }

    /// Keeps running containers' configMap, secret, downwardAPI and projected files
    /// current, as upstream's kubelet does on each pod sync (so a ConfigMap edit reaches
    /// mounted files within about a minute, a label at once). Files are swapped
    /// atomically; subPath mounts keep what they had, as upstream.
    pub(super) async fn refresh_volumes(&mut self, pod: &Pod, pod_ip: &str) {
        if self.volumes.is_none() {
            return; // nothing started yet: the next container start writes them
        }
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let mut cache = ObjectCache::with_tokens(self.ctx.client.clone(), ns, self.tokens.clone());
        let dctx = self.downward_context(pod_ip);
        if let Err(e) = self.volume_paths(pod, &mut cache, &dctx).await {
            self.failed_mount(pod, &e);
            // Keep the files the containers have; try again at the next resync.
            if let Some((_, at)) = &mut self.volumes {
                *at = Instant::now();
            }
        }
    }

    /// Upstream's `FailedMount` event on the pod (volumes are the pod's, not a container's).
    fn failed_mount(&self, pod: &Pod, e: &super::volumes::MountError) {
        warn!(pod = %pod.metadata.name.as_deref().unwrap_or_default(), "{e}");
        self.services
            .events
            .event(&pod_ref(pod), WARNING, reason::FAILED_MOUNT, &e.to_string());
    }

    fn downward_context(&self, pod_ip: &str) -> DownwardContext {
        DownwardContext {
            pod_ip: pod_ip.to_string(),
            host_ip: self.ctx.cfg.node_ip.to_string(),
            node_cpu_milli: self.ctx.node_cpu_milli,
            node_memory: self.ctx.node_memory,
        }
    }

    fn waiting_for(&mut self, c: &Container, reason: &str, message: String) {
        self.waiting
            .insert(c.name.clone(), (reason.to_string(), message));
    }

    /// Upstream's `Failed` event for a container that could not be created or started.
    fn failed_event(&self, pod: &Pod, c: &Container, kind: Kind, message: &str) {
        let obj = container_ref(pod, c, kind);
        self.services
            .events
            .event(&obj, WARNING, reason::FAILED, &format!("Error: {message}"));
    }

    /// Creates and starts container `c` (attempt `attempt`) in the sandbox. Returns
    /// whether the runtime changed.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn start(
        &mut self,
        pod: &Pod,
        c: &Container,
        kind: Kind,
        attempt: u32,
        sandbox_id: &str,
        sandbox_cfg: &crate::cri::api::PodSandboxConfig,
        pod_ip: &str,
        pid_target: Option<&str>,
    ) -> Result<bool> {
        let t0 = Instant::now();
        let ns = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let mut cache = ObjectCache::with_tokens(self.ctx.client.clone(), &ns, self.tokens.clone());
        let dctx = self.downward_context(pod_ip);
        let volumes = match self.volume_paths(pod, &mut cache, &dctx).await {
            Ok(v) => v,
            Err(e) => {
                // Upstream mounts volumes before pulling or creating anything: the pod
                // stays in ContainerCreating and the pod (not a container) gets FailedMount.
                self.failed_mount(pod, &e);
                self.volumes = None;
                self.waiting.remove(&c.name);
                // An unbound claim is usually bound within seconds (provisioning).
                let retry = match e.source {
                    RefError::Api(_) | RefError::Missing(_) => 2,
                    _ => 10,
                };
                self.wake_at(Instant::now() + Duration::from_secs(retry));
                return Ok(false);
            }
        };
        let (image_ref, image_uid, image_user) = match self
            .ensure_image(pod, c, kind, sandbox_cfg, &mut cache)
            .await?
        {
            Ok(i) => i,
            Err((why, msg)) => {
                // Upstream's kubelet reports every image failure once more this way.
                self.failed_event(pod, c, kind, &why);
                self.waiting_for(c, &why, msg);
                return Ok(false);
            }
        };
        let built = async {
            let links = pod
                .spec
                .as_ref()
                .and_then(|s| s.enable_service_links)
                .unwrap_or(true);
            let services = services_env(&ns, links, &self.ctx.services.state());
            let env = container_env(pod, c, &dctx, &services, &mut cache).await?;
            container_config(&Plan {
                pod,
                container: c,
                kind,
                attempt,
                image_ref: &image_ref,
                image_uid,
                image_user: &image_user,
                env: &env,
                volumes: &volumes,
                dirs: &self.dirs,
                node_memory: i64::try_from(self.ctx.node_memory).unwrap_or(i64::MAX),
                pid_target,
            })
        }
        .await;
        let config = match built {
            Ok(cfg) => cfg,
            Err(RefError::Api(e)) => {
                // Transient: keep the container waiting and retry soon.
                warn!(pod = %pod.metadata.name.as_deref().unwrap_or_default(), container = %c.name, "preparing container: {e}");
                self.wake_at(Instant::now() + Duration::from_secs(2));
                return Ok(false);
            }
            Err(e) => {
                self.failed_event(pod, c, kind, &e.to_string());
                self.waiting_for(c, "CreateContainerConfigError", e.to_string());
                self.wake_at(Instant::now() + Duration::from_secs(10));
                return Ok(false);
            }
        };
        let id = match self
            .ctx
            .cri
            .create_container(sandbox_id, config, sandbox_cfg.clone())
            .await
        {
            Ok(id) => id,
            Err(e) => {
                self.failed_event(pod, c, kind, &e.to_string());
                self.waiting_for(c, "CreateContainerError", e.to_string());
                self.wake_at(Instant::now() + Duration::from_secs(10));
                return Ok(false);
            }
        };
        let obj = container_ref(pod, c, kind);
        let events = self.services.events.clone();
        events.event(
            &obj,
            NORMAL,
            reason::CREATED,
            &format!("Created container: {}", c.name),
        );
        if let Err(e) = self.ctx.cri.start_container(&id).await {
            // The container is left exited; the next sync restarts it with back-off.
            warn!(pod = %pod.metadata.name.as_deref().unwrap_or_default(), container = %c.name, "start failed: {e}");
            self.failed_event(pod, c, kind, &e.to_string());
            self.waiting_for(c, "RunContainerError", e.to_string());
            self.crash_backoff.next(&c.name, Instant::now());
            return Ok(true);
        }
        self.waiting.remove(&c.name);
        events.event(
            &obj,
            NORMAL,
            reason::STARTED,
            &format!("Started container {}", c.name),
        );
        debug!(pod = %pod.metadata.name.as_deref().unwrap_or_default(), container = %c.name, elapsed = ?t0.elapsed(), "container started");
        let info = self.ctx.cri.container_status(&id).await.ok();
        if let Some(st) = &info {
            let ci = ContainerInfo {
                id: id.clone(),
                sandbox_id: sandbox_id.to_string(),
                name: c.name.clone(),
                attempt,
                state: crate::cri::api::ContainerState::ContainerRunning,
                created_at: st.created_at,
                started_at: st.started_at,
                finished_at: 0,
                exit_code: 0,
                reason: String::new(),
                message: String::new(),
                image_ref: st.image_ref.clone(),
                log_path: st.log_path.clone(),
                annotations: Default::default(),
            };
            self.spawn_probes(pod, c, kind == Kind::Init, &ci, pod_ip);
        }
        if let Some(hook) = c.lifecycle.as_ref().and_then(|l| l.post_start.as_ref()) {
            let target = super::probe::Target {
                cri: self.ctx.cri.clone(),
                container_id: id.clone(),
                pod_ip: pod_ip.to_string(),
                ports: c.ports.clone().unwrap_or_default(),
            };
            let grace = pod
                .spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds)
                .unwrap_or(30);
            if let Err(e) =
                super::probe::run_hook(&target, hook, Duration::from_secs(grace.max(1) as u64))
                    .await
            {
                warn!(container = %c.name, "postStart hook failed: {e}");
                // The hook's output stays out of the event (it may hold secrets), as upstream.
                events.event(
                    &obj,
                    WARNING,
                    reason::FAILED_POST_START_HOOK,
                    "PostStartHook failed",
                );
                events.event(&obj, NORMAL, reason::KILLING, "FailedPostStartHook");
                let _ = self.ctx.cri.stop_container(&id, MIN_GRACE_SECS).await;
                self.probes.remove(&id);
            }
        }
        Ok(true)
    }

    /// Stops one container: preStop hook, then the stop signal with the remaining grace.
    /// `why` is the `Killing` event's message (default "Stopping container NAME").
    pub(super) async fn stop_container(
        &mut self,
        pod: &Pod,
        spec: &Container,
        c: &ContainerInfo,
        grace: i64,
        why: Option<&str>,
    ) {
        self.probes.remove(&c.id);
        let events = &self.services.events;
        if let Err(e) = stop_one(&self.ctx, events, pod, Some(spec), c, grace, why).await {
            warn!(container = %c.name, "stopping: {e}");
        }
    }

    /// Stops every running container (in parallel, each with its preStop hook) and the
    /// sandboxes.
    pub(super) async fn kill_pod(&mut self, pod: &Pod, grace: i64) {
        self.probes.clear();
        let rt = match PodRuntime::load(&self.ctx.cri, &self.uid).await {
            Ok(rt) => rt,
            Err(e) => {
                warn!("listing containers to stop: {e}");
                return;
            }
        };
        let spec = pod.spec.as_ref();
        let ephemeral: Vec<Container> = spec
            .and_then(|s| s.ephemeral_containers.as_ref())
            .into_iter()
            .flatten()
            .filter_map(super::container::ephemeral_as_container)
            .collect();
        let find = |name: &str| {
            spec.and_then(|s| {
                s.containers
                    .iter()
                    .chain(s.init_containers.iter().flatten())
                    .chain(ephemeral.iter())
                    .find(|c| c.name == name)
            })
        };
        let events = &self.services.events;
        let stops = rt
            .running()
            .map(|c| stop_one(&self.ctx, events, pod, find(&c.name), c, grace, None));
        let mut errors: Vec<String> = futures::future::join_all(stops)
            .await
            .into_iter()
            .filter_map(|r| r.err())
            .collect();
        for sb in &rt.sandboxes {
            if let Err(e) = self.ctx.cri.stop_pod_sandbox(&sb.id).await {
                warn!("stopping sandbox {}: {e}", sb.id);
                errors.push(format!(
                    "failed to \"KillPodSandbox\" for \"{}\" with KillPodSandboxError: \"{e}\"",
                    self.uid
                ));
            }
        }
        if !errors.is_empty() {
            // Upstream prints one error alone and several as a Go aggregate.
            let all = match errors.as_slice() {
                [one] => one.clone(),
                many => format!("[{}]", many.join(", ")),
            };
            warn!(pod = %pod.metadata.name.as_deref().unwrap_or_default(), "error killing pod: {all}");
            events.event(
                &pod_ref(pod),
                WARNING,
                reason::FAILED_KILL_POD,
                &format!("error killing pod: {all}"),
            );
        }
    }

    /// Stops the pod's sandboxes (finished pods keep their containers for status/logs).
    pub(super) async fn stop_sandboxes(&mut self) {
        self.probes.clear();
        let Ok(rt) = PodRuntime::load(&self.ctx.cri, &self.uid).await else {
            return;
        };
        for sb in rt.sandboxes.iter().filter(|s| s.ready) {
            if let Err(e) = self.ctx.cri.stop_pod_sandbox(&sb.id).await {
                warn!("stopping sandbox {}: {e}", sb.id);
            }
        }
    }

    /// Removes containers, sandboxes, volumes, logs and the pod cgroup.
    pub(super) async fn remove_all(&mut self) {
        remove_pod_runtime(&self.ctx, &self.uid).await;
        remove_pod_files(&self.dirs.root, &self.uid);
    }

    /// The pod vanished from the API without graceful deletion: stop and clean up.
    pub(super) async fn cleanup_removed(&mut self) {
        self.probes.clear();
        if let Ok(rt) = PodRuntime::load(&self.ctx.cri, &self.uid).await {
            let stops = rt
                .running()
                .map(|c| self.ctx.cri.stop_container(&c.id, MIN_GRACE_SECS));
            futures::future::join_all(stops).await;
        }
        self.remove_all().await;
        info!(uid = %self.uid, "pod removed from the API; cleaned up");
    }
}

/// Stops one running container (Killing event, preStop hook, stop signal); the error is
/// worded as upstream's kill-container sync result.
async fn stop_one(
    ctx: &Arc<super::PodContext>,
    events: &Recorder,
    pod: &Pod,
    spec: Option<&Container>,
    c: &ContainerInfo,
    grace: i64,
    why: Option<&str>,
) -> std::result::Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(grace.max(0) as u64);
    let kind = Kind::from_annotation(
        c.annotations
            .get(super::runtime::ANNOTATION_KIND)
            .map(String::as_str),
    );
    let obj = spec.map(|s| container_ref(pod, s, kind));
    if let Some(obj) = &obj {
        let default = format!("Stopping container {}", c.name);
        events.event(obj, NORMAL, reason::KILLING, why.unwrap_or(&default));
    }
    if let Some(hook) = spec
        .and_then(|s| s.lifecycle.as_ref())
        .and_then(|l| l.pre_stop.as_ref())
    {
        let ip = pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.clone())
            .unwrap_or_default();
        let target = super::probe::Target {
            cri: ctx.cri.clone(),
            container_id: c.id.clone(),
            pod_ip: ip,
            ports: spec.and_then(|s| s.ports.clone()).unwrap_or_default(),
        };
        let budget = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_secs(1));
        if let Err(e) = super::probe::run_hook(&target, hook, budget).await {
            warn!(container = %c.name, "preStop hook failed: {e}");
            if let Some(obj) = &obj {
                events.event(
                    obj,
                    WARNING,
                    reason::FAILED_PRE_STOP_HOOK,
                    "PreStopHook failed",
                );
            }
        }
    }
    let left = deadline.saturating_duration_since(Instant::now()).as_secs() as i64;
    ctx.cri
        .stop_container(&c.id, left.max(MIN_GRACE_SECS))
        .await
        .map_err(|e| {
            format!(
                "failed to \"KillContainer\" for \"{}\" with KillContainerError: \"{e}\"",
                c.name
            )
        })
}

/// Stops and removes every container and sandbox of pod `uid`.
pub(crate) async fn remove_pod_runtime(ctx: &super::PodContext, uid: &str) {
    let Ok(rt) = PodRuntime::load(&ctx.cri, uid).await else {
        return;
    };
    for c in &rt.containers {
        if c.running() {
            let _ = ctx.cri.stop_container(&c.id, 0).await;
        }
        if let Err(e) = ctx.cri.remove_container(&c.id).await {
            warn!("removing container {}: {e}", c.id);
        }
    }
    for sb in &rt.sandboxes {
        if let Err(e) = ctx.cri.stop_pod_sandbox(&sb.id).await {
            warn!("stopping sandbox {}: {e}", sb.id);
        }
        if let Err(e) = ctx.cri.remove_pod_sandbox(&sb.id).await {
            warn!("removing sandbox {}: {e}", sb.id);
        }
    }
}

/// Removes the pod directory (after unmounting tmpfs volumes) and its cgroups.
pub(crate) fn remove_pod_files(root: &std::path::Path, uid: &str) {
    super::volumes::unmount_under(root);
    if let Err(e) = std::fs::remove_dir_all(root)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        warn!("removing {}: {e}", root.display());
    }
    remove_pod_cgroups(uid);
}

/// runc removes container cgroups but not the pod-level parents we named.
fn remove_pod_cgroups(uid: &str) {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let pod = format!("pod{uid}");
    for line in info.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(sep) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        if !matches!(fields.get(sep + 1), Some(&"cgroup") | Some(&"cgroup2")) {
            continue;
        }
        let Some(mount) = fields.get(4) else { continue };
        for qos in ["", "burstable/", "besteffort/"] {
            let p = std::path::Path::new(mount).join(format!("kubepods/{qos}{pod}"));
            if p.is_dir() {
                // Only empty cgroups can be removed; busy ones stay for the next cleanup.
                let _ = std::fs::remove_dir(&p);
            }
        }
    }
}
