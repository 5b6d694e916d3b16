//! `exec`, `attach` and `portForward`: the kubelet asks CRI for a single-use URL on the
//! runtime's streaming server and proxies the client's upgrade request there (SPDY/3.1
//! or WebSocket), relaying bytes both ways once both sides switched protocols.
//!
//! containerd 1.6 refuses the WebSocket subprotocol `v5.channel.k8s.io` (403), which is
//! the only one kubectl 1.32 offers for exec/attach: such a request is answered 400 so
//! kubectl falls back to SPDY; when older channel protocols are offered too, v5 is
//! removed from the offer. kubectl's port-forward first tries SPDY tunnelled in WebSocket
//! binary messages (`SPDY/3.1+portforward.k8s.io`), which containerd does not speak: the
//! kubelet terminates that WebSocket itself and talks plain SPDY to containerd (SPDY is a
//! byte stream, so message payloads are relayed without parsing SPDY; see [`super::proxy`]).

use super::proxy::{STREAM_PROTOCOL_HEADER, TUNNEL_PROTOCOL, proxy, tunnel_spdy};
use super::{Body, HttpError, State, lookup};
use crate::cri::api;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

const V5_PROTOCOL: &str = "v5.channel.k8s.io";
/// Channel protocols containerd's streaming server accepts.
const RUNTIME_PROTOCOLS: &[&str] = &[
    "v4.channel.k8s.io",
    "v4.base64.channel.k8s.io",
    "v3.channel.k8s.io",
    "v2.channel.k8s.io",
    "channel.k8s.io",
    "base64.channel.k8s.io",
];

/// exec or attach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Exec,
    Attach,
}

/// The stream options of an exec/attach query (upstream's remotecommand options).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamOptions {
    pub command: Vec<String>,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

fn flag(v: &str) -> bool {
    v == "1" || v.eq_ignore_ascii_case("true")
}

impl StreamOptions {
    pub fn from_query(query: &[(String, String)], kind: Kind) -> Result<Self, HttpError> {
        let mut o = StreamOptions::default();
        for (k, v) in query {
            match k.as_str() {
                "command" => o.command.push(v.clone()),
                "stdin" => o.stdin = flag(v),
                "stdout" => o.stdout = flag(v),
                "stderr" => o.stderr = flag(v),
                "tty" => o.tty = flag(v),
                _ => {}
            }
        }
        // A terminal has no separate stderr.
        if o.tty {
            o.stderr = false;
        }
        if !o.stdin && !o.stdout && !o.stderr {
            return Err(HttpError::bad_request(
                "you must specify at least 1 of stdin, stdout, stderr",
            ));
        }
        if kind == Kind::Exec && o.command.is_empty() {
            return Err(HttpError::bad_request(
                "you must specify at least one command for the container",
            ));
        }
        Ok(o)
    }
}

/// The `port` query values of a port-forward request.
pub fn ports_from_query(query: &[(String, String)]) -> Result<Vec<i32>, HttpError> {
    let mut ports = Vec::new();
    for (k, v) in query.iter().filter(|(k, _)| k == "port") {
        for p in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match p.parse::<u16>() {
                Ok(n) if n > 0 => ports.push(i32::from(n)),
                _ => {
                    return Err(HttpError::bad_request(format!(
                        "unable to parse {p:?} as a {k}"
                    )));
                }
            }
        }
    }
    Ok(ports)
}

/// The protocol a request wants to switch to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upgrade {
    WebSocket,
    Spdy,
}

pub fn upgrade_of(headers: &HeaderMap) -> Option<Upgrade> {
    let v = headers.get(header::UPGRADE)?.to_str().ok()?;
    if v.eq_ignore_ascii_case("websocket") {
        Some(Upgrade::WebSocket)
    } else if v.to_ascii_lowercase().starts_with("spdy/") {
        Some(Upgrade::Spdy)
    } else {
        None
    }
}

/// Every subprotocol offered (`Sec-WebSocket-Protocol` may repeat and hold lists).
pub fn offered_protocols(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(String::from)
        .collect()
}

/// What to do with a WebSocket channel-protocol request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsPlan {
    /// Forward, with this `Sec-WebSocket-Protocol` (None: the client offered none).
    Forward(Option<String>),
    /// Answer 400 so the client falls back to SPDY.
    Reject,
}

pub fn channel_plan(offered: &[String]) -> WsPlan {
    if offered.is_empty() {
        // The runtime serves the unnamed base channel protocol.
        return WsPlan::Forward(None);
    }
    let rest: Vec<&str> = offered
        .iter()
        .map(String::as_str)
        .filter(|p| *p != V5_PROTOCOL)
        .collect();
    if rest.iter().any(|p| RUNTIME_PROTOCOLS.contains(p)) {
        WsPlan::Forward(Some(rest.join(", ")))
    } else {
        WsPlan::Reject
    }
}

