//! The `admission.k8s.io` AdmissionReview a webhook is sent, the checks of its answer
//! (upstream's `CreateAdmissionObjects` / `VerifyAdmissionResponse`), and the errors a
//! webhook's verdict becomes (`ToStatusErr`, `NewDryRunUnsupportedErr`).

use crate::error::ApiError;
use axum::http::StatusCode;
use base64::Engine;
use serde_json::{Map, Value, json};
use std::collections::HashSet;
use std::sync::Mutex;

/// The AdmissionReview version used for a webhook: the first of its
/// `admissionReviewVersions` r8s speaks.
pub(crate) fn review_version(versions: &[String]) -> Result<&'static str, String> {
    versions
        .iter()
        .find_map(|v| match v.as_str() {
            "v1" => Some("v1"),
            "v1beta1" => Some("v1beta1"),
            _ => None,
        })
        .ok_or_else(|| {
            "could not create admission objects: webhook does not accept known AdmissionReview versions (v1, v1beta1)"
                .to_string()
        })
}

/// `group`/`version`/`kind-or-resource` triples as the review spells them.
pub(crate) struct Gvk<'a>(pub &'a str, pub &'a str, pub &'a str);

/// Everything of an `AdmissionRequest` besides the objects.
pub(crate) struct RequestFields<'a> {
    pub uid: &'a str,
    pub kind: Gvk<'a>,
    pub resource: Gvk<'a>,
    pub subresource: &'a str,
    pub request_kind: Gvk<'a>,
    pub request_resource: Gvk<'a>,
    pub name: &'a str,
    pub namespace: &'a str,
    pub operation: &'a str,
    pub user: Value,
    pub dry_run: bool,
    pub options: Value,
}

/// The AdmissionReview body sent to a webhook.
pub(crate) fn request(
    version: &str,
    f: &RequestFields<'_>,
    object: Option<Value>,
    old_object: Option<Value>,
) -> Value {
    let mut req = Map::new();
    req.insert("uid".into(), json!(f.uid));
    req.extend(admission_request(f));
    req.insert("object".into(), object.unwrap_or(Value::Null));
    req.insert("oldObject".into(), old_object.unwrap_or(Value::Null));
    json!({
        "apiVersion": format!("admission.k8s.io/{version}"),
        "kind": "AdmissionReview",
        "request": req,
    })
}

/// The request's `AdmissionRequest` fields but its uid and objects: what a review
/// carries, and what CEL expressions see as `request` (empty strings left out, as
/// upstream's JSON leaves them out).
pub(crate) fn admission_request(f: &RequestFields<'_>) -> Map<String, Value> {
    let gvk = |g: &Gvk<'_>| json!({"group": g.0, "version": g.1, "kind": g.2});
    let gvr = |g: &Gvk<'_>| json!({"group": g.0, "version": g.1, "resource": g.2});
    let mut req = Map::new();
    req.insert("kind".into(), gvk(&f.kind));
    req.insert("resource".into(), gvr(&f.resource));
    if !f.subresource.is_empty() {
        req.insert("subResource".into(), json!(f.subresource));
    }
    req.insert("requestKind".into(), gvk(&f.request_kind));
    req.insert("requestResource".into(), gvr(&f.request_resource));
    if !f.subresource.is_empty() {
        req.insert("requestSubResource".into(), json!(f.subresource));
    }
    if !f.name.is_empty() {
        req.insert("name".into(), json!(f.name));
    }
    if !f.namespace.is_empty() {
        req.insert("namespace".into(), json!(f.namespace));
    }
    req.insert("operation".into(), json!(f.operation));
    req.insert("userInfo".into(), f.user.clone());
    req.insert("dryRun".into(), json!(f.dry_run));
    req.insert("options".into(), f.options.clone());
    req
}

/// What a webhook answered.
#[derive(Debug, Default)]
pub(crate) struct Answer {
    pub allowed: bool,
    /// `response.status` (a `metav1.Status`), when given.
    pub status: Option<Value>,
    /// The decoded JSON patch (mutating webhooks only).
    pub patch: Option<Vec<u8>>,
    pub warnings: Vec<String>,
}

