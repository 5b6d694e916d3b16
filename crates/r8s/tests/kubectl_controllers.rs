//! e2e: controller behaviour seen through the real kubectl against `r8s server`.

mod common;
use common::Server;
use std::time::{Duration, Instant};

/// Poll `f` until it returns true or `secs` pass.
fn eventually(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("timed out waiting for {what}");
}

#[test]
fn namespace_deletion_removes_contents_then_the_namespace() {
    let s = Server::start();
    s.ok(&["create", "namespace", "doomed"]);
    s.ok(&["create", "configmap", "a", "-n", "doomed"]);
    s.ok(&[
        "create",
        "secret",
        "generic",
        "b",
        "-n",
        "doomed",
        "--from-literal=k=v",
    ]);
    eventually(20, "default service account", || {
        s.kubectl(&["get", "sa", "default", "-n", "doomed"])
            .status
            .success()
    });
    // kubectl waits for the namespace to be gone.
    let out = s.ok(&["delete", "namespace", "doomed", "--timeout=60s"]);
    assert!(out.contains("deleted"), "{out}");
    let err = s.fails(&["get", "namespace", "doomed"]);
    assert!(err.contains("not found"), "{err}");
    // Creating into a terminating or deleted namespace fails.
    assert!(
        !s.kubectl(&["create", "configmap", "x", "-n", "doomed"])
            .status
            .success()
    );
}

#[test]
fn cascading_and_orphaning_delete() {
    let s = Server::start();
    let owner = s.ok(&[
        "create",
        "configmap",
        "owner",
        "-o",
        "jsonpath={.metadata.uid}",
    ]);
    let dependent = |name: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  ownerReferences:\n  - apiVersion: v1\n    kind: ConfigMap\n    name: owner\n    uid: {owner}\n"
        )
    };
    s.ok_stdin(&["apply", "-f", "-"], &dependent("dep1"));
    s.ok(&["delete", "configmap", "owner"]);
    eventually(20, "background cascade", || {
        !s.kubectl(&["get", "cm", "dep1"]).status.success()
    });

    let owner = s.ok(&[
        "create",
        "configmap",
        "owner2",
        "-o",
        "jsonpath={.metadata.uid}",
    ]);
    let dep = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dep2\n  ownerReferences:\n  - apiVersion: v1\n    kind: ConfigMap\n    name: owner2\n    uid: {owner}\n"
    );
    s.ok_stdin(&["apply", "-f", "-"], &dep);
    s.ok(&[
        "delete",
        "configmap",
        "owner2",
        "--cascade=orphan",
        "--timeout=30s",
    ]);
    let refs = s.ok(&[
        "get",
        "cm",
        "dep2",
        "-o",
        "jsonpath={.metadata.ownerReferences}",
    ]);
    assert_eq!(refs, "", "orphaned dependent keeps no owner reference");

    let owner = s.ok(&[
        "create",
        "configmap",
        "owner3",
        "-o",
        "jsonpath={.metadata.uid}",
    ]);
    let dep = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dep3\n  ownerReferences:\n  - apiVersion: v1\n    kind: ConfigMap\n    name: owner3\n    uid: {owner}\n    blockOwnerDeletion: true\n"
    );
    s.ok_stdin(&["apply", "-f", "-"], &dep);
    s.ok(&[
        "delete",
        "configmap",
        "owner3",
        "--cascade=foreground",
        "--timeout=30s",
    ]);
    assert!(!s.kubectl(&["get", "cm", "dep3"]).status.success());
    assert!(!s.kubectl(&["get", "cm", "owner3"]).status.success());
}

/// `kubectl drain` honours a PodDisruptionBudget: with minAvailable equal to the
/// Deployment's replicas it gives up with the budget's message and both pods stay; with
/// one less it evicts one pod, waits for the replacement on another node, then the other.
#[test]
fn drain_honours_pod_disruption_budgets() {
    let s = Server::start();
    let _first = s.sim_nodes_named("first", 1);
    s.ok(&[
        "create",
        "deployment",
        "web",
        "--image=nginx:1.27",
        "--replicas=2",
    ]);
    s.ok(&["rollout", "status", "deploy/web", "--timeout=60s"]);
    s.ok(&[
        "create",
        "pdb",
        "webpdb",
        "--selector=app=web",
        "--min-available=2",
    ]);
    s.ok_until(
        &[
            "get",
            "pdb",
            "webpdb",
            "-o",
            "jsonpath={.status.currentHealthy}/{.status.desiredHealthy}/{.status.disruptionsAllowed}",
        ],
        Duration::from_secs(30),
        |o| o == "2/2/0",
    );
    // Somewhere for replacements to go.
    let _second = s.sim_nodes_named("second", 1);
    let pods = || {
        s.ok(&[
            "get",
            "pods",
            "-l",
            "app=web",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name} {.spec.nodeName} {.metadata.deletionTimestamp}{\"\\n\"}{end}",
        ])
    };
    let before = pods();

    let out = s.kubectl(&["drain", "first-0", "--timeout=5s"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "drain succeeded: {stderr}");
    assert!(
        stderr.contains("Cannot evict pod as it would violate the pod's disruption budget."),
        "{stderr}"
    );
    let after = pods();
    assert_eq!(before, after, "no pod was evicted");
    assert_eq!(after.lines().count(), 2, "{after}");
    assert!(
        after.lines().all(|l| l.split_whitespace().count() == 2),
        "a pod is terminating: {after}"
    );

    s.ok(&[
        "patch",
        "pdb",
        "webpdb",
        "--type=merge",
        "-p",
        "{\"spec\":{\"minAvailable\":1}}",
    ]);
    s.ok_until(
        &[
            "get",
            "pdb",
            "webpdb",
            "-o",
            "jsonpath={.status.observedGeneration}/{.status.disruptionsAllowed}",
        ],
        Duration::from_secs(30),
        |o| o == "2/1",
    );
    let out = s.kubectl(&["drain", "first-0", "--timeout=90s"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "drain failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("drained"), "{stdout}");
    // The second eviction had to wait for the first pod's replacement.
    assert!(
        stderr.contains("(will retry after 5s): Cannot evict pod as it would violate the pod's disruption budget."),
        "{stderr}"
    );
    s.ok_until(
        &[
            "get",
            "pods",
            "-l",
            "app=web",
            "-o",
            "jsonpath={.items[*].spec.nodeName}",
        ],
        Duration::from_secs(30),
        |o| o == "second-0 second-0",
    );
}
