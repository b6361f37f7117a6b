//! The media test scaffolding, proven without the gateway.
//!
//! `sip-scenarios/media-uac.xml` (carrier: audio, then RFC 4733 digits 1, 2,
//! 3) calls `sip-scenarios/media-uas.xml` (callee: rings, answers, echoes
//! RTP with SIPp's `-rtp_echo`) directly, SIPp to SIPp. The caller's media
//! address is a [`RtpSink`] the test owns, so the test sees what "the
//! caller hears": here, its own audio and digits echoed back by the callee.
//! Once the gateway anchors RTP, the same pair runs through it and the same
//! analysis tells ringback, audio and DTMF apart.
//!
//! Also: the analysis functions (Goertzel, tone share, RMS, RTP parsing,
//! sequence continuity, RFC 4733 events) on synthetic input.
//!
//! Needs `sipp` (fails, never skips, without it) and root or CAP_NET_RAW
//! (SIPp plays pcaps through a raw socket).
#![allow(clippy::disallowed_methods)] // real processes: the wall clock is the point

mod common;

use common::e2e::{media_uac, media_uas, require_sipp, SippProc, TestDir};
use common::rtp_sink::{
    audio_samples, continuity, decode, dominant_tone, dtmf_digits, dtmf_events, noise, parse_rtp,
    rms, sine, streams, tone_ratio, RtpSink, SinkPacket,
};
use std::net::SocketAddr;
use std::time::Duration;

const PCMA: u8 = 8;
const TELEPHONE_EVENT: u8 = 101;

// ---------------------------------------------------------------------------
// SIPp to SIPp through the sink
// ---------------------------------------------------------------------------

fn context(sink: &RtpSink, procs: &[&SippProc]) -> String {
    let mut s = sink.summary();
    for p in procs {
        s.push_str(&p.diagnostics());
    }
    s
}

