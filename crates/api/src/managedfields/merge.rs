//! Merging an applied configuration into an object, and removing fields from one, both
//! typed: granular maps merge key by key, associative lists item by item (keeping the live
//! order and placing new items as the configuration orders them), and everything atomic
//! is taken from the configuration whole.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::path::{PathElement, PathLink, link_path, path_string};
use super::schema::{ListKind, Node, Ty, field_type, item_element, node};
use super::set::Set;

/// How [`merge_with`] walks.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct MergeOpts<'a> {
    /// Take list items and non-map fields equal on both sides from the configuration
    /// without walking them (for a validated configuration, merging equal values gives
    /// the configuration's value).
    pub skip_equal: bool,
    /// Use this as the live object's `metadata` (without its managed fields).
    pub live_metadata: Option<&'a Value>,
}

/// Merges `applied` into `live`. Errors name the list that could not be merged.
#[cfg(test)]
pub(crate) fn merge(live: &Value, applied: &Value, ty: Ty) -> Result<Value, String> {
    merge_with(live, applied, ty, MergeOpts::default())
}

/// [`merge`] with shortcuts ([`MergeOpts`]); `applied` must be validated
/// ([`super::walk::validate`]).
pub(crate) fn merge_with(
    live: &Value,
    applied: &Value,
    ty: Ty,
    opts: MergeOpts,
) -> Result<Value, String> {
    Ok(merge_at(Some(live), Some(applied), ty, None, &opts)?.unwrap_or(Value::Object(Map::new())))
}

fn merge_at(
    l: Option<&Value>,
    r: Option<&Value>,
    ty: Ty,
    path: Option<&PathLink>,
    opts: &MergeOpts,
) -> Result<Option<Value>, String> {
    let n = match (l, r) {
        (None, None) => return Ok(None),
        (Some(v), None) | (None, Some(v)) => node(ty, v),
        (Some(a), Some(b)) => {
            let (na, nb) = (node(ty, a), node(ty, b));
            if na.same_kind(&nb) { nb } else { Node::Leaf }
        }
    };
    let keep_rhs = || Ok(r.or(l).cloned());
    if n.is_atomic() {
        return keep_rhs();
    }
    match n {
        Node::List { elem, kind } => {
            let li = as_items(l);
            let ri = as_items(r);
            if li.is_empty() && ri.is_empty() {
                return keep_rhs();
            }
            merge_items(li, ri, elem, &kind, path, opts)
        }
        Node::Map { fields, elem, .. } => {
            let lm = l.and_then(Value::as_object);
            let rm = r.and_then(Value::as_object);
            if lm.is_none_or(Map::is_empty) && rm.is_none_or(Map::is_empty) {
                return keep_rhs();
            }
            let keys: BTreeSet<&String> = lm.into_iter().chain(rm).flat_map(|m| m.keys()).collect();
            let mut out = Map::new();
            let root = path.is_none();
            for key in keys {
                let mut lv = lm.and_then(|m| m.get(key));
                if root && key == "metadata" && opts.live_metadata.is_some() {
                    lv = opts.live_metadata;
                }
                let rv = rm.and_then(|m| m.get(key));
                if opts.skip_equal
                    && let (Some(a), Some(b)) = (lv, rv)
                    && !a.is_object()
                    && a == b
                {
                    out.insert(key.clone(), b.clone());
                    continue;
                }
                let (child_ty, _) = field_type(fields, elem, key);
                let here = PathLink::field(path, key);
                let merged = merge_at(lv, rv, child_ty, Some(&here), opts)?;
                if let Some(v) = merged {
                    out.insert(key.clone(), v);
                }
            }
            Ok((!out.is_empty()).then_some(Value::Object(out)))
        }
        Node::Leaf => keep_rhs(),
    }
}

fn as_items(v: Option<&Value>) -> &[Value] {
    match v {
        Some(Value::Array(items)) => items,
        _ => &[],
    }
}

fn element_error(path: Option<&PathLink>, i: usize, e: String) -> String {
    format!("{}: element {i}: {e}", path_string(&link_path(path)))
}

