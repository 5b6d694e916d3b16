//! Pod networking config: a CNI conflist (bridge + host-local IPAM + portmap) for the
//! node's pod CIDR, which containerd's CRI plugin reads and runs for every sandbox
//! (it adds the loopback interface itself). The node's pod CIDR comes from the controller
//! manager's node IPAM, as upstream (the kubelet waits for `spec.podCIDR`); a standalone
//! agent without a controller manager can allocate it itself instead.

use crate::error::{Error, IoContext, Result};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::fmt;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The CNI network name in the conflist.
pub const NETWORK_NAME: &str = "r8s-pod-network";
/// File name of the conflist (containerd loads the first one by name).
pub const CONFLIST_FILE: &str = "10-r8s.conflist";
/// Prefix length of each node's pod CIDR.
pub const NODE_CIDR_PREFIX: u8 = 24;

/// An IPv4 network (`10.42.0.0/16`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl FromStr for Cidr {
    type Err = Error;
    fn from_str(s: &str) -> Result<Cidr> {
        let bad = || Error::Config(format!("invalid IPv4 CIDR {s:?}"));
        let (a, p) = s.trim().split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = a.parse().map_err(|_| bad())?;
        let prefix: u8 = p.parse().map_err(|_| bad())?;
        if prefix > 32 {
            return Err(bad());
        }
        Ok(Cidr {
            addr: Ipv4Addr::from(u32::from(addr) & mask(prefix)),
            prefix,
        })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

impl Cidr {
    /// The `n`th address of the network (`1` = the usual gateway).
    pub fn host(&self, n: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr).wrapping_add(n))
    }

    /// Whether `ip` is inside the network.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.prefix) == u32::from(self.addr)
    }

    /// The `i`th subnet of length `prefix` (None past the end or if `prefix` is shorter).
    pub fn subnet(&self, prefix: u8, i: u32) -> Option<Cidr> {
        if prefix < self.prefix || prefix > 32 {
            return None;
        }
        let count = 1u64 << (prefix - self.prefix);
        if u64::from(i) >= count {
            return None;
        }
        let size = if prefix == 32 {
            1
        } else {
            1u32 << (32 - prefix)
        };
        Some(Cidr {
            addr: Ipv4Addr::from(u32::from(self.addr) + i * size),
            prefix,
        })
    }
}

/// The conflist for a node: a bridge (`bridge` name) that is the pods' gateway (.1),
/// masquerades outbound traffic and hairpins, host-local IPAM over `pod_cidr` with its
/// state in `ipam_dir`, and portmap for hostPort.
pub fn conflist(bridge: &str, pod_cidr: &Cidr, ipam_dir: &Path) -> Value {
    json!({
        "cniVersion": "1.0.0",
        "name": NETWORK_NAME,
        "plugins": [
            {
                "type": "bridge",
                "bridge": bridge,
                "isGateway": true,
                "ipMasq": true,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": pod_cidr.to_string(), "gateway": pod_cidr.host(1).to_string()}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": ipam_dir.display().to_string(),
                }
            },
            {"type": "portmap", "capabilities": {"portMappings": true}, "snat": true}
        ]
    })
}

/// Writes the conflist into `conf_dir` when it differs; returns whether it changed.
pub fn write_conflist(
    conf_dir: &Path,
    bridge: &str,
    pod_cidr: &Cidr,
    ipam_dir: &Path,
) -> Result<bool> {
    std::fs::create_dir_all(conf_dir).ctx(|| format!("creating {}", conf_dir.display()))?;
    std::fs::create_dir_all(ipam_dir).ctx(|| format!("creating {}", ipam_dir.display()))?;
    let path = conf_dir.join(CONFLIST_FILE);
    let body = serde_json::to_string_pretty(&conflist(bridge, pod_cidr, ipam_dir))?;
    if std::fs::read_to_string(&path).is_ok_and(|old| old == body) {
        return Ok(false);
    }
    // Atomic replace: containerd watches the directory and must never read half a file.
    let tmp: PathBuf = conf_dir.join(format!(".{CONFLIST_FILE}.tmp"));
    std::fs::write(&tmp, body).ctx(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).ctx(|| format!("renaming to {}", path.display()))?;
    drop_stale_bridge_address(bridge, pod_cidr.host(1));
    Ok(true)
}

