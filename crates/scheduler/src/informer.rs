//! Watches feeding the scheduling loop: nodes, non-terminal pods, priority classes,
//! PodDisruptionBudgets, namespaces, PersistentVolumeClaims, PersistentVolumes and
//! StorageClasses. Each watch runs in its own task, converts objects
//! to the compact model off the scheduling loop, and reports relists so objects that
//! vanished meanwhile are dropped. `managedFields` are stripped as objects arrive.

use crate::cache::{Pdb, PriorityClass};
use crate::model::{NodeSpec, PodInfo};
use crate::plugins::volume::{self, Pv, Pvc};
use crate::selector::{LabelSelector, Labels};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Node, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::scheduling::v1::PriorityClass as ApiPriorityClass;
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use std::collections::HashSet;
use std::fmt::Debug;
use std::sync::Arc;
use tokio::sync::mpsc::UnboundedSender;

/// Which watch a sync/relist message is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Node,
    Pod,
    PriorityClass,
    Pdb,
    Namespace,
    Pvc,
    Pv,
    StorageClass,
}

/// Everything the scheduling loop reacts to.
#[derive(Debug)]
pub enum Msg {
    Node(NodeSpec),
    NodeDeleted(String),
    Pod(Arc<PodInfo>),
    PodDeleted(String),
    PriorityClass(String, Option<PriorityClass>),
    Pdb(String, Option<Pdb>),
    Namespace(String, Option<Labels>),
    /// A claim by `namespace/name`.
    Pvc(String, Option<Pvc>),
    Pv(String, Option<Pv>),
    /// A class and whether it waits for the first consumer.
    StorageClass(String, Option<bool>),
    /// After a (re)list: the keys that exist; everything else of this kind is gone.
    Resync(Kind, HashSet<String>),
    /// A binding finished: pod uid, node id, outcome (HTTP code on failure, if any).
    Bound {
        uid: String,
        node: usize,
        error: Option<(Option<u16>, String)>,
    },
}

fn pdb_of(p: &PodDisruptionBudget) -> Pdb {
    let spec = p.spec.as_ref();
    let status = p.status.as_ref();
    Pdb {
        namespace: p.namespace().unwrap_or_default(),
        selector: LabelSelector::parse(spec.and_then(|s| s.selector.as_ref()))
            .unwrap_or_else(|_| LabelSelector::nothing()),
        disruptions_allowed: status.map(|s| s.disruptions_allowed).unwrap_or(0),
        disrupted_pods: status
            .and_then(|s| s.disrupted_pods.as_ref())
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default(),
    }
}

/// One watch: `apply` turns an object into a message, `key` names it for relists, `delete`
/// makes the deletion message.
async fn watch<K, A, D, Q>(
    api: Api<K>,
    cfg: watcher::Config,
    kind: Kind,
    tx: UnboundedSender<Msg>,
    apply: A,
    key: Q,
    delete: D,
) where
    K: Resource + Clone + serde::de::DeserializeOwned + Debug + Send + 'static,
    A: Fn(&K) -> Msg,
    D: Fn(&K) -> Msg,
    Q: Fn(&K) -> String,
{
    // Nothing here reads managedFields, often the bulk of an object: drop them on arrival
    // so they are never held (e.g. in the watcher's relist buffer) longer than decoding.
    let mut stream = watcher(api, cfg)
        .modify(|o: &mut K| o.meta_mut().managed_fields = None)
        .default_backoff()
        .boxed();
    let mut seen: Option<HashSet<String>> = None;
    while let Some(ev) = stream.next().await {
        let msg = match ev {
            Ok(watcher::Event::Init) => {
                seen = Some(HashSet::new());
                continue;
            }
            Ok(watcher::Event::InitApply(o)) => {
                if let Some(s) = seen.as_mut() {
                    s.insert(key(&o));
                }
                apply(&o)
            }
            Ok(watcher::Event::InitDone) => Msg::Resync(kind, seen.take().unwrap_or_default()),
            Ok(watcher::Event::Apply(o)) => apply(&o),
            Ok(watcher::Event::Delete(o)) => delete(&o),
            Err(e) => {
                tracing::warn!(?kind, error = %e, "scheduler watch error");
                continue;
            }
        };
        if tx.send(msg).is_err() {
            return;
        }
    }
}

