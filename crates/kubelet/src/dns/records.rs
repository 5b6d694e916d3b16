//! Cluster DNS names (upstream's DNS specification for Services), answered from the
//! Services and EndpointSlices (pure; `mod.rs` serves them):
//!
//! - `<service>.<ns>.svc.<domain>`: the ClusterIP, or for a headless Service the
//!   addresses of its ready endpoints;
//! - `<hostname>.<service>.<ns>.svc.<domain>`: the endpoint with that hostname (a
//!   StatefulSet pod behind its headless Service);
//! - other names under the domain do not exist; names outside it are not ours.

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use std::net::Ipv4Addr;
use std::sync::Arc;

/// What the cluster's DNS says about a name.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup {
    /// The name exists; these are its IPv4 addresses (possibly none).
    Found(Vec<Ipv4Addr>),
    /// Under the cluster domain, but no such name (NXDOMAIN).
    Missing,
    /// Outside the cluster domain: ask the node's resolvers.
    NotOurs,
}

fn slices_of<'a>(
    slices: &'a [Arc<EndpointSlice>],
    ns: &'a str,
    svc: &'a str,
) -> impl Iterator<Item = &'a Arc<EndpointSlice>> {
    slices.iter().filter(move |s| {
        s.metadata.namespace.as_deref() == Some(ns)
            && s.address_type == "IPv4"
            && s.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("kubernetes.io/service-name"))
                .map(String::as_str)
                == Some(svc)
    })
}

fn ready(ep: &k8s_openapi::api::discovery::v1::Endpoint) -> bool {
    ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true)
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
        // The domain itself, `svc.<domain>` and `<ns>.svc.<domain>` exist (no addresses).
        [] | ["svc"] | [_, "svc"] => Lookup::Found(Vec::new()),
        [svc, ns, "svc"] => {
            let Some(service) = services.iter().find(|s| {
                s.metadata.namespace.as_deref() == Some(ns)
                    && s.metadata.name.as_deref() == Some(svc)
            }) else {
                return Lookup::Missing;
            };
            let cluster_ip = service
                .spec
                .as_ref()
                .and_then(|s| s.cluster_ip.as_deref())
                .unwrap_or("");
            if let Ok(ip) = cluster_ip.parse::<Ipv4Addr>() {
                return Lookup::Found(vec![ip]);
            }
            let mut ips: Vec<Ipv4Addr> = slices_of(slices, ns, svc)
                .flat_map(|s| s.endpoints.iter())
                .filter(|e| ready(e))
                .filter_map(|e| e.addresses.first()?.parse().ok())
                .collect();
            ips.sort();
            ips.dedup();
            Lookup::Found(ips)
        }
        [host, svc, ns, "svc"] => {
            let ips: Vec<Ipv4Addr> = slices_of(slices, ns, svc)
                .flat_map(|s| s.endpoints.iter())
                .filter(|e| e.hostname.as_deref() == Some(host))
                .filter_map(|e| e.addresses.first()?.parse().ok())
                .collect();
            if ips.is_empty() {
                Lookup::Missing
            } else {
                Lookup::Found(ips)
            }
        }
        _ => Lookup::Missing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn services() -> Vec<Arc<Service>> {
        [
            json!({"metadata": {"name": "web", "namespace": "default"},
                "spec": {"clusterIP": "10.43.0.20"}}),
            json!({"metadata": {"name": "db", "namespace": "prod"},
                "spec": {"clusterIP": "None"}}),
        ]
        .into_iter()
        .map(|v| Arc::new(serde_json::from_value(v).unwrap()))
        .collect()
    }

    fn slices() -> Vec<Arc<EndpointSlice>> {
        vec![Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": "db-1", "namespace": "prod",
                             "labels": {"kubernetes.io/service-name": "db"}},
                "addressType": "IPv4",
                "endpoints": [
                    {"addresses": ["10.42.0.7"], "hostname": "db-0", "conditions": {"ready": true}},
                    {"addresses": ["10.42.0.8"], "hostname": "db-1", "conditions": {"ready": false}}
                ]
            }))
            .unwrap(),
        )]
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn services_headless_services_and_their_pods() {
        let (s, e) = (services(), slices());
        let find = |n: &str| lookup(n, "cluster.local", &s, &e);
        assert_eq!(
            find("web.default.svc.cluster.local."),
            Lookup::Found(vec![ip("10.43.0.20")])
        );
        assert_eq!(
            find("WEB.Default.svc.cluster.local"),
            Lookup::Found(vec![ip("10.43.0.20")])
        );
        // Headless: ready endpoints only.
        assert_eq!(
            find("db.prod.svc.cluster.local"),
            Lookup::Found(vec![ip("10.42.0.7")])
        );
        // A StatefulSet pod by hostname, ready or not (it is named for its peers).
        assert_eq!(
            find("db-1.db.prod.svc.cluster.local"),
            Lookup::Found(vec![ip("10.42.0.8")])
        );
        assert_eq!(find("nope.default.svc.cluster.local"), Lookup::Missing);
        assert_eq!(find("db-9.db.prod.svc.cluster.local"), Lookup::Missing);
        assert_eq!(find("prod.svc.cluster.local"), Lookup::Found(vec![]));
        assert_eq!(find("example.org"), Lookup::NotOurs);
        assert_eq!(find("notcluster.local"), Lookup::NotOurs);
    }
}
