//! The signalling core: one loop that composes the SIP layers and the B2BUA.
//!
//! Loop contract (str0m's "single-mutation invariant"): after any
//! `handle_input` or `handle_timeout`, the driver drains `poll_output` until
//! it returns [`Output::Timeout`], then sleeps until that instant or the next
//! input, whichever comes first.

use crate::call::b2bua::{B2bua, Wake};
use crate::config::{Config, UnknownSource};
use crate::ids::{CallId, ConnId, TsxId};
use crate::sip::msg::{Message, Method, SipHeaders};
use crate::sip::transaction::{LocalVia, Peer, TimerConfig, Transactions};
use crate::sip::transport::{Packet, Transmit};
use crate::sip::validate::{check, Policy, Verdict};
use crate::time::{Instant, Soonest};
use std::collections::HashMap;
use std::sync::Arc;

/// What the driver feeds the core.
#[derive(Debug)]
pub enum Input {
    /// A datagram or a framed stream message.
    Packet(Packet),
    /// A stream connection closed (or failed to connect).
    ConnClosed(ConnId),
    /// Stop taking new calls (SIGTERM): new INVITEs get 503; live calls go on.
    Drain,
    /// The wall clock read now: time since the Unix epoch (the driver sends
    /// it at start and on every tick; call records carry UTC times).
    WallClock(std::time::Duration),
    /// A report from a media shard.
    Media(crate::media::shard::MediaEvent),
}

/// What the core asks of the driver.
#[derive(Debug)]
#[must_use]
pub enum Output {
    /// Send bytes.
    Transmit(Transmit),
    /// Store a call record or event in the outbox. The driver commits every
    /// `Record` of a turn before it sends that turn's `Transmit`s, so a
    /// peer never sees the end of a call whose record could still be lost.
    Record(crate::call::record::RecordItem),
    /// Command media shard `shard` (index into [`Gateway::media_ranges`]).
    Media {
        /// The shard.
        shard: usize,
        /// What to do.
        cmd: crate::media::shard::MediaCommand,
    },
    /// Nothing more now; call `handle_timeout` at this instant.
    Timeout(Instant, Reason),
}

/// Why the core wants to be woken (CONVENTIONS §3: "why did we wake?").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// A transaction timer (RFC 3261 §17 names).
    Transaction(TsxId, crate::sip::transaction::Timer),
    /// The callee did not answer within `sip.ring_timeout`.
    RingTimeout(CallId),
    /// A call-level guard timer (e.g. waiting for an ACK or a BYE answer).
    CallGuard(CallId),
    /// A trunk's OPTIONS keepalive is due (index into `config.trunks`).
    Keepalive(usize),
    /// A flow on the call waits for a key or a timer.
    Flow(CallId),
    /// An ACD timer (ring-no-answer, wrap-up, escalation, max wait,
    /// comfort announcement).
    Acd,
    /// An agent phone's registration expires.
    Registration,
    /// Nothing scheduled; wake on input.
    Idle,
}

/// The signalling core.
pub struct Gateway {
    config: Arc<Config>,
    tsx: Transactions,
    b2bua: B2bua,
    policy: Policy,
    dropped: HashMap<&'static str, u64>,
}

impl Gateway {
    /// A core for this configuration. `seed` feeds tags, branches and
    /// Call-IDs (the driver seeds from the OS; tests from a constant).
    pub fn new(config: Arc<Config>, seed: u64, now: Instant) -> Gateway {
        let sip = &config.sip;
        let timers = TimerConfig {
            t1: sip.t1,
            t2: sip.t2,
            t4: sip.t4,
        };
        let local = LocalVia {
            host: crate::sip::transport::host_literal(sip.advertise),
            port: sip.listen.port(),
        };
        Gateway {
            tsx: Transactions::new(timers, local, seed),
            b2bua: B2bua::new(config.clone(), seed, now),
            policy: Policy {
                max_message_bytes: sip.max_message_bytes,
                ..Policy::default()
            },
            config,
            dropped: HashMap::new(),
        }
    }

    /// Feed one input. Drain [`Gateway::poll_output`] afterwards.
    pub fn handle_input(&mut self, input: Input, now: Instant) {
        match input {
            Input::Packet(p) => self.handle_packet(p, now),
            Input::ConnClosed(_conn) => {
                // Transactions on a closed connection time out through their
                // own timers; the next message to that peer reconnects.
            }
            Input::Drain => self.b2bua.drain(),
            Input::WallClock(unix) => self.b2bua.set_wall_clock(now, unix),
            Input::Media(ev) => self.b2bua.handle_media_event(ev, &mut self.tsx, now),
        }
        self.pump(now);
    }

    /// An agent command from the operators' API (see
    /// [`crate::call::b2bua::AgentCommand`]). Drain
    /// [`Gateway::poll_output`] afterwards.
    ///
    /// # Errors
    /// Why the ACD refused it (unknown agent, logged out, unknown reason).
    pub fn agent_command(
        &mut self,
        agent: &str,
        cmd: &crate::call::b2bua::AgentCommand,
        now: Instant,
    ) -> Result<(), crate::acd::AcdError> {
        let done = self.b2bua.agent_command(agent, cmd, &mut self.tsx, now);
        self.pump(now);
        done
    }

