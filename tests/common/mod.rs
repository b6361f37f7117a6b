//! `Sim`: the gateway core, a simulated network and scripted user agents,
//! in virtual time (CONVENTIONS §9, quinn's `Pair::drive()`).
//!
//! Nothing here reads a clock after the first instant: time advances to the
//! next thing that has to happen (a datagram arriving, a timer, a scripted
//! action). Loss, delay and reordering come from a seed, so a failing seed
//! is a reproducible test.
//!
//! The user agents are built on the gateway's own transaction layer and
//! dialogs (which have their own RFC-clause unit tests): they are stand-ins
//! for carriers and phones in the pure-core tests. Wire compatibility with
//! peers we did not write is tested separately with SIPp (`e2e_sipp.rs`).
#![allow(dead_code)]

pub mod e2e;
pub mod rtp_sink;

use bytes::Bytes;
use hotline::config::{self, Config};
use hotline::gateway::{Gateway, Input, Output};
use hotline::ids::TsxId;
use hotline::rng::Rng;
use hotline::sip::dialog::Dialog;
use hotline::sip::msg::{self, Hdr, Message, Method, Request, Response, SipHeaders};
use hotline::sip::transaction::{LocalVia, Peer, TimerConfig, Transactions, TsxEvent};
use hotline::sip::transport::{Packet, Transport};
use hotline::time::{Duration, Instant};
use serde_json::Value;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::sync::Arc;

/// The gateway's address in the Sim.
pub const GW: &str = "192.0.2.1:5060";
/// A carrier's SBC (inside the demo trunk).
pub const CARRIER: &str = "198.51.100.10:5060";
/// The destination (an agent phone or a department line).
pub const DEST: &str = "203.0.113.20:5060";
/// An address outside every trunk.
pub const STRANGER: &str = "233.252.0.9:5060";

/// The carrier's SDP offer (RTP at 198.51.100.10:40000).
pub const SDP_OFFER: &str = "v=0\r\no=carrier 1 1 IN IP4 198.51.100.10\r\ns=-\r\nc=IN IP4 198.51.100.10\r\nt=0 0\r\nm=audio 40000 RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n";
/// The destination's SDP answer (RTP at 203.0.113.20:50000).
pub const SDP_ANSWER: &str = "v=0\r\no=phone 2 2 IN IP4 203.0.113.20\r\ns=-\r\nc=IN IP4 203.0.113.20\r\nt=0 0\r\nm=audio 50000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n";

/// The Sim's configuration: one trunk, one destination, two routes.
pub fn sim_config(extra: &str) -> Config {
    sim_config_text("", extra)
}

/// [`sim_config`] with `trunk_keys` in the trunk's table.
fn sim_config_text(trunk_keys: &str, extra: &str) -> Config {
    let text = format!(
        r#"
[node]
name = "sim"
shutdown_grace_secs = 30
[sip]
listen = "{GW}"
ring_timeout_secs = 60
[api]
listen = "127.0.0.1:8080"
[[trunks]]
name = "carrier"
sources = ["198.51.100.0/24"]
{trunk_keys}
[[targets]]
name = "phone"
address = "{DEST}"
[[routes]]
number = "12345"
target = "phone"
{extra}
"#
    );
    match config::parse(&text, "<sim>") {
        Ok(c) => c,
        Err(e) => panic!("sim config: {e}"),
    }
}

/// What a scripted callee does with an INVITE.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Send 180 Ringing at once.
    pub ring: bool,
    /// Send 183 with SDP at once.
    pub early_media: bool,
    /// Send the final answer after this long (`None`: never).
    pub answer_after: Option<Duration>,
    /// The final status (200 answers with SDP).
    pub status: u16,
    /// After our 200 is ACKed, hang up after this long.
    pub bye_after: Option<Duration>,
}

impl Plan {
    /// Ring, then answer after `d`.
    pub fn answer(d: Duration) -> Plan {
        Plan {
            ring: true,
            early_media: false,
            answer_after: Some(d),
            status: 200,
            bye_after: None,
        }
    }

    /// Refuse with `status` at once.
    pub fn reject(status: u16) -> Plan {
        Plan {
            ring: false,
            early_media: false,
            answer_after: Some(Duration::ZERO),
            status,
            bye_after: None,
        }
    }

    /// Ring forever.
    pub fn never() -> Plan {
        Plan {
            ring: true,
            early_media: false,
            answer_after: None,
            status: 200,
            bye_after: None,
        }
    }

    /// Say nothing at all (not even 100: the UA is not there).
    pub fn silent() -> Plan {
        Plan {
            ring: false,
            early_media: false,
            answer_after: None,
            status: 0,
            bye_after: None,
        }
    }
}

/// Something a UA saw.
#[derive(Debug, Clone)]
pub enum Seen {
    /// A request (new server transaction, or ACK).
    Request(Request),
    /// A response on one of our client transactions.
    Response(Response),
    /// One of our client transactions timed out.
    Timeout(TsxId),
}

/// A scripted user agent on our transaction layer.
pub struct Ua {
    /// Name for traces.
    pub name: &'static str,
    /// Its address.
    pub addr: SocketAddr,
    /// Its transaction layer.
    pub tsx: Transactions,
    /// Callee behaviour (for UAs that receive calls).
    pub plan: Plan,
    /// Everything it saw, in order.
    pub seen: Vec<Seen>,
    /// The dialog of its (single) call.
    pub dialog: Option<Dialog>,
    /// The INVITE client or server transaction of the call.
    pub invite: Option<TsxId>,
    /// The INVITE it received (callee) for answering.
    invite_req: Option<Request>,
    /// A pending re-INVITE client transaction.
    reinvite: Option<TsxId>,
    /// Scheduled actions.
    actions: Vec<(Instant, Action)>,
    /// Set when `send_ack` ran for the call's 2xx.
    pub acked: bool,
    /// CSeq of its last REGISTER (agent phones, see [`register`]).
    pub reg_cseq: u32,
    rng: Rng,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Final,
    Bye,
}

