//! The media plane: sans-IO RTP handling for the gateway's anchored legs.
//!
//! Like the signalling cores, nothing here touches a socket or reads a
//! clock: packets come in as byte slices (rewritten in place where they are
//! relayed), and time comes in as `now: crate::time::Instant`. Media is
//! narrowband telephony: an 8 kHz RTP clock (G.711 and telephone-event) and
//! 20 ms frames (160 samples) unless the SDP says otherwise. Bad packets are
//! typed errors the relay counts and drops, never panics.

pub mod rfc4733;
pub mod rtp;
