//! Pod volumes on the host, under `DATA_DIR/agent/pods/<uid>/volumes/<plugin>/<name>`:
//! emptyDir (tmpfs for medium Memory), hostPath, configMap, secret, downwardAPI,
//! projected and hostPath/local PersistentVolumes. File-backed volumes are written
//! atomically like upstream: a timestamped directory behind a `..data` symlink, and one
//! symlink per top-level entry, so readers never see a half-updated set.

use super::env::{DownwardContext, kv_lines, resource_ref};
use super::refs::{ObjectCache, RefError};
use k8s_openapi::api::core::v1::{
    DownwardAPIVolumeFile, KeyToPath, PersistentVolume, PersistentVolumeClaim, Pod, Volume,
};
use kube::Api;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The per-pod directory layout.
#[derive(Debug, Clone)]
pub struct PodDirs {
    pub root: PathBuf,
}

impl PodDirs {
    pub fn new(data_dir: &Path, uid: &str) -> Self {
        PodDirs {
            root: data_dir.join("agent").join("pods").join(uid),
        }
    }

    pub fn volume(&self, plugin: &str, name: &str) -> PathBuf {
        self.root.join("volumes").join(plugin).join(name)
    }

    pub fn etc_hosts(&self) -> PathBuf {
        self.root.join("etc-hosts")
    }

    pub fn container(&self, name: &str) -> PathBuf {
        self.root.join("containers").join(name)
    }

    /// Log directory of the pod (the CRI sandbox log_directory).
    pub fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }
}

/// A file of an atomically written volume: relative path, content, mode.
type Files = BTreeMap<String, (Vec<u8>, u32)>;

fn io_err(what: &str, p: &Path, e: std::io::Error) -> RefError {
    RefError::Api(format!("{what} {}: {e}", p.display()))
}

/// Replaces the content of `dir` with `files` atomically (no-op when unchanged).
pub fn write_atomic(dir: &Path, files: &Files) -> Result<bool, RefError> {
    std::fs::create_dir_all(dir).map_err(|e| io_err("creating", dir, e))?;
    let mut h = Sha256::new();
    for (k, (v, mode)) in files {
        h.update(k.as_bytes());
        h.update([0]);
        h.update((v.len() as u64).to_le_bytes());
        h.update(v);
        h.update(mode.to_le_bytes());
    }
    let digest: String = h
        .finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect();
    let data_link = dir.join("..data");
    let current = std::fs::read_link(&data_link).ok();
    if current
        .as_ref()
        .is_some_and(|c| c.to_string_lossy().ends_with(&digest))
    {
        return Ok(false);
    }
    let ts = chrono::Utc::now().format("%Y_%m_%d_%H_%M_%S%.9f");
    let version = format!("..{ts}.{digest}");
    let vdir = dir.join(&version);
    for (rel, (data, mode)) in files {
        let p = vdir.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io_err("creating", parent, e))?;
        }
        std::fs::write(&p, data).map_err(|e| io_err("writing", &p, e))?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(*mode))
            .map_err(|e| io_err("chmod", &p, e))?;
    }
    std::fs::create_dir_all(&vdir).map_err(|e| io_err("creating", &vdir, e))?;
    // Swap ..data in one rename.
    let tmp_link = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp_link);
    std::os::unix::fs::symlink(&version, &tmp_link).map_err(|e| io_err("symlink", &tmp_link, e))?;
    std::fs::rename(&tmp_link, &data_link).map_err(|e| io_err("renaming", &data_link, e))?;
    // Top-level entries point through ..data; stale ones go.
    let tops: std::collections::BTreeSet<String> = files
        .keys()
        .filter_map(|k| k.split('/').next().map(String::from))
        .collect();
    for top in &tops {
        let link = dir.join(top);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(format!("..data/{top}"), &link)
                .map_err(|e| io_err("symlink", &link, e))?;
        }
    }
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if name.starts_with("..") {
                if name != "..data" && name != version && e.path().is_dir() {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            } else if !tops.contains(&name) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    Ok(true)
}

/// Files from a key→bytes map, filtered/renamed by `items` when given.
fn key_files(
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&[KeyToPath]>,
    default_mode: u32,
    what: &str,
    optional: bool,
) -> Result<Files, RefError> {
    let mut out = Files::new();
    match items.filter(|i| !i.is_empty()) {
        Some(items) => {
            for it in items {
                let mode = it.mode.map(|m| m as u32).unwrap_or(default_mode);
                match data.get(&it.key) {
                    Some(v) => {
                        out.insert(safe_rel(&it.path)?, (v.clone(), mode));
                    }
                    None if optional => {}
                    None => {
                        return Err(RefError::Missing(format!(
                            "configuration key \"{}\" not found in {what}",
                            it.key
                        )));
                    }
                }
            }
        }
        None => {
            for (k, v) in data {
                out.insert(safe_rel(k)?, (v.clone(), default_mode));
            }
        }
    }
    Ok(out)
}

