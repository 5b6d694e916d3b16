//! The on-disk format: opening connections, pragmas, creating and validating the schema,
//! and mapping SQLite failures to store errors.
//!
//! Tables (kine's layout plus `old_lease`, so replayed events carry the exact previous key):
//! - `kv`: the append-only revision log, one row per write; `id` is the revision. Deletes
//!   are tombstone rows (`deleted = 1`). `prev_revision` points at the key's previous row,
//!   and `UNIQUE (name, prev_revision)` makes two writes racing from the same row fail.
//! - `lease`: granted leases with their TTL and expiry (unix milliseconds).
//! - `meta`: format marker, schema version, latest revision, compaction state.
//!
//! The file also carries an SQLite `application_id`, so a foreign database is told apart
//! from an empty one.

use crate::{Error, Result};
use rusqlite::{Connection, OpenFlags, OptionalExtension, ffi::ErrorCode};
use std::io::Read;
use std::path::Path;
use std::time::Duration;

/// SQLite header `application_id` of r8s stores ("r8s1").
pub(crate) const APPLICATION_ID: i32 = 0x7238_7331;
/// The schema version this code writes and reads.
pub(crate) const SCHEMA_VERSION: i64 = 1;
const FORMAT: &str = "r8s-store";

const SCHEMA: &str = "
CREATE TABLE kv (
    id              INTEGER PRIMARY KEY,
    name            TEXT    NOT NULL,
    created         INTEGER NOT NULL,
    deleted         INTEGER NOT NULL,
    create_revision INTEGER NOT NULL,
    prev_revision   INTEGER NOT NULL,
    lease           INTEGER NOT NULL,
    value           BLOB    NOT NULL,
    old_value       BLOB    NOT NULL,
    old_lease       INTEGER NOT NULL
);
CREATE UNIQUE INDEX kv_name_prev ON kv (name, prev_revision);
-- Latest row per name (get, list, count) without touching the table: covers `deleted`.
CREATE INDEX kv_name_id ON kv (name, id, deleted);
CREATE INDEX kv_lease ON kv (lease) WHERE lease != 0;
CREATE TABLE lease (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    ttl    INTEGER NOT NULL,
    expiry INTEGER NOT NULL
);
CREATE TABLE meta (key TEXT PRIMARY KEY, value NOT NULL) WITHOUT ROWID;
";

/// Keys of the `meta` table.
pub(crate) mod meta {
    pub(crate) const FORMAT: &str = "format";
    pub(crate) const SCHEMA_VERSION: &str = "schema_version";
    /// Latest revision (kept here too: compaction may delete the newest row, a tombstone).
    pub(crate) const REVISION: &str = "revision";
    /// Reads below this revision fail with `Compacted`.
    pub(crate) const COMPACT_REVISION: &str = "compact_revision";
    /// Rows up to here have been compacted; below `COMPACT_REVISION` while a compaction
    /// runs (resumed after a restart).
    pub(crate) const COMPACT_CURSOR: &str = "compact_cursor";
}

/// Maps an SQLite failure on the store at `path` to a store error.
pub(crate) fn map_err(path: &Path, e: rusqlite::Error) -> Error {
    let p = path.display().to_string();
    if let rusqlite::Error::SqliteFailure(f, msg) = &e {
        let reason = msg.clone().unwrap_or_else(|| f.to_string());
        return match f.code {
            ErrorCode::DiskFull => Error::DiskFull(p),
            ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase => {
                Error::Corrupt { path: p, reason }
            }
            ErrorCode::CannotOpen | ErrorCode::PermissionDenied | ErrorCode::ReadOnly => {
                Error::Unavailable(format!("{p}: {reason}"))
            }
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => Error::Unavailable(format!(
                "{p}: {reason} (is another process writing to this datastore?)"
            )),
            _ => Error::Internal(format!("{p}: {reason}")),
        };
    }
    Error::Internal(format!("{p}: {e}"))
}

/// Whether an error comes from the database rather than from a failed precondition.
pub(crate) fn is_fatal(e: &Error) -> bool {
    matches!(
        e,
        Error::Internal(_) | Error::DiskFull(_) | Error::Corrupt { .. } | Error::Unavailable(_)
    )
}

fn corrupt(path: &Path, reason: impl Into<String>) -> Error {
    Error::Corrupt {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

/// Fails with `Corrupt` if `path` exists, is not empty and is not an SQLite file at all.
pub(crate) fn check_header(path: &Path) -> Result<()> {
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::Unavailable(format!("{}: {e}", path.display()))),
    };
    let mut header = Vec::with_capacity(16);
    file.by_ref()
        .take(16)
        .read_to_end(&mut header)
        .map_err(|e| Error::Unavailable(format!("{}: {e}", path.display())))?;
    if header.is_empty() || header == b"SQLite format 3\0" {
        Ok(())
    } else {
        Err(corrupt(path, "not an SQLite database (bad file header)"))
    }
}

/// Opens the read-write connection of the writer thread, creating the file if needed.
pub(crate) fn open_writer(path: &Path, busy: Duration) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| map_err(path, e))?;
    conn.busy_timeout(busy).map_err(|e| map_err(path, e))?;
    let err = |e| map_err(path, e);
    let fresh: i64 = conn
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .map_err(err)?;
    if fresh == 0 {
        // Must be chosen before the first table exists; lets compaction give pages back.
        conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")
            .map_err(err)?;
    }
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
        .map_err(err)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Error::Internal(format!(
            "{}: cannot enable WAL mode (got {mode})",
            path.display()
        )));
    }
    // FULL: a commit is on disk before it is acknowledged. The WAL is trimmed after
    // checkpoints so it does not keep its peak size forever.
    conn.execute_batch(
        "PRAGMA synchronous = FULL;
         PRAGMA journal_size_limit = 67108864;
         PRAGMA temp_store = MEMORY;
         PRAGMA cache_size = -16000;",
    )
    .map_err(err)?;
    stable_plans(&conn, path)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// Keep query plans fixed once prepared: without this SQLite re-prepares the range
