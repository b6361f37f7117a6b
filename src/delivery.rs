//! The delivery scheduler: which stored item to POST next, and when to try
//! again (sans-IO core; the driver is [`crate::driver::webhook`]).
//!
//! Items are opaque here: an id, a stream (the call id), a sequence number
//! within the stream, an idempotency key and a kind. Bodies stay in the
//! outbox ([`crate::driver::outbox`]).
//!
//! # Rules
//! - **Per-stream order.** Only the head (lowest `seq`) of a stream is ever
//!   in flight or waiting to retry; later items of that stream wait until it
//!   is delivered or dead-lettered. A failing head blocks its own stream
//!   only.
//! - **Global concurrency.** At most [`Policy::concurrency`] items in flight.
//! - **Retry with exponential backoff and full jitter.** After the n-th
//!   failed attempt the item waits a uniform random time in
//!   `0..=min(max_backoff, initial_backoff · 2^(n-1))` (AWS's "full
//!   jitter"), drawn from a seeded [`Rng`]. A `Retry-After` on 429 or 503
//!   replaces the draw, clamped to `initial_backoff..=max_backoff`.
//! - **For as long as configured.** An item whose attempt fails once
//!   [`Policy::retry_for`] has passed since its first attempt is
//!   dead-lettered: parked in the store, kept and replayable, never deleted.
//! - **Nothing is dropped before a 2xx.** 408, 429, 5xx, timeouts and
//!   connection errors are retried; so are the other 4xx, which are
//!   reported as the receiver rejecting ([`Event::Retrying::rejected`]) so
//!   they can be logged and alerted on. A 4xx is usually a bug on one side
//!   or a receiver mid-deploy; dropping the record would lose a citizen's
//!   case, so we keep trying until the window closes, and an operator may
//!   dead-letter the item earlier ([`Delivery::handle_dead_letter`]).
//!
//! # Loop contract
//! After any `handle_*` or `enqueue`, drain [`Delivery::poll_event`] (persist
//! each event) and [`Delivery::poll_post`] (start each POST), then wait for
//! [`Delivery::poll_timeout`], a result or a new item.

use std::collections::{HashMap, VecDeque};

use crate::rng::Rng;
use crate::time::{Duration, Instant, TimerQueue};

/// The outbox row id of an item.
pub type ItemId = u64;

/// One item to deliver, as the scheduler sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// Outbox row id.
    pub id: ItemId,
    /// The ordering domain: items of one stream are delivered in `seq` order.
    pub stream: String,
    /// Position within the stream.
    pub seq: u64,
    /// Idempotency key sent with every attempt.
    pub key: String,
    /// What it is (`call.ended`, `call.record`, ...), sent as the event header.
    pub kind: String,
}

/// What an item went through before this process started (from the store).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct History {
    /// Attempts made so far.
    pub attempts: u32,
    /// Time since the first attempt, if there was one.
    pub since_first_attempt: Option<Duration>,
}

/// Retry and concurrency settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Most items in flight at once (at least 1).
    pub concurrency: usize,
    /// Backoff ceiling after the first failure; doubles per failure.
    pub initial_backoff: Duration,
    /// Largest backoff ceiling.
    pub max_backoff: Duration,
    /// How long after its first attempt an item is still retried.
    pub retry_for: Duration,
}

impl Default for Policy {
    /// 4 in flight, 1 s doubling to 10 min, for 3 days.
    fn default() -> Self {
        Policy {
            concurrency: 4,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(600),
            retry_for: Duration::from_secs(72 * 3600),
        }
    }
}

/// How one attempt ended, as the driver saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The receiver answered with this HTTP status.
    Status {
        /// The status code.
        code: u16,
        /// `Retry-After` in seconds, when the receiver sent one.
        retry_after: Option<Duration>,
    },
    /// No answer within the request timeout.
    Timeout,
    /// Could not connect, or the connection failed mid-request.
    Connection,
}

