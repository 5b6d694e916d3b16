use serde_json::{Value, json};

use crate::strategy::test_support::{assert_has, create, defaulted, update};

#[test]
fn priority_class() {
    let (pc, errs) = create(
        "scheduling.k8s.io",
        "PriorityClass",
        json!({"metadata": {"name": "high"}, "value": 1000}),
    );
    assert!(errs.is_empty());
    assert_eq!(pc["preemptionPolicy"], "PreemptLowerPriority");
    let (_, errs) = create(
        "scheduling.k8s.io",
        "PriorityClass",
        json!({"metadata": {"name": "huge"}, "value": 2000000000, "preemptionPolicy": "Sometimes"}),
    );
    assert_eq!(
        errs,
        [
            "value: Forbidden: maximum allowed value of a user defined priority is 1000000000",
            "preemptionPolicy: Unsupported value: \"Sometimes\": supported values: \"Never\", \"PreemptLowerPriority\"",
        ]
    );
    let (_, errs) = create(
        "scheduling.k8s.io",
        "PriorityClass",
        json!({"metadata": {"name": "system-mine"}, "value": 1}),
    );
    assert_eq!(
        errs,
        [
            "metadata.name: Forbidden: priority class names with 'system-' prefix are reserved for system use only. error: system-mine is not a known system priority class"
        ]
    );
    let mut n = pc.clone();
    n["value"] = json!(5);
    n["preemptionPolicy"] = json!("Never");
    assert_eq!(
        update("scheduling.k8s.io", "PriorityClass", n, &pc).1,
        [
            "value: Forbidden: may not be changed in an update.",
            "preemptionPolicy: Invalid value: \"Never\": field is immutable",
        ]
    );
}

fn hpa(api_version: &str, spec: Value) -> Value {
    json!({"apiVersion": api_version, "kind": "HorizontalPodAutoscaler", "metadata": {"name": "h", "namespace": "d"}, "spec": spec})
}

