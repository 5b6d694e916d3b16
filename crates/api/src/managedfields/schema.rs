//! The shape of each field, read from the published OpenAPI definitions
//! ([`openapi::all_definitions`]) the way upstream's structured-merge-diff schema is
//! derived from them:
//!
//! - lists: `x-kubernetes-list-type` `map` (items keyed by `x-kubernetes-list-map-keys`),
//!   `set` (items are their own key) or `atomic`; without one, a `merge` patch strategy makes
//!   the list associative (by its merge key, or a set), and anything else is atomic;
//! - objects: structs (`properties`) and maps (`additionalProperties`) are granular unless
//!   `x-kubernetes-map-type: atomic` (on the field or its definition);
//! - everything without a schema (unknown fields, kinds without a definition) is
//!   *deduced* from the value: objects granular, lists atomic.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use serde_json::{Map, Value};

use super::path::{PathElement, compare_values, write_json_string};
use crate::openapi;

const REF_PREFIX: &str = "#/components/schemas/";

/// A schema node: a definition, a property, or the items/values schema of one.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Ty {
    Node(&'static Value),
    Deduced,
}

impl Ty {
    /// The type of the definition named `definition`; unknown names are deduced.
    pub fn root(definition: &str) -> Ty {
        openapi::all_definitions()
            .get(definition)
            .map_or(Ty::Deduced, Ty::Node)
    }
}

/// How the items of a granular list are identified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ListKind {
    Atomic,
    Set,
    /// Keyed by these fields (shared: nodes are made at every value a walk visits).
    Map(Arc<[&'static str]>),
}

/// A type with its references followed.
#[derive(Clone)]
enum Shape {
    Scalar,
    List {
        elem: Ty,
        kind: ListKind,
    },
    Map {
        fields: Option<&'static Map<String, Value>>,
        elem: Ty,
        atomic: bool,
    },
    Deduced,
}

/// A value together with its type: what a walk does at this node.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    Leaf,
    List {
        elem: Ty,
        kind: ListKind,
    },
    Map {
        fields: Option<&'static Map<String, Value>>,
        elem: Ty,
        atomic: bool,
    },
}

impl Node {
    /// Whether two nodes are walked the same way (else the pair is compared as a leaf).
    pub fn same_kind(&self, other: &Node) -> bool {
        matches!(
            (self, other),
            (Node::Leaf, Node::Leaf)
                | (Node::List { .. }, Node::List { .. })
                | (Node::Map { .. }, Node::Map { .. })
        )
    }

    /// Whether the node is one field as a whole: scalars, atomic lists and maps.
    pub fn is_atomic(&self) -> bool {
        match self {
            Node::Leaf => true,
            Node::List { kind, .. } => *kind == ListKind::Atomic,
            Node::Map { atomic, .. } => *atomic,
        }
    }
}

/// The definition a `$ref` (possibly wrapped in `allOf`) points to.
fn referenced(node: &'static Value) -> Option<&'static Value> {
    let reference = node.get("$ref").or_else(|| {
        node.get("allOf")?
            .as_array()?
            .iter()
            .find_map(|v| v.get("$ref"))
    })?;
    let name = reference.as_str()?.strip_prefix(REF_PREFIX)?;
    openapi::all_definitions().get(name)
}

fn ext<'a>(node: &'a Value, name: &str) -> Option<&'a str> {
    node.get(name).and_then(Value::as_str)
}

/// The list kind declared on a list field, if any.
fn declared_list_kind(node: &'static Value) -> Option<ListKind> {
    match ext(node, "x-kubernetes-list-type") {
        Some("atomic") => return Some(ListKind::Atomic),
        Some("set") => return Some(ListKind::Set),
        Some("map") => {
            let keys = node
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .map(|keys| keys.iter().filter_map(Value::as_str).collect::<Arc<[_]>>())
                .unwrap_or_else(|| Arc::new([]));
            return Some(ListKind::Map(keys));
        }
        _ => {}
    }
    let strategy = ext(node, "x-kubernetes-patch-strategy")?;
    if !strategy.split(',').any(|s| s.trim() == "merge") {
        return None;
    }
    Some(match ext(node, "x-kubernetes-patch-merge-key") {
        Some(key) => ListKind::Map(Arc::new([key])),
        None => ListKind::Set,
    })
}

