//! Pod-failure backoff: after consecutive failures a Job waits `base × 2^(n-1)` (capped)
//! since the last failure before creating replacement pods. A success resets the count.

use super::pods::finished_time;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// Consecutive failures since the last success, and when the last one happened.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    pub failures_after_last_success: u32,
    pub last_failure: Option<Timestamp>,
}

impl Record {
    /// How long until replacements may be created (zero when allowed now).
    pub fn remaining(&self, now: Timestamp, base: Duration, max: Duration) -> Duration {
        let (n, Some(last)) = (self.failures_after_last_success, self.last_failure) else {
            return Duration::ZERO;
        };
        if n == 0 {
            return Duration::ZERO;
        }
        let mut backoff = base;
        for _ in 1..n {
            backoff = backoff.saturating_mul(2);
            if backoff >= max {
                backoff = max;
                break;
            }
        }
        let elapsed = now
            .duration_since(last)
            .try_into()
            .unwrap_or(Duration::ZERO);
        backoff.saturating_sub(elapsed)
    }
}

/// Backoff records per Job key (kept in memory like upstream: a restart forgets them).
#[derive(Default)]
pub struct Store {
    records: Mutex<HashMap<String, Record>>,
}

impl Store {
    /// The record after counting pods newly seen succeeded/failed this sync (not saved).
    pub fn next_record(&self, key: &str, succeeded: &[&Pod], failed: &[&Pod]) -> Record {
        let mut rec = self
            .records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned()
            .unwrap_or_default();
        let mut failed_times: Vec<Timestamp> = failed.iter().map(|p| finished_time(p)).collect();
        failed_times.sort();
        let last_success = succeeded.iter().map(|p| finished_time(p)).max();
        match last_success {
            None => {
                if let Some(&last) = failed_times.last() {
                    rec.failures_after_last_success += failed_times.len() as u32;
                    rec.last_failure = Some(last);
                }
            }
            Some(success) => {
                rec.failures_after_last_success = 0;
                rec.last_failure = None;
                for &t in failed_times.iter().rev() {
                    if t <= success {
                        break;
                    }
                    if rec.last_failure.is_none() {
                        rec.last_failure = Some(t);
                    }
                    rec.failures_after_last_success += 1;
                }
            }
        }
        rec
    }

    /// Save `rec` for `key`.
    pub fn update(&self, key: &str, rec: Record) {
        self.records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.to_string(), rec);
    }

    /// Forget `key` (finished or deleted Job).
    pub fn remove(&self, key: &str) {
        self.records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateTerminated, ContainerStatus, PodStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn finished_at(ts: Timestamp) -> Pod {
        Pod {
            status: Some(PodStatus {
                container_statuses: Some(vec![ContainerStatus {
                    name: "c".into(),
                    state: Some(ContainerState {
                        terminated: Some(ContainerStateTerminated {
                            finished_at: Some(Time(ts)),
                            exit_code: 1,
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn exponential_and_capped() {
        let t0 = Timestamp::from_second(1_000_000).expect("ts");
        let base = Duration::from_secs(10);
        let max = Duration::from_secs(600);
        let rec = |n| Record {
            failures_after_last_success: n,
            last_failure: Some(t0),
        };
        assert_eq!(rec(1).remaining(t0, base, max), Duration::from_secs(10));
        assert_eq!(rec(3).remaining(t0, base, max), Duration::from_secs(40));
        assert_eq!(rec(20).remaining(t0, base, max), max);
        let later = t0 + jiff::SignedDuration::from_secs(15);
        assert_eq!(rec(2).remaining(later, base, max), Duration::from_secs(5));
        assert_eq!(rec(1).remaining(later, base, max), Duration::ZERO);
    }

    #[test]
    fn success_resets_failures_before_it() {
        let s = Store::default();
        let t = |n| Timestamp::from_second(n).expect("ts");
        let f1 = finished_at(t(10));
        let f2 = finished_at(t(30));
        let ok = finished_at(t(20));
        let r = s.next_record("k", &[], &[&f1]);
        assert_eq!(r.failures_after_last_success, 1);
        s.update("k", r);
        let r = s.next_record("k", &[&ok], &[&f2]);
        assert_eq!(r.failures_after_last_success, 1);
        assert_eq!(r.last_failure, Some(t(30)));
    }
}
