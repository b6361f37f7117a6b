//! The signalling side of media anchoring: ports, SDP on both legs, and
//! the commands that tell the media shards what each call's legs do.
//!
//! Every call gets two legs on one shard (ports from [`PortPool`]). The
//! caller's offer is negotiated against our preferences (a refusal is the
//! caller's 488/400); the callee gets **our** offer on the B leg port; the
//! callee's answer sets the B leg; the caller gets our answer on the A leg
//! port. Re-offers (hold, a new address) are negotiated on the leg they
//! come from and re-offered on the other leg with the same direction. No
//! address of one side ever reaches the other.

use crate::call::Side;
use crate::config::Media as MediaConfig;
use crate::ids::CallId;
use crate::media::pool::PortPool;
use crate::media::shard::{DigitSource, LegId, LegParams, MediaCommand, Playable};
use crate::media::tone::{Tone, ToneSignal};
use crate::media::wav::Prompt;
use crate::media::Codec;
use crate::sip::sdp::{
    self, CodecId, Direction, Local, Negotiated, OriginState, Prefs, SdpError, SessionDesc,
    DEFAULT_PTIME, TELEPHONE_EVENT_PT,
};
use crate::time::Instant;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// Why a call cannot have media: the status the caller gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// SIP status (400, 488, 503).
    pub status: u16,
    /// `Warning` header value, for 488.
    pub warning: Option<String>,
    /// `Reason` text.
    pub reason: String,
    /// Label for `hotline_calls_total{outcome}`.
    pub outcome: &'static str,
}

/// One leg's SDP state.
#[derive(Debug)]
pub struct LegSdp {
    /// Our RTP port on this leg (the leg id in the shard).
    pub port: LegId,
    origin: OriginState,
    /// The last offer the peer sent on this leg (what we answer).
    remote_offer: Option<SessionDesc>,
    /// The last offer we sent on this leg (what the peer answers).
    our_offer: Option<SessionDesc>,
    /// What was agreed on this leg.
    negotiated: Option<Negotiated>,
}

impl LegSdp {
    fn new(port: LegId, session_id: u64) -> LegSdp {
        LegSdp {
            port,
            origin: OriginState::new("hotline", session_id),
            remote_offer: None,
            our_offer: None,
            negotiated: None,
        }
    }

    /// What was agreed, if anything yet.
    pub fn negotiated(&self) -> Option<&Negotiated> {
        self.negotiated.as_ref()
    }
}

/// A call's media.
#[derive(Debug)]
pub struct CallMedia {
    /// The shard both legs live on.
    pub shard: usize,
    /// Toward the caller.
    pub a: LegSdp,
    /// Toward the callee.
    pub b: LegSdp,
    /// Ringback plays into the A leg.
    pub ringback: bool,
    /// The legs relay to each other.
    pub connected: bool,
    last_digit: Option<(char, DigitSource, Instant)>,
}

impl CallMedia {
    fn leg(&self, side: Side) -> &LegSdp {
        match side {
            Side::A => &self.a,
            Side::B => &self.b,
        }
    }

    fn leg_mut(&mut self, side: Side) -> &mut LegSdp {
        match side {
            Side::A => &mut self.a,
            Side::B => &mut self.b,
        }
    }
}

/// A digit pressed on a leg, once, whatever carried it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Digit {
    /// The digit.
    pub digit: char,
    /// How.
    pub source: DigitSource,
}

/// Two sources reporting the same digit within this are one press (a
/// carrier sending both INFO and RFC 4733, or tones and events).
const SAME_PRESS: Duration = Duration::from_millis(300);

/// The media side of the B2BUA: the port pool, preferences, the tones, and
/// the commands for the shards.
pub struct MediaPlane {
    pool: PortPool,
    prefs: Prefs,
    addr: IpAddr,
    ringback: Option<Arc<ToneSignal>>,
    commands: VecDeque<(usize, MediaCommand)>,
    legs: HashMap<LegId, (CallId, Side)>,
    /// Counters.
    pub stats: MediaPlaneStats,
}

/// Counters for /metrics.
#[derive(Debug, Default, Clone)]
pub struct MediaPlaneStats {
    /// Calls refused for lack of RTP ports.
    pub ports_exhausted: u64,
    /// Offers refused (no audio, no common codec, malformed).
    pub sdp_refused: u64,
    /// Answers from a callee we could not use.
    pub bad_answers: u64,
    /// Digits from a second source for a press already reported.
    pub digits_deduplicated: u64,
}

