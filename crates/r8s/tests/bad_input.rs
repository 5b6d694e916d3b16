//! e2e: generated junk thrown at every resource and verb of a real `r8s server` through a
//! raw HTTPS client (malformed JSON/YAML/protobuf, wrong kinds, invalid names, stale
//! resourceVersions, unknown fields, oversized and deeply nested bodies, non-UTF-8 bytes,
//! bad query parameters and selectors, unknown paths). Each request must get the HTTP code
//! upstream Kubernetes answers with and a `metav1.Status` body whose code and reason match
//! it, junk must never change stored objects, and the server must stay up without panics.

mod common;
mod raw_https;
#[path = "bad_input/samples.rs"]
mod samples;

use common::Server;
use r8s_api::catalog::{self, ResourceInfo};
use raw_https::Client;
use samples::{Expect, NS, collection, path_segment_names, sample, sample_name};
use serde_json::{Value, json};

const JSON: Option<&str> = Some("application/json");
const YAML: Option<&str> = Some("application/yaml");
const PROTOBUF: Option<&str> = Some("application/vnd.kubernetes.protobuf");
const JSON_PATCH: &str = "application/json-patch+json";
const MERGE_PATCH: &str = "application/merge-patch+json";
const SMP: &str = "application/strategic-merge-patch+json";
const APPLY: &str = "application/apply-patch+yaml";
const TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io";

const BAD_REQUEST: Expect = Expect::Fail(400, "BadRequest");
const NOT_FOUND: Expect = Expect::Fail(404, "NotFound");
const NOT_ALLOWED: Expect = Expect::Fail(405, "MethodNotAllowed");
const CONFLICT: Expect = Expect::Fail(409, "Conflict");
const TOO_LARGE: Expect = Expect::Fail(413, "RequestEntityTooLarge");
const UNSUPPORTED: Expect = Expect::Fail(415, "UnsupportedMediaType");

/// One request and what it must get.
struct Case {
    label: String,
    method: &'static str,
    path: String,
    content_type: Option<&'static str>,
    accept: Option<&'static str>,
    body: Vec<u8>,
    want: Expect,
}

/// Builds the cases of one resource.
struct Cases(Vec<Case>);

impl Cases {
    fn add(&mut self, label: &str, method: &'static str, path: &str, ct: Option<&'static str>, body: Vec<u8>, want: Expect) {
        self.0.push(Case {
            label: label.to_string(),
            method,
            path: path.to_string(),
            content_type: ct,
            accept: None,
            body,
            want,
        });
    }

    fn get(&mut self, label: &str, path: &str, want: Expect) {
        self.add(label, "GET", path, None, Vec::new(), want);
    }
}

fn bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).expect("json")
}

/// `v` serialized with the string `"@@"` replaced by raw invalid UTF-8.
fn with_bad_utf8(v: &Value) -> Vec<u8> {
    let text = serde_json::to_string(v).expect("json");
    let mut out = Vec::new();
    for (i, part) in text.split("@@").enumerate() {
        if i > 0 {
            out.extend_from_slice(b"\xff\xfe");
        }
        out.extend_from_slice(part.as_bytes());
    }
    out
}

/// A JSON body just over the 3 MiB limit.
fn oversized(info: &ResourceInfo) -> Vec<u8> {
    let mut obj = sample(info, "big");
    obj["metadata"]["annotations"] = json!({"big": "a".repeat(3 * 1024 * 1024)});
    bytes(&obj)
}

fn set_name(mut v: Value, name: &str) -> Value {
    v["metadata"]["name"] = json!(name);
    v
}

