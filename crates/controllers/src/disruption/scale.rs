//! How many pods a budget expects when it counts by the pods' controllers (upstream's
//! `getExpectedScale` and its controller finders): each matching pod's controller
//! reference leads to a ReplicaSet's Deployment, a ReplicaSet without one, or a
//! StatefulSet from the caches, else to any kind's `scale` subresource; the sum of their
//! distinct scales is the expected count. (r8s serves no ReplicationControllers, so
//! upstream's first finder has nothing to find; a reference to one fails as an unknown
//! kind.)

use crate::podautoscaler::target::parse_group_version;
use crate::util::podutil::controller_of;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::DynamicObject;
use kube::core::GroupVersionKind;
use kube::discovery::{ApiCapabilities, ApiResource};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Resource, ResourceExt};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A controller found for a pod: its UID and desired replicas.
pub type Found = (String, i32);

/// Discovery answers by (group, version, kind).
type Discovered = HashMap<(String, String, String), (ApiResource, ApiCapabilities)>;

/// The caches and client the finders read.
pub struct Finders {
    pub client: kube::Client,
    pub replica_sets: Store<ReplicaSet>,
    pub deployments: Store<Deployment>,
    pub stateful_sets: Store<StatefulSet>,
    discovered: Mutex<Discovered>,
}

/// Whether `r` points at `kind` in one of `groups` (upstream `verifyGroupKind`).
fn is_kind(r: &OwnerReference, kind: &str, groups: &[&str]) -> Result<bool, String> {
    let (group, _) = parse_group_version(&r.api_version)?;
    Ok(r.kind == kind && groups.contains(&group.as_str()))
}

/// A cached object of `store` by namespace and name, if it is the one `r` names (UID).
fn cached<K>(store: &Store<K>, ns: &str, name: &str, uid: &str) -> Option<Arc<K>>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    store
        .get(&ObjectRef::new(name).within(ns))
        .filter(|o| o.meta().uid.as_deref() == Some(uid))
}

impl Finders {
    pub fn new(
        client: kube::Client,
        replica_sets: Store<ReplicaSet>,
        deployments: Store<Deployment>,
        stateful_sets: Store<StatefulSet>,
    ) -> Self {
        Finders {
            client,
            replica_sets,
            deployments,
            stateful_sets,
            discovered: Mutex::default(),
        }
    }

    /// The controller `r` (the controller reference of a pod in `ns`) counts as, from the
    /// caches, in upstream's order: the Deployment of a ReplicaSet, a ReplicaSet no
    /// Deployment controls, StatefulSet.
    pub fn from_caches(&self, r: &OwnerReference, ns: &str) -> Result<Option<Found>, String> {
        if is_kind(r, "ReplicaSet", &["apps", "extensions"])? {
            let Some(rs) = cached(&self.replica_sets, ns, &r.name, &r.uid) else {
                return Ok(None);
            };
            if let Some(owner) = controller_of(&rs.metadata) {
                // A Deployment's ReplicaSets count as their Deployment (once for all of
                // them); a ReplicaSet controlled by anything else is left to the scale
                // subresource, as upstream.
                if !is_kind(owner, "Deployment", &["apps", "extensions"])? {
                    return Ok(None);
                }
                return Ok(
                    cached(&self.deployments, ns, &owner.name, &owner.uid).map(|d| {
                        (
                            owner.uid.clone(),
                            d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
                        )
                    }),
                );
            }
            return Ok(Some((
                r.uid.clone(),
                rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
            )));
        }
        if is_kind(r, "StatefulSet", &["apps"])? {
            return Ok(cached(&self.stateful_sets, ns, &r.name, &r.uid).map(|s| {
                (
                    r.uid.clone(),
                    s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
                )
            }));
        }
        Ok(None)
    }

