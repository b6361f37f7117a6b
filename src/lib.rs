//! Hotline Gateway (work in progress; the manual grows with the code).
#![forbid(unsafe_code)]

pub mod ids;
pub mod pii;
pub mod rng;
pub mod sip;
pub mod time;
