//! SDP: our own session-description model, offer/answer for the anchored
//! media plane, and the builders that point each leg at our RTP ports.
//!
//! Everything above this file sees [`SessionDesc`], [`Media`], [`Codec`],
//! [`Negotiated`] and [`SdpError`]; nothing else names the vendor SDP
//! parser (the crates.io `sdp` crate, pinned with `=`), just as
//! `sip/msg.rs` hides the SIP grammar.
//!
//! # What it implements
//!
//! - **RFC 8866 (RFC 4566)**: the line grammar `<type>=<value>`, the
//!   session/media split at `m=` (§5.14), `o=` (§5.2), `c=` at session or
//!   media level (§5.7, IPv4 and IPv6, a multicast `/ttl` suffix dropped),
//!   `a=rtpmap` (§6.6), `a=ptime` / `a=maxptime` (§6.4, §6.5), the
//!   direction attributes at session or media level (§6.7, media level
//!   wins, default `sendrecv`), `a=rtcp` (RFC 3605, port only). The RFC 3551
//!   static audio payload types (0 PCMU, 8 PCMA, 18 G729, …) are known
//!   without an `a=rtpmap`; codec names compare case-insensitively.
//! - **RFC 3264 §5–8** for the gateway as answerer ([`negotiate`] +
//!   [`answer`]) and as offerer ([`offer`] + [`answered`]): the answer has
//!   as many m-lines as the offer, in the same order (§6); every stream but
//!   the one audio stream we anchor is rejected with port 0, keeping its
//!   formats; an offered port 0 stays port 0 (§6); the answering direction
//!   mirrors the offer (§6.1); `o=` keeps its session id per leg and bumps
//!   its version only when our SDP changes (§8); hold is detected as
//!   `sendonly`/`inactive` (§8.4) or the RFC 2543 `c=0.0.0.0` (also `::`),
//!   which we read as "do not send to me".
//! - **RFC 5761 §5.1.1**: `a=rtcp-mux` is accepted when offered.
//! - **RFC 4733 §7**: `telephone-event/8000` is answered with the offerer's
//!   payload type and `a=fmtp:<pt> 0-15` (events 0–15, the DTMF digits; an
//!   absent fmtp means the same, §7.1.1).
//! - **RFC 3261 §20.43**: every refusal is an [`SdpError`] that names its
//!   answer: 400 for a body that does not parse, 488 with a `Warning` code
//!   (301, 302, 304, 305) for one we cannot accept ([`SdpError::status`],
//!   [`SdpError::warning_header`]).
//!
//! # What it deliberately does not do
//!
//! No ICE (`a=candidate` is ignored), no SRTP/SDES/DTLS-SRTP (an
//! `RTP/SAVP(F)` or `UDP/TLS/...` audio stream is not usable: 488/302), no
//! BUNDLE, no multicast (488/301), no video or T.38 (rejected with port 0).
//! Browser legs (WebRTC) come later through str0m, which does its own SDP.
//! Our offers do not offer `rtcp-mux` (carriers rarely support it; RTCP
//! goes to port + 1). Transcoding beyond G.711 is not negotiated: the codec
//! list is PCMA and PCMU.
//!
//! # What the vendor parser does, and where we help it
//!
//! The `sdp` crate (webrtc-rs, 0.17.2) parses the line structure, `v=`,
//! `o=`, `c=`, `t=`, the `m=` port and formats, and splits attributes into
//! key and value; we read the attributes ourselves. Checked against
//! real-world SDP (see `tests::vendor_limits`, which pins each finding):
//!
//! - **LF-only line ends**: handled by the vendor (it skips CR and LF).
//! - **Missing `s=`** (some SBCs) or **missing `t=`** (some softphones and
//!   older carriers): the vendor's state machine refuses the body
//!   (`SdpInvalidSyntax`). We insert `s=-` and `t=0 0`.
//! - **Session lines out of RFC order** (`a=` before `t=`, `c=` after `t=`,
//!   `b=` after `c=` is fine): the vendor refuses any order but RFC 8866
//!   §5's. We sort the session-level lines into that order (stable, so
//!   repeated `t=`/`r=` and `a=` keep their relative order) before handing
//!   them over. Media-level lines may come in any order; the vendor agrees.
//! - **`m=` lines with a media type or protocol outside its small lists**
//!   (`m=image 0 udptl t38` is fine; `TCP/RTP/AVP`, `TCP/MRCPv2`, `UDP/BFCP`,
//!   lower-case `rtp/avp` are not): the vendor refuses the whole body, so a
//!   BFCP or MRCP stream beside the audio would fail the call. We read
//!   media type, protocol and `<fmt>` tokens ourselves and give the vendor
//!   a placeholder (`application ... UDP`) where it would refuse; the
//!   stream is then rejected with port 0 as RFC 3264 §6 wants.
//! - **Whitespace around lines** (bodies pasted from SIPp XML): trimmed.
//! - **Non-UTF-8 bytes** (an `s=` in another `a=charset`): read lossily;
//!   nothing we use can contain them.
//! - Unknown attributes are kept by the vendor as key/value and ignored by
//!   us. Unknown type letters (`x=`) are refused (400), as RFC 8866 §5
//!   requires.
//!
//! Neither the vendor nor our code panicked under the `sdp` fuzz target
//! (`fuzz/fuzz_targets/sdp.rs`: parse, negotiate, answer, re-parse):
//! 378,732 runs in 120 s from the `testdata/sdp` seeds, no crash.

use std::fmt::{self, Write as _};
use std::io::Cursor;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::RangeInclusive;

use sdp::SessionDescription as VendorSdp;

/// Larger bodies are refused unparsed (400). SIP offers are a few hundred
/// bytes; a WebRTC offer with video and ICE a few kilobytes.
pub const MAX_SDP_BYTES: usize = 64 * 1024;

/// The ptime (ms) used when the offer says none or one outside the range.
pub const DEFAULT_PTIME: u32 = 20;

/// The ptimes (ms) we accept from an offer.
pub const PTIME_RANGE: RangeInclusive<u32> = 10..=30;

/// The telephone-event payload type in our own offers.
pub const TELEPHONE_EVENT_PT: u8 = 101;

// ---------------------------------------------------------------- model --

/// A parsed session description (RFC 8866 §5), the parts the gateway uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDesc {
    /// `o=` (RFC 8866 §5.2).
    pub origin: Origin,
    /// The `m=` sections, in order.
    pub media: Vec<Media>,
}

/// The `o=` line: who made this description and which version it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// `<username>`, `-` when the offerer has none.
    pub username: String,
    /// `<sess-id>`: fixed for the life of a session.
    pub session_id: u64,
    /// `<sess-version>`: changes when the description changes (RFC 3264 §8).
    pub version: u64,
    /// `<unicast-address>` as written (an address or a host name).
    pub addr: String,
}

/// One `m=` section (RFC 8866 §5.14) with the attributes we read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    /// `<media>` as written: `audio`, `video`, `image`, `application`, ….
    pub kind: String,
    /// `<port>`; 0 means the stream is declined or disabled (RFC 3264 §5.1).
    pub port: u16,
    /// `<proto>` as written, e.g. `RTP/AVP`.
    pub proto: String,
    /// The `<fmt>` tokens that are RTP payload types (0–127), in order.
    pub formats: Vec<u8>,
    /// Every `<fmt>` token as written (for a non-RTP stream the only
    /// record of its formats; a rejected stream echoes them).
    pub fmt: Vec<String>,
    /// The media-level `c=` address, else the session-level one. `None`
    /// only for a stream with port 0.
    pub connection: Option<IpAddr>,
    /// The payload types we can name, in `formats` order: from
    /// `a=rtpmap`, or the RFC 3551 static table.
    pub codecs: Vec<Codec>,
    /// `a=ptime` (media level, else session level), if it parsed.
    pub ptime: Option<u32>,
    /// `a=maxptime`, if it parsed.
    pub maxptime: Option<u32>,
    /// The direction attribute (media level, else session level, else
    /// `sendrecv`).
    pub direction: Direction,
    /// `a=rtcp-mux` is present (RFC 5761).
    pub rtcp_mux: bool,
    /// `a=rtcp:<port>` (RFC 3605), the address part ignored.
    pub rtcp: Option<u16>,
}

