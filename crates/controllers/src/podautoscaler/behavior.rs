//! From the metrics' proposal to the count actually set (upstream
//! `normalizeDesiredReplicas[WithBehaviors]`): recent recommendations stabilize it (a
//! scale-down takes the highest recommendation within the window, a scale-up the
//! lowest), recent scale events rate-limit it through the scaling policies, and the
//! result is clamped to [minReplicas, maxReplicas]. The history is per HPA and in memory,
//! as upstream keeps it.

use k8s_openapi::api::autoscaling::v2::HPAScalingRules;
use std::time::{Duration, Instant};

/// How a policy limits a change per period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyKind {
    /// At most `value` pods.
    Pods,
    /// At most `value` percent of the count at the start of the period.
    Percent,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    pub kind: PolicyKind,
    pub value: i32,
    pub period_seconds: i32,
}

/// Which policy wins when several apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Select {
    /// The one allowing the biggest change.
    Max,
    /// The one allowing the smallest change.
    Min,
    /// No change in this direction at all.
    Disabled,
}

/// One direction's rules, defaults filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rules {
    pub stabilization_window_seconds: i32,
    pub select: Select,
    pub policies: Vec<Policy>,
}

const fn policy(kind: PolicyKind, value: i32) -> Policy {
    Policy {
        kind,
        value,
        period_seconds: 15,
    }
}

impl Rules {
    /// Scale-up rules: no stabilization; 100 % or 4 pods per 15 s, whichever is more.
    pub fn scale_up(spec: Option<&HPAScalingRules>) -> Rules {
        let defaults = [
            policy(PolicyKind::Pods, 4),
            policy(PolicyKind::Percent, 100),
        ];
        Rules::with_defaults(spec, 0, &defaults)
    }

    /// Scale-down rules: `window` of stabilization unless set (the controller's
    /// `--horizontal-pod-autoscaler-downscale-stabilization`); 100 % per 15 s.
    pub fn scale_down(spec: Option<&HPAScalingRules>, window: Duration) -> Rules {
        let window = i32::try_from(window.as_secs()).unwrap_or(i32::MAX);
        Rules::with_defaults(spec, window, &[policy(PolicyKind::Percent, 100)])
    }

    fn with_defaults(spec: Option<&HPAScalingRules>, window: i32, defaults: &[Policy]) -> Rules {
        let select = match spec.and_then(|s| s.select_policy.as_deref()) {
            Some("Min") => Select::Min,
            Some("Disabled") => Select::Disabled,
            _ => Select::Max,
        };
        let policies = match spec.and_then(|s| s.policies.as_ref()) {
            Some(list) => list
                .iter()
                .filter_map(|p| {
                    let kind = match p.type_.as_str() {
                        "Pods" => PolicyKind::Pods,
                        "Percent" => PolicyKind::Percent,
                        _ => return None,
                    };
                    Some(Policy {
                        kind,
                        value: p.value,
                        period_seconds: p.period_seconds,
                    })
                })
                .collect(),
            None => defaults.to_vec(),
        };
        Rules {
            stabilization_window_seconds: spec
                .and_then(|s| s.stabilization_window_seconds)
                .unwrap_or(window),
            select,
            policies,
        }
    }

    fn longest_period(&self) -> i32 {
        self.policies
            .iter()
            .map(|p| p.period_seconds)
            .max()
            .unwrap_or(0)
    }
}

/// The outcome: the count, and the AbleToScale / ScalingLimited conditions it implies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Normalized {
    pub replicas: i32,
    /// AbleToScale=True's reason and message.
    pub able: (&'static str, &'static str),
    /// ScalingLimited: status, reason, message.
    pub limited: (bool, &'static str, &'static str),
}

#[derive(Clone, Copy, Debug)]
struct Recommendation {
    replicas: i32,
    at: Instant,
}

#[derive(Clone, Copy, Debug)]
struct ScaleEvent {
    change: i32,
    at: Instant,
    outdated: bool,
}

/// One HPA's recent recommendations and scale events.
#[derive(Debug, Default)]
pub struct History {
    recommendations: Vec<Recommendation>,
    scale_ups: Vec<ScaleEvent>,
    scale_downs: Vec<ScaleEvent>,
}

/// `now - secs`; `None` when that predates the clock's range (everything is newer).
fn cutoff(now: Instant, d: Duration) -> Option<Instant> {
    now.checked_sub(d)
}

fn secs(s: i32) -> Duration {
    Duration::from_secs(u64::try_from(s).unwrap_or(0))
}

