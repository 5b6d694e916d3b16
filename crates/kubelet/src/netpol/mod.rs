//! NetworkPolicy enforcement on the node (what k3s's embedded kube-router network policy
//! controller does): the pods of this node that policies isolate get nftables chains that
//! let through only what the policies allow (`rules.rs` computes it, `render.rs` writes
//! the nftables script), rewritten after every change of a NetworkPolicy, a Pod (labels,
//! addresses, ports) or a Namespace (labels), debounced like the service proxy. Started
//! by `r8s server` next to the proxy.
//!
//! While no NetworkPolicy exists nothing is installed and neither pods nor namespaces are
//! watched; the first policy starts those watches, and the table goes away with the last.
//!
//! Pod-to-pod traffic on the node's bridge reaches the forward hook only with
//! `br_netfilter`'s `net.bridge.bridge-nf-call-iptables` on, which is turned on (module
//! loaded first if needed) once something is enforced, as k3s does at agent start.

pub mod addrs;
pub mod render;
pub mod rules;

use crate::mirror;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::Api;
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use std::sync::Arc;
use std::time::Duration;
use tokio::process::Command;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// Changes arriving within this window are applied together.
const DEBOUNCE: Duration = Duration::from_millis(100);
/// Delay before a failed apply is retried.
const RETRY: Duration = Duration::from_secs(2);
/// The rules are written again this often even without a change (in case something
/// removed them), as kube-router's periodic full sync.
const RESYNC: Duration = Duration::from_secs(300);
/// Makes bridged (same-node) pod traffic pass the IPv4 forward hook.
const BRIDGE_NF_CALL: &str = "/proc/sys/net/bridge/bridge-nf-call-iptables";

/// The pods and namespaces policies' selectors need, watched while policies exist.
struct Peers {
    pods: Store<Pod>,
    namespaces: Store<Namespace>,
    feeds: [JoinHandle<()>; 2],
}

impl Peers {
    fn start(client: &kube::Client, changed: &Arc<Notify>) -> Peers {
        let config = || watcher::Config::default();
        let (pods, pods_feed) =
            mirror::mirror(Api::<Pod>::all(client.clone()), config(), changed.clone());
        let (namespaces, ns_feed) = mirror::mirror(
            Api::<Namespace>::all(client.clone()),
            config(),
            changed.clone(),
        );
        Peers {
            pods,
            namespaces,
            feeds: [tokio::spawn(pods_feed), tokio::spawn(ns_feed)],
        }
    }

    /// Waits for both initial lists (a namespace list still missing would make
    /// namespace selectors match nothing and deny too much).
    async fn ready(&self) -> bool {
        self.pods.wait_until_ready().await.is_ok()
            && self.namespaces.wait_until_ready().await.is_ok()
    }
}

impl Drop for Peers {
    fn drop(&mut self) {
        for feed in &self.feeds {
            feed.abort();
        }
    }
}

/// Run the policy controller until the process ends. Without `nft` it logs why and does
/// nothing.
pub async fn run(client: kube::Client, node_name: String) {
    if Command::new("nft")
        .arg("--version")
        .output()
        .await
        .map(|o| !o.status.success())
        .unwrap_or(true)
    {
        tracing::warn!("nft not found: NetworkPolicies are not enforced");
        return;
    }
    let changed = Arc::new(Notify::new());
    let policies = mirror::spawned(Api::<NetworkPolicy>::all(client.clone()), changed.clone());
    if policies.wait_until_ready().await.is_err() {
        return;
    }
    let mut peers: Option<Peers> = None;
    let mut applied: Option<String> = None;
    let mut bridge_ok = true;
    // The first round runs at once: it removes what a previous run left if no policy
    // exists any more.
    changed.notify_one();
    loop {
        let resync = tokio::select! {
            () = changed.notified() => false,
            () = tokio::time::sleep(RESYNC) => true,
        };
        tokio::time::sleep(DEBOUNCE).await;
        let pols: Vec<NetworkPolicy> = policies.state().iter().map(|p| (**p).clone()).collect();
        let firewalls = if pols.is_empty() {
            peers = None;
            Vec::new()
        } else {
            let p = peers.get_or_insert_with(|| Peers::start(&client, &changed));
            if !p.ready().await {
                continue;
            }
            let pods: Vec<Pod> = p.pods.state().iter().map(|p| (**p).clone()).collect();
            let nss: Vec<Namespace> = p.namespaces.state().iter().map(|n| (**n).clone()).collect();
            rules::firewalls(&pols, &pods, &nss, &node_name)
        };
        if !firewalls.is_empty() {
            let ok = bridge_netfilter().await;
            if bridge_ok && !ok {
                tracing::warn!(
                    "{BRIDGE_NF_CALL} cannot be turned on (br_netfilter missing): traffic \
                     between pods of this node is not filtered by NetworkPolicies"
                );
            }
            bridge_ok = ok;
        }
        let text = render::script(&firewalls);
        if !resync && applied.as_deref() == Some(text.as_str()) {
            continue;
        }
        match nft(&text).await {
            Ok(()) => {
                tracing::debug!(pods = firewalls.len(), "network policy rules applied");
                applied = Some(text);
            }
            Err(e) => {
                tracing::warn!("applying network policy rules: {e}");
                applied = None;
                let again = changed.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(RETRY).await;
                    again.notify_one();
                });
            }
        }
    }
}

/// Turns `bridge-nf-call-iptables` on (loading br_netfilter first if its sysctls are
/// missing); whether it is on.
async fn bridge_netfilter() -> bool {
    if std::fs::metadata(BRIDGE_NF_CALL).is_err() {
        let _ = Command::new("modprobe").arg("br_netfilter").output().await;
    }
    match std::fs::read_to_string(BRIDGE_NF_CALL) {
        Ok(v) if v.trim() == "1" => true,
        Ok(_) => std::fs::write(BRIDGE_NF_CALL, "1").is_ok(),
        Err(_) => false,
    }
}

/// Runs an nftables script (one transaction).
async fn nft(script: &str) -> std::io::Result<()> {
    crate::command::feed("nft", &["-f", "-"], script).await
}
