//! Next activation time of a schedule (robfig/cron v3 `SpecSchedule.Next`), walking the
//! wall clock of the schedule's zone so daylight-saving jumps behave as upstream's.

use jiff::civil::{DateTime, date};
use jiff::{SignedDuration, Timestamp, ToSpan, Zoned};

use super::{Kind, STAR, Schedule};

impl Schedule {
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
