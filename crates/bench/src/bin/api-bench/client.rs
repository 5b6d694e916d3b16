//! A small HTTPS client for the benchmark: TLS with the admin client certificate from a
//! kubeconfig, HTTP/1.1 connections (one per simulated client, as kubectl-style clients
//! use) and HTTP/2 connections (many watch streams each, as informers use).

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::path::Path;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// Connection factory for one server.
#[derive(Clone)]
pub struct Client {
    addr: String,
    h1: TlsConnector,
    h2: TlsConnector,
}

fn b64(s: &str) -> Result<Vec<u8>> {
    Ok(base64::engine::general_purpose::STANDARD.decode(s.trim())?)
}

impl Client {
    /// From an admin kubeconfig as r8s writes it (inline certificate data).
    pub fn from_kubeconfig(path: &Path) -> Result<Client> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
        let doc: serde_yaml::Value = serde_yaml::from_str(&text)?;
        let field = |v: &serde_yaml::Value, k: &str| -> Result<String> {
            v.get(k)
                .and_then(serde_yaml::Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| anyhow!("kubeconfig lacks {k}"))
        };
        let cluster = &doc["clusters"][0]["cluster"];
        let user = &doc["users"][0]["user"];
        let server = field(cluster, "server")?;
        let ca = b64(&field(cluster, "certificate-authority-data")?)?;
        let cert = b64(&field(user, "client-certificate-data")?)?;
        let key = b64(&field(user, "client-key-data")?)?;
        let config = |alpn: &[u8]| -> Result<TlsConnector> {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(&ca) {
                roots.add(c?)?;
            }
            let chain = CertificateDer::pem_slice_iter(&cert).collect::<Result<Vec<_>, _>>()?;
            let key = PrivateKeyDer::from_pem_slice(&key)?;
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()?
                .with_root_certificates(roots)
                .with_client_auth_cert(chain, key)?;
            cfg.alpn_protocols = vec![alpn.to_vec()];
            Ok(TlsConnector::from(Arc::new(cfg)))
        };
        Ok(Client {
            addr: server
                .trim_start_matches("https://")
                .trim_end_matches('/')
                .to_string(),
            h1: config(b"http/1.1")?,
            h2: config(b"h2")?,
        })
    }

    async fn tls(&self, connector: &TlsConnector) -> Result<TlsStream<TcpStream>> {
        let tcp = TcpStream::connect(&self.addr).await?;
        tcp.set_nodelay(true)?;
        let host = self
            .addr
            .rsplit_once(':')
            .map_or(self.addr.as_str(), |(h, _)| h);
        let name = ServerName::try_from(host.to_string())?;
        Ok(connector.connect(name, tcp).await?)
    }

    /// A new HTTP/1.1 connection.
    pub async fn http1(&self) -> Result<H1> {
        let io = TokioIo::new(self.tls(&self.h1).await?);
        let (sender, conn) = http1::handshake(io).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(H1 { sender })
    }

    /// A new HTTP/2 connection (cheap to clone; one stream per request).
    pub async fn http2(&self) -> Result<http2::SendRequest<Full<Bytes>>> {
        let io = TokioIo::new(self.tls(&self.h2).await?);
        let (sender, conn) = http2::handshake(TokioExecutor::new(), io).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }
}

/// Build a request.
pub fn request(
    method: &str,
    path: &str,
    body: Option<Bytes>,
) -> Result<hyper::Request<Full<Bytes>>> {
    let mut b = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("accept", "application/json");
    if body.is_some() {
        b = b.header("content-type", "application/json");
    }
    Ok(b.body(Full::new(body.unwrap_or_default()))?)
}

/// One HTTP/1.1 keep-alive connection.
pub struct H1 {
    sender: http1::SendRequest<Full<Bytes>>,
}

impl H1 {
    /// Send and read the whole body; fails unless the status is `want`.
    pub async fn call(
        &mut self,
        method: &str,
        path: &str,
        body: Option<Bytes>,
        want: u16,
    ) -> Result<Bytes> {
        self.sender.ready().await?;
        let resp = self
            .sender
            .send_request(request(method, path, body)?)
            .await?;
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await?.to_bytes();
        if status != want {
            bail!(
                "{method} {path}: {status} {}",
                String::from_utf8_lossy(&bytes)
            );
        }
        Ok(bytes)
    }

    /// Send a prepared request; the status code (body drained).
    pub async fn send(&mut self, req: hyper::Request<Full<Bytes>>) -> Result<u16> {
        self.sender.ready().await?;
        let resp = self.sender.send_request(req).await?;
        let status = resp.status().as_u16();
        resp.into_body().collect().await?;
        Ok(status)
    }
}
