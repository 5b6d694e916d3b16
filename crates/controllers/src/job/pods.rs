//! Pod predicates and construction for the Job controller: phases, readiness, the
//! tracking finalizer, finish times, deletion order and pods built from the template.

use super::indexed::{self, COMPLETION_INDEX, COMPLETION_INDEX_ENV};
use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use std::cmp::Ordering;

/// Finalizer the Job controller puts on its pods so a finished pod cannot disappear
/// before it was counted in the Job status.
pub const TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";

pub use crate::util::podutil::{controller_of, phase};

pub fn is_succeeded(pod: &Pod) -> bool {
    phase(pod) == "Succeeded"
}

fn is_terminal(pod: &Pod) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed")
}

fn is_deleting(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// Running or pending, not being deleted (upstream `FilterActivePods`).
pub fn is_active(pod: &Pod) -> bool {
    !is_terminal(pod) && !is_deleting(pod)
}

/// Being deleted but not yet terminal (upstream `CountTerminatingPods`).
pub fn is_terminating(pod: &Pod) -> bool {
    is_deleting(pod) && !is_terminal(pod)
}

/// The Ready condition is True.
pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

pub fn has_tracking_finalizer(pod: &Pod) -> bool {
    pod.metadata
        .finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|f| f == TRACKING_FINALIZER))
}

/// Replace only pods that reached phase Failed (not merely terminating ones).
pub fn only_replace_failed(job: &Job) -> bool {
    let spec = job.spec.as_ref();
    spec.and_then(|s| s.pod_replacement_policy.as_deref()) == Some("Failed")
        || spec.is_some_and(|s| s.pod_failure_policy.is_some())
}

/// Whether the pod counts as failed: phase Failed, or deleted before succeeding (orphans
/// that never get the chance to reach a terminal phase), unless only failed pods are
/// replaced.
pub fn is_failed(pod: &Pod, job: &Job) -> bool {
    if phase(pod) == "Failed" {
        return true;
    }
    if only_replace_failed(job) {
        return false;
    }
    is_deleting(pod) && phase(pod) != "Succeeded"
}

/// When the pod finished: latest container termination, else the Ready=False transition,
/// else the deletion time minus the grace period, else its creation time.
pub fn finished_time(pod: &Pod) -> Timestamp {
    let status = pod.status.as_ref();
    let statuses = status
        .and_then(|s| s.container_statuses.as_deref())
        .unwrap_or(&[]);
    let mut latest: Option<Timestamp> = None;
    let mut all_terminated = !statuses.is_empty();
    for cs in statuses {
        match cs
            .state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .and_then(|t| t.finished_at.as_ref())
        {
            Some(t) => latest = Some(latest.map_or(t.0, |l| l.max(t.0))),
            None => all_terminated = false,
        }
    }
    if all_terminated && let Some(t) = latest {
        return t;
    }
    if let Some(t) = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.type_ == "Ready" && c.status == "False")
        })
        .and_then(|c| c.last_transition_time.as_ref())
    {
        return t.0;
    }
    if let Some(d) = &pod.metadata.deletion_timestamp {
        let grace = pod.metadata.deletion_grace_period_seconds.unwrap_or(0);
        return d
            .0
            .checked_sub(jiff::SignedDuration::from_secs(grace))
            .unwrap_or(d.0);
    }
    pod.metadata
        .creation_timestamp
        .as_ref()
        .map_or(Timestamp::UNIX_EPOCH, |t| t.0)
}

fn phase_rank(pod: &Pod) -> u8 {
    match phase(pod) {
        "Pending" => 0,
        "Unknown" => 1,
        "Running" => 2,
        _ => 3,
    }
}

fn restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map_or(0, |cs| {
            cs.iter().map(|c| c.restart_count).max().unwrap_or(0)
        })
}

fn deletion_cost(pod: &Pod) -> i64 {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("controller.kubernetes.io/pod-deletion-cost"))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Deletion preference (upstream `controller.ActivePods`): unscheduled before scheduled,
/// pending before running, not ready before ready, lower deletion cost first, more
/// restarts first, newer before older.
pub fn deletion_order(a: &Pod, b: &Pod) -> Ordering {
    let scheduled = |p: &Pod| {
        p.spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| !n.is_empty())
    };
    scheduled(a)
        .cmp(&scheduled(b))
        .then_with(|| phase_rank(a).cmp(&phase_rank(b)))
        .then_with(|| is_ready(a).cmp(&is_ready(b)))
        .then_with(|| deletion_cost(a).cmp(&deletion_cost(b)))
        .then_with(|| restarts(b).cmp(&restarts(a)))
        .then_with(|| {
            // No creation time counts as newest.
            let created = |p: &Pod| {
                p.metadata
                    .creation_timestamp
                    .as_ref()
                    .map_or(Timestamp::MAX, |t| t.0)
            };
            created(b).cmp(&created(a))
        })
}