impl MediaPlane {
    /// From `[media]`, with `shards` media threads (fewer if the port
    /// range is too small to give each shard a share).
    pub fn new(config: &MediaConfig, shards: usize) -> MediaPlane {
        let pool = PortPool::new(config.port_min, config.port_max, shards)
            .or_else(|_| PortPool::new(config.port_min, config.port_max, 1))
            .unwrap_or_else(|_| PortPool::empty());
        MediaPlane {
            pool,
            prefs: Prefs {
                codecs: config.codecs.clone(),
                ..Prefs::default()
            },
            addr: config.advertise,
            ringback: config
                .ringback
                .then(|| Arc::new(ToneSignal::new(Tone::Ringback))),
            commands: VecDeque::new(),
            legs: HashMap::new(),
            stats: MediaPlaneStats::default(),
        }
    }

    /// The pool (ranges per shard, for the driver).
    pub fn pool(&self) -> &PortPool {
        &self.pool
    }

    /// The next command for a shard.
    pub fn poll_command(&mut self) -> Option<(usize, MediaCommand)> {
        self.commands.pop_front()
    }

    /// Which call and side a leg belongs to.
    pub fn leg_owner(&self, leg: LegId) -> Option<(CallId, Side)> {
        self.legs.get(&leg).copied()
    }

    fn send(&mut self, shard: usize, cmd: MediaCommand) {
        self.commands.push_back((shard, cmd));
    }

    fn update(&mut self, shard: usize, port: LegId, n: &Negotiated) {
        if let Some(params) = params_of(n) {
            self.send(shard, MediaCommand::Update { leg: port, params });
        }
    }

    /// A new call: negotiate the caller's offer (if the INVITE has one),
    /// take two ports, open both legs. Returns the call's media and our
    /// offer for the callee.
    pub fn open_call(
        &mut self,
        cid: CallId,
        a_offer: Option<&[u8]>,
        session_ids: (u64, u64),
    ) -> Result<(CallMedia, String), Refusal> {
        let a_remote = match a_offer {
            Some(body) => {
                let offer = sdp::parse(body).map_err(|e| self.refuse(&e))?;
                let n = sdp::negotiate(&offer, &self.prefs).map_err(|e| self.refuse(&e))?;
                Some((offer, n))
            }
            None => None,
        };
        let Some(shard) = self.pool.pick_shard(2) else {
            self.stats.ports_exhausted += 1;
            return Err(Refusal {
                status: 503,
                warning: None,
                reason: "No RTP ports free".into(),
                outcome: "media_ports_exhausted",
            });
        };
        let (Some(a), Some(b)) = (self.pool.alloc(shard), self.pool.alloc(shard)) else {
            // pick_shard said two are free.
            self.stats.ports_exhausted += 1;
            return Err(Refusal {
                status: 503,
                warning: None,
                reason: "No RTP ports free".into(),
                outcome: "media_ports_exhausted",
            });
        };
        self.legs.insert(a, (cid, Side::A));
        self.legs.insert(b, (cid, Side::B));
        self.send(shard, MediaCommand::Open { leg: a });
        self.send(shard, MediaCommand::Open { leg: b });
        let mut m = CallMedia {
            shard,
            a: LegSdp::new(a, session_ids.0),
            b: LegSdp::new(b, session_ids.1),
            ringback: false,
            connected: false,
            last_digit: None,
        };
        // The callee gets the caller's codec first (no transcoding when it
        // can), then our other codecs; the caller's direction (an INVITE
        // that starts on hold stays on hold).
        let (codecs, direction) = match &a_remote {
            Some((_, n)) => (
                first_then(n.codec.id(), &self.prefs.codecs),
                n.direction.reverse(),
            ),
            None => (self.prefs.codecs.clone(), Direction::SendRecv),
        };
        if let Some((offer, n)) = a_remote {
            self.update(shard, a, &n);
            m.a.remote_offer = Some(offer);
            m.a.negotiated = Some(n);
        }
        let body = self.our_offer(&mut m, Side::B, &codecs, direction);
        Ok((m, body))
    }

    fn refuse(&mut self, e: &SdpError) -> Refusal {
        self.stats.sdp_refused += 1;
        Refusal {
            status: e.status(),
            warning: e.warning_header(&self.addr.to_string()),
            reason: e.to_string(),
            outcome: "sdp_refused",
        }
    }

    /// Write (and remember) our offer on `side`.
    fn our_offer(
        &mut self,
        m: &mut CallMedia,
        side: Side,
        codecs: &[CodecId],
        direction: Direction,
    ) -> String {
        let addr = self.addr;
        let leg = m.leg_mut(side);
        let body = sdp::offer(
            Local {
                addr,
                port: leg.port,
                origin: &mut leg.origin,
            },
            codecs,
            Some(TELEPHONE_EVENT_PT),
            direction,
            DEFAULT_PTIME,
        );
        leg.our_offer = sdp::parse(body.as_bytes()).ok();
        body
    }

