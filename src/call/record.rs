//! The call record and call events: what the work-order backend builds
//! every 工单 from (`docs/records.md`, JSON Schemas in `schemas/`).
//!
//! Each routed citizen call gets a [`RecordBuilder`] when it arrives. As the
//! call goes, the B2BUA appends segments and emits events
//! (`call.arrived`, `call.answered`, `call.ended`); when the call's end is
//! known (the first BYE, or the final failure) the record is **sealed
//! exactly once** as a `call.record` item. Every item carries the call's
//! record id as its ordering stream and an idempotency key
//! `<record id>/<n>` that is stable across retries and restarts.
//!
//! Sans-IO: timestamps come from a wall-clock anchor the driver sets
//! ([`WallClock`]), never from reading a clock here.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::rng::Rng;
use crate::time::Instant;

/// Version tag of the call record body (`schema` field).
pub const RECORD_SCHEMA: &str = "hotline.call_record.v1";
/// Version tag of an event body (`schema` field).
pub const EVENT_SCHEMA: &str = "hotline.call_event.v1";

/// The `schema` of an agent's events (`agent.state_changed`).
pub const AGENT_EVENT_SCHEMA: &str = "hotline.agent_event.v1";

/// Maps the core's monotonic `Instant`s to UTC, from an anchor the driver
/// refreshes (at start and on every tick), so records carry wall-clock
/// times without the core reading a clock.
#[derive(Debug, Clone, Copy)]
pub struct WallClock {
    at: Instant,
    unix: Duration,
}

impl WallClock {
    /// `unix` (time since the Unix epoch) was the wall time at `at`.
    pub fn new(at: Instant, unix: Duration) -> WallClock {
        WallClock { at, unix }
    }

    /// Time since the Unix epoch at `now`.
    pub fn unix(&self, now: Instant) -> Duration {
        if now >= self.at {
            self.unix + (now - self.at)
        } else {
            self.unix.saturating_sub(self.at - now)
        }
    }

    /// Unix milliseconds at `now`.
    pub fn unix_ms(&self, now: Instant) -> u64 {
        u64::try_from(self.unix(now).as_millis()).unwrap_or(u64::MAX)
    }
}

/// RFC 3339 UTC with milliseconds, e.g. `2026-11-23T13:47:37.123Z`.
pub fn rfc3339_ms(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let ms = unix_ms % 1000;
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX);
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (H. Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// A UUIDv7 (RFC 9562 §5.7): 48 bits of Unix milliseconds, then random
/// bits from the core's seeded generator, so ids sort by creation time.
pub fn uuid_v7(unix_ms: u64, rng: &mut Rng) -> String {
    let r1 = rng.next_u64();
    let r2 = rng.next_u64();
    let ms = unix_ms & 0xFFFF_FFFF_FFFF;
    let rand_a = r1 & 0x0FFF;
    let rand_b = r2 & 0x3FFF_FFFF_FFFF_FFFF;
    let hi = (ms << 16) | (0x7 << 12) | rand_a;
    let lo = (0b10 << 62) | rand_b;
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xFFFF,
        hi & 0xFFFF,
        lo >> 48,
        lo & 0xFFFF_FFFF_FFFF
    )
}

/// The kind of the sealed call record, a call's last item.
pub const RECORD_KIND: &str = "call.record";

/// One item for the outbox: the body is final JSON (signed as is).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordItem {
    /// `call.arrived`, `call.queued`, `call.offered`, `call.answered`,
    /// `call.survey_completed`, `call.ended`, `call.record`,
    /// `agent.state_changed`.
    pub kind: &'static str,
    /// Ordering stream: the call's record id.
    pub stream: String,
    /// Idempotency key: `<record id>/<n>`.
    pub key: String,
    /// JSON body.
    pub body: String,
}

/// Who ended the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EndedBy {
    /// The caller (BYE or CANCEL from the carrier side).
    Caller,
    /// The destination (BYE, or a refusal).
    Callee,
    /// The gateway (a timer, the drain).
    Gateway,
}

/// How the call ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct End {
    /// Who.
    pub by: EndedBy,
    /// `caller_hangup`, `callee_hangup`, `cancelled`, `rejected`,
    /// `no_answer`, `destination_timeout`, `no_ack`, `draining`, … (the
    /// full list: `schemas/call.ended.v1.json`, docs/records.md).
    pub cause: &'static str,
    /// The destination's final status when it refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sip_status: Option<u16>,
}

