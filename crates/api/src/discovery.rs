//! Discovery documents built from the catalog, shaped like upstream's.
//!
//! Legacy discovery: `/api` ([`api_versions`]), `/apis` ([`api_group_list`]), `/apis/G`
//! ([`api_group`]), `/api/v1` and `/apis/G/V` ([`api_resource_list`]). Aggregated
//! discovery (`apidiscovery.k8s.io/v2` `APIGroupDiscoveryList`, which kubectl asks for
//! first): [`aggregated`].
//!
//! Fields upstream marks `omitempty` are left out when empty, so clients see the same shape.

use serde_json::{Map, Value, json};

use crate::catalog::{self, ResourceInfo, Subresource};

/// `GET /api`: the core group's versions.
pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
        ],
    })
}

/// `GET /apis`: every named group with its versions and preferred version.
pub fn api_group_list() -> Value {
    let groups: Vec<Value> = catalog::groups().iter().map(group_body).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `GET /apis/<name>`: one named group, or `None` if it is not served.
pub fn api_group(name: &str) -> Option<Value> {
    let group = catalog::group(name)?;
    let mut body = group_body(&group);
    let obj = body.as_object_mut()?;
    obj.insert("kind".into(), "APIGroup".into());
    obj.insert("apiVersion".into(), "v1".into());
    Some(body)
}

/// `GET /api/v1` (group "") or `GET /apis/<group>/<version>`: the resources and
/// subresources served there, or `None` if that group-version is not served.
pub fn api_resource_list(group: &str, version: &str) -> Option<Value> {
    let mut entries: Vec<(String, Value)> = Vec::new();
    for info in catalog::resources_in(group, version) {
        entries.push((info.plural.to_string(), resource_entry(info)));
        for sub in info.subresources {
            let name = format!("{}/{}", info.plural, sub.name);
            entries.push((name.clone(), subresource_entry(info, sub, name)));
        }
    }
    if entries.is_empty() {
        return None;
    }
    // Upstream installs (and so lists) storage paths in sorted order.
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let resources: Vec<Value> = entries.into_iter().map(|(_, v)| v).collect();
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    let mut body = Map::new();
    body.insert("kind".into(), "APIResourceList".into());
    // The core list has no apiVersion upstream; group lists say v1.
    if !group.is_empty() {
        body.insert("apiVersion".into(), "v1".into());
    }
    body.insert("groupVersion".into(), group_version.into());
    body.insert("resources".into(), resources.into());
    Some(Value::Object(body))
}

/// Aggregated discovery: for `/api` (`core == true`, one item for the core group, which has
/// no name) or for `/apis` (every named group, versions preferred first).
pub fn aggregated(core: bool) -> Value {
    let items: Vec<Value> = if core {
        vec![json!({
            "metadata": {"creationTimestamp": null},
            "versions": [version_discovery("", "v1")],
        })]
    } else {
        catalog::groups()
            .iter()
            .map(|g| {
                let versions: Vec<Value> = g
                    .versions
                    .iter()
                    .map(|v| version_discovery(g.name, v))
                    .collect();
                json!({
                    "metadata": {"name": g.name, "creationTimestamp": null},
                    "versions": versions,
                })
            })
            .collect()
    };
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    })
}

/// Upstream's `storageVersionHash`: the first 8 bytes of SHA-256 over
/// `<storage group>/<storage version>/<kind>`, base64. Clients use it only to notice that a
/// resource's storage version changed (core and events.k8s.io Events share one).
pub fn storage_version_hash(info: &ResourceInfo) -> String {
    use base64::Engine as _;
    let gvk = format!(
        "{}/{}/{}",
        info.storage_group, info.storage_version, info.kind
    );
    let digest = ring::digest::digest(&ring::digest::SHA256, gvk.as_bytes());
    let bytes = digest.as_ref();
    base64::engine::general_purpose::STANDARD.encode(&bytes[..8.min(bytes.len())])
}

fn group_version(group: &str, version: &str) -> Value {
    json!({"groupVersion": format!("{group}/{version}"), "version": version})
}

