//! Built-in admission for creates, as upstream's admission chain runs it: `ServiceAccount`
//! (pods get a ServiceAccount, its image pull secrets and an automounted API token volume)
//! before defaulting, and `LimitRanger` (the namespace's LimitRanges default and bound
//! container resources, [`limit_ranger`]) on the defaulted pod, before validation; then,
//! on the validated object, `ResourceQuota` (every matching quota of the namespace is
//! charged for it or refuses it, [`resource_quota`]).

mod limit_ranger;
mod resource_quota;
mod service_account;
#[cfg(test)]
mod tests;

use super::Registry;
use crate::error::{ApiError, ApiResult};
use crate::meta;
use axum::http::StatusCode;
use r8s_api::catalog::{self, ResourceInfo};
use r8s_api::quota;
use serde_json::{Value, json};
use service_account as sa;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How often the `default` ServiceAccount is looked up before a pod is refused: the
/// serviceaccount controller creates it right after the namespace, and a pod created in
/// between should wait briefly rather than fail (upstream retries the same way).
const DEFAULT_SA_ATTEMPTS: u32 = 10;

/// Which admission plugins run; shared by every clone of a registry.
#[derive(Clone, Debug)]
pub struct Admission {
    service_account: Arc<AtomicBool>,
}

impl Default for Admission {
    /// Every plugin on, as in a default kube-apiserver.
    fn default() -> Self {
        Admission {
            service_account: Arc::new(AtomicBool::new(true)),
        }
    }
}

/// Outcome of the ServiceAccount lookup.
enum Lookup {
    Found(Value),
    Missing,
    /// The namespace is missing or terminating: the namespace check that follows
    /// admission answers (upstream's NamespaceLifecycle plugin runs first).
    NamespaceUnusable,
}

impl Registry {
    /// Turn the `ServiceAccount` admission plugin on or off (upstream
    /// `--disable-admission-plugins=ServiceAccount`, which integration tests without a
    /// serviceaccount controller use).
    pub fn set_service_account_admission(&self, enabled: bool) {
        self.admission
            .service_account
            .store(enabled, Ordering::Relaxed);
    }

    /// Mutating admission of a create into `namespace`; may change `obj` or refuse it.
    pub(super) async fn admit_create(
        &self,
        info: &'static ResourceInfo,
        namespace: Option<&str>,
        obj: &mut Value,
    ) -> ApiResult<()> {
        let is_pod = info.group.is_empty() && info.plural == "pods";
        if is_pod
            && self.admission.service_account.load(Ordering::Relaxed)
            && let Some(ns) = namespace
        {
            self.admit_pod_service_account(ns, obj).await?;
        }
        if info.group.is_empty() && info.plural == "persistentvolumeclaims" {
            self.admit_default_storage_class(obj).await?;
            add_finalizer(obj, "kubernetes.io/pvc-protection");
        }
        if info.group.is_empty() && info.plural == "persistentvolumes" {
            add_finalizer(obj, "kubernetes.io/pv-protection");
        }
        if info.group == "networking.k8s.io" && info.plural == "ingresses" {
            self.admit_default_ingress_class(obj).await?;
        }
        Ok(())
    }

    /// Upstream's `DefaultIngressClass`: an Ingress naming no class (neither
    /// `spec.ingressClassName` nor the legacy `kubernetes.io/ingress.class` annotation)
    /// gets the default IngressClass, the newest if several are marked (then the first
    /// by name).
    async fn admit_default_ingress_class(&self, ing: &mut Value) -> ApiResult<()> {
        let named = ing
            .pointer("/spec/ingressClassName")
            .is_some_and(|c| !c.is_null())
            || ing
                .pointer("/metadata/annotations/kubernetes.io~1ingress.class")
                .is_some();
        if named || !ing.is_object() {
            return Ok(());
        }
        let Some(classes) = catalog::find("networking.k8s.io", "v1", "ingressclasses") else {
            return Ok(());
        };
        let page = self
            .list(classes, None, &super::ListParams::default())
            .await?;
        let default = newest_default(page.items.iter().filter(|c| {
            c.pointer("/metadata/annotations/ingressclass.kubernetes.io~1is-default-class")
                .and_then(Value::as_str)
                == Some("true")
        }));
        let Some(class) = default else {
            return Ok(());
        };
        let name = json!(meta::name(class));
        if let Some(map) = ing.as_object_mut() {
            let spec = map.entry("spec").or_insert_with(|| json!({}));
            if spec.is_null() {
                *spec = json!({});
            }
            if let Some(spec) = spec.as_object_mut() {
                spec.insert("ingressClassName".into(), name);
            }
        }
        Ok(())
    }

