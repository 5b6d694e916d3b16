//! CRD validation rules (`x-kubernetes-validations`): CEL expressions at any schema node,
//! evaluated against custom objects on create and update as upstream's
//! apiextensions-apiserver does.
//!
//! - Each rule runs with `self` bound to the value at its node (see [`convert`] for how
//!   JSON appears to CEL), once per element under `items`/`additionalProperties`; a rule on
//!   an absent or null value does not run.
//! - A rule that refers to `oldSelf` is a transition rule: it runs on updates only, when the
//!   old object has a value at the same place (correlated through object fields, map keys
//!   and the keys of `x-kubernetes-list-type: map` lists; never through other lists). With
//!   `optionalOldSelf: true` it also runs without one, `oldSelf` being an optional
//!   (`oldSelf.hasValue()`, `oldSelf.value()`, `oldSelf.orValue(x)`).
//! - Failures are reported as upstream 1.33 reports them: `<path>: Invalid value: "<schema
//!   type>": <message>` (or `messageExpression`'s result, or `failed rule: <rule>`), at
//!   `fieldPath` under the node when given, with `reason` choosing Forbidden, Required or
//!   Duplicate instead; evaluation errors as `<error> evaluating rule: <rule>`.
//! - On updates, a failing rule that does not use `oldSelf` is not reported when its value
//!   (or the nearest correlated value above it) is unchanged (upstream's validation
//!   ratcheting).
//! - Rules are compiled once per served version when the CRD is registered; the CRD
//!   strategy refuses CRDs whose rules do not compile, with upstream's messages
//!   ([`check_schema`]).
//!
//! Not done: cost estimation and budgets; `allOf`/`anyOf`/`oneOf` nested rules;
//! order-insensitive equality and merge-concatenation of `set`/`map` lists; `format`
//! (date-time, duration, byte) typing of strings; full static type checking (only
//! references and field names are checked at compile time); the functions listed in
//! [`crate::cel::library`].

mod compile;
mod convert;
#[cfg(test)]
mod tests;

use super::FieldError;
use super::errors::Raw;
use crate::cel::check::Kind;
use crate::cel::{library, run};
use cel::Context;
use cel::common::types::CelOptional;
use cel::common::value::Val;
use compile::{Compiled, Scope};
use serde_json::Value;

/// Deeper schemas and objects are not followed.
const MAX_DEPTH: usize = 64;

/// Upstream's limit on a `messageExpression` result.
const MAX_MESSAGE_BYTES: usize = 5 * 1024;

/// One schema node: what converting values and walking objects needs, and its rules.
#[derive(Debug, Default)]
struct Node {
    /// The schema `type` (`""` when unset, e.g. int-or-string).
    ty: String,
    /// ObjectMeta (a `$ref` at the root): only `name` and `generateName` are visible.
    meta: bool,
    /// An object schema declaring nothing but `x-kubernetes-preserve-unknown-fields`: its
    /// values are seen as they are (untyped).
    opaque: bool,
    props: Vec<Prop>,
    items: Option<Box<Node>>,
    additional: Option<Box<Node>>,
    /// The keys of an `x-kubernetes-list-type: map` list.
    map_keys: Option<Vec<String>>,
    rules: Vec<Rule>,
    /// Whether this node or one below has rules.
    active: bool,
}

#[derive(Debug)]
struct Prop {
    name: String,
    /// The field name in CEL (escaped), if it has one.
    cel: Option<String>,
    node: Node,
}

/// One `x-kubernetes-validations` entry and what compiling it gave.
#[derive(Debug)]
struct Rule {
    rule: String,
    message: String,
    message_expression: String,
    reason: Option<String>,
    field_path: String,
    optional_old_self: Option<bool>,
    /// `Ok(None)`: an empty rule (refused for new CRDs, ignored when evaluating).
    compiled: Result<Option<Compiled>, String>,
    message_compiled: Option<Result<Compiled, String>>,
    /// `fieldPath` as the field path it names, when valid.
    normalized_path: Option<String>,
    /// The schema path of the list (not `x-kubernetes-list-type: map`) above the rule,
    /// where `oldSelf` cannot be correlated.
    uncorrelatable: Option<String>,
}

impl Rule {
    /// What upstream quotes in messages: the message, or else the rule.
    fn error_string(&self) -> &str {
        match self.message.trim() {
            "" => self.rule.trim(),
            m => m,
        }
    }

    fn uses_old_self(&self) -> bool {
        matches!(&self.compiled, Ok(Some(c)) if c.uses_old_self)
    }

