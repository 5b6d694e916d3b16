//! The cheap way through the two entry points, for what nearly every write is.
//!
//! - [`record_update`] of any write: managed fields are taken out of the new object rather
//!   than copied, kept as FieldsV1 where canonical ([`Fields`]), only the fields that differ
//!   are compared (equal list items and values are skipped), and owners lose or gain just
//!   those paths. A create (no old object, no managed fields sent) builds the writer's
//!   FieldsV1 straight from the object, without comparing it to nothing.
//! - [`apply`] by a manager that applies the same set of fields it owns (re-applying a
//!   manifest, with or without changed values): nothing is pruned, its entry stays as it
//!   is, and the rest is a merge, a comparison of just what the merge changed, and the
//!   same small edits as an update. Anything else (conflicts, a changed field set, an
//!   invalid configuration) returns `None` and takes the general path in
//!   [`super::updater`]. The first apply (the create) copies the configuration and builds
//!   the applier's FieldsV1 directly.
//!
//! Both give exactly the objects the general algorithms give (the module's differential
//! tests run both).

use serde_json::{Map, Value};

use super::fieldmatch::{Match, added_tree, field_tree, match_field_set};
use super::managers::{self, Entry, Managed, ManagerKey};
use super::merge::{Diff, MergeOpts, merge_tracked};
use super::remove::{drop_applied_nulls, has_null};
use super::tree::Fields;
use super::updater::{Ctx, stripped};
use super::walk::{CompareOpts, Comparison, compare_with};
use super::{ApplyError, ApplyOptions, UpdateOptions, lastapplied};

#[cfg(test)]
thread_local! {
    /// How many applies to an existing object this path finished (so tests can check that
    /// their cases take it).
    pub(super) static APPLIED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// The object's `metadata` without `managedFields`, when it has them (so walks can read the
/// object as if they were split off, without copying the object).
pub(super) fn metadata_without_managed(obj: Option<&Value>) -> Option<Value> {
    let meta = obj?.get("metadata")?.as_object()?;
    if !meta.contains_key("managedFields") {
        return None;
    }
    let rest: Map<String, Value> = meta
        .iter()
        .filter(|(k, _)| *k != "managedFields")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Some(Value::Object(rest))
}

/// Takes `metadata.managedFields` out of `obj`.
fn take_managed(obj: &mut Value) -> Option<Value> {
    obj.get_mut("metadata")
        .and_then(Value::as_object_mut)
        .and_then(|m| m.remove("managedFields"))
}

/// Stores `managed` as the object's `metadata.managedFields` (removing it when empty).
fn set_managed(obj: &mut Value, managed: Managed<Fields>) {
    super::store_entries(obj, managers::encode_fields(managed));
}

/// Compares `old` (read without its managed fields) to `new`, without the reset fields;
/// `hint` tells where they may differ.
fn changes(
    old: &Value,
    old_meta: Option<&Value>,
    new: &Value,
    hint: Option<&Diff>,
    ctx: &Ctx,
) -> Comparison {
    let opts = CompareOpts {
        skip_equal: true,
        old_metadata: old_meta,
        hint,
    };
    let mut cmp = compare_with(old, new, ctx.ty, opts);
    cmp.exclude(&ctx.ignored);
    cmp
}

/// [`super::record_update`].
pub(super) fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    definition: &str,
    opts: &UpdateOptions,
) {
    if !new.is_object() {
        return;
    }
    let new_entries = take_managed(new);
    let old_entries = || {
        old.and_then(|o| o.get("metadata"))
            .and_then(Value::as_object)
            .and_then(|m| m.get("managedFields"))
            .cloned()
    };
    let from_old = || managers::decode_fields(old_entries()).unwrap_or_default();
    let mut managed = if !opts.subresource.is_empty() {
        from_old()
    } else if managers::is_reset(new_entries.as_ref()) {
        Managed::new()
    } else {
        match managers::decode_fields(new_entries) {
            Ok(m) if !m.is_empty() => m,
            _ => from_old(),
        }
    };
    let has_uid = old
        .and_then(|o| o.pointer("/metadata/uid"))
        .and_then(Value::as_str)
        .is_some_and(|u| !u.is_empty());
    if managed.is_empty() && has_uid {
        return;
    }
    let ctx = Ctx::new(definition, opts.reset_fields, opts.api_version, opts.now);
    let key = ManagerKey::new(opts.manager, false, opts.api_version, opts.subresource);
    if old.is_none() && managed.is_empty() {
        // A create: every field is new and the writer owns them all, built directly in
        // FieldsV1 form (an object that is not valid takes the general way).
        if let Some(owned) = added_tree(new, ctx.ty, &ctx.ignored, stripped()) {
            if !owned.is_empty() {
                managed.insert(
                    key,
                    Entry {
                        set: Fields::Tree(owned),
                        api_version: ctx.api_version.clone(),
                        time: Some(ctx.now.clone()),
                    },
                );
            }
            set_managed(new, managed);
            return;
        }
    }
    let empty = Value::Object(Map::new());
    let old_meta = metadata_without_managed(old);
    let cmp = changes(old.unwrap_or(&empty), old_meta.as_ref(), new, None, &ctx);
    let changed = cmp.modified.union(&cmp.added);
    let gone = changed.union(&cmp.removed);
    for entry in managed.values_mut() {
        entry.set.remove(&gone);
    }
    managed.retain(|_, e| !e.set.is_empty());
    let set = changed
        .recursive_difference(&ctx.ignored)
        .difference(stripped());
    if !set.is_empty() {
        let entry = managed.entry(key).or_insert_with(|| Entry {
            set: Fields::default(),
            api_version: ctx.api_version.clone(),
            time: None,
        });
        entry.set.union_with(&set);
        entry.api_version = ctx.api_version.clone();
        entry.time = Some(ctx.now.clone());
    }
    managers::cap_update_fields(&mut managed);
    set_managed(new, managed);
}

