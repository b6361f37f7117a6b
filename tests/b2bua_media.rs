//! Media anchoring seen from the signalling core, in virtual time: what the
//! caller is told when its call cannot have media (488 + Warning, 415, 503
//! when the port pool is empty), what the media plane's reports do to a
//! call (RTP timeout, a port that cannot be bound), hold across the legs,
//! and DTMF by SIP INFO (consumed, reported once even when RFC 4733 reports
//! the same press).
mod common;
use common::*;
use hotline::media::shard::{DigitSource, MediaCommand, MediaEvent};
use hotline::sip::msg::Method;
use hotline::time::Duration;

fn answered(sim: &mut Sim) {
    sim.invite("12345");
    assert!(sim.run_until(Duration::from_secs(5), |s| s.uas[0].acked));
    assert!(sim.run_until(Duration::from_secs(2), |s| !s.uas[1]
        .requests(Method::Ack)
        .is_empty()));
}

fn legs(sim: &Sim) -> Vec<u16> {
    sim.media_commands()
        .iter()
        .filter_map(|c| match c {
            MediaCommand::Open { leg } => Some(*leg),
            _ => None,
        })
        .collect()
}

fn last_response(sim: &Sim, ua: usize) -> hotline::sip::msg::Response {
    sim.uas[ua]
        .seen
        .iter()
        .rev()
        .find_map(|s| match s {
            Seen::Response(r) if r.status >= 200 => Some(r.clone()),
            _ => None,
        })
        .expect("a final response")
}

#[test]
fn an_offer_without_a_common_codec_gets_488_with_a_warning() {
    let mut sim = Sim::new(41, Plan::answer(Duration::from_millis(100)));
    let g729 = SDP_OFFER
        .replace("RTP/AVP 8 0 101", "RTP/AVP 18")
        .replace("a=rtpmap:8 PCMA/8000", "a=rtpmap:18 G729/8000");
    sim.invite_from(0, "12345", Some(&g729));
    assert!(sim.run_until(Duration::from_secs(5), |s| !s.uas[0]
        .finals(Method::Invite)
        .is_empty()));
    assert_eq!(sim.uas[0].finals(Method::Invite), vec![488]);
    let r = last_response(&sim, 0);
    let text = String::from_utf8_lossy(&r.to_bytes()).to_string();
    assert!(
        text.contains("Warning: 305 ") && text.contains("Incompatible media format"),
        "{text}"
    );
    // Nothing reached the callee, no port stayed taken.
    assert!(sim.uas[1].requests(Method::Invite).is_empty());
    assert_eq!(sim.gw.b2bua().media().ports_in_use(), 0);
    assert!(legs(&sim).is_empty());
}

#[test]
fn a_body_that_is_not_sdp_gets_415() {
    let mut sim = Sim::new(42, Plan::answer(Duration::from_millis(100)));
    let raw = format!(
        "INVITE sip:12345@{GW} SIP/2.0\r\nVia: SIP/2.0/UDP {CARRIER};branch=z9hG4bK-isup1\r\n\
         Max-Forwards: 70\r\nFrom: <sip:13800138000@198.51.100.10>;tag=i1\r\n\
         To: <sip:12345@{GW}>\r\nCall-ID: isup-1@198.51.100.10\r\nCSeq: 1 INVITE\r\n\
         Contact: <sip:c@{CARRIER}>\r\nContent-Type: application/isup\r\nContent-Length: 4\r\n\r\nabcd"
    );
    sim.send_raw(CARRIER, raw.as_bytes());
    assert!(sim.run_until(Duration::from_secs(2), |s| s
        .wire_between(GW, CARRIER)
        .iter()
        .any(|w| w.text.starts_with("SIP/2.0 415"))));
    let w = sim
        .wire_between(GW, CARRIER)
        .into_iter()
        .find(|w| w.text.starts_with("SIP/2.0 415"))
        .expect("415");
    assert!(w.text.contains("Accept: application/sdp"), "{}", w.text);
}

