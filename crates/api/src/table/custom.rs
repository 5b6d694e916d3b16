//! Tables of custom resources: NAME, then the CRD version's `additionalPrinterColumns`
//! (or AGE when it declares none), each cell read with its JSONPath and typed as
//! upstream's CRD table convertor types it.

use super::{NAME, column_definition, column_json, human_duration, jsonpath};
use crate::catalog::custom::PrinterColumn;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

/// Column definitions: NAME and the CRD's columns.
pub(super) fn columns(custom: &[PrinterColumn]) -> Vec<Value> {
    std::iter::once(column_json(&NAME))
        .chain(
            custom.iter().map(|c| {
                column_definition(&c.name, &c.kind, &c.format, &c.description, c.priority)
            }),
        )
        .collect()
}

/// One row's cells; a column whose path selects nothing, or a value of another type than
/// the column's, is `null` (kubectl prints `<none>`).
pub(super) fn cells(custom: &[PrinterColumn], obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    std::iter::once(json!(super::fields::name(obj)))
        .chain(custom.iter().map(|c| {
            jsonpath::first(obj, &c.json_path).map_or(Value::Null, |v| cell(&c.kind, v, now))
        }))
        .collect()
}

fn cell(kind: &str, v: &Value, now: DateTime<Utc>) -> Value {
    match (kind, v) {
        ("string", Value::String(s)) => json!(s),
        // Other values print as kubectl's JSONPath prints them: JSON.
        ("string", other) => json!(other.to_string()),
        ("integer", Value::Number(n)) if n.is_i64() || n.is_u64() => v.clone(),
        ("number", Value::Number(_)) | ("boolean", Value::Bool(_)) => v.clone(),
        ("date", Value::String(s)) => DateTime::parse_from_rfc3339(s).map_or(Value::Null, |t| {
            json!(human_duration(
                now.signed_duration_since(t.with_timezone(&Utc))
            ))
        }),
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, kind: &str, path: &str) -> PrinterColumn {
        PrinterColumn {
            name: name.into(),
            kind: kind.into(),
            format: String::new(),
            description: String::new(),
            priority: 0,
            json_path: path.into(),
        }
    }

    #[test]
    fn cells_follow_the_column_types() {
        let now = DateTime::parse_from_rfc3339("2024-05-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let obj = json!({
            "metadata": {"name": "cron", "creationTimestamp": "2024-05-01T11:55:00Z"},
            "spec": {"cronSpec": "* * * * */5", "replicas": 2, "ratio": 0.5, "on": true, "tags": ["a"]}
        });
        let cols = [
            col("Spec", "string", ".spec.cronSpec"),
            col("Replicas", "integer", ".spec.replicas"),
            col("Ratio", "integer", ".spec.ratio"),
            col("On", "boolean", ".spec.on"),
            col("Tags", "string", ".spec.tags"),
            col("Missing", "string", ".spec.nothing"),
            col("Age", "date", ".metadata.creationTimestamp"),
        ];
        assert_eq!(
            cells(&cols, &obj, now),
            vec![
                json!("cron"),
                json!("* * * * */5"),
                json!(2),
                Value::Null,
                json!(true),
                json!("[\"a\"]"),
                Value::Null,
                json!("5m"),
            ]
        );
        let defs = columns(&cols[..1]);
        assert_eq!(defs[0]["name"], "Name");
        assert_eq!(defs[1]["name"], "Spec");
    }
}
