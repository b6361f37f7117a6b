//! A media shard: the sans-IO owner of one port range's legs.
//!
//! A **leg** is one RTP stream between the gateway and one peer, named by
//! its RTP port ([`LegId`]). The signalling core commands the shard
//! ([`MediaCommand`]): open a leg, tell it what SDP negotiated, connect two
//! legs (relay), play a prompt or tone into a leg, send a digit, put legs
//! in a conference, close. The shard reports back ([`MediaEvent`]): DTMF
//! digits, playback done, RTP timeout, final statistics.
//!
//! The driver feeds datagrams in with [`Shard::handle_rtp`] (relayed
//! packets are rewritten in place and the driver sends the same buffer on),
//! calls [`Shard::handle_timeout`] at [`Shard::poll_timeout`] (one 20 ms
//! tick for all generated audio of the shard) and drains
//! [`Shard::poll_transmit`] and [`Shard::poll_event`].
//!
//! What the relay does per packet: symmetric latching (the leg sends to
//! where its peer's packets come from), payload-type mapping
//! (telephone-event 101 on one leg, 96 on the other), PCMA↔PCMU
//! transcoding when the legs disagree, and one continuous outgoing stream
//! per leg ([`OutStream`]) across source switches (ringback → callee
//! audio → prompt → conference).

use super::g711;
use super::inband::InbandDetector;
use super::mixer::Mixer;
use super::rfc4733::{DtmfReceiver, DtmfSender};
use super::rtp::{self, OutStream, Relayed, Rtp};
use super::stats::{EModel, LegStats, RtpStats};
use super::tone::ToneSignal;
use super::wav::Prompt;
use super::{Codec, G711Frame, PcmFrame, FRAME_SAMPLES, SAMPLE_RATE};
use crate::rng::Rng;
use crate::time::Instant;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// A leg: its RTP port (even; RTCP on port + 1 unless rtcp-mux).
pub type LegId = u16;

/// A conference (mixer) id, chosen by the signalling core.
pub type ConfId = u32;

/// The shard's pacing: one tick per 20 ms frame.
pub const TICK: Duration = Duration::from_millis(20);

/// Largest RTP packet the shard generates: header + one G.711 frame.
pub const MAX_GENERATED: usize = 12 + FRAME_SAMPLES;

/// How long a latched source must be silent before another source may
/// take over the leg (a phone whose NAT binding changed).
pub const RELATCH_AFTER: Duration = Duration::from_secs(2);

/// How a leg learns where to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Latching {
    /// Send to the source of the peer's packets once they arrive
    /// (symmetric RTP, RFC 4961; NAT'd phones), the SDP address before.
    #[default]
    Symmetric,
    /// Always send to the SDP address.
    Off,
}

/// Shard settings (from `[media]`).
#[derive(Debug, Clone)]
pub struct ShardConfig {
    /// Silence from a leg that should send this long → [`MediaEvent::RtpTimeout`].
    pub rtp_timeout: Duration,
    /// Where to send.
    pub latching: Latching,
    /// Detect DTMF in the audio of legs without telephone-event.
    pub inband_dtmf: bool,
    /// E-model parameters for the MOS estimate.
    pub emodel: EModel,
}

impl Default for ShardConfig {
    fn default() -> Self {
        ShardConfig {
            rtp_timeout: Duration::from_secs(30),
            latching: Latching::Symmetric,
            inband_dtmf: true,
            emodel: EModel::default(),
        }
    }
}

/// What a leg negotiated in SDP (from the signalling core).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegParams {
    /// The peer's RTP address from its SDP; `None` for `c=0.0.0.0`.
    pub remote: Option<SocketAddr>,
    /// The voice codec on this leg.
    pub codec: Codec,
    /// The payload type the peer uses for it.
    pub voice_pt: u8,
    /// The peer's telephone-event payload type, if agreed.
    pub event_pt: Option<u8>,
    /// We send RTP on this leg (the peer receives).
    pub send: bool,
    /// We expect RTP on this leg (the peer sends): the RTP timeout applies.
    pub recv: bool,
    /// Where the peer wants RTCP (its `a=rtcp`, else RTP port + 1; the RTP
    /// address under rtcp-mux).
    pub remote_rtcp: Option<SocketAddr>,
    /// RTP and RTCP share the RTP port (RFC 5761).
    pub rtcp_mux: bool,
}

/// Something to play into a leg.
#[derive(Debug, Clone)]
pub enum Playable {
    /// An announcement, pre-encoded at load.
    Prompt(Arc<Prompt>),
    /// A call-progress tone.
    Tone(Arc<ToneSignal>),
}

impl Playable {
    fn frames(&self, codec: Codec) -> &[G711Frame] {
        match self {
            Playable::Prompt(p) => p.frames(codec),
            Playable::Tone(t) => t.encoded(codec),
        }
    }

