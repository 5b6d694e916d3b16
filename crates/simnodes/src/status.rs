//! Pod statuses a kubelet would report: running and ready, finished with an exit code, or
//! rejected at admission. Each is a complete `status` for a merge patch (conditions and
//! container statuses replace the old lists).

use k8s_openapi::api::core::v1::{Container, Pod};
use serde_json::{Value, json};
use std::net::Ipv4Addr;

fn condition(kind: &str, status: &str, at: &str, reason: Option<&str>) -> Value {
    let mut c =
        json!({"type": kind, "status": status, "lastProbeTime": null, "lastTransitionTime": at});
    if let Some(r) = reason {
        c["reason"] = json!(r);
    }
    c
}

/// The pod's PodScheduled condition as the scheduler wrote it (kept, not re-timestamped).
fn scheduled_condition(pod: &Pod, at: &str) -> Value {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.type_ == "PodScheduled" && c.status == "True")
        })
        .and_then(|c| serde_json::to_value(c).ok())
        .unwrap_or_else(|| condition("PodScheduled", "True", at, None))
}

fn containers(pod: &Pod) -> (&[Container], &[Container]) {
    match &pod.spec {
        Some(s) => (&s.containers, s.init_containers.as_deref().unwrap_or(&[])),
        None => (&[], &[]),
    }
}

fn uid(pod: &Pod) -> &str {
    pod.metadata.uid.as_deref().unwrap_or("")
}

fn container_id(pod: &Pod, c: &Container) -> String {
    format!("sim://{}-{}", uid(pod), c.name)
}

fn base_status(c: &Container, id: String) -> Value {
    json!({
        "name": c.name,
        "image": c.image.clone().unwrap_or_default(),
        "imageID": format!("sim://{}", c.image.clone().unwrap_or_default()),
        "containerID": id,
        "restartCount": 0,
    })
}

fn is_sidecar(c: &Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

/// Init containers after a successful start: ordinary ones completed, sidecars running.
fn init_statuses(pod: &Pod, at: &str) -> Vec<Value> {
    let (_, init) = containers(pod);
    init.iter()
        .map(|c| {
            let mut s = base_status(c, container_id(pod, c));
            if is_sidecar(c) {
                s["ready"] = json!(true);
                s["started"] = json!(true);
                s["state"] = json!({"running": {"startedAt": at}});
            } else {
                s["ready"] = json!(true);
                s["started"] = json!(false);
                s["state"] = json!({"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": at, "finishedAt": at}});
            }
            s
        })
        .collect()
}

fn ip_fields(status: &mut Value, host_ip: Ipv4Addr, pod_ip: Ipv4Addr) {
    status["hostIP"] = json!(host_ip.to_string());
    status["hostIPs"] = json!([{"ip": host_ip.to_string()}]);
    status["podIP"] = json!(pod_ip.to_string());
    status["podIPs"] = json!([{"ip": pod_ip.to_string()}]);
}

/// Running, every container started and ready.
pub fn running(pod: &Pod, host_ip: Ipv4Addr, pod_ip: Ipv4Addr, at: &str) -> Value {
    let (main, _) = containers(pod);
    let statuses: Vec<Value> = main
        .iter()
        .map(|c| {
            let mut s = base_status(c, container_id(pod, c));
            s["ready"] = json!(true);
            s["started"] = json!(true);
            s["state"] = json!({"running": {"startedAt": at}});
            s
        })
        .collect();
    let mut status = json!({
        "phase": "Running",
        "conditions": [
            condition("PodReadyToStartContainers", "True", at, None),
            condition("Initialized", "True", at, None),
            condition("Ready", "True", at, None),
            condition("ContainersReady", "True", at, None),
            scheduled_condition(pod, at),
        ],
        "startTime": at,
        "containerStatuses": statuses,
    });
    let init = init_statuses(pod, at);
    if !init.is_empty() {
        status["initContainerStatuses"] = json!(init);
    }
    ip_fields(&mut status, host_ip, pod_ip);
    status
}

