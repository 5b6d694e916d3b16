//! The kubelet's HTTPS server against a real containerd: client-certificate auth,
//! container logs (plain, tail, timestamps, previous, follow), exec over WebSocket
//! (`v4.channel.k8s.io` through containerd's streaming server), the v5-only refusal that
//! makes kubectl fall back to SPDY, error codes, and the port in the Node status.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, PostParams};
use r8s_apiserver::testing::TestServer;
use r8s_kubelet::{Kubelet, KubeletConfig, ServerTls};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::json;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// Bridge `r8st40`, pod subnet 10.199.40.0/24.
const NET: u8 = 40;
const WAIT: Duration = Duration::from_secs(60);

/// A throwaway CA with a serving certificate for 127.0.0.1/localhost and a client
/// certificate.
struct Pki {
    ca_pem: String,
    server: (String, String),
    client: (String, String),
}

fn pki() -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name
        .push(DnType::CommonName, "kubelet-test-ca");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
    let issuer = Issuer::new(ca, ca_key);
    let leaf = |sans: Vec<String>, cn: &str, usage: ExtendedKeyUsagePurpose| {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(sans).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.extended_key_usages = vec![usage];
        let cert = p.signed_by(&key, &issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    };
    Pki {
        server: leaf(
            vec!["127.0.0.1".into(), "localhost".into()],
            "kubelet",
            ExtendedKeyUsagePurpose::ServerAuth,
        ),
        client: leaf(
            vec![],
            "kube-apiserver-kubelet-client",
            ExtendedKeyUsagePurpose::ClientAuth,
        ),
        ca_pem,
    }
}