impl Ua {
    fn new(name: &'static str, addr: SocketAddr, plan: Plan, seed: u64) -> Ua {
        Ua {
            name,
            addr,
            tsx: Transactions::new(
                TimerConfig {
                    t1: Duration::from_millis(500),
                    t2: Duration::from_secs(4),
                    t4: Duration::from_secs(5),
                },
                LocalVia {
                    host: addr.ip().to_string(),
                    port: addr.port(),
                },
                seed,
            ),
            plan,
            seen: Vec::new(),
            dialog: None,
            invite: None,
            invite_req: None,
            reinvite: None,
            actions: Vec::new(),
            acked: false,
            reg_cseq: 0,
            rng: Rng::new(seed ^ 0x55),
        }
    }

    fn contact(&self) -> String {
        format!("<sip:{}@{}>", self.name, self.addr)
    }

    /// Statuses of the responses seen, in order (100s included).
    pub fn statuses(&self) -> Vec<u16> {
        self.seen
            .iter()
            .filter_map(|s| match s {
                Seen::Response(r) => Some(r.status),
                _ => None,
            })
            .collect()
    }

    /// Final statuses of responses to `method`.
    pub fn finals(&self, method: Method) -> Vec<u16> {
        self.seen
            .iter()
            .filter_map(|s| match s {
                Seen::Response(r)
                    if r.status >= 200 && r.cseq().map(|c| c.1) == Some(method.clone()) =>
                {
                    Some(r.status)
                }
                _ => None,
            })
            .collect()
    }

    /// Requests of a method it received.
    pub fn requests(&self, method: Method) -> Vec<&Request> {
        self.seen
            .iter()
            .filter_map(|s| match s {
                Seen::Request(r) if r.method == method => Some(r),
                _ => None,
            })
            .collect()
    }

    /// Whether a client transaction of ours timed out.
    pub fn timed_out(&self) -> bool {
        self.seen.iter().any(|s| matches!(s, Seen::Timeout(_)))
    }

    fn handle_event(&mut self, ev: TsxEvent, now: Instant) {
        match ev {
            TsxEvent::Request { tsx, request } => {
                self.seen.push(Seen::Request(request.clone()));
                self.on_request(tsx, request, now);
            }
            TsxEvent::Ack { request, .. } => {
                self.seen.push(Seen::Request(request));
                if let Some(d) = self.plan.bye_after {
                    self.actions.push((now + d, Action::Bye));
                }
            }
            TsxEvent::Cancelled { invite } => {
                if let Some(req) = self.tsx.request(invite).cloned() {
                    let mut r = Response::to(&req, 487);
                    r.set_to_tag("callee");
                    self.tsx.send_response(invite, r, now);
                }
                self.actions.retain(|a| a.1 != Action::Final);
            }
            TsxEvent::Response { tsx, response } => {
                self.seen.push(Seen::Response(response.clone()));
                self.on_response(tsx, response, now);
            }
            TsxEvent::Timeout { tsx } | TsxEvent::AckTimeout { tsx } => {
                self.seen.push(Seen::Timeout(tsx))
            }
            TsxEvent::Terminated { .. } => {}
        }
    }

    fn on_request(&mut self, tsx: TsxId, req: Request, now: Instant) {
        match req.method {
            Method::Invite if req.to_tag().is_none() => {
                self.invite = Some(tsx);
                self.invite_req = Some(req.clone());
                if self.plan.status == 0 {
                    return;
                }
                if self.plan.ring {
                    let mut r = Response::to(&req, 180);
                    r.set_to_tag("callee");
                    r.headers.push("Contact", self.contact());
                    self.tsx.send_response(tsx, r, now);
                }
                if self.plan.early_media {
                    let mut r = Response::to(&req, 183);
                    r.set_to_tag("callee");
                    r.headers.push("Contact", self.contact());
                    r.headers.push("Content-Type", "application/sdp");
                    r.body = Bytes::from_static(SDP_ANSWER.as_bytes());
                    self.tsx.send_response(tsx, r, now);
                }
                if let Some(d) = self.plan.answer_after {
                    self.actions.push((now + d, Action::Final));
                }
            }
            Method::Invite => {
                // re-INVITE: answer with our SDP, mirroring hold.
                let mut r = Response::to(&req, 200);
                r.headers.push("Contact", self.contact());
                r.headers.push("Content-Type", "application/sdp");
                let offer = String::from_utf8_lossy(&req.body).to_string();
                let answer = if offer.contains("a=sendonly") {
                    SDP_ANSWER.replace("a=sendrecv", "a=recvonly")
                } else {
                    SDP_ANSWER.to_string()
                };
                r.body = Bytes::from(answer);
                if let Some(d) = self.dialog.as_mut() {
                    d.accept_remote_cseq(&req);
                }
                self.tsx.send_response(tsx, r, now);
            }
            Method::Bye => {
                let r = Response::to(&req, 200);
                self.tsx.send_response(tsx, r, now);
            }
            _ => {
                let r = Response::to(&req, 200);
                self.tsx.send_response(tsx, r, now);
            }
        }
    }

    fn on_response(&mut self, tsx: TsxId, resp: Response, now: Instant) {
        let is_invite = resp.cseq().map(|c| c.1) == Some(Method::Invite);
        if !is_invite || !(200..300).contains(&resp.status) {
            return;
        }
        let Some(sent) = self.tsx.request(tsx).cloned() else {
            return;
        };
        let peer = Peer {
            transport: Transport::Udp,
            addr: GW.parse().unwrap_or_else(|_| unreachable!()),
            conn: None,
        };
        if Some(tsx) == self.invite && self.dialog.is_none() {
            if let Ok(d) = Dialog::uac(&sent, &resp, peer) {
                self.dialog = Some(d);
            }
        }
        // Only the call's own INVITE and re-INVITE: other INVITEs (an
        // agent's feature code) are ACKed by whoever sent them.
        if Some(tsx) != self.invite && Some(tsx) != self.reinvite {
            return;
        }
        let contact = self.contact();
        if let (Some(d), Some((cseq, _))) = (self.dialog.as_mut(), sent.cseq()) {
            let mut ack = d.request(Method::Ack, &contact, Some(cseq));
            if sent.body.is_empty() && !resp.body.is_empty() {
                // Late offer: the 2xx carried the offer; answer in the ACK.
                ack.headers.push("Content-Type", "application/sdp");
                ack.body = Bytes::from_static(SDP_OFFER.as_bytes());
            }
            self.tsx.send_ack(tsx, ack, now);
            self.acked = true;
        }
        if Some(tsx) == self.reinvite {
            self.reinvite = None;
        }
    }

