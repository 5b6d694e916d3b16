//! The resource quota controller (upstream kube-controller-manager's `resourcequota`):
//! keeps every ResourceQuota's `status.hard` (= `spec.hard`) and `status.used` current.
//! The ResourceQuota admission plugin only charges creates; this controller recounts
//! what the namespace really holds, so usage is given back when objects go away and
//! drift (failed creates, direct status edits) is corrected.
//!
//! The work queue is keyed by namespace. A namespace is synced when one of its quotas
//! appears or its limits change, when a pod, service or claim in it is deleted or
//! updated in a way a quota can see (usage or pod scope fields; only in namespaces that
//! have quotas), and every resync period (for the `count/<resource>` kinds, which are
//! not watched). Creates are not synced on: admission charged them already, and a recount
//! racing a create would undo its charge. A sync lists each kind its
//! quotas count once through the API server and recounts every quota with
//! [`r8s_api::quota`], the rules admission charges with; a changed status is written with
//! the quota's resourceVersion, so a conflict just retries against fresh state.

use crate::Context;
use crate::util::error::{Error, Result, is_conflict};
use crate::util::{Informer, InformerEvent, Registration, WorkQueue, run_workers};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, ResourceQuota, Service};
use kube::api::{ListParams, PostParams};
use kube::core::{ApiResource, DynamicObject};
use kube::{Api, Resource};
use r8s_api::catalog;
use r8s_api::quota::{self, Amount, ResourceList};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use std::collections::{BTreeSet, HashMap};
use std::fmt::Debug;
use std::time::Duration;

/// Namespaces synced at once (upstream `--concurrent-resource-quota-syncs`).
const WORKERS: usize = 5;

/// Settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// How often every namespace with quotas is recounted (upstream
    /// `--resource-quota-sync-period` is 5 m; shorter here since unwatched kinds such as
    /// ConfigMaps are only noticed then).
    pub resync_period: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            resync_period: Duration::from_secs(15),
        }
    }
}

/// Run with the default [`Config`].
pub async fn run(ctx: Context) -> anyhow::Result<()> {
    run_with(ctx, Config::default()).await
}

/// Run the controller until a fatal error.
pub async fn run_with(ctx: Context, cfg: Config) -> anyhow::Result<()> {
    let queue: WorkQueue<String> = WorkQueue::new();
    let quotas = ctx.informers.get::<ResourceQuota>();
    let pods = ctx.informers.get::<Pod>();
    let services = ctx.informers.get::<Service>();
    let claims = ctx.informers.get::<PersistentVolumeClaim>();
    // The handlers stay registered while this future lives.
    let q = queue.clone();
    // A quota is recounted when it appears or its limits change; not when only its usage
    // moved: the admission plugin charged a create then, and a recount from a list taken
    // before that create is stored would undo the charge (as upstream, the periodic
    // resync repairs edited usage).
    let _quota_events = quotas.add_handler(move |ev| {
        let InformerEvent::Apply { new, old } = &ev else {
            return;
        };
        let limits_changed = old.as_ref().is_none_or(|old| {
            old.spec.as_ref().map(|s| &s.hard) != new.spec.as_ref().map(|s| &s.hard)
        });
        let unsynced = new.status.as_ref().and_then(|s| s.hard.as_ref())
            != new.spec.as_ref().and_then(|s| s.hard.as_ref());
        if (limits_changed || unsynced)
            && let Some(ns) = &new.metadata.namespace
        {
            q.add(ns.clone());
        }
    });
    let _pod_events = enqueue_on_usage(&pods, "pods", &queue, &quotas);
    let _service_events = enqueue_on_usage(&services, "services", &queue, &quotas);
    let _claim_events = enqueue_on_usage(&claims, "persistentvolumeclaims", &queue, &quotas);
    quotas.wait_synced().await;
    pods.wait_synced().await;
    services.wait_synced().await;
    claims.wait_synced().await;
    let client = ctx.client.clone();
    let cache = quotas.clone();
    let workers = run_workers(queue.clone(), WORKERS, move |ns: String| {
        let client = client.clone();
        let quotas = cache.clone();
        async move { sync_namespace(&client, &quotas, &ns).await }
    });
    tokio::select! {
        () = workers => {}
        () = resync(&queue, &quotas, cfg.resync_period) => {}
    }
    Ok(())
}

/// Queue every namespace that has quotas, every `period`.
async fn resync(queue: &WorkQueue<String>, quotas: &Informer<ResourceQuota>, period: Duration) {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let namespaces: BTreeSet<String> = quotas
            .store()
            .state()
            .iter()
            .filter_map(|q| q.metadata.namespace.clone())
            .collect();
        for ns in namespaces {
            queue.add(ns);
        }
    }
}

