//! Requests of junk for PATCH (every patch type) and DELETE of one resource.

use crate::cases::*;
use crate::samples::{Expect, collection, sample_name};
use r8s_api::catalog::ResourceInfo;
use serde_json::{Value, json};

/// PATCH junk of every patch type at the existing sample object.
pub fn patch_cases(c: &mut Cases, info: &ResourceInfo) {
    let name = sample_name(info);
    let coll = collection(info);
    let obj = format!("{coll}/{name}");
    let missing = format!("{coll}/missing");
    let big = oversized(info);
    for ct in [JSON_PATCH, MERGE_PATCH, SMP, APPLY] {
        let t = ct.trim_start_matches("application/");
        let q = if ct == APPLY {
            "?fieldManager=junk&"
        } else {
            "?"
        };
        let p = |label: &str| format!("PATCH {t} {label}");
        let malformed: &[u8] = if ct == APPLY {
            b"metadata: [\n  a: b"
        } else {
            b"{\"metadata\": {"
        };
        c.add(
            &p("malformed"),
            "PATCH",
            &format!("{obj}{q}"),
            Some(ct),
            malformed.to_vec(),
            BAD_REQUEST,
        );
        c.add(
            &p("over 3 MiB"),
            "PATCH",
            &format!("{obj}{q}"),
            Some(ct),
            big.clone(),
            TOO_LARGE,
        );
        c.add(
            &p("dryRun=Bogus"),
            "PATCH",
            &format!("{obj}{q}dryRun=Bogus"),
            Some(ct),
            b"{}".to_vec(),
            Expect::Invalid("dryRun"),
        );
        let (unknown, labels, stale): (Value, Value, Value) = match ct {
            JSON_PATCH => (
                json!([{"op": "add", "path": "/bogusField", "value": 1}]),
                json!([{"op": "add", "path": "/metadata/labels", "value": {"a": "bad value!"}}]),
                json!([{"op": "add", "path": "/metadata/resourceVersion", "value": "1"}]),
            ),
            APPLY => {
                let base = json!({"apiVersion": info.api_version(), "kind": info.kind, "metadata": {"name": name}});
                let mut u = base.clone();
                u["bogusField"] = json!(1);
                let mut l = base.clone();
                l["metadata"]["labels"] = json!({"a": "bad value!"});
                let mut s = base;
                s["metadata"]["resourceVersion"] = json!("1");
                (u, l, s)
            }
            _ => (
                json!({"bogusField": 1}),
                json!({"metadata": {"labels": {"a": "bad value!"}}}),
                json!({"metadata": {"resourceVersion": "1"}}),
            ),
        };
        // Strict unknown fields: 422 on the patched document, 400 for apply.
        let strict_want = if ct == APPLY {
            BAD_REQUEST
        } else {
            Expect::Invalid("patch")
        };
        c.add(
            &p("unknown field, Strict"),
            "PATCH",
            &format!("{obj}{q}fieldValidation=Strict"),
            Some(ct),
            bytes(&unknown),
            strict_want,
        );
        c.add(
            &p("invalid label value"),
            "PATCH",
            &format!("{obj}{q}"),
            Some(ct),
            bytes(&labels),
            Expect::Invalid("metadata.labels"),
        );
        c.add(
            &p("stale resourceVersion"),
            "PATCH",
            &format!("{obj}{q}"),
            Some(ct),
            bytes(&stale),
            CONFLICT,
        );
        if ct != APPLY {
            c.add(
                &p("missing object"),
                "PATCH",
                &format!("{missing}{q}"),
                Some(ct),
                b"{}".to_vec(),
                NOT_FOUND,
            );
        }
    }
    c.add(
        "PATCH application/json",
        "PATCH",
        &obj,
        JSON,
        b"{}".to_vec(),
        UNSUPPORTED,
    );
    c.add(
        "PATCH text/plain",
        "PATCH",
        &obj,
        Some("text/plain"),
        b"{}".to_vec(),
        UNSUPPORTED,
    );
    c.add(
        "PATCH apply without fieldManager",
        "PATCH",
        &obj,
        Some(APPLY),
        b"{}".to_vec(),
        Expect::Invalid("fieldManager"),
    );
    c.add(
        "PATCH json-patch not a list",
        "PATCH",
        &obj,
        Some(JSON_PATCH),
        b"{}".to_vec(),
        BAD_REQUEST,
    );
    let missing_path = json!([{"op": "replace", "path": "/nope/deeper", "value": 1}]);
    c.add(
        "PATCH json-patch missing path",
        "PATCH",
        &obj,
        Some(JSON_PATCH),
        bytes(&missing_path),
        Expect::Fail(422, "Invalid"),
    );
    let many: Vec<Value> = (0..10_001)
        .map(|_| json!({"op": "test", "path": "/kind", "value": info.kind}))
        .collect();
    c.add(
        "PATCH json-patch over 10000 operations",
        "PATCH",
        &obj,
        Some(JSON_PATCH),
        bytes(&json!(many)),
        TOO_LARGE,
    );
    let renamed = json!({"metadata": {"name": "other"}});
    c.add(
        "PATCH renames the object",
        "PATCH",
        &obj,
        Some(MERGE_PATCH),
        bytes(&renamed),
        BAD_REQUEST,
    );
    let note = json!({"metadata": {"annotations": {"note": "@@"}}});
    c.add(
        "PATCH non-UTF-8 inside a string",
        "PATCH",
        &obj,
        Some(MERGE_PATCH),
        with_bad_utf8(&note),
        Expect::Ok(200),
    );
}

