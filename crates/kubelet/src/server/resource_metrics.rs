//! `GET /metrics/resource`: CPU and memory use of the node, its pods and their running
//! containers in Prometheus text format, with the metric names, labels and sample
//! timestamps of upstream's kubelet, so the API server's resource metrics API (and
//! metrics-server) can compute rates from two scrapes.

use super::{HttpError, State, full};
use crate::cri::api;
use crate::pod::runtime::{LABEL_CONTAINER_NAME, LABEL_POD_NAME, LABEL_POD_NAMESPACE};
use crate::stats::{self, Usage};
use hyper::header::{self, HeaderValue};
use hyper::{Response, body::Bytes};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;

/// One running container's reading.
#[derive(Clone, Debug, PartialEq)]
pub struct ContainerUsage {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    /// Seconds since the epoch the container was created.
    pub start_time: f64,
    pub usage: Usage,
}

/// `GET /metrics/resource`.
pub async fn serve(st: &State) -> Result<Response<super::Body>, HttpError> {
    let (containers, failed) = match running_container_usage(st).await {
        Ok(c) => (c, false),
        Err(e) => {
            tracing::debug!("resource metrics: {e}");
            (Vec::new(), true)
        }
    };
    let text = render(stats::node_usage(), &containers, failed);
    let mut r = Response::new(full(Bytes::from(text)));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(r)
}

async fn running_container_usage(st: &State) -> crate::Result<Vec<ContainerUsage>> {
    let running = api::ContainerFilter {
        state: Some(api::ContainerStateValue {
            state: api::ContainerState::ContainerRunning as i32,
        }),
        ..Default::default()
    };
    let containers = st.cri.list_containers(Some(running)).await?;
    let started: HashMap<&str, i64> = containers
        .iter()
        .map(|c| (c.id.as_str(), c.created_at))
        .collect();
    let stats = st.cri.list_container_stats().await?;
    Ok(stats
        .iter()
        .filter_map(|s| container_usage(s, &started))
        .collect())
}

/// The reading of one container, if it is running, belongs to a pod and has CPU and
/// memory figures.
fn container_usage(
    s: &api::ContainerStats,
    started: &HashMap<&str, i64>,
) -> Option<ContainerUsage> {
    let attrs = s.attributes.as_ref()?;
    let created_ns = *started.get(attrs.id.as_str())?;
    let label = |k: &str| attrs.labels.get(k).cloned();
    let cpu = s.cpu.as_ref()?;
    let memory = s.memory.as_ref()?;
    Some(ContainerUsage {
        namespace: label(LABEL_POD_NAMESPACE)?,
        pod: label(LABEL_POD_NAME)?,
        container: label(LABEL_CONTAINER_NAME)?,
        start_time: created_ns as f64 / 1e9,
        usage: Usage {
            cpu_seconds: cpu.usage_core_nano_seconds.as_ref()?.value as f64 / 1e9,
            memory_bytes: memory.working_set_bytes.as_ref()?.value,
            timestamp_ms: cpu.timestamp / 1_000_000,
        },
    })
}

const HELP: [(&str, &str, &str); 8] = [
    (
        "container_cpu_usage_seconds_total",
        "counter",
        "Cumulative cpu time consumed by the container in core-seconds",
    ),
    (
        "container_memory_working_set_bytes",
        "gauge",
        "Current working set of the container in bytes",
    ),
    (
        "container_start_time_seconds",
        "gauge",
        "Start time of the container since unix epoch in seconds",
    ),
    (
        "node_cpu_usage_seconds_total",
        "counter",
        "Cumulative cpu time consumed by the node in core-seconds",
    ),
    (
        "node_memory_working_set_bytes",
        "gauge",
        "Current working set of the node in bytes",
    ),
    (
        "pod_cpu_usage_seconds_total",
        "counter",
        "Cumulative cpu time consumed by the pod in core-seconds",
    ),
    (
        "pod_memory_working_set_bytes",
        "gauge",
        "Current working set of the pod in bytes",
    ),
    (
        "resource_scrape_error",
        "gauge",
        "1 if there was an error while getting container metrics, 0 otherwise",
    ),
];

