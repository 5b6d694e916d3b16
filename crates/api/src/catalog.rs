//! Every resource r8s serves: group, version, kind, scope, names, verbs, subresources.
//!
//! This table drives discovery, URL routing, storage keys and `kubectl api-resources`.

/// A subresource of a resource (`status`, `scale`, `binding`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subresource {
    /// Path segment after the object name, e.g. `status`.
    pub name: &'static str,
    /// Kind of the subresource's body (`Scale` for scale; the parent kind for status).
    pub kind: &'static str,
    /// Group of that kind (`autoscaling` for Scale; "" for core).
    pub group: &'static str,
    /// Version of that kind.
    pub version: &'static str,
    pub verbs: &'static [&'static str],
}

/// One served resource at one group-version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceInfo {
    /// API group ("" for core).
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    /// Lower-case plural, the URL segment (`deployments`).
    pub plural: &'static str,
    /// Lower-case singular (`deployment`).
    pub singular: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    /// e.g. `["all"]` so `kubectl get all` includes it.
    pub categories: &'static [&'static str],
    pub verbs: &'static [&'static str],
    pub subresources: &'static [Subresource],
    /// The group objects are stored under ("" for core). events.k8s.io/v1 Events are
    /// stored as core/v1 Events, as upstream does.
    pub storage_group: &'static str,
    /// The version objects are stored in. Several served versions of one resource
    /// (autoscaling/v1 and v2 HPAs; core and events.k8s.io Events) share one storage
    /// group/version and one key space.
    pub storage_version: &'static str,
}

impl ResourceInfo {
    /// `apps/v1` or `v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `DeploymentList`.
    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// The subresource called `name`, if served.
    pub fn subresource(&self, name: &str) -> Option<&'static Subresource> {
        self.subresources.iter().find(|s| s.name == name)
    }

    /// The apiVersion of the stored form (`autoscaling/v2`, `v1`).
    pub fn storage_api_version(&self) -> String {
        if self.storage_group.is_empty() {
            self.storage_version.to_string()
        } else {
            format!("{}/{}", self.storage_group, self.storage_version)
        }
    }

    /// Storage key prefix of this resource: `/registry/<storage group or core>/<plural>/`.
    pub fn key_prefix(&self) -> String {
        let group = if self.storage_group.is_empty() {
            "core"
        } else {
            self.storage_group
        };
        format!("/registry/{group}/{}/", self.plural)
    }
}

pub mod custom;
mod data;

/// An API group as `/apis` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInfo {
    /// Group name (`apps`); never the core group.
    pub name: &'static str,
    /// Served versions, preferred first.
    pub versions: Vec<&'static str>,
    /// The preferred version (`v2` for autoscaling).
    pub preferred: &'static str,
}

/// Every built-in resource at every served version (custom resources: [`custom::all`]).
pub fn all() -> &'static [ResourceInfo] {
    data::RESOURCES
}

/// The resource served at `group`/`version` under the URL segment `plural`.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static ResourceInfo> {
    let matches = |r: &ResourceInfo| r.group == group && r.version == version && r.plural == plural;
    all()
        .iter()
        .find(|r| matches(r))
        .or_else(|| custom::all().into_iter().find(|r| matches(r)))
}

/// The resource `plural` of `group` at some served version: the first built-in entry,
/// else a custom resource at its storage version (for callers that count objects and
/// need no particular version).
pub fn find_resource(group: &str, plural: &str) -> Option<&'static ResourceInfo> {
    all()
        .iter()
        .find(|r| r.group == group && r.plural == plural)
        .or_else(|| {
            let custom = custom::all();
            let same = |r: &&&ResourceInfo| r.group == group && r.plural == plural;
            let storage = custom
                .iter()
                .filter(same)
                .find(|r| r.version == r.storage_version);
            storage.or_else(|| custom.iter().find(same)).copied()
        })
}

/// The resource whose objects are `kind` at `group`/`version`.
pub fn find_kind(group: &str, version: &str, kind: &str) -> Option<&'static ResourceInfo> {
    let matches = |r: &ResourceInfo| r.group == group && r.version == version && r.kind == kind;
    all()
        .iter()
        .find(|r| matches(r))
        .or_else(|| custom::all().into_iter().find(|r| matches(r)))
}

/// The named API groups (the core group is not one), in upstream's `/apis` order: the
/// built-in groups, then those of custom resources by name, versions by priority.
pub fn groups() -> Vec<GroupInfo> {
    let mut groups: Vec<GroupInfo> = data::GROUPS
        .iter()
        .map(|(name, versions)| GroupInfo {
            name,
            versions: versions.to_vec(),
            preferred: versions.first().copied().unwrap_or("v1"),
        })
        .collect();
    let mut custom: std::collections::BTreeMap<&'static str, Vec<&'static str>> =
        Default::default();
    for r in custom::all() {
        let versions = custom.entry(r.group).or_default();
        if !versions.contains(&r.version) {
            versions.push(r.version);
        }
    }
    for (name, mut versions) in custom {
        if groups.iter().any(|g| g.name == name) {
            continue;
        }
        versions.sort_by(|a, b| custom::version_priority(a, b));
        groups.push(GroupInfo {
            name,
            preferred: versions.first().copied().unwrap_or("v1"),
            versions,
        });
    }
    groups
}

