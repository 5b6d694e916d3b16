//! From a request's namespace/pod/container names to runtime IDs. The pod comes from the
//! API (as upstream's kubelet takes it from its pod manager) and must be bound to this
//! node; its containers are then found in CRI by the labels the kubelet puts on them
//! (pod UID + container name), so a recreated pod of the same name is never confused with
//! the old one. When the API cannot be reached, the newest sandbox with the pod's
//! namespace/name labels stands in.

use super::{HttpError, State};
use crate::cri::api;
use crate::pod::runtime::{
    LABEL_CONTAINER_NAME, LABEL_POD_NAME, LABEL_POD_NAMESPACE, LABEL_POD_UID,
};
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use kube::Api;
use std::collections::HashMap;
use std::time::Duration;
use tracing::warn;

const API_TIMEOUT: Duration = Duration::from_secs(10);

/// The pod a request is about.
#[derive(Debug, Clone)]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// None when the API was unreachable and the pod was found in the runtime only.
    pub pod: Option<Pod>,
}

/// Names as the API allows them (DNS subdomains/labels); anything else cannot exist and
/// must not reach a URL or a label selector.
pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'.')
}

fn selector(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The pod `namespace/name` (with `uid`, when the URL names one) if it is bound to this
/// node; `None` when there is no such pod.
pub async fn find_pod(
    st: &State,
    namespace: &str,
    name: &str,
    uid: Option<&str>,
) -> Result<Option<PodRef>, HttpError> {
    if !valid_name(namespace) || !valid_name(name) {
        return Ok(None);
    }
    let api: Api<Pod> = Api::namespaced(st.client.clone(), namespace);
    let found = match tokio::time::timeout(API_TIMEOUT, api.get_opt(name)).await {
        Ok(Ok(p)) => p.map(Some),
        Ok(Err(e)) => {
            warn!(%namespace, %name, "getting pod from the API: {e}; using the runtime's view");
            None
        }
        Err(_) => {
            warn!(%namespace, %name, "getting pod from the API timed out; using the runtime's view");
            None
        }
    };
    let r = match found {
        Some(Some(pod)) => {
            let node = pod.spec.as_ref().and_then(|s| s.node_name.as_deref());
            if node != Some(st.node_name.as_str()) {
                return Ok(None);
            }
            PodRef {
                namespace: namespace.into(),
                name: name.into(),
                uid: pod.metadata.uid.clone().unwrap_or_default(),
                pod: Some(pod),
            }
        }
        Some(None) => return Ok(None),
        None => {
            let filter = api::PodSandboxFilter {
                label_selector: selector(&[
                    (LABEL_POD_NAMESPACE, namespace),
                    (LABEL_POD_NAME, name),
                ]),
                ..Default::default()
            };
            let mut sbs = st
                .cri
                .list_pod_sandbox(Some(filter))
                .await
                .map_err(HttpError::runtime)?;
            sbs.sort_by_key(|s| std::cmp::Reverse(s.created_at));
            let Some(uid) = sbs.iter().find_map(|s| s.labels.get(LABEL_POD_UID)) else {
                return Ok(None);
            };
            PodRef {
                namespace: namespace.into(),
                name: name.into(),
                uid: uid.clone(),
                pod: None,
            }
        }
    };
    if r.uid.is_empty() || uid.is_some_and(|u| u != r.uid) {
        return Ok(None);
    }
    Ok(Some(r))
}

impl PodRef {
    /// Whether the pod's spec has a (regular, init or ephemeral) container `name`.
    pub fn has_container(&self, name: &str) -> bool {
        let Some(spec) = self.pod.as_ref().and_then(|p| p.spec.as_ref()) else {
            // Runtime-only view: the CRI lookup decides.
            return valid_name(name);
        };
        spec.containers.iter().any(|c| c.name == name)
            || spec
                .init_containers
                .iter()
                .flatten()
                .any(|c| c.name == name)
            || spec
                .ephemeral_containers
                .iter()
                .flatten()
                .any(|c| c.name == name)
    }

    /// The container's entry in the pod's status, if reported.
    fn status(&self, name: &str) -> Option<&ContainerStatus> {
        let s = self.pod.as_ref()?.status.as_ref()?;
        [
            s.container_statuses.as_ref(),
            s.init_container_statuses.as_ref(),
            s.ephemeral_container_statuses.as_ref(),
        ]
        .into_iter()
        .flatten()
        .flatten()
        .find(|c| c.name == name)
    }
}

/// One runtime instance of a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub id: String,
    pub created_at: i64,
    pub attempt: u32,
    pub running: bool,
}

