//! The CronJob controller (upstream `pkg/controller/cronjob`, controller v2, v1.33
//! behaviour).
//!
//! Each CronJob is synced when its Jobs change and re-queued for its next scheduled
//! time (plus 100ms), never polled. A sync creates the Job for the most recent unmet
//! schedule time — named `<cronjob>-<minutes since the epoch>`, so a schedule time can
//! only ever produce one Job — honouring `startingDeadlineSeconds`, `suspend`, the
//! concurrency policy (Allow, Forbid, Replace) and `timeZone`; it keeps `status.active`,
//! `lastScheduleTime` and `lastSuccessfulTime`, and deletes finished Jobs beyond the
//! history limits.
//!
//! Time comes from a [`Clock`], so tests can move it instead of waiting for schedules.

mod controller;
mod sync;
mod utils;

use crate::Context;
use jiff::{SignedDuration, Timestamp};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

pub use controller::CronJobError;

/// The controller's source of time.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;

    /// Changes whenever the clock jumps (manual clocks), so every CronJob is re-examined;
    /// `None` for clocks that just run.
    fn jumps(&self) -> Option<watch::Receiver<u64>> {
        None
    }
}

/// The system clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that stands still until moved (for tests).
pub struct FakeClock {
    now: Mutex<Timestamp>,
    jumps: watch::Sender<u64>,
}

impl FakeClock {
    /// A clock reading `start`.
    pub fn new(start: Timestamp) -> Arc<FakeClock> {
        Arc::new(FakeClock {
            now: Mutex::new(start),
            jumps: watch::Sender::new(0),
        })
    }

    /// Set the time.
    pub fn set(&self, t: Timestamp) {
        *self.now.lock().unwrap_or_else(|p| p.into_inner()) = t;
        self.jumps.send_modify(|n| *n += 1);
    }

    /// Move the time by `d`.
    pub fn advance(&self, d: SignedDuration) {
        let t = self.now() + d;
        self.set(t);
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Timestamp {
        *self.now.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn jumps(&self) -> Option<watch::Receiver<u64>> {
        Some(self.jumps.subscribe())
    }
}

/// Run the controller on the system clock.
pub async fn run(ctx: Context) -> anyhow::Result<()> {
    run_with(ctx, Arc::new(SystemClock)).await
}

/// Run the controller on `clock`.
pub async fn run_with(ctx: Context, clock: Arc<dyn Clock>) -> anyhow::Result<()> {
    controller::run(ctx, clock).await
}
