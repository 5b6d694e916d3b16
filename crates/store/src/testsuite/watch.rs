//! Conformance checks for watch, compaction and leases.

use super::{exclusive_history, expect_quiet, next_event, shared_history};
use crate::{DynStore, Error, EventKind, ListOptions, Revision, WatchEvent, WatchStream};
use futures::StreamExt;
use std::collections::BTreeSet;
use std::time::Duration;

fn v(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

/// Collects events of `w` until every revision in `want` was seen; asserts revisions
/// strictly increase (no duplicates, order kept) and nothing unexpected shows up.
async fn collect_revisions(w: &mut WatchStream, want: &BTreeSet<Revision>) -> Vec<WatchEvent> {
    let mut got = Vec::new();
    let mut last = 0;
    while got.len() < want.len() {
        let ev = next_event(w).await;
        assert!(
            ev.revision() > last,
            "watch revisions must strictly increase: {} after {last}",
            ev.revision()
        );
        assert!(
            want.contains(&ev.revision()),
            "unexpected event at {}: {ev:?}",
            ev.revision()
        );
        last = ev.revision();
        got.push(ev);
    }
    got
}

/// A first write outside the watched prefixes, so that "the revision before my first
/// write" is never 0 (which `watch` reads as "from now").
async fn warm_up(s: &DynStore) -> Revision {
    s.create("/registry/warm-up", v("x"), None)
        .await
        .expect("warm-up create")
}

/// `watch(prefix, 0)` starts from now: earlier writes are not replayed.
pub async fn watch_from_now(s: DynStore) {
    let _h = shared_history().await;
    s.create("/registry/w/old", v("old"), None)
        .await
        .expect("create");
    let mut w = s.watch("/registry/w/", 0).await.expect("watch");
    let rev = s
        .create("/registry/w/new", v("new"), None)
        .await
        .expect("create");
    let ev = next_event(&mut w).await;
    assert_eq!(ev.kind, EventKind::Put);
    assert_eq!(
        (ev.kv.key.as_str(), ev.kv.value.as_slice()),
        ("/registry/w/new", &b"new"[..])
    );
    assert_eq!(
        (ev.kv.mod_revision, ev.kv.create_revision, ev.revision()),
        (rev, rev, rev)
    );
    assert!(ev.prev.is_none(), "a create has no previous value");
    expect_quiet(&mut w, Duration::from_millis(300)).await;
}

/// A watch from a past revision replays history after it, then continues live.
pub async fn watch_from_past_revision(s: DynStore) {
    let _h = shared_history().await;
    warm_up(&s).await;
    let r1 = s
        .create("/registry/h/a", v("1"), None)
        .await
        .expect("create");
    let r2 = s
        .update("/registry/h/a", v("2"), r1, None)
        .await
        .expect("update");
    let r3 = s
        .create("/registry/h/b", v("b"), None)
        .await
        .expect("create");
    let (_, r4) = s.delete("/registry/h/a", None).await.expect("delete");

    let mut w = s.watch("/registry/h/", r1).await.expect("watch");
    let r5 = s
        .create("/registry/h/c", v("c"), None)
        .await
        .expect("create");
    let got = collect_revisions(&mut w, &[r2, r3, r4, r5].into()).await;
    let kinds: Vec<_> = got.iter().map(|e| (e.kv.key.as_str(), e.kind)).collect();
    assert_eq!(
        kinds,
        [
            ("/registry/h/a", EventKind::Put),
            ("/registry/h/b", EventKind::Put),
            ("/registry/h/a", EventKind::Delete),
            ("/registry/h/c", EventKind::Put),
        ]
    );
    expect_quiet(&mut w, Duration::from_millis(300)).await;

    // From just before the first write: the create is replayed too.
    let mut w = s.watch("/registry/h/", r1 - 1).await.expect("watch");
    let ev = next_event(&mut w).await;
    assert_eq!((ev.revision(), ev.kv.value.as_slice()), (r1, &b"1"[..]));
}

/// Updates and deletes carry the previous value; deletes report the delete's revision.
pub async fn watch_prev_values(s: DynStore) {
    let _h = shared_history().await;
    warm_up(&s).await;
    let base = s.current_revision().await.expect("current");
    let r1 = s
        .create("/registry/pv/k", v("1"), None)
        .await
        .expect("create");
    let r2 = s
        .update("/registry/pv/k", v("2"), r1, None)
        .await
        .expect("update");
    let (_, r3) = s.delete("/registry/pv/k", Some(r2)).await.expect("delete");
    let r4 = s
        .create("/registry/pv/k", v("3"), None)
        .await
        .expect("re-create");

    for mut w in [
        s.watch("/registry/pv/", base)
            .await
            .expect("watch from history"),
        s.watch("/registry/pv/", r1 - 1)
            .await
            .expect("watch from history"),
    ] {
        let got = collect_revisions(&mut w, &[r1, r2, r3, r4].into()).await;
        assert!(got[0].prev.is_none());

        let up = &got[1];
        assert_eq!(
            (up.kind, up.kv.value.as_slice(), up.kv.create_revision),
            (EventKind::Put, &b"2"[..], r1)
        );
        let prev = up.prev.as_ref().expect("an update carries prev");
        assert_eq!(
            (
                prev.value.as_slice(),
                prev.mod_revision,
                prev.create_revision
            ),
            (&b"1"[..], r1, r1)
        );

        let del = &got[2];
        assert_eq!(
            (del.kind, del.kv.key.as_str(), del.kv.mod_revision),
            (EventKind::Delete, "/registry/pv/k", r3)
        );
        assert!(del.kv.value.is_empty());
        let prev = del.prev.as_ref().expect("a delete carries prev");
        assert_eq!(
            (
                prev.value.as_slice(),
                prev.mod_revision,
                prev.create_revision
            ),
            (&b"2"[..], r2, r1)
        );

        let re = &got[3];
        assert_eq!(
            (re.kind, re.kv.create_revision, re.kv.value.as_slice()),
            (EventKind::Put, r4, &b"3"[..])
        );
        assert!(re.prev.is_none(), "a re-create is a create");
    }

    // Live events carry the same information as replayed ones.
    let mut w = s.watch("/registry/pv/", 0).await.expect("watch");
    let (_, r5) = s.delete("/registry/pv/k", None).await.expect("delete");
    let ev = next_event(&mut w).await;
    assert_eq!((ev.kind, ev.revision()), (EventKind::Delete, r5));
    let prev = ev.prev.expect("prev");
    assert_eq!((prev.value.as_slice(), prev.mod_revision), (&b"3"[..], r4));
}

/// A watch sees only keys under its prefix.
pub async fn watch_prefix_isolation(s: DynStore) {
    let _h = shared_history().await;
    let mut w = s.watch("/registry/pods/", 0).await.expect("watch");
    s.create("/registry/podsx", v("x"), None)
        .await
        .expect("create");
    s.create("/registry/svc/a", v("x"), None)
        .await
        .expect("create");
    let rev = s
        .create("/registry/pods/a", v("x"), None)
        .await
        .expect("create");
    let ev = next_event(&mut w).await;
    assert_eq!(
        (ev.kv.key.as_str(), ev.revision()),
        ("/registry/pods/a", rev)
    );
    expect_quiet(&mut w, Duration::from_millis(300)).await;
}

/// Concurrent writers: a live watch and a watch started from the past while writes go on
/// both see every write exactly once, in revision order.
pub async fn watch_concurrent_no_gaps_no_dupes(s: DynStore) {
    let _h = shared_history().await;
    warm_up(&s).await;
    let base = s.current_revision().await.expect("current");
    let mut live = s.watch("/registry/cw/", 0).await.expect("watch");
    let mut writers = Vec::new();
    for w in 0..8 {
        let s = s.clone();
        writers.push(tokio::spawn(async move {
            let mut revs = Vec::new();
            for i in 0..30 {
                let k = format!("/registry/cw/{w}/{}", i % 10);
                let r = match s.get(&k, 0).await.expect("get") {
                    None => s.create(&k, v("c"), None).await.expect("create"),
                    Some(kv) if i % 3 == 0 => {
                        s.delete(&k, Some(kv.mod_revision)).await.expect("delete").1
                    }
                    Some(kv) => s
                        .update(&k, v(&i.to_string()), kv.mod_revision, None)
                        .await
                        .expect("update"),
                };
                revs.push(r);
            }
            revs
        }));
    }
    // Start a second watch from the past while the writers run, to exercise the hand-over
    // from history to live events.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut late = s
        .watch("/registry/cw/", base)
        .await
        .expect("watch from past");

    let mut want = BTreeSet::new();
    for t in writers {
        want.extend(t.await.expect("writer"));
    }
    assert_eq!(want.len(), 240);
    let a = collect_revisions(&mut live, &want).await;
    let b = collect_revisions(&mut late, &want).await;
    assert_eq!(a, b, "both watches see identical events");
    expect_quiet(&mut live, Duration::from_millis(200)).await;
    expect_quiet(&mut late, Duration::from_millis(200)).await;
}

/// After a compaction, latest values are kept, reads below it fail with `Compacted`, reads
/// at it still work.
pub async fn compact_keeps_latest(s: DynStore) {
    let _h = exclusive_history().await;
    let r1 = s
        .create("/registry/k/a", v("a1"), None)
        .await
        .expect("create");
    let r2 = s
        .update("/registry/k/a", v("a2"), r1, None)
        .await
        .expect("update");
    let rb = s
        .create("/registry/k/b", v("b1"), None)
        .await
        .expect("create");
    s.create("/registry/k/gone", v("g"), None)
        .await
        .expect("create");
    s.delete("/registry/k/gone", None).await.expect("delete");
    let rc = s
        .create("/registry/k/c", v("c1"), None)
        .await
        .expect("create");
    let rc2 = s
        .update("/registry/k/c", v("c2"), rc, None)
        .await
        .expect("update");
    let at = rc;

    let future = s.current_revision().await.expect("current") + 1_000_000;
    assert!(matches!(
        s.compact(future).await,
        Err(Error::FutureRevision(_))
    ));
    s.compact(at).await.expect("compact");
    assert!(s.compacted_revision().await.expect("compacted") >= at);

    let latest: Vec<_> = s
        .list("/registry/k/", ListOptions::default())
        .await
        .expect("list")
        .items
        .into_iter()
        .map(|kv| (kv.key, kv.value, kv.mod_revision))
        .collect();
    assert_eq!(
        latest,
        [
            ("/registry/k/a".to_string(), v("a2"), r2),
            ("/registry/k/b".to_string(), v("b1"), rb),
            ("/registry/k/c".to_string(), v("c2"), rc2),
        ]
    );
    let kv = s.get("/registry/k/a", 0).await.expect("get").expect("a");
    assert_eq!(
        kv.create_revision, r1,
        "create revision survives compaction"
    );

    // At the compacted revision itself the state is still readable.
    let at_rev = s
        .list(
            "/registry/k/",
            ListOptions {
                revision: at,
                ..Default::default()
            },
        )
        .await
        .expect("list at the compacted revision");
    let vals: Vec<_> = at_rev.items.iter().map(|kv| kv.value.clone()).collect();
    assert_eq!(vals, [v("a2"), v("b1"), v("c1")]);

    let below = ListOptions {
        revision: at - 1,
        ..Default::default()
    };
    assert!(matches!(
        s.list("/registry/k/", below).await,
        Err(Error::Compacted { .. })
    ));
    assert!(matches!(
        s.get("/registry/k/a", r1).await,
        Err(Error::Compacted { .. })
    ));

    // Writes continue normally on compacted keys.
    s.update("/registry/k/a", v("a3"), r2, None)
        .await
        .expect("update after compaction");
    s.delete("/registry/k/b", Some(rb))
        .await
        .expect("delete after compaction");
    s.create("/registry/k/gone", v("again"), None)
        .await
        .expect("re-create after compaction");
    assert_eq!(s.count("/registry/k/").await.expect("count"), 3);
}

/// A watch from below the compacted revision fails with `Compacted`; from the compacted
/// revision on it works.
pub async fn watch_compacted(s: DynStore) {
    let _h = exclusive_history().await;
    warm_up(&s).await;
    let r1 = s
        .create("/registry/wc/a", v("1"), None)
        .await
        .expect("create");
    let r2 = s
        .update("/registry/wc/a", v("2"), r1, None)
        .await
        .expect("update");
    let r3 = s
        .update("/registry/wc/a", v("3"), r2, None)
        .await
        .expect("update");
    s.compact(r3).await.expect("compact");

    match s.watch("/registry/wc/", r1 - 1).await {
        Err(Error::Compacted { .. }) => {}
        Err(e) => panic!("expected Compacted, got {e}"),
        Ok(mut w) => match tokio::time::timeout(super::EVENT_TIMEOUT, w.next()).await {
            Ok(Some(Err(Error::Compacted { .. }))) => {}
            other => panic!("expected a Compacted error item, got {other:?}"),
        },
    }
    let mut w = s
        .watch("/registry/wc/", r3)
        .await
        .expect("watch at the compacted revision");
    let r4 = s
        .update("/registry/wc/a", v("4"), r3, None)
        .await
        .expect("update");
    let ev = next_event(&mut w).await;
    assert_eq!(ev.revision(), r4);
    assert_eq!(ev.prev.expect("prev").value, b"3");
}

/// Unknown leases are rejected.
pub async fn lease_unknown(s: DynStore) {
    let _h = shared_history().await;
    let bogus = 0x5eed_0000_1234;
    assert!(matches!(
        s.keep_alive(bogus).await,
        Err(Error::LeaseNotFound(_))
    ));
    assert!(matches!(
        s.create("/registry/lu", v("x"), Some(bogus)).await,
        Err(Error::LeaseNotFound(_))
    ));
    assert!(s.get("/registry/lu", 0).await.expect("get").is_none());
    assert!(matches!(
        s.grant_lease(0).await,
        Err(Error::InvalidArgument(_))
    ));
}

/// A kept-alive lease keeps its keys; keys record their lease.
pub async fn lease_keep_alive(s: DynStore) {
    let _h = shared_history().await;
    let lease = s.grant_lease(3).await.expect("grant");
    let r = s
        .create("/registry/la", v("x"), Some(lease))
        .await
        .expect("create");
    assert_eq!(
        s.get("/registry/la", 0)
            .await
            .expect("get")
            .expect("la")
            .lease,
        lease
    );
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        s.keep_alive(lease).await.expect("keep alive");
    }
    let kv = s
        .get("/registry/la", 0)
        .await
        .expect("get")
        .expect("kept alive");
    assert_eq!(kv.mod_revision, r);
    // An update without a lease detaches the key from it.
    s.update("/registry/la", v("y"), r, None)
        .await
        .expect("update");
    assert_eq!(
        s.get("/registry/la", 0)
            .await
            .expect("get")
            .expect("la")
            .lease,
        0
    );
}

