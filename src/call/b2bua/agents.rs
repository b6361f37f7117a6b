//! The gateway's own agents: their phones' REGISTERs (the registrar),
//! their feature codes (`*21` …), and calls waiting in ACD queues being
//! offered to them.
//!
//! The ACD core ([`crate::acd`]) decides who gets which call; this glue
//! carries its decisions out on the wire: an offer is an INVITE to the
//! agent's registered contact (or a remote seat's target) while the caller
//! hears ringback; a withdrawn offer is a CANCEL while the caller goes
//! back to the music. Every agent state change becomes an
//! `agent.state_changed` event.

use std::sync::Arc;

use super::flow::announce_then_hang_up;
use super::{respond, set_sdp, B2bua, Role, ALLOW};
use crate::acd::{AgentIx, AgentState, Output, QueueIx};
use crate::call::media::is_sdp;
use crate::call::record::{agent_event, uuid_v7};
use crate::call::record::{Arrival, RecordBuilder};
use crate::call::{Call, Side};
use crate::call::{CallState, EndCause, IvrPhase, IvrRun};
use crate::config::TargetTransport;
use crate::ids::{CallId, TsxId};
use crate::ivr::{self, Input, Runner};
use crate::pii::Pii;
use crate::sip::dialog::Dialog;
use crate::sip::msg::Hdr;
use crate::sip::msg::{Request, Response, SipHeaders};
use crate::sip::registrar::Change;
use crate::sip::transaction::{Peer, Transactions};
use crate::sip::transport::Transport;
use crate::time::Instant;

/// Feature codes dialled from an agent's phone (documented in
/// docs/agents.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Feature {
    /// `*21`: log in (ready).
    Login,
    /// `*22`: log out (after the current call).
    Logout,
    /// `*23`: ready (also ends wrap-up early).
    Ready,
    /// `*24` / `*24N`: not ready with the first / N-th configured reason.
    NotReady(usize),
}

impl Feature {
    /// The prompt confirming it was done.
    fn confirmation(&self) -> &'static str {
        match self {
            Feature::Login => "agent_logged_in",
            Feature::Logout => "agent_logged_out",
            Feature::Ready => "agent_ready",
            Feature::NotReady(_) => "agent_not_ready",
        }
    }

    /// The feature a dialled code asks for.
    pub(super) fn parse(code: &str) -> Option<Feature> {
        match code {
            "*21" => Some(Feature::Login),
            "*22" => Some(Feature::Logout),
            "*23" => Some(Feature::Ready),
            "*24" => Some(Feature::NotReady(0)),
            _ => {
                let n = code.strip_prefix("*24")?;
                let n: usize = n.parse().ok().filter(|n| (1..=9).contains(n))?;
                Some(Feature::NotReady(n - 1))
            }
        }
    }
}

/// GB/T 33358: calls should be answered within 15 s.
const ANSWER_TARGET: std::time::Duration = std::time::Duration::from_secs(15);

/// `(tenant, queue, line)` labels of a queued call.
fn labels(config: &crate::config::Config, call: &crate::call::Call) -> (String, String, String) {
    let q = call.queue.and_then(|q| config.queues.get(q.0 as usize));
    (
        q.map_or_else(|| "none".to_owned(), |q| q.tenant.clone()),
        q.map_or_else(|| "none".to_owned(), |q| q.name.clone()),
        call.line
            .as_ref()
            .map_or_else(|| "none".to_owned(), |l| l.number.clone()),
    )
}

/// Hangup cause of the treatment for a full queue.
pub(super) const QUEUE_FULL: &str = "queue_full";
/// Hangup cause of the treatment after the max wait.
pub(super) const QUEUE_TIMEOUT: &str = "queue_timeout";

impl B2bua {
    /// A REGISTER from an agent's phone.
    pub(super) fn on_register(
        &mut self,
        id: TsxId,
        req: &Request,
        tsx: &mut Transactions,
        now: Instant,
    ) {
        let Some(peer) = tsx.peer(id).cloned() else {
            return;
        };
        let (mut resp, change) = self.registrar.register(req, peer.addr, peer.transport, now);
        if resp.to_tag().is_none() {
            resp.set_to_tag(&self.rng.token(10));
        }
        tsx.send_response(id, resp, now);
        if let Some(change) = change {
            self.on_registration(change, now);
        }
    }

