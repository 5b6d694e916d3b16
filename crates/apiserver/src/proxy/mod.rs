//! Subresources served by the node's kubelet, proxied as upstream kube-apiserver does:
//! `pods/log` (streamed GET), `pods/exec`, `pods/attach`, `pods/portforward` (HTTP
//! upgrades relayed byte for byte) and `nodes/proxy` (plain requests forwarded).
//!
//! - [`options`]: query decoding/validation and container selection.
//! - [`kubelet`]: node → kubelet address, TLS client, one-shot connections.
//! - [`upgrade`]: the upgrade handshake and the byte relay.
//!
//! `pods/proxy` and `services/proxy` go to the pod or service endpoint itself:
//! - [`backend`]: the entry point and the backend path.
//! - [`target`]: `[scheme:]name[:port]` ids, pod and service endpoint resolution.
//! - [`http`]: the reverse proxy (plain requests and upgrades).
//! - [`rewrite`]: `Location` and HTML link rewriting.

pub mod backend;
pub mod http;
pub mod kubelet;
pub mod options;
pub mod rewrite;
pub mod target;
pub mod upgrade;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use futures::StreamExt;
use hyper::upgrade::OnUpgrade;
use kubelet::KubeletAddr;
use options::{LogOptions, PortForwardOptions, RawQuery, StreamOptions};
use serde_json::{Value, json};

/// Most of a kubelet error body read into a Status message (upstream's limit).
const MAX_ERROR_BODY: usize = 50_000;

/// What the proxy needs of the client's request.
pub struct ProxyRequest {
    pub method: Method,
    pub namespace: Option<String>,
    /// The pod or node name.
    pub name: String,
    /// The raw query string (repeated keys such as `command` matter).
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The connection's upgrade handle (HTTP/1.1 only).
    pub upgrade: Option<OnUpgrade>,
}

/// `pods/<name>/{log,exec,attach,portforward}`.
pub async fn pod(state: &AppState, sub: &str, req: ProxyRequest) -> ApiResult<Response<Body>> {
    match (sub, &req.method) {
        ("log", &Method::GET) => pod_log(state, req).await,
        ("exec" | "attach" | "portforward", &Method::GET | &Method::POST) => {
            pod_connect(state, sub, req).await
        }
        (s, m) => Err(ApiError::method_not_allowed(m.as_str(), s)),
    }
}

/// The pod named by the request, with its namespace.
async fn get_pod(state: &AppState, req: &ProxyRequest) -> ApiResult<(Value, String)> {
    let info = r8s_api::catalog::find("", "v1", "pods")
        .ok_or_else(|| ApiError::internal("pods are not served"))?;
    let pod = state
        .registry
        .get(info, req.namespace.as_deref(), &req.name)
        .await?;
    let ns = req.namespace.clone().unwrap_or_default();
    Ok((pod, ns))
}

