use super::service_account::*;
use super::{forbidden, forbidden_name};
use serde_json::{Map, Value, json};

fn spec_of(pod: &mut Value) -> &mut Map<String, Value> {
    pod.get_mut("spec")
        .and_then(Value::as_object_mut)
        .expect("spec")
}

fn mount() -> Value {
    json!({"name": "kube-api-access-abcde", "readOnly": true, "mountPath": TOKEN_MOUNT_PATH})
}

#[test]
fn token_volume_matches_upstream() {
    assert_eq!(
        token_volume("kube-api-access-x2b4z"),
        json!({
            "name": "kube-api-access-x2b4z",
            "projected": {
                "defaultMode": 420,
                "sources": [
                    {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                    {"configMap": {"name": "kube-root-ca.crt",
                                   "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                    {"downwardAPI": {"items": [{"path": "namespace",
                        "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
                ],
            },
        })
    );
}

#[test]
fn mounts_in_every_container_and_adds_the_volume() {
    let mut pod = json!({"spec": {
        "initContainers": [{"name": "init"}],
        "containers": [
            {"name": "a", "volumeMounts": [{"name": "data", "mountPath": "/data"}]},
            {"name": "b"},
        ],
        "volumes": [{"name": "data", "emptyDir": {}}],
    }});
    mount_token(spec_of(&mut pod), || "kube-api-access-abcde".into());
    assert_eq!(
        pod.pointer("/spec/initContainers/0/volumeMounts/0"),
        Some(&mount())
    );
    assert_eq!(
        pod.pointer("/spec/containers/0/volumeMounts/1"),
        Some(&mount())
    );
    assert_eq!(
        pod.pointer("/spec/containers/1/volumeMounts/0"),
        Some(&mount())
    );
    let volumes = pod
        .pointer("/spec/volumes")
        .and_then(Value::as_array)
        .expect("volumes");
    assert_eq!(volumes.len(), 2);
    assert_eq!(volumes[1], token_volume("kube-api-access-abcde"));
}

#[test]
fn existing_mount_at_the_path_is_left_alone() {
    let own = json!({"name": "creds", "mountPath": TOKEN_MOUNT_PATH});
    let mut pod = json!({"spec": {
        "containers": [{"name": "a", "volumeMounts": [own.clone()]}, {"name": "b"}],
        "volumes": [{"name": "creds", "secret": {"secretName": "s"}}],
    }});
    mount_token(spec_of(&mut pod), || "kube-api-access-abcde".into());
    assert_eq!(
        pod.pointer("/spec/containers/0/volumeMounts"),
        Some(&json!([own]))
    );
    assert_eq!(
        pod.pointer("/spec/containers/1/volumeMounts/0"),
        Some(&mount())
    );

    // Every container mounts something there: no volume is added at all.
    let mut pod = json!({"spec": {
        "containers": [{"name": "a", "volumeMounts": [own.clone()]}],
        "volumes": [{"name": "creds", "secret": {"secretName": "s"}}],
    }});
    let before = pod.clone();
    mount_token(spec_of(&mut pod), || "kube-api-access-abcde".into());
    assert_eq!(pod, before);
}

#[test]
fn an_existing_token_volume_is_reused() {
    let mut pod = json!({"spec": {
        "containers": [{"name": "a"}],
        "volumes": [{"name": "kube-api-access-zzzzz", "emptyDir": {}}],
    }});
    mount_token(spec_of(&mut pod), || {
        panic!("the existing volume is reused")
    });
    assert_eq!(
        pod.pointer("/spec/containers/0/volumeMounts/0/name"),
        Some(&json!("kube-api-access-zzzzz"))
    );
    assert_eq!(
        pod.pointer("/spec/volumes")
            .and_then(Value::as_array)
            .map(Vec::len),
        Some(1)
    );
}

#[test]
fn automount_pod_wins_then_service_account() {
    let pod = |v: Option<bool>| match v {
        Some(b) => json!({"spec": {"automountServiceAccountToken": b}}),
        None => json!({"spec": {}}),
    };
    let sa = |v: Option<bool>| match v {
        Some(b) => json!({"automountServiceAccountToken": b}),
        None => json!({}),
    };
    assert!(should_automount(&pod(None), &sa(None)));
    assert!(!should_automount(&pod(None), &sa(Some(false))));
    assert!(should_automount(&pod(Some(true)), &sa(Some(false))));
    assert!(!should_automount(&pod(Some(false)), &sa(Some(true))));
}

#[test]
fn service_account_name_falls_back_to_the_deprecated_field() {
    assert_eq!(service_account_name(&json!({"spec": {}})), "");
    assert_eq!(
        service_account_name(&json!({"spec": {"serviceAccount": "old"}})),
        "old"
    );
    assert_eq!(
        service_account_name(
            &json!({"spec": {"serviceAccountName": "new", "serviceAccount": "old"}})
        ),
        "new"
    );
    assert_eq!(
        service_account_name(&json!({"spec": {"serviceAccountName": "", "serviceAccount": "old"}})),
        "old"
    );
}

#[test]
fn image_pull_secrets_are_inherited_only_when_the_pod_has_none() {
    let sa = json!({"imagePullSecrets": [{"name": "reg"}]});
    let mut pod = json!({"spec": {}});
    inherit_image_pull_secrets(spec_of(&mut pod), &sa);
    assert_eq!(
        pod.pointer("/spec/imagePullSecrets"),
        Some(&json!([{"name": "reg"}]))
    );
    let mut pod = json!({"spec": {"imagePullSecrets": [{"name": "own"}]}});
    inherit_image_pull_secrets(spec_of(&mut pod), &sa);
    assert_eq!(
        pod.pointer("/spec/imagePullSecrets"),
        Some(&json!([{"name": "own"}]))
    );
    let mut pod = json!({"spec": {}});
    inherit_image_pull_secrets(spec_of(&mut pod), &json!({}));
    assert_eq!(pod.pointer("/spec/imagePullSecrets"), None);
}

#[test]
fn mirror_pods_may_not_use_credentials() {
    let mirror = |spec: Value| json!({"metadata": {"annotations": {"kubernetes.io/config.mirror": "x"}}, "spec": spec});
    assert!(is_mirror_pod(&mirror(json!({}))));
    assert!(!is_mirror_pod(&json!({"metadata": {}})));
    assert_eq!(
        validate_mirror_pod(&mirror(json!({"containers": [{"name": "a"}]}))),
        Ok(())
    );
    assert_eq!(
        validate_mirror_pod(&mirror(json!({"serviceAccountName": "default"}))),
        Err("a mirror pod may not reference service accounts".into())
    );
    let secrets = "a mirror pod may not reference secrets".to_string();
    for spec in [
        json!({"imagePullSecrets": [{"name": "r"}]}),
        json!({"volumes": [{"name": "v", "secret": {"secretName": "s"}}]}),
        json!({"volumes": [{"name": "v", "projected": {"sources": [{"secret": {"name": "s"}}]}}]}),
        json!({"volumes": [{"name": "v", "csi": {"driver": "d", "nodePublishSecretRef": {"name": "s"}}}]}),
        json!({"containers": [{"name": "a", "envFrom": [{"secretRef": {"name": "s"}}]}]}),
        json!({"initContainers": [{"name": "a", "env": [{"name": "E",
            "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]}]}),
    ] {
        assert_eq!(
            validate_mirror_pod(&mirror(spec.clone())),
            Err(secrets.clone()),
            "{spec}"
        );
    }
    assert_eq!(
        validate_mirror_pod(&mirror(json!({"volumes": [{"name": "v", "projected":
            {"sources": [{"serviceAccountToken": {"path": "t"}}]}}]}))),
        Err("a mirror pod may not use ServiceAccountToken volume projections".into())
    );
}

#[test]
fn mountable_secrets_are_enforced_on_request() {
    let sa = json!({
        "metadata": {"name": "builder",
                     "annotations": {"kubernetes.io/enforce-mountable-secrets": "true"}},
        "secrets": [{"name": "ok"}],
        "imagePullSecrets": [{"name": "reg"}],
    });
    assert!(enforces_mountable_secrets(&sa));
    assert!(!enforces_mountable_secrets(
        &json!({"metadata": {"annotations":
        {"kubernetes.io/enforce-mountable-secrets": "yes"}}})
    ));
    let allowed = json!({"spec": {
        "volumes": [{"name": "v", "secret": {"secretName": "ok"}}],
        "containers": [{"name": "c", "env": [{"name": "E",
            "valueFrom": {"secretKeyRef": {"name": "ok", "key": "k"}}}]}],
        "imagePullSecrets": [{"name": "reg"}],
    }});
    assert_eq!(limit_secret_references(&sa, &allowed), Ok(()));
    let volume = json!({"spec": {"volumes": [{"name": "v", "secret": {"secretName": "no"}}]}});
    assert_eq!(
        limit_secret_references(&sa, &volume),
        Err("volume with secret.secretName=\"no\" is not allowed because service account builder does not reference that secret".into())
    );
    let env = json!({"spec": {"initContainers": [{"name": "i", "env": [{"name": "E",
        "valueFrom": {"secretKeyRef": {"name": "no", "key": "k"}}}]}]}});
    assert_eq!(
        limit_secret_references(&sa, &env),
        Err("init container i with envVar E referencing secret.secretName=\"no\" is not allowed because service account builder does not reference that secret".into())
    );
    let pull = json!({"spec": {"imagePullSecrets": [{"name": "reg"}, {"name": "other"}]}});
    assert_eq!(
        limit_secret_references(&sa, &pull),
        Err("imagePullSecrets[1].name=\"other\" is not allowed because service account builder does not reference that imagePullSecret".into())
    );
}

#[test]
fn forbidden_errors_name_the_pod_as_upstream() {
    assert_eq!(forbidden_name(&json!({"metadata": {"name": "p"}})), "p");
    assert_eq!(
        forbidden_name(&json!({"metadata": {"generateName": "web-"}})),
        "web-"
    );
    assert_eq!(forbidden_name(&json!({"metadata": {}})), "Unknown");
    let e = forbidden(
        "p",
        "error looking up service account ns/sa: serviceaccount \"sa\" not found",
    );
    assert_eq!(e.code, axum::http::StatusCode::FORBIDDEN);
    assert_eq!(e.reason, "Forbidden");
    assert_eq!(
        e.message,
        "pods \"p\" is forbidden: error looking up service account ns/sa: serviceaccount \"sa\" not found"
    );
    assert_eq!(e.details, Some(json!({"name": "p", "kind": "pods"})));
}

#[test]
fn malformed_lists_are_left_for_validation() {
    let mut pod = json!({"spec": {
        "containers": [{"name": "a", "volumeMounts": "junk"}, "junk", {"name": "b"}],
        "volumes": 7,
    }});
    mount_token(spec_of(&mut pod), || "kube-api-access-abcde".into());
    assert_eq!(
        pod.pointer("/spec/containers/0/volumeMounts"),
        Some(&json!("junk"))
    );
    assert_eq!(pod.pointer("/spec/containers/1"), Some(&json!("junk")));
    assert_eq!(
        pod.pointer("/spec/containers/2/volumeMounts/0"),
        Some(&mount())
    );
    assert_eq!(pod.pointer("/spec/volumes"), Some(&json!(7)));
}

#[test]
fn the_newest_default_class_wins_and_ties_go_to_the_first_name() {
    let class = |name: &str, created: &str| json!({"metadata": {"name": name, "creationTimestamp": created}});
    let classes = [
        class("old", "2026-01-01T00:00:00Z"),
        class("zeta", "2026-02-01T00:00:00Z"),
        class("alpha", "2026-02-01T00:00:00Z"),
    ];
    let picked = super::newest_default(classes.iter()).expect("a class");
    assert_eq!(picked["metadata"]["name"], "alpha");
    assert!(super::newest_default(std::iter::empty()).is_none());
}
