//! Sets of field paths, stored as a trie, with the operations ownership tracking needs
//! and the FieldsV1 encoding (`{"f:spec":{"f:replicas":{}}}`, where `".": {}` marks a node
//! that is itself a member as well as a prefix of others).
//!
//! Invariant: no child trie is empty, so the encoding never invents members.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::path::{Path, PathElement};

/// A set of paths.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Set {
    members: BTreeSet<PathElement>,
    children: BTreeMap<PathElement, Set>,
}

impl Set {
    pub fn new() -> Set {
        Set::default()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.children.is_empty()
    }

    /// Adds `path` (the empty path is not a member of anything and is ignored).
    pub fn insert(&mut self, path: &[PathElement]) {
        let Some((last, prefix)) = path.split_last() else {
            return;
        };
        let mut node = self;
        for pe in prefix {
            node = node.children.entry(pe.clone()).or_default();
        }
        node.members.insert(last.clone());
    }

    pub fn has(&self, path: &[PathElement]) -> bool {
        let Some((last, prefix)) = path.split_last() else {
            return false;
        };
        let mut node = self;
        for pe in prefix {
            match node.children.get(pe) {
                Some(child) => node = child,
                None => return false,
            }
        }
        node.members.contains(last)
    }

    pub fn has_member(&self, pe: &PathElement) -> bool {
        self.members.contains(pe)
    }

    /// The paths below `pe`, relative to it.
    pub fn child(&self, pe: &PathElement) -> Option<&Set> {
        self.children.get(pe)
    }

    pub fn members(&self) -> impl Iterator<Item = &PathElement> {
        self.members.iter()
    }

    pub fn children(&self) -> impl Iterator<Item = (&PathElement, &Set)> {
        self.children.iter()
    }

    pub(crate) fn insert_member(&mut self, pe: PathElement) {
        self.members.insert(pe);
    }

    pub(crate) fn set_child(&mut self, pe: PathElement, child: Set) {
        if child.is_empty() {
            self.children.remove(&pe);
        } else {
            self.children.insert(pe, child);
        }
    }

    pub fn union(&self, other: &Set) -> Set {
        let mut out = self.clone();
        out.union_with(other);
        out
    }

    pub fn union_with(&mut self, other: &Set) {
        self.members.extend(other.members.iter().cloned());
        for (pe, child) in &other.children {
            match self.children.get_mut(pe) {
                Some(mine) => mine.union_with(child),
                None => {
                    self.children.insert(pe.clone(), child.clone());
                }
            }
        }
    }

    pub fn intersection(&self, other: &Set) -> Set {
        let members = self.members.intersection(&other.members).cloned().collect();
        let children = self
            .children
            .iter()
            .filter_map(|(pe, child)| {
                let both = child.intersection(other.children.get(pe)?);
                (!both.is_empty()).then(|| (pe.clone(), both))
            })
            .collect();
        Set { members, children }
    }

    /// The paths of `self` not in `other`. Like upstream, this is per node: removing a
    /// member does not remove the paths below it.
    pub fn difference(&self, other: &Set) -> Set {
        let members = self.members.difference(&other.members).cloned().collect();
        let children = self
            .children
            .iter()
            .filter_map(|(pe, child)| {
                let rest = match other.children.get(pe) {
                    Some(theirs) => child.difference(theirs),
                    None => child.clone(),
                };
                (!rest.is_empty()).then(|| (pe.clone(), rest))
            })
            .collect();
        Set { members, children }
    }

    /// Like [`Set::difference`], but a member of `other` also removes every path below it.
    pub fn recursive_difference(&self, other: &Set) -> Set {
        let members = self.members.difference(&other.members).cloned().collect();
        let children = self
            .children
            .iter()
            .filter(|(pe, _)| !other.members.contains(pe))
            .filter_map(|(pe, child)| {
                let rest = match other.children.get(pe) {
                    Some(theirs) => child.recursive_difference(theirs),
                    None => child.clone(),
                };
                (!rest.is_empty()).then(|| (pe.clone(), rest))
            })
            .collect();
        Set { members, children }
    }

    /// Every path, members of a node before the paths below it, each level in order.
    pub fn paths(&self) -> Vec<Path> {
        let mut out = Vec::new();
        self.collect_paths(&mut Vec::new(), &mut out);
        out
    }

    fn collect_paths(&self, prefix: &mut Path, out: &mut Vec<Path>) {
        for pe in &self.members {
            let mut p = prefix.clone();
            p.push(pe.clone());
            out.push(p);
        }
        for (pe, child) in &self.children {
            prefix.push(pe.clone());
            child.collect_paths(prefix, out);
            prefix.pop();
        }
    }

    /// The FieldsV1 object of this set.
    pub fn to_fields_v1(&self) -> Value {
        Value::Object(self.emit(false))
    }

