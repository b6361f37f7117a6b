//! What the transaction layer reads from a message, read once, and the keys
//! it matches on (RFC 3261 §17.1.3, §17.2.3, RFC 6026 §8.7).
//!
//! The scanners here borrow from already-validated messages and allocate
//! nothing. They exist because going through the vendor parser for the top
//! Via and the From/To tags costs about 1 µs per header, several times the
//! whole budget of the layer per message; the tests below check that they
//! agree with [`crate::sip::msg::Via::parse`] and [`NameAddr`](crate::sip::msg::NameAddr).

use crate::sip::msg::{Hdr, Headers, Method, MAGIC_COOKIE};
use std::fmt::Write as _;

/// The topmost Via element, borrowed (RFC 3261 §20.42, RFC 3581).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TopVia<'a> {
    /// The element as written, trimmed (for RFC 2543 matching).
    pub text: &'a str,
    /// Transport token as written.
    pub transport: &'a str,
    /// sent-by host (IPv6 without brackets).
    pub host: &'a str,
    /// sent-by port.
    pub port: Option<u16>,
    /// branch parameter.
    pub branch: Option<&'a str>,
    /// received parameter.
    pub received: Option<&'a str>,
    /// `None`: no rport; `Some(None)`: rport without value.
    pub rport: Option<Option<u16>>,
}

impl<'a> TopVia<'a> {
    /// The topmost Via of a header list; `None` if absent or malformed.
    pub fn of(headers: &'a Headers) -> Option<TopVia<'a>> {
        let line = headers.get(Hdr::Via)?;
        parse_via(first_element(line).trim())
    }

    /// The branch if it carries the RFC 3261 magic cookie.
    pub fn rfc3261_branch(&self) -> Option<&'a str> {
        self.branch.filter(|b| b.starts_with(MAGIC_COOKIE))
    }
}

/// The first element of a comma-separated header value.
pub(crate) fn first_element(v: &str) -> &str {
    let (mut quoted, mut escape) = (false, false);
    for (i, b) in v.bytes().enumerate() {
        if escape {
            escape = false;
            continue;
        }
        match b {
            b'\\' if quoted => escape = true,
            b'"' => quoted = !quoted,
            b',' if !quoted => return &v[..i],
            _ => {}
        }
    }
    v
}

fn parse_via(text: &str) -> Option<TopVia<'_>> {
    // sent-protocol = protocol-name SLASH protocol-version SLASH transport
    let (name, rest) = text.split_once('/')?;
    let (version, rest) = rest.split_once('/')?;
    if !name.trim().eq_ignore_ascii_case("SIP") || version.trim() != "2.0" {
        return None;
    }
    let rest = rest.trim_start();
    let t_end = rest
        .find(|c: char| c.is_ascii_whitespace())
        .unwrap_or(rest.len());
    let transport = &rest[..t_end];
    if transport.is_empty() {
        return None;
    }
    let rest = rest[t_end..].trim_start();
    let (sent_by, params) = match rest.find(';') {
        Some(i) => (rest[..i].trim(), &rest[i + 1..]),
        None => (rest.trim(), ""),
    };
    let (host, port) = split_host_port(sent_by)?;
    let mut via = TopVia {
        text,
        transport,
        host,
        port,
        branch: None,
        received: None,
        rport: None,
    };
    if params.is_empty() {
        return Some(via);
    }
    for p in params.split(';') {
        let (k, v) = match p.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v.trim())),
            None => (p.trim(), None),
        };
        if k.eq_ignore_ascii_case("branch") {
            via.branch = v.filter(|b| !b.is_empty());
        } else if k.eq_ignore_ascii_case("received") {
            via.received = v.filter(|r| !r.is_empty());
        } else if k.eq_ignore_ascii_case("rport") {
            via.rport = Some(match v {
                None | Some("") => None,
                Some(p) => Some(p.parse().ok()?),
            });
        }
    }
    Some(via)
}

