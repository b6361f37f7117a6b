//! The ACD's additions to the records and events (docs/records.md, "v1
//! additions"), built with the real record code and checked against the
//! JSON Schemas in `schemas/`: `call.offered`, `agent` in `call.answered`,
//! `offers` / `agent` / `agent:<id>` targets / `queue_full` and
//! `queue_timeout` / the queue's segment kinds in `call.record`, and the
//! per-agent `agent.state_changed` on its own stream. Each schema must
//! also reject a wrong value, or these checks prove nothing.
mod common;
use common::{check_item_schema, check_schema};
use hotline::call::record::{
    agent_event, Arrival, End, EndedBy, RecordBuilder, RecordItem, WallClock, EVENT_SCHEMA,
    RECORD_SCHEMA,
};
use hotline::rng::Rng;
use hotline::time::{Duration, Instant};
use serde_json::{json, Value};

/// 2026-11-23T13:47:37.000Z
const T0_UNIX_MS: u64 = 1_795_441_657_000;

const STATES: [&str; 6] = [
    "logged_out",
    "ready",
    "not_ready",
    "reserved",
    "talking",
    "wrap_up",
];

const OUTCOMES: [&str; 7] = [
    "answered",
    "no_answer",
    "declined",
    "unreachable",
    "withdrawn",
    "caller_left",
    "ringing",
];

fn schema(kind: &str) -> Value {
    let path = format!("{}/schemas/{kind}.v1.json", env!("CARGO_MANIFEST_DIR"));
    match std::fs::read_to_string(&path).map(|t| serde_json::from_str(&t)) {
        Ok(Ok(s)) => s,
        other => panic!("schema {path}: {other:?}"),
    }
}

fn body(item: &RecordItem) -> Value {
    match serde_json::from_str(&item.body) {
        Ok(v) => v,
        Err(e) => panic!("{e}: {}", item.body),
    }
}

/// Check `v` against the schema of `kind`, expecting a rejection.
fn assert_rejected(kind: &str, v: &Value, why: &str) {
    if check_schema(&schema(kind), v, kind).is_ok() {
        panic!("{kind} accepted {why}: {v}");
    }
}

/// The body at `ptr` (a JSON pointer) in `v`, for mutating a copy.
fn at<'a>(v: &'a mut Value, ptr: &str) -> &'a mut Value {
    match v.pointer_mut(ptr) {
        Some(x) => x,
        None => panic!("no {ptr}"),
    }
}

struct Call {
    b: RecordBuilder,
    items: Vec<RecordItem>,
    t0: Instant,
    clock: WallClock,
}

impl Call {
    /// A call to a line's number, handed to queue `health` 2 s in.
    fn queued(seed: u64) -> Call {
        let t0 = hotline::time::now();
        let clock = WallClock::new(t0, Duration::from_millis(T0_UNIX_MS));
        let mut rng = Rng::new(seed);
        let arrival = Arrival {
            node: "demo",
            trunk: "carrier-a",
            dialled: "12345",
            caller: "13800138000",
            line: None,
            target: None,
            a_call_id: "a84b4c76e66710@198.51.100.10",
        };
        let (mut b, arrived) = RecordBuilder::arrive(&arrival, t0, &clock, &mut rng);
        let queued = b.queued(
            "health",
            &["health".to_owned()],
            2,
            t0 + Duration::from_secs(2),
            &clock,
        );
        Call {
            b,
            items: vec![arrived, queued],
            t0,
            clock,
        }
    }

    fn after(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }

    fn offer(&mut self, agent: &str, queue: &str, ms: u64) {
        let now = self.after(ms);
        let item = self.b.offered(
            agent,
            queue,
            &format!("b-{agent}-{ms}@gw"),
            now,
            &self.clock,
        );
        self.items.push(item);
        self.b.ringing(now + Duration::from_millis(50), &self.clock);
    }

    fn answer(&mut self, ms: u64) {
        self.b.offer_done("answered");
        let item = self.b.answered(self.after(ms), &self.clock);
        self.items.push(item);
    }

    fn seal(&mut self, by: EndedBy, cause: &'static str, ms: u64) {
        let end = End {
            by,
            cause,
            sip_status: None,
        };
        let items = self.b.seal(end, self.after(ms), &self.clock);
        assert_eq!(items.len(), 2, "sealed once");
        self.items.extend(items);
    }

    fn item(&self, kind: &str) -> Value {
        match self.items.iter().find(|i| i.kind == kind) {
            Some(i) => body(i),
            None => panic!("no {kind} among {:?}", self.kinds()),
        }
    }

