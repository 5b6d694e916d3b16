use base64::Engine as _;
use serde_json::{Value, json};

use crate::strategy::for_kind;
use crate::strategy::test_support::{assert_has, create, defaulted, update};

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[test]
fn namespace_lifecycle() {
    let (ns, errs) = create("", "Namespace", json!({"metadata": {"name": "team-a"}}));
    assert!(errs.is_empty());
    assert_eq!(
        ns["metadata"]["labels"]["kubernetes.io/metadata.name"],
        "team-a"
    );
    assert_eq!(ns["spec"]["finalizers"], json!(["kubernetes"]));
    assert_eq!(ns["status"], json!({"phase": "Active"}));
    // The label cannot be changed and finalizers are only changed via /finalize.
    let mut n = ns.clone();
    n["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!("other");
    n["spec"]["finalizers"] = json!([]);
    let (got, errs) = update("", "Namespace", n, &ns);
    assert!(errs.is_empty());
    assert_eq!(
        got["metadata"]["labels"]["kubernetes.io/metadata.name"],
        "team-a"
    );
    assert_eq!(got["spec"]["finalizers"], json!(["kubernetes"]));
    let (_, errs) = create(
        "",
        "Namespace",
        json!({"metadata": {"name": "x"}, "spec": {"finalizers": ["custom", "example.com/ok"]}}),
    );
    assert_eq!(
        errs,
        [
            "spec.finalizers: Invalid value: \"custom\": name is neither a standard finalizer name nor is it fully qualified"
        ]
    );
    assert_eq!(
        for_kind("", "Namespace").field_selector_fields(&ns),
        vec![("status.phase", "Active".to_string())]
    );
}

#[test]
fn configmap_validation() {
    let cm = |data: Value| json!({"metadata": {"name": "c", "namespace": "d"}, "data": data});
    assert!(
        create("", "ConfigMap", cm(json!({"a.b-c_D": "x"})))
            .1
            .is_empty()
    );
    let (_, errs) = create("", "ConfigMap", cm(json!({"a/b": "x", "..x": "y", "n": 5})));
    assert_has(
        &errs,
        &[
            "data[a/b]: Invalid value: \"a/b\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
            "data[..x]: Invalid value: \"..x\": must not start with '..'",
            "data[n]: Invalid value: 5: must be of type string",
        ],
    );
    let (_, errs) = create(
        "",
        "ConfigMap",
        cm(json!({"big": "x".repeat(1024 * 1024 + 1)})),
    );
    assert_eq!(errs, ["Too long: may not be more than 1048576 bytes"]);
    let (_, errs) = create(
        "",
        "ConfigMap",
        json!({"metadata": {"name": "c"}, "data": {"k": "v"}, "binaryData": {"k": b64("v")}}),
    );
    assert_has(
        &errs,
        &[
            "data[k]: Invalid value: \"k\": duplicate of key present in binaryData",
            "binaryData[k]: Invalid value: \"k\": duplicate of key present in data",
        ],
    );
    let old = json!({"metadata": {"name": "c"}, "immutable": true, "data": {"a": "1"}});
    let (_, errs) = update(
        "",
        "ConfigMap",
        json!({"metadata": {"name": "c"}, "data": {"a": "2"}}),
        &old,
    );
    assert_eq!(
        errs,
        [
            "immutable: Forbidden: field is immutable when `immutable` is set",
            "data: Forbidden: field is immutable when `immutable` is set",
        ]
    );
}

#[test]
fn secret_defaults_and_validation() {
    let s = defaulted(
        "",
        "Secret",
        json!({"metadata": {"name": "s"}, "stringData": {"user": "admin"}, "data": {"user": b64("x"), "pw": b64("p")}}),
    );
    assert_eq!(s["type"], "Opaque");
    assert_eq!(s["data"], json!({"user": b64("admin"), "pw": b64("p")}));
    assert!(s.get("stringData").is_none());

    let (_, errs) = create(
        "",
        "Secret",
        json!({"metadata": {"name": "s"}, "type": "kubernetes.io/tls", "data": {"tls.crt": b64("c")}}),
    );
    assert_eq!(errs, ["data[tls.key]: Required value"]);
    let (_, errs) = create(
        "",
        "Secret",
        json!({"metadata": {"name": "s"}, "type": "kubernetes.io/basic-auth"}),
    );
    assert_eq!(
        errs,
        [
            "data[username]: Required value",
            "data[password]: Required value"
        ]
    );
    let (_, errs) = create(
        "",
        "Secret",
        json!({"metadata": {"name": "s"}, "type": "kubernetes.io/dockerconfigjson", "data": {".dockerconfigjson": b64("nope")}}),
    );
    assert_eq!(errs.len(), 1);
    let (_, errs) = create(
        "",
        "Secret",
        json!({"metadata": {"name": "s"}, "type": "kubernetes.io/service-account-token"}),
    );
    assert_eq!(
        errs,
        ["metadata.annotations[kubernetes.io/service-account.name]: Required value"]
    );
    let (_, errs) = create(
        "",
        "Secret",
        json!({"metadata": {"name": "s"}, "data": {"k": "!!notbase64"}}),
    );
    assert_eq!(errs.len(), 1);
    assert!(errs[0].starts_with(
        "data[k]: Invalid value: \"<secret contents redacted>\": illegal base64 data"
    ));

    let old = json!({"metadata": {"name": "s"}, "type": "Opaque", "immutable": true, "data": {"a": b64("1")}});
    let (_, errs) = update(
        "",
        "Secret",
        json!({"metadata": {"name": "s"}, "type": "kubernetes.io/tls", "immutable": true, "data": {"a": b64("2")}}),
        &old,
    );
    assert_has(
        &errs,
        &[
            "type: Invalid value: \"kubernetes.io/tls\": field is immutable",
            "data: Forbidden: field is immutable when `immutable` is set",
        ],
    );
    assert_eq!(
        for_kind("", "Secret").field_selector_fields(&old),
        vec![("type", "Opaque".to_string())]
    );
}

#[test]
fn node_defaults_validation_and_fields() {
    let n = defaulted(
        "",
        "Node",
        json!({"metadata": {"name": "n"}, "status": {"capacity": {"cpu": "4"}}}),
    );
    assert_eq!(n["status"]["allocatable"], json!({"cpu": "4"}));
    let (_, errs) = create(
        "",
        "Node",
        json!({"metadata": {"name": "n"}, "spec": {"taints": [{"key": "a", "effect": "NoSchedule"}, {"key": "a", "effect": "NoSchedule"}, {"key": "b"}]}}),
    );
    assert_eq!(errs.len(), 2);
    assert!(errs[0].ends_with("taints must be unique by key and effect pair"));
    assert_eq!(errs[1], "spec.taints[2].effect: Required value");
    let f = for_kind("", "Node").field_selector_fields(&json!({"spec": {"unschedulable": true}}));
    assert_eq!(f, vec![("spec.unschedulable", "true".to_string())]);
}

#[test]
fn small_kinds() {
    let ep = defaulted(
        "",
        "Endpoints",
        json!({"subsets": [{"ports": [{"port": 80}]}]}),
    );
    assert_eq!(ep["subsets"][0]["ports"][0]["protocol"], "TCP");
    let lr = defaulted(
        "",
        "LimitRange",
        json!({"spec": {"limits": [{"type": "Container", "max": {"cpu": "2"}, "min": {"memory": "1Mi"}}]}}),
    );
    assert_eq!(lr["spec"]["limits"][0]["default"], json!({"cpu": "2"}));
    assert_eq!(
        lr["spec"]["limits"][0]["defaultRequest"],
        json!({"cpu": "2", "memory": "1Mi"})
    );
    let (rq, errs) = create(
        "",
        "ResourceQuota",
        json!({"metadata": {"name": "q"}, "spec": {"hard": {"pods": "-1", "cpu": "x"}}, "status": {"used": {}}}),
    );
    assert_eq!(rq["status"], json!({}));
    assert_eq!(errs.len(), 2);
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
        "Namespace",
        "ConfigMap",
        "Secret",
        "Node",
        "Event",
        "Endpoints",
        "LimitRange",
        "ResourceQuota",
    ];
    for kind in kinds {
        for j in &junk {
            let _ = create("", kind, j.clone());
            for k in [
                "metadata",
                "spec",
                "status",
                "data",
                "binaryData",
                "stringData",
                "type",
                "immutable",
                "subsets",
            ] {
                let obj = json!({k: j.clone()});
                let (o, _) = create("", kind, obj.clone());
                let _ = update("", kind, o.clone(), &obj);
                let _ = for_kind("", kind).field_selector_fields(&o);
            }
        }
    }
}
