//! RTP packets (RFC 3550 §5.1) as views over the receive buffer, rtcp-mux
//! demultiplexing (RFC 5761 §4), and [`OutStream`]: the one continuous
//! stream the gateway sends on a leg, whatever feeds it.
//!
//! Nothing is copied: [`Rtp`] reads a `&[u8]`, [`RtpMut`] rewrites a
//! `&mut [u8]` in place, and [`write_header`] fills the 12 bytes in front of
//! a generated payload. [`Rtp::parse`] validates everything the accessors
//! rely on, so no accessor can fail or panic afterwards.

use crate::time::Instant;

/// The fixed RTP header: 12 bytes (RFC 3550 §5.1).
pub const HEADER_LEN: usize = 12;

/// Why bytes are not an RTP packet (the peer's fault: count and drop).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RtpError {
    /// Shorter than the fixed header.
    #[error("{len} bytes: shorter than the 12-byte RTP header")]
    TooShort {
        /// The packet's length.
        len: usize,
    },
    /// The version field is not 2.
    #[error("RTP version {version}, expected 2")]
    Version {
        /// The version found.
        version: u8,
    },
    /// The CSRC list (CC × 4 bytes) runs past the end.
    #[error("{count} CSRCs do not fit in {len} bytes")]
    CsrcOverrun {
        /// The CC field.
        count: u8,
        /// The packet's length.
        len: usize,
    },
    /// The header extension (RFC 3550 §5.3.1) runs past the end.
    #[error("header extension needs {needed} bytes, the packet has {len}")]
    ExtensionOverrun {
        /// Bytes the header including the extension needs.
        needed: usize,
        /// The packet's length.
        len: usize,
    },
    /// P is set but the padding count is 0 or more than the bytes after
    /// the header (RFC 3550 §5.1: the count includes itself).
    #[error("padding count {count} with {available} bytes after the header")]
    Padding {
        /// The last octet of the packet.
        count: u8,
        /// Bytes after the header, padding included.
        available: usize,
    },
}

/// The caller's buffer cannot hold what it asked to write (a bug in the
/// caller, not bad input).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("buffer of {len} bytes, {needed} needed")]
pub struct BufferTooSmall {
    /// Bytes needed.
    pub needed: usize,
    /// Bytes given.
    pub len: usize,
}

/// Where the header ends and the payload ends (before padding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layout {
    header_len: usize,
    payload_end: usize,
}

fn layout(b: &[u8]) -> Result<Layout, RtpError> {
    let len = b.len();
    if len < HEADER_LEN {
        return Err(RtpError::TooShort { len });
    }
    let version = b[0] >> 6;
    if version != 2 {
        return Err(RtpError::Version { version });
    }
    let count = b[0] & 0x0f;
    let mut header_len = HEADER_LEN + 4 * usize::from(count);
    if header_len > len {
        return Err(RtpError::CsrcOverrun { count, len });
    }
    if b[0] & 0x10 != 0 {
        // RFC 3550 §5.3.1: 16 bits profile-defined, 16 bits length in
        // 32-bit words, not counting these four bytes.
        if header_len + 4 > len {
            return Err(RtpError::ExtensionOverrun {
                needed: header_len + 4,
                len,
            });
        }
        let words = usize::from(u16::from_be_bytes([b[header_len + 2], b[header_len + 3]]));
        header_len += 4 + 4 * words;
        if header_len > len {
            return Err(RtpError::ExtensionOverrun {
                needed: header_len,
                len,
            });
        }
    }
    let mut payload_end = len;
    if b[0] & 0x20 != 0 {
        let available = len - header_len;
        let count = if available == 0 { 0 } else { b[len - 1] };
        if count == 0 || usize::from(count) > available {
            return Err(RtpError::Padding { count, available });
        }
        payload_end -= usize::from(count);
    }
    Ok(Layout {
        header_len,
        payload_end,
    })
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// A validated RTP packet, read in place.
///
/// [`Rtp::parse`] accepts any RTP version 2 packet whose CSRC list, header
/// extension and padding fit; it does not judge the payload type (use
/// [`is_rtcp`] first on an rtcp-mux port).
#[derive(Debug, Clone, Copy)]
pub struct Rtp<'a> {
    buf: &'a [u8],
    layout: Layout,
}

