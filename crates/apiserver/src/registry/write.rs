//! Create and update (PUT, patch, status/scale subresources) — upstream's BeforeCreate /
//! GuaranteedUpdate flow.

use super::{Registry, Written, encode, object_key};
use crate::error::{ApiError, ApiResult};
use crate::meta;
use r8s_api::catalog::ResourceInfo;
use r8s_api::strategy::{self, FieldError, Generation};
use serde_json::{Value, json};

/// Options shared by writes.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// `dryRun=All`: run every step but do not persist.
    pub dry_run: bool,
}

/// How many times an unconditional update is retried when another writer wins the race.
const UPDATE_RETRIES: usize = 16;

impl Registry {
    /// Create an object in `namespace` (ignored for cluster-scoped kinds).
    pub async fn create(
        &self,
        info: &'static ResourceInfo,
        namespace: Option<&str>,
        mut obj: Value,
        opts: &WriteOptions,
    ) -> ApiResult<Value> {
        check_type_meta(info, &obj)?;
        r8s_api::conversion::to_storage(info, &mut obj);
        let namespace = self.resolve_namespace(info, namespace, &mut obj)?;
        // Upstream's NamespaceLifecycle admission runs first: a missing or terminating
        // namespace answers before the object is defaulted or validated.
        if let Some(ns) = namespace.as_deref() {
            self.check_namespace_accepts_creates(ns).await?;
        }
        self.admit_create(info, namespace.as_deref(), &mut obj)
            .await?;
        {
            let m = meta::metadata_mut(&mut obj);
            let name = m.get("name").and_then(Value::as_str).unwrap_or("");
            let gen_base = m.get("generateName").and_then(Value::as_str).unwrap_or("");
            if name.is_empty() && !gen_base.is_empty() {
                let generated = meta::generate_name(gen_base);
                m.insert("name".into(), Value::String(generated));
            }
            m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
            m.insert("creationTimestamp".into(), json!(meta::now_rfc3339()));
            if strategy::generation(info.group, info.kind) != Generation::Untracked {
                m.insert("generation".into(), json!(1));
            }
            for k in [
                "resourceVersion",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "selfLink",
            ] {
                m.remove(k);
            }
        }
        meta::drop_empty_collections(&mut obj);
        let strategy = strategy::for_kind(info.group, info.kind);
        strategy.default(&mut obj);
        // Upstream decodes with defaults, then runs the rest of admission.
        self.admit_limit_ranges(info, namespace.as_deref(), &mut obj)
            .await?;
        let webhook_attrs = super::webhook::Attrs::create(info, namespace.as_deref(), opts.dry_run);
        self.mutating_webhooks(&webhook_attrs, &mut obj, None)
            .await?;
        strategy.prepare_for_create(&mut obj);
        let name = meta::name(&obj).to_string();
        let mut errors = validate_meta(info, &obj);
        errors.extend(strategy.validate_create(&obj));
        let errors = dedup(errors);
        if !errors.is_empty() {
            return Err(ApiError::invalid(info.group, info.kind, &name, &errors));
        }
        self.validating_webhooks(&webhook_attrs, &obj, None).await?;
        self.admit_quota(info, namespace.as_deref(), &obj, None, opts.dry_run)
            .await?;
        let allocated = self.alloc.on_create(info, &mut obj, opts.dry_run).await?;
        if opts.dry_run {
            return Ok(obj);
        }
        let key = object_key(info, namespace.as_deref(), &name);
        let bytes = encode(&obj)?;
        match self.store.create(&key, bytes, None).await {
            Ok(rev) => {
                self.wrote(info, rev, Written::Stored(&obj)).await;
                super::set_resource_version(&mut obj, rev);
                super::set_type_meta(info, &mut obj);
                Ok(obj)
            }
            Err(e) => {
                self.alloc.release_all(allocated).await;
                Err(match e {
                    r8s_store::Error::AlreadyExists(_) => {
                        ApiError::already_exists(info.group, info.plural, &name)
                    }
                    other => other.into(),
                })
            }
        }
    }

