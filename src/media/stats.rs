//! Per-leg RTP statistics: RFC 3550 reception statistics and an E-model
//! (ITU-T G.107) MOS estimate.
//!
//! [`RtpStats`] is fed one call per packet, with the arrival `now` and the
//! header fields the RTP parser already read (sans-IO: no clock, no socket):
//!
//! - Sequence accounting is RFC 3550 Appendix A.1 (`update_seq`): a new
//!   source is on probation until [`MIN_SEQUENTIAL`] packets arrive in
//!   sequence; the 16-bit sequence number is extended with a wrap-cycle
//!   count; a jump of more than [`MAX_DROPOUT`] ahead or [`MAX_MISORDER`]
//!   behind is discarded unless the next packet confirms it, in which case
//!   the sender is taken to have restarted. Expected, received and
//!   cumulative lost follow A.3 (`received` counts duplicates, so lost can be
//!   negative; reports clamp it to the 24-bit field of §6.4.1), and the
//!   fraction lost is per reporting interval ([`RtpStats::reception_report`]).
//! - Interarrival jitter is A.8: the arrival time converted to the 8 kHz RTP
//!   clock, `D = (Rj − Ri) − (Sj − Si)`, `J += (|D| − J)/16`, in arrival order
//!   (duplicates skipped). Feed audio packets only: RFC 4733 events keep one
//!   timestamp for a whole event and would read as jitter.
//! - A new SSRC resets the sequence and jitter state; what the old source
//!   expected and received is carried into the leg's totals, so a prompt →
//!   agent switch neither loses nor invents packets. So does an A.1 restart.
//!
//! The E-model ([`EModel`]) turns loss, loss burstiness and the one-way delay
//! into R and MOS for G.711.

use crate::time::Instant;

/// RTP clock rate of G.711 and telephone-event, Hz.
pub const CLOCK_RATE: u64 = 8000;
/// RFC 3550 A.1: packets in sequence before a source is valid.
pub const MIN_SEQUENTIAL: u32 = 2;
/// RFC 3550 A.1: largest forward jump taken as loss rather than a restart.
pub const MAX_DROPOUT: u32 = 3000;
/// RFC 3550 A.1: largest backward step taken as reordering.
pub const MAX_MISORDER: u32 = 100;
const SEQ_MOD: u32 = 1 << 16;

/// What one received packet was, for the caller's counters and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// A new source not yet validated (RFC 3550 A.1 probation).
    Probation,
    /// In order (possibly after a gap).
    InOrder,
    /// Behind the highest sequence number seen, not seen before.
    Late,
    /// A sequence number already received.
    Duplicate,
    /// A large jump, ignored until the next packet confirms it.
    Discarded,
    /// The confirming packet of a large jump: sequence state restarted.
    Restarted,
}

/// The fields of an RTCP reception report block (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceptionReport {
    /// The source reported on.
    pub ssrc: u32,
    /// Fraction lost since the previous report, in 1/256.
    pub fraction_lost: u8,
    /// Cumulative packets lost, clamped to the signed 24-bit field.
    pub cumulative_lost: i32,
    /// Extended highest sequence number received.
    pub extended_highest_seq: u32,
    /// Interarrival jitter in timestamp units.
    pub jitter: u32,
}

/// A snapshot of one leg's statistics, for the call record and /metrics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LegStats {
    /// Current source, if any packet arrived.
    pub ssrc: Option<u32>,
    /// Every packet handed in (probation, duplicates and discards included).
    pub packets_received: u64,
    /// Payload octets of those packets.
    pub octets_received: u64,
    /// Packets expected from validated sources (RFC 3550 A.3).
    pub expected: u64,
    /// Packets received from validated sources, duplicates included (A.3).
    pub received: u64,
    /// `expected - received`: negative when duplicates outnumber losses.
    pub cumulative_lost: i64,
    /// Loss ratio over the leg, 0.0–1.0 (negative loss clamped to 0).
    pub loss_ratio: f64,
    /// Duplicate packets.
    pub duplicates: u64,
    /// Packets that arrived after a higher sequence number (reordered).
    pub late: u64,
    /// Packets discarded as unconfirmed large jumps.
    pub discarded: u64,
    /// Source (SSRC) changes after the first.
    pub ssrc_changes: u64,
    /// RFC 3550 A.1 restarts (confirmed large jumps).
    pub restarts: u64,
    /// Extended highest sequence number of the current source, once valid.
    pub extended_highest_seq: Option<u32>,
    /// Interarrival jitter of the current source, timestamp units (1/8 ms).
    pub jitter_ts: f64,
    /// The same in milliseconds.
    pub jitter_ms: f64,
    /// Burst ratio (G.107 BurstR): 1 for random loss, above 1 for bursty.
    pub burst_ratio: f64,
    /// Packets sent on this leg.
    pub packets_sent: u64,
    /// Payload octets sent on this leg.
    pub octets_sent: u64,
    /// E-model transmission rating R (G.107).
    pub r_factor: f64,
    /// Estimated MOS-CQE from R (G.107 Annex B).
    pub mos: f64,
}

