//! e2e with the real kubectl: core/v1 and events.k8s.io/v1 Events are one store (written
//! through either, read, listed, watched and deleted through the other; `kubectl events`
//! and `kubectl get events` show what controllers record), and `kubectl replace` of a
//! missing object creates it for kinds that allow create-on-update.

mod common;
use common::Server;
use std::io::Read;
use std::process::{Command, Stdio};
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

const CORE_EVENT: &str = r#"
apiVersion: v1
kind: Event
metadata:
  name: hello.core
  namespace: evt
involvedObject:
  apiVersion: v1
  kind: ConfigMap
  name: hello
  namespace: evt
reason: CoreTesting
message: core says hi
type: Normal
source:
  component: e2e-core
firstTimestamp: "2024-01-01T00:00:00Z"
lastTimestamp: "2024-01-01T00:00:00Z"
count: 2
"#;

const NEW_EVENT: &str = r#"
apiVersion: events.k8s.io/v1
kind: Event
metadata:
  name: hello.new
  namespace: evt
eventTime: "2024-01-01T00:00:01.000000Z"
reportingController: example.com/e2e
reportingInstance: e2e-1
action: Test
reason: NewTesting
type: Warning
note: events.k8s.io says hi
regarding:
  apiVersion: v1
  kind: ConfigMap
  name: hello
  namespace: evt
"#;

const NEW_API: &str = "events.v1.events.k8s.io";

#[test]
fn one_store_for_both_event_apis() {
    let s = Server::start();
    s.ok(&["create", "namespace", "evt"]);
    s.ok_stdin(&["create", "-f", "-"], CORE_EVENT);
    s.ok_stdin(&["create", "-f", "-"], NEW_EVENT);

    // The core event through events.k8s.io: renamed fields.
    let y = s.ok(&["get", NEW_API, "hello.core", "-n", "evt", "-o", "yaml"]);
    for want in [
        "apiVersion: events.k8s.io/v1",
        "note: core says hi",
        "regarding:",
        "deprecatedCount: 2",
        "component: e2e-core",
        "deprecatedSource:",
    ] {
        assert!(y.contains(want), "{want:?} missing:\n{y}");
    }
    assert!(
        !y.contains("involvedObject") && !y.contains("message:"),
        "{y}"
    );
    // The events.k8s.io event through core/v1.
    let y = s.ok(&["get", "events", "hello.new", "-n", "evt", "-o", "yaml"]);
    for want in [
        "apiVersion: v1",
        "message: events.k8s.io says hi",
        "involvedObject:",
        "reportingComponent: example.com/e2e",
        "reportingInstance: e2e-1",
        "action: Test",
    ] {
        assert!(y.contains(want), "{want:?} missing:\n{y}");
    }
    assert!(!y.contains("note:") && !y.contains("regarding:"), "{y}");

    // Both lists, both tables, and `kubectl events` show both.
    let names = s.ok(&["get", "events", "-n", "evt", "-o", "name"]);
    assert_eq!(names.lines().count(), 2, "{names}");
    let table = s.ok(&["get", NEW_API, "-n", "evt"]);
    assert!(
        table.contains("CoreTesting") && table.contains("NewTesting"),
        "{table}"
    );
    let table = s.ok(&["get", "events", "-n", "evt"]);
    assert!(
        table.contains("core says hi") && table.contains("events.k8s.io says hi"),
        "{table}"
    );
    let ev = s.ok(&["events", "-n", "evt"]);
    assert!(
        ev.contains("core says hi") && ev.contains("events.k8s.io says hi"),
        "{ev}"
    );
    let ev = s.ok(&[
        "events",
        "-n",
        "evt",
        "--for",
        "configmap/hello",
        "--types",
        "Warning",
    ]);
    assert!(
        ev.contains("events.k8s.io says hi") && !ev.contains("core says hi"),
        "{ev}"
    );

    // Field selectors in each API's names.
    let r = s.ok(&[
        "get",
        NEW_API,
        "-n",
        "evt",
        "--field-selector",
        "reportingController=example.com/e2e",
        "-o",
        "jsonpath={.items[*].metadata.name}",
    ]);
    assert_eq!(r, "hello.new");
    let r = s.ok(&[
        "get",
        "events",
        "-n",
        "evt",
        "--field-selector",
        "source=e2e-core",
        "-o",
        "jsonpath={.items[*].metadata.name}",
    ]);
    assert_eq!(r, "hello.core");
    let err = s.fails(&[
        "get",
        NEW_API,
        "-n",
        "evt",
        "--field-selector",
        "involvedObject.name=hello",
    ]);
    assert!(err.contains("field label not supported"), "{err}");

    // Delete through one, gone from the other.
    s.ok(&["delete", NEW_API, "hello.core", "-n", "evt"]);
    let err = s.fails(&["get", "events", "hello.core", "-n", "evt"]);
    assert!(
        err.contains("NotFound") || err.contains("not found"),
        "{err}"
    );
    s.ok(&["delete", "events", "hello.new", "-n", "evt"]);
    let err = s.fails(&["get", NEW_API, "hello.new", "-n", "evt"]);
    assert!(err.contains("not found"), "{err}");
}

