//! ConfigMaps and Secrets a pod refers to (env, envFrom, volumes), read once per sync,
//! and its projected service-account tokens, kept for the pod's life and renewed like
//! upstream's token manager (after 80 % of their lifetime, at least daily). Missing
//! objects or keys produce upstream's messages.

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, ServiceAccount};
use kube::Api;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A projected token: (service account, audience, expirationSeconds).
type TokenKey = (String, String, i64);

/// Tokens already issued for one pod, with when they were issued.
pub type Tokens = Arc<Mutex<HashMap<TokenKey, (String, Instant)>>>;

/// The kubelet's default `expirationSeconds` for projected tokens (as k3s's).
const DEFAULT_TOKEN_SECONDS: i64 = 3607;

/// Whether a token issued `age` ago for `seconds` is due for renewal.
fn token_due(age: Duration, seconds: i64) -> bool {
    let lifetime = Duration::from_secs(seconds.max(0) as u64);
    age >= lifetime.mul_f64(0.8) || age >= Duration::from_secs(24 * 3600)
}

/// Why a reference could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefError {
    /// A required object or key is missing (`CreateContainerConfigError`).
    #[error("{0}")]
    Missing(String),
    /// The spec asks for something unsupported or malformed.
    #[error("{0}")]
    Invalid(String),
    /// The API could not be read (retried).
    #[error("{0}")]
    Api(String),
}

/// Per-sync cache of the namespace's ConfigMaps and Secrets.
pub struct ObjectCache {
    client: kube::Client,
    namespace: String,
    config_maps: HashMap<String, Option<ConfigMap>>,
    secrets: HashMap<String, Option<Secret>>,
    tokens: Tokens,
}

fn get_err(e: kube::Error) -> RefError {
    RefError::Api(e.to_string())
}

impl ObjectCache {
    pub fn new(client: kube::Client, namespace: &str) -> Self {
        Self::with_tokens(client, namespace, Tokens::default())
    }

    /// A cache that reuses (and records) the pod's projected tokens in `tokens`.
    pub fn with_tokens(client: kube::Client, namespace: &str, tokens: Tokens) -> Self {
        ObjectCache {
            client,
            namespace: namespace.into(),
            config_maps: HashMap::new(),
            secrets: HashMap::new(),
            tokens,
        }
    }

