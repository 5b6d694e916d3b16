//! Label selectors: requirements, matching, and conversion from a
//! `metav1.LabelSelector` (apimachinery `labels` and `LabelSelectorAsSelector`).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::str::FromStr;

use serde_json::Value;

use super::SelectorError;
use crate::strategy::errors::{go_json_strings, go_quote};
use crate::strategy::validation::{is_qualified_name, is_valid_label_value};

/// A requirement's operator (`selection.Operator`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operator {
    /// `in (a,b)`
    In,
    /// `notin (a,b)`
    NotIn,
    /// `=`
    Equals,
    /// `==`
    DoubleEquals,
    /// `!=`
    NotEquals,
    /// bare `key`
    Exists,
    /// `!key`
    DoesNotExist,
    /// `key>N` (integer comparison)
    GreaterThan,
    /// `key<N` (integer comparison)
    LessThan,
}

/// One `key op values` term of a label selector, validated as upstream's
/// `NewRequirement` does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    key: String,
    op: Operator,
    values: Vec<String>,
}

/// A field-path error as apimachinery's `field.Error` prints it.
fn invalid(path: &str, bad_value: String, detail: &str) -> String {
    format!("{path}: Invalid value: {bad_value}: {detail}")
}

/// Joins errors like `utilerrors.Aggregate`: one is printed bare, several as `[a, b]`.
fn aggregate(mut errs: Vec<String>) -> Option<String> {
    let mut seen = std::collections::HashSet::new();
    errs.retain(|e| seen.insert(e.clone()));
    match errs.len() {
        0 => None,
        1 => errs.pop(),
        _ => Some(format!("[{}]", errs.join(", "))),
    }
}

/// `key: Invalid value: "k": …` when `key` is not a qualified name, with `path`.
pub(crate) fn validate_key(key: &str, path: &str) -> Option<String> {
    let errs = is_qualified_name(key);
    (!errs.is_empty()).then(|| invalid(path, go_quote(key), &errs.join("; ")))
}

impl Requirement {
    /// Builds a requirement, validating key, operator arity and values with upstream's
    /// messages (an empty value is valid; `In`/`NotIn` need at least one value).
    pub fn new(
        key: impl Into<String>,
        op: Operator,
        values: Vec<String>,
    ) -> Result<Requirement, SelectorError> {
        let key = key.into();
        let mut errs = Vec::new();
        errs.extend(validate_key(&key, "key"));
        let rendered = || go_json_strings(&values);
        match op {
            Operator::In | Operator::NotIn if values.is_empty() => errs.push(invalid(
                "values",
                rendered(),
                "for 'in', 'notin' operators, values set can't be empty",
            )),
            Operator::Equals | Operator::DoubleEquals | Operator::NotEquals
                if values.len() != 1 =>
            {
                errs.push(invalid(
                    "values",
                    rendered(),
                    "exact-match compatibility requires one single value",
                ))
            }
            Operator::Exists | Operator::DoesNotExist if !values.is_empty() => errs.push(invalid(
                "values",
                rendered(),
                "values set must be empty for exists and does not exist",
            )),
            Operator::GreaterThan | Operator::LessThan => {
                if values.len() != 1 {
                    errs.push(invalid(
                        "values",
                        rendered(),
                        "for 'Gt', 'Lt' operators, exactly one value is required",
                    ));
                }
                for (i, v) in values.iter().enumerate() {
                    if v.parse::<i64>().is_err() {
                        errs.push(invalid(
                            &format!("values[{i}]"),
                            go_quote(v),
                            "for 'Gt', 'Lt' operators, the value must be an integer",
                        ));
                    }
                }
            }
            _ => {}
        }
        for (i, v) in values.iter().enumerate() {
            let msgs = is_valid_label_value(v);
            if !msgs.is_empty() {
                errs.push(invalid(
                    &format!("values[{i}][{key}]"),
                    go_quote(v),
                    &msgs.join("; "),
                ));
            }
        }
        match aggregate(errs) {
            Some(msg) => Err(SelectorError::Label(msg)),
            None => Ok(Requirement { key, op, values }),
        }
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn operator(&self) -> Operator {
        self.op
    }

    pub fn values(&self) -> &[String] {
        &self.values
    }

    /// Whether `labels` satisfy this requirement. A missing key satisfies only
    /// `NotIn`, `!=` and `!key`.
    pub fn matches<L: LabelSource + ?Sized>(&self, labels: &L) -> bool {
        let value = labels.label(&self.key);
        let has = |v: &str| self.values.iter().any(|x| x == v);
        match self.op {
            Operator::In | Operator::Equals | Operator::DoubleEquals => value.is_some_and(has),
            Operator::NotIn | Operator::NotEquals => !value.is_some_and(has),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let (Some(v), [want]) = (value, self.values.as_slice()) else {
                    return false;
                };
                match (v.parse::<i64>(), want.parse::<i64>()) {
                    (Ok(v), Ok(want)) if self.op == Operator::GreaterThan => v > want,
                    (Ok(v), Ok(want)) => v < want,
                    _ => false,
                }
            }
        }
    }
}

