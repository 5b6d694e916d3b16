//! Shared sync steps (upstream `sync.go`): claiming ReplicaSets, finding or creating the
//! new one, scaling (proportionally while a rollout is in flight), cleaning up old ones,
//! and the status.

use super::conditions::{
    FAILED_RS_CREATE, FOUND_NEW_RS, NEW_RS_CREATED, PAUSED, PROGRESSING, RESUMED, TIMED_OUT,
    get_condition, new_condition, set_condition,
};
use super::plan::{
    active, calculate_status, find_active_or_latest, find_new_rs, find_old_rss, is_saturated,
    new_rs_new_replicas, normalized, proportion,
};
use super::util::*;
use super::{Controller, SyncError};
use crate::events::EventType;
use crate::replicaset::api_message;
use crate::replicaset::claim::{Claimer, controller_of, controller_ref, selector_of};
use crate::replicaset::manage::namespace_terminating;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;
use std::collections::BTreeMap;

impl Controller {
    /// The ReplicaSets this Deployment owns after adoption/release.
    pub(super) async fn replicasets_for(
        &self,
        d: &Deployment,
    ) -> Result<Vec<ReplicaSet>, SyncError> {
        let sel = d
            .spec
            .as_ref()
            .map(|s| s.selector.clone())
            .unwrap_or_default();
        let Some(selector) = selector_of(&sel) else {
            return Err(SyncError::Invalid("invalid label selector".into()));
        };
        let ns = d.metadata.namespace.as_deref();
        let candidates = self
            .replicasets
            .store()
            .state()
            .into_iter()
            .filter(|rs| rs.metadata.namespace.as_deref() == ns)
            .collect();
        let mut claimer = Claimer::<Deployment, ReplicaSet>::new(&self.client, d, &selector);
        let (claimed, err) = claimer.claim(candidates).await;
        if let Some(e) = err {
            return Err(e.into());
        }
        Ok(claimed.into_iter().map(|rs| (*rs).clone()).collect())
    }

    fn rs_api(&self, d: &Deployment) -> Api<ReplicaSet> {
        Api::namespaced(
            self.client.clone(),
            d.metadata.namespace.as_deref().unwrap_or(""),
        )
    }

