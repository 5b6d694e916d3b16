//! Job and TTL-after-finished controllers against an in-process API server. Pods never
//! run here: a stand-in kubelet task sets their status (Running/Succeeded/Failed).

mod support;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use r8s_apiserver::testing::TestServer;
use r8s_controllers::{Context, job};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{namespace, wait_for, watch_pods};

const TRACKING: &str = "batch.kubernetes.io/job-tracking";

struct Env {
    _server: TestServer,
    client: Client,
    controller: tokio::task::JoinHandle<anyhow::Result<()>>,
    kubelet: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Env {
    fn drop(&mut self) {
        self.controller.abort();
        if let Some(k) = &self.kubelet {
            k.abort();
        }
    }
}

/// What the fake kubelet does with a new pod.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Outcome {
    Run,
    Succeed,
    Fail,
}

type Policy = Arc<dyn Fn(&Pod) -> Outcome + Send + Sync>;

async fn start(ns: &str) -> Env {
    let (server, client) = support::start().await;
    namespace(&client, ns).await;
    let config = job::Config {
        workers: 5,
        sync_batch_period: Duration::from_millis(50),
        pod_failure_backoff: Duration::from_millis(200),
        max_pod_failure_backoff: Duration::from_secs(2),
        api_backoff: (Duration::from_millis(50), Duration::from_secs(2)),
    };
    let controller = tokio::spawn(job::run_with(Context::new(client.clone()), config));
    Env {
        _server: server,
        client,
        controller,
        kubelet: None,
    }
}

impl Env {
    fn jobs(&self, ns: &str) -> Api<Job> {
        Api::namespaced(self.client.clone(), ns)
    }

    fn pods(&self, ns: &str) -> Api<Pod> {
        Api::namespaced(self.client.clone(), ns)
    }

    /// Start the fake kubelet for `ns`.
    fn kubelet(&mut self, ns: &str, policy: Policy) {
        let api = self.pods(ns);
        self.kubelet = Some(watch_pods(api.clone(), move |pod| {
            let (api, policy) = (api.clone(), policy.clone());
            async move {
                let phase = pod
                    .status
                    .as_ref()
                    .and_then(|s| s.phase.clone())
                    .unwrap_or_default();
                if pod.metadata.deletion_timestamp.is_some()
                    || matches!(phase.as_str(), "Succeeded" | "Failed")
                {
                    return;
                }
                let outcome = policy(&pod);
                if outcome == Outcome::Run && phase == "Running" {
                    return;
                }
                set_status(&api, &pod, outcome).await;
            }
        }));
    }

    async fn create_job(&self, ns: &str, spec: Value) -> Job {
        let job: Job = serde_json::from_value(spec).expect("job json");
        self.jobs(ns)
            .create(&PostParams::default(), &job)
            .await
            .expect("create job")
    }

    async fn job_pods(&self, ns: &str, name: &str) -> Vec<Pod> {
        let lp = ListParams::default().labels(&format!("batch.kubernetes.io/job-name={name}"));
        self.pods(ns).list(&lp).await.expect("list pods").items
    }

    /// Wait for an event with `reason` about `name` (events are written asynchronously).
    async fn wait_event(&self, ns: &str, name: &str, reason: &str) -> Event {
        support::wait_event(&self.client, ns, name, reason).await
    }

    /// Wait until the Job has condition `type_` True.
    async fn wait_condition(&self, ns: &str, name: &str, type_: &str, secs: u64) -> Job {
        let api = self.jobs(ns);
        wait_for(&format!("job {name} condition {type_}"), secs, || async {
            let j = api.get(name).await.ok()?;
            has_condition(&j, type_).then_some(j)
        })
        .await
    }
}

async fn set_status(api: &Api<Pod>, pod: &Pod, outcome: Outcome) {
    let now = jiff::Timestamp::now().to_string();
    let containers: Vec<String> = pod
        .spec
        .as_ref()
        .map(|s| s.containers.iter().map(|c| c.name.clone()).collect())
        .unwrap_or_default();
    let (phase, ready, state, code) = match outcome {
        Outcome::Run => ("Running", "True", json!({"running": {"startedAt": now}}), 0),
        Outcome::Succeed => (
            "Succeeded",
            "False",
            json!({"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": now, "finishedAt": now}}),
            0,
        ),
        Outcome::Fail => (
            "Failed",
            "False",
            json!({"terminated": {"exitCode": 1, "reason": "Error", "startedAt": now, "finishedAt": now}}),
            1,
        ),
    };
    let _ = code;
    let statuses: Vec<Value> = containers
        .iter()
        .map(|c| json!({"name": c, "image": "busybox", "imageID": "", "ready": ready == "True", "restartCount": 0, "state": state}))
        .collect();
    let patch = json!({"status": {
        "phase": phase,
        "conditions": [{"type": "Ready", "status": ready, "lastTransitionTime": now}],
        "containerStatuses": statuses,
    }});
    let name = pod.metadata.name.as_deref().unwrap_or("");
    let _ = api
        .patch_status(name, &PatchParams::default(), &Patch::Merge(patch))
        .await;
}

