//! The built-in service load balancer (k3s's ServiceLB, without its per-service
//! DaemonSets): a `type: LoadBalancer` Service without a `loadBalancerClass` gets the
//! addresses of the Ready nodes (ExternalIP when a node has one, else InternalIP) in
//! `status.loadBalancer.ingress`, and the service proxy on every node forwards those
//! addresses' service ports to the endpoints. Nodes labelled
//! `node.kubernetes.io/exclude-from-external-load-balancers` are left out. As with k3s's
//! host ports, one node port can serve one Service: a later Service asking for a port an
//! older LoadBalancer Service holds stays pending (with a warning event).

use crate::events::EventType;
use crate::util::{InformerEvent, WorkQueue, run_workers};
use crate::{Context, Recorder};
use k8s_openapi::api::core::v1::{Node, Service};
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;
use std::collections::BTreeSet;
use std::sync::Arc;

const WORKERS: usize = 1;
const EXCLUDE_LABEL: &str = "node.kubernetes.io/exclude-from-external-load-balancers";

struct State {
    client: kube::Client,
    services: crate::util::Informer<Service>,
    nodes: crate::util::Informer<Node>,
    recorder: Recorder,
}

/// Whether this controller serves `svc`.
fn served(svc: &Service) -> bool {
    svc.spec.as_ref().is_some_and(|s| {
        s.type_.as_deref() == Some("LoadBalancer") && s.load_balancer_class.is_none()
    })
}

/// The address a Ready, included node offers.
fn node_address(node: &Node) -> Option<String> {
    if node.labels().contains_key(EXCLUDE_LABEL) {
        return None;
    }
    let status = node.status.as_ref()?;
    let ready = status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    if !ready {
        return None;
    }
    let addrs = status.addresses.as_ref()?;
    let of = |t: &str| {
        addrs
            .iter()
            .find(|a| a.type_ == t)
            .map(|a| a.address.clone())
    };
    of("ExternalIP").or_else(|| of("InternalIP"))
}

/// `(protocol, port)` pairs of a Service.
fn ports(svc: &Service) -> BTreeSet<(String, i32)> {
    svc.spec
        .iter()
        .flat_map(|s| s.ports.iter().flatten())
        .map(|p| (p.protocol.clone().unwrap_or_else(|| "TCP".into()), p.port))
        .collect()
}

/// The older served Service holding one of `svc`'s ports, if any.
fn port_holder<'a>(svc: &Service, all: &'a [Arc<Service>]) -> Option<&'a Service> {
    let mine = ports(svc);
    let key = |s: &Service| (s.creation_timestamp(), s.namespace(), s.name_any());
    all.iter()
        .map(|s| s.as_ref())
        .filter(|other| served(other) && other.uid() != svc.uid() && key(other) < key(svc))
        .find(|other| !ports(other).is_disjoint(&mine))
}

/// Run the controller until a fatal error.
pub async fn run(ctx: Context) -> anyhow::Result<()> {
    let queue: WorkQueue<(String, String)> = WorkQueue::new();
    let state = Arc::new(State {
        client: ctx.client.clone(),
        services: ctx.informers.get::<Service>(),
        nodes: ctx.informers.get::<Node>(),
        recorder: ctx.recorder("service-lb-controller"),
    });
    let q = queue.clone();
    let services = state.services.clone();
    let requeue_all = move || {
        for s in services.store().state() {
            q.add((s.namespace().unwrap_or_default(), s.name_any()));
        }
    };
    let all = requeue_all.clone();
    // A Service's change can free or take a port another one waits for.
    let _services = state.services.add_handler(move |ev| {
        if let InformerEvent::Apply {
            old: Some(old),
            new,
        } = &ev
            && old.spec == new.spec
        {
            return;
        }
        all();
    });
    let _nodes = state.nodes.add_handler(move |ev| {
        if let InformerEvent::Apply {
            old: Some(old),
            new,
        } = &ev
            && node_address(old) == node_address(new)
        {
            return;
        }
        requeue_all();
    });
    state.services.wait_synced().await;
    state.nodes.wait_synced().await;
    run_workers(queue, WORKERS, move |(ns, name): (String, String)| {
        let state = state.clone();
        async move { sync(&state, &ns, &name).await.map(|()| None) }
    })
    .await;
    Ok(())
}