    /// A PUT of the missing object `name` creates it when the kind allows that (upstream's
    /// create-on-update): the whole create path runs (admission, defaults, validation,
    /// namespace checks, Service allocation). A uid in the body is a precondition no
    /// missing object meets (409); a resourceVersion is ignored, as upstream ignores it
    /// when it creates. Kinds that do not allow it answer 404, as the update did.
    pub async fn create_on_update(
        &self,
        info: &'static ResourceInfo,
        namespace: Option<&str>,
        name: &str,
        mut obj: Value,
        opts: &WriteOptions,
    ) -> ApiResult<Value> {
        if !strategy::for_kind(info.group, info.kind).allow_create_on_update() {
            return Err(ApiError::not_found(info.group, info.plural, name));
        }
        check_type_meta(info, &obj)?;
        let body_name = meta::name(&obj);
        if !body_name.is_empty() && body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let uid = meta::meta_str(&obj, "uid");
        if !uid.is_empty() {
            let mut e = ApiError::conflict(info.group, info.plural, name);
            let qualified = if info.group.is_empty() {
                info.plural.to_string()
            } else {
                format!("{}.{}", info.plural, info.group)
            };
            e.message = format!(
                "Operation cannot be fulfilled on {qualified} \"{name}\": Precondition failed: UID in precondition: {uid}, UID in object meta: "
            );
            return Err(e);
        }
        meta::metadata_mut(&mut obj).insert("name".into(), json!(name));
        self.create(info, namespace, obj, opts).await
    }

