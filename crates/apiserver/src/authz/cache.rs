//! Keeps the in-memory [`Policy`] current: one watch per RBAC kind through the registry
//! (initial state, then every change), so a new binding takes effect as soon as the store
//! reports it. A watch that ends (compaction, store trouble) is restarted with a fresh
//! initial state that replaces the kind's objects wholesale.

use super::policy::{Kind, Policy};
use crate::registry::{ListParams, Registry, WatchParams};
use futures::StreamExt as _;
use serde_json::Value;
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

/// How long a request waits for the first full view of the policy after start.
const SYNC_WAIT: Duration = Duration::from_secs(10);
/// Pause before restarting a watch that ended.
const RETRY: Duration = Duration::from_millis(200);

/// The policy plus which kinds have been loaded.
pub struct PolicyCache {
    policy: RwLock<Policy>,
    /// Bit per [`Kind`] whose initial state has been loaded.
    synced: tokio::sync::watch::Sender<u8>,
}

const ALL_SYNCED: u8 = 0b1111;

fn bit(kind: Kind) -> u8 {
    match kind {
        Kind::ClusterRole => 1,
        Kind::Role => 2,
        Kind::ClusterRoleBinding => 4,
        Kind::RoleBinding => 8,
    }
}

impl PolicyCache {
    /// A cache fed by four watch tasks; they stop once the cache is dropped.
    pub fn start(registry: Registry) -> Arc<PolicyCache> {
        let cache = Arc::new(PolicyCache {
            policy: RwLock::new(Policy::default()),
            synced: tokio::sync::watch::Sender::new(0),
        });
        for kind in Kind::ALL {
            tokio::spawn(run(Arc::downgrade(&cache), registry.clone(), kind));
        }
        cache
    }

    /// Wait (bounded) until every kind has been loaded once.
    pub async fn wait_synced(&self) {
        if *self.synced.borrow() == ALL_SYNCED {
            return;
        }
        let mut rx = self.synced.subscribe();
        let _ = tokio::time::timeout(SYNC_WAIT, rx.wait_for(|v| *v == ALL_SYNCED)).await;
    }

    /// Run `f` on the current policy.
    pub fn read<T>(&self, f: impl FnOnce(&Policy) -> T) -> T {
        match self.policy.read() {
            Ok(p) => f(&p),
            // A panic while updating left the lock poisoned; the data is still usable.
            Err(poisoned) => f(&poisoned.into_inner()),
        }
    }

    fn write(&self, f: impl FnOnce(&mut Policy)) {
        match self.policy.write() {
            Ok(mut p) => f(&mut p),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }
}

/// Watch one kind forever (until the cache is gone).
async fn run(cache: Weak<PolicyCache>, registry: Registry, kind: Kind) {
    let Some(info) = r8s_api::catalog::find("rbac.authorization.k8s.io", "v1", kind.plural())
    else {
        tracing::error!(kind = kind.plural(), "RBAC kind missing from the catalog");
        return;
    };
    loop {
        let wp = WatchParams {
            bookmarks: true,
            send_initial_events: true,
            bookmark_interval: None,
        };
        match registry.watch(info, None, ListParams::default(), wp).await {
            Ok(mut events) => {
                // Objects of the initial state, until the bookmark that ends it.
                let mut initial: Option<Vec<Value>> = Some(Vec::new());
                while let Some(ev) = events.next().await {
                    let Some(cache) = cache.upgrade() else {
                        return;
                    };
                    match (ev.kind, initial.as_mut()) {
                        ("ADDED", Some(list)) => list.push(ev.object.into_value()),
                        ("BOOKMARK", Some(list)) => {
                            let objs = std::mem::take(list);
                            cache.write(|p| p.replace(kind, &objs));
                            cache.synced.send_modify(|v| *v |= bit(kind));
                            initial = None;
                        }
                        ("ADDED" | "MODIFIED", None) => cache.write(|p| p.upsert(kind, ev.value())),
                        ("DELETED", None) => cache.write(|p| p.remove(kind, ev.value())),
                        ("ERROR", _) => {
                            tracing::debug!(kind = kind.plural(), "RBAC watch ended; restarting");
                            break;
                        }
                        _ => {}
                    }
                }
            }
            Err(e) => {
                tracing::warn!(kind = kind.plural(), error = %e.message, "RBAC watch failed; retrying");
            }
        }
        if cache.upgrade().is_none() {
            return;
        }
        tokio::time::sleep(RETRY).await;
    }
}
