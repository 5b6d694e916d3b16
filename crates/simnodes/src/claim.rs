//! Which global node indices a group of simulated nodes uses. Node addresses and pod ranges
//! derive from a node's global index (see `ipam`), so groups started side by side (separate
//! processes with different name prefixes) must not share indices.
//!
//! Every group records its block in one ConfigMap, `kube-node-lease/sim-node-indices`
//! (key: name prefix, value: `START..END`, half-open). The ConfigMap is written with
//! compare-and-swap on its resourceVersion, so of two groups claiming at once one gets 409
//! Conflict, re-reads and takes the next free block. A restarted group keeps its block: the
//! `sim.r8s.io/index` annotation of its first node (what existing nodes really use) wins,
//! then its own entry.

use crate::lease::NODE_LEASE_NAMESPACE;
use crate::{MAX_NODES, SimError, SimOptions, api_code, nodes};
use k8s_openapi::api::core::v1::{ConfigMap, Node};
use kube::api::{Api, PostParams};
use rand::Rng as _;
use std::collections::BTreeMap;
use std::ops::Range;
use std::time::Duration;

/// Node annotation holding the node's global index.
pub const INDEX_ANNOTATION: &str = "sim.r8s.io/index";
/// The ConfigMap (in `kube-node-lease`) recording every group's block.
pub const REGISTRY_NAME: &str = "sim-node-indices";
/// Conflicts and transient errors tolerated before giving up.
const MAX_ATTEMPTS: u32 = 50;

/// Blocks by name prefix, parsed from the ConfigMap's data (malformed entries are ignored).
fn parse_blocks(data: Option<&BTreeMap<String, String>>) -> BTreeMap<String, Range<usize>> {
    data.into_iter()
        .flatten()
        .filter_map(|(prefix, v)| {
            let (a, b) = v.trim().split_once("..")?;
            let r: Range<usize> = a.parse().ok()?..b.parse().ok()?;
            (!r.is_empty()).then(|| (prefix.clone(), r))
        })
        .collect()
}

fn overlaps(a: &Range<usize>, b: &Range<usize>) -> bool {
    a.start < b.end && b.start < a.end
}

/// The lowest start where `count` indices fit between `taken` blocks below [`MAX_NODES`].
fn first_fit<'a>(taken: impl Iterator<Item = &'a Range<usize>>, count: usize) -> Option<usize> {
    let mut taken: Vec<&Range<usize>> = taken.filter(|r| !r.is_empty()).collect();
    taken.sort_by_key(|r| r.start);
    let mut base = 0usize;
    for r in taken {
        if r.start >= base.saturating_add(count) {
            break;
        }
        base = base.max(r.end);
    }
    (base.saturating_add(count) <= MAX_NODES).then_some(base)
}

/// The outcome of [`plan`]: where the group starts and what its entry should say.
#[derive(Debug, PartialEq, Eq)]
struct Plan {
    base: usize,
    record: Range<usize>,
}

/// Decide the block of group `prefix` with `count` nodes given the recorded `blocks`.
/// `explicit` (the user's offset) is taken as is; `existing` (the base its nodes already
/// use) or the group's own entry is kept, but may not grow into another group's block.
fn plan(
    blocks: &BTreeMap<String, Range<usize>>,
    prefix: &str,
    count: usize,
    explicit: Option<usize>,
    existing: Option<usize>,
) -> Result<Plan, SimError> {
    let own = blocks.get(prefix);
    let mut others = blocks.iter().filter(|(p, _)| p.as_str() != prefix);
    let base = match (explicit, existing.or(own.map(|r| r.start))) {
        (Some(b), _) => {
            if let Some((other, r)) =
                others.find(|(_, r)| overlaps(r, &(b..b.saturating_add(count))))
            {
                tracing::warn!(prefix, other = %other, "explicit index offset {b} overlaps indices {r:?} of another group");
            }
            b
        }
        (None, Some(b)) => {
            if b.saturating_add(count) > MAX_NODES {
                return Err(SimError::InvalidOptions(format!(
                    "group {prefix:?} starts at node index {b}: {count} nodes exceed the maximum of {MAX_NODES}"
                )));
            }
            let want = b..b + count;
            if let Some((other, r)) = others.find(|(_, r)| overlaps(r, &want)) {
                return Err(SimError::Overlap {
                    prefix: prefix.to_string(),
                    want,
                    other: other.clone(),
                    theirs: r.clone(),
                });
            }
            b
        }
        (None, None) => {
            first_fit(others.map(|(_, r)| r), count).ok_or(SimError::Exhausted { count })?
        }
    };
    // Keep a larger recorded block: its nodes may still exist from an earlier, bigger run.
    let end = match own {
        Some(r) if r.start == base => r.end.max(base + count),
        _ => base + count,
    };
    Ok(Plan {
        base,
        record: base..end,
    })
}

/// The base recorded on the group's first node by an earlier run, if any.
async fn recorded_base(nodes: &Api<Node>, prefix: &str) -> Result<Option<usize>, kube::Error> {
    let node = nodes.get_opt(&nodes::node_name(prefix, 0)).await?;
    Ok(node
        .and_then(|n| n.metadata.annotations)
        .and_then(|a| a.get(INDEX_ANNOTATION).and_then(|v| v.parse().ok())))
}

