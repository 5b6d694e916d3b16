//! PolicyRules, Subjects and RoleRefs, and the matching upstream's RBAC does with them:
//! whether a rule allows a request (`RuleAllows`), whether a binding's subject is the
//! user (`appliesToUser`), and whether one set of rules covers another (escalation).

use super::Attributes;
use r8s_api::strategy::errors::go_quote;
use serde::{Deserialize, Deserializer, Serialize};

/// `rbac.authorization.k8s.io/v1` PolicyRule.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyRule {
    #[serde(default, deserialize_with = "nullable")]
    pub verbs: Vec<String>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub api_groups: Vec<String>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub resources: Vec<String>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub resource_names: Vec<String>,
    #[serde(
        rename = "nonResourceURLs",
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub non_resource_urls: Vec<String>,
}

/// A binding's subject.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subject {
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub api_group: String,
}

/// A binding's role reference.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleRef {
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub api_group: String,
}

/// `null` reads as an empty list, as Go's nil slices do.
fn nullable<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

fn has(list: &[String], item: &str) -> bool {
    list.iter().any(|x| x == item)
}

/// Whether `rule` allows the request `a`.
pub fn rule_allows(a: &Attributes, rule: &PolicyRule) -> bool {
    if !verb_matches(rule, &a.verb) {
        return false;
    }
    if !a.resource_request {
        return rule
            .non_resource_urls
            .iter()
            .any(|u| url_matches(u, &a.path));
    }
    let combined = if a.subresource.is_empty() {
        a.resource.clone()
    } else {
        format!("{}/{}", a.resource, a.subresource)
    };
    (has(&rule.api_groups, "*") || has(&rule.api_groups, &a.api_group))
        && resource_matches(rule, &combined, &a.subresource)
        && (rule.resource_names.is_empty() || has(&rule.resource_names, &a.name))
}

fn verb_matches(rule: &PolicyRule, verb: &str) -> bool {
    has(&rule.verbs, "*") || has(&rule.verbs, verb)
}

/// `*`, the exact `resource[/subresource]`, or `*/subresource`.
fn resource_matches(rule: &PolicyRule, combined: &str, subresource: &str) -> bool {
    rule.resources.iter().any(|r| {
        r == "*"
            || r == combined
            || (!subresource.is_empty() && r.strip_prefix("*/") == Some(subresource))
    })
}

/// `*`, the exact path, or a prefix ending in `*`.
fn url_matches(rule_url: &str, path: &str) -> bool {
    rule_url == "*"
        || rule_url == path
        || rule_url
            .strip_suffix('*')
            .is_some_and(|prefix| path.starts_with(prefix))
}

/// Whether a binding's `subject` is the user; service accounts without a namespace take
/// the binding's (`binding_ns`, empty for ClusterRoleBindings).
pub fn applies_to(subject: &Subject, user: &str, groups: &[String], binding_ns: &str) -> bool {
    match subject.kind.as_str() {
        "User" => subject.name == user,
        "Group" => has(groups, &subject.name),
        "ServiceAccount" => {
            let ns = if subject.namespace.is_empty() {
                binding_ns
            } else {
                &subject.namespace
            };
            !ns.is_empty()
                && user
                    .strip_prefix(crate::auth::serviceaccount::USER_PREFIX)
                    .and_then(|rest| rest.split_once(':'))
                    == Some((ns, subject.name.as_str()))
        }
        _ => false,
    }
}

/// `User "jane"`, `ServiceAccount "ns/name"` (for allowed-by reasons).
pub fn describe_subject(s: &Subject) -> String {
    if s.kind == "ServiceAccount" && !s.namespace.is_empty() {
        format!(
            "{} {}",
            s.kind,
            go_quote(&format!("{}/{}", s.namespace, s.name))
        )
    } else {
        format!("{} {}", s.kind, go_quote(&s.name))
    }
}