/// Sequence and jitter state of the current source (RFC 3550 A.1 `source`).
#[derive(Debug, Clone)]
struct Source {
    ssrc: u32,
    max_seq: u16,
    cycles: u32,
    base_seq: u32,
    bad_seq: u32,
    probation: u32,
    received: u64,
    /// Bit i: extended sequence `max - i` received (duplicate detection).
    seen: u128,
    /// Relative transit time of the previous packet, timestamp units.
    transit: Option<u32>,
    jitter: f64,
}

impl Source {
    fn new(ssrc: u32, seq: u16) -> Source {
        let mut s = Source {
            ssrc,
            max_seq: seq.wrapping_sub(1),
            cycles: 0,
            base_seq: 0,
            bad_seq: SEQ_MOD + 1,
            probation: MIN_SEQUENTIAL,
            received: 0,
            seen: 0,
            transit: None,
            jitter: 0.0,
        };
        s.init_seq(seq);
        s.max_seq = seq.wrapping_sub(1);
        s
    }

    /// RFC 3550 A.1 `init_seq`.
    fn init_seq(&mut self, seq: u16) {
        self.base_seq = u32::from(seq);
        self.max_seq = seq;
        self.bad_seq = SEQ_MOD + 1;
        self.cycles = 0;
        self.received = 0;
        self.seen = 1;
    }

    fn extended_max(&self) -> u32 {
        self.cycles.wrapping_add(u32::from(self.max_seq))
    }

    fn expected(&self) -> u64 {
        if self.probation > 0 {
            return 0;
        }
        u64::from(self.cycles) + u64::from(self.max_seq) + 1 - u64::from(self.base_seq)
    }
}

/// RTP statistics of one leg: receive side per RFC 3550, send counters.
#[derive(Debug, Clone, Default)]
pub struct RtpStats {
    source: Option<Source>,
    /// Arrival times are measured from here (any fixed base will do: A.8
    /// only uses differences).
    epoch: Option<Instant>,
    /// Expected/received of earlier sources and pre-restart epochs.
    carried_expected: u64,
    carried_received: u64,
    /// Leg totals at the previous reception report.
    expected_prior: u64,
    received_prior: u64,
    packets: u64,
    octets: u64,
    duplicates: u64,
    late: u64,
    discarded: u64,
    ssrc_changes: u64,
    restarts: u64,
    /// Loss bursts seen as in-order gaps, and the packets in them.
    bursts: u64,
    burst_lost: u64,
    packets_sent: u64,
    octets_sent: u64,
}

impl RtpStats {
    /// Nothing received or sent yet.
    pub fn new() -> RtpStats {
        RtpStats::default()
    }

    /// Packets and payload octets sent so far.
    pub fn sent(&self) -> (u64, u64) {
        (self.packets_sent, self.octets_sent)
    }

    /// Count one packet sent (`payload_len` octets of payload).
    pub fn on_send(&mut self, payload_len: usize) {
        self.packets_sent += 1;
        self.octets_sent += payload_len as u64;
    }

