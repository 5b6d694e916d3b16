//! Strategic merge patch (`application/strategic-merge-patch+json`), the server side only:
//! applying a patch that kubectl (or anyone) computed.
//!
//! Behaviour follows k8s.io/apimachinery/pkg/util/strategicpatch as the apiserver runs it
//! (parallel lists merged, unmatched nulls ignored):
//! - maps merge recursively; `null` deletes a field;
//! - lists whose field has strategy `merge` merge: objects by the merge key (patch items
//!   merged into the matching item or appended), primitives as a set; other lists are
//!   replaced; a map field with strategy `replace` is replaced;
//! - `$patch: replace` replaces a map (or, as a list element, the whole list),
//!   `$patch: delete` empties a map or deletes list items by merge key;
//!   `$patch: merge` is rejected, as upstream;
//! - `$retainKeys: [...]` drops the map's other keys (and every patched key must be listed);
//! - `$setElementOrder/<list>: [...]` fixes the order of the merged list;
//! - `$deleteFromPrimitiveList/<list>: [...]` removes values from a primitive list.
//!
//! Deliberate differences from upstream, all on input kubectl never sends: directives
//! inside newly added values are applied rather than copied into the object verbatim
//! (upstream's typed decoding would reject or drop them later), an unknown `$` key is a
//! 400 instead of an unknown field, and a malformed `$setElementOrder`/
//! `$deleteFromPrimitiveList` value is a 400 rather than a 500.

mod list;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_lists;

use std::collections::HashSet;

use serde_json::{Map, Value};

use super::error::{
    BAD_PRIMITIVE_LIST, BAD_RETAIN_KEYS, BAD_SET_ELEMENT_ORDER, PatchError, bad_patch_type,
    go_type, json_kind,
};
use super::schema::{FieldStrategy, MergeKeys};

pub(crate) use list::same_value;

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ORDER_PREFIX: &str = "$setElementOrder";
const DELETE_PREFIX: &str = "$deleteFromPrimitiveList";
/// Data fields that legitimately start with `$` (JSONSchemaProps of CRDs).
const DOLLAR_FIELDS: &[&str] = &["$ref", "$schema"];

/// Decodes a strategic merge patch body: a JSON object (or `null`, a no-op).
pub fn decode_strategic_patch(body: &[u8]) -> Result<Value, PatchError> {
    let patch: Value =
        serde_json::from_slice(body).map_err(|e| PatchError::BadRequest(e.to_string()))?;
    match patch {
        Value::Object(_) | Value::Null => Ok(patch),
        other => Err(PatchError::BadRequest(format!(
            "json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
            json_kind(&other)
        ))),
    }
}

/// Applies the strategic merge patch `patch` (a decoded object) to `original`.
pub fn strategic_merge(
    original: &Value,
    patch: &Value,
    schema: &dyn MergeKeys,
) -> Result<Value, PatchError> {
    let patch = match patch {
        Value::Object(p) => p,
        // Upstream decodes `null` into a nil map, which merges as nothing.
        Value::Null => return Ok(original.clone()),
        other => {
            return Err(PatchError::BadRequest(format!(
                "json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
                json_kind(other)
            )));
        }
    };
    let original = match original {
        Value::Object(o) => o.clone(),
        _ => Map::new(),
    };
    let merger = Merger { schema };
    let mut path = Vec::new();
    merger
        .merge_map(original, patch, &mut path)
        .map(Value::Object)
}

/// One merge run: the schema answers field strategies by path from the root.
pub(crate) struct Merger<'s> {
    pub(crate) schema: &'s dyn MergeKeys,
}

