//! Admission of new calls per trunk (sans-IO, virtual time): a cap on the
//! calls a trunk has at once (`max_calls`) and a token bucket on the new
//! calls it may start per second (`max_cps`, burst = `max_cps`, refilled
//! continuously). An INVITE over either limit is refused (503 with
//! `Retry-After`, see [`Limit`]) before any routing or media work.
//!
//! A call that is admitted holds a slot until [`Admission::release`], which
//! the B2BUA calls exactly once, when the call is removed. Only admitted
//! INVITEs take a token: a carrier hammering a full trunk does not starve
//! it further.

use std::collections::HashMap;

use crate::config::Trunk;
use crate::time::{Duration, Instant};

/// Which limit refused an INVITE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// The trunk has `max_calls` calls already.
    Calls,
    /// The trunk used up its `max_cps` tokens.
    Cps,
}

impl Limit {
    /// The `reason` label of `hotline_trunk_rejected_total`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::Calls => "calls_limit",
            Limit::Cps => "cps_limit",
        }
    }

    /// The `outcome` label of `hotline_calls_total`.
    #[must_use]
    pub fn outcome(self) -> &'static str {
        match self {
            Limit::Calls => "trunk_calls_limit",
            Limit::Cps => "trunk_cps_limit",
        }
    }

    /// The `Retry-After` we send, in seconds: a token is back within a
    /// second; a slot frees when some call ends, which takes longer.
    #[must_use]
    pub fn retry_after_secs(self) -> u32 {
        match self {
            Limit::Calls => 5,
            Limit::Cps => 1,
        }
    }

    /// The `text` of our `Reason` header.
    #[must_use]
    pub fn reason_text(self) -> &'static str {
        match self {
            Limit::Calls => "Trunk call limit",
            Limit::Cps => "Trunk rate limit",
        }
    }
}

/// One token, in the bucket's units (a token is split in 10^9 parts, so
/// refilling `rate` tokens per second is exact: `rate` units per
/// nanosecond, no rounding, no drift).
const TOKEN: u64 = 1_000_000_000;

/// A token bucket of `rate` tokens per second holding at most `rate`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: u64,
    /// Tokens, in units of 1/[`TOKEN`].
    level: u64,
    /// When `level` was last brought up to date.
    last: Instant,
}

impl TokenBucket {
    /// A full bucket of `rate` tokens per second (`rate` >= 1).
    #[must_use]
    pub fn new(rate: u32, now: Instant) -> TokenBucket {
        let rate = u64::from(rate.max(1));
        TokenBucket {
            rate,
            level: rate * TOKEN,
            last: now,
        }
    }

    fn capacity(&self) -> u64 {
        self.rate * TOKEN
    }

    fn refill(&mut self, now: Instant) {
        // Time never runs backwards here: an earlier `now` adds nothing.
        let elapsed = now.saturating_duration_since(self.last);
        if now > self.last {
            self.last = now;
        }
        // A second refills the whole bucket; cap before multiplying.
        let nanos = elapsed.min(Duration::from_secs(1)).as_nanos();
        let nanos = u64::try_from(nanos).unwrap_or(TOKEN);
        self.level = (self.level + nanos * self.rate).min(self.capacity());
    }

    /// Take one token if there is one.
    pub fn take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.level >= TOKEN {
            self.level -= TOKEN;
            true
        } else {
            false
        }
    }

    /// Whole tokens available at `now`.
    #[must_use]
    pub fn available(&mut self, now: Instant) -> u64 {
        self.refill(now);
        self.level / TOKEN
    }
}

/// One trunk's limits and live calls.
#[derive(Debug, Clone)]
pub struct TrunkGuard {
    max_calls: Option<u32>,
    bucket: Option<TokenBucket>,
    live: u32,
}

impl TrunkGuard {
    /// A guard with these limits (`None`: unlimited) and no calls.
    #[must_use]
    pub fn new(max_calls: Option<u32>, max_cps: Option<u32>, now: Instant) -> TrunkGuard {
        TrunkGuard {
            max_calls,
            bucket: max_cps.map(|r| TokenBucket::new(r, now)),
            live: 0,
        }
    }

    /// Admit a new call (take a slot and a token) or say which limit
    /// refuses it (taking nothing).
    ///
    /// # Errors
    /// The trunk is at `max_calls`, or out of tokens.
    pub fn admit(&mut self, now: Instant) -> Result<(), Limit> {
        if self.max_calls.is_some_and(|max| self.live >= max) {
            return Err(Limit::Calls);
        }
        if let Some(bucket) = &mut self.bucket {
            if !bucket.take(now) {
                return Err(Limit::Cps);
            }
        }
        self.live += 1;
        Ok(())
    }

