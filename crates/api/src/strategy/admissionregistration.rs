//! admissionregistration.k8s.io/v1.
//!
//! - Mutating and ValidatingWebhookConfigurations: the defaults upstream fills into every
//!   webhook, so what is stored (and what `kubectl get -o yaml` shows, and what a JSON
//!   patch can replace) is what the API server acts on.
//! - ValidatingAdmissionPolicies and their bindings: upstream's defaults (`failurePolicy:
//!   Fail`, `matchPolicy: Equivalent`, empty selectors, rule scope `*`) and validation,
//!   expressions compiled as the API server will evaluate them ([`crate::cel::admission`]):
//!   a policy whose expressions do not compile is refused with upstream's messages.
//!   Not done: the authorization check of a binding's `paramRef` (upstream refuses a
//!   binding whose author may not read the parameters), and the relaxed checks upstream
//!   makes for expressions an update leaves unchanged.

use serde_json::{Value, json};

use super::errors::{Raw, go_quote};
use super::json::{Errs, child, index, opt_arr, opt_obj, opt_str, opt_str_list};
use super::validation::{self as v, NameRule, validate_label_selector};
use super::{FieldError, Strategy};
use crate::cel::admission::{Declarations, Expect, Variable, compile, compile_variables};

pub struct WebhookConfigurationStrategy {
    /// Mutating webhooks also get `reinvocationPolicy: Never`.
    pub mutating: bool,
}

fn default_field(obj: &mut serde_json::Map<String, Value>, field: &str, value: Value) {
    if obj.get(field).is_none_or(Value::is_null) {
        obj.insert(field.into(), value);
    }
}

impl Strategy for WebhookConfigurationStrategy {
    fn default(&self, obj: &mut Value) {
        let Some(hooks) = obj.get_mut("webhooks").and_then(Value::as_array_mut) else {
            return;
        };
        for hook in hooks.iter_mut().filter_map(Value::as_object_mut) {
            default_field(hook, "failurePolicy", json!("Fail"));
            default_field(hook, "matchPolicy", json!("Equivalent"));
            default_field(hook, "namespaceSelector", json!({}));
            default_field(hook, "objectSelector", json!({}));
            default_field(hook, "timeoutSeconds", json!(10));
            if self.mutating {
                default_field(hook, "reinvocationPolicy", json!("Never"));
            }
            if let Some(service) = hook
                .get_mut("clientConfig")
                .and_then(|c| c.get_mut("service"))
                .and_then(Value::as_object_mut)
            {
                default_field(service, "port", json!(443));
            }
            for rule in hook
                .get_mut("rules")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
                .filter_map(Value::as_object_mut)
            {
                default_field(rule, "scope", json!("*"));
            }
        }
    }
}

/// Defaults of a `MatchResources` (a policy's `matchConstraints`, a binding's
/// `matchResources`).
fn default_match_resources(m: &mut serde_json::Map<String, Value>) {
    default_field(m, "matchPolicy", json!("Equivalent"));
    default_field(m, "namespaceSelector", json!({}));
    default_field(m, "objectSelector", json!({}));
    for list in ["resourceRules", "excludeResourceRules"] {
        for rule in m
            .get_mut(list)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
            .filter_map(Value::as_object_mut)
        {
            default_field(rule, "scope", json!("*"));
        }
    }
}

fn spec_mut(obj: &mut Value) -> Option<&mut serde_json::Map<String, Value>> {
    obj.get_mut("spec").and_then(Value::as_object_mut)
}

pub struct ValidatingAdmissionPolicyStrategy;

impl Strategy for ValidatingAdmissionPolicyStrategy {
    fn default(&self, obj: &mut Value) {
        let Some(spec) = spec_mut(obj) else {
            return;
        };
        default_field(spec, "failurePolicy", json!("Fail"));
        if let Some(m) = spec
            .get_mut("matchConstraints")
            .and_then(Value::as_object_mut)
        {
            default_match_resources(m);
        }
    }

    /// Status is the API server's (upstream's type checker writes it).
    fn prepare_for_create(&self, obj: &mut Value) {
        if let Some(map) = obj.as_object_mut() {
            map.insert("status".into(), json!({}));
        }
    }

    fn validate_create(&self, obj: &Value) -> Vec<FieldError> {
        let mut errs = Vec::new();
        validate_policy(obj, &mut errs);
        errs
    }
}

