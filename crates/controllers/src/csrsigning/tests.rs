use super::*;
use k8s_openapi::ByteString;
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequestCondition, CertificateSigningRequestSpec,
    CertificateSigningRequestStatus,
};
use rcgen::{CertificateParams, DnType};

fn ca() -> SigningCa {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "test-ca");
    params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).unwrap();
    SigningCa {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

fn request(cn: &str) -> String {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    params
        .distinguished_name
        .push(DnType::OrganizationName, "dev");
    params.serialize_request(&key).unwrap().pem().unwrap()
}

fn csr(cn: &str, signer: &str, usages: &[&str], approved: bool) -> CertificateSigningRequest {
    CertificateSigningRequest {
        spec: CertificateSigningRequestSpec {
            request: ByteString(request(cn).into_bytes()),
            signer_name: signer.into(),
            usages: Some(usages.iter().map(|u| u.to_string()).collect()),
            expiration_seconds: Some(86_400),
            ..Default::default()
        },
        status: approved.then(|| CertificateSigningRequestStatus {
            conditions: Some(vec![CertificateSigningRequestCondition {
                type_: "Approved".into(),
                status: "True".into(),
                ..Default::default()
            }]),
            certificate: None,
        }),
        ..Default::default()
    }
}

const CLIENT: &str = "kubernetes.io/kube-apiserver-client";

#[test]
fn approved_client_requests_get_a_certificate_for_their_subject() {
    let ca = ca();
    let now = SystemTime::now();
    let Decision::Issue(pem) = decide(
        &csr(
            "alice",
            CLIENT,
            &["digital signature", "key encipherment", "client auth"],
            true,
        ),
        &ca,
        now,
    ) else {
        panic!("expected a certificate");
    };
    let (_, der) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
    let cert = der.parse_x509().unwrap();
    let cn: Vec<_> = cert
        .subject()
        .iter_common_name()
        .filter_map(|a| a.as_str().ok())
        .collect();
    assert_eq!(cn, ["alice"]);
    let orgs: Vec<_> = cert
        .subject()
        .iter_organization()
        .filter_map(|a| a.as_str().ok())
        .collect();
    assert_eq!(orgs, ["dev"]);
    assert!(
        cert.issuer()
            .iter_common_name()
            .any(|a| a.as_str() == Ok("test-ca"))
    );
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.client_auth && !eku.server_auth);
    // The requested day, not the signer's year.
    let lifetime = cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp();
    assert_eq!(lifetime, 86_400 + BACKDATE.as_secs() as i64);
}

#[test]
fn pending_denied_and_foreign_requests_are_left_alone() {
    let ca = ca();
    let now = SystemTime::now();
    assert_eq!(
        decide(&csr("alice", CLIENT, &["client auth"], false), &ca, now),
        Decision::Nothing
    );
    assert_eq!(
        decide(
            &csr("alice", "example.com/other", &["client auth"], true),
            &ca,
            now
        ),
        Decision::Nothing
    );
    let mut denied = csr("alice", CLIENT, &["client auth"], true);
    if let Some(c) = denied.status.as_mut().and_then(|s| s.conditions.as_mut()) {
        c.push(CertificateSigningRequestCondition {
            type_: "Denied".into(),
            status: "True".into(),
            ..Default::default()
        });
    }
    assert_eq!(decide(&denied, &ca, now), Decision::Nothing);
}

#[test]
fn requests_outside_the_signers_rules_fail() {
    let ca = ca();
    let now = SystemTime::now();
    assert_eq!(
        decide(
            &csr("alice", CLIENT, &["client auth", "server auth"], true),
            &ca,
            now
        ),
        Decision::Fail("invalid usage for client certificate: server auth".into())
    );
    assert_eq!(
        decide(
            &csr(
                "alice",
                "kubernetes.io/kube-apiserver-client-kubelet",
                &["client auth"],
                true
            ),
            &ca,
            now
        ),
        Decision::Fail("subject common name \"alice\" must begin with \"system:node:\"".into())
    );
}
