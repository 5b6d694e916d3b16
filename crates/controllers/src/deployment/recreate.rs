//! The Recreate strategy (upstream `recreate.go`): scale every old ReplicaSet to zero,
//! wait until none of their pods is left, then scale the new one up.

use super::plan::active;
use super::util::{actual_replica_count, d_replicas};
use super::{Controller, SyncError};
use crate::replicaset::claim::controller_of;
use crate::replicaset::pods::phase;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use std::collections::HashSet;
use std::time::Duration;

impl Controller {
    /// One step of a Recreate rollout.
    pub(super) async fn rollout_recreate(
        &self,
        d: &mut Deployment,
        rs_list: &mut [ReplicaSet],
    ) -> Result<Option<Duration>, SyncError> {
        let (mut new_rs, mut old) = self.all_rss_and_sync_revision(d, rs_list, false).await?;
        // Scale down old ReplicaSets.
        let mut scaled_down = false;
        let active_old: Vec<ReplicaSet> = active(old.iter()).into_iter().cloned().collect();
        for rs in &active_old {
            let (scaled, updated) = self.scale_rs_and_record(rs, 0, d).await?;
            scaled_down |= scaled;
            if let Some(slot) = old
                .iter_mut()
                .find(|o| o.metadata.uid == updated.metadata.uid)
            {
                *slot = updated;
            }
        }
        if scaled_down || self.old_pods_running(new_rs.as_ref(), &old, rs_list) {
            let all: Vec<&ReplicaSet> = old.iter().chain(new_rs.as_ref()).collect();
            return self.sync_rollout_status(&all, new_rs.as_ref(), d).await;
        }
        if new_rs.is_none() {
            let (n, o) = self.all_rss_and_sync_revision(d, rs_list, true).await?;
            new_rs = n;
            old = o;
        }
        if let Some(rs) = new_rs.as_mut() {
            let (_, updated) = self.scale_rs_and_record(rs, d_replicas(d), d).await?;
            *rs = updated;
        }
        if super::conditions::deployment_complete(d, &d.status.clone().unwrap_or_default()) {
            self.cleanup(&old, d).await?;
        }
        let all: Vec<&ReplicaSet> = old.iter().chain(new_rs.as_ref()).collect();
        self.sync_rollout_status(&all, new_rs.as_ref(), d).await
    }

    /// Whether any pod of an old ReplicaSet may still be running (terminating pods count:
    /// Recreate promises old and new pods never overlap).
    fn old_pods_running(
        &self,
        new_rs: Option<&ReplicaSet>,
        old: &[ReplicaSet],
        rs_list: &[ReplicaSet],
    ) -> bool {
        if actual_replica_count(&old.iter().collect::<Vec<_>>()) > 0 {
            return true;
        }
        let new_uid = new_rs.and_then(|rs| rs.metadata.uid.clone());
        let owners: HashSet<String> = rs_list
            .iter()
            .filter_map(|rs| rs.metadata.uid.clone())
            .filter(|u| Some(u) != new_uid.as_ref())
            .collect();
        let ns = new_rs
            .or(old.first())
            .and_then(|rs| rs.metadata.namespace.clone());
        self.pods.store().state().into_iter().any(|p| {
            p.metadata.namespace == ns
                && controller_of(&p.metadata).is_some_and(|r| owners.contains(&r.uid))
                && !matches!(phase(&p), "Failed" | "Succeeded")
        })
    }
}
