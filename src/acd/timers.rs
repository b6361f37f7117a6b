//! The ACD's deadlines, each with its reason.
//!
//! An exact ordered set rather than [`crate::time::TimerQueue`]'s lazy heap:
//! calls re-arm and cancel their timers often (every offer cancels four),
//! and [`super::Acd::poll_timeout`] takes `&self`.

use std::collections::BTreeSet;
use std::hash::Hash;

use crate::ids::CallId;
use crate::time::Instant;

use super::hash::IdMap;
use super::AgentIx;

/// Why the ACD wants to wake up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timer {
    /// Ring-no-answer of the call's current offer.
    Ring(CallId),
    /// The agent's wrap-up ends.
    WrapUp(AgentIx),
    /// The call's next escalation step is due.
    Escalate(CallId),
    /// The call's early escalation point (15 s minus the lead).
    Early(CallId),
    /// The call reaches its queue's max wait.
    MaxWait(CallId),
    /// The call's next comfort announcement.
    Comfort(CallId),
}

/// Deadlines keyed by `K`; re-arming a key replaces its deadline.
#[derive(Debug)]
pub(crate) struct Deadlines<K: Ord + Copy + Hash> {
    order: BTreeSet<(Instant, K)>,
    live: IdMap<K, Instant>,
}

impl<K: Ord + Copy + Hash> Default for Deadlines<K> {
    fn default() -> Self {
        Self {
            order: BTreeSet::new(),
            live: IdMap::default(),
        }
    }
}

impl<K: Ord + Copy + Hash> Deadlines<K> {
    /// Arm (or re-arm) `key` at `at`.
    pub(crate) fn set(&mut self, key: K, at: Instant) {
        if let Some(old) = self.live.insert(key, at) {
            self.order.remove(&(old, key));
        }
        self.order.insert((at, key));
    }

    /// Disarm `key` (no-op when not armed).
    pub(crate) fn cancel(&mut self, key: K) {
        if let Some(old) = self.live.remove(&key) {
            self.order.remove(&(old, key));
        }
    }

    /// The earliest deadline.
    pub(crate) fn earliest(&self) -> Option<(Instant, K)> {
        self.order.first().copied()
    }

    /// Remove and return one timer due at `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<K> {
        let (at, key) = *self.order.first()?;
        if at > now {
            return None;
        }
        self.order.pop_first();
        self.live.remove(&key);
        Some(key)
    }

    /// Whether `key` is armed.
    pub(crate) fn is_armed(&self, key: K) -> bool {
        self.live.contains_key(&key)
    }

    /// Number of armed timers.
    pub(crate) fn len(&self) -> usize {
        self.live.len()
    }
}
