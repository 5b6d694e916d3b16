//! Key layout: every store key is stored in etcd as `root prefix + key`, so several r8s
//! clusters (or tests) can share one etcd. Conversions between the two and range ends.

use crate::{Error, KeyValue, Result};

/// The root prefix and the conversions that depend on it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Keys {
    root: Vec<u8>,
}

impl Keys {
    pub(crate) fn new(root: &str) -> Self {
        Self {
            root: root.as_bytes().to_vec(),
        }
    }

    /// The etcd key of store key `key`.
    pub(crate) fn full(&self, key: &str) -> Vec<u8> {
        let mut k = Vec::with_capacity(self.root.len() + key.len());
        k.extend_from_slice(&self.root);
        k.extend_from_slice(key.as_bytes());
        k
    }

    /// The etcd range `[start, end)` holding every store key starting with `prefix`.
    /// etcd rejects an empty start key, so "everything" is `["\0", "\0")`, etcd's
    /// spelling of "all keys >= \0".
    pub(crate) fn prefix_range(&self, prefix: &str) -> (Vec<u8>, Vec<u8>) {
        let start = self.full(prefix);
        let end = range_end(&start);
        if start.is_empty() {
            (vec![0], end)
        } else {
            (start, end)
        }
    }

    /// The store key of etcd key `raw`; fails on keys outside the root prefix or not UTF-8
    /// (neither is ever written by this backend).
    pub(crate) fn strip(&self, raw: &[u8]) -> Result<String> {
        let rest = raw
            .strip_prefix(self.root.as_slice())
            .ok_or_else(|| self.outside_root(raw))?;
        String::from_utf8(rest.to_vec()).map_err(|_| {
            Error::Internal(format!(
                "etcd key {:?} is not UTF-8",
                String::from_utf8_lossy(raw)
            ))
        })
    }

    fn outside_root(&self, raw: &[u8]) -> Error {
        Error::Internal(format!(
            "etcd returned key {:?} outside the root prefix {:?}",
            String::from_utf8_lossy(raw),
            String::from_utf8_lossy(&self.root)
        ))
    }

    /// Convert an owned etcd key-value into the store's without copying the value (lists
    /// of thousands of objects would otherwise copy every byte once more).
    pub(crate) fn kv_owned(&self, kv: etcd_client::KeyValue) -> Result<KeyValue> {
        let (create_revision, mod_revision, lease) =
            (kv.create_revision(), kv.mod_revision(), kv.lease());
        let (mut key, value) = kv.into_key_value();
        if !key.starts_with(&self.root) {
            return Err(self.outside_root(&key));
        }
        key.drain(..self.root.len());
        let key = String::from_utf8(key).map_err(|e| {
            Error::Internal(format!(
                "etcd key {:?} is not UTF-8",
                String::from_utf8_lossy(e.as_bytes())
            ))
        })?;
        Ok(KeyValue {
            key,
            value,
            create_revision,
            mod_revision,
            lease,
        })
    }

    /// Convert an etcd key-value into the store's.
    pub(crate) fn kv(&self, kv: &etcd_client::KeyValue) -> Result<KeyValue> {
        Ok(KeyValue {
            key: self.strip(kv.key())?,
            value: kv.value().to_vec(),
            create_revision: kv.create_revision(),
            mod_revision: kv.mod_revision(),
            lease: kv.lease(),
        })
    }
}

/// The smallest key greater than every key starting with `prefix` (etcd's prefix range end):
/// drop trailing 0xff bytes and increment the last byte. `"\0"` means "no upper bound".
pub(crate) fn range_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_end_increments_last_byte() {
        assert_eq!(range_end(b"/registry/pods/"), b"/registry/pods0".to_vec());
        assert_eq!(range_end(b"a\xff\xff"), b"b".to_vec());
        assert_eq!(range_end(b"\xff"), vec![0]);
        assert_eq!(range_end(b""), vec![0]);
    }

    #[test]
    fn prefix_range_with_and_without_root() {
        let none = Keys::new("");
        assert_eq!(none.prefix_range(""), (vec![0], vec![0]));
        assert_eq!(none.prefix_range("/a/"), (b"/a/".to_vec(), b"/a0".to_vec()));
        let root = Keys::new("/t1");
        assert_eq!(root.prefix_range(""), (b"/t1".to_vec(), b"/t2".to_vec()));
        assert_eq!(root.full("/x"), b"/t1/x".to_vec());
    }

    #[test]
    fn strip_checks_root_and_utf8() {
        let k = Keys::new("/t1");
        assert_eq!(k.strip(b"/t1/registry/a").expect("strip"), "/registry/a");
        assert!(matches!(k.strip(b"/t2/x"), Err(Error::Internal(_))));
        assert!(matches!(k.strip(b"/t1/\xff"), Err(Error::Internal(_))));
    }
}
