//! A minimal valid object of every served kind, URL helpers, and the checker that compares a
//! response with what upstream answers.

use crate::raw_https::Resp;
use r8s_api::catalog::ResourceInfo;
use serde_json::{Value, json};

/// The namespace junk is thrown into.
pub const NS: &str = "junk";

/// `/api/v1` or `/apis/<group>/<version>`.
pub fn base(info: &ResourceInfo) -> String {
    if info.group.is_empty() {
        format!("/api/{}", info.version)
    } else {
        format!("/apis/{}/{}", info.group, info.version)
    }
}

/// The collection URL in namespace `NS` (or cluster-wide for cluster-scoped kinds).
pub fn collection(info: &ResourceInfo) -> String {
    if info.namespaced {
        format!("{}/namespaces/{NS}/{}", base(info), info.plural)
    } else {
        format!("{}/{}", base(info), info.plural)
    }
}

/// The name of the sample object of `info`. Resources that share a key space need
/// different names: HPA v1 and v2 differ in version; core and events.k8s.io Events (one
/// store of core/v1 objects) in group.
pub fn sample_name(info: &ResourceInfo) -> String {
    if info.kind == "CustomResourceDefinition" {
        // A CRD's name is its resource's `<plural>.<group>`.
        return format!("samples.{}", SAMPLE_CRD_GROUP);
    }
    if info.kind == "APIService" {
        // An APIService's name is its `<version>.<group>`.
        return format!("v1.{SAMPLE_API_SERVICE_GROUP}");
    }
    if info.storage_group == info.group {
        format!("sample-{}", info.version)
    } else {
        let group = info.group.split('.').next().unwrap_or("");
        format!("sample-{group}-{}", info.version)
    }
}

/// Kinds whose names only have to be valid URL path segments (so `BadName` or a 300
/// character name is fine): RBAC, and core/v1 Events (legacy validation only).
pub fn path_segment_names(info: &ResourceInfo) -> bool {
    info.group == "rbac.authorization.k8s.io" || (info.group.is_empty() && info.kind == "Event")
}

/// The group of the sample APIService.
const SAMPLE_API_SERVICE_GROUP: &str = "samples.example.com";

/// The group of a sample APIService called (or derived from) `name`: its name must be
/// `v1.<group>`, so `never` becomes `v1.never.samples.example.com`.
fn api_service_group(name: &str) -> String {
    let stem = name
        .strip_prefix("v1.")
        .unwrap_or(name)
        .trim_end_matches(SAMPLE_API_SERVICE_GROUP)
        .trim_end_matches('.');
    if stem.is_empty() {
        SAMPLE_API_SERVICE_GROUP.to_string()
    } else {
        format!("{stem}.{SAMPLE_API_SERVICE_GROUP}")
    }
}

/// The group of the sample CustomResourceDefinition's resource.
const SAMPLE_CRD_GROUP: &str = "bad-input.example.com";

/// The plural a sample CRD called `name` defines.
fn crd_plural(name: &str) -> &str {
    name.strip_suffix(&format!(".{SAMPLE_CRD_GROUP}"))
        .unwrap_or(name)
}

