//! Cross-kind tests: dispatch, name rules, and a mutation sweep that replaces every
//! member of valid objects with junk and runs the whole hook chain (it must never
//! panic).

use serde_json::{Value, json};

use super::validation::validate_object_meta;
use super::{NameRule, for_kind};

#[test]
fn dispatch_and_name_rules() {
    assert_eq!(
        for_kind("", "Namespace").name_rule(),
        NameRule::Dns1123Label
    );
    assert_eq!(for_kind("", "Service").name_rule(), NameRule::Dns1035Label);
    assert_eq!(
        for_kind("apps", "StatefulSet").name_rule(),
        NameRule::Dns1123Label
    );
    assert_eq!(
        for_kind("rbac.authorization.k8s.io", "ClusterRole").name_rule(),
        NameRule::PathSegment
    );
    assert_eq!(
        for_kind("apps", "Deployment").name_rule(),
        NameRule::Dns1123Subdomain
    );
    assert_eq!(
        for_kind("example.com", "Widget").name_rule(),
        NameRule::Dns1123Subdomain
    );
    // Neutral kinds leave objects alone.
    let mut obj = json!({"spec": {"x": 1}});
    let s = for_kind("", "ServiceAccount");
    s.default(&mut obj);
    s.prepare_for_create(&mut obj);
    assert_eq!(obj, json!({"spec": {"x": 1}}));
    assert!(s.validate_create(&obj).is_empty());
    assert!(s.field_selector_fields(&obj).is_empty());
}

#[test]
fn create_on_update_kinds_match_upstream() {
    // Upstream's strategies with AllowCreateOnUpdate() == true, among the kinds served.
    let allowed = [
        ("", "Service"),
        ("", "Endpoints"),
        ("", "Event"),
        ("events.k8s.io", "Event"),
        ("", "LimitRange"),
        ("coordination.k8s.io", "Lease"),
        ("rbac.authorization.k8s.io", "Role"),
        ("rbac.authorization.k8s.io", "ClusterRole"),
        ("rbac.authorization.k8s.io", "RoleBinding"),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
    ];
    for r in crate::catalog::all() {
        let want = allowed.contains(&(r.group, r.kind));
        assert_eq!(
            for_kind(r.group, r.kind).allow_create_on_update(),
            want,
            "{}/{}",
            r.group,
            r.kind
        );
    }
    // The registry's metadata check with a kind's rule.
    let errs = validate_object_meta(
        &json!({"metadata": {"name": "1svc", "namespace": "d"}}),
        true,
        for_kind("", "Service").name_rule(),
    );
    assert_eq!(errs.len(), 1);
    assert!(errs[0].message.contains("DNS-1035 label"));
}