    fn emit(&self, include_self: bool) -> Map<String, Value> {
        let mut out = Map::new();
        if include_self && !self.is_empty() {
            out.insert(".".into(), Value::Object(Map::new()));
        }
        for pe in &self.members {
            if !self.children.contains_key(pe) {
                out.insert(pe.to_key(), Value::Object(Map::new()));
            }
        }
        for (pe, child) in &self.children {
            let inner = child.emit(self.members.contains(pe));
            out.insert(pe.to_key(), Value::Object(inner));
        }
        out
    }

    /// Reads a FieldsV1 object. Keys of unknown element types are skipped, as upstream
    /// skips them; anything else malformed is an error.
    pub fn from_fields_v1(fields: &Value) -> Result<Set, String> {
        let Value::Object(map) = fields else {
            return Err(format!("expected an object, got {}", kind_name(fields)));
        };
        Ok(read_node(map)?.0)
    }
}

/// Reads one level: the set below this node, and whether the node is itself a member
/// (it says so with `"."`, or it has nothing below it).
fn read_node(map: &Map<String, Value>) -> Result<(Set, bool), String> {
    let mut set = Set::new();
    let mut is_member = false;
    for (key, value) in map {
        if key == "." {
            is_member = true;
            continue;
        }
        let Some(pe) = PathElement::from_key(key)? else {
            continue;
        };
        let Value::Object(inner) = value else {
            return Err(format!(
                "{key}: expected an object, got {}",
                kind_name(value)
            ));
        };
        let (child, child_is_member) = read_node(inner)?;
        if child_is_member {
            set.members.insert(pe.clone());
        }
        set.set_child(pe, child);
    }
    let member = is_member || set.is_empty();
    Ok((set, member))
}

fn kind_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Builders and readers for tests of this and neighbouring modules.
#[cfg(test)]
pub(super) mod testing {
    use super::*;

    /// The container names of a Deployment's pod template, in order.
    pub(in crate::managedfields) fn container_names(v: &serde_json::Value) -> Vec<String> {
        v["spec"]["template"]["spec"]["containers"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|c| c["name"].as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The field element `name`.
    pub(in crate::managedfields) fn f(name: &str) -> PathElement {
        PathElement::Field(name.into())
    }

    /// The set of `paths`.
    pub(in crate::managedfields) fn set_of(paths: &[&[PathElement]]) -> Set {
        let mut s = Set::new();
        for p in paths {
            s.insert(p);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{f, set_of};
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_v1_round_trip() {
        let item = PathElement::key(vec![("name".into(), json!("app"))]);
        let s = set_of(&[
            &[f("spec"), f("replicas")],
            &[f("spec"), f("containers"), item.clone()],
            &[f("spec"), f("containers"), item.clone(), f("image")],
            &[f("spec"), f("finalizers"), PathElement::Value(json!("x"))],
        ]);
        let v = s.to_fields_v1();
        assert_eq!(
            v,
            json!({"f:spec": {
                "f:replicas": {},
                "f:containers": {r#"k:{"name":"app"}"#: {".": {}, "f:image": {}}},
                "f:finalizers": {r#"v:"x""#: {}}
            }})
        );
        assert_eq!(Set::from_fields_v1(&v).unwrap(), s);
        assert!(s.has(&[f("spec"), f("containers"), item.clone()]));
        assert!(!s.has(&[f("spec")]));
        assert_eq!(s.paths().len(), 4);
    }

    #[test]
    fn from_fields_v1_edge_cases() {
        assert_eq!(Set::from_fields_v1(&json!({})).unwrap(), Set::new());
        let s =
            Set::from_fields_v1(&json!({"f:a": {"x:unknown": {}}, "z:b": {"f:c": {}}})).unwrap();
        assert_eq!(s, set_of(&[&[f("a")]]));
        for bad in [
            json!([]),
            json!({"f:a": 1}),
            json!({"k:[": {}}),
            json!({"q": {}}),
        ] {
            assert!(Set::from_fields_v1(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn operations() {
        let a = set_of(&[&[f("a")], &[f("a"), f("b")], &[f("c"), f("d")]]);
        let b = set_of(&[&[f("a")], &[f("c"), f("d")], &[f("e")]]);
        assert_eq!(a.intersection(&b), set_of(&[&[f("a")], &[f("c"), f("d")]]));
        // Plain difference keeps what is below a removed member…
        assert_eq!(a.difference(&b), set_of(&[&[f("a"), f("b")]]));
        // …recursive difference drops it too.
        assert!(a.recursive_difference(&b).is_empty());
        assert_eq!(
            a.union(&b),
            set_of(&[&[f("a")], &[f("a"), f("b")], &[f("c"), f("d")], &[f("e")]])
        );
        assert!(a.difference(&a).is_empty());
    }
}