/// The shape of `ty`, computed once per schema node and thread: walks ask for it at every
/// value they visit, and following references costs several map lookups.
fn shape(ty: Ty) -> Shape {
    thread_local! {
        static SHAPES: RefCell<HashMap<usize, Shape, BuildHasherDefault<AddressHasher>>> =
            RefCell::new(HashMap::default());
    }
    let Ty::Node(node) = ty else {
        return Shape::Deduced;
    };
    // The definitions are static, so a node's address identifies it for the process.
    let id = std::ptr::from_ref(node) as usize;
    SHAPES.with(|cache| {
        if let Some(s) = cache.borrow().get(&id) {
            return s.clone();
        }
        let s = compute_shape(node);
        cache.borrow_mut().insert(id, s.clone());
        s
    })
}

/// Hashes the addresses the shape cache is keyed by (one multiply, not SipHash: the keys
/// are not attacker-chosen).
#[derive(Default)]
struct AddressHasher(u64);

impl Hasher for AddressHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_usize(&mut self, i: usize) {
        // Addresses are aligned: drop the always-zero bits, and fold the well-mixed high
        // bits of the product into the low ones the table indexes by.
        let x = ((i as u64) >> 3).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.0 = x ^ (x >> 29);
    }
}

fn compute_shape(node: &'static Value) -> Shape {
    let target = referenced(node).unwrap_or(node);
    let atomic = ext(node, "x-kubernetes-map-type") == Some("atomic")
        || ext(target, "x-kubernetes-map-type") == Some("atomic");
    let type_name = ext(target, "type");
    if type_name == Some("array") || target.get("items").is_some() {
        let elem = target
            .get("items")
            .filter(|v| v.is_object())
            .map_or(Ty::Deduced, Ty::Node);
        let kind = declared_list_kind(node)
            .or_else(|| declared_list_kind(target))
            .unwrap_or(ListKind::Atomic);
        return Shape::List { elem, kind };
    }
    let fields = target.get("properties").and_then(Value::as_object);
    let additional = target.get("additionalProperties");
    if fields.is_some() || additional.is_some_and(|a| !a.is_boolean()) {
        let elem = additional
            .filter(|v| v.is_object())
            .map_or(Ty::Deduced, Ty::Node);
        return Shape::Map {
            fields,
            elem,
            atomic,
        };
    }
    match type_name {
        Some("string" | "integer" | "number" | "boolean") => Shape::Scalar,
        Some(_) => Shape::Deduced,
        None if target.get("oneOf").is_some() || target.get("anyOf").is_some() => Shape::Scalar,
        None => Shape::Deduced,
    }
}

/// What to do with `value` typed `ty`. A value of another kind than its schema says (a
/// string where an object belongs) is a leaf; null is an empty list or map.
pub(crate) fn node(ty: Ty, value: &Value) -> Node {
    match shape(ty) {
        Shape::Scalar => Node::Leaf,
        Shape::List { elem, kind } if value.is_array() || value.is_null() => {
            Node::List { elem, kind }
        }
        Shape::Map {
            fields,
            elem,
            atomic,
        } if value.is_object() || value.is_null() => Node::Map {
            fields,
            elem,
            atomic,
        },
        Shape::Deduced => match value {
            Value::Object(_) => Node::Map {
                fields: None,
                elem: Ty::Deduced,
                atomic: false,
            },
            Value::Array(_) => Node::List {
                elem: Ty::Deduced,
                kind: ListKind::Atomic,
            },
            _ => Node::Leaf,
        },
        _ => Node::Leaf,
    }
}

/// The type of field `name` of a map node, and whether it is a declared struct field.
pub(crate) fn field_type(
    fields: Option<&'static Map<String, Value>>,
    elem: Ty,
    name: &str,
) -> (Ty, bool) {
    match fields.and_then(|f| f.get(name)) {
        Some(prop) => (Ty::Node(prop), true),
        None => (elem, false),
    }
}

/// The declared fields and value type of a type, regardless of any value (for set
/// operations, which see no values).
pub(crate) fn map_fields(ty: Ty) -> Option<(Option<&'static Map<String, Value>>, Ty)> {
    match shape(ty) {
        Shape::Map { fields, elem, .. } => Some((fields, elem)),
        Shape::Deduced => Some((None, Ty::Deduced)),
        _ => None,
    }
}

