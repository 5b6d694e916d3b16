//! Merging lists with strategy `merge`, and the ordering rules of the result.
//!
//! Order (as upstream): items named by the patch follow the patch's order, items only on
//! the server keep theirs, and the two are interleaved by the server's original positions
//! (a server-only item goes before a patch item it preceded on the server).

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::super::error::{
    NO_LIST_OF_LISTS, PatchError, bad_patch_type, go_fmt, go_type, no_merge_key,
};
use super::super::schema::FieldStrategy;
use super::{DIRECTIVE, Merger};

impl Merger<'_> {
    /// Merges the patch list `patch` into the list `original` of a field with strategy
    /// `merge`.
    pub(crate) fn merge_list<'p>(
        &self,
        original: Vec<Value>,
        patch: &'p [Value],
        strategy: FieldStrategy,
        path: &mut Vec<&'p str>,
    ) -> Result<Vec<Value>, PatchError> {
        if original.is_empty() && patch.is_empty() {
            return Ok(original);
        }
        if element_kind(&original, patch)? != Kind::Object {
            return Ok(merge_primitives(original, patch));
        }
        let Some(key) = strategy.merge_key else {
            return Err(PatchError::Internal(format!(
                "cannot merge lists without merge key for {}",
                path.join(".")
            )));
        };

        // Special elements first: `$patch: delete` removes items by key, `$patch: replace`
        // makes the rest of the patch the whole list.
        let mut original = original;
        let mut items: Vec<&'p Map<String, Value>> = Vec::with_capacity(patch.len());
        let mut replace = false;
        for item in patch {
            let Value::Object(m) = item else {
                return Err(PatchError::Internal(format!(
                    "expected a map[string]interface {{}}, but received a {}",
                    go_type(item)
                )));
            };
            let Some(directive) = m.get(DIRECTIVE) else {
                items.push(m);
                continue;
            };
            match directive.as_str() {
                Some("delete") => {
                    let value = m.get(key).ok_or_else(|| no_merge_key(item, key))?;
                    original.retain(|o| !o.get(key).is_some_and(|v| same_value(v, value)));
                }
                Some("replace") => replace = true,
                Some("merge") => {
                    return Err(PatchError::Internal(
                        "merging lists cannot yet be specified in the patch".into(),
                    ));
                }
                _ => return Err(bad_patch_type(directive, item)),
            }
        }
        if replace {
            original = items
                .drain(..)
                .map(|m| self.merge_map(Map::new(), m, path).map(Value::Object))
                .collect::<Result<_, _>>()?;
        }
        let server_order = identities(&original, key);

        let mut merged = original;
        for m in &items {
            let value = m
                .get(key)
                .ok_or_else(|| no_merge_key(&Value::Object((*m).clone()), key))?;
            let found = merged
                .iter()
                .position(|o| o.get(key).is_some_and(|v| same_value(v, value)));
            match found.and_then(|i| merged.get_mut(i)) {
                Some(Value::Object(cur)) => {
                    let cur_map = std::mem::take(cur);
                    *cur = self.merge_map(cur_map, m, path)?;
                }
                _ => merged.push(Value::Object(self.merge_map(Map::new(), m, path)?)),
            }
        }

        let patch_order: Vec<Value> = items.iter().map(|m| Value::Object((*m).clone())).collect();
        let (in_patch, server_only) = partition(merged, &patch_order, Some(key))?;
        normalize_element_order(
            in_patch,
            server_only,
            &patch_order,
            &server_order,
            Some(key),
        )
    }
}