/// Rejects absolute paths and `..` components.
fn safe_rel(p: &str) -> Result<String, RefError> {
    if p.is_empty() || p.starts_with('/') || p.split('/').any(|c| c == "..") {
        return Err(RefError::Invalid(format!("invalid volume file path {p:?}")));
    }
    Ok(p.to_string())
}

fn downward_files(
    pod: &Pod,
    items: &[DownwardAPIVolumeFile],
    default_mode: u32,
    ctx: &DownwardContext,
) -> Result<Files, RefError> {
    let mut out = Files::new();
    for it in items {
        let mode = it.mode.map(|m| m as u32).unwrap_or(default_mode);
        let value = if let Some(f) = &it.field_ref {
            match f.field_path.as_str() {
                "metadata.labels" => kv_lines(pod.metadata.labels.as_ref()),
                "metadata.annotations" => kv_lines(pod.metadata.annotations.as_ref()),
                "metadata.name" => pod.metadata.name.clone().unwrap_or_default(),
                "metadata.namespace" => pod.metadata.namespace.clone().unwrap_or_default(),
                "metadata.uid" => pod.metadata.uid.clone().unwrap_or_default(),
                p => {
                    let key = p
                        .strip_prefix("metadata.labels['")
                        .map(|k| (k, pod.metadata.labels.as_ref()))
                        .or_else(|| {
                            p.strip_prefix("metadata.annotations['")
                                .map(|k| (k, pod.metadata.annotations.as_ref()))
                        });
                    match key {
                        Some((k, map)) => {
                            let k = k.trim_end_matches("']");
                            map.and_then(|m| m.get(k)).cloned().unwrap_or_default()
                        }
                        None => {
                            return Err(RefError::Invalid(format!(
                                "unsupported downwardAPI fieldRef {p:?}"
                            )));
                        }
                    }
                }
            }
        } else if let Some(r) = &it.resource_field_ref {
            let name = r.container_name.as_deref().unwrap_or_default();
            let c = pod
                .spec
                .as_ref()
                .and_then(|s| s.containers.iter().find(|c| c.name == name))
                .ok_or_else(|| RefError::Invalid(format!("downwardAPI: no container {name:?}")))?;
            resource_ref(
                c,
                &r.resource,
                r.divisor.as_ref().map(|d| d.0.as_str()),
                ctx,
            )?
        } else {
            continue;
        };
        out.insert(safe_rel(&it.path)?, (value.into_bytes(), mode));
    }
    Ok(out)
}

async fn pvc_path(client: &kube::Client, ns: &str, claim: &str) -> Result<PathBuf, RefError> {
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
    let pvc = pvcs
        .get_opt(claim)
        .await
        .map_err(|e| RefError::Api(e.to_string()))?
        .ok_or_else(|| RefError::Missing(format!("persistentvolumeclaim \"{claim}\" not found")))?;
    let pv_name = pvc
        .spec
        .and_then(|s| s.volume_name)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            RefError::Missing(format!("persistentvolumeclaim \"{claim}\" is not bound"))
        })?;
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    let pv = pvs
        .get_opt(&pv_name)
        .await
        .map_err(|e| RefError::Api(e.to_string()))?
        .ok_or_else(|| RefError::Missing(format!("persistentvolume \"{pv_name}\" not found")))?;
    let spec = pv.spec.unwrap_or_default();
    let path = spec
        .host_path
        .map(|h| h.path)
        .or(spec.local.map(|l| l.path))
        .ok_or_else(|| {
            RefError::Invalid(format!(
                "persistentvolume \"{pv_name}\": only hostPath and local volumes are supported"
            ))
        })?;
    std::fs::create_dir_all(&path).map_err(|e| io_err("creating", Path::new(&path), e))?;
    Ok(PathBuf::from(path))
}

fn host_path(path: &str, kind: &str) -> Result<PathBuf, RefError> {
    let p = PathBuf::from(path);
    let exists = p.exists();
    let bad = |what: &str| {
        Err(RefError::Missing(format!(
            "hostPath type check failed: {path} is not a {what}"
        )))
    };
    match kind {
        "DirectoryOrCreate" if !exists => {
            std::fs::create_dir_all(&p).map_err(|e| io_err("creating", &p, e))?;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| io_err("chmod", &p, e))?;
        }
        "FileOrCreate" if !exists => {
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent).map_err(|e| io_err("creating", parent, e))?;
            }
            std::fs::write(&p, b"").map_err(|e| io_err("creating", &p, e))?;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644))
                .map_err(|e| io_err("chmod", &p, e))?;
        }
        "Directory" if !p.is_dir() => return bad("directory"),
        "File" if !p.is_file() => return bad("file"),
        "Socket" | "CharDevice" | "BlockDevice" if !exists => return bad(&kind.to_lowercase()),
        _ => {}
    }
    Ok(p)
}