    /// Upstream's `DefaultStorageClass`: a claim that names no class (the field absent,
    /// not `""`) gets the default StorageClass, the newest if several are marked (the
    /// first by name among equally new ones).
    async fn admit_default_storage_class(&self, pvc: &mut Value) -> ApiResult<()> {
        let spec = pvc.get("spec");
        let named = spec
            .and_then(|s| s.get("storageClassName"))
            .is_some_and(|c| !c.is_null())
            || pvc
                .pointer("/metadata/annotations/volume.beta.kubernetes.io~1storage-class")
                .is_some();
        if named || !spec.is_some_and(Value::is_object) {
            return Ok(());
        }
        let Some(classes) = catalog::find("storage.k8s.io", "v1", "storageclasses") else {
            return Ok(());
        };
        let page = self
            .list(classes, None, &super::ListParams::default())
            .await?;
        let is_default = |c: &&Value| {
            [
                "storageclass.kubernetes.io~1is-default-class",
                "storageclass.beta.kubernetes.io~1is-default-class",
            ]
            .iter()
            .any(|a| {
                c.pointer(&format!("/metadata/annotations/{a}"))
                    .and_then(Value::as_str)
                    .is_some_and(|v| v.eq_ignore_ascii_case("true"))
            })
        };
        let newest = newest_default(page.items.iter().filter(is_default));
        if let (Some(class), Some(spec)) =
            (newest, pvc.get_mut("spec").and_then(Value::as_object_mut))
        {
            spec.insert("storageClassName".into(), json!(meta::name(class)));
        }
        Ok(())
    }

    /// Upstream's `LimitRanger` for a pod create into `ns`: defaults from the namespace's
    /// LimitRanges, then their bounds (403 naming every violation).
    pub(super) async fn admit_limit_ranges(
        &self,
        info: &'static ResourceInfo,
        ns: Option<&str>,
        obj: &mut Value,
    ) -> ApiResult<()> {
        let (true, Some(ns)) = (info.group.is_empty() && info.plural == "pods", ns) else {
            return Ok(());
        };
        let limit_ranges = self.namespace_objects(&self.limit_ranges, ns).await?;
        if limit_ranges.is_empty() {
            return Ok(());
        }
        if let Some(note) = limit_ranger::apply_defaults(obj, &limit_ranges) {
            let m = meta::metadata_mut(obj);
            let annotations = m.entry("annotations").or_insert_with(|| json!({}));
            if let Some(a) = annotations.as_object_mut() {
                a.insert(limit_ranger::ANNOTATION.into(), json!(note));
            }
        }
        let errors = limit_ranger::violations(obj, &limit_ranges);
        match errors.as_slice() {
            [] => Ok(()),
            [one] => Err(forbidden(&forbidden_name(obj), one)),
            many => Err(forbidden(
                &forbidden_name(obj),
                format!("[{}]", many.join(", ")),
            )),
        }
    }