    /// Go's `%#v` of the rule, as upstream shows it in CRD errors.
    fn go_struct(&self) -> String {
        let reason = match &self.reason {
            None => "(*apiextensions.FieldValueErrorReason)(nil)".to_string(),
            Some(_) => "(*apiextensions.FieldValueErrorReason)(0xc000000000)".to_string(),
        };
        let optional = match self.optional_old_self {
            None => "(*bool)(nil)",
            Some(_) => "(*bool)(0xc000000000)",
        };
        use super::errors::go_quote;
        format!(
            "apiextensions.ValidationRule{{Rule:{}, Message:{}, MessageExpression:{}, Reason:{reason}, FieldPath:{}, OptionalOldSelf:{optional}}}",
            go_quote(&self.rule),
            go_quote(&self.message),
            go_quote(&self.message_expression),
            go_quote(&self.field_path),
        )
    }
}

fn text(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn has_rules(schema: &Value, depth: usize) -> bool {
    if depth > MAX_DEPTH {
        return false;
    }
    schema
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
        .is_some_and(|r| !r.is_empty())
        || schema
            .get("properties")
            .and_then(Value::as_object)
            .is_some_and(|p| p.values().any(|s| has_rules(s, depth + 1)))
        || ["items", "additionalProperties"]
            .iter()
            .any(|k| schema.get(*k).is_some_and(|s| has_rules(s, depth + 1)))
}

impl Node {
    /// The node of `schema` at schema path `path`, its rules compiled. `uncorrelatable`
    /// is the path of the nearest list above whose items cannot be correlated.
    fn build(
        schema: &Value,
        path: &str,
        uncorrelatable: Option<&str>,
        embedded: bool,
        depth: usize,
    ) -> Node {
        let mut node = Node {
            ty: text(schema, "type"),
            meta: schema.get("$ref").is_some(),
            ..Node::default()
        };
        if depth > MAX_DEPTH || node.meta {
            return node;
        }
        if let Some(props) = schema.get("properties").and_then(Value::as_object) {
            for (name, prop) in props {
                let embedded = prop
                    .get("x-kubernetes-embedded-resource")
                    .and_then(Value::as_bool)
                    == Some(true);
                node.props.push(Prop {
                    name: name.clone(),
                    cel: convert::escape(name),
                    node: Node::build(
                        prop,
                        &format!("{path}.properties[{name}]"),
                        uncorrelatable,
                        embedded,
                        depth + 1,
                    ),
                });
            }
        }
        // An embedded resource's (like the root's) type and metadata are always there.
        if embedded {
            for (name, meta) in [("apiVersion", false), ("kind", false), ("metadata", true)] {
                if !node.props.iter().any(|p| p.name == name) {
                    node.props.push(Prop {
                        name: name.into(),
                        cel: Some(name.into()),
                        node: Node {
                            ty: if meta { "object" } else { "string" }.into(),
                            meta,
                            ..Node::default()
                        },
                    });
                }
            }
        }
        if let Some(items) = schema.get("items").filter(|i| i.is_object()) {
            let list_type = text(schema, "x-kubernetes-list-type");
            if list_type == "map" {
                node.map_keys = Some(
                    super::json::str_list(schema.get("x-kubernetes-list-map-keys"))
                        .into_iter()
                        .map(str::to_string)
                        .collect(),
                );
            }
            let below = if list_type == "map" {
                uncorrelatable.map(str::to_string)
            } else {
                Some(uncorrelatable.unwrap_or(path).to_string())
            };
            let item_embedded = items
                .get("x-kubernetes-embedded-resource")
                .and_then(Value::as_bool)
                == Some(true);
            node.items = Some(Box::new(Node::build(
                items,
                &format!("{path}.items"),
                below.as_deref(),
                item_embedded,
                depth + 1,
            )));
        }
        if let Some(extra) = schema.get("additionalProperties").filter(|a| a.is_object()) {
            let extra_embedded = extra
                .get("x-kubernetes-embedded-resource")
                .and_then(Value::as_bool)
                == Some(true);
            node.additional = Some(Box::new(Node::build(
                extra,
                &format!("{path}.additionalProperties"),
                uncorrelatable,
                extra_embedded,
                depth + 1,
            )));
        }
        node.opaque = node.props.is_empty()
            && node.additional.is_none()
            && schema
                .get("x-kubernetes-preserve-unknown-fields")
                .and_then(Value::as_bool)
                == Some(true);
        let rules: Vec<Rule> = schema
            .get("x-kubernetes-validations")
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .map(|r| compile_rule(r, &node, uncorrelatable))
            .collect();
        node.rules = rules;
        node.active = !node.rules.is_empty()
            || node.props.iter().any(|p| p.node.active)
            || node.items.as_ref().is_some_and(|n| n.active)
            || node.additional.as_ref().is_some_and(|n| n.active);
        node
    }
}

fn compile_rule(r: &Value, node: &Node, uncorrelatable: Option<&str>) -> Rule {
    let mut rule = Rule {
        rule: text(r, "rule"),
        message: text(r, "message"),
        message_expression: text(r, "messageExpression"),
        reason: r.get("reason").and_then(Value::as_str).map(str::to_string),
        field_path: text(r, "fieldPath"),
        optional_old_self: r.get("optionalOldSelf").and_then(Value::as_bool),
        compiled: Ok(None),
        message_compiled: None,
        normalized_path: None,
        uncorrelatable: uncorrelatable.map(str::to_string),
    };
    let scope = Scope {
        node,
        optional_old_self: rule.optional_old_self == Some(true),
    };
    if rule.rule.trim().is_empty() {
        return rule;
    }
    rule.compiled = match compile::compile(&rule.rule, &scope) {
        Err(issues) => Err(format!("compilation failed: {issues}")),
        Ok((_, Kind::String | Kind::NotBool | Kind::Other)) => {
            Err("cel expression must evaluate to a bool".to_string())
        }
        Ok((c, _)) => Ok(Some(c)),
    };
    if !rule.message_expression.is_empty() {
        rule.message_compiled = Some(match compile::compile(&rule.message_expression, &scope) {
            Err(issues) => Err(format!("messageExpression compilation failed: {issues}")),
            Ok((_, Kind::Bool | Kind::Other)) => {
                Err("messageExpression must evaluate to a string".to_string())
            }
            Ok((c, _)) => Ok(c),
        });
    }
    if !rule.field_path.is_empty() {
        rule.normalized_path = compile::field_path(&rule.field_path, node).ok();
    }
    rule
}

/// The compiled rules of one served version's schema.
#[derive(Debug)]
pub struct Validator {
    root: Node,
}

impl Validator {
    /// The rules of the object schema `schema` (the CRD version's `openAPIV3Schema`
    /// completed with `apiVersion`, `kind` and `metadata`), or `None` if it has none.
    pub fn new(schema: &Value) -> Option<Validator> {
        if !has_rules(schema, 0) {
            return None;
        }
        Some(Validator {
            root: Node::build(schema, "openAPIV3Schema", None, true, 0),
        })
    }

    /// The rules `obj` fails; `old` is the stored object on an update.
    pub fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
        let mut errors = Vec::new();
        validate_node(&self.root, obj, old, "", false, &mut errors, 0);
        errors
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Validates `new` (and what lies below it) at `node`. `old` is the correlated old value;
/// `parent_unchanged` whether the nearest correlated value above is unchanged.
fn validate_node(
    node: &Node,
    new: &Value,
    old: Option<&Value>,
    path: &str,
    parent_unchanged: bool,
    errors: &mut Vec<FieldError>,
    depth: usize,
) {
    if depth > MAX_DEPTH || new.is_null() || !node.active {
        return;
    }
    let old = old.filter(|o| !o.is_null());
    let unchanged = match old {
        Some(o) => o == new,
        None => parent_unchanged,
    };
    if !node.rules.is_empty() {
        evaluate(node, new, old, path, unchanged, errors);
    }
    match new {
        Value::Object(map) if !node.meta => {
            for p in node.props.iter().filter(|p| p.node.active) {
                if let Some(child) = map.get(&p.name) {
                    let old_child = old.and_then(|o| o.get(&p.name));
                    let at = join(path, &p.name);
                    validate_node(&p.node, child, old_child, &at, unchanged, errors, depth + 1);
                }
            }
            if let Some(extra) = node.additional.as_deref().filter(|n| n.active) {
                for (k, child) in map {
                    let old_child = old.and_then(|o| o.get(k));
                    let at = format!("{path}[{k}]");
                    validate_node(extra, child, old_child, &at, unchanged, errors, depth + 1);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_node) = node.items.as_deref().filter(|n| n.active) {
                for (i, item) in items.iter().enumerate() {
                    let old_item = node
                        .map_keys
                        .as_ref()
                        .and_then(|keys| correlate(keys, item, old));
                    let at = format!("{path}[{i}]");
                    validate_node(item_node, item, old_item, &at, unchanged, errors, depth + 1);
                }
            }
        }
        _ => {}
    }
}

/// The element of the old `x-kubernetes-list-type: map` list with the keys of `item`.
fn correlate<'a>(keys: &[String], item: &Value, old: Option<&'a Value>) -> Option<&'a Value> {
    if keys.is_empty() {
        return None;
    }
    old?.as_array()?
        .iter()
        .find(|o| keys.iter().all(|k| o.get(k) == item.get(k)))
}

fn evaluate(
    node: &Node,
    new: &Value,
    old: Option<&Value>,
    path: &str,
    unchanged: bool,
    errors: &mut Vec<FieldError>,
) {
    let ty = node.ty.as_str();
    // Upstream validates from a nil field path: errors at the root are reported at `<nil>`.
    let at = if path.is_empty() { "<nil>" } else { path };
    let self_val = convert::to_val(Some(node), new, 0);
    let old_val = old.map(|o| convert::to_val(Some(node), o, 0));
    let mut plain: Option<Context<'_, '_>> = None;
    let mut optional: Option<Context<'_, '_>> = None;
    for rule in &node.rules {
        let compiled = match &rule.compiled {
            Ok(Some(c)) => c,
            Ok(None) => continue,
            Err(e) => {
                errors.push(FieldError::invalid(
                    at,
                    ty,
                    &format!("rule compile error: {e}"),
                ));
                continue;
            }
        };
        let optional_old = rule.optional_old_self == Some(true);
        if compiled.uses_old_self && old.is_none() && !optional_old {
            continue;
        }
        let ctx: &Context<'_, '_> = if optional_old {
            optional.get_or_insert_with(|| {
                let mut c = Context::with_env(library::env());
                c.add_variable_as_val("self", self_val.clone());
                let old: Option<Box<dyn Val + '_>> = old_val.clone();
                c.add_variable_as_val("oldSelf", Box::new(CelOptional::from(old)));
                c
            })
        } else {
            plain.get_or_insert_with(|| {
                let mut c = Context::with_env(library::env());
                c.add_variable_as_val("self", self_val.clone());
                if let Some(o) = &old_val {
                    c.add_variable_as_val("oldSelf", o.clone());
                }
                c
            })
        };
        let detail = match run(&compiled.program, ctx) {
            Ok(cel::Value::Bool(true)) => continue,
            Ok(cel::Value::Bool(false)) => None,
            Ok(other) => Some(format!(
                "cel expression must evaluate to a bool, not {} evaluating rule: {}",
                other.type_of(),
                rule.error_string()
            )),
            Err(e) if library::is_overload_error(&e) => Some(format!(
                "'no such overload': call arguments did not match a supported operator, function or macro signature for rule: {}",
                rule.error_string()
            )),
            Err(e) => Some(format!(
                "{} evaluating rule: {}",
                library::error_text(&e),
                rule.error_string()
            )),
        };
        if let Some(detail) = detail {
            errors.push(FieldError::invalid(at, ty, &detail));
            continue;
        }
        // Ratcheting: an unchanged value keeps passing what it passed when stored.
        if !compiled.uses_old_self && unchanged {
            continue;
        }
        let field = match &rule.normalized_path {
            Some(p) => join(path, p),
            None => at.to_string(),
        };
        let message = rule
            .message_compiled
            .as_ref()
            .and_then(|m| m.as_ref().ok())
            .and_then(|m| match run(&m.program, ctx) {
                Ok(cel::Value::String(s)) => {
                    let s = s.trim();
                    (!s.is_empty() && !s.contains('\n') && s.len() <= MAX_MESSAGE_BYTES)
                        .then(|| s.to_string())
                }
                _ => None,
            })
            .unwrap_or_else(|| match rule.message.trim() {
                "" => format!("failed rule: {}", rule.rule.trim()),
                m => m.to_string(),
            });
        errors.push(match rule.reason.as_deref() {
            Some("FieldValueForbidden") => FieldError::forbidden(field, &message),
            Some("FieldValueRequired") => FieldError::required(field, &message),
            Some("FieldValueDuplicate") => FieldError::duplicate(field, ty),
            _ => FieldError::invalid(field, ty, &message),
        });
    }
}

/// The reasons upstream accepts for a rule.
const REASONS: [&str; 4] = [
    "FieldValueDuplicate",
    "FieldValueForbidden",
    "FieldValueInvalid",
    "FieldValueRequired",
];

/// Upstream's `MaxRequestSizeBytes`-derived limit on a rule's message.
const MAX_MESSAGE_LEN: usize = 2048;

/// The CRD checks of every rule in `schema` (a CRD version's `openAPIV3Schema`, at field
/// path `field`): well-formed entries, rules and message expressions that compile, valid
/// field paths, `oldSelf` only where it can be correlated.
pub fn check_schema(schema: &Value, field: &str, errs: &mut Vec<FieldError>) {
    if !has_rules(schema, 0) {
        return;
    }
    // The root is a resource: apiVersion, kind and metadata are there besides what the
    // schema declares.
    let root = Node::build(schema, field, None, true, 0);
    report(&root, field, errs, 0);
}

fn has_newline(s: &str) -> bool {
    s.contains(['\n', '\r'])
}

fn report(node: &Node, field: &str, errs: &mut Vec<FieldError>, depth: usize) {
    if depth > MAX_DEPTH || !node.active {
        return;
    }
    for (i, rule) in node.rules.iter().enumerate() {
        let at = |k: &str| format!("{field}.x-kubernetes-validations[{i}].{k}");
        let before = errs.len();
        let (trimmed_rule, trimmed_msg) = (rule.rule.trim(), rule.message.trim());
        if trimmed_rule.is_empty() {
            errs.push(FieldError::required(at("rule"), "rule is not specified"));
        } else if !rule.message.is_empty() && trimmed_msg.is_empty() {
            errs.push(FieldError::invalid(
                at("message"),
                rule.message.as_str(),
                "message must be non-empty if specified",
            ));
        } else if rule.message.len() > MAX_MESSAGE_LEN {
            let head: String = rule.message.chars().take(10).collect();
            errs.push(FieldError::invalid(
                at("message"),
                format!("{head}...").as_str(),
                "message must have a maximum length of 2048 characters",
            ));
        } else if has_newline(trimmed_msg) {
            errs.push(FieldError::invalid(
                at("message"),
                rule.message.as_str(),
                "message must not contain line breaks",
            ));
        } else if has_newline(trimmed_rule) && trimmed_msg.is_empty() {
            errs.push(FieldError::required(
                at("message"),
                "message must be specified if rule contains line breaks",
            ));
        }
        if !rule.message_expression.is_empty() && rule.message_expression.trim().is_empty() {
            errs.push(FieldError::required(
                at("messageExpression"),
                "messageExpression must be non-empty if specified",
            ));
        }
        if let Some(reason) = &rule.reason
            && !REASONS.contains(&reason.as_str())
        {
            errs.push(FieldError::not_supported(
                at("reason"),
                reason.as_str(),
                &REASONS,
            ));
        }
        if !rule.field_path.is_empty() {
            let value = rule.field_path.as_str();
            if rule.field_path.trim().is_empty() {
                errs.push(FieldError::invalid(
                    at("fieldPath"),
                    value,
                    "fieldPath must be non-empty if specified",
                ));
            } else if has_newline(value) {
                errs.push(FieldError::invalid(
                    at("fieldPath"),
                    value,
                    "fieldPath must not contain line breaks",
                ));
            } else if rule.normalized_path.is_none() {
                errs.push(FieldError::invalid(
                    at("fieldPath"),
                    value,
                    "fieldPath must be a valid path",
                ));
            }
        }
        // As upstream, expressions are only compiled for well-formed entries.
        if errs.len() > before {
            continue;
        }
        if let Err(e) = &rule.compiled {
            errs.push(FieldError::invalid(at("rule"), &Raw(&rule.go_struct()), e));
        }
        if let Some(Err(e)) = &rule.message_compiled {
            errs.push(FieldError::invalid(
                at("messageExpression"),
                &Raw(&rule.go_struct()),
                e,
            ));
        }
        if rule.uses_old_self() {
            if let Some(list) = &rule.uncorrelatable {
                errs.push(FieldError::invalid(
                    at("rule"),
                    rule.rule.as_str(),
                    &format!(
                        "oldSelf cannot be used on the uncorrelatable portion of the schema within {list}"
                    ),
                ));
            }
        } else if let (Some(flag), Ok(Some(_))) = (rule.optional_old_self, &rule.compiled) {
            errs.push(FieldError::invalid(
                at("optionalOldSelf"),
                &flag,
                "may not be set if oldSelf is not used in rule",
            ));
        }
    }
    for p in &node.props {
        report(
            &p.node,
            &format!("{field}.properties[{}]", p.name),
            errs,
            depth + 1,
        );
    }
    if let Some(items) = &node.items {
        report(items, &format!("{field}.items"), errs, depth + 1);
    }
    if let Some(extra) = &node.additional {
        report(
            extra,
            &format!("{field}.additionalProperties"),
            errs,
            depth + 1,
        );
    }
}
