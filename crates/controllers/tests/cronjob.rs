//! CronJob controller against an in-process API server. A fake clock drives the
//! schedules; no Job controller runs, so tests finish Jobs by writing their status.

mod support;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::Event;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use r8s_apiserver::testing::TestServer;
use r8s_controllers::Context;
use r8s_controllers::cronjob::{self, FakeClock};
use serde_json::{Value, json};
use std::sync::Arc;
use support::{client_for, namespace, wait_for};

const SCHEDULED: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";

struct Env {
    _server: TestServer,
    client: Client,
    clock: Arc<FakeClock>,
    ns: String,
    controller: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Drop for Env {
    fn drop(&mut self) {
        self.controller.abort();
    }
}

/// A server, a namespace and the controller on a fake clock reading "now".
async fn start(ns: &str) -> Env {
    let server = TestServer::start().await;
    let client = client_for(&server).await;
    namespace(&client, ns).await;
    let clock = FakeClock::new(Timestamp::now());
    let controller = tokio::spawn(cronjob::run_with(
        Context::new(client.clone()),
        clock.clone(),
    ));
    Env {
        _server: server,
        client,
        clock,
        ns: ns.to_string(),
        controller,
    }
}

fn cronjob_json(name: &str, schedule: &str, extra: Value) -> Value {
    let mut spec = json!({
        "schedule": schedule,
        "jobTemplate": {
            "metadata": {"labels": {"team": "batch"}, "annotations": {"note": "from-template"}},
            "spec": {"template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "main", "image": "busybox"}],
            }}},
        },
    });
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            s.insert(k.clone(), v.clone());
        }
    }
    json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": name}, "spec": spec})
}

/// The first whole minute after `t`.
fn next_minute(t: Timestamp) -> Timestamp {
    Timestamp::from_second((t.as_second().div_euclid(60) + 1) * 60).expect("ts")
}

fn minutes(t: Timestamp) -> i64 {
    t.as_second().div_euclid(60)
}

impl Env {
    fn cronjobs(&self) -> Api<CronJob> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    fn jobs(&self) -> Api<Job> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    async fn create(&self, body: Value) -> CronJob {
        let cj: CronJob = serde_json::from_value(body).expect("cronjob json");
        self.cronjobs()
            .create(&PostParams::default(), &cj)
            .await
            .expect("create cronjob")
    }

    /// Move the clock to `minute` (schedule time) plus a few seconds.
    fn at(&self, minute: Timestamp) {
        self.clock.set(minute + SignedDuration::from_secs(5));
    }

    async fn job_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .jobs()
            .list(&ListParams::default())
            .await
            .expect("list jobs")
            .items
            .into_iter()
            .filter(|j| j.metadata.deletion_timestamp.is_none())
            .filter_map(|j| j.metadata.name)
            .collect();
        names.sort();
        names
    }

    async fn wait_job(&self, name: &str) -> Job {
        let api = self.jobs();
        wait_for(&format!("job {name}"), 20, || async {
            api.get_opt(name).await.ok().flatten()
        })
        .await
    }

    async fn wait_gone(&self, name: &str) {
        let api = self.jobs();
        wait_for(&format!("job {name} deleted"), 20, || async {
            match api.get_opt(name).await.ok()? {
                None => Some(()),
                Some(j) => j.metadata.deletion_timestamp.is_some().then_some(()),
            }
        })
        .await;
    }

    async fn wait_event(&self, cj: &str, reason: &str) -> Event {
        support::wait_event(&self.client, &self.ns, cj, reason).await
    }

    /// Play the Job controller: mark a Job finished (`Complete` or `Failed`).
    async fn finish(&self, name: &str, outcome: &str, started: Timestamp) {
        let now = Timestamp::now().to_string();
        let start = started.to_string();
        let status = if outcome == "Complete" {
            json!({
                "startTime": start, "completionTime": now, "succeeded": 1,
                "conditions": [
                    {"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached", "lastTransitionTime": now},
                    {"type": "Complete", "status": "True", "reason": "CompletionsReached", "lastTransitionTime": now},
                ],
            })
        } else {
            json!({
                "startTime": start, "failed": 1,
                "conditions": [
                    {"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded", "lastTransitionTime": now},
                    {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "lastTransitionTime": now},
                ],
            })
        };
        self.jobs()
            .patch_status(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": status})),
            )
            .await
            .expect("finish job");
    }

    async fn active_names(&self, cj: &str) -> Vec<String> {
        let c = self.cronjobs().get(cj).await.expect("get cronjob");
        c.status
            .and_then(|s| s.active)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|r| r.name)
            .collect()
    }
}

