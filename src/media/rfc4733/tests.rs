//! RFC 4733 payloads, the receiver's exactly-once rule (§2.5.1.3–§2.5.1.5,
//! §2.5.2), the sender's packet sequence, and SIPp's `dtmf_2833_*.pcap`.

use super::*;
use crate::media::rtp::{OutStream, Relayed, Rtp};
use crate::rng::Rng;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn ev(event: u8, end: bool, duration: u16) -> [u8; 4] {
    TelephoneEvent {
        event,
        end,
        volume: 10,
        duration,
    }
    .to_bytes()
}

fn digits(rx: &mut DtmfReceiver) -> Vec<Digit> {
    std::iter::from_fn(|| rx.poll_digit()).collect()
}

fn d(digit: char, duration_ms: u32) -> Digit {
    Digit { digit, duration_ms }
}

// ---------------------------------------------------------------- payload

#[test]
fn payload_layout_is_figure_1() {
    // SIPp's end packet for digit 5: event 5, E, volume 10, 2240 units.
    let e = TelephoneEvent::parse(&[0x05, 0x8a, 0x08, 0xc0]).unwrap();
    assert_eq!(
        e,
        TelephoneEvent {
            event: 5,
            end: true,
            volume: 10,
            duration: 2240
        }
    );
    assert_eq!(e.to_bytes(), [0x05, 0x8a, 0x08, 0xc0]);
    assert_eq!(e.digit(), Some('5'));
    // R is ignored on receipt and sent as 0.
    let r = TelephoneEvent::parse(&[11, 0x40 | 0x3f, 0, 160]).unwrap();
    assert_eq!((r.end, r.volume, r.digit()), (false, 63, Some('#')));
    assert_eq!(r.to_bytes(), [11, 0x3f, 0, 160]);
}

#[test]
fn malformed_payloads_are_errors() {
    for len in [0usize, 1, 3, 5, 7, 9] {
        let b = vec![1u8; len];
        assert!(TelephoneEvent::parse(&b).is_err());
        assert_eq!(events(&b).err(), Some(Rfc4733Error::Length { len }));
    }
    assert!(
        TelephoneEvent::parse(&[1; 8]).is_err(),
        "one event is 4 bytes"
    );
    let two: Vec<_> = events(&[1, 0x8a, 0, 160, 2, 0x0a, 0, 80])
        .unwrap()
        .collect();
    assert_eq!(two.len(), 2);
    assert_eq!((two[0].digit(), two[1].digit()), (Some('1'), Some('2')));
    let mut rx = DtmfReceiver::new(8000);
    assert!(rx
        .handle_packet(0, true, &[5, 0x8a, 8], crate::time::now())
        .is_err());
    assert_eq!(rx.poll_digit(), None);
}

#[test]
fn event_codes_map_to_the_sixteen_digits() {
    let all: String = (0..16).map(|e| digit_for_event(e).unwrap()).collect();
    assert_eq!(all, "0123456789*#ABCD");
    assert_eq!(digit_for_event(16), None); // flash: not DTMF
    for (i, c) in all.chars().enumerate() {
        assert_eq!(event_for_digit(c), Some(i as u8));
    }
    assert_eq!(event_for_digit('d'), Some(15));
    assert_eq!(event_for_digit('E'), None);
    assert_eq!(event_for_digit('x'), None);
}

// ---------------------------------------------------------------- receiver

/// SIPp's digit 5 (dtmf_2833_5.pcap): duration 0 in the marked first
/// packet, updates every 20 ms (320 units: SIPp counts 40 ms), three ends.
fn sipp_five(ts: u32) -> Vec<(u32, bool, [u8; 4])> {
    let mut v: Vec<_> = (0..7u16)
        .map(|k| (ts, k == 0, ev(5, false, k * 320)))
        .collect();
    for _ in 0..3 {
        v.push((ts, false, ev(5, true, 2240)));
    }
    v
}

#[test]
fn an_event_with_three_end_packets_is_one_digit() {
    let t = crate::time::now();
    let mut rx = DtmfReceiver::new(8000);
    for (i, (ts, m, p)) in sipp_five(0xa8c0).iter().enumerate() {
        rx.handle_packet(*ts, *m, p, t + ms(20 * i as u64)).unwrap();
    }
    assert_eq!(digits(&mut rx), vec![d('5', 280)]);
    assert_eq!(rx.poll_timeout(), None);
}

