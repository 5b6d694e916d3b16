use serde_json::{Value, json};

use crate::strategy::test_support::{assert_has, create, defaulted, update};

fn pv(spec: Value) -> Value {
    json!({"metadata": {"name": "pv1"}, "spec": spec})
}

fn pvc(spec: Value) -> Value {
    json!({"metadata": {"name": "c", "namespace": "d"}, "spec": spec})
}

#[test]
fn pv_defaults_and_validation() {
    let good = json!({"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "hostPath": {"path": "/data"}});
    let (obj, errs) = create("", "PersistentVolume", pv(good.clone()));
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(obj["spec"]["persistentVolumeReclaimPolicy"], "Retain");
    assert_eq!(obj["spec"]["volumeMode"], "Filesystem");
    assert_eq!(obj["status"]["phase"], "Pending");
    assert!(obj["status"]["lastPhaseTransitionTime"].is_string());

    let (_, errs) = create(
        "",
        "PersistentVolume",
        pv(json!({"persistentVolumeReclaimPolicy": "Keep", "capacity": {"storage": "0"}})),
    );
    assert_has(
        &errs,
        &[
            "spec.accessModes: Required value",
            "spec.capacity[storage]: Invalid value: \"0\": must be greater than zero",
            "spec.persistentVolumeReclaimPolicy: Unsupported value: \"Keep\": supported values: \"Delete\", \"Recycle\", \"Retain\"",
            "spec: Required value: must specify a volume type",
        ],
    );
    let (_, errs) = create(
        "",
        "PersistentVolume",
        pv(
            json!({"accessModes": ["ReadWriteSometimes"], "capacity": {"cpu": "1"}, "nfs": {}, "hostPath": {}}),
        ),
    );
    assert_has(
        &errs,
        &[
            "spec.accessModes: Unsupported value: \"ReadWriteSometimes\": supported values: \"ReadOnlyMany\", \"ReadWriteMany\", \"ReadWriteOnce\", \"ReadWriteOncePod\"",
            "spec.nfs: Forbidden: may not specify more than 1 volume type",
            "spec.hostPath.path: Required value",
        ],
    );
    let (old, _) = create("", "PersistentVolume", pv(good));
    let mut moved = old.clone();
    moved["spec"]["hostPath"]["path"] = json!("/elsewhere");
    let (_, errs) = update("", "PersistentVolume", moved, &old);
    assert_eq!(
        errs,
        [
            "spec.persistentvolumesource: Forbidden: spec.persistentvolumesource is forbidden to be changed"
        ]
    );
}

#[test]
fn pvc_defaults_validation_and_update() {
    let good =
        json!({"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}});
    let (obj, errs) = create("", "PersistentVolumeClaim", pvc(good.clone()));
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(obj["spec"]["volumeMode"], "Filesystem");
    assert_eq!(obj["status"], json!({"phase": "Pending"}));
    assert_eq!(
        defaulted("", "PersistentVolumeClaim", pvc(json!({})))["status"]["phase"],
        "Pending"
    );

    let (_, errs) = create(
        "",
        "PersistentVolumeClaim",
        pvc(json!({"volumeMode": "Tape", "storageClassName": "Fast_SC"})),
    );
    assert_has(
        &errs,
        &[
            "spec.accessModes: Required value: at least 1 access mode is required",
            "spec.resources[storage]: Required value",
            "spec.volumeMode: Unsupported value: \"Tape\": supported values: \"Block\", \"Filesystem\"",
        ],
    );

    // Binding sets volumeName once; other spec changes are refused.
    let mut bound = obj.clone();
    bound["spec"]["volumeName"] = json!("pv1");
    assert!(
        update("", "PersistentVolumeClaim", bound.clone(), &obj)
            .1
            .is_empty()
    );
    let mut changed = obj.clone();
    changed["spec"]["accessModes"] = json!(["ReadWriteMany"]);
    assert_eq!(
        update("", "PersistentVolumeClaim", changed, &obj).1,
        [
            "spec: Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims"
        ]
    );
    // Bound claims may grow but not shrink below their capacity.
    let mut old = bound.clone();
    old["status"] = json!({"phase": "Bound", "capacity": {"storage": "1Gi"}});
    let mut grow = old.clone();
    grow["spec"]["resources"]["requests"]["storage"] = json!("2Gi");
    assert!(update("", "PersistentVolumeClaim", grow, &old).1.is_empty());
    let mut shrink = old.clone();
    shrink["spec"]["resources"]["requests"]["storage"] = json!("500Mi");
    assert_eq!(
        update("", "PersistentVolumeClaim", shrink, &old).1,
        ["spec.resources.requests.storage: Forbidden: field can not be less than status.capacity"]
    );
}

#[test]
fn storage_class() {
    let sc = json!({"metadata": {"name": "fast"}, "provisioner": "rancher.io/local-path"});
    let (obj, errs) = create("storage.k8s.io", "StorageClass", sc.clone());
    assert!(errs.is_empty());
    assert_eq!(obj["reclaimPolicy"], "Delete");
    assert_eq!(obj["volumeBindingMode"], "Immediate");
    let (_, errs) = create(
        "storage.k8s.io",
        "StorageClass",
        json!({"metadata": {"name": "x"}, "reclaimPolicy": "Recycle", "volumeBindingMode": "Later"}),
    );
    assert_eq!(
        errs,
        [
            "provisioner: Required value",
            "reclaimPolicy: Unsupported value: \"Recycle\": supported values: \"Delete\", \"Retain\"",
            "volumeBindingMode: Unsupported value: \"Later\": supported values: \"Immediate\", \"WaitForFirstConsumer\"",
        ]
    );
    let mut n = obj.clone();
    n["provisioner"] = json!("other.io/x");
    n["parameters"] = json!({"a": "b"});
    n["volumeBindingMode"] = json!("WaitForFirstConsumer");
    let (_, errs) = update("storage.k8s.io", "StorageClass", n, &obj);
    assert_eq!(
        errs,
        [
            "parameters: Forbidden: updates to parameters are forbidden.",
            "provisioner: Forbidden: updates to provisioner are forbidden.",
            "volumeBindingMode: Invalid value: \"WaitForFirstConsumer\": field is immutable",
        ]
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
        json!(0.5),
        json!({"k": [1]}),
    ];
    for (g, kind) in [
        ("", "PersistentVolume"),
        ("", "PersistentVolumeClaim"),
        ("storage.k8s.io", "StorageClass"),
    ] {
        for j in &junk {
            let _ = create(g, kind, j.clone());
            for k in [
                "spec",
                "status",
                "capacity",
                "accessModes",
                "resources",
                "hostPath",
                "provisioner",
                "parameters",
            ] {
                let (o, _) = create(g, kind, json!({"metadata": {"name": "x"}, k: j.clone()}));
                let _ = update(g, kind, o.clone(), &o);
                let (o2, _) = create(
                    g,
                    kind,
                    json!({"metadata": {"name": "x"}, "spec": {k: j.clone()}}),
                );
                let _ = update(g, kind, o2, &o);
            }
        }
    }
}
