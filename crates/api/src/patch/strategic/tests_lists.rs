//! Table tests of strategic merge on lists: merge keys, sets, list directives, ordering.

use serde_json::json;

use super::tests::{Want, case, generic, run};
use crate::patch::schema::merge_keys_for;

#[test]
fn merging_lists_of_maps() {
    run(
        vec![
            case(
                "merge by key; a new item follows the patched one before it",
                json!({"mergingList": [{"name": "1", "v": 1}, {"name": "2", "v": 2}]}),
                json!({"mergingList": [{"name": "2", "v": 20, "w": 1}, {"name": "3", "v": 3}]}),
                Want::Ok(json!({"mergingList": [
                    {"name": "1", "v": 1}, {"name": "2", "v": 20, "w": 1}, {"name": "3", "v": 3}
                ]})),
            ),
            case(
                "a new item goes before the patched items it precedes in the patch",
                json!({"mergingList": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}),
                json!({"mergingList": [{"name": "d"}, {"name": "a", "x": 1}]}),
                Want::Ok(json!({"mergingList": [
                    {"name": "d"}, {"name": "a", "x": 1}, {"name": "b"}, {"name": "c"}
                ]})),
            ),
            case(
                "delete a field of an item",
                json!({"mergingList": [{"name": "1", "v": 1, "w": 2}]}),
                json!({"mergingList": [{"name": "1", "v": null}]}),
                Want::Ok(json!({"mergingList": [{"name": "1", "w": 2}]})),
            ),
            case(
                "$patch: delete removes every item with the key",
                json!({"mergingList": [{"name": "1"}, {"name": "2"}, {"name": "1", "dup": true}]}),
                json!({"mergingList": [{"name": "1", "$patch": "delete"}]}),
                Want::Ok(json!({"mergingList": [{"name": "2"}]})),
            ),
            case(
                "$patch: delete of a missing item",
                json!({"mergingList": [{"name": "1"}]}),
                json!({"mergingList": [{"name": "9", "$patch": "delete"}]}),
                Want::Ok(json!({"mergingList": [{"name": "1"}]})),
            ),
            case(
                "add and delete in one patch",
                json!({"mergingList": [{"name": "1"}, {"name": "2"}]}),
                json!({"mergingList": [{"name": "3"}, {"name": "1", "$patch": "delete"}]}),
                // Upstream places items new to the server before the server-only ones.
                Want::Ok(json!({"mergingList": [{"name": "3"}, {"name": "2"}]})),
            ),
            case(
                "$patch: replace as an element replaces the whole list",
                json!({"mergingList": [{"name": "1"}, {"name": "2"}]}),
                json!({"mergingList": [{"name": "3", "x": null}, {"$patch": "replace"}]}),
                Want::Ok(json!({"mergingList": [{"name": "3"}]})),
            ),
            case(
                "a new merging list keeps its items, minus deletions",
                json!({}),
                json!({"mergingList": [{"name": "1", "n": null}, {"name": "2", "$patch": "delete"}]}),
                Want::Ok(json!({"mergingList": [{"name": "1"}]})),
            ),
            case(
                "nested merging lists",
                json!({"mergingList": [{"name": "a", "mergingList": [{"name": "x", "v": 1}]}]}),
                json!({"mergingList": [{"name": "a", "mergingList": [{"name": "y", "v": 2}]}]}),
                Want::Ok(json!({"mergingList": [{"name": "a", "mergingList": [
                    {"name": "y", "v": 2}, {"name": "x", "v": 1}
                ]}]})),
            ),
            case(
                "numeric keys compare by value",
                json!({"mergingList": [{"name": 80, "v": 1}]}),
                json!({"mergingList": [{"name": 80.0, "w": 2}]}),
                // The items match; the patch value of the key itself wins, as any scalar.
                Want::Ok(json!({"mergingList": [{"name": 80.0, "v": 1, "w": 2}]})),
            ),
        ],
        &generic,
    );
}