/// Body faults shared by POST and PUT: none of these can decode into an object.
fn undecodable(c: &mut Cases, method: &'static str, path: &str, info: &ResourceInfo) {
    let deep = "[".repeat(20_000);
    let mut other = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}});
    if info.kind == "Namespace" {
        other["kind"] = json!("ConfigMap");
    }
    let mut bogus_kind = sample(info, "x");
    bogus_kind["kind"] = json!("Bogus");
    let mut bogus_version = sample(info, "x");
    bogus_version["apiVersion"] = json!("bogus.example.com/v9");
    let cases: Vec<(&str, Option<&'static str>, Vec<u8>, Expect)> = vec![
        ("malformed JSON", JSON, b"{\"metadata\": {".to_vec(), BAD_REQUEST),
        ("malformed YAML", YAML, b"metadata: [\n  a: b".to_vec(), BAD_REQUEST),
        ("protobuf garbage", PROTOBUF, b"k8s\0\xff\xfe\x01\x02garbage\x0a\xff".to_vec(), BAD_REQUEST),
        ("protobuf without magic", PROTOBUF, bytes(&sample(info, "x")), BAD_REQUEST),
        ("empty body", JSON, Vec::new(), BAD_REQUEST),
        ("JSON array", JSON, b"[1, 2]".to_vec(), BAD_REQUEST),
        ("JSON string", JSON, b"\"pod\"".to_vec(), BAD_REQUEST),
        ("unknown kind", JSON, bytes(&bogus_kind), BAD_REQUEST),
        ("another kind", JSON, bytes(&other), BAD_REQUEST),
        ("unknown apiVersion", JSON, bytes(&bogus_version), BAD_REQUEST),
        ("deeply nested JSON", JSON, deep.clone().into_bytes(), BAD_REQUEST),
        ("deeply nested YAML", YAML, deep.into_bytes(), BAD_REQUEST),
        ("non-UTF-8 outside strings", JSON, b"{\xff\xfe}".to_vec(), BAD_REQUEST),
        ("non-UTF-8 YAML", YAML, b"metadata:\n  name: \xff\xfe\n".to_vec(), BAD_REQUEST),
        ("unsupported media type", Some("text/plain"), bytes(&sample(info, "x")), UNSUPPORTED),
        ("over 3 MiB", JSON, oversized(info), TOO_LARGE),
    ];
    for (label, ct, body, want) in cases {
        c.add(&format!("{method} {label}"), method, path, ct, body, want);
    }
}

/// POST junk at the collection.
fn create_cases(c: &mut Cases, info: &ResourceInfo) {
    let coll = collection(info);
    undecodable(c, "POST", &coll, info);
    let lenient = path_segment_names(info);
    let name_want = |field| if lenient { Expect::Ok(201) } else { Expect::Invalid(field) };
    c.add("uppercase name", "POST", &coll, JSON, bytes(&sample(info, "BadName")), name_want("metadata.name"));
    c.add("300 character name", "POST", &coll, JSON, bytes(&sample(info, &"a".repeat(300))), name_want("metadata.name"));
    c.add("name ../x", "POST", &coll, JSON, bytes(&sample(info, "../x")), Expect::Invalid("metadata.name"));
    let mut labelled = sample(info, "labelled");
    labelled["metadata"]["labels"] = json!({"a": "bad value!"});
    c.add("invalid label value", "POST", &coll, JSON, bytes(&labelled), Expect::Invalid("metadata.labels"));
    let mut unknown = sample(info, "strict");
    unknown["bogusField"] = json!(1);
    unknown["metadata"]["bogusMeta"] = json!("x");
    c.add("unknown fields, Strict", "POST", &format!("{coll}?fieldValidation=Strict"), JSON, bytes(&unknown), BAD_REQUEST);
    let good = bytes(&sample(info, "never"));
    c.add("fieldValidation=Bogus", "POST", &format!("{coll}?fieldValidation=Bogus"), JSON, good.clone(), Expect::Invalid("fieldValidation"));
    c.add("dryRun=Bogus", "POST", &format!("{coll}?dryRun=Bogus"), JSON, good.clone(), Expect::Invalid("dryRun"));
    c.add("limit=abc on POST is ignored", "POST", &format!("{coll}?dryRun=All&limit=abc"), JSON, good.clone(), Expect::Ok(201));
    let mut utf8 = sample(info, &format!("utf8-strings-{}", info.version));
    utf8["metadata"]["annotations"] = json!({"note": "@@"});
    // Go's JSON decoder replaces invalid UTF-8 inside strings with U+FFFD.
    c.add("non-UTF-8 inside a string", "POST", &coll, JSON, with_bad_utf8(&utf8), Expect::Ok(201));
    if info.namespaced {
        let mut other_ns = sample(info, "elsewhere");
        other_ns["metadata"]["namespace"] = json!("other");
        c.add("body namespace differs from URL", "POST", &coll, JSON, bytes(&other_ns), BAD_REQUEST);
        let missing = coll.replace(&format!("/namespaces/{NS}/"), "/namespaces/nope/");
        c.add("namespace does not exist", "POST", &missing, JSON, good.clone(), NOT_FOUND);
        let cluster_wide = format!("{}/{}", samples::base(info), info.plural);
        c.add("no namespace in URL", "POST", &cluster_wide, JSON, good.clone(), NOT_ALLOWED);
        c.add("deletecollection without namespace", "DELETE", &cluster_wide, None, Vec::new(), NOT_ALLOWED);
    }
    c.add("PUT on a collection", "PUT", &coll, JSON, good.clone(), NOT_ALLOWED);
    c.add("PATCH on a collection", "PATCH", &coll, Some(MERGE_PATCH), b"{}".to_vec(), NOT_ALLOWED);
}

