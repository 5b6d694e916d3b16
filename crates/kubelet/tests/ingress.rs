//! The Ingress controller against an in-process API server: two HTTP backends on
//! loopback behind hand-made Services and EndpointSlices, Ingresses of our class (by name,
//! by default, by the legacy annotation) and of another class, requests by host and path,
//! the default backend, 404 and 503, request relaying (headers, query, body, Upgrade), TLS
//! by SNI, and the status address. Needs no root: everything stays on 127.0.0.0/8.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::networking::v1::Ingress;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams};
use r8s_apiserver::testing::TestServer;
use r8s_kubelet::ingress::{self, IngressConfig, Listeners};
use rustls::pki_types::ServerName;
use serde_json::{Value, json};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const WAIT: Duration = Duration::from_secs(10);

async fn client(server: &TestServer) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(&server.kubeconfig).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    kube::Client::try_from(cfg).unwrap()
}

/// A backend answering every request with JSON describing it; `Upgrade: echo` switches
/// the connection to echoing bytes.
async fn backend(name: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let service = hyper::service::service_fn(move |req| answer(name, req));
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades(),
            );
        }
    });
    addr
}

async fn answer(
    name: &'static str,
    mut req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    if req.headers().get("upgrade").is_some_and(|u| u == "echo") {
        let upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            let mut io = TokioIo::new(upgrade.await.unwrap());
            let mut buf = [0u8; 64];
            while let Ok(n) = io.read(&mut buf).await {
                if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        });
        let mut resp = Response::new(Full::new(Bytes::new()));
        *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        resp.headers_mut()
            .insert("upgrade", "echo".parse().unwrap());
        resp.headers_mut()
            .insert("connection", "upgrade".parse().unwrap());
        return Ok(resp);
    }
    let header = |h: &str| {
        req.headers()
            .get(h)
            .map(|v| v.to_str().unwrap().to_string())
    };
    let mut about = json!({
        "name": name,
        "method": req.method().as_str(),
        "uri": req.uri().to_string(),
        "host": header("host"),
        "xff": header("x-forwarded-for"),
        "proto": header("x-forwarded-proto"),
        "fwd_host": header("x-forwarded-host"),
        "custom": header("x-custom"),
    });
    let body = req.into_body().collect().await?.to_bytes();
    about["body"] = json!(String::from_utf8_lossy(&body));
    Ok(Response::new(Full::new(Bytes::from(about.to_string()))))
}

/// One response: status code and body.
struct Reply {
    code: u16,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    /// The backend that answered ("" if none did).
    fn name(&self) -> String {
        self.json()["name"].as_str().unwrap_or("").to_string()
    }
}

fn request(method: &str, host: &str, path: &str, body: &str) -> String {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\
         X-Forwarded-For: 6.6.6.6\r\nX-Custom: kept\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn parse(raw: &[u8]) -> Reply {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Reply {
        code,
        body: body.to_string(),
    }
}

async fn exchange<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut s: S,
    req: &str,
) -> Reply {
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut raw))
        .await
        .expect("response in time")
        .unwrap();
    parse(&raw)
}

async fn http(addr: SocketAddr, method: &str, host: &str, path: &str, body: &str) -> Reply {
    let stream = TcpStream::connect(addr).await.unwrap();
    exchange(stream, &request(method, host, path, body)).await
}

async fn get(addr: SocketAddr, host: &str, path: &str) -> Reply {
    http(addr, "GET", host, path, "").await
}

/// GET over TLS with `sni`, trusting only `root_pem`.
async fn https_get(addr: SocketAddr, sni: &str, root_pem: &str) -> Result<Reply, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(root_pem.as_bytes()).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let stream = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from(sni.to_string()).unwrap();
    let tls = connector
        .connect(name, stream)
        .await
        .map_err(|e| e.to_string())?;
    Ok(exchange(tls, &request("GET", sni, "/", "")).await)
}

/// Poll `f` until `ok` holds for its result (bounded by [`WAIT`]).
async fn until<T: std::fmt::Debug, F: std::future::Future<Output = T>>(
    what: &str,
    mut f: impl FnMut() -> F,
    ok: impl Fn(&T) -> bool,
) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        let v = f().await;
        if ok(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: last {v:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.code, self.body)
    }
}

async fn create(client: &kube::Client, path: &str, body: Value) {
    let req = hyper::http::Request::builder()
        .method("POST")
        .uri(path)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&body).unwrap())
        .unwrap();
    let resp: Value = client.request(req).await.expect(path);
    assert!(resp["metadata"]["name"].is_string(), "{resp}");
}

const CORE: &str = "/api/v1/namespaces/default";
const SLICES: &str = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices";
const INGRESSES: &str = "/apis/networking.k8s.io/v1/namespaces/default/ingresses";

