//! `metadata.managedFields` decoded: one field set per manager, keyed as upstream keys
//! them (manager name, operation, subresource, and the API version for `Update` entries
//! only — an applier's entry follows it across versions).

use std::collections::BTreeMap;

use chrono::DateTime;
use serde_json::{Map, Value, json};

use super::set::Set;
use super::tree::Fields;

/// Upstream's cap on `Update` entries; older ones are folded into `ancient-changes`.
const MAX_UPDATE_MANAGERS: usize = 10;
const ANCIENT_CHANGES: &str = "ancient-changes";

/// Who owns a field set.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct ManagerKey {
    pub manager: String,
    /// `Apply` or `Update` (this order is also the order entries are listed in).
    pub applied: bool,
    /// Empty for `Apply` entries.
    pub api_version: String,
    pub subresource: String,
}

impl ManagerKey {
    pub fn new(manager: &str, applied: bool, api_version: &str, subresource: &str) -> ManagerKey {
        ManagerKey {
            manager: if manager.is_empty() {
                "unknown".into()
            } else {
                manager.into()
            },
            applied,
            api_version: if applied {
                String::new()
            } else {
                api_version.into()
            },
            subresource: subresource.into(),
        }
    }

    pub fn operation(&self) -> &'static str {
        if self.applied { "Apply" } else { "Update" }
    }

    /// How conflicts name a manager: `"kubectl"`, `"m" using apps/v1`,
    /// `"m" with subresource "status" using v1`.
    pub fn describe(&self) -> String {
        let mut out = crate::strategy::errors::go_quote(&self.manager);
        if !self.subresource.is_empty() {
            out.push_str(" with subresource ");
            out.push_str(&crate::strategy::errors::go_quote(&self.subresource));
        }
        if !self.applied {
            out.push_str(" using ");
            out.push_str(&self.api_version);
        }
        out
    }

    /// Upstream sorts by the JSON of the key, which starts with the manager name.
    fn sort_key(&self) -> (&str, bool, &str, &str) {
        (
            &self.manager,
            !self.applied,
            &self.api_version,
            &self.subresource,
        )
    }
}

/// One manager's fields (decoded, or kept as FieldsV1 where that is cheaper: [`Fields`]).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry<F = Set> {
    pub set: F,
    pub api_version: String,
    pub time: Option<String>,
}

pub(crate) type Managed<F = Set> = BTreeMap<ManagerKey, Entry<F>>;

fn string_field<'a>(entry: &'a Map<String, Value>, name: &str) -> Result<&'a str, String> {
    match entry.get(name) {
        None | Some(Value::Null) => Ok(""),
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(format!("{name}: expected a string, got {other}")),
    }
}

/// The entries of `metadata.managedFields` (absent or null is none).
fn items(entries: Option<&Value>) -> Result<&[Value], String> {
    match entries {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(other) => Err(format!("expected a list of entries, got {other}")),
    }
}

/// Decodes entry `i`; `read` reads its fields, at the point upstream reports their errors.
fn decode_entry<F>(
    i: usize,
    item: &Value,
    read: impl FnOnce() -> Result<F, String>,
) -> Result<(ManagerKey, Entry<F>), String> {
    let Value::Object(entry) = item else {
        return Err(format!("entry {i}: expected an object"));
    };
    let applied = match string_field(entry, "operation")? {
        "Apply" => true,
        "Update" => false,
        _ => return Err("operation must be `Apply` or `Update`".into()),
    };
    let api_version = string_field(entry, "apiVersion")?;
    if api_version.is_empty() {
        return Err("apiVersion must not be empty".into());
    }
    match string_field(entry, "fieldsType")? {
        "FieldsV1" => {}
        "" => return Err(format!("missing fieldsType in managed fields entry {i}")),
        other => {
            return Err(format!(
                "invalid fieldsType {other:?} in managed fields entry {i}"
            ));
        }
    }
    let set = read().map_err(|e| format!("error decoding set of entry {i}: {e}"))?;
    let time = string_field(entry, "time")?;
    let key = ManagerKey {
        manager: string_field(entry, "manager")?.to_string(),
        applied,
        api_version: if applied {
            String::new()
        } else {
            api_version.to_string()
        },
        subresource: string_field(entry, "subresource")?.to_string(),
    };
    let entry = Entry {
        set,
        api_version: api_version.to_string(),
        time: (!time.is_empty()).then(|| time.to_string()),
    };
    Ok((key, entry))
}

/// Decodes `metadata.managedFields` (absent or null is no entries).
pub(crate) fn decode(entries: Option<&Value>) -> Result<Managed, String> {
    let mut out = Managed::new();
    for (i, item) in items(entries)?.iter().enumerate() {
        let (key, entry) = decode_entry(i, item, || match item.get("fieldsV1") {
            None | Some(Value::Null) => Ok(Set::new()),
            Some(fields) => Set::from_fields_v1(fields),
        })?;
        out.insert(key, entry);
    }
    Ok(out)
}

