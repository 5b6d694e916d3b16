//! The pod mutations and checks of upstream's `ServiceAccount` admission plugin, as pure
//! functions over JSON (the registry does the ServiceAccount lookup).

use serde_json::{Map, Value, json};

/// The ServiceAccount a pod without one runs as.
pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";

/// Where the API credentials appear in every container.
pub const TOKEN_MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// Prefix of the generated projected volume's name (`kube-api-access-xxxxx`).
pub const VOLUME_NAME_PREFIX: &str = "kube-api-access-";

/// The ConfigMap the root CA publisher keeps in every namespace.
pub const ROOT_CA_CONFIG_MAP: &str = "kube-root-ca.crt";

/// Lifetime asked for the projected token: upstream's "warn-only" 3607 s, which the token
/// issuer recognises as an automatically mounted token.
pub const TOKEN_EXPIRATION_SECONDS: i64 = 3607;

/// Annotation marking a pod the kubelet mirrors from a static manifest.
const MIRROR_POD_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// A ServiceAccount annotation that limits the pod to the secrets the account lists.
const ENFORCE_MOUNTABLE_SECRETS: &str = "kubernetes.io/enforce-mountable-secrets";

/// The ServiceAccount a pod names: `serviceAccountName`, else the deprecated
/// `serviceAccount` (v1 → internal conversion), else empty.
pub fn service_account_name(pod: &Value) -> String {
    ["serviceAccountName", "serviceAccount"]
        .iter()
        .filter_map(|f| pod.pointer(&format!("/spec/{f}")).and_then(Value::as_str))
        .find(|s| !s.is_empty())
        .unwrap_or("")
        .to_string()
}

/// Whether the pod is a kubelet mirror pod (its spec must not change).
pub fn is_mirror_pod(pod: &Value) -> bool {
    pod.pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .is_some_and(|a| a.contains_key(MIRROR_POD_ANNOTATION))
}

/// Mirror pods may not use credentials: no service account, no secret, no token
/// projection. `Err` carries the Forbidden reason.
pub fn validate_mirror_pod(pod: &Value) -> Result<(), String> {
    if !service_account_name(pod).is_empty() {
        return Err("a mirror pod may not reference service accounts".into());
    }
    if references_secrets(pod) {
        return Err("a mirror pod may not reference secrets".into());
    }
    let token_projection = volumes(pod).iter().any(|v| {
        v.pointer("/projected/sources")
            .and_then(Value::as_array)
            .is_some_and(|s| s.iter().any(|s| s.get("serviceAccountToken").is_some()))
    });
    if token_projection {
        return Err("a mirror pod may not use ServiceAccountToken volume projections".into());
    }
    Ok(())
}

/// Pod `automountServiceAccountToken` wins, then the ServiceAccount's; default true.
pub fn should_automount(pod: &Value, sa: &Value) -> bool {
    pod.pointer("/spec/automountServiceAccountToken")
        .and_then(Value::as_bool)
        .or_else(|| {
            sa.get("automountServiceAccountToken")
                .and_then(Value::as_bool)
        })
        .unwrap_or(true)
}

/// The projected volume carrying token, cluster CA and namespace. `defaultMode` is set
/// explicitly, as upstream does, so the stored pod shows it.
pub fn token_volume(name: &str) -> Value {
    json!({
        "name": name,
        "projected": {
            "sources": [
                {"serviceAccountToken": {
                    "expirationSeconds": TOKEN_EXPIRATION_SECONDS,
                    "path": "token",
                }},
                {"configMap": {
                    "name": ROOT_CA_CONFIG_MAP,
                    "items": [{"key": "ca.crt", "path": "ca.crt"}],
                }},
                {"downwardAPI": {
                    "items": [{
                        "path": "namespace",
                        "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
                    }],
                }},
            ],
            "defaultMode": 420,
        },
    })
}

/// Mount the token volume read-only at [`TOKEN_MOUNT_PATH`] in every init and regular
/// container that has nothing mounted there, and add the volume when one of them needs
/// it. An existing `kube-api-access-*` volume is reused; otherwise `new_name` names one.
pub fn mount_token(spec: &mut Map<String, Value>, new_name: impl FnOnce() -> String) {
    let existing = spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.get("name").and_then(Value::as_str))
        .find(|n| n.starts_with(VOLUME_NAME_PREFIX))
        .map(str::to_string);
    let has_volume = existing.is_some();
    let name = existing.unwrap_or_else(new_name);
    let mount = json!({"name": name, "readOnly": true, "mountPath": TOKEN_MOUNT_PATH});
    let mut needs_volume = false;
    for field in ["initContainers", "containers"] {
        let Some(containers) = spec.get_mut(field).and_then(Value::as_array_mut) else {
            continue;
        };
        for c in containers.iter_mut().filter_map(Value::as_object_mut) {
            let mounted = c
                .get("volumeMounts")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .any(|m| m.get("mountPath").and_then(Value::as_str) == Some(TOKEN_MOUNT_PATH));
            if mounted {
                continue;
            }
            push(c, "volumeMounts", mount.clone());
            needs_volume = true;
        }
    }
    if needs_volume && !has_volume {
        push(spec, "volumes", token_volume(&name));
    }
}

