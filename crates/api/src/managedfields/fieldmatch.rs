//! Whether a stored FieldsV1 object is exactly the field set of a configuration, decided
//! by walking the configuration against the JSON without building either set.
//!
//! An applier that re-applies the configuration it applied last (the usual `kubectl apply`
//! of an unchanged manifest, or one with changed values) owns exactly the fields it owned
//! before; recognising that lets an apply skip building, pruning and re-encoding sets of
//! thousands of paths.
//!
//! The same walks validate the configuration (as [`validate`] does, which they fall back
//! to only for the parts they do not enter), so a configuration is walked once, and name
//! list items by writing their keys rather than building path elements.

use std::cmp::Ordering;

use serde_json::map::Entry;
use serde_json::{Map, Value};

use super::path::PathElement;
use super::schema::{ListKind, Node, Ty, field_type, item_element, node, write_item_key};
use super::set::Set;
use super::walk::validate;

/// How a configuration compares to a stored field set ([`match_field_set`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Match {
    /// The configuration is valid ([`validate`] finds nothing) and its field set is the
    /// stored one.
    Same,
    /// Its field set is another one (whether it is valid was not decided).
    Other,
    /// It is not valid.
    Invalid,
}

/// Whether `tree` is the FieldsV1 encoding of
/// `field_set(value, ty).recursive_difference(ignored).difference(stripped)`
/// ([`super::walk::field_set`]), validating `value` on the way (one walk for both).
pub(crate) fn match_field_set(
    value: &Value,
    ty: Ty,
    tree: &Map<String, Value>,
    ignored: &Set,
    stripped: &Set,
) -> Match {
    if tree.contains_key(".") {
        return Match::Other;
    }
    let mut m = Matcher {
        buf: String::new(),
        empty: Map::new(),
        found: Vec::new(),
    };
    match m.node(
        ty,
        node(ty, value),
        value,
        tree,
        Some(ignored),
        Some(stripped),
    ) {
        Ok(()) => Match::Same,
        Err(stop) => stop,
    }
}

/// `Err(Invalid)` unless `value` (typed `ty`) is valid: for the parts of a configuration
/// the field-set walks do not enter (reset fields, and atomic values: [`atomic_validated`]).
fn validated(value: &Value, ty: Ty) -> Result<(), Match> {
    if validate(value, ty).is_empty() {
        Ok(())
    } else {
        Err(Match::Invalid)
    }
}

/// [`validated`] for a value whose [`node`] is atomic.
fn atomic_validated(value: &Value, ty: Ty) -> Result<(), Match> {
    // Only granular lists can be invalid, and there are none in an atomic value until an
    // object or list below it: one without any is valid (`args`, `resources.limits` …).
    let nested = |v: &Value| v.is_object() || v.is_array();
    let flat = match value {
        Value::Array(items) => !items.iter().any(nested),
        Value::Object(map) => !map.values().any(nested),
        _ => true,
    };
    if flat { Ok(()) } else { validated(value, ty) }
}

/// `Err(Invalid)` when two of a list's item elements are equal (duplicate items).
fn no_duplicates(mut seen: Vec<PathElement>) -> Result<(), Match> {
    if seen.windows(2).all(|w| w[0] < w[1]) {
        return Ok(());
    }
    seen.sort();
    if seen.windows(2).any(|w| w[0] == w[1]) {
        return Err(Match::Invalid);
    }
    Ok(())
}

/// The element below a node, as cheap to name as possible: map keys are borrowed.
enum Elem<'v> {
    Field(&'v str),
    Item(PathElement),
}

impl Elem<'_> {
    fn write_key(&self, buf: &mut String) {
        buf.clear();
        match self {
            Elem::Field(name) => {
                buf.push_str("f:");
                buf.push_str(name);
            }
            Elem::Item(pe) => pe.write_key(buf),
        }
    }

    fn element(&self) -> PathElement {
        match self {
            Elem::Field(name) => PathElement::Field((*name).to_string()),
            Elem::Item(pe) => pe.clone(),
        }
    }
}