/// DELETE junk at the existing sample object and its collection; nothing may be deleted.
pub fn delete_cases(c: &mut Cases, info: &ResourceInfo) {
    let coll = collection(info);
    let obj = format!("{coll}/{}", sample_name(info));
    c.add(
        "DELETE malformed body",
        "DELETE",
        &obj,
        JSON,
        b"{\"kind\": ".to_vec(),
        BAD_REQUEST,
    );
    c.add(
        "DELETE over 3 MiB",
        "DELETE",
        &obj,
        JSON,
        oversized(info),
        TOO_LARGE,
    );
    c.add(
        "DELETE propagationPolicy=Bogus",
        "DELETE",
        &format!("{obj}?propagationPolicy=Bogus"),
        None,
        Vec::new(),
        Expect::Invalid("propagationPolicy"),
    );
    let body =
        bytes(&json!({"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Bogus"}));
    c.add(
        "DELETE body propagationPolicy Bogus",
        "DELETE",
        &obj,
        JSON,
        body,
        Expect::Invalid("propagationPolicy"),
    );
    c.add(
        "DELETE dryRun=Bogus",
        "DELETE",
        &format!("{obj}?dryRun=Bogus"),
        None,
        Vec::new(),
        Expect::Invalid("dryRun"),
    );
    c.add(
        "DELETE gracePeriodSeconds=abc",
        "DELETE",
        &format!("{obj}?gracePeriodSeconds=abc"),
        None,
        Vec::new(),
        BAD_REQUEST,
    );
    let stale = bytes(&json!({"preconditions": {"resourceVersion": "1"}}));
    c.add(
        "DELETE stale precondition",
        "DELETE",
        &obj,
        JSON,
        stale,
        CONFLICT,
    );
    let uid = bytes(&json!({"preconditions": {"uid": "00000000-0000-0000-0000-000000000000"}}));
    c.add(
        "DELETE wrong uid precondition",
        "DELETE",
        &obj,
        JSON,
        uid,
        CONFLICT,
    );
    c.add(
        "DELETE missing object",
        "DELETE",
        &format!("{coll}/missing"),
        None,
        Vec::new(),
        NOT_FOUND,
    );
    if info.verbs.contains(&"deletecollection") {
        c.add(
            "deletecollection bad labelSelector",
            "DELETE",
            &format!("{coll}?labelSelector=a%20in%20(b"),
            None,
            Vec::new(),
            BAD_REQUEST,
        );
        c.add(
            "deletecollection propagationPolicy=Bogus",
            "DELETE",
            &format!("{coll}?propagationPolicy=Bogus"),
            None,
            Vec::new(),
            Expect::Invalid("propagationPolicy"),
        );
        c.add(
            "deletecollection limit=abc",
            "DELETE",
            &format!("{coll}?limit=abc"),
            None,
            Vec::new(),
            BAD_REQUEST,
        );
    } else {
        c.add(
            "deletecollection not served",
            "DELETE",
            &coll,
            None,
            Vec::new(),
            NOT_ALLOWED,
        );
    }
}