fn unsupported_ws(offered: &[String]) -> HttpError {
    HttpError::bad_request(format!(
        "unsupported WebSocket subprotocol(s) {offered:?}; supported: {RUNTIME_PROTOCOLS:?} (or SPDY/3.1)"
    ))
}

fn upgrade_required() -> HttpError {
    HttpError::bad_request("Upgrade request required")
}

/// The headers sent to the runtime for a proxied upgrade.
fn forward_headers(h: &HeaderMap, up: Upgrade, ws_protocol: Option<String>) -> HeaderMap {
    let mut out = HeaderMap::new();
    out.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Some(v) = h.get(header::UPGRADE) {
        out.insert(header::UPGRADE, v.clone());
    }
    for v in h.get_all(STREAM_PROTOCOL_HEADER) {
        out.append(HeaderName::from_static(STREAM_PROTOCOL_HEADER), v.clone());
    }
    if up == Upgrade::WebSocket {
        for name in [header::SEC_WEBSOCKET_KEY, header::SEC_WEBSOCKET_VERSION] {
            if let Some(v) = h.get(&name) {
                out.insert(name, v.clone());
            }
        }
        if let Some(v) = ws_protocol.and_then(|p| HeaderValue::from_str(&p).ok()) {
            out.insert(header::SEC_WEBSOCKET_PROTOCOL, v);
        }
    }
    out
}

/// `GET|POST /exec|attach/{ns}/{pod}[/{uid}]/{container}`.
pub async fn exec_or_attach(
    st: &State,
    mut req: Request<Incoming>,
    kind: Kind,
    query: &[(String, String)],
    (namespace, pod, uid, container): (&str, &str, Option<&str>, &str),
) -> Result<Response<Body>, HttpError> {
    let opts = StreamOptions::from_query(query, kind)?;
    let pr = lookup::find_pod(st, namespace, pod, uid)
        .await?
        .ok_or_else(|| HttpError::not_found("pod does not exist"))?;
    if !pr.has_container(container) {
        return Err(HttpError::not_found(format!(
            "container {container:?} not found in pod {pod:?}"
        )));
    }
    let up = upgrade_of(req.headers()).ok_or_else(upgrade_required)?;
    let ws_protocol = match up {
        Upgrade::Spdy => None,
        Upgrade::WebSocket => {
            let offered = offered_protocols(req.headers());
            match channel_plan(&offered) {
                WsPlan::Forward(p) => p,
                WsPlan::Reject => return Err(unsupported_ws(&offered)),
            }
        }
    };
    let id = lookup::running_container(st, &pr, container).await?;
    let url = match kind {
        Kind::Exec => {
            st.cri
                .exec(api::ExecRequest {
                    container_id: id,
                    cmd: opts.command,
                    tty: opts.tty,
                    stdin: opts.stdin,
                    stdout: opts.stdout,
                    stderr: opts.stderr,
                })
                .await
        }
        Kind::Attach => {
            st.cri
                .attach(api::AttachRequest {
                    container_id: id,
                    stdin: opts.stdin,
                    tty: opts.tty,
                    stdout: opts.stdout,
                    stderr: opts.stderr,
                })
                .await
        }
    }
    .map_err(HttpError::runtime)?;
    let headers = forward_headers(req.headers(), up, ws_protocol);
    let client = hyper::upgrade::on(&mut req);
    proxy(&st.tasks, &url, req.method().clone(), headers, client).await
}

