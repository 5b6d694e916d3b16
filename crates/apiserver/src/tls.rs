//! TLS for the API server and the identities it authenticates.
//!
//! Like kube-apiserver, the server *requests* a client certificate but does not
//! require one: a presented certificate must chain to the cluster CA (otherwise the
//! handshake fails), and its CN/O become the user and groups. Clients without a
//! certificate may authenticate with a bearer token instead ([`token_identity`]),
//! or stay anonymous.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, ServerConnection};

use crate::pki::Pki;

/// User name given to requests bearing the cluster join token.
pub const TOKEN_USER: &str = "r8s-token";

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("invalid PEM in {what}: {reason}")]
    Pem { what: &'static str, reason: String },
    #[error(transparent)]
    Rustls(#[from] rustls::Error),
    #[error("client verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

/// An authenticated user, as Kubernetes' `user.Info` (name and groups).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    pub groups: Vec<String>,
}

/// The ring provider, passed explicitly so no process-wide default must be installed.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A rustls server config serving `pki`'s serving certificate over TLS 1.2/1.3 with
/// ALPN `h2`, `http/1.1`, optionally authenticating clients against the cluster CA.
pub fn server_config(pki: &Pki) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = crypto_provider();
    let chain = certs(&pki.serving_cert_pem, "serving certificate")?;
    let key = PrivateKeyDer::from_pem_slice(pki.serving_key_pem.as_bytes()).map_err(|e| {
        TlsError::Pem {
            what: "serving key",
            reason: e.to_string(),
        }
    })?;

    let mut roots = RootCertStore::empty();
    for ca in certs(&pki.ca_pem, "CA certificate")? {
        roots.add(ca)?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()?;

    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn certs(pem: &str, what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            what,
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            what,
            reason: "no certificate found".into(),
        });
    }
    Ok(certs)
}

/// The identity of a connection's verified client certificate, if it sent one.
pub fn peer_identity(conn: &ServerConnection) -> Option<Identity> {
    conn.peer_certificates().and_then(identity_from_certs)
}

