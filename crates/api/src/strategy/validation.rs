//! Generic validators shared by every kind and by the registry: DNS names, label keys and
//! values, annotations, `ObjectMeta`, label selectors. Messages follow apimachinery's
//! `util/validation` and `api/validation` wording.

use serde_json::Value;

use super::FieldError;
use super::errors::{Raw, go_quote, go_string_map, go_string_slice};
use super::json::{self, Errs, child, get, index, opt_arr, opt_int, opt_str, opt_str_list, opt_str_map};

/// Upper bound of the summed length of all annotation keys and values.
pub const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

/// Message of `ValidateImmutableField`.
pub const FIELD_IMMUTABLE: &str = "field is immutable";

/// Message of `ValidateNonnegativeField`.
pub const IS_NEGATIVE: &str = "must be greater than or equal to 0";

/// How `metadata.name` of a kind is validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// Most kinds: RFC 1123 subdomain (max 253).
    Dns1123Subdomain,
    /// Namespaces, StatefulSets: RFC 1123 label (max 63).
    Dns1123Label,
    /// Services: RFC 1035 label (starts with a letter).
    Dns1035Label,
    /// RBAC kinds: anything that is a valid URL path segment.
    PathSegment,
}

const DNS1123_LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_LABEL_ERR: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1123_SUBDOMAIN_ERR: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
const DNS1035_LABEL_FMT: &str = "[a-z]([-a-z0-9]*[a-z0-9])?";
const DNS1035_LABEL_ERR: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character";
const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const QUALIFIED_NAME_ERR: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const LABEL_VALUE_ERR: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const CONFIG_KEY_FMT: &str = "[-._a-zA-Z0-9]+";
const CONFIG_KEY_ERR: &str = "a valid config key must consist of alphanumeric characters, '-', '_' or '.'";
const PERCENT_FMT: &str = "[0-9]+%";
const PERCENT_ERR: &str = "a valid percent string must be a numeric string followed by an ending '%'";

/// `must be no more than N characters`.
pub fn max_len_error(n: usize) -> String {
    format!("must be no more than {n} characters")
}

/// Upstream's `RegexError`: message, examples, regex.
pub fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    if examples.is_empty() {
        return format!("{msg} (regex used for validation is '{fmt}')");
    }
    let ex: Vec<String> = examples.iter().map(|e| format!("'{e}', ")).collect();
    format!("{msg} (e.g. {}regex used for validation is '{fmt}')", ex.join(" or "))
}

/// `must be between LO and HI, inclusive`.
pub fn inclusive_range_error(lo: i64, hi: i64) -> String {
    format!("must be between {lo} and {hi}, inclusive")
}

fn is_lower_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

fn matches_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && is_lower_alnum(b[0])
        && is_lower_alnum(b[b.len() - 1])
        && b.iter().all(|&c| is_lower_alnum(c) || c == b'-')
}

fn matches_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.split('.').all(matches_dns1123_label)
}

/// Errors for a value that must be an RFC 1123 label (empty when valid).
pub fn is_dns1123_label(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push(max_len_error(63));
    }
    if !matches_dns1123_label(s) {
        if matches_dns1123_subdomain(s) {
            errs.push("must not contain dots".to_string());
        } else {
            errs.push(regex_error(DNS1123_LABEL_ERR, DNS1123_LABEL_FMT, &["my-name", "123-abc"]));
        }
    }
    errs
}

/// Errors for a value that must be an RFC 1123 subdomain (empty when valid).
pub fn is_dns1123_subdomain(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 253 {
        errs.push(max_len_error(253));
    }
    if !matches_dns1123_subdomain(s) {
        errs.push(regex_error(DNS1123_SUBDOMAIN_ERR, DNS1123_SUBDOMAIN_FMT, &["example.com"]));
    }
    errs
}

/// Errors for a value that must be an RFC 1035 label.
pub fn is_dns1035_label(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push(max_len_error(63));
    }
    let b = s.as_bytes();
    let ok = !b.is_empty()
        && b[0].is_ascii_lowercase()
        && is_lower_alnum(b[b.len() - 1])
        && b.iter().all(|&c| is_lower_alnum(c) || c == b'-');
    if !ok {
        errs.push(regex_error(DNS1035_LABEL_ERR, DNS1035_LABEL_FMT, &["my-name", "abc-123"]));
    }
    errs
}

