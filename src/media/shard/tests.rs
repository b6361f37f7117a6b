//! The shard in virtual time: one behaviour per test (latching, source
//! switch continuity, payload-type mapping, transcoding, DTMF, playback
//! pacing and barge-in, hold, mixer, RTP timeout, statistics).

use super::*;
use crate::media::rfc4733::TelephoneEvent;
use crate::media::tone::Tone;
use crate::time::Duration;

const A: LegId = 10_000;
const B: LegId = 10_002;
const C: LegId = 10_004;

fn t0() -> Instant {
    crate::time::now()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn shard(now: Instant) -> Shard {
    Shard::new(ShardConfig::default(), A, 10_998, 7, now)
}

fn params(remote: &str, codec: Codec, event_pt: Option<u8>) -> LegParams {
    LegParams {
        remote: Some(addr(remote)),
        codec,
        voice_pt: codec.payload_type(),
        event_pt,
        send: true,
        recv: true,
        remote_rtcp: remote
            .parse::<SocketAddr>()
            .ok()
            .map(|a| SocketAddr::new(a.ip(), a.port() + 1)),
        rtcp_mux: false,
    }
}

/// A shard with A (PCMA, events 101) and B (PCMA, events 96) connected.
fn connected(now: Instant) -> Shard {
    let mut s = shard(now);
    s.handle_command(MediaCommand::Open { leg: A }, now);
    s.handle_command(MediaCommand::Open { leg: B }, now);
    s.handle_command(
        MediaCommand::Update {
            leg: A,
            params: params("10.0.0.1:4000", Codec::Pcma, Some(101)),
        },
        now,
    );
    s.handle_command(
        MediaCommand::Update {
            leg: B,
            params: params("10.0.0.2:5000", Codec::Pcma, Some(96)),
        },
        now,
    );
    s.handle_command(MediaCommand::Connect { a: A, b: B }, now);
    s
}

fn packet(pt: u8, marker: bool, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0u8; 12 + payload.len()];
    rtp::write_header(&mut v, pt, marker, seq, ts, ssrc).unwrap();
    v[12..].copy_from_slice(payload);
    v
}

fn voice(seq: u16, ssrc: u32, codec: Codec) -> Vec<u8> {
    let frame: Vec<u8> = (0..FRAME_SAMPLES)
        .map(|i| codec.encode_sample(((i as f64 * 0.3).sin() * 8000.0) as i16))
        .collect();
    packet(
        codec.payload_type(),
        false,
        seq,
        u32::from(seq) * 160,
        ssrc,
        &frame,
    )
}

fn event(pt: u8, marker: bool, seq: u16, ts: u32, digit: u8, end: bool, duration: u16) -> Vec<u8> {
    let ev = TelephoneEvent {
        event: digit,
        end,
        volume: 10,
        duration,
    };
    packet(pt, marker, seq, ts, 0xDD, &ev.to_bytes())
}

/// Feed one packet; return where it goes and the rewritten bytes.
fn feed(
    s: &mut Shard,
    leg: LegId,
    from: &str,
    mut pkt: Vec<u8>,
    now: Instant,
) -> (Forward, Vec<u8>) {
    let len = pkt.len();
    let f = s.handle_rtp(leg, addr(from), &mut pkt, len, now);
    (f, pkt)
}

fn header(b: &[u8]) -> (u8, bool, u16, u32, u32) {
    let p = Rtp::parse(b).unwrap();
    (
        p.payload_type(),
        p.marker(),
        p.sequence(),
        p.timestamp(),
        p.ssrc(),
    )
}

fn events(s: &mut Shard) -> Vec<MediaEvent> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

fn digits(s: &mut Shard) -> Vec<char> {
    events(s)
        .into_iter()
        .filter_map(|e| match e {
            MediaEvent::Digit { digit, .. } => Some(digit),
            _ => None,
        })
        .collect()
}

fn transmits(s: &mut Shard) -> Vec<Transmit> {
    std::iter::from_fn(|| s.poll_transmit()).collect()
}