    /// Upstream's `ResourceQuota` plugin for a create of `obj` into `ns`: each quota
    /// that limits a resource the object uses must have room for it (403 otherwise) and
    /// is charged before the object is stored. Pods must also state the cpu/memory
    /// requests and limits a quota limits.
    ///
    /// An update (`old` is the stored object) is charged only where upstream's evaluators
    /// charge one — a Service's type or ports, a claim's size — and only for what grew.
    pub(super) async fn admit_quota(
        &self,
        info: &'static ResourceInfo,
        ns: Option<&str>,
        obj: &Value,
        old: Option<&Value>,
        dry_run: bool,
    ) -> ApiResult<()> {
        let Some(ns) = ns else { return Ok(()) };
        if old.is_some() && !quota::charges_updates(info.group, info.plural) {
            return Ok(());
        }
        // Most namespaces have no quota: find that out before computing any usage.
        let quotas = self.namespace_objects(&self.quotas, ns).await?;
        let matching: Vec<&Value> = quotas
            .iter()
            .filter(|q| quota::matches(q, info.group, info.plural, obj))
            .collect();
        if matching.is_empty() {
            return Ok(());
        }
        let usage = quota::usage(info.group, info.plural, obj);
        let delta = match old {
            None => usage,
            Some(old) => quota::growth(&usage, &quota::usage(info.group, info.plural, old)),
        };
        if delta.is_empty() {
            return Ok(());
        }
        let refuse =
            |reason: String| forbidden_in(info.group, info.plural, &forbidden_name(obj), reason);
        if old.is_none() && info.group.is_empty() && info.plural == "pods" {
            for q in &matching {
                quota::pod_constraints(&quota::hard(q), obj)
                    .map_err(|e| refuse(format!("failed quota: {}: {e}", meta::name(q))))?;
            }
        }
        let rq_info = self.quotas.info();
        for q in matching {
            let name = meta::name(q).to_string();
            // Usage the controller has not recorded yet is counted now, once.
            let live = if resource_quota::unrecorded(q, &delta) {
                Some(self.count_usage(ns, q).await?)
            } else {
                None
            };
            let opts = super::WriteOptions { dry_run };
            self.update_with(rq_info, Some(ns), &name, Some("status"), &opts, |current| {
                let mut used = live.clone().unwrap_or_default();
                used.extend(resource_quota::recorded(current));
                let mut next = current.clone();
                // Unpinned, so a concurrent charge makes update_with retry on the fresh
                // quota instead of failing.
                meta::metadata_mut(&mut next).remove("resourceVersion");
                match resource_quota::charge(current, &delta, &used) {
                    Ok(Some(status)) => next["status"] = status,
                    Ok(None) => {}
                    Err(reason) => return Err(refuse(reason)),
                }
                Ok(next)
            })
            .await
            .map(drop)
            .or_else(|e| match e.code {
                // Deleted meanwhile: it limits nothing any more.
                StatusCode::NOT_FOUND => Ok(()),
                _ => Err(e),
            })?;
        }
        Ok(())
    }

    /// A quota's usage counted from the objects stored in `ns`.
    async fn count_usage(&self, ns: &str, q: &Value) -> ApiResult<quota::ResourceList> {
        let hard = quota::hard(q);
        let mut objects = Vec::new();
        for (group, plural) in quota::counted_kinds(hard.keys()) {
            let Some(info) = catalog::find_resource(&group, &plural).filter(|r| r.namespaced)
            else {
                continue;
            };
            let page = self
                .list(info, Some(ns), &super::ListParams::default())
                .await?;
            objects.extend(page.items.into_iter().map(|o| (info, o)));
        }
        Ok(quota::recount(
            q,
            objects.iter().map(|(i, o)| (i.group, i.plural, o)),
        ))
    }

    /// The objects of a cached kind in `ns`: from the cache when it is current, else
    /// listed from the store.
    async fn namespace_objects(
        &self,
        cache: &Arc<super::watched::KindCache>,
        ns: &str,
    ) -> ApiResult<Vec<Value>> {
        if let Some(objects) = cache.in_namespace(&self.store, ns) {
            return Ok(objects);
        }
        let page = self
            .list(cache.info(), Some(ns), &super::ListParams::default())
            .await?;
        Ok(page.items)
    }