fn created(cj: &CronJob) -> Timestamp {
    cj.metadata
        .creation_timestamp
        .as_ref()
        .expect("creationTimestamp")
        .0
}

#[tokio::test]
async fn creates_a_job_per_schedule_time() {
    let env = start("sched").await;
    let cj = env
        .create(cronjob_json("tick", "*/1 * * * *", json!({})))
        .await;
    let m1 = next_minute(created(&cj));
    env.at(m1);
    let name = format!("tick-{}", minutes(m1));
    let job = env.wait_job(&name).await;
    let ann = job.metadata.annotations.as_ref().expect("annotations");
    assert_eq!(
        ann.get(SCHEDULED).map(String::as_str),
        Some(m1.strftime("%Y-%m-%dT%H:%M:%SZ").to_string().as_str())
    );
    assert_eq!(ann.get("note").map(String::as_str), Some("from-template"));
    assert_eq!(
        job.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("team"))
            .map(String::as_str),
        Some("batch")
    );
    let owner = &job.metadata.owner_references.as_ref().expect("owner")[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.controller),
        ("CronJob", "tick", Some(true))
    );
    assert_eq!(owner.uid.as_str(), cj.metadata.uid.as_deref().unwrap_or(""));

    let api = env.cronjobs();
    let c = wait_for("active job and lastScheduleTime", 20, || async {
        let c = api.get("tick").await.ok()?;
        let st = c.status.as_ref()?;
        (st.active.as_ref().is_some_and(|a| a.len() == 1) && st.last_schedule_time.is_some())
            .then_some(c)
    })
    .await;
    assert_eq!(
        c.status
            .as_ref()
            .and_then(|s| s.last_schedule_time.as_ref())
            .map(|t| t.0),
        Some(m1)
    );
    env.wait_event("tick", "SuccessfulCreate").await;

    // Finishing the Job clears it from the active list and records the success.
    env.finish(&name, "Complete", m1).await;
    let c = wait_for("lastSuccessfulTime", 20, || async {
        let c = api.get("tick").await.ok()?;
        let st = c.status.as_ref()?;
        (st.active.is_none() && st.last_successful_time.is_some()).then_some(c)
    })
    .await;
    assert!(c.status.is_some());
    env.wait_event("tick", "SawCompletedJob").await;

    // The next minute brings the next Job.
    let m2 = m1 + SignedDuration::from_mins(1);
    env.at(m2);
    env.wait_job(&format!("tick-{}", minutes(m2))).await;
}

#[tokio::test]
async fn forbid_waits_for_the_running_job() {
    let env = start("forbid").await;
    let cj = env
        .create(cronjob_json(
            "solo",
            "*/1 * * * *",
            json!({"concurrencyPolicy": "Forbid"}),
        ))
        .await;
    let m1 = next_minute(created(&cj));
    env.at(m1);
    let first = format!("solo-{}", minutes(m1));
    env.wait_job(&first).await;
    let m2 = m1 + SignedDuration::from_mins(1);
    env.at(m2);
    env.wait_event("solo", "JobAlreadyActive").await;
    assert_eq!(env.job_names().await, vec![first.clone()]);
    // Once it finished, the missed run starts.
    env.finish(&first, "Complete", m1).await;
    let second = format!("solo-{}", minutes(m2));
    env.wait_job(&second).await;
    let api = env.cronjobs();
    wait_for("only the second job active", 20, || async {
        let c = api.get("solo").await.ok()?;
        let active: Vec<String> = c
            .status?
            .active?
            .into_iter()
            .filter_map(|r| r.name)
            .collect();
        (active == vec![second.clone()]).then_some(())
    })
    .await;
}

#[tokio::test]
async fn replace_deletes_the_running_job() {
    let env = start("replace").await;
    let cj = env
        .create(cronjob_json(
            "swap",
            "*/1 * * * *",
            json!({"concurrencyPolicy": "Replace"}),
        ))
        .await;
    let m1 = next_minute(created(&cj));
    env.at(m1);
    let first = format!("swap-{}", minutes(m1));
    env.wait_job(&first).await;
    wait_for("first job active", 20, || async {
        (env.active_names("swap").await == vec![first.clone()]).then_some(())
    })
    .await;
    let m2 = m1 + SignedDuration::from_mins(1);
    env.at(m2);
    let second = format!("swap-{}", minutes(m2));
    env.wait_job(&second).await;
    env.wait_gone(&first).await;
    wait_for("second job active", 20, || async {
        (env.active_names("swap").await == vec![second.clone()]).then_some(())
    })
    .await;
    env.wait_event("swap", "SuccessfulDelete").await;
}