impl<'a> Rtp<'a> {
    /// Validate `buf` as an RTP packet.
    pub fn parse(buf: &'a [u8]) -> Result<Rtp<'a>, RtpError> {
        Ok(Rtp {
            layout: layout(buf)?,
            buf,
        })
    }

    /// Payload type (7 bits).
    pub fn payload_type(&self) -> u8 {
        self.buf[1] & 0x7f
    }

    /// Marker bit (RFC 3551 §4.1: first packet of a talkspurt).
    pub fn marker(&self) -> bool {
        self.buf[1] & 0x80 != 0
    }

    /// Sequence number.
    pub fn sequence(&self) -> u16 {
        be16(self.buf, 2)
    }

    /// Timestamp, in the payload's clock.
    pub fn timestamp(&self) -> u32 {
        be32(self.buf, 4)
    }

    /// Synchronisation source.
    pub fn ssrc(&self) -> u32 {
        be32(self.buf, 8)
    }

    /// Number of CSRCs (CC field).
    pub fn csrc_count(&self) -> u8 {
        self.buf[0] & 0x0f
    }

    /// The contributing sources.
    pub fn csrcs(&self) -> impl Iterator<Item = u32> + 'a {
        let buf = self.buf;
        (0..usize::from(self.csrc_count())).map(move |i| be32(buf, HEADER_LEN + 4 * i))
    }

    /// The header extension (RFC 3550 §5.3.1): its 16 profile-defined bits
    /// and its data, if X is set.
    pub fn extension(&self) -> Option<(u16, &'a [u8])> {
        if self.buf[0] & 0x10 == 0 {
            return None;
        }
        let at = HEADER_LEN + 4 * usize::from(self.csrc_count());
        Some((
            be16(self.buf, at),
            &self.buf[at + 4..self.layout.header_len],
        ))
    }

    /// Bytes of padding at the end (0 when P is clear).
    pub fn padding_len(&self) -> usize {
        self.buf.len() - self.layout.payload_end
    }

    /// Header length: fixed header, CSRCs and extension.
    pub fn header_len(&self) -> usize {
        self.layout.header_len
    }

    /// The payload, without padding.
    pub fn payload(&self) -> &'a [u8] {
        &self.buf[self.layout.header_len..self.layout.payload_end]
    }

    /// The whole packet.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.buf
    }
}

/// A validated RTP packet, rewritten in place.
#[derive(Debug)]
pub struct RtpMut<'a> {
    buf: &'a mut [u8],
    layout: Layout,
}

impl<'a> RtpMut<'a> {
    /// Validate `buf` as an RTP packet (the same checks as [`Rtp::parse`]).
    pub fn parse(buf: &'a mut [u8]) -> Result<RtpMut<'a>, RtpError> {
        Ok(RtpMut {
            layout: layout(buf)?,
            buf,
        })
    }

    /// A read view of the same packet.
    pub fn view(&self) -> Rtp<'_> {
        Rtp {
            buf: self.buf,
            layout: self.layout,
        }
    }

    /// Payload type (7 bits).
    pub fn payload_type(&self) -> u8 {
        self.view().payload_type()
    }

    /// Marker bit.
    pub fn marker(&self) -> bool {
        self.view().marker()
    }

    /// Sequence number.
    pub fn sequence(&self) -> u16 {
        self.view().sequence()
    }

    /// Timestamp.
    pub fn timestamp(&self) -> u32 {
        self.view().timestamp()
    }

    /// Synchronisation source.
    pub fn ssrc(&self) -> u32 {
        self.view().ssrc()
    }

    /// Number of CSRCs.
    pub fn csrc_count(&self) -> u8 {
        self.view().csrc_count()
    }