/// Queue the namespace of each `plural` object (core group) that is added, deleted or
/// changed in a way quotas see, if the namespace has quotas (upstream's replenishment
/// update filter).
fn enqueue_on_usage<K>(
    informer: &Informer<K>,
    plural: &'static str,
    queue: &WorkQueue<String>,
    quotas: &Informer<ResourceQuota>,
) -> Registration
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + Debug + Send + Sync,
{
    let (queue, quotas) = (queue.clone(), quotas.clone());
    informer.add_handler(move |ev| {
        // Creates were charged by the admission plugin; updates that change what a quota
        // counts (a pod finishing, a claim resized) and deletes give usage back.
        let (obj, old) = match &ev {
            InformerEvent::Apply {
                new,
                old: Some(old),
            } => (new, Some(old)),
            InformerEvent::Apply { old: None, .. } => return,
            InformerEvent::Delete(o) => (o, None),
        };
        let Some(ns) = obj.meta().namespace.as_deref() else {
            return;
        };
        let has_quota = quotas
            .store()
            .find(|q| q.metadata.namespace.as_deref() == Some(ns))
            .is_some();
        if !has_quota {
            return;
        }
        if let Some(old) = old
            && !changed(plural, &**old, &**obj)
        {
            return;
        }
        queue.add(ns.to_string());
    })
}

/// [`quota_relevant_change`] of typed objects; one that does not serialise (never
/// expected) counts as changed.
fn changed<K: Serialize>(plural: &str, old: &K, new: &K) -> bool {
    match (serde_json::to_value(old), serde_json::to_value(new)) {
        (Ok(o), Ok(n)) => quota_relevant_change(plural, &o, &n),
        _ => true,
    }
}

/// Whether an update of a core `plural` object can change what a quota counts: its usage
/// (phase, requests, service type, claim size…) or, for pods, a scope field.
fn quota_relevant_change(plural: &str, old: &Value, new: &Value) -> bool {
    const POD_SCOPE_FIELDS: [&str; 2] = ["/spec/activeDeadlineSeconds", "/spec/priorityClassName"];
    quota::usage("", plural, old) != quota::usage("", plural, new)
        || (plural == "pods"
            && POD_SCOPE_FIELDS
                .iter()
                .any(|p| old.pointer(p) != new.pointer(p)))
}

/// Recount every quota of `ns` and write the statuses that changed.
async fn sync_namespace(
    client: &kube::Client,
    quotas: &Informer<ResourceQuota>,
    ns: &str,
) -> Result<Option<Duration>> {
    let in_ns = quotas
        .store()
        .state_filter(|q| q.metadata.namespace.as_deref() == Some(ns));
    tracing::debug!(
        namespace = ns,
        quotas = in_ns.len(),
        "syncing resource quotas"
    );
    // Each kind is listed once per sync, whichever quotas count it.
    let mut listed: HashMap<(String, String), Vec<Value>> = HashMap::new();
    let mut errs = Vec::new();
    for rq in in_ns {
        let name = rq.metadata.name.clone().unwrap_or_default();
        let quota_json = match serde_json::to_value(&*rq) {
            Ok(v) => v,
            Err(e) => {
                errs.push(Error::Invalid(format!("quota {ns}/{name}: {e}")));
                continue;
            }
        };
        let kinds = quota::counted_kinds(quota::hard(&quota_json).keys());
        for kind in &kinds {
            if listed.contains_key(kind) {
                continue;
            }
            let objects = match list_kind(client, ns, &kind.0, &kind.1).await {
                Ok(objects) => objects,
                Err(e) if is_gone(&e) => {
                    tracing::debug!(namespace = ns, "namespace gone while listing: {e}");
                    return Ok(None);
                }
                Err(e) => {
                    let e = Error::api(format!("listing {} in {ns}", kind.1), e);
                    tracing::warn!("resource quota sync: {e}");
                    return Err(e);
                }
            };
            listed.insert(kind.clone(), objects);
        }
        let objects = kinds.iter().flat_map(|kind| {
            listed
                .get(kind)
                .into_iter()
                .flatten()
                .map(|o| (kind.0.as_str(), kind.1.as_str(), o))
        });
        let used = quota::recount(&quota_json, objects);
        let status = desired_status(&quota_json, &used);
        if !needs_update(&quota_json, &status) {
            continue;
        }
        let mut updated = (*rq).clone();
        updated.status = match serde_json::from_value(status) {
            Ok(s) => Some(s),
            Err(e) => {
                errs.push(Error::Invalid(format!("status of {ns}/{name}: {e}")));
                continue;
            }
        };
        // Carries the cached resourceVersion: a stale cache gets a 409 and a retry.
        let api: Api<ResourceQuota> = Api::namespaced(client.clone(), ns);
        match api
            .replace_status(&name, &PostParams::default(), &updated)
            .await
        {
            Ok(_) => tracing::debug!(namespace = ns, quota = name, "updated quota usage"),
            Err(e) if is_gone(&e) => {}
            Err(e) => {
                let conflict = is_conflict(&e);
                let e = Error::api(format!("updating status of quota {ns}/{name}"), e);
                if conflict {
                    // The cache was stale: the retry reads the newer quota.
                    tracing::debug!("{e}; retrying");
                } else {
                    tracing::warn!("resource quota sync: {e}");
                }
                errs.push(e);
            }
        }
    }
    Error::aggregate(errs).map(|()| None)
}

