//! Table tests of strategic merge: maps, `null`, map directives, `$retainKeys`, errors.
//! List behaviour is in `tests_lists.rs`.

use serde_json::{Value, json};

use super::*;
use crate::patch::schema::{NoMergeKeys, merge_keys_for};

/// Expected outcome: the patched object, or an error's status code and a message part.
pub(super) enum Want {
    Ok(Value),
    Err(u16, &'static str),
}

pub(super) struct Case {
    pub name: &'static str,
    pub original: Value,
    pub patch: Value,
    pub want: Want,
}

pub(super) fn case(name: &'static str, original: Value, patch: Value, want: Want) -> Case {
    Case {
        name,
        original,
        patch,
        want,
    }
}

pub(super) fn run(cases: Vec<Case>, keys: &dyn MergeKeys) {
    for c in cases {
        let before = c.original.clone();
        let got = strategic_merge(&c.original, &c.patch, keys);
        assert_eq!(c.original, before, "{}: input mutated", c.name);
        match (got, c.want) {
            (Ok(v), Want::Ok(want)) => assert_eq!(v, want, "{}", c.name),
            (Err(e), Want::Err(code, part)) => {
                assert_eq!(e.status_code(), code, "{}: {e:?}", c.name);
                assert!(
                    e.to_string().contains(part),
                    "{}: {e} lacks {part:?}",
                    c.name
                );
            }
            (Ok(v), Want::Err(..)) => panic!("{}: expected an error, got {v}", c.name),
            (Err(e), Want::Ok(_)) => panic!("{}: unexpected error {e:?}", c.name),
        }
    }
}

/// Fields named like upstream's test type: `mergingList` merges by `name`,
/// `mergingIntList` is a set, `replacingMap` is replaced, anything else is plain.
pub(super) fn generic(path: &[&str]) -> Option<FieldStrategy> {
    match path.last().copied() {
        Some("mergingList") => Some(FieldStrategy::merge_by("name")),
        Some("mergingIntList") => Some(FieldStrategy::merge_set()),
        Some("replacingMap") => Some(FieldStrategy {
            replace: true,
            ..FieldStrategy::default()
        }),
        Some("retainKeysMap") => Some(FieldStrategy {
            retain_keys: true,
            ..FieldStrategy::default()
        }),
        _ => None,
    }
}

#[test]
fn maps_and_nulls() {
    run(
        vec![
            case(
                "maps merge recursively",
                json!({"a": {"b": 1, "c": {"d": 2}}, "x": 1}),
                json!({"a": {"c": {"e": 3}, "f": 4}}),
                Want::Ok(json!({"a": {"b": 1, "c": {"d": 2, "e": 3}, "f": 4}, "x": 1})),
            ),
            case(
                "scalars replace",
                json!({"a": 1, "b": "x"}),
                json!({"a": 2, "b": true}),
                Want::Ok(json!({"a": 2, "b": true})),
            ),
            case(
                "null deletes a field",
                json!({"a": 1, "b": {"c": 1, "d": 2}}),
                json!({"a": null, "b": {"c": null}}),
                Want::Ok(json!({"b": {"d": 2}})),
            ),
            case(
                "null for an absent field is ignored",
                json!({"a": 1}),
                json!({"z": null, "y": {"q": null}}),
                Want::Ok(json!({"a": 1, "y": {}})),
            ),
            case(
                "nulls inside a new map are dropped",
                json!({}),
                json!({"new": {"a": 1, "b": null, "c": {"d": null, "e": 2}}}),
                Want::Ok(json!({"new": {"a": 1, "c": {"e": 2}}})),
            ),
            case(
                "a value of another type replaces",
                json!({"a": [1, 2], "b": {"c": 1}, "c": "s"}),
                json!({"a": {"x": 1}, "b": [1], "c": {"y": null, "z": 1}}),
                Want::Ok(json!({"a": {"x": 1}, "b": [1], "c": {"z": 1}})),
            ),
            case(
                "null original is replaced",
                json!({"a": null}),
                json!({"a": {"b": 1}}),
                Want::Ok(json!({"a": {"b": 1}})),
            ),
            case(
                "non-merging lists are replaced",
                json!({"list": [{"name": "a"}, {"name": "b"}], "ints": [1, 2]}),
                json!({"list": [{"name": "c", "gone": null}], "ints": [3]}),
                Want::Ok(json!({"list": [{"name": "c"}], "ints": [3]})),
            ),
            case(
                "empty patch changes nothing",
                json!({"a": {"b": [1]}}),
                json!({}),
                Want::Ok(json!({"a": {"b": [1]}})),
            ),
            case(
                "fields named $ref are data (CRD schemas)",
                json!({"schema": {"$ref": "#/a"}}),
                json!({"schema": {"$ref": "#/b", "$schema": "x"}}),
                Want::Ok(json!({"schema": {"$ref": "#/b", "$schema": "x"}})),
            ),
        ],
        &generic,
    );
}

#[test]
fn map_directives() {
    run(
        vec![
            case(
                "$patch: replace replaces a map",
                json!({"m": {"a": 1, "b": 2}, "k": 1}),
                json!({"m": {"$patch": "replace", "c": 3}}),
                Want::Ok(json!({"m": {"c": 3}, "k": 1})),
            ),
            case(
                "$patch: replace content is still patch syntax",
                json!({"m": {"a": 1}}),
                json!({"m": {"$patch": "replace", "n": {"x": null, "y": 1}}}),
                Want::Ok(json!({"m": {"n": {"y": 1}}})),
            ),
            case(
                "$patch: replace at the top replaces the object",
                json!({"a": 1, "b": 2}),
                json!({"$patch": "replace", "c": 3}),
                Want::Ok(json!({"c": 3})),
            ),
            case(
                "$patch: delete empties a map",
                json!({"m": {"a": 1}, "k": 1}),
                json!({"m": {"$patch": "delete"}}),
                Want::Ok(json!({"m": {}, "k": 1})),
            ),
            case(
                "$patch: delete of an absent map adds nothing",
                json!({"k": 1}),
                json!({"m": {"$patch": "delete"}}),
                Want::Ok(json!({"k": 1})),
            ),
            case(
                "strategy replace replaces the map",
                json!({"replacingMap": {"a": 1}, "plain": {"a": 1}}),
                json!({"replacingMap": {"b": 2}, "plain": {"b": 2}}),
                Want::Ok(json!({"replacingMap": {"b": 2}, "plain": {"a": 1, "b": 2}})),
            ),
            case(
                "$patch: merge is refused on maps, as upstream",
                json!({"m": {"a": 1}}),
                json!({"m": {"$patch": "merge", "b": 1}}),
                Want::Err(
                    500,
                    "unknown patch type: merge in map: map[$patch:merge b:1]",
                ),
            ),
            case(
                "$patch: foo",
                json!({"m": {}}),
                json!({"m": {"$patch": "foo"}}),
                Want::Err(500, "unknown patch type: foo"),
            ),
            case(
                "$patch that is not a string",
                json!({}),
                json!({"$patch": 5}),
                Want::Err(500, "unknown patch type: 5"),
            ),
            case(
                "unknown directive",
                json!({"m": {}}),
                json!({"m": {"$frobnicate": [1]}}),
                Want::Err(400, "unknown patch directive \"$frobnicate\""),
            ),
        ],
        &generic,
    );
}

#[test]
fn retain_keys() {
    run(
        vec![
            case(
                "$retainKeys clears unlisted keys",
                json!({"retainKeysMap": {"name": "a", "value": "v", "other": 1}}),
                json!({"retainKeysMap": {"$retainKeys": ["name", "value"], "value": "w"}}),
                Want::Ok(json!({"retainKeysMap": {"name": "a", "value": "w"}})),
            ),
            case(
                "$retainKeys with a null for an unlisted key",
                json!({"m": {"a": 1, "b": 2}}),
                json!({"m": {"$retainKeys": ["a"], "b": null}}),
                Want::Ok(json!({"m": {"a": 1}})),
            ),
            case(
                "$retainKeys on a new map",
                json!({}),
                json!({"m": {"$retainKeys": ["a"], "a": 1}}),
                Want::Ok(json!({"m": {"a": 1}})),
            ),
            case(
                "a patched key missing from $retainKeys",
                json!({"m": {"a": 1}}),
                json!({"m": {"$retainKeys": ["a"], "b": 2}}),
                Want::Err(400, "invalid patch format of retainKeys"),
            ),
            case(
                "$retainKeys must be a list",
                json!({"m": {"a": 1}}),
                json!({"m": {"$retainKeys": "a"}}),
                Want::Err(400, "invalid patch format of retainKeys"),
            ),
        ],
        &generic,
    );
}

fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}, "finalizers": ["a"]},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [{
                        "name": "app", "image": "app:1",
                        "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                        "ports": [{"containerPort": 80, "name": "http"}],
                        "volumeMounts": [{"name": "data", "mountPath": "/data"}]
                    }],
                    "volumes": [{"name": "data", "emptyDir": {}}],
                    "tolerations": [{"key": "a", "operator": "Exists"}]
                }
            }
        }
    })
}