struct Matcher {
    buf: String,
    empty: Map<String, Value>,
    /// The tree entries the items of the lists being walked were found at (their keys'
    /// addresses), to tell duplicates.
    found: Vec<usize>,
}

fn elements(tree: &Map<String, Value>) -> usize {
    tree.len() - usize::from(tree.contains_key("."))
}

/// A field of a map: its value typed, and whether the field set has it as a member.
fn field_child<'v>(
    fields: Option<&'static Map<String, Value>>,
    elem: Ty,
    key: &str,
    child: &'v Value,
) -> (Typed<'v>, bool) {
    let (ty, declared) = field_type(fields, elem, key);
    let empty = child.as_object().is_some_and(Map::is_empty);
    let n = node(ty, child);
    let member = child.is_null() || empty || !declared || n.is_atomic();
    let t = Typed {
        ty,
        n,
        value: child,
    };
    (t, member)
}

/// A value with its type and [`node`].
struct Typed<'v> {
    ty: Ty,
    n: Node,
    value: &'v Value,
}

/// One element below a node: its name and value, and whether the field set has it as a
/// member.
struct Child<'v> {
    e: Elem<'v>,
    t: Typed<'v>,
    member: bool,
}

/// Hands every item of a list to `visit` (items are members) and fails on duplicates: the
/// item walk of both the matcher and the builder where something is ignored or stripped.
fn each_item<'v>(
    elem: Ty,
    kind: &ListKind,
    items: &'v [Value],
    mut visit: impl FnMut(Child<'v>) -> Result<Elem<'v>, Match>,
) -> Result<(), Match> {
    let mut seen = Vec::with_capacity(items.len());
    for item in items {
        let Ok(pe) = item_element(kind, item) else {
            return Err(Match::Invalid);
        };
        let t = Typed {
            ty: elem,
            n: node(elem, item),
            value: item,
        };
        let c = Child {
            e: Elem::Item(pe),
            t,
            member: true,
        };
        if let Elem::Item(pe) = visit(c)? {
            seen.push(pe);
        }
    }
    no_duplicates(seen)
}

/// Hands every field of a map to `visit`.
fn each_field<'v>(
    fields: Option<&'static Map<String, Value>>,
    elem: Ty,
    map: &'v Map<String, Value>,
    mut visit: impl FnMut(Child<'v>) -> Result<Elem<'v>, Match>,
) -> Result<(), Match> {
    for (key, child) in map {
        let (t, member) = field_child(fields, elem, key, child);
        visit(Child {
            e: Elem::Field(key),
            t,
            member,
        })?;
    }
    Ok(())
}

impl Matcher {
    /// Whether the paths below `value` (relative to it; `n` is its [`node`]) encode to
    /// `tree`'s elements, and `value` is valid.
    fn node(
        &mut self,
        ty: Ty,
        n: Node,
        value: &Value,
        tree: &Map<String, Value>,
        ignored: Option<&Set>,
        stripped: Option<&Set>,
    ) -> Result<(), Match> {
        if n.is_atomic() {
            if elements(tree) != 0 {
                return Err(Match::Other);
            }
            return atomic_validated(value, ty);
        }
        let mut found = 0;
        match (n, value) {
            (Node::List { elem, kind }, Value::Array(items))
                if ignored.is_none() && stripped.is_none() =>
            {
                self.items(elem, &kind, items, tree)?;
                found = items.len();
            }
            (Node::List { elem, kind }, Value::Array(items)) => {
                each_item(elem, &kind, items, |c| {
                    self.child(c, tree, ignored, stripped, &mut found)
                })?;
            }
            (Node::Map { fields, elem, .. }, Value::Object(map))
                if ignored.is_none() && stripped.is_none() =>
            {
                self.fields(fields, elem, map, tree)?;
                return Ok(());
            }
            (Node::Map { fields, elem, .. }, Value::Object(map)) => {
                each_field(fields, elem, map, |c| {
                    self.child(c, tree, ignored, stripped, &mut found)
                })?;
            }
            _ => {}
        }
        if found == elements(tree) {
            Ok(())
        } else {
            Err(Match::Other)
        }
    }

