//! Embedded SQLite backend: a kine-style append-only revision log in one file.
//!
//! - [`schema`]: file format, pragmas (WAL, `synchronous = FULL`), validation;
//! - [`log`]: rows and read queries; [`ops`]: write operations and compaction steps;
//! - [`writer`]: the single writer thread with group commit; [`reader`]: read-only pool;
//! - [`watch`]: history + live event streams.
//!
//! One process owns a store file at a time (the watch feed comes from its writer thread);
//! other processes may read it, e.g. `snapshot save`.

mod feed;
mod log;
mod ops;
mod reader;
pub(crate) mod schema;
mod watch;
mod writer;

use crate::{
    Error, KeyValue, LeaseId, ListOptions, ListResult, Result, Revision, Store, WatchStream,
};
use feed::Feed;
use ops::{Op, Reply};
use reader::ReadPool;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::task::JoinHandle;
use writer::Writer;

/// Tuning for the SQLite backend.
#[derive(Debug, Clone)]
pub struct Options {
    /// Read-only connections (concurrent reads).
    pub read_connections: usize,
    /// Most write requests committed in one transaction.
    pub max_batch: usize,
    /// How long a connection waits for a lock held by another process.
    pub busy_timeout: Duration,
    /// Committed batches a watcher may fall behind before it re-reads from the log.
    pub watch_buffer: usize,
    /// Run compaction this often (`None` = never automatically).
    pub compact_interval: Option<Duration>,
    /// Automatic compaction keeps this many recent revisions.
    pub compact_keep: i64,
    /// Revisions handled per compaction step (one short write transaction each).
    pub compact_step: i64,
    /// How often expired leases are looked for.
    pub lease_check_interval: Duration,
}

impl Default for Options {
    /// Like k3s/kine: compact every 5 minutes, keeping the last 1000 revisions.
    fn default() -> Self {
        Options {
            read_connections: 4,
            max_batch: 512,
            busy_timeout: Duration::from_secs(30),
            watch_buffer: 1024,
            compact_interval: Some(Duration::from_secs(300)),
            compact_keep: 1000,
            compact_step: 1000,
            lease_check_interval: Duration::from_secs(1),
        }
    }
}

/// The embedded store.
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: Arc<PathBuf>,
    writer: Writer,
    reads: Arc<ReadPool>,
    events: Arc<Feed>,
    /// The revision of the last published batch.
    published: Arc<AtomicI64>,
    tasks: std::sync::Mutex<Vec<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for t in self
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            t.abort();
        }
    }
}

impl SqliteStore {
    /// Open (creating if needed, with its parent directories) the store at `path`.
    /// A file that is not an r8s store fails with [`Error::Corrupt`].
    pub async fn open(path: &Path, opts: Options) -> Result<Self> {
        let path = path.to_path_buf();
        let busy = opts.busy_timeout;
        let p = path.clone();
        let (conn, current) = tokio::task::spawn_blocking(move || -> Result<_> {
            if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| Error::Unavailable(format!("{}: {e}", dir.display())))?;
            }
            schema::check_header(&p)?;
            let conn = schema::open_writer(&p, busy)?;
            schema::init_or_validate(&conn, &p)?;
            ops::refresh_leases(&conn, &p, writer::now_ms())?;
            let current = log::current_revision(&conn, &p)?;
            Ok((conn, current))
        })
        .await
        .map_err(|e| Error::Internal(format!("opening the datastore failed: {e}")))??;

        let events = Arc::new(Feed::new(opts.watch_buffer.max(16)));
        let published = Arc::new(AtomicI64::new(current));
        let cfg = writer::Config {
            path: path.clone(),
            max_batch: opts.max_batch.max(1),
            compact_step: opts.compact_step.max(1),
            vacuum_pages: 4096,
        };
        let writer = Writer::start(conn, cfg, events.clone(), published.clone())?;
        let inner = Arc::new(Inner {
            reads: Arc::new(ReadPool::new(path.clone(), opts.read_connections, busy)),
            path: Arc::new(path),
            writer,
            events,
            published,
            tasks: std::sync::Mutex::new(Vec::new()),
        });
        let mut tasks = vec![tokio::spawn(expire_leases(
            Arc::downgrade(&inner),
            opts.lease_check_interval,
        ))];
        if let Some(every) = opts.compact_interval {
            tasks.push(tokio::spawn(compact_periodically(
                Arc::downgrade(&inner),
                every,
                opts.compact_keep,
            )));
        }
        *inner.tasks.lock().unwrap_or_else(|p| p.into_inner()) = tasks;
        Ok(SqliteStore { inner })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Connection, &Path) -> Result<T> + Send + 'static,
    {
        let path = self.inner.path.clone();
        self.inner.reads.run(move |c| f(c, &path)).await
    }
}

