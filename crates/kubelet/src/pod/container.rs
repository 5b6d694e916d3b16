//! The CreateContainer request for one container of a pod: command and args with `$(VAR)`
//! expansion, environment, volume mounts (plus /etc/hosts and the termination-message
//! file), labels, resources (CPU shares/quota, memory limit, OOM score by QoS class) and
//! the security context.

use super::env::expand;
use super::refs::RefError;
use super::runtime::{ANNOTATION_IMAGE, ANNOTATION_KIND, LABEL_CONTAINER_NAME};
use super::sandbox::{Qos, container_seccomp, namespace_options, pod_labels, qos};
use super::volumes::PodDirs;
use crate::cri::api;
use k8s_openapi::api::core::v1::{Container, Pod};
use r8s_api::strategy::quantity::parse_quantity;
use std::collections::HashMap;
use std::path::PathBuf;

/// Annotation with the host path of the termination-message file.
pub const ANNOTATION_TERMINATION_FILE: &str = "io.r8s.container.terminationMessageFile";
pub const ANNOTATION_RESTART_COUNT: &str = "io.kubernetes.container.restartCount";

/// Whether a container is an init, an app or an ephemeral (debug) container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Init,
    App,
    Ephemeral,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Init => "init",
            Kind::App => "app",
            Kind::Ephemeral => "ephemeral",
        }
    }

    /// From the kind annotation of a runtime container (unknown: app).
    pub fn from_annotation(s: Option<&str>) -> Kind {
        match s {
            Some("init") => Kind::Init,
            Some("ephemeral") => Kind::Ephemeral,
            _ => Kind::App,
        }
    }

    /// The pod spec list holding containers of this kind (event field paths).
    pub fn spec_field(self) -> &'static str {
        match self {
            Kind::Init => "spec.initContainers",
            Kind::App => "spec.containers",
            Kind::Ephemeral => "spec.ephemeralContainers",
        }
    }
}

/// An ephemeral container as the [`Container`] the rest of the kubelet handles (the same
/// fields minus `targetContainerName`).
pub fn ephemeral_as_container(
    e: &k8s_openapi::api::core::v1::EphemeralContainer,
) -> Option<Container> {
    serde_json::to_value(e)
        .and_then(serde_json::from_value)
        .ok()
}

/// Everything needed to build the request.
pub struct Plan<'a> {
    pub pod: &'a Pod,
    pub container: &'a Container,
    pub kind: Kind,
    pub attempt: u32,
    /// The image reference resolved by the runtime.
    pub image_ref: &'a str,
    /// Image user (uid, name) from ImageStatus, for runAsNonRoot checks.
    pub image_uid: Option<i64>,
    pub image_user: &'a str,
    pub env: &'a [(String, String)],
    pub volumes: &'a HashMap<String, PathBuf>,
    pub dirs: &'a PodDirs,
    /// Node memory capacity in bytes (for the Burstable OOM score).
    pub node_memory: i64,
    /// For an ephemeral container with a target: the target's runtime ID, whose process
    /// namespace it joins.
    pub pid_target: Option<&'a str>,
}

const MIN_SHARES: i64 = 2;
const MAX_SHARES: i64 = 262_144;
const QUOTA_PERIOD: i64 = 100_000;
const MIN_QUOTA: i64 = 1_000;

fn quantity(c: &Container, limits: bool, name: &str) -> Option<i128> {
    let r = c.resources.as_ref()?;
    let m = if limits {
        r.limits.as_ref()?
    } else {
        r.requests.as_ref()?
    };
    parse_quantity(&m.get(name)?.0).ok()
}

/// Upstream's OOM score per QoS class, clamped at 0: lowering the score below the
/// daemon's is not allowed on these hosts (and containerd restricts it anyway).
pub fn oom_score_adj(pod_qos: Qos, memory_request: i64, node_memory: i64) -> i64 {
    match pod_qos {
        Qos::Guaranteed => 0,
        Qos::BestEffort => 1000,
        Qos::Burstable => {
            let cap = node_memory.max(1);
            let adj = 1000 - (1000 * memory_request.max(0)) / cap;
            adj.clamp(2, 999)
        }
    }
}