/// A `kubectl get -w` child whose output is read after it is stopped.
struct Watcher(std::process::Child);

impl Watcher {
    fn start(s: &Server, args: &[&str]) -> Watcher {
        let child = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&s.kubeconfig)
            .args(args)
            .env_remove("KUBECONFIG")
            .env("HOME", s.data_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn kubectl watch");
        Watcher(child)
    }

    fn stop(mut self) -> String {
        let _ = self.0.kill();
        let mut out = String::new();
        if let Some(mut o) = self.0.stdout.take() {
            let _ = o.read_to_string(&mut out);
        }
        let _ = self.0.wait();
        out
    }
}

#[test]
fn kubectl_watches_both_event_apis() {
    let s = Server::start();
    s.ok(&["create", "namespace", "evt"]);
    let core_w = Watcher::start(
        &s,
        &["get", "events", "-n", "evt", "-w", "--output-watch-events"],
    );
    let new_w = Watcher::start(
        &s,
        &["get", NEW_API, "-n", "evt", "-w", "--output-watch-events"],
    );
    // Let both watches start before writing.
    std::thread::sleep(Duration::from_secs(3));
    s.ok_stdin(&["create", "-f", "-"], CORE_EVENT);
    s.ok_stdin(&["create", "-f", "-"], NEW_EVENT);
    s.ok(&["delete", "events", "hello.core", "-n", "evt"]);
    std::thread::sleep(Duration::from_secs(3));
    let core_out = core_w.stop();
    let new_out = new_w.stop();
    for out in [&core_out, &new_out] {
        assert!(out.contains("ADDED") && out.contains("DELETED"), "{out}");
        assert!(
            out.contains("CoreTesting") && out.contains("NewTesting"),
            "{out}"
        );
    }
}

#[test]
fn controller_events_show_in_every_view() {
    let s = Server::start();
    let _nodes = s.sim_nodes(1);
    s.ok(&["create", "namespace", "apps"]);
    s.ok(&["create", "deployment", "web", "--image=nginx", "-n", "apps"]);
    // The deployment controller, the replicaset controller and the scheduler record events.
    eventually(60, "controller events", || {
        let r = s.ok(&[
            "get",
            "events",
            "-n",
            "apps",
            "-o",
            "jsonpath={.items[*].reason}",
        ]);
        r.contains("ScalingReplicaSet") && r.contains("SuccessfulCreate") && r.contains("Scheduled")
    });
    let r = s.ok(&[
        "get",
        NEW_API,
        "-n",
        "apps",
        "-o",
        "jsonpath={.items[*].reason}",
    ]);
    for reason in ["ScalingReplicaSet", "SuccessfulCreate", "Scheduled"] {
        assert!(
            r.contains(reason),
            "{reason} missing through events.k8s.io: {r}"
        );
    }
    let table = s.ok(&["get", "events", "-n", "apps"]);
    assert!(table.contains("deployment/web"), "{table}");
    let ev = s.ok(&["events", "-n", "apps"]);
    assert!(
        ev.contains("ScalingReplicaSet") && ev.contains("Scheduled"),
        "{ev}"
    );
    let ev = s.ok(&["events", "-n", "apps", "--for", "deployment/web"]);
    assert!(ev.contains("Scaled up replica set"), "{ev}");
    assert!(!ev.contains("Scheduled"), "{ev}");
    let r = s.ok(&[
        "get",
        NEW_API,
        "-n",
        "apps",
        "--field-selector",
        "regarding.kind=Deployment",
        "-o",
        "jsonpath={.items[*].reason}",
    ]);
    assert!(
        r.contains("ScalingReplicaSet") && !r.contains("Scheduled"),
        "{r}"
    );
    let describe = s.ok(&["describe", "deployment", "web", "-n", "apps"]);
    assert!(describe.contains("ScalingReplicaSet"), "{describe}");
}

#[test]
fn kubectl_replace_creates_where_upstream_does() {
    let s = Server::start();
    let lease = "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata:\n  name: lock\n  namespace: default\nspec:\n  holderIdentity: me\n";
    let out = s.ok_stdin(&["replace", "-f", "-"], lease);
    assert!(
        out.contains("lease.coordination.k8s.io/lock replaced"),
        "{out}"
    );
    let holder = s.ok(&[
        "get",
        "lease",
        "lock",
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ]);
    assert_eq!(holder, "me");
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: nope\n  namespace: default\ndata:\n  k: v\n";
    let err = String::from_utf8_lossy(&s.kubectl_stdin(&["replace", "-f", "-"], Some(cm)).stderr)
        .into_owned();
    assert!(
        err.contains("NotFound") || err.contains("not found"),
        "{err}"
    );
    let err = s.fails(&["get", "configmap", "nope"]);
    assert!(err.contains("not found"), "{err}");
}
