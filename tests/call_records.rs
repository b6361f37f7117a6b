//! One call record per routed citizen call, sealed exactly once when the
//! call's end is known, with its events before it (issue: call records and
//! events to the backend): `call.arrived` → [`call.answered`] →
//! `call.ended` → `call.record`, all in the call's stream with ordered,
//! unique idempotency keys; who ended it and why; UTC times from the
//! driver's wall clock; the SIP Call-IDs of both legs.
mod common;
use common::*;
use hotline::call::record::RECORD_SCHEMA;
use hotline::sip::msg::{Method, SipHeaders};
use hotline::time::Duration;
use serde_json::Value;

fn kinds(sim: &Sim) -> Vec<&'static str> {
    sim.records.iter().map(|r| r.kind).collect()
}

fn record(sim: &Sim) -> Value {
    let Some(r) = sim.records.iter().find(|r| r.kind == "call.record") else {
        panic!("no call.record among {:?}", kinds(sim));
    };
    match serde_json::from_str(&r.body) {
        Ok(v) => v,
        Err(e) => panic!("{e}: {}", r.body),
    }
}

fn assert_one_stream_with_ordered_keys(sim: &Sim) {
    let stream = &sim.records[0].stream;
    for (i, r) in sim.records.iter().enumerate() {
        assert_eq!(&r.stream, stream);
        assert_eq!(r.key, format!("{stream}/{}", i + 1));
    }
}

/// The Call-ID of the first INVITE `from` sent on the wire.
fn invite_call_id(sim: &Sim, from: &str) -> Option<String> {
    let w = sim
        .wire
        .iter()
        .find(|w| w.from.to_string() == from && w.text.starts_with("INVITE "))?;
    w.text
        .lines()
        .find_map(|l| l.strip_prefix("Call-ID: "))
        .map(|v| v.trim().to_owned())
}