    /// Update an object: `mutate` turns the current object into the desired one and may fail
    /// (e.g. a stale resourceVersion in a PUT body). Retried when a concurrent writer wins,
    /// unless `mutate` pinned a resourceVersion. `subresource` selects the status split.
    pub async fn update_with<F>(
        &self,
        info: &'static ResourceInfo,
        namespace: Option<&str>,
        name: &str,
        subresource: Option<&str>,
        opts: &WriteOptions,
        mut mutate: F,
    ) -> ApiResult<Value>
    where
        F: FnMut(&Value) -> ApiResult<Value> + Send,
    {
        let namespace = namespace.filter(|_| info.namespaced);
        for _ in 0..UPDATE_RETRIES {
            let (served, kv) = self.get_kv(info, namespace, name).await?;
            let mut desired = mutate(&served)?;
            // Strategies and comparisons work on the storage version (a second copy only
            // for the few kinds served in another form: copying a large object costs ms).
            let current = if r8s_api::conversion::is_converted(info) {
                let mut stored = served.clone();
                r8s_api::conversion::to_storage(info, &mut stored);
                stored
            } else {
                served
            };
            check_type_meta(info, &desired)?;
            r8s_api::conversion::to_storage(info, &mut desired);
            let pinned_rv = meta::meta_str(&desired, "resourceVersion").to_string();
            if !pinned_rv.is_empty() && pinned_rv != kv.mod_revision.to_string() {
                return Err(ApiError::conflict(info.group, info.plural, name));
            }
            let body_name = meta::name(&desired);
            if !body_name.is_empty() && body_name != name {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({body_name}) does not match the name on the URL ({name})"
                )));
            }
            let body_ns = meta::namespace(&desired);
            if info.namespaced && !body_ns.is_empty() && Some(body_ns) != namespace {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            let webhook_attrs =
                super::webhook::Attrs::update(info, namespace, subresource, opts.dry_run);
            self.mutating_webhooks(&webhook_attrs, &mut desired, Some(&current))
                .await?;
            self.prepare_update(info, subresource, &mut desired, &current)?;
            self.validating_webhooks(&webhook_attrs, &desired, Some(&current))
                .await?;
            if meta::is_deleting(&desired)
                && meta::finalizers(&desired).is_empty()
                && grace_elapsed(&desired)
                && !pending_namespace_finalizers(info, &desired)
            {
                // The last finalizer is gone: the object goes away now (as upstream).
                if opts.dry_run {
                    return Ok(desired);
                }
                let key = object_key(info, namespace, name);
                return match self.store.delete(&key, Some(kv.mod_revision)).await {
                    Ok((_, rev)) => {
                        self.wrote(info, rev, Written::Deleted(&current)).await;
                        self.forget_namespace(info, name, rev);
                        self.alloc.on_delete(info, &current).await;
                        Ok(desired)
                    }
                    Err(r8s_store::Error::Conflict { .. }) => continue,
                    Err(r8s_store::Error::NotFound(_)) => {
                        Err(ApiError::not_found(info.group, info.plural, name))
                    }
                    Err(e) => Err(e.into()),
                };
            }
            let allocated = self
                .alloc
                .on_update(info, &mut desired, &current, opts.dry_run)
                .await?;
            let unchanged = desired_unchanged(&desired, &current);
            // Only Service and claim updates are charged; every other update (leases, pod
            // status) skips admission without allocating.
            if !unchanged && r8s_api::quota::charges_updates(info.group, info.plural) {
                // Boxed: charging a quota updates the quota through this function.
                let charged = Box::pin(self.admit_quota(
                    info,
                    namespace,
                    &desired,
                    Some(&current),
                    opts.dry_run,
                ))
                .await;
                if let Err(e) = charged {
                    self.alloc.release_all(allocated).await;
                    return Err(e);
                }
            }
            if opts.dry_run || unchanged {
                let mut out = desired;
                super::set_resource_version(&mut out, kv.mod_revision);
                return Ok(out);
            }
            let key = object_key(info, namespace, name);
            match self
                .store
                .update(&key, encode(&desired)?, kv.mod_revision, None)
                .await
            {
                Ok(rev) => {
                    self.wrote(info, rev, Written::Stored(&desired)).await;
                    super::set_resource_version(&mut desired, rev);
                    super::set_type_meta(info, &mut desired);
                    return Ok(desired);
                }
                Err(r8s_store::Error::Conflict { .. }) => {
                    self.alloc.release_all(allocated).await;
                    if !pinned_rv.is_empty() {
                        return Err(ApiError::conflict(info.group, info.plural, name));
                    }
                }
                Err(r8s_store::Error::NotFound(_)) => {
                    self.alloc.release_all(allocated).await;
                    return Err(ApiError::not_found(info.group, info.plural, name));
                }
                Err(e) => {
                    self.alloc.release_all(allocated).await;
                    return Err(e.into());
                }
            }
        }
        Err(ApiError::conflict(info.group, info.plural, name))
    }

    /// System metadata, status split, generation, defaults and validation for an update.
    fn prepare_update(
        &self,
        info: &'static ResourceInfo,
        subresource: Option<&str>,
        desired: &mut Value,
        current: &Value,
    ) -> ApiResult<()> {
        let has_status = info.subresource("status").is_some();
        match subresource {
            Some("status") => {
                // Status writes change only status (upstream status strategies).
                let status = desired.get("status").cloned();
                *desired = current.clone();
                if let Some(map) = desired.as_object_mut() {
                    match status {
                        Some(s) => map.insert("status".into(), s),
                        None => map.remove("status"),
                    };
                }
            }
            // Only the list of ephemeral containers changes (upstream's
            // podEphemeralContainersStrategy); validation refuses edits of existing ones.
            Some("ephemeralcontainers") => {
                let added = desired.pointer("/spec/ephemeralContainers").cloned();
                *desired = current.clone();
                if let Some(spec) = desired.get_mut("spec").and_then(Value::as_object_mut) {
                    match added {
                        Some(list) if !list.is_null() => {
                            spec.insert("ephemeralContainers".into(), list)
                        }
                        _ => spec.remove("ephemeralContainers"),
                    };
                }
            }
            // A CSR's decision: only its conditions change (upstream's approval strategy).
            Some("approval") => {
                let conditions = desired.pointer("/status/conditions").cloned();
                *desired = current.clone();
                if let Some(map) = desired.as_object_mut() {
                    let status = map
                        .entry("status")
                        .or_insert_with(|| Value::Object(Default::default()));
                    if let Some(s) = status.as_object_mut() {
                        match conditions {
                            Some(c) if !c.is_null() => s.insert("conditions".into(), c),
                            _ => s.remove("conditions"),
                        };
                    }
                }
            }
            // Internal subresources (binding, finalize) write exactly what they computed.
            Some(_) => {}
            None if has_status => {
                if let Some(map) = desired.as_object_mut() {
                    match current.get("status") {
                        Some(s) => map.insert("status".into(), s.clone()),
                        None => map.remove("status"),
                    };
                }
            }
            None => {}
        }
        // System-owned metadata never changes through an update; a uid that names another
        // incarnation of the object is refused (clients use it as a precondition).
        // Borrowed, not copied: metadata carries managedFields (hundreds of KB on big objects).
        let cur_meta = current.get("metadata");
        let cur_field = |k: &str| cur_meta.and_then(|m| m.get(k));
        let body_uid = meta::meta_str(desired, "uid");
        let cur_uid = cur_field("uid").and_then(Value::as_str).unwrap_or("");
        if !body_uid.is_empty() && body_uid != cur_uid {
            return Err(ApiError::invalid(
                info.group,
                info.kind,
                meta::name(current),
                &[FieldError {
                    reason: "FieldValueInvalid",
                    field: "metadata.uid".into(),
                    message: format!("Invalid value: \"{body_uid}\": field is immutable"),
                }],
            ));
        }
        let m = meta::metadata_mut(desired);
        for k in [
            "uid",
            "creationTimestamp",
            "namespace",
            "name",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ] {
            match cur_field(k) {
                Some(v) => m.insert(k.into(), v.clone()),
                None => m.remove(k),
            };
        }
        m.remove("resourceVersion");
        meta::drop_empty_collections(desired);
        let strategy = strategy::for_kind(info.group, info.kind);
        strategy.default(desired);
        if subresource.is_none() {
            strategy.prepare_for_update(desired, current);
        }
        if generation_moves(info, desired, current) {
            let next = current
                .get("metadata")
                .and_then(|m| m.get("generation"))
                .and_then(Value::as_i64)
                .unwrap_or(0)
                + 1;
            meta::metadata_mut(desired).insert("generation".into(), json!(next));
        }
        let name = meta::name(current).to_string();
        let mut errors = validate_meta(info, desired);
        // An unconditional update targets the stored version (as upstream fills it in).
        if let Some(rv) = current.pointer("/metadata/resourceVersion").cloned() {
            meta::metadata_mut(desired).insert("resourceVersion".into(), rv);
        }
        errors.extend(strategy::validation::validate_object_meta_update(
            desired, current,
        ));
        meta::metadata_mut(desired).remove("resourceVersion");
        match subresource {
            None | Some("status") => errors.extend(strategy.validate_update(desired, current)),
            Some(sub) => errors.extend(strategy.validate_subresource_update(sub, desired, current)),
        }
        let errors = dedup(errors);
        if !errors.is_empty() {
            return Err(ApiError::invalid(info.group, info.kind, &name, &errors));
        }
        Ok(())
    }

    /// The namespace an object goes into: URL wins, the body must agree.
    fn resolve_namespace(
        &self,
        info: &ResourceInfo,
        url_namespace: Option<&str>,
        obj: &mut Value,
    ) -> ApiResult<Option<String>> {
        let m = meta::metadata_mut(obj);
        if !info.namespaced {
            m.remove("namespace");
            return Ok(None);
        }
        let body_ns = m
            .get("namespace")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let ns = match url_namespace {
            Some(u) if !body_ns.is_empty() && body_ns != u => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            Some(u) => u.to_string(),
            None if !body_ns.is_empty() => body_ns,
            None => {
                return Err(ApiError::bad_request(
                    "the server could not find the requested resource: a namespace must be specified",
                ));
            }
        };
        m.insert("namespace".into(), Value::String(ns.clone()));
        Ok(Some(ns))
    }

    /// A namespace this server marked for deletion or deleted stops accepting creates now,
    /// not when the namespace watch catches up.
    pub(super) fn forget_namespace(&self, info: &ResourceInfo, name: &str, rev: i64) {
        if info.group.is_empty() && info.plural == "namespaces" {
            self.namespaces.forget(name, rev);
        }
    }

    /// Creating into a missing namespace is 404; into a terminating one 403, as upstream.
    async fn check_namespace_accepts_creates(&self, ns: &str) -> ApiResult<()> {
        if self.namespaces.is_active(&self.store, ns) {
            return Ok(());
        }
        let key = format!("{}{ns}", super::namespaces::PREFIX);
        let Some(kv) = self.store.get(&key, 0).await? else {
            return Err(ApiError::not_found("", "namespaces", ns));
        };
        let obj: Value = serde_json::from_slice(&kv.value).unwrap_or(Value::Null);
        if meta::is_deleting(&obj) {
            return Err(ApiError::forbidden(format!(
                "unable to create new content in namespace {ns} because it is being terminated"
            )));
        }
        Ok(())
    }
}

