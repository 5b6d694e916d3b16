//! Container environment, built like upstream: service link variables first, then
//! `envFrom` sources, then `env` entries (later ones win), with `$(VAR)` references
//! expanded against what is defined so far. A missing non-optional ConfigMap, Secret or
//! key is a `CreateContainerConfigError`.

use super::refs::{ObjectCache, RefError};
use k8s_openapi::api::core::v1::{Container, EnvVarSource, Pod, Service};
use std::collections::HashMap;

/// Values the downward API can resolve that are not in the pod object itself.
#[derive(Debug, Clone, Default)]
pub struct DownwardContext {
    pub pod_ip: String,
    pub host_ip: String,
    /// Node allocatable CPU (milli-cores) and memory (bytes): the defaults of unset limits.
    pub node_cpu_milli: i128,
    pub node_memory: i128,
}

/// Expands `$(VAR)` in `s` with `vars`; `$$` escapes `$`; unknown references stay as
/// written (upstream's `expansion.Expand`).
pub fn expand(s: &str, vars: &HashMap<String, String>) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    let mut last = 0;
    while i < b.len() {
        if b[i] == b'$' && i + 1 < b.len() {
            match b[i + 1] {
                b'$' => {
                    out.push_str(&s[last..i]);
                    out.push('$');
                    i += 2;
                    last = i;
                    continue;
                }
                b'(' => {
                    if let Some(close) = s[i + 2..].find(')') {
                        let name = &s[i + 2..i + 2 + close];
                        out.push_str(&s[last..i]);
                        match vars.get(name) {
                            Some(v) => out.push_str(v),
                            None => out.push_str(&s[i..i + 3 + close]),
                        }
                        i += 3 + close;
                        last = i;
                        continue;
                    }
                }
                _ => {}
            }
        }
        i += 1;
    }
    out.push_str(&s[last..]);
    out
}

/// The docker-link style variables of a Service (`FOO_SERVICE_HOST`, `FOO_PORT_80_TCP`…).
fn service_env(svc: &Service, out: &mut Vec<(String, String)>) {
    let Some(spec) = svc.spec.as_ref() else {
        return;
    };
    let Some(ip) = spec
        .cluster_ip
        .as_deref()
        .filter(|ip| !ip.is_empty() && *ip != "None")
    else {
        return;
    };
    let name = svc
        .metadata
        .name
        .as_deref()
        .unwrap_or_default()
        .to_uppercase()
        .replace('-', "_");
    let ports = spec.ports.as_deref().unwrap_or_default();
    let Some(first) = ports.first() else { return };
    out.push((format!("{name}_SERVICE_HOST"), ip.to_string()));
    out.push((format!("{name}_SERVICE_PORT"), first.port.to_string()));
    for p in ports {
        if let Some(pn) = p.name.as_deref().filter(|n| !n.is_empty()) {
            out.push((
                format!(
                    "{name}_SERVICE_PORT_{}",
                    pn.to_uppercase().replace('-', "_")
                ),
                p.port.to_string(),
            ));
        }
    }
    let proto = |p: &k8s_openapi::api::core::v1::ServicePort| {
        p.protocol.clone().unwrap_or_else(|| "TCP".into())
    };
    out.push((
        format!("{name}_PORT"),
        format!("{}://{ip}:{}", proto(first).to_lowercase(), first.port),
    ));
    for p in ports {
        let pr = proto(p);
        let prefix = format!("{name}_PORT_{}_{}", p.port, pr.to_uppercase());
        out.push((
            prefix.clone(),
            format!("{}://{ip}:{}", pr.to_lowercase(), p.port),
        ));
        out.push((format!("{prefix}_PROTO"), pr.to_lowercase()));
        out.push((format!("{prefix}_PORT"), p.port.to_string()));
        out.push((format!("{prefix}_ADDR"), ip.to_string()));
    }
}

/// Service variables for a pod in `namespace`: every service there (when service links
/// are on) plus the `kubernetes` service of `default`, which every pod gets.
pub fn services_env(
    namespace: &str,
    enable_links: bool,
    services: &[std::sync::Arc<Service>],
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut sorted: Vec<&Service> = services.iter().map(|s| s.as_ref()).collect();
    sorted.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    for svc in sorted {
        let ns = svc.metadata.namespace.as_deref().unwrap_or_default();
        let master = ns == "default" && svc.metadata.name.as_deref() == Some("kubernetes");
        if master || (enable_links && ns == namespace) {
            service_env(svc, &mut out);
        }
    }
    out
}

