//! RTP views, rtcp-mux demultiplexing and `OutStream` continuity
//! (RFC 3550 §5.1, §5.3.1, A.1; RFC 3551 §4.1; RFC 5761 §4), with `rtp-rs`
//! as a parse oracle.

use super::*;
use crate::rng::Rng;
use crate::time::Duration;

fn base() -> Instant {
    crate::time::now()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A packet with a 12-byte header and `len` payload bytes (derived from seq).
fn pkt(pt: u8, marker: bool, seq: u16, ts: u32, ssrc: u32, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; HEADER_LEN + len];
    assert_eq!(write_header(&mut v, pt, marker, seq, ts, ssrc), Ok(12));
    for (i, b) in v[HEADER_LEN..].iter_mut().enumerate() {
        *b = (seq as usize + i) as u8;
    }
    v
}

fn fields(b: &[u8]) -> (u8, bool, u16, u32, u32) {
    let p = Rtp::parse(b).expect("our output parses");
    (
        p.payload_type(),
        p.marker(),
        p.sequence(),
        p.timestamp(),
        p.ssrc(),
    )
}

// ---------------------------------------------------------------- parsing

#[test]
fn parses_a_plain_pcma_packet() {
    let b = pkt(8, true, 0x1234, 0xdead_beef, 0x0102_0304, 160);
    let p = Rtp::parse(&b).unwrap();
    assert_eq!(p.payload_type(), 8);
    assert!(p.marker());
    assert_eq!(p.sequence(), 0x1234);
    assert_eq!(p.timestamp(), 0xdead_beef);
    assert_eq!(p.ssrc(), 0x0102_0304);
    assert_eq!(p.csrc_count(), 0);
    assert_eq!(p.header_len(), 12);
    assert_eq!(p.payload().len(), 160);
    assert_eq!(p.padding_len(), 0);
    assert_eq!(p.extension(), None);
}

#[test]
fn parses_csrcs_extension_and_padding() {
    // V=2 P X CC=2, M PT=0
    let mut b = vec![0xb2, 0x80, 0, 7, 0, 0, 0, 9, 0xaa, 0xbb, 0xcc, 0xdd];
    b.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 2]); // CSRCs 1, 2
    b.extend_from_slice(&[0xbe, 0xde, 0, 1, 0x10, 0x20, 0x30, 0x40]); // one-word extension
    b.extend_from_slice(b"abc"); // payload
    b.extend_from_slice(&[0, 0, 3]); // three bytes of padding
    let p = Rtp::parse(&b).unwrap();
    assert_eq!(p.csrc_count(), 2);
    assert_eq!(p.csrcs().collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(p.extension(), Some((0xbede, &[0x10, 0x20, 0x30, 0x40][..])));
    assert_eq!(p.header_len(), 28);
    assert_eq!(p.payload(), b"abc");
    assert_eq!(p.padding_len(), 3);
    assert_eq!(p.sequence(), 7);
    assert_eq!(p.timestamp(), 9);
}

#[test]
fn rejects_malformed_headers_with_the_reason() {
    let ok = pkt(0, false, 1, 1, 1, 4);
    assert_eq!(
        Rtp::parse(&ok[..11]).unwrap_err(),
        RtpError::TooShort { len: 11 }
    );
    let mut v1 = ok.clone();
    v1[0] = 0x40;
    assert_eq!(
        Rtp::parse(&v1).unwrap_err(),
        RtpError::Version { version: 1 }
    );
    let mut cc = ok.clone();
    cc[0] = 0x82; // two CSRCs need 20 bytes, 16 given
    assert_eq!(
        Rtp::parse(&cc).unwrap_err(),
        RtpError::CsrcOverrun { count: 2, len: 16 }
    );
    let mut x = pkt(0, false, 1, 1, 1, 0);
    x[0] |= 0x10; // X with no room for the extension header
    assert_eq!(
        Rtp::parse(&x).unwrap_err(),
        RtpError::ExtensionOverrun {
            needed: 16,
            len: 12
        }
    );
    let mut xl = pkt(0, false, 1, 1, 1, 4);
    xl[0] |= 0x10;
    xl[14] = 0;
    xl[15] = 1; // one word promised, none there
    assert_eq!(
        Rtp::parse(&xl).unwrap_err(),
        RtpError::ExtensionOverrun {
            needed: 20,
            len: 16
        }
    );
    let mut p0 = ok.clone();
    p0[0] |= 0x20;
    p0[15] = 0; // padding count 0
    assert_eq!(
        Rtp::parse(&p0).unwrap_err(),
        RtpError::Padding {
            count: 0,
            available: 4
        }
    );
    let mut p5 = ok.clone();
    p5[0] |= 0x20;
    p5[15] = 5; // more padding than bytes after the header
    assert_eq!(
        Rtp::parse(&p5).unwrap_err(),
        RtpError::Padding {
            count: 5,
            available: 4
        }
    );
    let mut pe = pkt(0, false, 1, 1, 1, 0);
    pe[0] |= 0x20; // P with nothing after the header
    assert_eq!(
        Rtp::parse(&pe).unwrap_err(),
        RtpError::Padding {
            count: 0,
            available: 0
        }
    );
    // Padding may take the whole payload.
    let mut pall = ok.clone();
    pall[0] |= 0x20;
    pall[15] = 4;
    assert_eq!(Rtp::parse(&pall).unwrap().payload(), b"");
}

