//! Mutating and ValidatingWebhookConfigurations (admissionregistration.k8s.io/v1): the
//! defaults upstream fills into every webhook, so what is stored (and what `kubectl get
//! -o yaml` shows, and what a JSON patch can replace) is what the API server acts on.

use serde_json::{Value, json};

use super::Strategy;

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
