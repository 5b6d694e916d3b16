//! Node objects: what a kubelet registers (capacity, conditions, addresses, nodeInfo,
//! standard labels), registration with bounded concurrency, and the periodic status report
//! (kubelet's `nodeStatusReportFrequency`, 5 minutes when nothing changes).

use crate::{INDEX_ANNOTATION, SimError, SimOptions, api_code, ipam};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// How often a healthy kubelet re-posts an unchanged node status.
const STATUS_REPORT_INTERVAL: Duration = Duration::from_secs(300);

/// The name of simulated node `index`.
pub fn node_name(prefix: &str, index: usize) -> String {
    format!("{prefix}-{index}")
}

/// A node as registered: enough to own its Lease.
#[derive(Debug, Clone)]
pub struct Registered {
    pub name: String,
    pub uid: String,
}

/// RFC 3339 with second precision, as metav1.Time serialises.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn labels(opts: &SimOptions, index: usize, name: &str) -> Value {
    let mut l = serde_json::Map::new();
    for (k, v) in &opts.labels {
        l.insert(k.clone(), json!(v));
    }
    for (k, v) in [
        ("kubernetes.io/hostname", name),
        ("kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", "amd64"),
        ("beta.kubernetes.io/os", "linux"),
        ("beta.kubernetes.io/arch", "amd64"),
        ("node.kubernetes.io/instance-type", "sim"),
        ("type", "sim"),
    ] {
        l.insert(k.into(), json!(v));
    }
    if opts.zones > 0 {
        l.insert("topology.kubernetes.io/region".into(), json!("sim-region"));
        l.insert(
            "topology.kubernetes.io/zone".into(),
            json!(format!("zone-{}", index % opts.zones)),
        );
    }
    Value::Object(l)
}

/// `status` of the group's node `index`; `since` is when its conditions last changed.
pub fn node_status(opts: &SimOptions, index: usize, name: &str, since: &str) -> Value {
    let now = now_rfc3339();
    // Addresses and machine ids must be unique across groups: use the global index.
    let index = opts.global_index(index);
    let resources = json!({
        "cpu": opts.cpu,
        "memory": opts.memory,
        "pods": opts.pods_per_node.to_string(),
        "ephemeral-storage": opts.ephemeral_storage,
    });
    let cond = |kind: &str, status: &str, reason: &str, message: &str| {
        json!({"type": kind, "status": status, "reason": reason, "message": message,
               "lastHeartbeatTime": now, "lastTransitionTime": since})
    };
    json!({
        "capacity": resources,
        "allocatable": resources,
        "phase": "Running",
        "conditions": [
            cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            cond("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
        ],
        "addresses": [
            {"type": "InternalIP", "address": ipam::node_ip(index).to_string()},
            {"type": "Hostname", "address": name},
        ],
        // No `daemonEndpoints`: nothing listens at a simulated node's address, so the API
        // server must not scrape or proxy to it (its 10.200.x.y address leads nowhere).
        "nodeInfo": {
            "machineID": format!("sim-{index:08x}"),
            "systemUUID": format!("00000000-0000-0000-0000-{index:012x}"),
            "bootID": format!("sim-boot-{index:08x}"),
            "kernelVersion": "6.1.0-sim",
            "osImage": "r8s simulated node",
            "containerRuntimeVersion": "sim://1.0.0",
            "kubeletVersion": "v1.33.0",
            "kubeProxyVersion": "v1.33.0",
            "operatingSystem": "linux",
            "architecture": "amd64",
        },
    })
}

/// The whole Node object for the group's node `index` (its name and zone follow the local
/// index, its addresses the global one).
pub fn node_object(opts: &SimOptions, index: usize, since: &str) -> Value {
    let name = node_name(&opts.name_prefix, index);
    let global = opts.global_index(index);
    let cidr = ipam::pod_cidr(global);
    let mut spec =
        json!({"podCIDR": cidr, "podCIDRs": [cidr], "providerID": format!("sim://{name}")});
    if !opts.taints.is_empty() {
        spec["taints"] = json!(opts.taints);
    }
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": labels(opts, index, &name),
            "annotations": {
                "node.alpha.kubernetes.io/ttl": "0",
                "sim.r8s.io/simulated": "true",
                INDEX_ANNOTATION: global.to_string(),
            },
        },
        "spec": spec,
        "status": node_status(opts, index, &name, since),
    })
}

/// Create (or take over) one node; returns its uid.
async fn register(
    api: &Api<Node>,
    opts: &SimOptions,
    index: usize,
    since: &str,
) -> Result<Registered, kube::Error> {
    let obj = node_object(opts, index, since);
    let name = node_name(&opts.name_prefix, index);
    let node: Node = serde_json::from_value(obj.clone()).map_err(kube::Error::SerdeError)?;
    match api.create(&PostParams::default(), &node).await {
        Ok(n) => Ok(Registered {
            name,
            uid: n.metadata.uid.unwrap_or_default(),
        }),
        Err(e) if api_code(&e) == Some(409) => {
            // Already registered (a restart): bring labels, index, taints and status up to
            // date. spec.podCIDR is immutable; the group's block is kept across restarts.
            let patch = json!({
                "metadata": {
                    "labels": obj["metadata"]["labels"],
                    "annotations": {INDEX_ANNOTATION: obj["metadata"]["annotations"][INDEX_ANNOTATION]},
                },
                "spec": {"taints": obj["spec"].get("taints").cloned().unwrap_or(json!(null))},
            });
            let n = api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
            let status = json!({"status": obj["status"]});
            api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                .await?;
            Ok(Registered {
                name,
                uid: n.metadata.uid.unwrap_or_default(),
            })
        }
        Err(e) => Err(e),
    }
}

