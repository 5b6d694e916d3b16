//! Reading a kubelet's `/metrics/resource` answer (Prometheus text format): the node's
//! and each container's cumulative CPU seconds and memory working set, with the
//! timestamps the kubelet took them at. Families this server does not use are skipped,
//! and so is any line it cannot read.

use std::collections::HashMap;

/// One sample: a value and when the kubelet read it (ms since the epoch; 0 if unstated).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    pub value: f64,
    pub timestamp_ms: i64,
}

/// A container's samples.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ContainerPoints {
    pub cpu_seconds: Option<Point>,
    pub memory_bytes: Option<Point>,
    /// Seconds since the epoch (tells a restarted container from the one before it).
    pub start_time: Option<f64>,
}

/// `(namespace, pod, container)`.
pub type ContainerKey = (String, String, String);

/// Everything one scrape of one kubelet said.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Scrape {
    pub node_cpu_seconds: Option<Point>,
    pub node_memory_bytes: Option<Point>,
    pub containers: HashMap<ContainerKey, ContainerPoints>,
}

/// Parse the exposition text.
pub fn parse(text: &str) -> Scrape {
    let mut out = Scrape::default();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((name, labels, point)) = sample(line) else {
            continue;
        };
        match name {
            "node_cpu_usage_seconds_total" => out.node_cpu_seconds = Some(point),
            "node_memory_working_set_bytes" => out.node_memory_bytes = Some(point),
            "container_cpu_usage_seconds_total"
            | "container_memory_working_set_bytes"
            | "container_start_time_seconds" => {
                let Some(key) = container_key(&labels) else {
                    continue;
                };
                let c = out.containers.entry(key).or_default();
                match name {
                    "container_cpu_usage_seconds_total" => c.cpu_seconds = Some(point),
                    "container_memory_working_set_bytes" => c.memory_bytes = Some(point),
                    _ => c.start_time = Some(point.value),
                }
            }
            _ => {}
        }
    }
    out
}

fn container_key(labels: &HashMap<String, String>) -> Option<ContainerKey> {
    let get = |k: &str| labels.get(k).filter(|v| !v.is_empty()).cloned();
    Some((get("namespace")?, get("pod")?, get("container")?))
}

/// `name{labels} value [timestamp]`.
fn sample(line: &str) -> Option<(&str, HashMap<String, String>, Point)> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_ascii_whitespace())
        .unwrap_or(line.len());
    let name = &line[..name_end];
    let mut rest = &line[name_end..];
    let labels = if let Some(body) = rest.strip_prefix('{') {
        let (labels, after) = label_set(body)?;
        rest = after;
        labels
    } else {
        HashMap::new()
    };
    let mut fields = rest.split_whitespace();
    let value = number(fields.next()?)?;
    let timestamp_ms = match fields.next() {
        Some(t) => t.parse().ok()?,
        None => 0,
    };
    Some((
        name,
        labels,
        Point {
            value,
            timestamp_ms,
        },
    ))
}

/// Prometheus numbers, including `+Inf`, `-Inf` and `NaN` (which are no use here).
fn number(s: &str) -> Option<f64> {
    s.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// The labels up to the closing `}` and what follows it.
fn label_set(body: &str) -> Option<(HashMap<String, String>, &str)> {
    let mut labels = HashMap::new();
    let mut rest = body;
    loop {
        rest = rest.trim_start_matches([' ', ',']);
        if let Some(after) = rest.strip_prefix('}') {
            return Some((labels, after));
        }
        let eq = rest.find('=')?;
        let key = rest[..eq].trim().to_string();
        let (value, after) = quoted(rest[eq + 1..].trim_start())?;
        labels.insert(key, value);
        rest = after;
    }
}

/// A `"…"` string with `\\`, `\"` and `\n` escapes, and what follows it.
fn quoted(s: &str) -> Option<(String, &str)> {
    let body = s.strip_prefix('"')?;
    let mut out = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, &body[i + 1..])),
            '\\' => match chars.next()?.1 {
                'n' => out.push('\n'),
                other => out.push(other),
            },
            c => out.push(c),
        }
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP container_cpu_usage_seconds_total [STABLE] Cumulative cpu time
# TYPE container_cpu_usage_seconds_total counter
container_cpu_usage_seconds_total{container="app",namespace="default",pod="web-1"} 12.5 1700000000123
container_memory_working_set_bytes{container="app",namespace="default",pod="web-1"} 4.096e+06 1700000000123
container_start_time_seconds{container="app",namespace="default",pod="web-1"} 1.7e+09 1700000000123
container_cpu_usage_seconds_total{container="odd \"one\"",namespace="default",pod="web-1"} 1 1700000000123
node_cpu_usage_seconds_total 1234.5 1700000000000
node_memory_working_set_bytes 8e+08 1700000000000
pod_cpu_usage_seconds_total{namespace="default",pod="web-1"} 13.5 1700000000123
resource_scrape_error 0
"#;

    #[test]
    fn reads_node_and_container_samples() {
        let s = parse(TEXT);
        assert_eq!(
            s.node_cpu_seconds,
            Some(Point {
                value: 1234.5,
                timestamp_ms: 1700000000000
            })
        );
        assert_eq!(s.node_memory_bytes.unwrap().value, 8e8);
        let key = ("default".into(), "web-1".into(), "app".into());
        let c = &s.containers[&key];
        assert_eq!(c.cpu_seconds.unwrap().value, 12.5);
        assert_eq!(c.memory_bytes.unwrap().value, 4_096_000.0);
        assert_eq!(c.start_time, Some(1.7e9));
        let odd = ("default".into(), "web-1".into(), "odd \"one\"".into());
        assert!(s.containers.contains_key(&odd));
        assert_eq!(s.containers.len(), 2);
    }

    #[test]
    fn junk_lines_are_skipped() {
        let s = parse(
            "node_cpu_usage_seconds_total\nnode_memory_working_set_bytes NaN 1\ncontainer_cpu_usage_seconds_total{pod=\"x\" 1\ncontainer_cpu_usage_seconds_total{pod=\"x\"} 1\nnode_cpu_usage_seconds_total 5\n",
        );
        assert_eq!(
            s.node_cpu_seconds,
            Some(Point {
                value: 5.0,
                timestamp_ms: 0
            })
        );
        assert_eq!(s.node_memory_bytes, None);
        assert!(s.containers.is_empty());
    }
}