/// The parts of `requested` that `owner` does not cover, as upstream's `Covers`: each
/// requested rule is broken into one rule per group × resource × verb (× name) and per
/// URL × verb, and each piece must be covered by one owner rule.
pub fn uncovered(owner: &[PolicyRule], requested: &[PolicyRule]) -> Vec<PolicyRule> {
    requested
        .iter()
        .flat_map(breakdown)
        .filter(|sub| !owner.iter().any(|o| covers(o, sub)))
        .collect()
}

fn one(s: &str) -> Vec<String> {
    vec![s.to_string()]
}

fn breakdown(rule: &PolicyRule) -> Vec<PolicyRule> {
    let mut out = Vec::new();
    for group in &rule.api_groups {
        for resource in &rule.resources {
            for verb in &rule.verbs {
                let base = PolicyRule {
                    verbs: one(verb),
                    api_groups: one(group),
                    resources: one(resource),
                    ..Default::default()
                };
                if rule.resource_names.is_empty() {
                    out.push(base);
                } else {
                    out.extend(rule.resource_names.iter().map(|n| PolicyRule {
                        resource_names: one(n),
                        ..base.clone()
                    }));
                }
            }
        }
    }
    for url in &rule.non_resource_urls {
        for verb in &rule.verbs {
            out.push(PolicyRule {
                verbs: one(verb),
                non_resource_urls: one(url),
                ..Default::default()
            });
        }
    }
    out
}

fn has_all(set: &[String], items: &[String]) -> bool {
    items.iter().all(|i| has(set, i))
}

fn covers(owner: &PolicyRule, sub: &PolicyRule) -> bool {
    let verbs = has(&owner.verbs, "*") || has_all(&owner.verbs, &sub.verbs);
    let groups = has(&owner.api_groups, "*") || has_all(&owner.api_groups, &sub.api_groups);
    let resources = has(&owner.resources, "*")
        || sub.resources.iter().all(|r| {
            has(&owner.resources, r)
                || r.split_once('/')
                    .is_some_and(|(_, s)| has(&owner.resources, &format!("*/{s}")))
        });
    let urls = sub
        .non_resource_urls
        .iter()
        .all(|p| owner.non_resource_urls.iter().any(|o| url_covers(o, p)));
    let names = owner.resource_names.is_empty()
        || (!sub.resource_names.is_empty() && has_all(&owner.resource_names, &sub.resource_names));
    verbs && groups && resources && urls && names
}

fn url_covers(owner: &str, sub: &str) -> bool {
    owner == sub || owner.strip_suffix('*').is_some_and(|p| sub.starts_with(p))
}

/// Merge rules that differ only in their verbs (upstream's CompactRules, for messages).
pub fn compact(rules: &[PolicyRule]) -> Vec<PolicyRule> {
    let mut out: Vec<PolicyRule> = Vec::new();
    for r in rules {
        let same = out.iter_mut().find(|o| {
            o.api_groups == r.api_groups
                && o.resources == r.resources
                && o.resource_names == r.resource_names
                && o.non_resource_urls == r.non_resource_urls
        });
        match same {
            Some(o) => {
                for v in &r.verbs {
                    if !has(&o.verbs, v) {
                        o.verbs.push(v.clone());
                    }
                }
            }
            None => out.push(r.clone()),
        }
    }
    out
}

/// `{APIGroups:["apps"], Resources:["deployments"], Verbs:["get"]}` (upstream's
/// CompactString, Go `%q` of string slices).
pub fn compact_string(r: &PolicyRule) -> String {
    let q = |l: &[String]| {
        let items: Vec<String> = l.iter().map(|s| go_quote(s)).collect();
        format!("[{}]", items.join(" "))
    };
    let mut parts = Vec::new();
    for (label, list) in [
        ("APIGroups", &r.api_groups),
        ("Resources", &r.resources),
        ("NonResourceURLs", &r.non_resource_urls),
        ("ResourceNames", &r.resource_names),
        ("Verbs", &r.verbs),
    ] {
        if !list.is_empty() {
            parts.push(format!("{label}:{}", q(list)));
        }
    }
    format!("{{{}}}", parts.join(", "))
}
