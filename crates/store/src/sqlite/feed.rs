//! The live event feed from the writer thread to watch streams, filtered by key prefix
//! where it is published: a commit wakes only the watches whose prefix it touches.
//!
//! A broadcast channel would wake every watch on every commit, each to find most batches
//! irrelevant; with a few dozen informers that cost was paid on every write.
//!
//! Each watch has its own bounded queue. When a queue is full the watch is marked lagged
//! and gets nothing more until it has drained its queue and noticed the mark; it then
//! re-reads the log (every published batch is committed first, so nothing is lost).
//! The mark is only set on a full queue, so a lagged watch always has batches to drain
//! before it looks at the mark, and can never sleep through it.

use super::writer::Batch;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc::{self, error::TryRecvError, error::TrySendError};

struct Sub {
    prefix: Arc<str>,
    tx: mpsc::Sender<Batch>,
    lagged: Arc<AtomicBool>,
}

/// The publishing side, shared by the store and its writer thread.
pub(crate) struct Feed {
    subs: Mutex<Vec<Sub>>,
    /// Batches a watch may fall behind before it is marked lagged.
    buffer: usize,
}

/// What a subscription yields next.
#[derive(Debug)]
pub(crate) enum Next {
    /// A committed batch with at least one event under the prefix.
    Batch(Batch),
    /// Batches were skipped: read them from the log.
    Lagged,
    /// The store is gone.
    Closed,
}

/// The receiving side of one watch.
pub(crate) struct Subscription {
    rx: mpsc::Receiver<Batch>,
    lagged: Arc<AtomicBool>,
}

impl Feed {
    pub fn new(buffer: usize) -> Feed {
        Feed {
            subs: Mutex::new(Vec::new()),
            buffer: buffer.max(1),
        }
    }

    fn subs(&self) -> std::sync::MutexGuard<'_, Vec<Sub>> {
        // Nothing under the lock can panic halfway through a change.
        self.subs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Batches touching `prefix` from now on.
    pub fn subscribe(&self, prefix: &str) -> Subscription {
        let (tx, rx) = mpsc::channel(self.buffer);
        let lagged = Arc::new(AtomicBool::new(false));
        self.subs().push(Sub {
            prefix: prefix.into(),
            tx,
            lagged: lagged.clone(),
        });
        Subscription { rx, lagged }
    }

    /// Hands `batch` to every watch it concerns; forgets watches that ended.
    pub fn publish(&self, batch: &Batch) {
        self.subs().retain(|sub| {
            if sub.tx.is_closed() {
                return false;
            }
            if sub.lagged.load(Ordering::Acquire)
                || !batch.iter().any(|ev| ev.kv.key.starts_with(&*sub.prefix))
            {
                return true;
            }
            match sub.tx.try_send(batch.clone()) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) => {
                    sub.lagged.store(true, Ordering::Release);
                    true
                }
                Err(TrySendError::Closed(_)) => false,
            }
        });
    }

    /// Watches currently subscribed.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.subs().len()
    }
}

impl Subscription {
    pub async fn recv(&mut self) -> Next {
        match self.rx.try_recv() {
            Ok(batch) => return Next::Batch(batch),
            Err(TryRecvError::Disconnected) => return Next::Closed,
            Err(TryRecvError::Empty) => {}
        }
        // Drained: from here on the writer sends again, and the log holds all it skipped.
        if self.lagged.swap(false, Ordering::AcqRel) {
            return Next::Lagged;
        }
        match self.rx.recv().await {
            Some(batch) => Next::Batch(batch),
            None => Next::Closed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EventKind, KeyValue, WatchEvent};

    fn batch(keys: &[&str]) -> Batch {
        Arc::new(
            keys.iter()
                .enumerate()
                .map(|(i, k)| {
                    let rev = i as i64 + 1;
                    WatchEvent {
                        kind: EventKind::Put,
                        kv: KeyValue {
                            key: k.to_string(),
                            value: Vec::new(),
                            create_revision: rev,
                            mod_revision: rev,
                            lease: 0,
                        },
                        prev: None,
                    }
                })
                .collect(),
        )
    }

    fn keys(next: Next) -> Vec<String> {
        match next {
            Next::Batch(b) => b.iter().map(|e| e.kv.key.clone()).collect(),
            other => panic!("expected a batch, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn only_batches_under_the_prefix_arrive() {
        let feed = Feed::new(8);
        let mut pods = feed.subscribe("/pods/");
        let mut all = feed.subscribe("/");
        feed.publish(&batch(&["/cm/a"]));
        feed.publish(&batch(&["/cm/b", "/pods/x"]));
        assert_eq!(keys(pods.recv().await), ["/cm/b", "/pods/x"]);
        assert_eq!(keys(all.recv().await), ["/cm/a"]);
        assert_eq!(keys(all.recv().await), ["/cm/b", "/pods/x"]);
        assert!(pods.rx.try_recv().is_err(), "nothing else for /pods/");
    }

    #[tokio::test]
    async fn a_full_queue_marks_the_watch_lagged_after_it_drains() {
        let feed = Feed::new(2);
        let mut sub = feed.subscribe("/");
        for k in ["/a", "/b", "/c", "/d"] {
            feed.publish(&batch(&[k]));
        }
        assert_eq!(keys(sub.recv().await), ["/a"]);
        assert_eq!(keys(sub.recv().await), ["/b"]);
        assert!(matches!(sub.recv().await, Next::Lagged));
        // Delivery resumes once the lag was reported.
        feed.publish(&batch(&["/e"]));
        assert_eq!(keys(sub.recv().await), ["/e"]);
    }

    #[tokio::test]
    async fn ended_watches_are_forgotten_and_closing_ends_the_rest() {
        let feed = Feed::new(4);
        let dropped = feed.subscribe("/x/");
        let mut kept = feed.subscribe("/y/");
        drop(dropped);
        feed.publish(&batch(&["/z"]));
        assert_eq!(feed.len(), 1);
        drop(feed);
        assert!(matches!(kept.recv().await, Next::Closed));
    }
}
