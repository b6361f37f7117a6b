//! Calls to a line: the gateway answers the caller and runs a flow on its
//! leg (the line's IVR, its closed-hours flow, a block-list announcement),
//! puts the call through where the flow says (a queue's target, a
//! transfer target), and runs the satisfaction survey when the agent hangs
//! up first.
//!
//! States (see [`CallState`]): `Ivr` (flow running, no B leg) →
//! `Dialling` (B leg INVITE out, the caller hears ringback) → `Confirmed`
//! (talking) → on the agent's BYE, `Ivr` again with the survey when the
//! line runs it.

use std::sync::Arc;

use bytes::Bytes;

use super::{a_response, b_cseq, respond, set_sdp, B2bua, Role, ALLOW};
use crate::call::{CallState, EndCause, IvrPhase, IvrRun, Side};
use crate::ids::{CallId, TsxId};
use crate::ivr::{self, Action, Flow, Input, LocalTime, Runner};
use crate::sip::dialog::Dialog;
use crate::sip::msg::{Hdr, Method, Request, Response};
use crate::sip::transaction::Transactions;
use crate::time::Instant;

use super::super::media::is_sdp;

/// Hangup cause of a block-list announcement's flow.
const BLOCKED: &str = "blocked";

/// A flow of one announcement then hang-up with `cause` (block list,
/// queue treatments, feature-code confirmations).
pub(super) fn announce_then_hang_up(name: &str, prompt: &str, cause: &str) -> Flow {
    Flow::new(
        name,
        "announce",
        vec![
            ivr::Node {
                name: "announce".to_owned(),
                kind: ivr::NodeKind::Play {
                    prompt: prompt.to_owned(),
                    barge_in: false,
                    next: "bye".to_owned(),
                },
            },
            ivr::Node {
                name: "bye".to_owned(),
                kind: ivr::NodeKind::Hangup {
                    cause: Some(cause.to_owned()),
                },
            },
        ],
    )
}

/// `hotline_survey_results_total{result}` for levels 1–5.
const LEVEL_LABELS: [&str; 5] = ["1", "2", "3", "4", "5"];

/// The level the survey flow's caller pressed, if any.
fn survey_level(runner: &Runner) -> Option<u8> {
    runner
        .tags()
        .get(ivr::SURVEY_TAG)
        .and_then(|v| v.parse::<u8>().ok())
        .filter(|l| (1..=5).contains(l))
}

impl B2bua {
    /// The caller's local time for its line's tenant.
    fn local_time(&self, tenant: &str, now: Instant) -> LocalTime {
        let offset = self
            .config
            .tenant(tenant)
            .map_or(480, |t| t.utc_offset_minutes);
        LocalTime::from_unix(self.clock.unix(now).as_secs(), offset)
    }

    /// A call to a line: choose its flow (block list, opening hours, the
    /// line's), answer the caller with our SDP; the flow starts with the
    /// caller's ACK.
    pub(super) fn answer_for_flow(
        &mut self,
        cid: CallId,
        a_invite: TsxId,
        tsx: &mut Transactions,
        now: Instant,
    ) {
        let config = self.config.clone();
        let Some(call) = self.calls.get(&cid) else {
            return;
        };
        let Some(line) = call.line.clone() else {
            return;
        };
        let (phase, flow, kind) = if config.blocklist.contains(call.caller.reveal()) {
            metrics::counter!("hotline_blocked_calls_total", "tenant" => line.tenant.clone(), "line" => line.number.clone())
                .increment(1);
            tracing::info!(call = %cid, line = %line.number, "block-listed caller: announcement and hang-up");
            (
                IvrPhase::Blocked,
                Arc::new(announce_then_hang_up(
                    "blocked",
                    &config.blocklist.prompt,
                    BLOCKED,
                )),
                "blocked",
            )
        } else {
            let open = config.tenant(&line.tenant).is_none_or(|t| {
                let local = self.local_time(&t.name, now);
                t.hours.is_open(local)
            });
            match (&line.closed_flow, open) {
                (Some(closed), false) => (IvrPhase::Line, closed.clone(), "ivr"),
                _ => (IvrPhase::Line, line.flow.clone(), "ivr"),
            }
        };
        let contact = self.contact(call.a.peer.transport).to_string();
        let Some(call) = self.calls.get_mut(&cid) else {
            return;
        };
        call.record.flow_started(kind, &flow.name, now, &self.clock);
        let mut r = a_response(tsx, a_invite, 200);
        r.set_to_tag(&call.a.local_tag);
        r.headers.push("Contact", contact);
        r.headers.push("Allow", ALLOW);
        let body = self.media.caller_sdp(&mut call.media);
        set_sdp(&mut r, body);
        tsx.send_response(a_invite, r, now);
        call.a_ack_pending = Some(a_invite);
        call.state = CallState::Ivr;
        call.ivr = Some(Box::new(IvrRun {
            phase,
            runner: Runner::new(flow, now),
            started: false,
        }));
        tracing::debug!(call = %cid, line = %line.number, "answered for its flow");
    }