fn condition<'a>(j: &'a Job, type_: &str) -> Option<&'a k8s_openapi::api::batch::v1::JobCondition> {
    j.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

fn has_condition(j: &Job, type_: &str) -> bool {
    condition(j, type_).is_some_and(|c| c.status == "True")
}

fn job_spec(name: &str, spec: Value) -> Value {
    let mut s = json!({
        "template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "main", "image": "busybox"}],
        }},
    });
    if let (Some(base), Some(extra)) = (s.as_object_mut(), spec.as_object()) {
        for (k, v) in extra {
            base.insert(k.clone(), v.clone());
        }
    }
    json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name}, "spec": s})
}

fn status_i32(j: &Job, f: impl Fn(&k8s_openapi::api::batch::v1::JobStatus) -> Option<i32>) -> i32 {
    j.status.as_ref().and_then(f).unwrap_or(0)
}

#[tokio::test]
async fn completes_with_completions_and_parallelism() {
    let ns = "jobs";
    let mut env = start(ns).await;
    env.kubelet(ns, Arc::new(|_: &Pod| Outcome::Succeed));
    env.create_job(
        ns,
        job_spec("pi", json!({"completions": 3, "parallelism": 2})),
    )
    .await;
    let j = env.wait_condition(ns, "pi", "Complete", 30).await;
    let st = j.status.as_ref().expect("status");
    assert_eq!(st.succeeded, Some(3));
    assert_eq!(st.failed, None);
    assert_eq!(st.active, None);
    assert!(st.start_time.is_some() && st.completion_time.is_some());
    let complete = condition(&j, "Complete").expect("complete");
    assert_eq!(complete.reason.as_deref(), Some("CompletionsReached"));
    assert!(has_condition(&j, "SuccessCriteriaMet"));
    let u = st.uncounted_terminated_pods.as_ref();
    assert!(
        u.is_none_or(|u| u.succeeded.is_none() && u.failed.is_none()),
        "{u:?}"
    );

    let pods = env.job_pods(ns, "pi").await;
    assert_eq!(pods.len(), 3, "exactly `completions` pods");
    let uid = j.metadata.uid.clone().expect("uid");
    for p in &pods {
        let labels = p.metadata.labels.as_ref().expect("labels");
        assert_eq!(labels.get("batch.kubernetes.io/controller-uid"), Some(&uid));
        assert_eq!(
            labels
                .get("batch.kubernetes.io/job-name")
                .map(String::as_str),
            Some("pi")
        );
        let owner = &p.metadata.owner_references.as_ref().expect("owner")[0];
        assert_eq!((owner.kind.as_str(), owner.controller), ("Job", Some(true)));
        assert!(p.metadata.generate_name.as_deref() == Some("pi-"));
        // Counted pods lose the tracking finalizer.
        assert!(
            !p.metadata
                .finalizers
                .iter()
                .flatten()
                .any(|f| f == TRACKING)
        );
    }
    env.wait_event(ns, "pi", "SuccessfulCreate").await;
    let ev = env.wait_event(ns, "pi", "Completed").await;
    assert_eq!(ev.message.as_deref(), Some("Job completed"));
}

#[tokio::test]
async fn parallelism_bounds_active_pods() {
    let ns = "par";
    let mut env = start(ns).await;
    env.kubelet(ns, Arc::new(|_: &Pod| Outcome::Run));
    env.create_job(
        ns,
        job_spec("wide", json!({"completions": 5, "parallelism": 2})),
    )
    .await;
    let api = env.jobs(ns);
    let j = wait_for("2 active and ready pods", 20, || async {
        let j = api.get("wide").await.ok()?;
        (status_i32(&j, |s| s.active) == 2 && status_i32(&j, |s| s.ready) == 2).then_some(j)
    })
    .await;
    assert_eq!(env.job_pods(ns, "wide").await.len(), 2);
    assert_eq!(j.status.as_ref().and_then(|s| s.terminating), Some(0));
}

