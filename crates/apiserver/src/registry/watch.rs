//! Watch: synthetic ADDED events for the current state (when asked), then every change
//! from the store in revision order, filtered by selectors with upstream's transitions
//! (an object that stops matching is seen as DELETED, one that starts matching as ADDED).
//!
//! Store events are decoded once for all watchers of a version ([`EventCache`]); every
//! watcher gets the same immutable [`SharedObject`] and its serialized form.

use super::event_cache::{EventCache, SharedObject};
use super::{ListParams, Registry, collection_prefix};
use crate::error::{ApiError, ApiResult};
use futures::stream::{BoxStream, StreamExt};
use r8s_api::catalog::ResourceInfo;
use r8s_store::{EventKind, WatchEvent};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// One event as sent to clients.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiEvent {
    /// `ADDED`, `MODIFIED`, `DELETED`, `BOOKMARK` or `ERROR`.
    pub kind: &'static str,
    /// Possibly shared with other watchers of the same change: never mutated.
    pub object: Arc<SharedObject>,
}

impl ApiEvent {
    /// An event carrying an object of its own.
    pub fn new(kind: &'static str, object: Value) -> ApiEvent {
        ApiEvent {
            kind,
            object: SharedObject::new(object),
        }
    }

    /// The event's object.
    pub fn value(&self) -> &Value {
        self.object.value()
    }
}

/// Watch parameters beyond the list ones.
#[derive(Debug, Clone, Default)]
pub struct WatchParams {
    pub bookmarks: bool,
    /// `sendInitialEvents=true`: synthetic ADDED then a bookmark marking their end.
    pub send_initial_events: bool,
    pub bookmark_interval: Option<Duration>,
}

impl Registry {
    /// Start a watch; errors that happen before the first event (bad resourceVersion) are
    /// returned; later ones (compaction, lag) arrive as an ERROR event that ends the stream.
    pub async fn watch(
        &self,
        info: &'static ResourceInfo,
        namespace: Option<&str>,
        params: ListParams,
        wp: WatchParams,
    ) -> ApiResult<BoxStream<'static, ApiEvent>> {
        let prefix = collection_prefix(info, namespace);
        let rv = params.resource_version.as_str();
        let synthetic = rv.is_empty() || rv == "0" || wp.send_initial_events;
        let (initial, from) = if synthetic {
            let mut lp = params.clone();
            lp.limit = 0;
            lp.continue_token = None;
            lp.resource_version = String::new();
            let page = self.list(info, namespace, &lp).await?;
            let evs: Vec<ApiEvent> = page
                .items
                .into_iter()
                .map(|object| ApiEvent::new("ADDED", object))
                .collect();
            (evs, page.resource_version)
        } else {
            let rev: i64 = rv
                .parse()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version {rv:?}")))?;
            (Vec::new(), rev)
        };
        let mut initial = initial;
        if wp.send_initial_events && wp.bookmarks {
            initial.push(bookmark(info, from, true));
        }
        let store_stream = match self.store.watch(&prefix, from).await {
            Ok(s) => s,
            Err(e @ r8s_store::Error::Compacted { .. }) => {
                let err = ApiError::gone(format!("too old resource version: {from} ({e})"));
                let ev = ApiEvent::new("ERROR", err.status_body());
                return Ok(futures::stream::iter(vec![ev]).boxed());
            }
            Err(e) => return Err(e.into()),
        };
        let filter = params;
        let cache = self.events.clone();
        let changes = store_stream
            .map(move |item| match item {
                Ok(ev) => translate(&cache, info, &filter, ev),
                Err(e) => {
                    let err: ApiError = match e {
                        r8s_store::Error::Compacted { .. } => {
                            ApiError::gone(format!("too old resource version: {e}"))
                        }
                        other => ApiError::gone(format!("watch ended: {other}")),
                    };
                    Some(ApiEvent::new("ERROR", err.status_body()))
                }
            })
            .filter_map(futures::future::ready);
        // End the stream after an ERROR event.
        let changes = end_after_error(changes.boxed());
        let events = futures::stream::iter(initial).chain(changes);
        Ok(match (wp.bookmarks, wp.bookmark_interval) {
            (true, Some(every)) => with_bookmarks(info, events.boxed(), from, every),
            _ => events.boxed(),
        })
    }
}

/// A store event → what a client with these selectors sees (or nothing).
fn translate(
    cache: &EventCache,
    info: &'static ResourceInfo,
    filter: &ListParams,
    ev: WatchEvent,
) -> Option<ApiEvent> {
    let rev = ev.revision();
    let event = |kind, object| Some(ApiEvent { kind, object });
    match ev.kind {
        EventKind::Put => {
            let new = cache.decode(info, &ev.kv, ev.kv.mod_revision)?;
            let new_match = filter.matches(info, new.value());
            // Without selectors every version matches, so the previous one need not be
            // decoded at all.
            let unfiltered = filter.label_selector.is_none() && filter.field_selector.is_none();
            let old_match = match &ev.prev {
                Some(_) if unfiltered => Some(true),
                Some(prev) => cache
                    .decode(info, prev, prev.mod_revision)
                    .map(|old| filter.matches(info, old.value())),
                None => None,
            };
            match (old_match, new_match) {
                (None | Some(false), true) => event("ADDED", new),
                (Some(true), true) => event("MODIFIED", new),
                (Some(true), false) => event("DELETED", new),
                (_, false) => None,
            }
        }
        EventKind::Delete => {
            // The last state, as of the delete: its resourceVersion is the delete's.
            let old = cache.decode(info, ev.prev.as_ref()?, rev)?;
            if !filter.matches(info, old.value()) {
                return None;
            }
            event("DELETED", old)
        }
    }
}

fn bookmark(info: &ResourceInfo, rev: i64, initial_end: bool) -> ApiEvent {
    let mut metadata = json!({"resourceVersion": rev.to_string()});
    if initial_end {
        metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    ApiEvent::new(
        "BOOKMARK",
        json!({"kind": info.kind, "apiVersion": info.api_version(), "metadata": metadata}),
    )
}

/// Stop right after the first ERROR event.
fn end_after_error(s: BoxStream<'static, ApiEvent>) -> BoxStream<'static, ApiEvent> {
    futures::stream::unfold((s, false), |(mut s, done)| async move {
        if done {
            return None;
        }
        let ev = s.next().await?;
        let is_err = ev.kind == "ERROR";
        Some((ev, (s, is_err)))
    })
    .boxed()
}

/// Interleave periodic BOOKMARK events carrying the last revision seen; ends with `events`.
fn with_bookmarks(
    info: &'static ResourceInfo,
    events: BoxStream<'static, ApiEvent>,
    start: i64,
    every: Duration,
) -> BoxStream<'static, ApiEvent> {
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    futures::stream::unfold(
        (events, ticker, start),
        move |(mut events, mut ticker, mut last)| async move {
            tokio::select! {
                ev = events.next() => {
                    let ev = ev?;
                    if let Some(rv) = ev
                        .value()
                        .pointer("/metadata/resourceVersion")
                        .and_then(Value::as_str)
                        .and_then(|s| s.parse::<i64>().ok())
                    {
                        last = last.max(rv);
                    }
                    Some((ev, (events, ticker, last)))
                }
                _ = ticker.tick() => Some((bookmark(info, last, false), (events, ticker, last))),
            }
        },
    )
    .boxed()
}

#[cfg(test)]
#[path = "watch_tests.rs"]
mod tests;