    /// A name for logs.
    pub fn name(&self) -> &str {
        match self {
            Playable::Prompt(p) => p.name(),
            Playable::Tone(t) => match t.tone() {
                super::tone::Tone::Ringback => "ringback",
                super::tone::Tone::Busy => "busy",
                super::tone::Tone::Beep => "beep",
            },
        }
    }
}

/// A command from the signalling core.
#[derive(Debug, Clone)]
pub enum MediaCommand {
    /// A new leg on `leg` (the driver binds the sockets first).
    Open {
        /// The leg.
        leg: LegId,
    },
    /// SDP negotiated (or renegotiated: hold, a new address).
    Update {
        /// The leg.
        leg: LegId,
        /// What was agreed.
        params: LegParams,
    },
    /// Relay between two legs, both ways (each leaves any conference).
    Connect {
        /// One leg.
        a: LegId,
        /// The other.
        b: LegId,
    },
    /// Stop relaying `leg` (and its peer) without closing.
    Disconnect {
        /// The leg.
        leg: LegId,
    },
    /// Play into `leg` (what its peer would send is held back meanwhile).
    Play {
        /// The leg.
        leg: LegId,
        /// What.
        what: Playable,
        /// Start over at the end until stopped.
        repeat: bool,
        /// A DTMF digit from this leg stops it.
        barge_in: bool,
    },
    /// Stop what plays into `leg` (no event).
    Stop {
        /// The leg.
        leg: LegId,
    },
    /// Send a DTMF digit on `leg` (RFC 4733 when agreed).
    SendDigit {
        /// The leg.
        leg: LegId,
        /// `0`–`9`, `*`, `#`, `A`–`D`.
        digit: char,
        /// How long it is pressed.
        duration: Duration,
    },
    /// Put `leg` in conference `conf` (created on first join).
    Join {
        /// The conference.
        conf: ConfId,
        /// The leg.
        leg: LegId,
    },
    /// Take `leg` out of its conference (removed when empty).
    Leave {
        /// The leg.
        leg: LegId,
    },
    /// Mute or unmute `leg` in its conference.
    Mute {
        /// The leg.
        leg: LegId,
        /// Muted.
        muted: bool,
    },
    /// Close the leg: [`MediaEvent::Closed`] follows with its statistics.
    Close {
        /// The leg.
        leg: LegId,
    },
}

impl MediaCommand {
    /// The leg the command is about (for routing to the owning shard).
    pub fn leg(&self) -> LegId {
        match self {
            MediaCommand::Open { leg }
            | MediaCommand::Update { leg, .. }
            | MediaCommand::Disconnect { leg }
            | MediaCommand::Play { leg, .. }
            | MediaCommand::Stop { leg }
            | MediaCommand::SendDigit { leg, .. }
            | MediaCommand::Join { leg, .. }
            | MediaCommand::Leave { leg }
            | MediaCommand::Mute { leg, .. }
            | MediaCommand::Close { leg } => *leg,
            MediaCommand::Connect { a, .. } => *a,
        }
    }
}

/// Where a digit came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DigitSource {
    /// RFC 4733 telephone-event packets.
    Rfc4733,
    /// Tones in the audio (Goertzel detector).
    Inband,
    /// SIP INFO `application/dtmf-relay` (reported by the signalling core).
    SipInfo,
}

impl DigitSource {
    /// Label for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            DigitSource::Rfc4733 => "rfc4733",
            DigitSource::Inband => "inband",
            DigitSource::SipInfo => "sip_info",
        }
    }
}

/// A report to the signalling core.
#[derive(Debug, Clone)]
pub enum MediaEvent {
    /// A DTMF digit from the leg's peer, once per press.
    Digit {
        /// The leg.
        leg: LegId,
        /// The digit.
        digit: char,
        /// How it was signalled.
        source: DigitSource,
    },
    /// A playback ended.
    PlaybackDone {
        /// The leg.
        leg: LegId,
        /// Stopped by a digit (barge-in) rather than played to the end.
        interrupted: bool,
    },
    /// No RTP from a leg that should send, for the configured timeout.
    RtpTimeout {
        /// The leg.
        leg: LegId,
    },
    /// The driver could not bind the leg's ports.
    OpenFailed {
        /// The leg.
        leg: LegId,
        /// Why.
        error: String,
    },
    /// The leg is closed; its final statistics.
    Closed {
        /// The leg.
        leg: LegId,
        /// Packets, loss, jitter, MOS.
        stats: Box<LegStats>,
    },
}

/// A generated packet to send.
#[derive(Debug, Clone)]
pub struct Transmit {
    /// Send from this leg's socket.
    pub leg: LegId,
    /// From the RTCP socket (port + 1) rather than the RTP one.
    pub rtcp: bool,
    /// To.
    pub to: SocketAddr,
    /// The packet.
    pub data: Vec<u8>,
}