/// CPU and memory settings from the container's requests and limits.
pub fn resources(pod: &Pod, c: &Container, node_memory: i64) -> api::LinuxContainerResources {
    let milli_cpu_req = quantity(c, false, "cpu").or_else(|| quantity(c, true, "cpu"));
    let shares = match milli_cpu_req {
        Some(m) if m > 0 => ((m as i64) * 1024 / 1000).clamp(MIN_SHARES, MAX_SHARES),
        _ => MIN_SHARES,
    };
    let (period, quota) = match quantity(c, true, "cpu") {
        Some(m) if m > 0 => (
            QUOTA_PERIOD,
            ((m as i64) * QUOTA_PERIOD / 1000).max(MIN_QUOTA),
        ),
        _ => (0, 0),
    };
    // Memory quantities are milli-units; bytes are a thousandth of that.
    let memory_limit = quantity(c, true, "memory")
        .map(|m| (m / 1000) as i64)
        .unwrap_or(0);
    let memory_request = quantity(c, false, "memory")
        .map(|m| (m / 1000) as i64)
        .unwrap_or(0);
    api::LinuxContainerResources {
        cpu_period: period,
        cpu_quota: quota,
        cpu_shares: shares,
        memory_limit_in_bytes: memory_limit,
        oom_score_adj: oom_score_adj(qos(pod), memory_request, node_memory),
        ..Default::default()
    }
}

fn security(plan: &Plan) -> Result<api::LinuxContainerSecurityContext, RefError> {
    let pod = plan.pod;
    let psc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let sc = plan.container.security_context.as_ref();
    let run_as_user = sc
        .and_then(|s| s.run_as_user)
        .or(psc.and_then(|p| p.run_as_user));
    let run_as_group = sc
        .and_then(|s| s.run_as_group)
        .or(psc.and_then(|p| p.run_as_group));
    let non_root = sc
        .and_then(|s| s.run_as_non_root)
        .or(psc.and_then(|p| p.run_as_non_root))
        .unwrap_or(false);
    if non_root {
        match run_as_user {
            Some(0) => {
                return Err(RefError::Missing(
                    "container's runAsUser breaks non-root policy".into(),
                ));
            }
            Some(_) => {}
            None => {
                if plan.image_uid.is_none() && !plan.image_user.is_empty() {
                    return Err(RefError::Missing(format!(
                        "container has runAsNonRoot and image has non-numeric user ({}), cannot verify user is non-root",
                        plan.image_user
                    )));
                }
                if plan.image_uid.unwrap_or(0) == 0 {
                    return Err(RefError::Missing(
                        "container has runAsNonRoot and image will run as root".into(),
                    ));
                }
            }
        }
    }
    let mut supplemental: Vec<i64> = psc
        .and_then(|p| p.supplemental_groups.clone())
        .unwrap_or_default();
    if let Some(fs) = psc.and_then(|p| p.fs_group) {
        supplemental.push(fs);
    }
    let caps = sc.and_then(|s| s.capabilities.as_ref());
    let strip = |v: Option<&Vec<String>>| -> Vec<String> {
        v.map(|v| {
            v.iter()
                .map(|c| c.trim_start_matches("CAP_").to_string())
                .collect()
        })
        .unwrap_or_default()
    };
    Ok(api::LinuxContainerSecurityContext {
        capabilities: caps.map(|c| api::Capability {
            add_capabilities: strip(c.add.as_ref()),
            drop_capabilities: strip(c.drop.as_ref()),
            add_ambient_capabilities: Vec::new(),
        }),
        privileged: sc.and_then(|s| s.privileged).unwrap_or(false),
        namespace_options: Some(match plan.pid_target {
            Some(target) => api::NamespaceOption {
                pid: api::NamespaceMode::Target as i32,
                target_id: target.to_string(),
                ..namespace_options(pod.spec.as_ref())
            },
            None => namespace_options(pod.spec.as_ref()),
        }),
        run_as_user: run_as_user.map(|value| api::Int64Value { value }),
        run_as_group: run_as_group.map(|value| api::Int64Value { value }),
        readonly_rootfs: sc
            .and_then(|s| s.read_only_root_filesystem)
            .unwrap_or(false),
        supplemental_groups: supplemental,
        no_new_privs: sc.and_then(|s| s.allow_privilege_escalation) == Some(false),
        seccomp: container_seccomp(pod, plan.container),
        ..Default::default()
    })
}

fn propagation(p: Option<&str>) -> i32 {
    match p {
        Some("HostToContainer") => api::MountPropagation::PropagationHostToContainer as i32,
        Some("Bidirectional") => api::MountPropagation::PropagationBidirectional as i32,
        _ => api::MountPropagation::PropagationPrivate as i32,
    }
}

