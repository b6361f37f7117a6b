//! The signalling-only B2BUA: what each transaction event does to a call.
//!
//! Inputs are transaction-layer events ([`TsxEvent`]), the ring timer and
//! the trunks' OPTIONS keepalive (owned here, see [`super::keepalive`]);
//! outputs are requests and responses handed back to the transaction layer,
//! and commands for the media shards. Every call's media is anchored: the
//! SDP each side sees is ours (see [`super::media`]), never the other side's.

use super::admission::{Admission, Limit};
use super::keepalive::Keepalive;
use super::media::{info_digit, is_dtmf_info, is_sdp, MediaPlane, Refusal};
use super::record::{Arrival, End, EndedBy, RecordBuilder, RecordItem, WallClock};
use super::{Call, CallState, EndCause, OfferIn, Relay, Side};
use crate::acd::{Acd, AgentIx};
use crate::config::{Config, TargetTransport, Trunk};
use crate::ids::{CallId, IdGen, TsxId};
use crate::media::shard::{DigitSource, MediaCommand, MediaEvent};
use crate::pii::Pii;
use crate::rng::Rng;
use crate::sip::dialog::Dialog;
use crate::sip::digest::{Credentials, DigestServer, Rejection};
use crate::sip::msg::{Hdr, Method, NameAddr, Request, Response, SipHeaders};
use crate::sip::registrar::{Registrar, RegistrarConfig};
use crate::sip::transaction::{Peer, Transactions, TsxEvent};
use crate::sip::transport::{host_literal, Transport};
use crate::time::{Instant, Soonest, TimerQueue};
use bytes::Bytes;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

mod agents;
pub use agents::{AgentCommand, AgentView, QueueView};
mod flow;

/// How long a digest nonce we issue stays good (then `stale=true`).
const NONCE_TTL: Duration = Duration::from_secs(300);

/// Methods we implement, for `Allow` (RFC 3261 §20.5).
pub const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, UPDATE, MESSAGE";

/// Our Contact per transport.
#[derive(Debug, Clone)]
struct Contacts {
    udp: String,
    tcp: String,
}

impl Contacts {
    fn get(&self, t: Transport) -> &str {
        match t {
            Transport::Udp => &self.udp,
            Transport::Tcp => &self.tcp,
        }
    }
}

/// What a transaction is to its call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// The caller's INVITE (server).
    AInvite,
    /// Our INVITE to the destination (client).
    BInvite,
    /// A BYE we sent.
    Bye,
    /// An in-dialog request received on a leg, being relayed (server).
    RelayServer,
    /// The relayed copy on the other leg (client).
    RelayClient,
    /// An agent's INVITE the ACD withdrew (CANCEL sent): a 2xx racing the
    /// CANCEL is ACKed and hung up.
    StaleOffer,
}

/// Counters exported on /metrics by the driver.
#[derive(Debug, Default, Clone)]
pub struct B2buaStats {
    /// Calls that reached the B2BUA (INVITEs accepted for routing).
    pub calls_started: u64,
    /// Calls answered.
    pub calls_answered: u64,
    /// In-dialog requests for which no dialog exists (481).
    pub no_dialog: u64,
    /// Extra 2xx answers from forks after the call was answered, ACKed
    /// and hung up (RFC 3261 §13.2.2.4).
    pub forks_released: u64,
}

/// The B2BUA: calls and the indices that find them.
pub struct B2bua {
    config: Arc<Config>,
    calls: HashMap<CallId, Call>,
    by_tsx: HashMap<TsxId, (CallId, Role)>,
    by_dialog: HashMap<(String, String), (CallId, Side)>,
    ring: TimerQueue<CallId>,
    /// Deadlines of the flows running on calls.
    ivr_timers: TimerQueue<CallId>,
    ids: IdGen,
    rng: Rng,
    draining: bool,
    /// Wall time for call records.
    clock: WallClock,
    /// Records and events waiting for the driver (the outbox).
    records: VecDeque<RecordItem>,
    /// Shared so a handler can hold it while it borrows a call mutably.
    contacts: Arc<Contacts>,
    /// Our advertised host, as written in From and Contact.
    host: String,
    stats: B2buaStats,
    /// Ports, SDP and the commands for the media shards.
    media: MediaPlane,
    /// Per-trunk call caps and rate limits.
    admission: Admission,
    /// OPTIONS pings of the trunks with an `outbound` address.
    keepalive: Keepalive,
    /// Digest challenges and checks for trunks with credentials.
    digest: DigestServer,
    /// Agents, queues and who gets which call.
    acd: Acd,
    /// Agents' phones' registrations.
    registrar: Registrar,
    /// `agent.state_changed` events emitted per agent (their `seq`).
    agent_seq: HashMap<AgentIx, u64>,
}

/// Which B2BUA timer is next (the gateway turns it into its wake-up reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// The callee of this call did not answer within `sip.ring_timeout`.
    Ring(CallId),
    /// The OPTIONS keepalive of trunk `config.trunks[i]` is due.
    Keepalive(usize),
    /// A flow on this call waits for a key or a timer.
    Ivr(CallId),
    /// An ACD timer (ring-no-answer, wrap-up, escalation, max wait,
    /// comfort announcement).
    Acd,
    /// A registration expires.
    Registrar,
}

fn outcome_label(cause: &EndCause) -> &'static str {
    match cause {
        EndCause::HangUp(Side::A) => "caller_hangup",
        EndCause::HangUp(Side::B) => "callee_hangup",
        EndCause::CallerCancelled => "cancelled",
        EndCause::Rejected(_) => "rejected",
        EndCause::NoAnswer => "no_answer",
        EndCause::DestinationTimeout => "destination_timeout",
        EndCause::NoAck => "no_ack",
        EndCause::NoRoute => "no_route",
        EndCause::Draining => "draining",
        EndCause::RtpTimeout(_) => "rtp_timeout",
        EndCause::MediaFailed => "media_failed",
        EndCause::Blocked => "blocked",
        EndCause::FlowHangup => "ivr_hangup",
        EndCause::DeliveryFailed(_) => "delivery_failed",
        EndCause::QueueFull => "queue_full",
        EndCause::QueueTimeout => "queue_timeout",
    }
}

/// Who ended the call and why, for its record.
fn end_of(cause: &EndCause) -> End {
    let (by, sip_status) = match cause {
        EndCause::HangUp(Side::A) | EndCause::CallerCancelled => (EndedBy::Caller, None),
        EndCause::HangUp(Side::B) => (EndedBy::Callee, None),
        EndCause::Rejected(status) | EndCause::DeliveryFailed(status) => {
            (EndedBy::Callee, Some(*status))
        }
        EndCause::NoAnswer
        | EndCause::DestinationTimeout
        | EndCause::NoAck
        | EndCause::NoRoute
        | EndCause::Draining
        | EndCause::RtpTimeout(_)
        | EndCause::MediaFailed
        | EndCause::Blocked
        | EndCause::FlowHangup
        | EndCause::QueueFull
        | EndCause::QueueTimeout => (EndedBy::Gateway, None),
    };
    End {
        by,
        cause: outcome_label(cause),
        sip_status,
    }
}

/// Map a destination's failure to what the caller is told. A B2BUA must
/// not pass on statuses that mean something about *us* (e.g. 503 would make
/// the carrier fail over away from a healthy gateway; 401/407 would ask the
/// carrier for credentials of the destination).
pub fn map_failure(status: u16) -> u16 {
    match status {
        404 | 410 | 480 | 484 | 486 | 487 | 488 | 600 | 603 | 604 | 606 => status,
        403 => 403,
        408 => 408,
        400..=499 => 480,
        500..=599 => 502,
        _ => 480,
    }
}

