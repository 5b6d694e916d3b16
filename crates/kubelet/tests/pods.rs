//! Pod lifecycle against a real containerd: shared volumes and localhost between
//! containers, crash-loop back-off, probes, config sources, image policy errors, init
//! containers and terminal phases, and adoption of running pods after an agent restart.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

/// A shell command that runs `script`, then idles until SIGTERM.
fn idle_after(script: &str) -> serde_json::Value {
    json!([
        "sh",
        "-c",
        format!("trap 'exit 0' TERM; {script}; sleep 3600 & wait")
    ])
}

fn waiting_reason(p: &Pod, c: &str) -> String {
    container_status(p, c)
        .and_then(|s| s.state.as_ref())
        .and_then(|s| s.waiting.as_ref())
        .and_then(|w| w.reason.clone())
        .unwrap_or_default()
}

fn restarts(p: &Pod, c: &str) -> i32 {
    container_status(p, c).map(|s| s.restart_count).unwrap_or(0)
}

fn running(p: &Pod, c: &str) -> bool {
    container_status(p, c)
        .and_then(|s| s.state.as_ref())
        .is_some_and(|s| s.running.is_some())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_share_an_empty_dir_and_localhost() {
    run_test(2, |env| async move {
        env.create_pod(json!({
            "metadata": {"name": "duo"},
            "spec": {
                "terminationGracePeriodSeconds": 2,
                "volumes": [{"name": "html", "emptyDir": {}}, {"name": "cache", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}}],
                "containers": [
                    {"name": "web", "image": "nginx:1.14.2", "volumeMounts": [{"name": "html", "mountPath": "/usr/share/nginx/html"}]},
                    {"name": "writer", "image": "busybox:1.36",
                     "volumeMounts": [{"name": "html", "mountPath": "/html"}, {"name": "cache", "mountPath": "/cache"}],
                     "command": idle_after("echo hello-from-writer > /html/index.html; grep ' /cache ' /proc/mounts > /html/mounts.txt; \
                        until wget -q -O /html/fetched.txt http://localhost:80/index.html; do sleep 0.2; done")}
                ]
            }
        }))
        .await;
        let pod = env.wait_pod("duo", WAIT, "Ready", ready).await;
        let ip = pod_ip(&pod);
        let body = http_get(&ip, 80, "/index.html").await.expect("GET");
        assert!(body.contains("hello-from-writer"), "{body}");
        let mut fetched = String::new();
        for _ in 0..100 {
            fetched = http_get(&ip, 80, "/fetched.txt").await.unwrap_or_default();
            if fetched.contains(" 200 ") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(fetched.contains("hello-from-writer"), "writer could not reach web over localhost: {fetched}");
        let mounts = http_get(&ip, 80, "/mounts.txt").await.expect("GET");
        assert!(mounts.contains("tmpfs /cache"), "{mounts}");
        env.delete_pod("duo").await;
        env.wait_gone("duo", WAIT).await;
        assert_eq!(env.bridge_ports(), 0);
        let tmpfs_left = std::fs::read_to_string("/proc/self/mountinfo").unwrap().contains(&pod.metadata.uid.clone().unwrap());
        assert!(!tmpfs_left, "pod mounts left behind");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashing_container_backs_off() {
    run_test(3, |env| async move {
        env.create_pod(json!({
            "metadata": {"name": "crash"},
            "spec": {"containers": [{"name": "c", "image": "busybox:1.36", "command": ["sh", "-c", "echo bye; exit 3"]}]}
        }))
        .await;
        let pod = env
            .wait_pod("crash", WAIT, "in CrashLoopBackOff", |p| waiting_reason(p, "c") == "CrashLoopBackOff")
            .await;
        assert_eq!(phase(&pod), "Running");
        assert!(restarts(&pod, "c") >= 1);
        let st = container_status(&pod, "c").unwrap();
        let last = st.last_state.as_ref().and_then(|l| l.terminated.as_ref()).expect("lastState.terminated");
        assert_eq!(last.exit_code, 3);
        assert_eq!(last.reason.as_deref(), Some("Error"));
        assert!(!ready(&pod));
        let msg = st.state.as_ref().and_then(|s| s.waiting.as_ref()).and_then(|w| w.message.clone()).unwrap_or_default();
        assert!(msg.starts_with("back-off 10s restarting failed container=c pod=crash_default("), "{msg}");
        // After the 10 s back-off it runs (and crashes) again.
        let before = restarts(&pod, "c");
        env.wait_pod("crash", Duration::from_secs(25), "restarted again", |p| restarts(p, "c") > before).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn liveness_restarts_and_readiness_gates_ready() {
    run_test(4, |env| async move {
        env.create_pod(json!({
            "metadata": {"name": "live"},
            "spec": {"terminationGracePeriodSeconds": 1, "containers": [{"name": "c", "image": "busybox:1.36",
                "command": idle_after("touch /tmp/healthy; sleep 2; rm /tmp/healthy"),
                "livenessProbe": {"exec": {"command": ["cat", "/tmp/healthy"]}, "periodSeconds": 1, "failureThreshold": 1}}]}
        }))
        .await;
        env.create_pod(json!({
            "metadata": {"name": "ready"},
            "spec": {"terminationGracePeriodSeconds": 1,
                "readinessGates": [{"conditionType": "example.com/gate"}],
                "containers": [{"name": "web", "image": "nginx:1.14.2",
                "readinessProbe": {"httpGet": {"path": "/ready.html", "port": 80}, "periodSeconds": 1, "failureThreshold": 1}}]}
        }))
        .await;
        // Readiness: running but not ready until the probe passes.
        let pod = env.wait_pod("ready", WAIT, "running", |p| running(p, "web")).await;
        assert!(!ready(&pod));
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let pod = env.pods().get("ready").await.unwrap();
        assert!(!container_status(&pod, "web").unwrap().ready);
        let (code, out) = env.exec(&pod, "web", &["sh", "-c", "echo ok > /usr/share/nginx/html/ready.html"]).await;
        assert_eq!(code, 0, "{out}");
        let pod = env
            .wait_pod("ready", WAIT, "container ready", |p| container_status(p, "web").is_some_and(|c| c.ready))
            .await;
        // The readiness gate still holds the pod back.
        let cond = |p: &Pod, t: &str| {
            p.status.as_ref().and_then(|s| s.conditions.clone()).unwrap_or_default().into_iter().find(|c| c.type_ == t)
        };
        let r = cond(&pod, "Ready").expect("Ready condition");
        assert_eq!(r.status, "False");
        assert_eq!(r.reason.as_deref(), Some("ReadinessGatesNotReady"));
        let patch = json!({"status": {"conditions": [{"type": "example.com/gate", "status": "True"}]}});
        env.pods().patch_status("ready", &PatchParams::default(), &Patch::Strategic(&patch)).await.expect("gate");
        let pod = env.wait_pod("ready", WAIT, "Ready", ready).await;
        assert!(cond(&pod, "example.com/gate").is_some_and(|c| c.status == "True"));
        // Failing readiness takes it out again.
        env.exec(&pod, "web", &["rm", "/usr/share/nginx/html/ready.html"]).await;
        env.wait_pod("ready", WAIT, "not ready", |p| !ready(p)).await;

        // Liveness: the failing probe restarts the container.
        let pod = env.wait_pod("live", WAIT, "restarted by liveness", |p| restarts(p, "c") >= 1 && running(p, "c")).await;
        let last = container_status(&pod, "c").unwrap().last_state.clone().and_then(|l| l.terminated);
        assert!(last.is_some(), "lastState should be terminated");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_sources_and_container_errors() {
    run_test(5, |env| async move {
        let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), "default");
        let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "app-config"},
            "data": {"greeting": "hello", "config.yaml": "a: 1\n"}})).unwrap();
        cms.create(&PostParams::default(), &cm).await.unwrap();
        let secrets: Api<Secret> = Api::namespaced(env.client.clone(), "default");
        let s: Secret = serde_json::from_value(json!({"metadata": {"name": "app-secret"},
            "data": {"password": "czNjcjN0"}})).unwrap();
        secrets.create(&PostParams::default(), &s).await.unwrap();
        env.create_pod(json!({
            "metadata": {"name": "cfg", "labels": {"app": "demo"}},
            "spec": {"terminationGracePeriodSeconds": 1,
                "volumes": [
                    {"name": "config", "configMap": {"name": "app-config"}},
                    {"name": "secret", "secret": {"secretName": "app-secret", "defaultMode": 0o400}},
                    {"name": "podinfo", "downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
                    {"name": "proj", "projected": {"sources": [{"configMap": {"name": "app-config", "items": [{"key": "greeting", "path": "g.txt"}]}}]}}
                ],
                "containers": [{"name": "c", "image": "busybox:1.36", "command": idle_after("true"),
                    "resources": {"limits": {"memory": "64Mi", "cpu": "500m"}},
                    "env": [
                        {"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "app-config", "key": "greeting"}}},
                        {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "app-secret", "key": "password"}}},
                        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                        {"name": "MEM_MB", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
                        {"name": "MSG", "value": "$(GREETING) world"}
                    ],
                    "envFrom": [{"prefix": "CFG_", "configMapRef": {"name": "app-config"}}],
                    "volumeMounts": [
                        {"name": "config", "mountPath": "/etc/config"},
                        {"name": "secret", "mountPath": "/etc/secret"},
                        {"name": "podinfo", "mountPath": "/etc/podinfo"},
                        {"name": "proj", "mountPath": "/etc/proj"}
                    ]}]}
        }))
        .await;
        env.create_pod(json!({
            "metadata": {"name": "badref"},
            "spec": {"containers": [{"name": "c", "image": "busybox:1.36", "command": ["true"],
                "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k"}}}]}]}
        }))
        .await;
        env.create_pod(json!({
            "metadata": {"name": "noimage"},
            "spec": {"containers": [{"name": "c", "image": "example.invalid/missing:1.0", "imagePullPolicy": "Never"}]}
        }))
        .await;
        // The hog waits a second first: containerd watches a task's cgroup for OOM only
        // once the task started, and an OOM kill in the very first moments goes unnoticed
        // (reported as Error/137, with upstream's kubelet too). This flaked CI.
        env.create_pod(json!({
            "metadata": {"name": "oom"},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox:1.36",
                "resources": {"limits": {"memory": "16Mi"}}, "command": ["sh", "-c", "sleep 1; head -c 200m /dev/zero | tail"]}]}
        }))
        .await;

        let pod = env.wait_pod("cfg", WAIT, "Ready", ready).await;
        let (_, envs) = env.exec(&pod, "c", &["env"]).await;
        for want in ["GREETING=hello", "PASSWORD=s3cr3t", "POD_NAME=cfg", "MEM_MB=64", "MSG=hello world", "CFG_greeting=hello"] {
            assert!(envs.lines().any(|l| l == want), "missing {want} in\n{envs}");
        }
        assert!(envs.contains(&format!("POD_IP={}", pod_ip(&pod))), "{envs}");
        assert_eq!(env.exec(&pod, "c", &["cat", "/etc/config/config.yaml"]).await.1, "a: 1\n");
        assert_eq!(env.exec(&pod, "c", &["cat", "/etc/secret/password"]).await.1, "s3cr3t");
        assert_eq!(env.exec(&pod, "c", &["cat", "/etc/podinfo/labels"]).await.1, "app=\"demo\"");
        assert_eq!(env.exec(&pod, "c", &["cat", "/etc/proj/g.txt"]).await.1, "hello");
        let (_, mode) = env.exec(&pod, "c", &["stat", "-L", "-c", "%a", "/etc/secret/password"]).await;
        assert_eq!(mode.trim(), "400");
        // Limits reach the container's cgroup (Guaranteed: requests default to limits).
        let uid = pod.metadata.uid.clone().unwrap();
        let id = container_status(&pod, "c").unwrap().container_id.clone().unwrap();
        let id = id.trim_start_matches("containerd://");
        let cg = format!("/sys/fs/cgroup/memory/kubepods/pod{uid}/{id}/memory.limit_in_bytes");
        assert_eq!(std::fs::read_to_string(&cg).expect(&cg).trim(), (64 << 20).to_string());
        let quota = format!("/sys/fs/cgroup/cpu/kubepods/pod{uid}/{id}/cpu.cfs_quota_us");
        assert_eq!(std::fs::read_to_string(&quota).expect(&quota).trim(), "50000");

        let oom = env.wait_pod("oom", WAIT, "Failed", |p| phase(p) == "Failed").await;
        let t = container_status(&oom, "c").and_then(|s| s.state.clone()).and_then(|s| s.terminated).unwrap();
        assert_eq!(t.reason.as_deref(), Some("OOMKilled"), "{t:?}");
        assert_eq!(t.exit_code, 137);

        let bad = env
            .wait_pod("badref", WAIT, "CreateContainerConfigError", |p| waiting_reason(p, "c") == "CreateContainerConfigError")
            .await;
        let msg = container_status(&bad, "c").and_then(|s| s.state.clone()).and_then(|s| s.waiting).and_then(|w| w.message);
        assert_eq!(msg.as_deref(), Some("configmap \"nope\" not found"));
        assert_eq!(phase(&bad), "Pending");

        let ni = env.wait_pod("noimage", WAIT, "ErrImageNeverPull", |p| waiting_reason(p, "c") == "ErrImageNeverPull").await;
        let msg = container_status(&ni, "c").and_then(|s| s.state.clone()).and_then(|s| s.waiting).and_then(|w| w.message);
        assert_eq!(
            msg.as_deref(),
            Some("Container image \"example.invalid/missing:1.0\" is not present with pull policy of Never")
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_containers_and_terminal_phases() {
    run_test(6, |env| async move {
        env.create_pod(json!({
            "metadata": {"name": "job"},
            "spec": {"restartPolicy": "Never",
                "volumes": [{"name": "work", "emptyDir": {}}],
                "initContainers": [
                    {"name": "first", "image": "busybox:1.36", "command": ["sh", "-c", "echo 1 > /work/order"], "volumeMounts": [{"name": "work", "mountPath": "/work"}]},
                    {"name": "second", "image": "busybox:1.36", "command": ["sh", "-c", "echo 2 >> /work/order"], "volumeMounts": [{"name": "work", "mountPath": "/work"}]}
                ],
                "containers": [{"name": "main", "image": "busybox:1.36", "volumeMounts": [{"name": "work", "mountPath": "/work"}],
                    "command": ["sh", "-c", "test \"$(cat /work/order | tr '\\n' ,)\" = 1,2, && echo done > /dev/termination-log"]}]}
        }))
        .await;
        env.create_pod(json!({
            "metadata": {"name": "fails"},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "busybox:1.36", "command": ["sh", "-c", "exit 7"]}]}
        }))
        .await;
        env.create_pod(json!({
            "metadata": {"name": "retry"},
            "spec": {"restartPolicy": "OnFailure", "volumes": [{"name": "w", "emptyDir": {}}],
                "containers": [{"name": "main", "image": "busybox:1.36", "volumeMounts": [{"name": "w", "mountPath": "/w"}],
                "command": ["sh", "-c", "if [ -e /w/once ]; then exit 0; fi; touch /w/once; exit 1"]}]}
        }))
        .await;
        let pod = env.wait_pod("job", WAIT, "Succeeded", |p| phase(p) == "Succeeded").await;
        let st = pod.status.clone().unwrap();
        let inits = st.init_container_statuses.clone().unwrap();
        assert_eq!(inits.len(), 2);
        for i in &inits {
            let t = i.state.as_ref().and_then(|s| s.terminated.as_ref()).expect("init terminated");
            assert_eq!((t.exit_code, t.reason.as_deref()), (0, Some("Completed")));
            assert!(i.ready, "completed init containers are ready");
        }
        let main = container_status(&pod, "main").unwrap();
        let t = main.state.as_ref().and_then(|s| s.terminated.as_ref()).expect("main terminated");
        assert_eq!(t.exit_code, 0);
        assert_eq!(t.message.as_deref(), Some("done\n"));
        let initialized = st.conditions.unwrap().into_iter().find(|c| c.type_ == "Initialized").unwrap();
        assert_eq!(initialized.status, "True");

        let pod = env.wait_pod("fails", WAIT, "Failed", |p| phase(p) == "Failed").await;
        let t = container_status(&pod, "main").and_then(|s| s.state.clone()).and_then(|s| s.terminated).unwrap();
        assert_eq!((t.exit_code, t.reason.as_deref()), (7, Some("Error")));

        let pod = env.wait_pod("retry", WAIT, "Succeeded", |p| phase(p) == "Succeeded").await;
        assert_eq!(restarts(&pod, "main"), 1);
        // Finished pods release their sandbox (and its network).
        tokio::time::sleep(Duration::from_millis(500)).await;
        let cri = env.cri();
        let ready_sandboxes = cri.list_pod_sandbox(None).await.unwrap().into_iter().filter(|s| s.state == 0).count();
        assert_eq!(ready_sandboxes, 0);
        // Deleting a finished pod is immediate and cleans up.
        env.pods().delete("job", &DeleteParams::default()).await.unwrap();
        env.wait_gone("job", WAIT).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_adopts_running_pods_and_removes_orphans() {
    run_test(7, |env| async move {
        env.create_pod(json!({"metadata": {"name": "keep"},
            "spec": {"containers": [{"name": "web", "image": "nginx:1.14.2"}]}}))
            .await;
        env.create_pod(json!({"metadata": {"name": "gone"},
            "spec": {"containers": [{"name": "web", "image": "nginx:1.14.2"}]}}))
            .await;
        let keep = env.wait_pod("keep", WAIT, "Ready", ready).await;
        env.wait_pod("gone", WAIT, "Ready", ready).await;
        let id = container_status(&keep, "web").unwrap().container_id.clone();
        let pods = env.pods();
        env.restart_kubelet(async {
            // Force-deleted while the agent is down: its sandbox is an orphan.
            let dp = DeleteParams {
                grace_period_seconds: Some(0),
                ..Default::default()
            };
            pods.delete("gone", &dp).await.unwrap();
            env.wait_gone("gone", WAIT).await;
        })
        .await;
        let cri = env.cri();
        let mut left = usize::MAX;
        for _ in 0..100 {
            left = cri.list_pod_sandbox(None).await.unwrap().len();
            if left == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(left, 1, "orphan sandbox not removed");
        let keep = env.wait_pod("keep", WAIT, "Ready", ready).await;
        let st = container_status(&keep, "web").unwrap();
        assert_eq!(st.container_id, id, "the running container was replaced");
        assert_eq!(st.restart_count, 0);
        let body = http_get(&pod_ip(&keep), 80, "/").await.expect("GET");
        assert!(body.contains(" 200 "), "{body}");
        assert_eq!(env.bridge_ports(), 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_hooks_and_host_path() {
    run_test(9, |env| async move {
        let host_dir = env.dir.path().join("hooks");
        env.create_pod(json!({
            "metadata": {"name": "hooks"},
            "spec": {"terminationGracePeriodSeconds": 5,
                "volumes": [{"name": "h", "hostPath": {"path": host_dir.display().to_string(), "type": "DirectoryOrCreate"}}],
                "containers": [{"name": "c", "image": "busybox:1.36", "command": idle_after("true"),
                    "volumeMounts": [{"name": "h", "mountPath": "/hooks"}],
                    "lifecycle": {
                        "postStart": {"exec": {"command": ["sh", "-c", "echo started > /hooks/poststart"]}},
                        "preStop": {"exec": {"command": ["sh", "-c", "echo stopping > /hooks/prestop"]}}
                    }}]}
        }))
        .await;
        env.wait_pod("hooks", WAIT, "Ready", ready).await;
        assert_eq!(std::fs::read_to_string(host_dir.join("poststart")).unwrap(), "started\n");
        assert!(!host_dir.join("prestop").exists());
        env.delete_pod("hooks").await;
        env.wait_gone("hooks", WAIT).await;
        assert_eq!(std::fs::read_to_string(host_dir.join("prestop")).unwrap(), "stopping\n");
    })
    .await;
}
