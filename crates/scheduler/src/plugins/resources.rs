//! NodeResourcesFit (filter and LeastAllocated score) and NodeResourcesBalancedAllocation.

use crate::cache::NodeInfo;
use crate::framework::{Code, MAX_NODE_SCORE, Plugin, Status};
use crate::model::{NodeSpec, PodInfo, Resources};
use std::borrow::Cow;

/// Requests of pods nominated to a node (with at least the incoming pod's priority), which
/// the filter treats as already placed.
#[derive(Debug, Clone, Default)]
pub struct Reserved {
    pub requests: Resources,
    pub pods: i64,
}

/// NodeResourcesFit filter: pod count and every requested resource against what is left;
/// `UnschedulableAndUnresolvable` when a request exceeds the node's whole allocatable.
pub fn fit(
    pod: &PodInfo,
    node: &NodeInfo,
    spec: &NodeSpec,
    reserved: &Reserved,
) -> Result<(), Status> {
    let mut reasons: Vec<Cow<'static, str>> = Vec::new();
    let mut unresolvable = false;
    if node.pods.len() as i64 + reserved.pods + 1 > spec.allowed_pods {
        reasons.push("Too many pods".into());
    }
    let req = &pod.requests;
    if !req.is_zero() {
        let alloc = &spec.allocatable;
        let used = |a: i64, b: i64| a + b;
        let mut check = |want: i64, total: i64, in_use: i64, reason: Cow<'static, str>| {
            if want > 0 && want > total - in_use {
                reasons.push(reason);
                unresolvable |= want > total;
            }
        };
        check(
            req.milli_cpu,
            alloc.milli_cpu,
            used(node.requested.milli_cpu, reserved.requests.milli_cpu),
            "Insufficient cpu".into(),
        );
        check(
            req.memory,
            alloc.memory,
            used(node.requested.memory, reserved.requests.memory),
            "Insufficient memory".into(),
        );
        check(
            req.ephemeral,
            alloc.ephemeral,
            used(node.requested.ephemeral, reserved.requests.ephemeral),
            "Insufficient ephemeral-storage".into(),
        );
        for (name, want) in &req.scalar {
            let in_use = node.requested.scalar(name) + reserved.requests.scalar(name);
            check(
                *want,
                alloc.scalar(name),
                in_use,
                format!("Insufficient {name}").into(),
            );
        }
    }
    if reasons.is_empty() {
        return Ok(());
    }
    let code = if unresolvable {
        Code::UnschedulableAndUnresolvable
    } else {
        Code::Unschedulable
    };
    Err(Status {
        code,
        plugin: Plugin::NodeResourcesFit,
        reasons,
    })
}

fn least_requested(requested: i64, capacity: i64) -> i64 {
    if capacity <= 0 || requested > capacity {
        return 0;
    }
    (capacity - requested) * MAX_NODE_SCORE / capacity
}

/// LeastAllocated (NodeResourcesFit's default score): free CPU and memory after placing
/// the pod, each 0–100, averaged; uses the non-zero requests (100m / 200Mi defaults).
pub fn least_allocated(pod: &PodInfo, node: &NodeInfo, spec: &NodeSpec) -> i64 {
    let cpu = least_requested(
        node.non_zero_cpu + pod.non_zero_cpu,
        spec.allocatable.milli_cpu,
    );
    let mem = least_requested(
        node.non_zero_mem + pod.non_zero_mem,
        spec.allocatable.memory,
    );
    (cpu + mem) / 2
}

/// Whether BalancedAllocation has anything to say: upstream skips best-effort pods.
pub fn balanced_applies(pod: &PodInfo) -> bool {
    pod.requests.milli_cpu != 0 || pod.requests.memory != 0
}