impl B2bua {
    /// A B2BUA for this configuration.
    pub fn new(config: Arc<Config>, seed: u64, now: Instant) -> B2bua {
        let host = host_literal(config.sip.advertise);
        let port = config.sip.listen.port();
        let mut rng_key = Rng::new(seed ^ 0x00D1_6E57);
        let b2bua = B2bua {
            contacts: Arc::new(Contacts {
                udp: format!("<sip:hotline@{host}:{port}>"),
                tcp: format!("<sip:hotline@{host}:{port};transport=tcp>"),
            }),
            host,
            calls: HashMap::new(),
            by_tsx: HashMap::new(),
            by_dialog: HashMap::new(),
            ring: TimerQueue::default(),
            ivr_timers: TimerQueue::default(),
            ids: IdGen::default(),
            rng: Rng::new(seed ^ 0xB2B0_A000),
            draining: false,
            // Unix time 0 until the driver tells the wall clock.
            clock: WallClock::new(now, Duration::ZERO),
            records: VecDeque::new(),
            stats: B2buaStats::default(),
            media: MediaPlane::new(&config.media, config.media.effective_shards()),
            admission: Admission::new(&config.trunks, now),
            keepalive: Keepalive::new(
                &config.trunks,
                host_literal(config.sip.advertise),
                config.sip.user_agent.clone(),
                seed ^ 0x0B7_10E5,
                now,
            ),
            digest: DigestServer::new(&config.node.name, &nonce_key(&mut rng_key), now, NONCE_TTL),
            acd: Acd::new(config.acd_spec(), now),
            registrar: Registrar::new(
                RegistrarConfig {
                    realm: config.registrar.realm.clone(),
                    algorithms: config.sip.digest_algorithms.clone(),
                    min_expires: config.registrar.min_expires,
                    max_expires: config.registrar.max_expires,
                    default_expires: config.registrar.default_expires,
                    nonce_ttl: NONCE_TTL,
                    lockout_failures: config.registrar.lockout_failures,
                    lockout_window: config.registrar.lockout_window,
                    lockout_for: config.registrar.lockout_for,
                },
                config
                    .agents
                    .iter()
                    .map(|a| (a.id.clone(), a.password.reveal_str().to_owned())),
                &nonce_key(&mut rng_key),
                now,
            ),
            agent_seq: HashMap::new(),
            config,
        };
        for trunk in &b2bua.config.trunks {
            metrics::gauge!("hotline_trunk_calls", "trunk" => trunk.name.clone()).set(0.0);
        }
        b2bua
    }

    /// The next command for a media shard: (shard index, command).
    pub fn poll_media(&mut self) -> Option<(usize, MediaCommand)> {
        self.media.poll_command()
    }

    /// The media side (port pool, counters).
    pub fn media(&self) -> &MediaPlane {
        &self.media
    }

    /// A report from a media shard.
    pub fn handle_media_event(&mut self, ev: MediaEvent, tsx: &mut Transactions, now: Instant) {
        self.on_media_event(ev, tsx, now);
        self.drain_acd(tsx, now);
    }

    fn on_media_event(&mut self, ev: MediaEvent, tsx: &mut Transactions, now: Instant) {
        match ev {
            MediaEvent::Digit { leg, digit, source } => {
                if let Some((cid, side)) = self.media.leg_owner(leg) {
                    self.on_digit(cid, side, digit, source, tsx, now);
                }
            }
            MediaEvent::RtpTimeout { leg } => {
                if let Some((cid, side)) = self.media.leg_owner(leg) {
                    tracing::info!(call = %cid, ?side, "no RTP: ending the call");
                    self.fail_media(cid, EndCause::RtpTimeout(side), tsx, now);
                }
            }
            MediaEvent::OpenFailed { leg, error } => {
                if let Some((cid, side)) = self.media.leg_owner(leg) {
                    tracing::warn!(call = %cid, ?side, port = leg, %error, "RTP port unusable: ending the call");
                    self.fail_media(cid, EndCause::MediaFailed, tsx, now);
                }
            }
            MediaEvent::PlaybackDone { leg, interrupted } => {
                if let Some((cid, Side::A)) = self.media.leg_owner(leg) {
                    self.queued_playback_done(cid);
                    self.ivr_input(
                        cid,
                        crate::ivr::Input::PlaybackDone { interrupted },
                        tsx,
                        now,
                    );
                }
            }
            MediaEvent::Closed { stats, .. } => {
                let quality = if stats.packets_received == 0 {
                    "no_rtp"
                } else if stats.mos >= 4.0 {
                    "good"
                } else if stats.mos >= 3.6 {
                    "fair"
                } else {
                    "poor"
                };
                metrics::counter!("hotline_media_legs_total", "quality" => quality).increment(1);
                metrics::counter!("hotline_media_packets_received_total")
                    .increment(stats.packets_received);
                metrics::counter!("hotline_media_packets_lost_total")
                    .increment(u64::try_from(stats.cumulative_lost.max(0)).unwrap_or(0));
            }
        }
    }

    /// A DTMF digit on a leg (from RTP or SIP INFO), reported once.
    fn on_digit(
        &mut self,
        cid: CallId,
        side: Side,
        digit: char,
        source: DigitSource,
        tsx: &mut Transactions,
        now: Instant,
    ) {
        let Some(call) = self.calls.get_mut(&cid) else {
            return;
        };
        if let Some(d) = self.media.digit(&mut call.media, digit, source, now) {
            metrics::counter!("hotline_dtmf_digits_total", "source" => d.source.as_str())
                .increment(1);
            // Digits can be personal data (an ID number keyed into an IVR):
            // debug level only, under their own target.
            tracing::debug!(target: "hotline::dtmf", call = %cid, ?side, digit = %d.digit, source = d.source.as_str(), "dtmf");
            let to_flow = side == Side::A && matches!(call.state, CallState::Ivr);
            if to_flow {
                self.ivr_input(cid, crate::ivr::Input::Digit(d.digit), tsx, now);
            }
        }
    }

    /// End a call the media plane cannot serve.
    fn fail_media(&mut self, cid: CallId, cause: EndCause, tsx: &mut Transactions, now: Instant) {
        let Some(call) = self.calls.get_mut(&cid) else {
            return;
        };
        match call.state {
            CallState::Calling {
                a_invite, b_invite, ..
            } => {
                tsx.cancel(b_invite, now);
                let mut r = a_response(tsx, a_invite, 500);
                r.set_to_tag(&call.a.local_tag);
                r.headers
                    .push("Reason", "SIP;cause=500;text=\"Media unavailable\"");
                tsx.send_response(a_invite, r, now);
                self.ring.cancel(cid);
                call.state = CallState::Cancelling { b_invite, cause };
            }
            CallState::Confirmed { .. }
            | CallState::Ivr
            | CallState::Queued
            | CallState::Dialling { .. } => {
                self.hang_up(cid, None, cause, tsx, now);
            }
            CallState::Cancelling { .. } | CallState::Terminating { .. } => {}
        }
    }

    /// Set the wall-clock anchor for call records: `unix` was the time
    /// since the Unix epoch at `now`.
    pub fn set_wall_clock(&mut self, now: Instant, unix: Duration) {
        self.clock = WallClock::new(now, unix);
    }

    /// The next call record or event for the outbox.
    pub fn poll_record(&mut self) -> Option<RecordItem> {
        self.records.pop_front()
    }

    /// Seal the call's record (once) with how it ended.
    fn seal(&mut self, cid: CallId, cause: &EndCause, now: Instant) {
        if self.calls.get(&cid).is_none_or(|c| c.record.is_sealed()) {
            return;
        }
        // A flow still running records what it knew (the caller left the
        // IVR, the survey was not answered).
        self.flow_interrupted(cid, cause, now);
        let clock = self.clock;
        if let Some(call) = self.calls.get_mut(&cid) {
            // After a survey, the record's end is how the conversation ended.
            let cause = call.conversation_end.as_ref().unwrap_or(cause);
            let items = call.record.seal(end_of(cause), now, &clock);
            if !call.internal {
                self.records.extend(items);
            }
        }
    }

    /// Calls not yet fully ended.
    pub fn live_calls(&self) -> usize {
        self.calls.len()
    }

    /// A call by id.
    pub fn call(&self, id: CallId) -> Option<&Call> {
        self.calls.get(&id)
    }