#[test]
fn answered_call_hung_up_by_the_caller() {
    let mut sim = Sim::new(71, Plan::answer(Duration::from_secs(2)));
    sim.invite("12345");
    assert!(
        sim.run_until(Duration::from_secs(5), |s| s.uas[0].finals(Method::Invite)
            == vec![200])
    );
    sim.run_for(Duration::from_secs(30));
    sim.bye(0);
    assert!(sim.run_until(Duration::from_secs(10), |s| s.live_calls() == 0));
    sim.run_for(Duration::from_secs(40));

    assert_eq!(
        kinds(&sim),
        ["call.arrived", "call.answered", "call.ended", "call.record"]
    );
    assert_one_stream_with_ordered_keys(&sim);
    let rec = record(&sim);
    assert_eq!(rec["schema"], RECORD_SCHEMA);
    assert_eq!(rec["id"], sim.records[0].stream.as_str());
    assert_eq!(rec["dialled"], "12345");
    assert_eq!(rec["caller"], "13800138000");
    assert_eq!(rec["end"]["by"], "caller");
    assert_eq!(rec["end"]["cause"], "caller_hangup");
    // The Sim's wall clock starts at 13:47:37Z; the INVITE arrives after
    // the simulated network's delay.
    let started = rec["started_at"].as_str().unwrap_or_default();
    assert!(started.starts_with("2026-11-23T13:47:37."), "{rec}");
    let wait = rec["wait_ms"].as_u64().unwrap_or(0);
    let talk = rec["talk_ms"].as_u64().unwrap_or(0);
    assert!((2000..2100).contains(&wait), "{rec}");
    assert!((30_000..30_200).contains(&talk), "{rec}");
    // Both legs' Call-IDs, as they went on the wire.
    let a_call_id = invite_call_id(&sim, CARRIER);
    let b_call_id = sim.uas[1]
        .requests(Method::Invite)
        .first()
        .and_then(|r| r.call_id().map(str::to_owned));
    assert_eq!(rec["legs"][0]["sip_call_id"].as_str(), a_call_id.as_deref());
    assert_eq!(rec["legs"][1]["sip_call_id"].as_str(), b_call_id.as_deref());
    let segments: Vec<&str> = rec["segments"]
        .as_array()
        .map(|a| a.iter().filter_map(|s| s["kind"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        segments,
        ["arrival", "routed", "ringing", "answered", "ended"]
    );
}

#[test]
fn the_callee_hanging_up_is_recorded_as_such() {
    let mut sim = Sim::new(72, Plan::answer(Duration::from_millis(500)));
    sim.invite("12345");
    assert!(
        sim.run_until(Duration::from_secs(5), |s| s.uas[0].finals(Method::Invite)
            == vec![200])
    );
    sim.run_for(Duration::from_secs(1));
    sim.bye(1);
    assert!(sim.run_until(Duration::from_secs(10), |s| s.live_calls() == 0));
    let rec = record(&sim);
    assert_eq!(rec["end"]["by"], "callee");
    assert_eq!(rec["end"]["cause"], "callee_hangup");
}

#[test]
fn a_refused_call_has_a_record_without_answer() {
    let mut sim = Sim::new(73, Plan::reject(486));
    sim.invite("12345");
    assert!(sim.run_until(Duration::from_secs(10), |s| !s.uas[0]
        .finals(Method::Invite)
        .is_empty()));
    sim.run_for(Duration::from_secs(1));
    assert_eq!(kinds(&sim), ["call.arrived", "call.ended", "call.record"]);
    assert_one_stream_with_ordered_keys(&sim);
    let rec = record(&sim);
    assert_eq!(rec["end"]["by"], "callee");
    assert_eq!(rec["end"]["cause"], "rejected");
    assert_eq!(rec["end"]["sip_status"], 486);
    assert_eq!(rec["talk_ms"], 0);
    assert!(rec.get("answered_at").is_none(), "{rec}");
}

#[test]
fn a_cancelled_call_is_recorded_once() {
    let mut sim = Sim::new(74, Plan::never());
    sim.invite("12345");
    assert!(sim.run_until(Duration::from_secs(5), |s| s.uas[0]
        .statuses()
        .contains(&180)));
    sim.cancel();
    assert!(sim.run_until(Duration::from_secs(40), |s| s.live_calls() == 0));
    assert_eq!(kinds(&sim), ["call.arrived", "call.ended", "call.record"]);
    let rec = record(&sim);
    assert_eq!(rec["end"]["by"], "caller");
    assert_eq!(rec["end"]["cause"], "cancelled");
}

#[test]
fn calls_that_were_never_routed_have_no_record() {
    let mut sim = Sim::new(75, Plan::answer(Duration::from_millis(100)));
    sim.invite("99999"); // no route: 404
    sim.run_for(Duration::from_secs(5));
    assert!(sim.records.is_empty(), "{:?}", kinds(&sim));
}

#[test]
fn many_calls_each_get_exactly_one_record_under_loss() {
    let mut sim = Sim::new(76, Plan::answer(Duration::from_millis(300)));
    sim.netem.loss = 0.1;
    for _ in 0..20 {
        sim.invite("12345");
        sim.run_for(Duration::from_millis(50));
    }
    sim.run_for(Duration::from_secs(2));
    for _ in 0..3 {
        sim.bye(0);
        sim.run_for(Duration::from_millis(10));
    }
    sim.run_for(Duration::from_secs(120));
    let mut streams: Vec<&str> = sim.records.iter().map(|r| r.stream.as_str()).collect();
    streams.sort_unstable();
    streams.dedup();
    let sealed = sim
        .records
        .iter()
        .filter(|r| r.kind == "call.record")
        .count();
    assert_eq!(
        sealed,
        streams.len(),
        "one record per call: {:?}",
        kinds(&sim)
    );
    let mut keys: Vec<&str> = sim.records.iter().map(|r| r.key.as_str()).collect();
    let n = keys.len();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), n, "idempotency keys are unique");
    assert_eq!(sim.live_calls(), 0);
}

#[test]
fn every_item_matches_its_json_schema() {
    let mut items = Vec::new();
    for (seed, plan, hang_up) in [
        (81, Plan::answer(Duration::from_millis(300)), true),
        (82, Plan::reject(486), false),
        (83, Plan::never(), false),
    ] {
        let mut sim = Sim::new(seed, plan);
        sim.invite("12345");
        sim.run_for(Duration::from_secs(2));
        if hang_up {
            sim.bye(0);
        }
        sim.run_for(Duration::from_secs(200));
        items.extend(sim.records);
    }
    let mut seen = std::collections::BTreeSet::new();
    for item in &items {
        common::check_item_schema(item);
        seen.insert(item.kind);
    }
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        ["call.answered", "call.arrived", "call.ended", "call.record"]
    );
}