    fn run_actions(&mut self, now: Instant) {
        let due: Vec<Action> = self
            .actions
            .iter()
            .filter(|(at, _)| *at <= now)
            .map(|(_, a)| *a)
            .collect();
        self.actions.retain(|(at, _)| *at > now);
        for a in due {
            match a {
                Action::Final => self.send_final(now),
                Action::Bye => self.bye(now),
            }
        }
    }

    fn send_final(&mut self, now: Instant) {
        let (Some(tsx), Some(req)) = (self.invite, self.invite_req.clone()) else {
            return;
        };
        let mut r = Response::to(&req, self.plan.status);
        r.set_to_tag("callee");
        if self.plan.status < 300 {
            r.headers.push("Contact", self.contact());
            r.headers.push("Content-Type", "application/sdp");
            r.body = Bytes::from_static(SDP_ANSWER.as_bytes());
            let peer = Peer {
                transport: Transport::Udp,
                addr: GW.parse().unwrap_or_else(|_| unreachable!()),
                conn: None,
            };
            self.dialog = Dialog::uas(&req, "callee", peer).ok();
        }
        self.tsx.send_response(tsx, r, now);
    }

    /// Hang up the call.
    pub fn bye(&mut self, now: Instant) {
        let contact = self.contact();
        if let Some(d) = self.dialog.as_mut() {
            let bye = d.request(Method::Bye, &contact, None);
            let peer = d.peer.clone();
            self.tsx.send_request(bye, peer, now);
        }
    }

    fn next_action(&self) -> Option<Instant> {
        self.actions.iter().map(|(at, _)| *at).min()
    }
}

/// One datagram in flight.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Flight {
    at: Instant,
    seq: u64,
    from: SocketAddr,
    to: SocketAddr,
    data: Vec<u8>,
}

/// A line of the wire trace.
#[derive(Debug, Clone)]
pub struct Wire {
    /// When it was sent.
    pub at: Instant,
    /// Sender.
    pub from: SocketAddr,
    /// Receiver.
    pub to: SocketAddr,
    /// The message text.
    pub text: String,
    /// The network dropped it.
    pub lost: bool,
}

/// Network impairments.
#[derive(Debug, Clone, Copy)]
pub struct Netem {
    /// Probability that a datagram is lost.
    pub loss: f64,
    /// Base one-way delay.
    pub delay: Duration,
    /// Extra uniformly random delay (reorders datagrams).
    pub jitter: Duration,
}

impl Default for Netem {
    fn default() -> Self {
        Netem {
            loss: 0.0,
            delay: Duration::from_millis(10),
            jitter: Duration::ZERO,
        }
    }
}

/// Wall-clock time at a Sim's start (Unix time), for call records.
pub const SIM_EPOCH: Duration = Duration::from_secs(1_795_441_657);

/// The whole simulated world.
pub struct Sim {
    /// Virtual now.
    pub now: Instant,
    /// When the Sim started.
    pub start: Instant,
    /// The gateway core under test.
    pub gw: Gateway,
    /// Gateway address.
    pub gw_addr: SocketAddr,
    /// User agents: by convention `uas[0]` is the carrier, `uas[1]` the destination.
    pub uas: Vec<Ua>,
    /// Impairments.
    pub netem: Netem,
    /// Everything sent on the wire.
    pub wire: Vec<Wire>,
    /// Call records and events the gateway asked to store, in order.
    pub records: Vec<hotline::call::record::RecordItem>,
    /// Commands the gateway gave its media shards: (shard, command).
    pub media: Vec<(usize, hotline::media::shard::MediaCommand)>,
    flights: BinaryHeap<Reverse<Flight>>,
    gw_deadline: Option<Instant>,
    rng: Rng,
    seq: u64,
    outputs_checked: u64,
}

impl Sim {
    /// A Sim with the default config, a carrier and a destination that
    /// follows `plan`.
    pub fn new(seed: u64, plan: Plan) -> Sim {
        Sim::with_config(seed, plan, sim_config(""))
    }

    /// A Sim with a given config.
    pub fn with_config(seed: u64, plan: Plan, config: Config) -> Sim {
        let start = hotline::time::now();
        let gw_addr: SocketAddr = GW.parse().unwrap_or_else(|_| unreachable!());
        let mut gw = Gateway::new(Arc::new(config), seed, start);
        // The wall clock at the Sim's start: 2026-11-23T13:47:37Z.
        gw.handle_input(Input::WallClock(SIM_EPOCH), start);
        let carrier = Ua::new(
            "carrier",
            CARRIER.parse().unwrap_or_else(|_| unreachable!()),
            Plan::never(),
            seed ^ 1,
        );
        let dest = Ua::new(
            "phone",
            DEST.parse().unwrap_or_else(|_| unreachable!()),
            plan,
            seed ^ 2,
        );
        let mut sim = Sim {
            now: start,
            start,
            gw,
            gw_addr,
            uas: vec![carrier, dest],
            netem: Netem::default(),
            wire: Vec::new(),
            records: Vec::new(),
            media: Vec::new(),
            flights: BinaryHeap::new(),
            gw_deadline: None,
            rng: Rng::new(seed),
            seq: 0,
            outputs_checked: 0,
        };
        sim.drain_gw();
        sim
    }

    /// Add a UA at `addr` (e.g. a stranger outside the trunks).
    pub fn add_ua(&mut self, name: &'static str, addr: &str, plan: Plan) -> usize {
        let seed = self.rng.next_u64();
        self.uas.push(Ua::new(
            name,
            addr.parse().unwrap_or_else(|_| unreachable!()),
            plan,
            seed,
        ));
        self.uas.len() - 1
    }