impl Merger<'_> {
    fn strategy(&self, path: &[&str]) -> FieldStrategy {
        self.schema.lookup(path).unwrap_or_default()
    }

    /// Merges `patch` into `original` (the map at `path`).
    pub(crate) fn merge_map<'p>(
        &self,
        original: Map<String, Value>,
        patch: &'p Map<String, Value>,
        path: &mut Vec<&'p str>,
    ) -> Result<Map<String, Value>, PatchError> {
        if let Some(directive) = patch.get(DIRECTIVE) {
            return match directive.as_str() {
                // The patch becomes the map; its own contents are still patch syntax
                // (nulls, nested directives), so merge it into nothing.
                Some("replace") => self.merge_fields(Map::new(), patch, path),
                Some("delete") => Ok(Map::new()),
                _ => Err(bad_patch_type(directive, &Value::Object(patch.clone()))),
            };
        }
        self.merge_fields(original, patch, path)
    }

    fn merge_fields<'p>(
        &self,
        mut original: Map<String, Value>,
        patch: &'p Map<String, Value>,
        path: &mut Vec<&'p str>,
    ) -> Result<Map<String, Value>, PatchError> {
        retain_keys(&mut original, patch)?;
        // Lists already merged (and ordered) by their `$setElementOrder` directive.
        let mut done: HashSet<&str> = HashSet::new();
        for (key, order) in patch {
            if let Some(rest) = key.strip_prefix(SET_ORDER_PREFIX) {
                let field = rest
                    .strip_prefix('/')
                    .ok_or_else(|| PatchError::BadRequest(BAD_SET_ELEMENT_ORDER.into()))?;
                self.set_element_order(&mut original, patch, field, order, path)?;
                done.insert(field);
            }
        }
        // Deletions before additions, so a value both deleted and added stays.
        for (key, values) in patch {
            if let Some(rest) = key.strip_prefix(DELETE_PREFIX) {
                let field = rest
                    .strip_prefix('/')
                    .ok_or_else(|| PatchError::BadRequest(BAD_PRIMITIVE_LIST.into()))?;
                delete_from_primitive_list(&mut original, field, values)?;
            }
        }
        for (key, value) in patch {
            if key.starts_with('$') {
                if key == DIRECTIVE
                    || key == RETAIN_KEYS
                    || key.starts_with(SET_ORDER_PREFIX)
                    || key.starts_with(DELETE_PREFIX)
                {
                    continue;
                }
                if !DOLLAR_FIELDS.contains(&key.as_str()) {
                    return Err(PatchError::BadRequest(format!(
                        "unknown patch directive {key:?} in map: {}",
                        super::error::go_fmt(&Value::Object(patch.clone()))
                    )));
                }
            }
            if done.contains(key.as_str()) {
                continue;
            }
            self.merge_field(&mut original, key, value, path)?;
        }
        Ok(original)
    }

    /// Merges one patch field into `original`.
    fn merge_field<'p>(
        &self,
        original: &mut Map<String, Value>,
        key: &'p str,
        value: &'p Value,
        path: &mut Vec<&'p str>,
    ) -> Result<(), PatchError> {
        if value.is_null() {
            original.remove(key);
            return Ok(());
        }
        path.push(key);
        let merged = match (original.get_mut(key), value) {
            (Some(Value::Object(cur)), Value::Object(p)) => {
                if self.strategy(path).replace {
                    self.new_value(value, path)
                } else {
                    let cur = std::mem::take(cur);
                    self.merge_map(cur, p, path).map(|m| Some(Value::Object(m)))
                }
            }
            (Some(Value::Array(cur)), Value::Array(p)) => {
                let strategy = self.strategy(path);
                if strategy.merge {
                    let cur = std::mem::take(cur);
                    self.merge_list(cur, p, strategy, path)
                        .map(|l| Some(Value::Array(l)))
                } else {
                    self.new_list(p, path).map(|l| Some(Value::Array(l)))
                }
            }
            // Absent, null, or of another type: the patch value replaces it.
            _ => self.new_value(value, path),
        };
        path.pop();
        match merged? {
            Some(v) => {
                original.insert(key.to_string(), v);
            }
            None => {
                original.remove(key);
            }
        }
        Ok(())
    }

    /// A patch value with nothing to merge into; `None` when it deletes itself.
    pub(crate) fn new_value<'p>(
        &self,
        value: &'p Value,
        path: &mut Vec<&'p str>,
    ) -> Result<Option<Value>, PatchError> {
        match value {
            Value::Object(p) => {
                if p.get(DIRECTIVE).and_then(Value::as_str) == Some("delete") {
                    return Ok(None);
                }
                self.merge_map(Map::new(), p, path)
                    .map(|m| Some(Value::Object(m)))
            }
            Value::Array(p) => {
                let strategy = self.strategy(path);
                let list = if strategy.merge {
                    self.merge_list(Vec::new(), p, strategy, path)?
                } else {
                    self.new_list(p, path)?
                };
                Ok(Some(Value::Array(list)))
            }
            scalar => Ok(Some(scalar.clone())),
        }
    }

    /// A list that replaces the current one. Items carrying `$patch` are dropped as
    /// upstream does; other objects are cleaned of patch syntax.
    fn new_list<'p>(
        &self,
        items: &'p [Value],
        path: &mut Vec<&'p str>,
    ) -> Result<Vec<Value>, PatchError> {
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            match item {
                Value::Object(m) if m.contains_key(DIRECTIVE) => {}
                Value::Object(m) => out.push(Value::Object(self.merge_map(Map::new(), m, path)?)),
                other => out.push(other.clone()),
            }
        }
        Ok(out)
    }

    /// Handles `$setElementOrder/<field>`: merges the field's list (if patched) and orders
    /// the result by the directive, keeping server-only items near their old neighbours.
    fn set_element_order<'p>(
        &self,
        original: &mut Map<String, Value>,
        patch: &'p Map<String, Value>,
        field: &'p str,
        order: &'p Value,
        path: &mut Vec<&'p str>,
    ) -> Result<(), PatchError> {
        let Value::Array(order) = order else {
            return Err(PatchError::BadRequest(BAD_SET_ELEMENT_ORDER.into()));
        };
        let current = match original.get_mut(field) {
            None | Some(Value::Null) => None,
            // Taken, not copied: the ordered result replaces it (or the patch fails).
            Some(Value::Array(items)) => Some(std::mem::take(items)),
            Some(other) => return Err(expected_list(other)),
        };
        let patched = match patch.get(field) {
            None => None,
            Some(Value::Array(items)) => Some(items.as_slice()),
            Some(other) => return Err(expected_list(other)),
        };
        path.push(field);
        let result = self.ordered_list(current, patched, order, path);
        path.pop();
        if let Some(list) = result? {
            original.insert(field.to_string(), Value::Array(list));
        }
        Ok(())
    }

    fn ordered_list<'p>(
        &self,
        current: Option<Vec<Value>>,
        patched: Option<&'p [Value]>,
        order: &[Value],
        path: &mut Vec<&'p str>,
    ) -> Result<Option<Vec<Value>>, PatchError> {
        let strategy = self.strategy(path);
        let key = strategy.merge_key;
        list::validate_patch_with_order(patched.unwrap_or(&[]), order, key)?;
        let server_order = match (&current, patched) {
            (Some(cur), Some(p)) if strategy.merge && cur.iter().chain(p).all(Value::is_object) => {
                key.map_or_else(|| cur.clone(), |k| list::aliased_server_order(cur, p, k))
            }
            // Nothing can fail on the items' other fields here: keys are enough.
            (Some(cur), None) if cur.iter().all(Value::is_object) && key.is_some() => {
                key.map_or_else(|| cur.clone(), |k| list::identities(cur, k))
            }
            (Some(cur), _) => cur.clone(),
            (None, _) => Vec::new(),
        };
        let merged = match (current, patched) {
            (None, None) => return Ok(None),
            (Some(cur), None) => cur,
            (cur, Some(p)) if strategy.merge => {
                self.merge_list(cur.unwrap_or_default(), p, strategy, path)?
            }
            (_, Some(p)) => self.new_list(p, path)?,
        };
        if server_order.is_empty() && patched.is_none_or(|p| p.is_empty()) {
            // Nothing to order (upstream fails here on "no elements"; an empty list is
            // the obvious answer).
            return Ok(Some(merged));
        }
        list::element_kind(&server_order, patched.unwrap_or(&[]))?;
        let (in_order, server_only) = list::partition(merged, order, key)?;
        list::normalize_element_order(in_order, server_only, order, &server_order, key).map(Some)
    }
}