/// Whether `merged` equals `live` read without its managed fields.
fn same_as_live(merged: &Value, live: &Value, live_meta: Option<&Value>) -> bool {
    let Some(meta) = live_meta else {
        return merged == live;
    };
    let (Value::Object(a), Value::Object(l)) = (merged, live) else {
        return false;
    };
    a.len() == l.len()
        && l.iter().all(|(k, v)| {
            let v = if k == "metadata" { meta } else { v };
            a.get(k) == Some(v)
        })
}

/// The apply that creates the object: the configuration merged into nothing, and the
/// applier owns its fields (built directly in their FieldsV1 form). `None` when the
/// configuration is not valid.
fn create(applied: &Value, ctx: &Ctx, key: &ManagerKey, opts: &ApplyOptions) -> Option<Value> {
    let owned = field_tree(applied, ctx.ty, &ctx.ignored, stripped())?;
    // Merging a valid configuration into nothing gives the configuration.
    let mut merged = applied.clone();
    drop_applied_nulls(&mut merged, applied, ctx.ty);
    let changed = merged.as_object().is_none_or(|m| !m.is_empty());
    let mut managed = Managed::new();
    managed.insert(
        key.clone(),
        Entry {
            set: Fields::Tree(owned),
            api_version: ctx.api_version.clone(),
            time: changed.then(|| ctx.now.clone()),
        },
    );
    let mut result = if changed {
        merged
    } else {
        Value::Object(Map::new())
    };
    set_managed(&mut result, managed);
    if opts.manager == lastapplied::KUBECTL {
        lastapplied::sync_annotation(&mut result, applied);
    }
    Some(result)
}

/// [`super::apply`] when the applier re-applies the field set it owns; `None` when the
/// general path must decide (also when `applied` is not valid: the general path reports
/// it). `managed` is decoded from `live`.
pub(super) fn apply(
    live: Option<&Value>,
    applied: &Value,
    mut managed: Managed<Fields>,
    ctx: &Ctx,
    key: &ManagerKey,
    opts: &ApplyOptions,
) -> Option<Result<Value, ApplyError>> {
    let Some(live) = live else {
        return create(applied, ctx, key, opts).map(Ok);
    };
    let Fields::Tree(owned) = &managed.get(key)?.set else {
        return None;
    };
    if match_field_set(applied, ctx.ty, owned, &ctx.ignored, stripped()) != Match::Same {
        return None;
    }
    let live_meta = metadata_without_managed(Some(live));
    let merge_opts = MergeOpts {
        skip_equal: true,
        live_metadata: live_meta.as_ref(),
    };
    let (mut merged, diff) = merge_tracked(live, applied, ctx.ty, merge_opts).ok()?;
    let cmp = match &diff {
        // Merged into the live object unchanged: nothing differs.
        None => Comparison::default(),
        Some(diff) => changes(live, live_meta.as_ref(), &merged, Some(diff), ctx),
    };
    let changed = cmp.modified.union(&cmp.added);
    let others = |k: &ManagerKey| k != key;
    let conflict = managed
        .iter()
        .any(|(k, e)| others(k) && !e.set.intersection(&changed).is_empty());
    if conflict && !opts.force {
        return None;
    }
    let gone = changed.union(&cmp.removed);
    for (_, entry) in managed.iter_mut().filter(|(k, _)| others(k)) {
        entry.set.remove(&gone);
    }
    managed.retain(|_, e| !e.set.is_empty());
    let unchanged = if has_null(applied) {
        drop_applied_nulls(&mut merged, applied, ctx.ty);
        same_as_live(&merged, live, live_meta.as_ref())
    } else {
        match &diff {
            None => true,
            Some(diff) if diff.certain() => false,
            Some(_) => same_as_live(&merged, live, live_meta.as_ref()),
        }
    };
    if let Some(entry) = managed.get_mut(key) {
        entry.api_version = ctx.api_version.clone();
        if !unchanged {
            entry.time = Some(ctx.now.clone());
        }
    }
    set_managed(&mut merged, managed);
    if opts.manager == lastapplied::KUBECTL {
        lastapplied::sync_annotation(&mut merged, applied);
    }
    #[cfg(test)]
    APPLIED.with(|n| n.set(n.get() + 1));
    Some(Ok(merged))
}
