//! Subresources: status, scale, pods/ephemeralcontainers, certificatesigningrequests/approval, pods/binding, pods/eviction (in [`super::eviction`]), namespaces/finalize; the
//! kubelet-served ones (pods/log, exec, attach, portforward, nodes/proxy) and
//! pods/proxy, services/proxy go to [`crate::proxy`].

use super::resource::{self, Call};
use crate::error::{ApiError, ApiResult};
use crate::meta;
use crate::registry::WriteOptions;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use r8s_api::catalog::ResourceInfo;
use serde_json::{Value, json};

/// Route a subresource request.
pub async fn handle(call: Call, method: &Method, sub: &str) -> ApiResult<Response> {
    match (sub, method.clone()) {
        ("status" | "ephemeralcontainers" | "approval", Method::GET) => {
            let obj = call
                .state
                .registry
                .get(call.info, call.namespace(), call.name()?)
                .await?;
            Ok(call.respond(StatusCode::OK, obj))
        }
        ("status", Method::PUT) => resource::update(call, Some("status")).await,
        ("status", Method::PATCH) => resource::patch(call, Some("status")).await,
        ("approval", Method::PUT) => resource::update(call, Some("approval")).await,
        ("approval", Method::PATCH) => resource::patch(call, Some("approval")).await,
        ("ephemeralcontainers", Method::PUT) if call.info.plural == "pods" => {
            resource::update(call, Some("ephemeralcontainers")).await
        }
        ("ephemeralcontainers", Method::PATCH) if call.info.plural == "pods" => {
            resource::patch(call, Some("ephemeralcontainers")).await
        }
        ("scale", m) => scale(call, m).await,
        ("binding", Method::POST) => binding(call).await,
        ("eviction", Method::POST) if call.info.plural == "pods" => {
            super::eviction::evict(call).await
        }
        ("finalize", Method::PUT) => finalize(call).await,
        ("token", Method::POST) => crate::auth::serviceaccount::token_request(call).await,
        ("log" | "exec" | "attach" | "portforward", _) if call.info.plural == "pods" => {
            crate::proxy::pod(&call.state.clone(), sub, proxy_request(call, method)?).await
        }
        (s, _) if call.info.plural == "nodes" && (s == "proxy" || s.starts_with("proxy/")) => {
            let path = s
                .strip_prefix("proxy")
                .unwrap_or("")
                .trim_start_matches('/')
                .to_string();
            crate::proxy::node(&call.state.clone(), &path, proxy_request(call, method)?).await
        }
        (s, _)
            if matches!(call.info.plural, "pods" | "services")
                && (s == "proxy" || s.starts_with("proxy/")) =>
        {
            let kind = if call.info.plural == "pods" {
                crate::proxy::backend::Kind::Pod
            } else {
                crate::proxy::backend::Kind::Service
            };
            let state = call.state.clone();
            crate::proxy::backend::serve(&state, kind, s, proxy_request(call, method)?).await
        }
        (s, m) => Err(ApiError::method_not_allowed(m.as_str(), s)),
    }
}

/// What the kubelet proxy needs of a request.
fn proxy_request(call: Call, method: &Method) -> ApiResult<crate::proxy::ProxyRequest> {
    let name = call.name()?.to_string();
    Ok(crate::proxy::ProxyRequest {
        method: method.clone(),
        namespace: call.namespace().map(str::to_string),
        name,
        query: call.raw_query,
        headers: call.headers,
        body: call.body,
        upgrade: call.upgrade,
    })
}

/// Where a kind keeps what its Scale shows: the workloads' fixed fields, or a custom
/// resource's `subresources.scale` paths.
struct ScaleFields {
    spec_replicas: String,
    status_replicas: String,
    /// A custom resource's string selector; `None`: the workload's `spec.selector` object.
    label_selector: Option<String>,
}

impl ScaleFields {
    fn of(info: &ResourceInfo) -> ScaleFields {
        match r8s_api::catalog::custom::served(info.group, info.version, info.plural)
            .and_then(|s| s.scale.clone())
        {
            Some(paths) => ScaleFields {
                spec_replicas: json_pointer(&paths.spec_replicas),
                status_replicas: json_pointer(&paths.status_replicas),
                label_selector: paths.label_selector.as_deref().map(json_pointer),
            },
            None => ScaleFields {
                spec_replicas: "/spec/replicas".into(),
                status_replicas: "/status/replicas".into(),
                label_selector: None,
            },
        }
    }
}