    /// Give back the slot of an admitted call.
    pub fn release(&mut self) {
        debug_assert!(self.live > 0, "released a slot that was not taken");
        self.live = self.live.saturating_sub(1);
    }

    /// Calls admitted and not yet released.
    #[must_use]
    pub fn live(&self) -> u32 {
        self.live
    }
}

/// The guards of every configured trunk, by trunk name.
#[derive(Debug, Clone, Default)]
pub struct Admission {
    trunks: HashMap<String, TrunkGuard>,
}

impl Admission {
    /// Guards for `trunks`, their buckets full at `now`.
    #[must_use]
    pub fn new(trunks: &[Trunk], now: Instant) -> Admission {
        Admission {
            trunks: trunks
                .iter()
                .map(|t| (t.name.clone(), TrunkGuard::new(t.max_calls, t.max_cps, now)))
                .collect(),
        }
    }

    /// Admit a new call from `trunk` (see [`TrunkGuard::admit`]). A trunk
    /// not configured has no limits (and nothing to count).
    ///
    /// # Errors
    /// The trunk is over one of its limits.
    pub fn admit(&mut self, trunk: &str, now: Instant) -> Result<(), Limit> {
        match self.trunks.get_mut(trunk) {
            Some(g) => g.admit(now),
            None => Ok(()),
        }
    }

    /// Give back the slot of an admitted call from `trunk`.
    pub fn release(&mut self, trunk: &str) {
        if let Some(g) = self.trunks.get_mut(trunk) {
            g.release();
        }
    }

    /// Live admitted calls of `trunk`.
    #[must_use]
    pub fn live(&self, trunk: &str) -> u32 {
        self.trunks.get(trunk).map_or(0, TrunkGuard::live)
    }

