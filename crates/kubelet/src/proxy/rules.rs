//! The iptables rules of the service proxy, computed from Services and EndpointSlices
//! (pure; `mod.rs` applies them). The layout follows upstream kube-proxy's iptables mode:
//!
//! - `R8S-SERVICES` (nat, from PREROUTING and OUTPUT): one rule per ClusterIP port, and per
//!   LoadBalancer ingress IP of the port, into that port's `R8S-SVC-…` chain; last,
//!   local-address traffic into `R8S-NODEPORTS`;
//! - `R8S-SVC-…`: marks for masquerade, then picks an endpoint uniformly at random
//!   (`statistic` with probabilities 1/n, 1/(n-1), …) into its `R8S-SEP-…` chain;
//! - `R8S-SEP-…`: DNAT to the endpoint;
//! - `R8S-POSTROUTING`: masquerades marked packets.
//!
//! All service traffic is masqueraded (kube-proxy's `--masquerade-all`): pods on the same
//! bridge then answer through the node, so replies are un-NATed without br_netfilter.
//! Filter table: `R8S-FORWARD` accepts the marked traffic whatever the FORWARD policy;
//! `R8S-NO-ENDPOINTS` (from OUTPUT and FORWARD) rejects connections to a ClusterIP port
//! that has no ready endpoint, as upstream does, instead of letting them leave through the
//! default route. `R8S-FIREWALL` (filter, from INPUT) drops packets to 127.0.0.0/8 from
//! elsewhere that were not DNATed, which the `route_localnet` NodePorts on localhost need
//! (as kube-proxy's `KUBE-FIREWALL`).

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

pub const SERVICES: &str = "R8S-SERVICES";
pub const NODEPORTS: &str = "R8S-NODEPORTS";
pub const POSTROUTING: &str = "R8S-POSTROUTING";
pub const MARK_MASQ: &str = "R8S-MARK-MASQ";
pub const FORWARD: &str = "R8S-FORWARD";
pub const NO_ENDPOINTS: &str = "R8S-NO-ENDPOINTS";
pub const FIREWALL: &str = "R8S-FIREWALL";
/// The packet mark that asks for masquerade (kube-proxy's bit).
const MASQ_MARK: &str = "0x4000/0x4000";
const SVC_PREFIX: &str = "R8S-SVC-";
const SEP_PREFIX: &str = "R8S-SEP-";

/// One service port with where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRule {
    /// `namespace/name:port-name`, for comments and chain names.
    pub id: String,
    pub cluster_ip: String,
    pub protocol: String,
    pub port: i32,
    pub node_port: Option<i32>,
    /// IPv4 addresses of `status.loadBalancer.ingress` (LoadBalancer Services).
    pub lb_ips: Vec<String>,
    /// Ready endpoints as (ip, port).
    pub endpoints: Vec<(String, i32)>,
}

/// A short, stable chain suffix (iptables chain names are at most 28 characters).
fn chain_hash(s: &str) -> String {
    // FNV-1a, 64 bit: stable across runs and builds.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016X}")
}

pub fn svc_chain(id: &str) -> String {
    format!("{SVC_PREFIX}{}", chain_hash(id))
}

pub fn sep_chain(id: &str, ip: &str, port: i32) -> String {
    format!("{SEP_PREFIX}{}", chain_hash(&format!("{id}/{ip}:{port}")))
}

/// The service ports to program: ClusterIP services (with an IP) and their NodePorts, with
/// the ready endpoints of their EndpointSlices.
pub fn port_rules(services: &[Service], slices: &[EndpointSlice]) -> Vec<PortRule> {
    let mut out = Vec::new();
    for svc in services {
        let (Some(ns), Some(name), Some(spec)) = (
            svc.metadata.namespace.as_deref(),
            svc.metadata.name.as_deref(),
            svc.spec.as_ref(),
        ) else {
            continue;
        };
        let cluster_ip = spec.cluster_ip.clone().unwrap_or_default();
        if cluster_ip.is_empty() || cluster_ip == "None" || cluster_ip.contains(':') {
            continue;
        }
        let own: Vec<&EndpointSlice> = slices
            .iter()
            .filter(|s| {
                s.metadata.namespace.as_deref() == Some(ns)
                    && s.metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get("kubernetes.io/service-name"))
                        .map(String::as_str)
                        == Some(name)
                    && s.address_type == "IPv4"
            })
            .collect();
        let lb_ips: Vec<String> = if spec.type_.as_deref() == Some("LoadBalancer") {
            svc.status
                .iter()
                .filter_map(|s| s.load_balancer.as_ref())
                .flat_map(|lb| lb.ingress.iter().flatten())
                .filter_map(|i| i.ip.clone())
                .filter(|ip| ip.parse::<std::net::Ipv4Addr>().is_ok())
                .collect()
        } else {
            Vec::new()
        };
        for p in spec.ports.iter().flatten() {
            let port_name = p.name.clone().unwrap_or_default();
            let protocol = p.protocol.clone().unwrap_or_else(|| "TCP".into());
            let mut endpoints = BTreeSet::new();
            for slice in &own {
                let Some(sp) = slice.ports.iter().flatten().find(|sp| {
                    sp.name.clone().unwrap_or_default() == port_name
                        && sp.protocol.as_deref().unwrap_or("TCP") == protocol
                }) else {
                    continue;
                };
                let Some(port) = sp.port else { continue };
                for ep in &slice.endpoints {
                    let ready = ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
                    if ready && let Some(ip) = ep.addresses.first() {
                        endpoints.insert((ip.clone(), port));
                    }
                }
            }
            out.push(PortRule {
                id: format!("{ns}/{name}:{port_name}"),
                cluster_ip: cluster_ip.clone(),
                protocol: protocol.to_lowercase(),
                port: p.port,
                node_port: p.node_port.filter(|n| *n > 0),
                lb_ips: lb_ips.clone(),
                endpoints: endpoints.into_iter().collect(),
            });
        }
    }
    out
}

