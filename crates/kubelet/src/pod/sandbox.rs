//! The pod sandbox request: metadata and labels, hostname, DNS per dnsPolicy, hostPort
//! mappings, cgroup parent by QoS class, namespaces and pod security context. Also the
//! kubelet-managed /etc/hosts.

use super::runtime::{LABEL_MANAGED, LABEL_POD_NAME, LABEL_POD_NAMESPACE, LABEL_POD_UID};
use crate::KubeletConfig;
use crate::cri::api;
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use r8s_api::strategy::quantity::parse_quantity;
use std::collections::HashMap;

/// A pod's quality-of-service class (drives cgroup placement and OOM score).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qos {
    Guaranteed,
    Burstable,
    BestEffort,
}

impl Qos {
    pub fn as_str(self) -> &'static str {
        match self {
            Qos::Guaranteed => "Guaranteed",
            Qos::Burstable => "Burstable",
            Qos::BestEffort => "BestEffort",
        }
    }
}

fn all_containers(spec: &PodSpec) -> impl Iterator<Item = &Container> {
    spec.init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
}

/// Upstream's QoS rules: Guaranteed when every container has equal CPU and memory
/// requests and limits; BestEffort when nothing is requested or limited.
pub fn qos(pod: &Pod) -> Qos {
    let Some(spec) = pod.spec.as_ref() else {
        return Qos::BestEffort;
    };
    let mut any = false;
    let mut guaranteed = true;
    for c in all_containers(spec) {
        let r = c.resources.as_ref();
        let get = |m: Option<
            &std::collections::BTreeMap<
                String,
                k8s_openapi::apimachinery::pkg::api::resource::Quantity,
            >,
        >,
                   k: &str| {
            m.and_then(|m| m.get(k))
                .and_then(|q| parse_quantity(&q.0).ok())
                .filter(|v| *v > 0)
        };
        let requests = r.and_then(|r| r.requests.as_ref());
        let limits = r.and_then(|r| r.limits.as_ref());
        for res in ["cpu", "memory"] {
            let (req, lim) = (get(requests, res), get(limits, res));
            any |= req.is_some() || lim.is_some();
            match (req.or(lim), lim) {
                (Some(a), Some(b)) if a == b => {}
                _ => guaranteed = false,
            }
        }
    }
    if !any {
        Qos::BestEffort
    } else if guaranteed {
        Qos::Guaranteed
    } else {
        Qos::Burstable
    }
}

/// The pod cgroup (cgroupfs driver), as upstream lays out `kubepods`.
pub fn cgroup_parent(pod: &Pod) -> String {
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    match qos(pod) {
        Qos::Guaranteed => format!("/kubepods/pod{uid}"),
        Qos::Burstable => format!("/kubepods/burstable/pod{uid}"),
        Qos::BestEffort => format!("/kubepods/besteffort/pod{uid}"),
    }
}

fn host_network(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false)
}

/// The pod's hostname (its name or spec.hostname, at most 63 characters).
pub fn hostname(pod: &Pod) -> String {
    let spec = pod.spec.as_ref();
    if host_network(pod) {
        return crate::sysinfo::hostname();
    }
    let h = spec
        .and_then(|s| s.hostname.clone())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| pod.metadata.name.clone().unwrap_or_default());
    let mut h: String = h.chars().take(63).collect();
    while h.ends_with(['-', '.']) {
        h.pop();
    }
    h
}

/// (nameservers, searches, options) of a resolv.conf text.
pub fn parse_resolv_conf(text: &str) -> (Vec<String>, Vec<String>, Vec<String>) {
    let (mut ns, mut search, mut opts) = (Vec::new(), Vec::new(), Vec::new());
    for line in text.lines() {
        let mut f = line.split_whitespace();
        match f.next() {
            Some("nameserver") => ns.extend(f.next().map(String::from)),
            Some("search") | Some("domain") => search = f.map(String::from).collect(),
            Some("options") => opts.extend(f.map(String::from)),
            _ => {}
        }
    }
    (ns, search, opts)
}