#[test]
fn relays_both_ways_with_the_peers_own_stream() {
    let now = t0();
    let mut s = connected(now);
    let (f, out) = feed(
        &mut s,
        A,
        "10.0.0.1:4000",
        voice(1, 0xAAAA, Codec::Pcma),
        now,
    );
    assert_eq!(
        f,
        Forward::Send {
            leg: B,
            to: addr("10.0.0.2:5000"),
            len: 172
        }
    );
    let (pt, _, _, _, ssrc) = header(&out);
    assert_eq!(pt, 8);
    assert_ne!(ssrc, 0xAAAA, "B sees the gateway's SSRC for its leg");
    let (f, _) = feed(
        &mut s,
        B,
        "10.0.0.2:5000",
        voice(9, 0xBBBB, Codec::Pcma),
        now,
    );
    assert!(matches!(f, Forward::Send { leg: A, .. }));
    assert_eq!(s.stats().relayed, 2);
}

#[test]
fn symmetric_latching_sends_to_where_packets_come_from() {
    let now = t0();
    let mut s = connected(now);
    // B is behind NAT: its SDP says 10.0.0.2:5000, its packets come from
    // 198.51.100.7:31000.
    let _ = feed(
        &mut s,
        B,
        "198.51.100.7:31000",
        voice(1, 0xB, Codec::Pcma),
        now,
    );
    let (f, _) = feed(&mut s, A, "10.0.0.1:4000", voice(1, 0xA, Codec::Pcma), now);
    assert!(matches!(f, Forward::Send { to, .. } if to == addr("198.51.100.7:31000")));
    // Another source while the latched one is live is not accepted...
    let (f, _) = feed(
        &mut s,
        B,
        "203.0.113.9:999",
        voice(2, 0xB, Codec::Pcma),
        now + ms(20),
    );
    assert_eq!(f, Forward::Done);
    assert_eq!(s.stats().foreign_source, 1);
    // ...but after RELATCH_AFTER of silence it takes over (NAT rebinding).
    let later = now + ms(20) + RELATCH_AFTER;
    let _ = feed(
        &mut s,
        B,
        "198.51.100.7:31001",
        voice(3, 0xB, Codec::Pcma),
        later,
    );
    let (f, _) = feed(
        &mut s,
        A,
        "10.0.0.1:4000",
        voice(2, 0xA, Codec::Pcma),
        later,
    );
    assert!(matches!(f, Forward::Send { to, .. } if to == addr("198.51.100.7:31001")));
}

#[test]
fn latching_off_always_uses_the_sdp_address() {
    let now = t0();
    let mut s = Shard::new(
        ShardConfig {
            latching: Latching::Off,
            ..ShardConfig::default()
        },
        A,
        10_998,
        1,
        now,
    );
    for (leg, r) in [(A, "10.0.0.1:4000"), (B, "10.0.0.2:5000")] {
        s.handle_command(MediaCommand::Open { leg }, now);
        s.handle_command(
            MediaCommand::Update {
                leg,
                params: params(r, Codec::Pcma, Some(101)),
            },
            now,
        );
    }
    s.handle_command(MediaCommand::Connect { a: A, b: B }, now);
    let _ = feed(
        &mut s,
        B,
        "198.51.100.7:31000",
        voice(1, 0xB, Codec::Pcma),
        now,
    );
    let (f, _) = feed(&mut s, A, "10.0.0.1:4000", voice(1, 0xA, Codec::Pcma), now);
    assert!(matches!(f, Forward::Send { to, .. } if to == addr("10.0.0.2:5000")));
}