    /// Account one received packet, arrived at `now`.
    pub fn on_receive(
        &mut self,
        now: Instant,
        ssrc: u32,
        seq: u16,
        timestamp: u32,
        payload_len: usize,
    ) -> Arrival {
        self.packets += 1;
        self.octets += payload_len as u64;
        let epoch = *self.epoch.get_or_insert(now);
        match &self.source {
            Some(s) if s.ssrc == ssrc => {}
            Some(_) => {
                self.ssrc_changes += 1;
                self.carry();
                self.source = Some(Source::new(ssrc, seq));
            }
            None => self.source = Some(Source::new(ssrc, seq)),
        }
        let arrival = self.update_seq(seq);
        if !matches!(arrival, Arrival::Duplicate | Arrival::Discarded) {
            if let Some(s) = self.source.as_mut() {
                // Arrival on the RTP clock, wrapping like RTP timestamps.
                let ticks = now.saturating_duration_since(epoch).as_nanos()
                    * u128::from(CLOCK_RATE)
                    / 1_000_000_000;
                let transit = (ticks as u32).wrapping_sub(timestamp);
                if let Some(prev) = s.transit {
                    let d = f64::from((transit.wrapping_sub(prev) as i32).unsigned_abs());
                    s.jitter += (d - s.jitter) / 16.0;
                }
                s.transit = Some(transit);
            }
        }
        arrival
    }

    /// Fold the current source's counts into the leg totals (before it is
    /// replaced or restarted).
    fn carry(&mut self) {
        if let Some(s) = &self.source {
            self.carried_expected += s.expected();
            self.carried_received += s.received;
        }
    }

    /// RFC 3550 A.1 `update_seq`, plus duplicate/late classification.
    fn update_seq(&mut self, seq: u16) -> Arrival {
        let Some(s) = self.source.as_mut() else {
            return Arrival::Discarded;
        };
        let udelta = u32::from(seq.wrapping_sub(s.max_seq));
        if s.probation > 0 {
            if seq == s.max_seq.wrapping_add(1) {
                s.probation -= 1;
                s.max_seq = seq;
                if s.probation == 0 {
                    s.init_seq(seq);
                    s.received += 1;
                    return Arrival::InOrder;
                }
            } else {
                s.probation = MIN_SEQUENTIAL - 1;
                s.max_seq = seq;
            }
            return Arrival::Probation;
        }
        if udelta == 0 {
            s.received += 1;
            self.duplicates += 1;
            return Arrival::Duplicate;
        }
        if udelta < MAX_DROPOUT {
            if seq < s.max_seq {
                s.cycles = s.cycles.wrapping_add(SEQ_MOD);
            }
            s.max_seq = seq;
            s.seen = if udelta >= 128 {
                1
            } else {
                (s.seen << udelta) | 1
            };
            if udelta > 1 {
                self.bursts += 1;
                self.burst_lost += u64::from(udelta - 1);
            }
            s.received += 1;
            return Arrival::InOrder;
        }
        if udelta <= SEQ_MOD - MAX_MISORDER {
            if u32::from(seq) == s.bad_seq {
                // Two sequential packets after a big jump: the sender
                // restarted. Keep what was counted so far.
                self.carry();
                self.restarts += 1;
                if let Some(s) = self.source.as_mut() {
                    s.init_seq(seq);
                    s.received += 1;
                }
                return Arrival::Restarted;
            }
            s.bad_seq = (u32::from(seq) + 1) & (SEQ_MOD - 1);
            self.discarded += 1;
            return Arrival::Discarded;
        }
        // Behind the highest: reordered or duplicated.
        s.received += 1;
        let behind = SEQ_MOD - udelta;
        if behind < 128 {
            let bit = 1u128 << behind;
            if s.seen & bit != 0 {
                self.duplicates += 1;
                return Arrival::Duplicate;
            }
            s.seen |= bit;
        }
        self.late += 1;
        // A late packet fills a hole counted as lost in a burst.
        self.burst_lost = self.burst_lost.saturating_sub(1);
        Arrival::Late
    }

    fn totals(&self) -> (u64, u64) {
        let (e, r) = self
            .source
            .as_ref()
            .map_or((0, 0), |s| (s.expected(), s.received));
        (self.carried_expected + e, self.carried_received + r)
    }

