//! Which webhooks and policies a request concerns, as upstream's `rules.Matcher`,
//! `ShouldCallHook` and the policy matcher: rules (operations, groups, versions, resources
//! with subresources, scope, and for policies resource names), then with `matchPolicy:
//! Equivalent` the other served versions of the same resource. Selectors need the
//! namespace and the objects, and are checked by the caller.

use super::config::Rule;
use r8s_api::catalog::{self, ResourceInfo};

/// An admission operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    Create,
    Update,
    Delete,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
        }
    }
}

/// What a rule is matched against.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Request<'a> {
    pub op: Operation,
    pub info: &'static ResourceInfo,
    /// `""` for the main resource.
    pub subresource: &'a str,
    /// The request's namespace: `""` for cluster-scoped objects; for a Namespace itself
    /// its name (except on create), as upstream's request info has it.
    pub namespace: &'a str,
    /// The object's name (policies' `resourceNames`).
    pub name: &'a str,
}

impl Request<'_> {
    pub fn is_namespace_resource(&self) -> bool {
        is_namespaces(self.info)
    }
}

pub(crate) fn is_namespaces(info: &ResourceInfo) -> bool {
    info.group.is_empty() && info.plural == "namespaces"
}

/// Upstream never sends the admission configuration objects themselves to webhooks
/// (`IsExemptAdmissionConfigurationResource`), so a broken webhook can always be removed.
pub(crate) fn exempt(info: &ResourceInfo) -> bool {
    info.group == "admissionregistration.k8s.io"
}

impl Rule {
    /// Upstream's `Matcher.Matches` for a request addressed as `group`/`version`/`resource`.
    pub fn matches(&self, req: &Request<'_>, group: &str, version: &str, resource: &str) -> bool {
        self.matches_except_version(req, group, resource)
            && any_or_equal(&self.api_versions, version)
    }

    fn matches_except_version(&self, req: &Request<'_>, group: &str, resource: &str) -> bool {
        self.scope_matches(req)
            && self.operation_matches(req.op)
            && any_or_equal(&self.api_groups, group)
            && self.resource_matches(resource, req.subresource)
            && self.name_matches(req.name)
    }

    /// An empty `resourceNames` list names everything.
    fn name_matches(&self, name: &str) -> bool {
        self.resource_names.is_empty() || self.resource_names.iter().any(|n| n == name)
    }

    fn scope_matches(&self, req: &Request<'_>) -> bool {
        match self.scope.as_str() {
            "*" | "" => true,
            "Namespaced" => !req.is_namespace_resource() && !req.namespace.is_empty(),
            "Cluster" => req.is_namespace_resource() || req.namespace.is_empty(),
            _ => false,
        }
    }

    fn operation_matches(&self, op: Operation) -> bool {
        self.operations.iter().any(|o| o == "*" || o == op.as_str())
    }

    /// `pods`, `pods/status`, `pods/*`, `*`, `*/status`, `*/*`: `*` alone names every
    /// main resource and no subresource, as upstream.
    fn resource_matches(&self, resource: &str, subresource: &str) -> bool {
        self.resources.iter().any(|r| {
            let (res, sub) = r.split_once('/').unwrap_or((r.as_str(), ""));
            (res == "*" || res == resource) && (sub == "*" || sub == subresource)
        })
    }
}

fn any_or_equal(list: &[String], value: &str) -> bool {
    list.iter().any(|v| v == "*" || v == value)
}

/// The resource version a webhook is called (a policy evaluated) with when one of `rules`
/// matches: the request's own, or under `matchPolicy: Equivalent` (`equivalent`) another
/// served version of the same stored resource (the object is then converted to it, as
/// upstream converts to the matched version).
pub(crate) fn invocation(
    rules: &[Rule],
    equivalent: bool,
    req: &Request<'_>,
) -> Option<&'static ResourceInfo> {
    let info = req.info;
    if rules
        .iter()
        .any(|r| r.matches(req, info.group, info.version, info.plural))
    {
        return Some(info);
    }
    if !equivalent {
        return None;
    }
    let legacy = legacy_groups(info);
    // Cheap test first: equivalents share the resource name, only group/version differ.
    let candidates: Vec<&Rule> = rules
        .iter()
        .filter(|r| {
            r.scope_matches(req)
                && r.operation_matches(req.op)
                && r.resource_matches(info.plural, req.subresource)
                && r.name_matches(req.name)
        })
        .collect();
    if candidates.is_empty() {
        return None;
    }
    let equivalents = equivalents(info, req.subresource);
    // Earlier rules first, as upstream.
    for rule in candidates {
        if let Some(eq) = equivalents
            .iter()
            .find(|eq| rule.matches(req, eq.group, eq.version, eq.plural))
        {
            return Some(eq);
        }
        // Best effort beyond upstream: a version r8s does not serve (apps/v1beta1,
        // extensions/v1beta1 deployments) cannot be converted to, so the webhook gets the
        // request's version; upstream would not call a webhook for a version it does not
        // serve.
        if std::iter::once(info.group)
            .chain(legacy.iter().copied())
            .any(|g| rule.matches_except_version(req, g, info.plural))
        {
            return Some(info);
        }
    }
    None
}

