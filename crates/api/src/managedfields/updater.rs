//! The ownership algorithms of structured-merge-diff's updater, over decoded entries:
//!
//! - an update moves every field it adds or changes to its manager (from whoever owned it)
//!   and drops removed fields from every owner;
//! - an apply merges the configuration, prunes fields the applier applied last time but no
//!   longer does (unless someone else owns them), and fails on fields other managers own
//!   that it would change, unless forced — then it takes them over.
//!
//! Server-set metadata (name, uid, resourceVersion …) and the strategy's reset fields are
//! never owned.

use serde_json::Value;

use super::managers::{Entry, Managed, ManagerKey};
use super::merge::{MergeOpts, merge_with};
use super::path::{Path, PathElement};
use super::remove::{drop_applied_nulls, remove_items};
use super::schema::Ty;
use super::set::Set;
use super::walk::{CompareOpts, Comparison, compare_with, ensure_named_fields, field_set};

/// What the walks of one object need: its type and the fields never tracked.
pub(crate) struct Ctx {
    pub ty: Ty,
    /// Fields the strategy resets for this endpoint (`status` on the main resource …).
    pub ignored: Set,
    pub api_version: String,
    pub now: String,
}

impl Ctx {
    /// The context of a write to an object of OpenAPI `definition`.
    pub fn new(definition: &str, reset_fields: &[&[&str]], api_version: &str, now: &str) -> Ctx {
        Ctx {
            ty: Ty::root(definition),
            ignored: ignored_set(reset_fields),
            api_version: api_version.to_string(),
            now: now.to_string(),
        }
    }
}

fn ignored_set(paths: &[&[&str]]) -> Set {
    let mut set = Set::new();
    for p in paths {
        let path: Vec<PathElement> = p.iter().map(|n| PathElement::Field((*n).into())).collect();
        set.insert(&path);
    }
    set
}

/// Paths never owned by anyone (upstream's strip-meta step); built once, it is read by
/// every write.
pub(crate) fn stripped() -> &'static Set {
    static STRIPPED: std::sync::LazyLock<Set> = std::sync::LazyLock::new(build_stripped);
    &STRIPPED
}

fn build_stripped() -> Set {
    let mut s = Set::new();
    let f = |n: &str| PathElement::Field(n.into());
    s.insert(&[f("apiVersion")]);
    s.insert(&[f("kind")]);
    s.insert(&[f("metadata")]);
    for name in [
        "name",
        "namespace",
        "creationTimestamp",
        "selfLink",
        "uid",
        "clusterName",
        "generation",
        "managedFields",
        "resourceVersion",
    ] {
        s.insert(&[f("metadata"), f(name)]);
    }
    s
}

/// Fields other managers own that an operation changes, per manager.
pub(crate) type ConflictSets = Vec<(ManagerKey, Set)>;

/// Compares `live` to `new`, and, unless `force` is off and someone else owns a changed
/// field, drops changed and removed fields from everyone but `current`.
fn update_owners(
    live: &Value,
    new: &Value,
    managed: &mut Managed,
    current: Option<&ManagerKey>,
    force: bool,
    ctx: &Ctx,
) -> Result<Comparison, ConflictSets> {
    let opts = CompareOpts {
        skip_equal: super::shortcuts(),
        old_metadata: None,
        hint: None,
    };
    let mut cmp = compare_with(live, new, ctx.ty, opts);
    cmp.exclude(&ctx.ignored);
    let changed = cmp.modified.union(&cmp.added);
    let mut conflicts = ConflictSets::new();
    for (key, entry) in managed.iter() {
        if Some(key) == current {
            continue;
        }
        let theirs = entry.set.intersection(&changed);
        if !theirs.is_empty() {
            conflicts.push((key.clone(), theirs));
        }
    }
    if !force && !conflicts.is_empty() {
        return Err(conflicts);
    }
    for (key, entry) in managed.iter_mut() {
        if Some(key) == current {
            continue;
        }
        entry.set = entry.set.difference(&changed).difference(&cmp.removed);
    }
    managed.retain(|_, e| !e.set.is_empty());
    Ok(cmp)
}

