use serde_json::{Value, json};

use crate::strategy::test_support::{assert_has, create, defaulted, update};

fn template(labels: Value) -> Value {
    json!({"metadata": {"labels": labels}, "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}})
}

fn workload(kind: &str, spec: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": "w", "namespace": "default"}, "spec": spec})
}

fn basic_spec() -> Value {
    json!({"selector": {"matchLabels": {"app": "w"}}, "template": template(json!({"app": "w"}))})
}

#[test]
fn deployment_defaults() {
    let got = defaulted("apps", "Deployment", workload("Deployment", basic_spec()));
    let spec = &got["spec"];
    assert_eq!(spec["replicas"], 1);
    assert_eq!(
        spec["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
    );
    assert_eq!(spec["revisionHistoryLimit"], 10);
    assert_eq!(spec["progressDeadlineSeconds"], 600);
    assert_eq!(spec["template"]["spec"]["restartPolicy"], "Always");
    assert_eq!(
        spec["template"]["spec"]["containers"][0]["imagePullPolicy"],
        "IfNotPresent"
    );
    // Recreate gets no rollingUpdate.
    let mut s = basic_spec();
    s["strategy"] = json!({"type": "Recreate"});
    let got = defaulted("apps", "Deployment", workload("Deployment", s));
    assert_eq!(got["spec"]["strategy"], json!({"type": "Recreate"}));
}

#[test]
fn other_workload_defaults() {
    let rs = defaulted("apps", "ReplicaSet", workload("ReplicaSet", basic_spec()));
    assert_eq!(rs["spec"]["replicas"], 1);

    let mut s = basic_spec();
    s["volumeClaimTemplates"] =
        json!([{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"]}}]);
    let sts = defaulted("apps", "StatefulSet", workload("StatefulSet", s));
    assert_eq!(sts["spec"]["replicas"], 1);
    assert_eq!(sts["spec"]["podManagementPolicy"], "OrderedReady");
    assert_eq!(
        sts["spec"]["updateStrategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
    );
    assert_eq!(sts["spec"]["revisionHistoryLimit"], 10);
    assert_eq!(
        sts["spec"]["persistentVolumeClaimRetentionPolicy"],
        json!({"whenDeleted": "Retain", "whenScaled": "Retain"})
    );
    assert_eq!(
        sts["spec"]["volumeClaimTemplates"][0]["spec"]["volumeMode"],
        "Filesystem"
    );
    assert_eq!(
        sts["spec"]["volumeClaimTemplates"][0]["status"],
        json!({"phase": "Pending"})
    );

    let ds = defaulted("apps", "DaemonSet", workload("DaemonSet", basic_spec()));
    assert_eq!(
        ds["spec"]["updateStrategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
    );
    assert_eq!(ds["spec"]["revisionHistoryLimit"], 10);
    assert!(ds["spec"].get("replicas").is_none());

    let rc = defaulted(
        "",
        "ReplicationController",
        json!({"metadata": {"name": "rc"}, "spec": {"template": template(json!({"app": "x"}))}}),
    );
    assert_eq!(rc["spec"]["selector"], json!({"app": "x"}));
    assert_eq!(rc["metadata"]["labels"], json!({"app": "x"}));
    assert_eq!(rc["spec"]["replicas"], 1);
}

#[test]
fn create_resets_status() {
    for kind in ["Deployment", "ReplicaSet", "StatefulSet", "DaemonSet"] {
        let mut obj = workload(kind, basic_spec());
        obj["status"] = json!({"replicas": 5});
        let (got, errs) = create("apps", kind, obj);
        assert!(errs.is_empty(), "{kind}: {errs:#?}");
        assert_eq!(got["status"], json!({}), "{kind}");
    }
    let (ds, _) = create("apps", "DaemonSet", workload("DaemonSet", basic_spec()));
    assert_eq!(
        ds["metadata"]["annotations"]["deprecated.daemonset.template.generation"],
        "1"
    );
}

#[test]
fn workload_validation_table() {
    let mismatch = json!({"selector": {"matchLabels": {"app": "x"}}, "template": template(json!({"app": "y"}))});
    let cases: Vec<(&str, Value, Vec<&str>)> = vec![
        (
            "Deployment",
            mismatch.clone(),
            vec![
                "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"y\"}: `selector` does not match template `labels`",
            ],
        ),
        (
            "ReplicaSet",
            mismatch.clone(),
            vec![
                "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"y\"}: `selector` does not match template `labels`",
            ],
        ),
        (
            "StatefulSet",
            mismatch.clone(),
            vec![
                "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"y\"}: `selector` does not match template `labels`",
            ],
        ),
        (
            "DaemonSet",
            mismatch,
            vec![
                "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"y\"}: `selector` does not match template `labels`",
            ],
        ),
        (
            "Deployment",
            json!({"selector": null}),
            vec!["spec.selector: Required value"],
        ),
        (
            "Deployment",
            json!({"selector": {}, "template": template(json!({"a": "b"}))}),
            vec![
                "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for deployment",
            ],
        ),
        (
            "Deployment",
            json!({"replicas": -1}),
            vec!["spec.replicas: Invalid value: -1: must be greater than or equal to 0"],
        ),
        (
            "Deployment",
            json!({"replicas": "3"}),
            vec!["spec.replicas: Invalid value: \"3\": must be of type integer"],
        ),
        (
            "Deployment",
            json!({"replicas": 99999999999i64}),
            vec![
                "spec.replicas: Invalid value: 99999999999: must be between -2147483648 and 2147483647, inclusive",
            ],
        ),
        (
            "Deployment",
            json!({"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}}}),
            vec![
                "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 0%: may not be 0 when `maxSurge` is 0",
            ],
        ),
        (
            "Deployment",
            json!({"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "x", "maxUnavailable": "150%"}}}),
            vec![
                "spec.strategy.rollingUpdate.maxSurge: Invalid value: x: a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
                "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 150%: must not be greater than 100%",
            ],
        ),
        (
            "Deployment",
            json!({"strategy": {"type": "Blue"}}),
            vec![
                "spec.strategy.type: Unsupported value: \"Blue\": supported values: \"Recreate\", \"RollingUpdate\"",
            ],
        ),
        (
            "Deployment",
            json!({"strategy": {"type": "Recreate", "rollingUpdate": {}}}),
            vec![
                "spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'",
            ],
        ),
        (
            "Deployment",
            json!({"minReadySeconds": 700}),
            vec![
                "spec.progressDeadlineSeconds: Invalid value: 600: must be greater than minReadySeconds",
            ],
        ),
        (
            "Deployment",
            json!({"template": {"metadata": {"labels": {"app": "w"}}, "spec": {"restartPolicy": "Never", "activeDeadlineSeconds": 5, "containers": [{"name": "c", "image": "x"}]}}}),
            vec![
                "spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"",
                "spec.template.spec.activeDeadlineSeconds: Forbidden: activeDeadlineSeconds in ReplicaSet is not Supported",
            ],
        ),
        (
            "Deployment",
            json!({"template": {"metadata": {"labels": {"app": "w"}}, "spec": {"containers": [{"name": "c"}]}}}),
            vec!["spec.template.spec.containers[0].image: Required value"],
        ),
        (
            "StatefulSet",
            json!({"podManagementPolicy": "Random", "updateStrategy": {"type": "OnDelete", "rollingUpdate": {"partition": 1}}}),
            vec![
                "spec.podManagementPolicy: Invalid value: \"Random\": must be 'OrderedReady' or 'Parallel'",
                "spec.updateStrategy.rollingUpdate: Invalid value: {\"partition\":1}: only allowed for updateStrategy 'RollingUpdate'",
            ],
        ),
        (
            "StatefulSet",
            json!({"persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Keep"}, "updateStrategy": {"rollingUpdate": {"partition": -1}}}),
            vec![
                "spec.persistentVolumeClaimRetentionPolicy.whenDeleted: Unsupported value: \"Keep\": supported values: \"Retain\", \"Delete\"",
                "spec.updateStrategy.rollingUpdate.partition: Invalid value: -1: must be greater than or equal to 0",
            ],
        ),
        (
            "DaemonSet",
            json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 1}}}),
            vec![
                "spec.updateStrategy.rollingUpdate.maxSurge: Invalid value: 1: may not be set when maxUnavailable is non-zero",
            ],
        ),
        (
            "DaemonSet",
            json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 0}}}),
            vec![
                "spec.updateStrategy.rollingUpdate.maxUnavailable: Required value: cannot be 0 when maxSurge is 0",
            ],
        ),
        (
            "DaemonSet",
            json!({"updateStrategy": {"type": "Sometimes"}}),
            vec![
                "spec.updateStrategy.type: Unsupported value: \"Sometimes\": supported values: \"RollingUpdate\", \"OnDelete\"",
            ],
        ),
    ];
    for (i, (kind, overrides, want)) in cases.into_iter().enumerate() {
        let mut spec = basic_spec();
        if let (Some(s), Some(o)) = (spec.as_object_mut(), overrides.as_object()) {
            for (k, v) in o {
                if v.is_null() {
                    s.remove(k);
                } else {
                    s.insert(k.clone(), v.clone());
                }
            }
        }
        let (_, errs) = create("apps", kind, workload(kind, spec));
        assert_has(&errs, &want);
        assert!(!errs.is_empty(), "case {i}");
    }
}

#[test]
fn statefulset_skips_pod_spec_validation_like_upstream() {
    let spec = json!({"selector": {"matchLabels": {"app": "w"}}, "template": {"metadata": {"labels": {"app": "w"}}, "spec": {"containers": []}}});
    let (_, errs) = create("apps", "StatefulSet", workload("StatefulSet", spec));
    assert!(errs.is_empty(), "{errs:?}");
}

#[test]
fn selector_is_immutable_and_statefulset_spec_is_restricted() {
    for kind in ["Deployment", "ReplicaSet", "DaemonSet"] {
        let (old, _) = create("apps", kind, workload(kind, basic_spec()));
        let mut new = old.clone();
        new["spec"]["selector"] = json!({"matchLabels": {"app": "w", "tier": "x"}});
        new["spec"]["template"]["metadata"]["labels"]["tier"] = json!("x");
        let (_, errs) = update("apps", kind, new, &old);
        assert_eq!(
            errs,
            [
                "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"w\", \"tier\":\"x\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"
            ],
            "{kind}"
        );
    }
    let (old, _) = create("apps", "StatefulSet", workload("StatefulSet", basic_spec()));
    let mut scaled = old.clone();
    scaled["spec"]["replicas"] = json!(3);
    scaled["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
    assert!(update("apps", "StatefulSet", scaled, &old).1.is_empty());
    let mut renamed = old.clone();
    renamed["spec"]["serviceName"] = json!("other");
    let (_, errs) = update("apps", "StatefulSet", renamed, &old);
    assert_eq!(
        errs,
        [
            "spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"
        ]
    );
}

#[test]
fn daemonset_template_generation_follows_template_changes() {
    let (old, _) = create("apps", "DaemonSet", workload("DaemonSet", basic_spec()));
    let (same, _) = update("apps", "DaemonSet", old.clone(), &old);
    assert_eq!(
        same["metadata"]["annotations"]["deprecated.daemonset.template.generation"],
        "1"
    );
    let mut changed = old.clone();
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
    let (new, errs) = update("apps", "DaemonSet", changed, &old);
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(
        new["metadata"]["annotations"]["deprecated.daemonset.template.generation"],
        "2"
    );
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
        json!(1e300),
        json!([{"a": 1}]),
    ];
    let keys = [
        "replicas",
        "selector",
        "template",
        "strategy",
        "updateStrategy",
        "minReadySeconds",
        "revisionHistoryLimit",
        "progressDeadlineSeconds",
        "podManagementPolicy",
        "persistentVolumeClaimRetentionPolicy",
        "volumeClaimTemplates",
        "ordinals",
    ];
    for kind in ["Deployment", "ReplicaSet", "StatefulSet", "DaemonSet"] {
        for j in &junk {
            let _ = create("apps", kind, j.clone());
            let _ = create("apps", kind, workload(kind, j.clone()));
            for k in keys {
                let mut spec = basic_spec();
                spec[k] = j.clone();
                let (obj, errs) = create("apps", kind, workload(kind, spec));
                let _ = update("apps", kind, obj.clone(), &obj);
                if k == "selector" && !j.is_null() && !j.is_object() {
                    assert!(!errs.is_empty(), "{kind}.{k}={j}");
                }
            }
        }
    }
}

#[test]
fn kubectl_create_deployment_body_is_accepted() {
    // What `kubectl create deployment web --image=nginx` sends.
    let body = json!({
        "kind": "Deployment", "apiVersion": "apps/v1",
        "metadata": {"name": "web", "namespace": "default", "creationTimestamp": null, "labels": {"app": "web"}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"creationTimestamp": null, "labels": {"app": "web"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx", "resources": {}}]}
            },
            "strategy": {}
        },
        "status": {}
    });
    let (obj, errs) = create("apps", "Deployment", body);
    assert!(errs.is_empty(), "{errs:#?}");
    assert_eq!(obj["spec"]["strategy"]["type"], "RollingUpdate");
}