#[test]
fn a_source_switch_is_one_continuous_stream_for_the_far_side() {
    // Ringback plays into A, then B answers and its audio replaces it.
    let now = t0();
    let mut s = connected(now);
    let ring = Arc::new(ToneSignal::new(Tone::Ringback));
    s.handle_command(
        MediaCommand::Play {
            leg: A,
            what: Playable::Tone(ring),
            repeat: true,
            barge_in: false,
        },
        now,
    );
    let mut t = now;
    let mut seen = Vec::new();
    for _ in 0..10 {
        t += TICK;
        s.handle_timeout(t);
        for tx in transmits(&mut s) {
            seen.push(header(&tx.data));
        }
    }
    // While the tone plays, B's audio is held back from A.
    let (f, _) = feed(
        &mut s,
        B,
        "10.0.0.2:5000",
        voice(500, 0xBBBB, Codec::Pcma),
        t,
    );
    assert_eq!(f, Forward::Done);
    s.handle_command(MediaCommand::Stop { leg: A }, t);
    for k in 1..=5u16 {
        let (f, out) = feed(
            &mut s,
            B,
            "10.0.0.2:5000",
            voice(500 + k, 0xBBBB, Codec::Pcma),
            t + ms(20 * u64::from(k)),
        );
        assert!(matches!(f, Forward::Send { leg: A, .. }));
        seen.push(header(&out));
    }
    assert_eq!(seen.len(), 15);
    let ssrc = seen[0].4;
    for w in seen.windows(2) {
        assert_eq!(w[1].4, ssrc, "one SSRC across the switch");
        assert_eq!(w[1].2, w[0].2.wrapping_add(1), "sequence continues");
        assert!(
            w[1].3.wrapping_sub(w[0].3) >= 160,
            "timestamp moves forward"
        );
    }
    assert!(seen[0].1, "first packet of the stream is marked");
    assert!(seen[10].1, "the switch to relayed audio is marked");
}

#[test]
fn telephone_event_payload_types_are_mapped() {
    let now = t0();
    let mut s = connected(now);
    let (f, out) = feed(
        &mut s,
        A,
        "10.0.0.1:4000",
        event(101, true, 1, 160, 5, false, 160),
        now,
    );
    assert!(matches!(f, Forward::Send { leg: B, .. }));
    assert_eq!(header(&out).0, 96, "101 on A is 96 on B");
    let (f, out) = feed(
        &mut s,
        B,
        "10.0.0.2:5000",
        event(96, true, 1, 160, 7, false, 160),
        now,
    );
    assert!(matches!(f, Forward::Send { leg: A, .. }));
    assert_eq!(header(&out).0, 101);
    // A payload type nobody agreed is dropped and counted.
    let (f, _) = feed(
        &mut s,
        A,
        "10.0.0.1:4000",
        packet(97, false, 2, 320, 0xDD, &[0; 20]),
        now,
    );
    assert_eq!(f, Forward::Done);
    assert_eq!(s.stats().unknown_pt, 1);
}

#[test]
fn pcma_and_pcmu_legs_are_transcoded() {
    let now = t0();
    let mut s = connected(now);
    s.handle_command(
        MediaCommand::Update {
            leg: B,
            params: params("10.0.0.2:5000", Codec::Pcmu, Some(96)),
        },
        now,
    );
    let inp = voice(1, 0xA, Codec::Pcma);
    let (f, out) = feed(&mut s, A, "10.0.0.1:4000", inp.clone(), now);
    assert!(matches!(f, Forward::Send { leg: B, .. }));
    assert_eq!(header(&out).0, 0);
    for (a, u) in inp[12..].iter().zip(&out[12..]) {
        let (x, y) = (g711::alaw_decode(*a), g711::ulaw_decode(*u));
        assert!((i32::from(x) - i32::from(y)).abs() <= 512, "{x} vs {y}");
    }
    assert_eq!(s.stats().transcoded, 1);
}

#[test]
fn each_rfc4733_digit_is_reported_once_despite_updates_and_end_retransmits() {
    let now = t0();
    let mut s = connected(now);
    // Digit 5: start, two updates, three end packets (one duplicate of the
    // first end), then digit 5 again with a new timestamp.
    for (seq, (ts, marker, end, dur)) in (1u16..).zip([
        (1000, true, false, 160),
        (1000, false, false, 320),
        (1000, false, false, 480),
        (1000, false, true, 640),
        (1000, false, true, 640),
        (1000, false, true, 640),
        (3000, true, false, 160),
        (3000, false, true, 320),
        (3000, false, true, 320),
    ]) {
        let _ = feed(
            &mut s,
            A,
            "10.0.0.1:4000",
            event(101, marker, seq, ts, 5, end, dur),
            now + ms(u64::from(seq) * 20),
        );
    }
    assert_eq!(digits(&mut s), vec!['5', '5']);
}

