//! e2e: upstream's "Certificate Signing Requests — issue a certificate for a user" task with
//! the real kubectl and openssl: a key and CSR made with openssl, `kubectl apply` of the
//! CertificateSigningRequest, `kubectl certificate approve`, the issued certificate in
//! `status.certificate`, and a kubeconfig user with it that the API server authenticates
//! (`auth whoami`) and RBAC then authorizes. Also `kubectl certificate deny`, and a request
//! the signer refuses.

mod common;
use common::Server;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A key and a CSR for `cn` in organization `org`; the CSR base64-encoded.
fn key_and_request(dir: &Path, cn: &str, org: &str) -> String {
    openssl(dir, &["genrsa", "-out", &format!("{cn}.key"), "2048"]);
    let subject = format!("/CN={cn}/O={org}");
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-key",
            &format!("{cn}.key"),
            "-out",
            &format!("{cn}.csr"),
            "-subj",
            &subject,
        ],
    );
    let pem = std::fs::read(dir.join(format!("{cn}.csr"))).expect("read csr");
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(pem)
}

fn manifest(name: &str, request: &str, usages: &[&str]) -> String {
    let usages: String = usages.iter().map(|u| format!("  - {u}\n")).collect();
    format!(
        "apiVersion: certificates.k8s.io/v1
kind: CertificateSigningRequest
metadata:
  name: {name}
spec:
  request: {request}
  signerName: kubernetes.io/kube-apiserver-client
  expirationSeconds: 86400
  usages:
{usages}"
    )
}

/// kubectl with a kubeconfig of its own (the new user's).
fn kubectl_as(s: &Server, kubeconfig: &Path, args: &[&str]) -> std::process::Output {
    Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .env_remove("KUBECONFIG")
        .env("HOME", s.data_dir())
        .output()
        .expect("run kubectl")
}

#[test]
fn a_user_certificate_is_requested_approved_issued_and_used() {
    let s = Server::start();
    let dir = s.data_dir().join("csr");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let request = key_and_request(&dir, "myuser", "dev");
    s.ok_stdin(
        &["apply", "-f", "-"],
        &manifest("myuser", &request, &["client auth"]),
    );
    let table = s.ok(&["get", "csr"]);
    assert!(
        table.contains("SIGNERNAME") && table.contains("REQUESTEDDURATION"),
        "{table}"
    );
    let row = table
        .lines()
        .find(|l| l.starts_with("myuser"))
        .unwrap_or("");
    // The requester is the authenticated user, not anything the manifest says.
    assert!(row.contains("kubernetes.io/kube-apiserver-client"), "{row}");
    assert!(row.contains("system:admin") && row.contains("24h"), "{row}");
    assert!(row.trim_end().ends_with("Pending"), "{row}");

    s.ok(&["certificate", "approve", "myuser"]);
    s.ok_until(
        &[
            "get",
            "csr",
            "myuser",
            "-o",
            "jsonpath={.status.certificate}",
        ],
        Duration::from_secs(60),
        |c| !c.is_empty(),
    );
    let row = s.ok(&["get", "csr", "myuser", "--no-headers"]);
    assert!(row.trim_end().ends_with("Approved,Issued"), "{row}");
    let reason = s.ok(&[
        "get",
        "csr",
        "myuser",
        "-o",
        "jsonpath={.status.conditions[0].type}/{.status.conditions[0].reason}",
    ]);
    assert_eq!(reason, "Approved/KubectlApprove");

    // Export the certificate and use it, as the task does.
    let cert_b64 = s.ok(&[
        "get",
        "csr",
        "myuser",
        "-o",
        "jsonpath={.status.certificate}",
    ]);
    use base64::Engine;
    let cert = base64::engine::general_purpose::STANDARD
        .decode(cert_b64.trim())
        .expect("base64 certificate");
    std::fs::write(dir.join("myuser.crt"), &cert).expect("write crt");
    let text = String::from_utf8_lossy(&cert).to_string();
    assert!(text.starts_with("-----BEGIN CERTIFICATE-----"), "{text}");

    let user_config = dir.join("user.yaml");
    std::fs::copy(&s.kubeconfig, &user_config).expect("copy kubeconfig");
    let key = dir.join("myuser.key");
    let crt = dir.join("myuser.crt");
    let key_arg = format!("--client-key={}", key.display());
    let crt_arg = format!("--client-certificate={}", crt.display());
    for args in [
        vec![
            "config",
            "set-credentials",
            "myuser",
            key_arg.as_str(),
            crt_arg.as_str(),
            "--embed-certs=true",
        ],
        vec!["config", "set-context", "--current", "--user=myuser"],
    ] {
        let out = kubectl_as(&s, &user_config, &args);
        assert!(out.status.success(), "{out:?}");
    }
    let who = kubectl_as(&s, &user_config, &["auth", "whoami"]);
    let who = String::from_utf8_lossy(&who.stdout).to_string();
    assert!(who.contains("myuser"), "{who}");
    assert!(who.contains("[dev system:authenticated]"), "{who}");
    let denied = kubectl_as(&s, &user_config, &["get", "pods"]);
    assert!(!denied.status.success());
    assert!(
        String::from_utf8_lossy(&denied.stderr)
            .contains("User \"myuser\" cannot list resource \"pods\""),
        "{denied:?}"
    );
    s.ok(&[
        "create",
        "role",
        "developer",
        "--verb=create,get,list,update,delete",
        "--resource=pods",
    ]);
    s.ok(&[
        "create",
        "rolebinding",
        "developer-binding-myuser",
        "--role=developer",
        "--user=myuser",
    ]);
    let allowed = kubectl_as(&s, &user_config, &["get", "pods"]);
    assert!(allowed.status.success(), "{allowed:?}");
}

