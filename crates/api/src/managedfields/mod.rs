//! Server-side apply field ownership (`metadata.managedFields`), as upstream's
//! `k8s.io/apimachinery/pkg/util/managedfields` and structured-merge-diff track it.
//!
//! Two entry points, both pure functions over JSON objects:
//!
//! - [`apply`]: an `application/apply-patch+yaml` PATCH (or the create it turns into when
//!   the object is missing). Merges the configuration into the live object, removes fields
//!   the manager applied before but no longer applies (unless another manager owns them),
//!   and refuses to change fields other managers own ([`ApplyError::Conflicts`]) unless
//!   `force`, which takes them over.
//! - [`record_update`]: every other write (create, update, JSON/merge/strategic patch,
//!   status and scale writes). The fields the write added or changed become the writer's
//!   (an `Update` entry), taken from whoever owned them; removed fields are dropped from
//!   every owner. Managed fields the write itself sets are honoured, `[]` resets them.
//!
//! Field identities come from the published OpenAPI schemas ([`schema`]): associative
//! lists by their map keys, sets by value, atomic lists/maps/structs as one field. The
//! FieldsV1 encoding and path spelling are in [`path`] and [`set`].
//!
//! Client-side apply to server-side apply: as upstream, the `kubectl` manager may change
//! fields whose live values still match the last-applied annotation, and keeps that
//! annotation in step; [`upgrade_managed_fields`] is client-go's `csaupgrade`.
//!
//! Cost: writes usually touch a few of thousands of owned paths, so [`fast`] keeps
//! managers' FieldsV1 as JSON ([`tree`]) and compares only what differs; the general
//! algorithms in [`updater`] run when it cannot decide, and the differential tests check
//! that both agree.

mod fast;
mod fieldmatch;
mod lastapplied;
mod managers;
mod merge;
pub mod path;
mod remove;
mod schema;
pub mod set;
mod tree;
mod updater;
mod walk;

#[cfg(test)]
mod reference;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_diff;

#[cfg(test)]
thread_local! {
    /// Set by the differential tests to run the plain algorithms, without shortcuts.
    static REFERENCE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether the shortcuts (skipping equal values, [`fast`]) are taken. They never change a
/// result; tests turn them off to check exactly that.
pub(crate) fn shortcuts() -> bool {
    #[cfg(test)]
    {
        !REFERENCE.with(std::cell::Cell::get)
    }
    #[cfg(not(test))]
    {
        true
    }
}

use serde_json::{Map, Value, json};

pub use lastapplied::{LAST_APPLIED_ANNOTATION, upgrade_managed_fields};

use managers::{Managed, ManagerKey};
use path::path_string;
use schema::Ty;
use updater::{ApplyFailure, Ctx};

/// The manager upstream gives the fields of an object that had no managed fields when it
/// was first applied to.
pub const BEFORE_FIRST_APPLY: &str = "before-first-apply";

/// How an apply is made.
#[derive(Debug, Clone, Copy)]
pub struct ApplyOptions<'a> {
    /// The `fieldManager` query parameter (required for apply).
    pub manager: &'a str,
    /// The `force` query parameter: take over conflicting fields.
    pub force: bool,
    /// The request's API version (`apps/v1`, `v1`); the configuration must use it.
    pub api_version: &'a str,
    /// The resource's kind; the configuration must name it (empty skips the check).
    pub kind: &'a str,
    /// `""` for the resource itself, `"status"`, `"scale"` …
    pub subresource: &'a str,
    /// Top-level paths the endpoint's strategy resets, never owned ([`reset_fields`]).
    pub reset_fields: &'a [&'a [&'a str]],
    /// The time recorded in changed entries, RFC 3339 (`2024-01-01T00:00:00Z`).
    pub now: &'a str,
}

/// How a non-apply write is recorded.
#[derive(Debug, Clone, Copy)]
pub struct UpdateOptions<'a> {
    /// The `fieldManager` query parameter, or [`default_manager`] of the user agent.
    pub manager: &'a str,
    pub api_version: &'a str,
    pub subresource: &'a str,
    pub reset_fields: &'a [&'a [&'a str]],
    pub now: &'a str,
}

/// A field another manager owns that an apply would change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    /// The owner's API version (empty for appliers: their entries follow them).
    pub api_version: String,
    pub subresource: String,
    /// The field, as upstream prints it: `.spec.replicas`,
    /// `.spec.template.spec.containers[name="app"].image`.
    pub field: String,
}

