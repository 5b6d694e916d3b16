//! Proxying an HTTP Upgrade (SPDY/3.1 or WebSocket) to the kubelet: send the client's
//! upgrade request on, and if the kubelet switches protocols, switch the client too and
//! relay raw bytes both ways until either side closes. A refused upgrade (any
//! non-101 answer) goes back to the client unchanged, so kubectl's WebSocket attempt
//! sees the failure and falls back to SPDY.

use super::kubelet::{self, KubeletAddr};
use crate::error::{ApiError, ApiResult};
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

/// Request headers that carry the upgrade negotiation (all values are forwarded; SPDY
/// clients repeat `X-Stream-Protocol-Version`).
const UPGRADE_HEADERS: [&str; 7] = [
    "upgrade",
    "connection",
    "x-stream-protocol-version",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
];

/// Response headers that describe the kubelet's own connection, not the client's.
const HOP_BY_HOP: [&str; 4] = ["content-length", "transfer-encoding", "keep-alive", "date"];

/// How long the kubelet may take to answer the upgrade request.
const HEAD_TIMEOUT: Duration = Duration::from_secs(60);

/// Bound on flushing/closing each side once the relay ends.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether the client asked to upgrade (`Connection: upgrade` plus an `Upgrade`
/// header), as upstream's `httpstream.IsUpgradeRequest`.
pub fn is_upgrade_request(headers: &HeaderMap) -> bool {
    let connection_upgrade = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    connection_upgrade && headers.contains_key(header::UPGRADE)
}

/// Proxy one upgrade request to `path_and_query` on the kubelet at `addr`.
pub async fn proxy(
    tls: &Arc<ClientConfig>,
    addr: &KubeletAddr,
    method: Method,
    path_and_query: &str,
    client_headers: &HeaderMap,
    client_upgrade: OnUpgrade,
) -> ApiResult<Response<Body>> {
    let mut builder = Request::builder().method(method).uri(path_and_query);
    for name in UPGRADE_HEADERS {
        for v in client_headers.get_all(name) {
            builder = builder.header(name, v.clone());
        }
    }
    let host = HeaderValue::from_str(&addr.authority())
        .map_err(|e| ApiError::internal(format!("kubelet host header: {e}")))?;
    let req = builder
        .header(header::HOST, host)
        .body(Body::empty())
        .map_err(|e| ApiError::internal(format!("building kubelet request: {e}")))?;
    let dialled = tokio::time::timeout(HEAD_TIMEOUT, kubelet::send(tls, addr, req, true)).await;
    let mut resp = match dialled {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return Err(ApiError::internal(format!("error dialing backend: {e}"))),
        Err(_) => {
            return Err(ApiError::internal(format!(
                "error dialing backend: no response from {} within {}s",
                addr.authority(),
                HEAD_TIMEOUT.as_secs()
            )));
        }
    };
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        // Passed through untouched (status, headers, body).
        let (parts, body) = resp.into_parts();
        let mut out = Response::new(Body::new(body));
        *out.status_mut() = parts.status;
        copy_headers(
            &parts.headers,
            out.headers_mut(),
            &["connection", "upgrade"],
        );
        return Ok(out);
    }
    let backend_upgrade = hyper::upgrade::on(&mut resp);
    let mut out = Response::new(Body::empty());
    *out.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    copy_headers(resp.headers(), out.headers_mut(), &[]);
    let kubelet = addr.authority();
    tokio::spawn(async move {
        match tokio::try_join!(client_upgrade, backend_upgrade) {
            Ok((client, backend)) => {
                relay(TokioIo::new(client), TokioIo::new(backend)).await;
                tracing::debug!(%kubelet, "upgraded stream closed");
            }
            Err(e) => tracing::debug!(%kubelet, error = %e, "upgrade did not complete"),
        }
    });
    Ok(out)
}

/// Copy response headers, leaving out hop-by-hop ones and `skip`.
fn copy_headers(from: &HeaderMap, to: &mut HeaderMap, skip: &[&str]) {
    for (name, value) in from {
        let n = name.as_str();
        if HOP_BY_HOP.contains(&n) || skip.contains(&n) {
            continue;
        }
        to.append(name.clone(), value.clone());
    }
}

/// Copy bytes both ways until either direction ends (EOF or error), then close both
/// sides, as upstream's proxy does: a session is over once one peer hangs up.
pub async fn relay<A, B>(a: A, b: B)
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let (mut a_read, mut a_write) = tokio::io::split(a);
    let (mut b_read, mut b_write) = tokio::io::split(b);
    tokio::select! {
        r = tokio::io::copy(&mut a_read, &mut b_write) => {
            if let Err(e) = r { tracing::debug!(error = %e, "client to kubelet copy ended"); }
        }
        r = tokio::io::copy(&mut b_read, &mut a_write) => {
            if let Err(e) = r { tracing::debug!(error = %e, "kubelet to client copy ended"); }
        }
    }
    let _ = tokio::time::timeout(SHUTDOWN_TIMEOUT, async {
        let _ = a_write.shutdown().await;
        let _ = b_write.shutdown().await;
    })
    .await;
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[test]
    fn detects_upgrade_requests() {
        let mut h = HeaderMap::new();
        assert!(!is_upgrade_request(&h));
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        assert!(!is_upgrade_request(&h));
        h.insert(header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
        assert!(is_upgrade_request(&h));
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
        assert!(!is_upgrade_request(&h));
    }

    #[test]
    fn hop_by_hop_headers_are_not_copied() {
        let mut from = HeaderMap::new();
        from.insert("content-length", HeaderValue::from_static("3"));
        from.insert(
            "x-stream-protocol-version",
            HeaderValue::from_static("v4.channel.k8s.io"),
        );
        from.insert("connection", HeaderValue::from_static("Upgrade"));
        let mut to = HeaderMap::new();
        copy_headers(&from, &mut to, &["connection"]);
        assert_eq!(to.len(), 1);
        assert!(to.contains_key("x-stream-protocol-version"));
    }

    #[tokio::test]
    async fn relays_both_ways_and_closes_when_one_side_hangs_up() {
        let (client, client_peer) = tokio::io::duplex(64);
        let (backend, backend_peer) = tokio::io::duplex(64);
        let task = tokio::spawn(relay(client_peer, backend_peer));
        let (mut c, mut k) = (client, backend);
        c.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        k.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        k.write_all(b"pong").await.unwrap();
        c.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"pong");
        // The kubelet ends the session: the client sees EOF and the relay finishes.
        k.write_all(b"bye").await.unwrap();
        drop(k);
        let mut rest = Vec::new();
        c.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, b"bye");
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
    }
}
