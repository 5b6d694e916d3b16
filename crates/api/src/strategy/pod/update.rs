//! Pod update rules (upstream `ValidatePodUpdate`): a running pod's spec is immutable
//! except container images, `activeDeadlineSeconds` (set or shortened), added
//! tolerations, `terminationGracePeriodSeconds` (negative → 1) and removed scheduling
//! gates.

use serde_json::Value;

use crate::strategy::FieldError;
use crate::strategy::compare::{diff_lines, normalize, semantic_eq};
use crate::strategy::errors::Raw;
use crate::strategy::json::{Errs, get, get_arr, get_int};

const UPDATABLE: &str = "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

pub(crate) fn validate_pod_spec_update(new: &Value, old: &Value, errs: &mut Errs) {
    let empty = Value::Object(Default::default());
    let new_spec = get(new, "spec").unwrap_or(&empty);
    let old_spec = get(old, "spec").unwrap_or(&empty);
    if !new_spec.is_object() || !old_spec.is_object() {
        return; // reported by spec validation
    }

    match (
        get(new_spec, "activeDeadlineSeconds"),
        get(old_spec, "activeDeadlineSeconds"),
    ) {
        (Some(n), old_ads) => {
            if let Some(n) = n.as_i64() {
                if !(0..=i64::from(i32::MAX)).contains(&n) {
                    errs.push(FieldError::invalid(
                        "spec.activeDeadlineSeconds",
                        &n,
                        "must be between 0 and 2147483647, inclusive",
                    ));
                    return;
                }
                if let Some(o) = old_ads.and_then(Value::as_i64)
                    && o < n
                {
                    errs.push(FieldError::invalid(
                        "spec.activeDeadlineSeconds",
                        &n,
                        "must be less than or equal to previous value",
                    ));
                    return;
                }
            }
        }
        (None, Some(_)) => errs.push(FieldError::invalid(
            "spec.activeDeadlineSeconds",
            &Raw("null"),
            "must not update from a positive integer to nil value",
        )),
        (None, None) => {}
    }

    let mut munged = new_spec.clone();
    let Some(m) = munged.as_object_mut() else {
        return;
    };
    for list in ["containers", "initContainers"] {
        let old_list = get_arr(old_spec, list);
        if let Some(items) = m.get_mut(list).and_then(Value::as_array_mut)
            && items.len() == old_list.len()
        {
            for (item, old_item) in items.iter_mut().zip(old_list) {
                if let Some(o) = item.as_object_mut() {
                    match get(old_item, "image") {
                        Some(img) => o.insert("image".into(), img.clone()),
                        None => o.remove("image"),
                    };
                }
            }
        }
    }
    copy_member(m, old_spec, "activeDeadlineSeconds");

    let old_tols = get_arr(old_spec, "tolerations");
    let new_tols = get_arr(new_spec, "tolerations");
    for ot in old_tols {
        let found = new_tols.iter().any(|nt| {
            let mut clone = normalize(ot);
            if let Some(c) = clone.as_object_mut() {
                c.remove("tolerationSeconds");
                if let Some(s) = get(nt, "tolerationSeconds") {
                    c.insert("tolerationSeconds".into(), s.clone());
                }
            }
            semantic_eq(Some(&clone), Some(nt))
        });
        if !found {
            errs.push(FieldError::forbidden(
                "spec.tolerations",
                "existing toleration can not be modified except its tolerationSeconds",
            ));
            break;
        }
    }
    copy_member(m, old_spec, "tolerations");

    let old_tgps = get_int(old_spec, "terminationGracePeriodSeconds");
    if old_tgps.is_some_and(|o| o < 0)
        && get_int(new_spec, "terminationGracePeriodSeconds") == Some(1)
    {
        copy_member(m, old_spec, "terminationGracePeriodSeconds");
    }

    // Scheduling gates may only be removed.
    let old_gates = get_arr(old_spec, "schedulingGates");
    let new_gates = get_arr(new_spec, "schedulingGates");
    if new_gates.iter().all(|g| old_gates.contains(g)) {
        copy_member(m, old_spec, "schedulingGates");
    }

    if !semantic_eq(Some(&munged), Some(old_spec)) {
        let diff = diff_lines(old_spec, &munged, "spec", 10).join("\n");
        errs.push(FieldError::forbidden(
            "spec",
            &format!("pod updates may not change fields other than {UPDATABLE}\n{diff}"),
        ));
    }
}

fn copy_member(target: &mut serde_json::Map<String, Value>, from: &Value, key: &str) {
    match get(from, key) {
        Some(v) => {
            target.insert(key.to_string(), v.clone());
        }
        None => {
            target.remove(key);
        }
    }
}

/// Upstream's `ValidatePodEphemeralContainersUpdate`: ephemeral containers are only ever
/// added; one already in the pod may be neither changed nor removed.
pub(crate) fn validate_ephemeral_containers_update(new: &Value, old: &Value, errs: &mut Errs) {
    let empty = Value::Object(Default::default());
    let new_list = get_arr(get(new, "spec").unwrap_or(&empty), "ephemeralContainers");
    let old_list = get_arr(get(old, "spec").unwrap_or(&empty), "ephemeralContainers");
    let name = |c: &Value| {
        get(c, "name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    for o in old_list {
        let n = name(o);
        match new_list.iter().position(|c| name(c) == n) {
            None => errs.push(FieldError::forbidden(
                "spec.ephemeralContainers",
                &format!("existing ephemeral containers \"{n}\" may not be removed\n"),
            )),
            Some(i) if !semantic_eq(Some(&normalize(o)), Some(&normalize(&new_list[i]))) => {
                errs.push(FieldError::forbidden(
                    format!("spec.ephemeralContainers[{i}]"),
                    &format!("existing ephemeral containers \"{n}\" may not be changed\n"),
                ));
            }
            Some(_) => {}
        }
    }
}
