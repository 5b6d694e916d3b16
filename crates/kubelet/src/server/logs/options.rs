//! The query of a `containerLogs` request, decoded and validated as the API's
//! `PodLogOptions`.

use crate::server::HttpError;
use chrono::{DateTime, Utc};

/// The query of a `containerLogs` request (the fields of `PodLogOptions` the kubelet uses).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogOptions {
    pub follow: bool,
    pub previous: bool,
    pub timestamps: bool,
    /// Lines from the end of the file to start at.
    pub tail_lines: Option<u64>,
    /// Entries older than this are skipped.
    pub since: Option<DateTime<Utc>>,
    /// Stop after this many bytes of output.
    pub limit_bytes: Option<u64>,
}

/// Go's `strconv.ParseBool`, which is how the API's query booleans are decoded.
fn parse_bool(key: &str, v: &str) -> Result<bool, HttpError> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "" | "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(HttpError::bad_request(format!(
            "invalid value {v:?} for {key}: not a boolean"
        ))),
    }
}

fn parse_int(key: &str, v: &str) -> Result<i64, HttpError> {
    v.parse()
        .map_err(|_| HttpError::bad_request(format!("invalid value {v:?} for {key}")))
}

fn invalid(msg: &str) -> HttpError {
    HttpError::new(
        hyper::StatusCode::UNPROCESSABLE_ENTITY,
        format!("invalid request: {msg}"),
    )
}

impl LogOptions {
    /// Decodes and validates the query (400 for undecodable values, 422 for values the
    /// API's PodLogOptions validation rejects).
    pub fn from_query(query: &[(String, String)], now: DateTime<Utc>) -> Result<Self, HttpError> {
        let mut o = LogOptions::default();
        let mut since_seconds = None;
        let mut since_time = None;
        for (k, v) in query {
            match k.as_str() {
                "follow" => o.follow = parse_bool(k, v)?,
                "previous" => o.previous = parse_bool(k, v)?,
                "timestamps" => o.timestamps = parse_bool(k, v)?,
                "tailLines" => {
                    let n = parse_int(k, v)?;
                    o.tail_lines =
                        Some(u64::try_from(n).map_err(|_| invalid("tailLines must be >= 0"))?);
                }
                "limitBytes" => {
                    let n = parse_int(k, v)?;
                    if n < 1 {
                        return Err(invalid("limitBytes must be greater than 0"));
                    }
                    o.limit_bytes = u64::try_from(n).ok();
                }
                "sinceSeconds" => {
                    let n = parse_int(k, v)?;
                    if n < 1 {
                        return Err(invalid("sinceSeconds must be greater than 0"));
                    }
                    since_seconds = Some(n);
                }
                "sinceTime" => {
                    let t = DateTime::parse_from_rfc3339(v).map_err(|e| {
                        HttpError::bad_request(format!("invalid value {v:?} for sinceTime: {e}"))
                    })?;
                    since_time = Some(t.with_timezone(&Utc));
                }
                _ => {}
            }
        }
        o.since = match (since_seconds, since_time) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "at most one of `sinceTime` or `sinceSeconds` may be specified",
                ));
            }
            (Some(s), None) => now.checked_sub_signed(chrono::TimeDelta::seconds(s)),
            (None, t) => t,
        };
        Ok(o)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn query_validation() {
        let now = Utc::now();
        let o = LogOptions::from_query(
            &q(&[
                ("follow", "true"),
                ("tailLines", "3"),
                ("timestamps", "1"),
                ("limitBytes", "10"),
            ]),
            now,
        )
        .unwrap();
        assert!(o.follow && o.timestamps && !o.previous);
        assert_eq!((o.tail_lines, o.limit_bytes), (Some(3), Some(10)));
        let o = LogOptions::from_query(&q(&[("sinceSeconds", "60")]), now).unwrap();
        assert_eq!(o.since, Some(now - chrono::TimeDelta::seconds(60)));
        let o = LogOptions::from_query(&q(&[("sinceTime", "2024-01-02T03:04:05Z")]), now).unwrap();
        assert_eq!(o.since.unwrap().to_rfc3339(), "2024-01-02T03:04:05+00:00");
        let status = |p: &[(&str, &str)]| LogOptions::from_query(&q(p), now).unwrap_err().status;
        assert_eq!(status(&[("follow", "yes")]), 400);
        assert_eq!(status(&[("tailLines", "x")]), 400);
        assert_eq!(status(&[("tailLines", "-1")]), 422);
        assert_eq!(status(&[("limitBytes", "0")]), 422);
        assert_eq!(status(&[("sinceSeconds", "0")]), 422);
        assert_eq!(status(&[("sinceTime", "yesterday")]), 400);
        assert_eq!(
            status(&[("sinceSeconds", "5"), ("sinceTime", "2024-01-02T03:04:05Z")]),
            422
        );
    }
}
