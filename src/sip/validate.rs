//! What to do with a received message, decided before the transaction layer
//! sees it: accept it, answer it statelessly, or drop it and count why.
//!
//! The checks follow RFC 3261 §8.2 (UAS request processing) in its order —
//! syntax, method (§8.2.1), Request-URI (§8.2.2.1), extensions (§8.2.2.3),
//! content (§8.2.3) — plus §8.1.3.3 for responses, §18.3 for framing and
//! what RFC 4475 says a receiver should do with each torture message
//! (`tests/rfc4475.rs` holds that table). Bad network input becomes a 4xx or
//! a counted drop, never a panic (CONVENTIONS §8).
//!
//! Who gets an answer: a request whose top Via names somewhere to answer
//! and whose CSeq can be echoed (so the client transaction matches the
//! response, RFC 3261 §17.1.3). Never an ACK (§17.1.1.3: ACK gets no
//! response) and never a response.

use crate::rng::Rng;
use crate::sip::msg::{
    parse, split_list, Hdr, Headers, Message, Method, NameAddr, ParseError, Request, Response,
    SipHeaders, Via,
};

/// What to do with a received message.
#[derive(Debug)]
#[must_use]
pub enum Verdict {
    /// Hand it to the transaction layer.
    Accept(Message),
    /// Send this stateless response back where the request came from
    /// (requests only, never for ACK).
    Reply(Response),
    /// Drop it, counted under [`DropReason::label`].
    Drop(DropReason),
}

/// Why a message was dropped without an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Only CRLFs (RFC 5626 §4.4.1 keep-alive).
    KeepAlive,
    /// Larger than [`Policy::max_message_bytes`] with no headers to answer
    /// with, or a response.
    TooLarge,
    /// A request too broken to answer: no usable top Via or CSeq.
    Malformed,
    /// A malformed response (RFC 3261 §18.3, RFC 4475 §3.1.2.5, §3.1.2.19).
    MalformedResponse,
    /// An ACK we would have refused: ACK gets no response (RFC 3261 §17.1.1.3).
    AckMalformed,
    /// A response with other than one Via (RFC 3261 §8.1.3.3, RFC 4475 §3.3.10).
    ResponseViaCount,
}

impl DropReason {
    /// The `reason` label for `/metrics`.
    pub fn label(&self) -> &'static str {
        match self {
            DropReason::KeepAlive => "keepalive",
            DropReason::TooLarge => "too_large",
            DropReason::Malformed => "malformed",
            DropReason::MalformedResponse => "malformed_response",
            DropReason::AckMalformed => "ack_malformed",
            DropReason::ResponseViaCount => "response_via_count",
        }
    }
}

/// What this gateway implements, as validation needs to know it.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Option tags we support in `Require` (RFC 3261 §8.2.2.3).
    pub supported: &'static [&'static str],
    /// Methods we implement; others get 405 (known) or 501 (unknown), both
    /// with `Allow` listing these (RFC 3261 §8.2.1).
    pub allow: &'static [Method],
    /// Larger messages get 513 (requests) or are dropped.
    pub max_message_bytes: usize,
}

/// The methods the gateway implements today.
pub const GATEWAY_METHODS: &[Method] = &[
    Method::Invite,
    Method::Ack,
    Method::Bye,
    Method::Cancel,
    Method::Options,
    Method::Info,
    Method::Update,
    Method::Register,
];

impl Policy {
    /// The gateway today: no option tags required of us, the methods of
    /// [`GATEWAY_METHODS`], 64 KiB (the largest UDP datagram, and the
    /// stream framing limit).
    pub const GATEWAY: Policy = Policy {
        supported: &[],
        allow: GATEWAY_METHODS,
        max_message_bytes: 65_535,
    };
}

impl Default for Policy {
    fn default() -> Policy {
        Policy::GATEWAY
    }
}

/// Body types the UAS interprets in INVITE/UPDATE (RFC 3261 §8.2.3).
const ACCEPT: &str = "application/sdp, multipart/mixed";