    /// Ids of the live calls.
    pub fn call_ids(&self) -> impl Iterator<Item = CallId> + '_ {
        self.calls.keys().copied()
    }

    /// Calls `trunk` holds now (admitted, not yet ended): what its
    /// `max_calls` is checked against.
    pub fn trunk_calls(&self, trunk: &str) -> u32 {
        self.admission.live(trunk)
    }

    /// Counters.
    pub fn stats(&self) -> &B2buaStats {
        &self.stats
    }

    /// Stop taking calls: new INVITEs get 503.
    pub fn drain(&mut self) {
        self.draining = true;
    }

    /// Whether the node is draining.
    pub fn is_draining(&self) -> bool {
        self.draining
    }

    /// The next B2BUA timer: a ring timeout or a trunk's keepalive.
    pub fn poll_timeout(&mut self) -> Option<(Instant, Wake)> {
        let ring = self.ring.earliest().map(|(at, c)| (at, Wake::Ring(c)));
        let ivr = self.ivr_timers.earliest().map(|(at, c)| (at, Wake::Ivr(c)));
        let ring = ring.soonest(ivr);
        let keepalive = self
            .keepalive
            .poll_timeout()
            .map(|(at, i)| (at, Wake::Keepalive(i)));
        let acd = self.acd.poll_timeout().map(|at| (at, Wake::Acd));
        let registrar = self
            .registrar
            .poll_timeout()
            .map(|at| (at, Wake::Registrar));
        ring.soonest(keepalive).soonest(acd).soonest(registrar)
    }

    /// Whether trunk `name` answers its OPTIONS keepalive: `None` for a
    /// trunk without `outbound`, or before its first result decided (see
    /// [`super::keepalive`]).
    pub fn trunk_up(&self, name: &str) -> Option<bool> {
        self.keepalive.is_up(name)
    }

    fn contact(&self, transport: Transport) -> &str {
        self.contacts.get(transport)
    }

    /// Ring timers, flow timers and keepalive pings that are due.
    pub fn handle_timeout(&mut self, tsx: &mut Transactions, now: Instant) {
        self.keepalive.handle_timeout(tsx, now);
        if self.registrar.poll_timeout().is_some_and(|at| at <= now) {
            for change in self.registrar.handle_timeout(now) {
                self.on_registration(change, now);
            }
        }
        if self.acd.poll_timeout().is_some_and(|at| at <= now) {
            self.acd.handle_timeout(now);
        }
        self.drain_acd(tsx, now);
        self.handle_call_timers(tsx, now);
        self.drain_acd(tsx, now);
    }

    /// Flow and ring timers that are due.
    fn handle_call_timers(&mut self, tsx: &mut Transactions, now: Instant) {
        while let Some(id) = self.ivr_timers.pop_due(now) {
            self.ivr_input(id, crate::ivr::Input::Timeout, tsx, now);
        }
        while let Some(id) = self.ring.pop_due(now) {
            let Some(call) = self.calls.get_mut(&id) else {
                continue;
            };
            if let CallState::Dialling { .. } = call.state {
                tracing::debug!(call = %id, "no answer from the queue's or transfer's target");
                self.hang_up(id, None, EndCause::DeliveryFailed(408), tsx, now);
                continue;
            }
            if let CallState::Calling {
                a_invite, b_invite, ..
            } = call.state
            {
                tracing::debug!(call = %id, "ring timeout");
                tsx.cancel(b_invite, now);
                let mut r = a_response(tsx, a_invite, 480);
                r.set_to_tag(&call.a.local_tag);
                r.headers.push("Reason", "SIP;cause=480;text=\"No answer\"");
                tsx.send_response(a_invite, r, now);
                call.state = CallState::Cancelling {
                    b_invite,
                    cause: EndCause::NoAnswer,
                };
            }
        }
    }

    /// One transaction event.
    pub fn handle_event(&mut self, ev: TsxEvent, tsx: &mut Transactions, now: Instant) {
        self.on_event(ev, tsx, now);
        self.drain_acd(tsx, now);
    }

    fn on_event(&mut self, ev: TsxEvent, tsx: &mut Transactions, now: Instant) {
        match ev {
            TsxEvent::Request { tsx: id, request } => self.on_request(id, request, tsx, now),
            TsxEvent::Ack { invite, request } => self.on_ack(invite, request, tsx, now),
            TsxEvent::Cancelled { invite } => self.on_cancelled(invite, tsx, now),
            TsxEvent::Response { tsx: id, response } => self.on_response(id, response, tsx, now),
            TsxEvent::Timeout { tsx: id } => self.on_timeout(id, tsx, now),
            TsxEvent::AckTimeout { tsx: id } => self.on_ack_timeout(id, tsx, now),
            TsxEvent::Terminated { tsx: id } => {
                self.by_tsx.remove(&id);
                self.keepalive.on_terminated(id);
            }
        }
    }

    // ----- requests -----

    fn on_request(&mut self, id: TsxId, req: Request, tsx: &mut Transactions, now: Instant) {
        if let Some(to_tag) = req.to_tag() {
            let key = (req.call_id().unwrap_or_default().to_string(), to_tag);
            match self.by_dialog.get(&key).copied() {
                Some((call, side)) => self.on_in_dialog(call, side, id, req, tsx, now),
                None => {
                    // RFC 3261 §12.2.2: no matching dialog.
                    self.stats.no_dialog += 1;
                    respond(tsx, id, &req, 481, now);
                }
            }
            return;
        }
        match req.method {
            Method::Invite => self.on_new_invite(id, req, tsx, now),
            Method::Register if !self.config.agents.is_empty() => {
                self.on_register(id, &req, tsx, now);
            }
            Method::Options => {
                // Carriers ping with OPTIONS: answer for the node (RFC 3261 §11.2).
                let mut r = Response::to(&req, if self.draining { 503 } else { 200 });
                let tag = self.rng.token(10);
                r.set_to_tag(&tag);
                r.headers.push("Allow", ALLOW);
                r.headers.push("Accept", "application/sdp");
                r.headers.push("Server", self.config.sip.user_agent.clone());
                tsx.send_response(id, r, now);
            }
            Method::Bye | Method::Info | Method::Update | Method::Message | Method::Prack => {
                respond(tsx, id, &req, 481, now);
            }
            _ => {
                let mut r = Response::to(&req, 405);
                let tag = self.rng.token(10);
                r.set_to_tag(&tag);
                r.headers.push("Allow", ALLOW);
                tsx.send_response(id, r, now);
            }
        }
    }

    fn on_new_invite(&mut self, id: TsxId, req: Request, tsx: &mut Transactions, now: Instant) {
        let Some(from_peer) = tsx.peer(id).cloned() else {
            return;
        };
        if let Some(code) = req
            .request_uri()
            .ok()
            .and_then(|u| u.user)
            .filter(|u| u.starts_with('*'))
        {
            self.on_feature_code(id, &req, &code, tsx, now);
            return;
        }
        if self.draining {
            let mut r = Response::to(&req, 503);
            r.set_to_tag(&self.rng.token(10));
            r.headers.push("Retry-After", "30");
            r.headers
                .push("Reason", "SIP;cause=503;text=\"Node draining\"");
            tsx.send_response(id, r, now);
            count_call("draining", None);
            return;
        }
        let config = self.config.clone();
        let Some(trunk) = self.trunk_of(id, &req, &from_peer, &config, tsx, now) else {
            return;
        };
        // The trunk's limits, before any routing or media work.
        if let Err(limit) = self.admission.admit(&trunk.name, now) {
            self.refuse_over_limit(id, &req, &trunk.name, limit, tsx, now);
            return;
        }
        self.trunk_gauge(&trunk.name);
        if !self.start_call(id, req, trunk, from_peer, tsx, now) {
            // Refused after admission (no route, bad SDP, no ports): the
            // call never existed, its slot goes back at once.
            self.admission.release(&trunk.name);
            self.trunk_gauge(&trunk.name);
        }
    }

    /// Which trunk an INVITE comes from: by its source address, and for a
    /// trunk with credentials by its `Proxy-Authorization` (RFC 3261
    /// §22.3). `None` when the INVITE was answered here instead: 407 with
    /// a challenge (no or stale credentials), 403 (wrong credentials, or
    /// an unknown source; unknown sources under `unknown_source = "drop"`
    /// never get here unless some trunk takes calls from anywhere).
    fn trunk_of<'c>(
        &mut self,
        id: TsxId,
        req: &Request,
        from: &Peer,
        config: &'c Config,
        tsx: &mut Transactions,
        now: Instant,
    ) -> Option<&'c Trunk> {
        let ip = from.addr.ip();
        let by_source = config.trunk_for(ip);
        let creds = req
            .headers
            .get_named("Proxy-Authorization")
            .and_then(Credentials::parse)
            .filter(|c| c.realm == self.digest.realm());
        let anywhere = config.trunks.iter().any(|t| t.sources.is_empty());
        let Some(creds) = creds else {
            return match by_source {
                Some(t) if t.auth.is_none() => Some(t),
                Some(_) => {
                    self.challenge(id, req, false, tsx, now);
                    None
                }
                None if anywhere => {
                    self.challenge(id, req, false, tsx, now);
                    None
                }
                None => {
                    respond(tsx, id, req, 403, now);
                    count_call("forbidden", None);
                    None
                }
            };
        };
        // The trunk of that username, if this address may use it.
        let trunk = config.trunks.iter().find(|t| {
            t.auth
                .as_ref()
                .is_some_and(|a| a.username == creds.username)
                && (t.sources.is_empty() || t.sources.iter().any(|c| c.contains(ip)))
        });
        let password = trunk
            .and_then(|t| t.auth.as_ref())
            .map(|a| a.password.reveal_str());
        match self.digest.check(&creds, "INVITE", password, now) {
            Ok(()) => trunk,
            Err(Rejection::Stale) => {
                self.challenge(id, req, true, tsx, now);
                None
            }
            Err(Rejection::BadNonce | Rejection::Malformed) => {
                // A nonce from before a restart, or not ours: a new one.
                self.challenge(id, req, false, tsx, now);
                None
            }
            Err(Rejection::Denied) => {
                tracing::info!(source = %ip, "trunk authentication failed");
                metrics::counter!("hotline_trunk_auth_failures_total").increment(1);
                respond(tsx, id, req, 403, now);
                count_call("forbidden", None);
                None
            }
        }
    }

    /// 407 with our digest challenges (SHA-256, then MD5).
    fn challenge(
        &mut self,
        id: TsxId,
        req: &Request,
        stale: bool,
        tsx: &mut Transactions,
        now: Instant,
    ) {
        let mut r = Response::to(req, 407);
        r.set_to_tag(&format!("h{}", id.0));
        for c in self
            .digest
            .challenges(now, stale, &self.config.sip.digest_algorithms)
        {
            r.headers.push("Proxy-Authenticate", c);
        }
        tsx.send_response(id, r, now);
        metrics::counter!("hotline_trunk_challenges_total").increment(1);
    }

    /// A trunk over one of its limits: 503 with Retry-After, counted.
    fn refuse_over_limit(
        &mut self,
        id: TsxId,
        req: &Request,
        trunk: &str,
        limit: Limit,
        tsx: &mut Transactions,
        now: Instant,
    ) {
        let mut r = Response::to(req, 503);
        r.set_to_tag(&self.rng.token(10));
        r.headers
            .push("Retry-After", limit.retry_after_secs().to_string());
        r.headers.push(
            "Reason",
            format!("SIP;cause=503;text=\"{}\"", limit.reason_text()),
        );
        tsx.send_response(id, r, now);
        tracing::debug!(%trunk, limit = limit.as_str(), "trunk over its limit: 503");
        count_call(limit.outcome(), None);
        metrics::counter!(
            "hotline_trunk_rejected_total",
            "trunk" => trunk.to_owned(),
            "reason" => limit.as_str()
        )
        .increment(1);
    }

    /// Export a trunk's live calls.
    fn trunk_gauge(&self, trunk: &str) {
        metrics::gauge!("hotline_trunk_calls", "trunk" => trunk.to_owned())
            .set(f64::from(self.admission.live(trunk)));
    }

    /// Route an admitted INVITE and start its call. Returns whether a call
    /// was created (else the INVITE was answered with a refusal).
    fn start_call(
        &mut self,
        id: TsxId,
        req: Request,
        trunk: &Trunk,
        from_peer: Peer,
        tsx: &mut Transactions,
        now: Instant,
    ) -> bool {
        let raw_dialled = match req.request_uri().ok().and_then(|u| u.user) {
            Some(u) => u,
            None => {
                respond(tsx, id, &req, 404, now);
                return false;
            }
        };
        let dialled = trunk.normalise(&raw_dialled);
        if dialled != raw_dialled {
            tracing::trace!(raw = %raw_dialled, %dialled, trunk = %trunk.name, "number normalised");
        }
        let line = if dialled.is_empty() {
            None
        } else {
            self.config.line(&dialled).cloned()
        };
        let route_target = match &line {
            Some(_) => None,
            None => {
                let route = if dialled.is_empty() {
                    None
                } else {
                    self.config.route(&dialled)
                };
                let Some(route) = route else {
                    respond(tsx, id, &req, 404, now);
                    count_call("no_route", None);
                    return false;
                };
                Some(route.target.clone())
            }
        };
        let trunk = trunk.name.clone();
        let local_tag = self.rng.token(12);
        let a = match Dialog::uas(&req, &local_tag, from_peer.clone()) {
            Ok(d) => d,
            Err(e) => {
                let mut r = Response::to(&req, 400);
                r.reason = format!("Bad Request ({e})");
                r.set_to_tag(&local_tag);
                tsx.send_response(id, r, now);
                return false;
            }
        };
        let caller = req
            .headers
            .get(Hdr::From)
            .and_then(|f| NameAddr::parse(f).ok())
            .and_then(|n| crate::sip::msg::SipUri::parse(&n.uri).ok())
            .and_then(|u| u.user)
            .unwrap_or_else(|| "anonymous".to_string());

        // Media: the caller's offer against ours, two ports, our offer to B.
        let a_ct = req.headers.get(Hdr::ContentType);
        let a_sdp = if req.body.is_empty() {
            None
        } else if is_sdp(a_ct) {
            Some(req.body.as_ref())
        } else {
            let mut r = Response::to(&req, 415);
            r.set_to_tag(&local_tag);
            r.headers.push("Accept", "application/sdp");
            tsx.send_response(id, r, now);
            count_call("unsupported_body", line.as_ref());
            return false;
        };
        let call_id = CallId(self.ids.next_raw());
        let session_ids = (self.rng.next_u64() >> 1, self.rng.next_u64() >> 1);
        let (media, b_offer) = match self.media.open_call(call_id, a_sdp, session_ids) {
            Ok(x) => x,
            Err(refusal) => {
                self.refuse(id, &req, &local_tag, &refusal, tsx, now);
                return false;
            }
        };
        let max_forwards = req
            .max_forwards()
            .and_then(Result::ok)
            .map(|m| m.saturating_sub(1).min(70))
            .unwrap_or(70);

        let (record, arrived) = RecordBuilder::arrive(
            &Arrival {
                node: &self.config.node.name,
                trunk: &trunk,
                dialled: &dialled,
                caller: &caller,
                line: line.as_ref(),
                target: route_target.as_deref(),
                a_call_id: &a.call_id,
            },
            now,
            &self.clock,
            &mut self.rng,
        );
        self.records.push_back(arrived);
        self.by_tsx.insert(id, (call_id, Role::AInvite));
        self.by_dialog
            .insert((a.call_id.clone(), a.local_tag.clone()), (call_id, Side::A));
        self.stats.calls_started += 1;
        tracing::debug!(call = %call_id, %trunk, dialled, caller = %Pii::new(caller.as_str()), line = line.is_some(), "call arrived");
        let mut tags = BTreeMap::new();
        if let Some(topic) = line.as_ref().and_then(|l| l.topic.clone()) {
            tags.insert("topic".to_owned(), topic);
        }
        self.calls.insert(
            call_id,
            Call {
                id: call_id,
                started: now,
                answered: None,
                caller: Pii::new(caller),
                dialled,
                trunk,
                target: String::new(),
                line,
                a,
                a_ack_pending: None,
                b_invite_req: None,
                b: None,
                b_peer: None,
                b_offer: Some(b_offer),
                ivr: None,
                tags,
                conversation_end: None,
                state: CallState::Ivr,
                record,
                media,
                max_forwards,
                queue: None,
                agent: None,
                comfort: false,
                queued_at: None,
                internal: false,
            },
        );
        metrics::gauge!("hotline_calls_active").set(self.calls.len() as f64);
        match route_target {
            Some(target) => {
                // A direct route: put the caller straight through.
                let Some(b_invite) = self.dial(call_id, &target, tsx, now) else {
                    // The target was validated at load: a config bug.
                    respond(tsx, id, &req, 500, now);
                    self.end(call_id, EndCause::NoRoute, now);
                    return true;
                };
                if let Some(call) = self.calls.get_mut(&call_id) {
                    call.state = CallState::Calling {
                        a_invite: id,
                        b_invite,
                        early: false,
                    };
                }
                self.ring.set(call_id, now + self.config.sip.ring_timeout);
            }
            None => self.answer_for_flow(call_id, id, tsx, now),
        }
        true
    }

    /// Put a call through to `target`: build the B leg from scratch
    /// (nothing of the A leg's topology) with our offer, send its INVITE.
    /// Returns the INVITE's transaction, or `None` for an unknown target.
    fn dial(
        &mut self,
        cid: CallId,
        target: &str,
        tsx: &mut Transactions,
        now: Instant,
    ) -> Option<TsxId> {
        let config = self.config.clone();
        let t = config.target(target)?;
        let b_transport = match t.transport {
            TargetTransport::Udp => Transport::Udp,
            TargetTransport::Tcp => Transport::Tcp,
        };
        let b_peer = Peer {
            transport: b_transport,
            addr: t.address,
            conn: None,
        };
        // SocketAddr's Display already brackets IPv6.
        let taddr = t.address;
        let tparam = if b_transport == Transport::Tcp {
            ";transport=tcp"
        } else {
            ""
        };
        let dialled = self.calls.get(&cid)?.dialled.clone();
        let ruri = format!("sip:{dialled}@{taddr}{tparam}");
        let to = format!("<sip:{dialled}@{taddr}>");
        let b_invite = self.send_b_invite(cid, target, ruri, to, b_peer, tsx, now)?;
        if let Some(call) = self.calls.get_mut(&cid) {
            let sip_call_id = call
                .b_invite_req
                .as_ref()
                .and_then(|r| r.call_id().map(str::to_owned))
                .unwrap_or_default();
            call.record.routed(target, &sip_call_id, now, &self.clock);
        }
        Some(b_invite)
    }

    /// Send the B leg INVITE of call `cid` (built from scratch: nothing
    /// of the A leg's topology) to `ruri` at `b_peer`, with our offer.
    /// `target` names where it goes (a target, `agent:<id>`).
    #[allow(clippy::too_many_arguments)]
    fn send_b_invite(
        &mut self,
        cid: CallId,
        target: &str,
        ruri: String,
        to: String,
        b_peer: Peer,
        tsx: &mut Transactions,
        now: Instant,
    ) -> Option<TsxId> {
        let from_tag = self.rng.token(12);
        let b_call_id = self.rng.token(24);
        let contacts = self.contacts.clone();
        let user_agent = self.config.sip.user_agent.clone();
        let call = self.calls.get_mut(&cid)?;
        let host = &self.host;
        let caller = call.caller.reveal();
        let mut b = Request::new(Method::Invite, ruri);
        let h = &mut b.headers;
        h.push("Max-Forwards", call.max_forwards.to_string());
        h.push("From", format!("<sip:{caller}@{host}>;tag={from_tag}"));
        h.push("To", to);
        h.push("Call-ID", b_call_id);
        h.push("CSeq", "1 INVITE");
        h.push("Contact", contacts.get(b_peer.transport).to_string());
        h.push("Allow", ALLOW);
        h.push("User-Agent", user_agent);
        // The offer stays with the call: a queued call may be offered to
        // several agents in turn.
        if let Some(offer) = call.b_offer.clone() {
            h.push("Content-Type", "application/sdp");
            b.body = Bytes::from(offer);
        }
        call.target = target.to_owned();
        let b_invite = tsx.send_request(b.clone(), b_peer.clone(), now);
        call.b_invite_req = Some(b);
        call.b_peer = Some(b_peer);
        self.by_tsx.insert(b_invite, (cid, Role::BInvite));
        tracing::debug!(call = %cid, target, "dialling");
        Some(b_invite)
    }

    /// Refuse a new INVITE for a media reason (488 with Warning, 503).
    fn refuse(
        &mut self,
        id: TsxId,
        req: &Request,
        tag: &str,
        refusal: &Refusal,
        tsx: &mut Transactions,
        now: Instant,
    ) {
        let mut r = Response::to(req, refusal.status);
        r.set_to_tag(tag);
        if let Some(w) = &refusal.warning {
            r.headers.push("Warning", w.clone());
        }
        if refusal.status == 503 {
            r.headers.push("Retry-After", "5");
        }
        let reason = refusal.reason.replace(['"', '\\'], "'");
        r.headers.push(
            "Reason",
            format!("SIP;cause={};text=\"{reason}\"", refusal.status),
        );
        tsx.send_response(id, r, now);
        tracing::debug!(status = refusal.status, reason = %refusal.reason, "call refused");
        count_call(refusal.outcome, None);
    }

    fn on_in_dialog(
        &mut self,
        cid: CallId,
        side: Side,
        id: TsxId,
        req: Request,
        tsx: &mut Transactions,
        now: Instant,
    ) {
        let Some(call) = self.calls.get_mut(&cid) else {
            respond(tsx, id, &req, 481, now);
            return;
        };
        let Some(dialog) = call.dialog_mut(side) else {
            respond(tsx, id, &req, 481, now);
            return;
        };
        if !dialog.accept_remote_cseq(&req) {
            // RFC 3261 §12.2.2: out-of-order CSeq.
            respond(tsx, id, &req, 500, now);
            return;
        }
        match req.method {
            Method::Bye => {
                respond(tsx, id, &req, 200, now);
                if side == Side::B && self.start_survey(cid, tsx, now) {
                    return;
                }
                self.hang_up(cid, Some(side), EndCause::HangUp(side), tsx, now);
            }
            Method::Invite | Method::Update
                if side == Side::A
                    && matches!(
                        call.state,
                        CallState::Ivr | CallState::Queued | CallState::Dialling { .. }
                    ) =>
            {
                self.answer_reoffer_locally(cid, id, &req, tsx, now);
            }
            Method::Options => respond(tsx, id, &req, 200, now),
            Method::Info if is_dtmf_info(req.headers.get(Hdr::ContentType)) => {
                // DTMF by SIP INFO ends here: reported once, not relayed.
                let ct = req.headers.get(Hdr::ContentType).unwrap_or_default();
                match info_digit(ct, &req.body) {
                    Some(digit) => {
                        respond(tsx, id, &req, 200, now);
                        self.on_digit(cid, side, digit, DigitSource::SipInfo, tsx, now);
                    }
                    None => respond(tsx, id, &req, 400, now),
                }
            }
            Method::Invite | Method::Info | Method::Update | Method::Message => {
                self.relay_request(cid, side, id, req, tsx, now)
            }
            _ => {
                let mut r = Response::to(&req, 501);
                r.headers.push("Allow", ALLOW);
                tsx.send_response(id, r, now);
            }
        }
    }

    fn relay_request(
        &mut self,
        cid: CallId,
        side: Side,
        id: TsxId,
        req: Request,
        tsx: &mut Transactions,
        now: Instant,
    ) {
        let contacts = self.contacts.clone();
        let Some(call) = self.calls.get_mut(&cid) else {
            return;
        };
        let ack_pending = call.a_ack_pending.is_some();
        let CallState::Confirmed { relays } = &mut call.state else {
            // Not (or no longer) answered on both sides.
            respond(tsx, id, &req, 491, now);
            return;
        };
        let invite = req.method == Method::Invite;
        if invite && (ack_pending || relays.iter().any(|r| r.invite)) {
            // RFC 3261 §14.2: an INVITE is already in progress.
            respond(tsx, id, &req, 491, now);
            return;
        }
        let other = side.other();
        let contact = match call.dialog(other) {
            Some(d) => contacts.get(d.peer.transport).to_string(),
            None => {
                respond(tsx, id, &req, 481, now);
                return;
            }
        };
        if invite {
            if let Some(d) = call.dialog_mut(side) {
                d.refresh_target(&req);
            }
        }
        // An offer (hold, resume, a new address) is negotiated here and
        // re-offered on the other leg from our ports.
        let offers = matches!(req.method, Method::Invite | Method::Update);
        let sdp_body = offers && is_sdp(req.headers.get(Hdr::ContentType)) && !req.body.is_empty();
        let our_offer = if sdp_body {
            match self.media.reoffer(&mut call.media, side, &req.body) {
                Ok(body) => Some(body),
                Err(refusal) => {
                    let mut r = Response::to(&req, refusal.status);
                    if let Some(w) = &refusal.warning {
                        r.headers.push("Warning", w.clone());
                    }
                    tsx.send_response(id, r, now);
                    return;
                }
            }
        } else {
            None
        };
        let Some(od) = call.dialog_mut(other) else {
            return;
        };
        let mut out = od.request(req.method.clone(), &contact, None);
        let offer = match our_offer {
            Some(body) => {
                out.headers.set("Content-Type", "application/sdp");
                out.body = Bytes::from(body);
                OfferIn::Request
            }
            None if offers && req.body.is_empty() => OfferIn::Response,
            None => {
                copy_body(&req, &mut out);
                OfferIn::None
            }
        };
        for name in ["Event", "Info-Package", "Subject"] {
            if let Some(v) = req.headers.get_named(name) {
                out.headers.push(name, v.to_string());
            }
        }
        let peer = od.peer.clone();
        let client = tsx.send_request(out, peer, now);
        if let CallState::Confirmed { relays, .. } = &mut call.state {
            relays.push(Relay {
                from: side,
                server: id,
                client,
                invite,
                offer,
            });
        }
        self.by_tsx.insert(id, (cid, Role::RelayServer));
        self.by_tsx.insert(client, (cid, Role::RelayClient));
    }

    fn on_ack(
        &mut self,
        invite: Option<TsxId>,
        ack: Request,
        tsx: &mut Transactions,
        now: Instant,
    ) {
        let Some(to_tag) = ack.to_tag() else { return };
        let key = (ack.call_id().unwrap_or_default().to_string(), to_tag);
        let Some((cid, side)) = self.by_dialog.get(&key).copied() else {
            return;
        };
        let contacts = self.contacts.clone();
        let Some(call) = self.calls.get_mut(&cid) else {
            return;
        };
        if side == Side::A
            && call.a_ack_pending.is_some()
            && (invite.is_none() || invite == call.a_ack_pending)
        {
            call.a_ack_pending = None;
            if !ack.body.is_empty() && is_sdp(ack.headers.get(Hdr::ContentType)) {
                // Late offer: the caller answers our offer in its ACK.
                self.media.caller_ack(&mut call.media, &ack.body, cid);
            }
            if matches!(call.state, CallState::Ivr) {
                // Answered by us for a flow: it starts now the caller's
                // media flows.
                self.ivr_input(cid, crate::ivr::Input::Started, tsx, now);
            }
            return;
        }
        let CallState::Confirmed { relays } = &mut call.state else {
            return;
        };
        // The ACK for a relayed re-INVITE's 2xx.
        if let Some(pos) = relays.iter().position(|r| {
            r.invite && r.from == side && (invite.is_none() || invite == Some(r.server))
        }) {
            let relay = relays.remove(pos);
            let cseq = tsx
                .request(relay.client)
                .and_then(|r| r.cseq())
                .map(|c| c.0);
            let other = side.other();
            let contact = match call.dialog(other) {
                Some(d) => contacts.get(d.peer.transport).to_string(),
                None => return,
            };
            // A bodiless re-INVITE: the ACK answers the offer we relayed in
            // the 2xx; the other side gets our answer to its offer.
            let answer = if relay.offer == OfferIn::Response && !ack.body.is_empty() {
                self.media.reanswer(&mut call.media, other, &ack.body, cid)
            } else {
                None
            };
            if let (Some(cseq), Some(od)) = (cseq, call.dialog_mut(other)) {
                let mut out = od.request(Method::Ack, &contact, Some(cseq));
                if let Some(body) = answer {
                    out.headers.set("Content-Type", "application/sdp");
                    out.body = Bytes::from(body);
                }
                tsx.send_ack(relay.client, out, now);
            }
        }
    }

    fn on_cancelled(&mut self, invite: TsxId, tsx: &mut Transactions, now: Instant) {
        let Some((cid, role)) = self.by_tsx.get(&invite).copied() else {
            return;
        };
        let Some(call) = self.calls.get_mut(&cid) else {
            return;
        };
        match (role, &call.state) {
            (
                Role::AInvite,
                CallState::Calling {
                    a_invite, b_invite, ..
                },
            ) if *a_invite == invite => {
                let b_invite = *b_invite;
                let mut r = a_response(tsx, invite, 487);
                r.set_to_tag(&call.a.local_tag);
                tsx.send_response(invite, r, now);
                tsx.cancel(b_invite, now);
                self.ring.cancel(cid);
                call.state = CallState::Cancelling {
                    b_invite,
                    cause: EndCause::CallerCancelled,
                };
            }
            (Role::RelayServer, CallState::Confirmed { relays, .. }) => {
                // A cancelled re-INVITE: cancel the relayed one; its final
                // answer (487) flows back through the relay.
                if let Some(r) = relays.iter().find(|r| r.server == invite) {
                    tsx.cancel(r.client, now);
                }
            }
            _ => {}
        }
    }

    // ----- responses -----

    fn on_response(&mut self, id: TsxId, resp: Response, tsx: &mut Transactions, now: Instant) {
        if self.keepalive.on_response(id, &resp) {
            return;
        }
        let Some((cid, role)) = self.by_tsx.get(&id).copied() else {
            return;
        };
        match role {
            Role::BInvite => self.on_b_invite_response(cid, id, resp, tsx, now),
            Role::Bye => {
                if resp.status >= 200 {
                    self.bye_done(cid, id, now);
                }
            }
            Role::RelayClient => self.on_relay_response(cid, id, resp, tsx, now),
            Role::StaleOffer => self.on_stale_offer_response(id, &resp, tsx, now),
            Role::AInvite | Role::RelayServer => {}
        }
    }

    fn on_b_invite_response(
        &mut self,
        cid: CallId,
        id: TsxId,
        resp: Response,
        tsx: &mut Transactions,
        now: Instant,
    ) {
        let contact_a = {
            let Some(call) = self.calls.get(&cid) else {
                // The call is over; a fork may still answer its INVITE.
                if (200..=299).contains(&resp.status) {
                    if let (Some(invite), Some(peer)) =
                        (tsx.request(id).cloned(), tsx.peer(id).cloned())
                    {
                        let contact = self.contact(peer.transport).to_string();
                        self.release_fork(id, &invite, &resp, peer, &contact, tsx, now);
                    }
                }
                return;
            };
            self.contact(call.a.peer.transport).to_string()
        };
        let contact_b = {
            let Some(call) = self.calls.get(&cid) else {
                return;
            };
            let t = call.b_peer.as_ref().map_or(Transport::Udp, |p| p.transport);
            self.contact(t).to_string()
        };
        if self
            .calls
            .get(&cid)
            .is_some_and(|c| matches!(c.state, CallState::Dialling { .. }))
        {
            self.on_dialling_response(cid, resp, &contact_b, tsx, now);
            return;
        }
        let Some(call) = self.calls.get_mut(&cid) else {
            return;
        };
        match (&mut call.state, resp.status) {
            (_, 100) => {}
            (
                CallState::Calling {
                    a_invite, early, ..
                },
                101..=199,
            ) => {
                let a_invite = *a_invite;
                *early = true;
                call.record.ringing(now, &self.clock);
                let mut r = a_response(tsx, a_invite, resp.status);
                r.reason = resp.reason.clone();
                r.set_to_tag(&call.a.local_tag);
                r.headers.push("Contact", contact_a);
                // Early media from the callee is relayed; without it, the
                // caller hears our ringback (an answer in the 18x).
                let body = if !resp.body.is_empty() && is_sdp(resp.headers.get(Hdr::ContentType)) {
                    self.media.callee_sdp(&mut call.media, &resp.body, cid)
                } else if self.media.ringing(&mut call.media) {
                    self.media.caller_sdp(&mut call.media)
                } else {
                    None
                };
                set_sdp(&mut r, body);
                tsx.send_response(a_invite, r, now);
            }
            (
                CallState::Calling {
                    a_invite, b_invite, ..
                },
                200..=299,
            ) => {
                let (a_invite, b_invite) = (*a_invite, *b_invite);
                let dialog = match (&call.b_invite_req, &call.b_peer) {
                    (Some(invite), Some(peer)) => Dialog::uac(invite, &resp, peer.clone()),
                    _ => Err(crate::sip::dialog::DialogError::Missing("INVITE")),
                };
                let mut bd = match dialog {
                    Ok(d) => d,
                    Err(e) => {
                        tracing::debug!(call = %cid, error = %e, "unusable 2xx from destination");
                        // We cannot even ACK it properly; fail the caller.
                        let mut r = a_response(tsx, a_invite, 502);
                        r.set_to_tag(&call.a.local_tag);
                        tsx.send_response(a_invite, r, now);
                        self.end(cid, EndCause::Rejected(502), now);
                        return;
                    }
                };
                // B answered our offer: its ACK carries nothing.
                let cseq = b_cseq(call);
                let ack = bd.request(Method::Ack, &contact_b, Some(cseq));
                tsx.send_ack(b_invite, ack, now);
                self.by_dialog
                    .insert((bd.call_id.clone(), bd.local_tag.clone()), (cid, Side::B));
                call.b = Some(bd);
                let mut r = a_response(tsx, a_invite, resp.status);
                r.set_to_tag(&call.a.local_tag);
                r.headers.push("Contact", contact_a);
                r.headers.push("Allow", ALLOW);
                let body = if !resp.body.is_empty() && is_sdp(resp.headers.get(Hdr::ContentType)) {
                    self.media.callee_sdp(&mut call.media, &resp.body, cid)
                } else {
                    // The answer came in a 18x (or never: no media then).
                    self.media.callee_answered_without_sdp(&mut call.media);
                    self.media.caller_sdp(&mut call.media)
                };
                set_sdp(&mut r, body);
                tsx.send_response(a_invite, r, now);
                call.answered = Some(now);
                let answered = call.record.answered(now, &self.clock);
                self.records.push_back(answered);
                call.a_ack_pending = Some(a_invite);
                call.state = CallState::Confirmed { relays: Vec::new() };
                self.ring.cancel(cid);
                self.stats.calls_answered += 1;
                metrics::counter!("hotline_calls_answered_total").increment(1);
                tracing::debug!(call = %cid, "answered");
            }
            (CallState::Calling { a_invite, .. }, status) => {
                let a_invite = *a_invite;
                let mapped = map_failure(status);
                let mut r = a_response(tsx, a_invite, mapped);
                r.set_to_tag(&call.a.local_tag);
                if mapped != status {
                    r.headers.push("Reason", format!("SIP;cause={status}"));
                }
                if let Some(ra) = resp.headers.get(Hdr::RetryAfter) {
                    r.headers.push("Retry-After", ra.to_string());
                }
                tsx.send_response(a_invite, r, now);
                self.end(cid, EndCause::Rejected(status), now);
            }
            (CallState::Cancelling { .. }, 101..=199) => {}
            (CallState::Cancelling { cause, .. }, 200..=299) => {
                // The destination answered as we cancelled: ACK, then BYE.
                let cause = cause.clone();
                let dialog = match (&call.b_invite_req, &call.b_peer) {
                    (Some(invite), Some(peer)) => Dialog::uac(invite, &resp, peer.clone()).ok(),
                    _ => None,
                };
                if let Some(mut bd) = dialog {
                    let cseq = b_cseq(call);
                    let ack = bd.request(Method::Ack, &contact_b, Some(cseq));
                    tsx.send_ack(id, ack, now);
                    let bye = bd.request(Method::Bye, &contact_b, None);
                    let peer = bd.peer.clone();
                    let bye_tsx = tsx.send_request(bye, peer, now);
                    self.by_tsx.insert(bye_tsx, (cid, Role::Bye));
                    call.b = Some(bd);
                    call.state = CallState::Terminating {
                        byes: vec![bye_tsx],
                        cause,
                    };
                } else {
                    self.end(cid, cause, now);
                }
            }
            (CallState::Cancelling { cause, .. }, _) => {
                let cause = cause.clone();
                self.end(cid, cause, now);
            }
            (_, 200..=299) => {
                // Another branch of a fork answered after we took one.
                if call
                    .b
                    .as_ref()
                    .is_some_and(|b| Some(b.remote_tag.as_str()) == resp.to_tag().as_deref())
                {
                    return;
                }
                if let (Some(invite), Some(peer)) = (call.b_invite_req.clone(), call.b_peer.clone())
                {
                    self.release_fork(id, &invite, &resp, peer, &contact_b, tsx, now);
                }
            }
            // Late provisional or final responses.
            _ => {}
        }
    }

    /// RFC 3261 §13.2.2.4: a 2xx from a fork we did not take (another
    /// branch answered first, or the call is over). Its callee is off-hook:
    /// ACK that 2xx, then hang it up with a BYE whose answer needs no
    /// handling. (Retransmissions of the 2xx we took are re-ACKed by the
    /// transaction layer and never reach us.)
    #[allow(clippy::too_many_arguments)]
    fn release_fork(
        &mut self,
        id: TsxId,
        invite: &Request,
        resp: &Response,
        peer: Peer,
        contact: &str,
        tsx: &mut Transactions,
        now: Instant,
    ) {
        let Ok(mut fork) = Dialog::uac(invite, resp, peer) else {
            return;
        };
        let cseq = invite.cseq().map(|c| c.0).unwrap_or(1);
        let ack = fork.request(Method::Ack, contact, Some(cseq));
        let to = fork.peer.clone();
        tsx.send_ack_to(id, ack, to, now);
        let bye = fork.request(Method::Bye, contact, None);
        let peer = fork.peer.clone();
        tsx.send_request(bye, peer, now);
        self.stats.forks_released += 1;
        tracing::debug!("extra 2xx from a fork: ACKed and hung up");
    }

    fn on_relay_response(
        &mut self,
        cid: CallId,
        id: TsxId,
        resp: Response,
        tsx: &mut Transactions,
        now: Instant,
    ) {
        if resp.status == 100 {
            return;
        }
        let contacts = self.contacts.clone();
        let Some(call) = self.calls.get_mut(&cid) else {
            return;
        };
        let CallState::Confirmed { relays, .. } = &mut call.state else {
            return;
        };
        let Some(pos) = relays.iter().position(|r| r.client == id) else {
            return;
        };
        let relay = relays[pos].clone();
        let Some(server_req) = tsx.request(relay.server).cloned() else {
            relays.remove(pos);
            return;
        };
        let mut r = Response::to(&server_req, resp.status);
        r.reason = resp.reason.clone();
        if relay.invite && (200..300).contains(&resp.status) {
            let t = call
                .dialog(relay.from)
                .map(|d| d.peer.transport)
                .unwrap_or(Transport::Udp);
            r.headers.push("Contact", contacts.get(t).to_string());
            if let Some(d) = call.dialog_mut(relay.from.other()) {
                d.refresh_target(&resp);
            }
        }
        let sdp_resp = !resp.body.is_empty() && is_sdp(resp.headers.get(Hdr::ContentType));
        match relay.offer {
            OfferIn::Request if sdp_resp && (200..300).contains(&resp.status) => {
                // The answer to our re-offer; the offerer gets ours.
                let body = self
                    .media
                    .reanswer(&mut call.media, relay.from, &resp.body, cid);
                set_sdp(&mut r, body);
            }
            OfferIn::Response if sdp_resp && (200..300).contains(&resp.status) => {
                // An offer in the 2xx to a bodiless re-INVITE: negotiate it
                // on its leg, offer ours to the requester (answer in the ACK).
                match self
                    .media
                    .reoffer(&mut call.media, relay.from.other(), &resp.body)
                {
                    Ok(body) => set_sdp(&mut r, Some(body)),
                    Err(refusal) => {
                        tracing::debug!(call = %cid, reason = %refusal.reason, "unusable offer in a re-INVITE answer");
                    }
                }
            }
            OfferIn::None => copy_body(&resp, &mut r),
            // Provisional or failure answers: no SDP crosses.
            _ => {}
        }
        tsx.send_response(relay.server, r, now);
        if resp.status >= 200 && !(relay.invite && resp.status < 300) {
            if let CallState::Confirmed { relays, .. } = &mut call.state {
                relays.retain(|x| x.client != id);
            }
        }
    }

    // ----- failures -----

    fn on_timeout(&mut self, id: TsxId, tsx: &mut Transactions, now: Instant) {
        if self.keepalive.on_timeout(id) {
            return;
        }
        let Some((cid, role)) = self.by_tsx.get(&id).copied() else {
            return;
        };
        match role {
            Role::BInvite => {
                let Some(call) = self.calls.get_mut(&cid) else {
                    return;
                };
                match &call.state {
                    CallState::Calling { a_invite, .. } => {
                        // RFC 3261 §17.1.1.2 Timer B: the destination never answered.
                        let a_invite = *a_invite;
                        let mut r = a_response(tsx, a_invite, 504);
                        r.set_to_tag(&call.a.local_tag);
                        tsx.send_response(a_invite, r, now);
                        self.end(cid, EndCause::DestinationTimeout, now);
                    }
                    CallState::Cancelling { cause, .. } => {
                        let cause = cause.clone();
                        self.end(cid, cause, now);
                    }
                    CallState::Dialling { b_invite } if call.agent.is_some() => {
                        let b_invite = *b_invite;
                        self.offer_timed_out(cid, b_invite, now);
                    }
                    _ => {}
                }
            }
            Role::Bye => self.bye_done(cid, id, now),
            Role::RelayClient => {
                let Some(call) = self.calls.get_mut(&cid) else {
                    return;
                };
                if let CallState::Confirmed { relays, .. } = &mut call.state {
                    if let Some(pos) = relays.iter().position(|r| r.client == id) {
                        let relay = relays.remove(pos);
                        if let Some(sreq) = tsx.request(relay.server).cloned() {
                            respond(tsx, relay.server, &sreq, 408, now);
                        }
                    }
                }
            }
            Role::AInvite | Role::RelayServer | Role::StaleOffer => {}
        }
    }

    fn on_ack_timeout(&mut self, id: TsxId, tsx: &mut Transactions, now: Instant) {
        let Some((cid, role)) = self.by_tsx.get(&id).copied() else {
            return;
        };
        if role == Role::AInvite {
            // RFC 3261 §13.3.1.4: no ACK for our 2xx: end the call.
            if self
                .calls
                .get(&cid)
                .is_some_and(|c| c.a_ack_pending == Some(id))
            {
                self.hang_up(cid, None, EndCause::NoAck, tsx, now);
            }
        }
    }

    /// Send BYE to every confirmed leg except `except`, then end the call
    /// when they are answered.
    fn hang_up(
        &mut self,
        cid: CallId,
        except: Option<Side>,
        cause: EndCause,
        tsx: &mut Transactions,
        now: Instant,
    ) {
        let contacts = [
            self.contact(Transport::Udp).to_string(),
            self.contact(Transport::Tcp).to_string(),
        ];
        // The agent's talk (or the caller's wait) is over now.
        self.acd_release(cid, Some(&cause), now);
        // The end is known now (the first BYE): the record is sealed before
        // anything of this turn goes out (the driver commits it first).
        self.seal(cid, &cause, now);
        let Some(call) = self.calls.get_mut(&cid) else {
            return;
        };
        if let CallState::Dialling { b_invite } = call.state {
            // The caller leaves (or is hung up on) while its call is being
            // put through: cancel that INVITE; a 2xx racing the CANCEL is
            // ACKed and hung up as a stray fork once the call is gone.
            tsx.cancel(b_invite, now);
        }
        if let CallState::Confirmed { relays, .. } = &call.state {
            // Requests still being relayed will never complete usefully.
            for r in relays.clone() {
                if let Some(sreq) = tsx.request(r.server).cloned() {
                    respond(tsx, r.server, &sreq, 487, now);
                }
            }
        }
        if matches!(call.state, CallState::Terminating { .. }) {
            return;
        }
        let mut byes = Vec::new();
        for side in [Side::A, Side::B] {
            if Some(side) == except {
                continue;
            }
            if let Some(d) = call.dialog_mut(side) {
                let contact = match d.peer.transport {
                    Transport::Udp => &contacts[0],
                    Transport::Tcp => &contacts[1],
                };
                let bye = d.request(Method::Bye, contact, None);
                let peer = d.peer.clone();
                byes.push(tsx.send_request(bye, peer, now));
            }
        }
        for b in &byes {
            self.by_tsx.insert(*b, (cid, Role::Bye));
        }
        if byes.is_empty() {
            self.end(cid, cause, now);
        } else {
            call.state = CallState::Terminating { byes, cause };
        }
    }

    fn bye_done(&mut self, cid: CallId, id: TsxId, now: Instant) {
        let Some(call) = self.calls.get_mut(&cid) else {
            return;
        };
        if let CallState::Terminating { byes, cause } = &mut call.state {
            byes.retain(|b| *b != id);
            if byes.is_empty() {
                let cause = cause.clone();
                self.end(cid, cause, now);
            }
        }
    }

    fn end(&mut self, cid: CallId, cause: EndCause, now: Instant) {
        self.acd_release(cid, Some(&cause), now);
        self.seal(cid, &cause, now);
        let Some(call) = self.calls.remove(&cid) else {
            return;
        };
        // The call's trunk slot, exactly once: only the removal gets here.
        self.admission.release(&call.trunk);
        self.trunk_gauge(&call.trunk);
        self.ring.cancel(cid);
        self.ivr_timers.cancel(cid);
        self.media.close_call(&call.media);
        self.by_dialog
            .remove(&(call.a.call_id.clone(), call.a.local_tag.clone()));
        if let Some(b) = &call.b {
            self.by_dialog
                .remove(&(b.call_id.clone(), b.local_tag.clone()));
        }
        tracing::debug!(call = %cid, ?cause, "call ended");
        let cause = call.conversation_end.clone().unwrap_or(cause);
        if !call.internal {
            count_call(outcome_label(&cause), call.line.as_ref());
        }
        metrics::gauge!("hotline_calls_active").set(self.calls.len() as f64);
    }
}

