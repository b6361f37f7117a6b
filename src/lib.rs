//! # Hotline Gateway
//!
//! A telephony/CTI gateway for China's 12345 government-service hotline.
//! This crate documentation is the manual for people who work on it.
//!
//! ## Shape: sans-IO cores, one thin driver
//!
//! Everything that decides is a **sans-IO core**: a plain struct that takes
//! inputs with `now` as an argument and hands back outputs. Everything that
//! touches sockets, disks, HTTP or the clock is the **driver**
//! ([`driver`], tokio). This is how quinn-proto, str0m and rustls are built,
//! and it is what lets a whole call — retransmissions, timeouts, loss drawn
//! from a seed — run in a test in microseconds of real time
//! (`tests/common/mod.rs`, the `Sim`).
//!
//! ```text
//!  driver/     tokio: UDP/TCP sockets, timers, HTTP API, metrics, signals, systemd
//!    │  Input ↓                                   ↑ Output
//!  gateway     Gateway::handle_input / handle_timeout / poll_output
//!    ├─ call/  the B2BUA: two legs per call, nothing shared on the wire
//!    └─ sip/   msg (parser boundary), validate, transaction (RFC 3261 §17,
//!              RFC 6026), dialog (§12), transport values (§18)
//!  delivery  which stored call record to post next, and when to retry
//!            (per-call order, backoff with jitter, dead-letter); driven by
//!            driver::webhook with the SQLite driver::outbox
//!  ivr       IVR flows: graphs checked at load, a sans-IO Runner per call
//!            (not yet wired into calls)
//!  time, ids, rng, pii, config      leaves everyone may use
//! ```
//!
//! Dependencies point down only. Layers exchange values and ids
//! ([`ids::CallId`], [`ids::TsxId`]), never shared references.
//!
//! ## The loop contract
//!
//! After any [`gateway::Gateway::handle_input`] or
//! [`gateway::Gateway::handle_timeout`], drain
//! [`gateway::Gateway::poll_output`] until it returns
//! [`gateway::Output::Timeout`]; then wait for that instant or the next
//! input. Every deadline carries a [`gateway::Reason`] ("why did we wake?"
//! always has an answer). The `Sim` checks the contract on every step.
//!
//! ## Time
//!
//! No core reads a clock: clippy's `disallowed-methods` (clippy.toml) allows
//! `Instant::now` only in [`time`]. The driver reads tokio's clock, so a
//! `start_paused` tokio test drives the whole stack in virtual time too.
//!
//! ## Errors and bad input
//!
//! Bad network input becomes a 4xx or a counted drop, never a panic
//! ([`sip::validate`]); a panic is a bug in us. Config errors name the file,
//! line, key and the fix ([`config::ConfigError`]).
//!
//! ## Personal data
//!
//! Caller numbers are [`pii::Pii`]: redacted in `Debug`/`Display`, clear only
//! through `.reveal()`.
//!
//! ## Where the media plane hooks in
//!
//! This version relays SDP unchanged. Every point where the media plane will
//! anchor RTP is marked `MEDIA HOOK` in [`call::b2bua`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod acd;
pub mod call;
pub mod config;
pub mod delivery;
pub mod driver;
pub mod gateway;
pub mod ids;
pub mod ivr;
pub mod media;
pub mod pii;
pub mod rng;
pub mod sip;
pub mod time;
