//! APIServices (apiregistration.k8s.io/v1): the API server's registry of served group
//! versions. r8s creates one `Local` APIService per group version it serves; user-made
//! ones (Helm charts of aggregated API servers) are stored and validated as upstream,
//! though r8s does not proxy to them.

use serde_json::Value;

use super::apps::clear_status;
use super::validation::{is_dns1035_label, is_dns1123_subdomain, is_valid_port_num};
use super::{FieldError, Strategy};

pub struct ApiServiceStrategy;

fn spec(obj: &Value) -> &Value {
    obj.get("spec").unwrap_or(&Value::Null)
}

fn text<'a>(v: &'a Value, field: &str) -> &'a str {
    v.get(field).and_then(Value::as_str).unwrap_or("")
}

fn int(v: &Value, field: &str) -> i64 {
    v.get(field).and_then(Value::as_i64).unwrap_or(0)
}

fn validate(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let spec = spec(obj);
    let (group, version) = (text(spec, "group"), text(spec, "version"));
    let required = format!("{version}.{group}");
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    if name != required {
        errs.push(FieldError::invalid(
            "metadata.name",
            name,
            &format!("must be `spec.version+\".\"+spec.group`: {required:?}"),
        ));
    }
    if group.is_empty() && version != "v1" {
        errs.push(FieldError::required(
            "spec.group",
            "only v1 may have an empty group and it better be legacy kube",
        ));
    }
    if !group.is_empty() {
        for e in is_dns1123_subdomain(group) {
            errs.push(FieldError::invalid("spec.group", group, &e));
        }
    }
    for e in is_dns1035_label(version) {
        errs.push(FieldError::invalid("spec.version", version, &e));
    }
    let group_priority = int(spec, "groupPriorityMinimum");
    if !(1..=20000).contains(&group_priority) {
        errs.push(FieldError::invalid(
            "spec.groupPriorityMinimum",
            &group_priority,
            "must be positive and less than 20000",
        ));
    }
    let version_priority = int(spec, "versionPriority");
    if !(1..=1000).contains(&version_priority) {
        errs.push(FieldError::invalid(
            "spec.versionPriority",
            &version_priority,
            "must be positive and less than 1000",
        ));
    }
    let ca_bundle = text(spec, "caBundle");
    let insecure = spec
        .get("insecureSkipTLSVerify")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let Some(service) = spec.get("service").filter(|s| !s.is_null()) else {
        if !ca_bundle.is_empty() {
            let size = format!("{} bytes", ca_bundle.len() / 4 * 3);
            errs.push(FieldError::invalid(
                "spec.caBundle",
                size.as_str(),
                "local APIServices may not have a caBundle",
            ));
        }
        if insecure {
            errs.push(FieldError::invalid(
                "spec.insecureSkipTLSVerify",
                &insecure,
                "local APIServices may not have insecureSkipTLSVerify",
            ));
        }
        return errs;
    };
    for field in ["namespace", "name"] {
        if text(service, field).is_empty() {
            errs.push(FieldError::required(format!("spec.service.{field}"), ""));
        }
    }
    let port = service.get("port").and_then(Value::as_i64).unwrap_or(443);
    for e in is_valid_port_num(port) {
        errs.push(FieldError::invalid("spec.service.port", &port, &e));
    }
    if insecure && !ca_bundle.is_empty() {
        errs.push(FieldError::invalid(
            "spec.insecureSkipTLSVerify",
            &insecure,
            "may not be true if caBundle is present",
        ));
    }
    errs
}

impl Strategy for ApiServiceStrategy {
    /// `v1.` (the core group) is a valid name: any path segment, then `version.group`.
    fn name_rule(&self) -> super::validation::NameRule {
        super::validation::NameRule::PathSegment
    }

    fn default(&self, obj: &mut Value) {
        if let Some(service) = obj
            .pointer_mut("/spec/service")
            .and_then(Value::as_object_mut)
        {
            service.entry("port").or_insert(Value::from(443));
        }
    }

    fn prepare_for_create(&self, obj: &mut Value) {
        // Availability is the API server's to report.
        clear_status(obj);
    }

    fn validate_create(&self, obj: &Value) -> Vec<FieldError> {
        validate(obj)
    }

    fn validate_update(&self, new: &Value, _old: &Value) -> Vec<FieldError> {
        validate(new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn api_service(name: &str, spec: Value) -> Value {
        json!({"metadata": {"name": name}, "spec": spec})
    }

    fn messages(obj: &Value) -> Vec<String> {
        validate(obj)
            .into_iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect()
    }

    #[test]
    fn local_and_service_backed_api_services() {
        let local = json!({"group": "apps", "version": "v1",
            "groupPriorityMinimum": 17800, "versionPriority": 15});
        assert!(messages(&api_service("v1.apps", local.clone())).is_empty());
        let core = json!({"group": "", "version": "v1",
            "groupPriorityMinimum": 18000, "versionPriority": 1});
        assert!(messages(&api_service("v1.", core)).is_empty());
        let errs = messages(&api_service("apps", local));
        assert_eq!(
            errs,
            [
                "metadata.name: Invalid value: \"apps\": must be `spec.version+\".\"+spec.group`: \"v1.apps\""
            ]
        );
        let remote = json!({"group": "metrics.k8s.io", "version": "v1beta1",
            "groupPriorityMinimum": 100, "versionPriority": 100, "insecureSkipTLSVerify": true,
            "service": {"namespace": "kube-system", "name": "metrics-server", "port": 443}});
        assert!(messages(&api_service("v1beta1.metrics.k8s.io", remote)).is_empty());
    }

    #[test]
    fn bad_priorities_and_local_tls_settings_are_refused() {
        let bad = json!({"group": "x.io", "version": "v1", "groupPriorityMinimum": 0,
            "versionPriority": 5000, "insecureSkipTLSVerify": true});
        let errs = messages(&api_service("v1.x.io", bad));
        assert_eq!(errs.len(), 3, "{errs:?}");
        assert!(errs[2].contains("local APIServices may not have insecureSkipTLSVerify"));
        let no_service_name = json!({"group": "x.io", "version": "v1",
            "groupPriorityMinimum": 10, "versionPriority": 5, "service": {"namespace": "n"}});
        assert_eq!(
            messages(&api_service("v1.x.io", no_service_name)),
            ["spec.service.name: Required value"]
        );
    }
}
