//! Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`), decoded
//! into the JSON form of the object.
//!
//! kubectl's typed commands (`create deployment`, `create namespace`, `create secret`,
//! `autoscale`, ...) send protobuf. A body is the magic `k8s\0` followed by a
//! `runtime.Unknown` message: `typeMeta {apiVersion, kind}`, `raw` (the object's own
//! protobuf encoding), `contentEncoding` and `contentType`.
//!
//! Decoding is generic: `schema.txt` lists every message of the GA API groups (v1, v2)
//! with its fields' numbers, types and Go JSON shape, and the `decode` module walks the
//! wire format with it. The result equals what the Go apiserver gets by decoding into its
//! Go struct and encoding that as JSON (checked against bodies captured from kubectl 1.32
//! in `testdata/`, and against upstream's round-trip fixtures by an ignored test).
//! To regenerate the schema for another Kubernetes release, run `gen_schema.py` on
//! checkouts of k8s.io/api and k8s.io/apimachinery at that release.

mod decode;
mod schema;
mod special;
mod wire;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

use serde_json::Value;

use schema::Schema;
use wire::{Reader, WireType};

/// The four bytes every Kubernetes protobuf body starts with.
pub const MAGIC: &[u8; 4] = b"k8s\0";

/// The media type of Kubernetes protobuf bodies.
pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The protobuf package of `meta.k8s.io/v1`, home of the options kinds.
const META_PACKAGE: &str = "k8s.io.apimachinery.pkg.apis.meta.v1";

/// Kinds that upstream registers in every group version (`metav1.AddToGroupVersion`), so
/// a client may send them under any apiVersion, e.g. DeleteOptions as `apps/v1`, and the
/// unversioned discovery kinds, sent as `v1`.
const META_KINDS: &[&str] = &[
    "DeleteOptions",
    "ListOptions",
    "GetOptions",
    "CreateOptions",
    "UpdateOptions",
    "PatchOptions",
    "WatchEvent",
    "Status",
    "APIVersions",
    "APIGroupList",
    "APIGroup",
    "APIResourceList",
];

/// Why a protobuf body could not be decoded. All are client errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtobufError {
    /// The body lacks the `k8s\0` prefix.
    #[error("body is not Kubernetes protobuf: missing the k8s\\0 prefix")]
    NotProtobuf,
    /// The envelope carries no apiVersion or no kind.
    #[error("protobuf body does not name its apiVersion and kind")]
    MissingTypeMeta,
    /// The envelope's object is compressed or in another encoding.
    #[error("protobuf body with content encoding {0:?} and content type {1:?} is not supported")]
    UnsupportedEncoding(String, String),
    /// No served kind has this apiVersion and kind.
    #[error("no kind \"{kind}\" is registered for version \"{api_version}\" in protobuf")]
    UnknownKind { api_version: String, kind: String },
    /// The bytes do not decode as the kind's schema (truncated, wrong types, ...).
    #[error("malformed protobuf{}: {reason}", at_path(.path))]
    Malformed { path: String, reason: String },
    /// The compiled-in schema is corrupt (a build defect, not the client's).
    #[error("protobuf schema is corrupt: {0}")]
    Schema(String),
}

fn at_path(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!(" at {path}")
    }
}

impl From<decode::DecodeError> for ProtobufError {
    fn from(e: decode::DecodeError) -> Self {
        ProtobufError::Malformed {
            path: e.path_string(),
            reason: e.reason,
        }
    }
}

impl From<wire::WireError> for ProtobufError {
    fn from(e: wire::WireError) -> Self {
        ProtobufError::Malformed {
            path: String::new(),
            reason: e.0,
        }
    }
}

/// Whether `body` is a Kubernetes protobuf body (starts with `k8s\0`).
pub fn is_protobuf(body: &[u8]) -> bool {
    body.starts_with(MAGIC)
}

