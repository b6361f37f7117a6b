//! The SIP transaction layer (RFC 3261 §17, as updated by RFC 6026), sans-IO.
//!
//! [`Transactions`] owns every client and server transaction of the
//! gateway. It takes parsed, validated messages and `now`, and hands back
//! datagrams to send ([`poll_transmit`](Transactions::poll_transmit)),
//! facts for the transaction user ([`poll_event`](Transactions::poll_event))
//! and its next deadline with the RFC timer that owns it
//! ([`poll_timeout`](Transactions::poll_timeout)). It reads no clock and
//! opens no socket: after any `handle_*`, `send_*` or `cancel` call, drain
//! `poll_transmit` and `poll_event`, then re-read `poll_timeout`.
//!
//! Four state machines, one per file, each holding its data in its states:
//!
//! | file | machine | states |
//! |---|---|---|
//! | `client_invite.rs` | INVITE client, §17.1.1 + RFC 6026 | Calling, Proceeding, Completed, Accepted |
//! | `client.rs` | non-INVITE client, §17.1.2 | Trying, Proceeding, Completed |
//! | `server_invite.rs` | INVITE server, §17.2.1 + RFC 6026 | Proceeding, Completed, Confirmed, Accepted |
//! | `server.rs` | non-INVITE server, §17.2.2; response routing §18.2.2 | Trying, Proceeding, Completed |
//!
//! Terminated is not stored: a terminated transaction is removed, its timers
//! cancelled, and [`TsxEvent::Terminated`] reported; its id is never reused.
//!
//! What the layer does on its own, beyond the RFC state machines:
//! * answers every new INVITE with `100 Trying` at once (§17.2.1);
//! * answers CANCEL itself, 200 or 481 (§9.2), through an internal server
//!   transaction that produces no events;
//! * retransmits a 2xx to INVITE until its ACK (§13.3.1.4) while the server
//!   transaction is Accepted, on Timer G's schedule, and re-sends the TU's
//!   ACK for every retransmitted 2xx while the client transaction is Accepted;
//! * builds CANCEL (§9.1) as an internal client transaction (no events),
//!   deferred until the first provisional response; and, because a
//!   cancelled INVITE might never see a final response, re-arms Timer B
//!   when the CANCEL goes out (§9.1: after 64·T1 consider it cancelled),
//!   which then reports [`TsxEvent::Timeout`].
//!
//! Not handled here: `maddr` in Via (no multicast), TLS/SCTP, transport
//! errors from the driver (no input for them yet).

mod client;
mod client_invite;
mod key;
mod server;
mod server_invite;
mod timer;

pub use timer::{Timer, TimerConfig};

use crate::ids::{ConnId, IdGen, TsxId};
use crate::rng::Rng;
use crate::sip::msg::{Hdr, Method, Request, Response, SipHeaders, MAGIC_COOKIE};
use crate::sip::transport::{Transmit, Transport};
use crate::time::{Instant, TimerQueue};
use bytes::Bytes;
use client::Client;
use client_invite::{CancelRequest, ClientInvite};
use key::{AckKey, ClientKey, IdMap, LegacyParts, ServerKey, TopVia};
use server::Server;
use server_invite::{AckMatch, CancelMatch, ServerInvite};
use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;

/// Where a message comes from or goes to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Peer {
    /// The transport.
    pub transport: Transport,
    /// The remote address (for a received message, the packet source).
    pub addr: SocketAddr,
    /// The stream connection, if any.
    pub conn: Option<ConnId>,
}

/// What we write in our own Via (RFC 3261 §18.1.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalVia {
    /// The advertised IP address (IPv6 without brackets).
    pub host: String,
    /// The advertised port.
    pub port: u16,
}