#[test]
fn a_digit_whose_end_is_lost_is_reported_by_timeout() {
    let now = t0();
    let mut s = connected(now);
    let _ = feed(
        &mut s,
        A,
        "10.0.0.1:4000",
        event(101, true, 1, 800, 9, false, 160),
        now,
    );
    assert!(digits(&mut s).is_empty());
    s.handle_timeout(now + ms(400));
    assert_eq!(digits(&mut s), vec!['9']);
    // Its late end packet is not a second digit.
    let _ = feed(
        &mut s,
        A,
        "10.0.0.1:4000",
        event(101, false, 2, 800, 9, true, 800),
        now + ms(420),
    );
    assert!(digits(&mut s).is_empty());
}

#[test]
fn inband_dtmf_is_detected_when_no_telephone_event_was_agreed() {
    let now = t0();
    let mut s = connected(now);
    s.handle_command(
        MediaCommand::Update {
            leg: A,
            params: params("10.0.0.1:4000", Codec::Pcma, None),
        },
        now,
    );
    // '7' = 852 Hz + 1209 Hz, 100 ms, then 100 ms silence.
    let (lo, hi) = crate::media::inband::tones_of('7').unwrap();
    let mut n = 0usize;
    for (seq, frame) in (1u16..).zip(0..10) {
        let mut payload = [Codec::Pcma.silence(); FRAME_SAMPLES];
        if frame < 5 {
            for (i, code) in payload.iter_mut().enumerate() {
                let t = (n + i) as f64 / 8000.0;
                let x = 6000.0 * (2.0 * std::f64::consts::PI * f64::from(lo) * t).sin()
                    + 6000.0 * (2.0 * std::f64::consts::PI * f64::from(hi) * t).sin();
                *code = Codec::Pcma.encode_sample(x as i16);
            }
        }
        n += FRAME_SAMPLES;
        let _ = feed(
            &mut s,
            A,
            "10.0.0.1:4000",
            packet(8, false, seq, u32::from(seq) * 160, 0xA, &payload),
            now + ms(20 * u64::from(seq)),
        );
    }
    let ev: Vec<_> = events(&mut s)
        .into_iter()
        .filter_map(|e| match e {
            MediaEvent::Digit { digit, source, .. } => Some((digit, source)),
            _ => None,
        })
        .collect();
    assert_eq!(ev, vec![('7', DigitSource::Inband)]);
}

#[test]
fn prompts_are_paced_by_the_tick_without_drift_and_end_with_an_event() {
    let now = t0();
    let mut s = connected(now);
    let pcm: Vec<i16> = (0..8000).map(|i| ((i % 40) as i16 - 20) * 500).collect();
    let prompt = Arc::new(Prompt::from_pcm("one-second", pcm));
    s.handle_command(
        MediaCommand::Play {
            leg: A,
            what: Playable::Prompt(prompt),
            repeat: false,
            barge_in: true,
        },
        now,
    );
    // The driver wakes late now and then (up to 15 ms); packets carry the
    // tick they belong to, so the schedule never drifts.
    let mut sent = Vec::new();
    let mut t = now;
    let mut done = false;
    for k in 0..60u64 {
        t = now + TICK * (k as u32 + 1) + ms(k % 4 * 5);
        s.handle_timeout(t);
        for tx in transmits(&mut s) {
            assert_eq!(tx.leg, A);
            assert_eq!(tx.to, addr("10.0.0.1:4000"));
            sent.push(header(&tx.data));
        }
        for e in events(&mut s) {
            if let MediaEvent::PlaybackDone {
                leg: A,
                interrupted,
            } = e
            {
                assert!(!interrupted);
                done = true;
            }
        }
    }
    let _ = t;
    assert!(done);
    assert_eq!(sent.len(), 50, "1 s of prompt = 50 frames");
    for (i, w) in sent.windows(2).enumerate() {
        assert_eq!(w[1].3.wrapping_sub(w[0].3), 160, "frame {i}");
        assert_eq!(w[1].2, w[0].2.wrapping_add(1));
    }
}