#[test]
fn an_exhausted_port_pool_gets_503_and_frees_up_when_calls_end() {
    // 8 ports = 4 RTP/RTCP pairs = 2 calls.
    let config = sim_config("[media]\nport_min = 30000\nport_max = 30007\nshards = 1\n");
    let mut sim = Sim::with_config(43, Plan::answer(Duration::from_millis(100)), config);
    answered(&mut sim);
    sim.invite("12345");
    assert!(
        sim.run_until(Duration::from_secs(5), |s| s.live_calls() == 2
            && s.uas[0].finals(Method::Invite).len() == 2)
    );
    sim.invite("12345");
    assert!(sim.run_until(Duration::from_secs(5), |s| s.uas[0]
        .finals(Method::Invite)
        .contains(&503)));
    let w = sim
        .wire_between(GW, CARRIER)
        .into_iter()
        .find(|w| w.text.starts_with("SIP/2.0 503"))
        .expect("503");
    assert!(w.text.contains("Retry-After:"), "{}", w.text);
    assert!(w.text.contains("No RTP ports free"), "{}", w.text);
    assert_eq!(sim.gw.b2bua().media().ports_in_use(), 4);
    // The callee hangs up both calls: their ports come back, a new call
    // gets through.
    sim.bye(0);
    assert!(sim.run_until(Duration::from_secs(5), |s| s.live_calls() == 1));
    assert_eq!(sim.gw.b2bua().media().ports_in_use(), 2);
    sim.invite("12345");
    assert!(sim.run_until(Duration::from_secs(5), |s| s.live_calls() == 2));
    assert_eq!(sim.gw.b2bua().media().ports_in_use(), 4);
}

#[test]
fn rtp_timeout_ends_the_call_with_its_cause() {
    let mut sim = Sim::new(44, Plan::answer(Duration::from_millis(100)));
    answered(&mut sim);
    let a = legs(&sim)[0];
    sim.media_event(MediaEvent::RtpTimeout { leg: a });
    assert!(sim.run_until(Duration::from_secs(5), |s| s.live_calls() == 0));
    // Both sides got a BYE from us.
    assert_eq!(sim.uas[0].requests(Method::Bye).len(), 1);
    assert_eq!(sim.uas[1].requests(Method::Bye).len(), 1);
    let ended = sim
        .records
        .iter()
        .find(|r| r.kind == "call.ended")
        .expect("call.ended");
    let body = ended.body.clone();
    assert!(body.contains("rtp_timeout"), "{body}");
    assert!(body.contains("\"gateway\""), "{body}");
    // Both legs closed.
    let closed = sim
        .media_commands()
        .iter()
        .filter(|c| matches!(c, MediaCommand::Close { .. }))
        .count();
    assert_eq!(closed, 2);
}

#[test]
fn a_port_that_cannot_be_bound_fails_the_call_before_answer() {
    let mut sim = Sim::new(45, Plan::answer(Duration::from_secs(3)));
    sim.invite("12345");
    assert!(sim.run_until(Duration::from_millis(500), |s| !s.uas[1]
        .requests(Method::Invite)
        .is_empty()));
    let b = legs(&sim)[1];
    sim.media_event(MediaEvent::OpenFailed {
        leg: b,
        error: "address in use".into(),
    });
    assert!(sim.run_until(Duration::from_secs(10), |s| s.live_calls() == 0));
    assert_eq!(sim.uas[0].finals(Method::Invite), vec![500]);
    // The callee's INVITE was cancelled.
    assert!(sim
        .wire_between(GW, DEST)
        .iter()
        .any(|w| w.text.starts_with("CANCEL ")));
    assert_eq!(sim.gw.b2bua().media().ports_in_use(), 0);
}