/// What the transaction layer tells its user (the dialog / call layers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TsxEvent {
    /// A new server transaction (any method except ACK and CANCEL). For
    /// INVITE, `100 Trying` has already been sent (RFC 3261 §17.2.1).
    Request {
        /// The new server transaction.
        tsx: TsxId,
        /// The request as received.
        request: Request,
    },
    /// An ACK outside any transaction: the ACK of a 2xx, matched to the
    /// Accepted server INVITE transaction that sent the 2xx (`Some`, and its
    /// 2xx retransmissions have stopped) or matching nothing (`None`).
    Ack {
        /// The Accepted INVITE transaction the ACK acknowledges.
        invite: Option<TsxId>,
        /// The ACK.
        request: Request,
    },
    /// A CANCEL matched a server INVITE transaction in Proceeding; the layer
    /// has answered the CANCEL with 200 (RFC 3261 §9.2). The TU must answer
    /// `invite` with 487.
    Cancelled {
        /// The cancelled INVITE.
        invite: TsxId,
    },
    /// A response on a client transaction: every 1xx, each final once
    /// (each differently-tagged 2xx to a forked INVITE once).
    Response {
        /// The client transaction.
        tsx: TsxId,
        /// The response.
        response: Response,
    },
    /// Timer B or F fired (or Timer B after a CANCEL, RFC 3261 §9.1): act
    /// as if 408 had arrived.
    Timeout {
        /// The client transaction.
        tsx: TsxId,
    },
    /// Server INVITE: Timer H fired (no ACK for a non-2xx final), or Timer L
    /// fired with no ACK for the 2xx (the dialog layer should send BYE).
    AckTimeout {
        /// The server INVITE transaction.
        tsx: TsxId,
    },
    /// The transaction is gone; its id will not be used again.
    Terminated {
        /// The transaction.
        tsx: TsxId,
    },
}

/// Outputs, timers and configuration shared by the four state machines.
#[derive(Debug)]
pub(crate) struct Ctx {
    cfg: TimerConfig,
    transmits: VecDeque<Transmit>,
    events: VecDeque<TsxEvent>,
    timers: TimerQueue<(TsxId, Timer)>,
    retransmissions: u64,
}

impl Ctx {
    fn send(&mut self, to: &Peer, data: Bytes) {
        self.transmits.push_back(Transmit {
            transport: to.transport,
            destination: to.addr,
            conn: to.conn,
            data,
        });
    }

    /// Send again something already sent once.
    fn resend(&mut self, to: &Peer, data: Bytes) {
        self.retransmissions += 1;
        self.send(to, data);
    }

    fn arm(&mut self, tsx: TsxId, timer: Timer, at: Instant) {
        self.timers.set((tsx, timer), at);
    }

    fn disarm(&mut self, tsx: TsxId, timer: Timer) {
        self.timers.cancel((tsx, timer));
    }

    fn event(&mut self, e: TsxEvent) {
        self.events.push_back(e);
    }
}

/// What a state machine asks of the layer after an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub(crate) enum Next {
    /// Nothing more.
    Stay,
    /// The transaction reached Terminated: remove it.
    Terminate,
    /// The first provisional arrived with a CANCEL deferred: send it.
    SendCancel,
}

#[derive(Debug)]
enum Tsx {
    ClientInvite(ClientInvite),
    Client(Client),
    ServerInvite(ServerInvite),
    Server(Server),
}

impl Tsx {
    fn request(&self) -> &Request {
        match self {
            Tsx::ClientInvite(t) => &t.request,
            Tsx::Client(t) => &t.request,
            Tsx::ServerInvite(t) => &t.request,
            Tsx::Server(t) => &t.request,
        }
    }
}

/// Every transaction of the gateway; see the module docs.
#[derive(Debug)]
pub struct Transactions {
    ctx: Ctx,
    local: LocalVia,
    rng: Rng,
    ids: IdGen,
    tsxs: IdMap<TsxId, Tsx>,
    /// Server transactions by §17.2.3 key.
    servers: HashMap<ServerKey, TsxId>,
    /// Client transactions by §17.1.3 key.
    clients: HashMap<ClientKey, TsxId>,
    /// Accepted server INVITE transactions by the dialog of their 2xx.
    accepted: HashMap<AckKey, TsxId>,
    stray_responses: u64,
    malformed: u64,
}

