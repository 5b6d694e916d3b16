//! CertificateSigningRequests (certificates.k8s.io/v1): the request is immutable once
//! made, the requester is recorded by the API server (never taken from the body), and
//! the approval and status subresources carry the decision and the issued certificate.

use base64::Engine;
use serde_json::Value;

use super::errors::Raw;
use super::json::{Errs, child, get, get_arr, get_str, index};
use super::validation::is_qualified_name;
use super::{FieldError, Strategy};

pub struct CertificateSigningRequestStrategy;

/// Usages a request may ask for (upstream's `KeyUsage` values).
const USAGES: &[&str] = &[
    "signing",
    "digital signature",
    "content commitment",
    "key encipherment",
    "key agreement",
    "data encipherment",
    "cert sign",
    "crl sign",
    "encipher only",
    "decipher only",
    "any",
    "server auth",
    "client auth",
    "code signing",
    "email protection",
    "s/mime",
    "ipsec end system",
    "ipsec tunnel",
    "ipsec user",
    "timestamping",
    "ocsp signing",
    "microsoft sgc",
    "netscape sgc",
];

/// Shortest certificate lifetime a request may ask for (upstream: 10 minutes).
const MIN_EXPIRATION_SECONDS: i64 = 600;

/// The PEM text of a base64 `[]byte` field, if it decodes.
fn pem_text(field: Option<&Value>) -> Option<String> {
    let b64 = field?.as_str()?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    String::from_utf8(bytes).ok()
}

/// The type of the first PEM block of `text` (`CERTIFICATE REQUEST`, `CERTIFICATE`, …).
pub fn pem_block_type(text: &str) -> Option<&str> {
    let start = text.find("-----BEGIN ")? + "-----BEGIN ".len();
    let rest = &text[start..];
    let end = rest.find("-----")?;
    let kind = &rest[..end];
    text.contains(&format!("-----END {kind}-----"))
        .then_some(kind)
}

fn validate_spec(obj: &Value, errs: &mut Errs) {
    let empty = Value::Object(Default::default());
    let spec = get(obj, "spec").unwrap_or(&empty);
    match get(spec, "request") {
        None | Some(Value::Null) => errs.push(FieldError::required("spec.request", "")),
        Some(v) => match pem_text(Some(v)) {
            Some(t) if pem_block_type(&t) == Some("CERTIFICATE REQUEST") => {}
            Some(_) => errs.push(FieldError::invalid(
                "spec.request",
                &Raw("[]byte{...}"),
                "PEM block type must be CERTIFICATE REQUEST",
            )),
            None => errs.push(FieldError::invalid(
                "spec.request",
                &Raw("[]byte{...}"),
                "must be base64-encoded PEM data",
            )),
        },
    }
    match get_str(spec, "signerName").unwrap_or("") {
        "" => errs.push(FieldError::required("spec.signerName", "")),
        name => {
            // A signer name is a domain-qualified path: `example.com/signer-name`.
            let problems = match name.split_once('/') {
                Some((domain, path)) if !domain.is_empty() && !path.is_empty() => {
                    is_qualified_name(&format!("{domain}/{}", path.replace('/', "-")))
                }
                _ => vec!["must be a fully qualified domain and path of the form 'example.com/signer-name'".to_string()],
            };
            for m in problems {
                errs.push(FieldError::invalid("spec.signerName", name, &m));
            }
        }
    }
    let usages = get_arr(spec, "usages");
    if get(spec, "usages").is_none() {
        errs.push(FieldError::required("spec.usages", ""));
    }
    for (i, u) in usages.iter().enumerate() {
        let u = u.as_str().unwrap_or("");
        if !USAGES.contains(&u) {
            errs.push(FieldError::not_supported(
                index("spec.usages", i),
                u,
                USAGES,
            ));
        }
    }
    if let Some(secs) = get(spec, "expirationSeconds").and_then(Value::as_i64)
        && secs < MIN_EXPIRATION_SECONDS
    {
        errs.push(FieldError::invalid(
            "spec.expirationSeconds",
            &secs,
            "may not specify a duration less than 600 seconds (10 minutes)",
        ));
    }
}

/// Conditions and certificate, as upstream's status validation checks them.
fn validate_status(obj: &Value, errs: &mut Errs) {
    let empty = Value::Object(Default::default());
    let status = get(obj, "status").unwrap_or(&empty);
    let conditions = get_arr(status, "conditions");
    let has = |t: &str| {
        conditions
            .iter()
            .any(|c| get_str(c, "type") == Some(t) && get_str(c, "status") != Some("False"))
    };
    let path = "status.conditions";
    for (i, c) in conditions.iter().enumerate() {
        let p = index(path, i);
        match get_str(c, "type").unwrap_or("") {
            "" => errs.push(FieldError::required(child(&p, "type"), "")),
            "Approved" if has("Denied") => errs.push(FieldError::invalid(
                child(&p, "type"),
                "Approved",
                "Approved and Denied conditions are mutually exclusive",
            )),
            _ => {}
        }
        match get_str(c, "status").unwrap_or("") {
            "True" | "False" | "Unknown" => {}
            "" => errs.push(FieldError::required(child(&p, "status"), "")),
            s => errs.push(FieldError::not_supported(
                child(&p, "status"),
                s,
                &["False", "True", "Unknown"],
            )),
        }
    }
    if let Some(cert) = get(status, "certificate").filter(|v| !v.is_null()) {
        let ok = pem_text(Some(cert))
            .is_some_and(|t| t.is_empty() || pem_block_type(&t) == Some("CERTIFICATE"));
        if !ok {
            errs.push(FieldError::invalid(
                "status.certificate",
                &Raw("<certificate data>"),
                "must contain at least one CERTIFICATE PEM block",
            ));
        }
    }
}

