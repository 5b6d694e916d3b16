//! Rule matching, subjects, aggregation, request attributes and messages.

use super::policy::{Kind, Policy};
use super::rules::{self, PolicyRule, Subject};
use super::*;
use serde_json::{Value, json};

fn user(name: &str, groups: &[&str]) -> UserInfo {
    UserInfo::new(name, groups.iter().map(|g| g.to_string()).collect())
}

fn res(verb: &str, group: &str, resource: &str, sub: &str, ns: &str, name: &str) -> Attributes {
    Attributes {
        verb: verb.into(),
        resource_request: true,
        api_group: group.into(),
        resource: resource.into(),
        subresource: sub.into(),
        namespace: ns.into(),
        name: name.into(),
        ..Attributes::for_user(&user("jane", &["system:authenticated"]))
    }
}

fn url(verb: &str, path: &str) -> Attributes {
    Attributes {
        verb: verb.into(),
        path: path.into(),
        ..Attributes::for_user(&user("jane", &[]))
    }
}

fn rule(v: Value) -> PolicyRule {
    serde_json::from_value(v).expect("rule")
}

#[test]
fn verbs_groups_and_resources() {
    let r = rule(json!({"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}));
    assert!(rules::rule_allows(
        &res("get", "", "pods", "", "ns", "p"),
        &r
    ));
    assert!(rules::rule_allows(
        &res("list", "", "pods", "", "ns", ""),
        &r
    ));
    assert!(!rules::rule_allows(
        &res("watch", "", "pods", "", "ns", ""),
        &r
    ));
    assert!(!rules::rule_allows(
        &res("get", "apps", "pods", "", "ns", ""),
        &r
    ));
    assert!(!rules::rule_allows(
        &res("get", "", "secrets", "", "ns", ""),
        &r
    ));
    // A rule on pods does not reach their subresources.
    assert!(!rules::rule_allows(
        &res("get", "", "pods", "log", "ns", "p"),
        &r
    ));
    let all = rule(json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}));
    for a in [
        res("deletecollection", "apps", "deployments", "", "x", ""),
        res("get", "", "pods", "log", "x", "p"),
        res("impersonate", "", "users", "", "", "bob"),
    ] {
        assert!(rules::rule_allows(&a, &all), "{a:?}");
    }
    // Non-resource requests need nonResourceURLs.
    assert!(!rules::rule_allows(&url("get", "/api"), &all));
}

#[test]
fn subresources() {
    let log = rule(json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods/log"]}));
    assert!(rules::rule_allows(
        &res("get", "", "pods", "log", "ns", "p"),
        &log
    ));
    assert!(!rules::rule_allows(
        &res("get", "", "pods", "", "ns", "p"),
        &log
    ));
    assert!(!rules::rule_allows(
        &res("get", "", "pods", "exec", "ns", "p"),
        &log
    ));
    let any_status =
        rule(json!({"verbs": ["update"], "apiGroups": ["*"], "resources": ["*/status"]}));
    assert!(rules::rule_allows(
        &res("update", "apps", "deployments", "status", "n", "d"),
        &any_status
    ));
    assert!(!rules::rule_allows(
        &res("update", "apps", "deployments", "", "n", "d"),
        &any_status
    ));
    assert!(!rules::rule_allows(
        &res("update", "apps", "deployments", "scale", "n", "d"),
        &any_status
    ));
}

#[test]
fn resource_names() {
    let r = rule(
        json!({"verbs": ["get", "list"], "apiGroups": [""], "resources": ["configmaps"],
                        "resourceNames": ["a", "b"]}),
    );
    assert!(rules::rule_allows(
        &res("get", "", "configmaps", "", "n", "a"),
        &r
    ));
    assert!(!rules::rule_allows(
        &res("get", "", "configmaps", "", "n", "c"),
        &r
    ));
    // A list without a name is not limited to the names: refused.
    assert!(!rules::rule_allows(
        &res("list", "", "configmaps", "", "n", ""),
        &r
    ));
}

#[test]
fn non_resource_urls() {
    let r = rule(json!({"verbs": ["get"], "nonResourceURLs": ["/healthz", "/apis/*"]}));
    assert!(rules::rule_allows(&url("get", "/healthz"), &r));
    assert!(!rules::rule_allows(&url("get", "/healthz/etcd"), &r));
    assert!(rules::rule_allows(&url("get", "/apis/apps/v1"), &r));
    assert!(rules::rule_allows(&url("get", "/apis/"), &r));
    assert!(!rules::rule_allows(&url("get", "/apis"), &r));
    assert!(!rules::rule_allows(&url("post", "/healthz"), &r));
    let star = rule(json!({"verbs": ["*"], "nonResourceURLs": ["*"]}));
    assert!(rules::rule_allows(&url("delete", "/anything"), &star));
    // nonResourceURLs never grant resource requests.
    assert!(!rules::rule_allows(
        &res("get", "", "pods", "", "", ""),
        &star
    ));
}

#[test]
fn subjects() {
    let s = |kind: &str, name: &str, ns: &str| Subject {
        kind: kind.into(),
        name: name.into(),
        namespace: ns.into(),
        ..Default::default()
    };
    let groups = vec!["dev".to_string()];
    assert!(rules::applies_to(
        &s("User", "jane", ""),
        "jane",
        &groups,
        ""
    ));
    assert!(!rules::applies_to(
        &s("User", "bob", ""),
        "jane",
        &groups,
        ""
    ));
    assert!(rules::applies_to(
        &s("Group", "dev", ""),
        "jane",
        &groups,
        ""
    ));
    let sa = "system:serviceaccount:team:builder";
    assert!(rules::applies_to(
        &s("ServiceAccount", "builder", "team"),
        sa,
        &[],
        ""
    ));
    // Without a namespace the binding's is used; a cluster binding has none.
    assert!(rules::applies_to(
        &s("ServiceAccount", "builder", ""),
        sa,
        &[],
        "team"
    ));
    assert!(!rules::applies_to(
        &s("ServiceAccount", "builder", ""),
        sa,
        &[],
        ""
    ));
    assert!(!rules::applies_to(
        &s("ServiceAccount", "builder", "other"),
        sa,
        &[],
        ""
    ));
}

fn policy() -> Policy {
    let mut p = Policy::default();
    for cr in crate::bootstrap_rbac::cluster_roles() {
        p.upsert(Kind::ClusterRole, &cr);
    }
    for b in crate::bootstrap_rbac::cluster_role_bindings() {
        p.upsert(Kind::ClusterRoleBinding, &b);
    }
    p.upsert(
        Kind::Role,
        &json!({"metadata": {"name": "pod-reader", "namespace": "default"},
                "rules": [{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}]}),
    );
    p.upsert(
        Kind::RoleBinding,
        &json!({"metadata": {"name": "jane-reads", "namespace": "default"},
                "roleRef": {"kind": "Role", "name": "pod-reader", "apiGroup": "rbac.authorization.k8s.io"},
                "subjects": [{"kind": "User", "name": "jane"}]}),
    );
    p
}

#[test]
fn bindings_and_namespaces() {
    let mut p = policy();
    let list = res("list", "", "pods", "", "default", "");
    let d = p.authorize(&list);
    assert!(d.allowed);
    assert_eq!(
        d.reason,
        r#"RBAC: allowed by RoleBinding "jane-reads/default" of Role "pod-reader" to User "jane""#
    );
    assert!(
        !p.authorize(&res("list", "", "pods", "", "other", ""))
            .allowed
    );
    assert!(!p.authorize(&res("list", "", "pods", "", "", "")).allowed);
    assert!(
        !p.authorize(&res("list", "", "secrets", "", "default", ""))
            .allowed
    );
    // Discovery and self reviews come from the bindings to system:authenticated.
    let mut disc = url("get", "/apis/apps/v1");
    disc.groups = vec!["system:authenticated".into()];
    assert!(p.authorize(&disc).allowed);
    assert!(
        p.authorize(&res(
            "create",
            "authorization.k8s.io",
            "selfsubjectaccessreviews",
            "",
            "",
            ""
        ))
        .allowed
    );
    p.remove(
        Kind::RoleBinding,
        &json!({"metadata": {"name": "jane-reads", "namespace": "default"}}),
    );
    assert!(!p.authorize(&list).allowed);
    // A binding to a missing role says so.
    p.upsert(
        Kind::RoleBinding,
        &json!({"metadata": {"name": "b", "namespace": "default"},
                "roleRef": {"kind": "Role", "name": "nope"},
                "subjects": [{"kind": "User", "name": "jane"}]}),
    );
    let d = p.authorize(&list);
    assert!(!d.allowed);
    assert_eq!(
        d.reason,
        r#"RBAC: role.rbac.authorization.k8s.io "nope" not found"#
    );
}

#[test]
fn service_accounts_read_issuer_discovery() {
    let p = policy();
    let as_user = |path: &str, name: &str, groups: &[&str]| {
        let mut a = url("get", path);
        a.user = name.into();
        a.groups = groups.iter().map(|g| g.to_string()).collect();
        p.authorize(&a).allowed
    };
    let sa = [
        "system:serviceaccounts",
        "system:serviceaccounts:default",
        "system:authenticated",
    ];
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/openid-configuration/",
        "/openid/v1/jwks",
        "/openid/v1/jwks/",
    ] {
        assert!(
            as_user(path, "system:serviceaccount:default:default", &sa),
            "{path}"
        );
        // Other users and anonymous requests are not granted them, as upstream.
        assert!(!as_user(path, "jane", &["system:authenticated"]), "{path}");
        assert!(
            !as_user(path, "system:anonymous", &["system:unauthenticated"]),
            "{path}"
        );
    }
    let sa_user = "system:serviceaccount:default:default";
    assert!(!as_user("/openid/v1/jwks/x", sa_user, &sa));
    let mut post = url("post", "/openid/v1/jwks");
    post.user = sa_user.into();
    post.groups = sa.iter().map(|g| g.to_string()).collect();
    assert!(!p.authorize(&post).allowed);
}

#[test]
fn aggregated_cluster_roles() {
    let mut p = policy();
    let bind = |p: &mut Policy, role: &str| {
        p.upsert(
            Kind::RoleBinding,
            &json!({"metadata": {"name": "x", "namespace": "team"},
                    "roleRef": {"kind": "ClusterRole", "name": role},
                    "subjects": [{"kind": "User", "name": "jane"}]}),
        )
    };
    bind(&mut p, "view");
    assert!(
        p.authorize(&res("list", "apps", "deployments", "", "team", ""))
            .allowed
    );
    assert!(
        p.authorize(&res("get", "", "pods", "log", "team", "p"))
            .allowed
    );
    assert!(
        !p.authorize(&res("get", "", "secrets", "", "team", "s"))
            .allowed
    );
    assert!(
        !p.authorize(&res("create", "", "pods", "", "team", ""))
            .allowed
    );
    bind(&mut p, "edit");
    // edit = aggregate-to-edit + view (labelled aggregate-to-edit).
    assert!(
        p.authorize(&res("create", "", "pods", "", "team", ""))
            .allowed
    );
    assert!(
        p.authorize(&res("list", "apps", "deployments", "", "team", ""))
            .allowed
    );
    assert!(
        !p.authorize(&res(
            "create",
            "rbac.authorization.k8s.io",
            "roles",
            "",
            "team",
            ""
        ))
        .allowed
    );
    bind(&mut p, "admin");
    // admin = aggregate-to-admin + edit (+ view, transitively).
    for a in [
        res(
            "create",
            "rbac.authorization.k8s.io",
            "roles",
            "",
            "team",
            "",
        ),
        res("delete", "", "pods", "", "team", "p"),
        res("watch", "batch", "jobs", "", "team", ""),
    ] {
        assert!(p.authorize(&a).allowed, "{a:?}");
    }
    // A new role carrying the label joins the aggregate at once.
    p.upsert(
        Kind::ClusterRole,
        &json!({"metadata": {"name": "widgets", "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}},
                "rules": [{"verbs": ["get"], "apiGroups": ["example.com"], "resources": ["widgets"]}]}),
    );
    assert!(
        p.authorize(&res("get", "example.com", "widgets", "", "team", "w"))
            .allowed
    );
    // Aggregation cycles terminate.
    p.upsert(
        Kind::ClusterRole,
        &json!({"metadata": {"name": "loop", "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}},
                "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"rbac.authorization.k8s.io/aggregate-to-admin": "true"}}]}}),
    );
    assert!(
        p.authorize(&res("get", "example.com", "widgets", "", "team", "w"))
            .allowed
    );
}

#[test]
fn rules_cover_for_escalation() {
    let held = vec![
        rule(
            json!({"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods", "*/status"]}),
        ),
        rule(json!({"verbs": ["get"], "nonResourceURLs": ["/api/*"]})),
        rule(
            json!({"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"], "resourceNames": ["s1"]}),
        ),
    ];
    let want = |v: Value| rules::uncovered(&held, &[rule(v)]);
    assert!(want(json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]})).is_empty());
    assert!(
        want(json!({"verbs": ["list"], "apiGroups": [""], "resources": ["pods/status"]}))
            .is_empty()
    );
    assert!(want(json!({"verbs": ["get"], "nonResourceURLs": ["/api/v1"]})).is_empty());
    assert!(want(json!({"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"], "resourceNames": ["s1"]})).is_empty());
    // Unnamed secrets are more than one named secret.
    assert_eq!(
        want(json!({"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"]})).len(),
        1
    );
    // `*` verbs are only covered by `*`.
    let missing = want(json!({"verbs": ["*", "get"], "apiGroups": [""], "resources": ["pods"]}));
    assert_eq!(missing.len(), 1);
    assert_eq!(
        rules::compact_string(&missing[0]),
        r#"{APIGroups:[""], Resources:["pods"], Verbs:["*"]}"#
    );
    let missing =
        want(json!({"verbs": ["delete", "create"], "apiGroups": [""], "resources": ["pods"]}));
    assert_eq!(
        rules::compact(&missing)
            .iter()
            .map(rules::compact_string)
            .collect::<Vec<_>>(),
        [r#"{APIGroups:[""], Resources:["pods"], Verbs:["delete" "create"]}"#]
    );
}

