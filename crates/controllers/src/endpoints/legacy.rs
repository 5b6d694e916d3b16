//! The core/v1 Endpoints object of a service (upstream endpoints controller): one address
//! per selected pod with an IP, under `addresses` when Ready (or publishNotReadyAddresses)
//! and `notReadyAddresses` otherwise, repacked into subsets of identical port sets.

use super::pods;
use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, Pod, Service,
};
use std::collections::{BTreeMap, BTreeSet};

/// Most addresses one Endpoints object holds (upstream `maxCapacity`); beyond it the
/// object is truncated and annotated.
pub const MAX_CAPACITY: usize = 1000;
/// Annotation marking a truncated Endpoints object.
pub const OVER_CAPACITY_ANNOTATION: &str = "endpoints.kubernetes.io/over-capacity";

/// Label marking a headless service's endpoints.
pub const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";

/// A port, comparable (for grouping addresses by port set).
type PortKey = (String, i32, String, Option<String>);

fn port_key(p: &EndpointPort) -> PortKey {
    (
        p.name.clone().unwrap_or_default(),
        p.port,
        p.protocol.clone().unwrap_or_else(|| "TCP".into()),
        p.app_protocol.clone(),
    )
}

fn port_of(k: &PortKey) -> EndpointPort {
    EndpointPort {
        name: Some(k.0.clone()).filter(|n| !n.is_empty()),
        port: k.1,
        protocol: Some(k.2.clone()),
        app_protocol: k.3.clone(),
    }
}

/// An address with its readiness, as stored while repacking.
#[derive(Clone)]
struct Addr {
    addr: EndpointAddress,
    ready: bool,
}

fn addr_sort_key(a: &EndpointAddress) -> (String, String) {
    (
        a.ip.clone(),
        a.target_ref
            .as_ref()
            .and_then(|r| r.uid.clone())
            .unwrap_or_default(),
    )
}

/// The subsets for `svc` over its selected `pods` (all in the service's namespace and
/// matching its selector).
pub fn desired_subsets(svc: &Service, pods: &[&Pod]) -> Vec<EndpointSubset> {
    let spec = svc.spec.clone().unwrap_or_default();
    let tolerate_unready = spec.publish_not_ready_addresses.unwrap_or(false);
    let family = pods::service_family(svc);
    let ports = spec.ports.clone().unwrap_or_default();
    // (address identity) -> (address, ready, port set)
    let mut by_addr: BTreeMap<(String, String), (Addr, BTreeSet<PortKey>)> = BTreeMap::new();
    for pod in pods {
        if !pods::should_be_in_endpoints(pod, tolerate_unready) {
            continue;
        }
        let Some(ip) = pods::pod_ip_of_family(pod, &family) else {
            continue;
        };
        let addr = EndpointAddress {
            ip,
            hostname: pods::hostname_for(pod, svc),
            node_name: pods::node_name(pod),
            target_ref: Some(pods::target_ref(pod)),
        };
        let ready = tolerate_unready || pods::is_ready(pod);
        let mut port_set = BTreeSet::new();
        if ports.is_empty() {
            // Only headless services get port-less endpoints.
            if !pods::is_headless(svc) {
                continue;
            }
        } else {
            for sp in &ports {
                let Some(n) = pods::find_port(pod, sp) else {
                    continue;
                };
                port_set.insert(port_key(&EndpointPort {
                    name: sp.name.clone(),
                    port: n,
                    protocol: Some(sp.protocol.clone().unwrap_or_else(|| "TCP".into())),
                    app_protocol: sp.app_protocol.clone(),
                }));
            }
            if port_set.is_empty() {
                continue;
            }
        }
        by_addr.insert(addr_sort_key(&addr), (Addr { addr, ready }, port_set));
    }
    repack(by_addr.into_values().collect())
}

/// Group addresses with identical port sets into one subset each (upstream RepackSubsets),
/// in a deterministic order.
fn repack(addrs: Vec<(Addr, BTreeSet<PortKey>)>) -> Vec<EndpointSubset> {
    let mut groups: BTreeMap<BTreeSet<PortKey>, (Vec<EndpointAddress>, Vec<EndpointAddress>)> =
        BTreeMap::new();
    for (a, ports) in addrs {
        let g = groups.entry(ports).or_default();
        if a.ready {
            g.0.push(a.addr);
        } else {
            g.1.push(a.addr);
        }
    }
    groups
        .into_iter()
        .map(|(ports, (mut ready, mut not_ready))| {
            ready.sort_by_key(addr_sort_key);
            not_ready.sort_by_key(addr_sort_key);
            EndpointSubset {
                addresses: Some(ready).filter(|v| !v.is_empty()),
                not_ready_addresses: Some(not_ready).filter(|v| !v.is_empty()),
                ports: Some(ports.iter().map(port_of).collect::<Vec<_>>())
                    .filter(|v| !v.is_empty()),
            }
        })
        .collect()
}

