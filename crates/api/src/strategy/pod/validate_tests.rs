use serde_json::{Value, json};

use crate::strategy::test_support::{assert_has, create};

fn errs_for(spec: Value) -> Vec<String> {
    create(
        "",
        "Pod",
        json!({"metadata": {"name": "p", "namespace": "ns"}, "spec": spec}),
    )
    .1
}

fn c(extra: Value) -> Value {
    let mut base = json!({"name": "c", "image": "busybox"});
    if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            b.insert(k.clone(), v.clone());
        }
    }
    base
}

#[test]
fn valid_pods_pass() {
    let specs = [
        json!({"containers": [c(json!({}))]}),
        json!({
            "containers": [c(json!({
                "ports": [{"name": "http", "containerPort": 80}, {"containerPort": 53, "protocol": "UDP"}],
                "env": [{"name": "A", "value": "1"}, {"name": "B", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "128Mi"}},
                "readinessProbe": {"tcpSocket": {"port": "http"}},
                "livenessProbe": {"exec": {"command": ["true"]}},
                "lifecycle": {"preStop": {"exec": {"command": ["sleep", "1"]}}}
            }))],
            "initContainers": [c(json!({"name": "init"}))],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "pvc"}}],
            "nodeSelector": {"disk": "ssd"},
            "tolerations": [{"key": "k", "operator": "Equal", "value": "v", "effect": "NoSchedule"}],
            "restartPolicy": "OnFailure"
        }),
    ];
    for spec in specs {
        let errs = errs_for(spec.clone());
        assert!(errs.is_empty(), "{spec}: {errs:#?}");
    }
}