fn is_mounted(p: &Path) -> bool {
    let target = p.to_string_lossy();
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|m| {
            m.lines()
                .any(|l| l.split(' ').nth(4) == Some(target.as_ref()))
        })
        .unwrap_or(false)
}

fn empty_dir(
    dirs: &PodDirs,
    v: &Volume,
    medium: &str,
    size_limit: Option<&str>,
) -> Result<PathBuf, RefError> {
    let p = dirs.volume("kubernetes.io~empty-dir", &v.name);
    std::fs::create_dir_all(&p).map_err(|e| io_err("creating", &p, e))?;
    if medium == "Memory" && !is_mounted(&p) {
        let mut opts = "mode=0777".to_string();
        if let Some(bytes) =
            size_limit.and_then(|s| r8s_api::strategy::quantity::parse_quantity(s).ok())
        {
            opts.push_str(&format!(",size={}", bytes / 1000));
        }
        let data = std::ffi::CString::new(opts).map_err(|e| RefError::Invalid(e.to_string()))?;
        rustix::mount::mount(
            "tmpfs",
            &p,
            "tmpfs",
            rustix::mount::MountFlags::empty(),
            data.as_c_str(),
        )
        .map_err(|e| RefError::Api(format!("mounting tmpfs at {}: {e}", p.display())))?;
    }
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o777))
        .map_err(|e| io_err("chmod", &p, e))?;
    Ok(p)
}

/// A volume that could not be set up, worded as upstream's `FailedMount` event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("MountVolume.SetUp failed for volume \"{volume}\" : {source}")]
pub struct MountError {
    pub volume: String,
    #[source]
    pub source: RefError,
}

/// Materialises every volume of the pod; returns volume name → host path.
pub async fn prepare(
    client: &kube::Client,
    pod: &Pod,
    dirs: &PodDirs,
    cache: &mut ObjectCache,
    ctx: &DownwardContext,
) -> Result<HashMap<String, PathBuf>, MountError> {
    let mut out = HashMap::new();
    for v in pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_deref())
        .unwrap_or_default()
    {
        let path = prepare_one(client, pod, v, dirs, cache, ctx)
            .await
            .map_err(|source| MountError {
                volume: v.name.clone(),
                source,
            })?;
        out.insert(v.name.clone(), path);
    }
    Ok(out)
}

/// Materialises one volume; returns its host path.
async fn prepare_one(
    client: &kube::Client,
    pod: &Pod,
    v: &Volume,
    dirs: &PodDirs,
    cache: &mut ObjectCache,
    ctx: &DownwardContext,
) -> Result<PathBuf, RefError> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let path = if let Some(e) = &v.empty_dir {
        empty_dir(
            dirs,
            v,
            e.medium.as_deref().unwrap_or_default(),
            e.size_limit.as_ref().map(|q| q.0.as_str()),
        )?
    } else if let Some(h) = &v.host_path {
        host_path(&h.path, h.type_.as_deref().unwrap_or_default())?
    } else if let Some(cm) = &v.config_map {
        let optional = cm.optional.unwrap_or(false);
        let data = cache
            .config_map_files(&cm.name, optional)
            .await?
            .unwrap_or_default();
        let what = format!("configmap \"{}\"", cm.name);
        let files = key_files(
            &data,
            cm.items.as_deref(),
            cm.default_mode.unwrap_or(0o644) as u32,
            &what,
            optional,
        )?;
        let p = dirs.volume("kubernetes.io~configmap", &v.name);
        write_atomic(&p, &files)?;
        p
    } else if let Some(s) = &v.secret {
        let name = s.secret_name.clone().unwrap_or_default();
        let optional = s.optional.unwrap_or(false);
        let data = cache
            .secret_files(&name, optional)
            .await?
            .unwrap_or_default();
        let what = format!("secret \"{name}\"");
        let files = key_files(
            &data,
            s.items.as_deref(),
            s.default_mode.unwrap_or(0o644) as u32,
            &what,
            optional,
        )?;
        let p = dirs.volume("kubernetes.io~secret", &v.name);
        write_atomic(&p, &files)?;
        p
    } else if let Some(d) = &v.downward_api {
        let files = downward_files(
            pod,
            d.items.as_deref().unwrap_or_default(),
            d.default_mode.unwrap_or(0o644) as u32,
            ctx,
        )?;
        let p = dirs.volume("kubernetes.io~downward-api", &v.name);
        write_atomic(&p, &files)?;
        p
    } else if let Some(pr) = &v.projected {
        let mode = pr.default_mode.unwrap_or(0o644) as u32;
        let mut files = Files::new();
        for src in pr.sources.as_deref().unwrap_or_default() {
            if let Some(cm) = &src.config_map {
                let optional = cm.optional.unwrap_or(false);
                let data = cache
                    .config_map_files(&cm.name, optional)
                    .await?
                    .unwrap_or_default();
                let what = format!("configmap \"{}\"", cm.name);
                files.extend(key_files(
                    &data,
                    cm.items.as_deref(),
                    mode,
                    &what,
                    optional,
                )?);
            }
            if let Some(s) = &src.secret {
                let optional = s.optional.unwrap_or(false);
                let data = cache
                    .secret_files(&s.name, optional)
                    .await?
                    .unwrap_or_default();
                let what = format!("secret \"{}\"", s.name);
                files.extend(key_files(&data, s.items.as_deref(), mode, &what, optional)?);
            }
            if let Some(d) = &src.downward_api {
                files.extend(downward_files(
                    pod,
                    d.items.as_deref().unwrap_or_default(),
                    mode,
                    ctx,
                )?);
            }
            if let Some(t) = &src.service_account_token {
                let token = cache
                    .service_account_token(pod, t.audience.as_deref(), t.expiration_seconds)
                    .await;
                files.insert(safe_rel(&t.path)?, (token.into_bytes(), mode));
            }
        }
        let p = dirs.volume("kubernetes.io~projected", &v.name);
        write_atomic(&p, &files)?;
        p
    } else if let Some(c) = &v.persistent_volume_claim {
        pvc_path(client, ns, &c.claim_name).await?
    } else {
        return Err(RefError::Invalid(format!(
            "volume {:?}: unsupported volume type",
            v.name
        )));
    };
    Ok(path)
}