impl Conflict {
    fn key(&self) -> ManagerKey {
        ManagerKey {
            manager: self.manager.clone(),
            applied: self.operation == "Apply",
            api_version: self.api_version.clone(),
            subresource: self.subresource.clone(),
        }
    }

    /// The owner as conflict messages name it: `"kubectl-client-side-apply" using apps/v1`.
    pub fn owner(&self) -> String {
        self.key().describe()
    }
}

/// Why an apply failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApplyError {
    /// 409: other managers own fields the apply changes.
    #[error("{}", conflict_message(.0))]
    Conflicts(Vec<Conflict>),
    /// 400: the configuration is not acceptable (wrong kind or version, managed fields set).
    #[error("{0}")]
    BadRequest(String),
    /// 500 with no reason, as upstream answers errors of its typed conversion (a list item
    /// without its key, duplicate items, unreadable live managed fields).
    #[error("{0}")]
    Internal(String),
}

impl ApplyError {
    pub fn code(&self) -> u16 {
        match self {
            ApplyError::Conflicts(_) => 409,
            ApplyError::BadRequest(_) => 400,
            ApplyError::Internal(_) => 500,
        }
    }

    /// The Status `reason` (empty for internal errors, as upstream's unknown reason).
    pub fn reason(&self) -> &'static str {
        match self {
            ApplyError::Conflicts(_) => "Conflict",
            ApplyError::BadRequest(_) => "BadRequest",
            ApplyError::Internal(_) => "",
        }
    }

    /// The `details.causes` of a conflict: one `FieldManagerConflict` per field.
    pub fn causes(&self) -> Vec<Value> {
        let ApplyError::Conflicts(conflicts) = self else {
            return Vec::new();
        };
        conflicts
            .iter()
            .map(|c| {
                json!({
                    "reason": "FieldManagerConflict",
                    "message": format!("conflict with {}", c.owner()),
                    "field": c.field,
                })
            })
            .collect()
    }

    /// The whole `Status` object upstream answers with.
    pub fn status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "code": self.code(),
        });
        if !self.reason().is_empty() {
            status["reason"] = json!(self.reason());
        }
        if let ApplyError::Conflicts(_) = self {
            status["details"] = json!({ "causes": self.causes() });
        }
        status
    }
}

/// `Apply failed with 1 conflict: conflict with "m" using apps/v1: .spec.replicas`, or for
/// several a line per conflict grouped by manager.
fn conflict_message(conflicts: &[Conflict]) -> String {
    if let [only] = conflicts {
        return format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            only.owner(),
            only.field
        );
    }
    let mut lines = Vec::new();
    let mut current: Option<ManagerKey> = None;
    for c in conflicts {
        let key = c.key();
        if current.as_ref() != Some(&key) {
            lines.push(format!("conflicts with {}:", key.describe()));
            current = Some(key);
        }
        lines.push(format!("- {}", c.field));
    }
    format!(
        "Apply failed with {} conflicts: {}",
        conflicts.len(),
        lines.join("\n")
    )
}

/// The manager of a write without `fieldManager`: the user agent up to its first `/`,
/// without unprintable characters, at most 128 bytes (`kubectl/v1.32.0 (linux/amd64)` →
/// `kubectl`); `unknown` when that leaves nothing.
pub fn default_manager(user_agent: &str) -> String {
    let prefix = user_agent.split('/').next().unwrap_or_default();
    let mut out = String::new();
    for c in prefix.chars().filter(|c| !c.is_control()) {
        if out.len() + c.len_utf8() > 128 {
            break;
        }
        out.push(c);
    }
    if out.is_empty() {
        "unknown".into()
    } else {
        out
    }
}

/// Whether the kind has a status subresource (asked on every write; the catalog is scanned
/// once).
fn has_status(group: &str, kind: &str) -> bool {
    static WITH_STATUS: std::sync::LazyLock<std::collections::HashSet<(&str, &str)>> =
        std::sync::LazyLock::new(|| {
            crate::catalog::all()
                .iter()
                .filter(|r| r.subresource("status").is_some())
                .map(|r| (r.group, r.kind))
                .collect()
        });
    WITH_STATUS.contains(&(group, kind))
}