/// What to do with a received datagram after [`Shard::handle_rtp`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Forward {
    /// Send the (rewritten) first `len` bytes of the buffer from `leg`'s
    /// socket to `to`.
    Send {
        /// The leg whose socket sends.
        leg: LegId,
        /// Destination.
        to: SocketAddr,
        /// Bytes.
        len: usize,
    },
    /// Consumed or dropped (counted).
    Done,
}

/// Counters the driver exports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShardStats {
    /// RTP packets received on open legs.
    pub received: u64,
    /// Packets relayed to the peer leg.
    pub relayed: u64,
    /// Of those, transcoded between A-law and µ-law.
    pub transcoded: u64,
    /// Packets generated (prompts, tones, DTMF, conferences).
    pub generated: u64,
    /// RTCP packets received (terminated, not relayed).
    pub rtcp: u64,
    /// RTCP reports sent (an SR or RR with SDES, every 5 s per leg).
    pub rtcp_sent: u64,
    /// Datagrams for a port with no open leg.
    pub unknown_leg: u64,
    /// Datagrams that are neither RTP nor RTCP.
    pub malformed: u64,
    /// RTP with a payload type the leg did not agree.
    pub unknown_pt: u64,
    /// RTP before the leg's SDP was known.
    pub unconfigured: u64,
    /// RTP from a source other than the latched one.
    pub foreign_source: u64,
    /// Packets not relayed because nobody listens (no peer, peer on hold,
    /// a prompt plays to the peer, no address yet).
    pub not_forwarded: u64,
    /// Old or out-of-window packets the output stream dropped.
    pub stream_dropped: u64,
    /// Sources latched (first packet or re-latch).
    pub latched: u64,
    /// DTMF digits detected.
    pub digits: u64,
    /// RTP timeouts reported.
    pub rtp_timeouts: u64,
    /// Legs opened.
    pub legs_opened: u64,
    /// Legs closed.
    pub legs_closed: u64,
}

#[derive(Debug)]
struct Playback {
    what: Playable,
    pos: usize,
    repeat: bool,
    barge_in: bool,
}

#[derive(Debug)]
struct DigitOut {
    packets: DtmfSender,
    start: bool,
}

#[derive(Debug)]
struct Leg {
    params: Option<LegParams>,
    latched: Option<SocketAddr>,
    peer: Option<LegId>,
    conf: Option<ConfId>,
    out: OutStream,
    rx: RtpStats,
    dtmf: DtmfReceiver,
    inband: Option<Box<InbandDetector>>,
    last_rx: Option<Instant>,
    /// Since when the leg should be receiving (for the RTP timeout).
    armed: Instant,
    timed_out: bool,
    play: Option<Playback>,
    digit_out: VecDeque<DigitOut>,
    /// Where the peer's RTCP comes from (symmetric RTCP).
    rtcp_from: Option<SocketAddr>,
    /// The last sender report from the peer: NTP middle bits and arrival.
    last_sr: Option<(u32, Instant)>,
}

impl Leg {
    fn dest(&self) -> Option<SocketAddr> {
        let p = self.params.as_ref()?;
        if !p.send {
            return None;
        }
        self.latched.or(p.remote)
    }
}

/// The shard.
pub struct Shard {
    config: ShardConfig,
    first: LegId,
    legs: Vec<Option<Box<Leg>>>,
    confs: HashMap<ConfId, Mixer<LegId>>,
    events: VecDeque<MediaEvent>,
    transmits: VecDeque<Transmit>,
    next_tick: Instant,
    tick_count: u64,
    rng: Rng,
    stats: ShardStats,
    open: usize,
    /// Unix time at an instant, for the NTP timestamps of sender reports.
    wall: Option<(Instant, Duration)>,
    /// Our RTCP CNAME (RFC 7022: random per shard run).
    cname: String,
}

/// Ticks between two RTCP reports of a leg: 5 s (RFC 3550 §6.2 minimum).
const REPORT_TICKS: u64 = 250;

/// Seconds from 1900 (NTP) to 1970 (Unix).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// Timeouts are checked once a second, not every tick.
const TIMEOUT_CHECK_TICKS: u64 = 50;

impl Shard {
    /// A shard owning RTP ports `first..=last` (even ports).
    pub fn new(config: ShardConfig, first: LegId, last: LegId, seed: u64, now: Instant) -> Shard {
        let slots = usize::from(last.saturating_sub(first) / 2) + 1;
        let mut legs = Vec::with_capacity(slots);
        legs.resize_with(slots, || None);
        let mut rng = Rng::new(seed ^ 0x005E_ED0F_A0D1);
        let cname = format!("{:016x}@hotline", rng.next_u64());
        Shard {
            config,
            first,
            legs,
            confs: HashMap::new(),
            events: VecDeque::new(),
            transmits: VecDeque::new(),
            next_tick: now + TICK,
            tick_count: 0,
            rng,
            stats: ShardStats::default(),
            open: 0,
            wall: None,
            cname,
        }
    }