impl fmt::Display for Requirement {
    /// Upstream's canonical text: `!k`, `k`, `k=v`, `k in (a,b)` (values sorted).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.op {
            Operator::DoesNotExist => return write!(f, "!{}", self.key),
            Operator::Exists => return f.write_str(&self.key),
            Operator::Equals => "=",
            Operator::DoubleEquals => "==",
            Operator::NotEquals => "!=",
            Operator::In => " in ",
            Operator::NotIn => " notin ",
            Operator::GreaterThan => ">",
            Operator::LessThan => "<",
        };
        let mut values = self.values.clone();
        values.sort();
        let values = values.join(",");
        if matches!(self.op, Operator::In | Operator::NotIn) {
            write!(f, "{}{op}({values})", self.key)
        } else {
            write!(f, "{}{op}{values}", self.key)
        }
    }
}

/// Anything labels can be looked up in.
pub trait LabelSource {
    fn label(&self, key: &str) -> Option<&str>;
}

impl LabelSource for BTreeMap<String, String> {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

impl<S: std::hash::BuildHasher> LabelSource for HashMap<String, String, S> {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

/// A JSON labels object (`metadata.labels`); `null` or a non-object has no labels,
/// and non-string values count as absent.
impl LabelSource for Value {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }
}

impl LabelSource for serde_json::Map<String, Value> {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }
}

/// A parsed label selector: the AND of its requirements, kept sorted by key.
///
/// Two special selectors exist, as upstream: [`LabelSelector::everything`] (no
/// requirements; matches all) and [`LabelSelector::nothing`] (matches none; what a
/// `null` metav1 selector converts to).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
    nothing: bool,
}

impl LabelSelector {
    /// Parses the query-string syntax (`labels.Parse`), e.g.
    /// `app=web,tier!=db,env in (a,b),!legacy,track`.
    pub fn parse(s: &str) -> Result<LabelSelector, SelectorError> {
        super::parse::parse(s).map(LabelSelector::from_requirements)
    }

    pub fn everything() -> LabelSelector {
        LabelSelector::default()
    }

    pub fn nothing() -> LabelSelector {
        LabelSelector {
            requirements: Vec::new(),
            nothing: true,
        }
    }

    /// A selector of the given requirements (sorted by key, stable).
    pub fn from_requirements(mut requirements: Vec<Requirement>) -> LabelSelector {
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        LabelSelector {
            requirements,
            nothing: false,
        }
    }