/// Reads and checks a webhook's answer to the review `uid` sent as `version`.
pub(crate) fn verify(
    uid: &str,
    version: &str,
    mutating: bool,
    body: &[u8],
) -> Result<Answer, String> {
    let review: Value = serde_json::from_slice(body)
        .map_err(|e| format!("failed to call webhook: the response is not JSON: {e}"))?;
    let invalid = |m: String| format!("received invalid webhook response: {m}");
    let response = review
        .get("response")
        .filter(|r| r.is_object())
        .ok_or_else(|| invalid("webhook response was absent".into()))?;
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    if version == "v1" {
        let got_uid = text(response, "uid");
        if got_uid != uid {
            return Err(invalid(format!(
                "expected response.uid={uid:?}, got {got_uid:?}"
            )));
        }
        let (av, kind) = (text(&review, "apiVersion"), text(&review, "kind"));
        if av != "admission.k8s.io/v1" || kind != "AdmissionReview" {
            let (group, ver) = av.rsplit_once('/').unwrap_or(("", av.as_str()));
            return Err(invalid(format!(
                "expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got {group}/{ver}, Kind={kind}"
            )));
        }
    }
    let patch_b64 = response
        .get("patch")
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty());
    let patch_type = response.get("patchType").filter(|t| !t.is_null());
    let mut patch = None;
    if mutating {
        if version == "v1" {
            match (patch_b64, patch_type) {
                (Some(_), None) => {
                    return Err(invalid(
                        "webhook returned response.patch but not response.patchType".into(),
                    ));
                }
                (None, Some(_)) => {
                    return Err(invalid(
                        "webhook returned response.patchType but not response.patch".into(),
                    ));
                }
                (Some(_), Some(t)) if t.as_str() != Some("JSONPatch") => {
                    let t = t.as_str().unwrap_or("");
                    return Err(if t.is_empty() {
                        invalid(format!(
                            "webhook returned invalid response.patchType of {t:?}"
                        ))
                    } else {
                        format!("unsupported patch type {t:?}")
                    });
                }
                _ => {}
            }
        }
        if let Some(p) = patch_b64 {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(p)
                .map_err(|e| {
                    format!("failed to call webhook: response.patch is not base64: {e}")
                })?;
            patch = Some(decoded);
        }
    } else if version == "v1" {
        if patch_b64.is_some() {
            return Err(invalid(
                "validating webhook may not return response.patch".into(),
            ));
        }
        if patch_type.is_some() {
            return Err(invalid(
                "validating webhook may not return response.patchType".into(),
            ));
        }
    }
    Ok(Answer {
        allowed: response
            .get("allowed")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        status: response.get("status").filter(|s| s.is_object()).cloned(),
        patch,
        warnings: response
            .get("warnings")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
    })
}

/// A webhook's denial as the request's error (upstream's `ToStatusErr`): its status code
/// (at least 400), reason and details, the message prefixed with who denied it.
pub(crate) fn denial(webhook: &str, status: Option<&Value>) -> ApiError {
    let empty = Value::Null;
    let status = status.unwrap_or(&empty);
    let text = |k: &str| status.get(k).and_then(Value::as_str).unwrap_or("");
    let code = status
        .get("code")
        .and_then(Value::as_u64)
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| *c >= 400)
        .and_then(|c| StatusCode::from_u16(c).ok())
        .unwrap_or(StatusCode::BAD_REQUEST);
    let denied_by = format!("admission webhook \"{webhook}\" denied the request");
    let (message, reason) = (text("message"), text("reason"));
    let message = if !message.is_empty() {
        format!("{denied_by}: {message}")
    } else if !reason.is_empty() {
        format!("{denied_by}: {reason}")
    } else {
        format!("{denied_by} without explanation")
    };
    let mut err = ApiError::from_parts(code, intern_reason(reason), message);
    err.details = status.get("details").filter(|d| d.is_object()).cloned();
    err
}

/// A webhook that may not see dry-run requests was asked to (400).
pub(crate) fn dry_run_unsupported(webhook: &str) -> ApiError {
    ApiError::bad_request(format!(
        "admission webhook \"{webhook}\" does not support dry run"
    ))
}

/// A webhook could not be called (or answered nonsense) and its failure policy is Fail:
/// upstream's `NewInternalError(ErrCallingWebhook)`.
pub(crate) fn calling_failed(webhook: &str, reason: &str) -> ApiError {
    let message = format!("failed calling webhook \"{webhook}\": {reason}");
    let mut err = ApiError::internal(message.clone());
    err.details = Some(json!({"causes": [{"message": message}]}));
    err
}

/// Most distinct reasons kept; webhooks choose them freely and errors need `&'static str`.
const MAX_REASONS: usize = 256;

