//! The revision log: rows of the `kv` table and the queries that read them.
//!
//! Every function runs on a connection inside a transaction opened by the caller, so a
//! multi-statement read (revision bounds, then rows) sees one consistent snapshot.

use super::schema::{map_err, meta};
use crate::{
    Error, EventKind, KeyValue, LeaseId, ListOptions, ListResult, Result, Revision, WatchEvent,
};
use rusqlite::{Connection, OptionalExtension, types::Value};
use std::path::Path;

/// One row of the log: one write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Row {
    /// The revision of the write.
    pub id: Revision,
    pub name: String,
    /// This write created the key (no previous live value).
    pub created: bool,
    /// A tombstone: this write deleted the key.
    pub deleted: bool,
    pub create_revision: Revision,
    /// The key's previous row (0 if none).
    pub prev_revision: Revision,
    pub lease: LeaseId,
    pub value: Vec<u8>,
    /// Value and lease of the previous row, for events (empty/0 for creates).
    pub old_value: Vec<u8>,
    pub old_lease: LeaseId,
}

pub(crate) const COLUMNS: &str = "id, name, created, deleted, create_revision, prev_revision, lease, value, old_value, old_lease";

impl Row {
    fn from_sql(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
        Ok(Row {
            id: r.get(0)?,
            name: r.get(1)?,
            created: r.get(2)?,
            deleted: r.get(3)?,
            create_revision: r.get(4)?,
            prev_revision: r.get(5)?,
            lease: r.get(6)?,
            value: r.get(7)?,
            old_value: r.get(8)?,
            old_lease: r.get(9)?,
        })
    }

    /// The key as of this row (meaningful for live rows).
    pub fn kv(&self) -> KeyValue {
        KeyValue {
            key: self.name.clone(),
            value: self.value.clone(),
            create_revision: self.create_revision,
            mod_revision: self.id,
            lease: self.lease,
        }
    }

    /// The watch event this row records.
    pub fn into_event(self) -> WatchEvent {
        let prev = (!self.created).then(|| KeyValue {
            key: self.name.clone(),
            value: self.old_value,
            create_revision: self.create_revision,
            mod_revision: self.prev_revision,
            lease: self.old_lease,
        });
        if self.deleted {
            let kv = KeyValue {
                key: self.name,
                value: Vec::new(),
                create_revision: 0,
                mod_revision: self.id,
                lease: 0,
            };
            WatchEvent {
                kind: EventKind::Delete,
                kv,
                prev,
            }
        } else {
            let kv = KeyValue {
                key: self.name,
                value: self.value,
                create_revision: self.create_revision,
                mod_revision: self.id,
                lease: self.lease,
            };
            WatchEvent {
                kind: EventKind::Put,
                kv,
                prev,
            }
        }
    }
}

/// Appends `row` to the log.
pub(crate) fn insert(conn: &Connection, path: &Path, row: &Row) -> Result<()> {
    conn.prepare_cached(&format!(
        "INSERT INTO kv ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
    ))
    .and_then(|mut st| {
        st.execute(rusqlite::params![
            row.id,
            row.name,
            row.created,
            row.deleted,
            row.create_revision,
            row.prev_revision,
            row.lease,
            row.value,
            row.old_value,
            row.old_lease,
        ])
    })
    .map(drop)
    .map_err(|e| map_err(path, e))
}

/// Reads an integer from the `meta` table (0 if absent).
pub(crate) fn meta_int(conn: &Connection, path: &Path, key: &str) -> Result<i64> {
    conn.prepare_cached("SELECT value FROM meta WHERE key = ?1")
        .and_then(|mut st| st.query_row([key], |r| r.get::<_, i64>(0)).optional())
        .map(|v| v.unwrap_or(0))
        .map_err(|e| map_err(path, e))
}

/// Writes an integer to the `meta` table.
pub(crate) fn set_meta_int(conn: &Connection, path: &Path, key: &str, value: i64) -> Result<()> {
    conn.prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)")
        .and_then(|mut st| st.execute((key, value)))
        .map(drop)
        .map_err(|e| map_err(path, e))
}

/// The latest revision: the newest row, or the recorded one if compaction removed it.
pub(crate) fn current_revision(conn: &Connection, path: &Path) -> Result<Revision> {
    let max_id: Option<i64> = conn
        .prepare_cached("SELECT max(id) FROM kv")
        .and_then(|mut st| st.query_row([], |r| r.get(0)))
        .map_err(|e| map_err(path, e))?;
    Ok(max_id
        .unwrap_or(0)
        .max(meta_int(conn, path, meta::REVISION)?))
}

