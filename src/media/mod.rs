//! The media plane: sans-IO signal processing for anchored calls.
//!
//! Everything here is a plain struct fed with samples or packet fields and,
//! where time matters, a `now: crate::time::Instant` argument; nothing reads a
//! clock or touches a socket. Audio is 8 kHz linear PCM (`i16`), moved in
//! 20 ms frames of 160 samples ([`FRAME_SAMPLES`]); G.711 is decoded to linear
//! before it reaches these modules and encoded again after them.
//!
//! - [`inband`]: in-band DTMF detection (Goertzel, Q.24 checks) for carriers
//!   that send tones instead of RFC 4733 events.
//! - [`mixer`]: N-party conference mixing; each party hears all others.
//! - [`stats`]: per-leg RTP statistics (RFC 3550 A.1 / A.8) and an E-model
//!   (ITU-T G.107) MOS estimate.

/// Samples per second of every stream in the media plane (G.711 narrowband).
pub const SAMPLE_RATE: u32 = 8000;

/// Samples in one 20 ms frame at [`SAMPLE_RATE`].
pub const FRAME_SAMPLES: usize = 160;

pub mod inband;
pub mod mixer;
pub mod stats;
