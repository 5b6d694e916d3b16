//! e2e: the declarative edit–apply loop with the real kubectl (client-side apply, diff,
//! server-side apply, every patch type, replace, edit, set image, rollout restart).

mod common;
use common::Server;

const V1: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web, tier: fe}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: nginx
        image: nginx:1.14.2
        ports: [{containerPort: 80}]
        env: [{name: A, value: "1"}, {name: B, value: "2"}]
        volumeMounts: [{name: data, mountPath: /data}]
      volumes: [{name: data, emptyDir: {}}]
"#;

fn jsonpath(s: &Server, expr: &str) -> String {
    s.ok(&["get", "deploy", "web", "-o", &format!("jsonpath={expr}")])
}

fn apply(s: &Server, manifest: &str, extra: &[&str]) -> String {
    let mut args = vec!["apply", "-f", "-"];
    args.extend_from_slice(extra);
    s.ok_stdin(&args, manifest).trim().to_string()
}

#[test]
fn client_side_apply_session() {
    let s = Server::start();
    assert_eq!(apply(&s, V1, &[]), "deployment.apps/web created");
    assert_eq!(apply(&s, V1, &[]), "deployment.apps/web unchanged");

    // diff shows the change before apply, and exits 1.
    let v2 = V1.replace("replicas: 3", "replicas: 5");
    let out = s.kubectl_stdin(&["diff", "-f", "-"], Some(&v2));
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let diff = String::from_utf8_lossy(&out.stdout);
    assert!(
        diff.contains("-  replicas: 3") && diff.contains("+  replicas: 5"),
        "{diff}"
    );
    assert_eq!(apply(&s, &v2, &[]), "deployment.apps/web configured");
    assert_eq!(jsonpath(&s, "{.spec.replicas}"), "5");

    // A manifest against an object made by `kubectl create` (no last-applied annotation):
    // the patch's empty `annotations: {}` is not kept, so only the data differs.
    s.ok(&["create", "configmap", "plain", "--from-literal=a=1"]);
    let manifest = "{apiVersion: v1, kind: ConfigMap, metadata: {name: plain}, data: {a: '2'}}";
    let out = s.kubectl_stdin(&["diff", "-f", "-"], Some(manifest));
    let diff = String::from_utf8_lossy(&out.stdout);
    assert!(diff.contains("+  a: \"2\""), "{diff}");
    assert!(!diff.contains("annotations"), "{diff}");

    // Image change, env edited, a container added, a label removed.
    let v3 = v2
        .replace("image: nginx:1.14.2", "image: nginx:1.16")
        .replace(
            r#"env: [{name: A, value: "1"}, {name: B, value: "2"}]"#,
            r#"env: [{name: A, value: "9"}]"#,
        )
        .replace("labels: {app: web, tier: fe}", "labels: {app: web}")
        .replace(
            "      volumes:",
            "      - name: side\n        image: busybox\n      volumes:",
        )
        .replace(
            "ports: [{containerPort: 80}]",
            "ports: [{containerPort: 8080}]",
        );
    assert_eq!(apply(&s, &v3, &[]), "deployment.apps/web configured");
    assert_eq!(jsonpath(&s, "{.metadata.labels}"), r#"{"app":"web"}"#);
    assert_eq!(
        jsonpath(&s, "{.spec.template.spec.containers[*].name}"),
        "nginx side"
    );
    assert_eq!(
        jsonpath(&s, "{.spec.template.spec.containers[0].env}"),
        r#"[{"name":"A","value":"9"}]"#
    );
    assert_eq!(
        jsonpath(
            &s,
            "{.spec.template.spec.containers[0].ports[*].containerPort}"
        ),
        "8080"
    );
    assert_eq!(
        jsonpath(&s, "{.spec.template.spec.containers[0].image}"),
        "nginx:1.16"
    );
    // The container is removed again; the volume mount edited.
    let v4 = v3
        .replace("      - name: side\n        image: busybox\n", "")
        .replace("mountPath: /data", "mountPath: /srv");
    assert_eq!(apply(&s, &v4, &[]), "deployment.apps/web configured");
    assert_eq!(
        jsonpath(&s, "{.spec.template.spec.containers[*].name}"),
        "nginx"
    );
    assert_eq!(
        jsonpath(
            &s,
            "{.spec.template.spec.containers[0].volumeMounts[*].mountPath}"
        ),
        "/srv"
    );

    // replicas dropped from a file that never had it leaves `kubectl scale`'s value alone.
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: '1'}\n";
    apply(&s, cm, &[]);
    s.ok(&[
        "patch",
        "cm",
        "c",
        "--type",
        "merge",
        "-p",
        r#"{"data":{"b":"2"}}"#,
    ]);
    assert_eq!(apply(&s, cm, &[]), "configmap/c unchanged");
    assert_eq!(s.ok(&["get", "cm", "c", "-o", "jsonpath={.data.b}"]), "2");
}