#[test]
fn setters_change_one_field_each() {
    let mut b = pkt(8, true, 10, 20, 30, 160);
    let orig = b.clone();
    let mut p = RtpMut::parse(&mut b).unwrap();
    p.set_payload_type(0xff); // top bit ignored
    assert_eq!((p.payload_type(), p.marker()), (0x7f, true));
    p.set_marker(false);
    assert_eq!((p.payload_type(), p.marker()), (0x7f, false));
    p.set_sequence(0xfffe);
    p.set_timestamp(0xffff_fff0);
    p.set_ssrc(0xcafe_f00d);
    assert_eq!(p.payload(), &orig[12..]);
    p.payload_mut()[0] ^= 0xff;
    assert_eq!(fields(&b), (0x7f, false, 0xfffe, 0xffff_fff0, 0xcafe_f00d));
    assert_eq!(b[0], orig[0]);
    assert_eq!(b[12], !orig[12]);
}

#[test]
fn write_header_matches_rtp_rs_builder() {
    let mut rng = Rng::new(7);
    for _ in 0..1000 {
        let (pt, m) = ((rng.below(128)) as u8, rng.below(2) == 1);
        let (seq, ts, ssrc) = (
            rng.next_u64() as u16,
            rng.next_u64() as u32,
            rng.next_u64() as u32,
        );
        let mut ours = [0u8; 12];
        assert_eq!(write_header(&mut ours, pt, m, seq, ts, ssrc), Ok(12));
        let theirs = rtp_rs::RtpPacketBuilder::new()
            .payload_type(pt)
            .marked(m)
            .sequence(rtp_rs::Seq::from(seq))
            .timestamp(ts)
            .ssrc(ssrc)
            .build()
            .unwrap();
        assert_eq!(&ours[..], &theirs[..]);
    }
    assert_eq!(
        write_header(&mut [0u8; 11], 8, false, 0, 0, 0),
        Err(BufferTooSmall {
            needed: 12,
            len: 11
        })
    );
}

