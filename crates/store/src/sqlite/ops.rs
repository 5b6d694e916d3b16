//! Write operations, applied by the writer thread inside its open transaction.
//!
//! Each operation checks its preconditions before writing anything, so a rejected request
//! (`AlreadyExists`, `Conflict`, …) leaves the transaction untouched and the rest of the
//! batch commits. Only database failures ([`is_fatal`](super::schema::is_fatal)) abort it.

use super::log::{self, Row};
use super::schema::{map_err, meta};
use crate::{Error, KeyValue, LeaseId, Result, Revision, WatchEvent};
use rusqlite::{Connection, OptionalExtension};
use std::path::Path;

/// A write request.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    Create {
        key: String,
        value: Vec<u8>,
        lease: LeaseId,
    },
    Update {
        key: String,
        value: Vec<u8>,
        expected: Revision,
        lease: LeaseId,
    },
    Delete {
        key: String,
        expected: Option<Revision>,
    },
    GrantLease {
        ttl_seconds: i64,
    },
    KeepAlive {
        lease: LeaseId,
    },
    /// Delete the keys of every lease expired at the batch's clock, then the leases.
    ExpireLeases,
}

/// What a successful write returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reply {
    Revision(Revision),
    Deleted(KeyValue, Revision),
    Lease(LeaseId),
    Done,
}

/// The state a batch threads through its operations.
pub(crate) struct Ctx<'a> {
    pub conn: &'a Connection,
    pub path: &'a Path,
    /// The last revision handed out; each written row takes the next one.
    pub rev: Revision,
    /// Wall clock of the batch, unix milliseconds (lease expiry).
    pub now_ms: i64,
    /// Events of the rows written so far, published after commit.
    pub events: Vec<WatchEvent>,
}

impl Ctx<'_> {
    fn append(&mut self, mut row: Row) -> Result<Revision> {
        self.rev += 1;
        row.id = self.rev;
        if row.created {
            row.create_revision = self.rev;
        }
        log::insert(self.conn, self.path, &row)?;
        self.events.push(row.into_event());
        Ok(self.rev)
    }

    fn live(&self, key: &str) -> Result<Option<Row>> {
        Ok(log::latest(self.conn, self.path, key, Revision::MAX)?.filter(|r| !r.deleted))
    }

    fn check_lease(&self, lease: LeaseId) -> Result<()> {
        if lease == 0 {
            return Ok(());
        }
        let found = self
            .conn
            .prepare_cached("SELECT 1 FROM lease WHERE id = ?1 AND expiry > ?2")
            .and_then(|mut st| st.query_row((lease, self.now_ms), |_| Ok(())).optional())
            .map_err(|e| map_err(self.path, e))?;
        found.ok_or(Error::LeaseNotFound(lease))
    }

    fn delete_row(&mut self, cur: Row) -> Result<(KeyValue, Revision)> {
        let old = cur.kv();
        let rev = self.append(Row {
            id: 0,
            name: cur.name,
            created: false,
            deleted: true,
            create_revision: cur.create_revision,
            prev_revision: cur.id,
            lease: cur.lease,
            value: Vec::new(),
            old_value: cur.value,
            old_lease: cur.lease,
        })?;
        Ok((old, rev))
    }
}

fn conflict(key: &str, cur: &Row) -> Error {
    Error::Conflict {
        key: key.to_string(),
        current: Some(Box::new(cur.kv())),
    }
}