/// One leg of the call as the backend may need to correlate it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Leg {
    /// `caller` (A, toward the carrier) or `callee` (B, toward the target).
    pub role: &'static str,
    /// That leg's SIP Call-ID.
    pub sip_call_id: String,
}

/// A step of the call, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Segment {
    /// `arrival`, `routed`, `ivr`, `survey`, `blocked`, `queued`,
    /// `offered`, `escalated`, `overflowed`, `ringing`, `answered`,
    /// `survey_done`, `ended` (docs/records.md).
    pub kind: &'static str,
    /// When, RFC 3339 UTC.
    pub at: String,
    /// What this step adds (e.g. the target, a status).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The sealed call record (`kind` `call.record`).
#[derive(Debug, Clone, Serialize)]
pub struct CallRecord {
    /// [`RECORD_SCHEMA`].
    pub schema: &'static str,
    /// Stable id (UUIDv7).
    pub id: String,
    /// The gateway node that handled it.
    pub node: String,
    /// The trunk (carrier) it came in on.
    pub trunk: String,
    /// The dialled number (the line).
    pub dialled: String,
    /// The caller's number as the carrier presented it.
    pub caller: String,
    /// The target it was put through to (absent when it never was: a
    /// flow hung up, the caller left in the IVR, a block-listed caller).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The line called, when the number is a `[[lines]]` entry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<LineRef>,
    /// Tags set by the line and its flow (topic, dialect, ...).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// The line's flow, as the caller went through it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ivr: Option<IvrRecord>,
    /// The queue the flow handed the call to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<QueueRecord>,
    /// The satisfaction survey, when it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub survey: Option<SurveyRecord>,
    /// Every offer of the call to an agent, in order, with its outcome.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub offers: Vec<OfferRecord>,
    /// The agent who took the call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// The SIP Call-IDs of each leg.
    pub legs: Vec<Leg>,
    /// Arrival of the INVITE.
    pub started_at: String,
    /// Answer by the destination.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answered_at: Option<String>,
    /// When the end was known (first BYE, CANCEL, final failure).
    pub ended_at: String,
    /// Arrival to answer (or to the end when unanswered), milliseconds.
    pub wait_ms: u64,
    /// Answer to end, milliseconds (0 when unanswered).
    pub talk_ms: u64,
    /// How it ended.
    pub end: End,
    /// The steps, in order.
    pub segments: Vec<Segment>,
}

/// The line a call came in on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LineRef {
    /// The line's number.
    pub number: String,
    /// Its tenant.
    pub tenant: String,
    /// `main`, `dual`, `dual_retained` or `merged`.
    pub mode: &'static str,
}

/// The caller's way through the line's flow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IvrRecord {
    /// The flow's name.
    pub flow: String,
    /// The nodes the caller went through, in order.
    pub nodes: Vec<String>,
    /// Digits a `collect` node took, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digits: Option<String>,
    /// `queued`, `transferred`, `hangup` (a hangup node), `caller_hangup`,
    /// or `ended` (the call ended otherwise while in the flow).
    pub outcome: &'static str,
    /// A hangup node's cause.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
}

/// The queue a call was handed to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueueRecord {
    /// Queue name.
    pub name: String,
    /// Skills asked for (the node's and the line's).
    pub skills: Vec<String>,
    /// Priority, 0..=9.
    pub priority: u8,
    /// When, RFC 3339 UTC.
    pub at: String,
}

/// One offer of a queued call to an agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OfferRecord {
    /// The agent's id.
    pub agent: String,
    /// The queue it was offered from.
    pub queue: String,
    /// When its phone was rung, RFC 3339 UTC.
    pub at: String,
    /// `answered`, `no_answer` (ring timeout), `declined` (486, 600,
    /// 603), `unreachable`, `withdrawn` (agent logged out while ringing),
    /// `caller_left` (the caller hung up while the phone rang), `ringing`
    /// (the call ended otherwise meanwhile: a drain, an RTP timeout).
    pub outcome: &'static str,
}

/// The five-level survey's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SurveyRecord {
    /// 1 very satisfied … 5 very dissatisfied; absent when not rated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<u8>,
    /// `rated`, `timeout`, `invalid`, `caller_hangup`, or `interrupted`
    /// (the call ended otherwise: RTP timeout, drain).
    pub outcome: &'static str,
    /// Level 4 or 5: the backend should call the citizen back.
    pub callback: bool,
    /// The target (agent, desk) the rating is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// The envelope of a call event.
