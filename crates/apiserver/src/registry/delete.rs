//! Delete: graceful pod deletion, finalizers, propagation policy, preconditions.

use super::{Registry, Written, encode, object_key};
use crate::error::{ApiError, ApiResult};
use crate::meta;
use r8s_api::catalog::ResourceInfo;
use serde_json::{Value, json};

/// `metav1.DeleteOptions` (from the body or the query string).
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    pub grace_period_seconds: Option<i64>,
    /// `Background`, `Foreground` or `Orphan`.
    pub propagation_policy: Option<String>,
    pub precondition_uid: Option<String>,
    pub precondition_resource_version: Option<String>,
    pub dry_run: bool,
    /// The deprecated `orphanDependents` as given (query or body): only an explicit
    /// `false` turns a pending delete's answer into 202 Accepted, as upstream.
    pub orphan_dependents: Option<bool>,
}

impl DeleteOptions {
    /// Parse a DeleteOptions JSON body (missing fields keep their values).
    pub fn merge_body(&mut self, body: &Value) -> ApiResult<()> {
        if !body.is_object() {
            return Err(ApiError::bad_request(
                "DeleteOptions body must be a JSON object",
            ));
        }
        if let Some(g) = body.get("gracePeriodSeconds").filter(|v| !v.is_null()) {
            self.grace_period_seconds =
                Some(g.as_i64().ok_or_else(|| {
                    ApiError::bad_request("gracePeriodSeconds must be an integer")
                })?);
        }
        if let Some(p) = body.get("propagationPolicy").and_then(Value::as_str) {
            self.propagation_policy = Some(p.to_string());
        }
        if let Some(orphan) = body.get("orphanDependents").and_then(Value::as_bool) {
            self.orphan_dependents = Some(orphan);
            if orphan {
                self.propagation_policy = Some("Orphan".into());
            }
        }
        if let Some(pre) = body.get("preconditions") {
            if let Some(uid) = pre.get("uid").and_then(Value::as_str) {
                self.precondition_uid = Some(uid.to_string());
            }
            if let Some(rv) = pre.get("resourceVersion").and_then(Value::as_str) {
                self.precondition_resource_version = Some(rv.to_string());
            }
        }
        if let Some(dr) = body.get("dryRun").and_then(Value::as_array) {
            self.dry_run |= dr.iter().any(|v| v.as_str() == Some("All"));
        }
        Ok(())
    }

    fn validate(&self) -> ApiResult<()> {
        if let Some(p) = &self.propagation_policy
            && !matches!(p.as_str(), "Background" | "Foreground" | "Orphan")
        {
            return Err(ApiError::unprocessable(format!(
                "propagationPolicy: Unsupported value: \"{p}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
            )));
        }
        if matches!(self.grace_period_seconds, Some(g) if g < 0) {
            return Err(ApiError::unprocessable(
                "gracePeriodSeconds: Invalid value: must be >= 0",
            ));
        }
        Ok(())
    }
}

/// Namespaces that can never be deleted, as upstream.
const PROTECTED_NAMESPACES: [&str; 3] = ["default", "kube-system", "kube-public"];

/// What a delete did.
pub enum Deleted {
    /// Gone from the store; carries the last state.
    Now(Value),
    /// Marked for deletion (finalizers or grace period pending); carries the new state.
    Pending(Value),
}