/// Decide what to do with one datagram or framed stream message.
pub fn check(data: &[u8], policy: &Policy) -> Verdict {
    if data.len() > policy.max_message_bytes {
        // RFC 3261 §21.5.7 (513): answer from the headers alone.
        return refuse_unparsed(
            data,
            513,
            "message larger than we accept",
            DropReason::TooLarge,
        );
    }
    let parsed = match parse(data) {
        Ok(p) => p,
        Err(ParseError::KeepAlive) => return Verdict::Drop(DropReason::KeepAlive),
        Err(e) => return refuse_unparsed(data, 400, &e.to_string(), DropReason::Malformed),
    };
    match parsed.message {
        Message::Response(r) => check_response(r, parsed.bad_version.is_some()),
        Message::Request(r) => match request_problem(&r, parsed.bad_version.is_some(), policy) {
            None => Verdict::Accept(Message::Request(r)),
            Some(_) if r.method == Method::Ack => Verdict::Drop(DropReason::AckMalformed),
            Some(p) if answerable(&r.headers) => Verdict::Reply(p.response(&r, data)),
            Some(_) => Verdict::Drop(DropReason::Malformed),
        },
    }
}

/// A message the parser refused (or would not read): a request is answered
/// from its salvaged headers if it can be, anything else is dropped.
fn refuse_unparsed(data: &[u8], status: u16, why: &str, drop: DropReason) -> Verdict {
    if looks_like_response(data) {
        // RFC 3261 §18.3: a malformed response is discarded.
        return Verdict::Drop(match drop {
            DropReason::Malformed => DropReason::MalformedResponse,
            other => other,
        });
    }
    match salvage(data) {
        Some(req) if req.method == Method::Ack => Verdict::Drop(match drop {
            DropReason::TooLarge => DropReason::TooLarge,
            _ => DropReason::AckMalformed,
        }),
        Some(req) if answerable(&req.headers) => {
            Verdict::Reply(Problem::new(status, why).response(&req, data))
        }
        _ => Verdict::Drop(drop),
    }
}

fn looks_like_response(data: &[u8]) -> bool {
    let start = data
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(data.len());
    data.get(start..start + 4)
        .is_some_and(|p| p.eq_ignore_ascii_case(b"SIP/"))
}

/// The headers a response is built from (Via, From, To, Call-ID, CSeq),
/// read tolerantly from a request the parser refused: line by line,
/// unfolding continuations, lossy UTF-8, control characters blanked so
/// nothing we echo can start a header line of its own. `None` for a
/// Status-Line, or when neither the Request-Line nor the CSeq names a
/// method.
pub fn salvage(data: &[u8]) -> Option<Request> {
    let start = data.iter().position(|&b| b != b'\r' && b != b'\n')?;
    let mut lines = data
        .get(start..)?
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let start_line = String::from_utf8_lossy(lines.next()?).into_owned();
    if start_line
        .get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case("SIP/"))
    {
        return None;
    }
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in lines {
        if line.is_empty() {
            break;
        }
        let text = String::from_utf8_lossy(line);
        let text: String = text
            .chars()
            .map(|c| if c.is_control() && c != '\t' { ' ' } else { c })
            .collect();
        if text.starts_with([' ', '\t']) {
            if let Some((_, v)) = fields.last_mut() {
                v.push(' ');
                v.push_str(text.trim());
            }
            continue;
        }
        if let Some((name, value)) = text.split_once(':') {
            fields.push((name.trim().to_string(), value.trim().to_string()));
        }
    }
    let mut headers = Headers(Vec::with_capacity(6));
    for kind in [Hdr::Via, Hdr::From, Hdr::To, Hdr::CallId, Hdr::CSeq] {
        for (name, value) in &fields {
            if Hdr::classify(name) == kind {
                headers.push(name, value.clone());
                if kind != Hdr::Via {
                    break;
                }
            }
        }
    }
    let mut words = start_line.split(' ');
    let method = words.next().and_then(Method::from_token).or_else(|| {
        let cseq = headers.get(Hdr::CSeq)?;
        Method::from_token(cseq.split_ascii_whitespace().nth(1)?)
    })?;
    let mut req = Request::new(method, words.next().unwrap_or(""));
    req.headers = headers;
    Some(req)
}

/// A response can be built and routed: the top Via names a transport and
/// a host (parameters aside: RFC 4475 §3.1.2.1 still wants its 400), and
/// the CSeq has a number and a method to echo.
fn answerable(h: &Headers) -> bool {
    let via_ok = h
        .get(Hdr::Via)
        .and_then(|v| split_list(v).next())
        .is_some_and(|top| {
            let bare = top.split(';').next().unwrap_or("");
            // Version aside too: badvers (RFC 4475 §3.1.2.16) gets its 505.
            Via::parse(&normalise_version(bare)).is_ok()
        });
    let cseq_ok = h.get(Hdr::CSeq).is_some_and(|v| {
        let mut it = v.split_ascii_whitespace();
        let n = it.next().unwrap_or("");
        let m = it.next().unwrap_or("");
        !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && Method::from_token(m).is_some()
    });
    via_ok && cseq_ok
}