    /// The RTCP reception report block for the current source, starting a
    /// new interval for the fraction lost (RFC 3550 A.3). `None` before the
    /// first packet.
    pub fn reception_report(&mut self) -> Option<ReceptionReport> {
        let (expected, received) = self.totals();
        let expected_interval = expected.saturating_sub(self.expected_prior);
        let received_interval = received.saturating_sub(self.received_prior);
        self.expected_prior = expected;
        self.received_prior = received;
        let lost_interval = expected_interval as i64 - received_interval as i64;
        let fraction_lost = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval as u64) * 256 / expected_interval).min(255) as u8
        };
        let s = self.source.as_ref()?;
        let lost = expected as i64 - received as i64;
        Some(ReceptionReport {
            ssrc: s.ssrc,
            fraction_lost,
            cumulative_lost: lost.clamp(-0x80_0000, 0x7F_FFFF) as i32,
            extended_highest_seq: s.extended_max(),
            jitter: s.jitter as u32,
        })
    }

    /// Everything about the leg so far, with R and MOS from `model`.
    pub fn snapshot(&self, model: &EModel) -> LegStats {
        let (expected, received) = self.totals();
        let lost = expected as i64 - received as i64;
        let loss_ratio = if expected == 0 {
            0.0
        } else {
            (lost.max(0) as f64 / expected as f64).min(1.0)
        };
        let burst_ratio = if self.bursts == 0 || loss_ratio >= 1.0 {
            1.0
        } else {
            // G.107: BurstR = mean observed burst / mean burst of random
            // loss at the same ratio, 1/(1 - Ppl).
            (self.burst_lost as f64 / self.bursts as f64 * (1.0 - loss_ratio)).max(0.1)
        };
        let r = model.r_factor(loss_ratio * 100.0, burst_ratio);
        let jitter = self.source.as_ref().map_or(0.0, |s| s.jitter);
        LegStats {
            ssrc: self.source.as_ref().map(|s| s.ssrc),
            packets_received: self.packets,
            octets_received: self.octets,
            expected,
            received,
            cumulative_lost: lost,
            loss_ratio,
            duplicates: self.duplicates,
            late: self.late,
            discarded: self.discarded,
            ssrc_changes: self.ssrc_changes,
            restarts: self.restarts,
            extended_highest_seq: self
                .source
                .as_ref()
                .filter(|s| s.probation == 0)
                .map(Source::extended_max),
            jitter_ts: jitter,
            jitter_ms: jitter * 1000.0 / CLOCK_RATE as f64,
            burst_ratio,
            packets_sent: self.packets_sent,
            octets_sent: self.octets_sent,
            r_factor: r,
            mos: EModel::mos(r),
        }
    }
}

/// The E-model (ITU-T G.107) simplified for G.711: `R = (R0 − Is) − Id −
/// Ie,eff + A`, with the G.107 default parameters folded into
/// `R0 − Is = 93.2` (SLR, RLR, noise, sidetone and echo at their defaults).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EModel {
    /// Mouth-to-ear one-way delay estimate, ms (network + jitter buffer +
    /// packetisation), supplied by the caller.
    pub one_way_delay_ms: f64,
    /// Whether the receiver conceals lost packets (G.711 Appendix I PLC):
    /// Bpl = 25.1 with PLC, 4.3 without (G.113 Appendix I).
    pub plc: bool,
    /// Advantage factor A (G.107 Table 2): 0 for wired access.
    pub advantage: f64,
}

impl Default for EModel {
    fn default() -> Self {
        EModel {
            one_way_delay_ms: 0.0,
            plc: true,
            advantage: 0.0,
        }
    }
}

impl EModel {
    /// R0 − Is with all G.107 defaults.
    pub const R0_MINUS_IS: f64 = 93.2;
    /// Equipment impairment of G.711 without loss (G.113 Appendix I).
    pub const IE_G711: f64 = 0.0;

    /// Delay impairment Id, by the widely used piecewise approximation of
    /// G.107's Idd for an echo-free path (Cole & Rosenbluth, 2001):
    /// `0.024·d + 0.11·(d − 177.3)·H(d − 177.3)`.
    pub fn delay_impairment(delay_ms: f64) -> f64 {
        let d = delay_ms.max(0.0);
        0.024 * d + if d > 177.3 { 0.11 * (d - 177.3) } else { 0.0 }
    }

    /// Effective equipment impairment (G.107 eq. 7-29):
    /// `Ie + (95 − Ie)·Ppl / (Ppl/BurstR + Bpl)`, loss in percent.
    pub fn effective_equipment_impairment(&self, loss_percent: f64, burst_ratio: f64) -> f64 {
        let ppl = loss_percent.clamp(0.0, 100.0);
        let bpl = if self.plc { 25.1 } else { 4.3 };
        let burst = if burst_ratio > 0.0 { burst_ratio } else { 1.0 };
        Self::IE_G711 + (95.0 - Self::IE_G711) * ppl / (ppl / burst + bpl)
    }

