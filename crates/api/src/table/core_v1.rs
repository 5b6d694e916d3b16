//! Printers of core/v1 kinds (and events.k8s.io events, which print like core events).

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::duration::since;
use super::fields::{
    arr_at, at, bool_at, created, format_labels, int_at, map_len, name, or_none, str_at,
};
use super::{AGE, Column, NAME, Printer, col, events, pod, volumes, wide};

pub(super) fn printer(group: &str, plural: &str) -> Option<Printer> {
    let (columns, cells): (&'static [Column], super::CellsFn) = match (group, plural) {
        ("", "pods") => (pod::COLUMNS, pod::cells),
        ("", "namespaces") => (NAMESPACE, namespace),
        ("", "nodes") => (NODE, node),
        ("", "services") => (SERVICE, service),
        ("", "endpoints") => (ENDPOINTS, endpoints),
        ("", "configmaps") => (CONFIGMAP, configmap),
        ("", "secrets") => (SECRET, secret),
        ("", "serviceaccounts") => (SERVICEACCOUNT, serviceaccount),
        ("", "events") => (events::EVENT, events::core_event),
        ("events.k8s.io", "events") => (events::EVENT, events::events_v1_event),
        ("", "persistentvolumes") => (volumes::PV, volumes::persistent_volume),
        ("", "persistentvolumeclaims") => (volumes::PVC, volumes::persistent_volume_claim),
        ("", "resourcequotas") => (volumes::QUOTA, volumes::resource_quota),
        ("", "componentstatuses") => (COMPONENT_STATUS, component_status),
        _ => return None,
    };
    Some(Printer { columns, cells })
}

const NAMESPACE: &[Column] = &[NAME, col("Status", "The phase of the namespace."), AGE];

const COMPONENT_STATUS: &[Column] = &[
    NAME,
    col("Status", "Status of the component conditions"),
    col("Message", "Message of the component conditions"),
    col("Error", "Error of the component conditions"),
];

/// Status, message and error of the `Healthy` condition (`Unknown` without one).
fn component_status(cs: &Value, _now: DateTime<Utc>) -> Vec<Value> {
    let healthy = arr_at(cs, &["conditions"])
        .iter()
        .find(|c| str_at(c, &["type"]) == "Healthy");
    let (status, message, error) = match healthy {
        Some(c) if str_at(c, &["status"]) == "True" => ("Healthy", c, c),
        Some(c) => ("Unhealthy", c, c),
        None => ("Unknown", &Value::Null, &Value::Null),
    };
    vec![
        name(cs).into(),
        status.into(),
        str_at(message, &["message"]).into(),
        str_at(error, &["error"]).into(),
    ]
}

fn namespace(ns: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![
        name(ns).into(),
        str_at(ns, &["status", "phase"]).into(),
        since(created(ns), now).into(),
    ]
}

const NODE: &[Column] = &[
    NAME,
    col(
        "Status",
        "Readiness of the node, and whether it is cordoned.",
    ),
    col(
        "Roles",
        "Roles from the node-role.kubernetes.io/<role> labels.",
    ),
    AGE,
    col("Version", "Version of the kubelet."),
    wide("Internal-IP", "The node's first InternalIP address."),
    wide("External-IP", "The node's first ExternalIP address."),
    wide("OS-Image", "Operating system image reported by the node."),
    wide("Kernel-Version", "Kernel version reported by the node."),
    wide("Container-Runtime", "Container runtime name and version."),
];

const ROLE_LABEL_PREFIX: &str = "node-role.kubernetes.io/";
const ROLE_LABEL: &str = "kubernetes.io/role";

fn node_roles(node: &Value) -> String {
    let mut roles = BTreeSet::new();
    if let Some(labels) = at(node, &["metadata", "labels"]).and_then(Value::as_object) {
        for (k, v) in labels {
            if let Some(role) = k.strip_prefix(ROLE_LABEL_PREFIX)
                && !role.is_empty()
            {
                roles.insert(role.to_string());
            } else if k == ROLE_LABEL
                && let Some(v) = v.as_str().filter(|v| !v.is_empty())
            {
                roles.insert(v.to_string());
            }
        }
    }
    or_none(&roles.into_iter().collect::<Vec<_>>().join(","))
}