/// [`decode`], taking the entries by value and keeping canonical fieldsV1 objects as they
/// are ([`Fields`]); same result and errors.
pub(crate) fn decode_fields(entries: Option<Value>) -> Result<Managed<Fields>, String> {
    let mut entries = entries;
    if let Some(Value::Array(list)) = &mut entries {
        let mut out = Managed::new();
        for (i, item) in list.iter_mut().enumerate() {
            let fields = item.as_object_mut().and_then(|m| m.remove("fieldsV1"));
            let (key, entry) = decode_entry(i, item, || Fields::read(fields))?;
            out.insert(key, entry);
        }
        return Ok(out);
    }
    items(entries.as_ref())?;
    Ok(Managed::new())
}

/// Whether `managedFields` asks for a reset: an empty list, or one empty entry.
pub(crate) fn is_reset(entries: Option<&Value>) -> bool {
    match entries {
        Some(Value::Array(items)) if items.is_empty() => true,
        Some(Value::Array(items)) if items.len() == 1 => match &items[0] {
            Value::Object(m) => m.values().all(|v| match v {
                Value::Null => true,
                Value::String(s) => s.is_empty(),
                Value::Object(o) => o.is_empty(),
                _ => false,
            }),
            _ => false,
        },
        _ => false,
    }
}

fn seconds(time: Option<&str>) -> i64 {
    time.and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map_or(0, |t| t.timestamp())
}

/// The keys of the non-empty entries in upstream's order (applies first, then by time,
/// manager, version, subresource).
fn encode_order<F>(managed: &Managed<F>, is_empty: impl Fn(&F) -> bool) -> Vec<ManagerKey> {
    let mut entries: Vec<(&ManagerKey, &Entry<F>)> =
        managed.iter().filter(|(_, e)| !is_empty(&e.set)).collect();
    entries.sort_by(|(ka, ea), (kb, eb)| {
        (!ka.applied)
            .cmp(&!kb.applied)
            .then_with(|| seconds(ea.time.as_deref()).cmp(&seconds(eb.time.as_deref())))
            .then_with(|| ka.manager.cmp(&kb.manager))
            .then_with(|| ea.api_version.cmp(&eb.api_version))
            .then_with(|| ka.subresource.cmp(&kb.subresource))
    });
    entries.into_iter().map(|(k, _)| k.clone()).collect()
}

fn entry_value(key: &ManagerKey, api_version: &str, time: Option<&str>, fields: Value) -> Value {
    let mut out = Map::new();
    out.insert("manager".into(), json!(key.manager));
    out.insert("operation".into(), json!(key.operation()));
    out.insert("apiVersion".into(), json!(api_version));
    if let Some(t) = time {
        out.insert("time".into(), json!(t));
    }
    out.insert("fieldsType".into(), json!("FieldsV1"));
    out.insert("fieldsV1".into(), fields);
    if !key.subresource.is_empty() {
        out.insert("subresource".into(), json!(key.subresource));
    }
    Value::Object(out)
}

/// Encodes the entries in upstream's order; `None` when there are none, as the field is
/// then unset.
pub(crate) fn encode(managed: &Managed) -> Option<Value> {
    let order = encode_order(managed, Set::is_empty);
    if order.is_empty() {
        return None;
    }
    let list = order
        .iter()
        .filter_map(|key| {
            let e = managed.get(key)?;
            Some(entry_value(
                key,
                &e.api_version,
                e.time.as_deref(),
                e.set.to_fields_v1(),
            ))
        })
        .collect();
    Some(Value::Array(list))
}

/// [`encode`], consuming the entries (FieldsV1 objects kept as JSON are moved, not
/// copied).
pub(crate) fn encode_fields(mut managed: Managed<Fields>) -> Option<Value> {
    let order = encode_order(&managed, Fields::is_empty);
    if order.is_empty() {
        return None;
    }
    let list = order
        .iter()
        .filter_map(|key| {
            let e = managed.remove(key)?;
            Some(entry_value(
                key,
                &e.api_version,
                e.time.as_deref(),
                e.set.into_value(),
            ))
        })
        .collect();
    Some(Value::Array(list))
}

/// [`cap_update_managers`] for entries kept as [`Fields`]: decodes them only when there
/// is something to fold.
pub(crate) fn cap_update_fields(managed: &mut Managed<Fields>) {
    if managed.keys().filter(|k| !k.applied).count() <= MAX_UPDATE_MANAGERS {
        return;
    }
    let mut decoded: Managed = std::mem::take(managed)
        .into_iter()
        .map(|(k, e)| {
            let entry = Entry {
                set: e.set.into_set(),
                api_version: e.api_version,
                time: e.time,
            };
            (k, entry)
        })
        .collect();
    cap_update_managers(&mut decoded);
    *managed = decoded
        .into_iter()
        .map(|(k, e)| {
            let entry = Entry {
                set: Fields::Set(e.set),
                api_version: e.api_version,
                time: e.time,
            };
            (k, entry)
        })
        .collect();
}