/// statements whenever bound values change (measured: ~20% of CPU under API creates).
fn stable_plans(conn: &Connection, path: &Path) -> Result<()> {
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )
    .map(|_| ())
    .map_err(|e| map_err(path, e))
}

/// Opens a read-only connection (WAL lets it read while the writer commits).
pub(crate) fn open_reader(path: &Path, busy: Duration) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| map_err(path, e))?;
    conn.busy_timeout(busy).map_err(|e| map_err(path, e))?;
    conn.execute_batch("PRAGMA cache_size = -8000;")
        .map_err(|e| map_err(path, e))?;
    stable_plans(&conn, path)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// Creates the schema in an empty database, or checks an existing one is an r8s store.
pub(crate) fn init_or_validate(conn: &Connection, path: &Path) -> Result<()> {
    let err = |e| map_err(path, e);
    let tables: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
        .map_err(err)?;
    let app_id: i32 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(err)?;
    if tables > 0 || app_id != 0 {
        return validate(conn, path);
    }
    let tx = rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)
        .map_err(err)?;
    tx.execute_batch(SCHEMA).map_err(err)?;
    tx.execute_batch(&format!("PRAGMA application_id = {APPLICATION_ID};"))
        .map_err(err)?;
    let mut put = tx
        .prepare("INSERT INTO meta (key, value) VALUES (?1, ?2)")
        .map_err(err)?;
    put.execute((meta::FORMAT, FORMAT)).map_err(err)?;
    put.execute((meta::SCHEMA_VERSION, SCHEMA_VERSION))
        .map_err(err)?;
    for key in [meta::REVISION, meta::COMPACT_REVISION, meta::COMPACT_CURSOR] {
        put.execute((key, 0i64)).map_err(err)?;
    }
    drop(put);
    tx.commit().map_err(err)
}

/// Checks that `conn` is an r8s store this code can read.
pub(crate) fn validate(conn: &Connection, path: &Path) -> Result<()> {
    let err = |e| map_err(path, e);
    let app_id: i32 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(err)?;
    if app_id != APPLICATION_ID {
        return Err(corrupt(
            path,
            format!(
                "not an r8s datastore (SQLite application_id {app_id:#x}, want {APPLICATION_ID:#x})"
            ),
        ));
    }
    let has_meta: bool = conn
        .query_row(
            "SELECT count(*) = 3 FROM sqlite_master WHERE type = 'table' AND name IN ('kv', 'lease', 'meta')",
            [],
            |r| r.get(0),
        )
        .map_err(err)?;
    if !has_meta {
        return Err(corrupt(path, "r8s tables are missing"));
    }
    let get = |key: &str| -> Result<Option<rusqlite::types::Value>> {
        conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(err)
    };
    match get(meta::FORMAT)? {
        Some(rusqlite::types::Value::Text(f)) if f == FORMAT => {}
        other => return Err(corrupt(path, format!("bad format marker {other:?}"))),
    }
    match get(meta::SCHEMA_VERSION)? {
        Some(rusqlite::types::Value::Integer(v)) if v == SCHEMA_VERSION => Ok(()),
        Some(rusqlite::types::Value::Integer(v)) if v > SCHEMA_VERSION => Err(corrupt(
            path,
            format!(
                "schema version {v} is newer than this r8s supports ({SCHEMA_VERSION}); upgrade r8s"
            ),
        )),
        other => Err(corrupt(path, format!("bad schema version {other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_then_validates() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.db");
        let conn = open_writer(&path, Duration::from_secs(1)).expect("open");
        init_or_validate(&conn, &path).expect("init");
        init_or_validate(&conn, &path).expect("validate");
        let av: i64 = conn
            .query_row("PRAGMA auto_vacuum", [], |r| r.get(0))
            .expect("pragma");
        assert_eq!(av, 2, "incremental auto-vacuum");
        let sync: i64 = conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .expect("pragma");
        assert_eq!(
            sync, 2,
            "synchronous = FULL: acknowledged writes are durable"
        );
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .expect("pragma");
        assert_eq!(mode, "wal");
    }

    #[test]
    fn rejects_foreign_and_garbage_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let foreign = dir.path().join("foreign.db");
        let conn = Connection::open(&foreign).expect("open");
        conn.execute_batch("CREATE TABLE t (x)").expect("create");
        drop(conn);
        let conn = open_writer(&foreign, Duration::from_secs(1)).expect("open");
        match init_or_validate(&conn, &foreign) {
            Err(Error::Corrupt { path, reason }) => {
                assert!(path.ends_with("foreign.db"));
                assert!(reason.contains("not an r8s datastore"), "{reason}");
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }

        let garbage = dir.path().join("garbage.db");
        std::fs::write(&garbage, vec![0x42; 8192]).expect("write");
        assert!(matches!(check_header(&garbage), Err(Error::Corrupt { .. })));
        check_header(&dir.path().join("missing.db")).expect("a missing file is fine");
    }

    #[test]
    fn maps_disk_full() {
        let e = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
            None,
        );
        assert!(matches!(map_err(Path::new("/x"), e), Error::DiskFull(_)));
    }
}
