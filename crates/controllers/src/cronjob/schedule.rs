//! Cron schedules as upstream evaluates them (robfig/cron v3 `ParseStandard` and
//! `SpecSchedule.Next`): five fields (minute hour day-of-month month day-of-week) with
//! `*`/`?`, ranges, steps, lists and names; the `@yearly`…`@hourly` descriptors;
//! `@every <duration>`; an optional `TZ=`/`CRON_TZ=` prefix. Times are computed in the
//! schedule's time zone, including its daylight-saving rules.

use jiff::civil::{DateTime, date};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan, Zoned};

/// Why a schedule does not parse (texts follow the upstream library).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ScheduleError(pub String);

/// Set when a field was `*` or `?`: day-of-month/day-of-week matching then needs both.
const STAR: u64 = 1 << 63;

struct Bounds {
    min: u32,
    max: u32,
    names: &'static [&'static str],
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
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ],
};
const DOW: Bounds = Bounds {
    min: 0,
    max: 6,
    names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
};

#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
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

fn bits(start: u32, end: u32, step: u32) -> u64 {
    (start..=end)
        .step_by(step as usize)
        .fold(0, |acc, i| acc | (1u64 << i))
}

fn all(b: &Bounds) -> u64 {
    bits(b.min, b.max, 1) | STAR
}

fn parse_uint(expr: &str) -> Result<u32, ScheduleError> {
    let digits = expr.strip_prefix('+').unwrap_or(expr);
    if expr.starts_with('-') {
        return Err(ScheduleError(format!(
            "negative number ({expr}) not allowed: {expr}"
        )));
    }
    digits
        .parse::<u32>()
        .map_err(|_| ScheduleError(format!("failed to parse int from {expr}: invalid syntax")))
}

fn parse_int_or_name(expr: &str, b: &Bounds) -> Result<u32, ScheduleError> {
    let lower = expr.to_ascii_lowercase();
    if let Some(pos) = b.names.iter().position(|n| *n == lower) {
        return Ok(b.min + pos as u32);
    }
    parse_uint(expr)
}

fn parse_range(expr: &str, b: &Bounds) -> Result<u64, ScheduleError> {
    let err = |m: String| Err(ScheduleError(m));
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
            let step = parse_uint(range_and_step[1])?;
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

/// Go's `time.ParseDuration` (as `@every` takes it).
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

impl Schedule {
    /// Parse `spec` in `tz` (a `TZ=`/`CRON_TZ=` prefix overrides it).
    pub fn parse(spec: &str, tz: TimeZone) -> Result<Schedule, ScheduleError> {
        if spec.is_empty() {
            return Err(ScheduleError("empty spec string".into()));
        }
        let mut spec = spec;
        let mut tz = tz;
        if spec.starts_with("TZ=") || spec.starts_with("CRON_TZ=") {
            let eq = spec.find('=').unwrap_or(0);
            let sp = spec.find(' ').unwrap_or(spec.len());
            let name = &spec[eq + 1..sp];
            tz = TimeZone::get(name)
                .map_err(|e| ScheduleError(format!("provided bad location {name}: {e}")))?;
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
                        "failed to parse duration {s}: time: invalid duration \"{d}\""
                    ))
                })?;
                let secs = d.as_secs().max(1);
                Kind::Every(SignedDuration::from_secs(secs))
            }
            s if s.starts_with('@') => {
                return Err(ScheduleError(format!("unrecognized descriptor: {s}")));
            }
            s => {
                let f: Vec<&str> = s.split_whitespace().collect();
                if f.len() != 5 {
                    return Err(ScheduleError(format!(
                        "expected exactly 5 fields, found {}: [{}]",
                        f.len(),
                        f.join(" ")
                    )));
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
        Ok(Schedule { kind, tz })
    }

    /// The first activation strictly after `t`; `None` if there is none within five
    /// years (e.g. February 30th).
    pub fn next(&self, t: Timestamp) -> Option<Timestamp> {
        let (minute, hour, dom, month, dow) = match &self.kind {
            Kind::Every(d) => {
                let sub = SignedDuration::from_nanos(i64::from(t.subsec_nanosecond()));
                return t.checked_add(*d - sub).ok();
            }
            Kind::Spec {
                minute,
                hour,
                dom,
                month,
                dow,
            } => (*minute, *hour, *dom, *month, *dow),
        };
        let tz = &self.tz;
        let civil = |dt: DateTime| tz.to_ambiguous_zoned(dt).compatible().ok();
        let shift = |z: &Zoned, d: SignedDuration| {
            z.timestamp()
                .checked_add(d)
                .ok()
                .map(|t| t.to_zoned(tz.clone()))
        };
        // Start at the next whole second.
        let start = t.to_zoned(tz.clone());
        let mut z = shift(
            &start,
            SignedDuration::from_secs(1)
                - SignedDuration::from_nanos(i64::from(start.subsec_nanosecond())),
        )?;
        let year_limit = z.year() + 5;
        let mut added = false;
        let has = |mask: u64, v: i8| mask & (1u64 << v) != 0;
        let day_matches = |z: &Zoned| {
            let dom_ok = has(dom, z.day());
            let dow_ok = has(dow, z.weekday().to_sunday_zero_offset());
            if dom & STAR != 0 || dow & STAR != 0 {
                dom_ok && dow_ok
            } else {
                dom_ok || dow_ok
            }
        };
        'wrap: loop {
            if z.year() > year_limit {
                return None;
            }
            while !has(month, z.month()) {
                if !added {
                    added = true;
                    z = civil(date(z.year(), z.month(), 1).at(0, 0, 0, 0))?;
                }
                z = civil(z.datetime().checked_add(1.month()).ok()?)?;
                if z.month() == 1 {
                    continue 'wrap;
                }
            }
            while !day_matches(&z) {
                if !added {
                    added = true;
                    z = civil(z.date().at(0, 0, 0, 0))?;
                }
                z = civil(z.datetime().checked_add(1.day()).ok()?)?;
                // Around DST the wall clock may no longer read midnight.
                let h = i64::from(z.hour());
                if h != 0 {
                    let fix = if h > 12 { 24 - h } else { -h };
                    z = shift(&z, SignedDuration::from_hours(fix))?;
                }
                if z.day() == 1 {
                    continue 'wrap;
                }
            }
            while !has(hour, z.hour()) {
                if !added {
                    added = true;
                    z = civil(z.date().at(z.hour(), 0, 0, 0))?;
                }
                z = shift(&z, SignedDuration::from_hours(1))?;
                if z.hour() == 0 {
                    continue 'wrap;
                }
            }
            while !has(minute, z.minute()) {
                if !added {
                    added = true;
                    z = shift(&z, -SignedDuration::from_secs(i64::from(z.second())))?;
                }
                z = shift(&z, SignedDuration::from_mins(1))?;
                if z.minute() == 0 {
                    continue 'wrap;
                }
            }
            // Standard schedules fire at second 0.
            if z.second() != 0 {
                if !added {
                    added = true;
                    z = shift(
                        &z,
                        -SignedDuration::from_nanos(i64::from(z.subsec_nanosecond())),
                    )?;
                }
                z = shift(&z, SignedDuration::from_secs(i64::from(60 - z.second())))?;
                continue 'wrap;
            }
            return Some(z.timestamp());
        }
    }
}

#[cfg(test)]
#[path = "schedule_tests.rs"]
mod tests;
