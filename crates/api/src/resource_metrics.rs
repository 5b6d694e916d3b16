//! The resource metrics API (`metrics.k8s.io/v1beta1`), as metrics-server serves it:
//! the CPU and memory a node or a pod's containers used over the last scrape window.
//! k8s-openapi does not model these kinds, so they are declared here, with upstream's
//! definition names, for the OpenAPI documents (`kubectl explain podmetrics`) and for
//! the API server's responses.

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const GROUP: &str = "metrics.k8s.io";
pub const VERSION: &str = "v1beta1";
pub const API_VERSION: &str = "metrics.k8s.io/v1beta1";

/// NodeMetrics sets resource usage metrics of a node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "io.k8s.metrics.pkg.apis.metrics.v1beta1.NodeMetrics")]
pub struct NodeMetrics {
    /// APIVersion defines the versioned schema of this representation of an object.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Kind is a string value representing the REST resource this object represents.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Standard object's metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The following fields define time interval from which metrics were collected from
    /// the interval [Timestamp-Window, Timestamp].
    pub timestamp: Time,
    /// Length of the interval the usage was measured over (a duration such as `15.2s`).
    pub window: String,
    /// The memory usage is the memory working set.
    pub usage: BTreeMap<String, Quantity>,
}

/// PodMetrics sets resource usage metrics of a pod.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "io.k8s.metrics.pkg.apis.metrics.v1beta1.PodMetrics")]
pub struct PodMetrics {
    /// APIVersion defines the versioned schema of this representation of an object.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Kind is a string value representing the REST resource this object represents.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Standard object's metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The following fields define time interval from which metrics were collected from
    /// the interval [Timestamp-Window, Timestamp].
    pub timestamp: Time,
    /// Length of the interval the usage was measured over (a duration such as `15.2s`).
    pub window: String,
    /// Metrics for all containers are collected within the same time window.
    pub containers: Vec<ContainerMetrics>,
}

/// ContainerMetrics sets resource usage metrics of a container.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "io.k8s.metrics.pkg.apis.metrics.v1beta1.ContainerMetrics")]
pub struct ContainerMetrics {
    /// Container name corresponding to the one from pod.spec.containers.
    pub name: String,
    /// The memory usage is the memory working set.
    pub usage: BTreeMap<String, Quantity>,
}

impl k8s_openapi::Resource for NodeMetrics {
    const API_VERSION: &'static str = API_VERSION;
    const GROUP: &'static str = GROUP;
    const KIND: &'static str = "NodeMetrics";
    const VERSION: &'static str = VERSION;
    const URL_PATH_SEGMENT: &'static str = "nodes";
    type Scope = k8s_openapi::ClusterResourceScope;
}

impl k8s_openapi::Resource for PodMetrics {
    const API_VERSION: &'static str = API_VERSION;
    const GROUP: &'static str = GROUP;
    const KIND: &'static str = "PodMetrics";
    const VERSION: &'static str = VERSION;
    const URL_PATH_SEGMENT: &'static str = "pods";
    type Scope = k8s_openapi::NamespaceResourceScope;
}

/// CPU in cores as a canonical quantity (`250m`, `1`, `1234n`), as metrics-server
/// reports nanocores.
pub fn cpu_quantity(cores: f64) -> Quantity {
    let nanos = (cores.max(0.0) * 1e9).round() as u64;
    Quantity(if nanos == 0 {
        "0".into()
    } else if nanos.is_multiple_of(1_000_000_000) {
        (nanos / 1_000_000_000).to_string()
    } else if nanos.is_multiple_of(1_000_000) {
        format!("{}m", nanos / 1_000_000)
    } else if nanos.is_multiple_of(1_000) {
        format!("{}u", nanos / 1_000)
    } else {
        format!("{nanos}n")
    })
}

/// Bytes as a canonical binary-SI quantity (`12345Ki`, `2Mi`, `1000`).
pub fn memory_quantity(bytes: u64) -> Quantity {
    const SUFFIXES: [&str; 6] = ["Ei", "Pi", "Ti", "Gi", "Mi", "Ki"];
    for (i, suffix) in SUFFIXES.iter().enumerate() {
        let unit = 1u64 << (10 * (SUFFIXES.len() - i));
        if bytes != 0 && bytes.is_multiple_of(unit) {
            return Quantity(format!("{}{suffix}", bytes / unit));
        }
    }
    Quantity(bytes.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_are_canonical() {
        assert_eq!(cpu_quantity(0.25).0, "250m");
        assert_eq!(cpu_quantity(2.0).0, "2");
        assert_eq!(cpu_quantity(0.000_001_234).0, "1234n");
        assert_eq!(cpu_quantity(0.0).0, "0");
        assert_eq!(cpu_quantity(-1.0).0, "0");
        assert_eq!(memory_quantity(4096).0, "4Ki");
        assert_eq!(memory_quantity(3 << 20).0, "3Mi");
        assert_eq!(memory_quantity(1000).0, "1000");
        assert_eq!(memory_quantity(0).0, "0");
    }
}