    /// Header length: fixed header, CSRCs and extension.
    pub fn header_len(&self) -> usize {
        self.layout.header_len
    }

    /// The payload, without padding.
    pub fn payload(&self) -> &[u8] {
        &self.buf[self.layout.header_len..self.layout.payload_end]
    }

    /// The payload, without padding, for in-place transcoding.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.layout.header_len..self.layout.payload_end]
    }

    /// Set the payload type (the top bit of `pt` is ignored: PT is 7 bits).
    pub fn set_payload_type(&mut self, pt: u8) {
        self.buf[1] = (self.buf[1] & 0x80) | (pt & 0x7f);
    }

    /// Set or clear the marker bit.
    pub fn set_marker(&mut self, marker: bool) {
        self.buf[1] = (self.buf[1] & 0x7f) | if marker { 0x80 } else { 0 };
    }

    /// Set the sequence number.
    pub fn set_sequence(&mut self, seq: u16) {
        self.buf[2..4].copy_from_slice(&seq.to_be_bytes());
    }

    /// Set the timestamp.
    pub fn set_timestamp(&mut self, ts: u32) {
        self.buf[4..8].copy_from_slice(&ts.to_be_bytes());
    }

    /// Set the synchronisation source.
    pub fn set_ssrc(&mut self, ssrc: u32) {
        self.buf[8..12].copy_from_slice(&ssrc.to_be_bytes());
    }
}

/// Write a 12-byte RTP header (version 2, no padding, extension or CSRCs)
/// at the start of `buf`, for packets the gateway generates (prompts,
/// tones, RFC 4733 events); the payload goes after it. Returns 12. The top
/// bit of `pt` is ignored.
pub fn write_header(
    buf: &mut [u8],
    pt: u8,
    marker: bool,
    seq: u16,
    ts: u32,
    ssrc: u32,
) -> Result<usize, BufferTooSmall> {
    let Some(h) = buf.get_mut(..HEADER_LEN) else {
        return Err(BufferTooSmall {
            needed: HEADER_LEN,
            len: buf.len(),
        });
    };
    h[0] = 0x80;
    h[1] = (pt & 0x7f) | if marker { 0x80 } else { 0 };
    h[2..4].copy_from_slice(&seq.to_be_bytes());
    h[4..8].copy_from_slice(&ts.to_be_bytes());
    h[8..12].copy_from_slice(&ssrc.to_be_bytes());
    Ok(HEADER_LEN)
}

/// Whether a packet on an rtcp-mux port is RTCP (RFC 5761 §4): its second
/// byte is 192–223 (RTCP packet types 192–223; RTP payload types 64–95
/// with the marker set, which RFC 5761 keeps out of use).
pub fn is_rtcp(buf: &[u8]) -> bool {
    matches!(buf.get(1), Some(192..=223))
}

/// Why bytes are not a (compound) RTCP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RtcpError {
    /// Fewer than 4 bytes where a packet header should start.
    #[error("RTCP packet at offset {offset}: fewer than 4 bytes left")]
    TooShort {
        /// Offset of the packet in the compound.
        offset: usize,
    },
    /// The version field is not 2.
    #[error("RTCP version {version} at offset {offset}, expected 2")]
    Version {
        /// The version found.
        version: u8,
        /// Offset of the packet in the compound.
        offset: usize,
    },
    /// The length field runs past the end.
    #[error("RTCP packet at offset {offset} claims {claimed} bytes, {left} left")]
    Length {
        /// Offset of the packet in the compound.
        offset: usize,
        /// Bytes the length field claims, header included.
        claimed: usize,
        /// Bytes left from `offset`.
        left: usize,
    },
}

/// The first header of a checked RTCP compound packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtcpHeader {
    /// The first packet's type (200 SR, 201 RR, …).
    pub packet_type: u8,
    /// The first packet's count field (RC/SC/FMT).
    pub count: u8,
    /// How many packets the compound holds.
    pub packets: usize,
}

