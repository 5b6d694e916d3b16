//! Typed walks over JSON values: the set of fields a value sets, the fields two values
//! differ in, and validation of an applied configuration's lists.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::merge::Diff;
use super::path::{Path, PathElement, PathLink, link_path, path_string, values_equal};
use super::schema::{ListKind, Node, Ty, field_type, item_element, list_elem, map_fields, node};
use super::set::Set;

/// The fields `value` sets: every leaf (scalars, atomic lists and maps), every list item,
/// and map entries that are null, empty or not declared struct fields.
pub(crate) fn field_set(value: &Value, ty: Ty) -> Set {
    let mut set = Set::new();
    field_set_at(value, ty, &mut Vec::new(), &mut set);
    set
}

fn field_set_at(value: &Value, ty: Ty, path: &mut Path, set: &mut Set) {
    let n = node(ty, value);
    if n.is_atomic() {
        set.insert(path);
        return;
    }
    match (n, value) {
        (Node::List { elem, kind }, Value::Array(items)) => {
            let elements: Vec<Option<PathElement>> = items
                .iter()
                .map(|item| item_element(&kind, item).ok())
                .collect();
            // Items that appear more than once are owned as a whole, once.
            let mut seen = BTreeSet::new();
            let mut duplicates = BTreeSet::new();
            for pe in elements.iter().flatten() {
                if !seen.insert(pe) && duplicates.insert(pe) {
                    path.push(pe.clone());
                    set.insert(path);
                    path.pop();
                }
            }
            for (item, pe) in items.iter().zip(&elements) {
                let Some(pe) = pe else { continue };
                if duplicates.contains(pe) {
                    continue;
                }
                path.push(pe.clone());
                field_set_at(item, elem, path, set);
                set.insert(path);
                path.pop();
            }
        }
        (Node::Map { fields, elem, .. }, Value::Object(map)) => {
            for (key, child) in map {
                let (child_ty, declared) = field_type(fields, elem, key);
                path.push(PathElement::Field(key.clone()));
                field_set_at(child, child_ty, path, set);
                let empty = child.as_object().is_some_and(|m| m.is_empty());
                if child.is_null() || empty || !declared {
                    set.insert(path);
                }
                path.pop();
            }
        }
        _ => {}
    }
}

/// How two versions of an object differ, field by field.
#[derive(Debug, Default)]
pub(crate) struct Comparison {
    pub added: Set,
    pub modified: Set,
    pub removed: Set,
}

impl Comparison {
    /// Drops `fields` and everything below them (the fields a strategy resets).
    pub fn exclude(&mut self, fields: &Set) {
        if fields.is_empty() {
            return;
        }
        self.added = self.added.recursive_difference(fields);
        self.modified = self.modified.recursive_difference(fields);
        self.removed = self.removed.recursive_difference(fields);
    }
}

/// How [`compare_with`] walks.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CompareOpts<'a> {
    /// Skip list items and non-map fields equal on both sides without looking inside:
    /// equal values never differ, and most of an object is untouched by a write.
    pub skip_equal: bool,
    /// Use this as the old object's `metadata` (the old metadata without its managed
    /// fields, so that the whole object need not be copied to drop them).
    pub old_metadata: Option<&'a Value>,
    /// Where the two may differ ([`super::merge::merge_tracked`]: `new` is `old` merged
    /// with something);
    /// fields known to be equal are skipped.
    pub hint: Option<&'a Diff<'a>>,
}

/// Compares `old` to `new`: leaves that changed are modified; fields only in one of them
/// are added or removed (containers as well as their contents).
pub(crate) fn compare(old: &Value, new: &Value, ty: Ty) -> Comparison {
    compare_with(old, new, ty, CompareOpts::default())
}

/// [`compare`], with shortcuts ([`CompareOpts`]); the result is the same.
pub(crate) fn compare_with(old: &Value, new: &Value, ty: Ty, opts: CompareOpts) -> Comparison {
    let mut walk = Compare {
        opts,
        out: Comparison::default(),
    };
    walk.at(Some(old), Some(new), ty, opts.hint, &mut Vec::new());
    walk.out
}

fn items(v: Option<&Value>) -> &[Value] {
    match v {
        Some(Value::Array(items)) => items,
        _ => &[],
    }
}