fn after(t: Instant, cut: Option<Instant>) -> bool {
    cut.is_none_or(|c| t > c)
}

fn before(t: Instant, cut: Option<Instant>) -> bool {
    cut.is_some_and(|c| t < c)
}

const READY: (&str, &str) = ("ReadyForNewScale", "recommended size matches current size");
const DOWN_STABILIZED: (&str, &str) = (
    "ScaleDownStabilized",
    "recent recommendations were higher than current one, applying the highest recent recommendation",
);
const UP_STABILIZED: (&str, &str) = (
    "ScaleUpStabilized",
    "recent recommendations were lower than current one, applying the lowest recent recommendation",
);
const WITHIN: (bool, &str, &str) = (
    false,
    "DesiredWithinRange",
    "the desired count is within the acceptable range",
);
const TOO_MANY: (&str, &str) = (
    "TooManyReplicas",
    "the desired replica count is more than the maximum replica count",
);
const TOO_FEW: (&str, &str) = (
    "TooFewReplicas",
    "the desired replica count is less than the minimum replica count",
);
const UP_LIMIT: (&str, &str) = (
    "ScaleUpLimit",
    "the desired replica count is increasing faster than the maximum scale rate",
);
const DOWN_LIMIT: (&str, &str) = (
    "ScaleDownLimit",
    "the desired replica count is decreasing faster than the maximum scale rate",
);

impl History {
    /// Seed the history with the current count the first time the HPA is seen.
    pub fn record_initial(&mut self, current: i32, now: Instant) {
        if self.recommendations.is_empty() {
            self.recommendations.push(Recommendation {
                replicas: current,
                at: now,
            });
        }
    }

    /// Store `r` in place of a recommendation outside every window, or append it.
    fn record(&mut self, stale: Option<usize>, replicas: i32, now: Instant) {
        let r = Recommendation { replicas, at: now };
        match stale.and_then(|i| self.recommendations.get_mut(i)) {
            Some(slot) => *slot = r,
            None => self.recommendations.push(r),
        }
    }

    /// Without `spec.behavior` (upstream `normalizeDesiredReplicas`): the highest
    /// recommendation of the last `window`, at most double (at least 4) per sync.
    pub fn normalize(
        &mut self,
        window: Duration,
        current: i32,
        desired: i32,
        (min, max): (i32, i32),
        now: Instant,
    ) -> Normalized {
        let cut = cutoff(now, window);
        let mut stabilized = desired;
        let mut stale = None;
        for (i, r) in self.recommendations.iter().enumerate() {
            if before(r.at, cut) {
                stale = Some(i);
            } else if r.replicas > stabilized {
                stabilized = r.replicas;
            }
        }
        self.record(stale, desired, now);
        let able = if stabilized != desired {
            DOWN_STABILIZED
        } else {
            READY
        };
        let up_limit = (2.0 * f64::from(current)).max(4.0) as i32;
        let (allowed_max, max_reason) = if max > up_limit {
            (up_limit, UP_LIMIT)
        } else {
            (max, TOO_MANY)
        };
        let (replicas, limited) = if stabilized < min {
            (min, (true, TOO_FEW.0, TOO_FEW.1))
        } else if stabilized > allowed_max {
            (allowed_max, (true, max_reason.0, max_reason.1))
        } else {
            (stabilized, WITHIN)
        };
        Normalized {
            replicas,
            able,
            limited,
        }
    }

    /// With `spec.behavior` (upstream `normalizeDesiredReplicasWithBehaviors`).
    pub fn normalize_with_behaviors(
        &mut self,
        up: &Rules,
        down: &Rules,
        current: i32,
        desired: i32,
        (min, max): (i32, i32),
        now: Instant,
    ) -> Normalized {
        let stabilized = self.stabilize(up, down, current, desired, now);
        let able = match stabilized {
            s if s == desired => READY,
            _ if desired >= current => UP_STABILIZED,
            _ => DOWN_STABILIZED,
        };
        let (replicas, reason) = self.rate_limit(up, down, current, stabilized, (min, max), now);
        let limited = (replicas != stabilized, reason.0, reason.1);
        Normalized {
            replicas,
            able,
            limited,
        }
    }

