//! e2e: `kill -9` of `r8s server` in the middle of a burst of concurrent writes loses no
//! acknowledged write. Writers record every successful answer; after the restart (same
//! data dir, same store) every acknowledged object is there with its content, counters
//! never fall behind what was acknowledged, resourceVersions do not go backwards, and the
//! cluster CA is reused, so credentials issued before the crash still work. Runs against
//! the embedded SQLite store and against etcd.

mod common;
mod raw_https;

use common::Server;
use raw_https::Client;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Tasks creating ConfigMaps.
const CREATORS: usize = 24;
/// Tasks patching their own counter ConfigMap.
const UPDATERS: usize = 8;
/// Acknowledged creates to wait for before the kill.
const ACKED_BEFORE_KILL: usize = 400;

/// What the server acknowledged.
#[derive(Default)]
struct Acks {
    /// name → (uid, resourceVersion, data) of every 201.
    created: HashMap<String, (String, i64, Value)>,
    /// counter name → last acknowledged value.
    counters: HashMap<String, u64>,
    max_rv: i64,
}

fn rv_of(obj: &Value) -> i64 {
    obj.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn body(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).expect("json")
}

/// Create ConfigMaps until the server stops answering.
async fn creator(client: Client, ns: String, task: usize, acks: Arc<Mutex<Acks>>) {
    let Ok(mut conn) = client.connect().await else {
        return;
    };
    let path = format!("/api/v1/namespaces/{ns}/configmaps");
    for i in 0.. {
        let name = format!("cm-{task}-{i}");
        let data = json!({"task": task.to_string(), "i": i.to_string(), "pad": "p".repeat(512)});
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data});
        let Ok(resp) = conn
            .send("POST", &path, Some("application/json"), body(&cm))
            .await
        else {
            return;
        };
        if resp.status != 201 {
            return;
        }
        let obj = resp.json();
        let uid = obj
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let rv = rv_of(&obj);
        let mut a = acks.lock().expect("acks");
        a.max_rv = a.max_rv.max(rv);
        a.created.insert(name, (uid, rv, data));
    }
}

/// Patch counter `ctr-<task>` upwards until the server stops answering.
async fn updater(client: Client, ns: String, task: usize, acks: Arc<Mutex<Acks>>) {
    let Ok(mut conn) = client.connect().await else {
        return;
    };
    let name = format!("ctr-{task}");
    let path = format!("/api/v1/namespaces/{ns}/configmaps/{name}");
    for n in 1u64.. {
        let patch = json!({"data": {"n": n.to_string()}});
        let Ok(resp) = conn
            .send(
                "PATCH",
                &path,
                Some("application/merge-patch+json"),
                body(&patch),
            )
            .await
        else {
            return;
        };
        if resp.status != 200 {
            return;
        }
        let rv = rv_of(&resp.json());
        let mut a = acks.lock().expect("acks");
        a.max_rv = a.max_rv.max(rv);
        a.counters.insert(name.clone(), n);
    }
}

