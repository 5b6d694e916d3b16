//! End-to-end ownership scenarios through the public entry points.

use serde_json::{Value, json};

use super::*;

const DEPLOY: &str = "io.k8s.api.apps.v1.Deployment";
const T0: &str = "2024-01-01T00:00:00Z";
const T1: &str = "2024-01-01T00:01:00Z";
const RESET_MAIN: &[&[&str]] = &[&["status"]];

fn opts(manager: &str, force: bool) -> ApplyOptions<'_> {
    ApplyOptions {
        manager,
        force,
        api_version: "apps/v1",
        kind: "Deployment",
        subresource: "",
        reset_fields: RESET_MAIN,
        now: T1,
    }
}

fn update_opts(manager: &str) -> UpdateOptions<'_> {
    UpdateOptions {
        manager,
        api_version: "apps/v1",
        subresource: "",
        reset_fields: RESET_MAIN,
        now: T0,
    }
}

fn apply_as(
    live: Option<&Value>,
    cfg: &Value,
    manager: &str,
    force: bool,
) -> Result<Value, ApplyError> {
    apply(live, cfg, DEPLOY, &opts(manager, force))
}

fn deployment(replicas: i64, containers: &[(&str, &str)]) -> Value {
    let containers: Vec<Value> = containers
        .iter()
        .map(|(n, i)| json!({"name": n, "image": i}))
        .collect();
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": containers}}
        }
    })
}

/// A stored object: what the server adds on create.
fn stored(mut obj: Value) -> Value {
    obj["metadata"]["uid"] = json!("0000-1111");
    obj["metadata"]["resourceVersion"] = json!("1");
    obj["metadata"]["creationTimestamp"] = json!(T0);
    obj
}

fn entry<'a>(obj: &'a Value, manager: &str) -> Option<&'a Value> {
    obj["metadata"]["managedFields"]
        .as_array()?
        .iter()
        .find(|e| e["manager"] == manager)
}

fn fields(obj: &Value, manager: &str) -> Value {
    entry(obj, manager).map_or(Value::Null, |e| e["fieldsV1"].clone())
}

fn managers(obj: &Value) -> Vec<String> {
    obj["metadata"]["managedFields"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| {
                    format!(
                        "{}/{}",
                        e["manager"].as_str().unwrap_or(""),
                        e["operation"].as_str().unwrap_or("")
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn owns(obj: &Value, manager: &str, pointer: &str) -> bool {
    fields(obj, manager).pointer(pointer).is_some()
}

#[test]
fn apply_creates_ownership() {
    let cfg = deployment(2, &[("nginx", "nginx:1")]);
    let out = apply_as(None, &cfg, "kubectl", false).unwrap();
    assert_eq!(out["spec"], cfg["spec"]);
    let e = entry(&out, "kubectl").unwrap();
    assert_eq!(e["operation"], "Apply");
    assert_eq!(e["apiVersion"], "apps/v1");
    assert_eq!(e["time"], T1);
    assert_eq!(e["fieldsType"], "FieldsV1");
    assert_eq!(
        e["fieldsV1"],
        json!({
            "f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {
                "f:replicas": {},
                "f:selector": {},
                "f:template": {
                    "f:metadata": {"f:labels": {"f:app": {}}},
                    "f:spec": {"f:containers": {"k:{\"name\":\"nginx\"}": {".": {}, "f:image": {}, "f:name": {}}}}
                }
            }
        })
    );
    // Applying the same configuration again changes nothing, not even the time.
    let live = stored(out);
    let again = apply(
        Some(&live),
        &cfg,
        DEPLOY,
        &ApplyOptions {
            now: "2030-01-01T00:00:00Z",
            ..opts("kubectl", false)
        },
    )
    .unwrap();
    assert_eq!(again, live);
}

#[test]
fn conflicts_and_force() {
    let live = stored(
        apply_as(
            None,
            &deployment(2, &[("nginx", "nginx:1")]),
            "alice",
            false,
        )
        .unwrap(),
    );
    let mut bob = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 5}});
    let err = apply_as(Some(&live), &bob, "bob", false).unwrap_err();
    assert_eq!(err.code(), 409);
    assert_eq!(
        err.to_string(),
        "Apply failed with 1 conflict: conflict with \"alice\": .spec.replicas"
    );
    assert_eq!(
        err.causes(),
        vec![
            json!({"reason": "FieldManagerConflict", "message": "conflict with \"alice\"", "field": ".spec.replicas"})
        ]
    );
    let status = err.status();
    assert_eq!(status["reason"], "Conflict");
    assert_eq!(status["details"]["causes"][0]["field"], ".spec.replicas");

    // Forced: bob takes the field over.
    let out = apply_as(Some(&live), &bob, "bob", true).unwrap();
    assert_eq!(out["spec"]["replicas"], 5);
    assert!(owns(&out, "bob", "/f:spec/f:replicas"));
    assert!(!owns(&out, "alice", "/f:spec/f:replicas"));
    assert!(owns(&out, "alice", "/f:spec/f:selector"));
    // Apply entries come first, then by time and name.
    assert_eq!(managers(&out), ["alice/Apply", "bob/Apply"]);

    // Several conflicts: counted, grouped by manager, one line each.
    bob["spec"]["template"] =
        json!({"spec": {"containers": [{"name": "nginx", "image": "nginx:2"}]}});
    let err = apply_as(Some(&live), &bob, "bob", false).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Apply failed with 2 conflicts: conflicts with \"alice\":\n- .spec.replicas\n- .spec.template.spec.containers[name=\"nginx\"].image"
    );
}

