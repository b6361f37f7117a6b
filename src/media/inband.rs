//! In-band DTMF detection on 8 kHz linear PCM (ITU-T Q.23 signals, Q.24
//! receiver), for carriers that send tones in the audio instead of RFC 4733
//! events.
//!
//! # Use
//!
//! Sans-IO, push then poll: feed any number of samples with
//! [`InbandDetector::push`] (the relay feeds 160-sample frames, but chunk
//! boundaries do not matter), then drain [`InbandDetector::poll_digit`] until
//! it returns `None`. Each key press is reported **once**, when it has lasted
//! long enough to be valid, not when it ends.
//!
//! # Analysis
//!
//! The signal is cut into **Hann-windowed blocks of N = 160 samples (20 ms),
//! one every 40 samples (5 ms)**. Each block runs eight Goertzel filters at
//! the exact DTMF frequencies (not the nearest DFT bin). Why these numbers:
//!
//! - N = 160 gives 50 Hz bins. With the Hann window the closest pair of
//!   tones in a group (697/770 Hz, 1.46 bins apart) is separated by 14 dB,
//!   and a tone of the other group (≥ 268 Hz away) leaks in below -50 dB, so
//!   twist is measured without the ±2 dB wobble a rectangular N = 102/205
//!   block shows when one tone is 8 dB louder than the other.
//! - A fixed block length cannot separate ±1.5 % from ±3.5 % by magnitude
//!   alone: 1.5 % of 1633 Hz (24.5 Hz) is the same offset as 3.5 % of 697 Hz.
//!   So the frequency is *measured*: the phase advance of each winning
//!   filter between consecutive blocks, minus the advance expected at the
//!   nominal frequency, gives the offset (unambiguous up to ±fs/2H = ±100 Hz,
//!   beyond the largest 3.5 % offset, 57 Hz). Offsets up to
//!   [`MAX_FREQ_DEVIATION`] = 2.5 % are accepted.
//! - The 5 ms hop gives the duration checks a 5 ms resolution.
//!
//! # Checks on each block (all must pass for the block to show a digit)
//!
//! 1. Energy: the block's mean power is at least [`ENERGY_FLOOR_DBM0`]
//!    (-36 dBm0, 0 dBm0 being the G.711 A-law reference level, where a
//!    full-scale sine is +3.14 dBm0: G.711 Table 1a / G.168).
//! 2. Relative peak: the strongest row tone exceeds the other row tones, and
//!    the strongest column tone the other column tones, by
//!    [`RELATIVE_PEAK_DB`].
//! 3. Twist (Q.24 / common practice): the high (column) tone at most 8 dB
//!    above the low (row) tone (normal twist), the low tone at most 4 dB
//!    above the high one (reverse twist).
//! 4. Purity: the two tones hold at least [`TONE_ENERGY_SHARE`] of the
//!    block's power (rejects broadband sound and partially filled blocks).
//! 5. Second harmonic (speech talk-off): the power at twice each tone's
//!    frequency is [`SECOND_HARMONIC_DB`] or more below the tone. Genuine
//!    senders keep unwanted components ≥ 20 dB down (Q.23); voiced speech
//!    is a harmonic series. The row tone's harmonic is skipped when it lies
//!    within 150 Hz of the column tone (e.g. 2 × 697 = 1394 Hz next to
//!    1336 Hz), where the column tone itself would be measured.
//! 6. Frequency: both tones within ±[`MAX_FREQ_DEVIATION`] of nominal,
//!    measured from the phase advance since the previous block.
//!
//! # Timing
//!
//! A digit starts after [`ON_BLOCKS`] consecutive blocks show it. A block
//! shows a tone only when the tone fills most of its (Hann-weighted) span,
//! so 7 blocks (30 ms of hops plus the 20 ms block) need a tone of about
//! 40 ms. Measured over all 40 alignments against the block grid
//! (`print_duration_threshold`): tones of 35 ms or less are never detected,
//! 36–41 ms at some alignments (40 ms: about 80 %), 42 ms and longer always.
//! After a report, the same digit is reported again only after
//! [`OFF_BLOCKS`] consecutive blocks
//! without it: measured the same way, gaps of 38 ms or less never repeat
//! the digit, 40–42 ms at some alignments, 44 ms and more always. A
//! different valid digit is reported
//! as soon as it has lasted long enough. Shorter drop-outs inside a key
//! press therefore do not double the digit.

use std::collections::VecDeque;
use std::f32::consts::PI;

