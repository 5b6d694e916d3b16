//! Malformed, truncated and hostile bodies: always an error, never a panic.

use k8s_pb::api::apps::v1 as apps;
use k8s_pb::api::core::v1 as core;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::{RawExtension, TypeMeta, Unknown};
use prost::Message as _;

use super::{body, envelope, labels, meta_named, s, testdata};
use crate::protobuf::{MAGIC, ProtobufError, decode_to_json, is_protobuf};

fn config_map() -> core::ConfigMap {
    core::ConfigMap {
        metadata: meta_named("cfg"),
        data: labels(&[("a", "b")]),
        ..Default::default()
    }
}

#[test]
fn json_and_empty_bodies_are_not_protobuf() {
    assert!(!is_protobuf(b"{\"kind\":\"Pod\"}"));
    assert!(!is_protobuf(b"k8s"));
    assert!(is_protobuf(b"k8s\0"));
    assert_eq!(decode_to_json(b"{}"), Err(ProtobufError::NotProtobuf));
    assert_eq!(decode_to_json(b""), Err(ProtobufError::NotProtobuf));
    assert_eq!(decode_to_json(MAGIC), Err(ProtobufError::MissingTypeMeta));
}

#[test]
fn unknown_kinds_and_versions_are_refused() {
    let cm = config_map();
    for (api_version, kind) in [
        ("v1", "Nope"),
        ("apps/v1beta1", "Deployment"),
        ("example.com/v1", "Widget"),
        // A part of a kind, not a kind.
        ("v1", "PodSpec"),
        // Dots could reach into another package.
        ("v1", "v1.ConfigMap"),
        ("v1", "../ConfigMap"),
    ] {
        assert!(
            matches!(
                decode_to_json(&body(api_version, kind, &cm)),
                Err(ProtobufError::UnknownKind { .. })
            ),
            "{api_version} {kind}"
        );
    }
}

#[test]
fn compressed_or_foreign_envelopes_are_refused() {
    let unknown = |encoding: &str, content_type: &str| {
        let u = Unknown {
            type_meta: Some(TypeMeta {
                api_version: s("v1"),
                kind: s("ConfigMap"),
            }),
            raw: Some(config_map().encode_to_vec()),
            content_encoding: s(encoding),
            content_type: s(content_type),
        };
        [&MAGIC[..], &u.encode_to_vec()].concat()
    };
    assert!(matches!(
        decode_to_json(&unknown("gzip", "")),
        Err(ProtobufError::UnsupportedEncoding(..))
    ));
    assert!(matches!(
        decode_to_json(&unknown("", "application/json")),
        Err(ProtobufError::UnsupportedEncoding(..))
    ));
    assert!(decode_to_json(&unknown("", "application/vnd.kubernetes.protobuf")).is_ok());
    let no_kind = Unknown {
        type_meta: Some(TypeMeta {
            api_version: s("v1"),
            kind: None,
        }),
        ..Default::default()
    };
    assert_eq!(
        decode_to_json(&[&MAGIC[..], &no_kind.encode_to_vec()].concat()),
        Err(ProtobufError::MissingTypeMeta)
    );
}

#[test]
fn every_truncation_of_a_real_body_is_handled() {
    let full = std::fs::read(testdata("deployment.pb")).unwrap();
    let mut errors = 0;
    for len in 0..full.len() {
        if decode_to_json(&full[..len]).is_err() {
            errors += 1;
        }
    }
    // Only cuts at a field boundary of the envelope leave a well-formed (if smaller) body.
    assert!(
        errors >= full.len() - 8,
        "{errors} errors for {} cuts",
        full.len()
    );
}

#[test]
fn corrupted_bytes_never_panic() {
    let original = std::fs::read(testdata("deployment.pb")).unwrap();
    // A fixed xorshift sequence keeps the test deterministic.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..5000 {
        let mut body = original.clone();
        for _ in 0..=(next() % 4) {
            let i = 4 + (next() as usize) % (body.len() - 4);
            body[i] = next() as u8;
        }
        let _ = decode_to_json(&body);
    }
}

