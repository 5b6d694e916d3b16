//! Registry credentials from a pod's `imagePullSecrets`, matched to an image the way
//! upstream's kubelet keyring does it:
//!
//! - `kubernetes.io/dockerconfigjson` (`.dockerconfigjson`, `{"auths": {...}}`) and
//!   `kubernetes.io/dockercfg` (`.dockercfg`, the bare map) Secrets are read; other types
//!   and unparsable configs are ignored;
//! - each key becomes `host[:port][/path]` (scheme dropped, a `/v1/` or `/v2/` path prefix
//!   counts as the host alone), so `https://index.docker.io/v1/` is `index.docker.io`;
//! - an image matches a key when the ports are equal, the host has as many dot-separated
//!   parts as the key and each part matches (`*` and `?` globs, e.g. `*.example.com`), and
//!   the key's path is a prefix of the image's repository path;
//! - all matching keys' credentials are returned, longest key (reverse-sorted) first; with
//!   none, a Docker Hub image uses the `index.docker.io` credentials.
//!
//! The image manager tries each credential in turn and reports all failures together.

use base64::Engine;
use k8s_openapi::api::core::v1::Secret;
use serde::Deserialize;
use std::collections::BTreeMap;

/// One registry login.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Credential {
    pub username: String,
    pub password: String,
}

/// Credentials by registry key (`host[:port][/path]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keyring {
    creds: BTreeMap<String, Vec<Credential>>,
}

/// The Docker Hub key older configs use (`https://index.docker.io/v1/`).
const DOCKER_HUB_KEY: &str = "index.docker.io";

/// One entry of a docker config file.
#[derive(Debug, Default, Deserialize)]
struct Entry {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    /// base64 of `user:password`; wins over the separate fields.
    #[serde(default)]
    auth: String,
}

#[derive(Debug, Deserialize)]
struct ConfigJson {
    #[serde(default)]
    auths: BTreeMap<String, Entry>,
}

impl Entry {
    fn credential(self) -> Option<Credential> {
        if self.auth.is_empty() {
            return Some(Credential {
                username: self.username,
                password: self.password,
            });
        }
        let raw = base64::engine::general_purpose::STANDARD
            .decode(self.auth.trim())
            .ok()?;
        let text = String::from_utf8(raw).ok()?;
        let (user, pass) = text.split_once(':')?;
        Some(Credential {
            username: user.to_string(),
            password: pass.trim_end_matches('\0').to_string(),
        })
    }
}

/// The docker config a pull Secret carries: registry key → entry.
fn config_of(secret: &Secret) -> Option<BTreeMap<String, Entry>> {
    let data = secret.data.as_ref()?;
    match secret.type_.as_deref()? {
        "kubernetes.io/dockerconfigjson" => {
            let bytes = &data.get(".dockerconfigjson")?.0;
            serde_json::from_slice::<ConfigJson>(bytes)
                .ok()
                .map(|c| c.auths)
        }
        "kubernetes.io/dockercfg" => {
            let bytes = &data.get(".dockercfg")?.0;
            serde_json::from_slice(bytes).ok()
        }
        _ => None,
    }
}

/// `host[:port][/path]` for a config key (`https://` optional).
fn registry_key(location: &str) -> Option<String> {
    let url = parse_schemeless(location)?;
    let mut path = url.path;
    for prefix in ["/v1/", "/v2/"] {
        if path.starts_with(prefix) {
            path = path[3..].to_string();
        }
    }
    Some(if path.is_empty() || path == "/" {
        url.host
    } else {
        format!("{}{path}", url.host)
    })
}

/// A URL without scheme split into `host[:port]` and path.
struct Schemeless {
    host: String,
    path: String,
}

fn parse_schemeless(s: &str) -> Option<Schemeless> {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if host.is_empty() {
        return None;
    }
    Some(Schemeless {
        host: host.to_ascii_lowercase(),
        path: path.to_string(),
    })
}

fn split_port(host: &str) -> (&str, &str) {
    match host.rsplit_once(':') {
        Some((h, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => (h, p),
        _ => (host, ""),
    }
}

/// Go's `filepath.Match` for one host label: `*` any run, `?` one character.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    match (pattern.first(), text.first()) {
        (None, None) => true,
        (Some(b'*'), _) => {
            glob(&pattern[1..], text) || (!text.is_empty() && glob(pattern, &text[1..]))
        }
        (Some(b'?'), Some(_)) => glob(&pattern[1..], &text[1..]),
        (Some(p), Some(t)) if p == t => glob(&pattern[1..], &text[1..]),
        _ => false,
    }
}