/// DNS for the sandbox per dnsPolicy (+ spec.dnsConfig merged in).
pub fn dns_config(pod: &Pod, cfg: &KubeletConfig) -> api::DnsConfig {
    let spec = pod.spec.as_ref();
    let host_network = spec.and_then(|s| s.host_network).unwrap_or(false);
    let policy = spec
        .and_then(|s| s.dns_policy.as_deref())
        .unwrap_or("ClusterFirst");
    let host =
        || parse_resolv_conf(&std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default());
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let cluster = match (policy, host_network) {
        ("ClusterFirstWithHostNet", _) | ("ClusterFirst", false) => cfg.cluster_dns,
        _ => None,
    };
    let (mut servers, mut searches, mut options) = match (policy, cluster) {
        ("None", _) => (Vec::new(), Vec::new(), Vec::new()),
        (_, Some(dns)) => {
            let d = &cfg.cluster_domain;
            let (_, host_search, _) = host();
            let mut s = vec![format!("{ns}.svc.{d}"), format!("svc.{d}"), d.clone()];
            s.extend(host_search);
            (vec![dns.to_string()], s, vec!["ndots:5".to_string()])
        }
        _ => host(),
    };
    if let Some(dc) = spec.and_then(|s| s.dns_config.as_ref()) {
        servers.extend(dc.nameservers.iter().flatten().cloned());
        searches.extend(dc.searches.iter().flatten().cloned());
        for o in dc.options.iter().flatten() {
            let name = o.name.clone().unwrap_or_default();
            options.retain(|x| x.split(':').next() != Some(name.as_str()));
            options.push(match &o.value {
                Some(v) => format!("{name}:{v}"),
                None => name,
            });
        }
    }
    let mut seen = std::collections::HashSet::new();
    searches.retain(|s| seen.insert(s.clone()));
    servers.truncate(3);
    searches.truncate(32);
    api::DnsConfig {
        servers,
        searches,
        options,
    }
}

fn protocol(p: Option<&str>) -> i32 {
    match p {
        Some("UDP") => api::Protocol::Udp as i32,
        Some("SCTP") => api::Protocol::Sctp as i32,
        _ => api::Protocol::Tcp as i32,
    }
}

fn seccomp(p: Option<&k8s_openapi::api::core::v1::SeccompProfile>) -> Option<api::SecurityProfile> {
    let p = p?;
    let (t, r) = match p.type_.as_str() {
        "RuntimeDefault" => (
            api::security_profile::ProfileType::RuntimeDefault,
            String::new(),
        ),
        "Localhost" => (
            api::security_profile::ProfileType::Localhost,
            p.localhost_profile.clone().unwrap_or_default(),
        ),
        _ => (
            api::security_profile::ProfileType::Unconfined,
            String::new(),
        ),
    };
    Some(api::SecurityProfile {
        profile_type: t as i32,
        localhost_ref: r,
    })
}

/// Seccomp profile for a container: its own, else the pod's, else unconfined.
pub fn container_seccomp(pod: &Pod, c: &Container) -> Option<api::SecurityProfile> {
    let own = c
        .security_context
        .as_ref()
        .and_then(|s| s.seccomp_profile.as_ref());
    let pod_level = pod
        .spec
        .as_ref()
        .and_then(|s| s.security_context.as_ref())
        .and_then(|s| s.seccomp_profile.as_ref());
    seccomp(own.or(pod_level)).or(Some(api::SecurityProfile {
        profile_type: api::security_profile::ProfileType::Unconfined as i32,
        localhost_ref: String::new(),
    }))
}

/// The network/PID/IPC namespace modes of the pod.
pub fn namespace_options(spec: Option<&PodSpec>) -> api::NamespaceOption {
    let flag = |f: fn(&PodSpec) -> Option<bool>| spec.and_then(f).unwrap_or(false);
    let node_or = |on: bool, other: api::NamespaceMode| {
        if on {
            api::NamespaceMode::Node as i32
        } else {
            other as i32
        }
    };
    api::NamespaceOption {
        network: node_or(flag(|s| s.host_network), api::NamespaceMode::Pod),
        pid: if flag(|s| s.host_pid) {
            api::NamespaceMode::Node as i32
        } else if flag(|s| s.share_process_namespace) {
            api::NamespaceMode::Pod as i32
        } else {
            api::NamespaceMode::Container as i32
        },
        ipc: node_or(flag(|s| s.host_ipc), api::NamespaceMode::Pod),
        ..Default::default()
    }
}

/// Labels every sandbox and container of the pod carries.
pub fn pod_labels(pod: &Pod) -> HashMap<String, String> {
    let mut l: HashMap<String, String> = pod
        .metadata
        .labels
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    l.insert(
        LABEL_POD_NAME.into(),
        pod.metadata.name.clone().unwrap_or_default(),
    );
    l.insert(
        LABEL_POD_NAMESPACE.into(),
        pod.metadata.namespace.clone().unwrap_or_default(),
    );
    l.insert(
        LABEL_POD_UID.into(),
        pod.metadata.uid.clone().unwrap_or_default(),
    );
    l.insert(LABEL_MANAGED.into(), "true".into());
    l
}