impl Transactions {
    /// A layer with no transactions. `seed` drives branch and tag
    /// generation (the driver seeds it from the OS, tests from a constant).
    pub fn new(timers: TimerConfig, local: LocalVia, seed: u64) -> Self {
        Transactions {
            ctx: Ctx {
                cfg: timers,
                transmits: VecDeque::new(),
                events: VecDeque::new(),
                timers: TimerQueue::default(),
                retransmissions: 0,
            },
            local,
            rng: Rng::new(seed),
            ids: IdGen::default(),
            tsxs: IdMap::default(),
            servers: HashMap::new(),
            clients: HashMap::new(),
            accepted: HashMap::new(),
            stray_responses: 0,
            malformed: 0,
        }
    }

    fn next_id(&mut self) -> TsxId {
        TsxId(self.ids.next_raw())
    }

    // ----- server side -----

    /// A received, validated request (its top Via already stamped with
    /// `received`/`rport`, RFC 3261 §18.2.1). Creates a server transaction,
    /// or is absorbed as a retransmission, or is an ACK or CANCEL
    /// (RFC 3261 §17.2.3 matching, RFC 2543 fallback without `z9hG4bK`).
    pub fn handle_request(&mut self, req: Request, from: Peer, now: Instant) {
        // RFC 3261 §8.1.1.7: the CSeq method is the request's.
        let cseq = match req.cseq() {
            Some((n, m)) if m == req.method => n,
            _ => {
                self.malformed += 1;
                tracing::debug!(method = %req.method, "request without usable CSeq dropped");
                return;
            }
        };
        let handled = match req.method {
            Method::Ack => self.on_ack(req, cseq, now),
            Method::Cancel => self.on_cancel(req, cseq, from, now),
            _ => self.on_request(req, cseq, from, now),
        };
        if handled.is_none() {
            self.malformed += 1;
            tracing::debug!("request without usable top Via (or Call-ID) dropped");
        }
    }

    /// `None`: the request cannot be matched (no usable top Via; no
    /// Call-ID for RFC 2543 matching).
    fn on_request(&mut self, req: Request, cseq: u32, from: Peer, now: Instant) -> Option<()> {
        let (key, reply) = {
            let via = TopVia::of(&req.headers)?;
            let to_tag = key::header_tag(&req.headers, Hdr::To);
            let key = server_key(&req, cseq, &via, &req.method, to_tag)?;
            (key, server::reply_peer(&via, &from))
        };
        let (key, id) = match self.servers.entry(key) {
            Entry::Occupied(e) => {
                // A retransmission (§17.2.1, §17.2.2).
                match self.tsxs.get_mut(e.get()) {
                    Some(Tsx::ServerInvite(t)) => t.on_retransmission(&mut self.ctx),
                    Some(Tsx::Server(t)) => t.on_retransmission(&mut self.ctx),
                    _ => {}
                }
                return Some(());
            }
            Entry::Vacant(e) => {
                let id = TsxId(self.ids.next_raw());
                let key = e.key().clone();
                e.insert(id);
                (key, id)
            }
        };
        let tsx = if req.method == Method::Invite {
            Tsx::ServerInvite(ServerInvite::start(id, req, reply, key, &mut self.ctx, now))
        } else {
            Tsx::Server(Server::start(id, req, reply, key, false, &mut self.ctx))
        };
        self.tsxs.insert(id, tsx);
        Some(())
    }

