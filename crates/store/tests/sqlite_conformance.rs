//! The shared conformance suite against the embedded SQLite backend, one fresh database
//! per check. Automatic compaction is off (checks compact explicitly); leases are checked
//! every 200 ms so expiry checks run fast.

use r8s_store::DynStore;
use r8s_store::sqlite::{Options, SqliteStore};
use std::sync::Arc;
use std::time::Duration;

async fn fresh() -> DynStore {
    // The directory is leaked on purpose: the store outlives this function.
    let dir = tempfile::tempdir().expect("tempdir").keep();
    let opts = Options {
        compact_interval: None,
        lease_check_interval: Duration::from_millis(200),
        ..Options::default()
    };
    let store = SqliteStore::open(&dir.join("db/state.db"), opts)
        .await
        .expect("open");
    Arc::new(store)
}

r8s_store::conformance_tests!(fresh);