fn matches_qualified_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_' || c == b'.')
}

/// Errors for a qualified name (label key, annotation key, finalizer): `[prefix/]name`.
pub fn is_qualified_name(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else {
                for m in is_dns1123_subdomain(prefix) {
                    errs.push(format!("prefix part {m}"));
                }
            }
            *name
        }
        _ => {
            errs.push(format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(QUALIFIED_NAME_ERR, QUALIFIED_NAME_FMT, &["MyName", "my.name", "123-abc"])
            ));
            return errs;
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else if name.len() > 63 {
        errs.push(format!("name part {}", max_len_error(63)));
    }
    if !matches_qualified_name_part(name) {
        errs.push(format!(
            "name part {}",
            regex_error(QUALIFIED_NAME_ERR, QUALIFIED_NAME_FMT, &["MyName", "my.name", "123-abc"])
        ));
    }
    errs
}

/// Errors for a label value (may be empty).
pub fn is_valid_label_value(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 63 {
        errs.push(max_len_error(63));
    }
    if !value.is_empty() && !matches_qualified_name_part(value) {
        errs.push(regex_error(LABEL_VALUE_ERR, LABEL_VALUE_FMT, &["MyValue", "my_value", "12345"]));
    }
    errs
}

/// Errors for a ConfigMap/Secret data key.
pub fn is_config_map_key(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 253 {
        errs.push(max_len_error(253));
    }
    let ok = !value.is_empty()
        && value
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.' || c == b'_');
    if !ok {
        errs.push(regex_error(CONFIG_KEY_ERR, CONFIG_KEY_FMT, &["key.name", "KEY_NAME", "key-name"]));
    }
    errs.extend(has_chdir_prefix(value));
    errs
}

fn has_chdir_prefix(value: &str) -> Option<String> {
    if value == "." {
        Some("must not be '.'".to_string())
    } else if value == ".." {
        Some("must not be '..'".to_string())
    } else if value.starts_with("..") {
        Some("must not start with '..'".to_string())
    } else {
        None
    }
}

/// Errors for a port number (1-65535).
pub fn is_valid_port_num(port: i64) -> Vec<String> {
    if (1..=65535).contains(&port) {
        Vec::new()
    } else {
        vec![inclusive_range_error(1, 65535)]
    }
}

/// Errors for an IANA_SVC_NAME port name.
pub fn is_valid_port_name(port: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if port.len() > 15 {
        errs.push(max_len_error(15));
    }
    if port.is_empty() || !port.bytes().all(|c| is_lower_alnum(c) || c == b'-') {
        errs.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".to_string());
    }
    if !port.bytes().any(|c| c.is_ascii_lowercase()) {
        errs.push("must contain at least one letter (a-z)".to_string());
    }
    if port.contains("--") {
        errs.push("must not contain consecutive hyphens".to_string());
    }
    if port.starts_with('-') || port.ends_with('-') {
        errs.push("must not begin or end with a hyphen".to_string());
    }
    errs
}

/// Errors for a percent string like `25%`.
pub fn is_valid_percent(s: &str) -> Vec<String> {
    let ok = s.len() > 1 && s.ends_with('%') && s[..s.len() - 1].bytes().all(|c| c.is_ascii_digit());
    if ok {
        Vec::new()
    } else {
        vec![regex_error(PERCENT_ERR, PERCENT_FMT, &["1%", "93%"])]
    }
}

/// Errors for a relaxed environment variable name (printable ASCII except `=`).
pub fn is_relaxed_env_var_name(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.is_empty() {
        errs.push("environment variable name must be non-empty".to_string());
    }
    if s.chars().any(|c| !(' '..='~').contains(&c) || c == '=') {
        errs.push("a valid environment variable name must consist only of printable ASCII characters other than '='".to_string());
    }
    errs
}

fn path_segment_name(name: &str, prefix: bool) -> Vec<String> {
    if !prefix && (name == "." || name == "..") {
        return vec![format!("may not be '{name}'")];
    }
    let mut errs = Vec::new();
    for bad in ["/", "%"] {
        if name.contains(bad) {
            errs.push(format!("may not contain '{bad}'"));
        }
    }
    errs
}