fn group_body(group: &catalog::GroupInfo) -> Value {
    let versions: Vec<Value> = group
        .versions
        .iter()
        .map(|v| group_version(group.name, v))
        .collect();
    json!({
        "name": group.name,
        "versions": versions,
        "preferredVersion": group_version(group.name, group.preferred),
    })
}

/// Group and version a subresource entry names: empty when the subresource's kind lives in
/// the parent's group-version (upstream only sets them when they differ).
fn sub_group_version<'a>(info: &ResourceInfo, sub: &'a Subresource) -> (&'a str, &'a str) {
    if sub.group == info.group && sub.version == info.version {
        ("", "")
    } else {
        (sub.group, sub.version)
    }
}

fn resource_entry(info: &ResourceInfo) -> Value {
    let mut e = Map::new();
    e.insert("name".into(), info.plural.into());
    e.insert("singularName".into(), info.singular.into());
    e.insert("namespaced".into(), info.namespaced.into());
    e.insert("kind".into(), info.kind.into());
    e.insert("verbs".into(), info.verbs.into());
    if !info.short_names.is_empty() {
        e.insert("shortNames".into(), info.short_names.into());
    }
    if !info.categories.is_empty() {
        e.insert("categories".into(), info.categories.into());
    }
    e.insert(
        "storageVersionHash".into(),
        storage_version_hash(info).into(),
    );
    Value::Object(e)
}

fn subresource_entry(info: &ResourceInfo, sub: &Subresource, name: String) -> Value {
    let mut e = Map::new();
    e.insert("name".into(), name.into());
    e.insert("singularName".into(), "".into());
    e.insert("namespaced".into(), info.namespaced.into());
    let (group, version) = sub_group_version(info, sub);
    if !group.is_empty() {
        e.insert("group".into(), group.into());
    }
    if !version.is_empty() {
        e.insert("version".into(), version.into());
    }
    e.insert("kind".into(), sub.kind.into());
    e.insert("verbs".into(), sub.verbs.into());
    Value::Object(e)
}

fn version_discovery(group: &str, version: &str) -> Value {
    let mut infos: Vec<&ResourceInfo> = catalog::resources_in(group, version);
    infos.sort_by_key(|r| r.plural);
    let resources: Vec<Value> = infos.into_iter().map(resource_discovery).collect();
    json!({"version": version, "resources": resources, "freshness": "Current"})
}