/// Valid sample objects of every kind with behaviour.
fn samples() -> Vec<(&'static str, &'static str, Value)> {
    let tpl = json!({"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"name": "c", "image": "x", "ports": [{"containerPort": 80}], "env": [{"name": "A", "value": "b"}], "resources": {"limits": {"cpu": "1"}}, "livenessProbe": {"httpGet": {"port": 80}}}], "volumes": [{"name": "v", "emptyDir": {}}]}});
    let sel = json!({"matchLabels": {"app": "a"}});
    let meta = json!({"name": "x", "namespace": "d", "uid": "u"});
    vec![
        ("", "Pod", json!({"metadata": meta, "spec": tpl["spec"]})),
        (
            "",
            "PodTemplate",
            json!({"metadata": meta, "template": tpl}),
        ),
        (
            "",
            "ReplicationController",
            json!({"metadata": meta, "spec": {"selector": {"app": "a"}, "template": tpl}}),
        ),
        (
            "apps",
            "Deployment",
            json!({"metadata": meta, "spec": {"selector": sel, "template": tpl}}),
        ),
        (
            "apps",
            "ReplicaSet",
            json!({"metadata": meta, "spec": {"selector": sel, "template": tpl}}),
        ),
        (
            "apps",
            "StatefulSet",
            json!({"metadata": meta, "spec": {"selector": sel, "template": tpl, "volumeClaimTemplates": [{"metadata": {"name": "d"}, "spec": {}}]}}),
        ),
        (
            "apps",
            "DaemonSet",
            json!({"metadata": meta, "spec": {"selector": sel, "template": tpl}}),
        ),
        (
            "batch",
            "Job",
            json!({"metadata": meta, "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}}}}),
        ),
        (
            "batch",
            "CronJob",
            json!({"metadata": meta, "spec": {"schedule": "@daily", "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}}}}}}),
        ),
        (
            "",
            "Service",
            json!({"metadata": meta, "spec": {"type": "NodePort", "selector": {"app": "a"}, "ports": [{"name": "h", "port": 80, "nodePort": 30001}], "clusterIP": "10.0.0.1"}}),
        ),
        (
            "",
            "Namespace",
            json!({"metadata": {"name": "x"}, "spec": {"finalizers": ["kubernetes"]}}),
        ),
        (
            "",
            "ConfigMap",
            json!({"metadata": meta, "data": {"a": "b"}, "binaryData": {"c": "ZA=="}, "immutable": true}),
        ),
        (
            "",
            "Secret",
            json!({"metadata": meta, "type": "kubernetes.io/tls", "data": {"tls.crt": "YQ==", "tls.key": "YQ=="}, "stringData": {"x": "y"}}),
        ),
        (
            "",
            "Node",
            json!({"metadata": {"name": "n"}, "spec": {"taints": [{"key": "k", "effect": "NoSchedule"}]}, "status": {"capacity": {"cpu": "1"}}}),
        ),
        (
            "",
            "Event",
            json!({"metadata": meta, "involvedObject": {"kind": "Pod", "namespace": "d"}, "source": {"component": "k"}}),
        ),
        (
            "events.k8s.io",
            "Event",
            json!({"metadata": meta, "eventTime": "2024-01-01T00:00:00.000000Z", "series": {"count": 2, "lastObservedTime": "2024-01-01T00:00:00.000000Z"}, "reportingComponent": "c", "reportingInstance": "i", "action": "a", "reason": "r", "type": "Normal", "involvedObject": {"kind": "Pod", "namespace": "d"}}),
        ),
        (
            "",
            "Endpoints",
            json!({"metadata": meta, "subsets": [{"ports": [{"port": 1}]}]}),
        ),
        (
            "",
            "LimitRange",
            json!({"metadata": meta, "spec": {"limits": [{"type": "Container", "max": {"cpu": "1"}}]}}),
        ),
        (
            "",
            "ResourceQuota",
            json!({"metadata": meta, "spec": {"hard": {"pods": "10"}}}),
        ),
        (
            "",
            "PersistentVolume",
            json!({"metadata": {"name": "pv"}, "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "hostPath": {"path": "/x"}}}),
        ),
        (
            "",
            "PersistentVolumeClaim",
            json!({"metadata": meta, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}),
        ),
        (
            "storage.k8s.io",
            "StorageClass",
            json!({"metadata": {"name": "s"}, "provisioner": "a/b", "parameters": {"x": "y"}}),
        ),
        (
            "scheduling.k8s.io",
            "PriorityClass",
            json!({"metadata": {"name": "p"}, "value": 10}),
        ),
        (
            "autoscaling",
            "HorizontalPodAutoscaler",
            json!({"apiVersion": "autoscaling/v2", "metadata": meta, "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "w"}, "maxReplicas": 3, "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}], "behavior": {}}}),
        ),
        (
            "networking.k8s.io",
            "Ingress",
            json!({"metadata": meta, "spec": {"rules": [{"host": "a.b", "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "s", "port": {"number": 80}}}}]}}]}}),
        ),
        (
            "discovery.k8s.io",
            "EndpointSlice",
            json!({"metadata": meta, "addressType": "IPv4", "ports": [{"port": 1}]}),
        ),
        (
            "policy",
            "PodDisruptionBudget",
            json!({"metadata": meta, "spec": {"minAvailable": 1, "selector": sel}}),
        ),
    ]
}

/// Every JSON path (objects and array items) of `v`.
fn paths(v: &Value, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                prefix.push(k.clone());
                out.push(prefix.clone());
                paths(child, prefix, out);
                prefix.pop();
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                prefix.push(i.to_string());
                out.push(prefix.clone());
                paths(child, prefix, out);
                prefix.pop();
            }
        }
        _ => {}
    }
}

fn set_path(v: &mut Value, path: &[String], new: Value) {
    let mut cur = v;
    for seg in path {
        cur = match cur {
            Value::Object(m) => match m.get_mut(seg) {
                Some(c) => c,
                None => return,
            },
            Value::Array(a) => match seg.parse::<usize>().ok().and_then(|i| a.get_mut(i)) {
                Some(c) => c,
                None => return,
            },
            _ => return,
        };
    }
    *cur = new;
}

fn run_all_hooks(group: &str, kind: &str, obj: &Value, old: &Value) {
    let s = for_kind(group, kind);
    let mut created = obj.clone();
    s.default(&mut created);
    s.prepare_for_create(&mut created);
    let _ = s.validate_create(&created);
    let _ = validate_object_meta(&created, true, s.name_rule());
    let _ = s.field_selector_fields(&created);
    let mut updated = obj.clone();
    s.default(&mut updated);
    s.prepare_for_update(&mut updated, old);
    let _ = s.validate_update(&updated, old);
    let mut reverse = old.clone();
    s.prepare_for_update(&mut reverse, &updated);
    let _ = s.validate_update(&reverse, &updated);
    let _ = super::validation::validate_object_meta_update(&updated, old);
}

#[test]
fn samples_are_valid() {
    for (g, k, obj) in samples() {
        let s = for_kind(g, k);
        let mut o = obj.clone();
        s.default(&mut o);
        s.prepare_for_create(&mut o);
        let errs = s.validate_create(&o);
        assert!(errs.is_empty(), "{g}/{k}: {errs:#?}");
        let mut again = o.clone();
        s.default(&mut again);
        s.prepare_for_update(&mut again, &o);
        let errs = s.validate_update(&again, &o);
        assert!(errs.is_empty(), "{g}/{k} no-op update: {errs:#?}");
    }
}

#[test]
fn mutation_sweep_never_panics() {
    let junk = [
        Value::Null,
        json!(true),
        json!(-1),
        json!(0),
        json!(1.5),
        json!(i64::MAX),
        json!(u64::MAX),
        json!(-1e308),
        json!(""),
        json!("é-Ω/..%"),
        json!("9".repeat(400)),
        json!([]),
        json!([null, 1, "x", {}]),
        json!({}),
        json!({"": null, "a": [[]]}),
    ];
    for (g, k, obj) in samples() {
        let s = for_kind(g, k);
        let mut old = obj.clone();
        s.default(&mut old);
        s.prepare_for_create(&mut old);
        let mut all = Vec::new();
        paths(&obj, &mut Vec::new(), &mut all);
        for p in &all {
            for j in &junk {
                let mut mutated = obj.clone();
                set_path(&mut mutated, p, j.clone());
                run_all_hooks(g, k, &mutated, &old);
            }
        }
        for j in &junk {
            run_all_hooks(g, k, j, &old);
            run_all_hooks(g, k, &obj, j);
        }
    }
}
