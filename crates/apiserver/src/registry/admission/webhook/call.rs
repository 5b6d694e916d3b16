//! One POST of an AdmissionReview to a webhook over HTTPS (HTTP/1.1, a fresh connection
//! per call), within the webhook's timeout.
//!
//! A `clientConfig.service` is reached at a ready endpoint of the Service (from its
//! EndpointSlices, the port named like the Service port), else at its ClusterIP (the
//! node's service proxy forwards it); the certificate must be valid for
//! `<service>.<namespace>.svc`, as upstream's service resolver asks.

use super::config::{Client, Endpoint, Hook};
use crate::registry::{ListParams, Registry};
use axum::body::Body;
use axum::http::{Request, header};
use hyper_util::rt::TokioIo;
use r8s_api::catalog;
use r8s_api::selector::LabelSelector;
use rustls::pki_types::ServerName;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Largest webhook answer read (upstream reads up to its request body limit).
const MAX_RESPONSE_BYTES: usize = 16 << 20;

/// Where one call goes.
struct Target {
    /// What is dialled (IP address or DNS name).
    host: String,
    port: u16,
    /// The name the server's certificate must carry.
    server_name: String,
    /// The `Host` header.
    authority: String,
    /// Path and query, with `timeout=` added.
    path: String,
}

impl Target {
    fn url(&self) -> String {
        format!("https://{}{}", self.authority, self.path)
    }
}

/// POSTs `body` to the webhook and returns the answer's body; the error is upstream's
/// `ErrCallingWebhook` reason (`failed to call webhook: Post "<url>": …`).
pub(crate) async fn post(
    registry: &Registry,
    hook: &Hook,
    body: Vec<u8>,
) -> Result<Vec<u8>, String> {
    let client = hook
        .client
        .as_ref()
        .map_err(|e| format!("could not get REST client: {e}"))?;
    let timeout = hook.timeout;
    let attempt = async {
        let target = resolve(registry, client, timeout.as_secs()).await?;
        let url = target.url();
        send(client, &target, body)
            .await
            .map_err(|e| format!("failed to call webhook: Post \"{url}\": {e}"))
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(format!(
            "failed to call webhook: Post \"{}\": context deadline exceeded",
            display_url(&client.endpoint)
        )),
    }
}

fn display_url(endpoint: &Endpoint) -> String {
    match endpoint {
        Endpoint::Url { host, port, path } => format!("https://{}{path}", authority(host, *port)),
        Endpoint::Service {
            namespace,
            name,
            port,
            path,
        } => format!("https://{name}.{namespace}.svc:{port}{path}"),
    }
}

fn authority(host: &str, port: u16) -> String {
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    if port == 443 {
        host
    } else {
        format!("{host}:{port}")
    }
}

/// `path` with upstream's `timeout=<n>s` query parameter.
fn with_timeout(path: &str, secs: u64) -> String {
    let sep = if path.contains('?') { '&' } else { '?' };
    format!("{path}{sep}timeout={secs}s")
}

async fn resolve(
    registry: &Registry,
    client: &Client,
    timeout_secs: u64,
) -> Result<Target, String> {
    match &client.endpoint {
        Endpoint::Url { host, port, path } => Ok(Target {
            host: host.clone(),
            port: *port,
            server_name: host.clone(),
            authority: authority(host, *port),
            path: with_timeout(path, timeout_secs),
        }),
        Endpoint::Service {
            namespace,
            name,
            port,
            path,
        } => {
            let (host, dial_port) = service_address(registry, namespace, name, *port).await?;
            let server_name = format!("{name}.{namespace}.svc");
            Ok(Target {
                host,
                port: dial_port,
                authority: format!("{server_name}:{port}"),
                server_name,
                path: with_timeout(path, timeout_secs),
            })
        }
    }
}

