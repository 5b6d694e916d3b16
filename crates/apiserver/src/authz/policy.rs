//! The RBAC policy held in memory (parsed Roles, ClusterRoles and bindings) and the
//! decisions made from it, as upstream's `RBACAuthorizer` with its rule visitor.
//!
//! Aggregated ClusterRoles (`aggregationRule`) are resolved when evaluated: their rules are
//! their own plus those of every ClusterRole whose labels match a selector, recursively
//! (upstream's aggregation controller writes the same union into `rules`).

use super::Attributes;
use super::rules::{self, PolicyRule, RoleRef, Subject};
use r8s_api::selector::{LabelSelector, from_label_selector_json};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};

/// The four RBAC kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    ClusterRole,
    Role,
    ClusterRoleBinding,
    RoleBinding,
}

impl Kind {
    pub const ALL: [Kind; 4] = [
        Kind::ClusterRole,
        Kind::Role,
        Kind::ClusterRoleBinding,
        Kind::RoleBinding,
    ];

    /// The resource name.
    pub fn plural(self) -> &'static str {
        match self {
            Kind::ClusterRole => "clusterroles",
            Kind::Role => "roles",
            Kind::ClusterRoleBinding => "clusterrolebindings",
            Kind::RoleBinding => "rolebindings",
        }
    }
}

/// An authorization decision and why (`RBAC: allowed by …`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub reason: String,
}

impl Decision {
    pub fn allow(reason: String) -> Decision {
        Decision {
            allowed: true,
            reason,
        }
    }
}

/// One ClusterRole.
#[derive(Debug, Clone, Default)]
struct ClusterRole {
    labels: BTreeMap<String, String>,
    rules: Vec<PolicyRule>,
    /// `aggregationRule.clusterRoleSelectors`, if the role aggregates.
    aggregation: Option<Vec<LabelSelector>>,
}

/// One RoleBinding or ClusterRoleBinding.
#[derive(Debug, Clone, Default)]
struct Binding {
    name: String,
    role_ref: RoleRef,
    subjects: Vec<Subject>,
}

/// Every Role, ClusterRole and binding.
#[derive(Debug, Default)]
pub struct Policy {
    cluster_roles: HashMap<String, ClusterRole>,
    /// (namespace, name) → rules.
    roles: HashMap<(String, String), Vec<PolicyRule>>,
    cluster_role_bindings: BTreeMap<String, Binding>,
    /// namespace → name → binding.
    role_bindings: HashMap<String, BTreeMap<String, Binding>>,
}

fn meta<'a>(obj: &'a Value, field: &str) -> &'a str {
    crate::meta::meta_str(obj, field)
}

fn parse_rules(obj: &Value) -> Vec<PolicyRule> {
    match obj.get("rules").and_then(Value::as_array) {
        // A malformed rule grants nothing rather than failing the whole role.
        Some(list) => list
            .iter()
            .filter_map(|r| serde_json::from_value(r.clone()).ok())
            .collect(),
        None => Vec::new(),
    }
}

fn parse_binding(obj: &Value) -> Binding {
    let subjects = obj
        .get("subjects")
        .and_then(Value::as_array)
        .map(|l| {
            l.iter()
                .filter_map(|s| serde_json::from_value(s.clone()).ok())
                .collect()
        })
        .unwrap_or_default();
    Binding {
        name: meta(obj, "name").to_string(),
        role_ref: obj
            .get("roleRef")
            .and_then(|r| serde_json::from_value(r.clone()).ok())
            .unwrap_or_default(),
        subjects,
    }
}

fn parse_cluster_role(obj: &Value) -> ClusterRole {
    let aggregation = obj
        .pointer("/aggregationRule/clusterRoleSelectors")
        .and_then(Value::as_array)
        .map(|sels| {
            sels.iter()
                .filter_map(|s| from_label_selector_json(s).ok())
                .collect()
        });
    ClusterRole {
        labels: crate::meta::labels(obj),
        rules: parse_rules(obj),
        aggregation,
    }
}

impl Policy {
    /// Add or replace one object of `kind`.
    pub fn upsert(&mut self, kind: Kind, obj: &Value) {
        let (ns, name) = (
            meta(obj, "namespace").to_string(),
            meta(obj, "name").to_string(),
        );
        match kind {
            Kind::ClusterRole => {
                self.cluster_roles.insert(name, parse_cluster_role(obj));
            }
            Kind::Role => {
                self.roles.insert((ns, name), parse_rules(obj));
            }
            Kind::ClusterRoleBinding => {
                self.cluster_role_bindings.insert(name, parse_binding(obj));
            }
            Kind::RoleBinding => {
                self.role_bindings
                    .entry(ns)
                    .or_default()
                    .insert(name, parse_binding(obj));
            }
        }
    }

    /// Remove one object of `kind`.
    pub fn remove(&mut self, kind: Kind, obj: &Value) {
        let (ns, name) = (meta(obj, "namespace"), meta(obj, "name"));
        match kind {
            Kind::ClusterRole => {
                self.cluster_roles.remove(name);
            }
            Kind::Role => {
                self.roles.remove(&(ns.to_string(), name.to_string()));
            }
            Kind::ClusterRoleBinding => {
                self.cluster_role_bindings.remove(name);
            }
            Kind::RoleBinding => {
                if let Some(m) = self.role_bindings.get_mut(ns) {
                    m.remove(name);
                    if m.is_empty() {
                        self.role_bindings.remove(ns);
                    }
                }
            }
        }
    }

