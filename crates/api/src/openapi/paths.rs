//! `paths`: the REST operations of one group-version, named and tagged like upstream's.
//!
//! kubectl reads two things from here: the PATCH operation of a kind (with its
//! `x-kubernetes-group-version-kind` and the `fieldValidation` parameter) to decide that the
//! server validates fields, and any operation's group-version-kind for `kubectl explain`.

use serde_json::{Map, Value, json};

use super::params::{DELETING, LISTING, LOG, PATCHING, PRETTY, Param, WRITE, path_param, query};
use super::schemas::{API_RESOURCE_LIST, DELETE_OPTIONS, PATCH, REF_PREFIX, STATUS, schema_name};
use crate::catalog::{ResourceInfo, Subresource};

/// Content types every object response is offered in.
const OBJECT_TYPES: &[&str] = &[
    "application/json",
    "application/yaml",
    "application/vnd.kubernetes.protobuf",
];
/// List responses may also be watch streams.
const LIST_TYPES: &[&str] = &[
    "application/json",
    "application/yaml",
    "application/vnd.kubernetes.protobuf",
    "application/json;stream=watch",
    "application/vnd.kubernetes.protobuf;stream=watch",
];
/// The PATCH body formats the server accepts.
const PATCH_TYPES: &[&str] = &[
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
];

/// `AppsV1`, `CoreV1`, `RbacAuthorizationV1`: the group-version part of operation ids.
fn gv_word(group: &str, version: &str) -> String {
    let group = if group.is_empty() { "core" } else { group };
    let group = group.strip_suffix(".k8s.io").unwrap_or(group);
    let mut out: String = group.split('.').map(capitalize).collect();
    out.push_str(&capitalize(version));
    out
}

/// `apps_v1`, `core_v1`, `rbacAuthorization_v1`: the operation tag.
fn tag(group: &str, version: &str) -> String {
    let word = gv_word(group, version);
    let group_part = &word[..word.len() - version.len()];
    let mut chars = group_part.chars();
    let lowered: String = chars
        .next()
        .map(|c| c.to_ascii_lowercase())
        .into_iter()
        .chain(chars)
        .collect();
    format!("{lowered}_{version}")
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map(|c| c.to_ascii_uppercase())
        .into_iter()
        .chain(chars)
        .collect()
}

fn content(types: &[&str], schema: &Value) -> Value {
    let map: Map<String, Value> = types
        .iter()
        .map(|t| (t.to_string(), json!({ "schema": schema })))
        .collect();
    Value::Object(map)
}

fn reference(definition: &str) -> Value {
    json!({ "$ref": format!("{REF_PREFIX}{definition}") })
}

/// Everything one operation needs besides its method.
struct Op<'a> {
    id: String,
    description: String,
    action: &'a str,
    gvk: Value,
    params: &'a [Param],
    body: Option<Value>,
    body_types: &'a [&'a str],
    response: Value,
    response_types: &'a [&'a str],
    /// Extra success codes besides 200 (201 for create/replace, 202 for delete).
    also: &'a [(&'a str, &'a str)],
}

fn operation(tag: &str, op: Op<'_>) -> Value {
    let ok = json!({ "content": content(op.response_types, &op.response), "description": "OK" });
    let mut responses = Map::new();
    responses.insert("200".into(), ok);
    for (code, description) in op.also {
        responses.insert(
            code.to_string(),
            json!({ "content": content(op.response_types, &op.response), "description": description }),
        );
    }
    responses.insert("401".into(), json!({ "description": "Unauthorized" }));
    let mut out = json!({
        "description": op.description,
        "operationId": op.id,
        "responses": responses,
        "tags": [tag],
        "x-kubernetes-action": op.action,
        "x-kubernetes-group-version-kind": op.gvk,
    });
    if !op.params.is_empty() {
        out["parameters"] = Value::Array(query(op.params));
    }
    if let Some(body) = op.body {
        out["requestBody"] = json!({ "content": content(op.body_types, &body), "required": true });
    }
    out
}

/// All paths of `group`/`version`: discovery, then every resource's operations.
pub(super) fn paths(group: &str, version: &str, resources: &[&ResourceInfo]) -> Map<String, Value> {
    let gv = gv_word(group, version);
    let tag = tag(group, version);
    let prefix = if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    };
    let mut out = Map::new();
    out.insert(
        format!("{prefix}/"),
        json!({ "get": {
            "description": "get available resources",
            "operationId": format!("get{gv}APIResources"),
            "responses": {
                "200": { "content": content(OBJECT_TYPES, &reference(API_RESOURCE_LIST)), "description": "OK" },
                "401": { "description": "Unauthorized" },
            },
            "tags": [tag],
        }}),
    );
    for r in resources {
        resource_paths(&mut out, &prefix, &gv, &tag, r);
    }
    out
}

