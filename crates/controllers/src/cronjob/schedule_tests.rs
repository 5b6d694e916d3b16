//! Unit tests for cron schedule parsing and next-time computation.

use super::*;

fn utc(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

fn next(spec: &str, tz: &str, after: &str) -> Option<String> {
    let tz = TimeZone::get(tz).expect("tz");
    Schedule::parse(spec, tz)
        .expect("parse")
        .next(utc(after))
        .map(|t| t.to_string())
}

#[test]
fn every_minute_and_steps() {
    assert_eq!(
        next("* * * * *", "UTC", "2024-01-01T10:00:30Z").as_deref(),
        Some("2024-01-01T10:01:00Z")
    );
    assert_eq!(
        next("* * * * *", "UTC", "2024-01-01T10:00:00Z").as_deref(),
        Some("2024-01-01T10:01:00Z")
    );
    assert_eq!(
        next("*/15 * * * *", "UTC", "2024-01-01T10:16:00Z").as_deref(),
        Some("2024-01-01T10:30:00Z")
    );
    assert_eq!(
        next("5/20 * * * *", "UTC", "2024-01-01T10:46:00Z").as_deref(),
        Some("2024-01-01T11:05:00Z")
    );
    assert_eq!(
        next("0 9-17 * * MON-FRI", "UTC", "2024-01-05T17:30:00Z").as_deref(),
        Some("2024-01-08T09:00:00Z")
    );
    assert_eq!(
        next("30 2 1,15 * *", "UTC", "2024-01-02T00:00:00Z").as_deref(),
        Some("2024-01-15T02:30:00Z")
    );
}

#[test]
fn descriptors() {
    assert_eq!(
        next("@hourly", "UTC", "2024-01-01T10:00:00Z").as_deref(),
        Some("2024-01-01T11:00:00Z")
    );
    assert_eq!(
        next("@daily", "UTC", "2024-01-01T10:00:00Z").as_deref(),
        Some("2024-01-02T00:00:00Z")
    );
    assert_eq!(
        next("@weekly", "UTC", "2024-01-01T10:00:00Z").as_deref(),
        Some("2024-01-07T00:00:00Z")
    );
    assert_eq!(
        next("@monthly", "UTC", "2024-01-15T10:00:00Z").as_deref(),
        Some("2024-02-01T00:00:00Z")
    );
    assert_eq!(
        next("@yearly", "UTC", "2024-03-01T00:00:00Z").as_deref(),
        Some("2025-01-01T00:00:00Z")
    );
    assert_eq!(
        next("@every 90s", "UTC", "2024-01-01T10:00:00.5Z").as_deref(),
        Some("2024-01-01T10:01:30Z")
    );
}

#[test]
fn day_of_month_or_day_of_week() {
    // Both restricted: either matches (the 13th, or a Friday).
    assert_eq!(
        next("0 0 13 * FRI", "UTC", "2024-01-01T00:00:00Z").as_deref(),
        Some("2024-01-05T00:00:00Z")
    );
    // One is `*`: both must match.
    assert_eq!(
        next("0 0 * * FRI", "UTC", "2024-01-01T00:00:00Z").as_deref(),
        Some("2024-01-05T00:00:00Z")
    );
    assert_eq!(
        next("0 0 13 * *", "UTC", "2024-01-01T00:00:00Z").as_deref(),
        Some("2024-01-13T00:00:00Z")
    );
    // Never: February 30th.
    assert_eq!(next("0 0 30 2 *", "UTC", "2024-01-01T00:00:00Z"), None);
}

#[test]
fn time_zones_and_dst() {
    // 09:00 in Kolkata (+05:30) is 03:30 UTC.
    assert_eq!(
        next("0 9 * * *", "Asia/Kolkata", "2024-01-01T00:00:00Z").as_deref(),
        Some("2024-01-01T03:30:00Z")
    );
    // Spring forward in New York (2024-03-10, 02:00 → 03:00): 02:30 does not exist.
    assert_eq!(
        next("30 2 * * *", "America/New_York", "2024-03-09T12:00:00Z").as_deref(),
        Some("2024-03-11T06:30:00Z")
    );
    // A TZ= prefix wins over the default zone.
    assert_eq!(
        next("TZ=Asia/Tokyo 0 0 * * *", "UTC", "2024-01-01T00:00:00Z").as_deref(),
        Some("2024-01-01T15:00:00Z")
    );
}

#[test]
fn parse_errors() {
    let err = |s: &str| Schedule::parse(s, TimeZone::UTC).expect_err(s).0;
    assert_eq!(
        err("* * * *"),
        "expected exactly 5 fields, found 4: [* * * *]"
    );
    assert_eq!(
        err("60 * * * *"),
        "end of range (60) above maximum (59): 60"
    );
    assert_eq!(
        err("*/0 * * * *"),
        "step of range should be a positive number: */0"
    );
    assert_eq!(err("@fortnightly"), "unrecognized descriptor: @fortnightly");
    assert!(Schedule::parse("0 0 * jan-mar sun", TimeZone::UTC).is_ok());
    assert!(Schedule::parse("TZ=Mars/Base * * * * *", TimeZone::UTC).is_err());
}

#[test]
fn go_durations() {
    assert_eq!(
        parse_go_duration("1h30m"),
        Some(SignedDuration::from_secs(5400))
    );
    assert_eq!(
        parse_go_duration("1.5s"),
        Some(SignedDuration::from_millis(1500))
    );
    assert_eq!(parse_go_duration("x"), None);
}
