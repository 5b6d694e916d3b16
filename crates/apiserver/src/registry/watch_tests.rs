//! Watches over a real store: shared objects across watchers, selector transitions and
//! the resourceVersion of deletes.

use super::*;
use crate::registry::{Allocators, DeleteOptions, Deleted, WriteOptions};
use futures::stream::BoxStream;
use r8s_api::catalog;
use serde_json::json;

struct Fixture {
    registry: Registry,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = r8s_store::open("", &dir.path().join("state.db"))
        .await
        .expect("store");
    let alloc = Allocators::new(store.clone(), "10.43.0.0/16").expect("alloc");
    let registry = Registry::new(store, alloc);
    let ns = catalog::find("", "v1", "namespaces").expect("namespaces");
    registry
        .create(
            ns,
            None,
            json!({"metadata": {"name": "d"}}),
            &WriteOptions::default(),
        )
        .await
        .expect("namespace");
    Fixture {
        registry,
        _dir: dir,
    }
}

fn configmaps() -> &'static ResourceInfo {
    catalog::find("", "v1", "configmaps").expect("configmaps")
}

/// A watch of namespace `d` from now, with `labels` as label selector.
async fn watch_from_now(
    registry: &Registry,
    info: &'static ResourceInfo,
    labels: Option<&str>,
) -> BoxStream<'static, ApiEvent> {
    let rv = registry
        .list(info, Some("d"), &ListParams::default())
        .await
        .expect("list")
        .resource_version;
    let mut params = ListParams {
        resource_version: rv.to_string(),
        ..Default::default()
    };
    params.parse_selectors(labels, None).expect("selector");
    registry
        .watch(info, Some("d"), params, WatchParams::default())
        .await
        .expect("watch")
}

async fn next(events: &mut BoxStream<'static, ApiEvent>) -> ApiEvent {
    tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .expect("event in time")
        .expect("stream open")
}

fn rv_of(v: &Value) -> &str {
    v["metadata"]["resourceVersion"].as_str().unwrap_or("")
}

async fn put(registry: &Registry, name: &str, labels: Value, data: &str) -> Value {
    let info = configmaps();
    let obj = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "d", "labels": labels},
        "data": {"k": data}});
    let opts = WriteOptions::default();
    match registry.get(info, Some("d"), name).await {
        Err(_) => registry.create(info, Some("d"), obj, &opts).await,
        Ok(_) => {
            registry
                .update_with(info, Some("d"), name, None, &opts, |cur| {
                    let mut next = obj.clone();
                    next["metadata"]["resourceVersion"] =
                        cur["metadata"]["resourceVersion"].clone();
                    Ok(next)
                })
                .await
        }
    }
    .expect("write")
}

async fn delete(registry: &Registry, name: &str) -> Value {
    match registry
        .delete(configmaps(), Some("d"), name, &DeleteOptions::default())
        .await
        .expect("delete")
    {
        Deleted::Now(obj) => obj,
        Deleted::Pending(obj) => panic!("pending delete {obj}"),
    }
}

#[tokio::test]
async fn watchers_share_one_object_per_change() {
    let f = fixture().await;
    let r = &f.registry;
    let mut a = watch_from_now(r, configmaps(), None).await;
    let mut b = watch_from_now(r, configmaps(), None).await;

    let created = put(r, "x", json!({}), "1").await;
    let updated = put(r, "x", json!({}), "2").await;
    delete(r, "x").await;
    let after = r
        .list(configmaps(), Some("d"), &ListParams::default())
        .await
        .expect("list")
        .resource_version;

    for (kind, want) in [("ADDED", &created), ("MODIFIED", &updated)] {
        let (ea, eb) = (next(&mut a).await, next(&mut b).await);
        assert_eq!((ea.kind, eb.kind), (kind, kind));
        assert!(Arc::ptr_eq(&ea.object, &eb.object), "{kind} decoded twice");
        assert_eq!(ea.value(), want);
        assert_eq!(ea.object.json(), serde_json::to_vec(want).expect("json"));
    }
    let (da, db) = (next(&mut a).await, next(&mut b).await);
    assert_eq!((da.kind, db.kind), ("DELETED", "DELETED"));
    assert!(Arc::ptr_eq(&da.object, &db.object));
    // The last state, carrying the delete's revision; the MODIFIED object kept its own.
    assert_eq!(rv_of(da.value()), after.to_string());
    assert_ne!(rv_of(&updated), rv_of(da.value()));
    assert_eq!(da.value()["data"], updated["data"]);
}

