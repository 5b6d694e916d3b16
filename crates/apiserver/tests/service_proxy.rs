//! pods/proxy and services/proxy through the API server to a plain HTTP "application" on
//! 127.0.0.1 (the pod IP set through the status subresource): methods, paths, queries,
//! bodies, headers (the caller's credentials stay behind), streaming, redirects and HTML
//! link rewriting, WebSocket-style upgrades, and the error answers.
#![allow(clippy::unwrap_used)]

use axum::body::Body;
use futures::StreamExt;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use r8s_apiserver::testing::TestServer;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use serde_json::{Value, json};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio_rustls::TlsConnector;

/// One request as the application saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    target: String,
    headers: hyper::HeaderMap,
    body: String,
}

struct App {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// Lets `/stream` send its last chunk.
    release: Arc<Notify>,
}

impl App {
    fn last(&self) -> Seen {
        self.seen.lock().unwrap().last().cloned().unwrap()
    }
}

/// The application: records every request and answers by path.
async fn start_app() -> App {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let release = Arc::new(Notify::new());
    let (seen2, release2) = (seen.clone(), release.clone());
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (seen, release) = (seen2.clone(), release2.clone());
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let (seen, release) = (seen.clone(), release.clone());
                async move { Ok::<_, Infallible>(answer(req, seen, release).await) }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service)
                    .with_upgrades(),
            );
        }
    });
    App {
        port,
        seen,
        release,
    }
}

