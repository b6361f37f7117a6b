//! SIP messages: our own model and our own parser (RFC 3261 §7, §25).
//!
//! Everything above this file sees [`Request`], [`Response`], [`Headers`],
//! [`Via`], [`SipUri`] and [`NameAddr`] from here; nothing else parses SIP
//! text.
//!
//! The parser follows the RFC 3261 §25 grammar for the parts the gateway
//! relies on: the start line (methods it does not know become
//! [`Method::Other`] so the UAS can answer 501; versions other than 2.0 are
//! kept so it can answer 505), header lines with folding and compact forms
//! (§7.3.1), body framing by Content-Length (§18.3), SIP/SIPS URIs and
//! absolute URIs (§19.1, §25), name-addr / addr-spec values with their
//! parameters (§20.10, §20.20, §20.39) and Via (§20.42). It is strict where
//! RFC 4475 says a message is invalid and liberal where RFC 4475 says a
//! receiver should be (no LWS before `<`, RFC 2543 Via without branch,
//! unknown URI schemes in From/To/Contact). The header-level policy (which
//! request gets which 4xx) lives in `validate.rs`.
//!
//! Until RFC 4475 conformance work this file wrapped `rsipstack`'s parser.
//! That parser lost From/To tags written with LWS around `;`/`=` (RFC 4475
//! §3.1.1.1), re-escaped `%` in URIs (`%20` became `%2520`, §3.1.1.3),
//! read the user part of `sip:user;par=u%40example.net@example.com` as the
//! host (§3.1.1.9), refused registered schemes such as `soap.beep:`
//! (§3.3.3), accepted `<>` around the Request-URI, unbalanced quotes,
//! spaces inside `<>` and empty Via parameters (§3.1.2.1, .6, .7, .14), and
//! silently dropped header lines without a colon. None of it is used now.
//!
//! Values are kept as received (unfolded, trimmed); no percent-decoding is
//! applied. Serialisation writes a correct Content-Length for the body.

use bytes::Bytes;
use std::fmt::{self, Write as _};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// A SIP method (RFC 3261 §7.1 and extensions).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    /// INVITE
    Invite,
    /// ACK
    Ack,
    /// BYE
    Bye,
    /// CANCEL
    Cancel,
    /// OPTIONS
    Options,
    /// REGISTER
    Register,
    /// INFO (RFC 6086)
    Info,
    /// UPDATE (RFC 3311)
    Update,
    /// PRACK (RFC 3262)
    Prack,
    /// REFER (RFC 3515)
    Refer,
    /// NOTIFY (RFC 6665)
    Notify,
    /// SUBSCRIBE (RFC 6665)
    Subscribe,
    /// MESSAGE (RFC 3428)
    Message,
    /// PUBLISH (RFC 3903)
    Publish,
    /// A syntactically valid extension method we do not implement.
    Other(Box<str>),
}

impl Method {
    /// The method as it appears on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Other(s) => s,
            m => m.standard_name().unwrap_or_default(),
        }
    }

    /// The wire name of a method this crate knows, `None` for extensions.
    pub fn standard_name(&self) -> Option<&'static str> {
        Some(match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Options => "OPTIONS",
            Method::Register => "REGISTER",
            Method::Info => "INFO",
            Method::Update => "UPDATE",
            Method::Prack => "PRACK",
            Method::Refer => "REFER",
            Method::Notify => "NOTIFY",
            Method::Subscribe => "SUBSCRIBE",
            Method::Message => "MESSAGE",
            Method::Publish => "PUBLISH",
            Method::Other(_) => return None,
        })
    }

    /// Parse a method token. Methods are case-sensitive (RFC 3261 §7.1):
    /// `invite` is an extension method, not INVITE. `None` if `s` is not a
    /// `token` (RFC 3261 §25.1).
    pub fn from_token(s: &str) -> Option<Method> {
        if s.is_empty() || !s.bytes().all(is_token_char) {
            return None;
        }
        Some(match s {
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "BYE" => Method::Bye,
            "CANCEL" => Method::Cancel,
            "OPTIONS" => Method::Options,
            "REGISTER" => Method::Register,
            "INFO" => Method::Info,
            "UPDATE" => Method::Update,
            "PRACK" => Method::Prack,
            "REFER" => Method::Refer,
            "NOTIFY" => Method::Notify,
            "SUBSCRIBE" => Method::Subscribe,
            "MESSAGE" => Method::Message,
            "PUBLISH" => Method::Publish,
            other => Method::Other(other.into()),
        })
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `token` characters of RFC 3261 §25.1.
pub fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

/// Header names the core looks at; everything else is [`Hdr::Other`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hdr {
    /// Via (v)
    Via,
    /// From (f)
    From,
    /// To (t)
    To,
    /// Call-ID (i)
    CallId,
    /// CSeq
    CSeq,
    /// Max-Forwards
    MaxForwards,
    /// Contact (m)
    Contact,
    /// Content-Length (l)
    ContentLength,
    /// Content-Type (c)
    ContentType,
    /// Content-Encoding (e)
    ContentEncoding,
    /// Route
    Route,
    /// Record-Route
    RecordRoute,
    /// Require
    Require,
    /// Proxy-Require
    ProxyRequire,
    /// Supported (k)
    Supported,
    /// Unsupported
    Unsupported,
    /// Allow
    Allow,
    /// Accept
    Accept,
    /// Expires
    Expires,
    /// Retry-After
    RetryAfter,
    /// Reason (RFC 3326)
    Reason,
    /// User-Agent
    UserAgent,
    /// Server
    Server,
    /// Any other header, kept with its name as received.
    Other,
}

impl Hdr {
    /// Classify a header name (case-insensitive, compact forms expanded).
    pub fn classify(name: &str) -> Hdr {
        const TABLE: &[(&str, Hdr)] = &[
            ("via", Hdr::Via),
            ("v", Hdr::Via),
            ("from", Hdr::From),
            ("f", Hdr::From),
            ("to", Hdr::To),
            ("t", Hdr::To),
            ("call-id", Hdr::CallId),
            ("i", Hdr::CallId),
            ("cseq", Hdr::CSeq),
            ("max-forwards", Hdr::MaxForwards),
            ("contact", Hdr::Contact),
            ("m", Hdr::Contact),
            ("content-length", Hdr::ContentLength),
            ("l", Hdr::ContentLength),
            ("content-type", Hdr::ContentType),
            ("c", Hdr::ContentType),
            ("content-encoding", Hdr::ContentEncoding),
            ("e", Hdr::ContentEncoding),
            ("route", Hdr::Route),
            ("record-route", Hdr::RecordRoute),
            ("require", Hdr::Require),
            ("proxy-require", Hdr::ProxyRequire),
            ("supported", Hdr::Supported),
            ("k", Hdr::Supported),
            ("unsupported", Hdr::Unsupported),
            ("allow", Hdr::Allow),
            ("accept", Hdr::Accept),
            ("expires", Hdr::Expires),
            ("retry-after", Hdr::RetryAfter),
            ("reason", Hdr::Reason),
            ("user-agent", Hdr::UserAgent),
            ("server", Hdr::Server),
        ];
        TABLE
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, h)| *h)
            .unwrap_or(Hdr::Other)
    }

    /// The canonical (long) name, `None` for [`Hdr::Other`].
    pub fn canonical(self) -> Option<&'static str> {
        Some(match self {
            Hdr::Via => "Via",
            Hdr::From => "From",
            Hdr::To => "To",
            Hdr::CallId => "Call-ID",
            Hdr::CSeq => "CSeq",
            Hdr::MaxForwards => "Max-Forwards",
            Hdr::Contact => "Contact",
            Hdr::ContentLength => "Content-Length",
            Hdr::ContentType => "Content-Type",
            Hdr::ContentEncoding => "Content-Encoding",
            Hdr::Route => "Route",
            Hdr::RecordRoute => "Record-Route",
            Hdr::Require => "Require",
            Hdr::ProxyRequire => "Proxy-Require",
            Hdr::Supported => "Supported",
            Hdr::Unsupported => "Unsupported",
            Hdr::Allow => "Allow",
            Hdr::Accept => "Accept",
            Hdr::Expires => "Expires",
            Hdr::RetryAfter => "Retry-After",
            Hdr::Reason => "Reason",
            Hdr::UserAgent => "User-Agent",
            Hdr::Server => "Server",
            Hdr::Other => return None,
        })
    }
}

