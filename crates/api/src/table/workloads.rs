//! Printers of workload kinds: apps/v1, batch/v1 and autoscaling.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::duration::{human_duration, since};
use super::fields::{
    arr_at, at, bool_ptr, containers_cells, created, deleting, format_label_selector,
    format_labels, int_at, int0, name, quantity, selector_string, str_at, time_at,
};
use super::{AGE, CONTAINERS, Column, IMAGES, NAME, Printer, SELECTOR, col, typed};

pub(super) fn printer(group: &str, plural: &str) -> Option<Printer> {
    let (columns, cells): (&'static [Column], super::CellsFn) = match (group, plural) {
        ("apps", "deployments") => (DEPLOYMENT, deployment),
        ("apps", "replicasets") => (REPLICASET, replicaset),
        ("apps", "statefulsets") => (STATEFULSET, statefulset),
        ("apps", "daemonsets") => (DAEMONSET, daemonset),
        ("apps", "controllerrevisions") => (CONTROLLER_REVISION, controller_revision),
        ("batch", "jobs") => (JOB, job),
        ("batch", "cronjobs") => (CRONJOB, cronjob),
        ("autoscaling", "horizontalpodautoscalers") => (HPA, hpa),
        _ => return None,
    };
    Some(Printer { columns, cells })
}

/// `spec.replicas`, which defaulting sets to 1.
fn desired_replicas(v: &Value) -> i64 {
    int_at(v, &["spec", "replicas"]).unwrap_or(1)
}

fn template_containers(v: &Value) -> (String, String) {
    containers_cells(arr_at(v, &["spec", "template", "spec", "containers"]))
}

