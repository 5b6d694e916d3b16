//! The pod's status from the runtime's view: container states (waiting / running /
//! terminated with reason, exit code, message), restart counts, readiness, phase and the
//! conditions the kubelet owns, computed like upstream's `generateAPIPodStatus`.

use super::container::{ANNOTATION_TERMINATION_FILE, Kind};
use super::probe::ProbeState;
use super::runtime::{ContainerInfo, PodRuntime};
use super::sandbox::qos;
use chrono::{DateTime, SecondsFormat, Utc};
use k8s_openapi::api::core::v1::{Container, Pod};
use serde_json::{Map, Value, json};
use std::collections::HashMap;

/// Conditions the kubelet sets; others in the pod status are kept as they are.
const OWNED: [&str; 5] = [
    "PodScheduled",
    "PodReadyToStartContainers",
    "Initialized",
    "ContainersReady",
    "Ready",
];
const MAX_MESSAGE: usize = 4096;

/// Inputs of the status computation.
pub struct Input<'a> {
    pub pod: &'a Pod,
    pub rt: &'a PodRuntime,
    /// The current sandbox's IP (empty for none) and whether it is ready.
    pub pod_ip: &'a str,
    pub sandbox_ready: bool,
    pub host_ip: &'a str,
    /// Probe results by container ID (containers without probes are absent).
    pub probes: &'a HashMap<String, ProbeState>,
    /// Why a container is waiting (ErrImagePull, CrashLoopBackOff, …) by name.
    pub waiting: &'a HashMap<String, (String, String)>,
    /// Forced terminal phase and reason (e.g. activeDeadlineSeconds).
    pub forced: Option<(&'a str, &'a str, &'a str)>,
    pub start_time: &'a str,
}

