//! The plain algorithm of [`super::record_update`], as it was before [`super::fast`]: split
//! the managed fields off copies of both objects, decode every entry, compare the whole
//! objects, encode every entry. The differential tests check the fast path against it.

use serde_json::{Map, Value};

use super::managers::{self, Managed, ManagerKey};
use super::updater::{self, Ctx};
use super::{UpdateOptions, set_managed, split_managed};

pub(super) fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    definition: &str,
    opts: &UpdateOptions,
) {
    if !new.is_object() {
        return;
    }
    let (old_obj, old_entries) = match old {
        Some(o) => split_managed(o),
        None => (Value::Object(Map::new()), None),
    };
    let (new_obj, new_entries) = split_managed(new);
    let from_old = || managers::decode(old_entries.as_ref()).unwrap_or_default();
    let mut managed = if !opts.subresource.is_empty() {
        from_old()
    } else if managers::is_reset(new_entries.as_ref()) {
        Managed::new()
    } else {
        match managers::decode(new_entries.as_ref()) {
            Ok(m) if !m.is_empty() => m,
            _ => from_old(),
        }
    };
    *new = new_obj;
    let has_uid = old_obj
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .is_some_and(|u| !u.is_empty());
    if managed.is_empty() && has_uid {
        return;
    }
    let ctx = Ctx::new(definition, opts.reset_fields, opts.api_version, opts.now);
    let key = ManagerKey::new(opts.manager, false, opts.api_version, opts.subresource);
    updater::update(&old_obj, new, &mut managed, &key, &ctx);
    managers::cap_update_managers(&mut managed);
    set_managed(new, &managed);
}
