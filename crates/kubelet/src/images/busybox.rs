//! Test and infrastructure images made from the host's static busybox: the pod sandbox
//! ("pause") image, a stand-in for `nginx:1.14.2` (busybox httpd on :80) and generic
//! busybox images with a chosen command.

use super::archive::{ArchiveInfo, ImageConfig, Layer, write_archive};
use crate::error::{Error, IoContext, Result};
use std::path::{Path, PathBuf};

/// The sandbox image r8s configures in containerd (imported at agent start).
pub const PAUSE_IMAGE: &str = "r8s.local/pause:3.10";
/// The seed's example image, served by busybox httpd.
pub const NGINX_IMAGE: &str = "nginx:1.14.2";
/// A general-purpose busybox image (shell, sleep, wget, nc, httpd …).
pub const BUSYBOX_IMAGE: &str = "busybox:1.36";

const PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The static busybox to package: `$R8S_BUSYBOX`, else /bin/busybox or /usr/bin/busybox.
pub fn find_busybox() -> Result<PathBuf> {
    let candidates = std::env::var_os("R8S_BUSYBOX")
        .map(PathBuf::from)
        .into_iter()
        .chain(["/bin/busybox", "/usr/bin/busybox"].map(PathBuf::from));
    for c in candidates {
        if c.is_file() {
            return Ok(c);
        }
    }
    Err(Error::Config(
        "no busybox binary found (install busybox-static or set R8S_BUSYBOX)".into(),
    ))
}

/// Applet paths relative to `/` (`bin/sh`, `usr/bin/wget`, …) as the binary reports
/// them, without `busybox` itself: a link named busybox would replace the binary.
fn applets(busybox: &Path) -> Result<Vec<String>> {
    let out = std::process::Command::new(busybox)
        .arg("--list-full")
        .output()
        .ctx(|| format!("running {} --list-full", busybox.display()))?;
    if !out.status.success() {
        return Err(Error::Config(format!(
            "{} --list-full failed: {}",
            busybox.display(),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    let mut list: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().trim_start_matches('/').to_string())
        .filter(|l| !l.is_empty() && !l.contains("..") && !l.ends_with("/busybox"))
        .filter(|l| l != "busybox")
        .collect();
    list.sort();
    list.dedup();
    Ok(list)
}

/// A minimal Linux rootfs: the FHS directories, busybox with its applet links, and
/// passwd/group files so `nobody` and numeric users resolve.
pub fn busybox_layer(busybox: &Path) -> Result<Layer> {
    let mut l = Layer::default();
    for d in [
        "/bin",
        "/dev",
        "/etc",
        "/home",
        "/proc",
        "/root",
        "/sbin",
        "/sys",
        "/usr",
        "/usr/bin",
        "/usr/sbin",
        "/var",
        "/var/run",
        "/var/log",
    ] {
        l.dir(d, 0o755);
    }
    l.dir("/tmp", 0o1777);
    l.host_file("/bin/busybox", 0o755, busybox);
    for applet in applets(busybox)? {
        // Parent directories outside the standard set (rare) are created on the fly.
        if let Some((parent, _)) = applet.rsplit_once('/') {
            let p = format!("/{parent}");
            let known = l
                .entries
                .iter()
                .any(|e| matches!(e, super::archive::LayerEntry::Dir { path, .. } if *path == p));
            if !known {
                l.dir(&p, 0o755);
            }
        }
        l.symlink(&format!("/{applet}"), "/bin/busybox");
    }
    l.file(
        "/etc/passwd",
        0o644,
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n",
    );
    l.file("/etc/group", 0o644, "root:x:0:\nnogroup:x:65534:\n");
    Ok(l)
}

/// Builds a busybox image tagged `tag` whose default command is `cmd`.
pub fn build_busybox_image(tag: &str, cmd: &[&str], out_tar: &Path) -> Result<ArchiveInfo> {
    let layer = busybox_layer(&find_busybox()?)?;
    let cfg = ImageConfig {
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
        env: vec![PATH_ENV.into()],
        ..Default::default()
    };
    write_archive(&[tag], &cfg, &layer, out_tar)
}

/// The sandbox image: busybox sleeping "forever" (the sandbox is always SIGKILLed).
pub fn build_pause_image(out_tar: &Path) -> Result<ArchiveInfo> {
    build_busybox_image(PAUSE_IMAGE, &["sleep", "2147483647"], out_tar)
}

/// `nginx:1.14.2` stand-in: busybox httpd serving /usr/share/nginx/html on port 80
/// (also reachable as /www), exiting on SIGTERM.
pub fn build_nginx_image(out_tar: &Path) -> Result<ArchiveInfo> {
    let mut layer = busybox_layer(&find_busybox()?)?;
    layer
        .dir("/usr/share", 0o755)
        .dir("/usr/share/nginx", 0o755)
        .dir("/usr/share/nginx/html", 0o755)
        .file(
            "/usr/share/nginx/html/index.html",
            0o644,
            "<!DOCTYPE html>\n<html>\n<head><title>Welcome to nginx!</title></head>\n<body>\n<h1>Welcome to nginx!</h1>\n<p>Served by busybox httpd in an r8s test image.</p>\n</body>\n</html>\n",
        )
        .symlink("/www", "/usr/share/nginx/html");
    let cfg = ImageConfig {
        // httpd as PID 1 would ignore SIGTERM (no handler), so a shell that exits on it
        // runs it: pods stop at once instead of after the whole grace period.
        cmd: [
            "sh",
            "-c",
            "trap 'exit 0' TERM INT QUIT; httpd -f -v -p 80 -h /usr/share/nginx/html & wait",
        ]
        .map(String::from)
        .to_vec(),
        env: vec![PATH_ENV.into(), "NGINX_VERSION=1.14.2".into()],
        exposed_ports: vec!["80/tcp".into()],
        ..Default::default()
    };
    write_archive(&[NGINX_IMAGE], &cfg, &layer, out_tar)
}

/// Writes the pause, nginx and busybox images into `dir` (`pause.tar`, `nginx.tar`,
/// `busybox.tar`) and returns their paths.
pub fn build_default_images(dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).ctx(|| format!("creating {}", dir.display()))?;
    let pause = dir.join("pause.tar");
    let nginx = dir.join("nginx.tar");
    let busybox = dir.join("busybox.tar");
    build_pause_image(&pause)?;
    build_nginx_image(&nginx)?;
    build_busybox_image(BUSYBOX_IMAGE, &["sh"], &busybox)?;
    Ok(vec![pause, nginx, busybox])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::archive::LayerEntry;

    #[test]
    fn busybox_layer_never_links_over_the_binary() {
        let Ok(bb) = find_busybox() else {
            return;
        };
        let layer = busybox_layer(&bb).unwrap();
        let mut saw_sh = false;
        for e in &layer.entries {
            if let LayerEntry::Symlink { path, .. } = e {
                assert_ne!(path, "/bin/busybox");
                saw_sh |= path == "/bin/sh";
            }
        }
        assert!(saw_sh);
        assert!(
            layer
                .entries
                .iter()
                .any(|e| matches!(e, LayerEntry::HostFile { path, .. } if path == "/bin/busybox"))
        );
    }
}