#[test]
fn list_errors() {
    run(
        vec![
            case(
                "patch item without the merge key",
                json!({"mergingList": [{"name": "1", "value": "a"}]}),
                json!({"mergingList": [{"value": "b"}]}),
                Want::Err(
                    500,
                    "map: map[value:b] does not contain declared merge key: name",
                ),
            ),
            case(
                "$patch: delete without the merge key",
                json!({"mergingList": [{"name": "1"}]}),
                json!({"mergingList": [{"$patch": "delete"}]}),
                Want::Err(500, "does not contain declared merge key: name"),
            ),
            case(
                "server item without the merge key",
                json!({"mergingList": [{"value": "a"}]}),
                json!({"mergingList": [{"name": "1"}]}),
                Want::Err(
                    500,
                    "map: map[value:a] does not contain declared merge key: name",
                ),
            ),
            case(
                "$patch: merge in a list",
                json!({"mergingList": [{"name": "1"}]}),
                json!({"mergingList": [{"name": "1", "$patch": "merge"}]}),
                Want::Err(500, "merging lists cannot yet be specified in the patch"),
            ),
            case(
                "$patch: foo in a list",
                json!({"mergingList": [{"name": "1"}]}),
                json!({"mergingList": [{"name": "1", "$patch": "foo"}]}),
                Want::Err(500, "unknown patch type: foo"),
            ),
            case(
                "lists of lists",
                json!({"mergingList": [[1]]}),
                json!({"mergingList": [[2]]}),
                Want::Err(422, "lists of lists are not supported"),
            ),
            case(
                "mixed element types",
                json!({"mergingIntList": [1, 2]}),
                json!({"mergingIntList": ["a"]}),
                Want::Err(500, "list element types are not identical"),
            ),
            case(
                "maps in a merge list without a merge key",
                json!({"mergingIntList": [{"a": 1}]}),
                json!({"mergingIntList": [{"a": 2}]}),
                Want::Err(500, "cannot merge lists without merge key"),
            ),
        ],
        &generic,
    );
}

#[test]
fn primitive_lists() {
    run(
        vec![
            case(
                "merge strategy unions",
                json!({"mergingIntList": [1, 2]}),
                json!({"mergingIntList": [2, 3]}),
                Want::Ok(json!({"mergingIntList": [1, 2, 3]})),
            ),
            case(
                "duplicates collapse",
                json!({"mergingIntList": [1, 1, 2]}),
                json!({"mergingIntList": [3, 3]}),
                Want::Ok(json!({"mergingIntList": [3, 1, 2]})),
            ),
            case(
                "$deleteFromPrimitiveList removes values",
                json!({"mergingIntList": [1, 2, 3, 2]}),
                json!({"$deleteFromPrimitiveList/mergingIntList": [2]}),
                Want::Ok(json!({"mergingIntList": [1, 3]})),
            ),
            case(
                "$deleteFromPrimitiveList works on non-merging lists too",
                json!({"plain": ["a", "b"]}),
                json!({"$deleteFromPrimitiveList/plain": ["a"]}),
                Want::Ok(json!({"plain": ["b"]})),
            ),
            case(
                "$deleteFromPrimitiveList of a missing value",
                json!({"mergingIntList": [1, 2]}),
                json!({"$deleteFromPrimitiveList/mergingIntList": [3]}),
                Want::Ok(json!({"mergingIntList": [1, 2]})),
            ),
            case(
                "$deleteFromPrimitiveList of a missing list adds nothing",
                json!({"foo": ["bar"]}),
                json!({"$deleteFromPrimitiveList/mergingIntList": [3]}),
                Want::Ok(json!({"foo": ["bar"]})),
            ),
            case(
                "$deleteFromPrimitiveList of a null list",
                json!({"mergingIntList": null}),
                json!({"$deleteFromPrimitiveList/mergingIntList": [3]}),
                Want::Ok(json!({"mergingIntList": null})),
            ),
            case(
                "delete and add in one patch",
                json!({"mergingIntList": [1, 2]}),
                json!({"$deleteFromPrimitiveList/mergingIntList": [1], "mergingIntList": [3]}),
                Want::Ok(json!({"mergingIntList": [3, 2]})),
            ),
            case(
                "$deleteFromPrimitiveList needs a list",
                json!({"mergingIntList": [1]}),
                json!({"$deleteFromPrimitiveList/mergingIntList": 1}),
                Want::Err(400, "invalid patch format of primitive list"),
            ),
            case(
                "$deleteFromPrimitiveList of maps",
                json!({"mergingIntList": [1]}),
                json!({"$deleteFromPrimitiveList/mergingIntList": [{"a": 1}]}),
                Want::Err(400, "invalid patch format of primitive list"),
            ),
            case(
                "$deleteFromPrimitiveList without a field",
                json!({}),
                json!({"$deleteFromPrimitiveList": [1]}),
                Want::Err(400, "invalid patch format of primitive list"),
            ),
        ],
        &generic,
    );
}

