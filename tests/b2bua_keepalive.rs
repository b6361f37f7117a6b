//! Trunk OPTIONS keepalive in the Sim (virtual time): a trunk with an
//! `outbound` address is pinged every `keepalive_secs`, goes up on the
//! first answer and down after two pings in a row time out (Timer F,
//! 64·T1 = 32 s each).

mod common;

use common::{sim_config_with_trunk, Plan, Sim, GW};
use hotline::sip::msg::Method;
use hotline::time::Duration;

/// Where the carrier takes our requests (outside the trunk's sources is
/// fine: only the destination matters).
const OUTBOUND: &str = "198.51.100.20:5060";

fn sim(seed: u64, keepalive_secs: u64) -> (Sim, usize) {
    let config = sim_config_with_trunk(
        &format!("outbound = \"{OUTBOUND}\"\nkeepalive_secs = {keepalive_secs}"),
        "",
    );
    let mut sim = Sim::with_config(seed, Plan::answer(Duration::from_millis(100)), config);
    // A UA answers every OPTIONS with 200 (see `Ua::on_request`).
    let sbc = sim.add_ua("sbc", OUTBOUND, Plan::never());
    (sim, sbc)
}

fn options_sent(sim: &Sim) -> usize {
    sim.wire_between(GW, OUTBOUND)
        .iter()
        .filter(|w| w.text.starts_with("OPTIONS "))
        .count()
}

#[test]
fn pinged_every_interval_up_then_down_after_two_timeouts() {
    for seed in [1, 7, 42] {
        let (mut sim, sbc) = sim(seed, 30);
        assert_eq!(
            sim.gw.b2bua().trunk_up("carrier"),
            None,
            "unknown before the first answer"
        );
        sim.run_for(Duration::from_secs(100));
        let received = sim.uas[sbc].requests(Method::Options).len();
        // First ping within 3 s of start, then every 27-33 s: 3 or 4 in 100 s.
        assert!(
            (3..=4).contains(&received),
            "seed {seed}: {received} OPTIONS in 100 s"
        );
        assert_eq!(options_sent(&sim), received, "no retransmissions needed");
        assert_eq!(
            sim.gw.b2bua().trunk_up("carrier"),
            Some(true),
            "seed {seed}"
        );

        // What a ping looks like on the wire.
        let first = &sim.uas[sbc].requests(Method::Options)[0];
        assert_eq!(first.uri, format!("sip:{OUTBOUND}"));
        let from = first.headers.get_named("From").unwrap_or_default();
        assert!(from.starts_with("<sip:hotline@192.0.2.1>;tag="), "{from}");
        assert_eq!(
            first.headers.get_named("To"),
            Some(format!("<sip:{OUTBOUND}>").as_str())
        );
        assert_eq!(first.headers.get_named("Max-Forwards"), Some("70"));
        assert_eq!(
            first.headers.get_named("User-Agent"),
            Some("Hotline-Gateway")
        );

        // The carrier goes silent: its datagrams are lost from now on.
        sim.uas.remove(sbc);
        let silent_at = sim.now;
        let sent_before = options_sent(&sim);
        // One timeout is not enough to go down (hysteresis).
        sim.run_for(Duration::from_secs(40));
        assert_eq!(
            sim.gw.b2bua().trunk_up("carrier"),
            Some(true),
            "seed {seed}: down after a single failure"
        );
        let down = sim.run_until(Duration::from_secs(200), |s| {
            s.gw.b2bua().trunk_up("carrier") == Some(false)
        });
        assert!(
            down,
            "seed {seed}: still up 240 s after the carrier went silent"
        );
        let took = sim.now - silent_at;
        // Two pings, each unanswered for Timer F (32 s), one after the other.
        assert!(
            took >= Duration::from_secs(64) && took <= Duration::from_secs(140),
            "seed {seed}: down after {took:?}"
        );
        let since = options_sent(&sim) - sent_before;
        assert!(
            since >= 2,
            "seed {seed}: {since} OPTIONS (with retransmissions) since silence"
        );
    }
}

#[test]
fn comes_back_up_on_the_first_answer() {
    let (mut sim, sbc) = sim(3, 10);
    sim.uas.remove(sbc);
    assert!(sim.run_until(Duration::from_secs(200), |s| {
        s.gw.b2bua().trunk_up("carrier") == Some(false)
    }));
    // The carrier is back: the next ping's answer brings the trunk up.
    sim.add_ua("sbc", OUTBOUND, Plan::never());
    let back_at = sim.now;
    assert!(sim.run_until(Duration::from_secs(60), |s| {
        s.gw.b2bua().trunk_up("carrier") == Some(true)
    }));
    // At most one ping was still waiting for Timer F; the next is sent
    // within an interval (+10 %) after that.
    assert!(sim.now - back_at <= Duration::from_secs(32 + 12));
}

#[test]
fn calls_still_flow_and_trunks_without_outbound_are_not_pinged() {
    let (mut sim, _) = sim(5, 1);
    sim.invite("12345");
    assert!(sim.run_until(Duration::from_secs(5), |s| s
        .uas
        .first()
        .is_some_and(|c| c.finals(Method::Invite).contains(&200))));
    sim.run_for(Duration::from_secs(10));
    // keepalive_secs = 1: about ten pings, each answered.
    let n = options_sent(&sim);
    assert!((9..=13).contains(&n), "{n} OPTIONS in ~11 s");
    assert_eq!(sim.gw.b2bua().trunk_up("carrier"), Some(true));
    // Nothing but the call went to the carrier's own address or the phone.
    for peer in [common::CARRIER, common::DEST] {
        assert!(
            sim.wire_between(GW, peer)
                .iter()
                .all(|w| !w.text.starts_with("OPTIONS ")),
            "an OPTIONS went to {peer}"
        );
    }

    // Without outbound: no keepalive at all, state unknown forever.
    let mut plain = Sim::new(5, Plan::answer(Duration::from_millis(100)));
    plain.run_for(Duration::from_secs(100));
    assert!(plain.wire.iter().all(|w| !w.text.starts_with("OPTIONS ")));
    assert_eq!(plain.gw.b2bua().trunk_up("carrier"), None);
}
