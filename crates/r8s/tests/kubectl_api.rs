//! e2e: the real kubectl against a fresh `r8s server` (control plane only).

mod common;
use common::Server;

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn system_namespaces_and_kubernetes_service_exist() {
    let s = Server::start();
    let out = s.ok(&["get", "namespaces"]);
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(out.contains(ns), "{ns} missing in:\n{out}");
    }
    assert!(out.starts_with("NAME"), "table header expected:\n{out}");
    let svc = s.ok(&[
        "get",
        "svc",
        "kubernetes",
        "-o",
        "jsonpath={.spec.clusterIP}",
    ]);
    assert_eq!(svc, "10.43.0.1");
}

#[test]
fn apply_seed_pod_and_deployment_then_get_describe_delete() {
    let s = Server::start();
    let out = s.ok(&["apply", "-f", &fixture("nginx-pod.yaml")]);
    assert_eq!(out.trim(), "pod/nginx-pod created");
    let out = s.ok(&["apply", "-f", &fixture("nginx-deployment.yaml")]);
    assert_eq!(out.trim(), "deployment.apps/nginx-deployment created");
    // Re-applying an unchanged file is a no-op.
    let out = s.ok(&["apply", "-f", &fixture("nginx-deployment.yaml")]);
    assert_eq!(out.trim(), "deployment.apps/nginx-deployment unchanged");

    let pods = s.ok(&["get", "pods"]);
    assert!(
        pods.contains("nginx-pod") && pods.contains("Pending"),
        "{pods}"
    );
    let wide = s.ok(&["get", "pods", "-o", "wide"]);
    assert!(wide.contains("NODE"), "{wide}");
    let deploy = s.ok(&["get", "deployment", "nginx-deployment"]);
    assert!(deploy.contains("UP-TO-DATE"), "{deploy}");
    let image = s.ok(&[
        "get",
        "deploy",
        "nginx-deployment",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
    ]);
    assert_eq!(image, "nginx:1.14.2");
    // Upstream defaults are filled in.
    let strategy = s.ok(&["get", "deploy", "nginx-deployment", "-o", "jsonpath={.spec.strategy.rollingUpdate.maxSurge} {.spec.revisionHistoryLimit} {.spec.progressDeadlineSeconds}"]);
    assert_eq!(strategy, "25% 10 600");
    let yaml = s.ok(&["get", "pod", "nginx-pod", "-o", "yaml"]);
    assert!(
        yaml.contains("restartPolicy: Always") && yaml.contains("dnsPolicy: ClusterFirst"),
        "{yaml}"
    );
    let labels = s.ok(&["get", "deploy", "--show-labels"]);
    assert!(labels.contains("app=nginx"), "{labels}");
    let sel = s.ok(&["get", "deploy", "-l", "app=nginx", "-o", "name"]);
    assert_eq!(sel.trim(), "deployment.apps/nginx-deployment");
    let none = s.ok(&["get", "deploy", "-l", "app!=nginx", "-o", "name"]);
    assert_eq!(none.trim(), "");
    let all_ns = s.ok(&["get", "pods", "-A"]);
    assert!(all_ns.contains("NAMESPACE"), "{all_ns}");

    let desc = s.ok(&["describe", "deployment", "nginx-deployment"]);
    assert!(
        desc.contains("nginx:1.14.2") && desc.contains("RollingUpdate"),
        "{desc}"
    );

    s.ok(&["label", "deployment", "nginx-deployment", "tier=web"]);
    let l = s.ok(&[
        "get",
        "deploy",
        "nginx-deployment",
        "-o",
        "jsonpath={.metadata.labels.tier}",
    ]);
    assert_eq!(l, "web");
    s.ok(&["annotate", "deployment", "nginx-deployment", "note=hello"]);
    s.ok(&["label", "deployment", "nginx-deployment", "tier-"]);
    let l = s.ok(&[
        "get",
        "deploy",
        "nginx-deployment",
        "-o",
        "jsonpath={.metadata.labels}",
    ]);
    assert!(!l.contains("tier"), "{l}");

    s.ok(&["scale", "deployment", "nginx-deployment", "--replicas=5"]);
    let r = s.ok(&[
        "get",
        "deploy",
        "nginx-deployment",
        "-o",
        "jsonpath={.spec.replicas}",
    ]);
    assert_eq!(r, "5");

    let out = s.ok(&["delete", "-f", &fixture("nginx-deployment.yaml")]);
    assert!(out.contains("deleted"), "{out}");
    let out = s.ok(&["delete", "pod", "nginx-pod"]);
    assert!(out.contains("deleted"), "{out}");
    let err = s.fails(&["get", "pod", "nginx-pod"]);
    assert!(
        err.contains("NotFound") || err.contains("not found"),
        "{err}"
    );
}