#[test]
fn denied_and_invalid_requests_get_no_certificate() {
    let s = Server::start();
    let dir = s.data_dir().join("csr");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let request = key_and_request(&dir, "mallory", "dev");
    s.ok_stdin(
        &["apply", "-f", "-"],
        &manifest("mallory", &request, &["client auth"]),
    );
    s.ok(&["certificate", "deny", "mallory"]);
    let row = s.ok(&["get", "csr", "mallory", "--no-headers"]);
    assert!(row.trim_end().ends_with("Denied"), "{row}");
    // A denied request can no longer be approved: kubectl says so, and a client that
    // writes the approval itself is refused by the API server.
    let err = s.fails(&["certificate", "approve", "mallory"]);
    assert!(err.contains("is already Denied"), "{err}");
    let mut csr: serde_json::Value =
        serde_json::from_str(&s.ok(&["get", "csr", "mallory", "-o", "json"])).expect("json");
    if let Some(conds) = csr["status"]["conditions"].as_array_mut() {
        conds.push(serde_json::json!({"type": "Approved", "status": "True", "reason": "Sneaky"}));
    }
    let body = dir.join("approval.json");
    std::fs::write(&body, csr.to_string()).expect("write body");
    let err = s.fails(&[
        "replace",
        "--raw",
        "/apis/certificates.k8s.io/v1/certificatesigningrequests/mallory/approval",
        "-f",
        body.to_str().unwrap_or_default(),
    ]);
    assert!(err.contains("mutually exclusive"), "{err}");

    // A client signer does not issue server certificates.
    let request = key_and_request(&dir, "web", "dev");
    s.ok_stdin(
        &["apply", "-f", "-"],
        &manifest("web", &request, &["client auth", "server auth"]),
    );
    s.ok(&["certificate", "approve", "web"]);
    let row = s.ok_until(
        &["get", "csr", "web", "--no-headers"],
        Duration::from_secs(60),
        |r| r.contains("Failed"),
    );
    assert!(row.trim_end().ends_with("Approved,Failed"), "{row}");
    let message = s.ok(&[
        "get",
        "csr",
        "web",
        "-o",
        r#"jsonpath={.status.conditions[?(@.type=="Failed")].message}"#,
    ]);
    assert_eq!(message, "invalid usage for client certificate: server auth");

    // Server-side apply creates too: a requester claimed in the body is replaced by the
    // authenticated user.
    let request = key_and_request(&dir, "forged", "dev");
    let forged = manifest("forged", &request, &["client auth"]).replace(
        "  signerName:",
        "  username: system:kube-scheduler\n  signerName:",
    );
    s.ok_stdin(&["apply", "--server-side", "-f", "-"], &forged);
    assert_eq!(
        s.ok(&["get", "csr", "forged", "-o", "jsonpath={.spec.username}"]),
        "system:admin"
    );

    // Not a certificate request at all.
    use base64::Engine;
    let junk = base64::engine::general_purpose::STANDARD.encode("hello");
    let err = s
        .kubectl_stdin(
            &["apply", "-f", "-"],
            Some(&manifest("junk", &junk, &["client auth"])),
        )
        .stderr;
    let err = String::from_utf8_lossy(&err);
    assert!(err.contains("spec.request: Invalid value"), "{err}");
}
