//! Finding etcd's compacted revision.
//!
//! etcd has no API that returns the compacted revision, and compaction is cluster-wide:
//! anyone sharing the cluster (another r8s with another root prefix, `etcdctl compact`,
//! etcd's own `--auto-compaction-*`) may compact. A key recording our own compactions would
//! miss those, so instead the backend *probes*: a range read at revision `r` fails with
//! "required revision has been compacted" exactly when `r` is below the compacted revision.
//! That predicate is monotonic, so the compacted revision is found by a search seeded with
//! the last value seen (from our own `compact`, a watch's `compact_revision`, or an earlier
//! search): when nothing changed, two cheap probes confirm it.

use super::EtcdStore;
use super::errors::Failure;
use crate::{Result, Revision};
use etcd_client::GetOptions;
use std::sync::atomic::Ordering;

impl EtcdStore {
    /// Is revision `rev` (>= 1) compacted away, i.e. below etcd's compacted revision?
    pub(super) async fn probe_compacted(&self, rev: Revision) -> Result<bool> {
        let key = self.keys.prefix_range("").0;
        let opts = GetOptions::new().with_revision(rev).with_count_only();
        let mut kv = self.kv.clone();
        match self.rpc(kv.get(key, Some(opts))).await {
            Ok(_) => Ok(false),
            Err(Failure::Compacted) => Ok(true),
            // A revision past the end cannot be compacted.
            Err(Failure::FutureRevision) => Ok(false),
            Err(f) => Err(self.fail("compaction probe", f, 0)),
        }
    }

    /// The smallest revision that is still readable; 0 if nothing was ever compacted.
    pub(super) async fn find_compacted_revision(&self) -> Result<Revision> {
        let current = self.current_revision_inner().await?;
        // Invariant: every r <= lo is compacted (lo = 0: none known), hi is readable.
        let mut lo: Revision = 0;
        let mut hi: Revision = current.max(1);
        let hint = self.compacted.load(Ordering::Relaxed);
        if hint > lo && hint < hi {
            if self.probe_compacted(hint).await? {
                lo = hint;
            } else {
                hi = hint;
            }
            // Check the neighbour on the other side: when the hint is exact this ends it.
            let next = if lo == hint { hint + 1 } else { hint - 1 };
            if next > lo && next < hi {
                if self.probe_compacted(next).await? {
                    lo = next;
                } else {
                    hi = next;
                }
            }
        }
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if self.probe_compacted(mid).await? {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        // Revision 1 is etcd's empty initial state: "compacted to 1" is "never compacted".
        let compacted = if hi <= 1 { 0 } else { hi };
        self.note_compacted(compacted);
        Ok(compacted)
    }

    /// Remember a compacted revision learnt elsewhere (only ever moves forward).
    pub(super) fn note_compacted(&self, rev: Revision) {
        self.compacted.fetch_max(rev, Ordering::Relaxed);
    }
}