/// Whether the registry `key` covers `image` (both `host[:port][/path]`).
fn matches(key: &str, image: &str) -> bool {
    let (Some(k), Some(i)) = (parse_schemeless(key), parse_schemeless(image)) else {
        return false;
    };
    let (kh, kp) = split_port(&k.host);
    let (ih, ip) = split_port(&i.host);
    if kp != ip {
        return false;
    }
    let kparts: Vec<&str> = kh.split('.').collect();
    let iparts: Vec<&str> = ih.split('.').collect();
    kparts.len() == iparts.len()
        && kparts
            .iter()
            .zip(&iparts)
            .all(|(k, i)| glob(k.as_bytes(), i.as_bytes()))
        && i.path.starts_with(&k.path)
}

/// Whether `repo` (normalized) lives on Docker Hub.
fn is_docker_hub(repo: &str) -> bool {
    let (first, rest) = repo.split_once('/').unwrap_or((repo, ""));
    !first.is_empty() && (rest.is_empty() || first == "docker.io" || !first.contains(['.', ':']))
}

/// The repository an image names, as Docker normalizes it: `busybox:1.36` is
/// `docker.io/library/busybox`, `localhost:5000/app@sha256:…` is `localhost:5000/app`.
pub fn repository(image: &str) -> String {
    let name = image.split('@').next().unwrap_or(image);
    let name = match name.rsplit_once(':') {
        Some((n, tag)) if !tag.contains('/') => n,
        _ => name,
    };
    let (first, rest) = name.split_once('/').unwrap_or(("", name));
    let has_domain = !first.is_empty() && (first.contains(['.', ':']) || first == "localhost");
    if has_domain {
        let domain = if first == "index.docker.io" {
            "docker.io"
        } else {
            first
        };
        if domain == "docker.io" && !rest.contains('/') {
            return format!("docker.io/library/{rest}");
        }
        return format!("{domain}/{rest}");
    }
    if first.is_empty() {
        format!("docker.io/library/{rest}")
    } else {
        format!("docker.io/{name}")
    }
}

