//! re-INVITE (hold/unhold) is relayed across the B2BUA in both directions
//! (RFC 3261 §14), and a second re-INVITE while one is pending gets 491.
mod common;
use common::*;
use hotline::sip::msg::Method;
use hotline::time::Duration;

fn answered(seed: u64) -> Sim {
    let mut sim = Sim::new(seed, Plan::answer(Duration::from_millis(100)));
    sim.invite("12345");
    assert!(sim.run_until(Duration::from_secs(5), |s| s.uas[0].acked));
    assert!(sim.run_until(Duration::from_secs(2), |s| !s.uas[1]
        .requests(Method::Ack)
        .is_empty()));
    sim
}

#[test]
fn caller_hold_and_unhold_reach_the_destination() {
    let mut sim = answered(31);
    sim.reinvite(0, &SDP_OFFER.replace("a=sendrecv", "a=sendonly"));
    assert!(sim.run_until(Duration::from_secs(5), |s| s.uas[0]
        .finals(Method::Invite)
        .len()
        == 2));
    assert_eq!(sim.uas[0].finals(Method::Invite), vec![200, 200]);
    let reinv = sim.uas[1].requests(Method::Invite);
    assert_eq!(reinv.len(), 2);
    assert!(String::from_utf8_lossy(&reinv[1].body).contains("a=sendonly"));
    // The answer (recvonly) came back to the caller.
    let last200 = sim.uas[0].seen.iter().rev().find_map(|s| match s {
        Seen::Response(r) if r.status == 200 => Some(r.clone()),
        _ => None,
    });
    assert!(String::from_utf8_lossy(&last200.expect("200").body).contains("a=recvonly"));
    // The destination got the ACK for the re-INVITE.
    assert!(sim.run_until(Duration::from_secs(2), |s| s.uas[1]
        .requests(Method::Ack)
        .len()
        == 2));

    sim.reinvite(0, SDP_OFFER);
    assert!(sim.run_until(Duration::from_secs(5), |s| s.uas[0]
        .finals(Method::Invite)
        .len()
        == 3));
    let reinv = sim.uas[1].requests(Method::Invite);
    assert!(String::from_utf8_lossy(&reinv[2].body).contains("a=sendrecv"));
    sim.bye(1);
    assert!(sim.run_until(Duration::from_secs(5), |s| s.live_calls() == 0));
}

#[test]
fn destination_reinvite_reaches_the_caller() {
    let mut sim = answered(32);
    sim.reinvite(1, &SDP_ANSWER.replace("a=sendrecv", "a=sendonly"));
    assert!(
        sim.run_until(Duration::from_secs(5), |s| s.uas[1].finals(Method::Invite)
            == vec![200])
    );
    let reinv = sim.uas[0].requests(Method::Invite);
    assert_eq!(reinv.len(), 1);
    assert!(String::from_utf8_lossy(&reinv[0].body).contains("a=sendonly"));
}