/// `host[:port]`, IPv6 references in brackets.
fn split_host_port(s: &str) -> Option<(&str, Option<u16>)> {
    if s.is_empty() {
        return None;
    }
    if let Some(inner) = s.strip_prefix('[') {
        let close = inner.find(']')?;
        let host = &inner[..close];
        let after = &inner[close + 1..];
        if after.is_empty() {
            return Some((host, None));
        }
        let port = after.strip_prefix(':')?.trim().parse().ok()?;
        return Some((host, Some(port)));
    }
    match s.split_once(':') {
        None => Some((s, None)),
        Some((h, p)) if !p.contains(':') => Some((h.trim(), Some(p.trim().parse().ok()?))),
        // A bare IPv6 literal (not valid in a Via, tolerated).
        Some(_) => Some((s, None)),
    }
}

/// The `tag` parameter of a From/To value (RFC 3261 §19.3), borrowed.
pub(crate) fn tag(value: &str) -> Option<&str> {
    // Header parameters follow the closing `>` of a name-addr, or the first
    // `;` of an addr-spec (which then cannot carry URI parameters, §20.10).
    let bytes = value.as_bytes();
    let (mut quoted, mut escape) = (false, false);
    let mut params_at = None;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if escape {
            escape = false;
        } else if quoted {
            match b {
                b'\\' => escape = true,
                b'"' => quoted = false,
                _ => {}
            }
        } else {
            match b {
                b'"' => quoted = true,
                b'<' => {
                    let close = value[i..].find('>')? + i;
                    params_at = Some(close + 1);
                    break;
                }
                b';' => {
                    params_at = Some(i);
                    break;
                }
                _ => {}
            }
        }
        i += 1;
    }
    let params = &value[params_at?..];
    params.split(';').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        (k.trim().eq_ignore_ascii_case("tag"))
            .then(|| v.trim())
            .filter(|v| !v.is_empty())
    })
}

/// The From or To tag of a header list.
pub(crate) fn header_tag(headers: &Headers, kind: Hdr) -> Option<&str> {
    tag(headers.get(kind)?)
}

/// The Call-ID, trimmed.
pub(crate) fn call_id(headers: &Headers) -> Option<&str> {
    headers.get(Hdr::CallId).map(str::trim)
}

/// Key of a server transaction (RFC 3261 §17.2.3), one string so that a
/// lookup hashes once. ACK is keyed as the INVITE it acknowledges; a CANCEL
/// looks up its INVITE by the same key with the method INVITE.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct ServerKey(String);

impl ServerKey {
    /// RFC 3261 matching: branch, sent-by and method.
    pub fn rfc3261(branch: &str, via: &TopVia<'_>, method: &Method) -> ServerKey {
        let mut s = String::with_capacity(branch.len() + via.host.len() + 24);
        s.push_str("3\n");
        s.push_str(branch);
        s.push('\n');
        s.push_str(via.host);
        if let Some(p) = via.port {
            let _ = write!(s, ":{p}");
        }
        s.push('\n');
        s.push_str(key_method(method));
        ServerKey(s)
    }

    /// RFC 2543 fallback: Request-URI, To tag, From tag, Call-ID, CSeq
    /// number, top Via and method (§17.2.3 second part).
    pub fn rfc2543(r: &LegacyParts<'_>, to_tag: Option<&str>, method: &Method) -> ServerKey {
        let mut s = String::with_capacity(
            r.uri.len() + r.call_id.len() + r.via.len() + r.from_tag.len() + 48,
        );
        s.push_str("2\n");
        s.push_str(r.uri);
        s.push('\n');
        s.push_str(to_tag.unwrap_or(""));
        s.push('\n');
        s.push_str(r.from_tag);
        s.push('\n');
        s.push_str(r.call_id);
        let _ = write!(s, "\n{}\n", r.cseq);
        s.push_str(r.via);
        s.push('\n');
        s.push_str(key_method(method));
        ServerKey(s)
    }
}

/// The RFC 2543 matching fields of a request except the To tag.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LegacyParts<'a> {
    pub uri: &'a str,
    pub from_tag: &'a str,
    pub call_id: &'a str,
    pub cseq: u32,
    pub via: &'a str,
}