/// Samples in one analysis block (20 ms at 8 kHz).
pub const BLOCK: usize = 160;
/// Samples between the starts of consecutive blocks (5 ms at 8 kHz).
pub const HOP: usize = 40;
/// Minimum block power, in dBm0, for a block to carry a digit.
pub const ENERGY_FLOOR_DBM0: f32 = -36.0;
/// Margin, in dB, by which the winning tone of each group must exceed the
/// other tones of its group.
pub const RELATIVE_PEAK_DB: f32 = 6.0;
/// Largest accepted excess of the column tone over the row tone, in dB.
pub const MAX_NORMAL_TWIST_DB: f32 = 8.0;
/// Largest accepted excess of the row tone over the column tone, in dB.
pub const MAX_REVERSE_TWIST_DB: f32 = 4.0;
/// Share of the block's power the two tones must hold.
pub const TONE_ENERGY_SHARE: f32 = 0.7;
/// How far, in dB, each tone's second harmonic must lie below the tone.
pub const SECOND_HARMONIC_DB: f32 = 20.0;
/// Largest accepted relative frequency deviation of either tone (Q.24:
/// accept ±1.5 %, reject ±3.5 %; the threshold sits between them).
pub const MAX_FREQ_DEVIATION: f32 = 0.025;
/// Consecutive blocks (5 ms apart) that must show a digit before it is
/// reported.
pub const ON_BLOCKS: u32 = 7;
/// Consecutive blocks without the reported digit before it may be reported
/// again.
pub const OFF_BLOCKS: u32 = 10;

/// The row (low-group) frequencies, Hz.
pub const ROW_HZ: [f32; 4] = [697.0, 770.0, 852.0, 941.0];
/// The column (high-group) frequencies, Hz.
pub const COL_HZ: [f32; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
/// The keypad: `KEYS[row][col]`.
pub const KEYS: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];

const FS: f32 = 8000.0;
/// RMS of a 0 dBm0 sine in 16-bit linear PCM: a full-scale sine (peak
/// 32767, RMS 23170) is +3.14 dBm0 for A-law, so 23170 / 10^(3.14/20).
const DBM0_RMS: f32 = 16_140.6;

/// The row and column frequencies of a DTMF key, if `digit` is one.
pub fn tones_of(digit: char) -> Option<(f32, f32)> {
    KEYS.iter().enumerate().find_map(|(r, row)| {
        row.iter()
            .position(|&k| k == digit.to_ascii_uppercase())
            .map(|c| (ROW_HZ[r], COL_HZ[c]))
    })
}

/// One Goertzel filter at an exact frequency.
#[derive(Debug, Clone, Copy)]
struct Goertzel {
    /// 2·cos(ω).
    coeff: f32,
    cos: f32,
    sin: f32,
    /// e^{-jωH}: removes the phase advance expected over one hop.
    hop_re: f32,
    hop_im: f32,
    hz: f32,
}

impl Goertzel {
    fn new(hz: f32) -> Goertzel {
        let w = 2.0 * PI * hz / FS;
        let tau = 2.0 * std::f64::consts::PI;
        let wh = (tau * f64::from(hz) * HOP as f64 / f64::from(FS)) % tau;
        Goertzel {
            coeff: 2.0 * w.cos(),
            cos: w.cos(),
            sin: w.sin(),
            hop_re: wh.cos() as f32,
            hop_im: -(wh.sin() as f32),
            hz,
        }
    }

    /// The (phase-rotated) DFT value of `x` at this frequency.
    fn run(&self, x: &[f32; BLOCK]) -> (f32, f32) {
        let (mut s1, mut s2) = (0.0f32, 0.0f32);
        for &v in x {
            let s0 = v + self.coeff * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        (s1 - self.cos * s2, self.sin * s2)
    }
}

fn power((re, im): (f32, f32)) -> f32 {
    re * re + im * im
}

fn db(x: f32) -> f32 {
    10f32.powf(x / 10.0)
}

/// In-band DTMF detector for one 8 kHz stream. See the module docs.
#[derive(Debug, Clone)]
pub struct InbandDetector {
    /// The last `BLOCK` samples, a ring; `pos` is the oldest.
    ring: [i16; BLOCK],
    pos: usize,
    /// Samples taken in so far, saturating (only "at least BLOCK" matters).
    filled: usize,
    /// Samples since the last block was analysed.
    since: usize,
    window: [f32; BLOCK],
    scratch: [f32; BLOCK],
    filters: [Goertzel; 8],
    /// Filters at twice each DTMF frequency.
    harmonics: [Goertzel; 8],
    /// The previous block's filter outputs, for the frequency measurement.
    prev: [(f32, f32); 8],
    /// Sum of the window's squares: power normalisation.
    w2: f32,
    /// Square of the window's sum: tone power normalisation.
    w1sq: f32,
    floor_ms: f32,
    candidate: Option<char>,
    run: u32,
    held: Option<char>,
    absent: u32,
    out: VecDeque<char>,
    tally: Tally,
}

/// Why a block did not show a digit.
#[derive(Debug, Clone, Copy)]
enum Reject {
    Quiet,
    RelativePeak,
    Twist,
    Impure,
    Frequency,
    Harmonic,
}

/// Per-check counts of analysed blocks (one block every 5 ms).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Below the energy floor.
    pub quiet: u64,
    /// No row or column tone clearly above the rest of its group.
    pub relative_peak: u64,
    /// Twist out of limits.
    pub twist: u64,
    /// The two tones held too little of the block's power.
    pub impure: u64,
    /// A tone off its nominal frequency by more than the tolerance.
    pub frequency: u64,
    /// A second harmonic too strong (speech).
    pub harmonic: u64,
    /// Blocks that showed a digit.
    pub digit: u64,
}

