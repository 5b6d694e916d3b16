//! `pods/<id>/proxy[/path]` and `services/<id>/proxy[/path]`: resolve the backend
//! ([`super::target`]), work out the backend path as upstream's connect handler does
//! (the rest of the URL after `proxy`, cleaned, its trailing slash kept) and forward
//! ([`super::http`]).

use super::ProxyRequest;
use super::http::{self, Forward};
use super::rewrite::{Rewriter, clean};
use super::target;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::body::Body;
use axum::http::{HeaderValue, Method, Response, StatusCode, header};

/// What is proxied to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Pod,
    Service,
}

impl Kind {
    fn plural(self) -> &'static str {
        match self {
            Kind::Pod => "pods",
            Kind::Service => "services",
        }
    }
}

/// Serve `<kind>/<req.name>/<sub>` where `sub` is `proxy` or `proxy/<path>`.
pub async fn serve(
    state: &AppState,
    kind: Kind,
    sub: &str,
    req: ProxyRequest,
) -> ApiResult<Response<Body>> {
    // Upstream's proxy connecters accept exactly these methods.
    if !matches!(
        req.method,
        Method::GET
            | Method::POST
            | Method::PUT
            | Method::PATCH
            | Method::DELETE
            | Method::HEAD
            | Method::OPTIONS
    ) {
        return Err(ApiError::method_not_allowed(
            req.method.as_str(),
            &format!("{}/proxy", kind.plural()),
        ));
    }
    let namespace = req.namespace.clone().unwrap_or_default();
    let location = match kind {
        Kind::Pod => target::pod_location(state, &namespace, &req.name).await?,
        Kind::Service => target::service_location(state, &namespace, &req.name).await?,
    };
    let path = backend_path(sub)?;
    let prefix = format!(
        "/api/v1/namespaces/{namespace}/{}/{}/proxy",
        kind.plural(),
        req.name
    );
    let upgrade = super::upgrade::is_upgrade_request(&req.headers);
    // A root without its slash is redirected to have one, so relative links resolve
    // inside the proxy (upstream does this for reads only).
    if path.is_empty() && !upgrade && matches!(req.method, Method::GET | Method::HEAD) {
        return Ok(redirect(&prefix, req.query.as_deref()));
    }
    let request_host = req
        .headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let rewriter = Rewriter {
        prefix,
        backend_host: location.authority(),
        request_host,
    };
    http::forward(Forward {
        method: req.method,
        location,
        path,
        query: req.query,
        headers: req.headers,
        body: req.body,
        upgrade: req.upgrade,
        rewriter,
    })
    .await
}

/// 301 to `<prefix>/` with the query kept.
fn redirect(prefix: &str, query: Option<&str>) -> Response<Body> {
    let target = match query.filter(|q| !q.is_empty()) {
        Some(q) => format!("{prefix}/?{q}"),
        None => format!("{prefix}/"),
    };
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::MOVED_PERMANENTLY;
    if let Ok(v) = HeaderValue::from_str(&target) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

/// The backend path for a `proxy[/rest]` subresource (still percent-encoded as it came):
/// decoded, cleaned like Go's `path.Join` (no `.`/`..`/empty segments, so it cannot
/// climb out of the backend's root), escaped again for a request line, with a trailing
/// slash kept. Empty for a bare `proxy`.
pub fn backend_path(sub: &str) -> ApiResult<String> {
    let rest = sub.strip_prefix("proxy").unwrap_or("");
    if rest.is_empty() {
        return Ok(String::new());
    }
    let decoded = percent_decode(rest.as_bytes())
        .ok_or_else(|| ApiError::bad_request(format!("invalid URL escape in {rest:?}")))?;
    let escaped: Vec<String> = decoded.split(|b| *b == b'/').map(escape_segment).collect();
    let mut path = clean(&format!("/{}", escaped.join("/")));
    if decoded.ends_with(b"/") && !path.ends_with('/') {
        path.push('/');
    }
    Ok(path)
}

fn percent_decode(s: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            let text = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(text, 16).ok()?);
            i += 3;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    Some(out)
}

/// Go's path escaping: letters, digits, `-_.~` and `$&+,/:;=@` stay, the rest is `%XX`.
fn escape_segment(seg: &[u8]) -> String {
    let mut out = String::with_capacity(seg.len());
    for &b in seg {
        if b.is_ascii_alphanumeric() || b"-_.~$&+,/:;=@".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn backend_paths_are_cleaned_and_keep_trailing_slashes() {
        for (sub, want) in [
            ("proxy", ""),
            ("proxy/", "/"),
            ("proxy/a/b", "/a/b"),
            ("proxy/a/b/", "/a/b/"),
            ("proxy/a//b/./c/../d", "/a/b/d"),
            ("proxy/../../etc/passwd", "/etc/passwd"),
            ("proxy/%2e%2e/x", "/x"),
            ("proxy/a%20b/c%3Fd", "/a%20b/c%3Fd"),
            ("proxy/x%2Fy", "/x/y"),
            ("proxy/%41:b@c", "/A:b@c"),
            ("proxy/dir%2F", "/dir/"),
        ] {
            assert_eq!(backend_path(sub).unwrap(), want, "{sub}");
        }
        assert_eq!(
            backend_path("proxy/%zz").unwrap_err().code,
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn root_redirect_keeps_the_query() {
        let r = redirect("/api/v1/namespaces/d/pods/p/proxy", Some("a=1"));
        assert_eq!(r.status(), StatusCode::MOVED_PERMANENTLY);
        assert_eq!(
            r.headers()[header::LOCATION],
            "/api/v1/namespaces/d/pods/p/proxy/?a=1"
        );
        let r = redirect("/x/proxy", None);
        assert_eq!(r.headers()[header::LOCATION], "/x/proxy/");
    }
}