pub struct ValidatingAdmissionPolicyBindingStrategy;

impl Strategy for ValidatingAdmissionPolicyBindingStrategy {
    fn default(&self, obj: &mut Value) {
        if let Some(m) = spec_mut(obj)
            .and_then(|s| s.get_mut("matchResources"))
            .and_then(Value::as_object_mut)
        {
            default_match_resources(m);
        }
    }

    fn validate_create(&self, obj: &Value) -> Vec<FieldError> {
        let mut errs = Vec::new();
        validate_binding(obj, &mut errs);
        errs
    }
}

const FAILURE_POLICIES: [&str; 2] = ["Fail", "Ignore"];
const MATCH_POLICIES: [&str; 2] = ["Equivalent", "Exact"];
const OPERATIONS: [&str; 5] = ["*", "CONNECT", "CREATE", "DELETE", "UPDATE"];
const SCOPES: [&str; 3] = ["*", "Cluster", "Namespaced"];
const REASONS: [&str; 3] = ["Forbidden", "Invalid", "RequestEntityTooLarge"];
const VALIDATION_ACTIONS: [&str; 3] = ["Audit", "Deny", "Warn"];
const MAX_MATCH_CONDITIONS: usize = 64;
const MAX_AUDIT_ANNOTATIONS: usize = 20;
const MAX_AUDIT_VALUE_EXPRESSION: usize = 5 * 1024;

/// Go's `%#v` of a string slice of named type `ty`.
fn go_slice(ty: &str, items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| go_quote(i)).collect();
    format!("[]{ty}{{{}}}", quoted.join(", "))
}

fn has_newline(s: &str) -> bool {
    s.contains(['\n', '\r'])
}

/// Upstream's `isCELIdentifier`.
fn is_cel_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
        && !crate::cel::RESERVED.contains(&name)
}

fn validate_policy(obj: &Value, errs: &mut Errs) {
    let empty = json!({});
    let spec = obj.get("spec").filter(|s| s.is_object()).unwrap_or(&empty);
    let at = "spec";
    match opt_str(spec, "failurePolicy", at, errs) {
        None => errs.push(FieldError::required(child(at, "failurePolicy"), "")),
        Some(p) if !FAILURE_POLICIES.contains(&p) => errs.push(FieldError::not_supported(
            child(at, "failurePolicy"),
            p,
            &FAILURE_POLICIES,
        )),
        Some(_) => {}
    }
    let params = match opt_obj(spec, "paramKind", at, errs) {
        Some(kind) => {
            validate_param_kind(kind, &child(at, "paramKind"), errs);
            true
        }
        None => false,
    };
    match spec.get("matchConstraints").filter(|m| !m.is_null()) {
        None => errs.push(FieldError::required(child(at, "matchConstraints"), "")),
        Some(m) => {
            let field = child(at, "matchConstraints");
            validate_match_resources(m, &field, errs);
            if super::json::get_arr(m, "resourceRules").is_empty() {
                errs.push(FieldError::required(child(&field, "resourceRules"), ""));
            }
        }
    }
    // Match conditions are compiled without the policy's variables, as upstream
    // validates them.
    let plain = Declarations {
        params,
        authorizer: true,
        variables: None,
    };
    validate_match_conditions(spec, at, &plain, errs);
    let variables = validate_variables(spec, at, params, errs);
    let decls = Declarations {
        params,
        authorizer: true,
        variables: Some(&variables),
    };
    let validations = opt_arr(spec, "validations", at, errs).unwrap_or_default();
    let annotations = opt_arr(spec, "auditAnnotations", at, errs).unwrap_or_default();
    if validations.is_empty() && annotations.is_empty() {
        let detail = "validations or auditAnnotations must contain at least one item";
        errs.push(FieldError::required(child(at, "validations"), detail));
        errs.push(FieldError::required(child(at, "auditAnnotations"), detail));
        return;
    }
    for (i, val) in validations.iter().enumerate() {
        validate_validation(val, &index(&child(at, "validations"), i), &decls, errs);
    }
    if annotations.len() > MAX_AUDIT_ANNOTATIONS {
        errs.push(FieldError::invalid(
            child(at, "auditAnnotations"),
            &Raw("[...]"),
            &format!("must not have more than {MAX_AUDIT_ANNOTATIONS} auditAnnotations"),
        ));
    }
    let name = crate::strategy::json::str_at(obj, &["metadata", "name"]);
    let mut keys: Vec<&str> = Vec::new();
    for (i, a) in annotations.iter().enumerate() {
        let field = index(&child(at, "auditAnnotations"), i);
        let key = opt_str(a, "key", &field, errs).unwrap_or("");
        if name.is_empty() {
            errs.push(FieldError::invalid(
                child(&field, "key"),
                key,
                "requires metadata.name be non-empty",
            ));
        } else {
            let qualified = format!("{name}/{key}");
            for msg in v::is_qualified_name(&qualified) {
                errs.push(FieldError::invalid(
                    child(&field, "key"),
                    qualified.as_str(),
                    &msg,
                ));
            }
        }
        let source = opt_str(a, "valueExpression", &field, errs).unwrap_or("");
        let trimmed = source.trim();
        let at_value = child(&field, "valueExpression");
        if trimmed.is_empty() {
            errs.push(FieldError::required(
                at_value,
                "valueExpression is not specified",
            ));
        } else if trimmed.len() > MAX_AUDIT_VALUE_EXPRESSION {
            errs.push(FieldError::required(
                at_value,
                &format!("must not exceed {MAX_AUDIT_VALUE_EXPRESSION} bytes in length"),
            ));
        } else if let Err(e) = compile(trimmed, &decls, Expect::StringOrNull) {
            errs.push(FieldError::invalid(at_value, source, &e));
        }
        if keys.contains(&key) {
            errs.push(FieldError::duplicate(child(&field, "key"), key));
        }
        keys.push(key);
    }
}