impl Default for InbandDetector {
    fn default() -> Self {
        Self::new()
    }
}

impl InbandDetector {
    /// A detector with nothing heard yet.
    pub fn new() -> InbandDetector {
        let mut window = [0f32; BLOCK];
        for (n, w) in window.iter_mut().enumerate() {
            // Periodic Hann.
            *w = 0.5 - 0.5 * (2.0 * PI * n as f32 / BLOCK as f32).cos();
        }
        let w2 = window.iter().map(|w| w * w).sum();
        let w1: f32 = window.iter().sum();
        let mut filters = [Goertzel::new(0.0); 8];
        let mut harmonics = [Goertzel::new(0.0); 8];
        for ((f, h), hz) in filters
            .iter_mut()
            .zip(harmonics.iter_mut())
            .zip(ROW_HZ.iter().chain(COL_HZ.iter()))
        {
            *f = Goertzel::new(*hz);
            *h = Goertzel::new(2.0 * *hz);
        }
        InbandDetector {
            ring: [0; BLOCK],
            pos: 0,
            filled: 0,
            since: 0,
            window,
            scratch: [0.0; BLOCK],
            filters,
            harmonics,
            prev: [(0.0, 0.0); 8],
            w2,
            w1sq: w1 * w1,
            floor_ms: (DBM0_RMS * DBM0_RMS) * db(ENERGY_FLOOR_DBM0),
            candidate: None,
            run: 0,
            held: None,
            absent: 0,
            out: VecDeque::with_capacity(4),
            tally: Tally::default(),
        }
    }

    /// Feed samples (any count). Digits found are queued for
    /// [`poll_digit`](Self::poll_digit).
    pub fn push(&mut self, samples: &[i16]) {
        for &s in samples {
            self.ring[self.pos] = s;
            self.pos = (self.pos + 1) % BLOCK;
            self.filled = (self.filled + 1).min(BLOCK);
            self.since += 1;
            if self.since == HOP && self.filled == BLOCK {
                self.since = 0;
                let shown = self.analyse();
                self.step(shown);
            } else if self.since >= HOP {
                self.since = 0;
            }
        }
    }

    /// The next detected digit (`0`–`9`, `*`, `#`, `A`–`D`), oldest first.
    #[must_use]
    pub fn poll_digit(&mut self) -> Option<char> {
        self.out.pop_front()
    }

    /// Forget the signal heard so far (e.g. when the stream's source
    /// changes); queued digits and the tally are kept.
    pub fn reset(&mut self) {
        let (out, tally) = (std::mem::take(&mut self.out), self.tally);
        *self = InbandDetector {
            out,
            tally,
            ..InbandDetector::new()
        };
    }

    /// The timing state machine, one step per block.
    fn step(&mut self, shown: Option<char>) {
        match shown {
            Some(d) if self.candidate == Some(d) => self.run = self.run.saturating_add(1),
            Some(d) => {
                self.candidate = Some(d);
                self.run = 1;
            }
            None => {
                self.candidate = None;
                self.run = 0;
            }
        }
        if self.held.is_some() && shown != self.held {
            self.absent += 1;
            if self.absent >= OFF_BLOCKS {
                self.held = None;
            }
        } else {
            self.absent = 0;
        }
        if let Some(d) = self.candidate {
            if self.run >= ON_BLOCKS && self.held != Some(d) {
                self.held = Some(d);
                self.absent = 0;
                self.out.push_back(d);
            }
        }
    }

    /// How many analysed blocks failed each check, and how many showed a
    /// digit (diagnostics: where speech or noise is stopped).
    pub fn tally(&self) -> &Tally {
        &self.tally
    }

    /// Analyse the block held in the ring: which digit it shows, if any.
    fn analyse(&mut self) -> Option<char> {
        let verdict = self.check();
        let t = &mut self.tally;
        let slot = match verdict {
            Ok(_) => &mut t.digit,
            Err(Reject::Quiet) => &mut t.quiet,
            Err(Reject::RelativePeak) => &mut t.relative_peak,
            Err(Reject::Twist) => &mut t.twist,
            Err(Reject::Impure) => &mut t.impure,
            Err(Reject::Frequency) => &mut t.frequency,
            Err(Reject::Harmonic) => &mut t.harmonic,
        };
        *slot += 1;
        verdict.ok()
    }

