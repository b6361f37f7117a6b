//! Graceful shutdown (CONVENTIONS §11): once draining, new INVITEs get 503
//! with Retry-After while live calls go on to their natural end.
mod common;
use common::*;
use hotline::gateway::Input;
use hotline::sip::msg::Method;
use hotline::time::Duration;

#[test]
fn draining_refuses_new_calls_and_keeps_live_ones() {
    let mut sim = Sim::new(51, Plan::answer(Duration::from_millis(100)));
    sim.invite("12345");
    assert!(sim.run_until(Duration::from_secs(5), |s| s.uas[0].acked));
    sim.input(Input::Drain);
    assert!(sim.gw.is_draining());
    // A second caller is refused.
    let c2 = sim.add_ua("carrier2", "198.51.100.11:5060", Plan::never());
    sim.invite_from(c2, "12345", Some(SDP_OFFER));
    assert!(sim.run_until(Duration::from_secs(5), |s| !s.uas[c2]
        .finals(Method::Invite)
        .is_empty()));
    assert_eq!(sim.uas[c2].finals(Method::Invite), vec![503]);
    // The live call is untouched and ends normally.
    assert_eq!(sim.live_calls(), 1);
    sim.bye(0);
    assert!(sim.run_until(Duration::from_secs(5), |s| s.live_calls() == 0));
}
