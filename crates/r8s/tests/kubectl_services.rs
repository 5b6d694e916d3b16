//! e2e: Service address allocation seen through the real kubectl: a LoadBalancer Service
//! with `externalTrafficPolicy: Local` gets a `healthCheckNodePort` from the NodePort range,
//! released when the policy goes back to Cluster; a port in use is refused.

mod common;
use common::Server;

fn lb(name: &str, extra: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n  type: LoadBalancer\n  selector: {{app: {name}}}\n  ports: [{{port: 80}}]\n{extra}"
    )
}

#[test]
fn local_load_balancers_get_a_health_check_node_port() {
    let s = Server::start();
    s.ok_stdin(
        &["apply", "-f", "-"],
        &lb("local", "  externalTrafficPolicy: Local\n"),
    );
    let jp =
        |name: &str, expr: &str| s.ok(&["get", "svc", name, "-o", &format!("jsonpath={expr}")]);
    let health: u16 = jp("local", "{.spec.healthCheckNodePort}")
        .parse()
        .expect("healthCheckNodePort allocated");
    let node_port: u16 = jp("local", "{.spec.ports[0].nodePort}")
        .parse()
        .expect("nodePort");
    assert!((30000..=32767).contains(&health), "{health}");
    assert_ne!(health, node_port);
    // Cluster-wide services have none.
    s.ok_stdin(&["apply", "-f", "-"], &lb("cluster", ""));
    assert_eq!(jp("cluster", "{.spec.healthCheckNodePort}"), "");
    // The port is taken: another Service cannot have it.
    let taken = format!("  externalTrafficPolicy: Local\n  healthCheckNodePort: {health}\n");
    let out = s.kubectl_stdin(&["apply", "-f", "-"], Some(&lb("other", &taken)));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("spec.healthCheckNodePort: Invalid value")
            && err.contains("provided port is already allocated"),
        "{err}"
    );
    // Back to Cluster: the field goes and the port is free again.
    s.ok(&[
        "patch",
        "svc",
        "local",
        "-p",
        r#"{"spec":{"externalTrafficPolicy":"Cluster"}}"#,
    ]);
    assert_eq!(jp("local", "{.spec.healthCheckNodePort}"), "");
    s.ok_stdin(&["apply", "-f", "-"], &lb("other", &taken));
    assert_eq!(
        jp("other", "{.spec.healthCheckNodePort}"),
        health.to_string()
    );
}
