//! Writes single-layer image archives in the docker-archive format (`manifest.json`,
//! an image config JSON, one gzip layer) directly: tar + gzip + sha256, no external
//! tools. containerd's `ctr images import` and the CRI plugin load them.

use crate::error::{Error, IoContext, Result};
use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The runtime part of an image config (what a container runs by default).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// `KEY=value` entries.
    pub env: Vec<String>,
    /// Ports like `80/tcp`.
    pub exposed_ports: Vec<String>,
    pub working_dir: String,
    pub user: String,
    pub labels: Vec<(String, String)>,
    /// Signal sent by a graceful stop (e.g. `SIGQUIT`); empty = SIGTERM.
    pub stop_signal: String,
}

/// One entry of a layer, by its absolute path inside the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerEntry {
    Dir {
        path: String,
        mode: u32,
    },
    File {
        path: String,
        mode: u32,
        data: Vec<u8>,
    },
    /// A file whose content is read from the host when the archive is written.
    HostFile {
        path: String,
        mode: u32,
        src: PathBuf,
    },
    Symlink {
        path: String,
        target: String,
    },
}

/// A filesystem layer: entries written in order (parents before children).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layer {
    pub entries: Vec<LayerEntry>,
}

impl Layer {
    pub fn dir(&mut self, path: &str, mode: u32) -> &mut Self {
        self.entries.push(LayerEntry::Dir {
            path: path.into(),
            mode,
        });
        self
    }

    pub fn file(&mut self, path: &str, mode: u32, data: impl Into<Vec<u8>>) -> &mut Self {
        self.entries.push(LayerEntry::File {
            path: path.into(),
            mode,
            data: data.into(),
        });
        self
    }

    pub fn host_file(&mut self, path: &str, mode: u32, src: &Path) -> &mut Self {
        self.entries.push(LayerEntry::HostFile {
            path: path.into(),
            mode,
            src: src.to_path_buf(),
        });
        self
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.entries.push(LayerEntry::Symlink {
            path: path.into(),
            target: target.into(),
        });
        self
    }

    /// A layer holding everything under the host directory `root` (a rootfs), keeping
    /// modes and symlinks.
    pub fn from_dir(root: &Path) -> Result<Layer> {
        let mut layer = Layer::default();
        walk(root, root, &mut layer)?;
        Ok(layer)
    }

    /// The uncompressed tar stream of this layer.
    pub fn to_tar(&self) -> Result<Vec<u8>> {
        let mut b = tar::Builder::new(Vec::new());
        for e in &self.entries {
            append(&mut b, e)?;
        }
        b.into_inner().ctx(|| "finishing layer tar".into())
    }
}

fn walk(root: &Path, dir: &Path, layer: &mut Layer) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut children: Vec<_> = std::fs::read_dir(dir)
        .ctx(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok())
        .collect();
    children.sort_by_key(|e| e.file_name());
    for child in children {
        let host = child.path();
        let rel = host.strip_prefix(root).unwrap_or(&host);
        let path = format!("/{}", rel.display());
        let meta = std::fs::symlink_metadata(&host).ctx(|| format!("stat {}", host.display()))?;
        let mode = meta.permissions().mode() & 0o7777;
        if meta.file_type().is_symlink() {
            let target =
                std::fs::read_link(&host).ctx(|| format!("readlink {}", host.display()))?;
            layer.symlink(&path, &target.to_string_lossy());
        } else if meta.is_dir() {
            layer.dir(&path, mode);
            walk(root, &host, layer)?;
        } else if meta.is_file() {
            layer.host_file(&path, mode, &host);
        }
    }
    Ok(())
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_uid(0);
    h.set_gid(0);
    // A fixed mtime keeps archives reproducible (same digest for the same content).
    h.set_mtime(0);
    h
}

fn rel(path: &str) -> &str {
    path.trim_start_matches('/')
}