    /// Our answer on `side` to the offer it sent, as negotiated.
    fn our_answer(&mut self, m: &mut CallMedia, side: Side) -> Option<String> {
        let addr = self.addr;
        let leg = m.leg_mut(side);
        let (offer, n) = (leg.remote_offer.as_ref()?, leg.negotiated.as_ref()?);
        Some(sdp::answer(
            offer,
            n,
            Local {
                addr,
                port: leg.port,
                origin: &mut leg.origin,
            },
        ))
    }

    /// The peer on `side` answered the offer we sent there.
    fn take_answer(&mut self, m: &mut CallMedia, side: Side, body: &[u8]) -> Result<(), SdpError> {
        let leg = m.leg(side);
        let Some(ours) = leg.our_offer.as_ref() else {
            return Err(SdpError::NoAudio);
        };
        let answer = sdp::parse(body)?;
        let n = sdp::answered(ours, &answer)?;
        let (shard, port) = (m.shard, leg.port);
        self.update(shard, port, &n);
        m.leg_mut(side).negotiated = Some(n);
        Ok(())
    }

    fn connect(&mut self, m: &mut CallMedia) {
        if m.ringback {
            m.ringback = false;
            self.send(m.shard, MediaCommand::Stop { leg: m.a.port });
        }
        if !m.connected && m.a.negotiated.is_some() && m.b.negotiated.is_some() {
            m.connected = true;
            self.send(
                m.shard,
                MediaCommand::Connect {
                    a: m.a.port,
                    b: m.b.port,
                },
            );
        }
    }

    /// The callee answered (early media in a 18x, or the 2xx) with `body`.
    /// Returns our answer for the caller (or, when the caller sent no
    /// offer, our offer to the caller), to put in the response relayed to
    /// the caller. `None` if the callee's SDP is unusable (logged, counted;
    /// the call goes on without that answer).
    pub fn callee_sdp(&mut self, m: &mut CallMedia, body: &[u8], cid: CallId) -> Option<String> {
        if let Err(e) = self.take_answer(m, Side::B, body) {
            self.stats.bad_answers += 1;
            tracing::debug!(call = %cid, error = %e, "unusable SDP answer from the callee");
        }
        self.connect(m);
        self.caller_sdp(m)
    }

    /// The callee's 2xx has no SDP: its answer came in a 18x (or never, and
    /// the call has no media). Ringback stops either way.
    pub fn callee_answered_without_sdp(&mut self, m: &mut CallMedia) {
        self.connect(m);
    }

    /// The SDP for a response to the caller when the callee's carries none:
    /// our answer (or our offer, for an INVITE without one).
    pub fn caller_sdp(&mut self, m: &mut CallMedia) -> Option<String> {
        if m.a.remote_offer.is_some() {
            return self.our_answer(m, Side::A);
        }
        if m.a.our_offer.is_some() {
            // Late offer: the same offer again (RFC 3261 §13.2.1).
            let addr = self.addr;
            let leg = &mut m.a;
            let offer = leg.our_offer.clone()?;
            let codecs: Vec<CodecId> = offer
                .media
                .first()
                .map(|x| x.codecs.iter().filter_map(sdp::Codec::id).collect())
                .unwrap_or_default();
            return Some(sdp::offer(
                Local {
                    addr,
                    port: leg.port,
                    origin: &mut leg.origin,
                },
                &codecs,
                Some(TELEPHONE_EVENT_PT),
                Direction::SendRecv,
                DEFAULT_PTIME,
            ));
        }
        // Late offer, first time: offer the callee's codec first.
        let first = m.b.negotiated.as_ref().and_then(|n| n.codec.id());
        let codecs = first_then(first, &self.prefs.codecs);
        Some(self.our_offer(m, Side::A, &codecs, Direction::SendRecv))
    }

    /// The callee rings without early media: play ringback to the caller
    /// (when configured and the caller's media is known). Returns whether
    /// the provisional response to the caller should carry our SDP.
    pub fn ringing(&mut self, m: &mut CallMedia) -> bool {
        let Some(tone) = self.ringback.clone() else {
            return false;
        };
        if m.connected || m.a.negotiated.is_none() {
            return false;
        }
        if !m.ringback {
            m.ringback = true;
            self.send(
                m.shard,
                MediaCommand::Play {
                    leg: m.a.port,
                    what: Playable::Tone(tone),
                    repeat: true,
                    barge_in: false,
                },
            );
        }
        true
    }

