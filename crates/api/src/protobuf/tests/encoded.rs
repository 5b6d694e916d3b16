//! Bodies encoded with `k8s-pb`'s prost types, an implementation independent of ours.

use k8s_pb::api::apps::v1 as apps;
use k8s_pb::api::core::v1 as core;
use k8s_pb::api::events::v1 as events;
use k8s_pb::api::policy::v1 as policy;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::RawExtension;
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::json;

use super::{assert_json, body, labels, meta_named, quantity, s};
use crate::protobuf::decode_to_json;

fn int_or_string_int(v: i32) -> Option<IntOrString> {
    Some(IntOrString {
        r#type: Some(0),
        int_val: Some(v),
        str_val: None,
    })
}

fn int_or_string_str(v: &str) -> Option<IntOrString> {
    Some(IntOrString {
        r#type: Some(1),
        int_val: None,
        str_val: s(v),
    })
}

fn deployment() -> apps::Deployment {
    let app = labels(&[("app", "web")]);
    let container = core::Container {
        name: s("nginx"),
        image: s("nginx:1.27"),
        ports: vec![core::ContainerPort {
            container_port: Some(80),
            protocol: s("TCP"),
            ..Default::default()
        }],
        resources: Some(core::ResourceRequirements {
            limits: [
                ("cpu".into(), quantity("500m")),
                ("memory".into(), quantity("128Mi")),
            ]
            .into(),
            requests: [("cpu".into(), quantity("250m"))].into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    apps::Deployment {
        metadata: Some(meta::ObjectMeta {
            name: s("web"),
            namespace: s("default"),
            labels: app.clone(),
            ..Default::default()
        }),
        spec: Some(apps::DeploymentSpec {
            replicas: Some(3),
            selector: Some(meta::LabelSelector {
                match_labels: app.clone(),
                ..Default::default()
            }),
            template: Some(core::PodTemplateSpec {
                metadata: Some(meta::ObjectMeta {
                    labels: app,
                    ..Default::default()
                }),
                spec: Some(core::PodSpec {
                    containers: vec![container],
                    ..Default::default()
                }),
            }),
            strategy: Some(apps::DeploymentStrategy {
                r#type: s("RollingUpdate"),
                rolling_update: Some(apps::RollingUpdateDeployment {
                    max_surge: int_or_string_str("25%"),
                    max_unavailable: int_or_string_int(1),
                }),
            }),
            ..Default::default()
        }),
        status: None,
    }
}

#[test]
fn deployment_decodes_with_go_zero_values_filled_in() {
    let got = decode_to_json(&body("apps/v1", "Deployment", &deployment())).unwrap();
    assert_json(
        &got,
        &json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {
                "name": "web", "namespace": "default", "labels": {"app": "web"},
                "creationTimestamp": null,
            },
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}, "creationTimestamp": null},
                    "spec": {"containers": [{
                        "name": "nginx",
                        "image": "nginx:1.27",
                        "ports": [{"containerPort": 80, "protocol": "TCP"}],
                        "resources": {
                            "limits": {"cpu": "500m", "memory": "128Mi"},
                            "requests": {"cpu": "250m"},
                        },
                    }]},
                },
                "strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1},
                },
            },
            // Go writes the zero DeploymentStatus struct.
            "status": {},
        }),
    );
    // The JSON is the shape the typed Rust model expects.
    let typed: k8s_openapi::api::apps::v1::Deployment = serde_json::from_value(got).unwrap();
    let spec = typed.spec.unwrap();
    assert_eq!(spec.replicas, Some(3));
    let rolling = spec.strategy.unwrap().rolling_update.unwrap();
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString as OpenApiIntOrString;
    assert_eq!(
        rolling.max_surge,
        Some(OpenApiIntOrString::String("25%".into()))
    );
    assert_eq!(rolling.max_unavailable, Some(OpenApiIntOrString::Int(1)));
}

#[test]
fn pointer_zeros_are_kept_and_omitempty_zeros_dropped() {
    let mut d = deployment();
    let spec = d.spec.as_mut().unwrap();
    // `replicas` is *int32: an explicit 0 must survive. `minReadySeconds` and `paused` are
    // plain omitempty fields: zero means unset.
    spec.replicas = Some(0);
    spec.min_ready_seconds = Some(0);
    spec.paused = Some(false);
    spec.revision_history_limit = Some(0);
    let got = decode_to_json(&body("apps/v1", "Deployment", &d)).unwrap();
    assert_eq!(got["spec"]["replicas"], 0);
    assert_eq!(got["spec"]["revisionHistoryLimit"], 0);
    assert!(got["spec"].get("minReadySeconds").is_none());
    assert!(got["spec"].get("paused").is_none());
}

