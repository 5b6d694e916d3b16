//! The systems under test behind one interface: an r8s [`Store`](r8s_store::Store) (SQLite
//! or etcd backend) or raw etcd through `etcd-client` (the baseline: plain Put/Get/Range,
//! no compare, no conversion). The `txn` flavour of raw etcd writes with the same
//! compare-and-put transactions r8s (and kube-apiserver) use, to separate etcd's own cost
//! of a transaction from r8s's overhead.

use anyhow::{Context, Result, anyhow};
use etcd_client::{Compare, CompareOp, GetOptions, KvClient, Txn, TxnOp, WatchOptions};
use futures::StreamExt;
use futures::stream::BoxStream;
use r8s_store::{DynStore, ListOptions};
use std::sync::Arc;

/// A watch as a stream of changed keys.
pub type KeyStream = BoxStream<'static, Result<String>>;

/// One system under test.
#[derive(Clone)]
pub enum Target {
    Store(DynStore),
    Raw(Arc<RawEtcd>),
}

/// The raw etcd baseline's client and key prefix.
pub struct RawEtcd {
    client: etcd_client::Client,
    kv: KvClient,
    prefix: String,
    /// Write with compare-and-put transactions instead of plain puts.
    txn: bool,
}

impl RawEtcd {
    /// Write `key`: a plain put, or (`txn`) a put guarded like r8s's create (`rev == 0`)
    /// or update (`rev` = expected mod revision).
    async fn write(&self, key: &str, value: Vec<u8>, rev: i64) -> Result<i64> {
        let key = format!("{}{key}", self.prefix);
        let mut kv = self.kv.clone();
        if !self.txn {
            let resp = kv.put(key, value, None).await?;
            return Ok(resp.header().map_or(0, |h| h.revision()));
        }
        let guard = if rev == 0 {
            Compare::create_revision(key.clone(), CompareOp::Equal, 0)
        } else {
            Compare::mod_revision(key.clone(), CompareOp::Equal, rev)
        };
        let txn = Txn::new()
            .when([guard])
            .and_then([TxnOp::put(key, value, None)]);
        let resp = kv.txn(txn).await?;
        if !resp.succeeded() {
            return Err(anyhow!("compare failed"));
        }
        Ok(resp.header().map_or(0, |h| h.revision()))
    }
}

impl Target {
    /// A raw etcd target writing under `prefix`.
    pub fn raw(client: etcd_client::Client, prefix: String, txn: bool) -> Self {
        // Large lists exceed gRPC's 4 MiB default, as for the r8s backend.
        let kv = client
            .kv_client()
            .max_decoding_message_size(i32::MAX as usize);
        Self::Raw(Arc::new(RawEtcd {
            client,
            kv,
            prefix,
            txn,
        }))
    }

    fn raw_key(prefix: &str, key: &str) -> String {
        format!("{prefix}{key}")
    }

    /// Create `key`; returns its revision.
    pub async fn create(&self, key: &str, value: Vec<u8>) -> Result<i64> {
        match self {
            Self::Store(s) => Ok(s.create(key, value, None).await?),
            Self::Raw(r) => r.write(key, value, 0).await,
        }
    }

    /// Replace `key` (last written at `rev`); returns the new revision.
    pub async fn update(&self, key: &str, value: Vec<u8>, rev: i64) -> Result<i64> {
        match self {
            Self::Store(s) => Ok(s.update(key, value, rev, None).await?),
            Self::Raw(r) => r.write(key, value, rev).await,
        }
    }

    /// Read `key`; returns the value size.
    pub async fn get(&self, key: &str) -> Result<usize> {
        let len = match self {
            Self::Store(s) => s.get(key, 0).await?.map(|kv| kv.value.len()),
            Self::Raw(r) => {
                let (kv, prefix) = (&r.kv, &r.prefix);
                let resp = kv.clone().get(Self::raw_key(prefix, key), None).await?;
                resp.kvs().first().map(|kv| kv.value().len())
            }
        };
        len.with_context(|| format!("{key} not found"))
    }

    /// List every key under `prefix` in one request; returns how many there were.
    pub async fn list(&self, key_prefix: &str) -> Result<usize> {
        match self {
            Self::Store(s) => Ok(s
                .list(key_prefix, ListOptions::default())
                .await?
                .items
                .len()),
            Self::Raw(r) => {
                let (kv, prefix) = (&r.kv, &r.prefix);
                let opts = GetOptions::new().with_prefix();
                let resp = kv
                    .clone()
                    .get(Self::raw_key(prefix, key_prefix), Some(opts))
                    .await?;
                Ok(resp.kvs().len())
            }
        }
    }

    /// Watch `prefix` from now on; yields the key of every change. Returns once the watch
    /// is established.
    pub async fn watch(&self, key_prefix: &str) -> Result<KeyStream> {
        match self {
            Self::Store(s) => Ok(s
                .watch(key_prefix, 0)
                .await?
                .map(|ev| ev.map(|ev| ev.kv.key).map_err(anyhow::Error::from))
                .boxed()),
            Self::Raw(r) => {
                let (client, prefix) = (&r.client, &r.prefix);
                let mut w = client.watch_client();
                let strip = prefix.len();
                let mut stream = w
                    .watch(
                        Self::raw_key(prefix, key_prefix),
                        Some(WatchOptions::new().with_prefix()),
                    )
                    .await?;
                // The first response confirms the watcher exists.
                stream
                    .message()
                    .await?
                    .ok_or_else(|| anyhow!("watch refused"))?;
                let keys = futures::stream::unfold(stream, move |mut stream| async move {
                    match stream.message().await {
                        Ok(Some(resp)) => {
                            let keys: Vec<Result<String>> = resp
                                .events()
                                .iter()
                                .filter_map(|e| e.kv())
                                .map(|kv| {
                                    let k = String::from_utf8_lossy(kv.key());
                                    Ok(k.get(strip..).unwrap_or_default().to_string())
                                })
                                .collect();
                            Some((futures::stream::iter(keys), stream))
                        }
                        Ok(None) => None,
                        Err(e) => Some((futures::stream::iter(vec![Err(e.into())]), stream)),
                    }
                })
                .flatten();
                Ok(keys.boxed())
            }
        }
    }
}