    /// The checks of the module docs, in order.
    fn check(&mut self) -> Result<char, Reject> {
        let (older, newer) = self.ring.split_at(self.pos);
        let ordered = newer.iter().chain(older.iter());
        let mut energy = 0f32;
        for ((x, &s), w) in self.scratch.iter_mut().zip(ordered).zip(self.window.iter()) {
            *x = f32::from(s) * w;
            energy += *x * *x;
        }
        // All eight filters in one pass: independent recurrences side by
        // side, so the loop is not bound by one filter's dependency chain.
        let coeff: [f32; 8] = std::array::from_fn(|i| self.filters[i].coeff);
        let (mut s1, mut s2) = ([0f32; 8], [0f32; 8]);
        for &v in self.scratch.iter() {
            for i in 0..8 {
                let s0 = v + coeff[i] * s1[i] - s2[i];
                s2[i] = s1[i];
                s1[i] = s0;
            }
        }
        let mut out = [(0f32, 0f32); 8];
        let mut pw = [0f32; 8];
        for i in 0..8 {
            let f = &self.filters[i];
            out[i] = (s1[i] - f.cos * s2[i], f.sin * s2[i]);
            // Tone power (A²/2) as seen through the window.
            pw[i] = 2.0 * power(out[i]) / self.w1sq;
        }
        let prev = std::mem::replace(&mut self.prev, out);
        let mean_square = energy / self.w2;
        if mean_square < self.floor_ms {
            return Err(Reject::Quiet);
        }
        let row = strongest(&pw[..4]).ok_or(Reject::Quiet)?;
        let col = strongest(&pw[4..]).ok_or(Reject::Quiet)?;
        let (pr, pc) = (pw[row], pw[4 + col]);
        // Relative peak within each group.
        let rel = db(RELATIVE_PEAK_DB);
        let others_ok = |group: &[f32], win: usize, p: f32| {
            group
                .iter()
                .enumerate()
                .all(|(i, &q)| i == win || p >= rel * q)
        };
        if !others_ok(&pw[..4], row, pr) || !others_ok(&pw[4..], col, pc) {
            return Err(Reject::RelativePeak);
        }
        // Twist.
        if pc > pr * db(MAX_NORMAL_TWIST_DB) || pr > pc * db(MAX_REVERSE_TWIST_DB) {
            return Err(Reject::Twist);
        }
        // Purity.
        if pr + pc < TONE_ENERGY_SHARE * mean_square {
            return Err(Reject::Impure);
        }
        // Frequency, from the phase advance since the previous block.
        for i in [row, 4 + col] {
            let f = &self.filters[i];
            let (a, b) = (out[i], prev[i]);
            // a · conj(b) · e^{-jωH}
            let (re, im) = (a.0 * b.0 + a.1 * b.1, a.1 * b.0 - a.0 * b.1);
            let (re, im) = (re * f.hop_re - im * f.hop_im, re * f.hop_im + im * f.hop_re);
            if re == 0.0 && im == 0.0 {
                return Err(Reject::Frequency);
            }
            let dev_hz = im.atan2(re) * FS / (2.0 * PI * HOP as f32);
            if dev_hz.abs() > MAX_FREQ_DEVIATION * f.hz {
                return Err(Reject::Frequency);
            }
        }
        // Second harmonics.
        let harmonic = db(-SECOND_HARMONIC_DB);
        let (fr, fc) = (ROW_HZ[row], COL_HZ[col]);
        let tone_power = |g: &Goertzel| 2.0 * power(g.run(&self.scratch)) / self.w1sq;
        if tone_power(&self.harmonics[4 + col]) > harmonic * pc {
            return Err(Reject::Harmonic);
        }
        if (2.0 * fr - fc).abs() >= 150.0 && tone_power(&self.harmonics[row]) > harmonic * pr {
            return Err(Reject::Harmonic);
        }
        Ok(KEYS[row][col])
    }
}