    /// `unix` is the time since the Unix epoch at `now` (for the NTP
    /// timestamps of sender reports; without it, SRs carry NTP 0).
    pub fn set_wall_clock(&mut self, now: Instant, unix: Duration) {
        self.wall = Some((now, unix));
    }

    fn ntp_at(&self, now: Instant) -> u64 {
        let Some((at, unix)) = self.wall else {
            return 0;
        };
        let t = unix + now.saturating_duration_since(at);
        let secs = (t.as_secs() + NTP_UNIX_OFFSET) & 0xFFFF_FFFF;
        let frac = (u64::from(t.subsec_nanos()) << 32) / 1_000_000_000;
        (secs << 32) | frac
    }

    /// Counters.
    pub fn stats(&self) -> &ShardStats {
        &self.stats
    }

    /// Legs open.
    pub fn open_legs(&self) -> usize {
        self.open
    }

    fn slot(&self, leg: LegId) -> Option<usize> {
        if leg < self.first || !leg.is_multiple_of(2) {
            return None;
        }
        let i = usize::from((leg - self.first) / 2);
        (i < self.legs.len()).then_some(i)
    }

    fn leg(&self, leg: LegId) -> Option<&Leg> {
        self.slot(leg).and_then(|i| self.legs[i].as_deref())
    }

    fn leg_mut(&mut self, leg: LegId) -> Option<&mut Leg> {
        let i = self.slot(leg)?;
        self.legs[i].as_deref_mut()
    }

    /// Whether `leg` is open here.
    pub fn has_leg(&self, leg: LegId) -> bool {
        self.leg(leg).is_some()
    }

    /// The next generated packet to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next report for the signalling core.
    pub fn poll_event(&mut self) -> Option<MediaEvent> {
        self.events.pop_front()
    }

    /// When to call [`Shard::handle_timeout`]: the next tick.
    pub fn poll_timeout(&self) -> Instant {
        self.next_tick
    }

    /// A leg's statistics so far.
    pub fn leg_stats(&self, leg: LegId) -> Option<LegStats> {
        self.leg(leg).map(|l| l.rx.snapshot(&self.config.emodel))
    }

    /// Where `leg` sends now (latched or SDP address), if anywhere.
    pub fn leg_destination(&self, leg: LegId) -> Option<SocketAddr> {
        self.leg(leg).and_then(Leg::dest)
    }

    // ------------------------------------------------------------ commands --

    /// One command.
    pub fn handle_command(&mut self, cmd: MediaCommand, now: Instant) {
        match cmd {
            MediaCommand::Open { leg } => self.open(leg, now),
            MediaCommand::Update { leg, params } => {
                let inband = self.config.inband_dtmf;
                if let Some(l) = self.leg_mut(leg) {
                    let was_recv = l.params.as_ref().is_some_and(|p| p.recv);
                    if params.recv && !was_recv {
                        l.armed = now;
                        l.timed_out = false;
                    }
                    // A new SDP address is a new peer: latch again.
                    if l.params.as_ref().map(|p| p.remote) != Some(params.remote) {
                        l.latched = None;
                    }
                    l.inband = if params.event_pt.is_none() && inband {
                        l.inband.take().or_else(|| Some(Box::default()))
                    } else {
                        None
                    };
                    l.params = Some(params);
                }
            }
            MediaCommand::Connect { a, b } => {
                if a == b || !self.has_leg(a) || !self.has_leg(b) {
                    return;
                }
                for x in [a, b] {
                    self.disconnect(x);
                    self.leave(x);
                }
                if let Some(l) = self.leg_mut(a) {
                    l.peer = Some(b);
                }
                if let Some(l) = self.leg_mut(b) {
                    l.peer = Some(a);
                }
            }
            MediaCommand::Disconnect { leg } => self.disconnect(leg),
            MediaCommand::Play {
                leg,
                what,
                repeat,
                barge_in,
            } => {
                if let Some(l) = self.leg_mut(leg) {
                    l.play = Some(Playback {
                        what,
                        pos: 0,
                        repeat,
                        barge_in,
                    });
                }
            }
            MediaCommand::Stop { leg } => {
                if let Some(l) = self.leg_mut(leg) {
                    l.play = None;
                }
            }
            MediaCommand::SendDigit {
                leg,
                digit,
                duration,
            } => {
                if let Some(l) = self.leg_mut(leg) {
                    if let Ok(packets) = DtmfSender::new(digit, duration, TICK, SAMPLE_RATE) {
                        l.digit_out.push_back(DigitOut {
                            packets,
                            start: true,
                        });
                    }
                }
            }
            MediaCommand::Join { conf, leg } => {
                if !self.has_leg(leg) {
                    return;
                }
                self.disconnect(leg);
                self.leave(leg);
                let mixer = self.confs.entry(conf).or_default();
                if mixer.join(leg).is_ok() {
                    if let Some(l) = self.leg_mut(leg) {
                        l.conf = Some(conf);
                    }
                }
            }
            MediaCommand::Leave { leg } => self.leave(leg),
            MediaCommand::Mute { leg, muted } => {
                if let Some(conf) = self.leg(leg).and_then(|l| l.conf) {
                    if let Some(m) = self.confs.get_mut(&conf) {
                        let _ = m.set_muted(leg, muted);
                    }
                }
            }
            MediaCommand::Close { leg } => self.close(leg),
        }
    }

