//! Latency summaries from HDR histograms, rendered as Prometheus summaries.
//!
//! Why not the `metrics` histogram: metrics-exporter-prometheus renders
//! summaries from a DDSketch capped at 32,768 bins with a relative accuracy
//! of 0.01 %, which spans only a ~700× range of values. Our processing times
//! span 2 µs to several ms, so one slow outlier collapses every smaller bin
//! into the lowest kept one and p50 = p99 = that bin (seen under load: a
//! mean of 23 µs reported with p50 = p99 = 187 µs). An HDR histogram with
//! 2 significant digits keeps 1 % accuracy from 1 ns to 10 s in ~27 KiB.
//!
//! Shape:
//! - [`Recorder`] is owned by the core loop: recording is a plain
//!   increment into a local histogram, no lock, no atomic.
//! - [`Recorder::publish`] (once a second, from the loop's tick) folds the
//!   local histogram into the shared [`Window`] under a mutex.
//! - [`Summary::render`] (from `/metrics`) merges the window's slots and
//!   writes the quantiles over the last [`SLOTS`] × [`SLOT`] (50–60 s), plus
//!   `_sum` and `_count` since start, as Prometheus summaries do.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::time::Instant;

/// Width of one slot of the rolling window.
pub const SLOT: Duration = Duration::from_secs(10);
/// Slots in the rolling window: quantiles cover the last 50–60 s.
pub const SLOTS: usize = 6;
/// Quantiles rendered for every summary.
pub const QUANTILES: &[f64] = &[0.5, 0.9, 0.99, 0.999];
/// Largest value kept distinct (longer ones are counted as this).
const MAX_NANOS: u64 = 10_000_000_000;
/// 1 % relative accuracy.
const SIGFIG: u8 = 2;

