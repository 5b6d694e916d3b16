//! The reverse proxy: HTTP/1.1 on the HTTP port and on TLS connections of the HTTPS port,
//! each request routed by the current table and relayed to one ready endpoint over a new
//! HTTP/1.1 connection. Method, path, query, headers (Host included) and body are kept;
//! hop-by-hop headers are dropped and `X-Forwarded-*` set. An `Upgrade` (WebSocket)
//! answered 101 by the backend becomes a byte relay between the two connections.

use super::Shared;
use super::routes::Target;
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode, Version};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// How long one connection attempt to an endpoint may take before the next is tried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// At most this many endpoints are tried for one request.
const CONNECT_ATTEMPTS: usize = 3;
/// A client must finish its TLS handshake, and each request's headers, within this.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

pub type Body = BoxBody<Bytes, hyper::Error>;

/// What a request handler knows about its connection.
struct Conn {
    shared: Arc<Shared>,
    remote: SocketAddr,
    /// The port the client connected to (`X-Forwarded-Port`).
    port: u16,
    https: bool,
}

/// Accept connections on `listener` until the task is dropped (TLS when `tls` is set).
pub async fn serve(listener: TcpListener, tls: Option<TlsAcceptor>, shared: Arc<Shared>) {
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors and the like: wait instead of spinning.
                tracing::warn!("ingress accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let conn = Arc::new(Conn {
            shared: shared.clone(),
            remote,
            port: stream.local_addr().map_or(0, |a| a.port()),
            https: tls.is_some(),
        });
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => serve_conn(TokioIo::new(stream), conn).await,
                Some(acceptor) => {
                    match tokio::time::timeout(CLIENT_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(s)) => serve_conn(TokioIo::new(s), conn).await,
                        Ok(Err(e)) => tracing::debug!(%remote, "ingress TLS handshake: {e}"),
                        Err(_) => tracing::debug!(%remote, "ingress TLS handshake timed out"),
                    }
                }
            }
        });
    }
}

async fn serve_conn<I>(io: I, conn: Arc<Conn>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        let conn = conn.clone();
        async move { Ok::<_, Infallible>(handle(req, &conn).await) }
    });
    let served = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(CLIENT_TIMEOUT)
        .serve_connection(io, service)
        .with_upgrades()
        .await;
    if let Err(e) = served {
        tracing::debug!("ingress connection: {e}");
    }
}

/// A plain-text answer of the proxy itself.
fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut resp = Response::new(
        Full::new(Bytes::from_static(body.as_bytes()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// The host the client asked for: the absolute URI's, else the Host header.
fn request_host(req: &Request<Incoming>) -> String {
    req.uri()
        .authority()
        .map(|a| a.as_str().to_string())
        .or_else(|| {
            req.headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_string)
        })
        .unwrap_or_default()
}

async fn handle(req: Request<Incoming>, conn: &Conn) -> Response<Body> {
    let host = request_host(&req);
    let candidates = {
        let snapshot = conn.shared.load();
        match snapshot.routes.route(&host, req.uri().path()) {
            None => return text(StatusCode::NOT_FOUND, "404 page not found\n"),
            Some(Target::Unsupported) => Vec::new(),
            Some(Target::Service(backend)) => snapshot
                .upstreams
                .get(backend)
                .map(|u| u.candidates())
                .unwrap_or_default(),
        }
    };
    if candidates.is_empty() {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "503 Service Unavailable: no ready endpoint\n",
        );
    }
    let Some((stream, addr)) = connect(&candidates).await else {
        return text(StatusCode::BAD_GATEWAY, "502 Bad Gateway\n");
    };
    match forward(req, stream, addr, conn, &host).await {
        Ok(resp) => resp,
        Err(e) => {
            tracing::debug!(%addr, "ingress backend: {e}");
            text(StatusCode::BAD_GATEWAY, "502 Bad Gateway\n")
        }
    }
}

/// A connection to the first endpoint that accepts one.
async fn connect(candidates: &[SocketAddr]) -> Option<(TcpStream, SocketAddr)> {
    for addr in candidates.iter().take(CONNECT_ATTEMPTS) {
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => {
                let _ = s.set_nodelay(true);
                return Some((s, *addr));
            }
            Ok(Err(e)) => tracing::debug!(%addr, "ingress backend connect: {e}"),
            Err(_) => tracing::debug!(%addr, "ingress backend connect timed out"),
        }
    }
    None
}