/// A ready endpoint of the Service's port `port`, else its ClusterIP.
async fn service_address(
    registry: &Registry,
    namespace: &str,
    name: &str,
    port: u16,
) -> Result<(String, u16), String> {
    let services = catalog::find("", "v1", "services").ok_or("services are not served")?;
    let svc = registry
        .get(services, Some(namespace), name)
        .await
        .map_err(|e| e.message)?;
    let svc_port = svc
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|p| p.get("port").and_then(Value::as_u64) == Some(u64::from(port)))
        .ok_or_else(|| format!("service \"{namespace}/{name}\" has no port {port}"))?;
    let port_name = svc_port.get("name").and_then(Value::as_str).unwrap_or("");
    if let Some(endpoint) = ready_endpoint(registry, namespace, name, port_name).await {
        return Ok(endpoint);
    }
    let cluster_ip = svc
        .pointer("/spec/clusterIP")
        .and_then(Value::as_str)
        .filter(|ip| !ip.is_empty() && *ip != "None")
        .ok_or_else(|| {
            format!("service \"{namespace}/{name}\" has no ready endpoints and no cluster IP")
        })?;
    Ok((cluster_ip.to_string(), port))
}

async fn ready_endpoint(
    registry: &Registry,
    namespace: &str,
    service: &str,
    port_name: &str,
) -> Option<(String, u16)> {
    let slices = catalog::find("discovery.k8s.io", "v1", "endpointslices")?;
    let selector = LabelSelector::parse(&format!("kubernetes.io/service-name={service}")).ok()?;
    let params = ListParams {
        label_selector: Some(selector),
        ..Default::default()
    };
    let page = registry.list(slices, Some(namespace), &params).await.ok()?;
    page.items.iter().find_map(|slice| {
        let port = slice
            .get("ports")
            .and_then(Value::as_array)?
            .iter()
            .find(|p| p.get("name").and_then(Value::as_str).unwrap_or("") == port_name)?
            .get("port")
            .and_then(Value::as_u64)
            .and_then(|p| u16::try_from(p).ok())?;
        let address = slice
            .get("endpoints")
            .and_then(Value::as_array)?
            .iter()
            .filter(|e| e.pointer("/conditions/ready").and_then(Value::as_bool) != Some(false))
            .find_map(|e| e.pointer("/addresses/0").and_then(Value::as_str))?;
        Some((address.to_string(), port))
    })
}

async fn send(client: &Client, target: &Target, body: Vec<u8>) -> Result<Vec<u8>, String> {
    let name = ServerName::try_from(target.server_name.clone())
        .map_err(|_| format!("invalid server name {:?}", target.server_name))?;
    let tcp = TcpStream::connect((target.host.as_str(), target.port))
        .await
        .map_err(|e| format!("dial tcp {}:{}: {e}", target.host, target.port))?;
    let _ = tcp.set_nodelay(true);
    let tls = TlsConnector::from(client.tls.clone())
        .connect(name, tcp)
        .await
        .map_err(|e| format!("tls: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "admission webhook connection ended with error");
        }
    });
    let req = Request::post(&target.path)
        .header(header::HOST, &target.authority)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/json")
        .header(header::CONTENT_LENGTH, body.len())
        .body(Body::from(body))
        .map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status();
    let bytes = axum::body::to_bytes(Body::new(resp.into_body()), MAX_RESPONSE_BYTES)
        .await
        .map_err(|e| format!("reading the response: {e}"))?;
    if !status.is_success() {
        let text = String::from_utf8_lossy(&bytes);
        let text: String = text.chars().take(256).collect();
        return Err(format!(
            "the server responded with status code {} ({})",
            status.as_u16(),
            text.trim()
        ));
    }
    Ok(bytes.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_timeouts() {
        assert_eq!(with_timeout("/m", 10), "/m?timeout=10s");
        assert_eq!(with_timeout("/m?a=b", 3), "/m?a=b&timeout=3s");
        assert_eq!(authority("127.0.0.1", 443), "127.0.0.1");
        assert_eq!(authority("::1", 8443), "[::1]:8443");
        assert_eq!(
            display_url(&Endpoint::Service {
                namespace: "ns".into(),
                name: "svc".into(),
                port: 443,
                path: "/v".into()
            }),
            "https://svc.ns.svc:443/v"
        );
    }
}
