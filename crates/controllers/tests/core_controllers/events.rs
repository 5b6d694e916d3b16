//! The event recorder creates core/v1 Events and folds repeats into a count.

use crate::support::start;
use k8s_openapi::api::core::v1::{ConfigMap, Event};
use kube::Api;
use kube::api::{ListParams, PostParams};
use r8s_controllers::Context;
use r8s_controllers::events::{EventType, object_ref};
use serde_json::json;

#[tokio::test]
async fn repeated_events_bump_count() {
    let (_server, client) = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "subject"}})).expect("cm");
    let cm = cms
        .create(&PostParams::default(), &cm)
        .await
        .expect("create");
    let ctx = Context::new(client.clone());
    let rec = ctx.recorder("test-controller");
    let r = object_ref(&cm);
    let first = rec
        .publish_now(&r, EventType::Normal, "Tested", "hello")
        .await
        .expect("first event");
    let second = rec
        .publish_now(&r, EventType::Normal, "Tested", "hello")
        .await
        .expect("second event");
    assert_eq!(first.metadata.name, second.metadata.name);
    assert_eq!(second.count, Some(2));
    rec.publish_now(&r, EventType::Warning, "Tested", "other")
        .await
        .expect("third event");
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let list = events.list(&ListParams::default()).await.expect("list");
    let mine: Vec<&Event> = list
        .items
        .iter()
        .filter(|e| e.involved_object.name.as_deref() == Some("subject"))
        .collect();
    assert_eq!(mine.len(), 2);
    let hello = mine
        .iter()
        .find(|e| e.message.as_deref() == Some("hello"))
        .expect("hello event");
    assert_eq!(hello.count, Some(2));
    assert_eq!(hello.type_.as_deref(), Some("Normal"));
    assert_eq!(
        hello.source.as_ref().and_then(|s| s.component.as_deref()),
        Some("test-controller")
    );
    assert_eq!(hello.involved_object.uid, cm.metadata.uid);
    // Fire-and-forget publishing lands too.
    rec.publish(&r, EventType::Normal, "Async", "later");
    crate::support::wait_for("async event", 20, || async {
        events
            .list(&ListParams::default())
            .await
            .ok()?
            .items
            .into_iter()
            .find(|e| e.reason.as_deref() == Some("Async"))
    })
    .await;
}
