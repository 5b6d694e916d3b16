//! The pod row: READY, STATUS and RESTARTS summarise container states the way upstream's
//! printer does (init progress `Init:0/1`, waiting reasons such as `CrashLoopBackOff`,
//! `Completed`, `Terminating`, restarts as `2 (5m ago)`).

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::duration::since;
use super::fields::{arr_at, at, bool_at, created, deleting, int0, name, or_none, str_at, time_at};
use super::{AGE, Column, NAME, col, wide};

pub(crate) const COLUMNS: &[Column] = &[
    NAME,
    col(
        "Ready",
        "Ready containers out of all containers of the pod.",
    ),
    col("Status", "Summary of the pod's phase and container states."),
    col(
        "Restarts",
        "Container restarts, and how long ago the last one happened.",
    ),
    AGE,
    wide("IP", "The pod's first IP address."),
    wide("Node", "The node the pod is bound to."),
    wide(
        "Nominated Node",
        "The node the scheduler nominated for a preempting pod.",
    ),
    wide(
        "Readiness Gates",
        "Readiness gate conditions that are true, out of all gates.",
    ),
];

/// The summary columns of a pod, separate from JSON so they can be tested directly.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Summary {
    pub ready: String,
    pub status: String,
    pub restarts: String,
}

fn is_restartable(container: Option<&Value>) -> bool {
    container.is_some_and(|c| str_at(c, &["restartPolicy"]) == "Always")
}

fn condition_true(pod: &Value, kind: &str) -> bool {
    arr_at(pod, &["status", "conditions"])
        .iter()
        .find(|c| str_at(c, &["type"]) == kind)
        .is_some_and(|c| str_at(c, &["status"]) == "True")
}

/// Keeps the later of `current` and the container's last termination time.
fn later_termination(current: &mut Option<DateTime<Utc>>, status: &Value) {
    if let Some(t) = time_at(status, &["lastState", "terminated", "finishedAt"])
        && current.is_none_or(|c| c < t)
    {
        *current = Some(t);
    }
}

/// `Signal:N` / `ExitCode:N` / the terminated reason, with `prefix` (`Init:` or "").
fn terminated_reason(terminated: &Value, prefix: &str) -> String {
    let reason = str_at(terminated, &["reason"]);
    if !reason.is_empty() {
        return format!("{prefix}{reason}");
    }
    let signal = int0(terminated, &["signal"]);
    if signal != 0 {
        format!("{prefix}Signal:{signal}")
    } else {
        format!("{prefix}ExitCode:{}", int0(terminated, &["exitCode"]))
    }
}

