//! `metav1.LabelSelector`: validation, matching against a label map, and Go-syntax
//! rendering for error messages.

use serde_json::Value;

use super::{is_qualified_name, is_valid_label_value, validate_label_pairs};
use crate::selector::from_label_selector_json;
use crate::strategy::FieldError;
use crate::strategy::errors::{go_quote, go_string_map, go_string_slice};
use crate::strategy::json::{
    self, Errs, child, get, index, opt_arr, opt_str, opt_str_list, opt_str_map,
};

/// Validates a `metav1.LabelSelector` at `field`.
pub(crate) fn validate_label_selector(sel: &Value, field: &str, errs: &mut Errs) {
    if !sel.is_object() {
        errs.push(FieldError::type_invalid(field, sel, "object"));
        return;
    }
    if let Some(ml) = opt_str_map(sel, "matchLabels", field, errs) {
        validate_label_pairs(&ml, &child(field, "matchLabels"), errs);
    }
    let Some(exprs) = opt_arr(sel, "matchExpressions", field, errs) else {
        return;
    };
    for (i, e) in exprs.iter().enumerate() {
        let p = index(&child(field, "matchExpressions"), i);
        if !e.is_object() {
            errs.push(FieldError::type_invalid(p, e, "object"));
            continue;
        }
        let op = opt_str(e, "operator", &p, errs).unwrap_or("");
        let values = opt_str_list(e, "values", &p, errs).unwrap_or_default();
        match op {
            "In" | "NotIn" => {
                if values.is_empty() {
                    errs.push(FieldError::required(
                        child(&p, "values"),
                        "must be specified when `operator` is 'In' or 'NotIn'",
                    ));
                }
            }
            "Exists" | "DoesNotExist" => {
                if !values.is_empty() {
                    errs.push(FieldError::forbidden(
                        child(&p, "values"),
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    ));
                }
            }
            _ => errs.push(FieldError::invalid(
                child(&p, "operator"),
                op,
                "not a valid selector operator",
            )),
        }
        let key = opt_str(e, "key", &p, errs).unwrap_or("");
        for m in is_qualified_name(key) {
            errs.push(FieldError::invalid(child(&p, "key"), key, &m));
        }
        for (vi, v) in values.iter().enumerate() {
            for m in is_valid_label_value(v) {
                errs.push(FieldError::invalid(index(&child(&p, "values"), vi), *v, &m));
            }
        }
    }
}

/// Outcome of converting a selector (upstream `LabelSelectorAsSelector`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SelectorMatch {
    /// The selector could not be converted (invalid); callers skip match checks.
    Invalid,
    /// The selector is empty: matches everything.
    Everything,
    Matches,
    NoMatch,
}

/// Evaluates `sel` against `labels` (a label map value, possibly absent), converting it
/// with the selector module's `LabelSelectorAsSelector`.
pub(crate) fn selector_match(sel: &Value, labels: Option<&Value>) -> SelectorMatch {
    if !sel.is_object() {
        return SelectorMatch::Invalid;
    }
    let Ok(selector) = from_label_selector_json(sel) else {
        return SelectorMatch::Invalid;
    };
    if selector.is_empty() {
        return SelectorMatch::Everything;
    }
    if selector.matches(labels.unwrap_or(&Value::Null)) {
        SelectorMatch::Matches
    } else {
        SelectorMatch::NoMatch
    }
}

/// Go's `%#v` of a `v1.LabelSelector` value, as upstream prints it for immutable-field
/// errors.
pub(crate) fn go_label_selector(sel: &Value) -> String {
    let ml = match get(sel, "matchLabels").and_then(Value::as_object) {
        Some(m) => go_string_map(
            m.iter()
                .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or(""))),
        ),
        None => "map[string]string(nil)".to_string(),
    };
    let exprs = match get(sel, "matchExpressions").and_then(Value::as_array) {
        Some(a) => {
            let items: Vec<String> = a
                .iter()
                .map(|e| {
                    let values = match get(e, "values").and_then(Value::as_array) {
                        Some(v) => go_string_slice(v.iter().map(|x| x.as_str().unwrap_or(""))),
                        None => "[]string(nil)".to_string(),
                    };
                    format!(
                        "v1.LabelSelectorRequirement{{Key:{}, Operator:{}, Values:{values}}}",
                        go_quote(json::get_str(e, "key").unwrap_or("")),
                        go_quote(json::get_str(e, "operator").unwrap_or(""))
                    )
                })
                .collect();
            format!("[]v1.LabelSelectorRequirement{{{}}}", items.join(", "))
        }
        None => "[]v1.LabelSelectorRequirement(nil)".to_string(),
    };
    format!("v1.LabelSelector{{MatchLabels:{ml}, MatchExpressions:{exprs}}}")
}

/// Go's `%#v` of a label map value (possibly absent → nil map).
pub(crate) fn go_labels(labels: Option<&Value>) -> String {
    match labels.and_then(Value::as_object) {
        Some(m) => go_string_map(
            m.iter()
                .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or(""))),
        ),
        None => "map[string]string(nil)".to_string(),
    }
}