#[test]
fn set_element_order() {
    let list = |names: &[&str]| json!(names.iter().map(|n| json!({"name": n})).collect::<Vec<_>>());
    run(
        vec![
            case(
                "order of new and old items",
                json!({"mergingList": [{"name": "1", "other": "a"}, {"name": "2", "value": 2}]}),
                json!({
                    "$setElementOrder/mergingList": list(&["3", "1", "2"]),
                    "mergingList": [{"name": "3", "value": 3}]
                }),
                Want::Ok(json!({"mergingList": [
                    {"name": "3", "value": 3}, {"name": "1", "other": "a"}, {"name": "2", "value": 2}
                ]})),
            ),
            case(
                "reorder only, server-only item stays last",
                json!({"mergingList": [{"name": "1"}, {"name": "3"}, {"name": "4"}, {"name": "2"}, {"name": "9"}]}),
                json!({"$setElementOrder/mergingList": list(&["4", "2", "3", "1"])}),
                Want::Ok(json!({"mergingList": list(&["4", "2", "3", "1", "9"])})),
            ),
            case(
                "server-only item keeps its neighbour",
                json!({"mergingList": list(&["1", "2", "9", "3", "4"])}),
                json!({"$setElementOrder/mergingList": list(&["2", "1", "4", "3"])}),
                Want::Ok(json!({"mergingList": list(&["2", "1", "9", "4", "3"])})),
            ),
            case(
                "several server-only items",
                json!({"mergingList": list(&["1", "2", "7", "9", "8", "3", "4"])}),
                json!({"$setElementOrder/mergingList": list(&["2", "1", "4", "3"])}),
                Want::Ok(json!({"mergingList": list(&["2", "1", "7", "9", "8", "4", "3"])})),
            ),
            case(
                "order names an item that is not there",
                json!({"mergingList": list(&["1", "3"])}),
                json!({
                    "$setElementOrder/mergingList": list(&["3", "2", "1"]),
                    "mergingList": [{"name": "3", "value": 3}, {"name": "1", "value": 1}]
                }),
                Want::Ok(
                    json!({"mergingList": [{"name": "3", "value": 3}, {"name": "1", "value": 1}]}),
                ),
            ),
            case(
                "primitive list order",
                json!({"mergingIntList": [1, 3]}),
                json!({"$setElementOrder/mergingIntList": [3, 2, 1]}),
                Want::Ok(json!({"mergingIntList": [3, 1]})),
            ),
            case(
                "primitive list order with additions and duplicates",
                json!({"mergingIntList": [1, 2, 3, 2, 4]}),
                json!({"$setElementOrder/mergingIntList": [2, 1, 4, 3, 2]}),
                Want::Ok(json!({"mergingIntList": [2, 2, 1, 4, 3]})),
            ),
            case(
                "order for a list that is new",
                json!({}),
                json!({"$setElementOrder/mergingList": list(&["b", "a"]), "mergingList": list(&["b", "a"])}),
                Want::Ok(json!({"mergingList": list(&["b", "a"])})),
            ),
            case(
                "add one and delete one with a server-only item: order as upstream",
                json!({"mergingList": [{"name": "1"}, {"name": "2", "o": "b"}, {"name": "4", "o": "c"}]}),
                json!({
                    "$setElementOrder/mergingList": list(&["2", "3"]),
                    "mergingList": [{"name": "3"}, {"name": "1", "$patch": "delete"}]
                }),
                Want::Ok(json!({"mergingList": [
                    {"name": "2", "o": "b"}, {"name": "4", "o": "c"}, {"name": "3"}
                ]})),
            ),
            case(
                "order with a deletion",
                json!({"mergingList": list(&["a", "b", "c"])}),
                json!({
                    "$setElementOrder/mergingList": list(&["c", "a"]),
                    "mergingList": [{"name": "b", "$patch": "delete"}]
                }),
                Want::Ok(json!({"mergingList": list(&["c", "a"])})),
            ),
            case(
                "patch order contradicts $setElementOrder",
                json!({"mergingList": list(&["1", "3", "2"])}),
                json!({
                    "$setElementOrder/mergingList": list(&["1", "2", "3"]),
                    "mergingList": [{"name": "3", "value": 3}, {"name": "1", "value": 1}]
                }),
                Want::Err(500, "doesn't match $setElementOrder list"),
            ),
            case(
                "int list order contradicts $setElementOrder",
                json!({"mergingIntList": [1, 3, 2]}),
                json!({"$setElementOrder/mergingIntList": [1, 2, 3], "mergingIntList": [3, 1]}),
                Want::Err(500, "doesn't match"),
            ),
            case(
                "$setElementOrder must be a list",
                json!({"mergingList": []}),
                json!({"$setElementOrder/mergingList": {"name": "a"}}),
                Want::Err(400, "invalid patch format of setElementOrder list"),
            ),
            case(
                "$setElementOrder needs a field",
                json!({}),
                json!({"$setElementOrderX": []}),
                Want::Err(400, "invalid patch format of setElementOrder list"),
            ),
            case(
                "$setElementOrder item without the merge key",
                json!({"mergingList": list(&["a"])}),
                json!({"$setElementOrder/mergingList": [{"x": 1}]}),
                Want::Err(500, "does not contain declared merge key: name"),
            ),
        ],
        &generic,
    );
}

