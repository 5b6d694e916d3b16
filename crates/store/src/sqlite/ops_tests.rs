//! Unit tests of write operations, leases and compaction steps.

use super::*;
use crate::sqlite::log::tests::Db;
use crate::sqlite::log::{current_revision, history, list};
use crate::{EventKind, ListOptions};

fn lease_of(db: &Db, ttl_seconds: i64) -> LeaseId {
    match db.apply(Op::GrantLease { ttl_seconds }).expect("grant") {
        Reply::Lease(id) => id,
        other => panic!("{other:?}"),
    }
}

#[test]
fn preconditions_write_nothing() {
    let db = Db::new();
    let r1 = db.create("/k", "1");
    let before = db.rows();
    let rejected = [
        Op::Create {
            key: "/k".into(),
            value: vec![],
            lease: 0,
        },
        Op::Update {
            key: "/k".into(),
            value: vec![],
            expected: r1 + 7,
            lease: 0,
        },
        Op::Update {
            key: "/nope".into(),
            value: vec![],
            expected: r1,
            lease: 0,
        },
        Op::Delete {
            key: "/k".into(),
            expected: Some(r1 + 7),
        },
        Op::Delete {
            key: "/nope".into(),
            expected: None,
        },
        Op::Create {
            key: "/l".into(),
            value: vec![],
            lease: 12345,
        },
        Op::Update {
            key: "/k".into(),
            value: vec![],
            expected: r1,
            lease: 12345,
        },
    ];
    for op in rejected {
        let e = db.apply(op.clone()).expect_err("must be rejected");
        assert!(!crate::sqlite::schema::is_fatal(&e), "{op:?}: {e}");
    }
    assert_eq!(db.rows(), before);
    match db.apply(Op::Update {
        key: "/k".into(),
        value: vec![],
        expected: r1 + 7,
        lease: 0,
    }) {
        Err(Error::Conflict {
            current: Some(cur), ..
        }) => assert_eq!(cur.mod_revision, r1),
        other => panic!("{other:?}"),
    }
}

#[test]
fn written_events_match_replayed_events() {
    let db = Db::new();
    let lease = lease_of(&db, 60);
    let tx = db.conn.unchecked_transaction().expect("begin");
    let mut ctx = Ctx {
        conn: &tx,
        path: &db.path,
        rev: 0,
        now_ms: db.now_ms,
        events: Vec::new(),
    };
    let ops = [
        Op::Create {
            key: "/a".into(),
            value: b"1".to_vec(),
            lease,
        },
        Op::Update {
            key: "/a".into(),
            value: b"2".to_vec(),
            expected: 1,
            lease: 0,
        },
        Op::Delete {
            key: "/a".into(),
            expected: Some(2),
        },
        Op::Create {
            key: "/a".into(),
            value: b"3".to_vec(),
            lease: 0,
        },
    ];
    for op in &ops {
        apply(&mut ctx, op).expect("apply");
    }
    let live = ctx.events;
    tx.commit().expect("commit");
    let replayed: Vec<_> = history(&db.conn, &db.path, "", 0, 100)
        .expect("history")
        .into_iter()
        .map(|r| r.into_event())
        .collect();
    assert_eq!(live, replayed);
    assert_eq!(
        live[1].prev.as_ref().map(|p| p.lease),
        Some(lease),
        "prev keeps the old lease"
    );
    assert_eq!(live[2].kind, EventKind::Delete);
}