/// A payload format: `a=rtpmap:<pt> <name>/<rate>[/<channels>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Codec {
    /// The RTP payload type.
    pub pt: u8,
    /// The encoding name as written (compare with [`Codec::is`]).
    pub name: String,
    /// The clock rate (Hz).
    pub rate: u32,
    /// Audio channels (1 unless the rtpmap says otherwise).
    pub channels: u16,
    /// `a=fmtp:<pt> …` parameters, if any.
    pub fmtp: Option<String>,
}

/// The codecs the gateway's media plane handles, for preference lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CodecId {
    /// G.711 A-law, static payload type 8.
    Pcma,
    /// G.711 µ-law, static payload type 0.
    Pcmu,
}

/// A stream's direction (RFC 8866 §6.7, RFC 3264 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Direction {
    /// Both ways (the default).
    #[default]
    SendRecv,
    /// The writer only sends.
    SendOnly,
    /// The writer only receives.
    RecvOnly,
    /// Neither.
    Inactive,
}

// ---------------------------------------------------------------- errors --

/// Why an SDP body was refused; each names the SIP answer it maps to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// The body does not parse as SDP: 400.
    #[error("malformed SDP: {0}")]
    Malformed(String),
    /// A `c=` address is not an IP literal of its stated type, or is
    /// multicast: 488, Warning 301.
    #[error("unusable connection address `{0}`")]
    AddressFormat(String),
    /// Audio is offered only over a transport we do not do (SRTP, TCP):
    /// 488, Warning 302.
    #[error("no audio stream over RTP/AVP (offered `{0}`)")]
    Transport(String),
    /// No audio stream with a usable port: 488, Warning 304.
    #[error("no usable audio stream")]
    NoAudio,
    /// Audio is offered, but with no codec we handle: 488, Warning 305.
    #[error("no common codec (offered: {0})")]
    NoCommonCodec(String),
    /// An answer to our offer has a different number of m-lines
    /// (RFC 3264 §6): 488, Warning 307 when it has to be answered at all.
    #[error("the answer has {answered} m-lines, our offer {offered}")]
    AnswerShape {
        /// m-lines in our offer.
        offered: usize,
        /// m-lines in the answer.
        answered: usize,
    },
    /// The answer to our offer declined the audio stream (port 0): 488,
    /// Warning 304.
    #[error("the answer declined the audio stream")]
    Declined,
}

impl SdpError {
    /// The SIP status code this refusal answers with.
    pub fn status(&self) -> u16 {
        match self {
            SdpError::Malformed(_) => 400,
            _ => 488,
        }
    }

    /// The RFC 3261 §20.43 warning code and text, for a 488.
    pub fn warning(&self) -> Option<(u16, &'static str)> {
        match self {
            SdpError::Malformed(_) => None,
            SdpError::AddressFormat(_) => Some((301, "Incompatible network address formats")),
            SdpError::Transport(_) => Some((302, "Incompatible transport protocol")),
            SdpError::NoAudio | SdpError::Declined => Some((304, "Media type not available")),
            SdpError::NoCommonCodec(_) => Some((305, "Incompatible media format")),
            SdpError::AnswerShape { .. } => {
                Some((307, "Session description parameter not understood"))
            }
        }
    }

    /// The `Warning` header value, `305 <agent> "Incompatible media
    /// format"`, with `agent` our host (RFC 3261 §20.43).
    pub fn warning_header(&self, agent: &str) -> Option<String> {
        self.warning()
            .map(|(code, text)| format!("{code} {agent} \"{text}\""))
    }
}

// ---------------------------------------------------------------- codecs --

impl Codec {
    /// A codec from its parts, mono, no fmtp.
    pub fn new(pt: u8, name: &str, rate: u32) -> Codec {
        Codec {
            pt,
            name: name.to_owned(),
            rate,
            channels: 1,
            fmtp: None,
        }
    }

    /// Whether this is `name/rate`, the name compared case-insensitively.
    pub fn is(&self, name: &str, rate: u32) -> bool {
        self.name.eq_ignore_ascii_case(name) && self.rate == rate
    }

    /// Which of our codecs this is, if any.
    pub fn id(&self) -> Option<CodecId> {
        [CodecId::Pcma, CodecId::Pcmu]
            .into_iter()
            .find(|id| self.is(id.name(), 8000) && self.channels == 1)
    }

    /// Whether this is `telephone-event/8000` (RFC 4733).
    pub fn is_telephone_event(&self) -> bool {
        self.is("telephone-event", 8000)
    }

    fn same_format(&self, other: &Codec) -> bool {
        self.is(&other.name, other.rate) && self.channels == other.channels
    }
}

impl CodecId {
    /// The rtpmap encoding name.
    pub fn name(self) -> &'static str {
        match self {
            CodecId::Pcma => "PCMA",
            CodecId::Pcmu => "PCMU",
        }
    }

    /// The static payload type (RFC 3551 §6).
    pub fn static_pt(self) -> u8 {
        match self {
            CodecId::Pcma => 8,
            CodecId::Pcmu => 0,
        }
    }

    /// The codec with its static payload type.
    pub fn codec(self) -> Codec {
        Codec::new(self.static_pt(), self.name(), 8000)
    }
}

/// RFC 3551 §6 table 4: the static audio payload types.
fn static_codec(pt: u8) -> Option<Codec> {
    let (name, rate, channels) = match pt {
        0 => ("PCMU", 8000, 1),
        3 => ("GSM", 8000, 1),
        4 => ("G723", 8000, 1),
        5 => ("DVI4", 8000, 1),
        6 => ("DVI4", 16000, 1),
        7 => ("LPC", 8000, 1),
        8 => ("PCMA", 8000, 1),
        9 => ("G722", 8000, 1),
        10 => ("L16", 44100, 2),
        11 => ("L16", 44100, 1),
        12 => ("QCELP", 8000, 1),
        13 => ("CN", 8000, 1),
        14 => ("MPA", 90000, 1),
        15 => ("G728", 8000, 1),
        16 => ("DVI4", 11025, 1),
        17 => ("DVI4", 22050, 1),
        18 => ("G729", 8000, 1),
        _ => return None,
    };
    Some(Codec {
        channels,
        ..Codec::new(pt, name, rate)
    })
}

// ------------------------------------------------------------- direction --