/// One header line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// What kind of header this is.
    pub kind: Hdr,
    /// The name as written on output (canonical for known kinds).
    pub name: Box<str>,
    /// The value, unfolded and trimmed.
    pub value: String,
}

impl Header {
    /// A header by name; known names are canonicalised.
    pub fn new(name: &str, value: impl Into<String>) -> Header {
        let kind = Hdr::classify(name);
        let name = kind.canonical().unwrap_or(name).into();
        Header {
            kind,
            name,
            value: value.into(),
        }
    }
}

/// The header list of a message, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(pub Vec<Header>);

impl Headers {
    /// The first value of a header.
    pub fn get(&self, kind: Hdr) -> Option<&str> {
        self.0
            .iter()
            .find(|h| h.kind == kind)
            .map(|h| h.value.as_str())
    }

    /// The first value of a header by name (for [`Hdr::Other`] headers).
    pub fn get_named(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    }

    /// Every header line of a kind, in order.
    pub fn all(&self, kind: Hdr) -> impl Iterator<Item = &str> {
        self.0
            .iter()
            .filter(move |h| h.kind == kind)
            .map(|h| h.value.as_str())
    }

    /// Every comma-separated element of every line of a kind, in order
    /// (RFC 3261 §7.3.1: `Via: a, b` is the same as two Via lines).
    pub fn elements(&self, kind: Hdr) -> Vec<&str> {
        self.all(kind).flat_map(split_list).collect()
    }

    /// How many lines of a kind.
    pub fn count(&self, kind: Hdr) -> usize {
        self.0.iter().filter(|h| h.kind == kind).count()
    }

    /// Append a header.
    pub fn push(&mut self, name: &str, value: impl Into<String>) {
        self.0.push(Header::new(name, value));
    }

    /// Insert a header before all others.
    pub fn push_front(&mut self, name: &str, value: impl Into<String>) {
        self.0.insert(0, Header::new(name, value));
    }

    /// Remove every line of a kind.
    pub fn remove(&mut self, kind: Hdr) {
        self.0.retain(|h| h.kind != kind);
    }

    /// Replace every line of a kind with one line.
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        let h = Header::new(name, value);
        if let Some(pos) = self
            .0
            .iter()
            .position(|x| x.kind == h.kind && x.name == h.name)
        {
            let kind = h.kind;
            let name = h.name.clone();
            self.0[pos] = h;
            let mut i = 0;
            self.0.retain(|x| {
                i += 1;
                i - 1 == pos || !(x.kind == kind && x.name == name)
            });
        } else {
            self.0.push(h);
        }
    }

    /// Copy every line of a kind from another list, in order.
    pub fn copy_from(&mut self, other: &Headers, kind: Hdr) {
        for h in other.0.iter().filter(|h| h.kind == kind) {
            self.0.push(h.clone());
        }
    }
}

/// Split a header value on commas that are not inside quotes or `<…>`.
pub fn split_list(value: &str) -> impl Iterator<Item = &str> {
    let bytes = value.as_bytes();
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut angle, mut escape) = (0usize, false, false, false);
    for (i, &b) in bytes.iter().enumerate() {
        if escape {
            escape = false;
            continue;
        }
        match b {
            b'\\' if quoted => escape = true,
            b'"' => quoted = !quoted,
            b'<' if !quoted => angle = true,
            b'>' if !quoted => angle = false,
            b',' if !quoted && !angle => {
                parts.push(value[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(value[start..].trim());
    parts.into_iter().filter(|p| !p.is_empty())
}

// ----- grammar helpers (RFC 3261 §25.1) -----

/// A cursor over a header value. It only ever stops on ASCII bytes, so every
/// position it slices at is a `char` boundary; slicing still goes through
/// `get` so a mistake is an error, not a panic.
struct Cur<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cur<'a> {
    fn new(s: &'a str) -> Cur<'a> {
        Cur { s, pos: 0 }
    }

    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    fn eof(&self) -> bool {
        self.pos >= self.s.len()
    }

    fn rest(&self) -> &'a str {
        self.s.get(self.pos..).unwrap_or("")
    }

    /// Skip SP and HTAB (folds are already unfolded); true if any.
    fn skip_ws(&mut self) -> bool {
        let start = self.pos;
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
        self.pos > start
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// The longest run of ASCII bytes matching `f` (possibly empty).
    fn take(&mut self, f: impl Fn(u8) -> bool) -> &'a str {
        let start = self.pos;
        while let Some(b) = self.peek() {
            if b < 0x80 && f(b) {
                self.pos += 1;
            } else {
                break;
            }
        }
        self.s.get(start..self.pos).unwrap_or("")
    }

    fn token(&mut self) -> &'a str {
        self.take(is_token_char)
    }

    /// A quoted-string (RFC 3261 §25.1) starting at `"`; returns it with
    /// its quotes. qdtext is LWS, printable ASCII but `"` and `\`, or
    /// UTF-8; quoted-pair escapes any ASCII octet except CR and LF.
    fn quoted(&mut self) -> Option<&'a str> {
        let start = self.pos;
        if !self.eat(b'"') {
            return None;
        }
        loop {
            match self.peek()? {
                b'"' => {
                    self.pos += 1;
                    return self.s.get(start..self.pos);
                }
                b'\\' => match self.s.as_bytes().get(self.pos + 1) {
                    Some(&b) if b < 0x80 && b != b'\r' && b != b'\n' => self.pos += 2,
                    _ => return None,
                },
                b'\t' | b' ' | 0x21..=0x7e => self.pos += 1,
                b if b >= 0x80 => {
                    // Step over one whole UTF-8 sequence.
                    let ch = self.rest().chars().next()?;
                    self.pos += ch.len_utf8();
                }
                _ => return None,
            }
        }
    }

    /// `gen-value = token / host / quoted-string` (RFC 3261 §25.1); host
    /// adds `:`, `[`, `]` for IPv6 references.
    fn gen_value(&mut self) -> Option<&'a str> {
        if self.peek() == Some(b'"') {
            return self.quoted();
        }
        let v = self.take(|b| is_token_char(b) || matches!(b, b':' | b'[' | b']'));
        (!v.is_empty()).then_some(v)
    }

    /// `*( SEMI generic-param )` to the end of the value, calling `f` with
    /// each (lower-cased name, value). SEMI and EQUAL allow LWS around them.
    fn params(&mut self, mut f: impl FnMut(&str, Option<&'a str>)) -> Result<(), &'static str> {
        loop {
            self.skip_ws();
            if self.eof() {
                return Ok(());
            }
            if !self.eat(b';') {
                return Err("unexpected text after the value");
            }
            self.skip_ws();
            let name = self.token();
            if name.is_empty() {
                return Err("empty parameter");
            }
            self.skip_ws();
            let value = if self.eat(b'=') {
                self.skip_ws();
                Some(
                    self.gen_value()
                        .ok_or("parameter without value after `=`")?,
                )
            } else {
                None
            };
            f(&name.to_ascii_lowercase(), value);
        }
    }
}

/// `scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )` (RFC 3261 §25.1);
/// returns (scheme, rest after the colon).
fn split_scheme(s: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = s.split_once(':')?;
    let mut b = scheme.bytes();
    let first = b.next()?;
    (first.is_ascii_alphabetic()
        && b.all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.')))
    .then_some((scheme, rest))
}

/// Characters of `unreserved` (RFC 3261 §25.1).
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b)
}

/// Printable, non-space ASCII except `<`, `>`, `"`: what an opaque URI
/// part may hold. Anything wider would break the value around it.
fn is_uri_char(b: u8) -> bool {
    (0x21..0x7f).contains(&b) && !matches!(b, b'<' | b'>' | b'"')
}

/// A SIP/SIPS URI or an absoluteURI as it may appear inside `<>` or as a
/// Request-URI: SIP/SIPS strictly, other schemes by the generic syntax.
fn check_uri(s: &str) -> Result<(), ParseError> {
    let (scheme, rest) =
        split_scheme(s).ok_or_else(|| ParseError::Uri("missing or invalid scheme".into()))?;
    if scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips") {
        parse_sip_uri(s).map(|_| ())
    } else if !rest.is_empty() && rest.bytes().all(is_uri_char) {
        Ok(())
    } else {
        Err(ParseError::Uri(format!("malformed {scheme}: URI")))
    }
}