fn unexpected(r: Reply) -> Error {
    Error::Internal(format!("datastore writer answered {r:?} unexpectedly"))
}

fn check_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(Error::InvalidArgument("empty key".into()));
    }
    Ok(())
}

/// Deletes the keys of expired leases, through the writer like any write.
async fn expire_leases(inner: Weak<Inner>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        if let Err(e) = inner.writer.call(Op::ExpireLeases).await {
            tracing::warn!(error = %e, "expiring datastore leases failed");
        }
    }
}

/// Compacts history older than the last `keep` revisions.
async fn compact_periodically(inner: Weak<Inner>, every: Duration, keep: i64) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // the first tick is immediate
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        let target = inner.published.load(Ordering::SeqCst) - keep.max(0);
        let path = inner.path.clone();
        let compacted = inner
            .reads
            .run(move |c| log::compacted_revision(c, &path))
            .await;
        match compacted {
            Ok(c) if target > c => match inner.writer.compact(target).await {
                Ok(()) => tracing::debug!(revision = target, "datastore compacted"),
                Err(Error::Compacted { .. }) => {}
                Err(e) => tracing::warn!(error = %e, "datastore compaction failed"),
            },
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "datastore compaction check failed"),
        }
    }
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn create(&self, key: &str, value: Vec<u8>, lease: Option<LeaseId>) -> Result<Revision> {
        check_key(key)?;
        let op = Op::Create {
            key: key.to_string(),
            value,
            lease: lease.unwrap_or(0),
        };
        match self.inner.writer.call(op).await? {
            Reply::Revision(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    async fn update(
        &self,
        key: &str,
        value: Vec<u8>,
        expected: Revision,
        lease: Option<LeaseId>,
    ) -> Result<Revision> {
        check_key(key)?;
        let op = Op::Update {
            key: key.to_string(),
            value,
            expected,
            lease: lease.unwrap_or(0),
        };
        match self.inner.writer.call(op).await? {
            Reply::Revision(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<(KeyValue, Revision)> {
        check_key(key)?;
        match self
            .inner
            .writer
            .call(Op::Delete {
                key: key.to_string(),
                expected,
            })
            .await?
        {
            Reply::Deleted(kv, r) => Ok((kv, r)),
            other => Err(unexpected(other)),
        }
    }

    async fn get(&self, key: &str, rev: Revision) -> Result<Option<KeyValue>> {
        let key = key.to_string();
        self.read(move |c, p| log::get(c, p, &key, rev)).await
    }

    async fn list(&self, prefix: &str, opts: ListOptions) -> Result<ListResult> {
        let prefix = prefix.to_string();
        self.read(move |c, p| log::list(c, p, &prefix, &opts)).await
    }

    async fn count(&self, prefix: &str) -> Result<i64> {
        let prefix = prefix.to_string();
        self.read(move |c, p| log::count(c, p, &prefix)).await
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream> {
        // Subscribe first, then take "now": see the module docs of `watch`.
        let rx = self.inner.events.subscribe(prefix);
        let now = self.inner.published.load(Ordering::SeqCst);
        watch::watch(
            self.inner.reads.clone(),
            self.inner.path.clone(),
            rx,
            now,
            prefix,
            after,
        )
        .await
    }

    async fn current_revision(&self) -> Result<Revision> {
        Ok(self.inner.published.load(Ordering::SeqCst))
    }

    async fn compact(&self, rev: Revision) -> Result<()> {
        if rev <= 0 {
            return Err(Error::InvalidArgument(format!(
                "cannot compact at revision {rev}"
            )));
        }
        self.inner.writer.compact(rev).await
    }

    async fn compacted_revision(&self) -> Result<Revision> {
        self.read(log::compacted_revision).await
    }

    async fn grant_lease(&self, ttl_seconds: i64) -> Result<LeaseId> {
        match self
            .inner
            .writer
            .call(Op::GrantLease { ttl_seconds })
            .await?
        {
            Reply::Lease(id) => Ok(id),
            other => Err(unexpected(other)),
        }
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<()> {
        match self.inner.writer.call(Op::KeepAlive { lease }).await? {
            Reply::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn health(&self) -> Result<()> {
        if !self.inner.writer.is_running() {
            return Err(Error::Unavailable(
                "the datastore writer has stopped".into(),
            ));
        }
        self.read(|c, p| {
            c.query_row("SELECT 1 FROM meta LIMIT 1", [], |_| Ok(()))
                .map_err(|e| schema::map_err(p, e))
        })
        .await
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
