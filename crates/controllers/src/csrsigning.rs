//! The CSR signer (upstream `csrsigning` in kube-controller-manager): an approved
//! CertificateSigningRequest for one of the cluster CA's signers gets its certificate in
//! `status.certificate`, signed by the cluster CA. Requests that do not fit the signer's
//! rules (usages, subject) get a `Failed` condition instead; other signers' requests are
//! left for them.
//!
//! Signers: `kubernetes.io/kube-apiserver-client` (client certificates the API server
//! accepts), `kubernetes.io/kube-apiserver-client-kubelet` (node client certificates) and
//! `kubernetes.io/kubelet-serving` (node serving certificates).

use base64::Engine;
use futures::StreamExt;
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestCondition,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use rand::RngCore;
use rcgen::{
    CertificateSigningRequestParams, DnValue, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SerialNumber,
};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The cluster CA that signs (upstream `--cluster-signing-cert-file`/`-key-file`).
#[derive(Clone, Debug)]
pub struct SigningCa {
    pub cert_pem: String,
    pub key_pem: String,
}

/// Longest certificate lifetime (upstream `--cluster-signing-duration`, one year).
const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);
/// Certificates start a little in the past, for clocks that lag (as upstream).
const BACKDATE: Duration = Duration::from_secs(5 * 60);
/// Retry delay after a failed write.
const RETRY: Duration = Duration::from_secs(5);

/// A failed sync.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("updating the CSR: {0}")]
    Kube(#[from] kube::Error),
}

/// What the signer does with one request.
#[derive(Debug, PartialEq)]
pub enum Decision {
    /// Not ours, not approved yet, denied, failed or already issued.
    Nothing,
    /// Issue this certificate (PEM).
    Issue(String),
    /// Refuse with this message (a `Failed` condition, reason `SignerValidationFailure`).
    Fail(String),
}

fn has_condition(csr: &CertificateSigningRequest, kind: &str) -> bool {
    csr.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == kind && c.status == "True"))
}

/// Decide about `csr` with `ca` at `now`.
pub fn decide(csr: &CertificateSigningRequest, ca: &SigningCa, now: SystemTime) -> Decision {
    let signer = csr.spec.signer_name.as_str();
    if !matches!(
        signer,
        "kubernetes.io/kube-apiserver-client"
            | "kubernetes.io/kube-apiserver-client-kubelet"
            | "kubernetes.io/kubelet-serving"
    ) || !has_condition(csr, "Approved")
        || has_condition(csr, "Denied")
        || has_condition(csr, "Failed")
        || csr
            .status
            .as_ref()
            .and_then(|s| s.certificate.as_ref())
            .is_some_and(|c| !c.0.is_empty())
    {
        return Decision::Nothing;
    }
    let pem = String::from_utf8_lossy(&csr.spec.request.0).into_owned();
    let mut params = match CertificateSigningRequestParams::from_pem(&pem) {
        Ok(p) => p,
        Err(e) => return Decision::Fail(format!("unable to parse csr: {e}")),
    };
    let usages = csr.spec.usages.clone().unwrap_or_default();
    if let Err(why) = check_signer_rules(signer, &usages, &params) {
        return Decision::Fail(why);
    }
    let wanted = csr
        .spec
        .expiration_seconds
        .and_then(|s| u64::try_from(s).ok())
        .map(Duration::from_secs)
        .unwrap_or(MAX_DURATION)
        .min(MAX_DURATION);
    let p = &mut params.params;
    p.not_before = (now - BACKDATE).into();
    p.not_after = (now + wanted).into();
    p.is_ca = IsCa::ExplicitNoCa;
    p.use_authority_key_identifier_extension = true;
    let mut serial = [0u8; 16];
    rand::rng().fill_bytes(&mut serial);
    serial[0] &= 0x7f;
    p.serial_number = Some(SerialNumber::from_slice(&serial));
    p.key_usages = usages
        .iter()
        .filter_map(|u| match u.as_str() {
            "digital signature" => Some(KeyUsagePurpose::DigitalSignature),
            "key encipherment" => Some(KeyUsagePurpose::KeyEncipherment),
            "signing" => Some(KeyUsagePurpose::DigitalSignature),
            _ => None,
        })
        .collect();
    p.key_usages.dedup();
    p.extended_key_usages = usages
        .iter()
        .filter_map(|u| match u.as_str() {
            "client auth" => Some(ExtendedKeyUsagePurpose::ClientAuth),
            "server auth" => Some(ExtendedKeyUsagePurpose::ServerAuth),
            _ => None,
        })
        .collect();
    let signed = KeyPair::from_pem(&ca.key_pem)
        .and_then(|key| Issuer::from_ca_cert_pem(&ca.cert_pem, key))
        .and_then(|issuer| params.signed_by(&issuer));
    match signed {
        Ok(cert) => Decision::Issue(cert.pem()),
        Err(e) => Decision::Fail(format!("signing failed: {e}")),
    }
}

