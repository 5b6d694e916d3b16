//! What a pod worker does to the runtime: make sure the image is there (per
//! imagePullPolicy, with pull back-off), create and start a container (env, volumes,
//! postStart hook, probes), stop containers gracefully (preStop hook, grace period) and
//! remove everything the pod left behind.

use super::container::{Kind, Plan, container_config};
use super::env::{DownwardContext, container_env, services_env};
use super::refs::{ObjectCache, RefError};
use super::runtime::{ContainerInfo, PodRuntime};
use super::worker::Worker;
use crate::error::Result;
use k8s_openapi::api::core::v1::{Container, Pod};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};

/// Upstream never stops a container with less than this grace.
const MIN_GRACE_SECS: i64 = 2;

/// The resolved image: (reference, uid, user name).
type ImageInfo = (String, Option<i64>, String);

/// `IfNotPresent` unless the tag is `latest` or missing (then `Always`), like the API
/// server's defaulting.
fn pull_policy(c: &Container) -> String {
    if let Some(p) = c.image_pull_policy.as_deref().filter(|p| !p.is_empty()) {
        return p.to_string();
    }
    let image = c.image.as_deref().unwrap_or_default();
    let name = image.split('@').next().unwrap_or_default();
    let tagged = name
        .rsplit_once(':')
        .is_some_and(|(_, tag)| !tag.contains('/'));
    if image.contains('@') || (tagged && !name.ends_with(":latest")) {
        "IfNotPresent".into()
    } else {
        "Always".into()
    }
}

impl Worker {
    /// The image for `c`, or why the container waits. An image already present is used
    /// even with `Always`: r8s runs air-gapped images without re-pulling them.
    async fn ensure_image(
        &mut self,
        pod: &Pod,
        c: &Container,
    ) -> Result<std::result::Result<ImageInfo, (String, String)>> {
        let image = c.image.clone().unwrap_or_default();
        if let Some(img) = self.ctx.cri.image_status(&image).await? {
            return Ok(Ok((img.id, img.uid.map(|u| u.value), img.username)));
        }
        if pull_policy(c) == "Never" {
            let msg =
                format!("Container image \"{image}\" is not present with pull policy of Never");
            return Ok(Err(("ErrImageNeverPull".into(), msg)));
        }
        let now = Instant::now();
        if let Some(until) = self
            .pull_failed_at
            .get(&image)
            .and_then(|at| self.pull_backoff.in_backoff_until(&image, *at, now))
        {
            self.wake_at(until);
            return Ok(Err((
                "ImagePullBackOff".into(),
                format!("Back-off pulling image \"{image}\""),
            )));
        }
        info!(pod = %pod.metadata.name.as_deref().unwrap_or_default(), %image, "pulling image");
        match self.ctx.cri.pull_image(&image, None).await {
            Ok(_) => {
                self.pull_failed_at.remove(&image);
                self.pull_backoff.reset(&image);
                match self.ctx.cri.image_status(&image).await? {
                    Some(img) => Ok(Ok((img.id, img.uid.map(|u| u.value), img.username))),
                    None => Ok(Err((
                        "ErrImagePull".into(),
                        format!("image \"{image}\" not found after pull"),
                    ))),
                }
            }
            Err(e) => {
                self.pull_backoff.next(&image, now);
                self.pull_failed_at.insert(image.clone(), now);
                self.wake_at(
                    now + self
                        .pull_backoff
                        .delay(&image)
                        .unwrap_or(Duration::from_secs(10)),
                );
                let msg = match &e {
                    crate::error::Error::Cri { status, .. } => status.message().to_string(),
                    other => other.to_string(),
                };
                Ok(Err(("ErrImagePull".into(), msg)))
            }
        }
    }

    /// Volumes of the pod (re-read from the API at most every 30 s).
    async fn volume_paths(
        &mut self,
        pod: &Pod,
        cache: &mut ObjectCache,
        ctx: &DownwardContext,
    ) -> std::result::Result<std::collections::HashMap<String, std::path::PathBuf>, RefError> {
        if let Some((v, at)) = &self.volumes
            && at.elapsed() < super::worker::VOLUME_REFRESH
        {
            return Ok(v.clone());
        }
        let v = super::volumes::prepare(&self.ctx.client, pod, &self.dirs, cache, ctx).await?;
        self.volumes = Some((v.clone(), Instant::now()));
        Ok(v)
    }

