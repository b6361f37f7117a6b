//! Per-queue call figures in per-minute buckets: O(1) per event, a ring of
//! 1,440 minutes (24 h) per queue, summed when asked.

use crate::time::{Duration, Instant};

/// Minutes in the 24-hour ring.
pub(crate) const MINUTES: usize = 24 * 60;
const MINUTE: Duration = Duration::from_secs(60);
/// Answered within this counts for the 15-second ratio.
pub(crate) const SERVICE_LEVEL: Duration = Duration::from_secs(15);
/// Abandons shorter than this are left out of the 15-second ratio.
pub(crate) const SHORT_ABANDON: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    /// Minute number since the epoch of the ring (+1, so 0 is "never used").
    minute: u64,
    answered: u64,
    answered_in_15s: u64,
    abandoned: u64,
    abandoned_short: u64,
    expired: u64,
    refused: u64,
    /// Sum of answered waits, in milliseconds.
    wait_ms: u64,
}

/// One event that ends a call in a queue (or refuses it).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Ended {
    Answered(Duration),
    Abandoned(Duration),
    Expired,
    Refused,
}

/// Sums over a span of minutes.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Sums {
    pub(crate) answered: u64,
    pub(crate) answered_in_15s: u64,
    pub(crate) abandoned: u64,
    pub(crate) abandoned_short: u64,
    pub(crate) expired: u64,
    pub(crate) refused: u64,
    pub(crate) wait_ms: u64,
}

#[derive(Debug)]
pub(crate) struct Ring {
    epoch: Instant,
    buckets: Box<[Bucket]>,
}

impl Ring {
    pub(crate) fn new(epoch: Instant) -> Self {
        Self {
            epoch,
            buckets: vec![Bucket::default(); MINUTES].into_boxed_slice(),
        }
    }

    /// Minute number of `now`, 1-based.
    fn minute(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_secs() / MINUTE.as_secs() + 1
    }

    pub(crate) fn record(&mut self, now: Instant, what: Ended) {
        let m = self.minute(now);
        let len = self.buckets.len() as u64;
        let Some(b) = self.buckets.get_mut((m % len) as usize) else {
            return;
        };
        if b.minute != m {
            *b = Bucket {
                minute: m,
                ..Bucket::default()
            };
        }
        match what {
            Ended::Answered(wait) => {
                b.answered += 1;
                if wait <= SERVICE_LEVEL {
                    b.answered_in_15s += 1;
                }
                b.wait_ms += u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
            }
            Ended::Abandoned(wait) => {
                b.abandoned += 1;
                if wait < SHORT_ABANDON {
                    b.abandoned_short += 1;
                }
            }
            Ended::Expired => b.expired += 1,
            Ended::Refused => b.refused += 1,
        }
    }

    /// Sums over the last `minutes` minutes, the current one included.
    pub(crate) fn sums(&self, now: Instant, minutes: u64) -> Sums {
        let m = self.minute(now);
        let from = m.saturating_sub(minutes.clamp(1, MINUTES as u64) - 1);
        let mut s = Sums::default();
        for b in self.buckets.iter() {
            if b.minute >= from && b.minute <= m && b.minute != 0 {
                s.answered += b.answered;
                s.answered_in_15s += b.answered_in_15s;
                s.abandoned += b.abandoned;
                s.abandoned_short += b.abandoned_short;
                s.expired += b.expired;
                s.refused += b.refused;
                s.wait_ms += b.wait_ms;
            }
        }
        s
    }
}

/// Whole minutes of a window, rounded up, at least 1, at most 24 h.
pub(crate) fn window_minutes(window: Duration) -> u64 {
    window
        .as_secs()
        .div_ceil(MINUTE.as_secs())
        .clamp(1, MINUTES as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_roll_over_after_a_day() {
        let t0 = crate::time::now();
        let mut r = Ring::new(t0);
        r.record(t0, Ended::Answered(Duration::from_secs(3)));
        r.record(
            t0 + Duration::from_secs(90),
            Ended::Abandoned(Duration::from_secs(2)),
        );
        let s = r.sums(t0 + Duration::from_secs(100), MINUTES as u64);
        assert_eq!((s.answered, s.abandoned, s.abandoned_short), (1, 1, 1));
        // a 1-minute window sees only the current minute
        let s = r.sums(t0 + Duration::from_secs(100), 1);
        assert_eq!((s.answered, s.abandoned), (0, 1));
        // a day later both have left the window
        let later = t0 + Duration::from_secs(24 * 3600 + 120);
        assert_eq!(r.sums(later, MINUTES as u64).answered, 0);
        assert_eq!(r.sums(later, MINUTES as u64).abandoned, 0);
        // and the ring reuses the slot
        r.record(later, Ended::Expired);
        assert_eq!(r.sums(later, MINUTES as u64).expired, 1);
    }

    #[test]
    fn window_rounds_up_to_minutes() {
        assert_eq!(window_minutes(Duration::from_secs(30 * 60)), 30);
        assert_eq!(window_minutes(Duration::from_secs(61)), 2);
        assert_eq!(window_minutes(Duration::ZERO), 1);
        assert_eq!(window_minutes(Duration::from_secs(3 * 86_400)), 1440);
    }
}