/// Upstream quirk kept on purpose: a generateName prefix ending in '-' is checked with
/// its last two characters replaced by "a".
fn mask_trailing_dash(name: &str) -> String {
    if name.len() > 1 && name.ends_with('-') {
        let mut cut = name.len() - 2;
        while !name.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}a", &name[..cut])
    } else {
        name.to_string()
    }
}

/// Name errors under `rule`; `prefix` is true for `generateName`.
pub fn validate_name(rule: NameRule, name: &str, prefix: bool) -> Vec<String> {
    if rule == NameRule::PathSegment {
        return path_segment_name(name, prefix);
    }
    let name = if prefix { mask_trailing_dash(name) } else { name.to_string() };
    match rule {
        NameRule::Dns1123Subdomain => is_dns1123_subdomain(&name),
        NameRule::Dns1123Label => is_dns1123_label(&name),
        NameRule::Dns1035Label => is_dns1035_label(&name),
        NameRule::PathSegment => Vec::new(),
    }
}

/// `ValidateNonnegativeField`.
pub fn validate_nonnegative(field: &str, value: i64) -> Vec<FieldError> {
    if value < 0 {
        vec![FieldError::invalid(field, &value, IS_NEGATIVE)]
    } else {
        Vec::new()
    }
}

/// Validates label keys and values; `labels` is the (possibly junk) JSON map.
pub fn validate_labels(labels: &Value, field: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if labels.is_null() {
        return errs;
    }
    if let Some(entries) = json::str_map_of(labels, field, &mut errs) {
        validate_label_pairs(&entries, field, &mut errs);
    }
    errs
}

pub(crate) fn validate_label_pairs(entries: &[(&str, &str)], field: &str, errs: &mut Errs) {
    for (k, v) in entries {
        for m in is_qualified_name(k) {
            errs.push(FieldError::invalid(field, *k, &m));
        }
        for m in is_valid_label_value(v) {
            errs.push(FieldError::invalid(field, *v, &m));
        }
    }
}

/// Validates annotation keys and the total size limit.
pub fn validate_annotations(annotations: &Value, field: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if annotations.is_null() {
        return errs;
    }
    if let Some(entries) = json::str_map_of(annotations, field, &mut errs) {
        let mut total = 0usize;
        for (k, v) in &entries {
            for m in is_qualified_name(&k.to_lowercase()) {
                errs.push(FieldError::invalid(field, *k, &m));
            }
            total = total.saturating_add(k.len()).saturating_add(v.len());
        }
        if total > TOTAL_ANNOTATION_SIZE_LIMIT {
            errs.push(FieldError::too_long(field, TOTAL_ANNOTATION_SIZE_LIMIT));
        }
    }
    errs
}

fn validate_owner_references(refs: &[Value], field: &str, errs: &mut Errs) {
    let mut first_controller: Option<String> = None;
    for (i, r) in refs.iter().enumerate() {
        let p = index(field, i);
        if !r.is_object() {
            errs.push(FieldError::type_invalid(p, r, "object"));
            continue;
        }
        let api_version = opt_str(r, "apiVersion", &p, errs).unwrap_or("");
        let kind = opt_str(r, "kind", &p, errs).unwrap_or("");
        let name = opt_str(r, "name", &p, errs).unwrap_or("");
        let uid = opt_str(r, "uid", &p, errs).unwrap_or("");
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", api_version),
        };
        if version.is_empty() {
            errs.push(FieldError::invalid(child(field, "apiVersion"), api_version, "version must not be empty"));
        }
        if kind.is_empty() {
            errs.push(FieldError::invalid(child(field, "kind"), kind, "kind must not be empty"));
        }
        if name.is_empty() {
            errs.push(FieldError::invalid(child(field, "name"), name, "name must not be empty"));
        }
        if uid.is_empty() {
            errs.push(FieldError::invalid(child(field, "uid"), uid, "uid must not be empty"));
        }
        if group.is_empty() && version == "v1" && kind == "Event" {
            errs.push(FieldError::invalid(
                field,
                &Raw(&r.to_string()),
                "/v1, Kind=Event is disallowed from being an owner",
            ));
        }
        if json::opt_bool(r, "controller", &p, errs) == Some(true) {
            let cur = format!("{kind}/{name}");
            match &first_controller {
                Some(first) => errs.push(FieldError::invalid(
                    field,
                    &Raw(&Value::Array(refs.to_vec()).to_string()),
                    &format!(
                        "Only one reference can have Controller set to true. Found \"true\" in references for {first} and {cur}"
                    ),
                )),
                None => first_controller = Some(cur),
            }
        }
    }
}