    /// Upstream's `ServiceAccount` plugin (Admit then Validate) for a pod create.
    async fn admit_pod_service_account(&self, ns: &str, pod: &mut Value) -> ApiResult<()> {
        let pod_name = forbidden_name(pod);
        if sa::is_mirror_pod(pod) {
            return sa::validate_mirror_pod(pod).map_err(|m| forbidden(&pod_name, m));
        }
        let Some(map) = pod.as_object_mut() else {
            return Ok(());
        };
        let spec = map.entry("spec").or_insert_with(|| json!({}));
        if !spec.is_object() {
            // Validation reports the malformed spec.
            return Ok(());
        }
        let mut sa_name = sa::service_account_name(pod);
        if sa_name.is_empty() {
            sa_name = sa::DEFAULT_SERVICE_ACCOUNT.to_string();
        }
        if let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) {
            spec.insert("serviceAccountName".into(), json!(sa_name));
        }
        let account = match self.lookup_service_account(ns, &sa_name).await {
            Ok(Lookup::Found(a)) => a,
            Ok(Lookup::NamespaceUnusable) => return Ok(()),
            Ok(Lookup::Missing) => {
                return Err(forbidden(
                    &pod_name,
                    format!(
                        "error looking up service account {ns}/{sa_name}: serviceaccount \"{sa_name}\" not found"
                    ),
                ));
            }
            Err(e) => {
                return Err(forbidden(
                    &pod_name,
                    format!(
                        "error looking up service account {ns}/{sa_name}: {}",
                        e.message
                    ),
                ));
            }
        };
        let automount = sa::should_automount(pod, &account);
        if let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) {
            if automount {
                sa::mount_token(spec, || meta::generate_name(sa::VOLUME_NAME_PREFIX));
            }
            sa::inherit_image_pull_secrets(spec, &account);
        }
        if sa::enforces_mountable_secrets(&account) {
            sa::limit_secret_references(&account, pod).map_err(|m| forbidden(&pod_name, m))?;
        }
        Ok(())
    }

    /// Read the ServiceAccount; the `default` one is retried for up to ~2 s.
    async fn lookup_service_account(&self, ns: &str, name: &str) -> ApiResult<Lookup> {
        let info = catalog::find("", "v1", "serviceaccounts")
            .ok_or_else(|| ApiError::internal("serviceaccounts missing from the catalog"))?;
        let attempts = if name == sa::DEFAULT_SERVICE_ACCOUNT {
            DEFAULT_SA_ATTEMPTS
        } else {
            1
        };
        let interval = Duration::from_millis(rand::random_range(100..200));
        for attempt in 0..attempts {
            if attempt > 0 {
                tokio::time::sleep(interval).await;
            }
            match self.get(info, Some(ns), name).await {
                Ok(account) => return Ok(Lookup::Found(account)),
                Err(e) if e.code != axum::http::StatusCode::NOT_FOUND => return Err(e),
                Err(_) if attempt == 0 && !self.namespace_usable(ns).await? => {
                    return Ok(Lookup::NamespaceUnusable);
                }
                Err(_) => {}
            }
        }
        Ok(Lookup::Missing)
    }

    /// The namespace exists and is not terminating.
    async fn namespace_usable(&self, ns: &str) -> ApiResult<bool> {
        let info = catalog::find("", "v1", "namespaces")
            .ok_or_else(|| ApiError::internal("namespaces missing from the catalog"))?;
        match self.get(info, None, ns).await {
            Ok(namespace) => Ok(!meta::is_deleting(&namespace)),
            Err(e) if e.code == axum::http::StatusCode::NOT_FOUND => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// The name upstream's Forbidden error uses before the name is generated.
/// Of several classes marked default, the one upstream picks: the newest, and the first
/// by name among equally new ones.
fn newest_default<'a>(marked: impl Iterator<Item = &'a Value>) -> Option<&'a Value> {
    marked.max_by(|a, b| {
        let created = |c: &Value| meta::meta_str(c, "creationTimestamp").to_string();
        created(a)
            .cmp(&created(b))
            .then_with(|| meta::name(b).cmp(meta::name(a)))
    })
}

/// Upstream's `StorageObjectInUseProtection`: claims and volumes are created with a
/// finalizer the protection controller removes once they are no longer in use.
fn add_finalizer(obj: &mut Value, finalizer: &str) {
    let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let list = meta.entry("finalizers").or_insert_with(|| json!([]));
    if let Some(list) = list.as_array_mut()
        && !list.iter().any(|f| f == finalizer)
    {
        list.push(json!(finalizer));
    }
}

fn forbidden_name(pod: &Value) -> String {
    ["name", "generateName"]
        .iter()
        .map(|f| meta::meta_str(pod, f))
        .find(|s| !s.is_empty())
        .unwrap_or("Unknown")
        .to_string()
}

/// 403 `pods "x" is forbidden: <reason>` with upstream's details.
fn forbidden(name: &str, reason: impl std::fmt::Display) -> ApiError {
    forbidden_in("", "pods", name, reason)
}

/// 403 `<resource>[.<group>] "x" is forbidden: <reason>` for any kind.
fn forbidden_in(group: &str, plural: &str, name: &str, reason: impl std::fmt::Display) -> ApiError {
    let resource = if group.is_empty() {
        plural.to_string()
    } else {
        format!("{plural}.{group}")
    };
    let mut e = ApiError::forbidden(format!("{resource} \"{name}\" is forbidden: {reason}"));
    let mut details = json!({"name": name, "kind": plural});
    if !group.is_empty() {
        details["group"] = json!(group);
    }
    e.details = Some(details);
    e
}