    fn open(&mut self, leg: LegId, now: Instant) {
        let Some(i) = self.slot(leg) else {
            self.events.push_back(MediaEvent::OpenFailed {
                leg,
                error: "port not owned by this shard".into(),
            });
            return;
        };
        if self.legs[i].is_some() {
            // Reopened without a close: start clean.
            self.close(leg);
        }
        let r = self.rng.next_u64();
        let out = OutStream::new(r as u32, SAMPLE_RATE, (r >> 32) as u16, (r >> 48) as u32);
        self.legs[i] = Some(Box::new(Leg {
            params: None,
            latched: None,
            peer: None,
            conf: None,
            out,
            rx: RtpStats::new(),
            dtmf: DtmfReceiver::new(SAMPLE_RATE),
            inband: None,
            last_rx: None,
            armed: now,
            timed_out: false,
            play: None,
            digit_out: VecDeque::new(),
            rtcp_from: None,
            last_sr: None,
        }));
        self.open += 1;
        self.stats.legs_opened += 1;
    }

    fn disconnect(&mut self, leg: LegId) {
        let peer = self.leg_mut(leg).and_then(|l| l.peer.take());
        if let Some(p) = peer {
            if let Some(pl) = self.leg_mut(p) {
                if pl.peer == Some(leg) {
                    pl.peer = None;
                }
            }
        }
    }

    fn leave(&mut self, leg: LegId) {
        let Some(conf) = self.leg_mut(leg).and_then(|l| l.conf.take()) else {
            return;
        };
        if let Some(m) = self.confs.get_mut(&conf) {
            let _ = m.leave(leg);
            if m.is_empty() {
                self.confs.remove(&conf);
            }
        }
    }

    fn close(&mut self, leg: LegId) {
        self.disconnect(leg);
        self.leave(leg);
        let Some(i) = self.slot(leg) else { return };
        if let Some(l) = self.legs[i].take() {
            self.open -= 1;
            self.stats.legs_closed += 1;
            self.events.push_back(MediaEvent::Closed {
                leg,
                stats: Box::new(l.rx.snapshot(&self.config.emodel)),
            });
        }
    }

    // ------------------------------------------------------------- packets --

    /// RTCP received on a leg's RTCP port (port + 1) from `from`: checked
    /// and counted; a sender report's timestamp is kept for our next
    /// report's LSR/DLSR; the source is where our reports go (symmetric
    /// RTCP). The shard terminates RTCP: each leg is its own RTP session.
    pub fn handle_rtcp(&mut self, leg: LegId, from: SocketAddr, buf: &[u8], now: Instant) {
        let Some(l) = self.slot(leg).and_then(|i| self.legs[i].as_deref_mut()) else {
            self.stats.unknown_leg += 1;
            return;
        };
        if rtp::check_rtcp(buf).is_err() {
            self.stats.malformed += 1;
            return;
        }
        self.stats.rtcp += 1;
        l.rtcp_from = Some(from);
        if let Some((_, mid)) = rtp::sender_report_lsr(buf) {
            l.last_sr = Some((mid, now));
        }
    }

