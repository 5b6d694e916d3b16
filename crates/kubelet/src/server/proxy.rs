//! The runtime side of a streaming request: the upgrade request to the runtime's
//! single-use streaming URL, and the relays once both sides switched protocols — raw
//! bytes for SPDY and channel WebSockets, and for kubectl's port-forward tunnel
//! (`SPDY/3.1+portforward.k8s.io`) WebSocket binary payloads to plain SPDY and back.

use super::{Body, HttpError, Spawner, empty};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::upgrade::OnUpgrade;
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;

/// kubectl's port-forward over WebSocket: SPDY frames inside binary messages.
pub const TUNNEL_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";
/// The request header that negotiates SPDY stream protocols.
pub const STREAM_PROTOCOL_HEADER: &str = "x-stream-protocol-version";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);
/// After one direction of a relay ends, how long the other may still run.
const CLOSE_GRACE: Duration = Duration::from_secs(10);
/// Error bodies from the runtime are relayed up to this size.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// Sends an upgrade request to the runtime's streaming URL.
async fn open_backend(
    url: &str,
    method: Method,
    headers: HeaderMap,
) -> Result<Response<Incoming>, HttpError> {
    let bad_url =
        || HttpError::internal(format!("runtime returned an unusable stream URL {url:?}"));
    let uri: Uri = url.parse().map_err(|_| bad_url())?;
    if uri.scheme_str() != Some("http") {
        return Err(bad_url());
    }
    let authority = uri.authority().ok_or_else(bad_url)?.clone();
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port = authority.port_u16().unwrap_or(80);
    let tcp = tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio::net::TcpStream::connect((host, port)),
    )
    .await
    .map_err(|_| HttpError::internal(format!("connecting to {authority}: timed out")))?
    .map_err(|e| HttpError::internal(format!("connecting to {authority}: {e}")))?;
    let _ = tcp.set_nodelay(true);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| HttpError::internal(format!("streaming server {authority}: {e}")))?;
    // Resolves once the connection is upgraded (handing the socket over) or closed.
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, authority.as_str())
        .body(http_body_util::Empty::<Bytes>::new())
        .map_err(|e| HttpError::internal(e.to_string()))?;
    req.headers_mut().extend(headers);
    tokio::time::timeout(RESPONSE_TIMEOUT, sender.send_request(req))
        .await
        .map_err(|_| HttpError::internal(format!("streaming server {authority}: no response")))?
        .map_err(|e| HttpError::internal(format!("streaming server {authority}: {e}")))
}

/// A non-101 answer of the runtime, relayed as is (e.g. containerd's 403 for a refused
/// subprotocol).
async fn relay_refusal(resp: Response<Incoming>) -> Response<Body> {
    let status = resp.status();
    let ctype = resp.headers().get(header::CONTENT_TYPE).cloned();
    let body = http_body_util::Limited::new(resp.into_body(), MAX_ERROR_BODY)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let mut out = Response::new(super::full(body));
    *out.status_mut() = status;
    if let Some(c) = ctype {
        out.headers_mut().insert(header::CONTENT_TYPE, c);
    }
    out
}

/// Proxies an upgrade to `url`: the runtime's 101 head goes back to the client, then
/// bytes are copied both ways.
pub async fn proxy(
    tasks: &Spawner,
    url: &str,
    method: Method,
    headers: HeaderMap,
    client: OnUpgrade,
) -> Result<Response<Body>, HttpError> {
    let mut resp = open_backend(url, method, headers).await?;
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        return Ok(relay_refusal(resp).await);
    }
    let mut out = Response::new(empty());
    *out.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    for (k, v) in resp.headers() {
        if k != header::CONTENT_LENGTH && k != header::TRANSFER_ENCODING {
            out.headers_mut().append(k.clone(), v.clone());
        }
    }
    let backend = hyper::upgrade::on(&mut resp);
    tasks.spawn(relay_bytes(client, backend));
    Ok(out)
}

/// Runs both directions; once one ends, the other gets [`CLOSE_GRACE`] to finish.
async fn both_ways(a: impl Future<Output = ()>, b: impl Future<Output = ()>) {
    tokio::pin!(a);
    tokio::pin!(b);
    tokio::select! {
        _ = &mut a => { let _ = tokio::time::timeout(CLOSE_GRACE, &mut b).await; }
        _ = &mut b => { let _ = tokio::time::timeout(CLOSE_GRACE, &mut a).await; }
    }
}

async fn relay_bytes(client: OnUpgrade, backend: OnUpgrade) {
    let (Ok(c), Ok(b)) = tokio::join!(client, backend) else {
        return;
    };
    let (mut cr, mut cw) = tokio::io::split(TokioIo::new(c));
    let (mut br, mut bw) = tokio::io::split(TokioIo::new(b));
    let up = async move {
        let _ = tokio::io::copy(&mut cr, &mut bw).await;
        let _ = bw.shutdown().await;
    };
    let down = async move {
        let _ = tokio::io::copy(&mut br, &mut cw).await;
        let _ = cw.shutdown().await;
    };
    both_ways(up, down).await;
}