/// The runtime's instances of container `name` of the pod, newest first.
pub async fn instances(st: &State, pod: &PodRef, name: &str) -> Result<Vec<Instance>, HttpError> {
    let filter = api::ContainerFilter {
        label_selector: selector(&[(LABEL_POD_UID, &pod.uid), (LABEL_CONTAINER_NAME, name)]),
        ..Default::default()
    };
    let list = st
        .cri
        .list_containers(Some(filter))
        .await
        .map_err(HttpError::runtime)?;
    let mut out: Vec<Instance> = list
        .into_iter()
        .map(|c| Instance {
            attempt: c.metadata.as_ref().map(|m| m.attempt).unwrap_or(0),
            running: c.state == api::ContainerState::ContainerRunning as i32,
            created_at: c.created_at,
            id: c.id,
        })
        .collect();
    out.sort_by(|a, b| {
        b.created_at
            .cmp(&a.created_at)
            .then(b.attempt.cmp(&a.attempt))
    });
    Ok(out)
}

/// `containerd://abc` → `abc`.
fn strip_scheme(id: &str) -> &str {
    id.split_once("://").map_or(id, |(_, i)| i)
}

/// The IDs the pod status reports: (current state's container, last terminated one,
/// waiting reason, whether the current state is terminated).
fn status_ids(s: &ContainerStatus) -> (Option<String>, Option<String>, Option<String>, bool) {
    let state = s.state.as_ref();
    let running = state.and_then(|st| st.running.as_ref()).is_some();
    let terminated = state.and_then(|st| st.terminated.as_ref());
    let current = if running {
        s.container_id.clone()
    } else {
        terminated.and_then(|t| t.container_id.clone())
    };
    let last = s
        .last_state
        .as_ref()
        .and_then(|l| l.terminated.as_ref())
        .and_then(|t| t.container_id.clone());
    let waiting = state
        .and_then(|st| st.waiting.as_ref())
        .map(|w| w.reason.clone().unwrap_or_default());
    let nonempty = |o: Option<String>| {
        o.filter(|s| !s.is_empty())
            .map(|s| strip_scheme(&s).to_string())
    };
    (
        nonempty(current),
        nonempty(last),
        waiting,
        terminated.is_some(),
    )
}

/// The container whose log a `containerLogs` request reads, with upstream's choice and
/// messages: the current instance (or, while waiting to restart, the last terminated
/// one), or with `previous` the last terminated one.
pub async fn log_container(
    st: &State,
    pod: &PodRef,
    name: &str,
    previous: bool,
) -> Result<String, HttpError> {
    let all = instances(st, pod, name).await?;
    let known = |id: &Option<String>| {
        id.as_ref()
            .filter(|i| all.iter().any(|c| &c.id == *i))
            .cloned()
    };
    let (current, last, waiting, terminated) = pod
        .status(name)
        .map(status_ids)
        .unwrap_or((None, None, None, false));
    if previous {
        return known(&last)
            .or_else(|| all.get(1).map(|c| c.id.clone()))
            .ok_or_else(|| {
                HttpError::bad_request(format!(
                    "previous terminated container {name:?} in pod {:?} not found",
                    pod.name
                ))
            });
    }
    if let Some(id) = known(&current).or_else(|| known(&last)) {
        return Ok(id);
    }
    if let Some(c) = all.first() {
        return Ok(c.id.clone());
    }
    let p = &pod.name;
    Err(HttpError::bad_request(match waiting.as_deref() {
        Some("ErrImagePull") => {
            format!("container {name:?} in pod {p:?} is waiting to start: image can't be pulled")
        }
        Some("ImagePullBackOff") => format!(
            "container {name:?} in pod {p:?} is waiting to start: trying and failing to pull image"
        ),
        Some(reason) if !reason.is_empty() => {
            format!("container {name:?} in pod {p:?} is waiting to start: {reason}")
        }
        _ if terminated => format!("container {name:?} in pod {p:?} is terminated"),
        _ => format!("container {name:?} in pod {p:?} is waiting to start - no logs yet"),
    }))
}