#[tokio::test]
async fn history_limits_delete_old_jobs() {
    let env = start("history").await;
    let cj = env
        .create(cronjob_json(
            "hist",
            "*/1 * * * *",
            json!({"successfulJobsHistoryLimit": 1, "failedJobsHistoryLimit": 1}),
        ))
        .await;
    let m1 = next_minute(created(&cj));
    let mut names = Vec::new();
    for (i, outcome) in ["Complete", "Complete", "Failed", "Failed"]
        .iter()
        .enumerate()
    {
        let m = m1 + SignedDuration::from_mins(i as i64);
        env.at(m);
        let name = format!("hist-{}", minutes(m));
        env.wait_job(&name).await;
        env.finish(&name, outcome, m).await;
        names.push(name);
    }
    // The older Job of each outcome goes; the newest of each stays.
    env.wait_gone(&names[0]).await;
    env.wait_gone(&names[2]).await;
    let left = wait_for("two jobs left", 20, || async {
        let n = env.job_names().await;
        (n.len() == 2).then_some(n)
    })
    .await;
    assert_eq!(left, vec![names[1].clone(), names[3].clone()]);
}

#[tokio::test]
async fn too_many_missed_start_times() {
    let env = start("missed").await;
    let cj = env
        .create(cronjob_json("late", "*/1 * * * *", json!({})))
        .await;
    // 200 schedule times pass at once: only the most recent runs, with a warning.
    let m = next_minute(created(&cj)) + SignedDuration::from_mins(200);
    env.at(m);
    env.wait_job(&format!("late-{}", minutes(m))).await;
    let ev = env.wait_event("late", "TooManyMissedTimes").await;
    assert_eq!(ev.type_.as_deref(), Some("Warning"));
    assert_eq!(env.job_names().await.len(), 1);
}

#[tokio::test]
async fn schedules_in_the_cronjob_time_zone() {
    let env = start("tz").await;
    // Minute 30 in Kolkata (+05:30) is minute 0 in UTC.
    let cj = env
        .create(cronjob_json(
            "india",
            "30 * * * *",
            json!({"timeZone": "Asia/Kolkata"}),
        ))
        .await;
    let c = created(&cj);
    let hour = Timestamp::from_second((c.as_second().div_euclid(3600) + 1) * 3600).expect("ts");
    env.at(hour);
    let job = env.wait_job(&format!("india-{}", minutes(hour))).await;
    let ann = job
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(SCHEDULED))
        .cloned();
    let local = hour.to_zoned(jiff::tz::TimeZone::get("Asia/Kolkata").expect("tz"));
    assert_eq!(
        ann,
        Some(local.strftime("%Y-%m-%dT%H:%M:%S+05:30").to_string())
    );
}

#[tokio::test]
async fn suspended_cronjob_starts_nothing_until_resumed() {
    let env = start("suspend").await;
    let cj = env
        .create(cronjob_json(
            "pause",
            "*/1 * * * *",
            json!({"suspend": true}),
        ))
        .await;
    let m1 = next_minute(created(&cj));
    env.at(m1);
    // Resuming (a spec change) syncs at once and runs the missed time.
    let api = env.cronjobs();
    assert!(env.job_names().await.is_empty());
    let resume = json!({"spec": {"suspend": false}});
    api.patch("pause", &PatchParams::default(), &Patch::Merge(&resume))
        .await
        .expect("resume");
    env.wait_job(&format!("pause-{}", minutes(m1))).await;
}

#[tokio::test]
async fn real_clock_runs_a_due_schedule() {
    let server = TestServer::start().await;
    let client = client_for(&server).await;
    namespace(&client, "real").await;
    let controller = tokio::spawn(cronjob::run(Context::new(client.clone())));
    let cjs: Api<CronJob> = Api::namespaced(client.clone(), "real");
    let body: CronJob =
        serde_json::from_value(cronjob_json("soon", "@every 1s", json!({}))).expect("json");
    cjs.create(&PostParams::default(), &body)
        .await
        .expect("create");
    let jobs: Api<Job> = Api::namespaced(client.clone(), "real");
    let job = wait_for("a job from the real clock", 20, || async {
        jobs.list(&ListParams::default())
            .await
            .ok()?
            .items
            .into_iter()
            .next()
    })
    .await;
    assert!(
        job.metadata
            .name
            .as_deref()
            .is_some_and(|n| n.starts_with("soon-"))
    );
    controller.abort();
}
