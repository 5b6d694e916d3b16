//! The writer thread: the only connection that writes, with group commit.
//!
//! Requests arrive over a channel. The thread takes everything pending (up to a batch
//! limit), applies it in ONE transaction, each request at its own revision, commits (one
//! fsync for the whole batch), publishes the events, then answers every caller. A rejected
//! precondition fails only its request. If the database itself fails (disk full, I/O), the
//! batch is rolled back and its requests are retried one transaction each, so the failure
//! reaches only the requests it belongs to.
//!
//! Compaction runs here too, in small steps between batches, so it never holds the write
//! lock for long and never makes a writer see "database is locked".

use super::feed::Feed;
use super::log;
use super::ops::{self, Ctx, Op, Reply};
use super::schema::{is_fatal, map_err, meta};
use crate::{Error, Result, Revision, WatchEvent};
use rusqlite::{Connection, Transaction, TransactionBehavior};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use tokio::sync::{mpsc, oneshot};

/// The events of one committed batch, in revision order.
pub(crate) type Batch = Arc<Vec<WatchEvent>>;

enum Msg {
    Write(Op, oneshot::Sender<Result<Reply>>),
    Compact(Revision, oneshot::Sender<Result<()>>),
}

/// Settings of the writer thread.
pub(crate) struct Config {
    pub path: PathBuf,
    pub max_batch: usize,
    pub compact_step: i64,
    /// Gives freed pages back to the file system after each compaction.
    pub vacuum_pages: i64,
}

/// A compaction in progress.
struct Job {
    target: Revision,
    cursor: Revision,
    waiters: Vec<oneshot::Sender<Result<()>>>,
}