#[tokio::test]
async fn failing_job_hits_backoff_limit() {
    let ns = "fail";
    let mut env = start(ns).await;
    env.kubelet(ns, Arc::new(|_: &Pod| Outcome::Fail));
    env.create_job(ns, job_spec("bad", json!({"backoffLimit": 2})))
        .await;
    let j = env.wait_condition(ns, "bad", "Failed", 30).await;
    let failed = condition(&j, "Failed").expect("failed");
    assert_eq!(failed.reason.as_deref(), Some("BackoffLimitExceeded"));
    assert_eq!(
        failed.message.as_deref(),
        Some("Job has reached the specified backoff limit")
    );
    assert!(has_condition(&j, "FailureTarget"));
    assert_eq!(
        status_i32(&j, |s| s.failed),
        3,
        "backoffLimit 2 allows 3 attempts"
    );
    assert_eq!(status_i32(&j, |s| s.succeeded), 0);
    assert!(
        j.status
            .as_ref()
            .and_then(|s| s.completion_time.as_ref())
            .is_none()
    );
    assert_eq!(env.job_pods(ns, "bad").await.len(), 3);
    let ev = env.wait_event(ns, "bad", "BackoffLimitExceeded").await;
    assert_eq!(ev.type_.as_deref(), Some("Warning"));
}

#[tokio::test]
async fn active_deadline_fails_the_job() {
    let ns = "deadline";
    let mut env = start(ns).await;
    env.kubelet(ns, Arc::new(|_: &Pod| Outcome::Run));
    env.create_job(
        ns,
        job_spec(
            "slow",
            json!({"parallelism": 2, "completions": 4, "activeDeadlineSeconds": 1}),
        ),
    )
    .await;
    let j = env.wait_condition(ns, "slow", "Failed", 30).await;
    let failed = condition(&j, "Failed").expect("failed");
    assert_eq!(failed.reason.as_deref(), Some("DeadlineExceeded"));
    assert_eq!(
        failed.message.as_deref(),
        Some("Job was active longer than specified deadline")
    );
    // The running pods were deleted and counted as failed.
    assert_eq!(status_i32(&j, |s| s.active), 0);
    assert_eq!(status_i32(&j, |s| s.failed), 2);
    assert_eq!(j.status.as_ref().and_then(|s| s.terminating), Some(0));
    let pods = env.pods(ns);
    wait_for("pods of the failed job to be gone", 10, || async {
        let left = pods.list(&ListParams::default()).await.ok()?.items.len();
        (left == 0).then_some(())
    })
    .await;
}

#[tokio::test]
async fn indexed_job_runs_every_index() {
    let ns = "indexed";
    let mut env = start(ns).await;
    // Index 1 fails once, then succeeds: its replacement keeps the index.
    let failed_once = Arc::new(Mutex::new(false));
    env.kubelet(
        ns,
        Arc::new(move |p: &Pod| {
            let ix = p
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("batch.kubernetes.io/job-completion-index"))
                .cloned();
            let mut f = failed_once.lock().expect("lock");
            if ix.as_deref() == Some("1") && !*f {
                *f = true;
                return Outcome::Fail;
            }
            Outcome::Succeed
        }),
    );
    env.create_job(
        ns,
        job_spec(
            "idx",
            json!({"completions": 3, "parallelism": 3, "completionMode": "Indexed"}),
        ),
    )
    .await;
    let j = env.wait_condition(ns, "idx", "Complete", 30).await;
    let st = j.status.as_ref().expect("status");
    assert_eq!(st.completed_indexes.as_deref(), Some("0-2"));
    assert_eq!(st.succeeded, Some(3));
    assert_eq!(st.failed, Some(1));
    let pods = env.job_pods(ns, "idx").await;
    assert_eq!(pods.len(), 4);
    for p in &pods {
        let ix = p
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("batch.kubernetes.io/job-completion-index"))
            .cloned()
            .expect("index annotation");
        let label = p
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("batch.kubernetes.io/job-completion-index"));
        assert_eq!(label, Some(&ix));
        let name = p.metadata.name.as_deref().unwrap_or("");
        assert!(name.starts_with(&format!("idx-{ix}-")), "{name}");
        let spec = p.spec.as_ref().expect("spec");
        assert_eq!(spec.hostname.as_deref(), Some(format!("idx-{ix}").as_str()));
        let env_var = spec.containers[0].env.as_ref().expect("env");
        assert!(env_var.iter().any(|e| e.name == "JOB_COMPLETION_INDEX"));
    }
}

