//! ClusterIP and NodePort allocation for Services.
//!
//! Each allocation is a key in the store (`/registry/ranges/serviceips/<ip>`,
//! `/registry/ranges/servicenodeports/<port>`) created with create-if-absent, so two API
//! servers sharing one store can never hand out the same address.

use crate::error::{ApiError, ApiResult};
use r8s_api::catalog::ResourceInfo;
use r8s_api::strategy::FieldError;
use r8s_store::DynStore;
use serde_json::{Value, json};
use std::net::Ipv4Addr;

const IP_PREFIX: &str = "/registry/ranges/serviceips/";
const PORT_PREFIX: &str = "/registry/ranges/servicenodeports/";

/// The default NodePort range, as upstream.
pub const NODE_PORT_RANGE: std::ops::RangeInclusive<u16> = 30000..=32767;

/// One reservation made during a write, released if the write fails.
#[derive(Debug, Clone)]
pub struct Reservation(String);

/// Service address allocators over the store.
#[derive(Clone)]
pub struct Allocators {
    store: DynStore,
    network: u32,
    size: u32,
}

impl Allocators {
    /// Allocators handing out ClusterIPs from `service_cidr` (e.g. `10.43.0.0/16`).
    pub fn new(store: DynStore, service_cidr: &str) -> Result<Self, String> {
        let (net, bits) = parse_cidr(service_cidr)?;
        let size = if bits >= 32 { 1 } else { 1u32 << (32 - bits) };
        Ok(Allocators {
            store,
            network: u32::from(net),
            size,
        })
    }