/// Other served versions storing into the same place (autoscaling/v1 and v2 HPAs, core
/// and events.k8s.io Events), that serve `subresource` too.
fn equivalents(info: &'static ResourceInfo, subresource: &str) -> Vec<&'static ResourceInfo> {
    let same = |r: &ResourceInfo| {
        r.plural == info.plural
            && r.storage_group == info.storage_group
            && (r.group, r.version) != (info.group, info.version)
            && (subresource.is_empty() || r.subresource(subresource).is_some())
    };
    catalog::all()
        .iter()
        .filter(|r| same(r))
        .chain(catalog::custom::all().into_iter().filter(|r| same(r)))
        .collect()
}

/// Groups that once served the same resource (upstream's equivalent resource mapper knew
/// them while they were served).
fn legacy_groups(info: &ResourceInfo) -> &'static [&'static str] {
    match (info.group, info.plural) {
        ("apps", "deployments" | "daemonsets" | "replicasets")
        | ("networking.k8s.io", "ingresses" | "networkpolicies") => &["extensions"],
        _ => &[],
    }
}

/// `(group, version, kind)` of the object a webhook is sent for `target`.
pub(crate) fn kind_of(
    target: &'static ResourceInfo,
    subresource: &str,
) -> (&'static str, &'static str, &'static str) {
    match target.subresource(subresource) {
        Some(s) if !subresource.is_empty() => (s.group, s.version, s.kind),
        _ => (target.group, target.version, target.kind),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::config::{HookKind, hooks_of};
    use super::*;
    use serde_json::{Value, json};

    fn info(group: &str, version: &str, plural: &str) -> &'static ResourceInfo {
        catalog::find(group, version, plural).unwrap()
    }

    fn hook(rules: Value, policy: &str) -> std::sync::Arc<super::super::config::Hook> {
        hooks_of(
            HookKind::Validating,
            &json!({"webhooks": [{"name": "h", "rules": rules, "matchPolicy": policy,
                "clientConfig": {"url": "https://127.0.0.1/"}}]}),
        )
        .pop()
        .unwrap()
    }

    fn req(
        op: Operation,
        info: &'static ResourceInfo,
        sub: &'static str,
        ns: &'static str,
    ) -> Request<'static> {
        Request {
            op,
            info,
            subresource: sub,
            namespace: ns,
            name: "n",
        }
    }

    fn invoke(
        hook: &super::super::config::Hook,
        req: &Request<'_>,
    ) -> Option<&'static ResourceInfo> {
        invocation(&hook.rules, hook.equivalent, req)
    }

    fn rule(ops: &[&str], groups: &[&str], versions: &[&str], resources: &[&str]) -> Value {
        json!({"operations": ops, "apiGroups": groups, "apiVersions": versions,
               "resources": resources})
    }

    #[test]
    fn operations_groups_versions_and_resources() {
        let cm = info("", "v1", "configmaps");
        let h = hook(
            json!([rule(&["CREATE"], &[""], &["v1"], &["configmaps"])]),
            "Exact",
        );
        assert!(invoke(&h, &req(Operation::Create, cm, "", "d")).is_some());
        assert!(invoke(&h, &req(Operation::Update, cm, "", "d")).is_none());
        let secrets = info("", "v1", "secrets");
        assert!(invoke(&h, &req(Operation::Create, secrets, "", "d")).is_none());

        let all = hook(json!([rule(&["*"], &["*"], &["*"], &["*"])]), "Exact");
        assert!(invoke(&all, &req(Operation::Delete, secrets, "", "d")).is_some());
        let deploy = info("apps", "v1", "deployments");
        assert!(invoke(&all, &req(Operation::Update, deploy, "", "d")).is_some());
        // `*` is every main resource, but no subresource.
        assert!(invoke(&all, &req(Operation::Update, deploy, "status", "d")).is_none());

        let star_star = hook(json!([rule(&["*"], &["*"], &["*"], &["*/*"])]), "Exact");
        assert!(invoke(&star_star, &req(Operation::Update, deploy, "status", "d")).is_some());
        assert!(invoke(&star_star, &req(Operation::Update, deploy, "", "d")).is_some());

        let pods = info("", "v1", "pods");
        let status = hook(
            json!([rule(&["UPDATE"], &[""], &["v1"], &["pods/status"])]),
            "Exact",
        );
        assert!(invoke(&status, &req(Operation::Update, pods, "status", "d")).is_some());
        assert!(invoke(&status, &req(Operation::Update, pods, "", "d")).is_none());
        let any_sub = hook(
            json!([rule(&["UPDATE"], &[""], &["v1"], &["*/status"])]),
            "Exact",
        );
        assert!(invoke(&any_sub, &req(Operation::Update, pods, "status", "d")).is_some());
        assert!(
            invoke(
                &any_sub,
                &req(Operation::Update, pods, "ephemeralcontainers", "d")
            )
            .is_none()
        );
    }

    #[test]
    fn scopes() {
        let mut r = rule(&["*"], &["*"], &["*"], &["*"]);
        r["scope"] = json!("Namespaced");
        let namespaced = hook(json!([r.clone()]), "Exact");
        r["scope"] = json!("Cluster");
        let cluster = hook(json!([r]), "Exact");
        let cm = info("", "v1", "configmaps");
        let nodes = info("", "v1", "nodes");
        let ns = info("", "v1", "namespaces");
        assert!(invoke(&namespaced, &req(Operation::Create, cm, "", "d")).is_some());
        assert!(invoke(&namespaced, &req(Operation::Create, nodes, "", "")).is_none());
        // A Namespace is cluster-scoped, though its requests carry its name as namespace.
        assert!(invoke(&namespaced, &req(Operation::Update, ns, "", "x")).is_none());
        assert!(invoke(&cluster, &req(Operation::Update, ns, "", "x")).is_some());
        assert!(invoke(&cluster, &req(Operation::Create, nodes, "", "")).is_some());
        assert!(invoke(&cluster, &req(Operation::Create, cm, "", "d")).is_none());
    }

    #[test]
    fn equivalent_versions_match_unless_exact() {
        let v2 = info("autoscaling", "v2", "horizontalpodautoscalers");
        let rules = json!([rule(
            &["CREATE"],
            &["autoscaling"],
            &["v1"],
            &["horizontalpodautoscalers"]
        )]);
        let exact = hook(rules.clone(), "Exact");
        assert!(invoke(&exact, &req(Operation::Create, v2, "", "d")).is_none());
        let equivalent = hook(rules, "Equivalent");
        let target = invoke(&equivalent, &req(Operation::Create, v2, "", "d")).unwrap();
        assert_eq!((target.group, target.version), ("autoscaling", "v1"));
        assert_eq!(
            kind_of(target, ""),
            ("autoscaling", "v1", "HorizontalPodAutoscaler")
        );

        // Core Events and events.k8s.io Events are one resource.
        let events = info("", "v1", "events");
        let h = hook(
            json!([rule(&["CREATE"], &["events.k8s.io"], &["v1"], &["events"])]),
            "",
        );
        let target = invoke(&h, &req(Operation::Create, events, "", "d")).unwrap();
        assert_eq!(target.group, "events.k8s.io");

        // Unserved versions of the same resource: best effort, the request's version.
        let deploy = info("apps", "v1", "deployments");
        for group in ["apps", "extensions"] {
            let h = hook(
                json!([rule(&["CREATE"], &[group], &["v1beta1"], &["deployments"])]),
                "",
            );
            let target = invoke(&h, &req(Operation::Create, deploy, "", "d")).unwrap();
            assert_eq!((target.group, target.version), ("apps", "v1"), "{group}");
            let exact = hook(
                json!([rule(&["CREATE"], &[group], &["v1beta1"], &["deployments"])]),
                "Exact",
            );
            assert!(invoke(&exact, &req(Operation::Create, deploy, "", "d")).is_none());
        }
        let other = hook(
            json!([rule(&["CREATE"], &["batch"], &["v1"], &["deployments"])]),
            "",
        );
        assert!(invoke(&other, &req(Operation::Create, deploy, "", "d")).is_none());
    }

    #[test]
    fn subresource_kinds_and_exemptions() {
        let deploy = info("apps", "v1", "deployments");
        assert_eq!(kind_of(deploy, ""), ("apps", "v1", "Deployment"));
        assert_eq!(kind_of(deploy, "scale"), ("autoscaling", "v1", "Scale"));
        assert!(exempt(info(
            "admissionregistration.k8s.io",
            "v1",
            "mutatingwebhookconfigurations"
        )));
        assert!(exempt(info(
            "admissionregistration.k8s.io",
            "v1",
            "validatingwebhookconfigurations"
        )));
        assert!(!exempt(deploy));
    }
}
