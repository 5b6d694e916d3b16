//! TLS on the HTTPS port: the certificate of an Ingress's `spec.tls` entry (a
//! `kubernetes.io/tls` Secret in its namespace) for the hosts it lists, chosen by SNI; a
//! self-signed default certificate, made at start, for every other name (an entry without
//! hosts replaces that default, as ingress-nginx does).

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::networking::v1::Ingress;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::collections::HashMap;
use std::sync::Arc;

/// The common name of the default certificate.
const DEFAULT_CN: &str = "R8S INGRESS DEFAULT CERT";

fn provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// Certificates by server name.
#[derive(Debug)]
pub struct Certs {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// `*.example.com` certificates, keyed by `example.com`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    fallback: Arc<CertifiedKey>,
}

impl Certs {
    /// Only the default certificate.
    pub fn only(fallback: Arc<CertifiedKey>) -> Certs {
        Certs {
            exact: HashMap::new(),
            wildcard: HashMap::new(),
            fallback,
        }
    }

    /// The certificate for a client asking for `sni` (None: no SNI sent).
    pub fn lookup(&self, sni: Option<&str>) -> Arc<CertifiedKey> {
        let Some(name) = sni.map(str::to_ascii_lowercase) else {
            return self.fallback.clone();
        };
        let wildcard = || {
            let (_, suffix) = name.split_once('.')?;
            self.wildcard.get(suffix)
        };
        self.exact
            .get(&name)
            .or_else(wildcard)
            .unwrap_or(&self.fallback)
            .clone()
    }
}

/// A certificate chain and its key, both PEM (the key must match the certificate).
pub fn certified_key(cert_pem: &[u8], key_pem: &[u8]) -> Result<Arc<CertifiedKey>, String> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("tls.crt: {e}"))?;
    if chain.is_empty() {
        return Err("tls.crt holds no certificate".into());
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| format!("tls.key: {e}"))?;
    CertifiedKey::from_der(chain, key, &provider())
        .map(Arc::new)
        .map_err(|e| e.to_string())
}

/// The default certificate: self-signed, made fresh at every start (as Traefik's).
pub fn self_signed() -> Result<Arc<CertifiedKey>, String> {
    let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    let mut params = rcgen::CertificateParams::new(vec!["ingress.r8s.local".to_string()])
        .map_err(|e| e.to_string())?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, DEFAULT_CN);
    let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
    let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    CertifiedKey::from_der(vec![cert.der().clone()], der, &provider())
        .map(Arc::new)
        .map_err(|e| e.to_string())
}

/// The certificates of `ingresses` (oldest first: the first to name a host keeps it), with
/// what was wrong with any Secret.
pub fn build(
    ingresses: &[&Ingress],
    secrets: &[Arc<Secret>],
    default: &Arc<CertifiedKey>,
) -> (Certs, Vec<String>) {
    let mut certs = Certs::only(default.clone());
    let mut fallback_set = false;
    let mut problems = Vec::new();
    let mut parsed: HashMap<(String, String), Option<Arc<CertifiedKey>>> = HashMap::new();
    for ing in ingresses {
        let ns = ing.metadata.namespace.clone().unwrap_or_default();
        let tls = ing.spec.as_ref().and_then(|s| s.tls.as_ref());
        for entry in tls.into_iter().flatten() {
            // No Secret: the default certificate serves these hosts.
            let Some(secret) = entry.secret_name.clone() else {
                continue;
            };
            let key = (ns.clone(), secret);
            let cert = parsed
                .entry(key.clone())
                .or_insert_with(|| match secret_cert(&key.0, &key.1, secrets) {
                    Ok(c) => Some(c),
                    Err(e) => {
                        problems.push(format!("Secret {}/{}: {e}", key.0, key.1));
                        None
                    }
                })
                .clone();
            let Some(cert) = cert else { continue };
            let hosts = entry.hosts.as_deref().unwrap_or_default();
            if hosts.is_empty() && !fallback_set {
                certs.fallback = cert.clone();
                fallback_set = true;
            }
            for host in hosts {
                let host = host.to_ascii_lowercase();
                let (map, name) = match host.strip_prefix("*.") {
                    Some(suffix) => (&mut certs.wildcard, suffix.to_string()),
                    None => (&mut certs.exact, host),
                };
                map.entry(name).or_insert_with(|| cert.clone());
            }
        }
    }
    (certs, problems)
}