    /// Upstream `stabilizeRecommendationWithBehaviors`: keep the count between the lowest
    /// recommendation of the scale-up window and the highest of the scale-down window.
    fn stabilize(
        &mut self,
        up: &Rules,
        down: &Rules,
        current: i32,
        desired: i32,
        now: Instant,
    ) -> i32 {
        let up_cut = cutoff(now, secs(up.stabilization_window_seconds));
        let down_cut = cutoff(now, secs(down.stabilization_window_seconds));
        let (mut up_rec, mut down_rec) = (desired, desired);
        let mut stale = None;
        for (i, r) in self.recommendations.iter().enumerate() {
            if after(r.at, up_cut) {
                up_rec = up_rec.min(r.replicas);
            }
            if after(r.at, down_cut) {
                down_rec = down_rec.max(r.replicas);
            }
            if before(r.at, up_cut) && before(r.at, down_cut) {
                stale = Some(i);
            }
        }
        self.record(stale, desired, now);
        current.max(up_rec).min(down_rec)
    }

    /// Upstream `convertDesiredReplicasWithBehaviorRate`: clamp to what the policies allow
    /// given the changes of their periods, and to [min, max].
    fn rate_limit(
        &self,
        up: &Rules,
        down: &Rules,
        current: i32,
        desired: i32,
        (min, max): (i32, i32),
        now: Instant,
    ) -> (i32, (&'static str, &'static str)) {
        if desired > current {
            let limit = self.scale_up_limit(current, up, now).max(current);
            let (allowed, reason) = if max > limit {
                (limit, UP_LIMIT)
            } else {
                (max, TOO_MANY)
            };
            if desired > allowed {
                return (allowed, reason);
            }
        } else if desired < current {
            let limit = self.scale_down_limit(current, down, now).min(current);
            let (allowed, reason) = if min < limit {
                (limit, DOWN_LIMIT)
            } else {
                (min, TOO_FEW)
            };
            if desired < allowed {
                return (allowed, reason);
            }
        }
        (desired, (WITHIN.1, WITHIN.2))
    }

    /// The count at the start of a policy's period: now's, minus what was added since,
    /// plus what was removed.
    fn period_start(&self, current: i32, period_seconds: i32, now: Instant) -> i32 {
        let cut = cutoff(now, secs(period_seconds));
        let sum = |events: &[ScaleEvent]| -> i32 {
            events
                .iter()
                .filter(|e| after(e.at, cut))
                .map(|e| e.change)
                .sum()
        };
        current - sum(&self.scale_ups) + sum(&self.scale_downs)
    }

    fn scale_up_limit(&self, current: i32, rules: &Rules, now: Instant) -> i32 {
        let proposals = rules.policies.iter().map(|p| {
            let start = self.period_start(current, p.period_seconds, now);
            match p.kind {
                PolicyKind::Pods => start.saturating_add(p.value),
                // Rounded up so that a small count can grow at all.
                PolicyKind::Percent => {
                    (f64::from(start) * (1.0 + f64::from(p.value) / 100.0)).ceil() as i32
                }
            }
        });
        match rules.select {
            Select::Disabled => current,
            Select::Min => proposals.min().unwrap_or(i32::MAX),
            Select::Max => proposals.max().unwrap_or(i32::MIN),
        }
    }

    fn scale_down_limit(&self, current: i32, rules: &Rules, now: Instant) -> i32 {
        let proposals = rules.policies.iter().map(|p| {
            let start = self.period_start(current, p.period_seconds, now);
            match p.kind {
                PolicyKind::Pods => start.saturating_sub(p.value),
                PolicyKind::Percent => {
                    (f64::from(start) * (1.0 - f64::from(p.value) / 100.0)) as i32
                }
            }
        });
        // Scaling down, the smallest change is the highest count.
        match rules.select {
            Select::Disabled => current,
            Select::Min => proposals.max().unwrap_or(i32::MIN),
            Select::Max => proposals.min().unwrap_or(i32::MAX),
        }
    }

    /// Remember a change just made (only used with `spec.behavior`), reusing the slot of
    /// an event older than every policy period.
    pub fn record_scale(&mut self, up: &Rules, down: &Rules, from: i32, to: i32, now: Instant) {
        let (events, rules, change) = if to > from {
            (&mut self.scale_ups, up, to - from)
        } else {
            (&mut self.scale_downs, down, from - to)
        };
        let cut = cutoff(now, secs(rules.longest_period()));
        let mut stale = None;
        for (i, e) in events.iter_mut().enumerate() {
            if before(e.at, cut) {
                e.outdated = true;
            }
            if e.outdated {
                stale = Some(i);
            }
        }
        let event = ScaleEvent {
            change,
            at: now,
            outdated: false,
        };
        match stale.and_then(|i| events.get_mut(i)) {
            Some(slot) => *slot = event,
            None => events.push(event),
        }
    }
}

#[cfg(test)]
#[path = "behavior_tests.rs"]
mod tests;
