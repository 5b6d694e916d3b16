//! Authorization: RBAC as upstream's RBAC authorizer, plus the `system:masters` group that
//! is always allowed.
//!
//! - [`filter`]: the request gate (authentication → impersonation → authorization →
//!   escalation checks) that `handlers::handle` runs before routing.
//! - [`rules`]: matching one request against one PolicyRule / Subject (pure functions).
//! - [`policy`]: the Roles, ClusterRoles and bindings in memory and the decision itself.
//! - [`cache`]: keeps [`policy`] current by watching the four RBAC kinds.
//! - [`escalation`]: creating/updating Roles and bindings may not grant more than one holds.
//! - [`reviews`]: SubjectAccessReview & co. (`kubectl auth can-i`).

mod cache;
pub mod escalation;
pub mod filter;
pub mod policy;
pub mod reviews;
pub mod rules;

use crate::auth::UserInfo;
use crate::error::ApiError;
use crate::registry::Registry;
use crate::request::{self, Route};
use axum::http::{Method, StatusCode};
use r8s_api::strategy::errors::go_quote;
use serde_json::json;
use std::sync::Arc;

pub use policy::Decision;
pub use rules::{PolicyRule, RoleRef, Subject};

/// What a request asks to do (upstream's `authorizer.Attributes`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attributes {
    pub user: String,
    pub groups: Vec<String>,
    /// get, list, watch, create, update, patch, delete, deletecollection, impersonate, …
    /// (for non-resource requests: the lower-cased HTTP method).
    pub verb: String,
    pub resource_request: bool,
    pub api_group: String,
    pub api_version: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
    /// The URL path (what non-resource rules match).
    pub path: String,
}

impl Attributes {
    /// Empty attributes of `user` (fill in the rest with struct update syntax).
    pub fn for_user(user: &UserInfo) -> Attributes {
        Attributes {
            user: user.name.clone(),
            groups: user.groups.clone(),
            ..Default::default()
        }
    }
}

/// The attributes of an HTTP request by `user` (upstream's RequestInfo resolution).
pub fn request_attributes(
    user: &UserInfo,
    method: &Method,
    path: &str,
    query: Option<&str>,
) -> Attributes {
    let base = Attributes {
        path: path.to_string(),
        ..Attributes::for_user(user)
    };
    let Route::Resource(t) = request::parse(path) else {
        return Attributes {
            verb: method.as_str().to_ascii_lowercase(),
            ..base
        };
    };
    let param = |key: &str| {
        form_urlencoded::parse(query.unwrap_or("").as_bytes())
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
    };
    let mut name = t.name.clone().unwrap_or_default();
    let verb = match *method {
        Method::GET | Method::HEAD if t.legacy_watch => "watch".to_string(),
        Method::GET | Method::HEAD if name.is_empty() => {
            // As upstream's ListOptions decoding: any value but 0/false is true.
            let watch =
                param("watch").is_some_and(|v| v != "0" && !v.eq_ignore_ascii_case("false"));
            if watch { "watch" } else { "list" }.to_string()
        }
        Method::GET | Method::HEAD => "get".to_string(),
        Method::POST => "create".to_string(),
        Method::PUT => "update".to_string(),
        Method::PATCH => "patch".to_string(),
        Method::DELETE if name.is_empty() => "deletecollection".to_string(),
        Method::DELETE => "delete".to_string(),
        ref other => other.as_str().to_ascii_lowercase(),
    };
    // A list or watch of one object by name is authorized as that object (resourceNames).
    if name.is_empty()
        && (verb == "list" || verb == "watch")
        && let Some(sel) = param("fieldSelector")
        && let Ok(sel) = r8s_api::selector::FieldSelector::parse(&sel)
        && let Some(n) = sel.requires_exact_match("metadata.name")
    {
        name = n.to_string();
    }
    let mut namespace = t.namespace.clone().unwrap_or_default();
    if t.resource == "namespaces" && namespace.is_empty() {
        // `/api/v1/namespaces/foo` is the namespace foo itself, inside its own scope.
        namespace = name.clone();
    }
    let subresource = t
        .subresource
        .as_deref()
        .and_then(|s| s.split('/').next())
        .unwrap_or("")
        .to_string();
    Attributes {
        verb,
        resource_request: true,
        api_group: t.group,
        api_version: t.version,
        resource: t.resource,
        subresource,
        namespace,
        name,
        ..base
    }
}

