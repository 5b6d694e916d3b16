//! ValidatingAdmissionPolicy and ValidatingAdmissionPolicyBinding objects read into what
//! admission evaluates, compiled once when the object changes (upstream compiles each
//! policy when its informer delivers it). An expression that does not compile is kept as
//! its error: evaluating it fails, and the policy's failure policy decides, as upstream.

use super::super::webhook::config::{Rule, parse_rule, selector, strings};
use r8s_api::cel::admission::{
    Declarations, Expect, Expression, MatchCondition, Variable, compile, compile_variables,
};
use r8s_api::selector::{LabelSelector, from_label_selector_json};
use serde_json::Value;
use std::sync::Arc;

/// A policy's `matchConstraints` or a binding's `matchResources`.
pub(crate) struct Matcher {
    pub rules: Vec<Rule>,
    pub exclude: Vec<Rule>,
    pub namespace_selector: Result<LabelSelector, String>,
    pub object_selector: Result<LabelSelector, String>,
    /// `matchPolicy: Equivalent` (unset counts as `Exact`, as upstream's matcher reads it;
    /// the API defaults it to `Equivalent`).
    pub equivalent: bool,
}

impl Matcher {
    fn parse(v: &Value) -> Matcher {
        let rules = |k: &str| -> Vec<Rule> {
            v.get(k)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(parse_rule)
                .collect()
        };
        Matcher {
            rules: rules("resourceRules"),
            exclude: rules("excludeResourceRules"),
            namespace_selector: selector(v.get("namespaceSelector")),
            object_selector: selector(v.get("objectSelector")),
            equivalent: v.get("matchPolicy").and_then(Value::as_str) == Some("Equivalent"),
        }
    }
}

/// One `validations[]` entry.
pub(crate) struct Validation {
    pub expression: Result<Expression, String>,
    /// The expression as written (for `failed expression: …`).
    pub source: String,
    pub message: String,
    pub message_expression: Option<Result<Expression, String>>,
    /// The Status reason of a denial (`Invalid` unless set).
    pub reason: &'static str,
}

/// A policy's `paramKind`.
pub(crate) struct ParamKind {
    pub group: String,
    pub version: String,
    pub kind: String,
}

impl ParamKind {
    /// Go's `GroupVersionKind.String()`: `group/version, Kind=kind`.
    pub fn describe(&self) -> String {
        format!("{}/{}, Kind={}", self.group, self.version, self.kind)
    }
}

/// One ValidatingAdmissionPolicy, ready to match and evaluate.
pub(crate) struct Policy {
    pub name: String,
    /// `failurePolicy: Fail` (the default) rather than `Ignore`.
    pub fail: bool,
    pub param_kind: Option<ParamKind>,
    /// `None` when absent (the API requires it): the policy then matches nothing.
    pub constraints: Option<Matcher>,
    pub match_conditions: Vec<MatchCondition>,
    pub variables: Vec<Variable>,
    pub validations: Vec<Validation>,
    /// What makes the whole policy unusable (upstream's `ConfigurationError`).
    pub configuration_error: Option<String>,
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

fn reason(r: &str) -> &'static str {
    match r {
        "Forbidden" => "Forbidden",
        "Unauthorized" => "Unauthorized",
        "RequestEntityTooLarge" => "RequestEntityTooLarge",
        _ => "Invalid",
    }
}

