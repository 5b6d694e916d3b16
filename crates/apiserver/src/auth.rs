//! Who is calling (upstream's authentication filter chain in miniature): the client
//! certificate's subject (set per TLS connection), the cluster join token, or a
//! service-account token (a JWT signed by this server, [`serviceaccount`]). Impersonation
//! headers are applied afterwards ([`impersonate`]); authorization lives in `crate::authz`.

pub mod impersonate;
pub mod issuer_discovery;
mod jwt;
pub mod reviews;
pub mod serviceaccount;

use crate::state::AppState;
use axum::http::HeaderMap;
use serde_json::{Value, json};
use std::collections::BTreeMap;

pub use crate::tls::Identity;
pub use jwt::{Jwk, KeyError};

/// Group of every authenticated user.
pub const AUTHENTICATED: &str = "system:authenticated";
/// Group of anonymous requests.
pub const UNAUTHENTICATED: &str = "system:unauthenticated";
/// The privileged group: always authorized.
pub const MASTERS: &str = "system:masters";
/// User name of anonymous requests.
pub const ANONYMOUS: &str = "system:anonymous";

/// An authenticated (or impersonated) user, as upstream's `user.Info`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    /// A user with a name and groups only.
    pub fn new(name: impl Into<String>, groups: Vec<String>) -> Self {
        UserInfo {
            name: name.into(),
            groups,
            ..Default::default()
        }
    }

    /// Whether the user is in `system:masters` (allowed everything).
    pub fn is_master(&self) -> bool {
        self.groups.iter().any(|g| g == MASTERS)
    }

    /// Add `group` unless present.
    pub fn add_group(&mut self, group: &str) {
        if !self.groups.iter().any(|g| g == group) {
            self.groups.push(group.to_string());
        }
    }

    /// The `authentication.k8s.io/v1` UserInfo form (empty fields omitted).
    pub fn to_json(&self) -> Value {
        let mut v = json!({"username": self.name});
        if !self.uid.is_empty() {
            v["uid"] = json!(self.uid);
        }
        if !self.groups.is_empty() {
            v["groups"] = json!(self.groups);
        }
        if !self.extra.is_empty() {
            v["extra"] = json!(self.extra);
        }
        v
    }
}

impl From<Identity> for UserInfo {
    /// A certificate's subject; every authenticated user is also in `system:authenticated`.
    fn from(id: Identity) -> Self {
        let mut user = UserInfo::new(id.user, id.groups);
        user.add_group(AUTHENTICATED);
        user
    }
}

/// The outcome of authenticating one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authn {
    User(UserInfo),
    /// No credentials at all.
    Anonymous,
    /// A bearer token was presented but is not valid (401, as upstream).
    Invalid,
}

/// Authenticate a request: a verified client certificate wins, then a bearer token.
pub async fn authenticate(state: &AppState, cert: Option<&Identity>, headers: &HeaderMap) -> Authn {
    if let Some(id) = cert {
        return Authn::User(id.clone().into());
    }
    let Some(token) = bearer(headers) else {
        return Authn::Anonymous;
    };
    if !state.token.is_empty() && constant_time_eq(token.as_bytes(), state.token.as_bytes()) {
        return Authn::User(UserInfo::new(
            crate::tls::TOKEN_USER,
            vec![MASTERS.into(), AUTHENTICATED.into()],
        ));
    }
    match state.tokens.authenticate(&state.registry, token).await {
        Some(user) => Authn::User(user),
        None => Authn::Invalid,
    }
}

/// The token of an `Authorization: Bearer <token>` header.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get("authorization")?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_header_forms() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert("authorization", "Bearer abc".parse().expect("header"));
        assert_eq!(bearer(&h), Some("abc"));
        h.insert("authorization", "bearer  xyz ".parse().expect("header"));
        assert_eq!(bearer(&h), Some("xyz"));
        h.insert("authorization", "Basic abc".parse().expect("header"));
        assert_eq!(bearer(&h), None);
        h.insert("authorization", "Bearer ".parse().expect("header"));
        assert_eq!(bearer(&h), None);
    }

    #[test]
    fn certificate_users_are_authenticated() {
        let user: UserInfo = Identity {
            user: "system:admin".into(),
            groups: vec![MASTERS.into()],
        }
        .into();
        assert_eq!(user.groups, [MASTERS, AUTHENTICATED]);
        assert!(user.is_master());
        assert_eq!(
            user.to_json(),
            json!({"username": "system:admin", "groups": [MASTERS, AUTHENTICATED]})
        );
    }
}
