//! Cluster DNS names (upstream's DNS specification, as CoreDNS's `kubernetes` plugin
//! answers them), from the Services and EndpointSlices (pure; `answer.rs` turns them into
//! messages):
//!
//! - `<service>.<ns>.svc.<domain>`: the ClusterIPs, for a headless Service the addresses
//!   of its ready endpoints (no such name while it has none), for an ExternalName Service
//!   a CNAME to its `externalName`; SRV records for every port;
//! - `_<port>._<proto>.<service>.<ns>.svc.<domain>`: SRV records for that named port
//!   (`srv.rs`);
//! - `<endpoint>.<service>.<ns>.svc.<domain>`: a ready endpoint by hostname (a StatefulSet
//!   pod behind its headless Service) or, without one, by its dashed address;
//! - `<a>-<b>-<c>-<d>.<ns>.pod.<domain>`: that address (CoreDNS's `pods insecure`);
//! - `dns-version.<domain>` (TXT, the schema version) and `ns.dns.<domain>` (the
//!   `kube-dns` ClusterIP);
//! - the domain itself, `svc.<domain>`, `pod.<domain>` and `<ns>.svc|pod.<domain>` exist
//!   without records; other names under the domain do not exist; names outside it are not
//!   ours.

use super::srv::{self, Ports, Srv};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointSlice};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

/// The schema version of upstream's specification that these names follow (CoreDNS's).
pub const SCHEMA_VERSION: &str = "1.1.0";

/// What the cluster's DNS says about a name.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup {
    /// The name exists with these records (possibly none: NODATA).
    Found(Node),
    /// Under the cluster domain, but no such name (NXDOMAIN).
    Missing,
    /// Outside the cluster domain: ask the node's resolvers.
    NotOurs,
}

/// The records of one existing name.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Node {
    /// A and AAAA records.
    pub addrs: Vec<IpAddr>,
    /// SRV records.
    pub srv: Vec<Srv>,
    /// An alias (an ExternalName Service): the only record of the name.
    pub cname: Option<String>,
    /// TXT records.
    pub txt: Vec<String>,
}

impl Node {
    fn addrs(addrs: Vec<IpAddr>) -> Lookup {
        Lookup::Found(Node {
            addrs,
            ..Node::default()
        })
    }
}

/// How a Service is addressed.
pub(super) enum Kind<'a> {
    /// Through its ClusterIPs.
    ClusterIp(Vec<IpAddr>),
    /// Directly at its endpoints.
    Headless,
    /// An alias of another name.
    External(&'a str),
}

pub(super) fn kind(service: &Service) -> Kind<'_> {
    let Some(spec) = service.spec.as_ref() else {
        return Kind::Headless;
    };
    if spec.type_.as_deref() == Some("ExternalName") {
        return Kind::External(spec.external_name.as_deref().unwrap_or(""));
    }
    let ips: Vec<IpAddr> = match spec.cluster_ips.as_deref() {
        Some(ips) if !ips.is_empty() => ips.iter().filter_map(|ip| ip.parse().ok()).collect(),
        _ => spec
            .cluster_ip
            .as_deref()
            .and_then(|ip| ip.parse().ok())
            .into_iter()
            .collect(),
    };
    if ips.is_empty() {
        Kind::Headless
    } else {
        Kind::ClusterIp(ips)
    }
}

pub(super) fn find_service<'a>(
    services: &'a [Arc<Service>],
    ns: &str,
    name: &str,
) -> Option<&'a Service> {
    services
        .iter()
        .find(|s| {
            s.metadata.namespace.as_deref() == Some(ns) && s.metadata.name.as_deref() == Some(name)
        })
        .map(|s| &**s)
}

/// The Service an EndpointSlice belongs to, as `(namespace, name)`.
pub(super) fn owner(slice: &EndpointSlice) -> Option<(&str, &str)> {
    let ns = slice.metadata.namespace.as_deref()?;
    let svc = slice
        .metadata
        .labels
        .as_ref()?
        .get("kubernetes.io/service-name")?;
    Some((ns, svc.as_str()))
}

/// Whether a slice holds IP addresses (not FQDNs).
pub(super) fn holds_ips(slice: &EndpointSlice) -> bool {
    slice.address_type == "IPv4" || slice.address_type == "IPv6"
}

