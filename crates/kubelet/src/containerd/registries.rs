//! `DATA_DIR/agent/registries.yaml` in k3s's format — `mirrors` (registry name → endpoint
//! URLs, optional `rewrite`) and `configs` (endpoint host → `auth`, `tls`) — rendered for
//! containerd 1.6's CRI plugin:
//!
//! - mirrors and TLS go to `hosts.toml` files under the `config_path` directory
//!   (`certs.d/<registry>/hosts.toml`; `*` becomes `_default`). containerd 1.6 refuses the
//!   older `registry.mirrors` / `configs.tls` tables together with `config_path`, and reads
//!   the host files at every pull;
//! - credentials go to `registry.configs."<host>".auth` in config.toml: with `config_path`
//!   set, containerd 1.6 still looks them up by the host of the endpoint being contacted
//!   (the same keying as k3s), so an image pulled through a mirror uses the mirror's
//!   credentials. The kubelet therefore sends no `AuthConfig` in `PullImageRequest`.
//!
//! `rewrite` rules are parsed but cannot be applied: they need k3s's patched containerd.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Why registries.yaml could not be used.
#[derive(Debug, thiserror::Error)]
pub enum RegistriesError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid {path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("writing registry host configuration {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registries {
    #[serde(default)]
    pub mirrors: BTreeMap<String, Mirror>,
    #[serde(default)]
    pub configs: BTreeMap<String, RegistryConfig>,
}

/// Where to pull a registry's images from, in order (the registry itself comes last).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mirror {
    #[serde(default)]
    pub endpoint: Vec<String>,
    /// Repository rewrites (regex → replacement); not applied by containerd 1.6.
    #[serde(default)]
    pub rewrite: BTreeMap<String, String>,
}

/// Credentials and TLS settings for one endpoint host (`host` or `host:port`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    pub auth: Option<AuthConfig>,
    pub tls: Option<TlsConfig>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: String,
    /// base64 of `username:password`.
    #[serde(default)]
    pub auth: String,
    #[serde(default, alias = "identitytoken")]
    pub identity_token: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    #[serde(default)]
    pub cert_file: String,
    #[serde(default)]
    pub key_file: String,
    #[serde(default)]
    pub ca_file: String,
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// A parsed endpoint URL: scheme, authority (`host[:port]`) and the URL as written (with
/// `https://` added when the scheme was left out, as k3s does).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Endpoint {
    scheme: String,
    authority: String,
    url: String,
}

fn parse_endpoint(raw: &str) -> Result<Endpoint, String> {
    let url = if raw.contains("://") {
        raw.trim_end_matches('/').to_string()
    } else {
        format!("https://{}", raw.trim_end_matches('/'))
    };
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e| format!("endpoint {raw:?} is not a URL: {e}"))?;
    let scheme = uri.scheme_str().unwrap_or_default().to_string();
    if scheme != "http" && scheme != "https" {
        return Err(format!("endpoint {raw:?}: scheme must be http or https"));
    }
    let authority = uri
        .authority()
        .map(|a| a.as_str().to_string())
        .filter(|a| !a.is_empty() && !a.contains('@'))
        .ok_or_else(|| format!("endpoint {raw:?} has no host"))?;
    if uri.query().is_some() {
        return Err(format!("endpoint {raw:?} must not have a query"));
    }
    Ok(Endpoint {
        scheme,
        authority,
        url,
    })
}

/// A registry name or endpoint host as containerd matches it (`*` only for mirrors).
fn check_host(what: &str, name: &str, wildcard_ok: bool) -> Result<(), String> {
    if wildcard_ok && name == "*" {
        return Ok(());
    }
    let bad = name.is_empty()
        || name.starts_with('.')
        || name
            .chars()
            .any(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']')));
    if bad {
        return Err(format!(
            "{what} {name:?} is not a registry host (host or host:port)"
        ));
    }
    Ok(())
}