/// A minimal RTCP check (RFC 3550 §6.4.1, A.2): every packet in the
/// compound has version 2 and a length field that fits, and the lengths
/// add up to the datagram. The reports themselves are not read here.
pub fn check_rtcp(buf: &[u8]) -> Result<RtcpHeader, RtcpError> {
    let mut offset = 0;
    let mut packets = 0;
    let mut first = None;
    while offset < buf.len() || packets == 0 {
        let left = buf.len() - offset;
        if left < 4 {
            return Err(RtcpError::TooShort { offset });
        }
        let version = buf[offset] >> 6;
        if version != 2 {
            return Err(RtcpError::Version { version, offset });
        }
        let claimed = 4 * (usize::from(be16(buf, offset + 2)) + 1);
        if claimed > left {
            return Err(RtcpError::Length {
                offset,
                claimed,
                left,
            });
        }
        first.get_or_insert(RtcpHeader {
            packet_type: buf[offset + 1],
            count: buf[offset] & 0x1f,
            packets: 0,
        });
        packets += 1;
        offset += claimed;
    }
    let mut h = first.unwrap_or(RtcpHeader {
        packet_type: 0,
        count: 0,
        packets: 0,
    });
    h.packets = packets;
    Ok(h)
}

/// The sender half of an RTCP sender report (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderInfo {
    /// NTP timestamp (seconds since 1900 in the high 32 bits, fraction in
    /// the low 32).
    pub ntp: u64,
    /// The same instant on the RTP clock of the stream sent.
    pub rtp_ts: u32,
    /// Packets sent since the stream started (wrapping at 2^32).
    pub packets: u32,
    /// Payload octets sent (wrapping at 2^32).
    pub octets: u32,
}

/// A report block (RFC 3550 §6.4.1) about one source we receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportBlock {
    /// The source reported on.
    pub ssrc: u32,
    /// Fraction lost since the last report, in 1/256.
    pub fraction_lost: u8,
    /// Cumulative packets lost (signed 24 bits).
    pub cumulative_lost: i32,
    /// Extended highest sequence number received.
    pub extended_highest_seq: u32,
    /// Interarrival jitter, timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the NTP timestamp of the last SR from that
    /// source (0 if none).
    pub lsr: u32,
    /// Delay since that SR, in 1/65536 s (0 if none).
    pub dlsr: u32,
}

/// Write a compound RTCP packet into `out`: an SR (with `sender`) or an RR
/// (without), with `block` if any, then an SDES with our CNAME (RFC 3550
/// §6.1: every compound packet carries one).
pub fn write_rtcp_report(
    out: &mut Vec<u8>,
    ssrc: u32,
    sender: Option<SenderInfo>,
    block: Option<ReportBlock>,
    cname: &str,
) {
    let rc = u8::from(block.is_some());
    let words = 1 + if sender.is_some() { 5 } else { 0 } + 6 * usize::from(rc);
    out.push(0x80 | rc);
    out.push(if sender.is_some() { 200 } else { 201 });
    out.extend_from_slice(&((words as u16).to_be_bytes()));
    out.extend_from_slice(&ssrc.to_be_bytes());
    if let Some(si) = sender {
        out.extend_from_slice(&si.ntp.to_be_bytes());
        out.extend_from_slice(&si.rtp_ts.to_be_bytes());
        out.extend_from_slice(&si.packets.to_be_bytes());
        out.extend_from_slice(&si.octets.to_be_bytes());
    }
    if let Some(b) = block {
        out.extend_from_slice(&b.ssrc.to_be_bytes());
        let lost = (b.cumulative_lost.clamp(-0x80_0000, 0x7F_FFFF) as u32) & 0x00FF_FFFF;
        out.extend_from_slice(&((u32::from(b.fraction_lost) << 24) | lost).to_be_bytes());
        out.extend_from_slice(&b.extended_highest_seq.to_be_bytes());
        out.extend_from_slice(&b.jitter.to_be_bytes());
        out.extend_from_slice(&b.lsr.to_be_bytes());
        out.extend_from_slice(&b.dlsr.to_be_bytes());
    }
    // SDES: one chunk, CNAME item, then a null item and padding to 32 bits.
    let name = &cname.as_bytes()[..cname.len().min(255)];
    let chunk = 4 + 2 + name.len() + 1;
    let padded = chunk.div_ceil(4) * 4;
    out.push(0x81);
    out.push(202);
    out.extend_from_slice(&((padded / 4) as u16).to_be_bytes());
    out.extend_from_slice(&ssrc.to_be_bytes());
    out.push(1);
    out.push(name.len() as u8);
    out.extend_from_slice(name);
    out.resize(out.len() + (padded - chunk) + 1, 0);
}

