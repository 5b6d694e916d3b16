//! The node's own CPU and memory use, as upstream's kubelet reports it for the resource
//! metrics API: cumulative CPU time and the memory working set (usage minus inactive page
//! cache) of the root cgroup, falling back to /proc when cgroup files are unreadable.

use std::time::{SystemTime, UNIX_EPOCH};

/// One reading of a node's or container's use.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Usage {
    /// Cumulative CPU time in core-seconds.
    pub cpu_seconds: f64,
    /// Working set in bytes.
    pub memory_bytes: u64,
    /// When it was read, in milliseconds since the epoch.
    pub timestamp_ms: i64,
}

const CPUACCT_USAGE: [&str; 2] = [
    "/sys/fs/cgroup/cpuacct/cpuacct.usage",
    "/sys/fs/cgroup/cpu,cpuacct/cpuacct.usage",
];
const MEMORY_USAGE: &str = "/sys/fs/cgroup/memory/memory.usage_in_bytes";
const MEMORY_STAT: &str = "/sys/fs/cgroup/memory/memory.stat";
/// cgroup v2 root files (the unified hierarchy has no root `memory.current`).
const CPU_STAT_V2: &str = "/sys/fs/cgroup/cpu.stat";
/// `/proc/stat` counts in USER_HZ, which is 100 on every Linux ABI.
const USER_HZ: f64 = 100.0;

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// Milliseconds since the epoch now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The node's current use, or None when neither cgroups nor /proc can be read.
pub fn node_usage() -> Option<Usage> {
    Some(Usage {
        cpu_seconds: node_cpu_seconds()?,
        memory_bytes: node_memory_bytes()?,
        timestamp_ms: now_ms(),
    })
}

fn node_cpu_seconds() -> Option<f64> {
    for path in CPUACCT_USAGE {
        if let Some(ns) = read(path).and_then(|t| t.trim().parse::<u64>().ok()) {
            return Some(ns as f64 / 1e9);
        }
    }
    if let Some(us) = read(CPU_STAT_V2).and_then(|t| stat_value(&t, "usage_usec")) {
        return Some(us as f64 / 1e6);
    }
    read("/proc/stat").and_then(|t| proc_stat_busy_seconds(&t))
}

fn node_memory_bytes() -> Option<u64> {
    let usage = read(MEMORY_USAGE).and_then(|t| t.trim().parse::<u64>().ok());
    let inactive = read(MEMORY_STAT).and_then(|t| stat_value(&t, "total_inactive_file"));
    if let (Some(usage), Some(inactive)) = (usage, inactive) {
        return Some(usage.saturating_sub(inactive));
    }
    let (total_kib, available_kib) = read("/proc/meminfo")
        .map(|t| crate::sysinfo::parse_meminfo(&t))
        .filter(|(total, _)| *total > 0)?;
    Some(total_kib.saturating_sub(available_kib) * 1024)
}

/// The value of `key` in a `key value` per line file (memory.stat, cpu.stat).
fn stat_value(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// Busy CPU seconds from the aggregate `cpu` line of /proc/stat: everything but idle and
/// iowait (guest time is already inside user time).
fn proc_stat_busy_seconds(text: &str) -> Option<f64> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    let busy: u64 = fields
        .iter()
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, v)| v)
        .sum();
    Some(busy as f64 / USER_HZ)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_counts_busy_time_only() {
        let text = "cpu  100 10 50 1000 40 0 5 2 7 0\ncpu0 1 2 3 4 5 6 7 8 9 0\n";
        // user + nice + system + irq + softirq + steal = 167 ticks.
        assert_eq!(proc_stat_busy_seconds(text), Some(1.67));
        assert_eq!(proc_stat_busy_seconds("intr 1 2\n"), None);
        assert_eq!(proc_stat_busy_seconds("cpu  1 x 3\n"), None);
    }

    #[test]
    fn stat_files_are_read_by_key() {
        let text = "cache 10\ntotal_inactive_file 300\ntotal_rss 5\n";
        assert_eq!(stat_value(text, "total_inactive_file"), Some(300));
        assert_eq!(stat_value(text, "inactive_file"), None);
    }

    #[test]
    fn this_node_has_a_usage() {
        let u = node_usage().unwrap();
        assert!(u.cpu_seconds > 0.0);
        assert!(u.memory_bytes > 0);
        assert!(u.timestamp_ms > 0);
    }
}
