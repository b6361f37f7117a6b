//! OPTIONS out of dialog is answered by the gateway itself (carriers ping
//! trunks with it; RFC 3261 §11.2), with Allow and Accept; it is not
//! forwarded. Methods we do not implement get 405 with Allow.
mod common;
use common::*;
use hotline::sip::msg::{Hdr, Method, SipHeaders};
use hotline::time::Duration;

#[test]
fn options_answered_200_locally() {
    let mut sim = Sim::new(41, Plan::answer(Duration::ZERO));
    sim.request_from(0, Method::Options);
    assert!(sim.run_until(Duration::from_secs(2), |s| !s.uas[0]
        .finals(Method::Options)
        .is_empty()));
    assert_eq!(sim.uas[0].finals(Method::Options), vec![200]);
    let resp = sim.uas[0].seen.iter().find_map(|s| match s {
        Seen::Response(r) if r.status == 200 => Some(r.clone()),
        _ => None,
    });
    let resp = resp.expect("200");
    assert!(resp
        .headers
        .get(Hdr::Allow)
        .is_some_and(|a| a.contains("INVITE")));
    assert!(resp.to_tag().is_some());
    assert!(sim.wire_between(GW, DEST).is_empty());
}

#[test]
fn out_of_dialog_bye_gets_481() {
    let mut sim = Sim::new(42, Plan::answer(Duration::ZERO));
    sim.request_from(0, Method::Bye);
    assert!(sim.run_until(Duration::from_secs(2), |s| !s.uas[0]
        .finals(Method::Bye)
        .is_empty()));
    assert_eq!(sim.uas[0].finals(Method::Bye), vec![481]);
}

#[test]
fn subscribe_gets_405_with_allow() {
    let mut sim = Sim::new(43, Plan::answer(Duration::ZERO));
    sim.request_from(0, Method::Subscribe);
    assert!(sim.run_until(Duration::from_secs(2), |s| !s.uas[0]
        .finals(Method::Subscribe)
        .is_empty()));
    assert_eq!(sim.uas[0].finals(Method::Subscribe), vec![405]);
}
