//! Copy the embedded store into etcd (`r8s datastore migrate --to URL`).
//!
//! Every live key of the source is copied with its latest value, byte for byte, at one
//! consistent source revision (the source should be stopped, i.e. no server running on
//! it). Revisions are not preserved — they are the target's own, as after an etcd restore —
//! so clients re-list after the switch. Keys attached to a lease (Kubernetes Events) get a
//! fresh lease in the target with [`MigrateOptions::lease_ttl_seconds`], one target lease
//! per source lease: the remaining TTL of a lease cannot be read through [`Store`].
//!
//! The copy refuses to merge: if the target already holds any key under
//! [`MigrateOptions::guard_prefix`] (`/registry/`) it fails before writing anything,
//! unless [`MigrateOptions::force`] is set, in which case existing keys are overwritten.

use crate::{Error, KeyValue, LeaseId, ListOptions, Result, Revision, Store};
use futures::StreamExt;
use std::collections::HashMap;
use std::collections::hash_map::Entry;

/// How to migrate.
#[derive(Debug, Clone)]
pub struct MigrateOptions {
    /// Overwrite keys the target already has instead of refusing.
    pub force: bool,
    /// Only keys under this prefix are copied (empty = every key).
    pub prefix: String,
    /// The target must hold no key under this prefix unless `force`.
    pub guard_prefix: String,
    /// Keys read from the source per page.
    pub page_size: i64,
    /// Writes in flight against the target.
    pub concurrency: usize,
    /// TTL of the leases granted in the target for leased keys (kube-apiserver's default
    /// `--event-ttl` is one hour).
    pub lease_ttl_seconds: i64,
}

impl Default for MigrateOptions {
    fn default() -> Self {
        Self {
            force: false,
            prefix: String::new(),
            guard_prefix: "/registry/".to_string(),
            page_size: 500,
            concurrency: 32,
            lease_ttl_seconds: 3600,
        }
    }
}

/// Progress, reported after each page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MigrateProgress {
    /// Keys written so far.
    pub copied: u64,
    /// Keys in the source when the copy started.
    pub total: u64,
}

/// What was copied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrateReport {
    /// Keys written to the target.
    pub keys: u64,
    /// Bytes of values written.
    pub bytes: u64,
    /// Keys that already existed in the target and were overwritten (`force` only).
    pub overwritten: u64,
    /// Keys attached to a lease.
    pub leased_keys: u64,
    /// Leases granted in the target.
    pub leases: u64,
    /// The source revision the copy is consistent at.
    pub source_revision: Revision,
    /// The target's revision after the copy.
    pub target_revision: Revision,
}

/// Copy every live key (latest value) of `from` into `to`; see the module docs.
pub async fn migrate(
    from: &dyn Store,
    to: &dyn Store,
    opts: &MigrateOptions,
    progress: &mut (dyn FnMut(MigrateProgress) + Send),
) -> Result<MigrateReport> {
    if opts.page_size <= 0 || opts.concurrency == 0 {
        return Err(Error::InvalidArgument(
            "migration page size and concurrency must be positive".into(),
        ));
    }
    if !opts.force {
        refuse_if_not_empty(to, &opts.guard_prefix).await?;
    }
    let total = u64::try_from(from.count(&opts.prefix).await?).unwrap_or(0);
    let mut report = MigrateReport::default();
    let mut leases: HashMap<LeaseId, LeaseId> = HashMap::new();
    let mut start_after: Option<String> = None;
    let mut revision: Revision = 0;
    loop {
        let page = from
            .list(
                &opts.prefix,
                ListOptions {
                    revision,
                    limit: opts.page_size,
                    start_after: start_after.take(),
                },
            )
            .await?;
        revision = page.revision;
        report.source_revision = page.revision;
        // Leases first, sequentially: one target lease per source lease.
        for kv in page.items.iter().filter(|kv| kv.lease != 0) {
            if let Entry::Vacant(slot) = leases.entry(kv.lease) {
                slot.insert(to.grant_lease(opts.lease_ttl_seconds).await?);
                report.leases += 1;
            }
        }
        let leases = &leases;
        let mut writes = futures::stream::iter(page.items.iter())
            .map(|kv| copy_one(to, kv, leases.get(&kv.lease).copied(), opts.force))
            .buffer_unordered(opts.concurrency);
        while let Some(outcome) = writes.next().await {
            let overwritten = outcome?;
            report.overwritten += u64::from(overwritten);
        }
        report.keys += page.items.len() as u64;
        report.bytes += page
            .items
            .iter()
            .map(|kv| kv.value.len() as u64)
            .sum::<u64>();
        report.leased_keys += page.items.iter().filter(|kv| kv.lease != 0).count() as u64;
        progress(MigrateProgress {
            copied: report.keys,
            total: total.max(report.keys),
        });
        match page.items.last() {
            Some(last) if page.more => start_after = Some(last.key.clone()),
            _ => break,
        }
    }
    report.target_revision = to.current_revision().await?;
    Ok(report)
}

/// Fail, naming the first key, if `to` holds anything under `prefix`.
async fn refuse_if_not_empty(to: &dyn Store, prefix: &str) -> Result<()> {
    let n = to.count(prefix).await?;
    if n == 0 {
        return Ok(());
    }
    let first = to
        .list(
            prefix,
            ListOptions {
                limit: 1,
                ..Default::default()
            },
        )
        .await?
        .items
        .into_iter()
        .next()
        .map_or_else(String::new, |kv| format!(" (first: {})", kv.key));
    Err(Error::InvalidArgument(format!(
        "the target datastore already holds {n} keys under {prefix}{first}; refusing to \
         merge into it: migrate into an empty etcd, or force to overwrite"
    )))
}

/// Write one key; returns whether an existing key was overwritten.
async fn copy_one(
    to: &dyn Store,
    kv: &KeyValue,
    lease: Option<LeaseId>,
    force: bool,
) -> Result<bool> {
    match to.create(&kv.key, kv.value.clone(), lease).await {
        Ok(_) => return Ok(false),
        Err(Error::AlreadyExists(key)) if !force => {
            return Err(Error::InvalidArgument(format!(
                "the target datastore already holds {key}; refusing to overwrite it without force"
            )));
        }
        Err(Error::AlreadyExists(_)) => {}
        Err(e) => return Err(e),
    }
    // Forced: overwrite whatever is there, retrying if it changes under us.
    for _ in 0..10 {
        let current = to.get(&kv.key, 0).await?;
        let result = match current {
            Some(cur) => {
                to.update(&kv.key, kv.value.clone(), cur.mod_revision, lease)
                    .await
            }
            None => to.create(&kv.key, kv.value.clone(), lease).await,
        };
        match result {
            Ok(_) => return Ok(true),
            Err(Error::Conflict { .. } | Error::NotFound(_) | Error::AlreadyExists(_)) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(Error::Internal(format!(
        "key {} kept changing in the target while overwriting it",
        kv.key
    )))
}