fn field_ref(pod: &Pod, ctx: &DownwardContext, path: &str) -> Result<String, RefError> {
    let m = &pod.metadata;
    let spec = pod.spec.as_ref();
    let label_like = |prefix: &str, map: Option<&std::collections::BTreeMap<String, String>>| {
        let key = path.strip_prefix(prefix)?.strip_suffix("']")?;
        Some(map.and_then(|m| m.get(key)).cloned().unwrap_or_default())
    };
    if let Some(v) = label_like("metadata.labels['", m.labels.as_ref()) {
        return Ok(v);
    }
    if let Some(v) = label_like("metadata.annotations['", m.annotations.as_ref()) {
        return Ok(v);
    }
    let v = match path {
        "metadata.name" => m.name.clone().unwrap_or_default(),
        "metadata.namespace" => m.namespace.clone().unwrap_or_default(),
        "metadata.uid" => m.uid.clone().unwrap_or_default(),
        "metadata.labels" => kv_lines(m.labels.as_ref()),
        "metadata.annotations" => kv_lines(m.annotations.as_ref()),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.hostIP" | "status.hostIPs" => ctx.host_ip.clone(),
        "status.podIP" | "status.podIPs" => ctx.pod_ip.clone(),
        other => return Err(RefError::Invalid(format!("unsupported fieldRef {other:?}"))),
    };
    Ok(v)
}

/// `key="value"` lines (the downward API format for label/annotation maps).
pub fn kv_lines(map: Option<&std::collections::BTreeMap<String, String>>) -> String {
    map.map(|m| {
        m.iter()
            .map(|(k, v)| format!("{k}={}", serde_json::Value::String(v.clone())))
            .collect::<Vec<_>>()
            .join("\n")
    })
    .unwrap_or_default()
}

/// A `resourceFieldRef` value for `container` (unset limits default to the node's
/// allocatable; results round up to the divisor, like upstream).
pub fn resource_ref(
    container: &Container,
    resource: &str,
    divisor: Option<&str>,
    ctx: &DownwardContext,
) -> Result<String, RefError> {
    use r8s_api::strategy::quantity::parse_quantity;
    let res = container.resources.as_ref();
    let get = |limits: bool, name: &str| {
        let m = if limits {
            res.and_then(|r| r.limits.as_ref())
        } else {
            res.and_then(|r| r.requests.as_ref())
        };
        m.and_then(|m| m.get(name))
            .and_then(|q| parse_quantity(&q.0).ok())
    };
    let milli = match resource {
        "limits.cpu" => get(true, "cpu").unwrap_or(ctx.node_cpu_milli),
        "requests.cpu" => get(false, "cpu").unwrap_or(0),
        "limits.memory" => get(true, "memory").unwrap_or(ctx.node_memory * 1000),
        "requests.memory" => get(false, "memory").unwrap_or(0),
        "limits.ephemeral-storage" => get(true, "ephemeral-storage").unwrap_or(0),
        "requests.ephemeral-storage" => get(false, "ephemeral-storage").unwrap_or(0),
        other => {
            return Err(RefError::Invalid(format!(
                "unsupported resourceFieldRef {other:?}"
            )));
        }
    };
    // Quantities are milli-units; the node memory default is in bytes.
    let divisor_milli = match divisor.filter(|d| !d.is_empty()) {
        Some(d) => {
            parse_quantity(d).map_err(|e| RefError::Invalid(format!("divisor {d:?}: {e}")))?
        }
        None => 1000,
    };
    if divisor_milli <= 0 {
        return Err(RefError::Invalid("divisor must be positive".into()));
    }
    let v = (milli + divisor_milli - 1) / divisor_milli;
    Ok(v.max(if milli > 0 { 1 } else { 0 }).to_string())
}

async fn source_value(
    pod: &Pod,
    container: &Container,
    src: &EnvVarSource,
    ctx: &DownwardContext,
    cache: &mut ObjectCache,
) -> Result<Option<String>, RefError> {
    if let Some(f) = &src.field_ref {
        return field_ref(pod, ctx, &f.field_path).map(Some);
    }
    if let Some(r) = &src.resource_field_ref {
        let target = match r.container_name.as_deref().filter(|n| !n.is_empty()) {
            Some(n) => pod
                .spec
                .as_ref()
                .and_then(|s| s.containers.iter().find(|c| c.name == n))
                .ok_or_else(|| {
                    RefError::Invalid(format!("resourceFieldRef: no container {n:?}"))
                })?,
            None => container,
        };
        return resource_ref(
            target,
            &r.resource,
            r.divisor.as_ref().map(|d| d.0.as_str()),
            ctx,
        )
        .map(Some);
    }
    if let Some(k) = &src.config_map_key_ref {
        return cache
            .config_map_key(&k.name, &k.key, k.optional.unwrap_or(false))
            .await;
    }
    if let Some(k) = &src.secret_key_ref {
        return cache
            .secret_key(&k.name, &k.key, k.optional.unwrap_or(false))
            .await;
    }
    Ok(None)
}

