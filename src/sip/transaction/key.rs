//! What the transaction layer reads from a message, read once, and the keys
//! it matches on (RFC 3261 §17.1.3, §17.2.3, RFC 6026).
//!
//! The scanners here borrow from already-validated messages and allocate
//! nothing. They exist because going through the vendor parser for the top
//! Via and the From/To tags costs about 1 µs per header, several times the
//! whole budget of the layer per message; the tests below check that they
//! agree with [`crate::sip::msg::Via::parse`] and [`NameAddr`](crate::sip::msg::NameAddr).

use crate::sip::msg::{Hdr, Headers, Method, MAGIC_COOKIE};

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
        parse_via(first_element(line).trim_ascii())
    }

    /// The branch if it carries the RFC 3261 magic cookie.
    pub fn rfc3261_branch(&self) -> Option<&'a str> {
        self.branch.filter(|b| b.starts_with(MAGIC_COOKIE))
    }
}

/// The first element of a comma-separated header value.
pub(crate) fn first_element(v: &str) -> &str {
    // Two memchr scans (word at a time) beat one byte loop on ~100 bytes.
    let comma = v.find(',').unwrap_or(v.len());
    match v[..comma].find('"') {
        None => &v[..comma],
        // A quoted string before the first comma: skip commas inside quotes.
        Some(_) => {
            let b = v.as_bytes();
            let (mut quoted, mut escape) = (false, false);
            for (i, &c) in b.iter().enumerate() {
                if escape {
                    escape = false;
                    continue;
                }
                match c {
                    b'\\' if quoted => escape = true,
                    b'"' => quoted = !quoted,
                    b',' if !quoted => return &v[..i],
                    _ => {}
                }
            }
            v
        }
    }
}

/// Position of the first `c` in `s` at or after `from`, else `s.len()`.
/// Splitting at an ASCII byte always lands on a char boundary.
fn find_byte(s: &str, from: usize, c: u8) -> usize {
    s.as_bytes()[from..]
        .iter()
        .position(|&x| x == c)
        .map_or(s.len(), |i| from + i)
}

/// Calls `f(name, value)` for each `;`-separated `name[=value]`, trimmed.
/// `f` returns `Some` to stop early.
fn each_param<'a, T>(
    params: &'a str,
    mut f: impl FnMut(&'a str, Option<&'a str>) -> Option<T>,
) -> Option<T> {
    let mut start = 0;
    while start <= params.len() {
        let end = find_byte(params, start, b';');
        let p = &params[start..end];
        let eq = find_byte(p, 0, b'=');
        let (k, v) = if eq == p.len() {
            (p.trim_ascii(), None)
        } else {
            (p[..eq].trim_ascii(), Some(p[eq + 1..].trim_ascii()))
        };
        if let Some(t) = f(k, v) {
            return Some(t);
        }
        start = end + 1;
    }
    None
}

fn parse_via(text: &str) -> Option<TopVia<'_>> {
    // sent-protocol = protocol-name SLASH protocol-version SLASH transport
    let b = text.as_bytes();
    let rest = if b.len() > 8 && b[..4].eq_ignore_ascii_case(b"SIP/") && &b[4..8] == b"2.0/" {
        &text[8..]
    } else {
        // LWS around the slashes (RFC 3261 §25.1 SLASH).
        let (name, rest) = text.split_once('/')?;
        let (version, rest) = rest.split_once('/')?;
        if !name.trim_ascii().eq_ignore_ascii_case("SIP") || version.trim_ascii() != "2.0" {
            return None;
        }
        rest
    };
    let rest = rest.trim_ascii_start();
    let t_end = rest
        .as_bytes()
        .iter()
        .position(|c| c.is_ascii_whitespace())
        .unwrap_or(rest.len());
    let transport = &rest[..t_end];
    if transport.is_empty() {
        return None;
    }
    let rest = rest[t_end..].trim_ascii_start();
    let semi = find_byte(rest, 0, b';');
    let (host, port) = split_host_port(rest[..semi].trim_ascii())?;
    let mut via = TopVia {
        text,
        transport,
        host,
        port,
        branch: None,
        received: None,
        rport: None,
    };
    if semi == rest.len() {
        return Some(via);
    }
    let mut bad = false;
    each_param::<()>(&rest[semi + 1..], |k, v| {
        if k.eq_ignore_ascii_case("branch") {
            via.branch = v.filter(|b| !b.is_empty());
        } else if k.eq_ignore_ascii_case("received") {
            via.received = v.filter(|r| !r.is_empty());
        } else if k.eq_ignore_ascii_case("rport") {
            via.rport = match v {
                None | Some("") => Some(None),
                Some(p) => match p.parse() {
                    Ok(p) => Some(Some(p)),
                    Err(_) => {
                        bad = true;
                        return Some(());
                    }
                },
            };
        }
        None
    });
    (!bad).then_some(via)
}

