//! Printers of networking, storage, policy, scheduling, coordination, discovery and RBAC
//! kinds.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::core_v1::load_balancer_points;
use super::duration::since;
use super::fields::{
    arr_at, at, bool_at, created, format_label_selector, int_at, int_or_string, int0, name, str_at,
};
use super::{AGE, Column, NAME, Printer, col, typed, wide};

pub(super) fn printer(group: &str, plural: &str) -> Option<Printer> {
    let (columns, cells): (&'static [Column], super::CellsFn) = match (group, plural) {
        ("networking.k8s.io", "ingresses") => (INGRESS, ingress),
        ("networking.k8s.io", "ingressclasses") => (INGRESS_CLASS, ingress_class),
        ("networking.k8s.io", "networkpolicies") => (NETWORK_POLICY, network_policy),
        ("storage.k8s.io", "storageclasses") => (STORAGE_CLASS, storage_class),
        ("coordination.k8s.io", "leases") => (LEASE, lease),
        ("policy", "poddisruptionbudgets") => (PDB, pdb),
        ("scheduling.k8s.io", "priorityclasses") => (PRIORITY_CLASS, priority_class),
        ("discovery.k8s.io", "endpointslices") => (ENDPOINT_SLICE, endpoint_slice),
        ("rbac.authorization.k8s.io", "rolebindings" | "clusterrolebindings") => (BINDING, binding),
        (
            "admissionregistration.k8s.io",
            "mutatingwebhookconfigurations" | "validatingwebhookconfigurations",
        ) => (WEBHOOKS, webhooks),
        ("admissionregistration.k8s.io", "validatingadmissionpolicies") => {
            (ADMISSION_POLICY, admission_policy)
        }
        ("admissionregistration.k8s.io", "validatingadmissionpolicybindings") => {
            (POLICY_BINDING, policy_binding)
        }
        ("node.k8s.io", "runtimeclasses") => (RUNTIME_CLASS, runtime_class),
        ("storage.k8s.io", "csidrivers") => (CSI_DRIVER, csi_driver),
        ("storage.k8s.io", "csinodes") => (CSI_NODE, csi_node),
        ("storage.k8s.io", "volumeattachments") => (VOLUME_ATTACHMENT, volume_attachment),
        ("certificates.k8s.io", "certificatesigningrequests") => (CSR, csr),
        ("apiregistration.k8s.io", "apiservices") => (API_SERVICE, api_service),
        ("metrics.k8s.io", "nodes") => (RESOURCE_METRICS, node_metrics),
        ("metrics.k8s.io", "pods") => (RESOURCE_METRICS, pod_metrics),
        _ => return None,
    };
    Some(Printer { columns, cells })
}

const INGRESS: &[Column] = &[
    NAME,
    col("Class", "The IngressClass handling this ingress."),
    col("Hosts", "Hosts the rules match."),
    col("Address", "Load-balancer addresses of the ingress."),
    col("Ports", "Ports the ingress serves."),
    AGE,
];

fn ingress_hosts(rules: &[Value]) -> String {
    const MAX: usize = 3;
    let mut hosts: Vec<&str> = Vec::new();
    // Once three hosts are listed, any further rule (with or without a host) is "more".
    let mut more = false;
    for rule in rules {
        if hosts.len() == MAX {
            more = true;
        }
        let host = str_at(rule, &["host"]);
        if !more && !host.is_empty() {
            hosts.push(host);
        }
    }
    if hosts.is_empty() {
        return "*".to_string();
    }
    if more {
        return format!("{} + {} more...", hosts.join(","), rules.len() - MAX);
    }
    hosts.join(",")
}

fn ingress(ing: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let class = at(ing, &["spec", "ingressClassName"])
        .and_then(Value::as_str)
        .unwrap_or("<none>");
    let address =
        load_balancer_points(arr_at(ing, &["status", "loadBalancer", "ingress"])).join(",");
    let ports = if arr_at(ing, &["spec", "tls"]).is_empty() {
        "80"
    } else {
        "80, 443"
    };
    vec![
        name(ing).into(),
        class.into(),
        ingress_hosts(arr_at(ing, &["spec", "rules"])).into(),
        address.into(),
        ports.into(),
        since(created(ing), now).into(),
    ]
}

