//! The endpoints and endpointslice controllers (upstream `endpoint-controller` and
//! `endpointslice-controller`): for every Service with a selector, the Endpoints object of
//! the same name and the managed EndpointSlices list the selected pods' addresses with
//! their readiness. Services without a selector are left to their owners; the Endpoints of
//! a deleted service are deleted (its slices go with it through their owner reference).

mod legacy;
pub mod pods;
pub mod slices;

use crate::Context;
use crate::util::{Informer, InformerEvent, WorkQueue, is_not_found, run_workers};
use k8s_openapi::api::core::v1::{Endpoints, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::api::{DeleteParams, ListParams, ObjectMeta, PostParams};
use kube::runtime::watcher;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Concurrent service syncs (upstream `--concurrent-endpoint-syncs` default).
const WORKERS: usize = 5;

type Key = (String, String);

struct Caches {
    services: Informer<Service>,
    pods: Informer<Pod>,
    endpoints: Informer<Endpoints>,
    nodes: Informer<Node>,
}

fn key_of(meta: &ObjectMeta) -> Option<Key> {
    Some((meta.namespace.clone()?, meta.name.clone()?))
}

/// Services in the pod's namespace whose selector matches the pod's labels.
fn services_for(services: &Informer<Service>, pod: &Pod) -> Vec<Key> {
    let ns = pod.metadata.namespace.as_deref();
    services
        .store()
        .state()
        .iter()
        .filter(|s| s.metadata.namespace.as_deref() == ns)
        .filter(|s| {
            s.spec
                .as_ref()
                .and_then(|sp| sp.selector.as_ref())
                .is_some_and(|sel| pods::selector_matches(sel, pod.metadata.labels.as_ref()))
        })
        .filter_map(|s| key_of(&s.metadata))
        .collect()
}

/// Run the controller until a fatal error.
pub async fn run(ctx: Context) -> anyhow::Result<()> {
    let client = ctx.client.clone();
    let queue: WorkQueue<Key> = WorkQueue::new();
    let services = ctx.informers.get::<Service>();
    let pods_inf = ctx.informers.get::<Pod>();
    let endpoints = ctx.informers.get::<Endpoints>();
    let slices_inf = ctx
        .informers
        .get_with::<EndpointSlice>(watcher::Config::default().labels(&format!(
            "{}={}",
            slices::MANAGED_BY_LABEL,
            slices::CONTROLLER_NAME
        )));
    let nodes = ctx.informers.get::<Node>();
    // The handlers stay registered while this future lives.
    let q = queue.clone();
    let _service_events = services.add_handler(move |ev| {
        let meta = match &ev {
            InformerEvent::Apply { new, .. } => &new.metadata,
            InformerEvent::Delete(old) => &old.metadata,
        };
        if let Some(k) = key_of(meta) {
            q.add(k);
        }
    });
    let q = queue.clone();
    let svc_cache = services.clone();
    let _pod_events = pods_inf.add_handler(move |ev| {
        // Both the old and new label sets: a pod may have left a service.
        let (old, new) = match ev {
            InformerEvent::Apply { old, new } => (old, Some(new)),
            InformerEvent::Delete(old) => (Some(old), None),
        };
        for p in old.iter().chain(new.iter()) {
            for k in services_for(&svc_cache, p) {
                q.add(k);
            }
        }
    });
    let q = queue.clone();
    let _endpoints_events = endpoints.add_handler(move |ev| {
        // Someone deleted our Endpoints: recreate them.
        if let InformerEvent::Delete(old) = ev
            && let Some(k) = key_of(&old.metadata)
        {
            q.add(k);
        }
    });
    let q = queue.clone();
    let _slice_events = slices_inf.add_handler(move |ev| {
        let s = match &ev {
            InformerEvent::Apply { new, .. } => new,
            InformerEvent::Delete(old) => old,
        };
        let svc = s
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(slices::SERVICE_NAME_LABEL));
        if let (Some(ns), Some(svc)) = (&s.metadata.namespace, svc) {
            q.add((ns.clone(), svc.clone()));
        }
    });
    services.wait_synced().await;
    pods_inf.wait_synced().await;
    endpoints.wait_synced().await;
    slices_inf.wait_synced().await;
    nodes.wait_synced().await;
    for s in services.store().state() {
        if let Some(k) = key_of(&s.metadata) {
            queue.add(k);
        }
    }
    let caches = Arc::new(Caches {
        services,
        pods: pods_inf,
        endpoints,
        nodes,
    });
    let _slices = slices_inf;
    run_workers(queue, WORKERS, move |key: Key| {
        let client = client.clone();
        let caches = caches.clone();
        async move { sync_service(&client, &caches, &key).await }
    })
    .await;
    Ok(())
}

