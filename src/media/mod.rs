//! The media plane: sans-IO audio for the anchored RTP legs.
//!
//! Everything here is pure computation on values: no clock reads (time
//! comes in as `now: crate::time::Instant`), no file or socket IO (the
//! driver reads prompt files and hands over the bytes; packets come in as
//! byte slices, rewritten in place where they are relayed). Bad packets are
//! typed errors the relay counts and drops, never panics.
//! Audio inside the gateway is **8 kHz mono linear PCM, `i16`**, moved in
//! **20 ms frames of 160 samples** (RTP ptime 20, the pacing of one shard
//! tick); on the wire it is G.711 ([`g711`]), one byte per sample, so a
//! frame is a 160-byte PCMA or PCMU payload.
//!
//! - [`g711`]: A-law/µ-law encode, decode and direct A↔µ transcoding.
//! - [`tone`]: call-progress tones (ringback, busy, beep) as pre-generated
//!   loops of frames.
//! - [`wav`]: WAV parsing and [`wav::Prompt`], an announcement pre-encoded
//!   once at load into frames for each [`Codec`].
//! - [`rtp`]: RTP/RTCP header views with in-place rewrite, and
//!   [`rtp::OutStream`], one continuous outgoing stream per leg across
//!   source switches (relayed audio, prompts, tones, DTMF).
//! - [`rfc4733`]: telephone-events (DTMF over RTP) in and out.
//! - [`inband`]: in-band DTMF detection (Goertzel, Q.24 checks) for carriers
//!   that send tones instead of RFC 4733 events.
//! - [`mixer`]: N-party conference mixing; each party hears all others.
//! - [`stats`]: per-leg RTP statistics (RFC 3550 A.1 / A.8) and an E-model
//!   (ITU-T G.107) MOS estimate.

pub mod g711;
pub mod inband;
pub mod mixer;
pub mod pool;
pub mod rfc4733;
pub mod rtp;
pub mod shard;
pub mod stats;
pub mod tone;
pub mod wav;

/// Samples per second of all audio in the media plane.
pub const SAMPLE_RATE: u32 = 8000;

/// Samples (and G.711 payload bytes) in one 20 ms frame.
pub const FRAME_SAMPLES: usize = 160;

/// One 20 ms frame of linear PCM.
pub type PcmFrame = [i16; FRAME_SAMPLES];

/// One 20 ms frame of G.711 codes: a PCMA or PCMU RTP payload at ptime 20.
pub type G711Frame = [u8; FRAME_SAMPLES];

/// The G.711 law a leg's RTP carries, shared by the whole media plane
/// (SDP negotiation, relay transcoding, prompt and tone playback).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 A-law, RTP/AVP static payload type 8 (RFC 3551 §6). The law
    /// of China's PSTN and of most carriers here.
    Pcma,
    /// G.711 µ-law, RTP/AVP static payload type 0 (RFC 3551 §6).
    Pcmu,
}

impl Codec {
    /// Both codecs, PCMA first (the preferred one here).
    pub const ALL: [Codec; 2] = [Codec::Pcma, Codec::Pcmu];

    /// The static RTP payload type (RFC 3551 §6).
    #[must_use]
    pub const fn payload_type(self) -> u8 {
        match self {
            Codec::Pcma => 8,
            Codec::Pcmu => 0,
        }
    }

    /// The SDP `a=rtpmap` encoding name (RFC 3551 §4.5.14).
    #[must_use]
    pub const fn encoding_name(self) -> &'static str {
        match self {
            Codec::Pcma => "PCMA",
            Codec::Pcmu => "PCMU",
        }
    }

    /// The code an idle channel carries in this law.
    #[must_use]
    pub const fn silence(self) -> u8 {
        match self {
            Codec::Pcma => g711::ALAW_SILENCE,
            Codec::Pcmu => g711::ULAW_SILENCE,
        }
    }

    /// Encode one linear sample in this law.
    #[must_use]
    pub fn encode_sample(self, sample: i16) -> u8 {
        match self {
            Codec::Pcma => g711::alaw_encode(sample),
            Codec::Pcmu => g711::ulaw_encode(sample),
        }
    }

    /// Decode one code of this law to a linear sample.
    #[must_use]
    pub fn decode_sample(self, code: u8) -> i16 {
        match self {
            Codec::Pcma => g711::alaw_decode(code),
            Codec::Pcmu => g711::ulaw_decode(code),
        }
    }

    /// Encode a frame of linear PCM in this law.
    #[must_use]
    pub fn encode_frame(self, pcm: &PcmFrame) -> G711Frame {
        let mut out = [0u8; FRAME_SAMPLES];
        for (code, &sample) in out.iter_mut().zip(pcm) {
            *code = self.encode_sample(sample);
        }
        out
    }
}