    /// A binding came, went or expired: the agent is offered calls only
    /// while its phone is registered.
    pub(super) fn on_registration(&mut self, change: Change, now: Instant) {
        let (user, reachable) = match change {
            Change::Registered { user, refreshed } => {
                if !refreshed {
                    tracing::info!(agent = %user, "agent phone registered");
                }
                (user, true)
            }
            Change::Unregistered { user, expired } => {
                tracing::info!(agent = %user, expired, "agent phone unregistered");
                (user, false)
            }
        };
        let remote = self.config.agent(&user).is_some_and(|a| a.remote.is_some());
        if let (Some(a), false) = (self.acd.agent_ix(&user), remote) {
            self.acd.set_reachable(a, reachable, now);
        }
    }

    /// An INVITE to a feature code (`*2x`) from an agent's phone:
    /// authenticated with the agent's credentials, carried out, and
    /// answered with a final response saying how it went (no call is set
    /// up: the phone shows the reason phrase).
    pub(super) fn on_feature_code(
        &mut self,
        id: TsxId,
        req: &Request,
        code: &str,
        tsx: &mut Transactions,
        now: Instant,
    ) {
        let Some(peer) = tsx.peer(id).cloned() else {
            return;
        };
        let user = match self.registrar.authenticate(req, peer.addr, now) {
            Ok(user) => user,
            Err(mut resp) => {
                if resp.to_tag().is_none() {
                    resp.set_to_tag(&self.rng.token(10));
                }
                tsx.send_response(id, resp, now);
                return;
            }
        };
        let Some(agent) = self.acd.agent_ix(&user) else {
            respond(tsx, id, req, 403, now);
            return;
        };
        let Some(feature) = Feature::parse(code) else {
            let mut r = Response::to(req, 404);
            r.reason = "Unknown Feature Code".to_owned();
            r.set_to_tag(&self.rng.token(10));
            tsx.send_response(id, r, now);
            return;
        };
        let (done, phrase, prompt) = match self.agent_control(agent, &feature, now) {
            Ok(done) => (true, done, feature.confirmation()),
            Err(e) => (false, format!("Not Done: {e}"), "feature_failed"),
        };
        metrics::counter!("hotline_agent_feature_codes_total", "result" => if done { "done" } else { "refused" })
            .increment(1);
        tracing::info!(agent = %user, code, done, "feature code");
        // The phone hears the confirmation (or the failure), then the
        // gateway hangs up. Without media for it (ports exhausted, an
        // unusable offer), a final answer whose reason phrase says it.
        if self.answer_feature(id, req, peer, &user, code, prompt, tsx, now) {
            return;
        }
        let mut r = Response::to(req, if done { 480 } else { 403 });
        r.reason = phrase;
        r.set_to_tag(&self.rng.token(10));
        tsx.send_response(id, r, now);
    }

    /// Answer an agent's feature-code INVITE with `prompt` (an internal
    /// call: no record, not counted): 200 with our SDP; the prompt plays
    /// from the phone's ACK, then BYE. `false` when no media could be had.
    #[allow(clippy::too_many_arguments)]
    fn answer_feature(
        &mut self,
        id: TsxId,
        req: &Request,
        peer: Peer,
        user: &str,
        code: &str,
        prompt: &str,
        tsx: &mut Transactions,
        now: Instant,
    ) -> bool {
        let local_tag = self.rng.token(12);
        let Ok(a) = Dialog::uas(req, &local_tag, peer) else {
            return false;
        };
        let a_sdp = if req.body.is_empty() {
            None
        } else if is_sdp(req.headers.get(Hdr::ContentType)) {
            Some(req.body.as_ref())
        } else {
            return false;
        };
        let cid = CallId(self.ids.next_raw());
        let session_ids = (self.rng.next_u64() >> 1, self.rng.next_u64() >> 1);
        let Ok((media, _)) = self.media.open_call(cid, a_sdp, session_ids) else {
            return false;
        };
        let (record, _arrived) = RecordBuilder::arrive(
            &Arrival {
                node: &self.config.node.name,
                trunk: "",
                dialled: code,
                caller: user,
                line: None,
                target: None,
                a_call_id: &a.call_id,
            },
            now,
            &self.clock,
            &mut self.rng,
        );
        self.by_tsx.insert(id, (cid, Role::AInvite));
        self.by_dialog
            .insert((a.call_id.clone(), a.local_tag.clone()), (cid, Side::A));
        let flow = Arc::new(announce_then_hang_up("feature", prompt, "feature"));
        let contact = self.contact(a.peer.transport).to_string();
        let mut call = Call {
            id: cid,
            started: now,
            answered: None,
            caller: Pii::new(user.to_owned()),
            dialled: code.to_owned(),
            trunk: String::new(),
            target: String::new(),
            line: None,
            a,
            a_ack_pending: Some(id),
            b_invite_req: None,
            b: None,
            b_peer: None,
            b_offer: None,
            ivr: Some(Box::new(IvrRun {
                phase: IvrPhase::Feature,
                runner: Runner::new(flow, now),
                started: false,
            })),
            tags: std::collections::BTreeMap::new(),
            conversation_end: None,
            max_forwards: 70,
            queue: None,
            agent: None,
            comfort: false,
            queued_at: None,
            internal: true,
            state: CallState::Ivr,
            record,
            media,
        };
        let mut r = Response::to(req, 200);
        r.set_to_tag(&call.a.local_tag);
        r.headers.push("Contact", contact);
        r.headers.push("Allow", ALLOW);
        let body = self.media.caller_sdp(&mut call.media);
        set_sdp(&mut r, body);
        tsx.send_response(id, r, now);
        self.calls.insert(cid, call);
        true
    }