impl Keyring {
    /// The credentials of the given pull Secrets (others are ignored).
    pub fn from_secrets<'a>(secrets: impl IntoIterator<Item = &'a Secret>) -> Keyring {
        let mut ring = Keyring::default();
        for secret in secrets {
            // Upstream drops a Secret whose config does not parse as a whole.
            let Some(config) = config_of(secret) else {
                continue;
            };
            let parsed: Option<Vec<(String, Credential)>> = config
                .into_iter()
                .map(|(loc, e)| Some((registry_key(&loc)?, e.credential()?)))
                .collect();
            for (key, cred) in parsed.into_iter().flatten() {
                let list = ring.creds.entry(key).or_default();
                if !list.contains(&cred) {
                    list.push(cred);
                }
            }
        }
        ring
    }

    pub fn is_empty(&self) -> bool {
        self.creds.is_empty()
    }

    /// The credentials to try for `image`, best match first; empty when none apply.
    pub fn lookup(&self, image: &str) -> Vec<Credential> {
        let repo = repository(image);
        let mut out = Vec::new();
        // Reverse order: longer (more specific) keys before their prefixes.
        for (key, creds) in self.creds.iter().rev() {
            if matches(key, &repo) {
                out.extend(creds.iter().cloned());
            }
        }
        if out.is_empty() && is_docker_hub(&repo) {
            out = self.creds.get(DOCKER_HUB_KEY).cloned().unwrap_or_default();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use serde_json::json;

    fn secret(ty: &str, key: &str, config: serde_json::Value) -> Secret {
        Secret {
            type_: Some(ty.into()),
            data: Some(
                [(key.to_string(), ByteString(config.to_string().into_bytes()))]
                    .into_iter()
                    .collect(),
            ),
            ..Default::default()
        }
    }

    fn json_secret(auths: serde_json::Value) -> Secret {
        secret(
            "kubernetes.io/dockerconfigjson",
            ".dockerconfigjson",
            json!({ "auths": auths }),
        )
    }

    fn cred(u: &str, p: &str) -> Credential {
        Credential {
            username: u.into(),
            password: p.into(),
        }
    }

    fn users(creds: Vec<Credential>) -> Vec<String> {
        creds.into_iter().map(|c| c.username).collect()
    }

    #[test]
    fn repositories_are_normalized_like_docker() {
        for (image, repo) in [
            ("busybox", "docker.io/library/busybox"),
            ("busybox:1.36", "docker.io/library/busybox"),
            ("bitnami/nginx:1", "docker.io/bitnami/nginx"),
            ("docker.io/nginx", "docker.io/library/nginx"),
            ("index.docker.io/nginx", "docker.io/library/nginx"),
            ("localhost/app:v1", "localhost/app"),
            ("localhost:5000/team/app:v1", "localhost:5000/team/app"),
            ("registry.test/app@sha256:abc", "registry.test/app"),
            (
                "127.0.0.1:5000/library/busybox:reg",
                "127.0.0.1:5000/library/busybox",
            ),
        ] {
            assert_eq!(repository(image), repo, "{image}");
        }
    }

    #[test]
    fn dockerconfigjson_and_dockercfg_are_read() {
        let a = json_secret(json!({"registry.test": {"username": "u1", "password": "p1"}}));
        let b = secret(
            "kubernetes.io/dockercfg",
            ".dockercfg",
            json!({"https://other.test/v1/": {"auth": "dTI6cDI6eA=="}}),
        );
        let ring = Keyring::from_secrets([&a, &b]);
        assert_eq!(ring.lookup("registry.test/app:v1"), vec![cred("u1", "p1")]);
        // `auth` is base64 of user:password; the password may contain ':'.
        assert_eq!(ring.lookup("other.test/x"), vec![cred("u2", "p2:x")]);
        assert!(ring.lookup("third.test/x").is_empty());
    }

    #[test]
    fn other_secret_types_and_broken_configs_are_ignored() {
        let opaque = secret(
            "Opaque",
            ".dockerconfigjson",
            json!({"auths": {"registry.test": {"username": "u"}}}),
        );
        let broken = Secret {
            type_: Some("kubernetes.io/dockerconfigjson".into()),
            data: Some(
                [(
                    ".dockerconfigjson".to_string(),
                    ByteString(b"{nope".to_vec()),
                )]
                .into_iter()
                .collect(),
            ),
            ..Default::default()
        };
        let bad_auth = json_secret(json!({"registry.test": {"auth": "bm8tY29sb24="}}));
        assert!(Keyring::from_secrets([&opaque, &broken, &bad_auth]).is_empty());
    }

    #[test]
    fn hosts_ports_globs_and_paths_match_as_upstream() {
        let ring = Keyring::from_secrets([&json_secret(json!({
            "*.wild.test": {"username": "wild"},
            "registry.test:5000": {"username": "port"},
            "registry.test/team": {"username": "team"},
            "registry.test": {"username": "host"},
            "https://registry.test/v2/": {"username": "v2"},
        }))]);
        assert_eq!(users(ring.lookup("a.wild.test/app")), ["wild"]);
        // A glob label matches one label only.
        assert!(ring.lookup("a.b.wild.test/app").is_empty());
        assert!(ring.lookup("wild.test/app").is_empty());
        // Ports must be equal.
        assert_eq!(users(ring.lookup("registry.test:5000/app")), ["port"]);
        assert!(ring.lookup("registry.test:6000/app").is_empty());
        // The path key is a prefix; more specific keys come first. `/v2/` is the host
        // key (the order within one key is unspecified, as upstream's).
        let team = users(ring.lookup("registry.test/team/app:1"));
        assert_eq!(team[0], "team");
        let mut rest = team[1..].to_vec();
        rest.sort();
        assert_eq!(rest, ["host", "v2"]);
        assert_eq!(ring.lookup("registry.test/other").len(), 2);
    }

    #[test]
    fn docker_hub_images_use_the_index_credentials() {
        let ring = Keyring::from_secrets([&json_secret(json!({
            "https://index.docker.io/v1/": {"username": "hub"},
        }))]);
        assert_eq!(users(ring.lookup("busybox")), ["hub"]);
        assert_eq!(users(ring.lookup("docker.io/bitnami/nginx:1")), ["hub"]);
        assert!(ring.lookup("registry.test/busybox").is_empty());
        let ring = Keyring::from_secrets([&json_secret(json!({
            "docker.io": {"username": "docker"},
        }))]);
        assert_eq!(users(ring.lookup("busybox:1.36")), ["docker"]);
    }

    #[test]
    fn duplicate_credentials_are_tried_once() {
        let s = json_secret(json!({"registry.test": {"username": "u", "password": "p"}}));
        let ring = Keyring::from_secrets([&s, &s]);
        assert_eq!(ring.lookup("registry.test/app"), vec![cred("u", "p")]);
    }
}