const INGRESS_CLASS: &[Column] = &[
    NAME,
    col("Controller", "The controller that implements the class."),
    col("Parameters", "Resource holding the class's parameters."),
    AGE,
];

fn ingress_class(ic: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let parameters = match at(ic, &["spec", "parameters"]) {
        Some(p) if !p.is_null() => {
            let kind = str_at(p, &["kind"]);
            let kind = match at(p, &["apiGroup"]).and_then(Value::as_str) {
                Some(group) => format!("{kind}.{group}"),
                None => kind.to_string(),
            };
            format!("{kind}/{}", str_at(p, &["name"]))
        }
        _ => "<none>".to_string(),
    };
    vec![
        name(ic).into(),
        str_at(ic, &["spec", "controller"]).into(),
        parameters.into(),
        since(created(ic), now).into(),
    ]
}

const NETWORK_POLICY: &[Column] = &[
    NAME,
    col("Pod-Selector", "Pods the policy applies to."),
    AGE,
];

fn network_policy(np: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![
        name(np).into(),
        format_label_selector(at(np, &["spec", "podSelector"])).into(),
        since(created(np), now).into(),
    ]
}

const STORAGE_CLASS: &[Column] = &[
    NAME,
    col("Provisioner", "The volume plugin that provisions volumes."),
    col("ReclaimPolicy", "Reclaim policy of provisioned volumes."),
    col(
        "VolumeBindingMode",
        "When volumes are bound and provisioned.",
    ),
    col("AllowVolumeExpansion", "Whether claims may be resized."),
    AGE,
];

const DEFAULT_CLASS: &str = "storageclass.kubernetes.io/is-default-class";
const BETA_DEFAULT_CLASS: &str = "storageclass.beta.kubernetes.io/is-default-class";

fn storage_class(sc: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let is_default = [DEFAULT_CLASS, BETA_DEFAULT_CLASS]
        .iter()
        .any(|a| str_at(sc, &["metadata", "annotations", a]) == "true");
    let mut shown = name(sc).to_string();
    if is_default {
        shown.push_str(" (default)");
    }
    let or = |field: &str, default: &'static str| {
        at(sc, &[field])
            .and_then(Value::as_str)
            .unwrap_or(default)
            .to_string()
    };
    vec![
        shown.into(),
        str_at(sc, &["provisioner"]).into(),
        or("reclaimPolicy", "Delete").into(),
        or("volumeBindingMode", "Immediate").into(),
        bool_at(sc, &["allowVolumeExpansion"])
            .unwrap_or(false)
            .into(),
        since(created(sc), now).into(),
    ]
}

const LEASE: &[Column] = &[NAME, col("Holder", "Identity of the lease holder."), AGE];

fn lease(l: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![
        name(l).into(),
        str_at(l, &["spec", "holderIdentity"]).into(),
        since(created(l), now).into(),
    ]
}

const PDB: &[Column] = &[
    NAME,
    col("Min Available", "Pods that must stay available."),
    col("Max Unavailable", "Pods that may be unavailable."),
    typed(
        "Allowed Disruptions",
        "integer",
        "Pods that may be disrupted now.",
    ),
    AGE,
];

fn pdb(p: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let bound = |field: &str| match at(p, &["spec", field]) {
        Some(v) if !v.is_null() => int_or_string(v),
        _ => "N/A".to_string(),
    };
    vec![
        name(p).into(),
        bound("minAvailable").into(),
        bound("maxUnavailable").into(),
        int0(p, &["status", "disruptionsAllowed"]).into(),
        since(created(p), now).into(),
    ]
}

const PRIORITY_CLASS: &[Column] = &[
    NAME,
    typed("Value", "integer", "Priority of pods using the class."),
    typed(
        "Global-Default",
        "boolean",
        "Whether pods without a class get this one.",
    ),
    AGE,
    wide(
        "PreemptionPolicy",
        "Whether pods of the class may preempt others.",
    ),
];

fn priority_class(pc: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![
        name(pc).into(),
        int0(pc, &["value"]).into(),
        bool_at(pc, &["globalDefault"]).unwrap_or(false).into(),
        since(created(pc), now).into(),
        str_at(pc, &["preemptionPolicy"]).into(),
    ]
}

const WEBHOOKS: &[Column] = &[
    NAME,
    typed(
        "Webhooks",
        "integer",
        "Number of webhooks in the configuration.",
    ),
    AGE,
];

