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
