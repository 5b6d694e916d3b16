//! A pod's state in the container runtime: its sandboxes and containers, found by the
//! labels the kubelet puts on them (the same keys upstream uses), so a restarted agent
//! adopts what is already running.

use crate::cri::{Cri, api};
use crate::error::Result;
use std::collections::HashMap;

pub const LABEL_POD_NAME: &str = "io.kubernetes.pod.name";
pub const LABEL_POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
pub const LABEL_POD_UID: &str = "io.kubernetes.pod.uid";
pub const LABEL_CONTAINER_NAME: &str = "io.kubernetes.container.name";
/// Marks sandboxes/containers created by r8s (others in the namespace are left alone).
pub const LABEL_MANAGED: &str = "io.r8s.managed";
/// The pod spec's image for the container (a changed image means a restart).
pub const ANNOTATION_IMAGE: &str = "io.r8s.container.image";
/// `init` or `app`.
pub const ANNOTATION_KIND: &str = "io.r8s.container.kind";

/// One sandbox of the pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxInfo {
    pub id: String,
    pub attempt: u32,
    pub ready: bool,
    pub created_at: i64,
}

/// One container of the pod with its detailed status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    pub id: String,
    pub sandbox_id: String,
    pub name: String,
    pub attempt: u32,
    pub state: api::ContainerState,
    pub created_at: i64,
    pub started_at: i64,
    pub finished_at: i64,
    pub exit_code: i32,
    pub reason: String,
    pub message: String,
    pub image_ref: String,
    pub log_path: String,
    pub annotations: HashMap<String, String>,
}

impl ContainerInfo {
    pub fn running(&self) -> bool {
        self.state == api::ContainerState::ContainerRunning
    }

    pub fn exited(&self) -> bool {
        self.state == api::ContainerState::ContainerExited
    }

    /// The spec image it was created for.
    pub fn spec_image(&self) -> Option<&str> {
        self.annotations.get(ANNOTATION_IMAGE).map(String::as_str)
    }
}

/// Everything the runtime has for one pod UID.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodRuntime {
    /// Newest first.
    pub sandboxes: Vec<SandboxInfo>,
    /// Newest first.
    pub containers: Vec<ContainerInfo>,
}

fn uid_selector(uid: &str) -> HashMap<String, String> {
    HashMap::from([(LABEL_POD_UID.to_string(), uid.to_string())])
}

impl PodRuntime {
    /// Reads the pod's sandboxes and containers (with each container's status).
    pub async fn load(cri: &Cri, uid: &str) -> Result<PodRuntime> {
        let sandboxes = cri.list_pod_sandbox(Some(api::PodSandboxFilter {
            label_selector: uid_selector(uid),
            ..Default::default()
        }));
        let containers = cri.list_containers(Some(api::ContainerFilter {
            label_selector: uid_selector(uid),
            ..Default::default()
        }));
        let (sandboxes, containers) = tokio::try_join!(sandboxes, containers)?;
        let mut sbs: Vec<SandboxInfo> = sandboxes
            .into_iter()
            .map(|s| SandboxInfo {
                attempt: s.metadata.as_ref().map(|m| m.attempt).unwrap_or(0),
                ready: s.state == api::PodSandboxState::SandboxReady as i32,
                created_at: s.created_at,
                id: s.id,
            })
            .collect();
        sbs.sort_by_key(|s| std::cmp::Reverse(s.created_at));
        let statuses =
            futures::future::join_all(containers.iter().map(|c| cri.container_status(&c.id))).await;
        let mut ctrs = Vec::with_capacity(containers.len());
        for (c, st) in containers.into_iter().zip(statuses) {
            // A container removed between list and status is simply gone.
            let Ok(st) = st else { continue };
            ctrs.push(ContainerInfo {
                name: c
                    .labels
                    .get(LABEL_CONTAINER_NAME)
                    .cloned()
                    .or_else(|| c.metadata.as_ref().map(|m| m.name.clone()))
                    .unwrap_or_default(),
                attempt: c.metadata.as_ref().map(|m| m.attempt).unwrap_or(0),
                state: api::ContainerState::try_from(st.state)
                    .unwrap_or(api::ContainerState::ContainerUnknown),
                created_at: st.created_at,
                started_at: st.started_at,
                finished_at: st.finished_at,
                exit_code: st.exit_code,
                reason: st.reason,
                message: st.message,
                image_ref: if st.image_ref.is_empty() {
                    c.image_ref.clone()
                } else {
                    st.image_ref
                },
                log_path: st.log_path,
                annotations: c.annotations,
                sandbox_id: c.pod_sandbox_id,
                id: c.id,
            });
        }
        ctrs.sort_by(|a, b| {
            b.created_at
                .cmp(&a.created_at)
                .then(b.attempt.cmp(&a.attempt))
        });
        Ok(PodRuntime {
            sandboxes: sbs,
            containers: ctrs,
        })
    }

