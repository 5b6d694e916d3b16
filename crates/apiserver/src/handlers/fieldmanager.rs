//! Field ownership (`metadata.managedFields`) for every write, as upstream's fieldmanager:
//! apply patches merge with conflict detection, other writes record Update entries.

use super::resource::Call;
use crate::error::ApiError;
use axum::http::StatusCode;
use r8s_api::managedfields::{self, ApplyOptions, UpdateOptions};
use serde_json::Value;

/// Who writes, and what schema the object has.
pub struct FieldManager {
    manager: String,
    api_version: String,
    definition: &'static str,
    group: &'static str,
    kind: &'static str,
    force: bool,
    now: String,
    /// The request's version is the storage version (defaults apply as they are).
    served_as_stored: bool,
}

impl FieldManager {
    /// The manager of a request: `fieldManager`, or derived from the User-Agent.
    pub fn new(call: &Call) -> Self {
        let info = call.info;
        let manager = match call.query.get("fieldManager") {
            Some(m) if !m.is_empty() => m.to_string(),
            _ => managedfields::default_manager(super::codec::header(&call.headers, "user-agent")),
        };
        FieldManager {
            manager,
            api_version: info.api_version(),
            definition: r8s_api::openapi::definition_name(info.group, info.version, info.kind)
                .unwrap_or(""),
            group: info.group,
            kind: info.kind,
            force: call.query.flag("force"),
            now: crate::meta::now_rfc3339(),
            served_as_stored: info.storage_group == info.group
                && info.storage_version == info.version,
        }
    }

    /// Record a non-apply write of `new` (replacing `old`, if any) as an Update entry.
    ///
    /// Upstream decodes request bodies with the kind's defaults applied (and Secret
    /// `stringData` folded into `data`) before the field manager looks at them, so the
    /// writer owns the defaulted fields too. Defaults are written for the storage form, so
    /// this is done only where the served version is the stored one (everything but a
    /// few converted kinds, whose defaults the registry still sets unowned).
    pub fn record(&self, old: Option<&Value>, new: &mut Value, subresource: &str) {
        if self.served_as_stored {
            r8s_api::strategy::for_kind(self.group, self.kind).default(new);
        }
        let opts = UpdateOptions {
            manager: &self.manager,
            api_version: &self.api_version,
            subresource,
            reset_fields: managedfields::reset_fields(self.group, self.kind, subresource),
            now: &self.now,
        };
        managedfields::record_update(old, new, self.definition, &opts);
    }

    /// Server-side apply of `applied` onto `live` (or a new object).
    pub fn apply(
        &self,
        live: Option<&Value>,
        applied: &Value,
        subresource: &str,
    ) -> Result<Value, ApiError> {
        let opts = ApplyOptions {
            manager: &self.manager,
            force: self.force,
            api_version: &self.api_version,
            kind: self.kind,
            subresource,
            reset_fields: managedfields::reset_fields(self.group, self.kind, subresource),
            now: &self.now,
        };
        managedfields::apply(live, applied, self.definition, &opts).map_err(|e| {
            let status = e.status();
            ApiError {
                code: StatusCode::from_u16(e.code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                reason: e.reason(),
                message: status
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                details: status.get("details").cloned(),
            }
        })
    }
}
