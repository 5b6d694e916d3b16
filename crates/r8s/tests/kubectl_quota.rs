//! e2e: ResourceQuotas as upstream's tutorials use them ("Configure Memory and CPU Quotas
//! for a Namespace", "Configure a Pod Quota for a Namespace"), with the real kubectl:
//! usage shows in `status.used` and `kubectl describe`, creates past the quota are
//! refused with upstream's message, a Deployment stops at the pod quota with a
//! `ReplicaFailure` condition, and deleting a pod gives its share back.

mod common;
use common::Server;
use std::time::Duration;

const MEM_CPU_QUOTA: &str = "
apiVersion: v1
kind: ResourceQuota
metadata:
  name: mem-cpu-demo
spec:
  hard:
    requests.cpu: '1'
    requests.memory: 1Gi
    limits.cpu: '2'
    limits.memory: 2Gi
";

const POD_QUOTA: &str = "
apiVersion: v1
kind: ResourceQuota
metadata:
  name: pod-demo
spec:
  hard:
    pods: '2'
";

const DEPLOYMENT: &str = "
apiVersion: apps/v1
kind: Deployment
metadata:
  name: pod-quota-demo
spec:
  selector:
    matchLabels:
      purpose: quota-demo
  replicas: 3
  template:
    metadata:
      labels:
        purpose: quota-demo
    spec:
      containers:
      - name: pod-quota-demo
        image: busybox:1.36
        command: [sleep, '3600']
";

fn pod(name: &str, limits: &str, requests: &str) -> String {
    common::pod_manifest(name, &format!("{{limits: {limits}, requests: {requests}}}"))
}

/// Polls `kubectl args` until its output satisfies `want` (30 s at most).
fn eventually(s: &Server, args: &[&str], want: impl Fn(&str) -> bool) -> String {
    s.ok_until(args, Duration::from_secs(30), want)
}

