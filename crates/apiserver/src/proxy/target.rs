//! Where `pods/<id>/proxy` and `services/<id>/proxy` send traffic, as upstream's
//! `ResourceLocation` of pods and services: the id is `name`, `name:port` or
//! `scheme:name:port` (`SplitSchemeNamePort`); a pod answers on its first pod IP and the
//! given port (else its first declared container port, else the scheme's default); a
//! service answers on a random ready endpoint address of the chosen service port, checked
//! against the pod the address belongs to.

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use serde_json::Value;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};

/// The scheme used to talk to the pod or endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    /// The port a URL without one means.
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

/// A parsed `[scheme:]name[:port]` proxy id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyId {
    pub scheme: Scheme,
    pub name: String,
    /// As written (may be empty, a number or, for services, a port name).
    pub port: String,
}

impl ProxyId {
    /// Upstream's `SplitSchemeNamePort`: one to three `:`-separated parts, a non-empty
    /// name, and a scheme of `http`, `https` or nothing.
    pub fn parse(id: &str) -> Option<ProxyId> {
        let parts: Vec<&str> = id.split(':').collect();
        let (scheme, name, port) = match parts.as_slice() {
            [name] => ("", *name, ""),
            [name, port] => ("", *name, *port),
            [scheme, name, port] => (*scheme, *name, *port),
            _ => return None,
        };
        let scheme = match scheme {
            "" | "http" => Scheme::Http,
            "https" => Scheme::Https,
            _ => return None,
        };
        if name.is_empty() {
            return None;
        }
        Some(ProxyId {
            scheme,
            name: name.to_string(),
            port: port.to_string(),
        })
    }
}

/// A resolved backend address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub scheme: Scheme,
    pub host: String,
    /// The port as the id (or pod/endpoint) gave it: usually a number; empty means the
    /// scheme's default.
    pub port: String,
}

