//! pods/log, pods/exec (upgrade relay) and nodes/proxy through the API server to a fake
//! kubelet: an HTTPS server with a serving certificate from the cluster CA that requires
//! the API server's client certificate.
#![allow(clippy::unwrap_used)]

use axum::body::Body;
use futures::StreamExt;
use hyper::Request;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use r8s_apiserver::pki::Pki;
use r8s_apiserver::testing::TestServer;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use serde_json::{Value, json};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio_rustls::{TlsAcceptor, TlsConnector};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(pki: &Pki) -> RootCertStore {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(pki.ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    roots
}

fn chain(pem: &str) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap()
}

/// What the fake kubelet saw: request targets and the client certificate's subject.
#[derive(Default)]
struct Seen {
    targets: Vec<String>,
    client_cns: Vec<String>,
}

struct FakeKubelet {
    port: u16,
    seen: Arc<Mutex<Seen>>,
    /// Released by the test to let the log stream send its last chunk.
    release: Arc<Notify>,
}

/// An HTTPS "kubelet" on 127.0.0.1 that demands a client certificate from the CA.
async fn fake_kubelet(pki: &Pki) -> FakeKubelet {
    let ip: IpAddr = "127.0.0.1".parse().unwrap();
    let (cert, key) = pki.sign_serving_cert(&["localhost".into()], &[ip]).unwrap();
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots(pki)), provider())
        .build()
        .unwrap();
    let mut cfg = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            chain(&cert),
            PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
        )
        .unwrap();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(cfg));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let release = Arc::new(Notify::new());
    let (seen2, release2) = (seen.clone(), release.clone());
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, seen, release) = (acceptor.clone(), seen2.clone(), release2.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let cn = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .map(|c| {
                        let (_, x) = x509_parser::parse_x509_certificate(c).unwrap();
                        x.subject()
                            .iter_common_name()
                            .next()
                            .and_then(|a| a.as_str().ok())
                            .unwrap_or("")
                            .to_string()
                    })
                    .unwrap_or_default();
                serve_one(tls, cn, seen, release).await;
            });
        }
    });
    FakeKubelet {
        port,
        seen,
        release,
    }
}

/// Answer one request on a kubelet connection.
async fn serve_one<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    cn: String,
    seen: Arc<Mutex<Seen>>,
    release: Arc<Notify>,
) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte).await.unwrap_or(0) == 0 {
            return;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_string();
    let target = head.split(' ').nth(1).unwrap_or("").to_string();
    let header = |name: &str| {
        head.lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_string())
    };
    {
        let mut seen = seen.lock().unwrap();
        seen.targets.push(target.clone());
        seen.client_cns.push(cn);
    }
    if target.starts_with("/containerLogs/default/web/waiting") {
        let body = "container \"waiting\" in pod \"web\" is waiting to start: ContainerCreating";
        let resp = format!(
            "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let _ = s.write_all(resp.as_bytes()).await;
    } else if target.starts_with("/containerLogs/") {
        let _ = s
            .write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n",
            )
            .await;
        for line in ["line 1\n", "line 2\n"] {
            let _ = s
                .write_all(format!("{:x}\r\n{line}\r\n", line.len()).as_bytes())
                .await;
            let _ = s.flush().await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // The last line only once the test has seen the first ones: proves streaming.
        release.notified().await;
        let _ = s.write_all(b"7\r\nline 3\n\r\n0\r\n\r\n").await;
    } else if target.starts_with("/healthz") {
        let _ = s
            .write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok",
            )
            .await;
    } else if header("upgrade").is_some_and(|u| u.eq_ignore_ascii_case("websocket")) {
        let body = "websocket is not supported";
        let resp = format!(
            "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let _ = s.write_all(resp.as_bytes()).await;
    } else if header("upgrade").is_some() {
        let resp = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n";
        let _ = s.write_all(resp.as_bytes()).await;
        // Echo until the client hangs up.
        let mut buf = [0u8; 1024];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if s.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                    let _ = s.flush().await;
                }
            }
        }
    } else {
        let _ = s
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            .await;
    }
    let _ = s.shutdown().await;
}