    /// Matches one element of a node; gives back its name.
    fn child<'v>(
        &mut self,
        c: Child<'v>,
        tree: &Map<String, Value>,
        ignored: Option<&Set>,
        stripped: Option<&Set>,
        found: &mut usize,
    ) -> Result<Elem<'v>, Match> {
        let (mut member, mut child_ignored, mut child_stripped) = (c.member, None, None);
        if ignored.is_some() || stripped.is_some() {
            let pe = c.e.element();
            if ignored.is_some_and(|s| s.has_member(&pe)) {
                // Ignored with everything below it (but still validated).
                validated(c.t.value, c.t.ty)?;
                return Ok(c.e);
            }
            child_ignored = ignored.and_then(|s| s.child(&pe));
            member &= !stripped.is_some_and(|s| s.has_member(&pe));
            child_stripped = stripped.and_then(|s| s.child(&pe));
        }
        c.e.write_key(&mut self.buf);
        let below = match tree.get(self.buf.as_str()) {
            None => {
                if member {
                    return Err(Match::Other);
                }
                // Absent: nothing may be below it either.
                let empty = std::mem::take(&mut self.empty);
                let t = c.t;
                let ok = self.node(t.ty, t.n, t.value, &empty, child_ignored, child_stripped);
                self.empty = empty;
                return ok.map(|()| c.e);
            }
            Some(Value::Object(below)) => below,
            Some(_) => return Err(Match::Other),
        };
        *found += 1;
        self.below(c.t, member, below, child_ignored, child_stripped)?;
        Ok(c.e)
    }

    /// Matches what is below an element found in the tree at `below`.
    fn below(
        &mut self,
        t: Typed,
        member: bool,
        below: &Map<String, Value>,
        ignored: Option<&Set>,
        stripped: Option<&Set>,
    ) -> Result<(), Match> {
        let has_dot = match below.get(".") {
            None => false,
            Some(Value::Object(dot)) if dot.is_empty() => true,
            Some(_) => return Err(Match::Other),
        };
        let shape_ok = if below.is_empty() {
            member
        } else if has_dot {
            member && below.len() > 1
        } else {
            !member
        };
        if !shape_ok {
            return Err(Match::Other);
        }
        self.node(t.ty, t.n, t.value, below, ignored, stripped)
    }

    /// Matches the fields of a map (with nothing ignored or stripped below it) against
    /// `tree`, walking both in order: map keys and the tree's `f:` keys sort alike, so a
    /// tree element passed by is one no field names.
    fn fields(
        &mut self,
        fields: Option<&'static Map<String, Value>>,
        elem: Ty,
        map: &Map<String, Value>,
        tree: &Map<String, Value>,
    ) -> Result<(), Match> {
        let mut entries = tree.iter().filter(|(k, _)| k.as_str() != ".").peekable();
        for (key, child) in map {
            let (t, member) = field_child(fields, elem, key, child);
            let found = match entries.peek() {
                None => None,
                Some((k, v)) => match k.strip_prefix("f:").map(|name| name.cmp(key)) {
                    Some(Ordering::Greater) => None,
                    Some(Ordering::Equal) => {
                        let v = *v;
                        entries.next();
                        Some(v)
                    }
                    // Not a field, or a field the configuration does not set.
                    _ => return Err(Match::Other),
                },
            };
            match found {
                None if member => return Err(Match::Other),
                None => {
                    // Absent: nothing may be below it either.
                    let empty = std::mem::take(&mut self.empty);
                    let ok = self.node(t.ty, t.n, t.value, &empty, None, None);
                    self.empty = empty;
                    ok?;
                }
                Some(Value::Object(below)) => self.below(t, member, below, None, None)?,
                Some(_) => return Err(Match::Other),
            }
        }
        match entries.next() {
            None => Ok(()),
            Some(_) => Err(Match::Other),
        }
    }

    /// Matches the items of a granular list (with nothing ignored or stripped below it)
    /// against `tree`, naming them without building their path elements.
    fn items(
        &mut self,
        elem: Ty,
        kind: &ListKind,
        items: &[Value],
        tree: &Map<String, Value>,
    ) -> Result<(), Match> {
        let base = self.found.len();
        // Items usually come in the tree's order: look at its next entry first.
        let mut entries = tree.iter().filter(|(k, _)| k.as_str() != ".").peekable();
        for item in items {
            if write_item_key(kind, item, &mut self.buf).is_none() {
                return Err(Match::Invalid);
            }
            let hit = match entries.peek() {
                Some((k, _)) if **k == self.buf => entries.next(),
                _ => tree.get_key_value(self.buf.as_str()),
            };
            // Items are members: each must be in the tree.
            let Some((key, Value::Object(below))) = hit else {
                return Err(Match::Other);
            };
            self.found.push(std::ptr::from_ref(key) as usize);
            let t = Typed {
                ty: elem,
                n: node(elem, item),
                value: item,
            };
            self.below(t, true, below, None, None)?;
        }
        // The tree's keys are canonical (no floats, `Fields::Tree`), and two items found
        // at canonical keys have equal elements exactly when the keys are equal: so
        // duplicates are items found at the same entry.
        let found = &mut self.found[base..];
        found.sort_unstable();
        let duplicates = found.windows(2).any(|w| w[0] == w[1]);
        self.found.truncate(base);
        if duplicates {
            return Err(Match::Invalid);
        }
        Ok(())
    }
}