/// The item type of a list type, regardless of any value.
pub(crate) fn list_elem(ty: Ty) -> Option<Ty> {
    match shape(ty) {
        Shape::List { elem, .. } => Some(elem),
        Shape::Deduced => Some(Ty::Deduced),
        _ => None,
    }
}

/// Key fields with a schema default, used when an item omits them (upstream reads the
/// default from the schema; the published definitions here carry no defaults).
fn key_default(name: &str) -> Option<Value> {
    (name == "protocol").then(|| Value::String("TCP".into()))
}

/// The path element naming one item of a granular list.
pub(crate) fn item_element(kind: &ListKind, item: &Value) -> Result<PathElement, String> {
    match kind {
        ListKind::Map(keys) if !keys.is_empty() => {
            let map = match item {
                Value::Null => {
                    return Err("associative list with keys may not have a null element".into());
                }
                Value::Object(m) => m,
                _ => {
                    return Err("associative list with keys may not have non-map elements".into());
                }
            };
            let mut fields = Vec::with_capacity(keys.len());
            for key in keys.iter() {
                if let Some(v) = map.get(*key) {
                    fields.push((key.to_string(), v.clone()));
                } else if let Some(v) = key_default(key) {
                    fields.push((key.to_string(), v));
                }
            }
            if fields.is_empty() {
                let quoted: Vec<String> = keys
                    .iter()
                    .map(|k| crate::strategy::errors::go_quote(k))
                    .collect();
                return Err(format!(
                    "associative list with keys has an element that omits all key fields [{}] (and doesn't have default values for any key fields)",
                    quoted.join(" ")
                ));
            }
            Ok(PathElement::key(fields))
        }
        _ => match item {
            Value::Object(_) => {
                Err("associative list without keys has an element that's a map type".into())
            }
            Value::Array(_) => Err("not supported: associative list with lists as elements".into()),
            Value::Null => {
                Err("associative list without keys has an element that's an explicit null".into())
            }
            scalar => Ok(PathElement::Value(scalar.clone())),
        },
    }
}

/// Writes to `buf` (cleared first) the FieldsV1 key of an item, as
/// `item_element(kind, item)?.write_key(buf)` would, without building the element. `None`
/// where [`item_element`] fails; else whether the key is *exact*: it has no floats, so
/// that items whose keys are spelled apart have different elements.
pub(crate) fn write_item_key(kind: &ListKind, item: &Value, buf: &mut String) -> Option<bool> {
    use std::fmt::Write;
    buf.clear();
    let exact = |v: &Value| !has_float(v);
    match kind {
        ListKind::Map(keys) if !keys.is_empty() => {
            let Value::Object(map) = item else {
                return None;
            };
            let mut sorted: [&str; 4] = [""; 4];
            let Some(names) = sorted.get_mut(..keys.len()) else {
                // More key fields than any published list has: build the element.
                let pe = item_element(kind, item).ok()?;
                pe.write_key(buf);
                return Some(
                    !matches!(&pe, PathElement::Key(f) if f.iter().any(|(_, v)| has_float(v))),
                );
            };
            names.copy_from_slice(keys);
            names.sort_unstable();
            buf.push_str("k:{");
            let (mut any, mut all_exact) = (false, true);
            for name in names.iter() {
                let default;
                let value = match map.get(*name) {
                    Some(v) => v,
                    None => match key_default(name) {
                        Some(v) => {
                            default = v;
                            &default
                        }
                        None => continue,
                    },
                };
                if any {
                    buf.push(',');
                }
                write_json_string(buf, name);
                buf.push(':');
                // Writing to a String cannot fail.
                let _ = write!(buf, "{value}");
                all_exact &= exact(value);
                any = true;
            }
            buf.push('}');
            any.then_some(all_exact)
        }
        _ => match item {
            Value::Object(_) | Value::Array(_) | Value::Null => None,
            scalar => {
                let _ = write!(buf, "v:{scalar}");
                Some(exact(scalar))
            }
        },
    }
}