#[test]
fn a_digit_barges_in_on_a_prompt() {
    let now = t0();
    let mut s = connected(now);
    let prompt = Arc::new(Prompt::from_pcm("long", vec![1000; 80_000]));
    s.handle_command(
        MediaCommand::Play {
            leg: A,
            what: Playable::Prompt(prompt),
            repeat: false,
            barge_in: true,
        },
        now,
    );
    s.handle_timeout(now + ms(100));
    assert_eq!(transmits(&mut s).len(), 5);
    let _ = feed(
        &mut s,
        A,
        "10.0.0.1:4000",
        event(101, true, 1, 160, 1, true, 160),
        now + ms(110),
    );
    let ev = events(&mut s);
    assert!(ev
        .iter()
        .any(|e| matches!(e, MediaEvent::Digit { digit: '1', .. })));
    assert!(ev.iter().any(|e| matches!(
        e,
        MediaEvent::PlaybackDone {
            leg: A,
            interrupted: true
        }
    )));
    s.handle_timeout(now + ms(200));
    assert!(transmits(&mut s).is_empty(), "the prompt stopped");
}

#[test]
fn a_held_leg_gets_nothing_and_is_not_timed_out() {
    let now = t0();
    let mut s = connected(now);
    // A puts the call on hold: sendonly from A means we only receive.
    let mut held = params("10.0.0.1:4000", Codec::Pcma, Some(101));
    held.send = false;
    s.handle_command(
        MediaCommand::Update {
            leg: A,
            params: held,
        },
        now,
    );
    let (f, _) = feed(&mut s, B, "10.0.0.2:5000", voice(1, 0xB, Codec::Pcma), now);
    assert_eq!(f, Forward::Done);
    assert_eq!(s.stats().not_forwarded, 1);
    // B inactive: B is not expected to send, so no timeout for B.
    let mut inactive = params("10.0.0.2:5000", Codec::Pcma, Some(96));
    inactive.recv = false;
    inactive.send = false;
    s.handle_command(
        MediaCommand::Update {
            leg: B,
            params: inactive,
        },
        now,
    );
    // A keeps sending (music on hold from its phone).
    let mut t = now;
    for k in 0..1600u16 {
        t = now + ms(20 * u64::from(k));
        let _ = feed(
            &mut s,
            A,
            "10.0.0.1:4000",
            voice(k + 2, 0xA, Codec::Pcma),
            t,
        );
        s.handle_timeout(t);
    }
    assert!(!events(&mut s)
        .iter()
        .any(|e| matches!(e, MediaEvent::RtpTimeout { .. })));
    let _ = t;
}

#[test]
fn silence_from_a_sending_leg_times_out_once() {
    let now = t0();
    let mut s = connected(now);
    let _ = feed(&mut s, A, "10.0.0.1:4000", voice(1, 0xA, Codec::Pcma), now);
    let _ = feed(&mut s, B, "10.0.0.2:5000", voice(1, 0xB, Codec::Pcma), now);
    // B keeps talking, A goes silent.
    let mut timeouts = Vec::new();
    for k in 1..=2000u64 {
        let t = now + ms(20 * k);
        let _ = feed(
            &mut s,
            B,
            "10.0.0.2:5000",
            voice(1 + k as u16, 0xB, Codec::Pcma),
            t,
        );
        s.handle_timeout(t);
        for e in events(&mut s) {
            if let MediaEvent::RtpTimeout { leg } = e {
                timeouts.push((leg, k * 20));
            }
        }
    }
    assert_eq!(timeouts.len(), 1, "{timeouts:?}");
    let (leg, at_ms) = timeouts[0];
    assert_eq!(leg, A);
    assert!(
        (30_000..=31_020).contains(&at_ms),
        "timed out at {at_ms} ms"
    );
}