async fn answer(
    mut req: Request<Incoming>,
    seen: Arc<Mutex<Vec<Seen>>>,
    release: Arc<Notify>,
) -> Response<Body> {
    let on_upgrade = hyper::upgrade::on(&mut req);
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(Body::new(body), usize::MAX)
        .await
        .unwrap();
    let target = parts.uri.to_string();
    seen.lock().unwrap().push(Seen {
        method: parts.method.to_string(),
        target: target.clone(),
        headers: parts.headers.clone(),
        body: String::from_utf8_lossy(&body).to_string(),
    });
    let path = parts.uri.path();
    let reply = |code: u16, ctype: &str, body: Body| {
        Response::builder()
            .status(code)
            .header("content-type", ctype)
            .header("access-control-allow-origin", "*")
            .header("x-app", "yes")
            .body(body)
            .unwrap()
    };
    if parts.headers.contains_key("upgrade") {
        tokio::spawn(async move {
            let mut io = TokioIo::new(on_upgrade.await.unwrap());
            let mut buf = [0u8; 64];
            while let Ok(n) = io.read(&mut buf).await {
                if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        });
        return Response::builder()
            .status(101)
            .header("connection", "Upgrade")
            .header("upgrade", "websocket")
            .body(Body::empty())
            .unwrap();
    }
    match path {
        "/stream" => {
            let first = futures::stream::once(async { Ok::<_, Infallible>("first\n") });
            let last = futures::stream::once(async move {
                release.notified().await;
                Ok::<_, Infallible>("last\n")
            });
            reply(200, "text/plain", Body::from_stream(first.chain(last)))
        }
        "/redirect" => Response::builder()
            .status(302)
            .header("location", "/target?x=1")
            .body(Body::empty())
            .unwrap(),
        "/page" => reply(
            200,
            "text/html; charset=utf-8",
            Body::from("<html><a href=\"/docs/\">d</a> <a href=\"rel\">r</a></html>"),
        ),
        "/created" => reply(201, "text/plain", Body::from(format!("got {}", body.len()))),
        _ => reply(
            200,
            "text/plain",
            Body::from(format!("hello from {target}")),
        ),
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// An admin HTTP/1.1 connection (client certificate) to the API server.
async fn connect(server: &TestServer) -> tokio_rustls::client::TlsStream<TcpStream> {
    let pki = &server.running.pki;
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(pki.ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(pki.admin_cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
    let key = PrivateKeyDer::from_pem_slice(pki.admin_key_pem.as_bytes()).unwrap();
    let mut cfg = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = TcpStream::connect(server.running.local_addr).await.unwrap();
    TlsConnector::from(Arc::new(cfg))
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .unwrap()
}

/// One request on a fresh connection (upgrades allowed).
async fn send(
    server: &TestServer,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Response<Incoming> {
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(TokioIo::new(connect(server).await))
            .await
            .unwrap();
    tokio::spawn(conn.with_upgrades());
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "proxy.example:8001");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    sender
        .send_request(req.body(Body::from(body.to_string())).unwrap())
        .await
        .unwrap()
}

async fn text(resp: Response<Incoming>) -> String {
    let bytes = axum::body::to_bytes(Body::new(resp.into_body()), usize::MAX)
        .await
        .unwrap();
    String::from_utf8_lossy(&bytes).to_string()
}

/// (status, body as JSON when it is JSON).
async fn call(server: &TestServer, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let ctype = if method == "PATCH" {
        "application/merge-patch+json"
    } else {
        "application/json"
    };
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let resp = send(server, method, path, &[("content-type", ctype)], &body).await;
    let status = resp.status().as_u16();
    let text = text(resp).await;
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn create(server: &TestServer, path: &str, obj: Value) {
    let (code, body) = call(server, "POST", path, Some(obj)).await;
    assert_eq!(code, 201, "{body}");
}

/// Pod `name` serving on 127.0.0.1 (`ip`), declaring `port` when given.
async fn create_pod(server: &TestServer, name: &str, port: Option<u16>, ip: Option<&str>) {
    let mut container = json!({"name": "app", "image": "busybox"});
    if let Some(p) = port {
        container["ports"] = json!([{"containerPort": p}]);
    }
    create(
        server,
        "/api/v1/namespaces/default/pods",
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
               "spec": {"containers": [container]}}),
    )
    .await;
    if let Some(ip) = ip {
        let status = json!({"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}});
        let (code, body) = call(
            server,
            "PATCH",
            &format!("/api/v1/namespaces/default/pods/{name}/status"),
            Some(status),
        )
        .await;
        assert_eq!(code, 200, "{body}");
    }
}

const PODS: &str = "/api/v1/namespaces/default/pods";
const SVCS: &str = "/api/v1/namespaces/default/services";

#[tokio::test]
async fn pods_and_services_proxy_to_the_application() {
    let server = TestServer::start().await;
    // "Pods" here listen on loopback, which upstream (and r8s by default) refuses.
    r8s_apiserver::proxy::target::set_allow_loopback(true);
    let app = start_app().await;
    let port = app.port;
    create_pod(&server, "web", Some(port), Some("127.0.0.1")).await;

    // GET with a path and query; the caller's credentials stay behind.
    let resp = send(
        &server,
        "GET",
        &format!("{PODS}/web:{port}/proxy/some/path?q=1&q=2"),
        &[
            ("authorization", "Bearer caller-secret"),
            ("x-custom", "kept"),
        ],
        "",
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-app"], "yes");
    assert!(!resp.headers().contains_key("access-control-allow-origin"));
    assert_eq!(text(resp).await, "hello from /some/path?q=1&q=2");
    let seen = app.last();
    assert_eq!(
        (seen.method.as_str(), seen.target.as_str()),
        ("GET", "/some/path?q=1&q=2")
    );
    assert!(
        !seen.headers.contains_key("authorization"),
        "{:?}",
        seen.headers
    );
    assert_eq!(seen.headers["x-custom"], "kept");
    assert_eq!(seen.headers["host"], "proxy.example:8001");
    assert_eq!(
        seen.headers["x-forwarded-uri"],
        format!("{PODS}/web:{port}/proxy/some/path").as_str()
    );

    // No port: the first container port. POST bodies and status codes pass through.
    let resp = send(
        &server,
        "POST",
        &format!("{PODS}/web/proxy/created"),
        &[],
        "hello",
    )
    .await;
    assert_eq!(resp.status(), 201);
    assert_eq!(text(resp).await, "got 5");
    let seen = app.last();
    assert_eq!(
        (seen.method.as_str(), seen.body.as_str()),
        ("POST", "hello")
    );

    // Every proxied method arrives as it was sent, with its body.
    for method in ["PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"] {
        let resp = send(
            &server,
            method,
            &format!("{PODS}/http:web:{port}/proxy/m/"),
            &[],
            "b",
        )
        .await;
        assert_eq!(resp.status(), 200, "{method}");
        let seen = app.last();
        assert_eq!(
            (seen.method.as_str(), seen.target.as_str()),
            (method, "/m/")
        );
        if method != "HEAD" {
            assert_eq!(seen.body, "b", "{method}");
        }
    }

    // The answer streams: the first chunk arrives before the application finishes.
    let resp = send(&server, "GET", &format!("{PODS}/web/proxy/stream"), &[], "").await;
    let mut body = Body::new(resp.into_body()).into_data_stream();
    let first = tokio::time::timeout(Duration::from_secs(10), body.next())
        .await
        .expect("first chunk streamed")
        .unwrap()
        .unwrap();
    assert_eq!(&first[..], b"first\n");
    app.release.notify_one();
    let rest = body.next().await.unwrap().unwrap();
    assert_eq!(&rest[..], b"last\n");

    // Redirects and HTML links stay inside the proxy.
    let resp = send(
        &server,
        "GET",
        &format!("{PODS}/web/proxy/redirect"),
        &[],
        "",
    )
    .await;
    assert_eq!(resp.status(), 302);
    assert_eq!(
        resp.headers()["location"],
        format!("{PODS}/web/proxy/target?x=1").as_str()
    );
    let resp = send(&server, "GET", &format!("{PODS}/web/proxy/page"), &[], "").await;
    assert_eq!(
        text(resp).await,
        format!("<html><a href=\"{PODS}/web/proxy/docs/\">d</a> <a href=\"rel\">r</a></html>")
    );
    // The bare proxy root is redirected to have its slash.
    let resp = send(&server, "GET", &format!("{PODS}/web/proxy?a=b"), &[], "").await;
    assert_eq!(resp.status(), 301);
    assert_eq!(
        resp.headers()["location"],
        format!("{PODS}/web/proxy/?a=b").as_str()
    );

    // An upgrade is relayed both ways.
    let resp = send(
        &server,
        "GET",
        &format!("{PODS}/web/proxy/ws?token=t"),
        &[("connection", "Upgrade"), ("upgrade", "websocket")],
        "",
    )
    .await;
    assert_eq!(resp.status(), 101);
    assert_eq!(app.last().target, "/ws?token=t");
    let mut io = TokioIo::new(hyper::upgrade::on(resp).await.unwrap());
    io.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(10), io.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf, b"ping");

    // Errors: bad id, missing pod, no IP, nothing listening.
    let (code, body) = call(&server, "GET", &format!("{PODS}/a:b:c:d/proxy/"), None).await;
    assert_eq!(
        (code, body["message"].as_str()),
        (400, Some("invalid pod request \"a:b:c:d\""))
    );
    let (code, body) = call(&server, "GET", &format!("{PODS}/ghost/proxy/"), None).await;
    assert_eq!(
        (code, body["message"].as_str()),
        (404, Some("pods \"ghost\" not found"))
    );
    create_pod(&server, "pending", None, None).await;
    let (code, body) = call(&server, "GET", &format!("{PODS}/pending/proxy/"), None).await;
    assert_eq!(
        (code, body["message"].as_str()),
        (400, Some("address not allowed"))
    );
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (code, body) = call(&server, "GET", &format!("{PODS}/web:{closed}/proxy/"), None).await;
    assert_eq!(code, 503, "{body}");
    assert_eq!(
        body["message"],
        format!(
            "error trying to reach service: dial tcp 127.0.0.1:{closed}: connect: connection refused"
        )
    );

    // Services: a port by name or number, then a ready endpoint of the named port.
    create(
        &server,
        SVCS,
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "websvc"},
               "spec": {"ports": [{"name": "http", "port": 80, "targetPort": port}]}}),
    )
    .await;
    let target_ref = json!({"kind": "Pod", "name": "web", "namespace": "default"});
    create(
        &server,
        "/api/v1/namespaces/default/endpoints",
        json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "websvc"},
               "subsets": [{"addresses": [{"ip": "127.0.0.1", "targetRef": target_ref}],
                            "ports": [{"name": "http", "port": port}]}]}),
    )
    .await;
    for id in ["websvc:http", "websvc:80", "http:websvc:http"] {
        let resp = send(
            &server,
            "GET",
            &format!("{SVCS}/{id}/proxy/svc?x=y"),
            &[],
            "",
        )
        .await;
        assert_eq!(resp.status(), 200, "{id}");
        assert_eq!(text(resp).await, "hello from /svc?x=y");
    }
    let resp = send(
        &server,
        "GET",
        &format!("{SVCS}/websvc:http/proxy/redirect"),
        &[],
        "",
    )
    .await;
    assert_eq!(
        resp.headers()["location"],
        format!("{SVCS}/websvc:http/proxy/target?x=1").as_str()
    );
    let (code, body) = call(&server, "GET", &format!("{SVCS}/websvc:81/proxy/"), None).await;
    assert_eq!(
        (code, body["message"].as_str()),
        (503, Some("no service port 81 found for service \"websvc\""))
    );
    // No port given: the unnamed port, which this service does not have.
    let (code, body) = call(&server, "GET", &format!("{SVCS}/websvc/proxy/"), None).await;
    assert_eq!(
        (code, body["message"].as_str()),
        (503, Some("no endpoints available for service \"websvc\""))
    );

    // Not-ready addresses, addresses without a pod, and no Endpoints at all.
    for (name, subset) in [
        (
            "unready",
            json!({"notReadyAddresses": [{"ip": "127.0.0.1", "targetRef": target_ref}],
                            "ports": [{"name": "http", "port": port}]}),
        ),
        (
            "bare",
            json!({"addresses": [{"ip": "127.0.0.1"}], "ports": [{"name": "http", "port": port}]}),
        ),
    ] {
        create(
            &server,
            "/api/v1/namespaces/default/endpoints",
            json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": name},
                   "subsets": [subset]}),
        )
        .await;
        let (code, body) = call(&server, "GET", &format!("{SVCS}/{name}:http/proxy/"), None).await;
        assert_eq!(code, 503, "{name}: {body}");
        // Upstream names the whole id once the Endpoints have subsets.
        let want = format!("no endpoints available for service \"{name}:http\"");
        assert_eq!(body["message"], want, "{name}");
    }
    let (code, body) = call(&server, "GET", &format!("{SVCS}/nothing:http/proxy/"), None).await;
    assert_eq!(
        (code, body["message"].as_str()),
        (404, Some("endpoints \"nothing\" not found"))
    );
}
