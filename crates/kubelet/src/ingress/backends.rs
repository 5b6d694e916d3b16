//! The ready endpoints of the Services the routing table names, from their EndpointSlices,
//! handed out round-robin.

use super::routes::{BackendRef, PortRef};
use k8s_openapi::api::core::v1::{Service, ServicePort};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The label tying an EndpointSlice to its Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// The ready addresses of one backend.
#[derive(Debug, Default)]
pub struct Upstream {
    addrs: Vec<SocketAddr>,
    next: AtomicUsize,
}

impl Upstream {
    fn new(mut addrs: Vec<SocketAddr>) -> Upstream {
        addrs.sort_unstable();
        addrs.dedup();
        // A random start, so rebuilds (which reset the turn) do not favour the first.
        let start = if addrs.is_empty() {
            0
        } else {
            rand::random_range(0..addrs.len())
        };
        Upstream {
            addrs,
            next: AtomicUsize::new(start),
        }
    }

    /// Every address once, starting with the next one in turn (later ones are fallbacks
    /// when a connection fails).
    pub fn candidates(&self) -> Vec<SocketAddr> {
        if self.addrs.is_empty() {
            return Vec::new();
        }
        let first = self.next.fetch_add(1, Ordering::Relaxed) % self.addrs.len();
        let (a, b) = self.addrs.split_at(first);
        b.iter().chain(a).copied().collect()
    }
}

/// Backends by reference; a backend missing here has no ready endpoint.
pub type Upstreams = HashMap<BackendRef, Upstream>;

/// Whether a Service port is the one `port` names.
fn names(sp: &ServicePort, port: &PortRef) -> bool {
    match port {
        PortRef::Number(n) => sp.port == *n,
        PortRef::Name(name) => sp.name.as_deref() == Some(name.as_str()),
    }
}

/// Resolve each backend to the ready endpoint addresses of its Service port: the
/// EndpointSlice port with the Service port's name (the EndpointSlice controller names
/// them so), which carries the target port number.
pub fn resolve<'a>(
    backends: impl Iterator<Item = &'a BackendRef>,
    services: &[Arc<Service>],
    slices: &[Arc<EndpointSlice>],
) -> Upstreams {
    let services: HashMap<(&str, &str), &Service> = services
        .iter()
        .filter_map(|s| {
            let m = &s.metadata;
            Some(((m.namespace.as_deref()?, m.name.as_deref()?), &**s))
        })
        .collect();
    let mut by_service: HashMap<(&str, &str), Vec<&EndpointSlice>> = HashMap::new();
    for slice in slices {
        let m = &slice.metadata;
        if let (Some(ns), Some(svc)) = (
            m.namespace.as_deref(),
            m.labels.as_ref().and_then(|l| l.get(SERVICE_NAME_LABEL)),
        ) {
            by_service.entry((ns, svc)).or_default().push(slice);
        }
    }
    let mut out = Upstreams::new();
    for backend in backends {
        if out.contains_key(backend) {
            continue;
        }
        let key = (backend.namespace.as_str(), backend.service.as_str());
        let port = services
            .get(&key)
            .and_then(|s| s.spec.as_ref())
            .filter(|spec| spec.type_.as_deref() != Some("ExternalName"))
            .and_then(|spec| spec.ports.as_ref())
            .and_then(|ports| ports.iter().find(|p| names(p, &backend.port)));
        let Some(port) = port else { continue };
        let port_name = port.name.as_deref().unwrap_or("");
        let mut addrs = Vec::new();
        for slice in by_service.get(&key).into_iter().flatten() {
            let number = slice.ports.iter().flatten().find_map(|p| {
                let tcp = p.protocol.as_deref().unwrap_or("TCP") == "TCP";
                (tcp && p.name.as_deref().unwrap_or("") == port_name)
                    .then_some(p.port)
                    .flatten()
            });
            let Some(number) = number.and_then(|n| u16::try_from(n).ok()) else {
                continue;
            };
            for ep in &slice.endpoints {
                // Unset readiness means ready (EndpointSlice API).
                let ready = ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
                // Every address of an endpoint is the same pod: the first is enough.
                let ip = ep.addresses.first().and_then(|a| a.parse::<IpAddr>().ok());
                if let (true, Some(ip)) = (ready, ip) {
                    addrs.push(SocketAddr::new(ip, number));
                }
            }
        }
        out.insert(backend.clone(), Upstream::new(addrs));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn backend(port: PortRef) -> BackendRef {
        BackendRef {
            namespace: "default".into(),
            service: "web".into(),
            port,
        }
    }

    fn objects() -> (Vec<Arc<Service>>, Vec<Arc<EndpointSlice>>) {
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080},
                               {"name": "admin", "port": 9000, "targetPort": 9090}]}
        }))
        .unwrap();
        let slice = |name: &str, ip: &str, ready: Option<bool>, port: i32| {
            let mut ep = json!({"addresses": [ip]});
            if let Some(r) = ready {
                ep["conditions"] = json!({"ready": r});
            }
            let s: EndpointSlice = serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "default",
                             "labels": {"kubernetes.io/service-name": "web"}},
                "addressType": "IPv4",
                "endpoints": [ep],
                "ports": [{"name": "http", "port": port}, {"name": "admin", "port": 9090}]
            }))
            .unwrap();
            Arc::new(s)
        };
        (
            vec![Arc::new(svc)],
            vec![
                slice("a", "10.0.0.1", Some(true), 8080),
                slice("b", "10.0.0.2", None, 8081),
                slice("c", "10.0.0.3", Some(false), 8080),
            ],
        )
    }

    #[test]
    fn ready_endpoints_of_the_named_port() {
        let (svcs, slices) = objects();
        let wanted = [
            backend(PortRef::Number(80)),
            backend(PortRef::Name("admin".into())),
            backend(PortRef::Number(81)),
        ];
        let up = resolve(wanted.iter(), &svcs, &slices);
        let mut http = up[&wanted[0]].candidates();
        http.sort_unstable();
        let want: Vec<SocketAddr> = vec![
            "10.0.0.1:8080".parse().unwrap(),
            "10.0.0.2:8081".parse().unwrap(),
        ];
        assert_eq!(http, want);
        assert_eq!(up[&wanted[1]].candidates().len(), 2);
        assert!(!up.contains_key(&wanted[2]), "no such Service port");
    }

    #[test]
    fn candidates_rotate() {
        let u = Upstream::new(vec![
            "10.0.0.1:80".parse().unwrap(),
            "10.0.0.2:80".parse().unwrap(),
        ]);
        let a = u.candidates();
        let b = u.candidates();
        assert_eq!(a.len(), 2);
        assert_ne!(a[0], b[0]);
        assert_eq!(a[0], b[1]);
        assert!(Upstream::new(Vec::new()).candidates().is_empty());
    }
}