/// A key for digest nonces: from the OS (a forged nonce would only skip
/// the "nonce we issued" check, the password is still needed), else from
/// the seed.
fn nonce_key(rng: &mut Rng) -> [u8; 32] {
    use aws_lc_rs::rand::SecureRandom;
    let mut key = [0u8; 32];
    if aws_lc_rs::rand::SystemRandom::new().fill(&mut key).is_err() {
        for chunk in key.chunks_exact_mut(8) {
            chunk.copy_from_slice(&rng.next_u64().to_le_bytes());
        }
    }
    key
}

/// A response to the A leg's INVITE as received (the transaction layer
/// keeps it; borrowed, not cloned).
fn a_response(tsx: &Transactions, a_invite: TsxId, status: u16) -> Response {
    match tsx.request(a_invite) {
        Some(req) => Response::to(req, status),
        None => Response::to(&Request::new(Method::Invite, "sip:invalid"), status),
    }
}

/// The CSeq number of the call's B leg INVITE.
fn b_cseq(call: &Call) -> u32 {
    call.b_invite_req
        .as_ref()
        .and_then(|r| r.cseq())
        .map_or(1, |c| c.0)
}

/// Count a call's outcome on `hotline_calls_total{tenant,line,outcome}`
/// (`none` for calls refused before a line was known, or to a route).
fn count_call(outcome: &'static str, line: Option<&crate::config::Line>) {
    let (tenant, number) = match line {
        Some(l) => (l.tenant.clone(), l.number.clone()),
        None => ("none".to_owned(), "none".to_owned()),
    };
    metrics::counter!("hotline_calls_total", "tenant" => tenant, "line" => number, "outcome" => outcome)
        .increment(1);
}