/// A Service without selector with one port, and an EndpointSlice per target address.
async fn service(client: &kube::Client, name: &str, port: Value, targets: &[(SocketAddr, bool)]) {
    create(
        client,
        &format!("{CORE}/services"),
        json!({"metadata": {"name": name}, "spec": {"ports": [port.clone()]}}),
    )
    .await;
    for (i, (addr, ready)) in targets.iter().enumerate() {
        create(
            client,
            SLICES,
            json!({
                "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": format!("{name}-{i}"),
                             "labels": {"kubernetes.io/service-name": name}},
                "addressType": "IPv4",
                "endpoints": [{"addresses": [addr.ip().to_string()],
                               "conditions": {"ready": ready}}],
                "ports": [{"name": port["name"], "port": addr.port(), "protocol": "TCP"}],
            }),
        )
        .await;
    }
}

fn path(p: &str, kind: &str, service: &str, port: Value) -> Value {
    json!({"path": p, "pathType": kind, "backend": {"service": {"name": service, "port": port}}})
}

fn rule(host: &str, paths: Vec<Value>) -> Value {
    json!({"host": host, "http": {"paths": paths}})
}

fn status_ips(ing: &Ingress) -> Vec<String> {
    ing.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|l| l.iter().filter_map(|e| e.ip.clone()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn ingresses_route_to_services() {
    let server = TestServer::start().await;
    let client = client(&server).await;
    let (a, b) = (backend("a").await, backend("b").await);
    // A port where nothing listens (bound, then closed).
    let dead = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };

    let cfg = IngressConfig {
        bind_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
        ..IngressConfig::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0, 0)
    };
    let listeners = Listeners::bind(&cfg).await;
    let (web, secure) = (
        listeners.http_addr().unwrap(),
        listeners.https_addr().unwrap(),
    );
    let controller = tokio::spawn(ingress::serve(client.clone(), cfg, listeners));
    // Nothing configured yet: every request is a 404.
    let r = get(web, "a.example.com", "/").await;
    assert_eq!((r.code, r.body.as_str()), (404, "404 page not found\n"));

    ingress::ensure_class(&client).await;
    create(
        &client,
        "/apis/networking.k8s.io/v1/ingressclasses",
        json!({"metadata": {"name": "other"}, "spec": {"controller": "example.com/other"}}),
    )
    .await;
    let port80 = json!({"name": "http", "port": 80, "targetPort": 8080});
    service(&client, "svc-a", port80.clone(), &[(a, true)]).await;
    service(
        &client,
        "svc-b",
        json!({"name": "web", "port": 8000, "targetPort": 8080}),
        &[(b, true)],
    )
    .await;
    service(&client, "both", port80.clone(), &[(a, true), (b, true)]).await;
    service(&client, "down", port80.clone(), &[(a, false)]).await;
    service(&client, "dead", port80.clone(), &[(dead, true)]).await;

    let cert_key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["secure.example.com".into()])
        .unwrap()
        .self_signed(&cert_key)
        .unwrap()
        .pem();
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    create(
        &client,
        &format!("{CORE}/secrets"),
        json!({"metadata": {"name": "tls-secure"}, "type": "kubernetes.io/tls",
               "data": {"tls.crt": b64(&cert), "tls.key": b64(&cert_key.serialize_pem())}}),
    )
    .await;

    let n80 = json!({"number": 80});
    create(
        &client,
        INGRESSES,
        json!({"metadata": {"name": "main"}, "spec": {
            "ingressClassName": "r8s",
            "tls": [{"hosts": ["secure.example.com"], "secretName": "tls-secure"}],
            "rules": [
                rule("a.example.com", vec![
                    path("/", "Prefix", "svc-a", n80.clone()),
                    path("/b", "Prefix", "svc-b", json!({"name": "web"})),
                    path("/exact", "Exact", "svc-b", json!({"number": 8000})),
                ]),
                rule("*.wild.example.com", vec![path("/", "Prefix", "svc-b", json!({"name": "web"}))]),
                rule("secure.example.com", vec![path("/", "Prefix", "svc-a", n80.clone())]),
                rule("both.example.com", vec![path("/", "Prefix", "both", n80.clone())]),
                rule("down.example.com", vec![path("/", "Prefix", "down", n80.clone())]),
                rule("dead.example.com", vec![path("/", "Prefix", "dead", n80.clone())]),
                rule("missing.example.com", vec![path("/", "Prefix", "nosuch", n80.clone())]),
            ],
        }}),
    )
    .await;
    create(
        &client,
        INGRESSES,
        json!({"metadata": {"name": "legacy",
                            "annotations": {"kubernetes.io/ingress.class": "r8s"}},
               "spec": {"rules": [rule("legacy.example.com",
                                       vec![path("/", "Prefix", "svc-b", json!({"number": 8000}))])]}}),
    )
    .await;
    create(
        &client,
        INGRESSES,
        json!({"metadata": {"name": "ignored"}, "spec": {"ingressClassName": "other",
               "rules": [rule("ignored.example.com", vec![path("/", "Prefix", "svc-a", n80.clone())])]}}),
    )
    .await;
    // No class: admission gives it the default class, ours.
    create(
        &client,
        INGRESSES,
        json!({"metadata": {"name": "fallback"}, "spec": {
            "defaultBackend": {"service": {"name": "svc-a", "port": {"number": 80}}}}}),
    )
    .await;

    // Routing by host and path.
    let r = until(
        "a.example.com routed",
        || get(web, "a.example.com", "/"),
        |r| r.code == 200,
    )
    .await;
    assert_eq!(r.name(), "a");
    // The Ingresses arrive one by one: wait for the last created (the default backend).
    until(
        "default backend routed",
        || get(web, "unknown.example.com", "/"),
        |r| r.code == 200,
    )
    .await;
    let name = |host: &'static str, p: &'static str| async move { get(web, host, p).await.name() };
    assert_eq!(name("a.example.com", "/bb").await, "a");
    assert_eq!(name("a.example.com", "/b").await, "b");
    assert_eq!(name("a.example.com", "/exact").await, "b");
    assert_eq!(name("a.example.com", "/exact/").await, "a");
    assert_eq!(name("x.wild.example.com", "/").await, "b");
    assert_eq!(name("LEGACY.example.com:80", "/").await, "b");
    // Two labels under the wildcard, unknown hosts, other classes: the default backend.
    assert_eq!(name("y.x.wild.example.com", "/").await, "a");
    assert_eq!(name("unknown.example.com", "/").await, "a");
    assert_eq!(name("ignored.example.com", "/").await, "a");
    // Round robin over both endpoints.
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..6 {
        seen.insert(name("both.example.com", "/").await);
    }
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), ["a", "b"]);
    // No ready endpoint, no Service: 503; an endpoint refusing connections: 502.
    assert_eq!(get(web, "down.example.com", "/").await.code, 503);
    assert_eq!(get(web, "missing.example.com", "/").await.code, 503);
    assert_eq!(get(web, "dead.example.com", "/").await.code, 502);

    // What the backend sees: method, path and query, Host, body, forwarded headers.
    let r = http(web, "POST", "a.example.com", "/b/c?x=1&y=2", "hello")
        .await
        .json();
    assert_eq!(r["name"], "b");
    assert_eq!(r["method"], "POST");
    assert_eq!(r["uri"], "/b/c?x=1&y=2");
    assert_eq!(r["host"], "a.example.com");
    assert_eq!(r["body"], "hello");
    assert_eq!(r["xff"], "127.0.0.1");
    assert_eq!(r["proto"], "http");
    assert_eq!(r["fwd_host"], "a.example.com");
    assert_eq!(r["custom"], "kept");

    // Upgrade: after the 101 the connection relays bytes both ways.
    let mut s = TcpStream::connect(web).await.unwrap();
    s.write_all(
        b"GET /ws HTTP/1.1\r\nHost: a.example.com\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        s.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    s.write_all(b"ping").await.unwrap();
    let mut echo = [0u8; 4];
    tokio::time::timeout(WAIT, s.read_exact(&mut echo))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&echo, b"ping");

    // TLS: the Secret's certificate for its host, the default one for others.
    let r = until(
        "TLS certificate served",
        || https_get(secure, "secure.example.com", &cert),
        |r| r.is_ok(),
    )
    .await
    .unwrap();
    assert_eq!(r.code, 200);
    assert_eq!(r.json()["name"], "a");
    assert_eq!(r.json()["proto"], "https");
    let other = https_get(secure, "a.example.com", &cert).await;
    assert!(
        other.as_ref().is_err_and(|e| e.contains("certificate")),
        "{:?}",
        other.map(|r| r.code)
    );

    // Status: our address on the Ingresses we serve only.
    let ingresses: Api<Ingress> = Api::namespaced(client.clone(), "default");
    for served in ["main", "legacy", "fallback"] {
        until(
            "status address",
            || async { status_ips(&ingresses.get(served).await.unwrap()) },
            |ips| ips == &["127.0.0.1"],
        )
        .await;
    }
    assert!(status_ips(&ingresses.get("ignored").await.unwrap()).is_empty());

    // Changes apply: a legacy annotation naming another class takes the Ingress (and our
    // address) away; without a default backend unknown hosts are 404.
    let other = json!({"metadata": {"annotations": {"kubernetes.io/ingress.class": "other"}}});
    ingresses
        .patch("legacy", &PatchParams::default(), &Patch::Merge(&other))
        .await
        .unwrap();
    until(
        "address taken off",
        || async { status_ips(&ingresses.get("legacy").await.unwrap()) },
        Vec::is_empty,
    )
    .await;
    assert_eq!(name("legacy.example.com", "/").await, "a");
    ingresses
        .delete("fallback", &DeleteParams::default())
        .await
        .unwrap();
    let r = until(
        "no default backend",
        || get(web, "unknown.example.com", "/"),
        |r| r.code == 404,
    )
    .await;
    assert_eq!(r.body, "404 page not found\n");
    assert_eq!(get(web, "ignored.example.com", "/").await.code, 404);
    // A new endpoint is picked up.
    create(
        &client,
        SLICES,
        json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "down-up", "labels": {"kubernetes.io/service-name": "down"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": true}}],
            "ports": [{"name": "http", "port": b.port()}],
        }),
    )
    .await;
    let r = until(
        "endpoint ready",
        || get(web, "down.example.com", "/"),
        |r| r.code == 200,
    )
    .await;
    assert_eq!(r.name(), "b");
    controller.abort();
}