/// Random packets, biased towards the edges (version 2, small CC, X and
/// P set, lengths near the header's), through ours and `rtp-rs`: both
/// accept or both reject, and accepted fields agree.
#[test]
fn parse_agrees_with_rtp_rs_oracle() {
    let mut rng = Rng::new(0x4733);
    let (mut accepted, mut rejected) = (0, 0);
    for _ in 0..100_000 {
        let len = match rng.below(4) {
            0 => rng.below(12) as usize,
            1 => 12 + rng.below(24) as usize,
            _ => rng.below(200) as usize,
        };
        let mut b: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        if !b.is_empty() && rng.below(8) != 0 {
            b[0] = (b[0] & 0x3f) | 0x80; // version 2
            if rng.below(2) == 0 {
                b[0] &= 0xf0 | (rng.below(4) as u8); // small CC
            }
        }
        if b.len() > 15 && b[0] & 0x10 != 0 && rng.below(2) == 0 {
            // a plausible extension length
            let at = 12 + 4 * usize::from(b[0] & 0x0f);
            if at + 3 < b.len() {
                b[at + 2] = 0;
                b[at + 3] = rng.below(4) as u8;
            }
        }
        if b.len() > 12 && b[0] & 0x20 != 0 && rng.below(2) == 0 {
            let last = b.len() - 1;
            b[last] = rng.below(8) as u8;
        }
        let ours = Rtp::parse(&b);
        let theirs = rtp_rs::RtpReader::new(&b);
        match (ours, theirs) {
            (Ok(o), Ok(t)) => {
                accepted += 1;
                assert_eq!(o.payload_type(), t.payload_type(), "{b:02x?}");
                assert_eq!(o.marker(), t.mark());
                assert_eq!(o.sequence(), u16::from(t.sequence_number()));
                assert_eq!(o.timestamp(), t.timestamp());
                assert_eq!(o.ssrc(), t.ssrc());
                assert_eq!(o.csrc_count(), t.csrc_count());
                assert_eq!(o.csrcs().collect::<Vec<_>>(), t.csrc().collect::<Vec<_>>());
                assert_eq!(o.extension(), t.extension());
                assert_eq!(o.header_len(), t.payload_offset());
                assert_eq!(o.payload(), t.payload());
                assert_eq!(o.padding_len(), usize::from(t.padding().unwrap_or(0)));
            }
            (Err(_), Err(_)) => rejected += 1,
            (o, t) => panic!("disagree on {b:02x?}: ours {o:?}, rtp-rs {:?}", t.err()),
        }
    }
    // The generator reaches both sides often.
    assert!(
        accepted > 20_000 && rejected > 20_000,
        "{accepted} {rejected}"
    );
}

// ---------------------------------------------------------------- RTCP

#[test]
fn rtcp_mux_demultiplexes_on_the_second_byte() {
    assert!(is_rtcp(&[0x80, 200, 0, 1]));
    assert!(is_rtcp(&[0x81, 201]));
    assert!(is_rtcp(&[0x80, 192]));
    assert!(is_rtcp(&[0x80, 223]));
    assert!(!is_rtcp(&[0x80, 191])); // PT 63 with marker
    assert!(!is_rtcp(&[0x80, 224])); // PT 96 with marker
    assert!(!is_rtcp(&pkt(8, false, 1, 1, 1, 160)));
    assert!(!is_rtcp(&pkt(101, true, 1, 1, 1, 4)));
    assert!(!is_rtcp(&[0x80]));
    assert!(!is_rtcp(&[]));
}

#[test]
fn rtcp_check_walks_the_compound() {
    // Empty RR (length 1 word: SSRC) + SDES with one chunk (length 2).
    let rr = [0x80, 201, 0, 1, 1, 2, 3, 4];
    let sdes = [0x81, 202, 0, 2, 1, 2, 3, 4, 1, 1, b'x', 0];
    let mut compound = rr.to_vec();
    compound.extend_from_slice(&sdes);
    assert_eq!(
        check_rtcp(&compound),
        Ok(RtcpHeader {
            packet_type: 201,
            count: 0,
            packets: 2
        })
    );
    assert_eq!(check_rtcp(&rr).map(|h| h.packets), Ok(1));
    assert_eq!(check_rtcp(&[]), Err(RtcpError::TooShort { offset: 0 }));
    assert_eq!(
        check_rtcp(&compound[..18]),
        Err(RtcpError::Length {
            offset: 8,
            claimed: 12,
            left: 10
        })
    );
    let mut trailing = compound.clone();
    trailing.extend_from_slice(&[0x80, 200]);
    assert_eq!(
        check_rtcp(&trailing),
        Err(RtcpError::TooShort { offset: 20 })
    );
    let mut v1 = compound.clone();
    v1[8] = 0x41;
    assert_eq!(
        check_rtcp(&v1),
        Err(RtcpError::Version {
            version: 1,
            offset: 8
        })
    );
}

// ---------------------------------------------------------------- OutStream

const OURS: u32 = 0x5eed_0001;

fn stream() -> OutStream {
    OutStream::new(OURS, 8000, 1000, 500_000)
}

fn relay(out: &mut OutStream, b: &mut [u8], now: Instant) -> (u8, bool, u16, u32, u32) {
    assert_eq!(out.relay(b, now), Ok(Relayed::Send));
    fields(b)
}

