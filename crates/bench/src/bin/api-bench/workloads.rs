//! The workloads, each against the API server (HTTPS, JSON) and against the raw SQLite
//! store with the same object bytes: create, get, list, and watch fan-out.

use crate::client::{Client, H1, request};
use anyhow::{Context, Result, bail};
use bytes::Bytes;
use futures::StreamExt;
use http_body_util::BodyExt;
use r8s_bench::{Measurement, run_concurrent};
use r8s_store::{DynStore, ListOptions};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, mpsc};

/// A ConfigMap as clients send it.
pub fn configmap(ns: &str, name: &str, payload: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns},
        "data": {"payload": payload},
    })
}

/// The bytes the registry stores for that ConfigMap (system metadata filled in), so the
/// raw store writes what the API server writes.
pub fn stored(ns: &str, name: &str, payload: &str) -> Vec<u8> {
    let mut v = configmap(ns, name, payload);
    v["metadata"]["uid"] = json!("6f1f1c5e-1c1b-4f53-9a57-3f0d7b5c2e11");
    v["metadata"]["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
    v["metadata"]["generation"] = json!(1);
    serde_json::to_vec(&v).unwrap_or_default()
}

/// Storage key of a ConfigMap.
pub fn key(ns: &str, name: &str) -> String {
    format!("/registry/core/configmaps/{ns}/{name}")
}

/// One HTTP/1.1 connection per simulated client.
async fn pool(client: &Client, clients: usize) -> Result<Arc<Vec<Mutex<H1>>>> {
    let mut conns = Vec::with_capacity(clients);
    for _ in 0..clients {
        conns.push(Mutex::new(client.http1().await?));
    }
    Ok(Arc::new(conns))
}

/// The JSON bodies of ConfigMaps `<prefix>-0` … `<prefix>-<ops-1>`, made before timing.
fn create_bodies(ns: &str, prefix: &str, ops: usize, payload: &str) -> Arc<Vec<Bytes>> {
    Arc::new(
        (0..ops)
            .map(|i| {
                Bytes::from(
                    serde_json::to_vec(&configmap(ns, &format!("{prefix}-{i}"), payload))
                        .unwrap_or_default(),
                )
            })
            .collect(),
    )
}

/// POST `ops` ConfigMaps `obj-<i>` into `ns`.
pub async fn api_create(
    client: &Client,
    ns: &str,
    ops: usize,
    clients: usize,
    payload: &str,
) -> Result<Measurement> {
    let conns = pool(client, clients).await?;
    let bodies = create_bodies(ns, "obj", ops, payload);
    let path = Arc::new(format!("/api/v1/namespaces/{ns}/configmaps"));
    run_concurrent(clients, ops, move |c, i| {
        let (conns, bodies, path) = (conns.clone(), bodies.clone(), path.clone());
        async move {
            let mut conn = conns[c].lock().await;
            conn.call("POST", &path, Some(bodies[i].clone()), 201)
                .await?;
            Ok(())
        }
    })
    .await
}

/// POST `ops` ConfigMaps `h2-<i>` into `ns` from `clients` concurrent callers sharing one
/// HTTP/2 connection, as client-go's workers share one transport.
pub async fn api_create_h2(
    client: &Client,
    ns: &str,
    ops: usize,
    clients: usize,
    payload: &str,
) -> Result<Measurement> {
    let conn = client.http2().await?;
    let bodies = create_bodies(ns, "h2", ops, payload);
    let path = Arc::new(format!("/api/v1/namespaces/{ns}/configmaps"));
    run_concurrent(clients, ops, move |_, i| {
        let (mut conn, bodies, path) = (conn.clone(), bodies.clone(), path.clone());
        async move {
            conn.ready().await?;
            let resp = conn
                .send_request(request("POST", &path, Some(bodies[i].clone()))?)
                .await?;
            let status = resp.status().as_u16();
            resp.into_body().collect().await?;
            if status != 201 {
                bail!("POST {path}: {status}");
            }
            Ok(())
        }
    })
    .await
}

/// The same creates straight into the store.
pub async fn raw_create(
    store: &DynStore,
    ns: &str,
    ops: usize,
    clients: usize,
    payload: &str,
) -> Result<Measurement> {
    let values: Arc<Vec<(String, Vec<u8>)>> = Arc::new(
        (0..ops)
            .map(|i| {
                let name = format!("obj-{i}");
                (key(ns, &name), stored(ns, &name, payload))
            })
            .collect(),
    );
    let store = store.clone();
    run_concurrent(clients, ops, move |_, i| {
        let (store, values) = (store.clone(), values.clone());
        async move {
            let (k, v) = &values[i];
            store.create(k, v.clone(), None).await?;
            Ok(())
        }
    })
    .await
}

/// GET `ops` objects (round robin over `existing`).
pub async fn api_get(
    client: &Client,
    ns: &str,
    existing: usize,
    ops: usize,
    clients: usize,
) -> Result<Measurement> {
    let conns = pool(client, clients).await?;
    let ns = Arc::new(ns.to_string());
    run_concurrent(clients, ops, move |c, i| {
        let (conns, ns) = (conns.clone(), ns.clone());
        async move {
            let path = format!("/api/v1/namespaces/{ns}/configmaps/obj-{}", i % existing);
            conns[c].lock().await.call("GET", &path, None, 200).await?;
            Ok(())
        }
    })
    .await
}

/// The same gets straight from the store.
pub async fn raw_get(
    store: &DynStore,
    ns: &str,
    existing: usize,
    ops: usize,
    clients: usize,
) -> Result<Measurement> {
    let store = store.clone();
    let ns = Arc::new(ns.to_string());
    run_concurrent(clients, ops, move |_, i| {
        let (store, ns) = (store.clone(), ns.clone());
        async move {
            let kv = store
                .get(&key(&ns, &format!("obj-{}", i % existing)), 0)
                .await?;
            if kv.is_none() {
                bail!("missing key");
            }
            Ok(())
        }
    })
    .await
}

/// Full lists of namespace `ns`.
pub async fn api_list(
    client: &Client,
    ns: &str,
    ops: usize,
    clients: usize,
) -> Result<Measurement> {
    let conns = pool(client, clients).await?;
    let path = Arc::new(format!("/api/v1/namespaces/{ns}/configmaps"));
    run_concurrent(clients, ops, move |c, _| {
        let (conns, path) = (conns.clone(), path.clone());
        async move {
            conns[c].lock().await.call("GET", &path, None, 200).await?;
            Ok(())
        }
    })
    .await
}

/// The same lists straight from the store.
pub async fn raw_list(
    store: &DynStore,
    ns: &str,
    ops: usize,
    clients: usize,
) -> Result<Measurement> {
    let store = store.clone();
    let prefix = Arc::new(format!("/registry/core/configmaps/{ns}/"));
    run_concurrent(clients, ops, move |_, _| {
        let (store, prefix) = (store.clone(), prefix.clone());
        async move {
            store.list(&prefix, ListOptions::default()).await?;
            Ok(())
        }
    })
    .await
}

/// Result of a fan-out run: per change, the time until the last watcher had it; and every
/// single delivery.
pub struct FanOut {
    pub all_delivered: Measurement,
    pub deliveries: Measurement,
}

/// The `seq` a watch line or stored value carries (`"seq":"N"`).
fn seq_of(bytes: &[u8]) -> Option<usize> {
    const MARK: &[u8] = b"\"seq\":\"";
    let at = bytes.windows(MARK.len()).position(|w| w == MARK)? + MARK.len();
    let digits = bytes[at..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    std::str::from_utf8(&bytes[at..at + digits])
        .ok()?
        .parse()
        .ok()
}

/// Wait for `watchers` arrivals of every change `0..changes`, made by `write(i)`.
async fn fan_out<W, Fut>(
    watchers: usize,
    changes: usize,
    mut rx: mpsc::UnboundedReceiver<(usize, Instant)>,
    mut write: W,
) -> Result<FanOut>
where
    W: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let mut all = Measurement::default();
    let mut each = Measurement::default();
    let started = Instant::now();
    for i in 0..changes {
        let t0 = Instant::now();
        write(i).await?;
        let mut got = 0;
        while got < watchers {
            let (seq, at) = tokio::time::timeout(Duration::from_secs(20), rx.recv())
                .await
                .with_context(|| format!("change {i}: {got}/{watchers} watchers got it in 20s"))?
                .context("watchers ended")?;
            if seq == i {
                got += 1;
                each.samples.push(at.saturating_duration_since(t0));
            }
        }
        all.samples.push(t0.elapsed());
    }
    all.wall = started.elapsed();
    each.wall = all.wall;
    Ok(FanOut {
        all_delivered: all,
        deliveries: each,
    })
}

/// `watchers` API watches of namespace `ns` (100 streams per HTTP/2 connection, as an
/// informer-heavy client multiplexes them), then `changes` merge patches of `watched`.
pub async fn api_watch(
    client: &Client,
    ns: &str,
    watchers: usize,
    changes: usize,
) -> Result<FanOut> {
    let mut writer = client.http1().await?;
    let obj_path = format!("/api/v1/namespaces/{ns}/configmaps/watched");
    let current = writer.call("GET", &obj_path, None, 200).await?;
    let rv: Value = serde_json::from_slice(&current)?;
    let rv = rv["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or("0")
        .to_string();
    let (tx, rx) = mpsc::unbounded_channel();
    let mut tasks = Vec::with_capacity(watchers);
    let mut h2 = None;
    for w in 0..watchers {
        if w % 100 == 0 {
            h2 = Some(client.http2().await?);
        }
        let Some(sender) = h2.as_mut() else {
            bail!("no connection")
        };
        sender.ready().await?;
        let path = format!("/api/v1/namespaces/{ns}/configmaps?watch=true&resourceVersion={rv}");
        let resp = sender.send_request(request("GET", &path, None)?).await?;
        if resp.status() != 200 {
            bail!("watch: {}", resp.status());
        }
        let mut body = resp.into_body();
        let tx = tx.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(Ok(frame)) = body.frame().await {
                if let Some(data) = frame.data_ref() {
                    let at = Instant::now();
                    for line in data.split(|b| *b == b'\n') {
                        if let Some(seq) = seq_of(line) {
                            let _ = tx.send((seq, at));
                        }
                    }
                }
            }
        }));
    }
    drop(tx);
    let writer = Arc::new(Mutex::new(writer));
    let result = fan_out(watchers, changes, rx, |i| {
        let body = Bytes::from(format!("{{\"data\":{{\"seq\":\"{i}\"}}}}"));
        let req = request("PATCH", &obj_path, Some(body));
        let writer = writer.clone();
        async move {
            let mut req = req?;
            req.headers_mut().insert(
                "content-type",
                hyper::header::HeaderValue::from_static("application/merge-patch+json"),
            );
            let status = writer.lock().await.send(req).await?;
            if status != 200 {
                bail!("patch: {status}");
            }
            Ok(())
        }
    })
    .await;
    // Close the watches so they cost nothing in later runs.
    tasks.iter().for_each(tokio::task::JoinHandle::abort);
    result
}

