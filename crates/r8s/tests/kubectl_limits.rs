//! e2e: LimitRanges as upstream's tutorials use them ("Configure Default Memory Requests
//! and Limits for a Namespace", "Configure Minimum and Maximum Memory Constraints for a
//! Namespace"), with the real kubectl: defaults fill in missing container resources and
//! are noted in the `kubernetes.io/limit-ranger` annotation; out-of-bounds pods are refused.

mod common;
use common::Server;

const DEFAULTS: &str = "
apiVersion: v1
kind: LimitRange
metadata:
  name: mem-limit-range
spec:
  limits:
  - default:
      memory: 512Mi
    defaultRequest:
      memory: 256Mi
    type: Container
";

const CONSTRAINTS: &str = "
apiVersion: v1
kind: LimitRange
metadata:
  name: mem-min-max-demo-lr
spec:
  limits:
  - max:
      memory: 1Gi
    min:
      memory: 500Mi
    type: Container
";

fn pod(name: &str, resources: &str) -> String {
    common::pod_manifest(name, resources)
}

/// `kubectl apply -n ns -f -` of `yaml`, which must succeed.
fn apply(s: &Server, ns: &str, yaml: &str) {
    s.ok_stdin(&["apply", "-n", ns, "-f", "-"], yaml);
}

/// `kubectl apply -n ns -f -` of `yaml`, whatever the outcome.
fn try_apply(s: &Server, ns: &str, yaml: &str) -> std::process::Output {
    s.kubectl_stdin(&["apply", "-n", ns, "-f", "-"], Some(yaml))
}

fn resources(s: &Server, ns: &str, pod: &str) -> String {
    s.ok(&[
        "get",
        "pod",
        pod,
        "-n",
        ns,
        "-o",
        "jsonpath={.spec.containers[0].resources}",
    ])
}

#[test]
fn limit_ranges_default_and_bound_container_memory() {
    let s = Server::start();
    s.ok(&["create", "namespace", "default-mem-example"]);
    apply(&s, "default-mem-example", DEFAULTS);

    // No resources: both defaults.
    apply(&s, "default-mem-example", &pod("default-mem-demo", "{}"));
    let r = resources(&s, "default-mem-example", "default-mem-demo");
    assert_eq!(
        r, r#"{"limits":{"memory":"512Mi"},"requests":{"memory":"256Mi"}}"#,
        "{r}"
    );
    let note = s.ok(&[
        "get",
        "pod",
        "default-mem-demo",
        "-n",
        "default-mem-example",
        "-o",
        r"jsonpath={.metadata.annotations.kubernetes\.io/limit-ranger}",
    ]);
    assert_eq!(
        note,
        "LimitRanger plugin set: memory request for container app; memory limit for container app"
    );

    // A limit but no request: the request is the limit (pod defaulting runs first).
    apply(
        &s,
        "default-mem-example",
        &pod("default-mem-demo-2", "{limits: {memory: 1Gi}}"),
    );
    let r = resources(&s, "default-mem-example", "default-mem-demo-2");
    assert_eq!(
        r, r#"{"limits":{"memory":"1Gi"},"requests":{"memory":"1Gi"}}"#,
        "{r}"
    );

    // Min and max.
    s.ok(&["create", "namespace", "constraints-mem-example"]);
    apply(&s, "constraints-mem-example", CONSTRAINTS);
    apply(
        &s,
        "constraints-mem-example",
        &pod(
            "constraints-mem-demo",
            "{limits: {memory: 800Mi}, requests: {memory: 600Mi}}",
        ),
    );
    let out = try_apply(
        &s,
        "constraints-mem-example",
        &pod(
            "constraints-mem-demo-2",
            "{limits: {memory: 1.5Gi}, requests: {memory: 800Mi}}",
        ),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(
            r#"pods "constraints-mem-demo-2" is forbidden: maximum memory usage per Container is 1Gi, but limit is 1536Mi"#
        ),
        "{err}"
    );
    let out = try_apply(
        &s,
        "constraints-mem-example",
        &pod(
            "constraints-mem-demo-3",
            "{limits: {memory: 800Mi}, requests: {memory: 100Mi}}",
        ),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("minimum memory usage per Container is 500Mi, but request is 100Mi"),
        "{err}"
    );
    // The namespace without LimitRanges is untouched.
    s.ok(&[
        "run",
        "plain",
        "--image=busybox:1.36",
        "--",
        "sleep",
        "3600",
    ]);
    assert_eq!(resources(&s, "default", "plain"), "{}");
}
