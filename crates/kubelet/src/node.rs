//! Node registration and heartbeats: the Node object (labels, capacity, addresses,
//! conditions, nodeInfo) created or adopted at start, its status re-posted when it
//! changes (at least every 5 minutes), and the node Lease in `kube-node-lease` renewed
//! every 10 s.

use crate::KubeletConfig;
use crate::cri::Cri;
use crate::error::{Error, Result};
use crate::sysinfo::HostInfo;
use chrono::{SecondsFormat, Utc};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tracing::{debug, warn};

/// The version the node reports (r8s implements Kubernetes 1.33).
pub const KUBELET_VERSION: &str = "v1.33.0";
/// Lease renewal interval and duration.
pub const LEASE_RENEW: Duration = Duration::from_secs(10);
pub const LEASE_DURATION_SECS: i32 = 40;
/// Status is re-posted at least this often even without changes.
const STATUS_REPORT: Duration = Duration::from_secs(300);
/// Memory/disk thresholds for the pressure conditions (upstream's hard eviction defaults).
const MEMORY_AVAILABLE_MIN_KIB: u64 = 100 * 1024;
const DISK_AVAILABLE_MIN_PERCENT: u64 = 10;

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn now_micro() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The node's labels.
pub fn node_labels(cfg: &KubeletConfig) -> BTreeMap<String, String> {
    let arch = crate::images::archive::go_arch();
    let mut l = BTreeMap::new();
    l.insert("kubernetes.io/hostname".into(), cfg.node_name.clone());
    l.insert("kubernetes.io/os".into(), "linux".into());
    l.insert("kubernetes.io/arch".into(), arch.into());
    l.insert("beta.kubernetes.io/os".into(), "linux".into());
    l.insert("beta.kubernetes.io/arch".into(), arch.into());
    if cfg.control_plane {
        l.insert(
            "node-role.kubernetes.io/control-plane".into(),
            "true".into(),
        );
    }
    l
}

/// What the runtime reports about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuntimeHealth {
    /// `containerd://1.6.20`.
    pub version: String,
    /// Empty when ready; otherwise why not.
    pub problem: String,
    /// Local images: (names, size in bytes).
    pub images: Vec<(Vec<String>, u64)>,
}

/// Asks the runtime for its version, readiness (RuntimeReady + NetworkReady) and images.
pub async fn runtime_health(cri: &Cri) -> RuntimeHealth {
    let mut h = RuntimeHealth::default();
    match cri.version().await {
        Ok(v) => h.version = format!("{}://{}", v.runtime_name, v.runtime_version),
        Err(e) => {
            h.problem = format!("container runtime is down: {e}");
            return h;
        }
    }
    match cri.status().await {
        Ok(s) => {
            let bad: Vec<String> = s
                .status
                .map(|st| st.conditions)
                .unwrap_or_default()
                .into_iter()
                .filter(|c| !c.status)
                .map(|c| {
                    format!(
                        "{}=false reason:{} message:{}",
                        c.r#type, c.reason, c.message
                    )
                })
                .collect();
            if !bad.is_empty() {
                h.problem = format!("container runtime not ready: {}", bad.join(", "));
            }
        }
        Err(e) => h.problem = format!("container runtime status check failed: {e}"),
    }
    if let Ok(images) = cri.list_images().await {
        let mut list: Vec<(Vec<String>, u64)> = images
            .into_iter()
            .map(|i| {
                let mut names = i.repo_tags;
                names.extend(i.repo_digests);
                (names, i.size)
            })
            .filter(|(n, _)| !n.is_empty())
            .collect();
        list.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        list.truncate(50);
        h.images = list;
    }
    h
}

/// (type, status, reason, message) of the four node conditions.
fn conditions(host: &HostInfo, rt: &RuntimeHealth) -> Vec<(&'static str, bool, String, String)> {
    let mem = host.memory_available_kib > 0 && host.memory_available_kib < MEMORY_AVAILABLE_MIN_KIB;
    let disk = host.disk_total > 0
        && host.disk_available.saturating_mul(100) / host.disk_total < DISK_AVAILABLE_MIN_PERCENT;
    let ready = rt.problem.is_empty();
    vec![
        (
            "MemoryPressure",
            mem,
            if mem {
                "KubeletHasInsufficientMemory"
            } else {
                "KubeletHasSufficientMemory"
            }
            .into(),
            format!(
                "kubelet has {} memory available",
                if mem { "insufficient" } else { "sufficient" }
            ),
        ),
        (
            "DiskPressure",
            disk,
            if disk {
                "KubeletHasDiskPressure"
            } else {
                "KubeletHasNoDiskPressure"
            }
            .into(),
            format!("kubelet has {}disk pressure", if disk { "" } else { "no " }),
        ),
        (
            "PIDPressure",
            false,
            "KubeletHasSufficientPID".into(),
            "kubelet has sufficient PID available".into(),
        ),
        (
            "Ready",
            ready,
            if ready {
                "KubeletReady"
            } else {
                "KubeletNotReady"
            }
            .into(),
            if ready {
                "kubelet is posting ready status".into()
            } else {
                rt.problem.clone()
            },
        ),
    ]
}

