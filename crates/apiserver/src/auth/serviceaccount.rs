//! Service-account tokens: the `serviceaccounts/{name}/token` subresource (TokenRequest)
//! issues JWTs signed with the key kept at `DATA_DIR/server/tls/service.key`; bearer tokens
//! signed by that key authenticate as `system:serviceaccount:NS:NAME` while the service
//! account (and the pod or secret the token is bound to) still exists with the same uid.

use super::jwt::{JwtError, SigningKey};
use super::{AUTHENTICATED, KeyError, UserInfo};
use crate::error::{ApiError, ApiResult};
use crate::handlers::resource::Call;
use crate::registry::Registry;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{SecondsFormat, TimeZone as _, Utc};
use r8s_api::catalog;
use r8s_api::strategy::FieldError;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The issuer (`iss`) and the API server's audience, as k3s configures them.
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// User-name prefix of service accounts.
pub const USER_PREFIX: &str = "system:serviceaccount:";
/// Group of every service account.
pub const ALL_GROUP: &str = "system:serviceaccounts";

const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;
const MIN_EXPIRATION_SECONDS: i64 = 600;
const MAX_EXPIRATION_SECONDS: i64 = 1 << 32;
/// How long a looked-up service account / pod / secret uid is trusted without reading it
/// again, so every request of a busy client does not cost a store read.
const LOOKUP_TTL: Duration = Duration::from_secs(2);
/// Clock skew tolerated for `nbf`/`iat`.
const LEEWAY_SECONDS: i64 = 60;

/// Issues and validates service-account tokens.
pub struct TokenIssuer {
    key: SigningKey,
    audiences: Vec<String>,
    /// `plural/ns/name` → (uid, when read).
    lookups: Mutex<HashMap<String, (String, Instant)>>,
}

impl std::fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenIssuer").finish_non_exhaustive()
    }
}

/// `system:serviceaccount:NS:NAME` → (NS, NAME).
pub fn split_username(user: &str) -> Option<(&str, &str)> {
    let (ns, name) = user.strip_prefix(USER_PREFIX)?.split_once(':')?;
    (!ns.is_empty() && !name.is_empty() && !name.contains(':')).then_some((ns, name))
}

/// The groups of every service account in `ns`.
pub fn groups(ns: &str) -> Vec<String> {
    vec![ALL_GROUP.to_string(), format!("{ALL_GROUP}:{ns}")]
}

impl TokenIssuer {
    /// Load (or create once) the signing key under `data_dir`.
    pub fn load_or_create(data_dir: &Path) -> Result<TokenIssuer, KeyError> {
        let path = crate::pki::tls_dir(data_dir).join("service.key");
        Ok(TokenIssuer {
            key: SigningKey::load_or_create(&path)?,
            audiences: vec![ISSUER.to_string()],
            lookups: Mutex::new(HashMap::new()),
        })
    }

    /// The public key tokens are signed with, as a JWK (issuer discovery's key set).
    pub fn public_jwk(&self) -> super::jwt::Jwk {
        self.key.public_jwk()
    }

    /// The API server's own audiences (what a token must name to be used as a bearer).
    pub fn api_audiences(&self) -> &[String] {
        &self.audiences
    }

    /// The user of a bearer token valid for the API server, if it is one of ours.
    pub async fn authenticate(&self, registry: &Registry, token: &str) -> Option<UserInfo> {
        self.review(registry, token, &self.audiences)
            .await
            .ok()
            .map(|(u, _)| u)
    }

