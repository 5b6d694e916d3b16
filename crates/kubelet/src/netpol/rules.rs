//! What NetworkPolicies allow for each pod of this node (pure; `render.rs` writes it as
//! nftables rules, `mod.rs` applies them). Semantics as the Kubernetes "Network Policies"
//! concept page describes them:
//!
//! - A pod is isolated for ingress (egress) once any policy in its namespace selects it
//!   (`spec.podSelector`, empty = every pod) with `Ingress` (`Egress`) among its
//!   `policyTypes`. Without `policyTypes` a policy always affects ingress, and egress when
//!   it has an `egress` section. Pods no policy selects are not touched.
//! - An isolated pod accepts (sends) only what at least one rule of one of those policies
//!   allows: policies are additive. A rule allows traffic from (to) any of its peers — all
//!   addresses when `from` (`to`) is missing or empty — on any of its ports — all ports and
//!   protocols when `ports` is missing or empty.
//! - Peers: `podSelector` alone selects pods in the policy's namespace; `namespaceSelector`
//!   alone all pods of the namespaces it selects; both, the selected pods in the selected
//!   namespaces; `ipBlock` a CIDR without its `except` blocks.
//! - Ports: a protocol (TCP unless given), a port number, a range (`port`…`endPort`), or a
//!   named port: the `containerPorts` entry of that name and protocol of the destination
//!   pod (the isolated pod for ingress, each peer pod for egress).
//!
//! Nothing here special-cases DNS: an egress-isolated pod resolves names only if a rule
//! lets it reach port 53 (upstream does the same). Traffic to and from the node itself,
//! replies of allowed connections and a pod's traffic to itself are always allowed; those
//! exceptions are in the rendered rules, not in this model.

use super::addrs::AddrSet;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use r8s_api::selector::matches_typed;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// The label every namespace carries with its own name (set by the API server; assumed
/// here too, so a selector on it works for namespaces written before it existed).
const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// A protocol and the destination ports allowed on it (`None`: every port).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortMatch {
    /// `tcp`, `udp` or `sctp`.
    pub protocol: String,
    /// Inclusive port range.
    pub ports: Option<(u16, u16)>,
}

/// Traffic one rule allows: from (ingress) or to (egress) `peers`, on `ports`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Allow {
    /// `None`: any address.
    pub peers: Option<AddrSet>,
    /// `None`: any protocol and port.
    pub ports: Option<Vec<PortMatch>>,
}

/// The firewall of one isolated pod on this node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodFirewall {
    /// `namespace/name`.
    pub id: String,
    pub ip: Ipv4Addr,
    /// `Some` when isolated for ingress: what may come in (empty: nothing).
    pub ingress: Option<Vec<Allow>>,
    /// `Some` when isolated for egress: what may go out.
    pub egress: Option<Vec<Allow>>,
}

/// A pod with an address on the pod network.
struct PodInfo<'a> {
    namespace: &'a str,
    name: &'a str,
    labels: Option<&'a BTreeMap<String, String>>,
    ip: Ipv4Addr,
    local: bool,
    /// containerPorts as (name, protocol, port).
    ports: Vec<(&'a str, String, u16)>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Ingress,
    Egress,
}

