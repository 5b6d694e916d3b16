//! e2e: the built-in Ingress controller routes `kubectl create ingress` rules to a
//! Deployment's pods. Included by `node_agent.rs`; the server must run with
//! `--ingress-http-port=<http_port>` (and a free `--ingress-https-port`).

use crate::common::Server;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

/// GET / with `Host: host` from the ingress port on loopback: the raw response.
fn get_via_ingress(port: u16, host: &str) -> String {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut conn) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)) else {
        return String::new();
    };
    conn.set_read_timeout(Some(Duration::from_secs(5))).ok();
    let req = format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    if conn.write_all(req.as_bytes()).is_err() {
        return String::new();
    }
    let mut out = String::new();
    let _ = conn.read_to_string(&mut out);
    out
}

/// A busybox httpd Deployment behind a Service and an Ingress (`kubectl create ingress`,
/// no class: the default `r8s` class is filled in): the Ingress gets the node's address
/// and its host reaches the pod; another host is a 404.
pub fn ingress_routes_to_services(s: &Server, http_port: u16) {
    let class = s.ok(&[
        "get",
        "ingressclass",
        "r8s",
        "-o",
        "jsonpath={.spec.controller}",
    ]);
    assert_eq!(class, "r8s.io/ingress-controller");
    s.ok(&[
        "create",
        "deployment",
        "echo",
        "--image=busybox:1.36",
        "--",
        "sh",
        "-c",
        "mkdir -p /www && echo hello-ingress > /www/index.html && httpd -f -p 8080 -h /www",
    ]);
    s.ok(&["rollout", "status", "deploy/echo", "--timeout=90s"]);
    s.ok(&[
        "expose",
        "deployment",
        "echo",
        "--port=80",
        "--target-port=8080",
    ]);
    s.ok(&["create", "ingress", "echo", "--rule=echo.local/*=echo:80"]);
    let class = s.ok(&[
        "get",
        "ingress",
        "echo",
        "-o",
        "jsonpath={.spec.ingressClassName}",
    ]);
    assert_eq!(class, "r8s", "DefaultIngressClass admission");
    s.ok_until(
        &["get", "ingress", "echo", "-o", "wide"],
        Duration::from_secs(30),
        |out| out.contains("127.0.0.1"),
    );
    // The pod is Ready a moment before httpd listens: retry until the page comes.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let page = get_via_ingress(http_port, "echo.local");
        if page.starts_with("HTTP/1.1 200") && page.contains("hello-ingress") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no page through the ingress: {page:?}\nserver log tail:\n{}",
            crate::common::tail(&s.log(), 40)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let other = get_via_ingress(http_port, "unknown.local");
    assert!(other.starts_with("HTTP/1.1 404"), "{other}");
    s.ok(&["delete", "ingress", "echo"]);
    s.ok(&["delete", "service", "echo"]);
    s.ok(&["delete", "deployment", "echo"]);
}