impl Direction {
    /// The attribute name.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    fn parse(key: &str) -> Option<Direction> {
        match key {
            "sendrecv" => Some(Direction::SendRecv),
            "sendonly" => Some(Direction::SendOnly),
            "recvonly" => Some(Direction::RecvOnly),
            "inactive" => Some(Direction::Inactive),
            _ => None,
        }
    }

    /// Whether the writer sends.
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// Whether the writer receives.
    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }

    fn from_flags(sends: bool, receives: bool) -> Direction {
        match (sends, receives) {
            (true, true) => Direction::SendRecv,
            (true, false) => Direction::SendOnly,
            (false, true) => Direction::RecvOnly,
            (false, false) => Direction::Inactive,
        }
    }

    /// The direction seen from the other end: what an answerer writes for
    /// this offer (RFC 3264 §6.1): sendonly ↔ recvonly, the others as is.
    pub fn reverse(self) -> Direction {
        Direction::from_flags(self.receives(), self.sends())
    }

    fn intersect(self, other: Direction) -> Direction {
        Direction::from_flags(
            self.sends() && other.sends(),
            self.receives() && other.receives(),
        )
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// ----------------------------------------------------------------- parse --

/// Parse an SDP body (RFC 8866). Malformed input is [`SdpError::Malformed`]
/// (400), a `c=` that is not an IP literal of its type
/// [`SdpError::AddressFormat`] (488/301); never a panic.
pub fn parse(body: &[u8]) -> Result<SessionDesc, SdpError> {
    if body.len() > MAX_SDP_BYTES {
        return Err(SdpError::Malformed(format!(
            "body of {} bytes is over {MAX_SDP_BYTES}",
            body.len()
        )));
    }
    let text = String::from_utf8_lossy(body);
    let norm = normalise(&text)?;
    let vendor = vendor_parse(&norm.text)?;
    convert(&vendor, &norm.mlines)
}

fn vendor_parse(text: &str) -> Result<VendorSdp, SdpError> {
    VendorSdp::unmarshal(&mut Cursor::new(text.as_bytes()))
        .map_err(|e| SdpError::Malformed(e.to_string()))
}

/// What we read from an `m=` line ourselves.
#[derive(Debug)]
struct RawMline {
    kind: String,
    proto: String,
    fmt: Vec<String>,
}

#[derive(Debug)]
struct Normalised {
    text: String,
    mlines: Vec<RawMline>,
}

/// RFC 8866 §5 order of the session-level lines (`r=` rides with its `t=`).
fn session_rank(kind: u8) -> Option<u8> {
    Some(match kind {
        b'v' => 0,
        b'o' => 1,
        b's' => 2,
        b'i' => 3,
        b'u' => 4,
        b'e' => 5,
        b'p' => 6,
        b'c' => 7,
        b'b' => 8,
        b't' | b'r' => 9,
        b'z' => 10,
        b'k' => 11,
        b'a' => 12,
        _ => return None,
    })
}

const VENDOR_MEDIA: [&str; 6] = ["audio", "video", "text", "application", "message", "image"];
const VENDOR_PROTO: [&str; 10] = [
    "UDP", "RTP", "AVP", "SAVP", "SAVPF", "TLS", "DTLS", "SCTP", "AVPF", "udptl",
];

/// Line ends to CRLF, surrounding whitespace trimmed, session lines in RFC
/// order with `s=`/`t=` supplied, `m=` lines the vendor would refuse given
/// placeholders. See the module docs for why each step exists.
fn normalise(text: &str) -> Result<Normalised, SdpError> {
    let mut session: Vec<(u8, &str)> = Vec::new();
    let mut media: Vec<Vec<String>> = Vec::new();
    let mut mlines = Vec::new();
    for raw in text.split('\n') {
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        let bytes = line.as_bytes();
        let kind = bytes[0];
        if bytes.len() < 2 || bytes[1] != b'=' || !kind.is_ascii_lowercase() {
            return Err(SdpError::Malformed(format!(
                "not a `<type>=<value>` line: `{}`",
                clip(line)
            )));
        }
        // The first two bytes are ASCII, so index 2 is a char boundary.
        let value = &line[2..];
        if kind == b'm' {
            let (raw_mline, vendor_line) = read_mline(value)?;
            mlines.push(raw_mline);
            media.push(vec![vendor_line]);
            continue;
        }
        match media.last_mut() {
            Some(section) => {
                if !matches!(kind, b'i' | b'c' | b'b' | b'k' | b'a') {
                    return Err(SdpError::Malformed(format!(
                        "`{}=` inside a media section",
                        kind as char
                    )));
                }
                section.push(line.to_owned());
            }
            None => {
                if session_rank(kind).is_none() {
                    return Err(SdpError::Malformed(format!(
                        "unknown line type `{}=`",
                        kind as char
                    )));
                }
                session.push((kind, line));
            }
        }
    }
    if !session.iter().any(|(k, _)| *k == b's') {
        session.push((b's', "s=-"));
    }
    if !session.iter().any(|(k, _)| *k == b't') {
        session.push((b't', "t=0 0"));
    }
    // Stable: repeated lines of one rank keep their order.
    session.sort_by_key(|(k, _)| session_rank(*k));
    let mut out = String::with_capacity(text.len() + 16);
    for (_, line) in &session {
        out.push_str(line);
        out.push_str("\r\n");
    }
    for line in media.iter().flatten() {
        out.push_str(line);
        out.push_str("\r\n");
    }
    Ok(Normalised { text: out, mlines })
}

/// Read `<media> <port>[/<n>] <proto> <fmt> ...`; return it and the line
/// to give the vendor (placeholders where it would refuse).
fn read_mline(value: &str) -> Result<(RawMline, String), SdpError> {
    let fields: Vec<&str> = value.split_whitespace().collect();
    let [kind, port, proto, fmt @ ..] = fields.as_slice() else {
        return Err(SdpError::Malformed(format!(
            "short m-line `{}`",
            clip(value)
        )));
    };
    if fmt.is_empty() {
        return Err(SdpError::Malformed(format!(
            "m-line without formats `{}`",
            clip(value)
        )));
    }
    let vendor_kind = if VENDOR_MEDIA.contains(kind) {
        kind
    } else {
        "application"
    };
    let vendor_proto = if proto.split('/').all(|p| VENDOR_PROTO.contains(&p)) {
        proto
    } else {
        "UDP"
    };
    let vendor_line = format!("m={vendor_kind} {port} {vendor_proto} {}", fmt.join(" "));
    let raw = RawMline {
        kind: (*kind).to_owned(),
        proto: (*proto).to_owned(),
        fmt: fmt.iter().map(|s| (*s).to_owned()).collect(),
    };
    Ok((raw, vendor_line))
}

fn clip(s: &str) -> String {
    s.chars().take(60).collect()
}

/// An address from a `c=` value's parts: `IP4`/`IP6` and the literal,
/// a multicast `/ttl[/n]` suffix dropped.
fn connection_addr(addrtype: &str, address: &str) -> Result<IpAddr, SdpError> {
    let literal = address.split('/').next().unwrap_or(address);
    let ip = match addrtype {
        "IP4" => literal.parse::<Ipv4Addr>().ok().map(IpAddr::V4),
        "IP6" => literal.parse::<Ipv6Addr>().ok().map(IpAddr::V6),
        _ => None,
    };
    ip.ok_or_else(|| SdpError::AddressFormat(format!("{addrtype} {}", clip(address))))
}

fn vendor_connection(
    c: Option<&sdp::description::common::ConnectionInformation>,
) -> Result<Option<IpAddr>, SdpError> {
    match c {
        None => Ok(None),
        Some(c) => match &c.address {
            None => Err(SdpError::Malformed("`c=` without an address".into())),
            Some(a) => connection_addr(&c.address_type, &a.address).map(Some),
        },
    }
}

/// The attributes of one level that we read.
#[derive(Default)]
struct Attrs {
    direction: Option<Direction>,
    ptime: Option<u32>,
    maxptime: Option<u32>,
    rtcp_mux: bool,
    rtcp: Option<u16>,
    rtpmap: Vec<Codec>,
    fmtp: Vec<(u8, String)>,
}

fn read_attrs(attrs: &[sdp::description::common::Attribute]) -> Attrs {
    let mut out = Attrs::default();
    for a in attrs {
        let value = a.value.as_deref().unwrap_or("").trim();
        match a.key.as_str() {
            "ptime" => out.ptime = value.parse().ok().or(out.ptime),
            "maxptime" => out.maxptime = value.parse().ok().or(out.maxptime),
            "rtcp-mux" => out.rtcp_mux = true,
            "rtcp" => {
                out.rtcp = value
                    .split_whitespace()
                    .next()
                    .and_then(|p| p.parse().ok())
                    .or(out.rtcp)
            }
            "rtpmap" => out.rtpmap.extend(read_rtpmap(value)),
            "fmtp" => {
                if let Some((pt, params)) = value.split_once(char::is_whitespace) {
                    if let Ok(pt) = pt.parse() {
                        out.fmtp.push((pt, params.trim().to_owned()));
                    }
                }
            }
            key => {
                if let Some(d) = Direction::parse(key) {
                    out.direction = Some(d);
                }
            }
        }
    }
    out
}

/// `<pt> <name>/<rate>[/<channels>]`; `None` if it does not read.
fn read_rtpmap(value: &str) -> Option<Codec> {
    let (pt, encoding) = value.split_once(char::is_whitespace)?;
    let pt: u8 = pt.parse().ok().filter(|pt| *pt <= 127)?;
    let mut parts = encoding.trim().split('/');
    let name = parts.next().filter(|n| !n.is_empty())?;
    let rate: u32 = parts.next()?.trim().parse().ok()?;
    let channels = match parts.next() {
        None => 1,
        Some(c) => c.trim().parse().ok()?,
    };
    Some(Codec {
        channels,
        ..Codec::new(pt, name, rate)
    })
}

fn convert(v: &VendorSdp, raw: &[RawMline]) -> Result<SessionDesc, SdpError> {
    if v.media_descriptions.len() != raw.len() {
        return Err(SdpError::Malformed("m-lines lost in parsing".into()));
    }
    let o = &v.origin;
    let origin = Origin {
        username: o.username.clone(),
        session_id: o.session_id,
        version: o.session_version,
        addr: o.unicast_address.clone(),
    };
    let session_conn = vendor_connection(v.connection_information.as_ref())?;
    let session_attrs = read_attrs(&v.attributes);
    let mut media = Vec::with_capacity(raw.len());
    for (i, (m, r)) in v.media_descriptions.iter().zip(raw).enumerate() {
        let port = u16::try_from(m.media_name.port.value)
            .map_err(|_| SdpError::Malformed(format!("m-line {i}: port out of range")))?;
        let connection = vendor_connection(m.connection_information.as_ref())?.or(session_conn);
        if connection.is_none() && port != 0 {
            return Err(SdpError::Malformed(format!("m-line {i} has no `c=`")));
        }
        let attrs = read_attrs(&m.attributes);
        let formats: Vec<u8> = r
            .fmt
            .iter()
            .filter_map(|f| f.parse::<u8>().ok())
            .filter(|pt| *pt <= 127)
            .collect();
        let codecs = formats
            .iter()
            .filter_map(|&pt| {
                let mut codec = attrs
                    .rtpmap
                    .iter()
                    .find(|c| c.pt == pt)
                    .cloned()
                    .or_else(|| static_codec(pt))?;
                codec.fmtp = attrs
                    .fmtp
                    .iter()
                    .find(|(p, _)| *p == pt)
                    .map(|(_, f)| f.clone());
                Some(codec)
            })
            .collect();
        media.push(Media {
            kind: r.kind.clone(),
            port,
            proto: r.proto.clone(),
            formats,
            fmt: r.fmt.clone(),
            connection,
            codecs,
            ptime: attrs.ptime.or(session_attrs.ptime),
            maxptime: attrs.maxptime.or(session_attrs.maxptime),
            direction: attrs
                .direction
                .or(session_attrs.direction)
                .unwrap_or_default(),
            rtcp_mux: attrs.rtcp_mux,
            rtcp: attrs.rtcp,
        });
    }
    Ok(SessionDesc { origin, media })
}

// ------------------------------------------------------------ negotiate --

/// What the gateway accepts and prefers as answerer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prefs {
    /// Our codecs, most preferred first; the first one the offer has wins.
    pub codecs: Vec<CodecId>,
    /// Accept `telephone-event/8000` (RFC 4733) when offered.
    pub telephone_event: bool,
    /// The ptimes (ms) we accept from an offer.
    pub ptime_range: RangeInclusive<u32>,
    /// The ptime (ms) when the offer has none we accept.
    pub default_ptime: u32,
}