    /// Validate `token` for any of `audiences`: (user, the audiences it is valid for) or
    /// why it is not valid.
    pub async fn review(
        &self,
        registry: &Registry,
        token: &str,
        audiences: &[String],
    ) -> Result<(UserInfo, Vec<String>), String> {
        let claims = self.key.verify(token).map_err(|e| match e {
            JwtError::Malformed | JwtError::Algorithm => "invalid bearer token".to_string(),
            other => format!("invalid bearer token, {other}"),
        })?;
        if claims.get("iss").and_then(Value::as_str) != Some(ISSUER) {
            return Err("invalid bearer token, token issuer is not recognised".into());
        }
        let now = Utc::now().timestamp();
        let num = |k: &str| claims.get(k).and_then(Value::as_i64);
        match num("exp") {
            Some(exp) if exp > now => {}
            _ => return Err("invalid bearer token, token has expired".into()),
        }
        if num("nbf").is_some_and(|nbf| nbf > now + LEEWAY_SECONDS) {
            return Err("invalid bearer token, token is not valid yet".into());
        }
        let token_auds: Vec<&str> = match claims.get("aud") {
            Some(Value::String(s)) => vec![s.as_str()],
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        let matched: Vec<String> = audiences
            .iter()
            .filter(|a| token_auds.contains(&a.as_str()))
            .cloned()
            .collect();
        if matched.is_empty() {
            return Err(format!(
                "token audiences {token_auds:?} is invalid for the target audiences {audiences:?}"
            ));
        }
        let sub = claims.get("sub").and_then(Value::as_str).unwrap_or("");
        let (ns, name) = split_username(sub).ok_or("invalid bearer token, bad subject")?;
        let private = claims.get("kubernetes.io").cloned().unwrap_or(Value::Null);
        let str_at = |p: &str| private.pointer(p).and_then(Value::as_str).unwrap_or("");
        if str_at("/namespace") != ns || str_at("/serviceaccount/name") != name {
            return Err("invalid bearer token, subject does not match its claims".into());
        }
        let sa_uid = self
            .check_live(
                registry,
                "serviceaccounts",
                ns,
                name,
                str_at("/serviceaccount/uid"),
            )
            .await?;
        let mut extra = std::collections::BTreeMap::new();
        for (kind, plural) in [("pod", "pods"), ("secret", "secrets")] {
            let obj_name = str_at(&format!("/{kind}/name"));
            if obj_name.is_empty() {
                continue;
            }
            let uid = str_at(&format!("/{kind}/uid"));
            self.check_live(registry, plural, ns, obj_name, uid).await?;
            if kind == "pod" {
                extra.insert(
                    "authentication.kubernetes.io/pod-name".to_string(),
                    vec![obj_name.to_string()],
                );
                extra.insert(
                    "authentication.kubernetes.io/pod-uid".to_string(),
                    vec![uid.to_string()],
                );
            }
        }
        if let Some(jti) = claims.get("jti").and_then(Value::as_str) {
            extra.insert(
                "authentication.kubernetes.io/credential-id".to_string(),
                vec![format!("JTI={jti}")],
            );
        }
        let mut groups = groups(ns);
        groups.push(AUTHENTICATED.to_string());
        let user = UserInfo {
            name: sub.to_string(),
            uid: sa_uid,
            groups,
            extra,
        };
        Ok((user, matched))
    }

    /// The uid of a live object, checked against `want_uid` when the token names one.
    async fn check_live(
        &self,
        registry: &Registry,
        plural: &str,
        ns: &str,
        name: &str,
        want_uid: &str,
    ) -> Result<String, String> {
        let key = format!("{plural}/{ns}/{name}");
        let cached = self.lookups.lock().ok().and_then(|m| {
            m.get(&key)
                .filter(|(_, at)| at.elapsed() < LOOKUP_TTL)
                .map(|(uid, _)| uid.clone())
        });
        let uid = match cached {
            Some(uid) => uid,
            None => {
                let info = catalog::find("", "v1", plural).ok_or("unknown bound object kind")?;
                let obj = registry.get(info, Some(ns), name).await.map_err(|e| {
                    if e.code == StatusCode::NOT_FOUND {
                        format!("{plural} \"{name}\" not found")
                    } else {
                        e.message
                    }
                })?;
                let uid = crate::meta::meta_str(&obj, "uid").to_string();
                if let Ok(mut m) = self.lookups.lock() {
                    if m.len() > 10_000 {
                        m.retain(|_, (_, at)| at.elapsed() < LOOKUP_TTL);
                    }
                    m.insert(key, (uid.clone(), Instant::now()));
                }
                uid
            }
        };
        if !want_uid.is_empty() && want_uid != uid {
            return Err(format!(
                "{plural} \"{name}\" (uid {want_uid}) no longer exists; the token is invalid"
            ));
        }
        Ok(uid)
    }
}

/// `POST /api/v1/namespaces/{ns}/serviceaccounts/{name}/token`: a TokenRequest.
pub async fn token_request(call: Call) -> ApiResult<Response> {
    let ns = call
        .namespace()
        .ok_or_else(|| ApiError::bad_request("namespace is required"))?
        .to_string();
    let name = call.name()?.to_string();
    let body = if call.body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        call.body_object()?
    };
    if let Some(kind) = body.get("kind").and_then(Value::as_str)
        && kind != "TokenRequest"
    {
        return Err(ApiError::bad_request(format!(
            "the body of the request was of kind {kind:?}, expected TokenRequest"
        )));
    }
    let meta_str = |k: &str| {
        body.pointer(&format!("/metadata/{k}"))
            .and_then(Value::as_str)
    };
    let group = "authentication.k8s.io";
    if let Some(n) = meta_str("name").filter(|n| !n.is_empty() && *n != name) {
        let e = FieldError::invalid(
            "metadata.name",
            n,
            "must match the service account name if specified",
        );
        return Err(ApiError::invalid(group, "TokenRequest", &name, &[e]));
    }
    if let Some(n) = meta_str("namespace").filter(|n| !n.is_empty() && *n != ns) {
        let e = FieldError::invalid(
            "metadata.namespace",
            n,
            "must match the service account namespace if specified",
        );
        return Err(ApiError::invalid(group, "TokenRequest", &name, &[e]));
    }
    let spec = body.get("spec").cloned().unwrap_or_else(|| json!({}));
    let expiration = match spec.get("expirationSeconds") {
        None | Some(Value::Null) => DEFAULT_EXPIRATION_SECONDS,
        Some(v) => v
            .as_i64()
            .ok_or_else(|| ApiError::bad_request("spec.expirationSeconds must be an integer"))?,
    };
    let mut errors = Vec::new();
    if expiration < MIN_EXPIRATION_SECONDS {
        errors.push(FieldError::invalid(
            "spec.expirationSeconds",
            &expiration,
            "may not specify a duration less than 10 minutes",
        ));
    }
    if expiration > MAX_EXPIRATION_SECONDS {
        errors.push(FieldError::invalid(
            "spec.expirationSeconds",
            &expiration,
            "may not specify a duration larger than 2^32 seconds",
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid(group, "TokenRequest", "", &errors));
    }
    let state = &call.state;
    let mut audiences: Vec<String> = spec
        .get("audiences")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    if audiences.is_empty() {
        audiences = state.tokens.api_audiences().to_vec();
    }
    let sa = state.registry.get(call.info, Some(&ns), &name).await?;
    let sa_uid = crate::meta::meta_str(&sa, "uid").to_string();
    let mut private = json!({"namespace": ns, "serviceaccount": {"name": name, "uid": sa_uid}});
    let bound = spec.get("boundObjectRef").filter(|b| !b.is_null()).cloned();
    if let Some(b) = &bound {
        let (key, uid, obj_name) = bound_object(state, &ns, &name, b).await?;
        private[key] = json!({"name": obj_name, "uid": uid});
    }
    let now = Utc::now();
    let exp = now.timestamp() + expiration;
    let claims = json!({
        "aud": audiences,
        "exp": exp,
        "iat": now.timestamp(),
        "nbf": now.timestamp(),
        "iss": ISSUER,
        "jti": uuid::Uuid::new_v4().to_string(),
        "sub": format!("{USER_PREFIX}{ns}:{name}"),
        "kubernetes.io": private,
    });
    let token = state
        .tokens
        .key
        .sign(&claims)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let expires = Utc
        .timestamp_opt(exp, 0)
        .single()
        .unwrap_or(now)
        .to_rfc3339_opts(SecondsFormat::Secs, true);
    let mut out_spec = json!({"audiences": audiences, "expirationSeconds": expiration});
    out_spec["boundObjectRef"] = bound.unwrap_or(Value::Null);
    let out = json!({
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": name, "namespace": ns,
                     "creationTimestamp": now.to_rfc3339_opts(SecondsFormat::Secs, true)},
        "spec": out_spec,
        "status": {"token": token, "expirationTimestamp": expires},
    });
    Ok(call.respond(StatusCode::CREATED, out))
}