/// A parsed Via element (RFC 3261 §20.42, RFC 3581 rport).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// Transport token, upper-case (`UDP`, `TCP`, `TLS`, `WS`…).
    pub transport: String,
    /// sent-by host (IP literal or domain; IPv6 without brackets).
    pub host: String,
    /// sent-by port, if given.
    pub port: Option<u16>,
    /// The branch parameter.
    pub branch: Option<String>,
    /// The received parameter.
    pub received: Option<String>,
    /// `None`: no rport; `Some(None)`: rport without value; `Some(Some(p))`.
    pub rport: Option<Option<u16>>,
}

impl Via {
    /// Parse one Via element (`via-parm`, RFC 3261 §25.1):
    /// `sent-protocol LWS sent-by *( SEMI via-params )`, LWS allowed around
    /// `/`, `:`, `;` and `=`. Only `SIP/2.0` is accepted.
    pub fn parse(s: &str) -> Result<Via, ParseError> {
        let bad = |reason: &str| ParseError::Header {
            name: "Via",
            reason: reason.into(),
        };
        let mut c = Cur::new(s.trim());
        let name = c.token();
        c.skip_ws();
        let slash1 = c.eat(b'/');
        c.skip_ws();
        let version = c.token();
        c.skip_ws();
        let slash2 = c.eat(b'/');
        c.skip_ws();
        let transport = c.token();
        if !slash1 || !slash2 || transport.is_empty() {
            return Err(bad("malformed sent-protocol"));
        }
        if !name.eq_ignore_ascii_case("SIP") || version != "2.0" {
            return Err(bad("sent-protocol is not SIP/2.0"));
        }
        if !c.skip_ws() {
            return Err(bad("no space before sent-by"));
        }
        let host = host(&mut c).ok_or_else(|| bad("malformed sent-by host"))?;
        c.skip_ws();
        let port = if c.eat(b':') {
            c.skip_ws();
            Some(port(&mut c).ok_or_else(|| bad("malformed sent-by port"))?)
        } else {
            None
        };
        let mut via = Via {
            transport: transport.to_ascii_uppercase(),
            host,
            port,
            branch: None,
            received: None,
            rport: None,
        };
        let mut bad_rport = false;
        c.params(|name, value| match name {
            "branch" => via.branch = value.map(str::to_string),
            "received" => via.received = value.map(str::to_string),
            "rport" => match value {
                None => via.rport = Some(None),
                Some(v) => match v.parse::<u16>() {
                    Ok(p) => via.rport = Some(Some(p)),
                    Err(_) => bad_rport = true,
                },
            },
            _ => {}
        })
        .map_err(bad)?;
        if bad_rport {
            return Err(bad("rport is not a port number"));
        }
        Ok(via)
    }

    /// The branch if it carries the RFC 3261 magic cookie (`z9hG4bK`).
    pub fn rfc3261_branch(&self) -> Option<&str> {
        self.branch
            .as_deref()
            .filter(|b| b.starts_with(crate::sip::msg::MAGIC_COOKIE))
    }
}

/// The RFC 3261 §8.1.1.7 branch prefix.
pub const MAGIC_COOKIE: &str = "z9hG4bK";

/// `host = hostname / IPv4address / IPv6reference`; IPv6 comes back
/// without brackets. Hostnames also take `_`, which real networks use.
fn host(c: &mut Cur<'_>) -> Option<String> {
    if c.eat(b'[') {
        let inner = c.take(|b| b.is_ascii_hexdigit() || matches!(b, b':' | b'.'));
        if !c.eat(b']') {
            return None;
        }
        inner.parse::<Ipv6Addr>().ok()?;
        return Some(inner.to_string());
    }
    let h = c.take(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    (!h.is_empty()).then(|| h.to_string())
}

fn port(c: &mut Cur<'_>) -> Option<u16> {
    let digits = c.take(|b| b.is_ascii_digit());
    if digits.is_empty() {
        return None;
    }
    digits.parse().ok()
}

/// A parsed SIP or SIPS URI (the parts the gateway routes on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipUri {
    /// `sip`, `sips`, `tel`…, lower-case.
    pub scheme: String,
    /// The user part, percent-decoding not applied.
    pub user: Option<String>,
    /// Host (IPv6 without brackets).
    pub host: String,
    /// Port if given.
    pub port: Option<u16>,
}