/// The quota (or its namespace) went away, or the namespace is being torn down.
fn is_gone(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404 || s.code == 403)
}

/// Every object of `group`/`plural` in `ns`, as JSON; none for kinds r8s does not serve.
async fn list_kind(
    client: &kube::Client,
    ns: &str,
    group: &str,
    plural: &str,
) -> Result<Vec<Value>, kube::Error> {
    let Some(ar) = api_resource(group, plural) else {
        return Ok(Vec::new());
    };
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
    let list = api.list(&ListParams::default()).await?;
    list.items
        .iter()
        .map(|o| serde_json::to_value(o).map_err(kube::Error::SerdeError))
        .collect()
}

/// How to list `group`/`plural`: the first catalog entry serving it. `None` when r8s does
/// not serve it or it is cluster-scoped (no namespace holds any).
fn api_resource(group: &str, plural: &str) -> Option<ApiResource> {
    let r = catalog::find_resource(group, plural).filter(|r| r.namespaced)?;
    Some(ApiResource {
        group: r.group.to_string(),
        version: r.version.to_string(),
        api_version: r.api_version(),
        kind: r.kind.to_string(),
        plural: r.plural.to_string(),
    })
}

/// The status a quota should have: `hard` as its `spec.hard` says, `used` as counted.
fn desired_status(quota_json: &Value, used: &ResourceList) -> Value {
    let hard = quota_json
        .pointer("/spec/hard")
        .cloned()
        .unwrap_or_else(|| Value::Object(Map::new()));
    json!({"hard": hard, "used": quota::to_json(used)})
}

/// Whether the quota's status differs from `desired` (amounts compared by value, so
/// `1000m` and `1` are the same).
fn needs_update(quota_json: &Value, desired: &Value) -> bool {
    ["hard", "used"].iter().any(|field| {
        !same_amounts(
            quota_json.pointer(&format!("/status/{field}")),
            desired.get(*field),
        )
    })
}