/// The firewalls of the pods on `node` that some policy isolates, sorted by pod.
pub fn firewalls(
    policies: &[NetworkPolicy],
    pods: &[Pod],
    namespaces: &[Namespace],
    node: &str,
) -> Vec<PodFirewall> {
    let pods: Vec<PodInfo> = pods.iter().filter_map(|p| pod_info(p, node)).collect();
    let ns_labels: BTreeMap<&str, BTreeMap<String, String>> = namespaces
        .iter()
        .filter_map(|n| {
            let name = n.metadata.name.as_deref()?;
            let mut labels = n.metadata.labels.clone().unwrap_or_default();
            labels
                .entry(NAMESPACE_NAME_LABEL.to_string())
                .or_insert_with(|| name.to_string());
            Some((name, labels))
        })
        .collect();
    let mut out = Vec::new();
    for pod in pods.iter().filter(|p| p.local) {
        let mut ingress: Option<Vec<Allow>> = None;
        let mut egress: Option<Vec<Allow>> = None;
        for policy in policies {
            let (Some(ns), Some(spec)) = (policy.metadata.namespace.as_deref(), &policy.spec)
            else {
                continue;
            };
            let everyone = LabelSelector::default();
            let selector = spec.pod_selector.as_ref().unwrap_or(&everyone);
            if ns != pod.namespace || !matches_typed(selector, pod.labels) {
                continue;
            }
            let (affects_ingress, affects_egress) = match &spec.policy_types {
                Some(types) => (
                    types.iter().any(|t| t == "Ingress"),
                    types.iter().any(|t| t == "Egress"),
                ),
                None => (true, spec.egress.is_some()),
            };
            let ctx = Context {
                pods: &pods,
                ns_labels: &ns_labels,
                policy_ns: ns,
                pod,
            };
            if affects_ingress {
                let allows = ingress.get_or_insert_with(Vec::new);
                for rule in spec.ingress.iter().flatten() {
                    allows.extend(ctx.rule(
                        Direction::Ingress,
                        rule.from.as_deref(),
                        rule.ports.as_deref(),
                    ));
                }
            }
            if affects_egress {
                let allows = egress.get_or_insert_with(Vec::new);
                for rule in spec.egress.iter().flatten() {
                    allows.extend(ctx.rule(
                        Direction::Egress,
                        rule.to.as_deref(),
                        rule.ports.as_deref(),
                    ));
                }
            }
        }
        if ingress.is_none() && egress.is_none() {
            continue;
        }
        for allows in [&mut ingress, &mut egress].into_iter().flatten() {
            allows.sort();
            allows.dedup();
        }
        out.push(PodFirewall {
            id: format!("{}/{}", pod.namespace, pod.name),
            ip: pod.ip,
            ingress,
            egress,
        });
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

/// A pod that takes part in policies: it has an IPv4 address of its own (not the node's:
/// host-network pods are left alone, as upstream leaves them undefined) and still runs.
fn pod_info<'a>(pod: &'a Pod, node: &str) -> Option<PodInfo<'a>> {
    let spec = pod.spec.as_ref()?;
    let status = pod.status.as_ref()?;
    if spec.host_network == Some(true)
        || matches!(status.phase.as_deref(), Some("Succeeded" | "Failed"))
    {
        return None;
    }
    let ip = status
        .pod_ips
        .iter()
        .flatten()
        .map(|p| p.ip.as_str())
        .chain(status.pod_ip.as_deref())
        .find_map(|ip| ip.parse::<Ipv4Addr>().ok())?;
    let ports = spec
        .containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            let name = p.name.as_deref()?;
            let port = u16::try_from(p.container_port).ok()?;
            let protocol = p.protocol.as_deref().unwrap_or("TCP").to_lowercase();
            Some((name, protocol, port))
        })
        .collect();
    Some(PodInfo {
        namespace: pod.metadata.namespace.as_deref()?,
        name: pod.metadata.name.as_deref()?,
        labels: pod.metadata.labels.as_ref(),
        ip,
        local: spec.node_name.as_deref() == Some(node),
        ports,
    })
}

/// One policy applied to one pod.
struct Context<'p, 'a> {
    pods: &'p [PodInfo<'a>],
    ns_labels: &'p BTreeMap<&'a str, BTreeMap<String, String>>,
    policy_ns: &'a str,
    /// The isolated pod.
    pod: &'p PodInfo<'a>,
}

