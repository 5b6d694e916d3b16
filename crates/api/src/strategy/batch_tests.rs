use serde_json::{Value, json};

use crate::strategy::for_kind;
use crate::strategy::test_support::{assert_has, create, defaulted, update};

fn job(spec: Value) -> Value {
    json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "pi", "namespace": "default", "uid": "u-1"}, "spec": spec})
}

fn pod_template() -> Value {
    json!({"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "perl:5"}]}})
}

#[test]
fn job_defaults_and_generated_selector() {
    let (obj, errs) = create("batch", "Job", job(json!({"template": pod_template()})));
    assert!(errs.is_empty(), "{errs:#?}");
    let spec = &obj["spec"];
    assert_eq!(spec["completions"], 1);
    assert_eq!(spec["parallelism"], 1);
    assert_eq!(spec["backoffLimit"], 6);
    assert_eq!(spec["completionMode"], "NonIndexed");
    assert_eq!(spec["suspend"], false);
    assert_eq!(spec["podReplacementPolicy"], "TerminatingOrFailed");
    assert_eq!(
        spec["selector"],
        json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "u-1"}})
    );
    assert_eq!(
        spec["template"]["metadata"]["labels"],
        json!({
            "batch.kubernetes.io/controller-uid": "u-1",
            "batch.kubernetes.io/job-name": "pi",
            "controller-uid": "u-1",
            "job-name": "pi"
        })
    );
    assert_eq!(obj["status"], json!({}));

    // Only parallelism given: completions stays unset.
    let d = defaulted(
        "batch",
        "Job",
        job(json!({"parallelism": 3, "template": pod_template()})),
    );
    assert!(d["spec"].get("completions").is_none());
    // backoffLimitPerIndex raises the default backoffLimit; a podFailurePolicy changes
    // the replacement policy and defaults rule condition status.
    let d = defaulted(
        "batch",
        "Job",
        job(json!({
            "backoffLimitPerIndex": 1,
            "podFailurePolicy": {"rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]},
            "template": pod_template()
        })),
    );
    assert_eq!(d["spec"]["backoffLimit"], 2147483647);
    assert_eq!(d["spec"]["podReplacementPolicy"], "Failed");
    assert_eq!(
        d["spec"]["podFailurePolicy"]["rules"][0]["onPodConditions"][0]["status"],
        "True"
    );
    // Job labels come from the template when unset.
    let d = defaulted(
        "batch",
        "Job",
        job(json!({"template": {"metadata": {"labels": {"a": "b"}}, "spec": {}}})),
    );
    assert_eq!(d["metadata"]["labels"], json!({"a": "b"}));
}

#[test]
fn job_validation_table() {
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (
            json!({"template": {"spec": {"containers": [{"name": "c", "image": "x"}]}}}),
            vec![
                "spec.template.spec.restartPolicy: Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\"",
            ],
        ),
        (
            json!({"parallelism": -1, "completions": -2, "backoffLimit": -3, "activeDeadlineSeconds": -4, "template": pod_template()}),
            vec![
                "spec.parallelism: Invalid value: -1: must be greater than or equal to 0",
                "spec.completions: Invalid value: -2: must be greater than or equal to 0",
                "spec.backoffLimit: Invalid value: -3: must be greater than or equal to 0",
                "spec.activeDeadlineSeconds: Invalid value: -4: must be greater than or equal to 0",
            ],
        ),
        (
            json!({"completionMode": "Random", "template": pod_template()}),
            vec![
                "spec.completionMode: Unsupported value: \"Random\": supported values: \"NonIndexed\", \"Indexed\"",
            ],
        ),
        (
            json!({"completionMode": "Indexed", "parallelism": 200000, "template": pod_template()}),
            vec![
                "spec.completions: Required value: when completion mode is Indexed",
                "spec.parallelism: Invalid value: 200000: must be less than or equal to 100000 when completion mode is Indexed",
            ],
        ),
        (
            json!({"selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "other"}}, "template": pod_template()}),
            vec![
                "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"batch.kubernetes.io/controller-uid\":\"other\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: `selector` not auto-generated",
            ],
        ),
        (
            json!({"manualSelector": true, "template": pod_template()}),
            vec!["spec.selector: Required value"],
        ),
        (
            json!({"manualSelector": true, "selector": {"matchLabels": {"a": "b"}}, "template": pod_template()}),
            vec![
                "spec.template.metadata.labels: Invalid value: map[string]string(nil): `selector` does not match template `labels`",
            ],
        ),
        (
            json!({"template": {"spec": {"restartPolicy": "OnFailure", "containers": [{"name": "c", "image": "x"}]}}, "podFailurePolicy": {"rules": []}}),
            vec![
                "spec.template.spec.restartPolicy: Invalid value: \"OnFailure\": only \"Never\" is supported when podFailurePolicy is specified",
            ],
        ),
    ];
    for (i, (spec, want)) in cases.into_iter().enumerate() {
        let (_, errs) = create("batch", "Job", job(spec));
        assert!(!errs.is_empty(), "case {i}");
        assert_has(&errs, &want);
    }
}

#[test]
fn job_update_immutability() {
    let (old, errs) = create(
        "batch",
        "Job",
        job(json!({"completions": 2, "template": pod_template()})),
    );
    assert!(errs.is_empty());
    let mut n = old.clone();
    n["spec"]["completions"] = json!(3);
    n["spec"]["template"]["spec"]["containers"][0]["image"] = json!("perl:6");
    n["spec"]["completionMode"] = json!("Indexed");
    let (_, errs) = update("batch", "Job", n, &old);
    assert_has(
        &errs,
        &[
            "spec.completions: Invalid value: 3: field is immutable",
            "spec.completionMode: Invalid value: \"Indexed\": field is immutable",
        ],
    );
    assert!(
        errs.iter()
            .any(|e| e.starts_with("spec.template: Invalid value: {")
                && e.ends_with(": field is immutable"))
    );
    // Scaling parallelism and suspending are fine.
    let mut ok = old.clone();
    ok["spec"]["parallelism"] = json!(5);
    ok["spec"]["suspend"] = json!(true);
    assert!(update("batch", "Job", ok, &old).1.is_empty());
    // A suspended job that never started may change scheduling directives.
    let mut suspended = old.clone();
    suspended["spec"]["suspend"] = json!(true);
    suspended["spec"]["template"]["spec"]["nodeSelector"] = json!({"zone": "a"});
    let (_, errs) = update("batch", "Job", suspended, &old);
    assert!(errs.is_empty(), "{errs:?}");
}

#[test]
fn job_field_selector() {
    let f = for_kind("batch", "Job").field_selector_fields(&json!({"status": {"succeeded": 2}}));
    assert_eq!(f, vec![("status.successful", "2".to_string())]);
    assert_eq!(
        for_kind("batch", "Job").field_selector_fields(&json!({}))[0].1,
        "0"
    );
}

fn cronjob(spec: Value) -> Value {
    json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "hello", "namespace": "default"}, "spec": spec})
}