/// Register every node, `write_concurrency` at a time; transient errors are retried a few
/// times before giving up.
pub async fn register_all(
    client: &kube::Client,
    opts: &Arc<SimOptions>,
) -> Result<Arc<Vec<Registered>>, SimError> {
    let api: Api<Node> = Api::all(client.clone());
    let since = now_rfc3339();
    let results: Vec<Result<Registered, SimError>> = futures::stream::iter(0..opts.count)
        .map(|i| {
            let api = api.clone();
            let since = since.clone();
            async move {
                let mut attempt = 0;
                loop {
                    match register(&api, opts, i, &since).await {
                        Ok(r) => return Ok(r),
                        Err(e)
                            if attempt < 5
                                && api_code(&e)
                                    .is_none_or(|c| c >= 500 || c == 409 || c == 429) =>
                        {
                            attempt += 1;
                            tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
                        }
                        Err(source) => {
                            return Err(SimError::Register {
                                node: node_name(&opts.name_prefix, i),
                                source,
                            });
                        }
                    }
                }
            }
        })
        .buffered(opts.write_concurrency.max(1))
        .collect()
        .await;
    let mut out = Vec::with_capacity(results.len());
    for r in results {
        out.push(r?);
    }
    Ok(Arc::new(out))
}

/// Re-post every node's status every five minutes (spread over the period), re-registering
/// nodes that someone deleted.
pub async fn refresh_status(client: kube::Client, opts: Arc<SimOptions>) -> anyhow::Result<()> {
    let api: Api<Node> = Api::all(client);
    let since = now_rfc3339();
    loop {
        let start = tokio::time::Instant::now();
        let n = opts.count.max(1) as u32;
        futures::stream::iter(0..opts.count)
            .map(|i| {
                let api = api.clone();
                let opts = opts.clone();
                let since = since.clone();
                async move {
                    tokio::time::sleep_until(start + STATUS_REPORT_INTERVAL * (i as u32) / n).await;
                    let name = node_name(&opts.name_prefix, i);
                    let status = json!({"status": node_status(&opts, i, &name, &since)});
                    match api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status)).await {
                        Ok(_) => {}
                        Err(e) if api_code(&e) == Some(404) => {
                            if let Err(e) = register(&api, &opts, i, &since).await {
                                tracing::warn!(node = %name, error = %e, "re-registering node failed");
                            }
                        }
                        Err(e) => tracing::warn!(node = %name, error = %e, "node status update failed"),
                    }
                }
            })
            .buffer_unordered(opts.write_concurrency.max(1))
            .collect::<Vec<()>>()
            .await;
        tokio::time::sleep_until(start + STATUS_REPORT_INTERVAL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_object_has_kubelet_shape() {
        let opts = SimOptions {
            zones: 3,
            taints: vec![],
            ..Default::default()
        };
        let n = node_object(&opts, 4, "2024-01-01T00:00:00Z");
        assert_eq!(n["metadata"]["name"], "sim-4");
        assert_eq!(n["metadata"]["labels"]["kubernetes.io/hostname"], "sim-4");
        assert_eq!(n["metadata"]["labels"]["type"], "sim");
        assert_eq!(
            n["metadata"]["labels"]["node.kubernetes.io/instance-type"],
            "sim"
        );
        assert_eq!(
            n["metadata"]["labels"]["topology.kubernetes.io/zone"],
            "zone-1"
        );
        assert_eq!(n["status"]["capacity"]["pods"], "110");
        assert_eq!(n["status"]["allocatable"]["cpu"], "32");
        assert_eq!(n["status"]["nodeInfo"]["kubeletVersion"], "v1.33.0");
        assert_eq!(n["status"]["addresses"][0]["address"], "10.200.0.5");
        assert_eq!(n["spec"]["podCIDR"], "10.128.4.0/24");
        let ready = n["status"]["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
            .cloned()
            .unwrap_or_default();
        assert_eq!(ready["status"], "True");
        // It deserialises as a typed Node.
        let typed: Result<Node, _> = serde_json::from_value(n);
        assert!(typed.is_ok());
    }

    #[test]
    fn addresses_follow_the_global_index() {
        let opts = SimOptions {
            name_prefix: "bad".into(),
            zones: 3,
            index_offset: Some(300),
            ..Default::default()
        };
        let n = node_object(&opts, 4, "2024-01-01T00:00:00Z");
        // Name and zone stay local to the group.
        assert_eq!(n["metadata"]["name"], "bad-4");
        assert_eq!(
            n["metadata"]["labels"]["topology.kubernetes.io/zone"],
            "zone-1"
        );
        assert_eq!(n["metadata"]["annotations"][INDEX_ANNOTATION], "304");
        assert_eq!(n["status"]["addresses"][0]["address"], "10.200.1.49");
        assert_eq!(n["spec"]["podCIDR"], "10.129.48.0/24");
        assert_eq!(n["status"]["nodeInfo"]["machineID"], "sim-00000130");
    }
}