    /// ACK: for a non-2xx it belongs to the INVITE server transaction
    /// (§17.2.1); for a 2xx it is its own transaction, matched to the
    /// Accepted INVITE by dialog and CSeq (RFC 6026) and passed up.
    fn on_ack(&mut self, ack: Request, cseq: u32, now: Instant) -> Option<()> {
        let via = TopVia::of(&ack.headers)?;
        let to_tag = key::header_tag(&ack.headers, Hdr::To);
        let ack_key = match (key::call_id(&ack.headers), to_tag) {
            (Some(c), Some(t)) => {
                let from_tag = key::header_tag(&ack.headers, Hdr::From).unwrap_or("");
                Some(AckKey::new(c, cseq, from_tag, t))
            }
            _ => None,
        };
        let (candidates, legacy) = match via.rfc3261_branch() {
            Some(b) => (
                [Some(ServerKey::rfc3261(b, &via, &Method::Ack)), None],
                false,
            ),
            None => {
                let parts = legacy_parts(&ack, cseq, &via);
                // A re-INVITE carried the To tag already; an initial INVITE
                // did not, and then its final response's tag is checked.
                let k = |t| {
                    parts
                        .as_ref()
                        .map(|p| ServerKey::rfc2543(p, t, &Method::Ack))
                };
                let initial = if to_tag.is_some() { k(None) } else { None };
                ([k(to_tag), initial], true)
            }
        };
        for k in candidates.iter().flatten() {
            let Some(&id) = self.servers.get(k) else {
                continue;
            };
            let Some(Tsx::ServerInvite(t)) = self.tsxs.get_mut(&id) else {
                continue;
            };
            match t.on_ack(to_tag, legacy, &mut self.ctx, now) {
                AckMatch::NoMatch => continue,
                AckMatch::Absorbed(next) => {
                    if next == Next::Terminate {
                        self.terminate(id);
                    }
                    return Some(());
                }
                AckMatch::Accepted => {
                    self.ctx.event(TsxEvent::Ack {
                        invite: Some(id),
                        request: ack,
                    });
                    return Some(());
                }
            }
        }
        let invite = ack_key.and_then(|k| self.accepted.get(&k).copied());
        if let Some(id) = invite {
            if let Some(Tsx::ServerInvite(t)) = self.tsxs.get_mut(&id) {
                t.on_2xx_ack(&mut self.ctx);
            }
        }
        self.ctx.event(TsxEvent::Ack {
            invite,
            request: ack,
        });
        Some(())
    }

    /// CANCEL (RFC 3261 §9.2): its own non-INVITE server transaction,
    /// answered here; matched to the INVITE by the §17.2.3 rules but for
    /// the method.
    fn on_cancel(&mut self, cancel: Request, cseq: u32, from: Peer, now: Instant) -> Option<()> {
        let (own, invite_key, reply) = {
            let via = TopVia::of(&cancel.headers)?;
            let to_tag = key::header_tag(&cancel.headers, Hdr::To);
            let own = server_key(&cancel, cseq, &via, &Method::Cancel, to_tag)?;
            let invite = server_key(&cancel, cseq, &via, &Method::Invite, to_tag)?;
            (own, invite, server::reply_peer(&via, &from))
        };
        if let Some(&id) = self.servers.get(&own) {
            if let Some(Tsx::Server(t)) = self.tsxs.get_mut(&id) {
                t.on_retransmission(&mut self.ctx);
            }
            return Some(());
        }
        let target = self.servers.get(&invite_key).copied();
        let matched = match target.and_then(|id| self.tsxs.get_mut(&id)) {
            Some(Tsx::ServerInvite(t)) => Some(t.on_cancel()),
            _ => None,
        };
        let (status, tag) = match &matched {
            Some(CancelMatch::Cancel { to_tag }) | Some(CancelMatch::NoEffect { to_tag }) => {
                (200, to_tag.clone())
            }
            None => (481, None),
        };
        let mut resp = Response::to(&cancel, status);
        let tag = tag.unwrap_or_else(|| self.rng.token(10));
        resp.set_to_tag(&tag);
        let id = self.next_id();
        self.servers.insert(own.clone(), id);
        let mut t = Server::start(id, cancel, reply, own, true, &mut self.ctx);
        let next = t.respond(resp, &mut self.ctx, now);
        self.tsxs.insert(id, Tsx::Server(t));
        if next == Some(Next::Terminate) {
            self.terminate(id);
        }
        if let (Some(CancelMatch::Cancel { .. }), Some(invite)) = (matched, target) {
            self.ctx.event(TsxEvent::Cancelled { invite });
        }
        Some(())
    }

    /// Respond on a server transaction. `false` (and nothing sent) if the
    /// transaction is unknown, terminated, a client transaction, or can no
    /// longer send this response (a final was already sent; a 2xx may be
    /// repeated in Accepted).
    pub fn send_response(&mut self, tsx: TsxId, resp: Response, now: Instant) -> bool {
        if !(100..=699).contains(&resp.status) {
            return false;
        }
        let outcome = match self.tsxs.get_mut(&tsx) {
            Some(Tsx::ServerInvite(t)) => t.respond(resp, &mut self.ctx, now),
            Some(Tsx::Server(t)) => t.respond(resp, &mut self.ctx, now).map(|n| (n, None)),
            _ => None,
        };
        match outcome {
            None => false,
            Some((next, accepted)) => {
                if let Some(k) = accepted {
                    self.accepted.insert(k, tsx);
                }
                if next == Next::Terminate {
                    self.terminate(tsx);
                }
                true
            }
        }
    }