/// The controller reference a Job puts on its pods.
pub fn job_owner_ref(job: &Job) -> OwnerReference {
    OwnerReference {
        api_version: "batch/v1".into(),
        kind: "Job".into(),
        name: job.metadata.name.clone().unwrap_or_default(),
        uid: job.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// A pod for `job` from its template, with the tracking finalizer and controller
/// reference; for indexed jobs also the completion index annotation/label, hostname and
/// the `JOB_COMPLETION_INDEX` variable.
pub fn pod_from_template(job: &Job, index: Option<usize>) -> Pod {
    let name = job.metadata.name.clone().unwrap_or_default();
    let template = job
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let tmeta = template.metadata.unwrap_or_default();
    let mut spec: PodSpec = template.spec.unwrap_or_default();
    let mut labels = tmeta.labels.unwrap_or_default();
    let mut annotations = tmeta.annotations.unwrap_or_default();
    let mut finalizers = tmeta.finalizers.unwrap_or_default();
    if !finalizers.iter().any(|f| f == TRACKING_FINALIZER) {
        finalizers.push(TRACKING_FINALIZER.to_string());
    }
    let generate_name = match index {
        Some(ix) => {
            annotations.insert(COMPLETION_INDEX.into(), ix.to_string());
            labels.insert(COMPLETION_INDEX.into(), ix.to_string());
            spec.hostname = Some(format!("{name}-{ix}"));
            for c in spec
                .init_containers
                .iter_mut()
                .flatten()
                .chain(spec.containers.iter_mut())
            {
                let env = c.env.get_or_insert_with(Vec::new);
                if !env.iter().any(|e| e.name == COMPLETION_INDEX_ENV) {
                    env.push(EnvVar {
                        name: COMPLETION_INDEX_ENV.into(),
                        value: None,
                        value_from: Some(EnvVarSource {
                            field_ref: Some(ObjectFieldSelector {
                                api_version: None,
                                field_path: format!("metadata.labels['{COMPLETION_INDEX}']"),
                            }),
                            ..Default::default()
                        }),
                    });
                }
            }
            indexed::generate_name_with_index(&name, ix)
        }
        None => format!("{name}-"),
    };
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(generate_name),
            namespace: job.metadata.namespace.clone(),
            labels: (!labels.is_empty()).then_some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            finalizers: Some(finalizers),
            owner_references: Some(vec![job_owner_ref(job)]),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::JobSpec;
    use k8s_openapi::api::core::v1::{Container, PodStatus};

    fn job() -> Job {
        Job {
            metadata: ObjectMeta {
                name: Some("pi".into()),
                namespace: Some("default".into()),
                uid: Some("u1".into()),
                ..Default::default()
            },
            spec: Some(JobSpec {
                template: k8s_openapi::api::core::v1::PodTemplateSpec {
                    metadata: None,
                    spec: Some(PodSpec {
                        containers: vec![Container {
                            name: "c".into(),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }),
                },
                ..Default::default()
            }),
            status: None,
        }
    }

    #[test]
    fn indexed_pod_has_index_everywhere() {
        let p = pod_from_template(&job(), Some(2));
        assert_eq!(p.metadata.generate_name.as_deref(), Some("pi-2-"));
        assert_eq!(completion_index_of(&p), Some(2));
        let spec = p.spec.as_ref().expect("spec");
        assert_eq!(spec.hostname.as_deref(), Some("pi-2"));
        let env = spec.containers[0].env.as_ref().expect("env");
        assert_eq!(env[0].name, COMPLETION_INDEX_ENV);
        assert!(has_tracking_finalizer(&p));
        assert_eq!(
            controller_of(&p.metadata).map(|r| r.uid.as_str()),
            Some("u1")
        );
    }

    fn completion_index_of(p: &Pod) -> Option<usize> {
        indexed::completion_index(p)
    }

    #[test]
    fn failed_and_active() {
        let j = job();
        let mut p = pod_from_template(&j, None);
        assert!(is_active(&p) && !is_failed(&p, &j));
        p.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            Timestamp::now(),
        ));
        assert!(is_terminating(&p) && is_failed(&p, &j));
        p.status = Some(PodStatus {
            phase: Some("Succeeded".into()),
            ..Default::default()
        });
        assert!(!is_failed(&p, &j) && !is_terminating(&p));
    }
}
