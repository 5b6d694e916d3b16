//! Mutating/ValidatingWebhookConfiguration objects read into [`Hook`]s, with the v1
//! defaults applied (`failurePolicy: Fail`, `matchPolicy: Equivalent`, `timeoutSeconds:
//! 10`, empty selectors select everything, rule scope `*`). A webhook whose client
//! configuration cannot be used (bad URL, undecodable `caBundle`) is kept: calling it fails,
//! and its failure policy decides, as upstream's client manager fails at call time.
//! `matchConditions` are compiled here (a condition that does not compile fails matching
//! requests, per the failure policy).

use base64::Engine;
use r8s_api::cel::admission::{Declarations, MatchCondition};
use r8s_api::selector::{LabelSelector, from_label_selector_json};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{ClientConfig, RootCertStore};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// Upstream's default and maximum `timeoutSeconds`.
const DEFAULT_TIMEOUT_SECS: u64 = 10;
const MAX_TIMEOUT_SECS: u64 = 30;

/// Which admission phase a webhook belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HookKind {
    Mutating,
    Validating,
}

/// One `rules[]` entry (`RuleWithOperations`), or a policy's `NamedRuleWithOperations`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Rule {
    pub operations: Vec<String>,
    pub api_groups: Vec<String>,
    pub api_versions: Vec<String>,
    pub resources: Vec<String>,
    /// `*` (default), `Cluster` or `Namespaced`.
    pub scope: String,
    /// Policies only: the names the rule is limited to (empty: every name).
    pub resource_names: Vec<String>,
}

/// Where a webhook is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// `clientConfig.url`: host (brackets of IPv6 literals removed), port, path with query.
    Url {
        host: String,
        port: u16,
        path: String,
    },
    /// `clientConfig.service`.
    Service {
        namespace: String,
        name: String,
        port: u16,
        path: String,
    },
}

/// How to call a webhook: its endpoint and a TLS configuration trusting its `caBundle`.
#[derive(Clone)]
pub(crate) struct Client {
    pub endpoint: Endpoint,
    pub tls: Arc<ClientConfig>,
}

/// One webhook of a configuration, ready to match and call.
pub(crate) struct Hook {
    pub kind: HookKind,
    /// The configuration's name.
    pub configuration: String,
    pub name: String,
    pub rules: Vec<Rule>,
    /// Parsed selectors; a selector that does not parse fails matching requests (500).
    pub namespace_selector: Result<LabelSelector, String>,
    pub object_selector: Result<LabelSelector, String>,
    /// `matchPolicy: Equivalent` (the v1 default) rather than `Exact`.
    pub equivalent: bool,
    /// `failurePolicy: Ignore` rather than `Fail` (the default).
    pub ignore_failures: bool,
    /// `sideEffects` as given (`None`, `NoneOnDryRun`, `Some`, `Unknown`, or absent).
    pub side_effects: Option<String>,
    pub timeout: Duration,
    pub review_versions: Vec<String>,
    /// `reinvocationPolicy: IfNeeded` (mutating webhooks only).
    pub reinvoke_if_needed: bool,
    /// `matchConditions` (CEL), all of which must hold for the webhook to be called.
    pub match_conditions: Vec<MatchCondition>,
    pub client: Result<Client, String>,
}

impl Hook {
    /// Whether the webhook may be called for a dry-run request.
    pub fn dry_run_safe(&self) -> bool {
        matches!(
            self.side_effects.as_deref(),
            Some("None") | Some("NoneOnDryRun")
        )
    }
}

/// The webhooks of one configuration object, in order.
pub(crate) fn hooks_of(kind: HookKind, config: &Value) -> Vec<Arc<Hook>> {
    let configuration = crate::meta::name(config).to_string();
    config
        .get("webhooks")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|w| w.is_object())
        .map(|w| Arc::new(parse_hook(kind, &configuration, w)))
        .collect()
}