    /// Replace every object of `kind` (after a (re)list).
    pub fn replace(&mut self, kind: Kind, objs: &[Value]) {
        match kind {
            Kind::ClusterRole => self.cluster_roles.clear(),
            Kind::Role => self.roles.clear(),
            Kind::ClusterRoleBinding => self.cluster_role_bindings.clear(),
            Kind::RoleBinding => self.role_bindings.clear(),
        }
        for o in objs {
            self.upsert(kind, o);
        }
    }

    /// The rules of ClusterRole `name` with aggregation resolved, or `None` if missing.
    fn cluster_role_rules(&self, name: &str) -> Option<Vec<&PolicyRule>> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        self.collect_cluster_role(name, &mut seen, &mut out)
            .then_some(out)
    }

    fn collect_cluster_role<'a>(
        &'a self,
        name: &str,
        seen: &mut HashSet<String>,
        out: &mut Vec<&'a PolicyRule>,
    ) -> bool {
        if !seen.insert(name.to_string()) {
            return true;
        }
        let Some(role) = self.cluster_roles.get(name) else {
            return false;
        };
        out.extend(role.rules.iter());
        if let Some(selectors) = &role.aggregation {
            for (other, r) in &self.cluster_roles {
                if selectors.iter().any(|s| s.matches(&r.labels)) {
                    self.collect_cluster_role(other, seen, out);
                }
            }
        }
        true
    }

    /// The rules a roleRef names in `namespace`, or `None` if the role does not exist.
    fn ref_rules(&self, r: &RoleRef, namespace: &str) -> Option<Vec<&PolicyRule>> {
        match r.kind.as_str() {
            "ClusterRole" => self.cluster_role_rules(&r.name),
            "Role" if !namespace.is_empty() => self
                .roles
                .get(&(namespace.to_string(), r.name.clone()))
                .map(|rules| rules.iter().collect()),
            _ => None,
        }
    }

    /// Owned copy of [`Policy::ref_rules`].
    pub fn role_ref_rules(&self, r: &RoleRef, namespace: &str) -> Option<Vec<PolicyRule>> {
        self.ref_rules(r, namespace)
            .map(|l| l.into_iter().cloned().collect())
    }

    /// Walk every rule granted to the user in `namespace` (ClusterRoleBindings first, then
    /// the namespace's RoleBindings). `visit` gets a description of where the rule comes
    /// from and returns true to stop. Bindings to missing roles are reported in `errors`.
    fn visit<'a>(
        &'a self,
        user: &str,
        groups: &[String],
        namespace: &str,
        errors: &mut Vec<String>,
        visit: &mut dyn FnMut(&dyn Fn() -> String, &'a PolicyRule) -> bool,
    ) {
        let cluster = self.cluster_role_bindings.values().map(|b| (b, ""));
        let local = self
            .role_bindings
            .get(namespace)
            .filter(|_| !namespace.is_empty())
            .into_iter()
            .flat_map(|m| m.values().map(|b| (b, namespace)));
        for (b, ns) in cluster.chain(local) {
            let Some(subject) = b
                .subjects
                .iter()
                .find(|s| rules::applies_to(s, user, groups, ns))
            else {
                continue;
            };
            let Some(found) = self.ref_rules(&b.role_ref, ns) else {
                let kind = b.role_ref.kind.to_ascii_lowercase();
                errors.push(format!(
                    "{kind}.rbac.authorization.k8s.io {} not found",
                    r8s_api::strategy::errors::go_quote(&b.role_ref.name)
                ));
                continue;
            };
            let describe = || {
                let binding = if ns.is_empty() {
                    format!(
                        "ClusterRoleBinding {}",
                        r8s_api::strategy::errors::go_quote(&b.name)
                    )
                } else {
                    format!(
                        "RoleBinding {}",
                        r8s_api::strategy::errors::go_quote(&format!("{}/{ns}", b.name))
                    )
                };
                format!(
                    "{binding} of {} {} to {}",
                    b.role_ref.kind,
                    r8s_api::strategy::errors::go_quote(&b.role_ref.name),
                    rules::describe_subject(subject)
                )
            };
            for rule in found {
                if visit(&describe, rule) {
                    return;
                }
            }
        }
    }

    /// Decide `a` (without the `system:masters` shortcut).
    pub fn authorize(&self, a: &Attributes) -> Decision {
        let mut errors = Vec::new();
        let mut reason = None;
        self.visit(
            &a.user,
            &a.groups,
            &a.namespace,
            &mut errors,
            &mut |src, rule| {
                if rules::rule_allows(a, rule) {
                    reason = Some(format!("RBAC: allowed by {}", src()));
                    true
                } else {
                    false
                }
            },
        );
        match reason {
            Some(r) => Decision::allow(r),
            None => {
                let reason = match errors.as_slice() {
                    [] => String::new(),
                    [one] => format!("RBAC: {one}"),
                    many => format!("RBAC: [{}]", many.join(", ")),
                };
                Decision {
                    allowed: false,
                    reason,
                }
            }
        }
    }

    /// Every rule the user holds in `namespace` (cluster-wide ones included).
    pub fn rules_for(&self, user: &str, groups: &[String], namespace: &str) -> Vec<PolicyRule> {
        let mut out = Vec::new();
        let mut errors = Vec::new();
        self.visit(user, groups, namespace, &mut errors, &mut |_, rule| {
            out.push(rule.clone());
            false
        });
        out
    }
}