/// The RunPodSandbox config for `attempt`.
pub fn sandbox_config(
    pod: &Pod,
    cfg: &KubeletConfig,
    log_dir: &std::path::Path,
    attempt: u32,
) -> api::PodSandboxConfig {
    let spec = pod.spec.as_ref();
    let psc = spec.and_then(|s| s.security_context.as_ref());
    let mut port_mappings = Vec::new();
    for c in spec.map(|s| s.containers.as_slice()).unwrap_or_default() {
        for p in c.ports.iter().flatten() {
            if let Some(hp) = p.host_port.filter(|hp| *hp > 0) {
                port_mappings.push(api::PortMapping {
                    protocol: protocol(p.protocol.as_deref()),
                    container_port: p.container_port,
                    host_port: hp,
                    host_ip: p.host_ip.clone().unwrap_or_default(),
                });
            }
        }
    }
    let privileged = spec
        .map(|s| {
            all_containers(s).any(|c| {
                c.security_context
                    .as_ref()
                    .and_then(|s| s.privileged)
                    .unwrap_or(false)
            })
        })
        .unwrap_or(false);
    let mut supplemental: Vec<i64> = psc
        .and_then(|p| p.supplemental_groups.clone())
        .unwrap_or_default();
    if let Some(fs) = psc.and_then(|p| p.fs_group) {
        supplemental.push(fs);
    }
    let sysctls = psc
        .and_then(|p| p.sysctls.as_ref())
        .map(|s| {
            s.iter()
                .map(|s| (s.name.clone(), s.value.clone()))
                .collect()
        })
        .unwrap_or_default();
    api::PodSandboxConfig {
        metadata: Some(api::PodSandboxMetadata {
            name: pod.metadata.name.clone().unwrap_or_default(),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            attempt,
        }),
        // Empty for host-network pods, as upstream's kubelet sends it: they share the
        // node's UTS namespace, and runc refuses to set a hostname there.
        hostname: if host_network(pod) {
            String::new()
        } else {
            hostname(pod)
        },
        log_directory: log_dir.display().to_string(),
        dns_config: Some(dns_config(pod, cfg)),
        port_mappings,
        labels: pod_labels(pod),
        annotations: pod
            .metadata
            .annotations
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
        linux: Some(api::LinuxPodSandboxConfig {
            cgroup_parent: cgroup_parent(pod),
            security_context: Some(api::LinuxSandboxSecurityContext {
                namespace_options: Some(namespace_options(spec)),
                run_as_user: psc
                    .and_then(|p| p.run_as_user)
                    .map(|value| api::Int64Value { value }),
                run_as_group: psc
                    .and_then(|p| p.run_as_group)
                    .map(|value| api::Int64Value { value }),
                supplemental_groups: supplemental,
                privileged,
                seccomp: seccomp(psc.and_then(|p| p.seccomp_profile.as_ref())),
                ..Default::default()
            }),
            sysctls,
            ..Default::default()
        }),
        windows: None,
    }
}