fn tls_client(pki: &Pki, with_cert: bool) -> TlsConnector {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(pki.ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let b = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut cfg = if with_cert {
        let chain = CertificateDer::pem_slice_iter(pki.client.0.as_bytes())
            .map(Result::unwrap)
            .collect();
        let key = PrivateKeyDer::from_pem_slice(pki.client.1.as_bytes()).unwrap();
        b.with_client_auth_cert(chain, key).unwrap()
    } else {
        b.with_no_client_auth()
    };
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    TlsConnector::from(Arc::new(cfg))
}

struct Harness {
    _server: TestServer,
    client: kube::Client,
    kubelet: Option<Kubelet>,
    dir: tempfile::TempDir,
    bridge: String,
    node: String,
    addr: SocketAddr,
    pki: Pki,
}

impl Harness {
    async fn start() -> Harness {
        let server = TestServer::start().await;
        let kc = kube::config::Kubeconfig::read_from(&server.kubeconfig).unwrap();
        let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .unwrap();
        let client = kube::Client::try_from(cfg).unwrap();
        let dir = tempfile::Builder::new()
            .prefix("r8s-kubelet-server")
            .tempdir()
            .unwrap();
        let node = format!("node-{NET}");
        let bridge = format!("r8st{NET}");
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &bridge])
            .output();
        let pki = pki();
        let mut kcfg = KubeletConfig::new(
            &node,
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            dir.path().to_path_buf(),
        );
        kcfg.cluster_cidr = format!("10.199.{NET}.0/24");
        kcfg.cni_bridge = bridge.clone();
        kcfg.server_addr = Some("127.0.0.1:0".parse().unwrap());
        kcfg.server_tls = Some(ServerTls {
            cert_pem: pki.server.0.clone(),
            key_pem: pki.server.1.clone(),
            client_ca_pem: pki.ca_pem.clone(),
        });
        let kubelet = Kubelet::start(client.clone(), kcfg).await.unwrap();
        let addr = kubelet.config.server_addr.unwrap();
        assert_ne!(addr.port(), 0);
        Harness {
            _server: server,
            client,
            kubelet: Some(kubelet),
            dir,
            bridge,
            node,
            addr,
            pki,
        }
    }

    async fn stop(&mut self) {
        if let Some(k) = self.kubelet.take() {
            k.shutdown(true).await;
        }
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &self.bridge])
            .output();
        common::unmount_under(self.dir.path());
    }

    async fn tls(&self, with_cert: bool) -> std::io::Result<TlsStream<tokio::net::TcpStream>> {
        let tcp = tokio::net::TcpStream::connect(self.addr).await?;
        let name = ServerName::try_from("127.0.0.1").unwrap();
        tls_client(&self.pki, with_cert).connect(name, tcp).await
    }

    /// Sends a GET over a fresh connection and returns the response (body unread).
    async fn get_response(&self, path: &str) -> Response<Incoming> {
        let tls = self.tls(true).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .unwrap();
        tokio::spawn(conn);
        let req = Request::get(path)
            .header("host", "127.0.0.1")
            .body(Empty::<Bytes>::new())
            .unwrap();
        sender.send_request(req).await.unwrap()
    }

    async fn get(&self, path: &str) -> (StatusCode, String) {
        let resp = self.get_response(path).await;
        let status = resp.status();
        let body = tokio::time::timeout(Duration::from_secs(20), resp.into_body().collect())
            .await
            .expect("body timed out")
            .unwrap()
            .to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    async fn create_pod(&self, mut v: serde_json::Value) {
        v["apiVersion"] = "v1".into();
        v["kind"] = "Pod".into();
        v["spec"]["nodeName"] = self.node.clone().into();
        let pod: Pod = serde_json::from_value(v).unwrap();
        Api::<Pod>::namespaced(self.client.clone(), "default")
            .create(&PostParams::default(), &pod)
            .await
            .unwrap();
    }

    async fn wait_pod(&self, name: &str, pred: impl Fn(&Pod) -> bool) -> Pod {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), "default");
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            match pods.get(name).await {
                Ok(p) if pred(&p) => return p,
                _ => {}
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("pod {name} did not reach the expected state");
    }

    /// Runs a command in the pod's container through CRI (not the server under test).
    async fn cri_exec(&self, pod: &Pod, container: &str, cmd: &[&str]) {
        let id = common::container_status(pod, container)
            .and_then(|c| c.container_id.clone())
            .unwrap();
        let id = id.trim_start_matches("containerd://");
        let cri = self.kubelet.as_ref().unwrap().cri.clone();
        let out = cri
            .exec_sync(id, cmd.iter().map(|s| s.to_string()).collect(), 10)
            .await
            .unwrap();
        assert_eq!(out.exit_code, 0, "{}", String::from_utf8_lossy(&out.stderr));
    }

    /// A WebSocket handshake over TLS with the client certificate.
    async fn websocket(
        &self,
        path: &str,
        protocols: &str,
    ) -> Result<
        (
            tokio_tungstenite::WebSocketStream<TlsStream<tokio::net::TcpStream>>,
            Option<String>,
        ),
        tokio_tungstenite::tungstenite::Error,
    > {
        let tls = self.tls(true).await.unwrap();
        let mut req = format!("wss://127.0.0.1:{}{path}", self.addr.port())
            .into_client_request()
            .unwrap();
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", protocols.parse().unwrap());
        let (ws, resp) = tokio_tungstenite::client_async(req, tls).await?;
        let proto = resp
            .headers()
            .get("Sec-WebSocket-Protocol")
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        Ok((ws, proto))
    }
}