fn validate_param_kind(kind: &Value, at: &str, errs: &mut Errs) {
    match opt_str(kind, "apiVersion", at, errs).unwrap_or("") {
        "" => errs.push(FieldError::required(child(at, "apiVersion"), "")),
        api_version => {
            let field = child(at, "apiVersion");
            let (group, version) = match api_version.matches('/').count() {
                0 => ("", api_version),
                1 => api_version.split_once('/').unwrap_or(("", api_version)),
                _ => {
                    errs.push(FieldError::invalid(
                        field,
                        api_version,
                        &format!("unexpected GroupVersion string: {api_version}"),
                    ));
                    ("", "x")
                }
            };
            let group_errs = if group.is_empty() {
                Vec::new()
            } else {
                v::is_dns1123_subdomain(group)
            };
            if !group_errs.is_empty() {
                errs.push(FieldError::invalid(
                    child(at, "apiVersion"),
                    group,
                    &group_errs.join(","),
                ));
            }
            if version.is_empty() {
                errs.push(FieldError::invalid(
                    child(at, "apiVersion"),
                    api_version,
                    "version must be specified",
                ));
            } else {
                let version_errs = v::is_dns1035_label(version);
                if !version_errs.is_empty() {
                    errs.push(FieldError::invalid(
                        child(at, "apiVersion"),
                        version,
                        &version_errs.join(","),
                    ));
                }
            }
        }
    }
    match opt_str(kind, "kind", at, errs).unwrap_or("") {
        "" => errs.push(FieldError::required(child(at, "kind"), "")),
        k => {
            let kind_errs = v::is_dns1035_label(&k.to_lowercase());
            if !kind_errs.is_empty() {
                errs.push(FieldError::invalid(
                    child(at, "kind"),
                    k,
                    &format!(
                        "may have mixed case, but should otherwise match: {}",
                        kind_errs.join(",")
                    ),
                ));
            }
        }
    }
}

/// Upstream's `validateMatchResources`.
fn validate_match_resources(m: &Value, at: &str, errs: &mut Errs) {
    if !m.is_object() {
        errs.push(FieldError::type_invalid(at, m, "object"));
        return;
    }
    match opt_str(m, "matchPolicy", at, errs) {
        None => errs.push(FieldError::required(child(at, "matchPolicy"), "")),
        Some(p) if !MATCH_POLICIES.contains(&p) => errs.push(FieldError::not_supported(
            child(at, "matchPolicy"),
            p,
            &MATCH_POLICIES,
        )),
        Some(_) => {}
    }
    for sel in ["namespaceSelector", "objectSelector"] {
        match m.get(sel).filter(|s| !s.is_null()) {
            None => errs.push(FieldError::required(child(at, sel), "")),
            Some(s) => validate_label_selector(s, &child(at, sel), errs),
        }
    }
    for list in ["resourceRules", "excludeResourceRules"] {
        for (i, rule) in opt_arr(m, list, at, errs)
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            validate_named_rule(rule, &index(&child(at, list), i), errs);
        }
    }
}