#[test]
fn sipp_echo_of_audio_and_dtmf_reaches_the_sink() {
    require_sipp();
    let dir = TestDir::new("sipp_echo_of_audio_and_dtmf_reaches_the_sink");
    let (mut sink, mp) = RtpSink::beside_sipp();
    let ring_ms = 500;
    let audio_ms = 2000;

    let uas = media_uas(common::e2e::free_port(), ring_ms);
    let uac = media_uac(
        SocketAddr::from(([127, 0, 0, 1], uas.local_port())),
        mp,
        audio_ms,
    );
    let mut uas_proc = uas.spawn(&dir);
    let mut uac_proc = uac.spawn(&dir);
    uac_proc.expect_success(Duration::from_secs(45), &context(&sink, &[&uas_proc]));
    uas_proc.expect_success(Duration::from_secs(15), &context(&sink, &[&uac_proc]));
    let packets = sink.stop();
    let why = || context(&sink, &[&uac_proc, &uas_proc]);
    eprintln!(
        "{}\n{}\n{}",
        uac_proc.command,
        uas_proc.command,
        sink.summary()
    );

    assert_eq!(sink.junk(), 0, "non-RTP datagrams at the sink\n{}", why());

    // Nothing during ringing: the callee sends no media before it answers
    // (through the gateway, this is where ringback will be).
    let first = packets.first().map(|p| p.at);
    assert!(
        first.is_some_and(|at| at >= Duration::from_millis(ring_ms)),
        "first packet at {first:?}, before the callee answered after {ring_ms} ms\n{}",
        why()
    );

    // Audio: g711a.pcap, 30 ms packets, for audio_ms (~66 packets).
    let audio: Vec<SinkPacket> = packets.iter().filter(|p| p.pt == PCMA).cloned().collect();
    let expected = audio_ms / 30;
    assert!(
        (expected as usize / 2..=expected as usize * 2).contains(&audio.len()),
        "{} PT 8 packets echoed, expected about {expected}\n{}",
        audio.len(),
        why()
    );
    assert!(
        audio.iter().all(|p| p.payload.len() == 240),
        "g711a.pcap packets carry 240 bytes (30 ms)\n{}",
        why()
    );
    let samples = audio_samples(&audio, PCMA);
    let level = rms(&samples);
    assert!(
        level > 300.0,
        "echoed audio RMS {level:.0}: silence, expected speech\n{}",
        why()
    );
    eprintln!(
        "echoed audio: {} packets, RMS {level:.0}, dominant {:?}",
        audio.len(),
        dominant_tone(&samples)
    );
    let c = continuity(&audio);
    assert!(
        c.is_one_continuous_stream(),
        "echoed audio is not one continuous stream: {c:?}\n{}",
        why()
    );

    // DTMF: digits 1, 2, 3, each complete (end packet seen), distinct.
    let events = dtmf_events(&packets, TELEPHONE_EVENT);
    eprintln!("echoed telephone-events: {events:?}");
    assert_eq!(
        dtmf_digits(&packets, TELEPHONE_EVENT),
        vec![1, 2, 3],
        "echoed telephone-events {events:?}\n{}",
        why()
    );
    for e in &events {
        assert!(
            e.ended && e.packets >= 4,
            "digit {} incomplete: {e:?}\n{}",
            e.event,
            why()
        );
    }
    for pair in events.windows(2) {
        let gap = pair[1].first_at.saturating_sub(pair[0].first_at);
        assert!(
            gap >= Duration::from_millis(400),
            "digits {} and {} only {gap:?} apart\n{}",
            pair[0].event,
            pair[1].event,
            why()
        );
    }
    // Every digit comes after the audio.
    let last_audio = audio.last().map(|p| p.at).unwrap_or_default();
    assert!(
        events.iter().all(|e| e.first_at >= last_audio),
        "a digit arrived before the audio ended\n{}",
        why()
    );
    // What SIPp's pcaps look like (the gateway will have to re-stamp them
    // into the caller-facing stream): audio on one SSRC, the three digits on
    // another with sequence jumps between digits and repeated end packets.
    let st = streams(&packets);
    assert_eq!(st.len(), 2, "streams {st:?}");
    let dtmf_stream = continuity(
        &packets
            .iter()
            .filter(|p| p.pt == TELEPHONE_EVENT)
            .cloned()
            .collect::<Vec<_>>(),
    );
    assert!(
        dtmf_stream.ssrcs == 1 && dtmf_stream.gaps == 2 && dtmf_stream.repeats == 6,
        "SIPp's DTMF pcaps: one SSRC, a jump between digits, 2 repeated end packets per digit; got {dtmf_stream:?}"
    );
}

// ---------------------------------------------------------------------------
// analysis on synthetic input
// ---------------------------------------------------------------------------

#[test]
fn goertzel_tells_450_hz_ringback_from_noise_and_other_tones() {
    let n = 8000; // one second
    let tone = sine(450.0, 8000.0, n);
    let r = tone_ratio(&tone, 450.0);
    assert!(r > 0.95, "pure 450 Hz: share {r}");
    assert!((rms(&tone) - 8000.0 / 2f64.sqrt()).abs() < 50.0);

    // A 450 Hz tone does not register at its neighbours' bins far away.
    assert!(tone_ratio(&tone, 1000.0) < 0.01);
    assert!(tone_ratio(&tone, 350.0) < 0.01);

    let hiss = noise(8000.0, n, 7);
    let r = tone_ratio(&hiss, 450.0);
    assert!(r < 0.05, "white noise: 450 Hz share {r}");
    assert!(rms(&hiss) > 3000.0);

    let other = sine(1000.0, 8000.0, n);
    assert!(tone_ratio(&other, 450.0) < 0.01);

    // Tone plus noise 20 dB down: still clearly the tone.
    let mixed: Vec<i16> = tone
        .iter()
        .zip(noise(800.0, n, 11))
        .map(|(&a, b)| a.saturating_add(b))
        .collect();
    assert!(tone_ratio(&mixed, 450.0) > 0.9);

    // Chinese ringback cadence, 1 s on / 4 s off: silence carries no energy,
    // so the share stays high; RMS over the whole is lower.
    let mut cadence = tone.clone();
    cadence.extend(std::iter::repeat_n(0i16, 4 * 8000));
    assert!(tone_ratio(&cadence, 450.0) > 0.95);
    assert!(rms(&cadence) < rms(&tone));

    // Silence: no tone, no level.
    let silence = vec![0i16; n];
    assert_eq!(tone_ratio(&silence, 450.0), 0.0);
    assert_eq!(rms(&silence), 0.0);
    assert_eq!(dominant_tone(&silence), None);

    // Dominant tone finds the frequency to 10 Hz.
    let (f, share) = dominant_tone(&tone).expect("a tone");
    assert_eq!(f, 450.0);
    assert!(share > 0.9, "share {share}");
    let (f, _) = dominant_tone(&sine(1209.0, 5000.0, n)).expect("a tone");
    assert!((f - 1209.0).abs() <= 10.0, "found {f}");
    let (_, share) = dominant_tone(&hiss).expect("noise has energy");
    assert!(share < 0.05, "noise has no dominant tone: {share}");
}

