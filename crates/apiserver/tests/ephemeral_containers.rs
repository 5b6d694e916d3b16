//! pods/ephemeralcontainers as `kubectl debug` and kube-rs use it: containers are only
//! ever added through the subresource (strategic merge patch or PUT), never changed or
//! removed, never through a plain pod update, and only with the fields upstream allows.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{send, start};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

fn pod() -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "app"},
        "spec": {"containers": [{"name": "main", "image": "busybox:1.36"}]}
    }))
    .unwrap()
}

fn debugger(name: &str, extra: Value) -> Value {
    let mut c = json!({"name": name, "image": "busybox:1.36", "command": ["sh"],
                       "stdin": true, "tty": true, "targetContainerName": "main",
                       "resources": {}});
    if let (Some(c), Some(extra)) = (c.as_object_mut(), extra.as_object()) {
        c.extend(extra.clone());
    }
    c
}

fn invalid_message(e: kube::Error) -> String {
    match e {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 422, "{s:?}");
            s.message
        }
        other => panic!("expected 422, got {other:?}"),
    }
}

#[tokio::test]
async fn debug_containers_are_added_through_the_subresource_only() {
    let (_s, client) = start().await;
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    pods.create(&PostParams::default(), &pod()).await.unwrap();

    // kubectl debug: a strategic merge patch of spec.ephemeralContainers.
    let patch = json!({"spec": {"ephemeralContainers": [debugger("debugger-1", json!({}))]}});
    let added = pods
        .patch_ephemeral_containers("app", &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .unwrap();
    let eph = added
        .spec
        .as_ref()
        .unwrap()
        .ephemeral_containers
        .clone()
        .unwrap();
    assert_eq!(eph.len(), 1);
    assert_eq!(eph[0].name, "debugger-1");
    assert_eq!(eph[0].target_container_name.as_deref(), Some("main"));
    // Defaults as for other containers.
    assert_eq!(eph[0].image_pull_policy.as_deref(), Some("IfNotPresent"));
    assert_eq!(
        eph[0].termination_message_path.as_deref(),
        Some("/dev/termination-log")
    );

    // A second one merges by name next to the first; spec changes in the body are ignored.
    let patch = json!({"spec": {
        "activeDeadlineSeconds": 5,
        "ephemeralContainers": [debugger("debugger-2", json!({"targetContainerName": null}))]
    }});
    let two = pods
        .patch_ephemeral_containers("app", &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .unwrap();
    let spec = two.spec.as_ref().unwrap();
    assert_eq!(spec.ephemeral_containers.as_ref().unwrap().len(), 2);
    assert_eq!(spec.active_deadline_seconds, None);

    // GET of the subresource is the pod.
    let got = pods.get_ephemeral_containers("app").await.unwrap();
    assert_eq!(
        got.spec.unwrap().ephemeral_containers.unwrap().len(),
        2,
        "GET pods/app/ephemeralcontainers"
    );

    // Existing ones may be neither changed nor removed (PUT of the subresource).
    // (A patch without $setElementOrder puts new items first, as upstream's merge does.)
    let first = spec
        .ephemeral_containers
        .as_ref()
        .unwrap()
        .iter()
        .position(|c| c.name == "debugger-1")
        .unwrap();
    let mut changed = two.clone();
    if let Some(list) = changed.spec.as_mut().unwrap().ephemeral_containers.as_mut() {
        list[first].image = Some("busybox:1.37".into());
    }
    let msg = invalid_message(
        pods.replace_ephemeral_containers("app", &PostParams::default(), &changed)
            .await
            .unwrap_err(),
    );
    assert!(
        msg.contains(&format!(
            "spec.ephemeralContainers[{first}]: Forbidden: existing ephemeral containers \"debugger-1\" may not be changed"
        )),
        "{msg}"
    );
    let mut removed = two.clone();
    if let Some(list) = removed.spec.as_mut().unwrap().ephemeral_containers.as_mut() {
        list.remove(first);
    }
    let msg = invalid_message(
        pods.replace_ephemeral_containers("app", &PostParams::default(), &removed)
            .await
            .unwrap_err(),
    );
    assert!(
        msg.contains("existing ephemeral containers \"debugger-1\" may not be removed"),
        "{msg}"
    );

    // A plain pod update may not add one.
    let (code, body) = send(
        &client,
        "PATCH",
        "/api/v1/namespaces/default/pods/app",
        Some(json!({"spec": {"ephemeralContainers": [
            debugger("debugger-1", json!({})), debugger("debugger-2", json!({})),
            debugger("debugger-3", json!({}))]}})),
    )
    .await;
    assert_eq!(code, 422, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or("")
            .contains("pod updates may not change fields"),
        "{body}"
    );
}

#[tokio::test]
async fn ephemeral_containers_get_upstreams_field_rules() {
    let (_s, client) = start().await;
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    pods.create(&PostParams::default(), &pod()).await.unwrap();
    let try_add = |c: Value| {
        let pods = pods.clone();
        async move {
            let patch = json!({"spec": {"ephemeralContainers": [c]}});
            pods.patch_ephemeral_containers(
                "app",
                &PatchParams::default(),
                &Patch::Strategic(patch),
            )
            .await
        }
    };
    let msg = invalid_message(
        try_add(debugger("dbg", json!({"ports": [{"containerPort": 80}]})))
            .await
            .unwrap_err(),
    );
    assert!(
        msg.contains(
            "spec.ephemeralContainers[0].ports: Forbidden: cannot be set for an Ephemeral Container"
        ),
        "{msg}"
    );
    let msg = invalid_message(
        try_add(debugger("dbg", json!({"targetContainerName": "nope"})))
            .await
            .unwrap_err(),
    );
    assert!(
        msg.contains("spec.ephemeralContainers[0].targetContainerName: Not found: \"nope\""),
        "{msg}"
    );
    let msg = invalid_message(try_add(debugger("main", json!({}))).await.unwrap_err());
    assert!(
        msg.contains("spec.ephemeralContainers[0].name: Duplicate value: \"main\""),
        "{msg}"
    );
    // Creating a pod with one is refused.
    let mut with = pod();
    with.metadata.name = Some("born-with".into());
    with.spec.as_mut().unwrap().ephemeral_containers = Some(vec![
        serde_json::from_value(debugger("dbg", json!({}))).unwrap(),
    ]);
    let msg = invalid_message(
        pods.create(&PostParams::default(), &with)
            .await
            .unwrap_err(),
    );
    assert!(
        msg.contains("spec.ephemeralContainers: Forbidden: cannot be set on create"),
        "{msg}"
    );
}