    /// The carrier UA.
    pub fn carrier(&mut self) -> &mut Ua {
        &mut self.uas[0]
    }

    /// The destination UA.
    pub fn dest(&mut self) -> &mut Ua {
        &mut self.uas[1]
    }

    /// Virtual time since start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// UA `ua` calls `number` through the gateway (with an SDP offer, or
    /// without for a late-offer call).
    pub fn invite_from(&mut self, ua: usize, number: &str, offer: Option<&str>) {
        let rr = format!("<sip:sbc.{}.carrier.example;lr>", self.uas[ua].name);
        self.send_invite(ua, number, 1, offer, &[("Record-Route", rr)]);
    }

    /// UA `ua` calls `number` with an SDP offer, with `extra` headers
    /// (e.g. `Proxy-Authorization`) and CSeq `cseq`.
    pub fn invite_with(&mut self, ua: usize, number: &str, cseq: u32, extra: &[(&str, String)]) {
        self.send_invite(ua, number, cseq, Some(SDP_OFFER), extra);
    }

    fn send_invite(
        &mut self,
        ua: usize,
        number: &str,
        cseq: u32,
        offer: Option<&str>,
        extra: &[(&str, String)],
    ) {
        let now = self.now;
        let gw = self.gw_addr;
        let u = &mut self.uas[ua];
        let mut req = Request::new(Method::Invite, format!("sip:{number}@{gw}"));
        let tag = u.rng.token(8);
        let cid = u.rng.token(16);
        req.headers.push("Max-Forwards", "70");
        req.headers.push(
            "From",
            format!("\"Citizen\" <sip:13800138000@{}>;tag={tag}", u.addr.ip()),
        );
        req.headers.push("To", format!("<sip:{number}@{gw}>"));
        req.headers
            .push("Call-ID", format!("{cid}@{}", u.addr.ip()));
        req.headers.push("CSeq", format!("{cseq} INVITE"));
        req.headers.push("Contact", u.contact());
        for (name, value) in extra {
            req.headers.push(name, value.clone());
        }
        if let Some(sdp) = offer {
            req.headers.push("Content-Type", "application/sdp");
            req.body = Bytes::from(sdp.to_string());
        }
        let peer = Peer {
            transport: Transport::Udp,
            addr: gw,
            conn: None,
        };
        let id = u.tsx.send_request(req, peer, now);
        u.invite = Some(id);
        self.flush_uas();
    }

    /// The carrier calls `number` with an SDP offer.
    pub fn invite(&mut self, number: &str) {
        self.invite_from(0, number, Some(SDP_OFFER));
    }

    /// UA `ua` sends an out-of-dialog request of `method`.
    pub fn request_from(&mut self, ua: usize, method: Method) {
        let now = self.now;
        let gw = self.gw_addr;
        let u = &mut self.uas[ua];
        let mut req = Request::new(method.clone(), format!("sip:{gw}"));
        req.headers.push("Max-Forwards", "70");
        req.headers.push(
            "From",
            format!("<sip:ping@{}>;tag={}", u.addr.ip(), u.rng.token(8)),
        );
        req.headers.push("To", format!("<sip:{gw}>"));
        req.headers.push("Call-ID", u.rng.token(16));
        req.headers.push("CSeq", format!("1 {method}"));
        let peer = Peer {
            transport: Transport::Udp,
            addr: gw,
            conn: None,
        };
        u.tsx.send_request(req, peer, now);
        self.flush_uas();
    }

    /// The carrier cancels its INVITE.
    pub fn cancel(&mut self) {
        let now = self.now;
        if let Some(id) = self.uas[0].invite {
            self.uas[0].tsx.cancel(id, now);
        }
        self.flush_uas();
    }

    /// UA `ua` hangs up.
    pub fn bye(&mut self, ua: usize) {
        let now = self.now;
        self.uas[ua].bye(now);
        self.flush_uas();
    }

    /// UA `ua` sends a re-INVITE with `sdp` (hold: `a=sendonly`).
    pub fn reinvite(&mut self, ua: usize, sdp: &str) {
        let now = self.now;
        let u = &mut self.uas[ua];
        let contact = u.contact();
        if let Some(d) = u.dialog.as_mut() {
            let mut req = d.request(Method::Invite, &contact, None);
            req.headers.push("Content-Type", "application/sdp");
            req.body = Bytes::from(sdp.to_string());
            let peer = d.peer.clone();
            let id = u.tsx.send_request(req, peer, now);
            u.reinvite = Some(id);
        }
        self.flush_uas();
    }

    /// UA `ua` sends an in-dialog `method` with `content_type` and `body`
    /// (e.g. INFO with `application/dtmf-relay`).
    pub fn in_dialog(&mut self, ua: usize, method: Method, content_type: &str, body: &str) {
        let now = self.now;
        let u = &mut self.uas[ua];
        let contact = u.contact();
        if let Some(d) = u.dialog.as_mut() {
            let mut req = d.request(method, &contact, None);
            if !body.is_empty() {
                req.headers.push("Content-Type", content_type.to_string());
                req.body = Bytes::from(body.to_string());
            }
            let peer = d.peer.clone();
            u.tsx.send_request(req, peer, now);
        }
        self.flush_uas();
    }

    /// The media commands given so far, without their shard.
    pub fn media_commands(&self) -> Vec<hotline::media::shard::MediaCommand> {
        self.media.iter().map(|(_, c)| c.clone()).collect()
    }

    /// The `Update` parameters given for `leg`, last first.
    pub fn leg_params(&self, leg: u16) -> Vec<hotline::media::shard::LegParams> {
        use hotline::media::shard::MediaCommand;
        self.media
            .iter()
            .rev()
            .filter_map(|(_, c)| match c {
                MediaCommand::Update { leg: l, params } if *l == leg => Some(params.clone()),
                _ => None,
            })
            .collect()
    }

