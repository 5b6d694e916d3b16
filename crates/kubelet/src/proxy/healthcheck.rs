//! kube-proxy's service health checks: for every LoadBalancer Service with
//! `externalTrafficPolicy: Local`, an HTTP server on its `spec.healthCheckNodePort` (all
//! node addresses) tells an external load balancer whether this node has local endpoints
//! to send traffic to: 200 with their count, 503 with none, and upstream's JSON body and
//! headers.

use super::rules::PortRule;
use k8s_openapi::api::core::v1::Service;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// One Service's health check: where it listens and what it reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    pub port: u16,
    pub namespace: String,
    pub name: String,
    /// Ready endpoints of the Service on this node (distinct addresses).
    pub local_endpoints: usize,
}

/// The health checks the Services ask for, with their local endpoint counts.
pub fn wanted(services: &[Service], rules: &[PortRule]) -> Vec<HealthCheck> {
    let mut out = Vec::new();
    for svc in services {
        let Some((ns, name, spec)) = super::rules::identity(svc) else {
            continue;
        };
        let port = spec
            .health_check_node_port
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p > 0);
        let local_lb = spec.type_.as_deref() == Some("LoadBalancer")
            && spec.external_traffic_policy.as_deref() == Some("Local");
        let Some(port) = port.filter(|_| local_lb) else {
            continue;
        };
        let prefix = format!("{ns}/{name}:");
        let local: BTreeSet<&str> = rules
            .iter()
            .filter(|r| r.id.starts_with(&prefix))
            .flat_map(|r| r.local_endpoints.iter().map(|(ip, _)| ip.as_str()))
            .collect();
        out.push(HealthCheck {
            port,
            namespace: ns.to_string(),
            name: name.to_string(),
            local_endpoints: local.len(),
        });
    }
    out
}

/// What a listener reports; updated in place when endpoints change.
type Shared = Arc<Mutex<HealthCheck>>;

struct Listener {
    state: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The running health-check servers, by port.
#[derive(Default)]
pub struct HealthServers {
    listeners: HashMap<u16, Listener>,
}

impl HealthServers {
    /// Starts, updates and stops servers so exactly `checks` are served.
    pub async fn sync(&mut self, checks: Vec<HealthCheck>) {
        let ports: BTreeSet<u16> = checks.iter().map(|c| c.port).collect();
        self.listeners.retain(|p, _| ports.contains(p));
        for check in checks {
            if let Some(l) = self.listeners.get(&check.port) {
                if let Ok(mut s) = l.state.lock() {
                    *s = check;
                }
                continue;
            }
            let port = check.port;
            match TcpListener::bind(("0.0.0.0", port)).await {
                Ok(listener) => {
                    let state: Shared = Arc::new(Mutex::new(check));
                    let task = tokio::spawn(serve(listener, state.clone()));
                    self.listeners.insert(port, Listener { state, task });
                }
                Err(e) => tracing::warn!(port, "service health check: {e}"),
            }
        }
    }

    pub fn ports(&self) -> BTreeSet<u16> {
        self.listeners.keys().copied().collect()
    }
}

async fn serve(listener: TcpListener, state: Shared) {
    loop {
        let Ok((mut conn, _)) = listener.accept().await else {
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move {
            // The request itself does not matter (any path and method); read its head.
            let mut buf = [0u8; 1024];
            let _ =
                tokio::time::timeout(std::time::Duration::from_secs(5), conn.read(&mut buf)).await;
            let check = match state.lock() {
                Ok(s) => s.clone(),
                Err(_) => return,
            };
            let _ = conn.write_all(response(&check).as_bytes()).await;
            let _ = conn.shutdown().await;
        });
    }
}

/// The whole HTTP response for `check`, as kube-proxy writes it.
fn response(check: &HealthCheck) -> String {
    let healthy = check.local_endpoints > 0;
    let status = if healthy {
        "200 OK"
    } else {
        "503 Service Unavailable"
    };
    let body = serde_json::to_string_pretty(&serde_json::json!({
        "service": {"namespace": check.namespace, "name": check.name},
        "localEndpoints": check.local_endpoints,
        "serviceProxyHealthy": true,
    }))
    .unwrap_or_default();
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nX-Content-Type-Options: nosniff\r\nX-Load-Balancing-Endpoint-Weight: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        check.local_endpoints,
        body.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lb(policy: &str, health: Option<i32>) -> Service {
        let mut spec = json!({"type": "LoadBalancer", "externalTrafficPolicy": policy,
            "ports": [{"name": "http", "port": 80}]});
        if let Some(h) = health {
            spec["healthCheckNodePort"] = json!(h);
        }
        serde_json::from_value(json!({"metadata": {"name": "web", "namespace": "default"},
            "spec": spec}))
        .unwrap()
    }

    fn rule(local: &[&str]) -> PortRule {
        PortRule {
            id: "default/web:http".into(),
            cluster_ip: "10.43.0.10".into(),
            protocol: "tcp".into(),
            port: 80,
            node_port: Some(30080),
            lb_ips: Vec::new(),
            endpoints: Vec::new(),
            local_endpoints: local.iter().map(|ip| (ip.to_string(), 8080)).collect(),
            internal_local: false,
            external_local: true,
            affinity_seconds: None,
        }
    }

    #[test]
    fn only_local_load_balancers_with_a_port_are_checked() {
        let rules = [rule(&["10.42.0.5", "10.42.0.6"])];
        let checks = wanted(&[lb("Local", Some(31000))], &rules);
        assert_eq!(checks.len(), 1);
        assert_eq!(checks[0].port, 31000);
        assert_eq!(checks[0].local_endpoints, 2);
        assert!(wanted(&[lb("Cluster", Some(31000))], &rules).is_empty());
        assert!(wanted(&[lb("Local", None)], &rules).is_empty());
    }

    async fn get(port: u16) -> String {
        let mut c = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn servers_answer_with_the_local_endpoint_count() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let check = |n| HealthCheck {
            port,
            namespace: "default".into(),
            name: "web".into(),
            local_endpoints: n,
        };
        let mut servers = HealthServers::default();
        servers.sync(vec![check(0)]).await;
        let reply = get(port).await;
        assert!(
            reply.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
            "{reply}"
        );
        assert!(reply.contains("X-Load-Balancing-Endpoint-Weight: 0\r\n"));
        assert!(reply.contains("\"localEndpoints\": 0"), "{reply}");
        servers.sync(vec![check(2)]).await;
        let reply = get(port).await;
        assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
        assert!(reply.contains("\"name\": \"web\""), "{reply}");
        assert!(reply.contains("\"serviceProxyHealthy\": true"), "{reply}");
        // Not wanted any more: the port is closed.
        servers.sync(Vec::new()).await;
        assert!(servers.ports().is_empty());
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_err()
        );
    }
}
