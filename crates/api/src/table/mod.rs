//! `kubectl get` output: meta.k8s.io/v1 `Table` responses with upstream's columns and cell
//! formats per kind.
//!
//! kubectl prints cells verbatim, so every cell here is formatted the way upstream's
//! server-side printers format it (`<none>`, `1/1`, `80/TCP`, ages as `5m20s`). As upstream's
//! server does, all columns (including the `-o wide` ones, priority 1) are always sent;
//! kubectl hides priority > 0 columns unless asked. Kinds without a printer get upstream's
//! default table: NAME and CREATED AT.

mod core_v1;
mod custom;
mod duration;
mod events;
mod fields;
mod jsonpath;
mod other;
mod pod;
mod volumes;
mod workloads;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use crate::catalog::ResourceInfo;

pub use duration::human_duration;

/// What `rows[].object` carries (the `includeObject` query parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IncludeObject {
    /// No object.
    None,
    /// A `PartialObjectMetadata` with the object's metadata (the default).
    #[default]
    Metadata,
    /// The whole object.
    Object,
}

/// An `includeObject` value upstream does not accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("includeObject {0:?} is not supported; use None, Metadata or Object")]
pub struct UnknownIncludeObject(pub String);

impl IncludeObject {
    /// Parses the `includeObject` query parameter; an empty value means the default.
    pub fn from_param(value: &str) -> Result<Self, UnknownIncludeObject> {
        match value {
            "" | "Metadata" => Ok(Self::Metadata),
            "None" => Ok(Self::None),
            "Object" => Ok(Self::Object),
            other => Err(UnknownIncludeObject(other.to_string())),
        }
    }
}

/// One column definition.
pub(crate) struct Column {
    pub name: &'static str,
    /// JSON-schema-ish type: `string`, `integer`, `boolean`, `date`.
    pub kind: &'static str,
    /// `name` for the object's name column, else empty.
    pub format: &'static str,
    pub description: &'static str,
    /// 0: always shown; 1: only with `-o wide`.
    pub priority: i32,
}

/// A string column shown by default.
pub(crate) const fn col(name: &'static str, description: &'static str) -> Column {
    Column {
        name,
        kind: "string",
        format: "",
        description,
        priority: 0,
    }
}

/// A column of another type shown by default.
pub(crate) const fn typed(
    name: &'static str,
    kind: &'static str,
    description: &'static str,
) -> Column {
    Column {
        name,
        kind,
        format: "",
        description,
        priority: 0,
    }
}

/// A string column shown only with `-o wide`.
pub(crate) const fn wide(name: &'static str, description: &'static str) -> Column {
    Column {
        name,
        kind: "string",
        format: "",
        description,
        priority: 1,
    }
}

/// The NAME column.
pub(crate) const NAME: Column = Column {
    name: "Name",
    kind: "string",
    format: "name",
    description: "Name of the object, unique within its namespace (or the cluster).",
    priority: 0,
};

/// The AGE column.
pub(crate) const AGE: Column = col("Age", "Time since the object was created.");

/// Wide CONTAINERS / IMAGES / SELECTOR columns of workload kinds.
pub(crate) const CONTAINERS: Column =
    wide("Containers", "Names of the containers in the pod template.");
pub(crate) const IMAGES: Column = wide("Images", "Images of the containers in the pod template.");
pub(crate) const SELECTOR: Column = wide(
    "Selector",
    "Label selector of the pods this object manages.",
);

/// Builds the cells of one row from an object, given the current time.
pub(crate) type CellsFn = fn(&Value, DateTime<Utc>) -> Vec<Value>;

/// How one kind prints.
pub(crate) struct Printer {
    pub columns: &'static [Column],
    pub cells: CellsFn,
}

/// Upstream's default table for kinds without a printer.
const DEFAULT_COLUMNS: &[Column] = &[
    NAME,
    typed("Created At", "date", "Time the object was created."),
];

fn default_cells(obj: &Value, _now: DateTime<Utc>) -> Vec<Value> {
    let created = fields::created(obj)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| "0001-01-01T00:00:00Z".to_string());
    vec![fields::name(obj).into(), created.into()]
}

/// The printer for a resource (matched on group and plural, so every served version of a
/// resource prints alike).
fn printer_for(info: &ResourceInfo) -> Printer {
    core_v1::printer(info.group, info.plural)
        .or_else(|| workloads::printer(info.group, info.plural))
        .or_else(|| other::printer(info.group, info.plural))
        .unwrap_or(Printer {
            columns: DEFAULT_COLUMNS,
            cells: default_cells,
        })
}

/// Upstream's row conditions: pods that finished are marked `Completed`.
fn row_conditions(info: &ResourceInfo, obj: &Value) -> Option<Value> {
    if info.group.is_empty() && info.plural == "pods" {
        pod::conditions(obj)
    } else {
        None
    }
}

fn column_json(c: &Column) -> Value {
    column_definition(
        c.name,
        c.kind,
        c.format,
        c.description,
        i64::from(c.priority),
    )
}

/// One `columnDefinitions` entry.
fn column_definition(
    name: &str,
    kind: &str,
    format: &str,
    description: &str,
    priority: i64,
) -> Value {
    json!({
        "name": name,
        "type": kind,
        "format": format,
        "description": description,
        "priority": priority,
    })
}