    /// The rating R for a loss percentage and burst ratio, 0–100.
    pub fn r_factor(&self, loss_percent: f64, burst_ratio: f64) -> f64 {
        let r = Self::R0_MINUS_IS
            - Self::delay_impairment(self.one_way_delay_ms)
            - self.effective_equipment_impairment(loss_percent, burst_ratio)
            + self.advantage;
        r.clamp(0.0, 100.0)
    }

    /// MOS-CQE from R (G.107 Annex B): 1 below R = 0, 4.5 above 100, else
    /// `1 + 0.035R + R(R − 60)(100 − R)·7·10⁻⁶`.
    pub fn mos(r: f64) -> f64 {
        if r <= 0.0 {
            1.0
        } else if r >= 100.0 {
            4.5
        } else {
            1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7e-6
        }
    }
}

#[cfg(test)]
mod tests {
    //! RFC 3550 A.1 sequence accounting (wrap, reorder, duplicates, loss,
    //! restarts, SSRC change), A.8 jitter by hand, G.107 E-model points.

    use super::*;
    use crate::time::Duration;

    fn t0() -> Instant {
        // A base from the clock module; only differences matter.
        crate::time::now()
    }

    /// Feed `seqs` of one source at 20 ms spacing, timestamps matching.
    fn feed(st: &mut RtpStats, ssrc: u32, seqs: impl IntoIterator<Item = u16>) -> Vec<Arrival> {
        let base = t0();
        seqs.into_iter()
            .enumerate()
            .map(|(i, seq)| {
                let now = base + Duration::from_millis(20 * i as u64);
                st.on_receive(now, ssrc, seq, u32::from(seq) * 160, 160)
            })
            .collect()
    }