fn node_address(node: &Value, kind: &str) -> String {
    arr_at(node, &["status", "addresses"])
        .iter()
        .find(|a| str_at(a, &["type"]) == kind)
        .map(|a| str_at(a, &["address"]).to_string())
        .unwrap_or_else(|| "<none>".to_string())
}

fn node(node: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let mut status: Vec<&str> = Vec::new();
    if let Some(ready) = arr_at(node, &["status", "conditions"])
        .iter()
        .find(|c| str_at(c, &["type"]) == "Ready")
    {
        status.push(if str_at(ready, &["status"]) == "True" {
            "Ready"
        } else {
            "NotReady"
        });
    } else {
        status.push("Unknown");
    }
    if bool_at(node, &["spec", "unschedulable"]) == Some(true) {
        status.push("SchedulingDisabled");
    }
    let info = |field: &str| {
        let v = str_at(node, &["status", "nodeInfo", field]);
        if v.is_empty() {
            "<unknown>".to_string()
        } else {
            v.to_string()
        }
    };
    vec![
        name(node).into(),
        status.join(",").into(),
        node_roles(node).into(),
        since(created(node), now).into(),
        str_at(node, &["status", "nodeInfo", "kubeletVersion"]).into(),
        node_address(node, "InternalIP").into(),
        node_address(node, "ExternalIP").into(),
        info("osImage").into(),
        info("kernelVersion").into(),
        info("containerRuntimeVersion").into(),
    ]
}

const SERVICE: &[Column] = &[
    NAME,
    col("Type", "How the service is exposed."),
    col("Cluster-IP", "The service's cluster IP."),
    col(
        "External-IP",
        "Addresses the service is reachable at from outside the cluster.",
    ),
    col("Port(s)", "Service ports, with node ports."),
    AGE,
    wide(
        "Selector",
        "Labels of the pods the service sends traffic to.",
    ),
];