/// A `&'static` copy of a webhook-chosen reason, each distinct one leaked once (bounded).
fn intern_reason(reason: &str) -> &'static str {
    static KNOWN: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);
    if reason.is_empty() {
        return "";
    }
    let Ok(mut known) = KNOWN.lock() else {
        return "";
    };
    let set = known.get_or_insert_with(HashSet::new);
    if let Some(r) = set.get(reason) {
        return r;
    }
    if set.len() >= MAX_REASONS {
        return "";
    }
    let leaked: &'static str = Box::leak(reason.to_string().into_boxed_str());
    set.insert(leaked);
    leaked
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn answer(response: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({"apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview", "response": response}))
        .unwrap()
    }

    #[test]
    fn versions() {
        assert_eq!(
            review_version(&["v1beta1".into(), "v1".into()]).unwrap(),
            "v1beta1"
        );
        assert_eq!(review_version(&["v2".into(), "v1".into()]).unwrap(), "v1");
        let err = review_version(&["v2".into()]).unwrap_err();
        assert!(
            err.contains("does not accept known AdmissionReview versions"),
            "{err}"
        );
    }

    #[test]
    fn request_shape() {
        let f = RequestFields {
            uid: "u1",
            kind: Gvk("autoscaling", "v1", "Scale"),
            resource: Gvk("apps", "v1", "deployments"),
            subresource: "scale",
            request_kind: Gvk("autoscaling", "v1", "Scale"),
            request_resource: Gvk("apps", "v1", "deployments"),
            name: "web",
            namespace: "",
            operation: "UPDATE",
            user: json!({"username": "alice"}),
            dry_run: true,
            options: json!({"kind": "UpdateOptions"}),
        };
        let r = request("v1", &f, Some(json!({"a": 1})), None);
        assert_eq!(r["apiVersion"], "admission.k8s.io/v1");
        let q = &r["request"];
        assert_eq!(q["uid"], "u1");
        assert_eq!(
            q["kind"],
            json!({"group": "autoscaling", "version": "v1", "kind": "Scale"})
        );
        assert_eq!(q["resource"]["resource"], "deployments");
        assert_eq!(q["subResource"], "scale");
        assert_eq!(q["requestSubResource"], "scale");
        assert!(q.get("namespace").is_none());
        assert_eq!(q["name"], "web");
        assert_eq!(q["userInfo"]["username"], "alice");
        assert_eq!(q["oldObject"], Value::Null);
        assert_eq!(q["dryRun"], true);
    }

    #[test]
    fn v1_answers_are_checked() {
        let ok = verify(
            "u",
            "v1",
            true,
            &answer(json!({"uid": "u", "allowed": true,
            "patchType": "JSONPatch", "patch": b64("[]"), "warnings": ["w"]})),
        )
        .unwrap();
        assert!(ok.allowed);
        assert_eq!(ok.patch.as_deref(), Some(&b"[]"[..]));
        assert_eq!(ok.warnings, ["w"]);

        let cases = [
            (
                json!({"uid": "other", "allowed": true}),
                true,
                "expected response.uid=\"u\"",
            ),
            (
                json!({"uid": "u", "patch": b64("[]")}),
                true,
                "but not response.patchType",
            ),
            (
                json!({"uid": "u", "patchType": "JSONPatch"}),
                true,
                "but not response.patch",
            ),
            (
                json!({"uid": "u", "patchType": "Merge", "patch": b64("{}")}),
                true,
                "unsupported patch type",
            ),
            (
                json!({"uid": "u", "patch": b64("[]")}),
                false,
                "may not return response.patch",
            ),
            (
                json!({"uid": "u", "patchType": "JSONPatch"}),
                false,
                "may not return response.patchType",
            ),
            (
                json!({"uid": "u", "patchType": "JSONPatch", "patch": "%%"}),
                true,
                "not base64",
            ),
        ];
        for (response, mutating, want) in cases {
            let err = verify("u", "v1", mutating, &answer(response.clone())).unwrap_err();
            assert!(err.contains(want), "{response}: {err}");
        }
        let wrong_kind = serde_json::to_vec(&json!({"apiVersion": "admission.k8s.io/v1beta1",
            "kind": "AdmissionReview", "response": {"uid": "u", "allowed": true}}))
        .unwrap();
        assert!(
            verify("u", "v1", false, &wrong_kind)
                .unwrap_err()
                .contains("expected webhook response of")
        );
        assert!(
            verify("u", "v1", false, b"{}")
                .unwrap_err()
                .contains("webhook response was absent")
        );
        assert!(
            verify("u", "v1", false, b"<html>")
                .unwrap_err()
                .contains("not JSON")
        );
        // v1beta1 answers are not checked for uid or kind; a patch is a JSON patch.
        let beta = serde_json::to_vec(&json!({"response": {"allowed": true, "patch": b64("[]")}}))
            .unwrap();
        assert!(verify("u", "v1beta1", true, &beta).unwrap().patch.is_some());
    }

    #[test]
    fn denials_carry_the_webhooks_status() {
        let e = denial(
            "d.example.com",
            Some(&json!({"message": "no way", "code": 403, "reason": "Forbidden"})),
        );
        assert_eq!(e.code, StatusCode::FORBIDDEN);
        assert_eq!(e.reason, "Forbidden");
        assert_eq!(
            e.message,
            "admission webhook \"d.example.com\" denied the request: no way"
        );
        let e = denial("d", Some(&json!({"reason": "Custom", "code": 200})));
        assert_eq!(e.code, StatusCode::BAD_REQUEST);
        assert_eq!(
            e.message,
            "admission webhook \"d\" denied the request: Custom"
        );
        assert_eq!(e.reason, "Custom");
        let e = denial("d", None);
        assert_eq!(
            e.message,
            "admission webhook \"d\" denied the request without explanation"
        );
        assert_eq!(e.reason, "");
        let e = calling_failed("d", "boom");
        assert_eq!(e.code, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            e.message,
            "Internal error occurred: failed calling webhook \"d\": boom"
        );
        assert_eq!(dry_run_unsupported("d").code, StatusCode::BAD_REQUEST);
    }
}