impl Context<'_, '_> {
    /// What one ingress (egress) rule allows.
    fn rule(
        &self,
        dir: Direction,
        peers: Option<&[NetworkPolicyPeer]>,
        ports: Option<&[NetworkPolicyPort]>,
    ) -> Vec<Allow> {
        let peers = match peers {
            Some(list) if !list.is_empty() => {
                let mut set = AddrSet::new();
                for peer in list {
                    set.union(&self.peer(peer));
                }
                if set.is_empty() {
                    return Vec::new();
                }
                Some(set)
            }
            _ => None,
        };
        let ports = match ports {
            Some(list) if !list.is_empty() => list,
            _ => return vec![Allow { peers, ports: None }],
        };
        let mut numbered = Vec::new();
        let mut named = Vec::new();
        for p in ports {
            let protocol = p.protocol.as_deref().unwrap_or("TCP").to_lowercase();
            match &p.port {
                None => numbered.push(PortMatch {
                    protocol,
                    ports: None,
                }),
                Some(IntOrString::Int(n)) => {
                    let end = p.end_port.filter(|e| e >= n).unwrap_or(*n);
                    if let (Ok(first), Ok(last)) = (u16::try_from(*n), u16::try_from(end))
                        && first > 0
                    {
                        numbered.push(PortMatch {
                            protocol,
                            ports: Some((first, last)),
                        });
                    }
                }
                Some(IntOrString::String(name)) => named.push((name.as_str(), protocol)),
            }
        }
        let mut out = Vec::new();
        match dir {
            // Named ports are the isolated pod's own.
            Direction::Ingress => {
                numbered.extend(
                    named
                        .iter()
                        .filter_map(|(name, proto)| resolve(self.pod, name, proto)),
                );
            }
            // Named ports are each destination pod's: one allowance per resolved port,
            // for the peer pods that have it.
            Direction::Egress => {
                let mut by_port: BTreeMap<PortMatch, AddrSet> = BTreeMap::new();
                for dest in self.pods {
                    if peers.as_ref().is_some_and(|set| !set.contains(dest.ip)) {
                        continue;
                    }
                    for (name, proto) in &named {
                        if let Some(m) = resolve(dest, name, proto) {
                            by_port.entry(m).or_default().insert(dest.ip);
                        }
                    }
                }
                out.extend(by_port.into_iter().map(|(m, set)| Allow {
                    peers: Some(set),
                    ports: Some(vec![m]),
                }));
            }
        }
        if !numbered.is_empty() {
            numbered.sort();
            numbered.dedup();
            out.push(Allow {
                peers,
                ports: Some(numbered),
            });
        }
        out
    }

    /// The addresses one peer selects.
    fn peer(&self, peer: &NetworkPolicyPeer) -> AddrSet {
        if let Some(block) = &peer.ip_block {
            return AddrSet::block(&block.cidr, block.except.as_deref().unwrap_or_default());
        }
        if peer.pod_selector.is_none() && peer.namespace_selector.is_none() {
            return AddrSet::new(); // invalid: selects nothing
        }
        let mut set = AddrSet::new();
        for p in self.pods {
            let ns_ok = match &peer.namespace_selector {
                Some(sel) => matches_typed(sel, self.ns_labels.get(p.namespace)),
                None => p.namespace == self.policy_ns,
            };
            let pod_ok = peer
                .pod_selector
                .as_ref()
                .is_none_or(|sel| matches_typed(sel, p.labels));
            if ns_ok && pod_ok {
                set.insert(p.ip);
            }
        }
        set
    }
}