#[test]
fn cronjob_defaults_and_validation() {
    let base =
        json!({"schedule": "*/1 * * * *", "jobTemplate": {"spec": {"template": pod_template()}}});
    let (obj, errs) = create("batch", "CronJob", cronjob(base.clone()));
    assert!(errs.is_empty(), "{errs:#?}");
    assert_eq!(obj["spec"]["concurrencyPolicy"], "Allow");
    assert_eq!(obj["spec"]["suspend"], false);
    assert_eq!(obj["spec"]["successfulJobsHistoryLimit"], 3);
    assert_eq!(obj["spec"]["failedJobsHistoryLimit"], 1);
    assert_eq!(
        obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["dnsPolicy"],
        "ClusterFirst"
    );
    // Job defaults do not apply to the template.
    assert!(
        obj["spec"]["jobTemplate"]["spec"]
            .get("backoffLimit")
            .is_none()
    );

    let with = |k: &str, v: Value| {
        let mut s = base.clone();
        s[k] = v;
        create("batch", "CronJob", cronjob(s)).1
    };
    assert_eq!(
        with("schedule", json!("bogus")),
        ["spec.schedule: Invalid value: \"bogus\": expected exactly 5 fields, found 1: [bogus]"]
    );
    assert_eq!(
        with("schedule", json!("61 * * * *")),
        ["spec.schedule: Invalid value: \"61 * * * *\": end of range (61) above maximum (59): 61"]
    );
    assert!(with("schedule", json!("@hourly")).is_empty());
    assert_has(
        &with("schedule", json!("TZ=UTC * * * * *")),
        &[
            "spec.schedule: Invalid value: \"TZ=UTC * * * * *\": cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
        ],
    );
    assert_eq!(
        with("schedule", json!("")),
        ["spec.schedule: Required value"]
    );
    assert_eq!(
        with("concurrencyPolicy", json!("Sometimes")),
        [
            "spec.concurrencyPolicy: Unsupported value: \"Sometimes\": supported values: \"Allow\", \"Forbid\", \"Replace\""
        ]
    );
    assert_eq!(
        with("timeZone", json!("")),
        ["spec.timeZone: Invalid value: \"\": timeZone must be nil or non-empty string"]
    );
    assert!(with("timeZone", json!("UTC")).is_empty());
    assert_eq!(
        with("startingDeadlineSeconds", json!(-1)),
        ["spec.startingDeadlineSeconds: Invalid value: -1: must be greater than or equal to 0"]
    );
    let mut sel = base.clone();
    sel["jobTemplate"]["spec"]["selector"] = json!({"matchLabels": {"a": "b"}});
    assert_has(
        &create("batch", "CronJob", cronjob(sel)).1,
        &[
            "spec.jobTemplate.spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"a\":\"b\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: `selector` will be auto-generated",
        ],
    );
    let mut long = cronjob(base.clone());
    long["metadata"]["name"] = json!("a".repeat(53));
    assert_has(
        &create("batch", "CronJob", long.clone()).1,
        &[&format!(
            "metadata.name: Invalid value: \"{}\": must be no more than 52 characters",
            "a".repeat(53)
        )],
    );
    // The name limit is not re-checked on update.
    assert!(update("batch", "CronJob", long.clone(), &long).1.is_empty());
}

#[test]
fn junk_never_panics() {
    let junk = [
        json!(null),
        json!(1),
        json!("s"),
        json!([]),
        json!({}),
        json!(-5),
        json!(2.5),
        json!({"x": [1]}),
    ];
    for j in &junk {
        for (kind, keys) in [
            (
                "Job",
                &[
                    "template",
                    "selector",
                    "parallelism",
                    "completions",
                    "completionMode",
                    "podFailurePolicy",
                    "manualSelector",
                    "suspend",
                ][..],
            ),
            (
                "CronJob",
                &[
                    "schedule",
                    "timeZone",
                    "jobTemplate",
                    "concurrencyPolicy",
                    "startingDeadlineSeconds",
                ][..],
            ),
        ] {
            let _ = create("batch", kind, j.clone());
            let _ = create("batch", kind, json!({"metadata": j, "spec": j}));
            for k in keys {
                let mut obj = if kind == "Job" {
                    job(json!({"template": pod_template()}))
                } else {
                    cronjob(json!({"schedule": "@daily"}))
                };
                obj["spec"][*k] = j.clone();
                let (o, _) = create("batch", kind, obj);
                let _ = update("batch", kind, o.clone(), &o);
            }
        }
    }
}
