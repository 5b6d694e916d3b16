//! e2e: faults the controller manager must ride out, driven by the real kubectl on
//! simulated nodes: a node that stops heartbeating has its pods replaced elsewhere, and a
//! server killed in the middle of a rollout finishes it after restart without duplicates.

mod common;
use common::Server;
use std::time::{Duration, Instant};

fn jp(s: &Server, what: &[&str], expr: &str) -> String {
    let mut args = vec!["get"];
    args.extend_from_slice(what);
    let out = format!("jsonpath={expr}");
    args.extend_from_slice(&["-o", &out]);
    s.ok(&args)
}

/// Polls `check` every 250 ms until it returns true or `timeout` passes.
fn eventually(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// `(name, node, terminating)` of the pods labelled `app=web`.
fn pods(s: &Server) -> Vec<(String, String, bool)> {
    let out = jp(
        s,
        &["pods", "-l", "app=web"],
        r#"{range .items[*]}{.metadata.name} {.spec.nodeName} {.metadata.deletionTimestamp}{"\n"}{end}"#,
    );
    out.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let name = f.next()?.to_string();
            let node = f.next().unwrap_or("").to_string();
            Some((name, node, f.next().is_some()))
        })
        .collect()
}

const SPREAD_DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 4
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      topologySpreadConstraints:
      - maxSkew: 1
        topologyKey: kubernetes.io/hostname
        whenUnsatisfiable: ScheduleAnyway
        labelSelector:
          matchLabels: {app: web}
      tolerations:
      - {key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 2}
      - {key: node.kubernetes.io/not-ready, operator: Exists, effect: NoExecute, tolerationSeconds: 2}
      containers:
      - name: web
        image: nginx:1.14.2
"#;

#[test]
fn node_that_stops_heartbeating_has_its_pods_replaced() {
    let s = Server::start_with(&["--node-monitor-grace-period", "5s"]);
    // Leases renewed every second, so a 5 s grace period only catches the silent nodes.
    let fast = ["--lease-interval", "1s"];
    let _good = s.sim_nodes_with("good", 2, &fast);
    let bad = s.sim_nodes_with("bad", 2, &fast);
    s.ok_stdin(&["apply", "-f", "-"], SPREAD_DEPLOYMENT);
    s.ok(&["rollout", "status", "deploy/web", "--timeout=60s"]);
    let before = pods(&s);
    let on_bad: Vec<String> = before
        .iter()
        .filter(|(_, node, _)| node.starts_with("bad-"))
        .map(|(name, _, _)| name.clone())
        .collect();
    assert!(
        !on_bad.is_empty(),
        "spreading should put pods on the bad nodes: {before:?}"
    );

    // The bad nodes' kubelets vanish: no more Lease renewals or status updates.
    drop(bad);
    eventually(
        "bad-0 to become Ready=Unknown",
        Duration::from_secs(60),
        || {
            jp(
                &s,
                &["node", "bad-0"],
                r#"{.status.conditions[?(@.type=="Ready")].status}"#,
            ) == "Unknown"
        },
    );
    let taints = jp(&s, &["node", "bad-0"], "{.spec.taints[*].key}");
    assert!(
        taints.contains("node.kubernetes.io/unreachable"),
        "taints: {taints}"
    );

    // Evicted after tolerationSeconds; the ReplicaSet replaces them on healthy nodes.
    eventually(
        "4 live pods, all on good nodes",
        Duration::from_secs(90),
        || {
            let live: Vec<_> = pods(&s).into_iter().filter(|p| !p.2).collect();
            live.len() == 4 && live.iter().all(|(_, node, _)| node.starts_with("good-"))
        },
    );
    for name in &on_bad {
        let live = pods(&s)
            .into_iter()
            .any(|(n, _, terminating)| &n == name && !terminating);
        assert!(!live, "pod {name} on a dead node is still live");
    }
    s.ok(&["rollout", "status", "deploy/web", "--timeout=60s"]);
    let events = s.ok(&["get", "events", "-A"]);
    assert!(
        events.contains("NodeNotReady") || events.contains("TaintManagerEviction"),
        "expected node/eviction events:\n{events}"
    );
}

const SLOW_ROLLOUT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 6
  minReadySeconds: 2
  strategy:
    rollingUpdate: {maxSurge: 1, maxUnavailable: 0}
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1.14.2
"#;

#[test]
fn server_killed_mid_rollout_finishes_it_after_restart() {
    let s = Server::start();
    let _nodes = s.sim_nodes(3);
    s.ok_stdin(&["apply", "-f", "-"], SLOW_ROLLOUT);
    s.ok(&["rollout", "status", "deploy/web", "--timeout=90s"]);
    s.ok(&["set", "image", "deploy/web", "web=nginx:1.16.1"]);
    // One surge pod at a time, each available only after 2 s: the rollout takes > 12 s.
    eventually("the rollout to start", Duration::from_secs(30), || {
        jp(&s, &["deploy", "web"], "{.status.updatedReplicas}")
            .parse::<u32>()
            .is_ok_and(|n| n >= 1)
    });
    let updated_at_kill: u32 = jp(&s, &["deploy", "web"], "{.status.updatedReplicas}")
        .parse()
        .unwrap_or(0);
    assert!(updated_at_kill < 6, "rollout finished before the kill");

    let s = s.crash_and_restart(&[]);
    s.ok(&["rollout", "status", "deploy/web", "--timeout=120s"]);

    let live: Vec<_> = pods(&s).into_iter().filter(|p| !p.2).collect();
    assert_eq!(live.len(), 6, "exactly the desired pods remain: {live:?}");
    let images = jp(
        &s,
        &["pods", "-l", "app=web"],
        "{.items[*].spec.containers[0].image}",
    );
    assert!(
        images.split_whitespace().all(|i| i == "nginx:1.16.1"),
        "all pods run the new image: {images}"
    );
    // One ReplicaSet per template (no duplicate created after the restart), the old one at 0.
    let sets = jp(
        &s,
        &["rs", "-l", "app=web"],
        r#"{range .items[*]}{.spec.template.spec.containers[0].image}={.spec.replicas}{"\n"}{end}"#,
    );
    let mut sets: Vec<&str> = sets.lines().collect();
    sets.sort();
    assert_eq!(sets, ["nginx:1.14.2=0", "nginx:1.16.1=6"], "{sets:?}");
    let history = s.ok(&["rollout", "history", "deploy/web"]);
    assert!(history.contains('1') && history.contains('2'), "{history}");
    assert_eq!(
        jp(
            &s,
            &["deploy", "web"],
            "{.metadata.annotations.deployment\\.kubernetes\\.io/revision}"
        ),
        "2"
    );
}
