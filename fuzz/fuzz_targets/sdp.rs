//! Any bytes through `sdp::parse`, `negotiate` and `answer`: no panic, and
//! what we answer is itself SDP we accept.
//!
//! - An answer parses, has as many m-lines as the offer, and its one live
//!   stream is the negotiated audio on our port.
//! - Read back as an offer, our answer negotiates to the same codec.
#![no_main]

use hotline::sip::sdp::{answer, negotiate, parse, Local, OriginState, Prefs};
use libfuzzer_sys::fuzz_target;
use std::net::{IpAddr, Ipv4Addr};

fuzz_target!(|data: &[u8]| {
    let Ok(offer) = parse(data) else { return };
    let prefs = Prefs::default();
    let Ok(neg) = negotiate(&offer, &prefs) else {
        return;
    };
    let mut origin = OriginState::new("hotline", 1);
    let body = answer(
        &offer,
        &neg,
        Local {
            addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            port: 20000,
            origin: &mut origin,
        },
    );
    let back = match parse(body.as_bytes()) {
        Ok(back) => back,
        Err(e) => panic!("our answer does not parse: {e}\n{body}"),
    };
    assert_eq!(back.media.len(), offer.media.len(), "{body}");
    for (i, m) in back.media.iter().enumerate() {
        assert_eq!(m.port != 0, i == neg.mline, "{body}");
    }
    let again = negotiate(&back, &prefs).expect("our answer negotiates");
    assert_eq!(again.codec.pt, neg.codec.pt);
    assert_eq!(again.telephone_event, neg.telephone_event);
});