/// Upstream's `validateNamedRuleWithOperations`.
fn validate_named_rule(rule: &Value, at: &str, errs: &mut Errs) {
    if !rule.is_object() {
        errs.push(FieldError::type_invalid(at, rule, "object"));
        return;
    }
    let names = opt_str_list(rule, "resourceNames", at, errs).unwrap_or_default();
    for (i, name) in names.iter().enumerate() {
        let field = index(&child(at, "resourceNames"), i);
        for msg in v::validate_name(NameRule::PathSegment, name, false) {
            errs.push(FieldError::invalid(field.as_str(), *name, &msg));
        }
        if names[..i].contains(name) {
            errs.push(FieldError::duplicate(field, *name));
        }
    }
    let ops = opt_str_list(rule, "operations", at, errs).unwrap_or_default();
    if ops.is_empty() {
        errs.push(FieldError::required(child(at, "operations"), ""));
    }
    if ops.len() > 1 && ops.contains(&"*") {
        errs.push(FieldError::invalid(
            child(at, "operations"),
            &Raw(&go_slice("admissionregistration.OperationType", &ops)),
            "if '*' is present, must not specify other operations",
        ));
    }
    for (i, op) in ops.iter().enumerate() {
        if !OPERATIONS.contains(op) {
            errs.push(FieldError::not_supported(
                index(&child(at, "operations"), i),
                *op,
                &OPERATIONS,
            ));
        }
    }
    let groups = opt_str_list(rule, "apiGroups", at, errs).unwrap_or_default();
    if groups.is_empty() {
        errs.push(FieldError::required(child(at, "apiGroups"), ""));
    }
    if groups.len() > 1 && groups.contains(&"*") {
        errs.push(FieldError::invalid(
            child(at, "apiGroups"),
            &Raw(&go_slice("string", &groups)),
            "if '*' is present, must not specify other API groups",
        ));
    }
    let versions = opt_str_list(rule, "apiVersions", at, errs).unwrap_or_default();
    if versions.is_empty() {
        errs.push(FieldError::required(child(at, "apiVersions"), ""));
    }
    if versions.len() > 1 && versions.contains(&"*") {
        errs.push(FieldError::invalid(
            child(at, "apiVersions"),
            &Raw(&go_slice("string", &versions)),
            "if '*' is present, must not specify other API versions",
        ));
    }
    for (i, version) in versions.iter().enumerate() {
        if version.is_empty() {
            errs.push(FieldError::required(
                index(&child(at, "apiVersions"), i),
                "",
            ));
        }
    }
    let resources = opt_str_list(rule, "resources", at, errs).unwrap_or_default();
    validate_resources(&resources, &child(at, "resources"), errs);
    if let Some(scope) = opt_str(rule, "scope", at, errs)
        && !SCOPES.contains(&scope)
    {
        errs.push(FieldError::not_supported(
            child(at, "scope"),
            scope,
            &SCOPES,
        ));
    }
}

/// Upstream's `validateResources` (subresources allowed).
fn validate_resources(resources: &[&str], at: &str, errs: &mut Errs) {
    if resources.is_empty() {
        errs.push(FieldError::required(at, ""));
    }
    let mut with_wildcard_sub: Vec<&str> = Vec::new();
    let mut sub_with_wildcard_res: Vec<&str> = Vec::new();
    let (mut double, mut single, mut plain) = (false, false, false);
    for (i, rs) in resources.iter().enumerate() {
        if rs.is_empty() {
            errs.push(FieldError::required(index(at, i), ""));
            continue;
        }
        double |= *rs == "*/*";
        single |= *rs == "*";
        let Some((res, sub)) = rs.split_once('/') else {
            plain = *rs != "*";
            continue;
        };
        if with_wildcard_sub.contains(&res) {
            errs.push(FieldError::invalid(
                index(at, i),
                *rs,
                &format!("if '{res}/*' is present, must not specify {rs}"),
            ));
        }
        if sub_with_wildcard_res.contains(&sub) {
            errs.push(FieldError::invalid(
                index(at, i),
                *rs,
                &format!("if '*/{sub}' is present, must not specify {rs}"),
            ));
        }
        if sub == "*" {
            with_wildcard_sub.push(res);
        }
        if res == "*" {
            sub_with_wildcard_res.push(sub);
        }
    }
    if resources.len() > 1 && double {
        errs.push(FieldError::invalid(
            at,
            &Raw(&go_slice("string", resources)),
            "if '*/*' is present, must not specify other resources",
        ));
    }
    if single && plain {
        errs.push(FieldError::invalid(
            at,
            &Raw(&go_slice("string", resources)),
            "if '*' is present, must not specify other resources without subresources",
        ));
    }
}

