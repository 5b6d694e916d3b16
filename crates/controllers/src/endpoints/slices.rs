//! The discovery.k8s.io/v1 EndpointSlices of a service (upstream endpointslice controller's
//! reconciler): endpoints grouped by identical port mappings, at most
//! [`MAX_ENDPOINTS_PER_SLICE`] per slice, existing slices updated in place where possible
//! (endpoints stay in the slice they are in), empty ones deleted, and a placeholder slice
//! (no endpoints, no ports) kept for a service that selects nothing.

use super::pods;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Upstream's `--max-endpoints-per-slice` default.
pub const MAX_ENDPOINTS_PER_SLICE: usize = 100;
/// Label naming the service a slice belongs to.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// Label naming the controller managing a slice.
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// This controller's managed-by value.
pub const CONTROLLER_NAME: &str = "endpointslice-controller.k8s.io";
/// Node label carrying the zone.
const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// What to write.
#[derive(Debug, Default)]
pub struct Plan {
    pub create: Vec<EndpointSlice>,
    pub update: Vec<EndpointSlice>,
    /// Names of slices to delete.
    pub delete: Vec<String>,
}

/// Ports as a comparable key (sorted).
type PortsKey = Vec<(String, i32, String, Option<String>)>;

fn ports_key(ports: &[EndpointPort]) -> PortsKey {
    let mut k: PortsKey = ports
        .iter()
        .map(|p| {
            (
                p.name.clone().unwrap_or_default(),
                p.port.unwrap_or_default(),
                p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                p.app_protocol.clone(),
            )
        })
        .collect();
    k.sort();
    k
}

fn ports_of(k: &PortsKey) -> Vec<EndpointPort> {
    k.iter()
        .map(|(name, port, proto, app)| EndpointPort {
            name: Some(name.clone()),
            port: Some(*port),
            protocol: Some(proto.clone()),
            app_protocol: app.clone(),
        })
        .collect()
}

fn endpoint_key(ep: &Endpoint) -> String {
    ep.target_ref
        .as_ref()
        .and_then(|r| r.uid.clone())
        .or_else(|| ep.addresses.first().cloned())
        .unwrap_or_default()
}

/// The address types this controller maintains for `svc`.
pub fn address_types(svc: &Service) -> Vec<String> {
    let families = svc
        .spec
        .as_ref()
        .and_then(|s| s.ip_families.clone())
        .unwrap_or_default();
    if families.is_empty() {
        vec![pods::service_family(svc)]
    } else {
        families
    }
}

/// Desired endpoints of one address type, by port mapping.
fn desired(
    svc: &Service,
    pods: &[&Pod],
    address_type: &str,
    zones: &HashMap<String, String>,
) -> BTreeMap<PortsKey, Vec<Endpoint>> {
    let spec = svc.spec.clone().unwrap_or_default();
    let publish = spec.publish_not_ready_addresses.unwrap_or(false);
    let mut out: BTreeMap<PortsKey, Vec<Endpoint>> = BTreeMap::new();
    for pod in pods {
        // Terminating pods stay in slices (with terminating=true).
        if !pods::should_be_in_endpoints(pod, true) {
            continue;
        }
        let Some(ip) = pods::pod_ip_of_family(pod, address_type) else {
            continue;
        };
        let ports: Vec<EndpointPort> = spec
            .ports
            .iter()
            .flatten()
            .filter_map(|sp| {
                pods::find_port(pod, sp).map(|n| EndpointPort {
                    name: Some(sp.name.clone().unwrap_or_default()),
                    port: Some(n),
                    protocol: Some(sp.protocol.clone().unwrap_or_else(|| "TCP".into())),
                    app_protocol: sp.app_protocol.clone(),
                })
            })
            .collect();
        let serving = pods::is_ready(pod);
        let terminating = pod.metadata.deletion_timestamp.is_some();
        let node = pods::node_name(pod);
        let ep = Endpoint {
            addresses: vec![ip],
            conditions: Some(EndpointConditions {
                // Never ready while terminating, unless not-ready addresses are published.
                ready: Some(publish || (serving && !terminating)),
                serving: Some(serving),
                terminating: Some(terminating),
            }),
            hostname: pods::hostname_for(pod, svc),
            zone: node.as_ref().and_then(|n| zones.get(n).cloned()),
            node_name: node,
            target_ref: Some(pods::target_ref(pod)),
            ..Default::default()
        };
        out.entry(ports_key(&ports)).or_default().push(ep);
    }
    for eps in out.values_mut() {
        eps.sort_by_key(endpoint_key);
    }
    out
}

