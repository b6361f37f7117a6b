//! SIP: messages, validation, transport values, transactions (RFC 3261 §17)
//! and dialogs.

pub mod msg;
pub mod transport;
