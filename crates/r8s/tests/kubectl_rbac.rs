//! e2e: authorization with the real kubectl — RBAC enforcement, impersonation
//! (`--as`), access reviews (`auth can-i`, `auth whoami`) and service-account tokens
//! (`create token`, `--token`).

mod common;
use common::Server;
use std::path::PathBuf;
use std::process::Output;
use std::time::{Duration, Instant};

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Retry `f` until it holds: RBAC changes reach the authorizer through a watch, within a
/// second; allow a little more on a loaded machine.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "not within 20s: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `kubectl auth can-i ARGS` → answered yes?
fn can_i(s: &Server, args: &[&str]) -> bool {
    let mut all = vec!["auth", "can-i"];
    all.extend_from_slice(args);
    let out = s.kubectl(&all);
    let answer = stdout(&out);
    assert!(
        matches!(answer.trim(), "yes" | "no"),
        "can-i {args:?}: {answer} {}",
        stderr(&out)
    );
    out.status.success() && answer.trim() == "yes"
}

/// A kubeconfig naming the server and its CA but no user, for `kubectl --token`.
fn anonymous_kubeconfig(s: &Server) -> PathBuf {
    let admin = std::fs::read_to_string(&s.kubeconfig).expect("kubeconfig");
    let field = |key: &str| {
        admin
            .lines()
            .find_map(|l| l.trim().strip_prefix(key))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| panic!("{key} missing in kubeconfig"))
    };
    let yaml = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {}\n    certificate-authority-data: {}\nusers:\n- name: u\n  user: {{}}\ncontexts:\n- name: x\n  context:\n    cluster: c\n    user: u\n    namespace: default\ncurrent-context: x\n",
        field("server:"),
        field("certificate-authority-data:")
    );
    let path = s.data_dir().join("token-kubeconfig.yaml");
    std::fs::write(&path, yaml).expect("write kubeconfig");
    path
}

/// kubectl with only a bearer token.
fn with_token(s: &Server, kubeconfig: &PathBuf, token: &str, args: &[&str]) -> Output {
    std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg(format!("--token={token}"))
        .args(args)
        .env_remove("KUBECONFIG")
        .env("HOME", s.data_dir())
        .output()
        .expect("kubectl")
}

