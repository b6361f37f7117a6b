//! Time: the only module that reads a clock.
//!
//! Cores take `now: Instant` as an argument and report the next deadline as
//! `(Instant, Reason)`. The driver reads the clock here (through tokio's
//! clock, so `start_paused` tests drive the whole stack) and tests build
//! instants from a fixed base, so a whole call runs in virtual time.

pub use std::time::{Duration, Instant};

/// The wall clock, for the driver only.
#[allow(clippy::disallowed_methods)]
pub fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// Wall-clock time since the Unix epoch, for the driver only (seeds, record stamps).
#[allow(clippy::disallowed_methods)]
pub fn unix_now() -> Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
}

/// The earliest of several deadlines, each with its reason (str0m's `Soonest`).
pub trait Soonest<R> {
    /// Keep the earlier of `self` and `other`.
    fn soonest(self, other: Option<(Instant, R)>) -> Option<(Instant, R)>;
}

impl<R> Soonest<R> for Option<(Instant, R)> {
    fn soonest(self, other: Option<(Instant, R)>) -> Option<(Instant, R)> {
        match (self, other) {
            (None, o) => o,
            (s, None) => s,
            (Some(a), Some(b)) => {
                if b.0 < a.0 {
                    Some(b)
                } else {
                    Some(a)
                }
            }
        }
    }
}

/// A min-heap of deadlines keyed by `K`, where re-arming a key replaces its
/// deadline (stale heap entries are skipped lazily on pop).
#[derive(Debug)]
pub struct TimerQueue<K: Ord + Copy> {
    heap: std::collections::BinaryHeap<std::cmp::Reverse<(Instant, u64, K)>>,
    live: std::collections::HashMap<K, (Instant, u64)>,
    seq: u64,
}

impl<K: Ord + Copy + std::hash::Hash> Default for TimerQueue<K> {
    fn default() -> Self {
        Self {
            heap: Default::default(),
            live: Default::default(),
            seq: 0,
        }
    }
}

impl<K: Ord + Copy + std::hash::Hash> TimerQueue<K> {
    /// Arm (or re-arm) the timer `key` at `at`.
    pub fn set(&mut self, key: K, at: Instant) {
        self.seq += 1;
        self.live.insert(key, (at, self.seq));
        self.heap.push(std::cmp::Reverse((at, self.seq, key)));
    }

    /// Disarm `key`.
    pub fn cancel(&mut self, key: K) {
        self.live.remove(&key);
    }

    /// Whether `key` is armed.
    pub fn is_armed(&self, key: &K) -> bool {
        self.live.contains_key(key)
    }

    fn skip_stale(&mut self) {
        while let Some(std::cmp::Reverse((_, seq, key))) = self.heap.peek() {
            match self.live.get(key) {
                Some((_, s)) if s == seq => return,
                _ => {
                    self.heap.pop();
                }
            }
        }
    }

    /// The earliest armed deadline.
    pub fn earliest(&mut self) -> Option<(Instant, K)> {
        self.skip_stale();
        self.heap
            .peek()
            .map(|std::cmp::Reverse((at, _, k))| (*at, *k))
    }

    /// Pop one timer that is due at `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<K> {
        self.skip_stale();
        let std::cmp::Reverse((at, _, key)) = *self.heap.peek()?;
        if at > now {
            return None;
        }
        self.heap.pop();
        self.live.remove(&key);
        Some(key)
    }

    /// Number of armed timers.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    /// Whether no timer is armed.
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }
}

/// An instant about a year after the process's first use of this function:
/// "no deadline" for loops that need one.
pub fn far_future() -> Instant {
    use std::sync::OnceLock;
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(now) + Duration::from_secs(365 * 24 * 3600)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rearm_replaces_and_cancel_removes() {
        let t0 = now();
        let mut q = TimerQueue::default();
        q.set(1u32, t0 + Duration::from_secs(5));
        q.set(2u32, t0 + Duration::from_secs(3));
        q.set(1u32, t0 + Duration::from_secs(1));
        assert_eq!(q.earliest(), Some((t0 + Duration::from_secs(1), 1)));
        assert_eq!(q.pop_due(t0), None);
        assert_eq!(q.pop_due(t0 + Duration::from_secs(1)), Some(1));
        // the stale 5 s entry for key 1 is never returned
        q.cancel(2);
        assert_eq!(q.pop_due(t0 + Duration::from_secs(10)), None);
        assert!(q.is_empty());
    }
}