/// Writes into a namespace being deleted are refused; nothing to do then.
fn terminating_namespace(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 403 && s.message.contains("terminat"))
}

async fn sync_service(
    client: &kube::Client,
    caches: &Caches,
    (ns, name): &Key,
) -> Result<Option<Duration>, kube::Error> {
    let ep_api: Api<Endpoints> = Api::namespaced(client.clone(), ns);
    let Some(svc) = caches.services.get(Some(ns), name) else {
        // Service gone: its Endpoints go too (slices follow through garbage collection).
        match ep_api.delete(name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(e),
        }
        return Ok(None);
    };
    let spec = svc.spec.clone().unwrap_or_default();
    if spec.type_.as_deref() == Some("ExternalName") {
        return Ok(None);
    }
    let Some(selector) = spec.selector.as_ref() else {
        return Ok(None);
    };
    let pod_state = caches.pods.store().state();
    let selected: Vec<&Pod> = pod_state
        .iter()
        .map(|p| p.as_ref())
        .filter(|p| p.metadata.namespace.as_deref() == Some(ns.as_str()))
        .filter(|p| pods::selector_matches(selector, p.metadata.labels.as_ref()))
        .collect();
    match sync_endpoints(&ep_api, caches, &svc, &selected).await {
        Ok(()) => {}
        Err(e) if terminating_namespace(&e) => return Ok(None),
        Err(e) => return Err(e),
    }
    match sync_slices(client, caches, &svc, &selected).await {
        Ok(()) => Ok(None),
        Err(e) if terminating_namespace(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

async fn sync_endpoints(
    api: &Api<Endpoints>,
    caches: &Caches,
    svc: &Service,
    selected: &[&Pod],
) -> Result<(), kube::Error> {
    let ns = svc.metadata.namespace.clone().unwrap_or_default();
    let name = svc.metadata.name.clone().unwrap_or_default();
    let mut subsets = legacy::desired_subsets(svc, selected);
    let truncated = legacy::truncate(&mut subsets);
    let labels = legacy::desired_labels(svc);
    let current = caches.endpoints.get(Some(&ns), &name);
    if let Some(cur) = &current
        && legacy::up_to_date(cur, &subsets, &labels, truncated)
    {
        return Ok(());
    }
    let mut desired = current.as_deref().cloned().unwrap_or_else(|| Endpoints {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(ns.clone()),
            ..Default::default()
        },
        ..Default::default()
    });
    desired.subsets = Some(subsets).filter(|s| !s.is_empty());
    desired.metadata.labels = Some(labels);
    let annotations = desired
        .metadata
        .annotations
        .get_or_insert_with(Default::default);
    if truncated {
        annotations.insert(legacy::OVER_CAPACITY_ANNOTATION.into(), "truncated".into());
    } else {
        annotations.remove(legacy::OVER_CAPACITY_ANNOTATION);
    }
    // A stale cache shows up as a conflict (or AlreadyExists) and the key is retried.
    match current {
        Some(_) => api.replace(&name, &PostParams::default(), &desired).await,
        None => api.create(&PostParams::default(), &desired).await,
    }
    .map(|_| ())
}

async fn sync_slices(
    client: &kube::Client,
    caches: &Caches,
    svc: &Service,
    selected: &[&Pod],
) -> Result<(), kube::Error> {
    let ns = svc.metadata.namespace.clone().unwrap_or_default();
    let name = svc.metadata.name.clone().unwrap_or_default();
    let api: Api<EndpointSlice> = Api::namespaced(client.clone(), &ns);
    // Read the slices live: acting on a cache that has not seen our last create would
    // duplicate slices.
    let lp = ListParams::default().labels(&format!(
        "{}={},{}={}",
        slices::SERVICE_NAME_LABEL,
        name,
        slices::MANAGED_BY_LABEL,
        slices::CONTROLLER_NAME
    ));
    let existing = api.list(&lp).await?.items;
    let zones: HashMap<String, String> = caches
        .nodes
        .store()
        .state()
        .iter()
        .filter_map(|n| {
            Some((
                n.metadata.name.clone()?,
                slices::zone_of(n.metadata.labels.as_ref())?,
            ))
        })
        .collect();
    let plan = slices::plan(svc, selected, &existing, &zones);
    for s in plan.create {
        api.create(&PostParams::default(), &s).await?;
    }
    for s in plan.update {
        let n = s.metadata.name.clone().unwrap_or_default();
        api.replace(&n, &PostParams::default(), &s).await?;
    }
    for n in plan.delete {
        match api.delete(&n, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