impl Location {
    /// `host[:port]` with IPv6 hosts bracketed, as a URL authority.
    pub fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port.is_empty() {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    /// The numeric port to dial; `None` when the port is not a valid TCP port number.
    pub fn dial_port(&self) -> Option<u16> {
        if self.port.is_empty() {
            Some(self.scheme.default_port())
        } else {
            self.port.parse().ok()
        }
    }
}

/// Whether pod IPs on loopback may be proxied to (off by default, as upstream).
static ALLOW_LOOPBACK: AtomicBool = AtomicBool::new(false);

/// Let `pods/proxy` reach loopback pod IPs. Upstream refuses them (the API server would
/// otherwise be an open door to its own host's local services); tests without real pod
/// networks serve "pods" on 127.0.0.1 and turn this on, in process, or for a whole
/// `r8s server` process with `R8S_PROXY_ALLOW_LOOPBACK=1` in its environment.
pub fn set_allow_loopback(allow: bool) {
    ALLOW_LOOPBACK.store(allow, Ordering::Relaxed);
}

fn loopback_allowed() -> bool {
    static FROM_ENV: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    ALLOW_LOOPBACK.load(Ordering::Relaxed)
        || *FROM_ENV.get_or_init(|| {
            std::env::var("R8S_PROXY_ALLOW_LOOPBACK")
                .is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
        })
}

/// Go's `IP.IsGlobalUnicast`: not unspecified, loopback, multicast, link-local or the
/// IPv4 broadcast address (IPv4-mapped IPv6 addresses count as IPv4).
pub fn is_global_unicast(ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    match ip {
        IpAddr::V4(v4) => {
            !(v4.is_unspecified()
                || v4.is_loopback()
                || v4.is_multicast()
                || v4.is_link_local()
                || v4.is_broadcast())
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            !(v6.is_unspecified()
                || v6.is_loopback()
                || v6.is_multicast()
                || (first & 0xffc0) == 0xfe80)
        }
    }
}

/// The first pod IP (`status.podIPs[0]`, else `status.podIP`), as upstream's `getPodIP`.
pub fn pod_ip(pod: &Value) -> &str {
    pod.pointer("/status/podIPs/0/ip")
        .and_then(Value::as_str)
        .or_else(|| pod.pointer("/status/podIP").and_then(Value::as_str))
        .unwrap_or("")
}

/// Every pod IP of `pod` (`status.podIPs`, else `status.podIP`).
fn pod_ips(pod: &Value) -> Vec<&str> {
    let listed: Vec<&str> = pod
        .pointer("/status/podIPs")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|p| p.get("ip").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    if !listed.is_empty() {
        return listed;
    }
    pod.pointer("/status/podIP")
        .and_then(Value::as_str)
        .filter(|ip| !ip.is_empty())
        .into_iter()
        .collect()
}

/// The first declared port of the first container that declares any.
pub fn first_container_port(pod: &Value) -> Option<i64> {
    pod.pointer("/spec/containers")
        .and_then(Value::as_array)?
        .iter()
        .filter_map(|c| c.get("ports").and_then(Value::as_array))
        .find(|ports| !ports.is_empty())
        .and_then(|ports| ports[0].get("containerPort"))
        .and_then(Value::as_i64)
}

/// Where `pods/<raw_id>/proxy` goes (upstream's pod `ResourceLocation`): 400 for a bad
/// id, 404 for a missing pod, 400 `address not allowed` unless the pod IP is a global
/// unicast address.
pub async fn pod_location(state: &AppState, namespace: &str, raw_id: &str) -> ApiResult<Location> {
    let id = ProxyId::parse(raw_id)
        .ok_or_else(|| ApiError::bad_request(format!("invalid pod request {raw_id:?}")))?;
    let pod = get(state, "pods", namespace, &id.name).await?;
    pod_location_with(&pod, &id, loopback_allowed())
}

fn pod_location_with(pod: &Value, id: &ProxyId, allow_loopback: bool) -> ApiResult<Location> {
    let mut port = id.port.clone();
    if port.is_empty()
        && let Some(p) = first_container_port(pod)
    {
        port = p.to_string();
    }
    let ip_text = pod_ip(pod);
    let allowed = ip_text
        .parse::<IpAddr>()
        .is_ok_and(|ip| is_global_unicast(ip) || (allow_loopback && ip.is_loopback()));
    if !allowed {
        return Err(ApiError::bad_request("address not allowed"));
    }
    Ok(Location {
        scheme: id.scheme,
        host: ip_text.to_string(),
        port,
    })
}

/// Where `services/<raw_id>/proxy` goes (upstream's service `ResourceLocation`): 400 for a
/// bad id, 404 for a missing service (when a port number is given) or Endpoints, 503 when
/// no ready address serves the port.
pub async fn service_location(
    state: &AppState,
    namespace: &str,
    raw_id: &str,
) -> ApiResult<Location> {
    let id = ProxyId::parse(raw_id)
        .ok_or_else(|| ApiError::bad_request(format!("invalid service request {raw_id:?}")))?;
    let mut port_name = id.port.clone();
    // A port number names the service port with that number.
    if let Ok(number) = id.port.parse::<i64>() {
        let svc = get(state, "services", namespace, &id.name).await?;
        port_name = service_port_name(&svc, number).ok_or_else(|| {
            ApiError::unavailable(format!(
                "no service port {number} found for service {:?}",
                id.name
            ))
        })?;
    }
    let endpoints = get(state, "endpoints", namespace, &id.name).await?;
    let subsets = endpoints
        .get("subsets")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if subsets.is_empty() {
        return Err(ApiError::unavailable(format!(
            "no endpoints available for service {:?}",
            id.name
        )));
    }
    let start = rand::random_range(0..subsets.len());
    for i in 0..subsets.len() {
        let subset = &subsets[(start + i) % subsets.len()];
        let addresses = subset
            .get("addresses")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if addresses.is_empty() {
            continue;
        }
        let ports = subset
            .get("ports")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for port in ports.iter().filter(|p| str_at(p, "name") == port_name) {
            let first = rand::random_range(0..addresses.len());
            for j in 0..addresses.len() {
                let addr = &addresses[(first + j) % addresses.len()];
                if let Err(why) = check_address(state, namespace, addr).await {
                    tracing::debug!(service = %id.name, %why, "endpoint address skipped");
                    continue;
                }
                let number = port.get("port").and_then(Value::as_i64).unwrap_or(0);
                return Ok(Location {
                    scheme: id.scheme,
                    host: str_at(addr, "ip").to_string(),
                    port: number.to_string(),
                });
            }
        }
    }
    // Upstream names the whole id here (`web:http`), not just the service.
    Err(ApiError::unavailable(format!(
        "no endpoints available for service {raw_id:?}"
    )))
}

/// The name of the service port numbered `number` (empty for an unnamed port).
fn service_port_name(svc: &Value, number: i64) -> Option<String> {
    svc.pointer("/spec/ports")
        .and_then(Value::as_array)?
        .iter()
        .find(|p| p.get("port").and_then(Value::as_i64) == Some(number))
        .map(|p| str_at(p, "name").to_string())
}

/// Upstream's `isValidAddress`: the address must point at a pod of this namespace that
/// has the address as one of its pod IPs. The error says why not (logged only).
async fn check_address(state: &AppState, namespace: &str, addr: &Value) -> Result<(), String> {
    let Some(target) = addr.get("targetRef").filter(|t| t.is_object()) else {
        return Err("address has no target ref".into());
    };
    if str_at(target, "namespace") != namespace {
        return Err("address namespace doesn't match the service's".into());
    }
    let pod = get(state, "pods", namespace, str_at(target, "name"))
        .await
        .map_err(|e| e.message)?;
    let ip = str_at(addr, "ip");
    if pod_ips(&pod).contains(&ip) {
        Ok(())
    } else {
        Err(format!("pod ip(s) don't match endpoint ip {ip}"))
    }
}

async fn get(state: &AppState, plural: &str, namespace: &str, name: &str) -> ApiResult<Value> {
    let info = r8s_api::catalog::find("", "v1", plural)
        .ok_or_else(|| ApiError::internal(format!("{plural} are not served")))?;
    state.registry.get(info, Some(namespace), name).await
}

fn str_at<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn id(s: &str) -> ProxyId {
        ProxyId::parse(s).unwrap()
    }