struct Compare<'a> {
    opts: CompareOpts<'a>,
    out: Comparison,
}

impl Compare<'_> {
    fn at(
        &mut self,
        l: Option<&Value>,
        r: Option<&Value>,
        ty: Ty,
        hint: Option<&Diff>,
        path: &mut Path,
    ) {
        let out = &mut self.out;
        let n = match (l, r) {
            (None, None) => return,
            (Some(v), None) | (None, Some(v)) => node(ty, v),
            (Some(a), Some(b)) => {
                let (na, nb) = (node(ty, a), node(ty, b));
                if na.same_kind(&nb) { nb } else { Node::Leaf }
            }
        };
        let empty_map =
            |v: Option<&Value>| v.and_then(Value::as_object).is_none_or(|m| m.is_empty());
        let leaf = n.is_atomic()
            || match &n {
                Node::List { .. } => items(l).is_empty() && items(r).is_empty(),
                Node::Map { .. } => empty_map(l) && empty_map(r),
                Node::Leaf => true,
            };
        if leaf {
            match (l, r) {
                (None, _) => out.added.insert(path),
                (_, None) => out.removed.insert(path),
                (Some(a), Some(b)) if !values_equal(a, b) => out.modified.insert(path),
                _ => {}
            }
            return;
        }
        match n {
            Node::List { elem, kind } => {
                let (li, ri) = (items(l), items(r));
                match hint {
                    Some(Diff::Items(diffs)) if li.len() == ri.len() => {
                        self.items_in_place(li, ri, elem, &kind, diffs, path);
                    }
                    _ => self.items(li, ri, elem, &kind, path),
                }
            }
            Node::Map { fields, elem, .. } => {
                let lm = l.and_then(Value::as_object);
                let rm = r.and_then(Value::as_object);
                // Fields the hint does not name are equal and differ nowhere.
                let keys: Vec<(&str, Option<&Diff>)> = match hint {
                    Some(Diff::Fields(fields)) => {
                        fields.iter().map(|(k, d)| (*k, Some(d))).collect()
                    }
                    _ => {
                        let keys: BTreeSet<&String> =
                            lm.into_iter().chain(rm).flat_map(|m| m.keys()).collect();
                        keys.into_iter().map(|k| (k.as_str(), None)).collect()
                    }
                };
                let root = path.is_empty();
                for (key, hint) in keys {
                    let mut lv = lm.and_then(|m| m.get(key));
                    if root && key == "metadata" && self.opts.old_metadata.is_some() {
                        lv = self.opts.old_metadata;
                    }
                    let rv = rm.and_then(|m| m.get(key));
                    if self.opts.skip_equal
                        && let (Some(a), Some(b)) = (lv, rv)
                        && !a.is_object()
                        && a == b
                    {
                        continue;
                    }
                    let (child_ty, _) = field_type(fields, elem, key);
                    path.push(PathElement::Field(key.to_string()));
                    self.at(lv, rv, child_ty, hint, path);
                    path.pop();
                }
            }
            Node::Leaf => {}
        }
        if l.is_none() {
            self.out.added.insert(path);
        } else if r.is_none() {
            self.out.removed.insert(path);
        }
    }

    /// Compares a list merged item by item in place ([`Diff::Items`]): only the items the
    /// hint names may differ, each from the live item at its index.
    fn items_in_place(
        &mut self,
        l: &[Value],
        r: &[Value],
        elem: Ty,
        kind: &ListKind,
        diffs: &[(usize, Diff)],
        path: &mut Path,
    ) {
        for (i, hint) in diffs {
            let (Some(a), Some(b)) = (l.get(*i), r.get(*i)) else {
                continue;
            };
            // Items in place are named (and not duplicated).
            let Ok(pe) = item_element(kind, a) else {
                continue;
            };
            path.push(pe);
            self.at(Some(a), Some(b), elem, Some(hint), path);
            path.pop();
        }
    }

    fn items(&mut self, l: &[Value], r: &[Value], elem: Ty, kind: &ListKind, path: &mut Path) {
        let (mut order, lgroups) = group(l, kind);
        let (rorder, rgroups) = group(r, kind);
        order.extend(rorder.into_iter().filter(|pe| !lgroups.contains_key(pe)));
        for pe in order {
            let ls = lgroups.get(&pe).map_or(&[][..], Vec::as_slice);
            let rs = rgroups.get(&pe).map_or(&[][..], Vec::as_slice);
            if self.opts.skip_equal && ls.len() == 1 && rs.len() == 1 && ls[0] == rs[0] {
                continue;
            }
            path.push(pe);
            let out = &mut self.out;
            match (ls.len(), rs.len()) {
                (0..=1, 0..=1) => {
                    self.at(ls.first().copied(), rs.first().copied(), elem, None, path);
                }
                // Duplicates on both sides compare as a whole.
                (_, _) if ls.len() >= 2 && rs.len() >= 2 => {
                    let same =
                        ls.len() == rs.len() && ls.iter().zip(rs).all(|(a, b)| values_equal(a, b));
                    if !same {
                        out.modified.insert(path);
                    }
                }
                // Duplicates resolved: the item is new, the duplicate marker goes.
                (_, _) if ls.len() >= 2 => {
                    if let Some(first) = rs.first() {
                        self.at(None, Some(first), elem, None, path);
                    }
                    self.out.removed.insert(path);
                }
                // New duplicates: the old item goes, the duplicate marker is new.
                _ => {
                    if let Some(first) = ls.first() {
                        self.at(Some(first), None, elem, None, path);
                    }
                    self.out.added.insert(path);
                }
            }
            path.pop();
        }
    }
}