/// The FieldsV1 encoding of
/// `field_set(value, ty).recursive_difference(ignored).difference(stripped)`, built in one
/// walk without the intermediate set, validating `value` on the way: `None` when it is
/// not valid ([`validate`]).
pub(crate) fn field_tree(
    value: &Value,
    ty: Ty,
    ignored: &Set,
    stripped: &Set,
) -> Option<Map<String, Value>> {
    build_tree(value, ty, ignored, stripped, false)
}

/// Like [`field_tree`], but with every path of `value` a member, as comparing `value` to
/// an empty object reports them all added (an update that creates the object).
pub(crate) fn added_tree(
    value: &Value,
    ty: Ty,
    ignored: &Set,
    stripped: &Set,
) -> Option<Map<String, Value>> {
    build_tree(value, ty, ignored, stripped, true)
}

fn build_tree(
    value: &Value,
    ty: Ty,
    ignored: &Set,
    stripped: &Set,
    every_path: bool,
) -> Option<Map<String, Value>> {
    let mut b = Builder {
        buf: String::new(),
        every_path,
    };
    b.node(ty, node(ty, value), value, Some(ignored), Some(stripped))
        .ok()
}

struct Builder {
    buf: String,
    /// Every path is a member (also structs, which a field set only passes through).
    every_path: bool,
}

impl Builder {
    /// The encoded paths below `value` (`n` is its [`node`]).
    fn node(
        &mut self,
        ty: Ty,
        n: Node,
        value: &Value,
        ignored: Option<&Set>,
        stripped: Option<&Set>,
    ) -> Result<Map<String, Value>, Match> {
        let mut out = Map::new();
        if n.is_atomic() {
            atomic_validated(value, ty)?;
            return Ok(out);
        }
        match (n, value) {
            (Node::List { elem, kind }, Value::Array(items))
                if ignored.is_none() && stripped.is_none() =>
            {
                self.items(elem, &kind, items, &mut out)?;
            }
            (Node::List { elem, kind }, Value::Array(items)) => {
                each_item(elem, &kind, items, |c| {
                    self.child(c, &mut out, ignored, stripped)
                })?;
            }
            (Node::Map { fields, elem, .. }, Value::Object(map)) => {
                let every_path = self.every_path;
                each_field(fields, elem, map, |mut c| {
                    c.member |= every_path;
                    self.child(c, &mut out, ignored, stripped)
                })?;
            }
            _ => {}
        }
        Ok(out)
    }

