//! The B2BUA hides each side's topology from the other.
//!
//! Two legs with separate Call-IDs, tags and CSeq spaces (issue: "nothing of
//! one side's topology (Via, Contact, Record-Route, internal addresses)
//! leaks to the other").
mod common;
use common::*;
use hotline::sip::msg::{Hdr, Method, SipHeaders};
use hotline::time::Duration;

#[test]
fn legs_share_no_identifiers_or_addresses() {
    let mut sim = Sim::new(7, Plan::answer(Duration::from_millis(200)));
    sim.invite("12345");
    assert!(sim.run_until(Duration::from_secs(5), |s| s.uas[0].acked));
    sim.bye(0);
    assert!(sim.run_until(Duration::from_secs(5), |s| s.live_calls() == 0));

    let a_inv = sim
        .wire_between(CARRIER, GW)
        .into_iter()
        .find(|w| w.text.starts_with("INVITE"))
        .expect("A INVITE")
        .text
        .clone();
    let a_call_id = Sim::header(&a_inv, "Call-ID").expect("Call-ID");
    let a_from = Sim::header(&a_inv, "From").expect("From");
    let a_tag = a_from.split("tag=").nth(1).expect("tag").to_string();

    let carrier_ip = CARRIER.split(':').next().unwrap_or_default();
    let dest_ip = DEST.split(':').next().unwrap_or_default();
    // Headers only: the SDP body is relayed unchanged until the media plane
    // anchors RTP (its c= line still names the carrier's media address).
    let head = |t: &str| t.split("\r\n\r\n").next().unwrap_or_default().to_string();
    for w in sim.wire_between(GW, DEST) {
        let w = Wire {
            text: head(&w.text),
            ..w.clone()
        };
        assert!(
            !w.text.contains(&a_call_id),
            "A Call-ID leaked to B: {}",
            w.text
        );
        assert!(!w.text.contains(&a_tag), "A tag leaked to B: {}", w.text);
        assert!(
            !w.text.contains(carrier_ip),
            "carrier address leaked to B: {}",
            w.text
        );
        assert!(
            !w.text.contains("carrier.example"),
            "Record-Route leaked to B: {}",
            w.text
        );
    }
    for w in sim.wire_between(CARRIER, GW) {
        let w = Wire {
            text: head(&w.text),
            ..w.clone()
        };
        assert!(
            !w.text.contains(dest_ip),
            "destination address leaked to A: {}",
            w.text
        );
        assert!(
            !w.text.contains("sip:phone@"),
            "destination Contact leaked to A: {}",
            w.text
        );
    }
    // The B leg's INVITE has exactly one Via: ours.
    let b_inv = &sim.uas[1].requests(Method::Invite)[0];
    assert_eq!(b_inv.headers.elements(Hdr::Via).len(), 1);
    assert!(b_inv.headers.get(Hdr::RecordRoute).is_none());
    assert_eq!(b_inv.cseq().map(|c| c.0), Some(1));
}