#[test]
fn patches_replace_edit_set_image_restart() {
    let s = Server::start();
    apply(&s, V1, &[]);
    s.ok(&[
        "patch",
        "deploy",
        "web",
        "--type",
        "json",
        "-p",
        r#"[{"op":"replace","path":"/spec/replicas","value":2}]"#,
    ]);
    s.ok(&[
        "patch",
        "deploy",
        "web",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"minReadySeconds":3}}"#,
    ]);
    s.ok(&[
        "patch",
        "deploy",
        "web",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"nginx","image":"nginx:1.21"}]}}}}"#,
    ]);
    assert_eq!(
        jsonpath(
            &s,
            "{.spec.replicas} {.spec.minReadySeconds} {.spec.template.spec.containers[0].image}"
        ),
        "2 3 nginx:1.21"
    );
    // Env merged by name by the strategic patch.
    assert_eq!(
        jsonpath(&s, "{.spec.template.spec.containers[0].env[*].name}"),
        "A B"
    );

    let yaml = s
        .ok(&["get", "deploy", "web", "-o", "yaml"])
        .replace("minReadySeconds: 3", "minReadySeconds: 4");
    assert_eq!(
        s.ok_stdin(&["replace", "-f", "-"], &yaml).trim(),
        "deployment.apps/web replaced"
    );
    let out = std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&s.kubeconfig)
        .args(["edit", "deploy", "web"])
        .env(
            "KUBE_EDITOR",
            "sed -i s/minReadySeconds:\\ 4/minReadySeconds:\\ 5/",
        )
        .env("HOME", s.data_dir())
        .output()
        .expect("kubectl edit");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(jsonpath(&s, "{.spec.minReadySeconds}"), "5");

    s.ok(&["set", "image", "deploy/web", "nginx=nginx:1.22"]);
    assert_eq!(
        jsonpath(&s, "{.spec.template.spec.containers[0].image}"),
        "nginx:1.22"
    );
    s.ok(&["rollout", "restart", "deploy/web"]);
    assert!(
        jsonpath(&s, "{.spec.template.metadata.annotations}")
            .contains("kubectl.kubernetes.io/restartedAt")
    );
    // A bad JSON patch is refused and changes nothing.
    let err = s.fails(&[
        "patch",
        "deploy",
        "web",
        "--type",
        "json",
        "-p",
        r#"[{"op":"remove","path":"/spec/nope"}]"#,
    ]);
    assert!(!err.is_empty());
    assert_eq!(jsonpath(&s, "{.spec.minReadySeconds}"), "5");
    // A patch producing an invalid object is a 422 and changes nothing.
    let err = s.fails(&[
        "patch",
        "deploy",
        "web",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"replicas":-1}}"#,
    ]);
    assert!(err.contains("Invalid") || err.contains("invalid"), "{err}");
}