    /// Feed the flow on a call one input, then carry out what it says.
    pub(super) fn ivr_input(
        &mut self,
        cid: CallId,
        input: Input,
        tsx: &mut Transactions,
        now: Instant,
    ) {
        let tenant = match self.calls.get(&cid).and_then(|c| c.line.as_ref()) {
            Some(l) => l.tenant.clone(),
            None => String::new(),
        };
        let local = self.local_time(&tenant, now);
        let mut actions = Vec::new();
        {
            let Some(call) = self.calls.get_mut(&cid) else {
                return;
            };
            if !matches!(call.state, CallState::Ivr) {
                return;
            }
            let Some(run) = call.ivr.as_mut() else {
                return;
            };
            if input == Input::Started {
                if run.started {
                    return;
                }
                run.started = true;
            }
            // PlaybackDone goes to the runner as is: it ignores a barge-in
            // stop (reported after the digit, which it already took and may
            // have started the next prompt on) and any end when no prompt
            // plays.
            run.runner.handle_input(input, now, local);
            while let Some(a) = run.runner.poll_action() {
                actions.push(a);
            }
            match run.runner.poll_timeout() {
                Some(at) => self.ivr_timers.set(cid, at),
                None => self.ivr_timers.cancel(cid),
            }
        }
        for action in actions {
            if !self.calls.contains_key(&cid) {
                break;
            }
            self.ivr_action(cid, action, tsx, now);
        }
    }

    fn ivr_action(&mut self, cid: CallId, action: Action, tsx: &mut Transactions, now: Instant) {
        let config = self.config.clone();
        let Some(call) = self.calls.get_mut(&cid) else {
            return;
        };
        match action {
            Action::Play { prompt, barge_in } => {
                let Some(p) = config.prompts.get(&prompt).cloned() else {
                    // Validated at load; go on as if it had played.
                    tracing::warn!(call = %cid, %prompt, "unknown prompt skipped");
                    self.ivr_input(cid, Input::PlaybackDone { interrupted: false }, tsx, now);
                    return;
                };
                self.media.play(&mut call.media, p, barge_in);
            }
            Action::StopPlay => {
                self.media.stop(&mut call.media);
            }
            Action::Queue {
                queue,
                mut skills,
                priority,
                tags,
            } => {
                let (line_skills, line_priority) = call
                    .line
                    .as_ref()
                    .map_or((Vec::new(), 0), |l| (l.skills.clone(), l.priority));
                for s in line_skills {
                    if !skills.contains(&s) {
                        skills.push(s);
                    }
                }
                let priority = priority.saturating_add(line_priority).min(9);
                call.tags.extend(tags);
                let tags = call.tags.clone();
                call.record.set_tags(&tags);
                self.flow_over(cid, "queued", None);
                let Some(call) = self.calls.get_mut(&cid) else {
                    return;
                };
                let item = call
                    .record
                    .queued(&queue, &skills, priority, now, &self.clock);
                self.records.push_back(item);
                tracing::debug!(call = %cid, %queue, priority, "queued");
                let found = config
                    .queues
                    .iter()
                    .enumerate()
                    .find(|(_, q)| q.name == queue)
                    .map(|(i, q)| (i, q.target.clone()));
                match found {
                    Some((_, Some(target))) => self.put_through(cid, &target, tsx, now),
                    Some((i, None)) => {
                        let qix = crate::acd::QueueIx(u32::try_from(i).unwrap_or(u32::MAX));
                        self.enqueue(cid, qix, &skills, priority, tsx, now);
                    }
                    None => {
                        tracing::warn!(call = %cid, %queue, "unknown queue");
                        self.hang_up(cid, None, EndCause::DeliveryFailed(404), tsx, now);
                    }
                }
            }
            Action::Transfer { target, tags } => {
                call.tags.extend(tags);
                let tags = call.tags.clone();
                call.record.set_tags(&tags);
                self.flow_over(cid, "transferred", None);
                self.put_through(cid, &target, tsx, now);
            }
            Action::Hangup { cause } => {
                let phase = call.ivr.as_ref().map(|r| r.phase);
                match phase {
                    Some(IvrPhase::Survey) => {
                        self.survey_over(cid, cause.as_deref(), now);
                        let end = self
                            .calls
                            .get(&cid)
                            .and_then(|c| c.conversation_end.clone())
                            .unwrap_or(EndCause::HangUp(Side::B));
                        self.hang_up(cid, None, end, tsx, now);
                    }
                    Some(IvrPhase::Blocked) => {
                        self.hang_up(cid, None, EndCause::Blocked, tsx, now);
                    }
                    Some(IvrPhase::Feature) => {
                        self.hang_up(cid, None, EndCause::FlowHangup, tsx, now);
                    }
                    Some(IvrPhase::Treatment) => {
                        let end = if cause.as_deref() == Some(super::agents::QUEUE_TIMEOUT) {
                            EndCause::QueueTimeout
                        } else {
                            EndCause::QueueFull
                        };
                        self.hang_up(cid, None, end, tsx, now);
                    }
                    _ => {
                        let tags = call.tags.clone();
                        call.record.set_tags(&tags);
                        self.flow_over(cid, "hangup", cause);
                        self.hang_up(cid, None, EndCause::FlowHangup, tsx, now);
                    }
                }
            }
        }
    }

