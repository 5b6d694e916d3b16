//! The dependency graph of the garbage collector (upstream's `GraphBuilder`): one node per
//! object uid with its owner references and the set of its dependents. Owners that have
//! not been observed (yet) are *virtual* nodes whose existence the attempt-to-delete worker
//! verifies against the API server. Processing a change returns the work it makes
//! necessary; the caller queues it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use std::collections::{HashMap, HashSet};

/// Upstream's finalizer asking for dependents to be deleted before the owner.
pub const FOREGROUND: &str = "foregroundDeletion";
/// Upstream's finalizer asking for dependents to be orphaned before the owner is deleted.
pub const ORPHAN: &str = "orphan";

/// Who an object is: enough to GET, PATCH or DELETE it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Identity {
    pub api_version: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
    pub uid: String,
}

impl Identity {
    /// The group of `api_version` ("" for core).
    pub fn group(&self) -> &str {
        self.api_version
            .rsplit_once('/')
            .map(|(g, _)| g)
            .unwrap_or("")
    }
}

/// One object in the graph.
#[derive(Clone, Debug)]
pub struct Node {
    pub identity: Identity,
    pub owners: Vec<OwnerReference>,
    pub dependents: HashSet<String>,
    /// deletionTimestamp is set.
    pub being_deleted: bool,
    /// Being deleted with the foregroundDeletion finalizer: waits for blocking dependents.
    pub deleting_dependents: bool,
    /// Never observed through a watch; only known as somebody's owner.
    pub virtual_node: bool,
    pub finalizers: Vec<String>,
}

/// Work resulting from a graph change.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Work {
    /// Check whether this object must be deleted, or (deleting dependents) whether its
    /// foregroundDeletion finalizer can go.
    AttemptToDelete(String),
    /// Orphan this object's dependents, then remove its orphan finalizer.
    AttemptToOrphan(String),
}

/// An observed change.
pub enum Change<'a> {
    Upsert {
        api_version: &'a str,
        kind: &'a str,
        meta: &'a ObjectMeta,
    },
    Delete {
        meta: &'a ObjectMeta,
    },
}

/// The graph.
#[derive(Default)]
pub struct Graph {
    nodes: HashMap<String, Node>,
    /// Owners verified absent (by uid), as upstream's absentOwnerCache.
    absent: HashSet<String>,
}

fn has(fins: &[String], f: &str) -> bool {
    fins.iter().any(|x| x == f)
}

impl Graph {
    /// A node by uid.
    pub fn get(&self, uid: &str) -> Option<&Node> {
        self.nodes.get(uid)
    }

    /// Number of nodes (virtual ones included).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the graph is empty.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Whether `uid` is known to be gone.
    pub fn is_absent(&self, uid: &str) -> bool {
        self.absent.contains(uid)
    }

    /// Remember that `uid` no longer exists.
    pub fn mark_absent(&mut self, uid: &str) {
        if self.absent.len() > 100_000 {
            self.absent.clear();
        }
        self.absent.insert(uid.to_string());
    }

    /// A virtual node was verified to exist: treat it as observed.
    pub fn mark_observed(&mut self, uid: &str) {
        if let Some(n) = self.nodes.get_mut(uid) {
            n.virtual_node = false;
        }
    }

    /// Apply an observed change; returns the work it implies.
    pub fn process(&mut self, change: Change<'_>) -> Vec<Work> {
        match change {
            Change::Upsert {
                api_version,
                kind,
                meta,
            } => self.upsert(api_version, kind, meta),
            Change::Delete { meta } => match &meta.uid {
                Some(uid) => self.remove(uid),
                None => Vec::new(),
            },
        }
    }