fn node_name(pod: &Value) -> &str {
    pod.pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// GET pods/<name>/log: stream `/containerLogs/...` from the kubelet.
async fn pod_log(state: &AppState, req: ProxyRequest) -> ApiResult<Response<Body>> {
    let opts = LogOptions::parse(&RawQuery::parse(req.query.as_deref()))?;
    opts.validate(&req.name)?;
    let (pod, ns) = get_pod(state, &req).await?;
    let container = options::select_container(&pod, &opts.container, &req.name)?;
    let node = node_name(&pod);
    if node.is_empty() {
        // Upstream returns an empty location, which its stream handler answers with 204.
        let mut resp = Response::new(Body::empty());
        *resp.status_mut() = StatusCode::NO_CONTENT;
        return Ok(resp);
    }
    let addr = kubelet::locate(state, node).await?;
    let path = with_query(
        &format!("/containerLogs/{ns}/{}/{container}", req.name),
        &opts.kubelet_query(),
    );
    let kreq = kubelet_request(Method::GET, &addr, &path, &HeaderMap::new(), Bytes::new())?;
    let resp = kubelet::send(&state.kubelet_tls, &addr, kreq, false)
        .await
        .map_err(|e| {
            ApiError::internal(format!("Get \"https://{}{path}\": {e}", addr.authority()))
        })?;
    let status = resp.status();
    if !(200..=206).contains(&status.as_u16()) {
        let body = read_limited(Body::new(resp.into_body()), MAX_ERROR_BODY).await;
        return Err(kubelet_log_error(status, &body, &req.name));
    }
    // Streamed as the kubelet writes: hyper sends each chunk when it arrives.
    let mut out = Response::new(Body::new(resp.into_body()));
    out.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(out)
}

/// GET/POST pods/<name>/{exec,attach,portforward}: proxy the upgrade to the kubelet.
/// Checks run in upstream's order: options, pod, container, node, upgrade, streams.
async fn pod_connect(state: &AppState, sub: &str, req: ProxyRequest) -> ApiResult<Response<Body>> {
    let query = RawQuery::parse(req.query.as_deref());
    let exec = sub == "exec";
    let forward = if sub == "portforward" {
        Some(PortForwardOptions::parse(&query)?)
    } else {
        None
    };
    let mut streams = StreamOptions::parse(&query, exec);
    let (pod, ns) = get_pod(state, &req).await?;
    let target = match &forward {
        Some(f) => with_query(
            &format!("/portForward/{ns}/{}", req.name),
            &f.kubelet_query(),
        ),
        None => {
            let c = options::select_container(&pod, &streams.container, &req.name)?;
            // The kubelet's paths are `/exec/...` and `/attach/...`.
            format!("/{sub}/{ns}/{}/{c}", req.name)
        }
    };
    let node = node_name(&pod);
    if node.is_empty() {
        return Err(ApiError::bad_request(format!(
            "pod {} does not have a host assigned",
            req.name
        )));
    }
    let addr = kubelet::locate(state, node).await?;
    if !upgrade::is_upgrade_request(&req.headers) {
        return Err(ApiError::bad_request("Upgrade request required"));
    }
    let Some(on_upgrade) = req.upgrade else {
        return Err(ApiError::bad_request(
            "Upgrade request required (upgrades need HTTP/1.1)",
        ));
    };
    let path = if forward.is_some() {
        target
    } else {
        streams.check(exec)?;
        with_query(&target, &streams.kubelet_query())
    };
    upgrade::proxy(
        &state.kubelet_tls,
        &addr,
        req.method,
        &path,
        &req.headers,
        on_upgrade,
    )
    .await
}

/// `nodes/<name>/proxy/<path>`: forward the request to the kubelet and stream its
/// answer back unchanged.
pub async fn node(state: &AppState, path: &str, req: ProxyRequest) -> ApiResult<Response<Body>> {
    let addr = kubelet::locate(state, &req.name).await?;
    let path = with_query(&format!("/{path}"), req.query.as_deref().unwrap_or(""));
    let mut forwarded = HeaderMap::new();
    for name in [header::ACCEPT, header::CONTENT_TYPE, header::USER_AGENT] {
        for v in req.headers.get_all(&name) {
            forwarded.append(name.clone(), v.clone());
        }
    }
    let kreq = kubelet_request(req.method, &addr, &path, &forwarded, req.body)?;
    let resp = kubelet::send(&state.kubelet_tls, &addr, kreq, false)
        .await
        .map_err(|e| ApiError::unavailable(format!("error trying to reach service: {e}")))?;
    let (parts, body) = resp.into_parts();
    let mut out = Response::new(Body::new(body));
    *out.status_mut() = parts.status;
    for (name, value) in &parts.headers {
        if !matches!(
            name.as_str(),
            "connection" | "keep-alive" | "transfer-encoding" | "content-length" | "date"
        ) {
            out.headers_mut().append(name.clone(), value.clone());
        }
    }
    Ok(out)
}

fn with_query(path: &str, query: &str) -> String {
    if query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{query}")
    }
}