/// PUT junk at the existing sample object.
fn update_cases(c: &mut Cases, info: &ResourceInfo) {
    let name = sample_name(info);
    let obj = format!("{}/{name}", collection(info));
    undecodable(c, "PUT", &obj, info);
    let good = sample(info, &name);
    let mut stale = good.clone();
    stale["metadata"]["resourceVersion"] = json!("1");
    c.add("stale resourceVersion", "PUT", &obj, JSON, bytes(&stale), CONFLICT);
    c.add("name differs from URL", "PUT", &obj, JSON, bytes(&set_name(good.clone(), "other")), BAD_REQUEST);
    if info.namespaced {
        let mut other_ns = good.clone();
        other_ns["metadata"]["namespace"] = json!("other");
        c.add("namespace differs from URL", "PUT", &obj, JSON, bytes(&other_ns), BAD_REQUEST);
    }
    let mut labelled = good.clone();
    labelled["metadata"]["labels"] = json!({"a": "bad value!"});
    c.add("invalid label value", "PUT", &obj, JSON, bytes(&labelled), Expect::Invalid("metadata.labels"));
    let mut unknown = good.clone();
    unknown["bogusField"] = json!(1);
    c.add("unknown field, Strict", "PUT", &format!("{obj}?fieldValidation=Strict"), JSON, bytes(&unknown), BAD_REQUEST);
    c.add("dryRun=Bogus", "PUT", &format!("{obj}?dryRun=Bogus"), JSON, bytes(&good), Expect::Invalid("dryRun"));
    c.add("fieldValidation=Bogus", "PUT", &format!("{obj}?fieldValidation=Bogus"), JSON, bytes(&good), Expect::Invalid("fieldValidation"));
    c.add("POST on an object", "POST", &obj, JSON, bytes(&good), NOT_ALLOWED);
}

