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
//! Traffic policies and affinity, as kube-proxy: `internalTrafficPolicy: Local` sends
//! ClusterIP traffic only to this node's endpoints (`R8S-SVL-…`; dropped when there are
//! none); `externalTrafficPolicy: Local` sends NodePort and load-balancer traffic from
//! other hosts to local endpoints without masquerade, so pods see the client's address
//! (`R8S-EXT-…`; traffic from the node itself still uses every endpoint).
//! `sessionAffinity: ClientIP` keeps a client on its endpoint for `timeoutSeconds` with the
//! `recent` match named after the endpoint's chain.
//!
//! All service traffic is masqueraded (kube-proxy's `--masquerade-all`): pods on the same
//! bridge then answer through the node, so replies are un-NATed without br_netfilter.
//! Filter table: `R8S-FORWARD` accepts the marked traffic whatever the FORWARD policy;
//! `R8S-NO-ENDPOINTS` (from OUTPUT and FORWARD) rejects connections to a ClusterIP port
//! that has no ready endpoint, as upstream does, instead of letting them leave through the
//! default route. `R8S-FIREWALL` (filter, from INPUT) drops packets to 127.0.0.0/8 from
//! elsewhere that were not DNATed, which the `route_localnet` NodePorts on localhost need
//! (as kube-proxy's `KUBE-FIREWALL`).

use k8s_openapi::api::core::v1::{Service, ServiceSpec};
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
const SVL_PREFIX: &str = "R8S-SVL-";
const EXT_PREFIX: &str = "R8S-EXT-";
const SEP_PREFIX: &str = "R8S-SEP-";
/// Chain prefixes of per-service chains (deleted when their service goes).
const PER_SERVICE: [&str; 4] = [SVC_PREFIX, SVL_PREFIX, EXT_PREFIX, SEP_PREFIX];
/// kube-proxy's default `sessionAffinityConfig.clientIP.timeoutSeconds` (3 hours).
const DEFAULT_AFFINITY_SECONDS: i32 = 10800;

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
    /// The ready endpoints on this node.
    pub local_endpoints: Vec<(String, i32)>,
    /// `internalTrafficPolicy: Local`.
    pub internal_local: bool,
    /// `externalTrafficPolicy: Local` (NodePort and LoadBalancer Services).
    pub external_local: bool,
    /// `sessionAffinity: ClientIP`: how long a client sticks to its endpoint.
    pub affinity_seconds: Option<i32>,
}