/// RFC 3339 (seconds) of a CRI nanosecond timestamp.
pub fn ts(nanos: i64) -> String {
    DateTime::<Utc>::from_timestamp(nanos.div_euclid(1_000_000_000), 0)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn truncate(s: String) -> String {
    if s.len() <= MAX_MESSAGE {
        return s;
    }
    let mut end = MAX_MESSAGE;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// The last lines of a CRI log file, without the timestamp/stream/tag prefixes.
fn log_tail(path: &str) -> String {
    let Ok(text) = std::fs::read_to_string(path) else {
        return String::new();
    };
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(80);
    let mut out = String::new();
    for l in &lines[start..] {
        let mut parts = l.splitn(4, ' ');
        let (_, _, tag, msg) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next().unwrap_or(""),
        );
        out.push_str(msg);
        if tag != Some("P") {
            out.push('\n');
        }
    }
    if out.len() > 2048 {
        let mut cut = out.len() - 2048;
        while !out.is_char_boundary(cut) {
            cut += 1;
        }
        out = out[cut..].to_string();
    }
    out
}

fn terminated(c: &ContainerInfo, spec: Option<&Container>) -> Value {
    let reason = if !c.reason.is_empty() {
        c.reason.clone()
    } else if c.exit_code == 0 {
        "Completed".into()
    } else {
        "Error".into()
    };
    let mut message = c
        .annotations
        .get(ANNOTATION_TERMINATION_FILE)
        .and_then(|p| std::fs::read(p).ok())
        .map(|b| truncate(String::from_utf8_lossy(&b).to_string()))
        .unwrap_or_default();
    let fallback =
        spec.and_then(|s| s.termination_message_policy.as_deref()) == Some("FallbackToLogsOnError");
    if message.is_empty() && fallback && c.exit_code != 0 {
        message = log_tail(&c.log_path);
    }
    if message.is_empty() {
        message = c.message.clone();
    }
    let mut t = json!({
        "exitCode": c.exit_code,
        "reason": reason,
        "finishedAt": ts(c.finished_at),
        "containerID": format!("containerd://{}", c.id),
    });
    if c.started_at > 0 {
        t["startedAt"] = json!(ts(c.started_at));
    }
    if !message.is_empty() {
        t["message"] = json!(message);
    }
    json!({"terminated": t})
}

fn waiting(reason: &str, message: &str) -> Value {
    let mut w = json!({"reason": reason});
    if !message.is_empty() {
        w["message"] = json!(message);
    }
    json!({"waiting": w})
}

/// One container's status; returns (status, ready, state kind for the phase).
fn container_status(input: &Input, spec: &Container, kind: Kind, initializing: bool) -> Value {
    let name = spec.name.as_str();
    let latest = input.rt.latest(name);
    let image = spec.image.clone().unwrap_or_default();
    let mut s = Map::new();
    s.insert("name".into(), json!(name));
    s.insert("image".into(), json!(image));
    let mut ready = false;
    let mut started = false;
    let override_reason = input.waiting.get(name);
    let (state, last) = match latest {
        Some(c) if c.running() => {
            let p = input.probes.get(&c.id);
            started = p.map(|p| p.started).unwrap_or(true);
            // Init containers are ready once they completed (sidecars: like app containers).
            let sidecar = spec.restart_policy.as_deref() == Some("Always");
            ready = p.map(|p| p.ready).unwrap_or(true) && (kind == Kind::App || sidecar);
            let last = input.rt.previous(name).map(|p| terminated(p, Some(spec)));
            (json!({"running": {"startedAt": ts(c.started_at)}}), last)
        }
        Some(c) if c.exited() => match override_reason {
            None if kind == Kind::Init && c.exit_code == 0 => {
                ready = true;
                (
                    terminated(c, Some(spec)),
                    input.rt.previous(name).map(|p| terminated(p, Some(spec))),
                )
            }
            Some((r, m)) => (waiting(r, m), Some(terminated(c, Some(spec)))),
            None => (
                terminated(c, Some(spec)),
                input.rt.previous(name).map(|p| terminated(p, Some(spec))),
            ),
        },
        Some(c) => {
            let (r, m) = override_reason
                .cloned()
                .unwrap_or_else(|| ("ContainerCreating".into(), String::new()));
            (
                waiting(&r, &m),
                input
                    .rt
                    .previous(name)
                    .filter(|p| p.id != c.id)
                    .map(|p| terminated(p, Some(spec))),
            )
        }
        None => {
            let default = if initializing {
                "PodInitializing"
            } else {
                "ContainerCreating"
            };
            let (r, m) = override_reason
                .cloned()
                .unwrap_or_else(|| (default.into(), String::new()));
            (waiting(&r, &m), None)
        }
    };
    s.insert("state".into(), state);
    s.insert("lastState".into(), last.unwrap_or_else(|| json!({})));
    s.insert("ready".into(), json!(ready));
    s.insert(
        "restartCount".into(),
        json!(latest.map(|c| c.attempt).unwrap_or(0)),
    );
    s.insert("started".into(), json!(started));
    match latest {
        Some(c) => {
            s.insert("imageID".into(), json!(c.image_ref));
            s.insert(
                "containerID".into(),
                json!(format!("containerd://{}", c.id)),
            );
        }
        None => {
            s.insert("imageID".into(), json!(""));
        }
    }
    Value::Object(s)
}

fn is_terminated_ok(v: &Value) -> bool {
    v.pointer("/state/terminated/exitCode")
        .and_then(Value::as_i64)
        == Some(0)
}

/// Upstream's getPhase over the computed statuses.
fn phase(restart_policy: &str, init: &[Value], app: &[Value]) -> &'static str {
    let mut init_pending = false;
    for s in init {
        if is_terminated_ok(s) {
            continue;
        }
        let failed = s.pointer("/state/terminated").is_some()
            || s.pointer("/lastState/terminated")
                .is_some_and(|_| s.pointer("/state/running").is_none());
        if failed && restart_policy == "Never" {
            return "Failed";
        }
        init_pending = true;
    }
    if init_pending {
        return "Pending";
    }
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for s in app {
        if s.pointer("/state/running").is_some() {
            running += 1;
        } else if let Some(t) = s.pointer("/state/terminated") {
            stopped += 1;
            if t["exitCode"] == 0 {
                succeeded += 1;
            }
        } else if s.pointer("/lastState/terminated").is_some() {
            stopped += 1;
        } else {
            waiting += 1;
        }
    }
    if waiting > 0 {
        "Pending"
    } else if running > 0 {
        "Running"
    } else if stopped > 0 {
        if restart_policy == "Always" {
            "Running"
        } else if stopped == succeeded {
            "Succeeded"
        } else if restart_policy == "Never" {
            "Failed"
        } else {
            "Running"
        }
    } else {
        "Pending"
    }
}

/// Whether every app container has terminated for good (the pod is done).
pub fn is_terminal(phase: &str) -> bool {
    phase == "Succeeded" || phase == "Failed"
}

fn condition(
    previous: &[Value],
    kind: &str,
    status: bool,
    reason: Option<&str>,
    message: Option<String>,
) -> Value {
    let st = if status { "True" } else { "False" };
    let transition = previous
        .iter()
        .find(|c| c["type"] == kind && c["status"] == st)
        .and_then(|c| c.get("lastTransitionTime").cloned())
        .unwrap_or_else(|| json!(Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)));
    let mut c = json!({"type": kind, "status": st, "lastProbeTime": null, "lastTransitionTime": transition});
    if let Some(r) = reason {
        c["reason"] = json!(r);
    }
    if let Some(m) = message {
        c["message"] = json!(m);
    }
    c
}