impl Default for Prefs {
    fn default() -> Prefs {
        Prefs {
            codecs: vec![CodecId::Pcma, CodecId::Pcmu],
            telephone_event: true,
            ptime_range: PTIME_RANGE,
            default_ptime: DEFAULT_PTIME,
        }
    }
}

/// Something the negotiation adjusted without failing, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// The peer's ptime was outside the accepted range; `used` instead.
    PtimeOutOfRange {
        /// The ptime the peer asked for.
        offered: u32,
        /// The ptime we use.
        used: u32,
    },
    /// The peer put the stream on hold the RFC 2543 way (`c=0.0.0.0`).
    OldStyleHold,
    /// We wanted RFC 4733 events but the peer has no telephone-event/8000:
    /// DTMF must be detected in band.
    NoTelephoneEvent,
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Note::PtimeOutOfRange { offered, used } => {
                write!(f, "ptime {offered} ms is out of range; using {used} ms")
            }
            Note::OldStyleHold => f.write_str("hold by c=0.0.0.0 (RFC 2543)"),
            Note::NoTelephoneEvent => f.write_str("no telephone-event/8000; DTMF in band"),
        }
    }
}

/// The outcome of an offer/answer exchange for the one anchored audio
/// stream, from the gateway's side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// Index of the audio m-line in the offer.
    pub mline: usize,
    /// Where the peer wants RTP; `None` when it gave `c=0.0.0.0`.
    pub remote: Option<SocketAddr>,
    /// Where the peer wants RTCP: the RTP address under rtcp-mux, else
    /// `a=rtcp`, else the RTP port + 1.
    pub remote_rtcp: Option<SocketAddr>,
    /// The voice codec, with the payload type the peer uses for it.
    pub codec: Codec,
    /// The peer's telephone-event payload type, if agreed.
    pub telephone_event: Option<u8>,
    /// Packetisation time (ms).
    pub ptime: u32,
    /// Our direction: whether we send and receive on this leg.
    pub direction: Direction,
    /// The peer does not want to receive (`sendonly`, `inactive`, or
    /// `c=0.0.0.0`): it holds the call (RFC 3264 §8.4).
    pub hold: bool,
    /// RTP and RTCP share one port (RFC 5761).
    pub rtcp_mux: bool,
    /// What was adjusted on the way.
    pub notes: Vec<Note>,
}

/// The peer's effective direction: an unspecified address means "do not
/// send to me" whatever the attribute says (RFC 3264 §8.4).
fn effective_direction(m: &Media) -> (Direction, bool) {
    let unspecified = m.connection.is_some_and(|ip| ip.is_unspecified());
    if unspecified {
        (Direction::from_flags(m.direction.sends(), false), true)
    } else {
        (m.direction, false)
    }
}

fn is_rtp_avp(proto: &str) -> bool {
    proto.eq_ignore_ascii_case("RTP/AVP")
}

fn pick_ptime(
    asked: Option<u32>,
    maxptime: Option<u32>,
    prefs: &Prefs,
    notes: &mut Vec<Note>,
) -> u32 {
    let mut ptime = match asked {
        Some(p) if prefs.ptime_range.contains(&p) => p,
        Some(p) => {
            notes.push(Note::PtimeOutOfRange {
                offered: p,
                used: prefs.default_ptime,
            });
            prefs.default_ptime
        }
        None => prefs.default_ptime,
    };
    if let Some(max) = maxptime {
        if ptime > max && prefs.ptime_range.contains(&max) {
            ptime = max;
        }
    }
    ptime
}

fn rtcp_addr(m: &Media, remote: Option<SocketAddr>, mux: bool) -> Option<SocketAddr> {
    let rtp = remote?;
    if mux {
        return Some(rtp);
    }
    let port = m.rtcp.or_else(|| rtp.port().checked_add(1))?;
    Some(SocketAddr::new(rtp.ip(), port))
}

/// Negotiate the gateway's answer to `offer` (RFC 3264 §6): the first
/// audio m-line over RTP/AVP with a port, an address and a codec we have;
/// the codec by our preference; telephone-event/8000 with the offerer's
/// payload type; ptime within range (else the default, with a [`Note`]);
/// the answering direction; rtcp-mux if offered. Other m-lines are to be
/// rejected by [`answer`].
pub fn negotiate(offer: &SessionDesc, prefs: &Prefs) -> Result<Negotiated, SdpError> {
    let mut refusal = SdpError::NoAudio;
    for (i, m) in offer.media.iter().enumerate() {
        if !m.kind.eq_ignore_ascii_case("audio") || m.port == 0 {
            continue;
        }
        if !is_rtp_avp(&m.proto) {
            if matches!(refusal, SdpError::NoAudio) {
                refusal = SdpError::Transport(m.proto.clone());
            }
            continue;
        }
        let Some(ip) = m.connection else {
            continue;
        };
        if ip.is_multicast() {
            refusal = SdpError::AddressFormat(ip.to_string());
            continue;
        }
        let chosen = prefs
            .codecs
            .iter()
            .find_map(|id| m.codecs.iter().find(|c| c.id() == Some(*id)));
        let Some(codec) = chosen else {
            refusal = SdpError::NoCommonCodec(offered_names(m));
            continue;
        };
        let mut notes = Vec::new();
        let telephone_event = if prefs.telephone_event {
            let te = m
                .codecs
                .iter()
                .find(|c| c.is_telephone_event())
                .map(|c| c.pt);
            if te.is_none() {
                notes.push(Note::NoTelephoneEvent);
            }
            te
        } else {
            None
        };
        let ptime = pick_ptime(m.ptime, m.maxptime, prefs, &mut notes);
        let (peer, old_hold) = effective_direction(m);
        if old_hold {
            notes.push(Note::OldStyleHold);
        }
        let remote = (!ip.is_unspecified()).then(|| SocketAddr::new(ip, m.port));
        return Ok(Negotiated {
            mline: i,
            remote,
            remote_rtcp: rtcp_addr(m, remote, m.rtcp_mux),
            codec: codec.clone(),
            telephone_event,
            ptime,
            direction: peer.reverse(),
            hold: !peer.receives(),
            rtcp_mux: m.rtcp_mux,
            notes,
        });
    }
    Err(refusal)
}

