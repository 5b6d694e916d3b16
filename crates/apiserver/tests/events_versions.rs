//! core/v1 and events.k8s.io/v1 Events are one stored set of objects: written through
//! either API, read, listed, watched, updated and deleted through the other, each in its
//! own field names; field selectors use each API's names; events.k8s.io writes get the
//! strict validation.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::start;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Event as CoreEvent;
use k8s_openapi::api::events::v1::Event as NewEvent;
use kube::api::{DeleteParams, ListParams, PostParams, WatchEvent, WatchParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use std::time::Duration;

const NS: &str = "default";

/// A raw request: (status code, body text).
async fn send_text(
    client: &Client,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, String) {
    let req = axum::http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(kube::client::Body::from(
            body.map(|b| serde_json::to_vec(&b).unwrap())
                .unwrap_or_default(),
        ))
        .unwrap();
    let resp = client.send(req).await.unwrap();
    let code = resp.status().as_u16();
    let bytes = resp.into_body().collect_bytes().await.unwrap();
    (code, String::from_utf8_lossy(&bytes).into_owned())
}

/// A raw request: (status code, JSON body).
async fn send(client: &Client, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let (code, text) = send_text(client, method, path, body).await;
    (code, serde_json::from_str(&text).unwrap_or(Value::Null))
}

const CORE: &str = "/api/v1/namespaces/default/events";
const NEW: &str = "/apis/events.k8s.io/v1/namespaces/default/events";

fn core_event(name: &str, object: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": name, "namespace": NS},
        "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": object, "namespace": NS, "uid": "u-1"},
        "reason": "Started", "message": "Started container c", "type": "Normal",
        "source": {"component": "kubelet", "host": "node-1"},
        "firstTimestamp": "2024-01-01T00:00:00Z", "lastTimestamp": "2024-01-01T00:00:05Z",
        "count": 3, "reportingComponent": "kubelet", "reportingInstance": "node-1"
    })
}

fn new_event(name: &str, object: &str) -> Value {
    json!({
        "apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": name, "namespace": NS},
        "eventTime": "2024-01-01T00:00:00.000000Z",
        "reportingController": "example.com/scaler", "reportingInstance": "scaler-1",
        "action": "Scale", "reason": "Scaled", "type": "Normal", "note": "Scaled web to 3",
        "regarding": {"apiVersion": "apps/v1", "kind": "Deployment", "name": object, "namespace": NS},
        "series": {"count": 2, "lastObservedTime": "2024-01-01T00:00:09.000000Z"}
    })
}

#[tokio::test]
async fn core_event_reads_through_events_k8s_io() {
    let (_s, client) = start().await;
    let (code, created) = send(&client, "POST", CORE, Some(core_event("web.1", "web"))).await;
    assert_eq!(code, 201, "{created}");

    let (code, got) = send(&client, "GET", &format!("{NEW}/web.1"), None).await;
    assert_eq!(code, 200, "{got}");
    assert_eq!(got["apiVersion"], "events.k8s.io/v1");
    assert_eq!(got["kind"], "Event");
    assert_eq!(got["note"], "Started container c");
    assert_eq!(got["regarding"]["name"], "web");
    assert_eq!(got["reportingController"], "kubelet");
    assert_eq!(got["deprecatedSource"]["host"], "node-1");
    assert_eq!(got["deprecatedCount"], 3);
    assert_eq!(got["deprecatedFirstTimestamp"], "2024-01-01T00:00:00Z");
    assert_eq!(got["deprecatedLastTimestamp"], "2024-01-01T00:00:05Z");
    for core_name in [
        "message",
        "involvedObject",
        "source",
        "count",
        "reportingComponent",
    ] {
        assert!(got.get(core_name).is_none(), "{core_name} leaked: {got}");
    }
    // One object: same uid and resourceVersion through both APIs.
    assert_eq!(got["metadata"]["uid"], created["metadata"]["uid"]);
    assert_eq!(
        got["metadata"]["resourceVersion"],
        created["metadata"]["resourceVersion"]
    );
    // The typed events.k8s.io client decodes it.
    let typed: NewEvent = Api::namespaced(client.clone(), NS)
        .get("web.1")
        .await
        .unwrap();
    assert_eq!(typed.note.as_deref(), Some("Started container c"));
    assert_eq!(typed.deprecated_count, Some(3));
}