    /// The first usable IP of the range: the `kubernetes` Service's address.
    pub fn first_ip(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.network + 1)
    }

    /// Whether `ip` lies inside the service CIDR.
    fn contains(&self, ip: Ipv4Addr) -> bool {
        let v = u32::from(ip);
        v > self.network && v < self.network.saturating_add(self.size.saturating_sub(1))
    }

    async fn reserve(&self, key: String, owner: &str) -> Result<bool, r8s_store::Error> {
        match self
            .store
            .create(&key, owner.as_bytes().to_vec(), None)
            .await
        {
            Ok(_) => Ok(true),
            Err(r8s_store::Error::AlreadyExists(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Release reservations made by a write that then failed.
    pub async fn release_all(&self, reservations: Vec<Reservation>) {
        for r in reservations {
            let _ = self.store.delete(&r.0, None).await;
        }
    }

    /// Allocate addresses for a new object (Services only).
    pub async fn on_create(
        &self,
        info: &ResourceInfo,
        obj: &mut Value,
        dry_run: bool,
    ) -> ApiResult<Vec<Reservation>> {
        if !is_service(info) {
            return Ok(Vec::new());
        }
        let mut made = Vec::new();
        let result = self.allocate(obj, None, dry_run, &mut made).await;
        if result.is_err() {
            self.release_all(std::mem::take(&mut made)).await;
        }
        result.map(|_| made)
    }

    /// Allocate what an updated Service newly needs and release what it dropped.
    pub async fn on_update(
        &self,
        info: &ResourceInfo,
        obj: &mut Value,
        current: &Value,
        dry_run: bool,
    ) -> ApiResult<Vec<Reservation>> {
        if !is_service(info) {
            return Ok(Vec::new());
        }
        let mut made = Vec::new();
        let result = self.allocate(obj, Some(current), dry_run, &mut made).await;
        if result.is_err() {
            self.release_all(std::mem::take(&mut made)).await;
            return result.map(|_| Vec::new());
        }
        if !dry_run {
            let keep = node_ports(obj);
            for port in node_ports(current) {
                if !keep.contains(&port) {
                    let _ = self
                        .store
                        .delete(&format!("{PORT_PREFIX}{port}"), None)
                        .await;
                }
            }
        }
        Ok(made)
    }

    /// Release a deleted Service's addresses.
    pub async fn on_delete(&self, info: &ResourceInfo, obj: &Value) {
        if !is_service(info) {
            return;
        }
        if let Some(ip) = cluster_ip(obj) {
            let _ = self.store.delete(&format!("{IP_PREFIX}{ip}"), None).await;
        }
        for port in node_ports(obj) {
            let _ = self
                .store
                .delete(&format!("{PORT_PREFIX}{port}"), None)
                .await;
        }
    }

    async fn allocate(
        &self,
        obj: &mut Value,
        current: Option<&Value>,
        dry_run: bool,
        made: &mut Vec<Reservation>,
    ) -> ApiResult<()> {
        let owner = format!("{}/{}", crate::meta::namespace(obj), crate::meta::name(obj));
        let svc_type = obj
            .pointer("/spec/type")
            .and_then(Value::as_str)
            .unwrap_or("ClusterIP")
            .to_string();
        if svc_type == "ExternalName" {
            return Ok(());
        }
        // ClusterIP: kept on update; allocated on create (or when first needed).
        let requested = obj
            .pointer("/spec/clusterIP")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let current_ip = current.and_then(cluster_ip);
        if requested.is_empty() && current_ip.is_none() {
            let ip = self.next_free_ip(&owner, dry_run, made).await?;
            set_cluster_ip(obj, &ip.to_string());
        } else if requested.is_empty() {
            if let Some(ip) = current_ip {
                set_cluster_ip(obj, &ip);
            }
        } else if requested != "None" && current_ip.as_deref() != Some(requested.as_str()) {
            let ip: Ipv4Addr = requested
                .parse()
                .map_err(|_| invalid_ip(&requested, "must be a valid IP address"))?;
            if !self.contains(ip) {
                return Err(invalid_ip(
                    &requested,
                    "provided IP is not in the valid range. The range of valid IPs is the service CIDR",
                ));
            }
            if !dry_run {
                let key = format!("{IP_PREFIX}{ip}");
                if !self.reserve(key.clone(), &owner).await? {
                    return Err(invalid_ip(&requested, "provided IP is already allocated"));
                }
                made.push(Reservation(key));
            }
            set_cluster_ip(obj, &requested);
        } else if requested == "None"
            && let Some(m) = obj.get_mut("spec").and_then(Value::as_object_mut)
        {
            m.insert("clusterIPs".into(), json!(["None"]));
        }
        if svc_type == "NodePort" || svc_type == "LoadBalancer" {
            let existing = current.map(node_ports).unwrap_or_default();
            let Some(ports) = obj.pointer_mut("/spec/ports").and_then(Value::as_array_mut) else {
                return Ok(());
            };
            for (i, port) in ports.iter_mut().enumerate() {
                let wanted = port.get("nodePort").and_then(Value::as_u64).unwrap_or(0);
                if wanted == 0 {
                    let p = self.next_free_port(&owner, dry_run, made).await?;
                    port["nodePort"] = json!(p);
                } else if !existing.contains(&(wanted as u16)) {
                    let field = format!("spec.ports[{i}].nodePort");
                    if !NODE_PORT_RANGE.contains(&(wanted as u16)) || wanted > u16::MAX as u64 {
                        return Err(invalid_port(
                            &field,
                            wanted,
                            "provided port is not in the valid range. The range of valid ports is 30000-32767",
                        ));
                    }
                    if !dry_run {
                        let key = format!("{PORT_PREFIX}{wanted}");
                        if !self.reserve(key.clone(), &owner).await? {
                            return Err(invalid_port(
                                &field,
                                wanted,
                                "provided port is already allocated",
                            ));
                        }
                        made.push(Reservation(key));
                    }
                }
            }
        } else if let Some(ports) = obj.pointer_mut("/spec/ports").and_then(Value::as_array_mut) {
            for port in ports {
                if let Some(m) = port.as_object_mut() {
                    m.remove("nodePort");
                }
            }
        }
        self.allocate_health_check_port(obj, current, &owner, dry_run, made)
            .await
    }

    /// `spec.healthCheckNodePort` of a LoadBalancer Service with `externalTrafficPolicy:
    /// Local` (where node load balancers ask whether the node has endpoints), from the
    /// NodePort range like upstream; kept across updates (the strategy carries it over).
    async fn allocate_health_check_port(
        &self,
        obj: &mut Value,
        current: Option<&Value>,
        owner: &str,
        dry_run: bool,
        made: &mut Vec<Reservation>,
    ) -> ApiResult<()> {
        let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
            return Ok(());
        };
        let wants = spec.get("type").and_then(Value::as_str) == Some("LoadBalancer")
            && spec.get("externalTrafficPolicy").and_then(Value::as_str) == Some("Local");
        if !wants {
            return Ok(());
        }
        let existing = current
            .and_then(|c| c.pointer("/spec/healthCheckNodePort"))
            .and_then(Value::as_u64);
        let wanted = spec
            .get("healthCheckNodePort")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        if wanted == 0 {
            let p = self.next_free_port(owner, dry_run, made).await?;
            spec.insert("healthCheckNodePort".into(), json!(p));
        } else if existing != Some(wanted) {
            let field = "spec.healthCheckNodePort";
            if wanted > u16::MAX as u64 || !NODE_PORT_RANGE.contains(&(wanted as u16)) {
                return Err(invalid_port(
                    field,
                    wanted,
                    "provided port is not in the valid range. The range of valid ports is 30000-32767",
                ));
            }
            if !dry_run {
                let key = format!("{PORT_PREFIX}{wanted}");
                if !self.reserve(key.clone(), owner).await? {
                    return Err(invalid_port(
                        field,
                        wanted,
                        "provided port is already allocated",
                    ));
                }
                made.push(Reservation(key));
            }
        }
        Ok(())
    }

    async fn next_free_ip(
        &self,
        owner: &str,
        dry_run: bool,
        made: &mut Vec<Reservation>,
    ) -> ApiResult<Ipv4Addr> {
        // Start at a random offset so concurrent creates rarely collide; skip .1 (kubernetes).
        let usable = self.size.saturating_sub(3).max(1);
        let start = rand::random::<u32>() % usable;
        for i in 0..usable {
            let ip = Ipv4Addr::from(self.network + 2 + (start + i) % usable);
            if dry_run {
                return Ok(ip);
            }
            let key = format!("{IP_PREFIX}{ip}");
            if self.reserve(key.clone(), owner).await? {
                made.push(Reservation(key));
                return Ok(ip);
            }
        }
        Err(ApiError::internal(
            "failed to allocate a serviceIP: range is full",
        ))
    }

    async fn next_free_port(
        &self,
        owner: &str,
        dry_run: bool,
        made: &mut Vec<Reservation>,
    ) -> ApiResult<u16> {
        let span = (NODE_PORT_RANGE.end() - NODE_PORT_RANGE.start()) as u32 + 1;
        let start = rand::random::<u32>() % span;
        for i in 0..span {
            let port = NODE_PORT_RANGE.start() + ((start + i) % span) as u16;
            if dry_run {
                return Ok(port);
            }
            let key = format!("{PORT_PREFIX}{port}");
            if self.reserve(key.clone(), owner).await? {
                made.push(Reservation(key));
                return Ok(port);
            }
        }
        Err(ApiError::internal(
            "failed to allocate a nodePort: range is full",
        ))
    }

    /// Drop the reservation of the `kubernetes` Service's address (bootstrap, when that
    /// Service does not exist).
    pub async fn release_first_ip(&self) {
        let _ = self
            .store
            .delete(&format!("{IP_PREFIX}{}", self.first_ip()), None)
            .await;
    }
}

fn is_service(info: &ResourceInfo) -> bool {
    info.group.is_empty() && info.plural == "services"
}

fn cluster_ip(obj: &Value) -> Option<String> {
    obj.pointer("/spec/clusterIP")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty() && *s != "None")
        .map(str::to_string)
}

fn set_cluster_ip(obj: &mut Value, ip: &str) {
    if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
        spec.insert("clusterIP".into(), json!(ip));
        spec.insert("clusterIPs".into(), json!([ip]));
    }
}