/// Approved/Denied, once set, stay (upstream refuses removing or flipping them).
fn validate_decision_kept(new: &Value, old: &Value, errs: &mut Errs) {
    let empty = Value::Object(Default::default());
    let conds = |o: &Value| -> Vec<String> {
        get_arr(get(o, "status").unwrap_or(&empty), "conditions")
            .iter()
            .filter(|c| get_str(c, "status") == Some("True"))
            .filter_map(|c| get_str(c, "type").map(str::to_string))
            .collect()
    };
    let (before, after) = (conds(old), conds(new));
    for t in ["Approved", "Denied"] {
        if before.iter().any(|c| c == t) && !after.iter().any(|c| c == t) {
            errs.push(FieldError::forbidden(
                "status.conditions",
                &format!("updates may not remove a condition of type \"{t}\""),
            ));
        }
    }
    let cert = |o: &Value| {
        get(o, "status")
            .and_then(|s| get(s, "certificate"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    if !cert(old).is_empty() && cert(old) != cert(new) {
        errs.push(FieldError::forbidden(
            "status.certificate",
            "updates may not modify existing certificate content",
        ));
    }
}

impl Strategy for CertificateSigningRequestStrategy {
    fn prepare_for_create(&self, obj: &mut Value) {
        if let Some(o) = obj.as_object_mut() {
            o.remove("status");
        }
    }

    /// The request itself never changes after create; status has its own subresources.
    fn prepare_for_update(&self, new: &mut Value, old: &Value) {
        if let (Some(n), Some(spec)) = (new.as_object_mut(), old.get("spec")) {
            n.insert("spec".into(), spec.clone());
        }
    }

    fn validate_create(&self, obj: &Value) -> Vec<FieldError> {
        let mut errs = Vec::new();
        validate_spec(obj, &mut errs);
        errs
    }

    /// Main resource and `status` writes.
    fn validate_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        let mut errs = Vec::new();
        validate_status(new, &mut errs);
        validate_decision_kept(new, old, &mut errs);
        errs
    }

    /// `approval`: only the conditions change.
    fn validate_subresource_update(&self, sub: &str, new: &Value, old: &Value) -> Vec<FieldError> {
        if sub != "approval" {
            return Vec::new();
        }
        self.validate_update(new, old)
    }

    fn field_selector_fields(&self, obj: &Value) -> Vec<(&'static str, String)> {
        let signer = get(obj, "spec")
            .and_then(|s| get_str(s, "signerName"))
            .unwrap_or("");
        vec![("spec.signerName", signer.to_string())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn csr(request: &str) -> Value {
        json!({"metadata": {"name": "u"}, "spec": {
            "request": b64(request),
            "signerName": "kubernetes.io/kube-apiserver-client",
            "usages": ["client auth"],
        }})
    }

    const REQUEST: &str =
        "-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n";

    fn messages(errs: &[FieldError]) -> Vec<String> {
        errs.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn requests_need_a_pem_request_a_signer_and_usages() {
        let s = CertificateSigningRequestStrategy;
        assert!(s.validate_create(&csr(REQUEST)).is_empty());
        let bad = s.validate_create(&csr(
            "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n",
        ));
        assert_eq!(
            messages(&bad),
            [
                "spec.request: Invalid value: []byte{...}: PEM block type must be CERTIFICATE REQUEST"
            ]
        );
        let mut no_signer = csr(REQUEST);
        no_signer["spec"]["signerName"] = json!("");
        no_signer["spec"]["usages"] = json!(["flying"]);
        no_signer["spec"]["expirationSeconds"] = json!(60);
        let m = messages(&s.validate_create(&no_signer)).join("\n");
        assert!(m.contains("spec.signerName: Required value"), "{m}");
        assert!(
            m.contains("spec.usages[0]: Unsupported value: \"flying\""),
            "{m}"
        );
        assert!(
            m.contains("spec.expirationSeconds: Invalid value: 60"),
            "{m}"
        );
    }

    #[test]
    fn decisions_are_exclusive_and_final() {
        let s = CertificateSigningRequestStrategy;
        let old = csr(REQUEST);
        let mut both = old.clone();
        both["status"] = json!({"conditions": [
            {"type": "Approved", "status": "True"}, {"type": "Denied", "status": "True"}]});
        let m = messages(&s.validate_subresource_update("approval", &both, &old)).join("\n");
        assert!(
            m.contains("Approved and Denied conditions are mutually exclusive"),
            "{m}"
        );
        let mut approved = old.clone();
        approved["status"] = json!({"conditions": [{"type": "Approved", "status": "True"}]});
        assert!(
            s.validate_subresource_update("approval", &approved, &old)
                .is_empty()
        );
        let m = messages(&s.validate_update(&old, &approved)).join("\n");
        assert!(
            m.contains("may not remove a condition of type \"Approved\""),
            "{m}"
        );
    }

    #[test]
    fn the_request_is_immutable() {
        let s = CertificateSigningRequestStrategy;
        let old = csr(REQUEST);
        let mut new = old.clone();
        new["spec"]["usages"] = json!(["server auth"]);
        s.prepare_for_update(&mut new, &old);
        assert_eq!(new["spec"], old["spec"]);
    }
}