fn parse_hook(kind: HookKind, configuration: &str, w: &Value) -> Hook {
    let text = |k: &str| w.get(k).and_then(Value::as_str);
    let timeout = w
        .get("timeoutSeconds")
        .and_then(Value::as_u64)
        .unwrap_or(DEFAULT_TIMEOUT_SECS)
        .clamp(1, MAX_TIMEOUT_SECS);
    Hook {
        kind,
        configuration: configuration.to_string(),
        name: text("name").unwrap_or("").to_string(),
        rules: w
            .get("rules")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(parse_rule)
            .collect(),
        namespace_selector: selector(w.get("namespaceSelector")),
        object_selector: selector(w.get("objectSelector")),
        equivalent: text("matchPolicy") != Some("Exact"),
        ignore_failures: text("failurePolicy") == Some("Ignore"),
        side_effects: text("sideEffects").map(str::to_string),
        timeout: Duration::from_secs(timeout),
        review_versions: strings(w.get("admissionReviewVersions")),
        reinvoke_if_needed: kind == HookKind::Mutating
            && text("reinvocationPolicy") == Some("IfNeeded"),
        match_conditions: match_conditions(w.get("matchConditions")),
        client: client(w.get("clientConfig").unwrap_or(&Value::Null)),
    }
}

/// Webhook match conditions, compiled as upstream declares them: `object`, `oldObject`,
/// `request`, `authorizer` (no params, no variables).
fn match_conditions(v: Option<&Value>) -> Vec<MatchCondition> {
    let decls = Declarations {
        params: false,
        authorizer: true,
        variables: None,
    };
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| {
            let text = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("");
            MatchCondition::compile(text("name"), text("expression"), &decls)
        })
        .collect()
}

pub(crate) fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

pub(crate) fn parse_rule(r: &Value) -> Rule {
    Rule {
        operations: strings(r.get("operations")),
        api_groups: strings(r.get("apiGroups")),
        api_versions: strings(r.get("apiVersions")),
        resources: strings(r.get("resources")),
        scope: r
            .get("scope")
            .and_then(Value::as_str)
            .unwrap_or("*")
            .to_string(),
        resource_names: strings(r.get("resourceNames")),
    }
}

/// A webhook selector: absent means `{}` (everything), as the v1 defaults have it.
pub(crate) fn selector(v: Option<&Value>) -> Result<LabelSelector, String> {
    match v {
        None | Some(Value::Null) => Ok(LabelSelector::everything()),
        Some(v) => from_label_selector_json(v).map_err(|e| e.to_string()),
    }
}

fn client(cfg: &Value) -> Result<Client, String> {
    let endpoint = if let Some(url) = cfg.get("url").and_then(Value::as_str) {
        parse_url(url)?
    } else if let Some(svc) = cfg.get("service").filter(|s| s.is_object()) {
        let field = |k: &str| svc.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let port = match svc.get("port") {
            None | Some(Value::Null) => 443,
            Some(p) => p
                .as_u64()
                .and_then(|p| u16::try_from(p).ok())
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("invalid service port {p}"))?,
        };
        let path = field("path");
        Endpoint::Service {
            namespace: field("namespace"),
            name: field("name"),
            port,
            path: if path.is_empty() { "/".into() } else { path },
        }
    } else {
        return Err("webhook has neither clientConfig.url nor clientConfig.service".into());
    };
    let ca = cfg.get("caBundle").and_then(Value::as_str).unwrap_or("");
    Ok(Client {
        endpoint,
        tls: tls_config(ca)?,
    })
}

/// `https://host[:port][/path][?query]`.
pub(crate) fn parse_url(url: &str) -> Result<Endpoint, String> {
    let uri: axum::http::Uri = url
        .parse()
        .map_err(|e| format!("invalid webhook URL {url:?}: {e}"))?;
    if uri.scheme_str() != Some("https") {
        return Err(format!(
            "invalid webhook URL {url:?}: the scheme must be https"
        ));
    }
    let authority = uri
        .authority()
        .ok_or_else(|| format!("invalid webhook URL {url:?}: no host"))?;
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    if host.is_empty() {
        return Err(format!("invalid webhook URL {url:?}: no host"));
    }
    let path = uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "/".into());
    Ok(Endpoint::Url {
        host,
        port: authority.port_u16().unwrap_or(443),
        path,
    })
}