    /// Adds one element of a node to `out`; gives back its name.
    fn child<'v>(
        &mut self,
        c: Child<'v>,
        out: &mut Map<String, Value>,
        ignored: Option<&Set>,
        stripped: Option<&Set>,
    ) -> Result<Elem<'v>, Match> {
        let (mut member, mut child_ignored, mut child_stripped) = (c.member, None, None);
        if ignored.is_some() || stripped.is_some() {
            let pe = c.e.element();
            if ignored.is_some_and(|s| s.has_member(&pe)) {
                validated(c.t.value, c.t.ty)?;
                return Ok(c.e);
            }
            child_ignored = ignored.and_then(|s| s.child(&pe));
            member &= !stripped.is_some_and(|s| s.has_member(&pe));
            child_stripped = stripped.and_then(|s| s.child(&pe));
        }
        let t = c.t;
        let mut below = self.node(t.ty, t.n, t.value, child_ignored, child_stripped)?;
        if below.is_empty() && !member {
            return Ok(c.e);
        }
        if member && !below.is_empty() {
            below.insert(".".into(), Value::Object(Map::new()));
        }
        c.e.write_key(&mut self.buf);
        out.insert(self.buf.clone(), Value::Object(below));
        Ok(c.e)
    }

    /// Adds the items of a granular list (with nothing ignored or stripped below it) to
    /// `out`, naming them without building their path elements.
    fn items(
        &mut self,
        elem: Ty,
        kind: &ListKind,
        items: &[Value],
        out: &mut Map<String, Value>,
    ) -> Result<(), Match> {
        let mut exact = true;
        for item in items {
            let Some(item_exact) = write_item_key(kind, item, &mut self.buf) else {
                return Err(Match::Invalid);
            };
            exact &= item_exact;
            let key = self.buf.clone();
            // Items are members.
            let mut below = self.node(elem, node(elem, item), item, None, None)?;
            if !below.is_empty() {
                below.insert(".".into(), Value::Object(Map::new()));
            }
            match out.entry(key) {
                Entry::Vacant(slot) => {
                    slot.insert(Value::Object(below));
                }
                // Equal keys, equal elements: a duplicate.
                Entry::Occupied(_) => return Err(Match::Invalid),
            }
        }
        if !exact {
            // Keys spelled apart may still name equal elements (`80` and `80.0`).
            let seen = items
                .iter()
                .map(|item| item_element(kind, item))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| Match::Invalid)?;
            no_duplicates(seen)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::walk::field_set;
    use super::*;
    use serde_json::json;

    fn deploy() -> Ty {
        Ty::root("io.k8s.api.apps.v1.Deployment")
    }

    fn filters() -> (Set, Set) {
        let f = |n: &str| PathElement::Field(n.into());
        let mut ignored = Set::new();
        ignored.insert(&[f("status")]);
        let mut stripped = Set::new();
        stripped.insert(&[f("apiVersion")]);
        stripped.insert(&[f("kind")]);
        stripped.insert(&[f("metadata")]);
        stripped.insert(&[f("metadata"), f("name")]);
        (ignored, stripped)
    }

    fn expected(v: &Value) -> Value {
        let (ignored, stripped) = filters();
        field_set(v, deploy())
            .recursive_difference(&ignored)
            .difference(&stripped)
            .to_fields_v1()
    }

    fn check(v: &Value, tree: &Value) -> bool {
        let (ignored, stripped) = filters();
        let Value::Object(t) = tree else { panic!() };
        match_field_set(v, deploy(), t, &ignored, &stripped) == Match::Same
    }

    #[test]
    fn matches_exactly_the_field_set() {
        let configs = [
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                   "metadata": {"name": "x", "labels": {"a": "1"}, "annotations": {}},
                   "spec": {"replicas": 1, "selector": {"matchLabels": {"a": "1"}},
                            "strategy": {}, "paused": null,
                            "template": {"spec": {"containers": [
                                {"name": "a", "image": "i", "ports": [{"containerPort": 80}], "args": ["x"]},
                                {"name": "b", "env": []}
                            ], "tolerations": [{"key": "k"}]}}},
                   "status": {"replicas": 3}}),
            json!({"metadata": {"finalizers": ["a", "b"]}, "spec": {}}),
            json!({}),
        ];
        for cfg in &configs {
            let want = expected(cfg);
            assert!(check(cfg, &want), "{cfg}");
            let (ignored, stripped) = filters();
            let built = field_tree(cfg, deploy(), &ignored, &stripped);
            assert_eq!(built.map(Value::Object), Some(want.clone()), "{cfg}");
            // Any other tree does not match.
            let mut extra = want.clone();
            extra["f:spec"]["f:minReadySeconds"] = json!({});
            assert!(!check(cfg, &extra), "{cfg}");
            if let Some(Value::Object(m)) = want.get("f:spec")
                && !m.is_empty()
            {
                let mut fewer = want.clone();
                if let Some(o) = fewer["f:spec"].as_object_mut() {
                    let first = o.keys().next().cloned().unwrap();
                    o.remove(&first);
                }
                assert!(!check(cfg, &fewer), "{cfg}");
            }
            let mut dot = want.clone();
            if let Some(o) = dot.as_object_mut() {
                o.insert(".".into(), json!({}));
            }
            assert!(!check(cfg, &dot), "{cfg}");
        }
    }

    #[test]
    fn invalid_configurations_never_match() {
        let containers =
            |list: Value| json!({"spec": {"template": {"spec": {"containers": list}}}});
        // Each invalid configuration, and a valid one that owns the same fields.
        let cases = [
            // Duplicate and unnamed items of a granular list.
            (
                containers(json!([{"name": "a"}, {"name": "a"}])),
                containers(json!([{"name": "a"}])),
            ),
            (
                containers(json!([{"name": "a"}, {"image": "x"}])),
                containers(json!([{"name": "a"}])),
            ),
            (
                json!({"metadata": {"finalizers": ["a", "a"]}}),
                json!({"metadata": {"finalizers": ["a"]}}),
            ),
            // In the fields the strategy resets, which no one owns.
            (
                json!({"status": {"conditions": [{"type": "A"}, {"type": "A"}]}}),
                json!({}),
            ),
            // Below an atomic value, which the field set does not enter.
            (
                json!({"spec": {"selector": {"matchExpressions": [{"key": "a"}]},
                       "template": {"spec": {"tolerations": [{"key": "k"}]}}},
                       "status": {"conditions": [{"status": "x"}]}}),
                json!({"spec": {"selector": {"matchExpressions": [{"key": "a"}]},
                       "template": {"spec": {"tolerations": [{"key": "k"}]}}}}),
            ),
        ];
        let (ignored, stripped) = filters();
        for (cfg, twin) in &cases {
            assert!(!validate(cfg, deploy()).is_empty(), "{cfg}");
            assert!(validate(twin, deploy()).is_empty(), "{twin}");
            let Value::Object(tree) = expected(twin) else {
                panic!()
            };
            assert_eq!(
                match_field_set(cfg, deploy(), &tree, &ignored, &stripped),
                Match::Invalid,
                "{cfg}"
            );
            assert!(check(twin, &Value::Object(tree)), "{twin}");
            assert_eq!(
                field_tree(cfg, deploy(), &ignored, &stripped),
                None,
                "{cfg}"
            );
            // Whatever tree it is compared with, it never matches.
            assert_ne!(
                match_field_set(cfg, deploy(), &Map::new(), &ignored, &stripped),
                Match::Same
            );
        }
        // A reset field is not owned, but still validated (a list of scalars where items
        // are keyed).
        let cfg = json!({"metadata": {"ownerReferences": ["x"]}});
        assert!(!validate(&cfg, deploy()).is_empty());
        let mut reset = Set::new();
        let f = |n: &str| PathElement::Field(n.into());
        reset.insert(&[f("metadata"), f("ownerReferences")]);
        let none = Map::new();
        let m = match_field_set(&cfg, deploy(), &none, &reset, &stripped);
        assert_eq!(m, Match::Invalid);
        assert_eq!(field_tree(&cfg, deploy(), &reset, &stripped), None);
        // Items whose keys are equal but spelled apart are duplicates too.
        let cfg = containers(
            json!([{"name": "b", "ports": [{"containerPort": 80}, {"containerPort": 80.0}]}]),
        );
        assert!(!validate(&cfg, deploy()).is_empty());
        assert_eq!(field_tree(&cfg, deploy(), &ignored, &stripped), None);
    }
}
