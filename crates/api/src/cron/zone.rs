//! Time zones of CronJobs: whether a zone name exists (for validation, against the
//! machine's zoneinfo as Go's `time.LoadLocation` reads it), the `spec.timeZone` check,
//! and loading a `TZ=` zone for scheduling.

use std::path::Path;

use jiff::tz::TimeZone;

use super::ScheduleError;

pub(super) const ZONEINFO: &str = "/usr/share/zoneinfo";

/// Whether `name` is a known IANA zone. Without a zoneinfo database on the machine only
/// the zones Go always knows are accepted as certain; others are given the benefit of
/// the doubt.
pub fn time_zone_exists(name: &str) -> bool {
    if name == "UTC" || name == "Local" {
        return true;
    }
    if name.is_empty()
        || name
            .split('/')
            .any(|p| p == ".." || p == "." || p.is_empty())
    {
        return false;
    }
    let base = Path::new(ZONEINFO);
    if !base.is_dir() {
        return true;
    }
    base.join(name).is_file()
}

/// Validates `spec.timeZone` like upstream's `validateTimeZone`; returns messages.
pub fn validate_time_zone(tz: &str) -> Vec<String> {
    if tz.is_empty() {
        return vec!["timeZone must be nil or non-empty string".to_string()];
    }
    for part in tz.split('/') {
        let valid_chars = !part.is_empty()
            && part.len() <= 14
            && part
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_' | b'+'));
        if part == "." || part == ".." || part.starts_with('-') || !valid_chars {
            return vec![format!("unknown time zone {tz}")];
        }
    }
    let mut errs = Vec::new();
    if tz.eq_ignore_ascii_case("local") {
        errs.push(
            "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones"
                .to_string(),
        );
    }
    if !time_zone_exists(tz) {
        errs.push(format!("unknown time zone {tz}"));
    }
    errs
}

/// The zone of a schedule's `TZ=` prefix, for computing its times (jiff's database:
/// the system's, else the bundled copy).
pub(super) fn load_location(name: &str) -> Result<TimeZone, ScheduleError> {
    TimeZone::get(name).map_err(|_| {
        ScheduleError(format!(
            "provided bad location {name}: unknown time zone {name}"
        ))
    })
}