#[derive(Debug, Clone, Serialize)]
struct Event<'a> {
    schema: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    call_id: &'a str,
    seq: u32,
    at: String,
    data: serde_json::Value,
}

/// A call's record while the call lives.
#[derive(Debug, Clone)]
pub struct RecordBuilder {
    id: String,
    node: String,
    trunk: String,
    dialled: String,
    caller: String,
    target: Option<String>,
    line: Option<LineRef>,
    tags: BTreeMap<String, String>,
    ivr: Option<IvrRecord>,
    queue: Option<QueueRecord>,
    survey: Option<SurveyRecord>,
    offers: Vec<OfferRecord>,
    agent: Option<String>,
    legs: Vec<Leg>,
    started: Instant,
    answered: Option<Instant>,
    segments: Vec<Segment>,
    /// Items emitted so far (the next key's number).
    emitted: u32,
    sealed: bool,
}

/// What the builder needs to know at arrival.
#[derive(Debug, Clone)]
pub struct Arrival<'a> {
    /// Node name.
    pub node: &'a str,
    /// Trunk name.
    pub trunk: &'a str,
    /// Dialled number.
    pub dialled: &'a str,
    /// Caller number (revealed: the record is for the backend).
    pub caller: &'a str,
    /// The line called, if the number is one.
    pub line: Option<&'a crate::config::Line>,
    /// The target of a direct route (a line's target is known later).
    pub target: Option<&'a str>,
    /// The A leg's Call-ID.
    pub a_call_id: &'a str,
}

impl RecordBuilder {
    /// Start the record of a call that arrived at `now`; returns it and its
    /// `call.arrived` event.
    pub fn arrive(
        a: &Arrival<'_>,
        now: Instant,
        clock: &WallClock,
        rng: &mut Rng,
    ) -> (RecordBuilder, RecordItem) {
        let at = rfc3339_ms(clock.unix_ms(now));
        let mut b = RecordBuilder {
            id: uuid_v7(clock.unix_ms(now), rng),
            node: a.node.to_owned(),
            trunk: a.trunk.to_owned(),
            dialled: a.dialled.to_owned(),
            caller: a.caller.to_owned(),
            target: None,
            line: a.line.map(|l| LineRef {
                number: l.number.clone(),
                tenant: l.tenant.clone(),
                mode: l.mode.as_str(),
            }),
            tags: BTreeMap::new(),
            ivr: None,
            queue: None,
            survey: None,
            offers: Vec::new(),
            agent: None,
            legs: vec![Leg {
                role: "caller",
                sip_call_id: a.a_call_id.to_owned(),
            }],
            started: now,
            answered: None,
            segments: vec![Segment {
                kind: "arrival",
                at,
                detail: Some(format!("trunk {}", a.trunk)),
            }],
            emitted: 0,
            sealed: false,
        };
        let mut data = serde_json::json!({
            "trunk": a.trunk,
            "dialled": a.dialled,
            "caller": a.caller,
        });
        if let Some(map) = data.as_object_mut() {
            if let Some(line) = &b.line {
                map.insert("line".into(), serde_json::json!(line));
            }
            if let Some(target) = a.target {
                map.insert("target".into(), serde_json::json!(target));
            }
        }
        let ev = b.event("call.arrived", now, clock, data);
        (b, ev)
    }

    /// The record's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Whether the record was sealed.
    pub fn is_sealed(&self) -> bool {
        self.sealed
    }

    /// The call is put through to `target` on a leg with `sip_call_id`.
    pub fn routed(&mut self, target: &str, sip_call_id: &str, now: Instant, clock: &WallClock) {
        self.target = Some(target.to_owned());
        self.legs.retain(|l| l.role != "callee");
        self.legs.push(Leg {
            role: "callee",
            sip_call_id: sip_call_id.to_owned(),
        });
        self.segments.push(Segment {
            kind: "routed",
            at: rfc3339_ms(clock.unix_ms(now)),
            detail: Some(format!("target {target}")),
        });
    }