#[test]
fn three_party_conference_each_hears_the_others_and_mute_and_leave_work() {
    let now = t0();
    let mut s = shard(now);
    let peers = [
        (A, "10.0.0.1:4000"),
        (B, "10.0.0.2:5000"),
        (C, "10.0.0.3:6000"),
    ];
    for (leg, r) in peers {
        s.handle_command(MediaCommand::Open { leg }, now);
        s.handle_command(
            MediaCommand::Update {
                leg,
                params: params(r, Codec::Pcma, Some(101)),
            },
            now,
        );
        s.handle_command(MediaCommand::Join { conf: 1, leg }, now);
    }
    // Only A speaks (a loud constant), B and C are silent.
    let speak = |s: &mut Shard, who: LegId, from: &str, seq: u16, level: i16, t: Instant| {
        let payload = [Codec::Pcma.encode_sample(level); FRAME_SAMPLES];
        let (f, _) = feed(
            s,
            who,
            from,
            packet(8, false, seq, u32::from(seq) * 160, 0x1, &payload),
            t,
        );
        assert_eq!(f, Forward::Done, "conference audio is mixed, not relayed");
    };
    let level_at = |txs: &[Transmit], leg: LegId| -> Option<i16> {
        txs.iter()
            .find(|t| t.leg == leg)
            .map(|t| g711::alaw_decode(t.data[12 + 80]))
    };
    let t1 = now + ms(10);
    speak(&mut s, A, "10.0.0.1:4000", 1, 4000, t1);
    speak(&mut s, B, "10.0.0.2:5000", 1, 0, t1);
    speak(&mut s, C, "10.0.0.3:6000", 1, 0, t1);
    s.handle_timeout(now + TICK);
    let txs = transmits(&mut s);
    assert_eq!(txs.len(), 3);
    assert!(
        level_at(&txs, A).unwrap().abs() < 64,
        "A does not hear itself"
    );
    assert!(level_at(&txs, B).unwrap() > 3000, "B hears A");
    assert!(level_at(&txs, C).unwrap() > 3000, "C hears A");
    // A muted: nobody hears it.
    s.handle_command(
        MediaCommand::Mute {
            leg: A,
            muted: true,
        },
        now + TICK,
    );
    speak(&mut s, A, "10.0.0.1:4000", 2, 4000, now + ms(30));
    s.handle_timeout(now + TICK * 2);
    let txs = transmits(&mut s);
    assert!(level_at(&txs, B).unwrap().abs() < 64);
    // B leaves; A (unmuted) and C go on.
    s.handle_command(
        MediaCommand::Mute {
            leg: A,
            muted: false,
        },
        now + TICK * 2,
    );
    s.handle_command(MediaCommand::Leave { leg: B }, now + TICK * 2);
    speak(&mut s, A, "10.0.0.1:4000", 3, 4000, now + ms(50));
    s.handle_timeout(now + TICK * 3);
    let txs = transmits(&mut s);
    assert!(level_at(&txs, B).is_none(), "B left");
    assert!(level_at(&txs, C).unwrap() > 3000);
}

#[test]
fn dtmf_out_is_rfc4733_on_the_legs_payload_type() {
    let now = t0();
    let mut s = connected(now);
    s.handle_command(
        MediaCommand::SendDigit {
            leg: B,
            digit: '#',
            duration: ms(100),
        },
        now,
    );
    let mut pkts = Vec::new();
    for k in 1..=10u32 {
        s.handle_timeout(now + TICK * k);
        pkts.extend(transmits(&mut s));
    }
    // 5 updates (the last with E) + 2 end retransmits.
    assert_eq!(pkts.len(), 7);
    let ts0 = header(&pkts[0].data).3;
    for (i, p) in pkts.iter().enumerate() {
        let (pt, marker, _, ts, _) = header(&p.data);
        assert_eq!(pt, 96);
        assert_eq!(marker, i == 0);
        assert_eq!(ts, ts0, "one timestamp for the whole event");
        let ev = TelephoneEvent::parse(&p.data[12..]).unwrap();
        assert_eq!(ev.event, 11);
        assert_eq!(ev.end, i >= 4);
    }
}

#[test]
fn garbage_unknown_legs_and_rtcp_are_counted_never_relayed() {
    let now = t0();
    let mut s = connected(now);
    let (f, _) = feed(&mut s, A, "10.0.0.1:4000", vec![0x00, 1, 2], now);
    assert_eq!(f, Forward::Done);
    let (f, _) = feed(
        &mut s,
        10_100,
        "10.0.0.1:4000",
        voice(1, 1, Codec::Pcma),
        now,
    );
    assert_eq!(f, Forward::Done);
    let (f, _) = feed(
        &mut s,
        10_001,
        "10.0.0.1:4000",
        voice(1, 1, Codec::Pcma),
        now,
    );
    assert_eq!(f, Forward::Done);
    // An RTCP receiver report on the RTP port (rtcp-mux).
    let rr = [0x80, 201, 0, 1, 0, 0, 0, 1];
    let (f, _) = feed(&mut s, A, "10.0.0.1:4000", rr.to_vec(), now);
    assert_eq!(f, Forward::Done);
    s.handle_rtcp(A, addr("10.0.0.1:4001"), &rr, now);
    let st = s.stats();
    assert_eq!((st.malformed, st.unknown_leg, st.rtcp), (1, 2, 2));
    assert_eq!(st.relayed, 0);
}

