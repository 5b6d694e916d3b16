//! Conformance suite shared by every [`Store`](crate::Store) backend.
//!
//! Each check is a `pub async fn name(store: DynStore)` that panics on a violation. A backend's
//! test file runs them all with one line, one `#[tokio::test]` per check:
//!
//! ```ignore
//! r8s_store::conformance_tests!(|| async { make_fresh_store().await });
//! ```
//!
//! The factory is called once per check and must return a fresh store, either a
//! [`DynStore`] or an `Option<DynStore>` (`None` skips the check, e.g. no etcd reachable).
//!
//! Contract between checks and factories:
//! - checks only use keys under `/registry/` and only look at keys under that prefix, so a
//!   factory for a shared backend (etcd) isolates checks by wrapping the store with a unique
//!   root prefix that it adds to and strips from keys;
//! - checks never assume revisions are consecutive or start at 1: another check may write
//!   to the same backend concurrently (etcd revisions are cluster-wide); they only rely on
//!   revisions being strictly increasing and on the revisions the store returns;
//! - compaction is global in etcd, so the checks that compact ([`compact_keeps_latest`],
//!   [`watch_compacted`]) take a process-wide exclusive lock and every other check a shared
//!   one: in one test binary, a compaction never runs while another check reads history;
//! - `watch(prefix, 0)` means "from now" (as in the trait); a check that replays history
//!   first writes `/registry/warm-up` so the revision before its own first write is never 0;
//! - a watch from a compacted revision may fail either from `watch()` itself or as the
//!   first item of the stream;
//! - leases are checked with a 1 s TTL and up to 20 s for the expiry to be observed.

mod kv;
mod watch;

pub use kv::*;
pub use watch::*;

use crate::{DynStore, WatchEvent, WatchStream};
use futures::StreamExt;
use std::future::Future;
use std::time::Duration;

/// What a factory may return: a store, or `None` to skip the check.
pub trait TestStore {
    /// The store to check, `None` to skip.
    fn into_test_store(self) -> Option<DynStore>;
}

impl TestStore for DynStore {
    fn into_test_store(self) -> Option<DynStore> {
        Some(self)
    }
}

impl TestStore for Option<DynStore> {
    fn into_test_store(self) -> Option<DynStore> {
        self
    }
}

/// Serialises compaction checks against all others within one process (see module docs).
static HISTORY: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

pub(crate) async fn shared_history() -> tokio::sync::RwLockReadGuard<'static, ()> {
    HISTORY.read().await
}

pub(crate) async fn exclusive_history() -> tokio::sync::RwLockWriteGuard<'static, ()> {
    HISTORY.write().await
}

/// Calls `$m!` with the names of every check (one place to list them).
#[doc(hidden)]
#[macro_export]
macro_rules! __for_each_check {
    ([$($m:tt)*] $($args:tt)*) => {
        $($m)*!($($args)*;
            create_get,
            create_already_exists,
            update_with_revision,
            delete_with_and_without_revision,
            recreate_after_delete,
            get_at_revision,
            list_prefix,
            list_at_revision,
            list_paging_consistent,
            count_keys,
            revisions_strictly_increasing,
            health_and_backend,
            watch_from_now,
            watch_from_past_revision,
            watch_prev_values,
            watch_prefix_isolation,
            watch_concurrent_no_gaps_no_dupes,
            watch_compacted,
            compact_keeps_latest,
            lease_unknown,
            lease_keep_alive,
            lease_expiry_deletes_keys,
        );
    };
}

/// Generates one `#[tokio::test]` per conformance check; `$factory` is an expression that
/// can be called with no argument and returns a future of a fresh store (see [`TestStore`]).
#[macro_export]
macro_rules! conformance_tests {
    ($factory:expr) => {
        $crate::__for_each_check!([$crate::__conformance_test] $factory);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_test {
    ($factory:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let make = $factory;
                match $crate::testsuite::TestStore::into_test_store(make().await) {
                    Some(store) => $crate::testsuite::$name(store).await,
                    None => eprintln!("skipped {}: no store available", stringify!($name)),
                }
            }
        )*
    };
}

macro_rules! __run_all {
    ($make:ident; $($name:ident),* $(,)?) => {
        $(
            if let Some(store) = TestStore::into_test_store($make().await) {
                $name(store).await;
            }
        )*
    };
}

/// Runs every check in turn, each on a fresh store from `make`.
pub async fn run_all<F, Fut, S>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
    S: TestStore,
{
    __for_each_check!([__run_all] make);
}

/// How long a check waits for an expected watch event.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

/// The next event of `w`; panics on an error item, the end of the stream or a timeout.
pub async fn next_event(w: &mut WatchStream) -> WatchEvent {
    match tokio::time::timeout(EVENT_TIMEOUT, w.next()).await {
        Ok(Some(Ok(ev))) => ev,
        Ok(Some(Err(e))) => panic!("watch failed: {e}"),
        Ok(None) => panic!("watch ended unexpectedly"),
        Err(_) => panic!("no watch event within {EVENT_TIMEOUT:?}"),
    }
}

/// Asserts that `w` yields nothing for `wait`.
pub async fn expect_quiet(w: &mut WatchStream, wait: Duration) {
    if let Ok(item) = tokio::time::timeout(wait, w.next()).await {
        panic!("expected no watch event, got {item:?}");
    }
}