/// Every container exited with `code`; `restart_policy` decides the phase as the kubelet
/// does: Never → Succeeded/Failed; OnFailure → Succeeded on 0, else the container restarts
/// (phase stays Running, not ready, restartCount 1).
pub fn finished(pod: &Pod, code: i32, restart_policy: &str, started: &str, at: &str) -> Value {
    let (main, _) = containers(pod);
    let restarting = code != 0 && restart_policy == "OnFailure";
    let reason = if code == 0 { "Completed" } else { "Error" };
    let terminated = json!({"terminated": {"exitCode": code, "reason": reason, "startedAt": started, "finishedAt": at}});
    let statuses: Vec<Value> = main
        .iter()
        .map(|c| {
            let mut s = base_status(c, container_id(pod, c));
            s["ready"] = json!(false);
            s["started"] = json!(false);
            if restarting {
                s["restartCount"] = json!(1);
                s["lastState"] = terminated.clone();
                s["state"] = json!({"waiting": {"reason": "CrashLoopBackOff",
                    "message": format!("back-off restarting failed container {}", c.name)}});
            } else {
                s["state"] = terminated.clone();
            }
            s
        })
        .collect();
    let (phase, ready_reason) = match (code, restarting) {
        (0, _) => ("Succeeded", "PodCompleted"),
        (_, true) => ("Running", "ContainersNotReady"),
        _ => ("Failed", "PodFailed"),
    };
    let ready = condition("Ready", "False", at, Some(ready_reason));
    let containers_ready = condition("ContainersReady", "False", at, Some(ready_reason));
    let ready_to_start = if restarting { "True" } else { "False" };
    json!({
        "phase": phase,
        "conditions": [
            condition("PodReadyToStartContainers", ready_to_start, at, None),
            condition("Initialized", "True", started, None),
            ready,
            containers_ready,
            scheduled_condition(pod, started),
        ],
        "containerStatuses": statuses,
    })
}

/// Rejected at admission because the node is full (kubelet's `OutOfpods`).
pub fn rejected_out_of_pods(used: usize, capacity: u32) -> Value {
    json!({
        "phase": "Failed",
        "reason": "OutOfpods",
        "message": format!(
            "Pod was rejected: Node didn't have enough resource: pods, requested: 1, used: {used}, capacity: {capacity}"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "default", "uid": "u"},
            "spec": {
                "containers": [{"name": "c", "image": "busybox"}],
                "initContainers": [{"name": "i", "image": "init"}, {"name": "s", "image": "side", "restartPolicy": "Always"}],
            },
            "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": "2024-01-01T00:00:00Z"}]},
        }))
        .expect("pod")
    }

    #[test]
    fn running_status() {
        let t = "2024-01-02T00:00:00Z";
        let s = running(
            &pod(),
            Ipv4Addr::new(10, 200, 0, 1),
            Ipv4Addr::new(10, 128, 0, 7),
            t,
        );
        assert_eq!(s["phase"], "Running");
        assert_eq!(s["podIP"], "10.128.0.7");
        assert_eq!(s["hostIPs"][0]["ip"], "10.200.0.1");
        assert_eq!(
            s["containerStatuses"][0]["state"]["running"]["startedAt"],
            t
        );
        assert_eq!(s["containerStatuses"][0]["containerID"], "sim://u-c");
        assert_eq!(
            s["initContainerStatuses"][0]["state"]["terminated"]["reason"],
            "Completed"
        );
        assert_eq!(
            s["initContainerStatuses"][1]["state"]["running"]["startedAt"],
            t
        );
        let conds = s["conditions"].as_array().cloned().unwrap_or_default();
        for t in ["Ready", "ContainersReady", "Initialized", "PodScheduled"] {
            assert!(
                conds
                    .iter()
                    .any(|c| c["type"] == t && c["status"] == "True"),
                "{t}"
            );
        }
        // The scheduler's transition time is kept.
        assert!(
            conds.iter().any(|c| c["type"] == "PodScheduled"
                && c["lastTransitionTime"] == "2024-01-01T00:00:00Z")
        );
        let mut p = pod();
        p.status = Some(serde_json::from_value(s).expect("typed status"));
    }

    #[test]
    fn finished_statuses() {
        let ok = finished(&pod(), 0, "Never", "S", "T");
        assert_eq!(ok["phase"], "Succeeded");
        assert_eq!(
            ok["containerStatuses"][0]["state"]["terminated"]["exitCode"],
            0
        );
        let failed = finished(&pod(), 3, "Never", "S", "T");
        assert_eq!(failed["phase"], "Failed");
        assert_eq!(
            failed["containerStatuses"][0]["state"]["terminated"]["reason"],
            "Error"
        );
        let restarting = finished(&pod(), 3, "OnFailure", "S", "T");
        assert_eq!(restarting["phase"], "Running");
        assert_eq!(restarting["containerStatuses"][0]["restartCount"], 1);
        let r = rejected_out_of_pods(110, 110);
        assert_eq!(r["reason"], "OutOfpods");
    }
}