impl Registry {
    /// Delete one object as upstream's `Store.Delete`.
    pub async fn delete(
        &self,
        info: &'static ResourceInfo,
        namespace: Option<&str>,
        name: &str,
        opts: &DeleteOptions,
    ) -> ApiResult<Deleted> {
        opts.validate()?;
        let namespace = namespace.filter(|_| info.namespaced);
        if info.group.is_empty()
            && info.plural == "namespaces"
            && PROTECTED_NAMESPACES.contains(&name)
        {
            return Err(ApiError::forbidden(format!(
                "namespaces \"{name}\" is forbidden: this namespace may not be deleted"
            )));
        }
        for _ in 0..16 {
            let (current, kv) = self.get_kv(info, namespace, name).await?;
            if let Some(uid) = &opts.precondition_uid
                && meta::meta_str(&current, "uid") != uid
            {
                return Err(ApiError::conflict_message(format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    meta::meta_str(&current, "uid")
                )));
            }
            if let Some(rv) = &opts.precondition_resource_version
                && *rv != kv.mod_revision.to_string()
            {
                return Err(ApiError::conflict_message(format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                    kv.mod_revision
                )));
            }
            self.delete_webhooks(
                &super::webhook::Attrs::delete(info, namespace, opts),
                &current,
            )
            .await?;
            let key = object_key(info, namespace, name);
            let marked = self.mark_for_deletion(info, &current, opts);
            match marked {
                Some(next) => {
                    if opts.dry_run || next == current {
                        return Ok(Deleted::Pending(current));
                    }
                    match self
                        .store
                        .update(&key, encode(&next)?, kv.mod_revision, None)
                        .await
                    {
                        Ok(rev) => {
                            self.wrote(info, rev, Written::Stored(&next)).await;
                            self.forget_namespace(info, name, rev);
                            let mut out = next;
                            super::set_resource_version(&mut out, rev);
                            return Ok(Deleted::Pending(out));
                        }
                        Err(r8s_store::Error::Conflict { .. }) => continue,
                        Err(r8s_store::Error::NotFound(_)) => {
                            return Err(ApiError::not_found(info.group, info.plural, name));
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                None => {
                    if opts.dry_run {
                        return Ok(Deleted::Now(current));
                    }
                    match self.store.delete(&key, Some(kv.mod_revision)).await {
                        Ok((_, rev)) => {
                            self.wrote(info, rev, Written::Deleted(&current)).await;
                            self.forget_namespace(info, name, rev);
                            self.alloc.on_delete(info, &current).await;
                            let mut out = current;
                            super::set_resource_version(&mut out, rev);
                            return Ok(Deleted::Now(out));
                        }
                        Err(r8s_store::Error::Conflict { .. }) => continue,
                        Err(r8s_store::Error::NotFound(_)) => {
                            return Err(ApiError::not_found(info.group, info.plural, name));
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
        Err(ApiError::conflict(info.group, info.plural, name))
    }

    /// `Some(next state)` if the object must linger (finalizers, graceful pod termination,
    /// namespace finalization); `None` if it can be removed now.
    fn mark_for_deletion(
        &self,
        info: &ResourceInfo,
        current: &Value,
        opts: &DeleteOptions,
    ) -> Option<Value> {
        let mut next = current.clone();
        let already = meta::is_deleting(current);
        let mut finalizers = meta::finalizers(current);
        if !already {
            match opts.propagation_policy.as_deref() {
                Some("Foreground") if !finalizers.iter().any(|f| f == "foregroundDeletion") => {
                    finalizers.push("foregroundDeletion".into());
                }
                Some("Orphan") if !finalizers.iter().any(|f| f == "orphan") => {
                    finalizers.push("orphan".into());
                }
                _ => {}
            }
        }
        let is_namespace = info.group.is_empty() && info.plural == "namespaces";
        let ns_finalizers_pending = is_namespace
            && current
                .pointer("/spec/finalizers")
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty());
        let grace = pod_grace_period(info, current, opts);
        if finalizers.is_empty() && !ns_finalizers_pending && grace == 0 {
            return None;
        }
        let m = meta::metadata_mut(&mut next);
        if !finalizers.is_empty() {
            m.insert("finalizers".into(), json!(finalizers));
        }
        // A shorter grace period may replace a longer one, never the reverse. Shortening
        // to 0 matters for a terminating pod held by a finalizer (a Job's tracking one):
        // the kubelet's final delete sets 0, and dropping the finalizer then removes it.
        let current_grace = m.get("deletionGracePeriodSeconds").and_then(Value::as_i64);
        if !already || current_grace.is_none_or(|g| grace < g) {
            let at = chrono::Utc::now() + chrono::Duration::seconds(grace);
            m.insert(
                "deletionTimestamp".into(),
                json!(at.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
            );
            m.insert("deletionGracePeriodSeconds".into(), json!(grace));
        }
        if is_namespace && let Some(map) = next.as_object_mut() {
            let status = map.entry("status").or_insert_with(|| json!({}));
            if let Some(s) = status.as_object_mut() {
                s.insert("phase".into(), json!("Terminating"));
            }
        }
        Some(next)
    }
}

/// Pods bound to a node terminate gracefully; unscheduled or finished pods go at once.
fn pod_grace_period(info: &ResourceInfo, pod: &Value, opts: &DeleteOptions) -> i64 {
    if !(info.group.is_empty() && info.plural == "pods") {
        return 0;
    }
    let scheduled = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty());
    let phase = pod
        .pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !scheduled || phase == "Succeeded" || phase == "Failed" {
        return 0;
    }
    opts.grace_period_seconds.unwrap_or_else(|| {
        pod.pointer("/spec/terminationGracePeriodSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(30)
    })
}