#[test]
fn a_lost_first_packet_still_yields_the_digit() {
    let t = crate::time::now();
    let mut rx = DtmfReceiver::new(8000);
    for (i, (ts, m, p)) in sipp_five(77).iter().enumerate().skip(1) {
        rx.handle_packet(*ts, *m, p, t + ms(20 * i as u64)).unwrap();
    }
    assert_eq!(digits(&mut rx), vec![d('5', 280)]);
    // Only the end packets arrived:
    let mut rx = DtmfReceiver::new(8000);
    for (i, (ts, m, p)) in sipp_five(77).iter().enumerate().skip(7) {
        rx.handle_packet(*ts, *m, p, t + ms(i as u64)).unwrap();
    }
    assert_eq!(digits(&mut rx), vec![d('5', 280)]);
}

#[test]
fn lost_end_packets_report_at_the_next_event() {
    let t = crate::time::now();
    let mut rx = DtmfReceiver::new(8000);
    for (i, (ts, m, p)) in sipp_five(1000).iter().enumerate().take(7) {
        rx.handle_packet(*ts, *m, p, t + ms(20 * i as u64)).unwrap();
    }
    assert_eq!(rx.poll_digit(), None);
    // The same digit again: a new timestamp is a second press.
    for (i, (ts, m, p)) in sipp_five(1000 + 4000).iter().enumerate() {
        rx.handle_packet(*ts, *m, p, t + ms(300 + 20 * i as u64))
            .unwrap();
    }
    assert_eq!(digits(&mut rx), vec![d('5', 240), d('5', 280)]);
}

#[test]
fn lost_end_packets_report_at_the_timeout_and_stragglers_are_ignored() {
    let t = crate::time::now();
    let mut rx = DtmfReceiver::new(8000).with_timeout(ms(200));
    let pkts = sipp_five(5);
    for (i, (ts, m, p)) in pkts.iter().enumerate().take(4) {
        rx.handle_packet(*ts, *m, p, t + ms(20 * i as u64)).unwrap();
    }
    let deadline = rx.poll_timeout().expect("an event in progress");
    assert_eq!(deadline, t + ms(60 + 200));
    rx.handle_timeout(deadline - ms(1));
    assert_eq!(rx.poll_digit(), None);
    rx.handle_timeout(deadline);
    assert_eq!(digits(&mut rx), vec![d('5', 120)]);
    assert_eq!(rx.poll_timeout(), None);
    // The rest of the event arrives after all: no second digit.
    for (i, (ts, m, p)) in pkts.iter().enumerate().skip(4) {
        rx.handle_packet(*ts, *m, p, t + ms(300 + i as u64))
            .unwrap();
    }
    rx.handle_timeout(t + ms(10_000));
    assert_eq!(rx.poll_digit(), None);
}

#[test]
fn non_dtmf_events_are_ignored() {
    let t = crate::time::now();
    let mut rx = DtmfReceiver::new(8000);
    rx.handle_packet(9, true, &ev(16, true, 800), t).unwrap(); // flash
    assert_eq!(rx.poll_digit(), None);
    assert_eq!(rx.poll_timeout(), None);
}

#[test]
fn packed_events_each_count_once() {
    // RFC 4733 §2.5.1.5: '1' (ended, 800 units) then '2' in progress at
    // ts + 800; then '2' alone in later packets.
    let t = crate::time::now();
    let mut rx = DtmfReceiver::new(8000);
    let mut packed = ev(1, true, 800).to_vec();
    packed.extend_from_slice(&ev(2, false, 160));
    rx.handle_packet(100, true, &packed, t).unwrap();
    assert_eq!(digits(&mut rx), vec![d('1', 100)]);
    rx.handle_packet(900, false, &ev(2, false, 480), t + ms(20))
        .unwrap();
    for _ in 0..3 {
        rx.handle_packet(900, false, &ev(2, true, 800), t + ms(40))
            .unwrap();
    }
    rx.handle_packet(100, true, &packed, t + ms(41)).unwrap(); // late duplicate
    assert_eq!(digits(&mut rx), vec![d('2', 100)]);
}