/// The kubeconfig text pointed at another port.
fn retarget(kubeconfig: &str, port: u16) -> String {
    kubeconfig
        .lines()
        .map(|l| match l.find("server: https://") {
            Some(at) => {
                let host_end = l.rfind(':').unwrap_or(l.len());
                format!("{}{}:{port}", &l[..at], &l[at..host_end])
            }
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `certificate-authority-data` of a kubeconfig.
fn ca_of(kubeconfig: &str) -> String {
    let doc: serde_yaml::Value = serde_yaml::from_str(kubeconfig).expect("kubeconfig");
    doc["clusters"][0]["cluster"]["certificate-authority-data"]
        .as_str()
        .expect("ca data")
        .to_string()
}

/// Burst, kill -9, restart in the same data dir, and check every acknowledged write.
async fn burst_kill_restart(extra: &[&str]) {
    let s = Server::start_with(extra);
    let ns = format!("burst-{}", std::process::id());
    let client = Client::from_kubeconfig(&s.kubeconfig);
    let ns_obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
    let r = client
        .send(
            "POST",
            "/api/v1/namespaces",
            Some("application/json"),
            body(&ns_obj),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    for t in 0..UPDATERS {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("ctr-{t}")}, "data": {"n": "0"}});
        let r = client
            .send(
                "POST",
                &format!("/api/v1/namespaces/{ns}/configmaps"),
                Some("application/json"),
                body(&cm),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
    }
    let old_kubeconfig = std::fs::read_to_string(&s.kubeconfig).expect("kubeconfig");

    let acks = Arc::new(Mutex::new(Acks::default()));
    let mut tasks = Vec::new();
    for t in 0..CREATORS {
        tasks.push(tokio::spawn(creator(
            client.clone(),
            ns.clone(),
            t,
            acks.clone(),
        )));
    }
    for t in 0..UPDATERS {
        tasks.push(tokio::spawn(updater(
            client.clone(),
            ns.clone(),
            t,
            acks.clone(),
        )));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while acks.lock().expect("acks").created.len() < ACKED_BEFORE_KILL {
        assert!(Instant::now() < deadline, "burst too slow");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // SIGKILL with requests in flight.
    let dir = s.kill();
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(30), t)
            .await
            .expect("writers stop once the server is gone")
            .expect("writer task");
    }
    let acks = Arc::try_unwrap(acks)
        .ok()
        .expect("acks")
        .into_inner()
        .expect("acks");
    assert!(acks.created.len() >= ACKED_BEFORE_KILL);

    let s = Server::start_in(dir, extra);
    let new_kubeconfig = std::fs::read_to_string(&s.kubeconfig).expect("kubeconfig");
    assert_eq!(
        ca_of(&old_kubeconfig),
        ca_of(&new_kubeconfig),
        "restart made a new cluster CA"
    );
    // Credentials from before the crash (CA and admin client certificate) still work.
    let old = s.data_dir().join("old-kubeconfig.yaml");
    std::fs::write(&old, retarget(&old_kubeconfig, s.port)).expect("write");
    let client = Client::from_kubeconfig(&old);

    let r = client
        .get(&format!("/api/v1/namespaces/{ns}/configmaps"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let list = r.json();
    let list_rv: i64 = list
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    assert!(
        list_rv >= acks.max_rv,
        "list resourceVersion {list_rv} behind acknowledged {}",
        acks.max_rv
    );
    let items: HashMap<String, Value> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|o| {
            (
                o["metadata"]["name"].as_str().unwrap_or("").to_string(),
                o.clone(),
            )
        })
        .collect();
    let mut lost = Vec::new();
    for (name, (uid, rv, data)) in &acks.created {
        match items.get(name) {
            None => lost.push(name.clone()),
            Some(o) => {
                assert_eq!(
                    o["metadata"]["uid"].as_str(),
                    Some(uid.as_str()),
                    "{name} uid"
                );
                assert_eq!(rv_of(o), *rv, "{name} resourceVersion changed");
                assert_eq!(&o["data"], data, "{name} data");
            }
        }
    }
    assert!(
        lost.is_empty(),
        "{} acknowledged creates lost: {lost:?}",
        lost.len()
    );
    let unacked = items
        .keys()
        .filter(|n| n.starts_with("cm-") && !acks.created.contains_key(*n))
        .count();
    eprintln!(
        "{} acknowledged creates and {} counters survived the kill ({} unacknowledged creates landed too)",
        acks.created.len(),
        acks.counters.len(),
        unacked
    );
    for (name, n) in &acks.counters {
        let stored: u64 = items[name]["data"]["n"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        // The one patch in flight at the kill may or may not have landed.
        assert!(
            stored == *n || stored == n + 1,
            "{name}: acknowledged {n}, stored {stored}"
        );
    }
    // New writes continue after every acknowledged revision.
    let cm =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "after-restart"}});
    let r = client
        .send(
            "POST",
            &format!("/api/v1/namespaces/{ns}/configmaps"),
            Some("application/json"),
            body(&cm),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert!(
        rv_of(&r.json()) > acks.max_rv,
        "resourceVersion went backwards after restart"
    );
    let log = s.log();
    assert!(!log.contains("panicked"), "{}", common::tail(&log, 40));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_during_write_burst_loses_nothing_sqlite() {
    burst_kill_restart(&[]).await;
}

/// An etcd for the server: a private one (the server writes unprefixed keys, so it should
/// not share an etcd with other tests), else the shared test etcd.
async fn etcd_endpoint() -> String {
    use r8s_store::etcd::testing;
    let eps = match testing::private_endpoints().await {
        Ok(eps) => eps,
        Err(private) => testing::test_endpoints()
            .await
            .unwrap_or_else(|e| panic!("no etcd for the test: {private}; {e}")),
    };
    eps.join(",")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_during_write_burst_loses_nothing_etcd() {
    let endpoint = etcd_endpoint().await;
    burst_kill_restart(&["--datastore-endpoint", &endpoint]).await;
}
