//! Snapshot save while writing, restore, reopen; refusal of bad snapshots and targets.

use r8s_store::sqlite::{Options, SqliteStore};
use r8s_store::{Error, ListOptions, Store, snapshot};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

fn opts() -> Options {
    Options {
        compact_interval: None,
        ..Options::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn save_while_writing_then_restore() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("server/db/state.db");
    let store = Arc::new(SqliteStore::open(&db, opts()).await.expect("open"));
    for i in 0..500 {
        store
            .create(&format!("/registry/pre/{i:04}"), vec![i as u8; 100], None)
            .await
            .expect("create");
    }
    let lease = store.grant_lease(60).await.expect("lease");
    store
        .create("/registry/leased", b"l".to_vec(), Some(lease))
        .await
        .expect("create");

    // Writers keep going while the snapshot is taken.
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4 {
        let (store, stop) = (store.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let key = format!("/registry/during/{w}/{n:05}");
                store
                    .create(&key, key.clone().into_bytes(), None)
                    .await
                    .expect("create during save");
                n += 1;
            }
            n
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let out = dir.path().join("backups/snap.db");
    snapshot::save(&db, &out).await.expect("save");
    stop.store(true, Ordering::Relaxed);
    let mut written = 0;
    for w in writers {
        written += w.await.expect("writer");
    }
    assert!(written > 0);

    // Restore into a new location and compare with the snapshot's own contents.
    let restored = dir.path().join("restored/server/db/state.db");
    snapshot::restore(&out, &restored).await.expect("restore");
    let r = SqliteStore::open(&restored, opts())
        .await
        .expect("open restored");
    let pre = r
        .list("/registry/pre/", ListOptions::default())
        .await
        .expect("list");
    assert_eq!(pre.items.len(), 500);
    for (i, kv) in pre.items.iter().enumerate() {
        assert_eq!(kv.value, vec![i as u8; 100]);
    }
    let rev = r.current_revision().await.expect("revision");
    let during = r
        .list("/registry/during/", ListOptions::default())
        .await
        .expect("list")
        .items;
    // A consistent cut: every restored key equals the original at the restored revision.
    let at_rev = store
        .list(
            "/registry/",
            ListOptions {
                revision: rev,
                ..Default::default()
            },
        )
        .await
        .expect("original at the snapshot revision");
    let all = r
        .list("/registry/", ListOptions::default())
        .await
        .expect("list")
        .items;
    assert_eq!(all, at_rev.items);
    assert!(during.iter().all(|kv| kv.value == kv.key.as_bytes()));
    r.keep_alive(lease).await.expect("leases are restored");
    // The restored store takes writes, continuing the revision sequence.
    assert!(
        r.create("/registry/new", b"n".to_vec(), None)
            .await
            .expect("create")
            > rev
    );

    // Restoring over an existing store is refused.
    match snapshot::restore(&out, &db).await {
        Err(Error::InvalidArgument(m)) => assert!(m.contains("already exists"), "{m}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn bad_snapshots_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let garbage = dir.path().join("garbage.snap");
    std::fs::write(&garbage, vec![0xAB; 10_000]).expect("write");
    let target = dir.path().join("db/state.db");
    match snapshot::restore(&garbage, &target).await {
        Err(Error::Corrupt { path, .. }) => assert!(path.contains("garbage.snap"), "{path}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert!(!target.exists(), "nothing is installed");

    // A valid SQLite file that is not an r8s store.
    let foreign = dir.path().join("foreign.snap");
    let conn = rusqlite::Connection::open(&foreign).expect("open");
    conn.execute_batch("CREATE TABLE kv (x); INSERT INTO kv VALUES (1);")
        .expect("create");
    drop(conn);
    match snapshot::restore(&foreign, &target).await {
        Err(Error::Corrupt { path, reason }) => {
            assert!(path.contains("foreign.snap"), "{path}");
            assert!(reason.contains("not an r8s datastore"), "{reason}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert!(!target.exists());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("db"))
        .expect("dir")
        .collect();
    assert!(
        leftovers.is_empty(),
        "temporary files are cleaned up: {leftovers:?}"
    );

    // A truncated snapshot of a real store.
    let db = dir.path().join("src/state.db");
    let store = SqliteStore::open(&db, opts()).await.expect("open");
    for i in 0..2000 {
        store
            .create(&format!("/registry/k/{i}"), vec![1; 200], None)
            .await
            .expect("create");
    }
    let snap = dir.path().join("good.snap");
    snapshot::save(&db, &snap).await.expect("save");
    let bytes = std::fs::read(&snap).expect("read");
    let truncated = dir.path().join("truncated.snap");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).expect("write");
    assert!(matches!(
        snapshot::restore(&truncated, &target).await,
        Err(Error::Corrupt { .. })
    ));

    // Saving something that is not a store fails too.
    assert!(matches!(
        snapshot::save(&garbage, &dir.path().join("x.snap")).await,
        Err(Error::Corrupt { .. })
    ));
    assert!(
        snapshot::save(&dir.path().join("missing.db"), &dir.path().join("y.snap"))
            .await
            .is_err()
    );
}
