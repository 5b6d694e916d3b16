//! Pod helpers shared by the Endpoints and EndpointSlice reconcilers (upstream
//! `podutil`/`endpointsliceutil`): readiness, membership, port resolution, addresses.

use k8s_openapi::api::core::v1::{ObjectReference, Pod, Service, ServicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;

/// The pod's Ready condition is True.
pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Whether the pod belongs in a service's endpoints at all: it has an IP, is not finished
/// for good, and (unless `include_terminating`) is not being deleted.
pub fn should_be_in_endpoints(pod: &Pod, include_terminating: bool) -> bool {
    let status = pod.status.as_ref();
    let has_ip = status.is_some_and(|s| {
        s.pod_ip.as_deref().is_some_and(|ip| !ip.is_empty())
            || s.pod_ips.as_ref().is_some_and(|ips| !ips.is_empty())
    });
    if !has_ip {
        return false;
    }
    if !include_terminating && pod.metadata.deletion_timestamp.is_some() {
        return false;
    }
    let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("");
    match pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref()) {
        Some("Never") => phase != "Failed" && phase != "Succeeded",
        Some("OnFailure") => phase != "Succeeded",
        _ => true,
    }
}

/// Whether `labels` satisfy the service's equality selector.
pub fn selector_matches(
    selector: &BTreeMap<String, String>,
    labels: Option<&BTreeMap<String, String>>,
) -> bool {
    selector
        .iter()
        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

fn protocol(p: Option<&str>) -> &str {
    p.filter(|p| !p.is_empty()).unwrap_or("TCP")
}

/// The pod port a service port targets: a number as is, a name looked up among the
/// containers' (and restartable init containers') named ports of the same protocol.
pub fn find_port(pod: &Pod, sp: &ServicePort) -> Option<i32> {
    match &sp.target_port {
        None => Some(sp.port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => {
            if let Ok(n) = name.parse::<i32>() {
                return Some(n);
            }
            let spec = pod.spec.as_ref()?;
            let sidecars = spec
                .init_containers
                .iter()
                .flatten()
                .filter(|c| c.restart_policy.as_deref() == Some("Always"));
            spec.containers
                .iter()
                .chain(sidecars)
                .flat_map(|c| c.ports.iter().flatten())
                .find(|p| {
                    p.name.as_deref() == Some(name.as_str())
                        && protocol(p.protocol.as_deref()) == protocol(sp.protocol.as_deref())
                })
                .map(|p| p.container_port)
        }
    }
}

/// The IP family of an address.
pub fn family_of(ip: &str) -> &'static str {
    if ip.contains(':') { "IPv6" } else { "IPv4" }
}

/// The pod's IP of `family`, if it has one.
pub fn pod_ip_of_family(pod: &Pod, family: &str) -> Option<String> {
    let status = pod.status.as_ref()?;
    let mut ips: Vec<String> = status
        .pod_ips
        .iter()
        .flatten()
        .map(|p| p.ip.clone())
        .collect();
    if let Some(ip) = &status.pod_ip {
        ips.insert(0, ip.clone());
    }
    ips.into_iter()
        .find(|ip| !ip.is_empty() && family_of(ip) == family)
}

/// The service's primary IP family (spec.ipFamilies, else the cluster IP's, else IPv4).
pub fn service_family(svc: &Service) -> String {
    let spec = svc.spec.as_ref();
    if let Some(f) = spec
        .and_then(|s| s.ip_families.as_ref())
        .and_then(|f| f.first())
    {
        return f.clone();
    }
    match spec.and_then(|s| s.cluster_ip.as_deref()) {
        Some(ip) if !ip.is_empty() && ip != "None" => family_of(ip).to_string(),
        _ => "IPv4".to_string(),
    }
}

/// A service without a cluster IP.
pub fn is_headless(svc: &Service) -> bool {
    svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None")
}

/// The pod's hostname is published if its subdomain names the service.
pub fn hostname_for(pod: &Pod, svc: &Service) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    let host = spec.hostname.as_deref().filter(|h| !h.is_empty())?;
    (spec.subdomain.as_deref() == svc.metadata.name.as_deref()
        && pod.metadata.namespace == svc.metadata.namespace)
        .then(|| host.to_string())
}

/// The node a pod runs on, if any.
pub fn node_name(pod: &Pod) -> Option<String> {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .filter(|n| !n.is_empty())
}

/// A reference to the pod for `targetRef`.
pub fn target_ref(pod: &Pod) -> ObjectReference {
    ObjectReference {
        kind: Some("Pod".into()),
        namespace: pod.metadata.namespace.clone(),
        name: pod.metadata.name.clone(),
        uid: pod.metadata.uid.clone(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, ContainerPort, PodCondition, PodSpec, PodStatus};

    fn pod() -> Pod {
        Pod {
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "c".into(),
                    ports: Some(vec![
                        ContainerPort {
                            name: Some("http".into()),
                            container_port: 8080,
                            ..Default::default()
                        },
                        ContainerPort {
                            name: Some("dns".into()),
                            container_port: 53,
                            protocol: Some("UDP".into()),
                            ..Default::default()
                        },
                    ]),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            status: Some(PodStatus {
                pod_ip: Some("10.42.0.5".into()),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn sp(target: Option<IntOrString>, proto: &str) -> ServicePort {
        ServicePort {
            port: 80,
            target_port: target,
            protocol: Some(proto.into()),
            ..Default::default()
        }
    }

    #[test]
    fn ports_resolve_by_name_and_protocol() {
        let p = pod();
        assert_eq!(
            find_port(&p, &sp(Some(IntOrString::String("http".into())), "TCP")),
            Some(8080)
        );
        assert_eq!(
            find_port(&p, &sp(Some(IntOrString::String("http".into())), "UDP")),
            None
        );
        assert_eq!(
            find_port(&p, &sp(Some(IntOrString::String("dns".into())), "UDP")),
            Some(53)
        );
        assert_eq!(
            find_port(&p, &sp(Some(IntOrString::Int(9000)), "TCP")),
            Some(9000)
        );
        assert_eq!(find_port(&p, &sp(None, "TCP")), Some(80));
    }

    #[test]
    fn readiness_and_membership() {
        let mut p = pod();
        assert!(is_ready(&p));
        assert!(should_be_in_endpoints(&p, false));
        if let Some(s) = p.spec.as_mut() {
            s.restart_policy = Some("Never".into());
        }
        if let Some(s) = p.status.as_mut() {
            s.phase = Some("Succeeded".into());
        }
        assert!(!should_be_in_endpoints(&p, true));
        if let Some(s) = p.status.as_mut() {
            s.pod_ip = None;
            s.phase = Some("Running".into());
        }
        assert!(!should_be_in_endpoints(&p, true));
    }

    #[test]
    fn families() {
        assert_eq!(family_of("10.0.0.1"), "IPv4");
        assert_eq!(family_of("fd00::1"), "IPv6");
        assert_eq!(
            pod_ip_of_family(&pod(), "IPv4").as_deref(),
            Some("10.42.0.5")
        );
        assert_eq!(pod_ip_of_family(&pod(), "IPv6"), None);
    }
}