    /// Carry out a feature for `agent`; `Ok` says what was done.
    pub(super) fn agent_control(
        &mut self,
        agent: AgentIx,
        f: &Feature,
        now: Instant,
    ) -> Result<String, crate::acd::AcdError> {
        match f {
            Feature::Login => self.acd.login(agent, now).map(|()| "Logged In".to_owned()),
            Feature::Logout => self
                .acd
                .logout(agent, now)
                .map(|()| "Logged Out".to_owned()),
            Feature::Ready => self.acd.ready(agent, now).map(|()| "Ready".to_owned()),
            Feature::NotReady(n) => {
                let reason = self
                    .config
                    .acd
                    .not_ready_reasons
                    .get(*n)
                    .cloned()
                    .unwrap_or_default();
                self.acd
                    .not_ready(agent, &reason, now)
                    .map(|()| format!("Not Ready ({reason})"))
            }
        }
    }

    /// A flow's `queue` node for a queue the gateway's agents answer.
    pub(super) fn enqueue(
        &mut self,
        cid: CallId,
        queue: QueueIx,
        skills: &[String],
        priority: u8,
        tsx: &mut Transactions,
        now: Instant,
    ) {
        match self.acd.enqueue(cid, queue, skills, priority, now) {
            Ok(()) => {
                let Some(call) = self.calls.get_mut(&cid) else {
                    return;
                };
                call.queue = Some(queue);
                call.queued_at.get_or_insert(now);
                call.state = CallState::Queued;
                self.hold_music(cid);
            }
            Err(full) => {
                tracing::debug!(call = %cid, ?full, "queue full: treatment");
                self.treatment(cid, queue, QUEUE_FULL, tsx, now);
            }
        }
    }

    /// Music on hold into the caller's leg.
    fn hold_music(&mut self, cid: CallId) {
        let config = self.config.clone();
        let Some(call) = self.calls.get_mut(&cid) else {
            return;
        };
        call.comfort = false;
        // Back from an offer whose phone sent early media: the caller is
        // joined to no phone while it waits.
        self.media.disconnect(&mut call.media);
        let music = call
            .queue
            .and_then(|q| config.queues.get(q.0 as usize))
            .and_then(|q| config.prompts.get(&q.music))
            .cloned();
        match music {
            Some(m) => self.media.play_looped(&mut call.media, m),
            None => self.media.stop(&mut call.media),
        }
    }

    /// The queue's treatment: its announcement, then hang-up.
    fn treatment(
        &mut self,
        cid: CallId,
        queue: QueueIx,
        cause: &str,
        tsx: &mut Transactions,
        now: Instant,
    ) {
        let config = self.config.clone();
        let prompt = config
            .queues
            .get(queue.0 as usize)
            .map_or("queue_full", |q| q.treatment.as_str());
        let Some(call) = self.calls.get_mut(&cid) else {
            return;
        };
        let flow = Arc::new(announce_then_hang_up("treatment", prompt, cause));
        call.state = CallState::Ivr;
        call.ivr = Some(Box::new(IvrRun {
            phase: IvrPhase::Treatment,
            runner: Runner::new(flow, now),
            started: false,
        }));
        if call.a_ack_pending.is_none() {
            self.ivr_input(cid, Input::Started, tsx, now);
        }
    }