fn strings_at(v: &Value, path: &[&str]) -> Vec<String> {
    arr_at(v, path)
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

/// Load-balancer ingress points (IP, else hostname), sorted and de-duplicated.
pub(super) fn load_balancer_points(ingress: &[Value]) -> Vec<String> {
    let set: BTreeSet<String> = ingress
        .iter()
        .filter_map(|i| {
            let ip = str_at(i, &["ip"]);
            let host = str_at(i, &["hostname"]);
            if !ip.is_empty() {
                Some(ip.to_string())
            } else if !host.is_empty() {
                Some(host.to_string())
            } else {
                None
            }
        })
        .collect();
    set.into_iter().collect()
}

fn service_external_ip(svc: &Value) -> String {
    let external = strings_at(svc, &["spec", "externalIPs"]);
    match str_at(svc, &["spec", "type"]) {
        "ClusterIP" | "NodePort" => {
            if external.is_empty() {
                "<none>".to_string()
            } else {
                external.join(",")
            }
        }
        "LoadBalancer" => {
            let mut all = load_balancer_points(arr_at(svc, &["status", "loadBalancer", "ingress"]));
            if all.is_empty() && external.is_empty() {
                return "<pending>".to_string();
            }
            all.extend(external);
            all.join(",")
        }
        "ExternalName" => str_at(svc, &["spec", "externalName"]).to_string(),
        _ => "<unknown>".to_string(),
    }
}

/// `80/TCP,30080:443/TCP`: port, node port when allocated, protocol.
pub(crate) fn service_ports(svc: &Value) -> String {
    let ports: Vec<String> = arr_at(svc, &["spec", "ports"])
        .iter()
        .map(|p| {
            let port = int_at(p, &["port"]).unwrap_or(0);
            let protocol = match str_at(p, &["protocol"]) {
                "" => "TCP",
                proto => proto,
            };
            match int_at(p, &["nodePort"]).filter(|n| *n > 0) {
                Some(node_port) => format!("{port}:{node_port}/{protocol}"),
                None => format!("{port}/{protocol}"),
            }
        })
        .collect();
    or_none(&ports.join(","))
}

fn service(svc: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let cluster_ip = arr_at(svc, &["spec", "clusterIPs"])
        .first()
        .and_then(Value::as_str)
        .unwrap_or_else(|| str_at(svc, &["spec", "clusterIP"]));
    vec![
        name(svc).into(),
        str_at(svc, &["spec", "type"]).into(),
        or_none(cluster_ip).into(),
        service_external_ip(svc).into(),
        service_ports(svc).into(),
        since(created(svc), now).into(),
        format_labels(at(svc, &["spec", "selector"])).into(),
    ]
}

const ENDPOINTS: &[Column] = &[
    NAME,
    col("Endpoints", "Up to three ready addresses with ports."),
    AGE,
];

/// Up to three `ip:port` entries, then `+ N more...` (upstream's formatEndpoints).
fn format_endpoints(ep: &Value) -> String {
    const MAX: usize = 3;
    let subsets = arr_at(ep, &["subsets"]);
    if subsets.is_empty() {
        return "<none>".to_string();
    }
    let mut list: Vec<String> = Vec::new();
    let mut count = 0usize;
    for ss in subsets {
        let addresses = arr_at(ss, &["addresses"]);
        let ports = arr_at(ss, &["ports"]);
        // Headless services may have addresses without ports.
        let port_numbers: Vec<Option<i64>> = if ports.is_empty() {
            vec![None]
        } else {
            ports
                .iter()
                .map(|p| Some(int_at(p, &["port"]).unwrap_or(0)))
                .collect()
        };
        for port in port_numbers {
            count += addresses.len();
            for addr in addresses {
                if list.len() == MAX {
                    break;
                }
                let ip = str_at(addr, &["ip"]);
                list.push(match port {
                    // net.JoinHostPort brackets IPv6 addresses.
                    Some(p) if ip.contains(':') => format!("[{ip}]:{p}"),
                    Some(p) => format!("{ip}:{p}"),
                    None => ip.to_string(),
                });
            }
        }
    }
    let joined = list.join(",");
    if count > MAX {
        format!("{joined} + {} more...", count - MAX)
    } else {
        joined
    }
}

fn endpoints(ep: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![
        name(ep).into(),
        format_endpoints(ep).into(),
        since(created(ep), now).into(),
    ]
}

const CONFIGMAP: &[Column] = &[
    NAME,
    col("Data", "Number of data and binaryData entries."),
    AGE,
];

fn configmap(cm: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let entries = map_len(cm, &["data"]) + map_len(cm, &["binaryData"]);
    vec![
        name(cm).into(),
        entries.into(),
        since(created(cm), now).into(),
    ]
}

const SECRET: &[Column] = &[
    NAME,
    col("Type", "The secret's type."),
    col("Data", "Number of data entries."),
    AGE,
];

fn secret(s: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![
        name(s).into(),
        str_at(s, &["type"]).into(),
        map_len(s, &["data"]).into(),
        since(created(s), now).into(),
    ]
}

const SERVICEACCOUNT: &[Column] = &[NAME, col("Secrets", "Number of secrets listed."), AGE];

fn serviceaccount(sa: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![
        name(sa).into(),
        arr_at(sa, &["secrets"]).len().into(),
        since(created(sa), now).into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2024-05-01T12:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .expect("time")
    }

    #[test]
    fn service_ports_and_ips() {
        let svc = json!({"metadata": {"name": "web", "creationTimestamp": "2024-05-01T11:59:55Z"},
            "spec": {"type": "ClusterIP", "clusterIP": "10.43.0.10", "clusterIPs": ["10.43.0.10"],
                     "ports": [{"port": 80, "protocol": "TCP"}, {"port": 443, "protocol": "TCP"}],
                     "selector": {"app": "web"}}});
        assert_eq!(
            service(&svc, now()),
            vec![
                json!("web"),
                json!("ClusterIP"),
                json!("10.43.0.10"),
                json!("<none>"),
                json!("80/TCP,443/TCP"),
                json!("5s"),
                json!("app=web")
            ]
        );
        let cases = [
            (
                json!({"spec": {"ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}]}}),
                "80:30080/TCP",
            ),
            (
                json!({"spec": {"ports": [{"port": 53, "protocol": "UDP"}]}}),
                "53/UDP",
            ),
            (json!({"spec": {}}), "<none>"),
        ];
        for (svc, want) in cases {
            assert_eq!(service_ports(&svc), want);
        }
        let lb = json!({"spec": {"type": "LoadBalancer"}});
        assert_eq!(service_external_ip(&lb), "<pending>");
        let lb = json!({"spec": {"type": "LoadBalancer", "externalIPs": ["1.2.3.4"]},
            "status": {"loadBalancer": {"ingress": [{"ip": "5.6.7.8"}, {"hostname": "lb.example"}]}}});
        assert_eq!(service_external_ip(&lb), "5.6.7.8,lb.example,1.2.3.4");
        let ext = json!({"spec": {"type": "ExternalName", "externalName": "example.com"}});
        assert_eq!(service_external_ip(&ext), "example.com");
        let headless =
            json!({"spec": {"type": "ClusterIP", "clusterIP": "None", "clusterIPs": ["None"]}});
        assert_eq!(service(&headless, now())[2], "None");
    }

    #[test]
    fn node_row() {
        let n = json!({"metadata": {"name": "n1", "creationTimestamp": "2024-04-29T12:00:00Z",
                "labels": {"node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/master": "",
                           "kubernetes.io/role": "worker"}},
            "spec": {"unschedulable": true},
            "status": {"conditions": [{"type": "Ready", "status": "True"}],
                       "addresses": [{"type": "InternalIP", "address": "192.168.1.10"},
                                     {"type": "Hostname", "address": "n1"}],
                       "nodeInfo": {"kubeletVersion": "v1.33.0", "osImage": "Debian"}}});
        assert_eq!(
            node(&n, now()),
            vec![
                json!("n1"),
                json!("Ready,SchedulingDisabled"),
                json!("control-plane,master,worker"),
                json!("2d"),
                json!("v1.33.0"),
                json!("192.168.1.10"),
                json!("<none>"),
                json!("Debian"),
                json!("<unknown>"),
                json!("<unknown>")
            ]
        );
        let bare = json!({"metadata": {"name": "n2"}});
        assert_eq!(node(&bare, now())[1], "Unknown");
        assert_eq!(node(&bare, now())[2], "<none>");
        assert_eq!(node(&bare, now())[3], "<unknown>");
    }

    #[test]
    fn endpoints_format() {
        let ep = json!({"subsets": [{"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}],
                                     "ports": [{"port": 80}, {"port": 81}]}]});
        assert_eq!(
            format_endpoints(&ep),
            "10.0.0.1:80,10.0.0.2:80,10.0.0.1:81 + 1 more..."
        );
        assert_eq!(format_endpoints(&json!({})), "<none>");
        let headless = json!({"subsets": [{"addresses": [{"ip": "fd00::1"}]}]});
        assert_eq!(format_endpoints(&headless), "fd00::1");
        let v6 = json!({"subsets": [{"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 53}]}]});
        assert_eq!(format_endpoints(&v6), "[fd00::1]:53");
    }

    #[test]
    fn small_kinds() {
        let s = json!({"metadata": {"name": "s"}, "type": "Opaque", "data": {"a": "", "b": ""}});
        assert_eq!(
            secret(&s, now()),
            vec![json!("s"), json!("Opaque"), json!(2), json!("<unknown>")]
        );
        let sa = json!({"metadata": {"name": "default"}});
        assert_eq!(serviceaccount(&sa, now())[1], 0);
        let ns = json!({"metadata": {"name": "kube-system"}, "status": {"phase": "Active"}});
        assert_eq!(namespace(&ns, now())[1], "Active");
    }
}
