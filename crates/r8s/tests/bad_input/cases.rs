//! Requests of junk for POST and PUT of one resource, and the helpers every case list uses.

use crate::samples::{self, Expect, NS, collection, path_segment_names, sample, sample_name};
use r8s_api::catalog::ResourceInfo;
use serde_json::{Value, json};

pub const JSON: Option<&str> = Some("application/json");
pub const YAML: Option<&str> = Some("application/yaml");
pub const PROTOBUF: Option<&str> = Some("application/vnd.kubernetes.protobuf");
pub const JSON_PATCH: &str = "application/json-patch+json";
pub const MERGE_PATCH: &str = "application/merge-patch+json";
pub const SMP: &str = "application/strategic-merge-patch+json";
pub const APPLY: &str = "application/apply-patch+yaml";
pub const TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io";

pub const BAD_REQUEST: Expect = Expect::Fail(400, "BadRequest");
pub const NOT_FOUND: Expect = Expect::Fail(404, "NotFound");
pub const NOT_ALLOWED: Expect = Expect::Fail(405, "MethodNotAllowed");
pub const CONFLICT: Expect = Expect::Fail(409, "Conflict");
pub const TOO_LARGE: Expect = Expect::Fail(413, "RequestEntityTooLarge");
pub const UNSUPPORTED: Expect = Expect::Fail(415, "UnsupportedMediaType");

/// One request and what it must get.
pub struct Case {
    pub label: String,
    pub method: &'static str,
    pub path: String,
    pub content_type: Option<&'static str>,
    pub accept: Option<&'static str>,
    pub body: Vec<u8>,
    pub want: Expect,
}

/// Builds the cases of one resource.
pub struct Cases(pub Vec<Case>);

impl Cases {
    pub fn add(
        &mut self,
        label: &str,
        method: &'static str,
        path: &str,
        ct: Option<&'static str>,
        body: Vec<u8>,
        want: Expect,
    ) {
        self.0.push(Case {
            label: label.to_string(),
            method,
            path: path.to_string(),
            content_type: ct,
            accept: None,
            body,
            want,
        });
    }

    pub fn get(&mut self, label: &str, path: &str, want: Expect) {
        self.add(label, "GET", path, None, Vec::new(), want);
    }
}

/// JSON bytes of a value.
pub fn bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).expect("json")
}

/// `v` serialized with the string `"@@"` replaced by raw invalid UTF-8.
pub fn with_bad_utf8(v: &Value) -> Vec<u8> {
    let text = serde_json::to_string(v).expect("json");
    let mut out = Vec::new();
    for (i, part) in text.split("@@").enumerate() {
        if i > 0 {
            out.extend_from_slice(b"\xff\xfe");
        }
        out.extend_from_slice(part.as_bytes());
    }
    out
}

/// A JSON body just over the 3 MiB limit.
pub fn oversized(info: &ResourceInfo) -> Vec<u8> {
    let mut obj = sample(info, "big");
    obj["metadata"]["annotations"] = json!({"big": "a".repeat(3 * 1024 * 1024)});
    bytes(&obj)
}

/// `v` renamed.
pub fn set_name(mut v: Value, name: &str) -> Value {
    v["metadata"]["name"] = json!(name);
    v
}

