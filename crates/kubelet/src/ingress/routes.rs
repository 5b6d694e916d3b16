//! The routing table: the rules of every served Ingress merged, matched as the Ingress
//! spec says (host exact or `*.` wildcard of one label, then `Exact`/`Prefix` paths,
//! longest prefix by whole path elements, Exact before Prefix).
//!
//! Rules are taken from the oldest Ingress first, so when two Ingresses declare the same
//! host and path the older one keeps it (as ingress-nginx does).

use k8s_openapi::api::networking::v1::{HTTPIngressPath, Ingress, IngressBackend};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use std::collections::HashMap;

/// The Service port an Ingress backend names.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PortRef {
    Number(i32),
    Name(String),
}

/// A Service backend: `service.name` + `service.port` in the Ingress's namespace.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BackendRef {
    pub namespace: String,
    pub service: String,
    pub port: PortRef,
}

/// Where a matched request goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Service(BackendRef),
    /// A backend we cannot serve (a `resource` backend, a Service without a port).
    Unsupported,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Match {
    /// The whole request path, byte for byte.
    Exact(String),
    /// These leading path elements (empty: every path).
    Prefix(Vec<String>),
}

#[derive(Clone, Debug)]
struct PathRule {
    matcher: Match,
    target: Target,
}

/// The immutable table requests are routed with; rebuilt after every change.
#[derive(Debug, Default)]
pub struct Routes {
    exact_hosts: HashMap<String, Vec<PathRule>>,
    /// `*.example.com` rules, keyed by `example.com`.
    wildcard_hosts: HashMap<String, Vec<PathRule>>,
    /// Rules without a host.
    any_host: Vec<PathRule>,
    default_backend: Option<Target>,
}

/// The path elements of `path` (`/a//b/` → `a`, `b`): a trailing slash does not count.
fn elements(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|e| !e.is_empty())
        .map(str::to_string)
        .collect()
}

