//! Any bytes as telephone-event payloads through `DtmfReceiver`: never
//! panics, and every digit it reports is one of the sixteen.
//!
//! Input: records `[flags, ts_step, len, payload…]`; flags give the
//! marker, the time step and when to fire the timeout.
#![no_main]

use hotline::media::rfc4733::{events, DtmfReceiver, TelephoneEvent};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(hotline::time::now)
}

fuzz_target!(|data: &[u8]| {
    if let Ok(evs) = events(data) {
        for e in evs {
            assert_eq!(TelephoneEvent::parse(&e.to_bytes()).unwrap().event, e.event);
        }
    }
    let mut rx = DtmfReceiver::new(8000);
    let mut now = base();
    let mut ts: u32 = 0xffff_f000;
    let mut rest = data;
    let mut reported = 0usize;
    let mut packets = 0usize;
    while let [flags, step, len, tail @ ..] = rest {
        let n = usize::from(*len & 0x0f).min(tail.len());
        let (payload, next) = tail.split_at(n);
        rest = next;
        ts = ts.wrapping_add(u32::from(*step) * 64);
        now += Duration::from_millis(u64::from(flags >> 2) * 4);
        if flags & 2 != 0 {
            if let Some(at) = rx.poll_timeout() {
                rx.handle_timeout(at.max(now));
            }
        }
        packets += 1;
        let _ = rx.handle_packet(ts, flags & 1 != 0, payload, now);
        while let Some(d) = rx.poll_digit() {
            assert!("0123456789*#ABCD".contains(d.digit));
            reported += 1;
        }
    }
    // Each packet can finish at most its own events plus the one in progress.
    assert!(reported <= packets * 5 + 1);
});