#[test]
fn same_value_is_shared() {
    let live = stored(
        apply_as(
            None,
            &deployment(2, &[("nginx", "nginx:1")]),
            "alice",
            false,
        )
        .unwrap(),
    );
    let bob = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 2}});
    let out = apply_as(Some(&live), &bob, "bob", false).unwrap();
    assert!(owns(&out, "alice", "/f:spec/f:replicas"));
    assert!(owns(&out, "bob", "/f:spec/f:replicas"));
    // Alice stops applying replicas: bob still owns it, so it stays.
    let live = stored(out);
    let mut alice = deployment(2, &[("nginx", "nginx:1")]);
    alice["spec"].as_object_mut().unwrap().remove("replicas");
    let out = apply_as(Some(&live), &alice, "alice", false).unwrap();
    assert_eq!(out["spec"]["replicas"], 2);
    assert!(!owns(&out, "alice", "/f:spec/f:replicas"));
}

#[test]
fn dropped_fields_are_removed() {
    let mut cfg = deployment(2, &[("nginx", "nginx:1")]);
    cfg["metadata"]["labels"]["tier"] = json!("front");
    cfg["spec"]["paused"] = json!(true);
    let live = stored(apply_as(None, &cfg, "alice", false).unwrap());
    let out = apply_as(
        Some(&live),
        &deployment(2, &[("nginx", "nginx:1")]),
        "alice",
        false,
    )
    .unwrap();
    assert!(out["spec"].get("paused").is_none());
    assert_eq!(out["metadata"]["labels"], json!({"app": "web"}));
    // Server-set metadata is never pruned.
    assert_eq!(out["metadata"]["uid"], "0000-1111");
    assert_eq!(out["metadata"]["resourceVersion"], "1");

    // A field another manager set by update stays when the applier stops applying it.
    let mut updated = live.clone();
    updated["spec"]["minReadySeconds"] = json!(5);
    record_update(
        Some(&live),
        &mut updated,
        DEPLOY,
        &update_opts("kubectl-edit"),
    );
    let live = stored(updated);
    assert!(owns(&live, "kubectl-edit", "/f:spec/f:minReadySeconds"));
    let out = apply_as(
        Some(&live),
        &deployment(2, &[("nginx", "nginx:1")]),
        "alice",
        false,
    )
    .unwrap();
    assert_eq!(out["spec"]["minReadySeconds"], 5);
    assert!(out["spec"].get("paused").is_none());
}

