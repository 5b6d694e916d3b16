//! Exponential back-off per key (a container's restarts, an image's pulls): 10 s doubling
//! to 5 minutes, like upstream. An entry idle for twice the maximum starts over.

use std::collections::HashMap;
use std::time::{Duration, Instant};

pub const INITIAL: Duration = Duration::from_secs(10);
pub const MAX: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy)]
struct Entry {
    delay: Duration,
    last_update: Instant,
}

/// Back-off state for many keys.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    entries: HashMap<String, Entry>,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(INITIAL, MAX)
    }
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max,
            entries: HashMap::new(),
        }
    }

    fn live(&self, key: &str, now: Instant) -> Option<Entry> {
        self.entries
            .get(key)
            .copied()
            .filter(|e| now.saturating_duration_since(e.last_update) <= self.max * 2)
    }

    /// While in back-off for an event at `since` (e.g. when the container exited): the
    /// instant the back-off ends.
    pub fn in_backoff_until(&self, key: &str, since: Instant, now: Instant) -> Option<Instant> {
        let e = self.live(key, now)?;
        let end = since + e.delay;
        (now < end).then_some(end)
    }

    /// Records an attempt now: the first delay is `initial`, then it doubles up to `max`.
    pub fn next(&mut self, key: &str, now: Instant) {
        let delay = match self.live(key, now) {
            Some(e) => (e.delay * 2).min(self.max),
            None => self.initial,
        };
        self.entries.insert(
            key.to_string(),
            Entry {
                delay,
                last_update: now,
            },
        );
    }

    /// The current delay for `key`.
    pub fn delay(&self, key: &str) -> Option<Duration> {
        self.entries.get(key).map(|e| e.delay)
    }

    pub fn reset(&mut self, key: &str) {
        self.entries.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_max_and_expires() {
        let mut b = Backoff::default();
        let t0 = Instant::now();
        assert!(b.in_backoff_until("c", t0, t0).is_none());
        b.next("c", t0);
        assert_eq!(b.delay("c"), Some(INITIAL));
        // An exit right after the restart waits the full delay from the exit.
        let exit = t0 + Duration::from_secs(1);
        assert_eq!(b.in_backoff_until("c", exit, exit), Some(exit + INITIAL));
        assert!(b.in_backoff_until("c", exit, exit + INITIAL).is_none());
        for _ in 0..10 {
            b.next("c", t0);
        }
        assert_eq!(b.delay("c"), Some(MAX));
        // Long idle: starts over.
        let later = t0 + MAX * 3;
        assert!(b.in_backoff_until("c", later, later).is_none());
        b.next("c", later);
        assert_eq!(b.delay("c"), Some(INITIAL));
    }
}