    #[test]
    fn splits_scheme_name_port() {
        assert_eq!(
            id("web"),
            ProxyId {
                scheme: Scheme::Http,
                name: "web".into(),
                port: String::new()
            }
        );
        assert_eq!(
            (id("web:8080").name.as_str(), id("web:8080").port.as_str()),
            ("web", "8080")
        );
        let i = id("https:web:443");
        assert_eq!(
            (i.scheme, i.name.as_str(), i.port.as_str()),
            (Scheme::Https, "web", "443")
        );
        let i = id("http:web:http");
        assert_eq!((i.scheme, i.port.as_str()), (Scheme::Http, "http"));
        // An empty port is no port; an empty scheme is http.
        assert_eq!(id("web:").port, "");
        assert_eq!(id(":web:80").scheme, Scheme::Http);
        for bad in ["", ":80", "ftp:web:80", "a:b:c:d", "https::80"] {
            assert_eq!(ProxyId::parse(bad), None, "{bad}");
        }
    }

    fn pod(ip: &str, ports: Value) -> Value {
        json!({
            "spec": {"containers": [
                {"name": "side"},
                {"name": "app", "ports": ports},
                {"name": "other", "ports": [{"containerPort": 9999}]},
            ]},
            "status": {"podIP": ip},
        })
    }

