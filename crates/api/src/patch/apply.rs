//! Server-side apply (`application/apply-patch+yaml`), first step: the applied
//! configuration is merged onto the current object — maps recursively, lists with a merge
//! key by key, primitive lists with strategy `merge` as sets, other lists replaced — and
//! the applied configuration wins every conflict.
//!
//! Not yet: field ownership (`metadata.managedFields`), conflicts between managers and
//! removal of fields a manager stops applying. Those need the set of fields the applied
//! configuration names and the previous owner sets; [`Applier::apply_map`] is where removal
//! of previously owned, now absent fields will go. Lists are keyed by the strategic merge
//! keys for now; upstream apply keys some lists by several fields (`listMapKeys`, e.g.
//! container ports by `containerPort` and `protocol`).

use serde_json::{Map, Value};

use super::error::{PatchError, go_fmt, json_kind};
use super::schema::{FieldStrategy, MergeKeys};
use super::strategic::same_value;

/// Decodes an apply body: YAML (JSON is accepted as YAML) holding one object.
pub fn decode_apply_body(body: &[u8]) -> Result<Value, PatchError> {
    // JSON first: it is what kubectl sends, and JSON that YAML cannot read (tabs as
    // indentation) still decodes.
    let value: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(_) => serde_yaml::from_slice(body)
            .map_err(|e| PatchError::BadRequest(format!("error decoding YAML: {e}")))?,
    };
    if !value.is_object() {
        return Err(PatchError::BadRequest(format!(
            "error decoding YAML: cannot unmarshal {} into an object",
            json_kind(&value)
        )));
    }
    Ok(value)
}

/// Merges the applied configuration onto `current` (or onto nothing, for a create).
pub fn apply_configuration(
    current: Option<&Value>,
    applied: &Value,
    schema: &dyn MergeKeys,
) -> Result<Value, PatchError> {
    let Value::Object(applied) = applied else {
        return Err(PatchError::BadRequest(format!(
            "applied configuration must be an object, not {}",
            json_kind(applied)
        )));
    };
    let current = match current {
        Some(Value::Object(c)) => c.clone(),
        _ => Map::new(),
    };
    let applier = Applier { schema };
    let mut path = Vec::new();
    applier
        .apply_map(current, applied, &mut path)
        .map(Value::Object)
}

/// One apply run over one object.
struct Applier<'s> {
    schema: &'s dyn MergeKeys,
}

impl Applier<'_> {
    fn strategy(&self, path: &[&str]) -> FieldStrategy {
        self.schema.lookup(path).unwrap_or_default()
    }

    fn apply_map<'a>(
        &self,
        mut current: Map<String, Value>,
        applied: &'a Map<String, Value>,
        path: &mut Vec<&'a str>,
    ) -> Result<Map<String, Value>, PatchError> {
        for (key, value) in applied {
            if value.is_null() {
                current.remove(key);
                continue;
            }
            path.push(key);
            let merged = match (current.get_mut(key.as_str()), value) {
                (Some(Value::Object(cur)), Value::Object(a)) if !self.strategy(path).replace => {
                    let cur = std::mem::take(cur);
                    self.apply_map(cur, a, path).map(Value::Object)
                }
                (Some(Value::Array(cur)), Value::Array(a)) => {
                    let cur = std::mem::take(cur);
                    self.apply_list(cur, a, path).map(Value::Array)
                }
                _ => self.fresh(value, path),
            };
            path.pop();
            current.insert(key.clone(), merged?);
        }
        Ok(current)
    }

    /// Merges an applied list into the current one. As upstream apply does, current items
    /// keep their order and applied items new to the list follow in applied order.
    fn apply_list<'a>(
        &self,
        current: Vec<Value>,
        applied: &'a [Value],
        path: &mut Vec<&'a str>,
    ) -> Result<Vec<Value>, PatchError> {
        let strategy = self.strategy(path);
        if !strategy.merge {
            return self.fresh_list(applied, path);
        }
        let Some(key) = strategy.merge_key else {
            // A set of primitives.
            let mut merged = current;
            for v in applied {
                if !merged.iter().any(|m| same_value(m, v)) {
                    merged.push(clean(v));
                }
            }
            return Ok(merged);
        };
        // Index the applied items by key, refusing items without a key and duplicates.
        let mut keyed: Vec<(&'a Value, &'a Map<String, Value>)> = Vec::with_capacity(applied.len());
        for item in applied {
            let Value::Object(a) = item else {
                return Err(missing_key(item, key, path));
            };
            let value = a
                .get(key)
                .filter(|v| !v.is_null())
                .ok_or_else(|| missing_key(item, key, path))?;
            if keyed.iter().any(|(v, _)| same_value(v, value)) {
                return Err(PatchError::BadRequest(format!(
                    ".{}: duplicate entries for key [{key}={}]",
                    path.join("."),
                    go_fmt(value)
                )));
            }
            keyed.push((value, a));
        }
        let mut used = vec![false; keyed.len()];
        let mut out = Vec::with_capacity(current.len() + keyed.len());
        for item in current {
            let found = item
                .get(key)
                .and_then(|v| keyed.iter().position(|(k, _)| same_value(k, v)));
            match (found, item) {
                (Some(i), Value::Object(cur)) => {
                    used[i] = true;
                    let a = keyed[i].1;
                    out.push(Value::Object(self.apply_map(cur, a, path)?));
                }
                (_, other) => out.push(other),
            }
        }
        for (i, (_, a)) in keyed.iter().enumerate() {
            if !used[i] {
                out.push(Value::Object(self.apply_map(Map::new(), a, path)?));
            }
        }
        Ok(out)
    }

    /// An applied value with nothing to merge into: nulls inside objects are dropped, lists
    /// with a merge key are checked for it.
    fn fresh<'a>(&self, value: &'a Value, path: &mut Vec<&'a str>) -> Result<Value, PatchError> {
        match value {
            Value::Object(m) => self.apply_map(Map::new(), m, path).map(Value::Object),
            Value::Array(items) => self.apply_list(Vec::new(), items, path).map(Value::Array),
            other => Ok(other.clone()),
        }
    }

    fn fresh_list<'a>(
        &self,
        items: &'a [Value],
        path: &mut Vec<&'a str>,
    ) -> Result<Vec<Value>, PatchError> {
        items
            .iter()
            .map(|item| match item {
                Value::Object(m) => self.apply_map(Map::new(), m, path).map(Value::Object),
                other => Ok(other.clone()),
            })
            .collect()
    }
}

