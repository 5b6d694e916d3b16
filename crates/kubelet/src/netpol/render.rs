//! The nftables script that enforces the pods' firewalls (pure; `mod.rs` runs it with
//! `nft -f -`). Layout, after kube-router's (a chain per isolated pod, reached from the
//! forward hook by the pod's address), in a table of our own, `ip r8s-netpol`:
//!
//! - `R8S-NP-FORWARD` (filter, forward hook, priority -5: before iptables' filter table):
//!   replies of allowed connections (`ct state established,related`) pass; then a packet
//!   from an egress-isolated pod jumps to its `R8S-NP-EG-…` chain, a packet to an
//!   ingress-isolated pod to its `R8S-NP-IN-…` chain. Both must let it through.
//! - `R8S-NP-IN-…` / `R8S-NP-EG-…`: the pod's own address, then one rule per allowance
//!   (`ip saddr`/`ip daddr` in an `R8S-NP-SET-…` interval set, protocol and destination
//!   ports) `return`; whatever is left is dropped (the connection times out, as in the
//!   upstream tutorial).
//!
//! Only forwarded traffic is filtered: the node's own traffic to its pods (probes, host
//! network pods) goes through the output hook and pods' traffic to the node (cluster DNS on
//! the bridge gateway) through the input hook, which upstream always allows. Service
//! traffic is filtered after the proxy's DNAT (the real endpoint) and before its
//! masquerade (the real client), so policies see pod addresses, not the ClusterIP or the
//! gateway. Pod-to-pod traffic on the bridge passes the forward hook through
//! `br_netfilter` (`bridge-nf-call-iptables`, which `mod.rs` turns on).
//!
//! The script replaces the whole table in one transaction (it is added, deleted and
//! written again), so stale chains and sets go with it; with nothing to enforce the table
//! is only deleted.

use super::addrs::AddrSet;
use super::rules::{Allow, PodFirewall, PortMatch};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

/// Our nftables table (family `ip`).
pub const TABLE: &str = "r8s-netpol";
pub const FORWARD: &str = "R8S-NP-FORWARD";
const INGRESS_PREFIX: &str = "R8S-NP-IN-";
const EGRESS_PREFIX: &str = "R8S-NP-EG-";
const SET_PREFIX: &str = "R8S-NP-SET-";
/// The forward hook's priority: before iptables' filter table (0), which may accept.
const PRIORITY: i32 = -5;

pub fn ingress_chain(pod_id: &str) -> String {
    format!(
        "{INGRESS_PREFIX}{}",
        crate::proxy::rules::chain_hash(pod_id)
    )
}

pub fn egress_chain(pod_id: &str) -> String {
    format!("{EGRESS_PREFIX}{}", crate::proxy::rules::chain_hash(pod_id))
}

/// The name of the set holding `peers` (equal sets share one).
pub fn set_name(peers: &AddrSet) -> String {
    format!(
        "{SET_PREFIX}{}",
        crate::proxy::rules::chain_hash(&peers.elements().join(","))
    )
}

/// `nft -f` input that makes the table enforce `firewalls` (or removes it when empty).
pub fn script(firewalls: &[PodFirewall]) -> String {
    let mut out = format!("add table ip {TABLE}\ndelete table ip {TABLE}\n");
    if firewalls.is_empty() {
        return out;
    }
    let mut sets: BTreeMap<String, &AddrSet> = BTreeMap::new();
    let mut chains = String::new();
    let mut jumps_out = String::new();
    let mut jumps_in = String::new();
    for fw in firewalls {
        let comment = fw.id.replace('"', "");
        if let Some(allows) = &fw.egress {
            let chain = egress_chain(&fw.id);
            let _ = writeln!(
                jumps_out,
                "\t\tip saddr {} jump {chain} comment \"egress of {comment}\"",
                fw.ip
            );
            pod_chain(&mut chains, &mut sets, &chain, "daddr", fw, allows);
        }
        if let Some(allows) = &fw.ingress {
            let chain = ingress_chain(&fw.id);
            let _ = writeln!(
                jumps_in,
                "\t\tip daddr {} jump {chain} comment \"ingress of {comment}\"",
                fw.ip
            );
            pod_chain(&mut chains, &mut sets, &chain, "saddr", fw, allows);
        }
    }
    let _ = writeln!(out, "table ip {TABLE} {{");
    for (name, peers) in &sets {
        let _ = writeln!(
            out,
            "\tset {name} {{\n\t\ttype ipv4_addr\n\t\tflags interval\n\t\telements = {{ {} }}\n\t}}",
            peers.elements().join(", ")
        );
    }
    let _ = writeln!(
        out,
        "\tchain {FORWARD} {{\n\t\ttype filter hook forward priority {PRIORITY}; policy accept;\n\t\tct state established,related accept"
    );
    out.push_str(&jumps_out);
    out.push_str(&jumps_in);
    out.push_str("\t}\n");
    out.push_str(&chains);
    out.push_str("}\n");
    out
}