/// The revision reads below which fail with `Compacted`.
pub(crate) fn compacted_revision(conn: &Connection, path: &Path) -> Result<Revision> {
    meta_int(conn, path, meta::COMPACT_REVISION)
}

/// Resolves a requested read revision (0 = latest) and checks it is still readable.
pub(crate) fn read_revision(conn: &Connection, path: &Path, rev: Revision) -> Result<Revision> {
    if rev < 0 {
        return Err(Error::InvalidArgument(format!("negative revision {rev}")));
    }
    let current = current_revision(conn, path)?;
    if rev == 0 {
        return Ok(current);
    }
    if rev > current {
        return Err(Error::FutureRevision(rev));
    }
    let compacted = compacted_revision(conn, path)?;
    if rev < compacted {
        return Err(Error::Compacted {
            requested: rev,
            compacted,
        });
    }
    Ok(rev)
}

/// The newest row of `name` at or below `at` (live or tombstone).
pub(crate) fn latest(
    conn: &Connection,
    path: &Path,
    name: &str,
    at: Revision,
) -> Result<Option<Row>> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM kv WHERE name = ?1 AND id <= ?2 ORDER BY id DESC LIMIT 1"
    ))
    .and_then(|mut st| st.query_row((name, at), Row::from_sql).optional())
    .map_err(|e| map_err(path, e))
}

/// The live value of `name` at `rev` (0 = latest).
pub(crate) fn get(
    conn: &Connection,
    path: &Path,
    name: &str,
    rev: Revision,
) -> Result<Option<KeyValue>> {
    let at = read_revision(conn, path, rev)?;
    Ok(latest(conn, path, name, at)?
        .filter(|r| !r.deleted)
        .map(|r| r.kv()))
}

/// The key range `[lo, hi)` of a prefix; `hi = None` means unbounded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyRange {
    pub lo: String,
    pub hi: Option<String>,
}

impl KeyRange {
    /// All keys starting with `prefix`. SQLite compares TEXT bytewise, and UTF-8 byte order
    /// is code point order, so the end is the prefix with its last character bumped.
    pub fn prefix(prefix: &str) -> KeyRange {
        let mut chars: Vec<char> = prefix.chars().collect();
        while let Some(last) = chars.pop() {
            let next = (last as u32 + 1..=char::MAX as u32).find_map(char::from_u32);
            if let Some(next) = next {
                chars.push(next);
                return KeyRange {
                    lo: prefix.to_string(),
                    hi: Some(chars.into_iter().collect()),
                };
            }
        }
        KeyRange {
            lo: prefix.to_string(),
            hi: None,
        }
    }
}

/// Builds `name` conditions for a range: lower bound (`>` when exclusive), optional upper.
fn range_sql(
    col: &str,
    lo: &str,
    exclusive: bool,
    hi: Option<&str>,
    params: &mut Vec<Value>,
) -> String {
    let op = if exclusive { ">" } else { ">=" };
    params.push(Value::Text(lo.to_string()));
    let mut sql = format!("{col} {op} ?{}", params.len());
    if let Some(hi) = hi {
        params.push(Value::Text(hi.to_string()));
        sql.push_str(&format!(" AND {col} < ?{}", params.len()));
    }
    sql
}