/// Body faults shared by POST and PUT: none of these can decode into an object.
pub fn undecodable(c: &mut Cases, method: &'static str, path: &str, info: &ResourceInfo) {
    let deep = "[".repeat(20_000);
    let mut other = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}});
    if info.kind == "Namespace" {
        other["kind"] = json!("ConfigMap");
    }
    let mut bogus_kind = sample(info, "x");
    bogus_kind["kind"] = json!("Bogus");
    let mut bogus_version = sample(info, "x");
    bogus_version["apiVersion"] = json!("bogus.example.com/v9");
    let cases: Vec<(&str, Option<&'static str>, Vec<u8>, Expect)> = vec![
        (
            "malformed JSON",
            JSON,
            b"{\"metadata\": {".to_vec(),
            BAD_REQUEST,
        ),
        (
            "malformed YAML",
            YAML,
            b"metadata: [\n  a: b".to_vec(),
            BAD_REQUEST,
        ),
        (
            "protobuf garbage",
            PROTOBUF,
            b"k8s\0\xff\xfe\x01\x02garbage\x0a\xff".to_vec(),
            BAD_REQUEST,
        ),
        (
            "protobuf without magic",
            PROTOBUF,
            bytes(&sample(info, "x")),
            BAD_REQUEST,
        ),
        ("empty body", JSON, Vec::new(), BAD_REQUEST),
        ("JSON array", JSON, b"[1, 2]".to_vec(), BAD_REQUEST),
        ("JSON string", JSON, b"\"pod\"".to_vec(), BAD_REQUEST),
        ("unknown kind", JSON, bytes(&bogus_kind), BAD_REQUEST),
        ("another kind", JSON, bytes(&other), BAD_REQUEST),
        (
            "unknown apiVersion",
            JSON,
            bytes(&bogus_version),
            BAD_REQUEST,
        ),
        (
            "deeply nested JSON",
            JSON,
            deep.clone().into_bytes(),
            BAD_REQUEST,
        ),
        ("deeply nested YAML", YAML, deep.into_bytes(), BAD_REQUEST),
        (
            "non-UTF-8 outside strings",
            JSON,
            b"{\xff\xfe}".to_vec(),
            BAD_REQUEST,
        ),
        (
            "non-UTF-8 YAML",
            YAML,
            b"metadata:\n  name: \xff\xfe\n".to_vec(),
            BAD_REQUEST,
        ),
        (
            "unsupported media type",
            Some("text/plain"),
            bytes(&sample(info, "x")),
            UNSUPPORTED,
        ),
        ("over 3 MiB", JSON, oversized(info), TOO_LARGE),
    ];
    for (label, ct, body, want) in cases {
        c.add(&format!("{method} {label}"), method, path, ct, body, want);
    }
}

/// POST junk at the collection.
pub fn create_cases(c: &mut Cases, info: &ResourceInfo) {
    let coll = collection(info);
    undecodable(c, "POST", &coll, info);
    let lenient = path_segment_names(info);
    let name_want = |field| {
        if lenient {
            Expect::Ok(201)
        } else {
            Expect::Invalid(field)
        }
    };
    c.add(
        "uppercase name",
        "POST",
        &coll,
        JSON,
        bytes(&sample(info, "BadName")),
        name_want("metadata.name"),
    );
    c.add(
        "300 character name",
        "POST",
        &coll,
        JSON,
        bytes(&sample(info, &"a".repeat(300))),
        name_want("metadata.name"),
    );
    c.add(
        "name ../x",
        "POST",
        &coll,
        JSON,
        bytes(&sample(info, "../x")),
        Expect::Invalid("metadata.name"),
    );
    let mut labelled = sample(info, "labelled");
    labelled["metadata"]["labels"] = json!({"a": "bad value!"});
    c.add(
        "invalid label value",
        "POST",
        &coll,
        JSON,
        bytes(&labelled),
        Expect::Invalid("metadata.labels"),
    );
    let mut unknown = sample(info, "strict");
    unknown["bogusField"] = json!(1);
    unknown["metadata"]["bogusMeta"] = json!("x");
    c.add(
        "unknown fields, Strict",
        "POST",
        &format!("{coll}?fieldValidation=Strict"),
        JSON,
        bytes(&unknown),
        BAD_REQUEST,
    );
    let good = bytes(&sample(info, "never"));
    c.add(
        "fieldValidation=Bogus",
        "POST",
        &format!("{coll}?fieldValidation=Bogus"),
        JSON,
        good.clone(),
        Expect::Invalid("fieldValidation"),
    );
    c.add(
        "dryRun=Bogus",
        "POST",
        &format!("{coll}?dryRun=Bogus"),
        JSON,
        good.clone(),
        Expect::Invalid("dryRun"),
    );
    c.add(
        "limit=abc on POST is ignored",
        "POST",
        &format!("{coll}?dryRun=All&limit=abc"),
        JSON,
        good.clone(),
        Expect::Ok(201),
    );
    let mut utf8 = sample(info, &format!("utf8-strings-{}", sample_name(info)));
    utf8["metadata"]["annotations"] = json!({"note": "@@"});
    // Go's JSON decoder replaces invalid UTF-8 inside strings with U+FFFD.
    c.add(
        "non-UTF-8 inside a string",
        "POST",
        &coll,
        JSON,
        with_bad_utf8(&utf8),
        Expect::Ok(201),
    );
    if info.namespaced {
        let mut other_ns = sample(info, "elsewhere");
        other_ns["metadata"]["namespace"] = json!("other");
        c.add(
            "body namespace differs from URL",
            "POST",
            &coll,
            JSON,
            bytes(&other_ns),
            BAD_REQUEST,
        );
        let missing = coll.replace(&format!("/namespaces/{NS}/"), "/namespaces/nope/");
        c.add(
            "namespace does not exist",
            "POST",
            &missing,
            JSON,
            good.clone(),
            NOT_FOUND,
        );
        let cluster_wide = format!("{}/{}", samples::base(info), info.plural);
        c.add(
            "no namespace in URL",
            "POST",
            &cluster_wide,
            JSON,
            good.clone(),
            NOT_ALLOWED,
        );
        c.add(
            "deletecollection without namespace",
            "DELETE",
            &cluster_wide,
            None,
            Vec::new(),
            NOT_ALLOWED,
        );
    }
    c.add(
        "PUT on a collection",
        "PUT",
        &coll,
        JSON,
        good.clone(),
        NOT_ALLOWED,
    );
    c.add(
        "PATCH on a collection",
        "PATCH",
        &coll,
        Some(MERGE_PATCH),
        b"{}".to_vec(),
        NOT_ALLOWED,
    );
}