/// `watchers` store watches of the same prefix, then `changes` updates of the same key.
pub async fn raw_watch(
    store: &DynStore,
    ns: &str,
    watchers: usize,
    changes: usize,
    payload: &str,
) -> Result<FanOut> {
    let k = key(ns, "watched");
    let (tx, rx) = mpsc::unbounded_channel();
    let prefix = format!("/registry/core/configmaps/{ns}/");
    let mut tasks = Vec::with_capacity(watchers);
    for _ in 0..watchers {
        let mut stream = store.watch(&prefix, 0).await?;
        let tx = tx.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(Ok(ev)) = stream.next().await {
                if let Some(seq) = seq_of(&ev.kv.value) {
                    let _ = tx.send((seq, Instant::now()));
                }
            }
        }));
    }
    drop(tx);
    let rev = match store.get(&k, 0).await? {
        Some(kv) => kv.mod_revision,
        None => {
            store
                .create(&k, stored(ns, "watched", payload), None)
                .await?
        }
    };
    let rev = Arc::new(AtomicI64::new(rev));
    let template: Value = serde_json::from_slice(&stored(ns, "watched", payload))?;
    let store = store.clone();
    let result = fan_out(watchers, changes, rx, |i| {
        let mut v = template.clone();
        v["data"]["seq"] = json!(i.to_string());
        let bytes = serde_json::to_vec(&v).unwrap_or_default();
        let (store, k, rev) = (store.clone(), k.clone(), rev.clone());
        async move {
            let next = store
                .update(&k, bytes, rev.load(Ordering::Relaxed), None)
                .await?;
            rev.store(next, Ordering::Relaxed);
            Ok(())
        }
    })
    .await;
    tasks.iter().for_each(tokio::task::JoinHandle::abort);
    result
}