#[test]
fn first_packet_takes_our_ssrc_initial_numbers_and_a_marker() {
    let t = base();
    let mut out = stream();
    let mut a = pkt(8, false, 40_000, 7, 0xa, 160);
    let payload = a[12..].to_vec();
    assert_eq!(relay(&mut out, &mut a, t), (8, true, 1000, 500_000, OURS));
    assert_eq!(&a[12..], &payload[..], "payload untouched");
    let mut b = pkt(8, false, 40_001, 167, 0xa, 160);
    assert_eq!(
        relay(&mut out, &mut b, t + ms(20)),
        (8, false, 1001, 500_160, OURS)
    );
    // The peer's own marker (a talkspurt after silence) is kept.
    let mut c = pkt(8, true, 40_002, 8167, 0xa, 160);
    assert_eq!(
        relay(&mut out, &mut c, t + ms(1020)),
        (8, true, 1002, 508_160, OURS)
    );
}

#[test]
fn ssrc_switch_continues_seq_and_advances_ts_by_the_wall_clock() {
    let t = base();
    let mut out = stream();
    for i in 0..3u16 {
        let mut a = pkt(8, false, 100 + i, 1000 + 160 * u32::from(i), 0xa, 160);
        let _ = relay(&mut out, &mut a, t + ms(20 * u64::from(i)));
    }
    // last sent: seq 1002, ts 500_320 at t+40ms. B starts 20 ms later.
    let mut b = pkt(8, false, 9, 77, 0xb, 160);
    assert_eq!(
        relay(&mut out, &mut b, t + ms(60)),
        (8, true, 1003, 500_480, OURS)
    );
    // 27 ms later (216 samples) rounds to one packet (160); C after 1 s.
    let mut b2 = pkt(8, false, 10, 237, 0xb, 160);
    assert_eq!(relay(&mut out, &mut b2, t + ms(80)).2, 1004);
    let mut c = pkt(8, false, 60_000, 1, 0xc, 160);
    assert_eq!(
        relay(&mut out, &mut c, t + ms(1080)),
        (8, true, 1005, 500_640 + 8000, OURS)
    );
    // 33 ms (264 samples) rounds to two packets; a 30 ms packet rounds to 240s.
    let mut d = pkt(8, false, 5, 5, 0xd, 240);
    assert_eq!(relay(&mut out, &mut d, t + ms(1080 + 33)).3, 508_640 + 240);
    let mut e = pkt(8, false, 5, 5, 0xe, 160);
    assert_eq!(relay(&mut out, &mut e, t + ms(1113 + 33)).3, 508_880 + 320);
    // Right away (0 ms): never before the end of the last packet's media.
    let mut f = pkt(8, false, 5, 5, 0xf, 160);
    assert_eq!(relay(&mut out, &mut f, t + ms(1146)).3, 509_200 + 160);
}

#[test]
fn payload_types_are_mapped_by_the_table() {
    let t = base();
    let mut out = stream();
    out.map_payload_type(101, 96);
    assert_eq!(out.mapped_payload_type(101), 96);
    assert_eq!(out.mapped_payload_type(8), 8);
    let mut a = pkt(8, false, 1, 0, 0xa, 160);
    assert_eq!(relay(&mut out, &mut a, t).0, 8);
    let mut ev = pkt(101, true, 2, 160, 0xa, 4);
    let (pt, m, seq, ts, _) = relay(&mut out, &mut ev, t + ms(20));
    assert_eq!((pt, m, seq, ts), (96, true, 1001, 500_160));
    let mut u = pkt(0, false, 3, 320, 0xa, 160);
    assert_eq!(relay(&mut out, &mut u, t + ms(40)).0, 0);
}

#[test]
fn sequence_and_timestamp_wrap_on_both_sides() {
    let t = base();
    let mut out = OutStream::new(OURS, 8000, 65_534, u32::MAX - 200);
    let mut seen = vec![];
    for i in 0..6u16 {
        let seq = 65_533u16.wrapping_add(i);
        let ts = (u32::MAX - 300).wrapping_add(160 * u32::from(i));
        let mut a = pkt(8, false, seq, ts, 0xa, 160);
        let (_, _, s, ts_out, _) = relay(&mut out, &mut a, t + ms(20 * u64::from(i)));
        seen.push((s, ts_out));
    }
    for w in seen.windows(2) {
        assert_eq!(w[1].0, w[0].0.wrapping_add(1));
        assert_eq!(w[1].1, w[0].1.wrapping_add(160));
    }
    assert_eq!(seen[0], (65_534, u32::MAX - 200));
    assert_eq!(seen[2].0, 0);
}