/// A gracefully terminating object (a pod the kubelet is stopping) stays until its grace
/// period is zero; only then does dropping the last finalizer remove it, as upstream.
fn grace_elapsed(obj: &Value) -> bool {
    obj.pointer("/metadata/deletionGracePeriodSeconds")
        .and_then(Value::as_i64)
        .is_none_or(|g| g == 0)
}

/// A namespace keeps existing while its `spec.finalizers` are pending.
fn pending_namespace_finalizers(info: &ResourceInfo, obj: &Value) -> bool {
    info.group.is_empty()
        && info.plural == "namespaces"
        && obj
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty())
}

/// No-op updates do not create a new revision (upstream skips the write too). Compared
/// in place, without resourceVersion, apiVersion and kind.
fn desired_unchanged(desired: &Value, current: &Value) -> bool {
    let top = |k: &str| matches!(k, "apiVersion" | "kind" | "metadata");
    meta::equal_except(desired, current, top)
        && meta::equal_except(
            desired.get("metadata").unwrap_or(&Value::Null),
            current.get("metadata").unwrap_or(&Value::Null),
            |k| k == "resourceVersion",
        )
}

/// The body's kind/apiVersion, when given, must be the URL's.
fn check_type_meta(info: &ResourceInfo, obj: &Value) -> ApiResult<()> {
    if !obj.is_object() {
        return Err(ApiError::bad_request(
            "the body of the request must be a JSON object",
        ));
    }
    if let Some(kind) = obj.get("kind") {
        let kind = kind.as_str().unwrap_or("");
        if !kind.is_empty() && kind != info.kind {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({kind}) does not match the expected kind ({})",
                info.kind
            )));
        }
    }
    if let Some(av) = obj.get("apiVersion") {
        let av = av.as_str().unwrap_or("");
        // Another version of the same group (an autoscaling/v2 body sent to v1) is its
        // stored form; another group's (a core Event sent to events.k8s.io) is refused.
        let storage_av = (info.storage_group == info.group).then(|| info.storage_api_version());
        if !av.is_empty() && av != info.api_version() && Some(av) != storage_av.as_deref() {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({})",
                info.api_version()
            )));
        }
    }
    Ok(())
}