/// What an [`Outcome`] means for the item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// 2xx: delivered.
    Delivered,
    /// 408, 429, 5xx, timeout, connection: the receiver is unwell; retry.
    Transient,
    /// Any other status (4xx, also 1xx/3xx): the receiver refused it; retry
    /// all the same, and say so loudly.
    Rejected,
}

impl Outcome {
    /// Classify the outcome.
    #[must_use]
    pub fn verdict(&self) -> Verdict {
        match *self {
            Outcome::Status { code, .. } if (200..300).contains(&code) => Verdict::Delivered,
            Outcome::Status { code, .. } if code == 408 || code == 429 || code >= 500 => {
                Verdict::Transient
            }
            Outcome::Status { .. } => Verdict::Rejected,
            Outcome::Timeout | Outcome::Connection => Verdict::Transient,
        }
    }

    /// The `Retry-After` to honour: only on 429 and 503.
    fn retry_after(&self) -> Option<Duration> {
        match *self {
            Outcome::Status {
                code: 429 | 503,
                retry_after,
            } => retry_after,
            _ => None,
        }
    }
}

/// Why an item was dead-lettered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadCause {
    /// It failed after [`Policy::retry_for`] had passed since its first attempt.
    RetryWindowClosed,
    /// An operator asked for it.
    Operator,
}

/// A fact for the driver to persist (and log, and count).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A 2xx arrived: mark it delivered.
    Delivered {
        /// The item.
        id: ItemId,
        /// Attempts it took, this one included.
        attempts: u32,
    },
    /// An attempt failed; the next is due after `after`.
    Retrying {
        /// The item.
        id: ItemId,
        /// Attempts so far.
        attempts: u32,
        /// Backoff before the next attempt.
        after: Duration,
        /// How it failed.
        outcome: Outcome,
        /// The receiver answered a status that is neither success nor a
        /// transient failure (see [`Verdict::Rejected`]).
        rejected: bool,
    },
    /// Parked: kept in the store, replayable, no longer tried.
    DeadLettered {
        /// The item.
        id: ItemId,
        /// Attempts made.
        attempts: u32,
        /// Why.
        cause: DeadCause,
    },
}

/// Why the scheduler wants to be woken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The backoff of this item ends.
    Retry(ItemId),
}

/// [`Delivery::handle_result`] for an item that is not in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("delivery result for item {0}, which is not in flight (a bug in the driver)")]
pub struct NotInFlight(pub ItemId);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Behind the head of its stream, or a head not yet handed out.
    Queued,
    /// Handed out by `poll_post`; `park` when an operator dead-lettered it
    /// meanwhile (a 2xx still counts as delivered).
    InFlight { park: bool },
    /// Head waiting out its backoff.
    Backoff,
}

#[derive(Debug)]
struct Entry {
    item: Item,
    phase: Phase,
    attempts: u32,
    /// Last instant at which a failure is still retried; set at the first attempt.
    deadline: Option<Instant>,
}

/// The scheduler. See the module docs for its rules.
#[derive(Debug)]
pub struct Delivery {
    policy: Policy,
    rng: Rng,
    entries: HashMap<ItemId, Entry>,
    /// Item ids of each stream, ascending `seq`.
    streams: HashMap<String, VecDeque<ItemId>>,
    /// Heads ready to post, in the order they became ready.
    ready: VecDeque<ItemId>,
    timers: TimerQueue<ItemId>,
    in_flight: usize,
    events: VecDeque<Event>,
}

impl Delivery {
    /// A scheduler with `policy` (a concurrency of 0 counts as 1, an
    /// initial backoff above the maximum as the maximum), its jitter drawn
    /// from `rng`.
    #[must_use]
    pub fn new(policy: Policy, rng: Rng) -> Self {
        Delivery {
            policy: Policy {
                concurrency: policy.concurrency.max(1),
                initial_backoff: policy.initial_backoff.min(policy.max_backoff),
                ..policy
            },
            rng,
            entries: HashMap::new(),
            streams: HashMap::new(),
            ready: VecDeque::new(),
            timers: TimerQueue::default(),
            in_flight: 0,
            events: VecDeque::new(),
        }
    }