/// The fields an endpoint's strategy resets, which no manager owns there: `status` on a
/// resource with a status subresource, `spec` (and a few metadata fields for some kinds)
/// on the status subresource.
pub fn reset_fields(
    group: &str,
    kind: &str,
    subresource: &str,
) -> &'static [&'static [&'static str]] {
    match subresource {
        "" => {
            if has_status(group, kind) {
                &[&["status"]]
            } else {
                &[]
            }
        }
        "status" => match (group, kind) {
            ("apps", "Deployment") => &[&["spec"], &["metadata", "labels"]],
            ("", "Pod") => &[
                &["spec"],
                &["metadata", "deletionTimestamp"],
                &["metadata", "ownerReferences"],
            ],
            _ => &[&["spec"]],
        },
        _ => &[],
    }
}

/// `obj` without `metadata.managedFields`, and the entries it had.
fn split_managed(obj: &Value) -> (Value, Option<Value>) {
    let mut obj = obj.clone();
    let managed = obj
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
        .and_then(|m| m.remove("managedFields"));
    (obj, managed)
}

/// Stores `managed` as the object's `metadata.managedFields` (removing it when empty).
fn set_managed(obj: &mut Value, managed: &Managed) {
    store_entries(obj, managers::encode(managed));
}

/// Sets the object's `metadata.managedFields` to encoded `entries`, or removes it (`None`).
fn store_entries(obj: &mut Value, entries: Option<Value>) {
    let Value::Object(root) = obj else { return };
    match entries {
        Some(entries) => {
            let meta = root
                .entry("metadata")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(meta) = meta {
                meta.insert("managedFields".into(), entries);
            }
        }
        None => {
            if let Some(Value::Object(meta)) = root.get_mut("metadata") {
                meta.remove("managedFields");
            }
        }
    }
}

/// `ns/name; group/version, Kind=kind`, as upstream names objects in errors.
fn describe_object(obj: &Value) -> String {
    let s = |p: &str| obj.pointer(p).and_then(Value::as_str).unwrap_or_default();
    format!(
        "{}/{}; {}",
        s("/metadata/namespace"),
        s("/metadata/name"),
        gvk_string(s("/apiVersion"), s("/kind"))
    )
}

fn gvk_string(api_version: &str, kind: &str) -> String {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    format!("{group}/{version}, Kind={kind}")
}