    /// A flow starts on the caller's leg (`kind`: `ivr`, `survey`,
    /// `blocked`).
    pub fn flow_started(
        &mut self,
        kind: &'static str,
        flow: &str,
        now: Instant,
        clock: &WallClock,
    ) {
        self.segments.push(Segment {
            kind,
            at: rfc3339_ms(clock.unix_ms(now)),
            detail: Some(format!("flow {flow}")),
        });
        if kind == "ivr" {
            self.ivr = Some(IvrRecord {
                flow: flow.to_owned(),
                nodes: Vec::new(),
                digits: None,
                outcome: "ended",
                cause: None,
            });
        }
    }

    /// The line's flow is over (or the call ended in it).
    pub fn ivr_done(
        &mut self,
        nodes: Vec<String>,
        digits: Option<String>,
        outcome: &'static str,
        cause: Option<String>,
    ) {
        if let Some(ivr) = &mut self.ivr {
            ivr.nodes = nodes;
            ivr.digits = digits;
            ivr.outcome = outcome;
            ivr.cause = cause;
        }
    }

    /// Tags for the record (merged over earlier ones).
    pub fn set_tags(&mut self, tags: &BTreeMap<String, String>) {
        for (k, v) in tags {
            self.tags.insert(k.clone(), v.clone());
        }
    }

    /// The flow handed the call to a queue; returns `call.queued`.
    pub fn queued(
        &mut self,
        queue: &str,
        skills: &[String],
        priority: u8,
        now: Instant,
        clock: &WallClock,
    ) -> RecordItem {
        let at = rfc3339_ms(clock.unix_ms(now));
        self.segments.push(Segment {
            kind: "queued",
            at: at.clone(),
            detail: Some(format!("queue {queue}")),
        });
        let q = QueueRecord {
            name: queue.to_owned(),
            skills: skills.to_vec(),
            priority,
            at,
        };
        let data = serde_json::json!({
            "queue": q.name,
            "skills": q.skills,
            "priority": q.priority,
            "tags": self.tags,
        });
        self.queue = Some(q);
        self.event("call.queued", now, clock, data)
    }

    /// The call is offered to `agent` from `queue` on a leg with
    /// `sip_call_id`; returns `call.offered`.
    pub fn offered(
        &mut self,
        agent: &str,
        queue: &str,
        sip_call_id: &str,
        now: Instant,
        clock: &WallClock,
    ) -> RecordItem {
        let at = rfc3339_ms(clock.unix_ms(now));
        self.target = Some(format!("agent:{agent}"));
        self.legs.retain(|l| l.role != "callee");
        self.legs.push(Leg {
            role: "callee",
            sip_call_id: sip_call_id.to_owned(),
        });
        self.segments.push(Segment {
            kind: "offered",
            at: at.clone(),
            detail: Some(format!("agent {agent}")),
        });
        self.offers.push(OfferRecord {
            agent: agent.to_owned(),
            queue: queue.to_owned(),
            at,
            outcome: "ringing",
        });
        let attempt = self.offers.len();
        self.event(
            "call.offered",
            now,
            clock,
            serde_json::json!({ "agent": agent, "queue": queue, "attempt": attempt }),
        )
    }

    /// The last offer ended with `outcome` (see [`OfferRecord::outcome`]).
    pub fn offer_done(&mut self, outcome: &'static str) {
        if let Some(o) = self.offers.last_mut() {
            if o.outcome == "ringing" {
                o.outcome = outcome;
            }
            if outcome == "answered" {
                self.agent = Some(o.agent.clone());
            }
        }
    }

    /// A step of the call's time in its queue (`escalated`, `overflowed`).
    pub fn queue_step(
        &mut self,
        kind: &'static str,
        detail: String,
        now: Instant,
        clock: &WallClock,
    ) {
        self.segments.push(Segment {
            kind,
            at: rfc3339_ms(clock.unix_ms(now)),
            detail: Some(detail),
        });
    }

    /// Whether the survey's result is recorded.
    pub fn has_survey(&self) -> bool {
        self.survey.is_some()
    }

    /// The survey's result; returns `call.survey_completed`.
    pub fn survey(
        &mut self,
        level: Option<u8>,
        outcome: &'static str,
        now: Instant,
        clock: &WallClock,
    ) -> RecordItem {
        let s = SurveyRecord {
            level,
            outcome,
            callback: level.is_some_and(|l| l >= 4),
            target: self.target.clone(),
        };
        self.segments.push(Segment {
            kind: "survey_done",
            at: rfc3339_ms(clock.unix_ms(now)),
            detail: Some(match level {
                Some(l) => format!("level {l}"),
                None => outcome.to_owned(),
            }),
        });
        let data = serde_json::json!(s);
        self.survey = Some(s);
        self.event("call.survey_completed", now, clock, data)
    }