#[test]
fn server_side_apply_creates_and_updates() {
    let s = Server::start();
    assert_eq!(
        apply(&s, V1, &["--server-side"]),
        "deployment.apps/web serverside-applied"
    );
    let v2 = V1.replace("replicas: 3", "replicas: 4");
    assert_eq!(
        apply(&s, &v2, &["--server-side", "--force-conflicts"]),
        "deployment.apps/web serverside-applied"
    );
    assert_eq!(jsonpath(&s, "{.spec.replicas}"), "4");
    // Another manager takes .spec.replicas; re-applying a different value conflicts …
    s.ok(&["scale", "deploy", "web", "--replicas=6"]);
    let out = s.kubectl_stdin(&["apply", "--server-side", "-f", "-"], Some(&v2));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Apply failed with 1 conflict") && err.contains(".spec.replicas"),
        "{err}"
    );
    assert_eq!(jsonpath(&s, "{.spec.replicas}"), "6");
    // … until forced.
    apply(&s, &v2, &["--server-side", "--force-conflicts"]);
    assert_eq!(jsonpath(&s, "{.spec.replicas}"), "4");
    let managers = s.ok(&[
        "get",
        "deploy",
        "web",
        "--show-managed-fields",
        "-o",
        "jsonpath={.metadata.managedFields[*].manager}",
    ]);
    assert!(managers.contains("kubectl"), "{managers}");
    // Fields dropped from the applied configuration are removed.
    let v3 = v2.replace(
        "        env: [{name: A, value: \"1\"}, {name: B, value: \"2\"}]\n",
        "",
    );
    apply(&s, &v3, &["--server-side"]);
    assert_eq!(jsonpath(&s, "{.spec.template.spec.containers[0].env}"), "");
}

#[test]
fn apply_prune_removes_objects_dropped_from_the_set() {
    let s = Server::start();
    let both = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, labels: {set: p}}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: b, labels: {set: p}}\n";
    s.ok_stdin(&["apply", "-f", "-"], both);
    let one = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, labels: {set: p}}\n";
    let out = s.ok_stdin(
        &[
            "apply",
            "--prune",
            "-l",
            "set=p",
            "--prune-allowlist=core/v1/ConfigMap",
            "-f",
            "-",
        ],
        one,
    );
    assert!(out.contains("configmap/b pruned"), "{out}");
    let names = s.ok(&["get", "cm", "-l", "set=p", "-o", "name"]);
    assert_eq!(names.trim(), "configmap/a");
}

/// Managers listed in the Deployment's managedFields as `manager/operation`.
fn managers(s: &Server) -> Vec<String> {
    let out = jsonpath(
        s,
        r#"{range .metadata.managedFields[*]}{.manager}/{.operation}{"\n"}{end}"#,
    );
    out.lines().map(str::to_string).collect()
}

#[test]
fn client_side_apply_then_server_side_apply_migrates_ownership() {
    let s = Server::start();
    assert_eq!(apply(&s, V1, &[]), "deployment.apps/web created");
    assert!(
        managers(&s).contains(&"kubectl-client-side-apply/Update".to_string()),
        "{:?}",
        managers(&s)
    );

    // The same manifest applied server-side: kubectl moves the client-side manager's
    // fields to its apply manager, so the object is unchanged and nothing conflicts.
    assert_eq!(
        apply(&s, V1, &["--server-side"]),
        "deployment.apps/web serverside-applied"
    );
    let after = managers(&s);
    assert!(after.contains(&"kubectl/Apply".to_string()), "{after:?}");
    assert!(
        !after
            .iter()
            .any(|m| m.starts_with("kubectl-client-side-apply/")),
        "client-side ownership should be migrated: {after:?}"
    );

    // Now a field dropped from the manifest is removed by the next server-side apply,
    // which only works if the apply manager owns it.
    let v2 = V1.replace("labels: {app: web, tier: fe}", "labels: {app: web}");
    apply(&s, &v2, &["--server-side"]);
    assert_eq!(jsonpath(&s, "{.metadata.labels.tier}"), "");
    assert_eq!(jsonpath(&s, "{.metadata.labels.app}"), "web");

    // And back to client-side apply: it still computes its patch from the annotation.
    let v3 = v2.replace("replicas: 3", "replicas: 4");
    assert_eq!(apply(&s, &v3, &[]), "deployment.apps/web configured");
    assert_eq!(jsonpath(&s, "{.spec.replicas}"), "4");
}