/// A short, stable chain suffix (iptables chain names are at most 28 characters).
pub(crate) fn chain_hash(s: &str) -> String {
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

pub fn svl_chain(id: &str) -> String {
    format!("{SVL_PREFIX}{}", chain_hash(id))
}

pub fn ext_chain(id: &str) -> String {
    format!("{EXT_PREFIX}{}", chain_hash(id))
}

pub fn sep_chain(id: &str, ip: &str, port: i32) -> String {
    format!("{SEP_PREFIX}{}", chain_hash(&format!("{id}/{ip}:{port}")))
}

/// A Service's namespace, name and spec (None for an incomplete object).
pub(crate) fn identity(svc: &Service) -> Option<(&str, &str, &ServiceSpec)> {
    Some((
        svc.metadata.namespace.as_deref()?,
        svc.metadata.name.as_deref()?,
        svc.spec.as_ref()?,
    ))
}

/// The service ports to program: ClusterIP services (with an IP) and their NodePorts, with
/// the ready endpoints of their EndpointSlices (those on `node` also apart).
pub fn port_rules(services: &[Service], slices: &[EndpointSlice], node: &str) -> Vec<PortRule> {
    let mut out = Vec::new();
    for svc in services {
        let Some((ns, name, spec)) = identity(svc) else {
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
        let affinity_seconds = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
            spec.session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds)
                .unwrap_or(DEFAULT_AFFINITY_SECONDS)
        });
        let external = matches!(spec.type_.as_deref(), Some("NodePort" | "LoadBalancer"));
        let internal_local = spec.internal_traffic_policy.as_deref() == Some("Local");
        let external_local = external && spec.external_traffic_policy.as_deref() == Some("Local");
        for p in spec.ports.iter().flatten() {
            let port_name = p.name.clone().unwrap_or_default();
            let protocol = p.protocol.clone().unwrap_or_else(|| "TCP".into());
            let mut endpoints = BTreeSet::new();
            let mut local_endpoints = BTreeSet::new();
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
                        if ep.node_name.as_deref() == Some(node) {
                            local_endpoints.insert((ip.clone(), port));
                        }
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
                local_endpoints: local_endpoints.into_iter().collect(),
                internal_local,
                external_local,
                affinity_seconds,
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
        let comment = format!("-m comment --comment \"{}\"", r.id.replace('"', ""));
        let svc = svc_chain(&r.id);
        let svl = svl_chain(&r.id);
        let has_local = !r.local_endpoints.is_empty();
        pick_chain(&mut body, &mut chains, &svc, r, &r.endpoints, true);
        if (r.internal_local || r.external_local) && has_local {
            pick_chain(&mut body, &mut chains, &svl, r, &r.local_endpoints, false);
        }
        // ClusterIP traffic (always masqueraded, see above).
        let internal = if !r.internal_local {
            Some(svc.clone())
        } else if has_local {
            let _ = writeln!(
                body,
                "-A {SERVICES} -d {}/32 -p {} --dport {} {comment} -j {MARK_MASQ}",
                r.cluster_ip, r.protocol, r.port
            );
            Some(svl.clone())
        } else {
            None // dropped in the filter table
        };
        if let Some(target) = internal {
            let _ = writeln!(
                body,
                "-A {SERVICES} -d {}/32 -p {} --dport {} {comment} -j {target}",
                r.cluster_ip, r.protocol, r.port
            );
        }
        // NodePort and load-balancer traffic.
        let external = if r.external_local {
            let ext = ext_chain(&r.id);
            chains.insert(ext.clone(), ());
            // From the node itself the source is local anyway: every endpoint, masqueraded.
            let _ = writeln!(body, "-A {ext} -m addrtype --src-type LOCAL -j {svc}");
            if has_local {
                let _ = writeln!(body, "-A {ext} -j {svl}");
            }
            ext
        } else {
            svc.clone()
        };
        for lb in &r.lb_ips {
            let _ = writeln!(
                body,
                "-A {SERVICES} -d {lb}/32 -p {} --dport {} {comment} -j {external}",
                r.protocol, r.port
            );
        }
        if let Some(np) = r.node_port {
            let _ = writeln!(
                body,
                "-A {NODEPORTS} -p {} --dport {np} {comment} -j {external}",
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
        .filter(|c| PER_SERVICE.iter().any(|p| c.starts_with(p)) && !chains.contains_key(*c))
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
    for r in rules
        .iter()
        .filter(|r| !r.endpoints.is_empty() && r.internal_local && r.local_endpoints.is_empty())
    {
        let _ = writeln!(
            nat,
            "-A {NO_ENDPOINTS} -d {}/32 -p {} --dport {} -m comment --comment \"{} has no local endpoints\" -j DROP",
            r.cluster_ip,
            r.protocol,
            r.port,
            r.id.replace('"', "")
        );
    }
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

/// Fills `chain` (declared here) with a random choice among `endpoints`, each through its
/// `R8S-SEP-…` chain (declared and filled once), honouring session affinity.
fn pick_chain(
    body: &mut String,
    chains: &mut BTreeMap<String, ()>,
    chain: &str,
    r: &PortRule,
    endpoints: &[(String, i32)],
    masquerade: bool,
) {
    chains.insert(chain.to_string(), ());
    if masquerade {
        let _ = writeln!(body, "-A {chain} -j {MARK_MASQ}");
    }
    let recent = |sep: &str| format!("-m recent --name {sep} --mask 255.255.255.255 --rsource");
    if let Some(secs) = r.affinity_seconds {
        // A client seen within the timeout goes back to the endpoint it had.
        for (ip, port) in endpoints {
            let sep = sep_chain(&r.id, ip, *port);
            let _ = writeln!(
                body,
                "-A {chain} {} --rcheck --seconds {secs} --reap -j {sep}",
                recent(&sep)
            );
        }
    }
    let n = endpoints.len();
    for (i, (ip, port)) in endpoints.iter().enumerate() {
        let sep = sep_chain(&r.id, ip, *port);
        let pick = if i + 1 < n {
            format!(
                "-m statistic --mode random --probability {:.10} ",
                1.0 / (n - i) as f64
            )
        } else {
            String::new()
        };
        let _ = writeln!(body, "-A {chain} {pick}-j {sep}");
        if chains.insert(sep.clone(), ()).is_none() {
            let remember = match r.affinity_seconds {
                Some(_) => format!("{} --set ", recent(&sep)),
                None => String::new(),
            };
            let _ = writeln!(
                body,
                "-A {sep} -p {} {remember}-j DNAT --to-destination {ip}:{port}",
                r.protocol
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NODE: &str = "node-a";

    fn svc() -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"clusterIP": "10.43.0.10", "type": "NodePort", "ports": [
                {"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30080}]}
        }))
        .unwrap()
    }

    /// Endpoints on this node, ready or not.
    fn slice(ready: &[(&str, bool)]) -> EndpointSlice {
        let on: Vec<(&str, bool, &str)> = ready.iter().map(|(ip, r)| (*ip, *r, NODE)).collect();
        slice_on(&on)
    }

    /// Endpoints as (ip, ready, node).
    fn slice_on(eps: &[(&str, bool, &str)]) -> EndpointSlice {
        let eps: Vec<_> = eps
            .iter()
            .map(|(ip, r, node)| {
                json!({"addresses": [ip], "conditions": {"ready": r}, "nodeName": node})
            })
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
            NODE,
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
            NODE,
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
        let rules = port_rules(&[lb.clone()], &[slice(&[("10.42.0.5", true)])], NODE);
        assert_eq!(rules[0].lb_ips, ["192.0.2.9"]);
        let text = restore_input(&rules, &BTreeSet::new());
        let svc = svc_chain("default/web:http");
        assert!(text.contains(&format!(
            "-A R8S-SERVICES -d 192.0.2.9/32 -p tcp --dport 80 -m comment --comment \"default/web:http\" -j {svc}"
        )));
        assert!(text.contains("-A R8S-FIREWALL -d 127.0.0.0/8 ! -s 127.0.0.0/8"));
        // Without endpoints the ingress IP refuses too.
        let none = restore_input(&port_rules(&[lb], &[], NODE), &BTreeSet::new());
        assert!(none.contains("-A R8S-NO-ENDPOINTS -d 192.0.2.9/32 -p tcp --dport 80"));
    }

    #[test]
    fn services_without_endpoints_or_cluster_ip_get_no_rules() {
        let mut headless = svc();
        headless.spec.as_mut().unwrap().cluster_ip = Some("None".into());
        assert!(port_rules(&[headless], &[], NODE).is_empty());
        let rules = port_rules(&[svc()], &[], NODE);
        let text = restore_input(&rules, &BTreeSet::new());
        assert!(!text.contains("R8S-SVC-"));
        // Refused at once rather than sent out through the default route.
        assert!(text.contains(
            "-A R8S-NO-ENDPOINTS -d 10.43.0.10/32 -p tcp --dport 80 -m comment --comment \"default/web:http has no endpoints\" -j REJECT"
        ));
    }

    #[test]
    fn client_ip_affinity_sends_a_client_back_to_its_endpoint() {
        let mut sticky = svc();
        let spec = sticky.spec.as_mut().unwrap();
        spec.session_affinity = Some("ClientIP".into());
        let two = [slice(&[("10.42.0.5", true), ("10.42.0.6", true)])];
        let rules = port_rules(&[sticky.clone()], &two, NODE);
        assert_eq!(rules[0].affinity_seconds, Some(10800));
        let text = restore_input(&rules, &BTreeSet::new());
        let svc = svc_chain("default/web:http");
        let sep = sep_chain("default/web:http", "10.42.0.5", 8080);
        let check = format!(
            "-A {svc} -m recent --name {sep} --mask 255.255.255.255 --rsource --rcheck --seconds 10800 --reap -j {sep}"
        );
        let set = format!(
            "-A {sep} -p tcp -m recent --name {sep} --mask 255.255.255.255 --rsource --set -j DNAT --to-destination 10.42.0.5:8080"
        );
        assert!(text.contains(&check), "{text}");
        assert!(text.contains(&set), "{text}");
        // The remembered choice comes before the random one.
        assert!(text.find(&check) < text.find("--probability 0.5"));
        // The configured timeout wins.
        sticky.spec.as_mut().unwrap().session_affinity_config =
            serde_json::from_value(json!({"clientIP": {"timeoutSeconds": 60}})).unwrap();
        let rules = port_rules(&[sticky], &two, NODE);
        assert!(restore_input(&rules, &BTreeSet::new()).contains("--rcheck --seconds 60 --reap"));
        // Without affinity, no `recent` match at all.
        let plain = restore_input(
            &port_rules(&[super::tests::svc()], &two, NODE),
            &BTreeSet::new(),
        );
        assert!(!plain.contains("recent"));
    }

    #[test]
    fn internal_traffic_policy_local_uses_only_this_nodes_endpoints() {
        let mut local = svc();
        local.spec.as_mut().unwrap().internal_traffic_policy = Some("Local".into());
        let mixed = [slice_on(&[
            ("10.42.0.5", true, NODE),
            ("10.42.1.5", true, "node-b"),
        ])];
        let rules = port_rules(&[local.clone()], &mixed, NODE);
        assert_eq!(rules[0].local_endpoints, [("10.42.0.5".to_string(), 8080)]);
        let text = restore_input(&rules, &BTreeSet::new());
        let svl = svl_chain("default/web:http");
        assert!(text.contains(&format!(
            "-A R8S-SERVICES -d 10.43.0.10/32 -p tcp --dport 80 -m comment --comment \"default/web:http\" -j {svl}"
        )));
        let local_sep = sep_chain("default/web:http", "10.42.0.5", 8080);
        assert!(text.contains(&format!("-A {svl} -j {local_sep}")), "{text}");
        // The NodePort (external policy Cluster) still uses both.
        let svc = svc_chain("default/web:http");
        assert!(text.contains(&format!("-A R8S-NODEPORTS -p tcp --dport 30080 -m comment --comment \"default/web:http\" -j {svc}")));
        // Endpoints only elsewhere: the ClusterIP is dropped, not sent out.
        let remote = [slice_on(&[("10.42.1.5", true, "node-b")])];
        let text = restore_input(&port_rules(&[local], &remote, NODE), &BTreeSet::new());
        assert!(text.contains(
            "-A R8S-NO-ENDPOINTS -d 10.43.0.10/32 -p tcp --dport 80 -m comment --comment \"default/web:http has no local endpoints\" -j DROP"
        ));
        assert!(!text.contains("-A R8S-SERVICES -d 10.43.0.10/32"));
    }

    #[test]
    fn external_traffic_policy_local_keeps_the_source_for_outside_clients() {
        let mut local = svc();
        local.spec.as_mut().unwrap().external_traffic_policy = Some("Local".into());
        let mixed = [slice_on(&[
            ("10.42.0.5", true, NODE),
            ("10.42.1.5", true, "node-b"),
        ])];
        let rules = port_rules(&[local.clone()], &mixed, NODE);
        assert!(rules[0].external_local);
        let text = restore_input(&rules, &BTreeSet::new());
        let (svc, svl, ext) = (
            svc_chain("default/web:http"),
            svl_chain("default/web:http"),
            ext_chain("default/web:http"),
        );
        assert!(text.contains(&format!("-A R8S-NODEPORTS -p tcp --dport 30080 -m comment --comment \"default/web:http\" -j {ext}")));
        assert!(text.contains(&format!("-A {ext} -m addrtype --src-type LOCAL -j {svc}")));
        assert!(text.contains(&format!("-A {ext} -j {svl}")));
        // The local chain does not masquerade; the cluster chain does.
        assert!(!text.contains(&format!("-A {svl} -j R8S-MARK-MASQ")));
        assert!(text.contains(&format!("-A {svc} -j R8S-MARK-MASQ")));
        // ClusterIP traffic is not affected by the external policy.
        assert!(text.contains(&format!("-A R8S-SERVICES -d 10.43.0.10/32 -p tcp --dport 80 -m comment --comment \"default/web:http\" -j {svc}")));
        // A ClusterIP Service cannot have the external policy applied.
        let mut cluster_ip = local;
        cluster_ip.spec.as_mut().unwrap().type_ = Some("ClusterIP".into());
        assert!(!port_rules(&[cluster_ip], &mixed, NODE)[0].external_local);
    }

    #[test]
    fn chains_of_removed_services_are_deleted() {
        let existing = BTreeSet::from([
            "R8S-SVL-00000000000000AA".to_string(),
            "R8S-EXT-00000000000000BB".to_string(),
            "KUBE-OTHER".to_string(),
        ]);
        let text = restore_input(&[], &existing);
        assert!(text.contains("-X R8S-SVL-00000000000000AA"));
        assert!(text.contains("-X R8S-EXT-00000000000000BB"));
        assert!(!text.contains("KUBE-OTHER"));
    }
}
