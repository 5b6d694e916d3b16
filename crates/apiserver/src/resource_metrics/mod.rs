//! The data behind the resource metrics API (`metrics.k8s.io/v1beta1`), which this server
//! serves itself instead of through an aggregated metrics-server: every `resolution` it
//! scrapes `/metrics/resource` of each Ready node's kubelet and keeps, per node, the CPU
//! rate and memory working set of the node and of each running container, computed from
//! the last two scrapes as metrics-server does. Nothing is stored in the datastore.

pub mod parse;
pub mod scrape;

use parse::{ContainerKey, Point, Scrape};
use std::collections::{HashMap, HashSet};
use std::sync::RwLock;

/// Usage over one window.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Usage {
    pub cpu_cores: f64,
    pub memory_bytes: u64,
    /// End of the window, ms since the epoch.
    pub timestamp_ms: i64,
    pub window_seconds: f64,
}

/// A pod's containers' usage (in the order the kubelet listed them, sorted by name).
#[derive(Clone, Debug, PartialEq)]
pub struct PodUsage {
    pub timestamp_ms: i64,
    pub window_seconds: f64,
    pub containers: Vec<(String, Usage)>,
}

/// `(namespace, pod)`.
type PodKey = (String, String);

/// What the last scrapes of one node gave.
#[derive(Debug, Default)]
struct NodeEntry {
    last: Scrape,
    node: Option<Usage>,
    pods: HashMap<PodKey, PodUsage>,
}

/// The latest usage of every node and pod, shared by the scraper and the handlers.
#[derive(Debug, Default)]
pub struct ResourceMetrics {
    nodes: RwLock<HashMap<String, NodeEntry>>,
}

impl ResourceMetrics {
    /// Takes in a new scrape of `node`, turning it into rates against the previous one.
    pub fn record(&self, node: &str, scrape: Scrape) {
        let mut nodes = self.nodes.write().unwrap_or_else(|p| p.into_inner());
        let entry = nodes.entry(node.to_string()).or_default();
        let first = entry.last == Scrape::default();
        entry.node = match (entry.last.node_cpu_seconds, scrape.node_cpu_seconds) {
            (Some(prev), Some(cur)) => usage(prev, cur, scrape.node_memory_bytes),
            _ => None,
        };
        entry.pods = pod_usage(&entry.last, &scrape, first);
        entry.last = scrape;
    }

    /// Forgets every node not in `keep` (deleted, or no longer Ready).
    pub fn retain(&self, keep: &HashSet<String>) {
        let mut nodes = self.nodes.write().unwrap_or_else(|p| p.into_inner());
        nodes.retain(|name, _| keep.contains(name));
    }

    /// Forgets one node (its kubelet could not be scraped).
    pub fn forget(&self, node: &str) {
        let mut nodes = self.nodes.write().unwrap_or_else(|p| p.into_inner());
        nodes.remove(node);
    }

    pub fn node(&self, name: &str) -> Option<Usage> {
        let nodes = self.nodes.read().unwrap_or_else(|p| p.into_inner());
        nodes.get(name).and_then(|n| n.node)
    }

    pub fn pod(&self, namespace: &str, name: &str) -> Option<PodUsage> {
        let nodes = self.nodes.read().unwrap_or_else(|p| p.into_inner());
        let key = (namespace.to_string(), name.to_string());
        nodes.values().find_map(|n| n.pods.get(&key).cloned())
    }
}

/// The rate between two cumulative CPU samples, with the memory of the later scrape.
fn usage(prev: Point, cur: Point, memory: Option<Point>) -> Option<Usage> {
    let window_ms = cur.timestamp_ms - prev.timestamp_ms;
    if window_ms <= 0 || cur.value < prev.value {
        return None;
    }
    let window_seconds = window_ms as f64 / 1000.0;
    Some(Usage {
        cpu_cores: (cur.value - prev.value) / window_seconds,
        memory_bytes: memory?.value.max(0.0) as u64,
        timestamp_ms: cur.timestamp_ms,
        window_seconds,
    })
}

