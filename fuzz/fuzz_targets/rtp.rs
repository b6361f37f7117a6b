//! Any bytes as RTP: parse never panics, what parses keeps its invariants,
//! and a stream of such packets through one `OutStream` (with switches and
//! generated packets between) never panics and never sends a packet that
//! does not parse back with our SSRC.
//!
//! Input: a sequence of records `[op, len, bytes…]`; op picks relay,
//! generated audio, generated event or a forced switch and the time step.
#![no_main]

use hotline::media::rtp::{check_rtcp, is_rtcp, OutStream, Relayed, Rtp, RtpMut};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(hotline::time::now)
}

fn check_parse(data: &[u8]) {
    if let Ok(p) = Rtp::parse(data) {
        assert!(p.header_len() >= 12 && p.header_len() <= data.len());
        assert_eq!(
            p.header_len() + p.payload().len() + p.padding_len(),
            data.len()
        );
        assert_eq!(p.csrcs().count(), usize::from(p.csrc_count()));
        let _ = (
            p.payload_type(),
            p.marker(),
            p.sequence(),
            p.timestamp(),
            p.ssrc(),
        );
        let _ = p.extension();
    }
    let _ = is_rtcp(data);
    let _ = check_rtcp(data);
}

fuzz_target!(|data: &[u8]| {
    check_parse(data);
    let mut out = OutStream::new(0x5eed, 8000, 65_530, u32::MAX - 500);
    out.map_payload_type(101, 96);
    let mut now = base();
    let mut rest = data;
    while let [op, len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (chunk, next) = tail.split_at(n);
        rest = next;
        now += Duration::from_millis(u64::from(op >> 3));
        match op & 7 {
            0..=3 => {
                let mut pkt = chunk.to_vec();
                let before = pkt.clone();
                match out.relay(&mut pkt, now) {
                    Ok(Relayed::Send) => {
                        let p = RtpMut::parse(&mut pkt).expect("a sent packet parses");
                        assert_eq!(p.ssrc(), 0x5eed);
                        assert_eq!(p.payload(), Rtp::parse(&before).unwrap().payload());
                    }
                    Ok(Relayed::Drop(_)) | Err(_) => assert_eq!(pkt, before),
                }
            }
            4 => {
                let h = out.generated(8, u32::from(*len), now);
                let mut b = [0u8; 12];
                let _ = h.write(&mut b);
                assert_eq!(Rtp::parse(&b).unwrap().ssrc(), 0x5eed);
            }
            5 => {
                let _ = out.generated_event(96, len & 1 == 0, u32::from(*len) * 8, now);
            }
            _ => out.switch_source(),
        }
    }
});