#[test]
fn a_long_event_in_segments_is_one_digit() {
    // RFC 4733 §2.5.1.3: 20 s of '#': segments of 0xffff units, each a new
    // timestamp without the marker; updates every 50 ms (400 units).
    let t = crate::time::now();
    let mut rx = DtmfReceiver::new(8000);
    let total: u64 = 20 * 8000;
    let (mut seg_ts, mut seg_start, mut elapsed) = (u32::MAX - 1000, 0u64, 0u64);
    let mut first = true;
    while elapsed < total {
        elapsed = (elapsed + 400).min(total);
        if elapsed - seg_start > 0xffff {
            // close the segment at 0xffff (not E), start the next
            rx.handle_packet(seg_ts, false, &ev(11, false, 0xffff), t)
                .unwrap();
            seg_ts = seg_ts.wrapping_add(0xffff);
            seg_start += 0xffff;
        }
        let dur = (elapsed - seg_start) as u16;
        let at = t + Duration::from_micros(elapsed * 125);
        rx.handle_packet(seg_ts, first, &ev(11, elapsed == total, dur), at)
            .unwrap();
        first = false;
        if elapsed < total {
            assert_eq!(rx.poll_digit(), None, "no digit before the end");
        }
        rx.handle_timeout(at);
    }
    for _ in 0..2 {
        // the end packet's retransmissions
        let dur = (total - seg_start) as u16;
        rx.handle_packet(seg_ts, false, &ev(11, true, dur), t + ms(20_000))
            .unwrap();
    }
    assert_eq!(digits(&mut rx), vec![d('#', 20_000)]);
}

#[test]
fn a_wrapping_duration_field_is_one_digit() {
    // A sender that lets the 16-bit duration wrap instead of segmenting.
    let t = crate::time::now();
    let mut rx = DtmfReceiver::new(8000);
    let mut dur: u64 = 0;
    while dur < 100_000 {
        dur += 400;
        rx.handle_packet(42, dur == 400, &ev(7, false, dur as u16), t)
            .unwrap();
    }
    rx.handle_packet(42, false, &ev(7, true, dur as u16), t)
        .unwrap();
    assert_eq!(digits(&mut rx), vec![d('7', (dur / 8) as u32)]);
}

/// Seeded runs of digits, each event's packets lost (keeping one),
/// duplicated and reordered, some end packets arriving after the next
/// event began, timeouts driven as a driver would: every digit exactly
/// once, in order.
#[test]
fn property_each_digit_exactly_once() {
    let t0 = crate::time::now();
    for seed in 0..300 {
        let mut rng = Rng::new(seed);
        let mut rx = DtmfReceiver::new(8000);
        let mut want = String::new();
        let mut got = String::new();
        let mut now = t0;
        let mut ts = rng.next_u64() as u32;
        let mut carry: Vec<(u32, bool, [u8; 4])> = vec![];
        for _ in 0..20 {
            let event = rng.below(16) as u8;
            want.push(digit_for_event(event).unwrap());
            let updates = 1 + rng.below(10) as u16;
            let mut pkts: Vec<_> = (0..updates)
                .map(|k| (ts, k == 0, ev(event, false, (k + 1) * 160)))
                .collect();
            for _ in 0..3 {
                pkts.push((ts, false, ev(event, true, updates * 160)));
            }
            let keep = rng.below(pkts.len() as u64) as usize;
            let mut i = 0;
            pkts.retain(|_| {
                i += 1;
                i - 1 == keep || rng.below(4) != 0
            });
            for i in 1..pkts.len() {
                if rng.below(4) == 0 {
                    pkts.swap(i - 1, i);
                }
            }
            if rng.below(4) == 0 {
                let p = pkts[rng.below(pkts.len() as u64) as usize];
                pkts.push(p);
            }
            // The previous event's straggler comes after this one's first.
            let stragglers = std::mem::take(&mut carry);
            if pkts.len() > 2 && rng.below(3) == 0 {
                carry.push(pkts.pop().unwrap());
            }
            for (n, (ts, m, p)) in pkts.iter().enumerate() {
                now += ms(rng.below(30));
                if let Some(at) = rx.poll_timeout() {
                    if at <= now {
                        rx.handle_timeout(at);
                    }
                }
                rx.handle_packet(*ts, *m, p, now).unwrap();
                if n == 0 {
                    for (ts, m, p) in &stragglers {
                        rx.handle_packet(*ts, *m, p, now).unwrap();
                    }
                }
                got.extend(std::iter::from_fn(|| rx.poll_digit()).map(|d| d.digit));
            }
            // a pause between presses, sometimes past the timeout
            now += ms(rng.below(400));
            ts = ts.wrapping_add(u32::from(updates) * 160 + rng.below(8000) as u32 + 1);
        }
        for (ts, m, p) in &carry {
            rx.handle_packet(*ts, *m, p, now).unwrap();
        }
        if let Some(at) = rx.poll_timeout() {
            rx.handle_timeout(at);
        }
        got.extend(std::iter::from_fn(|| rx.poll_digit()).map(|d| d.digit));
        assert_eq!(got, want, "seed {seed}");
    }
}

