//! The informer's event handling, fed by hand (no API server): handler replay, relist
//! deletes, old/new pairs, registration removal.

use super::*;
use k8s_openapi::api::core::v1::ConfigMap;
use std::collections::BTreeMap;

fn cm(name: &str, rv: &str) -> ConfigMap {
    ConfigMap {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            namespace: Some("ns".into()),
            resource_version: Some(rv.into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([("k".to_string(), rv.to_string())])),
        ..Default::default()
    }
}

/// An informer without a watch, and the pump that feeds it.
fn detached() -> (Informer<ConfigMap>, Pump<ConfigMap>) {
    let (shared, pump) = parts();
    let task = tokio::spawn(async {});
    let informer = Informer {
        shared,
        task: Arc::new(AbortOnDrop(task.abort_handle())),
    };
    (informer, pump)
}

/// What a handler saw, as `apply name old-rv new-rv` / `delete name rv`.
type Seen = Arc<Mutex<Vec<String>>>;

fn recorder(inf: &Informer<ConfigMap>) -> (Registration, Seen) {
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let rv = |c: &ConfigMap| c.metadata.resource_version.clone().unwrap_or_default();
    let reg = inf.add_handler(move |ev| {
        let line = match ev {
            InformerEvent::Apply { old, new } => format!(
                "apply {} {} {}",
                new.metadata.name.as_deref().unwrap_or(""),
                old.as_deref().map(rv).unwrap_or_else(|| "-".into()),
                rv(&new)
            ),
            InformerEvent::Delete(o) => {
                format!(
                    "delete {} {}",
                    o.metadata.name.as_deref().unwrap_or(""),
                    rv(&o)
                )
            }
        };
        s.lock().unwrap().push(line);
    });
    (reg, seen)
}

fn take(seen: &Seen) -> Vec<String> {
    std::mem::take(&mut *seen.lock().unwrap())
}

fn list(pump: &mut Pump<ConfigMap>, objs: Vec<ConfigMap>) {
    pump.handle(Event::Init);
    for o in objs {
        pump.handle(Event::InitApply(o));
    }
    pump.handle(Event::InitDone);
}

#[tokio::test]
async fn initial_list_then_changes() {
    let (inf, mut pump) = detached();
    let (_reg, seen) = recorder(&inf);
    assert!(!inf.has_synced());
    list(&mut pump, vec![cm("a", "1"), cm("b", "2")]);
    assert!(inf.has_synced());
    inf.wait_synced().await;
    assert_eq!(take(&seen), ["apply a - 1", "apply b - 2"]);
    pump.handle(Event::Apply(cm("a", "3")));
    pump.handle(Event::Delete(cm("b", "4")));
    assert_eq!(take(&seen), ["apply a 1 3", "delete b 2"]);
    assert_eq!(
        inf.get(Some("ns"), "a")
            .unwrap()
            .metadata
            .resource_version
            .as_deref(),
        Some("3")
    );
    assert!(inf.get(Some("ns"), "b").is_none());
}

#[tokio::test]
async fn handlers_get_the_cached_object() {
    let (inf, mut pump) = detached();
    let got: Arc<Mutex<Option<Arc<ConfigMap>>>> = Arc::default();
    let g = got.clone();
    let _reg = inf.add_handler(move |ev| {
        if let InformerEvent::Apply { new, .. } = ev {
            *g.lock().unwrap() = Some(new);
        }
    });
    list(&mut pump, vec![]);
    pump.handle(Event::Apply(cm("a", "1")));
    let cached = inf.get(Some("ns"), "a").unwrap();
    assert!(Arc::ptr_eq(&cached, got.lock().unwrap().as_ref().unwrap()));
}

#[tokio::test]
async fn relist_synthesises_deletes_and_keeps_old_states() {
    let (inf, mut pump) = detached();
    let (_reg, seen) = recorder(&inf);
    list(&mut pump, vec![cm("a", "1"), cm("b", "2")]);
    take(&seen);
    // The watch broke; the relist no longer has `a` and a newer `b`.
    list(&mut pump, vec![cm("b", "5"), cm("c", "6")]);
    assert_eq!(take(&seen), ["delete a 1", "apply b 2 5", "apply c - 6"]);
}

#[tokio::test]
async fn late_handler_is_replayed_the_cache_first() {
    let (inf, mut pump) = detached();
    let (_first, _) = recorder(&inf);
    list(&mut pump, vec![cm("a", "1"), cm("b", "2")]);
    let (_late, seen) = recorder(&inf);
    let mut replay = take(&seen);
    replay.sort();
    assert_eq!(replay, ["apply a - 1", "apply b - 2"]);
    pump.handle(Event::Apply(cm("b", "3")));
    assert_eq!(take(&seen), ["apply b 2 3"]);
}

#[tokio::test]
async fn dropping_the_registration_removes_the_handler() {
    let (inf, mut pump) = detached();
    let (reg, seen) = recorder(&inf);
    let (_other, other_seen) = recorder(&inf);
    assert_eq!(inf.handler_count(), 2);
    drop(reg);
    assert_eq!(inf.handler_count(), 1);
    list(&mut pump, vec![cm("a", "1")]);
    assert!(take(&seen).is_empty());
    assert_eq!(take(&other_seen), ["apply a - 1"]);
}

#[test]
fn strips_managed_fields_only() {
    let mut o: ConfigMap = serde_json::from_value(serde_json::json!({
        "metadata": {
            "name": "a",
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"},
            "managedFields": [{"manager": "kubectl", "operation": "Apply"}],
        },
    }))
    .unwrap();
    strip_managed_fields(&mut o);
    assert!(o.metadata.managed_fields.is_none());
    assert_eq!(o.metadata.annotations.map(|a| a.len()), Some(1));
}

#[tokio::test]
async fn every_concurrent_waiter_sees_the_sync() {
    let (inf, mut pump) = detached();
    let waiters: Vec<_> = (0..3)
        .map(|_| {
            let inf = inf.clone();
            tokio::spawn(async move { inf.wait_synced().await })
        })
        .collect();
    // Let every waiter start waiting before the list completes.
    for _ in 0..5 {
        tokio::task::yield_now().await;
    }
    list(&mut pump, vec![cm("a", "1")]);
    for w in waiters {
        tokio::time::timeout(std::time::Duration::from_secs(5), w)
            .await
            .expect("waiter woken")
            .expect("waiter task");
    }
}