    /// A new item, never tried. An id already known is ignored.
    pub fn enqueue(&mut self, item: Item, now: Instant) {
        self.resume(item, History::default(), now);
    }

    /// An item loaded from the store with what it went through before: its
    /// retry window goes on from where it was. An id already known is
    /// ignored. It is due at once (a restart retries every stream's head).
    pub fn resume(&mut self, item: Item, history: History, now: Instant) {
        if self.entries.contains_key(&item.id) {
            return;
        }
        let deadline = history
            .since_first_attempt
            .map(|age| now + self.policy.retry_for.saturating_sub(age));
        let id = item.id;
        let queue = self.streams.entry(item.stream.clone()).or_default();
        let entries = &self.entries;
        // Sorted by seq; never in front of a head that is in flight or
        // backing off (its attempt has started).
        let mut at = queue
            .iter()
            .position(|other| entries.get(other).is_some_and(|e| e.item.seq > item.seq))
            .unwrap_or(queue.len());
        if at == 0 {
            if let Some(head) = queue.front().and_then(|h| entries.get(h)) {
                if head.phase != Phase::Queued {
                    at = 1;
                }
            }
        }
        if at == 0 {
            // The old head (queued, maybe already in `ready`) steps back.
            if let Some(old) = queue.front().copied() {
                self.ready.retain(|r| *r != old);
            }
        }
        queue.insert(at, id);
        self.entries.insert(
            id,
            Entry {
                item,
                phase: Phase::Queued,
                attempts: history.attempts,
                deadline,
            },
        );
        if at == 0 {
            self.ready.push_back(id);
        }
    }

    /// The next item to POST, if the concurrency limit allows one; it is in
    /// flight until [`Delivery::handle_result`].
    #[must_use]
    pub fn poll_post(&mut self, now: Instant) -> Option<ItemId> {
        if self.in_flight >= self.policy.concurrency {
            return None;
        }
        let id = self.ready.pop_front()?;
        let retry_for = self.policy.retry_for;
        let entry = self.entries.get_mut(&id)?;
        entry.phase = Phase::InFlight { park: false };
        entry.attempts = entry.attempts.saturating_add(1);
        entry.deadline.get_or_insert(now + retry_for);
        self.in_flight += 1;
        Some(id)
    }

    /// The item `id`, while the scheduler holds it.
    #[must_use]
    pub fn item(&self, id: ItemId) -> Option<&Item> {
        self.entries.get(&id).map(|e| &e.item)
    }

    /// How the attempt at `id` ended.
    ///
    /// # Errors
    /// [`NotInFlight`] if `id` was not handed out by `poll_post` (or its
    /// result was already given): a driver bug; nothing changes.
    pub fn handle_result(
        &mut self,
        id: ItemId,
        outcome: Outcome,
        now: Instant,
    ) -> Result<(), NotInFlight> {
        let Some(entry) = self.entries.get_mut(&id) else {
            return Err(NotInFlight(id));
        };
        let Phase::InFlight { park } = entry.phase else {
            return Err(NotInFlight(id));
        };
        self.in_flight -= 1;
        let attempts = entry.attempts;
        let verdict = outcome.verdict();
        if verdict == Verdict::Delivered {
            self.events.push_back(Event::Delivered { id, attempts });
            self.remove(id);
            return Ok(());
        }
        let cause = if park {
            Some(DeadCause::Operator)
        } else if entry.deadline.is_some_and(|d| now >= d) {
            Some(DeadCause::RetryWindowClosed)
        } else {
            None
        };
        if let Some(cause) = cause {
            self.events.push_back(Event::DeadLettered {
                id,
                attempts,
                cause,
            });
            self.remove(id);
            return Ok(());
        }
        entry.phase = Phase::Backoff;
        let after = match outcome.retry_after() {
            Some(ra) => ra.clamp(self.policy.initial_backoff, self.policy.max_backoff),
            None => self.backoff(attempts),
        };
        self.timers.set(id, now + after);
        self.events.push_back(Event::Retrying {
            id,
            attempts,
            after,
            outcome,
            rejected: verdict == Verdict::Rejected,
        });
        Ok(())
    }

