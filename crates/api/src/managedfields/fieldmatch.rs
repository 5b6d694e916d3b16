//! Whether a stored FieldsV1 object is exactly the field set of a configuration, decided
//! by walking the configuration against the JSON without building either set.
//!
//! An applier that re-applies the configuration it applied last (the usual `kubectl apply`
//! of an unchanged manifest, or one with changed values) owns exactly the fields it owned
//! before; recognising that lets an apply skip building, pruning and re-encoding sets of
//! thousands of paths.

use serde_json::{Map, Value};

use super::path::PathElement;
use super::schema::{Node, Ty, field_type, item_element, node};
use super::set::Set;

/// Whether `tree` is the FieldsV1 encoding of
/// `field_set(value, ty).recursive_difference(ignored).difference(stripped)`
/// ([`super::walk::field_set`]). `value` must be a validated configuration
/// ([`super::walk::validate`]): its granular lists have no duplicate or unnamed items.
pub(crate) fn matches_field_set(
    value: &Value,
    ty: Ty,
    tree: &Map<String, Value>,
    ignored: &Set,
    stripped: &Set,
) -> bool {
    if tree.contains_key(".") {
        return false;
    }
    let mut m = Matcher {
        buf: String::new(),
        empty: Map::new(),
    };
    m.node(node(ty, value), value, tree, Some(ignored), Some(stripped))
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
}

fn elements(tree: &Map<String, Value>) -> usize {
    tree.len() - usize::from(tree.contains_key("."))
}

impl Matcher {
    /// Whether the paths below `value` (relative to it; `n` is its [`node`]) encode to
    /// `tree`'s elements.
    fn node(
        &mut self,
        n: Node,
        value: &Value,
        tree: &Map<String, Value>,
        ignored: Option<&Set>,
        stripped: Option<&Set>,
    ) -> bool {
        if n.is_atomic() {
            return elements(tree) == 0;
        }
        let mut found = 0;
        match (n, value) {
            (Node::List { elem, kind }, Value::Array(items)) => {
                for item in items {
                    // Unnamed items own nothing (and a validated configuration has none).
                    let Ok(pe) = item_element(&kind, item) else {
                        continue;
                    };
                    let e = Elem::Item(pe);
                    let n = node(elem, item);
                    if !self.child(&e, n, item, true, tree, ignored, stripped, &mut found) {
                        return false;
                    }
                }
            }
            (Node::Map { fields, elem, .. }, Value::Object(map)) => {
                for (key, child) in map {
                    let (child_ty, declared) = field_type(fields, elem, key);
                    let empty = child.as_object().is_some_and(Map::is_empty);
                    let n = node(child_ty, child);
                    let member = child.is_null() || empty || !declared || n.is_atomic();
                    let e = Elem::Field(key);
                    if !self.child(&e, n, child, member, tree, ignored, stripped, &mut found) {
                        return false;
                    }
                }
            }
            _ => {}
        }
        found == elements(tree)
    }

    /// Matches one element of a node: `member` is whether the field set has it as a member.
    #[allow(clippy::too_many_arguments)]
    fn child(
        &mut self,
        e: &Elem,
        n: Node,
        value: &Value,
        member: bool,
        tree: &Map<String, Value>,
        ignored: Option<&Set>,
        stripped: Option<&Set>,
        found: &mut usize,
    ) -> bool {
        let (mut member, mut child_ignored, mut child_stripped) = (member, None, None);
        if ignored.is_some() || stripped.is_some() {
            let pe = e.element();
            if ignored.is_some_and(|s| s.has_member(&pe)) {
                // Ignored with everything below it.
                return true;
            }
            child_ignored = ignored.and_then(|s| s.child(&pe));
            member &= !stripped.is_some_and(|s| s.has_member(&pe));
            child_stripped = stripped.and_then(|s| s.child(&pe));
        }
        e.write_key(&mut self.buf);
        let below = match tree.get(self.buf.as_str()) {
            None => {
                if member {
                    return false;
                }
                // Absent: nothing may be below it either.
                let empty = std::mem::take(&mut self.empty);
                let ok = self.node(n, value, &empty, child_ignored, child_stripped);
                self.empty = empty;
                return ok;
            }
            Some(Value::Object(below)) => below,
            Some(_) => return false,
        };
        *found += 1;
        let has_dot = match below.get(".") {
            None => false,
            Some(Value::Object(dot)) if dot.is_empty() => true,
            Some(_) => return false,
        };
        let shape_ok = if below.is_empty() {
            member
        } else if has_dot {
            member && below.len() > 1
        } else {
            !member
        };
        shape_ok && self.node(n, value, below, child_ignored, child_stripped)
    }
}

/// The FieldsV1 encoding of
/// `field_set(value, ty).recursive_difference(ignored).difference(stripped)`, built in one
/// walk without the intermediate set. `value` must be validated, as for
/// [`matches_field_set`].
pub(crate) fn field_tree(
    value: &Value,
    ty: Ty,
    ignored: &Set,
    stripped: &Set,
) -> Map<String, Value> {
    let mut b = Builder { buf: String::new() };
    b.node(node(ty, value), value, Some(ignored), Some(stripped))
}

struct Builder {
    buf: String,
}

impl Builder {
    /// The encoded paths below `value` (`n` is its [`node`]).
    fn node(
        &mut self,
        n: Node,
        value: &Value,
        ignored: Option<&Set>,
        stripped: Option<&Set>,
    ) -> Map<String, Value> {
        let mut out = Map::new();
        if n.is_atomic() {
            return out;
        }
        match (n, value) {
            (Node::List { elem, kind }, Value::Array(items)) => {
                for item in items {
                    let Ok(pe) = item_element(&kind, item) else {
                        continue;
                    };
                    let n = node(elem, item);
                    self.child(&Elem::Item(pe), n, item, true, &mut out, ignored, stripped);
                }
            }
            (Node::Map { fields, elem, .. }, Value::Object(map)) => {
                for (key, child) in map {
                    let (child_ty, declared) = field_type(fields, elem, key);
                    let empty = child.as_object().is_some_and(Map::is_empty);
                    let n = node(child_ty, child);
                    let member = child.is_null() || empty || !declared || n.is_atomic();
                    self.child(
                        &Elem::Field(key),
                        n,
                        child,
                        member,
                        &mut out,
                        ignored,
                        stripped,
                    );
                }
            }
            _ => {}
        }
        out
    }

    #[allow(clippy::too_many_arguments)]
    fn child(
        &mut self,
        e: &Elem,
        n: Node,
        value: &Value,
        member: bool,
        out: &mut Map<String, Value>,
        ignored: Option<&Set>,
        stripped: Option<&Set>,
    ) {
        let (mut member, mut child_ignored, mut child_stripped) = (member, None, None);
        if ignored.is_some() || stripped.is_some() {
            let pe = e.element();
            if ignored.is_some_and(|s| s.has_member(&pe)) {
                return;
            }
            child_ignored = ignored.and_then(|s| s.child(&pe));
            member &= !stripped.is_some_and(|s| s.has_member(&pe));
            child_stripped = stripped.and_then(|s| s.child(&pe));
        }
        let mut below = self.node(n, value, child_ignored, child_stripped);
        if below.is_empty() && !member {
            return;
        }
        if member && !below.is_empty() {
            below.insert(".".into(), Value::Object(Map::new()));
        }
        e.write_key(&mut self.buf);
        out.insert(self.buf.clone(), Value::Object(below));
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
        matches_field_set(v, deploy(), t, &ignored, &stripped)
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
            assert_eq!(Value::Object(built), want, "{cfg}");
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
}