fn dn_text(v: &DnValue) -> String {
    match v {
        DnValue::PrintableString(s) => s.as_str().to_string(),
        DnValue::Utf8String(s) => s.clone(),
        DnValue::Ia5String(s) => s.as_str().to_string(),
        other => format!("{other:?}"),
    }
}

/// Upstream's per-signer checks of usages and subject.
fn check_signer_rules(
    signer: &str,
    usages: &[String],
    params: &CertificateSigningRequestParams,
) -> Result<(), String> {
    let (allowed, required, kind): (&[&str], &str, &str) = match signer {
        "kubernetes.io/kubelet-serving" => (
            &["digital signature", "key encipherment", "server auth"],
            "server auth",
            "serving",
        ),
        _ => (
            &["digital signature", "key encipherment", "client auth"],
            "client auth",
            "client",
        ),
    };
    if let Some(bad) = usages.iter().find(|u| !allowed.contains(&u.as_str())) {
        return Err(format!("invalid usage for {kind} certificate: {bad}"));
    }
    if !usages.iter().any(|u| u == required) {
        return Err(format!(
            "missing required usage for {kind} certificate: {required}"
        ));
    }
    if signer != "kubernetes.io/kube-apiserver-client" {
        let cn = params
            .params
            .distinguished_name
            .get(&rcgen::DnType::CommonName)
            .map(dn_text)
            .unwrap_or_default();
        if !cn.starts_with("system:node:") {
            return Err(format!(
                "subject common name {cn:?} must begin with \"system:node:\""
            ));
        }
    }
    Ok(())
}

struct State {
    client: kube::Client,
    ca: SigningCa,
}

async fn sync(csr: Arc<CertificateSigningRequest>, state: Arc<State>) -> Result<Action, Error> {
    let api: Api<CertificateSigningRequest> = Api::all(state.client.clone());
    let status = match decide(&csr, &state.ca, SystemTime::now()) {
        Decision::Nothing => return Ok(Action::await_change()),
        Decision::Issue(pem) => {
            json!({"status": {"certificate": base64::engine::general_purpose::STANDARD.encode(pem)}})
        }
        Decision::Fail(message) => {
            let now = Time(k8s_openapi::jiff::Timestamp::now());
            let mut conditions = csr
                .status
                .as_ref()
                .and_then(|s| s.conditions.clone())
                .unwrap_or_default();
            conditions.push(CertificateSigningRequestCondition {
                type_: "Failed".into(),
                status: "True".into(),
                reason: Some("SignerValidationFailure".into()),
                message: Some(message),
                last_update_time: Some(now.clone()),
                last_transition_time: Some(now),
            });
            json!({"status": {"conditions": conditions}})
        }
    };
    api.patch_status(
        &csr.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&status),
    )
    .await?;
    Ok(Action::await_change())
}

fn retry(_: Arc<CertificateSigningRequest>, e: &Error, _: Arc<State>) -> Action {
    tracing::debug!("csr signer: {e}");
    Action::requeue(RETRY)
}

/// Run the signer until the watch ends.
pub async fn run(ctx: crate::Context, ca: SigningCa) -> anyhow::Result<()> {
    let client = ctx.client.clone();
    let api: Api<CertificateSigningRequest> = Api::all(client.clone());
    let state = Arc::new(State { client, ca });
    Controller::new(api, watcher::Config::default())
        .run(sync, retry, state)
        .for_each(|_| async {})
        .await;
    Ok(())
}

#[cfg(test)]
mod tests;