fn offered_names(m: &Media) -> String {
    let mut names: Vec<String> = m
        .codecs
        .iter()
        .map(|c| format!("{}/{}", c.name, c.rate))
        .collect();
    if names.is_empty() {
        names = m.fmt.clone();
    }
    clip(&names.join(" "))
}

/// Read the peer's answer to the offer we sent (RFC 3264 §7): its address,
/// the codec it chose among ours (the first format in its answer we
/// offered), its telephone-event payload type, our resulting direction
/// and rtcp-mux. ptimes are checked against [`PTIME_RANGE`].
pub fn answered(offer_we_sent: &SessionDesc, answer: &SessionDesc) -> Result<Negotiated, SdpError> {
    if offer_we_sent.media.len() != answer.media.len() {
        return Err(SdpError::AnswerShape {
            offered: offer_we_sent.media.len(),
            answered: answer.media.len(),
        });
    }
    let (i, ours) = offer_we_sent
        .media
        .iter()
        .enumerate()
        .find(|(_, m)| m.kind.eq_ignore_ascii_case("audio") && m.port != 0)
        .ok_or(SdpError::NoAudio)?;
    let theirs = &answer.media[i];
    if theirs.port == 0 {
        return Err(SdpError::Declined);
    }
    let ip = theirs
        .connection
        .ok_or_else(|| SdpError::Malformed("answer has no `c=`".into()))?;
    if ip.is_multicast() {
        return Err(SdpError::AddressFormat(ip.to_string()));
    }
    let codec = theirs
        .codecs
        .iter()
        .filter(|c| !c.is_telephone_event())
        .find(|c| ours.codecs.iter().any(|o| o.same_format(c)))
        .ok_or_else(|| SdpError::NoCommonCodec(offered_names(theirs)))?;
    let offered_te = ours.codecs.iter().any(|c| c.is_telephone_event());
    let telephone_event = theirs
        .codecs
        .iter()
        .find(|c| offered_te && c.is_telephone_event())
        .map(|c| c.pt);
    let mut notes = Vec::new();
    if offered_te && telephone_event.is_none() {
        notes.push(Note::NoTelephoneEvent);
    }
    let prefs = Prefs::default();
    let ptime = pick_ptime(
        theirs.ptime.or(ours.ptime),
        theirs.maxptime,
        &prefs,
        &mut notes,
    );
    let (peer, old_hold) = effective_direction(theirs);
    if old_hold {
        notes.push(Note::OldStyleHold);
    }
    let rtcp_mux = ours.rtcp_mux && theirs.rtcp_mux;
    let remote = (!ip.is_unspecified()).then(|| SocketAddr::new(ip, theirs.port));
    Ok(Negotiated {
        mline: i,
        remote,
        remote_rtcp: rtcp_addr(theirs, remote, rtcp_mux),
        codec: codec.clone(),
        telephone_event,
        ptime,
        direction: ours.direction.intersect(peer.reverse()),
        hold: !peer.receives(),
        rtcp_mux,
        notes,
    })
}

// -------------------------------------------------------------- builders --

/// Our `o=` line for one leg: the session id is fixed for the leg; the
/// version goes up by one each time the SDP we send changes, and only
/// then (RFC 3264 §8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginState {
    username: String,
    session_id: u64,
    version: u64,
    last: Option<String>,
}

impl OriginState {
    /// A leg's origin: `username` (whitespace replaced, `-` if empty) and a
    /// session id the caller draws (cores take randomness from `rng`).
    pub fn new(username: &str, session_id: u64) -> OriginState {
        let username: String = username
            .chars()
            .map(|c| {
                if c.is_whitespace() || c.is_control() {
                    '-'
                } else {
                    c
                }
            })
            .collect();
        OriginState {
            username: if username.is_empty() {
                "-".into()
            } else {
                username
            },
            session_id,
            version: 1,
            last: None,
        }
    }

    /// The session id.
    pub fn session_id(&self) -> u64 {
        self.session_id
    }

    /// The version of the last SDP written.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The version for a body whose lines after `o=` are `rest`.
    fn stamp(&mut self, rest: &str) -> u64 {
        if self.last.as_deref() != Some(rest) {
            if self.last.is_some() {
                self.version = self.version.wrapping_add(1);
            }
            self.last = Some(rest.to_owned());
        }
        self.version
    }
}

/// Our side of a leg: the address and RTP port we anchor on, and the leg's
/// `o=` state.
#[derive(Debug)]
pub struct Local<'a> {
    /// Our media address (IPv4 or IPv6).
    pub addr: IpAddr,
    /// Our RTP port (even; RTCP on port + 1 unless rtcp-mux).
    pub port: u16,
    /// The leg's origin, versioned by the builders.
    pub origin: &'a mut OriginState,
}

fn addr_type(ip: IpAddr) -> &'static str {
    match ip {
        IpAddr::V4(_) => "IP4",
        IpAddr::V6(_) => "IP6",
    }
}

/// `v=` and `o=` in front of the rest, the version stamped.
fn finish(local: Local<'_>, rest: String) -> String {
    let version = local.origin.stamp(&rest);
    let mut out = String::with_capacity(rest.len() + 80);
    let _ = write!(
        out,
        "v=0\r\no={} {} {} IN {} {}\r\n{rest}",
        local.origin.username,
        local.origin.session_id,
        version,
        addr_type(local.addr),
        local.addr
    );
    out
}

fn session_head(out: &mut String, addr: IpAddr) {
    let _ = write!(out, "s=-\r\nc=IN {} {addr}\r\nt=0 0\r\n", addr_type(addr));
}

fn write_rtpmap(out: &mut String, c: &Codec) {
    let _ = write!(out, "a=rtpmap:{} {}/{}", c.pt, c.name, c.rate);
    if c.channels != 1 {
        let _ = write!(out, "/{}", c.channels);
    }
    out.push_str("\r\n");
}

/// One audio m-line as we write it.
struct AudioLine<'a> {
    port: u16,
    proto: &'a str,
    codecs: &'a [Codec],
    telephone_event: Option<u8>,
    ptime: u32,
    direction: Direction,
    rtcp_mux: bool,
}

impl AudioLine<'_> {
    fn write(&self, out: &mut String) {
        let _ = write!(out, "m=audio {} {}", self.port, self.proto);
        for c in self.codecs {
            let _ = write!(out, " {}", c.pt);
        }
        if let Some(te) = self.telephone_event {
            let _ = write!(out, " {te}");
        }
        out.push_str("\r\n");
        for c in self.codecs {
            write_rtpmap(out, c);
            if let Some(fmtp) = &c.fmtp {
                let _ = write!(out, "a=fmtp:{} {fmtp}\r\n", c.pt);
            }
        }
        if let Some(te) = self.telephone_event {
            let _ = write!(
                out,
                "a=rtpmap:{te} telephone-event/8000\r\na=fmtp:{te} 0-15\r\n"
            );
        }
        let _ = write!(out, "a=ptime:{}\r\na={}\r\n", self.ptime, self.direction);
        if self.rtcp_mux {
            out.push_str("a=rtcp-mux\r\n");
        }
    }
}