#[test]
fn roles_bindings_impersonation_and_can_i() {
    let s = Server::start();
    // Nothing is granted to a plain user.
    assert!(!can_i(&s, &["list", "pods", "--as", "jane"]));
    let err = s.fails(&["get", "pods", "--as", "jane"]);
    assert!(
        err.contains(r#"pods is forbidden: User "jane" cannot list resource "pods" in API group "" in the namespace "default""#),
        "{err}"
    );
    // The admin (system:masters) may do anything.
    assert!(can_i(&s, &["create", "clusterroles"]));
    assert!(can_i(&s, &["*", "*"]));

    s.ok(&[
        "create",
        "role",
        "pod-reader",
        "--verb=get,list",
        "--resource=pods",
    ]);
    s.ok(&[
        "create",
        "rolebinding",
        "jane-reads-pods",
        "--role=pod-reader",
        "--user=jane",
    ]);
    eventually("jane may list pods", || {
        can_i(&s, &["list", "pods", "--as", "jane"])
    });
    assert!(!can_i(&s, &["delete", "pods", "--as", "jane"]));
    assert!(!can_i(
        &s,
        &["list", "pods", "--as", "jane", "-n", "kube-system"]
    ));
    s.ok(&["create", "configmap", "c1", "--from-literal=a=b"]);
    s.ok(&["run", "p1", "--image=busybox"]);
    let pods = s.ok(&["get", "pods", "--as", "jane"]);
    assert!(pods.contains("p1"), "{pods}");
    s.ok(&["get", "pod", "p1", "--as", "jane"]);
    let err = s.fails(&["get", "secrets", "--as", "jane"]);
    assert!(
        err.contains(r#"Error from server (Forbidden): secrets is forbidden: User "jane" cannot list resource "secrets" in API group "" in the namespace "default""#),
        "{err}"
    );
    let err = s.fails(&["get", "configmap", "c1", "--as", "jane"]);
    assert!(
        err.contains(r#"configmaps "c1" is forbidden: User "jane" cannot get resource "configmaps" in API group "" in the namespace "default""#),
        "{err}"
    );
    let err = s.fails(&["get", "pods", "-n", "kube-system", "--as", "jane"]);
    assert!(err.contains(r#"in the namespace "kube-system""#), "{err}");
    let err = s.fails(&["get", "nodes", "--as", "jane"]);
    assert!(
        err.contains(r#"nodes is forbidden: User "jane" cannot list resource "nodes" in API group "" at the cluster scope"#),
        "{err}"
    );
    let err = s.fails(&["delete", "pod", "p1", "--as", "jane"]);
    assert!(err.contains("cannot delete resource"), "{err}");

    // A group from --as-group is honoured.
    s.ok(&[
        "create",
        "clusterrolebinding",
        "devs-view",
        "--clusterrole=view",
        "--group=dev",
    ]);
    eventually("group dev may list deployments", || {
        can_i(
            &s,
            &[
                "list",
                "deployments",
                "--as",
                "jane",
                "--as-group",
                "dev",
                "-A",
            ],
        )
    });
    assert!(!can_i(&s, &["list", "deployments", "--as", "jane", "-A"]));

    // whoami, for the admin and for an impersonated user.
    let who = s.ok(&["auth", "whoami"]);
    assert!(
        who.contains("system:admin") && who.contains("system:masters"),
        "{who}"
    );
    let who = s.ok(&["auth", "whoami", "--as", "jane", "--as-group", "dev"]);
    assert!(
        who.contains("jane") && who.contains("dev") && who.contains("system:authenticated"),
        "{who}"
    );

    // can-i --list shows the rules.
    let list = s.ok(&["auth", "can-i", "--list", "--as", "jane"]);
    let pods_line = list
        .lines()
        .find(|l| l.starts_with("pods "))
        .unwrap_or_else(|| panic!("no pods rule in:\n{list}"));
    assert!(pods_line.contains("[get list]"), "{list}");
    assert!(
        list.contains("selfsubjectaccessreviews.authorization.k8s.io"),
        "{list}"
    );
    assert!(list.contains("[/api/*]"), "{list}");
    assert!(!list.contains("secrets"), "{list}");

    // Removing the binding takes the access away again.
    s.ok(&["delete", "rolebinding", "jane-reads-pods"]);
    eventually("jane may no longer list pods", || {
        !can_i(&s, &["list", "pods", "--as", "jane"])
    });
}

#[test]
fn impersonation_and_escalation_need_permission() {
    let s = Server::start();
    // jane may manage roles and bindings in default, but holds nothing else.
    s.ok(&[
        "create",
        "role",
        "role-admin",
        "--verb=get,list,create,update,patch",
        "--resource=roles,rolebindings",
    ]);
    s.ok(&[
        "create",
        "rolebinding",
        "jane-role-admin",
        "--role=role-admin",
        "--user=jane",
    ]);
    eventually("jane may create roles", || {
        can_i(&s, &["create", "roles", "--as", "jane"])
    });
    // Granting rules jane does not hold is an escalation.
    let err = s.fails(&[
        "create",
        "role",
        "pod-deleter",
        "--verb=delete",
        "--resource=pods",
        "--as",
        "jane",
    ]);
    assert!(
        err.contains(r#"roles.rbac.authorization.k8s.io "pod-deleter" is forbidden: user "jane""#)
            && err.contains("is attempting to grant RBAC permissions not currently held")
            && err.contains(r#"{APIGroups:[""], Resources:["pods"], Verbs:["delete"]}"#),
        "{err}"
    );
    // …while rules she holds may be granted, and bound.
    s.ok(&[
        "create",
        "role",
        "role-reader",
        "--verb=get,list",
        "--resource=roles",
        "--as",
        "jane",
    ]);
    s.ok(&[
        "create",
        "rolebinding",
        "bob-reads-roles",
        "--role=role-reader",
        "--user=bob",
        "--as",
        "jane",
    ]);
    let err = s.fails(&[
        "create",
        "rolebinding",
        "bob-admin",
        "--clusterrole=admin",
        "--user=bob",
        "--as",
        "jane",
    ]);
    assert!(
        err.contains("attempting to grant RBAC permissions not currently held"),
        "{err}"
    );
    // A patch that adds rules is checked too.
    let err = s.fails(&[
        "patch",
        "role",
        "role-reader",
        "--type=json",
        r#"-p=[{"op":"add","path":"/rules/-","value":{"apiGroups":[""],"resources":["secrets"],"verbs":["get"]}}]"#,
        "--as",
        "jane",
    ]);
    assert!(
        err.contains("attempting to grant RBAC permissions not currently held"),
        "{err}"
    );

    // Impersonating needs the impersonate verb (the admin has it; a service account not).
    s.ok(&[
        "create",
        "clusterrole",
        "impersonate-bob",
        "--verb=impersonate",
        "--resource=users",
        "--resource-name=bob",
    ]);
    wait_for_default_service_account(&s);
    let token = s.ok(&["create", "token", "default"]).trim().to_string();
    let kc = anonymous_kubeconfig(&s);
    let out = with_token(&s, &kc, &token, &["get", "roles", "--as", "bob"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(r#"users "bob" is forbidden: User "system:serviceaccount:default:default" cannot impersonate resource "users" in API group "" at the cluster scope"#),
        "{}",
        stderr(&out)
    );
    s.ok(&[
        "create",
        "clusterrolebinding",
        "sa-impersonates-bob",
        "--clusterrole=impersonate-bob",
        "--serviceaccount=default:default",
    ]);
    eventually("the service account may act as bob", || {
        with_token(&s, &kc, &token, &["get", "roles", "--as", "bob"])
            .status
            .success()
    });
    let out = with_token(&s, &kc, &token, &["get", "roles", "--as", "alice"]);
    assert!(
        stderr(&out).contains(r#"users "alice" is forbidden"#),
        "{}",
        stderr(&out)
    );
}

fn wait_for_default_service_account(s: &Server) {
    eventually("serviceaccount default exists", || {
        s.kubectl(&["get", "serviceaccount", "default"])
            .status
            .success()
    });
}

#[test]
fn service_account_tokens() {
    let s = Server::start();
    wait_for_default_service_account(&s);
    let token = s.ok(&["create", "token", "default"]).trim().to_string();
    assert_eq!(token.split('.').count(), 3, "{token}");
    let kc = anonymous_kubeconfig(&s);

    let who = with_token(&s, &kc, &token, &["auth", "whoami"]);
    let text = stdout(&who);
    assert!(who.status.success(), "{}", stderr(&who));
    for part in [
        "system:serviceaccount:default:default",
        "system:serviceaccounts:default",
        "system:authenticated",
    ] {
        assert!(text.contains(part), "{part} missing:\n{text}");
    }

    let out = with_token(&s, &kc, &token, &["get", "pods"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(r#"pods is forbidden: User "system:serviceaccount:default:default" cannot list resource "pods" in API group "" in the namespace "default""#),
        "{}",
        stderr(&out)
    );
    s.ok(&[
        "create",
        "rolebinding",
        "default-view",
        "--clusterrole=view",
        "--serviceaccount=default:default",
    ]);
    eventually("the token may list pods", || {
        with_token(&s, &kc, &token, &["get", "pods"])
            .status
            .success()
    });
    assert!(can_i(
        &s,
        &["list", "pods", "--as=system:serviceaccount:default:default"]
    ));
    assert!(!can_i(
        &s,
        &[
            "create",
            "pods",
            "--as=system:serviceaccount:default:default"
        ]
    ));

    // Junk and foreign tokens are 401.
    let out = with_token(&s, &kc, "not-a-token", &["get", "pods"]);
    assert!(stderr(&out).contains("Unauthorized"), "{}", stderr(&out));
    let mut forged = token.clone();
    forged.truncate(forged.len() - 4);
    forged.push_str("AAAA");
    let out = with_token(&s, &kc, &forged, &["get", "pods"]);
    assert!(stderr(&out).contains("Unauthorized"), "{}", stderr(&out));

    // TokenRequest validation and a missing service account.
    let err = s.fails(&["create", "token", "default", "--duration=5m"]);
    assert!(
        err.contains("may not specify a duration less than 10 minutes"),
        "{err}"
    );
    let err = s.fails(&["create", "token", "nope"]);
    assert!(err.contains(r#"serviceaccounts "nope" not found"#), "{err}");

    // A token bound to a secret dies with the secret.
    s.ok(&["create", "secret", "generic", "s1", "--from-literal=a=b"]);
    let bound = s
        .ok(&[
            "create",
            "token",
            "default",
            "--bound-object-kind=Secret",
            "--bound-object-name=s1",
        ])
        .trim()
        .to_string();
    let out = with_token(&s, &kc, &bound, &["get", "pods"]);
    assert!(out.status.success(), "{}", stderr(&out));
    s.ok(&["delete", "secret", "s1"]);
    eventually("the bound token stops working", || {
        stderr(&with_token(&s, &kc, &bound, &["get", "pods"])).contains("Unauthorized")
    });

    // TokenReview says whose a token is.
    let review = format!(
        r#"{{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{{"token":"{token}"}}}}"#
    );
    let out = s.ok_stdin(&["create", "-f", "-", "-o", "json"], &review);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(
        v.pointer("/status/authenticated"),
        Some(&serde_json::json!(true)),
        "{out}"
    );
    assert_eq!(
        v.pointer("/status/user/username").and_then(|u| u.as_str()),
        Some("system:serviceaccount:default:default"),
        "{out}"
    );
}