/// Generic ObjectMeta validation, with the kind's name rule.
fn validate_meta(info: &ResourceInfo, obj: &Value) -> Vec<FieldError> {
    let rule = strategy::for_kind(info.group, info.kind).name_rule();
    strategy::validation::validate_object_meta(obj, info.namespaced, rule)
}

/// Drop repeated errors (upstream de-duplicates before reporting).
fn dedup(errors: Vec<FieldError>) -> Vec<FieldError> {
    let mut out: Vec<FieldError> = Vec::with_capacity(errors.len());
    for e in errors {
        if !out.contains(&e) {
            out.push(e);
        }
    }
    out
}

/// Whether an update raises the object's generation (see [`Generation`]).
fn generation_moves(info: &ResourceInfo, new: &Value, old: &Value) -> bool {
    // Missing and empty maps compare equal, as upstream's semantic equality has it.
    fn map<'a>(obj: &'a Value, k: &str) -> Option<&'a Value> {
        obj.get("metadata")
            .and_then(|m| m.get(k))
            .filter(|v| v.as_object().is_none_or(|m| !m.is_empty()))
    }
    let differs = |k: &str| map(new, k) != map(old, k);
    match strategy::generation(info.group, info.kind) {
        Generation::Untracked => false,
        Generation::Spec => !meta::spec_equal(new, old),
        Generation::SpecOrLabels => !meta::spec_equal(new, old) || differs("labels"),
    }
}