    /// A media shard reports `ev` to the gateway.
    pub fn media_event(&mut self, ev: hotline::media::shard::MediaEvent) {
        let now = self.now;
        self.gw
            .handle_input(hotline::gateway::Input::Media(ev), now);
        self.drain_gw();
    }

    /// An agent command through the core API (what the HTTP layer calls).
    pub fn agent_command(
        &mut self,
        agent: &str,
        cmd: &hotline::call::b2bua::AgentCommand,
    ) -> Result<(), hotline::acd::AcdError> {
        let now = self.now;
        let done = self.gw.agent_command(agent, cmd, now);
        self.drain_gw();
        done
    }

    /// Send raw bytes from `from` to the gateway (hostile input tests).
    pub fn send_raw(&mut self, from: &str, data: &[u8]) {
        let from: SocketAddr = from.parse().unwrap_or_else(|_| unreachable!());
        let to = self.gw_addr;
        self.transmit(from, to, data.to_vec());
    }

    fn transmit(&mut self, from: SocketAddr, to: SocketAddr, data: Vec<u8>) {
        let lost = self.netem.loss > 0.0
            && (self.rng.next_u64() as f64 / u64::MAX as f64) < self.netem.loss;
        let jitter_ns = self.netem.jitter.as_nanos() as u64;
        let extra = if jitter_ns > 0 {
            self.rng.below(jitter_ns)
        } else {
            0
        };
        self.wire.push(Wire {
            at: self.now,
            from,
            to,
            text: String::from_utf8_lossy(&data).to_string(),
            lost,
        });
        if lost {
            return;
        }
        self.seq += 1;
        self.flights.push(Reverse(Flight {
            at: self.now + self.netem.delay + Duration::from_nanos(extra),
            seq: self.seq,
            from,
            to,
            data,
        }));
    }

    /// Drain the gateway's outputs (the loop contract: until Timeout).
    fn drain_gw(&mut self) {
        loop {
            match self.gw.poll_output() {
                Output::Transmit(t) => {
                    assert_eq!(t.transport, Transport::Udp, "Sim is UDP only");
                    let from = self.gw_addr;
                    self.transmit(from, t.destination, t.data.to_vec());
                }
                Output::Record(r) => self.records.push(r),
                Output::Media { shard, cmd } => self.media.push((shard, cmd)),
                Output::Timeout(at, _reason) => {
                    self.gw_deadline = Some(at);
                    self.outputs_checked += 1;
                    return;
                }
            }
        }
    }

    fn flush_uas(&mut self) {
        let now = self.now;
        for i in 0..self.uas.len() {
            loop {
                let mut progressed = false;
                while let Some(ev) = self.uas[i].tsx.poll_event() {
                    self.uas[i].handle_event(ev, now);
                    progressed = true;
                }
                while let Some(t) = self.uas[i].tsx.poll_transmit() {
                    let from = self.uas[i].addr;
                    self.transmit(from, t.destination, t.data.to_vec());
                    progressed = true;
                }
                if !progressed {
                    break;
                }
            }
        }
    }

    fn deliver(&mut self, f: Flight) {
        let now = self.now;
        if f.to == self.gw_addr {
            self.gw.handle_input(
                Input::Packet(Packet {
                    transport: Transport::Udp,
                    source: f.from,
                    conn: None,
                    data: Bytes::from(f.data),
                }),
                now,
            );
            self.drain_gw();
            return;
        }
        let Some(i) = self.uas.iter().position(|u| u.addr == f.to) else {
            return;
        };
        let peer = Peer {
            transport: Transport::Udp,
            addr: f.from,
            conn: None,
        };
        let parsed = match msg::parse(&f.data) {
            Ok(p) => p,
            Err(e) => panic!(
                "gateway sent an unparseable message ({e}): {}",
                String::from_utf8_lossy(&f.data)
            ),
        };
        match parsed.message {
            Message::Request(mut r) => {
                r.stamp_via(f.from);
                self.uas[i].tsx.handle_request(r, peer, now);
            }
            Message::Response(r) => self.uas[i].tsx.handle_response(r, peer, now),
        }
        self.flush_uas();
    }

    /// Advance to the next event and process it. Returns false when nothing
    /// at all is scheduled.
    pub fn step(&mut self) -> bool {
        self.step_until(None)
    }

    /// [`Sim::step`], but never advance past `horizon`: if nothing is due
    /// by then, time moves to `horizon` and nothing is processed.
    pub fn step_until(&mut self, horizon: Option<Instant>) -> bool {
        let mut next: Option<Instant> = self.flights.peek().map(|Reverse(f)| f.at);
        let consider = |n: &mut Option<Instant>, t: Option<Instant>| {
            if let Some(t) = t {
                if n.is_none_or(|x| t < x) {
                    *n = Some(t);
                }
            }
        };
        let far = hotline::time::far_future();
        consider(&mut next, self.gw_deadline.filter(|d| *d < far));
        for u in &mut self.uas {
            consider(&mut next, u.tsx.poll_timeout().map(|t| t.0));
            consider(&mut next, u.next_action());
        }
        let Some(at) = next else { return false };
        if let Some(h) = horizon {
            if at > h {
                self.now = self.now.max(h);
                return true;
            }
        }
        if at > self.now {
            self.now = at;
        }
        let now = self.now;
        // Datagrams due now, in order.
        while self.flights.peek().is_some_and(|Reverse(f)| f.at <= now) {
            if let Some(Reverse(f)) = self.flights.pop() {
                self.deliver(f);
            }
        }
        if self.gw_deadline.is_some_and(|d| d <= now) {
            self.gw.handle_timeout(now);
            self.drain_gw();
        }
        for i in 0..self.uas.len() {
            self.uas[i].tsx.handle_timeout(now);
            self.uas[i].run_actions(now);
        }
        self.flush_uas();
        true
    }

    /// Step until `pred` holds or `limit` of virtual time passes; returns
    /// whether `pred` held.
    pub fn run_until(&mut self, limit: Duration, mut pred: impl FnMut(&Sim) -> bool) -> bool {
        let end = self.now + limit;
        loop {
            if pred(self) {
                return true;
            }
            if self.now >= end || !self.step_until(Some(end)) {
                return pred(self);
            }
        }
    }