/// Merges two associative lists as upstream does: live items keep their order, items the
/// configuration names are merged where they are, and new configuration items are placed
/// relative to the shared ones in configuration order.
fn merge_items(
    l: &[Value],
    r: &[Value],
    elem: Ty,
    kind: &ListKind,
    path: Option<&PathLink>,
    opts: &MergeOpts,
) -> Result<Option<Value>, String> {
    let mut rhs: Vec<PathElement> = Vec::with_capacity(r.len());
    let mut observed_rhs: BTreeMap<PathElement, &Value> = BTreeMap::new();
    for (i, item) in r.iter().enumerate() {
        let pe = item_element(kind, item).map_err(|e| element_error(path, i, e))?;
        if observed_rhs.contains_key(&pe) {
            return Err(format!(
                "{}: duplicate entries for key {pe}",
                path_string(&link_path(path))
            ));
        }
        observed_rhs.insert(pe.clone(), item);
        rhs.push(pe);
    }
    // Live duplicates are tolerated: they are never merged with the configuration.
    let mut lhs: Vec<(PathElement, &Value)> = Vec::with_capacity(l.len());
    let mut observed_lhs: BTreeMap<PathElement, Option<&Value>> = BTreeMap::new();
    for (i, item) in l.iter().enumerate() {
        let pe = item_element(kind, item).map_err(|e| element_error(path, i, e))?;
        observed_lhs
            .entry(pe.clone())
            .and_modify(|v| *v = None)
            .or_insert(Some(item));
        lhs.push((pe, item));
    }
    let mut shared = rhs.iter().filter(|pe| observed_lhs.contains_key(*pe));
    let mut next_shared = shared.next();
    let mut merged_rhs: BTreeSet<&PathElement> = BTreeSet::new();
    let mut out = Vec::with_capacity(l.len().max(r.len()));
    let (mut li, mut ri) = (0, 0);
    let mut push = |pe: &PathElement,
                    lc: Option<&Value>,
                    rc: Option<&Value>,
                    path: Option<&PathLink>|
     -> Result<(), String> {
        if opts.skip_equal
            && let (Some(a), Some(b)) = (lc, rc)
            && a == b
        {
            out.push(b.clone());
            return Ok(());
        }
        let here = PathLink::elem(path, pe);
        let merged = merge_at(lc, rc, elem, Some(&here), opts);
        if let Some(v) = merged? {
            out.push(v);
        }
        Ok(())
    };
    while li < lhs.len() || ri < rhs.len() {
        let before = (li, ri);
        if li < lhs.len() && ri < rhs.len() {
            let pe = &lhs[li].0;
            if *pe == rhs[ri] {
                merged_rhs.insert(&rhs[ri]);
                let lc = observed_lhs.get(pe).copied().flatten();
                push(pe, lc, observed_rhs.get(pe).copied(), path)?;
                li += 1;
                ri += 1;
                next_shared = shared.next();
                continue;
            }
            if observed_rhs.contains_key(pe) && next_shared.is_some_and(|s| s != pe) {
                // A shared item, but not the one due now: it is merged when its turn comes.
                li += 1;
                continue;
            }
        }
        if li < lhs.len() {
            let (pe, item) = &lhs[li];
            if !observed_rhs.contains_key(pe) {
                push(pe, Some(item), None, path)?;
                li += 1;
                continue;
            } else if merged_rhs.contains(pe) {
                li += 1;
            }
        }
        if ri < rhs.len() {
            let pe = &rhs[ri];
            merged_rhs.insert(pe);
            let lc = observed_lhs.get(pe).copied().flatten();
            push(pe, lc, observed_rhs.get(pe).copied(), path)?;
            ri += 1;
            if next_shared == Some(pe) {
                next_shared = shared.next();
            }
        }
        if before == (li, ri) {
            // Cannot happen for well-formed input; never loop forever on junk.
            break;
        }
    }
    Ok((!out.is_empty()).then_some(Value::Array(out)))
}

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

fn has_null(v: &Value) -> bool {
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

    fn containers(names: &[(&str, &str)]) -> Value {
        let items: Vec<Value> = names
            .iter()
            .map(|(n, i)| json!({"name": n, "image": i}))
            .collect();
        json!({"spec": {"template": {"spec": {"containers": items}}}})
    }

    fn names(v: &Value) -> Vec<String> {
        v["spec"]["template"]["spec"]["containers"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|c| c["name"].as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn merges_maps_lists_and_atomics() {
        let live = json!({
            "metadata": {"labels": {"a": "1", "b": "2"}},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"x": "1", "y": "2"}},
                     "template": {"spec": {"containers": [{"name": "app", "image": "1", "args": ["a"]}],
                                           "tolerations": [{"key": "a"}, {"key": "b"}]}}}
        });
        let applied = json!({
            "metadata": {"labels": {"b": "3"}},
            "spec": {"selector": {"matchLabels": {"x": "1"}},
                     "template": {"spec": {"containers": [{"name": "app", "image": "2"}],
                                           "tolerations": [{"key": "c"}]}}}
        });
        let out = merge(&live, &applied, deploy()).unwrap();
        assert_eq!(out["metadata"]["labels"], json!({"a": "1", "b": "3"}));
        assert_eq!(out["spec"]["replicas"], 1);
        // Atomic struct and atomic list: replaced whole.
        assert_eq!(out["spec"]["selector"], json!({"matchLabels": {"x": "1"}}));
        assert_eq!(
            out["spec"]["template"]["spec"]["tolerations"],
            json!([{"key": "c"}])
        );
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"],
            json!([{"name": "app", "image": "2", "args": ["a"]}])
        );
    }

    #[test]
    fn list_order() {
        let live = containers(&[("a", "1"), ("b", "1"), ("c", "1")]);
        // Live items keep their places; new ones come in configuration order, before the
        // shared item they precede there.
        let applied = containers(&[("b", "2"), ("d", "1")]);
        let out = merge(&live, &applied, deploy()).unwrap();
        assert_eq!(names(&out), ["a", "b", "c", "d"]);
        let applied = containers(&[("d", "1"), ("a", "2")]);
        assert_eq!(
            names(&merge(&live, &applied, deploy()).unwrap()),
            ["d", "a", "b", "c"]
        );
        let applied = containers(&[("c", "1"), ("a", "1")]);
        assert_eq!(
            names(&merge(&live, &applied, deploy()).unwrap()),
            ["b", "c", "a"]
        );
    }

    #[test]
    fn merge_errors() {
        let live = json!({});
        let dup = containers(&[("a", "1"), ("a", "2")]);
        let err = merge(&live, &dup, deploy()).unwrap_err();
        assert!(
            err.contains("duplicate entries for key [name=\"a\"]"),
            "{err}"
        );
        let unnamed = json!({"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}});
        assert!(merge(&live, &unnamed, deploy()).is_err());
    }

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
