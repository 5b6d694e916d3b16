//! Rows of storage-related core/v1 kinds: persistent volumes, claims, resource quotas.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::duration::since;
use super::fields::{arr_at, at, created, deleting, name, quantity, str_at};
use super::{AGE, Column, NAME, col, wide};

pub(super) const PV: &[Column] = &[
    NAME,
    col("Capacity", "Storage capacity of the volume."),
    col("Access Modes", "Access modes (RWO, ROX, RWX, RWOP)."),
    col(
        "Reclaim Policy",
        "What happens to the volume when its claim is released.",
    ),
    col("Status", "Phase of the volume."),
    col("Claim", "The claim bound to the volume (namespace/name)."),
    col("StorageClass", "Storage class of the volume."),
    col(
        "VolumeAttributesClass",
        "Volume attributes class of the volume.",
    ),
    col("Reason", "Why the volume is in its phase."),
    AGE,
    wide("VolumeMode", "Filesystem or Block."),
];

/// Access modes as upstream abbreviates them, in a fixed order.
fn access_modes(modes: &[Value]) -> String {
    let has = |m: &str| modes.iter().any(|v| v.as_str() == Some(m));
    [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ]
    .iter()
    .filter(|(mode, _)| has(mode))
    .map(|(_, short)| *short)
    .collect::<Vec<_>>()
    .join(",")
}

/// The class of a PV or PVC: the legacy beta annotation wins over the spec field.
fn storage_class(v: &Value) -> String {
    let annotation = at(
        v,
        &[
            "metadata",
            "annotations",
            "volume.beta.kubernetes.io/storage-class",
        ],
    )
    .and_then(Value::as_str);
    annotation
        .unwrap_or_else(|| str_at(v, &["spec", "storageClassName"]))
        .to_string()
}

fn unset_or(v: &Value, path: &[&str]) -> String {
    at(v, path)
        .and_then(Value::as_str)
        .map_or_else(|| "<unset>".to_string(), str::to_string)
}

fn phase_or_terminating(v: &Value) -> String {
    if deleting(v) {
        "Terminating".to_string()
    } else {
        str_at(v, &["status", "phase"]).to_string()
    }
}

pub(super) fn persistent_volume(pv: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let claim = match at(pv, &["spec", "claimRef"]) {
        Some(c) if !c.is_null() => {
            format!("{}/{}", str_at(c, &["namespace"]), str_at(c, &["name"]))
        }
        _ => String::new(),
    };
    vec![
        name(pv).into(),
        quantity(at(pv, &["spec", "capacity", "storage"])).into(),
        access_modes(arr_at(pv, &["spec", "accessModes"])).into(),
        str_at(pv, &["spec", "persistentVolumeReclaimPolicy"]).into(),
        phase_or_terminating(pv).into(),
        claim.into(),
        storage_class(pv).into(),
        unset_or(pv, &["spec", "volumeAttributesClassName"]).into(),
        str_at(pv, &["status", "reason"]).into(),
        since(created(pv), now).into(),
        unset_or(pv, &["spec", "volumeMode"]).into(),
    ]
}

pub(super) const PVC: &[Column] = &[
    NAME,
    col("Status", "Phase of the claim."),
    col("Volume", "The volume bound to the claim."),
    col("Capacity", "Capacity of the bound volume."),
    col("Access Modes", "Access modes of the bound volume."),
    col("StorageClass", "Storage class of the claim."),
    col(
        "VolumeAttributesClass",
        "Volume attributes class of the claim.",
    ),
    AGE,
    wide("VolumeMode", "Filesystem or Block."),
];

pub(super) fn persistent_volume_claim(pvc: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let volume = str_at(pvc, &["spec", "volumeName"]);
    // Capacity and modes are the bound volume's, so shown only once bound.
    let (capacity, modes) = if volume.is_empty() {
        (String::new(), String::new())
    } else {
        (
            quantity(at(pvc, &["status", "capacity", "storage"])),
            access_modes(arr_at(pvc, &["status", "accessModes"])),
        )
    };
    vec![
        name(pvc).into(),
        phase_or_terminating(pvc).into(),
        volume.into(),
        capacity.into(),
        modes.into(),
        storage_class(pvc).into(),
        unset_or(pvc, &["spec", "volumeAttributesClassName"]).into(),
        since(created(pvc), now).into(),
        unset_or(pvc, &["spec", "volumeMode"]).into(),
    ]
}

pub(super) const QUOTA: &[Column] = &[
    NAME,
    col("Request", "Used/hard of every non-limit resource."),
    col("Limit", "Used/hard of every limits.* resource."),
    AGE,
];

pub(super) fn resource_quota(q: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let mut requests: Vec<String> = Vec::new();
    let mut limits: Vec<String> = Vec::new();
    if let Some(hard) = at(q, &["status", "hard"]).and_then(Value::as_object) {
        // serde_json maps iterate in key order: the sorted order upstream prints.
        for (resource, hard_qty) in hard {
            let used = quantity(at(q, &["status", "used", resource.as_str()]));
            let text = format!("{resource}: {used}/{}", quantity(Some(hard_qty)));
            if resource.split('.').next() == Some("limits") && resource.contains('.') {
                limits.push(text);
            } else {
                requests.push(text);
            }
        }
    }
    vec![
        name(q).into(),
        requests.join(", ").into(),
        limits.join(", ").into(),
        since(created(q), now).into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2024-05-01T12:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .expect("time")
    }

    #[test]
    fn volumes() {
        let pv = json!({"metadata": {"name": "pv1", "creationTimestamp": "2024-05-01T11:00:00Z"},
            "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteMany", "ReadWriteOnce"],
                     "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "local",
                     "claimRef": {"namespace": "default", "name": "data"}, "volumeMode": "Filesystem"},
            "status": {"phase": "Bound"}});
        assert_eq!(
            persistent_volume(&pv, now()),
            vec![
                json!("pv1"),
                json!("1Gi"),
                json!("RWO,RWX"),
                json!("Retain"),
                json!("Bound"),
                json!("default/data"),
                json!("local"),
                json!("<unset>"),
                json!(""),
                json!("60m"),
                json!("Filesystem")
            ]
        );
        let pending = json!({"metadata": {"name": "data"}, "spec": {"storageClassName": "local"},
            "status": {"phase": "Pending"}});
        let cells = persistent_volume_claim(&pending, now());
        assert_eq!(
            &cells[1..6],
            &[
                json!("Pending"),
                json!(""),
                json!(""),
                json!(""),
                json!("local")
            ]
        );
        let bound = json!({"metadata": {"name": "data", "deletionTimestamp": "2024-05-01T11:00:00Z"},
            "spec": {"volumeName": "pv1"},
            "status": {"phase": "Bound", "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"]}});
        let cells = persistent_volume_claim(&bound, now());
        assert_eq!(
            &cells[1..5],
            &[
                json!("Terminating"),
                json!("pv1"),
                json!("1Gi"),
                json!("RWO")
            ]
        );
    }

    #[test]
    fn quota_columns() {
        let q = json!({"metadata": {"name": "q"},
            "status": {"hard": {"pods": "10", "limits.cpu": "2", "requests.memory": "1Gi"},
                       "used": {"pods": "3", "limits.cpu": "500m"}}});
        let cells = resource_quota(&q, now());
        assert_eq!(cells[1], "pods: 3/10, requests.memory: 0/1Gi");
        assert_eq!(cells[2], "limits.cpu: 500m/2");
    }
}