    /// Names of the guarded trunks.
    pub fn trunk_names(&self) -> impl Iterator<Item = &str> {
        self.trunks.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_full_bucket_admits_its_burst_then_nothing_in_the_same_instant() {
        let t0 = crate::time::now();
        let mut b = TokenBucket::new(3, t0);
        assert!(b.take(t0) && b.take(t0) && b.take(t0));
        assert!(!b.take(t0));
        assert!(!b.take(t0));
    }

    #[test]
    fn the_bucket_refills_continuously_and_exactly() {
        let t0 = crate::time::now();
        let mut b = TokenBucket::new(3, t0);
        for _ in 0..3 {
            assert!(b.take(t0));
        }
        // 1/3 s is one token at 3 per second; a nanosecond earlier it is not.
        let third = Duration::from_nanos(333_333_333);
        assert!(!b.take(t0 + third), "333,333,333 ns is 0.999999999 tokens");
        assert!(b.take(t0 + third + Duration::from_nanos(1)));
        assert!(!b.take(t0 + third + Duration::from_nanos(1)));
        // Half a second more: 1.5 tokens; one taken, half left over.
        let t1 = t0 + third + Duration::from_nanos(1) + ms(500);
        assert!(b.take(t1));
        assert!(!b.take(t1));
        assert!(b.take(t1 + Duration::from_nanos(166_666_667)));
    }

    #[test]
    fn a_long_pause_refills_to_the_burst_not_beyond() {
        let t0 = crate::time::now();
        let mut b = TokenBucket::new(2, t0);
        assert!(b.take(t0) && b.take(t0));
        let later = t0 + Duration::from_secs(3600);
        assert_eq!(b.available(later), 2);
        assert!(b.take(later) && b.take(later));
        assert!(!b.take(later));
    }

    #[test]
    fn time_running_backwards_adds_nothing() {
        let t0 = crate::time::now() + Duration::from_secs(10);
        let mut b = TokenBucket::new(1, t0);
        assert!(b.take(t0));
        assert!(!b.take(t0 - Duration::from_secs(5)));
        assert!(!b.take(t0 + ms(999)));
        assert!(b.take(t0 + ms(1000)));
    }

    /// Whatever the arrival pattern, admissions in any window of length
    /// `w` never exceed `rate * w + rate` (rate plus the burst).
    #[test]
    fn never_over_admits_under_a_random_arrival_pattern() {
        let t0 = crate::time::now();
        for rate in [1u32, 2, 7, 50, 1000] {
            let mut rng = crate::rng::Rng::new(u64::from(rate));
            let mut b = TokenBucket::new(rate, t0);
            let mut admitted: Vec<Duration> = Vec::new();
            let mut t = Duration::ZERO;
            for _ in 0..20_000 {
                t += Duration::from_nanos(rng.below(4_000_000_000 / u64::from(rate)));
                if b.take(t0 + t) {
                    admitted.push(t);
                }
            }
            assert!(!admitted.is_empty());
            // Every window of `secs` seconds starting at an admission.
            for secs in [1u64, 2, 5] {
                let bound = u64::from(rate) * (secs + 1);
                let mut end = 0;
                for (start, at) in admitted.iter().enumerate() {
                    while end < admitted.len() && admitted[end] < *at + Duration::from_secs(secs) {
                        end += 1;
                    }
                    let n = (end - start) as u64;
                    assert!(n <= bound, "rate {rate}: {n} admitted in {secs} s");
                }
            }
            // And over the whole run, no more than rate * elapsed + burst.
            let total = admitted.len() as u64;
            let elapsed_ns = u64::try_from(t.as_nanos()).unwrap_or(u64::MAX);
            let allowed =
                u128::from(elapsed_ns) * u128::from(rate) / 1_000_000_000 + u128::from(rate);
            assert!(
                u128::from(total) <= allowed,
                "rate {rate}: {total} > {allowed}"
            );
        }
    }

    #[test]
    fn the_call_cap_holds_until_a_slot_is_released() {
        let t0 = crate::time::now();
        let mut g = TrunkGuard::new(Some(2), None, t0);
        assert_eq!(g.admit(t0), Ok(()));
        assert_eq!(g.admit(t0), Ok(()));
        assert_eq!(g.admit(t0), Err(Limit::Calls));
        assert_eq!(g.live(), 2);
        g.release();
        assert_eq!(g.live(), 1);
        assert_eq!(g.admit(t0), Ok(()));
        assert_eq!(g.admit(t0), Err(Limit::Calls));
    }

    #[test]
    fn a_refusal_for_the_cap_takes_no_token() {
        let t0 = crate::time::now();
        let mut g = TrunkGuard::new(Some(1), Some(2), t0);
        assert_eq!(g.admit(t0), Ok(()));
        // Refused for the cap twice: the second token is still there.
        assert_eq!(g.admit(t0), Err(Limit::Calls));
        assert_eq!(g.admit(t0), Err(Limit::Calls));
        g.release();
        assert_eq!(g.admit(t0), Ok(()));
        g.release();
        // Now the bucket is empty.
        assert_eq!(g.admit(t0), Err(Limit::Cps));
        assert_eq!(g.live(), 0, "a refused call takes no slot");
        assert_eq!(g.admit(t0 + ms(500)), Ok(()));
    }

    #[test]
    fn unlimited_trunks_and_unknown_trunks_always_admit() {
        let t0 = crate::time::now();
        let mut g = TrunkGuard::new(None, None, t0);
        for _ in 0..10_000 {
            assert_eq!(g.admit(t0), Ok(()));
        }
        assert_eq!(g.live(), 10_000);
        let mut a = Admission::default();
        assert_eq!(a.admit("nobody", t0), Ok(()));
        a.release("nobody");
        assert_eq!(a.live("nobody"), 0);
    }

    #[test]
    fn admission_keeps_trunks_apart() {
        let t0 = crate::time::now();
        let config = crate::config::parse(
            "[node]\nname = \"n\"\n\
             [[trunks]]\nname = \"a\"\nsources = [\"10.0.0.0/8\"]\nmax_calls = 1\n\
             [[trunks]]\nname = \"b\"\nsources = [\"11.0.0.0/8\"]\nmax_cps = 1\n",
            "t.toml",
        );
        let config = match config {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        let mut a = Admission::new(&config.trunks, t0);
        assert_eq!(a.admit("a", t0), Ok(()));
        assert_eq!(a.admit("a", t0), Err(Limit::Calls));
        assert_eq!(a.admit("b", t0), Ok(()));
        assert_eq!(a.admit("b", t0), Err(Limit::Cps));
        assert_eq!((a.live("a"), a.live("b")), (1, 1));
        a.release("a");
        assert_eq!(a.admit("a", t0), Ok(()));
        let mut names: Vec<&str> = a.trunk_names().collect();
        names.sort_unstable();
        assert_eq!(names, ["a", "b"]);
    }
}