    // ----- client side -----

    /// Start a client transaction: insert our Via with a fresh branch
    /// (RFC 3261 §8.1.1.7, RFC 3581 `rport`), send, and run Timers A/B
    /// (INVITE) or E/F. An ACK is not a transaction: it is sent once and its
    /// id terminates at once (use [`send_ack`](Self::send_ack) for the ACK
    /// of a 2xx).
    pub fn send_request(&mut self, mut req: Request, to: Peer, now: Instant) -> TsxId {
        let id = self.next_id();
        let branch = self.new_branch();
        req.headers
            .push_front("Via", self.via_value(to.transport, &branch));
        if req.method == Method::Ack {
            self.ctx.send(&to, req.to_bytes());
            self.ctx.event(TsxEvent::Terminated { tsx: id });
            return id;
        }
        self.start_client(id, req, branch, to, false, now);
        id
    }

    fn new_branch(&mut self) -> String {
        let mut b = String::with_capacity(MAGIC_COOKIE.len() + 16);
        b.push_str(MAGIC_COOKIE);
        b.push_str(&self.rng.token(16));
        b
    }

    fn via_value(&self, transport: Transport, branch: &str) -> String {
        let host = &self.local.host;
        let (open, close) = if host.contains(':') {
            ("[", "]")
        } else {
            ("", "")
        };
        format!(
            "SIP/2.0/{} {open}{host}{close}:{};branch={branch};rport",
            transport.via_token(),
            self.local.port
        )
    }

    fn start_client(
        &mut self,
        id: TsxId,
        req: Request,
        branch: String,
        to: Peer,
        internal: bool,
        now: Instant,
    ) {
        let key = ClientKey::new(&branch, &req.method);
        self.clients.insert(key.clone(), id);
        let tsx = if req.method == Method::Invite {
            Tsx::ClientInvite(ClientInvite::start(
                id,
                req,
                branch,
                key,
                to,
                &mut self.ctx,
                now,
            ))
        } else {
            Tsx::Client(Client::start(
                id,
                req,
                key,
                to,
                internal,
                &mut self.ctx,
                now,
            ))
        };
        self.tsxs.insert(id, tsx);
    }

    /// A received response, matched by top Via branch and CSeq method
    /// (RFC 3261 §17.1.3). Responses whose top Via is not ours (§18.1.2) or
    /// that match no transaction are dropped and counted (RFC 6026).
    pub fn handle_response(&mut self, resp: Response, _from: Peer, now: Instant) {
        let key = {
            let via = TopVia::of(&resp.headers);
            match (via, resp.cseq()) {
                (Some(via), Some((_, method)))
                    if via.port == Some(self.local.port)
                        && via.host.eq_ignore_ascii_case(&self.local.host)
                        && (100..=699).contains(&resp.status) =>
                {
                    via.branch.map(|b| ClientKey::new(b, &method))
                }
                _ => None,
            }
        };
        let Some(&id) = key.as_ref().and_then(|k| self.clients.get(k)) else {
            self.stray_responses += 1;
            tracing::debug!(status = resp.status, "stray response dropped");
            return;
        };
        let next = match self.tsxs.get_mut(&id) {
            Some(Tsx::ClientInvite(t)) => t.on_response(resp, &mut self.ctx, now),
            Some(Tsx::Client(t)) => t.on_response(resp, &mut self.ctx, now),
            _ => Next::Stay,
        };
        self.after(id, next, now);
    }

    fn after(&mut self, id: TsxId, next: Next, now: Instant) {
        match next {
            Next::Stay => {}
            Next::Terminate => self.terminate(id),
            Next::SendCancel => self.send_cancel(id, now),
        }
    }

