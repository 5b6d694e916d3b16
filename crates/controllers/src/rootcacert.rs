//! The root CA publisher (upstream `root-ca-cert-publisher`): every namespace holds a
//! ConfigMap `kube-root-ca.crt` whose `ca.crt` is the cluster CA, so pods (through the
//! automounted `kube-api-access-*` volume) can verify the API server. The ConfigMap is
//! recreated when deleted and put back when edited.
//!
//! Built on kube-rs' `Controller`: one watch on Namespaces, one on ConfigMaps named
//! `kube-root-ca.crt` (field selector) that re-syncs the ConfigMap's namespace.

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{ObjectMeta, PostParams};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Name of the published ConfigMap.
pub const CONFIG_MAP_NAME: &str = "kube-root-ca.crt";
/// Key holding the CA bundle.
pub const CA_KEY: &str = "ca.crt";
/// Annotation describing the ConfigMap's purpose.
pub const DESCRIPTION_ANNOTATION: &str = "kubernetes.io/description";
/// Upstream's description text.
pub const DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";

/// Namespaces synced at once.
const CONCURRENCY: u16 = 4;
/// First retry delay after a failed sync, doubled per failure (upstream's rate limiter).
const RETRY_BASE: Duration = Duration::from_millis(5);
/// Longest retry delay.
const RETRY_MAX: Duration = Duration::from_secs(1000);

/// A failed sync of one namespace.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("syncing the {CONFIG_MAP_NAME} ConfigMap: {0}")]
    Kube(#[from] kube::Error),
}

/// What one namespace's ConfigMap needs.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Already as published.
    None,
    /// Missing: create this object.
    Create(ConfigMap),
    /// Stale data or missing annotation: replace with this object.
    Update(ConfigMap),
}

/// Compare the existing ConfigMap (if any) with the CA to publish. `data` must be exactly
/// `{ca.crt: <ca>}` and the description annotation non-empty; other fields are kept.
pub fn reconcile(existing: Option<&ConfigMap>, ca_pem: &str) -> Change {
    let data = BTreeMap::from([(CA_KEY.to_string(), ca_pem.to_string())]);
    let Some(cm) = existing else {
        return Change::Create(ConfigMap {
            metadata: ObjectMeta {
                name: Some(CONFIG_MAP_NAME.to_string()),
                annotations: Some(BTreeMap::from([(
                    DESCRIPTION_ANNOTATION.to_string(),
                    DESCRIPTION.to_string(),
                )])),
                ..Default::default()
            },
            data: Some(data),
            ..Default::default()
        });
    };
    let described = cm
        .annotations()
        .get(DESCRIPTION_ANNOTATION)
        .is_some_and(|d| !d.is_empty());
    if cm.data.as_ref() == Some(&data) && described {
        return Change::None;
    }
    let mut fixed = cm.clone();
    fixed.data = Some(data);
    fixed
        .annotations_mut()
        .insert(DESCRIPTION_ANNOTATION.to_string(), DESCRIPTION.to_string());
    Change::Update(fixed)
}

/// Shared by every reconcile.
struct State {
    client: kube::Client,
    ca_pem: String,
    backoff: Backoff,
}

/// Consecutive failures per namespace, for the retry delay.
#[derive(Default)]
struct Backoff(Mutex<HashMap<String, u32>>);

impl Backoff {
    fn reset(&self, ns: &str) {
        if let Ok(mut f) = self.0.lock() {
            f.remove(ns);
        }
    }

    /// The next retry delay for `ns`: 5 ms doubled per consecutive failure, capped.
    fn next(&self, ns: &str) -> Duration {
        let n = match self.0.lock() {
            Ok(mut f) => {
                let n = f.entry(ns.to_string()).or_insert(0);
                *n = n.saturating_add(1);
                *n
            }
            Err(_) => 1,
        };
        RETRY_BASE
            .saturating_mul(2u32.saturating_pow(n.saturating_sub(1).min(31)))
            .min(RETRY_MAX)
    }
}

/// Run the publisher until the watches end (they retry on their own).
pub async fn run(ctx: crate::Context, ca_pem: String) -> anyhow::Result<()> {
    let client = ctx.client.clone();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let config_maps: Api<ConfigMap> = Api::all(client.clone());
    let only_ours = watcher::Config::default().fields(&format!("metadata.name={CONFIG_MAP_NAME}"));
    let state = Arc::new(State {
        client,
        ca_pem,
        backoff: Backoff::default(),
    });
    Controller::new(namespaces, watcher::Config::default())
        .with_config(ControllerConfig::default().concurrency(CONCURRENCY))
        .watches(config_maps, only_ours, |cm: ConfigMap| {
            cm.metadata.namespace.map(|ns| ObjectRef::new(&ns))
        })
        .run(sync_namespace, retry_policy, state)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!("root CA publisher: {e}");
            }
        })
        .await;
    Ok(())
}