/// Handle to the writer thread; dropping it stops the thread after its current batch.
pub(crate) struct Writer {
    tx: Option<mpsc::Sender<Msg>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn unavailable() -> Error {
    Error::Unavailable("the datastore writer has stopped".into())
}

impl Writer {
    /// Starts the thread on `conn`; resumes an interrupted compaction if there is one.
    pub fn start(
        conn: Connection,
        cfg: Config,
        events: Arc<Feed>,
        published: Arc<AtomicI64>,
    ) -> Result<Writer> {
        let cursor = log::meta_int(&conn, &cfg.path, meta::COMPACT_CURSOR)?;
        let target = log::meta_int(&conn, &cfg.path, meta::COMPACT_REVISION)?;
        let job = (cursor < target).then(|| Job {
            target,
            cursor,
            waiters: Vec::new(),
        });
        let (tx, rx) = mpsc::channel(cfg.max_batch.max(1) * 4);
        let state = Thread {
            conn,
            cfg,
            rx,
            events,
            published,
            job,
        };
        let thread = std::thread::Builder::new()
            .name("r8s-sqlite-writer".into())
            .spawn(move || state.run())
            .map_err(|e| Error::Internal(format!("cannot start the datastore writer: {e}")))?;
        Ok(Writer {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Applies `op`. Cancel-safe: once sent, the request is applied whole or not at all,
    /// whether or not the caller still waits.
    pub async fn call(&self, op: Op) -> Result<Reply> {
        let (reply, rx) = oneshot::channel();
        let tx = self.tx.as_ref().ok_or_else(unavailable)?;
        tx.send(Msg::Write(op, reply))
            .await
            .map_err(|_| unavailable())?;
        rx.await.map_err(|_| unavailable())?
    }

    /// Compacts history up to `rev`; returns once done.
    pub async fn compact(&self, rev: Revision) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        let tx = self.tx.as_ref().ok_or_else(unavailable)?;
        tx.send(Msg::Compact(rev, reply))
            .await
            .map_err(|_| unavailable())?;
        rx.await.map_err(|_| unavailable())?
    }

    /// Whether the thread still runs.
    pub fn is_running(&self) -> bool {
        self.tx.as_ref().is_some_and(|tx| !tx.is_closed())
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the channel ends the thread's loop; wait so the file is closed when the
        // store is gone (a reopen in the same process must not race the old writer).
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Thread {
    conn: Connection,
    cfg: Config,
    rx: mpsc::Receiver<Msg>,
    events: Arc<Feed>,
    published: Arc<AtomicI64>,
    job: Option<Job>,
}

/// Wall clock in unix milliseconds (lease expiry is stored as such).
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Thread {
    fn run(mut self) {
        loop {
            // Block for work only when no compaction is pending; otherwise interleave.
            let first = if self.job.is_some() {
                match self.rx.try_recv() {
                    Ok(m) => Some(m),
                    Err(mpsc::error::TryRecvError::Empty) => None,
                    Err(mpsc::error::TryRecvError::Disconnected) => break,
                }
            } else {
                match self.rx.blocking_recv() {
                    Some(m) => Some(m),
                    None => break,
                }
            };
            let mut writes = Vec::new();
            let mut pending = first;
            while let Some(msg) = pending.take() {
                match msg {
                    Msg::Write(op, reply) => writes.push((op, reply)),
                    Msg::Compact(rev, reply) => self.start_compaction(rev, reply),
                }
                if writes.len() < self.cfg.max_batch {
                    pending = self.rx.try_recv().ok();
                }
            }
            if !writes.is_empty() {
                self.commit(writes);
            }
            self.compaction_step();
        }
        tracing::debug!(path = %self.cfg.path.display(), "datastore writer stopped");
    }

    /// Runs a batch; on a database failure, retries each request alone.
    fn commit(&mut self, writes: Vec<(Op, oneshot::Sender<Result<Reply>>)>) {
        let ops: Vec<&Op> = writes.iter().map(|(op, _)| op).collect();
        let results = match self.try_batch(&ops) {
            Ok(results) => results,
            Err(e) if ops.len() == 1 => vec![Err(e)],
            // The database as a whole is unusable (locked by another process, damaged):
            // retrying request by request would only fail the same way, slowly.
            Err(e @ (Error::Unavailable(_) | Error::Corrupt { .. })) => {
                ops.iter().map(|_| Err(copy_err(&e))).collect()
            }
            Err(e) => {
                tracing::warn!(error = %e, "datastore batch failed; retrying its writes one by one");
                ops.iter()
                    .map(|op| match self.try_batch(&[op]) {
                        Ok(mut r) => r.pop().unwrap_or_else(|| Err(e_internal())),
                        Err(e) => Err(e),
                    })
                    .collect()
            }
        };
        for ((_, reply), result) in writes.into_iter().zip(results) {
            // The caller may be gone (dropped future); the write stands either way.
            let _ = reply.send(result);
        }
    }

    /// Applies `ops` in one transaction and commits; publishes the events.
    fn try_batch(&mut self, ops: &[&Op]) -> Result<Vec<Result<Reply>>> {
        let path = self.cfg.path.as_path();
        let tx = Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)
            .map_err(|e| map_err(path, e))?;
        let start = log::current_revision(&tx, path)?;
        let mut ctx = Ctx {
            conn: &tx,
            path,
            rev: start,
            now_ms: now_ms(),
            events: Vec::new(),
        };
        let mut results = Vec::with_capacity(ops.len());
        for op in ops {
            match ops::apply(&mut ctx, op) {
                Err(e) if is_fatal(&e) => return Err(e), // dropping `tx` rolls back
                r => results.push(r),
            }
        }
        let (rev, events) = (ctx.rev, ctx.events);
        if rev != start {
            log::set_meta_int(&tx, path, meta::REVISION, rev)?;
        }
        tx.commit().map_err(|e| map_err(path, e))?;
        if !events.is_empty() {
            // Published before any caller hears back, so a watch started after a write
            // returned never misses it (see `watch`).
            self.published.store(rev, Ordering::SeqCst);
            self.events.publish(&Arc::new(events));
        }
        Ok(results)
    }

    fn start_compaction(&mut self, rev: Revision, reply: oneshot::Sender<Result<()>>) {
        let path = self.cfg.path.as_path();
        let checked = (|| {
            let current = log::current_revision(&self.conn, path)?;
            let compacted = log::compacted_revision(&self.conn, path)?;
            if rev > current {
                return Err(Error::FutureRevision(rev));
            }
            if rev <= compacted {
                return Err(Error::Compacted {
                    requested: rev,
                    compacted,
                });
            }
            // Recorded first, in its own commit: from now on reads below `rev` fail, before
            // any row they would need is gone.
            log::set_meta_int(&self.conn, path, meta::COMPACT_REVISION, rev)?;
            let cursor = log::meta_int(&self.conn, path, meta::COMPACT_CURSOR)?;
            Ok(cursor)
        })();
        match (checked, &mut self.job) {
            (Err(e), _) => {
                let _ = reply.send(Err(e));
            }
            (Ok(_), Some(job)) => {
                job.target = rev;
                job.waiters.push(reply);
            }
            (Ok(cursor), None) => {
                self.job = Some(Job {
                    target: rev,
                    cursor,
                    waiters: vec![reply],
                })
            }
        }
    }

    fn compaction_step(&mut self) {
        let Some(job) = self.job.as_mut() else { return };
        let path = self.cfg.path.as_path();
        let step = (|| {
            let tx = Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)
                .map_err(|e| map_err(path, e))?;
            let cursor =
                ops::compact_step(&tx, path, job.cursor, job.target, self.cfg.compact_step)?;
            tx.commit().map_err(|e| map_err(path, e))?;
            Ok::<_, Error>(cursor)
        })();
        match step {
            Ok(cursor) if cursor < job.target => job.cursor = cursor,
            Ok(_) => {
                for w in job.waiters.drain(..) {
                    let _ = w.send(Ok(()));
                }
                self.job = None;
                if let Err(e) = self.conn.execute_batch(&format!(
                    "PRAGMA incremental_vacuum({});",
                    self.cfg.vacuum_pages
                )) {
                    tracing::warn!(error = %e, "datastore incremental vacuum failed");
                }
            }
            Err(e) => {
                // Stop here; the cursor in `meta` lets the next compaction (or restart)
                // pick up where this one stopped.
                tracing::warn!(error = %e, "datastore compaction step failed");
                for w in job.waiters.drain(..) {
                    let _ = w.send(Err(copy_err(&e)));
                }
                self.job = None;
            }
        }
    }
}

/// A copy of a database error for each of several waiters (`Error` is not `Clone`).
fn copy_err(e: &Error) -> Error {
    match e {
        Error::DiskFull(p) => Error::DiskFull(p.clone()),
        Error::Corrupt { path, reason } => Error::Corrupt {
            path: path.clone(),
            reason: reason.clone(),
        },
        Error::Unavailable(m) => Error::Unavailable(m.clone()),
        other => Error::Internal(other.to_string()),
    }
}

fn e_internal() -> Error {
    Error::Internal("datastore batch produced no result".into())
}
