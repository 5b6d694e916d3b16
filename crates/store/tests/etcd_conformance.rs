//! The shared conformance suite against the etcd backend.
//!
//! etcd comes from `R8S_TEST_ETCD_ENDPOINTS` (CI) or, if unset, a private etcd started for
//! this test process; if neither works the tests fail. Every check gets a store under its
//! own root prefix. Compaction is cluster-wide, so the checks that compact always run on a
//! private etcd of this process: they cannot disturb other processes sharing CI's etcd.

use r8s_store::etcd::testing::{private_endpoints, test_endpoints, unique_prefix};
use r8s_store::etcd::{EtcdStore, Options};
use r8s_store::{DynStore, Error, Store};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Checks that compact; they get the process-private etcd.
const COMPACTING: &[&str] = &["compact_keeps_latest", "watch_compacted"];

async fn store_for(check: &str) -> DynStore {
    let endpoints = if COMPACTING.contains(&check) {
        private_endpoints().await
    } else {
        test_endpoints().await
    }
    .unwrap_or_else(|e| panic!("no etcd for the conformance tests: {e}"));
    let opts = Options {
        prefix: unique_prefix(check),
        ..Default::default()
    };
    let store = EtcdStore::connect(&endpoints, opts)
        .await
        .unwrap_or_else(|e| panic!("connect to etcd at {endpoints:?}: {e}"));
    Arc::new(store)
}

macro_rules! etcd_checks {
    (; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let store = store_for(stringify!($name)).await;
                r8s_store::testsuite::$name(store).await;
            }
        )*
    };
}

r8s_store::__for_each_check!([etcd_checks]);

/// An unreachable endpoint fails quickly with `Unavailable` naming it (no hang).
#[tokio::test]
async fn connect_unreachable_fails_fast() {
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}", l.local_addr().expect("addr"))
    };
    let opts = Options {
        connect_timeout: Duration::from_secs(1),
        ..Default::default()
    };
    let started = Instant::now();
    match EtcdStore::connect(std::slice::from_ref(&dead), opts).await {
        Err(Error::Unavailable(msg)) => assert!(msg.contains(&dead), "{msg}"),
        other => panic!("expected Unavailable, got {:?}", other.map(|_| ())),
    }
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// Keys are stored under the root prefix and stores with different prefixes are isolated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_prefix_isolates_stores() {
    let endpoints = test_endpoints().await.expect("etcd");
    let prefix = unique_prefix("iso");
    let a = EtcdStore::connect(
        &endpoints,
        Options {
            prefix: format!("{prefix}/a"),
            ..Default::default()
        },
    )
    .await
    .expect("connect a");
    let b = EtcdStore::connect(
        &endpoints,
        Options {
            prefix: format!("{prefix}/b"),
            ..Default::default()
        },
    )
    .await
    .expect("connect b");
    a.create("/registry/x", b"1".to_vec(), None)
        .await
        .expect("create");
    assert!(b.get("/registry/x", 0).await.expect("get").is_none());
    assert_eq!(b.count("/registry/").await.expect("count"), 0);

    let mut raw = a.client().clone();
    let got = raw
        .get(format!("{prefix}/a/registry/x"), None)
        .await
        .expect("raw get");
    assert_eq!(
        got.kvs().first().map(|kv| kv.value().to_vec()),
        Some(b"1".to_vec())
    );
}

/// A watch whose etcd watcher is cancelled server-side ends with an error item.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_ends_with_error_when_etcd_goes_away() {
    use futures::StreamExt;
    let etcd = r8s_store::etcd::testing::EtcdProcess::spawn()
        .await
        .expect("private etcd");
    let store = EtcdStore::connect(
        &[etcd.endpoint().to_string()],
        Options {
            request_timeout: Duration::from_secs(3),
            ..Default::default()
        },
    )
    .await
    .expect("connect");
    let mut w = store.watch("/registry/", 0).await.expect("watch");
    drop(etcd);
    match tokio::time::timeout(Duration::from_secs(20), w.next()).await {
        Ok(Some(Err(e))) => assert!(matches!(e, Error::Unavailable(_)), "{e}"),
        other => panic!("expected an error item, got {other:?}"),
    }
    assert!(w.next().await.is_none(), "the stream ends after the error");
}