impl Policy {
    /// The policy a stored ValidatingAdmissionPolicy is.
    pub(crate) fn compile(obj: &Value) -> Vec<Arc<Policy>> {
        let null = Value::Null;
        let spec = obj.get("spec").unwrap_or(&null);
        let mut configuration_error = None;
        let param_kind = spec.get("paramKind").filter(|k| k.is_object()).map(|k| {
            let api_version = text(k, "apiVersion");
            let (group, version) = match api_version.split_once('/') {
                Some((g, v)) if !v.contains('/') => (g, v),
                Some(_) => {
                    configuration_error = Some(format!(
                        "failed to parse apiVersion of paramKind '{api_version}' with error: unexpected GroupVersion string: {api_version}"
                    ));
                    ("", "")
                }
                None => ("", api_version),
            };
            ParamKind {
                group: group.to_string(),
                version: version.to_string(),
                kind: text(k, "kind").to_string(),
            }
        });
        let params = param_kind.is_some();
        let pairs: Vec<(String, String)> = spec
            .get("variables")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|v| {
                (
                    text(v, "name").to_string(),
                    text(v, "expression").to_string(),
                )
            })
            .collect();
        let variables = compile_variables(
            &pairs,
            Declarations {
                params,
                authorizer: true,
                variables: None,
            },
        );
        let decls = Declarations {
            params,
            authorizer: true,
            variables: Some(&variables),
        };
        let match_conditions = spec
            .get("matchConditions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|c| MatchCondition::compile(text(c, "name"), text(c, "expression"), &decls))
            .collect();
        // Message expressions may not use the authorizer.
        let message_decls = Declarations {
            authorizer: false,
            ..decls
        };
        let validations = spec
            .get("validations")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|v| {
                let source = text(v, "expression");
                let message_expression = text(v, "messageExpression");
                Validation {
                    expression: compile(source, &decls, Expect::Bool),
                    source: source.to_string(),
                    message: text(v, "message").to_string(),
                    message_expression: (!message_expression.trim().is_empty())
                        .then(|| compile(message_expression, &message_decls, Expect::String)),
                    reason: reason(text(v, "reason")),
                }
            })
            .collect();
        let policy = Policy {
            name: text(obj.get("metadata").unwrap_or(&null), "name").to_string(),
            fail: text(spec, "failurePolicy") != "Ignore",
            param_kind,
            constraints: spec
                .get("matchConstraints")
                .filter(|m| m.is_object())
                .map(Matcher::parse),
            match_conditions,
            variables,
            validations,
            configuration_error,
        };
        vec![Arc::new(policy)]
    }
}

/// A binding's `paramRef`.
pub(crate) struct ParamRef {
    pub name: String,
    pub namespace: String,
    pub selector: Option<Result<LabelSelector, String>>,
    /// `parameterNotFoundAction: Deny`.
    pub deny_if_missing: bool,
}

/// One ValidatingAdmissionPolicyBinding.
pub(crate) struct Binding {
    pub name: String,
    pub policy_name: String,
    pub param_ref: Option<ParamRef>,
    /// `None`: the binding narrows nothing.
    pub match_resources: Option<Matcher>,
    pub deny: bool,
    pub warn: bool,
    pub audit: bool,
}

impl Binding {
    /// The binding a stored ValidatingAdmissionPolicyBinding is.
    pub(crate) fn compile(obj: &Value) -> Vec<Arc<Binding>> {
        let null = Value::Null;
        let spec = obj.get("spec").unwrap_or(&null);
        let actions = strings(spec.get("validationActions"));
        let has = |a: &str| actions.iter().any(|x| x == a);
        let binding = Binding {
            name: text(obj.get("metadata").unwrap_or(&null), "name").to_string(),
            policy_name: text(spec, "policyName").to_string(),
            param_ref: spec
                .get("paramRef")
                .filter(|r| r.is_object())
                .map(|r| ParamRef {
                    name: text(r, "name").to_string(),
                    namespace: text(r, "namespace").to_string(),
                    selector: r
                        .get("selector")
                        .filter(|s| !s.is_null())
                        .map(|s| from_label_selector_json(s).map_err(|e| e.to_string())),
                    deny_if_missing: text(r, "parameterNotFoundAction") == "Deny",
                }),
            match_resources: spec
                .get("matchResources")
                .filter(|m| m.is_object())
                .map(Matcher::parse),
            deny: has("Deny"),
            warn: has("Warn"),
            audit: has("Audit"),
        };
        vec![Arc::new(binding)]
    }
}
