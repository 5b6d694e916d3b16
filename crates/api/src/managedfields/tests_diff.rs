//! Differential tests: every write, over generated objects and histories, gives the same
//! result with the shortcuts ([`super::fast`], equal-value skipping) as with the plain
//! algorithms ([`super::reference`], the general apply path).

use serde_json::{Value, json};

use super::*;

const DEPLOY: &str = "io.k8s.api.apps.v1.Deployment";

/// A small deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

fn with_reference<T>(on: bool, f: impl FnOnce() -> T) -> T {
    REFERENCE.with(|r| r.set(on));
    let out = f();
    REFERENCE.with(|r| r.set(false));
    out
}

fn container(rng: &mut Rng, i: usize) -> Value {
    let mut c = json!({"name": format!("c{i}"), "image": format!("img:{}", rng.below(3))});
    if rng.chance(50) {
        c["env"] = json!([{"name": "A", "value": rng.below(2).to_string()}, {"name": "B", "valueFrom": {"fieldRef": {"fieldPath": "x"}}}]);
    }
    if rng.chance(50) {
        c["ports"] = if rng.chance(50) {
            json!([{"containerPort": 80 + i, "protocol": "TCP"}, {"containerPort": 90}])
        } else {
            json!([{"containerPort": 80, "protocol": "UDP"}])
        };
    }
    if rng.chance(30) {
        c["args"] = json!(["a", rng.below(2).to_string()]);
    }
    if rng.chance(30) {
        c["resources"] = json!({"limits": {"cpu": format!("{}m", rng.below(3))}});
    }
    if rng.chance(10) {
        c["securityContext"] = json!({});
    }
    c
}

fn deployment(rng: &mut Rng) -> Value {
    let containers: Vec<Value> = (0..rng.below(6) + 1).map(|i| container(rng, i)).collect();
    let mut d = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "replicas": rng.below(3),
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": containers}}
        }
    });
    if rng.chance(40) {
        d["metadata"]["finalizers"] = json!(["a", "b"]);
    }
    if rng.chance(40) {
        d["spec"]["template"]["spec"]["tolerations"] = json!([{"key": "k"}]);
    }
    if rng.chance(30) {
        d["spec"]["strategy"] = json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}});
    }
    if rng.chance(20) {
        d["metadata"]["annotations"] = json!({"note": "x"});
    }
    d
}

/// One random change, as a client's write would make it.
fn mutate(rng: &mut Rng, obj: &mut Value) {
    let containers = obj
        .pointer_mut("/spec/template/spec/containers")
        .and_then(Value::as_array_mut);
    match rng.below(14) {
        0 => obj["spec"]["replicas"] = json!(rng.below(5)),
        1 => obj["metadata"]["labels"][format!("l{}", rng.below(3))] = json!("v"),
        2 => {
            if let Some(m) = obj["metadata"]["labels"].as_object_mut() {
                m.remove("app");
            }
        }
        3 => {
            if let Some(list) = containers {
                let i = rng.below(list.len());
                if let Some(c) = list.get_mut(i) {
                    c["image"] = json!(format!("img:{}", rng.below(9)));
                }
            }
        }
        4 => {
            if let Some(list) = containers {
                let n = list.len() + 10;
                list.push(container(rng, n));
            }
        }
        5 => {
            if let Some(list) = containers
                && list.len() > 1
            {
                list.remove(rng.below(list.len()));
            }
        }
        6 => {
            obj["status"] = json!({"replicas": rng.below(3), "conditions": [{"type": "Available", "status": "True"}]})
        }
        7 => {
            obj["spec"]["template"]["spec"]["tolerations"] =
                json!([{"key": format!("k{}", rng.below(3))}])
        }
        8 => obj["spec"]["paused"] = json!(null),
        9 => {
            // Duplicate list items.
            if let Some(list) = containers
                && let Some(first) = list.first().cloned()
            {
                list.push(first);
            }
        }
        10 => {
            if let Some(list) = containers
                && let Some(c) = list.first_mut()
            {
                c["env"] = json!([{"name": "A", "value": "changed"}]);
            }
        }
        11 => obj["metadata"]["finalizers"] = json!(["b", "c"]),
        12 => obj["spec"]["template"]["spec"]["nodeSelector"] = json!({"disk": "ssd"}),
        _ => obj["spec"]["replicas"] = json!(1.0),
    }
}

