//! Privilege-escalation prevention for RBAC writes, as upstream's RBAC storage wrappers:
//!
//! - a Role/ClusterRole may be created or changed by someone allowed `escalate` on it, or
//!   who already holds every rule it grants (in its namespace); an `aggregationRule` needs
//!   full authority (`*` on everything);
//! - a RoleBinding/ClusterRoleBinding may be written by someone allowed `bind` on the role
//!   it references, or who holds every rule of that role.
//!
//! `system:masters` skips the check. For PATCH the patched rules are computed from the
//! stored object (JSON, merge and strategic merge patches; for apply patches the applied
//! `rules`/`aggregationRule` replace the stored ones, as those lists are atomic).

use super::Attributes;
use super::rules::{self, PolicyRule, RoleRef};
use crate::auth::UserInfo;
use crate::error::{ApiError, ApiResult};
use crate::handlers::codec;
use crate::state::AppState;
use axum::http::{HeaderMap, StatusCode};
use r8s_api::patch::PatchType;
use r8s_api::strategy::errors::go_quote;
use serde_json::Value;

const RBAC: &str = "rbac.authorization.k8s.io";

/// Whether `a` is a write that needs the check.
pub fn applies(user: &UserInfo, a: &Attributes) -> bool {
    !user.is_master()
        && a.resource_request
        && a.api_group == RBAC
        && a.subresource.is_empty()
        && matches!(a.verb.as_str(), "create" | "update" | "patch")
        && matches!(
            a.resource.as_str(),
            "roles" | "clusterroles" | "rolebindings" | "clusterrolebindings"
        )
}

/// Refuse the write `a` (body `body`) if it would grant `user` more than they hold.
pub async fn check(
    state: &AppState,
    user: &UserInfo,
    a: &Attributes,
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult<()> {
    let obj = match a.verb.as_str() {
        "patch" => match patched(state, a, headers, body).await? {
            Some(o) => o,
            // Nothing to patch: the handler answers (404).
            None => return Ok(()),
        },
        _ => codec::decode_body(headers, body)?,
    };
    let name = if a.name.is_empty() {
        crate::meta::name(&obj).to_string()
    } else {
        a.name.clone()
    };
    let namespace = a.namespace.as_str();
    let may = |verb: &str, resource: &str, target: &str| Attributes {
        verb: verb.to_string(),
        resource_request: true,
        api_group: RBAC.into(),
        api_version: "v1".into(),
        resource: resource.to_string(),
        namespace: namespace.to_string(),
        name: target.to_string(),
        ..Attributes::for_user(user)
    };
    if a.resource.ends_with("bindings") {
        let Some(role_ref) = obj
            .get("roleRef")
            .and_then(|r| serde_json::from_value::<RoleRef>(r.clone()).ok())
        else {
            // Validation refuses a binding without a roleRef.
            return Ok(());
        };
        let role_resource = if role_ref.kind == "Role" {
            "roles"
        } else {
            "clusterroles"
        };
        if state
            .authz
            .authorize(&may("bind", role_resource, &role_ref.name))
            .await
            .allowed
        {
            return Ok(());
        }
        let granted = state
            .authz
            .role_ref_rules(&role_ref, namespace)
            .await
            .ok_or_else(|| ApiError::not_found(RBAC, role_resource, &role_ref.name))?;
        return confirm(state, user, namespace, &granted, a, &name, None).await;
    }
    if state
        .authz
        .authorize(&may("escalate", &a.resource, &name))
        .await
        .allowed
    {
        return Ok(());
    }
    let granted: Vec<PolicyRule> = obj
        .get("rules")
        .and_then(|r| serde_json::from_value(r.clone()).ok())
        .unwrap_or_default();
    confirm(state, user, namespace, &granted, a, &name, None).await?;
    if a.resource == "clusterroles" && obj.get("aggregationRule").is_some_and(|r| !r.is_null()) {
        let all = [
            PolicyRule {
                verbs: vec!["*".into()],
                api_groups: vec!["*".into()],
                resources: vec!["*".into()],
                ..Default::default()
            },
            PolicyRule {
                verbs: vec!["*".into()],
                non_resource_urls: vec!["*".into()],
                ..Default::default()
            },
        ];
        let msg = "must have cluster-admin privileges to use the aggregationRule";
        confirm(state, user, namespace, &all, a, &name, Some(msg)).await?;
    }
    Ok(())
}

/// 403 unless the user's rules in `namespace` cover `granted`.
async fn confirm(
    state: &AppState,
    user: &UserInfo,
    namespace: &str,
    granted: &[PolicyRule],
    a: &Attributes,
    name: &str,
    message: Option<&str>,
) -> ApiResult<()> {
    let held = state
        .authz
        .rules_for(&user.name, &user.groups, namespace)
        .await;
    let missing = rules::uncovered(&held, granted);
    if missing.is_empty() {
        return Ok(());
    }
    let text = match message {
        Some(m) => m.to_string(),
        None => {
            let mut lines: Vec<String> = rules::compact(&missing)
                .iter()
                .map(rules::compact_string)
                .collect();
            lines.sort();
            lines.dedup();
            let groups: Vec<String> = user.groups.iter().map(|g| go_quote(g)).collect();
            format!(
                "user {} (groups=[{}]) is attempting to grant RBAC permissions not currently held:\n{}",
                go_quote(&user.name),
                groups.join(" "),
                lines.join("\n")
            )
        }
    };
    Err(ApiError {
        code: StatusCode::FORBIDDEN,
        reason: "Forbidden",
        message: format!(
            "{}.{RBAC} {} is forbidden: {text}",
            a.resource,
            go_quote(name)
        ),
        details: Some(serde_json::json!({"name": name, "group": RBAC, "kind": a.resource})),
    })
}

/// The object a PATCH would produce (`None` if there is no object to patch).
async fn patched(
    state: &AppState,
    a: &Attributes,
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult<Option<Value>> {
    let info = r8s_api::catalog::find(RBAC, "v1", &a.resource)
        .ok_or_else(|| ApiError::internal(format!("{} not in catalog", a.resource)))?;
    let ns = (!a.namespace.is_empty() && info.namespaced).then_some(a.namespace.as_str());
    let ct = codec::content_type(headers);
    let kind =
        PatchType::from_content_type(&ct).ok_or_else(|| ApiError::unsupported_media_type(&ct))?;
    let current = match state.registry.get(info, ns, &a.name).await {
        Ok(c) => Some(c),
        Err(e) if e.code == StatusCode::NOT_FOUND => None,
        Err(e) => return Err(e),
    };
    if kind == PatchType::Apply {
        let applied = codec::decode_yaml(body)?;
        let mut out = current.unwrap_or_else(|| serde_json::json!({}));
        for field in ["rules", "aggregationRule", "roleRef"] {
            if let Some(v) = applied.get(field) {
                out[field] = v.clone();
            }
        }
        return Ok(Some(out));
    }
    let Some(current) = current else {
        return Ok(None);
    };
    let merge_keys = r8s_api::patch::merge_keys_for(info.group, info.kind);
    let body = codec::lossy_utf8(&bytes::Bytes::copy_from_slice(body));
    r8s_api::patch::apply_patch(kind, &current, &body, &merge_keys)
        .map(Some)
        .map_err(crate::handlers::resource::patch_error)
}
