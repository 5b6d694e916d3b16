//! The ValidatingAdmissionPolicy plugin (upstream's `admission/plugin/policy/validating`):
//! policies and bindings from watch-fed caches ([`config`]), evaluated with CEL
//! ([`r8s_api::cel::admission`]) on the writes the webhooks see, after mutation and
//! validation and before validating webhooks, as upstream orders its plugins.
//!
//! - A policy applies when its `matchConstraints` match (resource rules with resource
//!   names and `matchPolicy: Equivalent`, exclude rules, namespace and object selectors);
//!   each binding naming it then narrows by its `matchResources`, fetches its parameters
//!   (`paramRef` by name or selector, `parameterNotFoundAction`), and the policy's
//!   `matchConditions` decide whether it is evaluated (all must be true).
//! - A validation that is not true fails: its `messageExpression`, `message` or `failed
//!   expression: <expression>` becomes the failure, which the binding's
//!   `validationActions` turn into a denial (`ValidatingAdmissionPolicy '<policy>' with
//!   binding '<binding>' denied request: …`, with the validation's `reason`, 422
//!   `Invalid` by default), a `Warning` header (`Validation failed for
//!   ValidatingAdmissionPolicy '…' with binding '…': …`) or an audit log line.
//! - Errors — expressions that do not compile or fail to evaluate, unusable selectors,
//!   missing parameters — are failures under `failurePolicy: Fail` and ignored under
//!   `Ignore`; configuration errors deny whatever the binding's actions.
//!
//! Not done: `auditAnnotations` (validated, never evaluated; r8s has no audit log), the
//! `authorizer` variable (expressions using it fail to evaluate), `status.typeChecking`
//! (left empty), cost budgets, CONNECT requests and the subresources webhooks do not see
//! either.

pub(super) mod config;

use super::Registry;
use super::webhook::matching::{self, Request};
use super::webhook::{Attrs, NamespaceObject, Objects, RequestContext};
use crate::error::{ApiError, ApiResult};
use axum::http::StatusCode;
use config::{Binding, Matcher, Policy};
use r8s_api::catalog::ResourceInfo;
use r8s_api::cel::admission::{self as cel, Activation, Input};
use serde_json::{Value, json};

/// Upstream's limit on a `messageExpression` result.
const MAX_MESSAGE_BYTES: usize = 5 * 1024;

/// A validation that failed (or could not be evaluated under `failurePolicy: Fail`).
struct Failure {
    message: String,
    /// The Status reason of a denial.
    reason: &'static str,
}

/// The first denial of a request: what it answers with.
struct Denial {
    policy: String,
    binding: Option<String>,
    failure: Failure,
}

/// The objects and request of one matched version, as expressions see them.
struct Viewed {
    target: &'static ResourceInfo,
    object: Option<Value>,
    old: Option<Value>,
    request: Value,
}

