//! End to end: RTP through the gateway between real SIPp peers.
//!
//! The carrier (SIPp, `media-uac.xml`) calls through the gateway to the
//! callee (SIPp, `media-uas.xml`), which rings, answers and echoes every RTP
//! packet it gets (`-rtp_echo`). The caller plays `g711a.pcap` and then the
//! RFC 2833 pcaps for digits 1, 2, 3 that `sip-tester` ships. The caller's
//! media address is a UDP sink the test owns (`tests/common/rtp_sink.rs`),
//! so the test sees exactly what the caller hears: our ringback while the
//! callee rings, then its own audio and digits echoed back through the
//! gateway twice (A→B, echo, B→A), as one continuous RTP stream.
//!
//! The digits must also be *detected* by the gateway, each once: the test
//! reads the `dtmf` log lines (`hotline::dtmf` at debug).
//!
//! Needs `sipp` and root or CAP_NET_RAW (SIPp plays pcaps on a raw socket).
#![allow(clippy::disallowed_methods)] // real processes: the wall clock is the point

mod common;

use common::e2e::{
    media_uac, media_uas, require_sipp, Gateway, GatewayConfig, Sipp, SippProc, TestDir,
};
use common::rtp_sink::{
    audio_samples, continuity, dtmf_digits, rms, tone_ratio, RtpSink, SinkPacket,
};
use std::time::Duration;

const PCMA: u8 = 8;
const TELEPHONE_EVENT: u8 = 101;

fn why(gw: &Gateway, sink: &RtpSink, procs: &[&SippProc]) -> String {
    let mut s = sink.summary();
    for p in procs {
        s.push_str(&p.diagnostics());
    }
    s.push_str(&gw.diagnostics());
    s
}

/// `(side, digit, source)` of each `dtmf` log line of the gateway.
fn detected_digits(gw: &Gateway) -> Vec<(String, String, String)> {
    let log = std::fs::read_to_string(&gw.stderr_path).unwrap_or_default();
    let field = |line: &str, key: &str| -> String {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{key}=")))
            .unwrap_or("")
            .trim_matches('"')
            .to_string()
    };
    log.lines()
        .filter(|l| l.contains("hotline::dtmf"))
        .map(|l| (field(l, "side"), field(l, "digit"), field(l, "source")))
        .collect()
}

fn metric(body: &str, name: &str) -> f64 {
    body.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn audio_ringback_and_dtmf_through_the_anchored_media() {
    require_sipp();
    let dir = TestDir::new("audio_ringback_and_dtmf_through_the_anchored_media");
    let gw = Gateway::start(
        &dir,
        GatewayConfig {
            rust_log: "info,hotline::dtmf=debug".into(),
            ..GatewayConfig::new()
        },
    );
    let (mut sink, mp) = RtpSink::beside_sipp();
    let ring_ms = 1500;
    let audio_ms = 2000;
    let uas = media_uas(gw.config.target_port, ring_ms);
    let uac = media_uac(gw.sip_addr(), mp, audio_ms);
    let mut uas_proc = uas.spawn(&dir);
    let mut uac_proc = uac.spawn(&dir);
    uac_proc.expect_success(Duration::from_secs(45), &why(&gw, &sink, &[&uas_proc]));
    uas_proc.expect_success(Duration::from_secs(15), &why(&gw, &sink, &[&uac_proc]));
    let packets = sink.stop();
    let ctx = || why(&gw, &sink, &[&uac_proc, &uas_proc]);
    eprintln!("{}", sink.summary());

    assert_eq!(sink.junk(), 0, "non-RTP datagrams at the caller\n{}", ctx());
    // Everything the caller got came from the gateway's A-leg port, never
    // from the callee.
    let sources: std::collections::BTreeSet<_> = packets.iter().map(|p| p.from).collect();
    assert_eq!(sources.len(), 1, "RTP from {sources:?}\n{}", ctx());
    let (lo, hi) = gw.config.media_ports;
    let src = packets[0].from;
    assert!(
        src.port() >= lo && src.port() <= hi && src.port() % 2 == 0,
        "RTP from {src}, outside the gateway's range {lo}-{hi}"
    );

    // Ringback while the callee rings: 450 Hz, the first second on.
    let ringback: Vec<SinkPacket> = packets
        .iter()
        .filter(|p| p.pt == PCMA && p.at < Duration::from_millis(1000))
        .cloned()
        .collect();
    assert!(
        ringback.len() >= 25,
        "{} packets in the first second: no ringback\n{}",
        ringback.len(),
        ctx()
    );
    let tone = audio_samples(&ringback, PCMA);
    let share = tone_ratio(&tone, 450.0);
    assert!(
        share > 0.8,
        "the first second is not 450 Hz ringback (450 Hz share {share:.2}, RMS {:.0})\n{}",
        rms(&tone),
        ctx()
    );
    // 20 ms packets, paced by the shard tick: 160 samples each.
    assert!(ringback.iter().all(|p| p.payload.len() == 160));
    // How close to the 20 ms schedule they arrived (reported, not asserted:
    // no timing assertions in tests; BENCHMARKS.md keeps the figures).
    let first = ringback[0].at;
    let devs: Vec<f64> = ringback
        .iter()
        .map(|p| {
            let k = u32::from(p.seq.wrapping_sub(ringback[0].seq));
            (p.at.as_secs_f64() - (first + Duration::from_millis(20) * k).as_secs_f64()) * 1e3
        })
        .collect();
    let worst = devs.iter().fold(0f64, |m, d| m.max(d.abs()));
    eprintln!(
        "ringback pacing: {} packets, worst deviation from the 20 ms schedule {worst:.2} ms, \
         last {:.2} ms (drift)",
        devs.len(),
        devs.last().copied().unwrap_or_default()
    );

    // The caller's own audio, echoed by the callee, after the answer.
    let echoed: Vec<SinkPacket> = packets
        .iter()
        .filter(|p| p.pt == PCMA && p.payload.len() == 240)
        .cloned()
        .collect();
    assert!(
        echoed.len() >= 30,
        "{} echoed audio packets (g711a.pcap, 30 ms)\n{}",
        echoed.len(),
        ctx()
    );
    let level = rms(&audio_samples(&echoed, PCMA));
    assert!(level > 300.0, "echoed audio RMS {level:.0}\n{}", ctx());

    // The digits, relayed both ways (PT 101 on both legs here).
    assert_eq!(
        dtmf_digits(&packets, TELEPHONE_EVENT),
        vec![1, 2, 3],
        "{}",
        ctx()
    );

    // One stream for the caller across ringback -> relayed audio ->
    // relayed digits: one SSRC, sequence never backwards.
    let c = continuity(&packets);
    assert_eq!(c.ssrcs, 1, "the caller saw {c:?}\n{}", ctx());
    assert_eq!(c.backwards, 0, "{c:?}");

    // The gateway detected each digit the caller sent exactly once (A
    // side), and the echoed ones on the B side once each.
    let digits = detected_digits(&gw);
    let a: Vec<&str> = digits
        .iter()
        .filter(|(side, _, _)| side == "A")
        .map(|(_, d, _)| d.as_str())
        .collect();
    assert_eq!(a, ["1", "2", "3"], "detected: {digits:?}\n{}", ctx());
    assert!(digits.iter().all(|(_, _, source)| source == "rfc4733"));

    // The aggregate media metrics saw it.
    let (status, body) = gw.get("/metrics").expect("metrics");
    assert_eq!(status, 200);
    assert!(metric(&body, "hotline_media_packets_relayed_total") >= 100.0);
    assert!(metric(&body, "hotline_dtmf_digits_total") >= 3.0);
    assert!(body.contains("hotline_media_relay_seconds{quantile=\"0.99\"}"));
}

#[test]
fn silence_on_both_legs_ends_the_call_after_the_rtp_timeout() {
    // Neither SIPp peer sends RTP: after rtp_timeout_secs the gateway hangs
    // up both sides (each scenario expects a BYE), and the call record
    // names the cause.
    require_sipp();
    let dir = TestDir::new("silence_on_both_legs_ends_the_call_after_the_rtp_timeout");
    let gw = Gateway::start(
        &dir,
        GatewayConfig {
            media_toml: "rtp_timeout_secs = 2\n".into(),
            ..GatewayConfig::new()
        },
    );
    let uas = Sipp::uas("uas", "basic-call-uas.xml", gw.config.target_port);
    let uac = Sipp::uac("uac", "callee-bye-uac.xml", gw.sip_addr());
    let started = std::time::Instant::now();
    common::e2e::call_through(&dir, &gw, &uas, &uac);
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(2), "ended after {took:?}");
    let log = std::fs::read_to_string(&gw.stderr_path).unwrap_or_default();
    assert!(
        log.contains("no RTP: ending the call"),
        "{}",
        gw.diagnostics()
    );
    let (_, body) = gw.get("/metrics").expect("metrics");
    assert!(
        body.lines().any(|l| l.starts_with(
            "hotline_calls_total{tenant=\"none\",line=\"none\",outcome=\"rtp_timeout\"} 1"
        )),
        "{body}"
    );
}