/// Label values escaped as the text format wants (`\\`, `\"`, `\n`).
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The exposition text; families in upstream's (alphabetical) order.
pub fn render(node: Option<Usage>, containers: &[ContainerUsage], failed: bool) -> String {
    // Pods are summed from their containers, sorted for a stable output.
    let mut pods: BTreeMap<(&str, &str), Usage> = BTreeMap::new();
    for c in containers {
        let p = pods.entry((&c.namespace, &c.pod)).or_insert(Usage {
            cpu_seconds: 0.0,
            memory_bytes: 0,
            timestamp_ms: 0,
        });
        p.cpu_seconds += c.usage.cpu_seconds;
        p.memory_bytes += c.usage.memory_bytes;
        p.timestamp_ms = p.timestamp_ms.max(c.usage.timestamp_ms);
    }
    let mut seen = HashSet::new();
    let mut out = String::new();
    for (name, kind, help) in HELP {
        seen.insert(name);
        let _ = writeln!(out, "# HELP {name} [STABLE] {help}\n# TYPE {name} {kind}");
        match name {
            "container_cpu_usage_seconds_total" => {
                for c in containers {
                    sample(
                        &mut out,
                        name,
                        &container_labels(c),
                        c.usage.cpu_seconds,
                        c.usage.timestamp_ms,
                    );
                }
            }
            "container_memory_working_set_bytes" => {
                for c in containers {
                    let v = c.usage.memory_bytes as f64;
                    sample(
                        &mut out,
                        name,
                        &container_labels(c),
                        v,
                        c.usage.timestamp_ms,
                    );
                }
            }
            "container_start_time_seconds" => {
                for c in containers {
                    sample(
                        &mut out,
                        name,
                        &container_labels(c),
                        c.start_time,
                        c.usage.timestamp_ms,
                    );
                }
            }
            "node_cpu_usage_seconds_total" => {
                if let Some(n) = node {
                    sample(&mut out, name, "", n.cpu_seconds, n.timestamp_ms);
                }
            }
            "node_memory_working_set_bytes" => {
                if let Some(n) = node {
                    sample(&mut out, name, "", n.memory_bytes as f64, n.timestamp_ms);
                }
            }
            "pod_cpu_usage_seconds_total" => {
                for ((ns, pod), u) in &pods {
                    sample(
                        &mut out,
                        name,
                        &pod_labels(ns, pod),
                        u.cpu_seconds,
                        u.timestamp_ms,
                    );
                }
            }
            "pod_memory_working_set_bytes" => {
                for ((ns, pod), u) in &pods {
                    let v = u.memory_bytes as f64;
                    sample(&mut out, name, &pod_labels(ns, pod), v, u.timestamp_ms);
                }
            }
            _ => {
                let _ = writeln!(out, "{name} {}", u8::from(failed));
            }
        }
    }
    out
}

fn container_labels(c: &ContainerUsage) -> String {
    format!(
        "{{container=\"{}\",namespace=\"{}\",pod=\"{}\"}}",
        escape(&c.container),
        escape(&c.namespace),
        escape(&c.pod)
    )
}

fn pod_labels(namespace: &str, pod: &str) -> String {
    format!(
        "{{namespace=\"{}\",pod=\"{}\"}}",
        escape(namespace),
        escape(pod)
    )
}

fn sample(out: &mut String, name: &str, labels: &str, value: f64, timestamp_ms: i64) {
    let _ = writeln!(out, "{name}{labels} {value} {timestamp_ms}");
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn usage(cpu: f64, mem: u64, ts: i64) -> Usage {
        Usage {
            cpu_seconds: cpu,
            memory_bytes: mem,
            timestamp_ms: ts,
        }
    }

    fn container(pod: &str, name: &str, cpu: f64, mem: u64) -> ContainerUsage {
        ContainerUsage {
            namespace: "default".into(),
            pod: pod.into(),
            container: name.into(),
            start_time: 1700000000.5,
            usage: usage(cpu, mem, 1700000100000),
        }
    }

    #[test]
    fn renders_upstream_families_with_pod_sums() {
        let text = render(
            Some(usage(120.25, 4096, 1700000100123)),
            &[
                container("web", "app", 1.5, 1000),
                container("web", "side", 0.5, 24),
            ],
            false,
        );
        assert!(text.contains(
            "container_cpu_usage_seconds_total{container=\"app\",namespace=\"default\",pod=\"web\"} 1.5 1700000100000\n"
        ));
        assert!(text.contains(
            "pod_cpu_usage_seconds_total{namespace=\"default\",pod=\"web\"} 2 1700000100000\n"
        ));
        assert!(
            text.contains("pod_memory_working_set_bytes{namespace=\"default\",pod=\"web\"} 1024 ")
        );
        assert!(text.contains("node_cpu_usage_seconds_total 120.25 1700000100123\n"));
        assert!(text.contains("node_memory_working_set_bytes 4096 1700000100123\n"));
        assert!(text.contains("container_start_time_seconds{container=\"side\",namespace=\"default\",pod=\"web\"} 1700000000.5 "));
        assert!(text.contains("# TYPE node_cpu_usage_seconds_total counter\n"));
        assert!(text.ends_with("resource_scrape_error 0\n"));
    }

    #[test]
    fn a_failed_runtime_read_is_reported() {
        let text = render(None, &[], true);
        assert!(text.ends_with("resource_scrape_error 1\n"));
        assert!(!text.contains("\nnode_cpu_usage_seconds_total "));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn only_running_pod_containers_count() {
        let mut s = api::ContainerStats {
            attributes: Some(api::ContainerAttributes {
                id: "c1".into(),
                labels: [
                    (LABEL_POD_NAMESPACE, "default"),
                    (LABEL_POD_NAME, "web"),
                    (LABEL_CONTAINER_NAME, "app"),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
                ..Default::default()
            }),
            cpu: Some(api::CpuUsage {
                timestamp: 1_700_000_100_000_000_000,
                usage_core_nano_seconds: Some(api::UInt64Value {
                    value: 2_500_000_000,
                }),
                ..Default::default()
            }),
            memory: Some(api::MemoryUsage {
                working_set_bytes: Some(api::UInt64Value { value: 4096 }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let started = HashMap::from([("c1", 1_700_000_000_000_000_000i64)]);
        let c = container_usage(&s, &started).unwrap();
        assert_eq!(c.usage, usage(2.5, 4096, 1_700_000_100_000));
        assert_eq!(c.start_time, 1_700_000_000.0);
        assert!(
            container_usage(&s, &HashMap::new()).is_none(),
            "not running"
        );
        s.memory = None;
        assert!(container_usage(&s, &started).is_none());
    }
}