fn mounts(plan: &Plan, vars: &HashMap<String, String>) -> Result<Vec<api::Mount>, RefError> {
    let c = plan.container;
    let mut out = Vec::new();
    for m in c.volume_mounts.iter().flatten() {
        let base = plan.volumes.get(&m.name).ok_or_else(|| {
            RefError::Invalid(format!("volumeMount {:?}: no volume of that name", m.name))
        })?;
        let sub = match (&m.sub_path, &m.sub_path_expr) {
            (Some(s), _) if !s.is_empty() => s.clone(),
            (_, Some(e)) if !e.is_empty() => expand(e, vars),
            _ => String::new(),
        };
        let host = if sub.is_empty() {
            base.clone()
        } else {
            if sub.starts_with('/') || sub.split('/').any(|p| p == "..") {
                return Err(RefError::Invalid(format!(
                    "subPath {sub:?} must be a relative path without '..'"
                )));
            }
            let p = base.join(&sub);
            if !p.exists() {
                std::fs::create_dir_all(&p)
                    .map_err(|e| RefError::Api(format!("creating subPath {}: {e}", p.display())))?;
            }
            p
        };
        out.push(api::Mount {
            container_path: m.mount_path.clone(),
            host_path: host.display().to_string(),
            readonly: m.read_only.unwrap_or(false),
            propagation: propagation(m.mount_propagation.as_deref()),
            ..Default::default()
        });
    }
    let host_network = plan
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false);
    if !host_network && !out.iter().any(|m| m.container_path == "/etc/hosts") {
        out.push(api::Mount {
            container_path: "/etc/hosts".into(),
            host_path: plan.dirs.etc_hosts().display().to_string(),
            ..Default::default()
        });
    }
    Ok(out)
}

/// The termination-message file for this attempt (created empty, writable by anyone).
fn termination_file(plan: &Plan) -> Result<PathBuf, RefError> {
    use std::os::unix::fs::PermissionsExt;
    let dir = plan.dirs.container(&plan.container.name);
    std::fs::create_dir_all(&dir)
        .map_err(|e| RefError::Api(format!("creating {}: {e}", dir.display())))?;
    let p = dir.join(format!("termination-{}", plan.attempt));
    std::fs::write(&p, b"").map_err(|e| RefError::Api(format!("creating {}: {e}", p.display())))?;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o666))
        .map_err(|e| RefError::Api(e.to_string()))?;
    Ok(p)
}

