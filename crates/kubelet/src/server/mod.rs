//! The kubelet's HTTPS server, with upstream's URL layout, which the API server proxies
//! `pods/{log,exec,attach,portforward}` to: `/healthz`, `/metrics/resource`, `/containerLogs/{ns}/{pod}/{c}`,
//! `/exec|attach/{ns}/{pod}[/{uid}]/{c}` and `/portForward/{ns}/{pod}[/{uid}]`.
//!
//! Clients must present a certificate signed by the configured client CA (the TLS
//! handshake fails otherwise); there is no further authorization. HTTP/1.1 only: the
//! streaming endpoints are HTTP upgrades.

pub mod logs;
pub mod lookup;
pub mod proxy;
pub mod resource_metrics;
pub mod stream;

use crate::cri::Cri;
use bytes::Bytes;
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::{Frame, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// PEM material of the server: its serving certificate (chain) and key, and the CA that
/// client certificates must chain to.
#[derive(Clone, PartialEq, Eq)]
pub struct ServerTls {
    pub cert_pem: String,
    pub key_pem: String,
    pub client_ca_pem: String,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("cert_pem", &format_args!("<{} bytes>", self.cert_pem.len()))
            .field("key_pem", &"<redacted>")
            .field(
                "client_ca_pem",
                &format_args!("<{} bytes>", self.client_ca_pem.len()),
            )
            .finish()
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("invalid PEM in {what}: {reason}")]
    Pem { what: &'static str, reason: String },
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// An error answered to a request: status and a plain-text message (as upstream's
/// kubelet writes them).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct HttpError {
    pub status: StatusCode,
    pub message: String,
}

impl HttpError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        HttpError {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// A runtime failure: 404 for CRI NotFound, 500 otherwise.
    pub fn runtime(e: crate::Error) -> Self {
        if e.is_not_found() {
            Self::not_found(e.to_string())
        } else {
            Self::internal(e.to_string())
        }
    }

    pub fn into_response(self) -> Response<Body> {
        let mut r = Response::new(full(self.message));
        *r.status_mut() = self.status;
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        r
    }
}

/// Response bodies: whole, empty or streamed.
pub type Body = UnsyncBoxBody<Bytes, std::io::Error>;

pub fn full(b: impl Into<Bytes>) -> Body {
    http_body_util::Full::new(b.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

pub fn empty() -> Body {
    full(Bytes::new())
}

/// A body fed by a channel: ends when the sender is dropped; dropping the body (client
/// gone) closes the channel, which stops the producer.
pub fn channel_body(rx: mpsc::Receiver<Bytes>) -> Body {
    let s = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, std::io::Error>(Frame::data(b)), rx))
    });
    http_body_util::StreamBody::new(s).boxed_unsync()
}

/// Spawns the tasks of a server (connections, log streams, relays) so that they end
/// when the server stops.
#[derive(Clone)]
pub struct Spawner {
    /// Its sender is dropped when the server stops.
    stop: watch::Receiver<()>,
}

impl Spawner {
    /// A spawner whose tasks are cancelled when the returned sender is dropped.
    pub fn new() -> (watch::Sender<()>, Spawner) {
        let (tx, stop) = watch::channel(());
        (tx, Spawner { stop })
    }

    pub fn spawn(&self, fut: impl Future<Output = ()> + Send + 'static) {
        let mut stop = self.stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = fut => {}
                _ = stop.changed() => {}
            }
        });
    }
}

/// What request handlers share.
pub struct State {
    pub client: kube::Client,
    pub cri: Cri,
    pub node_name: String,
    pub tasks: Spawner,
}

fn pem_certs(pem: &str, what: &'static str) -> Result<Vec<CertificateDer<'static>>, ServerError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ServerError::Pem {
            what,
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(ServerError::Pem {
            what,
            reason: "no certificate found".into(),
        });
    }
    Ok(certs)
}

/// The rustls config: TLS 1.2/1.3, ALPN http/1.1, client certificates required.
pub fn tls_config(tls: &ServerTls) -> Result<Arc<ServerConfig>, ServerError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = pem_certs(&tls.cert_pem, "serving certificate")?;
    let key =
        PrivateKeyDer::from_pem_slice(tls.key_pem.as_bytes()).map_err(|e| ServerError::Pem {
            what: "serving key",
            reason: e.to_string(),
        })?;
    let mut roots = RootCertStore::empty();
    for ca in pem_certs(&tls.client_ca_pem, "client CA")? {
        roots.add(ca)?;
    }
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build()?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A bound (not yet serving) kubelet server.
pub struct Server {
    listener: TcpListener,
    acceptor: TlsAcceptor,
    local_addr: SocketAddr,
}

