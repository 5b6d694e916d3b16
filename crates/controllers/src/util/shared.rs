//! One informer per resource for the whole controller manager (client-go's
//! `SharedInformerFactory`): controllers ask the factory in their [`crate::Context`] for
//! the informer of a kind and add their own handlers, so a process keeps one watch and
//! one cache of pods (nodes, ReplicaSets, …) however many controllers look at them.
//! Informers are started on first request and run until the factory is dropped.

use super::informer::Informer;
use kube::core::NamespaceResourceScope;
use kube::runtime::watcher;
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Mutex;

/// What tells two informers apart: the kind, the namespace watched (`None`: all) and the
/// watch settings (selectors and list options, by their `Debug` form).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    kind: TypeId,
    namespace: Option<String>,
    config: String,
}

/// The informers of one controller manager.
pub struct SharedInformers {
    client: kube::Client,
    informers: Mutex<HashMap<Key, Box<dyn Any + Send + Sync>>>,
}

impl SharedInformers {
    /// An empty factory; informers are started as they are asked for.
    pub fn new(client: kube::Client) -> Self {
        SharedInformers {
            client,
            informers: Mutex::new(HashMap::new()),
        }
    }

    /// The informer of every `K` in the cluster.
    pub fn get<K>(&self) -> Informer<K>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    {
        self.get_with(watcher::Config::default())
    }

    /// The informer of the `K`s in the cluster that `config` selects; informers with
    /// different configs keep separate caches.
    pub fn get_with<K>(&self, config: watcher::Config) -> Informer<K>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    {
        let client = self.client.clone();
        self.get_or_start(None, config, move || Api::all(client))
    }

    /// The informer of the `K`s in `namespace` that `config` selects.
    pub fn get_namespaced<K>(&self, namespace: &str, config: watcher::Config) -> Informer<K>
    where
        K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + Debug
            + Send
            + Sync
            + 'static,
    {
        let client = self.client.clone();
        self.get_or_start(Some(namespace), config, move || {
            Api::namespaced(client, namespace)
        })
    }

    /// Number of informers started so far.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no informer was started yet.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Box<dyn Any + Send + Sync>>> {
        self.informers.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get_or_start<K>(
        &self,
        namespace: Option<&str>,
        config: watcher::Config,
        api: impl FnOnce() -> Api<K>,
    ) -> Informer<K>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    {
        let key = Key {
            kind: TypeId::of::<K>(),
            namespace: namespace.map(str::to_string),
            config: format!("{config:?}"),
        };
        let mut informers = self.lock();
        if let Some(existing) = informers
            .get(&key)
            .and_then(|b| b.downcast_ref::<Informer<K>>())
        {
            return existing.clone();
        }
        let informer = Informer::new(api(), config);
        informers.insert(key, Box::new(informer.clone()));
        informer
    }
}

#[cfg(test)]
#[path = "shared_tests.rs"]
mod tests;
