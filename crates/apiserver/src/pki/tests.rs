//! Tests for the PKI: creation, reuse, renewal and the kubeconfig.

use super::*;
use std::process::Command;

fn sans() -> SanConfig {
    SanConfig {
        hostname: Some("Node-A".into()),
        ips: vec!["192.168.1.10".parse().unwrap()],
        dns_names: vec!["api.example.test".into()],
        service_ip: first_service_ip("10.43.0.0/16"),
    }
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn tls_file(dir: &Path, name: &str) -> PathBuf {
    tls_dir(dir).join(name)
}

#[test]
fn creates_then_reuses_everything() {
    let dir = tempfile::tempdir().unwrap();
    let a = load_or_create(dir.path(), &sans()).unwrap();
    let b = load_or_create(dir.path(), &sans()).unwrap();
    assert_eq!(a.ca_pem, b.ca_pem);
    assert_eq!(a.ca_key, b.ca_key);
    assert_eq!(a.serving_cert_pem, b.serving_cert_pem);
    assert_eq!(a.serving_key_pem, b.serving_key_pem);
    assert_eq!(a.admin_cert_pem, b.admin_cert_pem);
    assert_eq!(a.admin_key_pem, b.admin_key_pem);
    assert_eq!(a.token, b.token);
    assert_eq!(a.token.len(), 32);

    for key in ["ca.key", "serving.key", "admin.key"] {
        assert_eq!(mode(&tls_file(dir.path(), key)), 0o600, "{key}");
    }
    assert_eq!(mode(&tls_file(dir.path(), "ca.crt")), 0o644);
    let token_path = dir.path().join("server/token");
    assert_eq!(mode(&token_path), 0o600);
    assert_eq!(fs::read_to_string(token_path).unwrap().trim(), a.token);

    let ca = parse_cert(&a.ca_pem, Path::new("ca")).unwrap();
    assert_eq!(ca.cn, ["r8s-ca"]);
    let years = (ca.not_after - now_secs() as i64) / (365 * DAY_SECS as i64);
    assert!((9..=10).contains(&years), "CA lifetime {years}y");
    let admin = parse_cert(&a.admin_cert_pem, Path::new("admin")).unwrap();
    assert_eq!(admin.cn, ["system:admin"]);
    assert_eq!(admin.orgs, ["system:masters"]);
    assert_eq!(admin.aki, ca.ski);
}

#[test]
fn serving_cert_has_all_sans() {
    let dir = tempfile::tempdir().unwrap();
    let pki = load_or_create(dir.path(), &sans()).unwrap();
    let cert = parse_cert(&pki.serving_cert_pem, Path::new("s")).unwrap();
    for want in [
        "localhost",
        "127.0.0.1",
        "::1",
        "node-a",
        "192.168.1.10",
        "api.example.test",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        "10.43.0.1",
    ] {
        assert!(
            cert.sans.contains(want),
            "missing SAN {want}: {:?}",
            cert.sans
        );
    }
    assert_eq!(cert.sans, sans().names());
    assert!(cert.not_after > (now_secs() + 364 * DAY_SECS) as i64);
}

#[test]
fn san_change_reissues_serving_cert_only() {
    let dir = tempfile::tempdir().unwrap();
    let a = load_or_create(dir.path(), &sans()).unwrap();
    let mut more = sans();
    more.ips.push("10.0.0.5".parse().unwrap());
    let b = load_or_create(dir.path(), &more).unwrap();
    assert_eq!(a.ca_pem, b.ca_pem);
    assert_eq!(a.admin_cert_pem, b.admin_cert_pem);
    assert_ne!(a.serving_cert_pem, b.serving_cert_pem);
    let cert = parse_cert(&b.serving_cert_pem, Path::new("s")).unwrap();
    assert!(cert.sans.contains("10.0.0.5"));
    // And the new one is what is on disk now.
    let c = load_or_create(dir.path(), &more).unwrap();
    assert_eq!(b.serving_cert_pem, c.serving_cert_pem);
}

#[test]
fn near_expiry_serving_cert_is_renewed_with_same_ca() {
    let dir = tempfile::tempdir().unwrap();
    let a = load_or_create(dir.path(), &sans()).unwrap();
    // Replace the serving cert with one from the same CA that expires in 10 days.
    let issuer =
        Issuer::from_ca_cert_pem(&a.ca_pem, KeyPair::from_pem(&a.ca_key).unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params = base_params(10 * DAY_SECS);
    params.use_authority_key_identifier_extension = true;
    params.subject_alt_names = sans()
        .names()
        .into_iter()
        .map(|s| match s.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(s.try_into().unwrap()),
        })
        .collect();
    let short = params.signed_by(&key, &issuer).unwrap().pem();
    write_file(
        &tls_file(dir.path(), "serving.crt"),
        short.as_bytes(),
        0o644,
    )
    .unwrap();
    write_file(
        &tls_file(dir.path(), "serving.key"),
        key.serialize_pem().as_bytes(),
        0o600,
    )
    .unwrap();

    let b = load_or_create(dir.path(), &sans()).unwrap();
    assert_eq!(a.ca_pem, b.ca_pem);
    assert_ne!(b.serving_cert_pem, short);
    let cert = parse_cert(&b.serving_cert_pem, Path::new("s")).unwrap();
    assert!(cert.not_after > (now_secs() + 300 * DAY_SECS) as i64);
}

#[test]
fn mismatched_or_missing_leaf_is_reissued() {
    let dir = tempfile::tempdir().unwrap();
    let a = load_or_create(dir.path(), &sans()).unwrap();
    // Swap in a key that does not belong to the admin cert.
    let other = KeyPair::generate().unwrap().serialize_pem();
    fs::write(tls_file(dir.path(), "admin.key"), other).unwrap();
    fs::remove_file(tls_file(dir.path(), "serving.crt")).unwrap();
    let b = load_or_create(dir.path(), &sans()).unwrap();
    assert_eq!(a.ca_pem, b.ca_pem);
    assert_ne!(a.admin_cert_pem, b.admin_cert_pem);
    assert_ne!(a.serving_cert_pem, b.serving_cert_pem);
}

#[test]
fn broken_ca_is_an_error_not_replaced() {
    let dir = tempfile::tempdir().unwrap();
    load_or_create(dir.path(), &sans()).unwrap();
    let ca = tls_file(dir.path(), "ca.crt");
    fs::write(&ca, "garbage").unwrap();
    assert!(matches!(
        load_or_create(dir.path(), &sans()),
        Err(PkiError::Invalid { .. })
    ));
    fs::remove_file(&ca).unwrap();
    let err = load_or_create(dir.path(), &sans()).unwrap_err();
    assert!(err.to_string().contains("only one of"), "{err}");
}

#[test]
fn signs_client_certs_for_agents() {
    let dir = tempfile::tempdir().unwrap();
    let pki = load_or_create(dir.path(), &sans()).unwrap();
    let (cert, key) = pki
        .sign_client_cert("system:node:n1", &["system:nodes", "extra"])
        .unwrap();
    let parsed = parse_cert(&cert, Path::new("c")).unwrap();
    assert_eq!(parsed.cn, ["system:node:n1"]);
    assert_eq!(parsed.orgs, ["system:nodes", "extra"]);
    check_key_matches(&parsed, &key, Path::new("k")).unwrap();
    assert!(matches!(
        pki.sign_client_cert("u", &["a", "b", "c"]),
        Err(PkiError::TooManyOrganizations(3))
    ));
    let ca = parse_cert(&pki.ca_pem, Path::new("ca")).unwrap();
    assert_eq!(parsed.aki, ca.ski);
}

#[test]
fn signs_serving_certs_for_kubelets() {
    let dir = tempfile::tempdir().unwrap();
    let pki = load_or_create(dir.path(), &sans()).unwrap();
    let ips: Vec<IpAddr> = vec!["10.0.0.7".parse().unwrap(), "::1".parse().unwrap()];
    let (cert, key) = pki.sign_serving_cert(&["node-a".into()], &ips).unwrap();
    let parsed = parse_cert(&cert, Path::new("c")).unwrap();
    assert_eq!(parsed.cn, ["node-a"]);
    let want: BTreeSet<String> = ["node-a", "10.0.0.7", "::1"].map(String::from).into();
    assert_eq!(parsed.sans, want);
    check_key_matches(&parsed, &key, Path::new("k")).unwrap();
    let ca = parse_cert(&pki.ca_pem, Path::new("ca")).unwrap();
    assert_eq!(parsed.aki, ca.ski);
    // Only addresses: the CN is the first one.
    let (cert, _) = pki.sign_serving_cert(&[], &ips[..1]).unwrap();
    assert_eq!(parse_cert(&cert, Path::new("c")).unwrap().cn, ["10.0.0.7"]);
}

#[test]
fn service_ip_from_cidr() {
    let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
    assert_eq!(first_service_ip("10.43.0.0/16"), ip("10.43.0.1"));
    assert_eq!(first_service_ip("10.43.7.9/16"), ip("10.43.0.1"));
    assert_eq!(first_service_ip("10.96.0.0/12"), ip("10.96.0.1"));
    assert_eq!(first_service_ip("fd00:43::/112"), ip("fd00:43::1"));
    assert_eq!(first_service_ip("10.0.0.0/0"), ip("0.0.0.1"));
    for bad in ["", "10.43.0.0", "10.43.0.0/33", "x/8", "10.0.0.1/32"] {
        assert_eq!(first_service_ip(bad), None, "{bad}");
    }
}

#[test]
fn kubeconfig_loads_in_kubectl() {
    let dir = tempfile::tempdir().unwrap();
    let pki = load_or_create(dir.path(), &sans()).unwrap();
    let path = dir.path().join("sub/kubeconfig.yaml");
    pki.write_kubeconfig(&path, "https://127.0.0.1:6443")
        .unwrap();
    assert_eq!(mode(&path), 0o600);
    // Rewriting keeps 0600 and replaces the content.
    pki.write_kubeconfig(&path, "https://127.0.0.1:6444")
        .unwrap();
    assert_eq!(mode(&path), 0o600);

    let kubectl = Path::new("/usr/bin/kubectl");
    if !kubectl.exists() {
        eprintln!("kubectl not installed; skipping the kubectl half");
        return;
    }
    let view = |jsonpath: &str| {
        let out = Command::new(kubectl)
            .args(["config", "view", "--raw", "--kubeconfig"])
            .arg(&path)
            .arg("-o")
            .arg(format!("jsonpath={jsonpath}"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    assert_eq!(view("{.current-context}"), "default");
    assert_eq!(
        view("{.clusters[0].cluster.server}"),
        "https://127.0.0.1:6444"
    );
    assert_eq!(
        view("{.clusters[0].cluster.certificate-authority-data}"),
        b64(&pki.ca_pem)
    );
    assert_eq!(
        view("{.users[0].user.client-certificate-data}"),
        b64(&pki.admin_cert_pem)
    );
    assert_eq!(
        view("{.users[0].user.client-key-data}"),
        b64(&pki.admin_key_pem)
    );
    assert_eq!(view("{.contexts[0].context.user}"), "default");
}