impl SipUri {
    /// Parse a `sip:`, `sips:` or `tel:` URI (with or without `<>`). For
    /// `tel:` the number is the user part and the host is empty. Other
    /// schemes are an error: the gateway cannot route on them.
    pub fn parse(s: &str) -> Result<SipUri, ParseError> {
        let s = s.trim();
        let s = s
            .strip_prefix('<')
            .and_then(|x| x.strip_suffix('>'))
            .unwrap_or(s);
        let (scheme, rest) =
            split_scheme(s).ok_or_else(|| ParseError::Uri("missing or invalid scheme".into()))?;
        if scheme.eq_ignore_ascii_case("tel") {
            // RFC 3966: telephone-subscriber *( ";" par ); we keep the number.
            let number = rest.split(';').next().unwrap_or("");
            if number.is_empty() || !rest.bytes().all(is_uri_char) {
                return Err(ParseError::Uri("malformed tel: URI".into()));
            }
            return Ok(SipUri {
                scheme: "tel".into(),
                user: Some(number.to_string()),
                host: String::new(),
                port: None,
            });
        }
        parse_sip_uri(s)
    }
}

/// `SIP-URI = "sip:" [ userinfo ] hostport uri-parameters [ headers ]`
/// (RFC 3261 §19.1.1, §25.1). The user part is liberal (anything printable
/// but `<>"` and space: dialled strings with `#` are common); host, port and
/// parameter structure are strict.
fn parse_sip_uri(s: &str) -> Result<SipUri, ParseError> {
    let bad = |what: &str| ParseError::Uri(format!("malformed SIP URI: {what}"));
    let (scheme, rest) = split_scheme(s).ok_or_else(|| bad("scheme"))?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "sip" && scheme != "sips" {
        return Err(bad("not sip: or sips:"));
    }
    // userinfo ends at the first `@`: neither user nor password may hold an
    // unescaped `@`, and no later component may either.
    let (user, hostpart) = match rest.split_once('@') {
        Some((userinfo, hostpart)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            if user.is_empty() || !userinfo.bytes().all(is_uri_char) {
                return Err(bad("user part"));
            }
            (Some(user.to_string()), hostpart)
        }
        None => (None, rest),
    };
    let mut c = Cur::new(hostpart);
    let host = host(&mut c).ok_or_else(|| bad("host"))?;
    let port = if c.eat(b':') {
        Some(port(&mut c).ok_or_else(|| bad("port"))?)
    } else {
        None
    };
    // uri-parameters: *( ";" pname [ "=" pvalue ] ), paramchar only.
    let is_paramchar = |b: u8| is_unreserved(b) || b"%[]/:&+$".contains(&b);
    while c.eat(b';') {
        if c.take(is_paramchar).is_empty() {
            return Err(bad("empty parameter"));
        }
        if c.eat(b'=') && c.take(is_paramchar).is_empty() {
            return Err(bad("empty parameter value"));
        }
    }
    // headers: "?" header *( "&" header ); kept opaque but printable.
    if c.eat(b'?') {
        if c.eof() || !c.rest().bytes().all(is_uri_char) {
            return Err(bad("headers"));
        }
        c.pos = c.s.len();
    }
    if !c.eof() {
        return Err(bad("unexpected text after host"));
    }
    Ok(SipUri {
        scheme,
        user,
        host,
        port,
    })
}

/// A parsed name-addr / addr-spec header value (From, To, Contact, Route).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    /// The URI text (without `<>`), as received.
    pub uri: String,
    /// The `tag` parameter.
    pub tag: Option<String>,
}

impl NameAddr {
    /// Parse `( name-addr / addr-spec ) *( SEMI generic-param )` (RFC 3261
    /// §20.10, §20.20, §20.39). The display name is a quoted-string or
    /// tokens (LWS before `<` optional, RFC 4475 §3.1.1.6); no LWS inside
    /// `<>` (§3.1.2.14). In addr-spec form the URI ends at the first `;`,
    /// so what follows are header parameters, and it must not contain `,`
    /// or `?` (§20.10, RFC 4475 §3.1.2.13). Any URI scheme is accepted
    /// (RFC 4475 §3.3.4); SIP and SIPS URIs must be well formed.
    pub fn parse(s: &str) -> Result<NameAddr, ParseError> {
        let bad = |reason: &str| ParseError::Header {
            name: "From/To",
            reason: reason.into(),
        };
        let s = s.trim();
        let mut c = Cur::new(s);
        let uri = if c.peek() == Some(b'"') {
            c.quoted()
                .ok_or_else(|| bad("unterminated quoted display name"))?;
            c.skip_ws();
            angle_uri(&mut c).map_err(bad)?
        } else {
            // display-name = *(token LWS): if tokens lead to `<` it is a
            // name-addr; otherwise start over as an addr-spec.
            loop {
                let t = c.token();
                let ws = c.skip_ws();
                if t.is_empty() || !ws {
                    break;
                }
            }
            if c.peek() == Some(b'<') {
                angle_uri(&mut c).map_err(bad)?
            } else {
                c = Cur::new(s);
                let uri = c.take(|b| b != b';').trim_end();
                if uri.contains([',', '?']) {
                    return Err(bad("a URI with `,` or `?` must be inside <>"));
                }
                uri
            }
        };
        check_uri(uri)?;
        let mut tag = None;
        c.params(|name, value| {
            if name == "tag" {
                tag = value.map(str::to_string);
            }
        })
        .map_err(bad)?;
        Ok(NameAddr {
            uri: uri.to_string(),
            tag,
        })
    }
}

/// `LAQUOT addr-spec RAQUOT` with the cursor at `<`: the URI, with no
/// white space inside the brackets.
fn angle_uri<'a>(c: &mut Cur<'a>) -> Result<&'a str, &'static str> {
    if !c.eat(b'<') {
        return Err("expected `<` after the display name");
    }
    let uri = c.take(|b| b != b'>');
    if !c.eat(b'>') {
        return Err("missing `>`");
    }
    if uri.is_empty() || uri.bytes().any(|b| b == b' ' || b == b'\t') {
        return Err("white space inside <>");
    }
    Ok(uri)
}

/// A SIP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// The Request-URI as text.
    pub uri: String,
    /// Header lines.
    pub headers: Headers,
    /// The body (exactly Content-Length bytes once parsed).
    pub body: Bytes,
}

/// A SIP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code, 100–699.
    pub status: u16,
    /// Reason phrase.
    pub reason: String,
    /// Header lines.
    pub headers: Headers,
    /// The body.
    pub body: Bytes,
}

/// A request or a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A request.
    Request(Request),
    /// A response.
    Response(Response),
}