/// PATCH junk of every patch type at the existing sample object.
fn patch_cases(c: &mut Cases, info: &ResourceInfo) {
    let name = sample_name(info);
    let coll = collection(info);
    let obj = format!("{coll}/{name}");
    let missing = format!("{coll}/missing");
    let big = oversized(info);
    for ct in [JSON_PATCH, MERGE_PATCH, SMP, APPLY] {
        let t = ct.trim_start_matches("application/");
        let q = if ct == APPLY { "?fieldManager=junk&" } else { "?" };
        let p = |label: &str| format!("PATCH {t} {label}");
        let malformed: &[u8] = if ct == APPLY { b"metadata: [\n  a: b" } else { b"{\"metadata\": {" };
        c.add(&p("malformed"), "PATCH", &format!("{obj}{q}"), Some(ct), malformed.to_vec(), BAD_REQUEST);
        c.add(&p("over 3 MiB"), "PATCH", &format!("{obj}{q}"), Some(ct), big.clone(), TOO_LARGE);
        c.add(&p("dryRun=Bogus"), "PATCH", &format!("{obj}{q}dryRun=Bogus"), Some(ct), b"{}".to_vec(), Expect::Invalid("dryRun"));
        let (unknown, labels, stale): (Value, Value, Value) = match ct {
            JSON_PATCH => (
                json!([{"op": "add", "path": "/bogusField", "value": 1}]),
                json!([{"op": "add", "path": "/metadata/labels", "value": {"a": "bad value!"}}]),
                json!([{"op": "add", "path": "/metadata/resourceVersion", "value": "1"}]),
            ),
            APPLY => {
                let base = json!({"apiVersion": info.api_version(), "kind": info.kind, "metadata": {"name": name}});
                let mut u = base.clone();
                u["bogusField"] = json!(1);
                let mut l = base.clone();
                l["metadata"]["labels"] = json!({"a": "bad value!"});
                let mut s = base;
                s["metadata"]["resourceVersion"] = json!("1");
                (u, l, s)
            }
            _ => (
                json!({"bogusField": 1}),
                json!({"metadata": {"labels": {"a": "bad value!"}}}),
                json!({"metadata": {"resourceVersion": "1"}}),
            ),
        };
        // Strict unknown fields: 422 on the patched document, 400 for apply.
        let strict_want = if ct == APPLY { BAD_REQUEST } else { Expect::Invalid("patch") };
        c.add(&p("unknown field, Strict"), "PATCH", &format!("{obj}{q}fieldValidation=Strict"), Some(ct), bytes(&unknown), strict_want);
        c.add(&p("invalid label value"), "PATCH", &format!("{obj}{q}"), Some(ct), bytes(&labels), Expect::Invalid("metadata.labels"));
        c.add(&p("stale resourceVersion"), "PATCH", &format!("{obj}{q}"), Some(ct), bytes(&stale), CONFLICT);
        if ct != APPLY {
            c.add(&p("missing object"), "PATCH", &format!("{missing}{q}"), Some(ct), b"{}".to_vec(), NOT_FOUND);
        }
    }
    c.add("PATCH application/json", "PATCH", &obj, JSON, b"{}".to_vec(), UNSUPPORTED);
    c.add("PATCH text/plain", "PATCH", &obj, Some("text/plain"), b"{}".to_vec(), UNSUPPORTED);
    c.add("PATCH apply without fieldManager", "PATCH", &obj, Some(APPLY), b"{}".to_vec(), Expect::Invalid("fieldManager"));
    c.add("PATCH json-patch not a list", "PATCH", &obj, Some(JSON_PATCH), b"{}".to_vec(), BAD_REQUEST);
    let missing_path = json!([{"op": "replace", "path": "/nope/deeper", "value": 1}]);
    c.add("PATCH json-patch missing path", "PATCH", &obj, Some(JSON_PATCH), bytes(&missing_path), Expect::Fail(422, "Invalid"));
    let many: Vec<Value> = (0..10_001).map(|_| json!({"op": "test", "path": "/kind", "value": info.kind})).collect();
    c.add("PATCH json-patch over 10000 operations", "PATCH", &obj, Some(JSON_PATCH), bytes(&json!(many)), TOO_LARGE);
    let renamed = json!({"metadata": {"name": "other"}});
    c.add("PATCH renames the object", "PATCH", &obj, Some(MERGE_PATCH), bytes(&renamed), BAD_REQUEST);
    let note = json!({"metadata": {"annotations": {"note": "@@"}}});
    c.add("PATCH non-UTF-8 inside a string", "PATCH", &obj, Some(MERGE_PATCH), with_bad_utf8(&note), Expect::Ok(200));
}