    /// Run for a stretch of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            if !self.step_until(Some(end)) {
                self.now = end;
            }
        }
    }

    /// Wire messages between two addresses (both directions if `both`).
    pub fn wire_between(&self, a: &str, b: &str) -> Vec<&Wire> {
        let a: SocketAddr = a.parse().unwrap_or_else(|_| unreachable!());
        let b: SocketAddr = b.parse().unwrap_or_else(|_| unreachable!());
        self.wire
            .iter()
            .filter(|w| (w.from == a && w.to == b) || (w.from == b && w.to == a))
            .collect()
    }

    /// Feed the gateway an input (e.g. `Input::Drain`) and drain its outputs.
    pub fn input(&mut self, input: Input) {
        let now = self.now;
        self.gw.handle_input(input, now);
        self.drain_gw();
    }

    /// Live calls in the gateway.
    pub fn live_calls(&self) -> usize {
        self.gw.live_calls()
    }

    /// The value of a header in a wire message.
    pub fn header(text: &str, name: &str) -> Option<String> {
        match msg::parse(text.as_bytes()).ok()?.message {
            Message::Request(r) => r.headers.get_named(name).map(str::to_string),
            Message::Response(r) => r.headers.get_named(name).map(str::to_string),
        }
    }
}

/// Whether a header kind appears in a message text.
pub fn has_header(text: &str, kind: Hdr) -> bool {
    match msg::parse(text.as_bytes()).map(|p| p.message) {
        Ok(Message::Request(r)) => r.headers.get(kind).is_some(),
        Ok(Message::Response(r)) => r.headers.get(kind).is_some(),
        Err(_) => false,
    }
}

/// The Sim's configuration with `trunk_keys` added to its trunk "carrier"
/// (e.g. `max_cps = 2`) and `extra` appended, like [`sim_config`].
pub fn sim_config_with_trunk(trunk_keys: &str, extra: &str) -> Config {
    sim_config_text(trunk_keys, extra)
}

/// Check `v` against the subset of JSON Schema our schemas use (type,
/// required, additionalProperties: false, properties, const, enum,
/// integer minimum/maximum, array items). Returns the first violation.
pub fn check_schema(schema: &Value, v: &Value, path: &str) -> Result<(), String> {
    if let Some(c) = schema.get("const") {
        return if c == v {
            Ok(())
        } else {
            Err(format!("{path}: {v} is not {c}"))
        };
    }
    if let Some(e) = schema.get("enum").and_then(Value::as_array) {
        return if e.contains(v) {
            Ok(())
        } else {
            Err(format!("{path}: {v} not in {e:?}"))
        };
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("object") => {
            let Some(obj) = v.as_object() else {
                return Err(format!("{path}: not an object"));
            };
            let props = schema.get("properties").and_then(Value::as_object);
            for r in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let key = r.as_str().unwrap_or_default();
                if !obj.contains_key(key) {
                    return Err(format!("{path}: missing {key}"));
                }
            }
            for (k, val) in obj {
                match props.and_then(|p| p.get(k)) {
                    Some(s) => check_schema(s, val, &format!("{path}.{k}"))?,
                    None => match schema.get("additionalProperties") {
                        Some(Value::Bool(false)) => {
                            return Err(format!("{path}: unexpected property {k}"));
                        }
                        Some(s @ Value::Object(_)) => check_schema(s, val, &format!("{path}.{k}"))?,
                        _ => {}
                    },
                }
            }
            Ok(())
        }
        Some("array") => {
            let Some(items) = v.as_array() else {
                return Err(format!("{path}: not an array"));
            };
            let item = schema.get("items").cloned().unwrap_or(Value::Bool(true));
            for (i, x) in items.iter().enumerate() {
                check_schema(&item, x, &format!("{path}[{i}]"))?;
            }
            Ok(())
        }
        Some("integer") => {
            let Some(n) = v.as_i64() else {
                return Err(format!("{path}: {v} is not an integer"));
            };
            if schema
                .get("minimum")
                .and_then(Value::as_i64)
                .is_some_and(|m| n < m)
                || schema
                    .get("maximum")
                    .and_then(Value::as_i64)
                    .is_some_and(|m| n > m)
            {
                return Err(format!("{path}: {n} out of range"));
            }
            Ok(())
        }
        Some("boolean") => v
            .as_bool()
            .map(|_| ())
            .ok_or_else(|| format!("{path}: {v} is not a boolean")),
        Some("string") => v
            .as_str()
            .map(|_| ())
            .ok_or_else(|| format!("{path}: {v} is not a string")),
        _ => Ok(()),
    }
}

/// Check a record item against `schemas/<kind>.v1.json`; panics with the
/// violation and the body.
pub fn check_item_schema(item: &hotline::call::record::RecordItem) {
    let path = format!(
        "{}/schemas/{}.v1.json",
        env!("CARGO_MANIFEST_DIR"),
        item.kind
    );
    let schema: Value = match std::fs::read_to_string(&path).map(|t| serde_json::from_str(&t)) {
        Ok(Ok(s)) => s,
        other => panic!("schema {path}: {other:?}"),
    };
    let body: Value = match serde_json::from_str(&item.body) {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    };
    if let Err(e) = check_schema(&schema, &body, item.kind) {
        panic!("{e}\n{}", item.body);
    }
}

