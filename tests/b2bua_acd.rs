//! The ACD through the whole B2BUA in the Sim: agents' phones register
//! (digest), log in with feature codes, and take the calls a line's flow
//! queues; ring-no-answer, declines, abandons, treatment, wrap-up, the
//! survey, priority and escalation. Virtual time, deterministic. The media
//! shards are not simulated: the tests play their part with
//! `Sim::media_event`.

mod common;

use common::{feature_code, register, register_and_login, register_expires, Plan, Sim, GW};
use hotline::config::{self, Config};
use hotline::media::shard::{MediaCommand, MediaEvent};
use hotline::sip::msg::{Method, SipHeaders};
use serde_json::Value;
use std::time::Duration;

/// Agents' passwords.
const PW1: &str = "pw-1001-secret";
const PW2: &str = "pw-1002-secret";
const PW3: &str = "pw-1003-secret";

/// Agents' phones.
const PHONE1: &str = "203.0.113.31:5060";
const PHONE2: &str = "203.0.113.32:5060";
const PHONE3: &str = "203.0.113.33:5060";

/// One tenant, the queue "general" answered by the gateway's agents
/// (`queue_keys` added to it), a flow that queues at once, line 12345
/// (priority 0) and 12320 (priority 3), agents 1001–1003.
fn acd_config(queue_keys: &str, extra: &str) -> Config {
    let mut queue_keys = queue_keys.to_owned();
    for (key, value) in [("ring_timeout_secs", 10), ("wrap_up_secs", 5)] {
        if !queue_keys.contains(key) {
            queue_keys = format!("{key} = {value}\n{queue_keys}");
        }
    }
    let text = format!(
        r#"
[node]
name = "sim"
[sip]
listen = "{GW}"
ring_timeout_secs = 60
digest_algorithms = ["MD5"]
[[trunks]]
name = "carrier"
sources = ["198.51.100.0/24"]
[[tenants]]
name = "city"
[[queues]]
name = "general"
tenant = "city"
{queue_keys}
[[flows]]
name = "direct"
entry = "q"
[[flows.nodes]]
name = "q"
kind = "queue"
queue = "general"
[[lines]]
number = "12345"
tenant = "city"
mode = "main"
flow = "direct"
[[lines]]
number = "12320"
tenant = "city"
mode = "dual"
flow = "direct"
priority = 3
[[agents]]
id = "1001"
password = "{PW1}"
tenant = "city"
skills = {{ cantonese = 4 }}
[[agents]]
id = "1002"
password = "{PW2}"
tenant = "city"
[[agents]]
id = "1003"
password = "{PW3}"
tenant = "city"
{extra}
"#
    );
    match config::parse(&text, "<sim-acd>") {
        Ok(c) => c,
        Err(e) => panic!("sim acd config: {e}"),
    }
}

/// A Sim with agents' phones 1001 and 1002 (UAs 2 and 3, following their
/// plans) and a phone for 1003 (UA 4, never answering).
fn sim(seed: u64, queue_keys: &str, p1: Plan, p2: Plan) -> Sim {
    sim_with(seed, acd_config(queue_keys, ""), p1, p2)
}

fn sim_with(seed: u64, config: Config, p1: Plan, p2: Plan) -> Sim {
    let mut sim = Sim::with_config(seed, Plan::never(), config);
    assert_eq!(sim.add_ua("a1001", PHONE1, p1), A1);
    assert_eq!(sim.add_ua("a1002", PHONE2, p2), A2);
    assert_eq!(sim.add_ua("a1003", PHONE3, Plan::never()), A3);
    sim
}

/// UA indexes of the agents' phones.
const A1: usize = 2;
const A2: usize = 3;
const A3: usize = 4;

/// The caller (the carrier, UA 0) calls `number`; runs until the flow
/// has queued it.
fn call(sim: &mut Sim, number: &str) {
    sim.invite(number);
    sim.run_for(Duration::from_millis(200));
    assert_eq!(
        sim.uas[0].finals(Method::Invite),
        [200],
        "answered for the flow"
    );
    assert!(sim.uas[0].acked);
}

/// Another caller (a new UA inside the trunk) calls `number`; its index.
fn call_from(sim: &mut Sim, name: &'static str, addr: &str, number: &str) -> usize {
    let ua = sim.add_ua(name, addr, Plan::never());
    sim.invite_from(ua, number, Some(common::SDP_OFFER));
    sim.run_for(Duration::from_millis(200));
    assert_eq!(sim.uas[ua].finals(Method::Invite), [200]);
    ua
}

/// New INVITEs (not re-INVITEs) a UA received.
fn offers_to(sim: &Sim, ua: usize) -> usize {
    sim.uas[ua]
        .requests(Method::Invite)
        .iter()
        .filter(|r| r.to_tag().is_none())
        .count()
}

/// Requests of `method` the gateway sent to UA `ua` (by the wire).
fn sent_to(sim: &Sim, ua: usize, method: &str) -> usize {
    let addr = sim.uas[ua].addr.to_string();
    sim.wire_between(GW, &addr)
        .iter()
        .filter(|w| w.from == sim.gw_addr && w.text.starts_with(&format!("{method} ")))
        // Not the feature codes' own confirmation calls.
        .filter(|w| !w.text.contains("sip:*2"))
        .count()
}

/// The confirmations an agent's phone hears after a feature code (its
/// own short call with the gateway, not part of any citizen call).
const FEATURE_PROMPTS: [&str; 5] = [
    "agent_logged_in",
    "agent_logged_out",
    "agent_ready",
    "agent_not_ready",
    "feature_failed",
];

/// Legs of the feature codes' confirmation calls.
fn feature_legs(sim: &Sim) -> Vec<u16> {
    sim.media_commands()
        .iter()
        .filter_map(|c| match c {
            MediaCommand::Play { leg, what, .. } if FEATURE_PROMPTS.contains(&what.name()) => {
                Some(*leg)
            }
            _ => None,
        })
        .collect()
}

/// The prompts played so far to callers, by name, in order.
fn played(sim: &Sim) -> Vec<String> {
    sim.media_commands()
        .iter()
        .filter_map(|c| match c {
            MediaCommand::Play { what, .. } if !FEATURE_PROMPTS.contains(&what.name()) => {
                Some(what.name().to_owned())
            }
            _ => None,
        })
        .collect()
}

/// Every leg of a citizen call opened, in order (a caller's leg is opened
/// first for it); a feature code's confirmation call opens two legs too.
fn legs(sim: &Sim) -> Vec<u16> {
    let feature = feature_legs(sim);
    let opened: Vec<u16> = sim
        .media_commands()
        .iter()
        .filter_map(|c| match c {
            MediaCommand::Open { leg } => Some(*leg),
            _ => None,
        })
        .collect();
    // Each call opens its caller's leg, then its other leg.
    opened
        .chunks(2)
        .filter(|pair| !feature.contains(&pair[0]))
        .flatten()
        .copied()
        .collect()
}

/// The prompt last started on `leg` played to its end.
fn prompt_done_on(sim: &mut Sim, leg: u16) {
    sim.media_event(MediaEvent::PlaybackDone {
        leg,
        interrupted: false,
    });
    sim.run_for(Duration::from_millis(10));
}

