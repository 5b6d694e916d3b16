//! Document-level checks: what kubectl looks for, and that every reference resolves.

use serde_json::Value;

use super::*;

fn doc(group: &str, version: &str) -> Value {
    let bytes = v3_document(group, version).unwrap_or_else(|| panic!("{group}/{version}"));
    serde_json::from_slice(&bytes).expect("valid JSON")
}

fn schema<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc.pointer(&format!("/components/schemas/{}", name.replace('/', "~1")))
        .unwrap_or_else(|| panic!("{name} missing"))
}

#[test]
fn apps_v1_patch_has_field_validation_and_gvk() {
    let d = doc("apps", "v1");
    assert_eq!(d["openapi"], "3.0.0");
    let patch = &d["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
    assert_eq!(patch["operationId"], "patchAppsV1NamespacedDeployment");
    assert_eq!(patch["x-kubernetes-action"], "patch");
    assert_eq!(
        patch["x-kubernetes-group-version-kind"],
        serde_json::json!({"group": "apps", "kind": "Deployment", "version": "v1"})
    );
    let params: Vec<&str> = patch["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .filter(|p| p["in"] == "query")
        .filter_map(|p| p["name"].as_str())
        .collect();
    for p in ["fieldValidation", "dryRun", "fieldManager", "force"] {
        assert!(params.contains(&p), "{p} in {params:?}");
    }
    let body = patch["requestBody"]["content"]
        .as_object()
        .expect("content");
    for t in [
        "application/json-patch+json",
        "application/merge-patch+json",
        "application/strategic-merge-patch+json",
        "application/apply-patch+yaml",
    ] {
        assert!(body.contains_key(t), "{t}");
    }
}

/// kubectl stops at the first PATCH operation of a kind that lacks `fieldValidation`,
/// so every one of them (status, scale, …) must have it.
#[test]
fn every_patch_operation_takes_field_validation() {
    for document in documents().values() {
        let d: Value = serde_json::from_slice(&document.bytes).expect("json");
        for (path, item) in d["paths"].as_object().expect("paths") {
            // Connect operations (proxy) take PATCH too, on an *Options kind.
            let Some(patch) = item
                .get("patch")
                .filter(|p| p["x-kubernetes-action"] == "patch")
            else {
                continue;
            };
            let has = patch["parameters"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|p| p["name"] == "fieldValidation"));
            assert!(has, "{path}");
            assert!(
                patch["x-kubernetes-group-version-kind"].is_object(),
                "{path}"
            );
        }
    }
}

#[test]
fn deployment_schema_is_upstream_shaped() {
    let d = doc("apps", "v1");
    let deployment = schema(&d, "io.k8s.api.apps.v1.Deployment");
    assert!(
        deployment["description"]
            .as_str()
            .is_some_and(|s| s.contains("declarative updates"))
    );
    assert_eq!(
        deployment["x-kubernetes-group-version-kind"],
        serde_json::json!([{"group": "apps", "kind": "Deployment", "version": "v1"}])
    );
    // Metadata is not required upstream.
    assert!(deployment.get("required").is_none());
    // A described reference is wrapped in allOf.
    let spec = &deployment["properties"]["spec"];
    assert_eq!(
        spec["allOf"][0]["$ref"],
        "#/components/schemas/io.k8s.api.apps.v1.DeploymentSpec"
    );
    assert!(spec["description"].is_string());

    let strategy = schema(&d, "io.k8s.api.apps.v1.DeploymentStrategy");
    assert!(strategy["properties"]["rollingUpdate"].is_object());
    let spec = schema(&d, "io.k8s.api.apps.v1.DeploymentSpec");
    assert_eq!(
        spec["properties"]["strategy"]["x-kubernetes-patch-strategy"],
        "retainKeys"
    );

    let list = schema(&d, "io.k8s.api.apps.v1.DeploymentList");
    assert_eq!(
        list["x-kubernetes-group-version-kind"][0]["kind"],
        "DeploymentList"
    );
    assert_eq!(
        list["properties"]["items"]["items"]["allOf"][0]["$ref"],
        "#/components/schemas/io.k8s.api.apps.v1.Deployment"
    );

    let scale = schema(&d, "io.k8s.api.autoscaling.v1.Scale");
    assert_eq!(
        scale["x-kubernetes-group-version-kind"][0]["group"],
        "autoscaling"
    );
    let scale_patch =
        &d["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]["patch"];
    assert_eq!(
        scale_patch["x-kubernetes-group-version-kind"]["kind"],
        "Scale"
    );
    assert_eq!(
        scale_patch["operationId"],
        "patchAppsV1NamespacedDeploymentScale"
    );
}

#[test]
fn pod_spec_lists_carry_merge_keys() {
    let d = doc("", "v1");
    let pod_spec = schema(&d, "io.k8s.api.core.v1.PodSpec");
    let containers = &pod_spec["properties"]["containers"];
    assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
    assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
    assert_eq!(containers["x-kubernetes-list-type"], "map");
    assert_eq!(
        containers["items"]["$ref"],
        "#/components/schemas/io.k8s.api.core.v1.Container"
    );
    assert_eq!(
        pod_spec["properties"]["volumes"]["x-kubernetes-patch-strategy"],
        "merge,retainKeys"
    );
    let container = schema(&d, "io.k8s.api.core.v1.Container");
    assert_eq!(
        container["properties"]["ports"]["x-kubernetes-patch-merge-key"],
        "containerPort"
    );
    assert_eq!(
        container["properties"]["env"]["x-kubernetes-patch-merge-key"],
        "name"
    );
    let service_spec = schema(&d, "io.k8s.api.core.v1.ServiceSpec");
    assert_eq!(
        service_spec["properties"]["ports"]["x-kubernetes-list-map-keys"],
        serde_json::json!(["port", "protocol"])
    );
    let meta = schema(&d, "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta");
    assert_eq!(
        meta["properties"]["finalizers"]["x-kubernetes-patch-strategy"],
        "merge"
    );
    assert_eq!(
        meta["properties"]["ownerReferences"]["x-kubernetes-patch-merge-key"],
        "uid"
    );
    let quantity = schema(&d, "io.k8s.apimachinery.pkg.api.resource.Quantity");
    assert!(quantity.get("type").is_none() && quantity["oneOf"].is_array());
    let ios = schema(&d, "io.k8s.apimachinery.pkg.util.intstr.IntOrString");
    assert_eq!(ios["format"], "int-or-string");
}

#[test]
fn core_paths_are_named_like_upstream() {
    let d = doc("", "v1");
    let paths = &d["paths"];
    assert_eq!(
        paths["/api/v1/namespaces/{namespace}/pods"]["get"]["operationId"],
        "listCoreV1NamespacedPod"
    );
    assert_eq!(
        paths["/api/v1/pods"]["get"]["operationId"],
        "listCoreV1PodForAllNamespaces"
    );
    assert_eq!(
        paths["/api/v1/namespaces/{name}"]["patch"]["operationId"],
        "patchCoreV1Namespace"
    );
    assert_eq!(
        paths["/api/v1/namespaces/{namespace}/pods"]["delete"]["operationId"],
        "deleteCoreV1CollectionNamespacedPod"
    );
    let exec = &paths["/api/v1/namespaces/{namespace}/pods/{name}/exec"];
    assert_eq!(
        exec["post"]["operationId"],
        "connectCoreV1PostNamespacedPodExec"
    );
    assert_eq!(exec["get"]["x-kubernetes-action"], "connect");
    let log = &paths["/api/v1/namespaces/{namespace}/pods/{name}/log"]["get"];
    assert_eq!(log["operationId"], "readCoreV1NamespacedPodLog");
    let eviction = &paths["/api/v1/namespaces/{namespace}/pods/{name}/eviction"]["post"];
    assert_eq!(
        eviction["x-kubernetes-group-version-kind"]["group"],
        "policy"
    );
    // Namespaces have no deletecollection.
    assert!(paths["/api/v1/namespaces"].get("delete").is_none());
}

#[test]
fn every_ref_resolves_in_its_document() {
    for (key, document) in documents() {
        let d: Value = serde_json::from_slice(&document.bytes).expect("json");
        let schemas = d["components"]["schemas"].as_object().expect("schemas");
        let mut refs = Vec::new();
        schemas::collect_refs(&d, &mut refs);
        assert!(!refs.is_empty(), "{key}");
        for r in refs {
            assert!(schemas.contains_key(&r), "{key}: dangling $ref {r}");
        }
        // OpenAPI 3.0 ignores siblings of $ref, so there must be none.
        assert_no_ref_siblings(&d, key);
    }
}

fn assert_no_ref_siblings(v: &Value, key: &str) {
    match v {
        Value::Object(obj) => {
            if obj.contains_key("$ref") {
                assert_eq!(obj.len(), 1, "{key}: $ref with siblings: {v}");
            }
            for (field, v) in obj {
                match (field.as_str(), v) {
                    // A property may be called `$ref` (JSONSchemaProps has one).
                    ("properties", Value::Object(props)) => {
                        props.values().for_each(|p| assert_no_ref_siblings(p, key))
                    }
                    _ => assert_no_ref_siblings(v, key),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| assert_no_ref_siblings(v, key)),
        _ => {}
    }
}

#[test]
fn every_served_kind_has_a_typed_schema() {
    for r in crate::catalog::all() {
        assert!(
            types::find(r.group, r.version, r.kind).is_some(),
            "{} {}/{}",
            r.kind,
            r.group,
            r.version
        );
        let d = doc(r.group, r.version);
        let name = definition_name(r.group, r.version, r.kind).expect("name");
        let gvks = schema(&d, name)["x-kubernetes-group-version-kind"].clone();
        assert!(
            gvks.as_array()
                .expect("gvk list")
                .iter()
                .any(|g| g["kind"] == r.kind),
            "{name}"
        );
    }
}

#[test]
fn index_lists_every_document_with_its_hash() {
    let index = v3_index();
    let apps = index["paths"]["apis/apps/v1"]["serverRelativeURL"]
        .as_str()
        .expect("apps/v1");
    let hash = v3_hash("apps", "v1").expect("hash");
    assert_eq!(apps, format!("/openapi/v3/apis/apps/v1?hash={hash}"));
    assert_eq!(hash.len(), 64);
    assert!(index["paths"]["api/v1"].is_object());
    let (bytes, h) = v3_document_at("/apis/apps/v1").expect("by path");
    assert_eq!(h, hash);
    assert!(Arc::ptr_eq(
        &bytes,
        &v3_document("apps", "v1").expect("doc")
    ));
    assert!(v3_document("nope", "v1").is_none());
}

#[test]
fn delete_options_accepts_every_group_version() {
    let d = doc("batch", "v1");
    let gvks = schema(&d, "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions")["x-kubernetes-group-version-kind"]
        .as_array()
        .expect("gvks")
        .clone();
    assert!(
        gvks.iter()
            .any(|g| g["group"] == "batch" && g["version"] == "v1")
    );
    assert!(
        gvks.iter()
            .any(|g| g["group"] == "" && g["version"] == "v1")
    );
}