const DEPLOYMENT: &[Column] = &[
    NAME,
    col("Ready", "Ready pods out of desired pods."),
    col("Up-to-date", "Pods running the current template."),
    col("Available", "Pods available to serve."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

fn deployment(d: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let (names, images) = template_containers(d);
    // Unlike other kinds, deployments print an empty selector as "" (not <none>).
    let selector =
        selector_string(at(d, &["spec", "selector"])).unwrap_or_else(|()| "<invalid>".to_string());
    vec![
        name(d).into(),
        format!(
            "{}/{}",
            int0(d, &["status", "readyReplicas"]),
            desired_replicas(d)
        )
        .into(),
        int0(d, &["status", "updatedReplicas"]).into(),
        int0(d, &["status", "availableReplicas"]).into(),
        since(created(d), now).into(),
        names.into(),
        images.into(),
        selector.into(),
    ]
}

const REPLICASET: &[Column] = &[
    NAME,
    typed("Desired", "integer", "Desired number of pods."),
    typed("Current", "integer", "Number of pods created."),
    typed("Ready", "integer", "Number of ready pods."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

fn replicaset(rs: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let (names, images) = template_containers(rs);
    vec![
        name(rs).into(),
        desired_replicas(rs).into(),
        int0(rs, &["status", "replicas"]).into(),
        int0(rs, &["status", "readyReplicas"]).into(),
        since(created(rs), now).into(),
        names.into(),
        images.into(),
        format_label_selector(at(rs, &["spec", "selector"])).into(),
    ]
}

const STATEFULSET: &[Column] = &[
    NAME,
    col("Ready", "Ready pods out of desired pods."),
    AGE,
    CONTAINERS,
    IMAGES,
];

fn statefulset(sts: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let (names, images) = template_containers(sts);
    vec![
        name(sts).into(),
        format!(
            "{}/{}",
            int0(sts, &["status", "readyReplicas"]),
            desired_replicas(sts)
        )
        .into(),
        since(created(sts), now).into(),
        names.into(),
        images.into(),
    ]
}

const DAEMONSET: &[Column] = &[
    NAME,
    typed(
        "Desired",
        "integer",
        "Nodes that should run the daemon pod.",
    ),
    typed("Current", "integer", "Nodes running a daemon pod."),
    typed("Ready", "integer", "Nodes with a ready daemon pod."),
    typed(
        "Up-to-date",
        "integer",
        "Nodes running the current template.",
    ),
    typed(
        "Available",
        "integer",
        "Nodes with an available daemon pod.",
    ),
    col(
        "Node Selector",
        "Node labels the daemon pods are restricted to.",
    ),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

fn daemonset(ds: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let (names, images) = template_containers(ds);
    vec![
        name(ds).into(),
        int0(ds, &["status", "desiredNumberScheduled"]).into(),
        int0(ds, &["status", "currentNumberScheduled"]).into(),
        int0(ds, &["status", "numberReady"]).into(),
        int0(ds, &["status", "updatedNumberScheduled"]).into(),
        int0(ds, &["status", "numberAvailable"]).into(),
        format_labels(at(ds, &["spec", "template", "spec", "nodeSelector"])).into(),
        since(created(ds), now).into(),
        names.into(),
        images.into(),
        format_label_selector(at(ds, &["spec", "selector"])).into(),
    ]
}

const CONTROLLER_REVISION: &[Column] = &[
    NAME,
    col("Controller", "The object that owns this revision."),
    col("Revision", "Revision number."),
    AGE,
];

fn controller_revision(cr: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let controller = arr_at(cr, &["metadata", "ownerReferences"])
        .iter()
        .find(|o| o.get("controller").and_then(Value::as_bool) == Some(true))
        .map_or_else(
            || "<none>".to_string(),
            |o| {
                // "statefulset.apps/web": lower-cased Kind.group, then the name.
                let kind = str_at(o, &["kind"]);
                let group = str_at(o, &["apiVersion"])
                    .rsplit_once('/')
                    .map_or("", |(g, _)| g);
                let group_kind = if group.is_empty() {
                    kind.to_string()
                } else {
                    format!("{kind}.{group}")
                };
                let owner = str_at(o, &["name"]);
                if group_kind.is_empty() {
                    owner.to_string()
                } else {
                    format!("{}/{owner}", group_kind.to_lowercase())
                }
            },
        );
    vec![
        name(cr).into(),
        controller.into(),
        int0(cr, &["revision"]).into(),
        since(created(cr), now).into(),
    ]
}

const JOB: &[Column] = &[
    NAME,
    col("Status", "Complete, Failed, Running, Suspended, …"),
    col("Completions", "Succeeded pods out of required completions."),
    col("Duration", "How long the job ran or has been running."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

fn job_condition(job: &Value, kind: &str) -> bool {
    arr_at(job, &["status", "conditions"])
        .iter()
        .find(|c| str_at(c, &["type"]) == kind)
        .is_some_and(|c| str_at(c, &["status"]) == "True")
}

pub(crate) fn job_status(job: &Value) -> &'static str {
    if job_condition(job, "Complete") {
        "Complete"
    } else if job_condition(job, "Failed") {
        "Failed"
    } else if deleting(job) {
        "Terminating"
    } else if job_condition(job, "Suspended") {
        "Suspended"
    } else if job_condition(job, "FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    }
}

fn job(job: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let succeeded = int0(job, &["status", "succeeded"]);
    let completions = match int_at(job, &["spec", "completions"]) {
        Some(c) => format!("{succeeded}/{c}"),
        None => match int_at(job, &["spec", "parallelism"]).unwrap_or(0) {
            p if p > 1 => format!("{succeeded}/1 of {p}"),
            _ => format!("{succeeded}/1"),
        },
    };
    let duration = match (
        time_at(job, &["status", "startTime"]),
        time_at(job, &["status", "completionTime"]),
    ) {
        (None, _) => String::new(),
        (Some(start), None) => human_duration(now - start),
        (Some(start), Some(end)) => human_duration(end - start),
    };
    let (names, images) = template_containers(job);
    vec![
        name(job).into(),
        job_status(job).into(),
        completions.into(),
        duration.into(),
        since(created(job), now).into(),
        names.into(),
        images.into(),
        format_label_selector(at(job, &["spec", "selector"])).into(),
    ]
}

const CRONJOB: &[Column] = &[
    NAME,
    col("Schedule", "Cron schedule."),
    col("Timezone", "Time zone of the schedule."),
    typed("Suspend", "boolean", "Whether new runs are suspended."),
    typed("Active", "integer", "Number of running jobs."),
    col("Last Schedule", "Time since a job was last scheduled."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

fn cronjob(cj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let last = match time_at(cj, &["status", "lastScheduleTime"]) {
        Some(t) => since(Some(t), now),
        None => "<none>".to_string(),
    };
    let time_zone = at(cj, &["spec", "timeZone"])
        .and_then(Value::as_str)
        .unwrap_or("<none>");
    let template = at(cj, &["spec", "jobTemplate"])
        .cloned()
        .unwrap_or(Value::Null);
    let (names, images) = template_containers(&template);
    vec![
        name(cj).into(),
        str_at(cj, &["spec", "schedule"]).into(),
        time_zone.into(),
        bool_ptr(at(cj, &["spec", "suspend"]).and_then(Value::as_bool)).into(),
        arr_at(cj, &["status", "active"]).len().into(),
        last.into(),
        since(created(cj), now).into(),
        names.into(),
        images.into(),
        format_label_selector(at(&template, &["spec", "selector"])).into(),
    ]
}

const HPA: &[Column] = &[
    NAME,
    col("Reference", "The scaled object (Kind/name)."),
    col("Targets", "Current/target value of each metric."),
    col("MinPods", "Lower replica limit."),
    col("MaxPods", "Upper replica limit."),
    col("Replicas", "Current number of replicas."),
    AGE,
];

/// `current/target` of one metric target (`averageValue`, `value` or `averageUtilization`).
fn metric_target(spec: &Value, status: Option<&Value>) -> String {
    let current = |field: &str| {
        status
            .and_then(|s| at(s, &["current", field]))
            .map(|q| quantity(Some(q)))
            .unwrap_or_else(|| "<unknown>".to_string())
    };
    if let Some(avg) = at(spec, &["target", "averageValue"]) {
        format!("{}/{} (avg)", current("averageValue"), quantity(Some(avg)))
    } else {
        format!(
            "{}/{}",
            current("value"),
            quantity(at(spec, &["target", "value"]))
        )
    }
}

fn utilization(spec: &Value, status: Option<&Value>, name: &str) -> String {
    if let Some(avg) = at(spec, &["target", "averageValue"]) {
        let current = status
            .and_then(|s| at(s, &["current", "averageValue"]))
            .map_or_else(|| "<unknown>".to_string(), |q| quantity(Some(q)));
        return format!("{name}: {current}/{}", quantity(Some(avg)));
    }
    let current = status
        .and_then(|s| int_at(s, &["current", "averageUtilization"]))
        .map_or_else(|| "<unknown>".to_string(), |u| format!("{u}%"));
    let target = int_at(spec, &["target", "averageUtilization"])
        .map_or_else(|| "<auto>".to_string(), |u| format!("{u}%"));
    format!("{name}: {current}/{target}")
}

/// Upstream's formatHPAMetrics over autoscaling/v2 `spec.metrics` / `status.currentMetrics`.
fn v2_metrics(hpa: &Value) -> String {
    const MAX: usize = 2;
    let specs = arr_at(hpa, &["spec", "metrics"]);
    let statuses = arr_at(hpa, &["status", "currentMetrics"]);
    if specs.is_empty() {
        return "<none>".to_string();
    }
    let mut list: Vec<String> = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let status = |source: &str| {
            statuses
                .get(i)
                .and_then(|s| s.get(source))
                .filter(|s| !s.is_null())
        };
        let text = match str_at(spec, &["type"]) {
            "External" => metric_target(&spec["external"], status("external")),
            "Object" => metric_target(&spec["object"], status("object")),
            "Pods" => {
                let current = status("pods")
                    .and_then(|s| at(s, &["current", "averageValue"]))
                    .map_or_else(|| "<unknown>".to_string(), |q| quantity(Some(q)));
                format!(
                    "{current}/{}",
                    quantity(at(spec, &["pods", "target", "averageValue"]))
                )
            }
            "Resource" => {
                let r = &spec["resource"];
                utilization(r, status("resource"), str_at(r, &["name"]))
            }
            "ContainerResource" => {
                let r = &spec["containerResource"];
                utilization(r, status("containerResource"), str_at(r, &["name"]))
            }
            _ => "<unknown type>".to_string(),
        };
        list.push(text);
    }
    let count = list.len();
    if count > MAX {
        list.truncate(MAX);
        return format!("{} + {} more...", list.join(", "), count - MAX);
    }
    list.join(", ")
}

/// An autoscaling/v1 object has only a CPU utilization target.
fn v1_metrics(hpa: &Value) -> String {
    match int_at(hpa, &["spec", "targetCPUUtilizationPercentage"]) {
        Some(target) => {
            let current = int_at(hpa, &["status", "currentCPUUtilizationPercentage"])
                .map_or_else(|| "<unknown>".to_string(), |u| format!("{u}%"));
            format!("cpu: {current}/{target}%")
        }
        None => "<none>".to_string(),
    }
}

fn hpa(hpa: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let targets = if at(hpa, &["spec", "metrics"]).is_some()
        || str_at(hpa, &["apiVersion"]) != "autoscaling/v1"
    {
        v2_metrics(hpa)
    } else {
        v1_metrics(hpa)
    };
    let min = int_at(hpa, &["spec", "minReplicas"])
        .map_or_else(|| "<unset>".to_string(), |m| m.to_string());
    vec![
        name(hpa).into(),
        format!(
            "{}/{}",
            str_at(hpa, &["spec", "scaleTargetRef", "kind"]),
            str_at(hpa, &["spec", "scaleTargetRef", "name"])
        )
        .into(),
        targets.into(),
        min.into(),
        int0(hpa, &["spec", "maxReplicas"]).into(),
        int0(hpa, &["status", "currentReplicas"]).into(),
        since(created(hpa), now).into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2024-05-01T12:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .expect("time")
    }

    fn template() -> Value {
        json!({"spec": {"containers": [{"name": "web", "image": "nginx:1.27"},
                                       {"name": "log", "image": "busybox"}]}})
    }

    #[test]
    fn deployment_columns() {
        let cases = [
            (json!({}), json!({}), "0/1", 0, 0),
            (
                json!({"replicas": 3}),
                json!({"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}),
                "2/3",
                3,
                2,
            ),
            (json!({"replicas": 0}), json!({}), "0/0", 0, 0),
        ];
        for (spec, status, ready, updated, available) in cases {
            let mut spec = spec;
            spec["template"] = template();
            spec["selector"] = json!({"matchLabels": {"app": "web"}});
            let d = json!({"metadata": {"name": "web", "creationTimestamp": "2024-05-01T11:57:00Z"},
                           "spec": spec, "status": status});
            assert_eq!(
                deployment(&d, now()),
                vec![
                    json!("web"),
                    json!(ready),
                    json!(updated),
                    json!(available),
                    json!("3m"),
                    json!("web,log"),
                    json!("nginx:1.27,busybox"),
                    json!("app=web")
                ]
            );
        }
        let no_selector = json!({"metadata": {"name": "x"}});
        assert_eq!(deployment(&no_selector, now())[7], "");
    }

    #[test]
    fn replicaset_statefulset_daemonset() {
        let rs = json!({"metadata": {"name": "web-abc"},
            "spec": {"replicas": 2, "template": template(), "selector": {"matchLabels": {"app": "web"}}},
            "status": {"replicas": 2, "readyReplicas": 1}});
        let cells = replicaset(&rs, now());
        assert_eq!(&cells[1..4], &[json!(2), json!(2), json!(1)]);
        assert_eq!(cells[7], "app=web");
        let sts = json!({"metadata": {"name": "db"}, "spec": {"replicas": 3}, "status": {"readyReplicas": 3}});
        assert_eq!(statefulset(&sts, now())[1], "3/3");
        let ds = json!({"metadata": {"name": "agent"},
            "spec": {"template": {"spec": {"nodeSelector": {"kubernetes.io/os": "linux"}}}},
            "status": {"desiredNumberScheduled": 2, "currentNumberScheduled": 2, "numberReady": 1,
                       "updatedNumberScheduled": 2, "numberAvailable": 1}});
        let cells = daemonset(&ds, now());
        assert_eq!(
            &cells[1..7],
            &[
                json!(2),
                json!(2),
                json!(1),
                json!(2),
                json!(1),
                json!("kubernetes.io/os=linux")
            ]
        );
        assert_eq!(cells[10], "<none>");
    }

    #[test]
    fn jobs() {
        let running = json!({"metadata": {"name": "pi"}, "spec": {"completions": 3, "parallelism": 1},
            "status": {"succeeded": 1, "startTime": "2024-05-01T11:59:00Z"}});
        let cells = job(&running, now());
        assert_eq!(
            &cells[1..4],
            &[json!("Running"), json!("1/3"), json!("60s")]
        );
        let done = json!({"metadata": {"name": "pi"}, "spec": {"parallelism": 4},
            "status": {"succeeded": 1, "startTime": "2024-05-01T11:00:00Z",
                       "completionTime": "2024-05-01T11:00:12Z",
                       "conditions": [{"type": "Complete", "status": "True"}]}});
        assert_eq!(
            &job(&done, now())[1..4],
            &[json!("Complete"), json!("1/1 of 4"), json!("12s")]
        );
        let failed = json!({"status": {"conditions": [{"type": "Failed", "status": "True"}]}});
        assert_eq!(job_status(&failed), "Failed");
        let suspended =
            json!({"status": {"conditions": [{"type": "Suspended", "status": "True"}]}});
        assert_eq!(job_status(&suspended), "Suspended");
        assert_eq!(job(&json!({}), now())[2], "0/1");
        assert_eq!(job(&json!({}), now())[3], "");
    }

    #[test]
    fn cronjobs() {
        let cj = json!({"metadata": {"name": "hello"},
            "spec": {"schedule": "*/1 * * * *", "suspend": false,
                     "jobTemplate": {"spec": {"template": template()}}},
            "status": {"active": [{"name": "hello-1"}], "lastScheduleTime": "2024-05-01T11:59:00Z"}});
        assert_eq!(
            &cronjob(&cj, now())[1..8],
            &[
                json!("*/1 * * * *"),
                json!("<none>"),
                json!("False"),
                json!(1),
                json!("60s"),
                json!("<unknown>"),
                json!("web,log")
            ]
        );
    }

    #[test]
    fn hpa_targets() {
        let v2 = json!({"apiVersion": "autoscaling/v2", "metadata": {"name": "web"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "minReplicas": 1, "maxReplicas": 5,
                     "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 80}}}]},
            "status": {"currentReplicas": 2, "currentMetrics": [{"type": "Resource",
                "resource": {"name": "cpu", "current": {"averageUtilization": 35}}}]}});
        assert_eq!(
            &hpa(&v2, now())[1..6],
            &[
                json!("Deployment/web"),
                json!("cpu: 35%/80%"),
                json!("1"),
                json!(5),
                json!(2)
            ]
        );
        let unknown = json!({"spec": {"metrics": [
            {"type": "Resource", "resource": {"name": "memory", "target": {"averageValue": "100Mi"}}},
            {"type": "Pods", "pods": {"target": {"averageValue": "1k"}}},
            {"type": "External", "external": {"target": {"value": "10"}}}]}});
        assert_eq!(
            v2_metrics(&unknown),
            "memory: <unknown>/100Mi, <unknown>/1k + 1 more..."
        );
        let v1 = json!({"apiVersion": "autoscaling/v1",
            "spec": {"targetCPUUtilizationPercentage": 50}, "status": {"currentCPUUtilizationPercentage": 10}});
        assert_eq!(hpa(&v1, now())[2], "cpu: 10%/50%");
        assert_eq!(hpa(&json!({}), now())[2], "<none>");
        assert_eq!(hpa(&json!({}), now())[3], "<unset>");
    }

    #[test]
    fn controller_revisions() {
        let cr = json!({"metadata": {"name": "web-5d8", "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "controller": true}]},
            "revision": 2});
        assert_eq!(
            &controller_revision(&cr, now())[1..3],
            &[json!("statefulset.apps/web"), json!(2)]
        );
        assert_eq!(controller_revision(&json!({}), now())[1], "<none>");
    }
}