/// Make one namespace's ConfigMap match the CA.
async fn sync_namespace(ns: Arc<Namespace>, state: Arc<State>) -> Result<Action, Error> {
    let name = ns.name_any();
    let phase = ns.status.as_ref().and_then(|s| s.phase.as_deref());
    if ns.metadata.deletion_timestamp.is_some() || phase == Some("Terminating") {
        // Its content is being deleted; a create would be refused anyway.
        state.backoff.reset(&name);
        return Ok(Action::await_change());
    }
    let api: Api<ConfigMap> = Api::namespaced(state.client.clone(), &name);
    let existing = api.get_opt(CONFIG_MAP_NAME).await?;
    match reconcile(existing.as_ref(), &state.ca_pem) {
        Change::None => {}
        Change::Create(cm) => match api.create(&PostParams::default(), &cm).await {
            Ok(_) => {}
            // The namespace is gone or terminating: nothing to publish (as upstream).
            Err(kube::Error::Api(s))
                if s.code == 404 || (s.code == 403 && s.message.contains("being terminated")) => {}
            Err(e) => return Err(e.into()),
        },
        Change::Update(cm) => {
            api.replace(CONFIG_MAP_NAME, &PostParams::default(), &cm)
                .await?;
        }
    }
    state.backoff.reset(&name);
    Ok(Action::await_change())
}

fn retry_policy(ns: Arc<Namespace>, err: &Error, state: Arc<State>) -> Action {
    let name = ns.name_any();
    let delay = state.backoff.next(&name);
    tracing::debug!(namespace = %name, ?delay, "{err}");
    Action::requeue(delay)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

    fn published() -> ConfigMap {
        match reconcile(None, CA) {
            Change::Create(cm) => cm,
            other => panic!("expected a create, got {other:?}"),
        }
    }

    #[test]
    fn missing_config_map_is_created_as_upstream() {
        let cm = published();
        assert_eq!(cm.metadata.name.as_deref(), Some(CONFIG_MAP_NAME));
        assert_eq!(
            cm.data,
            Some(BTreeMap::from([("ca.crt".to_string(), CA.to_string())]))
        );
        assert_eq!(
            cm.annotations()
                .get("kubernetes.io/description")
                .map(String::as_str),
            Some(DESCRIPTION)
        );
        assert!(cm.binary_data.is_none());
    }

    #[test]
    fn published_config_map_is_left_alone() {
        let mut cm = published();
        cm.metadata.resource_version = Some("7".into());
        assert_eq!(reconcile(Some(&cm), CA), Change::None);
        // Any non-empty description will do; other annotations and labels are kept.
        cm.annotations_mut()
            .insert(DESCRIPTION_ANNOTATION.into(), "mine".into());
        cm.labels_mut().insert("team".into(), "a".into());
        assert_eq!(reconcile(Some(&cm), CA), Change::None);
    }

    #[test]
    fn edits_are_put_back() {
        let base = published();
        let fixed = |cm: &ConfigMap| match reconcile(Some(cm), CA) {
            Change::Update(u) => u,
            other => panic!("expected an update, got {other:?}"),
        };
        // Changed CA.
        let mut cm = base.clone();
        cm.data = Some(BTreeMap::from([("ca.crt".into(), "forged".into())]));
        cm.metadata.resource_version = Some("9".into());
        let u = fixed(&cm);
        assert_eq!(u.data, base.data);
        assert_eq!(u.metadata.resource_version.as_deref(), Some("9"));
        // Extra key.
        let mut cm = base.clone();
        if let Some(d) = cm.data.as_mut() {
            d.insert("extra".into(), "x".into());
        }
        assert_eq!(fixed(&cm).data, base.data);
        // No data at all.
        let mut cm = base.clone();
        cm.data = None;
        assert_eq!(fixed(&cm).data, base.data);
        // Annotation removed or emptied; other annotations survive.
        let mut cm = base.clone();
        cm.metadata.annotations = Some(BTreeMap::from([("keep".into(), "me".into())]));
        let u = fixed(&cm);
        assert_eq!(u.annotations().get("keep").map(String::as_str), Some("me"));
        assert_eq!(
            u.annotations()
                .get(DESCRIPTION_ANNOTATION)
                .map(String::as_str),
            Some(DESCRIPTION)
        );
        let mut cm = base;
        cm.annotations_mut()
            .insert(DESCRIPTION_ANNOTATION.into(), String::new());
        assert_eq!(
            fixed(&cm)
                .annotations()
                .get(DESCRIPTION_ANNOTATION)
                .map(String::as_str),
            Some(DESCRIPTION)
        );
    }

    #[test]
    fn retries_back_off_per_namespace() {
        let backoff = Backoff::default();
        assert_eq!(backoff.next("a"), Duration::from_millis(5));
        assert_eq!(backoff.next("a"), Duration::from_millis(10));
        assert_eq!(backoff.next("a"), Duration::from_millis(20));
        assert_eq!(backoff.next("b"), Duration::from_millis(5));
        for _ in 0..40 {
            backoff.next("a");
        }
        assert_eq!(backoff.next("a"), RETRY_MAX);
        backoff.reset("a");
        assert_eq!(backoff.next("a"), Duration::from_millis(5));
    }
}