fn validate_match_conditions(spec: &Value, at: &str, decls: &Declarations<'_>, errs: &mut Errs) {
    let field = child(at, "matchConditions");
    let conditions = opt_arr(spec, "matchConditions", at, errs).unwrap_or_default();
    if conditions.len() > MAX_MATCH_CONDITIONS {
        errs.push(FieldError::too_many(
            field.as_str(),
            conditions.len(),
            MAX_MATCH_CONDITIONS,
        ));
    }
    let mut names: Vec<&str> = Vec::new();
    for (i, c) in conditions.iter().enumerate() {
        let at = index(&field, i);
        let source = opt_str(c, "expression", &at, errs).unwrap_or("");
        let trimmed = source.trim();
        if trimmed.is_empty() {
            errs.push(FieldError::required(child(&at, "expression"), ""));
        } else if let Err(e) = compile(trimmed, decls, Expect::Bool) {
            errs.push(FieldError::invalid(child(&at, "expression"), trimmed, &e));
        }
        let name = opt_str(c, "name", &at, errs).unwrap_or("");
        if name.is_empty() {
            errs.push(FieldError::required(child(&at, "name"), ""));
        } else {
            for msg in v::is_qualified_name(name) {
                errs.push(FieldError::invalid(child(&at, "name"), name, &msg));
            }
            if names.contains(&name) {
                errs.push(FieldError::duplicate(child(&at, "name"), name));
            }
            names.push(name);
        }
    }
}

/// Validates and compiles `spec.variables`.
fn validate_variables(spec: &Value, at: &str, params: bool, errs: &mut Errs) -> Vec<Variable> {
    let field = child(at, "variables");
    let list = opt_arr(spec, "variables", at, errs).unwrap_or_default();
    let mut pairs = Vec::with_capacity(list.len());
    for (i, var) in list.iter().enumerate() {
        let at = index(&field, i);
        let name = opt_str(var, "name", &at, errs).unwrap_or("");
        if name.trim().is_empty() {
            errs.push(FieldError::required(
                child(&at, "name"),
                "name is not specified",
            ));
        } else if !is_cel_identifier(name) {
            errs.push(FieldError::invalid(
                child(&at, "name"),
                name,
                "name is not a valid CEL identifier",
            ));
        }
        let source = opt_str(var, "expression", &at, errs).unwrap_or("");
        if source.trim().is_empty() {
            errs.push(FieldError::required(
                child(&at, "expression"),
                "expression is not specified",
            ));
        }
        pairs.push((name.to_string(), source.to_string()));
    }
    let decls = Declarations {
        params,
        authorizer: true,
        variables: None,
    };
    let compiled = compile_variables(&pairs, decls);
    for (i, (var, (_, source))) in compiled.iter().zip(&pairs).enumerate() {
        if source.trim().is_empty() {
            continue;
        }
        if let Some(e) = var.error() {
            errs.push(FieldError::invalid(
                child(&index(&field, i), "expression"),
                source.as_str(),
                e,
            ));
        }
    }
    compiled
}