/// The running instance of container `name` (exec and attach need one).
pub async fn running_container(st: &State, pod: &PodRef, name: &str) -> Result<String, HttpError> {
    instances(st, pod, name)
        .await?
        .into_iter()
        .find(|c| c.running)
        .map(|c| c.id)
        .ok_or_else(|| HttpError::bad_request(format!("container not found ({name:?})")))
}

/// The pod's ready sandbox (port-forward enters its network namespace).
pub async fn ready_sandbox(st: &State, pod: &PodRef) -> Result<String, HttpError> {
    let filter = api::PodSandboxFilter {
        label_selector: selector(&[(LABEL_POD_UID, &pod.uid)]),
        ..Default::default()
    };
    let mut sbs = st
        .cri
        .list_pod_sandbox(Some(filter))
        .await
        .map_err(HttpError::runtime)?;
    sbs.retain(|s| s.state == api::PodSandboxState::SandboxReady as i32);
    sbs.sort_by_key(|s| std::cmp::Reverse(s.created_at));
    sbs.into_iter().next().map(|s| s.id).ok_or_else(|| {
        HttpError::bad_request(format!(
            "pod not found ({:?})",
            format!("{}_{}", pod.name, pod.namespace)
        ))
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_and_ids() {
        assert!(valid_name("web-0.x"));
        assert!(!valid_name(""));
        assert!(!valid_name("a/b"));
        assert!(!valid_name("A"));
        assert!(!valid_name("a?b"));
        assert!(!valid_name(&"a".repeat(254)));
        assert_eq!(strip_scheme("containerd://abc"), "abc");
        assert_eq!(strip_scheme("abc"), "abc");
    }

    #[test]
    fn status_ids_follow_upstream() {
        let s: ContainerStatus = serde_json::from_value(json!({
            "name": "c", "image": "i", "imageID": "", "ready": false, "restartCount": 2,
            "containerID": "containerd://new",
            "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"exitCode": 1, "containerID": "containerd://old"}}
        }))
        .unwrap();
        let (cur, last, waiting, terminated) = status_ids(&s);
        assert_eq!(cur, None);
        assert_eq!(last.as_deref(), Some("old"));
        assert_eq!(waiting.as_deref(), Some("CrashLoopBackOff"));
        assert!(!terminated);
        let r: ContainerStatus = serde_json::from_value(json!({
            "name": "c", "image": "i", "imageID": "", "ready": true, "restartCount": 0,
            "containerID": "containerd://run", "state": {"running": {}}
        }))
        .unwrap();
        assert_eq!(status_ids(&r).0.as_deref(), Some("run"));
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "uid": "u"},
            "spec": {"containers": [{"name": "a"}], "initContainers": [{"name": "i"}]}
        }))
        .unwrap();
        let pr = PodRef {
            namespace: "ns".into(),
            name: "p".into(),
            uid: "u".into(),
            pod: Some(pod),
        };
        assert!(pr.has_container("a") && pr.has_container("i"));
        assert!(!pr.has_container("b"));
    }
}
