//! Resource discovery shared by the namespace controller and the garbage collector: every
//! served resource at its group's preferred version, like client-go's
//! `ServerPreferredResources`.

use kube::discovery::{ApiCapabilities, ApiResource, Discovery};

/// A served resource and what it supports.
pub type Discovered = (ApiResource, ApiCapabilities);

/// Every resource at its group's preferred version (aggregated discovery, falling back to
/// the per-group legacy documents).
pub async fn preferred_resources(client: &kube::Client) -> Result<Vec<Discovered>, kube::Error> {
    let discovery = match Discovery::new(client.clone()).run_aggregated().await {
        Ok(d) => d,
        Err(_) => Discovery::new(client.clone()).run().await?,
    };
    Ok(discovery
        .groups()
        .flat_map(|g| g.recommended_resources())
        .collect())
}

/// Whether `caps` lists every verb in `verbs`.
pub fn supports_all(caps: &ApiCapabilities, verbs: &[&str]) -> bool {
    verbs.iter().all(|v| caps.supports_operation(v))
}