fn validate_finalizers(list: &[&str], field: &str, errs: &mut Errs) {
    for f in list {
        for m in is_qualified_name(f) {
            errs.push(FieldError::invalid(field, *f, &m));
        }
        // Core's extra rule: unqualified finalizers must be one of the standard ones.
        if !f.contains('/') && !matches!(*f, "kubernetes" | "orphan" | "foregroundDeletion") {
            errs.push(FieldError::invalid(
                field,
                *f,
                "name is neither a standard finalizer name nor is it fully qualified",
            ));
        }
    }
    if list.contains(&"orphan") && list.contains(&"foregroundDeletion") {
        errs.push(FieldError::invalid(
            field,
            &Raw(&go_string_slice(list.iter().copied())),
            "finalizer orphan and foregroundDeletion cannot be both set",
        ));
    }
}

/// `ValidateObjectMeta`: name/generateName, namespace presence, generation, labels,
/// annotations, owner references and finalizers of `obj.metadata`.
pub fn validate_object_meta(obj: &Value, namespaced: bool, name_rule: NameRule) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let empty = Value::Object(Default::default());
    let meta = match get(obj, "metadata") {
        Some(m) if m.is_object() => m,
        Some(other) => {
            errs.push(FieldError::type_invalid("metadata", other, "object"));
            &empty
        }
        None => &empty,
    };
    let p = "metadata";
    if let Some(gen_name) = opt_str(meta, "generateName", p, &mut errs).filter(|s| !s.is_empty()) {
        for m in validate_name(name_rule, gen_name, true) {
            errs.push(FieldError::invalid("metadata.generateName", gen_name, &m));
        }
    }
    match opt_str(meta, "name", p, &mut errs).filter(|s| !s.is_empty()) {
        None => errs.push(FieldError::required("metadata.name", "name or generateName is required")),
        Some(name) => {
            for m in validate_name(name_rule, name, false) {
                errs.push(FieldError::invalid("metadata.name", name, &m));
            }
        }
    }
    let ns = opt_str(meta, "namespace", p, &mut errs).unwrap_or("");
    if namespaced {
        if ns.is_empty() {
            errs.push(FieldError::required("metadata.namespace", ""));
        } else {
            for m in validate_name(NameRule::Dns1123Label, ns, false) {
                errs.push(FieldError::invalid("metadata.namespace", ns, &m));
            }
        }
    } else if !ns.is_empty() {
        errs.push(FieldError::forbidden("metadata.namespace", "not allowed on this type"));
    }
    if let Some(g) = opt_int(meta, "generation", p, &mut errs) {
        errs.extend(validate_nonnegative("metadata.generation", g));
    }
    if let Some(labels) = opt_str_map(meta, "labels", p, &mut errs) {
        validate_label_pairs(&labels, "metadata.labels", &mut errs);
    }
    if let Some(a) = get(meta, "annotations") {
        errs.extend(validate_annotations(a, "metadata.annotations"));
    }
    if let Some(refs) = opt_arr(meta, "ownerReferences", p, &mut errs) {
        validate_owner_references(refs, "metadata.ownerReferences", &mut errs);
    }
    if let Some(list) = opt_str_list(meta, "finalizers", p, &mut errs) {
        validate_finalizers(&list, "metadata.finalizers", &mut errs);
    }
    errs
}