    /// Carry out what the ACD decided, until it has nothing more to say.
    pub(super) fn drain_acd(&mut self, tsx: &mut Transactions, now: Instant) {
        while let Some(out) = self.acd.poll_output() {
            match out {
                Output::Offer { call, agent, queue } => self.offer(call, agent, queue, tsx, now),
                Output::CancelOffer { call, agent } => self.withdraw_offer(call, agent, tsx, now),
                Output::Overflowed { call, from, to } => {
                    let names = |q: QueueIx| {
                        self.config
                            .queues
                            .get(q.0 as usize)
                            .map_or("?", |q| q.name.as_str())
                            .to_owned()
                    };
                    let detail = format!("from {} to {}", names(from), names(to));
                    if let Some(c) = self.calls.get_mut(&call) {
                        c.queue = Some(to);
                        c.record.queue_step("overflowed", detail, now, &self.clock);
                        // The new queue's music (not over its comfort
                        // announcement, nor over an agent's ringback).
                        if matches!(c.state, CallState::Queued) && !c.comfort {
                            self.hold_music(call);
                        }
                    }
                }
                Output::Escalated {
                    call,
                    queue: _,
                    step,
                    early,
                } => {
                    let detail = format!("step {step}{}", if early { " (early)" } else { "" });
                    if let Some(c) = self.calls.get_mut(&call) {
                        c.record.queue_step("escalated", detail, now, &self.clock);
                    }
                }
                Output::Expired { call, queue } => {
                    tracing::debug!(call = %call, "max wait: treatment");
                    self.treatment(call, queue, QUEUE_TIMEOUT, tsx, now);
                }
                Output::Comfort {
                    call,
                    position,
                    estimated_wait,
                } => self.comfort(call, position, estimated_wait),
                Output::AgentChanged {
                    agent,
                    from,
                    to,
                    at,
                } => self.agent_changed(agent, &from, &to, at),
            }
        }
    }

    /// An `agent.state_changed` event and the per-state gauges.
    fn agent_changed(&mut self, agent: AgentIx, from: &AgentState, to: &AgentState, at: Instant) {
        let Some(spec) = self.acd.spec().agents.get(agent.0 as usize) else {
            return;
        };
        let id = spec.id.clone();
        let tenant = spec.tenant.clone();
        let reason = match to {
            AgentState::NotReady(r) => Some(r.as_str()),
            _ => None,
        };
        let call = match to {
            AgentState::Reserved(c) | AgentState::Talking(c) => {
                self.calls.get(c).map(|call| call.record.id().to_owned())
            }
            _ => None,
        };
        let seq = {
            let n = self.agent_seq.entry(agent).or_insert(0);
            *n += 1;
            *n
        };
        let unix_ms = self.clock.unix_ms(at);
        let event_id = uuid_v7(unix_ms, &mut self.rng);
        self.records.push_back(agent_event(
            &event_id,
            &self.config.node.name,
            &id,
            from.label(),
            to.label(),
            reason,
            call.as_deref(),
            seq,
            unix_ms,
        ));
        tracing::debug!(agent = %id, from = from.label(), to = to.label(), "agent state");
        metrics::counter!("hotline_agent_state_changes_total", "tenant" => tenant, "to" => to.label())
            .increment(1);
    }

    /// Comfort announcement: the queue's prompt, then (when the queue says
    /// so) the caller's position and estimated wait; the music follows.
    fn comfort(
        &mut self,
        cid: CallId,
        position: usize,
        estimated_wait: Option<std::time::Duration>,
    ) {
        let config = self.config.clone();
        let Some(call) = self.calls.get_mut(&cid) else {
            return;
        };
        if !matches!(call.state, CallState::Queued) {
            return;
        }
        let Some(q) = call.queue.and_then(|q| config.queues.get(q.0 as usize)) else {
            return;
        };
        let mut names: Vec<&str> = vec![q.comfort_prompt.as_str()];
        if q.announce_position {
            let n = u32::try_from(position.saturating_sub(1)).unwrap_or(u32::MAX);
            if n > 0 {
                names.push("position_prefix");
                names.extend(ivr::spoken_number(n));
                names.push("position_suffix");
            }
            if let Some(w) = estimated_wait {
                let minutes = u32::try_from(w.as_secs().div_ceil(60)).unwrap_or(u32::MAX);
                if minutes > 0 {
                    names.push("wait_prefix");
                    names.extend(ivr::spoken_number(minutes));
                    names.push("wait_minutes");
                }
            }
        }
        let prompt = config
            .prompts
            .sequence(&names)
            .or_else(|| config.prompts.get(&q.comfort_prompt).cloned());
        if let Some(p) = prompt {
            call.comfort = true;
            self.media.play(&mut call.media, p, false);
        }
    }