    /// A datagram received on `leg`'s RTP port from `from`: the first
    /// `len` bytes of `buf`. Relayed packets are rewritten in place; the
    /// answer says whether to send them on.
    pub fn handle_rtp(
        &mut self,
        leg: LegId,
        from: SocketAddr,
        buf: &mut [u8],
        len: usize,
        now: Instant,
    ) -> Forward {
        let Some(i) = self.slot(leg) else {
            self.stats.unknown_leg += 1;
            return Forward::Done;
        };
        let len = len.min(buf.len());
        let pkt = &mut buf[..len];
        let latching = self.config.latching;
        let Some(l) = self.legs[i].as_deref_mut() else {
            self.stats.unknown_leg += 1;
            return Forward::Done;
        };
        if rtp::is_rtcp(pkt) {
            // rtcp-mux (RFC 5761): RTCP on the RTP port.
            if rtp::check_rtcp(pkt).is_ok() {
                self.stats.rtcp += 1;
                if let Some((_, mid)) = rtp::sender_report_lsr(pkt) {
                    l.last_sr = Some((mid, now));
                }
            } else {
                self.stats.malformed += 1;
            }
            return Forward::Done;
        }
        // The one parse of this packet on the way through: the relay below
        // works on the payload range it finds (padding excluded).
        let (pt, marker, seq, ts, ssrc, payload) = match Rtp::parse(pkt) {
            Ok(p) => (
                p.payload_type(),
                p.marker(),
                p.sequence(),
                p.timestamp(),
                p.ssrc(),
                p.header_len()..p.header_len() + p.payload().len(),
            ),
            Err(_) => {
                self.stats.malformed += 1;
                return Forward::Done;
            }
        };
        let Some(params) = l.params.as_ref() else {
            self.stats.unconfigured += 1;
            return Forward::Done;
        };
        let (voice_pt, event_pt, codec) = (params.voice_pt, params.event_pt, params.codec);
        // Latching.
        if latching == Latching::Symmetric {
            match l.latched {
                None => {
                    l.latched = Some(from);
                    self.stats.latched += 1;
                }
                Some(src) if src != from => {
                    let idle = l
                        .last_rx
                        .is_none_or(|t| now.saturating_duration_since(t) >= RELATCH_AFTER);
                    if idle {
                        l.latched = Some(from);
                        self.stats.latched += 1;
                    } else {
                        self.stats.foreign_source += 1;
                        return Forward::Done;
                    }
                }
                Some(_) => {}
            }
        }
        self.stats.received += 1;
        l.last_rx = Some(now);
        l.timed_out = false;
        l.rx.on_receive(now, ssrc, seq, ts, payload.len());

        let is_event = if pt == voice_pt {
            false
        } else if Some(pt) == event_pt {
            true
        } else {
            self.stats.unknown_pt += 1;
            return Forward::Done;
        };
        let mut barge = false;
        if is_event {
            let _ = l.dtmf.handle_packet(ts, marker, &pkt[payload.clone()], now);
            while let Some(d) = l.dtmf.poll_digit() {
                self.stats.digits += 1;
                barge |= l.play.as_ref().is_some_and(|p| p.barge_in);
                self.events.push_back(MediaEvent::Digit {
                    leg,
                    digit: d.digit,
                    source: DigitSource::Rfc4733,
                });
            }
        } else if l.inband.is_some() || l.conf.is_some() {
            let mut pcm = [0i16; FRAME_SAMPLES];
            for chunk in pkt[payload.clone()].chunks(FRAME_SAMPLES) {
                let n = chunk.len();
                for (dst, &code) in pcm.iter_mut().zip(chunk) {
                    *dst = codec.decode_sample(code);
                }
                if let Some(det) = l.inband.as_mut() {
                    det.push(&pcm[..n]);
                    while let Some(digit) = det.poll_digit() {
                        self.stats.digits += 1;
                        barge |= l.play.as_ref().is_some_and(|p| p.barge_in);
                        self.events.push_back(MediaEvent::Digit {
                            leg,
                            digit,
                            source: DigitSource::Inband,
                        });
                    }
                }
                if let (Some(conf), true) = (l.conf, n == FRAME_SAMPLES) {
                    if let Some(m) = self.confs.get_mut(&conf) {
                        let _ = m.put(leg, &pcm);
                    }
                }
            }
        }
        if barge {
            l.play = None;
            self.events.push_back(MediaEvent::PlaybackDone {
                leg,
                interrupted: true,
            });
        }
        if l.conf.is_some() {
            return Forward::Done;
        }
        let Some(peer) = l.peer else {
            self.stats.not_forwarded += 1;
            return Forward::Done;
        };
        let Some(p) = self.slot(peer).and_then(|j| self.legs[j].as_deref_mut()) else {
            self.stats.not_forwarded += 1;
            return Forward::Done;
        };
        relay_into(p, pkt, payload, is_event, codec, now, peer, &mut self.stats)
    }

    // --------------------------------------------------------------- ticks --

    /// The tick: generated audio (prompts, tones, DTMF, conferences) for
    /// every tick up to `now`, DTMF receiver deadlines, RTP timeouts.
    pub fn handle_timeout(&mut self, now: Instant) {
        while self.next_tick <= now {
            let at = self.next_tick;
            self.tick(at);
            self.reports(at);
            self.next_tick = at + TICK;
            self.tick_count += 1;
            if self.tick_count.is_multiple_of(TIMEOUT_CHECK_TICKS) {
                self.check_rtp_timeouts(at);
            }
        }
    }

