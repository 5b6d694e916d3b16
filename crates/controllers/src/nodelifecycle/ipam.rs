//! Pod CIDR allocation (upstream `pkg/controller/nodeipam`, range allocator): every node
//! without `spec.podCIDR` gets the lowest free `/node_cidr_mask_size` block of the
//! cluster CIDR; blocks already in use are learnt from the nodes at start-up and freed
//! when a node is deleted.

use super::SyncError;
use crate::Context;
use crate::events::{EventType, Recorder};
use crate::util::{Informer, InformerEvent, WorkQueue, is_not_found, run_workers};
use k8s_openapi::api::core::v1::Node;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const COMPONENT: &str = "cidrAllocator";

/// A malformed CIDR setting.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CidrError {
    #[error("invalid CIDR {0:?}")]
    Invalid(String),
    #[error("node CIDR mask size {node} must be in {cluster}..=32")]
    MaskSize { node: u8, cluster: u8 },
}

/// An IPv4 network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Cidr {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Ipv4Cidr {
    /// Parse `a.b.c.d/n` (host bits are cleared).
    pub fn parse(s: &str) -> Result<Self, CidrError> {
        let bad = || CidrError::Invalid(s.to_string());
        let (a, p) = s.split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = a.trim().parse().map_err(|_| bad())?;
        let prefix: u8 = p.trim().parse().map_err(|_| bad())?;
        if prefix > 32 {
            return Err(bad());
        }
        Ok(Ipv4Cidr {
            addr: Ipv4Addr::from(u32::from(addr) & mask(prefix)),
            prefix,
        })
    }
}

impl std::fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

/// Which sub-blocks of the cluster CIDR are taken.
#[derive(Debug)]
pub struct Allocator {
    cluster: Ipv4Cidr,
    node_prefix: u8,
    used: Vec<bool>,
}

impl Allocator {
    pub fn new(cluster: Ipv4Cidr, node_prefix: u8) -> Result<Self, CidrError> {
        if node_prefix < cluster.prefix || node_prefix > 32 || node_prefix - cluster.prefix > 24 {
            return Err(CidrError::MaskSize {
                node: node_prefix,
                cluster: cluster.prefix,
            });
        }
        Ok(Allocator {
            cluster,
            node_prefix,
            used: vec![false; 1usize << (node_prefix - cluster.prefix)],
        })
    }

    fn block(&self, i: usize) -> Ipv4Cidr {
        let step = 1u64 << (32 - u32::from(self.node_prefix));
        let base = u64::from(u32::from(self.cluster.addr)) + step * i as u64;
        Ipv4Cidr {
            addr: Ipv4Addr::from(base as u32),
            prefix: self.node_prefix,
        }
    }

    fn index_of(&self, cidr: &str) -> Option<usize> {
        let c = Ipv4Cidr::parse(cidr).ok()?;
        if c.prefix != self.node_prefix
            || u32::from(c.addr) & mask(self.cluster.prefix) != u32::from(self.cluster.addr)
        {
            return None;
        }
        let off = u32::from(c.addr) - u32::from(self.cluster.addr);
        Some((off >> (32 - u32::from(self.node_prefix))) as usize)
    }

    /// Mark `cidr` taken (ignored if outside the range).
    pub fn occupy(&mut self, cidr: &str) {
        if let Some(i) = self.index_of(cidr) {
            self.used[i] = true;
        }
    }

    /// Free `cidr`.
    pub fn release(&mut self, cidr: &str) {
        if let Some(i) = self.index_of(cidr) {
            self.used[i] = false;
        }
    }

    /// Take the lowest free block.
    pub fn allocate(&mut self) -> Option<Ipv4Cidr> {
        let i = self.used.iter().position(|u| !u)?;
        self.used[i] = true;
        Some(self.block(i))
    }
}

fn pod_cidrs(node: &Node) -> Vec<String> {
    let Some(spec) = node.spec.as_ref() else {
        return Vec::new();
    };
    match (&spec.pod_cidrs, &spec.pod_cidr) {
        (Some(list), _) if !list.is_empty() => list.clone(),
        (_, Some(one)) if !one.is_empty() => vec![one.clone()],
        _ => Vec::new(),
    }
}

struct Ipam {
    client: kube::Client,
    nodes: Informer<Node>,
    alloc: Mutex<Allocator>,
    recorder: Recorder,
}