/// Our answer to `offer` as negotiated (RFC 3264 §6): our `o=` and `c=`,
/// the audio m-line on our port with the chosen codec and telephone-event,
/// `a=ptime`, the answering direction, `a=rtcp-mux` when accepted; every
/// other m-line rejected with port 0, its proto and formats kept.
pub fn answer(offer: &SessionDesc, negotiated: &Negotiated, local: Local<'_>) -> String {
    let mut rest = String::with_capacity(256);
    session_head(&mut rest, local.addr);
    for (i, m) in offer.media.iter().enumerate() {
        if i == negotiated.mline {
            let mut codec = negotiated.codec.clone();
            // The offerer's fmtp describes what it receives; ours is none.
            codec.fmtp = None;
            AudioLine {
                port: local.port,
                proto: &m.proto,
                codecs: &[codec],
                telephone_event: negotiated.telephone_event,
                ptime: negotiated.ptime,
                direction: negotiated.direction,
                rtcp_mux: negotiated.rtcp_mux,
            }
            .write(&mut rest);
        } else {
            let _ = write!(rest, "m={} 0 {} {}\r\n", m.kind, m.proto, m.fmt.join(" "));
        }
    }
    finish(local, rest)
}

/// Our offer on a leg (RFC 3264 §5): our address and port, `codecs` in
/// order with their static payload types (an empty list means PCMA, PCMU),
/// telephone-event/8000 on `telephone_event` (a dynamic type, 96–127;
/// anything else becomes [`TELEPHONE_EVENT_PT`]), `a=ptime`, `direction`
/// (`sendonly` to hold, `sendrecv` to resume). Sent again with a changed
/// direction it is a re-offer with the version bumped.
pub fn offer(
    local: Local<'_>,
    codecs: &[CodecId],
    telephone_event: Option<u8>,
    direction: Direction,
    ptime: u32,
) -> String {
    let codecs: Vec<Codec> = if codecs.is_empty() {
        vec![CodecId::Pcma.codec(), CodecId::Pcmu.codec()]
    } else {
        codecs.iter().map(|id| id.codec()).collect()
    };
    let te = telephone_event.map(|pt| {
        if (96..=127).contains(&pt) {
            pt
        } else {
            TELEPHONE_EVENT_PT
        }
    });
    let mut rest = String::with_capacity(256);
    session_head(&mut rest, local.addr);
    AudioLine {
        port: local.port,
        proto: "RTP/AVP",
        codecs: &codecs,
        telephone_event: te,
        ptime,
        direction,
        rtcp_mux: false,
    }
    .write(&mut rest);
    finish(local, rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! fixture {
        ($name:literal) => {
            include_bytes!(concat!("../../testdata/sdp/", $name, ".sdp")).as_slice()
        };
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn offer_of(body: &[u8]) -> (SessionDesc, Negotiated) {
        let offer = parse(body).unwrap();
        let neg = negotiate(&offer, &Prefs::default()).unwrap();
        (offer, neg)
    }

    fn our_answer(offer: &SessionDesc, neg: &Negotiated, origin: &mut OriginState) -> String {
        answer(
            offer,
            neg,
            Local {
                addr: ip("192.0.2.1"),
                port: 20000,
                origin,
            },
        )
    }

    /// Each workaround in the module docs, pinned: if a new vendor version
    /// changes its behaviour, this says which note to revise.
    #[test]
    fn vendor_limits() {
        let base = "v=0\r\no=- 1 1 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\nm=audio 4000 RTP/AVP 8\r\n";
        assert!(vendor_parse(base).is_ok());
        assert!(vendor_parse(&base.replace("\r\n", "\n")).is_ok(), "LF-only");
        let cases = [
            ("missing s=", base.replace("s=-\r\n", "")),
            ("missing t=", base.replace("t=0 0\r\n", "")),
            (
                "a= before t=",
                base.replace("t=0 0\r\n", "a=sendrecv\r\nt=0 0\r\n"),
            ),
            (
                "c= after t=",
                base.replace(
                    "c=IN IP4 192.0.2.9\r\nt=0 0\r\n",
                    "t=0 0\r\nc=IN IP4 192.0.2.9\r\n",
                ),
            ),
            (
                "TCP/BFCP m-line",
                format!("{base}m=application 5070 TCP/BFCP *\r\n"),
            ),
            ("lower-case proto", base.replace("RTP/AVP", "rtp/avp")),
        ];
        for (what, text) in &cases {
            assert!(vendor_parse(text).is_err(), "vendor now accepts {what}");
            let ours = parse(text.as_bytes()).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(ours.media[0].port, 4000, "{what}");
        }
    }

    #[test]
    fn sipp_default_pcmu_without_rtpmap() {
        let (offer, neg) = offer_of(fixture!("sipp_default"));
        assert_eq!(offer.origin.username, "user1");
        assert_eq!(offer.origin.session_id, 53655765);
        assert_eq!(offer.origin.version, 2353687637);
        assert_eq!(offer.media[0].codecs, vec![Codec::new(0, "PCMU", 8000)]);
        assert_eq!(neg.codec.id(), Some(CodecId::Pcmu));
        assert_eq!(neg.remote, Some(sa("127.0.0.1:6000")));
        assert_eq!(neg.remote_rtcp, Some(sa("127.0.0.1:6001")));
        assert_eq!(neg.telephone_event, None);
        assert_eq!(neg.notes, vec![Note::NoTelephoneEvent]);
        assert_eq!(neg.ptime, 20);
        assert_eq!(neg.direction, Direction::SendRecv);
        assert!(!neg.hold && !neg.rtcp_mux);
    }

    /// The SDP bodies in `sip-scenarios/*.xml`, placeholders filled in the
    /// way SIPp does, each parsed and answered.
    #[test]
    fn sip_scenario_bodies() {
        let files = [
            include_str!("../../sip-scenarios/basic-call-uac.xml"),
            include_str!("../../sip-scenarios/basic-call-uas.xml"),
            include_str!("../../sip-scenarios/early-media-uas.xml"),
            include_str!("../../sip-scenarios/load-uac.xml"),
            include_str!("../../sip-scenarios/reinvite-hold-uac.xml"),
            include_str!("../../sip-scenarios/reinvite-hold-uas.xml"),
        ];
        let mut directions = Vec::new();
        for xml in files {
            for chunk in xml.split("v=0").skip(1) {
                let sdp_text = chunk.split("]]>").next().unwrap();
                let body: String = format!("v=0{sdp_text}")
                    .lines()
                    .map(|l| l.trim())
                    .filter(|l| !l.is_empty())
                    .map(|l| {
                        l.replace("[local_ip_type]", "4")
                            .replace("[media_ip_type]", "4")
                            .replace("[local_ip]", "192.0.2.50")
                            .replace("[media_ip]", "192.0.2.50")
                            .replace("[media_port]", "6000")
                            + "\r\n"
                    })
                    .collect();
                let (offer, neg) = offer_of(body.as_bytes());
                assert_eq!(neg.codec.id(), Some(CodecId::Pcma), "{body}");
                assert_eq!(neg.remote, Some(sa("192.0.2.50:6000")));
                let expect_te = body.contains("telephone-event").then_some(101);
                assert_eq!(neg.telephone_event, expect_te);
                let mut origin = OriginState::new("hotline", 1);
                let ans = our_answer(&offer, &neg, &mut origin);
                parse(ans.as_bytes()).unwrap();
                directions.push((offer.media[0].direction, neg.direction, neg.hold));
            }
        }
        // reinvite-hold: the UAC holds with sendonly, the UAS answers recvonly.
        assert!(directions.contains(&(Direction::SendOnly, Direction::RecvOnly, true)));
        assert!(directions.contains(&(Direction::RecvOnly, Direction::SendOnly, false)));
    }

    #[test]
    fn linphone_prefers_pcma_and_te_8000() {
        let (offer, neg) = offer_of(fixture!("linphone"));
        let m = &offer.media[0];
        assert_eq!(m.formats, vec![96, 97, 98, 0, 8, 18, 101, 99, 100]);
        let opus = &m.codecs[0];
        assert!(opus.is("OPUS", 48000) && opus.channels == 2);
        assert_eq!(opus.fmtp.as_deref(), Some("useinbandfec=1"));
        let g729 = m.codecs.iter().find(|c| c.pt == 18).unwrap();
        assert!(g729.is("G729", 8000));
        assert_eq!(g729.fmtp.as_deref(), Some("annexb=yes"));
        assert_eq!(neg.codec, Codec::new(8, "PCMA", 8000));
        // Three telephone-events; only the 8 kHz one goes with G.711.
        assert_eq!(neg.telephone_event, Some(100));
    }

    #[test]
    fn zoiper_rtcp_mux_accepted() {
        let (offer, neg) = offer_of(fixture!("zoiper"));
        assert_eq!(offer.origin.session_id, 1700000000000);
        assert_eq!(neg.codec.pt, 8);
        assert_eq!(neg.telephone_event, Some(101));
        assert!(neg.rtcp_mux);
        assert_eq!(neg.remote_rtcp, neg.remote);
        let ans = our_answer(&offer, &neg, &mut OriginState::new("hotline", 9));
        assert!(ans.contains("\r\na=rtcp-mux\r\n"));
        assert!(parse(ans.as_bytes()).unwrap().media[0].rtcp_mux);
    }

    #[test]
    fn pjsua_media_level_c_and_rtcp_attribute() {
        let (offer, neg) = offer_of(fixture!("pjsua"));
        assert_eq!(offer.media[0].connection, Some(ip("192.168.0.50")));
        assert_eq!(offer.media[0].rtcp, Some(4001));
        // PCMU is offered first, PCMA is our preference.
        assert_eq!(neg.codec.id(), Some(CodecId::Pcma));
        assert_eq!(neg.telephone_event, Some(120));
        assert_eq!(neg.remote_rtcp, Some(sa("192.168.0.50:4001")));
    }

    #[test]
    fn carrier_sbc_offer_answer_golden() {
        let (offer, neg) = offer_of(fixture!("carrier_sbc"));
        assert_eq!(offer.media[0].maxptime, Some(40));
        assert_eq!(neg.ptime, 20);
        assert!(neg.notes.is_empty());
        let mut origin = OriginState::new("hotline", 4242);
        let ans = our_answer(&offer, &neg, &mut origin);
        assert_eq!(
            ans,
            "v=0\r\n\
             o=hotline 4242 1 IN IP4 192.0.2.1\r\n\
             s=-\r\n\
             c=IN IP4 192.0.2.1\r\n\
             t=0 0\r\n\
             m=audio 20000 RTP/AVP 8 101\r\n\
             a=rtpmap:8 PCMA/8000\r\n\
             a=rtpmap:101 telephone-event/8000\r\n\
             a=fmtp:101 0-15\r\n\
             a=ptime:20\r\n\
             a=sendrecv\r\n"
        );
    }

    #[test]
    fn lf_only_without_s_and_t_and_ptime_out_of_range() {
        let body = fixture!("legacy_lf_no_s_t");
        assert!(!body.contains(&b'\r'));
        let (offer, neg) = offer_of(body);
        assert_eq!(offer.media[0].ptime, Some(60));
        assert_eq!(neg.codec.id(), Some(CodecId::Pcma));
        assert_eq!(neg.ptime, 20);
        assert_eq!(
            neg.notes,
            vec![Note::PtimeOutOfRange {
                offered: 60,
                used: 20
            }]
        );
    }

    #[test]
    fn ipv6_offer_and_answer() {
        let (offer, neg) = offer_of(fixture!("ipv6"));
        assert_eq!(neg.remote, Some(sa("[2001:db8::10]:20000")));
        assert_eq!(neg.ptime, 30);
        let ans = answer(
            &offer,
            &neg,
            Local {
                addr: ip("2001:db8::1"),
                port: 30000,
                origin: &mut OriginState::new("hotline", 5),
            },
        );
        assert!(ans.contains("o=hotline 5 1 IN IP6 2001:db8::1\r\n"));
        assert!(ans.contains("c=IN IP6 2001:db8::1\r\n"));
        let back = parse(ans.as_bytes()).unwrap();
        assert_eq!(back.media[0].connection, Some(ip("2001:db8::1")));
    }

    #[test]
    fn video_bfcp_t38_rejected_with_port_zero_in_order() {
        let (offer, neg) = offer_of(fixture!("video_bfcp"));
        let kinds: Vec<&str> = offer.media.iter().map(|m| m.kind.as_str()).collect();
        assert_eq!(kinds, ["video", "audio", "application", "image"]);
        assert_eq!(offer.media[2].proto, "TCP/BFCP");
        assert_eq!(offer.media[2].fmt, ["*"]);
        assert_eq!(neg.mline, 1);
        let ans = our_answer(&offer, &neg, &mut OriginState::new("hotline", 1));
        assert!(ans.contains("\r\nm=video 0 RTP/AVP 99 97\r\nm=audio 20000 RTP/AVP 8 101\r\n"));
        assert!(ans.ends_with("m=application 0 TCP/BFCP *\r\nm=image 0 udptl t38\r\n"));
        let back = parse(ans.as_bytes()).unwrap();
        let ports: Vec<u16> = back.media.iter().map(|m| m.port).collect();
        assert_eq!(ports, [0, 20000, 0, 0]);
    }

    #[test]
    fn hold_sendonly_inactive_and_c0() {
        let (_, neg) = offer_of(fixture!("carrier_sbc_hold"));
        assert!(neg.hold);
        assert_eq!(neg.direction, Direction::RecvOnly);
        assert_eq!(neg.remote, Some(sa("61.140.10.21:30000")));

        let (_, neg) = offer_of(fixture!("pjsua_hold_inactive"));
        assert!(neg.hold);
        assert_eq!(neg.direction, Direction::Inactive);

        let (offer, neg) = offer_of(fixture!("legacy_hold_c0"));
        assert!(neg.hold);
        assert_eq!(neg.remote, None);
        assert_eq!(neg.remote_rtcp, None);
        assert_eq!(neg.direction, Direction::RecvOnly);
        assert!(neg.notes.contains(&Note::OldStyleHold));
        // Our answer still points at our own address.
        let ans = our_answer(&offer, &neg, &mut OriginState::new("hotline", 1));
        assert!(ans.contains("c=IN IP4 192.0.2.1\r\n") && ans.contains("a=recvonly\r\n"));
    }

    #[test]
    fn hold_unhold_versions_follow_changes_only() {
        let mut origin = OriginState::new("hotline", 77);
        let (offer, neg) = offer_of(fixture!("carrier_sbc"));
        let first = our_answer(&offer, &neg, &mut origin);
        assert!(first.contains("o=hotline 77 1 "));
        // A session refresh with the same offer: same SDP, same version.
        let again = our_answer(&offer, &neg, &mut origin);
        assert_eq!(first, again);
        let (held, hneg) = offer_of(fixture!("carrier_sbc_hold"));
        let hold = our_answer(&held, &hneg, &mut origin);
        assert!(hold.contains("o=hotline 77 2 ") && hold.contains("a=recvonly"));
        let resumed = our_answer(&offer, &neg, &mut origin);
        assert!(resumed.contains("o=hotline 77 3 ") && resumed.contains("a=sendrecv"));
    }

    #[test]
    fn refusals_map_to_488_with_warning() {
        let e = negotiate(
            &parse(fixture!("no_common_codec")).unwrap(),
            &Prefs::default(),
        )
        .unwrap_err();
        assert!(matches!(e, SdpError::NoCommonCodec(_)), "{e}");
        assert_eq!(e.status(), 488);
        assert_eq!(
            e.warning_header("gw.example").as_deref(),
            Some("305 gw.example \"Incompatible media format\"")
        );

        let e = negotiate(&parse(fixture!("srtp_only")).unwrap(), &Prefs::default()).unwrap_err();
        assert_eq!((e.status(), e.warning().map(|w| w.0)), (488, Some(302)));

        let e = negotiate(&parse(fixture!("audio_port0")).unwrap(), &Prefs::default()).unwrap_err();
        assert_eq!(e, SdpError::NoAudio);
        assert_eq!(e.warning().map(|w| w.0), Some(304));

        let video_only = "v=0\r\no=- 1 1 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\nm=video 4000 RTP/AVP 96\r\n";
        let e = negotiate(&parse(video_only.as_bytes()).unwrap(), &Prefs::default()).unwrap_err();
        assert_eq!(e, SdpError::NoAudio);

        let e = parse(
            b"v=0\r\no=- 1 1 IN IP4 192.0.2.9\r\nc=IN IP4 gw.example\r\nm=audio 1 RTP/AVP 0\r\n",
        )
        .unwrap_err();
        assert_eq!((e.status(), e.warning().map(|w| w.0)), (488, Some(301)));
        let e = parse(b"hello").unwrap_err();
        assert_eq!((e.status(), e.warning()), (400, None));
    }

    #[test]
    fn declined_audio_beside_a_usable_one_stays_declined() {
        let body = "v=0\r\no=- 1 1 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\n\
                    m=audio 0 RTP/AVP 0\r\nm=audio 4000 RTP/AVP 0 8\r\nm=audio 4002 RTP/AVP 8\r\n";
        let (offer, neg) = offer_of(body.as_bytes());
        assert_eq!(neg.mline, 1);
        let ans = our_answer(&offer, &neg, &mut OriginState::new("hotline", 1));
        let back = parse(ans.as_bytes()).unwrap();
        let ports: Vec<u16> = back.media.iter().map(|m| m.port).collect();
        assert_eq!(ports, [0, 20000, 0]);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let inputs: [&[u8]; 14] = [
            b"",
            b"\r\n\r\n",
            b"hello world",
            b"v=0",
            b"v=1\r\no=- 1 1 IN IP4 1.2.3.4\r\n",
            b"v=0\r\no=- x 1 IN IP4 1.2.3.4\r\n",
            b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nm=audio 99999 RTP/AVP 0\r\n",
            b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nm=audio 1 RTP/AVP\r\n",
            b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nm=audio 1 RTP/AVP 0\r\n",
            b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nc=IN IP4 1.2.3.4\r\nm=audio 1 RTP/AVP 0\r\nt=0 0\r\n",
            b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nx=what\r\n",
            b"\xff\xfe\x00v=0",
            b"=\r\n=\r\n",
            b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=\xe4\xbd\xa0\xff\r\nc=IN IP6 1.2.3.4\r\nm=audio 1 RTP/AVP 0\r\n",
        ];
        for input in inputs {
            let e = parse(input).unwrap_err();
            assert!(e.status() == 400 || e.status() == 488, "{e}");
        }
        assert!(parse(&vec![b'a'; MAX_SDP_BYTES + 1]).is_err());
    }

    #[test]
    fn answer_round_trips() {
        for body in [
            fixture!("linphone"),
            fixture!("zoiper"),
            fixture!("pjsua"),
            fixture!("carrier_sbc_hold"),
            fixture!("video_bfcp"),
        ] {
            let (offer, neg) = offer_of(body);
            let ans = our_answer(&offer, &neg, &mut OriginState::new("hotline", 3));
            let back = parse(ans.as_bytes()).unwrap();
            assert_eq!(back.media.len(), offer.media.len());
            let m = &back.media[neg.mline];
            assert_eq!((m.port, m.connection), (20000, Some(ip("192.0.2.1"))));
            let mut expect = vec![neg.codec.pt];
            expect.extend(neg.telephone_event);
            assert_eq!(m.formats, expect);
            assert!(m.codecs[0].is(&neg.codec.name, 8000));
            assert_eq!(m.ptime, Some(neg.ptime));
            assert_eq!(m.direction, neg.direction);
            assert_eq!(m.rtcp_mux, neg.rtcp_mux);
            // Read back as an offer, our answer negotiates to itself.
            let again = negotiate(&back, &Prefs::default()).unwrap();
            assert_eq!(again.codec.pt, neg.codec.pt);
            assert_eq!(again.telephone_event, neg.telephone_event);
        }
    }

    fn gateway_offer(origin: &mut OriginState, direction: Direction) -> String {
        offer(
            Local {
                addr: ip("192.0.2.1"),
                port: 20002,
                origin,
            },
            &[CodecId::Pcma, CodecId::Pcmu],
            Some(TELEPHONE_EVENT_PT),
            direction,
            20,
        )
    }

    #[test]
    fn our_offer_and_the_peers_answer() {
        let mut origin = OriginState::new("hotline", 1234);
        let ours = gateway_offer(&mut origin, Direction::SendRecv);
        assert_eq!(
            ours,
            "v=0\r\no=hotline 1234 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
             m=audio 20002 RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n\
             a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\na=sendrecv\r\n"
        );
        let sent = parse(ours.as_bytes()).unwrap();
        // An agent phone answers PCMU with its own telephone-event PT.
        let reply = "v=0\r\no=agent 9 9 IN IP4 10.1.1.5\r\ns=-\r\nc=IN IP4 10.1.1.5\r\nt=0 0\r\n\
                     m=audio 4000 RTP/AVP 0 96\r\na=rtpmap:0 pcmu/8000\r\n\
                     a=rtpmap:96 telephone-event/8000\r\na=sendrecv\r\n";
        let got = answered(&sent, &parse(reply.as_bytes()).unwrap()).unwrap();
        assert_eq!(got.codec.id(), Some(CodecId::Pcmu));
        assert_eq!(got.telephone_event, Some(96));
        assert_eq!(got.remote, Some(sa("10.1.1.5:4000")));
        assert_eq!(got.direction, Direction::SendRecv);
        assert!(!got.hold && !got.rtcp_mux);

        // Hold: the re-offer is sendonly with the version bumped; the
        // peer answers recvonly.
        let hold = gateway_offer(&mut origin, Direction::SendOnly);
        assert!(hold.contains("o=hotline 1234 2 ") && hold.contains("a=sendonly\r\n"));
        let reply_hold = reply.replace("a=sendrecv", "a=recvonly");
        let got = answered(
            &parse(hold.as_bytes()).unwrap(),
            &parse(reply_hold.as_bytes()).unwrap(),
        )
        .unwrap();
        assert_eq!(got.direction, Direction::SendOnly);
        // A peer that answers sendrecv to our sendonly still gets sendonly.
        let got = answered(
            &parse(hold.as_bytes()).unwrap(),
            &parse(reply.as_bytes()).unwrap(),
        )
        .unwrap();
        assert_eq!(got.direction, Direction::SendOnly);
        let unhold = gateway_offer(&mut origin, Direction::SendRecv);
        assert!(unhold.contains("o=hotline 1234 3 "));
    }

    #[test]
    fn answers_we_cannot_use() {
        let mut origin = OriginState::new("hotline", 1);
        let sent = parse(gateway_offer(&mut origin, Direction::SendRecv).as_bytes()).unwrap();
        let head = "v=0\r\no=x 1 1 IN IP4 10.1.1.5\r\ns=-\r\nc=IN IP4 10.1.1.5\r\nt=0 0\r\n";
        let declined = parse(format!("{head}m=audio 0 RTP/AVP 8\r\n").as_bytes()).unwrap();
        assert_eq!(answered(&sent, &declined), Err(SdpError::Declined));
        let two =
            parse(format!("{head}m=audio 4000 RTP/AVP 8\r\nm=video 0 RTP/AVP 96\r\n").as_bytes())
                .unwrap();
        assert!(matches!(
            answered(&sent, &two),
            Err(SdpError::AnswerShape { .. })
        ));
        let g729 = parse(format!("{head}m=audio 4000 RTP/AVP 18\r\n").as_bytes()).unwrap();
        assert!(matches!(
            answered(&sent, &g729),
            Err(SdpError::NoCommonCodec(_))
        ));
    }

    #[test]
    fn offer_fallbacks() {
        let mut origin = OriginState::new("two words", 1);
        let o = offer(
            Local {
                addr: ip("192.0.2.1"),
                port: 20004,
                origin: &mut origin,
            },
            &[],
            Some(8),
            Direction::SendRecv,
            20,
        );
        assert!(o.contains("o=two-words 1 1 "));
        assert!(o.contains("m=audio 20004 RTP/AVP 8 0 101\r\n"), "{o}");
    }

    #[test]
    fn direction_attribute_levels() {
        let body = "v=0\r\no=- 1 1 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\na=sendonly\r\na=ptime:10\r\n\
                    m=audio 4000 RTP/AVP 8\r\nm=audio 4002 RTP/AVP 8\r\na=inactive\r\na=ptime:30\r\n";
        let s = parse(body.as_bytes()).unwrap();
        assert_eq!(s.media[0].direction, Direction::SendOnly);
        assert_eq!(s.media[0].ptime, Some(10));
        assert_eq!(s.media[1].direction, Direction::Inactive);
        assert_eq!(s.media[1].ptime, Some(30));
    }
}
