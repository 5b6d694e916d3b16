//! DaemonSet history (upstream `update.go` constructHistory/cleanupHistory): one
//! ControllerRevision per distinct pod template, named `<ds>-<hash>` and labelled with the
//! hash daemon pods carry; the revision matching the current template is renumbered to be
//! the newest (so a rollback re-uses its pods' hash), duplicates are folded, and old unused
//! revisions beyond `revisionHistoryLimit` are deleted.

use super::{Controller, REVISION_HASH_LABEL, selector};
use crate::history::{self, compute_template_hash, template_patch};
use crate::util::controller_ref::{self, Claimer};
use crate::util::error::{Error, Result, is_already_exists};
use crate::util::podutil;
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::api::{Patch, PatchParams, PostParams};
use kube::core::SelectorExt;
use kube::{Api, ResourceExt};
use serde_json::json;
use std::collections::HashSet;
use std::sync::Arc;

/// Whether `rev` records the DaemonSet's current template.
pub fn matches(ds: &DaemonSet, rev: &ControllerRevision) -> Result<bool> {
    let template = ds
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let patch = template_patch(&template)?;
    Ok(rev.data.as_ref().map(|d| &d.0) == Some(&patch))
}

impl Controller {
    fn revision_api(&self, ds: &DaemonSet) -> Api<ControllerRevision> {
        Api::namespaced(self.client.clone(), &ds.namespace().unwrap_or_default())
    }

    /// The revision of the current template (created or renumbered as needed) and the others.
    pub(super) async fn construct_history(
        &self,
        ds: &DaemonSet,
    ) -> Result<(ControllerRevision, Vec<ControllerRevision>)> {
        let api = self.revision_api(ds);
        let mut current = Vec::new();
        let mut old = Vec::new();
        for rev in self.controlled_histories(ds).await? {
            let mut rev = (*rev).clone();
            // Older revisions may lack the hash label: their name is unique, use it.
            if !rev.labels().contains_key(REVISION_HASH_LABEL) {
                let name = rev.name_any();
                let patch = json!({"metadata": {"labels": {REVISION_HASH_LABEL: name}}});
                rev = api
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map_err(|e| Error::api(format!("labelling revision {name}"), e))?;
            }
            if matches(ds, &rev)? {
                current.push(rev);
            } else {
                old.push(rev);
            }
        }
        let next = old.iter().map(|r| r.revision).max().unwrap_or(0) + 1;
        let cur = if current.is_empty() {
            self.snapshot(ds, next).await?
        } else {
            let cur = self.dedup_current(ds, current).await?;
            if cur.revision < next {
                history::update_revision_number(&api, &cur, next).await?
            } else {
                cur
            }
        };
        Ok((cur, old))
    }

    /// Revisions controlled by the DaemonSet, adopting matching orphans and releasing
    /// revisions that stopped matching.
    async fn controlled_histories(&self, ds: &DaemonSet) -> Result<Vec<Arc<ControllerRevision>>> {
        let Some(sel) = selector(ds) else {
            return Ok(Vec::new());
        };
        let ns = ds.namespace().unwrap_or_default();
        let candidates: Vec<Arc<ControllerRevision>> = self
            .revisions
            .state()
            .into_iter()
            .filter(|r| r.namespace().as_deref() == Some(ns.as_str()))
            .collect();
        let owner = podutil::controller_ref(ds);
        let claimer = Claimer {
            owner: &owner,
            namespace: &ns,
            deleting: ds.metadata.deletion_timestamp.is_some(),
        };
        controller_ref::claim(
            &self.revision_api(ds),
            &claimer,
            candidates,
            |r: &ControllerRevision| sel.matches(r.labels()),
            || self.can_adopt(ds),
        )
        .await
    }