/// Ready endpoints (an unset condition means ready, as upstream's consumers read it;
/// with `publishNotReadyAddresses` the controller marks every endpoint ready).
pub(super) fn ready(ep: &Endpoint) -> bool {
    ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true)
}

/// The ready endpoints of Service `ns/svc`, with their slice (for its ports).
pub(super) fn ready_endpoints<'a>(
    slices: &'a [Arc<EndpointSlice>],
    ns: &'a str,
    svc: &'a str,
) -> impl Iterator<Item = (&'a EndpointSlice, &'a Endpoint)> {
    slices
        .iter()
        .filter(move |s| holds_ips(s) && owner(s) == Some((ns, svc)))
        .flat_map(|s| s.endpoints.iter().map(move |e| (&**s, e)))
        .filter(|(_, e)| ready(e))
}

/// An address as one DNS label: `10-42-0-7`, `fd00--7` (CoreDNS's form).
pub(super) fn dashed(ip: &IpAddr) -> String {
    ip.to_string().replace(['.', ':'], "-")
}

/// The address a dashed label stands for.
fn undashed(label: &str) -> Option<IpAddr> {
    if label.matches('-').count() == 3 && !label.contains("--") {
        label
            .replace('-', ".")
            .parse::<Ipv4Addr>()
            .ok()
            .map(IpAddr::V4)
    } else {
        label
            .replace('-', ":")
            .parse::<Ipv6Addr>()
            .ok()
            .map(IpAddr::V6)
    }
}

/// The addresses of an endpoint.
pub(super) fn addresses(ep: &Endpoint) -> impl Iterator<Item = IpAddr> + '_ {
    ep.addresses.iter().filter_map(|a| a.parse().ok())
}

/// The names of an endpoint under its Service, with the addresses each stands for: its
/// hostname (all its addresses) or, without one, each address dashed.
pub(super) fn endpoint_names(ep: &Endpoint) -> Vec<(String, Vec<IpAddr>)> {
    match ep.hostname.as_deref() {
        Some(host) if !host.is_empty() => {
            vec![(host.to_ascii_lowercase(), addresses(ep).collect())]
        }
        _ => addresses(ep).map(|ip| (dashed(&ip), vec![ip])).collect(),
    }
}

fn sorted(mut ips: Vec<IpAddr>) -> Vec<IpAddr> {
    ips.sort();
    ips.dedup();
    ips
}

/// Look `name` (any case, with or without the trailing dot) up under `domain`, in the
/// watch caches' objects as they are (no copies per query).
pub fn lookup(
    name: &str,
    domain: &str,
    services: &[Arc<Service>],
    slices: &[Arc<EndpointSlice>],
) -> Lookup {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    let Some(rest) = name
        .strip_suffix(&domain)
        .and_then(|r| r.strip_suffix('.').or(r.is_empty().then_some("")))
    else {
        return Lookup::NotOurs;
    };
    let labels: Vec<&str> = if rest.is_empty() {
        Vec::new()
    } else {
        rest.split('.').collect()
    };
    match labels.as_slice() {
        // The domain and the branches above the objects exist, without records.
        [] | ["svc" | "pod" | "dns"] | [_, "svc" | "pod"] => Lookup::Found(Node::default()),
        ["dns-version"] => Lookup::Found(Node {
            txt: vec![SCHEMA_VERSION.to_string()],
            ..Node::default()
        }),
        ["ns", "dns"] => match find_service(services, "kube-system", "kube-dns").map(kind) {
            Some(Kind::ClusterIp(ips)) => Node::addrs(ips),
            _ => Lookup::Missing,
        },
        [svc, ns, "svc"] => service(svc, ns, &domain, services, slices),
        [port, proto, svc, ns, "svc"] => {
            let (Some(port), Some(proto)) = (port.strip_prefix('_'), proto.strip_prefix('_'))
            else {
                return Lookup::Missing;
            };
            named_port(port, proto, svc, ns, &domain, services, slices)
        }
        [endpoint, svc, ns, "svc"] => endpoint_lookup(endpoint, svc, ns, &domain, services, slices),
        [ip, _, "pod"] => undashed(ip).map_or(Lookup::Missing, |ip| Node::addrs(vec![ip])),
        _ => Lookup::Missing,
    }
}