#[tokio::test]
async fn ttl_after_finished_deletes_the_job() {
    let ns = "ttl";
    let mut env = start(ns).await;
    env.kubelet(ns, Arc::new(|_: &Pod| Outcome::Succeed));
    env.create_job(ns, job_spec("short", json!({"ttlSecondsAfterFinished": 1})))
        .await;
    let done = env.wait_condition(ns, "short", "Complete", 30).await;
    let uid = done.metadata.uid.clone();
    let api = env.jobs(ns);
    // Foreground deletion: gone, or (without a garbage collector here) marked deleted.
    wait_for("the finished job to be deleted", 20, || async {
        match api.get_opt("short").await.ok()? {
            None => Some(()),
            Some(j) if j.metadata.uid != uid => Some(()),
            Some(j) => j.metadata.deletion_timestamp.is_some().then_some(()),
        }
    })
    .await;
}

#[tokio::test]
async fn suspend_and_resume() {
    let ns = "suspend";
    let mut env = start(ns).await;
    env.kubelet(ns, Arc::new(|_: &Pod| Outcome::Run));
    env.create_job(
        ns,
        job_spec(
            "later",
            json!({"suspend": true, "parallelism": 2, "completions": 2}),
        ),
    )
    .await;
    let j = env.wait_condition(ns, "later", "Suspended", 20).await;
    let c = condition(&j, "Suspended").expect("suspended");
    assert_eq!(c.reason.as_deref(), Some("JobSuspended"));
    assert!(
        j.status
            .as_ref()
            .and_then(|s| s.start_time.as_ref())
            .is_none()
    );
    assert!(env.job_pods(ns, "later").await.is_empty());

    let api = env.jobs(ns);
    let resume = json!({"spec": {"suspend": false}});
    api.patch("later", &PatchParams::default(), &Patch::Merge(&resume))
        .await
        .expect("resume");
    let j = wait_for("resumed job with 2 active pods", 20, || async {
        let j = api.get("later").await.ok()?;
        let resumed = condition(&j, "Suspended").is_some_and(|c| c.status == "False");
        (resumed && status_i32(&j, |s| s.active) == 2).then_some(j)
    })
    .await;
    assert_eq!(
        condition(&j, "Suspended").and_then(|c| c.reason.as_deref()),
        Some("JobResumed")
    );
    assert!(
        j.status
            .as_ref()
            .and_then(|s| s.start_time.as_ref())
            .is_some()
    );

    // Suspending a running Job deletes its pods without counting them as failures.
    let suspend = json!({"spec": {"suspend": true}});
    api.patch("later", &PatchParams::default(), &Patch::Merge(&suspend))
        .await
        .expect("suspend");
    let j = wait_for("suspended job without pods", 20, || async {
        let j = api.get("later").await.ok()?;
        (has_condition(&j, "Suspended") && status_i32(&j, |s| s.active) == 0).then_some(j)
    })
    .await;
    assert_eq!(status_i32(&j, |s| s.failed), 0);
    let pods = env.pods(ns);
    wait_for("pods of the suspended job to be gone", 10, || async {
        (pods
            .list(&ListParams::default())
            .await
            .ok()?
            .items
            .is_empty())
        .then_some(())
    })
    .await;
}

#[tokio::test]
async fn deleting_a_job_releases_pod_finalizers() {
    let ns = "orphans";
    let mut env = start(ns).await;
    env.kubelet(ns, Arc::new(|_: &Pod| Outcome::Run));
    env.create_job(
        ns,
        job_spec("gone", json!({"parallelism": 2, "completions": 2})),
    )
    .await;
    let pods = env.pods(ns);
    wait_for("2 pods with the tracking finalizer", 20, || async {
        let items = pods.list(&ListParams::default()).await.ok()?.items;
        let tracked = items
            .iter()
            .filter(|p| {
                p.metadata
                    .finalizers
                    .iter()
                    .flatten()
                    .any(|f| f == TRACKING)
            })
            .count();
        (tracked == 2).then_some(())
    })
    .await;
    // No garbage collector runs here: the pods stay, owned by a Job that is gone.
    let dp = DeleteParams::background();
    env.jobs(ns).delete("gone", &dp).await.expect("delete job");
    wait_for("finalizers removed from the orphaned pods", 20, || async {
        let items = pods.list(&ListParams::default()).await.ok()?.items;
        let tracked = items.iter().any(|p| {
            p.metadata
                .finalizers
                .iter()
                .flatten()
                .any(|f| f == TRACKING)
        });
        (!tracked).then_some(())
    })
    .await;
}