#[test]
fn malformed_fields_report_their_path() {
    let mut raw = config_map().encode_to_vec();
    // Field 1 (metadata) as a varint instead of a message.
    raw.extend([0x08, 0x01]);
    let err = decode_to_json(&envelope("v1", "ConfigMap", raw)).unwrap_err();
    assert!(
        matches!(&err, ProtobufError::Malformed { path, .. } if path == "metadata"),
        "{err}"
    );

    // A string length running past the end of the object.
    let mut raw = config_map().encode_to_vec();
    raw.extend([0x1a, 0x05, b'a']);
    assert!(matches!(
        decode_to_json(&envelope("v1", "ConfigMap", raw)),
        Err(ProtobufError::Malformed { .. })
    ));

    // A bad IntOrString deep in a deployment.
    let d = apps::Deployment {
        spec: Some(apps::DeploymentSpec {
            strategy: Some(apps::DeploymentStrategy {
                rolling_update: Some(apps::RollingUpdateDeployment {
                    max_surge: Some(k8s_pb::apimachinery::pkg::util::intstr::IntOrString {
                        r#type: Some(7),
                        ..Default::default()
                    }),
                    max_unavailable: None,
                }),
                r#type: None,
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let err = decode_to_json(&body("apps/v1", "Deployment", &d)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "malformed protobuf at spec.strategy.rollingUpdate.maxSurge: invalid IntOrString type 7"
    );

    // A bad element of a list.
    let pod = core::Pod {
        spec: Some(core::PodSpec {
            containers: vec![core::Container::default(), core::Container::default()],
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut raw = pod.encode_to_vec();
    // Append to spec (field 2) a container (field 2) whose name (field 1) is a varint.
    raw.extend([0x12, 0x04, 0x12, 0x02, 0x08, 0x01]);
    let err = decode_to_json(&envelope("v1", "Pod", raw)).unwrap_err();
    assert!(
        matches!(&err, ProtobufError::Malformed { path, .. } if path == "spec.containers[2].name"),
        "{err}"
    );

    // Bad JSON in a RawExtension.
    let rev = apps::ControllerRevision {
        metadata: meta_named("r"),
        data: Some(RawExtension {
            raw: Some(b"{not json".to_vec()),
        }),
        revision: Some(1),
    };
    assert!(decode_to_json(&body("apps/v1", "ControllerRevision", &rev)).is_err());
}

#[test]
fn unknown_fields_are_skipped() {
    let mut raw = config_map().encode_to_vec();
    // Field 99 (varint), field 100 (fixed64), field 101 (bytes), field 102 (fixed32).
    raw.extend([0x98, 0x06, 0x2a]);
    raw.extend([0xa1, 0x06, 1, 2, 3, 4, 5, 6, 7, 8]);
    raw.extend([0xaa, 0x06, 0x02, b'h', b'i']);
    raw.extend([0xb5, 0x06, 1, 2, 3, 4]);
    let got = decode_to_json(&envelope("v1", "ConfigMap", raw)).unwrap();
    assert_eq!(got["data"]["a"], "b");
}

#[test]
fn repeated_message_fields_merge() {
    // Two occurrences of `metadata` merge, as protobuf specifies.
    let first = meta::ObjectMeta {
        name: s("cfg"),
        ..Default::default()
    }
    .encode_to_vec();
    let second = meta::ObjectMeta {
        namespace: s("ns"),
        ..Default::default()
    }
    .encode_to_vec();
    let mut raw = Vec::new();
    for part in [first, second] {
        raw.push(0x0a);
        raw.push(u8::try_from(part.len()).unwrap());
        raw.extend(part);
    }
    let got = decode_to_json(&envelope("v1", "ConfigMap", raw)).unwrap();
    assert_eq!(got["metadata"]["name"], "cfg");
    assert_eq!(got["metadata"]["namespace"], "ns");
}

#[test]
fn deeply_nested_raw_extensions_are_cut_off() {
    let mut inner = body("v1", "ConfigMap", &config_map());
    for _ in 0..100 {
        let rev = apps::ControllerRevision {
            metadata: None,
            data: Some(RawExtension { raw: Some(inner) }),
            revision: None,
        };
        inner = body("apps/v1", "ControllerRevision", &rev);
    }
    let err = decode_to_json(&inner).unwrap_err();
    assert!(err.to_string().contains("nested too deeply"), "{err}");
}