/// The middle 32 bits of the NTP timestamp of a sender report at the head
/// of a (checked) compound RTCP packet, with its sender's SSRC.
pub fn sender_report_lsr(buf: &[u8]) -> Option<(u32, u32)> {
    if buf.len() < 28 || buf[1] != 200 || buf[0] >> 6 != 2 {
        return None;
    }
    let ssrc = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
    let mid = u32::from_be_bytes([buf[10], buf[11], buf[12], buf[13]]);
    Some((ssrc, mid))
}

/// RFC 3550 A.1: a sequence jump forward larger than this is not taken as
/// loss but as a restart, confirmed by the next packet.
pub const MAX_DROPOUT: u16 = 3000;
/// RFC 3550 A.1: a packet at most this far behind the highest sequence
/// number is a late (reordered or duplicated) packet; further behind, a
/// restart to be confirmed.
pub const MAX_MISORDER: u16 = 100;

/// Why [`OutStream::relay`] says not to send a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// A late packet from before the current source's first packet: its
    /// sequence number would collide with what an earlier source sent.
    BeforeSource,
    /// A late packet from the source we switched away from.
    PreviousSource,
    /// A sequence jump outside the RFC 3550 A.1 window; if the next packet
    /// follows it, the stream is re-anchored there (a new talkspurt). A
    /// jump on a packet with the marker set is taken at once.
    OutOfWindow,
}

/// What [`OutStream::relay`] decided.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relayed {
    /// The packet was rewritten in place: send it.
    Send,
    /// Do not send the packet (it was left as it came).
    Drop(DropReason),
}

/// The header of a packet the gateway generates: write it with
/// [`GenHeader::write`] and put the payload after it.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GenHeader {
    /// Payload type on the wire (not mapped: generated packets are made
    /// for this leg).
    pub pt: u8,
    /// Marker bit.
    pub marker: bool,
    /// Sequence number.
    pub seq: u16,
    /// Timestamp.
    pub ts: u32,
    /// Our SSRC.
    pub ssrc: u32,
}

impl GenHeader {
    /// Write the 12-byte header at the start of `buf`; returns 12.
    pub fn write(&self, buf: &mut [u8]) -> Result<usize, BufferTooSmall> {
        write_header(buf, self.pt, self.marker, self.seq, self.ts, self.ssrc)
    }
}

/// The newest packet sent.
#[derive(Debug, Clone, Copy)]
struct Last {
    ts: u32,
    at: Instant,
    /// Media the packet covers, in clock units; the next talkspurt starts
    /// no earlier than `ts + samples`.
    samples: u32,
}

/// A relayed peer stream mapped onto ours by fixed offsets.
#[derive(Debug, Clone, Copy)]
struct RelaySource {
    ssrc: u32,
    seq_offset: u16,
    ts_offset: u32,
    /// Extended (RFC 3550 A.1) sequence number of the first packet.
    first_ext: i64,
    /// Extended highest sequence number.
    max_ext: i64,
    /// The sequence number that would confirm an out-of-window jump.
    probation: Option<u16>,
}

impl RelaySource {
    fn max_seq(&self) -> u16 {
        self.max_ext as u16
    }
}

