//! Parse a request path into what it addresses (upstream's RequestInfo).

/// What a resource URL addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourcePath {
    pub group: String,
    pub version: String,
    /// Plural resource name (`pods`).
    pub resource: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
    /// `status`, `scale`, `log`, … (may contain `/`, e.g. `proxy/some/path`).
    pub subresource: Option<String>,
    /// Legacy `/watch/` path prefix.
    pub legacy_watch: bool,
}

/// Every kind of path the server answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/api`
    CoreVersions,
    /// `/apis`
    Groups,
    /// `/apis/<group>`
    Group(String),
    /// `/api/v1`, `/apis/<group>/<version>`
    ResourceList { group: String, version: String },
    /// A resource collection, object or subresource.
    Resource(ResourcePath),
    /// Anything else.
    Unknown,
}

/// Subresources of namespaces, which `/namespaces/<ns>/<x>` treats as subresources rather
/// than as a resource `x` inside the namespace (as upstream does).
const NAMESPACE_SUBRESOURCES: [&str; 2] = ["status", "finalize"];

/// Parse an API path (without query string).
pub fn parse(path: &str) -> Route {
    let mut route = parse_segments(path);
    // A proxy subpath keeps its trailing slash (`proxy/dir/` reaches the backend as `/dir/`).
    if let Route::Resource(r) = &mut route
        && path.ends_with('/')
        && let Some(sub) = &mut r.subresource
        && (sub == "proxy" || sub.starts_with("proxy/"))
    {
        sub.push('/');
    }
    route
}

fn parse_segments(path: &str) -> Route {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match parts.as_slice() {
        ["api"] => Route::CoreVersions,
        ["apis"] => Route::Groups,
        ["apis", group] => Route::Group(group.to_string()),
        ["api", version] => Route::ResourceList {
            group: String::new(),
            version: version.to_string(),
        },
        ["apis", group, version] => Route::ResourceList {
            group: group.to_string(),
            version: version.to_string(),
        },
        ["api", version, rest @ ..] => resource(String::new(), version, rest),
        ["apis", group, version, rest @ ..] => resource(group.to_string(), version, rest),
        _ => Route::Unknown,
    }
}

fn resource(group: String, version: &str, mut rest: &[&str]) -> Route {
    let mut legacy_watch = false;
    if rest.first() == Some(&"watch") {
        legacy_watch = true;
        rest = &rest[1..];
    }
    if rest.iter().any(|p| p.is_empty()) && rest.len() > 1 {
        // `//` inside a path: only a trailing proxy path may contain empty segments.
        if !(rest.len() > 3 && rest.contains(&"proxy")) {
            return Route::Unknown;
        }
    }
    let mut namespace = None;
    if rest.first() == Some(&"namespaces")
        && rest.len() > 1
        && rest.len() > 2
        && !NAMESPACE_SUBRESOURCES.contains(&rest[2])
    {
        namespace = Some(rest[1].to_string());
        rest = &rest[2..];
    }
    let Some(resource) = rest.first() else {
        return Route::Unknown;
    };
    if resource.is_empty() {
        return Route::Unknown;
    }
    let name = rest.get(1).map(|s| s.to_string());
    let subresource = if rest.len() > 2 {
        Some(rest[2..].join("/"))
    } else {
        None
    };
    Route::Resource(ResourcePath {
        group,
        version: version.to_string(),
        resource: resource.to_string(),
        namespace,
        name,
        subresource,
        legacy_watch,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(path: &str) -> ResourcePath {
        match parse(path) {
            Route::Resource(r) => r,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn discovery_paths() {
        assert_eq!(parse("/api"), Route::CoreVersions);
        assert_eq!(parse("/apis/"), Route::Groups);
        assert_eq!(parse("/apis/apps"), Route::Group("apps".into()));
        assert_eq!(
            parse("/apis/apps/v1"),
            Route::ResourceList {
                group: "apps".into(),
                version: "v1".into()
            }
        );
    }

    #[test]
    fn namespaced_object_and_subresource() {
        let r = res("/apis/apps/v1/namespaces/default/deployments/web/scale");
        assert_eq!(r.group, "apps");
        assert_eq!(r.namespace.as_deref(), Some("default"));
        assert_eq!(r.resource, "deployments");
        assert_eq!(r.name.as_deref(), Some("web"));
        assert_eq!(r.subresource.as_deref(), Some("scale"));
    }

    #[test]
    fn namespace_itself_and_its_subresources() {
        let r = res("/api/v1/namespaces/foo");
        assert_eq!(
            (r.resource.as_str(), r.name.as_deref(), r.namespace),
            ("namespaces", Some("foo"), None)
        );
        let r = res("/api/v1/namespaces/foo/finalize");
        assert_eq!(r.subresource.as_deref(), Some("finalize"));
        assert_eq!(r.namespace, None);
        let r = res("/api/v1/namespaces/foo/pods");
        assert_eq!(
            (r.resource.as_str(), r.namespace.as_deref()),
            ("pods", Some("foo"))
        );
    }

    #[test]
    fn cluster_wide_list_and_legacy_watch() {
        let r = res("/api/v1/pods");
        assert_eq!(
            (r.resource.as_str(), r.namespace, r.name),
            ("pods", None, None)
        );
        let r = res("/api/v1/watch/namespaces/default/pods/x");
        assert!(r.legacy_watch);
        assert_eq!(r.name.as_deref(), Some("x"));
    }

    #[test]
    fn proxy_subpath_kept_whole() {
        let r = res("/api/v1/namespaces/default/pods/p/proxy/a/b");
        assert_eq!(r.subresource.as_deref(), Some("proxy/a/b"));
        let r = res("/api/v1/namespaces/default/pods/p/proxy/a/b/");
        assert_eq!(r.subresource.as_deref(), Some("proxy/a/b/"));
        let r = res("/api/v1/namespaces/default/services/s:80/proxy/");
        assert_eq!(r.subresource.as_deref(), Some("proxy/"));
        let r = res("/api/v1/namespaces/default/pods/p/status/");
        assert_eq!(r.subresource.as_deref(), Some("status"));
    }

    #[test]
    fn junk_is_unknown() {
        assert_eq!(parse("/foo"), Route::Unknown);
        assert_eq!(parse("/"), Route::Unknown);
    }
}
