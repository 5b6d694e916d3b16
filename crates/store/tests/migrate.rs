//! `datastore migrate`: copying a store into etcd keeps every live key byte-identical,
//! refuses a non-empty target unless forced, and re-creates leases.

use futures::StreamExt;
use r8s_store::etcd::testing::{test_endpoints, unique_prefix};
use r8s_store::etcd::{EtcdStore, Options};
use r8s_store::migrate::{MigrateOptions, MigrateProgress, migrate};
use r8s_store::sqlite::SqliteStore;
use r8s_store::{DynStore, Error, KeyValue, ListOptions};
use std::sync::Arc;

const KEYS: usize = 3000;

async fn etcd_store(tag: &str) -> DynStore {
    let endpoints = test_endpoints()
        .await
        .unwrap_or_else(|e| panic!("no etcd for the migration tests: {e}"));
    let opts = Options {
        prefix: unique_prefix(tag),
        ..Default::default()
    };
    Arc::new(
        EtcdStore::connect(&endpoints, opts)
            .await
            .expect("connect to etcd"),
    )
}

/// A value that differs per key and exercises every byte value.
fn value(i: usize) -> Vec<u8> {
    let mut v = format!("{{\"kind\":\"ConfigMap\",\"n\":{i}}}").into_bytes();
    v.extend((0..=255u8).map(|b| b.wrapping_add(i as u8)));
    v.extend(std::iter::repeat_n(b'x', i % 700));
    v
}

/// Fill `s` with `KEYS` keys (some updated, some deleted, a few leased) plus one key
/// outside `/registry/`.
async fn populate(s: &DynStore) {
    futures::stream::iter(0..KEYS)
        .map(|i| {
            let s = s.clone();
            async move {
                let key = format!("/registry/configmaps/ns{}/cm{i:05}", i % 7);
                let rev = s.create(&key, value(i), None).await.expect("create");
                if i % 10 == 0 {
                    s.update(&key, value(i + 1), rev, None)
                        .await
                        .expect("update");
                }
                if i % 25 == 0 {
                    s.delete(&key, None).await.expect("delete");
                }
            }
        })
        .buffer_unordered(64)
        .collect::<Vec<()>>()
        .await;
    let lease = s.grant_lease(600).await.expect("grant");
    for i in 0..5 {
        let key = format!("/registry/events/default/ev{i}");
        s.create(&key, value(i), Some(lease))
            .await
            .expect("leased create");
    }
    s.create("/r8s/meta", b"outside registry".to_vec(), None)
        .await
        .expect("create meta");
}

async fn all(s: &DynStore) -> Vec<KeyValue> {
    let mut out = Vec::new();
    let mut opts = ListOptions {
        limit: 1000,
        ..Default::default()
    };
    loop {
        let page = s.list("", opts.clone()).await.expect("list");
        out.extend(page.items);
        if !page.more {
            return out;
        }
        opts.revision = page.revision;
        opts.start_after = out.last().map(|kv| kv.key.clone());
    }
}

async fn check_migration(from: DynStore, to: DynStore) {
    populate(&from).await;
    let mut seen = Vec::new();
    let report = migrate(
        from.as_ref(),
        to.as_ref(),
        &MigrateOptions::default(),
        &mut |p: MigrateProgress| seen.push(p),
    )
    .await
    .expect("migrate");

    let (src, dst) = (all(&from).await, all(&to).await);
    let live = KEYS - KEYS.div_ceil(25) + 5 + 1;
    assert_eq!(src.len(), live);
    assert_eq!(report.keys, live as u64);
    assert_eq!(
        (report.leased_keys, report.leases, report.overwritten),
        (5, 1, 0)
    );
    assert_eq!(
        report.bytes,
        src.iter().map(|kv| kv.value.len() as u64).sum::<u64>()
    );
    assert_eq!(dst.len(), src.len());
    for (a, b) in src.iter().zip(&dst) {
        assert_eq!(a.key, b.key);
        assert!(a.value == b.value, "value of {} differs", a.key);
        assert_eq!(a.lease != 0, b.lease != 0, "lease of {}", a.key);
    }
    let last = seen.last().expect("progress was reported");
    assert_eq!((last.copied, last.total), (live as u64, live as u64));
    assert!(seen.windows(2).all(|w| w[0].copied < w[1].copied));

    // A second run refuses: the target is no longer empty.
    match migrate(
        from.as_ref(),
        to.as_ref(),
        &MigrateOptions::default(),
        &mut |_| {},
    )
    .await
    {
        Err(Error::InvalidArgument(msg)) => assert!(msg.contains("/registry/"), "{msg}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    // Forced, it overwrites in place: same contents, every key counted as overwritten.
    let cur = to
        .get("/registry/configmaps/ns1/cm00001", 0)
        .await
        .expect("get")
        .expect("cm1");
    to.update(
        "/registry/configmaps/ns1/cm00001",
        b"changed".to_vec(),
        cur.mod_revision,
        None,
    )
    .await
    .expect("update");
    let forced = MigrateOptions {
        force: true,
        ..Default::default()
    };
    let report = migrate(from.as_ref(), to.as_ref(), &forced, &mut |_| {})
        .await
        .expect("forced migrate");
    assert_eq!(report.overwritten, live as u64);
    let again = all(&to).await;
    assert_eq!(again.len(), src.len());
    assert!(
        src.iter()
            .zip(&again)
            .all(|(a, b)| a.key == b.key && a.value == b.value)
    );
}

/// The real use: the embedded SQLite store into etcd.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_to_etcd() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = SqliteStore::open(&dir.path().join("state.db"), Default::default())
        .await
        .expect("open sqlite");
    check_migration(Arc::new(sqlite), etcd_store("migrate-dst").await).await;
}

/// etcd to etcd (another root prefix) works the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn etcd_to_etcd() {
    check_migration(
        etcd_store("migrate-src").await,
        etcd_store("migrate-dst").await,
    )
    .await;
}

/// Keys outside `/registry/` in the target do not block a migration; a refusal writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusal_writes_nothing() {
    let (from, to) = (etcd_store("ref-src").await, etcd_store("ref-dst").await);
    from.create("/registry/a", b"a".to_vec(), None)
        .await
        .expect("create");
    to.create("/other/x", b"x".to_vec(), None)
        .await
        .expect("create");
    migrate(
        from.as_ref(),
        to.as_ref(),
        &MigrateOptions::default(),
        &mut |_| {},
    )
    .await
    .expect("only /registry/ keys block");

    let fresh = etcd_store("ref-dst2").await;
    fresh
        .create("/registry/z", b"z".to_vec(), None)
        .await
        .expect("create");
    from.create("/registry/b", b"b".to_vec(), None)
        .await
        .expect("create");
    assert!(
        migrate(
            from.as_ref(),
            fresh.as_ref(),
            &MigrateOptions::default(),
            &mut |_| {}
        )
        .await
        .is_err()
    );
    assert_eq!(
        fresh.count("").await.expect("count"),
        1,
        "nothing was written"
    );
}