    /// A token for a projected serviceAccountToken source: the one issued before while it
    /// is fresh, else a new TokenRequest bound to the pod (empty when the API server
    /// refuses).
    pub async fn service_account_token(
        &mut self,
        pod: &Pod,
        audience: Option<&str>,
        expiration: Option<i64>,
    ) -> String {
        let sa = pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.as_deref())
            .filter(|s| !s.is_empty())
            .unwrap_or("default")
            .to_string();
        let seconds = expiration.unwrap_or(DEFAULT_TOKEN_SECONDS);
        let key = (
            sa.clone(),
            audience.unwrap_or_default().to_string(),
            seconds,
        );
        if let Some((token, at)) = self.tokens.lock().ok().and_then(|t| t.get(&key).cloned())
            && !token_due(at.elapsed(), seconds)
        {
            return token;
        }
        let body = serde_json::json!({
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {
                "audiences": audience.map(|a| vec![a.to_string()]).unwrap_or_default(),
                "expirationSeconds": seconds,
                "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": pod.metadata.name, "uid": pod.metadata.uid},
            }
        });
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), &self.namespace);
        let issued = Instant::now();
        match api
            .create_subresource::<_, serde_json::Value>("token", &sa, &Default::default(), &body)
            .await
        {
            Ok(v) => {
                let token = v
                    .pointer("/status/token")
                    .and_then(|t| t.as_str())
                    .unwrap_or_default()
                    .to_string();
                if let Ok(mut t) = self.tokens.lock() {
                    t.insert(key, (token.clone(), issued));
                }
                token
            }
            Err(e) => {
                tracing::debug!("TokenRequest for {}/{sa}: {e}", self.namespace);
                String::new()
            }
        }
    }

    async fn config_map(&mut self, name: &str) -> Result<Option<&ConfigMap>, RefError> {
        if !self.config_maps.contains_key(name) {
            let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.namespace);
            let cm = api.get_opt(name).await.map_err(get_err)?;
            self.config_maps.insert(name.to_string(), cm);
        }
        Ok(self.config_maps.get(name).and_then(Option::as_ref))
    }

    async fn secret(&mut self, name: &str) -> Result<Option<&Secret>, RefError> {
        if !self.secrets.contains_key(name) {
            let api: Api<Secret> = Api::namespaced(self.client.clone(), &self.namespace);
            let s = api.get_opt(name).await.map_err(get_err)?;
            self.secrets.insert(name.to_string(), s);
        }
        Ok(self.secrets.get(name).and_then(Option::as_ref))
    }

    /// All keys of a ConfigMap (`data` and `binaryData`) as bytes; None when missing and
    /// optional.
    pub async fn config_map_files(
        &mut self,
        name: &str,
        optional: bool,
    ) -> Result<Option<BTreeMap<String, Vec<u8>>>, RefError> {
        match self.config_map(name).await? {
            Some(cm) => {
                let mut out: BTreeMap<String, Vec<u8>> = cm
                    .data
                    .iter()
                    .flatten()
                    .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
                    .collect();
                for (k, v) in cm.binary_data.iter().flatten() {
                    out.insert(k.clone(), v.0.clone());
                }
                Ok(Some(out))
            }
            None if optional => Ok(None),
            None => Err(RefError::Missing(format!("configmap \"{name}\" not found"))),
        }
    }

    /// The pod's `imagePullSecrets` that could be read, and the names of those that could
    /// not (upstream warns about them and pulls anyway).
    pub async fn pull_secrets(
        &mut self,
        pod: &k8s_openapi::api::core::v1::Pod,
    ) -> (Vec<Secret>, Vec<String>) {
        let names = pod
            .spec
            .iter()
            .flat_map(|s| s.image_pull_secrets.iter().flatten())
            .map(|r| r.name.clone())
            .filter(|n| !n.is_empty());
        let (mut found, mut failed) = (Vec::new(), Vec::new());
        for name in names {
            match self.secret(&name).await {
                Ok(Some(s)) => found.push(s.clone()),
                _ => failed.push(name),
            }
        }
        (found, failed)
    }

    /// All keys of a Secret, decoded; None when missing and optional.
    pub async fn secret_files(
        &mut self,
        name: &str,
        optional: bool,
    ) -> Result<Option<BTreeMap<String, Vec<u8>>>, RefError> {
        match self.secret(name).await? {
            Some(s) => {
                let mut out: BTreeMap<String, Vec<u8>> = s
                    .data
                    .iter()
                    .flatten()
                    .map(|(k, v)| (k.clone(), v.0.clone()))
                    .collect();
                // stringData is write-only upstream, but honour it if a server kept it.
                for (k, v) in s.string_data.iter().flatten() {
                    out.entry(k.clone())
                        .or_insert_with(|| v.clone().into_bytes());
                }
                Ok(Some(out))
            }
            None if optional => Ok(None),
            None => Err(RefError::Missing(format!("secret \"{name}\" not found"))),
        }
    }

    /// ConfigMap `data` as strings (for envFrom).
    pub async fn config_map_data(
        &mut self,
        name: &str,
        optional: bool,
    ) -> Result<Option<BTreeMap<String, String>>, RefError> {
        match self.config_map(name).await? {
            Some(cm) => Ok(Some(cm.data.clone().unwrap_or_default())),
            None if optional => Ok(None),
            None => Err(RefError::Missing(format!("configmap \"{name}\" not found"))),
        }
    }

    /// Secret data as strings (for envFrom).
    pub async fn secret_data(
        &mut self,
        name: &str,
        optional: bool,
    ) -> Result<Option<BTreeMap<String, String>>, RefError> {
        Ok(self.secret_files(name, optional).await?.map(|m| {
            m.into_iter()
                .map(|(k, v)| (k, String::from_utf8_lossy(&v).to_string()))
                .collect()
        }))
    }

    /// One ConfigMap key; None when optional and missing.
    pub async fn config_map_key(
        &mut self,
        name: &str,
        key: &str,
        optional: bool,
    ) -> Result<Option<String>, RefError> {
        let ns = self.namespace.clone();
        match self.config_map(name).await? {
            Some(cm) => match cm.data.as_ref().and_then(|d| d.get(key)) {
                Some(v) => Ok(Some(v.clone())),
                None if optional => Ok(None),
                None => Err(RefError::Missing(format!(
                    "couldn't find key {key} in ConfigMap {ns}/{name}"
                ))),
            },
            None if optional => Ok(None),
            None => Err(RefError::Missing(format!("configmap \"{name}\" not found"))),
        }
    }

    /// One Secret key; None when optional and missing.
    pub async fn secret_key(
        &mut self,
        name: &str,
        key: &str,
        optional: bool,
    ) -> Result<Option<String>, RefError> {
        let ns = self.namespace.clone();
        match self.secret_files(name, optional).await? {
            Some(data) => match data.get(key) {
                Some(v) => Ok(Some(String::from_utf8_lossy(v).to_string())),
                None if optional => Ok(None),
                None => Err(RefError::Missing(format!(
                    "couldn't find key {key} in Secret {ns}/{name}"
                ))),
            },
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_renewed_after_most_of_their_lifetime() {
        let hour = 3600;
        assert!(!token_due(Duration::from_secs(60), hour));
        assert!(!token_due(Duration::from_secs(2879), hour));
        assert!(token_due(Duration::from_secs(2880), hour));
        // Long-lived tokens are still renewed daily.
        assert!(token_due(Duration::from_secs(24 * 3600), 7 * 24 * 3600));
    }
}
