//! Inter-pod affinity, anti-affinity and topology spreading end to end.

mod common;

use common::{Env, nodes, pod};
use r8s_simnodes::SimOptions;
use serde_json::json;
use std::collections::{HashMap, HashSet};

fn zoned(prefix: &str, count: usize, zones: usize) -> SimOptions {
    SimOptions {
        zones,
        ..nodes(prefix, count, "8")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn affinity_and_anti_affinity() {
    let env = Env::start(Some(nodes("n", 3, "8"))).await;
    // Anti-affinity per host: three replicas on three nodes, the fourth waits.
    let anti = json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname"}]}}});
    let mut hosts = HashSet::new();
    for i in 0..3 {
        env.create(pod(
            &format!("web{i}"),
            "100m",
            anti.clone(),
            json!({"app": "web"}),
        ))
        .await;
        hosts.insert(env.bound(&format!("web{i}")).await);
    }
    assert_eq!(hosts.len(), 3);
    env.create(pod("web3", "100m", anti.clone(), json!({"app": "web"})))
        .await;
    let (_, msg) = env.unschedulable("web3").await;
    assert_eq!(
        msg,
        "0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules. \
         preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod."
    );

    // Affinity: follow the cache pod to its node.
    env.create(pod("cache", "100m", json!({}), json!({"app": "cache"})))
        .await;
    let cache_node = env.bound("cache").await;
    let follow = json!({"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "cache"}}, "topologyKey": "kubernetes.io/hostname"}]}}});
    for i in 0..3 {
        env.create(pod(
            &format!("follower{i}"),
            "100m",
            follow.clone(),
            json!({}),
        ))
        .await;
        assert_eq!(env.bound(&format!("follower{i}")).await, cache_node);
    }
    // Affinity to something that does not exist.
    let lonely = json!({"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "nobody"}}, "topologyKey": "kubernetes.io/hostname"}]}}});
    env.create(pod("lonely", "100m", lonely, json!({}))).await;
    let (_, msg) = env.unschedulable("lonely").await;
    assert!(
        msg.starts_with("0/3 nodes are available: 3 node(s) didn't match pod affinity rules."),
        "{msg}"
    );
    // ...until it appears.
    env.create(pod("nobody", "100m", json!({}), json!({"app": "nobody"})))
        .await;
    let target = env.bound("nobody").await;
    assert_eq!(env.bound("lonely").await, target);

    // Symmetry: an existing pod's anti-affinity keeps newcomers it selects away.
    let guard = json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"role": "noisy"}}, "topologyKey": "kubernetes.io/hostname"}]}}});
    env.create(pod("guard", "100m", guard, json!({}))).await;
    let guarded = env.bound("guard").await;
    for i in 0..4 {
        env.create(pod(
            &format!("noisy{i}"),
            "100m",
            json!({}),
            json!({"role": "noisy"}),
        ))
        .await;
        assert_ne!(env.bound(&format!("noisy{i}")).await, guarded);
    }
    // Deleting a web replica lets web3 in.
    env.pods()
        .delete("web0", &Default::default())
        .await
        .expect("delete");
    env.bound("web3").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topology_spread() {
    let env = Env::start(Some(zoned("z", 6, 3))).await;
    // Zone spreading with maxSkew 1: nine pods → three per zone.
    let spread = json!({"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
        "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"app": "spread"}}}]});
    let mut per_zone: HashMap<String, usize> = HashMap::new();
    for i in 0..9 {
        let name = format!("s{i}");
        env.create(pod(&name, "100m", spread.clone(), json!({"app": "spread"})))
            .await;
        let node = env.bound(&name).await;
        let idx: usize = node.trim_start_matches("z-").parse().expect("index");
        *per_zone.entry(format!("zone-{}", idx % 3)).or_default() += 1;
    }
    assert_eq!(
        per_zone.values().copied().collect::<Vec<_>>(),
        vec![3, 3, 3],
        "{per_zone:?}"
    );

    // Hostname spreading, maxSkew 1: six pods on six different nodes; a pinned seventh that
    // could only go to an occupied node is refused.
    let host = json!({"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
        "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"app": "host"}}}]});
    let mut seen = HashSet::new();
    for i in 0..6 {
        let name = format!("h{i}");
        env.create(pod(&name, "100m", host.clone(), json!({"app": "host"})))
            .await;
        seen.insert(env.bound(&name).await);
    }
    assert_eq!(seen.len(), 6);
    let mut extra = host.clone();
    extra["nodeSelector"] = json!({"kubernetes.io/hostname": "z-0"});
    env.create(pod("h-pinned", "100m", extra, json!({"app": "host"})))
        .await;
    // Only z-0 matches the selector, so only it is a domain: skew 1+1-1 = 1 is fine.
    assert_eq!(env.bound("h-pinned").await, "z-0");

    // A missing topology label.
    let bad = json!({"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "rack",
        "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"app": "rack"}}}]});
    env.create(pod("rack", "100m", bad, json!({"app": "rack"})))
        .await;
    let (_, msg) = env.unschedulable("rack").await;
    assert!(
        msg.starts_with("0/6 nodes are available: 6 node(s) didn't match pod topology spread constraints (missing required label)."),
        "{msg}"
    );

    // ScheduleAnyway prefers the emptiest zone but never refuses.
    let soft = json!({"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
        "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": {"matchLabels": {"app": "soft"}}}]});
    let mut soft_zones: HashMap<usize, usize> = HashMap::new();
    for i in 0..6 {
        let name = format!("soft{i}");
        env.create(pod(&name, "100m", soft.clone(), json!({"app": "soft"})))
            .await;
        let node = env.bound(&name).await;
        let idx: usize = node.trim_start_matches("z-").parse().expect("index");
        *soft_zones.entry(idx % 3).or_default() += 1;
    }
    assert_eq!(soft_zones.len(), 3, "{soft_zones:?}");
}
