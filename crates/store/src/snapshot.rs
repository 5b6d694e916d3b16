//! Online backup and restore of the embedded SQLite store (`r8s snapshot save|restore`).
//!
//! `save` takes a consistent copy with `VACUUM INTO` on a read transaction: WAL mode lets it
//! run while a server keeps writing, and the copy is compact (no free pages). Both
//! operations write a temporary file next to the destination, fsync it and rename it into
//! place, so a crash leaves either no file or a complete one.

use crate::sqlite::schema;
use crate::{Error, Result};
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::time::Duration;

const BUSY: Duration = Duration::from_secs(30);

fn io_err(path: &Path, e: std::io::Error) -> Error {
    if e.raw_os_error() == Some(28) {
        // ENOSPC
        return Error::DiskFull(path.display().to_string());
    }
    Error::Unavailable(format!("{}: {e}", path.display()))
}

/// A temporary sibling of `dest` (same directory, so the final rename is atomic).
fn temp_sibling(dest: &Path, what: &str) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dest.with_file_name(format!(".{name}.{what}-{}", std::process::id()))
}

fn ensure_parent(path: &Path) -> Result<()> {
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e)),
        None => Ok(()),
    }
}

/// Makes `tmp` durable, renames it to `dest` and makes the rename durable.
fn install(tmp: &Path, dest: &Path) -> Result<()> {
    std::fs::File::open(tmp)
        .and_then(|f| f.sync_all())
        .map_err(|e| io_err(tmp, e))?;
    std::fs::rename(tmp, dest).map_err(|e| io_err(dest, e))?;
    if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)
            .and_then(|f| f.sync_all())
            .map_err(|e| io_err(dir, e))?;
    }
    Ok(())
}

/// Removes `tmp` and its SQLite side files, ignoring errors (cleanup after a failure).
fn remove_temp(tmp: &Path) {
    for suffix in ["", "-journal", "-wal", "-shm"] {
        let mut p = tmp.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
}

/// Checks that the database at `file` is an intact r8s store; errors name `shown`.
fn check_store(file: &Path, shown: &Path) -> Result<()> {
    let rename = |e: Error| match e {
        Error::Corrupt { reason, .. } => Error::Corrupt {
            path: shown.display().to_string(),
            reason,
        },
        other => other,
    };
    schema::check_header(file).map_err(rename)?;
    let conn = Connection::open_with_flags(file, OpenFlags::SQLITE_OPEN_READ_WRITE)
        .map_err(|e| rename(schema::map_err(file, e)))?;
    conn.busy_timeout(BUSY)
        .map_err(|e| rename(schema::map_err(file, e)))?;
    schema::validate(&conn, file).map_err(rename)?;
    let check: String = conn
        .query_row("PRAGMA quick_check(1)", [], |r| r.get(0))
        .map_err(|e| rename(schema::map_err(file, e)))?;
    if check != "ok" {
        return Err(Error::Corrupt {
            path: shown.display().to_string(),
            reason: format!("integrity check: {check}"),
        });
    }
    Ok(())
}

fn save_blocking(db_path: &Path, out: &Path) -> Result<()> {
    if !db_path.is_file() {
        return Err(Error::InvalidArgument(format!(
            "{}: no datastore there",
            db_path.display()
        )));
    }
    schema::check_header(db_path)?;
    ensure_parent(out)?;
    let conn = Connection::open_with_flags(db_path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| schema::map_err(db_path, e))?;
    conn.busy_timeout(BUSY)
        .map_err(|e| schema::map_err(db_path, e))?;
    schema::validate(&conn, db_path)?;
    let tmp = temp_sibling(out, "saving");
    remove_temp(&tmp);
    let result = (|| {
        let target = tmp.to_str().ok_or_else(|| {
            Error::InvalidArgument(format!("{}: path is not valid UTF-8", out.display()))
        })?;
        conn.execute("VACUUM INTO ?1", [target]).map_err(|e| {
            match schema::map_err(db_path, e) {
                Error::DiskFull(_) => Error::DiskFull(out.display().to_string()),
                other => other,
            }
        })?;
        check_store(&tmp, out)?;
        install(&tmp, out)
    })();
    if result.is_err() {
        remove_temp(&tmp);
    }
    result
}

fn restore_blocking(snapshot: &Path, db_path: &Path) -> Result<()> {
    for existing in [
        db_path.to_path_buf(),
        PathBuf::from(format!("{}-wal", db_path.display())),
    ] {
        if existing.exists() {
            return Err(Error::InvalidArgument(format!(
                "{} already exists; stop r8s and move the old datastore away before restoring",
                existing.display()
            )));
        }
    }
    if !snapshot.is_file() {
        return Err(Error::InvalidArgument(format!(
            "{}: no such snapshot file",
            snapshot.display()
        )));
    }
    // Validate before copying anything into place: a bad file must not become the store.
    schema::check_header(snapshot)?;
    ensure_parent(db_path)?;
    let tmp = temp_sibling(db_path, "restoring");
    remove_temp(&tmp);
    let result = (|| {
        std::fs::copy(snapshot, &tmp).map_err(|e| io_err(&tmp, e))?;
        check_store(&tmp, snapshot)?;
        install(&tmp, db_path)
    })();
    if result.is_err() {
        remove_temp(&tmp);
    }
    result
}

/// Writes a consistent copy of the store at `db_path` to `out` (replacing `out`). Works
/// while a server is running and writing.
pub async fn save(db_path: &Path, out: &Path) -> Result<()> {
    let (db, out) = (db_path.to_path_buf(), out.to_path_buf());
    tokio::task::spawn_blocking(move || save_blocking(&db, &out))
        .await
        .map_err(|e| Error::Internal(format!("snapshot save failed: {e}")))?
}

/// Installs `snapshot` as the store at `db_path`. Refuses if a store exists there; fails
/// with [`Error::Corrupt`] naming `snapshot` if it is not an intact r8s store.
pub async fn restore(snapshot: &Path, db_path: &Path) -> Result<()> {
    let (snap, db) = (snapshot.to_path_buf(), db_path.to_path_buf());
    tokio::task::spawn_blocking(move || restore_blocking(&snap, &db))
        .await
        .map_err(|e| Error::Internal(format!("snapshot restore failed: {e}")))?
}