#[test]
fn late_and_duplicate_packets_keep_their_place() {
    let t = base();
    let mut out = stream();
    let send = |out: &mut OutStream, seq: u16, at: u64| {
        let mut b = pkt(8, false, seq, u32::from(seq) * 160, 0xa, 160);
        let f = relay(out, &mut b, t + ms(at));
        (f, b)
    };
    let (f10, b10) = send(&mut out, 10, 0);
    assert_eq!((f10.2, f10.3), (1000, 500_000));
    let _ = send(&mut out, 11, 20);
    let (f13, _) = send(&mut out, 13, 60); // 12 lost so far: the gap shows
    assert_eq!((f13.2, f13.3), (1003, 500_480));
    let (f12, _) = send(&mut out, 12, 70); // late: mapped, not renumbered
    assert_eq!((f12.1, f12.2, f12.3), (false, 1002, 500_320));
    let (f14, _) = send(&mut out, 14, 80);
    assert_eq!(f14.2, 1004);
    // A duplicate of the first packet is the same bytes, marker included.
    let (_, d10) = send(&mut out, 10, 90);
    assert_eq!(d10, b10);
    assert_eq!(out.next_sequence(), 1005);
}

#[test]
fn packets_from_before_a_switch_are_dropped_not_renumbered() {
    let t = base();
    let mut out = stream();
    for i in 0..5u16 {
        let mut a = pkt(8, false, 100 + i, u32::from(i) * 160, 0xa, 160);
        let _ = relay(&mut out, &mut a, t + ms(20 * u64::from(i)));
    }
    let mut b = pkt(8, false, 50, 0, 0xb, 160);
    let _ = relay(&mut out, &mut b, t + ms(100));
    // B's packet 49 would take seq 1004, which A's packet already had.
    let mut b49 = pkt(8, false, 49, 0, 0xb, 160);
    let before = b49.clone();
    assert_eq!(
        out.relay(&mut b49, t + ms(101)),
        Ok(Relayed::Drop(DropReason::BeforeSource))
    );
    assert_eq!(b49, before, "a dropped packet is left as it came");
    // A's straggler after the switch is dropped too.
    let mut a103 = pkt(8, false, 103, 3 * 160, 0xa, 160);
    assert_eq!(
        out.relay(&mut a103, t + ms(102)),
        Ok(Relayed::Drop(DropReason::PreviousSource))
    );
    // But A coming back with new packets is a new talkspurt.
    let mut a105 = pkt(8, false, 105, 5 * 160, 0xa, 160);
    let (_, m, s, _, _) = relay(&mut out, &mut a105, t + ms(140));
    assert_eq!((m, s), (true, 1006));
}

#[test]
fn a_sequence_jump_is_confirmed_before_re_anchoring() {
    let t = base();
    let mut out = stream();
    let mut a = pkt(8, false, 100, 0, 0xa, 160);
    let _ = relay(&mut out, &mut a, t);
    let mut j = pkt(8, false, 100 + 5000, 999, 0xa, 160);
    assert_eq!(
        out.relay(&mut j, t + ms(20)),
        Ok(Relayed::Drop(DropReason::OutOfWindow))
    );
    let mut j2 = pkt(8, false, 100 + 5001, 1159, 0xa, 160);
    let (_, m, s, ts, _) = relay(&mut out, &mut j2, t + ms(40));
    assert_eq!((m, s, ts), (true, 1001, 500_000 + 320));
    // far behind, once: dropped as out of window
    let mut back = pkt(8, false, 5101 - 400, 0, 0xa, 160);
    assert_eq!(
        out.relay(&mut back, t + ms(60)),
        Ok(Relayed::Drop(DropReason::OutOfWindow))
    );
    let mut j3 = pkt(8, false, 5102, 1319, 0xa, 160);
    assert_eq!(relay(&mut out, &mut j3, t + ms(60)).2, 1002);
    // A jump marked as a talkspurt start is taken at once.
    let mut m = pkt(8, true, 20_000, 7, 0xa, 160);
    let (_, mk, s, ts, _) = relay(&mut out, &mut m, t + ms(80));
    assert_eq!((mk, s, ts), (true, 1003, 500_640));
}

