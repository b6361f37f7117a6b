//! N-party conference mixing in linear PCM (caller + agent + 110, or more).
//!
//! Each tick (20 ms) every party may [`put`](Mixer::put) one frame; then
//! [`mix`](Mixer::mix) computes, for every party, the sum of **all other
//! parties' frames, not its own**: the total is summed once in `i32` and each
//! party's own contribution subtracted, so a tick costs O(N · 160), not
//! O(N² · 160). The result saturates to `i16` (a hard clip: with telephone
//! levels the sum of three talkers rarely reaches full scale, and a clip is
//! exact and testable where a soft limiter would colour every sum).
//!
//! - A party with no frame this tick contributes silence.
//! - A muted party contributes nothing but still hears the others.
//! - Parties may [`join`](Mixer::join) and [`leave`](Mixer::leave) at any
//!   tick; the others continue.
//!
//! Storage is one slot per party, allocated on `join`; `put` and `mix`
//! allocate nothing. Parties are found by a linear search over the slots,
//! which beats hashing for conference sizes (N ≤ a few dozen).

use super::FRAME_SAMPLES;

/// One 20 ms frame of 8 kHz linear PCM.
pub type Frame = [i16; FRAME_SAMPLES];

/// A mixer call made with an id the mixer does not know, or knows already:
/// a caller bug, never a network fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MixerError {
    /// `join` of a party already in the conference.
    #[error("party already in the conference")]
    AlreadyJoined,
    /// An operation on a party not in the conference.
    #[error("no such party in the conference")]
    UnknownParty,
}

#[derive(Debug, Clone)]
struct Slot<Id> {
    id: Id,
    muted: bool,
    /// Whether `input` holds a frame for this tick.
    fresh: bool,
    input: Frame,
    output: Frame,
}

/// An N-party conference bridge; `Id` is any small `Copy` identifier
/// (a `LegId`, a `u8`…).
#[derive(Debug, Clone)]
pub struct Mixer<Id> {
    slots: Vec<Slot<Id>>,
}

impl<Id: Copy + Eq> Default for Mixer<Id> {
    fn default() -> Self {
        Self::new()
    }
}

impl<Id: Copy + Eq> Mixer<Id> {
    /// An empty conference.
    pub fn new() -> Mixer<Id> {
        Mixer { slots: Vec::new() }
    }

    /// Add a party (unmuted, hearing silence until others speak).
    pub fn join(&mut self, id: Id) -> Result<(), MixerError> {
        if self.slot(id).is_some() {
            return Err(MixerError::AlreadyJoined);
        }
        self.slots.push(Slot {
            id,
            muted: false,
            fresh: false,
            input: [0; FRAME_SAMPLES],
            output: [0; FRAME_SAMPLES],
        });
        Ok(())
    }

    /// Remove a party; the others continue.
    pub fn leave(&mut self, id: Id) -> Result<(), MixerError> {
        let i = self.index(id).ok_or(MixerError::UnknownParty)?;
        self.slots.swap_remove(i);
        Ok(())
    }

    /// Mute (contributes nothing, still hears) or unmute a party.
    pub fn set_muted(&mut self, id: Id, muted: bool) -> Result<(), MixerError> {
        let s = self.slot_mut(id).ok_or(MixerError::UnknownParty)?;
        s.muted = muted;
        Ok(())
    }

    /// Whether `id` is in the conference and muted.
    pub fn is_muted(&self, id: Id) -> Option<bool> {
        self.slot(id).map(|s| s.muted)
    }

    /// Number of parties.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether nobody is in the conference.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Whether `id` is in the conference.
    pub fn contains(&self, id: Id) -> bool {
        self.slot(id).is_some()
    }

    /// Give `id`'s frame for this tick (a second `put` in one tick replaces
    /// the first).
    pub fn put(&mut self, id: Id, frame: &Frame) -> Result<(), MixerError> {
        let s = self.slot_mut(id).ok_or(MixerError::UnknownParty)?;
        s.input = *frame;
        s.fresh = true;
        Ok(())
    }