fn append(b: &mut tar::Builder<Vec<u8>>, e: &LayerEntry) -> Result<()> {
    match e {
        LayerEntry::Dir { path, mode } => {
            let mut h = header(tar::EntryType::Directory, *mode, 0);
            let p = format!("{}/", rel(path));
            b.append_data(&mut h, p, std::io::empty())
                .ctx(|| format!("tar dir {path}"))
        }
        LayerEntry::File { path, mode, data } => {
            let mut h = header(tar::EntryType::Regular, *mode, data.len() as u64);
            b.append_data(&mut h, rel(path), data.as_slice())
                .ctx(|| format!("tar file {path}"))
        }
        LayerEntry::HostFile { path, mode, src } => {
            let data = std::fs::read(src).ctx(|| format!("reading {}", src.display()))?;
            let mut h = header(tar::EntryType::Regular, *mode, data.len() as u64);
            b.append_data(&mut h, rel(path), data.as_slice())
                .ctx(|| format!("tar file {path}"))
        }
        LayerEntry::Symlink { path, target } => {
            let mut h = header(tar::EntryType::Symlink, 0o777, 0);
            b.append_link(&mut h, rel(path), target)
                .ctx(|| format!("tar symlink {path}"))
        }
    }
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveInfo {
    /// `sha256:<hex>` of the config (the image ID the runtime reports).
    pub image_id: String,
    pub tags: Vec<String>,
}

fn sha256_hex(data: &[u8]) -> String {
    let d = Sha256::digest(data);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// The image config JSON for one layer with uncompressed digest `diff_id`.
fn config_json(cfg: &ImageConfig, diff_id: &str) -> Value {
    let mut c = Map::new();
    if !cfg.env.is_empty() {
        c.insert("Env".into(), json!(cfg.env));
    }
    if !cfg.entrypoint.is_empty() {
        c.insert("Entrypoint".into(), json!(cfg.entrypoint));
    }
    if !cfg.cmd.is_empty() {
        c.insert("Cmd".into(), json!(cfg.cmd));
    }
    if !cfg.working_dir.is_empty() {
        c.insert("WorkingDir".into(), json!(cfg.working_dir));
    }
    if !cfg.user.is_empty() {
        c.insert("User".into(), json!(cfg.user));
    }
    if !cfg.stop_signal.is_empty() {
        c.insert("StopSignal".into(), json!(cfg.stop_signal));
    }
    if !cfg.exposed_ports.is_empty() {
        let ports: Map<String, Value> = cfg
            .exposed_ports
            .iter()
            .map(|p| (p.clone(), json!({})))
            .collect();
        c.insert("ExposedPorts".into(), Value::Object(ports));
    }
    if !cfg.labels.is_empty() {
        let labels: Map<String, Value> = cfg
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        c.insert("Labels".into(), Value::Object(labels));
    }
    json!({
        "architecture": go_arch(),
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": c,
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{diff_id}")]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "r8s image builder"}],
    })
}

/// The Go/OCI name of this machine's architecture.
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        "arm" => "arm",
        other => other,
    }
}

