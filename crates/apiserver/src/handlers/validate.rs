//! Request checks that upstream makes before touching storage: the verb is served for the
//! resource (405), the request options are valid (422, as `CreateOptions.meta.k8s.io "" is
//! invalid: …`), the object name in the URL is a valid path segment (400), field selectors
//! only use supported field labels (400), and `includeObject` is only checked when a Table
//! is asked for (400).

use super::codec::Representation;
use super::query::{Query, dry_run_errors, invalid_options};
use crate::error::{ApiError, ApiResult};
use crate::request::ResourcePath;
use axum::http::Method;
use r8s_api::catalog::ResourceInfo;
use r8s_api::selector::FieldSelector;
use r8s_api::strategy::{self, FieldError};
use r8s_api::table::IncludeObject;
use serde_json::json;

/// The Kubernetes verb of a request on a resource (not a subresource).
pub fn verb(method: &Method, has_name: bool, is_watch: bool) -> Option<&'static str> {
    Some(match (method.as_str(), has_name) {
        ("GET", _) if is_watch => "watch",
        ("GET", true) => "get",
        ("GET", false) => "list",
        ("POST", false) => "create",
        ("PUT", true) => "update",
        ("PATCH", true) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => return None,
    })
}

/// 405 unless the resource serves `verb` at this URL. A namespaced resource without a
/// namespace in the URL is only listed and watched across namespaces (upstream registers
/// no other route there).
pub fn check_verb(
    info: &ResourceInfo,
    target: &ResourcePath,
    method: &Method,
    verb: Option<&str>,
) -> ApiResult<()> {
    let allowed = match verb {
        Some(v) if info.namespaced && target.namespace.is_none() && target.name.is_none() => {
            matches!(v, "list" | "watch") && info.verbs.contains(&v)
        }
        Some(v) => info.verbs.contains(&v),
        None => false,
    };
    if allowed {
        Ok(())
    } else {
        Err(ApiError::method_not_allowed(method.as_str(), info.plural))
    }
}

/// Validate the options of a write or read before the body is decoded, as upstream's
/// handlers do (`ValidateCreateOptions`, `ValidatePatchOptions`, `ValidateListOptions`, …).
/// `patch_type` is the Content-Type of a PATCH.
pub fn check_options(
    query: &Query,
    method: &Method,
    is_watch: bool,
    patch_type: &str,
) -> ApiResult<()> {
    let (kind, errors) = match method.as_str() {
        "POST" => ("CreateOptions", query.write_option_errors()),
        "PUT" => ("UpdateOptions", query.write_option_errors()),
        "PATCH" => {
            let mut errors = query.write_option_errors();
            let apply = r8s_api::patch::PatchType::from_content_type(patch_type)
                == Some(r8s_api::patch::PatchType::Apply);
            if apply && query.get("fieldManager").is_none_or(str::is_empty) {
                errors.push(FieldError::required(
                    "fieldManager",
                    "is required for apply patch",
                ));
            }
            ("PatchOptions", errors)
        }
        "DELETE" => (
            "DeleteOptions",
            delete_option_errors(query.get("propagationPolicy"), query.dry_run_values()),
        ),
        "GET" => ("ListOptions", query.list_option_errors(is_watch)),
        _ => return Ok(()),
    };
    if errors.is_empty() {
        Ok(())
    } else {
        Err(invalid_options(kind, &errors))
    }
}

/// Upstream's `ValidateDeleteOptions` for a propagation policy and body `dryRun` values.
pub fn delete_option_errors<'a>(
    policy: Option<&str>,
    dry_run: impl Iterator<Item = &'a str>,
) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if let Some(p) = policy
        && !matches!(p, "Foreground" | "Background" | "Orphan")
    {
        errors.push(FieldError::not_supported(
            "propagationPolicy",
            p,
            &["Foreground", "Background", "Orphan", "nil"],
        ));
    }
    errors.extend(dry_run_errors(dry_run));
    errors
}

/// The object name of a URL, percent-decoded; names that cannot be a path segment are a
/// 400 (upstream checks them when it builds the storage key).
pub fn object_name(raw: &str) -> ApiResult<String> {
    let name = percent_decode(raw)
        .ok_or_else(|| invalid_name(raw, &["may not contain invalid percent-encoding"]))?;
    let mut problems = Vec::new();
    match name.as_str() {
        "." => problems.push("may not be '.'"),
        ".." => problems.push("may not be '..'"),
        _ => {
            if name.contains('/') {
                problems.push("may not contain '/'");
            }
            if name.contains('%') {
                problems.push("may not contain '%'");
            }
        }
    }
    if problems.is_empty() {
        Ok(name)
    } else {
        Err(invalid_name(&name, &problems))
    }
}

fn invalid_name(name: &str, problems: &[&str]) -> ApiError {
    ApiError::bad_request(format!(
        "Name parameter invalid: {}: {}",
        json!(name),
        problems.join(";")
    ))
}