/// The certificate in Secret `ns/name`.
fn secret_cert(ns: &str, name: &str, secrets: &[Arc<Secret>]) -> Result<Arc<CertifiedKey>, String> {
    let secret = secrets
        .iter()
        .find(|s| {
            s.metadata.namespace.as_deref() == Some(ns) && s.metadata.name.as_deref() == Some(name)
        })
        .ok_or("not found (or not of type kubernetes.io/tls)")?;
    let field = |k: &str| {
        secret
            .data
            .as_ref()
            .and_then(|d| d.get(k))
            .map(|b| b.0.as_slice())
            .ok_or(format!("no {k}"))
    };
    certified_key(field("tls.crt")?, field("tls.key")?)
}

/// Chooses the certificate by SNI from the current table.
#[derive(Debug)]
pub struct Resolver(pub Arc<super::Shared>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load().certs.lookup(hello.server_name()))
    }
}

/// The HTTPS listener's config: TLS 1.2/1.3, HTTP/1.1, certificates from `resolver`.
pub fn server_config(resolver: Resolver) -> Result<Arc<ServerConfig>, rustls::Error> {
    let mut config = ServerConfig::builder_with_provider(Arc::new(provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use serde_json::json;

    fn cert_for(host: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![host.to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn secret(name: &str, pem: &(String, String)) -> Arc<Secret> {
        let mut s: Secret = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default"}, "type": "kubernetes.io/tls"
        }))
        .unwrap();
        s.data = Some(
            [
                (
                    "tls.crt".to_string(),
                    ByteString(pem.0.clone().into_bytes()),
                ),
                (
                    "tls.key".to_string(),
                    ByteString(pem.1.clone().into_bytes()),
                ),
            ]
            .into(),
        );
        Arc::new(s)
    }

    #[test]
    fn certificates_by_sni() {
        let default = self_signed().unwrap();
        let a = cert_for("a.example.com");
        let w = cert_for("*.wild.example.com");
        let ing: Ingress = serde_json::from_value(json!({
            "metadata": {"name": "i", "namespace": "default"},
            "spec": {"tls": [
                {"hosts": ["A.example.com"], "secretName": "a"},
                {"hosts": ["*.wild.example.com"], "secretName": "w"},
                {"hosts": ["broken.example.com"], "secretName": "missing"},
            ]}
        }))
        .unwrap();
        let secrets = vec![secret("a", &a), secret("w", &w)];
        let (certs, problems) = build(&[&ing], &secrets, &default);
        assert_eq!(problems.len(), 1, "{problems:?}");
        let leaf = |sni: Option<&str>| certs.lookup(sni).cert[0].clone();
        let der = |pem: &str| CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
        assert_eq!(leaf(Some("a.example.com")), der(&a.0));
        assert_eq!(leaf(Some("x.wild.example.com")), der(&w.0));
        assert_eq!(leaf(Some("x.y.wild.example.com")), default.cert[0]);
        assert_eq!(leaf(Some("broken.example.com")), default.cert[0]);
        assert_eq!(leaf(None), default.cert[0]);
    }

    #[test]
    fn mismatched_key_is_refused() {
        let a = cert_for("a");
        let b = cert_for("b");
        assert!(certified_key(a.0.as_bytes(), b.1.as_bytes()).is_err());
        assert!(certified_key(b"junk", a.1.as_bytes()).is_err());
    }
}
