//! The reverse proxy behind `pods/proxy` and `services/proxy` (upstream's
//! `UpgradeAwareHandler` with its rewriting transport): one request goes to the backend
//! over a fresh HTTP/1.1 connection (TLS for `https:` ids, without verifying the
//! backend's certificate, as upstream's proxy transport), with the client's headers less
//! hop-by-hop ones and the caller's credentials; the answer streams back, with CORS headers
//! dropped and links rewritten ([`super::rewrite`]). Upgrade requests (WebSockets) are
//! relayed byte for byte once the backend switches protocols.

use super::rewrite::{Rewriter, join};
use super::target::{Location, Scheme};
use super::upgrade::{is_upgrade_request, relay};
use crate::error::{ApiError, ApiResult};
use crate::tls::crypto_provider;
use axum::body::{Body, Bytes};
use axum::http::{
    HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, header,
};
use futures::StreamExt;
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// Bound on the TCP connect (upstream's proxy dialer timeout).
const DIAL_TIMEOUT: Duration = Duration::from_secs(30);

/// Bound on the TLS handshake with an `https:` backend (upstream's transport default).
const TLS_TIMEOUT: Duration = Duration::from_secs(10);

/// Most of an HTML answer held in memory to rewrite its links; a bigger page passes
/// through unchanged rather than holding the whole of it.
const MAX_REWRITE_BYTES: usize = 16 * 1024 * 1024;

/// Request and response headers that belong to one connection, never forwarded (plus
/// whatever `Connection` names).
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "proxy-connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// CORS headers of the backend, removed so the API server's own policy applies.
const CORS_HEADERS: [&str; 4] = [
    "access-control-allow-credentials",
    "access-control-allow-headers",
    "access-control-allow-methods",
    "access-control-allow-origin",
];

/// Failures reaching the backend, worded like Go's dialer and transport.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("dial tcp {addr}: {}", io_text(.source))]
    Dial {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("dial tcp {addr}: i/o timeout")]
    Timeout { addr: String },
    #[error("dial tcp: address {0}: invalid port")]
    Port(String),
    #[error("tls handshake with {addr}: {source}")]
    Tls {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid host {0:?}")]
    Host(String),
    #[error("tls: {0}")]
    TlsConfig(#[from] rustls::Error),
    #[error(transparent)]
    Http(#[from] hyper::Error),
}

/// Go's text for the common connect failures (`connect: connection refused`).
fn io_text(e: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::ConnectionRefused => "connect: connection refused".into(),
        ErrorKind::HostUnreachable => "connect: no route to host".into(),
        ErrorKind::NetworkUnreachable => "connect: network is unreachable".into(),
        _ => e.to_string(),
    }
}

/// One proxied request.
pub struct Forward {
    pub method: Method,
    pub location: Location,
    /// The backend path (cleaned and escaped); empty means `/`.
    pub path: String,
    /// The client's raw query string, passed on as it is.
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub upgrade: Option<OnUpgrade>,
    pub rewriter: Rewriter,
}

impl Forward {
    fn target(&self) -> String {
        let path = if self.path.is_empty() {
            "/"
        } else {
            &self.path
        };
        match self.query.as_deref().filter(|q| !q.is_empty()) {
            Some(q) => format!("{path}?{q}"),
            None => path.to_string(),
        }
    }

    /// The request for the backend: the client's headers less hop-by-hop ones (an
    /// upgrade keeps its `Connection`/`Upgrade`) and credentials, `Host` as the client
    /// sent it.
    fn backend_request(&self, upgrade: bool) -> ApiResult<Request<Body>> {
        let mut headers = forwardable(&self.headers, upgrade);
        let host = self
            .headers
            .get(header::HOST)
            .cloned()
            .or_else(|| HeaderValue::from_str(&self.location.authority()).ok());
        if let Some(h) = host {
            headers.insert(header::HOST, h);
        }
        if !upgrade {
            let mut uri = join(&self.rewriter.prefix, &self.path);
            if self.path.ends_with('/') && !uri.ends_with('/') {
                uri.push('/');
            }
            if let Ok(v) = HeaderValue::from_str(&uri) {
                headers.insert(HeaderName::from_static("x-forwarded-uri"), v);
            }
        }
        let mut req = Request::builder()
            .method(self.method.clone())
            .uri(self.target())
            .body(Body::from(self.body.clone()))
            .map_err(|e| ApiError::bad_request(format!("invalid proxy request: {e}")))?;
        *req.headers_mut() = headers;
        Ok(req)
    }
}

/// Forward `f` and answer with the backend's response.
pub async fn forward(f: Forward) -> ApiResult<Response<Body>> {
    if is_upgrade_request(&f.headers) {
        return forward_upgrade(f).await;
    }
    let req = f.backend_request(false)?;
    let resp = send(&f.location, req, false)
        .await
        .map_err(|e| ApiError::unavailable(format!("error trying to reach service: {e}")))?;
    let (parts, body) = resp.into_parts();
    let mut headers = HeaderMap::new();
    copy_response_headers(&parts.headers, &mut headers, false);
    let mut out = Response::new(Body::empty());
    *out.status_mut() = parts.status;
    if let Some(loc) = headers.get(header::LOCATION).and_then(|v| v.to_str().ok()) {
        // A redirect's target is rewritten; its body is not.
        let rewritten = f.rewriter.rewrite_url(loc);
        if let Ok(v) = HeaderValue::from_str(&rewritten) {
            headers.insert(header::LOCATION, v);
        }
        *out.body_mut() = Body::new(body);
    } else if is_html(&headers) && f.method != Method::HEAD {
        let encoding = headers
            .get(header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        *out.body_mut() = rewrite_body(body, &encoding, &f.rewriter, &mut headers).await;
    } else {
        *out.body_mut() = Body::new(body);
    }
    *out.headers_mut() = headers;
    Ok(out)
}

/// Whether the answer is `text/html` (upstream compares the media type exactly).
fn is_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim() == "text/html")
}

