//! SIP: messages, validation, transport values, transactions (RFC 3261 §17),
//! dialogs and SDP offer/answer (`sdp`).

pub mod dialog;
pub mod digest;
pub mod msg;
pub mod registrar;
pub mod sdp;
pub mod transaction;
pub mod transport;
pub mod validate;
