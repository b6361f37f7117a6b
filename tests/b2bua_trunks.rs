//! Per-trunk admission and number normalisation (issue 4, "Trunks"), in
//! virtual time.
//!
//! - `max_cps`: a token bucket (burst = `max_cps`, refilled continuously);
//!   an INVITE finding no token gets 503 with `Retry-After: 1` and
//!   `Reason: SIP;cause=503;text="Trunk rate limit"`, before any routing:
//!   nothing reaches the destination, no call record is started.
//! - `max_calls`: an INVITE beyond the trunk's live calls gets 503 with
//!   `Retry-After: 5` and `text="Trunk call limit"`; the slot comes back
//!   exactly once when the call ends, or at once when the admitted INVITE
//!   is refused for another reason (no route, a callee's failure).
//! - `numbers`: "+862012345", "02012345", "020-12345" and "12345" all
//!   reach route 12345; the destination and the call record see the
//!   normalised number; an unknown number still gets 404.
mod common;
use common::*;
use hotline::sip::msg::Method;
use hotline::time::Duration;

/// The gateway's 503s to the carrier, as wire text.
fn refusals(sim: &Sim) -> Vec<String> {
    sim.wire_between(GW, CARRIER)
        .into_iter()
        .filter(|w| w.from.to_string() == GW && w.text.starts_with("SIP/2.0 503"))
        .map(|w| w.text.clone())
        .collect()
}

fn count(finals: &[u16], status: u16) -> usize {
    finals.iter().filter(|s| **s == status).count()
}

/// Run until the carrier has `n` final answers to its INVITEs.
fn until_finals(sim: &mut Sim, n: usize) {
    assert!(
        sim.run_until(Duration::from_secs(5), |s| s.uas[0]
            .finals(Method::Invite)
            .len()
            >= n),
        "finals: {:?}",
        sim.uas[0].finals(Method::Invite)
    );
}

/// (calls that reached the callee, INVITEs refused with 503) once `n`
/// INVITEs have been dealt with one way or the other.
fn admitted_and_refused(sim: &mut Sim, n: usize) -> (usize, usize) {
    let tally = |s: &Sim| {
        (
            s.uas[1].requests(Method::Invite).len(),
            count(&s.uas[0].finals(Method::Invite), 503),
        )
    };
    let done = sim.run_until(Duration::from_secs(5), |s| {
        let (a, r) = tally(s);
        a + r >= n
    });
    assert!(done, "{:?}", tally(sim));
    tally(sim)
}

#[test]
fn invites_over_max_cps_get_503_retry_after_1_then_pass_a_second_later() {
    let config = sim_config_with_trunk("max_cps = 2", "");
    // The callee rings for ever: admitted calls stay up (no max_calls here).
    let mut sim = Sim::with_config(61, Plan::never(), config);
    let t0 = sim.elapsed();
    for _ in 0..5 {
        sim.invite("12345");
    }
    assert_eq!(admitted_and_refused(&mut sim, 5), (2, 3));
    // All five arrived at the same virtual instant.
    let arrivals: Vec<_> = sim
        .wire_between(CARRIER, GW)
        .iter()
        .filter(|w| w.from.to_string() == CARRIER && w.text.starts_with("INVITE"))
        .map(|w| w.at)
        .collect();
    assert_eq!(arrivals.len(), 5);
    assert!(arrivals.windows(2).all(|w| w[0] == w[1]), "{arrivals:?}");

    let refused = refusals(&sim);
    assert_eq!(refused.len(), 3);
    for text in &refused {
        assert_eq!(
            Sim::header(text, "Retry-After").as_deref(),
            Some("1"),
            "{text}"
        );
        assert_eq!(
            Sim::header(text, "Reason").as_deref(),
            Some("SIP;cause=503;text=\"Trunk rate limit\""),
            "{text}"
        );
    }
    // Refused before routing: only the two admitted calls started a call
    // and a record.
    assert_eq!(sim.gw.b2bua().stats().calls_started, 2);
    let arrived = sim
        .records
        .iter()
        .filter(|r| r.kind == "call.arrived")
        .count();
    assert_eq!(arrived, 2);

    // Half a second on: one token is back; one call passes, the next not.
    sim.run_for((t0 + Duration::from_millis(500)).saturating_sub(sim.elapsed()));
    sim.invite("12345");
    sim.invite("12345");
    assert_eq!(admitted_and_refused(&mut sim, 7), (3, 4));

    // A second after that: the bucket holds its whole burst again, no more.
    sim.run_for(Duration::from_secs(1));
    for _ in 0..3 {
        sim.invite("12345");
    }
    assert_eq!(admitted_and_refused(&mut sim, 10), (5, 5));
    assert_eq!(sim.gw.b2bua().trunk_calls("carrier"), 5);
    assert_eq!(sim.live_calls(), 5);
}

