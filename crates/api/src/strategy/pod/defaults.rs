//! Pod spec defaults (upstream `SetDefaults_PodSpec`, `_Pod`, `_Container`, `_Probe`,
//! `_Volume` and friends, plus the v1 conversion that mirrors `serviceAccount`).

use serde_json::{Value, json};

use crate::strategy::json::{
    Obj, default_nonzero, default_str, default_value, each_obj_mut, ensure_obj, is_blank, with_obj,
};

/// Defaults a pod spec. `is_pod` adds what upstream applies only to Pod objects (not to
/// templates): requests from limits, `enableServiceLinks`, host-network host ports.
pub(crate) fn default_pod_spec(spec: &mut Obj, is_pod: bool) {
    default_str(spec, "dnsPolicy", "ClusterFirst");
    default_str(spec, "restartPolicy", "Always");
    default_value(spec, "securityContext", json!({}));
    default_value(spec, "terminationGracePeriodSeconds", json!(30));
    default_str(spec, "schedulerName", "default-scheduler");
    mirror_service_account(spec);
    for key in ["containers", "initContainers", "ephemeralContainers"] {
        each_obj_mut(spec, key, default_container);
    }
    each_obj_mut(spec, "volumes", default_volume);
    if is_pod {
        each_obj_mut(spec, "containers", requests_from_limits);
        each_obj_mut(spec, "initContainers", requests_from_limits);
        default_value(spec, "enableServiceLinks", json!(true));
        if spec.get("hostNetwork") == Some(&Value::Bool(true)) {
            each_obj_mut(spec, "containers", host_ports_from_container_ports);
            each_obj_mut(spec, "initContainers", host_ports_from_container_ports);
        }
    }
}

/// v1 keeps the deprecated `serviceAccount` in sync with `serviceAccountName`.
fn mirror_service_account(spec: &mut Obj) {
    if is_blank(spec, "serviceAccountName")
        && !is_blank(spec, "serviceAccount")
        && let Some(v) = spec.get("serviceAccount").cloned()
    {
        spec.insert("serviceAccountName".into(), v);
    }
    if !is_blank(spec, "serviceAccountName")
        && let Some(v) = spec.get("serviceAccountName").cloned()
    {
        spec.insert("serviceAccount".into(), v);
    }
}

fn default_container(c: &mut Obj) {
    if is_blank(c, "imagePullPolicy") {
        let image = c.get("image").and_then(Value::as_str).unwrap_or("");
        let policy = if image_tag(image).as_deref() == Some("latest") {
            "Always"
        } else {
            "IfNotPresent"
        };
        c.insert("imagePullPolicy".into(), json!(policy));
    }
    default_str(c, "terminationMessagePath", "/dev/termination-log");
    default_str(c, "terminationMessagePolicy", "File");
    each_obj_mut(c, "ports", |p| default_str(p, "protocol", "TCP"));
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        with_obj(c, probe, default_probe);
    }
    with_obj(c, "lifecycle", |l| {
        for hook in ["postStart", "preStop"] {
            with_obj(l, hook, default_handler);
        }
    });
    each_obj_mut(c, "env", |e| {
        with_obj(e, "valueFrom", |vf| {
            with_obj(vf, "fieldRef", default_field_ref)
        });
    });
}

fn default_field_ref(f: &mut Obj) {
    default_str(f, "apiVersion", "v1");
}

fn default_probe(p: &mut Obj) {
    default_nonzero(p, "timeoutSeconds", 1);
    default_nonzero(p, "periodSeconds", 10);
    default_nonzero(p, "successThreshold", 1);
    default_nonzero(p, "failureThreshold", 3);
    default_handler(p);
}

fn default_handler(h: &mut Obj) {
    with_obj(h, "httpGet", |g| {
        default_str(g, "path", "/");
        default_str(g, "scheme", "HTTP");
    });
}

/// The tag `ParseImageName` would report: `latest` when neither tag nor digest is given,
/// `None` for references it would reject (then upstream falls back to IfNotPresent).
pub(crate) fn image_tag(image: &str) -> Option<String> {
    if image.is_empty() || image.trim() != image {
        return None;
    }
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    let (repo, tag) = match name[last_slash..].rfind(':') {
        Some(i) => (&name[..last_slash + i], Some(&name[last_slash + i + 1..])),
        None => (name, None),
    };
    // Path components after the (optional) registry host must be lower case.
    let mut parts = repo.split('/');
    let first = parts.next().unwrap_or("");
    let has_host =
        repo.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let path_ok = |p: &str| {
        !p.is_empty()
            && p.bytes().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'_' | b'-')
            })
    };
    if !has_host && !path_ok(first) {
        return None;
    }
    if !parts.all(path_ok) {
        return None;
    }
    match (tag, digest) {
        (Some(t), _) => {
            let ok = !t.is_empty()
                && t.len() <= 128
                && t.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'));
            ok.then(|| t.to_string())
        }
        (None, Some(_)) => Some(String::new()),
        (None, None) => Some("latest".to_string()),
    }
}

