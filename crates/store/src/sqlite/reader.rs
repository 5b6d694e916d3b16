//! A small pool of read-only connections. WAL mode lets them read while the writer
//! commits; each read runs in its own transaction (one consistent snapshot) on a blocking
//! thread.

use super::schema::{is_fatal, open_reader};
use crate::{Error, Result};
use rusqlite::Connection;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;

pub(crate) struct ReadPool {
    path: PathBuf,
    busy_timeout: Duration,
    idle: Mutex<Vec<Connection>>,
    /// Bounds the number of connections (and of blocking threads used for reads).
    permits: Arc<Semaphore>,
}

impl ReadPool {
    pub fn new(path: PathBuf, size: usize, busy_timeout: Duration) -> ReadPool {
        ReadPool {
            path,
            busy_timeout,
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(size.max(1))),
        }
    }

    /// Runs `f` in a read transaction on a pooled connection.
    pub async fn run<T, F>(self: &Arc<Self>, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::Unavailable("datastore read pool closed".into()))?;
        let pool = self.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            pool.with_conn(f)
        })
        .await
        .map_err(|e| Error::Internal(format!("datastore read task failed: {e}")))?
    }

    fn with_conn<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let pooled = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match pooled {
            Some(c) => c,
            None => open_reader(&self.path, self.busy_timeout)?,
        };
        let result = match conn.unchecked_transaction() {
            Ok(tx) => f(&tx),
            Err(e) => Err(super::schema::map_err(&self.path, e)),
        };
        // A connection that failed at the database level is not reused.
        if !matches!(&result, Err(e) if is_fatal(e)) {
            self.idle
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(conn);
        }
        result
    }
}