fn row_object(obj: &Value, include: IncludeObject) -> Option<Value> {
    match include {
        IncludeObject::None => None,
        IncludeObject::Object => Some(obj.clone()),
        IncludeObject::Metadata => Some(json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
        })),
    }
}

/// Renders `objects` (the items of a list, or one object) of resource `info` as a
/// meta.k8s.io/v1 Table. `resource_version` and `continue_token` go to the table's list
/// metadata (omitted when empty); `now` is the reference time for ages.
pub fn to_table(
    info: &ResourceInfo,
    objects: &[Value],
    include: IncludeObject,
    resource_version: &str,
    continue_token: Option<&str>,
    now: DateTime<Utc>,
) -> Value {
    let served = crate::catalog::custom::served(info.group, info.version, info.plural);
    let custom_columns = served.as_ref().map(|s| &s.columns);
    let printer = printer_for(info);
    let columns: Vec<Value> = match &custom_columns {
        Some(custom_columns) => custom::columns(custom_columns),
        None => printer.columns.iter().map(column_json).collect(),
    };
    let rows: Vec<Value> = objects
        .iter()
        .map(|obj| {
            let mut row = Map::new();
            let cells = match &custom_columns {
                Some(custom_columns) => custom::cells(custom_columns, obj, now),
                None => (printer.cells)(obj, now),
            };
            row.insert("cells".into(), cells.into());
            if let Some(conditions) = row_conditions(info, obj) {
                row.insert("conditions".into(), conditions);
            }
            if let Some(object) = row_object(obj, include) {
                row.insert("object".into(), object);
            }
            Value::Object(row)
        })
        .collect();
    let mut metadata = Map::new();
    if !resource_version.is_empty() {
        metadata.insert("resourceVersion".into(), resource_version.into());
    }
    if let Some(token) = continue_token.filter(|t| !t.is_empty()) {
        metadata.insert("continue".into(), token.into());
    }
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": columns,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2024-05-01T12:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .expect("time")
    }

    #[test]
    fn every_printer_fills_every_column() {
        let empty = json!({"metadata": {"name": "x"}});
        for info in catalog::all() {
            let table = to_table(
                info,
                std::slice::from_ref(&empty),
                IncludeObject::None,
                "",
                None,
                now(),
            );
            let columns = table["columnDefinitions"].as_array().map_or(0, Vec::len);
            let cells = table["rows"][0]["cells"].as_array().map_or(0, Vec::len);
            assert_eq!(columns, cells, "{}/{}", info.group, info.plural);
        }
    }

    #[test]
    fn table_envelope_and_partial_metadata() {
        let info = catalog::find("", "v1", "configmaps").expect("configmaps");
        let cm = json!({"kind": "ConfigMap", "apiVersion": "v1",
            "metadata": {"name": "cfg", "namespace": "default", "labels": {"a": "b"},
                         "creationTimestamp": "2024-05-01T11:55:00Z"},
            "data": {"k": "v", "k2": "v2"}, "binaryData": {"b": "AA=="}});
        let t = to_table(
            info,
            std::slice::from_ref(&cm),
            IncludeObject::default(),
            "42",
            Some("tok"),
            now(),
        );
        assert_eq!(t["kind"], "Table");
        assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(
            t["metadata"],
            json!({"resourceVersion": "42", "continue": "tok"})
        );
        assert_eq!(t["columnDefinitions"][0]["format"], "name");
        assert_eq!(t["rows"][0]["cells"], json!(["cfg", 3, "5m"]));
        assert_eq!(
            t["rows"][0]["object"],
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                   "metadata": cm["metadata"]})
        );
        let full = to_table(
            info,
            std::slice::from_ref(&cm),
            IncludeObject::Object,
            "",
            None,
            now(),
        );
        assert_eq!(full["rows"][0]["object"], cm);
        assert_eq!(full["metadata"], json!({}));
        let none = to_table(info, &[cm], IncludeObject::None, "", None, now());
        assert!(none["rows"][0].get("object").is_none());
    }

    #[test]
    fn default_table_for_roles() {
        let info = catalog::find("rbac.authorization.k8s.io", "v1", "roles").expect("roles");
        let role = json!({"metadata": {"name": "r", "creationTimestamp": "2024-05-01T11:00:00Z"}});
        let t = to_table(info, &[role], IncludeObject::None, "", None, now());
        assert_eq!(t["columnDefinitions"][1]["name"], "Created At");
        assert_eq!(t["columnDefinitions"][1]["type"], "date");
        assert_eq!(t["rows"][0]["cells"], json!(["r", "2024-05-01T11:00:00Z"]));
    }

    #[test]
    fn include_object_param() {
        assert_eq!(IncludeObject::from_param(""), Ok(IncludeObject::Metadata));
        assert_eq!(
            IncludeObject::from_param("Object"),
            Ok(IncludeObject::Object)
        );
        assert_eq!(IncludeObject::from_param("None"), Ok(IncludeObject::None));
        assert!(IncludeObject::from_param("All").is_err());
    }
}