    /// The destination rang (first provisional answer).
    pub fn ringing(&mut self, now: Instant, clock: &WallClock) {
        if !self.segments.iter().any(|s| s.kind == "ringing") {
            self.segments.push(Segment {
                kind: "ringing",
                at: rfc3339_ms(clock.unix_ms(now)),
                detail: None,
            });
        }
    }

    /// The destination answered; returns the `call.answered` event.
    pub fn answered(&mut self, now: Instant, clock: &WallClock) -> RecordItem {
        self.answered = Some(now);
        self.segments.push(Segment {
            kind: "answered",
            at: rfc3339_ms(clock.unix_ms(now)),
            detail: None,
        });
        let wait = ms(now.saturating_duration_since(self.started));
        let mut data = serde_json::json!({ "wait_ms": wait });
        if let (Some(agent), Some(map)) = (&self.agent, data.as_object_mut()) {
            map.insert("agent".into(), serde_json::json!(agent));
        }
        self.event("call.answered", now, clock, data)
    }

    /// The call's end is known: returns its `call.ended` event and the
    /// sealed `call.record`; nothing the second time.
    pub fn seal(&mut self, end: End, now: Instant, clock: &WallClock) -> Vec<RecordItem> {
        if self.sealed {
            return Vec::new();
        }
        self.sealed = true;
        let at = rfc3339_ms(clock.unix_ms(now));
        self.segments.push(Segment {
            kind: "ended",
            at: at.clone(),
            detail: Some(end.cause.to_owned()),
        });
        let (wait, talk) = match self.answered {
            Some(a) => (
                ms(a.saturating_duration_since(self.started)),
                ms(now.saturating_duration_since(a)),
            ),
            None => (ms(now.saturating_duration_since(self.started)), 0),
        };
        let ended = self.event(
            "call.ended",
            now,
            clock,
            serde_json::json!({ "end": end, "wait_ms": wait, "talk_ms": talk }),
        );
        let record = CallRecord {
            schema: RECORD_SCHEMA,
            id: self.id.clone(),
            node: self.node.clone(),
            trunk: self.trunk.clone(),
            dialled: self.dialled.clone(),
            caller: self.caller.clone(),
            target: self.target.clone(),
            line: self.line.clone(),
            tags: self.tags.clone(),
            ivr: self.ivr.clone(),
            queue: self.queue.clone(),
            survey: self.survey.clone(),
            offers: self.offers.clone(),
            agent: self.agent.clone(),
            legs: self.legs.clone(),
            started_at: rfc3339_ms(clock.unix_ms(self.started)),
            answered_at: self.answered.map(|a| rfc3339_ms(clock.unix_ms(a))),
            ended_at: at,
            wait_ms: wait,
            talk_ms: talk,
            end,
            segments: self.segments.clone(),
        };
        let body = serde_json::to_string(&record).unwrap_or_default();
        let item = self.item(RECORD_KIND, body);
        vec![ended, item]
    }

    fn event(
        &mut self,
        kind: &'static str,
        now: Instant,
        clock: &WallClock,
        data: serde_json::Value,
    ) -> RecordItem {
        let ev = Event {
            schema: EVENT_SCHEMA,
            kind,
            call_id: &self.id,
            seq: self.emitted + 1,
            at: rfc3339_ms(clock.unix_ms(now)),
            data,
        };
        let body = serde_json::to_string(&ev).unwrap_or_default();
        self.item(kind, body)
    }

    fn item(&mut self, kind: &'static str, body: String) -> RecordItem {
        self.emitted += 1;
        RecordItem {
            kind,
            stream: self.id.clone(),
            key: format!("{}/{}", self.id, self.emitted),
            body,
        }
    }
}