/// Writes a docker-archive tarball with one gzip layer to `out` (atomically: a temp file
/// renamed into place), tagged with `tags` (e.g. `nginx:1.14.2`).
pub fn write_archive(
    tags: &[&str],
    cfg: &ImageConfig,
    layer: &Layer,
    out: &Path,
) -> Result<ArchiveInfo> {
    if tags.is_empty() {
        return Err(Error::Config(
            "an image archive needs at least one tag".into(),
        ));
    }
    let layer_tar = layer.to_tar()?;
    let diff_id = sha256_hex(&layer_tar);
    let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
    gz.write_all(&layer_tar).ctx(|| "gzip layer".into())?;
    let layer_gz = gz.finish().ctx(|| "gzip layer".into())?;
    let layer_hex = sha256_hex(&layer_gz);
    let config = serde_json::to_vec(&config_json(cfg, &diff_id))?;
    let config_hex = sha256_hex(&config);
    let manifest = serde_json::to_vec(&json!([{
        "Config": format!("{config_hex}.json"),
        "RepoTags": tags,
        "Layers": [format!("{layer_hex}/layer.tar")],
    }]))?;

    let mut b = tar::Builder::new(Vec::new());
    let files: [(String, &[u8]); 3] = [
        (format!("{config_hex}.json"), &config),
        (format!("{layer_hex}/layer.tar"), &layer_gz),
        ("manifest.json".into(), &manifest),
    ];
    let mut h = header(tar::EntryType::Directory, 0o755, 0);
    b.append_data(&mut h, format!("{layer_hex}/"), std::io::empty())
        .ctx(|| "archive dir".into())?;
    for (name, data) in files {
        let mut h = header(tar::EntryType::Regular, 0o644, data.len() as u64);
        b.append_data(&mut h, &name, data)
            .ctx(|| format!("archive {name}"))?;
    }
    let bytes = b.into_inner().ctx(|| "finishing archive".into())?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).ctx(|| format!("creating {}", dir.display()))?;
    }
    let tmp = out.with_extension(format!("tmp.{}", std::process::id()));
    std::fs::write(&tmp, &bytes).ctx(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, out).ctx(|| format!("renaming to {}", out.display()))?;
    Ok(ArchiveInfo {
        image_id: format!("sha256:{config_hex}"),
        tags: tags.iter().map(|t| t.to_string()).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn entries(tar_bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
        let mut a = tar::Archive::new(tar_bytes);
        let mut out = Vec::new();
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            let name = e.path().unwrap().display().to_string();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            out.push((name, data));
        }
        out
    }

    #[test]
    fn archive_has_consistent_digests() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("img.tar");
        let mut layer = Layer::default();
        layer
            .dir("/bin", 0o755)
            .file("/bin/hello", 0o755, b"#!/bin/sh\necho hi\n".to_vec())
            .symlink("/bin/hi", "hello");
        let cfg = ImageConfig {
            cmd: vec!["/bin/hello".into()],
            exposed_ports: vec!["80/tcp".into()],
            ..Default::default()
        };
        let info = write_archive(&["test:1"], &cfg, &layer, &out).unwrap();
        let all = entries(&std::fs::read(&out).unwrap());
        let manifest: Value =
            serde_json::from_slice(&all.iter().find(|(n, _)| n == "manifest.json").unwrap().1)
                .unwrap();
        let config_name = manifest[0]["Config"].as_str().unwrap();
        let config = &all.iter().find(|(n, _)| n == config_name).unwrap().1;
        assert_eq!(info.image_id, format!("sha256:{}", sha256_hex(config)));
        let layer_name = manifest[0]["Layers"][0].as_str().unwrap();
        let layer_gz = &all.iter().find(|(n, _)| n == layer_name).unwrap().1;
        assert!(layer_name.starts_with(&sha256_hex(layer_gz)));
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(layer_gz.as_slice())
            .read_to_end(&mut plain)
            .unwrap();
        let config: Value = serde_json::from_slice(config).unwrap();
        assert_eq!(
            config["rootfs"]["diff_ids"][0],
            format!("sha256:{}", sha256_hex(&plain))
        );
        assert_eq!(config["config"]["ExposedPorts"]["80/tcp"], json!({}));
        let names: Vec<_> = entries(&plain).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["bin/", "bin/hello", "bin/hi"]);
        // Reproducible.
        let again = write_archive(&["test:1"], &cfg, &layer, &out).unwrap();
        assert_eq!(again, info);
    }

    #[test]
    fn from_dir_keeps_symlinks_and_modes() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(dir.path().join("etc/motd"), "hi").unwrap();
        std::fs::set_permissions(
            dir.path().join("etc/motd"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        std::os::unix::fs::symlink("motd", dir.path().join("etc/link")).unwrap();
        let layer = Layer::from_dir(dir.path()).unwrap();
        assert_eq!(
            layer.entries,
            vec![
                LayerEntry::Dir {
                    path: "/etc".into(),
                    mode: 0o755
                },
                LayerEntry::Symlink {
                    path: "/etc/link".into(),
                    target: "motd".into()
                },
                LayerEntry::HostFile {
                    path: "/etc/motd".into(),
                    mode: 0o600,
                    src: dir.path().join("etc/motd")
                },
            ]
        );
    }
}