#[test]
fn list_map_items_by_name() {
    let live = stored(apply_as(None, &deployment(1, &[("a", "a:1")]), "alice", false).unwrap());
    let bob = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                     "spec": {"template": {"spec": {"containers": [{"name": "b", "image": "b:1"}]}}}});
    let live = stored(apply_as(Some(&live), &bob, "bob", false).unwrap());
    let names = |o: &Value| -> Vec<String> {
        o["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(&live), ["a", "b"]);
    assert!(owns(
        &live,
        "bob",
        "/f:spec/f:template/f:spec/f:containers/k:{\"name\":\"b\"}/f:image"
    ));
    // Alice replaces her container: hers goes, bob's stays.
    let out = apply_as(Some(&live), &deployment(1, &[("c", "c:1")]), "alice", false).unwrap();
    assert_eq!(names(&out), ["b", "c"]);
}

#[test]
fn set_lists() {
    let with_finalizers = |f: &[&str]| json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "finalizers": f}});
    let live = stored(apply_as(None, &with_finalizers(&["a", "b"]), "alice", false).unwrap());
    assert!(owns(&live, "alice", "/f:metadata/f:finalizers/v:\"a\""));
    let live = stored(apply_as(Some(&live), &with_finalizers(&["b", "c"]), "bob", false).unwrap());
    assert_eq!(live["metadata"]["finalizers"], json!(["a", "b", "c"]));
    // Alice drops both: "a" goes, "b" stays (bob applies it too).
    let out = apply_as(Some(&live), &with_finalizers(&[]), "alice", false).unwrap();
    assert_eq!(out["metadata"]["finalizers"], json!(["b", "c"]));
}

#[test]
fn atomic_lists_and_structs() {
    let tolerations = |t: Value| {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
               "spec": {"template": {"spec": {"tolerations": t}}}})
    };
    let live = stored(
        apply_as(
            None,
            &tolerations(json!([{"key": "a"}, {"key": "b"}])),
            "alice",
            false,
        )
        .unwrap(),
    );
    assert_eq!(
        fields(&live, "alice"),
        json!({"f:spec": {"f:template": {"f:spec": {"f:tolerations": {}}}}})
    );
    // Another manager's list is a conflict on the list as a whole…
    let err = apply_as(
        Some(&live),
        &tolerations(json!([{"key": "c"}])),
        "bob",
        false,
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .ends_with(": .spec.template.spec.tolerations"),
        "{err}"
    );
    // …and replaces it whole when forced.
    let out = apply_as(
        Some(&live),
        &tolerations(json!([{"key": "c"}])),
        "bob",
        true,
    )
    .unwrap();
    assert_eq!(
        out["spec"]["template"]["spec"]["tolerations"],
        json!([{"key": "c"}])
    );
    assert!(entry(&out, "alice").is_none());
    // The atomic selector is one field.
    let live = stored(apply_as(None, &deployment(1, &[("a", "a:1")]), "alice", false).unwrap());
    let mut cfg = deployment(1, &[("a", "a:1")]);
    cfg["spec"]["selector"] = json!({"matchLabels": {"app": "web", "x": "y"}});
    let err = apply_as(Some(&live), &cfg, "bob", false).unwrap_err();
    assert!(err.to_string().contains(".spec.selector"), "{err}");
}

#[test]
fn record_update_moves_ownership() {
    let mut created = deployment(2, &[("nginx", "nginx:1")]);
    created["status"] = json!({"replicas": 0});
    record_update(None, &mut created, DEPLOY, &update_opts("kubectl-create"));
    let e = entry(&created, "kubectl-create").unwrap();
    assert_eq!(e["operation"], "Update");
    assert_eq!(e["time"], T0);
    // Status is reset on the main resource, and server metadata is never owned.
    assert!(!owns(&created, "kubectl-create", "/f:status"));
    assert!(owns(&created, "kubectl-create", "/f:metadata/f:labels/."));
    assert!(owns(&created, "kubectl-create", "/f:spec/f:replicas"));
    assert!(!owns(&created, "kubectl-create", "/f:metadata/f:name"));
    let live = stored(created);

    let mut scaled = live.clone();
    scaled["spec"]["replicas"] = json!(4);
    record_update(
        Some(&live),
        &mut scaled,
        DEPLOY,
        &UpdateOptions {
            now: T1,
            ..update_opts("kubectl-scale")
        },
    );
    assert!(owns(&scaled, "kubectl-scale", "/f:spec/f:replicas"));
    assert!(!owns(&scaled, "kubectl-create", "/f:spec/f:replicas"));
    assert_eq!(entry(&scaled, "kubectl-scale").unwrap()["time"], T1);
    assert_eq!(
        managers(&scaled),
        ["kubectl-create/Update", "kubectl-scale/Update"]
    );

    // A no-op update records nothing new.
    let live = stored(scaled);
    let mut same = live.clone();
    record_update(Some(&live), &mut same, DEPLOY, &update_opts("other"));
    assert_eq!(same, live);

    // A status write is recorded with its subresource, ignoring managed fields it sends.
    let mut status = live.clone();
    status["status"] = json!({"replicas": 4});
    status["metadata"]["managedFields"] = json!([]);
    record_update(
        Some(&live),
        &mut status,
        DEPLOY,
        &UpdateOptions {
            subresource: "status",
            reset_fields: reset_fields("apps", "Deployment", "status"),
            ..update_opts("kube-controller-manager")
        },
    );
    let e = entry(&status, "kube-controller-manager").unwrap();
    assert_eq!(e["subresource"], "status");
    assert_eq!(e["fieldsV1"], json!({"f:status": {"f:replicas": {}}}));
    assert!(entry(&status, "kubectl-create").is_some());
}