fn histogram() -> Histogram<u64> {
    // Constant bounds within hdrhistogram's limits (low ≥ 1, high ≥ 2·low,
    // sigfig ≤ 5): this cannot fail.
    #[allow(clippy::expect_used)]
    Histogram::new_with_bounds(1, MAX_NANOS, SIGFIG).expect("constant histogram bounds")
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The shared rolling window of one summary.
struct Window {
    /// Oldest first; the last one is being filled.
    slots: VecDeque<Histogram<u64>>,
    /// When the last slot started.
    slot_start: Option<Instant>,
    /// Samples since start.
    count: u64,
    /// Sum of the samples since start, nanoseconds.
    sum_nanos: u128,
}

impl Window {
    fn rotate_to(&mut self, now: Instant) {
        let mut start = *self.slot_start.get_or_insert(now);
        let mut turned = 0;
        while now.saturating_duration_since(start) >= SLOT {
            start += SLOT;
            if turned < SLOTS {
                if let Some(mut oldest) = self.slots.pop_front() {
                    oldest.reset();
                    self.slots.push_back(oldest);
                }
                turned += 1;
            }
        }
        self.slot_start = Some(start);
    }
}

/// A latency summary: its name, help and shared window. Cheap to clone.
#[derive(Clone)]
pub struct Summary {
    name: &'static str,
    help: &'static str,
    window: Arc<Mutex<Window>>,
}

impl Summary {
    /// A summary rendered as `name` with `help`.
    pub fn new(name: &'static str, help: &'static str) -> Self {
        let slots = (0..SLOTS).map(|_| histogram()).collect();
        Self {
            name,
            help,
            window: Arc::new(Mutex::new(Window {
                slots,
                slot_start: None,
                count: 0,
                sum_nanos: 0,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Window> {
        // A panic while holding it cannot leave the window inconsistent in
        // a way that matters for a metric.
        self.window.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The recorder the core loop writes into.
    pub fn recorder(&self) -> Recorder {
        Recorder {
            summary: self.clone(),
            local: histogram(),
            count: 0,
            sum_nanos: 0,
        }
    }

    /// The value at quantile `q` over the window, if it holds samples.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let merged = self.merged();
        (!merged.is_empty()).then(|| Duration::from_nanos(merged.value_at_quantile(q)))
    }

    fn merged(&self) -> Histogram<u64> {
        let w = self.lock();
        let mut merged = histogram();
        for slot in &w.slots {
            // Same bounds, so adding cannot fail.
            let _ = merged.add(slot);
        }
        merged
    }

    /// Append the Prometheus text of this summary to `out`.
    pub fn render(&self, out: &mut String) {
        let merged = self.merged();
        let (count, sum_nanos) = {
            let w = self.lock();
            (w.count, w.sum_nanos)
        };
        let name = self.name;
        let _ = writeln!(out, "# HELP {name} {}", self.help);
        let _ = writeln!(out, "# TYPE {name} summary");
        for q in QUANTILES {
            if merged.is_empty() {
                let _ = writeln!(out, "{name}{{quantile=\"{q}\"}} NaN");
            } else {
                let v = merged.value_at_quantile(*q) as f64 / 1e9;
                let _ = writeln!(out, "{name}{{quantile=\"{q}\"}} {v}");
            }
        }
        let _ = writeln!(out, "{name}_sum {}", sum_nanos as f64 / 1e9);
        let _ = writeln!(out, "{name}_count {count}");
    }
}

/// The core loop's side of a [`Summary`]: records without locking.
pub struct Recorder {
    summary: Summary,
    local: Histogram<u64>,
    count: u64,
    sum_nanos: u128,
}

impl Recorder {
    /// Record one duration.
    pub fn record(&mut self, d: Duration) {
        let n = nanos(d);
        self.local.saturating_record(n.max(1));
        self.count += 1;
        self.sum_nanos += u128::from(n);
    }

    /// Fold what was recorded since the last call into the shared window
    /// (the slot for `now`). Call it about once a second.
    pub fn publish(&mut self, now: Instant) {
        let mut w = self.summary.lock();
        w.rotate_to(now);
        if self.count > 0 {
            if let Some(slot) = w.slots.back_mut() {
                let _ = slot.add(&self.local);
            }
            w.count += self.count;
            w.sum_nanos += self.sum_nanos;
        }
        drop(w);
        self.local.reset();
        self.count = 0;
        self.sum_nanos = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    fn near(got: Option<Duration>, want: Duration) -> bool {
        let Some(got) = got else { return false };
        let (g, w) = (got.as_nanos() as f64, want.as_nanos() as f64);
        (g - w).abs() <= w * 0.01 + 1.0
    }

    #[test]
    fn outliers_do_not_collapse_the_small_values() {
        // The DDSketch failure: 400k samples around 20 µs and a few 50 ms
        // outliers. The quantiles must stay where the mass is.
        let s = Summary::new("t_seconds", "test");
        let mut r = s.recorder();
        for i in 0..400_000u64 {
            r.record(us(10 + i % 21)); // 10..=30 µs, uniform
        }
        for _ in 0..10 {
            r.record(Duration::from_millis(50));
        }
        r.publish(crate::time::now());
        assert!(near(s.quantile(0.5), us(20)), "{:?}", s.quantile(0.5));
        assert!(near(s.quantile(0.99), us(30)), "{:?}", s.quantile(0.99));
        assert!(
            near(s.quantile(1.0), Duration::from_millis(50)),
            "{:?}",
            s.quantile(1.0)
        );
    }

    #[test]
    fn window_forgets_after_a_minute_but_count_and_sum_do_not() {
        let s = Summary::new("t_seconds", "test");
        let mut r = s.recorder();
        let t0 = crate::time::now();
        for _ in 0..100 {
            r.record(us(500));
        }
        r.publish(t0);
        for k in 1..=5u64 {
            r.record(us(5));
            r.publish(t0 + SLOT * k as u32);
        }
        // Slot 0 still in the window (6 slots: t0 .. t0+50 s).
        assert!(near(s.quantile(0.5), us(500)));
        r.publish(t0 + SLOT * 6);
        // Slot 0 rolled off: only the 5 µs samples remain.
        assert!(near(s.quantile(0.99), us(5)), "{:?}", s.quantile(0.99));
        // A long gap empties the window entirely.
        r.publish(t0 + Duration::from_secs(3600));
        assert_eq!(s.quantile(0.5), None);

        let mut text = String::new();
        s.render(&mut text);
        assert!(text.contains("# TYPE t_seconds summary"), "{text}");
        assert!(text.contains("t_seconds{quantile=\"0.5\"} NaN"), "{text}");
        assert!(text.contains("t_seconds_count 105"), "{text}");
        assert!(text.contains("t_seconds_sum 0.050025"), "{text}");
    }

    #[test]
    fn renders_quantiles_in_seconds() {
        let s = Summary::new("t_seconds", "help text");
        let mut r = s.recorder();
        r.record(us(100));
        r.publish(crate::time::now());
        let mut text = String::new();
        s.render(&mut text);
        assert!(text.starts_with("# HELP t_seconds help text\n"), "{text}");
        let line = text
            .lines()
            .find(|l| l.starts_with("t_seconds{quantile=\"0.99\"} "))
            .unwrap_or_default();
        let v: f64 = line
            .rsplit(' ')
            .next()
            .unwrap_or("x")
            .parse()
            .unwrap_or(-1.0);
        assert!((v - 0.0001).abs() < 0.000_002, "{line}");
    }
}
