//! CronJob schedules, the one parser behind both the CronJob validation (`strategy::batch`)
//! and the CronJob controller's scheduling. It accepts what robfig/cron v3 `ParseStandard`
//! (which upstream uses) accepts: five fields (minute hour day-of-month month day-of-week)
//! with `*`/`?`, ranges, steps, lists and month/weekday names; the `@yearly`…`@hourly`
//! descriptors; `@every <duration>`; an optional `TZ=`/`CRON_TZ=` prefix. Error texts
//! follow that library, since upstream shows them to users verbatim.
//!
//! [`Schedule::next`] computes activation times in the schedule's time zone, including
//! its daylight-saving rules (`next.rs`); zone lookups and the `spec.timeZone` check are
//! in `zone.rs`.

mod next;
mod zone;

use jiff::SignedDuration;
use jiff::tz::TimeZone;

use crate::strategy::errors::go_quote;

pub use zone::{time_zone_exists, validate_time_zone};

/// Why a schedule does not parse (texts follow the upstream library).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ScheduleError(pub String);

fn err<T>(msg: String) -> Result<T, ScheduleError> {
    Err(ScheduleError(msg))
}

/// Set when a field was `*` or `?`: day-of-month/day-of-week matching then needs both.
const STAR: u64 = 1 << 63;

struct Bounds {
    min: u64,
    max: u64,
    names: &'static [(&'static str, u64)],
}

const MINUTES: Bounds = Bounds {
    min: 0,
    max: 59,
    names: &[],
};
const HOURS: Bounds = Bounds {
    min: 0,
    max: 23,
    names: &[],
};
const DOM: Bounds = Bounds {
    min: 1,
    max: 31,
    names: &[],
};
const MONTHS: Bounds = Bounds {
    min: 1,
    max: 12,
    names: &[
        ("jan", 1),
        ("feb", 2),
        ("mar", 3),
        ("apr", 4),
        ("may", 5),
        ("jun", 6),
        ("jul", 7),
        ("aug", 8),
        ("sep", 9),
        ("oct", 10),
        ("nov", 11),
        ("dec", 12),
    ],
};
const DOW: Bounds = Bounds {
    min: 0,
    max: 6,
    names: &[
        ("sun", 0),
        ("mon", 1),
        ("tue", 2),
        ("wed", 3),
        ("thu", 4),
        ("fri", 5),
        ("sat", 6),
    ],
};

/// When a schedule fires, independent of its time zone.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
    /// One bit per allowed value of each field (plus [`STAR`]).
    Spec {
        minute: u64,
        hour: u64,
        dom: u64,
        month: u64,
        dow: u64,
    },
    /// `@every`: a fixed delay (whole seconds, at least one).
    Every(SignedDuration),
}

/// A parsed schedule bound to a time zone.
#[derive(Clone, Debug)]
pub struct Schedule {
    kind: Kind,
    tz: TimeZone,
}

fn bits(start: u64, end: u64, step: u64) -> u64 {
    (start..=end)
        .step_by(usize::try_from(step).unwrap_or(usize::MAX))
        .fold(0, |acc, i| acc | (1u64 << i))
}

fn all(b: &Bounds) -> u64 {
    bits(b.min, b.max, 1) | STAR
}

/// Go's `strconv.Atoi`, with its error text.
fn atoi(expr: &str) -> Result<i64, String> {
    let digits = expr.strip_prefix(['+', '-']).unwrap_or(expr);
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return Err(format!(
            "strconv.Atoi: parsing {}: invalid syntax",
            go_quote(expr)
        ));
    }
    expr.parse::<i64>().map_err(|_| {
        format!(
            "strconv.Atoi: parsing {}: value out of range",
            go_quote(expr)
        )
    })
}

fn must_parse_int(expr: &str) -> Result<u64, ScheduleError> {
    let n =
        atoi(expr).map_err(|e| ScheduleError(format!("failed to parse int from {expr}: {e}")))?;
    u64::try_from(n)
        .map_err(|_| ScheduleError(format!("negative number ({n}) not allowed: {expr}")))
}

fn parse_int_or_name(expr: &str, b: &Bounds) -> Result<u64, ScheduleError> {
    let lower = expr.to_ascii_lowercase();
    if let Some((_, v)) = b.names.iter().find(|(n, _)| *n == lower) {
        return Ok(*v);
    }
    must_parse_int(expr)
}

/// One comma-separated part of a field: `*`, `?`, `N`, `N-M`, each with an optional
/// `/step`.
fn parse_range(expr: &str, b: &Bounds) -> Result<u64, ScheduleError> {
    let range_and_step: Vec<&str> = expr.split('/').collect();
    let low_high: Vec<&str> = range_and_step[0].split('-').collect();
    let single = low_high.len() == 1;
    let mut extra = 0;
    let (start, mut end) = if low_high[0] == "*" || low_high[0] == "?" {
        extra = STAR;
        (b.min, b.max)
    } else {
        let start = parse_int_or_name(low_high[0], b)?;
        let end = match low_high.len() {
            1 => start,
            2 => parse_int_or_name(low_high[1], b)?,
            _ => return err(format!("too many hyphens: {expr}")),
        };
        (start, end)
    };
    let step = match range_and_step.len() {
        1 => 1,
        2 => {
            let step = must_parse_int(range_and_step[1])?;
            // "N/step" means "N-max/step".
            if single {
                end = b.max;
            }
            if step > 1 {
                extra = 0;
            }
            step
        }
        _ => return err(format!("too many slashes: {expr}")),
    };
    if start < b.min {
        return err(format!(
            "beginning of range ({start}) below minimum ({}): {expr}",
            b.min
        ));
    }
    if end > b.max {
        return err(format!(
            "end of range ({end}) above maximum ({}): {expr}",
            b.max
        ));
    }
    if start > end {
        return err(format!(
            "beginning of range ({start}) beyond end of range ({end}): {expr}"
        ));
    }
    if step == 0 {
        return err(format!("step of range should be a positive number: {expr}"));
    }
    Ok(bits(start, end, step) | extra)
}