/// The server order upstream's `$setElementOrder` handling compares against.
///
/// Upstream merges the list in place: deletions shift later items left and new items are
/// appended into the freed slots, and the ordering step then reads the first `N` slots of
/// that same array (`N` = the current length). kubectl's patches for "remove one item, add
/// another" are ordered by that view, so reproduce it: shifted survivors, then as many new
/// items as there were deletions, then stale copies.
pub(crate) fn aliased_server_order(current: &[Value], patch: &[Value], key: &str) -> Vec<Value> {
    let is = |p: &Value, d: &str| p.get(DIRECTIVE).and_then(Value::as_str) == Some(d);
    // Only the items' keys matter to the ordering: copy those, not whole items.
    let mut buf: Vec<Value> = current.iter().map(|o| identity_of(o, key)).collect();
    if patch.iter().any(|p| is(p, "replace")) {
        return buf;
    }
    let n = current.len();
    let mut len = n;
    for p in patch.iter().filter(|p| is(p, "delete")) {
        let Some(value) = p.get(key) else { continue };
        while let Some(i) = buf[..len]
            .iter()
            .position(|o| o.get(key).is_some_and(|v| same_value(v, value)))
        {
            // `append(s[:i], s[i+1:]...)`: shift left, the last slot keeps its old value.
            buf[i..len].rotate_left(1);
            if len >= i + 2 {
                buf[len - 1] = buf[len - 2].clone();
            }
            len -= 1;
        }
    }
    // Appended items beyond the current length land outside the view.
    let mut beyond: Vec<&Value> = Vec::new();
    for p in patch.iter().filter(|p| p.get(DIRECTIVE).is_none()) {
        let Some(value) = p.get(key) else { continue };
        let seen = buf[..len.min(n)]
            .iter()
            .chain(beyond.iter().copied())
            .any(|o| o.get(key).is_some_and(|v| same_value(v, value)));
        if seen {
            continue;
        }
        if len < n {
            buf[len] = identity_of(p, key);
        } else {
            beyond.push(p);
        }
        len += 1;
    }
    buf
}

/// A primitive list with strategy `merge` is a set: the union, without duplicates.
fn merge_primitives(original: Vec<Value>, patch: &[Value]) -> Vec<Value> {
    let server_order = original.clone();
    let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
    for v in original.into_iter().chain(patch.iter().cloned()) {
        if !merged.iter().any(|m| same_value(m, &v)) {
            merged.push(v);
        }
    }
    // Neither partition nor ordering can fail without a merge key.
    let (in_patch, server_only): (Vec<Value>, Vec<Value>) = merged
        .into_iter()
        .partition(|v| patch.iter().any(|p| same_value(p, v)));
    let in_patch = sort_by_order(in_patch, patch, None);
    let server_only = sort_by_order(server_only, &server_order, None);
    merge_sorted(server_only, in_patch, &server_order, None)
}

/// The common element type of two lists (upstream requires one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Object,
    String,
    Number,
    Bool,
    Null,
}

pub(crate) fn element_kind(a: &[Value], b: &[Value]) -> Result<Kind, PatchError> {
    let mut kind = None;
    for v in a.iter().chain(b) {
        let k = match v {
            Value::Array(_) => return Err(PatchError::Unprocessable(NO_LIST_OF_LISTS.into())),
            Value::Object(_) => Kind::Object,
            Value::String(_) => Kind::String,
            Value::Number(_) => Kind::Number,
            Value::Bool(_) => Kind::Bool,
            Value::Null => Kind::Null,
        };
        match kind {
            None => kind = Some(k),
            Some(prev) if prev != k => {
                return Err(PatchError::Internal(format!(
                    "list element types are not identical: [{} {}]",
                    go_fmt(&Value::Array(a.to_vec())),
                    go_fmt(&Value::Array(b.to_vec()))
                )));
            }
            Some(_) => {}
        }
    }
    kind.ok_or_else(|| PatchError::Internal("no elements in any of the given slices".into()))
}

/// Equality as Go's `==` on decoded JSON: numbers compare by value (1 == 1.0).
pub(crate) fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if let (Some(x), Some(y)) = (x.as_i64(), y.as_i64()) {
                x == y
            } else if let (Some(x), Some(y)) = (x.as_u64(), y.as_u64()) {
                x == y
            } else {
                x.as_f64() == y.as_f64()
            }
        }
        _ => a == b,
    }
}

/// What identifies an item: its merge key's value for objects, itself for primitives.
fn identity<'v>(item: &'v Value, key: Option<&str>) -> Option<&'v Value> {
    match key {
        Some(k) => item.get(k),
        None => Some(item),
    }
}

