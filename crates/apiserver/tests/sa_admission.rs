//! ServiceAccount admission through the HTTP API: defaulted ServiceAccount, the
//! automounted `kube-api-access-*` projected volume, automount opt-outs, missing accounts
//! (403 as upstream), dry-run, generateName, server-side apply creates and existing mounts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use k8s_openapi::api::core::v1::{Namespace, Pod, ServiceAccount};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use r8s_apiserver::testing::TestServer;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

async fn start() -> (TestServer, Client) {
    let server = TestServer::start().await;
    server
        .running
        .state
        .registry
        .set_service_account_admission(true);
    let client = common::client(&server).await;
    (server, client)
}

async fn namespace(client: &Client, name: &str) {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    api.create(&PostParams::default(), &ns).await.unwrap();
}

async fn service_account(client: &Client, ns: &str, body: Value) {
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let sa = serde_json::from_value(body).unwrap();
    api.create(&PostParams::default(), &sa).await.unwrap();
}

fn pod(name: &str, spec: Value) -> Pod {
    let mut spec = spec;
    if spec.get("containers").is_none() {
        spec["containers"] = json!([{"name": "app", "image": "busybox"}]);
    }
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap()
}

async fn create(client: &Client, ns: &str, p: Pod) -> Result<Value, kube::Error> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let created = api.create(&PostParams::default(), &p).await?;
    Ok(serde_json::to_value(created).unwrap())
}

fn api_error(r: Result<Value, kube::Error>) -> kube::core::Status {
    match r {
        Err(kube::Error::Api(s)) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// The name of the token volume, checking its shape and that every container mounts it.
fn token_volume(p: &Value) -> String {
    let volumes = p["spec"]["volumes"].as_array().expect("volumes");
    let v = volumes
        .iter()
        .find(|v| {
            v["name"]
                .as_str()
                .unwrap_or("")
                .starts_with("kube-api-access-")
        })
        .expect("token volume");
    let name = v["name"].as_str().unwrap().to_string();
    let suffix = &name["kube-api-access-".len()..];
    assert_eq!(suffix.len(), 5, "{name}");
    assert!(
        suffix
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    );
    assert_eq!(
        v["projected"],
        json!({
            "defaultMode": 420,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt",
                               "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace",
                    "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
            ],
        })
    );
    for field in ["initContainers", "containers"] {
        for c in p["spec"][field].as_array().into_iter().flatten() {
            let mount = c["volumeMounts"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|m| m["mountPath"] == MOUNT_PATH)
                .expect("token mount");
            assert_eq!(
                mount,
                &json!({"name": name, "readOnly": true, "mountPath": MOUNT_PATH})
            );
        }
    }
    name
}

fn has_token_volume(p: &Value) -> bool {
    p["spec"]["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|v| {
            v["name"]
                .as_str()
                .unwrap_or("")
                .starts_with("kube-api-access-")
        })
}

#[tokio::test]
async fn pods_get_a_service_account_and_its_token() {
    let (_server, client) = start().await;
    let ns = "sa-admit";
    namespace(&client, ns).await;
    service_account(&client, ns, json!({"metadata": {"name": "default"}})).await;
    service_account(
        &client,
        ns,
        json!({"metadata": {"name": "quiet"}, "automountServiceAccountToken": false,
               "imagePullSecrets": [{"name": "registry"}]}),
    )
    .await;

    // Defaulted account, volume in every container and init container.
    let p = create(
        &client,
        ns,
        pod(
            "plain",
            json!({"initContainers": [{"name": "init", "image": "busybox"}],
                   "containers": [{"name": "a", "image": "busybox"},
                                  {"name": "b", "image": "busybox"}]}),
        ),
    )
    .await
    .unwrap();
    assert_eq!(p["spec"]["serviceAccountName"], "default");
    assert_eq!(p["spec"]["serviceAccount"], "default");
    token_volume(&p);
    // The admission-added fields are not owned by the client's field manager.
    let managed = serde_json::to_string(&p["metadata"]["managedFields"]).unwrap();
    assert!(!managed.contains("kube-api-access"), "{managed}");

    // Pod opts out.
    let p = create(
        &client,
        ns,
        pod("pod-off", json!({"automountServiceAccountToken": false})),
    )
    .await
    .unwrap();
    assert!(!has_token_volume(&p));
    assert!(p["spec"]["containers"][0]["volumeMounts"].is_null());

    // Account opts out (and lends its pull secrets); the pod may opt back in.
    let p = create(
        &client,
        ns,
        pod("sa-off", json!({"serviceAccountName": "quiet"})),
    )
    .await
    .unwrap();
    assert!(!has_token_volume(&p));
    assert_eq!(p["spec"]["imagePullSecrets"], json!([{"name": "registry"}]));
    let p = create(
        &client,
        ns,
        pod(
            "sa-off-pod-on",
            json!({"serviceAccount": "quiet", "automountServiceAccountToken": true}),
        ),
    )
    .await
    .unwrap();
    assert_eq!(p["spec"]["serviceAccountName"], "quiet");
    token_volume(&p);

    // Something already mounted at the path: that container is left alone.
    let own = json!({"name": "creds", "mountPath": MOUNT_PATH});
    let p = create(
        &client,
        ns,
        pod(
            "own-mount",
            json!({"containers": [{"name": "a", "image": "busybox", "volumeMounts": [own]},
                                  {"name": "b", "image": "busybox"}],
                   "volumes": [{"name": "creds", "emptyDir": {}}]}),
        ),
    )
    .await
    .unwrap();
    assert_eq!(p["spec"]["containers"][0]["volumeMounts"], json!([own]));
    let name = p["spec"]["containers"][1]["volumeMounts"][0]["name"].clone();
    assert!(name.as_str().unwrap().starts_with("kube-api-access-"));
    let p = create(
        &client,
        ns,
        pod(
            "all-own",
            json!({"containers": [{"name": "a", "image": "busybox", "volumeMounts": [own]}],
                   "volumes": [{"name": "creds", "emptyDir": {}}]}),
        ),
    )
    .await
    .unwrap();
    assert!(!has_token_volume(&p));

    // Dry-run is admitted the same way and stores nothing.
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let dry = api
        .create(
            &PostParams {
                dry_run: true,
                ..Default::default()
            },
            &pod("dry", json!({})),
        )
        .await
        .unwrap();
    token_volume(&serde_json::to_value(dry).unwrap());
    assert!(api.get_opt("dry").await.unwrap().is_none());

    // Server-side apply creating the pod.
    let applied = api
        .patch(
            "applied",
            &PatchParams::apply("test").force(),
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "applied"},
                "spec": {"containers": [{"name": "app", "image": "busybox"}]}})),
        )
        .await
        .unwrap();
    token_volume(&serde_json::to_value(applied).unwrap());

    // Updates are not admitted: the volume stays as created.
    let stored = serde_json::to_value(api.get("plain").await.unwrap()).unwrap();
    assert_eq!(
        stored["spec"]["volumes"],
        create_volumes_of(&client, ns, "plain").await
    );
}