#[test]
fn record_update_honours_written_managed_fields() {
    let mut created = deployment(2, &[("nginx", "nginx:1")]);
    record_update(None, &mut created, DEPLOY, &update_opts("kubectl-create"));
    let live = stored(created);
    // `[]` resets tracking, and an object without managed fields stays untracked.
    let mut reset = live.clone();
    reset["metadata"]["managedFields"] = json!([]);
    record_update(
        Some(&live),
        &mut reset,
        DEPLOY,
        &update_opts("kubectl-patch"),
    );
    assert!(reset["metadata"].get("managedFields").is_none());
    let untracked = stored(reset);
    let mut changed = untracked.clone();
    changed["spec"]["replicas"] = json!(9);
    record_update(
        Some(&untracked),
        &mut changed,
        DEPLOY,
        &update_opts("kubectl-patch"),
    );
    assert!(changed["metadata"].get("managedFields").is_none());
    // Entries a write sets replace the stored ones; junk ones are ignored.
    let mut rewritten = live.clone();
    rewritten["metadata"]["managedFields"] = json!([{"manager": "someone", "operation": "Apply", "apiVersion": "apps/v1",
        "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}}}]);
    record_update(Some(&live), &mut rewritten, DEPLOY, &update_opts("kubectl"));
    assert_eq!(managers(&rewritten), ["someone/Apply"]);
    let mut junk = live.clone();
    junk["metadata"]["managedFields"] = json!([{"manager": 5}]);
    record_update(Some(&live), &mut junk, DEPLOY, &update_opts("kubectl"));
    assert_eq!(
        junk["metadata"]["managedFields"],
        live["metadata"]["managedFields"]
    );
}

#[test]
fn before_first_apply() {
    // Created without tracking (e.g. before managed fields existed).
    let live = stored(deployment(2, &[("nginx", "nginx:1")]));
    let out = apply_as(
        Some(&live),
        &deployment(2, &[("nginx", "nginx:1")]),
        "alice",
        false,
    )
    .unwrap();
    assert_eq!(managers(&out), ["alice/Apply", "before-first-apply/Update"]);
    let err = apply_as(
        Some(&live),
        &deployment(3, &[("nginx", "nginx:1")]),
        "alice",
        false,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Apply failed with 1 conflict: conflict with \"before-first-apply\" using apps/v1: .spec.replicas"
    );
}

/// kubectl apply (client side), then kubectl apply --server-side with a changed value,
/// then kubectl's managed-fields upgrade patch, then a server-side apply dropping a field.
#[test]
fn client_side_apply_to_server_side_apply() {
    let mut cfg = deployment(2, &[("nginx", "nginx:1")]);
    cfg["spec"]["paused"] = json!(false);
    let mut created = cfg.clone();
    created["metadata"]["annotations"] =
        json!({LAST_APPLIED_ANNOTATION: format!("{}\n", serde_json::to_string(&cfg).unwrap())});
    record_update(
        None,
        &mut created,
        DEPLOY,
        &update_opts("kubectl-client-side-apply"),
    );
    let live = stored(created);

    // Another manager changing a client-side-applied field conflicts…
    let mut changed = cfg.clone();
    changed["spec"]["replicas"] = json!(3);
    let err = apply_as(Some(&live), &changed, "alice", false).unwrap_err();
    assert!(
        err.to_string()
            .contains("conflict with \"kubectl-client-side-apply\" using apps/v1: .spec.replicas"),
        "{err}"
    );
    // …but kubectl itself may, since the live value is what it applied last.
    let out = apply_as(Some(&live), &changed, "kubectl", false).unwrap();
    assert_eq!(out["spec"]["replicas"], 3);
    assert!(owns(&out, "kubectl", "/f:spec/f:replicas"));
    assert!(!owns(
        &out,
        "kubectl-client-side-apply",
        "/f:spec/f:replicas"
    ));
    let recorded: Value = serde_json::from_str(
        out["metadata"]["annotations"][LAST_APPLIED_ANNOTATION]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(recorded["spec"]["replicas"], 3);

    // A value changed since the last client-side apply is a real conflict.
    let mut drifted = live.clone();
    drifted["spec"]["paused"] = json!(true);
    let mut want = cfg.clone();
    want["spec"]["paused"] = json!(false);
    want["spec"]["replicas"] = json!(7);
    let mut edited = drifted.clone();
    record_update(
        Some(&live),
        &mut edited,
        DEPLOY,
        &update_opts("kubectl-edit"),
    );
    let err = apply_as(Some(&stored(edited)), &want, "kubectl", false).unwrap_err();
    assert!(
        err.to_string()
            .contains("\"kubectl-edit\" using apps/v1: .spec.paused"),
        "{err}"
    );

    // kubectl's upgrade patch folds the client-side entry into its applier entry.
    let live = stored(out);
    let upgraded = upgrade_managed_fields(
        &live["metadata"]["managedFields"],
        &["kubectl-client-side-apply"],
        "kubectl",
    )
    .unwrap()
    .unwrap();
    let mut patched = live.clone();
    patched["metadata"]["managedFields"] = upgraded;
    record_update(Some(&live), &mut patched, DEPLOY, &update_opts("kubectl"));
    assert_eq!(managers(&patched), ["kubectl/Apply"]);
    assert!(owns(&patched, "kubectl", "/f:spec/f:paused"));

    // Now a server-side apply without `paused` removes it.
    let live = stored(patched);
    let mut without = changed.clone();
    without["spec"].as_object_mut().unwrap().remove("paused");
    let out = apply_as(Some(&live), &without, "kubectl", false).unwrap();
    assert!(out["spec"].get("paused").is_none());
}

#[test]
fn applied_null_unsets_and_owns() {
    let live = stored(
        apply_as(
            None,
            &deployment(2, &[("nginx", "nginx:1")]),
            "alice",
            false,
        )
        .unwrap(),
    );
    let mut cfg = deployment(2, &[("nginx", "nginx:1")]);
    cfg["spec"]["paused"] = Value::Null;
    let out = apply_as(Some(&live), &cfg, "alice", false).unwrap();
    assert!(out["spec"].get("paused").is_none());
    assert!(owns(&out, "alice", "/f:spec/f:paused"));
}

#[test]
fn bad_requests() {
    let cases: Vec<(Value, u16, &str)> = vec![
        (json!([1]), 400, "must be an object"),
        (
            json!({"apiVersion": "apps/v1beta1", "kind": "Deployment"}),
            400,
            "invalid object type: apps/v1beta1, Kind=Deployment",
        ),
        (
            json!({"apiVersion": "apps/v1", "kind": "Pod"}),
            400,
            "invalid object type: apps/v1, Kind=Pod",
        ),
        (
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"managedFields": []}}),
            400,
            "metadata.managedFields must be nil",
        ),
        (
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "ns"},
                   "spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}}),
            500,
            "failed to create typed patch object (ns/web; apps/v1, Kind=Deployment): .spec.template.spec.containers: element 0: associative list with keys has an element that omits all key fields [\"name\"] (and doesn't have default values for any key fields)",
        ),
    ];
    for (cfg, code, msg) in cases {
        let err = apply_as(None, &cfg, "alice", false).unwrap_err();
        assert_eq!(err.code(), code, "{cfg}");
        assert!(err.to_string().contains(msg), "{err}");
    }
    let live = json!({"metadata": {"managedFields": [{"operation": "Nope"}]}});
    let err = apply_as(Some(&live), &deployment(1, &[]), "alice", false).unwrap_err();
    assert_eq!(err.code(), 500);
    assert!(err.status().get("reason").is_none());
}

