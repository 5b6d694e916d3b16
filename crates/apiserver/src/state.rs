//! Shared state of the running API server.

use crate::metrics::Metrics;
use crate::registry::Registry;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// Everything handlers need; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub registry: Registry,
    pub metrics: Arc<Metrics>,
    /// Bearer tokens accepted besides client certificates (the join token).
    pub token: Arc<String>,
    /// `host:port` clients reach this server at (for discovery).
    pub server_address: Arc<String>,
    /// Set once bootstrap (default namespaces, `kubernetes` Service) has completed.
    pub ready: Arc<AtomicBool>,
    /// Service-account token signing and validation.
    pub tokens: Arc<crate::auth::serviceaccount::TokenIssuer>,
    /// The service-account issuer's OIDC configuration and key set, rendered at start.
    pub issuer_discovery: Arc<crate::auth::issuer_discovery::IssuerDiscovery>,
    /// RBAC decisions over a watched cache of the policy.
    pub authz: crate::authz::Authorizer,
    /// TLS client for kubelets (cluster-CA client certificate, verifies their serving
    /// certificates): logs, exec, attach, port-forward and node proxy.
    pub kubelet_tls: Arc<rustls::ClientConfig>,
    /// The latest node and pod usage scraped from kubelets (the resource metrics API).
    pub resource_metrics: Arc<crate::resource_metrics::ResourceMetrics>,
}