/// A bridge left by an earlier run with another pod CIDR makes the CNI bridge plugin
/// refuse every sandbox ("already has an IP address different from …"): clear its
/// addresses so the plugin assigns the new gateway.
fn drop_stale_bridge_address(bridge: &str, gateway: Ipv4Addr) {
    let Ok(out) = std::process::Command::new("ip")
        .args(["-4", "-o", "addr", "show", "dev", bridge])
        .output()
    else {
        return;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    if out.status.success() && text.contains("inet ") && !text.contains(&format!("inet {gateway}/"))
    {
        let _ = std::process::Command::new("ip")
            .args(["addr", "flush", "dev", bridge])
            .status();
    }
}

/// How often [`wait_pod_cidr`] looks at the Node, and how often it says it still waits.
const CIDR_POLL: std::time::Duration = std::time::Duration::from_millis(200);
const CIDR_LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// The Node's `spec.podCIDR`, if set.
async fn node_pod_cidr(nodes: &Api<Node>, node_name: &str) -> Result<Option<Cidr>> {
    let node = nodes.get(node_name).await?;
    node.spec
        .as_ref()
        .and_then(|s| s.pod_cidr.as_deref())
        .filter(|c| !c.is_empty())
        .map(str::parse)
        .transpose()
}

/// Waits until the controller manager (node IPAM, `--allocate-node-cidrs`) has set the
/// Node's `spec.podCIDR`, as upstream's kubelet does; there is no deadline, but a line is
/// logged every few seconds. API errors are logged and retried.
pub async fn wait_pod_cidr(client: &kube::Client, node_name: &str) -> Result<Cidr> {
    let nodes: Api<Node> = Api::all(client.clone());
    let started = std::time::Instant::now();
    let mut last_log = started;
    loop {
        match node_pod_cidr(&nodes, node_name).await {
            Ok(Some(c)) => return Ok(c),
            Ok(None) => {}
            // A malformed podCIDR never fixes itself.
            Err(e @ Error::Config(_)) => return Err(e),
            Err(e) => tracing::debug!("reading node {node_name}: {e}"),
        }
        if last_log.elapsed() >= CIDR_LOG_EVERY {
            last_log = std::time::Instant::now();
            tracing::info!(
                node = node_name,
                waited = ?started.elapsed(),
                "waiting for the controller manager to assign spec.podCIDR"
            );
        }
        tokio::time::sleep(CIDR_POLL).await;
    }
}

/// The node's pod CIDR for a standalone agent: `spec.podCIDR` when set, else the first
/// /24 of `cluster_cidr` no other node uses, written to the Node (the API server keeps it
/// immutable after). With a controller manager use [`wait_pod_cidr`]: both allocating
/// could race.
pub async fn ensure_pod_cidr(
    client: &kube::Client,
    node_name: &str,
    cluster_cidr: &Cidr,
) -> Result<Cidr> {
    let nodes: Api<Node> = Api::all(client.clone());
    if let Some(c) = node_pod_cidr(&nodes, node_name).await? {
        return Ok(c);
    }
    let used: HashSet<Cidr> = nodes
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .filter_map(|n| n.spec.as_ref()?.pod_cidr.as_deref()?.parse().ok())
        .collect();
    let prefix = NODE_CIDR_PREFIX.max(cluster_cidr.prefix);
    let free = (0u32..)
        .map_while(|i| cluster_cidr.subnet(prefix, i))
        .find(|c| !used.contains(c))
        .ok_or_else(|| {
            Error::Config(format!(
                "no free /{prefix} left in cluster CIDR {cluster_cidr}"
            ))
        })?;
    let patch = json!({"spec": {"podCIDR": free.to_string(), "podCIDRs": [free.to_string()]}});
    nodes
        .patch(node_name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(free)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_splits() {
        let c: Cidr = "10.42.7.9/16".parse().unwrap();
        assert_eq!(c.to_string(), "10.42.0.0/16");
        assert_eq!(c.subnet(24, 0).unwrap().to_string(), "10.42.0.0/24");
        assert_eq!(c.subnet(24, 255).unwrap().to_string(), "10.42.255.0/24");
        assert!(c.subnet(24, 256).is_none());
        assert!(c.subnet(8, 0).is_none());
        let n = c.subnet(24, 3).unwrap();
        assert_eq!(n.host(1), Ipv4Addr::new(10, 42, 3, 1));
        assert!(n.contains(Ipv4Addr::new(10, 42, 3, 200)));
        assert!(!n.contains(Ipv4Addr::new(10, 42, 4, 1)));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("nonsense".parse::<Cidr>().is_err());
    }

    #[test]
    fn conflist_shape() {
        let c: Cidr = "10.42.1.0/24".parse().unwrap();
        let v = conflist("r8s0", &c, Path::new("/d/ipam"));
        assert_eq!(v["plugins"][0]["type"], "bridge");
        assert_eq!(v["plugins"][0]["bridge"], "r8s0");
        assert_eq!(v["plugins"][0]["ipMasq"], true);
        assert_eq!(v["plugins"][0]["hairpinMode"], true);
        assert_eq!(
            v["plugins"][0]["ipam"]["ranges"][0][0]["gateway"],
            "10.42.1.1"
        );
        assert_eq!(v["plugins"][0]["ipam"]["dataDir"], "/d/ipam");
        assert_eq!(v["plugins"][1]["type"], "portmap");
    }

    #[test]
    fn write_is_idempotent() {
        let d = tempfile::tempdir().unwrap();
        let c: Cidr = "10.42.1.0/24".parse().unwrap();
        assert!(write_conflist(d.path(), "r8s0", &c, &d.path().join("ipam")).unwrap());
        assert!(!write_conflist(d.path(), "r8s0", &c, &d.path().join("ipam")).unwrap());
    }
}
