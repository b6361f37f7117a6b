//! The registrar agents' phones REGISTER with (RFC 3261 §10); being
//! written (issue 5).
