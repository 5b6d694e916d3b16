//! The kubelet's core/v1 Events against a real containerd, worded as upstream's: a pod
//! that starts (Created, Started), one failing its liveness probe (Unhealthy, Killing),
//! one crash-looping (BackOff, repeats folded into `count`), one with a missing configMap
//! (Failed), one with a missing configMap volume (FailedMount), and deletion (Killing).
//! `kubectl describe pod` shows them. Bridge `r8st45`, pod subnet 10.199.45.0/24.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, ListParams};
use serde_json::json;
use std::time::{Duration, Instant};

const NET: u8 = 45;
const WAIT: Duration = Duration::from_secs(60);

/// Events about pod `name` (all of them, also those about its containers).
async fn events_of(env: &Env, name: &str) -> Vec<Event> {
    let api: Api<Event> = Api::namespaced(env.client.clone(), "default");
    let lp = ListParams::default().fields(&format!("involvedObject.name={name}"));
    api.list(&lp).await.map(|l| l.items).unwrap_or_default()
}

/// Waits for an event of pod `name` with `reason` whose message satisfies `pred`.
async fn wait_event(env: &Env, name: &str, reason: &str, pred: impl Fn(&Event) -> bool) -> Event {
    let deadline = Instant::now() + WAIT;
    loop {
        let evs = events_of(env, name).await;
        if let Some(e) = evs
            .iter()
            .find(|e| e.reason.as_deref() == Some(reason) && pred(e))
        {
            return e.clone();
        }
        if Instant::now() > deadline {
            let seen: Vec<_> = evs
                .iter()
                .map(|e| {
                    format!(
                        "{:?} {:?} {:?} x{:?}",
                        e.reason, e.message, e.involved_object.field_path, e.count
                    )
                })
                .collect();
            panic!("no {reason} event for {name}; have {seen:#?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn message(e: &Event) -> &str {
    e.message.as_deref().unwrap_or_default()
}

fn field_path(e: &Event) -> Option<&str> {
    e.involved_object.field_path.as_deref()
}

fn uid(p: &Pod) -> String {
    p.metadata.uid.clone().unwrap_or_default()
}

/// `kubectl describe pod NAME` against the test server (None when kubectl is missing).
fn describe(env: &Env, name: &str) -> Option<String> {
    let out = std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&env.server.kubeconfig)
        .args(["describe", "pod", name])
        .env_remove("KUBECONFIG")
        .env("HOME", env.dir.path())
        .output()
        .ok()?;
    assert!(
        out.status.success(),
        "kubectl describe: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8_lossy(&out.stdout).to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_events_are_worded_as_upstream() {
    run_test(NET, |env| async move {
        let ok = env
            .create_pod(json!({
                "metadata": {"name": "ok"},
                "spec": {"terminationGracePeriodSeconds": 1, "containers": [
                    {"name": "c", "image": "busybox:1.36", "command": ["sleep", "3600"]}]}
            }))
            .await;
        env.create_pod(json!({
            "metadata": {"name": "live"},
            "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
                "name": "c", "image": "busybox:1.36", "command": ["sleep", "3600"],
                "livenessProbe": {"exec": {"command": ["cat", "/tmp/healthy"]},
                    "periodSeconds": 1, "failureThreshold": 2}}]}
        }))
        .await;
        let crash = env
            .create_pod(json!({
                "metadata": {"name": "crash"},
                "spec": {"containers": [
                    {"name": "c", "image": "busybox:1.36", "command": ["sh", "-c", "exit 1"]}]}
            }))
            .await;
        env.create_pod(json!({
            "metadata": {"name": "nocm"},
            "spec": {"containers": [{"name": "c", "image": "busybox:1.36", "command": ["true"],
                "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k"}}}]}]}
        }))
        .await;
        env.create_pod(json!({
            "metadata": {"name": "novol"},
            "spec": {"containers": [{"name": "c", "image": "busybox:1.36", "command": ["true"],
                "volumeMounts": [{"name": "cfg", "mountPath": "/cfg"}]}],
                "volumes": [{"name": "cfg", "configMap": {"name": "missing"}}]}
        }))
        .await;

        // Created and Started, on the container's field path, from the kubelet of this node.
        let created = wait_event(&env, "ok", "Created", |_| true).await;
        assert_eq!(message(&created), "Created container: c");
        assert_eq!(created.type_.as_deref(), Some("Normal"));
        assert_eq!(field_path(&created), Some("spec.containers{c}"));
        assert_eq!(created.involved_object.uid.as_deref(), ok.metadata.uid.as_deref());
        assert_eq!(created.involved_object.kind.as_deref(), Some("Pod"));
        let source = created.source.clone().unwrap_or_default();
        assert_eq!(source.component.as_deref(), Some("kubelet"));
        assert_eq!(source.host.as_deref(), Some(env.node.as_str()));
        let started = wait_event(&env, "ok", "Started", |_| true).await;
        assert_eq!(message(&started), "Started container c");

        // Each failed liveness run is Unhealthy; past the threshold the container is killed.
        let unhealthy = wait_event(&env, "live", "Unhealthy", |_| true).await;
        assert_eq!(unhealthy.type_.as_deref(), Some("Warning"));
        assert_eq!(field_path(&unhealthy), Some("spec.containers{c}"));
        assert!(
            message(&unhealthy).starts_with("Liveness probe failed: cat: can't open '/tmp/healthy'"),
            "{unhealthy:?}"
        );
        let killing = wait_event(&env, "live", "Killing", |_| true).await;
        assert_eq!(
            message(&killing),
            "Container c failed liveness probe, will be restarted"
        );
        assert_eq!(killing.type_.as_deref(), Some("Normal"));

        // A crash loop: the restarts fold into one Started event, then back-off.
        let backoff = wait_event(&env, "crash", "BackOff", |_| true).await;
        assert_eq!(backoff.type_.as_deref(), Some("Warning"));
        assert_eq!(field_path(&backoff), Some("spec.containers{c}"));
        assert_eq!(
            message(&backoff),
            format!("Back-off restarting failed container c in pod crash_default({})", uid(&crash))
        );
        let started = wait_event(&env, "crash", "Started", |e| e.count >= Some(2)).await;
        assert_eq!(message(&started), "Started container c");
        let n_started = events_of(&env, "crash")
            .await
            .iter()
            .filter(|e| e.reason.as_deref() == Some("Started"))
            .count();
        assert_eq!(n_started, 1, "repeats must bump count, not add events");

        // A missing configMap for env: CreateContainerConfigError and a Failed event.
        let failed = wait_event(&env, "nocm", "Failed", |_| true).await;
        assert_eq!(message(&failed), "Error: configmap \"nope\" not found");
        assert_eq!(failed.type_.as_deref(), Some("Warning"));
        assert_eq!(field_path(&failed), Some("spec.containers{c}"));

        // A missing configMap volume: FailedMount on the pod, container ContainerCreating.
        let mount = wait_event(&env, "novol", "FailedMount", |_| true).await;
        assert_eq!(
            message(&mount),
            "MountVolume.SetUp failed for volume \"cfg\" : configmap \"missing\" not found"
        );
        assert_eq!(field_path(&mount), None);
        let novol = env.pods().get("novol").await.unwrap();
        let waiting = container_status(&novol, "c")
            .and_then(|s| s.state.clone())
            .and_then(|s| s.waiting)
            .and_then(|w| w.reason);
        assert_eq!(waiting.as_deref(), Some("ContainerCreating"));
        let pulled = events_of(&env, "novol")
            .await
            .into_iter()
            .any(|e| e.reason.as_deref() == Some("Pulled"));
        assert!(!pulled, "volumes are set up before the image is looked at");

        if let Some(text) = describe(&env, "live") {
            assert!(text.contains("Unhealthy"), "{text}");
            assert!(text.contains("Liveness probe failed:"), "{text}");
            assert!(
                text.contains("Container c failed liveness probe, will be restarted"),
                "{text}"
            );
            assert!(text.contains("Created container: c"), "{text}");
        } else {
            eprintln!("kubectl not found: describe not checked");
        }

        // Deleting a running pod stops its container with a Killing event.
        env.delete_pod("ok").await;
        env.wait_gone("ok", WAIT).await;
        let killing = wait_event(&env, "ok", "Killing", |_| true).await;
        assert_eq!(message(&killing), "Stopping container c");
        assert_eq!(field_path(&killing), Some("spec.containers{c}"));
    })
    .await;
}