/// Folds the oldest `Update` entries into one `ancient-changes` entry per API version
/// once there are more than ten.
pub(crate) fn cap_update_managers(managed: &mut Managed) {
    let mut updaters: Vec<ManagerKey> = managed.keys().filter(|k| !k.applied).cloned().collect();
    if updaters.len() <= MAX_UPDATE_MANAGERS {
        return;
    }
    updaters.sort_by(|a, b| {
        let ta = seconds(managed.get(a).and_then(|e| e.time.as_deref()));
        let tb = seconds(managed.get(b).and_then(|e| e.time.as_deref()));
        ta.cmp(&tb).then_with(|| a.sort_key().cmp(&b.sort_key()))
    });
    let mut remaining = updaters.len();
    let mut first_of_version: BTreeMap<String, ManagerKey> = BTreeMap::new();
    for key in updaters {
        if remaining <= MAX_UPDATE_MANAGERS {
            break;
        }
        let Some(entry) = managed.get(&key).cloned() else {
            continue;
        };
        let bucket = ManagerKey::new(ANCIENT_CHANGES, false, &entry.api_version, "");
        if key == bucket {
            first_of_version
                .entry(entry.api_version.clone())
                .or_insert(key);
            continue;
        }
        let Some(first) = first_of_version.get(&entry.api_version).cloned() else {
            first_of_version.insert(entry.api_version.clone(), key);
            continue;
        };
        if !managed.contains_key(&bucket)
            && let Some(moved) = managed.remove(&first)
        {
            managed.insert(bucket.clone(), moved);
        }
        if let Some(b) = managed.get_mut(&bucket) {
            b.set.union_with(&entry.set);
            b.time = entry.time.clone();
        }
        managed.remove(&key);
        remaining -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_encode_round_trip() {
        let entries = json!([
            {"manager": "kubectl", "operation": "Apply", "apiVersion": "apps/v1",
             "time": "2024-01-01T00:00:02Z", "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}}},
            {"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "apps/v1",
             "time": "2024-01-01T00:00:01Z", "fieldsType": "FieldsV1",
             "fieldsV1": {"f:status": {"f:replicas": {}}}, "subresource": "status"},
            {"manager": "kubectl-create", "operation": "Update", "apiVersion": "apps/v1",
             "time": "2024-01-01T00:00:00Z", "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {"f:labels": {}}}}
        ]);
        let managed = decode(Some(&entries)).unwrap();
        assert_eq!(managed.len(), 3);
        let out = encode(&managed).unwrap();
        let order: Vec<&str> = out
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["manager"].as_str().unwrap())
            .collect();
        assert_eq!(
            order,
            ["kubectl", "kubectl-create", "kube-controller-manager"]
        );
        assert_eq!(out[2]["subresource"], "status");
        assert!(out[0].get("subresource").is_none());
        assert_eq!(decode(Some(&out)).unwrap(), managed);
    }

    #[test]
    fn decode_errors() {
        for bad in [
            json!({}),
            json!([1]),
            json!([{"operation": "Patch", "apiVersion": "v1", "fieldsType": "FieldsV1"}]),
            json!([{"operation": "Apply", "fieldsType": "FieldsV1"}]),
            json!([{"operation": "Apply", "apiVersion": "v1"}]),
            json!([{"operation": "Apply", "apiVersion": "v1", "fieldsType": "FieldsV2"}]),
            json!([{"operation": "Apply", "apiVersion": "v1", "fieldsType": "FieldsV1", "fieldsV1": []}]),
            json!([{"operation": "Apply", "apiVersion": 1, "fieldsType": "FieldsV1"}]),
        ] {
            assert!(decode(Some(&bad)).is_err(), "{bad}");
        }
        assert!(decode(None).unwrap().is_empty());
        assert!(is_reset(Some(&json!([]))));
        assert!(is_reset(Some(&json!([{}]))));
        assert!(!is_reset(None));
        assert!(!is_reset(Some(&json!([{"manager": "x"}]))));
    }

    #[test]
    fn caps_update_managers() {
        let mut managed = Managed::new();
        for i in 0..13 {
            let mut set = Set::new();
            set.insert(&[super::super::path::PathElement::Field(format!("f{i}"))]);
            managed.insert(
                ManagerKey::new(&format!("m{i:02}"), false, "v1", ""),
                Entry {
                    set,
                    api_version: "v1".into(),
                    time: Some(format!("2024-01-01T00:00:{i:02}Z")),
                },
            );
        }
        cap_update_managers(&mut managed);
        assert_eq!(managed.len(), 10);
        let bucket = managed
            .get(&ManagerKey::new(ANCIENT_CHANGES, false, "v1", ""))
            .unwrap();
        assert_eq!(bucket.set.paths().len(), 4);
        assert!(!managed.contains_key(&ManagerKey::new("m00", false, "v1", "")));
        assert!(managed.contains_key(&ManagerKey::new("m04", false, "v1", "")));
    }
}