/// TLS trusting exactly the certificates of `ca_bundle` (base64 of PEM, as the JSON form
/// of `[]byte` has it); HTTP/1.1.
fn tls_config(ca_bundle: &str) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    if !ca_bundle.is_empty() {
        let pem = base64::engine::general_purpose::STANDARD
            .decode(ca_bundle.trim())
            .map_err(|e| format!("caBundle is not base64: {e}"))?;
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| format!("caBundle: {e}"))?;
            roots
                .add(cert)
                .map_err(|e| format!("caBundle: unusable certificate: {e}"))?;
        }
        if roots.is_empty() {
            return Err("caBundle holds no PEM certificate".into());
        }
    }
    let mut config = ClientConfig::builder_with_provider(crate::tls::crypto_provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn only(config: Value) -> Arc<Hook> {
        hooks_of(HookKind::Mutating, &config).pop().unwrap()
    }

    #[test]
    fn v1_defaults_apply() {
        let hook = only(json!({"metadata": {"name": "cfg"}, "webhooks": [{
            "name": "a.example.com",
            "clientConfig": {"url": "https://127.0.0.1:8443/mutate"},
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                       "resources": ["configmaps"]}],
            "admissionReviewVersions": ["v1"], "sideEffects": "None"}]}));
        assert_eq!(hook.configuration, "cfg");
        assert_eq!(hook.name, "a.example.com");
        assert!(hook.equivalent && !hook.ignore_failures && !hook.reinvoke_if_needed);
        assert_eq!(hook.timeout, Duration::from_secs(10));
        assert_eq!(hook.rules[0].scope, "*");
        assert!(hook.namespace_selector.as_ref().unwrap().is_empty());
        assert!(hook.object_selector.as_ref().unwrap().is_empty());
        assert!(hook.dry_run_safe());
        let client = hook.client.as_ref().unwrap();
        assert_eq!(
            client.endpoint,
            Endpoint::Url {
                host: "127.0.0.1".into(),
                port: 8443,
                path: "/mutate".into()
            }
        );
    }

    #[test]
    fn explicit_settings_and_service_endpoints() {
        let hook = only(json!({"metadata": {"name": "cfg"}, "webhooks": [{
            "name": "b", "matchPolicy": "Exact", "failurePolicy": "Ignore",
            "timeoutSeconds": 99, "reinvocationPolicy": "IfNeeded", "sideEffects": "Unknown",
            "matchConditions": [{"name": "x", "expression": "true"}],
            "objectSelector": {"matchLabels": {"a": "b"}},
            "clientConfig": {"service": {"namespace": "ns", "name": "svc"}}}]}));
        assert!(!hook.equivalent && hook.ignore_failures && hook.reinvoke_if_needed);
        assert!(hook.match_conditions.len() == 1 && !hook.dry_run_safe());
        assert_eq!(hook.timeout, Duration::from_secs(30));
        assert!(!hook.object_selector.as_ref().unwrap().is_empty());
        assert_eq!(
            hook.client.as_ref().unwrap().endpoint,
            Endpoint::Service {
                namespace: "ns".into(),
                name: "svc".into(),
                port: 443,
                path: "/".into()
            }
        );
        // Validating webhooks have no reinvocation.
        let v = hooks_of(
            HookKind::Validating,
            &json!({"webhooks": [{"name": "v", "reinvocationPolicy": "IfNeeded",
                "clientConfig": {"url": "https://[::1]/v?x=1"}}]}),
        );
        assert!(!v[0].reinvoke_if_needed);
        assert_eq!(
            v[0].client.as_ref().unwrap().endpoint,
            Endpoint::Url {
                host: "::1".into(),
                port: 443,
                path: "/v?x=1".into()
            }
        );
    }

    #[test]
    fn unusable_client_configs_are_kept_as_errors() {
        for cfg in [
            json!({"url": "http://127.0.0.1/x"}),
            json!({"url": "not a url"}),
            json!({}),
            json!({"url": "https://127.0.0.1/", "caBundle": "!!"}),
            json!({"url": "https://127.0.0.1/", "caBundle": "aGVsbG8="}),
            json!({"service": {"namespace": "n", "name": "s", "port": 70000}}),
        ] {
            let hook = only(json!({"webhooks": [{"name": "x", "clientConfig": cfg}]}));
            assert!(hook.client.is_err(), "{cfg}");
        }
        let bad_selector = only(json!({"webhooks": [{"name": "x",
            "namespaceSelector": {"matchExpressions": [{"key": "a", "operator": "Bogus"}]},
            "clientConfig": {"url": "https://h/"}}]}));
        assert!(bad_selector.namespace_selector.is_err());
    }
}
