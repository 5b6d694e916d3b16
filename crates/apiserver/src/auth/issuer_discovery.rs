//! Service account issuer discovery (upstream's ServiceAccountIssuerDiscovery, GA since
//! 1.21): an OpenID Connect provider configuration at `/.well-known/openid-configuration`
//! and the key set verifying service-account tokens at `/openid/v1/jwks`, so that relying
//! parties (cloud identity federation, Vault, other clusters) can check our tokens
//! without calling TokenReview. Both documents are rendered once at start: the signing key
//! and the advertised address do not change while the server runs.
//!
//! Reading them needs authorization like any non-resource URL; the bootstrap policy grants
//! it to every service account (`system:service-account-issuer-discovery`).

use super::serviceaccount::{ISSUER, TokenIssuer};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Serialize;

/// The provider configuration (OIDC Discovery 1.0 §4).
pub const CONFIG_PATH: &str = "/.well-known/openid-configuration";
/// The JSON Web Key Set.
pub const JWKS_PATH: &str = "/openid/v1/jwks";
/// Upstream overrides its server-wide `no-cache, private` for these two documents so
/// relying parties and proxies may keep them for an hour.
pub const CACHE_CONTROL: &str = "public, max-age=3600";
/// RFC 7517 §8.5.1.
pub const JWKS_CONTENT_TYPE: &str = "application/jwk-set+json";

/// The minimal subset of OIDC provider metadata upstream publishes (no
/// `authorization_endpoint`: tokens are only ever verified, never obtained, through it).
#[derive(Serialize)]
struct ProviderMetadata<'a> {
    issuer: &'a str,
    jwks_uri: &'a str,
    response_types_supported: [&'a str; 1],
    subject_types_supported: [&'a str; 1],
    id_token_signing_alg_values_supported: Vec<&'a str>,
}

#[derive(Serialize)]
struct KeySet<'a> {
    keys: &'a [super::Jwk],
}

/// The two pre-rendered documents.
#[derive(Debug, Clone)]
pub struct IssuerDiscovery {
    config: Bytes,
    keyset: Bytes,
}

impl IssuerDiscovery {
    /// Render the documents for `tokens`' key, the API server being reachable at
    /// `server_address` (`host:port`).
    ///
    /// `jwks_uri`: upstream takes `--service-account-jwks-uri`, else
    /// `https://<external address>/openid/v1/jwks`, the external address being
    /// `--external-hostname` or the advertise address with the secure port. r8s has no
    /// such flags; its equivalent of the external address is the advertised address
    /// (`--node-ip`, or loopback) with the port actually bound, the same `host:port`
    /// `/api` names in `serverAddressByClientCIDRs` and that kubelets and the `kubernetes`
    /// Service's endpoints use. The request's Host header is deliberately not used: it is
    /// chosen by the caller, and a `public` cacheable document must not vary with it.
    pub fn new(tokens: &TokenIssuer, server_address: &str) -> IssuerDiscovery {
        let keys = [tokens.public_jwk()];
        let jwks_uri = format!("https://{server_address}{JWKS_PATH}");
        let mut algs: Vec<&str> = keys.iter().map(|k| k.alg).collect();
        algs.sort_unstable();
        algs.dedup();
        let config = ProviderMetadata {
            issuer: ISSUER,
            jwks_uri: &jwks_uri,
            response_types_supported: ["id_token"],
            subject_types_supported: ["public"],
            id_token_signing_alg_values_supported: algs,
        };
        IssuerDiscovery {
            // Strings only: serializing cannot fail.
            config: serde_json::to_vec(&config).unwrap_or_default().into(),
            keyset: serde_json::to_vec(&KeySet { keys: &keys })
                .unwrap_or_default()
                .into(),
        }
    }

    /// The response for `path` if it is one of the two documents (with or without the
    /// trailing slash, both of which upstream serves and authorizes).
    pub fn serve(&self, path: &str) -> Option<Response> {
        let path = path.strip_suffix('/').unwrap_or(path);
        let (content_type, body) = match path {
            CONFIG_PATH => ("application/json", &self.config),
            JWKS_PATH => (JWKS_CONTENT_TYPE, &self.keyset),
            _ => return None,
        };
        Some(
            (
                StatusCode::OK,
                [
                    (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
                    (
                        header::CACHE_CONTROL,
                        HeaderValue::from_static(CACHE_CONTROL),
                    ),
                ],
                body.clone(),
            )
                .into_response(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    async fn body(resp: Response) -> (StatusCode, String, String, Value) {
        let code = resp.status();
        let h = |name| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        };
        let (ct, cc) = (h(header::CONTENT_TYPE), h(header::CACHE_CONTROL));
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .expect("body");
        (code, ct, cc, serde_json::from_slice(&bytes).expect("json"))
    }

    #[tokio::test]
    async fn documents_name_the_issuer_key_and_address() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tokens = TokenIssuer::load_or_create(dir.path()).expect("issuer");
        let d = IssuerDiscovery::new(&tokens, "10.0.0.1:6443");
        let resp = d.serve(CONFIG_PATH).expect("config");
        let (code, ct, cc, config) = body(resp).await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(
            (ct.as_str(), cc.as_str()),
            ("application/json", CACHE_CONTROL)
        );
        assert_eq!(
            config,
            json!({
                "issuer": ISSUER,
                "jwks_uri": "https://10.0.0.1:6443/openid/v1/jwks",
                "response_types_supported": ["id_token"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["ES256"],
            })
        );
        let jwk = tokens.public_jwk();
        let (code, ct, cc, keys) = body(d.serve("/openid/v1/jwks/").expect("jwks")).await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(
            (ct.as_str(), cc.as_str()),
            (JWKS_CONTENT_TYPE, CACHE_CONTROL)
        );
        assert_eq!(
            keys,
            json!({"keys": [{"use": "sig", "kty": "EC", "kid": jwk.kid, "crv": "P-256",
                             "alg": "ES256", "x": jwk.x, "y": jwk.y}]})
        );
        assert!(d.serve("/.well-known/openid-configuration/").is_some());
        assert!(d.serve("/openid/v1").is_none());
        assert!(d.serve("/openid/v1/jwks/x").is_none());
        // IPv6 advertise addresses come bracketed from `SocketAddr`.
        let v6 = IssuerDiscovery::new(&tokens, "[fd00::1]:6443");
        let (_, _, _, config) = body(v6.serve(CONFIG_PATH).expect("config")).await;
        assert_eq!(config["jwks_uri"], "https://[fd00::1]:6443/openid/v1/jwks");
    }
}