fn expected_list(actual: &Value) -> PatchError {
    PatchError::Internal(format!(
        "expected a []interface {{}}, but received a {}",
        go_type(actual)
    ))
}

/// Applies `$retainKeys`: every patched key must be listed, unlisted keys are cleared.
fn retain_keys(
    original: &mut Map<String, Value>,
    patch: &Map<String, Value>,
) -> Result<(), PatchError> {
    let Some(list) = patch.get(RETAIN_KEYS) else {
        return Ok(());
    };
    let Value::Array(list) = list else {
        return Err(PatchError::BadRequest(BAD_RETAIN_KEYS.into()));
    };
    let keep: HashSet<&str> = list.iter().filter_map(Value::as_str).collect();
    for (k, v) in patch {
        if v.is_null()
            || k == RETAIN_KEYS
            || k == DIRECTIVE
            || k.starts_with(DELETE_PREFIX)
            || k.starts_with(SET_ORDER_PREFIX)
        {
            continue;
        }
        if !keep.contains(k.as_str()) {
            return Err(PatchError::BadRequest(BAD_RETAIN_KEYS.into()));
        }
    }
    original.retain(|k, _| keep.contains(k.as_str()));
    Ok(())
}

/// Applies `$deleteFromPrimitiveList/<field>`: removes every listed value. A missing list
/// stays missing.
fn delete_from_primitive_list(
    original: &mut Map<String, Value>,
    field: &str,
    values: &Value,
) -> Result<(), PatchError> {
    let Value::Array(values) = values else {
        return Err(PatchError::BadRequest(BAD_PRIMITIVE_LIST.into()));
    };
    if values.iter().any(|v| v.is_object() || v.is_array()) {
        return Err(PatchError::BadRequest(BAD_PRIMITIVE_LIST.into()));
    }
    if let Some(Value::Array(items)) = original.get_mut(field) {
        if items.is_empty() || values.is_empty() {
            return Ok(());
        }
        list::element_kind(items, values)?;
        items.retain(|item| !values.iter().any(|v| same_value(item, v)));
    }
    Ok(())
}
