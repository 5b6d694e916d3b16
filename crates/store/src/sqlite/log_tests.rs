//! Unit tests of the revision log queries, driven through the write operations.

use super::*;
use crate::sqlite::ops::{self, Ctx, Op, Reply};
use crate::sqlite::schema;

/// A store database in a temp dir plus a tiny driver applying ops one transaction each.
pub(crate) struct Db {
    _dir: tempfile::TempDir,
    pub path: std::path::PathBuf,
    pub conn: Connection,
    pub now_ms: i64,
}

impl Db {
    pub fn new() -> Db {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.db");
        let conn = schema::open_writer(&path, std::time::Duration::from_secs(1)).expect("open");
        schema::init_or_validate(&conn, &path).expect("init");
        Db {
            _dir: dir,
            path,
            conn,
            now_ms: 1_000_000,
        }
    }

    pub fn apply(&self, op: Op) -> Result<Reply> {
        let tx = self.conn.unchecked_transaction().expect("begin");
        let rev = current_revision(&tx, &self.path).expect("rev");
        let mut ctx = Ctx {
            conn: &tx,
            path: &self.path,
            rev,
            now_ms: self.now_ms,
            events: Vec::new(),
        };
        let r = ops::apply(&mut ctx, &op);
        if ctx.rev != rev {
            set_meta_int(&tx, &self.path, meta::REVISION, ctx.rev).expect("meta");
        }
        tx.commit().expect("commit");
        r
    }

    pub fn create(&self, key: &str, value: &str) -> Revision {
        let op = Op::Create {
            key: key.into(),
            value: value.into(),
            lease: 0,
        };
        match self.apply(op).expect("create") {
            Reply::Revision(r) => r,
            other => panic!("{other:?}"),
        }
    }

    pub fn update(&self, key: &str, value: &str, expected: Revision) -> Revision {
        let op = Op::Update {
            key: key.into(),
            value: value.into(),
            expected,
            lease: 0,
        };
        match self.apply(op).expect("update") {
            Reply::Revision(r) => r,
            other => panic!("{other:?}"),
        }
    }

    pub fn delete(&self, key: &str) -> Revision {
        match self
            .apply(Op::Delete {
                key: key.into(),
                expected: None,
            })
            .expect("delete")
        {
            Reply::Deleted(_, r) => r,
            other => panic!("{other:?}"),
        }
    }

    pub fn rows(&self) -> Vec<(Revision, String, bool)> {
        let mut st = self
            .conn
            .prepare("SELECT id, name, deleted FROM kv ORDER BY id")
            .expect("prepare");
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .expect("query")
            .collect::<rusqlite::Result<_>>()
            .expect("rows")
    }

    pub fn list(&self, prefix: &str, opts: ListOptions) -> Result<ListResult> {
        list(&self.conn, &self.path, prefix, &opts)
    }

    pub fn keys(&self, prefix: &str, revision: Revision) -> Vec<String> {
        let opts = ListOptions {
            revision,
            ..Default::default()
        };
        self.list(prefix, opts)
            .expect("list")
            .items
            .into_iter()
            .map(|kv| kv.key)
            .collect()
    }
}

#[test]
fn prefix_ranges_match_starts_with() {
    assert_eq!(KeyRange::prefix("/a/").hi.as_deref(), Some("/a0"));
    assert_eq!(KeyRange::prefix("").hi, None);
    assert_eq!(KeyRange::prefix("a\u{10FFFF}").hi.as_deref(), Some("b"));
    assert_eq!(KeyRange::prefix("\u{10FFFF}").hi, None);
    assert_eq!(
        KeyRange::prefix("x\u{D7FF}").hi.as_deref(),
        Some("x\u{E000}"),
        "skips surrogates"
    );
    let keys = [
        "/a",
        "/a/",
        "/a/b",
        "/a0",
        "/a/\u{10FFFF}",
        "/b",
        "/a/é",
        "/",
        "",
    ];
    for prefix in ["/a/", "/a", "", "/", "/a/\u{10FFFF}"] {
        let r = KeyRange::prefix(prefix);
        for k in keys {
            let in_range = k >= r.lo.as_str() && r.hi.as_deref().is_none_or(|hi| k < hi);
            assert_eq!(
                in_range,
                k.starts_with(prefix),
                "prefix {prefix:?} key {k:?}"
            );
        }
    }
}