    /// The controller from its `scale` subresource (any kind that has one); `None` if it
    /// is gone or another object of that name; an error if the kind is unknown or has no
    /// scale subresource.
    pub async fn from_scale(&self, r: &OwnerReference, ns: &str) -> Result<Option<Found>, String> {
        let (ar, caps) = self.resolve(r).await?;
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), ns, &ar);
        match api.get_scale(&r.name).await {
            Ok(scale) if scale.metadata.uid.as_deref() == Some(r.uid.as_str()) => Ok(Some((
                r.uid.clone(),
                scale.spec.and_then(|s| s.replicas).unwrap_or(0),
            ))),
            Ok(_) => Ok(None),
            Err(e) if crate::util::is_not_found(&e) => {
                if caps
                    .subresources
                    .iter()
                    .any(|(sub, _)| sub.plural == "scale")
                {
                    Ok(None)
                } else {
                    let gr = if ar.group.is_empty() {
                        ar.plural.clone()
                    } else {
                        format!("{}.{}", ar.plural, ar.group)
                    };
                    Err(format!("{gr} does not implement the scale subresource"))
                }
            }
            Err(e) => Err(e.to_string()),
        }
    }

    async fn resolve(&self, r: &OwnerReference) -> Result<(ApiResource, ApiCapabilities), String> {
        let (group, version) = parse_group_version(&r.api_version)?;
        let key = (group.clone(), version.clone(), r.kind.clone());
        if let Some(found) = self.lock().get(&key) {
            return Ok(found.clone());
        }
        let gvk = GroupVersionKind::gvk(&group, &version, &r.kind);
        let found = kube::discovery::pinned_kind(&self.client, &gvk)
            .await
            .map_err(|_| {
                format!(
                    "no matches for kind {:?} in version {:?}",
                    r.kind, r.api_version
                )
            })?;
        self.lock().insert(key, found.clone());
        Ok(found)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Discovered> {
        self.discovered.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The summed scale of the controllers of `pods` and the names of pods without a
    /// controller; an error if a controlled pod's controller cannot be found.
    pub async fn expected_scale(&self, pods: &[Arc<Pod>]) -> Result<(i32, Vec<String>), String> {
        let mut scales: HashMap<String, i32> = HashMap::new();
        let mut unmanaged = Vec::new();
        for pod in pods {
            let Some(r) = controller_of(&pod.metadata) else {
                unmanaged.push(pod.name_any());
                continue;
            };
            if scales.contains_key(&r.uid) {
                continue;
            }
            let ns = pod.namespace().unwrap_or_default();
            let found = match self.from_caches(r, &ns)? {
                Some(found) => Some(found),
                None => self.from_scale(r, &ns).await?,
            };
            let Some((uid, replicas)) = found else {
                return Err(format!("found no controllers for pod {:?}", pod.name_any()));
            };
            scales.insert(uid, replicas);
        }
        let total = scales.values().fold(0i32, |a, n| a.saturating_add(*n));
        Ok((total, unmanaged))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use kube::runtime::reflector::store;
    use kube::runtime::watcher::Event;
    use serde_json::json;

    fn obj<K: serde::de::DeserializeOwned>(v: serde_json::Value) -> K {
        serde_json::from_value(v).unwrap()
    }

    fn owner(api_version: &str, kind: &str, name: &str, uid: &str) -> serde_json::Value {
        json!([{"apiVersion": api_version, "kind": kind, "name": name, "uid": uid, "controller": true}])
    }

    fn store_of<K>(items: Vec<K>) -> Store<K>
    where
        K: Resource<DynamicType = ()> + Clone + 'static,
    {
        let (reader, mut writer) = store::<K>();
        for i in items {
            writer.apply_watcher_event(&Event::Apply(i));
        }
        reader
    }

    fn reference(api_version: &str, kind: &str, name: &str, uid: &str) -> OwnerReference {
        obj(owner(api_version, kind, name, uid)[0].clone())
    }

    #[tokio::test]
    async fn controllers_from_the_caches() {
        let rs_of_deploy: ReplicaSet = obj(json!({
            "metadata": {"name": "web-1", "namespace": "d", "uid": "rs1",
                "ownerReferences": owner("apps/v1", "Deployment", "web", "dep")},
            "spec": {"replicas": 2, "selector": {}}}));
        let lone_rs: ReplicaSet = obj(json!({
            "metadata": {"name": "lone", "namespace": "d", "uid": "rs2"},
            "spec": {"replicas": 4, "selector": {}}}));
        let deployment: Deployment = obj(json!({
            "metadata": {"name": "web", "namespace": "d", "uid": "dep"},
            "spec": {"replicas": 3, "selector": {}, "template": {}}}));
        let set: StatefulSet = obj(json!({
            "metadata": {"name": "db", "namespace": "d", "uid": "ss"},
            "spec": {"replicas": 5, "selector": {}, "template": {}, "serviceName": "db"}}));
        // kube::Client needs a runtime but no server: nothing is requested here.
        let client =
            kube::Client::try_from(kube::Config::new("http://127.0.0.1:9".parse().unwrap()))
                .unwrap();
        let f = Finders::new(
            client,
            store_of(vec![rs_of_deploy, lone_rs]),
            store_of(vec![deployment]),
            store_of(vec![set]),
        );
        // The Deployment's replicas, under its UID.
        assert_eq!(
            f.from_caches(&reference("apps/v1", "ReplicaSet", "web-1", "rs1"), "d"),
            Ok(Some(("dep".into(), 3)))
        );
        assert_eq!(
            f.from_caches(&reference("apps/v1", "ReplicaSet", "lone", "rs2"), "d"),
            Ok(Some(("rs2".into(), 4)))
        );
        assert_eq!(
            f.from_caches(&reference("apps/v1", "StatefulSet", "db", "ss"), "d"),
            Ok(Some(("ss".into(), 5)))
        );
        // Another object of the same name, another namespace, or an unknown kind.
        assert_eq!(
            f.from_caches(&reference("apps/v1", "StatefulSet", "db", "other"), "d"),
            Ok(None)
        );
        assert_eq!(
            f.from_caches(&reference("apps/v1", "StatefulSet", "db", "ss"), "e"),
            Ok(None)
        );
        assert_eq!(
            f.from_caches(&reference("example.com/v1", "Thing", "t", "x"), "d"),
            Ok(None)
        );
        assert!(
            f.from_caches(&reference("a/b/c", "Thing", "t", "x"), "d")
                .is_err()
        );

        // Two ReplicaSets of one Deployment count once; a pod without a controller is
        // reported, not counted.
        let pod = |name: &str, owners: serde_json::Value| -> Arc<Pod> {
            Arc::new(obj(
                json!({"metadata": {"name": name, "namespace": "d", "ownerReferences": owners}}),
            ))
        };
        let rs_b: ReplicaSet = obj(json!({
            "metadata": {"name": "web-2", "namespace": "d", "uid": "rs3",
                "ownerReferences": owner("apps/v1", "Deployment", "web", "dep")},
            "spec": {"replicas": 1, "selector": {}}}));
        let f = Finders {
            replica_sets: store_of(vec![
                obj(
                    json!({"metadata": {"name": "web-1", "namespace": "d", "uid": "rs1",
                    "ownerReferences": owner("apps/v1", "Deployment", "web", "dep")},
                    "spec": {"replicas": 2, "selector": {}}}),
                ),
                rs_b,
            ]),
            ..f
        };
        let pods = vec![
            pod("a", owner("apps/v1", "ReplicaSet", "web-1", "rs1")),
            pod("b", owner("apps/v1", "ReplicaSet", "web-2", "rs3")),
            pod("c", owner("apps/v1", "StatefulSet", "db", "ss")),
            pod("d", json!([])),
        ];
        assert_eq!(
            f.expected_scale(&pods).await,
            Ok((8, vec!["d".to_string()]))
        );
    }
}