#[derive(Debug, Clone, Copy)]
enum Source {
    /// The next packet starts a talkspurt.
    None,
    Relay(RelaySource),
    Generated,
    /// A generated RFC 4733 event whose packets all carry `ts`.
    Event {
        ts: u32,
    },
}

/// The gateway's outgoing RTP stream on one leg: our own fixed SSRC, fed by
/// changing sources (relayed packets from a peer whose SSRC can change,
/// packets we generate for prompts, tones and RFC 4733 events), seen by the
/// far side as **one continuous stream**.
///
/// - **Sequence numbers** continue by exactly 1 per packet sent across every
///   switch, with u16 wrap. Within a relayed source a packet is mapped
///   through that source's fixed offset, so a late (reordered or duplicated)
///   packet keeps its place, and upstream loss stays visible as the same
///   gap (the far side's loss statistics and concealment need it).
/// - **Timestamps**: within a relayed source, the same fixed offset. At a
///   switch (new SSRC, [`OutStream::switch_source`], generated ↔ relayed, a
///   confirmed restart) the timestamp advances from the last packet sent by
///   the wall-clock gap `now - sent_at` in clock units, rounded to the new
///   packet's sample granularity, and at least by the last packet's own
///   duration so media never overlaps. Consecutive generated packets
///   advance by their sample counts exactly (no drift from tick jitter).
/// - **Marker** set on the first packet after a switch (RFC 3551 §4.1);
///   within a source the peer's marker is kept.
/// - **Payload types** mapped by a table the caller sets
///   ([`OutStream::map_payload_type`]); unmapped types pass unchanged.
///
/// The sample granularity of a relayed packet is its payload length for
/// PCMU/PCMA (static PT 0 and 8, one byte per sample), otherwise 20 ms of
/// the clock. One `OutStream` has one clock rate: with G.711 and
/// telephone-event that is 8000.
#[derive(Debug, Clone)]
pub struct OutStream {
    ssrc: u32,
    clock_rate: u32,
    pt_map: [u8; 128],
    next_seq: u16,
    initial_ts: u32,
    last: Option<Last>,
    source: Source,
    /// The relayed source we last switched away from: (SSRC, highest seq).
    previous: Option<(u32, u16)>,
}

impl OutStream {
    /// A stream with our `ssrc`, `clock_rate` (8000 for G.711) and the first
    /// sequence number and timestamp, which RFC 3550 §5.1 wants random: the
    /// caller draws them with the SSRC (cores own no entropy).
    pub fn new(ssrc: u32, clock_rate: u32, initial_seq: u16, initial_ts: u32) -> OutStream {
        let mut pt_map = [0u8; 128];
        for (i, pt) in pt_map.iter_mut().enumerate() {
            *pt = i as u8;
        }
        OutStream {
            ssrc,
            clock_rate: clock_rate.max(1),
            pt_map,
            next_seq: initial_seq,
            initial_ts,
            last: None,
            source: Source::None,
            previous: None,
        }
    }

    /// Our SSRC.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// Relayed packets with payload type `from` go out as `to` (e.g.
    /// telephone-event 101 on the input leg → 96 here). Top bits ignored.
    pub fn map_payload_type(&mut self, from: u8, to: u8) {
        self.pt_map[usize::from(from & 0x7f)] = to & 0x7f;
    }

    /// The payload type a relayed `pt` goes out as.
    pub fn mapped_payload_type(&self, pt: u8) -> u8 {
        self.pt_map[usize::from(pt & 0x7f)]
    }

    /// The RTP timestamp of the stream at `now`, extrapolated from the last
    /// packet sent (for a sender report); `None` before the first.
    pub fn timestamp_at(&self, now: Instant) -> Option<u32> {
        let l = self.last?;
        Some(l.ts.wrapping_add(self.wall_samples(l.at, now) as u32))
    }

    /// The sequence number the next new packet will carry.
    pub fn next_sequence(&self) -> u16 {
        self.next_seq
    }

