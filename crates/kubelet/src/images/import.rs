//! Loading image archives into containerd's `k8s.io` namespace (where the CRI plugin
//! looks), with containerd's own `ctr` client; the CRI plugin picks new images up from
//! containerd's image events.

use crate::error::{Error, IoContext, Result};
use std::path::{Path, PathBuf};

/// The `ctr` binary: `$R8S_CTR` or `ctr` from PATH.
fn ctr_binary() -> PathBuf {
    std::env::var_os("R8S_CTR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("ctr"))
}

/// Imports one docker/OCI archive into the containerd at `socket` (unpacked for the
/// overlayfs snapshotter, so containers can start from it at once).
pub async fn import(socket: &Path, tar: &Path) -> Result<()> {
    let out = tokio::process::Command::new(ctr_binary())
        .arg("--address")
        .arg(socket)
        .args([
            "--namespace",
            "k8s.io",
            "images",
            "import",
            "--snapshotter",
            "overlayfs",
        ])
        .arg(tar)
        .kill_on_drop(true)
        .output()
        .await
        .ctx(|| format!("running ctr to import {}", tar.display()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::Import {
            file: tar.to_path_buf(),
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// Imports each file; fails on the first error.
pub async fn import_all(socket: &Path, files: &[PathBuf]) -> Result<()> {
    for f in files {
        import(socket, f).await?;
    }
    Ok(())
}

/// The `*.tar` (and `*.tar.gz`, `*.tgz`) files in `dir`, sorted; none when it is missing.
pub fn archives_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(format!("reading {}", dir.display()), e)),
    };
    let mut files: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            p.is_file()
                && [".tar", ".tar.gz", ".tgz"]
                    .iter()
                    .any(|ext| name.ends_with(ext))
        })
        .collect();
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_only_archives() {
        let d = tempfile::tempdir().unwrap();
        for n in ["b.tar", "a.tar.gz", "c.tgz", "notes.txt"] {
            std::fs::write(d.path().join(n), "x").unwrap();
        }
        std::fs::create_dir(d.path().join("dir.tar")).unwrap();
        let names: Vec<_> = archives_in(d.path())
            .unwrap()
            .into_iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().to_string())
            .collect();
        assert_eq!(names, ["a.tar.gz", "b.tar", "c.tgz"]);
        assert!(archives_in(&d.path().join("missing")).unwrap().is_empty());
    }
}