/// Items grouped by their path element, in first-seen order (duplicates kept together).
fn group<'v>(
    list: &'v [Value],
    kind: &ListKind,
) -> (Vec<PathElement>, BTreeMap<PathElement, Vec<&'v Value>>) {
    let mut order = Vec::new();
    let mut groups: BTreeMap<PathElement, Vec<&Value>> = BTreeMap::new();
    for item in list {
        // Items that cannot be named cannot be tracked; upstream reports and skips them.
        let Ok(pe) = item_element(kind, item) else {
            continue;
        };
        let entry = groups.entry(pe.clone()).or_default();
        if entry.is_empty() {
            order.push(pe);
        }
        entry.push(item);
    }
    (order, groups)
}

/// Errors in an applied configuration that upstream refuses before merging: list items
/// that cannot be named and duplicate items. Each is `(path, message)`.
pub(crate) fn validate(value: &Value, ty: Ty) -> Vec<(String, String)> {
    let mut errs = Vec::new();
    validate_at(value, ty, None, &mut errs);
    errs
}

fn validate_at(value: &Value, ty: Ty, path: Option<&PathLink>, errs: &mut Vec<(String, String)>) {
    let here = || path_string(&link_path(path));
    match (node(ty, value), value) {
        (Node::List { elem, kind }, Value::Array(items)) => {
            let granular = kind != ListKind::Atomic;
            let mut seen = BTreeSet::new();
            for (i, item) in items.iter().enumerate() {
                if granular {
                    match item_element(&kind, item) {
                        Err(e) => {
                            errs.push((here(), format!("element {i}: {e}")));
                            continue;
                        }
                        Ok(pe) => {
                            if seen.contains(&pe) {
                                errs.push((here(), format!("duplicate entries for key {pe}")));
                                continue;
                            }
                            validate_at(item, elem, Some(&PathLink::elem(path, &pe)), errs);
                            seen.insert(pe);
                        }
                    }
                } else {
                    validate_at(item, elem, Some(&PathLink::index(path, i)), errs);
                }
            }
        }
        (Node::Map { fields, elem, .. }, Value::Object(map)) => {
            for (key, child) in map {
                let (child_ty, _) = field_type(fields, elem, key);
                validate_at(child, child_ty, Some(&PathLink::field(path, key)), errs);
            }
        }
        _ => {}
    }
}

