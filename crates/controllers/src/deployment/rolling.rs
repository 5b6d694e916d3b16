//! The RollingUpdate strategy (upstream `rolling.go`): scale the new ReplicaSet up within
//! maxSurge, and old ones down without dropping below `replicas - maxUnavailable`
//! available pods.

use super::plan::{active, new_rs_new_replicas};
use super::util::{
    available_replica_count, by_creation, d_replicas, max_unavailable, replica_count, rs_available,
    rs_replicas,
};
use super::{Controller, SyncError};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use std::time::Duration;

/// Available pods of an old ReplicaSet as far as scale-down decisions go. Its status can
/// lag a scale-down it was just given (the pods being deleted still counted); never
/// counting more than `spec.replicas` keeps such a stale count from licensing a second
/// scale-down below the availability floor.
fn trusted_available(rs: &ReplicaSet) -> i32 {
    rs_available(rs).min(rs_replicas(rs))
}

impl Controller {
    /// One step of a rolling update.
    pub(super) async fn rollout_rolling(
        &self,
        d: &mut Deployment,
        rs_list: &mut [ReplicaSet],
    ) -> Result<Option<Duration>, SyncError> {
        let (new_rs, mut old) = self.all_rss_and_sync_revision(d, rs_list, true).await?;
        let Some(mut new_rs) = new_rs else {
            return Err(SyncError::Invalid("no new replica set".into()));
        };
        // Scale up, if we can.
        if self.reconcile_new(&old, &mut new_rs, d).await? {
            let all: Vec<&ReplicaSet> = old.iter().chain(Some(&new_rs)).collect();
            return self.sync_rollout_status(&all, Some(&new_rs), d).await;
        }
        // Scale down, if we can.
        if self.reconcile_old(&mut old, &new_rs, d).await? {
            let all: Vec<&ReplicaSet> = old.iter().chain(Some(&new_rs)).collect();
            return self.sync_rollout_status(&all, Some(&new_rs), d).await;
        }
        let all: Vec<&ReplicaSet> = old.iter().chain(Some(&new_rs)).collect();
        if super::conditions::deployment_complete(d, &d.status.clone().unwrap_or_default()) {
            self.cleanup(&old, d).await?;
        }
        self.sync_rollout_status(&all, Some(&new_rs), d).await
    }

    async fn reconcile_new(
        &self,
        old: &[ReplicaSet],
        new_rs: &mut ReplicaSet,
        d: &Deployment,
    ) -> Result<bool, SyncError> {
        let want = d_replicas(d);
        let cur = rs_replicas(new_rs);
        if cur == want {
            return Ok(false);
        }
        let target = if cur > want {
            want
        } else {
            let all: Vec<&ReplicaSet> = old.iter().chain(Some(&*new_rs)).collect();
            new_rs_new_replicas(d, &all, new_rs)
        };
        let (scaled, updated) = self.scale_rs_and_record(new_rs, target, d).await?;
        *new_rs = updated;
        Ok(scaled)
    }

    async fn reconcile_old(
        &self,
        old: &mut [ReplicaSet],
        new_rs: &ReplicaSet,
        d: &Deployment,
    ) -> Result<bool, SyncError> {
        let old_count = replica_count(&active(old.iter()));
        if old_count == 0 {
            return Ok(false);
        }
        let all_count = replica_count(&old.iter().chain(Some(new_rs)).collect::<Vec<_>>());
        let min_available = d_replicas(d) - max_unavailable(d);
        let new_unavailable = rs_replicas(new_rs) - rs_available(new_rs);
        // Room to scale down: surge already created, minus what the new ReplicaSet has not
        // made available yet (so its unavailable pods never license removing old ones).
        let max_scaled_down = all_count - min_available - new_unavailable;
        if max_scaled_down <= 0 {
            return Ok(false);
        }
        let cleaned = self.cleanup_unhealthy(old, d, max_scaled_down).await?;
        let scaled = self.scale_down_old(old, new_rs, d).await?;
        Ok(cleaned + scaled > 0)
    }

    /// Scale down old ReplicaSets' unavailable pods first: removing them costs nothing.
    async fn cleanup_unhealthy(
        &self,
        old: &mut [ReplicaSet],
        d: &Deployment,
        max: i32,
    ) -> Result<i32, SyncError> {
        old.sort_by(by_creation);
        let mut total = 0;
        for rs in old.iter_mut() {
            if total >= max {
                break;
            }
            let replicas = rs_replicas(rs);
            let unhealthy = replicas - trusted_available(rs);
            if replicas == 0 || unhealthy <= 0 {
                continue;
            }
            let down = (max - total).min(unhealthy);
            let (_, updated) = self.scale_rs_and_record(rs, replicas - down, d).await?;
            *rs = updated;
            total += down;
        }
        Ok(total)
    }

    /// Scale old ReplicaSets down by as much as availability above the floor allows.
    async fn scale_down_old(
        &self,
        old: &mut [ReplicaSet],
        new_rs: &ReplicaSet,
        d: &Deployment,
    ) -> Result<i32, SyncError> {
        let min_available = d_replicas(d) - max_unavailable(d);
        let available =
            old.iter().map(trusted_available).sum::<i32>() + available_replica_count(&[new_rs]);
        if available <= min_available {
            return Ok(0);
        }
        let budget = available - min_available;
        old.sort_by(by_creation);
        let mut total = 0;
        for rs in old.iter_mut() {
            if total >= budget {
                break;
            }
            let replicas = rs_replicas(rs);
            if replicas == 0 {
                continue;
            }
            let down = replicas.min(budget - total);
            let (_, updated) = self.scale_rs_and_record(rs, replicas - down, d).await?;
            *rs = updated;
            total += down;
        }
        Ok(total)
    }
}
