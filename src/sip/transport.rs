//! Transport values: what the driver hands the core and what the core asks
//! the driver to send. No sockets here (RFC 3261 §18 decisions only).

use crate::ids::ConnId;
use bytes::Bytes;
use std::net::{IpAddr, SocketAddr};

/// An IP as a SIP host (RFC 3261 §25.1): IPv6 references in brackets.
pub fn host_literal(ip: IpAddr) -> String {
    match ip {
        IpAddr::V6(v6) => format!("[{v6}]"),
        v4 => v4.to_string(),
    }
}

/// A SIP transport. TLS (and WS for browsers) slot in here later: the core
/// only needs to know whether a transport is reliable and stream-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// UDP: unreliable, datagram; the transaction layer retransmits.
    Udp,
    /// TCP: reliable, stream; Content-Length framing (RFC 3261 §18.3).
    Tcp,
}

impl Transport {
    /// Reliable transports do not retransmit (RFC 3261 §17.1.1.2 Timer A).
    pub fn is_reliable(self) -> bool {
        matches!(self, Transport::Tcp)
    }

    /// The Via transport token.
    pub fn via_token(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        }
    }

    /// Parse a Via transport token.
    pub fn from_via_token(s: &str) -> Option<Transport> {
        if s.eq_ignore_ascii_case("UDP") {
            Some(Transport::Udp)
        } else if s.eq_ignore_ascii_case("TCP") {
            Some(Transport::Tcp)
        } else {
            None
        }
    }
}

/// One received message (a UDP datagram, or one framed message from a TCP
/// connection).
#[derive(Debug, Clone)]
pub struct Packet {
    /// How it arrived.
    pub transport: Transport,
    /// The peer address (the packet's source).
    pub source: SocketAddr,
    /// The stream connection it came on (TCP).
    pub conn: Option<ConnId>,
    /// The bytes.
    pub data: Bytes,
}

/// Something to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Transport to use.
    pub transport: Transport,
    /// Where to send.
    pub destination: SocketAddr,
    /// For streams: send on this connection if it is still open; else the
    /// driver opens (or reuses) a connection to `destination`.
    pub conn: Option<ConnId>,
    /// The bytes.
    pub data: Bytes,
}