/// `<svc>.<ns>.svc.<domain>`.
fn service(
    svc: &str,
    ns: &str,
    domain: &str,
    services: &[Arc<Service>],
    slices: &[Arc<EndpointSlice>],
) -> Lookup {
    let Some(service) = find_service(services, ns, svc) else {
        return Lookup::Missing;
    };
    match kind(service) {
        Kind::External(target) => external(target),
        Kind::ClusterIp(ips) => Lookup::Found(Node {
            srv: srv::cluster_ip(service, &Ports::All, svc, ns, domain, &ips),
            addrs: ips,
            ..Node::default()
        }),
        Kind::Headless => {
            let addrs = sorted(
                ready_endpoints(slices, ns, svc)
                    .flat_map(|(_, e)| addresses(e))
                    .collect(),
            );
            if addrs.is_empty() {
                // Upstream's specification: no ready endpoints, no name.
                return Lookup::Missing;
            }
            Lookup::Found(Node {
                srv: srv::headless(slices, &Ports::All, svc, ns, domain),
                addrs,
                ..Node::default()
            })
        }
    }
}

/// An ExternalName Service: an alias of its target (an IP there is no name: CoreDNS
/// skips it too).
fn external(target: &str) -> Lookup {
    let target = target.trim_end_matches('.');
    if target.is_empty() || target.parse::<IpAddr>().is_ok() {
        return Lookup::Missing;
    }
    Lookup::Found(Node {
        cname: Some(target.to_ascii_lowercase()),
        ..Node::default()
    })
}

/// `_<port>._<proto>.<svc>.<ns>.svc.<domain>`: SRV records of that port, and the
/// addresses behind it.
fn named_port(
    port: &str,
    proto: &str,
    svc: &str,
    ns: &str,
    domain: &str,
    services: &[Arc<Service>],
    slices: &[Arc<EndpointSlice>],
) -> Lookup {
    let Some(service) = find_service(services, ns, svc) else {
        return Lookup::Missing;
    };
    let ports = Ports::Named { name: port, proto };
    let (srv, addrs) = match kind(service) {
        Kind::External(_) => return Lookup::Missing,
        Kind::ClusterIp(ips) => (srv::cluster_ip(service, &ports, svc, ns, domain, &ips), ips),
        Kind::Headless => {
            let srv = srv::headless(slices, &ports, svc, ns, domain);
            let addrs = sorted(srv.iter().flat_map(|s| s.addrs.iter().copied()).collect());
            (srv, addrs)
        }
    };
    if srv.is_empty() {
        return Lookup::Missing;
    }
    Lookup::Found(Node {
        addrs,
        srv,
        ..Node::default()
    })
}