// ---------------------------------------------------------------- sender

#[test]
fn sender_makes_marker_updates_and_three_ends() {
    let s = DtmfSender::new('5', ms(100), ms(20), 8000).unwrap();
    let pkts: Vec<_> = s.collect();
    assert_eq!(pkts.len(), 7);
    assert_eq!(
        pkts.iter().map(|p| p.duration).collect::<Vec<_>>(),
        vec![160, 320, 480, 640, 800, 800, 800]
    );
    assert_eq!(
        pkts.iter().map(|p| p.start).collect::<Vec<_>>(),
        vec![true, false, false, false, false, false, false]
    );
    let ends: Vec<_> = pkts
        .iter()
        .map(|p| TelephoneEvent::parse(&p.payload).unwrap().end)
        .collect();
    assert_eq!(ends, vec![false, false, false, false, true, true, true]);
    assert_eq!(pkts[6].at, ms(120));
    assert!(pkts.iter().all(|p| p.ts_offset == 0));
    assert_eq!(pkts[0].payload, [5, 10, 0, 160]);
    // 50 ms updates: 400, 800 (E), 800 (E), 800 (E).
    let s = DtmfSender::new('#', ms(100), ms(50), 8000)
        .unwrap()
        .with_volume(6)
        .unwrap();
    let p: Vec<_> = s.map(|p| (p.at, p.payload)).collect();
    assert_eq!(
        p,
        vec![
            (ms(0), [11, 6, 1, 0x90]),
            (ms(50), [11, 0x86, 3, 0x20]),
            (ms(100), [11, 0x86, 3, 0x20]),
            (ms(150), [11, 0x86, 3, 0x20])
        ]
    );
}

#[test]
fn sender_refuses_what_it_cannot_send() {
    assert_eq!(
        DtmfSender::new('x', ms(100), ms(20), 8000).err(),
        Some(DtmfSendError::Digit('x'))
    );
    assert!(DtmfSender::new('1', ms(0), ms(20), 8000).is_err());
    assert!(DtmfSender::new('1', ms(100), ms(0), 8000).is_err());
    assert!(DtmfSender::new('1', ms(9000), ms(20), 8000).is_err());
    assert_eq!(
        DtmfSender::new('1', ms(100), ms(20), 8000)
            .unwrap()
            .with_volume(64)
            .err(),
        Some(DtmfSendError::Volume(64))
    );
}

#[test]
fn sender_through_out_stream_to_receiver_is_one_digit_each() {
    let t = crate::time::now();
    let mut out = OutStream::new(0x1234, 8000, 65_530, u32::MAX - 100);
    let mut rx = DtmfReceiver::new(8000);
    let mut at = t;
    let mut last_seq = None;
    for digit in "1234567890*#ABCD55".chars() {
        for p in DtmfSender::new(digit, ms(100), ms(20), 8000).unwrap() {
            let h = out.generated_event(96, p.start, u32::from(p.duration), at + p.at);
            let mut buf = [0u8; 16];
            let n = h.write(&mut buf).unwrap();
            buf[n..].copy_from_slice(&p.payload);
            let r = Rtp::parse(&buf).unwrap();
            assert_eq!((r.payload_type(), r.marker()), (96, p.start));
            if let Some(s) = last_seq {
                assert_eq!(r.sequence(), u16::wrapping_add(s, 1));
            }
            last_seq = Some(r.sequence());
            rx.handle_packet(r.timestamp(), r.marker(), r.payload(), at + p.at)
                .unwrap();
        }
        at += ms(300);
    }
    let got: Vec<_> = digits(&mut rx);
    assert_eq!(
        got.iter().map(|d| d.digit).collect::<String>(),
        "1234567890*#ABCD55"
    );
    assert!(got.iter().all(|d| d.duration_ms == 100));
}