#[test]
fn malformed_packets_are_errors_and_left_untouched() {
    let mut out = stream();
    let mut b = pkt(8, false, 1, 1, 1, 4);
    b[0] = 0x40;
    let before = b.clone();
    assert_eq!(
        out.relay(&mut b, base()),
        Err(RtpError::Version { version: 1 })
    );
    assert_eq!(b, before);
    assert_eq!(out.next_sequence(), 1000);
}

#[test]
fn generated_audio_is_continuous_and_switches_start_talkspurts() {
    let t = base();
    let mut out = stream();
    // A prompt: three packets, ticks a little late, timestamps exact.
    let g: Vec<_> = [0u64, 21, 43]
        .iter()
        .map(|&at| out.generated(8, 160, t + ms(at)))
        .collect();
    assert_eq!(
        g.iter()
            .map(|h| (h.marker, h.seq, h.ts))
            .collect::<Vec<_>>(),
        vec![
            (true, 1000, 500_000),
            (false, 1001, 500_160),
            (false, 1002, 500_320)
        ]
    );
    assert!(g.iter().all(|h| h.ssrc == OURS && h.pt == 8));
    // The agent's audio 20 ms later: a new talkspurt.
    let mut a = pkt(8, false, 7, 7, 0xa, 160);
    assert_eq!(
        relay(&mut out, &mut a, t + ms(63)),
        (8, true, 1003, 500_480, OURS)
    );
    // Back to a prompt: marker again.
    let h = out.generated(8, 160, t + ms(83));
    assert_eq!((h.marker, h.seq, h.ts), (true, 1004, 500_640));
    // switch_source between prompts: marker, timestamp by the wall clock.
    out.switch_source();
    let h = out.generated(8, 160, t + ms(103));
    assert_eq!((h.marker, h.seq, h.ts), (true, 1005, 500_800));
    // A pause of 2 s without switch_source is noticed.
    let h = out.generated(8, 160, t + ms(2103));
    assert_eq!((h.marker, h.seq, h.ts), (true, 1006, 500_800 + 16_000));
    let mut buf = [0u8; 12];
    assert_eq!(h.write(&mut buf), Ok(12));
    assert_eq!(fields(&buf), (8, true, 1006, 516_800, OURS));
}

#[test]
fn generated_events_share_their_start_timestamp() {
    let t = base();
    let mut out = stream();
    let a = out.generated(8, 160, t);
    let e0 = out.generated_event(96, true, 160, t + ms(20));
    let e1 = out.generated_event(96, false, 320, t + ms(40));
    let e2 = out.generated_event(96, false, 800, t + ms(60));
    assert_eq!((e0.marker, e0.seq, e0.ts), (true, a.seq + 1, a.ts + 160));
    assert_eq!((e1.marker, e1.seq, e1.ts), (false, a.seq + 2, e0.ts));
    assert_eq!((e2.marker, e2.seq, e2.ts), (false, a.seq + 3, e0.ts));
    // Audio after the event starts after its duration.
    let b = out.generated(8, 160, t + ms(80));
    assert_eq!((b.marker, b.ts), (false, e0.ts + 800));
    // A second event is a new start timestamp with the marker.
    let f0 = out.generated_event(96, true, 160, t + ms(100));
    assert_eq!((f0.marker, f0.ts), (true, b.ts + 160));
}

// ---------------------------------------------------------------- properties

#[derive(Debug, Clone, Copy)]
enum Act {
    /// A relayed packet from source `src` (segment `seg`).
    Relay {
        src: u32,
        seg: u32,
        seq: u16,
        ts: u32,
        pt: u8,
        len: usize,
        /// Delivered after its source was switched away from.
        straggler: bool,
    },
    Gen {
        seg: u32,
        samples: u32,
    },
    Switch,
}