    /// CANCEL a client INVITE transaction (RFC 3261 §9.1). Sent now if a
    /// provisional response has arrived, else deferred until one does (and
    /// dropped if a final arrives first). `false` if the INVITE is unknown
    /// or already has a final response; `true` again on a repeated call,
    /// without a second CANCEL.
    pub fn cancel(&mut self, invite: TsxId, now: Instant) -> bool {
        let Some(Tsx::ClientInvite(t)) = self.tsxs.get_mut(&invite) else {
            return false;
        };
        match t.request_cancel() {
            CancelRequest::Refused => false,
            CancelRequest::Deferred | CancelRequest::AlreadyRequested => true,
            CancelRequest::SendNow => {
                self.send_cancel(invite, now);
                true
            }
        }
    }

    fn send_cancel(&mut self, invite: TsxId, now: Instant) {
        let Some(Tsx::ClientInvite(t)) = self.tsxs.get_mut(&invite) else {
            return;
        };
        let cancel = t.build_cancel();
        let (branch, peer) = (t.branch.clone(), t.peer.clone());
        // §9.1: no final within 64·T1 of the CANCEL: the INVITE is over.
        self.ctx.arm(invite, Timer::B, now + self.ctx.cfg.t1x64());
        let id = self.next_id();
        self.start_client(id, cancel, branch, peer, true, now);
    }

    /// The ACK for a 2xx on a client INVITE transaction (RFC 3261
    /// §13.2.2.4), built by the dialog layer: sent now to the INVITE's peer
    /// and re-sent for every retransmission of that 2xx (same To tag) while
    /// the transaction is Accepted (Timer M). If `ack` has no Via, ours is
    /// inserted with a fresh branch. Unknown transaction: nothing is sent.
    pub fn send_ack(&mut self, invite: TsxId, ack: Request, now: Instant) {
        let Some(Tsx::ClientInvite(t)) = self.tsxs.get(&invite) else {
            return;
        };
        let to = t.peer.clone();
        self.send_ack_to(invite, ack, to, now);
    }

    /// [`send_ack`](Self::send_ack) to an explicit peer (the dialog's remote
    /// target when it is not where the INVITE went). Sent even if the
    /// transaction is gone, then without retransmission handling.
    pub fn send_ack_to(&mut self, invite: TsxId, mut ack: Request, to: Peer, _now: Instant) {
        if ack.headers.get(Hdr::Via).is_none() {
            let branch = self.new_branch();
            ack.headers
                .push_front("Via", self.via_value(to.transport, &branch));
        }
        let data = ack.to_bytes();
        if let Some(Tsx::ClientInvite(t)) = self.tsxs.get_mut(&invite) {
            let to_tag = key::header_tag(&ack.headers, Hdr::To).unwrap_or("");
            t.store_ack(to_tag, data.clone(), to.clone());
        }
        self.ctx.send(&to, data);
    }

    // ----- time and outputs -----