pub(crate) fn summarize(pod: &Value, now: DateTime<Utc>) -> Summary {
    let containers = arr_at(pod, &["spec", "containers"]);
    let init_specs = arr_at(pod, &["spec", "initContainers"]);
    let mut total = containers.len();
    let mut ready = 0usize;
    let mut restarts = 0i64;
    let mut restartable_init_restarts = 0i64;
    let mut last_restart: Option<DateTime<Utc>> = None;
    let mut last_restartable_init_restart: Option<DateTime<Utc>> = None;

    let phase = str_at(pod, &["status", "phase"]);
    let mut reason = match str_at(pod, &["status", "reason"]) {
        "" => phase.to_string(),
        r => r.to_string(),
    };
    let gated = arr_at(pod, &["status", "conditions"]).iter().any(|c| {
        str_at(c, &["type"]) == "PodScheduled" && str_at(c, &["reason"]) == "SchedulingGated"
    });
    if gated {
        reason = "SchedulingGated".to_string();
    }

    let init_spec = |name: &str| init_specs.iter().find(|c| str_at(c, &["name"]) == name);
    // Sidecars (restartable init containers) count as regular containers.
    total += init_specs
        .iter()
        .filter(|c| is_restartable(Some(c)))
        .count();

    let mut initializing = false;
    for (i, status) in arr_at(pod, &["status", "initContainerStatuses"])
        .iter()
        .enumerate()
    {
        let count = int0(status, &["restartCount"]);
        restarts += count;
        later_termination(&mut last_restart, status);
        let restartable = is_restartable(init_spec(str_at(status, &["name"])));
        if restartable {
            restartable_init_restarts += count;
            later_termination(&mut last_restartable_init_restart, status);
        }
        let terminated = at(status, &["state", "terminated"]);
        let waiting_reason = str_at(status, &["state", "waiting", "reason"]);
        if terminated.is_some_and(|t| int0(t, &["exitCode"]) == 0) {
            continue;
        }
        if restartable && bool_at(status, &["started"]) == Some(true) {
            if bool_at(status, &["ready"]) == Some(true) {
                ready += 1;
            }
            continue;
        }
        reason = if let Some(t) = terminated {
            terminated_reason(t, "Init:")
        } else if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" {
            format!("Init:{waiting_reason}")
        } else {
            format!("Init:{i}/{}", init_specs.len())
        };
        initializing = true;
        break;
    }

    if !initializing || condition_true(pod, "Initialized") {
        restarts = restartable_init_restarts;
        last_restart = last_restartable_init_restart;
        let mut has_running = false;
        for status in arr_at(pod, &["status", "containerStatuses"]).iter().rev() {
            restarts += int0(status, &["restartCount"]);
            later_termination(&mut last_restart, status);
            let waiting_reason = str_at(status, &["state", "waiting", "reason"]);
            let terminated = at(status, &["state", "terminated"]);
            if !waiting_reason.is_empty() {
                reason = waiting_reason.to_string();
            } else if let Some(t) = terminated {
                reason = terminated_reason(t, "");
            } else if bool_at(status, &["ready"]) == Some(true)
                && at(status, &["state", "running"]).is_some()
            {
                has_running = true;
                ready += 1;
            }
        }
        // A pod whose last-listed container completed but another still runs is running.
        if reason == "Completed" && has_running {
            reason = if condition_true(pod, "Ready") {
                "Running".to_string()
            } else {
                "NotReady".to_string()
            };
        }
    }

    if deleting(pod) && str_at(pod, &["status", "reason"]) == "NodeLost" {
        reason = "Unknown".to_string();
    } else if deleting(pod) && phase != "Succeeded" && phase != "Failed" {
        reason = "Terminating".to_string();
    }

    let restarts = match last_restart {
        Some(t) if restarts != 0 => format!("{restarts} ({} ago)", since(Some(t), now)),
        _ => restarts.to_string(),
    };
    Summary {
        ready: format!("{ready}/{total}"),
        status: reason,
        restarts,
    }
}

pub(crate) fn cells(pod: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let s = summarize(pod, now);
    let ip = arr_at(pod, &["status", "podIPs"])
        .first()
        .map(|ip| str_at(ip, &["ip"]))
        .unwrap_or("");
    let gates = arr_at(pod, &["spec", "readinessGates"]);
    let readiness = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let met = gates
            .iter()
            .filter(|g| condition_true(pod, str_at(g, &["conditionType"])))
            .count();
        format!("{met}/{}", gates.len())
    };
    vec![
        name(pod).into(),
        s.ready.into(),
        s.status.into(),
        s.restarts.into(),
        since(created(pod), now).into(),
        or_none(ip).into(),
        or_none(str_at(pod, &["spec", "nodeName"])).into(),
        or_none(str_at(pod, &["status", "nominatedNodeName"])).into(),
        readiness.into(),
    ]
}