/// Whether two items have the same path element ([`item_element`]), without building
/// either; `false` when either has none.
pub(crate) fn same_item(kind: &ListKind, a: &Value, b: &Value) -> bool {
    use std::cmp::Ordering::Equal;
    match kind {
        ListKind::Map(keys) if !keys.is_empty() => {
            let (Value::Object(x), Value::Object(y)) = (a, b) else {
                return false;
            };
            let mut named = false;
            for key in keys.iter() {
                match (x.get(*key), y.get(*key)) {
                    (Some(p), Some(q)) if compare_values(p, q) != Equal => return false,
                    (Some(_), Some(_)) => {}
                    (None, None) => {
                        if key_default(key).is_none() {
                            continue;
                        }
                    }
                    (Some(v), None) | (None, Some(v)) => match key_default(key) {
                        Some(d) if compare_values(v, &d) == Equal => {}
                        _ => return false,
                    },
                }
                named = true;
            }
            named
        }
        _ => {
            let scalar = |v: &Value| !matches!(v, Value::Object(_) | Value::Array(_) | Value::Null);
            scalar(a) && scalar(b) && compare_values(a, b) == Equal
        }
    }
}

/// Whether a value is or holds a float (a number that is no integer).
fn has_float(v: &Value) -> bool {
    match v {
        Value::Number(n) => n.is_f64(),
        Value::Array(items) => items.iter().any(has_float),
        Value::Object(m) => m.values().any(has_float),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(root: &str, path: &[&str]) -> Ty {
        let mut ty = Ty::root(root);
        for name in path {
            let value = json!({});
            ty = match node(ty, &value) {
                Node::Map { fields, elem, .. } => field_type(fields, elem, name).0,
                _ => panic!("{name} is not in a map"),
            };
        }
        ty
    }

    #[test]
    fn deployment_shapes() {
        let deploy = "io.k8s.api.apps.v1.Deployment";
        let containers = at(deploy, &["spec", "template", "spec"]);
        let Node::Map { fields, elem, .. } = node(containers, &json!({})) else {
            panic!("pod spec is a map");
        };
        let (c, declared) = field_type(fields, elem, "containers");
        assert!(declared);
        match node(c, &json!([])) {
            Node::List { kind, .. } => assert_eq!(kind, ListKind::Map(Arc::new(["name"]))),
            other => panic!("{other:?}"),
        }
        let (t, _) = field_type(fields, elem, "tolerations");
        assert!(node(t, &json!([])).is_atomic());
        let (ns, _) = field_type(fields, elem, "nodeSelector");
        assert!(node(ns, &json!({})).is_atomic());
        let selector = at(deploy, &["spec", "selector"]);
        assert!(node(selector, &json!({})).is_atomic());
        let labels = at(deploy, &["metadata", "labels"]);
        match node(labels, &json!({})) {
            Node::Map { fields, atomic, .. } => assert!(fields.is_none() && !atomic),
            other => panic!("{other:?}"),
        }
        let replicas = at(deploy, &["spec", "replicas"]);
        assert!(matches!(node(replicas, &json!(1)), Node::Leaf));
        // A value of the wrong kind is a leaf, null an empty container.
        assert!(matches!(node(labels, &json!("x")), Node::Leaf));
        assert!(matches!(node(labels, &json!(null)), Node::Map { .. }));
        let fin = at(deploy, &["metadata", "finalizers"]);
        assert!(matches!(
            node(fin, &json!([])),
            Node::List {
                kind: ListKind::Set,
                ..
            }
        ));
    }

    #[test]
    fn unknown_is_deduced() {
        let ty = Ty::root("example.com.v1.Widget");
        assert!(matches!(
            node(ty, &json!({})),
            Node::Map { atomic: false, .. }
        ));
        assert!(node(ty, &json!([1])).is_atomic());
        assert!(matches!(node(ty, &json!(1)), Node::Leaf));
    }

    #[test]
    fn item_elements() {
        let ports = ListKind::Map(Arc::new(["containerPort", "protocol"]));
        assert_eq!(
            item_element(&ports, &json!({"containerPort": 80}))
                .unwrap()
                .to_key(),
            r#"k:{"containerPort":80,"protocol":"TCP"}"#
        );
        let names = ListKind::Map(Arc::new(["name"]));
        let err = item_element(&names, &json!({"image": "x"})).unwrap_err();
        assert!(err.contains(r#"omits all key fields ["name"]"#), "{err}");
        assert!(item_element(&names, &json!("x")).is_err());
        assert!(item_element(&names, &json!(null)).is_err());
        assert_eq!(
            item_element(&ListKind::Set, &json!("a")).unwrap(),
            PathElement::Value(json!("a"))
        );
        for bad in [json!({}), json!([]), json!(null)] {
            assert!(item_element(&ListKind::Set, &bad).is_err());
        }
    }
}