/// An admin HTTP/1.1 connection to the API server.
async fn connect(server: &TestServer) -> tokio_rustls::client::TlsStream<TcpStream> {
    let pki = &server.running.pki;
    let mut cfg = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots(pki))
        .with_client_auth_cert(
            chain(&pki.admin_cert_pem),
            PrivateKeyDer::from_pem_slice(pki.admin_key_pem.as_bytes()).unwrap(),
        )
        .unwrap();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = TcpStream::connect(server.running.local_addr).await.unwrap();
    TlsConnector::from(Arc::new(cfg))
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .unwrap()
}

/// Send one request on a fresh connection; the connection allows upgrades.
async fn send(
    server: &TestServer,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> hyper::Response<Incoming> {
    let tls = connect(server).await;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn.with_upgrades());
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let has_type = headers.iter().any(|(k, _)| *k == "content-type");
    let body = match body {
        Some(v) => {
            if !has_type {
                req = req.header("content-type", "application/json");
            }
            Body::from(v.to_string())
        }
        None => Body::empty(),
    };
    sender.send_request(req.body(body).unwrap()).await.unwrap()
}

async fn text(resp: hyper::Response<Incoming>) -> String {
    let bytes = axum::body::to_bytes(Body::new(resp.into_body()), usize::MAX)
        .await
        .unwrap();
    String::from_utf8_lossy(&bytes).to_string()
}

/// A request whose answer is a JSON body: (status, body).
async fn call(server: &TestServer, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let headers: &[(&str, &str)] = if method == "PATCH" {
        &[("content-type", "application/merge-patch+json")]
    } else {
        &[]
    };
    let resp = send(server, method, path, headers, body).await;
    let status = resp.status().as_u16();
    let body = text(resp).await;
    (
        status,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    )
}

/// Node `name` whose kubelet is 127.0.0.1:`port`.
async fn create_node(server: &TestServer, name: &str, port: u16) {
    let (code, body) = call(
        server,
        "POST",
        "/api/v1/nodes",
        Some(json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})),
    )
    .await;
    assert_eq!(code, 201, "{body}");
    let status = json!({"status": {
        "addresses": [
            {"type": "Hostname", "address": name},
            {"type": "InternalIP", "address": "127.0.0.1"},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
    }});
    let (code, body) = call(
        server,
        "PATCH",
        &format!("/api/v1/nodes/{name}/status"),
        Some(status),
    )
    .await;
    assert_eq!(code, 200, "{body}");
}

async fn create_pod(server: &TestServer, name: &str, node: Option<&str>, containers: &[&str]) {
    let list: Vec<Value> = containers
        .iter()
        .map(|c| json!({"name": c, "image": "busybox"}))
        .collect();
    let mut pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": list, "initContainers": [{"name": "init", "image": "busybox"}]},
    });
    if let Some(n) = node {
        pod["spec"]["nodeName"] = json!(n);
    }
    let (code, body) = call(server, "POST", "/api/v1/namespaces/default/pods", Some(pod)).await;
    assert_eq!(code, 201, "{body}");
}

const POD: &str = "/api/v1/namespaces/default/pods";

const SPDY: [(&str, &str); 4] = [
    ("connection", "Upgrade"),
    ("upgrade", "SPDY/3.1"),
    ("x-stream-protocol-version", "v4.channel.k8s.io"),
    ("x-stream-protocol-version", "v3.channel.k8s.io"),
];