/// Builds the CreateContainer config.
pub fn container_config(plan: &Plan) -> Result<api::ContainerConfig, RefError> {
    let c = plan.container;
    let vars: HashMap<String, String> = plan.env.iter().cloned().collect();
    let command: Vec<String> = c
        .command
        .iter()
        .flatten()
        .map(|s| expand(s, &vars))
        .collect();
    let args: Vec<String> = c.args.iter().flatten().map(|s| expand(s, &vars)).collect();
    let mut mounts = mounts(plan, &vars)?;
    let term_path = c
        .termination_message_path
        .clone()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "/dev/termination-log".into());
    let term_file = termination_file(plan)?;
    if !mounts.iter().any(|m| m.container_path == term_path) {
        mounts.push(api::Mount {
            container_path: term_path,
            host_path: term_file.display().to_string(),
            ..Default::default()
        });
    }
    let mut labels = pod_labels(plan.pod);
    // Pod labels are on the sandbox; containers carry only the identifying ones.
    labels.retain(|k, _| k.starts_with("io.kubernetes.") || k.starts_with("io.r8s."));
    labels.insert(LABEL_CONTAINER_NAME.into(), c.name.clone());
    let mut annotations = HashMap::new();
    annotations.insert(
        ANNOTATION_IMAGE.to_string(),
        c.image.clone().unwrap_or_default(),
    );
    annotations.insert(ANNOTATION_KIND.to_string(), plan.kind.as_str().to_string());
    annotations.insert(
        ANNOTATION_TERMINATION_FILE.to_string(),
        term_file.display().to_string(),
    );
    annotations.insert(
        ANNOTATION_RESTART_COUNT.to_string(),
        plan.attempt.to_string(),
    );
    Ok(api::ContainerConfig {
        metadata: Some(api::ContainerMetadata {
            name: c.name.clone(),
            attempt: plan.attempt,
        }),
        image: Some(api::ImageSpec {
            image: plan.image_ref.to_string(),
            user_specified_image: c.image.clone().unwrap_or_default(),
            ..Default::default()
        }),
        command,
        args,
        working_dir: c.working_dir.clone().unwrap_or_default(),
        envs: plan
            .env
            .iter()
            .map(|(k, v)| api::KeyValue {
                key: k.clone(),
                value: v.clone(),
            })
            .collect(),
        mounts,
        labels,
        annotations,
        log_path: format!("{}/{}.log", c.name, plan.attempt),
        stdin: c.stdin.unwrap_or(false),
        stdin_once: c.stdin_once.unwrap_or(false),
        tty: c.tty.unwrap_or(false),
        linux: Some(api::LinuxContainerConfig {
            resources: Some(resources(plan.pod, c, plan.node_memory)),
            security_context: Some(security(plan)?),
        }),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn resources_and_oom() {
        let p = pod(
            json!({"metadata": {"uid": "u"}, "spec": {"containers": [{"name": "a", "resources": {
            "limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"cpu": "250m", "memory": "64Mi"}}}]}}),
        );
        let c = &p.spec.as_ref().unwrap().containers[0];
        let r = resources(&p, c, 1 << 30);
        assert_eq!(r.cpu_shares, 256);
        assert_eq!(r.cpu_quota, 50_000);
        assert_eq!(r.cpu_period, 100_000);
        assert_eq!(r.memory_limit_in_bytes, 128 << 20);
        assert_eq!(r.oom_score_adj, 1000 - 1000 * (64 << 20) / (1 << 30));
        assert_eq!(oom_score_adj(Qos::Guaranteed, 0, 1), 0);
        assert_eq!(oom_score_adj(Qos::BestEffort, 0, 1), 1000);
        assert_eq!(oom_score_adj(Qos::Burstable, 1 << 40, 1 << 30), 2);
        let be = pod(json!({"metadata": {"uid": "u"}, "spec": {"containers": [{"name": "a"}]}}));
        let r = resources(&be, &be.spec.as_ref().unwrap().containers[0], 1 << 30);
        assert_eq!(
            (r.cpu_shares, r.cpu_quota, r.memory_limit_in_bytes),
            (2, 0, 0)
        );
    }

    #[test]
    fn config_expands_and_mounts() {
        let d = tempfile::tempdir().unwrap();
        let dirs = PodDirs {
            root: d.path().to_path_buf(),
        };
        let p = pod(
            json!({"metadata": {"name": "p", "namespace": "ns", "uid": "u", "labels": {"app": "x"}}, "spec": {"containers": [{
            "name": "a", "image": "busybox:1.36", "command": ["sh", "-c"], "args": ["echo $(GREETING) $$(HOME)"],
            "volumeMounts": [{"name": "data", "mountPath": "/data", "subPath": "sub"}]}]}}),
        );
        let c = &p.spec.as_ref().unwrap().containers[0];
        let vols = HashMap::from([("data".to_string(), d.path().join("vol"))]);
        let env = vec![("GREETING".to_string(), "hello".to_string())];
        let plan = Plan {
            pod: &p,
            container: c,
            kind: Kind::App,
            attempt: 3,
            image_ref: "sha256:abc",
            image_uid: None,
            image_user: "",
            env: &env,
            volumes: &vols,
            dirs: &dirs,
            node_memory: 1 << 30,
            pid_target: None,
        };
        let cfg = container_config(&plan).unwrap();
        assert_eq!(cfg.args, ["echo hello $(HOME)"]);
        assert_eq!(cfg.log_path, "a/3.log");
        assert_eq!(cfg.labels[LABEL_CONTAINER_NAME], "a");
        assert!(!cfg.labels.contains_key("app"));
        let data = cfg
            .mounts
            .iter()
            .find(|m| m.container_path == "/data")
            .unwrap();
        assert!(data.host_path.ends_with("vol/sub"));
        assert!(d.path().join("vol/sub").is_dir());
        assert!(cfg.mounts.iter().any(|m| m.container_path == "/etc/hosts"));
        assert!(
            cfg.mounts
                .iter()
                .any(|m| m.container_path == "/dev/termination-log")
        );
        let nonroot = pod(
            json!({"metadata": {"uid": "u"}, "spec": {"securityContext": {"runAsNonRoot": true}, "containers": [{"name": "a"}]}}),
        );
        let plan = Plan {
            pod: &nonroot,
            container: &nonroot.spec.as_ref().unwrap().containers[0],
            ..plan
        };
        assert!(
            matches!(container_config(&plan), Err(RefError::Missing(m)) if m.contains("will run as root"))
        );
    }
}
