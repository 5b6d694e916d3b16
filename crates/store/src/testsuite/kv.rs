//! Conformance checks for reads and writes: create, update, delete, get, list, count.

use super::shared_history;
use crate::{DynStore, Error, KeyValue, ListOptions, Revision};
use std::collections::BTreeMap;

fn v(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

async fn must_get(s: &DynStore, key: &str) -> KeyValue {
    s.get(key, 0)
        .await
        .expect("get")
        .unwrap_or_else(|| panic!("{key} should exist"))
}

/// Create then get: values and revisions round-trip; an absent key reads as `None`.
pub async fn create_get(s: DynStore) {
    let _h = shared_history().await;
    let rev = s
        .create("/registry/a", v("one"), None)
        .await
        .expect("create");
    assert!(rev > 0, "revision must be positive");
    let kv = must_get(&s, "/registry/a").await;
    assert_eq!(kv.key, "/registry/a");
    assert_eq!(kv.value, b"one");
    assert_eq!(kv.create_revision, rev);
    assert_eq!(kv.mod_revision, rev);
    assert_eq!(kv.lease, 0);
    assert!(s.get("/registry/absent", 0).await.expect("get").is_none());
    assert!(s.current_revision().await.expect("current") >= rev);
    // Binary values survive unchanged.
    let bin: Vec<u8> = (0..=255u8).collect();
    s.create("/registry/bin", bin.clone(), None)
        .await
        .expect("create");
    assert_eq!(must_get(&s, "/registry/bin").await.value, bin);
}

/// A second create of the same key fails with `AlreadyExists` and changes nothing.
pub async fn create_already_exists(s: DynStore) {
    let _h = shared_history().await;
    let rev = s
        .create("/registry/dup", v("1"), None)
        .await
        .expect("create");
    match s.create("/registry/dup", v("2"), None).await {
        Err(Error::AlreadyExists(k)) => assert_eq!(k, "/registry/dup"),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    let kv = must_get(&s, "/registry/dup").await;
    assert_eq!((kv.value.as_slice(), kv.mod_revision), (&b"1"[..], rev));
}

/// Update with the current revision succeeds; a stale one fails with `Conflict` carrying
/// the current value; an absent key fails with `NotFound`.
pub async fn update_with_revision(s: DynStore) {
    let _h = shared_history().await;
    let r1 = s.create("/registry/u", v("1"), None).await.expect("create");
    let r2 = s
        .update("/registry/u", v("2"), r1, None)
        .await
        .expect("update");
    assert!(r2 > r1);
    let kv = must_get(&s, "/registry/u").await;
    assert_eq!(
        (kv.value.as_slice(), kv.create_revision, kv.mod_revision),
        (&b"2"[..], r1, r2)
    );

    match s.update("/registry/u", v("3"), r1, None).await {
        Err(Error::Conflict { key, current }) => {
            assert_eq!(key, "/registry/u");
            let cur = current.expect("conflict carries the current value");
            assert_eq!((cur.value.as_slice(), cur.mod_revision), (&b"2"[..], r2));
            assert_eq!(cur.create_revision, r1);
        }
        other => panic!("expected Conflict, got {other:?}"),
    }
    assert_eq!(must_get(&s, "/registry/u").await.value, b"2");

    match s.update("/registry/nope", v("x"), r2, None).await {
        Err(Error::NotFound(k)) => assert_eq!(k, "/registry/nope"),
        other => panic!("expected NotFound, got {other:?}"),
    }
}

/// Delete with the right revision or none succeeds and returns the deleted value; a stale
/// revision conflicts; deleting an absent key is `NotFound`.
pub async fn delete_with_and_without_revision(s: DynStore) {
    let _h = shared_history().await;
    let r1 = s
        .create("/registry/d1", v("a"), None)
        .await
        .expect("create");
    let r2 = s
        .create("/registry/d2", v("b"), None)
        .await
        .expect("create");
    let r3 = s
        .update("/registry/d2", v("b2"), r2, None)
        .await
        .expect("update");

    match s.delete("/registry/d2", Some(r2)).await {
        Err(Error::Conflict { current, .. }) => {
            assert_eq!(current.expect("current").mod_revision, r3)
        }
        other => panic!("expected Conflict, got {other:?}"),
    }
    let (old, drev) = s.delete("/registry/d2", Some(r3)).await.expect("delete");
    assert!(drev > r3);
    assert_eq!(
        (old.key.as_str(), old.value.as_slice()),
        ("/registry/d2", &b"b2"[..])
    );
    assert_eq!((old.create_revision, old.mod_revision), (r2, r3));
    assert!(s.get("/registry/d2", 0).await.expect("get").is_none());

    let (old, drev2) = s.delete("/registry/d1", None).await.expect("delete");
    assert!(drev2 > drev);
    assert_eq!((old.value.as_slice(), old.mod_revision), (&b"a"[..], r1));

    for expected in [None, Some(r1)] {
        match s.delete("/registry/d1", expected).await {
            Err(Error::NotFound(k)) => assert_eq!(k, "/registry/d1"),
            other => panic!("expected NotFound, got {other:?}"),
        }
    }
}

/// A deleted key can be created again; it is a new incarnation.
pub async fn recreate_after_delete(s: DynStore) {
    let _h = shared_history().await;
    let r1 = s
        .create("/registry/re", v("1"), None)
        .await
        .expect("create");
    s.delete("/registry/re", None).await.expect("delete");
    let r3 = s
        .create("/registry/re", v("2"), None)
        .await
        .expect("re-create");
    let kv = must_get(&s, "/registry/re").await;
    assert_eq!((kv.create_revision, kv.mod_revision), (r3, r3));
    assert_ne!(kv.create_revision, r1);
    assert!(matches!(
        s.update("/registry/re", v("x"), r1, None).await,
        Err(Error::Conflict { .. })
    ));
}

/// Reads at an older revision see the value as it was then.
pub async fn get_at_revision(s: DynStore) {
    let _h = shared_history().await;
    let r1 = s.create("/registry/g", v("1"), None).await.expect("create");
    let r2 = s
        .update("/registry/g", v("2"), r1, None)
        .await
        .expect("update");
    let (_, r3) = s.delete("/registry/g", None).await.expect("delete");

    let at = |rev| {
        let s = s.clone();
        async move { s.get("/registry/g", rev).await.expect("get at revision") }
    };
    assert!(at(r1 - 1).await.is_none(), "absent before its create");
    assert_eq!(at(r1).await.expect("at r1").value, b"1");
    assert_eq!(at(r2 - 1).await.expect("before r2").value, b"1");
    let kv2 = at(r2).await.expect("at r2");
    assert_eq!(
        (kv2.value.as_slice(), kv2.mod_revision, kv2.create_revision),
        (&b"2"[..], r2, r1)
    );
    assert!(at(r3).await.is_none(), "absent after its delete");
    assert!(at(0).await.is_none());

    let future = s.current_revision().await.expect("current") + 1_000_000;
    assert!(matches!(
        s.get("/registry/g", future).await,
        Err(Error::FutureRevision(_))
    ));
}

/// A list returns exactly the keys with the (string) prefix, sorted, with their metadata.
pub async fn list_prefix(s: DynStore) {
    let _h = shared_history().await;
    let mut revs = BTreeMap::new();
    for k in [
        "/registry/pods/b",
        "/registry/pods/a",
        "/registry/podsx",
        "/registry/svc/a",
    ] {
        revs.insert(k, s.create(k, v(k), None).await.expect("create"));
    }
    let res = s
        .list("/registry/pods/", ListOptions::default())
        .await
        .expect("list");
    let keys: Vec<_> = res.items.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["/registry/pods/a", "/registry/pods/b"]);
    assert!(!res.more);
    assert!(res.revision >= revs["/registry/svc/a"]);
    for kv in &res.items {
        assert_eq!(kv.value, kv.key.as_bytes());
        assert_eq!(kv.mod_revision, revs[kv.key.as_str()]);
        assert_eq!(kv.create_revision, revs[kv.key.as_str()]);
    }
    let all = s
        .list("/registry/", ListOptions::default())
        .await
        .expect("list");
    assert_eq!(all.items.len(), 4);
    let none = s
        .list("/registry/nothing/", ListOptions::default())
        .await
        .expect("list");
    assert!(none.items.is_empty() && !none.more);
}

/// A list at an older revision shows the keys and values as they were then.
pub async fn list_at_revision(s: DynStore) {
    let _h = shared_history().await;
    let ra = s
        .create("/registry/l/a", v("a1"), None)
        .await
        .expect("create");
    s.create("/registry/l/b", v("b1"), None)
        .await
        .expect("create");
    let snap = s
        .list("/registry/l/", ListOptions::default())
        .await
        .expect("list");
    s.update("/registry/l/a", v("a2"), ra, None)
        .await
        .expect("update");
    s.delete("/registry/l/b", None).await.expect("delete");
    s.create("/registry/l/c", v("c1"), None)
        .await
        .expect("create");

    let old = s
        .list(
            "/registry/l/",
            ListOptions {
                revision: snap.revision,
                ..Default::default()
            },
        )
        .await
        .expect("list at revision");
    assert_eq!(old.revision, snap.revision);
    assert_eq!(old.items, snap.items);

    let now = s
        .list("/registry/l/", ListOptions::default())
        .await
        .expect("list");
    let got: Vec<_> = now
        .items
        .iter()
        .map(|kv| (kv.key.as_str(), kv.value.as_slice()))
        .collect();
    assert_eq!(
        got,
        [("/registry/l/a", &b"a2"[..]), ("/registry/l/c", &b"c1"[..])]
    );

    let future = ListOptions {
        revision: now.revision + 1_000_000,
        ..Default::default()
    };
    assert!(matches!(
        s.list("/registry/l/", future).await,
        Err(Error::FutureRevision(_))
    ));
}

/// Paging with `limit` + `start_after` at the first page's revision stays consistent while
/// other writes happen between pages.
pub async fn list_paging_consistent(s: DynStore) {
    let _h = shared_history().await;
    let mut want = Vec::new();
    for i in 0..10 {
        let k = format!("/registry/p/{i:02}");
        s.create(&k, v(&format!("v{i}")), None)
            .await
            .expect("create");
        want.push((k, format!("v{i}").into_bytes()));
    }
    let page = |revision, start_after: Option<String>| {
        let s = s.clone();
        async move {
            let opts = ListOptions {
                revision,
                limit: 3,
                start_after,
            };
            s.list("/registry/p/", opts).await.expect("page")
        }
    };
    let first = page(0, None).await;
    assert_eq!(first.items.len(), 3);
    assert!(first.more);
    assert_eq!(first.remaining, 7, "10 keys, 3 returned");
    let rev = first.revision;
    let mut got: Vec<_> = first
        .items
        .iter()
        .map(|kv| (kv.key.clone(), kv.value.clone()))
        .collect();

    // Writes between pages must not show up in later pages at `rev`.
    s.delete("/registry/p/05", None).await.expect("delete");
    let cur = s
        .get("/registry/p/08", 0)
        .await
        .expect("get")
        .expect("p/08");
    s.update("/registry/p/08", v("changed"), cur.mod_revision, None)
        .await
        .expect("update");
    s.create("/registry/p/04x", v("new"), None)
        .await
        .expect("create");

    let mut pages = 1;
    let mut last = first;
    while last.more {
        let after = last.items.last().map(|kv| kv.key.clone());
        last = page(rev, after).await;
        assert_eq!(
            last.revision, rev,
            "every page is at the first page's revision"
        );
        assert!(last.items.len() <= 3);
        // Counted at `rev`: the later delete and create do not change it.
        let expected_remaining = if last.more {
            10 - 3 * pages as i64 - 3
        } else {
            0
        };
        assert_eq!(last.remaining, expected_remaining, "page {}", pages + 1);
        got.extend(
            last.items
                .iter()
                .map(|kv| (kv.key.clone(), kv.value.clone())),
        );
        pages += 1;
        assert!(pages < 10, "paging does not terminate");
    }
    assert_eq!(got, want);
    assert_eq!(pages, 4);

    // A limit equal to the number of keys: no `more`.
    let exact = ListOptions {
        limit: 10,
        ..Default::default()
    };
    let res = s.list("/registry/p/", exact).await.expect("list");
    assert_eq!((res.items.len(), res.more), (10, false));
}

/// `count` counts live keys under a prefix.
pub async fn count_keys(s: DynStore) {
    let _h = shared_history().await;
    assert_eq!(s.count("/registry/c/").await.expect("count"), 0);
    for i in 0..5 {
        s.create(&format!("/registry/c/{i}"), v("x"), None)
            .await
            .expect("create");
    }
    s.create("/registry/cx", v("x"), None)
        .await
        .expect("create");
    s.delete("/registry/c/3", None).await.expect("delete");
    assert_eq!(s.count("/registry/c/").await.expect("count"), 4);
    assert_eq!(s.count("/registry/").await.expect("count"), 5);
}

/// Revisions from concurrent writers are unique and strictly increasing per writer.
pub async fn revisions_strictly_increasing(s: DynStore) {
    let _h = shared_history().await;
    let start = s.current_revision().await.expect("current");
    let mut tasks = Vec::new();
    for w in 0..16 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut revs: Vec<Revision> = Vec::new();
            for i in 0..25 {
                let k = format!("/registry/r/{w}/{i}");
                let r = s.create(&k, v("x"), None).await.expect("create");
                if i % 5 == 4 {
                    let r2 = s.update(&k, v("y"), r, None).await.expect("update");
                    revs.push(r);
                    revs.push(r2);
                } else {
                    revs.push(r);
                }
            }
            revs
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        let revs = t.await.expect("writer task");
        assert!(
            revs.windows(2).all(|w| w[0] < w[1]),
            "per-writer revisions increase"
        );
        all.extend(revs);
    }
    let n = all.len();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), n, "revisions are unique");
    assert!(all[0] > start);
    let last = *all.last().expect("some revisions");
    assert!(s.current_revision().await.expect("current") >= last);
}

/// `health` succeeds and `backend` names the backend.
pub async fn health_and_backend(s: DynStore) {
    let _h = shared_history().await;
    s.health().await.expect("health");
    assert!(!s.backend().is_empty());
}
