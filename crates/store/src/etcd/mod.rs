//! etcd v3 backend: the [`Store`] contract mapped onto etcd's KV, watch and lease APIs.
//!
//! Every store key lives in etcd as `Options::prefix + key` (the root prefix lets several
//! clusters or tests share one etcd). Writes are single-key transactions guarded by
//! create/mod revisions, exactly like the Kubernetes API server's own etcd3 storage, so
//! revisions handed out are etcd's. The compacted revision is discovered by probing (see
//! `compaction.rs`) because compaction is cluster-wide and etcd does not report it.

mod compaction;
mod errors;
mod keys;
#[doc(hidden)]
pub mod testing;
mod watch;

use crate::{
    Error, KeyValue, LeaseId, ListOptions, ListResult, Result, Revision, Store, WatchStream,
};
use errors::{Failure, classify, simple_error};
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, GetOptions, KvClient, LeaseClient,
    PutOptions, Txn, TxnOp, TxnOpResponse, WatchClient,
};
use keys::Keys;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::AtomicI64;
use std::time::Duration;

/// Tuning for the etcd backend.
#[derive(Debug, Clone)]
pub struct Options {
    /// Prepended verbatim to every key (e.g. `/cluster-a`); empty = keys as they are.
    pub prefix: String,
    /// How long `connect` waits for the cluster to answer before failing.
    pub connect_timeout: Duration,
    /// Upper bound for any single request; past it the call fails with `Unavailable`.
    pub request_timeout: Duration,
    /// Largest response accepted (big lists); gRPC's 4 MiB default is far too small.
    pub max_response_bytes: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            prefix: String::new(),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            max_response_bytes: i32::MAX as usize,
        }
    }
}

/// A store in an etcd v3 cluster.
pub struct EtcdStore {
    client: Client,
    kv: KvClient,
    watch_client: WatchClient,
    lease: LeaseClient,
    keys: Keys,
    /// Comma-joined endpoints, for error messages.
    endpoints: String,
    opts: Options,
    /// Best known lower bound of the compacted revision (a search hint).
    compacted: Arc<AtomicI64>,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("endpoints", &self.endpoints)
            .field("prefix", &self.opts.prefix)
            .finish()
    }
}

impl EtcdStore {
    /// Connect to the etcd cluster at `endpoints` (`http://host:2379`) and check it answers.
    pub async fn connect(endpoints: &[String], opts: Options) -> Result<Self> {
        if endpoints.is_empty() {
            return Err(Error::InvalidArgument("no etcd endpoints given".into()));
        }
        let joined = endpoints.join(",");
        let copts = ConnectOptions::new()
            .with_connect_timeout(opts.connect_timeout)
            .with_keep_alive(Duration::from_secs(30), Duration::from_secs(10));
        let client = match tokio::time::timeout(
            opts.connect_timeout,
            Client::connect(endpoints, Some(copts)),
        )
        .await
        {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                return Err(match classify(&e) {
                    Failure::Invalid(m) => {
                        Error::InvalidArgument(format!("etcd endpoints {joined}: {m}"))
                    }
                    _ => Error::Unavailable(format!("cannot connect to etcd at {joined}: {e}")),
                });
            }
            Err(_) => {
                return Err(Error::Unavailable(format!(
                    "cannot connect to etcd at {joined}: no answer within {:?}",
                    opts.connect_timeout
                )));
            }
        };
        let store = Self {
            kv: client
                .kv_client()
                .max_decoding_message_size(opts.max_response_bytes),
            watch_client: client
                .watch_client()
                .max_decoding_message_size(opts.max_response_bytes),
            lease: client.lease_client(),
            client,
            keys: Keys::new(&opts.prefix),
            endpoints: joined,
            opts,
            compacted: Arc::new(AtomicI64::new(0)),
        };
        // The client connects lazily: make one real request so a wrong address fails here.
        let probe =
            tokio::time::timeout(store.opts.connect_timeout, store.current_revision_inner());
        match probe.await {
            Ok(Ok(_)) => Ok(store),
            Ok(Err(e)) => Err(match e {
                Error::Unavailable(m) => Error::Unavailable(format!("cannot reach etcd: {m}")),
                other => other,
            }),
            Err(_) => Err(Error::Unavailable(format!(
                "cannot connect to etcd at {}: no answer within {:?}",
                store.endpoints, store.opts.connect_timeout
            ))),
        }
    }

    /// The raw etcd client (for tools that need etcd itself, e.g. benchmarks).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Run one etcd call with the request timeout, classifying failures.
    async fn rpc<T>(
        &self,
        fut: impl Future<Output = std::result::Result<T, etcd_client::Error>>,
    ) -> std::result::Result<T, Failure> {
        match tokio::time::timeout(self.opts.request_timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(classify(&e)),
            Err(_) => Err(Failure::Unavailable(format!(
                "no answer within {:?}",
                self.opts.request_timeout
            ))),
        }
    }

    /// The store error for a failure of operation `what` that involved no revision.
    fn fail(&self, what: &str, f: Failure, lease: LeaseId) -> Error {
        simple_error(f, what, &self.endpoints, lease)
    }

    /// The store error for a failure of a read at revision `rev`.
    async fn fail_at(&self, what: &str, f: Failure, rev: Revision) -> Error {
        match f {
            Failure::Compacted => {
                let compacted = match self.find_compacted_revision().await {
                    Ok(c) => c,
                    Err(_) => self.compacted.load(std::sync::atomic::Ordering::Relaxed),
                };
                Error::Compacted {
                    requested: rev,
                    compacted,
                }
            }
            Failure::FutureRevision => Error::FutureRevision(rev),
            other => self.fail(what, other, 0),
        }
    }

    async fn current_revision_inner(&self) -> Result<Revision> {
        let key = self.keys.prefix_range("").0;
        let mut kv = self.kv.clone();
        let resp = self
            .rpc(kv.get(key, Some(GetOptions::new().with_count_only())))
            .await
            .map_err(|f| self.fail("read revision", f, 0))?;
        Ok(header_revision(resp.header()))
    }

    async fn compacted_revision_inner(&self) -> Result<Revision> {
        self.find_compacted_revision().await
    }

    /// The current value of `key` from the else-branch `get` of a failed transaction.
    fn current_from(&self, resp: &etcd_client::TxnResponse) -> Result<Option<KeyValue>> {
        for op in resp.op_responses() {
            if let TxnOpResponse::Get(get) = op {
                return get.kvs().first().map(|kv| self.keys.kv(kv)).transpose();
            }
        }
        Ok(None)
    }
}

