//! Kind to resource mapping (a REST mapper) from discovery, so owner references — which
//! name an apiVersion and kind — can be turned into API paths.

use kube::discovery::{ApiResource, Scope};
use std::collections::HashMap;

/// Resources by (group, kind).
#[derive(Default)]
pub struct Mapper {
    by_kind: HashMap<(String, String), (ApiResource, bool)>,
}

/// The group of an apiVersion ("" for core "v1").
pub fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("")
}

impl Mapper {
    /// Replace the mapping with freshly discovered resources.
    pub fn set(&mut self, resources: &[(ApiResource, kube::discovery::ApiCapabilities)]) {
        self.by_kind = resources
            .iter()
            .map(|(ar, caps)| {
                (
                    (ar.group.clone(), ar.kind.clone()),
                    (ar.clone(), caps.scope == Scope::Namespaced),
                )
            })
            .collect();
    }

    /// The resource serving `kind` in `api_version`'s group (any version: the GC only reads
    /// and patches metadata), and whether it is namespaced.
    pub fn resolve(&self, api_version: &str, kind: &str) -> Option<(ApiResource, bool)> {
        self.by_kind
            .get(&(group_of(api_version).to_string(), kind.to_string()))
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups() {
        assert_eq!(group_of("v1"), "");
        assert_eq!(group_of("apps/v1"), "apps");
        assert_eq!(group_of("example.com/v1beta1"), "example.com");
    }
}