/// Volume source keys, in the order upstream checks them.
pub(crate) const VOLUME_SOURCES: &[&str] = &[
    "hostPath",
    "emptyDir",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "gitRepo",
    "secret",
    "nfs",
    "iscsi",
    "glusterfs",
    "persistentVolumeClaim",
    "rbd",
    "quobyte",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "downwardAPI",
    "fc",
    "azureFile",
    "configMap",
    "vsphereVolume",
    "azureDisk",
    "photonPersistentDisk",
    "projected",
    "portworxVolume",
    "scaleIO",
    "storageos",
    "csi",
    "ephemeral",
    "image",
];

fn default_volume(v: &mut Obj) {
    let has_source = VOLUME_SOURCES
        .iter()
        .any(|k| v.get(*k).is_some_and(|s| !s.is_null()));
    if !has_source {
        v.insert("emptyDir".into(), json!({}));
    }
    with_obj(v, "secret", |s| default_value(s, "defaultMode", json!(420)));
    with_obj(v, "configMap", |s| {
        default_value(s, "defaultMode", json!(420))
    });
    with_obj(v, "downwardAPI", |d| {
        default_value(d, "defaultMode", json!(420));
        each_obj_mut(d, "items", |i| with_obj(i, "fieldRef", default_field_ref));
    });
    with_obj(v, "projected", |p| {
        default_value(p, "defaultMode", json!(420));
        each_obj_mut(p, "sources", |s| {
            with_obj(s, "serviceAccountToken", |t| {
                default_value(t, "expirationSeconds", json!(3600))
            });
            with_obj(s, "downwardAPI", |d| {
                each_obj_mut(d, "items", |i| with_obj(i, "fieldRef", default_field_ref));
            });
        });
    });
    with_obj(v, "hostPath", |h| default_value(h, "type", json!("")));
    with_obj(v, "iscsi", |i| default_str(i, "iscsiInterface", "default"));
    with_obj(v, "ephemeral", |e| {
        with_obj(e, "volumeClaimTemplate", |t| {
            with_obj(t, "spec", |s| {
                default_value(s, "volumeMode", json!("Filesystem"))
            });
        });
    });
    with_obj(v, "image", |i| {
        if is_blank(i, "pullPolicy") {
            let r = i.get("reference").and_then(Value::as_str).unwrap_or("");
            let p = if image_tag(r).as_deref() == Some("latest") {
                "Always"
            } else {
                "IfNotPresent"
            };
            i.insert("pullPolicy".into(), json!(p));
        }
    });
}

fn requests_from_limits(c: &mut Obj) {
    let Some(res) = c.get_mut("resources").and_then(Value::as_object_mut) else {
        return;
    };
    let Some(limits) = res.get("limits").and_then(Value::as_object).cloned() else {
        return;
    };
    if let Some(requests) = ensure_obj(res, "requests") {
        for (k, v) in limits {
            requests.entry(k).or_insert(v);
        }
    }
}

fn host_ports_from_container_ports(c: &mut Obj) {
    each_obj_mut(c, "ports", |p| {
        if crate::strategy::json::is_zero_int(p, "hostPort")
            && let Some(cp) = p.get("containerPort").cloned()
        {
            p.insert("hostPort".into(), cp);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_tags() {
        let cases = [
            ("nginx", Some("latest")),
            ("nginx:latest", Some("latest")),
            ("nginx:1.25", Some("1.25")),
            ("registry:5000/app", Some("latest")),
            ("registry:5000/app:v1", Some("v1")),
            ("library/busybox@sha256:abc", Some("")),
            ("app:v1@sha256:abc", Some("v1")),
            ("NGINX", None),
            ("", None),
            (" nginx", None),
            ("Registry.Example.com/app", Some("latest")),
        ];
        for (img, want) in cases {
            assert_eq!(image_tag(img).as_deref(), want, "{img}");
        }
    }
}
