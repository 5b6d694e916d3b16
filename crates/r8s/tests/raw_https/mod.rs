//! A raw HTTPS client for e2e tests: sends exactly the bytes a test gives it (junk bodies,
//! odd headers, any method) with the admin client certificate from a kubeconfig, and hands
//! back status, headers and body without interpreting them.
#![allow(dead_code)]

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// A response as received.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    /// The body as JSON (`Null` if it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The body as (lossy) text, for messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Client for one server, authenticated as the kubeconfig's user.
#[derive(Clone)]
pub struct Client {
    addr: String,
    connector: TlsConnector,
}

fn b64(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .expect("base64 in kubeconfig")
}

impl Client {
    /// Build a client from an admin kubeconfig as r8s writes it (inline certificate data).
    pub fn from_kubeconfig(path: &Path) -> Client {
        let text = std::fs::read_to_string(path).expect("read kubeconfig");
        let doc: serde_yaml::Value = serde_yaml::from_str(&text).expect("kubeconfig yaml");
        let cluster = &doc["clusters"][0]["cluster"];
        let user = &doc["users"][0]["user"];
        let server = cluster["server"].as_str().expect("server");
        let ca = b64(cluster["certificate-authority-data"].as_str().expect("ca"));
        let cert = b64(user["client-certificate-data"]
            .as_str()
            .expect("client cert"));
        let key = b64(user["client-key-data"].as_str().expect("client key"));

        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(&ca) {
            roots.add(c.expect("ca pem")).expect("add ca");
        }
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert)
            .map(|c| c.expect("cert pem"))
            .collect();
        let key = PrivateKeyDer::from_pem_slice(&key).expect("key pem");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("tls versions")
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .expect("client cert");
        Client {
            addr: server
                .trim_start_matches("https://")
                .trim_end_matches('/')
                .to_string(),
            connector: TlsConnector::from(Arc::new(config)),
        }
    }

    /// Open one HTTP/1.1 connection (for many requests in a row).
    pub async fn connect(&self) -> std::io::Result<Conn> {
        let tcp = TcpStream::connect(&self.addr).await?;
        tcp.set_nodelay(true)?;
        let name = ServerName::try_from("127.0.0.1").expect("server name");
        let tls = self.connector.connect(name, tcp).await?;
        let (sender, conn) = http1::handshake(TokioIo::new(tls))
            .await
            .map_err(std::io::Error::other)?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Conn { sender })
    }

    /// One request on a fresh connection.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Resp {
        let mut conn = self.connect().await.expect("connect");
        conn.send(method, path, content_type, body)
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// GET `path`.
    pub async fn get(&self, path: &str) -> Resp {
        self.send("GET", path, None, Vec::new()).await
    }
}

/// One open connection.
pub struct Conn {
    sender: http1::SendRequest<Full<Bytes>>,
}

impl Conn {
    /// Send a request and read the whole response.
    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Result<Resp, String> {
        self.send_with_accept(method, path, content_type, None, body)
            .await
    }

    /// Send with an explicit Accept header (default `application/json`).
    pub async fn send_with_accept(
        &mut self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        accept: Option<&str>,
        body: Vec<u8>,
    ) -> Result<Resp, String> {
        self.sender.ready().await.map_err(|e| e.to_string())?;
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "127.0.0.1")
            .header("accept", accept.unwrap_or("application/json"));
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let resp = self
            .sender
            .send_request(req)
            .await
            .map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes()
            .to_vec();
        Ok(Resp {
            status,
            headers,
            body,
        })
    }

    /// Send and read only the status and the first chunk of a streaming body (watch).
    pub async fn send_streaming(
        &mut self,
        path: &str,
    ) -> Result<(u16, hyper::body::Incoming), String> {
        self.sender.ready().await.map_err(|e| e.to_string())?;
        let req = hyper::Request::builder()
            .method("GET")
            .uri(path)
            .header("host", "127.0.0.1")
            .header("accept", "application/json")
            .body(Full::new(Bytes::new()))
            .map_err(|e| e.to_string())?;
        let resp = self
            .sender
            .send_request(req)
            .await
            .map_err(|e| e.to_string())?;
        Ok((resp.status().as_u16(), resp.into_body()))
    }
}