    /// `key=value` for every entry (e.g. a Service's `spec.selector`), validated.
    /// An empty set gives [`LabelSelector::everything`].
    pub fn from_set<'a>(
        set: impl IntoIterator<Item = (&'a String, &'a String)>,
    ) -> Result<LabelSelector, SelectorError> {
        let reqs = set
            .into_iter()
            .map(|(k, v)| Requirement::new(k.clone(), Operator::Equals, vec![v.clone()]))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(LabelSelector::from_requirements(reqs))
    }

    /// True when the selector does not restrict anything (upstream `Empty()`).
    pub fn is_empty(&self) -> bool {
        !self.nothing && self.requirements.is_empty()
    }

    /// True for [`LabelSelector::nothing`].
    pub fn matches_nothing(&self) -> bool {
        self.nothing
    }

    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// Whether every requirement holds for `labels` (a map or a JSON labels object).
    pub fn matches<L: LabelSource + ?Sized>(&self, labels: &L) -> bool {
        !self.nothing && self.requirements.iter().all(|r| r.matches(labels))
    }

    /// The single value `key` must have (`=`, `==`, or `in` with one value), for
    /// index fast paths; `None` if the first requirement on `key` allows several.
    pub fn requires_exact_match(&self, key: &str) -> Option<&str> {
        let r = self.requirements.iter().find(|r| r.key == key)?;
        match (r.op, r.values.as_slice()) {
            (Operator::Equals | Operator::DoubleEquals | Operator::In, [v]) => Some(v),
            _ => None,
        }
    }
}

impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

impl FromStr for LabelSelector {
    type Err = SelectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LabelSelector::parse(s)
    }
}

/// Converts a `metav1.LabelSelector` JSON value (`matchLabels`, `matchExpressions`
/// with `In`/`NotIn`/`Exists`/`DoesNotExist`), as upstream `LabelSelectorAsSelector`:
/// `null` (absent) selects **nothing**; `{}` (no labels, no expressions) selects
/// **everything**. Invalid keys/values/operators are errors with upstream messages;
/// a value of the wrong JSON shape is [`SelectorError::Malformed`].
pub fn from_label_selector_json(v: &Value) -> Result<LabelSelector, SelectorError> {
    let obj = match v {
        Value::Null => return Ok(LabelSelector::nothing()),
        Value::Object(o) => o,
        other => return Err(malformed("label selector", other)),
    };
    let mut reqs = Vec::new();
    match obj.get("matchLabels") {
        None | Some(Value::Null) => {}
        Some(Value::Object(labels)) => {
            for (k, v) in labels {
                let v = v
                    .as_str()
                    .ok_or_else(|| malformed("matchLabels value", v))?;
                reqs.push(Requirement::new(
                    k.clone(),
                    Operator::Equals,
                    vec![v.into()],
                )?);
            }
        }
        Some(other) => return Err(malformed("matchLabels", other)),
    }
    match obj.get("matchExpressions") {
        None | Some(Value::Null) => {}
        Some(Value::Array(exprs)) => {
            for e in exprs {
                reqs.push(expression(e)?);
            }
        }
        Some(other) => return Err(malformed("matchExpressions", other)),
    }
    Ok(LabelSelector::from_requirements(reqs))
}

fn expression(e: &Value) -> Result<Requirement, SelectorError> {
    let field = |name: &str| match e.get(name) {
        None | Some(Value::Null) => Ok(""),
        Some(Value::String(s)) => Ok(s.as_str()),
        Some(other) => Err(malformed(name, other)),
    };
    if !e.is_object() {
        return Err(malformed("matchExpressions item", e));
    }
    let key = field("key")?;
    let op = match field("operator")? {
        "In" => Operator::In,
        "NotIn" => Operator::NotIn,
        "Exists" => Operator::Exists,
        "DoesNotExist" => Operator::DoesNotExist,
        other => {
            return Err(SelectorError::Label(format!(
                "{} is not a valid label selector operator",
                go_quote(other)
            )));
        }
    };
    let values = match e.get("values") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(vs)) => vs
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| malformed("values item", v))
            })
            .collect::<Result<_, _>>()?,
        Some(other) => return Err(malformed("values", other)),
    };
    Requirement::new(key, op, values)
}

fn malformed(what: &str, got: &Value) -> SelectorError {
    let kind = match got {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    SelectorError::Malformed(format!("{what}: unexpected {kind}"))
}