impl Registry {
    /// The bound ValidatingAdmissionPolicies on one write: a denial is the request's
    /// answer, warnings join it.
    pub(super) async fn run_policies(
        &self,
        attrs: &Attrs<'_>,
        ctx: &RequestContext,
        objects: &Objects<'_>,
    ) -> ApiResult<()> {
        if matching::exempt(attrs.info) {
            return Ok(());
        }
        self.webhooks.follow(&self.store);
        let bindings = self.webhooks.bindings.items(&self.store).await?;
        if bindings.is_empty() {
            return Ok(());
        }
        let policies = self.webhooks.policies.items(&self.store).await?;
        let name = objects.name();
        let req = Request {
            op: attrs.op,
            info: attrs.info,
            subresource: attrs.subresource.unwrap_or(""),
            namespace: attrs.namespace(name),
            name,
        };
        let mut ns = NamespaceObject::default();
        let mut views: Vec<Viewed> = Vec::new();
        let mut denials: Vec<Denial> = Vec::new();
        for policy in policies.iter() {
            let bound: Vec<&Binding> = bindings
                .iter()
                .filter(|b| b.policy_name == policy.name)
                .map(|b| b.as_ref())
                .collect();
            if bound.is_empty() {
                continue;
            }
            let config_error = |binding: Option<&Binding>, error: String| {
                let what = if binding.is_some() {
                    "binding"
                } else {
                    "policy"
                };
                Denial {
                    policy: policy.name.clone(),
                    binding: binding.map(|b| b.name.clone()),
                    failure: Failure {
                        message: format!("failed to configure {what}: {error}"),
                        reason: "Invalid",
                    },
                }
            };
            let Some(constraints) = &policy.constraints else {
                continue;
            };
            let target = match self.matches(constraints, &req, objects, &mut ns).await? {
                Ok(Some(target)) => target,
                Ok(None) => continue,
                Err(e) => {
                    if policy.fail {
                        denials.push(config_error(None, e));
                    }
                    continue;
                }
            };
            if let Some(e) = &policy.configuration_error {
                if policy.fail {
                    denials.push(config_error(None, e.clone()));
                }
                continue;
            }
            let param_info = match &policy.param_kind {
                None => None,
                Some(kind) => {
                    match r8s_api::catalog::find_kind(&kind.group, &kind.version, &kind.kind) {
                        Some(info) => Some(info),
                        None => {
                            if policy.fail {
                                denials.push(config_error(
                                    None,
                                    format!(
                                        "failed to find resource referenced by paramKind: '{}'",
                                        kind.describe()
                                    ),
                                ));
                            }
                            continue;
                        }
                    }
                }
            };
            for binding in bound {
                if let Some(m) = &binding.match_resources {
                    match self.matches(m, &req, objects, &mut ns).await? {
                        Ok(Some(_)) => {}
                        Ok(None) => continue,
                        Err(e) => {
                            if policy.fail {
                                denials.push(config_error(Some(binding), e));
                            }
                            continue;
                        }
                    }
                }
                let params = match self.params(param_info, binding, req.namespace).await {
                    Ok(p) => p,
                    Err(e) => {
                        if policy.fail {
                            denials.push(config_error(Some(binding), e));
                        }
                        continue;
                    }
                };
                if params.as_ref().is_some_and(Vec::is_empty) {
                    // No parameters, and `parameterNotFoundAction: Allow`.
                    continue;
                }
                // The namespace of namespaced requests (not of a Namespace itself).
                let namespace_object = if req.namespace.is_empty() || req.is_namespace_resource() {
                    None
                } else {
                    Some(cel::namespace_object(ns.get(self, req.namespace).await?))
                };
                let view = viewed(&mut views, attrs, ctx, target, objects);
                let failures: Vec<Failure> = match &params {
                    None => validate(policy, view, namespace_object.as_ref(), None),
                    Some(list) => list
                        .iter()
                        .flat_map(|p| validate(policy, view, namespace_object.as_ref(), Some(p)))
                        .collect(),
                };
                for failure in failures {
                    if binding.warn {
                        ctx.warn(vec![format!(
                            "Validation failed for ValidatingAdmissionPolicy '{}' with binding '{}': {}",
                            policy.name, binding.name, failure.message
                        )]);
                    }
                    if binding.audit {
                        tracing::info!(
                            policy = %policy.name, binding = %binding.name,
                            message = %failure.message,
                            "ValidatingAdmissionPolicy validation failed (audit)"
                        );
                    }
                    if binding.deny {
                        denials.push(Denial {
                            policy: policy.name.clone(),
                            binding: Some(binding.name.clone()),
                            failure,
                        });
                    }
                }
            }
        }
        match denials.into_iter().next() {
            None => Ok(()),
            Some(d) => Err(denied(attrs, objects, d)),
        }
    }