/// `f` edits a copy of the deployment into the expected result.
fn edited(f: impl FnOnce(&mut Value)) -> Value {
    let mut d = deployment();
    f(&mut d);
    d
}

#[test]
fn deployment_templates() {
    let c0 = "/spec/template/spec/containers/0";
    let cases = vec![
        case(
            "Recreate strategy with $retainKeys drops rollingUpdate",
            deployment(),
            json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": null}}}),
            Want::Ok(edited(|d| {
                d["spec"]["strategy"] = json!({"type": "Recreate"})
            })),
        ),
        case(
            "env: modify one, add one, delete one",
            deployment(),
            json!({"spec": {"template": {"spec": {"containers": [{
                "name": "app",
                "env": [{"name": "A", "value": "9"}, {"name": "C", "value": "3"}, {"name": "B", "$patch": "delete"}]
            }]}}}}),
            Want::Ok(edited(|d| {
                if let Some(env) = d.pointer_mut(&format!("{c0}/env")) {
                    *env = json!([{"name": "A", "value": "9"}, {"name": "C", "value": "3"}]);
                }
            })),
        ),
        case(
            "volume source swapped with $retainKeys",
            deployment(),
            json!({"spec": {"template": {"spec": {"volumes": [{
                "$retainKeys": ["configMap", "name"], "name": "data", "configMap": {"name": "cm"}
            }]}}}}),
            Want::Ok(edited(|d| {
                d["spec"]["template"]["spec"]["volumes"] =
                    json!([{"name": "data", "configMap": {"name": "cm"}}]);
            })),
        ),
        case(
            "tolerations have no merge key: replaced",
            deployment(),
            json!({"spec": {"template": {"spec": {"tolerations": [{"key": "b", "operator": "Exists"}]}}}}),
            Want::Ok(edited(|d| {
                d["spec"]["template"]["spec"]["tolerations"] =
                    json!([{"key": "b", "operator": "Exists"}]);
            })),
        ),
        case(
            "rollout restart annotation",
            deployment(),
            json!({"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "now"}}}}}),
            Want::Ok(edited(|d| {
                d["spec"]["template"]["metadata"]["annotations"] =
                    json!({"kubectl.kubernetes.io/restartedAt": "now"});
            })),
        ),
        case(
            "scale",
            deployment(),
            json!({"spec": {"replicas": 5}}),
            Want::Ok(edited(|d| d["spec"]["replicas"] = json!(5))),
        ),
        case(
            "container without its merge key",
            deployment(),
            json!({"spec": {"template": {"spec": {"containers": [{"image": "nginx"}]}}}}),
            Want::Err(
                500,
                "map: map[image:nginx] does not contain declared merge key: name",
            ),
        ),
    ];
    run(cases, &merge_keys_for("apps", "Deployment"));
}

#[test]
fn pdb_selector_is_replaced() {
    let pdb = json!({"spec": {"selector": {"matchLabels": {"a": "1"}}, "minAvailable": 1}});
    run(
        vec![case(
            "PodDisruptionBudgetSpec.selector has strategy replace",
            pdb,
            json!({"spec": {"selector": {"matchLabels": {"b": "2"}}}}),
            Want::Ok(json!({"spec": {"selector": {"matchLabels": {"b": "2"}}, "minAvailable": 1}})),
        )],
        &merge_keys_for("policy", "PodDisruptionBudget"),
    );
}

#[test]
fn decoding_bodies() {
    assert_eq!(
        decode_strategic_patch(b"{\"a\":1}").unwrap(),
        json!({"a": 1})
    );
    assert_eq!(decode_strategic_patch(b"null").unwrap(), Value::Null);
    for body in [&b"{"[..], b"", b"[]", b"\"s\"", b"1", b"{\"a\":1}x"] {
        let err = decode_strategic_patch(body).expect_err("malformed");
        assert_eq!(err.status_code(), 400, "{body:?}");
    }
    let err = decode_strategic_patch(b"[1]").unwrap_err();
    assert!(err.to_string().contains("cannot unmarshal array"), "{err}");
    // A null patch is a no-op; a non-object patch value is refused.
    let o = json!({"a": 1});
    assert_eq!(strategic_merge(&o, &Value::Null, &generic).unwrap(), o);
    assert_eq!(
        strategic_merge(&o, &json!([1]), &generic)
            .unwrap_err()
            .status_code(),
        400
    );
}

#[test]
fn no_merge_keys_behaves_like_merge_patch_for_lists() {
    let o = json!({"spec": {"containers": [{"name": "a"}], "x": 1}});
    let p = json!({"spec": {"containers": [{"name": "b"}]}});
    let got = strategic_merge(&o, &p, &NoMergeKeys).unwrap();
    assert_eq!(
        got,
        json!({"spec": {"containers": [{"name": "b"}], "x": 1}})
    );
}

#[test]
fn odd_shapes_never_panic() {
    // Every pairing of awkward values under every kind of field: each must give a result
    // or an error, never a panic.
    let values = [
        json!(null),
        json!(1),
        json!("s"),
        json!([]),
        json!([1, "a"]),
        json!([null]),
        json!([[1]]),
        json!([{"name": "a"}, {"name": "a"}]),
        json!([{"name": "a", "$patch": "delete"}, {"x": 1}]),
        json!([{"$patch": "replace"}]),
        json!([{"$patch": 3}]),
        json!({}),
        json!({"$patch": "delete"}),
        json!({"$patch": "replace", "a": {"$retainKeys": ["b"], "b": null}}),
        json!({"$retainKeys": "x"}),
        json!({"name": {"nested": [1]}}),
    ];
    let fields = [
        "mergingList",
        "mergingIntList",
        "plain",
        "replacingMap",
        "$setElementOrder/mergingList",
        "$setElementOrder/mergingIntList",
        "$deleteFromPrimitiveList/mergingIntList",
        "$retainKeys",
        "$patch",
    ];
    for field in fields {
        for o in &values {
            for p in &values {
                let original =
                    json!({"mergingList": o, "mergingIntList": o, "plain": o, "replacingMap": o});
                let patch = json!({ field: p });
                let _ = strategic_merge(&original, &patch, &generic);
                let _ = strategic_merge(&original, &patch, &merge_keys_for("", "Pod"));
            }
        }
    }
}
