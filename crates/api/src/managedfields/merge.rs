//! Merging an applied configuration into an object, typed: granular maps merge key by
//! key, associative lists item by item (keeping the live order and placing new items as
//! the configuration orders them), and everything atomic is taken from the configuration
//! whole.
//!
//! Nothing equal to the live object is rebuilt: a merge that changes nothing below a
//! node gives the live node back to be copied whole, and a tracked merge
//! ([`merge_tracked`]) says where the result may differ, so that comparing it with the
//! live object looks only there.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::path::{PathElement, PathLink, link_path, path_string};
use super::schema::{ListKind, Node, Ty, field_type, item_element, node, same_item};

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

/// What merging one node gave.
enum Merged<'v> {
    /// The live value itself (present or absent): nothing was built, and a caller that
    /// needs the value copies it whole (cheaper than rebuilding it piece by piece).
    Live,
    /// A new value (`None`: absent), and where it may differ from the live one (when
    /// tracking).
    New(Option<Value>, Diff<'v>),
}

/// Where a merged value may differ from the live value it was merged into, so that
/// comparing the two can skip what is known to be equal ([`merge_tracked`]).
#[derive(Debug)]
pub(crate) enum Diff<'v> {
    /// Anywhere; `certain` when the two are known to differ.
    Any { certain: bool },
    /// Only in these fields of a map (sorted by name); every other field is equal on both
    /// sides (present and equal, or absent from both).
    Fields(Vec<(&'v str, Diff<'v>)>),
    /// A list merged item by item in place: both lists have the same items by name in the
    /// same order (none duplicated), and only the items at these indexes may differ.
    Items(Vec<(usize, Diff<'v>)>),
}

impl Diff<'_> {
    /// Whether the two values are known to differ.
    pub fn certain(&self) -> bool {
        match self {
            Diff::Any { certain } => *certain,
            Diff::Fields(fields) => fields.iter().any(|(_, d)| d.certain()),
            Diff::Items(items) => items.iter().any(|(_, d)| d.certain()),
        }
    }
}

/// The walk's settings.
struct Walk<'v> {
    opts: MergeOpts<'v>,
    /// Whether [`Diff`]s are recorded (and equal values detected where taken whole).
    track: bool,
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
    let walk = Walk { opts, track: false };
    let merged = walk.at(Some(live), Some(applied), ty, None)?;
    Ok(walk.root(merged, live).0)
}

/// [`merge_with`], also telling where the result may differ from `live` (read with
/// `opts.live_metadata`): `None` when it is equal to it.
pub(crate) fn merge_tracked<'v>(
    live: &'v Value,
    applied: &'v Value,
    ty: Ty,
    opts: MergeOpts<'v>,
) -> Result<(Value, Option<Diff<'v>>), String> {
    let walk = Walk { opts, track: true };
    let merged = walk.at(Some(live), Some(applied), ty, None)?;
    Ok(walk.root(merged, live))
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

/// The keys of two maps, each once, in order (without collecting them).
fn union_keys<'v>(
    a: Option<&'v Map<String, Value>>,
    b: Option<&'v Map<String, Value>>,
) -> impl Iterator<Item = &'v String> {
    let mut a = a.into_iter().flat_map(Map::keys).peekable();
    let mut b = b.into_iter().flat_map(Map::keys).peekable();
    std::iter::from_fn(move || match (a.peek(), b.peek()) {
        (Some(x), Some(y)) => match x.cmp(y) {
            std::cmp::Ordering::Less => a.next(),
            std::cmp::Ordering::Greater => b.next(),
            std::cmp::Ordering::Equal => {
                b.next();
                a.next()
            }
        },
        (Some(_), None) => a.next(),
        (None, _) => b.next(),
    })
}

impl<'v> Walk<'v> {
    /// The merged object: the live object is copied whole when nothing changed.
    fn root(&self, merged: Merged<'v>, live: &Value) -> (Value, Option<Diff<'v>>) {
        match merged {
            Merged::Live => {
                let Value::Object(map) = live else {
                    return (live.clone(), None);
                };
                let copy = map
                    .iter()
                    .map(|(k, v)| {
                        let v = match self.opts.live_metadata {
                            Some(meta) if k == "metadata" => meta,
                            _ => v,
                        };
                        (k.clone(), v.clone())
                    })
                    .collect();
                (Value::Object(copy), None)
            }
            Merged::New(v, diff) => (v.unwrap_or(Value::Object(Map::new())), Some(diff)),
        }
    }