/// `ValidateObjectMetaUpdate`: immutable identity fields, resourceVersion presence,
/// generation monotonicity, no new finalizers while deleting, plus label/annotation
/// validity of the new object.
pub fn validate_object_meta_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let empty = Value::Object(Default::default());
    let nm = get(new, "metadata").filter(|m| m.is_object()).unwrap_or(&empty);
    let om = get(old, "metadata").filter(|m| m.is_object()).unwrap_or(&empty);
    if get(om, "deletionTimestamp").is_some() {
        let newf = json::get_arr(nm, "finalizers");
        let oldf = json::get_arr(om, "finalizers");
        let mut extra: Vec<&str> = newf
            .iter()
            .filter(|f| !oldf.contains(f))
            .filter_map(Value::as_str)
            .collect();
        extra.sort_unstable();
        extra.dedup();
        if !extra.is_empty() {
            errs.push(FieldError::forbidden(
                "metadata.finalizers",
                &format!(
                    "no new finalizers can be added if the object is being deleted, found new finalizers {}",
                    go_string_slice(extra)
                ),
            ));
        }
    }
    if json::get_str(nm, "resourceVersion").unwrap_or("").is_empty() {
        errs.push(FieldError::invalid("metadata.resourceVersion", "", "must be specified for an update"));
    }
    let ng = json::get_int(nm, "generation").unwrap_or(0);
    if ng < json::get_int(om, "generation").unwrap_or(0) {
        errs.push(FieldError::invalid("metadata.generation", &ng, "must not be decremented"));
    }
    for key in ["name", "namespace", "uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds"] {
        let nv = get(nm, key).cloned().unwrap_or(Value::Null);
        let ov = get(om, key).cloned().unwrap_or(Value::Null);
        if nv != ov && !(is_empty_string(&nv) && is_empty_string(&ov)) {
            errs.push(FieldError::invalid(format!("metadata.{key}"), &nv, FIELD_IMMUTABLE));
        }
    }
    if let Some(l) = get(nm, "labels") {
        errs.extend(validate_labels(l, "metadata.labels"));
    }
    if let Some(a) = get(nm, "annotations") {
        errs.extend(validate_annotations(a, "metadata.annotations"));
    }
    if let Some(refs) = opt_arr(nm, "ownerReferences", "metadata", &mut errs) {
        validate_owner_references(refs, "metadata.ownerReferences", &mut errs);
    }
    errs
}

fn is_empty_string(v: &Value) -> bool {
    v.is_null() || v.as_str() == Some("")
}

/// `ValidateImmutableField` on JSON values (absent ≡ null).
pub(crate) fn immutable(new: Option<&Value>, old: Option<&Value>, field: &str, shown: &dyn Fn(&Value) -> String) -> Option<FieldError> {
    let n = new.cloned().unwrap_or(Value::Null);
    let o = old.cloned().unwrap_or(Value::Null);
    if n == o {
        return None;
    }
    Some(FieldError::invalid(field, &Raw(&shown(&n)), FIELD_IMMUTABLE))
}

/// Renders a JSON value like the Go value upstream would print for simple fields.
pub(crate) fn show_plain(v: &Value) -> String {
    use super::errors::BadValue;
    v.render()
}

// ---- label selectors ----

/// Validates a `metav1.LabelSelector` at `field`.
pub(crate) fn validate_label_selector(sel: &Value, field: &str, errs: &mut Errs) {
    if !sel.is_object() {
        errs.push(FieldError::type_invalid(field, sel, "object"));
        return;
    }
    if let Some(ml) = opt_str_map(sel, "matchLabels", field, errs) {
        validate_label_pairs(&ml, &child(field, "matchLabels"), errs);
    }
    let Some(exprs) = opt_arr(sel, "matchExpressions", field, errs) else {
        return;
    };
    for (i, e) in exprs.iter().enumerate() {
        let p = index(&child(field, "matchExpressions"), i);
        if !e.is_object() {
            errs.push(FieldError::type_invalid(p, e, "object"));
            continue;
        }
        let op = opt_str(e, "operator", &p, errs).unwrap_or("");
        let values = opt_str_list(e, "values", &p, errs).unwrap_or_default();
        match op {
            "In" | "NotIn" => {
                if values.is_empty() {
                    errs.push(FieldError::required(
                        child(&p, "values"),
                        "must be specified when `operator` is 'In' or 'NotIn'",
                    ));
                }
            }
            "Exists" | "DoesNotExist" => {
                if !values.is_empty() {
                    errs.push(FieldError::forbidden(
                        child(&p, "values"),
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    ));
                }
            }
            _ => errs.push(FieldError::invalid(child(&p, "operator"), op, "not a valid selector operator")),
        }
        let key = opt_str(e, "key", &p, errs).unwrap_or("");
        for m in is_qualified_name(key) {
            errs.push(FieldError::invalid(child(&p, "key"), key, &m));
        }
        for (vi, v) in values.iter().enumerate() {
            for m in is_valid_label_value(v) {
                errs.push(FieldError::invalid(index(&child(&p, "values"), vi), *v, &m));
            }
        }
    }
}