/// What the ordering steps need of a server list of objects: each item reduced to its
/// merge key (`{key: value}`), which orders and matches exactly like the item, without
/// copying whole items. Returns full copies if an item lacks the key, as those end in an
/// error that prints them.
pub(crate) fn identities(list: &[Value], key: &str) -> Vec<Value> {
    if !list.iter().all(|o| o.get(key).is_some()) {
        return list.to_vec();
    }
    list.iter().map(|o| identity_of(o, key)).collect()
}

/// `item` reduced to its merge key (see [`identities`]); items without it stay whole.
pub(crate) fn identity_of(item: &Value, key: &str) -> Value {
    match item.get(key) {
        Some(v) => {
            let mut m = Map::new();
            m.insert(key.to_string(), v.clone());
            Value::Object(m)
        }
        None => item.clone(),
    }
}

/// Positions of items in an order list, as [`index_of`] finds them (the first item of
/// the same identity): by hash when every identity in the list is a string (merge keys
/// are names), else by scanning.
struct Positions<'o> {
    order: &'o [Value],
    key: Option<&'o str>,
    by_name: Option<HashMap<&'o str, usize>>,
}

impl<'o> Positions<'o> {
    fn new(order: &'o [Value], key: Option<&'o str>) -> Positions<'o> {
        let mut names = HashMap::with_capacity(order.len());
        let mut all_strings = true;
        for (i, o) in order.iter().enumerate() {
            match identity(o, key) {
                Some(Value::String(s)) => {
                    names.entry(s.as_str()).or_insert(i);
                }
                _ => {
                    all_strings = false;
                    break;
                }
            }
        }
        Positions {
            order,
            key,
            by_name: all_strings.then_some(names),
        }
    }

    fn of(&self, item: &Value) -> Option<usize> {
        match &self.by_name {
            // Only a string identity equals a string.
            Some(names) => match identity(item, self.key) {
                Some(Value::String(s)) => names.get(s.as_str()).copied(),
                _ => None,
            },
            None => index_of(self.order, item, self.key),
        }
    }
}

fn index_of(order: &[Value], item: &Value, key: Option<&str>) -> Option<usize> {
    let id = identity(item, key);
    order.iter().position(|o| match (identity(o, key), id) {
        (Some(a), Some(b)) => same_value(a, b),
        (None, None) => true,
        _ => false,
    })
}

/// Splits `items` into those named in `by` and the rest, keeping their order.
pub(crate) fn partition(
    items: Vec<Value>,
    by: &[Value],
    key: Option<&str>,
) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    if let Some(k) = key {
        for item in items.iter().chain(by) {
            if !item.is_object() {
                return Err(PatchError::Internal(format!(
                    "expected a map[string]interface {{}}, but received a {}",
                    go_type(item)
                )));
            }
            if item.get(k).is_none() {
                return Err(no_merge_key(item, k));
            }
        }
    }
    let positions = Positions::new(by, key);
    Ok(items
        .into_iter()
        .partition(|item| positions.of(item).is_some()))
}

/// Sorts `patch` items by `patch_order` and server-only items by `server_order`, then
/// interleaves them (see the module docs).
pub(crate) fn normalize_element_order(
    patch: Vec<Value>,
    server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    key: Option<&str>,
) -> Result<Vec<Value>, PatchError> {
    if let Some(k) = key {
        for item in patch
            .iter()
            .chain(patch_order)
            .chain(&server_only)
            .chain(server_order)
        {
            if item.get(k).is_none() {
                return Err(no_merge_key(item, k));
            }
        }
    }
    let patch = sort_by_order(patch, patch_order, key);
    let server_only = sort_by_order(server_only, server_order, key);
    Ok(merge_sorted(server_only, patch, server_order, key))
}

/// Stable sort by position in `order`; items not in it go last.
fn sort_by_order(mut items: Vec<Value>, order: &[Value], key: Option<&str>) -> Vec<Value> {
    let positions = Positions::new(order, key);
    items.sort_by_cached_key(|item| positions.of(item).unwrap_or(usize::MAX));
    items
}

