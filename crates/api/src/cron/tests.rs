//! Unit tests for cron schedules: validation messages (as the API server reports them),
//! next-time computation, time zones and DST.

use std::path::Path;

use jiff::Timestamp;

use super::zone::ZONEINFO;
use super::*;

// --- Validation (`parse_standard`, `validate_time_zone`) ---

#[test]
fn accepts_standard_schedules() {
    for ok in [
        "* * * * *",
        "*/5 * * * *",
        "0 0 1 1 *",
        "0 9-17 * * MON-FRI",
        "15,45 */2 ? jan,Jul sun",
        "5/15 * * * *",
        "@hourly",
        "@every 1h30m",
        "TZ=UTC 0 0 * * *",
        "0  0   *  *  *",
    ] {
        assert_eq!(parse_standard(ok), Ok(()), "{ok}");
    }
}

#[test]
fn rejects_with_library_messages() {
    let cases = [
        ("", "empty spec string"),
        ("foo", "expected exactly 5 fields, found 1: [foo]"),
        ("* * * *", "expected exactly 5 fields, found 4: [* * * *]"),
        ("60 * * * *", "end of range (60) above maximum (59): 60"),
        ("* * 0 * *", "beginning of range (0) below minimum (1): 0"),
        (
            "5-1 * * * *",
            "beginning of range (5) beyond end of range (1): 5-1",
        ),
        (
            "*/0 * * * *",
            "step of range should be a positive number: */0",
        ),
        ("1-2-3 * * * *", "too many hyphens: 1-2-3"),
        ("*/1/2 * * * *", "too many slashes: */1/2"),
        (
            "x * * * *",
            "failed to parse int from x: strconv.Atoi: parsing \"x\": invalid syntax",
        ),
        ("@foo", "unrecognized descriptor: @foo"),
        (
            "99999999999999999999 * * * *",
            "failed to parse int from 99999999999999999999: strconv.Atoi: parsing \"99999999999999999999\": value out of range",
        ),
        (
            "@every x",
            "failed to parse duration @every x: time: invalid duration \"x\"",
        ),
    ];
    for (spec, want) in cases {
        assert_eq!(
            parse_standard(spec),
            Err(ScheduleError(want.to_string())),
            "{spec}"
        );
    }
}

#[test]
fn time_zones() {
    assert!(validate_time_zone("UTC").is_empty());
    assert_eq!(
        validate_time_zone(""),
        vec!["timeZone must be nil or non-empty string".to_string()]
    );
    assert_eq!(
        validate_time_zone("../etc"),
        vec!["unknown time zone ../etc".to_string()]
    );
    assert_eq!(validate_time_zone("Local").len(), 1);
    if Path::new(ZONEINFO).join("Europe/Berlin").is_file() {
        assert!(validate_time_zone("Europe/Berlin").is_empty());
        assert_eq!(
            validate_time_zone("Mars/Base"),
            vec!["unknown time zone Mars/Base".to_string()]
        );
    }
}

// --- Scheduling (`Schedule::parse`, `Schedule::next`) ---

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
