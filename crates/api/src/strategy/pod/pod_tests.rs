use serde_json::{Value, json};

use crate::strategy::for_kind;
use crate::strategy::test_support::{assert_has, create, defaulted, update};

fn pod(spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"}, "spec": spec})
}

#[test]
fn pod_defaults_match_upstream() {
    let got = defaulted(
        "",
        "Pod",
        pod(json!({
            "containers": [{
                "name": "web",
                "image": "nginx",
                "ports": [{"containerPort": 80}],
                "livenessProbe": {"httpGet": {"port": 80}},
                "env": [{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
                "resources": {"limits": {"cpu": "1"}}
            }],
            "volumes": [{"name": "data"}, {"name": "cfg", "configMap": {"name": "c"}}]
        })),
    );
    let want = json!({
        "dnsPolicy": "ClusterFirst",
        "restartPolicy": "Always",
        "securityContext": {},
        "terminationGracePeriodSeconds": 30,
        "schedulerName": "default-scheduler",
        "enableServiceLinks": true,
        "containers": [{
            "name": "web",
            "image": "nginx",
            "imagePullPolicy": "Always",
            "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "File",
            "ports": [{"containerPort": 80, "protocol": "TCP"}],
            "livenessProbe": {
                "httpGet": {"port": 80, "path": "/", "scheme": "HTTP"},
                "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3
            },
            "env": [{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName", "apiVersion": "v1"}}}],
            "resources": {"limits": {"cpu": "1"}, "requests": {"cpu": "1"}}
        }],
        "volumes": [
            {"name": "data", "emptyDir": {}},
            {"name": "cfg", "configMap": {"name": "c", "defaultMode": 420}}
        ]
    });
    assert_eq!(got["spec"], want);
}

#[test]
fn pull_policy_and_template_only_defaults() {
    let cases = [
        ("nginx:1.25", "IfNotPresent"),
        ("nginx:latest", "Always"),
        ("nginx", "Always"),
        ("a@sha256:x", "IfNotPresent"),
    ];
    for (image, want) in cases {
        let got = defaulted(
            "",
            "Pod",
            pod(json!({"containers": [{"name": "c", "image": image}]})),
        );
        assert_eq!(
            got["spec"]["containers"][0]["imagePullPolicy"], want,
            "{image}"
        );
    }
    // Explicit values are kept.
    let got = defaulted(
        "",
        "Pod",
        pod(
            json!({"restartPolicy": "Never", "containers": [{"name": "c", "image": "x", "imagePullPolicy": "Never"}]}),
        ),
    );
    assert_eq!(got["spec"]["restartPolicy"], "Never");
    assert_eq!(got["spec"]["containers"][0]["imagePullPolicy"], "Never");
    // Pod templates do not get Pod-only defaults.
    let tpl = defaulted(
        "",
        "PodTemplate",
        json!({"template": {"spec": {"containers": [{"name": "c", "image": "x", "resources": {"limits": {"cpu": "1"}}}]}}}),
    );
    assert!(tpl["template"]["spec"].get("enableServiceLinks").is_none());
    assert!(
        tpl["template"]["spec"]["containers"][0]["resources"]
            .get("requests")
            .is_none()
    );
    assert_eq!(tpl["template"]["spec"]["dnsPolicy"], "ClusterFirst");
}

#[test]
fn host_network_defaults_host_ports() {
    let got = defaulted(
        "",
        "Pod",
        pod(
            json!({"hostNetwork": true, "containers": [{"name": "c", "image": "x", "ports": [{"containerPort": 8080}]}]}),
        ),
    );
    assert_eq!(got["spec"]["containers"][0]["ports"][0]["hostPort"], 8080);
}

#[test]
fn create_sets_status_tolerations_and_priority() {
    let (obj, errs) = create(
        "",
        "Pod",
        pod(json!({"containers": [{"name": "c", "image": "x"}]})),
    );
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(
        obj["status"],
        json!({"phase": "Pending", "qosClass": "BestEffort"})
    );
    assert_eq!(
        obj["spec"]["tolerations"],
        json!([
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
        ])
    );
    assert_eq!(obj["spec"]["priority"], 0);
    assert_eq!(obj["spec"]["preemptionPolicy"], "PreemptLowerPriority");

    // An existing wildcard toleration suppresses both defaults.
    let (obj, _) = create(
        "",
        "Pod",
        pod(
            json!({"tolerations": [{"operator": "Exists"}], "containers": [{"name": "c", "image": "x"}]}),
        ),
    );
    assert_eq!(obj["spec"]["tolerations"].as_array().map(Vec::len), Some(1));

    let (obj, _) = create(
        "",
        "Pod",
        pod(
            json!({"schedulingGates": [{"name": "g"}], "containers": [{"name": "c", "image": "x", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]}),
        ),
    );
    assert_eq!(obj["status"]["qosClass"], "Guaranteed");
    assert_eq!(obj["status"]["conditions"][0]["reason"], "SchedulingGated");
}

#[test]
fn create_forbids_ephemeral_containers() {
    let (_, errs) = create(
        "",
        "Pod",
        pod(
            json!({"containers": [{"name": "c", "image": "x"}], "ephemeralContainers": [{"name": "e", "image": "x"}]}),
        ),
    );
    assert_has(
        &errs,
        &["spec.ephemeralContainers: Forbidden: cannot be set on create"],
    );
}

#[test]
fn pod_update_rules() {
    let (old, errs) = create(
        "",
        "Pod",
        pod(json!({
            "activeDeadlineSeconds": 100,
            "tolerations": [{"key": "a", "operator": "Equal", "value": "1", "effect": "NoSchedule"}],
            "containers": [{"name": "c", "image": "x:1", "ports": [{"containerPort": 80}]}]
        })),
    );
    assert!(errs.is_empty());

    // Image, shorter deadline and an added toleration are fine, even when the client
    // omits the defaulted tolerations.
    let mut ok = old.clone();
    ok["spec"]["containers"][0]["image"] = json!("x:2");
    ok["spec"]["activeDeadlineSeconds"] = json!(50);
    ok["spec"]["tolerations"] = json!([
        {"key": "a", "operator": "Equal", "value": "1", "effect": "NoSchedule"},
        {"key": "k", "operator": "Exists"}
    ]);
    let (_, errs) = update("", "Pod", ok, &old);
    assert!(errs.is_empty(), "{errs:?}");

    let mut bad = old.clone();
    bad["spec"]["containers"][0]["ports"][0]["containerPort"] = json!(81);
    let (_, errs) = update("", "Pod", bad, &old);
    assert_eq!(errs.len(), 1);
    assert!(errs[0].starts_with(
        "spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)\n"
    ));
    assert!(errs[0].contains("spec.containers[0].ports[0].containerPort"));

    let mut longer = old.clone();
    longer["spec"]["activeDeadlineSeconds"] = json!(200);
    let (_, errs) = update("", "Pod", longer, &old);
    assert_eq!(
        errs,
        [
            "spec.activeDeadlineSeconds: Invalid value: 200: must be less than or equal to previous value"
        ]
    );

    let mut unset = old.clone();
    unset["spec"]
        .as_object_mut()
        .map(|s| s.remove("activeDeadlineSeconds"));
    let (_, errs) = update("", "Pod", unset, &old);
    assert_has(
        &errs,
        &[
            "spec.activeDeadlineSeconds: Invalid value: null: must not update from a positive integer to nil value",
        ],
    );

    let mut changed_tol = old.clone();
    changed_tol["spec"]["tolerations"][0]["value"] = json!("2");
    let (_, errs) = update("", "Pod", changed_tol, &old);
    assert_has(
        &errs,
        &[
            "spec.tolerations: Forbidden: existing toleration can not be modified except its tolerationSeconds",
        ],
    );

    let mut secs = old.clone();
    secs["spec"]["tolerations"][1]["tolerationSeconds"] = json!(10);
    let (_, errs) = update("", "Pod", secs, &old);
    assert!(errs.is_empty(), "{errs:?}");
}

#[test]
fn pod_field_selectors() {
    let p = json!({
        "spec": {"nodeName": "n1", "restartPolicy": "Always", "schedulerName": "s", "serviceAccountName": "sa", "hostNetwork": true},
        "status": {"phase": "Running", "podIPs": [{"ip": "10.0.0.5"}], "nominatedNodeName": "n2"}
    });
    let fields = for_kind("", "Pod").field_selector_fields(&p);
    let want: Vec<(&str, String)> = vec![
        ("spec.nodeName", "n1".into()),
        ("spec.restartPolicy", "Always".into()),
        ("spec.schedulerName", "s".into()),
        ("spec.serviceAccountName", "sa".into()),
        ("spec.hostNetwork", "true".into()),
        ("status.phase", "Running".into()),
        ("status.podIP", "10.0.0.5".into()),
        ("status.nominatedNodeName", "n2".into()),
    ];
    assert_eq!(fields, want);
    let empty = for_kind("", "Pod").field_selector_fields(&json!({}));
    assert_eq!(empty[4], ("spec.hostNetwork", "false".to_string()));
    assert_eq!(
        for_kind("", "Pod").field_selector_fields(&json!({"status": {"podIP": "1.2.3.4"}}))[6].1,
        "1.2.3.4"
    );
}
