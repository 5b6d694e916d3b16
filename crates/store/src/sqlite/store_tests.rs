//! Tests of the assembled store: group commit, failure isolation, cancellation, disk full,
//! watch catch-up, reopening, automatic and resumed compaction.

use super::*;
use crate::testsuite::next_event;
use futures::StreamExt;

fn quiet_opts() -> Options {
    Options {
        compact_interval: None,
        ..Options::default()
    }
}

async fn open_in(dir: &Path, opts: Options) -> SqliteStore {
    SqliteStore::open(&dir.join("state.db"), opts)
        .await
        .expect("open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_failing_write_does_not_fail_its_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Arc::new(open_in(dir.path(), quiet_opts()).await);
    // A database-level failure for one key: the trigger aborts its insert.
    let admin = rusqlite::Connection::open(s.path()).expect("admin connection");
    admin
        .execute_batch(
            "CREATE TRIGGER boom BEFORE INSERT ON kv WHEN NEW.name = '/boom' \
             BEGIN SELECT RAISE(ABORT, 'boom'); END;",
        )
        .expect("trigger");
    drop(admin);
    s.create("/dup", b"0".to_vec(), None).await.expect("create");

    let mut tasks = Vec::new();
    for i in 0..40 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let key = match i {
                0 => "/boom".to_string(),
                i if i % 4 == 0 => "/dup".to_string(),
                i => format!("/ok/{i}"),
            };
            (key.clone(), s.create(&key, b"v".to_vec(), None).await)
        }));
    }
    for t in tasks {
        let (key, result) = t.await.expect("task");
        match key.as_str() {
            "/boom" => assert!(matches!(result, Err(Error::Internal(_))), "{result:?}"),
            "/dup" => assert!(matches!(result, Err(Error::AlreadyExists(_))), "{result:?}"),
            _ => assert!(result.is_ok(), "{key}: {result:?}"),
        }
    }
    assert_eq!(s.count("/ok/").await.expect("count"), 30);
    assert!(s.get("/boom", 0).await.expect("get").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_write_is_all_or_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = open_in(dir.path(), quiet_opts()).await;
    for i in 0..50 {
        let key = format!("/c/{i}");
        let fut = s.create(&key, vec![7; 1000], None);
        // Polled once (sends the request), then dropped before the answer.
        let _ = tokio::time::timeout(Duration::ZERO, fut).await;
    }
    // Whatever was sent is applied whole; a later write sees a consistent store.
    let rev = s
        .create("/c/last", b"x".to_vec(), None)
        .await
        .expect("create");
    let all = s.list("/c/", ListOptions::default()).await.expect("list");
    for kv in all.items.iter().filter(|kv| kv.key != "/c/last") {
        assert_eq!(kv.value, vec![7; 1000]);
        assert!(kv.mod_revision < rev);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full_is_reported_and_nothing_is_half_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("full.db");
    let conn = schema::open_writer(&path, Duration::from_secs(1)).expect("open");
    schema::init_or_validate(&conn, &path).expect("init");
    let pages: i64 = conn
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .expect("pages");
    conn.pragma_update(None, "max_page_count", pages + 40)
        .expect("limit");
    let events = Arc::new(super::feed::Feed::new(16));
    let cfg = writer::Config {
        path: path.clone(),
        max_batch: 64,
        compact_step: 100,
        vacuum_pages: 10,
    };
    let w = Writer::start(conn, cfg, events, Arc::new(AtomicI64::new(0))).expect("writer");

    let mut stored = Vec::new();
    let full = loop {
        let key = format!("/big/{}", stored.len());
        match w
            .call(Op::Create {
                key: key.clone(),
                value: vec![1; 20_000],
                lease: 0,
            })
            .await
        {
            Ok(Reply::Revision(r)) => stored.push((key, r)),
            Ok(other) => panic!("{other:?}"),
            Err(e) => break e,
        }
        assert!(stored.len() < 1000, "the page limit never hit");
    };
    assert!(matches!(full, Error::DiskFull(_)), "{full:?}");
    drop(w);

    let s = SqliteStore::open(&path, quiet_opts())
        .await
        .expect("reopen");
    let kvs = s
        .list("/big/", ListOptions::default())
        .await
        .expect("list")
        .items;
    assert_eq!(
        kvs.len(),
        stored.len(),
        "exactly the acknowledged writes exist"
    );
    assert!(kvs.iter().all(|kv| kv.value.len() == 20_000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_watcher_catches_up_from_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = Options {
        watch_buffer: 16,
        ..quiet_opts()
    };
    let s = open_in(dir.path(), opts).await;
    let mut w = s.watch("/l/", 0).await.expect("watch");
    let mut revs = Vec::new();
    for i in 0..200 {
        revs.push(
            s.create(&format!("/l/{i:03}"), b"x".to_vec(), None)
                .await
                .expect("create"),
        );
    }
    for want in revs {
        assert_eq!(next_event(&mut w).await.revision(), want);
    }

    // Once the history it needs is compacted, a lagging watcher ends with `Compacted`.
    let mut w = s.watch("/l/", 0).await.expect("watch");
    for i in 0..100 {
        s.delete(&format!("/l/{i:03}"), None).await.expect("delete");
    }
    s.compact(s.current_revision().await.expect("rev"))
        .await
        .expect("compact");
    let mut ended = None;
    while let Some(item) = w.next().await {
        if let Err(e) = item {
            ended = Some(e);
            break;
        }
    }
    assert!(matches!(ended, Some(Error::Compacted { .. })), "{ended:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_survives_reopen_and_foreign_files_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nested = dir.path().join("a/b/c");
    let s = open_in(&nested, quiet_opts()).await;
    let r = s.create("/k", b"v".to_vec(), None).await.expect("create");
    s.delete("/k", None).await.expect("delete");
    let lease = s.grant_lease(30).await.expect("lease");
    s.create("/leased", b"v".to_vec(), Some(lease))
        .await
        .expect("create");
    let before = s.current_revision().await.expect("rev");
    drop(s);

    let s = open_in(&nested, quiet_opts()).await;
    assert_eq!(s.current_revision().await.expect("rev"), before);
    assert_eq!(
        s.get("/k", r).await.expect("get").expect("old value").value,
        b"v"
    );
    s.keep_alive(lease).await.expect("leases survive a restart");
    drop(s);

    let garbage = dir.path().join("garbage.db");
    std::fs::write(
        &garbage,
        b"definitely not a database, just some text\n".repeat(200),
    )
    .expect("write");
    match SqliteStore::open(&garbage, quiet_opts()).await {
        Err(Error::Corrupt { path, .. }) => assert!(path.contains("garbage.db")),
        other => panic!("expected Corrupt, got {:?}", other.err()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_runs_periodically_and_resumes_after_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = Options {
        compact_interval: Some(Duration::from_millis(100)),
        compact_keep: 10,
        compact_step: 7,
        ..Options::default()
    };
    let s = open_in(dir.path(), opts).await;
    let mut rev = s.create("/k", b"0".to_vec(), None).await.expect("create");
    for i in 0..100 {
        rev = s
            .update("/k", i.to_string().into_bytes(), rev, None)
            .await
            .expect("update");
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while s.compacted_revision().await.expect("compacted") < rev - 10 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no automatic compaction"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(s);

    // Simulate a crash in the middle of a compaction: target recorded, cursor behind.
    let conn = rusqlite::Connection::open(dir.path().join("state.db")).expect("open");
    let rows = |c: &rusqlite::Connection| -> i64 {
        c.query_row("SELECT count(*) FROM kv", [], |r| r.get(0))
            .expect("count")
    };
    let cursor: i64 = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'compact_cursor'",
            [],
            |r| r.get(0),
        )
        .expect("cursor");
    conn.execute(
        "UPDATE meta SET value = ?1 WHERE key = 'compact_revision'",
        [rev],
    )
    .expect("target");
    assert!(rows(&conn) > 1);
    drop(conn);
    assert!(cursor < rev);

    let s = open_in(dir.path(), quiet_opts()).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let conn = rusqlite::Connection::open(dir.path().join("state.db")).expect("open");
        if rows(&conn) == 1 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "compaction did not resume"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(s.get("/k", 0).await.expect("get").expect("k").value, b"99");
}
