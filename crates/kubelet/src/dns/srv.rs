//! SRV records of Services (upstream's specification, 2.3.2 and 2.4.2):
//!
//! - a ClusterIP Service: one per port, `<port> <svc>.<ns>.svc.<domain>.`, its ClusterIPs
//!   as the target's addresses;
//! - a headless Service: one per port and ready endpoint, at the endpoints' port (the
//!   pods' own, no proxy in between), `<hostname or dashed address>.<svc>.<ns>.svc.<domain>.`
//!   with that endpoint's addresses.
//!
//! `_<port>._<proto>.<svc>…` selects one named port; `<svc>…` itself answers all of them
//! (CoreDNS), unnamed ones included.

use super::records::{endpoint_names, ready_endpoints};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use std::net::IpAddr;
use std::sync::Arc;

/// Which ports a query asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ports<'a> {
    /// Every port (an SRV query for the Service's own name).
    All,
    /// The port with this name and protocol (`_<name>._<proto>`, without underscores).
    Named { name: &'a str, proto: &'a str },
}

impl Ports<'_> {
    /// Whether a port named `name` (if any) of protocol `proto` (TCP if unset) is asked for.
    pub fn matches(&self, name: Option<&str>, proto: Option<&str>) -> bool {
        match self {
            Ports::All => true,
            Ports::Named {
                name: want,
                proto: want_proto,
            } => {
                let name = name.unwrap_or("");
                !name.is_empty()
                    && name.eq_ignore_ascii_case(want)
                    && proto.unwrap_or("TCP").eq_ignore_ascii_case(want_proto)
            }
        }
    }
}

/// One SRV record: the port, the target's absolute name, and the target's addresses (for
/// the additional section).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Srv {
    pub port: u16,
    pub target: String,
    pub addrs: Vec<IpAddr>,
}

/// The weight of each of `n` records of one priority: 100 shared evenly, at least 1
/// (CoreDNS's).
pub fn weight(n: usize) -> u16 {
    u16::try_from(100 / n.max(1)).unwrap_or(1).max(1)
}

fn port(p: Option<i32>) -> Option<u16> {
    u16::try_from(p?).ok().filter(|p| *p != 0)
}

/// SRV records of a ClusterIP Service's ports.
pub fn cluster_ip(
    service: &Service,
    ports: &Ports<'_>,
    svc: &str,
    ns: &str,
    domain: &str,
    ips: &[IpAddr],
) -> Vec<Srv> {
    let target = format!("{svc}.{ns}.svc.{domain}.");
    service
        .spec
        .iter()
        .flat_map(|s| s.ports.iter().flatten())
        .filter(|p| ports.matches(p.name.as_deref(), p.protocol.as_deref()))
        .filter_map(|p| port(Some(p.port)))
        .map(|port| Srv {
            port,
            target: target.clone(),
            addrs: ips.to_vec(),
        })
        .collect()
}

/// SRV records of one endpoint (named `name`, at `ips`) for the ports of its slice.
pub fn endpoint(
    slice: &EndpointSlice,
    ports: &Ports<'_>,
    name: &str,
    svc: &str,
    ns: &str,
    domain: &str,
    ips: &[IpAddr],
) -> Vec<Srv> {
    slice
        .ports
        .iter()
        .flatten()
        .filter(|p| ports.matches(p.name.as_deref(), p.protocol.as_deref()))
        .filter_map(|p| port(p.port))
        .map(|port| Srv {
            port,
            target: format!("{name}.{svc}.{ns}.svc.{domain}."),
            addrs: ips.to_vec(),
        })
        .collect()
}

/// SRV records of a headless Service: its ready endpoints' ports.
pub fn headless(
    slices: &[Arc<EndpointSlice>],
    ports: &Ports<'_>,
    svc: &str,
    ns: &str,
    domain: &str,
) -> Vec<Srv> {
    let mut out: Vec<Srv> = Vec::new();
    for (slice, ep) in ready_endpoints(slices, ns, svc) {
        for (name, ips) in endpoint_names(ep) {
            for srv in endpoint(slice, ports, &name, svc, ns, domain, &ips) {
                if !out
                    .iter()
                    .any(|s| s.port == srv.port && s.target == srv.target)
                {
                    out.push(srv);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_match_by_name_and_protocol() {
        let http = Ports::Named {
            name: "http",
            proto: "tcp",
        };
        assert!(http.matches(Some("http"), Some("TCP")));
        assert!(http.matches(Some("HTTP"), None)); // the protocol defaults to TCP
        assert!(!http.matches(Some("http"), Some("UDP")));
        assert!(!http.matches(Some("https"), Some("TCP")));
        // Unnamed ports have no `_<port>._<proto>` name...
        let unnamed = Ports::Named {
            name: "",
            proto: "tcp",
        };
        assert!(!unnamed.matches(None, Some("TCP")));
        assert!(!unnamed.matches(Some(""), Some("TCP")));
        // ... but are among all ports.
        assert!(Ports::All.matches(None, None));
    }

    #[test]
    fn weights_share_one_hundred() {
        assert_eq!(weight(1), 100);
        assert_eq!(weight(3), 33);
        assert_eq!(weight(0), 100);
        assert_eq!(weight(500), 1);
    }
}