/// The 403 for a denied request, worded as upstream's `responsewriters.Forbidden`:
/// `pods "x" is forbidden: User "jane" cannot get resource "pods" in API group "" in the
/// namespace "default"`.
pub fn forbidden(a: &Attributes, reason: &str) -> ApiError {
    let user = go_quote(&a.user);
    let mut msg = if !a.resource_request {
        format!("User {user} cannot {} path {}", a.verb, go_quote(&a.path))
    } else {
        let mut resource = a.resource.clone();
        if !a.subresource.is_empty() {
            resource = format!("{resource}/{}", a.subresource);
        }
        let scope = if a.namespace.is_empty() {
            "at the cluster scope".to_string()
        } else {
            format!("in the namespace {}", go_quote(&a.namespace))
        };
        format!(
            "User {user} cannot {} resource {} in API group {} {scope}",
            a.verb,
            go_quote(&resource),
            go_quote(&a.api_group)
        )
    };
    if !reason.is_empty() {
        msg = format!("{msg}: {reason}");
    }
    let mut details = json!({});
    let message = if !a.resource_request || a.resource.is_empty() {
        format!("forbidden: {msg}")
    } else {
        let qualified = if a.api_group.is_empty() {
            a.resource.clone()
        } else {
            format!("{}.{}", a.resource, a.api_group)
        };
        details["kind"] = json!(a.resource);
        if !a.api_group.is_empty() {
            details["group"] = json!(a.api_group);
        }
        if a.name.is_empty() {
            format!("{qualified} is forbidden: {msg}")
        } else {
            details["name"] = json!(a.name);
            format!("{qualified} {} is forbidden: {msg}", go_quote(&a.name))
        }
    };
    ApiError {
        code: StatusCode::FORBIDDEN,
        reason: "Forbidden",
        message,
        details: Some(details),
    }
}

/// A PUT that creates a missing object must also be allowed to `create` it (upstream's
/// `withAuthorization` on the create-on-update path); refused with upstream's 403
/// `<resource>.<group> "<name>" is forbidden: <reason>`.
pub async fn authorize_create_on_update(
    authz: &Authorizer,
    user: &UserInfo,
    target: &request::ResourcePath,
) -> Result<(), ApiError> {
    if user.is_master() {
        return Ok(());
    }
    let name = target.name.clone().unwrap_or_default();
    let attrs = Attributes {
        verb: "create".into(),
        resource_request: true,
        api_group: target.group.clone(),
        api_version: target.version.clone(),
        resource: target.resource.clone(),
        namespace: target.namespace.clone().unwrap_or_default(),
        name: name.clone(),
        ..Attributes::for_user(user)
    };
    let decision = authz.authorize(&attrs).await;
    if decision.allowed {
        return Ok(());
    }
    let qualified = if attrs.api_group.is_empty() {
        attrs.resource.clone()
    } else {
        format!("{}.{}", attrs.resource, attrs.api_group)
    };
    let mut details = json!({"name": name, "kind": attrs.resource});
    if !attrs.api_group.is_empty() {
        details["group"] = json!(attrs.api_group);
    }
    Err(ApiError {
        code: StatusCode::FORBIDDEN,
        reason: "Forbidden",
        message: format!(
            "{qualified} {} is forbidden: {}",
            go_quote(&name),
            decision.reason
        ),
        details: Some(details),
    })
}

/// The RBAC authorizer over a watched cache of the policy; cheap to clone.
#[derive(Clone)]
pub struct Authorizer {
    cache: Arc<cache::PolicyCache>,
}

impl Authorizer {
    /// Start watching Roles, ClusterRoles and bindings through `registry`.
    pub fn start(registry: Registry) -> Authorizer {
        Authorizer {
            cache: cache::PolicyCache::start(registry),
        }
    }

    /// Decide one request. `system:masters` is allowed without looking at the policy.
    pub async fn authorize(&self, attrs: &Attributes) -> Decision {
        if attrs.groups.iter().any(|g| g == crate::auth::MASTERS) {
            return Decision::allow(String::new());
        }
        self.cache.wait_synced().await;
        self.cache.read(|p| p.authorize(attrs))
    }

    /// Every rule that applies to the user in `namespace` (cluster-wide ones included).
    pub async fn rules_for(
        &self,
        user: &str,
        groups: &[String],
        namespace: &str,
    ) -> Vec<PolicyRule> {
        self.cache.wait_synced().await;
        self.cache.read(|p| p.rules_for(user, groups, namespace))
    }

    /// The rules a binding's roleRef grants in `namespace` (aggregation resolved).
    pub async fn role_ref_rules(
        &self,
        role_ref: &RoleRef,
        namespace: &str,
    ) -> Option<Vec<PolicyRule>> {
        self.cache.wait_synced().await;
        self.cache.read(|p| p.role_ref_rules(role_ref, namespace))
    }
}

#[cfg(test)]
mod tests;
