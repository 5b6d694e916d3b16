//! Requests with bad parameters for GET, list and watch of one resource.

use crate::cases::*;
use crate::samples::{Expect, collection, sample_name};
use r8s_api::catalog::ResourceInfo;

/// GET, list and watch with bad parameters.
pub fn read_cases(c: &mut Cases, info: &ResourceInfo) {
    let coll = collection(info);
    let obj = format!("{coll}/{}", sample_name(info));
    c.get("list limit=abc", &format!("{coll}?limit=abc"), BAD_REQUEST);
    c.get(
        "list timeoutSeconds=abc",
        &format!("{coll}?timeoutSeconds=abc"),
        BAD_REQUEST,
    );
    c.get(
        "list timeoutSeconds=-1 is ignored",
        &format!("{coll}?timeoutSeconds=-1"),
        Expect::Ok(200),
    );
    for sel in ["a%20in%20(b", "a%3Db%3Dc", "!", "a%20notin%20", "%3Db"] {
        c.get(
            &format!("list labelSelector={sel}"),
            &format!("{coll}?labelSelector={sel}"),
            BAD_REQUEST,
        );
    }
    for sel in ["a", "spec.bogus%3Dx", "metadata.name%3D%3D%3Dx"] {
        c.get(
            &format!("list fieldSelector={sel}"),
            &format!("{coll}?fieldSelector={sel}"),
            BAD_REQUEST,
        );
    }
    c.get(
        "list fieldSelector=metadata.name=x",
        &format!("{coll}?fieldSelector=metadata.name%3Dx"),
        Expect::Ok(200),
    );
    c.get(
        "list resourceVersionMatch=Bogus",
        &format!("{coll}?resourceVersion=1&resourceVersionMatch=Bogus"),
        Expect::Invalid("resourceVersionMatch"),
    );
    c.get(
        "list resourceVersionMatch without resourceVersion",
        &format!("{coll}?resourceVersionMatch=Exact"),
        Expect::Invalid("resourceVersionMatch"),
    );
    c.get(
        "list sendInitialEvents",
        &format!("{coll}?sendInitialEvents=true"),
        Expect::Invalid("sendInitialEvents"),
    );
    c.get(
        "list continue=garbage",
        &format!("{coll}?continue=garbage"),
        BAD_REQUEST,
    );
    c.get(
        "list includeObject=X without Table",
        &format!("{coll}?includeObject=X"),
        Expect::Ok(200),
    );
    c.0.push(Case {
        label: "list includeObject=X as Table".into(),
        method: "GET",
        path: format!("{coll}?includeObject=X"),
        content_type: None,
        accept: Some(TABLE),
        body: Vec::new(),
        want: BAD_REQUEST,
    });
    c.get("get missing object", &format!("{coll}/missing"), NOT_FOUND);
    for bad in ["..", "%2E%2E", "a%2Fb", "a%25b"] {
        c.get(
            &format!("get name {bad}"),
            &format!("{coll}/{bad}"),
            BAD_REQUEST,
        );
    }
    c.get(
        "get unknown subresource",
        &format!("{obj}/bogus"),
        NOT_FOUND,
    );
    c.get(
        "watch bad labelSelector",
        &format!("{coll}?watch=true&labelSelector=a%20in%20(b"),
        BAD_REQUEST,
    );
    c.get(
        "watch timeoutSeconds=abc",
        &format!("{coll}?watch=true&timeoutSeconds=abc"),
        BAD_REQUEST,
    );
    c.get(
        "watch resourceVersionMatch=Exact",
        &format!("{coll}?watch=true&resourceVersionMatch=Exact"),
        Expect::Invalid("resourceVersionMatch"),
    );
    c.get(
        "watch name and fieldSelector disagree",
        &format!("{obj}?watch=true&fieldSelector=metadata.name%3Dother"),
        BAD_REQUEST,
    );
    // A negative timeout has already expired: the watch ends at once.
    c.get(
        "watch timeoutSeconds=-1",
        &format!("{coll}?watch=true&timeoutSeconds=-1"),
        Expect::Ok(200),
    );
}