/// Why a byte string is not a SIP message we can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Only CRLFs: a keep-alive (RFC 5626 §4.4.1), not an error.
    #[error("keep-alive")]
    KeepAlive,
    /// No blank line ending the header section.
    #[error("no end of headers")]
    Incomplete,
    /// The start line is not a Request-Line or Status-Line.
    #[error("bad start line: {0}")]
    StartLine(String),
    /// The header section is not UTF-8.
    #[error("header section is not UTF-8")]
    NotUtf8,
    /// A header line, or a header we rely on, does not parse.
    #[error("bad {name} header: {reason}")]
    Header {
        /// Which header.
        name: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The Request-URI (or a URI in a header) does not parse.
    #[error("bad URI: {0}")]
    Uri(String),
    /// Content-Length is not a number, or there are conflicting values.
    #[error("bad Content-Length")]
    ContentLength,
    /// The datagram ends before Content-Length bytes of body.
    #[error("body shorter than Content-Length")]
    Truncated,
}

/// What the start line said.
struct StartLine<'a> {
    /// `Some` for requests: the method and the URI text.
    request: Option<(Method, &'a str)>,
    /// `Some` for responses: code and reason.
    response: Option<(u16, &'a str)>,
    /// The version token was exactly `SIP/2.0`.
    version_ok: bool,
    /// The version token as received.
    version: &'a str,
}

/// `SIP-Version = "SIP" "/" 1*DIGIT "." 1*DIGIT` (RFC 3261 §25.1).
fn is_sip_version(v: &str) -> bool {
    let Some((name, num)) = v.split_once('/') else {
        return false;
    };
    let Some((major, minor)) = num.split_once('.') else {
        return false;
    };
    name.eq_ignore_ascii_case("SIP")
        && !major.is_empty()
        && !minor.is_empty()
        && major.bytes().all(|b| b.is_ascii_digit())
        && minor.bytes().all(|b| b.is_ascii_digit())
}

fn split_start_line(line: &str) -> Result<StartLine<'_>, ParseError> {
    if line.len() >= 4
        && line
            .get(..4)
            .is_some_and(|p| p.eq_ignore_ascii_case("SIP/"))
    {
        // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase
        let (version, rest) = line
            .split_once(' ')
            .ok_or_else(|| ParseError::StartLine("no status code".into()))?;
        if !is_sip_version(version) {
            return Err(ParseError::StartLine("bad SIP-Version".into()));
        }
        // The SP before an empty Reason-Phrase is required (RFC 4475
        // §3.1.1.13); a liberal receiver accepts it missing.
        let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
        let status: u16 = code
            .parse()
            .ok()
            .filter(|c| (100..=699).contains(c) && code.len() == 3)
            .ok_or_else(|| ParseError::StartLine("status code is not 100-699".into()))?;
        return Ok(StartLine {
            request: None,
            response: Some((status, reason)),
            // §7.1: the version string is case-insensitive.
            version_ok: version.eq_ignore_ascii_case("SIP/2.0"),
            version,
        });
    }
    // Request-Line = Method SP Request-URI SP SIP-Version: single spaces,
    // nothing after the version (RFC 4475 §3.1.2.8-10 may be refused).
    let mut parts = line.split(' ');
    let (m, uri, ver) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(u), Some(v), None) if !u.is_empty() => (m, u, v),
        _ => {
            return Err(ParseError::StartLine(
                "expected `METHOD SP Request-URI SP SIP/2.0`".into(),
            ))
        }
    };
    let method = Method::from_token(m)
        .ok_or_else(|| ParseError::StartLine("method is not a token".into()))?;
    if !is_sip_version(ver) {
        return Err(ParseError::StartLine("bad SIP-Version".into()));
    }
    Ok(StartLine {
        request: Some((method, uri)),
        response: None,
        version_ok: ver.eq_ignore_ascii_case("SIP/2.0"),
        version: ver,
    })
}

/// A parsed message plus what the parser noticed that validation must act on.
#[derive(Debug, Clone)]
pub struct Parsed {
    /// The message.
    pub message: Message,
    /// The SIP-Version was not `SIP/2.0` (a request gets 505).
    pub bad_version: Option<String>,
}

/// Parse one SIP message from a datagram or a framed stream message.
///
/// On UDP, bytes after Content-Length are discarded; a body shorter than
/// Content-Length is [`ParseError::Truncated`] (RFC 3261 §18.3). Without a
/// Content-Length the body is the rest of the buffer.
pub fn parse(data: &[u8]) -> Result<Parsed, ParseError> {
    // RFC 3261 §7.5: ignore CRLFs before the start line.
    let start = data
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .ok_or(ParseError::KeepAlive)?;
    let data = data.get(start..).unwrap_or_default();
    let (head_end, body_start) = find_head_end(data).ok_or(ParseError::Incomplete)?;
    let head = data.get(..head_end).unwrap_or_default();
    let head = std::str::from_utf8(head).map_err(|_| ParseError::NotUtf8)?;
    let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let sl = split_start_line(lines.next().unwrap_or(""))?;
    let headers = parse_header_lines(lines)?;

    // Content-Length: every line must agree (RFC 4475 §3.3.9).
    let mut cl: Option<usize> = None;
    for v in headers.all(Hdr::ContentLength) {
        let v = v.trim();
        if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseError::ContentLength);
        }
        let n: usize = v.parse().map_err(|_| ParseError::ContentLength)?;
        match cl {
            Some(prev) if prev != n => return Err(ParseError::ContentLength),
            _ => cl = Some(n),
        }
    }
    let avail = data.get(body_start..).unwrap_or_default();
    let body = match cl {
        Some(n) => Bytes::copy_from_slice(avail.get(..n).ok_or(ParseError::Truncated)?),
        None => Bytes::copy_from_slice(avail),
    };

    let bad_version = (!sl.version_ok).then(|| sl.version.to_string());
    let message = match (sl.request, sl.response) {
        (Some((method, uri)), _) => {
            check_uri(uri)?;
            Message::Request(Request {
                method,
                uri: uri.to_string(),
                headers,
                body,
            })
        }
        (None, Some((status, reason))) => Message::Response(Response {
            status,
            reason: reason.to_string(),
            headers,
            body,
        }),
        (None, None) => return Err(ParseError::StartLine("empty".into())),
    };
    Ok(Parsed {
        message,
        bad_version,
    })
}

/// Header lines (RFC 3261 §7.3): `field-name HCOLON field-value`, with
/// continuation lines (leading SP/HTAB) folded into one SP (§7.3.1).
fn parse_header_lines<'a>(lines: impl Iterator<Item = &'a str>) -> Result<Headers, ParseError> {
    let bad = |reason: &str| ParseError::Header {
        name: "header line",
        reason: reason.into(),
    };
    let mut headers = Headers(Vec::with_capacity(16));
    for line in lines {
        if line.contains('\r') {
            return Err(bad("bare CR"));
        }
        if line.starts_with([' ', '\t']) {
            let h = headers
                .0
                .last_mut()
                .ok_or_else(|| bad("continuation line before the first header"))?;
            let more = line.trim_matches([' ', '\t']);
            if !more.is_empty() {
                if !h.value.is_empty() {
                    h.value.push(' ');
                }
                h.value.push_str(more);
            }
            continue;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| bad("no colon in header line"))?;
        let name = name.trim_end_matches([' ', '\t']);
        if name.is_empty() || !name.bytes().all(is_token_char) {
            return Err(bad("header name is not a token"));
        }
        headers
            .0
            .push(Header::new(name, value.trim_matches([' ', '\t'])));
    }
    Ok(headers)
}