fn webhooks(cfg: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![
        name(cfg).into(),
        arr_at(cfg, &["webhooks"]).len().into(),
        since(created(cfg), now).into(),
    ]
}

const ADMISSION_POLICY: &[Column] = &[
    NAME,
    typed(
        "Validations",
        "integer",
        "Validations indicates the number of validation rules defined in this configuration",
    ),
    col(
        "ParamKind",
        "ParamKind specifies the kind of resources used to parameterize this policy",
    ),
    AGE,
];

fn admission_policy(p: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let param_kind = match at(p, &["spec", "paramKind"]).filter(|k| k.is_object()) {
        Some(k) => format!("{}/{}", str_at(k, &["apiVersion"]), str_at(k, &["kind"])),
        None => "<unset>".to_string(),
    };
    vec![
        name(p).into(),
        arr_at(p, &["spec", "validations"]).len().into(),
        param_kind.into(),
        since(created(p), now).into(),
    ]
}

const POLICY_BINDING: &[Column] = &[
    NAME,
    col(
        "PolicyName",
        "PolicyName indicates the policy definition which the policy binding binded to",
    ),
    col(
        "ParamRef",
        "ParamRef indicates the param resource which sets the configration param",
    ),
    AGE,
];

fn policy_binding(b: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let param_ref = match at(b, &["spec", "paramRef"]).filter(|r| r.is_object()) {
        Some(r) => {
            let (name, namespace) = (str_at(r, &["name"]), str_at(r, &["namespace"]));
            if !name.is_empty() {
                // Whether the parameter is namespaced is not known here: `*/name`.
                let ns = if namespace.is_empty() { "*" } else { namespace };
                format!("{ns}/{name}")
            } else if let Some(sel) = r.get("selector").filter(|s| s.is_object()) {
                format_label_selector(Some(sel))
            } else {
                "<unset>".to_string()
            }
        }
        None => "<unset>".to_string(),
    };
    vec![
        name(b).into(),
        str_at(b, &["spec", "policyName"]).into(),
        param_ref.into(),
        since(created(b), now).into(),
    ]
}

const RUNTIME_CLASS: &[Column] = &[
    NAME,
    col("Handler", "The CRI handler running pods of this class."),
    AGE,
];

fn runtime_class(rc: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![
        name(rc).into(),
        str_at(rc, &["handler"]).into(),
        since(created(rc), now).into(),
    ]
}

const CSI_DRIVER: &[Column] = &[
    NAME,
    typed(
        "AttachRequired",
        "boolean",
        "Whether volumes need attaching.",
    ),
    typed(
        "PodInfoOnMount",
        "boolean",
        "Whether mounts get pod information.",
    ),
    typed("StorageCapacity", "boolean", "Whether capacity is tracked."),
    col(
        "TokenRequests",
        "Audiences of service account tokens passed to the driver.",
    ),
    typed(
        "RequiresRepublish",
        "boolean",
        "Whether volumes are republished periodically.",
    ),
    col("Modes", "Volume lifecycle modes supported."),
    AGE,
];

/// Unset booleans print as their API defaults (only `attachRequired` defaults to true).
fn csi_driver(d: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let flag = |field: &str, default: bool| bool_at(d, &["spec", field]).unwrap_or(default);
    let tokens = match at(d, &["spec", "tokenRequests"]).and_then(Value::as_array) {
        Some(list) => list
            .iter()
            .map(|t| str_at(t, &["audience"]))
            .collect::<Vec<_>>()
            .join(","),
        None => "<unset>".into(),
    };
    let modes: Vec<&str> = arr_at(d, &["spec", "volumeLifecycleModes"])
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let modes = if modes.is_empty() {
        "Persistent".to_string()
    } else {
        modes.join(",")
    };
    vec![
        name(d).into(),
        flag("attachRequired", true).into(),
        flag("podInfoOnMount", false).into(),
        flag("storageCapacity", false).into(),
        tokens.into(),
        flag("requiresRepublish", false).into(),
        modes.into(),
        since(created(d), now).into(),
    ]
}

const CSI_NODE: &[Column] = &[
    NAME,
    typed("Drivers", "integer", "Number of CSI drivers on the node."),
    AGE,
];

