//! e2e: generated junk thrown at every resource and verb of a real `r8s server` through a
//! raw HTTPS client (malformed JSON/YAML/protobuf, wrong kinds, invalid names, stale
//! resourceVersions, unknown fields, oversized and deeply nested bodies, non-UTF-8 bytes,
//! bad query parameters and selectors, unknown paths). Each request must get the HTTP code
//! upstream Kubernetes answers with and a `metav1.Status` body whose code and reason match
//! it, junk must never change stored objects, and the server must stay up without panics.

#[path = "bad_input/cases.rs"]
mod cases;
mod common;
#[path = "bad_input/edits.rs"]
mod edits;
mod raw_https;
#[path = "bad_input/reads.rs"]
mod reads;
#[path = "bad_input/samples.rs"]
mod samples;

use cases::{Case, Cases, JSON, NOT_FOUND, bytes, create_cases, update_cases};
use common::Server;
use edits::{delete_cases, patch_cases};
use r8s_api::catalog::{self, ResourceInfo};
use raw_https::Client;
use reads::read_cases;
use samples::{NS, collection, sample, sample_name};
use serde_json::{Value, json};

/// Send every case (one connection, renewed when the server closes it) and collect what
/// did not get the expected answer.
async fn run(client: &Client, who: &str, cases: Vec<Case>) -> Vec<String> {
    let mut failures = Vec::new();
    let mut conn = client.connect().await.expect("connect");
    for case in cases {
        let mut attempt = 0;
        let resp = loop {
            let sent = tokio::time::timeout(
                std::time::Duration::from_secs(30),
                conn.send_with_accept(
                    case.method,
                    &case.path,
                    case.content_type,
                    case.accept,
                    case.body.clone(),
                ),
            )
            .await;
            match sent {
                Ok(Ok(r)) => break Some(r),
                Ok(Err(e)) if attempt == 0 => {
                    // The server may close a connection after refusing a body unread.
                    let _ = e;
                    attempt += 1;
                    conn = client.connect().await.expect("reconnect");
                }
                Ok(Err(e)) => {
                    failures.push(format!(
                        "{who}: {}: {} {}: request failed: {e}",
                        case.label, case.method, case.path
                    ));
                    break None;
                }
                Err(_) => {
                    failures.push(format!(
                        "{who}: {}: {} {}: no answer in 30s",
                        case.label, case.method, case.path
                    ));
                    conn = client.connect().await.expect("reconnect");
                    break None;
                }
            }
        };
        if let Some(resp) = resp {
            if let Some(problem) = samples::check(&resp, case.want) {
                let path: String = case.path.chars().take(160).collect();
                failures.push(format!(
                    "{who}: {}: {} {path}: {problem}",
                    case.label, case.method
                ));
            }
            if resp.headers.get("connection").is_some_and(|v| v == "close") {
                conn = client.connect().await.expect("reconnect");
            }
        }
    }
    failures
}

/// Run `build` for every resource concurrently and fail with every mismatch.
async fn for_every_resource(client: &Client, build: fn(&mut Cases, &ResourceInfo)) {
    let mut tasks = tokio::task::JoinSet::new();
    for info in stored_kinds() {
        let mut cases = Cases(Vec::new());
        build(&mut cases, info);
        let client = client.clone();
        let who = format!("{}/{} {}", info.group, info.version, info.plural);
        tasks.spawn(async move { run(&client, &who, cases.0).await });
    }
    let mut failures = Vec::new();
    while let Some(r) = tasks.join_next().await {
        failures.extend(r.expect("task"));
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The resources kept in the store (readable and creatable), each with a sample object;
/// the computed, read-only `componentstatuses` is checked by `kubectl_api.rs`.
fn stored_kinds() -> impl Iterator<Item = &'static ResourceInfo> {
    catalog::all()
        .iter()
        .filter(|i| i.verbs.contains(&"get") && i.verbs.contains(&"create"))
}

/// Start a server, make the junk namespace and one sample object of every kind.
async fn setup() -> (Server, Client) {
    let s = Server::start();
    let client = Client::from_kubeconfig(&s.kubeconfig);
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}});
    let r = client
        .send("POST", "/api/v1/namespaces", JSON, bytes(&ns))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    for info in stored_kinds() {
        let r = client
            .send(
                "POST",
                &collection(info),
                JSON,
                bytes(&sample(info, &sample_name(info))),
            )
            .await;
        assert_eq!(r.status, 201, "sample {}: {}", info.plural, r.text());
    }
    (s, client)
}

/// The server still serves and never panicked.
async fn assert_healthy(s: &mut Server, client: &Client) {
    let r = client.get("/readyz").await;
    assert_eq!(r.status, 200, "readyz: {}", r.text());
    let log = s.log();
    assert!(
        !log.contains("panicked"),
        "server panicked:\n{}",
        common::tail(&log, 60)
    );
    assert!(matches!(s.child.try_wait(), Ok(None)), "server exited");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn junk_creates_and_updates_of_every_resource() {
    let (mut s, client) = setup().await;
    for_every_resource(&client, |c, info| {
        create_cases(c, info);
        update_cases(c, info);
    })
    .await;
    // Junk never changed the samples.
    for info in stored_kinds() {
        let r = client
            .get(&format!("{}/{}", collection(info), sample_name(info)))
            .await;
        assert_eq!(r.status, 200, "{}: {}", info.plural, r.text());
        let labels = r.json().pointer("/metadata/labels").cloned();
        assert!(
            labels.as_ref().is_none_or(|l| l.get("a").is_none()),
            "{}: {labels:?}",
            info.plural
        );
    }
    assert_healthy(&mut s, &client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn junk_patches_and_deletes_of_every_resource() {
    let (mut s, client) = setup().await;
    for_every_resource(&client, |c, info| {
        patch_cases(c, info);
        delete_cases(c, info);
    })
    .await;
    for info in stored_kinds() {
        let r = client
            .get(&format!("{}/{}", collection(info), sample_name(info)))
            .await;
        assert_eq!(
            r.status,
            200,
            "{} was deleted by junk: {}",
            info.plural,
            r.text()
        );
        let obj = r.json();
        assert!(
            obj.pointer("/metadata/labels/a").is_none(),
            "{}: {obj}",
            info.plural
        );
        // The non-UTF-8 patch landed with the replacement character, as upstream.
        let note = obj
            .pointer("/metadata/annotations/note")
            .and_then(Value::as_str);
        assert_eq!(note, Some("\u{fffd}\u{fffd}"), "{}", info.plural);
    }
    assert_healthy(&mut s, &client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn junk_reads_watches_and_unknown_paths() {
    let (mut s, client) = setup().await;
    for_every_resource(&client, read_cases).await;
    let mut c = Cases(Vec::new());
    for path in [
        "/api/v1/namespaces/junk/bogusthings",
        "/api/v1/bogusthings",
        "/apis/nosuch.example.com/v1/things",
        "/apis/nosuch.example.com/v1/namespaces/junk/things/x",
        "/apis/apps/v9/deployments",
        "/api/v9/pods",
        "/apis/apps/v1/namespaces/junk/deployments/sample-v1/bogussub",
        "/api/v1/namespaces//configmaps",
    ] {
        c.get(&format!("GET {path}"), path, NOT_FOUND);
        c.add(
            &format!("POST {path}"),
            "POST",
            path,
            JSON,
            b"{}".to_vec(),
            NOT_FOUND,
        );
    }
    let failures = run(&client, "paths", c.0).await;
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_healthy(&mut s, &client).await;
}