    /// The version `m` matches the request with (upstream's policy matcher: namespace and
    /// object selectors, exclude rules, then resource rules — none meaning every
    /// resource); `Err` for selectors that cannot be used, once the rules matched.
    async fn matches(
        &self,
        m: &Matcher,
        req: &Request<'_>,
        objects: &Objects<'_>,
        ns: &mut NamespaceObject,
    ) -> ApiResult<Result<Option<&'static ResourceInfo>, String>> {
        let ns_selected = match &m.namespace_selector {
            Ok(s) => Ok(self.namespace_selected(s, req, objects, ns).await?),
            Err(e) => Err(e.clone()),
        };
        if ns_selected == Ok(false) {
            return Ok(Ok(None));
        }
        let object_selected = match &m.object_selector {
            Ok(s) => Ok(objects.selected_by(s)),
            Err(e) => Err(e.clone()),
        };
        if object_selected == Ok(false) {
            return Ok(Ok(None));
        }
        if matching::invocation(&m.exclude, m.equivalent, req).is_some() {
            return Ok(Ok(None));
        }
        let target = if m.rules.is_empty() {
            req.info
        } else {
            match matching::invocation(&m.rules, m.equivalent, req) {
                Some(t) => t,
                None => return Ok(Ok(None)),
            }
        };
        if let Err(e) = ns_selected.and(object_selected) {
            return Ok(Err(e));
        }
        Ok(Ok(Some(target)))
    }

    /// The parameters `binding` evaluates its policy with: `None` when the policy has no
    /// `paramKind` or the binding no `paramRef` (evaluated once, `params` null); else the
    /// objects found (none: not evaluated, unless `parameterNotFoundAction: Deny` makes
    /// that an error). Upstream's `CollectParams`.
    async fn params(
        &self,
        info: Option<&'static ResourceInfo>,
        binding: &Binding,
        namespace: &str,
    ) -> Result<Option<Vec<Value>>, String> {
        let (Some(info), Some(param_ref)) = (info, &binding.param_ref) else {
            return Ok(None);
        };
        let ns = if info.namespaced {
            let ns = if param_ref.namespace.is_empty() {
                namespace
            } else {
                param_ref.namespace.as_str()
            };
            if ns.is_empty() {
                return Err(
                    "cannot use namespaced paramRef in policy binding that matches cluster-scoped resources"
                        .into(),
                );
            }
            Some(ns)
        } else {
            if !param_ref.namespace.is_empty() {
                return Err(
                    "paramRef.namespace must not be provided for a cluster-scoped `paramKind`"
                        .into(),
                );
            }
            None
        };
        let mut found = if !param_ref.name.is_empty() {
            match self.get(info, ns, &param_ref.name).await {
                Ok(obj) => vec![obj],
                Err(e) if e.code == StatusCode::NOT_FOUND => Vec::new(),
                Err(e) => return Err(e.message),
            }
        } else if let Some(selector) = &param_ref.selector {
            let selector = selector.clone()?;
            let params = super::ListParams {
                label_selector: Some(selector),
                ..Default::default()
            };
            self.list(info, ns, &params)
                .await
                .map_err(|e| e.message)?
                .items
        } else {
            return Err("one of name or selector must be provided".into());
        };
        if found.is_empty() && param_ref.deny_if_missing {
            return Err(
                "no params found for policy binding with `Deny` parameterNotFoundAction".into(),
            );
        }
        for p in &mut found {
            super::set_type_meta(info, p);
        }
        Ok(Some(found))
    }
}

/// The objects and request as matched at `target`, converted once per request.
fn viewed<'v>(
    views: &'v mut Vec<Viewed>,
    attrs: &Attrs<'_>,
    ctx: &RequestContext,
    target: &'static ResourceInfo,
    objects: &Objects<'_>,
) -> &'v Viewed {
    let at = match views.iter().position(|v| std::ptr::eq(v.target, target)) {
        Some(i) => i,
        None => {
            views.push(Viewed {
                target,
                object: objects
                    .object
                    .map(|o| super::webhook::view(attrs, target, o)),
                old: objects.old.map(|o| super::webhook::view(attrs, target, o)),
                request: attrs.cel_request(ctx, target, objects.name()),
            });
            views.len() - 1
        }
    };
    &views[at]
}