/// Records a write (create, update, non-apply patch) by `key`: the fields it added or
/// changed become its own, stolen from anyone else.
pub(crate) fn update(
    live: &Value,
    new: &Value,
    managed: &mut Managed,
    key: &ManagerKey,
    ctx: &Ctx,
) {
    // Forced, so it cannot fail.
    let Ok(cmp) = update_owners(live, new, managed, None, true, ctx) else {
        return;
    };
    let set = cmp
        .modified
        .union(&cmp.added)
        .recursive_difference(&ctx.ignored)
        .difference(stripped());
    if set.is_empty() {
        return;
    }
    let entry = managed.entry(key.clone()).or_insert_with(|| Entry {
        set: Set::new(),
        api_version: ctx.api_version.clone(),
        time: None,
    });
    entry.set.union_with(&set);
    entry.api_version = ctx.api_version.clone();
    entry.time = Some(ctx.now.clone());
}

/// The outcome of an apply: the new object, or `None` when nothing changed.
pub(crate) struct Applied {
    pub object: Option<Value>,
}

/// Applies `config` to `live` as `key`. Errors are the conflicts (when not forced), or a
/// message when the objects cannot be merged.
pub(crate) fn apply(
    live: &Value,
    config: &Value,
    managed: &mut Managed,
    key: &ManagerKey,
    force: bool,
    ctx: &Ctx,
) -> Result<Applied, ApplyFailure> {
    let opts = MergeOpts {
        skip_equal: super::shortcuts(),
        live_metadata: None,
    };
    let merged = merge_with(live, config, ctx.ty, opts).map_err(ApplyFailure::Merge)?;
    let last = managed.get(key).map(|e| e.set.clone());
    let set = field_set(config, ctx.ty).recursive_difference(&ctx.ignored);
    let time = managed.get(key).and_then(|e| e.time.clone());
    managed.insert(
        key.clone(),
        Entry {
            set,
            api_version: ctx.api_version.clone(),
            time,
        },
    );
    let mut merged = match last {
        Some(last) if !last.is_empty() => prune(&merged, managed, &last, ctx.ty),
        _ => merged,
    };
    update_owners(live, &merged, managed, Some(key), force, ctx)
        .map_err(ApplyFailure::Conflicts)?;
    if let Some(entry) = managed.get_mut(key) {
        entry.set = entry.set.difference(stripped());
    }
    drop_applied_nulls(&mut merged, config, ctx.ty);
    if merged == *live {
        return Ok(Applied { object: None });
    }
    if let Some(entry) = managed.get_mut(key) {
        entry.time = Some(ctx.now.clone());
    }
    Ok(Applied {
        object: Some(merged),
    })
}

/// Why an apply failed.
#[derive(Debug)]
pub(crate) enum ApplyFailure {
    Conflicts(ConflictSets),
    Merge(String),
}

/// Removes what the applier applied last time (`last`) and no longer applies, unless
/// another manager owns it. Fields and items that stay owned by anyone (including the
/// applier now) are put back, as are items emptied only as a side effect.
fn prune(merged: &Value, managed: &Managed, last: &Set, ty: Ty) -> Value {
    let last = ensure_named_fields(last, ty);
    let pruned = remove_items(merged, &last, ty);
    // Put back what anyone owns.
    let mut owned = Set::new();
    for entry in managed.values() {
        owned.union_with(&entry.set);
    }
    let owned = ensure_named_fields(&owned, ty);
    let merged_set = ensure_named_fields(&field_set(merged, ty), ty);
    let pruned_set = ensure_named_fields(&field_set(&pruned, ty), ty);
    let pruned = remove_items(
        merged,
        &merged_set.difference(&pruned_set.union(&owned)),
        ty,
    );
    // Only remove what the applier owned before.
    let pruned_set = ensure_named_fields(&field_set(&pruned, ty), ty);
    let gone = merged_set.difference(&pruned_set).intersection(&last);
    remove_items(merged, &gone, ty)
}

/// Lists the conflicting paths with their manager: managers in order, each one's paths
/// in set order (a level's own fields before those below it).
pub(crate) fn flatten(conflicts: &ConflictSets) -> Vec<(ManagerKey, Path)> {
    let mut sorted: Vec<&(ManagerKey, Set)> = conflicts.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    sorted
        .into_iter()
        .flat_map(|(key, set)| set.paths().into_iter().map(move |p| (key.clone(), p)))
        .collect()
}