/// One pod's chain: `peer` is the header field naming the other end (`saddr` for
/// ingress, `daddr` for egress).
fn pod_chain<'a>(
    out: &mut String,
    sets: &mut BTreeMap<String, &'a AddrSet>,
    chain: &str,
    peer: &str,
    fw: &PodFirewall,
    allows: &'a [Allow],
) {
    let _ = writeln!(out, "\tchain {chain} {{");
    // A pod cannot block its own traffic (e.g. to itself through a Service).
    let _ = writeln!(
        out,
        "\t\tip {peer} {} return comment \"the pod itself\"",
        fw.ip
    );
    for allow in allows {
        let from = match &allow.peers {
            Some(set) => {
                let name = set_name(set);
                sets.insert(name.clone(), set);
                format!("ip {peer} @{name} ")
            }
            None => String::new(),
        };
        match &allow.ports {
            None => {
                let _ = writeln!(out, "\t\t{from}return");
            }
            Some(ports) => {
                for (protocol, ports) in by_protocol(ports) {
                    let _ = writeln!(out, "\t\t{from}meta l4proto {protocol}{ports} return");
                }
            }
        }
    }
    let _ = writeln!(out, "\t\tdrop\n\t}}");
}

/// The port matches per protocol: ` th dport …` (merged ranges), or nothing when every
/// port of the protocol is allowed.
fn by_protocol(ports: &[PortMatch]) -> Vec<(String, String)> {
    let mut grouped: BTreeMap<&str, Option<BTreeSet<(u16, u16)>>> = BTreeMap::new();
    for p in ports {
        let entry = grouped
            .entry(p.protocol.as_str())
            .or_insert_with(|| Some(BTreeSet::new()));
        match (p.ports, entry.as_mut()) {
            (Some(range), Some(ranges)) => {
                ranges.insert(range);
            }
            _ => *entry = None,
        }
    }
    grouped
        .into_iter()
        .map(|(protocol, ranges)| {
            let Some(ranges) = ranges else {
                return (protocol.to_string(), String::new());
            };
            let mut merged: Vec<(u16, u16)> = Vec::new();
            for (a, b) in ranges {
                match merged.last_mut() {
                    Some(last) if u32::from(a) <= u32::from(last.1) + 1 => last.1 = last.1.max(b),
                    _ => merged.push((a, b)),
                }
            }
            let items: Vec<String> = merged
                .iter()
                .map(|&(a, b)| {
                    if a == b {
                        a.to_string()
                    } else {
                        format!("{a}-{b}")
                    }
                })
                .collect();
            let ports = match items.as_slice() {
                [one] => format!(" th dport {one}"),
                _ => format!(" th dport {{ {} }}", items.join(", ")),
            };
            (protocol.to_string(), ports)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn fw(
        id: &str,
        ip: &str,
        ingress: Option<Vec<Allow>>,
        egress: Option<Vec<Allow>>,
    ) -> PodFirewall {
        PodFirewall {
            id: id.into(),
            ip: ip.parse().unwrap(),
            ingress,
            egress,
        }
    }

    fn peers(ips: &[&str]) -> Option<AddrSet> {
        let mut s = AddrSet::new();
        for ip in ips {
            s.insert(ip.parse::<Ipv4Addr>().unwrap());
        }
        Some(s)
    }

    fn port(protocol: &str, ports: Option<(u16, u16)>) -> PortMatch {
        PortMatch {
            protocol: protocol.into(),
            ports,
        }
    }

    #[test]
    fn nothing_to_enforce_removes_the_table() {
        assert_eq!(
            script(&[]),
            "add table ip r8s-netpol\ndelete table ip r8s-netpol\n"
        );
    }

    #[test]
    fn an_ingress_isolated_pod_gets_its_chain() {
        let allowed = peers(&["10.42.0.12", "10.42.1.5"]);
        let text = script(&[fw(
            "default/nginx",
            "10.42.0.10",
            Some(vec![Allow {
                peers: allowed.clone(),
                ports: None,
            }]),
            None,
        )]);
        let chain = ingress_chain("default/nginx");
        let set = set_name(allowed.as_ref().unwrap());
        // Replaced as a whole.
        assert!(text.starts_with(
            "add table ip r8s-netpol\ndelete table ip r8s-netpol\ntable ip r8s-netpol {\n"
        ));
        assert!(text.contains(&format!(
            "\tset {set} {{\n\t\ttype ipv4_addr\n\t\tflags interval\n\t\telements = {{ 10.42.0.12, 10.42.1.5 }}\n\t}}"
        )));
        assert!(text.contains(
            "\tchain R8S-NP-FORWARD {\n\t\ttype filter hook forward priority -5; policy accept;\n\t\tct state established,related accept\n"
        ));
        assert!(text.contains(&format!(
            "\t\tip daddr 10.42.0.10 jump {chain} comment \"ingress of default/nginx\"\n"
        )));
        assert!(text.contains(&format!(
            "\tchain {chain} {{\n\t\tip saddr 10.42.0.10 return comment \"the pod itself\"\n\t\tip saddr @{set} return\n\t\tdrop\n\t}}\n"
        )));
        assert!(!text.contains("R8S-NP-EG-"));
        assert!(text.ends_with("}\n"));
    }

    #[test]
    fn egress_ports_are_grouped_by_protocol_and_merged() {
        let text = script(&[fw(
            "default/client",
            "10.42.0.11",
            Some(vec![]),
            Some(vec![
                Allow {
                    peers: None,
                    ports: Some(vec![
                        port("tcp", Some((53, 53))),
                        port("udp", Some((53, 53))),
                    ]),
                },
                Allow {
                    peers: peers(&["10.42.0.10"]),
                    ports: Some(vec![
                        port("tcp", Some((80, 80))),
                        port("tcp", Some((81, 90))),
                        port("tcp", Some((443, 443))),
                        port("sctp", None),
                        port("sctp", Some((9, 9))),
                    ]),
                },
            ]),
        )]);
        let eg = egress_chain("default/client");
        let set = set_name(peers(&["10.42.0.10"]).as_ref().unwrap());
        // Egress jumps come first; ingress with no allowance is a bare drop.
        let out_jump = format!("\t\tip saddr 10.42.0.11 jump {eg}");
        let in_jump = format!(
            "\t\tip daddr 10.42.0.11 jump {}",
            ingress_chain("default/client")
        );
        assert!(text.find(&out_jump) < text.find(&in_jump), "{text}");
        assert!(text.contains(&format!(
            "\tchain {eg} {{\n\t\tip daddr 10.42.0.11 return comment \"the pod itself\"\n\t\tmeta l4proto tcp th dport 53 return\n\t\tmeta l4proto udp th dport 53 return\n\t\tip daddr @{set} meta l4proto sctp return\n\t\tip daddr @{set} meta l4proto tcp th dport {{ 80-90, 443 }} return\n\t\tdrop\n\t}}\n"
        )), "{text}");
        assert!(text.contains(&format!(
            "\tchain {} {{\n\t\tip saddr 10.42.0.11 return comment \"the pod itself\"\n\t\tdrop\n\t}}\n",
            ingress_chain("default/client")
        )));
    }

    /// The kernel takes the script (`nft -c`: checked, not applied). Skipped where `nft`
    /// is missing or may not talk to the kernel (not root).
    #[test]
    fn nftables_accepts_the_script() {
        use std::io::Write;
        let mut block = AddrSet::block("172.17.0.0/16", &["172.17.1.0/24".into()]);
        block.insert("10.42.0.12".parse().unwrap());
        let text = script(&[fw(
            "default/nginx",
            "10.42.0.10",
            Some(vec![
                Allow {
                    peers: Some(block.clone()),
                    ports: Some(vec![
                        port("tcp", Some((80, 80))),
                        port("tcp", Some((8000, 9000))),
                        port("sctp", None),
                        port("udp", Some((53, 53))),
                    ]),
                },
                Allow {
                    peers: None,
                    ports: None,
                },
            ]),
            Some(vec![Allow {
                peers: Some(block),
                ports: None,
            }]),
        )]);
        let child = std::process::Command::new("nft")
            .args(["-c", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn();
        let Ok(mut child) = child else {
            eprintln!("no nft: skipped");
            return;
        };
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        if err.contains("Operation not permitted") {
            eprintln!("nft may not talk to the kernel: skipped");
            return;
        }
        assert!(out.status.success(), "{err}\n{text}");
    }

    #[test]
    fn equal_peer_sets_are_shared() {
        let same = || {
            Some(vec![Allow {
                peers: peers(&["10.42.0.12"]),
                ports: None,
            }])
        };
        let text = script(&[
            fw("default/a", "10.42.0.10", same(), None),
            fw("default/b", "10.42.0.13", same(), None),
        ]);
        assert_eq!(text.matches("\tset R8S-NP-SET-").count(), 1, "{text}");
        assert_eq!(text.matches("ip saddr @R8S-NP-SET-").count(), 2);
    }
}
