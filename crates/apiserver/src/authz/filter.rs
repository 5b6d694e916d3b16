//! The gate every request passes before routing, in upstream's filter order:
//! authentication (401), impersonation, authorization (403), then for writes of Roles and
//! bindings the escalation check. The resulting [`UserInfo`] travels on as a request
//! extension.

use super::{escalation, forbidden, request_attributes};
use crate::auth::{self, Authn, Identity, UserInfo};
use crate::error::ApiError;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};

/// Paths anyone may read, authenticated or not (upstream's system:public-info-viewer,
/// which is bound to system:unauthenticated too). Always allowed, so probes keep working
/// whatever the policy says.
pub fn is_public(path: &str) -> bool {
    matches!(
        path,
        "/version" | "/version/" | "/healthz" | "/livez" | "/readyz"
    ) || path.starts_with("/livez/")
        || path.starts_with("/readyz/")
        || path.starts_with("/healthz/")
}

/// Authenticate and authorize `req`: the request to route (with its [`UserInfo`]
/// extension) or the error response.
pub async fn admit(state: &AppState, req: Request) -> Result<Request, Response> {
    let (mut parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let cert = parts.extensions.get::<Identity>().cloned();
    let user = match auth::authenticate(state, cert.as_ref(), &parts.headers).await {
        Authn::User(u) => u,
        Authn::Anonymous if is_public(&path) => return Ok(Request::from_parts(parts, body)),
        Authn::Anonymous | Authn::Invalid => return Err(ApiError::unauthorized().into_response()),
    };
    let user = match auth::impersonate::apply(state, &user, &mut parts.headers).await {
        Ok(Some(acting)) => acting,
        Ok(None) => user,
        Err(e) => return Err(e.into_response()),
    };
    // system:masters may do anything: skip resolving the request's attributes.
    if user.is_master() || is_public(&path) {
        parts.extensions.insert::<UserInfo>(user);
        return Ok(Request::from_parts(parts, body));
    }
    let attrs = request_attributes(&user, &parts.method, &path, parts.uri.query());
    let decision = state.authz.authorize(&attrs).await;
    if !decision.allowed {
        return Err(forbidden(&attrs, &decision.reason).into_response());
    }
    let body = if escalation::applies(&user, &attrs) {
        let limit = crate::handlers::MAX_BODY_BYTES;
        let bytes = match axum::body::to_bytes(body, limit + 1).await {
            Ok(b) if b.len() <= limit => b,
            _ => return Err(ApiError::too_large(limit).into_response()),
        };
        if let Err(e) = escalation::check(state, &user, &attrs, &parts.headers, &bytes).await {
            return Err(e.into_response());
        }
        Body::from(bytes)
    } else {
        body
    };
    parts.extensions.insert::<UserInfo>(user);
    Ok(Request::from_parts(parts, body))
}