#[test]
fn default_managers() {
    let cases = [
        ("kubectl/v1.32.0 (linux/amd64) kubernetes/abc", "kubectl"),
        (
            "kube-controller-manager/v1.32.0 (linux/amd64)",
            "kube-controller-manager",
        ),
        ("Go-http-client/1.1", "Go-http-client"),
        ("", "unknown"),
        ("/x", "unknown"),
        ("a\u{7}b/1", "ab"),
    ];
    for (ua, want) in cases {
        assert_eq!(default_manager(ua), want, "{ua:?}");
    }
    assert_eq!(default_manager(&"x".repeat(300)).len(), 128);
    assert_eq!(reset_fields("apps", "Deployment", ""), &[&["status"][..]]);
    assert!(reset_fields("", "ConfigMap", "").is_empty());
}

#[test]
fn junk_never_panics() {
    let junk = [
        json!(null),
        json!(1),
        json!("x"),
        json!([]),
        json!({}),
        json!({"metadata": 5}),
        json!({"metadata": {"managedFields": "x"}}),
        json!({"metadata": {"managedFields": [{"operation": "Apply", "apiVersion": "v1", "fieldsType": "FieldsV1", "fieldsV1": {"f:a": {"k:{}": {}}}}]}}),
        json!({"spec": {"template": {"spec": {"containers": [null, 1, "x", [], {"name": null}, {"name": "a"}, {"name": "a"}]}}}}),
        json!({"spec": {"template": {"spec": {"containers": {"name": "a"}}}}}),
        json!({"spec": "x", "status": [1, 2], "metadata": {"labels": [1], "finalizers": [{"a": 1}, null, ["x"]]}}),
        json!({"spec": {"selector": "x", "template": 5, "replicas": {"a": 1}}}),
    ];
    let defs = [DEPLOY, "io.k8s.api.core.v1.Pod", "nope"];
    for live in &junk {
        for new in &junk {
            for def in defs {
                let mut n = new.clone();
                record_update(Some(live), &mut n, def, &update_opts("m"));
                let mut n = new.clone();
                record_update(None, &mut n, def, &update_opts("m"));
                let mut cfg = new.clone();
                if let Value::Object(m) = &mut cfg {
                    m.insert("apiVersion".into(), json!("apps/v1"));
                    m.insert("kind".into(), json!("Deployment"));
                    if let Some(Value::Object(meta)) = m.get_mut("metadata") {
                        meta.remove("managedFields");
                    }
                }
                for force in [false, true] {
                    let _ = apply(Some(live), &cfg, def, &opts("m", force));
                    let _ = apply(None, &cfg, def, &opts("kubectl", force));
                }
            }
        }
        let _ = upgrade_managed_fields(live, &["a"], "b");
    }
}

#[test]
fn scale_subresource_takes_replicas() {
    let live = stored(
        apply_as(
            None,
            &deployment(2, &[("nginx", "nginx:1")]),
            "alice",
            false,
        )
        .unwrap(),
    );
    let mut scaled = live.clone();
    scaled["spec"]["replicas"] = json!(5);
    record_update(
        Some(&live),
        &mut scaled,
        DEPLOY,
        &UpdateOptions {
            subresource: "scale",
            reset_fields: &[],
            ..update_opts("hpa")
        },
    );
    let e = entry(&scaled, "hpa").unwrap();
    assert_eq!(e["subresource"], "scale");
    assert_eq!(e["fieldsV1"], json!({"f:spec": {"f:replicas": {}}}));
    assert!(!owns(&scaled, "alice", "/f:spec/f:replicas"));
    let err = apply_as(
        Some(&stored(scaled)),
        &deployment(2, &[("nginx", "nginx:1")]),
        "alice",
        false,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Apply failed with 1 conflict: conflict with \"hpa\" with subresource \"scale\" using apps/v1: .spec.replicas"
    );
}