/// Headers meaningful for one connection only (RFC 9110 §7.6.1, plus the usual
/// non-standard ones).
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Drop hop-by-hop headers, including those the Connection header names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// The protocol a request asks to switch to (`Connection: upgrade` + `Upgrade`).
fn upgrade_protocol(headers: &HeaderMap) -> Option<HeaderValue> {
    let asks = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    asks.then(|| headers.get(header::UPGRADE).cloned())
        .flatten()
}

/// The request as the backend gets it.
fn backend_headers(
    headers: &mut HeaderMap,
    upgrade: Option<&HeaderValue>,
    conn: &Conn,
    host: &str,
) {
    strip_hop_by_hop(headers);
    if let Some(protocol) = upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, protocol.clone());
    }
    let ip = conn.remote.ip().to_string();
    let set = |headers: &mut HeaderMap, name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(name, v);
        }
    };
    // The client's own X-Forwarded-* are not trusted (nginx's and Traefik's defaults).
    set(headers, "x-forwarded-for", &ip);
    set(headers, "x-real-ip", &ip);
    set(
        headers,
        "x-forwarded-proto",
        if conn.https { "https" } else { "http" },
    );
    set(headers, "x-forwarded-port", &conn.port.to_string());
    if host.is_empty() {
        headers.remove("x-forwarded-host");
    } else {
        set(headers, "x-forwarded-host", host);
    }
}

async fn forward(
    mut req: Request<Incoming>,
    stream: TcpStream,
    addr: SocketAddr,
    conn: &Conn,
    host: &str,
) -> Result<Response<Body>, hyper::Error> {
    let upgrade = upgrade_protocol(req.headers());
    let client_upgrade = upgrade.is_some().then(|| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();
    backend_headers(&mut parts.headers, upgrade.as_ref(), conn, host);
    if !parts.headers.contains_key(header::HOST) {
        // HTTP/1.1 requires one; an HTTP/1.0 client may not have sent it.
        let h = if host.is_empty() {
            addr.to_string()
        } else {
            host.to_string()
        };
        if let Ok(v) = HeaderValue::from_str(&h) {
            parts.headers.insert(header::HOST, v);
        }
    }
    // Origin form: the backend sees the path and query only.
    if let Some(pq) = parts.uri.path_and_query().cloned() {
        parts.uri = pq.into();
    }
    parts.version = Version::HTTP_11;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.with_upgrades().await {
            tracing::debug!("ingress backend connection: {e}");
        }
    });
    let mut resp = sender
        .send_request(Request::from_parts(parts, body))
        .await?;
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS
        && let Some(client_upgrade) = client_upgrade
    {
        let backend_upgrade = hyper::upgrade::on(&mut resp);
        tokio::spawn(async move {
            let (Ok(client), Ok(backend)) = (client_upgrade.await, backend_upgrade.await) else {
                return;
            };
            let (mut client, mut backend) = (TokioIo::new(client), TokioIo::new(backend));
            let _ = tokio::io::copy_bidirectional(&mut client, &mut backend).await;
        });
        let (parts, _) = resp.into_parts();
        return Ok(Response::from_parts(parts, empty()));
    }
    strip_hop_by_hop(resp.headers_mut());
    Ok(resp.map(BodyExt::boxed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_go() {
        let mut h = HeaderMap::new();
        h.insert(
            "connection",
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        let names: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["x-kept"]);
    }

    #[test]
    fn upgrades_are_recognized() {
        let mut h = HeaderMap::new();
        h.insert(
            "connection",
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        h.insert("upgrade", HeaderValue::from_static("websocket"));
        assert_eq!(
            upgrade_protocol(&h),
            Some(HeaderValue::from_static("websocket"))
        );
        h.insert("connection", HeaderValue::from_static("close"));
        assert_eq!(upgrade_protocol(&h), None);
    }
}