/// Two resource lists with the same names and amounts (missing = empty; an amount that
/// does not parse equals only the identical text).
fn same_amounts(a: Option<&Value>, b: Option<&Value>) -> bool {
    let empty = Map::new();
    let a = a.and_then(Value::as_object).unwrap_or(&empty);
    let b = b.and_then(Value::as_object).unwrap_or(&empty);
    if a == b {
        return true;
    }
    a.len() == b.len()
        && a.iter().all(|(k, v)| {
            let Some(w) = b.get(k) else {
                return false;
            };
            match (Amount::from_value(v), Amount::from_value(w)) {
                (Some(x), Some(y)) => x.milli == y.milli,
                _ => v == w,
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rq(spec_hard: Value, status: Value) -> Value {
        json!({"metadata": {"name": "q", "namespace": "ns"}, "spec": {"hard": spec_hard}, "status": status})
    }

    #[test]
    fn api_resources_come_from_the_catalog() {
        let pods = api_resource("", "pods").expect("pods");
        assert_eq!(
            (pods.api_version.as_str(), pods.kind.as_str()),
            ("v1", "Pod")
        );
        let deploys = api_resource("apps", "deployments").expect("deployments");
        assert_eq!(
            (
                deploys.group.as_str(),
                deploys.api_version.as_str(),
                deploys.plural.as_str()
            ),
            ("apps", "apps/v1", "deployments")
        );
        assert_eq!(deploys.kind, "Deployment");
        // Unknown kinds and cluster-scoped ones are not listed.
        assert!(api_resource("example.com", "widgets").is_none());
        assert!(api_resource("", "nodes").is_none());
        assert!(api_resource("apps", "pods").is_none());
    }

    #[test]
    fn desired_status_copies_hard_and_prints_used() {
        let q = rq(json!({"pods": "2", "requests.memory": "1Gi"}), Value::Null);
        let used = ResourceList::from([
            ("pods".to_string(), Amount::count(1)),
            (
                "requests.memory".to_string(),
                Amount::from_value(&json!("256Mi")).expect("amount"),
            ),
        ]);
        assert_eq!(
            desired_status(&q, &used),
            json!({"hard": {"pods": "2", "requests.memory": "1Gi"},
                   "used": {"pods": "1", "requests.memory": "256Mi"}})
        );
        let no_hard = json!({"metadata": {"name": "q"}, "spec": {}});
        assert_eq!(
            desired_status(&no_hard, &ResourceList::new()),
            json!({"hard": {}, "used": {}})
        );
    }

    #[test]
    fn status_update_only_when_amounts_differ() {
        let desired =
            json!({"hard": {"cpu": "1", "pods": "2"}, "used": {"cpu": "500m", "pods": "1"}});
        // Never written.
        assert!(needs_update(
            &rq(json!({"cpu": "1", "pods": "2"}), Value::Null),
            &desired
        ));
        // The same amounts in other spellings.
        let same = rq(
            json!({"cpu": "1", "pods": "2"}),
            json!({"hard": {"cpu": "1000m", "pods": "2"}, "used": {"cpu": "0.5", "pods": 1}}),
        );
        assert!(!needs_update(&same, &desired));
        // A different amount, a missing and an extra resource.
        for status in [
            json!({"hard": {"cpu": "1", "pods": "2"}, "used": {"cpu": "500m", "pods": "2"}}),
            json!({"hard": {"cpu": "1", "pods": "2"}, "used": {"cpu": "500m"}}),
            json!({"hard": {"cpu": "1", "pods": "2"}, "used": {"cpu": "500m", "pods": "1", "memory": "0"}}),
            json!({"hard": {"cpu": "1"}, "used": {"cpu": "500m", "pods": "1"}}),
        ] {
            assert!(
                needs_update(&rq(json!({}), status.clone()), &desired),
                "{status}"
            );
        }
        // Nothing limited, nothing recorded: up to date.
        assert!(!needs_update(
            &rq(json!({}), Value::Null),
            &json!({"hard": {}, "used": {}})
        ));
    }

    #[test]
    fn unparsable_amounts_compare_as_text() {
        assert!(same_amounts(
            Some(&json!({"x": "bad"})),
            Some(&json!({"x": "bad"}))
        ));
        assert!(!same_amounts(
            Some(&json!({"x": "bad"})),
            Some(&json!({"x": "0"}))
        ));
        assert!(same_amounts(None, Some(&json!({}))));
    }

    #[test]
    fn only_usage_changes_of_watched_objects_enqueue() {
        let pod = |phase: &str, mem: &str| {
            json!({"spec": {"containers": [{"name": "c", "resources": {"requests": {"memory": mem}}}]},
                   "status": {"phase": phase}})
        };
        // Running with the same requests: a status-only change.
        assert!(!quota_relevant_change(
            "pods",
            &pod("Pending", "1Gi"),
            &pod("Running", "1Gi")
        ));
        // Finishing frees the pod's usage; a resize changes it.
        assert!(quota_relevant_change(
            "pods",
            &pod("Running", "1Gi"),
            &pod("Succeeded", "1Gi")
        ));
        assert!(quota_relevant_change(
            "pods",
            &pod("Running", "1Gi"),
            &pod("Running", "2Gi")
        ));
        // A deadline moves the pod into the Terminating scope.
        let mut deadline = pod("Running", "1Gi");
        deadline["spec"]["activeDeadlineSeconds"] = json!(30);
        assert!(quota_relevant_change(
            "pods",
            &pod("Running", "1Gi"),
            &deadline
        ));
        // Services: the type matters, labels do not.
        let svc = |kind: &str| json!({"metadata": {"labels": {"a": kind}}, "spec": {"type": kind, "ports": [{"port": 80}]}});
        assert!(quota_relevant_change(
            "services",
            &svc("ClusterIP"),
            &svc("NodePort")
        ));
        let mut relabelled = svc("ClusterIP");
        relabelled["metadata"]["labels"]["a"] = json!("b");
        assert!(!quota_relevant_change(
            "services",
            &svc("ClusterIP"),
            &relabelled
        ));
        // Claims: the requested size.
        let pvc = |size: &str| json!({"spec": {"resources": {"requests": {"storage": size}}}});
        assert!(quota_relevant_change(
            "persistentvolumeclaims",
            &pvc("1Gi"),
            &pvc("2Gi")
        ));
        assert!(!quota_relevant_change(
            "persistentvolumeclaims",
            &pvc("1Gi"),
            &pvc("1Gi")
        ));
    }
}