fn update_opts<'a>(manager: &'a str, subresource: &'a str, now: &'a str) -> UpdateOptions<'a> {
    UpdateOptions {
        manager,
        api_version: "apps/v1",
        subresource,
        reset_fields: reset_fields("apps", "Deployment", subresource),
        now,
    }
}

fn apply_opts<'a>(manager: &'a str, force: bool, now: &'a str) -> ApplyOptions<'a> {
    ApplyOptions {
        manager,
        force,
        api_version: "apps/v1",
        kind: "Deployment",
        subresource: "",
        reset_fields: reset_fields("apps", "Deployment", ""),
        now,
    }
}

/// Records `new` over `old` both ways and checks they agree; returns the result.
fn check_update(old: Option<&Value>, new: &Value, opts: &UpdateOptions) -> Value {
    let run = |reference| {
        with_reference(reference, || {
            let mut out = new.clone();
            record_update(old, &mut out, DEPLOY, opts);
            out
        })
    };
    let want = run(true);
    let got = run(false);
    assert_eq!(
        serde_json::to_string(&got).unwrap(),
        serde_json::to_string(&want).unwrap(),
        "record_update differs\nold: {old:?}\nnew: {new}"
    );
    want
}

fn check_apply(
    live: Option<&Value>,
    cfg: &Value,
    opts: &ApplyOptions,
) -> Result<Value, ApplyError> {
    let run = |reference| with_reference(reference, || apply(live, cfg, DEPLOY, opts));
    let want = run(true);
    let got = run(false);
    match (&got, &want) {
        (Ok(g), Ok(w)) => assert_eq!(
            serde_json::to_string(g).unwrap(),
            serde_json::to_string(w).unwrap(),
            "apply differs\nlive: {live:?}\ncfg: {cfg}"
        ),
        _ => assert_eq!(got, want, "apply differs\nlive: {live:?}\ncfg: {cfg}"),
    }
    want
}

const TIMES: [&str; 3] = [
    "2024-01-01T00:00:00Z",
    "2024-01-01T00:01:00Z",
    "2024-01-01T00:02:00Z",
];

#[test]
fn histories_agree() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for round in 0..300 {
        let base = deployment(&mut rng);
        let mut live: Option<Value> = None;
        let mut last_cfg = base.clone();
        for step in 0..8 {
            let now = TIMES[step % TIMES.len()];
            let managers = ["kubectl", "ctl-a", "ctl-b"];
            match rng.below(6) {
                // Apply: the same configuration, a changed one, forced or not.
                0..=2 => {
                    let manager = managers[rng.below(2)];
                    let mut cfg = last_cfg.clone();
                    if rng.chance(60) {
                        mutate(&mut rng, &mut cfg);
                    }
                    if rng.chance(15) {
                        cfg["metadata"]["annotations"] = json!({LAST_APPLIED_ANNOTATION: "{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\"}"});
                    }
                    let force = rng.chance(30);
                    let opts = apply_opts(manager, force, now);
                    if let Ok(out) = check_apply(live.as_ref(), &cfg, &opts) {
                        let mut out = out;
                        if live.is_none() {
                            out["metadata"]["uid"] = json!(format!("uid-{round}"));
                        }
                        live = Some(out);
                        last_cfg = cfg;
                    }
                }
                // An update (patch or put) carrying the live managed fields, or none.
                3 | 4 => {
                    let mut new = live.clone().unwrap_or_else(|| base.clone());
                    for _ in 0..rng.below(3) + 1 {
                        mutate(&mut rng, &mut new);
                    }
                    match rng.below(5) {
                        0 => {
                            if let Some(m) = new["metadata"].as_object_mut() {
                                m.remove("managedFields");
                            }
                        }
                        1 => new["metadata"]["managedFields"] = json!([]),
                        _ => {}
                    }
                    let manager = managers[rng.below(3)];
                    let out = check_update(live.as_ref(), &new, &update_opts(manager, "", now));
                    live = Some(out);
                }
                // A status write.
                _ => {
                    let Some(cur) = &live else { continue };
                    let mut new = cur.clone();
                    new["status"] = json!({"replicas": rng.below(4)});
                    if rng.chance(30) {
                        new["spec"]["replicas"] = json!(7);
                    }
                    let out =
                        check_update(live.as_ref(), &new, &update_opts("ctl-c", "status", now));
                    live = Some(out);
                }
            }
        }
    }
}