/// A minimal valid object of `info`'s kind called `name`.
pub fn sample(info: &ResourceInfo, name: &str) -> Value {
    let containers = json!([{"name": "c", "image": "nginx"}]);
    let template =
        json!({"metadata": {"labels": {"app": "x"}}, "spec": {"containers": containers}});
    let selector = json!({"matchLabels": {"app": "x"}});
    let hpa = json!({"spec": {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "d"},
        "minReplicas": 1, "maxReplicas": 3
    }});
    let role_ref = |kind: &str| {
        json!({
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": "x"},
            "subjects": [{"kind": "User", "name": "u", "apiGroup": "rbac.authorization.k8s.io"}]
        })
    };
    let extra = match (info.group, info.kind) {
        ("", "ConfigMap") => json!({"data": {"k": "v"}}),
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy") => json!({"spec": {
            "matchConstraints": {"resourceRules": [{"apiGroups": ["apps"],
                "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["deployments"]}]},
            "validations": [{"expression": "object.spec.replicas <= 5"}]
        }}),
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding") => {
            json!({"spec": {"policyName": "x", "validationActions": ["Deny"]}})
        }
        ("", "Event") => json!({
            "involvedObject": {"kind": "Pod", "name": "p", "namespace": NS},
            "reason": "Tested", "message": "m", "type": "Normal", "count": 1,
            "source": {"component": "bad-input"},
            "firstTimestamp": "2024-01-01T00:00:00Z", "lastTimestamp": "2024-01-01T00:00:00Z"
        }),
        ("", "LimitRange") => {
            json!({"spec": {"limits": [{"type": "Container", "max": {"cpu": "1"}}]}})
        }
        ("", "PersistentVolumeClaim") => json!({"spec": {
            "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}
        }}),
        ("", "PersistentVolume") => json!({"spec": {
            "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
            "hostPath": {"path": "/tmp/x"}
        }}),
        ("", "Pod") => json!({"spec": {"containers": containers}}),
        ("", "ResourceQuota") => json!({"spec": {"hard": {"pods": "10"}}}),
        ("", "Secret") => json!({"data": {"k": "dg=="}}),
        ("", "Service") => json!({"spec": {"ports": [{"port": 80}]}}),
        ("apps", "ControllerRevision") => json!({"revision": 1}),
        ("apps", "DaemonSet" | "Deployment" | "ReplicaSet") => {
            json!({"spec": {"selector": selector, "template": template}})
        }
        ("apps", "StatefulSet") => {
            json!({"spec": {"selector": selector, "template": template, "serviceName": "svc"}})
        }
        ("events.k8s.io", "Event") => json!({
            "eventTime": "2024-01-01T00:00:00.000000Z", "reportingController": "example.com/test",
            "reportingInstance": "i", "action": "Act", "reason": "Tested", "type": "Normal",
            "regarding": {"kind": "Pod", "name": "p", "namespace": NS}
        }),
        ("autoscaling", "HorizontalPodAutoscaler") => hpa,
        ("certificates.k8s.io", "CertificateSigningRequest") => json!({"spec": {
            // "-----BEGIN CERTIFICATE REQUEST-----\nMA==\n-----END CERTIFICATE REQUEST-----\n"
            "request": "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURSBSRVFVRVNULS0tLS0KTUE9PQotLS0tLUVORCBDRVJUSUZJQ0FURSBSRVFVRVNULS0tLS0K",
            "signerName": "example.com/test", "usages": ["client auth"]
        }}),
        ("batch", "CronJob") => {
            json!({"spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {
                "template": {"spec": {"containers": containers, "restartPolicy": "OnFailure"}}
            }}}})
        }
        ("batch", "Job") => json!({"spec": {"template": {"spec": {
            "containers": containers, "restartPolicy": "Never"
        }}}}),
        ("networking.k8s.io", "IngressClass") => {
            json!({"spec": {"controller": "example.com/ingress"}})
        }
        ("networking.k8s.io", "Ingress") => json!({"spec": {
            "defaultBackend": {"service": {"name": "s", "port": {"number": 80}}}
        }}),
        ("networking.k8s.io", "NetworkPolicy") => json!({"spec": {"podSelector": {}}}),
        ("policy", "PodDisruptionBudget") => {
            json!({"spec": {"minAvailable": 1, "selector": selector}})
        }
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => role_ref("ClusterRole"),
        ("rbac.authorization.k8s.io", "RoleBinding") => role_ref("Role"),
        ("rbac.authorization.k8s.io", "ClusterRole" | "Role") => json!({"rules": []}),
        ("storage.k8s.io", "StorageClass") => json!({"provisioner": "example.com/x"}),
        ("apiregistration.k8s.io", "APIService") => json!({"spec": {
            "group": api_service_group(name), "version": "v1",
            "groupPriorityMinimum": 100, "versionPriority": 100
        }}),
        ("scheduling.k8s.io", "PriorityClass") => json!({"value": 1000}),
        ("coordination.k8s.io", "Lease") => json!({"spec": {}}),
        ("discovery.k8s.io", "EndpointSlice") => json!({"addressType": "IPv4", "endpoints": []}),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => json!({"spec": {
            "group": SAMPLE_CRD_GROUP, "scope": "Namespaced",
            "names": {"plural": crd_plural(name), "kind": "Sample"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                          "schema": {"openAPIV3Schema": {"type": "object"}}}]
        }}),
        _ => json!({}),
    };
    // A CRD's name must be `<plural>.<group>`: `never` defines `never.<sample group>`.
    let name = match info.kind {
        "CustomResourceDefinition" => format!("{}.{SAMPLE_CRD_GROUP}", crd_plural(name)),
        // Junk names (uppercase, too long) stay as they are, to be refused.
        "APIService" if name.len() <= 63 && !name.chars().any(|c| c.is_ascii_uppercase()) => {
            format!("v1.{}", api_service_group(name))
        }
        _ => name.to_string(),
    };
    let mut obj = json!({
        "apiVersion": info.api_version(),
        "kind": info.kind,
        "metadata": {"name": name},
    });
    if let (Some(o), Some(e)) = (obj.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            o.insert(k.clone(), v.clone());
        }
    }
    obj
}