/// ACK is matched against the INVITE transaction (§17.2.3).
fn key_method(m: &Method) -> &str {
    match m {
        Method::Ack => "INVITE",
        m => m.as_str(),
    }
}

/// Key of a client transaction: branch and CSeq method (RFC 3261 §17.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct ClientKey(String);

impl ClientKey {
    /// From the top Via branch and the CSeq method.
    pub fn new(branch: &str, method: &Method) -> ClientKey {
        let m = method.as_str();
        let mut s = String::with_capacity(branch.len() + m.len() + 1);
        s.push_str(branch);
        s.push('\n');
        s.push_str(m);
        ClientKey(s)
    }
}

/// Matches an ACK for a 2xx to the Accepted server INVITE transaction that
/// sent it: Call-ID, CSeq number, From tag, To tag (RFC 6026 §8.7 leaves
/// this to the dialog; we key on the dialog id plus CSeq).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct AckKey(String);

impl AckKey {
    /// From the parts.
    pub fn new(call_id: &str, cseq: u32, from_tag: &str, to_tag: &str) -> AckKey {
        let mut s = String::with_capacity(call_id.len() + from_tag.len() + to_tag.len() + 14);
        s.push_str(call_id);
        let _ = write!(s, "\n{cseq}\n");
        s.push_str(from_tag);
        s.push('\n');
        s.push_str(to_tag);
        AckKey(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::msg::{NameAddr, Via};

    const VIAS: &[&str] = &[
        "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK776asdhds;rport",
        "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1;received=192.0.2.1;rport=4000",
        "SIP / 2.0 / TCP host.example.com ; branch = z9hG4bKabc ; rport = 7",
        "SIP/2.0/TCP [2001:db8::1]:5070;branch=z9hG4bKv6",
        "SIP/2.0/UDP [2001:db8::1];branch=1234",
        "SIP/2.0/udp h.example:1;maddr=224.0.0.1;ttl=1;branch=z9hG4bKx",
        "SIP/2.0/UDP h.example",
    ];

    #[test]
    fn via_scanner_agrees_with_the_message_model() {
        for v in VIAS {
            let ours = parse_via(v).unwrap_or_else(|| panic!("{v}"));
            let theirs = Via::parse(v).unwrap_or_else(|e| panic!("{v}: {e}"));
            assert_eq!(ours.host, theirs.host, "{v}");
            assert_eq!(ours.port, theirs.port, "{v}");
            assert_eq!(ours.branch, theirs.branch.as_deref(), "{v}");
            assert_eq!(ours.received, theirs.received.as_deref(), "{v}");
            assert_eq!(ours.rport, theirs.rport, "{v}");
            assert!(ours.transport.eq_ignore_ascii_case(&theirs.transport), "{v}");
        }
    }

    #[test]
    fn via_scanner_refuses_garbage() {
        for v in ["", "SIP/2.0", "SIP/3.0/UDP h", "SIP/2.0/UDP", "SIP/2.0/UDP h:x", "SIP/2.0/UDP h;rport=x"] {
            assert_eq!(parse_via(v), None, "{v}");
        }
    }

    #[test]
    fn first_element_skips_quoted_commas() {
        assert_eq!(first_element("a;x=\"1,2\", b"), "a;x=\"1,2\"");
        assert_eq!(first_element("a"), "a");
    }

    #[test]
    fn tag_scanner_agrees_with_the_message_model() {
        for v in [
            "\"Citizen\" <sip:1@carrier.example>;tag=1928301774",
            "<sip:1@x;tag=inuri>;tag=outside",
            "<sip:1@x;tag=inuri>",
            "sip:1@x;tag=abc",
            "sip:1@x",
            "\"a;tag=no <\" <sip:1@x> ; tag = spaced",
            "Bob <sip:bob@x>;foo=bar;TAG=upper",
        ] {
            let theirs = NameAddr::parse(v).ok().and_then(|n| n.tag);
            assert_eq!(tag(v), theirs.as_deref(), "{v}");
        }
    }
}