    fn upsert(&mut self, api_version: &str, kind: &str, meta: &ObjectMeta) -> Vec<Work> {
        let Some(uid) = meta.uid.clone() else {
            return Vec::new();
        };
        let mut work = Vec::new();
        let owners = meta.owner_references.clone().unwrap_or_default();
        let finalizers = meta.finalizers.clone().unwrap_or_default();
        let being_deleted = meta.deletion_timestamp.is_some();
        let identity = Identity {
            api_version: api_version.to_string(),
            kind: kind.to_string(),
            namespace: meta.namespace.clone().filter(|n| !n.is_empty()),
            name: meta.name.clone().unwrap_or_default(),
            uid: uid.clone(),
        };
        self.absent.remove(&uid);
        let (old_owners, old_fins, was_deleting) = match self.nodes.get_mut(&uid) {
            Some(n) => {
                let old = (n.owners.clone(), n.finalizers.clone(), n.being_deleted);
                if n.virtual_node || n.identity != identity {
                    // Observed for real now; its dependents might have guessed the kind
                    // wrong, so let them be re-checked.
                    n.virtual_node = false;
                    n.identity = identity.clone();
                    work.extend(n.dependents.iter().cloned().map(Work::AttemptToDelete));
                }
                n.owners = owners.clone();
                n.finalizers = finalizers.clone();
                n.being_deleted = being_deleted;
                (Some(old.0), old.1, old.2)
            }
            None => {
                self.nodes.insert(
                    uid.clone(),
                    Node {
                        identity: identity.clone(),
                        owners: owners.clone(),
                        dependents: HashSet::new(),
                        being_deleted,
                        deleting_dependents: false,
                        virtual_node: false,
                        finalizers: finalizers.clone(),
                    },
                );
                (None, Vec::new(), false)
            }
        };
        // Owner reference changes.
        let old_owners = old_owners.unwrap_or_default();
        for added in owners
            .iter()
            .filter(|o| !old_owners.iter().any(|x| x.uid == o.uid))
        {
            work.extend(self.add_dependent_to_owner(&identity, added));
        }
        for removed in old_owners
            .iter()
            .filter(|o| !owners.iter().any(|x| x.uid == o.uid))
        {
            if let Some(owner) = self.nodes.get_mut(&removed.uid) {
                owner.dependents.remove(&uid);
                if owner.deleting_dependents {
                    // A blocking dependent went away: the owner may be done waiting.
                    work.push(Work::AttemptToDelete(removed.uid.clone()));
                }
            }
        }
        for changed in owners.iter() {
            let unblocked = old_owners.iter().any(|o| {
                o.uid == changed.uid
                    && o.block_owner_deletion == Some(true)
                    && changed.block_owner_deletion != Some(true)
            });
            if unblocked
                && self
                    .nodes
                    .get(&changed.uid)
                    .is_some_and(|o| o.deleting_dependents)
            {
                work.push(Work::AttemptToDelete(changed.uid.clone()));
            }
        }
        // Deletion transitions.
        let starts_orphaning =
            being_deleted && has(&finalizers, ORPHAN) && !(was_deleting && has(&old_fins, ORPHAN));
        if starts_orphaning {
            work.push(Work::AttemptToOrphan(uid.clone()));
            return work;
        }
        if being_deleted && has(&finalizers, FOREGROUND) {
            let mut newly = false;
            if let Some(n) = self.nodes.get_mut(&uid) {
                newly = !n.deleting_dependents;
                n.deleting_dependents = true;
            }
            if newly && let Some(n) = self.nodes.get(&uid) {
                work.extend(n.dependents.iter().cloned().map(Work::AttemptToDelete));
            }
            work.push(Work::AttemptToDelete(uid.clone()));
        } else if let Some(n) = self.nodes.get_mut(&uid) {
            n.deleting_dependents = false;
        }
        work
    }

    /// Link `dependent` under the owner `r`, creating a virtual owner node if needed.
    fn add_dependent_to_owner(&mut self, dependent: &Identity, r: &OwnerReference) -> Vec<Work> {
        let mut work = Vec::new();
        match self.nodes.get_mut(&r.uid) {
            Some(owner) => {
                owner.dependents.insert(dependent.uid.clone());
            }
            None => {
                // The owner's namespace is the dependent's (or none, for cluster-scoped
                // owners, which the worker resolves through the kind's scope).
                let mut dependents = HashSet::new();
                dependents.insert(dependent.uid.clone());
                self.nodes.insert(
                    r.uid.clone(),
                    Node {
                        identity: Identity {
                            api_version: r.api_version.clone(),
                            kind: r.kind.clone(),
                            namespace: dependent.namespace.clone(),
                            name: r.name.clone(),
                            uid: r.uid.clone(),
                        },
                        owners: Vec::new(),
                        dependents,
                        being_deleted: false,
                        deleting_dependents: false,
                        virtual_node: true,
                        finalizers: Vec::new(),
                    },
                );
                work.push(Work::AttemptToDelete(r.uid.clone()));
            }
        }
        work
    }

    /// Remove a node (observed deleted, or a virtual node found absent); its dependents
    /// must be re-checked, and owners waiting for it may be done.
    pub fn remove(&mut self, uid: &str) -> Vec<Work> {
        let Some(node) = self.nodes.remove(uid) else {
            return Vec::new();
        };
        let mut work = Vec::new();
        for o in &node.owners {
            if let Some(owner) = self.nodes.get_mut(&o.uid) {
                owner.dependents.remove(uid);
                if owner.deleting_dependents {
                    work.push(Work::AttemptToDelete(o.uid.clone()));
                }
                if owner.virtual_node && owner.dependents.is_empty() {
                    // Nobody refers to this unverified owner any more.
                    self.nodes.remove(&o.uid);
                }
            }
        }
        if !node.dependents.is_empty() {
            self.mark_absent(uid);
            // Keep the dependents pointing at a virtual placeholder so a re-check finds the
            // owner absent rather than unknown.
            work.extend(node.dependents.iter().cloned().map(Work::AttemptToDelete));
        }
        work
    }