/// Start every watch; they stop when the receiver is dropped (or the set is aborted).
pub fn spawn_all(
    client: &kube::Client,
    tx: &UnboundedSender<Msg>,
    set: &mut tokio::task::JoinSet<()>,
) {
    let uid = |m: &kube::api::ObjectMeta| m.uid.clone().unwrap_or_default();
    set.spawn(watch(
        Api::<Node>::all(client.clone()),
        watcher::Config::default(),
        Kind::Node,
        tx.clone(),
        |n: &Node| Msg::Node(NodeSpec::from_node(n)),
        |n: &Node| n.name_any(),
        |n: &Node| Msg::NodeDeleted(n.name_any()),
    ));
    set.spawn(watch(
        Api::<Pod>::all(client.clone()),
        // Terminal pods hold no resources; like upstream, the scheduler never sees them.
        watcher::Config::default().fields("status.phase!=Succeeded,status.phase!=Failed"),
        Kind::Pod,
        tx.clone(),
        |p: &Pod| Msg::Pod(Arc::new(PodInfo::from_pod(p))),
        move |p: &Pod| uid(&p.metadata),
        move |p: &Pod| Msg::PodDeleted(uid(&p.metadata)),
    ));
    set.spawn(watch(
        Api::<ApiPriorityClass>::all(client.clone()),
        watcher::Config::default(),
        Kind::PriorityClass,
        tx.clone(),
        |c: &ApiPriorityClass| {
            Msg::PriorityClass(
                c.name_any(),
                Some(PriorityClass {
                    value: c.value,
                    global_default: c.global_default.unwrap_or(false),
                    preempt_never: c.preemption_policy.as_deref() == Some("Never"),
                }),
            )
        },
        |c: &ApiPriorityClass| c.name_any(),
        |c: &ApiPriorityClass| Msg::PriorityClass(c.name_any(), None),
    ));
    let pdb_key =
        |p: &PodDisruptionBudget| format!("{}/{}", p.namespace().unwrap_or_default(), p.name_any());
    set.spawn(watch(
        Api::<PodDisruptionBudget>::all(client.clone()),
        watcher::Config::default(),
        Kind::Pdb,
        tx.clone(),
        move |p: &PodDisruptionBudget| Msg::Pdb(pdb_key(p), Some(pdb_of(p))),
        pdb_key,
        move |p: &PodDisruptionBudget| Msg::Pdb(pdb_key(p), None),
    ));
    set.spawn(watch(
        Api::<Namespace>::all(client.clone()),
        watcher::Config::default(),
        Kind::Namespace,
        tx.clone(),
        |n: &Namespace| Msg::Namespace(n.name_any(), Some(n.labels().clone())),
        |n: &Namespace| n.name_any(),
        |n: &Namespace| Msg::Namespace(n.name_any(), None),
    ));
    let pvc_key = |c: &PersistentVolumeClaim| {
        format!("{}/{}", c.namespace().unwrap_or_default(), c.name_any())
    };
    set.spawn(watch(
        Api::<PersistentVolumeClaim>::all(client.clone()),
        watcher::Config::default(),
        Kind::Pvc,
        tx.clone(),
        move |c: &PersistentVolumeClaim| Msg::Pvc(pvc_key(c), Some(Pvc::from_api(c))),
        pvc_key,
        move |c: &PersistentVolumeClaim| Msg::Pvc(pvc_key(c), None),
    ));
    set.spawn(watch(
        Api::<PersistentVolume>::all(client.clone()),
        watcher::Config::default(),
        Kind::Pv,
        tx.clone(),
        |v: &PersistentVolume| Msg::Pv(v.name_any(), Some(Pv::from_api(v))),
        |v: &PersistentVolume| v.name_any(),
        |v: &PersistentVolume| Msg::Pv(v.name_any(), None),
    ));
    set.spawn(watch(
        Api::<StorageClass>::all(client.clone()),
        watcher::Config::default(),
        Kind::StorageClass,
        tx.clone(),
        |c: &StorageClass| {
            Msg::StorageClass(c.name_any(), Some(volume::waits_for_first_consumer(c)))
        },
        |c: &StorageClass| c.name_any(),
        |c: &StorageClass| Msg::StorageClass(c.name_any(), None),
    ));
}
