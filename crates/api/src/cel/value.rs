//! JSON values as CEL sees them without a schema (upstream's unstructured objects): integers
//! → int, other numbers → double, strings, booleans, arrays → lists, objects → maps, with
//! null fields left out (absent), as `has()` and field selection expect.

use cel::common::types::{
    CelBool, CelDouble, CelInt, CelList, CelMap, CelMapKey, CelNull, CelString,
};
use cel::common::value::Val;
use serde_json::Value;
use std::collections::HashMap;

/// Deeper values are cut off (null).
pub(crate) const MAX_DEPTH: usize = 64;

/// `v` as an untyped CEL value, borrowing its strings.
pub(crate) fn json<'a>(v: &'a Value, depth: usize) -> Box<dyn Val + 'a> {
    if depth > MAX_DEPTH {
        return Box::new(CelNull);
    }
    match v {
        Value::Null => Box::new(CelNull),
        Value::Bool(b) => Box::new(CelBool::from(*b)),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Box::new(CelInt::from(i)),
            None => Box::new(CelDouble::from(n.as_f64().unwrap_or(0.0))),
        },
        Value::String(s) => Box::new(CelString::from(s.as_str())),
        Value::Array(items) => {
            let list: Vec<Box<dyn Val + 'a>> = items.iter().map(|i| json(i, depth + 1)).collect();
            Box::new(CelList::from(list))
        }
        Value::Object(map) => {
            let out: HashMap<CelMapKey<'a>, Box<dyn Val + 'a>> = map
                .iter()
                .filter(|(_, c)| !c.is_null())
                .map(|(k, c)| (CelMapKey::from(k.as_str()), json(c, depth + 1)))
                .collect();
            Box::new(CelMap::from(out))
        }
    }
}