    /// Dependents of `uid` that block its foreground deletion (blockOwnerDeletion=true).
    pub fn blocking_dependents(&self, uid: &str) -> Vec<Node> {
        let Some(node) = self.nodes.get(uid) else {
            return Vec::new();
        };
        node.dependents
            .iter()
            .filter_map(|d| self.nodes.get(d))
            .filter(|d| {
                d.owners
                    .iter()
                    .any(|o| o.uid == uid && o.block_owner_deletion == Some(true))
            })
            .cloned()
            .collect()
    }

    /// All dependents of `uid`.
    pub fn dependents(&self, uid: &str) -> Vec<Node> {
        self.nodes
            .get(uid)
            .map(|n| {
                n.dependents
                    .iter()
                    .filter_map(|d| self.nodes.get(d))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Uids of objects observed from one resource (for relist reconciliation).
    pub fn uids_of_kind(&self, api_version: &str, kind: &str) -> Vec<String> {
        self.nodes
            .values()
            .filter(|n| {
                !n.virtual_node && n.identity.kind == kind && n.identity.api_version == api_version
            })
            .map(|n| n.identity.uid.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn meta(name: &str, uid: &str, owners: &[(&str, bool)]) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            namespace: Some("ns".into()),
            uid: Some(uid.into()),
            owner_references: Some(
                owners
                    .iter()
                    .map(|(u, block)| OwnerReference {
                        api_version: "v1".into(),
                        kind: "ConfigMap".into(),
                        name: format!("owner-{u}"),
                        uid: u.to_string(),
                        block_owner_deletion: Some(*block),
                        controller: None,
                    })
                    .collect(),
            ),
            ..Default::default()
        }
    }

    fn up(g: &mut Graph, m: &ObjectMeta) -> Vec<Work> {
        g.process(Change::Upsert {
            api_version: "v1",
            kind: "ConfigMap",
            meta: m,
        })
    }

    #[test]
    fn unknown_owner_becomes_virtual_and_is_checked() {
        let mut g = Graph::default();
        let work = up(&mut g, &meta("d", "d1", &[("o1", true)]));
        assert_eq!(work, vec![Work::AttemptToDelete("o1".into())]);
        assert!(g.get("o1").is_some_and(|n| n.virtual_node));
        // Observing the owner makes it real and re-checks its dependents.
        let work = up(&mut g, &meta("owner-o1", "o1", &[]));
        assert!(work.contains(&Work::AttemptToDelete("d1".into())));
        assert!(g.get("o1").is_some_and(|n| !n.virtual_node));
    }

    #[test]
    fn owner_deletion_requeues_dependents() {
        let mut g = Graph::default();
        up(&mut g, &meta("owner-o1", "o1", &[]));
        up(&mut g, &meta("d", "d1", &[("o1", false)]));
        let m = meta("owner-o1", "o1", &[]);
        let work = g.process(Change::Delete { meta: &m });
        assert_eq!(work, vec![Work::AttemptToDelete("d1".into())]);
        assert!(g.is_absent("o1"));
    }

    #[test]
    fn foreground_and_orphan_transitions() {
        let mut g = Graph::default();
        up(&mut g, &meta("owner-o1", "o1", &[]));
        up(&mut g, &meta("d", "d1", &[("o1", true)]));
        let mut m = meta("owner-o1", "o1", &[]);
        m.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::now()));
        m.finalizers = Some(vec![FOREGROUND.into()]);
        let work = up(&mut g, &m);
        assert!(work.contains(&Work::AttemptToDelete("d1".into())));
        assert!(work.contains(&Work::AttemptToDelete("o1".into())));
        assert_eq!(g.blocking_dependents("o1").len(), 1);
        // The dependent goes: the owner is re-checked.
        let d = meta("d", "d1", &[("o1", true)]);
        let work = g.process(Change::Delete { meta: &d });
        assert_eq!(work, vec![Work::AttemptToDelete("o1".into())]);
        assert!(g.blocking_dependents("o1").is_empty());

        let mut o = meta("owner-o2", "o2", &[]);
        up(&mut g, &o);
        o.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::now()));
        o.finalizers = Some(vec![ORPHAN.into()]);
        assert_eq!(up(&mut g, &o), vec![Work::AttemptToOrphan("o2".into())]);
        // Not again for an unrelated update.
        assert!(up(&mut g, &o).is_empty());
    }
}