#[test]
fn validation_table() {
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (json!({}), vec!["spec.containers: Required value"]),
        (
            json!({"containers": []}),
            vec!["spec.containers: Required value"],
        ),
        (
            json!({"containers": [{"image": "x"}]}),
            vec!["spec.containers[0].name: Required value"],
        ),
        (
            json!({"containers": [c(json!({"name": "Web"}))]}),
            vec![
                "spec.containers[0].name: Invalid value: \"Web\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
            ],
        ),
        (
            json!({"containers": [c(json!({})), c(json!({}))]}),
            vec!["spec.containers[1].name: Duplicate value: \"c\""],
        ),
        (
            json!({"containers": [c(json!({}))], "initContainers": [c(json!({}))]}),
            vec!["spec.initContainers[0].name: Duplicate value: \"c\""],
        ),
        (
            json!({"containers": [{"name": "c"}]}),
            vec!["spec.containers[0].image: Required value"],
        ),
        (
            json!({"containers": [c(json!({"image": " x"}))]}),
            vec![
                "spec.containers[0].image: Invalid value: \" x\": must not have leading or trailing whitespace",
            ],
        ),
        (
            json!({"containers": [c(json!({"ports": [{"containerPort": 70000, "protocol": "HTTP"}]}))]}),
            vec![
                "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
                "spec.containers[0].ports[0].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
            ],
        ),
        (
            json!({"containers": [c(json!({"ports": [{"name": "a", "containerPort": 1}, {"name": "a", "containerPort": 2}, {}]}))]}),
            vec![
                "spec.containers[0].ports[1].name: Duplicate value: \"a\"",
                "spec.containers[0].ports[2].containerPort: Required value",
            ],
        ),
        (
            json!({"restartPolicy": "Sometimes", "dnsPolicy": "Weird", "containers": [c(json!({"imagePullPolicy": "Maybe"}))]}),
            vec![
                "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
                "spec.dnsPolicy: Unsupported value: \"Weird\": supported values: \"ClusterFirstWithHostNet\", \"ClusterFirst\", \"Default\", \"None\"",
                "spec.containers[0].imagePullPolicy: Unsupported value: \"Maybe\": supported values: \"Always\", \"IfNotPresent\", \"Never\"",
            ],
        ),
        (
            json!({"containers": [c(json!({"resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}}))]}),
            vec![
                "spec.containers[0].resources.requests: Invalid value: \"2\": must be less than or equal to cpu limit of 1",
            ],
        ),
        (
            json!({"containers": [c(json!({"resources": {"limits": {"memory": "lots"}}}))]}),
            vec![
                "spec.containers[0].resources.limits[memory]: Invalid value: \"lots\": quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
            ],
        ),
        (
            json!({"volumes": [{"name": "v", "emptyDir": {}, "hostPath": {"path": "/x"}}, {"name": "v", "emptyDir": {}}], "containers": [c(json!({}))]}),
            vec![
                "spec.volumes[0].emptyDir: Forbidden: may not specify more than 1 volume type",
                "spec.volumes[1].name: Duplicate value: \"v\"",
            ],
        ),
        (
            json!({"volumes": [{"name": "Bad_Name", "configMap": {}}], "containers": [c(json!({}))]}),
            vec!["spec.volumes[0].configMap.name: Required value"],
        ),
        (
            json!({"containers": [c(json!({"volumeMounts": [{"name": "missing", "mountPath": "/a"}, {"name": "missing"}]}))]}),
            vec![
                "spec.containers[0].volumeMounts[0].name: Not found: \"missing\"",
                "spec.containers[0].volumeMounts[1].mountPath: Required value",
            ],
        ),
        (
            json!({"containers": [c(json!({"env": [{"value": "x"}, {"name": "A=B"}, {"name": "C", "value": "v", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}]}))]}),
            vec![
                "spec.containers[0].env[0].name: Required value",
                "spec.containers[0].env[1].name: Invalid value: \"A=B\": a valid environment variable name must consist only of printable ASCII characters other than '='",
                "spec.containers[0].env[2].valueFrom: Invalid value: \"\": may not be specified when `value` is not empty",
            ],
        ),
        (
            json!({"containers": [c(json!({"env": [{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "spec.bogus"}}}]}))]}),
            vec![
                "spec.containers[0].env[0].valueFrom.fieldRef.fieldPath: Unsupported value: \"spec.bogus\": supported values: \"metadata.annotations\", \"metadata.labels\", \"metadata.name\", \"metadata.namespace\", \"metadata.uid\", \"spec.nodeName\", \"spec.serviceAccountName\", \"status.hostIP\", \"status.hostIPs\", \"status.podIP\", \"status.podIPs\"",
            ],
        ),
        (
            json!({"containers": [c(json!({"livenessProbe": {"successThreshold": 2, "exec": {"command": ["x"]}, "httpGet": {"port": 80}}, "readinessProbe": {"periodSeconds": -1}}))]}),
            vec![
                "spec.containers[0].livenessProbe.httpGet: Forbidden: may not specify more than 1 handler type",
                "spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1",
                "spec.containers[0].readinessProbe: Required value: must specify a handler type",
                "spec.containers[0].readinessProbe.periodSeconds: Invalid value: -1: must be greater than or equal to 0",
            ],
        ),
        (
            json!({"containers": [c(json!({"readinessProbe": {"httpGet": {"port": 0, "scheme": "FTP"}}}))]}),
            vec![
                "spec.containers[0].readinessProbe.httpGet.port: Invalid value: 0: must be between 1 and 65535, inclusive",
                "spec.containers[0].readinessProbe.httpGet.scheme: Unsupported value: \"FTP\": supported values: \"HTTP\", \"HTTPS\"",
            ],
        ),
        (
            json!({"tolerations": [{"operator": "Equal", "value": "x"}, {"key": "k", "operator": "Exists", "value": "v"}, {"key": "k", "tolerationSeconds": 5, "effect": "NoSchedule"}, {"key": "k", "operator": "Maybe"}], "containers": [c(json!({}))]}),
            vec![
                "spec.tolerations[0].operator: Invalid value: \"Equal\": operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
                "spec.tolerations[2].effect: Invalid value: \"NoSchedule\": effect must be 'NoExecute' when `tolerationSeconds` is set",
                "spec.tolerations[3].operator: Unsupported value: \"Maybe\": supported values: \"Equal\", \"Exists\"",
            ],
        ),
        (
            json!({"activeDeadlineSeconds": 0, "nodeSelector": {"bad key": "v"}, "serviceAccountName": "Bad", "containers": [c(json!({}))]}),
            vec![
                "spec.activeDeadlineSeconds: Invalid value: 0: must be between 1 and 2147483647, inclusive",
            ],
        ),
        (
            json!({"hostNetwork": true, "containers": [c(json!({"ports": [{"containerPort": 80, "hostPort": 81}]}))]}),
            vec![
                "spec.containers[0].ports[0].containerPort: Invalid value: 80: must match `hostPort` when `hostNetwork` is true",
            ],
        ),
        (
            json!({"initContainers": [c(json!({"name": "i", "livenessProbe": {"exec": {"command": ["x"]}}}))], "containers": [c(json!({}))]}),
            vec![
                "spec.initContainers[0].livenessProbe: Forbidden: may not be set for init containers without restartPolicy=Always",
            ],
        ),
    ];
    for (i, (spec, want)) in cases.into_iter().enumerate() {
        let errs = errs_for(spec.clone());
        assert!(!errs.is_empty(), "case {i}: expected errors for {spec}");
        assert_has(&errs, &want);
    }
}

#[test]
fn junk_types_become_field_errors() {
    let junk = [
        json!(null),
        json!(true),
        json!(1.5),
        json!(-1),
        json!(18446744073709551615u64),
        json!("x".repeat(100_000)),
        json!([1, "a", null, {}]),
        json!({"a": [null]}),
    ];
    let fields = [
        "containers",
        "initContainers",
        "volumes",
        "restartPolicy",
        "dnsPolicy",
        "nodeSelector",
        "tolerations",
        "activeDeadlineSeconds",
        "hostNetwork",
        "securityContext",
        "affinity",
        "imagePullSecrets",
        "serviceAccountName",
    ];
    let container_fields = [
        "name",
        "image",
        "ports",
        "env",
        "volumeMounts",
        "resources",
        "livenessProbe",
        "readinessProbe",
        "lifecycle",
        "command",
        "args",
        "imagePullPolicy",
        "terminationMessagePolicy",
    ];
    for j in &junk {
        for f in fields {
            let mut spec = json!({"containers": [c(json!({}))]});
            spec[f] = j.clone();
            let _ = errs_for(spec);
        }
        for f in container_fields {
            let mut container = c(json!({}));
            container[f] = j.clone();
            let errs = errs_for(json!({"containers": [container]}));
            // null means "absent"; a long string is a fine image name.
            // Unknown members inside objects are ignored like upstream's decoder does.
            let expect = match j {
                Value::Null => f == "name" || f == "image",
                Value::String(_) => f != "image",
                Value::Object(_) => !matches!(f, "resources" | "lifecycle"),
                _ => true,
            };
            if expect {
                assert!(
                    !errs.is_empty(),
                    "junk {j} at containers[0].{f} produced no error"
                );
            }
        }
        // The whole spec, and the object itself, may be junk.
        let _ = errs_for(j.clone());
        let _ = create("", "Pod", j.clone());
    }
    let errs = errs_for(json!({"containers": [c(json!({"ports": [{"containerPort": "80"}]}))]}));
    assert_has(
        &errs,
        &[
            "spec.containers[0].ports[0].containerPort: Invalid value: \"80\": must be of type integer",
        ],
    );
    let errs = errs_for(json!({"containers": "nope"}));
    assert_has(
        &errs,
        &[
            "spec.containers: Invalid value: \"nope\": must be of type array",
            "spec.containers: Required value",
        ],
    );
}