    /// Mix this tick: every party's output becomes the saturated sum of the
    /// others' frames. Returns each party (in no set order) with what it hears; the frames
    /// stay readable through [`output`](Self::output) until the next `mix`.
    /// Inputs are consumed: a party that does not `put` before the next
    /// `mix` contributes silence then.
    pub fn mix(&mut self) -> impl Iterator<Item = (Id, &Frame)> + '_ {
        let mut total = [0i32; FRAME_SAMPLES];
        for s in self.slots.iter().filter(|s| s.fresh && !s.muted) {
            for (t, &x) in total.iter_mut().zip(s.input.iter()) {
                *t += i32::from(x);
            }
        }
        for s in self.slots.iter_mut() {
            if s.fresh && !s.muted {
                for ((o, &t), &x) in s.output.iter_mut().zip(total.iter()).zip(s.input.iter()) {
                    *o = saturate(t - i32::from(x));
                }
            } else {
                for (o, &t) in s.output.iter_mut().zip(total.iter()) {
                    *o = saturate(t);
                }
            }
            s.fresh = false;
        }
        self.slots.iter().map(|s| (s.id, &s.output))
    }

    /// What `id` heard at the last [`mix`](Self::mix).
    pub fn output(&self, id: Id) -> Option<&Frame> {
        self.slot(id).map(|s| &s.output)
    }

    fn index(&self, id: Id) -> Option<usize> {
        self.slots.iter().position(|s| s.id == id)
    }

    fn slot(&self, id: Id) -> Option<&Slot<Id>> {
        self.slots.iter().find(|s| s.id == id)
    }

    fn slot_mut(&mut self, id: Id) -> Option<&mut Slot<Id>> {
        self.slots.iter_mut().find(|s| s.id == id)
    }
}

fn saturate(x: i32) -> i16 {
    x.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16
}

#[cfg(test)]
mod tests {
    //! Each party hears exactly the others (exact sums at low levels, and by
    //! Goertzel on distinct tones), never itself; mute, leave, join mid-call,
    //! saturation, eight parties.

    use super::*;

    fn tone(hz: f64, amp: f64, tick: usize) -> Frame {
        let mut f = [0i16; FRAME_SAMPLES];
        for (n, s) in f.iter_mut().enumerate() {
            let t = (tick * FRAME_SAMPLES + n) as f64 / 8000.0;
            *s = (amp * (2.0 * std::f64::consts::PI * hz * t).sin()).round() as i16;
        }
        f
    }