fn resource_paths(
    out: &mut Map<String, Value>,
    prefix: &str,
    gv: &str,
    tag: &str,
    r: &ResourceInfo,
) {
    let Some(object) = schema_name(r.group, r.version, r.kind) else {
        return;
    };
    let object = reference(&object);
    let list = schema_name(r.group, r.version, &r.list_kind()).map(|l| reference(&l));
    let gvk = json!({ "group": r.group, "kind": r.kind, "version": r.version });
    let ns = if r.namespaced { "Namespaced" } else { "" };
    let kind = r.kind;
    let has = |verb: &str| r.verbs.contains(&verb);
    let scope = if r.namespaced {
        "namespaces/{namespace}/"
    } else {
        ""
    };
    let collection = format!("{prefix}/{scope}{}", r.plural);
    let mut path_params = Vec::new();
    if r.namespaced {
        path_params.push(path_param(
            "namespace",
            "object name and auth scope, such as for teams and projects",
        ));
    }
    let op = |id: String, description: String, action: &'static str| Op {
        id,
        description,
        action,
        gvk: gvk.clone(),
        params: &[],
        body: None,
        body_types: &["*/*"],
        response: object.clone(),
        response_types: OBJECT_TYPES,
        also: &[],
    };

    // The collection: list, create, delete collection.
    let mut item = Map::new();
    if let (true, Some(list)) = (has("list"), &list) {
        let list_op = Op {
            params: LISTING,
            response: list.clone(),
            response_types: LIST_TYPES,
            ..op(
                format!("list{gv}{ns}{kind}"),
                format!("list or watch objects of kind {kind}"),
                "list",
            )
        };
        item.insert("get".into(), operation(tag, list_op));
    }
    if has("create") {
        let create = Op {
            params: WRITE,
            body: Some(object.clone()),
            also: &[("201", "Created"), ("202", "Accepted")],
            ..op(
                format!("create{gv}{ns}{kind}"),
                format!("create a {kind}"),
                "post",
            )
        };
        item.insert("post".into(), operation(tag, create));
    }
    if has("deletecollection") {
        let delete = Op {
            params: &[DELETING, LISTING].concat(),
            body: Some(reference(DELETE_OPTIONS)),
            response: reference(STATUS),
            ..op(
                format!("delete{gv}Collection{ns}{kind}"),
                format!("delete collection of {kind}"),
                "deletecollection",
            )
        };
        item.insert("delete".into(), operation(tag, delete));
    }
    if !item.is_empty() {
        insert_path(out, collection.clone(), item, &path_params);
    }
    if let (true, true, Some(list)) = (r.namespaced, has("list"), &list) {
        let all = Op {
            params: LISTING,
            response: list.clone(),
            response_types: LIST_TYPES,
            ..op(
                format!("list{gv}{kind}ForAllNamespaces"),
                format!("list or watch objects of kind {kind}"),
                "list",
            )
        };
        let mut item = Map::new();
        item.insert("get".into(), operation(tag, all));
        insert_path(out, format!("{prefix}/{}", r.plural), item, &[]);
    }

    // One object: read, replace, patch, delete.
    path_params.insert(0, path_param("name", &format!("name of the {kind}")));
    let named = format!("{collection}/{{name}}");
    let mut item = Map::new();
    if has("get") {
        item.insert(
            "get".into(),
            operation(
                tag,
                op(
                    format!("read{gv}{ns}{kind}"),
                    format!("read the specified {kind}"),
                    "get",
                ),
            ),
        );
    }
    if has("update") {
        let put = Op {
            params: WRITE,
            body: Some(object.clone()),
            also: &[("201", "Created")],
            ..op(
                format!("replace{gv}{ns}{kind}"),
                format!("replace the specified {kind}"),
                "put",
            )
        };
        item.insert("put".into(), operation(tag, put));
    }
    if has("patch") {
        item.insert(
            "patch".into(),
            operation(
                tag,
                patch_op(op(
                    format!("patch{gv}{ns}{kind}"),
                    format!("partially update the specified {kind}"),
                    "patch",
                )),
            ),
        );
    }
    if has("delete") {
        let delete = Op {
            params: DELETING,
            body: Some(reference(DELETE_OPTIONS)),
            response: reference(STATUS),
            also: &[("202", "Accepted")],
            ..op(
                format!("delete{gv}{ns}{kind}"),
                format!("delete a {kind}"),
                "delete",
            )
        };
        item.insert("delete".into(), operation(tag, delete));
    }
    if !item.is_empty() {
        insert_path(out, named.clone(), item, &path_params);
    }

    for s in r.subresources {
        let item = subresource(gv, tag, ns, kind, s);
        if !item.is_empty() {
            insert_path(out, format!("{named}/{}", s.name), item, &path_params);
        }
    }
}