/// A plain request for the kubelet (origin-form target, `Host` = the kubelet).
fn kubelet_request(
    method: Method,
    addr: &KubeletAddr,
    path: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> ApiResult<Request<Body>> {
    let mut builder = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        builder = builder.header(name, value);
    }
    builder
        .header(header::HOST, addr.authority())
        .body(Body::from(body))
        .map_err(|e| ApiError::bad_request(format!("invalid proxy request: {e}")))
}

/// Up to `limit` bytes of a body, lossily as text (a read error ends it early).
async fn read_limited(body: Body, limit: usize) -> String {
    let mut out = Vec::new();
    let mut stream = body.into_data_stream();
    while let Some(Ok(chunk)) = stream.next().await {
        let room = limit.saturating_sub(out.len());
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if out.len() >= limit {
            break;
        }
    }
    String::from_utf8_lossy(&out).trim_end().to_string()
}

/// A kubelet's non-2xx answer to a log request as a Status (upstream's
/// `GenericHttpResponseChecker` for `pods/log`).
fn kubelet_log_error(code: StatusCode, body: &str, name: &str) -> ApiError {
    match code.as_u16() {
        400 => ApiError::bad_request(body),
        500 => ApiError::internal(body),
        _ => generic_server_response(code, body, name),
    }
}

/// Upstream's `NewGenericServerResponse` (empty verb) for `pods/log`.
fn generic_server_response(code: StatusCode, body: &str, name: &str) -> ApiError {
    let (reason, message) = match code.as_u16() {
        404 => (
            "NotFound",
            "the server could not find the requested resource".to_string(),
        ),
        401 => (
            "Unauthorized",
            "the server has asked for the client to provide credentials".to_string(),
        ),
        403 => ("Forbidden", body.to_string()),
        405 => (
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource".to_string(),
        ),
        409 => ("Conflict", "the server reported a conflict".to_string()),
        422 => (
            "Invalid",
            "the server rejected our request due to an error in our request".to_string(),
        ),
        429 => (
            "TooManyRequests",
            "the server has received too many requests and has asked us to try again later"
                .to_string(),
        ),
        503 => (
            "ServiceUnavailable",
            "the server is currently unable to handle the request".to_string(),
        ),
        504 => (
            "Timeout",
            "the server was unable to return a response in the time allotted, but may still be processing the request".to_string(),
        ),
        c if c >= 500 => (
            "InternalError",
            format!("an error on the server ({body:?}) has prevented the request from succeeding"),
        ),
        c => (
            "",
            format!("the server responded with the status code {c} but did not return more information"),
        ),
    };
    let mut err = ApiError::from_parts(code, reason, format!("{message} ( pods/log {name})"));
    err.details = Some(json!({"name": name, "kind": "pods/log"}));
    err
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn kubelet_log_errors_become_statuses() {
        let e = kubelet_log_error(
            StatusCode::BAD_REQUEST,
            "container \"c\" in pod \"p\" is waiting to start: ContainerCreating",
            "p",
        );
        assert_eq!(e.code, StatusCode::BAD_REQUEST);
        assert_eq!(e.reason, "BadRequest");
        assert_eq!(
            e.message,
            "container \"c\" in pod \"p\" is waiting to start: ContainerCreating"
        );
        let e = kubelet_log_error(StatusCode::INTERNAL_SERVER_ERROR, "boom", "p");
        assert_eq!(e.message, "Internal error occurred: boom");
        let e = kubelet_log_error(StatusCode::NOT_FOUND, "x", "p");
        assert_eq!(e.reason, "NotFound");
        assert_eq!(
            e.message,
            "the server could not find the requested resource ( pods/log p)"
        );
        let e = kubelet_log_error(StatusCode::FORBIDDEN, "no", "p");
        assert_eq!(
            (e.code, e.message.as_str()),
            (StatusCode::FORBIDDEN, "no ( pods/log p)")
        );
    }

    #[tokio::test]
    async fn read_limited_truncates() {
        let body = Body::from("abcdef\n");
        assert_eq!(read_limited(body, 4).await, "abcd");
        assert_eq!(read_limited(Body::from("ok\n"), 100).await, "ok");
    }
}
