//! Call-progress tones as pre-generated loops of 20 ms frames.
//!
//! A [`ToneSignal`] is computed once (pure, no IO, no clock) when the media
//! plane starts and then played frame by frame by the shard's 20 ms tick:
//! playback is an index into [`ToneSignal::frames`] (or the pre-encoded
//! [`ToneSignal::encoded`]), wrapping to frame 0 when [`ToneSignal::looping`].
//!
//! | tone | frequency | cadence | loop |
//! |---|---|---|---|
//! | [`Tone::Ringback`] (回铃音) | 450 Hz | 1 s on, 4 s off | 250 frames |
//! | [`Tone::Busy`] (忙音) | 450 Hz | 0.35 s on, 0.35 s off | 35 frames |
//! | [`Tone::Beep`] | 1000 Hz | 200 ms once | 10 frames, no loop |
//!
//! Cadences are exact in samples: busy's 350 ms is 17.5 frames, so its
//! on/off edge falls mid-frame and the 700 ms loop is exactly 35 frames.
//!
//! **Level**: −10 dBm0 ([`LEVEL_DBM0`]). The reference is A-law's: G.711
//! puts A-law's overload point (±4096 in 13-bit units, ±32 768 in our 16-bit
//! scale) at +3.14 dBm0, so a 0 dBm0 sine has peak
//! 32 768 · 10^(−3.14/20) ≈ 22 827 ([`dbm0_peak`]), and −10 dBm0 ≈ 7 219.
//!
//! **Shape**: each on-segment is one phase-continuous sine starting at
//! phase 0, with a 5 ms raised-cosine ramp in and out ([`RAMP_SAMPLES`]), so
//! the on/off edges and the loop seam have no click (the segment starts and
//! ends at 0, where the off part and the next loop are).

use super::{Codec, G711Frame, PcmFrame, FRAME_SAMPLES, SAMPLE_RATE};

/// Tone level in dBm0.
pub const LEVEL_DBM0: f64 = -10.0;

/// A-law overload level relative to 0 dBm0 (G.711: +3.14 dBm0).
#[allow(clippy::approx_constant)] // G.711's +3.14 dBm0, not π
pub const ALAW_OVERLOAD_DBM0: f64 = 3.14;

/// Length of the raised-cosine ramp at each end of an on-segment: 5 ms.
pub const RAMP_SAMPLES: usize = 40;

/// Peak of a 0 dBm0 sine in 16-bit linear PCM (A-law reference, ≈ 22 827).
#[must_use]
pub fn dbm0_peak() -> f64 {
    32_768.0 * 10f64.powf(-ALAW_OVERLOAD_DBM0 / 20.0)
}

/// A call-progress tone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tone {
    /// Chinese ringback (回铃音): 450 Hz, 1 s on, 4 s off, repeating.
    Ringback,
    /// Chinese busy (忙音): 450 Hz, 0.35 s on, 0.35 s off, repeating.
    Busy,
    /// A single 1000 Hz beep of 200 ms ("please speak after the beep",
    /// before the survey); not looping.
    Beep,
}

impl Tone {
    /// All tones.
    pub const ALL: [Tone; 3] = [Tone::Ringback, Tone::Busy, Tone::Beep];

    /// Frequency in hertz.
    #[must_use]
    pub const fn frequency_hz(self) -> u32 {
        match self {
            Tone::Ringback | Tone::Busy => 450,
            Tone::Beep => 1000,
        }
    }

    /// Samples of tone in one cycle (8 per millisecond).
    #[must_use]
    pub const fn on_samples(self) -> usize {
        match self {
            Tone::Ringback => 8_000,
            Tone::Busy => 2_800,
            Tone::Beep => 1_600,
        }
    }

    /// Samples of silence after the tone in one cycle.
    #[must_use]
    pub const fn off_samples(self) -> usize {
        match self {
            Tone::Ringback => 32_000,
            Tone::Busy => 2_800,
            Tone::Beep => 0,
        }
    }

    /// Whether playback wraps to the first frame after the last.
    #[must_use]
    pub const fn looping(self) -> bool {
        !matches!(self, Tone::Beep)
    }

    /// Frames in one cycle (on + off). Every cycle is a whole number of
    /// 20 ms frames.
    #[must_use]
    pub const fn cycle_frames(self) -> usize {
        (self.on_samples() + self.off_samples()).div_ceil(FRAME_SAMPLES)
    }
}

/// A tone rendered once into 20 ms frames of linear PCM, plus the same
/// frames pre-encoded in each G.711 law.
#[derive(Debug, Clone)]
pub struct ToneSignal {
    tone: Tone,
    frames: Vec<PcmFrame>,
    pcma: Vec<G711Frame>,
    pcmu: Vec<G711Frame>,
}