    fn tick(&mut self, now: Instant) {
        for i in 0..self.legs.len() {
            let Some(l) = self.legs[i].as_deref_mut() else {
                continue;
            };
            let leg = self.first + 2 * i as u16;
            // A DTMF receiver's lost end packet.
            if l.dtmf.poll_timeout().is_some_and(|t| t <= now) {
                l.dtmf.handle_timeout(now);
                while let Some(d) = l.dtmf.poll_digit() {
                    self.stats.digits += 1;
                    self.events.push_back(MediaEvent::Digit {
                        leg,
                        digit: d.digit,
                        source: DigitSource::Rfc4733,
                    });
                }
            }
            let Some(params) = l.params.as_ref() else {
                continue;
            };
            let dest = l.dest();
            // DTMF out takes precedence over a prompt.
            if let Some(d) = l.digit_out.front_mut() {
                let start = std::mem::replace(&mut d.start, false);
                let next = d.packets.next();
                match (next, params.event_pt, dest) {
                    (Some(ev), Some(pt), Some(to)) => {
                        let h = l
                            .out
                            .generated_event(pt, start, u32::from(ev.duration), now);
                        let out = Out {
                            transmits: &mut self.transmits,
                            stats: &mut self.stats,
                        };
                        out.emit(&mut l.rx, leg, to, h, &ev.payload);
                    }
                    (Some(_), _, _) => {}
                    (None, _, _) => {
                        l.digit_out.pop_front();
                    }
                }
                if !l.digit_out.is_empty() {
                    continue;
                }
            }
            let Some(play) = l.play.as_mut() else {
                continue;
            };
            let codec = params.codec;
            let pt = params.voice_pt;
            let frames = play.what.frames(codec);
            if play.pos >= frames.len() {
                if play.repeat && !frames.is_empty() {
                    play.pos = 0;
                } else {
                    l.play = None;
                    self.events.push_back(MediaEvent::PlaybackDone {
                        leg,
                        interrupted: false,
                    });
                    continue;
                }
            }
            let frame = &frames[play.pos];
            play.pos += 1;
            if let Some(to) = dest {
                let h = l.out.generated(pt, FRAME_SAMPLES as u32, now);
                let out = Out {
                    transmits: &mut self.transmits,
                    stats: &mut self.stats,
                };
                out.emit(&mut l.rx, leg, to, h, frame);
            }
        }
        self.mix(now);
    }

    /// RTCP reports of the legs whose turn it is: each leg every 5 s,
    /// spread over the ticks by its slot.
    fn reports(&mut self, now: Instant) {
        // Slot i reports when (tick + i + REPORT_TICKS / 2) is a multiple of
        // REPORT_TICKS: the legs' reports spread over the ticks (and none in
        // the shard's first 2.5 s).
        let phase = (self.tick_count + REPORT_TICKS / 2) % REPORT_TICKS;
        let ntp = self.ntp_at(now);
        let mut i = ((REPORT_TICKS - phase) % REPORT_TICKS) as usize;
        while i < self.legs.len() {
            let leg = self.first + 2 * i as u16;
            if let Some(l) = self.legs[i].as_deref_mut() {
                if let Some(t) = report(l, leg, now, ntp, &self.cname) {
                    self.stats.rtcp_sent += 1;
                    self.transmits.push_back(t);
                }
            }
            i += REPORT_TICKS as usize;
        }
    }

    fn mix(&mut self, now: Instant) {
        if self.confs.is_empty() {
            return;
        }
        let mut outs: Vec<(LegId, PcmFrame)> = Vec::new();
        for m in self.confs.values_mut() {
            outs.extend(m.mix().map(|(id, f)| (id, *f)));
        }
        for (leg, pcm) in outs {
            let Some(i) = self.slot(leg) else { continue };
            let Some(l) = self.legs[i].as_deref_mut() else {
                continue;
            };
            if l.play.is_some() || !l.digit_out.is_empty() {
                continue;
            }
            let (Some(params), Some(to)) = (l.params.as_ref(), l.dest()) else {
                continue;
            };
            let frame = params.codec.encode_frame(&pcm);
            let h = l.out.generated(params.voice_pt, FRAME_SAMPLES as u32, now);
            let out = Out {
                transmits: &mut self.transmits,
                stats: &mut self.stats,
            };
            out.emit(&mut l.rx, leg, to, h, &frame);
        }
    }

    fn check_rtp_timeouts(&mut self, now: Instant) {
        let timeout = self.config.rtp_timeout;
        for i in 0..self.legs.len() {
            let Some(l) = self.legs[i].as_deref_mut() else {
                continue;
            };
            let expecting = l.params.as_ref().is_some_and(|p| p.recv);
            if !expecting || l.timed_out {
                continue;
            }
            let since = match l.last_rx {
                Some(t) if t > l.armed => t,
                _ => l.armed,
            };
            if now.saturating_duration_since(since) >= timeout {
                l.timed_out = true;
                self.stats.rtp_timeouts += 1;
                self.events.push_back(MediaEvent::RtpTimeout {
                    leg: self.first + 2 * i as u16,
                });
            }
        }
    }
}

/// Where generated packets go (the shard's queue and counters, borrowed
/// beside one leg).
struct Out<'a> {
    transmits: &'a mut VecDeque<Transmit>,
    stats: &'a mut ShardStats,
}