/// The kubelet-managed /etc/hosts of a (non-host-network) pod.
pub fn etc_hosts(pod: &Pod, pod_ip: &str, cluster_domain: &str) -> String {
    let mut s = String::from(
        "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n",
    );
    let name = hostname(pod);
    if !pod_ip.is_empty() {
        let sub = pod
            .spec
            .as_ref()
            .and_then(|s| s.subdomain.as_deref())
            .filter(|s| !s.is_empty());
        match sub {
            Some(sub) => {
                let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
                s.push_str(&format!(
                    "{pod_ip}\t{name}.{sub}.{ns}.svc.{cluster_domain}\t{name}\n"
                ));
            }
            None => s.push_str(&format!("{pod_ip}\t{name}\n")),
        }
    }
    let aliases = pod
        .spec
        .as_ref()
        .and_then(|s| s.host_aliases.as_deref())
        .unwrap_or_default();
    if !aliases.is_empty() {
        s.push_str("\n# Entries added by HostAliases.\n");
        for a in aliases {
            s.push_str(&format!(
                "{}\t{}\n",
                a.ip,
                a.hostnames.clone().unwrap_or_default().join("\t")
            ));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::net::{IpAddr, Ipv4Addr};

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn qos_classes() {
        let be = pod(json!({"metadata": {"uid": "u"}, "spec": {"containers": [{"name": "a"}]}}));
        assert_eq!(qos(&be), Qos::BestEffort);
        assert_eq!(cgroup_parent(&be), "/kubepods/besteffort/podu");
        let g = pod(
            json!({"metadata": {"uid": "u"}, "spec": {"containers": [{"name": "a", "resources": {
            "limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1000m", "memory": "1Gi"}}}]}}),
        );
        assert_eq!(qos(&g), Qos::Guaranteed);
        let b = pod(
            json!({"metadata": {"uid": "u"}, "spec": {"containers": [{"name": "a", "resources": {
            "requests": {"cpu": "100m"}}}]}}),
        );
        assert_eq!(qos(&b), Qos::Burstable);
    }

    #[test]
    fn dns_policies() {
        let mut cfg = KubeletConfig::new("n", IpAddr::V4(Ipv4Addr::LOCALHOST), "/tmp".into());
        cfg.cluster_dns = Some(IpAddr::V4(Ipv4Addr::new(10, 43, 0, 10)));
        let p = pod(
            json!({"metadata": {"name": "p", "namespace": "ns1"}, "spec": {"containers": [],
            "dnsConfig": {"options": [{"name": "ndots", "value": "2"}], "searches": ["extra.local"]}}}),
        );
        let d = dns_config(&p, &cfg);
        assert_eq!(d.servers, ["10.43.0.10"]);
        assert_eq!(
            &d.searches[..3],
            [
                "ns1.svc.cluster.local",
                "svc.cluster.local",
                "cluster.local"
            ]
        );
        assert!(d.searches.contains(&"extra.local".to_string()));
        assert_eq!(d.options, ["ndots:2"]);
        let none = pod(
            json!({"metadata": {"name": "p"}, "spec": {"containers": [], "dnsPolicy": "None",
            "dnsConfig": {"nameservers": ["1.2.3.4"]}}}),
        );
        assert_eq!(dns_config(&none, &cfg).servers, ["1.2.3.4"]);
        assert_eq!(
            parse_resolv_conf("nameserver 9.9.9.9\nsearch a b\noptions edns0\n"),
            (
                vec!["9.9.9.9".into()],
                vec!["a".into(), "b".into()],
                vec!["edns0".into()]
            )
        );
    }

    #[test]
    fn hosts_file_and_ports() {
        let p = pod(
            json!({"metadata": {"name": "web", "namespace": "d", "uid": "u"}, "spec": {
            "subdomain": "svc1", "hostAliases": [{"ip": "1.2.3.4", "hostnames": ["foo", "bar"]}],
            "containers": [{"name": "c", "ports": [{"containerPort": 80, "hostPort": 8080}, {"containerPort": 53, "protocol": "UDP"}]}]}}),
        );
        let h = etc_hosts(&p, "10.42.0.5", "cluster.local");
        assert!(h.contains("10.42.0.5\tweb.svc1.d.svc.cluster.local\tweb\n"));
        assert!(h.contains("1.2.3.4\tfoo\tbar\n"));
        let cfg = KubeletConfig::new("n", IpAddr::V4(Ipv4Addr::LOCALHOST), "/tmp".into());
        let sc = sandbox_config(&p, &cfg, std::path::Path::new("/logs"), 2);
        assert_eq!(sc.port_mappings.len(), 1);
        assert_eq!(sc.port_mappings[0].host_port, 8080);
        assert_eq!(sc.metadata.unwrap().attempt, 2);
        assert_eq!(sc.labels[LABEL_POD_UID], "u");
        assert_eq!(sc.hostname, "web");
    }

    #[test]
    fn host_network_sandboxes_send_no_hostname() {
        let p = pod(
            json!({"metadata": {"name": "hn", "namespace": "d", "uid": "u"},
            "spec": {"hostNetwork": true, "containers": [{"name": "c"}]}}),
        );
        let cfg = KubeletConfig::new("n", IpAddr::V4(Ipv4Addr::LOCALHOST), "/tmp".into());
        let sc = sandbox_config(&p, &cfg, std::path::Path::new("/logs"), 0);
        assert_eq!(sc.hostname, "");
        let ns = sc
            .linux
            .unwrap()
            .security_context
            .unwrap()
            .namespace_options
            .unwrap();
        assert_eq!(ns.network, crate::cri::api::NamespaceMode::Node as i32);
    }
}