/// (end of header section, start of body): the first empty line (CRLF, or
/// a bare LF from liberal senders) ends the headers.
fn find_head_end(data: &[u8]) -> Option<(usize, usize)> {
    let mut pos = 0;
    while let Some(nl) = data.get(pos..)?.iter().position(|&b| b == b'\n') {
        let line = data.get(pos..pos + nl)?;
        if line.is_empty() || line == b"\r" {
            // Exclude the line break of the last header line.
            let end = pos.saturating_sub(1);
            let end = if pos >= 2 && data.get(pos - 2) == Some(&b'\r') {
                pos - 2
            } else {
                end
            };
            return Some((end, pos + nl + 1));
        }
        pos += nl + 1;
    }
    None
}

/// The total length of the first message in a stream buffer, for TCP
/// framing (RFC 3261 §18.3). `Ok(None)`: need more bytes. Leading CRLFs
/// (keep-alives) count toward the length.
pub fn frame_len(buf: &[u8], max: usize) -> Result<Option<usize>, ParseError> {
    let lead = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    let data = buf.get(lead..).unwrap_or_default();
    let Some((head_end, body_start)) = find_head_end(data) else {
        if buf.len() > max {
            return Err(ParseError::Incomplete);
        }
        return Ok(None);
    };
    let head = data.get(..head_end).unwrap_or_default();
    let head = std::str::from_utf8(head).map_err(|_| ParseError::NotUtf8)?;
    let mut cl: Option<usize> = None;
    for line in head.split('\n').skip(1) {
        if line.starts_with([' ', '\t']) {
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if Hdr::classify(name.trim()) == Hdr::ContentLength {
            let v = value.trim();
            if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ParseError::ContentLength);
            }
            let n: usize = v.parse().map_err(|_| ParseError::ContentLength)?;
            if cl.is_some_and(|prev| prev != n) {
                return Err(ParseError::ContentLength);
            }
            cl = Some(n);
        }
    }
    // Over a stream Content-Length is mandatory (RFC 3261 §20.14).
    let cl = cl.ok_or(ParseError::ContentLength)?;
    let total = lead
        .checked_add(body_start)
        .and_then(|t| t.checked_add(cl))
        .filter(|&t| t <= max)
        .ok_or(ParseError::Truncated)?;
    if buf.len() < total {
        return Ok(None);
    }
    Ok(Some(total))
}

// ----- accessors shared by requests and responses -----

/// Accessors for the headers every SIP message carries.
pub trait SipHeaders {
    /// The header list.
    fn headers(&self) -> &Headers;
    /// The header list, mutable.
    fn headers_mut(&mut self) -> &mut Headers;

    /// Call-ID.
    fn call_id(&self) -> Option<&str> {
        self.headers().get(Hdr::CallId)
    }

    /// CSeq number and method.
    fn cseq(&self) -> Option<(u32, Method)> {
        let v = self.headers().get(Hdr::CSeq)?;
        let mut it = v.split_ascii_whitespace();
        // `CSeq = 1*DIGIT LWS Method` (RFC 3261 §20.16): no sign.
        let n = it
            .next()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))?;
        let n: u32 = n.parse().ok()?;
        let m = Method::from_token(it.next()?)?;
        if it.next().is_some() {
            return None;
        }
        Some((n, m))
    }

    /// The topmost Via element, parsed.
    fn top_via(&self) -> Option<Result<Via, ParseError>> {
        let first = self.headers().get(Hdr::Via)?;
        split_list(first).next().map(Via::parse)
    }

    /// The From tag.
    #[allow(clippy::wrong_self_convention)] // the From header's tag, not a conversion
    fn from_tag(&self) -> Option<String> {
        NameAddr::parse(self.headers().get(Hdr::From)?).ok()?.tag
    }

    /// The To tag.
    fn to_tag(&self) -> Option<String> {
        NameAddr::parse(self.headers().get(Hdr::To)?).ok()?.tag
    }

    /// Max-Forwards as a number.
    fn max_forwards(&self) -> Option<Result<u32, ()>> {
        let v = self.headers().get(Hdr::MaxForwards)?;
        Some(v.trim().parse::<u32>().map_err(|_| ()))
    }
}

impl SipHeaders for Request {
    fn headers(&self) -> &Headers {
        &self.headers
    }
    fn headers_mut(&mut self) -> &mut Headers {
        &mut self.headers
    }
}

impl SipHeaders for Response {
    fn headers(&self) -> &Headers {
        &self.headers
    }
    fn headers_mut(&mut self) -> &mut Headers {
        &mut self.headers
    }
}

impl SipHeaders for Message {
    fn headers(&self) -> &Headers {
        match self {
            Message::Request(r) => &r.headers,
            Message::Response(r) => &r.headers,
        }
    }
    fn headers_mut(&mut self) -> &mut Headers {
        match self {
            Message::Request(r) => &mut r.headers,
            Message::Response(r) => &mut r.headers,
        }
    }
}

// ----- construction and serialisation -----

impl Request {
    /// A request with no headers.
    pub fn new(method: Method, uri: impl Into<String>) -> Request {
        Request {
            method,
            uri: uri.into(),
            headers: Headers(Vec::with_capacity(12)),
            body: Bytes::new(),
        }
    }

    /// The parsed Request-URI.
    pub fn request_uri(&self) -> Result<SipUri, ParseError> {
        SipUri::parse(&self.uri)
    }

    /// Stamp `received` and `rport` on the top Via (RFC 3261 §18.2.1,
    /// RFC 3581 §4) from the packet's source address.
    pub fn stamp_via(&mut self, source: SocketAddr) {
        let Some(pos) = self.headers.0.iter().position(|h| h.kind == Hdr::Via) else {
            return;
        };
        let line = &self.headers.0[pos].value;
        let mut elems = split_list(line);
        let Some(top) = elems.next() else { return };
        let rest: Vec<&str> = elems.collect();
        let Ok(via) = Via::parse(top) else { return };
        let ip = source.ip();
        let sent_by_matches = via.host.parse::<IpAddr>().ok() == Some(ip);
        let mut out = String::with_capacity(top.len() + 40);
        // Rebuild the top element without received/rport, then append ours.
        for (i, part) in top.split(';').enumerate() {
            let key = part.split('=').next().unwrap_or("").trim();
            if i > 0 && (key.eq_ignore_ascii_case("received") || key.eq_ignore_ascii_case("rport"))
            {
                continue;
            }
            if i > 0 {
                out.push(';');
            }
            out.push_str(part.trim());
        }
        if !sent_by_matches || via.rport.is_some() {
            let _ = write!(out, ";received={ip}");
        }
        if via.rport.is_some() {
            let _ = write!(out, ";rport={}", source.port());
        }
        for r in rest {
            out.push_str(", ");
            out.push_str(r);
        }
        self.headers.0[pos].value = out;
    }