    fn kinds(&self) -> Vec<&'static str> {
        self.items.iter().map(|i| i.kind).collect()
    }

    /// Every item matches its schema; one stream with ordered keys.
    fn check(&self) {
        for (n, item) in self.items.iter().enumerate() {
            check_item_schema(item);
            assert_eq!(item.stream, self.b.id());
            assert_eq!(item.key, format!("{}/{}", self.b.id(), n + 1));
        }
    }
}

fn record_strs(rec: &Value, array: &str, field: &str) -> Vec<String> {
    rec[array]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x[field].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Ring-no-answer on the first agent, an escalation, the second agent
/// answers: two `call.offered`, `agent` in `call.answered` and the record.
#[test]
fn an_acd_call_answered_by_its_second_agent_matches_the_schemas() {
    let mut c = Call::queued(1);
    c.offer("1001", "health", 2_010);
    c.b.offer_done("no_answer");
    c.b.queue_step(
        "escalated",
        "step 1 (early)".to_owned(),
        c.after(22_000),
        &c.clock,
    );
    c.offer("1002", "health", 22_020);
    c.answer(25_000);
    c.seal(EndedBy::Caller, "caller_hangup", 85_000);
    c.check();
    assert_eq!(
        c.kinds(),
        [
            "call.arrived",
            "call.queued",
            "call.offered",
            "call.offered",
            "call.answered",
            "call.ended",
            "call.record"
        ]
    );

    let offered: Vec<Value> = c
        .items
        .iter()
        .filter(|i| i.kind == "call.offered")
        .map(body)
        .collect();
    assert_eq!(offered[0]["schema"], EVENT_SCHEMA);
    assert_eq!(
        offered[0]["data"],
        json!({ "agent": "1001", "queue": "health", "attempt": 1 })
    );
    assert_eq!(
        offered[1]["data"],
        json!({ "agent": "1002", "queue": "health", "attempt": 2 })
    );
    let answered = c.item("call.answered");
    assert_eq!(answered["data"]["agent"], "1002");
    assert_eq!(answered["data"]["wait_ms"], 25_000);

    let rec = c.item("call.record");
    assert_eq!(rec["schema"], RECORD_SCHEMA);
    assert_eq!(rec["agent"], "1002");
    assert_eq!(rec["target"], "agent:1002");
    assert_eq!(record_strs(&rec, "offers", "agent"), ["1001", "1002"]);
    assert_eq!(
        record_strs(&rec, "offers", "outcome"),
        ["no_answer", "answered"]
    );
    assert_eq!(rec["offers"][1]["at"], "2026-11-23T13:47:59.020Z");
    assert_eq!(
        record_strs(&rec, "segments", "kind"),
        [
            "arrival",
            "queued",
            "offered",
            "ringing",
            "escalated",
            "offered",
            "answered",
            "ended"
        ]
    );
    // The callee leg is the last offer's.
    assert_eq!(rec["legs"][1]["sip_call_id"], "b-1002-22020@gw");
}

/// Calls that no agent took end with the new causes, or with the caller
/// leaving; every offer outcome the code can record is in the schema.
#[test]
fn unanswered_acd_calls_match_the_schemas() {
    let cases: [(&'static str, EndedBy, &'static str); 7] = [
        ("no_answer", EndedBy::Gateway, "queue_timeout"),
        ("declined", EndedBy::Gateway, "queue_full"),
        ("unreachable", EndedBy::Gateway, "queue_timeout"),
        ("withdrawn", EndedBy::Caller, "caller_hangup"),
        ("caller_left", EndedBy::Caller, "caller_hangup"),
        ("ringing", EndedBy::Gateway, "draining"),
        ("ringing", EndedBy::Gateway, "rtp_timeout"),
    ];
    for (seed, (outcome, by, cause)) in (10..).zip(cases) {
        let mut c = Call::queued(seed);
        c.offer("1001", "health", 3_000);
        if outcome != "ringing" {
            c.b.offer_done(outcome);
        }
        c.b.queue_step(
            "overflowed",
            "from health to general".to_owned(),
            c.after(30_000),
            &c.clock,
        );
        c.seal(by, cause, 60_000);
        c.check();
        assert!(!c.kinds().contains(&"call.answered"));
        let ended = c.item("call.ended");
        assert_eq!(ended["data"]["end"]["cause"], cause);
        assert_eq!(ended["data"]["talk_ms"], 0);
        let rec = c.item("call.record");
        assert_eq!(rec["end"]["cause"], cause, "{outcome}");
        assert_eq!(record_strs(&rec, "offers", "outcome"), [outcome]);
        assert!(rec.get("agent").is_none(), "no agent took it: {rec}");
        assert!(rec.get("answered_at").is_none());
        assert_eq!(rec["target"], "agent:1001");
        assert!(record_strs(&rec, "segments", "kind").contains(&"overflowed".to_owned()));
    }
    // The full list: whatever the b2bua passes to offer_done is accepted.
    for outcome in OUTCOMES {
        let mut c = Call::queued(30);
        c.offer("1001", "health", 3_000);
        c.b.offer_done(outcome);
        c.seal(EndedBy::Gateway, "queue_timeout", 9_000);
        c.check();
    }
}

/// A queue that filled up or timed out before any offer: no `offers`, no
/// `agent`, no `target`; a direct route's `call.answered` has no `agent`.
#[test]
fn calls_without_offers_keep_their_v1_shape() {
    for (seed, cause) in [(40, "queue_full"), (41, "queue_timeout")] {
        let mut c = Call::queued(seed);
        c.seal(EndedBy::Gateway, cause, 5_000);
        c.check();
        let rec = c.item("call.record");
        for absent in ["offers", "agent", "target"] {
            assert!(rec.get(absent).is_none(), "{absent} in {rec}");
        }
        assert_eq!(rec["end"]["by"], "gateway");
    }
    let mut c = Call::queued(42);
    c.b.routed("desk", "b@desk", c.after(2_000), &c.clock);
    let answered = c.b.answered(c.after(4_000), &c.clock);
    c.items.push(answered);
    c.seal(EndedBy::Callee, "callee_hangup", 64_000);
    c.check();
    assert_eq!(c.item("call.answered")["data"], json!({ "wait_ms": 4_000 }));
    assert!(c.item("call.record").get("agent").is_none());
}

fn agent_change(
    seq: u64,
    from: &str,
    to: &str,
    reason: Option<&str>,
    call: Option<&str>,
) -> RecordItem {
    let mut rng = Rng::new(seq);
    let at = T0_UNIX_MS + seq * 1000;
    let id = hotline::call::record::uuid_v7(at, &mut rng);
    agent_event(&id, "demo", "1001", from, to, reason, call, seq, at)
}

/// `agent.state_changed`: every state, a reason, a call; the agent's own
/// stream and key.
#[test]
fn agent_state_changes_match_their_schema() {
    let mut rng = Rng::new(5);
    let call = hotline::call::record::uuid_v7(T0_UNIX_MS, &mut rng);
    let changes = [
        ("logged_out", "ready", None, None),
        ("ready", "reserved", None, Some(call.as_str())),
        ("reserved", "talking", None, Some(call.as_str())),
        ("talking", "wrap_up", None, None),
        ("wrap_up", "ready", None, None),
        ("ready", "reserved", None, Some(call.as_str())),
        ("reserved", "not_ready", Some("no_answer"), None),
        ("not_ready", "not_ready", Some("lunch"), None),
        ("not_ready", "logged_out", None, None),
    ];
    let mut seen = std::collections::BTreeSet::new();
    for (n, (from, to, reason, call)) in (1..).zip(changes) {
        let item = agent_change(n, from, to, reason, call);
        check_item_schema(&item);
        assert_eq!(item.kind, "agent.state_changed");
        assert_eq!(item.stream, "agent/1001");
        let v = body(&item);
        let id = v["id"].as_str().unwrap_or_default();
        assert_eq!(id.len(), 36, "{v}");
        assert_eq!(item.key, format!("agent/1001/{id}"));
        assert_eq!(v["schema"], hotline::call::record::AGENT_EVENT_SCHEMA);
        assert_eq!(v["agent_id"], "1001");
        assert_eq!(v["seq"], n);
        assert_eq!(v["data"]["node"], "demo");
        assert_eq!(v["data"]["from"], from);
        assert_eq!(v["data"]["to"], to);
        assert_eq!(v["data"].get("reason").and_then(Value::as_str), reason);
        assert_eq!(v["data"].get("call").and_then(Value::as_str), call);
        assert!(v.get("call_id").is_none(), "not a call's item: {v}");
        seen.insert(from);
        seen.insert(to);
    }
    assert_eq!(seen.len(), STATES.len());
    // The schema's states are the code's (src/acd AgentState::LABELS).
    let states: Vec<Value> = STATES.iter().map(|s| json!(s)).collect();
    let s = schema("agent.state_changed");
    for side in ["from", "to"] {
        assert_eq!(
            s["properties"]["data"]["properties"][side]["enum"],
            json!(states)
        );
    }
    assert_eq!(
        hotline::acd::AgentState::LABELS.to_vec(),
        STATES.to_vec(),
        "states changed: update schemas/agent.state_changed.v1.json"
    );
}

/// The schemas reject wrong values, so the checks above can fail.
#[test]
fn the_schemas_reject_wrong_values() {
    let mut c = Call::queued(50);
    c.offer("1001", "health", 2_000);
    c.answer(4_000);
    c.seal(EndedBy::Callee, "callee_hangup", 9_000);
    c.check();
    let rec = c.item("call.record");
    let offered = c.item("call.offered");
    let answered = c.item("call.answered");
    let ended = c.item("call.ended");
    let agent = body(&agent_change(
        1,
        "ready",
        "not_ready",
        Some("no_answer"),
        None,
    ));

    let bad = |v: &Value, ptr: &str, x: Value| {
        let mut v = v.clone();
        *at(&mut v, ptr) = x;
        v
    };
    let without = |v: &Value, ptr: &str, key: &str| {
        let mut v = v.clone();
        if let Some(o) = at(&mut v, ptr).as_object_mut() {
            o.remove(key);
        }
        v
    };
    let with = |v: &Value, ptr: &str, key: &str, x: Value| {
        let mut v = v.clone();
        if let Some(o) = at(&mut v, ptr).as_object_mut() {
            o.insert(key.to_owned(), x);
        }
        v
    };

    // call.record
    let r = "call.record";
    assert_rejected(
        r,
        &bad(&rec, "/offers/0/outcome", json!("busy")),
        "an unknown offer outcome",
    );
    assert_rejected(
        r,
        &without(&rec, "/offers/0", "queue"),
        "an offer without its queue",
    );
    assert_rejected(
        r,
        &with(&rec, "/offers/0", "attempt", json!(1)),
        "an unknown offer field",
    );
    assert_rejected(
        r,
        &bad(&rec, "/offers", json!({ "agent": "1001" })),
        "offers not an array",
    );
    assert_rejected(r, &bad(&rec, "/agent", json!(1001)), "a numeric agent");
    assert_rejected(
        r,
        &bad(&rec, "/end/cause", json!("queue_overflow")),
        "an unknown end cause",
    );
    assert_rejected(
        r,
        &bad(&rec, "/segments/2/kind", json!("offer")),
        "an unknown segment kind",
    );
    assert_rejected(
        r,
        &with(&rec, "", "agents", json!(["1001"])),
        "an unknown field",
    );
    // call.offered
    let o = "call.offered";
    assert_rejected(o, &bad(&offered, "/data/attempt", json!(0)), "attempt 0");
    assert_rejected(
        o,
        &bad(&offered, "/data/attempt", json!("1")),
        "a string attempt",
    );
    assert_rejected(o, &without(&offered, "/data", "agent"), "no agent");
    assert_rejected(
        o,
        &with(&offered, "/data", "skills", json!([])),
        "an unknown data field",
    );
    assert_rejected(
        o,
        &bad(&offered, "/type", json!("call.answered")),
        "the wrong type",
    );
    // call.answered
    let a = "call.answered";
    assert_rejected(
        a,
        &bad(&answered, "/data/agent", json!(["1001"])),
        "an agent list",
    );
    assert_rejected(
        a,
        &with(&answered, "/data", "queue", json!("health")),
        "an unknown data field",
    );
    // call.ended
    let e = "call.ended";
    assert_rejected(
        e,
        &bad(&ended, "/data/end/cause", json!("queue_closed")),
        "an unknown end cause",
    );
    // agent.state_changed
    let s = "agent.state_changed";
    assert_rejected(
        s,
        &bad(&agent, "/data/to", json!("on_break")),
        "an unknown state",
    );
    assert_rejected(
        s,
        &bad(&agent, "/data/from", json!("busy")),
        "an unknown state",
    );
    assert_rejected(s, &without(&agent, "", "agent_id"), "no agent_id");
    assert_rejected(s, &without(&agent, "/data", "node"), "no node");
    assert_rejected(s, &bad(&agent, "/seq", json!(0)), "seq 0");
    assert_rejected(s, &with(&agent, "", "call_id", json!("x")), "a call_id");
    assert_rejected(
        s,
        &bad(&agent, "/data/reason", json!(7)),
        "a numeric reason",
    );
    assert_rejected(
        s,
        &bad(&agent, "/type", json!("agent.changed")),
        "the wrong type",
    );
}

/// The end causes are one list in `call.ended` and `call.record`, and
/// both have the ACD's.
#[test]
fn end_causes_agree_between_call_ended_and_call_record() {
    let ended = schema("call.ended");
    let rec = schema("call.record");
    let from_ended =
        &ended["properties"]["data"]["properties"]["end"]["properties"]["cause"]["enum"];
    let from_record = &rec["properties"]["end"]["properties"]["cause"]["enum"];
    assert_eq!(from_ended, from_record);
    for cause in ["queue_full", "queue_timeout"] {
        let listed = from_record
            .as_array()
            .is_some_and(|a| a.contains(&json!(cause)));
        assert!(listed, "{cause} missing");
    }
    for kind in ["call.offered", "agent.state_changed"] {
        assert_eq!(
            schema(kind)["$schema"],
            "https://json-schema.org/draft/2020-12/schema"
        );
    }
}