// ---------------------------------------------------------------- SIPp

/// The RTP packets of a pcap (Ethernet, IPv4, UDP), little- or big-endian.
fn pcap_rtp(bytes: &[u8]) -> Vec<Vec<u8>> {
    let le = match bytes[..4] {
        [0xd4, 0xc3, 0xb2, 0xa1] => true,
        [0xa1, 0xb2, 0xc3, 0xd4] => false,
        _ => panic!("not a pcap"),
    };
    let u32_at = |b: &[u8], at: usize| {
        let a = [b[at], b[at + 1], b[at + 2], b[at + 3]];
        if le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    assert_eq!(u32_at(bytes, 20), 1, "Ethernet link type");
    let mut out = vec![];
    let mut at = 24;
    while at + 16 <= bytes.len() {
        let incl = u32_at(bytes, at + 8) as usize;
        let frame = &bytes[at + 16..at + 16 + incl];
        at += 16 + incl;
        assert_eq!(&frame[12..14], &[0x08, 0x00], "IPv4");
        let ip = &frame[14..];
        assert_eq!(ip[9], 17, "UDP");
        let udp = &ip[usize::from(ip[0] & 0x0f) * 4..];
        let len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
        out.push(udp[8..len].to_vec());
    }
    out
}

fn sipp_pcap(name: &str) -> Vec<Vec<u8>> {
    let path = format!("/usr/share/sip-tester/{name}");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{path}: {e}. These tests read the pcaps SIPp ships: run \
             ./scripts/install-test-deps (Debian package sip-tester)."
        )
    });
    pcap_rtp(&bytes)
}

const SIPP_DIGITS: [(&str, char); 12] = [
    ("0", '0'),
    ("1", '1'),
    ("2", '2'),
    ("3", '3'),
    ("4", '4'),
    ("5", '5'),
    ("6", '6'),
    ("7", '7'),
    ("8", '8'),
    ("9", '9'),
    ("star", '*'),
    ("pound", '#'),
];

#[test]
fn sipp_dtmf_pcaps_each_give_their_digit_once() {
    let t = crate::time::now();
    let mut all = DtmfReceiver::new(8000);
    let mut all_got = String::new();
    for (i, (name, digit)) in SIPP_DIGITS.iter().enumerate() {
        let pkts = sipp_pcap(&format!("dtmf_2833_{name}.pcap"));
        assert_eq!(pkts.len(), 10);
        let mut rx = DtmfReceiver::new(8000);
        for (k, b) in pkts.iter().enumerate() {
            let r = Rtp::parse(b).unwrap();
            assert_eq!(r.payload_type(), 101);
            let now = t + ms(1000 * i as u64 + 20 * k as u64);
            rx.handle_packet(r.timestamp(), r.marker(), r.payload(), now)
                .unwrap();
            all.handle_packet(r.timestamp(), r.marker(), r.payload(), now)
                .unwrap();
        }
        assert_eq!(digits(&mut rx), vec![d(*digit, 280)], "{name}");
        all_got.extend(std::iter::from_fn(|| all.poll_digit()).map(|d| d.digit));
    }
    assert_eq!(all_got, "0123456789*#");
}

#[test]
fn sipp_dtmf_relayed_with_pt_mapping_is_detected_once_on_the_far_side() {
    let t = crate::time::now();
    let mut out = OutStream::new(0xfeed, 8000, 1, 2);
    out.map_payload_type(101, 96);
    let mut rx = DtmfReceiver::new(8000);
    for (i, (name, _)) in SIPP_DIGITS.iter().enumerate() {
        for (k, mut b) in sipp_pcap(&format!("dtmf_2833_{name}.pcap"))
            .into_iter()
            .enumerate()
        {
            let now = t + ms(1000 * i as u64 + 20 * k as u64);
            assert_eq!(out.relay(&mut b, now), Ok(Relayed::Send));
            let r = Rtp::parse(&b).unwrap();
            assert_eq!((r.payload_type(), r.ssrc()), (96, 0xfeed));
            rx.handle_packet(r.timestamp(), r.marker(), r.payload(), now)
                .unwrap();
        }
    }
    let got: String = std::iter::from_fn(|| rx.poll_digit())
        .map(|d| d.digit)
        .collect();
    assert_eq!(got, "0123456789*#");
}