/// An expired lease deletes its keys, with normal delete events carrying the old value.
pub async fn lease_expiry_deletes_keys(s: DynStore) {
    let _h = shared_history().await;
    s.create("/registry/le/keep", v("k"), None)
        .await
        .expect("create");
    let lease = s.grant_lease(1).await.expect("grant");
    let r1 = s
        .create("/registry/le/a", v("a"), Some(lease))
        .await
        .expect("create");
    let r2 = s
        .create("/registry/le/b", v("b"), Some(lease))
        .await
        .expect("create");
    let mut w = s.watch("/registry/le/", r2).await.expect("watch");

    let mut deleted = BTreeSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while deleted.len() < 2 {
        let ev = match tokio::time::timeout_at(deadline, w.next()).await {
            Ok(Some(Ok(ev))) => ev,
            other => panic!("lease keys were not deleted in time: {other:?}"),
        };
        assert_eq!(ev.kind, EventKind::Delete);
        let prev = ev.prev.expect("delete carries prev");
        assert_eq!(prev.lease, lease);
        let want_rev = if ev.kv.key == "/registry/le/a" {
            r1
        } else {
            r2
        };
        assert_eq!(prev.mod_revision, want_rev);
        assert_eq!(
            prev.value,
            ev.kv.key.rsplit('/').next().unwrap_or_default().as_bytes()
        );
        deleted.insert(ev.kv.key);
    }
    assert!(s.get("/registry/le/a", 0).await.expect("get").is_none());
    assert!(s.get("/registry/le/keep", 0).await.expect("get").is_some());
    assert!(matches!(
        s.keep_alive(lease).await,
        Err(Error::LeaseNotFound(_))
    ));
}
