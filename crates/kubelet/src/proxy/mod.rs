//! The node's service proxy (upstream kube-proxy, iptables mode): Services' ClusterIPs and
//! NodePorts reach their ready endpoints through NAT rules (`rules.rs`), rewritten after
//! every change of a Service or EndpointSlice; health-check servers for LoadBalancer
//! Services with `externalTrafficPolicy: Local` (`healthcheck.rs`). Started by
//! `r8s server` next to its agent.

pub mod healthcheck;
pub mod rules;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::process::Command;
use tokio::sync::Notify;

/// Changes arriving within this window are applied together.
const DEBOUNCE: Duration = Duration::from_millis(100);
/// Delay before a failed apply is retried.
const RETRY: Duration = Duration::from_secs(2);

/// The built-in chains our chains hang off: (table, built-in chain, our chain).
const JUMPS: [(&str, &str, &str); 7] = [
    ("nat", "PREROUTING", rules::SERVICES),
    ("nat", "OUTPUT", rules::SERVICES),
    ("nat", "POSTROUTING", rules::POSTROUTING),
    ("filter", "FORWARD", rules::FORWARD),
    ("filter", "FORWARD", rules::NO_ENDPOINTS),
    ("filter", "OUTPUT", rules::NO_ENDPOINTS),
    ("filter", "INPUT", rules::FIREWALL),
];

/// Lets DNAT send packets addressed to 127.0.0.1 (NodePorts and LoadBalancer IPs on
/// localhost) to pods, as kube-proxy sets it; `R8S-FIREWALL` keeps others out.
const ROUTE_LOCALNET: &str = "/proc/sys/net/ipv4/conf/all/route_localnet";

/// Run the proxy until the process ends. Without iptables it logs why and does nothing.
pub async fn run(client: kube::Client, node_name: String) {
    if Command::new("iptables-restore")
        .arg("--version")
        .output()
        .await
        .map(|o| !o.status.success())
        .unwrap_or(true)
    {
        tracing::warn!("iptables-restore not found: Service ClusterIPs are not proxied");
        return;
    }
    if let Err(e) = std::fs::write(ROUTE_LOCALNET, "1") {
        tracing::warn!("{ROUTE_LOCALNET}: {e}: NodePorts are not reachable on localhost");
    }
    let changed = Arc::new(Notify::new());
    let services = crate::mirror::spawned(Api::<Service>::all(client.clone()), changed.clone());
    let slices = crate::mirror::spawned(Api::<EndpointSlice>::all(client), changed.clone());
    let mut applied: Option<String> = None;
    let mut jumps_ok = false;
    let mut health = healthcheck::HealthServers::default();
    loop {
        changed.notified().await;
        tokio::time::sleep(DEBOUNCE).await;
        let svcs: Vec<Service> = services.state().iter().map(|s| (**s).clone()).collect();
        let eps: Vec<EndpointSlice> = slices.state().iter().map(|s| (**s).clone()).collect();
        let port_rules = rules::port_rules(&svcs, &eps, &node_name);
        health.sync(healthcheck::wanted(&svcs, &port_rules)).await;
        let existing = our_chains().await;
        let text = rules::restore_input(&port_rules, &existing);
        if applied.as_deref() == Some(text.as_str()) && jumps_ok {
            continue;
        }
        match restore(&text).await {
            Ok(()) => {
                applied = Some(text);
                jumps_ok = ensure_jumps().await;
                tracing::debug!(ports = port_rules.len(), "service rules applied");
            }
            Err(e) => {
                tracing::warn!("applying service rules: {e}");
                applied = None;
            }
        }
        if applied.is_none() || !jumps_ok {
            let again = changed.clone();
            tokio::spawn(async move {
                tokio::time::sleep(RETRY).await;
                again.notify_one();
            });
        }
    }
}

/// Our per-service chains that exist now (from `iptables-save -t nat`).
async fn our_chains() -> BTreeSet<String> {
    let Ok(out) = Command::new("iptables-save")
        .args(["-t", "nat"])
        .output()
        .await
    else {
        return BTreeSet::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix(':'))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| c.starts_with("R8S-"))
        .map(str::to_string)
        .collect()
}

async fn restore(text: &str) -> std::io::Result<()> {
    crate::command::feed("iptables-restore", &["--noflush", "--wait"], text).await
}

/// Hook our chains into the built-in ones once; whether all hooks are in place.
async fn ensure_jumps() -> bool {
    let mut ok = true;
    for (table, chain, target) in JUMPS {
        let rule = ["-t", table, "-C", chain, "-j", target];
        let present = Command::new("iptables")
            .args(["--wait"])
            .args(rule)
            .output()
            .await
            .is_ok_and(|o| o.status.success());
        if present {
            continue;
        }
        let inserted = Command::new("iptables")
            .args(["--wait", "-t", table, "-I", chain, "1", "-j", target])
            .output()
            .await;
        match inserted {
            Ok(o) if o.status.success() => {}
            Ok(o) => {
                tracing::warn!(
                    "iptables -t {table} -I {chain} -j {target}: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                ok = false;
            }
            Err(e) => {
                tracing::warn!("iptables: {e}");
                ok = false;
            }
        }
    }
    ok
}