/// PUT junk at the existing sample object.
pub fn update_cases(c: &mut Cases, info: &ResourceInfo) {
    let name = sample_name(info);
    let obj = format!("{}/{name}", collection(info));
    undecodable(c, "PUT", &obj, info);
    let good = sample(info, &name);
    let mut stale = good.clone();
    stale["metadata"]["resourceVersion"] = json!("1");
    c.add(
        "stale resourceVersion",
        "PUT",
        &obj,
        JSON,
        bytes(&stale),
        CONFLICT,
    );
    c.add(
        "name differs from URL",
        "PUT",
        &obj,
        JSON,
        bytes(&set_name(good.clone(), "other")),
        BAD_REQUEST,
    );
    if info.namespaced {
        let mut other_ns = good.clone();
        other_ns["metadata"]["namespace"] = json!("other");
        c.add(
            "namespace differs from URL",
            "PUT",
            &obj,
            JSON,
            bytes(&other_ns),
            BAD_REQUEST,
        );
    }
    let mut labelled = good.clone();
    labelled["metadata"]["labels"] = json!({"a": "bad value!"});
    c.add(
        "invalid label value",
        "PUT",
        &obj,
        JSON,
        bytes(&labelled),
        Expect::Invalid("metadata.labels"),
    );
    let mut unknown = good.clone();
    unknown["bogusField"] = json!(1);
    c.add(
        "unknown field, Strict",
        "PUT",
        &format!("{obj}?fieldValidation=Strict"),
        JSON,
        bytes(&unknown),
        BAD_REQUEST,
    );
    c.add(
        "dryRun=Bogus",
        "PUT",
        &format!("{obj}?dryRun=Bogus"),
        JSON,
        bytes(&good),
        Expect::Invalid("dryRun"),
    );
    c.add(
        "fieldValidation=Bogus",
        "PUT",
        &format!("{obj}?fieldValidation=Bogus"),
        JSON,
        bytes(&good),
        Expect::Invalid("fieldValidation"),
    );
    c.add(
        "POST on an object",
        "POST",
        &obj,
        JSON,
        bytes(&good),
        NOT_ALLOWED,
    );
}
