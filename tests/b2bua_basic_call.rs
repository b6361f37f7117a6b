//! A carrier's call goes through the B2BUA and either side hangs up.
//!
//! Checks: RFC 3261 §13 (INVITE/180/200/ACK), §15.1 (BYE from either
//! side), §12 (separate dialogs per leg); the 100 Trying of §17.2.1 is sent
//! at once; SDP crosses unchanged (media anchoring comes with the media
//! plane).
mod common;
use common::*;
use hotline::sip::msg::Method;
use hotline::time::Duration;

#[test]
fn caller_hangs_up_after_answer() {
    let mut sim = Sim::new(1, Plan::answer(Duration::from_secs(2)));
    sim.invite("12345");
    assert!(sim.run_until(Duration::from_secs(10), |s| s.uas[0].acked));
    let st = sim.uas[0].statuses();
    assert_eq!(st.first(), Some(&100), "100 Trying first: {st:?}");
    assert!(st.contains(&180), "ringing relayed: {st:?}");
    assert_eq!(sim.uas[0].finals(Method::Invite), vec![200]);
    // The destination got the caller's SDP unchanged and the caller got the answer.
    let invite = sim.uas[1].requests(Method::Invite)[0].clone();
    assert_eq!(&invite.body[..], SDP_OFFER.as_bytes());
    assert!(sim.run_until(Duration::from_secs(2), |s| !s.uas[1]
        .requests(Method::Ack)
        .is_empty()));
    assert_eq!(sim.live_calls(), 1);

    sim.bye(0);
    assert!(sim.run_until(Duration::from_secs(5), |s| s.live_calls() == 0));
    assert_eq!(sim.uas[0].finals(Method::Bye), vec![200]);
    assert_eq!(sim.uas[1].requests(Method::Bye).len(), 1);
}

#[test]
fn callee_hangs_up_after_answer() {
    let mut plan = Plan::answer(Duration::from_millis(500));
    plan.bye_after = Some(Duration::from_secs(3));
    let mut sim = Sim::new(2, plan);
    sim.invite("12345");
    assert!(sim.run_until(Duration::from_secs(10), |s| !s.uas[0]
        .requests(Method::Bye)
        .is_empty()));
    assert!(sim.run_until(Duration::from_secs(5), |s| s.live_calls() == 0));
    assert_eq!(sim.uas[1].finals(Method::Bye), vec![200]);
}

#[test]
fn early_media_183_with_sdp_is_relayed() {
    let mut plan = Plan::answer(Duration::from_secs(1));
    plan.early_media = true;
    let mut sim = Sim::new(3, plan);
    sim.invite("12345");
    assert!(sim.run_until(Duration::from_secs(5), |s| s.uas[0].acked));
    let r183 = sim.uas[0]
        .seen
        .iter()
        .find_map(|s| match s {
            Seen::Response(r) if r.status == 183 => Some(r.clone()),
            _ => None,
        })
        .expect("183 relayed");
    assert_eq!(&r183.body[..], SDP_ANSWER.as_bytes());
}

#[test]
fn late_offer_sdp_travels_in_the_ack() {
    let mut sim = Sim::new(4, Plan::answer(Duration::from_millis(300)));
    sim.invite_from(0, "12345", None);
    assert!(sim.run_until(Duration::from_secs(5), |s| s.uas[0].acked));
    // The caller's ACK had no body in this Sim UA, so the B-leg ACK is sent
    // after the caller's ACK arrives (not before).
    assert!(sim.run_until(Duration::from_secs(2), |s| !s.uas[1]
        .requests(Method::Ack)
        .is_empty()));
    let a_ack_at = sim
        .wire_between(CARRIER, GW)
        .into_iter()
        .find(|w| w.from.to_string() == CARRIER && w.text.starts_with("ACK"))
        .map(|w| w.at)
        .expect("caller ACK");
    let b_ack_at = sim
        .wire_between(GW, DEST)
        .into_iter()
        .find(|w| w.text.starts_with("ACK"))
        .map(|w| w.at)
        .expect("B ACK");
    assert!(b_ack_at >= a_ack_at);
}