async fn create_volumes_of(client: &Client, ns: &str, name: &str) -> Value {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let patched = api
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"touched": "yes"}}})),
        )
        .await
        .unwrap();
    serde_json::to_value(patched).unwrap()["spec"]["volumes"].clone()
}

#[tokio::test]
async fn missing_service_accounts_are_refused() {
    let (_server, client) = start().await;
    let ns = "sa-missing";
    namespace(&client, ns).await;

    let e = api_error(
        create(
            &client,
            ns,
            pod("ghostly", json!({"serviceAccountName": "ghost"})),
        )
        .await,
    );
    assert_eq!(e.code, 403);
    assert_eq!(e.reason, "Forbidden");
    assert_eq!(
        e.message,
        "pods \"ghostly\" is forbidden: error looking up service account sa-missing/ghost: serviceaccount \"ghost\" not found"
    );

    // generateName: the error names the prefix (the name is generated later).
    let mut p = pod("", json!({"serviceAccountName": "ghost"}));
    p.metadata.name = None;
    p.metadata.generate_name = Some("web-".into());
    let e = api_error(create(&client, ns, p).await);
    assert_eq!(
        e.message,
        "pods \"web-\" is forbidden: error looking up service account sa-missing/ghost: serviceaccount \"ghost\" not found"
    );

    // No `default` account: refused after a short wait for the controller.
    let started = Instant::now();
    let e = api_error(create(&client, ns, pod("early", json!({}))).await);
    assert_eq!(e.code, 403);
    assert_eq!(
        e.message,
        "pods \"early\" is forbidden: error looking up service account sa-missing/default: serviceaccount \"default\" not found"
    );
    assert!(started.elapsed() >= Duration::from_millis(800));

    // ... but admitted when the account appears during that wait.
    let c = client.clone();
    let creator = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        service_account(&c, "sa-missing", json!({"metadata": {"name": "default"}})).await;
    });
    let p = create(&client, ns, pod("late", json!({}))).await.unwrap();
    creator.await.unwrap();
    token_volume(&p);

    // A missing namespace is still 404, not a ServiceAccount error.
    let e = api_error(create(&client, "no-such-ns", pod("p", json!({}))).await);
    assert_eq!(e.code, 404);
    assert_eq!(e.message, "namespaces \"no-such-ns\" not found");
}

#[tokio::test]
async fn mirror_pods_are_not_mutated() {
    let (_server, client) = start().await;
    let mut p = pod("static-web", json!({}));
    p.metadata.annotations =
        Some([("kubernetes.io/config.mirror".to_string(), "x".to_string())].into());
    let created = create(&client, "default", p).await.unwrap();
    assert!(!has_token_volume(&created));
    assert!(created["spec"]["serviceAccountName"].is_null());

    let mut p = pod("static-sa", json!({"serviceAccountName": "default"}));
    p.metadata.annotations =
        Some([("kubernetes.io/config.mirror".to_string(), "x".to_string())].into());
    let e = api_error(create(&client, "default", p).await);
    assert_eq!(e.code, 403);
    assert_eq!(
        e.message,
        "pods \"static-sa\" is forbidden: a mirror pod may not reference service accounts"
    );
}
