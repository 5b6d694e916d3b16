//! e2e: `r8s server` with its node agent runs real containers on its own containerd; the
//! real kubectl drives it. Needs root, containerd, runc and the CNI plugins (CI installs
//! them). One test function, since every agent uses the same bridge and pod CIDR.

mod common;
use common::Server;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

/// GET / from a pod. A pod without a readiness probe is Ready as soon as its container
/// started, a moment before the server inside listens (as upstream), so connecting retries.
fn http_get(ip: &str, port: u16) -> String {
    let addr: std::net::SocketAddr = format!("{ip}:{port}").parse().expect("pod address");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut conn = loop {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
            Ok(c) => break c,
            Err(e) if Instant::now() > deadline => panic!("connect to pod {addr}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    conn.set_read_timeout(Some(Duration::from_secs(5))).ok();
    conn.write_all(b"GET / HTTP/1.0\r\nHost: pod\r\n\r\n")
        .expect("send");
    let mut body = String::new();
    let _ = conn.read_to_string(&mut body);
    body
}

#[test]
fn seed_nginx_pod_and_a_deployment_run_on_containerd() {
    let mut s = Server::start_with_agent();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let out = s.kubectl(&[
            "get",
            "nodes",
            "-o",
            "jsonpath={.items[*].status.conditions[?(@.type==\"Ready\")].status}",
        ]);
        if String::from_utf8_lossy(&out.stdout).contains("True") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node never became Ready; log:\n{}\ncontainerd log:\n{}",
            common::tail(&s.log(), 40),
            common::tail(
                &std::fs::read_to_string(s.data_dir().join("agent/containerd/containerd.log"))
                    .unwrap_or_default(),
                20
            )
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let fixture = format!(
        "{}/tests/fixtures/nginx-pod.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    s.ok(&["apply", "-f", &fixture]);
    s.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/nginx-pod",
        "--timeout=90s",
    ]);
    let ip = s.ok(&["get", "pod", "nginx-pod", "-o", "jsonpath={.status.podIP}"]);
    assert!(ip.starts_with("10.42."), "pod IP {ip}");
    let page = http_get(&ip, 80);
    assert!(page.contains("200 OK") && page.contains("nginx"), "{page}");

    s.ok(&[
        "create",
        "deployment",
        "web",
        "--image=nginx:1.14.2",
        "--replicas=2",
    ]);
    s.ok(&["rollout", "status", "deploy/web", "--timeout=90s"]);
    let ips = s.ok(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "-o",
        "jsonpath={.items[*].status.podIP}",
    ]);
    for ip in ips.split_whitespace() {
        assert!(http_get(ip, 80).contains("200 OK"));
    }
    // A missing image never pulled is reported as upstream does.
    s.ok(&[
        "run",
        "nope",
        "--image=does-not-exist:1",
        "--image-pull-policy=Never",
    ]);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let reason = s.ok(&[
            "get",
            "pod",
            "nope",
            "-o",
            "jsonpath={.status.containerStatuses[0].state.waiting.reason}",
        ]);
        if reason == "ErrImageNeverPull" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no ErrImageNeverPull: {reason:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }

    s.ok(&["delete", "deployment", "web"]);
    s.ok(&["delete", "pod", "nginx-pod", "nope", "--timeout=60s"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !s.ok(&["get", "pods", "-o", "name"]).trim().is_empty() {
        assert!(Instant::now() < deadline, "pods not cleaned up");
        std::thread::sleep(Duration::from_millis(250));
    }
    s.terminate();
}