/// Labels every slice of `svc` carries.
pub fn slice_labels(svc: &Service) -> BTreeMap<String, String> {
    let mut labels = svc.metadata.labels.clone().unwrap_or_default();
    for reserved in [
        SERVICE_NAME_LABEL,
        MANAGED_BY_LABEL,
        super::legacy::HEADLESS_LABEL,
    ] {
        labels.remove(reserved);
    }
    labels.insert(
        SERVICE_NAME_LABEL.into(),
        svc.metadata.name.clone().unwrap_or_default(),
    );
    labels.insert(MANAGED_BY_LABEL.into(), CONTROLLER_NAME.into());
    if pods::is_headless(svc) {
        labels.insert(super::legacy::HEADLESS_LABEL.into(), String::new());
    }
    labels
}

fn owner_ref(svc: &Service) -> OwnerReference {
    OwnerReference {
        api_version: "v1".into(),
        kind: "Service".into(),
        name: svc.metadata.name.clone().unwrap_or_default(),
        uid: svc.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

fn new_slice(
    svc: &Service,
    address_type: &str,
    ports: &PortsKey,
    eps: Vec<Endpoint>,
) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            generate_name: Some(format!(
                "{}-",
                svc.metadata.name.clone().unwrap_or_default()
            )),
            namespace: svc.metadata.namespace.clone(),
            labels: Some(slice_labels(svc)),
            owner_references: Some(vec![owner_ref(svc)]),
            ..Default::default()
        },
        address_type: address_type.to_string(),
        endpoints: eps,
        ports: Some(ports_of(ports)),
    }
}

fn sorted(eps: &[Endpoint]) -> Vec<Endpoint> {
    let mut v = eps.to_vec();
    v.sort_by_key(endpoint_key);
    v
}

/// Whether a slice needs rewriting to hold `eps` with the service's metadata.
fn changed(slice: &EndpointSlice, eps: &[Endpoint], svc: &Service) -> bool {
    let labels = slice.metadata.labels.clone().unwrap_or_default();
    let owners_ok = slice
        .metadata
        .owner_references
        .as_ref()
        .is_some_and(|o| o.iter().any(|r| Some(&r.uid) == svc.metadata.uid.as_ref()));
    sorted(&slice.endpoints) != sorted(eps) || labels != slice_labels(svc) || !owners_ok
}

fn is_placeholder(s: &EndpointSlice) -> bool {
    s.endpoints.is_empty() && s.ports.as_ref().is_none_or(|p| p.is_empty())
}

/// Plan the writes bringing `existing` (this service's managed slices) to the desired state.
pub fn plan(
    svc: &Service,
    pods: &[&Pod],
    existing: &[EndpointSlice],
    zones: &HashMap<String, String>,
) -> Plan {
    let mut plan = Plan::default();
    let types = address_types(svc);
    for s in existing {
        if !types.contains(&s.address_type) {
            plan.delete.extend(s.metadata.name.clone());
        }
    }
    for at in &types {
        plan_address_type(svc, pods, existing, zones, at, &mut plan);
    }
    plan
}