#[test]
fn close_reports_statistics_and_frees_the_leg() {
    let now = t0();
    let mut s = connected(now);
    for k in 1..=50u16 {
        if k == 10 {
            continue; // one lost
        }
        let _ = feed(
            &mut s,
            A,
            "10.0.0.1:4000",
            voice(k, 0xA, Codec::Pcma),
            now + ms(20 * u64::from(k)),
        );
    }
    s.handle_command(MediaCommand::Close { leg: A }, now + ms(1100));
    let closed = events(&mut s)
        .into_iter()
        .find_map(|e| match e {
            MediaEvent::Closed { leg: A, stats } => Some(stats),
            _ => None,
        })
        .unwrap();
    assert_eq!(closed.packets_received, 49);
    assert_eq!(closed.cumulative_lost, 1);
    assert!(closed.mos > 3.5 && closed.mos < 4.5, "{}", closed.mos);
    assert!(!s.has_leg(A));
    assert_eq!(s.open_legs(), 1);
    // B no longer relays anywhere.
    let (f, _) = feed(&mut s, B, "10.0.0.2:5000", voice(1, 0xB, Codec::Pcma), now);
    assert_eq!(f, Forward::Done);
}

/// The RTCP reports the shard sent within `secs` of virtual time after
/// `start`, with whether they left from the RTCP socket.
fn reports_until(s: &mut Shard, start: Instant, secs: u64) -> Vec<Transmit> {
    let mut out = Vec::new();
    let mut t = start;
    while t < start + Duration::from_secs(secs) {
        t += TICK;
        s.handle_timeout(t);
        out.extend(
            transmits(s)
                .into_iter()
                .filter(|x| x.data.get(1).is_some_and(|b| (200..=201).contains(b))),
        );
    }
    out
}

#[test]
fn each_leg_sends_rtcp_reports_every_5_s_sr_when_sending_rr_when_only_receiving() {
    let now = t0();
    let mut s = connected(now);
    s.set_wall_clock(now, Duration::from_secs(1_700_000_000));
    // A talks for 1 s (one packet lost); B is silent. A→B is relayed.
    for k in 1..=50u16 {
        if k == 20 {
            continue;
        }
        let _ = feed(
            &mut s,
            A,
            "10.0.0.1:4000",
            voice(k, 0xAAAA, Codec::Pcma),
            now + ms(20 * u64::from(k)),
        );
    }
    let reports = reports_until(&mut s, now, 11);
    let of = |leg: LegId| -> Vec<&Transmit> { reports.iter().filter(|t| t.leg == leg).collect() };
    // Two reports per leg in 11 s.
    assert_eq!(of(A).len(), 2, "{reports:?}");
    assert_eq!(of(B).len(), 2);
    for t in &reports {
        assert!(t.rtcp, "from the RTCP socket (no rtcp-mux)");
        let h = rtp::check_rtcp(&t.data).expect("a valid compound packet");
        assert_eq!(h.packets, 2, "report + SDES");
    }
    // A only received: an RR to A's RTCP address with a block on A's SSRC.
    let a = &of(A)[0];
    assert_eq!(a.to, addr("10.0.0.1:4001"));
    assert_eq!(a.data[1], 201);
    assert_eq!(a.data[0] & 0x1f, 1, "one report block");
    let block = &a.data[8..32];
    assert_eq!(
        u32::from_be_bytes([block[0], block[1], block[2], block[3]]),
        0xAAAA
    );
    let lost = u32::from_be_bytes([0, block[5], block[6], block[7]]);
    assert_eq!(lost, 1, "cumulative lost");
    // B sent what A said: an SR with the packet count and an NTP time.
    let b = &of(B)[0];
    assert_eq!(b.to, addr("10.0.0.2:5001"));
    assert_eq!(b.data[1], 200);
    let ntp_secs = u32::from_be_bytes([b.data[8], b.data[9], b.data[10], b.data[11]]);
    // Unix 1,700,000,000 s + up to 11 s, in NTP seconds (since 1900).
    assert!(
        (3_908_988_800..=3_908_988_811).contains(&ntp_secs),
        "{ntp_secs}"
    );
    let packets = u32::from_be_bytes([b.data[20], b.data[21], b.data[22], b.data[23]]);
    assert_eq!(packets, 49);
    assert!(b.data.windows(8).any(|w| w == b"@hotline"), "SDES CNAME");
}