/// Rows of finished pods carry a `Completed` condition, as upstream marks them.
pub(crate) fn conditions(pod: &Value) -> Option<Value> {
    let (reason, message) = match str_at(pod, &["status", "phase"]) {
        "Succeeded" => ("Succeeded", "The pod has completed successfully."),
        "Failed" => ("Failed", "The pod failed."),
        _ => return None,
    };
    Some(json!([{"type": "Completed", "status": "True", "reason": reason, "message": message}]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2024-05-01T12:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .expect("time")
    }

    fn pod(spec: Value, status: Value) -> Value {
        json!({"metadata": {"name": "p", "creationTimestamp": "2024-05-01T11:00:00Z"},
               "spec": spec, "status": status})
    }

    fn one_container() -> Value {
        json!({"containers": [{"name": "c", "image": "busybox"}]})
    }

    fn running(ready: bool, restarts: i64) -> Value {
        json!({"name": "c", "ready": ready, "restartCount": restarts,
               "state": {"running": {"startedAt": "2024-05-01T11:00:00Z"}}})
    }

    fn check(p: &Value, ready: &str, status: &str, restarts: &str) {
        assert_eq!(
            summarize(p, now()),
            Summary {
                ready: ready.into(),
                status: status.into(),
                restarts: restarts.into()
            }
        );
    }

    #[test]
    fn status_table() {
        let cases: Vec<(Value, &str, &str, &str)> = vec![
            // Just created: no status yet.
            (
                pod(one_container(), json!({"phase": "Pending"})),
                "0/1",
                "Pending",
                "0",
            ),
            // Scheduled, image being pulled.
            (
                pod(
                    one_container(),
                    json!({"phase": "Pending", "containerStatuses": [
                    {"name": "c", "ready": false, "restartCount": 0,
                     "state": {"waiting": {"reason": "ContainerCreating"}}}]}),
                ),
                "0/1",
                "ContainerCreating",
                "0",
            ),
            (
                pod(
                    one_container(),
                    json!({"phase": "Running", "containerStatuses": [running(true, 0)]}),
                ),
                "1/1",
                "Running",
                "0",
            ),
            // Crash looping, last exit 5 minutes ago.
            (
                pod(
                    one_container(),
                    json!({"phase": "Running", "containerStatuses": [
                    {"name": "c", "ready": false, "restartCount": 2,
                     "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                     "lastState": {"terminated": {"exitCode": 1,
                        "finishedAt": "2024-05-01T11:55:00Z"}}}]}),
                ),
                "0/1",
                "CrashLoopBackOff",
                "2 (5m ago)",
            ),
            (
                pod(
                    one_container(),
                    json!({"phase": "Succeeded", "containerStatuses": [
                    {"name": "c", "ready": false, "restartCount": 0,
                     "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}),
                ),
                "0/1",
                "Completed",
                "0",
            ),
            (
                pod(
                    one_container(),
                    json!({"phase": "Failed", "containerStatuses": [
                    {"name": "c", "restartCount": 0,
                     "state": {"terminated": {"exitCode": 137}}}]}),
                ),
                "0/1",
                "ExitCode:137",
                "0",
            ),
            (
                pod(
                    one_container(),
                    json!({"phase": "Failed", "containerStatuses": [
                    {"name": "c", "restartCount": 0,
                     "state": {"terminated": {"exitCode": 0, "signal": 9}}}]}),
                ),
                "0/1",
                "Signal:9",
                "0",
            ),
            // Evicted: the pod-level reason wins when no container says otherwise.
            (
                pod(
                    one_container(),
                    json!({"phase": "Failed", "reason": "Evicted"}),
                ),
                "0/1",
                "Evicted",
                "0",
            ),
            (
                pod(
                    one_container(),
                    json!({"phase": "Pending", "conditions": [
                    {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}),
                ),
                "0/1",
                "SchedulingGated",
                "0",
            ),
        ];
        for (p, ready, status, restarts) in &cases {
            check(p, ready, status, restarts);
        }
    }

    #[test]
    fn init_containers() {
        let spec = json!({"initContainers": [{"name": "i1"}, {"name": "i2"}],
                          "containers": [{"name": "c"}]});
        let waiting = |reason: &str| {
            json!({"name": "i1", "restartCount": 0,
                                             "state": {"waiting": {"reason": reason}}})
        };
        let done = json!({"name": "i1", "restartCount": 0,
                          "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}});
        let second_running = json!({"name": "i2", "restartCount": 0, "state": {"running": {}}});
        check(
            &pod(
                spec.clone(),
                json!({"phase": "Pending", "initContainerStatuses": [waiting("PodInitializing")]}),
            ),
            "0/1",
            "Init:0/2",
            "0",
        );
        check(
            &pod(
                spec.clone(),
                json!({"phase": "Pending", "initContainerStatuses": [done, second_running]}),
            ),
            "0/1",
            "Init:1/2",
            "0",
        );
        check(
            &pod(
                spec.clone(),
                json!({"phase": "Pending", "initContainerStatuses": [waiting("ErrImagePull")]}),
            ),
            "0/1",
            "Init:ErrImagePull",
            "0",
        );
        let failed = json!({"name": "i1", "restartCount": 3,
            "state": {"terminated": {"exitCode": 1, "reason": "Error"}},
            "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2024-05-01T11:59:30Z"}}});
        check(
            &pod(
                spec,
                json!({"phase": "Pending", "initContainerStatuses": [failed]}),
            ),
            "0/1",
            "Init:Error",
            "3 (30s ago)",
        );
    }

    #[test]
    fn sidecar_counts_as_container() {
        let spec = json!({"initContainers": [{"name": "side", "restartPolicy": "Always"}],
                          "containers": [{"name": "c"}]});
        let status = json!({"phase": "Running",
            "conditions": [{"type": "Initialized", "status": "True"}],
            "initContainerStatuses": [{"name": "side", "ready": true, "started": true,
                                       "restartCount": 1, "state": {"running": {}}}],
            "containerStatuses": [running(true, 0)]});
        check(&pod(spec, status), "2/2", "Running", "1");
    }

    #[test]
    fn completed_with_running_container() {
        let spec = json!({"containers": [{"name": "a"}, {"name": "b"}]});
        let statuses = json!([running(true, 0),
            {"name": "b", "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]);
        let ready = pod(
            spec.clone(),
            json!({"phase": "Running", "containerStatuses": statuses,
            "conditions": [{"type": "Ready", "status": "True"}]}),
        );
        check(&ready, "1/2", "Running", "0");
        let not_ready = pod(
            spec,
            json!({"phase": "Running", "containerStatuses": statuses}),
        );
        check(&not_ready, "1/2", "NotReady", "0");
    }

    #[test]
    fn terminating_and_unknown() {
        let mut p = pod(
            one_container(),
            json!({"phase": "Running", "containerStatuses": [running(true, 0)]}),
        );
        p["metadata"]["deletionTimestamp"] = json!("2024-05-01T11:59:00Z");
        check(&p, "1/1", "Terminating", "0");
        p["status"]["reason"] = json!("NodeLost");
        check(&p, "1/1", "Unknown", "0");
        let mut done = pod(one_container(), json!({"phase": "Succeeded"}));
        done["metadata"]["deletionTimestamp"] = json!("2024-05-01T11:59:00Z");
        check(&done, "0/1", "Succeeded", "0");
    }

    #[test]
    fn wide_cells_and_conditions() {
        let mut p = pod(
            json!({"containers": [{"name": "c"}], "nodeName": "n1",
                   "readinessGates": [{"conditionType": "g1"}, {"conditionType": "g2"}]}),
            json!({"phase": "Succeeded", "podIPs": [{"ip": "10.42.0.5"}],
                   "conditions": [{"type": "g1", "status": "True"}]}),
        );
        let cells = cells(&p, now());
        assert_eq!(cells[4], "60m");
        assert_eq!(
            &cells[5..],
            &[
                json!("10.42.0.5"),
                json!("n1"),
                json!("<none>"),
                json!("1/2")
            ]
        );
        assert_eq!(conditions(&p).expect("completed")[0]["reason"], "Succeeded");
        p["status"]["phase"] = json!("Running");
        assert!(conditions(&p).is_none());
    }
}
