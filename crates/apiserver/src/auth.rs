//! Who is calling: the client certificate's subject (set per TLS connection) or a bearer
//! token. Authorization (RBAC) is not enforced yet: every authenticated caller may do
//! everything, like a member of system:masters.

use crate::state::AppState;
use axum::http::HeaderMap;

pub use crate::tls::Identity;

/// The identity of a `Authorization: Bearer <token>` header, if the token is known.
pub fn from_bearer(headers: &HeaderMap, state: &AppState) -> Option<Identity> {
    let value = headers.get("authorization")?.to_str().ok()?;
    let token = value.strip_prefix("Bearer ")?.trim();
    if !token.is_empty() && constant_time_eq(token.as_bytes(), state.token.as_bytes()) {
        Some(Identity {
            user: "r8s-token".into(),
            groups: vec!["system:masters".into(), "system:authenticated".into()],
        })
    } else {
        None
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