/// The named group `name`, if served.
pub fn group(name: &str) -> Option<GroupInfo> {
    groups().into_iter().find(|g| g.name == name)
}

/// Resources served at `group`/`version`, in catalog order (custom resources last).
pub fn resources_in(group: &str, version: &str) -> Vec<&'static ResourceInfo> {
    all()
        .iter()
        .chain(custom::all())
        .filter(|r| r.group == group && r.version == version)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn keys_are_unique_and_verbs_sorted() {
        let mut seen = HashSet::new();
        for r in all() {
            assert!(
                seen.insert((r.group, r.version, r.plural)),
                "duplicate {r:?}"
            );
            let mut verbs = r.verbs.to_vec();
            verbs.sort_unstable();
            assert_eq!(verbs, r.verbs, "{}", r.plural);
            for s in r.subresources {
                let mut verbs = s.verbs.to_vec();
                verbs.sort_unstable();
                assert_eq!(verbs, s.verbs, "{}/{}", r.plural, s.name);
            }
        }
    }

    #[test]
    fn every_group_version_is_listed() {
        let listed: HashSet<(&str, &str)> = groups()
            .iter()
            .flat_map(|g| g.versions.iter().map(|v| (g.name, *v)).collect::<Vec<_>>())
            .collect();
        for r in all().iter().filter(|r| !r.group.is_empty()) {
            assert!(listed.contains(&(r.group, r.version)), "{r:?}");
        }
        for (g, v) in &listed {
            assert!(!resources_in(g, v).is_empty(), "{g}/{v} is empty");
        }
    }

    #[test]
    fn lookups() {
        let deploy = find("apps", "v1", "deployments").expect("deployments");
        assert_eq!(deploy.kind, "Deployment");
        assert_eq!(deploy.short_names, ["deploy"]);
        let scale = deploy.subresource("scale").expect("scale");
        assert_eq!(
            (scale.group, scale.version, scale.kind),
            ("autoscaling", "v1", "Scale")
        );
        assert_eq!(find_kind("", "v1", "Pod").map(|r| r.plural), Some("pods"));
        assert!(find("", "v1", "replicationcontrollers").is_none());
        let ns = find("", "v1", "namespaces").expect("namespaces");
        assert!(!ns.namespaced && !ns.verbs.contains(&"deletecollection"));
        let eviction = find("", "v1", "pods").and_then(|p| p.subresource("eviction"));
        assert_eq!(
            eviction.map(|e| (e.group, e.kind)),
            Some(("policy", "Eviction"))
        );
    }

    #[test]
    fn autoscaling_versions_share_storage() {
        let v1 = find("autoscaling", "v1", "horizontalpodautoscalers").expect("v1");
        let v2 = find("autoscaling", "v2", "horizontalpodautoscalers").expect("v2");
        assert_eq!((v1.storage_version, v2.storage_version), ("v2", "v2"));
        assert_eq!(v1.key_prefix(), v2.key_prefix());
        let autoscaling = group("autoscaling").expect("autoscaling");
        assert_eq!(autoscaling.versions, ["v2", "v1"]);
        assert_eq!(autoscaling.preferred, "v2");
    }

    #[test]
    fn event_apis_share_storage() {
        let core = find("", "v1", "events").expect("core events");
        let new = find("events.k8s.io", "v1", "events").expect("events.k8s.io");
        assert_eq!(core.key_prefix(), "/registry/core/events/");
        assert_eq!(new.key_prefix(), core.key_prefix());
        assert_eq!(new.storage_api_version(), "v1");
        assert_eq!(
            find("autoscaling", "v1", "horizontalpodautoscalers").map(|r| r.storage_api_version()),
            Some("autoscaling/v2".to_string())
        );
    }

    #[test]
    fn category_all_matches_upstream() {
        let mut all_cat: Vec<&str> = all()
            .iter()
            .filter(|r| r.categories.contains(&"all"))
            .map(|r| r.plural)
            .collect();
        all_cat.sort_unstable();
        all_cat.dedup();
        assert_eq!(
            all_cat,
            [
                "cronjobs",
                "daemonsets",
                "deployments",
                "horizontalpodautoscalers",
                "jobs",
                "pods",
                "replicasets",
                "services",
                "statefulsets"
            ]
        );
    }
}
