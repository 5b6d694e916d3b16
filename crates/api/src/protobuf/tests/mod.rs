//! End-to-end tests of protobuf body decoding: bodies captured from real kubectl
//! ([`kubectl`]), bodies encoded with the independent `k8s-pb` message types
//! ([`encoded`]), and hostile input ([`hostile`]).

mod encoded;
mod hostile;
mod kubectl;

use std::collections::BTreeMap;
use std::path::PathBuf;

use k8s_pb::apimachinery::pkg::api::resource::Quantity;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
use prost::Message as _;
use serde_json::Value;

use super::MAGIC;

pub(super) fn testdata(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("src/protobuf/testdata")
        .join(name)
}

/// A request body as client-go writes it: the magic, then a `runtime.Unknown`.
pub(super) fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some(api_version.into()),
            kind: Some(kind.into()),
        }),
        raw: Some(raw),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    let mut body = MAGIC.to_vec();
    body.extend(unknown.encode_to_vec());
    body
}

pub(super) fn body(api_version: &str, kind: &str, message: &impl prost::Message) -> Vec<u8> {
    envelope(api_version, kind, message.encode_to_vec())
}

pub(super) fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

pub(super) fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub(super) fn quantity(v: &str) -> Quantity {
    Quantity { string: s(v) }
}

pub(super) fn meta_named(name: &str) -> Option<meta::ObjectMeta> {
    Some(meta::ObjectMeta {
        name: s(name),
        ..Default::default()
    })
}

/// The first difference between two JSON values, as a path and both sides.
pub(super) fn first_difference(path: &str, got: &Value, want: &Value) -> Option<String> {
    match (got, want) {
        (Value::Object(g), Value::Object(w)) => {
            for (k, wv) in w {
                let p = format!("{path}.{k}");
                match g.get(k) {
                    None => return Some(format!("{p}: missing, want {wv}")),
                    Some(gv) => {
                        if let Some(d) = first_difference(&p, gv, wv) {
                            return Some(d);
                        }
                    }
                }
            }
            g.keys()
                .find(|k| !w.contains_key(*k))
                .map(|k| format!("{path}.{k}: unexpected {}", g[k]))
        }
        (Value::Array(g), Value::Array(w)) if g.len() == w.len() => g
            .iter()
            .zip(w)
            .enumerate()
            .find_map(|(i, (gv, wv))| first_difference(&format!("{path}[{i}]"), gv, wv)),
        _ if got == want => None,
        _ => Some(format!("{path}: got {got}, want {want}")),
    }
}

#[track_caller]
pub(super) fn assert_json(got: &Value, want: &Value) {
    if let Some(d) = first_difference("", got, want) {
        panic!("{d}\ngot: {got:#}");
    }
}