fn header_revision(h: Option<&etcd_client::ResponseHeader>) -> Revision {
    h.map_or(0, |h| h.revision())
}

fn put_options(lease: Option<LeaseId>) -> Option<PutOptions> {
    lease
        .filter(|l| *l != 0)
        .map(|l| PutOptions::new().with_lease(l))
}

#[async_trait::async_trait]
impl Store for EtcdStore {
    async fn create(&self, key: &str, value: Vec<u8>, lease: Option<LeaseId>) -> Result<Revision> {
        let k = self.keys.full(key);
        let txn = Txn::new()
            .when([Compare::create_revision(k.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(k, value, put_options(lease))]);
        let mut kv = self.kv.clone();
        let resp = self
            .rpc(kv.txn(txn))
            .await
            .map_err(|f| self.fail("create", f, lease.unwrap_or(0)))?;
        if resp.succeeded() {
            Ok(header_revision(resp.header()))
        } else {
            Err(Error::AlreadyExists(key.to_string()))
        }
    }

    async fn update(
        &self,
        key: &str,
        value: Vec<u8>,
        expected: Revision,
        lease: Option<LeaseId>,
    ) -> Result<Revision> {
        let k = self.keys.full(key);
        // `version > 0` keeps an update with expected = 0 from creating the key.
        let txn = Txn::new()
            .when([
                Compare::mod_revision(k.clone(), CompareOp::Equal, expected),
                Compare::version(k.clone(), CompareOp::Greater, 0),
            ])
            .and_then([TxnOp::put(k.clone(), value, put_options(lease))])
            .or_else([TxnOp::get(k, None)]);
        let mut kv = self.kv.clone();
        let resp = self
            .rpc(kv.txn(txn))
            .await
            .map_err(|f| self.fail("update", f, lease.unwrap_or(0)))?;
        if resp.succeeded() {
            return Ok(header_revision(resp.header()));
        }
        match self.current_from(&resp)? {
            None => Err(Error::NotFound(key.to_string())),
            Some(current) => Err(Error::Conflict {
                key: key.to_string(),
                current: Some(Box::new(current)),
            }),
        }
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<(KeyValue, Revision)> {
        let k = self.keys.full(key);
        let guard = match expected {
            Some(rev) => Compare::mod_revision(k.clone(), CompareOp::Equal, rev),
            None => Compare::version(k.clone(), CompareOp::Greater, 0),
        };
        let txn = Txn::new()
            .when([guard])
            .and_then([TxnOp::delete(
                k.clone(),
                Some(DeleteOptions::new().with_prev_key()),
            )])
            .or_else([TxnOp::get(k, None)]);
        let mut kv = self.kv.clone();
        let resp = self
            .rpc(kv.txn(txn))
            .await
            .map_err(|f| self.fail("delete", f, 0))?;
        if resp.succeeded() {
            let rev = header_revision(resp.header());
            for op in resp.op_responses() {
                if let TxnOpResponse::Delete(del) = op
                    && let Some(prev) = del.prev_kvs().first()
                {
                    return Ok((self.keys.kv(prev)?, rev));
                }
            }
            return Err(Error::NotFound(key.to_string()));
        }
        match self.current_from(&resp)? {
            None => Err(Error::NotFound(key.to_string())),
            Some(current) => Err(Error::Conflict {
                key: key.to_string(),
                current: Some(Box::new(current)),
            }),
        }
    }

    async fn get(&self, key: &str, rev: Revision) -> Result<Option<KeyValue>> {
        if rev < 0 {
            return Err(Error::InvalidArgument(format!(
                "revision {rev} is negative"
            )));
        }
        let mut kv = self.kv.clone();
        let opts = GetOptions::new().with_revision(rev);
        let mut resp = match self.rpc(kv.get(self.keys.full(key), Some(opts))).await {
            Ok(r) => r,
            Err(f) => return Err(self.fail_at("get", f, rev).await),
        };
        resp.take_kvs()
            .into_iter()
            .next()
            .map(|kv| self.keys.kv_owned(kv))
            .transpose()
    }

    async fn list(&self, prefix: &str, opts: ListOptions) -> Result<ListResult> {
        if opts.revision < 0 || opts.limit < 0 {
            return Err(Error::InvalidArgument(format!(
                "list revision {} / limit {} must not be negative",
                opts.revision, opts.limit
            )));
        }
        let (mut start, end) = self.keys.prefix_range(prefix);
        if let Some(after) = &opts.start_after {
            // The smallest key strictly greater than `after` is `after + "\0"`.
            let mut from = self.keys.full(after);
            from.push(0);
            if from > start {
                start = from;
            }
        }
        let mut get = GetOptions::new()
            .with_range(end)
            .with_revision(opts.revision);
        if opts.limit > 0 {
            get = get.with_limit(opts.limit);
        }
        let mut kv = self.kv.clone();
        let mut resp = match self.rpc(kv.get(start, Some(get))).await {
            Ok(r) => r,
            Err(f) => return Err(self.fail_at("list", f, opts.revision).await),
        };
        let items = resp
            .take_kvs()
            .into_iter()
            .map(|kv| self.keys.kv_owned(kv))
            .collect::<Result<Vec<_>>>()?;
        let items_len = items.len() as i64;
        let revision = if opts.revision > 0 {
            opts.revision
        } else {
            header_revision(resp.header())
        };
        Ok(ListResult {
            items,
            revision,
            more: opts.limit > 0 && resp.more(),
            // etcd counts the whole range, limit or not.
            remaining: if opts.limit > 0 && resp.more() {
                (resp.count() - items_len).max(0)
            } else {
                0
            },
        })
    }

    async fn count(&self, prefix: &str) -> Result<i64> {
        let (start, end) = self.keys.prefix_range(prefix);
        let mut kv = self.kv.clone();
        let opts = GetOptions::new().with_range(end).with_count_only();
        let resp = self
            .rpc(kv.get(start, Some(opts)))
            .await
            .map_err(|f| self.fail("count", f, 0))?;
        Ok(resp.count())
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream> {
        self.watch_inner(prefix, after).await
    }

    async fn current_revision(&self) -> Result<Revision> {
        self.current_revision_inner().await
    }

    async fn compact(&self, rev: Revision) -> Result<()> {
        if rev <= 0 {
            return Err(Error::InvalidArgument(format!(
                "compaction revision {rev} must be positive"
            )));
        }
        let mut kv = self.kv.clone();
        match self.rpc(kv.compact(rev, None)).await {
            Ok(_) => {
                self.note_compacted(rev);
                Ok(())
            }
            // Already compacted at or past `rev`: the history is gone either way.
            Err(Failure::Compacted) => Ok(()),
            Err(f) => Err(self.fail_at("compact", f, rev).await),
        }
    }

    async fn compacted_revision(&self) -> Result<Revision> {
        self.compacted_revision_inner().await
    }

    async fn grant_lease(&self, ttl_seconds: i64) -> Result<LeaseId> {
        if ttl_seconds <= 0 {
            return Err(Error::InvalidArgument(format!(
                "lease TTL {ttl_seconds}s must be positive"
            )));
        }
        let mut lease = self.lease.clone();
        let resp = self
            .rpc(lease.grant(ttl_seconds, None))
            .await
            .map_err(|f| self.fail("grant lease", f, 0))?;
        Ok(resp.id())
    }

    async fn keep_alive(&self, id: LeaseId) -> Result<()> {
        // One request/response on a short-lived keep-alive stream: renewals are driven by
        // the caller, which knows when a lease is still wanted.
        let mut lease = self.lease.clone();
        let (_keeper, _stream) = self
            .rpc(lease.keep_alive(id))
            .await
            .map_err(|f| self.fail("keep lease alive", f, id))?;
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "etcd"
    }

    async fn health(&self) -> Result<()> {
        let mut maintenance = self.client.maintenance_client();
        let status = self
            .rpc(maintenance.status())
            .await
            .map_err(|f| self.fail("status", f, 0))?;
        if !status.errors().is_empty() {
            return Err(Error::Unavailable(format!(
                "etcd at {} reports: {}",
                self.endpoints,
                status.errors().join("; ")
            )));
        }
        // A linearizable read needs a leader and a quorum, like etcd's own /health.
        self.current_revision_inner().await.map(|_| ())
    }
}
