//! Node heartbeats: one `coordination.k8s.io/v1` Lease per node in `kube-node-lease`,
//! renewed every `lease_interval` (holder = node name, 40 s duration, as the kubelet). One
//! loop serves every node, spreading renewals evenly over the interval so 5,000 nodes cost
//! a steady 500 writes/s instead of bursts.

use crate::nodes::Registered;
use crate::{SimOptions, api_code};
use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use std::sync::Arc;

/// Namespace of node leases.
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";
/// `spec.leaseDurationSeconds` the kubelet uses.
const LEASE_DURATION_SECONDS: i32 = 40;

/// metav1.MicroTime now.
fn now_micro() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

fn lease_object(node: &Registered) -> serde_json::Value {
    let now = now_micro();
    json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": node.name,
            "namespace": NODE_LEASE_NAMESPACE,
            "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": node.name, "uid": node.uid}],
        },
        "spec": {
            "holderIdentity": node.name,
            "leaseDurationSeconds": LEASE_DURATION_SECONDS,
            "acquireTime": now,
            "renewTime": now,
        },
    })
}

/// Renew one lease, creating it if missing.
async fn renew(api: &Api<Lease>, node: &Registered) -> Result<(), kube::Error> {
    let patch = json!({"spec": {
        "holderIdentity": node.name,
        "leaseDurationSeconds": LEASE_DURATION_SECONDS,
        "renewTime": now_micro(),
    }});
    match api
        .patch(&node.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if api_code(&e) == Some(404) => {
            let lease: Lease =
                serde_json::from_value(lease_object(node)).map_err(kube::Error::SerdeError)?;
            match api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(()),
                Err(e) if api_code(&e) == Some(409) => Ok(()),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}

/// Renew every node's lease forever: the first round at once, later rounds spread out.
pub async fn run(
    client: kube::Client,
    opts: Arc<SimOptions>,
    nodes: Arc<Vec<Registered>>,
) -> anyhow::Result<()> {
    let api: Api<Lease> = Api::namespaced(client, NODE_LEASE_NAMESPACE);
    let interval = opts.lease_interval;
    let n = nodes.len().max(1) as u32;
    let mut first = true;
    loop {
        let start = tokio::time::Instant::now();
        let spread = !first;
        futures::stream::iter(0..nodes.len())
            .map(|i| {
                let api = api.clone();
                let nodes = nodes.clone();
                async move {
                    if spread {
                        tokio::time::sleep_until(start + interval * (i as u32) / n).await;
                    }
                    let node = &nodes[i];
                    if let Err(e) = renew(&api, node).await {
                        tracing::warn!(node = %node.name, error = %e, "lease renewal failed");
                    }
                }
            })
            .buffer_unordered(opts.write_concurrency.max(1))
            .collect::<Vec<()>>()
            .await;
        first = false;
        tokio::time::sleep_until(start + interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_shape() {
        let l = lease_object(&Registered {
            name: "sim-0".into(),
            uid: "u1".into(),
        });
        assert_eq!(l["spec"]["holderIdentity"], "sim-0");
        assert_eq!(l["spec"]["leaseDurationSeconds"], 40);
        assert_eq!(l["metadata"]["ownerReferences"][0]["uid"], "u1");
        let t = l["spec"]["renewTime"].as_str().unwrap_or("");
        assert_eq!(t.len(), "2024-01-01T00:00:00.000000Z".len());
        assert!(serde_json::from_value::<Lease>(l).is_ok());
    }
}