#[test]
fn config_map_and_secret_data() {
    let cm = core::ConfigMap {
        metadata: meta_named("cfg"),
        data: labels(&[("a", "b"), ("empty", "")]),
        binary_data: [("raw".to_string(), vec![0u8, 1, 2, 255])].into(),
        immutable: Some(false),
    };
    assert_json(
        &decode_to_json(&body("v1", "ConfigMap", &cm)).unwrap(),
        &json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "cfg", "creationTimestamp": null},
            "data": {"a": "b", "empty": ""},
            "binaryData": {"raw": "AAEC/w=="},
            "immutable": false,
        }),
    );
    let secret = core::Secret {
        metadata: meta_named("sec"),
        data: [
            ("key".to_string(), b"\x00secret\xff".to_vec()),
            ("e".to_string(), vec![]),
        ]
        .into(),
        r#type: s("Opaque"),
        ..Default::default()
    };
    let got = decode_to_json(&body("v1", "Secret", &secret)).unwrap();
    assert_json(
        &got,
        &json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "sec", "creationTimestamp": null},
            "data": {"key": "AHNlY3JldP8=", "e": ""},
            "type": "Opaque",
        }),
    );
    let typed: k8s_openapi::api::core::v1::Secret = serde_json::from_value(got).unwrap();
    assert_eq!(typed.data.unwrap()["key"].0, b"\x00secret\xff");
}

#[test]
fn namespace_and_service() {
    let ns = core::Namespace {
        metadata: meta_named("foo"),
        spec: None,
        status: None,
    };
    assert_json(
        &decode_to_json(&body("v1", "Namespace", &ns)).unwrap(),
        &json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "foo", "creationTimestamp": null},
            "spec": {}, "status": {},
        }),
    );
    let svc = core::Service {
        metadata: meta_named("svc"),
        spec: Some(core::ServiceSpec {
            ports: vec![
                core::ServicePort {
                    name: s("http"),
                    port: Some(80),
                    target_port: int_or_string_int(8080),
                    ..Default::default()
                },
                // Nothing but the target port: `port` has no omitempty, so Go writes 0.
                core::ServicePort {
                    target_port: int_or_string_str("metrics"),
                    ..Default::default()
                },
            ],
            selector: labels(&[("app", "web")]),
            r#type: s("ClusterIP"),
            ..Default::default()
        }),
        status: None,
    };
    assert_json(
        &decode_to_json(&body("v1", "Service", &svc)).unwrap(),
        &json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "svc", "creationTimestamp": null},
            "spec": {
                "ports": [
                    {"name": "http", "port": 80, "targetPort": 8080},
                    {"port": 0, "targetPort": "metrics"},
                ],
                "selector": {"app": "web"},
                "type": "ClusterIP",
            },
            "status": {"loadBalancer": {}},
        }),
    );
}

