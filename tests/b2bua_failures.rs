//! Failures on the B leg are mapped sensibly for the caller, and the
//! gateway's own refusals (no route, unknown source, draining) are clear.
//!
//! 486/404/480 pass through; 5xx become 502 (a carrier must not fail over
//! away from a healthy gateway because a destination is down); no answer
//! within `sip.ring_timeout` → 480 and CANCEL to the destination; no
//! response at all (RFC 3261 §17.1.1.2 Timer B) → 504.
mod common;
use common::*;
use hotline::sip::msg::Method;
use hotline::time::Duration;

fn final_for(plan: Plan, number: &str) -> (Sim, Vec<u16>) {
    let mut sim = Sim::new(21, plan);
    sim.invite(number);
    sim.run_until(Duration::from_secs(100), |s| {
        !s.uas[0].finals(Method::Invite).is_empty()
    });
    let f = sim.uas[0].finals(Method::Invite);
    (sim, f)
}

#[test]
fn busy_486_passes_through() {
    assert_eq!(final_for(Plan::reject(486), "12345").1, vec![486]);
}

#[test]
fn not_found_404_passes_through() {
    assert_eq!(final_for(Plan::reject(404), "12345").1, vec![404]);
}

#[test]
fn unavailable_480_passes_through() {
    assert_eq!(final_for(Plan::reject(480), "12345").1, vec![480]);
}

#[test]
fn destination_503_becomes_502() {
    assert_eq!(final_for(Plan::reject(503), "12345").1, vec![502]);
}

#[test]
fn destination_407_is_not_passed_to_the_carrier() {
    assert_eq!(final_for(Plan::reject(407), "12345").1, vec![480]);
}

#[test]
fn unknown_number_gets_404_without_a_b_leg() {
    let (sim, f) = final_for(Plan::answer(Duration::ZERO), "99999");
    assert_eq!(f, vec![404]);
    assert!(sim.wire_between(GW, DEST).is_empty());
}

#[test]
fn no_answer_within_ring_timeout_gets_480_and_cancel() {
    let cfg = sim_config("").clone();
    let mut cfg = cfg;
    cfg.sip.ring_timeout = Duration::from_secs(8);
    let mut sim = Sim::with_config(22, Plan::never(), cfg);
    sim.invite("12345");
    assert!(sim.run_until(Duration::from_secs(30), |s| !s.uas[0]
        .finals(Method::Invite)
        .is_empty()));
    assert_eq!(sim.uas[0].finals(Method::Invite), vec![480]);
    let t = sim.elapsed();
    assert!(
        t >= Duration::from_secs(8) && t < Duration::from_secs(9),
        "{t:?}"
    );
    assert!(sim.run_until(Duration::from_secs(40), |s| s.live_calls() == 0));
    assert!(sim
        .wire_between(GW, DEST)
        .iter()
        .any(|w| w.text.starts_with("CANCEL")));
}

#[test]
fn silent_destination_times_out_with_504_after_timer_b() {
    let mut sim = Sim::new(23, Plan::silent());
    // A destination that is not there at all: nothing answers, not even 100.
    sim.uas.remove(1);
    sim.invite("12345");
    assert!(sim.run_until(Duration::from_secs(70), |s| !s.uas[0]
        .finals(Method::Invite)
        .is_empty()));
    assert_eq!(sim.uas[0].finals(Method::Invite), vec![504]);
    // Timer B = 64*T1 = 32 s.
    let t = sim.elapsed();
    assert!(
        t >= Duration::from_secs(32) && t < Duration::from_secs(34),
        "{t:?}"
    );
    // INVITE retransmitted over UDP (Timer A): 1 + 6 sends in 32 s.
    let sends = sim
        .wire
        .iter()
        .filter(|w| w.from.to_string() == GW && w.text.starts_with("INVITE"))
        .count();
    assert_eq!(sends, 7);
}

#[test]
fn stranger_is_refused_403() {
    let mut sim = Sim::new(24, Plan::answer(Duration::ZERO));
    let s = sim.add_ua("stranger", STRANGER, Plan::never());
    sim.invite_from(s, "12345", Some(SDP_OFFER));
    assert!(sim.run_until(Duration::from_secs(5), |s2| !s2.uas[s]
        .finals(Method::Invite)
        .is_empty()));
    assert_eq!(sim.uas[s].finals(Method::Invite), vec![403]);
    assert!(sim.wire_between(GW, DEST).is_empty());
}

#[test]
fn stranger_is_dropped_silently_when_configured() {
    let mut cfg = sim_config("");
    cfg.sip.unknown_source = hotline::config::UnknownSource::Drop;
    let mut sim = Sim::with_config(25, Plan::answer(Duration::ZERO), cfg);
    let s = sim.add_ua("stranger", STRANGER, Plan::never());
    sim.invite_from(s, "12345", Some(SDP_OFFER));
    sim.run_for(Duration::from_secs(40));
    assert!(
        sim.uas[s].statuses().is_empty(),
        "no answer at all, not even 100"
    );
    assert!(sim.uas[s].timed_out());
    assert!(sim.gw.dropped().get("unknown_source").copied().unwrap_or(0) >= 1);
}