/// `iptables-restore --noflush` input for the nat and filter tables: our chains declared
/// (which flushes them) and refilled; chains of services that are gone (`existing`, from
/// `iptables-save`) deleted.
pub fn restore_input(rules: &[PortRule], existing: &BTreeSet<String>) -> String {
    let mut nat = String::new();
    let mut chains: BTreeMap<String, ()> = BTreeMap::new();
    for c in [SERVICES, NODEPORTS, POSTROUTING, MARK_MASQ] {
        chains.insert(c.to_string(), ());
    }
    let mut body = String::new();
    let _ = writeln!(
        body,
        "-A {POSTROUTING} -m mark --mark {MASQ_MARK} -j MASQUERADE"
    );
    let _ = writeln!(body, "-A {MARK_MASQ} -j MARK --or-mark 0x4000");
    for r in rules.iter().filter(|r| !r.endpoints.is_empty()) {
        let svc = svc_chain(&r.id);
        chains.insert(svc.clone(), ());
        let comment = format!("-m comment --comment \"{}\"", r.id.replace('"', ""));
        let _ = writeln!(
            body,
            "-A {SERVICES} -d {}/32 -p {} --dport {} {comment} -j {svc}",
            r.cluster_ip, r.protocol, r.port
        );
        for lb in &r.lb_ips {
            let _ = writeln!(
                body,
                "-A {SERVICES} -d {lb}/32 -p {} --dport {} {comment} -j {svc}",
                r.protocol, r.port
            );
        }
        if let Some(np) = r.node_port {
            let _ = writeln!(
                body,
                "-A {NODEPORTS} -p {} --dport {np} {comment} -j {svc}",
                r.protocol
            );
        }
        let _ = writeln!(body, "-A {svc} -j {MARK_MASQ}");
        let n = r.endpoints.len();
        for (i, (ip, port)) in r.endpoints.iter().enumerate() {
            let sep = sep_chain(&r.id, ip, *port);
            chains.insert(sep.clone(), ());
            let pick = if i + 1 < n {
                format!(
                    "-m statistic --mode random --probability {:.10} ",
                    1.0 / (n - i) as f64
                )
            } else {
                String::new()
            };
            let _ = writeln!(body, "-A {svc} {pick}-j {sep}");
            let _ = writeln!(
                body,
                "-A {sep} -p {} -j DNAT --to-destination {ip}:{port}",
                r.protocol
            );
        }
    }
    let _ = writeln!(
        body,
        "-A {SERVICES} -m addrtype --dst-type LOCAL -j {NODEPORTS}"
    );
    // Chains of services that are gone: declared too (which empties them, as `-X` needs),
    // then deleted once nothing jumps to them.
    let stale: Vec<&String> = existing
        .iter()
        .filter(|c| {
            (c.starts_with(SVC_PREFIX) || c.starts_with(SEP_PREFIX)) && !chains.contains_key(*c)
        })
        .collect();
    nat.push_str("*nat\n");
    for c in chains.keys().chain(stale.iter().copied()) {
        let _ = writeln!(nat, ":{c} - [0:0]");
    }
    nat.push_str(&body);
    for c in stale {
        let _ = writeln!(nat, "-X {c}");
    }
    nat.push_str("COMMIT\n");
    let _ = write!(
        nat,
        "*filter\n:{FORWARD} - [0:0]\n:{NO_ENDPOINTS} - [0:0]\n:{FIREWALL} - [0:0]\n-A {FORWARD} -m mark --mark {MASQ_MARK} -j ACCEPT\n-A {FORWARD} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n-A {FIREWALL} -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m comment --comment \"block incoming localnet connections\" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP\n"
    );
    for r in rules.iter().filter(|r| r.endpoints.is_empty()) {
        for ip in std::iter::once(&r.cluster_ip).chain(&r.lb_ips) {
            let _ = writeln!(
                nat,
                "-A {NO_ENDPOINTS} -d {ip}/32 -p {} --dport {} -m comment --comment \"{} has no endpoints\" -j REJECT --reject-with icmp-port-unreachable",
                r.protocol,
                r.port,
                r.id.replace('"', "")
            );
        }
    }
    nat.push_str("COMMIT\n");
    nat
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc() -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"clusterIP": "10.43.0.10", "type": "NodePort", "ports": [
                {"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30080}]}
        }))
        .unwrap()
    }

    fn slice(ready: &[(&str, bool)]) -> EndpointSlice {
        let eps: Vec<_> = ready
            .iter()
            .map(|(ip, r)| json!({"addresses": [ip], "conditions": {"ready": r}}))
            .collect();
        serde_json::from_value(json!({
            "metadata": {"name": "web-abc", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": eps
        }))
        .unwrap()
    }

    #[test]
    fn ready_endpoints_of_the_named_port_are_programmed() {
        let rules = port_rules(
            &[svc()],
            &[slice(&[
                ("10.42.0.5", true),
                ("10.42.0.6", false),
                ("10.42.0.7", true),
            ])],
        );
        assert_eq!(rules.len(), 1);
        let r = &rules[0];
        assert_eq!(r.id, "default/web:http");
        assert_eq!(r.node_port, Some(30080));
        assert_eq!(
            r.endpoints,
            [
                ("10.42.0.5".to_string(), 8080),
                ("10.42.0.7".to_string(), 8080)
            ]
        );
    }

    #[test]
    fn endpoints_are_chosen_uniformly_and_stale_chains_deleted() {
        let rules = port_rules(
            &[svc()],
            &[slice(&[
                ("10.42.0.5", true),
                ("10.42.0.6", true),
                ("10.42.0.7", true),
            ])],
        );
        let existing = BTreeSet::from(["R8S-SVC-0000000000000000".to_string()]);
        let text = restore_input(&rules, &existing);
        let svc = svc_chain("default/web:http");
        assert!(text.contains(&format!(
            "-A R8S-SERVICES -d 10.43.0.10/32 -p tcp --dport 80 -m comment --comment \"default/web:http\" -j {svc}"
        )));
        assert!(text.contains("-A R8S-NODEPORTS -p tcp --dport 30080"));
        assert!(text.contains("--probability 0.3333333333"));
        assert!(text.contains("--probability 0.5000000000"));
        assert!(text.contains("-j DNAT --to-destination 10.42.0.7:8080"));
        assert!(text.contains(":R8S-SVC-0000000000000000 - [0:0]"));
        assert!(text.contains("-X R8S-SVC-0000000000000000"));
        assert!(text.starts_with("*nat\n"));
        assert!(text.contains("*filter\n:R8S-FORWARD - [0:0]"));
    }

    #[test]
    fn load_balancer_ingress_ips_lead_to_the_service() {
        let mut lb = svc();
        lb.spec.as_mut().unwrap().type_ = Some("LoadBalancer".into());
        lb.status = serde_json::from_value(json!({"loadBalancer": {"ingress": [
            {"ip": "192.0.2.9"}, {"hostname": "lb.example.com"}, {"ip": "2001:db8::1"}]}}))
        .unwrap();
        let rules = port_rules(&[lb.clone()], &[slice(&[("10.42.0.5", true)])]);
        assert_eq!(rules[0].lb_ips, ["192.0.2.9"]);
        let text = restore_input(&rules, &BTreeSet::new());
        let svc = svc_chain("default/web:http");
        assert!(text.contains(&format!(
            "-A R8S-SERVICES -d 192.0.2.9/32 -p tcp --dport 80 -m comment --comment \"default/web:http\" -j {svc}"
        )));
        assert!(text.contains("-A R8S-FIREWALL -d 127.0.0.0/8 ! -s 127.0.0.0/8"));
        // Without endpoints the ingress IP refuses too.
        let none = restore_input(&port_rules(&[lb], &[]), &BTreeSet::new());
        assert!(none.contains("-A R8S-NO-ENDPOINTS -d 192.0.2.9/32 -p tcp --dport 80"));
    }

    #[test]
    fn services_without_endpoints_or_cluster_ip_get_no_rules() {
        let mut headless = svc();
        headless.spec.as_mut().unwrap().cluster_ip = Some("None".into());
        assert!(port_rules(&[headless], &[]).is_empty());
        let rules = port_rules(&[svc()], &[]);
        let text = restore_input(&rules, &BTreeSet::new());
        assert!(!text.contains("R8S-SVC-"));
        // Refused at once rather than sent out through the default route.
        assert!(text.contains(
            "-A R8S-NO-ENDPOINTS -d 10.43.0.10/32 -p tcp --dport 80 -m comment --comment \"default/web:http has no endpoints\" -j REJECT"
        ));
    }
}
