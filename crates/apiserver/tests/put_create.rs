//! PUT of a missing object: a create (201) for the kinds whose upstream strategy allows
//! create-on-update (Leases, Services, Endpoints, Events, LimitRanges, RBAC), running the
//! whole create path; a 404 for every other kind and for subresources and patches; the
//! `create` permission is required on top of `update`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{send, send_as, start};
use serde_json::{Value, json};

const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/default/leases";

fn lease(name: &str, holder: &str) -> Value {
    json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": name},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15}
    })
}

#[tokio::test]
async fn put_creates_a_lease_then_updates_it() {
    let (_s, client) = start().await;
    let url = format!("{LEASES}/lock");
    let (code, created) = send(&client, "PUT", &url, Some(lease("lock", "a"))).await;
    assert_eq!(code, 201, "{created}");
    let meta = &created["metadata"];
    assert!(!meta["uid"].as_str().unwrap_or("").is_empty());
    assert!(meta["creationTimestamp"].is_string());
    assert_eq!(meta["namespace"], "default");
    // Leases have no generation upstream (only kinds whose controllers observe one).
    assert!(meta.get("generation").is_none(), "{created}");
    // The write is recorded as the Update it was.
    assert_eq!(meta["managedFields"][0]["operation"], "Update");
    let (code, got) = send(&client, "GET", &url, None).await;
    assert_eq!((code, &got["spec"]["holderIdentity"]), (200, &json!("a")));

    // The second PUT is an ordinary update.
    let (code, updated) = send(&client, "PUT", &url, Some(lease("lock", "b"))).await;
    assert_eq!(code, 200, "{updated}");
    assert_eq!(updated["metadata"]["uid"], meta["uid"]);
    assert_eq!(updated["spec"]["holderIdentity"], "b");

    // A name from the URL is enough; a different one is refused.
    let mut nameless = lease("", "c");
    nameless["metadata"] = json!({});
    let (code, c) = send(
        &client,
        "PUT",
        &format!("{LEASES}/nameless"),
        Some(nameless),
    )
    .await;
    assert_eq!(code, 201, "{c}");
    assert_eq!(c["metadata"]["name"], "nameless");
    let (code, s) = send(
        &client,
        "PUT",
        &format!("{LEASES}/x"),
        Some(lease("y", "c")),
    )
    .await;
    assert_eq!(code, 400, "{s}");
}

#[tokio::test]
async fn preconditions_on_a_put_create() {
    let (_s, client) = start().await;
    // A resourceVersion is ignored when creating (as upstream).
    let mut with_rv = lease("rv", "a");
    with_rv["metadata"]["resourceVersion"] = json!("12345");
    let (code, c) = send(&client, "PUT", &format!("{LEASES}/rv"), Some(with_rv)).await;
    assert_eq!(code, 201, "{c}");
    assert_ne!(c["metadata"]["resourceVersion"], "12345");
    // A uid names an object that does not exist: 409.
    let mut with_uid = lease("uid", "a");
    with_uid["metadata"]["uid"] = json!("6f0c3c2e-0000-0000-0000-000000000000");
    let (code, s) = send(&client, "PUT", &format!("{LEASES}/uid"), Some(with_uid)).await;
    assert_eq!(code, 409, "{s}");
    assert_eq!(s["reason"], "Conflict");
    assert!(
        s["message"]
            .as_str()
            .unwrap()
            .contains("Precondition failed: UID in precondition"),
        "{s}"
    );
    let (code, _) = send(&client, "GET", &format!("{LEASES}/uid"), None).await;
    assert_eq!(code, 404);
    // Dry run: 201, nothing stored.
    let (code, c) = send(
        &client,
        "PUT",
        &format!("{LEASES}/dry?dryRun=All"),
        Some(lease("dry", "a")),
    )
    .await;
    assert_eq!(code, 201, "{c}");
    let (code, _) = send(&client, "GET", &format!("{LEASES}/dry"), None).await;
    assert_eq!(code, 404);
    // Into a missing namespace: the namespace is not found.
    let (code, s) = send(
        &client,
        "PUT",
        "/apis/coordination.k8s.io/v1/namespaces/nope/leases/l",
        Some(lease("l", "a")),
    )
    .await;
    assert_eq!(code, 404, "{s}");
    assert_eq!(s["details"]["kind"], "namespaces");
}

#[tokio::test]
async fn other_kinds_and_other_verbs_stay_not_found() {
    let (_s, client) = start().await;
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}});
    let (code, s) = send(
        &client,
        "PUT",
        "/api/v1/namespaces/default/configmaps/c",
        Some(cm),
    )
    .await;
    assert_eq!(code, 404, "{s}");
    assert_eq!(s["reason"], "NotFound");
    assert_eq!(s["details"]["kind"], "configmaps");
    let (code, _) = send(
        &client,
        "GET",
        "/api/v1/namespaces/default/configmaps/c",
        None,
    )
    .await;
    assert_eq!(code, 404);
    // A merge patch never creates, even for kinds that allow it on PUT.
    let (code, _) = send(
        &client,
        "PATCH",
        &format!("{LEASES}/patched"),
        Some(json!({"spec": {"holderIdentity": "a"}})),
    )
    .await;
    assert_eq!(code, 404);
    // Nor does a PUT of a subresource.
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}});
    let (code, _) = send(
        &client,
        "PUT",
        "/api/v1/namespaces/default/services/s/status",
        Some(svc),
    )
    .await;
    assert_eq!(code, 404);
}