/// Each pod whose running containers all have a usage. A container seen for the first
/// time that started after the previous scrape is measured from its start (zero CPU
/// then), as metrics-server does, so a new pod shows up after one scrape, not two; on a
/// node's first scrape nothing is known yet.
fn pod_usage(prev: &Scrape, cur: &Scrape, first: bool) -> HashMap<PodKey, PodUsage> {
    let prev_scrape_ms = prev.node_cpu_seconds.map(|p| p.timestamp_ms).unwrap_or(0);
    // None once one of the pod's containers has no usage.
    let mut by_pod: HashMap<PodKey, Option<Vec<(String, Usage)>>> = HashMap::new();
    for (key, c) in &cur.containers {
        let (ns, pod, name): &ContainerKey = key;
        let slot = by_pod
            .entry((ns.clone(), pod.clone()))
            .or_insert_with(|| Some(Vec::new()));
        let container_usage = c.cpu_seconds.and_then(|cur_cpu| {
            let before = prev
                .containers
                .get(key)
                .filter(|p| p.start_time == c.start_time);
            let start = match before.and_then(|p| p.cpu_seconds) {
                Some(p) => p,
                None if first => return None,
                None => {
                    let started_ms = (c.start_time? * 1000.0) as i64;
                    if started_ms < prev_scrape_ms {
                        return None;
                    }
                    Point {
                        value: 0.0,
                        timestamp_ms: started_ms,
                    }
                }
            };
            usage(start, cur_cpu, c.memory_bytes)
        });
        match (slot.as_mut(), container_usage) {
            (Some(list), Some(u)) => list.push((name.clone(), u)),
            // One container without a usage leaves the whole pod out.
            _ => *slot = None,
        }
    }
    by_pod
        .into_iter()
        .filter_map(|(key, containers)| {
            let mut containers = containers?;
            containers.sort_by(|a, b| a.0.cmp(&b.0));
            let timestamp_ms = containers.iter().map(|(_, u)| u.timestamp_ms).max()?;
            let window_seconds = containers
                .iter()
                .map(|(_, u)| u.window_seconds)
                .fold(0.0, f64::max);
            Some((
                key,
                PodUsage {
                    timestamp_ms,
                    window_seconds,
                    containers,
                },
            ))
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::parse::ContainerPoints;
    use super::*;

    fn pt(value: f64, timestamp_ms: i64) -> Option<Point> {
        Some(Point {
            value,
            timestamp_ms,
        })
    }

    fn scrape(node_cpu: f64, ts: i64, containers: &[(&str, &str, f64, f64)]) -> Scrape {
        Scrape {
            node_cpu_seconds: pt(node_cpu, ts),
            node_memory_bytes: pt(2048.0, ts),
            containers: containers
                .iter()
                .map(|(pod, name, cpu, start)| {
                    (
                        ("default".to_string(), pod.to_string(), name.to_string()),
                        ContainerPoints {
                            cpu_seconds: pt(*cpu, ts),
                            memory_bytes: pt(1024.0, ts),
                            start_time: Some(*start),
                        },
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn rates_come_from_two_scrapes() {
        let m = ResourceMetrics::default();
        m.record("n1", scrape(100.0, 10_000, &[("web", "app", 5.0, 1.0)]));
        assert_eq!(m.node("n1"), None, "one scrape gives no rate");
        assert_eq!(m.pod("default", "web"), None);
        m.record("n1", scrape(110.0, 20_000, &[("web", "app", 7.5, 1.0)]));
        let n = m.node("n1").unwrap();
        assert_eq!(
            (n.cpu_cores, n.memory_bytes, n.window_seconds),
            (1.0, 2048, 10.0)
        );
        let p = m.pod("default", "web").unwrap();
        assert_eq!(p.containers.len(), 1);
        assert_eq!(p.containers[0].1.cpu_cores, 0.25);
        assert_eq!(p.timestamp_ms, 20_000);
        assert_eq!(p.window_seconds, 10.0);
    }

    #[test]
    fn a_new_container_is_measured_from_its_start() {
        let m = ResourceMetrics::default();
        m.record("n1", scrape(100.0, 10_000, &[]));
        // Started at t=15s, used 2.5 s of CPU by t=20s.
        m.record("n1", scrape(110.0, 20_000, &[("web", "app", 2.5, 15.0)]));
        let p = m.pod("default", "web").unwrap();
        assert_eq!(p.containers[0].1.cpu_cores, 0.5);
        assert_eq!(p.window_seconds, 5.0);
    }

    #[test]
    fn a_restarted_or_incomplete_pod_is_left_out() {
        let m = ResourceMetrics::default();
        m.record("n1", scrape(100.0, 10_000, &[("web", "app", 5.0, 1.0)]));
        // Restarted before the previous scrape (start time changed, counter reset):
        // no usable baseline.
        m.record("n1", scrape(110.0, 20_000, &[("web", "app", 0.5, 2.0)]));
        assert_eq!(m.pod("default", "web"), None);
        m.record(
            "n1",
            scrape(
                120.0,
                30_000,
                &[("web", "app", 1.5, 2.0), ("web", "side", 1.0, 25.0)],
            ),
        );
        let p = m.pod("default", "web").unwrap();
        assert_eq!(
            p.containers
                .iter()
                .map(|c| c.0.as_str())
                .collect::<Vec<_>>(),
            ["app", "side"]
        );
        let mut s = scrape(130.0, 40_000, &[("web", "app", 2.5, 2.0)]);
        s.containers.insert(
            ("default".into(), "web".into(), "side".into()),
            ContainerPoints::default(),
        );
        m.record("n1", s);
        assert_eq!(m.pod("default", "web"), None, "a container without samples");
    }

    #[test]
    fn forgotten_nodes_take_their_pods_along() {
        let m = ResourceMetrics::default();
        m.record("n1", scrape(100.0, 10_000, &[("web", "app", 5.0, 1.0)]));
        m.record("n1", scrape(110.0, 20_000, &[("web", "app", 6.0, 1.0)]));
        assert!(m.pod("default", "web").is_some());
        m.retain(&HashSet::from(["n2".to_string()]));
        assert_eq!(m.pod("default", "web"), None);
        assert_eq!(m.node("n1"), None);
    }
}