fn resource_discovery(info: &ResourceInfo) -> Value {
    let mut e = Map::new();
    e.insert("resource".into(), info.plural.into());
    // The parent's responseKind carries only the kind: its group-version is the one served.
    e.insert(
        "responseKind".into(),
        json!({"group": "", "version": "", "kind": info.kind}),
    );
    let scope = if info.namespaced {
        "Namespaced"
    } else {
        "Cluster"
    };
    e.insert("scope".into(), scope.into());
    e.insert("singularResource".into(), info.singular.into());
    e.insert("verbs".into(), info.verbs.into());
    if !info.short_names.is_empty() {
        e.insert("shortNames".into(), info.short_names.into());
    }
    if !info.categories.is_empty() {
        e.insert("categories".into(), info.categories.into());
    }
    if !info.subresources.is_empty() {
        let mut subs: Vec<&Subresource> = info.subresources.iter().collect();
        subs.sort_by_key(|s| s.name);
        let subs: Vec<Value> = subs
            .into_iter()
            .map(|s| {
                let (group, version) = sub_group_version(info, s);
                json!({
                    "subresource": s.name,
                    "responseKind": {"group": group, "version": version, "kind": s.kind},
                    "verbs": s.verbs,
                })
            })
            .collect();
        e.insert("subresources".into(), subs.into());
    }
    Value::Object(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find_entry<'a>(list: &'a Value, name: &str) -> &'a Value {
        list["resources"]
            .as_array()
            .and_then(|a| a.iter().find(|r| r["name"] == name))
            .unwrap_or_else(|| panic!("{name} missing"))
    }

    fn aggregated_resource<'a>(doc: &'a Value, group: &str, version: &str, res: &str) -> &'a Value {
        let item = doc["items"]
            .as_array()
            .and_then(|items| {
                items
                    .iter()
                    .find(|i| i["metadata"]["name"].as_str().unwrap_or("") == group)
            })
            .unwrap_or_else(|| panic!("group {group} missing"));
        let ver = item["versions"]
            .as_array()
            .and_then(|vs| vs.iter().find(|v| v["version"] == version))
            .unwrap_or_else(|| panic!("{group}/{version} missing"));
        ver["resources"]
            .as_array()
            .and_then(|rs| rs.iter().find(|r| r["resource"] == res))
            .unwrap_or_else(|| panic!("{res} missing"))
    }

    #[test]
    fn api_versions_shape() {
        let v = api_versions("10.0.0.1:6443");
        assert_eq!(
            v,
            json!({"kind":"APIVersions","versions":["v1"],"serverAddressByClientCIDRs":
                [{"clientCIDR":"0.0.0.0/0","serverAddress":"10.0.0.1:6443"}]})
        );
    }

    #[test]
    fn group_list_prefers_autoscaling_v2() {
        let list = api_group_list();
        assert_eq!(list["kind"], "APIGroupList");
        let groups = list["groups"].as_array().expect("groups");
        // apiregistration.k8s.io first (priority 18000), as upstream, then apps.
        assert_eq!(groups[0]["name"], "apiregistration.k8s.io");
        assert_eq!(groups[1]["name"], "apps");
        let autoscaling = groups
            .iter()
            .find(|g| g["name"] == "autoscaling")
            .expect("autoscaling");
        assert_eq!(
            autoscaling["versions"],
            json!([{"groupVersion":"autoscaling/v2","version":"v2"},
                   {"groupVersion":"autoscaling/v1","version":"v1"}])
        );
        assert_eq!(autoscaling["preferredVersion"]["version"], "v2");
        let apps = api_group("apps").expect("apps");
        assert_eq!(apps["kind"], "APIGroup");
        assert_eq!(apps["preferredVersion"]["groupVersion"], "apps/v1");
        assert!(api_group("extensions").is_none());
    }

    #[test]
    fn legacy_core_list() {
        let list = api_resource_list("", "v1").expect("core");
        assert_eq!(list["groupVersion"], "v1");
        assert!(list.get("apiVersion").is_none());
        let pods = find_entry(&list, "pods");
        assert_eq!(pods["shortNames"], json!(["po"]));
        assert_eq!(pods["categories"], json!(["all"]));
        assert_eq!(pods["singularName"], "pod");
        assert_eq!(pods["storageVersionHash"], "xPOwRZ+Yhw8=");
        let eviction = find_entry(&list, "pods/eviction");
        assert_eq!(eviction["group"], "policy");
        assert_eq!(eviction["kind"], "Eviction");
        let status = find_entry(&list, "pods/status");
        assert!(status.get("group").is_none());
        assert_eq!(status["verbs"], json!(["get", "patch", "update"]));
        let names: Vec<&str> = list["resources"]
            .as_array()
            .expect("resources")
            .iter()
            .filter_map(|r| r["name"].as_str())
            .collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted);
        assert!(api_resource_list("", "v2").is_none());
    }

    #[test]
    fn legacy_deployment_scale_is_autoscaling_v1() {
        let list = api_resource_list("apps", "v1").expect("apps");
        assert_eq!(list["apiVersion"], "v1");
        assert_eq!(list["groupVersion"], "apps/v1");
        let scale = find_entry(&list, "deployments/scale");
        assert_eq!(scale["group"], "autoscaling");
        assert_eq!(scale["version"], "v1");
        assert_eq!(scale["kind"], "Scale");
        assert_eq!(
            find_entry(&list, "deployments")["storageVersionHash"],
            "8aSe+NMegvE="
        );
    }

    #[test]
    fn aggregated_core() {
        let doc = aggregated(true);
        assert_eq!(doc["kind"], "APIGroupDiscoveryList");
        assert_eq!(doc["apiVersion"], "apidiscovery.k8s.io/v2");
        let items = doc["items"].as_array().expect("items");
        assert_eq!(items.len(), 1);
        assert!(items[0]["metadata"].get("name").is_none());
        let pods = aggregated_resource(&doc, "", "v1", "pods");
        assert_eq!(
            pods["responseKind"],
            json!({"group":"","version":"","kind":"Pod"})
        );
        assert_eq!(pods["scope"], "Namespaced");
        assert_eq!(pods["singularResource"], "pod");
        let subs = pods["subresources"].as_array().expect("subresources");
        let log = subs
            .iter()
            .find(|s| s["subresource"] == "log")
            .expect("log");
        assert_eq!(log["verbs"], json!(["get"]));
        let nodes = aggregated_resource(&doc, "", "v1", "nodes");
        assert_eq!(nodes["scope"], "Cluster");
        assert_eq!(nodes["shortNames"], json!(["no"]));
        let token =
            aggregated_resource(&doc, "", "v1", "serviceaccounts")["subresources"][0].clone();
        assert_eq!(
            token["responseKind"],
            json!({"group":"authentication.k8s.io","version":"v1","kind":"TokenRequest"})
        );
    }

    #[test]
    fn aggregated_groups() {
        let doc = aggregated(false);
        let deploy = aggregated_resource(&doc, "apps", "v1", "deployments");
        let scale = deploy["subresources"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["subresource"] == "scale"))
            .expect("scale");
        assert_eq!(
            scale["responseKind"],
            json!({"group":"autoscaling","version":"v1","kind":"Scale"})
        );
        assert_eq!(scale["verbs"], json!(["get", "patch", "update"]));
        assert_eq!(deploy["shortNames"], json!(["deploy"]));
        let hpa = aggregated_resource(&doc, "autoscaling", "v2", "horizontalpodautoscalers");
        assert_eq!(hpa["categories"], json!(["all"]));
        let item = doc["items"]
            .as_array()
            .and_then(|i| i.iter().find(|i| i["metadata"]["name"] == "autoscaling"))
            .expect("autoscaling");
        assert_eq!(item["versions"][0]["version"], "v2");
        assert_eq!(item["versions"][1]["version"], "v1");
        assert_eq!(item["versions"][0]["freshness"], "Current");
    }

    #[test]
    fn category_all_is_complete() {
        let mut found = Vec::new();
        for doc in [aggregated(true), aggregated(false)] {
            for item in doc["items"].as_array().expect("items") {
                for ver in item["versions"].as_array().expect("versions") {
                    for r in ver["resources"].as_array().expect("resources") {
                        let all = r["categories"]
                            .as_array()
                            .is_some_and(|c| c.iter().any(|c| c == "all"));
                        if all {
                            found.push(r["resource"].as_str().unwrap_or("").to_string());
                        }
                    }
                }
            }
        }
        found.sort();
        found.dedup();
        let want = [
            "cronjobs",
            "daemonsets",
            "deployments",
            "horizontalpodautoscalers",
            "jobs",
            "pods",
            "replicasets",
            "services",
            "statefulsets",
        ];
        assert_eq!(found, want);
    }

    #[test]
    fn event_storage_hash_is_core() {
        // Upstream reports the core/v1 Event hash for both APIs (one stored form).
        let core = crate::catalog::find("", "v1", "events").expect("core");
        let new = crate::catalog::find("events.k8s.io", "v1", "events").expect("new");
        assert_eq!(storage_version_hash(core), "r2yiGXH7wu8=");
        assert_eq!(storage_version_hash(new), "r2yiGXH7wu8=");
    }

    #[test]
    fn short_names_present() {
        let doc = aggregated(false);
        for (g, v, r, short) in [
            ("apps", "v1", "statefulsets", "sts"),
            ("apps", "v1", "replicasets", "rs"),
            ("apps", "v1", "daemonsets", "ds"),
            ("batch", "v1", "cronjobs", "cj"),
            ("networking.k8s.io", "v1", "ingresses", "ing"),
            ("networking.k8s.io", "v1", "networkpolicies", "netpol"),
            ("storage.k8s.io", "v1", "storageclasses", "sc"),
            ("policy", "v1", "poddisruptionbudgets", "pdb"),
            ("scheduling.k8s.io", "v1", "priorityclasses", "pc"),
            ("events.k8s.io", "v1", "events", "ev"),
        ] {
            assert_eq!(
                aggregated_resource(&doc, g, v, r)["shortNames"],
                json!([short]),
                "{r}"
            );
        }
    }
}