fn csi_node(n: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![
        name(n).into(),
        arr_at(n, &["spec", "drivers"]).len().into(),
        since(created(n), now).into(),
    ]
}

const VOLUME_ATTACHMENT: &[Column] = &[
    NAME,
    col("Attacher", "The CSI driver attaching the volume."),
    col("PV", "The persistent volume attached."),
    col("Node", "The node it is attached to."),
    typed("Attached", "boolean", "Whether the volume is attached."),
    AGE,
];

fn volume_attachment(va: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![
        name(va).into(),
        str_at(va, &["spec", "attacher"]).into(),
        str_at(va, &["spec", "source", "persistentVolumeName"]).into(),
        str_at(va, &["spec", "nodeName"]).into(),
        bool_at(va, &["status", "attached"]).unwrap_or(false).into(),
        since(created(va), now).into(),
    ]
}

const ENDPOINT_SLICE: &[Column] = &[
    NAME,
    col("AddressType", "IPv4, IPv6 or FQDN."),
    col("Ports", "Up to three port numbers."),
    col("Endpoints", "Up to three endpoint addresses."),
    AGE,
];

/// Up to three entries, then `+ N more...`; `<unset>` when there are none.
fn list_with_more(list: Vec<String>, count: usize) -> String {
    const MAX: usize = 3;
    let joined = list.into_iter().take(MAX).collect::<Vec<_>>().join(",");
    if count > MAX {
        format!("{joined} + {} more...", count - MAX)
    } else if joined.is_empty() {
        "<unset>".to_string()
    } else {
        joined
    }
}

fn endpoint_slice(es: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let ports: Vec<String> = arr_at(es, &["ports"])
        .iter()
        .map(|p| {
            match (
                int_at(p, &["port"]),
                at(p, &["name"]).and_then(Value::as_str),
            ) {
                (Some(port), _) => port.to_string(),
                (None, Some(name)) => name.to_string(),
                (None, None) => "*".to_string(),
            }
        })
        .collect();
    let addresses: Vec<String> = arr_at(es, &["endpoints"])
        .iter()
        .flat_map(|e| arr_at(e, &["addresses"]))
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect();
    let (port_count, address_count) = (ports.len(), addresses.len());
    vec![
        name(es).into(),
        str_at(es, &["addressType"]).into(),
        list_with_more(ports, port_count).into(),
        list_with_more(addresses, address_count).into(),
        since(created(es), now).into(),
    ]
}

const BINDING: &[Column] = &[
    NAME,
    col("Role", "The bound role (Kind/name)."),
    AGE,
    wide("Users", "Users bound."),
    wide("Groups", "Groups bound."),
    wide(
        "ServiceAccounts",
        "Service accounts bound (namespace:name).",
    ),
];

fn binding(b: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let (mut users, mut groups, mut service_accounts) = (Vec::new(), Vec::new(), Vec::new());
    for s in arr_at(b, &["subjects"]) {
        let subject = str_at(s, &["name"]);
        match str_at(s, &["kind"]) {
            "User" => users.push(subject.to_string()),
            "Group" => groups.push(subject.to_string()),
            "ServiceAccount" => {
                service_accounts.push(format!("{}:{subject}", str_at(s, &["namespace"])))
            }
            _ => {}
        }
    }
    vec![
        name(b).into(),
        format!(
            "{}/{}",
            str_at(b, &["roleRef", "kind"]),
            str_at(b, &["roleRef", "name"])
        )
        .into(),
        since(created(b), now).into(),
        users.join(", ").into(),
        groups.join(", ").into(),
        service_accounts.join(", ").into(),
    ]
}

const CSR: &[Column] = &[
    NAME,
    AGE,
    col("SignerName", "The signer the request is addressed to."),
    col("Requestor", "The user who made the request."),
    col("RequestedDuration", "The certificate lifetime asked for."),
    col(
        "Condition",
        "Approval state, and whether a certificate was issued.",
    ),
];

/// Upstream's condition summary: Denied beats Approved, else Pending; then Failed and
/// Issued.
fn csr_condition(csr: &Value) -> String {
    let types: Vec<&str> = arr_at(csr, &["status", "conditions"])
        .iter()
        .map(|c| str_at(c, &["type"]))
        .collect();
    let mut out = if types.contains(&"Denied") {
        "Denied".to_string()
    } else if types.contains(&"Approved") {
        "Approved".to_string()
    } else {
        "Pending".to_string()
    };
    if types.contains(&"Failed") {
        out.push_str(",Failed");
    }
    if !str_at(csr, &["status", "certificate"]).is_empty() {
        out.push_str(",Issued");
    }
    out
}

