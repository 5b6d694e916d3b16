//! Query options of `pods/log`, `pods/exec`, `pods/attach` and `pods/portforward`,
//! decoded as upstream's query-parameter codec does (PodLogOptions, PodExecOptions,
//! PodAttachOptions, PodPortForwardOptions), validated as upstream, plus container
//! selection and the query strings the kubelet is called with.

use crate::error::{ApiError, ApiResult};
use r8s_api::strategy::FieldError;
use serde_json::Value;

/// A raw query string as ordered (key, value) pairs; keys may repeat (`command`).
#[derive(Debug, Clone, Default)]
pub struct RawQuery(Vec<(String, String)>);

impl RawQuery {
    /// Decode `a=b&c=d` (percent- and `+`-decoding).
    pub fn parse(raw: Option<&str>) -> Self {
        RawQuery(
            form_urlencoded::parse(raw.unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The first value of `key` (what Go's conversion of a query parameter looks at).
    fn first(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `key`, in order.
    fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Upstream's string→bool conversion: absent, `0` and `false` (any case) are false,
    /// anything else (even an empty value) is true.
    fn flag(&self, key: &str) -> bool {
        self.first(key)
            .is_some_and(|v| v != "0" && !v.eq_ignore_ascii_case("false"))
    }

    /// An optional integer; absent or empty is `None`, junk is a 400 with Go's text.
    fn int(&self, key: &str) -> ApiResult<Option<i64>> {
        match self.first(key) {
            None | Some("") => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                ApiError::bad_request(format!("strconv.ParseInt: parsing {v:?}: invalid syntax"))
            }),
        }
    }

    fn string(&self, key: &str) -> String {
        self.first(key).unwrap_or("").to_string()
    }
}

/// Go's `time.RFC3339` layout, quoted in parse errors as upstream does.
const RFC3339_LAYOUT: &str = "2006-01-02T15:04:05Z07:00";

/// `PodLogOptions`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogOptions {
    pub container: String,
    pub follow: bool,
    pub previous: bool,
    pub timestamps: bool,
    pub since_seconds: Option<i64>,
    /// Normalised to RFC 3339 in UTC, seconds precision (as metav1.Time marshals).
    pub since_time: Option<String>,
    pub tail_lines: Option<i64>,
    pub limit_bytes: Option<i64>,
}

impl LogOptions {
    /// Decode the query; undecodable values are a 400, as upstream.
    pub fn parse(q: &RawQuery) -> ApiResult<Self> {
        let since_time = match q.first("sinceTime") {
            None | Some("") => None,
            Some(v) => {
                let t = chrono::DateTime::parse_from_rfc3339(v).map_err(|e| {
                    ApiError::bad_request(format!("parsing time {v:?} as {RFC3339_LAYOUT:?}: {e}"))
                })?;
                Some(
                    t.with_timezone(&chrono::Utc)
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                )
            }
        };
        Ok(LogOptions {
            container: q.string("container"),
            follow: q.flag("follow"),
            previous: q.flag("previous"),
            timestamps: q.flag("timestamps"),
            since_seconds: q.int("sinceSeconds")?,
            since_time,
            tail_lines: q.int("tailLines")?,
            limit_bytes: q.int("limitBytes")?,
        })
    }

    /// Upstream's `ValidatePodLogOptions`: 422 `PodLogOptions "name" is invalid`.
    pub fn validate(&self, name: &str) -> ApiResult<()> {
        let mut errors = Vec::new();
        if let Some(n) = self.tail_lines.filter(|n| *n < 0) {
            errors.push(FieldError::invalid(
                "tailLines",
                &n,
                "must be greater than or equal to 0",
            ));
        }
        if let Some(n) = self.limit_bytes.filter(|n| *n < 1) {
            errors.push(FieldError::invalid(
                "limitBytes",
                &n,
                "must be greater than 0",
            ));
        }
        match (self.since_seconds, &self.since_time) {
            (Some(_), Some(_)) => errors.push(FieldError::forbidden(
                "",
                "at most one of `sinceTime` or `sinceSeconds` may be specified",
            )),
            (Some(n), None) if n < 1 => errors.push(FieldError::invalid(
                "sinceSeconds",
                &n,
                "must be greater than 0",
            )),
            _ => {}
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::invalid("", "PodLogOptions", name, &errors))
        }
    }

    /// The kubelet's `/containerLogs` query (keys sorted, as Go's `url.Values.Encode`).
    pub fn kubelet_query(&self) -> String {
        let mut out = form_urlencoded::Serializer::new(String::new());
        if self.follow {
            out.append_pair("follow", "true");
        }
        if let Some(n) = self.limit_bytes {
            out.append_pair("limitBytes", &n.to_string());
        }
        if self.previous {
            out.append_pair("previous", "true");
        }
        if let Some(n) = self.since_seconds {
            out.append_pair("sinceSeconds", &n.to_string());
        }
        if let Some(t) = &self.since_time {
            out.append_pair("sinceTime", t);
        }
        if let Some(n) = self.tail_lines {
            out.append_pair("tailLines", &n.to_string());
        }
        if self.timestamps {
            out.append_pair("timestamps", "true");
        }
        out.finish()
    }
}

/// `PodExecOptions` / `PodAttachOptions` (attach ignores `command`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamOptions {
    pub container: String,
    pub command: Vec<String>,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

impl StreamOptions {
    /// Decode the query of an exec (`with_command`) or attach request.
    pub fn parse(q: &RawQuery, with_command: bool) -> Self {
        StreamOptions {
            container: q.string("container"),
            command: if with_command {
                q.all("command").map(str::to_string).collect()
            } else {
                Vec::new()
            },
            stdin: q.flag("stdin"),
            stdout: q.flag("stdout"),
            stderr: q.flag("stderr"),
            tty: q.flag("tty"),
        }
    }