    /// Record how the line's flow ended (once), with its path and digits.
    pub(super) fn flow_over(&mut self, cid: CallId, outcome: &'static str, cause: Option<String>) {
        let Some(call) = self.calls.get_mut(&cid) else {
            return;
        };
        let Some(run) = call.ivr.as_ref() else {
            return;
        };
        if run.phase != IvrPhase::Line {
            return;
        }
        let digits = run.runner.digits().map(str::to_owned);
        let tags = run.runner.tags().clone();
        let path: Vec<String> = run.runner.visited().map(str::to_owned).collect();
        call.tags.extend(tags);
        let all = call.tags.clone();
        call.record.set_tags(&all);
        call.record.ivr_done(path, digits, outcome, cause);
        call.ivr = None;
        self.ivr_timers.cancel(cid);
    }

    /// Record the survey's result (once): the level pressed, else
    /// `no_level` (`timeout`, `invalid`, `caller_hangup`, `interrupted`).
    fn record_survey(&mut self, cid: CallId, no_level: &'static str, now: Instant) {
        let Some(call) = self.calls.get_mut(&cid) else {
            return;
        };
        let Some(run) = call.ivr.as_ref() else {
            return;
        };
        if run.phase != IvrPhase::Survey || call.record.has_survey() {
            return;
        }
        let level = survey_level(&run.runner);
        let outcome = if level.is_some() { "rated" } else { no_level };
        let item = call.record.survey(level, outcome, now, &self.clock);
        self.records.push_back(item);
        let label = level.map_or(outcome, |l| LEVEL_LABELS[usize::from(l - 1)]);
        let (tenant, line) = call
            .line
            .as_ref()
            .map_or(("none".to_owned(), "none".to_owned()), |l| {
                (l.tenant.clone(), l.number.clone())
            });
        metrics::counter!("hotline_survey_results_total", "tenant" => tenant, "line" => line, "result" => label)
            .increment(1);
    }

    /// The survey flow hung up with `cause`: record its result.
    pub(super) fn survey_over(&mut self, cid: CallId, cause: Option<&str>, now: Instant) {
        let no_level = if cause == Some(ivr::SURVEY_INVALID) {
            "invalid"
        } else {
            "timeout"
        };
        self.record_survey(cid, no_level, now);
    }

