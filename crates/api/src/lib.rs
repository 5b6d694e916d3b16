//! The resource model of r8s: which kinds exist and how each behaves.
//!
//! - [`catalog`]: every served resource (group, version, kind, scope, short names,
//!   categories, verbs, subresources).
//! - [`discovery`]: the legacy and aggregated discovery documents built from the catalog.
//! - [`table`]: `kubectl get` table columns and rows per kind.
//! - [`strategy`]: per-kind defaulting, validation and status split.
//! - [`openapi`]: the OpenAPI v3 (and v2) documents kubectl validates and explains with.
//! - [`selector`]: label and field selectors.
//! - [`cron`]: CronJob schedules (validation and next activation times).

/// The Kubernetes release whose API r8s implements (k8s-openapi feature v1_33): `/version`,
/// the OpenAPI documents and the components' User-Agents report it.
pub const KUBERNETES_VERSION: &str = "v1.33.0";

pub mod catalog;
pub mod cel;
pub mod conversion;
pub mod cron;
pub mod discovery;
pub mod duration;
pub mod fieldvalidation;
pub mod managedfields;
pub mod openapi;
pub mod patch;
pub mod protobuf;
pub mod quota;
pub mod resource_metrics;
pub mod selector;
pub mod strategy;
pub mod table;