#[test]
fn request_attributes_as_upstream() {
    let u = user("jane", &["system:authenticated"]);
    let a = request_attributes(&u, &Method::GET, "/api/v1/namespaces/default/pods", None);
    assert_eq!(
        (a.verb.as_str(), a.namespace.as_str(), a.resource.as_str()),
        ("list", "default", "pods")
    );
    let a = request_attributes(&u, &Method::GET, "/api/v1/pods", Some("watch=1"));
    assert_eq!((a.verb.as_str(), a.namespace.as_str()), ("watch", ""));
    let a = request_attributes(&u, &Method::GET, "/api/v1/pods", Some("watch=false"));
    assert_eq!(a.verb, "list");
    let a = request_attributes(
        &u,
        &Method::GET,
        "/api/v1/namespaces/n/configmaps",
        Some("fieldSelector=metadata.name%3Dcm1&watch=true"),
    );
    assert_eq!((a.verb.as_str(), a.name.as_str()), ("watch", "cm1"));
    let a = request_attributes(&u, &Method::GET, "/api/v1/watch/namespaces/n/pods/p", None);
    assert_eq!((a.verb.as_str(), a.name.as_str()), ("watch", "p"));
    let a = request_attributes(
        &u,
        &Method::DELETE,
        "/apis/apps/v1/namespaces/n/deployments",
        None,
    );
    assert_eq!(
        (a.verb.as_str(), a.api_group.as_str()),
        ("deletecollection", "apps")
    );
    let a = request_attributes(
        &u,
        &Method::POST,
        "/api/v1/namespaces/n/pods/p/eviction",
        None,
    );
    assert_eq!(
        (a.verb.as_str(), a.subresource.as_str(), a.name.as_str()),
        ("create", "eviction", "p")
    );
    let a = request_attributes(
        &u,
        &Method::GET,
        "/api/v1/namespaces/n/pods/p/proxy/a/b",
        None,
    );
    assert_eq!(a.subresource, "proxy");
    // A namespace is inside its own scope.
    let a = request_attributes(&u, &Method::GET, "/api/v1/namespaces/team", None);
    assert_eq!(
        (a.verb.as_str(), a.namespace.as_str(), a.name.as_str()),
        ("get", "team", "team")
    );
    let a = request_attributes(&u, &Method::GET, "/apis/apps/v1", None);
    assert!(!a.resource_request);
    assert_eq!((a.verb.as_str(), a.path.as_str()), ("get", "/apis/apps/v1"));
}