    /// An operator dead-letters `id`. An item in flight is parked when its
    /// result arrives (a 2xx still makes it delivered). Returns whether the
    /// item was known.
    pub fn handle_dead_letter(&mut self, id: ItemId) -> bool {
        let Some(entry) = self.entries.get_mut(&id) else {
            return false;
        };
        match entry.phase {
            Phase::InFlight { .. } => entry.phase = Phase::InFlight { park: true },
            Phase::Queued | Phase::Backoff => {
                let attempts = entry.attempts;
                self.events.push_back(Event::DeadLettered {
                    id,
                    attempts,
                    cause: DeadCause::Operator,
                });
                self.remove(id);
            }
        }
        true
    }

    /// Backoffs that have ended by `now` make their items ready.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(id) = self.timers.pop_due(now) {
            if let Some(entry) = self.entries.get_mut(&id) {
                if entry.phase == Phase::Backoff {
                    entry.phase = Phase::Queued;
                    self.ready.push_back(id);
                }
            }
        }
    }

    /// The next fact to persist.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When to call [`Delivery::handle_timeout`], and why.
    #[must_use]
    pub fn poll_timeout(&mut self) -> Option<(Instant, Reason)> {
        self.timers
            .earliest()
            .map(|(at, id)| (at, Reason::Retry(id)))
    }

    /// Items held (not yet delivered or dead-lettered).
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no item is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Items in flight now.
    #[must_use]
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// The backoff after the `attempts`-th failure: uniform in
    /// `0..=min(max_backoff, initial · 2^(attempts-1))`, millisecond grain.
    fn backoff(&mut self, attempts: u32) -> Duration {
        let ceiling = backoff_ceiling(&self.policy, attempts);
        let ms = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(self.rng.below(ms.saturating_add(1)))
    }

    /// Forget `id` wherever it is in its stream; if it was the head, the
    /// next item of the stream becomes ready.
    fn remove(&mut self, id: ItemId) {
        let Some(entry) = self.entries.remove(&id) else {
            return;
        };
        self.timers.cancel(id);
        self.ready.retain(|r| *r != id);
        let stream = entry.item.stream;
        let Some(queue) = self.streams.get_mut(&stream) else {
            return;
        };
        let was_head = queue.front() == Some(&id);
        queue.retain(|q| *q != id);
        match queue.front().copied() {
            None => {
                self.streams.remove(&stream);
            }
            Some(next) if was_head => self.ready.push_back(next),
            Some(_) => {}
        }
    }
}

