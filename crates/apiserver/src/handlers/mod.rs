//! HTTP handling: one entry point that routes every request (upstream's handler chain in
//! miniature): authentication → non-resource paths → resource verbs over the registry.

pub(crate) mod codec;
mod componentstatus;
mod eviction;
mod fieldmanager;
mod metrics_api;
mod nonresource;
mod query;
pub(crate) mod resource;
mod response;
mod subresource;
mod validate;

pub use codec::MAX_BODY_BYTES;

use crate::error::ApiError;
use crate::request::{self, Route};
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use std::time::Instant;

/// Handle one request.
pub async fn handle(State(state): State<AppState>, req: Request) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    // Authentication, impersonation and authorization (RBAC) before anything else.
    let (response, labels) = match crate::authz::filter::admit(&state, req).await {
        Ok(req) => route(state.clone(), req).await,
        Err(resp) => (resp, None),
    };
    let (verb, resource) = labels.unwrap_or_else(|| (method.as_str().to_string(), String::new()));
    state.metrics.observe(
        &verb,
        &resource,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// Metric labels of a request: (verb, resource).
type Labels = Option<(String, String)>;

async fn route(state: AppState, req: Request) -> (Response, Labels) {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    if let Some(resp) = nonresource::handle(&state, &parts).await {
        return (resp, None);
    }
    match request::parse(&path) {
        Route::CoreVersions | Route::Groups | Route::Group(_) | Route::ResourceList { .. } => (
            nonresource::discovery(&state, &parts, request::parse(&path)),
            None,
        ),
        Route::Resource(target) => {
            let labels = Some((verb_label(&parts.method, &target), target.resource.clone()));
            // Admission webhooks learn who asks; their warnings join the answer.
            let scope = if state.registry.webhooks_configured() {
                crate::registry::RequestScope::of(&parts, &target)
            } else {
                crate::registry::RequestScope::none()
            };
            let resp = match scope
                .run(resource::handle(state, target, parts, body))
                .await
            {
                Ok(r) => r,
                Err(e) => e.into_response(),
            };
            (resp, labels)
        }
        // Under the API prefixes a JSON Status, as upstream's API handlers answer.
        Route::Unknown if path.starts_with("/api/") || path.starts_with("/apis/") => {
            (ApiError::no_route(&path).into_response(), None)
        }
        Route::Unknown => (not_found(&path), None),
    }
}

fn verb_label(method: &Method, target: &request::ResourcePath) -> String {
    let v = match (method.as_str(), target.name.is_some()) {
        ("GET", false) => "LIST",
        ("GET", true) => "GET",
        ("POST", _) => "POST",
        ("PUT", _) => "PUT",
        ("PATCH", _) => "PATCH",
        ("DELETE", _) => "DELETE",
        (other, _) => other,
    };
    v.to_string()
}

fn not_found(path: &str) -> Response {
    let _ = path;
    (
        StatusCode::NOT_FOUND,
        [("content-type", "text/plain; charset=utf-8")],
        Body::from("404 page not found\n"),
    )
        .into_response()
}