/// Runs the body and always cleans up (re-raising a panic afterwards).
async fn run<F, Fut>(body: F)
where
    F: FnOnce(Arc<Harness>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    use futures::FutureExt;
    if !common::supported() {
        return;
    }
    let h = Arc::new(Harness::start().await);
    let result = std::panic::AssertUnwindSafe(body(h.clone()))
        .catch_unwind()
        .await;
    match Arc::try_unwrap(h) {
        Ok(mut h) => h.stop().await,
        Err(_) => panic!("harness still shared after the test body"),
    }
    if let Err(p) = result {
        std::panic::resume_unwind(p);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_exec_and_auth() {
    run(|h| async move {
        // TLS: healthz with the client certificate; no certificate, no HTTP.
        assert_eq!(h.get("/healthz").await, (StatusCode::OK, "ok".to_string()));
        let refused = match h.tls(false).await {
            Err(_) => true,
            Ok(mut s) => {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
                let mut buf = Vec::new();
                let r = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
                !matches!(r, Ok(Ok(_))) || buf.is_empty()
            }
        };
        assert!(refused, "a client without a certificate got an answer");

        // The Node reports the bound port.
        let nodes: Api<Node> = Api::all(h.client.clone());
        let deadline = Instant::now() + WAIT;
        loop {
            let n = nodes.get(&h.node).await.unwrap();
            let port = n
                .status
                .and_then(|s| s.daemon_endpoints)
                .and_then(|d| d.kubelet_endpoint)
                .map(|e| e.port);
            if port == Some(i32::from(h.addr.port())) {
                break;
            }
            assert!(Instant::now() < deadline, "node reports port {port:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }

        h.create_pod(json!({
            "metadata": {"name": "talker"},
            "spec": {
                "terminationGracePeriodSeconds": 1,
                "containers": [{"name": "talk", "image": "busybox:1.36", "command": ["sh", "-c",
                    "echo err-line >&2; sleep 0.3; for i in 1 2 3; do echo line-$i; done; \
                     trap 'exit 0' TERM; while true; do if [ -f /tmp/more ]; then echo more-line; rm /tmp/more; fi; sleep 0.1; done"]},
                    {"name": "web", "image": "nginx:1.14.2"}]
            }
        }))
        .await;
        let pod = h.wait_pod("talker", common::ready).await;
        let base = "/containerLogs/default/talker/talk";
        let want = "err-line\nline-1\nline-2\nline-3\n";
        let deadline = Instant::now() + WAIT;
        loop {
            let (s, body) = h.get(base).await;
            if s == StatusCode::OK && body == want {
                break;
            }
            assert!(Instant::now() < deadline, "logs: {s} {body:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            h.get(&format!("{base}?tailLines=2")).await,
            (StatusCode::OK, "line-2\nline-3\n".to_string())
        );
        assert_eq!(
            h.get(&format!("{base}?limitBytes=12")).await,
            (StatusCode::OK, "err-line\nlin".to_string())
        );
        let (s, stamped) = h.get(&format!("{base}?timestamps=true&tailLines=3")).await;
        assert_eq!(s, StatusCode::OK);
        let lines: Vec<&str> = stamped.lines().collect();
        assert_eq!(lines.len(), 3, "{stamped}");
        for (l, want) in lines.iter().zip(["line-1", "line-2", "line-3"]) {
            let (ts, msg) = l.split_once(' ').unwrap();
            assert_eq!(msg, want);
            assert!(ts.ends_with('Z'), "{ts}");
            chrono::DateTime::parse_from_rfc3339(ts).unwrap();
        }
        let (s, body) = h.get(&format!("{base}?previous=true")).await;
        assert_eq!(
            (s, body.as_str()),
            (
                StatusCode::BAD_REQUEST,
                r#"previous terminated container "talk" in pod "talker" not found"#
            )
        );
        let (s, body) = h.get("/containerLogs/default/nope/talk").await;
        assert_eq!((s, body.as_str()), (StatusCode::NOT_FOUND, r#"pod "nope" does not exist"#));
        let (s, body) = h.get("/containerLogs/default/talker/nope").await;
        assert_eq!(
            (s, body.as_str()),
            (StatusCode::NOT_FOUND, r#"container "nope" not found in pod "talker""#)
        );
        assert_eq!(h.get(&format!("{base}?tailLines=-1")).await.0, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(h.get("/nothing/here").await.0, StatusCode::NOT_FOUND);

        // follow: the tail first, then a line written later.
        let resp = h.get_response(&format!("{base}?follow=true&tailLines=1")).await;
        assert_eq!(resp.status(), StatusCode::OK);
        let mut body = resp.into_body();
        let mut seen = String::new();
        let mut triggered = false;
        let deadline = Instant::now() + Duration::from_secs(20);
        while !seen.contains("more-line\n") {
            assert!(Instant::now() < deadline, "follow saw {seen:?}");
            if seen == "line-3\n" && !triggered {
                h.cri_exec(&pod, "talk", &["touch", "/tmp/more"]).await;
                triggered = true;
            }
            let frame = tokio::time::timeout(Duration::from_secs(20), body.frame())
                .await
                .expect("follow stalled")
                .expect("follow ended")
                .unwrap();
            if let Ok(d) = frame.into_data() {
                seen.push_str(&String::from_utf8_lossy(&d));
            }
        }
        assert_eq!(seen, "line-3\nmore-line\n");
        drop(body);

        // exec over WebSocket: v5 is dropped from the offer, containerd speaks v4.
        let exec = "/exec/default/talker/talk?command=echo&command=hi&stdout=1&stderr=1";
        let (mut ws, proto) = h
            .websocket(exec, "v5.channel.k8s.io, v4.channel.k8s.io")
            .await
            .expect("v4 handshake");
        assert_eq!(proto.as_deref(), Some("v4.channel.k8s.io"));
        let (mut stdout, mut status) = (Vec::new(), String::new());
        while let Ok(Some(msg)) = tokio::time::timeout(Duration::from_secs(20), ws.next()).await {
            match msg {
                Ok(Message::Binary(b)) if !b.is_empty() => match b[0] {
                    1 => stdout.extend_from_slice(&b[1..]),
                    3 => status.push_str(&String::from_utf8_lossy(&b[1..])),
                    _ => {}
                },
                Ok(Message::Close(_)) | Err(_) => break,
                Ok(_) => {}
            }
        }
        assert_eq!(String::from_utf8_lossy(&stdout), "hi\n");
        assert!(status.contains("Success"), "status channel: {status:?}");

        // v5 only: 400 without upgrading, so kubectl falls back to SPDY.
        match h.websocket(exec, "v5.channel.k8s.io").await {
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
            }
            Err(e) => panic!("v5-only exec: unexpected error {e}"),
            Ok(_) => panic!("v5-only exec was upgraded"),
        }
        // Errors before any runtime call.
        let (s, _) = h.get("/exec/default/nope/talk?command=true&stdout=1").await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let (s, body) = h.get("/exec/default/talker/talk?command=true&stdout=1").await;
        assert_eq!((s, body.as_str()), (StatusCode::BAD_REQUEST, "Upgrade request required"));

        // port-forward over plain SPDY, proxied byte for byte.
        let request = b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n";
        let mut tls = h.tls(true).await.unwrap();
        {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            tls.write_all(
                b"POST /portForward/default/talker HTTP/1.1\r\nHost: 127.0.0.1\r\n\
Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: portforward.k8s.io\r\n\
Content-Length: 0\r\n\r\n",
            )
            .await
            .unwrap();
            let mut head = Vec::new();
            while !head.ends_with(b"\r\n\r\n") {
                head.push(tls.read_u8().await.unwrap());
            }
            let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
            assert!(head.starts_with("http/1.1 101"), "{head}");
            assert!(head.contains("x-stream-protocol-version: portforward.k8s.io"), "{head}");
        }
        let page = spdy::port_forward(tls, 80, request).await;
        assert!(page.contains("Welcome to nginx!"), "{page}");

        // port-forward as kubectl 1.32 tries first: SPDY inside WebSocket binary messages.
        let (ws, proto) = h
            .websocket("/portForward/default/talker", "SPDY/3.1+portforward.k8s.io")
            .await
            .expect("tunnel handshake");
        assert_eq!(proto.as_deref(), Some("SPDY/3.1+portforward.k8s.io"));
        let page = spdy::port_forward(spdy::websocket_pipe(ws), 80, request).await;
        assert!(page.contains("Welcome to nginx!"), "{page}");
    })
    .await;
}

/// Just enough of a SPDY/3.1 client for one port-forward request (the
/// `portforward.k8s.io` protocol: an error and a data stream per request).
mod spdy {
    use futures::{SinkExt, StreamExt};
    use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
    use tokio_tungstenite::tungstenite::Message;

    /// Header blocks share one zlib stream per direction; the peer's preset dictionary is
    /// not needed as long as the stream does not refer to it.
    fn header_block(z: &mut flate2::Compress, pairs: &[(&str, &str)]) -> Vec<u8> {
        let mut raw = (pairs.len() as u32).to_be_bytes().to_vec();
        for (k, v) in pairs {
            for part in [k, v] {
                raw.extend((part.len() as u32).to_be_bytes());
                raw.extend(part.as_bytes());
            }
        }
        let mut out = Vec::with_capacity(raw.len() * 2 + 64);
        z.compress_vec(&raw, &mut out, flate2::FlushCompress::Sync)
            .unwrap();
        out
    }

    fn syn_stream(id: u32, block: Vec<u8>) -> Vec<u8> {
        let mut f = vec![0x80, 0x03, 0x00, 0x01, 0x00];
        f.extend(&((10 + block.len()) as u32).to_be_bytes()[1..]);
        f.extend(id.to_be_bytes());
        f.extend(0u32.to_be_bytes());
        f.extend([0, 0]);
        f.extend(block);
        f
    }

    fn data_frame(id: u32, payload: &[u8]) -> Vec<u8> {
        let mut f = id.to_be_bytes().to_vec();
        f.push(0);
        f.extend(&(payload.len() as u32).to_be_bytes()[1..]);
        f.extend(payload);
        f
    }

    /// Opens the error and data streams for `port`, sends `request` and returns what
    /// comes back on the data stream (until the server closes it).
    pub async fn port_forward<S: AsyncRead + AsyncWrite + Unpin>(
        mut s: S,
        port: u16,
        request: &[u8],
    ) -> String {
        let mut z = flate2::Compress::new(flate2::Compression::default(), true);
        let port = port.to_string();
        for (id, kind) in [(1, "error"), (3, "data")] {
            let block = header_block(
                &mut z,
                &[("streamtype", kind), ("port", &port), ("requestid", "0")],
            );
            s.write_all(&syn_stream(id, block)).await.unwrap();
        }
        // No FIN: the runtime ends the forward as soon as either side closes.
        s.write_all(&data_frame(3, request)).await.unwrap();
        s.flush().await.unwrap();
        let mut buf = Vec::new();
        let mut out = Vec::new();
        let mut chunk = [0u8; 16 * 1024];
        loop {
            while buf.len() >= 8 {
                let len = u32::from_be_bytes([0, buf[5], buf[6], buf[7]]) as usize;
                if buf.len() < 8 + len {
                    break;
                }
                let frame: Vec<u8> = buf.drain(..8 + len).collect();
                if frame[0] & 0x80 != 0 {
                    let kind = u16::from_be_bytes([frame[2], frame[3]]);
                    // RST_STREAM or GOAWAY: nothing more will come.
                    if kind == 3 || kind == 7 {
                        return String::from_utf8_lossy(&out).into_owned();
                    }
                    continue;
                }
                let id = u32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]) & 0x7fff_ffff;
                let payload = &frame[8..];
                match id {
                    1 if !payload.is_empty() => {
                        panic!("port-forward error: {}", String::from_utf8_lossy(payload))
                    }
                    3 => {
                        out.extend_from_slice(payload);
                        if frame[4] & 1 != 0 {
                            return String::from_utf8_lossy(&out).into_owned();
                        }
                    }
                    _ => {}
                }
            }
            let n = tokio::time::timeout(std::time::Duration::from_secs(20), s.read(&mut chunk))
                .await
                .expect("port-forward stalled")
                .unwrap_or(0);
            if n == 0 {
                return String::from_utf8_lossy(&out).into_owned();
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// A byte stream over a WebSocket: writes become binary messages and binary messages
    /// are read back as bytes (how kubectl tunnels SPDY).
    pub fn websocket_pipe<W>(ws: W) -> tokio::io::DuplexStream
    where
        W: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>>
            + futures::Sink<Message>
            + Send
            + Unpin
            + 'static,
    {
        let (mine, theirs) = tokio::io::duplex(64 * 1024);
        let (mut tx, mut rx) = ws.split();
        let (mut r, mut w) = tokio::io::split(theirs);
        tokio::spawn(async move {
            while let Some(Ok(msg)) = rx.next().await {
                let Message::Binary(b) = msg else { continue };
                if w.write_all(&b).await.is_err() {
                    break;
                }
            }
            let _ = w.shutdown().await;
        });
        tokio::spawn(async move {
            let mut buf = vec![0u8; 16 * 1024];
            while let Ok(n) = r.read(&mut buf).await {
                if n == 0
                    || tx
                        .send(Message::Binary(buf[..n].to_vec().into()))
                        .await
                        .is_err()
                {
                    break;
                }
            }
        });
        mine
    }
}