#[test]
fn a_peer_sender_report_is_answered_with_lsr_and_dlsr_at_its_source() {
    let now = t0();
    let mut s = connected(now);
    let _ = feed(
        &mut s,
        A,
        "10.0.0.1:4000",
        voice(1, 0xAAAA, Codec::Pcma),
        now,
    );
    // The peer's SR: NTP 0x11223344_55667788, from a NAT'd RTCP port.
    let mut sr = vec![0x80, 200, 0, 6, 0, 0, 0xAA, 0xAA];
    sr.extend_from_slice(&0x1122_3344_5566_7788u64.to_be_bytes());
    sr.extend_from_slice(&[0; 12]);
    s.handle_rtcp(A, addr("198.51.100.7:40001"), &sr, now + ms(100));
    let reports = reports_until(&mut s, now, 6);
    let a = reports.iter().find(|t| t.leg == A).expect("a report for A");
    assert_eq!(a.to, addr("198.51.100.7:40001"), "symmetric RTCP");
    let block = &a.data[8..32];
    let lsr = u32::from_be_bytes([block[16], block[17], block[18], block[19]]);
    let dlsr = u32::from_be_bytes([block[20], block[21], block[22], block[23]]);
    assert_eq!(lsr, 0x3344_5566);
    // Sent at some tick within the first 5 s, after the SR at 100 ms.
    let elapsed = f64::from(dlsr) / 65_536.0;
    assert!(elapsed > 0.0 && elapsed <= 5.0, "dlsr {elapsed} s");
}

#[test]
fn with_rtcp_mux_reports_go_from_the_rtp_port_to_the_rtp_address() {
    let now = t0();
    let mut s = connected(now);
    let mut p = params("10.0.0.1:4000", Codec::Pcma, Some(101));
    p.rtcp_mux = true;
    s.handle_command(MediaCommand::Update { leg: A, params: p }, now);
    let reports = reports_until(&mut s, now, 6);
    let a = reports.iter().find(|t| t.leg == A).expect("a report for A");
    assert!(!a.rtcp);
    assert_eq!(a.to, addr("10.0.0.1:4000"));
    assert!(rtp::is_rtcp(&a.data), "demultiplexable from RTP (RFC 5761)");
}

/// `pkt` with RTP padding (RFC 3550 §5.1: P bit, `n` bytes, the last one
/// the count).
fn padded(mut pkt: Vec<u8>, n: u8) -> Vec<u8> {
    pkt[0] |= 0x20;
    pkt.extend(std::iter::repeat_n(0xEE, usize::from(n) - 1));
    pkt.push(n);
    pkt
}

#[test]
fn padded_packets_are_read_and_transcoded_at_their_payload_not_their_padding() {
    let now = t0();
    let mut s = connected(now);
    s.handle_command(
        MediaCommand::Update {
            leg: B,
            params: params("10.0.0.2:5000", Codec::Pcmu, Some(96)),
        },
        now,
    );
    // A telephone-event with 4 bytes of padding is still digit 3.
    let _ = feed(
        &mut s,
        A,
        "10.0.0.1:4000",
        padded(event(101, true, 1, 160, 3, true, 320), 4),
        now,
    );
    assert_eq!(digits(&mut s), vec!['3']);
    // A padded PCMA frame: the 160 payload bytes are transcoded, the
    // padding is left as it was.
    let inp = padded(voice(2, 0xA, Codec::Pcma), 8);
    let (f, out) = feed(&mut s, A, "10.0.0.1:4000", inp.clone(), now + ms(20));
    assert!(matches!(
        f,
        Forward::Send {
            leg: B,
            len: 180,
            ..
        }
    ));
    assert_eq!(header(&out).0, 0);
    for (a, u) in inp[12..172].iter().zip(&out[12..172]) {
        assert_eq!(*u, g711::alaw_to_ulaw(*a));
    }
    assert_eq!(&out[172..], &inp[172..]);
}
