//! PodInfo parsing tests.

use super::*;
use serde_json::json;

fn pod(spec: serde_json::Value) -> PodInfo {
    let p: Pod = serde_json::from_value(
        json!({"metadata": {"name": "p", "namespace": "ns", "labels": {"app": "a"}}, "spec": spec}),
    )
    .expect("pod");
    PodInfo::from_pod(&p)
}

fn c(name: &str, reqs: serde_json::Value) -> serde_json::Value {
    json!({"name": name, "resources": {"requests": reqs}})
}

#[test]
fn requests_table() {
    // (spec, cpu, memory, non-zero cpu, non-zero memory)
    let cases = [
        (
            json!({"containers": [c("a", json!({"cpu": "100m", "memory": "1Gi"})), c("b", json!({"cpu": "200m"}))]}),
            300,
            1 << 30,
            300,
            (1 << 30) + DEFAULT_MEMORY_REQUEST,
        ),
        (
            json!({"containers": [{"name": "a"}]}),
            0,
            0,
            DEFAULT_MILLI_CPU_REQUEST,
            DEFAULT_MEMORY_REQUEST,
        ),
        // Init containers: the maximum, not the sum.
        (
            json!({"containers": [c("a", json!({"cpu": "100m"}))],
                "initContainers": [c("i", json!({"cpu": "500m"})), c("j", json!({"cpu": "300m"}))]}),
            500,
            0,
            500,
            DEFAULT_MEMORY_REQUEST,
        ),
        // Sidecars (restartPolicy Always) add up and stay for the pod's life.
        (
            json!({"containers": [c("a", json!({"cpu": "100m"}))],
                "initContainers": [{"name": "s", "restartPolicy": "Always", "resources": {"requests": {"cpu": "200m"}}},
                                   c("i", json!({"cpu": "250m"}))]}),
            450,
            0,
            450,
            2 * DEFAULT_MEMORY_REQUEST,
        ),
        // Overhead is added.
        (
            json!({"containers": [c("a", json!({"cpu": "1"}))], "overhead": {"cpu": "250m", "memory": "64Mi"}}),
            1250,
            64 << 20,
            1250,
            DEFAULT_MEMORY_REQUEST + (64 << 20),
        ),
    ];
    for (spec, cpu, mem, nzc, nzm) in cases {
        let p = pod(spec.clone());
        assert_eq!(
            (
                p.requests.milli_cpu,
                p.requests.memory,
                p.non_zero_cpu,
                p.non_zero_mem
            ),
            (cpu, mem, nzc, nzm),
            "{spec}"
        );
    }
}

#[test]
fn host_ports_and_conflicts() {
    let p = pod(json!({"containers": [{"name": "a", "ports": [
        {"containerPort": 80, "hostPort": 8080},
        {"containerPort": 53, "hostPort": 53, "protocol": "UDP", "hostIP": "10.0.0.1"},
        {"containerPort": 9000},
    ]}]}));
    assert_eq!(p.host_ports.len(), 2);
    let any = HostPort {
        ip: "0.0.0.0".into(),
        protocol: "TCP".into(),
        port: 8080,
    };
    let one = HostPort {
        ip: "10.0.0.2".into(),
        protocol: "TCP".into(),
        port: 8080,
    };
    let other_ip = HostPort {
        ip: "10.0.0.3".into(),
        protocol: "TCP".into(),
        port: 8080,
    };
    let udp = HostPort {
        ip: "0.0.0.0".into(),
        protocol: "UDP".into(),
        port: 8080,
    };
    assert!(any.conflicts(&one) && one.conflicts(&any));
    assert!(!one.conflicts(&other_ip));
    assert!(!any.conflicts(&udp));
    assert!(p.host_ports[0].conflicts(&one));
}

#[test]
fn affinity_namespaces_and_errors() {
    let p = pod(
        json!({"containers": [], "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": "a"}}, "topologyKey": "kubernetes.io/hostname"},
            {"labelSelector": {"matchLabels": {"app": "a"}}, "topologyKey": "zone", "namespaceSelector": {}},
        ]}}}),
    );
    assert_eq!(
        p.affinity.required_anti[0].namespaces,
        vec!["ns".to_string()]
    );
    assert!(p.affinity.required_anti[1].namespaces.is_empty());
    let mut other = p.clone();
    other.namespace = "elsewhere".into();
    assert!(!p.affinity.required_anti[0].matches(&other, None));
    assert!(p.affinity.required_anti[1].matches(&other, None));
    let bad = pod(
        json!({"containers": [], "affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": []}]}, "topologyKey": "zone"},
        ]}}}),
    );
    assert!(bad.affinity_error.is_some());
}

#[test]
fn spread_defaults_and_match_label_keys() {
    let p = pod(json!({"containers": [], "topologySpreadConstraints": [
        {"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule",
         "labelSelector": {"matchLabels": {"x": "y"}}, "matchLabelKeys": ["app"]},
    ]}));
    let s = &p.spread[0];
    assert!(s.hard && s.honor_affinity && !s.honor_taints);
    assert_eq!(s.min_domains, 1);
    assert_eq!(s.selector.reqs.len(), 2);
}