    /// Fire every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some((id, timer)) = self.ctx.timers.pop_due(now) {
            let next = match self.tsxs.get_mut(&id) {
                None => continue,
                Some(Tsx::ClientInvite(t)) => t.on_timer(timer, &mut self.ctx, now),
                Some(Tsx::Client(t)) => t.on_timer(timer, &mut self.ctx, now),
                Some(Tsx::ServerInvite(t)) => t.on_timer(timer, &mut self.ctx, now),
                Some(Tsx::Server(t)) => t.on_timer(timer, &mut self.ctx),
            };
            self.after(id, next, now);
        }
    }

    /// The next message to send.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.ctx.transmits.pop_front()
    }

    /// The next event for the transaction user.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<TsxEvent> {
        self.ctx.events.pop_front()
    }

    /// The earliest deadline, with the transaction and timer that own it.
    pub fn poll_timeout(&mut self) -> Option<(Instant, TsxId, Timer)> {
        self.ctx.timers.earliest().map(|(at, (id, t))| (at, id, t))
    }

    /// Live transactions (including the layer's own CANCEL transactions).
    pub fn len(&self) -> usize {
        self.tsxs.len()
    }

    /// Whether no transaction is live.
    pub fn is_empty(&self) -> bool {
        self.tsxs.is_empty()
    }

    /// The request of a live transaction: as received (server) or as sent
    /// with our Via (client).
    pub fn request(&self, tsx: TsxId) -> Option<&Request> {
        self.tsxs.get(&tsx).map(Tsx::request)
    }

    /// The peer of a live transaction: for a client transaction where its
    /// request goes; for a server transaction where its responses go
    /// (RFC 3261 §18.2.2: its address is the packet source's IP, as
    /// stamped in `received`, and the rport / sent-by port).
    pub fn peer(&self, tsx: TsxId) -> Option<&Peer> {
        self.tsxs.get(&tsx).map(|t| match t {
            Tsx::ClientInvite(t) => &t.peer,
            Tsx::Client(t) => &t.peer,
            Tsx::ServerInvite(t) => &t.reply,
            Tsx::Server(t) => &t.reply,
        })
    }

    /// Queue a message outside any transaction (a stateless reply to a
    /// request refused before the layer saw it), in order with the rest.
    pub fn send_stateless(&mut self, t: Transmit) {
        self.ctx.transmits.push_back(t);
    }

    /// Responses dropped because they matched no client transaction.
    pub fn stray_responses(&self) -> u64 {
        self.stray_responses
    }

    /// Messages sent again: request and response retransmissions, and
    /// re-sent ACKs.
    pub fn retransmissions(&self) -> u64 {
        self.ctx.retransmissions
    }

    /// Requests dropped because the layer cannot match them (no parsable
    /// top Via, CSeq missing or not matching the method, no Call-ID for
    /// RFC 2543 matching).
    pub fn malformed_requests(&self) -> u64 {
        self.malformed
    }

    fn terminate(&mut self, id: TsxId) {
        let Some(tsx) = self.tsxs.remove(&id) else {
            return;
        };
        let internal = match &tsx {
            Tsx::ClientInvite(t) => {
                remove_if(&mut self.clients, &t.key, id);
                false
            }
            Tsx::Client(t) => {
                remove_if(&mut self.clients, &t.key, id);
                t.internal
            }
            Tsx::ServerInvite(t) => {
                remove_if(&mut self.servers, &t.key, id);
                if let Some(k) = t.ack_key() {
                    remove_if(&mut self.accepted, k, id);
                }
                false
            }
            Tsx::Server(t) => {
                remove_if(&mut self.servers, &t.key, id);
                t.internal
            }
        };
        let timers: &[Timer] = match tsx {
            Tsx::ClientInvite(_) => &[Timer::A, Timer::B, Timer::D, Timer::M],
            Tsx::Client(_) => &[Timer::E, Timer::F, Timer::K],
            Tsx::ServerInvite(_) => &[Timer::G, Timer::H, Timer::I, Timer::L],
            Tsx::Server(_) => &[Timer::J],
        };
        for &t in timers {
            self.ctx.disarm(id, t);
        }
        if !internal {
            self.ctx.event(TsxEvent::Terminated { tsx: id });
        }
    }
}

fn remove_if<K: std::hash::Hash + Eq>(index: &mut HashMap<K, TsxId>, key: &K, id: TsxId) {
    if index.get(key) == Some(&id) {
        index.remove(key);
    }
}

/// The §17.2.3 key of a request under `method` (ACK keys as INVITE).
fn server_key(
    req: &Request,
    cseq: u32,
    via: &TopVia<'_>,
    method: &Method,
    to_tag: Option<&str>,
) -> Option<ServerKey> {
    match via.rfc3261_branch() {
        Some(b) => Some(ServerKey::rfc3261(b, via, method)),
        None => Some(ServerKey::rfc2543(
            &legacy_parts(req, cseq, via)?,
            to_tag,
            method,
        )),
    }
}

fn legacy_parts<'a>(req: &'a Request, cseq: u32, via: &TopVia<'a>) -> Option<LegacyParts<'a>> {
    Some(LegacyParts {
        uri: &req.uri,
        from_tag: key::header_tag(&req.headers, Hdr::From).unwrap_or(""),
        call_id: key::call_id(&req.headers)?,
        cseq,
        via: via.text,
    })
}

#[cfg(test)]
pub(crate) mod testkit;
