//! Facts about the host that the Node object reports: CPUs, memory, disk, kernel, OS.

use std::path::Path;

/// Host resources and identity, read once per status computation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostInfo {
    pub cpus: u64,
    pub memory_total_kib: u64,
    pub memory_available_kib: u64,
    /// Bytes of the filesystem holding the data dir.
    pub disk_total: u64,
    pub disk_available: u64,
    pub kernel_version: String,
    pub os_image: String,
    pub machine_id: String,
    pub boot_id: String,
    pub system_uuid: String,
    pub pid_max: u64,
}

fn read_trim(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// `MemTotal`/`MemAvailable` in KiB from /proc/meminfo text.
pub fn parse_meminfo(text: &str) -> (u64, u64) {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (field("MemTotal"), field("MemAvailable"))
}

/// `PRETTY_NAME` from os-release text.
pub fn parse_os_release(text: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim().trim_matches('"').to_string())
        .unwrap_or_else(|| "Linux".into())
}

impl HostInfo {
    /// Reads the host (the disk numbers are those of the filesystem of `data_dir`).
    pub fn read(data_dir: &Path) -> HostInfo {
        let (memory_total_kib, memory_available_kib) =
            parse_meminfo(&std::fs::read_to_string("/proc/meminfo").unwrap_or_default());
        let (disk_total, disk_available) = match rustix::fs::statvfs(data_dir) {
            Ok(s) => (
                s.f_blocks.saturating_mul(s.f_frsize),
                s.f_bavail.saturating_mul(s.f_frsize),
            ),
            Err(_) => (0, 0),
        };
        let uname = rustix::system::uname();
        HostInfo {
            cpus: std::thread::available_parallelism()
                .map(|n| n.get() as u64)
                .unwrap_or(1),
            memory_total_kib,
            memory_available_kib,
            disk_total,
            disk_available,
            kernel_version: uname.release().to_string_lossy().to_string(),
            os_image: parse_os_release(
                &std::fs::read_to_string("/etc/os-release").unwrap_or_default(),
            ),
            machine_id: read_trim("/etc/machine-id"),
            boot_id: read_trim("/proc/sys/kernel/random/boot_id"),
            system_uuid: read_trim("/sys/class/dmi/id/product_uuid"),
            pid_max: read_trim("/proc/sys/kernel/pid_max")
                .parse()
                .unwrap_or(32768),
        }
    }
}

/// The node's hostname (for the Hostname address when none is configured).
pub fn hostname() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_and_os_release() {
        let m = "MemTotal:       24684000 kB\nMemFree:  100 kB\nMemAvailable:   23000000 kB\n";
        assert_eq!(parse_meminfo(m), (24684000, 23000000));
        assert_eq!(
            parse_os_release("NAME=\"Debian\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n"),
            "Debian GNU/Linux 12 (bookworm)"
        );
        let h = HostInfo::read(Path::new("/"));
        assert!(h.cpus >= 1);
        assert!(h.memory_total_kib > 0);
        assert!(!h.kernel_version.is_empty());
    }
}