/// Outcome of converting a selector (upstream `LabelSelectorAsSelector`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SelectorMatch {
    /// The selector could not be converted (invalid); callers skip match checks.
    Invalid,
    /// The selector is empty: matches everything.
    Everything,
    Matches,
    NoMatch,
}

/// Evaluates `sel` against `labels` (a label map value, possibly absent).
pub(crate) fn selector_match(sel: &Value, labels: Option<&Value>) -> SelectorMatch {
    let Some(s) = sel.as_object() else {
        return SelectorMatch::Invalid;
    };
    let lookup = |k: &str| -> Option<&str> { labels.and_then(|l| l.get(k)).and_then(Value::as_str) };
    let match_labels = match s.get("matchLabels") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(m)) => {
            let mut out = Vec::new();
            for (k, v) in m {
                let Some(v) = v.as_str() else {
                    return SelectorMatch::Invalid;
                };
                if !is_qualified_name(k).is_empty() || !is_valid_label_value(v).is_empty() {
                    return SelectorMatch::Invalid;
                }
                out.push((k.as_str(), v));
            }
            out
        }
        Some(_) => return SelectorMatch::Invalid,
    };
    let exprs: &[Value] = match s.get("matchExpressions") {
        None | Some(Value::Null) => &[],
        Some(Value::Array(a)) => a,
        Some(_) => return SelectorMatch::Invalid,
    };
    if match_labels.is_empty() && exprs.is_empty() {
        return SelectorMatch::Everything;
    }
    let mut ok = match_labels.iter().all(|(k, v)| lookup(k) == Some(*v));
    for e in exprs {
        let key = json::get_str(e, "key").unwrap_or("");
        if !is_qualified_name(key).is_empty() {
            return SelectorMatch::Invalid;
        }
        let values: Vec<&str> = json::get_arr(e, "values").iter().filter_map(Value::as_str).collect();
        let actual = lookup(key);
        let m = match json::get_str(e, "operator").unwrap_or("") {
            "In" if !values.is_empty() => actual.is_some_and(|a| values.contains(&a)),
            "NotIn" if !values.is_empty() => actual.is_none_or(|a| !values.contains(&a)),
            "Exists" if values.is_empty() => actual.is_some(),
            "DoesNotExist" if values.is_empty() => actual.is_none(),
            _ => return SelectorMatch::Invalid,
        };
        ok &= m;
    }
    if ok { SelectorMatch::Matches } else { SelectorMatch::NoMatch }
}

/// Go's `%#v` of a `v1.LabelSelector` value, as upstream prints it for immutable-field
/// errors.
pub(crate) fn go_label_selector(sel: &Value) -> String {
    let ml = match get(sel, "matchLabels").and_then(Value::as_object) {
        Some(m) => go_string_map(m.iter().map(|(k, v)| (k.as_str(), v.as_str().unwrap_or("")))),
        None => "map[string]string(nil)".to_string(),
    };
    let exprs = match get(sel, "matchExpressions").and_then(Value::as_array) {
        Some(a) => {
            let items: Vec<String> = a
                .iter()
                .map(|e| {
                    let values = match get(e, "values").and_then(Value::as_array) {
                        Some(v) => go_string_slice(v.iter().map(|x| x.as_str().unwrap_or(""))),
                        None => "[]string(nil)".to_string(),
                    };
                    format!(
                        "v1.LabelSelectorRequirement{{Key:{}, Operator:{}, Values:{values}}}",
                        go_quote(json::get_str(e, "key").unwrap_or("")),
                        go_quote(json::get_str(e, "operator").unwrap_or(""))
                    )
                })
                .collect();
            format!("[]v1.LabelSelectorRequirement{{{}}}", items.join(", "))
        }
        None => "[]v1.LabelSelectorRequirement(nil)".to_string(),
    };
    format!("v1.LabelSelector{{MatchLabels:{ml}, MatchExpressions:{exprs}}}")
}

/// Go's `%#v` of a label map value (possibly absent → nil map).
pub(crate) fn go_labels(labels: Option<&Value>) -> String {
    match labels.and_then(Value::as_object) {
        Some(m) => go_string_map(m.iter().map(|(k, v)| (k.as_str(), v.as_str().unwrap_or("")))),
        None => "map[string]string(nil)".to_string(),
    }
}

#[cfg(test)]
#[path = "validation_tests.rs"]
mod tests;