    /// Start a new talkspurt with the next packet, relayed or generated
    /// (prompt → agent audio, one prompt → the next).
    pub fn switch_source(&mut self) {
        self.leave_relay();
        self.source = Source::None;
    }

    /// Rewrite a relayed packet in place (SSRC, sequence number, timestamp,
    /// marker, payload type) or say why it must not be sent. Malformed
    /// packets are errors and are left untouched.
    pub fn relay(&mut self, pkt: &mut [u8], now: Instant) -> Result<Relayed, RtpError> {
        let mut p = RtpMut::parse(pkt)?;
        let (ssrc, seq, ts, pt) = (p.ssrc(), p.sequence(), p.timestamp(), p.payload_type());
        let samples = self.granule(pt, p.payload().len());

        enum Step {
            /// Through the current source's offsets.
            Map {
                newest: bool,
                first: bool,
            },
            /// A new source (or a confirmed restart) starts here.
            Anchor,
            Drop(DropReason),
        }
        let step = match &mut self.source {
            Source::Relay(s) if s.ssrc == ssrc => {
                let diff = seq.wrapping_sub(s.max_seq()) as i16;
                if diff > 0 && diff.unsigned_abs() <= MAX_DROPOUT {
                    s.max_ext += i64::from(diff);
                    s.probation = None;
                    Step::Map {
                        newest: true,
                        first: false,
                    }
                } else if diff <= 0 && diff.unsigned_abs() <= MAX_MISORDER {
                    let ext = s.max_ext + i64::from(diff);
                    if ext < s.first_ext {
                        Step::Drop(DropReason::BeforeSource)
                    } else {
                        Step::Map {
                            newest: false,
                            first: ext == s.first_ext,
                        }
                    }
                } else if s.probation == Some(seq) || p.marker() {
                    // Confirmed, or the peer itself says a talkspurt
                    // starts here (SIPp replaying pcaps does this).
                    Step::Anchor
                } else {
                    s.probation = Some(seq.wrapping_add(1));
                    Step::Drop(DropReason::OutOfWindow)
                }
            }
            _ => match self.previous {
                Some((prev, max))
                    if prev == ssrc && {
                        let diff = seq.wrapping_sub(max) as i16;
                        diff <= 0 && diff.unsigned_abs() <= MAX_MISORDER
                    } =>
                {
                    Step::Drop(DropReason::PreviousSource)
                }
                _ => Step::Anchor,
            },
        };

        let (newest, marker) = match step {
            Step::Drop(why) => return Ok(Relayed::Drop(why)),
            Step::Map { newest, first } => (newest, first || p.marker()),
            Step::Anchor => {
                let out_ts = self.switch_ts(samples, now);
                self.leave_relay();
                self.source = Source::Relay(RelaySource {
                    ssrc,
                    seq_offset: self.next_seq.wrapping_sub(seq),
                    ts_offset: out_ts.wrapping_sub(ts),
                    first_ext: i64::from(seq),
                    max_ext: i64::from(seq),
                    probation: None,
                });
                (true, true)
            }
        };
        let (seq_offset, ts_offset) = match self.source {
            Source::Relay(s) => (s.seq_offset, s.ts_offset),
            // Map and Anchor both leave a relay source in place.
            _ => (0, 0),
        };
        let out_seq = seq.wrapping_add(seq_offset);
        let out_ts = ts.wrapping_add(ts_offset);
        p.set_ssrc(self.ssrc);
        p.set_sequence(out_seq);
        p.set_timestamp(out_ts);
        p.set_marker(marker);
        p.set_payload_type(self.pt_map[usize::from(pt)]);
        if newest {
            self.next_seq = out_seq.wrapping_add(1);
            self.last = Some(Last {
                ts: out_ts,
                at: now,
                samples,
            });
        }
        Ok(Relayed::Send)
    }