/// DELETE junk at the existing sample object and its collection; nothing may be deleted.
fn delete_cases(c: &mut Cases, info: &ResourceInfo) {
    let coll = collection(info);
    let obj = format!("{coll}/{}", sample_name(info));
    c.add("DELETE malformed body", "DELETE", &obj, JSON, b"{\"kind\": ".to_vec(), BAD_REQUEST);
    c.add("DELETE over 3 MiB", "DELETE", &obj, JSON, oversized(info), TOO_LARGE);
    c.add("DELETE propagationPolicy=Bogus", "DELETE", &format!("{obj}?propagationPolicy=Bogus"), None, Vec::new(), Expect::Invalid("propagationPolicy"));
    let body = bytes(&json!({"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Bogus"}));
    c.add("DELETE body propagationPolicy Bogus", "DELETE", &obj, JSON, body, Expect::Invalid("propagationPolicy"));
    c.add("DELETE dryRun=Bogus", "DELETE", &format!("{obj}?dryRun=Bogus"), None, Vec::new(), Expect::Invalid("dryRun"));
    c.add("DELETE gracePeriodSeconds=abc", "DELETE", &format!("{obj}?gracePeriodSeconds=abc"), None, Vec::new(), BAD_REQUEST);
    let stale = bytes(&json!({"preconditions": {"resourceVersion": "1"}}));
    c.add("DELETE stale precondition", "DELETE", &obj, JSON, stale, CONFLICT);
    let uid = bytes(&json!({"preconditions": {"uid": "00000000-0000-0000-0000-000000000000"}}));
    c.add("DELETE wrong uid precondition", "DELETE", &obj, JSON, uid, CONFLICT);
    c.add("DELETE missing object", "DELETE", &format!("{coll}/missing"), None, Vec::new(), NOT_FOUND);
    if info.verbs.contains(&"deletecollection") {
        c.add("deletecollection bad labelSelector", "DELETE", &format!("{coll}?labelSelector=a%20in%20(b"), None, Vec::new(), BAD_REQUEST);
        c.add("deletecollection propagationPolicy=Bogus", "DELETE", &format!("{coll}?propagationPolicy=Bogus"), None, Vec::new(), Expect::Invalid("propagationPolicy"));
        c.add("deletecollection limit=abc", "DELETE", &format!("{coll}?limit=abc"), None, Vec::new(), BAD_REQUEST);
    } else {
        c.add("deletecollection not served", "DELETE", &coll, None, Vec::new(), NOT_ALLOWED);
    }
}