#[tokio::test]
async fn logs_exec_and_node_proxy_reach_the_kubelet() {
    let server = TestServer::start().await;
    let kubelet = fake_kubelet(&server.running.pki).await;
    create_node(&server, "n1", kubelet.port).await;
    create_pod(&server, "web", Some("n1"), &["app", "sidecar", "waiting"]).await;
    create_pod(&server, "solo", Some("n1"), &["only"]).await;
    create_pod(&server, "lonely", None, &["app"]).await;

    // Logs stream: the first lines arrive before the kubelet sends the last one.
    let resp = send(
        &server,
        "GET",
        &format!("{POD}/web/log?container=app&follow=true&tailLines=5"),
        &[],
        None,
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/plain");
    let mut stream = Body::new(resp.into_body()).into_data_stream();
    let mut got = String::new();
    while !got.contains("line 2\n") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("log chunk in time")
            .unwrap()
            .unwrap();
        got.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(!got.contains("line 3"));
    kubelet.release.notify_one();
    while let Some(chunk) = stream.next().await {
        got.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
    }
    assert_eq!(got, "line 1\nline 2\nline 3\n");
    {
        let seen = kubelet.seen.lock().unwrap();
        assert_eq!(
            seen.targets.last().unwrap(),
            "/containerLogs/default/web/app?follow=true&tailLines=5"
        );
        assert_eq!(
            seen.client_cns.last().unwrap(),
            "kube-apiserver-kubelet-client"
        );
    }

    // A single-container pod needs no container name.
    let resp = send(&server, "GET", &format!("{POD}/solo/log"), &[], None).await;
    assert_eq!(resp.status(), 200);
    kubelet.release.notify_one();
    assert_eq!(text(resp).await, "line 1\nline 2\nline 3\n");
    assert_eq!(
        kubelet.seen.lock().unwrap().targets.last().unwrap(),
        "/containerLogs/default/solo/only"
    );

    // Kubelet errors become Statuses with the kubelet's code and text.
    let (code, body) = call(
        &server,
        "GET",
        &format!("{POD}/web/log?container=waiting"),
        None,
    )
    .await;
    assert_eq!(code, 400, "{body}");
    assert_eq!(body["reason"], "BadRequest");
    assert_eq!(
        body["message"],
        "container \"waiting\" in pod \"web\" is waiting to start: ContainerCreating"
    );
    let (code, body) = call(
        &server,
        "GET",
        &format!("{POD}/web/log?container=nope"),
        None,
    )
    .await;
    assert_eq!(code, 400);
    assert_eq!(body["message"], "container nope is not valid for pod web");
    let (code, body) = call(&server, "GET", &format!("{POD}/web/log"), None).await;
    assert_eq!(code, 400);
    assert_eq!(body["reason"], "BadRequest");
    assert_eq!(
        body["message"],
        "a container name must be specified for pod web, choose one of: [init app sidecar waiting]"
    );
    let (code, body) = call(
        &server,
        "GET",
        &format!("{POD}/web/log?container=app&tailLines=-1"),
        None,
    )
    .await;
    assert_eq!(code, 422, "{body}");
    let (code, _) = call(&server, "GET", &format!("{POD}/ghost/log"), None).await;
    assert_eq!(code, 404);
    // Not scheduled: nothing to stream (upstream answers 204).
    let resp = send(&server, "GET", &format!("{POD}/lonely/log"), &[], None).await;
    assert_eq!(resp.status(), 204);

    // Exec over SPDY: 101 from the kubelet, then bytes echo through the relay.
    let exec = format!(
        "{POD}/web/exec?container=app&command=sh&command=-c&command=echo%20hi&stdout=true&stderr=true"
    );
    let mut resp = send(&server, "POST", &exec, &SPDY, None).await;
    assert_eq!(resp.status(), 101);
    assert_eq!(
        resp.headers()["x-stream-protocol-version"],
        "v4.channel.k8s.io"
    );
    assert_eq!(resp.headers()["upgrade"], "SPDY/3.1");
    let mut io = TokioIo::new(hyper::upgrade::on(&mut resp).await.unwrap());
    for msg in [&b"hello kubelet"[..], b"second frame"] {
        io.write_all(msg).await.unwrap();
        let mut buf = vec![0u8; msg.len()];
        tokio::time::timeout(Duration::from_secs(10), io.read_exact(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(buf, msg);
    }
    drop(io);
    assert_eq!(
        kubelet.seen.lock().unwrap().targets.last().unwrap(),
        "/exec/default/web/app?command=sh&command=-c&command=echo+hi&error=1&output=1&stderr=1&stdout=1"
    );

    // A WebSocket attempt the kubelet refuses comes back as that non-101 answer.
    let ws = [
        ("connection", "Upgrade"),
        ("upgrade", "websocket"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("sec-websocket-version", "13"),
        ("sec-websocket-protocol", "v5.channel.k8s.io"),
    ];
    let resp = send(
        &server,
        "GET",
        &format!("{POD}/solo/exec?command=ls&stdout=true"),
        &ws,
        None,
    )
    .await;
    assert_eq!(resp.status(), 400);
    assert_eq!(text(resp).await, "websocket is not supported");

    // Attach and port-forward take the same road.
    let mut resp = send(
        &server,
        "POST",
        &format!("{POD}/solo/attach?stdin=true&stdout=true&tty=true"),
        &SPDY,
        None,
    )
    .await;
    assert_eq!(resp.status(), 101);
    drop(hyper::upgrade::on(&mut resp).await.unwrap());
    let mut resp = send(
        &server,
        "POST",
        &format!("{POD}/web/portforward?ports=80"),
        &SPDY,
        None,
    )
    .await;
    assert_eq!(resp.status(), 101);
    drop(hyper::upgrade::on(&mut resp).await.unwrap());
    {
        let seen = kubelet.seen.lock().unwrap();
        let n = seen.targets.len();
        assert_eq!(
            seen.targets[n - 2],
            "/attach/default/solo/only?input=1&output=1&stdin=1&stdout=1&tty=1"
        );
        assert_eq!(seen.targets[n - 1], "/portForward/default/web?port=80");
    }

    // Errors before the kubelet is contacted.
    let (code, body) = call(
        &server,
        "POST",
        &format!("{POD}/web/exec?command=ls&stdout=true"),
        None,
    )
    .await;
    assert_eq!(code, 400);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("a container name must be specified")
    );
    let resp = send(
        &server,
        "POST",
        &format!("{POD}/lonely/exec?command=ls&stdout=true"),
        &SPDY,
        None,
    )
    .await;
    assert_eq!(resp.status(), 400);
    let body: Value = serde_json::from_str(&text(resp).await).unwrap();
    assert_eq!(body["message"], "pod lonely does not have a host assigned");
    let (code, body) = call(
        &server,
        "POST",
        &format!("{POD}/solo/exec?command=ls&stdout=true"),
        None,
    )
    .await;
    assert_eq!(code, 400);
    assert_eq!(body["message"], "Upgrade request required");
    let resp = send(
        &server,
        "POST",
        &format!("{POD}/solo/exec?stdout=true"),
        &SPDY,
        None,
    )
    .await;
    assert_eq!(resp.status(), 400);
    let resp = send(
        &server,
        "POST",
        &format!("{POD}/solo/exec?command=ls"),
        &SPDY,
        None,
    )
    .await;
    assert_eq!(resp.status(), 400);
    let (code, _) = call(&server, "PUT", &format!("{POD}/solo/exec"), None).await;
    assert_eq!(code, 405);
    let (code, _) = call(
        &server,
        "POST",
        &format!("{POD}/ghost/exec?command=ls&stdout=true"),
        None,
    )
    .await;
    assert_eq!(code, 404);

    // nodes/proxy forwards to the kubelet.
    let resp = send(&server, "GET", "/api/v1/nodes/n1/proxy/healthz", &[], None).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(text(resp).await, "ok");
}

#[tokio::test]
async fn unreachable_kubelet_is_an_error_not_a_hang() {
    let server = TestServer::start().await;
    // A port nobody listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    create_node(&server, "gone", port).await;
    create_pod(&server, "p", Some("gone"), &["app"]).await;
    let started = std::time::Instant::now();
    let resp = send(
        &server,
        "POST",
        &format!("{POD}/p/exec?command=ls&stdout=true"),
        &SPDY,
        None,
    )
    .await;
    assert_eq!(resp.status(), 500);
    let body: Value = serde_json::from_str(&text(resp).await).unwrap();
    let msg = body["message"].as_str().unwrap();
    assert!(msg.contains("error dialing backend"), "{msg}");
    let (code, body) = call(&server, "GET", &format!("{POD}/p/log"), None).await;
    assert_eq!(code, 500, "{body}");
    assert!(started.elapsed() < Duration::from_secs(10));
}