/// Check a TokenRequest's `boundObjectRef` (a Pod or Secret in the service account's
/// namespace, with a matching uid if given): (claim key, uid, name).
async fn bound_object(
    state: &crate::state::AppState,
    ns: &str,
    sa_name: &str,
    b: &Value,
) -> ApiResult<(&'static str, String, String)> {
    let kind = b.get("kind").and_then(Value::as_str).unwrap_or("");
    let api_version = b.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let obj_name = b.get("name").and_then(Value::as_str).unwrap_or("");
    let (key, plural) = match (api_version, kind) {
        ("v1" | "", "Pod") => ("pod", "pods"),
        ("v1" | "", "Secret") => ("secret", "secrets"),
        _ => {
            return Err(ApiError::bad_request(format!(
                "cannot bind token for object of type {api_version}, Kind={kind}"
            )));
        }
    };
    let info = catalog::find("", "v1", plural)
        .ok_or_else(|| ApiError::internal(format!("{plural} not in catalog")))?;
    let obj = state.registry.get(info, Some(ns), obj_name).await?;
    let uid = crate::meta::meta_str(&obj, "uid").to_string();
    if let Some(want) = b.get("uid").and_then(Value::as_str)
        && !want.is_empty()
        && want != uid
    {
        return Err(ApiError::conflict_message(format!(
            "the UID in the bound object reference ({want}) does not match the UID in record. The object might have been deleted and then recreated"
        )));
    }
    if key == "pod" {
        let pod_sa = obj
            .pointer("/spec/serviceAccountName")
            .and_then(Value::as_str)
            .unwrap_or("default");
        if pod_sa != sa_name {
            return Err(ApiError::bad_request(format!(
                "cannot bind token for serviceaccount {sa_name:?} to pod running with different serviceaccount name."
            )));
        }
    }
    Ok((key, uid, obj_name.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{Allocators, WriteOptions};

    async fn registry(dir: &Path) -> Registry {
        let store = r8s_store::open("", &dir.join("state.db"))
            .await
            .expect("store");
        let alloc = Allocators::new(store.clone(), "10.43.0.0/16").expect("alloc");
        let registry = Registry::new(store, alloc);
        let create = |plural: &'static str, obj: Value| {
            let registry = registry.clone();
            async move {
                let info = catalog::find("", "v1", plural).expect("info");
                let ns = obj
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                registry
                    .create(info, ns.as_deref(), obj, &WriteOptions::default())
                    .await
                    .expect("create")
            }
        };
        create("namespaces", json!({"metadata": {"name": "default"}})).await;
        create(
            "serviceaccounts",
            json!({"metadata": {"name": "builder", "namespace": "default"}}),
        )
        .await;
        registry
    }

    fn claims(uid: &str, aud: &str, exp: i64) -> Value {
        json!({"iss": ISSUER, "aud": [aud], "exp": exp, "nbf": 0, "iat": 0,
               "sub": "system:serviceaccount:default:builder",
               "kubernetes.io": {"namespace": "default",
                                 "serviceaccount": {"name": "builder", "uid": uid}}})
    }

    #[tokio::test]
    async fn review_checks_claims_and_live_objects() {
        let dir = tempfile::tempdir().expect("tempdir");
        let registry = registry(dir.path()).await;
        let issuer = TokenIssuer::load_or_create(dir.path()).expect("issuer");
        let sa = registry
            .get(
                catalog::find("", "v1", "serviceaccounts").expect("info"),
                Some("default"),
                "builder",
            )
            .await
            .expect("sa");
        let uid = crate::meta::meta_str(&sa, "uid").to_string();
        let later = Utc::now().timestamp() + 600;
        let token = |c: Value| issuer.key.sign(&c).expect("sign");
        let api = issuer.api_audiences().to_vec();

        let (user, auds) = issuer
            .review(&registry, &token(claims(&uid, ISSUER, later)), &api)
            .await
            .expect("valid");
        assert_eq!(user.name, "system:serviceaccount:default:builder");
        assert_eq!(user.uid, uid);
        assert_eq!(
            user.groups,
            [
                "system:serviceaccounts",
                "system:serviceaccounts:default",
                AUTHENTICATED
            ]
        );
        assert_eq!(auds, api);

        let expired = issuer
            .review(&registry, &token(claims(&uid, ISSUER, 1)), &api)
            .await;
        assert!(expired.expect_err("expired").contains("expired"));
        // Another audience is not the API server's, but a TokenReview may ask for it.
        let other = token(claims(&uid, "vault", later));
        assert!(issuer.authenticate(&registry, &other).await.is_none());
        let (_, auds) = issuer
            .review(&registry, &other, &["vault".to_string()])
            .await
            .expect("vault audience");
        assert_eq!(auds, ["vault"]);
        // A service account recreated under the same name (new uid) voids old tokens.
        let stale = issuer
            .review(&registry, &token(claims("old-uid", ISSUER, later)), &api)
            .await;
        assert!(stale.is_err());
        let mut wrong_issuer = claims(&uid, ISSUER, later);
        wrong_issuer["iss"] = json!("https://elsewhere");
        assert!(
            issuer
                .review(&registry, &token(wrong_issuer), &api)
                .await
                .is_err()
        );
        let mut missing = claims("", ISSUER, later);
        missing["sub"] = json!("system:serviceaccount:default:ghost");
        missing["kubernetes.io"]["serviceaccount"]["name"] = json!("ghost");
        let err = issuer.review(&registry, &token(missing), &api).await;
        assert!(err.expect_err("missing").contains("not found"));
    }

    #[test]
    fn usernames() {
        assert_eq!(
            split_username("system:serviceaccount:default:builder"),
            Some(("default", "builder"))
        );
        assert_eq!(split_username("system:serviceaccount:default"), None);
        assert_eq!(split_username("system:serviceaccount::x"), None);
        assert_eq!(split_username("system:serviceaccount:a:b:c"), None);
        assert_eq!(split_username("jane"), None);
        assert_eq!(
            groups("ns1"),
            ["system:serviceaccounts", "system:serviceaccounts:ns1"]
        );
    }
}
