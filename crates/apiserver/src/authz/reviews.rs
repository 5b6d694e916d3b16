//! The create-only review kinds (never stored): `authorization.k8s.io/v1`
//! SelfSubjectAccessReview, SubjectAccessReview, LocalSubjectAccessReview and
//! SelfSubjectRulesReview (`kubectl auth can-i [--list]`), and the dispatch of the
//! `authentication.k8s.io/v1` ones to `crate::auth::reviews`.

use super::{Attributes, PolicyRule};
use crate::auth::{self, UserInfo, reviews::review_body};
use crate::error::{ApiError, ApiResult};
use crate::handlers::resource::Call;
use axum::http::StatusCode;
use axum::response::Response;
use r8s_api::catalog::ResourceInfo;
use r8s_api::strategy::FieldError;
use serde_json::{Value, json};

/// Whether creates of `info` are answered here instead of being stored.
pub fn is_review(info: &ResourceInfo) -> bool {
    matches!(info.group, "authorization.k8s.io" | "authentication.k8s.io")
}

/// Answer a create of a review kind.
pub async fn create(call: Call) -> ApiResult<Response> {
    match (call.info.group, call.info.plural) {
        ("authentication.k8s.io", "tokenreviews") => auth::reviews::token_review(call).await,
        ("authentication.k8s.io", "selfsubjectreviews") => {
            auth::reviews::self_subject_review(call).await
        }
        ("authorization.k8s.io", "selfsubjectaccessreviews") => {
            access_review(call, Mode::SelfSubject).await
        }
        ("authorization.k8s.io", "subjectaccessreviews") => {
            access_review(call, Mode::Subject).await
        }
        ("authorization.k8s.io", "localsubjectaccessreviews") => {
            access_review(call, Mode::Local).await
        }
        ("authorization.k8s.io", "selfsubjectrulesreviews") => rules_review(call).await,
        (_, plural) => Err(ApiError::method_not_allowed("POST", plural)),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    SelfSubject,
    Subject,
    Local,
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

fn present(v: Option<&Value>) -> Option<&Value> {
    v.filter(|x| !x.is_null())
}

/// The subject of a (Local)SubjectAccessReview's spec.
fn spec_user(spec: &Value) -> UserInfo {
    let mut user = UserInfo::new(str_of(spec, "user"), strings(spec.get("groups")));
    user.uid = str_of(spec, "uid").to_string();
    if let Some(extra) = spec.get("extra").and_then(Value::as_object) {
        for (k, v) in extra {
            user.extra.insert(k.clone(), strings(Some(v)));
        }
    }
    user
}

async fn access_review(call: Call, mode: Mode) -> ApiResult<Response> {
    let mut review = review_body(&call)?;
    let kind = call.info.kind;
    let group = call.info.group;
    if mode == Mode::Local {
        let url_ns = call.namespace().unwrap_or("").to_string();
        let body_ns = review
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if body_ns.is_empty() {
            review["metadata"]["namespace"] = json!(url_ns);
        } else if body_ns != url_ns {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
    }
    let spec = review.get("spec").cloned().unwrap_or_else(|| json!({}));
    let ra = present(spec.get("resourceAttributes"));
    let nra = present(spec.get("nonResourceAttributes"));
    let mut errors = Vec::new();
    if let (Some(_), Some(n)) = (ra, nra) {
        errors.push(FieldError::invalid(
            "spec.nonResourceAttributes",
            n,
            "cannot be specified in combination with resourceAttributes",
        ));
    }
    if ra.is_none() && nra.is_none() {
        errors.push(FieldError::invalid(
            "spec.resourceAttributes",
            &Value::Null,
            "exactly one of nonResourceAttributes or resourceAttributes must be specified",
        ));
    }
    let user = match mode {
        Mode::SelfSubject => call.user.clone(),
        Mode::Subject | Mode::Local => {
            let u = spec_user(&spec);
            if u.name.is_empty() && u.groups.is_empty() {
                errors.push(FieldError::invalid(
                    "spec.user",
                    "",
                    "at least one of user or group must be specified",
                ));
            }
            u
        }
    };
    if mode == Mode::Local {
        let ns = review
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("");
        if let Some(ra) = ra
            && str_of(ra, "namespace") != ns
        {
            errors.push(FieldError::invalid(
                "spec.resourceAttributes.namespace",
                str_of(ra, "namespace"),
                "must match metadata.namespace",
            ));
        }
        if let Some(n) = nra {
            errors.push(FieldError::invalid(
                "spec.nonResourceAttributes",
                n,
                "disallowed on this kind of request",
            ));
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid(group, kind, "", &errors));
    }
    let base = Attributes::for_user(&user);
    let attrs = match (ra, nra) {
        (Some(ra), _) => Attributes {
            verb: str_of(ra, "verb").to_string(),
            resource_request: true,
            api_group: str_of(ra, "group").to_string(),
            api_version: str_of(ra, "version").to_string(),
            resource: str_of(ra, "resource").to_string(),
            subresource: str_of(ra, "subresource").to_string(),
            namespace: str_of(ra, "namespace").to_string(),
            name: str_of(ra, "name").to_string(),
            ..base
        },
        (None, Some(n)) => Attributes {
            verb: str_of(n, "verb").to_string(),
            path: str_of(n, "path").to_string(),
            ..base
        },
        (None, None) => base,
    };
    let decision = call.state.authz.authorize(&attrs).await;
    let mut status = json!({"allowed": decision.allowed});
    if !decision.reason.is_empty() {
        status["reason"] = json!(decision.reason);
    }
    review["status"] = status;
    Ok(call.respond(StatusCode::CREATED, review))
}

/// The rules as `SelfSubjectRulesReview` reports them: (resourceRules, nonResourceRules).
pub fn split_rules(rules: &[PolicyRule]) -> (Vec<Value>, Vec<Value>) {
    let mut resource = Vec::new();
    let mut non_resource = Vec::new();
    for r in rules {
        if !r.resources.is_empty() {
            let mut v =
                json!({"verbs": r.verbs, "apiGroups": r.api_groups, "resources": r.resources});
            if !r.resource_names.is_empty() {
                v["resourceNames"] = json!(r.resource_names);
            }
            resource.push(v);
        }
        if !r.non_resource_urls.is_empty() {
            non_resource.push(json!({"verbs": r.verbs, "nonResourceURLs": r.non_resource_urls}));
        }
    }
    (resource, non_resource)
}

async fn rules_review(call: Call) -> ApiResult<Response> {
    let mut review = review_body(&call)?;
    let namespace = review
        .pointer("/spec/namespace")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    // Only RBAC reports rules: the always-allowed system:masters group has none of its
    // own (as upstream's privileged-group authorizer), its rules come from cluster-admin.
    let user = &call.user;
    let rules = call
        .state
        .authz
        .rules_for(&user.name, &user.groups, &namespace)
        .await;
    let (resource, non_resource) = split_rules(&rules);
    review["status"] = json!({
        "resourceRules": resource,
        "nonResourceRules": non_resource,
        "incomplete": false,
    });
    Ok(call.respond(StatusCode::CREATED, review))
}
