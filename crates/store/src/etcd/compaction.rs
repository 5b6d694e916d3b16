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
use std::future::Future;
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
        let hint = self.compacted.load(Ordering::Relaxed);
        let compacted = search(current, hint, |rev| self.probe_compacted(rev)).await?;
        self.note_compacted(compacted);
        Ok(compacted)
    }

    /// Remember a compacted revision learnt elsewhere (only ever moves forward).
    pub(super) fn note_compacted(&self, rev: Revision) {
        self.compacted.fetch_max(rev, Ordering::Relaxed);
    }
}

/// The compacted revision given the current revision, a hint, and `compacted(r)` telling
/// whether revision `r` is below it.
async fn search<F, Fut>(current: Revision, hint: Revision, mut compacted: F) -> Result<Revision>
where
    F: FnMut(Revision) -> Fut,
    Fut: Future<Output = Result<bool>>,
{
    // Invariant: every r <= lo is compacted (lo = 0: none known), hi is readable.
    let mut lo: Revision = 0;
    let mut hi: Revision = current.max(1);
    if hint > lo && hint < hi {
        if compacted(hint).await? {
            lo = hint;
        } else {
            hi = hint;
        }
        // Check the neighbour on the other side: when the hint is exact this ends it.
        let next = if lo == hint { hint + 1 } else { hint - 1 };
        if next > lo && next < hi {
            if compacted(next).await? {
                lo = next;
            } else {
                hi = next;
            }
        }
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if compacted(mid).await? {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    // Revision 1 is etcd's empty initial state: "compacted to 1" is "never compacted".
    Ok(if hi <= 1 { 0 } else { hi })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// Run the search against a cluster compacted at `at`; returns (result, probes).
    fn run(current: Revision, hint: Revision, at: Revision) -> (Revision, usize) {
        let probes = Cell::new(0);
        let fut = search(current, hint, |r| {
            probes.set(probes.get() + 1);
            std::future::ready(Ok(r < at))
        });
        let got = futures::executor::block_on(fut).expect("search");
        (got, probes.get())
    }

    #[test]
    fn finds_the_compacted_revision_from_any_hint() {
        for at in [0, 1, 2, 3, 50, 999, 1000] {
            for hint in [0, 1, 2, at.max(1) - 1, at, at + 1, 500, 1000, 5000] {
                let want = if at <= 1 { 0 } else { at };
                assert_eq!(run(1000, hint, at).0, want, "at {at} hint {hint}");
            }
        }
    }

    #[test]
    fn an_exact_hint_costs_two_probes() {
        assert_eq!(run(1_000_000, 4242, 4242), (4242, 2));
        // A stale hint still converges, in logarithmic probes.
        let (got, probes) = run(1_000_000, 4242, 700_000);
        assert_eq!(got, 700_000);
        assert!(probes <= 25, "{probes} probes");
    }
}