fn validate_validation(val: &Value, at: &str, decls: &Declarations<'_>, errs: &mut Errs) {
    let source = opt_str(val, "expression", at, errs).unwrap_or("");
    if source.trim().is_empty() {
        errs.push(FieldError::required(
            child(at, "expression"),
            "expression is not specified",
        ));
    } else if let Err(e) = compile(source, decls, Expect::Bool) {
        errs.push(FieldError::invalid(child(at, "expression"), source, &e));
    }
    let message_expression = opt_str(val, "messageExpression", at, errs).unwrap_or("");
    if !message_expression.is_empty() && message_expression.trim().is_empty() {
        errs.push(FieldError::invalid(
            child(at, "messageExpression"),
            message_expression,
            "must be non-empty if specified",
        ));
    } else if !message_expression.trim().is_empty() {
        // Message expressions may not use the authorizer.
        let message_decls = Declarations {
            authorizer: false,
            ..*decls
        };
        if let Err(e) = compile(message_expression, &message_decls, Expect::String) {
            errs.push(FieldError::invalid(
                child(at, "messageExpression"),
                message_expression,
                &e,
            ));
        }
    }
    let message = opt_str(val, "message", at, errs).unwrap_or("");
    if !message.is_empty() && message.trim().is_empty() {
        errs.push(FieldError::invalid(
            child(at, "message"),
            message,
            "message must be non-empty if specified",
        ));
    } else if has_newline(message.trim()) {
        errs.push(FieldError::invalid(
            child(at, "message"),
            message,
            "message must not contain line breaks",
        ));
    }
    if let Some(reason) = opt_str(val, "reason", at, errs)
        && !REASONS.contains(&reason)
    {
        errs.push(FieldError::not_supported(
            child(at, "reason"),
            reason,
            &REASONS,
        ));
    }
}

fn validate_binding(obj: &Value, errs: &mut Errs) {
    let empty = json!({});
    let spec = obj.get("spec").filter(|s| s.is_object()).unwrap_or(&empty);
    let at = "spec";
    match opt_str(spec, "policyName", at, errs).unwrap_or("") {
        "" => errs.push(FieldError::required(child(at, "policyName"), "")),
        name => {
            for msg in v::is_dns1123_subdomain(name) {
                errs.push(FieldError::invalid(child(at, "policyName"), name, &msg));
            }
        }
    }
    if let Some(param_ref) = opt_obj(spec, "paramRef", at, errs) {
        validate_param_ref(param_ref, &child(at, "paramRef"), errs);
    }
    if let Some(m) = spec.get("matchResources").filter(|m| !m.is_null()) {
        // Upstream reports these under `matchResouces` (sic).
        validate_match_resources(m, &child(at, "matchResouces"), errs);
    }
    let field = child(at, "validationActions");
    let actions = opt_str_list(spec, "validationActions", at, errs).unwrap_or_default();
    for (i, action) in actions.iter().enumerate() {
        if !VALIDATION_ACTIONS.contains(action) {
            errs.push(FieldError::not_supported(
                index(&field, i),
                *action,
                &VALIDATION_ACTIONS,
            ));
        }
        if actions[..i].contains(action) {
            errs.push(FieldError::duplicate(index(&field, i), *action));
        }
    }
    if actions.contains(&"Deny") && actions.contains(&"Warn") {
        errs.push(FieldError::invalid(
            field.as_str(),
            &Raw(&go_slice("admissionregistration.ValidationAction", &actions)),
            "must not contain both Deny and Warn (repeating the same validation failure information in the API response and headers serves no purpose)",
        ));
    }
    if actions.is_empty() {
        errs.push(FieldError::required(
            field,
            "at least one validation action is required",
        ));
    }
}