#[tokio::test]
async fn events_k8s_io_event_reads_through_core() {
    let (_s, client) = start().await;
    let (code, created) = send(&client, "POST", NEW, Some(new_event("web.2", "web"))).await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["apiVersion"], "events.k8s.io/v1");
    assert_eq!(created["note"], "Scaled web to 3");

    let core: CoreEvent = Api::namespaced(client.clone(), NS)
        .get("web.2")
        .await
        .unwrap();
    assert_eq!(core.message.as_deref(), Some("Scaled web to 3"));
    assert_eq!(core.involved_object.name.as_deref(), Some("web"));
    assert_eq!(core.involved_object.kind.as_deref(), Some("Deployment"));
    assert_eq!(
        core.reporting_component.as_deref(),
        Some("example.com/scaler")
    );
    assert_eq!(core.reporting_instance.as_deref(), Some("scaler-1"));
    assert_eq!(core.action.as_deref(), Some("Scale"));
    assert_eq!(core.series.as_ref().and_then(|s| s.count), Some(2));
    assert!(core.event_time.is_some());
    let (_, raw) = send(&client, "GET", &format!("{CORE}/web.2"), None).await;
    assert_eq!(raw["apiVersion"], "v1");
    assert!(raw.get("note").is_none() && raw.get("regarding").is_none());

    // Both lists hold both events (one key space), at one resourceVersion.
    let (_, c) = send(&client, "POST", CORE, Some(core_event("web.1", "web"))).await;
    assert_eq!(c["kind"], "Event");
    let core_list = Api::<CoreEvent>::namespaced(client.clone(), NS)
        .list(&ListParams::default())
        .await
        .unwrap();
    let new_list = Api::<NewEvent>::namespaced(client.clone(), NS)
        .list(&ListParams::default())
        .await
        .unwrap();
    let names = |v: Vec<Option<String>>| {
        let mut v: Vec<String> = v.into_iter().flatten().collect();
        v.sort();
        v
    };
    let want = vec!["web.1".to_string(), "web.2".to_string()];
    assert_eq!(
        names(
            core_list
                .items
                .iter()
                .map(|e| e.metadata.name.clone())
                .collect()
        ),
        want
    );
    assert_eq!(
        names(
            new_list
                .items
                .iter()
                .map(|e| e.metadata.name.clone())
                .collect()
        ),
        want
    );
}

#[tokio::test]
async fn writes_through_one_api_show_in_the_other() {
    let (_s, client) = start().await;
    let core: Api<CoreEvent> = Api::namespaced(client.clone(), NS);
    let new: Api<NewEvent> = Api::namespaced(client.clone(), NS);
    send(&client, "POST", CORE, Some(core_event("web.3", "web"))).await;

    // A core update (what recorders do to bump count) is seen through events.k8s.io.
    let mut ev = core.get("web.3").await.unwrap();
    ev.count = Some(4);
    ev.message = Some("again".into());
    core.replace("web.3", &PostParams::default(), &ev)
        .await
        .unwrap();
    let seen = new.get("web.3").await.unwrap();
    assert_eq!(seen.deprecated_count, Some(4));
    assert_eq!(seen.note.as_deref(), Some("again"));

    // events.k8s.io updates are strict: the note of a recorded event is immutable.
    let (code, _) = send(&client, "POST", NEW, Some(new_event("web.4", "web"))).await;
    assert_eq!(code, 201);
    let (_, mut body) = send(&client, "GET", &format!("{NEW}/web.4"), None).await;
    body["note"] = json!("rewritten");
    let (code, status) = send(&client, "PUT", &format!("{NEW}/web.4"), Some(body)).await;
    assert_eq!(code, 422, "{status}");
    assert_eq!(status["details"]["causes"][0]["field"], "message");
    // … but the series may advance.
    let (_, mut body) = send(&client, "GET", &format!("{NEW}/web.4"), None).await;
    body["series"] = json!({"count": 3, "lastObservedTime": "2024-01-01T00:00:20.000000Z"});
    let (code, updated) = send(&client, "PUT", &format!("{NEW}/web.4"), Some(body)).await;
    assert_eq!(code, 200, "{updated}");
    assert_eq!(
        core.get("web.4")
            .await
            .unwrap()
            .series
            .and_then(|s| s.count),
        Some(3)
    );

    // Deleting through events.k8s.io removes the core object too.
    new.delete("web.3", &DeleteParams::default()).await.unwrap();
    let (code, _) = send(&client, "GET", &format!("{CORE}/web.3"), None).await;
    assert_eq!(code, 404);
}