impl Server {
    /// Validates the TLS material and binds `addr` (port 0 picks a free port).
    pub async fn bind(addr: SocketAddr, tls: &ServerTls) -> Result<Server, ServerError> {
        let acceptor = TlsAcceptor::from(tls_config(tls)?);
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Bind { addr, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| ServerError::Bind { addr, source })?;
        Ok(Server {
            listener,
            acceptor,
            local_addr,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Accepts connections until the returned future is dropped (which also ends every
    /// connection, log stream and relay it started).
    pub async fn serve(self, client: kube::Client, cri: Cri, node_name: String) {
        let (_stop, tasks) = Spawner::new();
        let st = Arc::new(State {
            client,
            cri,
            node_name,
            tasks,
        });
        info!(addr = %self.local_addr, "kubelet server listening");
        loop {
            let (tcp, peer) = match self.listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    warn!("kubelet server accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = self.acceptor.clone();
            let conn_st = st.clone();
            st.tasks.spawn(async move {
                let tls =
                    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => tls,
                        Ok(Err(e)) => {
                            debug!(%peer, "kubelet server TLS handshake failed: {e}");
                            return;
                        }
                        Err(_) => return,
                    };
                let svc = hyper::service::service_fn(move |req| {
                    let st = conn_st.clone();
                    async move { Ok::<_, Infallible>(route(&st, req).await) }
                });
                if let Err(e) = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), svc)
                    .with_upgrades()
                    .await
                {
                    debug!(%peer, "kubelet server connection: {e}");
                }
            });
        }
    }
}

/// Decodes `%XX` escapes of a path segment; None for bad escapes or non-UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn query_pairs(req: &Request<Incoming>) -> Vec<(String, String)> {
    req.uri()
        .query()
        .map(|q| {
            form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

fn method_not_allowed() -> HttpError {
    HttpError::new(StatusCode::METHOD_NOT_ALLOWED, "405: Method Not Allowed")
}

/// Dispatches one request; never fails (errors become responses).
async fn route(st: &State, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let segments: Option<Vec<String>> = path
        .strip_prefix('/')
        .and_then(|p| p.split('/').map(percent_decode).collect());
    let Some(segments) = segments else {
        return HttpError::not_found("404 page not found").into_response();
    };
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    let method = req.method().clone();
    let get = method == Method::GET || method == Method::HEAD;
    let get_or_post = method == Method::GET || method == Method::POST;
    let query = query_pairs(&req);
    use stream::Kind;
    let r = match segs.as_slice() {
        ["healthz"] if get => Ok(Response::new(full("ok"))),
        ["metrics", "resource"] if get => resource_metrics::serve(st).await,
        ["containerLogs", ns, pod, c] if get => container_logs(st, &query, ns, pod, c).await,
        ["exec", ns, pod, c] if get_or_post => {
            stream::exec_or_attach(st, req, Kind::Exec, &query, (ns, pod, None, c)).await
        }
        ["exec", ns, pod, uid, c] if get_or_post => {
            stream::exec_or_attach(st, req, Kind::Exec, &query, (ns, pod, Some(uid), c)).await
        }
        ["attach", ns, pod, c] if get_or_post => {
            stream::exec_or_attach(st, req, Kind::Attach, &query, (ns, pod, None, c)).await
        }
        ["attach", ns, pod, uid, c] if get_or_post => {
            stream::exec_or_attach(st, req, Kind::Attach, &query, (ns, pod, Some(uid), c)).await
        }
        ["portForward", ns, pod] if get_or_post => {
            stream::port_forward(st, req, &query, (ns, pod, None)).await
        }
        ["portForward", ns, pod, uid] if get_or_post => {
            stream::port_forward(st, req, &query, (ns, pod, Some(uid))).await
        }
        ["healthz"] | ["metrics", "resource"] | ["containerLogs", _, _, _] => {
            Err(method_not_allowed())
        }
        ["exec" | "attach", _, _, _] | ["exec" | "attach", _, _, _, _] => Err(method_not_allowed()),
        ["portForward", _, _] | ["portForward", _, _, _] => Err(method_not_allowed()),
        _ => Err(HttpError::not_found("404 page not found")),
    };
    r.unwrap_or_else(|e| {
        debug!(%path, status = %e.status, "kubelet server: {e}");
        e.into_response()
    })
}

/// `GET /containerLogs/{ns}/{pod}/{container}`.
async fn container_logs(
    st: &State,
    query: &[(String, String)],
    namespace: &str,
    pod: &str,
    container: &str,
) -> Result<Response<Body>, HttpError> {
    let opts = logs::LogOptions::from_query(query, chrono::Utc::now())?;
    let pr = lookup::find_pod(st, namespace, pod, None)
        .await?
        .ok_or_else(|| HttpError::not_found(format!("pod {pod:?} does not exist")))?;
    if !pr.has_container(container) {
        return Err(HttpError::not_found(format!(
            "container {container:?} not found in pod {pod:?}"
        )));
    }
    let id = lookup::log_container(st, &pr, container, opts.previous).await?;
    let status = st
        .cri
        .container_status(&id)
        .await
        .map_err(HttpError::runtime)?;
    if status.log_path.is_empty() {
        return Err(HttpError::bad_request(format!(
            "container {container:?} in pod {pod:?} has no log file"
        )));
    }
    let reader = logs::LogReader::open(std::path::Path::new(&status.log_path), opts)
        .await
        .map_err(|e| {
            HttpError::internal(format!(
                "failed to open log file {:?}: {e}",
                status.log_path
            ))
        })?;
    let (tx, rx) = mpsc::channel(8);
    let cri = st.cri.clone();
    st.tasks.spawn(async move {
        let running = move || {
            let cri = cri.clone();
            let id = id.clone();
            async move {
                cri.container_status(&id).await.is_ok_and(|s| {
                    s.state == crate::cri::api::ContainerState::ContainerRunning as i32
                })
            }
        };
        if let Err(e) = reader.stream(tx, running).await {
            debug!("streaming container log: {e}");
        }
    });
    let mut r = Response::new(channel_body(rx));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Ok(r)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn path_decoding() {
        assert_eq!(percent_decode("a%2Fb").as_deref(), Some("a/b"));
        assert_eq!(percent_decode("plain").as_deref(), Some("plain"));
        assert_eq!(percent_decode("bad%2"), None);
        assert_eq!(percent_decode("bad%zz"), None);
        assert_eq!(percent_decode("%ff"), None);
    }

    #[test]
    fn tls_material_is_checked() {
        let bad = ServerTls {
            cert_pem: "nope".into(),
            key_pem: "nope".into(),
            client_ca_pem: "nope".into(),
        };
        assert!(matches!(tls_config(&bad), Err(ServerError::Pem { .. })));
        assert!(!format!("{bad:?}").contains("nope"));
    }
}