fn plan_address_type(
    svc: &Service,
    pods: &[&Pod],
    existing: &[EndpointSlice],
    zones: &HashMap<String, String>,
    at: &str,
    plan: &mut Plan,
) {
    let desired = desired(svc, pods, at, zones);
    let mine: Vec<&EndpointSlice> = existing.iter().filter(|s| s.address_type == at).collect();
    let mut to_delete: Vec<&EndpointSlice> = Vec::new();
    let mut to_create: Vec<EndpointSlice> = Vec::new();
    let mut used: HashSet<String> = HashSet::new();
    for (ports, eps) in &desired {
        let by_key: HashMap<String, &Endpoint> = eps.iter().map(|e| (endpoint_key(e), e)).collect();
        let mut placed: HashSet<String> = HashSet::new();
        // Existing slices with this port mapping keep the endpoints they already hold.
        let mut kept: Vec<(&EndpointSlice, Vec<Endpoint>)> = Vec::new();
        for s in mine
            .iter()
            .filter(|s| ports_key(s.ports.as_deref().unwrap_or_default()) == *ports)
        {
            let eps_now: Vec<Endpoint> = s
                .endpoints
                .iter()
                .filter_map(|e| {
                    let k = endpoint_key(e);
                    if placed.contains(&k) {
                        return None;
                    }
                    let d = by_key.get(&k)?;
                    placed.insert(k);
                    Some((*d).clone())
                })
                .collect();
            if let Some(n) = &s.metadata.name {
                used.insert(n.clone());
            }
            kept.push((s, eps_now));
        }
        let mut rest: Vec<Endpoint> = eps
            .iter()
            .filter(|e| !placed.contains(&endpoint_key(e)))
            .cloned()
            .collect();
        // Fill the fullest slices first, then open new ones.
        kept.sort_by_key(|(_, e)| std::cmp::Reverse(e.len()));
        for (_, e) in kept.iter_mut() {
            while e.len() < MAX_ENDPOINTS_PER_SLICE && !rest.is_empty() {
                e.push(rest.remove(0));
            }
        }
        for chunk in rest.chunks(MAX_ENDPOINTS_PER_SLICE) {
            to_create.push(new_slice(svc, at, ports, chunk.to_vec()));
        }
        for (s, e) in kept {
            if e.is_empty() {
                to_delete.push(s);
            } else if changed(s, &e, svc) {
                let mut u = s.clone();
                u.endpoints = e;
                u.metadata.labels = Some(slice_labels(svc));
                u.metadata.owner_references = Some(vec![owner_ref(svc)]);
                plan.update.push(u);
            }
        }
    }
    for s in &mine {
        if !s.metadata.name.as_ref().is_some_and(|n| used.contains(n)) {
            to_delete.push(s);
        }
    }
    // A service that selects nothing keeps exactly one placeholder slice.
    if to_delete.len() == mine.len() && to_create.is_empty() {
        match to_delete.iter().position(|s| is_placeholder(s)) {
            Some(i) => {
                let keep = to_delete.remove(i);
                if changed(keep, &[], svc) {
                    let mut u = keep.clone();
                    u.metadata.labels = Some(slice_labels(svc));
                    u.metadata.owner_references = Some(vec![owner_ref(svc)]);
                    plan.update.push(u);
                }
            }
            None => to_create.push(new_slice(svc, at, &Vec::new(), Vec::new())),
        }
    }
    plan.delete
        .extend(to_delete.iter().filter_map(|s| s.metadata.name.clone()));
    plan.create.extend(to_create);
}

/// Node name to zone, from node labels.
pub fn zone_of(labels: Option<&BTreeMap<String, String>>) -> Option<String> {
    labels.and_then(|l| l.get(ZONE_LABEL).cloned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodSpec, PodStatus, ServicePort, ServiceSpec};

    fn pod(i: usize, ready: bool) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(format!("p{i}")),
                namespace: Some("ns".into()),
                uid: Some(format!("uid-{i:04}")),
                ..Default::default()
            },
            spec: Some(PodSpec::default()),
            status: Some(PodStatus {
                pod_ip: Some(format!("10.42.{}.{}", i / 200, i % 200 + 1)),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        }
    }

    fn svc() -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("ns".into()),
                uid: Some("svc-uid".into()),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                cluster_ip: Some("10.43.0.10".into()),
                ports: Some(vec![ServicePort {
                    name: Some("http".into()),
                    port: 80,
                    protocol: Some("TCP".into()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn named(mut s: EndpointSlice, n: &str) -> EndpointSlice {
        s.metadata.name = Some(n.into());
        s
    }

    #[test]
    fn empty_service_gets_one_placeholder() {
        let p = plan(&svc(), &[], &[], &HashMap::new());
        assert_eq!(p.create.len(), 1);
        assert!(is_placeholder(&p.create[0]));
        let existing = vec![named(p.create[0].clone(), "web-a")];
        let p2 = plan(&svc(), &[], &existing, &HashMap::new());
        assert!(p2.create.is_empty() && p2.update.is_empty() && p2.delete.is_empty());
    }

    #[test]
    fn endpoints_split_into_slices_and_conditions() {
        let pods: Vec<Pod> = (0..150).map(|i| pod(i, i % 2 == 0)).collect();
        let refs: Vec<&Pod> = pods.iter().collect();
        let p = plan(&svc(), &refs, &[], &HashMap::new());
        assert_eq!(p.create.len(), 2);
        assert_eq!(
            p.create.iter().map(|s| s.endpoints.len()).sum::<usize>(),
            150
        );
        let e0 = &p.create[0].endpoints[0];
        let c = e0.conditions.clone().unwrap_or_default();
        assert_eq!(c.ready, c.serving);
        assert_eq!(c.terminating, Some(false));
        // Once written, nothing to do; a pod leaving updates one slice.
        let existing: Vec<EndpointSlice> = p
            .create
            .iter()
            .enumerate()
            .map(|(i, s)| named(s.clone(), &format!("web-{i}")))
            .collect();
        assert!(
            plan(&svc(), &refs, &existing, &HashMap::new())
                .update
                .is_empty()
        );
        let fewer: Vec<&Pod> = refs[1..].to_vec();
        let p3 = plan(&svc(), &fewer, &existing, &HashMap::new());
        assert_eq!(p3.update.len(), 1);
        assert!(p3.create.is_empty() && p3.delete.is_empty());
    }
}