    /// The checks the kubelet makes before starting a session (upstream's remotecommand
    /// options): stderr is dropped with a TTY (a TTY merges it into stdout), at least
    /// one stream must remain, and exec needs a command.
    pub fn check(&mut self, exec: bool) -> ApiResult<()> {
        if self.tty {
            self.stderr = false;
        }
        if !self.stdin && !self.stdout && !self.stderr {
            return Err(ApiError::bad_request(
                "you must specify at least 1 of stdin, stdout, stderr",
            ));
        }
        if exec && self.command.is_empty() {
            return Err(ApiError::bad_request("you must specify at least 1 command"));
        }
        Ok(())
    }

    /// The kubelet's `/exec` or `/attach` query. Upstream sends `input`, `output`,
    /// `error`, `tty` = `1`; the same flags are also sent under the API names
    /// (`stdin`, `stdout`, `stderr`) so a kubelet reading either spelling works.
    pub fn kubelet_query(&self) -> String {
        let mut out = form_urlencoded::Serializer::new(String::new());
        for c in &self.command {
            out.append_pair("command", c);
        }
        let flags = [
            ("error", self.stderr),
            ("input", self.stdin),
            ("output", self.stdout),
            ("stderr", self.stderr),
            ("stdin", self.stdin),
            ("stdout", self.stdout),
            ("tty", self.tty),
        ];
        for (k, on) in flags {
            if on {
                out.append_pair(k, "1");
            }
        }
        out.finish()
    }
}

/// `PodPortForwardOptions`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortForwardOptions {
    pub ports: Vec<u16>,
}

impl PortForwardOptions {
    /// Decode `ports` (repeated and/or comma-separated), as upstream's []int32 conversion.
    pub fn parse(q: &RawQuery) -> ApiResult<Self> {
        let mut ports = Vec::new();
        for v in q.all("ports") {
            for p in v.split(',') {
                let port = p.parse::<u16>().map_err(|_| {
                    ApiError::bad_request(format!(
                        "cannot convert to []int32: strconv.ParseUint: parsing {p:?}: invalid syntax"
                    ))
                })?;
                ports.push(port);
            }
        }
        Ok(PortForwardOptions { ports })
    }

    /// The kubelet's `/portForward` query (`port=80,443`; empty without ports).
    pub fn kubelet_query(&self) -> String {
        if self.ports.is_empty() {
            return String::new();
        }
        let joined: Vec<String> = self.ports.iter().map(u16::to_string).collect();
        form_urlencoded::Serializer::new(String::new())
            .append_pair("port", &joined.join(","))
            .finish()
    }
}