/// Creates through a POST or a create-on-PUT: no old object; with no managed fields, an
/// empty list, or someone else's entries in the body; with status set (a reset field for
/// the main resource) and lists with duplicate keys (not valid: the general way).
#[test]
fn creates_agree() {
    let mut rng = Rng(7);
    for round in 0..200 {
        let mut new = deployment(&mut rng);
        for _ in 0..rng.below(3) {
            mutate(&mut rng, &mut new);
        }
        if rng.chance(30) {
            new["status"] = json!({"replicas": rng.below(4)});
        }
        if rng.chance(10) {
            let containers = &mut new["spec"]["template"]["spec"]["containers"];
            if let Some(first) = containers.get(0).cloned()
                && let Some(list) = containers.as_array_mut()
            {
                list.push(first);
            }
        }
        match rng.below(4) {
            0 => new["metadata"]["managedFields"] = json!([]),
            1 => {
                new["metadata"]["managedFields"] = json!([{
                    "manager": "other", "operation": "Update", "apiVersion": "apps/v1",
                    "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}},
                }])
            }
            _ => {}
        }
        let subresource = if round % 7 == 0 { "status" } else { "" };
        let manager = ["kubectl-create", "ctl-a"][rng.below(2)];
        let out = check_update(None, &new, &update_opts(manager, subresource, TIMES[0]));
        if subresource.is_empty() {
            let managers = out["metadata"]["managedFields"].as_array().map(Vec::len);
            assert!(
                managers.is_some_and(|n| n >= 1),
                "round {round}: a create records its manager: {out}"
            );
        }
    }
}

#[test]
fn odd_managed_fields_agree() {
    let mut rng = Rng(42);
    let base = {
        let mut d = deployment(&mut rng);
        d["metadata"]["uid"] = json!("u");
        d
    };
    let entry = |manager: &str, op: &str, fields: Value| {
        json!({"manager": manager, "operation": op, "apiVersion": "apps/v1",
               "time": "2024-01-01T00:00:00Z", "fieldsType": "FieldsV1", "fieldsV1": fields})
    };
    let odd_fields = [
        json!({"f:spec": {"f:replicas": {}}}),
        json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {"k:{\"name\": \"c0\"}": {".": {}, "f:image": {}}}}}}}),
        json!({"f:spec": {"f:replicas": {".": {}}}}),
        json!({".": {}, "f:spec": {"f:replicas": {}}}),
        json!({"f:spec": {"z:unknown": {}, "f:replicas": {}}}),
        json!({"f:metadata": {"f:finalizers": {"v:\"a\"": {}, "v:1.0": {}}}}),
        json!({"f:spec": {"f:replicas": {".": {"x": {}}, "f:a": {}}}}),
        json!({}),
        json!({"f:spec": 1}),
        json!(null),
    ];
    for fields in &odd_fields {
        for extra in 0..13 {
            let mut entries = vec![entry("odd", "Update", fields.clone())];
            for i in 0..extra {
                entries.push(entry(
                    &format!("m{i:02}"),
                    if i == 0 { "Apply" } else { "Update" },
                    json!({"f:spec": {"f:replicas": {}}, "f:metadata": {"f:labels": {"f:app": {}}}}),
                ));
            }
            let mut old = base.clone();
            old["metadata"]["managedFields"] = Value::Array(entries);
            for m in 0..6 {
                let mut new = old.clone();
                mutate(&mut Rng(m + 1), &mut new);
                check_update(Some(&old), &new, &update_opts("writer", "", TIMES[1]));
                check_update(Some(&old), &new, &update_opts("writer", "status", TIMES[1]));
                let mut bare = new.clone();
                if let Some(meta) = bare["metadata"].as_object_mut() {
                    meta.remove("managedFields");
                }
                check_update(Some(&old), &bare, &update_opts("writer", "", TIMES[1]));
                let _ = check_apply(Some(&old), &base, &apply_opts("odd", false, TIMES[2]));
                let _ = check_apply(Some(&old), &base, &apply_opts("m00", true, TIMES[2]));
            }
        }
    }
}