/// Resources an informer-heavy client (the controller manager) watches cluster-wide;
/// none of them is written by the create and get workloads.
const INFORMER_RESOURCES: [&str; 8] = [
    "/api/v1/secrets",
    "/api/v1/services",
    "/api/v1/endpoints",
    "/api/v1/nodes",
    "/api/v1/persistentvolumeclaims",
    "/apis/apps/v1/deployments",
    "/apis/apps/v1/replicasets",
    "/apis/batch/v1/jobs",
];

/// `n` watches spread over [`INFORMER_RESOURCES`] (100 per HTTP/2 connection), left open
/// (their bodies drained) until the returned tasks are aborted: the watch load a real
/// server carries from its controllers while it serves other writes.
pub async fn idle_watches(client: &Client, n: usize) -> Result<Vec<tokio::task::JoinHandle<()>>> {
    let mut tasks = Vec::with_capacity(n);
    let mut h2 = None;
    for i in 0..n {
        if i % 100 == 0 {
            h2 = Some(client.http2().await?);
        }
        let Some(sender) = h2.as_mut() else {
            bail!("no connection")
        };
        sender.ready().await?;
        let path = format!(
            "{}?watch=true&allowWatchBookmarks=true",
            INFORMER_RESOURCES[i % INFORMER_RESOURCES.len()]
        );
        let resp = sender.send_request(request("GET", &path, None)?).await?;
        if resp.status() != 200 {
            bail!("watch {path}: {}", resp.status());
        }
        let mut body = resp.into_body();
        tasks.push(tokio::spawn(async move {
            while let Some(Ok(_)) = body.frame().await {}
        }));
    }
    Ok(tasks)
}