/// Terminates a `SPDY/3.1+portforward.k8s.io` WebSocket and speaks plain SPDY upgrade to
/// the runtime's port-forward URL.
pub async fn tunnel_spdy(
    tasks: &Spawner,
    url: &str,
    accept: &str,
    client: OnUpgrade,
) -> Result<Response<Body>, HttpError> {
    let mut h = HeaderMap::new();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
    h.insert(
        HeaderName::from_static(STREAM_PROTOCOL_HEADER),
        HeaderValue::from_static("portforward.k8s.io"),
    );
    let mut resp = open_backend(url, Method::POST, h).await?;
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        return Ok(relay_refusal(resp).await);
    }
    let accept = HeaderValue::from_str(accept).map_err(|e| HttpError::internal(e.to_string()))?;
    let backend = hyper::upgrade::on(&mut resp);
    tasks.spawn(relay_tunnel(client, backend));
    let mut out = Response::new(empty());
    *out.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let hs = out.headers_mut();
    hs.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    hs.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    hs.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    hs.insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static(TUNNEL_PROTOCOL),
    );
    Ok(out)
}

/// WebSocket binary payloads → raw bytes to the runtime; runtime bytes → binary messages.
async fn relay_tunnel(client: OnUpgrade, backend: OnUpgrade) {
    let (Ok(c), Ok(b)) = tokio::join!(client, backend) else {
        return;
    };
    let ws = WebSocketStream::from_raw_socket(TokioIo::new(c), Role::Server, None).await;
    let (mut ws_tx, mut ws_rx) = ws.split();
    let (mut br, mut bw) = tokio::io::split(TokioIo::new(b));
    let up = async move {
        // Pings are answered by the WebSocket layer while reading; text is not part of
        // the protocol and is dropped.
        while let Some(msg) = ws_rx.next().await {
            match msg {
                Ok(Message::Binary(data)) => {
                    if bw.write_all(&data).await.is_err() {
                        break;
                    }
                }
                Ok(Message::Close(_)) | Err(_) => break,
                Ok(_) => {}
            }
        }
        let _ = bw.shutdown().await;
    };
    let down = async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match br.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let msg = Message::Binary(Bytes::copy_from_slice(&buf[..n]));
                    if ws_tx.send(msg).await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = ws_tx.close().await;
    };
    both_ways(up, down).await;
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

    /// A fake runtime streaming server: records the request head, answers the SPDY
    /// upgrade with 101, then echoes bytes.
    async fn fake_runtime() -> (String, tokio::sync::oneshot::Receiver<String>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/portforward/tok", l.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut head = Vec::new();
            let mut b = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                s.read_exact(&mut b).await.unwrap();
                head.push(b[0]);
            }
            let _ = tx.send(String::from_utf8(head).unwrap());
            s.write_all(
                b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\
X-Stream-Protocol-Version: portforward.k8s.io\r\n\r\n",
            )
            .await
            .unwrap();
            let (mut r, mut w) = s.split();
            let _ = tokio::io::copy(&mut r, &mut w).await;
        });
        (url, rx)
    }

    #[tokio::test]
    async fn tunnel_relays_websocket_payloads_as_spdy_bytes() {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let (url, head) = fake_runtime().await;
        let (_stop, tasks) = Spawner::new();
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            let svc = hyper::service::service_fn(move |mut req: Request<Incoming>| {
                let (tasks, url) = (tasks.clone(), url.clone());
                async move {
                    let key = req.headers()[header::SEC_WEBSOCKET_KEY].clone();
                    let accept = derive_accept_key(key.as_bytes());
                    let client = hyper::upgrade::on(&mut req);
                    let r = tunnel_spdy(&tasks, &url, &accept, client).await.unwrap();
                    Ok::<_, std::convert::Infallible>(r)
                }
            });
            hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(s), svc)
                .with_upgrades()
                .await
                .unwrap();
        });
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut req = format!("ws://{addr}/").into_client_request().unwrap();
        req.headers_mut().insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(TUNNEL_PROTOCOL),
        );
        let (mut ws, resp) = tokio_tungstenite::client_async(req, tcp).await.unwrap();
        assert_eq!(
            resp.headers()[header::SEC_WEBSOCKET_PROTOCOL],
            TUNNEL_PROTOCOL
        );
        let head = head.await.unwrap().to_ascii_lowercase();
        assert!(
            head.starts_with("post /portforward/tok http/1.1\r\n"),
            "{head}"
        );
        assert!(head.contains("upgrade: spdy/3.1\r\n"), "{head}");
        assert!(
            head.contains("x-stream-protocol-version: portforward.k8s.io\r\n"),
            "{head}"
        );
        ws.send(Message::Binary(Bytes::from_static(b"spdy-frame-bytes")))
            .await
            .unwrap();
        let mut got = Vec::new();
        while got.len() < 16 {
            match ws.next().await.unwrap().unwrap() {
                Message::Binary(b) => got.extend_from_slice(&b),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(got, b"spdy-frame-bytes");
        ws.close(None).await.unwrap();
    }
}
