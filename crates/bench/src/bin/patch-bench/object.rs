//! The measured object — a Deployment whose pod template has `n` containers, each with
//! env, ports, volumeMounts and resources — and the patch bodies applied to it.

use serde_json::{Value, json};

/// Name of container `i` (zero-padded so list order and name order agree).
pub fn container_name(i: usize) -> String {
    format!("c-{i:03}")
}

/// Container `i` with `image`.
pub fn container(i: usize, image: &str) -> Value {
    json!({
        "name": container_name(i),
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "args": ["--listen", format!(":{}", 8000 + i), "--config", format!("/etc/c-{i}/config.yaml")],
        "env": [
            {"name": "MODE", "value": "production"},
            {"name": "INDEX", "value": i.to_string()},
            {"name": "LOG_LEVEL", "value": "info"},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}},
        ],
        "ports": [
            {"name": format!("h-{i}"), "containerPort": 8000 + i, "protocol": "TCP"},
            {"name": format!("m-{i}"), "containerPort": 20000 + i, "protocol": "TCP"},
        ],
        "volumeMounts": [
            {"name": "config", "mountPath": format!("/etc/c-{i}"), "readOnly": true},
            {"name": "data", "mountPath": format!("/data/c-{i}")},
        ],
        "resources": {
            "requests": {"cpu": "10m", "memory": "16Mi"},
            "limits": {"cpu": "100m", "memory": "64Mi"},
        },
    })
}

/// The image of container `i` in variant `v` (patches alternate between variants so every
/// patch is a real change).
pub fn image(i: usize, v: usize) -> String {
    format!("registry.example/app-{i}:1.{v}")
}

/// The Deployment as a client sends it (create or apply configuration).
pub fn deployment(name: &str, ns: &str, containers: usize) -> Value {
    let list: Vec<Value> = (0..containers)
        .map(|i| container(i, &image(i, 0)))
        .collect();
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": list,
                    "volumes": [
                        {"name": "config", "configMap": {"name": "big-config"}},
                        {"name": "data", "emptyDir": {}},
                    ],
                },
            },
        },
    })
}

/// The container the single-field patches change (middle of the list).
pub fn target(containers: usize) -> usize {
    containers / 2
}

/// `$setElementOrder/containers` for the given names.
fn order(names: impl Iterator<Item = String>) -> Value {
    Value::Array(names.map(|n| json!({ "name": n })).collect())
}

/// Strategic merge patch: container `i`'s image becomes variant `v` (as `kubectl patch` or
/// `kubectl set image` send it).
pub fn strategic_image(i: usize, v: usize) -> Vec<u8> {
    let body = json!({"spec": {"template": {"spec": {"containers": [
        {"name": container_name(i), "image": image(i, v)}
    ]}}}});
    body.to_string().into_bytes()
}

/// Strategic merge patch adding container `containers` at the end, with the element order
/// of every container (as `kubectl apply` computes it).
pub fn strategic_add(containers: usize) -> Vec<u8> {
    let body = json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": order((0..=containers).map(container_name)),
        "containers": [container(containers, &image(containers, 0))],
    }}}});
    body.to_string().into_bytes()
}

/// Strategic merge patch removing container `i`, with the remaining element order.
pub fn strategic_remove(containers: usize, i: usize) -> Vec<u8> {
    let body = json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": order((0..containers).filter(|&c| c != i).map(container_name)),
        "containers": [{"$patch": "delete", "name": container_name(i)}],
    }}}});
    body.to_string().into_bytes()
}

/// JSON patch (RFC 6902) making the same image change.
pub fn json_patch_image(i: usize, v: usize) -> Vec<u8> {
    let body = json!([{
        "op": "replace",
        "path": format!("/spec/template/spec/containers/{i}/image"),
        "value": image(i, v),
    }]);
    body.to_string().into_bytes()
}

/// JSON merge patch (RFC 7396) making the same image change: a merge patch replaces lists,
/// so it carries the whole container list of `live` with one image changed.
pub fn merge_patch_image(live: &Value, i: usize, v: usize) -> Vec<u8> {
    let mut list = live
        .pointer("/spec/template/spec/containers")
        .cloned()
        .unwrap_or_else(|| json!([]));
    if let Some(c) = list.get_mut(i) {
        c["image"] = json!(image(i, v));
    }
    let body = json!({"spec": {"template": {"spec": {"containers": list}}}});
    body.to_string().into_bytes()
}

/// The apply configuration with container `i`'s image at variant `v`.
pub fn apply_config(name: &str, ns: &str, containers: usize, i: usize, v: usize) -> Vec<u8> {
    let mut d = deployment(name, ns, containers);
    if let Some(c) = d.pointer_mut(&format!("/spec/template/spec/containers/{i}")) {
        c["image"] = json!(image(i, v));
    }
    d.to_string().into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use r8s_api::patch::{PatchType, apply_patch, merge_keys_for};

    fn images(d: &Value) -> Vec<String> {
        d.pointer("/spec/template/spec/containers")
            .and_then(Value::as_array)
            .map(|l| {
                l.iter()
                    .map(|c| c["image"].as_str().unwrap_or("").to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn every_single_field_patch_changes_the_same_image() {
        let keys = merge_keys_for("apps", "Deployment");
        let live = deployment("big", "default", 20);
        let t = target(20);
        let bodies = [
            (PatchType::StrategicMerge, strategic_image(t, 1)),
            (PatchType::Json, json_patch_image(t, 1)),
            (PatchType::Merge, merge_patch_image(&live, t, 1)),
        ];
        for (kind, body) in bodies {
            let out = apply_patch(kind, &live, &body, &keys).unwrap();
            let mut want = images(&live);
            want[t] = image(t, 1);
            assert_eq!(images(&out), want, "{kind:?}");
            let list = &out["spec"]["template"]["spec"]["containers"];
            assert_eq!(
                list[t]["env"],
                live["spec"]["template"]["spec"]["containers"][t]["env"]
            );
        }
    }

    #[test]
    fn add_and_remove_keep_the_element_order() {
        let keys = merge_keys_for("apps", "Deployment");
        let live = deployment("big", "default", 5);
        let out = apply_patch(PatchType::StrategicMerge, &live, &strategic_add(5), &keys).unwrap();
        let names: Vec<String> = (0..=5).map(container_name).collect();
        let got: Vec<String> = out["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(got, names);
        let out = apply_patch(
            PatchType::StrategicMerge,
            &live,
            &strategic_remove(5, 2),
            &keys,
        )
        .unwrap();
        let got: Vec<&str> = out["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(got, ["c-000", "c-001", "c-003", "c-004"]);
    }

    #[test]
    fn apply_config_changes_one_image() {
        let a: Value = serde_json::from_slice(&apply_config("big", "default", 4, 2, 0)).unwrap();
        let b: Value = serde_json::from_slice(&apply_config("big", "default", 4, 2, 1)).unwrap();
        let (ia, ib) = (images(&a), images(&b));
        assert_eq!(ia[..2], ib[..2]);
        assert_ne!(ia[2], ib[2]);
        assert_eq!(ia[3], ib[3]);
    }
}