fn patch_op(op: Op<'_>) -> Op<'_> {
    Op {
        params: PATCHING,
        body: Some(reference(PATCH)),
        body_types: PATCH_TYPES,
        also: &[("201", "Created")],
        ..op
    }
}

fn insert_path(
    out: &mut Map<String, Value>,
    path: String,
    mut item: Map<String, Value>,
    params: &[Value],
) {
    let mut all = params.to_vec();
    all.extend(query(&[PRETTY]));
    item.insert("parameters".into(), Value::Array(all));
    out.insert(path, Value::Object(item));
}

/// The operations of one subresource (`status`, `scale`, `log`, `exec`, …).
fn subresource(gv: &str, tag: &str, ns: &str, kind: &str, s: &Subresource) -> Map<String, Value> {
    let gvk = json!({ "group": s.group, "kind": s.kind, "version": s.version });
    let sub = capitalize(s.name);
    let mut item = Map::new();
    let text = json!({ "type": "string" });
    // exec, attach, portforward, proxy: "connect" operations on an *Options kind.
    if s.kind.ends_with("Options") {
        for verb in s.verbs {
            let Some(method) = method_of(verb) else {
                continue;
            };
            let op = Op {
                id: format!("connect{gv}{}{ns}{kind}{sub}", capitalize(method)),
                description: format!(
                    "connect {} requests to {} of {kind}",
                    method.to_uppercase(),
                    s.name
                ),
                action: "connect",
                gvk: gvk.clone(),
                params: &[],
                body: None,
                body_types: &[],
                response: text.clone(),
                response_types: &["*/*"],
                also: &[],
            };
            item.insert(method.into(), operation(tag, op));
        }
        return item;
    }
    if s.name == "log" {
        let op = Op {
            id: format!("read{gv}{ns}{kind}Log"),
            description: format!("read log of the specified {kind}"),
            action: "get",
            gvk,
            params: LOG,
            body: None,
            body_types: &[],
            response: text,
            response_types: &["text/plain", "application/json", "application/yaml"],
            also: &[],
        };
        item.insert("get".into(), operation(tag, op));
        return item;
    }
    let Some(body) = schema_name(s.group, s.version, s.kind).map(|b| reference(&b)) else {
        return item;
    };
    let base = |id: String, description: String, action: &'static str| Op {
        id,
        description,
        action,
        gvk: gvk.clone(),
        params: &[],
        body: None,
        body_types: &["*/*"],
        response: body.clone(),
        response_types: OBJECT_TYPES,
        also: &[],
    };
    for verb in s.verbs {
        let (method, op) = match *verb {
            "get" => (
                "get",
                base(
                    format!("read{gv}{ns}{kind}{sub}"),
                    format!("read {} of the specified {kind}", s.name),
                    "get",
                ),
            ),
            "update" => (
                "put",
                Op {
                    params: WRITE,
                    body: Some(body.clone()),
                    also: &[("201", "Created")],
                    ..base(
                        format!("replace{gv}{ns}{kind}{sub}"),
                        format!("replace {} of the specified {kind}", s.name),
                        "put",
                    )
                },
            ),
            "patch" => (
                "patch",
                patch_op(base(
                    format!("patch{gv}{ns}{kind}{sub}"),
                    format!("partially update {} of the specified {kind}", s.name),
                    "patch",
                )),
            ),
            "create" => (
                "post",
                Op {
                    params: WRITE,
                    body: Some(body.clone()),
                    also: &[("201", "Created"), ("202", "Accepted")],
                    ..base(
                        format!("create{gv}{ns}{kind}{sub}"),
                        format!("create {} of a {kind}", s.name),
                        "post",
                    )
                },
            ),
            _ => continue,
        };
        item.insert(method.into(), operation(tag, op));
    }
    item
}

/// The HTTP method a connect verb is served with.
fn method_of(verb: &str) -> Option<&'static str> {
    Some(match verb {
        "get" => "get",
        "create" => "post",
        "update" => "put",
        "patch" => "patch",
        "delete" => "delete",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_naming_matches_upstream() {
        assert_eq!(gv_word("", "v1"), "CoreV1");
        assert_eq!(gv_word("apps", "v1"), "AppsV1");
        assert_eq!(
            gv_word("rbac.authorization.k8s.io", "v1"),
            "RbacAuthorizationV1"
        );
        assert_eq!(
            gv_word("flowcontrol.apiserver.k8s.io", "v1"),
            "FlowcontrolApiserverV1"
        );
        assert_eq!(gv_word("networking.k8s.io", "v1beta1"), "NetworkingV1beta1");
        assert_eq!(tag("", "v1"), "core_v1");
        assert_eq!(tag("apps", "v1"), "apps_v1");
        assert_eq!(
            tag("rbac.authorization.k8s.io", "v1"),
            "rbacAuthorization_v1"
        );
        assert_eq!(tag("autoscaling", "v2"), "autoscaling_v2");
    }
}