    /// A prompt ended on the caller's leg of a queued call: after a
    /// comfort announcement, the music again.
    pub(super) fn queued_playback_done(&mut self, cid: CallId) {
        if self
            .calls
            .get(&cid)
            .is_some_and(|c| matches!(c.state, CallState::Queued) && c.comfort)
        {
            self.hold_music(cid);
        }
    }

    /// Where an agent's phone is: its registration, or a remote seat's
    /// target. `(Request-URI, To URI, peer)`.
    fn agent_destination(&self, agent: AgentIx) -> Option<(String, String, Peer)> {
        let id = &self.acd.spec().agents.get(agent.0 as usize)?.id;
        let host = &self.host;
        let cfg = self.config.agent(id)?;
        if let Some(target) = cfg.remote.as_deref().and_then(|t| self.config.target(t)) {
            let number = cfg.remote_number.as_deref().unwrap_or(id);
            let transport = match target.transport {
                TargetTransport::Udp => Transport::Udp,
                TargetTransport::Tcp => Transport::Tcp,
            };
            let tparam = if transport == Transport::Tcp {
                ";transport=tcp"
            } else {
                ""
            };
            let addr = target.address;
            return Some((
                format!("sip:{number}@{addr}{tparam}"),
                format!("<sip:{number}@{addr}>"),
                Peer {
                    transport,
                    addr,
                    conn: None,
                },
            ));
        }
        let b = self.registrar.binding(id)?;
        Some((
            b.contact.clone(),
            format!("<sip:{id}@{host}>"),
            Peer {
                transport: b.transport,
                addr: b.source,
                conn: None,
            },
        ))
    }

    /// Ring `agent` with the queued call `cid`.
    fn offer(
        &mut self,
        cid: CallId,
        agent: AgentIx,
        queue: QueueIx,
        tsx: &mut Transactions,
        now: Instant,
    ) {
        if !self
            .calls
            .get(&cid)
            .is_some_and(|c| matches!(c.state, CallState::Queued))
        {
            // The ACD holds no call we do not (a bug if it happens): give
            // the agent back.
            tracing::warn!(call = %cid, "offer for a call that is not waiting");
            self.acd.abandon(cid, now);
            return;
        }
        let Some((ruri, to, peer)) = self.agent_destination(agent) else {
            tracing::debug!(call = %cid, "agent has no phone now: next one");
            self.acd.unreachable(cid, agent, now);
            return;
        };
        let agent_id = self
            .acd
            .spec()
            .agents
            .get(agent.0 as usize)
            .map(|a| a.id.clone())
            .unwrap_or_default();
        let queue_name = self
            .config
            .queues
            .get(queue.0 as usize)
            .map(|q| q.name.clone())
            .unwrap_or_default();
        let b_invite =
            self.send_b_invite(cid, &format!("agent:{agent_id}"), ruri, to, peer, tsx, now);
        let Some(b_invite) = b_invite else {
            self.acd.unreachable(cid, agent, now);
            return;
        };
        let Some(call) = self.calls.get_mut(&cid) else {
            return;
        };
        let sip_call_id = call
            .b_invite_req
            .as_ref()
            .and_then(|r| r.call_id().map(str::to_owned))
            .unwrap_or_default();
        let item = call
            .record
            .offered(&agent_id, &queue_name, &sip_call_id, now, &self.clock);
        self.records.push_back(item);
        call.agent = Some(agent);
        call.queue = Some(queue);
        call.comfort = false;
        self.media.stop(&mut call.media);
        self.media.ringing(&mut call.media);
        call.state = CallState::Dialling { b_invite };
        tracing::debug!(call = %cid, agent = %agent_id, "offered");
    }

    /// The ACD withdrew the offer (ring-no-answer, the agent logged out):
    /// cancel the agent's INVITE; the caller is back in the queue.
    fn withdraw_offer(
        &mut self,
        cid: CallId,
        agent: AgentIx,
        tsx: &mut Transactions,
        now: Instant,
    ) {
        let logged_out = matches!(self.acd.agent_state(agent), AgentState::LoggedOut);
        let Some(call) = self.calls.get_mut(&cid) else {
            return;
        };
        let CallState::Dialling { b_invite } = call.state else {
            return;
        };
        if call.agent != Some(agent) {
            return;
        }
        tsx.cancel(b_invite, now);
        // A 2xx racing the CANCEL is ACKed and hung up (see StaleOffer).
        self.by_tsx.insert(b_invite, (cid, Role::StaleOffer));
        call.record
            .offer_done(if logged_out { "withdrawn" } else { "no_answer" });
        call.agent = None;
        call.b_invite_req = None;
        call.b_peer = None;
        call.state = CallState::Queued;
        self.hold_music(cid);
    }

