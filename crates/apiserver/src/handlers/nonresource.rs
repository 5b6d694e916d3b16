//! Non-resource endpoints: version, health, metrics, discovery, OpenAPI and the
//! service-account issuer's OIDC discovery documents.

use super::codec;
use crate::error::ApiError;
use crate::request::Route;
use crate::state::AppState;
use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::sync::atomic::Ordering;

pub use r8s_api::KUBERNETES_VERSION;

/// `/version` body.
pub fn version_info() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": format!("{KUBERNETES_VERSION}+r8s"),
        "gitCommit": env!("CARGO_PKG_VERSION"),
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": "n/a (rust)",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, go_arch()),
    })
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// Answer a non-resource path, or `None` to go on routing.
pub async fn handle(state: &AppState, req: &Parts) -> Option<Response> {
    let path = req.uri.path();
    if req.method != Method::GET && req.method != Method::HEAD {
        return None;
    }
    let verbose = req.uri.query().unwrap_or("").contains("verbose");
    Some(match path {
        "/version" | "/version/" => json_response(StatusCode::OK, &version_info()),
        "/livez" | "/healthz" | "/livez/ping" | "/healthz/ping" => {
            health(&[("ping", true)], verbose, "livez")
        }
        "/readyz" | "/readyz/ping" => {
            let store_ok = state.registry.store().health().await.is_ok();
            let boot = state.ready.load(Ordering::Relaxed);
            health(
                &[
                    ("ping", true),
                    ("etcd", store_ok),
                    ("poststarthook/bootstrap", boot),
                ],
                verbose,
                "readyz",
            )
        }
        "/metrics" => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            state.metrics.render(),
        )
            .into_response(),
        "/openapi/v3" | "/openapi/v3/" => {
            json_response(StatusCode::OK, &r8s_api::openapi::v3_index())
        }
        "/openapi/v2" => openapi_v2(req),
        p if p.starts_with("/openapi/v3/") => openapi_v3_doc(p),
        p if p.starts_with("/.well-known/") || p.starts_with("/openid/") => {
            return state.issuer_discovery.serve(p);
        }
        "/" => json_response(StatusCode::OK, &root_paths()),
        _ => return None,
    })
}

fn health(checks: &[(&str, bool)], verbose: bool, name: &str) -> Response {
    let ok = checks.iter().all(|(_, c)| *c);
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    };
    let body = if verbose || !ok {
        let mut s = String::new();
        for (check, good) in checks {
            if *good {
                s.push_str(&format!("[+]{check} ok\n"));
            } else {
                s.push_str(&format!("[-]{check} failed: reason withheld\n"));
            }
        }
        if ok {
            s.push_str(&format!("{name} check passed\n"));
        } else {
            s.push_str(&format!("{name} check failed\n"));
        }
        s
    } else {
        "ok".to_string()
    };
    (
        code,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

fn root_paths() -> Value {
    let mut paths = vec!["/api".to_string(), "/api/v1".into(), "/apis".into()];
    for g in r8s_api::catalog::groups() {
        paths.push(format!("/apis/{}", g.name));
        for v in &g.versions {
            paths.push(format!("/apis/{}/{v}", g.name));
        }
    }
    paths.extend(
        [
            crate::auth::issuer_discovery::CONFIG_PATH,
            "/healthz",
            "/livez",
            "/metrics",
            "/openapi/v3",
            crate::auth::issuer_discovery::JWKS_PATH,
            "/readyz",
            "/version",
        ]
        .map(String::from),
    );
    json!({ "paths": paths })
}

fn openapi_v3_doc(path: &str) -> Response {
    let rest = path.trim_start_matches("/openapi/v3/");
    let (group, version) = match rest.split('/').collect::<Vec<_>>().as_slice() {
        ["api", v] => (String::new(), v.to_string()),
        ["apis", g, v] => (g.to_string(), v.to_string()),
        _ => return super::not_found(path),
    };
    match r8s_api::openapi::v3_document(&group, &version) {
        Some(doc) => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::CACHE_CONTROL, "public, immutable"),
            ],
            Body::from(doc.as_ref().clone()),
        )
            .into_response(),
        None => super::not_found(path),
    }
}

/// kubectl asks for v2 only (as protobuf) to validate `kind: List` files; a minimal
/// document without definitions makes it leave validation to the server.
fn openapi_v2(req: &Parts) -> Response {
    let accept = codec::header(&req.headers, "accept");
    if accept.contains("protobuf") {
        let doc = r8s_api::openapi::v2_document();
        return (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                r8s_api::openapi::V2_PROTOBUF_CONTENT_TYPE,
            )],
            Body::from(doc.as_ref().clone()),
        )
            .into_response();
    }
    ApiError::not_acceptable(
        "only the protobuf form of /openapi/v2 is served; use /openapi/v3 for JSON",
    )
    .into_response()
}

/// Discovery documents, legacy or aggregated as the Accept header asks.
pub fn discovery(state: &AppState, req: &Parts, route: Route) -> Response {
    let aggregated = codec::wants_aggregated_discovery(&req.headers);
    use r8s_api::discovery as d;
    let doc = match route {
        Route::CoreVersions if aggregated => return aggregated_response(d::aggregated(true)),
        Route::Groups if aggregated => return aggregated_response(d::aggregated(false)),
        Route::CoreVersions => Some(d::api_versions(&state.server_address)),
        Route::Groups => Some(d::api_group_list()),
        Route::Group(g) => d::api_group(&g),
        Route::ResourceList { group, version } => d::api_resource_list(&group, &version),
        _ => None,
    };
    match doc {
        Some(doc) => json_response(StatusCode::OK, &doc),
        None => ApiError::no_route(req.uri.path()).into_response(),
    }
}

fn aggregated_response(doc: Value) -> Response {
    let body = serde_json::to_vec(&doc).unwrap_or_default();
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
        )],
        body,
    )
        .into_response()
}

/// A JSON response.
pub fn json_response(code: StatusCode, v: &Value) -> Response {
    let body = serde_json::to_vec(v).unwrap_or_default();
    (code, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}