/// A script of sources with runs of packets, reordered, duplicated, lost,
/// with generated runs, forced switches and stragglers, starting near the
/// u16 and u32 wraps.
fn script(rng: &mut Rng, lossy: bool, stragglers: bool) -> Vec<Act> {
    let mut acts = vec![];
    let mut seg = 0;
    let mut last_straggler: Option<Act> = None;
    while acts.len() < 600 {
        seg += 1;
        match rng.below(10) {
            0..=6 => {
                let src = rng.next_u64() as u32 | 1;
                let mut seq = if rng.below(2) == 0 {
                    65_535 - rng.below(40) as u16
                } else {
                    rng.next_u64() as u16
                };
                let mut ts = if rng.below(2) == 0 {
                    u32::MAX - rng.below(8000) as u32
                } else {
                    rng.next_u64() as u32
                };
                let (pt, len) = match rng.below(3) {
                    0 => (0, 160),
                    1 => (8, 240),
                    _ => (101, 4),
                };
                let mut run = vec![];
                for _ in 0..(1 + rng.below(60)) {
                    run.push(Act::Relay {
                        src,
                        seg,
                        seq,
                        ts,
                        pt,
                        len,
                        straggler: false,
                    });
                    seq = seq.wrapping_add(1);
                    ts = ts.wrapping_add(len as u32 * 2 / 2);
                }
                if lossy {
                    run.retain(|_| rng.below(20) != 0);
                }
                let mut i = 1;
                while i < run.len() {
                    match rng.below(10) {
                        0 => run.swap(i - 1, i),
                        1 => {
                            let d = run[i - 1];
                            run.insert(i, d);
                            i += 1;
                        }
                        2 if i + 2 < run.len() => {
                            // two behind
                            let p = run.remove(i - 1);
                            run.insert(i + 1, p);
                        }
                        _ => {}
                    }
                    i += 1;
                }
                // The previous run's straggler arrives after this run's first packet.
                if run.is_empty() {
                    continue;
                }
                if let Some(Act::Relay {
                    src: s,
                    seg: g,
                    seq: q,
                    ts: t,
                    pt: p,
                    len: l,
                    ..
                }) = last_straggler.take()
                {
                    run.insert(
                        1.min(run.len()),
                        Act::Relay {
                            src: s,
                            seg: g,
                            seq: q,
                            ts: t,
                            pt: p,
                            len: l,
                            straggler: true,
                        },
                    );
                }
                let seq_of = |a: &Act| match a {
                    Act::Relay { seq, .. } => *seq,
                    _ => 0,
                };
                if stragglers && run.len() > 4 && rng.below(2) == 0 {
                    // Not the newest of its run: the newest arriving after
                    // the switch is taken for the source coming back.
                    let k = run.len() - 3;
                    let q = seq_of(&run[k]);
                    if run.iter().any(|a| seq_of(a).wrapping_sub(q) as i16 > 0) {
                        last_straggler = Some(run.remove(k));
                    }
                }
                acts.extend(run);
            }
            7 | 8 => {
                let samples = [80, 160, 240][rng.below(3) as usize];
                for _ in 0..(1 + rng.below(30)) {
                    acts.push(Act::Gen { seg, samples });
                }
            }
            _ => acts.push(Act::Switch),
        }
    }
    acts
}

