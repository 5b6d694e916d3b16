//! Real kubectl bodies, and upstream's own round-trip fixtures.

use serde_json::{Value, json};

use super::{assert_json, first_difference, testdata};
use crate::protobuf::{ProtobufError, decode_to_json, is_protobuf};

/// Decodes every upstream round-trip fixture (k8s.io/api `testdata/HEAD`, pairs of
/// `<group>.<version>.<Kind>.pb` and `.json`) of the versions we serve and compares the
/// result with the JSON twin. Needs a checkout of k8s.io/api, so it only runs on demand:
/// `R8S_K8S_API_TESTDATA=.../api/testdata/HEAD cargo test -p r8s-api protobuf -- --ignored`.
#[test]
#[ignore = "needs R8S_K8S_API_TESTDATA pointing at k8s.io/api testdata/HEAD"]
fn upstream_roundtrip_fixtures() {
    let dir = std::env::var("R8S_K8S_API_TESTDATA").expect("R8S_K8S_API_TESTDATA");
    let mut checked = 0;
    let mut failures = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for pb in entries {
        // WatchEvent is a stream frame without an envelope of its own.
        if pb.extension().is_none_or(|e| e != "pb") || pb.to_string_lossy().contains("WatchEvent") {
            continue;
        }
        // Older snapshots keep `*.after_roundtrip.pb` files without a JSON twin.
        let Ok(json) = std::fs::read(pb.with_extension("json")) else {
            continue;
        };
        let want: Value = serde_json::from_slice(&json).unwrap();
        let body = std::fs::read(&pb).unwrap();
        let name = pb.file_name().unwrap().to_string_lossy().into_owned();
        match decode_to_json(&body) {
            Ok(got) => {
                checked += 1;
                if let Some(d) = first_difference("", &got, &want) {
                    failures.push(format!("{name}: {d}"));
                }
            }
            // Alpha and beta versions, and kinds that are never request bodies.
            Err(ProtobufError::UnknownKind { .. }) => {}
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(checked >= 75, "only {checked} fixtures decoded");
}

/// Bodies that kubectl 1.32 POSTed to a stub server (`kubectl --server http://127.0.0.1:N
/// create ...`), against what the same command prints with `--dry-run=client -o json`,
/// which is Go's JSON encoding of the very object it sends.
#[test]
fn kubectl_bodies_decode_to_what_kubectl_prints() {
    for name in [
        "namespace",
        "deployment",
        "configmap",
        "secret-generic",
        "secret-docker-registry",
        "service-clusterip",
        "service-nodeport",
        "job",
        "cronjob",
        "poddisruptionbudget",
        "ingress",
        "priorityclass",
        "resourcequota",
        "serviceaccount",
        "rolebinding",
        "clusterrole",
    ] {
        let body = std::fs::read(testdata(&format!("{name}.pb"))).unwrap();
        assert!(is_protobuf(&body), "{name}");
        let got = decode_to_json(&body).unwrap_or_else(|e| panic!("{name}: {e}"));
        let want: Value =
            serde_json::from_slice(&std::fs::read(testdata(&format!("{name}.json"))).unwrap())
                .unwrap();
        if let Some(d) = first_difference("", &got, &want) {
            panic!("{name}: {d}");
        }
    }
}

/// kubectl bodies of commands that have no client-side dry run.
#[test]
fn kubectl_bodies_without_a_dry_run() {
    let decode = |name: &str| decode_to_json(&std::fs::read(testdata(name)).unwrap()).unwrap();
    // kubectl create role r --verb=get --verb=list --resource=pods --resource=deployments.apps
    assert_json(
        &decode("role.pb"),
        &json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "r", "namespace": "default", "creationTimestamp": null},
            "rules": [
                {"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]},
                {"verbs": ["get", "list"], "apiGroups": ["apps"], "resources": ["deployments"]},
            ],
        }),
    );
    // kubectl autoscale deployment web --min=2 --max=5 --cpu-percent=80
    assert_json(
        &decode("horizontalpodautoscaler.pb"),
        &json!({
            "apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "creationTimestamp": null},
            "spec": {
                "scaleTargetRef": {"kind": "Deployment", "name": "web", "apiVersion": "apps/v1"},
                "minReplicas": 2, "maxReplicas": 5, "targetCPUUtilizationPercentage": 80,
            },
            "status": {"currentReplicas": 0, "desiredReplicas": 0},
        }),
    );
    // kubectl create token sa --duration=1h
    assert_json(
        &decode("tokenrequest.pb"),
        &json!({
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
            "metadata": {"creationTimestamp": null},
            // Go writes nil `audiences` and `boundObjectRef` (no omitempty) as null; absent
            // is equivalent for every reader, and safer for ours.
            "spec": {"expirationSeconds": 3600},
            "status": {"token": "", "expirationTimestamp": null},
        }),
    );
    // kubectl auth can-i get pods
    assert_json(
        &decode("selfsubjectaccessreview.pb"),
        &json!({
            "apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
            "metadata": {"creationTimestamp": null},
            "spec": {"resourceAttributes": {"namespace": "default", "verb": "get", "resource": "pods"}},
            "status": {"allowed": false},
        }),
    );
}