    /// Fire the timers due at `now`. Drain [`Gateway::poll_output`] afterwards.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.tsx.handle_timeout(now);
        self.pump(now);
        self.b2bua.handle_timeout(&mut self.tsx, now);
        self.pump(now);
    }

    /// The next thing to do: a datagram to send, or when to wake up.
    pub fn poll_output(&mut self) -> Output {
        if let Some(r) = self.b2bua.poll_record() {
            return Output::Record(r);
        }
        if let Some((shard, cmd)) = self.b2bua.poll_media() {
            return Output::Media { shard, cmd };
        }
        if let Some(t) = self.tsx.poll_transmit() {
            return Output::Transmit(t);
        }
        let tsx = self
            .tsx
            .poll_timeout()
            .map(|(at, id, timer)| (at, Reason::Transaction(id, timer)));
        let b2bua = self.b2bua.poll_timeout().map(|(at, wake)| {
            let reason = match wake {
                Wake::Ring(call) => Reason::RingTimeout(call),
                Wake::Keepalive(trunk) => Reason::Keepalive(trunk),
                Wake::Ivr(call) => Reason::Flow(call),
                Wake::Acd => Reason::Acd,
                Wake::Registrar => Reason::Registration,
            };
            (at, reason)
        });
        match tsx.soonest(b2bua) {
            Some((at, reason)) => Output::Timeout(at, reason),
            None => Output::Timeout(far_future(), Reason::Idle),
        }
    }

    /// Calls not yet fully ended (the driver's drain waits for zero).
    pub fn live_calls(&self) -> usize {
        self.b2bua.live_calls()
    }

    /// Whether the node stopped taking calls.
    pub fn is_draining(&self) -> bool {
        self.b2bua.is_draining()
    }

    /// The RTP port range (even RTP ports) of each media shard the driver
    /// must run, in shard order.
    pub fn media_ranges(&self) -> Vec<std::ops::RangeInclusive<u16>> {
        let pool = self.b2bua.media().pool();
        (0..pool.shards()).filter_map(|i| pool.range(i)).collect()
    }

    /// The B2BUA, for inspection (tests, status).
    pub fn b2bua(&self) -> &B2bua {
        &self.b2bua
    }

    /// The transaction layer, for inspection (tests, metrics).
    pub fn transactions(&self) -> &Transactions {
        &self.tsx
    }

    /// Counted drops by reason label.
    pub fn dropped(&self) -> &HashMap<&'static str, u64> {
        &self.dropped
    }

    /// The configuration in force.
    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    fn drop_counted(&mut self, reason: &'static str) {
        *self.dropped.entry(reason).or_default() += 1;
        metrics::counter!("hotline_sip_dropped_total", "reason" => reason).increment(1);
    }

    fn handle_packet(&mut self, p: Packet, now: Instant) {
        let peer = Peer {
            transport: p.transport,
            addr: p.source,
            conn: p.conn,
        };
        match check(&p.data, &self.policy) {
            Verdict::Accept(Message::Request(mut req)) => {
                metrics::counter!("hotline_sip_requests_total", "method" => method_label(&req.method)).increment(1);
                // Scanners: with `unknown_source = "drop"`, out-of-dialog
                // requests from outside every trunk get no answer at all.
                // Agents' phones (REGISTER, feature codes) may come from
                // anywhere when agents are configured: they authenticate.
                let agent_request = !self.config.agents.is_empty()
                    && (req.method == Method::Register
                        || (req.method == Method::Invite
                            && req
                                .request_uri()
                                .ok()
                                .and_then(|u| u.user)
                                .is_some_and(|u| u.starts_with('*'))));
                if self.config.sip.unknown_source == UnknownSource::Drop
                    && !agent_request
                    && req.method != Method::Ack
                    && req.to_tag().is_none()
                    && self.config.trunk_for(p.source.ip()).is_none()
                    && !self.config.trunks.iter().any(|t| t.sources.is_empty())
                {
                    self.drop_counted("unknown_source");
                    return;
                }
                req.stamp_via(p.source);
                self.tsx.handle_request(req, peer, now);
            }
            Verdict::Accept(Message::Response(resp)) => {
                metrics::counter!("hotline_sip_responses_total", "class" => class_label(resp.status)).increment(1);
                self.tsx.handle_response(resp, peer, now);
            }
            Verdict::Reply(resp) => {
                // Stateless answer to a request we refuse before any
                // transaction exists; it goes back where it came from.
                metrics::counter!("hotline_sip_rejected_total", "status" => resp.status.to_string()).increment(1);
                self.tsx.send_stateless(Transmit {
                    transport: p.transport,
                    destination: p.source,
                    conn: p.conn,
                    data: resp.to_bytes(),
                });
            }
            Verdict::Drop(reason) => self.drop_counted(reason.label()),
        }
    }

    fn pump(&mut self, now: Instant) {
        while let Some(ev) = self.tsx.poll_event() {
            self.b2bua.handle_event(ev, &mut self.tsx, now);
        }
    }
}

fn far_future() -> Instant {
    // An instant far enough away to mean "never" without overflowing.
    crate::time::far_future()
}

fn method_label(m: &Method) -> &'static str {
    // Extension methods share one label: a label per arbitrary token would
    // let a peer grow the metric set without bound.
    m.standard_name().unwrap_or("other")
}

fn class_label(status: u16) -> &'static str {
    match status / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        5 => "5xx",
        _ => "6xx",
    }
}