    /// The agent's phone refused or failed: the ACD offers the call to the
    /// next agent (486/600/603: declined; anything else: unreachable).
    pub(super) fn offer_failed(&mut self, cid: CallId, status: u16, b_invite: TsxId, now: Instant) {
        let Some(call) = self.calls.get_mut(&cid) else {
            return;
        };
        let Some(agent) = call.agent.take() else {
            return;
        };
        self.by_tsx.remove(&b_invite);
        let declined = matches!(status, 486 | 600 | 603);
        call.record
            .offer_done(if declined { "declined" } else { "unreachable" });
        call.b_invite_req = None;
        call.b_peer = None;
        call.state = CallState::Queued;
        self.hold_music(cid);
        if declined {
            self.acd.declined(cid, agent, now);
        } else {
            self.acd.unreachable(cid, agent, now);
        }
    }

    /// The call leaves the ACD with the caller or the agent gone: the
    /// agent's talk is over (wrap-up follows), or a waiting call is
    /// abandoned (its ringing agent is free again). `cause`: why the call
    /// ends (a ringing offer's outcome is `caller_left` when the caller
    /// hung up, else it stays `ringing`).
    pub(super) fn acd_release(&mut self, cid: CallId, cause: Option<&EndCause>, now: Instant) {
        if !self.acd.holds(cid) {
            return;
        }
        let Some(call) = self.calls.get_mut(&cid) else {
            self.acd.abandon(cid, now);
            return;
        };
        let talking = call.agent.is_some() && call.answered.is_some();
        if talking {
            self.acd.hung_up(cid, now);
        } else {
            let caller_left = matches!(
                cause,
                Some(EndCause::HangUp(crate::call::Side::A) | EndCause::CallerCancelled)
            );
            if call.agent.is_some() && caller_left {
                call.record.offer_done("caller_left");
            }
            let (tenant, queue, line) = labels(&self.config, call);
            metrics::counter!("hotline_queue_abandoned_total", "tenant" => tenant, "queue" => queue, "line" => line)
                .increment(1);
            self.acd.abandon(cid, now);
        }
    }

    /// A 2xx or failure for an agent's INVITE the ACD had already
    /// withdrawn: a 2xx is ACKed and hung up at once.
    pub(super) fn on_stale_offer_response(
        &mut self,
        id: TsxId,
        resp: &Response,
        tsx: &mut Transactions,
        now: Instant,
    ) {
        if !(200..=299).contains(&resp.status) {
            return;
        }
        if let (Some(invite), Some(peer)) = (tsx.request(id).cloned(), tsx.peer(id).cloned()) {
            let contact = self.contact(peer.transport).to_string();
            self.release_fork(id, &invite, resp, peer, &contact, tsx, now);
        }
    }

    /// The ACD no longer stands by the offer the call is ringing (it
    /// refused the agent's answer): the caller waits again if the ACD still
    /// holds the call, else the call cannot be delivered.
    pub(super) fn offer_void(&mut self, cid: CallId, tsx: &mut Transactions, now: Instant) {
        let Some(call) = self.calls.get_mut(&cid) else {
            return;
        };
        call.agent = None;
        call.b_invite_req = None;
        call.b_peer = None;
        call.state = CallState::Queued;
        if self.acd.holds(cid) {
            self.hold_music(cid);
        } else {
            tracing::warn!(call = %cid, "offer refused and the ACD holds no call: ending it");
            self.hang_up(cid, None, EndCause::DeliveryFailed(480), tsx, now);
        }
    }

    /// The agent answered: the ACD confirms the offer is still current
    /// (`false`: withdrawn meanwhile; the leg is released).
    pub(super) fn agent_answered(&mut self, cid: CallId, now: Instant) -> bool {
        let Some(call) = self.calls.get_mut(&cid) else {
            return false;
        };
        let Some(agent) = call.agent else {
            return true;
        };
        if self.acd.answered(cid, agent, now) {
            call.record.offer_done("answered");
            let within = call
                .queued_at
                .is_some_and(|q| now.saturating_duration_since(q) <= ANSWER_TARGET);
            let (tenant, queue, line) = labels(&self.config, call);
            metrics::counter!("hotline_queue_answered_total", "tenant" => tenant, "queue" => queue, "line" => line, "within_15s" => if within { "true" } else { "false" })
                .increment(1);
            true
        } else {
            false
        }
    }