#[test]
fn leases_expire_and_delete_their_keys() {
    let mut db = Db::new();
    let short = lease_of(&db, 1);
    let long = lease_of(&db, 100);
    let op = |key: &str, lease| Op::Create {
        key: key.into(),
        value: b"v".to_vec(),
        lease,
    };
    db.apply(op("/s1", short)).expect("create");
    db.apply(op("/s2", short)).expect("create");
    db.apply(op("/l", long)).expect("create");
    db.apply(op("/none", 0)).expect("create");
    // /s2 moves to the long lease: it must survive the short one.
    db.apply(Op::Update {
        key: "/s2".into(),
        value: b"w".to_vec(),
        expected: 2,
        lease: long,
    })
    .expect("update");

    db.now_ms += 500;
    db.apply(Op::KeepAlive { lease: short })
        .expect("keep alive");
    db.now_ms += 900; // 1.4 s after grant, 0.9 s after renewal: alive
    db.apply(Op::ExpireLeases).expect("expire");
    assert_eq!(db.keys("/", 0), ["/l", "/none", "/s1", "/s2"]);

    db.now_ms += 200;
    let before = current_revision(&db.conn, &db.path).expect("rev");
    db.apply(Op::ExpireLeases).expect("expire");
    assert_eq!(db.keys("/", 0), ["/l", "/none", "/s2"]);
    let evs = history(&db.conn, &db.path, "/", before, 10).expect("history");
    assert_eq!(evs.len(), 1);
    assert!(evs[0].deleted && evs[0].name == "/s1" && evs[0].old_lease == short);
    assert!(matches!(
        db.apply(Op::KeepAlive { lease: short }),
        Err(Error::LeaseNotFound(_))
    ));
    assert!(matches!(
        db.apply(op("/x", short)),
        Err(Error::LeaseNotFound(_))
    ));
    assert!(matches!(
        db.apply(Op::GrantLease { ttl_seconds: 0 }),
        Err(Error::InvalidArgument(_))
    ));

    // After downtime the remaining lease gets a full TTL again.
    db.now_ms += 1_000_000;
    refresh_leases(&db.conn, &db.path, db.now_ms).expect("refresh");
    db.apply(Op::ExpireLeases).expect("expire");
    assert_eq!(db.keys("/", 0), ["/l", "/none", "/s2"]);
}

/// A small deterministic generator (no dependency needed for a test).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

fn snapshot_at(db: &Db, rev: Revision) -> Vec<(String, Vec<u8>, Revision, Revision)> {
    let opts = ListOptions {
        revision: rev,
        ..Default::default()
    };
    list(&db.conn, &db.path, "", &opts)
        .expect("list")
        .items
        .into_iter()
        .map(|kv| (kv.key, kv.value, kv.create_revision, kv.mod_revision))
        .collect()
}

#[test]
fn compaction_keeps_every_state_at_and_after_its_revision() {
    let db = Db::new();
    let mut rng = Lcg(7);
    for i in 0..600 {
        let key = format!("/k{}", rng.next(25));
        let cur = log::latest(&db.conn, &db.path, &key, Revision::MAX).expect("latest");
        match cur.filter(|r| !r.deleted) {
            None => _ = db.create(&key, &i.to_string()),
            Some(_) if rng.next(3) == 0 => _ = db.delete(&key),
            Some(r) => _ = db.update(&key, &i.to_string(), r.id),
        }
    }
    let current = current_revision(&db.conn, &db.path).expect("rev");
    let mut cursor = 0;
    for target in [150, 151, 400, current] {
        let states: Vec<_> = (target..=current).map(|r| snapshot_at(&db, r)).collect();
        let later = history(&db.conn, &db.path, "", target, 10_000).expect("history");
        log::set_meta_int(&db.conn, &db.path, meta::COMPACT_REVISION, target).expect("meta");
        while cursor < target {
            cursor = compact_step(&db.conn, &db.path, cursor, target, 37).expect("step");
        }
        let after: Vec<_> = (target..=current).map(|r| snapshot_at(&db, r)).collect();
        assert_eq!(states, after, "states at revisions >= {target} survive");
        assert_eq!(
            history(&db.conn, &db.path, "", target, 10_000).expect("history"),
            later
        );
        // Nothing but the state at `target` is left at or below it.
        let at_or_below = db.rows().iter().filter(|(id, _, _)| *id <= target).count();
        assert_eq!(
            at_or_below,
            snapshot_at(&db, target)
                .iter()
                .filter(|kv| kv.3 <= target)
                .count()
        );
        assert!(
            db.rows()
                .iter()
                .all(|(id, _, deleted)| *id > target || !deleted),
            "no old tombstones"
        );
    }
    assert_eq!(current_revision(&db.conn, &db.path).expect("rev"), current);
    // New writes after full compaction, including re-creating deleted keys.
    for k in 0..25 {
        let key = format!("/k{k}");
        match log::latest(&db.conn, &db.path, &key, Revision::MAX).expect("latest") {
            Some(r) if !r.deleted => _ = db.update(&key, "z", r.id),
            _ => _ = db.create(&key, "z"),
        }
    }
    assert_eq!(snapshot_at(&db, 0).len(), 25);
}