/// The identity in a verified peer chain: user = subject CN, groups = subject O's
/// (as kube-apiserver's x509 authenticator). `None` without a leaf or a CN.
pub fn identity_from_certs(certs: &[CertificateDer<'_>]) -> Option<Identity> {
    let leaf = crate::pki::parse_der(certs.first()?).ok()?;
    let user = leaf.cn.into_iter().next().filter(|u| !u.is_empty())?;
    Some(Identity {
        user,
        groups: leaf.orgs,
    })
}

/// Authenticates a bearer token. The only token known so far is the cluster join
/// token, which grants user [`TOKEN_USER`] in group `system:masters` (full access,
/// as k3s's server token does). Compared in constant time.
pub fn token_identity(token: &str, pki: &Pki) -> Option<Identity> {
    if pki.token.is_empty() || !constant_time_eq(token.as_bytes(), pki.token.as_bytes()) {
        return None;
    }
    Some(Identity {
        user: TOKEN_USER.into(),
        groups: vec!["system:masters".into()],
    })
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::pki::{self, SanConfig};
    use rustls::ClientConfig;
    use rustls::pki_types::ServerName;
    use std::path::Path;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio_rustls::{TlsAcceptor, TlsConnector};

    fn test_pki(dir: &Path) -> Pki {
        let sans = SanConfig {
            hostname: Some("test-host".into()),
            ..SanConfig::default()
        };
        pki::load_or_create(dir, &sans).unwrap()
    }

    fn client_config(ca_pem: &str, client: Option<(&str, &str)>) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        for c in certs(ca_pem, "ca").unwrap() {
            roots.add(c).unwrap();
        }
        let builder = ClientConfig::builder_with_provider(crypto_provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let mut cfg = match client {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => builder
                .with_client_auth_cert(
                    certs(cert, "client").unwrap(),
                    PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
                )
                .unwrap(),
        };
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Arc::new(cfg)
    }

    /// Accepts one connection and reports (handshake ok, peer identity, ALPN).
    async fn handshake(
        server: Arc<ServerConfig>,
        client: Arc<ClientConfig>,
        name: &str,
    ) -> Option<(Option<Identity>, Option<Vec<u8>>)> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let srv = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut tls = TlsAcceptor::from(server).accept(tcp).await.ok()?;
            let (_, conn) = tls.get_ref();
            let seen = (
                peer_identity(conn),
                conn.alpn_protocol().map(<[u8]>::to_vec),
            );
            tls.write_all(b"ok").await.ok()?;
            tls.shutdown().await.ok()?;
            Some(seen)
        });
        let tcp = TcpStream::connect(addr).await.unwrap();
        let server_name = ServerName::try_from(name.to_string()).unwrap();
        if let Ok(mut tls) = TlsConnector::from(client).connect(server_name, tcp).await {
            // With TLS 1.3 a rejected client cert surfaces on the first read.
            let mut buf = Vec::new();
            let _ = tls.read_to_end(&mut buf).await;
        }
        srv.await.unwrap()
    }

    #[tokio::test]
    async fn handshake_with_and_without_client_cert() {
        let dir = tempfile::tempdir().unwrap();
        let pki = test_pki(dir.path());
        let server = server_config(&pki).unwrap();

        // Anonymous: the handshake succeeds, no identity, h2 negotiated.
        for name in ["127.0.0.1", "localhost", "::1", "kubernetes.default.svc"] {
            let (id, alpn) = handshake(server.clone(), client_config(&pki.ca_pem, None), name)
                .await
                .unwrap_or_else(|| panic!("handshake as {name}"));
            assert_eq!(id, None);
            assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
        }

        // Admin client certificate.
        let admin = client_config(&pki.ca_pem, Some((&pki.admin_cert_pem, &pki.admin_key_pem)));
        let (id, _) = handshake(server.clone(), admin, "127.0.0.1").await.unwrap();
        assert_eq!(
            id,
            Some(Identity {
                user: "system:admin".into(),
                groups: vec!["system:masters".into()],
            })
        );

        // A node certificate with two groups.
        let (c, k) = pki
            .sign_client_cert("system:node:n1", &["system:nodes", "g2"])
            .unwrap();
        let node = client_config(&pki.ca_pem, Some((&c, &k)));
        let (id, _) = handshake(server.clone(), node, "127.0.0.1").await.unwrap();
        let id = id.unwrap();
        assert_eq!(id.user, "system:node:n1");
        assert_eq!(id.groups, ["system:nodes", "g2"]);

        // A certificate from another CA is refused.
        let other_dir = tempfile::tempdir().unwrap();
        let other = test_pki(other_dir.path());
        let foreign = client_config(
            &pki.ca_pem,
            Some((&other.admin_cert_pem, &other.admin_key_pem)),
        );
        assert!(handshake(server, foreign, "127.0.0.1").await.is_none());
    }

    #[tokio::test]
    async fn kubectl_trusts_server_and_presents_admin_cert() {
        let kubectl = Path::new("/usr/bin/kubectl");
        if !kubectl.exists() {
            eprintln!("kubectl not installed; skipping");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let pki = test_pki(dir.path());
        // Plain HTTP/1.1 is enough to answer one `get --raw`.
        let mut cfg = (*server_config(&pki).unwrap()).clone();
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = TlsAcceptor::from(Arc::new(cfg));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let Ok(mut tls) = acceptor.clone().accept(tcp).await else {
                    continue;
                };
                let mut req = Vec::new();
                let mut buf = [0u8; 4096];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let id = peer_identity(tls.get_ref().1);
                let body = serde_json::json!({
                    "user": id.as_ref().map(|i| i.user.clone()),
                    "groups": id.map(|i| i.groups),
                })
                .to_string();
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(resp.as_bytes()).await;
                let _ = tls.shutdown().await;
            }
        });

        for host in ["127.0.0.1", "localhost"] {
            let kc = dir.path().join(format!("kc-{host}"));
            pki.write_kubeconfig(&kc, &format!("https://{host}:{}", addr.port()))
                .unwrap();
            let out = tokio::process::Command::new(kubectl)
                .arg("--kubeconfig")
                .arg(&kc)
                .args(["get", "--raw", "/whoami"])
                .output()
                .await
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "{host}: {out:?}");
            assert_eq!(
                stdout.trim(),
                r#"{"groups":["system:masters"],"user":"system:admin"}"#
            );
        }
    }

    #[test]
    fn token_maps_to_masters() {
        let dir = tempfile::tempdir().unwrap();
        let pki = test_pki(dir.path());
        let id = token_identity(&pki.token, &pki).unwrap();
        assert_eq!(id.user, TOKEN_USER);
        assert_eq!(id.groups, ["system:masters"]);
        assert_eq!(token_identity("", &pki), None);
        assert_eq!(token_identity("nope", &pki), None);
        let mut wrong = pki.token.clone();
        wrong.pop();
        wrong.push('!');
        assert_eq!(token_identity(&wrong, &pki), None);
    }

    #[test]
    fn identity_from_certs_handles_garbage() {
        assert_eq!(identity_from_certs(&[]), None);
        assert_eq!(
            identity_from_certs(&[CertificateDer::from(vec![1u8, 2, 3])]),
            None
        );
    }

    #[test]
    fn bad_pem_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut pki = test_pki(dir.path());
        pki.serving_key_pem = "nope".into();
        assert!(matches!(server_config(&pki), Err(TlsError::Pem { .. })));
    }
}