/// Unmounts everything mounted under `root` (deepest first), e.g. tmpfs emptyDirs.
pub fn unmount_under(root: &Path) {
    let prefix = root.to_string_lossy().to_string();
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut targets: Vec<String> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|t| t.starts_with(&prefix))
        .map(|t| t.replace("\\040", " "))
        .collect();
    targets.sort_by_key(|t| std::cmp::Reverse(t.len()));
    for t in targets {
        if let Err(e) = rustix::mount::unmount(t.as_str(), rustix::mount::UnmountFlags::DETACH) {
            tracing::warn!("unmounting {t}: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_writer_swaps_and_prunes() {
        let d = tempfile::tempdir().unwrap();
        let mut files = Files::new();
        files.insert("a".into(), (b"1".to_vec(), 0o644));
        files.insert("sub/b".into(), (b"2".to_vec(), 0o600));
        assert!(write_atomic(d.path(), &files).unwrap());
        assert!(!write_atomic(d.path(), &files).unwrap());
        assert_eq!(std::fs::read_to_string(d.path().join("a")).unwrap(), "1");
        assert_eq!(
            std::fs::read_to_string(d.path().join("sub/b")).unwrap(),
            "2"
        );
        let mode = std::fs::metadata(d.path().join("sub/b"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        files.remove("sub/b");
        files.insert("a".into(), (b"3".to_vec(), 0o644));
        assert!(write_atomic(d.path(), &files).unwrap());
        assert_eq!(std::fs::read_to_string(d.path().join("a")).unwrap(), "3");
        assert!(!d.path().join("sub").exists());
        let versions = std::fs::read_dir(d.path())
            .unwrap()
            .filter(|e| {
                let n = e
                    .as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .to_string();
                n.starts_with("..") && n != "..data"
            })
            .count();
        assert_eq!(versions, 1);
    }

    #[test]
    fn key_files_items_and_paths() {
        let data = BTreeMap::from([
            ("k".to_string(), b"v".to_vec()),
            ("x".to_string(), b"y".to_vec()),
        ]);
        let items: Vec<KeyToPath> = vec![
            serde_json::from_value(
                serde_json::json!({"key": "k", "path": "dir/file", "mode": 0o400}),
            )
            .unwrap(),
        ];
        let f = key_files(&data, Some(&items), 0o644, "cm", false).unwrap();
        assert_eq!(f["dir/file"], (b"v".to_vec(), 0o400));
        assert_eq!(f.len(), 1);
        let missing: Vec<KeyToPath> =
            vec![serde_json::from_value(serde_json::json!({"key": "nope", "path": "p"})).unwrap()];
        assert!(matches!(
            key_files(&data, Some(&missing), 0o644, "cm", false),
            Err(RefError::Missing(_))
        ));
        assert!(
            key_files(&data, Some(&missing), 0o644, "cm", true)
                .unwrap()
                .is_empty()
        );
        assert!(safe_rel("../etc").is_err());
        assert!(safe_rel("/abs").is_err());
    }
}