/// A pod without `imagePullSecrets` inherits the ServiceAccount's (names only).
pub fn inherit_image_pull_secrets(spec: &mut Map<String, Value>, sa: &Value) {
    let has_own = spec
        .get("imagePullSecrets")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    let inherited: Vec<Value> = names(sa.get("imagePullSecrets"))
        .into_iter()
        .map(|n| json!({"name": n}))
        .collect();
    if !has_own && !inherited.is_empty() {
        spec.insert("imagePullSecrets".into(), Value::Array(inherited));
    }
}

/// Whether the ServiceAccount asks for its secret list to be enforced (Go `ParseBool`).
pub fn enforces_mountable_secrets(sa: &Value) -> bool {
    sa.pointer("/metadata/annotations")
        .and_then(|a| a.get(ENFORCE_MOUNTABLE_SECRETS))
        .and_then(Value::as_str)
        .is_some_and(|v| matches!(v, "1" | "t" | "T" | "true" | "TRUE" | "True"))
}

/// Secrets the pod uses must be listed by its ServiceAccount (`secrets` for volumes and
/// env, `imagePullSecrets` for pull secrets). `Err` carries the Forbidden reason.
pub fn limit_secret_references(sa: &Value, pod: &Value) -> Result<(), String> {
    let sa_name = sa
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let mountable = names(sa.get("secrets"));
    for v in volumes(pod) {
        let Some(source) = v.get("secret").filter(|s| s.is_object()) else {
            continue;
        };
        let secret = source
            .get("secretName")
            .and_then(Value::as_str)
            .unwrap_or("");
        if !mountable.iter().any(|m| m == secret) {
            return Err(format!(
                "volume with secret.secretName=\"{secret}\" is not allowed because service account {sa_name} does not reference that secret"
            ));
        }
    }
    for (field, what) in [
        ("initContainers", "init container"),
        ("containers", "container"),
    ] {
        for c in array(pod.pointer(&format!("/spec/{field}"))) {
            for env in array(c.get("env")) {
                let Some(secret) = env.pointer("/valueFrom/secretKeyRef") else {
                    continue;
                };
                let secret = secret.get("name").and_then(Value::as_str).unwrap_or("");
                if !mountable.iter().any(|m| m == secret) {
                    let container = c.get("name").and_then(Value::as_str).unwrap_or("");
                    let var = env.get("name").and_then(Value::as_str).unwrap_or("");
                    return Err(format!(
                        "{what} {container} with envVar {var} referencing secret.secretName=\"{secret}\" is not allowed because service account {sa_name} does not reference that secret"
                    ));
                }
            }
        }
    }
    let pull = names(sa.get("imagePullSecrets"));
    for (i, name) in names(pod.pointer("/spec/imagePullSecrets"))
        .iter()
        .enumerate()
    {
        if !pull.contains(name) {
            return Err(format!(
                "imagePullSecrets[{i}].name=\"{name}\" is not allowed because service account {sa_name} does not reference that imagePullSecret"
            ));
        }
    }
    Ok(())
}

/// Whether anything in the pod names a Secret (upstream `VisitPodSecretNames`).
fn references_secrets(pod: &Value) -> bool {
    if !array(pod.pointer("/spec/imagePullSecrets")).is_empty() {
        return true;
    }
    let containers = ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .flat_map(|f| array(pod.pointer(&format!("/spec/{f}"))));
    for c in containers {
        if array(c.get("envFrom"))
            .iter()
            .any(|e| e.get("secretRef").is_some())
            || array(c.get("env"))
                .iter()
                .any(|e| e.pointer("/valueFrom/secretKeyRef").is_some())
        {
            return true;
        }
    }
    const SECRET_REFS: [&str; 11] = [
        "/secret",
        "/azureFile/secretName",
        "/cephfs/secretRef",
        "/cinder/secretRef",
        "/flexVolume/secretRef",
        "/rbd/secretRef",
        "/scaleIO/secretRef",
        "/iscsi/secretRef",
        "/storageos/secretRef",
        "/csi/nodePublishSecretRef",
        "/projected/sources",
    ];
    volumes(pod).iter().any(|v| {
        SECRET_REFS.iter().any(|p| match v.pointer(p) {
            None | Some(Value::Null) => false,
            Some(Value::Array(sources)) => sources.iter().any(|s| s.get("secret").is_some()),
            Some(_) => true,
        })
    })
}

fn volumes(pod: &Value) -> &[Value] {
    array(pod.pointer("/spec/volumes"))
}

fn array(v: Option<&Value>) -> &[Value] {
    v.and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// `name` of each `{name: …}` reference in a list.
fn names(list: Option<&Value>) -> Vec<String> {
    array(list)
        .iter()
        .filter_map(|r| r.get("name").and_then(Value::as_str))
        .map(str::to_string)
        .collect()
}

/// Append to the array at `field`, creating it when missing. A malformed (non-array)
/// value is left for validation to report.
fn push(obj: &mut Map<String, Value>, field: &str, item: Value) {
    match obj.get_mut(field) {
        Some(Value::Array(a)) => a.push(item),
        None | Some(Value::Null) => {
            obj.insert(field.into(), Value::Array(vec![item]));
        }
        Some(_) => {}
    }
}