/// The full `status` of the Node. `previous` supplies lastTransitionTime of unchanged
/// conditions.
pub fn node_status(
    cfg: &KubeletConfig,
    host: &HostInfo,
    rt: &RuntimeHealth,
    previous: &Value,
) -> Value {
    let ts = now();
    let conds: Vec<Value> = conditions(host, rt)
        .into_iter()
        .map(|(kind, status, reason, message)| {
            let status = if status { "True" } else { "False" };
            let transition = previous
                .get("conditions")
                .and_then(Value::as_array)
                .and_then(|a| a.iter().find(|c| c["type"] == kind))
                .filter(|c| c["status"] == status)
                .and_then(|c| c.get("lastTransitionTime").cloned())
                .unwrap_or_else(|| json!(ts));
            json!({"type": kind, "status": status, "reason": reason, "message": message,
                   "lastHeartbeatTime": ts, "lastTransitionTime": transition})
        })
        .collect();
    let capacity = json!({
        "cpu": host.cpus.to_string(),
        "memory": format!("{}Ki", host.memory_total_kib),
        "pods": cfg.max_pods.to_string(),
        "ephemeral-storage": format!("{}Ki", host.disk_total / 1024),
        "hugepages-2Mi": "0",
        "hugepages-1Gi": "0",
    });
    // Allocatable withholds the hard-eviction reserves, as upstream does by default.
    let allocatable = json!({
        "cpu": host.cpus.to_string(),
        "memory": format!("{}Ki", host.memory_total_kib.saturating_sub(MEMORY_AVAILABLE_MIN_KIB)),
        "pods": cfg.max_pods.to_string(),
        "ephemeral-storage": (host.disk_total / 100 * (100 - DISK_AVAILABLE_MIN_PERCENT)).to_string(),
        "hugepages-2Mi": "0",
        "hugepages-1Gi": "0",
    });
    // The bound port of the kubelet server (0: no server runs).
    let kubelet_port = cfg.server_addr.map_or(0, |a| a.port());
    let images: Vec<Value> = rt
        .images
        .iter()
        .map(|(names, size)| json!({"names": names, "sizeBytes": size}))
        .collect();
    json!({
        "capacity": capacity,
        "allocatable": allocatable,
        "conditions": conds,
        "addresses": [
            {"type": "InternalIP", "address": cfg.node_ip.to_string()},
            {"type": "Hostname", "address": cfg.node_name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet_port}},
        "nodeInfo": {
            "machineID": host.machine_id,
            "systemUUID": host.system_uuid,
            "bootID": host.boot_id,
            "kernelVersion": host.kernel_version,
            "osImage": host.os_image,
            "containerRuntimeVersion": rt.version,
            "kubeletVersion": KUBELET_VERSION,
            "kubeProxyVersion": KUBELET_VERSION,
            "operatingSystem": "linux",
            "architecture": crate::images::archive::go_arch(),
        },
        "images": images,
    })
}

/// Creates the Node (or adopts an existing one: labels are merged in) and returns it.
pub async fn register(client: &kube::Client, cfg: &KubeletConfig) -> Result<Node> {
    let nodes: Api<Node> = Api::all(client.clone());
    let labels = node_labels(cfg);
    let body: Node = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": cfg.node_name, "labels": labels},
        "spec": {},
    }))?;
    match nodes.create(&PostParams::default(), &body).await {
        Ok(n) => Ok(n),
        Err(kube::Error::Api(e)) if e.code == 409 => {
            let patch = json!({"metadata": {"labels": labels}});
            Ok(nodes
                .patch(
                    &cfg.node_name,
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await?)
        }
        Err(e) => Err(Error::Kube(e)),
    }
}

/// Posts the status now; returns what was posted.
pub async fn post_status(
    client: &kube::Client,
    cfg: &KubeletConfig,
    cri: &Cri,
    previous: &Value,
) -> Result<Value> {
    let host = HostInfo::read(&cfg.data_dir);
    let rt = runtime_health(cri).await;
    let status = node_status(cfg, &host, &rt, previous);
    let nodes: Api<Node> = Api::all(client.clone());
    nodes
        .patch_status(
            &cfg.node_name,
            &PatchParams::default(),
            &Patch::Merge(&json!({"status": status})),
        )
        .await?;
    Ok(status)
}

/// Status without the heartbeat timestamps, to detect real changes.
fn comparable(status: &Value) -> Value {
    let mut s = status.clone();
    if let Some(conds) = s.get_mut("conditions").and_then(Value::as_array_mut) {
        for c in conds {
            if let Some(o) = c.as_object_mut() {
                o.remove("lastHeartbeatTime");
            }
        }
    }
    s
}