/// Adds, as members, every declared struct field that has paths below it in `set`, so
/// that removing the set removes such fields as a whole.
pub(crate) fn ensure_named_fields(set: &Set, ty: Ty) -> Set {
    let mut out = Set::new();
    for pe in set.members() {
        out.insert_member(pe.clone());
    }
    let map = map_fields(ty);
    for (pe, child) in set.children() {
        let child_ty = match (pe, map) {
            (PathElement::Field(name), Some((fields, elem))) => {
                let (t, declared) = field_type(fields, elem, name);
                if declared {
                    out.insert_member(pe.clone());
                }
                t
            }
            (PathElement::Key(_), _) => list_elem(ty).unwrap_or(Ty::Deduced),
            _ => Ty::Deduced,
        };
        out.set_child(pe.clone(), ensure_named_fields(child, child_ty));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const DEPLOY: &str = "io.k8s.api.apps.v1.Deployment";

    fn deploy() -> Ty {
        Ty::root(DEPLOY)
    }

    #[test]
    fn field_set_of_a_deployment() {
        let d = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}, "finalizers": ["a"]},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"spec": {"containers": [
                    {"name": "app", "image": "app:1", "ports": [{"containerPort": 80}]}
                ], "tolerations": [{"key": "k"}]}}
            }
        });
        let set = field_set(&d, deploy());
        assert_eq!(
            set.to_fields_v1(),
            json!({
                "f:apiVersion": {}, "f:kind": {},
                "f:metadata": {"f:name": {}, "f:labels": {"f:app": {}}, "f:finalizers": {"v:\"a\"": {}}},
                "f:spec": {
                    "f:replicas": {},
                    "f:selector": {},
                    "f:template": {"f:spec": {
                        "f:containers": {"k:{\"name\":\"app\"}": {
                            ".": {}, "f:name": {}, "f:image": {},
                            "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}}
                        }},
                        "f:tolerations": {}
                    }}
                }
            })
        );
    }

    #[test]
    fn compare_reports_changes() {
        let old = json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"replicas": 1}});
        let new = json!({"metadata": {"labels": {"a": "1", "c": "3"}}, "spec": {"replicas": 2, "paused": true, "strategy": {"type": "Recreate"}}});
        let c = compare(&old, &new, deploy());
        assert_eq!(
            c.added.to_fields_v1(),
            json!({"f:metadata": {"f:labels": {"f:c": {}}}, "f:spec": {"f:paused": {}, "f:strategy": {".": {}, "f:type": {}}}})
        );
        assert_eq!(
            c.modified.to_fields_v1(),
            json!({"f:spec": {"f:replicas": {}}})
        );
        assert_eq!(
            c.removed.to_fields_v1(),
            json!({"f:metadata": {"f:labels": {"f:b": {}}}})
        );
        let same = compare(&new, &new, deploy());
        assert!(same.added.is_empty() && same.modified.is_empty() && same.removed.is_empty());
    }

    #[test]
    fn compare_lists_by_key() {
        let old = json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "1"}]}}}});
        let new = json!({"spec": {"template": {"spec": {"containers": [{"name": "b", "image": "2"}, {"name": "c", "image": "1"}]}}}});
        let c = compare(&old, &new, deploy());
        let at = |name: &str| {
            vec![
                PathElement::Field("spec".into()),
                PathElement::Field("template".into()),
                PathElement::Field("spec".into()),
                PathElement::Field("containers".into()),
                PathElement::key(vec![("name".into(), json!(name))]),
            ]
        };
        assert!(c.removed.has(&at("a")));
        assert!(c.added.has(&at("c")));
        let mut image = at("b");
        image.push(PathElement::Field("image".into()));
        assert!(c.modified.has(&image));
    }

    #[test]
    fn validation_errors() {
        let d = json!({"spec": {"template": {"spec": {"containers": [
            {"image": "x"}, {"name": "a"}, {"name": "a"}
        ]}}}});
        let errs = validate(&d, deploy());
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert_eq!(errs[0].0, ".spec.template.spec.containers");
        assert!(
            errs[0]
                .1
                .starts_with("element 0: associative list with keys")
        );
        assert_eq!(errs[1].1, r#"duplicate entries for key [name="a"]"#);
    }

    #[test]
    fn named_fields_become_members() {
        let mut set = Set::new();
        set.insert(&[
            PathElement::Field("spec".into()),
            PathElement::Field("strategy".into()),
            PathElement::Field("type".into()),
        ]);
        set.insert(&[
            PathElement::Field("metadata".into()),
            PathElement::Field("labels".into()),
            PathElement::Field("a".into()),
        ]);
        let out = ensure_named_fields(&set, deploy());
        assert_eq!(
            out.to_fields_v1(),
            json!({
                "f:metadata": {".": {}, "f:labels": {".": {}, "f:a": {}}},
                "f:spec": {".": {}, "f:strategy": {".": {}, "f:type": {}}}
            })
        );
    }
}