/// `.spec.replicas` → `/spec/replicas`.
fn json_pointer(path: &str) -> String {
    path.trim_start_matches('.')
        .split('.')
        .map(|seg| format!("/{}", seg.replace('~', "~0").replace('/', "~1")))
        .collect()
}

/// Sets the value at a JSON pointer, creating the objects on the way.
fn set_at(obj: &mut Value, pointer: &str, value: Value) {
    let mut at = obj;
    let segments: Vec<String> = pointer
        .split('/')
        .skip(1)
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect();
    for (i, seg) in segments.iter().enumerate() {
        if !at.is_object() {
            *at = json!({});
        }
        let Some(map) = at.as_object_mut() else {
            return;
        };
        if i + 1 == segments.len() {
            map.insert(seg.clone(), value);
            return;
        }
        at = map.entry(seg.clone()).or_insert_with(|| json!({}));
    }
}

/// The autoscaling/v1 Scale view of a workload.
fn to_scale(obj: &Value, fields: &ScaleFields) -> Value {
    let m = obj.get("metadata").cloned().unwrap_or(json!({}));
    let selector = match &fields.label_selector {
        Some(path) => obj
            .pointer(path)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        None => obj
            .pointer("/spec/selector")
            .map(selector_string)
            .unwrap_or_default(),
    };
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": m.get("name"),
            "namespace": m.get("namespace"),
            "uid": m.get("uid"),
            "resourceVersion": m.get("resourceVersion"),
            "creationTimestamp": m.get("creationTimestamp"),
        },
        "spec": {"replicas": obj.pointer(&fields.spec_replicas).and_then(Value::as_i64).unwrap_or(0)},
        "status": {
            "replicas": obj.pointer(&fields.status_replicas).and_then(Value::as_i64).unwrap_or(0),
            "selector": selector,
        },
    })
}

/// A metav1.LabelSelector as its string form (`a=b,c in (d)`).
fn selector_string(sel: &Value) -> String {
    let mut parts = Vec::new();
    if let Some(ml) = sel.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in ml {
            parts.push(format!("{k}={}", v.as_str().unwrap_or("")));
        }
    }
    if let Some(exprs) = sel.get("matchExpressions").and_then(Value::as_array) {
        for e in exprs {
            let key = e.get("key").and_then(Value::as_str).unwrap_or("");
            let values: Vec<&str> = e
                .get("values")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            match e.get("operator").and_then(Value::as_str).unwrap_or("") {
                "In" => parts.push(format!("{key} in ({})", values.join(","))),
                "NotIn" => parts.push(format!("{key} notin ({})", values.join(","))),
                "Exists" => parts.push(key.to_string()),
                "DoesNotExist" => parts.push(format!("!{key}")),
                _ => {}
            }
        }
    }
    parts.join(",")
}

async fn scale(call: Call, method: Method) -> ApiResult<Response> {
    let name = call.name()?.to_string();
    let ns = call.namespace().map(str::to_string);
    let registry = call.state.registry.clone();
    let info = call.info;
    let scale_fields = ScaleFields::of(info);
    let scale_response = |obj: &Value| {
        super::nonresource::json_response(StatusCode::OK, &to_scale(obj, &scale_fields))
    };
    match method {
        Method::GET => {
            let obj = registry.get(info, ns.as_deref(), &name).await?;
            Ok(scale_response(&obj))
        }
        Method::PUT | Method::PATCH => {
            let opts = call.write_options()?;
            let is_patch = method == Method::PATCH;
            let ct = super::codec::content_type(&call.headers);
            let body = call.body.clone();
            let body_obj = if is_patch {
                Value::Null
            } else {
                call.body_object()?
            };
            let fields = super::fieldmanager::FieldManager::new(&call);
            let updated = registry
                .update_with(info, ns.as_deref(), &name, None, &opts, |current| {
                    let current_scale = to_scale(current, &scale_fields);
                    let desired = if is_patch {
                        let kind = r8s_api::patch::PatchType::from_content_type(&ct)
                            .ok_or_else(|| ApiError::unsupported_media_type(&ct))?;
                        let keys = r8s_api::patch::merge_keys_for("autoscaling", "Scale");
                        r8s_api::patch::apply_patch(kind, &current_scale, &body, &keys)
                            .map_err(resource::patch_error)?
                    } else {
                        body_obj.clone()
                    };
                    let replicas = desired
                        .pointer("/spec/replicas")
                        .and_then(Value::as_i64)
                        .unwrap_or(0);
                    if replicas < 0 {
                        return Err(ApiError::invalid(
                            "autoscaling",
                            "Scale",
                            &name,
                            &[r8s_api::strategy::FieldError {
                                reason: "FieldValueInvalid",
                                field: "spec.replicas".into(),
                                message: format!(
                                    "Invalid value: {replicas}: must be greater than or equal to 0"
                                ),
                            }],
                        ));
                    }
                    let mut next = current.clone();
                    set_at(&mut next, &scale_fields.spec_replicas, json!(replicas));
                    fields.record(Some(current), &mut next, "scale");
                    // A stale resourceVersion in a PUT body is a conflict, as for objects.
                    let rv = meta::meta_str(&desired, "resourceVersion");
                    if !is_patch && !rv.is_empty() {
                        meta::metadata_mut(&mut next).insert("resourceVersion".into(), json!(rv));
                    } else if let Some(m) = next.get_mut("metadata").and_then(Value::as_object_mut)
                    {
                        m.remove("resourceVersion");
                    }
                    Ok(next)
                })
                .await?;
            Ok(scale_response(&updated))
        }
        m => Err(ApiError::method_not_allowed(m.as_str(), "scale")),
    }
}