/// `pod`'s container port called `name` on `protocol`.
fn resolve(pod: &PodInfo, name: &str, protocol: &str) -> Option<PortMatch> {
    pod.ports
        .iter()
        .find(|(n, p, _)| *n == name && p == protocol)
        .map(|(_, p, port)| PortMatch {
            protocol: p.clone(),
            ports: Some((*port, *port)),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use std::collections::BTreeSet;

    const NODE: &str = "node-a";

    fn pod(ns: &str, name: &str, ip: &str, labels: Value) -> Pod {
        pod_on(ns, name, ip, labels, NODE, json!([]))
    }

    fn pod_on(ns: &str, name: &str, ip: &str, labels: Value, node: &str, ports: Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "i", "ports": ports}]},
            "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}
        }))
        .unwrap()
    }

    fn ns(name: &str, labels: Value) -> Namespace {
        serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap()
    }

    fn policy(ns: &str, name: &str, spec: Value) -> NetworkPolicy {
        serde_json::from_value(json!({"metadata": {"name": name, "namespace": ns}, "spec": spec}))
            .unwrap()
    }

    /// The protocols a set of allowances names.
    fn protocols(allows: &[Allow]) -> BTreeSet<String> {
        allows
            .iter()
            .flat_map(|a| a.ports.iter().flatten())
            .map(|p| p.protocol.clone())
            .collect()
    }

    fn set(elements: &[&str]) -> Option<AddrSet> {
        let mut s = AddrSet::new();
        for e in elements {
            s.union(&AddrSet::block(&format!("{e}/32"), &[]));
        }
        Some(s)
    }

    fn tcp(port: u16) -> PortMatch {
        PortMatch {
            protocol: "tcp".into(),
            ports: Some((port, port)),
        }
    }

    /// The tutorial's cluster: nginx and two clients in `default`, one pod elsewhere.
    fn cluster() -> (Vec<Pod>, Vec<Namespace>) {
        let pods = vec![
            pod_on(
                "default",
                "nginx",
                "10.42.0.10",
                json!({"app": "nginx"}),
                NODE,
                json!([{"name": "http", "containerPort": 80}]),
            ),
            pod("default", "client", "10.42.0.11", json!({"run": "client"})),
            pod(
                "default",
                "access",
                "10.42.0.12",
                json!({"run": "access", "access": "true"}),
            ),
            pod("prod", "other", "10.42.0.20", json!({"access": "true"})),
            pod_on(
                "default",
                "remote",
                "10.42.1.5",
                json!({"access": "true"}),
                "node-b",
                json!([]),
            ),
        ];
        let namespaces = vec![
            ns("default", json!({})),
            ns("prod", json!({"team": "blue"})),
        ];
        (pods, namespaces)
    }

    #[test]
    fn pods_no_policy_selects_are_left_alone() {
        let (pods, namespaces) = cluster();
        assert!(firewalls(&[], &pods, &namespaces, NODE).is_empty());
        let other_ns = policy("prod", "deny", json!({"podSelector": {}}));
        let fw = firewalls(&[other_ns], &pods, &namespaces, NODE);
        assert_eq!(fw.len(), 1);
        assert_eq!(fw[0].id, "prod/other");
    }

    #[test]
    fn the_tutorials_policy_admits_only_labelled_pods_of_its_namespace() {
        let (pods, namespaces) = cluster();
        let access = policy(
            "default",
            "access-nginx",
            json!({
                "podSelector": {"matchLabels": {"app": "nginx"}},
                "ingress": [{"from": [{"podSelector": {"matchLabels": {"access": "true"}}}]}]
            }),
        );
        let fw = firewalls(&[access], &pods, &namespaces, NODE);
        assert_eq!(fw.len(), 1, "{fw:?}");
        assert_eq!(fw[0].id, "default/nginx");
        assert_eq!(fw[0].ip, "10.42.0.10".parse::<Ipv4Addr>().unwrap());
        // Pods of the policy's namespace on any node; not `prod/other`.
        assert_eq!(
            fw[0].ingress,
            Some(vec![Allow {
                peers: set(&["10.42.0.12", "10.42.1.5"]),
                ports: None
            }])
        );
        // No policyTypes and no egress section: egress stays open.
        assert_eq!(fw[0].egress, None);
    }

    #[test]
    fn default_deny_and_allow_all() {
        let (pods, namespaces) = cluster();
        let deny = policy(
            "default",
            "deny",
            json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
        );
        let fw = firewalls(std::slice::from_ref(&deny), &pods, &namespaces, NODE);
        // Every local pod of the namespace, nothing allowed either way.
        assert_eq!(
            fw.iter().map(|f| f.id.as_str()).collect::<Vec<_>>(),
            ["default/access", "default/client", "default/nginx"]
        );
        assert!(
            fw.iter()
                .all(|f| f.ingress == Some(vec![]) && f.egress == Some(vec![]))
        );
        // Policies add up: an allow-all ingress rule opens ingress, egress stays shut.
        let allow = policy(
            "default",
            "allow",
            json!({"podSelector": {}, "ingress": [{}]}),
        );
        let fw = firewalls(&[deny, allow], &pods, &namespaces, NODE);
        let all = Allow {
            peers: None,
            ports: None,
        };
        assert!(
            fw.iter()
                .all(|f| f.ingress == Some(vec![all.clone()]) && f.egress == Some(vec![]))
        );
    }

    #[test]
    fn namespace_selectors_alone_and_combined() {
        let (pods, namespaces) = cluster();
        let by_ns = policy(
            "default",
            "from-blue",
            json!({
                "podSelector": {"matchLabels": {"app": "nginx"}},
                "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "blue"}}}]}]
            }),
        );
        let fw = firewalls(&[by_ns], &pods, &namespaces, NODE);
        assert_eq!(
            fw[0].ingress.as_ref().unwrap()[0].peers,
            set(&["10.42.0.20"])
        );
        // Both in one peer: labelled pods in any namespace (here the name label).
        let both = policy(
            "default",
            "labelled-anywhere",
            json!({
                "podSelector": {"matchLabels": {"app": "nginx"}},
                "ingress": [{"from": [{
                    "namespaceSelector": {"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["default", "prod"]}]},
                    "podSelector": {"matchLabels": {"access": "true"}}
                }]}]
            }),
        );
        let fw = firewalls(&[both], &pods, &namespaces, NODE);
        assert_eq!(
            fw[0].ingress.as_ref().unwrap()[0].peers,
            set(&["10.42.0.12", "10.42.0.20", "10.42.1.5"])
        );
        // Two peers: either one (pods of `prod`, or labelled pods of `default`).
        let either = policy(
            "default",
            "either",
            json!({
                "podSelector": {"matchLabels": {"app": "nginx"}},
                "ingress": [{"from": [
                    {"namespaceSelector": {"matchLabels": {"team": "blue"}}},
                    {"podSelector": {"matchExpressions": [{"key": "run", "operator": "Exists"}]}}
                ]}]
            }),
        );
        let fw = firewalls(&[either], &pods, &namespaces, NODE);
        assert_eq!(
            fw[0].ingress.as_ref().unwrap()[0].peers,
            set(&["10.42.0.11", "10.42.0.12", "10.42.0.20"])
        );
        // A selector that matches no pod allows nothing at all (not everything).
        let nobody = policy(
            "default",
            "nobody",
            json!({
                "podSelector": {"matchLabels": {"app": "nginx"}},
                "ingress": [{"from": [{"podSelector": {"matchLabels": {"no": "such"}}}]}]
            }),
        );
        let fw = firewalls(&[nobody], &pods, &namespaces, NODE);
        assert_eq!(fw[0].ingress, Some(vec![]));
    }

    #[test]
    fn ip_blocks_with_exceptions_and_ports() {
        let (pods, namespaces) = cluster();
        let p = policy(
            "default",
            "blocks",
            json!({
                "podSelector": {"matchLabels": {"app": "nginx"}},
                "policyTypes": ["Ingress"],
                "ingress": [{
                    "from": [{"ipBlock": {"cidr": "172.17.0.0/16", "except": ["172.17.1.0/24"]}}],
                    "ports": [
                        {"protocol": "TCP", "port": 6379},
                        {"port": 32000, "endPort": 32768},
                        {"protocol": "UDP"},
                        {"protocol": "SCTP", "port": 9}
                    ]
                }]
            }),
        );
        let fw = firewalls(&[p], &pods, &namespaces, NODE);
        let allow = &fw[0].ingress.as_ref().unwrap()[0];
        assert_eq!(
            allow.peers.as_ref().unwrap().elements(),
            ["172.17.0.0/24", "172.17.2.0-172.17.255.255"]
        );
        assert_eq!(
            allow.ports,
            Some(vec![
                PortMatch {
                    protocol: "sctp".into(),
                    ports: Some((9, 9))
                },
                tcp(6379),
                PortMatch {
                    protocol: "tcp".into(),
                    ports: Some((32000, 32768))
                },
                PortMatch {
                    protocol: "udp".into(),
                    ports: None
                },
            ])
        );
        assert_eq!(
            protocols(fw[0].ingress.as_ref().unwrap()),
            BTreeSet::from(["sctp".into(), "tcp".into(), "udp".into()])
        );
    }

    #[test]
    fn named_ports_resolve_against_the_destination_pod() {
        let (mut pods, namespaces) = cluster();
        // Ingress: the isolated pod's own `http` port (80); an unknown name allows nothing.
        let p = policy(
            "default",
            "named",
            json!({
                "podSelector": {"matchLabels": {"app": "nginx"}},
                "ingress": [
                    {"ports": [{"port": "http"}]},
                    {"ports": [{"port": "metrics"}]},
                    {"ports": [{"port": "http", "protocol": "UDP"}]}
                ]
            }),
        );
        let fw = firewalls(&[p], &pods, &namespaces, NODE);
        assert_eq!(
            fw[0].ingress,
            Some(vec![Allow {
                peers: None,
                ports: Some(vec![tcp(80)])
            }])
        );
        // Egress: each destination's own number for the name.
        pods.push(pod_on(
            "prod",
            "api",
            "10.42.0.30",
            json!({"app": "api"}),
            NODE,
            json!([{"name": "http", "containerPort": 8080}]),
        ));
        let p = policy(
            "default",
            "egress-named",
            json!({
                "podSelector": {"matchLabels": {"run": "client"}},
                "policyTypes": ["Egress"],
                "egress": [{"ports": [{"port": "http"}, {"port": 443}]}]
            }),
        );
        let fw = firewalls(&[p], &pods, &namespaces, NODE);
        assert_eq!(fw[0].id, "default/client");
        assert_eq!(fw[0].ingress, None);
        assert_eq!(
            fw[0].egress,
            Some(vec![
                Allow {
                    peers: None,
                    ports: Some(vec![tcp(443)])
                },
                Allow {
                    peers: set(&["10.42.0.10"]),
                    ports: Some(vec![tcp(80)])
                },
                Allow {
                    peers: set(&["10.42.0.30"]),
                    ports: Some(vec![tcp(8080)])
                },
            ])
        );
    }

    #[test]
    fn egress_allows_dns_only_when_a_rule_does() {
        let (pods, namespaces) = cluster();
        let web_only = policy(
            "default",
            "web-only",
            json!({
                "podSelector": {"matchLabels": {"run": "client"}},
                "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "nginx"}}}],
                            "ports": [{"port": 80}]}]
            }),
        );
        let fw = firewalls(std::slice::from_ref(&web_only), &pods, &namespaces, NODE);
        // No policyTypes but an egress section: egress and ingress both isolated.
        assert_eq!(fw[0].ingress, Some(vec![]));
        let egress = fw[0].egress.as_ref().unwrap();
        assert_eq!(
            egress,
            &[Allow {
                peers: set(&["10.42.0.10"]),
                ports: Some(vec![tcp(80)])
            }]
        );
        assert!(!protocols(egress).contains("udp"), "no implicit DNS");
        let dns = policy(
            "default",
            "dns",
            json!({
                "podSelector": {},
                "policyTypes": ["Egress"],
                "egress": [{"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]}]
            }),
        );
        let fw = firewalls(&[web_only, dns], &pods, &namespaces, NODE);
        let client = fw.iter().find(|f| f.id == "default/client").unwrap();
        assert!(client.egress.as_ref().unwrap().contains(&Allow {
            peers: None,
            ports: Some(vec![
                tcp(53),
                PortMatch {
                    protocol: "udp".into(),
                    ports: Some((53, 53))
                }
            ])
        }));
    }

    #[test]
    fn pods_without_an_address_or_on_the_host_network_are_skipped() {
        let (mut pods, namespaces) = cluster();
        pods.push(
            serde_json::from_value(json!({
                "metadata": {"name": "host", "namespace": "default", "labels": {"app": "nginx"}},
                "spec": {"nodeName": NODE, "hostNetwork": true, "containers": []},
                "status": {"phase": "Running", "podIP": "192.0.2.2"}
            }))
            .unwrap(),
        );
        pods.push(
            serde_json::from_value(json!({
                "metadata": {"name": "pending", "namespace": "default", "labels": {"app": "nginx"}},
                "spec": {"nodeName": NODE, "containers": []},
                "status": {"phase": "Pending"}
            }))
            .unwrap(),
        );
        pods.push(
            serde_json::from_value(json!({
                "metadata": {"name": "done", "namespace": "default", "labels": {"access": "true"}},
                "spec": {"nodeName": NODE, "containers": []},
                "status": {"phase": "Succeeded", "podIP": "10.42.0.99"}
            }))
            .unwrap(),
        );
        let p = policy(
            "default",
            "access-nginx",
            json!({
                "podSelector": {"matchLabels": {"app": "nginx"}},
                "ingress": [{"from": [{"podSelector": {"matchLabels": {"access": "true"}}}]}]
            }),
        );
        let fw = firewalls(&[p], &pods, &namespaces, NODE);
        assert_eq!(fw.len(), 1);
        assert_eq!(
            fw[0].ingress.as_ref().unwrap()[0].peers,
            set(&["10.42.0.12", "10.42.1.5"])
        );
    }
}