/// `SIP/x.y/T host` → `SIP/2.0/T host`, so routability does not depend on
/// the version we refuse with 505.
fn normalise_version(via: &str) -> String {
    let mut parts = via.splitn(3, '/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(name), Some(_), Some(rest)) => format!("{name}/2.0/{rest}"),
        _ => via.to_string(),
    }
}

/// Why a request is refused, and what the refusal carries.
#[derive(Debug)]
struct Problem {
    status: u16,
    /// Said in a `Warning: 399` (RFC 3261 §20.43) for 400s and 406s.
    warning: Option<String>,
    /// Extra header lines (Allow, Unsupported, Accept…).
    extra: Vec<(&'static str, String)>,
}

impl Problem {
    fn new(status: u16, warning: &str) -> Problem {
        Problem {
            status,
            warning: Some(warning.to_string()),
            extra: Vec::new(),
        }
    }

    fn bare(status: u16) -> Problem {
        Problem {
            status,
            warning: None,
            extra: Vec::new(),
        }
    }

    fn with(mut self, name: &'static str, value: String) -> Problem {
        self.extra.push((name, value));
        self
    }

    /// The stateless response (RFC 3261 §8.2.6): Via, From, To, Call-ID and
    /// CSeq copied, a To tag added (§8.2.6.2; random, seeded from the
    /// message so the same retransmission gets the same tag), Content-Length 0.
    fn response(self, req: &Request, data: &[u8]) -> Response {
        let mut r = Response::to(req, self.status);
        // A To we cannot read is echoed untouched: a tag appended inside an
        // unterminated quote (RFC 4475 §3.1.2.6) would only add garbage.
        let to_ok = r.headers.get(Hdr::To).map(NameAddr::parse);
        if matches!(to_ok, Some(Ok(ref to)) if to.tag.is_none()) {
            r.set_to_tag(&Rng::new(fnv1a(data)).token(10));
        }
        for (name, value) in self.extra {
            r.headers.push(name, value);
        }
        if let Some(w) = self.warning {
            r.headers
                .push("Warning", format!("399 hotline \"{}\"", quotable(&w)));
        }
        r
    }
}

/// FNV-1a: a cheap, stable seed from the message bytes.
fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Text safe inside a quoted-string: printable ASCII, no `"` or `\`, short.
fn quotable(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii() && !c.is_ascii_control())
        .map(|c| if c == '"' || c == '\\' { '\'' } else { c })
        .take(120)
        .collect()
}

/// A response is accepted when it is well formed and carries exactly one
/// Via (ours); anything else is dropped.
fn check_response(r: Response, bad_version: bool) -> Verdict {
    let malformed = Verdict::Drop(DropReason::MalformedResponse);
    if bad_version {
        return malformed;
    }
    let Some(vias) = elements(&r.headers, Hdr::Via) else {
        return malformed;
    };
    match vias.as_slice() {
        // RFC 3261 §8.1.3.3: more than one Via in a response to a UAC
        // means it was misrouted (RFC 4475 §3.3.10: a broadcast Via).
        [top] if Via::parse(top).is_ok() => {}
        [_] | [] => return malformed,
        _ => return Verdict::Drop(DropReason::ResponseViaCount),
    }
    let well_formed = single_valued_agree(&r.headers).is_none()
        && [Hdr::From, Hdr::To]
            .iter()
            .all(|&k| r.headers.get(k).is_some_and(|v| NameAddr::parse(v).is_ok()))
        && r.headers.get(Hdr::CallId).is_some_and(valid_call_id)
        // RFC 4475 §3.1.2.5: an out-of-range CSeq gets the response dropped.
        && r.cseq().is_some();
    if well_formed {
        Verdict::Accept(Message::Response(r))
    } else {
        malformed
    }
}

/// The comma-separated elements of every line of `kind`; `None` if an
/// element is empty (`a,,b`, RFC 4475 §3.1.2.1).
fn elements(h: &Headers, kind: Hdr) -> Option<Vec<&str>> {
    let mut out = Vec::new();
    for line in h.all(kind) {
        let before = out.len();
        out.extend(split_list(line));
        if out.len() - before != top_level_commas(line) + 1 {
            return None;
        }
    }
    Some(out)
}

/// Commas outside quotes and `<>`: `split_list` drops empty elements, so
/// comparing the two finds them.
fn top_level_commas(v: &str) -> usize {
    let (mut n, mut quoted, mut angle, mut escape) = (0, false, false, false);
    for b in v.bytes() {
        if escape {
            escape = false;
            continue;
        }
        match b {
            b'\\' if quoted => escape = true,
            b'"' => quoted = !quoted,
            b'<' if !quoted => angle = true,
            b'>' if !quoted => angle = false,
            b',' if !quoted && !angle => n += 1,
            _ => {}
        }
    }
    n
}

/// `callid = word [ "@" word ]` (RFC 3261 §25.1), read liberally: one
/// non-empty run of visible characters.
fn valid_call_id(v: &str) -> bool {
    !v.is_empty() && v.chars().all(|c| !c.is_whitespace() && !c.is_control())
}

/// Single-valued headers repeated with different values (RFC 4475 §3.3.8):
/// the first offender.
fn single_valued_agree(h: &Headers) -> Option<&'static str> {
    const SINGLE: [(Hdr, &str); 6] = [
        (Hdr::CallId, "Call-ID"),
        (Hdr::CSeq, "CSeq"),
        (Hdr::From, "From"),
        (Hdr::To, "To"),
        (Hdr::MaxForwards, "Max-Forwards"),
        (Hdr::ContentLength, "Content-Length"),
    ];
    SINGLE.iter().find_map(|&(kind, name)| {
        let mut values = h.all(kind);
        let first = values.next()?;
        values.any(|v| v != first).then_some(name)
    })
}

/// The first reason to refuse a parsed request, in RFC 3261 §8.2 order.
fn request_problem(req: &Request, bad_version: bool, policy: &Policy) -> Option<Problem> {
    let h = &req.headers;

    // RFC 3261 §21.5.6, RFC 4475 §3.1.2.16: we speak SIP/2.0 only.
    if bad_version {
        return Some(Problem::bare(505));
    }

    // --- syntax: RFC 3261 §8.1.1 mandatory headers, §20 grammar ---
    for (kind, name) in [
        (Hdr::Via, "Via"),
        (Hdr::From, "From"),
        (Hdr::To, "To"),
        (Hdr::CallId, "Call-ID"),
        (Hdr::CSeq, "CSeq"),
    ] {
        // Max-Forwards is mandatory for RFC 3261 UACs but absent from
        // RFC 2543 requests we still accept (RFC 4475 §3.4.1).
        if h.get(kind).is_none() {
            return Some(Problem::new(400, &format!("missing {name} header")));
        }
    }
    if let Some(name) = single_valued_agree(h) {
        return Some(Problem::new(400, &format!("conflicting {name} headers")));
    }
    let Some(vias) = elements(h, Hdr::Via) else {
        return Some(Problem::new(400, "empty Via element"));
    };
    for v in &vias {
        if let Err(e) = Via::parse(v) {
            return Some(Problem::new(400, &e.to_string()));
        }
    }
    // RFC 4475 §3.2.1: the magic cookie with no transaction identifier;
    // refused statelessly rather than matched RFC 2543-style.
    if vias
        .first()
        .and_then(|v| Via::parse(v).ok())
        .and_then(|v| v.branch)
        .is_some_and(|b| b == crate::sip::msg::MAGIC_COOKIE)
    {
        return Some(Problem::new(400, "Via branch is only the magic cookie"));
    }
    for (kind, name) in [(Hdr::From, "From"), (Hdr::To, "To")] {
        if let Some(Err(e)) = h.get(kind).map(NameAddr::parse) {
            return Some(Problem::new(400, &format!("bad {name}: {e}")));
        }
    }
    if !h.get(Hdr::CallId).is_some_and(valid_call_id) {
        return Some(Problem::new(400, "malformed Call-ID"));
    }
    let Some((seq, cseq_method)) = req.cseq() else {
        return Some(Problem::new(400, "malformed CSeq (or number above 2^32-1)"));
    };
    // RFC 3261 §8.1.1.5: the sequence number is below 2^31.
    if seq > 0x7fff_ffff {
        return Some(Problem::new(400, "CSeq number not below 2^31"));
    }
    if let Some(mf) = h.get(Hdr::MaxForwards) {
        // §20.22: 1*DIGIT. Out of 0-255 it is ignored (RFC 4475 §3.1.2.4).
        if mf.is_empty() || !mf.bytes().all(|b| b.is_ascii_digit()) {
            return Some(Problem::new(400, "malformed Max-Forwards"));
        }
    }
    for (kind, name) in [
        (Hdr::Contact, "Contact"),
        (Hdr::Route, "Route"),
        (Hdr::RecordRoute, "Record-Route"),
    ] {
        let Some(list) = elements(h, kind) else {
            return Some(Problem::new(400, &format!("empty {name} element")));
        };
        for e in list {
            // §20.10: `*` only in REGISTER.
            if kind == Hdr::Contact && e == "*" && req.method == Method::Register {
                continue;
            }
            if let Err(err) = NameAddr::parse(e) {
                return Some(Problem::new(400, &format!("bad {name}: {err}")));
            }
        }
    }
    let content_type = h.get(Hdr::ContentType).map(media_type);
    if matches!(content_type, Some(None)) {
        return Some(Problem::new(400, "malformed Content-Type"));
    }
    // §20.15: Content-Type MUST be present if the body is not empty.
    if !req.body.is_empty() && content_type.is_none() {
        return Some(Problem::new(400, "body without Content-Type"));
    }
    // §19.1.1 (table): headers are not allowed in a Request-URI
    // (RFC 4475 §3.1.2.11).
    if request_uri_has_headers(&req.uri) {
        return Some(Problem::new(400, "Request-URI carries headers"));
    }

    // --- §8.2.1 method inspection ---
    if !policy.allow.contains(&req.method) {
        let allow = policy
            .allow
            .iter()
            .map(Method::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        // 501 for a method we do not know at all (§21.5.2, RFC 4475
        // §3.1.1.2, §3.1.2.18), 405 for one we know but do not do.
        let status = if matches!(req.method, Method::Other(_)) {
            501
        } else {
            405
        };
        return Some(Problem::bare(status).with("Allow", allow));
    }
    // §8.1.1.5 / RFC 4475 §3.1.2.17: CSeq carries the request's method.
    if cseq_method != req.method {
        return Some(Problem::new(400, "CSeq method does not match the request"));
    }

    // --- §8.2.2.1 Request-URI scheme ---
    let scheme = req.uri.split(':').next().unwrap_or("");
    if !["sip", "sips", "tel"]
        .iter()
        .any(|s| s.eq_ignore_ascii_case(scheme))
    {
        return Some(Problem::bare(416));
    }
    // §10.2: the To of a REGISTER is the address-of-record, a SIP or SIPS
    // URI (RFC 4475 §3.3.4).
    if req.method == Method::Register {
        let aor = h
            .get(Hdr::To)
            .and_then(|t| NameAddr::parse(t).ok())
            .map(|n| n.uri.split(':').next().unwrap_or("").to_ascii_lowercase());
        if !matches!(aor.as_deref(), Some("sip" | "sips")) {
            return Some(Problem::new(400, "REGISTER To is not a SIP or SIPS URI"));
        }
    }

    // §16.3 step 2 is the proxy rule; a B2BUA forwarding an INVITE to its
    // other leg must stop a loop the same way (RFC 7332). Other requests
    // are ours to answer: a UAS processes Max-Forwards 0 as if positive
    // (RFC 4475 §3.3.11).
    if req.method == Method::Invite && h.get(Hdr::MaxForwards).map(str::trim) == Some("0") {
        return Some(Problem::bare(483));
    }

    // --- §8.2.2.3 Require (not for ACK or CANCEL) ---
    if req.method != Method::Ack && req.method != Method::Cancel {
        let unsupported: Vec<&str> = h
            .elements(Hdr::Require)
            .into_iter()
            .filter(|tag| !policy.supported.iter().any(|s| s.eq_ignore_ascii_case(tag)))
            .collect();
        if !unsupported.is_empty() {
            return Some(Problem::bare(420).with("Unsupported", unsupported.join(", ")));
        }
    }

    // --- §8.2.3 content processing: the bodies we interpret ---
    if matches!(req.method, Method::Invite | Method::Update) && !req.body.is_empty() {
        let encoding_ok = h
            .elements(Hdr::ContentEncoding)
            .iter()
            .all(|e| e.eq_ignore_ascii_case("identity"));
        if !encoding_ok {
            return Some(Problem::bare(415).with("Accept-Encoding", "identity".into()));
        }
        let ct = content_type.flatten().unwrap_or_default();
        if ct != "application/sdp" && ct != "multipart/mixed" {
            return Some(Problem::bare(415).with("Accept", ACCEPT.into()));
        }
    }
    // RFC 4475 §3.3.15: an INVITE whose Accept rules out SDP cannot get a
    // session answer from us.
    if req.method == Method::Invite {
        let accept = h.elements(Hdr::Accept);
        let sdp_ok = accept.is_empty()
            || accept.iter().any(|a| {
                let a = a
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase();
                a == "application/sdp" || a == "application/*" || a == "*/*"
            });
        if !sdp_ok {
            return Some(Problem::new(
                406,
                "only application/sdp answers are possible",
            ));
        }
    }
    None
}

/// `media-type = m-type SLASH m-subtype *(SEMI m-parameter)` (RFC 3261
/// §20.15): the lower-cased `type/subtype`, `None` if malformed.
fn media_type(v: &str) -> Option<String> {
    let main = v.split(';').next().unwrap_or("");
    let (t, s) = main.split_once('/')?;
    let (t, s) = (t.trim(), s.trim());
    let token = |x: &str| !x.is_empty() && x.bytes().all(crate::sip::msg::is_token_char);
    (token(t) && token(s)).then(|| format!("{t}/{s}").to_ascii_lowercase())
}

/// A `sip:`/`sips:` Request-URI with `?headers` after its host part.
fn request_uri_has_headers(uri: &str) -> bool {
    let Some((scheme, rest)) = uri.split_once(':') else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case("sip") && !scheme.eq_ignore_ascii_case("sips") {
        return false;
    }
    // The user part may contain `?` (RFC 4475 §3.1.1.2); the host part may not.
    let hostpart = rest.split_once('@').map_or(rest, |(_, h)| h);
    hostpart.contains('?')
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTIONS: &str = "OPTIONS sip:12345@gw.example SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK776asdhds\r\n\
Max-Forwards: 70\r\n\
To: <sip:12345@gw.example>\r\n\
From: <sip:13800138000@carrier.example>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.example\r\n\
CSeq: 1 OPTIONS\r\n\
Content-Length: 0\r\n\r\n";

    fn reply(v: Verdict) -> Response {
        match v {
            Verdict::Reply(r) => r,
            other => panic!("expected a reply, got {other:?}"),
        }
    }

    #[test]
    fn accepts_a_plain_options() {
        assert!(matches!(
            check(OPTIONS.as_bytes(), &Policy::default()),
            Verdict::Accept(Message::Request(_))
        ));
    }

    #[test]
    fn a_refusal_is_a_correct_response_with_a_stable_to_tag() {
        let bad = OPTIONS.replace("CSeq: 1 OPTIONS", "CSeq: 1 INVITE");
        let r = reply(check(bad.as_bytes(), &Policy::default()));
        assert_eq!(r.status, 400);
        assert_eq!(r.call_id(), Some("a84b4c76e66710@pc33.example"));
        assert_eq!(r.headers.get(Hdr::CSeq), Some("1 INVITE"));
        let tag = r.to_tag().expect("To tag");
        let again = reply(check(bad.as_bytes(), &Policy::default()));
        assert_eq!(again.to_tag(), Some(tag));
        assert!(r
            .headers
            .get_named("Warning")
            .is_some_and(|w| w.starts_with("399 hotline \"")));
        // It parses as a response and is accepted as one.
        assert!(matches!(
            check(&r.to_bytes(), &Policy::default()),
            Verdict::Accept(Message::Response(_))
        ));
    }

    #[test]
    fn ack_is_never_answered() {
        let ack = OPTIONS
            .replace("OPTIONS sip", "ACK sip")
            .replace("CSeq: 1 OPTIONS", "CSeq: 1 INVITE");
        assert!(matches!(
            check(ack.as_bytes(), &Policy::default()),
            Verdict::Drop(DropReason::AckMalformed)
        ));
    }

    #[test]
    fn too_large_requests_get_513() {
        let policy = Policy {
            max_message_bytes: 100,
            ..Policy::default()
        };
        assert_eq!(reply(check(OPTIONS.as_bytes(), &policy)).status, 513);
    }

    #[test]
    fn labels_are_distinct() {
        let all = [
            DropReason::KeepAlive,
            DropReason::TooLarge,
            DropReason::Malformed,
            DropReason::MalformedResponse,
            DropReason::AckMalformed,
            DropReason::ResponseViaCount,
        ];
        let mut labels: Vec<_> = all.iter().map(DropReason::label).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), all.len());
    }
}