/// Every sent packet's numbers follow from the rules: one SSRC; within a
/// source segment a fixed (seq, ts) offset (so late and duplicate packets
/// keep their place); across segments seq + 1 from the newest packet, the
/// marker, a forward timestamp step of at least the last packet's media;
/// no sequence number reused for a different packet; and, without loss or
/// stragglers, no gap at all.
fn check_properties(seed: u64, lossy: bool, stragglers: bool) -> (usize, usize) {
    let (mut late_dropped, mut late_sent) = (0, 0);
    use std::collections::HashMap;
    let mut rng = Rng::new(seed);
    let acts = script(&mut rng, lossy, stragglers);
    let init_seq = 65_535 - rng.below(300) as u16;
    let mut out = OutStream::new(OURS, 8000, init_seq, u32::MAX - rng.below(5000) as u32);
    out.map_payload_type(101, 96);
    let t0 = base();
    let mut now = t0;
    // (segment) -> (seq offset, ts offset)
    let mut offsets: HashMap<u32, (u16, u32)> = HashMap::new();
    // out seq -> the packet it carries
    let mut owner: HashMap<u16, (u32, u16, u32)> = HashMap::new();
    // newest out seq, its ts and media length
    let mut newest: Option<(u16, u32, u32, Instant)> = None;
    let mut gen_seg = None;
    let mut sent = 0usize;
    for act in acts {
        now += ms(15 + rng.below(10));
        if rng.below(50) == 0 {
            now += ms(rng.below(3000));
        }
        match act {
            Act::Switch => {
                out.switch_source();
                gen_seg = None;
            }
            Act::Gen { seg, samples } => {
                let h = out.generated(8, samples, now);
                let Some((nseq, nts, nlen, _)) = newest else {
                    assert_eq!((h.marker, h.seq), (true, init_seq), "seed {seed}");
                    owner.insert(h.seq, (0, h.seq, 0));
                    gen_seg = Some(seg);
                    newest = Some((h.seq, h.ts, samples, now));
                    sent += 1;
                    continue;
                };
                assert_eq!(h.seq, nseq.wrapping_add(1), "seed {seed}");
                if h.marker {
                    assert!(h.ts.wrapping_sub(nts) as i32 >= nlen as i32, "seed {seed}");
                } else {
                    // Only a generated run (one prompt or back-to-back
                    // prompts without a pause) continues unmarked.
                    assert!(gen_seg.is_some(), "seed {seed}: unmarked after a switch");
                    assert_eq!(h.ts, nts.wrapping_add(nlen), "seed {seed}");
                }
                let _ = seg;
                assert!(owner.insert(h.seq, (0, h.seq, 0)).is_none(), "seed {seed}");
                gen_seg = Some(seg);
                newest = Some((h.seq, h.ts, samples, now));
                sent += 1;
            }
            Act::Relay {
                src,
                seg,
                seq,
                ts,
                pt,
                len,
                straggler,
            } => {
                let mut b = pkt(pt, false, seq, ts, src, len);
                let verdict = out.relay(&mut b, now).expect("valid packet");
                if straggler {
                    assert_eq!(
                        verdict,
                        Relayed::Drop(DropReason::PreviousSource),
                        "seed {seed}"
                    );
                    late_dropped += 1;
                    continue;
                }
                if verdict != Relayed::Send {
                    // Only a packet reordered before its source's first.
                    assert_eq!(verdict, Relayed::Drop(DropReason::BeforeSource));
                    continue;
                }
                gen_seg = None;
                let (opt, m, oseq, ots, ossrc) = fields(&b);
                assert_eq!(ossrc, OURS);
                assert_eq!(opt, if pt == 101 { 96 } else { pt });
                let off = (oseq.wrapping_sub(seq), ots.wrapping_sub(ts));
                match offsets.get(&seg) {
                    Some(&o) => assert_eq!(o, off, "seed {seed}: offset changed in a source"),
                    None => {
                        offsets.insert(seg, off);
                        assert!(m, "seed {seed}: first packet of a source marked");
                        if let Some((nseq, nts, nlen, _)) = newest {
                            assert_eq!(oseq, nseq.wrapping_add(1), "seed {seed}");
                            assert!(ots.wrapping_sub(nts) as i32 >= nlen as i32, "seed {seed}");
                        } else {
                            assert_eq!(oseq, init_seq);
                        }
                    }
                }
                if let Some(prev) = owner.insert(oseq, (src, seq, seg)) {
                    assert_eq!(prev, (src, seq, seg), "seed {seed}: seq {oseq} reused");
                }
                let is_newest = match newest {
                    None => true,
                    Some((nseq, ..)) => (oseq.wrapping_sub(nseq) as i16) > 0,
                };
                if !is_newest {
                    late_sent += 1;
                }
                if is_newest {
                    newest = Some((oseq, ots, len as u32, now));
                }
                sent += 1;
            }
        }
    }
    assert!(sent > 400);
    if !lossy && !stragglers {
        // No loss: every number from the first on was used, none skipped.
        let (last, ..) = newest.expect("packets were sent");
        let span = usize::from(last.wrapping_sub(init_seq)) + 1;
        assert_eq!(owner.len(), span, "seed {seed}: a gap in the sequence");
    }
    (late_dropped, late_sent)
}

#[test]
fn property_continuity_without_loss() {
    let mut late = 0;
    for seed in 0..150 {
        late += check_properties(seed, false, false).1;
    }
    assert!(late > 1000, "the scripts reorder and duplicate ({late})");
}

#[test]
fn property_continuity_with_loss_reorder_duplicates_and_stragglers() {
    let (mut stragglers, mut late) = (0, 0);
    for seed in 1000..1150 {
        let (s, l) = check_properties(seed, true, true);
        stragglers += s;
        late += l;
    }
    assert!(stragglers > 100 && late > 1000, "{stragglers} {late}");
}