/// Drops nulls inside objects (a set member is a primitive, but stay general).
fn clean(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), clean(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(clean).collect()),
        other => other.clone(),
    }
}

fn missing_key(item: &Value, key: &str, path: &[&str]) -> PatchError {
    PatchError::BadRequest(format!(
        ".{}: element {} : associative list with keys has an element that omits key field {key:?}",
        path.join("."),
        go_fmt(item)
    ))
}

#[cfg(test)]
mod tests {
    use super::super::merge_keys_for;
    use super::*;
    use serde_json::json;

    fn deploy_keys() -> impl MergeKeys {
        merge_keys_for("apps", "Deployment")
    }

    #[test]
    fn create_from_nothing_drops_nulls() {
        let applied = json!({"kind": "ConfigMap", "data": {"a": "1", "b": null}});
        let out = apply_configuration(None, &applied, &merge_keys_for("", "ConfigMap")).unwrap();
        assert_eq!(out, json!({"kind": "ConfigMap", "data": {"a": "1"}}));
    }

    #[test]
    fn applied_fields_win_and_others_stay() {
        let current = json!({
            "metadata": {"name": "web", "labels": {"app": "web", "team": "a"}, "finalizers": ["x"]},
            "spec": {
                "replicas": 1,
                "template": {"spec": {
                    "containers": [
                        {"name": "app", "image": "app:1", "env": [{"name": "A", "value": "1"}]},
                        {"name": "sidecar", "image": "proxy:1"}
                    ],
                    "tolerations": [{"key": "k1"}]
                }}
            }
        });
        let applied = json!({
            "metadata": {"name": "web", "labels": {"app": "web2"}, "finalizers": ["y"]},
            "spec": {
                "replicas": 3,
                "template": {"spec": {
                    "containers": [{"name": "app", "image": "app:2", "env": [{"name": "B", "value": "2"}]}],
                    "tolerations": [{"key": "k2"}]
                }}
            }
        });
        let out = apply_configuration(Some(&current), &applied, &deploy_keys()).unwrap();
        assert_eq!(
            out["metadata"]["labels"],
            json!({"app": "web2", "team": "a"})
        );
        assert_eq!(out["metadata"]["finalizers"], json!(["x", "y"]));
        assert_eq!(out["spec"]["replicas"], 3);
        let pod = &out["spec"]["template"]["spec"];
        assert_eq!(
            pod["containers"],
            json!([
                {"name": "app", "image": "app:2", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
                {"name": "sidecar", "image": "proxy:1"}
            ])
        );
        // Lists without a merge key are atomic.
        assert_eq!(pod["tolerations"], json!([{"key": "k2"}]));
    }

    #[test]
    fn applying_twice_is_idempotent() {
        let applied = json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"template": {"spec": {"containers": [
                {"name": "app", "image": "app:1", "ports": [{"containerPort": 80}]}
            ]}}}
        });
        let once = apply_configuration(None, &applied, &deploy_keys()).unwrap();
        let twice = apply_configuration(Some(&once), &applied, &deploy_keys()).unwrap();
        assert_eq!(once, twice);
        assert_eq!(once, applied);
    }

    #[test]
    fn errors() {
        let keys = deploy_keys();
        let applied = json!({"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}});
        let err = apply_configuration(None, &applied, &keys).unwrap_err();
        assert_eq!(err.status_code(), 400);
        assert!(
            err.to_string().contains("omits key field \"name\""),
            "{err}"
        );
        assert!(apply_configuration(None, &json!([1]), &keys).is_err());
        assert!(decode_apply_body(b"- a\n- b\n").is_err());
        assert!(decode_apply_body(b"a: [").is_err());
        assert_eq!(
            decode_apply_body(b"a: 1\nb: [x]\n").unwrap(),
            json!({"a": 1, "b": ["x"]})
        );
        assert_eq!(decode_apply_body(b"{\"a\":\t1}").unwrap(), json!({"a": 1}));
    }
}
