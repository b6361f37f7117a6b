//! SIP: messages, validation, transport values, transactions (RFC 3261 §17)
//! and dialogs.

pub mod dialog;
pub mod msg;
pub mod transaction;
pub mod transport;
pub mod validate;