/// The next watch event, within 10 s.
async fn next<T>(
    s: &mut futures::stream::BoxStream<'static, kube::Result<WatchEvent<T>>>,
) -> WatchEvent<T> {
    tokio::time::timeout(Duration::from_secs(10), s.try_next())
        .await
        .expect("watch event in time")
        .unwrap()
        .expect("stream open")
}

#[tokio::test]
async fn watch_from_both_versions() {
    let (_s, client) = start().await;
    let core: Api<CoreEvent> = Api::namespaced(client.clone(), NS);
    let new: Api<NewEvent> = Api::namespaced(client.clone(), NS);
    let rv = core
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let wp = WatchParams::default().timeout(30);
    let mut core_watch = core.watch(&wp, &rv).await.unwrap().boxed();
    let mut new_watch = new.watch(&wp, &rv).await.unwrap().boxed();

    send(&client, "POST", NEW, Some(new_event("w.1", "web"))).await;
    send(&client, "POST", CORE, Some(core_event("w.2", "db"))).await;
    send(&client, "DELETE", &format!("{CORE}/w.1"), None).await;

    let mut core_seen = Vec::new();
    for _ in 0..3 {
        match next(&mut core_watch).await {
            WatchEvent::Added(e) => core_seen.push(("ADDED", e.message.unwrap_or_default())),
            WatchEvent::Deleted(e) => core_seen.push(("DELETED", e.message.unwrap_or_default())),
            other => panic!("unexpected core event {other:?}"),
        }
    }
    assert_eq!(
        core_seen,
        [
            ("ADDED", "Scaled web to 3".to_string()),
            ("ADDED", "Started container c".to_string()),
            ("DELETED", "Scaled web to 3".to_string()),
        ]
    );
    let mut new_seen = Vec::new();
    for _ in 0..3 {
        match next(&mut new_watch).await {
            WatchEvent::Added(e) => new_seen.push(("ADDED", e.note.unwrap_or_default())),
            WatchEvent::Deleted(e) => new_seen.push(("DELETED", e.note.unwrap_or_default())),
            other => panic!("unexpected events.k8s.io event {other:?}"),
        }
    }
    assert_eq!(
        new_seen,
        [
            ("ADDED", "Scaled web to 3".to_string()),
            ("ADDED", "Started container c".to_string()),
            ("DELETED", "Scaled web to 3".to_string()),
        ]
    );

    // A filtered watch uses each API's field names and sends each API's form.
    let (code, body) = send_text(
        &client,
        "GET",
        &format!("{NEW}?watch=true&fieldSelector=regarding.name%3Ddb&timeoutSeconds=1"),
        None,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let lines: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{body}");
    assert_eq!(lines[0]["type"], "ADDED");
    assert_eq!(lines[0]["object"]["metadata"]["name"], "w.2");
    assert_eq!(lines[0]["object"]["regarding"]["name"], "db");
}

#[tokio::test]
async fn field_selectors_use_each_api_names() {
    let (_s, client) = start().await;
    send(&client, "POST", CORE, Some(core_event("a.1", "web"))).await;
    send(&client, "POST", NEW, Some(new_event("a.2", "db"))).await;

    let names = |list: &Value| -> Vec<String> {
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    };
    let (code, l) = send(
        &client,
        "GET",
        &format!("{CORE}?fieldSelector=involvedObject.name%3Dweb"),
        None,
    )
    .await;
    assert_eq!((code, names(&l)), (200, vec!["a.1".to_string()]));
    let (_, l) = send(
        &client,
        "GET",
        &format!("{NEW}?fieldSelector=regarding.name%3Ddb"),
        None,
    )
    .await;
    assert_eq!(names(&l), ["a.2"]);
    let (_, l) = send(
        &client,
        "GET",
        &format!("{NEW}?fieldSelector=reportingController%3Dkubelet"),
        None,
    )
    .await;
    assert_eq!(names(&l), ["a.1"]);
    let (_, l) = send(
        &client,
        "GET",
        &format!("{CORE}?fieldSelector=reportingComponent%3Dexample.com%2Fscaler,type%3DNormal"),
        None,
    )
    .await;
    assert_eq!(names(&l), ["a.2"]);
    // `source` falls back to the reporting controller for new-style events.
    let (_, l) = send(
        &client,
        "GET",
        &format!("{CORE}?fieldSelector=source%3Dexample.com%2Fscaler"),
        None,
    )
    .await;
    assert_eq!(names(&l), ["a.2"]);

    let (code, s) = send(
        &client,
        "GET",
        &format!("{NEW}?fieldSelector=involvedObject.name%3Dweb"),
        None,
    )
    .await;
    assert_eq!(code, 400, "{s}");
    assert_eq!(
        s["message"],
        "field label not supported: involvedObject.name"
    );
    let (code, s) = send(
        &client,
        "GET",
        &format!("{CORE}?fieldSelector=regarding.name%3Dweb"),
        None,
    )
    .await;
    assert_eq!(code, 400, "{s}");
}

#[tokio::test]
async fn events_k8s_io_validation_is_strict() {
    let (_s, client) = start().await;
    // An old-style event is fine through core/v1 but not through events.k8s.io/v1.
    let mut old_style = core_event("old", "web");
    let (code, _) = send(&client, "POST", CORE, Some(old_style.clone())).await;
    assert_eq!(code, 201);
    old_style["metadata"]["name"] = json!("old-2");
    old_style["apiVersion"] = json!("events.k8s.io/v1");
    let (code, s) = send(&client, "POST", NEW, Some(old_style)).await;
    assert_eq!(code, 422, "{s}");
    let fields: Vec<&str> = s["details"]["causes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["field"].as_str())
        .collect();
    // (Its core-only fields were dropped as unknown: only the missing eventTime is left.)
    assert_eq!(fields, ["eventTime"]);
    let mut partial = new_event("partial", "web");
    for k in ["reportingController", "action"] {
        partial.as_object_mut().unwrap().remove(k);
    }
    partial["deprecatedCount"] = json!(2);
    let (code, s) = send(&client, "POST", NEW, Some(partial)).await;
    assert_eq!(code, 422, "{s}");
    let fields: Vec<&str> = s["details"]["causes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["field"].as_str())
        .collect();
    for f in ["reportingController", "action", "count"] {
        assert!(fields.contains(&f), "{f} not in {fields:?}");
    }
    // A core/v1 body is not an events.k8s.io/v1 object.
    let mut wrong = core_event("wrong", "web");
    wrong["metadata"]["name"] = json!("wrong");
    let (code, s) = send(&client, "POST", NEW, Some(wrong)).await;
    assert_eq!(code, 400, "{s}");
    // Names: DNS subdomains through events.k8s.io, any path segment through core/v1.
    let (code, _) = send(&client, "POST", NEW, Some(new_event("Upper", "web"))).await;
    assert_eq!(code, 422);
    let (code, _) = send(&client, "POST", CORE, Some(core_event("Upper", "web"))).await;
    assert_eq!(code, 201);
    // Discovery reports one storage version for both.
    let (_, core_doc) = send(&client, "GET", "/api/v1", None).await;
    let (_, new_doc) = send(&client, "GET", "/apis/events.k8s.io/v1", None).await;
    let hash = |doc: &Value| {
        doc["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "events")
            .map(|r| r["storageVersionHash"].clone())
            .unwrap()
    };
    assert_eq!(hash(&core_doc), hash(&new_doc));
}