#[test]
fn hold_from_the_caller_is_reoffered_from_our_ports_and_stops_sending_to_it() {
    let mut sim = Sim::new(46, Plan::answer(Duration::from_millis(100)));
    answered(&mut sim);
    let (a, b) = (legs(&sim)[0], legs(&sim)[1]);
    sim.reinvite(0, &SDP_OFFER.replace("a=sendrecv", "a=sendonly"));
    assert!(sim.run_until(Duration::from_secs(5), |s| s.uas[0]
        .finals(Method::Invite)
        .len()
        == 2));
    let reinv = sim.uas[1].requests(Method::Invite)[1].clone();
    let text = String::from_utf8_lossy(&reinv.body).to_string();
    assert!(text.contains("a=sendonly"), "{text}");
    assert!(text.contains(&format!("m=audio {b} ")), "{text}");
    assert!(!text.contains("198.51.100.10"), "{text}");
    // Our o= version went up for the changed SDP (RFC 3264 §8).
    let first = String::from_utf8_lossy(&sim.uas[1].requests(Method::Invite)[0].body).to_string();
    let version = |t: &str| -> u64 {
        t.lines()
            .find(|l| l.starts_with("o="))
            .and_then(|l| l.split_whitespace().nth(2))
            .and_then(|v| v.parse().ok())
            .expect("o= version")
    };
    assert_eq!(version(&text), version(&first) + 1);
    // The shard stops sending to the caller (it holds), still expects RTP
    // from it; the callee's leg is told recvonly from its answer.
    let pa = &sim.leg_params(a)[0];
    assert!(!pa.send && pa.recv, "{pa:?}");
    let pb = &sim.leg_params(b)[0];
    assert!(pb.send && !pb.recv, "{pb:?}");
    // The caller's 200 is our answer, recvonly, from our A port.
    let ok = last_response(&sim, 0);
    let t = String::from_utf8_lossy(&ok.body).to_string();
    assert!(
        t.contains("a=recvonly") && t.contains(&format!("m=audio {a} ")),
        "{t}"
    );
}

#[test]
fn an_unacceptable_reoffer_gets_488_and_leaves_the_call_as_it_was() {
    let mut sim = Sim::new(47, Plan::answer(Duration::from_millis(100)));
    answered(&mut sim);
    let updates_before = sim.leg_params(legs(&sim)[0]).len();
    sim.reinvite(0, &SDP_OFFER.replace("RTP/AVP 8 0 101", "RTP/SAVP 8 0 101"));
    assert!(sim.run_until(Duration::from_secs(5), |s| s.uas[0]
        .finals(Method::Invite)
        .len()
        == 2));
    assert_eq!(sim.uas[0].finals(Method::Invite), vec![200, 488]);
    assert_eq!(sim.uas[1].requests(Method::Invite).len(), 1, "not relayed");
    assert_eq!(sim.leg_params(legs(&sim)[0]).len(), updates_before);
    assert_eq!(sim.live_calls(), 1);
}

#[test]
fn dtmf_by_sip_info_is_consumed_and_each_press_reported_once() {
    let mut sim = Sim::new(48, Plan::answer(Duration::from_millis(100)));
    answered(&mut sim);
    let a = legs(&sim)[0];
    sim.in_dialog(
        0,
        Method::Info,
        "application/dtmf-relay",
        "Signal=5\r\nDuration=160\r\n",
    );
    assert!(
        sim.run_until(Duration::from_secs(2), |s| s.uas[0].finals(Method::Info)
            == vec![200])
    );
    assert!(
        sim.uas[1].requests(Method::Info).is_empty(),
        "INFO DTMF is not relayed"
    );
    // The same press also arrives as RFC 4733 within 300 ms: one digit.
    sim.media_event(MediaEvent::Digit {
        leg: a,
        digit: '5',
        source: DigitSource::Rfc4733,
    });
    assert_eq!(sim.gw.b2bua().media().stats.digits_deduplicated, 1);
    // A later press of the same key is a new digit.
    sim.run_for(Duration::from_secs(1));
    sim.media_event(MediaEvent::Digit {
        leg: a,
        digit: '5',
        source: DigitSource::Rfc4733,
    });
    assert_eq!(sim.gw.b2bua().media().stats.digits_deduplicated, 1);
    // A malformed dtmf-relay body is refused, other INFO is relayed.
    sim.in_dialog(0, Method::Info, "application/dtmf-relay", "Signal=Q\r\n");
    sim.in_dialog(0, Method::Info, "application/x-other", "hello");
    assert!(sim.run_until(Duration::from_secs(2), |s| s.uas[0]
        .finals(Method::Info)
        .len()
        == 3));
    let mut finals = sim.uas[0].finals(Method::Info);
    finals.sort_unstable();
    assert_eq!(finals, vec![200, 200, 400]);
    assert_eq!(sim.uas[1].requests(Method::Info).len(), 1);
}