    /// An unanswered agent's INVITE timed out (Timer B): unreachable.
    pub(super) fn offer_timed_out(&mut self, cid: CallId, b_invite: TsxId, now: Instant) {
        self.offer_failed(cid, 408, b_invite, now);
    }
}

impl B2bua {
    /// Publish every ACD queue's live figures and the agents per state on
    /// /metrics (the driver calls this once a second): see docs/metrics.md.
    pub fn export_queue_metrics(&self, now: Instant) {
        for (i, q) in self.config.queues.iter().enumerate() {
            if q.target.is_some() {
                continue;
            }
            let ix = QueueIx(u32::try_from(i).unwrap_or(u32::MAX));
            let s = self.acd.queue_stats(ix, now);
            let labels = [("tenant", q.tenant.clone()), ("queue", q.name.clone())];
            metrics::gauge!("hotline_queue_waiting", &labels).set(s.waiting as f64);
            metrics::gauge!("hotline_queue_oldest_wait_seconds", &labels)
                .set(s.oldest_wait.map_or(0.0, |d| d.as_secs_f64()));
            if let Some(r) = s.answered_within_15s_ratio {
                metrics::gauge!("hotline_answered_within_15s_ratio", &labels).set(r);
            }
            if let Some(r) = s.answer_ratio_24h {
                metrics::gauge!("hotline_queue_answer_ratio_24h", &labels).set(r);
            }
            metrics::gauge!("hotline_queue_offered_24h", &labels).set(s.offered_24h as f64);
            metrics::gauge!("hotline_queue_answered_24h", &labels).set(s.answered_24h as f64);
            metrics::gauge!("hotline_queue_abandoned_24h", &labels).set(s.abandoned_24h as f64);
            metrics::gauge!("hotline_queue_expired_24h", &labels).set(s.expired_24h as f64);
            metrics::gauge!("hotline_queue_refused_24h", &labels).set(s.refused_24h as f64);
            if let Some(asa) = s.average_speed_of_answer_24h {
                metrics::gauge!("hotline_queue_average_speed_of_answer_seconds", &labels)
                    .set(asa.as_secs_f64());
            }
            metrics::gauge!("hotline_queue_agents", "tenant" => q.tenant.clone(), "queue" => q.name.clone(), "state" => "ready")
                .set(s.agents_ready as f64);
            metrics::gauge!("hotline_queue_agents", "tenant" => q.tenant.clone(), "queue" => q.name.clone(), "state" => "busy")
                .set(s.agents_busy as f64);
        }
        for t in &self.config.tenants {
            for (state, n) in self.acd.agents_by_state(Some(&t.name)) {
                metrics::gauge!("hotline_agents", "tenant" => t.name.clone(), "state" => state)
                    .set(n as f64);
            }
        }
    }
}

/// What the operators' API (and a desktop, later) can ask of an agent:
/// the same as the phone's feature codes, and more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentCommand {
    /// Log in (ready).
    Login,
    /// Log out (after the current call and its wrap-up).
    Logout,
    /// Ready (also ends wrap-up early).
    Ready,
    /// Not ready with this configured reason (`acd.not_ready_reasons`).
    NotReady(String),
    /// End wrap-up now.
    EndWrapUp,
}

impl B2bua {
    /// Carry out `cmd` for the agent `id`; the ACD's decisions that follow
    /// (an offer to the agent now ready, a withdrawn offer) go out at once.
    ///
    /// # Errors
    /// The agent is unknown, logged out (for ready / not ready), the reason
    /// is not configured, or it is not in wrap-up.
    pub fn agent_command(
        &mut self,
        id: &str,
        cmd: &AgentCommand,
        tsx: &mut Transactions,
        now: Instant,
    ) -> Result<(), crate::acd::AcdError> {
        let agent = self
            .acd
            .agent_ix(id)
            .ok_or(crate::acd::AcdError::UnknownAgent)?;
        let done = match cmd {
            AgentCommand::Login => self.acd.login(agent, now),
            AgentCommand::Logout => self.acd.logout(agent, now),
            AgentCommand::Ready => self.acd.ready(agent, now),
            AgentCommand::NotReady(reason) => self.acd.not_ready(agent, reason, now),
            AgentCommand::EndWrapUp => self.acd.end_wrap_up(agent, now),
        };
        self.drain_acd(tsx, now);
        done
    }