/// GET, list and watch with bad parameters.
fn read_cases(c: &mut Cases, info: &ResourceInfo) {
    let coll = collection(info);
    let obj = format!("{coll}/{}", sample_name(info));
    c.get("list limit=abc", &format!("{coll}?limit=abc"), BAD_REQUEST);
    c.get("list timeoutSeconds=abc", &format!("{coll}?timeoutSeconds=abc"), BAD_REQUEST);
    c.get("list timeoutSeconds=-1 is ignored", &format!("{coll}?timeoutSeconds=-1"), Expect::Ok(200));
    for sel in ["a%20in%20(b", "a%3Db%3Dc", "!", "a%20notin%20", "%3Db"] {
        c.get(&format!("list labelSelector={sel}"), &format!("{coll}?labelSelector={sel}"), BAD_REQUEST);
    }
    for sel in ["a", "spec.bogus%3Dx", "metadata.name%3D%3D%3Dx"] {
        c.get(&format!("list fieldSelector={sel}"), &format!("{coll}?fieldSelector={sel}"), BAD_REQUEST);
    }
    c.get("list fieldSelector=metadata.name=x", &format!("{coll}?fieldSelector=metadata.name%3Dx"), Expect::Ok(200));
    c.get("list resourceVersionMatch=Bogus", &format!("{coll}?resourceVersion=1&resourceVersionMatch=Bogus"), Expect::Invalid("resourceVersionMatch"));
    c.get("list resourceVersionMatch without resourceVersion", &format!("{coll}?resourceVersionMatch=Exact"), Expect::Invalid("resourceVersionMatch"));
    c.get("list sendInitialEvents", &format!("{coll}?sendInitialEvents=true"), Expect::Invalid("sendInitialEvents"));
    c.get("list continue=garbage", &format!("{coll}?continue=garbage"), BAD_REQUEST);
    c.get("list includeObject=X without Table", &format!("{coll}?includeObject=X"), Expect::Ok(200));
    c.0.push(Case {
        label: "list includeObject=X as Table".into(),
        method: "GET",
        path: format!("{coll}?includeObject=X"),
        content_type: None,
        accept: Some(TABLE),
        body: Vec::new(),
        want: BAD_REQUEST,
    });
    c.get("get missing object", &format!("{coll}/missing"), NOT_FOUND);
    for bad in ["..", "%2E%2E", "a%2Fb", "a%25b"] {
        c.get(&format!("get name {bad}"), &format!("{coll}/{bad}"), BAD_REQUEST);
    }
    c.get("get unknown subresource", &format!("{obj}/bogus"), NOT_FOUND);
    c.get("watch bad labelSelector", &format!("{coll}?watch=true&labelSelector=a%20in%20(b"), BAD_REQUEST);
    c.get("watch timeoutSeconds=abc", &format!("{coll}?watch=true&timeoutSeconds=abc"), BAD_REQUEST);
    c.get("watch resourceVersionMatch=Exact", &format!("{coll}?watch=true&resourceVersionMatch=Exact"), Expect::Invalid("resourceVersionMatch"));
    c.get("watch name and fieldSelector disagree", &format!("{obj}?watch=true&fieldSelector=metadata.name%3Dother"), BAD_REQUEST);
    // A negative timeout has already expired: the watch ends at once.
    c.get("watch timeoutSeconds=-1", &format!("{coll}?watch=true&timeoutSeconds=-1"), Expect::Ok(200));
}

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
                conn.send_with_accept(case.method, &case.path, case.content_type, case.accept, case.body.clone()),
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
                    failures.push(format!("{who}: {}: {} {}: request failed: {e}", case.label, case.method, case.path));
                    break None;
                }
                Err(_) => {
                    failures.push(format!("{who}: {}: {} {}: no answer in 30s", case.label, case.method, case.path));
                    conn = client.connect().await.expect("reconnect");
                    break None;
                }
            }
        };
        if let Some(resp) = resp {
            if let Some(problem) = samples::check(&resp, case.want) {
                let path: String = case.path.chars().take(160).collect();
                failures.push(format!("{who}: {}: {} {path}: {problem}", case.label, case.method));
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
    for info in catalog::all() {
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
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
}

/// Start a server, make the junk namespace and one sample object of every kind.
async fn setup() -> (Server, Client) {
    let s = Server::start();
    let client = Client::from_kubeconfig(&s.kubeconfig);
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}});
    let r = client.send("POST", "/api/v1/namespaces", JSON, bytes(&ns)).await;
    assert_eq!(r.status, 201, "{}", r.text());
    for info in catalog::all() {
        let r = client
            .send("POST", &collection(info), JSON, bytes(&sample(info, &sample_name(info))))
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
    assert!(!log.contains("panicked"), "server panicked:\n{}", common::tail(&log, 60));
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
    for info in catalog::all() {
        let r = client.get(&format!("{}/{}", collection(info), sample_name(info))).await;
        assert_eq!(r.status, 200, "{}: {}", info.plural, r.text());
        let labels = r.json().pointer("/metadata/labels").cloned();
        assert!(labels.as_ref().is_none_or(|l| l.get("a").is_none()), "{}: {labels:?}", info.plural);
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
    for info in catalog::all() {
        let r = client.get(&format!("{}/{}", collection(info), sample_name(info))).await;
        assert_eq!(r.status, 200, "{} was deleted by junk: {}", info.plural, r.text());
        let obj = r.json();
        assert!(obj.pointer("/metadata/labels/a").is_none(), "{}: {obj}", info.plural);
        // The non-UTF-8 patch landed with the replacement character, as upstream.
        let note = obj.pointer("/metadata/annotations/note").and_then(Value::as_str);
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
        c.add(&format!("POST {path}"), "POST", path, JSON, b"{}".to_vec(), NOT_FOUND);
    }
    let failures = run(&client, "paths", c.0).await;
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
    assert_healthy(&mut s, &client).await;
}