/// Index of the largest value (None for an empty slice or NaNs only).
fn strongest(p: &[f32]) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (i, &v) in p.iter().enumerate() {
        if best.is_none_or(|b| v > p[b]) {
            best = Some(i);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    //! Q.24-style receiver tests, each on linear PCM and again after a G.711
    //! A-law round trip.

    use super::*;
    use crate::rng::Rng;

    use crate::media::g711::{alaw_decode, alaw_encode};

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Path {
        Linear,
        ALaw,
    }
    const PATHS: [Path; 2] = [Path::Linear, Path::ALaw];

    fn through(path: Path, x: &[i16]) -> Vec<i16> {
        match path {
            Path::Linear => x.to_vec(),
            Path::ALaw => x.iter().map(|&s| alaw_decode(alaw_encode(s))).collect(),
        }
    }

    fn peak(dbm0: f64) -> f64 {
        f64::from(DBM0_RMS) * std::f64::consts::SQRT_2 * 10f64.powf(dbm0 / 20.0)
    }

    /// Append `ms` of two tones at the given frequencies and levels.
    fn tones(sig: &mut Vec<i16>, f1: f64, l1: f64, f2: f64, l2: f64, samples: usize) {
        let (a1, a2) = (peak(l1), peak(l2));
        let tau = 2.0 * std::f64::consts::PI;
        for n in 0..samples {
            let t = n as f64 / 8000.0;
            let v = a1 * (tau * f1 * t + 0.3).sin() + a2 * (tau * f2 * t + 1.1).sin();
            sig.push(v.round().clamp(-32768.0, 32767.0) as i16);
        }
    }

    fn digit(sig: &mut Vec<i16>, d: char, level: f64, samples: usize) {
        let (r, c) = tones_of(d).expect("test digit");
        tones(sig, f64::from(r), level, f64::from(c), level, samples);
    }

    fn silence(sig: &mut Vec<i16>, samples: usize) {
        sig.extend(std::iter::repeat_n(0, samples));
    }

    fn ms(ms: usize) -> usize {
        ms * 8
    }

    fn detect_chunked(x: &[i16], chunk: usize) -> String {
        let mut det = InbandDetector::new();
        let mut got = String::new();
        for c in x.chunks(chunk) {
            det.push(c);
            while let Some(d) = det.poll_digit() {
                got.push(d);
            }
        }
        got
    }

    fn detect(path: Path, x: &[i16]) -> String {
        detect_chunked(&through(path, x), 160)
    }

    const ALL: &str = "123A456B789C*0#D";

    #[test]
    fn tones_of_maps_the_keypad() {
        assert_eq!(tones_of('5'), Some((770.0, 1336.0)));
        assert_eq!(tones_of('d'), Some((941.0, 1633.0)));
        assert_eq!(tones_of('x'), None);
    }

    #[test]
    fn every_digit_at_every_level_once() {
        for path in PATHS {
            for d in ALL.chars() {
                for level in (3..=30).step_by(3) {
                    let mut x = Vec::new();
                    silence(&mut x, ms(20));
                    digit(&mut x, d, -f64::from(level), ms(80));
                    silence(&mut x, ms(60));
                    assert_eq!(
                        detect(path, &x),
                        d.to_string(),
                        "{path:?} {d} at -{level} dBm0"
                    );
                }
            }
        }
    }

    #[test]
    fn chunk_size_does_not_matter() {
        let mut x = Vec::new();
        for d in "15#9".chars() {
            digit(&mut x, d, -12.0, ms(60));
            silence(&mut x, ms(60));
        }
        for chunk in [1, 7, 40, 160, 1000, x.len()] {
            assert_eq!(detect_chunked(&x, chunk), "15#9", "chunk {chunk}");
        }
    }

    #[test]
    fn below_the_energy_floor_is_ignored() {
        for path in PATHS {
            for d in ALL.chars() {
                let mut x = Vec::new();
                digit(&mut x, d, -42.0, ms(200));
                assert_eq!(detect(path, &x), "", "{path:?} {d}");
            }
        }
    }

    fn offset_digit(d: char, dr: f64, dc: f64, level: f64) -> Vec<i16> {
        let (r, c) = tones_of(d).expect("test digit");
        let mut x = Vec::new();
        silence(&mut x, ms(10));
        let (r, c) = (f64::from(r) * (1.0 + dr), f64::from(c) * (1.0 + dc));
        tones(&mut x, r, level, c, level, ms(80));
        silence(&mut x, ms(50));
        x
    }

    #[test]
    fn frequency_offsets_of_1_5_percent_are_accepted() {
        for path in PATHS {
            for d in ALL.chars() {
                for (dr, dc) in [
                    (0.015, 0.015),
                    (0.015, -0.015),
                    (-0.015, 0.015),
                    (-0.015, -0.015),
                ] {
                    for level in [-6.0, -25.0] {
                        let x = offset_digit(d, dr, dc, level);
                        assert_eq!(
                            detect(path, &x),
                            d.to_string(),
                            "{path:?} {d} {dr} {dc} {level}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn frequency_offsets_of_3_5_percent_are_rejected() {
        for path in PATHS {
            for d in ALL.chars() {
                for (dr, dc) in [(0.035, 0.0), (-0.035, 0.0), (0.0, 0.035), (0.0, -0.035)] {
                    let x = offset_digit(d, dr, dc, -10.0);
                    assert_eq!(detect(path, &x), "", "{path:?} {d} {dr} {dc}");
                }
            }
        }
    }

    fn twisted(d: char, row_db: f64, col_db: f64) -> Vec<i16> {
        let (r, c) = tones_of(d).expect("test digit");
        let mut x = Vec::new();
        silence(&mut x, ms(10));
        tones(&mut x, f64::from(r), row_db, f64::from(c), col_db, ms(80));
        silence(&mut x, ms(50));
        x
    }

    #[test]
    fn twist_within_the_limits_is_accepted() {
        for path in PATHS {
            for d in ALL.chars() {
                // Normal twist 7 dB (limit 8), reverse 3 dB (limit 4).
                assert_eq!(
                    detect(path, &twisted(d, -20.0, -13.0)),
                    d.to_string(),
                    "{path:?} {d}"
                );
                assert_eq!(
                    detect(path, &twisted(d, -10.0, -13.0)),
                    d.to_string(),
                    "{path:?} {d}"
                );
            }
        }
    }

    #[test]
    fn twist_beyond_the_limits_is_rejected() {
        for path in PATHS {
            for d in ALL.chars() {
                // Normal twist 9 dB, reverse 5 dB.
                assert_eq!(detect(path, &twisted(d, -22.0, -13.0)), "", "{path:?} {d}");
                assert_eq!(detect(path, &twisted(d, -8.0, -13.0)), "", "{path:?} {d}");
            }
        }
    }

    #[test]
    fn thirty_ms_is_rejected_and_fifty_ms_accepted_at_every_alignment() {
        for path in PATHS {
            for d in ALL.chars() {
                for lead in (0..HOP).step_by(3) {
                    for (len, want) in [(30, ""), (50, d.to_string().as_str())] {
                        let mut x = Vec::new();
                        silence(&mut x, ms(20) + lead);
                        digit(&mut x, d, -10.0, ms(len));
                        silence(&mut x, ms(60));
                        assert_eq!(detect(path, &x), want, "{path:?} {d} {len} ms, lead {lead}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_sequence_with_50_ms_gaps_gives_each_digit_once() {
        for path in PATHS {
            let mut x = Vec::new();
            let seq = "1234567890*#ABCD1122";
            for d in seq.chars() {
                digit(&mut x, d, -15.0, ms(50));
                silence(&mut x, ms(50));
            }
            assert_eq!(detect(path, &x), seq, "{path:?}");
        }
    }

    #[test]
    fn a_long_press_with_a_short_dropout_is_one_digit() {
        for path in PATHS {
            let mut x = Vec::new();
            digit(&mut x, '7', -15.0, ms(2000));
            silence(&mut x, ms(10));
            digit(&mut x, '7', -15.0, ms(300));
            silence(&mut x, ms(60));
            assert_eq!(detect(path, &x), "7", "{path:?}");
        }
    }

    #[test]
    fn a_different_digit_without_a_gap_is_reported() {
        let mut x = Vec::new();
        digit(&mut x, '3', -15.0, ms(100));
        digit(&mut x, '6', -15.0, ms(100));
        silence(&mut x, ms(60));
        assert_eq!(detect(Path::Linear, &x), "36");
    }

    /// A uniform value in [0, 1).
    fn uniform(rng: &mut Rng) -> f64 {
        (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn white_noise(seed: u64, seconds: usize, dbm0: f64) -> Vec<i16> {
        let mut rng = Rng::new(seed);
        let rms = f64::from(DBM0_RMS) * 10f64.powf(dbm0 / 20.0);
        (0..seconds * 8000)
            .map(|_| {
                // Sum of 4 uniforms: near-Gaussian, variance 4/12.
                let g: f64 = (0..4).map(|_| uniform(&mut rng) - 0.5).sum::<f64>() * 3f64.sqrt();
                (g * rms).round().clamp(-32768.0, 32767.0) as i16
            })
            .collect()
    }

    #[test]
    fn a_minute_of_white_noise_gives_no_digit() {
        for path in PATHS {
            for (seed, level) in [(1, -10.0), (2, -25.0)] {
                let x = white_noise(seed, 60, level);
                assert_eq!(detect(path, &x), "", "{path:?} seed {seed}");
            }
        }
    }

    /// Two-pole resonator (a formant), unit gain at its centre frequency.
    struct Resonator {
        y1: f64,
        y2: f64,
    }

    impl Resonator {
        fn step(&mut self, x: f64, hz: f64, bw: f64) -> f64 {
            let r = (-std::f64::consts::PI * bw / 8000.0).exp();
            let a1 = 2.0 * r * (2.0 * std::f64::consts::PI * hz / 8000.0).cos();
            let a2 = -r * r;
            let y = (1.0 - r) * x + a1 * self.y1 + a2 * self.y2;
            self.y2 = self.y1;
            self.y1 = y;
            y
        }
    }

    /// Seeded speech-like signal: Rosenberg glottal pulses at a gliding pitch
    /// (90–250 Hz), through three moving formant resonators, shaped by
    /// syllable envelopes (120–400 ms) with pauses, some unvoiced frication.
    fn speech(seed: u64, seconds: usize) -> Vec<i16> {
        let mut rng = Rng::new(seed);
        let mut u = move || uniform(&mut rng);
        let total = seconds * 8000;
        let mut out: Vec<f64> = Vec::with_capacity(total);
        let mut f = [
            Resonator { y1: 0.0, y2: 0.0 },
            Resonator { y1: 0.0, y2: 0.0 },
            Resonator { y1: 0.0, y2: 0.0 },
        ];
        let mut phase = 0.0f64; // position within the glottal period, 0..1
        let mut prev_pulse = 0.0f64;
        while out.len() < total {
            let len = (0.12 + 0.28 * u()) * 8000.0;
            let len = len as usize;
            let p0 = 90.0 + 160.0 * u();
            let p1 = (p0 * (0.7 + 0.6 * u())).clamp(90.0, 250.0);
            let f1 = (300.0 + 600.0 * u(), 300.0 + 600.0 * u());
            let f2 = (850.0 + 1400.0 * u(), 850.0 + 1400.0 * u());
            let f3 = (2200.0 + 800.0 * u(), 2200.0 + 800.0 * u());
            let bw = [50.0 + 70.0 * u(), 60.0 + 90.0 * u(), 80.0 + 120.0 * u()];
            let gain = 10f64.powf((-25.0 + 20.0 * u()) / 20.0);
            let voiced = u() < 0.85;
            for n in 0..len {
                let t = n as f64 / len as f64;
                let env = (std::f64::consts::PI * t).sin().powf(0.7);
                let pitch = p0 + (p1 - p0) * t;
                phase += pitch / 8000.0;
                if phase >= 1.0 {
                    phase -= 1.0;
                }
                // Rosenberg pulse: opening 40 %, closing 16 % of the period.
                let g = if phase < 0.4 {
                    0.5 * (1.0 - (std::f64::consts::PI * phase / 0.4).cos())
                } else if phase < 0.56 {
                    (std::f64::consts::PI * (phase - 0.4) / 0.32).cos()
                } else {
                    0.0
                };
                // Lip radiation: first difference.
                let src = if voiced {
                    (g - prev_pulse) * 8.0
                } else {
                    u() - 0.5
                };
                prev_pulse = g;
                let lerp = |(a, b): (f64, f64)| a + (b - a) * t;
                let y = f[0].step(src, lerp(f1), bw[0]);
                let y = f[1].step(y, lerp(f2), bw[1]) * 4.0 + y * 0.5;
                let y = f[2].step(y, lerp(f3), bw[2]) * 2.0 + y * 0.7;
                out.push(y * env * gain);
            }
            // Pause.
            let pause = ((0.03 + 0.2 * u()) * 8000.0) as usize;
            out.extend(std::iter::repeat_n(0.0, pause));
        }
        out.truncate(total);
        // Scale so the loudest syllables sit near -10 dBm0 RMS, peaks clipped.
        let rms = (out.iter().map(|v| v * v).sum::<f64>() / total as f64)
            .sqrt()
            .max(1e-12);
        let scale = f64::from(DBM0_RMS) * 10f64.powf(-16.0 / 20.0) / rms;
        out.iter()
            .map(|v| (v * scale).round().clamp(-32768.0, 32767.0) as i16)
            .collect()
    }

    #[test]
    fn a_minute_of_speech_like_signal_gives_no_digit() {
        for path in PATHS {
            for seed in [11, 12] {
                let x = speech(seed, 60);
                let got = detect(path, &x);
                assert_eq!(
                    got,
                    "",
                    "{path:?} seed {seed}: talk-off {} digits",
                    got.len()
                );
            }
        }
    }

    /// Longest run of consecutive blocks showing a digit, and the tally.
    fn longest_run(x: &[i16]) -> (u64, Tally) {
        let mut det = InbandDetector::new();
        let (mut run, mut best, mut seen) = (0, 0, 0);
        for c in x.chunks(HOP) {
            det.push(c);
            let now = det.tally().digit;
            if now > seen {
                run += 1;
                best = best.max(run);
            } else {
                run = 0;
            }
            seen = now;
        }
        (best, *det.tally())
    }

    #[test]
    #[ignore = "diagnostic: prints how close speech and noise come"]
    fn print_talk_off_margins() {
        for path in PATHS {
            for seed in [11, 12, 13, 14] {
                let (run, t) = longest_run(&through(path, &speech(seed, 60)));
                println!("{path:?} speech seed {seed}: longest run {run} blocks (need {ON_BLOCKS}); {t:?}");
            }
            let (run, t) = longest_run(&through(path, &white_noise(1, 60, -10.0)));
            println!("{path:?} noise: longest run {run}; {t:?}");
            let vowels: Vec<i16> = ALL.chars().flat_map(|d| aligned_vowel(d, 400)).collect();
            let (run, t) = longest_run(&through(path, &vowels));
            println!("{path:?} tuned vowels: longest run {run}; {t:?}");
        }
    }

    /// Worst case for talk-off: a sustained vowel whose pitch puts one
    /// harmonic within 1 % of a row tone and another within 1 % of a column
    /// tone, with two formants (60 Hz wide) centred on those tones, the
    /// column branch scaled to the row branch's power (no twist to hide
    /// behind).
    fn aligned_vowel(d: char, ms_len: usize) -> Vec<i16> {
        let (r, c) = tones_of(d).expect("test digit");
        let (r, c) = (f64::from(r), f64::from(c));
        let mut best = (f64::MAX, 100.0);
        let mut p = 90.0;
        while p <= 250.0 {
            let err = ((r / p).round() * p - r).abs() / r + ((c / p).round() * p - c).abs() / c;
            if err < best.0 {
                best = (err, p);
            }
            p += 0.05;
        }
        let pitch = best.1;
        let mut f = [
            Resonator { y1: 0.0, y2: 0.0 },
            Resonator { y1: 0.0, y2: 0.0 },
        ];
        let (mut phase, mut prev) = (0.0f64, 0.0f64);
        let (mut ra, mut cb) = (Vec::new(), Vec::new());
        for _ in 0..ms(ms_len) {
            phase += pitch / 8000.0;
            if phase >= 1.0 {
                phase -= 1.0;
            }
            let g = if phase < 0.4 {
                0.5 * (1.0 - (std::f64::consts::PI * phase / 0.4).cos())
            } else if phase < 0.56 {
                (std::f64::consts::PI * (phase - 0.4) / 0.32).cos()
            } else {
                0.0
            };
            let src = (g - prev) * 8.0;
            prev = g;
            ra.push(f[0].step(src, r, 60.0));
            cb.push(f[1].step(src, c, 60.0));
        }
        let pow = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().max(1e-12);
        let k = (pow(&ra) / pow(&cb)).sqrt();
        let out: Vec<f64> = ra.iter().zip(&cb).map(|(a, b)| a + k * b).collect();
        let rms = (out.iter().map(|v| v * v).sum::<f64>() / out.len() as f64).sqrt();
        let scale = f64::from(DBM0_RMS) * 10f64.powf(-12.0 / 20.0) / rms.max(1e-12);
        out.iter()
            .map(|v| (v * scale).round().clamp(-32768.0, 32767.0) as i16)
            .collect()
    }

    #[test]
    fn vowels_tuned_onto_dtmf_pairs_give_no_digit() {
        for path in PATHS {
            let mut hits = String::new();
            for d in ALL.chars() {
                hits.push_str(&detect(path, &aligned_vowel(d, 400)));
            }
            assert_eq!(
                hits,
                "",
                "{path:?}: talk-off on {} of 16 tuned vowels",
                hits.len()
            );
        }
    }

    #[test]
    #[ignore = "diagnostic: duration and gap thresholds over all alignments"]
    fn print_duration_threshold() {
        for d in ['1', '5', 'D'] {
            let mut line = String::new();
            for len in 30..=50 {
                let mut hit = 0;
                for lead in 0..HOP {
                    let mut x = Vec::new();
                    silence(&mut x, ms(20) + lead);
                    digit(&mut x, d, -10.0, ms(len));
                    silence(&mut x, ms(60));
                    hit += usize::from(detect(Path::Linear, &x) == d.to_string());
                }
                line.push_str(&format!(" {len}ms:{hit}/40"));
            }
            println!("{d}:{line}");
        }
        let mut line = String::new();
        for gap in (20..=50).step_by(2) {
            let mut twice = 0;
            for lead in 0..HOP {
                let mut x = Vec::new();
                silence(&mut x, ms(20) + lead);
                digit(&mut x, '5', -10.0, ms(60));
                silence(&mut x, ms(gap));
                digit(&mut x, '5', -10.0, ms(60));
                silence(&mut x, ms(60));
                twice += usize::from(detect(Path::Linear, &x) == "55");
            }
            line.push_str(&format!(" {gap}ms:{twice}/40"));
        }
        println!("gap giving a second '5':{line}");
    }
}