impl Out<'_> {
    /// Queue a packet the shard made: `h`'s header, then `payload`, from
    /// `leg`'s RTP socket to `to`, counted on the leg and the shard.
    fn emit(
        self,
        rx: &mut RtpStats,
        leg: LegId,
        to: SocketAddr,
        h: rtp::GenHeader,
        payload: &[u8],
    ) {
        let mut data = vec![0u8; rtp::HEADER_LEN + payload.len()];
        if h.write(&mut data).is_err() {
            return;
        }
        data[rtp::HEADER_LEN..].copy_from_slice(payload);
        rx.on_send(payload.len());
        self.stats.generated += 1;
        self.transmits.push_back(Transmit {
            leg,
            rtcp: false,
            to,
            data,
        });
    }
}

/// A leg's RTCP report now: an SR if it has sent RTP, else an RR; a
/// report block on what it received, if anything.
fn report(l: &mut Leg, leg: LegId, now: Instant, ntp: u64, cname: &str) -> Option<Transmit> {
    let p = l.params.as_ref()?;
    let (to, rtcp) = if p.rtcp_mux {
        (l.latched.or(p.remote)?, false)
    } else {
        (l.rtcp_from.or(p.remote_rtcp)?, true)
    };
    let (packets, octets) = l.rx.sent();
    let sender = match (packets, l.out.timestamp_at(now)) {
        (1.., Some(rtp_ts)) => Some(rtp::SenderInfo {
            ntp,
            rtp_ts,
            packets: packets as u32,
            octets: octets as u32,
        }),
        _ => None,
    };
    let block = l.rx.reception_report().map(|r| {
        let (lsr, dlsr) = match l.last_sr {
            Some((mid, at)) => {
                let d = now.saturating_duration_since(at);
                let units =
                    d.as_secs() * 65_536 + u64::from(d.subsec_nanos()) * 65_536 / 1_000_000_000;
                (mid, u32::try_from(units).unwrap_or(u32::MAX))
            }
            None => (0, 0),
        };
        rtp::ReportBlock {
            ssrc: r.ssrc,
            fraction_lost: r.fraction_lost,
            cumulative_lost: r.cumulative_lost,
            extended_highest_seq: r.extended_highest_seq,
            jitter: r.jitter,
            lsr,
            dlsr,
        }
    });
    let mut data = Vec::with_capacity(96);
    rtp::write_rtcp_report(&mut data, l.out.ssrc(), sender, block, cname);
    Some(Transmit {
        leg,
        rtcp,
        to,
        data,
    })
}

/// Rewrite `pkt` (its payload at `payload`, as parsed by the caller) for
/// the peer leg `p`: payload type, transcoding, the peer's continuous
/// stream (SSRC, sequence, timestamp).
#[allow(clippy::too_many_arguments)]
fn relay_into(
    p: &mut Leg,
    pkt: &mut [u8],
    payload: std::ops::Range<usize>,
    is_event: bool,
    codec: Codec,
    now: Instant,
    peer: LegId,
    stats: &mut ShardStats,
) -> Forward {
    let Some(pp) = p.params.as_ref() else {
        stats.not_forwarded += 1;
        return Forward::Done;
    };
    // Not latched yet: the SDP address.
    let Some(to) = p.latched.or(pp.remote) else {
        stats.not_forwarded += 1;
        return Forward::Done;
    };
    if !pp.send || p.play.is_some() || !p.digit_out.is_empty() {
        // On hold, or the peer hears a prompt or a digit of ours.
        stats.not_forwarded += 1;
        return Forward::Done;
    }
    let out_pt = if is_event {
        match pp.event_pt {
            Some(pt) => pt,
            None => {
                // The peer has no telephone-event: the digit was reported;
                // it cannot be passed on as an event.
                stats.not_forwarded += 1;
                return Forward::Done;
            }
        }
    } else {
        pp.voice_pt
    };
    let peer_codec = pp.codec;
    let payload_len = payload.len();
    // The payload type is the low 7 bits of byte 1 (RFC 3550 §5.1); the
    // packet was parsed already, so no second parse for it.
    pkt[1] = (pkt[1] & 0x80) | (out_pt & 0x7f);
    if !is_event && peer_codec != codec {
        let body = &mut pkt[payload];
        match codec {
            Codec::Pcma => g711::transcode_alaw_to_ulaw(body),
            Codec::Pcmu => g711::transcode_ulaw_to_alaw(body),
        }
        stats.transcoded += 1;
    }
    match p.out.relay(pkt, now) {
        Ok(Relayed::Send) => {
            p.rx.on_send(payload_len);
            stats.relayed += 1;
            Forward::Send {
                leg: peer,
                to,
                len: pkt.len(),
            }
        }
        Ok(Relayed::Drop(_)) | Err(_) => {
            stats.stream_dropped += 1;
            Forward::Done
        }
    }
}

#[cfg(test)]
mod tests;