    /// Serialise, writing Content-Length for the body.
    pub fn to_bytes(&self) -> Bytes {
        let mut s = String::with_capacity(512 + self.body.len());
        let _ = write!(s, "{} {} SIP/2.0\r\n", self.method, self.uri);
        write_headers(&mut s, &self.headers, self.body.len());
        let mut v = s.into_bytes();
        v.extend_from_slice(&self.body);
        Bytes::from(v)
    }
}

impl Response {
    /// A response to `req` (RFC 3261 §8.2.6.2): Via, From, To, Call-ID and
    /// CSeq copied; the caller adds a To tag where one is needed.
    pub fn to(req: &Request, status: u16) -> Response {
        let mut headers = Headers(Vec::with_capacity(10));
        headers.copy_from(&req.headers, Hdr::Via);
        headers.copy_from(&req.headers, Hdr::From);
        headers.copy_from(&req.headers, Hdr::To);
        headers.copy_from(&req.headers, Hdr::CallId);
        headers.copy_from(&req.headers, Hdr::CSeq);
        Response {
            status,
            reason: reason_phrase(status).to_string(),
            headers,
            body: Bytes::new(),
        }
    }

    /// Add `;tag=` to the To header if it has none.
    pub fn set_to_tag(&mut self, tag: &str) {
        if let Some(h) = self.headers.0.iter_mut().find(|h| h.kind == Hdr::To) {
            if !has_tag(&h.value) {
                h.value.push_str(";tag=");
                h.value.push_str(tag);
            }
        }
    }

    /// Serialise, writing Content-Length for the body.
    pub fn to_bytes(&self) -> Bytes {
        let mut s = String::with_capacity(384 + self.body.len());
        let _ = write!(s, "SIP/2.0 {} {}\r\n", self.status, self.reason);
        write_headers(&mut s, &self.headers, self.body.len());
        let mut v = s.into_bytes();
        v.extend_from_slice(&self.body);
        Bytes::from(v)
    }

    /// 1xx
    pub fn is_provisional(&self) -> bool {
        self.status < 200
    }
}

impl Message {
    /// Serialise.
    pub fn to_bytes(&self) -> Bytes {
        match self {
            Message::Request(r) => r.to_bytes(),
            Message::Response(r) => r.to_bytes(),
        }
    }
}

/// Whether a From/To value carries a tag parameter (outside the URI).
pub fn has_tag(value: &str) -> bool {
    NameAddr::parse(value)
        .map(|n| n.tag.is_some())
        .unwrap_or(false)
}

fn write_headers(s: &mut String, headers: &Headers, body_len: usize) {
    for h in &headers.0 {
        if h.kind == Hdr::ContentLength {
            continue;
        }
        s.push_str(&h.name);
        s.push_str(": ");
        s.push_str(&h.value);
        s.push_str("\r\n");
    }
    let _ = write!(s, "Content-Length: {body_len}\r\n\r\n");
}