#[test]
fn memory_and_cpu_quota() {
    let s = Server::start();
    let ns = "quota-mem-cpu-example";
    s.ok(&["create", "namespace", ns]);
    s.ok_stdin(&["apply", "-n", ns, "-f", "-"], MEM_CPU_QUOTA);
    s.ok_stdin(
        &["apply", "-n", ns, "-f", "-"],
        &pod(
            "quota-mem-cpu-demo",
            "{memory: 800Mi, cpu: 800m}",
            "{memory: 600Mi, cpu: 400m}",
        ),
    );
    let used = eventually(
        &s,
        &[
            "get",
            "resourcequota",
            "mem-cpu-demo",
            "-n",
            ns,
            "-o",
            "jsonpath={.status.used}",
        ],
        |u| u.contains("requests.memory"),
    );
    assert_eq!(
        used,
        r#"{"limits.cpu":"800m","limits.memory":"800Mi","requests.cpu":"400m","requests.memory":"600Mi"}"#
    );
    let hard = s.ok(&[
        "get",
        "quota",
        "mem-cpu-demo",
        "-n",
        ns,
        "-o",
        "jsonpath={.status.hard}",
    ]);
    assert_eq!(
        hard,
        r#"{"limits.cpu":"2","limits.memory":"2Gi","requests.cpu":"1","requests.memory":"1Gi"}"#
    );
    let described = s.ok(&["describe", "quota", "mem-cpu-demo", "-n", ns]);
    assert!(
        described
            .lines()
            .any(|l| l.split_whitespace().eq(["requests.memory", "600Mi", "1Gi"])),
        "{described}"
    );
    let table = s.ok(&["get", "quota", "-n", ns]);
    assert!(
        table.contains("requests.cpu: 400m/1, requests.memory: 600Mi/1Gi")
            && table.contains("limits.cpu: 800m/2, limits.memory: 800Mi/2Gi"),
        "{table}"
    );

    let out = s.kubectl_stdin(
        &["apply", "-n", ns, "-f", "-"],
        Some(&pod(
            "quota-mem-cpu-demo-2",
            "{memory: 1Gi, cpu: 800m}",
            "{memory: 700Mi, cpu: 400m}",
        )),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(r#"pods "quota-mem-cpu-demo-2" is forbidden: exceeded quota: mem-cpu-demo, requested: requests.memory=700Mi, used: requests.memory=600Mi, limited: requests.memory=1Gi"#),
        "{err}"
    );

    // A pod without requests is refused while the quota limits them.
    let out = s.kubectl(&["run", "bare", "-n", ns, "--image=busybox:1.36"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("failed quota: mem-cpu-demo: must specify limits.cpu for: bare; limits.memory for: bare; requests.cpu for: bare; requests.memory for: bare"),
        "{err}"
    );

    // Deleting the pod gives its usage back (the quota controller recounts).
    s.ok(&[
        "delete",
        "pod",
        "quota-mem-cpu-demo",
        "-n",
        ns,
        "--grace-period=0",
        "--force",
    ]);
    eventually(
        &s,
        &[
            "get",
            "quota",
            "mem-cpu-demo",
            "-n",
            ns,
            "-o",
            "jsonpath={.status.used.requests\\.memory}",
        ],
        |u| u == "0",
    );
}

#[test]
fn pod_quota_stops_a_deployment() {
    let s = Server::start();
    let ns = "quota-pod-example";
    s.ok(&["create", "namespace", ns]);
    s.ok_stdin(&["apply", "-n", ns, "-f", "-"], POD_QUOTA);
    s.ok_stdin(&["apply", "-n", ns, "-f", "-"], DEPLOYMENT);
    let message = eventually(
        &s,
        &[
            "get",
            "deployment",
            "pod-quota-demo",
            "-n",
            ns,
            "-o",
            r#"jsonpath={.status.conditions[?(@.type=="ReplicaFailure")].message}"#,
        ],
        |m| !m.is_empty(),
    );
    assert!(
        message
            .contains("exceeded quota: pod-demo, requested: pods=1, used: pods=2, limited: pods=2"),
        "{message}"
    );
    let pods = s.ok(&["get", "pods", "-n", ns, "-o", "name"]);
    assert_eq!(pods.lines().count(), 2, "{pods}");
    let used = s.ok(&[
        "get",
        "quota",
        "pod-demo",
        "-n",
        ns,
        "-o",
        "jsonpath={.status.used.pods}",
    ]);
    assert_eq!(used, "2");

    // `kubectl create quota` (a protobuf body) and an object-count limit on Services.
    s.ok(&[
        "create",
        "quota",
        "objects",
        "-n",
        ns,
        "--hard=services=0,count/secrets=9",
    ]);
    let err = s.fails(&[
        "create",
        "service",
        "clusterip",
        "web",
        "-n",
        ns,
        "--tcp=80",
    ]);
    assert!(
        err.contains(r#"services "web" is forbidden: exceeded quota: objects, requested: services=1, used: services=0, limited: services=0"#),
        "{err}"
    );
}

/// "Configure Quotas for API Objects": claims and node ports, and a Service update that
/// turns it into a NodePort one is charged like a create.
#[test]
fn object_quota_claims_and_node_ports() {
    let s = Server::start();
    let ns = "quota-object-example";
    s.ok(&["create", "namespace", ns]);
    s.ok(&[
        "create",
        "quota",
        "object-quota-demo",
        "-n",
        ns,
        "--hard=persistentvolumeclaims=1,services.loadbalancers=2,services.nodeports=0",
    ]);
    let claim = |name: &str| {
        format!(
            "{{apiVersion: v1, kind: PersistentVolumeClaim, metadata: {{name: {name}}},
              spec: {{storageClassName: manual, accessModes: [ReadWriteOnce],
                      resources: {{requests: {{storage: 3Gi}}}}}}}}"
        )
    };
    s.ok_stdin(&["apply", "-n", ns, "-f", "-"], &claim("pvc-quota-demo"));
    let out = s.kubectl_stdin(
        &["apply", "-n", ns, "-f", "-"],
        Some(&claim("pvc-quota-demo-2")),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(r#"persistentvolumeclaims "pvc-quota-demo-2" is forbidden: exceeded quota: object-quota-demo, requested: persistentvolumeclaims=1, used: persistentvolumeclaims=1, limited: persistentvolumeclaims=1"#),
        "{err}"
    );
    s.ok(&[
        "create",
        "service",
        "clusterip",
        "web",
        "-n",
        ns,
        "--tcp=80",
    ]);
    let err = s.fails(&[
        "patch",
        "service",
        "web",
        "-n",
        ns,
        "-p",
        r#"{"spec":{"type":"NodePort"}}"#,
    ]);
    assert!(
        err.contains(r#"services "web" is forbidden: exceeded quota: object-quota-demo, requested: services.nodeports=1, used: services.nodeports=0, limited: services.nodeports=0"#),
        "{err}"
    );
    let kind = s.ok(&[
        "get",
        "service",
        "web",
        "-n",
        ns,
        "-o",
        "jsonpath={.spec.type}",
    ]);
    assert_eq!(kind, "ClusterIP");
}