/// `%XX` escapes decoded; `None` for a broken escape or bytes that are not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    if !s.contains('%') {
        return Some(s.to_string());
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// 400 for a field selector on a field label the kind does not support (upstream's field
/// label conversion: `metadata.name`, `metadata.namespace` and the kind's own labels).
pub fn check_field_selector(info: &ResourceInfo, selector: &FieldSelector) -> ApiResult<()> {
    let extra = strategy::for_kind(info.group, info.kind).field_selector_fields(&json!({}));
    for r in selector.requirements() {
        let known = matches!(r.field.as_str(), "metadata.name" | "metadata.namespace")
            || extra.iter().any(|(k, _)| *k == r.field);
        if !known {
            return Err(ApiError::bad_request(format!(
                "field label not supported: {}",
                r.field
            )));
        }
    }
    Ok(())
}

/// `includeObject`, checked only when the response is a Table (upstream ignores it
/// otherwise).
pub fn include_object(query: &Query, rep: Representation) -> ApiResult<IncludeObject> {
    let Some(v) = query.get("includeObject") else {
        return Ok(IncludeObject::Metadata);
    };
    match IncludeObject::from_param(v) {
        Ok(i) => Ok(i),
        Err(_) if rep != Representation::Table => Ok(IncludeObject::Metadata),
        Err(_) => Err(ApiError::bad_request(format!(
            "Unable to convert to Table as requested: includeObject: Invalid value: {}: must be 'Metadata', 'Object', 'None', or empty",
            json!(v)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(ns: Option<&str>, name: Option<&str>) -> ResourcePath {
        ResourcePath {
            group: String::new(),
            version: "v1".into(),
            resource: "configmaps".into(),
            namespace: ns.map(str::to_string),
            name: name.map(str::to_string),
            subresource: None,
            legacy_watch: false,
        }
    }

    #[test]
    fn verbs_follow_the_catalog_and_scope() {
        let cm = r8s_api::catalog::find("", "v1", "configmaps").unwrap();
        let ns = r8s_api::catalog::find("", "v1", "namespaces").unwrap();
        let post = Method::POST;
        assert!(
            check_verb(
                cm,
                &target(Some("a"), None),
                &post,
                verb(&post, false, false)
            )
            .is_ok()
        );
        let e = check_verb(cm, &target(None, None), &post, verb(&post, false, false)).unwrap_err();
        assert_eq!(e.code.as_u16(), 405);
        let get = Method::GET;
        assert!(check_verb(cm, &target(None, None), &get, verb(&get, false, true)).is_ok());
        let del = Method::DELETE;
        let e = check_verb(ns, &target(None, None), &del, verb(&del, false, false)).unwrap_err();
        assert_eq!(e.code.as_u16(), 405);
        assert!(verb(&Method::POST, true, false).is_none());
    }

    #[test]
    fn names_must_be_path_segments() {
        assert_eq!(object_name("web-1").unwrap(), "web-1");
        assert_eq!(object_name("a%20b").unwrap(), "a b");
        for bad in ["..", ".", "%2E%2E", "a%2Fb", "a%25b", "a%zz"] {
            assert_eq!(object_name(bad).unwrap_err().code.as_u16(), 400, "{bad}");
        }
        assert!(
            object_name("..")
                .unwrap_err()
                .message
                .contains("may not be '..'")
        );
    }

    #[test]
    fn options_are_422_with_causes() {
        let q = Query::parse(Some("dryRun=Bogus"));
        let e = check_options(&q, &Method::POST, false, "").unwrap_err();
        assert_eq!(e.code.as_u16(), 422);
        assert!(
            e.message
                .starts_with("CreateOptions.meta.k8s.io \"\" is invalid: dryRun"),
            "{}",
            e.message
        );
        let q = Query::parse(Some("propagationPolicy=Bogus&dryRun=x"));
        let e = check_options(&q, &Method::DELETE, false, "").unwrap_err();
        let causes = e.status_body()["details"]["causes"].clone();
        assert_eq!(causes[0]["field"], "propagationPolicy");
        assert_eq!(causes[1]["field"], "dryRun");
        let e = check_options(
            &Query::parse(None),
            &Method::PATCH,
            false,
            "application/apply-patch+yaml",
        )
        .unwrap_err();
        assert!(
            e.message.contains("fieldManager: Required value"),
            "{}",
            e.message
        );
        assert!(check_options(&Query::parse(Some("limit=5")), &Method::GET, false, "").is_ok());
    }

    #[test]
    fn field_labels_are_checked() {
        let pods = r8s_api::catalog::find("", "v1", "pods").unwrap();
        let cm = r8s_api::catalog::find("", "v1", "configmaps").unwrap();
        let sel = |s: &str| FieldSelector::parse(s).unwrap();
        assert!(check_field_selector(pods, &sel("spec.nodeName=n1,metadata.name=x")).is_ok());
        let e = check_field_selector(cm, &sel("spec.nodeName=n1")).unwrap_err();
        assert_eq!(e.message, "field label not supported: spec.nodeName");
    }

    #[test]
    fn include_object_only_matters_for_tables() {
        let q = Query::parse(Some("includeObject=X"));
        assert!(include_object(&q, Representation::Object).is_ok());
        assert_eq!(
            include_object(&q, Representation::Table)
                .unwrap_err()
                .code
                .as_u16(),
            400
        );
        let q = Query::parse(Some("includeObject=Object"));
        assert_eq!(
            include_object(&q, Representation::Table).unwrap(),
            IncludeObject::Object
        );
    }
}
