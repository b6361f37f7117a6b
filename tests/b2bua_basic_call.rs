//! A carrier's call goes through the B2BUA and either side hangs up.
//!
//! Checks: RFC 3261 §13 (INVITE/180/200/ACK), §15.1 (BYE from either
//! side), §12 (separate dialogs per leg); the 100 Trying of §17.2.1 is sent
//! at once. Media is anchored (RFC 3264 offer/answer on each leg): each side
//! sees the gateway's address and ports in SDP, never the other side's, and
//! the media shards are told where each leg's RTP goes.
mod common;
use common::*;
use hotline::media::shard::MediaCommand;
use hotline::media::Codec;
use hotline::sip::msg::Method;
use hotline::sip::sdp;
use hotline::time::Duration;

/// The audio port and connection address of an SDP body.
fn rtp_of(body: &[u8]) -> (String, u16) {
    let d = sdp::parse(body).expect("SDP parses");
    let m = &d.media[0];
    (m.connection.expect("c=").to_string(), m.port)
}

fn opened(sim: &Sim) -> Vec<u16> {
    sim.media_commands()
        .iter()
        .filter_map(|c| match c {
            MediaCommand::Open { leg } => Some(*leg),
            _ => None,
        })
        .collect()
}

#[test]
fn caller_hangs_up_after_answer() {
    let mut sim = Sim::new(1, Plan::answer(Duration::from_secs(2)));
    sim.invite("12345");
    assert!(sim.run_until(Duration::from_secs(10), |s| s.uas[0].acked));
    let st = sim.uas[0].statuses();
    assert_eq!(st.first(), Some(&100), "100 Trying first: {st:?}");
    assert!(st.contains(&180), "ringing relayed: {st:?}");
    assert_eq!(sim.uas[0].finals(Method::Invite), vec![200]);
    // Two legs opened on one shard: A toward the caller, B toward the callee.
    let legs = opened(&sim);
    assert_eq!(legs.len(), 2);
    let (a, b) = (legs[0], legs[1]);
    assert!(a % 2 == 0 && b % 2 == 0, "RTP on even ports: {legs:?}");
    // The destination got OUR offer: our address, the B leg port, PCMA first.
    let invite = sim.uas[1].requests(Method::Invite)[0].clone();
    let text = String::from_utf8_lossy(&invite.body).to_string();
    assert!(
        !text.contains("198.51.100.10"),
        "caller's address leaked: {text}"
    );
    assert_eq!(rtp_of(&invite.body), ("192.0.2.1".to_string(), b));
    assert!(
        text.contains("m=audio") && text.contains(" 8 0 101"),
        "{text}"
    );
    // The caller got OUR answer on the A leg port.
    let ok = sim.uas[0]
        .seen
        .iter()
        .find_map(|s| match s {
            Seen::Response(r) if r.status == 200 => Some(r.clone()),
            _ => None,
        })
        .expect("200");
    assert_eq!(rtp_of(&ok.body), ("192.0.2.1".to_string(), a));
    assert!(!String::from_utf8_lossy(&ok.body).contains("203.0.113.20"));
    // The shards know where each leg sends, and the legs are connected.
    let pa = &sim.leg_params(a)[0];
    assert_eq!(pa.remote, Some("198.51.100.10:40000".parse().unwrap()));
    assert_eq!(
        (pa.codec, pa.voice_pt, pa.event_pt),
        (Codec::Pcma, 8, Some(101))
    );
    assert!(pa.send && pa.recv);
    let pb = &sim.leg_params(b)[0];
    assert_eq!(pb.remote, Some("203.0.113.20:50000".parse().unwrap()));
    assert!(sim
        .media_commands()
        .iter()
        .any(|c| matches!(c, MediaCommand::Connect { a: x, b: y } if (*x, *y) == (a, b))));
    assert!(sim.run_until(Duration::from_secs(2), |s| !s.uas[1]
        .requests(Method::Ack)
        .is_empty()));
    assert_eq!(sim.live_calls(), 1);

    sim.bye(0);
    assert!(sim.run_until(Duration::from_secs(5), |s| s.live_calls() == 0));
    assert_eq!(sim.uas[0].finals(Method::Bye), vec![200]);
    assert_eq!(sim.uas[1].requests(Method::Bye).len(), 1);
    // Both legs closed and their ports back in the pool.
    let closed: Vec<u16> = sim
        .media_commands()
        .iter()
        .filter_map(|c| match c {
            MediaCommand::Close { leg } => Some(*leg),
            _ => None,
        })
        .collect();
    assert_eq!(closed, vec![a, b]);
    assert_eq!(sim.gw.b2bua().media().ports_in_use(), 0);
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
fn early_media_183_with_sdp_is_anchored() {
    let mut plan = Plan::answer(Duration::from_secs(1));
    plan.early_media = true;
    plan.ring = false;
    let mut sim = Sim::new(3, plan);
    sim.invite("12345");
    // Stop at the 183, before the callee answers (1 s later).
    assert!(sim.run_until(Duration::from_secs(5), |s| s.uas[0]
        .statuses()
        .contains(&183)));
    let r183 = sim.uas[0]
        .seen
        .iter()
        .find_map(|s| match s {
            Seen::Response(r) if r.status == 183 => Some(r.clone()),
            _ => None,
        })
        .expect("183 relayed");
    let legs = opened(&sim);
    assert_eq!(rtp_of(&r183.body), ("192.0.2.1".to_string(), legs[0]));
    // Early media flows: the legs are connected already, before any 200,
    // and no ringback was started over it.
    assert!(!sim.uas[0].statuses().contains(&200));
    let cmds = sim.media_commands();
    assert!(
        cmds.iter()
            .any(|c| matches!(c, MediaCommand::Connect { a, b } if (*a, *b) == (legs[0], legs[1]))),
        "{cmds:?}"
    );
    assert!(!cmds.iter().any(|c| matches!(c, MediaCommand::Play { .. })));
    // The answer then carries the same SDP (RFC 3261 §13.2.1).
    assert!(sim.run_until(Duration::from_secs(5), |s| s.uas[0].acked));
    let ok = sim.uas[0]
        .seen
        .iter()
        .find_map(|s| match s {
            Seen::Response(r) if r.status == 200 => Some(r.clone()),
            _ => None,
        })
        .expect("200");
    assert_eq!(ok.body, r183.body);
}

#[test]
fn ringing_without_early_media_plays_ringback_until_answer() {
    let mut sim = Sim::new(5, Plan::answer(Duration::from_secs(2)));
    sim.invite("12345");
    assert!(sim.run_until(Duration::from_secs(5), |s| s.uas[0].acked));
    let legs = opened(&sim);
    // The 180 to the caller carries our answer: in-band ringback follows.
    let r180 = sim.uas[0]
        .seen
        .iter()
        .find_map(|s| match s {
            Seen::Response(r) if r.status == 180 => Some(r.clone()),
            _ => None,
        })
        .expect("180");
    assert_eq!(rtp_of(&r180.body), ("192.0.2.1".to_string(), legs[0]));
    let cmds = sim.media_commands();
    let play = cmds
        .iter()
        .position(|c| matches!(c, MediaCommand::Play { leg, repeat: true, .. } if *leg == legs[0]))
        .expect("ringback played into the A leg");
    let stop = cmds
        .iter()
        .position(|c| matches!(c, MediaCommand::Stop { leg } if *leg == legs[0]))
        .expect("ringback stopped");
    let connect = cmds
        .iter()
        .position(|c| matches!(c, MediaCommand::Connect { .. }))
        .expect("connected");
    assert!(play < stop && stop < connect, "{cmds:?}");
}

#[test]
fn late_offer_sdp_travels_in_the_ack() {
    let mut sim = Sim::new(4, Plan::answer(Duration::from_millis(300)));
    sim.invite_from(0, "12345", None);
    assert!(sim.run_until(Duration::from_secs(5), |s| s.uas[0].acked));
    // The callee got our offer (both codecs) and answered it in its 200:
    // its ACK carries nothing.
    let invite = sim.uas[1].requests(Method::Invite)[0].clone();
    assert!(String::from_utf8_lossy(&invite.body).contains(" 8 0 101"));
    assert!(sim.run_until(Duration::from_secs(2), |s| !s.uas[1]
        .requests(Method::Ack)
        .is_empty()));
    assert!(sim.uas[1].requests(Method::Ack)[0].body.is_empty());
    // The caller got our offer in the 200 (callee's codec first) and
    // answered in its ACK; then the A leg is set and the legs connected.
    let legs = opened(&sim);
    let ok = sim.uas[0]
        .seen
        .iter()
        .find_map(|s| match s {
            Seen::Response(r) if r.status == 200 => Some(r.clone()),
            _ => None,
        })
        .expect("200");
    assert_eq!(rtp_of(&ok.body), ("192.0.2.1".to_string(), legs[0]));
    assert!(sim.run_until(Duration::from_secs(1), |s| !s
        .leg_params(legs[0])
        .is_empty()));
    assert_eq!(
        sim.leg_params(legs[0])[0].remote,
        Some("198.51.100.10:40000".parse().unwrap())
    );
    assert!(sim
        .media_commands()
        .iter()
        .any(|c| matches!(c, MediaCommand::Connect { .. })));
}