    /// The caller's ACK to our 2xx carried `body`: its answer to our offer
    /// (late offer).
    pub fn caller_ack(&mut self, m: &mut CallMedia, body: &[u8], cid: CallId) {
        if m.a.our_offer.is_none() || m.a.remote_offer.is_some() {
            return;
        }
        if let Err(e) = self.take_answer(m, Side::A, body) {
            self.stats.bad_answers += 1;
            tracing::debug!(call = %cid, error = %e, "unusable SDP answer in the caller's ACK");
        }
        self.connect(m);
    }

    /// A re-offer from `side` (re-INVITE or UPDATE): negotiate it there and
    /// return our offer for the other side, with the same direction.
    pub fn reoffer(
        &mut self,
        m: &mut CallMedia,
        side: Side,
        body: &[u8],
    ) -> Result<String, Refusal> {
        let offer = sdp::parse(body).map_err(|e| self.refuse(&e))?;
        let n = sdp::negotiate(&offer, &self.prefs).map_err(|e| self.refuse(&e))?;
        let shard = m.shard;
        let port = m.leg(side).port;
        self.update(shard, port, &n);
        let direction = n.direction.reverse();
        {
            let leg = m.leg_mut(side);
            leg.remote_offer = Some(offer);
            leg.negotiated = Some(n);
        }
        let other = side.other();
        let codecs: Vec<CodecId> = m
            .leg(other)
            .negotiated
            .as_ref()
            .and_then(|n| n.codec.id())
            .into_iter()
            .collect();
        Ok(self.our_offer(m, other, &codecs, direction))
    }

    /// A re-offer from the caller while no other leg takes it (a flow
    /// runs): negotiate it and return our answer.
    pub fn answer_locally(&mut self, m: &mut CallMedia, body: &[u8]) -> Result<String, Refusal> {
        let offer = sdp::parse(body).map_err(|e| self.refuse(&e))?;
        let n = sdp::negotiate(&offer, &self.prefs).map_err(|e| self.refuse(&e))?;
        let (shard, port) = (m.shard, m.a.port);
        self.update(shard, port, &n);
        m.a.remote_offer = Some(offer);
        m.a.negotiated = Some(n);
        self.our_answer(m, Side::A).ok_or_else(|| Refusal {
            status: 488,
            warning: None,
            reason: "No answer possible".into(),
            outcome: "sdp_refused",
        })
    }

    /// The other side answered the re-offer of `from`: take its answer and
    /// return our answer for `from`.
    pub fn reanswer(
        &mut self,
        m: &mut CallMedia,
        from: Side,
        body: &[u8],
        cid: CallId,
    ) -> Option<String> {
        if let Err(e) = self.take_answer(m, from.other(), body) {
            self.stats.bad_answers += 1;
            tracing::debug!(call = %cid, error = %e, "unusable SDP answer to our re-offer");
        }
        self.our_answer(m, from)
    }

    /// A digit reported on `leg` (by a shard or from SIP INFO): `Some` the
    /// first time a press is seen, `None` for the same press from another
    /// source.
    pub fn digit(
        &mut self,
        m: &mut CallMedia,
        digit: char,
        source: DigitSource,
        now: Instant,
    ) -> Option<Digit> {
        if let Some((d, s, at)) = m.last_digit {
            if d == digit && s != source && now.saturating_duration_since(at) < SAME_PRESS {
                self.stats.digits_deduplicated += 1;
                return None;
            }
        }
        m.last_digit = Some((digit, source, now));
        Some(Digit { digit, source })
    }

    /// Play `prompt` into the caller's leg (a flow's prompt).
    pub fn play(&mut self, m: &mut CallMedia, prompt: Arc<Prompt>, barge_in: bool) {
        self.play_prompt(m, prompt, false, barge_in);
    }

    /// Play `prompt` into the caller's leg over and over until stopped or
    /// replaced (music on hold).
    pub fn play_looped(&mut self, m: &mut CallMedia, prompt: Arc<Prompt>) {
        self.play_prompt(m, prompt, true, false);
    }

    fn play_prompt(
        &mut self,
        m: &mut CallMedia,
        prompt: Arc<Prompt>,
        repeat: bool,
        barge_in: bool,
    ) {
        m.ringback = false;
        self.send(
            m.shard,
            MediaCommand::Play {
                leg: m.a.port,
                what: Playable::Prompt(prompt),
                repeat,
                barge_in,
            },
        );
    }

    /// Stop what plays into the caller's leg (a prompt, ringback).
    pub fn stop(&mut self, m: &mut CallMedia) {
        m.ringback = false;
        self.send(m.shard, MediaCommand::Stop { leg: m.a.port });
    }

