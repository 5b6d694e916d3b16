//! Helpers for strategy tests: run the registry's hook order on a JSON object.

use serde_json::{Value, json};

use super::{FieldError, for_kind};

fn render(errs: Vec<FieldError>) -> Vec<String> {
    errs.into_iter().map(|e| e.to_string()).collect()
}

/// Create: system metadata (uid), `default`, `prepare_for_create`, `validate_create`.
pub(crate) fn create(group: &str, kind: &str, mut obj: Value) -> (Value, Vec<String>) {
    let s = for_kind(group, kind);
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.entry("uid").or_insert_with(|| json!("uid-1"));
    }
    s.default(&mut obj);
    s.prepare_for_create(&mut obj);
    let errs = s.validate_create(&obj);
    (obj, render(errs))
}

/// Update: `default(new)`, `prepare_for_update`, `validate_update`.
pub(crate) fn update(group: &str, kind: &str, mut new: Value, old: &Value) -> (Value, Vec<String>) {
    let s = for_kind(group, kind);
    s.default(&mut new);
    s.prepare_for_update(&mut new, old);
    let errs = s.validate_update(&new, old);
    (new, render(errs))
}

/// `default` only.
pub(crate) fn defaulted(group: &str, kind: &str, mut obj: Value) -> Value {
    for_kind(group, kind).default(&mut obj);
    obj
}

/// Asserts that every expected message appears (order-insensitive, exact match).
pub(crate) fn assert_has(got: &[String], want: &[&str]) {
    for w in want {
        assert!(got.iter().any(|g| g == w), "missing {w:?} in {got:#?}");
    }
}
