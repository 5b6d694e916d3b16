//! Query-string parameters of API requests.

use crate::error::{ApiError, ApiResult};
use std::collections::HashMap;

/// Decoded query parameters (last value wins, except `dryRun` which may repeat).
#[derive(Debug, Clone, Default)]
pub struct Query {
    values: HashMap<String, String>,
    dry_run: Vec<String>,
}

impl Query {
    /// Parse a raw query string.
    pub fn parse(raw: Option<&str>) -> Self {
        let mut q = Query::default();
        for (k, v) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
            if k == "dryRun" {
                q.dry_run.push(v.to_string());
            }
            q.values.insert(k.into_owned(), v.into_owned());
        }
        q
    }

    /// A parameter's value.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    /// A boolean parameter (`true`/`1`).
    pub fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true") | Some("1") | Some("True"))
    }

    /// An integer parameter; junk is a 400.
    pub fn int(&self, key: &str) -> ApiResult<Option<i64>> {
        match self.get(key) {
            None | Some("") => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| ApiError::bad_request(format!("invalid value for {key}: {v:?} is not an integer"))),
        }
    }

    /// `dryRun=All` (any other value is rejected, as upstream).
    pub fn dry_run(&self) -> ApiResult<bool> {
        for v in &self.dry_run {
            if v != "All" {
                return Err(ApiError::bad_request(format!(
                    "Invalid dry run value: {v:?}: supported values: \"All\""
                )));
            }
        }
        Ok(!self.dry_run.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_validates() {
        let q = Query::parse(Some("watch=1&limit=5&labelSelector=app%3Dweb&dryRun=All"));
        assert!(q.flag("watch"));
        assert_eq!(q.int("limit").unwrap(), Some(5));
        assert_eq!(q.get("labelSelector"), Some("app=web"));
        assert!(q.dry_run().unwrap());
        assert!(Query::parse(Some("limit=x")).int("limit").is_err());
        assert!(Query::parse(Some("dryRun=Some")).dry_run().is_err());
    }
}