#[test]
fn hpa_defaults_and_validation() {
    let target = json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"});
    let v2 = defaulted(
        "autoscaling",
        "HorizontalPodAutoscaler",
        hpa(
            "autoscaling/v2",
            json!({"scaleTargetRef": target, "maxReplicas": 5, "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}}}),
        ),
    );
    assert_eq!(v2["spec"]["minReplicas"], 1);
    assert_eq!(
        v2["spec"]["metrics"],
        json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}])
    );
    assert_eq!(
        v2["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"],
        60
    );
    assert_eq!(
        v2["spec"]["behavior"]["scaleDown"]["policies"],
        json!([{"type": "Percent", "value": 100, "periodSeconds": 15}])
    );
    assert_eq!(
        v2["spec"]["behavior"]["scaleUp"]["stabilizationWindowSeconds"],
        0
    );
    let unset = defaulted(
        "autoscaling",
        "HorizontalPodAutoscaler",
        hpa(
            "autoscaling/v2",
            json!({"scaleTargetRef": target, "maxReplicas": 5, "behavior": {"scaleUp": {"selectPolicy": "Min"}}}),
        ),
    );
    assert_eq!(
        unset["spec"]["behavior"]["scaleDown"],
        json!({"selectPolicy": "Max", "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]})
    );
    assert_eq!(v2["spec"]["behavior"]["scaleUp"]["selectPolicy"], "Max");
    let v1 = defaulted(
        "autoscaling",
        "HorizontalPodAutoscaler",
        hpa(
            "autoscaling/v1",
            json!({"scaleTargetRef": target, "maxReplicas": 5}),
        ),
    );
    assert_eq!(v1["spec"]["minReplicas"], 1);
    assert!(v1["spec"].get("metrics").is_none());

    let (_, errs) = create(
        "autoscaling",
        "HorizontalPodAutoscaler",
        hpa(
            "autoscaling/v2",
            json!({"minReplicas": 0, "maxReplicas": 0, "scaleTargetRef": {"kind": "Deployment"}}),
        ),
    );
    assert_has(
        &errs,
        &[
            "spec.scaleTargetRef.name: Required value",
            "spec.minReplicas: Invalid value: 0: must be greater than or equal to 1",
            "spec.maxReplicas: Invalid value: 0: must be greater than 0",
        ],
    );
    let (_, errs) = create(
        "autoscaling",
        "HorizontalPodAutoscaler",
        hpa(
            "autoscaling/v2",
            json!({"minReplicas": 5, "maxReplicas": 2, "scaleTargetRef": target, "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 0}}}]}),
        ),
    );
    assert_has(
        &errs,
        &[
            "spec.maxReplicas: Invalid value: 2: must be greater than or equal to `minReplicas`",
            "spec.metrics[0].resource.target.averageUtilization: Invalid value: 0: must be greater than 0",
        ],
    );
    let (obj, _) = create(
        "autoscaling",
        "HorizontalPodAutoscaler",
        hpa(
            "autoscaling/v1",
            json!({"scaleTargetRef": target, "maxReplicas": 5, "targetCPUUtilizationPercentage": 0}),
        ),
    );
    assert_eq!(obj["status"], json!({}));
}

#[test]
fn ingress_validation() {
    let ing = |spec: Value| json!({"metadata": {"name": "i", "namespace": "d"}, "spec": spec});
    let good = json!({"rules": [{"host": "example.com", "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]});
    let (obj, errs) = create("networking.k8s.io", "Ingress", ing(good));
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(obj["status"], json!({}));
    let (_, errs) = create("networking.k8s.io", "Ingress", ing(json!({})));
    assert_eq!(
        errs,
        [
            "spec: Invalid value: []networking.IngressRule(nil): either `defaultBackend` or `rules` must be specified"
        ]
    );
    let (_, errs) = create(
        "networking.k8s.io",
        "Ingress",
        ing(json!({"rules": [{"host": "1.2.3.4", "http": {"paths": [
            {"path": "api", "pathType": "Exact", "backend": {"service": {"name": "web", "port": {}}}},
            {"path": "/", "backend": {}}
        ]}}]})),
    );
    assert_has(
        &errs,
        &[
            "spec.rules[0].host: Invalid value: \"1.2.3.4\": must be a DNS name, not an IP address",
            "spec.rules[0].http.paths[0].path: Invalid value: \"api\": must be an absolute path",
            "spec.rules[0].http.paths[0].backend.service.port: Required value: port name or number is required",
            "spec.rules[0].http.paths[1].pathType: Required value: pathType must be specified",
        ],
    );
}

#[test]
fn endpointslice_and_pdb() {
    let es = defaulted(
        "discovery.k8s.io",
        "EndpointSlice",
        json!({"addressType": "IPv4", "ports": [{"port": 80}]}),
    );
    assert_eq!(
        es["ports"][0],
        json!({"port": 80, "name": "", "protocol": "TCP"})
    );
    let (_, errs) = create(
        "discovery.k8s.io",
        "EndpointSlice",
        json!({"addressType": "IPv9"}),
    );
    assert_eq!(
        errs,
        [
            "addressType: Unsupported value: \"IPv9\": supported values: \"FQDN\", \"IPv4\", \"IPv6\""
        ]
    );
    let (_, errs) = update(
        "discovery.k8s.io",
        "EndpointSlice",
        json!({"addressType": "IPv6"}),
        &json!({"addressType": "IPv4"}),
    );
    assert_eq!(
        errs,
        ["addressType: Invalid value: \"IPv6\": field is immutable"]
    );

    let (pdb, errs) = create(
        "policy",
        "PodDisruptionBudget",
        json!({"metadata": {"name": "p"}, "spec": {"minAvailable": 1, "maxUnavailable": "50%"}}),
    );
    assert_eq!(
        errs,
        ["spec.minAvailable: Invalid value: 1: minAvailable and maxUnavailable cannot be both set"]
    );
    assert_eq!(pdb["status"], json!({}));
}

#[test]
fn junk_never_panics() {
    let junk = [
        json!(null),
        json!(1),
        json!("s"),
        json!([]),
        json!({}),
        json!(-5),
        json!(0.5),
        json!({"k": [1]}),
    ];
    let kinds = [
        ("scheduling.k8s.io", "PriorityClass"),
        ("autoscaling", "HorizontalPodAutoscaler"),
        ("networking.k8s.io", "Ingress"),
        ("discovery.k8s.io", "EndpointSlice"),
        ("policy", "PodDisruptionBudget"),
    ];
    for (g, kind) in kinds {
        for j in &junk {
            let _ = create(g, kind, j.clone());
            for k in [
                "spec",
                "value",
                "preemptionPolicy",
                "addressType",
                "ports",
                "apiVersion",
            ] {
                let (o, _) = create(g, kind, json!({k: j.clone()}));
                let _ = update(g, kind, o.clone(), &o);
            }
            for k in [
                "rules",
                "defaultBackend",
                "scaleTargetRef",
                "metrics",
                "behavior",
                "minReplicas",
                "maxReplicas",
                "minAvailable",
                "selector",
            ] {
                let (o, _) = create(
                    g,
                    kind,
                    json!({"spec": {k: j.clone(), "rules": [{"http": {"paths": [j.clone()]}}]}}),
                );
                let _ = update(g, kind, o.clone(), &o);
            }
        }
    }
}
