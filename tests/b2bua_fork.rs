//! Forking downstream (RFC 3261 §13.2.2.4): when a second branch answers
//! the gateway's INVITE after the first 2xx was taken, that callee is
//! off-hook; the gateway ACKs its 2xx and hangs it up with a BYE, and the
//! call that was taken goes on untouched.
mod common;
use common::*;
use hotline::time::Duration;

/// The destination's 200 to the gateway's INVITE, as it went on the wire.
fn dest_200(sim: &Sim) -> String {
    match sim.wire_between(DEST, GW).iter().find(|w| {
        w.from.to_string() == DEST && w.text.starts_with("SIP/2.0 200") && w.text.contains("INVITE")
    }) {
        Some(w) => w.text.clone(),
        None => panic!("the destination never answered"),
    }
}

/// The same 200 as if another branch (a different To tag) sent it.
fn from_another_branch(ok: &str) -> String {
    let mut out = String::new();
    for line in ok.split_inclusive("\r\n") {
        if line.starts_with("To:") || line.starts_with("t:") {
            let base = line.split(";tag=").next().unwrap_or(line).trim_end();
            out.push_str(&format!("{base};tag=fork-branch-2\r\n"));
        } else {
            out.push_str(line);
        }
    }
    out
}

#[test]
fn second_2xx_from_a_fork_is_acked_and_hung_up() {
    let mut sim = Sim::new(41, Plan::answer(Duration::from_millis(200)));
    sim.invite("12345");
    assert!(sim.run_until(Duration::from_secs(5), |s| s.uas[0]
        .finals(hotline::sip::msg::Method::Invite)
        == vec![200]));
    sim.run_for(Duration::from_millis(100));
    let forked = from_another_branch(&dest_200(&sim));
    sim.send_raw(DEST, forked.as_bytes());
    sim.run_for(Duration::from_secs(2));

    let to_fork: Vec<_> = sim
        .wire_between(GW, DEST)
        .into_iter()
        .filter(|w| w.from.to_string() == GW && w.text.contains("tag=fork-branch-2"))
        .map(|w| w.text.lines().next().unwrap_or_default().to_string())
        .collect();
    assert!(to_fork.iter().any(|l| l.starts_with("ACK ")), "{to_fork:?}");
    assert!(to_fork.iter().any(|l| l.starts_with("BYE ")), "{to_fork:?}");
    // The call that was taken is still up.
    assert_eq!(sim.live_calls(), 1);
    assert_eq!(sim.gw.b2bua().stats().forks_released, 1);
    // A retransmission of the fork's 2xx does not start a second release.
    sim.send_raw(DEST, forked.as_bytes());
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.gw.b2bua().stats().forks_released, 1);
    assert_eq!(sim.live_calls(), 1);
}

#[test]
fn a_fork_answering_after_the_call_ended_is_released_too() {
    let mut sim = Sim::new(42, Plan::answer(Duration::from_millis(200)));
    sim.invite("12345");
    assert!(
        sim.run_until(Duration::from_secs(5), |s| s.live_calls() == 1
            && s.uas[0].finals(hotline::sip::msg::Method::Invite) == vec![200])
    );
    sim.run_for(Duration::from_millis(100));
    let forked = from_another_branch(&dest_200(&sim));
    sim.bye(0);
    assert!(sim.run_until(Duration::from_secs(10), |s| s.live_calls() == 0));
    sim.send_raw(DEST, forked.as_bytes());
    sim.run_for(Duration::from_secs(2));
    assert!(sim
        .wire_between(GW, DEST)
        .iter()
        .any(|w| w.from.to_string() == GW
            && w.text.starts_with("BYE ")
            && w.text.contains("tag=fork-branch-2")));
    assert_eq!(sim.gw.b2bua().stats().forks_released, 1);
}
