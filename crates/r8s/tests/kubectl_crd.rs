//! e2e: CustomResourceDefinitions with the real kubectl, as upstream's "Extend the
//! Kubernetes API with CustomResourceDefinitions" task uses them: the CRD is established,
//! its resource is discovered (short name, `api-resources`, `explain`), objects print
//! the CRD's columns, unknown fields, schema violations and failed validation rules are
//! refused with upstream's messages, status is a subresource, everything survives a restart, and deleting the
//! CRD removes its objects.

mod common;
use common::Server;

const CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: crontabs.stable.example.com
spec:
  group: stable.example.com
  versions:
    - name: v1
      served: true
      storage: true
      subresources:
        status: {}
        scale:
          specReplicasPath: .spec.replicas
          statusReplicasPath: .status.replicas
          labelSelectorPath: .status.labelSelector
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              x-kubernetes-validations:
              - rule: "!has(self.image) || !self.image.startsWith('bad-')"
                message: image must not start with bad-
              properties:
                cronSpec:
                  type: string
                  pattern: '^(\d+|\*)(/\d+)?(\s+(\d+|\*)(/\d+)?){4}$'
                image:
                  type: string
                concurrencyPolicy:
                  type: string
                  default: Allow
                replicas:
                  type: integer
                  minimum: 1
                  maximum: 10
            status:
              type: object
              properties:
                replicas:
                  type: integer
                labelSelector:
                  type: string
      additionalPrinterColumns:
      - name: Spec
        type: string
        description: The cron spec defining the interval a CronJob is run
        jsonPath: .spec.cronSpec
      - name: Replicas
        type: integer
        jsonPath: .spec.replicas
      - name: Age
        type: date
        jsonPath: .metadata.creationTimestamp
  scope: Namespaced
  names:
    plural: crontabs
    singular: crontab
    kind: CronTab
    shortNames:
    - ct
"#;

fn crontab(name: &str, spec: &str) -> String {
    format!(
        "
apiVersion: stable.example.com/v1
kind: CronTab
metadata:
  name: {name}
spec: {spec}
"
    )
}

/// A field of the CronTab `my-new-cron-object`, by JSONPath.
fn field(s: &Server, path: &str) -> String {
    s.ok(&[
        "get",
        "ct",
        "my-new-cron-object",
        "-o",
        &format!("jsonpath={{{path}}}"),
    ])
}

/// `kubectl patch` of `my-new-cron-object` with a merge patch (`status`: through the
/// status subresource).
fn merge_patch(s: &Server, patch: &str, status: bool) {
    let mut args = vec![
        "patch",
        "ct",
        "my-new-cron-object",
        "--type=merge",
        "-p",
        patch,
    ];
    if status {
        args.push("--subresource=status");
    }
    s.ok(&args);
}

/// Applies the CronTab CRD and waits until it is Established.
fn establish(s: &Server) {
    s.ok_stdin(&["apply", "-f", "-"], CRD);
    s.ok(&[
        "wait",
        "--for=condition=established",
        "--timeout=20s",
        "crd/crontabs.stable.example.com",
    ]);
}

