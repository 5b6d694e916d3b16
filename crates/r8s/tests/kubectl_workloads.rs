//! e2e: workloads on simulated nodes, driven by the real kubectl: scheduler, Deployment
//! rollouts and rollbacks, StatefulSet ordering, Jobs, unschedulable pods.

mod common;
use common::Server;

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn jp(s: &Server, what: &str, expr: &str) -> String {
    s.ok(&["get", what, "-o", &format!("jsonpath={expr}")])
}

#[test]
fn seed_deployment_scale_update_history_undo_pause_resume() {
    let s = Server::start();
    let _nodes = s.sim_nodes(3);
    s.ok(&["apply", "-f", &fixture("nginx-deployment.yaml")]);
    s.ok(&[
        "rollout",
        "status",
        "deploy/nginx-deployment",
        "--timeout=60s",
    ]);
    assert_eq!(
        jp(&s, "deploy/nginx-deployment", "{.status.availableReplicas}"),
        "3"
    );
    let nodes = s.ok(&[
        "get",
        "pods",
        "-l",
        "app=nginx",
        "-o",
        "jsonpath={.items[*].spec.nodeName}",
    ]);
    assert_eq!(nodes.split_whitespace().count(), 3, "{nodes}");

    for n in ["10", "2"] {
        s.ok(&[
            "scale",
            "deploy/nginx-deployment",
            &format!("--replicas={n}"),
        ]);
        s.ok(&[
            "rollout",
            "status",
            "deploy/nginx-deployment",
            "--timeout=60s",
        ]);
        assert_eq!(
            jp(&s, "deploy/nginx-deployment", "{.status.readyReplicas}"),
            n
        );
    }

    s.ok(&[
        "set",
        "image",
        "deploy/nginx-deployment",
        "nginx=nginx:1.16.1",
    ]);
    s.ok(&[
        "rollout",
        "status",
        "deploy/nginx-deployment",
        "--timeout=60s",
    ]);
    let images = s.ok(&[
        "get",
        "pods",
        "-l",
        "app=nginx",
        "-o",
        "jsonpath={.items[*].spec.containers[0].image}",
    ]);
    assert!(
        images.split_whitespace().all(|i| i == "nginx:1.16.1"),
        "{images}"
    );
    let history = s.ok(&["rollout", "history", "deploy/nginx-deployment"]);
    assert!(history.contains('1') && history.contains('2'), "{history}");

    s.ok(&["rollout", "undo", "deploy/nginx-deployment"]);
    s.ok(&[
        "rollout",
        "status",
        "deploy/nginx-deployment",
        "--timeout=60s",
    ]);
    assert_eq!(
        jp(
            &s,
            "deploy/nginx-deployment",
            "{.spec.template.spec.containers[0].image}"
        ),
        "nginx:1.14.2"
    );

    s.ok(&["rollout", "pause", "deploy/nginx-deployment"]);
    s.ok(&[
        "set",
        "image",
        "deploy/nginx-deployment",
        "nginx=nginx:1.20",
    ]);
    std::thread::sleep(std::time::Duration::from_secs(1));
    let rs_images = s.ok(&[
        "get",
        "rs",
        "-o",
        "jsonpath={.items[*].spec.template.spec.containers[0].image}",
    ]);
    assert!(
        !rs_images.contains("nginx:1.20"),
        "paused deployment rolled out: {rs_images}"
    );
    s.ok(&["rollout", "resume", "deploy/nginx-deployment"]);
    s.ok(&[
        "rollout",
        "status",
        "deploy/nginx-deployment",
        "--timeout=60s",
    ]);
    assert_eq!(
        jp(&s, "deploy/nginx-deployment", "{.status.updatedReplicas}"),
        "2"
    );
}

const STS_AND_JOBS: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{port: 80, name: web}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web}
spec:
  serviceName: web
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: nginx, image: nginx:1.14.2}]
  volumeClaimTemplates:
  - metadata: {name: www}
    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
---
apiVersion: batch/v1
kind: Job
metadata: {name: ok}
spec:
  completions: 3
  parallelism: 2
  template:
    metadata: {annotations: {sim.r8s.io/exit-code: "0"}}
    spec:
      restartPolicy: Never
      containers: [{name: c, image: busybox, command: ["true"]}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: bad}
spec:
  backoffLimit: 1
  template:
    metadata: {annotations: {sim.r8s.io/exit-code: "1"}}
    spec:
      restartPolicy: Never
      containers: [{name: c, image: busybox, command: ["false"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: huge}
spec:
  containers: [{name: c, image: busybox, resources: {requests: {cpu: "1000"}}}]
"#;

#[test]
fn statefulset_in_order_jobs_and_unschedulable_pods() {
    let s = Server::start();
    let _nodes = s.sim_nodes(3);
    s.ok_stdin(&["apply", "-f", "-"], STS_AND_JOBS);
    s.ok(&["rollout", "status", "sts/web", "--timeout=60s"]);
    // Ordinal i started only after i-1: creation timestamps / start times are ordered.
    let starts = s.ok(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "--sort-by=.metadata.name",
        "-o",
        "jsonpath={.items[*].metadata.name}",
    ]);
    assert_eq!(starts, "web-0 web-1 web-2");
    let claims = s.ok(&["get", "pvc", "-o", "name"]);
    assert_eq!(claims.lines().count(), 3, "{claims}");
    let ep = s.ok(&[
        "get",
        "endpoints",
        "web",
        "-o",
        "jsonpath={.subsets[0].addresses[*].ip}",
    ]);
    assert_eq!(ep.split_whitespace().count(), 3, "{ep}");

    s.ok(&[
        "wait",
        "--for=condition=complete",
        "job/ok",
        "--timeout=60s",
    ]);
    assert_eq!(jp(&s, "job/ok", "{.status.succeeded}"), "3");
    s.ok(&["wait", "--for=condition=failed", "job/bad", "--timeout=90s"]);
    assert_eq!(
        jp(
            &s,
            "job/bad",
            "{.status.conditions[?(@.type==\"Failed\")].reason}"
        ),
        "BackoffLimitExceeded"
    );

    // The scheduler explains why a pod cannot be placed.
    let mut described = String::new();
    for _ in 0..50 {
        described = s.ok(&["describe", "pod", "huge"]);
        if described.contains("FailedScheduling") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(
        described.contains("0/3 nodes are available: 3 Insufficient cpu"),
        "{described}"
    );
    assert_eq!(jp(&s, "pod/huge", "{.status.phase}"), "Pending");
}

/// The built-in components name themselves as upstream's do, so `managedFields` shows
/// `kube-controller-manager` (not `unknown`) for what the controllers wrote.
#[test]
fn controllers_write_as_kube_controller_manager() {
    let s = Server::start();
    s.ok(&["create", "deployment", "named", "--image=busybox:1.36"]);
    let managers = || {
        s.ok(&[
            "get",
            "replicasets",
            "-l",
            "app=named",
            "-o",
            "jsonpath={.items[*].metadata.managedFields[*].manager}",
            "--show-managed-fields",
        ])
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !managers().contains("kube-controller-manager") {
        assert!(
            std::time::Instant::now() < deadline,
            "managers: {}",
            managers()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(!managers().contains("unknown"), "{}", managers());
    let leases = s.ok(&["get", "leases", "-n", "kube-system", "-o", "name"]);
    assert!(leases.contains("kube-scheduler"), "{leases}");
}