fn pod() -> serde_json::Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": "p", "finalizers": ["a", "b"],
            "ownerReferences": [{"uid": "u1", "kind": "ReplicaSet", "name": "rs"}]
        },
        "spec": {
            "containers": [
                {
                    "name": "app", "image": "app:1",
                    "ports": [{"containerPort": 80, "protocol": "TCP"}],
                    "env": [{"name": "A", "value": "1"}],
                    "volumeMounts": [{"name": "v", "mountPath": "/v"}],
                    "envFrom": [{"configMapRef": {"name": "x"}}]
                },
                {"name": "side", "image": "side:1"}
            ],
            "imagePullSecrets": [{"name": "reg"}],
            "hostAliases": [{"ip": "10.0.0.1", "hostnames": ["a"]}],
            "topologySpreadConstraints": [{"topologyKey": "zone", "maxSkew": 1}]
        },
        "status": {
            "conditions": [{"type": "Ready", "status": "False"}, {"type": "Initialized", "status": "True"}]
        }
    })
}

#[test]
fn pod_lists_by_upstream_merge_keys() {
    let keys = merge_keys_for("", "Pod");
    let p = "/spec/containers/0";
    let with = |path: &str, v: serde_json::Value| {
        let mut o = pod();
        if let Some(slot) = o.pointer_mut(path) {
            *slot = v;
        }
        o
    };
    let cases = vec![
        case(
            "ports by containerPort",
            pod(),
            json!({"spec": {"containers": [{"name": "app", "ports": [{"containerPort": 443}]}]}}),
            // A new item goes first, as upstream (and its kubectl patch docs) show.
            Want::Ok(with(
                &format!("{p}/ports"),
                json!([{"containerPort": 443}, {"containerPort": 80, "protocol": "TCP"}]),
            )),
        ),
        case(
            "volumeMounts by mountPath",
            pod(),
            json!({"spec": {"containers": [{"name": "app", "volumeMounts": [{"mountPath": "/v", "readOnly": true}]}]}}),
            Want::Ok(with(
                &format!("{p}/volumeMounts"),
                json!([{"name": "v", "mountPath": "/v", "readOnly": true}]),
            )),
        ),
        case(
            "envFrom is replaced",
            pod(),
            json!({"spec": {"containers": [{"name": "app", "envFrom": [{"secretRef": {"name": "s"}}]}]}}),
            Want::Ok(with(
                &format!("{p}/envFrom"),
                json!([{"secretRef": {"name": "s"}}]),
            )),
        ),
        case(
            "remove a container",
            pod(),
            json!({"spec": {"containers": [{"name": "side", "$patch": "delete"}]}}),
            Want::Ok(with(
                "/spec/containers",
                json!([pod()["spec"]["containers"][0].clone()]),
            )),
        ),
        case(
            "finalizers are a set",
            pod(),
            json!({"metadata": {"finalizers": ["b", "c"]}}),
            Want::Ok(with("/metadata/finalizers", json!(["a", "b", "c"]))),
        ),
        case(
            "remove a finalizer",
            pod(),
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}),
            Want::Ok(with("/metadata/finalizers", json!(["b"]))),
        ),
        case(
            "ownerReferences by uid",
            pod(),
            json!({"metadata": {"ownerReferences": [{"uid": "u1", "controller": true}]}}),
            Want::Ok(with(
                "/metadata/ownerReferences",
                json!([{"uid": "u1", "kind": "ReplicaSet", "name": "rs", "controller": true}]),
            )),
        ),
        case(
            "imagePullSecrets by name, hostAliases by ip, spread constraints by topologyKey",
            pod(),
            json!({"spec": {
                "imagePullSecrets": [{"name": "other"}],
                "hostAliases": [{"ip": "10.0.0.1", "hostnames": ["b"]}],
                "topologySpreadConstraints": [{"topologyKey": "zone", "maxSkew": 2}]
            }}),
            Want::Ok({
                let mut o = pod();
                o["spec"]["imagePullSecrets"] = json!([{"name": "other"}, {"name": "reg"}]);
                o["spec"]["hostAliases"] = json!([{"ip": "10.0.0.1", "hostnames": ["b"]}]);
                o["spec"]["topologySpreadConstraints"] =
                    json!([{"topologyKey": "zone", "maxSkew": 2}]);
                o
            }),
        ),
        case(
            "status conditions by type",
            pod(),
            json!({"status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "PodScheduled", "status": "True"}]}}),
            Want::Ok(with(
                "/status/conditions",
                json!([
                    {"type": "Ready", "status": "True"},
                    {"type": "PodScheduled", "status": "True"},
                    {"type": "Initialized", "status": "True"}
                ]),
            )),
        ),
        case(
            // What kubectl apply sends after removing env B and adding env C.
            "kubectl three-way patch",
            with(
                &format!("{p}/env"),
                json!([{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]),
            ),
            json!({"spec": {
                "$setElementOrder/containers": [{"name": "app"}, {"name": "side"}],
                "containers": [{
                    "$setElementOrder/env": [{"name": "C"}, {"name": "A"}],
                    "name": "app",
                    "env": [{"name": "C", "value": "3"}, {"name": "B", "$patch": "delete"}]
                }]
            }}),
            Want::Ok(with(
                &format!("{p}/env"),
                json!([{"name": "C", "value": "3"}, {"name": "A", "value": "1"}]),
            )),
        ),
    ];
    run(cases, &keys);
}

#[test]
fn node_and_service_keys() {
    let node = json!({"status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.1"}, {"type": "Hostname", "address": "n"}]}});
    run(
        vec![case(
            "node addresses by type",
            node,
            json!({"status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.2"}]}}),
            Want::Ok(json!({"status": {"addresses": [
                {"type": "InternalIP", "address": "10.0.0.2"}, {"type": "Hostname", "address": "n"}
            ]}})),
        )],
        &merge_keys_for("", "Node"),
    );
    let svc = json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}]}});
    run(
        vec![case(
            "service ports by port",
            svc,
            json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}, {"port": 443}]}}),
            Want::Ok(json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}, {"port": 443}]}})),
        )],
        &merge_keys_for("", "Service"),
    );
}
