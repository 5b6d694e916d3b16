//! Service account issuer discovery over HTTPS: the OIDC configuration and the JWK set
//! read by the admin, by a service account's TokenRequest token (granted by the bootstrap
//! `system:service-account-issuer-discovery` binding), refused to anonymous (401) and to
//! other users (403); the published key verifies the service account's token; and
//! `kubectl get --raw` reads the configuration.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::PostParams;
use kube::{Api, Client};
use r8s_apiserver::testing::TestServer;
use serde_json::{Value, json};

const CONFIG: &str = "/.well-known/openid-configuration";
const JWKS: &str = "/openid/v1/jwks";
const CACHE: &str = "public, max-age=3600";

struct Got {
    code: u16,
    content_type: String,
    cache_control: String,
    body: Value,
}

async fn get(client: &Client, path: &str, headers: &[(&str, &str)]) -> Got {
    let mut req = axum::http::Request::builder().method("GET").uri(path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = client
        .send(req.body(kube::client::Body::empty()).unwrap())
        .await
        .unwrap();
    let h = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let (content_type, cache_control) = (h("content-type"), h("cache-control"));
    let code = resp.status().as_u16();
    let bytes = resp.into_body().collect_bytes().await.unwrap();
    Got {
        code,
        content_type,
        cache_control,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

/// A client of `server` that authenticates with `token` only (no client certificate), or
/// not at all.
async fn client_with(server: &TestServer, token: Option<&str>) -> Client {
    let kc = kube::config::Kubeconfig::read_from(&server.kubeconfig).unwrap();
    let mut cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    cfg.auth_info = match token {
        Some(t) => serde_json::from_value(json!({"token": t})).unwrap(),
        None => Default::default(),
    };
    Client::try_from(cfg).unwrap()
}

async fn service_account_token(admin: &Client) -> String {
    let sas: Api<ServiceAccount> = Api::namespaced(admin.clone(), "default");
    let sa = serde_json::from_value(json!({"metadata": {"name": "relying-party"}})).unwrap();
    sas.create(&PostParams::default(), &sa).await.unwrap();
    let (code, tr) = common::send(
        admin,
        "POST",
        "/api/v1/namespaces/default/serviceaccounts/relying-party/token",
        Some(
            json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                    "spec": {"expirationSeconds": 3600}}),
        ),
    )
    .await;
    assert_eq!(code, 201, "{tr}");
    tr["status"]["token"].as_str().expect("token").to_string()
}

/// Check the token's ES256 signature with nothing but the published JWK, as an external
/// relying party would.
fn verify_with_jwks(token: &str, keys: &Value) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3);
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    assert_eq!(header["alg"], "ES256");
    let key = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header["kid"])
        .expect("the token's kid is published");
    let coord = |c: &str| URL_SAFE_NO_PAD.decode(key[c].as_str().unwrap()).unwrap();
    let mut point = vec![0x04];
    point.extend(coord("x"));
    point.extend(coord("y"));
    assert_eq!(point.len(), 65);
    let sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    let input = format!("{}.{}", parts[0], parts[1]);
    ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, &point)
        .verify(input.as_bytes(), &sig)
        .expect("the published key verifies the token");
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    assert_eq!(claims["sub"], "system:serviceaccount:default:relying-party");
}

#[tokio::test]
async fn issuer_discovery_endpoints() {
    let (server, admin) = common::start().await;
    let port = server.running.local_addr.port();

    // The admin reads both documents.
    let config = get(&admin, CONFIG, &[]).await;
    assert_eq!(config.code, 200, "{}", config.body);
    assert_eq!(config.content_type, "application/json");
    assert_eq!(config.cache_control, CACHE);
    // The test server advertises loopback: jwks_uri names it with the bound port.
    assert_eq!(
        config.body,
        json!({
            "issuer": "https://kubernetes.default.svc.cluster.local",
            "jwks_uri": format!("https://127.0.0.1:{port}{JWKS}"),
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
        })
    );
    let jwks = get(&admin, JWKS, &[]).await;
    assert_eq!(jwks.code, 200, "{}", jwks.body);
    assert_eq!(jwks.content_type, "application/jwk-set+json");
    assert_eq!(jwks.cache_control, CACHE);
    let keys = jwks.body["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 1);
    let key = &keys[0];
    for (field, want) in [
        ("use", "sig"),
        ("kty", "EC"),
        ("crv", "P-256"),
        ("alg", "ES256"),
    ] {
        assert_eq!(key[field], want, "{key}");
    }
    assert_eq!(
        key.as_object().unwrap().keys().count(),
        7,
        "only public members: {key}"
    );
    // The trailing-slash forms answer the same.
    assert_eq!(get(&admin, "/openid/v1/jwks/", &[]).await.body, jwks.body);
    assert_eq!(
        get(&admin, "/.well-known/openid-configuration/", &[])
            .await
            .body,
        config.body
    );
    // `/` lists them.
    let root = get(&admin, "/", &[]).await;
    let paths = root.body["paths"].as_array().expect("paths");
    assert!(paths.contains(&json!(CONFIG)) && paths.contains(&json!(JWKS)));

    // A service account's token reads them (bootstrap RBAC), and the published key
    // verifies that very token.
    let token = service_account_token(&admin).await;
    let sa = client_with(&server, Some(&token)).await;
    // (The policy reaches the authorizer through a watch: allow it a moment.)
    let mut sa_config = get(&sa, CONFIG, &[]).await;
    for _ in 0..50 {
        if sa_config.code == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        sa_config = get(&sa, CONFIG, &[]).await;
    }
    assert_eq!(sa_config.code, 200, "{}", sa_config.body);
    assert_eq!(sa_config.body, config.body);
    let sa_jwks = get(&sa, JWKS, &[]).await;
    assert_eq!(sa_jwks.code, 200, "{}", sa_jwks.body);
    assert_eq!(sa_jwks.body, jwks.body);
    verify_with_jwks(&token, &sa_jwks.body);

    // Anonymous requests are refused (401); other users are not granted them (403).
    let anonymous = client_with(&server, None).await;
    for path in [CONFIG, JWKS] {
        assert_eq!(get(&anonymous, path, &[]).await.code, 401, "{path}");
        let jane = get(&admin, path, &[("Impersonate-User", "jane")]).await;
        assert_eq!(jane.code, 403, "{path}: {}", jane.body);
    }

    // The bootstrap policy objects, as upstream's.
    let (code, role) = common::send(
        &admin,
        "GET",
        "/apis/rbac.authorization.k8s.io/v1/clusterroles/system:service-account-issuer-discovery",
        None,
    )
    .await;
    assert_eq!(code, 200, "{role}");
    assert_eq!(
        role["rules"],
        json!([{"verbs": ["get"], "nonResourceURLs": [
            "/.well-known/openid-configuration", "/.well-known/openid-configuration/",
            "/openid/v1/jwks", "/openid/v1/jwks/"]}])
    );
    let (code, binding) = common::send(
        &admin,
        "GET",
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/system:service-account-issuer-discovery",
        None,
    )
    .await;
    assert_eq!(code, 200, "{binding}");
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "Group", "apiGroup": "rbac.authorization.k8s.io",
                "name": "system:serviceaccounts"}])
    );

    // `kubectl get --raw`, when kubectl is installed.
    match tokio::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&server.kubeconfig)
        .args(["get", "--raw", CONFIG])
        .output()
        .await
    {
        Ok(out) => {
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let v: Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(v, config.body);
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("kubectl not installed: skipping the kubectl check");
        }
        Err(e) => panic!("kubectl: {e}"),
    }
}
