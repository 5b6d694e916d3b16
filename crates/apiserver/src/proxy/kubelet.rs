//! Finding a node's kubelet and talking HTTP/1.1 to it over mutually authenticated TLS:
//! the API server presents a client certificate from the cluster CA and verifies the
//! kubelet's serving certificate against the same CA.

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::tls::{TlsError, crypto_provider};
use axum::body::Body;
use axum::http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// The kubelet port when the node does not publish one (`--kubelet-port` default).
pub const DEFAULT_KUBELET_PORT: u16 = 10250;

/// Bound on TCP connect plus TLS handshake, so an unreachable node fails fast.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Failures talking to a kubelet (rendered into the Status message).
#[derive(Debug, thiserror::Error)]
pub enum KubeletError {
    #[error("dial tcp {addr}: {source}")]
    Dial {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("dial tcp {addr}: i/o timeout")]
    Timeout { addr: String },
    #[error("tls handshake with {addr}: {source}")]
    Tls {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid kubelet host {0:?}")]
    Host(String),
    #[error(transparent)]
    Http(#[from] hyper::Error),
}

/// Where a node's kubelet listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeletAddr {
    pub host: String,
    pub port: u16,
}

impl KubeletAddr {
    /// From a Node: the InternalIP address (else the first address) and
    /// `status.daemonEndpoints.kubeletEndpoint.Port` (else 10250). `None` without
    /// any address.
    pub fn from_node(node: &Value) -> Option<Self> {
        let addrs = node.pointer("/status/addresses")?.as_array()?;
        let address = |a: &Value| a.get("address").and_then(Value::as_str).map(str::to_string);
        let host = addrs
            .iter()
            .find(|a| a.get("type").and_then(Value::as_str) == Some("InternalIP"))
            .and_then(address)
            .or_else(|| addrs.first().and_then(address))
            .filter(|h| !h.is_empty())?;
        let port = node
            .pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
            .and_then(Value::as_u64)
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p > 0)
            .unwrap_or(DEFAULT_KUBELET_PORT);
        Some(KubeletAddr { host, port })
    }

    /// `host:port`, with brackets around IPv6 addresses (for URLs and `Host`).
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// The kubelet of node `node_name` (404 when the Node does not exist, 500 when it has
/// no address, as upstream's connection-info getter).
pub async fn locate(state: &AppState, node_name: &str) -> ApiResult<KubeletAddr> {
    let info = r8s_api::catalog::find("", "v1", "nodes")
        .ok_or_else(|| ApiError::internal("nodes are not served"))?;
    let node = state.registry.get(info, None, node_name).await?;
    KubeletAddr::from_node(&node).ok_or_else(|| {
        let known = node
            .pointer("/status/addresses")
            .cloned()
            .unwrap_or(Value::Array(Vec::new()));
        ApiError::internal(format!(
            "no preferred addresses found; known addresses: {known}"
        ))
    })
}

/// The TLS client configuration for kubelets: trusts `ca_pem`, presents the given
/// client certificate, HTTP/1.1 only (upgrades need it).
pub fn client_config(
    ca_pem: &str,
    cert_pem: &str,
    key_pem: &str,
) -> Result<Arc<ClientConfig>, TlsError> {
    let pem_err = |what: &'static str| {
        move |e: rustls::pki_types::pem::Error| TlsError::Pem {
            what,
            reason: e.to_string(),
        }
    };
    let mut roots = RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(ca.map_err(pem_err("CA certificate"))?)?;
    }
    let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_err("kubelet client certificate"))?;
    let key =
        PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(pem_err("kubelet client key"))?;
    let mut config = ClientConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// TCP + TLS to the kubelet, both within [`CONNECT_TIMEOUT`]. The server name checked
/// against the kubelet's certificate is the host dialled (an IP SAN for addresses).
pub async fn dial(
    tls: &Arc<ClientConfig>,
    addr: &KubeletAddr,
) -> Result<TlsStream<TcpStream>, KubeletError> {
    let authority = addr.authority();
    let name = ServerName::try_from(addr.host.clone())
        .map_err(|_| KubeletError::Host(addr.host.clone()))?;
    let connector = TlsConnector::from(tls.clone());
    let attempt = async {
        let tcp = TcpStream::connect((addr.host.as_str(), addr.port))
            .await
            .map_err(|source| KubeletError::Dial {
                addr: authority.clone(),
                source,
            })?;
        let _ = tcp.set_nodelay(true);
        connector
            .connect(name, tcp)
            .await
            .map_err(|source| KubeletError::Tls {
                addr: authority.clone(),
                source,
            })
    };
    tokio::time::timeout(CONNECT_TIMEOUT, attempt)
        .await
        .map_err(|_| KubeletError::Timeout {
            addr: authority.clone(),
        })?
}

/// Send one request on a fresh connection and return the response head; the body
/// streams as the kubelet writes it. With `upgrades`, the connection may switch
/// protocols (`hyper::upgrade::on` on the response then yields the raw stream).
pub async fn send(
    tls: &Arc<ClientConfig>,
    addr: &KubeletAddr,
    req: Request<Body>,
    upgrades: bool,
) -> Result<Response<Incoming>, KubeletError> {
    let stream = dial(tls, addr).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let authority = addr.authority();
    tokio::spawn(async move {
        let result = if upgrades {
            conn.with_upgrades().await
        } else {
            conn.await
        };
        if let Err(e) = result {
            tracing::debug!(kubelet = %authority, error = %e, "kubelet connection ended with error");
        }
    });
    Ok(sender.send_request(req).await?)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn address_prefers_internal_ip_and_published_port() {
        let node = json!({"status": {
            "addresses": [
                {"type": "Hostname", "address": "n1"},
                {"type": "InternalIP", "address": "10.0.0.5"},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10260}},
        }});
        let a = KubeletAddr::from_node(&node).unwrap();
        assert_eq!(a.authority(), "10.0.0.5:10260");

        let node = json!({"status": {"addresses": [{"type": "Hostname", "address": "n1"}]}});
        assert_eq!(
            KubeletAddr::from_node(&node).unwrap().authority(),
            "n1:10250"
        );

        let node = json!({"status": {
            "addresses": [{"type": "InternalIP", "address": "fd00::1"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
        }});
        assert_eq!(
            KubeletAddr::from_node(&node).unwrap().authority(),
            "[fd00::1]:10250"
        );
        assert_eq!(KubeletAddr::from_node(&json!({"status": {}})), None);
        assert_eq!(
            KubeletAddr::from_node(&json!({"status": {"addresses": []}})),
            None
        );
    }

    #[test]
    fn client_config_rejects_bad_pem() {
        assert!(matches!(
            client_config("nope", "nope", "nope"),
            Err(TlsError::Pem { .. })
        ));
    }

    #[tokio::test]
    async fn unreachable_kubelet_fails_fast() {
        let dir = tempfile::tempdir().unwrap();
        let pki =
            crate::pki::load_or_create(dir.path(), &crate::pki::SanConfig::default()).unwrap();
        let (c, k) = pki
            .sign_client_cert("kube-apiserver-kubelet-client", &["system:masters"])
            .unwrap();
        let tls = client_config(&pki.ca_pem, &c, &k).unwrap();
        // A port nothing listens on: refused at once.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let addr = KubeletAddr {
            host: "127.0.0.1".into(),
            port,
        };
        let err = dial(&tls, &addr).await.unwrap_err();
        assert!(matches!(err, KubeletError::Dial { .. }), "{err}");
        assert!(err.to_string().starts_with("dial tcp 127.0.0.1:"), "{err}");
    }
}
