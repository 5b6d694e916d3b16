//! Durations as Go's `time.Duration.String` prints them, for fields and messages that
//! carry one as text (a PodMetrics `window`, an event's pull time).

use std::time::Duration;

/// `d` truncated to milliseconds, printed as Go does (`523ms`, `1.5s`, `2m3.25s`,
/// `1h0m1s`).
pub fn go_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let (h, rest) = (ms / 3_600_000, ms % 3_600_000);
    let (m, rest) = (rest / 60_000, rest % 60_000);
    let (s, frac) = (rest / 1000, rest % 1000);
    let mut secs = s.to_string();
    if frac > 0 {
        let f = format!("{frac:03}");
        secs.push('.');
        secs.push_str(f.trim_end_matches('0'));
    }
    match (h, m) {
        (0, 0) => format!("{secs}s"),
        (0, m) => format!("{m}m{secs}s"),
        (h, m) => format!("{h}h{m}m{secs}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(go_duration(Duration::from_micros(300)), "0s");
        assert_eq!(go_duration(Duration::from_millis(523)), "523ms");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::from_millis(2000)), "2s");
        assert_eq!(go_duration(Duration::from_millis(15_045)), "15.045s");
        assert_eq!(go_duration(Duration::from_millis(123_250)), "2m3.25s");
        assert_eq!(
            go_duration(Duration::from_millis(3_600_000 + 1000)),
            "1h0m1s"
        );
    }
}