#[test]
fn inline_fields_merge_into_their_parent() {
    let pod = core::Pod {
        metadata: meta_named("p"),
        spec: Some(core::PodSpec {
            volumes: vec![core::Volume {
                name: s("cfg"),
                volume_source: Some(core::VolumeSource {
                    config_map: Some(core::ConfigMapVolumeSource {
                        local_object_reference: Some(core::LocalObjectReference { name: s("cm") }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
            }],
            containers: vec![core::Container {
                name: s("c"),
                readiness_probe: Some(core::Probe {
                    handler: Some(core::ProbeHandler {
                        http_get: Some(core::HttpGetAction {
                            path: s("/healthz"),
                            port: int_or_string_str("http"),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    period_seconds: Some(5),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: None,
    };
    let got = decode_to_json(&body("v1", "Pod", &pod)).unwrap();
    assert_json(
        &got["spec"]["volumes"],
        &json!([{"name": "cfg", "configMap": {"name": "cm"}}]),
    );
    assert_json(
        &got["spec"]["containers"][0]["readinessProbe"],
        &json!({"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 5}),
    );
    let typed: k8s_openapi::api::core::v1::Pod = serde_json::from_value(got).unwrap();
    assert_eq!(
        typed.spec.unwrap().volumes.unwrap()[0]
            .config_map
            .as_ref()
            .unwrap()
            .name,
        "cm"
    );
}

#[test]
fn times_raw_extensions_and_managed_fields() {
    let mut metadata = meta::ObjectMeta {
        name: s("rev"),
        creation_timestamp: Some(meta::Time {
            seconds: Some(1_700_000_000),
            nanos: Some(5),
        }),
        deletion_timestamp: Some(meta::Time {
            seconds: Some(0),
            nanos: Some(0),
        }),
        ..Default::default()
    };
    metadata.managed_fields = vec![meta::ManagedFieldsEntry {
        manager: s("kubectl"),
        operation: s("Update"),
        time: Some(meta::Time {
            seconds: Some(1_700_000_000),
            nanos: None,
        }),
        fields_type: s("FieldsV1"),
        fields_v1: Some(meta::FieldsV1 {
            raw: Some(br#"{"f:data":{}}"#.to_vec()),
        }),
        ..Default::default()
    }];
    let rev = apps::ControllerRevision {
        metadata: Some(metadata),
        data: Some(RawExtension {
            raw: Some(br#"{"spec":{"x":1}}"#.to_vec()),
        }),
        revision: Some(2),
    };
    let got = decode_to_json(&body("apps/v1", "ControllerRevision", &rev)).unwrap();
    assert_json(
        &got,
        &json!({
            "apiVersion": "apps/v1", "kind": "ControllerRevision",
            "metadata": {
                "name": "rev",
                // metav1.Time keeps whole seconds; the Unix epoch is not Go's zero time.
                "creationTimestamp": "2023-11-14T22:13:20Z",
                "deletionTimestamp": "1970-01-01T00:00:00Z",
                "managedFields": [{
                    "manager": "kubectl", "operation": "Update", "time": "2023-11-14T22:13:20Z",
                    "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {}},
                }],
            },
            "data": {"spec": {"x": 1}},
            "revision": 2,
        }),
    );
    // A RawExtension may carry a nested protobuf object.
    let nested = apps::ControllerRevision {
        metadata: meta_named("outer"),
        data: Some(RawExtension {
            raw: Some(body("apps/v1", "Deployment", &deployment())),
        }),
        revision: Some(1),
    };
    let got = decode_to_json(&body("apps/v1", "ControllerRevision", &nested)).unwrap();
    assert_eq!(got["data"]["kind"], "Deployment");
    assert_eq!(got["data"]["spec"]["replicas"], 3);

    let event = events::Event {
        metadata: meta_named("e"),
        event_time: Some(meta::MicroTime {
            seconds: Some(1_700_000_000),
            nanos: Some(123_456_789),
        }),
        reason: s("Started"),
        ..Default::default()
    };
    let got = decode_to_json(&body("events.k8s.io/v1", "Event", &event)).unwrap();
    assert_eq!(got["eventTime"], "2023-11-14T22:13:20.123456Z");
    assert_eq!(got["deprecatedFirstTimestamp"], json!(null));
}

#[test]
fn subresource_and_options_kinds() {
    let eviction = policy::Eviction {
        metadata: Some(meta::ObjectMeta {
            name: s("p"),
            namespace: s("ns"),
            ..Default::default()
        }),
        delete_options: Some(meta::DeleteOptions {
            grace_period_seconds: Some(0),
            ..Default::default()
        }),
    };
    assert_json(
        &decode_to_json(&body("policy/v1", "Eviction", &eviction)).unwrap(),
        &json!({
            "apiVersion": "policy/v1", "kind": "Eviction",
            "metadata": {"name": "p", "namespace": "ns", "creationTimestamp": null},
            "deleteOptions": {"gracePeriodSeconds": 0},
        }),
    );
    let binding = core::Binding {
        metadata: meta_named("p"),
        target: Some(core::ObjectReference {
            kind: s("Node"),
            name: s("n1"),
            ..Default::default()
        }),
    };
    assert_json(
        &decode_to_json(&body("v1", "Binding", &binding)).unwrap()["target"],
        &json!({"kind": "Node", "name": "n1"}),
    );
    use k8s_pb::api::autoscaling::v1 as autoscaling;
    let scale = autoscaling::Scale {
        metadata: meta_named("web"),
        spec: Some(autoscaling::ScaleSpec { replicas: Some(5) }),
        status: None,
    };
    assert_json(
        &decode_to_json(&body("autoscaling/v1", "Scale", &scale)).unwrap(),
        &json!({
            "apiVersion": "autoscaling/v1", "kind": "Scale",
            "metadata": {"name": "web", "creationTimestamp": null},
            "spec": {"replicas": 5},
            "status": {"replicas": 0},
        }),
    );
    // client-go sends DeleteOptions under the resource's own group version.
    let options = meta::DeleteOptions {
        propagation_policy: s("Foreground"),
        preconditions: Some(meta::Preconditions {
            uid: s("u1"),
            resource_version: None,
        }),
        dry_run: vec!["All".into()],
        ..Default::default()
    };
    for api_version in ["apps/v1", "meta.k8s.io/v1", "v1"] {
        assert_json(
            &decode_to_json(&body(api_version, "DeleteOptions", &options)).unwrap(),
            &json!({
                "apiVersion": api_version, "kind": "DeleteOptions",
                "propagationPolicy": "Foreground",
                "preconditions": {"uid": "u1"},
                "dryRun": ["All"],
            }),
        );
    }
}

#[test]
fn list_wrapper_messages_become_arrays() {
    let list = meta::APIResourceList {
        group_version: s("v1"),
        resources: vec![meta::APIResource {
            name: s("pods"),
            namespaced: Some(true),
            kind: s("Pod"),
            verbs: Some(meta::Verbs {
                items: vec!["get".into(), "list".into()],
            }),
            ..Default::default()
        }],
    };
    let got = decode_to_json(&body("v1", "APIResourceList", &list)).unwrap();
    assert_json(&got["resources"][0]["verbs"], &json!(["get", "list"]));
}
