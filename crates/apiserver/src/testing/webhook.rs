//! An HTTPS admission webhook for tests: served on 127.0.0.1 with a certificate from a
//! test CA (trusted through `caBundle`), answering AdmissionReviews with what the test's
//! function says and recording each one. Used by the webhook dispatch unit tests and
//! the API server's integration tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::body::Body;
use base64::Engine;
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;

type Answer = dyn Fn(&str, &Value) -> Value + Send + Sync;

/// The test's webhook: `answer(path, request)` gives the AdmissionResponse (uid filled
/// in); every request received is recorded with its path.
pub struct TestWebhook {
    /// The port on 127.0.0.1.
    pub port: u16,
    /// The test CA, base64 PEM as `caBundle` wants it.
    pub ca: String,
    /// Every AdmissionReview received, with its path.
    pub seen: Arc<Mutex<Vec<(String, Value)>>>,
}

impl TestWebhook {
    /// Serve until the runtime ends.
    pub async fn start(
        answer: impl Fn(&str, &Value) -> Value + Send + Sync + 'static,
    ) -> TestWebhook {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "admission webhook test CA");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::from_ca_cert_pem(
            &ca_cert.pem(),
            KeyPair::from_pem(&ca_key.serialize_pem()).unwrap(),
        )
        .unwrap();
        let key = KeyPair::generate().unwrap();
        // Reached by URL (the IP) or as the Service `hook` in `default`.
        let params = CertificateParams::new(vec![
            "127.0.0.1".to_string(),
            "hook.default.svc".to_string(),
        ])
        .unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        let mut tls = rustls::ServerConfig::builder_with_provider(crate::tls::crypto_provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(cert.der().to_vec())],
                PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).unwrap(),
            )
            .unwrap();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let answer: Arc<Answer> = Arc::new(answer);
        let recorded = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (acceptor, answer, recorded) =
                    (acceptor.clone(), answer.clone(), recorded.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(
                        move |req: hyper::Request<hyper::body::Incoming>| {
                            let (answer, recorded) = (answer.clone(), recorded.clone());
                            async move {
                                let path = req.uri().path().to_string();
                                let body =
                                    axum::body::to_bytes(Body::new(req.into_body()), 4 << 20)
                                        .await
                                        .unwrap();
                                let review: Value = serde_json::from_slice(&body).unwrap();
                                assert_eq!(review["apiVersion"], "admission.k8s.io/v1");
                                assert_eq!(review["kind"], "AdmissionReview");
                                let request = review["request"].clone();
                                recorded
                                    .lock()
                                    .unwrap()
                                    .push((path.clone(), request.clone()));
                                let mut response = answer(&path, &request);
                                response["uid"] = request["uid"].clone();
                                let out = json!({"apiVersion": "admission.k8s.io/v1",
                                    "kind": "AdmissionReview", "response": response});
                                Ok::<_, std::convert::Infallible>(hyper::Response::new(Body::from(
                                    serde_json::to_vec(&out).unwrap(),
                                )))
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        TestWebhook {
            port,
            ca: base64::engine::general_purpose::STANDARD.encode(ca_cert.pem()),
            seen,
        }
    }

    /// A `clientConfig` reaching `path` by URL.
    pub fn url(&self, path: &str) -> Value {
        json!({"url": format!("https://127.0.0.1:{}{path}", self.port), "caBundle": self.ca})
    }

    /// The reviews sent to `path`.
    pub fn requests(&self, path: &str) -> Vec<Value> {
        let seen = self.seen.lock().unwrap();
        seen.iter()
            .filter(|(p, _)| p == path)
            .map(|(_, r)| r.clone())
            .collect()
    }

    /// The paths of every review received, in order.
    pub fn paths(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|(p, _)| p.clone())
            .collect()
    }

    /// Every review received.
    pub fn all(&self) -> Vec<Value> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|(_, r)| r.clone())
            .collect()
    }
}