#[tokio::test]
async fn put_create_runs_the_create_path() {
    let (_s, client) = start().await;
    // Services: defaults and a ClusterIP allocation, as a POST would.
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}});
    let (code, c) = send(
        &client,
        "PUT",
        "/api/v1/namespaces/default/services/web",
        Some(svc),
    )
    .await;
    assert_eq!(code, 201, "{c}");
    assert_eq!(c["spec"]["type"], "ClusterIP");
    assert_eq!(c["spec"]["ports"][0]["protocol"], "TCP");
    assert!(
        c["spec"]["clusterIP"]
            .as_str()
            .is_some_and(|ip| ip.starts_with("10.43."))
    );
    // Validation is create validation: a bad port is a 422, nothing is allocated.
    let bad = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "bad"},
                     "spec": {"ports": [{"port": 70000}]}});
    let (code, s) = send(
        &client,
        "PUT",
        "/api/v1/namespaces/default/services/bad",
        Some(bad),
    )
    .await;
    assert_eq!(code, 422, "{s}");
    assert_eq!(s["details"]["causes"][0]["field"], "spec.ports[0].port");
    // Endpoints are created the same way.
    let ep = json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "web"},
                    "subsets": [{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 80}]}]});
    let (code, c) = send(
        &client,
        "PUT",
        "/api/v1/namespaces/default/endpoints/web",
        Some(ep),
    )
    .await;
    assert_eq!(code, 201, "{c}");
    assert_eq!(c["subsets"][0]["ports"][0]["protocol"], "TCP");
    // Events through both APIs (strict validation for events.k8s.io).
    let ev = json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "ev.1"},
                    "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"},
                    "reason": "R", "message": "m", "type": "Normal"});
    let (code, c) = send(
        &client,
        "PUT",
        "/api/v1/namespaces/default/events/ev.1",
        Some(ev),
    )
    .await;
    assert_eq!(code, 201, "{c}");
    let bad = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "ev.2"},
                     "reason": "R", "type": "Normal"});
    let (code, s) = send(
        &client,
        "PUT",
        "/apis/events.k8s.io/v1/namespaces/default/events/ev.2",
        Some(bad),
    )
    .await;
    assert_eq!(code, 422, "{s}");
    assert_eq!(s["details"]["causes"][0]["field"], "eventTime");
    // Cluster-scoped RBAC kinds and LimitRanges too.
    let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                      "metadata": {"name": "system:test:reader"}, "rules": []});
    let (code, c) = send(
        &client,
        "PUT",
        "/apis/rbac.authorization.k8s.io/v1/clusterroles/system:test:reader",
        Some(role),
    )
    .await;
    assert_eq!(code, 201, "{c}");
    let lr = json!({"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "lr"},
                    "spec": {"limits": [{"type": "Container", "max": {"cpu": "1"}}]}});
    let (code, c) = send(
        &client,
        "PUT",
        "/api/v1/namespaces/default/limitranges/lr",
        Some(lr),
    )
    .await;
    assert_eq!(code, 201, "{c}");
    assert_eq!(c["spec"]["limits"][0]["default"]["cpu"], "1");
}

#[tokio::test]
async fn put_create_needs_the_create_permission() {
    let (_s, client) = start().await;
    let rbac = "/apis/rbac.authorization.k8s.io/v1/namespaces/default";
    let role = |verbs: Value| {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
               "metadata": {"name": "leases"},
               "rules": [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": verbs}]})
    };
    let (code, _) = send(
        &client,
        "POST",
        &format!("{rbac}/roles"),
        Some(role(json!(["get", "update"]))),
    )
    .await;
    assert_eq!(code, 201);
    let binding = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "jane-leases"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "leases"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "jane"}]});
    let (code, _) = send(
        &client,
        "POST",
        &format!("{rbac}/rolebindings"),
        Some(binding),
    )
    .await;
    assert_eq!(code, 201);
    let jane = [("Impersonate-User", "jane")];
    let url = format!("{LEASES}/janes");
    // The policy cache catches up asynchronously: wait until jane may update.
    let mut last = (0, Value::Null);
    for _ in 0..100 {
        last = send_as(&client, "PUT", &url, Some(lease("janes", "jane")), &jane).await;
        let msg = last.1["message"].as_str().unwrap_or("");
        if !(last.0 == 403 && msg.contains("cannot update")) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(last.0, 403, "{}", last.1);
    assert_eq!(
        last.1["message"],
        "leases.coordination.k8s.io \"janes\" is forbidden: "
    );
    let (code, _) = send(&client, "GET", &url, None).await;
    assert_eq!(code, 404);
    // With create as well, the same PUT creates.
    let (code, _) = send(
        &client,
        "PUT",
        &format!("{rbac}/roles/leases"),
        Some(role(json!(["create", "get", "update"]))),
    )
    .await;
    assert_eq!(code, 200);
    let mut created = (0, Value::Null);
    for _ in 0..100 {
        created = send_as(&client, "PUT", &url, Some(lease("janes", "jane")), &jane).await;
        if created.0 == 201 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(created.0, 201, "{}", created.1);
    // Updating an existing lease needs only update.
    let (code, _) = send(
        &client,
        "PUT",
        &format!("{rbac}/roles/leases"),
        Some(role(json!(["get", "update"]))),
    )
    .await;
    assert_eq!(code, 200);
    let (code, body) = send_as(&client, "PUT", &url, Some(lease("janes", "jane-2")), &jane).await;
    assert_eq!(code, 200, "{body}");
}