    fn approx(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn probation_then_valid() {
        let mut st = RtpStats::new();
        let a = feed(&mut st, 7, [100, 101, 102]);
        assert_eq!(a, [Arrival::Probation, Arrival::InOrder, Arrival::InOrder]);
        let s = st.snapshot(&EModel::default());
        assert_eq!((s.expected, s.received, s.cumulative_lost), (2, 2, 0));
        assert_eq!(s.packets_received, 3);
        assert_eq!(s.octets_received, 480);
        assert_eq!(s.extended_highest_seq, Some(102));
    }

    #[test]
    fn sequence_wraps_at_65535() {
        let mut st = RtpStats::new();
        let seqs: Vec<u16> = (65530..=65535).chain(0..=5).collect();
        feed(&mut st, 1, seqs);
        let s = st.snapshot(&EModel::default());
        assert_eq!(s.extended_highest_seq, Some(65536 + 5));
        assert_eq!((s.expected, s.received, s.cumulative_lost), (11, 11, 0));
        let r = st.reception_report().expect("report");
        assert_eq!(r.extended_highest_seq, 0x1_0005);
        assert_eq!((r.fraction_lost, r.cumulative_lost), (0, 0));
    }

    #[test]
    fn reordering_is_late_not_lost() {
        let mut st = RtpStats::new();
        let a = feed(&mut st, 1, [1, 2, 3, 5, 4, 6]);
        assert_eq!(a[3], Arrival::InOrder);
        assert_eq!(a[4], Arrival::Late);
        let s = st.snapshot(&EModel::default());
        assert_eq!((s.late, s.duplicates, s.cumulative_lost), (1, 0, 0));
        // Reordering across the wrap.
        let mut st = RtpStats::new();
        let a = feed(&mut st, 1, [65533, 65534, 0, 65535, 1]);
        assert_eq!(a[3], Arrival::Late);
        let s = st.snapshot(&EModel::default());
        assert_eq!(
            (s.expected, s.received, s.cumulative_lost, s.late),
            (4, 4, 0, 1)
        );
    }

    #[test]
    fn duplicates_make_loss_negative_and_reports_clamp() {
        let mut st = RtpStats::new();
        let a = feed(&mut st, 1, [1, 2, 3, 3, 4, 2]);
        assert_eq!(a[3], Arrival::Duplicate);
        assert_eq!(a[5], Arrival::Duplicate);
        let s = st.snapshot(&EModel::default());
        assert_eq!(s.duplicates, 2);
        assert_eq!(s.cumulative_lost, -2);
        assert_eq!(s.loss_ratio, 0.0);
        let r = st.reception_report().expect("report");
        assert_eq!((r.fraction_lost, r.cumulative_lost), (0, -2));
    }

    #[test]
    fn one_in_ten_lost() {
        let mut st = RtpStats::new();
        feed(&mut st, 9, (0..1000u16).filter(|s| s % 10 != 5));
        let s = st.snapshot(&EModel::default());
        // Valid from seq 1: expected 1..=999, 100 of them (5, 15 … 995) lost.
        assert_eq!((s.expected, s.received, s.cumulative_lost), (999, 899, 100));
        assert!(approx(s.loss_ratio, 100.0 / 999.0, 1e-12));
        // Isolated single losses: mean burst 1, BurstR = 1 − Ppl (< 1,
        // smoother than random).
        assert!(approx(s.burst_ratio, 1.0 - 100.0 / 999.0, 1e-12));
        let r = st.reception_report().expect("report");
        assert_eq!(r.fraction_lost, (100 * 256 / 999) as u8);
        assert_eq!(r.cumulative_lost, 100);
        // Next interval without loss: fraction 0, cumulative unchanged.
        let base = t0();
        for (i, seq) in (1000..1100u16).enumerate() {
            st.on_receive(
                base + Duration::from_millis(20 * i as u64),
                9,
                seq,
                u32::from(seq) * 160,
                160,
            );
        }
        let r = st.reception_report().expect("report");
        assert_eq!((r.fraction_lost, r.cumulative_lost), (0, 100));
    }

    #[test]
    fn jitter_by_hand() {
        // Timestamps 20 ms apart; arrivals at 0, 20, 45, 60, 80 ms.
        // Arrival ticks 0, 160, 360, 480, 640; transit 0, 0, 40, 0, 0;
        // |D| = 0, 40, 40, 0 -> J = 0, 2.5, 4.84375, 4.541015625.
        let mut st = RtpStats::new();
        let base = t0();
        for (i, ms) in [0u64, 20, 45, 60, 80].into_iter().enumerate() {
            let seq = 500 + i as u16;
            st.on_receive(
                base + Duration::from_millis(ms),
                3,
                seq,
                1000 + 160 * i as u32,
                160,
            );
        }
        let s = st.snapshot(&EModel::default());
        let j = 4.84375 - 4.84375 / 16.0;
        assert!(approx(s.jitter_ts, j, 1e-12), "{}", s.jitter_ts);
        assert!(approx(s.jitter_ms, j / 8.0, 1e-12));
        assert_eq!(st.reception_report().expect("report").jitter, 4);
    }

    #[test]
    fn timestamp_wrap_does_not_look_like_jitter() {
        let mut st = RtpStats::new();
        let base = t0();
        for i in 0..10u32 {
            let ts = (u32::MAX - 800).wrapping_add(160 * i);
            st.on_receive(
                base + Duration::from_millis(20 * u64::from(i)),
                3,
                i as u16,
                ts,
                160,
            );
        }
        assert_eq!(st.snapshot(&EModel::default()).jitter_ts, 0.0);
    }

    #[test]
    fn ssrc_change_resets_sequence_state() {
        let mut st = RtpStats::new();
        feed(&mut st, 1, 1..=50); // 49 expected/received after probation
        let a = feed(&mut st, 2, 40_000..=40_050);
        assert_eq!(a[0], Arrival::Probation);
        assert_eq!(a[1], Arrival::InOrder);
        let s = st.snapshot(&EModel::default());
        assert_eq!(s.ssrc, Some(2));
        assert_eq!(s.ssrc_changes, 1);
        assert_eq!(
            (s.expected, s.received, s.cumulative_lost),
            (49 + 50, 49 + 50, 0)
        );
        assert_eq!(s.extended_highest_seq, Some(40_050));
        assert_eq!(s.discarded, 0);
    }

    #[test]
    fn large_jump_is_discarded_then_confirmed_as_restart() {
        let mut st = RtpStats::new();
        feed(&mut st, 1, 10..=20); // 10 valid
        let a = feed(&mut st, 1, [9000, 9001, 9002]);
        assert_eq!(
            a,
            [Arrival::Discarded, Arrival::Restarted, Arrival::InOrder]
        );
        let s = st.snapshot(&EModel::default());
        assert_eq!((s.expected, s.received, s.cumulative_lost), (12, 12, 0));
        assert_eq!((s.discarded, s.restarts), (1, 1));
        // A lone stray jump is just discarded.
        let a = feed(&mut st, 1, [30_000, 9003]);
        assert_eq!(a, [Arrival::Discarded, Arrival::InOrder]);
    }

    #[test]
    fn send_counters() {
        let mut st = RtpStats::new();
        for _ in 0..3 {
            st.on_send(160);
        }
        let s = st.snapshot(&EModel::default());
        assert_eq!((s.packets_sent, s.octets_sent), (3, 480));
        assert_eq!(s.ssrc, None);
        assert!(st.reception_report().is_none());
    }

    #[test]
    fn e_model_without_impairments() {
        let m = EModel::default();
        let r = m.r_factor(0.0, 1.0);
        assert!(approx(r, 93.2, 1e-9));
        assert!(approx(EModel::mos(r), 4.41, 0.005), "{}", EModel::mos(r));
    }

    #[test]
    fn mos_from_r_matches_g109_band_edges() {
        // G.109 Table 1 band edges (rounded there to two decimals).
        for (r, mos) in [
            (90.0, 4.34),
            (80.0, 4.03),
            (70.0, 3.60),
            (60.0, 3.10),
            (50.0, 2.58),
        ] {
            assert!(
                approx(EModel::mos(r), mos, 0.01),
                "R {r}: {}",
                EModel::mos(r)
            );
        }
        assert_eq!(EModel::mos(-5.0), 1.0);
        assert_eq!(EModel::mos(120.0), 4.5);
    }

    #[test]
    fn e_model_random_loss_points() {
        // Ie,eff = 95·Ppl/(Ppl + Bpl) for random loss (BurstR = 1), G.711:
        // with PLC (Bpl 25.1): 1 % -> 3.64, 2 % -> 7.01, 5 % -> 15.78;
        // without (Bpl 4.3):  1 % -> 17.92, 2 % -> 30.16, 5 % -> 51.08.
        let plc = EModel::default();
        let no_plc = EModel {
            plc: false,
            ..EModel::default()
        };
        for (ppl, ie_plc, ie_raw) in [
            (1.0, 3.640, 17.925),
            (2.0, 7.011, 30.159),
            (5.0, 15.781, 51.075),
        ] {
            assert!(approx(
                plc.effective_equipment_impairment(ppl, 1.0),
                ie_plc,
                0.001
            ));
            assert!(approx(
                no_plc.effective_equipment_impairment(ppl, 1.0),
                ie_raw,
                0.001
            ));
        }
        // R = 93.2 − Ie,eff and MOS by the Annex B formula.
        let mos = |m: &EModel, p| EModel::mos(m.r_factor(p, 1.0));
        assert!(approx(mos(&plc, 1.0), 4.32, 0.01), "{}", mos(&plc, 1.0));
        assert!(approx(mos(&plc, 2.0), 4.23, 0.01), "{}", mos(&plc, 2.0));
        assert!(approx(mos(&plc, 5.0), 3.92, 0.01), "{}", mos(&plc, 5.0));
        assert!(
            approx(mos(&no_plc, 1.0), 3.83, 0.01),
            "{}",
            mos(&no_plc, 1.0)
        );
        assert!(
            approx(mos(&no_plc, 2.0), 3.26, 0.01),
            "{}",
            mos(&no_plc, 2.0)
        );
        assert!(
            approx(mos(&no_plc, 5.0), 2.17, 0.01),
            "{}",
            mos(&no_plc, 5.0)
        );
        // Bursty loss hurts more than random at the same ratio.
        assert!(plc.r_factor(2.0, 2.0) < plc.r_factor(2.0, 1.0));
    }

    #[test]
    fn delay_impairment() {
        assert_eq!(EModel::delay_impairment(0.0), 0.0);
        assert!(approx(EModel::delay_impairment(100.0), 2.4, 1e-9));
        assert!(approx(
            EModel::delay_impairment(300.0),
            7.2 + 0.11 * 122.7,
            1e-9
        ));
        let m = EModel {
            one_way_delay_ms: 150.0,
            ..EModel::default()
        };
        assert!(approx(m.r_factor(0.0, 1.0), 93.2 - 3.6, 1e-9));
    }
}