/// DTMF as tones in the audio (a carrier without RFC 4733): 1, 5, 9, #,
/// each 100 ms at about -12 dBm0 per tone, 300 ms apart, as raw A-law.
fn inband_tones() -> Vec<u8> {
    let tones: [(char, f64, f64); 4] = [
        ('1', 697.0, 1209.0),
        ('5', 770.0, 1336.0),
        ('9', 852.0, 1477.0),
        ('#', 941.0, 1477.0),
    ];
    let mut pcm: Vec<i16> = vec![0; 4000]; // 0.5 s of silence first
    for (_, lo, hi) in tones {
        for n in 0..800 {
            let t = f64::from(n) / 8000.0;
            let x = 6000.0 * (2.0 * std::f64::consts::PI * lo * t).sin()
                + 6000.0 * (2.0 * std::f64::consts::PI * hi * t).sin();
            pcm.push(x as i16);
        }
        pcm.extend(std::iter::repeat_n(0i16, 1600));
    }
    pcm.iter()
        .map(|&s| audio_codec_algorithms::encode_alaw(s))
        .collect()
}

#[test]
fn inband_dtmf_tones_are_detected_once_each() {
    require_sipp();
    let dir = TestDir::new("inband_dtmf_tones_are_detected_once_each");
    std::fs::write(dir.join("inband-dtmf.al"), inband_tones()).expect("write tones");
    let gw = Gateway::start(
        &dir,
        GatewayConfig {
            rust_log: "info,hotline::dtmf=debug".into(),
            ..GatewayConfig::new()
        },
    );
    let uas = Sipp::uas("uas", "basic-call-uas.xml", gw.config.target_port);
    let uac = Sipp::uac("uac", "inband-dtmf-uac.xml", gw.sip_addr()).pause_ms(3000);
    common::e2e::call_through(&dir, &gw, &uas, &uac);
    let digits = detected_digits(&gw);
    let caller: Vec<(&str, &str)> = digits
        .iter()
        .filter(|(side, _, _)| side == "A")
        .map(|(_, d, s)| (d.as_str(), s.as_str()))
        .collect();
    assert_eq!(
        caller,
        [
            ("1", "inband"),
            ("5", "inband"),
            ("9", "inband"),
            ("#", "inband")
        ],
        "detected: {digits:?}\n{}",
        gw.diagnostics()
    );
}
