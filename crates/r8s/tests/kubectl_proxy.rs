//! e2e: the Kubernetes Basics flow `kubectl proxy` + `curl .../pods/NAME:PORT/proxy/` and
//! `.../services/NAME:PORT/proxy/`, with the real kubectl. No containers run: a "pod"
//! gets 127.0.0.1 as its IP through the status subresource and this test serves its HTTP.

mod common;
use common::{Server, free_port, tail};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `r8s server` like [`Server::start`], but letting pods/proxy reach loopback pod IPs
/// (refused by default, as upstream).
fn start_server() -> Server {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let log = std::fs::File::create(dir.path().join("server.log")).expect("log file");
    let child = Command::new(env!("CARGO_BIN_EXE_r8s"))
        .args(["server", "--data-dir"])
        .arg(dir.path())
        .args(["--bind-address", "127.0.0.1", "--node-ip", "127.0.0.1"])
        .args(["--disable-agent", "--https-listen-port", &port.to_string()])
        .env("R8S_LOG", "info")
        .env("R8S_PROXY_ALLOW_LOOPBACK", "1")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn r8s server");
    let kubeconfig = dir.path().join("kubeconfig.yaml");
    let mut s = Server {
        child,
        dir,
        port,
        kubeconfig,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(status)) = s.child.try_wait() {
            panic!("r8s server exited early ({status}); log:\n{}", s.log());
        }
        if s.kubeconfig.exists() && s.kubectl(&["get", "--raw", "/readyz"]).status.success() {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "r8s server not ready in 30s; log:\n{}",
            s.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The "application": answers every request with its request line; remembers the
/// request heads it got.
fn start_app() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind app");
    let port = listener.local_addr().expect("addr").port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let seen = seen2.clone();
            std::thread::spawn(move || serve(conn, &seen));
        }
    });
    (port, seen)
}

fn serve(conn: TcpStream, seen: &Mutex<Vec<String>>) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(conn);
    loop {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        let request_line = head.lines().next().unwrap_or("").to_string();
        seen.lock().expect("lock").push(head);
        let body = format!("Hello Kubernetes bootcamp! | {request_line}\n");
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        if reader.get_mut().write_all(resp.as_bytes()).is_err() {
            return;
        }
    }
}

/// `kubectl proxy --port=0`, and the port it serves on.
fn kubectl_proxy(s: &Server) -> (Child, u16) {
    let mut child = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&s.kubeconfig)
        .args(["proxy", "--port=0"])
        .env_remove("KUBECONFIG")
        .env("HOME", s.data_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn kubectl proxy");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("kubectl proxy output");
    let port = line
        .trim()
        .strip_prefix("Starting to serve on 127.0.0.1:")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected kubectl proxy output: {line:?}"));
    (child, port)
}

/// A plain HTTP GET to 127.0.0.1:`port`: (status, body).
fn http_get(port: u16, path: &str) -> (u16, String) {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    write!(
        conn,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut resp = String::new();
    conn.read_to_string(&mut resp).expect("read");
    let status = resp
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = resp
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

#[test]
fn kubectl_proxy_reaches_pods_and_services() {
    let s = start_server();
    let (app_port, seen) = start_app();
    let pod = format!(
        r#"{{"apiVersion": "v1", "kind": "Pod",
            "metadata": {{"name": "bootcamp", "labels": {{"app": "bootcamp"}}}},
            "spec": {{"schedulerName": "manual", "containers": [{{"name": "app",
                "image": "busybox", "ports": [{{"containerPort": {app_port}}}]}}]}}}}"#
    );
    s.ok_stdin(&["apply", "-f", "-"], &pod);
    let status = r#"{"status": {"phase": "Running", "podIP": "127.0.0.1",
        "podIPs": [{"ip": "127.0.0.1"}],
        "conditions": [{"type": "Ready", "status": "True"}]}}"#;
    s.ok(&[
        "patch",
        "pod",
        "bootcamp",
        "--subresource=status",
        "--type=merge",
        "-p",
        status,
    ]);

    // Straight through the API server.
    let out = s.ok(&[
        "get",
        "--raw",
        &format!("/api/v1/namespaces/default/pods/bootcamp:{app_port}/proxy/"),
    ]);
    assert_eq!(out, "Hello Kubernetes bootcamp! | GET / HTTP/1.1\n");

    // Through kubectl proxy, as the tutorial's curl does.
    let (mut proxy, proxy_port) = kubectl_proxy(&s);
    let (code, body) = http_get(
        proxy_port,
        &format!("/api/v1/namespaces/default/pods/bootcamp:{app_port}/proxy/hello?x=1"),
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        body,
        "Hello Kubernetes bootcamp! | GET /hello?x=1 HTTP/1.1\n"
    );
    // kubectl authenticates to the API server; none of that reaches the pod.
    let last = seen
        .lock()
        .expect("lock")
        .last()
        .cloned()
        .unwrap_or_default();
    assert!(
        !last.to_ascii_lowercase().contains("authorization:"),
        "{last}"
    );

    // A Service selecting the pod: the endpoints controller publishes its ready address.
    s.ok(&[
        "expose",
        "pod",
        "bootcamp",
        "--name=bootcamp-svc",
        "--port=8080",
        &format!("--target-port={app_port}"),
    ]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let path = "/api/v1/namespaces/default/services/bootcamp-svc:8080/proxy/svc";
    let (code, body) = loop {
        let (code, body) = http_get(proxy_port, path);
        if code == 200 || Instant::now() > deadline {
            break (code, body);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(code, 200, "{body}\nserver log:\n{}", tail(&s.log(), 30));
    assert_eq!(body, "Hello Kubernetes bootcamp! | GET /svc HTTP/1.1\n");

    // A service without endpoints is unavailable.
    s.ok(&["create", "service", "clusterip", "lonely", "--tcp=80:80"]);
    // (Until the endpoints controller writes its empty Endpoints, they are not found.)
    let deadline = Instant::now() + Duration::from_secs(30);
    let (code, body) = loop {
        let (code, body) = http_get(
            proxy_port,
            "/api/v1/namespaces/default/services/lonely:80/proxy/",
        );
        if code != 404 || Instant::now() > deadline {
            break (code, body);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(code, 503, "{body}");
    assert!(
        body.contains("no endpoints available for service"),
        "{body}"
    );
    let _ = proxy.kill();
    let _ = proxy.wait();
}