/// The node ports a Service holds: its ports' `nodePort`s and `healthCheckNodePort`.
fn node_ports(obj: &Value) -> Vec<u16> {
    obj.pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("nodePort").and_then(Value::as_u64))
        .chain(
            obj.pointer("/spec/healthCheckNodePort")
                .and_then(Value::as_u64),
        )
        .filter(|p| *p > 0 && *p <= u16::MAX as u64)
        .map(|p| p as u16)
        .collect()
}

fn invalid_ip(ip: &str, why: &str) -> ApiError {
    ApiError::invalid(
        "",
        "Service",
        "",
        &[FieldError {
            reason: "FieldValueInvalid",
            field: "spec.clusterIPs".into(),
            message: format!(
                "Invalid value: []string{{\"{ip}\"}}: failed to allocate IP {ip}: {why}"
            ),
        }],
    )
}

fn invalid_port(field: &str, port: u64, why: &str) -> ApiError {
    ApiError::invalid(
        "",
        "Service",
        "",
        &[FieldError {
            reason: "FieldValueInvalid",
            field: field.to_string(),
            message: format!("Invalid value: {port}: {why}"),
        }],
    )
}

/// Parse `a.b.c.d/n`.
pub fn parse_cidr(cidr: &str) -> Result<(Ipv4Addr, u32), String> {
    let (ip, bits) = cidr
        .split_once('/')
        .ok_or_else(|| format!("invalid CIDR {cidr:?}: expected a.b.c.d/n"))?;
    let ip: Ipv4Addr = ip
        .parse()
        .map_err(|_| format!("invalid CIDR {cidr:?}: bad address"))?;
    let bits: u32 = bits
        .parse()
        .map_err(|_| format!("invalid CIDR {cidr:?}: bad prefix length"))?;
    if bits > 30 {
        return Err(format!(
            "invalid CIDR {cidr:?}: prefix must be /30 or shorter"
        ));
    }
    let mask = if bits == 0 {
        0
    } else {
        u32::MAX << (32 - bits)
    };
    Ok((Ipv4Addr::from(u32::from(ip) & mask), bits))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_parsing() {
        assert_eq!(
            parse_cidr("10.43.0.0/16").unwrap(),
            (Ipv4Addr::new(10, 43, 0, 0), 16)
        );
        assert_eq!(
            parse_cidr("10.43.7.9/16").unwrap().0,
            Ipv4Addr::new(10, 43, 0, 0)
        );
        assert!(parse_cidr("10.43.0.0").is_err());
        assert!(parse_cidr("10.43.0.0/31").is_err());
        assert!(parse_cidr("x/16").is_err());
    }
}
