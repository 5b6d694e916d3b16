//! e2e: NetworkPolicies are enforced on the node, following upstream's "Declare Network
//! Policy" tutorial: an `nginx` Deployment behind a Service, a policy letting only pods
//! labelled `access=true` reach it, busybox clients with and without the label; then an
//! egress policy on a client. Included by `node_agent.rs`.

use crate::common::Server;
use std::time::{Duration, Instant};

/// The tutorial's policy.
const ACCESS_NGINX: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: access-nginx
spec:
  podSelector:
    matchLabels:
      app: nginx
  ingress:
  - from:
    - podSelector:
        matchLabels:
          access: "true"
"#;

/// Egress of the unlabelled client: nginx pods only, and only on port 8080.
const EGRESS_8080: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: busybox-egress
spec:
  podSelector:
    matchLabels:
      run: busybox
  policyTypes: [Egress]
  egress:
  - to:
    - podSelector:
        matchLabels:
          app: nginx
    ports:
    - port: 8080
"#;

/// The page at `ip` from `client`, given up after 2 s as the tutorial's `wget --timeout`
/// (busybox-static 1.35's `wget -T` crashes, so `timeout` bounds it): Ok, or why not.
fn fetch(s: &Server, client: &str, ip: &str) -> Result<(), String> {
    let url = format!("http://{ip}/");
    let out = s.kubectl(&[
        "exec", client, "--", "timeout", "2", "wget", "-q", "-O", "-", &url,
    ]);
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

fn reaches(s: &Server, client: &str, ip: &str) -> bool {
    fetch(s, client, ip).is_ok()
}

/// Waits until `client` reaches `ip` (the server may not listen yet, a rule may lag).
fn until_reaches(s: &Server, client: &str, ip: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while let Err(e) = fetch(s, client, ip) {
        assert!(
            Instant::now() < deadline,
            "{client} never reached {ip}: {e}\npods: {}\nrules: {:?}\nserver log tail:\n{}",
            s.ok(&["get", "pods", "-o", "wide"]),
            table(),
            crate::common::tail(&s.log(), 30)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Our nftables table, if installed.
fn table() -> Option<String> {
    let out = std::process::Command::new("nft")
        .args(["list", "table", "ip", "r8s-netpol"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Waits until our table holds `rule`.
fn wait_for_rule(rule: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !table().is_some_and(|t| t.contains(rule)) {
        assert!(Instant::now() < deadline, "no rule {rule:?}: {:?}", table());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until our table is gone (no policy left).
fn wait_for_no_rules() {
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Some(t) = table() {
        assert!(
            Instant::now() < deadline,
            "rules outlived the policies: {t}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn network_policies_restrict_access(s: &Server) {
    s.ok(&["create", "deployment", "nginx", "--image=nginx:1.14.2"]);
    s.ok(&["expose", "deployment", "nginx", "--port=80"]);
    // Clients that stay up (and stop at once when deleted).
    for (name, labels) in [
        ("busybox", "run=busybox"),
        ("busybox-access", "access=true"),
    ] {
        s.ok(&[
            "run",
            name,
            "--image=busybox:1.36",
            &format!("--labels={labels}"),
            "--",
            "sh",
            "-c",
            "trap 'exit 0' TERM; sleep 3600 & wait",
        ]);
    }
    s.ok(&["rollout", "status", "deploy/nginx", "--timeout=90s"]);
    s.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/busybox",
        "pod/busybox-access",
        "--timeout=90s",
    ]);
    let pod_ip = s.ok(&[
        "get",
        "pods",
        "-l",
        "app=nginx",
        "-o",
        "jsonpath={.items[0].status.podIP}",
    ]);
    let cluster_ip = s.ok(&["get", "svc", "nginx", "-o", "jsonpath={.spec.clusterIP}"]);
    // No policy: open, and nothing installed.
    assert_eq!(table(), None, "rules without any NetworkPolicy");
    until_reaches(s, "busybox", &pod_ip);
    until_reaches(s, "busybox", &cluster_ip);

    s.ok_stdin(&["apply", "-f", "-"], ACCESS_NGINX);
    wait_for_rule(&format!("ip daddr {pod_ip} jump R8S-NP-IN-"));
    // Without the label: times out, directly and through the Service (the policy sees the
    // client's address, not the proxy's masquerade).
    assert!(!reaches(s, "busybox", &pod_ip), "unlabelled pod got in");
    assert!(
        !reaches(s, "busybox", &cluster_ip),
        "unlabelled pod got in through the Service"
    );
    // With it: allowed both ways.
    assert!(reaches(s, "busybox-access", &pod_ip));
    assert!(reaches(s, "busybox-access", &cluster_ip));
    // Labels are followed: labelling the client lets it in.
    s.ok(&["label", "pod", "busybox", "access=true"]);
    until_reaches(s, "busybox", &cluster_ip);

    // Deleting the policy restores access and removes every rule.
    s.ok(&["label", "pod", "busybox", "access-"]);
    s.ok(&["delete", "networkpolicy", "access-nginx"]);
    wait_for_no_rules();
    assert!(reaches(s, "busybox", &pod_ip));
    assert!(reaches(s, "busybox", &cluster_ip));

    // Egress: the client may only reach nginx pods, first on a port they do not serve
    // (times out), then on 80. Through the ClusterIP that passes only because the rules
    // judge the connection after DNAT, by the nginx pod's address.
    s.ok_stdin(&["apply", "-f", "-"], EGRESS_8080);
    let client_ip = s.ok(&["get", "pod", "busybox", "-o", "jsonpath={.status.podIP}"]);
    wait_for_rule(&format!("ip saddr {client_ip} jump R8S-NP-EG-"));
    assert!(!reaches(s, "busybox", &cluster_ip), "egress not isolated");
    s.ok(&[
        "patch",
        "networkpolicy",
        "busybox-egress",
        "--type=json",
        "-p",
        r#"[{"op": "replace", "path": "/spec/egress/0/ports/0/port", "value": 80}]"#,
    ]);
    until_reaches(s, "busybox", &cluster_ip);
    s.ok(&["delete", "networkpolicy", "busybox-egress"]);
    wait_for_no_rules();
    s.ok(&["delete", "service", "nginx"]);
    s.ok(&["delete", "deployment", "nginx"]);
    s.ok(&["delete", "pod", "busybox", "busybox-access", "--wait=false"]);
}