fn csr(csr: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let or_none = |s: &str| {
        if s.is_empty() {
            "<none>".to_string()
        } else {
            s.to_string()
        }
    };
    let duration = int_at(csr, &["spec", "expirationSeconds"])
        .map(|s| super::duration::human_duration(chrono::Duration::seconds(s)))
        .unwrap_or_else(|| "<none>".into());
    vec![
        name(csr).into(),
        since(created(csr), now).into(),
        or_none(str_at(csr, &["spec", "signerName"])).into(),
        str_at(csr, &["spec", "username"]).into(),
        duration.into(),
        csr_condition(csr).into(),
    ]
}

const API_SERVICE: &[Column] = &[
    NAME,
    col(
        "Service",
        "The reference to the service that hosts this API endpoint.",
    ),
    col(
        "Available",
        "Whether this service is available and accessible.",
    ),
    AGE,
];

/// `Local` or `namespace/name`; `True`, or `False (Reason)`, or `Unknown`.
fn api_service(a: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let service = match at(a, &["spec", "service"]).filter(|s| !s.is_null()) {
        Some(s) => format!("{}/{}", str_at(s, &["namespace"]), str_at(s, &["name"])),
        None => "Local".to_string(),
    };
    let available = arr_at(a, &["status", "conditions"])
        .iter()
        .find(|c| str_at(c, &["type"]) == "Available")
        .map(|c| match (str_at(c, &["status"]), str_at(c, &["reason"])) {
            ("True", _) => "True".to_string(),
            (status, "") => status.to_string(),
            (status, reason) => format!("{status} ({reason})"),
        })
        .unwrap_or_else(|| "Unknown".to_string());
    vec![
        name(a).into(),
        service.into(),
        available.into(),
        since(created(a), now).into(),
    ]
}

/// metrics-server's columns: the usage by resource name, then the window.
const RESOURCE_METRICS: &[Column] = &[
    NAME,
    Column {
        format: "quantity",
        ..col("cpu", "")
    },
    Column {
        format: "quantity",
        ..col("memory", "")
    },
    Column {
        format: "duration",
        ..col("Window", "")
    },
];

fn usage_cells(obj: &Value, usage: &crate::quota::ResourceList) -> Vec<Value> {
    let amount = |r: &str| usage.get(r).map(|a| a.text()).unwrap_or_default();
    vec![
        name(obj).into(),
        amount("cpu").into(),
        amount("memory").into(),
        str_at(obj, &["window"]).into(),
    ]
}

fn node_metrics(m: &Value, _now: DateTime<Utc>) -> Vec<Value> {
    usage_cells(m, &crate::quota::parse_list(m.get("usage")))
}