/// `host[:port]`, IPv6 references in brackets.
fn split_host_port(s: &str) -> Option<(&str, Option<u16>)> {
    if s.is_empty() {
        return None;
    }
    if let Some(inner) = s.strip_prefix('[') {
        let close = find_byte(inner, 0, b']');
        if close == inner.len() {
            return None;
        }
        let host = &inner[..close];
        let after = &inner[close + 1..];
        if after.is_empty() {
            return Some((host, None));
        }
        let port = after.strip_prefix(':')?.trim_ascii().parse().ok()?;
        return Some((host, Some(port)));
    }
    let colon = find_byte(s, 0, b':');
    if colon == s.len() {
        return Some((s, None));
    }
    let p = &s[colon + 1..];
    if find_byte(p, 0, b':') != p.len() {
        // A bare IPv6 literal (not valid in a Via, tolerated).
        return Some((s, None));
    }
    Some((s[..colon].trim_ascii(), Some(p.trim_ascii().parse().ok()?)))
}

/// The `tag` parameter of a From/To value (RFC 3261 §19.3), borrowed.
pub(crate) fn tag(value: &str) -> Option<&str> {
    // Header parameters follow the closing `>` of a name-addr, or the first
    // `;` of an addr-spec (which then cannot carry URI parameters, §20.10).
    let bytes = value.as_bytes();
    let (mut quoted, mut escape) = (false, false);
    let mut params_at = None;
    for (i, &b) in bytes.iter().enumerate() {
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
                    let close = find_byte(value, i, b'>');
                    if close == value.len() {
                        return None;
                    }
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
    }
    let params = &value[params_at?..];
    let params = params.strip_prefix(';').unwrap_or(params);
    each_param(params, |k, v| {
        if k.eq_ignore_ascii_case("tag") {
            v.filter(|v| !v.is_empty())
        } else {
            None
        }
    })
}

/// The From or To tag of a header list.
pub(crate) fn header_tag(headers: &Headers, kind: Hdr) -> Option<&str> {
    tag(headers.get(kind)?)
}

/// The Call-ID, trimmed.
pub(crate) fn call_id(headers: &Headers) -> Option<&str> {
    headers.get(Hdr::CallId).map(str::trim_ascii)
}

/// A hasher for ids we hand out ourselves (never chosen by a peer, so no
/// flooding risk): one multiply instead of SipHash.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(26) ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// A map keyed by our own ids.
pub(crate) type IdMap<K, V> =
    std::collections::HashMap<K, V, std::hash::BuildHasherDefault<IdHasher>>;

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
            s.push(':');
            push_u32(&mut s, p.into());
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
        s.push('\n');
        push_u32(&mut s, r.cseq);
        s.push('\n');
        s.push_str(r.via);
        s.push('\n');
        s.push_str(key_method(method));
        ServerKey(s)
    }
}

/// Decimal digits of `n`, without going through `fmt`.
fn push_u32(s: &mut String, mut n: u32) {
    let mut buf = [0u8; 10];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &buf[i..] {
        s.push(d as char);
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
/// sent it: Call-ID, CSeq number, From tag, To tag (RFC 6026 leaves
/// this to the dialog; we key on the dialog id plus CSeq).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct AckKey(String);

impl AckKey {
    /// From the parts.
    pub fn new(call_id: &str, cseq: u32, from_tag: &str, to_tag: &str) -> AckKey {
        let mut s = String::with_capacity(call_id.len() + from_tag.len() + to_tag.len() + 14);
        s.push_str(call_id);
        s.push('\n');
        push_u32(&mut s, cseq);
        s.push('\n');
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
            assert!(
                ours.transport.eq_ignore_ascii_case(&theirs.transport),
                "{v}"
            );
        }
    }

    #[test]
    fn via_scanner_refuses_garbage() {
        for v in [
            "",
            "SIP/2.0",
            "SIP/3.0/UDP h",
            "SIP/2.0/UDP",
            "SIP/2.0/UDP h:x",
            "SIP/2.0/UDP h;rport=x",
        ] {
            assert_eq!(parse_via(v), None, "{v}");
        }
    }

    #[test]
    fn push_u32_writes_decimal() {
        for n in [0, 7, 10, 314159, u32::MAX] {
            let mut s = String::new();
            push_u32(&mut s, n);
            assert_eq!(s, n.to_string());
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