/// `<endpoint>.<svc>.<ns>.svc.<domain>`: a ready endpoint of the Service by hostname or
/// dashed address (any Service but an ExternalName one, as CoreDNS).
fn endpoint_lookup(
    endpoint: &str,
    svc: &str,
    ns: &str,
    domain: &str,
    services: &[Arc<Service>],
    slices: &[Arc<EndpointSlice>],
) -> Lookup {
    match find_service(services, ns, svc).map(kind) {
        None | Some(Kind::External(_)) => return Lookup::Missing,
        Some(_) => {}
    }
    let mut addrs = Vec::new();
    let mut srv = Vec::new();
    for (slice, ep) in ready_endpoints(slices, ns, svc) {
        for (name, ips) in endpoint_names(ep) {
            if name == endpoint {
                srv.extend(srv::endpoint(
                    slice,
                    &Ports::All,
                    &name,
                    svc,
                    ns,
                    domain,
                    &ips,
                ));
                addrs.extend(ips);
            }
        }
    }
    if addrs.is_empty() {
        return Lookup::Missing;
    }
    srv.dedup();
    Lookup::Found(Node {
        addrs: sorted(addrs),
        srv,
        ..Node::default()
    })
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use serde_json::json;

    pub fn services() -> Vec<Arc<Service>> {
        [
            json!({"metadata": {"name": "web", "namespace": "default"},
                "spec": {"clusterIP": "10.43.0.20", "clusterIPs": ["10.43.0.20"], "ports": [
                    {"name": "http", "port": 80, "protocol": "TCP"},
                    {"name": "dns", "port": 53, "protocol": "UDP"}]}}),
            json!({"metadata": {"name": "db", "namespace": "prod"},
                "spec": {"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]}}),
            json!({"metadata": {"name": "empty", "namespace": "prod"},
                "spec": {"clusterIP": "None"}}),
            json!({"metadata": {"name": "dual", "namespace": "default"},
                "spec": {"clusterIP": "10.43.0.30", "clusterIPs": ["10.43.0.30", "fd00:43::30"],
                         "ports": [{"port": 443}]}}),
            json!({"metadata": {"name": "ext", "namespace": "default"},
                "spec": {"type": "ExternalName", "externalName": "www.Example.com."}}),
            json!({"metadata": {"name": "alias", "namespace": "default"},
                "spec": {"type": "ExternalName", "externalName": "web.default.svc.cluster.local"}}),
            json!({"metadata": {"name": "kube-dns", "namespace": "kube-system"},
                "spec": {"clusterIP": "10.43.0.10", "ports": [
                    {"name": "dns", "port": 53, "protocol": "UDP"},
                    {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]}}),
        ]
        .into_iter()
        .map(|v| Arc::new(serde_json::from_value(v).unwrap()))
        .collect()
    }

    pub fn slices() -> Vec<Arc<EndpointSlice>> {
        [
            json!({
                "metadata": {"name": "db-1", "namespace": "prod",
                             "labels": {"kubernetes.io/service-name": "db"}},
                "addressType": "IPv4",
                "ports": [{"name": "pg", "port": 5433, "protocol": "TCP"}],
                "endpoints": [
                    {"addresses": ["10.42.0.7"], "hostname": "db-0", "conditions": {"ready": true}},
                    {"addresses": ["10.42.0.8"], "hostname": "db-1", "conditions": {"ready": false}},
                    {"addresses": ["10.42.0.9"]}
                ]
            }),
            json!({
                "metadata": {"name": "web-1", "namespace": "default",
                             "labels": {"kubernetes.io/service-name": "web"}},
                "addressType": "IPv4",
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
                "endpoints": [{"addresses": ["10.42.0.5"], "conditions": {"ready": true}}]
            }),
            json!({
                "metadata": {"name": "empty-1", "namespace": "prod",
                             "labels": {"kubernetes.io/service-name": "empty"}},
                "addressType": "IPv4",
                "endpoints": [{"addresses": ["10.42.0.11"], "conditions": {"ready": false}}]
            }),
        ]
        .into_iter()
        .map(|v| Arc::new(serde_json::from_value(v).unwrap()))
        .collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn find(name: &str) -> Lookup {
        lookup(name, "cluster.local", &services(), &slices())
    }

    fn addrs(name: &str) -> Vec<IpAddr> {
        match find(name) {
            Lookup::Found(node) => node.addrs,
            other => panic!("{name}: {other:?}"),
        }
    }

    fn srv_of(name: &str) -> Vec<(u16, String)> {
        match find(name) {
            Lookup::Found(node) => node.srv.into_iter().map(|s| (s.port, s.target)).collect(),
            other => panic!("{name}: {other:?}"),
        }
    }

    #[test]
    fn services_headless_services_and_their_pods() {
        assert_eq!(addrs("web.default.svc.cluster.local."), [ip("10.43.0.20")]);
        assert_eq!(addrs("WEB.Default.svc.cluster.local"), [ip("10.43.0.20")]);
        assert_eq!(
            addrs("dual.default.svc.cluster.local"),
            [ip("10.43.0.30"), ip("fd00:43::30")]
        );
        // Headless: ready endpoints only (an unset condition is ready).
        assert_eq!(
            addrs("db.prod.svc.cluster.local"),
            [ip("10.42.0.7"), ip("10.42.0.9")]
        );
        // A StatefulSet pod by hostname; another endpoint by its dashed address.
        assert_eq!(addrs("db-0.db.prod.svc.cluster.local"), [ip("10.42.0.7")]);
        assert_eq!(
            addrs("10-42-0-9.db.prod.svc.cluster.local"),
            [ip("10.42.0.9")]
        );
        // An endpoint of a ClusterIP Service has a name too (CoreDNS).
        assert_eq!(
            addrs("10-42-0-5.web.default.svc.cluster.local"),
            [ip("10.42.0.5")]
        );
        // Not ready: no name (upstream's specification; publishNotReadyAddresses makes
        // endpoints ready).
        assert_eq!(find("db-1.db.prod.svc.cluster.local"), Lookup::Missing);
        assert_eq!(find("db-9.db.prod.svc.cluster.local"), Lookup::Missing);
        assert_eq!(find("db-0.nope.prod.svc.cluster.local"), Lookup::Missing);
        // A headless Service without ready endpoints does not exist (the specification).
        assert_eq!(find("empty.prod.svc.cluster.local"), Lookup::Missing);
        assert_eq!(find("nope.default.svc.cluster.local"), Lookup::Missing);
        assert_eq!(
            find("prod.svc.cluster.local"),
            Lookup::Found(Node::default())
        );
        assert_eq!(find("svc.cluster.local"), Lookup::Found(Node::default()));
        assert_eq!(find("cluster.local."), Lookup::Found(Node::default()));
        assert_eq!(find("a.b.c.d.e.f.svc.cluster.local"), Lookup::Missing);
        assert_eq!(find("web.default.other.cluster.local"), Lookup::Missing);
        assert_eq!(find("example.org"), Lookup::NotOurs);
        assert_eq!(find("notcluster.local"), Lookup::NotOurs);
    }

    #[test]
    fn srv_records_per_port_and_endpoint() {
        // A ClusterIP Service: each port, pointing at the Service.
        assert_eq!(
            srv_of("web.default.svc.cluster.local"),
            [
                (80, "web.default.svc.cluster.local.".to_string()),
                (53, "web.default.svc.cluster.local.".to_string())
            ]
        );
        assert_eq!(
            srv_of("_http._tcp.web.default.svc.cluster.local"),
            [(80, "web.default.svc.cluster.local.".to_string())]
        );
        assert_eq!(
            srv_of("_DNS._UDP.web.default.svc.cluster.local"),
            [(53, "web.default.svc.cluster.local.".to_string())]
        );
        assert_eq!(
            find("_http._udp.web.default.svc.cluster.local"),
            Lookup::Missing
        );
        assert_eq!(
            find("_nope._tcp.web.default.svc.cluster.local"),
            Lookup::Missing
        );
        assert_eq!(
            find("http.tcp.web.default.svc.cluster.local"),
            Lookup::Missing
        );
        // The port's name also answers A (CoreDNS).
        assert_eq!(
            addrs("_http._tcp.web.default.svc.cluster.local"),
            [ip("10.43.0.20")]
        );
        // Headless: one per ready endpoint, at the endpoints' port, named by hostname or
        // dashed address; an unset protocol is TCP.
        assert_eq!(
            srv_of("_pg._tcp.db.prod.svc.cluster.local"),
            [
                (5433, "db-0.db.prod.svc.cluster.local.".to_string()),
                (5433, "10-42-0-9.db.prod.svc.cluster.local.".to_string())
            ]
        );
        assert_eq!(
            srv_of("db-0.db.prod.svc.cluster.local"),
            [(5433, "db-0.db.prod.svc.cluster.local.".to_string())]
        );
        // Unnamed ports have no `_port._proto` name but are in the Service's own SRV set.
        assert_eq!(
            srv_of("dual.default.svc.cluster.local"),
            [(443, "dual.default.svc.cluster.local.".to_string())]
        );
    }

    #[test]
    fn external_names_pods_and_zone_records() {
        match find("ext.default.svc.cluster.local") {
            Lookup::Found(node) => {
                assert_eq!(node.cname.as_deref(), Some("www.example.com"));
                assert!(node.addrs.is_empty());
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            find("_http._tcp.ext.default.svc.cluster.local"),
            Lookup::Missing
        );
        assert_eq!(addrs("10-42-0-7.prod.pod.cluster.local"), [ip("10.42.0.7")]);
        assert_eq!(addrs("fd00--7.prod.pod.cluster.local"), [ip("fd00::7")]);
        assert_eq!(find("10-42-0.prod.pod.cluster.local"), Lookup::Missing);
        assert_eq!(find("300-1-1-1.prod.pod.cluster.local"), Lookup::Missing);
        assert_eq!(
            find("prod.pod.cluster.local"),
            Lookup::Found(Node::default())
        );
        assert_eq!(addrs("ns.dns.cluster.local"), [ip("10.43.0.10")]);
        match find("dns-version.cluster.local") {
            Lookup::Found(node) => assert_eq!(node.txt, [SCHEMA_VERSION]),
            other => panic!("{other:?}"),
        }
    }
}
