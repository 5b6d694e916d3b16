//! Reverse lookups (upstream's specification, 2.3.3 and 2.4.3): `<d>.<c>.<b>.<a>.in-addr.arpa`
//! (and the `ip6.arpa` nibble form) of a ClusterIP names its Service; of a ready
//! endpoint's address, `<hostname or dashed address>.<svc>.<ns>.svc.<domain>` (CoreDNS
//! answers this for the endpoints of any Service, not only headless ones, and so does
//! this). Whether an unknown address is ours to deny is `answer.rs`'s call.

use super::records::{Kind, endpoint_names, find_service, holds_ips, kind, owner, ready};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

/// The reverse zone of IPv4 addresses.
pub const V4_ZONE: &str = "in-addr.arpa";
/// The reverse zone of IPv6 addresses.
pub const V6_ZONE: &str = "ip6.arpa";

/// A name under a reverse zone.
#[derive(Debug, PartialEq, Eq)]
pub struct Reverse {
    /// The zone (`in-addr.arpa` or `ip6.arpa`).
    pub zone: &'static str,
    /// The address the name stands for, when it is a whole one (not a network's name).
    pub addr: Option<IpAddr>,
}

/// Read `name` (any case, with or without the trailing dot) as a reverse name; `None`
/// outside the reverse zones.
pub fn parse(name: &str) -> Option<Reverse> {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let split = |zone: &str| -> Option<Vec<String>> {
        if name == zone {
            return Some(Vec::new());
        }
        let rest = name.strip_suffix(zone)?.strip_suffix('.')?;
        Some(rest.split('.').rev().map(str::to_string).collect())
    };
    if let Some(labels) = split(V4_ZONE) {
        let octets: Option<Vec<u8>> = labels
            .iter()
            .map(|l| {
                (!l.is_empty() && l.len() <= 3 && l.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| l.parse::<u8>().ok())
                    .flatten()
            })
            .collect();
        let addr = match octets.as_deref() {
            Some(&[a, b, c, d]) => Some(IpAddr::V4(Ipv4Addr::new(a, b, c, d))),
            _ => None,
        };
        return Some(Reverse {
            zone: V4_ZONE,
            addr,
        });
    }
    if let Some(labels) = split(V6_ZONE) {
        let nibbles: Option<Vec<u8>> = labels
            .iter()
            .map(|l| match l.as_bytes() {
                [c] => (*c as char).to_digit(16).and_then(|d| u8::try_from(d).ok()),
                _ => None,
            })
            .collect();
        let addr = nibbles.filter(|n| n.len() == 32).map(|n| {
            let bits = n
                .iter()
                .fold(0u128, |acc, nibble| (acc << 4) | u128::from(*nibble));
            IpAddr::V6(Ipv6Addr::from(bits))
        });
        return Some(Reverse {
            zone: V6_ZONE,
            addr,
        });
    }
    None
}

/// The names `ip` has in the cluster (absolute, with the trailing dot): its Service if it
/// is a ClusterIP, else the ready endpoints that have it.
pub fn ptr(
    ip: IpAddr,
    domain: &str,
    services: &[Arc<Service>],
    slices: &[Arc<EndpointSlice>],
) -> Vec<String> {
    let domain = domain.trim_end_matches('.');
    let mut names: Vec<String> = services
        .iter()
        .filter(|s| matches!(kind(s), Kind::ClusterIp(ips) if ips.contains(&ip)))
        .filter_map(|s| {
            let (ns, name) = (
                s.metadata.namespace.as_deref()?,
                s.metadata.name.as_deref()?,
            );
            Some(format!("{name}.{ns}.svc.{domain}."))
        })
        .collect();
    if !names.is_empty() {
        return names;
    }
    for slice in slices.iter().filter(|s| holds_ips(s)) {
        let Some((ns, svc)) = owner(slice) else {
            continue;
        };
        if matches!(
            find_service(services, ns, svc).map(kind),
            None | Some(Kind::External(_))
        ) {
            continue;
        }
        for ep in slice.endpoints.iter().filter(|e| ready(e)) {
            for (name, ips) in endpoint_names(ep) {
                let full = format!("{name}.{svc}.{ns}.svc.{domain}.");
                if ips.contains(&ip) && !names.contains(&full) {
                    names.push(full);
                }
            }
        }
    }
    names
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::dns::records::tests::{services, slices};

    /// The reverse name of an address (written out independently of `parse`).
    pub fn name_of(ip: &str) -> String {
        match ip.parse::<IpAddr>().unwrap() {
            IpAddr::V4(v4) => {
                let [a, b, c, d] = v4.octets();
                format!("{d}.{c}.{b}.{a}.in-addr.arpa.")
            }
            IpAddr::V6(v6) => {
                let hex: String = v6.octets().iter().map(|o| format!("{o:02x}")).collect();
                let mut labels: Vec<String> = hex.chars().map(String::from).collect();
                labels.reverse();
                format!("{}.ip6.arpa.", labels.join("."))
            }
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn reverse_names_are_read() {
        assert_eq!(
            parse("20.0.43.10.in-addr.arpa."),
            Some(Reverse {
                zone: V4_ZONE,
                addr: Some(ip("10.43.0.20"))
            })
        );
        assert_eq!(
            parse("20.0.43.10.IN-ADDR.ARPA").and_then(|r| r.addr),
            Some(ip("10.43.0.20"))
        );
        // Networks' names and junk are in the zone but name no address.
        for name in [
            "0.43.10.in-addr.arpa",
            "in-addr.arpa",
            "256.0.43.10.in-addr.arpa",
            "x.0.43.10.in-addr.arpa",
            "+1.0.43.10.in-addr.arpa",
            "1.20.0.43.10.in-addr.arpa",
        ] {
            assert_eq!(
                parse(name),
                Some(Reverse {
                    zone: V4_ZONE,
                    addr: None
                }),
                "{name}"
            );
        }
        let v6 = name_of("fd00:43::30");
        assert!(v6.starts_with("0.3.0.0.0.0.0.0.") && v6.ends_with(".3.4.0.0.0.0.d.f.ip6.arpa."));
        assert_eq!(parse(&v6).and_then(|r| r.addr), Some(ip("fd00:43::30")));
        assert_eq!(
            parse(&name_of("10.43.0.20")).and_then(|r| r.addr),
            Some(ip("10.43.0.20"))
        );
        assert_eq!(
            parse("d.f.ip6.arpa"),
            Some(Reverse {
                zone: V6_ZONE,
                addr: None
            })
        );
        assert_eq!(parse("example.org"), None);
        assert_eq!(parse("notin-addr.arpa"), None);
    }

    #[test]
    fn cluster_ips_and_endpoints_have_names() {
        let (s, e) = (services(), slices());
        let names = |a: &str| ptr(ip(a), "cluster.local", &s, &e);
        assert_eq!(names("10.43.0.20"), ["web.default.svc.cluster.local."]);
        assert_eq!(names("fd00:43::30"), ["dual.default.svc.cluster.local."]);
        assert_eq!(names("10.42.0.7"), ["db-0.db.prod.svc.cluster.local."]);
        assert_eq!(names("10.42.0.9"), ["10-42-0-9.db.prod.svc.cluster.local."]);
        assert_eq!(
            names("10.42.0.5"),
            ["10-42-0-5.web.default.svc.cluster.local."]
        );
        // Not ready, or nobody's.
        assert!(names("10.42.0.8").is_empty());
        assert!(names("10.43.0.99").is_empty());
    }
}