/// An agent's state change (`agent.state_changed`), on the agent's own
/// ordering stream `agent/<id>`; `seq` counts that agent's events since
/// the node started and `event_id` (a UUIDv7) makes the idempotency key
/// unique across restarts.
#[allow(clippy::too_many_arguments)]
pub fn agent_event(
    event_id: &str,
    node: &str,
    agent: &str,
    from: &str,
    to: &str,
    reason: Option<&str>,
    call: Option<&str>,
    seq: u64,
    at_unix_ms: u64,
) -> RecordItem {
    let mut data = serde_json::json!({ "agent": agent, "node": node, "from": from, "to": to });
    if let Some(map) = data.as_object_mut() {
        if let Some(r) = reason {
            map.insert("reason".into(), serde_json::json!(r));
        }
        if let Some(c) = call {
            map.insert("call".into(), serde_json::json!(c));
        }
    }
    let stream = format!("agent/{agent}");
    let body = serde_json::json!({
        "schema": AGENT_EVENT_SCHEMA,
        "type": "agent.state_changed",
        "id": event_id,
        "agent_id": agent,
        "seq": seq,
        "at": rfc3339_ms(at_unix_ms),
        "data": data,
    });
    RecordItem {
        kind: "agent.state_changed",
        key: format!("{stream}/{event_id}"),
        stream,
        body: body.to_string(),
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        // 2000-02-29 (leap day) 12:34:56.789
        assert_eq!(rfc3339_ms(951_827_696_789), "2000-02-29T12:34:56.789Z");
        // 2026-11-23T13:47:37Z
        assert_eq!(rfc3339_ms(1_795_441_657_000), "2026-11-23T13:47:37.000Z");
        assert_eq!(rfc3339_ms(4_102_444_799_999), "2099-12-31T23:59:59.999Z");
    }

    #[test]
    fn uuid_v7_layout_and_order() {
        let mut rng = Rng::new(7);
        let a = uuid_v7(1_795_441_657_000, &mut rng);
        let b = uuid_v7(1_795_441_657_001, &mut rng);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "7", "{a}");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"), "{a}");
        assert!(a < b, "{a} {b}");
        // The timestamp is the first 48 bits.
        let hex: String = a.chars().filter(|c| *c != '-').take(12).collect();
        assert_eq!(u64::from_str_radix(&hex, 16).ok(), Some(1_795_441_657_000));
    }

    #[test]
    fn wall_clock_maps_instants() {
        let t0 = crate::time::now();
        let c = WallClock::new(t0, Duration::from_secs(1000));
        assert_eq!(
            c.unix(t0 + Duration::from_millis(1500)),
            Duration::from_millis(1_001_500)
        );
    }

    #[test]
    fn a_record_is_sealed_once_with_ordered_keys() {
        let t0 = crate::time::now();
        let clock = WallClock::new(t0, Duration::from_millis(1_795_441_657_000));
        let mut rng = Rng::new(1);
        let arrival = Arrival {
            node: "n1",
            trunk: "carrier",
            dialled: "12345",
            caller: "13800138000",
            line: None,
            target: Some("desk"),
            a_call_id: "a@x",
        };
        let (mut b, arrived) = RecordBuilder::arrive(&arrival, t0, &clock, &mut rng);
        assert_eq!(arrived.kind, "call.arrived");
        assert_eq!(arrived.key, format!("{}/1", b.id()));
        b.routed("desk", "b@y", t0, &clock);
        b.ringing(t0 + Duration::from_millis(100), &clock);
        let answered = b.answered(t0 + Duration::from_secs(3), &clock);
        assert_eq!(answered.key, format!("{}/2", b.id()));
        let end = End {
            by: EndedBy::Caller,
            cause: "caller_hangup",
            sip_status: None,
        };
        let items = b.seal(end.clone(), t0 + Duration::from_secs(63), &clock);
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].kind, "call.ended");
        assert_eq!(items[1].kind, "call.record");
        assert_eq!(items[1].key, format!("{}/4", b.id()));
        assert!(b.seal(end, t0 + Duration::from_secs(64), &clock).is_empty());

        let rec: serde_json::Value = match serde_json::from_str(&items[1].body) {
            Ok(v) => v,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(rec["schema"], RECORD_SCHEMA);
        assert_eq!(rec["wait_ms"], 3000);
        assert_eq!(rec["talk_ms"], 60_000);
        assert_eq!(rec["started_at"], "2026-11-23T13:47:37.000Z");
        assert_eq!(rec["ended_at"], "2026-11-23T13:48:40.000Z");
        assert_eq!(rec["end"]["by"], "caller");
        assert_eq!(rec["legs"][1]["sip_call_id"], "b@y");
        let kinds: Vec<&str> = rec["segments"]
            .as_array()
            .map(|a| a.iter().filter_map(|s| s["kind"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(kinds, ["arrival", "routed", "ringing", "answered", "ended"]);
    }
}