impl Registries {
    /// Reads `path`; a missing file means no registries are configured.
    pub fn load(path: &Path) -> Result<Registries, RegistriesError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Registries::default()),
            Err(source) => {
                return Err(RegistriesError::Read {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        Registries::parse(&text).map_err(|message| RegistriesError::Invalid {
            path: path.to_path_buf(),
            message,
        })
    }

    /// Parses and validates the YAML text (an empty document is an empty configuration).
    pub fn parse(text: &str) -> Result<Registries, String> {
        let value: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
        if value.is_null() {
            return Ok(Registries::default());
        }
        let r: Registries = serde_yaml::from_value(value).map_err(|e| e.to_string())?;
        r.validate()?;
        Ok(r)
    }

    fn validate(&self) -> Result<(), String> {
        for (name, m) in &self.mirrors {
            check_host("mirror", name, true)?;
            for e in &m.endpoint {
                parse_endpoint(e).map_err(|e| format!("mirrors.{name}: {e}"))?;
            }
        }
        for (host, c) in &self.configs {
            check_host("configs key", host, false)?;
            if let Some(a) = &c.auth {
                if !a.auth.is_empty() {
                    use base64::Engine;
                    let raw = base64::engine::general_purpose::STANDARD
                        .decode(a.auth.trim())
                        .map_err(|e| format!("configs.{host}.auth.auth is not base64: {e}"))?;
                    if !String::from_utf8_lossy(&raw).contains(':') {
                        return Err(format!(
                            "configs.{host}.auth.auth must encode \"username:password\""
                        ));
                    }
                }
                if a.username.is_empty() != a.password.is_empty() {
                    return Err(format!(
                        "configs.{host}.auth: username and password go together"
                    ));
                }
            }
            if let Some(t) = &c.tls {
                if t.cert_file.is_empty() != t.key_file.is_empty() {
                    return Err(format!(
                        "configs.{host}.tls: cert_file and key_file go together"
                    ));
                }
                for (field, f) in [
                    ("cert_file", &t.cert_file),
                    ("key_file", &t.key_file),
                    ("ca_file", &t.ca_file),
                ] {
                    if !f.is_empty() && !Path::new(f).is_file() {
                        return Err(format!("configs.{host}.tls.{field}: no file {f}"));
                    }
                }
            }
        }
        Ok(())
    }

    /// Whether any mirror asks for repository rewrites (which containerd 1.6 ignores).
    pub fn has_rewrites(&self) -> bool {
        self.mirrors.values().any(|m| !m.rewrite.is_empty())
    }

    /// The `hosts.toml` of each registry that needs one: (directory name, contents).
    pub fn hosts_files(&self) -> Vec<(String, String)> {
        let mut names: Vec<&str> = self.mirrors.keys().map(String::as_str).collect();
        // A registry with TLS settings but no mirror still needs its own host file.
        for (host, c) in &self.configs {
            if c.tls.is_some() && !self.mirrors.contains_key(host) {
                names.push(host);
            }
        }
        names.sort_unstable();
        names.dedup();
        names
            .into_iter()
            .map(|n| (host_dir_name(n), self.hosts_toml(n)))
            .collect()
    }

    fn hosts_toml(&self, name: &str) -> String {
        let mut out = String::from("# Generated by r8s from registries.yaml.\n");
        if name != "*" {
            let server = if name == "docker.io" {
                "https://registry-1.docker.io".to_string()
            } else {
                format!("https://{name}")
            };
            out.push_str(&format!("server = {}\n", toml_string(&server)));
            let tls = self
                .tls_for(name)
                .or_else(|| (name == "docker.io").then(|| self.tls_for("registry-1.docker.io"))?);
            if let Some(t) = tls {
                out.push_str(&tls_lines(t, ""));
            }
        }
        let endpoints = self
            .mirrors
            .get(name)
            .map(|m| m.endpoint.as_slice())
            .unwrap_or_default();
        for raw in endpoints {
            let Ok(e) = parse_endpoint(raw) else { continue };
            out.push_str(&format!(
                "\n[host.{}]\n  capabilities = [\"pull\", \"resolve\"]\n",
                toml_string(&e.url)
            ));
            if e.scheme == "https"
                && let Some(t) = self.tls_for(&e.authority)
            {
                out.push_str(&tls_lines(t, "  "));
            }
        }
        out
    }

    fn tls_for(&self, host: &str) -> Option<&TlsConfig> {
        self.configs.get(host).and_then(|c| c.tls.as_ref())
    }

    /// Tables for containerd's config.toml with the credentials of each endpoint host
    /// (empty when none are configured).
    pub fn cri_auth_toml(&self) -> String {
        let mut out = String::new();
        for (host, c) in &self.configs {
            let Some(a) = &c.auth else { continue };
            out.push_str(&format!(
                "\n  [plugins.\"io.containerd.grpc.v1.cri\".registry.configs.{}.auth]\n",
                toml_string(host)
            ));
            for (k, v) in [
                ("username", &a.username),
                ("password", &a.password),
                ("auth", &a.auth),
                ("identitytoken", &a.identity_token),
            ] {
                if !v.is_empty() {
                    out.push_str(&format!("    {k} = {}\n", toml_string(v)));
                }
            }
        }
        out
    }

    /// Replaces the contents of the `config_path` directory with this configuration's
    /// host files (the directory belongs to r8s and is rewritten at every start).
    pub fn write_hosts_dir(&self, dir: &Path) -> Result<(), RegistriesError> {
        let werr = |path: &Path| {
            let path = path.to_path_buf();
            move |source| RegistriesError::Write { path, source }
        };
        match std::fs::remove_dir_all(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(werr(dir)(e)),
        }
        std::fs::create_dir_all(dir).map_err(werr(dir))?;
        for (name, text) in self.hosts_files() {
            let sub = dir.join(name);
            std::fs::create_dir_all(&sub).map_err(werr(&sub))?;
            let file = sub.join("hosts.toml");
            std::fs::write(&file, text).map_err(werr(&file))?;
        }
        Ok(())
    }
}

/// containerd looks for `_default` when a registry has no directory of its own.
fn host_dir_name(name: &str) -> String {
    if name == "*" {
        "_default".into()
    } else {
        name.to_string()
    }
}

fn tls_lines(t: &TlsConfig, indent: &str) -> String {
    let mut out = String::new();
    if !t.ca_file.is_empty() {
        out.push_str(&format!("{indent}ca = {}\n", toml_string(&t.ca_file)));
    }
    if !t.cert_file.is_empty() {
        out.push_str(&format!(
            "{indent}client = [[{}, {}]]\n",
            toml_string(&t.cert_file),
            toml_string(&t.key_file)
        ));
    }
    if t.insecure_skip_verify {
        out.push_str(&format!("{indent}skip_verify = true\n"));
    }
    out
}

fn toml_string(s: &str) -> String {
    super::toml_string(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
mirrors:
  docker.io:
    endpoint:
      - "http://127.0.0.1:5000"
  registry.test:
    endpoint: ["http://127.0.0.1:5000", "mirror.example:8443/v2/proxy"]
    rewrite:
      "^library/(.*)": "mirrored/$1"
  "*":
    endpoint: ["https://fallback.example"]
configs:
  "127.0.0.1:5000":
    auth:
      username: alice
      password: "s3cr\"et"
  "mirror.example:8443":
    tls:
      insecure_skip_verify: true
  "tokens.example":
    auth:
      identitytoken: tok
"#;

    #[test]
    fn parses_the_k3s_format() {
        let r = Registries::parse(SAMPLE).unwrap();
        assert_eq!(r.mirrors.len(), 3);
        assert_eq!(r.mirrors["docker.io"].endpoint, ["http://127.0.0.1:5000"]);
        assert!(r.has_rewrites());
        let auth = r.configs["127.0.0.1:5000"].auth.as_ref().unwrap();
        assert_eq!(
            (auth.username.as_str(), auth.password.as_str()),
            ("alice", "s3cr\"et")
        );
        assert_eq!(
            r.configs["tokens.example"]
                .auth
                .as_ref()
                .unwrap()
                .identity_token,
            "tok"
        );
        assert!(
            r.configs["mirror.example:8443"]
                .tls
                .as_ref()
                .unwrap()
                .insecure_skip_verify
        );
        // k3s's own spelling of the token key works too.
        let r2 = Registries::parse("configs:\n  h:\n    auth:\n      identity_token: x\n").unwrap();
        assert_eq!(r2.configs["h"].auth.as_ref().unwrap().identity_token, "x");
    }

    #[test]
    fn empty_documents_are_empty_configs() {
        for text in ["", "# nothing\n", "{}", "mirrors: {}\n"] {
            assert_eq!(
                Registries::parse(text).unwrap(),
                Registries::default(),
                "{text:?}"
            );
        }
    }

    #[test]
    fn renders_host_files() {
        let r = Registries::parse(SAMPLE).unwrap();
        let files: BTreeMap<String, String> = r.hosts_files().into_iter().collect();
        let names: Vec<&str> = files.keys().map(String::as_str).collect();
        // The TLS-only config gets a host file of its own; auth-only ones do not.
        assert_eq!(
            names,
            [
                "_default",
                "docker.io",
                "mirror.example:8443",
                "registry.test"
            ]
        );
        let docker = &files["docker.io"];
        assert!(
            docker.contains("server = \"https://registry-1.docker.io\""),
            "{docker}"
        );
        assert!(
            docker.contains("[host.\"http://127.0.0.1:5000\"]"),
            "{docker}"
        );
        assert!(
            docker.contains("capabilities = [\"pull\", \"resolve\"]"),
            "{docker}"
        );
        let test = &files["registry.test"];
        assert!(
            test.contains("server = \"https://registry.test\""),
            "{test}"
        );
        // A scheme-less endpoint is https; its TLS settings come from configs.
        assert!(
            test.contains("[host.\"https://mirror.example:8443/v2/proxy\"]\n  capabilities = [\"pull\", \"resolve\"]\n  skip_verify = true"),
            "{test}"
        );
        let own = &files["mirror.example:8443"];
        assert!(
            own.contains("server = \"https://mirror.example:8443\"\nskip_verify = true"),
            "{own}"
        );
        assert!(
            !files["_default"].contains("server"),
            "{}",
            files["_default"]
        );
        // Mirrors come in the order given.
        let a = test.find("127.0.0.1").unwrap();
        let b = test.find("mirror.example").unwrap();
        assert!(a < b);
    }

    #[test]
    fn renders_auth_tables() {
        let r = Registries::parse(SAMPLE).unwrap();
        let t = r.cri_auth_toml();
        assert!(
            t.contains("[plugins.\"io.containerd.grpc.v1.cri\".registry.configs.\"127.0.0.1:5000\".auth]\n    username = \"alice\"\n    password = \"s3cr\\\"et\"\n"),
            "{t}"
        );
        assert!(t.contains("identitytoken = \"tok\""), "{t}");
        assert!(!t.contains("mirror.example"), "{t}");
        assert_eq!(Registries::default().cri_auth_toml(), "");
    }

    #[test]
    fn rejects_bad_files_with_clear_messages() {
        let cases = [
            ("mirrors: [a, b]\n", "invalid type"),
            (
                "mirrors:\n  docker.io:\n    endpoints: [x]\n",
                "unknown field `endpoints`",
            ),
            (
                "mirrors:\n  docker.io:\n    endpoint: [\"ftp://x\"]\n",
                "scheme must be http or https",
            ),
            (
                "mirrors:\n  docker.io:\n    endpoint: [\"http://\"]\n",
                "docker.io",
            ),
            (
                "mirrors:\n  \"bad name/x\":\n    endpoint: []\n",
                "not a registry host",
            ),
            (
                "configs:\n  h:\n    auth:\n      auth: \"%%%\"\n",
                "not base64",
            ),
            (
                "configs:\n  h:\n    auth:\n      auth: \"bm9jb2xvbg==\"\n",
                "username:password",
            ),
            (
                "configs:\n  h:\n    auth:\n      username: u\n",
                "go together",
            ),
            (
                "configs:\n  h:\n    tls:\n      ca_file: /nonexistent/ca.pem\n",
                "no file /nonexistent/ca.pem",
            ),
            (
                "configs:\n  h:\n    tls:\n      cert_file: /etc/hostname\n",
                "cert_file and key_file",
            ),
            ("mirrors: {\n", "line 2"),
        ];
        for (text, want) in cases {
            let err = Registries::parse(text).unwrap_err();
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }

    #[test]
    fn load_reports_the_path() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("registries.yaml");
        assert_eq!(Registries::load(&p).unwrap(), Registries::default());
        std::fs::write(&p, "mirrors: 3\n").unwrap();
        let e = Registries::load(&p).unwrap_err().to_string();
        assert!(e.starts_with(&format!("invalid {}: ", p.display())), "{e}");
    }

    #[test]
    fn writes_and_replaces_the_hosts_dir() {
        let d = tempfile::tempdir().unwrap();
        let certs = d.path().join("certs.d");
        std::fs::create_dir_all(certs.join("stale")).unwrap();
        Registries::parse(SAMPLE)
            .unwrap()
            .write_hosts_dir(&certs)
            .unwrap();
        assert!(!certs.join("stale").exists());
        let t = std::fs::read_to_string(certs.join("docker.io/hosts.toml")).unwrap();
        assert!(t.contains("127.0.0.1:5000"));
        Registries::default().write_hosts_dir(&certs).unwrap();
        assert_eq!(std::fs::read_dir(&certs).unwrap().count(), 0);
    }
}