#[test]
fn rows_record_the_chain_of_each_key() {
    let db = Db::new();
    let r1 = db.create("/k", "1");
    let r2 = db.update("/k", "2", r1);
    let r3 = db.delete("/k");
    let r4 = db.create("/k", "3");
    assert_eq!((r1, r2, r3, r4), (1, 2, 3, 4));
    let row = |id| {
        latest(&db.conn, &db.path, "/k", id)
            .expect("latest")
            .expect("row")
    };
    let (a, b, c, d) = (row(1), row(2), row(3), row(4));
    assert_eq!(
        (a.created, a.prev_revision, a.create_revision),
        (true, 0, 1)
    );
    assert_eq!(
        (
            b.created,
            b.prev_revision,
            b.create_revision,
            b.old_value.as_slice()
        ),
        (false, 1, 1, &b"1"[..])
    );
    assert_eq!(
        (
            c.deleted,
            c.prev_revision,
            c.create_revision,
            c.old_value.as_slice()
        ),
        (true, 2, 1, &b"2"[..])
    );
    assert_eq!(
        (d.created, d.prev_revision, d.create_revision),
        (true, 3, 4)
    );
}

#[test]
fn unique_index_rejects_two_writes_from_the_same_row() {
    let db = Db::new();
    db.create("/k", "1");
    let dup = Row {
        id: 99,
        name: "/k".into(),
        created: true,
        deleted: false,
        create_revision: 99,
        prev_revision: 0,
        lease: 0,
        value: vec![],
        old_value: vec![],
        old_lease: 0,
    };
    assert!(insert(&db.conn, &db.path, &dup).is_err());
}

#[test]
fn reads_at_revisions() {
    let db = Db::new();
    let r1 = db.create("/p/a", "1");
    let r2 = db.create("/p/b", "1");
    let r3 = db.update("/p/a", "2", r1);
    let r4 = db.delete("/p/b");
    assert_eq!(db.keys("/p/", r1), ["/p/a"]);
    assert_eq!(db.keys("/p/", r2), ["/p/a", "/p/b"]);
    assert_eq!(db.keys("/p/", r4), ["/p/a"]);
    assert_eq!(
        get(&db.conn, &db.path, "/p/a", r2)
            .expect("get")
            .expect("a")
            .value,
        b"1"
    );
    assert_eq!(
        get(&db.conn, &db.path, "/p/a", r3)
            .expect("get")
            .expect("a")
            .value,
        b"2"
    );
    assert_eq!(count(&db.conn, &db.path, "/p/").expect("count"), 1);
    assert_eq!(count(&db.conn, &db.path, "").expect("count"), 1);
    assert!(matches!(
        get(&db.conn, &db.path, "/p/a", 99),
        Err(Error::FutureRevision(99))
    ));
    assert!(matches!(
        db.list(
            "/p/",
            ListOptions {
                limit: -1,
                ..Default::default()
            }
        ),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn list_pages_with_start_after_outside_the_prefix() {
    let db = Db::new();
    for k in ["/p/a", "/p/b", "/p/c", "/q/a"] {
        db.create(k, "x");
    }
    let page = |after: Option<&str>| {
        let opts = ListOptions {
            limit: 2,
            start_after: after.map(String::from),
            ..Default::default()
        };
        let r = db.list("/p/", opts).expect("list");
        (
            r.items.into_iter().map(|kv| kv.key).collect::<Vec<_>>(),
            r.more,
        )
    };
    assert_eq!(
        page(None),
        (vec!["/p/a".to_string(), "/p/b".to_string()], true)
    );
    assert_eq!(page(Some("/p/b")), (vec!["/p/c".to_string()], false));
    assert_eq!(
        page(Some("/a")),
        (vec!["/p/a".to_string(), "/p/b".to_string()], true)
    );
    assert_eq!(page(Some("/z")), (vec![], false));
}

#[test]
fn history_is_filtered_and_ordered() {
    let db = Db::new();
    let r1 = db.create("/w/a", "1");
    db.create("/x/a", "1");
    let r3 = db.update("/w/a", "2", r1);
    let r4 = db.delete("/w/a");
    let evs: Vec<_> = history(&db.conn, &db.path, "/w/", 0, 10)
        .expect("history")
        .into_iter()
        .map(|r| r.into_event())
        .collect();
    let revs: Vec<_> = evs.iter().map(|e| e.revision()).collect();
    assert_eq!(revs, [r1, r3, r4]);
    assert_eq!(evs[2].kind, EventKind::Delete);
    assert_eq!(evs[2].prev.as_ref().expect("prev").value, b"2");
    assert_eq!(
        history(&db.conn, &db.path, "/w/", r1, 1)
            .expect("history")
            .len(),
        1
    );
    assert!(
        history(&db.conn, &db.path, "/w/", r4, 10)
            .expect("history")
            .is_empty()
    );
}