    /// The newest sandbox.
    pub fn newest_sandbox(&self) -> Option<&SandboxInfo> {
        self.sandboxes.first()
    }

    /// The newest container named `name` (any sandbox).
    pub fn latest(&self, name: &str) -> Option<&ContainerInfo> {
        self.containers.iter().find(|c| c.name == name)
    }

    /// The one before the newest (for `lastState`).
    pub fn previous(&self, name: &str) -> Option<&ContainerInfo> {
        self.containers.iter().filter(|c| c.name == name).nth(1)
    }

    /// The newest container named `name` in sandbox `sandbox_id`.
    pub fn in_sandbox(&self, sandbox_id: &str, name: &str) -> Option<&ContainerInfo> {
        self.containers
            .iter()
            .find(|c| c.name == name && c.sandbox_id == sandbox_id)
    }

    /// Whether a container was SIGKILLed (exit 137) in the last three seconds and the runtime
    /// has not named the reason yet. containerd names an OOM kill from the cgroup's OOM
    /// event, which on a busy machine can arrive just after the exit; until then the
    /// container would be reported as `Error`, and a finished pod's status is final.
    pub fn awaiting_oom_reason(&self, now_nanos: i64) -> bool {
        const RECENT_NANOS: i64 = 3_000_000_000;
        self.containers.iter().any(|c| {
            c.exited()
                && c.exit_code == 137
                && c.reason.is_empty()
                && now_nanos.saturating_sub(c.finished_at) < RECENT_NANOS
        })
    }

    /// Running containers.
    pub fn running(&self) -> impl Iterator<Item = &ContainerInfo> {
        self.containers.iter().filter(|c| c.running())
    }

    /// Containers that are neither the newest nor the one before it for their name —
    /// kept dead containers beyond what status reporting needs.
    pub fn garbage(&self) -> Vec<&ContainerInfo> {
        let mut seen: HashMap<&str, usize> = HashMap::new();
        let mut out = Vec::new();
        for c in &self.containers {
            let n = seen.entry(c.name.as_str()).or_default();
            *n += 1;
            if *n > 2 && !c.running() {
                out.push(c);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctr(id: &str, name: &str, created: i64, state: api::ContainerState) -> ContainerInfo {
        ContainerInfo {
            id: id.into(),
            sandbox_id: "s".into(),
            name: name.into(),
            attempt: 0,
            state,
            created_at: created,
            started_at: 0,
            finished_at: 0,
            exit_code: 0,
            reason: String::new(),
            message: String::new(),
            image_ref: String::new(),
            log_path: String::new(),
            annotations: HashMap::new(),
        }
    }

    #[test]
    fn latest_previous_and_garbage() {
        use api::ContainerState::*;
        let rt = PodRuntime {
            sandboxes: vec![],
            containers: vec![
                ctr("a3", "a", 3, ContainerRunning),
                ctr("b1", "b", 2, ContainerExited),
                ctr("a2", "a", 2, ContainerExited),
                ctr("a1", "a", 1, ContainerExited),
            ],
        };
        assert_eq!(rt.latest("a").unwrap().id, "a3");
        assert_eq!(rt.previous("a").unwrap().id, "a2");
        assert!(rt.previous("b").is_none());
        let g: Vec<_> = rt.garbage().into_iter().map(|c| c.id.as_str()).collect();
        assert_eq!(g, ["a1"]);
    }

    #[test]
    fn a_fresh_sigkill_without_reason_awaits_the_oom_event() {
        let second = 1_000_000_000;
        let killed = |reason: &str, finished_at: i64| {
            let mut c = ctr("k", "k", 1, api::ContainerState::ContainerExited);
            c.exit_code = 137;
            c.reason = reason.into();
            c.finished_at = finished_at;
            PodRuntime {
                sandboxes: vec![],
                containers: vec![c],
            }
        };
        let now = 100 * second;
        assert!(killed("", now - second / 2).awaiting_oom_reason(now));
        assert!(!killed("OOMKilled", now - second / 2).awaiting_oom_reason(now));
        assert!(
            !killed("", now - 3 * second).awaiting_oom_reason(now),
            "long ago: final"
        );
        let mut failed = killed("", now);
        failed.containers[0].exit_code = 1;
        assert!(!failed.awaiting_oom_reason(now));
    }
}