    /// The call ends while a flow runs on it: record what the flow knew.
    pub(super) fn flow_interrupted(&mut self, cid: CallId, cause: &EndCause, now: Instant) {
        let phase = self
            .calls
            .get(&cid)
            .and_then(|c| c.ivr.as_ref())
            .map(|r| r.phase);
        let caller_left = *cause == EndCause::HangUp(Side::A);
        match phase {
            Some(IvrPhase::Line) => {
                let outcome = if caller_left {
                    "caller_hangup"
                } else {
                    "ended"
                };
                self.flow_over(cid, outcome, None);
            }
            Some(IvrPhase::Survey) => {
                let no_level = if caller_left {
                    "caller_hangup"
                } else {
                    "interrupted"
                };
                self.record_survey(cid, no_level, now);
            }
            Some(IvrPhase::Blocked | IvrPhase::Treatment | IvrPhase::Feature) | None => {}
        }
    }

    /// Send the answered caller on to `target`: ringback while it rings.
    fn put_through(&mut self, cid: CallId, target: &str, tsx: &mut Transactions, now: Instant) {
        let Some(b_invite) = self.dial(cid, target, tsx, now) else {
            tracing::warn!(call = %cid, target, "unknown target");
            self.hang_up(cid, None, EndCause::DeliveryFailed(404), tsx, now);
            return;
        };
        let Some(call) = self.calls.get_mut(&cid) else {
            return;
        };
        call.ivr = None;
        self.ivr_timers.cancel(cid);
        self.media.stop(&mut call.media);
        self.media.ringing(&mut call.media);
        call.state = CallState::Dialling { b_invite };
        self.ring.set(cid, now + self.config.sip.ring_timeout);
    }

    /// A response to the B leg INVITE of a call whose caller we answered.
    pub(super) fn on_dialling_response(
        &mut self,
        cid: CallId,
        resp: Response,
        contact_b: &str,
        tsx: &mut Transactions,
        now: Instant,
    ) {
        let Some(call) = self.calls.get_mut(&cid) else {
            return;
        };
        let CallState::Dialling { b_invite } = call.state else {
            return;
        };
        let sdp = !resp.body.is_empty() && is_sdp(resp.headers.get(Hdr::ContentType));
        match resp.status {
            100 => {}
            101..=199 => {
                call.record.ringing(now, &self.clock);
                if sdp {
                    // Early media from the target (an announcement, its own
                    // ringback): relayed; the caller's SDP stays ours.
                    let _ = self.media.callee_sdp(&mut call.media, &resp.body, cid);
                }
            }
            200..=299 => {
                if !self.agent_answered(cid, now) {
                    // The ACD withdrew this offer meanwhile: release the
                    // agent's leg; the caller stays where the ACD put it.
                    if let (Some(invite), Some(peer)) =
                        (tsx.request(b_invite).cloned(), tsx.peer(b_invite).cloned())
                    {
                        let contact = self.contact(peer.transport).to_string();
                        self.release_fork(b_invite, &invite, &resp, peer, &contact, tsx, now);
                    }
                    self.by_tsx.insert(b_invite, (cid, Role::StaleOffer));
                    self.offer_void(cid, tsx, now);
                    return;
                }
                let Some(call) = self.calls.get_mut(&cid) else {
                    return;
                };
                let dialog = match (&call.b_invite_req, &call.b_peer) {
                    (Some(invite), Some(peer)) => Dialog::uac(invite, &resp, peer.clone()).ok(),
                    _ => None,
                };
                let Some(mut bd) = dialog else {
                    tracing::debug!(call = %cid, "unusable 2xx from the target");
                    self.hang_up(cid, None, EndCause::DeliveryFailed(502), tsx, now);
                    return;
                };
                let cseq = b_cseq(call);
                let ack = bd.request(Method::Ack, contact_b, Some(cseq));
                tsx.send_ack(b_invite, ack, now);
                self.by_dialog
                    .insert((bd.call_id.clone(), bd.local_tag.clone()), (cid, Side::B));
                call.b = Some(bd);
                if sdp {
                    let _ = self.media.callee_sdp(&mut call.media, &resp.body, cid);
                } else {
                    self.media.callee_answered_without_sdp(&mut call.media);
                }
                call.answered = Some(now);
                let answered = call.record.answered(now, &self.clock);
                self.records.push_back(answered);
                call.state = CallState::Confirmed { relays: Vec::new() };
                self.ring.cancel(cid);
                self.stats.calls_answered += 1;
                metrics::counter!("hotline_calls_answered_total").increment(1);
                tracing::debug!(call = %cid, "put through");
            }
            status if call.agent.is_some() => {
                tracing::debug!(call = %cid, status, "agent's phone refused");
                self.offer_failed(cid, status, b_invite, now);
            }
            status => {
                tracing::debug!(call = %cid, status, "target refused");
                self.hang_up(cid, None, EndCause::DeliveryFailed(status), tsx, now);
            }
        }
    }

