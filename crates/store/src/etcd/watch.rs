//! Watches: one etcd watch (on its own gRPC stream) per store watch, mapped to
//! [`WatchEvent`]s. etcd never drops a slow watcher (it buffers and catches it up from
//! history), so the only ways the stream ends are compaction, cancellation by etcd, or a
//! broken connection — each reported as a final `Err` item.

use super::EtcdStore;
use super::errors::{Failure, simple_error};
use super::keys::Keys;
use crate::{Error, EventKind, KeyValue, Result, Revision, WatchEvent, WatchStream};
use etcd_client::{EventType, WatchOptions, WatchResponse};
use futures::StreamExt;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// What the stream needs after `watch` returned.
struct State {
    stream: etcd_client::WatchStream,
    keys: Keys,
    endpoints: String,
    compacted: Arc<AtomicI64>,
    pending: VecDeque<Result<WatchEvent>>,
    /// Revision of the last event delivered (where a re-watch would resume).
    last: Revision,
    done: bool,
}

impl EtcdStore {
    pub(super) async fn watch_inner(&self, prefix: &str, after: Revision) -> Result<WatchStream> {
        if after < 0 {
            return Err(Error::InvalidArgument(format!(
                "watch revision {after} is negative"
            )));
        }
        // Pin "from now on" to a revision, and check the start is not compacted before
        // handing out a stream: etcd only reports it asynchronously, after the watch exists.
        let after = if after == 0 {
            self.current_revision_inner().await?
        } else if self.probe_compacted(after).await? {
            // A read at `after` fails exactly when `after` is below the compacted revision.
            return Err(Error::Compacted {
                requested: after,
                compacted: self.compacted_revision_inner().await?,
            });
        } else {
            after
        };
        let (start, end) = self.keys.prefix_range(prefix);
        let opts = WatchOptions::new()
            .with_range(end)
            .with_start_revision(after + 1)
            .with_prev_key();
        let mut client = self.watch_client.clone();
        let mut stream = self
            .rpc(client.watch(start, Some(opts)))
            .await
            .map_err(|f| self.fail("watch", f, 0))?;
        // Wait for etcd to confirm the watcher exists, so writes made after `watch`
        // returns are certainly seen (and a refused watch fails here, not later).
        let first = self
            .rpc(stream.message())
            .await
            .map_err(|f| self.fail("watch", f, 0))?;
        let mut state = State {
            stream,
            keys: self.keys.clone(),
            endpoints: self.endpoints.clone(),
            compacted: self.compacted.clone(),
            pending: VecDeque::new(),
            last: after,
            done: false,
        };
        match first {
            Some(resp) => state.absorb(resp),
            None => {
                return Err(Error::Unavailable(format!(
                    "etcd at {} closed the watch stream before creating the watch",
                    self.endpoints
                )));
            }
        }
        if matches!(state.pending.front(), Some(Err(_))) {
            // Refused at creation (e.g. compacted in between): report it directly.
            if let Some(Err(e)) = state.pending.pop_front() {
                return Err(e);
            }
        }
        Ok(futures::stream::unfold(state, next).boxed())
    }
}

/// The next item of a watch stream.
async fn next(mut st: State) -> Option<(Result<WatchEvent>, State)> {
    loop {
        if let Some(item) = st.pending.pop_front() {
            if item.is_err() {
                st.done = true;
                st.pending.clear();
            }
            return Some((item, st));
        }
        if st.done {
            return None;
        }
        match st.stream.message().await {
            Ok(Some(resp)) => st.absorb(resp),
            Ok(None) => {
                st.fail(Error::Unavailable(format!(
                    "etcd at {} closed the watch stream",
                    st.endpoints
                )));
            }
            Err(e) => {
                let f = super::errors::classify(&e);
                let err = simple_error(f, "watch", &st.endpoints, 0);
                st.fail(err);
            }
        }
    }
}

impl State {
    fn fail(&mut self, err: Error) {
        self.pending.push_back(Err(err));
    }

    /// Queue the events (or the terminal error) of one etcd watch response.
    fn absorb(&mut self, resp: WatchResponse) {
        if resp.compact_revision() > 0 {
            let compacted = resp.compact_revision();
            self.compacted.fetch_max(compacted, Ordering::Relaxed);
            self.fail(Error::Compacted {
                requested: self.last,
                compacted,
            });
            return;
        }
        for ev in resp.events() {
            match convert(&self.keys, ev) {
                Ok(ev) => {
                    self.last = ev.revision();
                    self.pending.push_back(Ok(ev));
                }
                Err(e) => {
                    self.fail(e);
                    return;
                }
            }
        }
        if resp.canceled() {
            let reason = resp.cancel_reason();
            let err = match super::errors::classify_status(tonic::Code::Unknown, reason) {
                Failure::Compacted => Error::Compacted {
                    requested: self.last,
                    compacted: self.compacted.load(Ordering::Relaxed),
                },
                _ => Error::Unavailable(format!(
                    "etcd at {} cancelled the watch: {}",
                    self.endpoints,
                    if reason.is_empty() {
                        "no reason given"
                    } else {
                        reason
                    }
                )),
            };
            self.fail(err);
        }
    }
}

/// Map one etcd event. Creates carry no previous value; deletes carry the key with the
/// revision of the delete and the deleted value in `prev`.
fn convert(keys: &Keys, ev: &etcd_client::Event) -> Result<WatchEvent> {
    let raw = ev
        .kv()
        .ok_or_else(|| Error::Internal("etcd watch event without a key".into()))?;
    let prev = ev.prev_kv().map(|p| keys.kv(p)).transpose()?;
    match ev.event_type() {
        EventType::Put => {
            let kv = keys.kv(raw)?;
            let created = kv.create_revision == kv.mod_revision;
            Ok(WatchEvent {
                kind: EventKind::Put,
                kv,
                prev: if created { None } else { prev },
            })
        }
        EventType::Delete => Ok(WatchEvent {
            kind: EventKind::Delete,
            kv: KeyValue {
                key: keys.strip(raw.key())?,
                value: Vec::new(),
                create_revision: prev.as_ref().map_or(0, |p| p.create_revision),
                mod_revision: raw.mod_revision(),
                lease: 0,
            },
            prev,
        }),
    }
}