    /// Keep the newest of several revisions equal to the current template: relabel pods of
    /// the others with its hash, then delete them.
    async fn dedup_current(
        &self,
        ds: &DaemonSet,
        mut current: Vec<ControllerRevision>,
    ) -> Result<ControllerRevision> {
        if current.len() == 1 {
            return Ok(current.remove(0));
        }
        current.sort_by_key(|r| r.revision);
        let Some(keep) = current.pop() else {
            return Err(Error::Invalid("no current revision".into()));
        };
        let keep_hash = keep
            .labels()
            .get(REVISION_HASH_LABEL)
            .cloned()
            .unwrap_or_default();
        let ns = ds.namespace().unwrap_or_default();
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        for pod in self.daemon_pods(ds).await? {
            if pod.labels().get(REVISION_HASH_LABEL) != Some(&keep_hash) {
                let patch = json!({"metadata": {"labels": {REVISION_HASH_LABEL: keep_hash}}});
                pods.patch(
                    &pod.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await
                .map_err(|e| Error::api(format!("relabelling pod {}", pod.name_any()), e))?;
            }
        }
        let api = self.revision_api(ds);
        for dup in &current {
            history::delete_revision(&api, dup).await?;
        }
        Ok(keep)
    }

    /// Record the current template as revision `revision`. A name taken by a different
    /// template bumps `status.collisionCount` and fails, so the next sync uses a new name.
    async fn snapshot(&self, ds: &DaemonSet, revision: i64) -> Result<ControllerRevision> {
        let template = ds
            .spec
            .as_ref()
            .map(|s| s.template.clone())
            .unwrap_or_default();
        let collision = ds.status.as_ref().and_then(|s| s.collision_count);
        let hash = compute_template_hash(&template, collision);
        let name = format!("{}-{hash}", ds.name_any());
        let mut labels = template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();
        labels.insert(REVISION_HASH_LABEL.into(), hash);
        let rev = ControllerRevision {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: ds.namespace(),
                labels: Some(labels),
                annotations: ds.metadata.annotations.clone(),
                owner_references: Some(vec![podutil::controller_ref(ds)]),
                ..Default::default()
            },
            data: Some(RawExtension(template_patch(&template)?)),
            revision,
        };
        let api = self.revision_api(ds);
        let create_err = match api.create(&PostParams::default(), &rev).await {
            Ok(r) => return Ok(r),
            Err(e) if is_already_exists(&e) => e,
            Err(e) => return Err(Error::api(format!("creating revision {name}"), e)),
        };
        let existing = api
            .get(&name)
            .await
            .map_err(|e| Error::api(format!("getting revision {name}"), e))?;
        if matches(ds, &existing)? {
            return Ok(existing);
        }
        // A different template owns the name: bump the collision count (unless ours was
        // stale, in which case retrying with the fresh one is enough).
        let dss: Api<DaemonSet> =
            Api::namespaced(self.client.clone(), &ds.namespace().unwrap_or_default());
        let fresh = dss
            .get(&ds.name_any())
            .await
            .map_err(|e| Error::api(format!("getting daemonset {}", ds.name_any()), e))?;
        let fresh_count = fresh.status.as_ref().and_then(|s| s.collision_count);
        if fresh_count != collision {
            return Err(Error::Invalid(format!(
                "found a stale collision count ({collision:?}, expected {fresh_count:?}) of DaemonSet {}; will retry",
                ds.name_any()
            )));
        }
        let patch = json!({"status": {"collisionCount": collision.unwrap_or(0) + 1}});
        dss.patch_status(
            &ds.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .map_err(|e| Error::api(format!("bumping collisionCount of {}", ds.name_any()), e))?;
        Err(Error::api(format!("creating revision {name}"), create_err))
    }

    /// Delete the oldest revisions no pod uses, beyond `revisionHistoryLimit`.
    pub(super) async fn cleanup_history(
        &self,
        ds: &DaemonSet,
        old: &[ControllerRevision],
    ) -> Result<()> {
        let limit = ds
            .spec
            .as_ref()
            .and_then(|s| s.revision_history_limit)
            .unwrap_or(10);
        let Ok(limit) = usize::try_from(limit) else {
            return Ok(());
        };
        if old.len() <= limit {
            return Ok(());
        }
        let mut to_kill = old.len() - limit;
        // Terminal pods being deleted still count as users of their revision here.
        let live: HashSet<String> = self
            .nodes_to_daemon_pods(ds, true)
            .await?
            .values()
            .flatten()
            .filter_map(|p| p.labels().get(REVISION_HASH_LABEL).cloned())
            .filter(|h| !h.is_empty())
            .collect();
        let mut sorted: Vec<&ControllerRevision> = old.iter().collect();
        sorted.sort_by_key(|r| r.revision);
        let api = self.revision_api(ds);
        for rev in sorted {
            if to_kill == 0 {
                break;
            }
            if rev
                .labels()
                .get(REVISION_HASH_LABEL)
                .is_some_and(|h| live.contains(h))
            {
                continue;
            }
            history::delete_revision(&api, rev).await?;
            to_kill -= 1;
        }
        Ok(())
    }
}