    /// Write the Deployment's status (and, if `revision_changed`, its revision annotation,
    /// which upstream writes through the status endpoint too but this API server keeps
    /// status writes to `status`). `d` becomes the written object.
    pub(super) async fn write_status(
        &self,
        d: &mut Deployment,
        revision_changed: bool,
    ) -> Result<(), SyncError> {
        let name = d.metadata.name.clone().unwrap_or_default();
        let api: Api<Deployment> = Api::namespaced(
            self.client.clone(),
            d.metadata.namespace.as_deref().unwrap_or(""),
        );
        if revision_changed {
            let rev = d
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(REVISION))
                .cloned();
            let patch = json!({"metadata": {
                "annotations": {REVISION: rev},
                "resourceVersion": d.metadata.resource_version,
            }});
            let patched = api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
            d.metadata.resource_version = patched.metadata.resource_version;
        }
        *d = api.replace_status(&name, &PostParams::default(), d).await?;
        Ok(())
    }

    /// The new ReplicaSet and all old ones, creating the new one if asked (upstream
    /// `getAllReplicaSetsAndSyncRevision`).
    pub(super) async fn all_rss_and_sync_revision(
        &self,
        d: &mut Deployment,
        rs_list: &mut [ReplicaSet],
        create: bool,
    ) -> Result<(Option<ReplicaSet>, Vec<ReplicaSet>), SyncError> {
        let old = find_old_rss(d, rs_list);
        let new_rs = self.new_rs(d, rs_list, &old, create).await?;
        Ok((new_rs, old))
    }

    /// Find (and re-annotate) or create the ReplicaSet for the current template.
    async fn new_rs(
        &self,
        d: &mut Deployment,
        rs_list: &mut [ReplicaSet],
        old: &[ReplicaSet],
        create: bool,
    ) -> Result<Option<ReplicaSet>, SyncError> {
        let new_revision = (max_revision(old) + 1).to_string();
        let api = self.rs_api(d);
        if let Some(existing) = find_new_rs(d, rs_list) {
            let mut rs = existing;
            let annotated = set_new_rs_annotations(d, &mut rs, &new_revision, true);
            let min_ready = d_min_ready(d);
            let spec = rs.spec.get_or_insert_with(Default::default);
            if annotated || spec.min_ready_seconds.unwrap_or(0) != min_ready {
                spec.min_ready_seconds = Some(min_ready);
                let name = rs.metadata.name.clone().unwrap_or_default();
                let updated = api.replace(&name, &PostParams::default(), &rs).await?;
                if let Some(slot) = rs_list
                    .iter_mut()
                    .find(|r| r.metadata.uid == updated.metadata.uid)
                {
                    *slot = updated.clone();
                }
                return Ok(Some(updated));
            }
            let rev = rs
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(REVISION))
                .cloned()
                .unwrap_or_default();
            let revision_changed = set_deployment_revision(d, &rev);
            let mut needs_update = revision_changed;
            let has_deadline = progress_deadline(d).is_some();
            let st = d.status.get_or_insert_with(Default::default);
            if has_deadline && get_condition(st, PROGRESSING).is_none() {
                let msg = format!(
                    "Found new replica set {:?}",
                    rs.metadata.name.as_deref().unwrap_or("")
                );
                set_condition(st, new_condition(PROGRESSING, "True", FOUND_NEW_RS, &msg));
                needs_update = true;
            }
            if needs_update {
                self.write_status(d, revision_changed).await?;
            }
            return Ok(Some(rs));
        }
        if !create {
            return Ok(None);
        }
        let collision = d.status.as_ref().and_then(|s| s.collision_count);
        let mut template = d_template(d);
        let hash = compute_hash(&template, collision);
        let labels = {
            let meta = template.metadata.get_or_insert_with(Default::default);
            let labels = meta.labels.get_or_insert_with(BTreeMap::new);
            labels.insert(POD_TEMPLATE_HASH.into(), hash.clone());
            labels.clone()
        };
        let mut selector = d
            .spec
            .as_ref()
            .map(|s| s.selector.clone())
            .unwrap_or_default();
        selector
            .match_labels
            .get_or_insert_with(BTreeMap::new)
            .insert(POD_TEMPLATE_HASH.into(), hash.clone());
        let d_name = d.metadata.name.clone().unwrap_or_default();
        let rs_name = format!("{d_name}-{hash}");
        let mut rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(rs_name.clone()),
                namespace: d.metadata.namespace.clone(),
                owner_references: Some(vec![controller_ref(d)]),
                labels: Some(labels),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(0),
                min_ready_seconds: Some(d_min_ready(d)),
                selector,
                template: Some(template),
            }),
            status: None,
        };
        let count = {
            let all: Vec<&ReplicaSet> = old.iter().chain(std::iter::once(&rs)).collect();
            new_rs_new_replicas(d, &all, &rs)
        };
        set_rs_replicas(&mut rs, count);
        set_new_rs_annotations(d, &mut rs, &new_revision, false);
        let (created, already_exists) = match api.create(&PostParams::default(), &rs).await {
            Ok(c) => (c, false),
            Err(kube::Error::Api(s)) if s.code == 409 && s.reason == "AlreadyExists" => {
                let ns = d.metadata.namespace.clone().unwrap_or_default();
                let Some(found) = self.replicasets.get(Some(&ns), &rs_name) else {
                    return Err(SyncError::Invalid(format!(
                        "replica set {rs_name:?} exists but is not cached yet"
                    )));
                };
                let ours = controller_of(&found.metadata)
                    .is_some_and(|r| Some(&r.uid) == d.metadata.uid.as_ref());
                if ours && equal_ignore_hash(&d_template(d), &rs_template(&found)) {
                    ((*found).clone(), true)
                } else {
                    // A different template hashed to the same name: bump the collision count
                    // so the next attempt picks another name.
                    let st = d.status.get_or_insert_with(Default::default);
                    st.collision_count = Some(st.collision_count.unwrap_or(0).saturating_add(1));
                    self.write_status(d, false).await?;
                    return Err(SyncError::Invalid(format!(
                        "hash collision for replica set {rs_name:?}"
                    )));
                }
            }
            Err(e) if namespace_terminating(&e) => return Err(e.into()),
            Err(e) => {
                let msg = format!(
                    "Failed to create new replica set {rs_name:?}: {}",
                    api_message(&e)
                );
                if progress_deadline(d).is_some() {
                    let st = d.status.get_or_insert_with(Default::default);
                    set_condition(
                        st,
                        new_condition(PROGRESSING, "False", FAILED_RS_CREATE, &msg),
                    );
                    // Best effort: the create error is what gets retried.
                    let _ = self.write_status(d, false).await;
                }
                self.event(d, EventType::Warning, FAILED_RS_CREATE, &msg);
                return Err(e.into());
            }
        };
        if !already_exists && count > 0 {
            let msg = format!("Scaled up replica set {rs_name} from 0 to {count}");
            self.event(d, EventType::Normal, "ScalingReplicaSet", &msg);
        }
        let revision_changed = set_deployment_revision(d, &new_revision);
        let mut needs_update = revision_changed;
        if !already_exists && progress_deadline(d).is_some() {
            let st = d.status.get_or_insert_with(Default::default);
            let msg = format!("Created new replica set {rs_name:?}");
            set_condition(st, new_condition(PROGRESSING, "True", NEW_RS_CREATED, &msg));
            needs_update = true;
        }
        if needs_update {
            self.write_status(d, revision_changed).await?;
        }
        Ok(Some(created))
    }

    /// Scale `rs` to `n` if needed, recording "up"/"down" (upstream
    /// `scaleReplicaSetAndRecordEvent`). Returns whether it scaled and the current object.
    pub(super) async fn scale_rs_and_record(
        &self,
        rs: &ReplicaSet,
        n: i32,
        d: &Deployment,
    ) -> Result<(bool, ReplicaSet), SyncError> {
        let cur = rs_replicas(rs);
        if cur == n {
            return Ok((false, rs.clone()));
        }
        let op = if cur < n { "up" } else { "down" };
        self.scale_rs(rs, n, d, op).await
    }

    /// Set `spec.replicas` and the desired/max replica annotations of `rs`.
    pub(super) async fn scale_rs(
        &self,
        rs: &ReplicaSet,
        n: i32,
        d: &Deployment,
        op: &str,
    ) -> Result<(bool, ReplicaSet), SyncError> {
        let size_changes = rs_replicas(rs) != n;
        let (desired, max) = (d_replicas(d), d_replicas(d) + max_surge(d));
        if !size_changes && !replicas_annotations_need_update(rs, desired, max) {
            return Ok((false, rs.clone()));
        }
        let old = rs_replicas(rs);
        let mut copy = rs.clone();
        set_rs_replicas(&mut copy, n);
        set_replicas_annotations(&mut copy, desired, max);
        let name = rs.metadata.name.clone().unwrap_or_default();
        let updated = self
            .rs_api(d)
            .replace(&name, &PostParams::default(), &copy)
            .await?;
        if size_changes {
            let msg = format!("Scaled {op} replica set {name} from {old} to {n}");
            self.event(d, EventType::Normal, "ScalingReplicaSet", &msg);
        }
        Ok((size_changes, updated))
    }

    /// Scale for a changed `spec.replicas` (upstream `scale`): a single active (or the
    /// latest) ReplicaSet takes everything; a saturated new one lets old ones go to zero;
    /// otherwise, while rolling, the difference is spread proportionally.
    pub(super) async fn scale(
        &self,
        d: &Deployment,
        new_rs: Option<&ReplicaSet>,
        old: &[ReplicaSet],
    ) -> Result<(), SyncError> {
        let want = d_replicas(d);
        if let Some(rs) = find_active_or_latest(new_rs, old) {
            if rs_replicas(&rs) != want {
                self.scale_rs_and_record(&rs, want, d).await?;
            }
            return Ok(());
        }
        if is_saturated(d, new_rs) {
            for rs in active(old) {
                self.scale_rs_and_record(rs, 0, d).await?;
            }
            return Ok(());
        }
        if is_recreate(d) {
            return Ok(());
        }
        let mut all: Vec<&ReplicaSet> = active(old.iter().chain(new_rs));
        let allowed = if want > 0 { want + max_surge(d) } else { 0 };
        let to_add = allowed - replica_count(&all);
        let op = match to_add.cmp(&0) {
            std::cmp::Ordering::Greater => {
                all.sort_by(|a, b| by_size_newer(a, b));
                "up"
            }
            std::cmp::Ordering::Less => {
                all.sort_by(|a, b| by_size_older(a, b));
                "down"
            }
            std::cmp::Ordering::Equal => "",
        };
        let mut added = 0;
        let mut sizes: Vec<i32> = Vec::with_capacity(all.len());
        for rs in &all {
            if to_add != 0 {
                let p = proportion(rs, d, to_add, added);
                sizes.push(rs_replicas(rs) + p);
                added += p;
            } else {
                sizes.push(rs_replicas(rs));
            }
        }
        for (i, rs) in all.iter().enumerate() {
            let mut size = sizes[i];
            if i == 0 && to_add != 0 {
                // Leftovers from rounding go to the largest ReplicaSet.
                size = (size + to_add - added).max(0);
            }
            self.scale_rs(rs, size, d, op).await?;
        }
        Ok(())
    }

    /// Delete old ReplicaSets with no pods beyond `revisionHistoryLimit`, oldest revision
    /// first.
    pub(super) async fn cleanup(
        &self,
        old: &[ReplicaSet],
        d: &Deployment,
    ) -> Result<(), SyncError> {
        let Some(limit) = d
            .spec
            .as_ref()
            .and_then(|s| s.revision_history_limit)
            .filter(|l| *l != i32::MAX)
        else {
            return Ok(());
        };
        let mut cleanable: Vec<&ReplicaSet> = old
            .iter()
            .filter(|rs| rs.metadata.deletion_timestamp.is_none())
            .collect();
        let diff = i32::try_from(cleanable.len()).unwrap_or(i32::MAX) - limit;
        if diff <= 0 {
            return Ok(());
        }
        cleanable.sort_by(|a, b| by_revision(a, b));
        let api = self.rs_api(d);
        for rs in cleanable
            .into_iter()
            .take(usize::try_from(diff).unwrap_or(0))
        {
            let st = rs.status.clone().unwrap_or_default();
            if st.replicas != 0
                || rs_replicas(rs) != 0
                || rs.metadata.generation.unwrap_or(0) > st.observed_generation.unwrap_or(0)
            {
                continue;
            }
            let name = rs.metadata.name.clone().unwrap_or_default();
            match api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Write the status if it changed (upstream `syncDeploymentStatus`).
    pub(super) async fn sync_status(
        &self,
        all: &[&ReplicaSet],
        new_rs: Option<&ReplicaSet>,
        d: &mut Deployment,
    ) -> Result<(), SyncError> {
        let st = calculate_status(all, new_rs, d);
        if normalized(d.status.as_ref()) == st {
            return Ok(());
        }
        d.status = Some(st);
        self.write_status(d, false).await
    }

    /// Status only, for a Deployment being deleted.
    pub(super) async fn sync_status_only(
        &self,
        d: &mut Deployment,
        rs_list: &mut [ReplicaSet],
    ) -> Result<(), SyncError> {
        let (new_rs, old) = self.all_rss_and_sync_revision(d, rs_list, false).await?;
        let all: Vec<&ReplicaSet> = old.iter().chain(new_rs.as_ref()).collect();
        self.sync_status(&all, new_rs.as_ref(), d).await
    }

    /// Scaling without rolling out (paused, or only `spec.replicas` changed), then cleanup
    /// when paused (upstream `sync`).
    pub(super) async fn sync_scale(
        &self,
        d: &mut Deployment,
        rs_list: &mut [ReplicaSet],
    ) -> Result<(), SyncError> {
        let (new_rs, old) = self.all_rss_and_sync_revision(d, rs_list, false).await?;
        self.scale(d, new_rs.as_ref(), &old).await?;
        if is_paused(d) {
            self.cleanup(&old, d).await?;
        }
        let all: Vec<&ReplicaSet> = old.iter().chain(new_rs.as_ref()).collect();
        self.sync_status(&all, new_rs.as_ref(), d).await
    }

    /// Whether `spec.replicas` changed since the active ReplicaSets were last scaled.
    pub(super) async fn is_scaling_event(
        &self,
        d: &mut Deployment,
        rs_list: &mut [ReplicaSet],
    ) -> Result<bool, SyncError> {
        let (new_rs, old) = self.all_rss_and_sync_revision(d, rs_list, false).await?;
        let want = d_replicas(d);
        Ok(active(old.iter().chain(new_rs.as_ref()))
            .into_iter()
            .any(|rs| desired_replicas_annotation(rs).is_some_and(|n| n != want)))
    }

    /// Keep the Progressing condition in step with `spec.paused`.
    pub(super) async fn check_paused_conditions(
        &self,
        d: &mut Deployment,
    ) -> Result<(), SyncError> {
        if progress_deadline(d).is_none() {
            return Ok(());
        }
        let paused = is_paused(d);
        let st = d.status.get_or_insert_with(Default::default);
        let reason = get_condition(st, PROGRESSING).and_then(|c| c.reason.clone());
        if reason.as_deref() == Some(TIMED_OUT) {
            // A reported lack of progress is not overwritten by a pause.
            return Ok(());
        }
        let paused_cond = reason.as_deref() == Some(PAUSED);
        let cond = if paused && !paused_cond {
            new_condition(PROGRESSING, "Unknown", PAUSED, "Deployment is paused")
        } else if !paused && paused_cond {
            new_condition(PROGRESSING, "Unknown", RESUMED, "Deployment is resumed")
        } else {
            return Ok(());
        };
        set_condition(st, cond);
        self.write_status(d, false).await
    }
}