#[test]
fn forbidden_messages() {
    let e = forbidden(&res("list", "", "pods", "", "default", ""), "");
    assert_eq!(e.code, StatusCode::FORBIDDEN);
    assert_eq!(
        e.message,
        r#"pods is forbidden: User "jane" cannot list resource "pods" in API group "" in the namespace "default""#
    );
    assert_eq!(e.details, Some(json!({"kind": "pods"})));
    let e = forbidden(&res("get", "apps", "deployments", "scale", "", "web"), "");
    assert_eq!(
        e.message,
        r#"deployments.apps "web" is forbidden: User "jane" cannot get resource "deployments/scale" in API group "apps" at the cluster scope"#
    );
    let e = forbidden(&url("get", "/metrics"), "");
    assert_eq!(
        e.message,
        r#"forbidden: User "jane" cannot get path "/metrics""#
    );
    let e = forbidden(&res("get", "", "pods", "", "d", ""), "RBAC: x");
    assert!(e.message.ends_with(": RBAC: x"), "{}", e.message);
}

#[tokio::test]
async fn cache_follows_the_store_within_a_second() {
    use crate::registry::{Allocators, DeleteOptions, WriteOptions};
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().expect("tempdir");
    let store = r8s_store::open("", &dir.path().join("state.db"))
        .await
        .expect("store");
    let alloc = Allocators::new(store.clone(), "10.43.0.0/16").expect("alloc");
    let registry = Registry::new(store, alloc);
    let info =
        |group: &str, plural: &str| r8s_api::catalog::find(group, "v1", plural).expect("info");
    let rbac = "rbac.authorization.k8s.io";
    let opts = WriteOptions::default();
    registry
        .create(
            info("", "namespaces"),
            None,
            json!({"metadata": {"name": "default"}}),
            &opts,
        )
        .await
        .expect("namespace");
    let authz = Authorizer::start(registry.clone());
    let list = res("list", "", "pods", "", "default", "");
    assert!(!authz.authorize(&list).await.allowed);
    let role = json!({"metadata": {"name": "r", "namespace": "default"},
                      "rules": [{"verbs": ["list"], "apiGroups": [""], "resources": ["pods"]}]});
    let binding = json!({"metadata": {"name": "b", "namespace": "default"},
                         "roleRef": {"apiGroup": rbac, "kind": "Role", "name": "r"},
                         "subjects": [{"kind": "User", "name": "jane", "apiGroup": rbac}]});
    registry
        .create(info(rbac, "roles"), Some("default"), role, &opts)
        .await
        .expect("role");
    registry
        .create(info(rbac, "rolebindings"), Some("default"), binding, &opts)
        .await
        .expect("binding");
    let until = |want: bool| {
        let authz = authz.clone();
        let list = list.clone();
        async move {
            let started = Instant::now();
            while authz.authorize(&list).await.allowed != want {
                assert!(started.elapsed() < Duration::from_secs(1), "not within 1s");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    until(true).await;
    registry
        .delete(
            info(rbac, "rolebindings"),
            Some("default"),
            "b",
            &DeleteOptions::default(),
        )
        .await
        .expect("delete");
    until(false).await;
}
