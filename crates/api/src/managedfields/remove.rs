//! Removing fields from an object, typed as the merge walks it ([`super::merge`]): the
//! fields of a set (for pruning what an applier no longer applies), and the nulls an
//! applied configuration set.

use serde_json::{Map, Value};

use super::path::PathElement;
use super::schema::{ListKind, Node, Ty, field_type, item_element, node};
use super::set::Set;

/// `value` without the fields in `set`. A map or list all of whose entries are removed
/// goes too; one emptied only below its entries stays, empty.
pub(crate) fn remove_items(value: &Value, set: &Set, ty: Ty) -> Value {
    remove_at(value, set, ty).unwrap_or(Value::Object(Map::new()))
}

fn remove_at(value: &Value, set: &Set, ty: Ty) -> Option<Value> {
    let n = node(ty, value);
    if n.is_atomic() {
        return Some(value.clone());
    }
    match (n, value) {
        (Node::List { elem, kind }, Value::Array(items)) if !items.is_empty() => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                let Ok(pe) = item_element(&kind, item) else {
                    out.push(item.clone());
                    continue;
                };
                if set.has_member(&pe) {
                    continue;
                }
                match set.child(&pe) {
                    Some(below) => out.extend(remove_at(item, below, elem)),
                    None => out.push(item.clone()),
                }
            }
            (!out.is_empty()).then_some(Value::Array(out))
        }
        (Node::Map { fields, elem, .. }, Value::Object(map)) if !map.is_empty() => {
            let mut out = Map::new();
            let mut kept = false;
            for (key, child) in map {
                let pe = PathElement::Field(key.clone());
                if set.has_member(&pe) {
                    continue;
                }
                kept = true;
                match set.child(&pe) {
                    Some(below) => {
                        let (child_ty, _) = field_type(fields, elem, key);
                        if let Some(v) = remove_at(child, below, child_ty) {
                            out.insert(key.clone(), v);
                        }
                    }
                    None => {
                        out.insert(key.clone(), child.clone());
                    }
                }
            }
            kept.then_some(Value::Object(out))
        }
        _ => Some(value.clone()),
    }
}

/// Drops from the merged object the nulls the configuration set: applying `field: null`
/// owns the field and leaves it unset, as it does for upstream's typed objects.
pub(crate) fn drop_applied_nulls(merged: &mut Value, applied: &Value, ty: Ty) {
    // Only nulls of the configuration are dropped, and what is stripped of nulls is the
    // configuration's own values: without any there is nothing to do.
    if has_null(applied) {
        drop_nulls_at(merged, applied, ty);
    }
}

/// Whether a value has a null anywhere.
pub(crate) fn has_null(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(items) => items.iter().any(has_null),
        Value::Object(m) => m.values().any(has_null),
        _ => false,
    }
}

fn drop_nulls_at(merged: &mut Value, applied: &Value, ty: Ty) {
    match (node(ty, applied), merged, applied) {
        (
            Node::Map {
                fields,
                elem,
                atomic,
            },
            Value::Object(out),
            Value::Object(cfg),
        ) => {
            for (key, value) in cfg {
                if value.is_null() {
                    if out.get(key).is_some_and(Value::is_null) {
                        out.remove(key);
                    }
                } else if let Some(target) = out.get_mut(key) {
                    if atomic {
                        strip_nulls(target);
                    } else {
                        let (child_ty, _) = field_type(fields, elem, key);
                        drop_nulls_at(target, value, child_ty);
                    }
                }
            }
        }
        (Node::List { elem, kind }, Value::Array(out), Value::Array(cfg)) => {
            if kind == ListKind::Atomic {
                out.iter_mut().for_each(strip_nulls);
                return;
            }
            for item in cfg {
                let Ok(pe) = item_element(&kind, item) else {
                    continue;
                };
                let target = out
                    .iter_mut()
                    .find(|o| item_element(&kind, o).is_ok_and(|p| p == pe));
                if let Some(target) = target {
                    drop_nulls_at(target, item, elem);
                }
            }
        }
        _ => {}
    }
}

/// Removes null entries of objects, recursively (inside values taken whole from the
/// configuration).
fn strip_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, v| !v.is_null());
            m.values_mut().for_each(strip_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deploy() -> Ty {
        Ty::root("io.k8s.api.apps.v1.Deployment")
    }

    use super::super::set::testing::container_names as names;

    #[test]
    fn removes_items() {
        let v = json!({"metadata": {"labels": {"a": "1"}, "name": "x"},
                       "spec": {"template": {"spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "1"}]}}}});
        let mut set = Set::new();
        set.insert(&[
            PathElement::Field("metadata".into()),
            PathElement::Field("labels".into()),
            PathElement::Field("a".into()),
        ]);
        let item_b = PathElement::key(vec![("name".into(), json!("b"))]);
        set.insert(&[
            PathElement::Field("spec".into()),
            PathElement::Field("template".into()),
            PathElement::Field("spec".into()),
            PathElement::Field("containers".into()),
            item_b,
        ]);
        let out = remove_items(&v, &set, deploy());
        assert_eq!(out["metadata"], json!({"name": "x"}));
        assert_eq!(names(&out), ["a"]);
    }

    #[test]
    fn applied_nulls_are_dropped() {
        let mut merged = json!({"spec": {"replicas": null, "paused": true}, "metadata": {"labels": {"a": null, "b": "1"}}});
        let applied = json!({"spec": {"replicas": null}, "metadata": {"labels": {"a": null}}});
        drop_applied_nulls(&mut merged, &applied, deploy());
        assert_eq!(
            merged,
            json!({"spec": {"paused": true}, "metadata": {"labels": {"b": "1"}}})
        );
    }
}