/// Re-posts the node status when it changes (checked every second until Ready, then
/// every 10 s) and at least every 5 minutes.
pub async fn status_loop(client: kube::Client, cfg: std::sync::Arc<KubeletConfig>, cri: Cri) {
    let mut last = Value::Null;
    let mut last_post = Instant::now();
    loop {
        let host = HostInfo::read(&cfg.data_dir);
        let rt = runtime_health(&cri).await;
        let status = node_status(&cfg, &host, &rt, &last);
        if comparable(&status) != comparable(&last) || last_post.elapsed() >= STATUS_REPORT {
            let nodes: Api<Node> = Api::all(client.clone());
            match nodes
                .patch_status(
                    &cfg.node_name,
                    &PatchParams::default(),
                    &Patch::Merge(&json!({"status": status})),
                )
                .await
            {
                Ok(_) => {
                    debug!(ready = rt.problem.is_empty(), "node status posted");
                    last = status;
                    last_post = Instant::now();
                }
                Err(e) => warn!("posting node status: {e}"),
            }
        }
        let ready = rt.problem.is_empty();
        tokio::time::sleep(if ready {
            Duration::from_secs(10)
        } else {
            Duration::from_secs(1)
        })
        .await;
    }
}

/// Keeps the node Lease (owned by the Node) renewed.
pub async fn lease_loop(client: kube::Client, node_name: String, node_uid: String) {
    let leases: Api<Lease> = Api::namespaced(client, "kube-node-lease");
    loop {
        if let Err(e) = renew_lease(&leases, &node_name, &node_uid).await {
            warn!("renewing node lease: {e}");
        }
        tokio::time::sleep(LEASE_RENEW).await;
    }
}

async fn renew_lease(leases: &Api<Lease>, node_name: &str, node_uid: &str) -> Result<()> {
    let spec = json!({
        "holderIdentity": node_name,
        "leaseDurationSeconds": LEASE_DURATION_SECS,
        "renewTime": now_micro(),
    });
    match leases.get_opt(node_name).await? {
        Some(_) => {
            leases
                .patch(
                    node_name,
                    &PatchParams::default(),
                    &Patch::Merge(&json!({"spec": spec})),
                )
                .await?;
        }
        None => {
            let lease: Lease = serde_json::from_value(json!({
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {
                    "name": node_name,
                    "namespace": "kube-node-lease",
                    "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": node_name, "uid": node_uid}],
                },
                "spec": spec,
            }))?;
            leases.create(&PostParams::default(), &lease).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    fn cfg() -> KubeletConfig {
        let mut c = KubeletConfig::new("n1", IpAddr::V4(Ipv4Addr::LOCALHOST), "/tmp/x".into());
        c.control_plane = true;
        c
    }

    #[test]
    fn labels_and_status() {
        let c = cfg();
        let l = node_labels(&c);
        assert_eq!(l["kubernetes.io/hostname"], "n1");
        assert_eq!(l["node-role.kubernetes.io/control-plane"], "true");
        let host = HostInfo {
            cpus: 2,
            memory_total_kib: 1024 * 1024,
            memory_available_kib: 512 * 1024,
            disk_total: 100 << 30,
            disk_available: 50 << 30,
            ..Default::default()
        };
        let rt = RuntimeHealth {
            version: "containerd://1.6.20".into(),
            ..Default::default()
        };
        let s = node_status(&c, &host, &rt, &Value::Null);
        assert_eq!(s["capacity"]["cpu"], "2");
        assert_eq!(s["capacity"]["pods"], "110");
        assert_eq!(s["nodeInfo"]["kubeletVersion"], "v1.33.0");
        assert_eq!(s["daemonEndpoints"]["kubeletEndpoint"]["Port"], 0);
        let mut served = c.clone();
        served.server_addr = Some("0.0.0.0:10250".parse().unwrap());
        let s2 = node_status(&served, &host, &rt, &Value::Null);
        assert_eq!(s2["daemonEndpoints"]["kubeletEndpoint"]["Port"], 10250);
        assert_eq!(s["addresses"][0]["address"], "127.0.0.1");
        let ready = s["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap();
        assert_eq!(ready["status"], "True");
        // Transition time is kept while the status stays the same.
        let mut prev = s.clone();
        prev["conditions"][3]["lastTransitionTime"] = json!("2000-01-01T00:00:00Z");
        let again = node_status(&c, &host, &rt, &prev);
        assert_eq!(
            again["conditions"][3]["lastTransitionTime"],
            "2000-01-01T00:00:00Z"
        );
        let down = RuntimeHealth {
            problem: "NetworkReady=false".into(),
            ..rt.clone()
        };
        let s2 = node_status(&c, &host, &down, &prev);
        assert_eq!(s2["conditions"][3]["status"], "False");
        assert_ne!(
            s2["conditions"][3]["lastTransitionTime"],
            "2000-01-01T00:00:00Z"
        );
        assert_eq!(comparable(&s), comparable(&node_status(&c, &host, &rt, &s)));
    }
}