/// Interleaves two sorted lists: take from `left` (server-only) while its head preceded
/// the head of `right` (patch) on the server; otherwise take from `right`.
fn merge_sorted(
    left: Vec<Value>,
    right: Vec<Value>,
    server_order: &[Value],
    key: Option<&str>,
) -> Vec<Value> {
    let positions = Positions::new(server_order, key);
    let mut out = Vec::with_capacity(left.len() + right.len());
    let mut left = left.into_iter().peekable();
    let mut right = right.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => match (positions.of(l), positions.of(r)) {
                (Some(li), Some(ri)) => li < ri,
                _ => false,
            },
        };
        let next = if take_left { left.next() } else { right.next() };
        out.extend(next);
    }
    out
}

/// Checks a patch list against its `$setElementOrder`: the patch's items (bar deletions)
/// must appear in the order list, in the same relative order.
pub(crate) fn validate_patch_with_order(
    patch: &[Value],
    order: &[Value],
    key: Option<&str>,
) -> Result<(), PatchError> {
    if patch.is_empty() || order.is_empty() {
        return Ok(());
    }
    let mut kept: Vec<&Value> = Vec::with_capacity(patch.len());
    for item in patch {
        if key.is_some() {
            let Value::Object(m) = item else {
                return Err(PatchError::Internal(format!(
                    "expected a map[string]interface {{}}, but received a {}",
                    go_type(item)
                )));
            };
            if m.get(DIRECTIVE).and_then(Value::as_str) == Some("delete") {
                continue;
            }
        }
        kept.push(item);
    }
    let (mut p, mut o) = (0, 0);
    while let (Some(item), Some(wanted)) = (kept.get(p), order.get(o)) {
        if item.get(DIRECTIVE).is_some() {
            p += 1;
            continue;
        }
        let equal = match key {
            None => same_value(item, wanted),
            Some(k) => {
                let a = item.get(k).ok_or_else(|| no_merge_key(item, k))?;
                if !wanted.is_object() {
                    return Err(PatchError::Internal(format!(
                        "expected a map[string]interface {{}}, but received a {}",
                        go_type(wanted)
                    )));
                }
                let b = wanted.get(k).ok_or_else(|| no_merge_key(wanted, k))?;
                same_value(a, b)
            }
        };
        if equal {
            p += 1;
        }
        o += 1;
    }
    if p < kept.len() {
        return Err(PatchError::Internal(format!(
            "The order in patch list:\n{}\n doesn't match $setElementOrder list:\n{}\n",
            go_fmt(&Value::Array(patch.to_vec())),
            go_fmt(&Value::Array(order.to_vec()))
        )));
    }
    Ok(())
}

#[cfg(test)]
mod positions_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn positions_agree_with_scanning() {
        let orders = [
            json!([{"name": "a"}, {"name": "b"}, {"name": "a"}, {"name": "c"}]),
            json!([{"name": "a"}, {"name": 1}, {"name": 1.0}]),
            json!([{"name": "a"}, {"other": "b"}]),
            json!([{"port": 80}, {"port": 80.0}, {"port": 81}]),
            json!([]),
        ];
        let items = [
            json!({"name": "a"}),
            json!({"name": "c", "x": 1}),
            json!({"name": 1}),
            json!({"name": "z"}),
            json!({"other": "b"}),
            json!({"port": 80}),
            json!({"port": 80.0}),
            json!("a"),
        ];
        for order in &orders {
            let order = order.as_array().unwrap();
            for key in [Some("name"), Some("port"), None] {
                let positions = Positions::new(order, key);
                for item in &items {
                    assert_eq!(
                        positions.of(item),
                        index_of(order, item, key),
                        "{item} in {order:?} by {key:?}"
                    );
                }
            }
        }
        let prims = [json!("a"), json!("b"), json!("a")];
        let positions = Positions::new(&prims, None);
        assert_eq!(positions.of(&json!("a")), Some(0));
        assert_eq!(positions.of(&json!(1)), None);
    }

    #[test]
    fn identities_keep_keyless_items_whole() {
        let list = [json!({"name": "a", "image": "x"}), json!({"image": "y"})];
        assert_eq!(identities(&list, "name"), list.to_vec());
        let list = [json!({"name": "a", "image": "x"})];
        assert_eq!(identities(&list, "name"), vec![json!({"name": "a"})]);
    }
}