/// The largest backoff after the `attempts`-th failure (attempts ≥ 1):
/// `min(max_backoff, initial_backoff · 2^(attempts-1))`.
#[must_use]
pub fn backoff_ceiling(policy: &Policy, attempts: u32) -> Duration {
    let doublings = attempts.saturating_sub(1).min(32);
    policy
        .initial_backoff
        .checked_mul(1u32 << doublings.min(31))
        .unwrap_or(policy.max_backoff)
        .min(policy.max_backoff)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn t0() -> Instant {
        crate::time::now()
    }

    fn item(id: ItemId, stream: &str, seq: u64) -> Item {
        Item {
            id,
            stream: stream.to_owned(),
            seq,
            key: format!("k{id}"),
            kind: "call.event".to_owned(),
        }
    }

    fn drain_events(d: &mut Delivery) -> Vec<Event> {
        std::iter::from_fn(|| d.poll_event()).collect()
    }

    /// A receiver that is down until `up_at`, and what it received once up.
    struct Receiver {
        up_at: Instant,
        got: Vec<(String, u64)>,
    }

    /// Drive `d` in virtual time: every post is answered at once (503 while
    /// the receiver is down, 200 after); time jumps to the next deadline.
    /// Returns the virtual instant when nothing is left, and the events.
    fn run(
        d: &mut Delivery,
        rx: &mut Receiver,
        mut now: Instant,
        limit: Instant,
    ) -> (Instant, Vec<Event>) {
        let mut events = Vec::new();
        loop {
            while let Some(id) = d.poll_post(now) {
                assert!(d.in_flight() <= 4);
                let outcome = if now >= rx.up_at {
                    if let Some(i) = d.item(id) {
                        rx.got.push((i.stream.clone(), i.seq));
                    }
                    Outcome::Status {
                        code: 200,
                        retry_after: None,
                    }
                } else {
                    Outcome::Status {
                        code: 503,
                        retry_after: None,
                    }
                };
                assert_eq!(d.handle_result(id, outcome, now), Ok(()));
            }
            events.extend(drain_events(d));
            match d.poll_timeout() {
                Some((at, _)) if at <= limit => {
                    now = now.max(at);
                    d.handle_timeout(now);
                }
                _ => return (now, events),
            }
        }
    }

    #[test]
    fn receiver_down_three_days_then_everything_delivered_in_stream_order() {
        let start = t0();
        // retried for 4 days; the receiver is down for 3
        let policy = Policy {
            retry_for: Duration::from_secs(96 * 3600),
            ..Policy::default()
        };
        let mut d = Delivery::new(policy, Rng::new(7));
        let mut id = 0;
        for call in 0..50 {
            for seq in 1..=4 {
                id += 1;
                d.enqueue(item(id, &format!("call-{call}"), seq), start);
            }
        }
        let mut rx = Receiver {
            up_at: start + Duration::from_secs(72 * 3600),
            got: Vec::new(),
        };
        let (end, events) = run(
            &mut d,
            &mut rx,
            start,
            start + Duration::from_secs(30 * 86400),
        );
        assert!(d.is_empty(), "{} items left", d.len());
        assert_eq!(rx.got.len(), 200, "each item delivered exactly once");
        let dead = events
            .iter()
            .filter(|e| matches!(e, Event::DeadLettered { .. }))
            .count();
        assert_eq!(dead, 0);
        // per stream in seq order
        let mut by_stream: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
        for (s, seq) in &rx.got {
            by_stream.entry(s).or_default().push(*seq);
        }
        for (s, seqs) in by_stream {
            assert_eq!(seqs, vec![1, 2, 3, 4], "{s}");
        }
        // delivered within one max backoff of the receiver coming back
        assert!(
            end <= rx.up_at + Duration::from_secs(601),
            "{:?}",
            end - rx.up_at
        );
    }

    #[test]
    fn backoff_stays_within_its_ceiling_and_spreads() {
        let policy = Policy::default();
        assert_eq!(backoff_ceiling(&policy, 1), Duration::from_secs(1));
        assert_eq!(backoff_ceiling(&policy, 2), Duration::from_secs(2));
        assert_eq!(backoff_ceiling(&policy, 10), Duration::from_secs(512));
        assert_eq!(backoff_ceiling(&policy, 11), Duration::from_secs(600));
        assert_eq!(backoff_ceiling(&policy, 5000), Duration::from_secs(600));

        let mut d = Delivery::new(policy, Rng::new(42));
        for attempts in [1u32, 3, 8, 12, 40] {
            let ceiling = backoff_ceiling(&policy, attempts);
            let draws: Vec<Duration> = (0..400).map(|_| d.backoff(attempts)).collect();
            let (lo, hi) = (
                draws.iter().min().copied().unwrap_or_default(),
                draws.iter().max().copied().unwrap_or_default(),
            );
            assert!(hi <= ceiling, "attempt {attempts}: {hi:?} > {ceiling:?}");
            // full jitter: the draws cover the range, not a band near the top
            assert!(lo < ceiling / 10, "attempt {attempts}: min {lo:?}");
            assert!(hi > ceiling * 9 / 10, "attempt {attempts}: max {hi:?}");
            let distinct: std::collections::HashSet<_> = draws.iter().collect();
            assert!(
                distinct.len() > 100,
                "attempt {attempts}: too few distinct draws"
            );
        }
        // the same seed gives the same draws; another seed does not
        let mut a = Delivery::new(policy, Rng::new(1));
        let mut b = Delivery::new(policy, Rng::new(1));
        let mut c = Delivery::new(policy, Rng::new(2));
        let da: Vec<_> = (0..20).map(|_| a.backoff(9)).collect();
        let db: Vec<_> = (0..20).map(|_| b.backoff(9)).collect();
        let dc: Vec<_> = (0..20).map(|_| c.backoff(9)).collect();
        assert_eq!(da, db);
        assert_ne!(da, dc);
    }

    #[test]
    fn retries_follow_the_backoff_and_dead_letter_after_retry_for() {
        let start = t0();
        let policy = Policy {
            retry_for: Duration::from_secs(3600),
            ..Policy::default()
        };
        let mut d = Delivery::new(policy, Rng::new(3));
        d.enqueue(item(1, "a", 1), start);
        d.enqueue(item(2, "a", 2), start);
        let mut now = start;
        let mut attempts = 0;
        loop {
            let Some(id) = d.poll_post(now) else {
                panic!("head not ready at {:?}", now - start)
            };
            assert_eq!(id, 1, "the second item waits behind the head");
            attempts += 1;
            let fail = Outcome::Status {
                code: 500,
                retry_after: None,
            };
            assert_eq!(d.handle_result(id, fail, now), Ok(()));
            match drain_events(&mut d).as_slice() {
                [Event::Retrying {
                    id: 1,
                    after,
                    attempts: n,
                    rejected: false,
                    ..
                }] => {
                    assert_eq!(*n, attempts);
                    assert!(*after <= backoff_ceiling(&policy, attempts));
                    assert!(now - start < policy.retry_for);
                    let Some((at, Reason::Retry(1))) = d.poll_timeout() else {
                        panic!("no retry timer")
                    };
                    assert_eq!(at, now + *after);
                    // not ready before its time
                    d.handle_timeout(at - Duration::from_millis(1).min(*after));
                    if *after > Duration::ZERO {
                        assert_eq!(d.poll_post(at - Duration::from_millis(1)), None);
                    }
                    now = at;
                    d.handle_timeout(now);
                }
                [Event::DeadLettered {
                    id: 1,
                    attempts: n,
                    cause: DeadCause::RetryWindowClosed,
                }] => {
                    assert_eq!(*n, attempts);
                    assert!(now - start >= policy.retry_for);
                    break;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        // an hour of 1 s doubling to 10 min: ~ a dozen attempts, not hundreds
        assert!((8..100).contains(&attempts), "{attempts} attempts");
        // the next item of the stream goes now
        assert_eq!(d.poll_post(now), Some(2));
    }

    #[test]
    fn concurrency_limit_is_respected() {
        let start = t0();
        let policy = Policy {
            concurrency: 3,
            ..Policy::default()
        };
        let mut d = Delivery::new(policy, Rng::new(1));
        for i in 1..=10 {
            d.enqueue(item(i, &format!("s{i}"), 1), start);
        }
        let first: Vec<_> = std::iter::from_fn(|| d.poll_post(start)).collect();
        assert_eq!(first, vec![1, 2, 3]);
        assert_eq!(d.in_flight(), 3);
        let ok = Outcome::Status {
            code: 204,
            retry_after: None,
        };
        assert_eq!(d.handle_result(2, ok, start), Ok(()));
        assert_eq!(d.poll_post(start), Some(4));
        assert_eq!(d.poll_post(start), None);
        assert_eq!(d.handle_result(2, ok, start), Err(NotInFlight(2)));
    }

    #[test]
    fn a_failing_head_blocks_only_its_own_stream() {
        let start = t0();
        let mut d = Delivery::new(Policy::default(), Rng::new(5));
        d.enqueue(item(1, "bad", 1), start);
        d.enqueue(item(2, "bad", 2), start);
        d.enqueue(item(3, "good", 1), start);
        d.enqueue(item(4, "good", 2), start);
        let ok = Outcome::Status {
            code: 200,
            retry_after: None,
        };
        let rejected = Outcome::Status {
            code: 400,
            retry_after: None,
        };
        assert_eq!(d.poll_post(start), Some(1));
        assert_eq!(d.handle_result(1, rejected, start), Ok(()));
        let events = drain_events(&mut d);
        assert!(
            matches!(
                events.as_slice(),
                [Event::Retrying {
                    id: 1,
                    rejected: true,
                    ..
                }]
            ),
            "{events:?}"
        );
        let mut delivered = Vec::new();
        while let Some(id) = d.poll_post(start) {
            assert_ne!(id, 2, "behind a failed head");
            assert_eq!(d.handle_result(id, ok, start), Ok(()));
            delivered.push(id);
        }
        assert_eq!(delivered, vec![3, 4]);
        assert_eq!(d.len(), 2);
    }

    #[test]
    fn retry_after_is_honoured_within_the_cap() {
        let start = t0();
        let mut d = Delivery::new(Policy::default(), Rng::new(5));
        d.enqueue(item(1, "a", 1), start);
        let mut after_of = |code, secs| {
            let Some(id) = d.poll_post(start) else {
                panic!("not ready")
            };
            let o = Outcome::Status {
                code,
                retry_after: Some(Duration::from_secs(secs)),
            };
            assert_eq!(d.handle_result(id, o, start), Ok(()));
            let after = match drain_events(&mut d).as_slice() {
                [Event::Retrying { after, .. }] => *after,
                other => panic!("{other:?}"),
            };
            d.handle_timeout(start + after);
            after
        };
        assert_eq!(after_of(429, 30), Duration::from_secs(30));
        assert_eq!(after_of(503, 86400), Duration::from_secs(600));
        // Retry-After on a 500 is not a promise: the jittered backoff applies
        assert!(after_of(500, 300) <= Duration::from_secs(4));
    }

    #[test]
    fn resumed_items_keep_their_window_and_order() {
        let start = t0();
        let policy = Policy {
            retry_for: Duration::from_secs(100),
            ..Policy::default()
        };
        let mut d = Delivery::new(policy, Rng::new(9));
        // loaded out of order; the first one was tried 99 s ago
        d.resume(item(2, "a", 2), History::default(), start);
        d.resume(
            item(1, "a", 1),
            History {
                attempts: 7,
                since_first_attempt: Some(Duration::from_secs(99)),
            },
            start,
        );
        assert_eq!(d.poll_post(start), Some(1));
        assert_eq!(d.poll_post(start), None);
        let now = start + Duration::from_secs(2);
        assert_eq!(d.handle_result(1, Outcome::Timeout, now), Ok(()));
        assert_eq!(
            drain_events(&mut d),
            vec![Event::DeadLettered {
                id: 1,
                attempts: 8,
                cause: DeadCause::RetryWindowClosed
            }]
        );
        assert_eq!(d.poll_post(now), Some(2));
    }

    #[test]
    fn operator_dead_letter_parks_waiting_and_in_flight_items() {
        let start = t0();
        let mut d = Delivery::new(Policy::default(), Rng::new(5));
        d.enqueue(item(1, "a", 1), start);
        d.enqueue(item(2, "a", 2), start);
        d.enqueue(item(3, "a", 3), start);
        assert!(d.handle_dead_letter(2));
        assert_eq!(d.poll_post(start), Some(1));
        assert!(d.handle_dead_letter(1));
        assert_eq!(d.handle_result(1, Outcome::Connection, start), Ok(()));
        let events = drain_events(&mut d);
        assert!(
            matches!(
                events.as_slice(),
                [
                    Event::DeadLettered {
                        id: 2,
                        cause: DeadCause::Operator,
                        ..
                    },
                    Event::DeadLettered {
                        id: 1,
                        cause: DeadCause::Operator,
                        ..
                    }
                ]
            ),
            "{events:?}"
        );
        assert_eq!(d.poll_post(start), Some(3));
        assert!(!d.handle_dead_letter(99));
    }
}