/// `GET|POST /portForward/{ns}/{pod}[/{uid}]`.
pub async fn port_forward(
    st: &State,
    mut req: Request<Incoming>,
    query: &[(String, String)],
    (namespace, pod, uid): (&str, &str, Option<&str>),
) -> Result<Response<Body>, HttpError> {
    let ports = ports_from_query(query)?;
    let pr = lookup::find_pod(st, namespace, pod, uid)
        .await?
        .ok_or_else(|| HttpError::not_found("pod does not exist"))?;
    let up = upgrade_of(req.headers()).ok_or_else(upgrade_required)?;
    let offered = offered_protocols(req.headers());
    let tunnel = up == Upgrade::WebSocket && offered.iter().any(|p| p == TUNNEL_PROTOCOL);
    let ws_protocol = match up {
        Upgrade::WebSocket if !tunnel => match channel_plan(&offered) {
            WsPlan::Forward(p) => p,
            WsPlan::Reject => return Err(unsupported_ws(&offered)),
        },
        _ => None,
    };
    let key = if tunnel {
        let version = req.headers().get(header::SEC_WEBSOCKET_VERSION);
        if version.and_then(|v| v.to_str().ok()) != Some("13") {
            return Err(HttpError::bad_request("unsupported Sec-WebSocket-Version"));
        }
        let key = req
            .headers()
            .get(header::SEC_WEBSOCKET_KEY)
            .ok_or_else(|| HttpError::bad_request("missing Sec-WebSocket-Key"))?;
        Some(derive_accept_key(key.as_bytes()))
    } else {
        None
    };
    let sandbox = lookup::ready_sandbox(st, &pr).await?;
    let url = st
        .cri
        .port_forward(&sandbox, ports)
        .await
        .map_err(HttpError::runtime)?;
    let client = hyper::upgrade::on(&mut req);
    match key {
        Some(accept) => tunnel_spdy(&st.tasks, &url, &accept, client).await,
        None => {
            let headers = forward_headers(req.headers(), up, ws_protocol);
            proxy(&st.tasks, &url, req.method().clone(), headers, client).await
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn offered(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn websocket_subprotocol_rule() {
        assert_eq!(
            channel_plan(&offered(&["v5.channel.k8s.io"])),
            WsPlan::Reject
        );
        assert_eq!(channel_plan(&offered(&["foo"])), WsPlan::Reject);
        assert_eq!(channel_plan(&[]), WsPlan::Forward(None));
        assert_eq!(
            channel_plan(&offered(&[
                "v5.channel.k8s.io",
                "v4.channel.k8s.io",
                "channel.k8s.io"
            ])),
            WsPlan::Forward(Some("v4.channel.k8s.io, channel.k8s.io".into()))
        );
        assert_eq!(
            channel_plan(&offered(&["base64.channel.k8s.io"])),
            WsPlan::Forward(Some("base64.channel.k8s.io".into()))
        );
        let mut h = HeaderMap::new();
        h.append(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("v5.channel.k8s.io, v4.channel.k8s.io"),
        );
        h.append(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("channel.k8s.io"),
        );
        assert_eq!(
            offered_protocols(&h),
            ["v5.channel.k8s.io", "v4.channel.k8s.io", "channel.k8s.io"]
        );
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(header::SEC_WEBSOCKET_KEY, HeaderValue::from_static("k"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("secret"));
        let f = forward_headers(&h, Upgrade::WebSocket, Some("v4.channel.k8s.io".into()));
        assert_eq!(f[header::SEC_WEBSOCKET_PROTOCOL], "v4.channel.k8s.io");
        assert_eq!(f[header::CONNECTION], "Upgrade");
        assert_eq!(f[header::SEC_WEBSOCKET_KEY], "k");
        assert!(f.get(header::AUTHORIZATION).is_none());
    }

    #[test]
    fn upgrade_headers() {
        let mut h = HeaderMap::new();
        assert_eq!(upgrade_of(&h), None);
        h.insert(header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
        assert_eq!(upgrade_of(&h), Some(Upgrade::Spdy));
        h.append(
            STREAM_PROTOCOL_HEADER,
            HeaderValue::from_static("v4.channel.k8s.io"),
        );
        h.append(
            STREAM_PROTOCOL_HEADER,
            HeaderValue::from_static("v3.channel.k8s.io"),
        );
        let f = forward_headers(&h, Upgrade::Spdy, None);
        assert_eq!(f.get_all(STREAM_PROTOCOL_HEADER).iter().count(), 2);
        assert_eq!(f[header::UPGRADE], "SPDY/3.1");
        h.insert(header::UPGRADE, HeaderValue::from_static("WebSocket"));
        assert_eq!(upgrade_of(&h), Some(Upgrade::WebSocket));
        h.insert(header::UPGRADE, HeaderValue::from_static("h2c"));
        assert_eq!(upgrade_of(&h), None);
    }

    #[test]
    fn stream_options() {
        let o = StreamOptions::from_query(
            &q(&[
                ("command", "sh"),
                ("command", "-c"),
                ("stdout", "1"),
                ("stderr", "true"),
                ("tty", "1"),
            ]),
            Kind::Exec,
        )
        .unwrap();
        assert_eq!(o.command, ["sh", "-c"]);
        assert!(o.stdout && o.tty && !o.stderr && !o.stdin);
        let none = StreamOptions::from_query(&q(&[("command", "ls")]), Kind::Exec).unwrap_err();
        assert_eq!(none.status, 400);
        let nocmd = StreamOptions::from_query(&q(&[("stdout", "1")]), Kind::Exec).unwrap_err();
        assert_eq!(nocmd.status, 400);
        assert!(StreamOptions::from_query(&q(&[("stdout", "1")]), Kind::Attach).is_ok());
        assert_eq!(
            ports_from_query(&q(&[("port", "80"), ("port", "8080,9090")])).unwrap(),
            [80, 8080, 9090]
        );
        assert_eq!(
            ports_from_query(&q(&[("port", "0")])).unwrap_err().status,
            400
        );
        assert_eq!(
            ports_from_query(&q(&[("port", "x")])).unwrap_err().status,
            400
        );
        assert_eq!(
            ports_from_query(&q(&[("port", "70000")]))
                .unwrap_err()
                .status,
            400
        );
    }
}