/// The prompt last started on the last leg that played one: a prompt
/// played to its end.
fn prompt_done(sim: &mut Sim) {
    let leg = sim
        .media_commands()
        .iter()
        .rev()
        .find_map(|c| match c {
            MediaCommand::Play { leg, what, .. } if !FEATURE_PROMPTS.contains(&what.name()) => {
                Some(*leg)
            }
            _ => None,
        })
        .unwrap_or_else(|| panic!("nothing played"));
    prompt_done_on(sim, leg);
}

fn json(item: &hotline::call::record::RecordItem) -> Value {
    serde_json::from_str(&item.body).unwrap_or_else(|e| panic!("{e}"))
}

/// The items of `kind`, parsed.
fn items(sim: &Sim, kind: &str) -> Vec<Value> {
    sim.records
        .iter()
        .filter(|r| r.kind == kind)
        .map(json)
        .collect()
}

/// The only sealed call record.
fn record(sim: &Sim) -> Value {
    let mut all = items(sim, "call.record");
    assert_eq!(all.len(), 1, "one call.record among {:?}", kinds(sim));
    all.remove(0)
}

fn kinds(sim: &Sim) -> Vec<&'static str> {
    sim.records.iter().map(|r| r.kind).collect()
}

/// `(to, reason)` of agent `id`'s `agent.state_changed` events, in order.
fn agent_states(sim: &Sim, id: &str) -> Vec<(String, Option<String>)> {
    items(sim, "agent.state_changed")
        .iter()
        .filter(|e| e["data"]["agent"] == id)
        .map(|e| {
            (
                e["data"]["to"].as_str().unwrap_or_default().to_owned(),
                e["data"]["reason"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

/// Agent `id`'s last state label.
fn agent_state(sim: &Sim, id: &str) -> String {
    agent_states(sim, id)
        .last()
        .map(|s| s.0.clone())
        .unwrap_or_else(|| "logged_out".to_owned())
}

/// `(agent, outcome)` of a record's offers.
fn offers(rec: &Value) -> Vec<(String, String)> {
    rec["offers"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|o| {
                    (
                        o["agent"].as_str().unwrap_or_default().to_owned(),
                        o["outcome"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

// ------------------------------------------------------------ the tests

#[test]
fn longest_idle_agent_rings_and_answers() {
    let mut sim = sim(
        1,
        "",
        Plan::answer(Duration::from_secs(2)),
        Plan::answer(Duration::from_secs(2)),
    );
    // 1002 logs in first: ready longest.
    register_and_login(&mut sim, A2, "1002", PW2);
    sim.run_for(Duration::from_secs(5));
    register_and_login(&mut sim, A1, "1001", PW1);
    sim.run_for(Duration::from_secs(5));
    call(&mut sim, "12345");
    sim.run_for(Duration::from_millis(500));
    assert_eq!(offers_to(&sim, A2), 1, "the agent ready longest rings");
    assert_eq!(offers_to(&sim, A1), 0);
    assert_eq!(agent_state(&sim, "1002"), "reserved");
    assert_eq!(played(&sim).last().map(String::as_str), Some("ringback"));
    sim.run_for(Duration::from_secs(3));
    assert!(sim.uas[A2].requests(Method::Ack).len() == 1, "200 ACKed");
    assert_eq!(agent_state(&sim, "1002"), "talking");
    let connected = sim
        .media_commands()
        .iter()
        .any(|c| matches!(c, MediaCommand::Connect { .. }));
    assert!(connected, "caller and agent connected");
    let answered = items(&sim, "call.answered");
    assert_eq!(answered.len(), 1);
    assert_eq!(answered[0]["data"]["agent"], "1002");
    let offered = items(&sim, "call.offered");
    assert_eq!(offered.len(), 1);
    assert_eq!(offered[0]["data"]["agent"], "1002");
    assert_eq!(offered[0]["data"]["queue"], "general");
    sim.bye(0);
    sim.run_for(Duration::from_secs(2));
    assert_eq!(sim.live_calls(), 0);
    assert_eq!(sent_to(&sim, A2, "BYE"), 1, "the agent's leg hung up");
    let rec = record(&sim);
    assert_eq!(rec["agent"], "1002");
    assert_eq!(offers(&rec), pairs(&[("1002", "answered")]));
    assert_eq!(rec["end"]["cause"], "caller_hangup");
    assert_eq!(rec["queue"]["name"], "general");
    // The caller left: the agent's wrap-up, then ready.
    assert_eq!(agent_state(&sim, "1002"), "wrap_up");
    sim.run_for(Duration::from_secs(6));
    assert_eq!(agent_state(&sim, "1002"), "ready");
}

#[test]
fn ring_no_answer_moves_on() {
    let mut sim = sim(2, "", Plan::never(), Plan::answer(Duration::from_secs(1)));
    register_and_login(&mut sim, A1, "1001", PW1);
    sim.run_for(Duration::from_secs(1));
    register_and_login(&mut sim, A2, "1002", PW2);
    call(&mut sim, "12345");
    sim.run_for(Duration::from_secs(9));
    assert_eq!(offers_to(&sim, A1), 1);
    assert_eq!(offers_to(&sim, A2), 0, "still ringing the first agent");
    assert_eq!(sent_to(&sim, A1, "CANCEL"), 0);
    // The queue's ring_timeout_secs = 10 passes.
    sim.run_for(Duration::from_secs(2));
    assert_eq!(sent_to(&sim, A1, "CANCEL"), 1, "ring-no-answer cancelled");
    assert_eq!(
        agent_states(&sim, "1001").last(),
        Some(&("not_ready".to_owned(), Some("no_answer".to_owned())))
    );
    assert_eq!(offers_to(&sim, A2), 1, "the next agent rings");
    sim.run_for(Duration::from_secs(2));
    assert_eq!(agent_state(&sim, "1002"), "talking");
    assert_eq!(sim.uas[A2].requests(Method::Ack).len(), 1);
    sim.bye(0);
    sim.run_for(Duration::from_secs(2));
    assert_eq!(sim.live_calls(), 0);
    let rec = record(&sim);
    assert_eq!(rec["agent"], "1002");
    assert_eq!(
        offers(&rec),
        pairs(&[("1001", "no_answer"), ("1002", "answered")])
    );
    let offered = items(&sim, "call.offered");
    assert_eq!(offered.len(), 2);
    assert_eq!(offered[1]["data"]["attempt"], 2);
    // No ACK or BYE ever went to the phone that rang out.
    assert_eq!(sent_to(&sim, A1, "BYE"), 0);
    // It stays not ready until its agent says otherwise.
    sim.run_for(Duration::from_secs(30));
    assert_eq!(agent_state(&sim, "1001"), "not_ready");
}

#[test]
fn declined_486_moves_on_agent_stays_ready() {
    let mut sim = sim(
        3,
        "",
        Plan::reject(486),
        Plan::answer(Duration::from_secs(1)),
    );
    register_and_login(&mut sim, A1, "1001", PW1);
    sim.run_for(Duration::from_secs(1));
    register_and_login(&mut sim, A2, "1002", PW2);
    call(&mut sim, "12345");
    sim.run_for(Duration::from_secs(3));
    assert_eq!(offers_to(&sim, A1), 1, "declined once, not offered again");
    assert_eq!(offers_to(&sim, A2), 1);
    assert_eq!(agent_state(&sim, "1002"), "talking");
    assert_eq!(
        agent_states(&sim, "1001"),
        [
            ("ready".to_owned(), None),
            ("reserved".to_owned(), None),
            ("ready".to_owned(), None)
        ]
    );
    sim.bye(0);
    sim.run_for(Duration::from_secs(2));
    let rec = record(&sim);
    assert_eq!(
        offers(&rec),
        pairs(&[("1001", "declined"), ("1002", "answered")])
    );
    assert_eq!(rec["agent"], "1002");
    // Still ready: the next call rings it.
    sim.uas[A1].plan = Plan::answer(Duration::from_secs(1));
    call_from(&mut sim, "caller2", "198.51.100.11:5060", "12345");
    sim.run_for(Duration::from_secs(2));
    assert_eq!(offers_to(&sim, A1), 2);
    assert_eq!(agent_state(&sim, "1001"), "talking");
}

#[test]
fn caller_hangs_up_while_agent_rings() {
    let mut sim = sim(4, "", Plan::never(), Plan::never());
    register_and_login(&mut sim, A1, "1001", PW1);
    call(&mut sim, "12345");
    sim.run_for(Duration::from_secs(2));
    assert_eq!(offers_to(&sim, A1), 1);
    assert_eq!(agent_state(&sim, "1001"), "reserved");
    sim.bye(0);
    sim.run_for(Duration::from_secs(2));
    assert_eq!(
        sent_to(&sim, A1, "CANCEL"),
        1,
        "the agent's INVITE cancelled"
    );
    assert_eq!(sim.live_calls(), 0);
    assert_eq!(agent_state(&sim, "1001"), "ready");
    let rec = record(&sim);
    assert_eq!(rec["end"]["cause"], "caller_hangup");
    assert_eq!(offers(&rec), pairs(&[("1001", "caller_left")]));
    assert!(rec.get("agent").is_none(), "nobody took it");
    // Ready for real: the next call rings it.
    call_from(&mut sim, "caller2", "198.51.100.11:5060", "12345");
    sim.run_for(Duration::from_secs(1));
    assert_eq!(offers_to(&sim, A1), 2);
}

#[test]
fn agent_answers_just_as_caller_abandoned() {
    let mut sim = sim(5, "", Plan::never(), Plan::never());
    register_and_login(&mut sim, A1, "1001", PW1);
    call(&mut sim, "12345");
    sim.run_for(Duration::from_secs(2));
    assert_eq!(offers_to(&sim, A1), 1);
    // The caller's BYE and the phone's 200 cross: the BYE reaches the
    // gateway first, the 200 after the gateway sent its CANCEL.
    sim.bye(0);
    sim.answer_now(A1);
    sim.run_for(Duration::from_secs(2));
    assert_eq!(sim.live_calls(), 0);
    assert_eq!(sent_to(&sim, A1, "CANCEL"), 1);
    assert_eq!(sim.uas[A1].requests(Method::Ack).len(), 1, "its 2xx ACKed");
    assert_eq!(call_byes(&sim, A1), 1, "and hung up");
    assert_eq!(agent_state(&sim, "1001"), "ready", "no stuck agent");
    let rec = record(&sim);
    assert_eq!(rec["end"]["cause"], "caller_hangup");
    assert_eq!(offers(&rec), pairs(&[("1001", "caller_left")]));
    assert!(items(&sim, "call.answered").is_empty());
    // The agent takes the next call.
    sim.uas[A1].plan = Plan::answer(Duration::from_secs(1));
    call_from(&mut sim, "caller2", "198.51.100.11:5060", "12345");
    sim.run_for(Duration::from_secs(2));
    assert_eq!(offers_to(&sim, A1), 2);
    assert_eq!(agent_state(&sim, "1001"), "talking");
}

#[test]
fn agent_answers_just_after_ring_no_answer_is_hung_up() {
    // The ring timeout's CANCEL and the phone's 200 cross: the 2xx is
    // ACKed and hung up; the caller waits on for the next agent.
    let mut sim = sim(6, "", Plan::never(), Plan::answer(Duration::from_secs(1)));
    register_and_login(&mut sim, A1, "1001", PW1);
    call(&mut sim, "12345");
    sim.run_for(Duration::from_secs(2));
    assert_eq!(offers_to(&sim, A1), 1);
    let ringing = sim.now;
    sim.run_until(Duration::from_secs(20), |s| sent_to(s, A1, "CANCEL") == 1);
    assert!(sim.now - ringing >= Duration::from_secs(7), "rang out");
    // The CANCEL is in flight: the phone answers now.
    sim.answer_now(A1);
    sim.run_for(Duration::from_secs(2));
    assert_eq!(sim.uas[A1].requests(Method::Ack).len(), 1);
    assert_eq!(call_byes(&sim, A1), 1);
    assert_eq!(agent_state(&sim, "1001"), "not_ready");
    assert_eq!(sim.live_calls(), 1, "the caller still waits");
    assert_eq!(played(&sim).last().map(String::as_str), Some("hold_music"));
    register_and_login(&mut sim, A2, "1002", PW2);
    sim.run_for(Duration::from_secs(2));
    assert_eq!(agent_state(&sim, "1002"), "talking");
    sim.bye(0);
    sim.run_for(Duration::from_secs(2));
    let rec = record(&sim);
    assert_eq!(
        offers(&rec),
        pairs(&[("1001", "no_answer"), ("1002", "answered")])
    );
    assert_eq!(rec["agent"], "1002");
}

#[test]
fn no_agent_waits_with_music_then_agent_logs_in_and_gets_it() {
    let mut sim = sim(7, "", Plan::answer(Duration::from_secs(1)), Plan::never());
    call(&mut sim, "12345");
    sim.run_for(Duration::from_secs(20));
    assert_eq!(played(&sim), ["hold_music"]);
    let looped = sim.media_commands().iter().any(|c| {
        matches!(c, MediaCommand::Play { what, repeat: true, .. } if what.name() == "hold_music")
    });
    assert!(looped, "the music loops");
    assert_eq!(items(&sim, "call.queued").len(), 1);
    // Registered but not logged in: not offered.
    assert_eq!(register(&mut sim, A1, "1001", PW1), 200);
    sim.run_for(Duration::from_secs(5));
    assert_eq!(offers_to(&sim, A1), 0);
    let r = feature_code(&mut sim, A1, "1001", PW1, "*21").unwrap_or_else(|| panic!("no answer"));
    assert_eq!((r.0, r.1.as_str()), (200, "agent_logged_in"));
    sim.run_for(Duration::from_millis(100));
    assert_eq!(offers_to(&sim, A1), 1);
    assert_eq!(played(&sim).last().map(String::as_str), Some("ringback"));
    sim.run_for(Duration::from_secs(2));
    assert_eq!(agent_state(&sim, "1001"), "talking");
    sim.bye(0);
    sim.run_for(Duration::from_secs(2));
    let rec = record(&sim);
    assert_eq!(rec["agent"], "1001");
    assert_eq!(offers(&rec), pairs(&[("1001", "answered")]));
    assert!(rec["wait_ms"].as_u64().unwrap_or(0) >= 25_000, "{rec}");
}

#[test]
fn queue_full_gets_treatment() {
    let mut sim = sim(8, "max_length = 1", Plan::never(), Plan::never());
    call(&mut sim, "12345");
    sim.run_for(Duration::from_secs(1));
    assert_eq!(played(&sim), ["hold_music"]);
    let c2 = call_from(&mut sim, "caller2", "198.51.100.11:5060", "12345");
    sim.run_for(Duration::from_millis(100));
    assert_eq!(played(&sim), ["hold_music", "queue_full"]);
    prompt_done(&mut sim);
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.uas[c2].requests(Method::Bye).len(), 1, "hung up on");
    assert!(
        sim.uas[0].requests(Method::Bye).is_empty(),
        "the first waits on"
    );
    assert_eq!(sim.live_calls(), 1);
    let rec = record(&sim);
    assert_eq!(rec["end"]["cause"], "queue_full");
    assert_eq!(rec["end"]["by"], "gateway");
    assert!(rec.get("offers").is_none());
}

#[test]
fn max_wait_expires_with_treatment() {
    let mut sim = sim(
        9,
        "max_wait_secs = 30\ntreatment = \"blocked\"",
        Plan::never(),
        Plan::never(),
    );
    call(&mut sim, "12345");
    sim.run_for(Duration::from_secs(29));
    assert_eq!(played(&sim), ["hold_music"]);
    sim.run_for(Duration::from_secs(2));
    assert_eq!(played(&sim), ["hold_music", "blocked"]);
    prompt_done(&mut sim);
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.uas[0].requests(Method::Bye).len(), 1);
    assert_eq!(sim.live_calls(), 0);
    let rec = record(&sim);
    assert_eq!(rec["end"]["cause"], "queue_timeout");
    // An agent logging in now gets nothing.
    register_and_login(&mut sim, A1, "1001", PW1);
    sim.run_for(Duration::from_secs(1));
    assert_eq!(offers_to(&sim, A1), 0);
}

#[test]
fn max_wait_while_an_agent_rings_expires_after_the_offer_fails() {
    let mut sim = sim(
        10,
        "max_wait_secs = 10\nring_timeout_secs = 15",
        Plan::never(),
        Plan::never(),
    );
    register_and_login(&mut sim, A1, "1001", PW1);
    call(&mut sim, "12345");
    sim.run_for(Duration::from_secs(12));
    assert_eq!(offers_to(&sim, A1), 1);
    assert!(
        !played(&sim).contains(&"queue_full".to_owned()),
        "ringing: not expired"
    );
    sim.run_for(Duration::from_secs(5));
    assert_eq!(sent_to(&sim, A1, "CANCEL"), 1);
    assert_eq!(played(&sim).last().map(String::as_str), Some("queue_full"));
    prompt_done(&mut sim);
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.live_calls(), 0);
    let rec = record(&sim);
    assert_eq!(rec["end"]["cause"], "queue_timeout");
    assert_eq!(offers(&rec), pairs(&[("1001", "no_answer")]));
}

#[test]
fn agent_hangs_up_first_caller_gets_survey_agent_in_wrap_up() {
    let mut p1 = Plan::answer(Duration::from_secs(1));
    p1.bye_after = Some(Duration::from_secs(30));
    let mut sim = sim(11, "", p1, Plan::never());
    register_and_login(&mut sim, A1, "1001", PW1);
    call(&mut sim, "12345");
    sim.run_for(Duration::from_secs(20));
    assert_eq!(agent_state(&sim, "1001"), "talking");
    sim.run_for(Duration::from_secs(12));
    // The agent hung up: the caller stays for the survey.
    assert!(sim.uas[0].requests(Method::Bye).is_empty(), "caller kept");
    assert_eq!(played(&sim).last().map(String::as_str), Some("survey"));
    assert_eq!(agent_state(&sim, "1001"), "wrap_up");
    let leg = legs(&sim)[0];
    sim.media_event(MediaEvent::Digit {
        leg,
        digit: '2',
        source: hotline::media::shard::DigitSource::Rfc4733,
    });
    sim.run_for(Duration::from_millis(10));
    assert_eq!(played(&sim).last().map(String::as_str), Some("thank_you"));
    prompt_done_on(&mut sim, leg);
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.uas[0].requests(Method::Bye).len(), 1);
    assert_eq!(sim.live_calls(), 0);
    assert_eq!(agent_state(&sim, "1001"), "wrap_up", "wrap_up_secs = 5");
    sim.run_for(Duration::from_secs(4));
    assert_eq!(agent_state(&sim, "1001"), "ready");
    let rec = record(&sim);
    assert_eq!(rec["agent"], "1001");
    assert_eq!(rec["end"]["cause"], "callee_hangup");
    assert_eq!(rec["survey"]["level"], 2);
    assert_eq!(rec["survey"]["outcome"], "rated");
    assert_eq!(
        agent_states(&sim, "1001")
            .iter()
            .map(|s| s.0.as_str())
            .collect::<Vec<_>>(),
        ["ready", "reserved", "talking", "wrap_up", "ready"]
    );
}

#[test]
fn ready_during_wrap_up_ends_it_early() {
    let mut p1 = Plan::answer(Duration::from_secs(1));
    p1.bye_after = Some(Duration::from_secs(5));
    let mut sim = sim(12, "wrap_up_secs = 600", p1, Plan::never());
    register_and_login(&mut sim, A1, "1001", PW1);
    call(&mut sim, "12345");
    sim.run_for(Duration::from_secs(8));
    assert_eq!(agent_state(&sim, "1001"), "wrap_up");
    let r = feature_code(&mut sim, A1, "1001", PW1, "*23").unwrap_or_else(|| panic!("no answer"));
    assert_eq!((r.0, r.1.as_str()), (200, "agent_ready"));
    assert_eq!(agent_state(&sim, "1001"), "ready");
}

#[test]
fn feature_codes() {
    let mut sim = sim(13, "", Plan::never(), Plan::never());
    assert_eq!(register(&mut sim, A1, "1001", PW1), 200);
    let code = |sim: &mut Sim, c: &str| {
        feature_code(sim, A1, "1001", PW1, c).unwrap_or_else(|| panic!("no answer to {c}"))
    };
    assert_eq!(code(&mut sim, "*21"), (200, "agent_logged_in".to_owned()));
    assert_eq!(agent_state(&sim, "1001"), "ready");
    assert_eq!(code(&mut sim, "*24"), (200, "agent_not_ready".to_owned()));
    assert_eq!(
        agent_states(&sim, "1001").last(),
        Some(&("not_ready".to_owned(), Some("break".to_owned())))
    );
    assert_eq!(code(&mut sim, "*242"), (200, "agent_not_ready".to_owned()));
    assert_eq!(
        agent_states(&sim, "1001").last(),
        Some(&("not_ready".to_owned(), Some("meeting".to_owned())))
    );
    assert_eq!(code(&mut sim, "*23"), (200, "agent_ready".to_owned()));
    assert_eq!(agent_state(&sim, "1001"), "ready");
    assert_eq!(code(&mut sim, "*22"), (200, "agent_logged_out".to_owned()));
    assert_eq!(agent_state(&sim, "1001"), "logged_out");
    // Refused: not ready while logged out.
    // The phone hears the failure prompt.
    assert_eq!(code(&mut sim, "*24"), (200, "feature_failed".to_owned()));
    // Unknown codes.
    assert_eq!(code(&mut sim, "*99").0, 404);
    assert_eq!(code(&mut sim, "*240").0, 404);
    assert_eq!(
        agent_states(&sim, "1001")
            .iter()
            .map(|s| s.0.as_str())
            .collect::<Vec<_>>(),
        ["ready", "not_ready", "not_ready", "ready", "logged_out"]
    );
    // Each was challenged first (407), then answered.
    let challenged = sim.uas[A1]
        .finals(Method::Invite)
        .iter()
        .filter(|s| **s == 407)
        .count();
    assert_eq!(challenged, 8);
    // A wrong password: 403 after the challenge, nothing done.
    let r = feature_code(&mut sim, A2, "1002", "not-the-password", "*21")
        .unwrap_or_else(|| panic!("no answer"));
    assert_eq!(r.0, 403);
    assert_eq!(sim.uas[A2].finals(Method::Invite), [407, 403]);
    assert!(agent_states(&sim, "1002").is_empty());
    // Each confirmation was the gateway's own short call: none is left,
    // none is a citizen call with a record.
    assert_eq!(sim.live_calls(), 0);
    assert!(!kinds(&sim).contains(&"call.arrived"));
    assert!(!kinds(&sim).contains(&"call.record"));
}

#[test]
fn unregistered_agent_is_not_offered_until_its_phone_registers() {
    let mut sim = sim(14, "", Plan::never(), Plan::answer(Duration::from_secs(1)));
    // Logged in from its phone, but the phone never registered.
    let r = feature_code(&mut sim, A2, "1002", PW2, "*21").unwrap_or_else(|| panic!("no answer"));
    assert_eq!(r.0, 200);
    assert_eq!(agent_state(&sim, "1002"), "ready");
    call(&mut sim, "12345");
    sim.run_for(Duration::from_secs(5));
    assert_eq!(offers_to(&sim, A2), 0);
    assert_eq!(played(&sim), ["hold_music"]);
    assert_eq!(register(&mut sim, A2, "1002", PW2), 200);
    sim.run_for(Duration::from_secs(2));
    assert_eq!(offers_to(&sim, A2), 1);
    assert_eq!(agent_state(&sim, "1002"), "talking");
}

#[test]
fn priority_caller_jumps_ahead() {
    let mut sim = sim(15, "", Plan::answer(Duration::from_secs(1)), Plan::never());
    call(&mut sim, "12345");
    sim.run_for(Duration::from_secs(5));
    // Later, on the line with priority 3.
    let c2 = call_from(&mut sim, "caller2", "198.51.100.11:5060", "12320");
    sim.run_for(Duration::from_secs(5));
    let queued = items(&sim, "call.queued");
    assert_eq!(queued.len(), 2);
    assert_eq!(queued[1]["data"]["priority"], 3, "{}", queued[1]);
    register_and_login(&mut sim, A1, "1001", PW1);
    sim.run_for(Duration::from_secs(2));
    assert_eq!(offers_to(&sim, A1), 1);
    assert_eq!(agent_state(&sim, "1001"), "talking");
    // The agent talks with the second caller: its hang-up ends that call.
    sim.bye(c2);
    sim.run_for(Duration::from_secs(2));
    let rec = record(&sim);
    assert_eq!(rec["line"]["number"], "12320");
    assert_eq!(rec["agent"], "1001");
    assert_eq!(rec["queue"]["priority"], 3);
    assert_eq!(sim.live_calls(), 1, "the first caller still waits");
}

#[test]
fn escalation_reaches_wider_skill() {
    let queue = r#"skills = { cantonese = 3 }
[[queues.escalation]]
after_secs = 20
drop_skill = "cantonese"
"#;
    let mut sim = sim(
        16,
        queue,
        Plan::never(),
        Plan::answer(Duration::from_secs(1)),
    );
    // Only 1001 speaks Cantonese, and it is not working.
    register_and_login(&mut sim, A2, "1002", PW2);
    call(&mut sim, "12345");
    sim.run_for(Duration::from_secs(19));
    assert_eq!(offers_to(&sim, A2), 0, "1002 lacks the skill");
    sim.run_for(Duration::from_secs(2));
    assert_eq!(offers_to(&sim, A2), 1, "after 20 s any agent will do");
    sim.run_for(Duration::from_secs(2));
    assert_eq!(agent_state(&sim, "1002"), "talking");
    sim.bye(0);
    sim.run_for(Duration::from_secs(2));
    let rec = record(&sim);
    assert_eq!(rec["agent"], "1002");
    let escalated = rec["segments"]
        .as_array()
        .map(|a| a.iter().filter(|s| s["kind"] == "escalated").count())
        .unwrap_or(0);
    assert_eq!(escalated, 1, "{rec}");
}

#[test]
fn the_skilled_agent_is_preferred_before_escalation() {
    let queue = r#"skills = { cantonese = 3 }
[[queues.escalation]]
after_secs = 20
drop_skill = "cantonese"
"#;
    let mut sim = sim(
        17,
        queue,
        Plan::answer(Duration::from_secs(1)),
        Plan::never(),
    );
    // 1002 ready longer, but only 1001 is eligible.
    register_and_login(&mut sim, A2, "1002", PW2);
    sim.run_for(Duration::from_secs(5));
    register_and_login(&mut sim, A1, "1001", PW1);
    call(&mut sim, "12345");
    sim.run_for(Duration::from_secs(3));
    assert_eq!(offers_to(&sim, A2), 0);
    assert_eq!(agent_state(&sim, "1001"), "talking");
}

#[test]
fn phone_re_registers_mid_call_changes_nothing() {
    let mut sim = sim(18, "", Plan::answer(Duration::from_secs(1)), Plan::never());
    register_and_login(&mut sim, A1, "1001", PW1);
    call(&mut sim, "12345");
    sim.run_for(Duration::from_secs(3));
    assert_eq!(agent_state(&sim, "1001"), "talking");
    let events = agent_states(&sim, "1001").len();
    let invites = offers_to(&sim, A1);
    assert_eq!(register(&mut sim, A1, "1001", PW1), 200);
    sim.run_for(Duration::from_secs(10));
    assert_eq!(agent_states(&sim, "1001").len(), events, "no state change");
    assert_eq!(offers_to(&sim, A1), invites);
    assert_eq!(sim.live_calls(), 1);
    assert!(sim.uas[0].requests(Method::Bye).is_empty());
    assert_eq!(call_byes(&sim, A1), 0);
    sim.bye(0);
    sim.run_for(Duration::from_secs(2));
    assert_eq!(call_byes(&sim, A1), 1);
    let rec = record(&sim);
    assert_eq!(rec["agent"], "1001");
    assert_eq!(rec["end"]["cause"], "caller_hangup");
}

#[test]
fn registration_expiry_makes_the_agent_unoffered() {
    let mut sim = sim(19, "", Plan::answer(Duration::from_secs(1)), Plan::never());
    assert_eq!(register_expires(&mut sim, A1, "1001", PW1, Some(60)), 200);
    let r = feature_code(&mut sim, A1, "1001", PW1, "*21").unwrap_or_else(|| panic!("no answer"));
    assert_eq!(r.0, 200);
    sim.run_for(Duration::from_secs(61));
    assert_eq!(
        sim.gw.b2bua().stats().calls_answered,
        0,
        "nothing happened meanwhile"
    );
    call(&mut sim, "12345");
    sim.run_for(Duration::from_secs(5));
    assert_eq!(offers_to(&sim, A1), 0, "its binding lapsed");
    assert_eq!(
        agent_state(&sim, "1001"),
        "ready",
        "the agent keeps its state"
    );
    // The phone comes back.
    assert_eq!(register(&mut sim, A1, "1001", PW1), 200);
    sim.run_for(Duration::from_secs(2));
    assert_eq!(offers_to(&sim, A1), 1);
    assert_eq!(agent_state(&sim, "1001"), "talking");
}

#[test]
fn unregistering_makes_the_agent_unoffered() {
    let mut sim = sim(20, "", Plan::answer(Duration::from_secs(1)), Plan::never());
    register_and_login(&mut sim, A1, "1001", PW1);
    assert_eq!(register_expires(&mut sim, A1, "1001", PW1, Some(0)), 200);
    call(&mut sim, "12345");
    sim.run_for(Duration::from_secs(5));
    assert_eq!(offers_to(&sim, A1), 0);
}

#[test]
fn comfort_announcement_then_music_again() {
    let mut sim = sim(21, "comfort_every_secs = 10", Plan::never(), Plan::never());
    call(&mut sim, "12345");
    sim.run_for(Duration::from_secs(11));
    assert_eq!(played(&sim)[0], "hold_music");
    assert!(played(&sim).len() >= 2, "{:?}", played(&sim));
    assert_eq!(played(&sim)[1], "queue_comfort");
    prompt_done(&mut sim);
    assert_eq!(played(&sim).last().map(String::as_str), Some("hold_music"));
}

#[test]
fn logout_while_ringing_withdraws_the_offer() {
    let mut sim = sim(22, "", Plan::never(), Plan::answer(Duration::from_secs(1)));
    register_and_login(&mut sim, A1, "1001", PW1);
    sim.run_for(Duration::from_secs(1));
    register_and_login(&mut sim, A2, "1002", PW2);
    call(&mut sim, "12345");
    sim.run_for(Duration::from_secs(2));
    assert_eq!(agent_state(&sim, "1001"), "reserved");
    let r = feature_code(&mut sim, A1, "1001", PW1, "*22").unwrap_or_else(|| panic!("no answer"));
    assert_eq!((r.0, r.1.as_str()), (200, "agent_logged_out"));
    sim.run_for(Duration::from_secs(3));
    assert_eq!(sent_to(&sim, A1, "CANCEL"), 1);
    assert_eq!(agent_state(&sim, "1001"), "logged_out");
    assert_eq!(agent_state(&sim, "1002"), "talking");
    sim.bye(0);
    sim.run_for(Duration::from_secs(2));
    let rec = record(&sim);
    assert_eq!(
        offers(&rec),
        pairs(&[("1001", "withdrawn"), ("1002", "answered")])
    );
}

#[test]
fn unreachable_phone_goes_not_ready_and_the_next_agent_rings() {
    let mut sim = sim(
        23,
        "",
        Plan::reject(503),
        Plan::answer(Duration::from_secs(1)),
    );
    register_and_login(&mut sim, A1, "1001", PW1);
    sim.run_for(Duration::from_secs(1));
    register_and_login(&mut sim, A2, "1002", PW2);
    call(&mut sim, "12345");
    sim.run_for(Duration::from_secs(3));
    assert_eq!(
        agent_states(&sim, "1001").last(),
        Some(&("not_ready".to_owned(), Some("unreachable".to_owned())))
    );
    assert_eq!(agent_state(&sim, "1002"), "talking");
    sim.bye(0);
    sim.run_for(Duration::from_secs(2));
    assert_eq!(
        offers(&record(&sim)),
        pairs(&[("1001", "unreachable"), ("1002", "answered")])
    );
}

#[test]
fn silent_phone_times_out_as_unreachable() {
    // Ring-no-answer after 60 s: Timer B (32 s) comes first.
    let mut sim = sim(
        24,
        "ring_timeout_secs = 60",
        Plan::never(),
        Plan::answer(Duration::from_secs(1)),
    );
    register_and_login(&mut sim, A1, "1001", PW1);
    // The phone is unplugged: nothing answers at its address any more.
    sim.uas[A1].addr = "203.0.113.99:5060"
        .parse()
        .unwrap_or_else(|_| unreachable!());
    call(&mut sim, "12345");
    sim.run_for(Duration::from_secs(31));
    assert_eq!(agent_state(&sim, "1001"), "reserved");
    sim.run_for(Duration::from_secs(3));
    assert_eq!(
        agent_states(&sim, "1001").last(),
        Some(&("not_ready".to_owned(), Some("unreachable".to_owned())))
    );
    assert_eq!(played(&sim).last().map(String::as_str), Some("hold_music"));
    register_and_login(&mut sim, A2, "1002", PW2);
    sim.run_for(Duration::from_secs(2));
    assert_eq!(agent_state(&sim, "1002"), "talking");
    sim.bye(0);
    sim.run_for(Duration::from_secs(2));
    assert_eq!(
        offers(&record(&sim)),
        pairs(&[("1001", "unreachable"), ("1002", "answered")])
    );
}

#[test]
fn caller_abandons_while_waiting() {
    let mut sim = sim(25, "", Plan::answer(Duration::from_secs(1)), Plan::never());
    call(&mut sim, "12345");
    sim.run_for(Duration::from_secs(8));
    sim.bye(0);
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.live_calls(), 0);
    let rec = record(&sim);
    assert_eq!(rec["end"]["cause"], "caller_hangup");
    assert!(rec.get("offers").is_none());
    assert!(rec.get("agent").is_none());
    // Gone from the queue: an agent logging in gets nothing.
    register_and_login(&mut sim, A1, "1001", PW1);
    sim.run_for(Duration::from_secs(2));
    assert_eq!(offers_to(&sim, A1), 0);
    assert_eq!(agent_state(&sim, "1001"), "ready");
}

#[test]
fn logout_while_talking_takes_effect_after_the_call() {
    let mut sim = sim(26, "", Plan::answer(Duration::from_secs(1)), Plan::never());
    register_and_login(&mut sim, A1, "1001", PW1);
    call(&mut sim, "12345");
    sim.run_for(Duration::from_secs(3));
    let r = feature_code(&mut sim, A1, "1001", PW1, "*22").unwrap_or_else(|| panic!("no answer"));
    assert_eq!(r.0, 200);
    assert_eq!(agent_state(&sim, "1001"), "talking", "the call goes on");
    assert_eq!(call_byes(&sim, A1), 0);
    sim.bye(0);
    sim.run_for(Duration::from_secs(1));
    assert_eq!(agent_state(&sim, "1001"), "logged_out", "without wrap-up");
    call_from(&mut sim, "caller2", "198.51.100.11:5060", "12345");
    sim.run_for(Duration::from_secs(2));
    assert_eq!(offers_to(&sim, A1), 1);
}

#[test]
fn not_ready_while_talking_takes_effect_after_wrap_up() {
    let mut sim = sim(27, "", Plan::answer(Duration::from_secs(1)), Plan::never());
    register_and_login(&mut sim, A1, "1001", PW1);
    call(&mut sim, "12345");
    sim.run_for(Duration::from_secs(3));
    let r = feature_code(&mut sim, A1, "1001", PW1, "*243").unwrap_or_else(|| panic!("no answer"));
    assert_eq!((r.0, r.1.as_str()), (200, "agent_not_ready"));
    assert_eq!(agent_state(&sim, "1001"), "talking");
    sim.bye(0);
    sim.run_for(Duration::from_secs(1));
    assert_eq!(agent_state(&sim, "1001"), "wrap_up");
    sim.run_for(Duration::from_secs(5));
    assert_eq!(
        agent_states(&sim, "1001").last(),
        Some(&("not_ready".to_owned(), Some("training".to_owned())))
    );
}

#[test]
fn the_latest_phone_wins() {
    let mut sim = sim(28, "", Plan::answer(Duration::from_secs(1)), Plan::never());
    register_and_login(&mut sim, A1, "1001", PW1);
    // 1001 moves to the desk of UA 4 (1003's phone), which registers as 1001.
    sim.uas[A3].plan = Plan::answer(Duration::from_secs(1));
    assert_eq!(register(&mut sim, A3, "1001", PW1), 200);
    call(&mut sim, "12345");
    sim.run_for(Duration::from_secs(3));
    assert_eq!(offers_to(&sim, A1), 0);
    assert_eq!(offers_to(&sim, A3), 1);
    let invite = sim.uas[A3].requests(Method::Invite)[0].clone();
    assert_eq!(
        invite.uri,
        format!("sip:1001@{PHONE3}"),
        "the registered Contact"
    );
    assert_eq!(agent_state(&sim, "1001"), "talking");
}

#[test]
fn remote_seat_rings_at_its_target_without_registration() {
    let config = acd_config(
        "",
        r#"
[[targets]]
name = "seat-trunk"
address = "203.0.113.50:5060"
[[agents]]
id = "2001"
password = "pw-2001-secret"
tenant = "city"
remote = "seat-trunk"
remote_number = "13900000001"
"#,
    );
    let mut sim = sim_with(29, config, Plan::never(), Plan::never());
    let seat = sim.add_ua(
        "seat",
        "203.0.113.50:5060",
        Plan::answer(Duration::from_secs(1)),
    );
    // Logged in (from anywhere: the digest is the agent's), never registered.
    let r = feature_code(&mut sim, A1, "2001", "pw-2001-secret", "*21")
        .unwrap_or_else(|| panic!("no answer"));
    assert_eq!(r.0, 200);
    call(&mut sim, "12345");
    sim.run_for(Duration::from_secs(3));
    assert_eq!(offers_to(&sim, seat), 1);
    let invite = sim.uas[seat].requests(Method::Invite)[0].clone();
    assert_eq!(invite.uri, "sip:13900000001@203.0.113.50:5060");
    assert_eq!(agent_state(&sim, "2001"), "talking");
    sim.bye(0);
    sim.run_for(Duration::from_secs(2));
    assert_eq!(record(&sim)["agent"], "2001");
}

#[test]
fn caller_reinvite_while_queued_is_answered_locally() {
    let mut sim = sim(30, "", Plan::answer(Duration::from_secs(1)), Plan::never());
    call(&mut sim, "12345");
    sim.run_for(Duration::from_secs(2));
    let hold = common::SDP_OFFER.replace("a=sendrecv", "a=sendonly");
    sim.reinvite(0, &hold);
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.uas[0].finals(Method::Invite), [200, 200]);
    // Still queued: an agent gets it.
    register_and_login(&mut sim, A1, "1001", PW1);
    sim.run_for(Duration::from_secs(2));
    assert_eq!(agent_state(&sim, "1001"), "talking");
}

#[test]
fn agent_events_name_the_call_while_reserved_and_talking() {
    let mut sim = sim(31, "", Plan::answer(Duration::from_secs(1)), Plan::never());
    register_and_login(&mut sim, A1, "1001", PW1);
    call(&mut sim, "12345");
    sim.run_for(Duration::from_secs(3));
    sim.bye(0);
    sim.run_for(Duration::from_secs(7));
    let id = record(&sim)["id"].clone();
    let events: Vec<Value> = items(&sim, "agent.state_changed");
    let calls: Vec<(String, Value)> = events
        .iter()
        .map(|e| {
            (
                e["data"]["to"].as_str().unwrap_or_default().to_owned(),
                e["data"]["call"].clone(),
            )
        })
        .collect();
    assert_eq!(
        calls,
        [
            ("ready".to_owned(), Value::Null),
            ("reserved".to_owned(), id.clone()),
            ("talking".to_owned(), id),
            ("wrap_up".to_owned(), Value::Null),
            ("ready".to_owned(), Value::Null),
        ]
    );
    // Each agent's events are numbered in order on its own stream.
    let seqs: Vec<u64> = events.iter().filter_map(|e| e["seq"].as_u64()).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
    assert!(sim
        .records
        .iter()
        .filter(|r| r.kind == "agent.state_changed")
        .all(|r| r.stream == "agent/1001"));
}

/// A busy hour in small: three agents (one never answers), six callers
/// arriving two seconds apart, some leaving while they wait, agents
/// hanging up after talking; with `loss` of the datagrams. Whatever
/// happens, in the end no call is left and no agent is stuck.
fn busy(seed: u64, loss: f64) -> Sim {
    let config = acd_config("", "");
    let mut p1 = Plan::answer(Duration::from_secs(1));
    p1.bye_after = Some(Duration::from_secs(15));
    let mut p2 = Plan::answer(Duration::from_secs(3));
    p2.bye_after = Some(Duration::from_secs(9));
    let mut sim = sim_with(seed, config, p1, p2);
    register_and_login(&mut sim, A1, "1001", PW1);
    register_and_login(&mut sim, A2, "1002", PW2);
    register_and_login(&mut sim, A3, "1003", PW3);
    sim.netem.loss = loss;
    let names = ["c1", "c2", "c3", "c4", "c5", "c6"];
    let mut callers = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let ua = sim.add_ua(name, &format!("198.51.100.{}:5060", 21 + i), Plan::never());
        sim.invite_from(
            ua,
            if i % 2 == 0 { "12345" } else { "12320" },
            Some(common::SDP_OFFER),
        );
        sim.run_for(Duration::from_secs(2));
        callers.push(ua);
    }
    // Two callers give up after a while (if still there).
    sim.run_for(Duration::from_secs(10));
    sim.bye(callers[4]);
    sim.run_for(Duration::from_secs(5));
    sim.bye(callers[5]);
    sim.run_for(Duration::from_secs(120));
    // Those still talking or waiting hang up.
    for &c in &callers {
        sim.bye(c);
    }
    sim.run_for(Duration::from_secs(60));
    assert_eq!(sim.live_calls(), 0, "seed {seed}");
    assert_eq!(items(&sim, "call.record").len(), 6, "seed {seed}");
    for id in ["1001", "1002", "1003"] {
        let states = agent_states(&sim, id);
        let last = states.last().map(|s| s.0.as_str()).unwrap_or("logged_out");
        assert!(
            matches!(last, "ready" | "not_ready"),
            "seed {seed}: agent {id} left {last}: {states:?}"
        );
        // Never offered a call while on another.
        for w in states.windows(2) {
            if w[1].0 == "reserved" {
                assert_eq!(w[0].0, "ready", "seed {seed}: {id}: {states:?}");
            }
        }
    }
    for rec in items(&sim, "call.record") {
        let offers = offers(&rec);
        if let Some(agent) = rec["agent"].as_str() {
            assert!(
                offers.iter().any(|(a, o)| a == agent && o == "answered"),
                "seed {seed}: {rec}"
            );
        }
        assert!(
            offers.iter().all(|(_, o)| o != "ringing"),
            "seed {seed}: an offer left ringing: {rec}"
        );
    }
    sim
}

#[test]
fn busy_hour_ends_clean() {
    let sim = busy(40, 0.0);
    let taken = items(&sim, "call.record")
        .iter()
        .filter(|r| r["agent"].is_string())
        .count();
    assert!(taken >= 3, "{taken} calls taken");
}

#[test]
fn busy_hour_with_loss_ends_clean() {
    let loss: f64 = std::env::var("BUSY_LOSS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.05);
    let n: u64 = std::env::var("BUSY_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    for seed in 41..41 + n {
        let _ = busy(seed, loss);
    }
}

#[test]
fn late_offer_caller_is_offered_to_an_agent_with_our_sdp() {
    let mut sim = sim(50, "", Plan::answer(Duration::from_secs(1)), Plan::never());
    register_and_login(&mut sim, A1, "1001", PW1);
    // The caller's INVITE has no SDP: the gateway offers in its 200, the
    // caller answers in the ACK.
    sim.invite_from(0, "12345", None);
    sim.run_for(Duration::from_secs(3));
    assert_eq!(sim.uas[0].finals(Method::Invite), [200]);
    assert_eq!(offers_to(&sim, A1), 1);
    let invite = sim.uas[A1].requests(Method::Invite)[0].clone();
    assert!(
        String::from_utf8_lossy(&invite.body).contains("m=audio"),
        "the agent's INVITE carries our offer"
    );
    assert_eq!(agent_state(&sim, "1001"), "talking");
}

#[test]
fn early_media_from_a_ringing_agent_then_ring_out_back_to_music() {
    let mut p1 = Plan::never();
    p1.early_media = true;
    let mut sim = sim(51, "", p1, Plan::answer(Duration::from_secs(1)));
    register_and_login(&mut sim, A1, "1001", PW1);
    call(&mut sim, "12345");
    sim.run_for(Duration::from_secs(2));
    // The phone's early media is relayed to the caller meanwhile.
    assert_eq!(connects(&sim), 1);
    assert_eq!(disconnects(&sim), 0);
    sim.run_for(Duration::from_secs(9));
    assert_eq!(sent_to(&sim, A1, "CANCEL"), 1);
    // Rung out: the caller is no longer joined to that phone (its voice
    // must not go on to a phone that stopped ringing), and hears music.
    assert_eq!(disconnects(&sim), 1, "the legs parted");
    assert_eq!(played(&sim).last().map(String::as_str), Some("hold_music"));
    register_and_login(&mut sim, A2, "1002", PW2);
    sim.run_for(Duration::from_millis(500));
    assert_eq!(offers_to(&sim, A2), 1);
    assert_eq!(
        played(&sim).last().map(String::as_str),
        Some("ringback"),
        "the next agent rings: ringback again"
    );
    sim.run_for(Duration::from_secs(2));
    assert_eq!(agent_state(&sim, "1002"), "talking");
    assert_eq!(connects(&sim), 2, "joined to the agent who answered");
}

#[test]
fn early_media_from_an_agent_who_declines_parts_the_legs() {
    let mut p1 = Plan::reject(486);
    p1.early_media = true;
    p1.answer_after = Some(Duration::from_secs(2));
    let mut sim = sim(52, "", p1, Plan::never());
    register_and_login(&mut sim, A1, "1001", PW1);
    call(&mut sim, "12345");
    sim.run_for(Duration::from_secs(1));
    assert_eq!(connects(&sim), 1);
    sim.run_for(Duration::from_secs(3));
    assert_eq!(agent_state(&sim, "1001"), "ready");
    assert_eq!(disconnects(&sim), 1, "the legs parted");
    assert_eq!(played(&sim).last().map(String::as_str), Some("hold_music"));
}

fn connects(sim: &Sim) -> usize {
    sim.media_commands()
        .iter()
        .filter(|c| matches!(c, MediaCommand::Connect { .. }))
        .count()
}

fn disconnects(sim: &Sim) -> usize {
    sim.media_commands()
        .iter()
        .filter(|c| matches!(c, MediaCommand::Disconnect { .. }))
        .count()
}

#[test]
fn overflow_moves_the_call_to_another_queues_agents() {
    let queue = r#"groups = ["front"]
[[queues.escalation]]
after_secs = 10
overflow = "backup"
"#;
    let extra = format!(
        r#"
[[queues]]
name = "backup"
tenant = "city"
groups = ["back"]
ring_timeout_secs = 10
[[agents]]
id = "2002"
password = "{PW2}"
tenant = "city"
groups = ["back"]
"#
    );
    let config = acd_config(queue, &extra);
    let mut sim = sim_with(
        53,
        config,
        Plan::never(),
        Plan::answer(Duration::from_secs(1)),
    );
    register_and_login(&mut sim, A2, "2002", PW2);
    call(&mut sim, "12345");
    sim.run_for(Duration::from_secs(9));
    assert_eq!(offers_to(&sim, A2), 0, "not in the queue's groups");
    sim.run_for(Duration::from_secs(2));
    assert_eq!(offers_to(&sim, A2), 1, "overflowed to backup");
    sim.run_for(Duration::from_secs(2));
    assert_eq!(agent_state(&sim, "2002"), "talking");
    sim.bye(0);
    sim.run_for(Duration::from_secs(2));
    let rec = record(&sim);
    assert_eq!(rec["agent"], "2002");
    assert_eq!(offers(&rec), pairs(&[("2002", "answered")]));
    let offered = items(&sim, "call.offered");
    assert_eq!(offered[0]["data"]["queue"], "backup");
    let steps: Vec<&str> = rec["segments"]
        .as_array()
        .map(|a| a.iter().filter_map(|s| s["kind"].as_str()).collect())
        .unwrap_or_default();
    assert!(steps.contains(&"overflowed"), "{steps:?}");
}

#[test]
fn comfort_tells_the_second_caller_its_position() {
    let mut sim = sim(54, "comfort_every_secs = 10", Plan::never(), Plan::never());
    call(&mut sim, "12345");
    sim.run_for(Duration::from_secs(3));
    let c2 = call_from(&mut sim, "caller2", "198.51.100.11:5060", "12345");
    let _ = c2;
    sim.run_for(Duration::from_secs(12));
    let comforts: Vec<String> = played(&sim)
        .into_iter()
        .filter(|p| p != "hold_music")
        .collect();
    assert_eq!(comforts.len(), 2, "{comforts:?}");
    assert_eq!(comforts[0], "queue_comfort", "first in line: no position");
    assert_ne!(comforts[1], "queue_comfort", "second: the position follows");
}

/// BYEs UA `ua` received for calls (not for its feature codes' own
/// confirmation calls, which the gateway also ends with a BYE).
fn call_byes(sim: &Sim, ua: usize) -> usize {
    sim.uas[ua]
        .requests(Method::Bye)
        .iter()
        .filter(|r| {
            !r.headers
                .get(hotline::sip::msg::Hdr::From)
                .is_some_and(|f| f.contains("sip:*"))
        })
        .count()
}