    fn waiting_for(&mut self, c: &Container, reason: &str, message: String) {
        self.waiting
            .insert(c.name.clone(), (reason.to_string(), message));
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
    ) -> Result<bool> {
        let t0 = Instant::now();
        let (image_ref, image_uid, image_user) = match self.ensure_image(pod, c).await? {
            Ok(i) => i,
            Err((reason, msg)) => {
                self.waiting_for(c, &reason, msg);
                return Ok(false);
            }
        };
        let ns = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let mut cache = ObjectCache::new(self.ctx.client.clone(), &ns);
        let dctx = DownwardContext {
            pod_ip: pod_ip.to_string(),
            host_ip: self.ctx.cfg.node_ip.to_string(),
            node_cpu_milli: self.ctx.node_cpu_milli,
            node_memory: self.ctx.node_memory,
        };
        let built = async {
            let volumes = self.volume_paths(pod, &mut cache, &dctx).await?;
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
            })
        }
        .await;
        let config = match built {
            Ok(cfg) => cfg,
            Err(RefError::Api(e)) => {
                // Transient: keep the container waiting and retry soon.
                warn!(pod = %pod.metadata.name.as_deref().unwrap_or_default(), container = %c.name, "preparing container: {e}");
                self.volumes = None;
                self.wake_at(Instant::now() + Duration::from_secs(2));
                return Ok(false);
            }
            Err(e) => {
                self.volumes = None;
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
                self.waiting_for(c, "CreateContainerError", e.to_string());
                self.wake_at(Instant::now() + Duration::from_secs(10));
                return Ok(false);
            }
        };
        if let Err(e) = self.ctx.cri.start_container(&id).await {
            // The container is left exited; the next sync restarts it with back-off.
            warn!(pod = %pod.metadata.name.as_deref().unwrap_or_default(), container = %c.name, "start failed: {e}");
            self.waiting_for(c, "RunContainerError", e.to_string());
            self.crash_backoff.next(&c.name, Instant::now());
            return Ok(true);
        }
        self.waiting.remove(&c.name);
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
            self.spawn_probes(c, &ci, pod_ip);
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
                let _ = self.ctx.cri.stop_container(&id, MIN_GRACE_SECS).await;
                self.probes.remove(&id);
            }
        }
        Ok(true)
    }

    /// Stops one container: preStop hook, then the stop signal with the remaining grace.
    pub(super) async fn stop_container(
        &mut self,
        pod: &Pod,
        spec: &Container,
        c: &ContainerInfo,
        grace: i64,
    ) {
        self.probes.remove(&c.id);
        stop_one(&self.ctx, pod, Some(spec), c, grace).await;
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
        let find = |name: &str| {
            spec.and_then(|s| {
                s.containers
                    .iter()
                    .chain(s.init_containers.iter().flatten())
                    .find(|c| c.name == name)
            })
        };
        let stops = rt
            .running()
            .map(|c| stop_one(&self.ctx, pod, find(&c.name), c, grace));
        futures::future::join_all(stops).await;
        for sb in &rt.sandboxes {
            if let Err(e) = self.ctx.cri.stop_pod_sandbox(&sb.id).await {
                warn!("stopping sandbox {}: {e}", sb.id);
            }
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

async fn stop_one(
    ctx: &Arc<super::PodContext>,
    pod: &Pod,
    spec: Option<&Container>,
    c: &ContainerInfo,
    grace: i64,
) {
    let deadline = Instant::now() + Duration::from_secs(grace.max(0) as u64);
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
        }
    }
    let left = deadline.saturating_duration_since(Instant::now()).as_secs() as i64;
    if let Err(e) = ctx
        .cri
        .stop_container(&c.id, left.max(MIN_GRACE_SECS))
        .await
    {
        warn!(container = %c.name, "stopping: {e}");
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn c(image: &str, policy: Option<&str>) -> Container {
        let mut v = serde_json::json!({"name": "c", "image": image});
        if let Some(p) = policy {
            v["imagePullPolicy"] = serde_json::json!(p);
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn default_pull_policies() {
        assert_eq!(pull_policy(&c("nginx", None)), "Always");
        assert_eq!(pull_policy(&c("nginx:latest", None)), "Always");
        assert_eq!(pull_policy(&c("nginx:1.14.2", None)), "IfNotPresent");
        assert_eq!(pull_policy(&c("localhost:5000/app", None)), "Always");
        assert_eq!(
            pull_policy(&c("localhost:5000/app:v1", None)),
            "IfNotPresent"
        );
        assert_eq!(pull_policy(&c("app@sha256:abc", None)), "IfNotPresent");
        assert_eq!(pull_policy(&c("nginx", Some("Never"))), "Never");
    }
}