/// An HTML body with its links rewritten (read whole, as upstream). A body that is too
/// big, unreadable or in an unknown encoding passes through as it came.
async fn rewrite_body(
    body: Incoming,
    encoding: &str,
    rewriter: &Rewriter,
    headers: &mut HeaderMap,
) -> Body {
    let mut stream = Body::new(body).into_data_stream();
    let mut buf = Vec::new();
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(c) => buf.extend_from_slice(&c),
            Err(e) => {
                tracing::debug!(error = %e, "proxied HTML body ended early");
                return Body::from(buf);
            }
        }
        if buf.len() > MAX_REWRITE_BYTES {
            // Send what was read, then the rest as it comes.
            let head = futures::stream::once(async move { Ok(Bytes::from(buf)) });
            return Body::from_stream(head.chain(stream));
        }
    }
    match rewriter.rewrite_html_body(&buf, encoding) {
        Some(new) => {
            headers.remove(header::CONTENT_LENGTH);
            Body::from(new)
        }
        None => Body::from(buf),
    }
}

/// An upgrade request: relay both ways once the backend answers 101; a backend error
/// answer (4xx/5xx) goes back to the client as it is; anything else is an error.
async fn forward_upgrade(mut f: Forward) -> ApiResult<Response<Body>> {
    // Only HTTP/1.1 connections can be taken over.
    let Some(client_upgrade) = f.upgrade.take() else {
        return Err(upgrade_error(
            "request connection cannot be hijacked".into(),
        ));
    };
    let req = f.backend_request(true)?;
    let mut resp = send(&f.location, req, true)
        .await
        .map_err(|e| upgrade_error(format!("error dialing backend: {e}")))?;
    let status = resp.status();
    if status != StatusCode::SWITCHING_PROTOCOLS {
        if status.as_u16() < 400 {
            return Err(upgrade_error(format!(
                "invalid upgrade response: status code {}",
                status.as_u16()
            )));
        }
        let (parts, body) = resp.into_parts();
        let mut out = Response::new(Body::new(body));
        *out.status_mut() = parts.status;
        copy_response_headers(&parts.headers, out.headers_mut(), false);
        return Ok(out);
    }
    let backend_upgrade = hyper::upgrade::on(&mut resp);
    let mut out = Response::new(Body::empty());
    *out.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    copy_response_headers(resp.headers(), out.headers_mut(), true);
    let backend = f.location.authority();
    tokio::spawn(async move {
        match tokio::try_join!(client_upgrade, backend_upgrade) {
            Ok((client, upstream)) => {
                relay(TokioIo::new(client), TokioIo::new(upstream)).await;
                tracing::debug!(%backend, "proxied upgraded stream closed");
            }
            Err(e) => tracing::debug!(%backend, error = %e, "proxied upgrade did not complete"),
        }
    });
    Ok(out)
}