/// The default reason phrase of a status code (RFC 3261 §21 and extensions).
pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        200 => "OK",
        202 => "Accepted",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        410 => "Gone",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        421 => "Extension Required",
        423 => "Interval Too Brief",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        485 => "Ambiguous",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        491 => "Request Pending",
        493 => "Undecipherable",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        _ => match code / 100 {
            1 => "Session Progress",
            2 => "OK",
            3 => "Redirect",
            4 => "Request Failure",
            5 => "Server Failure",
            _ => "Global Failure",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &str = "INVITE sip:12345@gw.example SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK776asdhds;rport\r\n\
Max-Forwards: 70\r\n\
To: <sip:12345@gw.example>\r\n\
From: \"Citizen\" <sip:13800138000@carrier.example>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.example\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:13800138000@10.0.0.1>\r\n\
Content-Type: application/sdp\r\n\
l: 4\r\n\r\nv=0\r\nEXTRA";

    fn req(s: &str) -> Request {
        match parse(s.as_bytes()).unwrap().message {
            Message::Request(r) => r,
            Message::Response(_) => panic!("not a request"),
        }
    }

    #[test]
    fn parses_request_and_frames_body() {
        let r = req(INVITE);
        assert_eq!(r.method, Method::Invite);
        assert_eq!(r.uri, "sip:12345@gw.example");
        assert_eq!(&r.body[..], b"v=0\r");
        assert_eq!(r.cseq(), Some((314159, Method::Invite)));
        assert_eq!(r.from_tag().as_deref(), Some("1928301774"));
        assert_eq!(r.to_tag(), None);
        let v = r.top_via().unwrap().unwrap();
        assert_eq!(v.host, "10.0.0.1");
        assert_eq!(v.port, Some(5060));
        assert_eq!(v.rfc3261_branch(), Some("z9hG4bK776asdhds"));
        assert_eq!(v.rport, Some(None));
        assert_eq!(r.request_uri().unwrap().user.as_deref(), Some("12345"));
    }

    #[test]
    fn unknown_method_and_bad_version_are_kept() {
        let p = parse(b"FOO sip:a@b SIP/7.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\nCall-ID: x\r\nCSeq: 1 FOO\r\n\r\n").unwrap();
        assert_eq!(p.bad_version.as_deref(), Some("SIP/7.0"));
        match p.message {
            Message::Request(r) => {
                assert_eq!(r.method, Method::Other("FOO".into()));
                assert_eq!(r.cseq(), Some((1, Method::Other("FOO".into()))));
            }
            _ => panic!(),
        }
    }

    #[test]
    fn truncated_body_is_an_error() {
        let s = INVITE.replace("l: 4", "l: 400");
        assert_eq!(parse(s.as_bytes()).unwrap_err(), ParseError::Truncated);
    }

    #[test]
    fn serialise_round_trip_and_response_to() {
        let r = req(INVITE);
        let again = req(std::str::from_utf8(&r.to_bytes()).unwrap());
        assert_eq!(r, again);
        let mut resp = Response::to(&r, 180);
        resp.set_to_tag("abc");
        let b = resp.to_bytes();
        let p = parse(&b).unwrap();
        match p.message {
            Message::Response(x) => {
                assert_eq!(x.status, 180);
                assert_eq!(x.to_tag().as_deref(), Some("abc"));
                assert_eq!(x.call_id(), r.call_id());
            }
            _ => panic!(),
        }
    }

    #[test]
    fn stamp_via_received_rport() {
        let mut r = req(INVITE);
        r.stamp_via("192.0.2.7:40000".parse().unwrap());
        let v = r.top_via().unwrap().unwrap();
        assert_eq!(v.received.as_deref(), Some("192.0.2.7"));
        assert_eq!(v.rport, Some(Some(40000)));
    }

    #[test]
    fn tcp_framing() {
        let two = format!("\r\n{INVITE}");
        let b = two.as_bytes();
        let n = frame_len(b, 65535).unwrap().unwrap();
        // INVITE declares 4 body bytes; "EXTRA" is the next message's start.
        assert_eq!(&b[n - 4..n], b"v=0\r");
        assert_eq!(frame_len(&b[..20], 65535).unwrap(), None);
    }

    #[test]
    fn split_list_respects_quotes_and_angles() {
        let v: Vec<_> = split_list("\"a, b\" <sip:x@y;p=1,2>, <sip:z@w>").collect();
        assert_eq!(v, vec!["\"a, b\" <sip:x@y;p=1,2>", "<sip:z@w>"]);
    }

    #[test]
    fn header_lines_fold_and_compact_forms() {
        let r = req("OPTIONS sip:a@b.example SIP/2.0\r\n\
v: SIP/2.0/UDP h.example;branch=z9hG4bKa\r\n\
TO :\r\n sip:a@b.example ;  tag = x1\r\n\
f: <sip:c@d.example>;tag=y\r\n\
i: id@h\r\n\
cseq: 0009\r\n  OPTIONS\r\n\
l: 0\r\n\r\n");
        assert_eq!(r.to_tag().as_deref(), Some("x1"));
        assert_eq!(r.call_id(), Some("id@h"));
        assert_eq!(r.cseq(), Some((9, Method::Options)));
        assert_eq!(r.headers.get(Hdr::To), Some("sip:a@b.example ;  tag = x1"));
    }

    #[test]
    fn broken_header_lines_are_errors() {
        let base = "OPTIONS sip:a@b.example SIP/2.0\r\nVia: SIP/2.0/UDP h\r\n";
        for bad in ["No colon here", "Bad Name: x", ": empty name", "X: a\rb"] {
            let m = format!("{base}{bad}\r\n\r\n");
            assert!(
                matches!(parse(m.as_bytes()), Err(ParseError::Header { .. })),
                "{bad:?}"
            );
        }
        let m = "OPTIONS sip:a@b.example SIP/2.0\r\n continued\r\n\r\n";
        assert!(parse(m.as_bytes()).is_err(), "fold before the first header");
    }

    #[test]
    fn via_grammar() {
        let v = Via::parse(
            "SIP  /   2.0 /UDP    192.0.2.2 ;  branch = z9hG4bKx ; rport ; received=192.0.2.9",
        )
        .unwrap();
        assert_eq!((v.host.as_str(), v.port), ("192.0.2.2", None));
        assert_eq!(v.rfc3261_branch(), Some("z9hG4bKx"));
        assert_eq!(v.rport, Some(None));
        assert_eq!(v.received.as_deref(), Some("192.0.2.9"));
        let v = Via::parse("SIP/2.0/TCP [2001:db8::1]:5070;rport=5071").unwrap();
        assert_eq!(
            (v.host.as_str(), v.port, v.rport),
            ("2001:db8::1", Some(5070), Some(Some(5071)))
        );
        for bad in [
            "SIP/2.0/UDP 192.0.2.15;;",
            "SIP/2.0/UDP",
            "SIP/2.0 UDP h",
            "SIP/2.0/UDP h:99999",
            "SIP/2.0/UDP h;rport=x",
            "SIP/3.0/UDP h",
            "SIP/2.0/UDP h junk",
        ] {
            assert!(Via::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn name_addr_grammar() {
        let ok = |s: &str| NameAddr::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(
            ok("caller<sip:c@example.com>;tag=323").tag.as_deref(),
            Some("323")
        );
        let n = ok("\"J Rosenberg \\\\\\\"\"  <sip:jdrosen@example.com> ;  tag = 98asjd8");
        assert_eq!(
            (n.uri.as_str(), n.tag.as_deref()),
            ("sip:jdrosen@example.com", Some("98asjd8"))
        );
        // addr-spec: parameters after the URI belong to the header.
        let n = ok("sip:+1650@ss1.example.net;user=phone;tag=t");
        assert_eq!(
            (n.uri.as_str(), n.tag.as_deref()),
            ("sip:+1650@ss1.example.net", Some("t"))
        );
        assert_eq!(ok("isbn:2983792873").uri, "isbn:2983792873");
        assert_eq!(
            ok("<http://www.example.com>;tag=3").uri,
            "http://www.example.com"
        );
        assert_eq!(
            ok("A. Bell <sip:a.g.bell@example.com>;tag=q").uri,
            "sip:a.g.bell@example.com"
        );
        for bad in [
            "\"Mr. J. User <sip:j.user@example.com>",
            "\"Watson, Thomas\" < sip:t.watson@example.org >",
            "Bell, Alexander <sip:a.g.bell@example.com>;tag=43",
            "sip:user@example.com?Route=%3Csip:sip.example.com%3E",
            "<sip:a@b>;;tag=1",
            "<sip:a@b>;tag=",
            "<sip:a@b> junk",
            "*",
            "",
        ] {
            assert!(NameAddr::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sip_uri_grammar() {
        let u = SipUri::parse("sip:user;par=u%40example.net@example.com").unwrap();
        assert_eq!(
            (u.user.as_deref(), u.host.as_str()),
            (Some("user;par=u%40example.net"), "example.com")
        );
        let u = SipUri::parse("<sips:[2001:db8::2]:5061;transport=tls>").unwrap();
        assert_eq!(
            (u.scheme.as_str(), u.host.as_str(), u.port),
            ("sips", "2001:db8::2", Some(5061))
        );
        let u = SipUri::parse("tel:+86-10-12345;phone-context=example.cn").unwrap();
        assert_eq!(
            (u.scheme.as_str(), u.user.as_deref()),
            ("tel", Some("+86-10-12345"))
        );
        assert_eq!(
            SipUri::parse("SIP:*31#1@h").unwrap().user.as_deref(),
            Some("*31#1")
        );
        for bad in [
            "sip:",
            "sip:@h",
            "sip:u@",
            "sip:u@h;",
            "sip:u@h:port",
            "sip:u@h x",
            "sip:u@h?",
            "soap.beep://192.0.2.103:3002",
            "<sip:a@b",
        ] {
            assert!(SipUri::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn request_uri_and_version_rules() {
        let m = |line: &str| format!("{line}\r\nVia: SIP/2.0/UDP h\r\n\r\n");
        assert!(parse(m("OPTIONS soap.beep://192.0.2.103:3002 SIP/2.0").as_bytes()).is_ok());
        assert!(parse(m("OPTIONS <sip:a@b> SIP/2.0").as_bytes()).is_err());
        assert!(parse(m("OPTIONS sip:a@b SIP/2.0 ").as_bytes()).is_err());
        assert!(parse(m("OPTIONS sip:a@b HTTP/1.1").as_bytes()).is_err());
        let p = parse(m("OPTIONS sip:a@b sip/2.0").as_bytes()).unwrap();
        assert_eq!(
            p.bad_version, None,
            "the version is case-insensitive (RFC 3261 §7.1)"
        );
        let mut r = req(&m("OPTIONS sip:a@b SIP/2.0"));
        r.headers.push("CSeq", "+5 OPTIONS");
        assert_eq!(r.cseq(), None, "CSeq is 1*DIGIT");
    }
}