/// Live keys in `prefix` at one revision, sorted by key, paged.
pub(crate) fn list(
    conn: &Connection,
    path: &Path,
    prefix: &str,
    opts: &ListOptions,
) -> Result<ListResult> {
    if opts.limit < 0 {
        return Err(Error::InvalidArgument(format!(
            "negative limit {}",
            opts.limit
        )));
    }
    let rev = read_revision(conn, path, opts.revision)?;
    let range = KeyRange::prefix(prefix);
    let (lo, exclusive) = match &opts.start_after {
        Some(after) if after.as_str() >= range.lo.as_str() => (after.as_str(), true),
        _ => (range.lo.as_str(), false),
    };
    let mut params = Vec::new();
    let cond = range_sql("k.name", lo, exclusive, range.hi.as_deref(), &mut params);
    params.push(Value::Integer(rev));
    let rev_param = params.len();
    // Walk the (name, id) index in key order; for each key keep only its newest row at
    // `rev`. The scan stops after `limit + 1` live keys, so a page costs O(page), not
    // O(all keys).
    let mut sql = format!(
        "SELECT {cols} FROM kv AS k WHERE {cond} AND k.id <= ?{rev_param} \
         AND k.id = (SELECT max(n.id) FROM kv AS n WHERE n.name = k.name AND n.id <= ?{rev_param}) \
         AND k.deleted = 0 ORDER BY k.name",
        cols = COLUMNS
            .split(", ")
            .map(|c| format!("k.{c}"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    if opts.limit > 0 {
        params.push(Value::Integer(opts.limit + 1));
        sql.push_str(&format!(" LIMIT ?{}", params.len()));
    }
    let mut items = conn
        .prepare_cached(&sql)
        .and_then(|mut st| {
            st.query_map(rusqlite::params_from_iter(params), Row::from_sql)?
                .map(|r| r.map(|row| row.kv()))
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(|e| map_err(path, e))?;
    let more = opts.limit > 0 && items.len() as i64 > opts.limit;
    if more {
        items.truncate(opts.limit as usize);
    }
    let remaining = match items.last() {
        Some(last) if more => count_after(conn, path, &range, &last.key, rev)?,
        _ => 0,
    };
    Ok(ListResult {
        items,
        revision: rev,
        more,
        remaining,
    })
}

/// Live keys of `range` after `after` at revision `rev`, in one pass over the
/// (name, id) index.
fn count_after(
    conn: &Connection,
    path: &Path,
    range: &KeyRange,
    after: &str,
    rev: Revision,
) -> Result<i64> {
    let mut params = Vec::new();
    let cond = range_sql("name", after, true, range.hi.as_deref(), &mut params);
    params.push(Value::Integer(rev));
    // `deleted` comes from the row holding max(id) (SQLite's bare-column rule).
    let sql = format!(
        "SELECT count(*) FROM (SELECT max(id), deleted FROM kv WHERE {cond} AND id <= ?{} \
         GROUP BY name) WHERE deleted = 0",
        params.len()
    );
    conn.prepare_cached(&sql)
        .and_then(|mut st| st.query_row(rusqlite::params_from_iter(params), |r| r.get(0)))
        .map_err(|e| map_err(path, e))
}

/// Number of live keys in `prefix` at the latest revision.
pub(crate) fn count(conn: &Connection, path: &Path, prefix: &str) -> Result<i64> {
    let range = KeyRange::prefix(prefix);
    let mut params = Vec::new();
    let cond = range_sql("name", &range.lo, false, range.hi.as_deref(), &mut params);
    // One pass over the covering (name, id, deleted) index: `deleted` is taken from the
    // row holding max(id) of each name (SQLite's bare-column rule for min/max).
    let sql = format!(
        "SELECT count(*) FROM (SELECT max(id), deleted FROM kv WHERE {cond} GROUP BY name) WHERE deleted = 0"
    );
    conn.prepare_cached(&sql)
        .and_then(|mut st| st.query_row(rusqlite::params_from_iter(params), |r| r.get(0)))
        .map_err(|e| map_err(path, e))
}

/// Up to `limit` rows of `prefix` with revision above `after`, oldest first. Fails with
/// `Compacted` if history after `after` is no longer complete.
pub(crate) fn history(
    conn: &Connection,
    path: &Path,
    prefix: &str,
    after: Revision,
    limit: i64,
) -> Result<Vec<Row>> {
    let compacted = compacted_revision(conn, path)?;
    if after < compacted {
        return Err(Error::Compacted {
            requested: after,
            compacted,
        });
    }
    let range = KeyRange::prefix(prefix);
    let mut params = vec![Value::Integer(after)];
    let cond = range_sql("name", &range.lo, false, range.hi.as_deref(), &mut params);
    params.push(Value::Integer(limit));
    let sql = format!(
        "SELECT {COLUMNS} FROM kv WHERE id > ?1 AND {cond} ORDER BY id LIMIT ?{}",
        params.len()
    );
    conn.prepare_cached(&sql)
        .and_then(|mut st| {
            st.query_map(rusqlite::params_from_iter(params), Row::from_sql)?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(|e| map_err(path, e))
}

#[cfg(test)]
#[path = "log_tests.rs"]
pub(crate) mod tests;
