//! SIP messages: our own model, parsed through the vendor parser.
//!
//! This is the only file that names the SIP parser crate (`rsipstack`'s `sip`
//! module, pinned with `=` in Cargo.toml). Everything above it sees
//! [`Request`], [`Response`], [`Headers`] and [`Via`] from here, so the
//! parser can be replaced by changing one file.
//!
//! What the vendor parser does: split the start line and the header lines
//! (with folding and compact forms) and tokenise URIs, Via, name-addr and
//! CSeq values. What we add on top, because the vendor is lenient where
//! RFC 3261 is not: the start-line grammar (methods it does not know become
//! [`Method::Other`] so the UAS can answer 501; versions other than 2.0 are
//! kept so it can answer 505), the body framing by Content-Length
//! (RFC 3261 §18.3), UTF-8 of the header section, and the header-level
//! checks in `validate.rs`. Serialisation is ours: it writes a correct
//! Content-Length for the body it carries.

use bytes::Bytes;
use rsipstack::sip as vendor;
use std::fmt::{self, Write as _};
use std::net::{IpAddr, SocketAddr};

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
            Method::Other(s) => s,
        }
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
        if let Some(pos) = self.0.iter().position(|x| x.kind == h.kind && x.name == h.name) {
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
    /// Parse one Via element.
    pub fn parse(s: &str) -> Result<Via, ParseError> {
        let v = vendor::typed::Via::parse(s).map_err(|e| ParseError::header("Via", e))?;
        // The vendor accepts `SIP/2.0/UDP` loosely; check the protocol part ourselves.
        let proto = s.trim_start();
        let mut it = proto.splitn(3, '/');
        let (name, ver) = (it.next().unwrap_or(""), it.next().unwrap_or(""));
        if !name.trim().eq_ignore_ascii_case("SIP") || ver.trim() != "2.0" {
            return Err(ParseError::Header {
                name: "Via",
                reason: "sent-protocol is not SIP/2.0".into(),
            });
        }
        let (host, port) = host_port(&v.uri.host_with_port);
        Ok(Via {
            transport: v.transport.to_string().to_ascii_uppercase(),
            host,
            port,
            branch: v.branch().map(|b| b.value().to_string()),
            received: v.params.iter().find_map(|p| match p {
                vendor::Param::Received(r) => Some(r.value().to_string()),
                _ => None,
            }),
            rport: v.rport(),
        })
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

fn host_port(hp: &vendor::HostWithPort) -> (String, Option<u16>) {
    let host = match &hp.host {
        vendor::Host::IpAddr(ip) => ip.to_string(),
        vendor::Host::Domain(d) => d.0.trim_start_matches('[').trim_end_matches(']').to_string(),
    };
    (host, hp.port.as_ref().map(|p| p.value()))
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
    /// Parse a URI (with or without `<>`).
    pub fn parse(s: &str) -> Result<SipUri, ParseError> {
        let u = vendor::parse_uri(s).map_err(|e| ParseError::Uri(e.to_string()))?;
        let scheme = match &u.scheme {
            Some(s) => s.to_string().to_ascii_lowercase(),
            None => return Err(ParseError::Uri("missing scheme".into())),
        };
        let (host, port) = host_port(&u.host_with_port);
        Ok(SipUri {
            scheme,
            user: u.user().map(str::to_string),
            host,
            port,
        })
    }
}

/// A parsed name-addr / addr-spec header value (From, To, Contact, Route).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    /// The URI text (without `<>`).
    pub uri: String,
    /// The `tag` parameter.
    pub tag: Option<String>,
}

impl NameAddr {
    /// Parse From/To-style values (tag is a header parameter).
    pub fn parse(s: &str) -> Result<NameAddr, ParseError> {
        let f = vendor::typed::From::parse(s).map_err(|e| ParseError::header("From/To", e))?;
        Ok(NameAddr {
            uri: f.uri.to_string(),
            tag: f.tag().map(|t| t.value().to_string()),
        })
    }
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
    /// A header we rely on does not parse.
    #[error("bad {name} header: {reason}")]
    Header {
        /// Which header.
        name: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The Request-URI does not parse.
    #[error("bad Request-URI: {0}")]
    Uri(String),
    /// Content-Length is not a number, or there are conflicting values.
    #[error("bad Content-Length")]
    ContentLength,
    /// The datagram ends before Content-Length bytes of body.
    #[error("body shorter than Content-Length")]
    Truncated,
    /// The vendor parser refused it.
    #[error("unparseable: {0}")]
    Vendor(String),
}

impl ParseError {
    fn header(name: &'static str, e: vendor::Error) -> ParseError {
        ParseError::Header {
            name,
            reason: e.to_string(),
        }
    }
}

/// What the start line said, before the vendor saw the message.
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

fn split_start_line(line: &str) -> Result<StartLine<'_>, ParseError> {
    if let Some(rest) = line.strip_prefix("SIP/") {
        // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase
        let (ver_tail, rest) = rest
            .split_once(' ')
            .ok_or_else(|| ParseError::StartLine("no status code".into()))?;
        let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
        let status: u16 = code
            .parse()
            .ok()
            .filter(|c| (100..=699).contains(c) && code.len() == 3)
            .ok_or_else(|| ParseError::StartLine(format!("bad status code {code:?}")))?;
        return Ok(StartLine {
            request: None,
            response: Some((status, reason)),
            version_ok: ver_tail == "2.0",
            version: &line[..4 + ver_tail.len()],
        });
    }
    // Request-Line = Method SP Request-URI SP SIP-Version (single spaces)
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
        .ok_or_else(|| ParseError::StartLine(format!("method {m:?} is not a token")))?;
    if !ver.starts_with("SIP/") || ver.len() < 5 {
        return Err(ParseError::StartLine(format!("bad version {ver:?}")));
    }
    Ok(StartLine {
        request: Some((method, uri)),
        response: None,
        version_ok: ver == "SIP/2.0",
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
    let data = &data[start..];
    let head_end = find_head_end(data).ok_or(ParseError::Incomplete)?;
    let head = std::str::from_utf8(&data[..head_end.0]).map_err(|_| ParseError::NotUtf8)?;
    let body_start = head_end.1;
    let first_line = head.split('\n').next().unwrap_or("").trim_end_matches('\r');
    let sl = split_start_line(first_line)?;

    // Feed the vendor a start line it accepts: it knows only the standard
    // methods and versions. What it could not represent we keep from `sl`.
    let needs_rewrite = !sl.version_ok
        || matches!(&sl.request, Some((Method::Other(_), _)))
        || matches!(&sl.request, Some((Method::Prack, _)));
    let rewritten;
    let vendor_head: &str = if needs_rewrite {
        let rest = &head[first_line.len()..];
        rewritten = match (&sl.request, &sl.response) {
            (Some((_, uri)), _) => format!("OPTIONS {uri} SIP/2.0{rest}"),
            (None, Some((code, reason))) => format!("SIP/2.0 {code} {reason}{rest}"),
            (None, None) => return Err(ParseError::StartLine("empty".into())),
        };
        &rewritten
    } else {
        head
    };
    // The vendor needs the terminating blank line; it gets no body (we frame it).
    let mut buf = String::with_capacity(vendor_head.len() + 4);
    buf.push_str(vendor_head);
    buf.push_str("\r\n\r\n");
    let vmsg = vendor::SipMessage::try_from(buf.as_str())
        .map_err(|e| ParseError::Vendor(e.to_string()))?;

    let mut headers = Headers(Vec::with_capacity(16));
    let vheaders = match &vmsg {
        vendor::SipMessage::Request(r) => &r.headers,
        vendor::SipMessage::Response(r) => &r.headers,
    };
    for h in vheaders.iter() {
        let (name, value) = vendor_header(h);
        headers.0.push(Header::new(name, value));
    }

    // Content-Length: every line and every element must agree.
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
    let avail = &data[body_start.min(data.len())..];
    let body = match cl {
        Some(n) if n > avail.len() => return Err(ParseError::Truncated),
        Some(n) => Bytes::copy_from_slice(&avail[..n]),
        None => Bytes::copy_from_slice(avail),
    };

    let bad_version = (!sl.version_ok).then(|| sl.version.to_string());
    let message = match (sl.request, sl.response) {
        (Some((method, uri)), _) => {
            // Validate the Request-URI through the vendor URI parser.
            SipUri::parse(uri)?;
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

/// (end of header section, start of body): `\r\n\r\n`, tolerating bare `\n\n`.
fn find_head_end(data: &[u8]) -> Option<(usize, usize)> {
    let crlf = data.windows(4).position(|w| w == b"\r\n\r\n");
    let lf = data.windows(2).position(|w| w == b"\n\n");
    match (crlf, lf) {
        (Some(c), Some(l)) if l < c => Some((l, l + 2)),
        (Some(c), _) => Some((c, c + 4)),
        (None, Some(l)) => Some((l, l + 2)),
        (None, None) => None,
    }
}

/// The header-section length and total message length of the first message
/// in a stream buffer, for TCP framing (RFC 3261 §18.3). `Ok(None)`: need
/// more bytes. Leading CRLFs (keep-alives) count toward the length.
pub fn frame_len(buf: &[u8], max: usize) -> Result<Option<usize>, ParseError> {
    let lead = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    let data = &buf[lead..];
    let Some((head_end, body_start)) = find_head_end(data) else {
        if buf.len() > max {
            return Err(ParseError::Incomplete);
        }
        return Ok(None);
    };
    let head = std::str::from_utf8(&data[..head_end]).map_err(|_| ParseError::NotUtf8)?;
    let mut cl: Option<usize> = None;
    for line in head.split('\n').skip(1) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if Hdr::classify(name.trim()) == Hdr::ContentLength {
            let n: usize = value
                .trim()
                .parse()
                .map_err(|_| ParseError::ContentLength)?;
            cl = Some(n);
        }
    }
    // Over a stream Content-Length is mandatory (RFC 3261 §20.14).
    let cl = cl.ok_or(ParseError::ContentLength)?;
    let total = lead + body_start + cl;
    if total > max {
        return Err(ParseError::Truncated);
    }
    if buf.len() < total {
        return Ok(None);
    }
    Ok(Some(total))
}

fn vendor_header(h: &vendor::Header) -> (&str, &str) {
    use vendor::Header as H;
    macro_rules! known {
        ($($v:ident => $n:literal),* $(,)?) => {
            match h {
                H::Other(k, v) => (k.as_str(), v.as_str()),
                $(H::$v(x) => ($n, x.value()),)*
            }
        };
    }
    known!(
        Accept => "Accept", AcceptEncoding => "Accept-Encoding",
        AcceptLanguage => "Accept-Language", AlertInfo => "Alert-Info", Allow => "Allow",
        AuthenticationInfo => "Authentication-Info", Authorization => "Authorization",
        CSeq => "CSeq", CallId => "Call-ID", CallInfo => "Call-Info", Contact => "Contact",
        ContentDisposition => "Content-Disposition", ContentEncoding => "Content-Encoding",
        ContentLanguage => "Content-Language", ContentLength => "Content-Length",
        ContentType => "Content-Type", Date => "Date", ErrorInfo => "Error-Info",
        Event => "Event", Expires => "Expires", From => "From", InReplyTo => "In-Reply-To",
        MaxForwards => "Max-Forwards", MimeVersion => "MIME-Version",
        MinExpires => "Min-Expires", Organization => "Organization", Priority => "Priority",
        ProxyAuthenticate => "Proxy-Authenticate", ProxyAuthorization => "Proxy-Authorization",
        ProxyRequire => "Proxy-Require", RecordRoute => "Record-Route", ReplyTo => "Reply-To",
        Require => "Require", RetryAfter => "Retry-After", Route => "Route",
        ServiceRoute => "Service-Route", Server => "Server", Subject => "Subject",
        SubscriptionState => "Subscription-State", Supported => "Supported",
        Timestamp => "Timestamp", To => "To", Unsupported => "Unsupported",
        UserAgent => "User-Agent", Via => "Via", Warning => "Warning",
        WwwAuthenticate => "WWW-Authenticate", Reason => "Reason", ReferTo => "Refer-To",
        ReferredBy => "Referred-By", SessionExpires => "Session-Expires", MinSE => "Min-SE",
        PAssertedIdentity => "P-Asserted-Identity", PPreferredIdentity => "P-Preferred-Identity",
        Replaces => "Replaces", RSeq => "RSeq", RAck => "RAck", Privacy => "Privacy",
        Path => "Path", Identity => "Identity", UserToUser => "User-to-User",
        SessionId => "Session-ID", HistoryInfo => "History-Info", Diversion => "Diversion",
    )
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
        let n: u32 = it.next()?.parse().ok()?;
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
        let v: Vec<_> =
            split_list("\"a, b\" <sip:x@y;p=1,2>, <sip:z@w>").collect();
        assert_eq!(v, vec!["\"a, b\" <sip:x@y;p=1,2>", "<sip:z@w>"]);
    }
}
