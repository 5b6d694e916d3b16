//! The pod sandbox part of a pod worker's sync: reuse the ready sandbox, or (re)create
//! it with back-off, recording upstream's `SandboxChanged` and `FailedCreatePodSandBox`
//! events, and write the pod's /etc/hosts.

use super::events::{self, NORMAL, WARNING, reason};
use super::runtime::PodRuntime;
use super::worker::{Worker, restart_policy};
use crate::error::Result;
use k8s_openapi::api::core::v1::Pod;
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};

impl Worker {
    /// The ready sandbox to run containers in (created when needed): (id, attempt, IP).
    /// None when it cannot or must not be created now.
    pub(super) async fn ensure_sandbox(
        &mut self,
        pod: &Pod,
        rt: &PodRuntime,
    ) -> Result<Option<(String, u32, String)>> {
        let host_network = pod
            .spec
            .as_ref()
            .and_then(|s| s.host_network)
            .unwrap_or(false);
        if let Some(sb) = rt.newest_sandbox().filter(|s| s.ready) {
            let ip = if host_network {
                self.ctx.cfg.node_ip.to_string()
            } else {
                self.sandbox_ip(&sb.id).await?
            };
            if !self.dirs.etc_hosts().exists() {
                self.write_etc_hosts(pod, &ip)?;
            }
            return Ok(Some((sb.id.clone(), sb.attempt, ip)));
        }
        if let Some(old) = rt.newest_sandbox() {
            // The sandbox died. With restartPolicy Never, containers that already ran stay done.
            let all_ran = pod.spec.as_ref().is_some_and(|s| {
                s.containers
                    .iter()
                    .all(|c| rt.latest(&c.name).is_some_and(|x| x.exited()))
            });
            if restart_policy(pod) == "Never" && all_ran {
                return Ok(None);
            }
            info!(pod = %Self::pod_name(pod), sandbox = %old.id, "sandbox is not ready; recreating");
            self.services.events.event(
                &events::pod_ref(pod),
                NORMAL,
                reason::SANDBOX_CHANGED,
                "Pod sandbox changed, it will be killed and re-created.",
            );
            for c in rt.running() {
                let _ = self.ctx.cri.stop_container(&c.id, 2).await;
            }
            self.probes.clear();
            for sb in &rt.sandboxes {
                let _ = self.ctx.cri.stop_pod_sandbox(&sb.id).await;
            }
        }
        let now = Instant::now();
        if let Some(until) = self
            .sandbox_failed_at
            .and_then(|at| self.sandbox_backoff.in_backoff_until("sandbox", at, now))
        {
            self.wake_at(until);
            return Ok(None);
        }
        let attempt = rt.newest_sandbox().map(|s| s.attempt + 1).unwrap_or(0);
        std::fs::create_dir_all(self.dirs.logs())
            .map_err(|e| crate::error::Error::io("creating pod log dir", e))?;
        let cfg = super::sandbox::sandbox_config(pod, &self.ctx.cfg, &self.dirs.logs(), attempt);
        let started = Instant::now();
        let id = match self.ctx.cri.run_pod_sandbox(cfg).await {
            Ok(id) => id,
            Err(e) => {
                warn!(pod = %Self::pod_name(pod), "RunPodSandbox failed: {e}");
                self.services.events.event(
                    &events::pod_ref(pod),
                    WARNING,
                    reason::FAILED_CREATE_SANDBOX,
                    &format!("Failed to create pod sandbox: {e}"),
                );
                self.sandbox_backoff.next("sandbox", now);
                self.sandbox_failed_at = Some(now);
                self.wake_at(
                    now + self
                        .sandbox_backoff
                        .delay("sandbox")
                        .unwrap_or(Duration::from_secs(1)),
                );
                return Ok(None);
            }
        };
        self.sandbox_failed_at = None;
        self.sandbox_backoff.reset("sandbox");
        let ip = if host_network {
            self.ctx.cfg.node_ip.to_string()
        } else {
            self.sandbox_ip(&id).await?
        };
        debug!(pod = %Self::pod_name(pod), sandbox = %id, %ip, elapsed = ?started.elapsed(), "sandbox ready");
        self.write_etc_hosts(pod, &ip)?;
        Ok(Some((id, attempt, ip)))
    }

    async fn sandbox_ip(&mut self, id: &str) -> Result<String> {
        if let Some(ip) = self.sandbox_ips.get(id) {
            return Ok(ip.clone());
        }
        let st = self.ctx.cri.pod_sandbox_status(id).await?;
        let ip = st
            .status
            .and_then(|s| s.network)
            .map(|n| n.ip)
            .unwrap_or_default();
        self.sandbox_ips.insert(id.to_string(), ip.clone());
        Ok(ip)
    }

    pub(super) fn write_etc_hosts(&self, pod: &Pod, ip: &str) -> Result<()> {
        std::fs::create_dir_all(&self.dirs.root)
            .map_err(|e| crate::error::Error::io("creating pod dir", e))?;
        let text = super::sandbox::etc_hosts(pod, ip, &self.ctx.cfg.cluster_domain);
        std::fs::write(self.dirs.etc_hosts(), text)
            .map_err(|e| crate::error::Error::io("writing etc-hosts", e))
    }
}
