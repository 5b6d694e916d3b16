//! `/openapi/v2`: kubectl asks for it only as gnostic protobuf
//! (`openapi_v2.Document`), and only when server-side field validation does not apply —
//! notably for `kind: List` documents, which kubectl always validates client-side. Every
//! served kind advertises server-side validation in `/openapi/v3`, so the v2 document carries
//! no definitions: kubectl then finds no client-side schema for the items and leaves their
//! validation to the server, which receives them one by one with `fieldValidation`.

use std::sync::{Arc, OnceLock};

use super::schemas::KUBERNETES_VERSION;

/// The media type kubectl asks for (`Accept`) on `/openapi/v2`.
pub const V2_PROTOBUF_ACCEPT: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";

/// The `Content-Type` to answer [`V2_PROTOBUF_ACCEPT`] with, as upstream does: Go's media
/// type parser rejects the `@` form, so kubectl fails on a response labelled with it
/// ("mime: unexpected content after media subtype").
pub const V2_PROTOBUF_CONTENT_TYPE: &str =
    "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// The protobuf-encoded `openapi_v2.Document`: `swagger: "2.0"` and its `info`.
pub fn v2_document() -> Arc<Vec<u8>> {
    static DOC: OnceLock<Arc<Vec<u8>>> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut info = Vec::new();
        string_field(&mut info, 1, "Kubernetes"); // Info.title
        string_field(&mut info, 2, KUBERNETES_VERSION); // Info.version
        let mut doc = Vec::new();
        string_field(&mut doc, 1, "2.0"); // Document.swagger
        bytes_field(&mut doc, 2, &info); // Document.info
        Arc::new(doc)
    })
    .clone()
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A length-delimited field (wire type 2).
fn bytes_field(out: &mut Vec<u8>, number: u32, value: &[u8]) {
    varint(out, u64::from(number) << 3 | 2);
    varint(out, value.len() as u64);
    out.extend_from_slice(value);
}

fn string_field(out: &mut Vec<u8>, number: u32, value: &str) {
    bytes_field(out, number, value.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_is_swagger_2_with_info() {
        let doc = v2_document();
        // field 1 (swagger), wire type 2, length 3, "2.0"
        assert_eq!(&doc[..5], b"\x0a\x032.0");
        // field 2 (info), wire type 2
        assert_eq!(doc[5], 0x12);
        assert_eq!(usize::from(doc[6]), doc.len() - 7);
        assert_eq!(&doc[7..9], b"\x0a\x0a");
        assert_eq!(&doc[9..19], b"Kubernetes");
    }

    #[test]
    fn varints() {
        let mut out = Vec::new();
        varint(&mut out, 300);
        assert_eq!(out, [0xac, 0x02]);
    }
}