#[test]
fn imperative_create_commands_send_protobuf() {
    let s = Server::start();
    assert_eq!(
        s.ok(&["create", "namespace", "team-a"]).trim(),
        "namespace/team-a created"
    );
    assert_eq!(
        s.ok(&[
            "create",
            "deployment",
            "nginx",
            "--image=nginx:1.14.2",
            "-n",
            "team-a"
        ])
        .trim(),
        "deployment.apps/nginx created"
    );
    assert_eq!(
        s.ok(&[
            "create",
            "configmap",
            "cfg",
            "--from-literal=a=1",
            "--from-literal=b=2",
            "-n",
            "team-a"
        ])
        .trim(),
        "configmap/cfg created"
    );
    assert_eq!(
        s.ok(&[
            "create",
            "secret",
            "generic",
            "pw",
            "--from-literal=password=s3cret",
            "-n",
            "team-a"
        ])
        .trim(),
        "secret/pw created"
    );
    let data = s.ok(&[
        "get",
        "cm",
        "cfg",
        "-n",
        "team-a",
        "-o",
        "jsonpath={.data.b}",
    ]);
    assert_eq!(data, "2");
    let pw = s.ok(&[
        "get",
        "secret",
        "pw",
        "-n",
        "team-a",
        "-o",
        "jsonpath={.data.password}",
    ]);
    assert_eq!(pw, "czNjcmV0");
    let out = s.ok(&["expose", "deployment", "nginx", "--port=80", "-n", "team-a"]);
    assert_eq!(out.trim(), "service/nginx exposed");
    let ip = s.ok(&[
        "get",
        "svc",
        "nginx",
        "-n",
        "team-a",
        "-o",
        "jsonpath={.spec.clusterIP}",
    ]);
    assert!(ip.starts_with("10.43."), "{ip}");
    let err = s.fails(&["create", "namespace", "team-a"]);
    assert!(err.contains("AlreadyExists"), "{err}");
    // Creating into a missing namespace is a 404.
    let err = s.fails(&["create", "configmap", "x", "-n", "nope"]);
    assert!(err.contains("not found"), "{err}");
}