impl ToneSignal {
    /// Render `tone` at [`LEVEL_DBM0`]. Pure and deterministic; call it once
    /// at start and share the result.
    #[must_use]
    pub fn new(tone: Tone) -> Self {
        let samples = render(tone);
        let frames: Vec<PcmFrame> = samples
            .chunks(FRAME_SAMPLES)
            .map(|chunk| {
                let mut frame = [0i16; FRAME_SAMPLES];
                for (dst, &src) in frame.iter_mut().zip(chunk) {
                    *dst = src;
                }
                frame
            })
            .collect();
        let pcma = frames.iter().map(|f| Codec::Pcma.encode_frame(f)).collect();
        let pcmu = frames.iter().map(|f| Codec::Pcmu.encode_frame(f)).collect();
        ToneSignal {
            tone,
            frames,
            pcma,
            pcmu,
        }
    }

    /// Which tone this is.
    #[must_use]
    pub fn tone(&self) -> Tone {
        self.tone
    }

    /// One cycle of the tone as 20 ms frames of linear PCM.
    #[must_use]
    pub fn frames(&self) -> &[PcmFrame] {
        &self.frames
    }

    /// The same frames encoded in `codec`, ready to be RTP payloads.
    #[must_use]
    pub fn encoded(&self, codec: Codec) -> &[G711Frame] {
        match codec {
            Codec::Pcma => &self.pcma,
            Codec::Pcmu => &self.pcmu,
        }
    }

    /// Whether playback wraps to the first frame after the last.
    #[must_use]
    pub fn looping(&self) -> bool {
        self.tone.looping()
    }
}

/// One cycle of `tone` as samples, padded with silence to whole frames.
fn render(tone: Tone) -> Vec<i16> {
    let on = tone.on_samples();
    let total = tone.cycle_frames() * FRAME_SAMPLES;
    let peak = dbm0_peak() * 10f64.powf(LEVEL_DBM0 / 20.0);
    let radians_per_sample =
        2.0 * std::f64::consts::PI * f64::from(tone.frequency_hz()) / f64::from(SAMPLE_RATE);
    let mut samples = vec![0i16; total];
    for (n, sample) in samples.iter_mut().take(on).enumerate() {
        let envelope = ramp(n).min(ramp(on - 1 - n));
        let value = peak * envelope * (radians_per_sample * n as f64).sin();
        // |value| <= peak < i16::MAX, and `as` saturates anyway.
        *sample = value.round() as i16;
    }
    samples
}