    /// The callee left (the survey follows on the caller's leg): the legs
    /// stop relaying to each other.
    pub fn disconnect(&mut self, m: &mut CallMedia) {
        if m.connected {
            m.connected = false;
            self.send(m.shard, MediaCommand::Disconnect { leg: m.a.port });
        }
    }

    /// The call is over: close both legs and return their ports.
    pub fn close_call(&mut self, m: &CallMedia) {
        for port in [m.a.port, m.b.port] {
            self.send(m.shard, MediaCommand::Close { leg: port });
            self.legs.remove(&port);
            self.pool.release(port);
        }
    }

    /// RTP ports in use (two per call).
    pub fn ports_in_use(&self) -> usize {
        self.pool.in_use()
    }
}

/// `first` (if any), then the rest of `prefs` in order.
fn first_then(first: Option<CodecId>, prefs: &[CodecId]) -> Vec<CodecId> {
    let mut out: Vec<CodecId> = first.into_iter().collect();
    for c in prefs {
        if !out.contains(c) {
            out.push(*c);
        }
    }
    out
}

/// The shard's view of a negotiated leg.
fn params_of(n: &Negotiated) -> Option<LegParams> {
    let codec = match n.codec.id()? {
        CodecId::Pcma => Codec::Pcma,
        CodecId::Pcmu => Codec::Pcmu,
    };
    Some(LegParams {
        remote: n.remote,
        codec,
        voice_pt: n.codec.pt,
        event_pt: n.telephone_event,
        send: n.direction.sends() && n.remote.is_some(),
        recv: n.direction.receives(),
        remote_rtcp: n.remote_rtcp,
        rtcp_mux: n.rtcp_mux,
    })
}

/// Whether a body is SDP by its Content-Type (absent counts as not).
pub fn is_sdp(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|ct| {
        ct.split(';')
            .next()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/sdp"))
    })
}

/// The digit of a SIP INFO `application/dtmf-relay` body (`Signal=5`), or
/// of `application/dtmf` (just the digit).
pub fn info_digit(content_type: &str, body: &[u8]) -> Option<char> {
    let ct = content_type.split(';').next()?.trim().to_ascii_lowercase();
    let text = std::str::from_utf8(body).ok()?;
    let raw = match ct.as_str() {
        "application/dtmf-relay" => text.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            k.trim().eq_ignore_ascii_case("signal").then(|| v.trim())
        })?,
        "application/dtmf" => text.trim(),
        _ => return None,
    };
    let mut chars = raw.chars();
    let c = chars.next()?.to_ascii_uppercase();
    if chars.next().is_some() {
        // Event codes as numbers ("Signal=10" is '*' for some phones).
        return match raw {
            "10" => Some('*'),
            "11" => Some('#'),
            _ => None,
        };
    }
    matches!(c, '0'..='9' | '*' | '#' | 'A'..='D').then_some(c)
}

/// Whether a Content-Type is a DTMF INFO body we consume.
pub fn is_dtmf_info(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|ct| {
        let t = ct.split(';').next().unwrap_or("").trim();
        t.eq_ignore_ascii_case("application/dtmf-relay")
            || t.eq_ignore_ascii_case("application/dtmf")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_bodies() {
        assert_eq!(
            info_digit("application/dtmf-relay", b"Signal=5\r\nDuration=160\r\n"),
            Some('5')
        );
        assert_eq!(
            info_digit("application/dtmf-relay", b"Signal= #\r\n"),
            Some('#')
        );
        assert_eq!(
            info_digit("Application/DTMF-Relay; x=y", b"signal=*\n"),
            Some('*')
        );
        assert_eq!(
            info_digit("application/dtmf-relay", b"Signal=11\r\n"),
            Some('#')
        );
        assert_eq!(info_digit("application/dtmf", b"7"), Some('7'));
        assert_eq!(
            info_digit("application/dtmf-relay", b"Duration=160\r\n"),
            None
        );
        assert_eq!(info_digit("application/dtmf-relay", b"Signal=X\r\n"), None);
        assert_eq!(info_digit("text/plain", b"Signal=5"), None);
        assert_eq!(info_digit("application/dtmf-relay", &[0xff, 0xfe]), None);
    }

    #[test]
    fn sdp_content_types() {
        assert!(is_sdp(Some("application/sdp")));
        assert!(is_sdp(Some("Application/SDP; charset=x")));
        assert!(!is_sdp(Some("multipart/mixed;boundary=x")));
        assert!(!is_sdp(None));
    }
}