/// Applies `applied` (a decoded apply body) to `live` (`None` to create) as
/// `opts.manager`, for an object described by OpenAPI `definition`
/// ([`crate::openapi::definition_name`]; unknown names make every list atomic).
///
/// Returns the new object with its `metadata.managedFields`. When the configuration
/// changes nothing the result is `live` with (possibly) updated managed fields, so a
/// caller can tell a no-op by comparing. The caller still runs its usual create/update
/// machinery on the result (defaults, validation, strategy resets, resourceVersion).
pub fn apply(
    live: Option<&Value>,
    applied: &Value,
    definition: &str,
    opts: &ApplyOptions,
) -> Result<Value, ApplyError> {
    if !applied.is_object() {
        return Err(ApplyError::BadRequest(
            "the applied configuration must be an object".into(),
        ));
    }
    let live_entries = live
        .and_then(|l| l.get("metadata"))
        .and_then(Value::as_object)
        .and_then(|m| m.get("managedFields"));
    let decode_error = |e| ApplyError::Internal(format!("failed to decode managed fields: {e}"));
    let fields = managers::decode_fields(live_entries.cloned()).map_err(decode_error)?;
    let api_version = applied
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kind = applied
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if api_version != opts.api_version || (!opts.kind.is_empty() && kind != opts.kind) {
        return Err(ApplyError::BadRequest(format!(
            "invalid object type: {}",
            gvk_string(api_version, kind)
        )));
    }
    if applied
        .pointer("/metadata/managedFields")
        .is_some_and(|v| !v.is_null())
    {
        return Err(ApplyError::BadRequest(
            "metadata.managedFields must be nil".into(),
        ));
    }
    let ty = Ty::root(definition);
    let ctx = Ctx::new(definition, opts.reset_fields, opts.api_version, opts.now);
    let key = ManagerKey::new(opts.manager, true, opts.api_version, opts.subresource);
    // The fast path validates the configuration as it walks it, and leaves it to the
    // general path when it is not valid.
    if shortcuts()
        && let Some(done) = fast::apply(live, applied, fields, &ctx, &key, opts)
    {
        return done;
    }
    let errors = walk::validate(applied, ty);
    if !errors.is_empty() {
        return Err(ApplyError::Internal(format!(
            "failed to create typed patch object ({}): {}",
            describe_object(applied),
            format_errors(&errors)
        )));
    }
    let (live_obj, live_entries) = match live {
        Some(l) => split_managed(l),
        None => (Value::Object(Map::new()), None),
    };
    let managed = managers::decode(live_entries.as_ref()).map_err(decode_error)?;
    let attempt = |force: bool| {
        let mut managed = managed.clone();
        if managed.is_empty() && live.is_some() {
            // Fields set before anyone applied belong to a placeholder manager, so the
            // first applier conflicts with them like with anyone else.
            let before = ManagerKey::new(
                BEFORE_FIRST_APPLY,
                false,
                opts.api_version,
                opts.subresource,
            );
            updater::update(
                &Value::Object(Map::new()),
                &live_obj,
                &mut managed,
                &before,
                &ctx,
            );
        }
        updater::apply(&live_obj, applied, &mut managed, &key, force, &ctx)
            .map(|out| (out.object, managed))
    };
    let (object, managed) = match attempt(opts.force) {
        Ok(done) => done,
        Err(ApplyFailure::Merge(e)) => {
            return Err(ApplyError::Internal(format!("failed to merge config: {e}")));
        }
        Err(ApplyFailure::Conflicts(sets)) => {
            let mut remaining = sets.clone();
            if opts.manager == lastapplied::KUBECTL
                && let Some(allowed) =
                    lastapplied::allowed_conflicts(&live_obj, ty, opts.api_version)
            {
                remaining = sets
                    .iter()
                    .map(|(k, s)| (k.clone(), s.difference(&allowed)))
                    .filter(|(_, s)| !s.is_empty())
                    .collect();
            }
            if !remaining.is_empty() {
                return Err(ApplyError::Conflicts(to_conflicts(&remaining)));
            }
            match attempt(true) {
                Ok(done) => done,
                Err(ApplyFailure::Merge(e)) => {
                    return Err(ApplyError::Internal(format!("failed to merge config: {e}")));
                }
                Err(ApplyFailure::Conflicts(sets)) => {
                    return Err(ApplyError::Conflicts(to_conflicts(&sets)));
                }
            }
        }
    };
    let mut result = object.unwrap_or(live_obj);
    set_managed(&mut result, &managed);
    if opts.manager == lastapplied::KUBECTL {
        lastapplied::sync_annotation(&mut result, applied);
    }
    Ok(result)
}

fn to_conflicts(sets: &updater::ConflictSets) -> Vec<Conflict> {
    updater::flatten(sets)
        .into_iter()
        .map(|(key, path)| Conflict {
            manager: key.manager.clone(),
            operation: key.operation().to_string(),
            api_version: key.api_version.clone(),
            subresource: key.subresource.clone(),
            field: path_string(&path),
        })
        .collect()
}

/// Upstream's rendering of typed-conversion errors: one as `path: message`, several as an
/// indented list.
fn format_errors(errors: &[(String, String)]) -> String {
    let one = |(path, msg): &(String, String)| {
        if path.is_empty() {
            msg.clone()
        } else {
            format!("{path}: {msg}")
        }
    };
    match errors {
        [only] => one(only),
        _ => {
            let lines: Vec<String> = errors.iter().map(|e| format!("  {}", one(e))).collect();
            format!("errors:\n{}", lines.join("\n"))
        }
    }
}

/// Records a non-apply write of `new` over `old` (`None` for a create) by
/// `opts.manager`, setting `new`'s `metadata.managedFields`.
///
/// Call it with the object about to be stored (after the patch is applied and defaults
/// are set). Managed fields `new` carries are used when they differ from none (`[]` or
/// `[{}]` resets tracking); otherwise `old`'s are. On the status or scale subresource the
/// request's managed fields are ignored. An existing object without managed fields stays
/// untracked until someone applies to it, as upstream. Never fails: unreadable managed
/// fields are replaced by what can be read.
pub fn record_update(old: Option<&Value>, new: &mut Value, definition: &str, opts: &UpdateOptions) {
    if !shortcuts() {
        #[cfg(test)]
        reference::record_update(old, new, definition, opts);
        return;
    }
    fast::record_update(old, new, definition, opts);
}
