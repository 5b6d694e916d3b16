//! Impersonation (`kubectl --as`, `--as-group`, `--as-uid`): the `Impersonate-User`,
//! `Impersonate-Group` (repeatable), `Impersonate-Uid` and `Impersonate-Extra-<key>`
//! headers switch the request's user, as upstream's impersonation filter does. Each
//! requested attribute must be authorized for the verb `impersonate` on `users`, `groups`,
//! `serviceaccounts`, `uids` or `userextras/<key>`.

use super::{ANONYMOUS, AUTHENTICATED, UNAUTHENTICATED, UserInfo, serviceaccount};
use crate::authz::{self, Attributes};
use crate::error::ApiError;
use crate::state::AppState;
use axum::http::HeaderMap;

const USER: &str = "impersonate-user";
const GROUP: &str = "impersonate-group";
const UID: &str = "impersonate-uid";
const EXTRA_PREFIX: &str = "impersonate-extra-";

/// One thing the caller asks to act as.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Request {
    User(String),
    ServiceAccount { namespace: String, name: String },
    Group(String),
    Uid(String),
    Extra { key: String, value: String },
}

/// The impersonation requests in `headers` (empty when there are none).
fn requests(headers: &HeaderMap) -> Result<Vec<Request>, ApiError> {
    let text = |v: &axum::http::HeaderValue| String::from_utf8_lossy(v.as_bytes()).into_owned();
    let mut out = Vec::new();
    let user = headers.get(USER).map(text).filter(|u| !u.is_empty());
    if let Some(u) = &user {
        out.push(match serviceaccount::split_username(u) {
            Some((ns, name)) => Request::ServiceAccount {
                namespace: ns.into(),
                name: name.into(),
            },
            None => Request::User(u.clone()),
        });
    }
    let before = out.len();
    out.extend(
        headers
            .get_all(GROUP)
            .iter()
            .map(|g| Request::Group(text(g))),
    );
    if let Some(uid) = headers.get(UID).map(text).filter(|u| !u.is_empty()) {
        out.push(Request::Uid(uid));
    }
    for (name, value) in headers {
        if let Some(key) = name.as_str().strip_prefix(EXTRA_PREFIX) {
            out.push(Request::Extra {
                key: unescape(key),
                value: text(value),
            });
        }
    }
    if user.is_none() && out.len() > before {
        return Err(ApiError::internal(format!(
            "requested {out:?} without impersonating a user"
        )));
    }
    Ok(out)
}

/// Header names carry extra keys %-encoded (keys may contain `/`); a key that does not
/// decode is kept as sent.
fn unescape(key: &str) -> String {
    let bytes = key.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = key
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match hex {
                Some(b) => {
                    out.push(b);
                    i += 3;
                    continue;
                }
                None => return key.to_string(),
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| key.to_string())
}

/// Apply the impersonation headers: `Ok(None)` when there are none, the new user when
/// every requested attribute is allowed, 403 otherwise. The headers are removed.
pub async fn apply(
    state: &AppState,
    requester: &UserInfo,
    headers: &mut HeaderMap,
) -> Result<Option<UserInfo>, ApiError> {
    let reqs = requests(headers)?;
    if reqs.is_empty() {
        return Ok(None);
    }
    let groups_specified = headers.contains_key(GROUP);
    let mut user = UserInfo::default();
    for r in &reqs {
        let (group, resource, namespace, name) = match r {
            Request::ServiceAccount { namespace, name } => {
                user.name = format!("{}{namespace}:{name}", serviceaccount::USER_PREFIX);
                if !groups_specified {
                    user.groups = serviceaccount::groups(namespace);
                }
                (
                    "",
                    "serviceaccounts".to_string(),
                    namespace.as_str(),
                    name.as_str(),
                )
            }
            Request::User(name) => {
                user.name = name.clone();
                ("", "users".to_string(), "", name.as_str())
            }
            Request::Group(g) => {
                user.groups.push(g.clone());
                ("", "groups".to_string(), "", g.as_str())
            }
            Request::Uid(uid) => {
                user.uid = uid.clone();
                (
                    "authentication.k8s.io",
                    "uids".to_string(),
                    "",
                    uid.as_str(),
                )
            }
            Request::Extra { key, value } => {
                user.extra
                    .entry(key.clone())
                    .or_default()
                    .push(value.clone());
                (
                    "authentication.k8s.io",
                    format!("userextras/{key}"),
                    "",
                    value.as_str(),
                )
            }
        };
        let (resource, subresource) = match resource.split_once('/') {
            Some((r, s)) => (r.to_string(), s.to_string()),
            None => (resource, String::new()),
        };
        let attrs = Attributes {
            verb: "impersonate".into(),
            resource_request: true,
            api_group: group.into(),
            api_version: "v1".into(),
            resource,
            subresource,
            namespace: namespace.into(),
            name: name.into(),
            ..Attributes::for_user(requester)
        };
        let decision = state.authz.authorize(&attrs).await;
        if !decision.allowed {
            return Err(authz::forbidden(&attrs, &decision.reason));
        }
    }
    if user.name == ANONYMOUS {
        user.add_group(UNAUTHENTICATED);
    } else if !user
        .groups
        .iter()
        .any(|g| g == AUTHENTICATED || g == UNAUTHENTICATED)
    {
        user.groups.push(AUTHENTICATED.into());
    }
    headers.remove(USER);
    headers.remove(GROUP);
    headers.remove(UID);
    let extras: Vec<_> = headers
        .keys()
        .filter(|k| k.as_str().starts_with(EXTRA_PREFIX))
        .cloned()
        .collect();
    for k in extras {
        headers.remove(k);
    }
    Ok(Some(user))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                v.parse().expect("value"),
            );
        }
        h
    }

    #[test]
    fn parses_every_header() {
        let h = headers(&[
            ("Impersonate-User", "jane"),
            ("Impersonate-Group", "dev"),
            ("Impersonate-Group", "ops"),
            ("Impersonate-Uid", "u1"),
            ("Impersonate-Extra-Example.com%2fscopes", "a"),
        ]);
        assert_eq!(
            requests(&h).expect("ok"),
            [
                Request::User("jane".into()),
                Request::Group("dev".into()),
                Request::Group("ops".into()),
                Request::Uid("u1".into()),
                Request::Extra {
                    key: "example.com/scopes".into(),
                    value: "a".into()
                },
            ]
        );
        let sa = headers(&[("Impersonate-User", "system:serviceaccount:ns:sa")]);
        assert_eq!(
            requests(&sa).expect("ok"),
            [Request::ServiceAccount {
                namespace: "ns".into(),
                name: "sa".into()
            }]
        );
        assert!(requests(&HeaderMap::new()).expect("ok").is_empty());
    }

    #[test]
    fn groups_without_user_are_refused() {
        let err = requests(&headers(&[("Impersonate-Group", "dev")])).expect_err("refused");
        assert_eq!(err.code.as_u16(), 500);
        assert!(
            err.message.contains("without impersonating a user"),
            "{}",
            err.message
        );
    }

    #[test]
    fn extra_keys_unescape() {
        assert_eq!(unescape("a%2Fb"), "a/b");
        assert_eq!(unescape("plain"), "plain");
        assert_eq!(unescape("bad%zz"), "bad%zz");
    }
}
