//! List with label/field selectors and limit/continue paging, consistent at one revision.

use super::{Registry, collection_prefix, decode};
use crate::error::{ApiError, ApiResult};
use crate::meta;
use base64::Engine;
use r8s_api::catalog::ResourceInfo;
use r8s_api::selector::{FieldSelector, LabelSelector};
use r8s_api::strategy;
use r8s_store::ListOptions;
use serde_json::{Value, json};

/// Parsed list/watch query parameters.
#[derive(Debug, Clone, Default)]
pub struct ListParams {
    pub label_selector: Option<LabelSelector>,
    pub field_selector: Option<FieldSelector>,
    pub limit: i64,
    pub continue_token: Option<String>,
    /// `resourceVersion` of the request ("" = most recent).
    pub resource_version: String,
    /// `resourceVersionMatch` (`Exact` or `NotOlderThan`).
    pub resource_version_match: String,
}

impl ListParams {
    /// Parse the selector strings; bad selectors are 400s as upstream.
    pub fn parse_selectors(&mut self, label: Option<&str>, field: Option<&str>) -> ApiResult<()> {
        if let Some(l) = label.filter(|s| !s.trim().is_empty()) {
            self.label_selector =
                Some(LabelSelector::parse(l).map_err(|e| ApiError::bad_request(e.to_string()))?);
        }
        if let Some(f) = field.filter(|s| !s.trim().is_empty()) {
            self.field_selector =
                Some(FieldSelector::parse(f).map_err(|e| ApiError::bad_request(e.to_string()))?);
        }
        Ok(())
    }

    /// Whether an object passes both selectors.
    pub fn matches(&self, info: &ResourceInfo, obj: &Value) -> bool {
        if let Some(ls) = &self.label_selector
            && !ls.matches(&meta::labels(obj))
        {
            return false;
        }
        if let Some(fs) = &self.field_selector {
            let extra = strategy::for_kind(info.group, info.kind).field_selector_fields(obj);
            let lookup = |field: &str| -> Option<String> {
                match field {
                    "metadata.name" => Some(meta::name(obj).to_string()),
                    "metadata.namespace" => Some(meta::namespace(obj).to_string()),
                    _ => extra
                        .iter()
                        .find(|(k, _)| *k == field)
                        .map(|(_, v)| v.clone()),
                }
            };
            if !fs.matches(&lookup) {
                return false;
            }
        }
        true
    }
}

/// One page of a list.
#[derive(Debug, Clone)]
pub struct ListPage {
    pub items: Vec<Value>,
    pub resource_version: i64,
    pub continue_token: Option<String>,
    /// Matching items left after this page, when cheap to know (upstream's estimate).
    pub remaining: Option<i64>,
}

/// How many keys to fetch from the store per round when filtering.
const FETCH_BATCH: i64 = 1000;

impl Registry {
    /// List a collection.
    pub async fn list(
        &self,
        info: &'static ResourceInfo,
        namespace: Option<&str>,
        params: &ListParams,
    ) -> ApiResult<ListPage> {
        let prefix = collection_prefix(info, namespace);
        let (mut revision, mut start_after) = match &params.continue_token {
            Some(token) => decode_continue(token, &prefix)?,
            None => (self.list_revision(params)?, None),
        };
        let mut items = Vec::new();
        let limit = params.limit.max(0);
        loop {
            let want = if limit > 0 {
                (limit - items.len() as i64).max(1)
            } else {
                0
            };
            let batch = if params.label_selector.is_some() || params.field_selector.is_some() {
                if limit > 0 { want.max(FETCH_BATCH) } else { 0 }
            } else {
                want
            };
            let page = self
                .store
                .list(
                    &prefix,
                    ListOptions {
                        revision,
                        limit: batch,
                        start_after: start_after.clone(),
                    },
                )
                .await
                .map_err(|e| match e {
                    r8s_store::Error::Compacted { .. } if params.continue_token.is_some() => ApiError::gone(
                        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
                    ),
                    other => other.into(),
                })?;
            revision = page.revision;
            let mut last_key = None;
            let mut stopped_early = false;
            for kv in &page.items {
                last_key = Some(kv.key.clone());
                let obj = decode(info, kv)?;
                if params.matches(info, &obj) {
                    items.push(obj);
                    if limit > 0 && items.len() as i64 >= limit {
                        stopped_early =
                            kv.key != page.items.last().map(|k| k.key.clone()).unwrap_or_default();
                        break;
                    }
                }
            }
            let more = page.more || stopped_early;
            if limit > 0 && items.len() as i64 >= limit {
                let token = if more {
                    last_key.map(|k| encode_continue(revision, &k))
                } else {
                    None
                };
                // Without selectors every key is an item, so the store's count of the keys
                // after this page is upstream's remainingItemCount.
                let unfiltered = params.label_selector.is_none() && params.field_selector.is_none();
                let remaining =
                    (unfiltered && token.is_some() && !stopped_early).then_some(page.remaining);
                return Ok(ListPage {
                    items,
                    resource_version: revision,
                    continue_token: token,
                    remaining,
                });
            }
            if !page.more || page.items.is_empty() {
                return Ok(ListPage {
                    items,
                    resource_version: revision,
                    continue_token: None,
                    remaining: None,
                });
            }
            start_after = last_key;
        }
    }

    /// The store revision a fresh list reads at.
    fn list_revision(&self, params: &ListParams) -> ApiResult<i64> {
        if params.resource_version_match == "Exact" {
            return params.resource_version.parse::<i64>().map_err(|_| {
                ApiError::bad_request(format!(
                    "invalid resource version {:?}",
                    params.resource_version
                ))
            });
        }
        // "" and "0" and NotOlderThan: the latest state satisfies them all.
        Ok(0)
    }
}

/// `continue` tokens: base64 of {"v":"meta.k8s.io/v1","rv":N,"start":"<last key>"}.
fn encode_continue(rev: i64, last_key: &str) -> String {
    let raw = json!({"v": "meta.k8s.io/v1", "rv": rev, "start": last_key}).to_string();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

fn decode_continue(token: &str, prefix: &str) -> ApiResult<(i64, Option<String>)> {
    let bad = || {
        ApiError::bad_request(
            "continue key is not valid: the continue token was not issued by this server",
        )
    };
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.trim_end_matches('='))
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let rev = v.get("rv").and_then(Value::as_i64).ok_or_else(bad)?;
    let start = v.get("start").and_then(Value::as_str).ok_or_else(bad)?;
    if !start.starts_with(prefix) || rev <= 0 {
        return Err(bad());
    }
    Ok((rev, Some(start.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_round_trip() {
        let t = encode_continue(42, "/registry/core/pods/default/a");
        assert_eq!(
            decode_continue(&t, "/registry/core/pods/").unwrap(),
            (42, Some("/registry/core/pods/default/a".into()))
        );
        assert!(decode_continue(&t, "/registry/apps/deployments/").is_err());
        assert!(decode_continue("!!junk", "/").is_err());
    }
}