/// One read-decide-write round; a concurrent writer surfaces as a 409 [`SimError::Claim`].
async fn try_claim(
    nodes: &Api<Node>,
    registry: &Api<ConfigMap>,
    opts: &SimOptions,
) -> Result<usize, SimError> {
    let existing = match opts.index_offset {
        Some(_) => None,
        None => recorded_base(nodes, &opts.name_prefix)
            .await
            .map_err(SimError::Claim)?,
    };
    let current = registry
        .get_opt(REGISTRY_NAME)
        .await
        .map_err(SimError::Claim)?;
    let blocks = parse_blocks(current.as_ref().and_then(|c| c.data.as_ref()));
    let p = plan(
        &blocks,
        &opts.name_prefix,
        opts.count,
        opts.index_offset,
        existing,
    )?;
    if blocks.get(&opts.name_prefix) == Some(&p.record) {
        return Ok(p.base);
    }
    let value = format!("{}..{}", p.record.start, p.record.end);
    let written = match current {
        Some(mut cm) => {
            // Carries the resourceVersion we read: a concurrent update makes this a 409.
            cm.data
                .get_or_insert_default()
                .insert(opts.name_prefix.clone(), value);
            registry
                .replace(REGISTRY_NAME, &PostParams::default(), &cm)
                .await
        }
        None => {
            let mut cm = ConfigMap::default();
            cm.metadata.name = Some(REGISTRY_NAME.into());
            cm.data = Some(BTreeMap::from([(opts.name_prefix.clone(), value)]));
            registry.create(&PostParams::default(), &cm).await
        }
    };
    written.map_err(SimError::Claim)?;
    tracing::info!(prefix = %opts.name_prefix, block = ?p.record, "claimed simulated node indices");
    Ok(p.base)
}

/// The global index of the group's node 0: `opts.index_offset` if given (still recorded so
/// other groups avoid it), else a block claimed through the API as described above.
pub async fn claim(client: &kube::Client, opts: &SimOptions) -> Result<usize, SimError> {
    if opts.count == 0 {
        return Ok(opts.index_offset.unwrap_or(0));
    }
    let nodes: Api<Node> = Api::all(client.clone());
    let registry: Api<ConfigMap> = Api::namespaced(client.clone(), NODE_LEASE_NAMESPACE);
    let mut attempt = 0;
    loop {
        match try_claim(&nodes, &registry, opts).await {
            Err(SimError::Claim(e))
                if attempt < MAX_ATTEMPTS
                    && api_code(&e).is_none_or(|c| c == 409 || c == 429 || c >= 500) =>
            {
                // Jitter so groups racing for the same block do not collide again in step.
                attempt += 1;
                let ms = rand::rng().random_range(10..=20 * u64::from(attempt.min(10)) + 10);
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            r => return r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocks(entries: &[(&str, Range<usize>)]) -> BTreeMap<String, Range<usize>> {
        entries
            .iter()
            .map(|(p, r)| (p.to_string(), r.clone()))
            .collect()
    }

    fn planned(p: Result<Plan, SimError>) -> (usize, Range<usize>) {
        let p = p.expect("plan");
        (p.base, p.record)
    }

    #[test]
    fn parse_ignores_malformed_entries() {
        let data = BTreeMap::from([
            ("good".to_string(), "0..2".to_string()),
            ("bad".to_string(), "2..x".to_string()),
            ("odd".to_string(), "7".to_string()),
        ]);
        assert_eq!(parse_blocks(Some(&data)), blocks(&[("good", 0..2)]));
        assert!(parse_blocks(None).is_empty());
    }

    #[test]
    fn first_fit_fills_gaps() {
        let taken = [0..2, 5..8, 10..10, 12..20];
        assert_eq!(first_fit([].iter(), 3), Some(0));
        assert_eq!(first_fit(taken.iter(), 3), Some(2));
        assert_eq!(first_fit(taken.iter(), 4), Some(8));
        assert_eq!(first_fit(taken.iter(), 5), Some(20));
        // Empty blocks take nothing; unsorted input is fine.
        assert_eq!(first_fit([12..20, 0..2, 10..10].iter(), 10), Some(2));
        let almost_full = [0..10, 10..MAX_NODES - 1];
        assert_eq!(first_fit(almost_full.iter(), 1), Some(MAX_NODES - 1));
        assert_eq!(first_fit(almost_full.iter(), 2), None);
        assert_eq!(first_fit([].iter(), MAX_NODES + 1), None);
    }

    #[test]
    fn new_groups_get_disjoint_blocks() {
        let b = blocks(&[("good", 0..2)]);
        let p = planned(plan(&b, "bad", 2, None, None));
        assert_eq!(p, (2, 2..4));
        let full = blocks(&[("big", 0..MAX_NODES - 1)]);
        assert!(matches!(
            plan(&full, "bad", 2, None, None),
            Err(SimError::Exhausted { count: 2 })
        ));
    }

    #[test]
    fn restarts_keep_their_block() {
        let b = blocks(&[("good", 0..4), ("bad", 4..6)]);
        // Same or smaller count: unchanged (the larger record stays).
        assert_eq!(planned(plan(&b, "good", 3, None, None)), (0, 0..4));
        // The last block may grow in place.
        assert_eq!(planned(plan(&b, "bad", 10, None, None)), (4, 4..14));
        // Growing into a neighbour is refused rather than sharing addresses.
        let err = plan(&b, "good", 5, None, None).expect_err("overlap");
        assert!(matches!(err, SimError::Overlap { ref other, .. } if other == "bad"));
        // The index recorded on existing nodes wins over a lost or stale entry.
        let stale = blocks(&[("good", 10..12), ("bad", 4..6)]);
        assert_eq!(planned(plan(&stale, "good", 2, None, Some(0))), (0, 0..2));
    }

    #[test]
    fn explicit_offset_overrides() {
        let b = blocks(&[("good", 0..4)]);
        assert_eq!(
            planned(plan(&b, "good", 2, Some(100), Some(0))),
            (100, 100..102)
        );
        // Even onto another group's block: the user asked for it.
        assert_eq!(planned(plan(&b, "bad", 2, Some(1), None)), (1, 1..3));
    }
}