/// Re-applies of a configuration by the manager that owns its fields, as the fast path
/// takes them: values changed, reordered, nulled or spelled as floats, lists grown and
/// shrunk, live objects with duplicates, other owners. Every case agrees with the general
/// path, and the fast path takes a good share of them.
#[test]
fn reapplies_agree() {
    let mut rng = Rng(7);
    let big = |rng: &mut Rng| {
        let mut d = deployment(rng);
        let containers: Vec<Value> = (0..9).map(|i| container(rng, i)).collect();
        d["spec"]["template"]["spec"]["containers"] = Value::Array(containers);
        d
    };
    let edits: [fn(&mut Value); 12] = [
        |_| {},
        |c| c["spec"]["template"]["spec"]["containers"][5]["image"] = json!("other"),
        |c| {
            c["spec"]["template"]["spec"]["containers"][0]["env"] =
                json!([{"name": "A", "value": "z"}])
        },
        |c| c["spec"]["replicas"] = json!(2.0),
        |c| c["spec"]["paused"] = json!(null),
        |c| c["metadata"]["labels"]["app"] = json!(null),
        |c| {
            let list = c["spec"]["template"]["spec"]["containers"]
                .as_array_mut()
                .unwrap();
            list.swap(1, 7);
        },
        |c| {
            let list = c["spec"]["template"]["spec"]["containers"]
                .as_array_mut()
                .unwrap();
            list.remove(3);
        },
        |c| {
            let list = c["spec"]["template"]["spec"]["containers"]
                .as_array_mut()
                .unwrap();
            list.push(json!({"name": "new", "image": "x"}));
        },
        |c| {
            c["spec"]["template"]["spec"]["containers"][2]["ports"] =
                json!([{"containerPort": 81.0}])
        },
        |c| {
            c["spec"]["template"]["spec"]["containers"][4]["securityContext"] =
                json!({"runAsUser": 1})
        },
        |c| c["status"] = json!({"replicas": 4}),
    ];
    let live_edits: [fn(&mut Value); 5] = [
        |_| {},
        |l| l["metadata"]["uid"] = json!("u"),
        |l| l["spec"]["template"]["spec"]["containers"][6]["image"] = json!("drifted"),
        |l| {
            let list = l["spec"]["template"]["spec"]["containers"]
                .as_array_mut()
                .unwrap();
            let dup = list[8].clone();
            list.push(dup);
        },
        |l| l["status"] = json!({"conditions": [{"type": "A", "status": "True"}]}),
    ];
    let before = fast::APPLIED.with(std::cell::Cell::get);
    let mut applied = 0;
    for round in 0..6 {
        let cfg = big(&mut rng);
        let first = check_apply(None, &cfg, &apply_opts("ctl-a", false, TIMES[0])).unwrap();
        for live_edit in &live_edits {
            let mut live = first.clone();
            live_edit(&mut live);
            if round % 2 == 1 {
                // Someone else owns a field too.
                let mut new = live.clone();
                new["spec"]["template"]["spec"]["containers"][1]["image"] = json!("theirs");
                live = check_update(Some(&live), &new, &update_opts("ctl-b", "", TIMES[1]));
            }
            for edit in &edits {
                let mut cfg = cfg.clone();
                edit(&mut cfg);
                for force in [false, true] {
                    let opts = apply_opts("ctl-a", force, TIMES[2]);
                    if check_apply(Some(&live), &cfg, &opts).is_ok() {
                        applied += 1;
                    }
                }
            }
        }
    }
    let fast = fast::APPLIED.with(std::cell::Cell::get) - before;
    assert!(applied > 300, "{applied}");
    // The rest change the field set or conflict without force (the general path's cases).
    assert!(
        fast * 4 > applied,
        "{fast} of {applied} applies took the fast path"
    );
}