#[test]
fn discovery_api_resources_explain_and_openapi() {
    let s = Server::start();
    let res = s.ok(&["api-resources"]);
    for line in [
        "deployments",
        "deploy",
        "statefulsets",
        "horizontalpodautoscalers",
        "configmaps",
    ] {
        assert!(res.contains(line), "{line} missing:\n{res}");
    }
    let explain = s.ok(&["explain", "deployment.spec.strategy"]);
    assert!(explain.contains("rollingUpdate"), "{explain}");
    let raw = s.ok(&["get", "--raw", "/openapi/v3"]);
    assert!(raw.contains("apis/apps/v1"), "{raw}");
    let v = s.ok(&["version", "-o", "json"]);
    assert!(v.contains("v1.33"), "{v}");
    let all = s.ok(&["get", "all"]);
    assert!(all.contains("service/kubernetes"), "{all}");

    // `kubectl get cs` (deprecated upstream, still served): the store at once; the
    // scheduler and controller manager once they hold their leader Leases.
    assert!(
        res.contains("componentstatuses") && res.contains(" cs "),
        "{res}"
    );
    let out = s.kubectl(&["get", "cs", "etcd-0"]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(stdout.contains("etcd-0   Healthy   ok"), "{stdout}");
    assert!(
        stderr.contains("v1 ComponentStatus is deprecated in v1.19+"),
        "{stderr}"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let cs = s.ok(&["get", "componentstatuses"]);
        let healthy = cs.lines().filter(|l| l.contains("Healthy   ok")).count();
        if healthy == 3 {
            assert!(cs.starts_with("NAME"), "{cs}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{cs}");
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    let err = s.fails(&["get", "cs", "nope"]);
    assert!(
        err.contains("NotFound") || err.contains("not found"),
        "{err}"
    );
}

#[test]
fn wait_and_watch() {
    let s = Server::start();
    s.ok(&["create", "configmap", "w1", "--from-literal=a=1"]);
    // `kubectl wait --for=delete` returns once the object is gone.
    let kc = s.kubeconfig.clone();
    let waiter = std::thread::spawn(move || {
        std::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&kc)
            .args(["wait", "--for=delete", "configmap/w1", "--timeout=20s"])
            .output()
            .expect("kubectl wait")
    });
    std::thread::sleep(std::time::Duration::from_millis(500));
    s.ok(&["delete", "configmap", "w1"]);
    let out = waiter.join().expect("join");
    assert!(
        out.status.success(),
        "wait failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // `kubectl wait --for=jsonpath` on a field set later.
    s.ok(&["create", "namespace", "waitns"]);
    s.ok(&[
        "wait",
        "--for=jsonpath={.status.phase}=Active",
        "namespace/waitns",
        "--timeout=10s",
    ]);
}

#[test]
fn bad_input_gets_statuses() {
    let s = Server::start();
    let err = s.fails(&["create", "configmap", "Bad_Name"]);
    assert!(err.contains("Invalid") || err.contains("invalid"), "{err}");
    let bad = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers: []\n";
    let out = s.kubectl_stdin(&["apply", "-f", "-"], Some(bad));
    assert!(!out.status.success());
    let err = s.fails(&["get", "foos"]);
    assert!(
        err.contains("the server doesn't have a resource type"),
        "{err}"
    );
    let err = s.fails(&["get", "pods", "-l", "a in (b"]);
    assert!(!err.is_empty());
}

#[test]
fn get_watch_streams_changes_and_json_output() {
    let s = Server::start();
    let kc = s.kubeconfig.clone();
    let home = s.data_dir().to_path_buf();
    let watcher = std::thread::spawn(move || {
        std::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&kc)
            .args(["get", "configmaps", "-w", "--request-timeout=4s"])
            .env("HOME", home)
            .output()
            .expect("kubectl get -w")
    });
    std::thread::sleep(std::time::Duration::from_millis(800));
    s.ok(&["create", "configmap", "watched", "--from-literal=a=1"]);
    s.ok(&["label", "configmap", "watched", "x=y"]);
    let out = watcher.join().expect("join");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("NAME"), "{text}");
    assert!(
        text.matches("watched").count() >= 2,
        "an ADDED and a MODIFIED row expected:\n{text}"
    );
    let json = s.ok(&["get", "configmap", "watched", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(v["metadata"]["labels"]["x"], "y");
}

/// Kinds charts ship beside their workloads: webhook configurations (stored; r8s calls no
/// webhooks), RuntimeClasses and CSIDrivers, with upstream's `kubectl get` columns.
#[test]
fn chart_side_kinds_are_stored_and_listed() {
    let s = Server::start();
    let manifests = r#"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {name: demo}
webhooks:
- name: demo.example.com
  clientConfig: {service: {name: svc, namespace: default, path: /validate}}
  rules: [{operations: [CREATE], apiGroups: [""], apiVersions: [v1], resources: [pods]}]
  sideEffects: None
  admissionReviewVersions: [v1]
---
apiVersion: node.k8s.io/v1
kind: RuntimeClass
metadata: {name: crun}
handler: crun
---
apiVersion: storage.k8s.io/v1
kind: CSIDriver
metadata: {name: hostpath.csi.k8s.io}
spec: {podInfoOnMount: true}
"#;
    s.ok_stdin(&["apply", "-f", "-"], manifests);
    let header_and_row = |kind: &str| -> Vec<Vec<String>> {
        s.ok(&["get", kind])
            .lines()
            .map(|l| l.split_whitespace().map(str::to_string).collect())
            .collect()
    };
    let hooks = header_and_row("validatingwebhookconfigurations");
    assert_eq!(hooks[0], ["NAME", "WEBHOOKS", "AGE"]);
    assert_eq!(hooks[1][..2], ["demo", "1"]);
    let classes = header_and_row("runtimeclass");
    assert_eq!(classes[0], ["NAME", "HANDLER", "AGE"]);
    assert_eq!(classes[1][..2], ["crun", "crun"]);
    let drivers = header_and_row("csidriver");
    assert_eq!(
        drivers[0],
        [
            "NAME",
            "ATTACHREQUIRED",
            "PODINFOONMOUNT",
            "STORAGECAPACITY",
            "TOKENREQUESTS",
            "REQUIRESREPUBLISH",
            "MODES",
            "AGE"
        ]
    );
    assert_eq!(
        drivers[1][..7],
        [
            "hostpath.csi.k8s.io",
            "true",
            "true",
            "false",
            "<unset>",
            "false",
            "Persistent"
        ]
    );
    // The webhook is called: its Service does not exist, and with the default
    // failurePolicy (Fail) the create fails as upstream's does.
    let err = s.fails(&["run", "hooked", "--image=busybox:1.36"]);
    assert!(
        err.contains(r#"failed calling webhook "demo.example.com""#)
            && err.contains(r#"services "svc" not found"#),
        "{err}"
    );
    // With failurePolicy Ignore the unreachable webhook is skipped.
    s.ok(&[
        "patch",
        "validatingwebhookconfiguration",
        "demo",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/webhooks/0/failurePolicy","value":"Ignore"}]"#,
    ]);
    s.ok(&["run", "unhooked", "--image=busybox:1.36"]);
}