/// Run the allocator until the process ends.
pub async fn run(ctx: Context, cluster: Ipv4Cidr, node_prefix: u8) -> anyhow::Result<()> {
    let alloc = Allocator::new(cluster, node_prefix)?;
    let queue: WorkQueue<String> = WorkQueue::new();
    let q = queue.clone();
    // Frees go through the allocator once it exists (after the initial list).
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Vec<String>>();
    let nodes = ctx.informers.get::<Node>();
    // The handler stays registered while this future lives.
    let _node_events = nodes.add_handler(move |ev| match ev {
        InformerEvent::Apply { new, .. } => {
            if pod_cidrs(&new).is_empty() {
                q.add(new.metadata.name.clone().unwrap_or_default());
            }
        }
        InformerEvent::Delete(old) => {
            let _ = tx.send(pod_cidrs(&old));
        }
    });
    nodes.wait_synced().await;
    let ipam = Arc::new(Ipam {
        client: ctx.client.clone(),
        nodes: nodes.clone(),
        alloc: Mutex::new(alloc),
        recorder: ctx.recorder(COMPONENT),
    });
    {
        let mut a = ipam.lock_alloc();
        for n in nodes.store().state() {
            for c in pod_cidrs(&n) {
                a.occupy(&c);
            }
        }
    }
    let freer = ipam.clone();
    tokio::spawn(async move {
        while let Some(freed) = rx.recv().await {
            let mut a = freer.lock_alloc();
            for c in &freed {
                a.release(c);
            }
        }
    });
    run_workers(queue, 1, move |name: String| {
        let i = ipam.clone();
        async move { i.sync(&name).await }
    })
    .await;
    Ok(())
}

impl Ipam {
    fn lock_alloc(&self) -> std::sync::MutexGuard<'_, Allocator> {
        self.alloc.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn sync(&self, name: &str) -> Result<Option<Duration>, SyncError> {
        let Some(node) = self.nodes.get(None, name) else {
            return Ok(None);
        };
        if !pod_cidrs(&node).is_empty() {
            return Ok(None);
        }
        let api: Api<Node> = Api::all(self.client.clone());
        // The cache may lag behind our own earlier patch: check the live object.
        match api.get(name).await {
            Ok(live) if !pod_cidrs(&live).is_empty() => return Ok(None),
            Ok(_) => {}
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        let Some(cidr) = self.lock_alloc().allocate() else {
            self.recorder.publish_for(
                node.as_ref(),
                EventType::Normal,
                "CIDRNotAvailable",
                &format!("Node {name} status is now: CIDRNotAvailable"),
            );
            return Ok(Some(Duration::from_secs(30)));
        };
        let cidr = cidr.to_string();
        let patch = json!({"spec": {"podCIDR": cidr, "podCIDRs": [cidr]}});
        match api
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {
                tracing::info!(node = name, cidr, "allocated pod CIDR");
                Ok(None)
            }
            Err(e) => {
                self.lock_alloc().release(&cidr);
                if is_not_found(&e) {
                    return Ok(None);
                }
                self.recorder.publish_for(
                    node.as_ref(),
                    EventType::Warning,
                    "CIDRAssignmentFailed",
                    &format!("Node {name} status is now: CIDRAssignmentFailed"),
                );
                Err(e.into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display() {
        let c = Ipv4Cidr::parse("10.42.7.9/16").expect("cidr");
        assert_eq!(c.to_string(), "10.42.0.0/16");
        assert!(Ipv4Cidr::parse("10.42.0.0").is_err());
        assert!(Ipv4Cidr::parse("10.42.0.0/33").is_err());
    }

    #[test]
    fn allocates_lowest_free_and_reuses() {
        let mut a = Allocator::new(Ipv4Cidr::parse("10.42.0.0/16").expect("cidr"), 24).expect("a");
        a.occupy("10.42.0.0/24");
        a.occupy("192.168.0.0/24");
        assert_eq!(
            a.allocate().map(|c| c.to_string()).as_deref(),
            Some("10.42.1.0/24")
        );
        assert_eq!(
            a.allocate().map(|c| c.to_string()).as_deref(),
            Some("10.42.2.0/24")
        );
        a.release("10.42.0.0/24");
        assert_eq!(
            a.allocate().map(|c| c.to_string()).as_deref(),
            Some("10.42.0.0/24")
        );
    }

    #[test]
    fn exhausts() {
        let mut a = Allocator::new(Ipv4Cidr::parse("10.0.0.0/23").expect("cidr"), 24).expect("a");
        assert!(a.allocate().is_some());
        assert!(a.allocate().is_some());
        assert!(a.allocate().is_none());
        assert!(Allocator::new(Ipv4Cidr::parse("10.0.0.0/24").expect("c"), 16).is_err());
    }
}