/// A pod's row sums its containers.
fn pod_metrics(m: &Value, _now: DateTime<Utc>) -> Vec<Value> {
    let total = arr_at(m, &["containers"])
        .iter()
        .map(|c| crate::quota::parse_list(c.get("usage")))
        .fold(crate::quota::ResourceList::new(), |a, b| {
            crate::quota::add(&a, &b)
        });
    usage_cells(m, &total)
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
    fn ingress_row() {
        let ing = json!({"metadata": {"name": "web"},
            "spec": {"ingressClassName": "traefik", "tls": [{"hosts": ["a.example"]}],
                     "rules": [{"host": "a.example"}, {"host": "b.example"}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.5"}]}}});
        assert_eq!(
            &ingress(&ing, now())[1..5],
            &[
                json!("traefik"),
                json!("a.example,b.example"),
                json!("10.0.0.5"),
                json!("80, 443")
            ]
        );
        let bare = json!({"spec": {"rules": [{}]}});
        assert_eq!(
            &ingress(&bare, now())[1..5],
            &[json!("<none>"), json!("*"), json!(""), json!("80")]
        );
        let many = json!([{"host": "a"}, {"host": "b"}, {"host": "c"}, {"host": "d"}, {}]);
        assert_eq!(
            ingress_hosts(many.as_array().expect("rules")),
            "a,b,c + 2 more..."
        );
    }

    #[test]
    fn storage_class_defaults() {
        let sc = json!({"metadata": {"name": "local-path",
                "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
            "provisioner": "rancher.io/local-path", "volumeBindingMode": "WaitForFirstConsumer"});
        assert_eq!(
            &storage_class(&sc, now())[..5],
            &[
                json!("local-path (default)"),
                json!("rancher.io/local-path"),
                json!("Delete"),
                json!("WaitForFirstConsumer"),
                json!(false)
            ]
        );
    }

    #[test]
    fn pdb_priority_lease_binding() {
        let p = json!({"metadata": {"name": "web"}, "spec": {"minAvailable": "50%"},
            "status": {"disruptionsAllowed": 1}});
        assert_eq!(
            &pdb(&p, now())[1..4],
            &[json!("50%"), json!("N/A"), json!(1)]
        );
        let pc = json!({"metadata": {"name": "high"}, "value": 1000, "globalDefault": true,
            "preemptionPolicy": "Never"});
        let cells = priority_class(&pc, now());
        assert_eq!(
            (&cells[1], &cells[2], &cells[4]),
            (&json!(1000), &json!(true), &json!("Never"))
        );
        let l = json!({"metadata": {"name": "n1"}, "spec": {"holderIdentity": "n1"}});
        assert_eq!(lease(&l, now())[1], "n1");
        let rb = json!({"metadata": {"name": "rb"}, "roleRef": {"kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "User", "name": "alice"}, {"kind": "Group", "name": "devs"},
                         {"kind": "ServiceAccount", "name": "ci", "namespace": "build"},
                         {"kind": "User", "name": "bob"}]});
        assert_eq!(
            binding(&rb, now()),
            vec![
                json!("rb"),
                json!("ClusterRole/view"),
                json!("<unknown>"),
                json!("alice, bob"),
                json!("devs"),
                json!("build:ci")
            ]
        );
    }

    #[test]
    fn endpoint_slice_row() {
        let es = json!({"metadata": {"name": "web-abc"}, "addressType": "IPv4",
            "ports": [{"port": 80, "name": "http"}, {"name": "x"}, {}],
            "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2"]},
                          {"addresses": ["10.0.0.3"]}, {"addresses": ["10.0.0.4"]}]});
        assert_eq!(
            &endpoint_slice(&es, now())[1..4],
            &[
                json!("IPv4"),
                json!("80,x,*"),
                json!("10.0.0.1,10.0.0.2,10.0.0.3 + 1 more...")
            ]
        );
        let empty = json!({"addressType": "IPv4"});
        assert_eq!(endpoint_slice(&empty, now())[2], "<unset>");
        let np = json!({"spec": {"podSelector": {}}});
        assert_eq!(network_policy(&np, now())[1], "<none>");
        let ic = json!({"spec": {"controller": "k8s.io/ingress-nginx",
            "parameters": {"apiGroup": "k8s.example.com", "kind": "IngressParameters", "name": "p"}}});
        assert_eq!(
            ingress_class(&ic, now())[2],
            "IngressParameters.k8s.example.com/p"
        );
    }

    #[test]
    fn csr_rows_summarise_the_decision() {
        let mut c = json!({"metadata": {"name": "u"}, "spec": {
            "signerName": "kubernetes.io/kube-apiserver-client",
            "username": "alice", "expirationSeconds": 86400}});
        let row = csr(&c, now());
        assert_eq!(row[2], "kubernetes.io/kube-apiserver-client");
        assert_eq!(row[3], "alice");
        assert_eq!(row[4], "24h");
        assert_eq!(row[5], "Pending");
        c["status"] = json!({"conditions": [{"type": "Approved"}, {"type": "Failed"}]});
        assert_eq!(csr(&c, now())[5], "Approved,Failed");
        c["status"] = json!({"conditions": [{"type": "Approved"}], "certificate": "LS0t"});
        assert_eq!(csr(&c, now())[5], "Approved,Issued");
        c["status"] = json!({"conditions": [{"type": "Approved"}, {"type": "Denied"}]});
        assert_eq!(csr(&c, now())[5], "Denied");
        c["spec"] = json!({});
        assert_eq!(csr(&c, now())[2], "<none>");
        assert_eq!(csr(&c, now())[4], "<none>");
    }
}