fn parse_field(field: &str, b: &Bounds) -> Result<u64, ScheduleError> {
    field
        .split(',')
        .try_fold(0, |acc, r| Ok(acc | parse_range(r, b)?))
}

/// Go's `time.ParseDuration` (as `@every` takes it): a sign, then decimal numbers each
/// with a unit `ns`…`h`.
fn parse_go_duration(s: &str) -> Option<SignedDuration> {
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Some(SignedDuration::ZERO);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let n = rest
            .bytes()
            .take_while(|c| c.is_ascii_digit() || *c == b'.')
            .count();
        let num: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let u = rest
            .bytes()
            .take_while(|c| !c.is_ascii_digit() && *c != b'.')
            .count();
        let unit_ns: f64 = match &rest[..u] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[u..];
        total += num * unit_ns;
    }
    let nanos = if neg { -total } else { total };
    Some(SignedDuration::from_nanos(nanos as i64))
}

/// Parses `spec`. A `TZ=`/`CRON_TZ=` prefix is handed to `location` (before the fields
/// are looked at, as the upstream library does), which resolves or rejects it.
fn parse_with<T>(
    spec: &str,
    location: impl FnOnce(&str) -> Result<T, ScheduleError>,
) -> Result<(Option<T>, Kind), ScheduleError> {
    if spec.is_empty() {
        return err("empty spec string".into());
    }
    let mut spec = spec;
    let mut loc = None;
    if spec.starts_with("TZ=") || spec.starts_with("CRON_TZ=") {
        let eq = spec.find('=').unwrap_or(0);
        let Some(sp) = spec.find(' ') else {
            return err(format!(
                "provided bad location {}: unknown time zone",
                &spec[eq + 1..]
            ));
        };
        loc = Some(location(&spec[eq + 1..sp])?);
        spec = spec[sp..].trim();
    }
    let fields = |minute, hour, dom, month, dow| Kind::Spec {
        minute,
        hour,
        dom,
        month,
        dow,
    };
    let kind = match spec {
        "@yearly" | "@annually" => fields(1, 1, 1 << 1, 1 << 1, all(&DOW)),
        "@monthly" => fields(1, 1, 1 << 1, all(&MONTHS), all(&DOW)),
        "@weekly" => fields(1, 1, all(&DOM), all(&MONTHS), 1),
        "@daily" | "@midnight" => fields(1, 1, all(&DOM), all(&MONTHS), all(&DOW)),
        "@hourly" => fields(1, all(&HOURS), all(&DOM), all(&MONTHS), all(&DOW)),
        s if s.starts_with("@every ") => {
            let d = &s["@every ".len()..];
            let d = parse_go_duration(d).ok_or_else(|| {
                ScheduleError(format!(
                    "failed to parse duration {s}: time: invalid duration {}",
                    go_quote(d)
                ))
            })?;
            Kind::Every(SignedDuration::from_secs(d.as_secs().max(1)))
        }
        s if s.starts_with('@') => return err(format!("unrecognized descriptor: {s}")),
        s => {
            let f: Vec<&str> = s.split_whitespace().collect();
            if f.len() != 5 {
                return err(format!(
                    "expected exactly 5 fields, found {}: [{}]",
                    f.len(),
                    f.join(" ")
                ));
            }
            fields(
                parse_field(f[0], &MINUTES)?,
                parse_field(f[1], &HOURS)?,
                parse_field(f[2], &DOM)?,
                parse_field(f[3], &MONTHS)?,
                parse_field(f[4], &DOW)?,
            )
        }
    };
    Ok((loc, kind))
}

/// Validates a schedule as the API server does (`cron.ParseStandard`); the error
/// carries the upstream library's message. A `TZ=` zone must exist on this machine
/// ([`time_zone_exists`]).
pub fn parse_standard(spec: &str) -> Result<(), ScheduleError> {
    parse_with(spec, |loc| {
        if time_zone_exists(loc) {
            Ok(())
        } else {
            err(format!(
                "provided bad location {loc}: unknown time zone {loc}"
            ))
        }
    })
    .map(|_| ())
}

impl Schedule {
    /// Parse `spec` in `tz` (a `TZ=`/`CRON_TZ=` prefix overrides it).
    pub fn parse(spec: &str, tz: TimeZone) -> Result<Schedule, ScheduleError> {
        let (loc, kind) = parse_with(spec, zone::load_location)?;
        Ok(Schedule {
            kind,
            tz: loc.unwrap_or(tz),
        })
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