fn validate_param_ref(param_ref: &Value, at: &str, errs: &mut Errs) {
    let name = opt_str(param_ref, "name", at, errs).unwrap_or("");
    let selector = param_ref.get("selector").filter(|s| !s.is_null());
    if !name.is_empty() {
        for msg in v::validate_name(NameRule::PathSegment, name, false) {
            errs.push(FieldError::invalid(child(at, "name"), name, &msg));
        }
        if selector.is_some() {
            errs.push(FieldError::forbidden(
                child(at, "name"),
                "name and selector are mutually exclusive",
            ));
        }
    }
    if let Some(sel) = selector {
        validate_label_selector(sel, &child(at, "selector"), errs);
        if !name.is_empty() {
            errs.push(FieldError::forbidden(
                child(at, "selector"),
                "name and selector are mutually exclusive",
            ));
        }
    }
    if name.is_empty() && selector.is_none() {
        errs.push(FieldError::required(
            at,
            "one of name or selector must be specified",
        ));
    }
    match opt_str(param_ref, "parameterNotFoundAction", at, errs).unwrap_or("") {
        "" => errs.push(FieldError::required(
            child(at, "parameterNotFoundAction"),
            "",
        )),
        "Deny" | "Allow" => {}
        other => errs.push(FieldError::not_supported(
            child(at, "parameterNotFoundAction"),
            other,
            &["Deny", "Allow"],
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhooks_get_upstream_defaults() {
        let mut obj = json!({"webhooks": [{"name": "a.example.com",
            "clientConfig": {"service": {"name": "s", "namespace": "n"}},
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                       "resources": ["pods"]}],
            "failurePolicy": "Ignore", "sideEffects": "None", "admissionReviewVersions": ["v1"]}]});
        WebhookConfigurationStrategy { mutating: true }.default(&mut obj);
        let hook = &obj["webhooks"][0];
        assert_eq!(hook["failurePolicy"], "Ignore", "kept");
        assert_eq!(hook["matchPolicy"], "Equivalent");
        assert_eq!(hook["namespaceSelector"], json!({}));
        assert_eq!(hook["objectSelector"], json!({}));
        assert_eq!(hook["timeoutSeconds"], 10);
        assert_eq!(hook["reinvocationPolicy"], "Never");
        assert_eq!(hook["clientConfig"]["service"]["port"], 443);
        assert_eq!(hook["rules"][0]["scope"], "*");
        let mut validating = json!({"webhooks": [{"name": "b"}]});
        WebhookConfigurationStrategy { mutating: false }.default(&mut validating);
        assert!(
            validating["webhooks"][0]
                .get("reinvocationPolicy")
                .is_none()
        );
        assert_eq!(validating["webhooks"][0]["failurePolicy"], "Fail");
    }
}

#[cfg(test)]
mod policy_tests {
    use super::*;

    fn policy(spec: Value) -> Value {
        json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": "demo-policy.example.com"}, "spec": spec})
    }

    fn errors(strategy: &dyn Strategy, mut obj: Value) -> Vec<String> {
        strategy.default(&mut obj);
        strategy
            .validate_create(&obj)
            .into_iter()
            .map(|e| e.to_string())
            .collect()
    }

    fn docs_spec() -> Value {
        json!({"matchConstraints": {"resourceRules": [{"apiGroups": ["apps"],
            "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
            "resources": ["deployments"]}]},
            "validations": [{"expression": "object.spec.replicas <= 5"}]})
    }

    #[test]
    fn the_docs_policy_is_defaulted_and_valid() {
        let mut obj = policy(docs_spec());
        let s = ValidatingAdmissionPolicyStrategy;
        s.default(&mut obj);
        assert_eq!(obj["spec"]["failurePolicy"], "Fail");
        let m = &obj["spec"]["matchConstraints"];
        assert_eq!(m["matchPolicy"], "Equivalent");
        assert_eq!(m["namespaceSelector"], json!({}));
        assert_eq!(m["objectSelector"], json!({}));
        assert_eq!(m["resourceRules"][0]["scope"], "*");
        assert!(s.validate_create(&obj).is_empty());
        s.prepare_for_create(&mut obj);
        assert_eq!(obj["status"], json!({}));
    }

    #[test]
    fn policies_are_refused_with_upstreams_messages() {
        let s = ValidatingAdmissionPolicyStrategy;
        let mut spec = docs_spec();
        spec["validations"] = json!([
            {"expression": "object.spec.replicas <"},
            {"expression": "object.spec.paused"},
            {"expression": "true", "messageExpression": "object.metadata.name",
             "message": "two\nlines", "reason": "Teapot"},
            {"expression": "params.max > 1"},
        ]);
        spec["variables"] = json!([{"name": "in", "expression": "1"},
            {"name": "ok", "expression": "variables.missing"}]);
        spec["matchConditions"] = json!([{"name": "x", "expression": "variables.ok"},
            {"name": "x", "expression": "true"}]);
        let errs = errors(&s, policy(spec));
        let want_prefixes = [
            "spec.matchConditions[0].expression: Invalid value: \"variables.ok\": compilation failed: ERROR: <input>:1:1: undeclared reference to 'variables'",
            "spec.matchConditions[1].name: Duplicate value: \"x\"",
            "spec.variables[0].name: Invalid value: \"in\": name is not a valid CEL identifier",
            "spec.variables[1].expression: Invalid value: \"variables.missing\": compilation failed: ERROR: <input>:1:10: undefined field 'missing'",
            "spec.validations[0].expression: Invalid value: \"object.spec.replicas <\": compilation failed: ERROR: <input>:1:",
            "spec.validations[1].expression: Invalid value: \"object.spec.paused\": must evaluate to bool but got dyn",
            "spec.validations[2].messageExpression: Invalid value: \"object.metadata.name\": must evaluate to string but got dyn",
            "spec.validations[2].message: Invalid value: \"two\\nlines\": message must not contain line breaks",
            "spec.validations[2].reason: Unsupported value: \"Teapot\": supported values: \"Forbidden\", \"Invalid\", \"RequestEntityTooLarge\"",
            "spec.validations[3].expression: Invalid value: \"params.max > 1\": compilation failed: ERROR: <input>:1:1: undeclared reference to 'params'",
        ];
        assert_eq!(errs.len(), want_prefixes.len(), "{errs:#?}");
        for (got, want) in errs.iter().zip(want_prefixes) {
            assert!(got.starts_with(want), "{got}\n  wanted {want}");
        }
        let missing = errors(&s, policy(json!({})));
        assert_eq!(
            missing,
            [
                "spec.matchConstraints: Required value",
                "spec.validations: Required value: validations or auditAnnotations must contain at least one item",
                "spec.auditAnnotations: Required value: validations or auditAnnotations must contain at least one item",
            ]
        );
        let mut bad_rules = docs_spec();
        bad_rules["matchConstraints"] = json!({"matchPolicy": "Fuzzy", "resourceRules": [
            {"operations": ["*", "CREATE"], "apiGroups": [], "apiVersions": ["v1"],
             "resources": ["*", "pods"], "scope": "Everywhere"}]});
        bad_rules["paramKind"] = json!({"apiVersion": "v1"});
        let errs = errors(&s, policy(bad_rules));
        assert_eq!(
            errs,
            [
                "spec.paramKind.kind: Required value",
                "spec.matchConstraints.matchPolicy: Unsupported value: \"Fuzzy\": supported values: \"Equivalent\", \"Exact\"",
                "spec.matchConstraints.resourceRules[0].operations: Invalid value: []admissionregistration.OperationType{\"*\", \"CREATE\"}: if '*' is present, must not specify other operations",
                "spec.matchConstraints.resourceRules[0].apiGroups: Required value",
                "spec.matchConstraints.resourceRules[0].resources: Invalid value: []string{\"*\", \"pods\"}: if '*' is present, must not specify other resources without subresources",
                "spec.matchConstraints.resourceRules[0].scope: Unsupported value: \"Everywhere\": supported values: \"*\", \"Cluster\", \"Namespaced\"",
            ]
        );
    }

    #[test]
    fn bindings_are_validated_as_upstream() {
        let s = ValidatingAdmissionPolicyBindingStrategy;
        let binding = |spec: Value| {
            json!({"apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "ValidatingAdmissionPolicyBinding", "metadata": {"name": "b"}, "spec": spec})
        };
        let mut ok = binding(json!({"policyName": "demo-policy.example.com",
            "validationActions": ["Deny"],
            "matchResources": {"namespaceSelector": {"matchLabels": {"environment": "test"}}}}));
        assert!(errors(&s, ok.clone()).is_empty());
        s.default(&mut ok);
        assert_eq!(ok["spec"]["matchResources"]["matchPolicy"], "Equivalent");
        assert_eq!(ok["spec"]["matchResources"]["objectSelector"], json!({}));
        let errs = errors(
            &s,
            binding(
                json!({"validationActions": ["Deny", "Warn", "Deny", "Shout"],
                "paramRef": {"name": "p", "selector": {}}}),
            ),
        );
        assert_eq!(
            errs,
            [
                "spec.policyName: Required value",
                "spec.paramRef.name: Forbidden: name and selector are mutually exclusive",
                "spec.paramRef.selector: Forbidden: name and selector are mutually exclusive",
                "spec.paramRef.parameterNotFoundAction: Required value",
                "spec.validationActions[2]: Duplicate value: \"Deny\"",
                "spec.validationActions[3]: Unsupported value: \"Shout\": supported values: \"Audit\", \"Deny\", \"Warn\"",
                "spec.validationActions: Invalid value: []admissionregistration.ValidationAction{\"Deny\", \"Warn\", \"Deny\", \"Shout\"}: must not contain both Deny and Warn (repeating the same validation failure information in the API response and headers serves no purpose)",
            ]
        );
        assert_eq!(
            errors(&s, binding(json!({"policyName": "p"}))),
            ["spec.validationActions: Required value: at least one validation action is required"]
        );
    }
}