    /// The agent (B) hung up: run the survey on the caller's leg when the
    /// line runs it. Returns whether it did (else the call ends as usual).
    pub(super) fn start_survey(
        &mut self,
        cid: CallId,
        tsx: &mut Transactions,
        now: Instant,
    ) -> bool {
        let config = self.config.clone();
        let Some(call) = self.calls.get_mut(&cid) else {
            return false;
        };
        let runs = call.line.as_ref().is_some_and(|l| l.survey)
            && matches!(call.state, CallState::Confirmed { .. })
            && call.conversation_end.is_none()
            && !self.draining;
        if !runs {
            return false;
        }
        // The agent's talk is over: wrap-up starts while the caller rates.
        self.acd_release(cid, None, now);
        let Some(call) = self.calls.get_mut(&cid) else {
            return false;
        };
        if let CallState::Confirmed { relays } = &call.state {
            for r in relays.clone() {
                if let Some(sreq) = tsx.request(r.server).cloned() {
                    respond(tsx, r.server, &sreq, 487, now);
                }
            }
        }
        if let Some(b) = call.b.take() {
            self.by_dialog
                .remove(&(b.call_id.clone(), b.local_tag.clone()));
        }
        self.media.disconnect(&mut call.media);
        call.conversation_end = Some(EndCause::HangUp(Side::B));
        let s = &config.survey;
        let flow = Arc::new(ivr::survey_flow(&s.prompt, &s.thanks, s.timeout, s.retries));
        call.record
            .flow_started("survey", &flow.name, now, &self.clock);
        call.state = CallState::Ivr;
        call.ivr = Some(Box::new(IvrRun {
            phase: IvrPhase::Survey,
            runner: Runner::new(flow, now),
            started: false,
        }));
        let started = call.a_ack_pending.is_none();
        tracing::debug!(call = %cid, "agent hung up: survey");
        if started {
            self.ivr_input(cid, Input::Started, tsx, now);
        }
        true
    }

    /// A re-INVITE or UPDATE from the caller while no B leg takes it (a
    /// flow runs, or the call is being put through): answered here.
    pub(super) fn answer_reoffer_locally(
        &mut self,
        cid: CallId,
        id: TsxId,
        req: &Request,
        tsx: &mut Transactions,
        now: Instant,
    ) {
        let contact = match self.calls.get(&cid) {
            Some(c) => self.contact(c.a.peer.transport).to_string(),
            None => return,
        };
        let Some(call) = self.calls.get_mut(&cid) else {
            return;
        };
        if req.method == Method::Invite && call.a_ack_pending.is_some() {
            respond(tsx, id, req, 491, now);
            return;
        }
        let mut r = Response::to(req, 200);
        if req.method == Method::Invite {
            r.headers.push("Contact", contact);
            r.headers.push("Allow", ALLOW);
        }
        if !req.body.is_empty() && is_sdp(req.headers.get(Hdr::ContentType)) {
            match self.media.answer_locally(&mut call.media, &req.body) {
                Ok(body) => {
                    r.headers.set("Content-Type", "application/sdp");
                    r.body = Bytes::from(body);
                }
                Err(refusal) => {
                    let mut r = Response::to(req, refusal.status);
                    if let Some(w) = &refusal.warning {
                        r.headers.push("Warning", w.clone());
                    }
                    tsx.send_response(id, r, now);
                    return;
                }
            }
        } else if req.method == Method::Invite {
            // A bodiless re-INVITE: our current SDP as the offer; the
            // caller's answer in its ACK is taken like a late offer's.
            set_sdp(&mut r, self.media.caller_sdp(&mut call.media));
        }
        tsx.send_response(id, r, now);
        if req.method == Method::Invite {
            call.a_ack_pending = Some(id);
            self.by_tsx.insert(id, (cid, Role::AInvite));
        }
    }
}