    /// The header for the next generated audio packet of `samples` samples
    /// (160 for 20 ms at 8 kHz) with payload type `pt` as sent on this leg.
    ///
    /// Consecutive generated packets advance the timestamp by the previous
    /// packet's samples. The first after a relayed packet, after
    /// [`OutStream::switch_source`], or after a pause of more than three
    /// packet durations starts a talkspurt (marker, wall-clock timestamp).
    pub fn generated(&mut self, pt: u8, samples: u32, now: Instant) -> GenHeader {
        let (ts, marker) = match (self.source, self.last) {
            (Source::Generated | Source::Event { .. }, Some(l)) if !self.paused(l, now) => {
                (l.ts.wrapping_add(l.samples), false)
            }
            _ => {
                let ts = self.switch_ts(samples, now);
                self.leave_relay();
                (ts, true)
            }
        };
        self.source = Source::Generated;
        self.emit(pt, marker, ts, samples, now)
    }

    /// The header for a generated RFC 4733 event packet (RFC 4733 §2.5.1):
    /// every packet of one event carries the event's start timestamp, and
    /// the first (`start`) has the marker set. `duration` is the event's
    /// duration so far in clock units (the payload's duration field); the
    /// media after the event starts no earlier than start + duration.
    ///
    /// The event starts where the next generated audio packet would have
    /// (or, after relayed audio, by the wall-clock rule). A continuation
    /// packet when no event is in progress (the stream was switched
    /// meanwhile) is treated as a start.
    pub fn generated_event(
        &mut self,
        pt: u8,
        start: bool,
        duration: u32,
        now: Instant,
    ) -> GenHeader {
        let (ts, marker) = match (self.source, self.last) {
            (Source::Event { ts }, Some(_)) if !start => (ts, false),
            (Source::Generated | Source::Event { .. }, Some(l)) if !self.paused(l, now) => {
                (l.ts.wrapping_add(l.samples), true)
            }
            _ => {
                let ts = self.switch_ts(self.clock_rate / 50, now);
                self.leave_relay();
                (ts, true)
            }
        };
        self.source = Source::Event { ts };
        self.emit(pt, marker, ts, duration, now)
    }

    fn emit(&mut self, pt: u8, marker: bool, ts: u32, samples: u32, now: Instant) -> GenHeader {
        let seq = self.next_seq;
        self.next_seq = seq.wrapping_add(1);
        self.last = Some(Last {
            ts,
            at: now,
            samples,
        });
        GenHeader {
            pt: pt & 0x7f,
            marker,
            seq,
            ts,
            ssrc: self.ssrc,
        }
    }

    /// Whether generated media paused: more than three packet durations of
    /// wall clock since the last packet.
    fn paused(&self, last: Last, now: Instant) -> bool {
        let per = u64::from(last.samples.max(self.clock_rate / 50));
        self.wall_samples(last.at, now) > 3 * per
    }

    fn wall_samples(&self, since: Instant, now: Instant) -> u64 {
        let ns = now.saturating_duration_since(since).as_nanos();
        let samples = ns * u128::from(self.clock_rate) / 1_000_000_000;
        u64::try_from(samples).unwrap_or(u64::MAX)
    }

    /// The timestamp of the first packet of a new talkspurt of `granule`
    /// samples per packet.
    fn switch_ts(&self, granule: u32, now: Instant) -> u32 {
        let Some(l) = self.last else {
            return self.initial_ts;
        };
        let g = u64::from(granule.max(1));
        let wall = self.wall_samples(l.at, now);
        let rounded = wall.saturating_add(g / 2) / g * g;
        let advance = rounded.max(u64::from(l.samples));
        // Timestamps are modulo 2^32: truncation is the wrap.
        l.ts.wrapping_add(advance as u32)
    }

    fn granule(&self, pt: u8, payload_len: usize) -> u32 {
        match (pt, u32::try_from(payload_len)) {
            (0 | 8, Ok(n)) if n > 0 => n,
            _ => self.clock_rate / 50,
        }
    }

    fn leave_relay(&mut self) {
        if let Source::Relay(s) = self.source {
            self.previous = Some((s.ssrc, s.max_seq()));
        }
    }
}

#[cfg(test)]
mod tests;