/// The container's final environment, in order.
pub async fn container_env(
    pod: &Pod,
    container: &Container,
    ctx: &DownwardContext,
    services: &[(String, String)],
    cache: &mut ObjectCache,
) -> Result<Vec<(String, String)>, RefError> {
    let mut order: Vec<String> = Vec::new();
    let mut vars: HashMap<String, String> = HashMap::new();
    let set =
        |k: String, v: String, order: &mut Vec<String>, vars: &mut HashMap<String, String>| {
            if vars.insert(k.clone(), v).is_none() {
                order.push(k);
            }
        };
    for (k, v) in services {
        set(k.clone(), v.clone(), &mut order, &mut vars);
    }
    for from in container.env_from.as_deref().unwrap_or_default() {
        let prefix = from.prefix.clone().unwrap_or_default();
        let data = if let Some(cm) = &from.config_map_ref {
            cache
                .config_map_data(&cm.name, cm.optional.unwrap_or(false))
                .await?
        } else if let Some(s) = &from.secret_ref {
            cache
                .secret_data(&s.name, s.optional.unwrap_or(false))
                .await?
        } else {
            None
        };
        for (k, v) in data.unwrap_or_default() {
            set(format!("{prefix}{k}"), v, &mut order, &mut vars);
        }
    }
    for e in container.env.as_deref().unwrap_or_default() {
        let value = match &e.value_from {
            Some(src) => match source_value(pod, container, src, ctx, cache).await? {
                Some(v) => v,
                // An optional reference that is missing leaves the variable unset.
                None => continue,
            },
            None => expand(e.value.as_deref().unwrap_or_default(), &vars),
        };
        set(e.name.clone(), value, &mut order, &mut vars);
    }
    Ok(order
        .into_iter()
        .map(|k| {
            let v = vars.get(&k).cloned().unwrap_or_default();
            (k, v)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansion_rules() {
        let vars = HashMap::from([
            ("A".to_string(), "1".to_string()),
            ("B".to_string(), "x y".to_string()),
        ]);
        assert_eq!(expand("$(A)-$(B)", &vars), "1-x y");
        assert_eq!(expand("$(MISSING)", &vars), "$(MISSING)");
        assert_eq!(expand("$$(A)", &vars), "$(A)");
        assert_eq!(expand("cost $5 $(A", &vars), "cost $5 $(A");
        assert_eq!(expand("tail$", &vars), "tail$");
    }

    #[test]
    fn service_links() {
        let svc: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "redis-master", "namespace": "default"},
            "spec": {"clusterIP": "10.43.0.5", "ports": [{"port": 6379, "protocol": "TCP"}]}
        }))
        .unwrap();
        let env = services_env("default", true, &[std::sync::Arc::new(svc)]);
        let m: HashMap<_, _> = env.into_iter().collect();
        assert_eq!(m["REDIS_MASTER_SERVICE_HOST"], "10.43.0.5");
        assert_eq!(m["REDIS_MASTER_SERVICE_PORT"], "6379");
        assert_eq!(m["REDIS_MASTER_PORT"], "tcp://10.43.0.5:6379");
        assert_eq!(m["REDIS_MASTER_PORT_6379_TCP_ADDR"], "10.43.0.5");
    }

    #[test]
    fn resource_refs_round_up() {
        let c: Container = serde_json::from_value(serde_json::json!({
            "name": "c", "resources": {"limits": {"cpu": "250m", "memory": "64Mi"}, "requests": {"cpu": "100m"}}
        }))
        .unwrap();
        let ctx = DownwardContext {
            node_cpu_milli: 2000,
            node_memory: 1 << 30,
            ..Default::default()
        };
        assert_eq!(resource_ref(&c, "limits.cpu", None, &ctx).unwrap(), "1");
        assert_eq!(
            resource_ref(&c, "limits.cpu", Some("1m"), &ctx).unwrap(),
            "250"
        );
        assert_eq!(
            resource_ref(&c, "limits.memory", None, &ctx).unwrap(),
            (64 << 20).to_string()
        );
        assert_eq!(
            resource_ref(&c, "limits.memory", Some("1Mi"), &ctx).unwrap(),
            "64"
        );
        assert_eq!(
            resource_ref(&c, "requests.memory", None, &ctx).unwrap(),
            "0"
        );
        let none: Container = serde_json::from_value(serde_json::json!({"name": "c"})).unwrap();
        assert_eq!(resource_ref(&none, "limits.cpu", None, &ctx).unwrap(), "2");
        assert_eq!(
            resource_ref(&none, "limits.memory", None, &ctx).unwrap(),
            (1i64 << 30).to_string()
        );
    }
}