/// Upstream answers proxy errors that carry no API status with a bare 500.
fn upgrade_error(message: String) -> ApiError {
    ApiError::from_parts(StatusCode::INTERNAL_SERVER_ERROR, "", message)
}

/// The client's headers that may reach the backend: no hop-by-hop headers (except the
/// upgrade negotiation when `upgrade`), none named by `Connection`, no credentials for
/// the API server (`Authorization`, impersonation), no framing (the body is re-sent).
fn forwardable(from: &HeaderMap, upgrade: bool) -> HeaderMap {
    let named: Vec<String> = from
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect();
    let mut out = HeaderMap::new();
    for (name, value) in from {
        let n = name.as_str();
        let negotiation = upgrade && (n == "connection" || n == "upgrade");
        let dropped = (HOP_BY_HOP.contains(&n) || named.iter().any(|c| c == n))
            || matches!(n, "authorization" | "host" | "content-length" | "expect")
            || n.starts_with("impersonate-");
        if negotiation || !dropped {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

/// The backend's response headers the client gets: no hop-by-hop headers (except the
/// upgrade's own on a 101), none named by `Connection`, no CORS headers.
fn copy_response_headers(from: &HeaderMap, to: &mut HeaderMap, switching: bool) {
    let named: Vec<String> = from
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .collect();
    for (name, value) in from {
        let n = name.as_str();
        if switching && (n == "connection" || n == "upgrade") {
            to.append(name.clone(), value.clone());
            continue;
        }
        if HOP_BY_HOP.contains(&n) || named.iter().any(|c| c == n) || CORS_HEADERS.contains(&n) {
            continue;
        }
        to.append(name.clone(), value.clone());
    }
}

/// A byte stream to the backend, plain or TLS.
trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// Connect to the backend (TLS for `https`), bounded by the dial and handshake timeouts.
async fn dial(location: &Location) -> Result<Box<dyn Io>, ProxyError> {
    let addr = location.authority();
    let port = location
        .dial_port()
        .ok_or_else(|| ProxyError::Port(addr.clone()))?;
    let tcp = tokio::time::timeout(
        DIAL_TIMEOUT,
        TcpStream::connect((location.host.as_str(), port)),
    )
    .await
    .map_err(|_| ProxyError::Timeout { addr: addr.clone() })?
    .map_err(|source| ProxyError::Dial {
        addr: addr.clone(),
        source,
    })?;
    let _ = tcp.set_nodelay(true);
    if location.scheme == Scheme::Http {
        return Ok(Box::new(tcp));
    }
    let name = ServerName::try_from(location.host.clone())
        .map_err(|_| ProxyError::Host(location.host.clone()))?;
    let connector = tokio_rustls::TlsConnector::from(insecure_tls()?);
    let tls = tokio::time::timeout(TLS_TIMEOUT, connector.connect(name, tcp))
        .await
        .map_err(|_| ProxyError::Timeout { addr: addr.clone() })?
        .map_err(|source| ProxyError::Tls { addr, source })?;
    Ok(Box::new(tls))
}

/// Send one request on a fresh connection; the body streams as the backend writes it.
async fn send(
    location: &Location,
    req: Request<Body>,
    upgrades: bool,
) -> Result<Response<Incoming>, ProxyError> {
    let io = dial(location).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    let backend = location.authority();
    tokio::spawn(async move {
        let result = if upgrades {
            conn.with_upgrades().await
        } else {
            conn.await
        };
        if let Err(e) = result {
            tracing::debug!(%backend, error = %e, "proxy connection ended with error");
        }
    });
    Ok(sender.send_request(req).await?)
}

/// The TLS client for `https:` backends: pods serve self-signed or cluster-internal
/// certificates, so, as upstream's proxy transport, their certificate is not verified
/// (handshake signatures still are).
fn insecure_tls() -> Result<Arc<ClientConfig>, rustls::Error> {
    static CONFIG: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    if let Some(c) = CONFIG.get() {
        return Ok(c.clone());
    }
    let provider = crypto_provider();
    let mut config = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(CONFIG.get_or_init(|| Arc::new(config)).clone())
}

/// Accepts any server certificate, checking handshake signatures with the provider.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn credentials_and_hop_by_hop_headers_stay_behind() {
        let from = headers(&[
            ("authorization", "Bearer secret"),
            ("impersonate-user", "jane"),
            ("proxy-authorization", "x"),
            ("connection", "keep-alive, x-private"),
            ("x-private", "1"),
            ("keep-alive", "timeout=5"),
            ("content-length", "3"),
            ("host", "localhost:8001"),
            ("accept", "text/html"),
            ("cookie", "a=b"),
            ("x-custom", "1"),
            ("x-custom", "2"),
        ]);
        let out = forwardable(&from, false);
        let names: Vec<&str> = out.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["accept", "cookie", "x-custom"]);
        assert_eq!(out.get_all("x-custom").iter().count(), 2);

        let up = headers(&[
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-key", "k"),
            ("authorization", "Bearer secret"),
        ]);
        let out = forwardable(&up, true);
        assert!(out.contains_key("upgrade") && out.contains_key("connection"));
        assert!(out.contains_key("sec-websocket-key") && !out.contains_key("authorization"));
    }

    #[test]
    fn cors_and_hop_by_hop_response_headers_are_dropped() {
        let from = headers(&[
            ("access-control-allow-origin", "*"),
            ("transfer-encoding", "chunked"),
            ("content-type", "text/plain"),
            ("content-length", "5"),
            ("connection", "upgrade"),
            ("upgrade", "websocket"),
        ]);
        let mut to = HeaderMap::new();
        copy_response_headers(&from, &mut to, false);
        let names: Vec<&str> = to.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["content-type", "content-length"]);
        let mut to = HeaderMap::new();
        copy_response_headers(&from, &mut to, true);
        assert!(to.contains_key("upgrade") && to.contains_key("connection"));
    }

    #[test]
    fn html_detection_is_exact_on_the_media_type() {
        assert!(is_html(&headers(&[(
            "content-type",
            "text/html; charset=utf-8"
        )])));
        assert!(!is_html(&headers(&[("content-type", "text/htmlx")])));
        assert!(!is_html(&headers(&[("content-type", "application/json")])));
        assert!(!is_html(&HeaderMap::new()));
    }

    #[tokio::test]
    async fn unreachable_backends_fail_with_go_wording() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let loc = Location {
            scheme: Scheme::Http,
            host: "127.0.0.1".into(),
            port: port.to_string(),
        };
        let Err(err) = dial(&loc).await else {
            panic!("dial succeeded");
        };
        assert_eq!(
            err.to_string(),
            format!("dial tcp 127.0.0.1:{port}: connect: connection refused")
        );
        let bad = Location {
            port: "http".into(),
            ..loc
        };
        let Err(err) = dial(&bad).await else {
            panic!("dial succeeded");
        };
        assert_eq!(
            err.to_string(),
            "dial tcp: address 127.0.0.1:http: invalid port"
        );
    }
}