/// What a request must get.
#[derive(Debug, Clone, Copy)]
pub enum Expect {
    /// A success code (the body is the object, not a Status).
    Ok(u16),
    /// A failure `metav1.Status` with this code and reason.
    Fail(u16, &'static str),
    /// A 422 `Invalid` Status whose `details.causes` name this field.
    Invalid(&'static str),
}

/// Compare a response with the expectation; `None` if it matches, else what is wrong.
pub fn check(resp: &Resp, want: Expect) -> Option<String> {
    let body = resp.json();
    let got = format!("got {} {}", resp.status, truncate(&resp.text(), 400));
    match want {
        Expect::Ok(code) => (resp.status != code).then(|| format!("want {code}, {got}")),
        Expect::Fail(code, reason) => {
            status_problem(resp, &body, code, reason).map(|p| format!("{p}; {got}"))
        }
        Expect::Invalid(field) => {
            if let Some(p) = status_problem(resp, &body, 422, "Invalid") {
                return Some(format!("{p}; {got}"));
            }
            let causes = body.pointer("/details/causes").and_then(Value::as_array);
            let named = causes.is_some_and(|c| {
                c.iter().any(|c| {
                    c.get("field").and_then(Value::as_str) == Some(field)
                        && c.get("reason")
                            .and_then(Value::as_str)
                            .is_some_and(|r| !r.is_empty())
                        && c.get("message")
                            .and_then(Value::as_str)
                            .is_some_and(|m| !m.is_empty())
                })
            });
            (!named).then(|| format!("want details.causes on {field:?}; {got}"))
        }
    }
}

/// What is wrong with a failure Status, if anything.
fn status_problem(resp: &Resp, body: &Value, code: u16, reason: &str) -> Option<String> {
    if resp.status != code {
        return Some(format!("want {code} {reason}"));
    }
    let ct = resp
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct.starts_with("application/json") {
        return Some(format!("want a JSON Status, content-type {ct:?}"));
    }
    let field = |k: &str| body.get(k).cloned().unwrap_or(Value::Null);
    if field("kind") != "Status" || field("apiVersion") != "v1" || field("status") != "Failure" {
        return Some("want kind Status, apiVersion v1, status Failure".into());
    }
    if field("code") != json!(code) {
        return Some(format!("want Status code {code}"));
    }
    if field("reason") != reason {
        return Some(format!("want reason {reason}"));
    }
    if field("message").as_str().is_none_or(str::is_empty) {
        return Some("want a message".into());
    }
    None
}

fn truncate(s: &str, n: usize) -> String {
    if s.len() <= n {
        return s.to_string();
    }
    let mut end = n;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}