    #[test]
    fn pod_port_from_id_then_first_container_port_then_scheme_default() {
        let p = pod(
            "10.42.0.7",
            json!([{"containerPort": 8080}, {"containerPort": 81}]),
        );
        let loc = pod_location_with(&p, &id("web:9000"), false).unwrap();
        assert_eq!(loc.authority(), "10.42.0.7:9000");
        let loc = pod_location_with(&p, &id("web"), false).unwrap();
        assert_eq!(
            (loc.authority(), loc.dial_port()),
            ("10.42.0.7:8080".into(), Some(8080))
        );
        let bare = pod("10.42.0.7", json!([]));
        let loc = pod_location_with(&bare, &id("web"), false).unwrap();
        assert_eq!(
            (loc.authority(), loc.dial_port()),
            ("10.42.0.7:9999".into(), Some(9999))
        );
        let none =
            json!({"spec": {"containers": [{"name": "a"}]}, "status": {"podIP": "10.1.2.3"}});
        let loc = pod_location_with(&none, &id("web"), false).unwrap();
        assert_eq!(
            (loc.authority(), loc.dial_port()),
            ("10.1.2.3".into(), Some(80))
        );
        let loc = pod_location_with(&none, &id("https:web:"), false).unwrap();
        assert_eq!((loc.scheme, loc.dial_port()), (Scheme::Https, Some(443)));
        // A port that is no number cannot be dialled.
        let loc = pod_location_with(&none, &id("web:http"), false).unwrap();
        assert_eq!(loc.dial_port(), None);
    }

    #[test]
    fn pod_ip_must_be_global_unicast() {
        let with_ip = |ip: &str| json!({"spec": {}, "status": {"podIP": ip}});
        for bad in [
            "",
            "junk",
            "127.0.0.1",
            "0.0.0.0",
            "169.254.1.1",
            "224.0.0.1",
            "::1",
            "fe80::1",
        ] {
            let e = pod_location_with(&with_ip(bad), &id("p:80"), false).unwrap_err();
            assert_eq!(
                (e.code.as_u16(), e.message.as_str()),
                (400, "address not allowed"),
                "{bad}"
            );
        }
        let loc = pod_location_with(&with_ip("fd00::5"), &id("p:80"), false).unwrap();
        assert_eq!(loc.authority(), "[fd00::5]:80");
        // podIPs wins over podIP.
        let dual = json!({"status": {"podIP": "127.0.0.1", "podIPs": [{"ip": "10.0.0.9"}]}});
        assert_eq!(
            pod_location_with(&dual, &id("p:1"), false).unwrap().host,
            "10.0.0.9"
        );
        // Loopback only when allowed (tests), never unspecified addresses.
        assert!(pod_location_with(&with_ip("127.0.0.1"), &id("p:80"), true).is_ok());
        assert!(pod_location_with(&with_ip("0.0.0.0"), &id("p:80"), true).is_err());
    }

    #[test]
    fn global_unicast_matches_go() {
        let g = |s: &str| is_global_unicast(s.parse().unwrap());
        assert!(g("10.0.0.1") && g("192.168.1.1") && g("8.8.8.8") && g("2001:db8::1"));
        assert!(!g("255.255.255.255") && !g("::ffff:127.0.0.1") && !g("ff02::1") && !g("::"));
    }

    #[test]
    fn service_port_by_number() {
        let svc = json!({"spec": {"ports": [
            {"name": "http", "port": 80},
            {"port": 81},
        ]}});
        assert_eq!(service_port_name(&svc, 80).as_deref(), Some("http"));
        assert_eq!(service_port_name(&svc, 81).as_deref(), Some(""));
        assert_eq!(service_port_name(&svc, 82), None);
    }

    #[test]
    fn rbac_sees_the_whole_id_as_the_name() {
        // As upstream's RequestInfo: the name segment is kept whole (`web:8080`).
        let user = crate::auth::UserInfo::default();
        let a = crate::authz::request_attributes(
            &user,
            &axum::http::Method::GET,
            "/api/v1/namespaces/default/pods/web:8080/proxy/a/b",
            Some("q=1"),
        );
        assert_eq!(
            (
                a.verb.as_str(),
                a.resource.as_str(),
                a.subresource.as_str(),
                a.name.as_str()
            ),
            ("get", "pods", "proxy", "web:8080")
        );
        let a = crate::authz::request_attributes(
            &user,
            &axum::http::Method::POST,
            "/api/v1/namespaces/default/services/https:web:443/proxy/",
            None,
        );
        assert_eq!(
            (a.verb.as_str(), a.subresource.as_str(), a.name.as_str()),
            ("create", "proxy", "https:web:443")
        );
    }
}