#[test]
fn g711_decoding_keeps_the_tone() {
    let tone = sine(450.0, 6000.0, 1600);
    let alaw: Vec<u8> = tone
        .iter()
        .map(|&s| audio_codec_algorithms::encode_alaw(s))
        .collect();
    let ulaw: Vec<u8> = tone
        .iter()
        .map(|&s| audio_codec_algorithms::encode_ulaw(s))
        .collect();
    for (pt, payload) in [(8u8, &alaw), (0u8, &ulaw)] {
        let back = decode(pt, payload);
        assert_eq!(back.len(), tone.len());
        assert!(tone_ratio(&back, 450.0) > 0.95, "PT {pt}");
        assert!(
            (rms(&back) - rms(&tone)).abs() / rms(&tone) < 0.02,
            "PT {pt}"
        );
    }
    // A-law and mu-law silence codes decode near zero; other PTs to nothing.
    assert!(rms(&decode(8, &[0xd5; 160])) < 10.0);
    assert!(rms(&decode(0, &[0xff; 160])) < 10.0);
    assert!(decode(101, &[1, 2, 3, 4]).is_empty());
}

fn rtp(pt: u8, marker: bool, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0x80, pt | if marker { 0x80 } else { 0 }];
    v.extend_from_slice(&seq.to_be_bytes());
    v.extend_from_slice(&ts.to_be_bytes());
    v.extend_from_slice(&ssrc.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

fn at(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

#[test]
fn rtp_parsing_continuity_and_telephone_events() {
    let from: SocketAddr = "127.0.0.1:4000".parse().unwrap();
    // Plain packet.
    let p = parse_rtp(&rtp(8, true, 7, 160, 0xabc, &[0xd5; 160]), at(0), from).unwrap();
    assert_eq!(
        (p.pt, p.seq, p.ts, p.ssrc, p.marker),
        (8, 7, 160, 0xabc, true)
    );
    assert_eq!(p.payload.len(), 160);
    // One CSRC, a header extension of one word, 3 bytes of padding.
    let mut v = vec![0xb1, 0]; // V=2, P, X, CC=1
    v.extend_from_slice(&[0, 1, 0, 0, 0, 2, 0, 0, 0, 3]);
    v.extend_from_slice(&[9, 9, 9, 9]); // CSRC
    v.extend_from_slice(&[0xbe, 0xde, 0, 1, 1, 2, 3, 4]); // extension
    v.extend_from_slice(&[5, 6, 7, 0, 0, 3]); // payload + padding
    let p = parse_rtp(&v, at(0), from).unwrap();
    assert_eq!(p.payload, vec![5, 6, 7]);
    // Not RTP: too short, version 0, padding beyond the packet, truncated
    // CSRC list, STUN-ish.
    assert!(parse_rtp(&[0x80, 0, 0], at(0), from).is_none());
    assert!(parse_rtp(&[0u8; 20], at(0), from).is_none());
    let mut bad = rtp(0, false, 1, 1, 1, &[1]);
    bad[0] |= 0x20;
    *bad.last_mut().unwrap() = 200;
    assert!(parse_rtp(&bad, at(0), from).is_none());
    let mut bad = rtp(0, false, 1, 1, 1, &[]);
    bad[0] |= 0x0f;
    assert!(parse_rtp(&bad, at(0), from).is_none());
    assert!(parse_rtp(&[0x00, 0x01, 0x00, 0x00], at(0), from).is_none());

    // Continuity: a source switch (new SSRC) is visible; so are gaps,
    // repeats and reordering.
    let pk = |seq: u16, ssrc: u32, ms: u64| {
        parse_rtp(
            &rtp(8, false, seq, u32::from(seq) * 160, ssrc, &[0xd5; 4]),
            at(ms),
            from,
        )
        .unwrap()
    };
    let one: Vec<SinkPacket> = (65530..=65535).chain(0..5).map(|s| pk(s, 1, 0)).collect();
    let c = continuity(&one);
    assert!(c.is_one_continuous_stream(), "wraps around: {c:?}");
    let mut switched = one.clone();
    switched.extend((900..905).map(|s| pk(s, 2, 10)));
    let c = continuity(&switched);
    assert_eq!(c.ssrcs, 2);
    assert!(!c.is_one_continuous_stream());
    assert_eq!(c.gaps, 0);
    let holes = vec![
        pk(1, 1, 0),
        pk(2, 1, 1),
        pk(5, 1, 2),
        pk(5, 1, 3),
        pk(4, 1, 4),
        pk(6, 1, 5),
    ];
    let c = continuity(&holes);
    assert_eq!(
        (c.gaps, c.skipped, c.repeats, c.backwards),
        (1, 2, 1, 1),
        "{c:?}"
    );

    // RFC 4733: digit 5 then digit 9; end packets repeated; a short payload
    // skipped.
    let ev = |event: u8, end: bool, dur: u16, seq: u16, ts: u32, ms: u64| {
        let mut pl = vec![event, if end { 0x8a } else { 0x0a }];
        pl.extend_from_slice(&dur.to_be_bytes());
        parse_rtp(&rtp(101, seq == 1, seq, ts, 77, &pl), at(ms), from).unwrap()
    };
    let dtmf = vec![
        ev(5, false, 160, 1, 8000, 0),
        ev(5, false, 320, 2, 8000, 20),
        ev(5, true, 480, 3, 8000, 40),
        ev(5, true, 480, 3, 8000, 41),
        parse_rtp(&rtp(101, false, 4, 9000, 77, &[1]), at(50), from).unwrap(),
        ev(9, false, 160, 5, 16000, 600),
        ev(9, true, 320, 6, 16000, 620),
    ];
    let events = dtmf_events(&dtmf, 101);
    assert_eq!(dtmf_digits(&dtmf, 101), vec![5, 9]);
    assert_eq!(events[0].packets, 4);
    assert!(events[0].ended && events[1].ended);
    assert_eq!(events[0].duration, 480);
    assert_eq!(events[1].first_at, at(600));
    assert!(dtmf_digits(&dtmf, 96).is_empty());
}

#[test]
fn the_sink_records_what_arrives() {
    let mut sink = RtpSink::bind();
    assert_ne!(sink.port(), 0);
    let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for seq in 0..10u16 {
        tx.send_to(
            &rtp(0, seq == 0, seq, u32::from(seq) * 160, 42, &[0xff; 160]),
            sink.addr(),
        )
        .unwrap();
    }
    tx.send_to(b"not rtp", sink.addr()).unwrap();
    assert!(
        sink.wait_for(Duration::from_secs(5), |p| p.len() == 10),
        "{}",
        sink.summary()
    );
    assert!(sink.wait_for(Duration::from_secs(5), |_| sink_junk_is_one(&sink)));
    let packets = sink.stop();
    assert_eq!(packets.len(), 10);
    assert!(packets.windows(2).all(|w| w[0].at <= w[1].at));
    assert_eq!(packets[0].from, tx.local_addr().unwrap());
    assert!(continuity(&packets).is_one_continuous_stream());
    assert!(rms(&audio_samples(&packets, 0)) < 10.0);
    // Stopped: nothing more is recorded.
    tx.send_to(&rtp(0, false, 10, 1600, 42, &[0xff; 160]), sink.addr())
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(sink.count(), 10);
}

fn sink_junk_is_one(sink: &RtpSink) -> bool {
    sink.junk() == 1
}
