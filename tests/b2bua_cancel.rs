//! CANCEL before answer (RFC 3261 §9): the caller's CANCEL gets 200, its
//! INVITE 487, and the destination gets a CANCEL of its own.
mod common;
use common::*;
use hotline::sip::msg::Method;
use hotline::time::Duration;

#[test]
fn caller_cancel_before_answer() {
    let mut sim = Sim::new(11, Plan::never());
    sim.invite("12345");
    assert!(sim.run_until(Duration::from_secs(5), |s| s.uas[0]
        .statuses()
        .contains(&180)));
    sim.cancel();
    assert!(sim.run_until(Duration::from_secs(10), |s| s.live_calls() == 0));
    // The caller's CANCEL was answered 200 (its transaction layer absorbs
    // that response, so look on the wire).
    assert!(sim
        .wire_between(CARRIER, GW)
        .iter()
        .any(|w| w.from.to_string() == GW
            && w.text.starts_with("SIP/2.0 200")
            && w.text.contains("CANCEL")));
    assert_eq!(sim.uas[0].finals(Method::Invite), vec![487]);
    // The destination saw CANCEL and its 487 was ACKed by the gateway.
    assert!(sim
        .wire_between(GW, DEST)
        .iter()
        .any(|w| w.text.starts_with("CANCEL")));
    assert!(sim
        .wire_between(GW, DEST)
        .iter()
        .any(|w| w.text.starts_with("ACK")));
}

#[test]
fn answer_racing_cancel_is_acked_and_hung_up() {
    // The destination answers just as the caller cancels.
    let mut sim = Sim::new(12, Plan::answer(Duration::from_millis(1000)));
    sim.netem.delay = Duration::from_millis(40);
    sim.invite("12345");
    assert!(sim.run_until(Duration::from_secs(5), |s| s.elapsed()
        >= Duration::from_millis(990)));
    sim.cancel();
    assert!(sim.run_until(Duration::from_secs(40), |s| !s.uas[0]
        .finals(Method::Invite)
        .is_empty()));
    sim.run_for(Duration::from_secs(1));
    // Whatever won, exactly one final reached the caller and nothing dangles.
    let finals = sim.uas[0].finals(Method::Invite);
    assert_eq!(finals.len(), 1, "{finals:?}");
    if finals[0] == 200 {
        // The answer won (RFC 3261 §9.2: a CANCEL after the final has no
        // effect): a normal call that ends with BYE.
        sim.bye(0);
    } else {
        assert_eq!(finals[0], 487);
        let b_answered = sim
            .wire_between(GW, DEST)
            .iter()
            .any(|w| w.text.starts_with("SIP/2.0 200") && w.text.contains("INVITE"));
        if b_answered {
            assert!(sim.run_until(Duration::from_secs(10), |s| s.uas[1]
                .requests(Method::Bye)
                .len()
                == 1));
        }
    }
    assert!(sim.run_until(Duration::from_secs(40), |s| s.live_calls() == 0));
}
