//! Rendering objects and lists in the representation the client negotiated.

use super::codec::Representation;
use super::nonresource::json_response;
use crate::registry::ListPage;
use axum::http::StatusCode;
use axum::response::Response;
use r8s_api::catalog::ResourceInfo;
use r8s_api::table::{self, IncludeObject};
use serde_json::{Value, json};

/// One object.
pub fn object(
    info: &'static ResourceInfo,
    code: StatusCode,
    obj: Value,
    rep: Representation,
    include: IncludeObject,
) -> Response {
    match rep {
        Representation::Object => json_response(code, &obj),
        Representation::Metadata => json_response(code, &partial_metadata(&obj)),
        Representation::Table => {
            let rv = obj
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            json_response(
                code,
                &table::to_table(info, &[obj], include, &rv, None, chrono::Utc::now()),
            )
        }
    }
}

/// A list page.
pub fn list(
    info: &'static ResourceInfo,
    page: ListPage,
    rep: Representation,
    include: IncludeObject,
) -> Response {
    let rv = page.resource_version.to_string();
    match rep {
        Representation::Table => json_response(
            StatusCode::OK,
            &table::to_table(
                info,
                &page.items,
                include,
                &rv,
                page.continue_token.as_deref(),
                chrono::Utc::now(),
            ),
        ),
        Representation::Metadata => {
            let items: Vec<Value> = page.items.iter().map(partial_metadata).collect();
            json_response(
                StatusCode::OK,
                &json!({
                    "kind": "PartialObjectMetadataList",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": list_meta(&rv, page.continue_token.as_deref(), page.remaining),
                    "items": items,
                }),
            )
        }
        Representation::Object => json_response(
            StatusCode::OK,
            &json!({
                "kind": info.list_kind(),
                "apiVersion": info.api_version(),
                "metadata": list_meta(&rv, page.continue_token.as_deref(), page.remaining),
                "items": page.items,
            }),
        ),
    }
}

fn list_meta(rv: &str, cont: Option<&str>, remaining: Option<i64>) -> Value {
    let mut m = json!({ "resourceVersion": rv });
    if let Some(c) = cont {
        m["continue"] = json!(c);
    }
    if let Some(r) = remaining {
        m["remainingItemCount"] = json!(r);
    }
    m
}

/// `PartialObjectMetadata` of an object.
pub fn partial_metadata(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or(json!({})),
    })
}

/// The `Status` a delete answers with for kinds that do not return the deleted object:
/// success, naming what was deleted (no `code`, and no `group` for the core group, as
/// upstream).
pub fn deleted_status(info: &ResourceInfo, obj: &Value) -> Response {
    let mut details = serde_json::Map::new();
    details.insert("name".into(), json!(crate::meta::name(obj)));
    if !info.group.is_empty() {
        details.insert("group".into(), json!(info.group));
    }
    details.insert("kind".into(), json!(info.plural));
    if let Some(uid) = obj.pointer("/metadata/uid") {
        details.insert("uid".into(), uid.clone());
    }
    let status = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    });
    json_response(StatusCode::OK, &status)
}

/// A `Status` of success (deletecollection, eviction).
pub fn success_status(code: StatusCode, details: Option<Value>) -> Response {
    let mut s = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "code": code.as_u16(),
    });
    if let Some(d) = details {
        s["details"] = d;
    }
    json_response(code, &s)
}
