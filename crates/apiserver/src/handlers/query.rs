//! Query-string parameters of API requests.

use crate::error::{ApiError, ApiResult};
use r8s_api::strategy::FieldError;
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

    /// A boolean parameter, as upstream converts query strings: absent, `0` and `false`
    /// (any case) are false; every other value, even an empty one, is true.
    pub fn flag(&self, key: &str) -> bool {
        self.get(key)
            .is_some_and(|v| v != "0" && !v.eq_ignore_ascii_case("false"))
    }

    /// Every `dryRun` value given.
    pub fn dry_run_values(&self) -> impl Iterator<Item = &str> {
        self.dry_run.iter().map(String::as_str)
    }

    /// Whether a parameter is present at all.
    pub fn has(&self, key: &str) -> bool {
        self.values.contains_key(key)
    }

    /// Upstream's `ValidateDryRun` and `ValidateFieldValidation` for write options.
    pub fn write_option_errors(&self) -> Vec<FieldError> {
        let mut errors = dry_run_errors(self.dry_run.iter().map(String::as_str));
        if let Some(v) = self.get("fieldValidation")
            && !matches!(v, "" | "Ignore" | "Warn" | "Strict")
        {
            errors.push(FieldError::not_supported(
                "fieldValidation",
                v,
                &["Ignore", "Strict", "Warn"],
            ));
        }
        errors
    }

    /// An integer parameter; junk is a 400.
    pub fn int(&self, key: &str) -> ApiResult<Option<i64>> {
        match self.get(key) {
            None | Some("") => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                ApiError::bad_request(format!("invalid value for {key}: {v:?} is not an integer"))
            }),
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

impl Query {
    /// Upstream's `ValidateListOptions` (list and watch rules differ).
    pub fn list_option_errors(&self, watch: bool) -> Vec<FieldError> {
        const RVM: &str = "resourceVersionMatch";
        let rv = self.get("resourceVersion").unwrap_or("");
        let matched = self.get(RVM).unwrap_or("");
        let cont = self.get("continue").unwrap_or("");
        let send_initial = self.has("sendInitialEvents");
        let mut errs = Vec::new();
        if watch {
            if send_initial && matched != "NotOlderThan" {
                errs.push(FieldError::forbidden(
                    RVM,
                    "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
                ));
            }
            if !matched.is_empty() {
                if !send_initial {
                    errs.push(FieldError::forbidden(
                        RVM,
                        "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
                    ));
                }
                if matched != "NotOlderThan" {
                    errs.push(FieldError::not_supported(RVM, matched, &["NotOlderThan"]));
                }
                if !cont.is_empty() {
                    errs.push(FieldError::forbidden(
                        RVM,
                        "resourceVersionMatch is forbidden when continue is provided",
                    ));
                }
            }
            return errs;
        }
        if !matched.is_empty() {
            if rv.is_empty() {
                errs.push(FieldError::forbidden(
                    RVM,
                    "resourceVersionMatch is forbidden unless resourceVersion is provided",
                ));
            }
            if !cont.is_empty() {
                errs.push(FieldError::forbidden(
                    RVM,
                    "resourceVersionMatch is forbidden when continue is provided",
                ));
            }
            if !matches!(matched, "Exact" | "NotOlderThan") {
                errs.push(FieldError::not_supported(
                    RVM,
                    matched,
                    &["Exact", "NotOlderThan", ""],
                ));
            }
            if matched == "Exact" && rv == "0" {
                errs.push(FieldError::forbidden(
                    RVM,
                    "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
                ));
            }
        }
        if send_initial {
            errs.push(FieldError::forbidden(
                "sendInitialEvents",
                "sendInitialEvents is forbidden for list",
            ));
        }
        errs
    }
}

/// `dryRun` values other than `All` (upstream's `ValidateDryRun`).
pub fn dry_run_errors<'a>(values: impl Iterator<Item = &'a str>) -> Vec<FieldError> {
    values
        .filter(|v| *v != "All")
        .map(|v| FieldError::not_supported("dryRun", v, &["All"]))
        .collect()
}

/// A 422 for invalid request options (`CreateOptions.meta.k8s.io "" is invalid: …`).
pub fn invalid_options(kind: &str, errors: &[FieldError]) -> ApiError {
    ApiError::invalid("meta.k8s.io", kind, "", errors)
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

    #[test]
    fn flags_convert_as_upstream() {
        let q = Query::parse(Some("a=true&b=0&c=False&d=&e=yes"));
        assert!(q.flag("a") && !q.flag("b") && !q.flag("c") && q.flag("d") && q.flag("e"));
        assert!(!q.flag("missing"));
    }

    #[test]
    fn list_options_are_validated() {
        let fields = |q: &str, watch: bool| -> Vec<String> {
            Query::parse(Some(q))
                .list_option_errors(watch)
                .into_iter()
                .map(|e| e.message)
                .collect()
        };
        assert!(fields("resourceVersion=5&resourceVersionMatch=NotOlderThan", false).is_empty());
        assert_eq!(fields("resourceVersionMatch=Exact", false).len(), 1);
        assert_eq!(
            fields("resourceVersion=1&resourceVersionMatch=Bogus", false).len(),
            1
        );
        assert_eq!(
            fields("resourceVersion=0&resourceVersionMatch=Exact", false).len(),
            1
        );
        assert_eq!(fields("sendInitialEvents=true", false).len(), 1);
        assert!(fields("resourceVersion=7&allowWatchBookmarks=true", true).is_empty());
        assert!(
            fields(
                "sendInitialEvents=true&resourceVersionMatch=NotOlderThan",
                true
            )
            .is_empty()
        );
        assert_eq!(fields("resourceVersionMatch=NotOlderThan", true).len(), 1);
        assert_eq!(fields("sendInitialEvents=true", true).len(), 1);
        assert_eq!(
            fields("sendInitialEvents=true&resourceVersionMatch=Exact", true).len(),
            2
        );
    }

    #[test]
    fn write_options_are_validated() {
        let q = Query::parse(Some("dryRun=All&dryRun=Bogus&fieldValidation=Nope"));
        let errs = q.write_option_errors();
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["dryRun", "fieldValidation"]);
        assert!(
            errs[0].message.contains("supported values: \"All\""),
            "{}",
            errs[0].message
        );
        assert!(
            Query::parse(Some("dryRun=All&fieldValidation=Strict"))
                .write_option_errors()
                .is_empty()
        );
        let e = invalid_options("CreateOptions", &errs);
        assert_eq!(e.code.as_u16(), 422);
        assert!(
            e.message
                .starts_with("CreateOptions.meta.k8s.io \"\" is invalid: ["),
            "{}",
            e.message
        );
    }
}