/// Applies one operation.
pub(crate) fn apply(ctx: &mut Ctx<'_>, op: &Op) -> Result<Reply> {
    match op {
        Op::Create { key, value, lease } => {
            ctx.check_lease(*lease)?;
            let prev = log::latest(ctx.conn, ctx.path, key, Revision::MAX)?;
            if prev.as_ref().is_some_and(|p| !p.deleted) {
                return Err(Error::AlreadyExists(key.clone()));
            }
            let rev = ctx.append(Row {
                id: 0,
                name: key.clone(),
                created: true,
                deleted: false,
                create_revision: 0,
                prev_revision: prev.map_or(0, |p| p.id),
                lease: *lease,
                value: value.clone(),
                old_value: Vec::new(),
                old_lease: 0,
            })?;
            Ok(Reply::Revision(rev))
        }
        Op::Update {
            key,
            value,
            expected,
            lease,
        } => {
            let cur = ctx.live(key)?.ok_or_else(|| Error::NotFound(key.clone()))?;
            if cur.id != *expected {
                return Err(conflict(key, &cur));
            }
            ctx.check_lease(*lease)?;
            let rev = ctx.append(Row {
                id: 0,
                name: cur.name,
                created: false,
                deleted: false,
                create_revision: cur.create_revision,
                prev_revision: cur.id,
                lease: *lease,
                value: value.clone(),
                old_value: cur.value,
                old_lease: cur.lease,
            })?;
            Ok(Reply::Revision(rev))
        }
        Op::Delete { key, expected } => {
            let cur = ctx.live(key)?.ok_or_else(|| Error::NotFound(key.clone()))?;
            if expected.is_some_and(|e| e != cur.id) {
                return Err(conflict(key, &cur));
            }
            let (old, rev) = ctx.delete_row(cur)?;
            Ok(Reply::Deleted(old, rev))
        }
        Op::GrantLease { ttl_seconds } => {
            if *ttl_seconds <= 0 {
                return Err(Error::InvalidArgument(format!(
                    "lease TTL must be positive, got {ttl_seconds}"
                )));
            }
            let expiry = ctx.now_ms.saturating_add(ttl_seconds.saturating_mul(1000));
            ctx.conn
                .prepare_cached("INSERT INTO lease (ttl, expiry) VALUES (?1, ?2)")
                .and_then(|mut st| st.execute((ttl_seconds, expiry)))
                .map_err(|e| map_err(ctx.path, e))?;
            Ok(Reply::Lease(ctx.conn.last_insert_rowid()))
        }
        Op::KeepAlive { lease } => {
            let changed = ctx
                .conn
                .prepare_cached(
                    "UPDATE lease SET expiry = ?1 + ttl * 1000 WHERE id = ?2 AND expiry > ?1",
                )
                .and_then(|mut st| st.execute((ctx.now_ms, lease)))
                .map_err(|e| map_err(ctx.path, e))?;
            if changed == 0 {
                return Err(Error::LeaseNotFound(*lease));
            }
            Ok(Reply::Done)
        }
        Op::ExpireLeases => {
            expire_leases(ctx)?;
            Ok(Reply::Done)
        }
    }
}

fn expire_leases(ctx: &mut Ctx<'_>) -> Result<()> {
    let expired: Vec<LeaseId> = ctx
        .conn
        .prepare_cached("SELECT id FROM lease WHERE expiry <= ?1 ORDER BY id")
        .and_then(|mut st| st.query_map([ctx.now_ms], |r| r.get(0))?.collect())
        .map_err(|e| map_err(ctx.path, e))?;
    for lease in expired {
        let keys: Vec<String> = ctx
            .conn
            .prepare_cached(
                "SELECT k.name FROM kv AS k WHERE k.lease = ?1 AND k.lease != 0 AND k.deleted = 0 \
                 AND k.id = (SELECT max(n.id) FROM kv AS n WHERE n.name = k.name) ORDER BY k.name",
            )
            .and_then(|mut st| st.query_map([lease], |r| r.get(0))?.collect())
            .map_err(|e| map_err(ctx.path, e))?;
        for key in keys {
            if let Some(cur) = ctx.live(&key)? {
                ctx.delete_row(cur)?;
            }
        }
        ctx.conn
            .prepare_cached("DELETE FROM lease WHERE id = ?1")
            .and_then(|mut st| st.execute([lease]))
            .map_err(|e| map_err(ctx.path, e))?;
    }
    Ok(())
}

/// Gives every lease a full TTL again (at startup: downtime does not expire leases, as in
/// etcd, where a new leader renews all leases).
pub(crate) fn refresh_leases(conn: &Connection, path: &Path, now_ms: i64) -> Result<()> {
    conn.execute("UPDATE lease SET expiry = ?1 + ttl * 1000", [now_ms])
        .map(drop)
        .map_err(|e| map_err(path, e))
}

/// One bounded step of a compaction towards `target`: removes the history of the rows with
/// revisions in `(cursor, min(cursor + step, target)]` and returns the new cursor.
///
/// Every superseded row is the `prev_revision` of a later row, so the rows to drop are the
/// predecessors of the rows in the window plus the window's tombstones. The latest row of
/// a live key is nobody's predecessor and is never dropped.
pub(crate) fn compact_step(
    conn: &Connection,
    path: &Path,
    cursor: Revision,
    target: Revision,
    step: i64,
) -> Result<Revision> {
    let end = cursor.saturating_add(step.max(1)).min(target);
    let err = |e| map_err(path, e);
    conn.prepare_cached(
        "DELETE FROM kv WHERE id IN \
         (SELECT prev_revision FROM kv WHERE id > ?1 AND id <= ?2 AND prev_revision > 0)",
    )
    .and_then(|mut st| st.execute((cursor, end)))
    .map_err(err)?;
    conn.prepare_cached("DELETE FROM kv WHERE id > ?1 AND id <= ?2 AND deleted = 1")
        .and_then(|mut st| st.execute((cursor, end)))
        .map_err(err)?;
    log::set_meta_int(conn, path, meta::COMPACT_CURSOR, end)?;
    Ok(end)
}

#[cfg(test)]
#[path = "ops_tests.rs"]
mod tests;
