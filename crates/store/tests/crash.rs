//! kill -9 test: every write acknowledged before the process dies is on disk afterwards.
//!
//! The parent test re-runs this test binary as a child (`R8S_CRASH_CHILD=<db path>`, only
//! the child test). The child writes with 32 concurrent writers and prints `ACK <key>
//! <revision>` after each create returned Ok. The parent SIGKILLs it after enough acks,
//! reopens the database and checks every acknowledged key.

use r8s_store::Store;
use r8s_store::sqlite::{Options, SqliteStore};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "R8S_CRASH_CHILD";
const WRITERS: usize = 32;
const KILL_AFTER_ACKS: usize = 2000;

fn value_of(key: &str) -> Vec<u8> {
    format!("value of {key}").into_bytes()
}

/// The child: writes until killed. Does nothing in a normal test run.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crash_child() {
    let Ok(db) = std::env::var(CHILD_ENV) else {
        return;
    };
    let opts = Options {
        compact_interval: None,
        ..Options::default()
    };
    let store = std::sync::Arc::new(SqliteStore::open(db.as_ref(), opts).await.expect("open"));
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0.. {
                let key = format!("/registry/crash/{w:02}/{i:06}");
                let rev = store
                    .create(&key, value_of(&key), None)
                    .await
                    .expect("create");
                let mut out = std::io::stdout().lock();
                writeln!(out, "ACK {key} {rev}")
                    .and_then(|_| out.flush())
                    .expect("stdout");
            }
        }));
    }
    for t in tasks {
        t.await.expect("writer");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_keeps_acknowledged_writes() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("server/db/state.db");
    let mut child = Command::new(std::env::current_exe().expect("current exe"))
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, &db)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("child stdout");

    // Read acks on a thread; the main thread kills the child once enough arrived.
    let (tx, rx) = std::sync::mpsc::channel::<(String, i64)>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let mut parts = line.split_whitespace();
            if parts.next() != Some("ACK") {
                continue;
            }
            let (Some(key), Some(rev)) = (parts.next(), parts.next()) else {
                panic!("torn ack line {line:?}");
            };
            let rev = rev.parse().expect("revision");
            if tx.send((key.to_string(), rev)).is_err() {
                break;
            }
        }
    });

    let mut acked = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(180);
    while acked.len() < KILL_AFTER_ACKS {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(ack) => acked.push(ack),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                if let Ok(Some(status)) = child.try_wait() {
                    let mut err = String::new();
                    if let Some(mut e) = child.stderr.take() {
                        let _ = std::io::Read::read_to_string(&mut e, &mut err);
                    }
                    panic!(
                        "child exited early ({status}) after {} acks:\n{err}",
                        acked.len()
                    );
                }
                assert!(
                    Instant::now() < deadline,
                    "only {} acks in time",
                    acked.len()
                );
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    child.kill().expect("SIGKILL the child"); // Child::kill sends SIGKILL on Unix
    let status = child.wait().expect("wait");
    assert!(!status.success(), "the child must have been killed");
    reader.join().expect("reader thread");
    // Acks printed before the kill are still in the pipe: they count too.
    acked.extend(rx.try_iter());
    assert!(acked.len() >= KILL_AFTER_ACKS);

    let store = SqliteStore::open(
        &db,
        Options {
            compact_interval: None,
            ..Options::default()
        },
    )
    .await
    .expect("reopen after kill -9");
    let mut max_rev = 0;
    for (key, rev) in &acked {
        let kv = store
            .get(key, 0)
            .await
            .expect("get")
            .unwrap_or_else(|| panic!("acknowledged {key} lost"));
        assert_eq!(kv.value, value_of(key));
        assert_eq!(kv.mod_revision, *rev, "{key}");
        max_rev = max_rev.max(*rev);
    }
    let current = store.current_revision().await.expect("revision");
    assert!(current >= max_rev);
    // The store keeps working, with revisions continuing upwards.
    let rev = store
        .create("/registry/after-crash", b"x".to_vec(), None)
        .await
        .expect("write after crash");
    assert!(rev > current);
    let total = store.count("/registry/crash/").await.expect("count");
    assert!(total >= acked.len() as i64);
    eprintln!(
        "{} acknowledged writes, {total} on disk after kill -9",
        acked.len()
    );
}
