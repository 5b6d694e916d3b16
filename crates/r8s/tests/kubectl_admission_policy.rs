//! e2e: ValidatingAdmissionPolicies with the real kubectl, as the Kubernetes docs page
//! "Validating Admission Policy" walks through them: `kubectl apply` of the policy and
//! its binding, a Deployment over the replica limit refused in a namespace labelled
//! `environment: test` with upstream's message, and a `Warn` binding printing a warning.

mod common;
use common::Server;

const POLICY: &str = r#"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata:
  name: "demo-policy.example.com"
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
    - apiGroups:   ["apps"]
      apiVersions: ["v1"]
      operations:  ["CREATE", "UPDATE"]
      resources:   ["deployments"]
  validations:
    - expression: "object.spec.replicas <= 5"
"#;

const BINDING: &str = r#"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata:
  name: "demo-binding-test.example.com"
spec:
  policyName: "demo-policy.example.com"
  validationActions: [Deny]
  matchResources:
    namespaceSelector:
      matchLabels:
        environment: test
"#;

fn deployment(name: &str, namespace: &str, replicas: u32) -> String {
    format!(
        "
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: {namespace}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
      - name: nginx
        image: nginx:1.27
"
    )
}

#[test]
fn validating_admission_policies_like_the_docs() {
    let s = Server::start();
    s.ok(&["create", "namespace", "test"]);
    s.ok(&["label", "namespace", "test", "environment=test"]);
    s.ok(&["create", "namespace", "other"]);
    s.ok_stdin(&["apply", "-f", "-"], POLICY);
    s.ok_stdin(&["apply", "-f", "-"], BINDING);

    let policies = s.ok(&["get", "validatingadmissionpolicies"]);
    let header: Vec<&str> = policies
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["NAME", "VALIDATIONS", "PARAMKIND", "AGE"],
        "{policies}"
    );
    assert!(
        policies.contains("demo-policy.example.com   1             <unset>"),
        "{policies}"
    );
    let explained = s.ok(&["explain", "validatingadmissionpolicy.spec.validations"]);
    assert!(explained.contains("messageExpression"), "{explained}");
    let bindings = s.ok(&["get", "validatingadmissionpolicybindings"]);
    assert!(
        bindings.lines().any(|l| l.split_whitespace().take(3).eq([
            "demo-binding-test.example.com",
            "demo-policy.example.com",
            "<unset>"
        ])),
        "{bindings}"
    );

    let out = s.kubectl_stdin(&["apply", "-f", "-"], Some(&deployment("nginx", "test", 6)));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "The deployments \"nginx\" is invalid: : ValidatingAdmissionPolicy 'demo-policy.example.com' with binding 'demo-binding-test.example.com' denied request: failed expression: object.spec.replicas <= 5"
        ),
        "{err}"
    );
    s.ok_stdin(&["apply", "-f", "-"], &deployment("nginx", "test", 3));
    s.ok_stdin(&["apply", "-f", "-"], &deployment("nginx", "other", 6));

    // Warn instead of Deny: the write goes through with kubectl printing the warning.
    s.ok(&[
        "delete",
        "validatingadmissionpolicybinding",
        "demo-binding-test.example.com",
    ]);
    s.ok_stdin(
        &["apply", "-f", "-"],
        &BINDING
            .replace("demo-binding-test", "demo-binding-warn")
            .replace("[Deny]", "[Warn]"),
    );
    let out = s.kubectl_stdin(&["apply", "-f", "-"], Some(&deployment("nginx", "test", 6)));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(
            "Warning: Validation failed for ValidatingAdmissionPolicy 'demo-policy.example.com' with binding 'demo-binding-warn.example.com': failed expression: object.spec.replicas <= 5"
        ),
        "{err}"
    );
}