/// Decodes a Kubernetes protobuf body into the object's JSON, with `apiVersion` and `kind`
/// taken from the envelope.
pub fn decode_to_json(body: &[u8]) -> Result<Value, ProtobufError> {
    decode_body(body, 0)
}

/// The envelope around the object: `runtime.Unknown`.
#[derive(Debug, Default)]
struct Envelope<'a> {
    api_version: String,
    kind: String,
    raw: &'a [u8],
    content_encoding: String,
    content_type: String,
}

impl<'a> Envelope<'a> {
    fn parse(bytes: &'a [u8]) -> Result<Self, wire::WireError> {
        let mut env = Envelope::default();
        let mut reader = Reader::new(bytes);
        while !reader.is_empty() {
            match reader.key()? {
                (1, WireType::Len) => {
                    let mut meta = Reader::new(reader.len_delimited()?);
                    while !meta.is_empty() {
                        match meta.key()? {
                            (1, WireType::Len) => env.api_version = text(meta.len_delimited()?),
                            (2, WireType::Len) => env.kind = text(meta.len_delimited()?),
                            (_, wire) => meta.skip(wire)?,
                        }
                    }
                }
                (2, WireType::Len) => env.raw = reader.len_delimited()?,
                (3, WireType::Len) => env.content_encoding = text(reader.len_delimited()?),
                (4, WireType::Len) => env.content_type = text(reader.len_delimited()?),
                (1..=4, wire) => {
                    return Err(wire::WireError::new(format!(
                        "wrong wire type {wire:?} in the envelope"
                    )));
                }
                (_, wire) => reader.skip(wire)?,
            }
        }
        Ok(env)
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Decodes a whole body; `depth` counts bodies nested in RawExtensions.
fn decode_body(body: &[u8], depth: usize) -> Result<Value, ProtobufError> {
    let payload = body.strip_prefix(MAGIC).ok_or(ProtobufError::NotProtobuf)?;
    let env = Envelope::parse(payload)?;
    if !env.content_encoding.is_empty()
        || !(env.content_type.is_empty() || env.content_type == CONTENT_TYPE)
    {
        return Err(ProtobufError::UnsupportedEncoding(
            env.content_encoding,
            env.content_type,
        ));
    }
    if env.api_version.is_empty() || env.kind.is_empty() {
        return Err(ProtobufError::MissingTypeMeta);
    }
    let schema = Schema::get().map_err(|e| ProtobufError::Schema(e.to_string()))?;
    let index = resolve_kind(schema, &env.api_version, &env.kind).ok_or_else(|| {
        ProtobufError::UnknownKind {
            api_version: env.api_version.clone(),
            kind: env.kind.clone(),
        }
    })?;
    let mut object = match decode::message(schema, index, env.raw, depth)? {
        Value::Object(object) => object,
        _ => {
            return Err(ProtobufError::UnknownKind {
                api_version: env.api_version,
                kind: env.kind,
            });
        }
    };
    object.insert("apiVersion".into(), Value::String(env.api_version));
    object.insert("kind".into(), Value::String(env.kind));
    Ok(Value::Object(object))
}

/// The message of a top-level kind: one with `metadata` in the apiVersion's package (so
/// that parts such as `PodSpec` are refused), a subresource options kind such as
/// `PodLogOptions`, or one of the meta kinds every group version carries.
fn resolve_kind(schema: &Schema, api_version: &str, kind: &str) -> Option<usize> {
    // Kinds are Go identifiers; anything else could address a message of another package.
    if !kind.chars().all(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    let package = schema.package(api_version)?;
    let own = schema
        .message_index(&format!("{package}.{kind}"))
        .filter(|&i| {
            kind.ends_with("Options")
                || schema
                    .message(i)
                    .is_some_and(|m| m.fields.iter().any(|f| f.json == "metadata"))
        });
    own.or_else(|| {
        META_KINDS
            .contains(&kind)
            .then(|| schema.message_index(&format!("{META_PACKAGE}.{kind}")))
            .flatten()
    })
}