    /// The agent's state now, by id (`None`: no such agent).
    #[must_use]
    pub fn agent_state(&self, id: &str) -> Option<&AgentState> {
        self.acd.agent_ix(id).map(|a| self.acd.agent_state(a))
    }
}

/// An agent as the operators' API shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AgentView {
    /// Id (the phone's username).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Tenant.
    pub tenant: String,
    /// `logged_out`, `ready`, `not_ready`, `reserved`, `talking`, `wrap_up`.
    pub state: &'static str,
    /// The not-ready reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The call record id of the call it is offered or talks on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call: Option<String>,
    /// Its phone is registered (or it is a remote seat).
    pub registered: bool,
    /// A remote seat (reached through a target).
    pub remote: bool,
    /// Skills with levels.
    pub skills: std::collections::BTreeMap<String, u8>,
    /// Groups.
    pub groups: Vec<String>,
}

/// A queue's live figures as the operators' API shows them.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct QueueView {
    /// Name.
    pub name: String,
    /// Tenant.
    pub tenant: String,
    /// The external target of a queue agents do not answer.
    pub target: Option<String>,
    /// Calls waiting now.
    pub waiting: usize,
    /// Wait so far of the longest-waiting call.
    pub oldest_wait_secs: f64,
    /// The rolling 15-second answer ratio (see docs/metrics.md).
    pub answered_within_15s_ratio: Option<f64>,
    /// Calls that ended in the queue over 24 h.
    pub offered_24h: u64,
    /// Of them answered by an agent.
    pub answered_24h: u64,
    /// Abandoned by the caller.
    pub abandoned_24h: u64,
    /// Past the max wait.
    pub expired_24h: u64,
    /// Refused because the queue was full.
    pub refused_24h: u64,
    /// Answered / offered over 24 h.
    pub answer_ratio_24h: Option<f64>,
    /// Mean wait of the answered calls over 24 h.
    pub average_speed_of_answer_secs: Option<f64>,
    /// Eligible agents ready (and registered).
    pub agents_ready: usize,
    /// Eligible agents reserved, talking or in wrap-up.
    pub agents_busy: usize,
}

impl B2bua {
    /// Every configured agent, in file order.
    #[must_use]
    pub fn agents_view(&self) -> Vec<AgentView> {
        self.config
            .agents
            .iter()
            .filter_map(|a| {
                let ix = self.acd.agent_ix(&a.id)?;
                let state = self.acd.agent_state(ix);
                let reason = match state {
                    AgentState::NotReady(r) => Some(r.clone()),
                    _ => None,
                };
                let call = match state {
                    AgentState::Reserved(c) | AgentState::Talking(c) => {
                        self.calls.get(c).map(|call| call.record.id().to_owned())
                    }
                    _ => None,
                };
                Some(AgentView {
                    id: a.id.clone(),
                    name: a.name.clone(),
                    tenant: a.tenant.clone(),
                    state: state.label(),
                    reason,
                    call,
                    registered: self.acd.agent_reachable(ix),
                    remote: a.remote.is_some(),
                    skills: a.skills.iter().cloned().collect(),
                    groups: a.groups.clone(),
                })
            })
            .collect()
    }

    /// Every configured queue's live figures, in file order.
    #[must_use]
    pub fn queues_view(&self, now: Instant) -> Vec<QueueView> {
        self.config
            .queues
            .iter()
            .enumerate()
            .map(|(i, q)| {
                let s = if q.target.is_some() {
                    crate::acd::QueueStats::default()
                } else {
                    self.acd
                        .queue_stats(QueueIx(u32::try_from(i).unwrap_or(u32::MAX)), now)
                };
                QueueView {
                    name: q.name.clone(),
                    tenant: q.tenant.clone(),
                    target: q.target.clone(),
                    waiting: s.waiting,
                    oldest_wait_secs: s.oldest_wait.map_or(0.0, |d| d.as_secs_f64()),
                    answered_within_15s_ratio: s.answered_within_15s_ratio,
                    offered_24h: s.offered_24h,
                    answered_24h: s.answered_24h,
                    abandoned_24h: s.abandoned_24h,
                    expired_24h: s.expired_24h,
                    refused_24h: s.refused_24h,
                    answer_ratio_24h: s.answer_ratio_24h,
                    average_speed_of_answer_secs: s
                        .average_speed_of_answer_24h
                        .map(|d| d.as_secs_f64()),
                    agents_ready: s.agents_ready,
                    agents_busy: s.agents_busy,
                }
            })
            .collect()
    }
}