/// BalancedAllocation: 100 × (1 − std-dev of the CPU and memory utilisation fractions)
/// after placing the pod, on actual requests.
pub fn balanced_allocation(pod: &PodInfo, node: &NodeInfo, spec: &NodeSpec) -> i64 {
    let mut fractions = [0f64; 2];
    let mut n = 0;
    for (req, alloc) in [
        (
            node.requested.milli_cpu + pod.requests.milli_cpu,
            spec.allocatable.milli_cpu,
        ),
        (
            node.requested.memory + pod.requests.memory,
            spec.allocatable.memory,
        ),
    ] {
        if alloc == 0 {
            continue;
        }
        fractions[n] = (req as f64 / alloc as f64).min(1.0);
        n += 1;
    }
    let std = if n == 2 {
        ((fractions[0] - fractions[1]) / 2.0).abs()
    } else {
        0.0
    };
    ((1.0 - std) * MAX_NODE_SCORE as f64) as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Node, Pod};
    use serde_json::json;
    use std::sync::Arc;

    fn pod(reqs: serde_json::Value) -> PodInfo {
        let p: Pod = serde_json::from_value(json!({"metadata": {"name": "p", "namespace": "d"},
            "spec": {"containers": [{"name": "c", "resources": {"requests": reqs}}]}}))
        .expect("pod");
        PodInfo::from_pod(&p)
    }

    fn node(alloc: serde_json::Value, pods: &[serde_json::Value]) -> (NodeInfo, NodeSpec) {
        let n: Node = serde_json::from_value(
            json!({"metadata": {"name": "n"}, "status": {"allocatable": alloc,
            "conditions": [{"type": "Ready", "status": "True"}]}}),
        )
        .expect("node");
        let spec = NodeSpec::from_node(&n);
        let mut info = NodeInfo::new(0, "n");
        for (i, r) in pods.iter().enumerate() {
            let mut p = pod(r.clone());
            p.uid = format!("u{i}");
            info.add_pod(Arc::new(p));
        }
        (info, spec)
    }

    #[test]
    fn fit_table() {
        let alloc = json!({"cpu": "2", "memory": "2Gi", "pods": "3", "example.com/gpu": "1"});
        #[allow(clippy::type_complexity)] // a table of test cases
        let cases: Vec<(
            serde_json::Value,
            Vec<serde_json::Value>,
            Result<(), (Code, Vec<&str>)>,
        )> = vec![
            (json!({"cpu": "1"}), vec![json!({"cpu": "1"})], Ok(())),
            (
                json!({"cpu": "1"}),
                vec![json!({"cpu": "1500m"})],
                Err((Code::Unschedulable, vec!["Insufficient cpu"])),
            ),
            (
                json!({"cpu": "3"}),
                vec![],
                Err((Code::UnschedulableAndUnresolvable, vec!["Insufficient cpu"])),
            ),
            (
                json!({"cpu": "1", "memory": "2Gi"}),
                vec![json!({"cpu": "1500m", "memory": "1Gi"})],
                Err((
                    Code::Unschedulable,
                    vec!["Insufficient cpu", "Insufficient memory"],
                )),
            ),
            (
                json!({}),
                vec![json!({}), json!({}), json!({})],
                Err((Code::Unschedulable, vec!["Too many pods"])),
            ),
            (
                json!({"example.com/gpu": "1"}),
                vec![json!({"example.com/gpu": "1"})],
                Err((Code::Unschedulable, vec!["Insufficient example.com/gpu"])),
            ),
            (
                json!({"example.com/fpga": "1"}),
                vec![],
                Err((
                    Code::UnschedulableAndUnresolvable,
                    vec!["Insufficient example.com/fpga"],
                )),
            ),
            (
                json!({"ephemeral-storage": "1Gi"}),
                vec![],
                Err((
                    Code::UnschedulableAndUnresolvable,
                    vec!["Insufficient ephemeral-storage"],
                )),
            ),
        ];
        for (req, existing, want) in cases {
            let (info, spec) = node(alloc.clone(), &existing);
            let got = fit(&pod(req.clone()), &info, &spec, &Reserved::default()).map_err(|s| {
                (
                    s.code,
                    s.reasons.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
                )
            });
            let want =
                want.map_err(|(c, r)| (c, r.into_iter().map(String::from).collect::<Vec<_>>()));
            assert_eq!(got, want, "{req} on {existing:?}");
        }
        // Nominated pods' requests count.
        let (info, spec) = node(alloc, &[]);
        let reserved = Reserved {
            requests: Resources {
                milli_cpu: 1500,
                ..Default::default()
            },
            pods: 1,
        };
        assert!(fit(&pod(json!({"cpu": "1"})), &info, &spec, &reserved).is_err());
    }

    #[test]
    fn scores_table() {
        // 4 CPU / 8Gi node with 1 CPU / 2Gi used; pod asks 1 CPU / 2Gi.
        let (info, spec) = node(
            json!({"cpu": "4", "memory": "8Gi", "pods": "110"}),
            &[json!({"cpu": "1", "memory": "2Gi"})],
        );
        let p = pod(json!({"cpu": "1", "memory": "2Gi"}));
        assert_eq!(least_allocated(&p, &info, &spec), 50);
        assert_eq!(balanced_allocation(&p, &info, &spec), 100);
        // Unbalanced: CPU 3/4 used, memory 2/8 → std = |0.75 - 0.25| / 2 = 0.25.
        let p = pod(json!({"cpu": "2"}));
        assert_eq!(balanced_allocation(&p, &info, &spec), 75);
        // Best-effort pods use the non-zero defaults for LeastAllocated.
        let be = pod(json!({}));
        assert!(!balanced_applies(&be));
        let expected_cpu = (4000 - 1100) * 100 / 4000;
        let expected_mem = ((8i64 << 30) - (2 << 30) - 200 * 1024 * 1024) * 100 / (8 << 30);
        assert_eq!(
            least_allocated(&be, &info, &spec),
            (expected_cpu + expected_mem) / 2
        );
    }
}