/// Raised-cosine ramp gain `k` samples from an edge: 0 at the edge, 1 from
/// [`RAMP_SAMPLES`] on.
fn ramp(k: usize) -> f64 {
    if k >= RAMP_SAMPLES {
        1.0
    } else {
        0.5 * (1.0 - (std::f64::consts::PI * k as f64 / RAMP_SAMPLES as f64).cos())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::g711;

    fn flat(signal: &ToneSignal) -> Vec<i16> {
        signal.frames().iter().flatten().copied().collect()
    }

    /// Frequency by interpolated zero crossings over `samples`.
    fn measured_frequency(samples: &[i16]) -> f64 {
        let mut crossings = Vec::new();
        for (i, pair) in samples.windows(2).enumerate() {
            let (a, b) = (f64::from(pair[0]), f64::from(pair[1]));
            if a < 0.0 && b >= 0.0 {
                crossings.push(i as f64 + (-a) / (b - a));
            }
        }
        let (first, last) = (crossings[0], crossings[crossings.len() - 1]);
        (crossings.len() - 1) as f64 / (last - first) * f64::from(SAMPLE_RATE)
    }

    fn rms(samples: &[i16]) -> f64 {
        let sum: f64 = samples.iter().map(|&s| f64::from(s).powi(2)).sum();
        (sum / samples.len() as f64).sqrt()
    }

    fn dbm0(rms: f64) -> f64 {
        20.0 * (rms / (dbm0_peak() / 2f64.sqrt())).log10()
    }

    /// The part of the on-segment past both ramps.
    fn steady(tone: Tone, samples: &[i16]) -> Vec<i16> {
        samples[RAMP_SAMPLES..tone.on_samples() - RAMP_SAMPLES].to_vec()
    }

    #[test]
    fn frequency_is_measured_within_half_a_hertz() {
        for tone in Tone::ALL {
            let samples = flat(&ToneSignal::new(tone));
            let f = measured_frequency(&steady(tone, &samples));
            let expected = f64::from(tone.frequency_hz());
            assert!(
                (f - expected).abs() < 0.5,
                "{tone:?}: {f} Hz, want {expected}"
            );
        }
    }

    #[test]
    fn cadence_is_exact_in_frames_and_samples() {
        let expect = [
            (Tone::Ringback, 250, 8_000, true),
            (Tone::Busy, 35, 2_800, true),
            (Tone::Beep, 10, 1_600, false),
        ];
        for (tone, frames, on, looping) in expect {
            let signal = ToneSignal::new(tone);
            assert_eq!(signal.frames().len(), frames, "{tone:?} frames");
            assert_eq!(signal.encoded(Codec::Pcma).len(), frames);
            assert_eq!(signal.encoded(Codec::Pcmu).len(), frames);
            assert_eq!(signal.looping(), looping, "{tone:?} looping");
            let samples = flat(&signal);
            assert_eq!(samples.len(), frames * FRAME_SAMPLES);
            // Off: exactly silent.
            assert!(
                samples[on..].iter().all(|&s| s == 0),
                "{tone:?} off part not silent"
            );
            // On: sounding from the first period to the last (every 5 ms
            // window after the ramp-in and before the ramp-out peaks high).
            let peak = dbm0_peak() * 10f64.powf(LEVEL_DBM0 / 20.0);
            for window in samples[RAMP_SAMPLES..on - RAMP_SAMPLES].chunks(40) {
                let max = window
                    .iter()
                    .map(|s| i32::from(*s).abs())
                    .max()
                    .unwrap_or(0);
                assert!(f64::from(max) > 0.9 * peak, "{tone:?} drops out during on");
            }
            assert!(
                samples[1..RAMP_SAMPLES].iter().any(|&s| s != 0),
                "{tone:?} starts late"
            );
            assert!(samples[on - RAMP_SAMPLES..on - 1].iter().any(|&s| s != 0));
        }
        assert_eq!(Tone::Ringback.cycle_frames(), 250);
        assert_eq!(Tone::Busy.cycle_frames(), 35);
    }

    #[test]
    fn level_is_minus_10_dbm0_within_half_a_db_linear_and_after_g711() {
        for tone in Tone::ALL {
            let signal = ToneSignal::new(tone);
            let samples = flat(&signal);
            // 160 samples hold whole periods of 450 Hz (9) and 1000 Hz (20).
            let start = FRAME_SAMPLES; // past the ramp
            let window = &samples[start..start + 4 * FRAME_SAMPLES];
            let level = dbm0(rms(window));
            assert!(
                (level - LEVEL_DBM0).abs() <= 0.5,
                "{tone:?}: {level:.3} dBm0"
            );

            for codec in Codec::ALL {
                let decoded: Vec<i16> = signal.encoded(codec)[1..5]
                    .iter()
                    .flatten()
                    .map(|&c| codec.decode_sample(c))
                    .collect();
                let level = dbm0(rms(&decoded));
                assert!(
                    (level - LEVEL_DBM0).abs() <= 0.5,
                    "{tone:?} via {codec:?}: {level:.3} dBm0"
                );
            }
        }
        assert!((dbm0_peak() - 22_827.0).abs() < 1.0, "{}", dbm0_peak());
    }

    /// No click anywhere in the cycle, including the loop seam (last
    /// sample → first sample) and the on/off edges: no sample-to-sample
    /// step exceeds the steepest step of the steady sine, A·2πf/fs.
    #[test]
    fn loop_seam_and_edges_are_continuous() {
        for tone in Tone::ALL {
            let samples = flat(&ToneSignal::new(tone));
            let peak = dbm0_peak() * 10f64.powf(LEVEL_DBM0 / 20.0);
            let bound = peak * 2.0 * std::f64::consts::PI * f64::from(tone.frequency_hz())
                / f64::from(SAMPLE_RATE)
                + 1.0;
            let n = samples.len();
            for i in 0..n {
                let step = (i32::from(samples[(i + 1) % n]) - i32::from(samples[i])).abs();
                assert!(
                    f64::from(step) <= bound,
                    "{tone:?}: step {step} at sample {i} exceeds {bound:.0}"
                );
            }
            let seam = (i32::from(samples[0]) - i32::from(samples[n - 1])).abs();
            assert_eq!(seam, 0, "{tone:?} seam");
            // The edges open and close gently: 1 ms in, still far below peak.
            assert!(samples[..8]
                .iter()
                .all(|s| f64::from(s.unsigned_abs()) < 0.2 * peak));
        }
    }

    #[test]
    fn encoded_frames_are_the_pcm_frames_encoded() {
        let signal = ToneSignal::new(Tone::Busy);
        for (pcm, (a, u)) in signal.frames().iter().zip(
            signal
                .encoded(Codec::Pcma)
                .iter()
                .zip(signal.encoded(Codec::Pcmu)),
        ) {
            for i in 0..FRAME_SAMPLES {
                assert_eq!(a[i], g711::alaw_encode(pcm[i]));
                assert_eq!(u[i], g711::ulaw_encode(pcm[i]));
            }
        }
    }

    #[test]
    fn rendering_is_deterministic() {
        assert_eq!(
            ToneSignal::new(Tone::Ringback).frames(),
            ToneSignal::new(Tone::Ringback).frames()
        );
    }
}