/// Cut `subsets` down to [`MAX_CAPACITY`] addresses, keeping ready ones first; returns
/// whether anything was cut.
pub fn truncate(subsets: &mut Vec<EndpointSubset>) -> bool {
    let len = |v: &Option<Vec<EndpointAddress>>| v.as_ref().map_or(0, Vec::len);
    let total: usize = subsets
        .iter()
        .map(|s| len(&s.addresses) + len(&s.not_ready_addresses))
        .sum();
    if total <= MAX_CAPACITY {
        return false;
    }
    let mut budget = MAX_CAPACITY;
    for s in subsets.iter_mut() {
        if let Some(a) = s.addresses.as_mut() {
            a.truncate(budget);
            budget -= a.len();
        }
    }
    for s in subsets.iter_mut() {
        if let Some(a) = s.not_ready_addresses.as_mut() {
            a.truncate(budget);
            budget -= a.len();
        }
    }
    for s in subsets.iter_mut() {
        if s.addresses.as_ref().is_some_and(Vec::is_empty) {
            s.addresses = None;
        }
        if s.not_ready_addresses.as_ref().is_some_and(Vec::is_empty) {
            s.not_ready_addresses = None;
        }
    }
    subsets.retain(|s| s.addresses.is_some() || s.not_ready_addresses.is_some());
    true
}

/// The labels the Endpoints object should carry: the service's, plus the headless marker.
pub fn desired_labels(svc: &Service) -> BTreeMap<String, String> {
    let mut labels = svc.metadata.labels.clone().unwrap_or_default();
    labels.remove(HEADLESS_LABEL);
    if pods::is_headless(svc) {
        labels.insert(HEADLESS_LABEL.into(), String::new());
    }
    labels
}

/// Whether `current` already says what we want.
pub fn up_to_date(
    current: &Endpoints,
    subsets: &[EndpointSubset],
    labels: &BTreeMap<String, String>,
    truncated: bool,
) -> bool {
    let cur_subsets = current.subsets.clone().unwrap_or_default();
    let cur_labels = current.metadata.labels.clone().unwrap_or_default();
    let cur_truncated = current
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(OVER_CAPACITY_ANNOTATION));
    cur_subsets == subsets && &cur_labels == labels && cur_truncated == truncated
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodSpec, PodStatus, ServicePort, ServiceSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn pod(name: &str, ip: &str, ready: bool) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                uid: Some(format!("uid-{name}")),
                ..Default::default()
            },
            spec: Some(PodSpec::default()),
            status: Some(PodStatus {
                pod_ip: Some(ip.into()),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        }
    }

    fn svc(publish: bool) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some("s".into()),
                namespace: Some("ns".into()),
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
                publish_not_ready_addresses: Some(publish),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn ready_and_not_ready_split() {
        let a = pod("a", "10.42.0.2", true);
        let b = pod("b", "10.42.0.1", false);
        let subsets = desired_subsets(&svc(false), &[&a, &b]);
        assert_eq!(subsets.len(), 1);
        let s = &subsets[0];
        assert_eq!(s.addresses.as_ref().map(|v| v.len()), Some(1));
        assert_eq!(
            s.not_ready_addresses.as_ref().map(|v| v[0].ip.as_str()),
            Some("10.42.0.1")
        );
        assert_eq!(s.ports.as_ref().map(|p| p[0].port), Some(80));
        // publishNotReadyAddresses: all ready.
        let subsets = desired_subsets(&svc(true), &[&a, &b]);
        assert_eq!(subsets[0].addresses.as_ref().map(|v| v.len()), Some(2));
        assert!(subsets[0].not_ready_addresses.is_none());
    }

    #[test]
    fn truncates_to_capacity_keeping_ready_first() {
        let pods: Vec<Pod> = (0..1100)
            .map(|i| {
                pod(
                    &format!("p{i}"),
                    &format!("10.1.{}.{}", i / 250, i % 250),
                    i % 2 == 0,
                )
            })
            .collect();
        let refs: Vec<&Pod> = pods.iter().collect();
        let mut subsets = desired_subsets(&svc(false), &refs);
        assert!(truncate(&mut subsets));
        let s = &subsets[0];
        assert_eq!(s.addresses.as_ref().map(Vec::len), Some(550));
        assert_eq!(s.not_ready_addresses.as_ref().map(Vec::len), Some(450));
        assert!(!truncate(&mut subsets));
    }

    #[test]
    fn headless_without_ports() {
        let mut s = svc(false);
        if let Some(spec) = s.spec.as_mut() {
            spec.cluster_ip = Some("None".into());
            spec.ports = None;
        }
        let a = pod("a", "10.42.0.2", true);
        let subsets = desired_subsets(&s, &[&a]);
        assert_eq!(subsets.len(), 1);
        assert!(subsets[0].ports.is_none());
        assert_eq!(
            desired_labels(&s).get(HEADLESS_LABEL).map(String::as_str),
            Some("")
        );
    }
}
