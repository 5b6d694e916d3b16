//! Request body decoding and response content negotiation.

use crate::error::{ApiError, ApiResult};
use axum::http::HeaderMap;
use bytes::Bytes;
use serde_json::Value;

/// Largest request body accepted, as upstream (3 MiB).
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// What the client asked to get back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Representation {
    /// The object or list itself.
    Object,
    /// A meta.k8s.io/v1 Table (kubectl get).
    Table,
    /// PartialObjectMetadata(List): metadata only.
    Metadata,
}

/// Pick the representation from the Accept header (the first acceptable entry wins).
pub fn negotiate(headers: &HeaderMap) -> Representation {
    let accept = header(headers, "accept");
    for entry in accept.split(',') {
        let params: Vec<&str> = entry.split(';').map(str::trim).collect();
        let Some(media) = params.first() else {
            continue;
        };
        if !(media.eq_ignore_ascii_case("application/json")
            || media.eq_ignore_ascii_case("application/yaml")
            || *media == "*/*")
        {
            continue;
        }
        let as_param = params.iter().find_map(|p| p.strip_prefix("as="));
        match as_param {
            Some("Table") => return Representation::Table,
            Some("PartialObjectMetadata") | Some("PartialObjectMetadataList") => {
                return Representation::Metadata;
            }
            Some(_) => continue,
            None => return Representation::Object,
        }
    }
    Representation::Object
}

/// Whether the client wants aggregated discovery (apidiscovery.k8s.io/v2).
pub fn wants_aggregated_discovery(headers: &HeaderMap) -> bool {
    let accept = header(headers, "accept");
    accept.split(',').any(|entry| {
        entry.contains("g=apidiscovery.k8s.io")
            && entry.contains("as=APIGroupDiscoveryList")
            && (entry.contains("v=v2;")
                || entry.trim_end().ends_with("v=v2")
                || entry.contains("v=v2 "))
    })
}

/// A header as a string ("" if absent or not text).
pub fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// The media type of the request body, without parameters, lower-cased.
pub fn content_type(headers: &HeaderMap) -> String {
    header(headers, "content-type")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Decode an object body: JSON, YAML or Kubernetes protobuf.
pub fn decode_body(headers: &HeaderMap, body: &[u8]) -> ApiResult<Value> {
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::too_large(MAX_BODY_BYTES));
    }
    let ct = content_type(headers);
    match ct.as_str() {
        "application/vnd.kubernetes.protobuf" => r8s_api::protobuf::decode_to_json(body)
            .map_err(|e| ApiError::bad_request(format!("unable to decode protobuf body: {e}"))),
        "application/yaml"
        | "application/x-yaml"
        | "text/yaml"
        | "application/apply-patch+yaml" => decode_yaml(body),
        "" | "application/json" | "*/*" => decode_json(body),
        other => Err(ApiError::unsupported_media_type(other)),
    }
}

/// The body with invalid UTF-8 replaced by U+FFFD, as Go's JSON decoder treats invalid
/// bytes inside strings (bytes outside strings still fail to parse).
pub fn lossy_utf8(body: &Bytes) -> Bytes {
    match String::from_utf8_lossy(body) {
        std::borrow::Cow::Borrowed(_) => body.clone(),
        std::borrow::Cow::Owned(fixed) => Bytes::from(fixed),
    }
}

/// Decode JSON with upstream-style error text.
pub fn decode_json(body: &[u8]) -> ApiResult<Value> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("the body of the request was empty"));
    }
    let fixed = String::from_utf8_lossy(body);
    serde_json::from_slice(fixed.as_bytes()).map_err(|e| {
        ApiError::bad_request(format!(
            "error decoding request body: couldn't get version/kind; json parse error: {e}"
        ))
    })
}

/// Decode YAML (or JSON, which is YAML) into JSON values.
pub fn decode_yaml(body: &[u8]) -> ApiResult<Value> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("the body of the request was empty"));
    }
    let v: serde_yaml::Value = serde_yaml::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error converting YAML to JSON: {e}")))?;
    serde_json::to_value(v)
        .map_err(|e| ApiError::bad_request(format!("error converting YAML to JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn accept(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("accept", HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn kubectl_get_asks_for_tables() {
        let h = accept(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json",
        );
        assert_eq!(negotiate(&h), Representation::Table);
        assert_eq!(
            negotiate(&accept("application/json")),
            Representation::Object
        );
        assert_eq!(negotiate(&HeaderMap::new()), Representation::Object);
        assert_eq!(
            negotiate(&accept(
                "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io"
            )),
            Representation::Metadata
        );
    }

    #[test]
    fn aggregated_discovery_accept() {
        let h = accept(
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json",
        );
        assert!(wants_aggregated_discovery(&h));
        assert!(!wants_aggregated_discovery(&accept("application/json")));
    }

    #[test]
    fn junk_bodies_are_400() {
        let h = HeaderMap::new();
        assert_eq!(
            decode_body(&h, b"{not json").unwrap_err().code.as_u16(),
            400
        );
        assert_eq!(decode_body(&h, b"").unwrap_err().code.as_u16(), 400);
        let mut y = HeaderMap::new();
        y.insert("content-type", HeaderValue::from_static("application/yaml"));
        assert_eq!(decode_body(&y, b"a: [").unwrap_err().code.as_u16(), 400);
        let mut x = HeaderMap::new();
        x.insert("content-type", HeaderValue::from_static("text/plain"));
        assert_eq!(decode_body(&x, b"{}").unwrap_err().code.as_u16(), 415);
    }

    #[test]
    fn invalid_utf8_in_strings_is_replaced() {
        let v = decode_json(b"{\"a\": \"x\xffy\"}").unwrap();
        assert_eq!(v["a"], "x\u{fffd}y");
        assert_eq!(decode_json(b"{\xff: 1}").unwrap_err().code.as_u16(), 400);
        assert_eq!(&lossy_utf8(&Bytes::from_static(b"ok"))[..], b"ok");
    }
}
