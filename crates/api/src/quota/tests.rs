use super::*;
use serde_json::json;

fn pod(requests: Value, limits: Value) -> Value {
    json!({"spec": {"containers": [
        {"name": "app", "resources": {"requests": requests, "limits": limits}},
        {"name": "side", "resources": {"requests": {"cpu": "100m"}}}
    ]}})
}

fn quota(hard: Value) -> Value {
    json!({"spec": {"hard": hard}})
}

fn texts(list: &ResourceList) -> Vec<(String, String)> {
    list.iter().map(|(k, a)| (k.clone(), a.text())).collect()
}

#[test]
fn pod_usage_sums_containers_and_aliases_requests() {
    let p = pod(
        json!({"cpu": "400m", "memory": "64Mi"}),
        json!({"memory": "128Mi"}),
    );
    let u = usage("", "pods", &p);
    assert_eq!(
        texts(&u),
        [
            ("count/pods", "1"),
            ("cpu", "500m"),
            ("limits.memory", "128Mi"),
            ("memory", "64Mi"),
            ("pods", "1"),
            ("requests.cpu", "500m"),
            ("requests.memory", "64Mi"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
    );
}

#[test]
fn init_containers_count_as_their_maximum() {
    let mut p = pod(json!({"cpu": "1"}), json!({}));
    p["spec"]["initContainers"] =
        json!([{"name": "init", "resources": {"requests": {"cpu": "2"}}}]);
    assert_eq!(pod_totals(&p, "requests")["cpu"].text(), "2");
}

#[test]
fn finished_pods_count_only_as_objects() {
    let mut p = pod(json!({"cpu": "1"}), json!({}));
    p["status"] = json!({"phase": "Succeeded"});
    let u = usage("", "pods", &p);
    assert_eq!(u.keys().collect::<Vec<_>>(), ["count/pods"]);
}

#[test]
fn services_claims_and_counts() {
    let svc = json!({"spec": {"type": "LoadBalancer", "ports": [{"port": 80}, {"port": 443}]}});
    let u = usage("", "services", &svc);
    assert_eq!(u["services.nodeports"].text(), "2");
    assert_eq!(u["services.loadbalancers"].text(), "1");
    let pvc = json!({"spec": {"storageClassName": "gold", "resources": {"requests": {"storage": "1Gi"}}}});
    let u = usage("", "persistentvolumeclaims", &pvc);
    assert_eq!(u["requests.storage"].text(), "1Gi");
    assert_eq!(
        u["gold.storageclass.storage.k8s.io/persistentvolumeclaims"].text(),
        "1"
    );
    let u = usage("apps", "deployments", &json!({}));
    assert_eq!(u.keys().collect::<Vec<_>>(), ["count/deployments.apps"]);
    assert_eq!(
        counted_kind("count/ingresses.networking.k8s.io"),
        Some(("networking.k8s.io", "ingresses"))
    );
    assert_eq!(
        usage("", "configmaps", &json!({}))["configmaps"].text(),
        "1"
    );
}

#[test]
fn tracks_names_per_kind() {
    assert!(tracks("requests.storage", "", "persistentvolumeclaims"));
    assert!(!tracks("requests.storage", "", "pods"));
    assert!(tracks("requests.example.com/gpu", "", "pods"));
    assert!(tracks("count/deployments.apps", "apps", "deployments"));
    assert!(!tracks("pods", "apps", "deployments"));
    let kinds = counted_kinds(&[
        "cpu".to_string(),
        "count/jobs.batch".to_string(),
        "services.nodeports".to_string(),
    ]);
    let kinds: Vec<_> = kinds.iter().map(|(g, p)| format!("{g}/{p}")).collect();
    assert_eq!(kinds, ["/pods", "/services", "batch/jobs"]);
}

#[test]
fn scopes_select_pods_only() {
    let best_effort = json!({"spec": {"containers": [{"name": "a"}]}});
    let burstable = pod(json!({"cpu": "1"}), json!({}));
    let q =
        json!({"spec": {"hard": {"pods": "1", "count/configmaps": "1"}, "scopes": ["BestEffort"]}});
    assert!(matches(&q, "", "pods", &best_effort));
    assert!(!matches(&q, "", "pods", &burstable));
    assert!(
        !matches(&q, "", "configmaps", &json!({})),
        "scoped quotas count pods only"
    );
    let by_class = json!({"spec": {"hard": {"pods": "1"}, "scopeSelector": {"matchExpressions": [
        {"scopeName": "PriorityClass", "operator": "In", "values": ["high"]}
    ]}}});
    let mut high = best_effort.clone();
    high["spec"]["priorityClassName"] = json!("high");
    assert!(matches(&by_class, "", "pods", &high));
    assert!(!matches(&by_class, "", "pods", &best_effort));
    let deadline = json!({"spec": {"activeDeadlineSeconds": 30, "containers": []}});
    let q = json!({"spec": {"hard": {"pods": "1"}, "scopes": ["Terminating"]}});
    assert!(matches(&q, "", "pods", &deadline));
    assert!(!matches(&q, "", "pods", &best_effort));
}

#[test]
fn must_specify_names_resources_and_containers() {
    let hard = hard(&quota(
        json!({"limits.memory": "1Gi", "requests.cpu": "1", "pods": "3"}),
    ));
    let p = pod(json!({"cpu": "1"}), json!({}));
    assert_eq!(
        pod_constraints(&hard, &p),
        Err("must specify limits.memory for: app,side".to_string())
    );
    let p = pod(json!({"cpu": "1"}), json!({"memory": "1Gi"}));
    assert_eq!(
        pod_constraints(&hard, &p),
        Err("must specify limits.memory for: side".to_string())
    );
    let only_pods = super::hard(&quota(json!({"pods": "3"})));
    assert_eq!(
        pod_constraints(
            &only_pods,
            &json!({"spec": {"containers": [{"name": "x"}]}})
        ),
        Ok(())
    );
}

#[test]
fn recount_masks_to_hard_and_zero_fills() {
    let q = quota(
        json!({"pods": "2", "requests.memory": "1Gi", "services": "1", "count/jobs.batch": "4"}),
    );
    let a = pod(json!({"memory": "256Mi"}), json!({}));
    let b = pod(json!({"memory": "256Mi"}), json!({}));
    let cm = json!({});
    let used = recount(
        &q,
        [("", "pods", &a), ("", "pods", &b), ("", "configmaps", &cm)],
    );
    assert_eq!(
        texts(&used),
        [
            ("count/jobs.batch", "0"),
            ("pods", "2"),
            ("requests.memory", "512Mi"),
            ("services", "0"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
    );
    assert_eq!(pretty(&mask(&used, ["pods".to_string()].iter())), "pods=2");
    assert_eq!(to_json(&used)["requests.memory"], json!("512Mi"));
}

#[test]
fn growth_keeps_what_increased() {
    let before = usage(
        "",
        "services",
        &json!({"spec": {"type": "ClusterIP", "ports": [{"port": 80}]}}),
    );
    let after = usage(
        "",
        "services",
        &json!({"spec": {"type": "NodePort", "ports": [{"port": 80}]}}),
    );
    assert_eq!(
        texts(&growth(&after, &before)),
        [("services.nodeports".to_string(), "1".to_string())]
    );
    assert!(growth(&before, &after).is_empty());
    assert!(charges_updates("", "services") && !charges_updates("", "pods"));
}