/// The flows the line tests share (Sim and SIPp): tenant "city", queues
/// "general" and "health" delivered to the target `target`, flow "intake"
/// (greeting, recording notice, queue "general": the GB/T 33358 12345
/// intake) and flow "dialect" (a menu: 1 Mandarin, 2 Cantonese with
/// priority 2, each into "health" with its skill; no key or wrong keys
/// into "health" without one).
pub fn line_flows_toml(target: &str) -> String {
    format!(
        r#"
[[tenants]]
name = "city"
[[queues]]
name = "general"
tenant = "city"
target = "{target}"
[[queues]]
name = "health"
tenant = "city"
target = "{target}"

[[flows]]
name = "intake"
entry = "greeting"
[[flows.nodes]]
name = "greeting"
kind = "play"
prompt = "greeting"
next = "notice"
[[flows.nodes]]
name = "notice"
kind = "play"
prompt = "recording_notice"
next = "general"
[[flows.nodes]]
name = "general"
kind = "queue"
queue = "general"

[[flows]]
name = "dialect"
entry = "menu"
[[flows.nodes]]
name = "menu"
kind = "menu"
prompt = "greeting"
options = {{ 1 = "mandarin", 2 = "cantonese" }}
timeout_secs = 5
timeout = "default"
retries = 1
[[flows.nodes]]
name = "mandarin"
kind = "set_tag"
key = "dialect"
value = "mandarin"
next = "q-mandarin"
[[flows.nodes]]
name = "q-mandarin"
kind = "queue"
queue = "health"
skills = ["mandarin"]
[[flows.nodes]]
name = "cantonese"
kind = "set_tag"
key = "dialect"
value = "cantonese"
next = "q-cantonese"
[[flows.nodes]]
name = "q-cantonese"
kind = "queue"
queue = "health"
skills = ["cantonese"]
priority = 2
[[flows.nodes]]
name = "default"
kind = "queue"
queue = "health"

"#
    )
}

// ------------------------------------------------------------ agent phones

/// A parameter of a digest challenge (`realm="x"` or `algorithm=MD5`).
fn challenge_param(challenge: &str, name: &str) -> Option<String> {
    challenge.split(',').find_map(|part| {
        let part = part.trim();
        let part = part.strip_prefix("Digest ").map_or(part, str::trim_start);
        let (k, v) = part.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().trim_matches('"').to_owned())
    })
}

/// A client's answer (`Authorization` / `Proxy-Authorization` value) to a
/// digest `challenge` (`WWW-Authenticate` / `Proxy-Authenticate` value)
/// for a request of `method` to `uri` (RFC 7616 §3.4, qop=auth).
pub fn digest_answer(
    challenge: &str,
    user: &str,
    password: &str,
    method: &str,
    uri: &str,
) -> String {
    use hotline::sip::digest::{self, Algorithm, Credentials};
    let realm = challenge_param(challenge, "realm").unwrap_or_default();
    let nonce = challenge_param(challenge, "nonce").unwrap_or_default();
    let algorithm = match challenge_param(challenge, "algorithm").as_deref() {
        Some("SHA-256") => Algorithm::Sha256,
        _ => Algorithm::Md5,
    };
    let mut c = Credentials {
        username: user.into(),
        realm: realm.clone(),
        nonce: nonce.clone(),
        uri: uri.into(),
        response: String::new(),
        algorithm: Some(algorithm.as_str().into()),
        cnonce: Some("0a4f113b".into()),
        nc: Some("00000001".into()),
        qop: Some("auth".into()),
    };
    c.response = digest::response(algorithm, &c, method, password);
    format!(
        "Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{}\", algorithm={}, cnonce=\"0a4f113b\", nc=00000001, qop=auth",
        c.response,
        algorithm.as_str()
    )
}

/// The first challenge of `header` in `r` whose algorithm we can answer.
fn first_challenge(r: &Response, header: &str) -> Option<String> {
    r.headers
        .0
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case(header))
        .map(|h| h.value.clone())
        .find(|v| {
            matches!(
                challenge_param(v, "algorithm").as_deref(),
                None | Some("MD5" | "SHA-256")
            )
        })
}

impl Sim {
    /// UA `ua` sends `req` (out of dialog) to the gateway; runs until its
    /// final response (at most 40 s of virtual time) and returns it.
    pub fn request_final(&mut self, ua: usize, req: Request) -> Option<Response> {
        self.request_final_tsx(ua, req).map(|(_, r)| r)
    }

    /// [`Sim::request_final`], with the request's client transaction.
    pub fn request_final_tsx(&mut self, ua: usize, req: Request) -> Option<(TsxId, Response)> {
        let call_id = req.call_id().map(str::to_owned);
        let cseq = req.cseq().map(|c| c.0);
        let before = self.uas[ua].seen.len();
        let peer = Peer {
            transport: Transport::Udp,
            addr: self.gw_addr,
            conn: None,
        };
        let now = self.now;
        let tsx = self.uas[ua].tsx.send_request(req, peer, now);
        self.flush_uas();
        let find = |s: &Sim| -> Option<Response> {
            s.uas[ua].seen[before..].iter().find_map(|x| match x {
                Seen::Response(r)
                    if r.status >= 200
                        && r.call_id().map(str::to_owned) == call_id
                        && r.cseq().map(|c| c.0) == cseq =>
                {
                    Some(r.clone())
                }
                _ => None,
            })
        };
        self.run_until(Duration::from_secs(40), |s| find(s).is_some());
        find(self).map(|r| (tsx, r))
    }

    /// A REGISTER of UA `ua` for agent `user` (Call-ID fixed per UA, CSeq
    /// counting up), with `auth` as its `Authorization`.
    fn register_request(
        &mut self,
        ua: usize,
        user: &str,
        expires: Option<u32>,
        auth: Option<String>,
    ) -> Request {
        let gw = self.gw_addr;
        let u = &mut self.uas[ua];
        u.reg_cseq += 1;
        let mut req = Request::new(Method::Register, format!("sip:{gw}"));
        let h = &mut req.headers;
        h.push("Max-Forwards", "70");
        h.push(
            "From",
            format!("<sip:{user}@{}>;tag=reg-{}", gw.ip(), u.name),
        );
        h.push("To", format!("<sip:{user}@{}>", gw.ip()));
        h.push("Call-ID", format!("reg-{}@{}", u.name, u.addr.ip()));
        h.push("CSeq", format!("{} REGISTER", u.reg_cseq));
        h.push("Contact", format!("<sip:{user}@{}>", u.addr));
        if let Some(e) = expires {
            h.push("Expires", e.to_string());
        }
        if let Some(a) = auth {
            h.push("Authorization", a);
        }
        req
    }
}