/// Evaluates `policy` once (upstream's validator): its match conditions, then every
/// validation; what failed.
fn validate(
    policy: &Policy,
    view: &Viewed,
    namespace_object: Option<&Value>,
    params: Option<&Value>,
) -> Vec<Failure> {
    let input = Input {
        object: view.object.as_ref(),
        old_object: view.old.as_ref(),
        request: Some(&view.request),
        namespace_object,
        params,
    };
    let act = Activation::new(&input, &policy.variables);
    let error = |message: String| -> Vec<Failure> {
        if policy.fail {
            vec![Failure {
                message,
                reason: "Invalid",
            }]
        } else {
            Vec::new()
        }
    };
    if !policy.match_conditions.is_empty() {
        match cel::match_conditions(&policy.match_conditions, &act) {
            Ok(true) => {}
            Ok(false) => return Vec::new(),
            Err(e) => return error(e),
        }
    }
    let mut failures = Vec::new();
    for v in &policy.validations {
        match cel::evaluate(&v.expression, &act) {
            Ok(cel::CelValue::Bool(true)) => {}
            Ok(_) => failures.push(Failure {
                message: message(v, &act),
                reason: v.reason,
            }),
            Err(e) => failures.extend(error(e)),
        }
    }
    failures
}

/// What a failed validation says: its message expression's result (a non-empty single
/// line of at most 5 KiB), else its message, else `failed expression: <expression>`.
fn message(v: &config::Validation, act: &Activation<'_>) -> String {
    if let Some(compiled) = &v.message_expression {
        match cel::evaluate(compiled, act) {
            Ok(cel::CelValue::String(s)) => {
                let s = s.trim();
                if !s.is_empty() && !s.contains('\n') && s.len() <= MAX_MESSAGE_BYTES {
                    return s.to_string();
                }
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "error while evaluating messageExpression"),
        }
    }
    match v.message.trim() {
        "" => format!("failed expression: {}", v.source.trim()),
        m => m.to_string(),
    }
}

/// The answer to a denied request: upstream's `admission.NewForbidden` with the denial's
/// reason and code (`<resource> "<name>" is forbidden: ValidatingAdmissionPolicy '…' …`).
fn denied(attrs: &Attrs<'_>, objects: &Objects<'_>, d: Denial) -> ApiError {
    let message = match &d.binding {
        Some(b) => format!(
            "ValidatingAdmissionPolicy '{}' with binding '{b}' denied request: {}",
            d.policy, d.failure.message
        ),
        None => format!(
            "ValidatingAdmissionPolicy '{}' denied request: {}",
            d.policy, d.failure.message
        ),
    };
    let code = match d.failure.reason {
        "Forbidden" => StatusCode::FORBIDDEN,
        "Unauthorized" => StatusCode::UNAUTHORIZED,
        "RequestEntityTooLarge" => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    let name = match objects.name() {
        "" => "Unknown",
        n => n,
    };
    let mut err = forbidden(attrs.info, name, &message, code, d.failure.reason);
    if let Some(details) = err.details.as_mut() {
        details["causes"] = json!([{ "message": message }]);
    }
    err
}

/// Upstream's `apierrors.NewForbidden(resource, name, err)` (with `code` and `reason`
/// replacing 403 Forbidden where the caller says so).
pub(super) fn forbidden(
    info: &ResourceInfo,
    name: &str,
    message: &str,
    code: StatusCode,
    reason: &'static str,
) -> ApiError {
    let resource = if info.group.is_empty() {
        info.plural.to_string()
    } else {
        format!("{}.{}", info.plural, info.group)
    };
    let text = if name.is_empty() {
        format!("{resource} is forbidden: {message}")
    } else {
        format!("{resource} \"{name}\" is forbidden: {message}")
    };
    let mut err = ApiError::from_parts(code, reason, text);
    let mut details = json!({ "kind": info.plural });
    if !info.group.is_empty() {
        details["group"] = json!(info.group);
    }
    if !name.is_empty() {
        details["name"] = json!(name);
    }
    err.details = Some(details);
    err
}

#[cfg(test)]
mod tests;