/// POST pods/<name>/binding: assign the pod to a node, once.
async fn binding(call: Call) -> ApiResult<Response> {
    let binding = call.body_object()?;
    let name = call.name()?.to_string();
    let node = binding
        .pointer("/target/name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            ApiError::invalid(
                "",
                "Binding",
                &name,
                &[r8s_api::strategy::FieldError {
                    reason: "FieldValueRequired",
                    field: "target.name".into(),
                    message: "Required value".into(),
                }],
            )
        })?
        .to_string();
    let opts = WriteOptions {
        dry_run: call.query.dry_run()?,
    };
    call.state
        .registry
        .update_with(call.info, call.namespace(), &name, Some("binding"), &opts, |current| {
            let assigned = current.pointer("/spec/nodeName").and_then(Value::as_str).unwrap_or("");
            if !assigned.is_empty() {
                return Err(ApiError::conflict_message(format!(
                    "Operation cannot be fulfilled on pods/binding \"{name}\": pod {name} is already assigned to node \"{assigned}\""
                )));
            }
            if meta::is_deleting(current) {
                return Err(ApiError::conflict_message(format!("pod {name} is being deleted, cannot be assigned to a host")));
            }
            let mut next = current.clone();
            next["spec"]["nodeName"] = json!(node);
            set_condition(&mut next, "PodScheduled", "True", None, None);
            if let Some(m) = next.get_mut("metadata").and_then(Value::as_object_mut) {
                m.remove("resourceVersion");
            }
            Ok(next)
        })
        .await?;
    Ok(super::response::success_status(StatusCode::CREATED, None))
}

/// Set (or replace) a condition in `status.conditions`.
fn set_condition(
    obj: &mut Value,
    kind: &str,
    status: &str,
    reason: Option<&str>,
    message: Option<&str>,
) {
    if !obj.get("status").is_some_and(Value::is_object) {
        obj["status"] = json!({});
    }
    let conds = obj["status"]
        .as_object_mut()
        .map(|s| s.entry("conditions").or_insert_with(|| json!([])));
    let Some(Value::Array(conds)) = conds else {
        return;
    };
    conds.retain(|c| c.get("type").and_then(Value::as_str) != Some(kind));
    let mut c = json!({"type": kind, "status": status, "lastProbeTime": null, "lastTransitionTime": meta::now_rfc3339()});
    if let Some(r) = reason {
        c["reason"] = json!(r);
    }
    if let Some(m) = message {
        c["message"] = json!(m);
    }
    conds.push(c);
}

/// PUT namespaces/<name>/finalize: update `spec.finalizers` (the namespace controller's
/// last step); the namespace goes away once they and metadata.finalizers are empty.
async fn finalize(call: Call) -> ApiResult<Response> {
    let body = call.body_object()?;
    let name = call.name()?.to_string();
    let opts = call.write_options()?;
    let finalizers = body
        .pointer("/spec/finalizers")
        .cloned()
        .unwrap_or(json!([]));
    let updated = call
        .state
        .registry
        .update_with(call.info, None, &name, Some("finalize"), &opts, |current| {
            let mut next = current.clone();
            if !next.get("spec").is_some_and(Value::is_object) {
                next["spec"] = json!({});
            }
            next["spec"]["finalizers"] = finalizers.clone();
            if let Some(m) = next.get_mut("metadata").and_then(Value::as_object_mut) {
                m.remove("resourceVersion");
            }
            Ok(next)
        })
        .await?;
    Ok(call.respond(StatusCode::OK, updated))
}