/// UA `ua` registers as agent `user` with `password` (challenge, then
/// credentials); returns the final status (200 when registered).
pub fn register(sim: &mut Sim, ua: usize, user: &str, password: &str) -> u16 {
    register_expires(sim, ua, user, password, None)
}

/// [`register`] asking for `expires` seconds (`Some(0)` unregisters).
pub fn register_expires(
    sim: &mut Sim,
    ua: usize,
    user: &str,
    password: &str,
    expires: Option<u32>,
) -> u16 {
    let req = sim.register_request(ua, user, expires, None);
    let Some(r) = sim.request_final(ua, req) else {
        return 0;
    };
    if r.status != 401 {
        return r.status;
    }
    let Some(ch) = first_challenge(&r, "WWW-Authenticate") else {
        return r.status;
    };
    let uri = format!("sip:{}", sim.gw_addr);
    let auth = digest_answer(&ch, user, password, "REGISTER", &uri);
    let req = sim.register_request(ua, user, expires, Some(auth));
    sim.request_final(ua, req).map_or(0, |r| r.status)
}

/// UA `ua` dials feature `code` (`*21` …) as agent `user` with `password`:
/// the INVITE, its 407 challenge answered with `Proxy-Authorization`, and
/// the gateway's final answer. A 200 (done, or refused with the failure
/// prompt) is ACKed, the prompt played to its end (the media shard's part),
/// and the gateway's BYE answered; returns the status and, for a 200, the
/// prompt played (else the reason phrase).
pub fn feature_code(
    sim: &mut Sim,
    ua: usize,
    user: &str,
    password: &str,
    code: &str,
) -> Option<(u16, String)> {
    let (tsx, sent, r) = feature_code_final(sim, ua, user, password, code)?;
    if r.status != 200 {
        return Some((r.status, r.reason.clone()));
    }
    let peer = Peer {
        transport: Transport::Udp,
        addr: sim.gw_addr,
        conn: None,
    };
    let mut d = Dialog::uac(&sent, &r, peer).ok()?;
    let contact = format!("<sip:{user}@{}>", sim.uas[ua].addr);
    let mut ack = d.request(Method::Ack, &contact, sent.cseq().map(|c| c.0));
    ack.headers.push("Content-Type", "application/sdp");
    ack.body = Bytes::from_static(SDP_OFFER.as_bytes());
    let now = sim.now;
    sim.uas[ua].tsx.send_ack(tsx, ack, now);
    sim.flush_uas();
    sim.run_for(Duration::from_millis(20));
    // The prompt the gateway started on the phone's leg, played to its end.
    let (leg, prompt) = sim.media.iter().rev().find_map(|(_, c)| match c {
        hotline::media::shard::MediaCommand::Play { leg, what, .. } => {
            Some((*leg, what.name().to_owned()))
        }
        _ => None,
    })?;
    sim.media_event(hotline::media::shard::MediaEvent::PlaybackDone {
        leg,
        interrupted: false,
    });
    let call_id = r.call_id().map(str::to_owned);
    sim.run_until(Duration::from_secs(5), |s| {
        s.uas[ua].seen.iter().any(|x| {
            matches!(x, Seen::Request(q) if q.method == Method::Bye && q.call_id().map(str::to_owned) == call_id)
        })
    });
    sim.run_for(Duration::from_millis(20));
    Some((200, prompt))
}

/// The feature-code INVITE up to its final answer: (its transaction, the
/// INVITE as sent, the answer).
fn feature_code_final(
    sim: &mut Sim,
    ua: usize,
    user: &str,
    password: &str,
    code: &str,
) -> Option<(TsxId, Request, Response)> {
    let gw = sim.gw_addr;
    let ruri = format!("sip:{code}@{gw}");
    let (tag, cid, addr) = {
        let u = &mut sim.uas[ua];
        (u.rng.token(8), u.rng.token(16), u.addr)
    };
    let build = |cseq: u32, auth: Option<String>| {
        let mut req = Request::new(Method::Invite, ruri.clone());
        let h = &mut req.headers;
        h.push("Max-Forwards", "70");
        h.push("From", format!("<sip:{user}@{}>;tag={tag}", gw.ip()));
        h.push("To", format!("<sip:{code}@{}>", gw.ip()));
        h.push("Call-ID", format!("{cid}@{}", addr.ip()));
        h.push("CSeq", format!("{cseq} INVITE"));
        h.push("Contact", format!("<sip:{user}@{addr}>"));
        if let Some(a) = auth {
            h.push("Proxy-Authorization", a);
        }
        req
    };
    let first = build(1, None);
    let (tsx, r) = sim.request_final_tsx(ua, first.clone())?;
    if r.status != 407 {
        return Some((tsx, first, r));
    }
    let ch = first_challenge(&r, "Proxy-Authenticate")?;
    let auth = digest_answer(&ch, user, password, "INVITE", &ruri);
    let second = build(2, Some(auth));
    let (tsx, r) = sim.request_final_tsx(ua, second.clone())?;
    Some((tsx, second, r))
}

/// UA `ua` registers as agent `user` and logs in with `*21`; panics
/// unless both succeed.
pub fn register_and_login(sim: &mut Sim, ua: usize, user: &str, password: &str) {
    assert_eq!(register(sim, ua, user, password), 200, "REGISTER of {user}");
    let r = feature_code(sim, ua, user, password, "*21")
        .unwrap_or_else(|| panic!("no answer to *21 of {user}"));
    assert_eq!(
        (r.0, r.1.as_str()),
        (200, "agent_logged_in"),
        "*21 of {user}"
    );
}

impl Sim {
    /// UA `ua` sends its plan's final answer to the INVITE it received
    /// now, whatever its plan's timing (a race made to order).
    pub fn answer_now(&mut self, ua: usize) {
        let now = self.now;
        self.uas[ua].actions.retain(|a| a.1 != Action::Final);
        self.uas[ua].send_final(now);
        self.flush_uas();
    }
}