async fn sync(state: &State, ns: &str, name: &str) -> Result<(), kube::Error> {
    let Some(svc) = state.services.get(Some(ns), name) else {
        return Ok(());
    };
    let current = svc
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.clone())
        .unwrap_or_default();
    let desired: Vec<String> = if !served(&svc) || svc.metadata.deletion_timestamp.is_some() {
        // Not ours (another class, or no longer a LoadBalancer): leave a class's status
        // to its controller, clear ours.
        if svc
            .spec
            .as_ref()
            .and_then(|s| s.load_balancer_class.as_ref())
            .is_some()
        {
            return Ok(());
        }
        Vec::new()
    } else if let Some(holder) = port_holder(&svc, &state.services.store().state()) {
        if current.is_empty() {
            let msg = format!(
                "a port of this Service is already used by LoadBalancer Service {}/{}",
                holder.namespace().unwrap_or_default(),
                holder.name_any()
            );
            state
                .recorder
                .publish_for(&*svc, EventType::Warning, "PortInUse", &msg);
        }
        Vec::new()
    } else {
        let ips: BTreeSet<String> = state
            .nodes
            .store()
            .state()
            .iter()
            .filter_map(|n| node_address(n))
            .collect();
        ips.into_iter().collect()
    };
    let have: Vec<String> = current.iter().filter_map(|i| i.ip.clone()).collect();
    if have == desired && current.iter().all(|i| i.hostname.is_none()) {
        return Ok(());
    }
    let ingress: Vec<_> = desired
        .iter()
        .map(|ip| json!({"ip": ip, "ipMode": "VIP"}))
        .collect();
    let patch = json!({"status": {"loadBalancer": if ingress.is_empty() {
        json!({})
    } else {
        json!({"ingress": ingress})
    }}});
    let api: Api<Service> = Api::namespaced(state.client.clone(), ns);
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .map(|_| ())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn node(ready: &str, addrs: &[(&str, &str)], exclude: bool) -> Node {
        let addresses: Vec<_> = addrs
            .iter()
            .map(|(t, a)| json!({"type": t, "address": a}))
            .collect();
        let labels = if exclude {
            json!({EXCLUDE_LABEL: ""})
        } else {
            json!({})
        };
        serde_json::from_value(json!({"metadata": {"name": "n", "labels": labels},
            "status": {"addresses": addresses,
                "conditions": [{"type": "Ready", "status": ready}]}}))
        .unwrap()
    }

    fn svc(name: &str, created: &str, port: i32, class: Option<&str>) -> Arc<Service> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "d", "uid": name,
                             "creationTimestamp": created},
                "spec": {"type": "LoadBalancer", "loadBalancerClass": class,
                         "ports": [{"port": port, "protocol": "TCP"}]}}))
            .unwrap(),
        )
    }

    #[test]
    fn ready_nodes_offer_their_external_else_internal_address() {
        let both = [("InternalIP", "10.0.0.1"), ("ExternalIP", "203.0.113.1")];
        assert_eq!(
            node_address(&node("True", &both, false)).as_deref(),
            Some("203.0.113.1")
        );
        let internal = [("Hostname", "h"), ("InternalIP", "10.0.0.2")];
        assert_eq!(
            node_address(&node("True", &internal, false)).as_deref(),
            Some("10.0.0.2")
        );
        assert_eq!(node_address(&node("Unknown", &internal, false)), None);
        assert_eq!(node_address(&node("True", &internal, true)), None);
    }

    #[test]
    fn the_older_service_keeps_a_shared_port() {
        let old = svc("old", "2026-01-01T00:00:00Z", 80, None);
        let new = svc("new", "2026-01-02T00:00:00Z", 80, None);
        let other = svc("other", "2026-01-01T00:00:00Z", 81, None);
        let classy = svc("classy", "2025-01-01T00:00:00Z", 80, Some("x.io/lb"));
        let all = [old.clone(), new.clone(), other.clone(), classy.clone()];
        assert_eq!(
            port_holder(&new, &all).map(|s| s.name_any()).as_deref(),
            Some("old")
        );
        assert!(port_holder(&old, &all).is_none());
        assert!(port_holder(&other, &all).is_none());
        assert!(!served(&classy));
    }
}