/// The full status to write.
pub fn compute(input: &Input) -> Value {
    let pod = input.pod;
    let spec = pod.spec.as_ref();
    let restart_policy = spec
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always");
    let init_specs: &[Container] = spec
        .and_then(|s| s.init_containers.as_deref())
        .unwrap_or_default();
    let app_specs: &[Container] = spec.map(|s| s.containers.as_slice()).unwrap_or_default();
    let init: Vec<Value> = init_specs
        .iter()
        .map(|c| container_status(input, c, Kind::Init, true))
        .collect();
    let initialized = init.iter().all(is_terminated_ok);
    let app: Vec<Value> = app_specs
        .iter()
        .map(|c| container_status(input, c, Kind::App, !initialized))
        .collect();
    let mut phase_str = phase(restart_policy, &init, &app);
    let mut reason = None;
    let mut message = None;
    if let Some((p, r, m)) = input.forced {
        phase_str = if p == "Succeeded" {
            "Succeeded"
        } else {
            "Failed"
        };
        reason = Some(r.to_string());
        message = Some(m.to_string());
    }
    let previous: Vec<Value> = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .map(|c| {
            c.iter()
                .filter_map(|c| serde_json::to_value(c).ok())
                .collect()
        })
        .unwrap_or_default();
    let terminal = is_terminal(phase_str);
    let done = terminal.then_some("PodCompleted");
    let unready: Vec<&str> = app
        .iter()
        .filter(|s| s["ready"] != true)
        .filter_map(|s| s["name"].as_str())
        .collect();
    let uninit: Vec<&str> = init
        .iter()
        .filter(|s| !is_terminated_ok(s))
        .filter_map(|s| s["name"].as_str())
        .collect();
    let containers_ready = unready.is_empty() && !terminal;
    let gates: Vec<String> = spec
        .and_then(|s| s.readiness_gates.as_ref())
        .map(|g| g.iter().map(|g| g.condition_type.clone()).collect())
        .unwrap_or_default();
    let missing_gates: Vec<&str> = gates
        .iter()
        .filter(|g| {
            !previous
                .iter()
                .any(|c| c["type"] == g.as_str() && c["status"] == "True")
        })
        .map(String::as_str)
        .collect();
    let list = |v: &[&str]| format!("[{}]", v.join(" "));
    let mut conds = vec![
        condition(
            &previous,
            "PodReadyToStartContainers",
            input.sandbox_ready,
            None,
            None,
        ),
        condition(
            &previous,
            "Initialized",
            initialized,
            if initialized {
                done
            } else {
                Some("ContainersNotInitialized")
            },
            (!initialized).then(|| format!("containers with incomplete status: {}", list(&uninit))),
        ),
        condition(
            &previous,
            "Ready",
            containers_ready && missing_gates.is_empty(),
            if terminal {
                done
            } else if !containers_ready {
                Some("ContainersNotReady")
            } else if !missing_gates.is_empty() {
                Some("ReadinessGatesNotReady")
            } else {
                None
            },
            if terminal {
                None
            } else if !containers_ready {
                Some(format!(
                    "containers with unready status: {}",
                    list(&unready)
                ))
            } else if !missing_gates.is_empty() {
                Some(format!(
                    "corresponding condition of pod readiness gate \"{}\" does not exist.",
                    missing_gates[0]
                ))
            } else {
                None
            },
        ),
        condition(
            &previous,
            "ContainersReady",
            containers_ready,
            if terminal {
                done
            } else if containers_ready {
                None
            } else {
                Some("ContainersNotReady")
            },
            (!containers_ready && !terminal)
                .then(|| format!("containers with unready status: {}", list(&unready))),
        ),
        condition(&previous, "PodScheduled", true, None, None),
    ];
    // Conditions owned by others (readiness gates, DisruptionTarget…) stay.
    for c in &previous {
        if !c["type"].as_str().is_some_and(|t| OWNED.contains(&t)) {
            conds.push(c.clone());
        }
    }
    let mut status = json!({
        "phase": phase_str,
        "conditions": conds,
        "hostIP": input.host_ip,
        "hostIPs": [{"ip": input.host_ip}],
        "startTime": input.start_time,
        "containerStatuses": app,
        "qosClass": qos(pod).as_str(),
    });
    if !init.is_empty() {
        status["initContainerStatuses"] = json!(init);
    }
    // Ephemeral containers never count towards phase or readiness.
    let ephemeral: Vec<Value> = spec
        .and_then(|s| s.ephemeral_containers.as_deref())
        .unwrap_or_default()
        .iter()
        .filter_map(super::container::ephemeral_as_container)
        .map(|c| container_status(input, &c, Kind::Ephemeral, false))
        .collect();
    if !ephemeral.is_empty() {
        status["ephemeralContainerStatuses"] = json!(ephemeral);
    }
    if !input.pod_ip.is_empty() {
        status["podIP"] = json!(input.pod_ip);
        status["podIPs"] = json!([{"ip": input.pod_ip}]);
    }
    if let Some(r) = reason {
        status["reason"] = json!(r);
    }
    if let Some(m) = message {
        status["message"] = json!(m);
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cri::api::ContainerState;

    fn ctr(
        id: &str,
        name: &str,
        attempt: u32,
        created: i64,
        state: ContainerState,
        exit: i32,
    ) -> ContainerInfo {
        ContainerInfo {
            id: id.into(),
            sandbox_id: "s".into(),
            name: name.into(),
            attempt,
            state,
            created_at: created,
            started_at: created,
            finished_at: created + 1_000_000_000,
            exit_code: exit,
            reason: String::new(),
            message: String::new(),
            image_ref: "sha256:img".into(),
            log_path: String::new(),
            annotations: HashMap::new(),
        }
    }

    fn pod(policy: &str) -> Pod {
        serde_json::from_value(
            json!({"metadata": {"name": "p", "uid": "u"}, "spec": {"restartPolicy": policy,
            "containers": [{"name": "a", "image": "busybox:1.36"}]}}),
        )
        .unwrap()
    }

    fn run(pod: &Pod, rt: &PodRuntime, waiting: &HashMap<String, (String, String)>) -> Value {
        compute(&Input {
            pod,
            rt,
            pod_ip: "10.42.0.2",
            sandbox_ready: true,
            host_ip: "127.0.0.1",
            probes: &HashMap::new(),
            waiting,
            forced: None,
            start_time: "2024-01-01T00:00:00Z",
        })
    }

    #[test]
    fn running_then_crashloop_then_done() {
        let p = pod("Always");
        let rt = PodRuntime {
            sandboxes: vec![],
            containers: vec![ctr("c1", "a", 0, 1, ContainerState::ContainerRunning, 0)],
        };
        let s = run(&p, &rt, &HashMap::new());
        assert_eq!(s["phase"], "Running");
        assert_eq!(s["containerStatuses"][0]["ready"], true);
        assert_eq!(s["containerStatuses"][0]["containerID"], "containerd://c1");
        assert_eq!(s["podIP"], "10.42.0.2");
        let ready = s["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap();
        assert_eq!(ready["status"], "True");

        let rt = PodRuntime {
            sandboxes: vec![],
            containers: vec![
                ctr("c2", "a", 1, 2, ContainerState::ContainerExited, 1),
                ctr("c1", "a", 0, 1, ContainerState::ContainerExited, 1),
            ],
        };
        let w = HashMap::from([(
            "a".to_string(),
            ("CrashLoopBackOff".to_string(), "back-off 10s".to_string()),
        )]);
        let s = run(&p, &rt, &w);
        assert_eq!(s["phase"], "Running");
        assert_eq!(
            s["containerStatuses"][0]["state"]["waiting"]["reason"],
            "CrashLoopBackOff"
        );
        assert_eq!(
            s["containerStatuses"][0]["lastState"]["terminated"]["exitCode"],
            1
        );
        assert_eq!(
            s["containerStatuses"][0]["lastState"]["terminated"]["reason"],
            "Error"
        );
        assert_eq!(s["containerStatuses"][0]["restartCount"], 1);

        let never = pod("Never");
        let rt = PodRuntime {
            sandboxes: vec![],
            containers: vec![ctr("c1", "a", 0, 1, ContainerState::ContainerExited, 0)],
        };
        let s = run(&never, &rt, &HashMap::new());
        assert_eq!(s["phase"], "Succeeded");
        assert_eq!(
            s["containerStatuses"][0]["state"]["terminated"]["reason"],
            "Completed"
        );
        let rt = PodRuntime {
            sandboxes: vec![],
            containers: vec![ctr("c1", "a", 0, 1, ContainerState::ContainerExited, 2)],
        };
        assert_eq!(run(&never, &rt, &HashMap::new())["phase"], "Failed");
    }

    #[test]
    fn pending_with_waiting_reason() {
        let p = pod("Always");
        let w = HashMap::from([(
            "a".to_string(),
            ("ErrImageNeverPull".to_string(), "not present".to_string()),
        )]);
        let s = run(&p, &PodRuntime::default(), &w);
        assert_eq!(s["phase"], "Pending");
        assert_eq!(
            s["containerStatuses"][0]["state"]["waiting"]["reason"],
            "ErrImageNeverPull"
        );
        assert_eq!(s["containerStatuses"][0]["ready"], false);
    }

    #[test]
    fn timestamps() {
        assert_eq!(ts(1_700_000_000_123_456_789), "2023-11-14T22:13:20Z");
    }
}