#[tokio::test]
async fn selector_transitions_use_the_shared_objects() {
    let f = fixture().await;
    let r = &f.registry;
    let mut sel = watch_from_now(r, configmaps(), Some("app=web")).await;
    let mut sel2 = watch_from_now(r, configmaps(), Some("app=web")).await;
    let mut all = watch_from_now(r, configmaps(), None).await;

    put(r, "x", json!({"app": "db"}), "1").await; // not matching: nothing
    let joined = put(r, "x", json!({"app": "web"}), "2").await; // starts matching: ADDED
    let changed = put(r, "x", json!({"app": "web"}), "3").await; // still matching: MODIFIED
    let left = put(r, "x", json!({"app": "db"}), "4").await; // stops matching: DELETED
    put(r, "x", json!({"app": "db"}), "5").await; // still not matching: nothing
    put(r, "x", json!({"app": "web"}), "6").await; // matching again: ADDED
    delete(r, "x").await; // deleted while matching: DELETED
    let after = r
        .list(configmaps(), Some("d"), &ListParams::default())
        .await
        .expect("list")
        .resource_version;
    put(r, "y", json!({"app": "db"}), "1").await; // never matching: nothing, not even
    delete(r, "y").await; // for its delete
    let last = put(r, "z", json!({"app": "web"}), "1").await;

    let want = [
        ("ADDED", rv_of(&joined).to_string()),
        ("MODIFIED", rv_of(&changed).to_string()),
        ("DELETED", rv_of(&left).to_string()),
    ];
    let mut seen = Vec::new();
    for _ in 0..7 {
        seen.push(next(&mut all).await);
    }
    for (kind, rv) in &want {
        let (e1, e2) = (next(&mut sel).await, next(&mut sel2).await);
        assert_eq!((e1.kind, e2.kind), (*kind, *kind));
        assert_eq!(rv_of(e1.value()), rv);
        assert!(Arc::ptr_eq(&e1.object, &e2.object));
        // The unfiltered watcher saw the same object for that revision.
        let same = seen.iter().find(|e| rv_of(e.value()) == rv).expect("seen");
        assert!(Arc::ptr_eq(&same.object, &e1.object));
    }
    let readded = next(&mut sel).await;
    assert_eq!(readded.kind, "ADDED");
    assert_eq!(readded.value()["data"]["k"], "6");
    let gone = next(&mut sel).await;
    assert_eq!(gone.kind, "DELETED");
    assert_eq!(rv_of(gone.value()), after.to_string());
    assert_eq!(gone.value()["metadata"]["labels"]["app"], "web");
    let z = next(&mut sel).await;
    assert_eq!((z.kind, z.value()), ("ADDED", &last));
    // The selected watchers' DELETED for the delete is the unfiltered one's too.
    assert_eq!(seen[6].kind, "DELETED");
    assert!(Arc::ptr_eq(&seen[6].object, &gone.object));
    assert_eq!(
        seen.iter().map(|e| e.kind).collect::<Vec<_>>(),
        [
            "ADDED", "MODIFIED", "MODIFIED", "MODIFIED", "MODIFIED", "MODIFIED", "DELETED"
        ]
    );
}

#[tokio::test]
async fn each_version_is_converted_for_its_watchers() {
    let f = fixture().await;
    let r = &f.registry;
    let core = catalog::find("", "v1", "events").expect("core events");
    let new = catalog::find("events.k8s.io", "v1", "events").expect("events.k8s.io");
    let mut wc = watch_from_now(r, core, None).await;
    let mut wn = watch_from_now(r, new, None).await;
    r.create(
        core,
        Some("d"),
        json!({"apiVersion": "v1", "kind": "Event",
            "metadata": {"name": "e", "namespace": "d"},
            "involvedObject": {"kind": "Pod", "name": "db", "namespace": "d"},
            "reason": "Started", "message": "started", "type": "Normal"}),
        &WriteOptions::default(),
    )
    .await
    .expect("event");
    let (ec, en) = (next(&mut wc).await, next(&mut wn).await);
    assert_eq!(ec.value()["apiVersion"], "v1");
    assert_eq!(ec.value()["involvedObject"]["name"], "db");
    assert_eq!(en.value()["apiVersion"], "events.k8s.io/v1");
    assert_eq!(en.value()["regarding"]["name"], "db");
    assert_eq!(en.value()["note"], "started");
}