/// `kubectl apply` of `yaml`, which must fail; its stderr.
fn refused(s: &Server, yaml: &str) -> String {
    let out = s.kubectl_stdin(&["apply", "-f", "-"], Some(yaml));
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn custom_resources_like_upstream() {
    let s = Server::start();
    // A scale path outside .spec is refused (it would write a stray top-level field).
    let err = refused(
        &s,
        &CRD.replace(
            "specReplicasPath: .spec.replicas",
            "specReplicasPath: .replicas",
        ),
    );
    assert!(
        err.contains("subresources.scale.specReplicasPath: Invalid value: \".replicas\": should be a json path under .spec"),
        "{err}"
    );
    establish(&s);
    let crds = s.ok(&["get", "crd"]);
    assert!(crds.contains("crontabs.stable.example.com"), "{crds}");
    let resources = s.ok(&["api-resources", "--api-group=stable.example.com"]);
    assert!(
        resources.lines().any(|l| l.split_whitespace().eq([
            "crontabs",
            "ct",
            "stable.example.com/v1",
            "true",
            "CronTab"
        ])),
        "{resources}"
    );

    s.ok_stdin(
        &["apply", "-f", "-"],
        &crontab(
            "my-new-cron-object",
            "{cronSpec: '* * * * */5', image: my-awesome-cron-image, replicas: 2}",
        ),
    );
    let table = s.ok(&["get", "crontab"]);
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(header, ["NAME", "SPEC", "REPLICAS", "AGE"], "{table}");
    assert!(
        table.contains("my-new-cron-object   * * * * */5   2"),
        "{table}"
    );
    assert_eq!(
        s.ok(&["get", "ct", "-o", "name"]).trim(),
        "crontab.stable.example.com/my-new-cron-object"
    );
    let generation = field(&s, ".metadata.generation");
    assert_eq!(generation, "1");
    let defaulted = field(&s, ".spec.concurrencyPolicy");
    assert_eq!(defaulted, "Allow", "the schema's default");

    // Unknown fields: kubectl asks for strict validation.
    let err = refused(&s, &crontab("bogus", "{image: i, extra: 1}"));
    assert!(
        err.contains(r#"strict decoding error: unknown field "spec.extra""#),
        "{err}"
    );
    // Schema violations are 422s naming the field.
    let err = refused(&s, &crontab("big", "{image: i, replicas: 11}"));
    assert!(
        err.contains(r#"The CronTab "big" is invalid: spec.replicas: Invalid value: 11: spec.replicas in body should be less than or equal to 10"#),
        "{err}"
    );
    let err = refused(&s, &crontab("typo", "{image: i, replicas: two}"));
    assert!(
        err.contains(r#"spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string""#),
        "{err}"
    );

    // Validation rules (CEL) too.
    let err = refused(&s, &crontab("rule", "{image: bad-image}"));
    assert!(
        err.contains(r#"The CronTab "rule" is invalid: spec: Invalid value: "object": image must not start with bad-"#),
        "{err}"
    );

    let explained = s.ok(&["explain", "crontab.spec"]);
    assert!(
        explained.contains("cronSpec") && explained.contains("replicas"),
        "{explained}"
    );

    // The main resource does not write status; the status subresource does, without
    // moving the generation.
    merge_patch(&s, r#"{"status":{"replicas":5}}"#, false);
    assert_eq!(field(&s, ".status.replicas"), "");
    merge_patch(&s, r#"{"status":{"replicas":2}}"#, true);
    assert_eq!(field(&s, ".status.replicas"), "2");
    merge_patch(&s, r#"{"spec":{"replicas":3}}"#, false);
    let generation = field(&s, ".metadata.generation");
    assert_eq!(generation, "2");

    // The scale subresource reads and writes the CRD's paths; the result is validated.
    s.ok(&["scale", "ct", "my-new-cron-object", "--replicas=4"]);
    let replicas = field(&s, ".spec.replicas");
    assert_eq!(replicas, "4");
    merge_patch(&s, r#"{"status":{"labelSelector":"app=cron"}}"#, true);
    let scale = s.ok(&[
        "get",
        "--raw",
        "/apis/stable.example.com/v1/namespaces/default/crontabs/my-new-cron-object/scale",
    ]);
    assert!(
        scale.contains(r#""spec":{"replicas":4}"#) && scale.contains(r#""selector":"app=cron""#),
        "{scale}"
    );
    let err = s.fails(&["scale", "ct", "my-new-cron-object", "--replicas=11"]);
    assert!(err.contains("should be less than or equal to 10"), "{err}");
    s.ok(&["scale", "ct", "my-new-cron-object", "--replicas=3"]);

    // A restart serves the CRD again, objects included.
    let s = s.crash_and_restart(&[]);
    let replicas = field(&s, ".spec.replicas");
    assert_eq!(replicas, "3");

    // Deleting the CRD deletes its objects; recreating it starts empty.
    s.ok(&["delete", "crd", "crontabs.stable.example.com"]);
    let gone = s.fails(&[
        "get",
        "--raw",
        "/apis/stable.example.com/v1/namespaces/default/crontabs",
    ]);
    assert!(
        gone.contains("NotFound") || gone.contains("not found"),
        "{gone}"
    );
    establish(&s);
    let listed = s.ok(&[
        "get",
        "--raw",
        "/apis/stable.example.com/v1/namespaces/default/crontabs",
    ]);
    assert!(listed.contains(r#""items":[]"#), "{listed}");
}