/// Answer a request with a bare status.
fn respond(tsx: &mut Transactions, id: TsxId, req: &Request, status: u16, now: Instant) {
    let mut r = Response::to(req, status);
    if req.to_tag().is_none() {
        // RFC 3261 §8.2.6.2: a final response gets a To tag. Derive it from
        // the transaction so retransmitted requests get the same one.
        r.set_to_tag(&format!("h{}", id.0));
    }
    tsx.send_response(id, r, now);
}

/// Put our SDP (if any) in a message as its only body.
fn set_sdp(to: &mut impl Body, body: Option<String>) {
    if let Some(body) = body {
        to.headers_mut().set("Content-Type", "application/sdp");
        to.set_body(Bytes::from(body));
    }
}

/// Copy body and Content-Type (and nothing else) from one message to another.
fn copy_body(from: &impl Body, to: &mut impl Body) {
    if let Some(ct) = from.headers().get(Hdr::ContentType) {
        to.headers_mut().set("Content-Type", ct.to_string());
    }
    to.set_body(from.body().clone());
}

/// Body access for requests and responses.
trait Body: SipHeaders {
    fn body(&self) -> &Bytes;
    fn set_body(&mut self, b: Bytes);
}

impl Body for Request {
    fn body(&self) -> &Bytes {
        &self.body
    }
    fn set_body(&mut self, b: Bytes) {
        self.body = b;
    }
}

impl Body for Response {
    fn body(&self) -> &Bytes {
        &self.body
    }
    fn set_body(&mut self, b: Bytes) {
        self.body = b;
    }
}