/// The request's host without port or trailing dot, lower-cased (hosts are
/// case-insensitive).
pub fn normalize_host(host: &str) -> String {
    let host = if host.starts_with('[') {
        // An IPv6 literal: keep the brackets, drop a port after them.
        host.split_once(']')
            .map_or(host, |(h, _)| &host[..=h.len()])
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    host.trim_end_matches('.').to_ascii_lowercase()
}

fn target(namespace: &str, backend: &IngressBackend) -> Target {
    let Some(svc) = &backend.service else {
        return Target::Unsupported;
    };
    let port = svc.port.as_ref().and_then(|p| match (&p.name, p.number) {
        (Some(name), _) if !name.is_empty() => Some(PortRef::Name(name.clone())),
        (_, Some(n)) => Some(PortRef::Number(n)),
        _ => None,
    });
    match port {
        Some(port) => Target::Service(BackendRef {
            namespace: namespace.to_string(),
            service: svc.name.clone(),
            port,
        }),
        None => Target::Unsupported,
    }
}

fn path_rule(namespace: &str, p: &HTTPIngressPath) -> PathRule {
    let path = p.path.as_deref().unwrap_or("/");
    let matcher = match p.path_type.as_str() {
        "Exact" => Match::Exact(path.to_string()),
        // ImplementationSpecific is treated as Prefix (as Traefik does).
        _ => Match::Prefix(elements(path)),
    };
    PathRule {
        matcher,
        target: target(namespace, &p.backend),
    }
}

/// The Ingresses' creation order (oldest first, then namespace/name).
fn age_key(ing: &Ingress) -> (Option<Time>, String, String) {
    let m = &ing.metadata;
    (
        m.creation_timestamp.clone(),
        m.namespace.clone().unwrap_or_default(),
        m.name.clone().unwrap_or_default(),
    )
}

/// Oldest Ingress first: the order in which their rules claim hosts and paths.
pub fn sort_by_age(ingresses: &mut [&Ingress]) {
    ingresses.sort_by_key(|i| age_key(i));
}

impl Routes {
    /// The table of `ingresses` (those this controller serves).
    pub fn build(ingresses: &[&Ingress]) -> Routes {
        let mut sorted: Vec<&Ingress> = ingresses.to_vec();
        sort_by_age(&mut sorted);
        let mut routes = Routes::default();
        for ing in sorted {
            let ns = ing.metadata.namespace.as_deref().unwrap_or("default");
            let Some(spec) = &ing.spec else { continue };
            if routes.default_backend.is_none()
                && let Some(b) = &spec.default_backend
            {
                routes.default_backend = Some(target(ns, b));
            }
            for rule in spec.rules.iter().flatten() {
                let paths = rule.http.iter().flat_map(|h| h.paths.iter());
                let host = rule.host.as_deref().map(normalize_host).unwrap_or_default();
                let list = if host.is_empty() {
                    &mut routes.any_host
                } else if let Some(suffix) = host.strip_prefix("*.") {
                    routes.wildcard_hosts.entry(suffix.to_string()).or_default()
                } else {
                    routes.exact_hosts.entry(host).or_default()
                };
                list.extend(paths.map(|p| path_rule(ns, p)));
            }
        }
        routes
    }

    /// Every Service backend the table can send to (to resolve their endpoints).
    pub fn backends(&self) -> impl Iterator<Item = &BackendRef> {
        self.exact_hosts
            .values()
            .chain(self.wildcard_hosts.values())
            .flatten()
            .chain(self.any_host.iter())
            .map(|r| &r.target)
            .chain(self.default_backend.iter())
            .filter_map(|t| match t {
                Target::Service(b) => Some(b),
                Target::Unsupported => None,
            })
    }

    /// Where a request for `host` (as sent, port allowed) and `path` goes; None: 404.
    ///
    /// Rules of the exact host are tried first, then the wildcard one, then rules
    /// without a host, then the default backend: a path no host rule matches falls
    /// through to the host-less rules (as Traefik, which k3s ships, routes).
    pub fn route(&self, host: &str, path: &str) -> Option<&Target> {
        let host = normalize_host(host);
        let wildcard = host
            .split_once('.')
            .and_then(|(_, suffix)| self.wildcard_hosts.get(suffix));
        let request: Vec<&str> = path.split('/').filter(|e| !e.is_empty()).collect();
        [self.exact_hosts.get(&host), wildcard, Some(&self.any_host)]
            .into_iter()
            .flatten()
            .find_map(|rules| best(rules, path, &request))
            .or(self.default_backend.as_ref())
    }
}

/// The best rule for the path: an Exact match (it is never shorter than a Prefix match),
/// else the Prefix with the most elements; the first such rule on ties.
fn best<'a>(rules: &'a [PathRule], path: &str, request: &[&str]) -> Option<&'a Target> {
    let mut prefix: Option<(&PathRule, usize)> = None;
    for rule in rules {
        match &rule.matcher {
            Match::Exact(p) if p == path => return Some(&rule.target),
            Match::Exact(_) => {}
            Match::Prefix(elems) => {
                let matches =
                    elems.len() <= request.len() && elems.iter().zip(request).all(|(a, b)| a == b);
                if matches && prefix.is_none_or(|(_, n)| elems.len() > n) {
                    prefix = Some((rule, elems.len()));
                }
            }
        }
    }
    prefix.map(|(r, _)| &r.target)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ingress(name: &str, created: &str, spec: serde_json::Value) -> Ingress {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "creationTimestamp": created},
            "spec": spec,
        }))
        .unwrap()
    }

    fn path(p: &str, kind: &str, service: &str) -> serde_json::Value {
        json!({"path": p, "pathType": kind,
               "backend": {"service": {"name": service, "port": {"number": 80}}}})
    }

    fn rules(host: Option<&str>, paths: Vec<serde_json::Value>) -> serde_json::Value {
        let mut r = json!({"http": {"paths": paths}});
        if let Some(h) = host {
            r["host"] = json!(h);
        }
        r
    }

    fn table(spec: serde_json::Value) -> Routes {
        Routes::build(&[&ingress("i", "2024-01-01T00:00:00Z", spec)])
    }

    /// The Service name a request goes to ("" for none).
    fn to(routes: &Routes, host: &str, p: &str) -> String {
        match routes.route(host, p) {
            Some(Target::Service(b)) => b.service.clone(),
            Some(Target::Unsupported) => "unsupported".into(),
            None => String::new(),
        }
    }

    /// The examples table of the Kubernetes Ingress documentation.
    #[test]
    fn documented_path_examples() {
        let one =
            |p: &str, kind: &str| table(json!({"rules": [rules(None, vec![path(p, kind, "s")])]}));
        let cases: &[(&str, &str, &str, bool)] = &[
            ("Prefix", "/", "/anything/at/all", true),
            ("Exact", "/foo", "/foo", true),
            ("Exact", "/foo", "/bar", false),
            ("Exact", "/foo", "/foo/", false),
            ("Exact", "/foo/", "/foo", false),
            ("Prefix", "/foo", "/foo", true),
            ("Prefix", "/foo", "/foo/", true),
            ("Prefix", "/foo/", "/foo", true),
            ("Prefix", "/foo/", "/foo/", true),
            ("Prefix", "/aaa/bb", "/aaa/bbb", false),
            ("Prefix", "/aaa/bbb", "/aaa/bbb", true),
            ("Prefix", "/aaa/bbb/", "/aaa/bbb", true),
            ("Prefix", "/aaa/bbb", "/aaa/bbb/", true),
            ("Prefix", "/aaa/bbb", "/aaa/bbb/ccc", true),
            ("Prefix", "/aaa/bbb", "/aaa/bbbxyz", false),
            ("Prefix", "/aaa", "/ccc", false),
            ("ImplementationSpecific", "/aaa", "/aaa/x", true),
        ];
        for (kind, p, request, want) in cases {
            let got = !to(&one(p, kind), "h", request).is_empty();
            assert_eq!(got, *want, "{kind} {p} vs {request}");
        }
    }

    #[test]
    fn longest_prefix_wins_and_exact_beats_prefix() {
        let t = table(json!({"rules": [rules(None, vec![
            path("/", "Prefix", "root"),
            path("/aaa", "Prefix", "aaa"),
            path("/aaa/bbb", "Prefix", "bbb"),
            path("/foo", "Prefix", "foo-prefix"),
            path("/foo", "Exact", "foo-exact"),
        ])]}));
        assert_eq!(to(&t, "h", "/aaa/ccc"), "aaa");
        assert_eq!(to(&t, "h", "/aaa/bbb"), "bbb");
        assert_eq!(to(&t, "h", "/aaa/bbb/x"), "bbb");
        assert_eq!(to(&t, "h", "/ccc"), "root");
        assert_eq!(to(&t, "h", "/foo"), "foo-exact");
        assert_eq!(to(&t, "h", "/foo/"), "foo-prefix");
    }

    #[test]
    fn hosts_exact_wildcard_and_none() {
        let t = table(json!({"rules": [
            rules(Some("foo.bar.com"), vec![path("/", "Prefix", "exact")]),
            rules(Some("*.bar.com"), vec![path("/", "Prefix", "wild")]),
            rules(Some("only.example.com"), vec![path("/api", "Prefix", "api")]),
            rules(None, vec![path("/", "Prefix", "any")]),
        ]}));
        assert_eq!(to(&t, "foo.bar.com", "/"), "exact");
        assert_eq!(to(&t, "FOO.bar.com:8080", "/"), "exact");
        assert_eq!(to(&t, "baz.bar.com", "/x"), "wild");
        // The wildcard covers exactly one label.
        assert_eq!(to(&t, "baz.foo.bar.com", "/"), "any");
        assert_eq!(to(&t, "bar.com", "/"), "any");
        assert_eq!(to(&t, "only.example.com", "/api/v1"), "api");
        // No path of the host matches: the host-less rules do.
        assert_eq!(to(&t, "only.example.com", "/other"), "any");
        assert_eq!(to(&t, "", "/"), "any");
    }

    #[test]
    fn default_backend_then_not_found() {
        let t = table(json!({
            "defaultBackend": {"service": {"name": "dflt", "port": {"number": 80}}},
            "rules": [rules(Some("a.com"), vec![path("/app", "Prefix", "app")])],
        }));
        assert_eq!(to(&t, "a.com", "/app"), "app");
        assert_eq!(to(&t, "a.com", "/"), "dflt");
        assert_eq!(to(&t, "b.com", "/app"), "dflt");
        let t =
            table(json!({"rules": [rules(Some("a.com"), vec![path("/app", "Prefix", "app")])]}));
        assert_eq!(to(&t, "b.com", "/app"), "");
    }

    #[test]
    fn ingresses_merge_and_the_oldest_keeps_a_duplicate() {
        let newer = ingress(
            "newer",
            "2024-02-01T00:00:00Z",
            json!({"rules": [
                rules(Some("a.com"), vec![path("/", "Prefix", "new"), path("/b", "Prefix", "b")]),
            ]}),
        );
        let older = ingress(
            "older",
            "2024-01-01T00:00:00Z",
            json!({"rules": [rules(Some("a.com"), vec![path("/", "Prefix", "old")])]}),
        );
        let t = Routes::build(&[&newer, &older]);
        assert_eq!(to(&t, "a.com", "/"), "old");
        assert_eq!(to(&t, "a.com", "/b/c"), "b");
        let mut names: Vec<&str> = t.backends().map(|b| b.service.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["b", "new", "old"]);
    }

    #[test]
    fn port_names_and_resource_backends() {
        let t = table(json!({"rules": [rules(None, vec![
            json!({"path": "/named", "pathType": "Prefix",
                   "backend": {"service": {"name": "s", "port": {"name": "http"}}}}),
            json!({"path": "/res", "pathType": "Prefix",
                   "backend": {"resource": {"kind": "Bucket", "name": "b"}}}),
        ])]}));
        assert_eq!(
            t.route("h", "/named"),
            Some(&Target::Service(BackendRef {
                namespace: "default".into(),
                service: "s".into(),
                port: PortRef::Name("http".into()),
            }))
        );
        assert_eq!(t.route("h", "/res"), Some(&Target::Unsupported));
    }

    #[test]
    fn host_normalization() {
        assert_eq!(normalize_host("Example.COM:80"), "example.com");
        assert_eq!(normalize_host("example.com."), "example.com");
        assert_eq!(normalize_host("[::1]:8080"), "[::1]");
        assert_eq!(normalize_host("[::1]"), "[::1]");
    }
}