#[test]
fn a_second_call_over_max_calls_gets_503_until_the_first_ends() {
    let config = sim_config_with_trunk("max_calls = 1", "");
    let mut sim = Sim::with_config(62, Plan::answer(Duration::from_millis(100)), config);
    sim.invite("12345");
    assert!(sim.run_until(Duration::from_secs(5), |s| s.uas[0].acked));
    assert_eq!(sim.gw.b2bua().trunk_calls("carrier"), 1);

    sim.invite("12345");
    until_finals(&mut sim, 2);
    assert_eq!(sim.uas[0].finals(Method::Invite), vec![200, 503]);
    let refused = refusals(&sim);
    assert_eq!(refused.len(), 1);
    assert_eq!(
        Sim::header(&refused[0], "Retry-After").as_deref(),
        Some("5")
    );
    assert_eq!(
        Sim::header(&refused[0], "Reason").as_deref(),
        Some("SIP;cause=503;text=\"Trunk call limit\"")
    );
    assert_eq!(sim.uas[1].requests(Method::Invite).len(), 1);
    assert_eq!(sim.live_calls(), 1);

    // The callee hangs up: the slot comes back (once), a new call passes.
    sim.bye(1);
    assert!(sim.run_until(Duration::from_secs(5), |s| s.live_calls() == 0));
    assert_eq!(sim.gw.b2bua().trunk_calls("carrier"), 0);
    sim.run_for(Duration::from_secs(40));
    assert_eq!(sim.gw.b2bua().trunk_calls("carrier"), 0);
    sim.invite("12345");
    until_finals(&mut sim, 3);
    assert_eq!(sim.uas[0].finals(Method::Invite), vec![200, 503, 200]);
    assert_eq!(sim.gw.b2bua().trunk_calls("carrier"), 1);
}

#[test]
fn refused_and_failed_calls_give_their_slot_back() {
    let config = sim_config_with_trunk("max_calls = 1", "");
    // The callee is busy: each call fails with 486 after admission.
    let mut sim = Sim::with_config(63, Plan::reject(486), config);
    sim.invite("12345");
    until_finals(&mut sim, 1);
    // No route: admitted, then refused with 404.
    sim.invite("99999");
    until_finals(&mut sim, 2);
    // A late-offer call (no SDP in the INVITE), busy too.
    sim.invite_from(0, "12345", None);
    until_finals(&mut sim, 3);
    sim.invite("12345");
    until_finals(&mut sim, 4);
    assert_eq!(sim.uas[0].finals(Method::Invite), vec![486, 404, 486, 486]);
    assert!(refusals(&sim).is_empty());
    assert!(sim.run_until(Duration::from_secs(40), |s| s.live_calls() == 0));
    assert_eq!(sim.gw.b2bua().trunk_calls("carrier"), 0);
}

const GUANGZHOU: &str = r#"numbers = [
  { prefix = "+86", replace = "0" },
  { prefix = "0086", replace = "0" },
  { prefix = "020", replace = "" },
]"#;

#[test]
fn national_and_area_code_forms_reach_route_12345() {
    for (seed, dialled) in [
        (64, "+862012345"),
        (65, "02012345"),
        (66, "020-12345"),
        (67, "+86(20)12345"),
        (68, "00862012345"),
        (69, "12345"),
    ] {
        let config = sim_config_with_trunk(GUANGZHOU, "");
        let mut sim = Sim::with_config(seed, Plan::answer(Duration::ZERO), config);
        sim.invite(dialled);
        until_finals(&mut sim, 1);
        assert_eq!(sim.uas[0].finals(Method::Invite), vec![200], "{dialled}");
        // The callee and the record see the normalised number.
        let invites = sim.uas[1].requests(Method::Invite);
        let uri = invites[0].request_uri().ok().and_then(|u| u.user);
        assert_eq!(uri.as_deref(), Some("12345"), "{dialled}");
        let to = invites[0]
            .headers
            .get(hotline::sip::msg::Hdr::To)
            .unwrap_or_default();
        assert!(to.contains("sip:12345@"), "{dialled}: To {to}");
        let arrived = sim
            .records
            .iter()
            .find(|r| r.kind == "call.arrived")
            .map(|r| r.body.clone())
            .unwrap_or_default();
        assert!(
            arrived.contains("\"dialled\":\"12345\""),
            "{dialled}: {arrived}"
        );
        let cid = sim.gw.b2bua().call_ids().next();
        let call = cid.and_then(|id| sim.gw.b2bua().call(id));
        assert_eq!(call.map(|c| c.dialled.as_str()), Some("12345"), "{dialled}");
    }
}

#[test]
fn unknown_numbers_still_get_404_after_normalisation() {
    for (seed, dialled) in [
        (70, "99999"),
        (71, "+862099999"),
        (72, "075512345"),
        (73, "020"),
    ] {
        let config = sim_config_with_trunk(GUANGZHOU, "");
        let mut sim = Sim::with_config(seed, Plan::answer(Duration::ZERO), config);
        sim.invite(dialled);
        until_finals(&mut sim, 1);
        assert_eq!(sim.uas[0].finals(Method::Invite), vec![404], "{dialled}");
        assert!(sim.wire_between(GW, DEST).is_empty(), "{dialled}");
    }
}

#[test]
fn separators_are_removed_even_without_rules() {
    let mut sim = Sim::new(74, Plan::answer(Duration::ZERO));
    sim.invite("123-45");
    until_finals(&mut sim, 1);
    assert_eq!(sim.uas[0].finals(Method::Invite), vec![200]);
    // But without rules, +86 is not taken off.
    let mut sim = Sim::new(75, Plan::answer(Duration::ZERO));
    sim.invite("+8612345");
    until_finals(&mut sim, 1);
    assert_eq!(sim.uas[0].finals(Method::Invite), vec![404]);
}