    /// Amplitude of the `hz` component of a frame (Goertzel, 160 samples).
    fn level(f: &Frame, hz: f64) -> f64 {
        let w = 2.0 * std::f64::consts::PI * hz / 8000.0;
        let (mut s1, mut s2) = (0.0, 0.0);
        for &x in f {
            let s0 = f64::from(x) + 2.0 * w.cos() * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        (s1 * s1 + s2 * s2 - 2.0 * w.cos() * s1 * s2).sqrt() * 2.0 / FRAME_SAMPLES as f64
    }

    fn mixed(m: &mut Mixer<u8>) -> Vec<(u8, Frame)> {
        let mut v: Vec<(u8, Frame)> = m.mix().map(|(id, f)| (id, *f)).collect();
        v.sort_by_key(|p| p.0);
        v
    }

    // 400, 1000, 2000 Hz are whole cycles in 20 ms: Goertzel separates them
    // exactly.
    const HZ: [f64; 3] = [400.0, 1000.0, 2000.0];

    #[test]
    fn three_parties_each_hear_exactly_the_other_two() {
        let mut m = Mixer::new();
        for id in 0..3u8 {
            m.join(id).expect("join");
        }
        for tick in 0..5 {
            let frames: Vec<Frame> = HZ.iter().map(|&hz| tone(hz, 3000.0, tick)).collect();
            for (id, f) in frames.iter().enumerate() {
                m.put(id as u8, f).expect("put");
            }
            for (id, out) in mixed(&mut m) {
                for (j, &hz) in HZ.iter().enumerate() {
                    let a = level(&out, hz);
                    if j == usize::from(id) {
                        assert!(a < 1.0, "party {id} hears itself: {a}");
                    } else {
                        assert!((a - 3000.0).abs() < 2.0, "party {id} hears {hz} Hz at {a}");
                    }
                }
                for n in 0..FRAME_SAMPLES {
                    let want: i32 = (0..3)
                        .filter(|&j| j != usize::from(id))
                        .map(|j| i32::from(frames[j][n]))
                        .sum();
                    assert_eq!(i32::from(out[n]), want);
                }
            }
        }
    }

    #[test]
    fn a_party_without_a_frame_contributes_silence() {
        let mut m = Mixer::new();
        for id in 0..3u8 {
            m.join(id).expect("join");
        }
        m.put(0, &[100; FRAME_SAMPLES]).expect("put");
        m.put(1, &[10; FRAME_SAMPLES]).expect("put");
        let out = mixed(&mut m);
        assert_eq!(out[0].1, [10; FRAME_SAMPLES]);
        assert_eq!(out[1].1, [100; FRAME_SAMPLES]);
        assert_eq!(out[2].1, [110; FRAME_SAMPLES]);
        // Next tick nobody put anything: all silent (inputs are consumed).
        for (_, f) in mixed(&mut m) {
            assert_eq!(f, [0; FRAME_SAMPLES]);
        }
    }

    #[test]
    fn muted_party_is_not_heard_but_hears() {
        let mut m = Mixer::new();
        for id in 0..3u8 {
            m.join(id).expect("join");
        }
        m.set_muted(2, true).expect("mute");
        assert_eq!(m.is_muted(2), Some(true));
        m.put(0, &[1; FRAME_SAMPLES]).expect("put");
        m.put(1, &[20; FRAME_SAMPLES]).expect("put");
        m.put(2, &[300; FRAME_SAMPLES]).expect("put");
        let out = mixed(&mut m);
        assert_eq!(out[0].1, [20; FRAME_SAMPLES]);
        assert_eq!(out[1].1, [1; FRAME_SAMPLES]);
        assert_eq!(out[2].1, [21; FRAME_SAMPLES]);
        m.set_muted(2, false).expect("unmute");
        m.put(0, &[1; FRAME_SAMPLES]).expect("put");
        m.put(2, &[300; FRAME_SAMPLES]).expect("put");
        let out = mixed(&mut m);
        assert_eq!(out[0].1, [300; FRAME_SAMPLES]);
        assert_eq!(out[1].1, [301; FRAME_SAMPLES]);
        assert_eq!(out[2].1, [1; FRAME_SAMPLES]);
    }

    #[test]
    fn leave_and_join_mid_call() {
        let mut m = Mixer::new();
        for id in 0..3u8 {
            m.join(id).expect("join");
        }
        m.leave(1).expect("leave");
        assert_eq!(m.leave(1), Err(MixerError::UnknownParty));
        assert_eq!(m.put(1, &[0; FRAME_SAMPLES]), Err(MixerError::UnknownParty));
        m.put(0, &[5; FRAME_SAMPLES]).expect("put");
        m.put(2, &[7; FRAME_SAMPLES]).expect("put");
        let out = mixed(&mut m);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0], (0, [7; FRAME_SAMPLES]));
        assert_eq!(out[1], (2, [5; FRAME_SAMPLES]));
        // 110 joins.
        m.join(9).expect("join");
        assert_eq!(m.join(9), Err(MixerError::AlreadyJoined));
        m.put(0, &[5; FRAME_SAMPLES]).expect("put");
        m.put(2, &[7; FRAME_SAMPLES]).expect("put");
        m.put(9, &[11; FRAME_SAMPLES]).expect("put");
        let out = mixed(&mut m);
        assert_eq!(out[0], (0, [18; FRAME_SAMPLES]));
        assert_eq!(out[1], (2, [16; FRAME_SAMPLES]));
        assert_eq!(out[2], (9, [12; FRAME_SAMPLES]));
        assert_eq!(m.output(9), Some(&[12; FRAME_SAMPLES]));
    }

    #[test]
    fn loud_sums_saturate() {
        let mut m = Mixer::new();
        for id in 0..4u8 {
            m.join(id).expect("join");
        }
        let mut loud = [30_000i16; FRAME_SAMPLES];
        loud[1] = -30_000;
        for id in 0..3u8 {
            m.put(id, &loud).expect("put");
        }
        let out = mixed(&mut m);
        // Party 0 hears two loud parties: 60 000 clips; party 3 hears three.
        assert_eq!(out[0].1[0], i16::MAX);
        assert_eq!(out[0].1[1], i16::MIN);
        assert_eq!(out[3].1[0], i16::MAX);
        assert_eq!(out[3].1[1], i16::MIN);
        // Subtracting one's own frame happens before the clip: exact.
        m.put(0, &[i16::MAX; FRAME_SAMPLES]).expect("put");
        m.put(1, &[-1; FRAME_SAMPLES]).expect("put");
        let out = mixed(&mut m);
        assert_eq!(out[1].1[0], i16::MAX);
        assert_eq!(out[2].1[0], i16::MAX - 1);
    }

    #[test]
    fn eight_parties() {
        let mut m = Mixer::new();
        for id in 0..8u8 {
            m.join(id).expect("join");
        }
        for id in 0..8u8 {
            m.put(id, &[1 << id; FRAME_SAMPLES]).expect("put");
        }
        for (id, f) in mixed(&mut m) {
            assert_eq!(f, [0xFF ^ (1 << id); FRAME_SAMPLES], "party {id}");
        }
    }
}
