//! Watch streams: history from the log, then live events from the writer's feed.
//!
//! The stream subscribes to the feed BEFORE reading history. A batch is committed before
//! it is published, so every event is either in the history read or arrives on the
//! subscription (or both): reading history until it runs dry, then following the feed
//! while skipping revisions already yielded, has no gap and no duplicate.
//!
//! A receiver that falls behind its feed queue does not lose events either: it goes back
//! to reading the log from its last revision. Only when that history has been compacted
//! away does the stream end, with `Error::Compacted`.

use super::feed::{Next, Subscription};
use super::log::{self};
use super::reader::ReadPool;
use crate::{Error, Result, Revision, WatchEvent, WatchStream};
use futures::StreamExt;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;

/// Rows read from the log per history query.
const PAGE: i64 = 512;

struct State {
    prefix: Arc<str>,
    path: Arc<PathBuf>,
    reads: Arc<ReadPool>,
    rx: Subscription,
    /// The revision of the last event yielded (or the start point).
    last: Revision,
    /// Reading the log rather than the feed.
    catching_up: bool,
    buf: VecDeque<WatchEvent>,
    done: bool,
}

/// Starts a watch of `prefix` after revision `after`; `start` is the revision "now" for
/// `after == 0`, read after subscribing.
pub(crate) async fn watch(
    reads: Arc<ReadPool>,
    path: Arc<PathBuf>,
    rx: Subscription,
    now: Revision,
    prefix: &str,
    after: Revision,
) -> Result<WatchStream> {
    if after < 0 {
        return Err(Error::InvalidArgument(format!("negative revision {after}")));
    }
    let mut state = State {
        prefix: prefix.into(),
        path,
        reads,
        rx,
        last: if after == 0 { now } else { after },
        catching_up: after != 0,
        buf: VecDeque::new(),
        done: false,
    };
    if state.catching_up {
        // First page now, so a compacted start fails the call itself.
        state.read_page().await?;
    }
    Ok(futures::stream::unfold(state, |mut s| async move {
        let item = s.next().await?;
        Some((item, s))
    })
    .boxed())
}

impl State {
    async fn read_page(&mut self) -> Result<()> {
        let (prefix, after, path) = (self.prefix.clone(), self.last, self.path.clone());
        let rows = self
            .reads
            .run(move |c| log::history(c, &path, &prefix, after, PAGE))
            .await?;
        if (rows.len() as i64) < PAGE {
            self.catching_up = false;
        }
        self.buf.extend(rows.into_iter().map(|r| r.into_event()));
        Ok(())
    }

    /// The next item, `None` once the stream ended.
    async fn next(&mut self) -> Option<Result<WatchEvent>> {
        loop {
            if self.done {
                return None;
            }
            if let Some(ev) = self.buf.pop_front() {
                self.last = ev.revision();
                return Some(Ok(ev));
            }
            if self.catching_up {
                if let Err(e) = self.read_page().await {
                    self.done = true;
                    return Some(Err(e));
                }
                continue;
            }
            match self.rx.recv().await {
                Next::Batch(batch) => {
                    let (last, prefix) = (self.last, &*self.prefix);
                    self.buf.extend(
                        batch
                            .iter()
                            .filter(|ev| ev.revision() > last && ev.kv.key.starts_with(prefix))
                            .cloned(),
                    );
                }
                // Missed batches are committed, so they are in the log.
                Next::Lagged => self.catching_up = true,
                Next::Closed => {
                    self.done = true;
                    return Some(Err(Error::Unavailable("the datastore was closed".into())));
                }
            }
        }
    }
}