/// Names of a container list (`spec.containers`, …).
fn names<'a>(pod: &'a Value, list: &str) -> impl Iterator<Item = &'a str> + 'a {
    pod.pointer(&format!("/spec/{list}"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("name").and_then(Value::as_str))
}

/// Every container name of a pod: init, regular, then ephemeral containers (upstream's
/// `VisitContainers` order).
fn all_names(pod: &Value) -> Vec<&str> {
    names(pod, "initContainers")
        .chain(names(pod, "containers"))
        .chain(names(pod, "ephemeralContainers"))
        .collect()
}

/// Upstream's container selection for logs, exec and attach: an empty name means the
/// only regular container; otherwise the name must be one of the pod's containers of
/// any kind. (`kubectl.kubernetes.io/default-container` is honoured by kubectl, not by
/// the API server.)
pub fn select_container(pod: &Value, requested: &str, pod_name: &str) -> ApiResult<String> {
    if !requested.is_empty() {
        return if all_names(pod).contains(&requested) {
            Ok(requested.to_string())
        } else {
            Err(ApiError::bad_request(format!(
                "container {requested} is not valid for pod {pod_name}"
            )))
        };
    }
    let regular: Vec<&str> = names(pod, "containers").collect();
    match regular.as_slice() {
        [only] => Ok((*only).to_string()),
        [] => Err(ApiError::bad_request(format!(
            "a container name must be specified for pod {pod_name}"
        ))),
        _ => Err(ApiError::bad_request(format!(
            "a container name must be specified for pod {pod_name}, choose one of: [{}]",
            all_names(pod).join(" ")
        ))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use axum::http::StatusCode;
    use serde_json::json;

    fn q(s: &str) -> RawQuery {
        RawQuery::parse(Some(s))
    }

    #[test]
    fn log_options_decode_and_forward() {
        let o = LogOptions::parse(&q(
            "container=c&follow=true&previous=1&timestamps=&tailLines=10&limitBytes=5&sinceSeconds=3",
        ))
        .unwrap();
        assert_eq!(o.container, "c");
        assert!(o.follow && o.previous && o.timestamps);
        assert_eq!(
            (o.tail_lines, o.limit_bytes, o.since_seconds),
            (Some(10), Some(5), Some(3))
        );
        o.validate("p").unwrap();
        assert_eq!(
            o.kubelet_query(),
            "follow=true&limitBytes=5&previous=true&sinceSeconds=3&tailLines=10&timestamps=true"
        );
        let o = LogOptions::parse(&q(
            "follow=false&tailLines=&sinceTime=2024-01-02T03:04:05%2B01:00",
        ))
        .unwrap();
        assert!(!o.follow);
        assert_eq!(o.tail_lines, None);
        assert_eq!(o.since_time.as_deref(), Some("2024-01-02T02:04:05Z"));
        assert_eq!(o.kubelet_query(), "sinceTime=2024-01-02T02%3A04%3A05Z");
        assert_eq!(LogOptions::parse(&q("")).unwrap().kubelet_query(), "");
    }

    #[test]
    fn log_options_junk_is_bad_request() {
        let e = LogOptions::parse(&q("tailLines=abc")).unwrap_err();
        assert_eq!(e.code, StatusCode::BAD_REQUEST);
        assert_eq!(
            e.message,
            "strconv.ParseInt: parsing \"abc\": invalid syntax"
        );
        let e = LogOptions::parse(&q("sinceTime=yesterday")).unwrap_err();
        assert_eq!(e.code, StatusCode::BAD_REQUEST);
        assert!(
            e.message.starts_with("parsing time \"yesterday\""),
            "{}",
            e.message
        );
    }

    #[test]
    fn log_options_validation_matches_upstream() {
        let check = |s: &str| LogOptions::parse(&q(s)).unwrap().validate("web");
        check("tailLines=0").unwrap();
        check("sinceTime=2024-01-02T03:04:05Z").unwrap();
        let e = check("tailLines=-1").unwrap_err();
        assert_eq!(e.code, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            e.message,
            "PodLogOptions \"web\" is invalid: tailLines: Invalid value: -1: must be greater than or equal to 0"
        );
        let e = check("limitBytes=0").unwrap_err();
        assert!(
            e.message
                .ends_with("limitBytes: Invalid value: 0: must be greater than 0")
        );
        let e = check("sinceSeconds=0").unwrap_err();
        assert!(
            e.message
                .ends_with("sinceSeconds: Invalid value: 0: must be greater than 0")
        );
        let e = check("sinceSeconds=5&sinceTime=2024-01-02T03:04:05Z").unwrap_err();
        assert_eq!(e.code, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            e.message
                .contains("at most one of `sinceTime` or `sinceSeconds` may be specified")
        );
        let e = check("tailLines=-1&limitBytes=-1").unwrap_err();
        assert!(
            e.message.contains("is invalid: [tailLines"),
            "{}",
            e.message
        );
    }

    #[test]
    fn exec_options_checks_and_kubelet_query() {
        let mut o = StreamOptions::parse(
            &q("command=sh&command=-c&command=echo+hi&stdout=true&stderr=true"),
            true,
        );
        assert_eq!(o.command, ["sh", "-c", "echo hi"]);
        o.check(true).unwrap();
        assert_eq!(
            o.kubelet_query(),
            "command=sh&command=-c&command=echo+hi&error=1&output=1&stderr=1&stdout=1"
        );
        // A TTY drops stderr, as the kubelet does.
        let mut o = StreamOptions::parse(&q("command=sh&stdin=1&stdout=1&stderr=1&tty=true"), true);
        o.check(true).unwrap();
        assert!(!o.stderr);
        assert_eq!(
            o.kubelet_query(),
            "command=sh&input=1&output=1&stdin=1&stdout=1&tty=1"
        );
        let mut o = StreamOptions::parse(&q("command=ls&stdout=false"), true);
        let e = o.check(true).unwrap_err();
        assert_eq!(e.code, StatusCode::BAD_REQUEST);
        assert_eq!(
            e.message,
            "you must specify at least 1 of stdin, stdout, stderr"
        );
        let mut o = StreamOptions::parse(&q("stdout=true"), true);
        assert_eq!(
            o.check(true).unwrap_err().message,
            "you must specify at least 1 command"
        );
        // Attach has no command.
        let mut o = StreamOptions::parse(&q("command=x&stdout=true"), false);
        assert!(o.command.is_empty());
        o.check(false).unwrap();
        let mut o = StreamOptions::parse(&q("stderr=1&tty=1"), false);
        assert!(o.check(false).is_err());
    }

    #[test]
    fn port_forward_ports() {
        let o = PortForwardOptions::parse(&q("ports=80&ports=443,8080")).unwrap();
        assert_eq!(o.ports, [80, 443, 8080]);
        assert_eq!(o.kubelet_query(), "port=80%2C443%2C8080");
        assert_eq!(
            PortForwardOptions::parse(&q("")).unwrap().kubelet_query(),
            ""
        );
        let e = PortForwardOptions::parse(&q("ports=http")).unwrap_err();
        assert_eq!(e.code, StatusCode::BAD_REQUEST);
        assert!(PortForwardOptions::parse(&q("ports=70000")).is_err());
    }

    fn pod(containers: &[&str], init: &[&str], ephemeral: &[&str]) -> Value {
        let list = |n: &[&str]| n.iter().map(|n| json!({"name": n})).collect::<Vec<_>>();
        json!({"spec": {
            "containers": list(containers),
            "initContainers": list(init),
            "ephemeralContainers": list(ephemeral),
        }})
    }

    #[test]
    fn container_defaulting() {
        let one = pod(&["app"], &["setup"], &[]);
        assert_eq!(select_container(&one, "", "p").unwrap(), "app");
        assert_eq!(select_container(&one, "setup", "p").unwrap(), "setup");
        let e = select_container(&one, "nope", "p").unwrap_err();
        assert_eq!(e.code, StatusCode::BAD_REQUEST);
        assert_eq!(e.message, "container nope is not valid for pod p");

        let many = pod(&["a", "b"], &["i"], &["dbg"]);
        let e = select_container(&many, "", "web").unwrap_err();
        assert_eq!(e.code, StatusCode::BAD_REQUEST);
        assert_eq!(
            e.message,
            "a container name must be specified for pod web, choose one of: [i a b dbg]"
        );
        assert_eq!(select_container(&many, "dbg", "web").unwrap(), "dbg");
        // The default-container annotation is kubectl's business, not the server's.
        let mut annotated = pod(&["a", "b"], &[], &[]);
        annotated["metadata"] =
            json!({"annotations": {"kubectl.kubernetes.io/default-container": "b"}});
        assert!(select_container(&annotated, "", "web").is_err());

        let none = pod(&[], &[], &[]);
        assert_eq!(
            select_container(&none, "", "x").unwrap_err().message,
            "a container name must be specified for pod x"
        );
    }
}