    /// The configuration's value where it is taken whole, or the live one where it has
    /// none. At the root nothing is claimed equal (the live root has managed fields).
    fn keep_rhs(&self, l: Option<&Value>, r: Option<&Value>, root: bool) -> Merged<'v> {
        match (l, r) {
            (_, None) if !root => Merged::Live,
            (Some(a), Some(b)) if self.track && !root && a == b => Merged::Live,
            _ => {
                let certain = self.track && !root;
                Merged::New(r.or(l).cloned(), Diff::Any { certain })
            }
        }
    }

    fn at(
        &self,
        l: Option<&'v Value>,
        r: Option<&'v Value>,
        ty: Ty,
        path: Option<&PathLink>,
    ) -> Result<Merged<'v>, String> {
        let n = match (l, r) {
            (None, None) => return Ok(Merged::Live),
            (Some(v), None) | (None, Some(v)) => node(ty, v),
            (Some(a), Some(b)) => {
                let (na, nb) = (node(ty, a), node(ty, b));
                if na.same_kind(&nb) { nb } else { Node::Leaf }
            }
        };
        let root = path.is_none();
        if n.is_atomic() {
            return Ok(self.keep_rhs(l, r, root));
        }
        match n {
            Node::List { elem, kind } => {
                let li = as_items(l);
                let ri = as_items(r);
                if li.is_empty() && ri.is_empty() {
                    return Ok(self.keep_rhs(l, r, root));
                }
                self.items(l, li, ri, elem, &kind, path)
            }
            Node::Map { fields, elem, .. } => {
                let lm = l.and_then(Value::as_object);
                let rm = r.and_then(Value::as_object);
                if lm.is_none_or(Map::is_empty) && rm.is_none_or(Map::is_empty) {
                    return Ok(self.keep_rhs(l, r, root));
                }
                self.map(lm, rm, fields, elem, path)
            }
            Node::Leaf => Ok(self.keep_rhs(l, r, root)),
        }
    }

    /// Merges two maps key by key. Until a field differs nothing is built: a map all of
    /// whose fields are the live ones is the live map.
    fn map(
        &self,
        lm: Option<&'v Map<String, Value>>,
        rm: Option<&'v Map<String, Value>>,
        fields: Option<&'static Map<String, Value>>,
        elem: Ty,
        path: Option<&PathLink>,
    ) -> Result<Merged<'v>, String> {
        let root = path.is_none();
        let live_at = |key: &str| match self.opts.live_metadata {
            Some(meta) if root && key == "metadata" => Some(meta),
            _ => lm.and_then(|m| m.get(key)),
        };
        let mut out: Option<Map<String, Value>> = None;
        let mut diffs = Vec::new();
        for key in union_keys(lm, rm) {
            let lv = live_at(key);
            let rv = rm.and_then(|m| m.get(key));
            let merged = if self.opts.skip_equal
                && let (Some(a), Some(b)) = (lv, rv)
                && !a.is_object()
                && a == b
            {
                Merged::Live
            } else {
                let (child_ty, _) = field_type(fields, elem, key);
                let here = PathLink::field(path, key);
                self.at(lv, rv, child_ty, Some(&here))?
            };
            match merged {
                Merged::Live => {
                    if let (Some(out), Some(v)) = (&mut out, lv) {
                        out.insert(key.clone(), v.clone());
                    }
                }
                Merged::New(v, diff) => {
                    let out = out.get_or_insert_with(|| {
                        // Every field before this one is the live one.
                        lm.into_iter()
                            .flat_map(Map::keys)
                            .take_while(|k| *k < key)
                            .filter_map(|k| Some((k.clone(), live_at(k)?.clone())))
                            .collect()
                    });
                    if let Some(v) = v {
                        out.insert(key.clone(), v);
                    }
                    if self.track {
                        diffs.push((key.as_str(), diff));
                    }
                }
            }
        }
        Ok(match out {
            None => Merged::Live,
            Some(out) => {
                let v = (!out.is_empty()).then_some(Value::Object(out));
                Merged::New(v, Diff::Fields(diffs))
            }
        })
    }

    /// Merges two associative lists as upstream does: live items keep their order, items
    /// the configuration names are merged where they are, and new configuration items are
    /// placed relative to the shared ones in configuration order.
    fn items(
        &self,
        l: Option<&'v Value>,
        li: &'v [Value],
        ri: &'v [Value],
        elem: Ty,
        kind: &ListKind,
        path: Option<&PathLink>,
    ) -> Result<Merged<'v>, String> {
        if self.track
            && l.is_some_and(Value::is_array)
            && li.len() == ri.len()
            && li.iter().zip(ri).all(|(a, b)| same_item(kind, a, b))
        {
            return self.items_in_place(li, ri, elem, kind, path);
        }
        let mut rhs: Vec<PathElement> = Vec::with_capacity(ri.len());
        let mut observed_rhs: BTreeMap<PathElement, &Value> = BTreeMap::new();
        for (i, item) in ri.iter().enumerate() {
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
        let mut lhs: Vec<(PathElement, &Value)> = Vec::with_capacity(li.len());
        let mut observed_lhs: BTreeMap<PathElement, Option<&'v Value>> = BTreeMap::new();
        for (i, item) in li.iter().enumerate() {
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
        // Each output item, with the live item it was merged from.
        let mut out: Vec<(Option<&'v Value>, Merged<'v>)> =
            Vec::with_capacity(li.len().max(ri.len()));
        let (mut l_at, mut r_at) = (0, 0);
        let mut push = |pe: &PathElement,
                        lc: Option<&'v Value>,
                        rc: Option<&'v Value>,
                        path: Option<&PathLink>|
         -> Result<(), String> {
            if self.opts.skip_equal
                && let (Some(a), Some(b)) = (lc, rc)
                && a == b
            {
                out.push((lc, Merged::Live));
                return Ok(());
            }
            let here = PathLink::elem(path, pe);
            out.push((lc, self.at(lc, rc, elem, Some(&here))?));
            Ok(())
        };
        while l_at < lhs.len() || r_at < rhs.len() {
            let before = (l_at, r_at);
            if l_at < lhs.len() && r_at < rhs.len() {
                let pe = &lhs[l_at].0;
                if *pe == rhs[r_at] {
                    merged_rhs.insert(&rhs[r_at]);
                    let lc = observed_lhs.get(pe).copied().flatten();
                    push(pe, lc, observed_rhs.get(pe).copied(), path)?;
                    l_at += 1;
                    r_at += 1;
                    next_shared = shared.next();
                    continue;
                }
                if observed_rhs.contains_key(pe) && next_shared.is_some_and(|s| s != pe) {
                    // A shared item, but not the one due now: it is merged when its turn
                    // comes.
                    l_at += 1;
                    continue;
                }
            }
            if l_at < lhs.len() {
                let (pe, item) = &lhs[l_at];
                if !observed_rhs.contains_key(pe) {
                    push(pe, Some(*item), None, path)?;
                    l_at += 1;
                    continue;
                } else if merged_rhs.contains(pe) {
                    l_at += 1;
                }
            }
            if r_at < rhs.len() {
                let pe = &rhs[r_at];
                merged_rhs.insert(pe);
                let lc = observed_lhs.get(pe).copied().flatten();
                push(pe, lc, observed_rhs.get(pe).copied(), path)?;
                r_at += 1;
                if next_shared == Some(pe) {
                    next_shared = shared.next();
                }
            }
            if before == (l_at, r_at) {
                // Cannot happen for well-formed input; never loop forever on junk.
                break;
            }
        }
        Ok(self.list_result(l, li, out))
    }

    /// [`Walk::items`] when both lists name the same items in the same order (the usual
    /// re-apply): each item is merged with the one at its index. Only when tracking, whose
    /// configuration is validated (without duplicates, so neither list has any).
    fn items_in_place(
        &self,
        li: &'v [Value],
        ri: &'v [Value],
        elem: Ty,
        kind: &ListKind,
        path: Option<&PathLink>,
    ) -> Result<Merged<'v>, String> {
        let mut out: Option<Vec<Value>> = None;
        let mut diffs = Vec::new();
        let mut in_place = true;
        for (i, (a, b)) in li.iter().zip(ri).enumerate() {
            let merged = if self.opts.skip_equal && a == b {
                Merged::Live
            } else {
                let pe = item_element(kind, a).map_err(|e| element_error(path, i, e))?;
                self.at(Some(a), Some(b), elem, Some(&PathLink::elem(path, &pe)))?
            };
            match merged {
                Merged::Live => {
                    if let Some(out) = &mut out {
                        out.push(a.clone());
                    }
                }
                Merged::New(v, diff) => {
                    let out = out.get_or_insert_with(|| li[..i].to_vec());
                    // Never absent (both items are there); if it were, nothing is in place.
                    in_place &= v.is_some();
                    out.extend(v);
                    diffs.push((i, diff));
                }
            }
        }
        Ok(match out {
            None => Merged::Live,
            Some(items) => {
                let diff = if in_place {
                    Diff::Items(diffs)
                } else {
                    Diff::Any { certain: true }
                };
                let v = (!items.is_empty()).then_some(Value::Array(items));
                Merged::New(v, diff)
            }
        })
    }

    /// The merged list: the live list when every item is its live item in its place,
    /// else the items built.
    fn list_result(
        &self,
        l: Option<&Value>,
        li: &[Value],
        out: Vec<(Option<&Value>, Merged<'v>)>,
    ) -> Merged<'v> {
        let in_place = |i: usize, lc: Option<&Value>| {
            lc.is_some_and(|c| li.get(i).is_some_and(|x| std::ptr::eq(c, x)))
        };
        let same = l.is_some_and(Value::is_array)
            && out.len() == li.len()
            && out
                .iter()
                .enumerate()
                .all(|(i, (lc, m))| matches!(m, Merged::Live) && in_place(i, *lc));
        if same {
            return Merged::Live;
        }
        let mut certain = self.track && (out.len() != li.len() || !l.is_some_and(Value::is_array));
        let mut items = Vec::with_capacity(out.len());
        for (lc, m) in out {
            match m {
                Merged::Live => items.extend(lc.cloned()),
                Merged::New(v, diff) => {
                    // An item that differs from the live item in its place.
                    certain |= self.track && diff.certain() && in_place(items.len(), lc);
                    items.extend(v);
                }
            }
        }
        let v = (!items.is_empty()).then_some(Value::Array(items));
        certain |= self.track && v.is_none() && l.is_some();
        Merged::New(v, Diff::Any { certain })
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

    use super::super::set::testing::container_names as names;

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
    fn tracked_merges_say_where_they_differ() {
        use super::super::walk::{CompareOpts, compare, compare_with};
        let live = json!({"metadata": {"labels": {"a": "1"}}, "spec": {"replicas": 1,
            "template": {"spec": {"containers": [
                {"name": "a", "image": "1", "args": ["x"]},
                {"name": "b", "image": "1", "ports": [{"containerPort": 80}]}]}}}});
        let with = |f: fn(&mut Value)| {
            let mut v = live.clone();
            f(&mut v);
            v
        };
        let configs = [
            (live.clone(), None),
            (
                with(|v| v["spec"]["template"]["spec"]["containers"][1]["image"] = json!("2")),
                Some(true),
            ),
            (with(|v| v["spec"]["replicas"] = json!(1.0)), Some(true)),
            (with(|v| v["metadata"]["labels"] = json!({})), None),
            // Reordered items: not merged in place.
            (
                with(|v| {
                    let list = v["spec"]["template"]["spec"]["containers"]
                        .as_array_mut()
                        .unwrap();
                    list.swap(0, 1);
                }),
                Some(false),
            ),
            (
                with(|v| {
                    v["spec"]["template"]["spec"]["containers"][0]["ports"] =
                        json!([{"containerPort": 1}])
                }),
                Some(true),
            ),
        ];
        let opts = MergeOpts {
            skip_equal: true,
            live_metadata: None,
        };
        for (cfg, differs) in &configs {
            let (merged, diff) = merge_tracked(&live, cfg, deploy(), opts).unwrap();
            assert_eq!(merged, merge(&live, cfg, deploy()).unwrap(), "{cfg}");
            assert_eq!(diff.as_ref().map(Diff::certain), *differs, "{cfg}");
            match differs {
                None => assert_eq!(merged, live, "{cfg}"),
                Some(true) => assert_ne!(merged, live, "{cfg}"),
                // Not known: here the configuration's order wins.
                Some(false) => {}
            }
            let full = compare(&live, &merged, deploy());
            let hint = CompareOpts {
                skip_equal: true,
                old_metadata: None,
                hint: diff.as_ref(),
            };
            let hinted = compare_with(&live, &merged, deploy(), hint);
            assert_eq!(hinted.added, full.added, "{cfg}");
            assert_eq!(hinted.modified, full.modified, "{cfg}");
            assert_eq!(hinted.removed, full.removed, "{cfg}");
        }
        // A changed item is named by its index among items merged in place.
        let (_, diff) = merge_tracked(&live, &configs[1].0, deploy(), opts).unwrap();
        let Some(Diff::Fields(spec)) = diff else {
            panic!("{diff:?}")
        };
        let Diff::Fields(template) = &spec[0].1 else {
            panic!()
        };
        let Diff::Fields(pod) = &template[0].1 else {
            panic!()
        };
        let Diff::Fields(pod_spec) = &pod[0].1 else {
            panic!()
        };
        assert!(
            matches!(&pod_spec[0].1, Diff::Items(items) if items.len() == 1 && items[0].0 == 1)
        );
    }
}
