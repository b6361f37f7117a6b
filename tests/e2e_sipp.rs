//! End to end: the real `hotline` binary between real SIPp peers on
//! loopback. SIPp plays the carrier (UAC, scenarios `sip-scenarios/*-uac.xml`)
//! and the callee the route points to (UAS, `*-uas.xml`); the gateway sits in
//! the middle as a B2BUA. Each test has its own gateway, ports and scratch
//! directory, so the tests run in parallel.
//!
//! These tests need `sipp` (Debian package `sip-tester`): without it they
//! FAIL, telling you to run `./scripts/install-test-deps`. When one fails,
//! its scratch directory (gateway stderr, SIPp error and message traces) is
//! kept and its path printed.
#![allow(clippy::disallowed_methods)] // real processes: the wall clock is the point

mod common;

use common::e2e::{call_through, http_get, Gateway, GatewayConfig, Sipp, TestDir};
use std::net::UdpSocket;
use std::thread;
use std::time::{Duration, Instant};

/// Start a gateway with `config` in a fresh directory.
fn setup(test: &str, config: GatewayConfig) -> (TestDir, Gateway) {
    common::e2e::require_sipp();
    let dir = TestDir::new(test);
    let gw = Gateway::start(&dir, config);
    (dir, gw)
}

#[test]
fn basic_call() {
    let (dir, gw) = setup("basic_call", GatewayConfig::new());
    let uas = Sipp::uas("uas", "basic-call-uas.xml", gw.config.target_port);
    let uac = Sipp::uac("uac", "basic-call-uac.xml", gw.sip_addr()).pause_ms(1000);
    call_through(&dir, &gw, &uas, &uac);
}

#[test]
fn basic_call_over_tcp() {
    // The carrier side over TCP (one connection); the target stays UDP.
    let (dir, gw) = setup("basic_call_over_tcp", GatewayConfig::new());
    let uas = Sipp::uas("uas", "basic-call-uas.xml", gw.config.target_port);
    let uac = Sipp::uac("uac", "basic-call-uac.xml", gw.sip_addr())
        .tcp()
        .pause_ms(500);
    call_through(&dir, &gw, &uas, &uac);
}

#[test]
fn callee_bye() {
    let (dir, gw) = setup("callee_bye", GatewayConfig::new());
    let uas = Sipp::uas("uas", "callee-bye-uas.xml", gw.config.target_port).pause_ms(1000);
    let uac = Sipp::uac("uac", "callee-bye-uac.xml", gw.sip_addr());
    call_through(&dir, &gw, &uas, &uac);
}

#[test]
fn caller_cancel() {
    let (dir, gw) = setup("caller_cancel", GatewayConfig::new());
    let uas = Sipp::uas("uas", "cancel-uas.xml", gw.config.target_port);
    let uac = Sipp::uac("uac", "cancel-uac.xml", gw.sip_addr());
    call_through(&dir, &gw, &uas, &uac);
}

#[test]
fn busy_486() {
    let (dir, gw) = setup("busy_486", GatewayConfig::new());
    let uas = Sipp::uas("uas", "busy-uas.xml", gw.config.target_port);
    let uac = Sipp::uac("uac", "busy-uac.xml", gw.sip_addr());
    call_through(&dir, &gw, &uas, &uac);
}

#[test]
fn callee_failures_reach_the_caller() {
    // What the callee answers -> what the caller may get. A B2BUA may turn a
    // callee's 503 into 500 or 502 (RFC 3261 16.7 discourages relaying 503
    // upstream as is); the rest pass through.
    let cases: [(&str, &[u16]); 3] = [
        ("reject-404-uas.xml", &[404]),
        ("reject-480-uas.xml", &[480]),
        ("reject-503-uas.xml", &[503, 500, 502]),
    ];
    let (dir, gw) = setup("callee_failures_reach_the_caller", GatewayConfig::new());
    for (uas_scenario, allowed) in cases {
        let label = uas_scenario.trim_end_matches("-uas.xml");
        let uas = Sipp::uas(&format!("{label}-uas"), uas_scenario, gw.config.target_port);
        let uac = Sipp::uac(&format!("{label}-uac"), "reject-uac.xml", gw.sip_addr());
        let (_uas, uac) = call_through(&dir, &gw, &uas, &uac);
        let finals = uac.received_final_statuses();
        assert!(
            finals.first().is_some_and(|c| allowed.contains(c)),
            "callee answered per {uas_scenario}: caller should get one of {allowed:?}, \
             got final responses {finals:?}\n{}\n{}",
            uac.diagnostics(),
            gw.diagnostics()
        );
    }
}

#[test]
fn no_answer_timeout() {
    let config = GatewayConfig {
        ring_timeout_secs: 2,
        ..GatewayConfig::new()
    };
    let (dir, gw) = setup("no_answer_timeout", config);
    // The callee rings forever; the gateway must CANCEL it after 2 s
    // (no-answer-uas.xml expects the CANCEL) and give the caller 480 or 408.
    let uas = Sipp::uas("uas", "no-answer-uas.xml", gw.config.target_port);
    let uac = Sipp::uac("uac", "no-answer-uac.xml", gw.sip_addr());
    let (_uas, uac) = call_through(&dir, &gw, &uas, &uac);
    let took = uac.elapsed();
    assert!(
        took >= Duration::from_millis(1500),
        "caller got its final response after {took:?}, before the 2 s ring timeout\n{}",
        gw.diagnostics()
    );
}

#[test]
fn reinvite_hold() {
    let (dir, gw) = setup("reinvite_hold", GatewayConfig::new());
    let uas = Sipp::uas("uas", "reinvite-hold-uas.xml", gw.config.target_port);
    let uac = Sipp::uac("uac", "reinvite-hold-uac.xml", gw.sip_addr()).pause_ms(300);
    call_through(&dir, &gw, &uas, &uac);
}

#[test]
fn options_ping() {
    let (dir, gw) = setup("options_ping", GatewayConfig::new());
    // Stand in for the target with a plain socket: an OPTIONS must be
    // answered by the gateway itself and never forwarded.
    let target = UdpSocket::bind(("127.0.0.1", gw.config.target_port)).expect("bind target port");
    target.set_nonblocking(true).expect("nonblocking");
    let mut uac = Sipp::uac("uac", "options-uac.xml", gw.sip_addr())
        .timeout_secs(10)
        .spawn(&dir);
    uac.expect_success(Duration::from_secs(25), &gw.diagnostics());
    thread::sleep(Duration::from_millis(200));
    let mut buf = [0u8; 2048];
    match target.recv_from(&mut buf) {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        Ok((n, from)) => panic!(
            "the gateway forwarded something to the target ({from}):\n{}\n{}",
            String::from_utf8_lossy(&buf[..n]),
            gw.diagnostics()
        ),
        Err(e) => panic!("recv on the target socket: {e}"),
    }
}

#[test]
fn early_media() {
    let (dir, gw) = setup("early_media", GatewayConfig::new());
    let uas = Sipp::uas("uas", "early-media-uas.xml", gw.config.target_port);
    let uac = Sipp::uac("uac", "early-media-uac.xml", gw.sip_addr()).pause_ms(500);
    call_through(&dir, &gw, &uas, &uac);
}

#[test]
fn sigterm_drains() {
    let config = GatewayConfig {
        shutdown_grace_secs: 5,
        ..GatewayConfig::new()
    };
    let grace = Duration::from_secs(config.shutdown_grace_secs);
    let (dir, mut gw) = setup("sigterm_drains", config);

    // A call that lasts ~3 s.
    let mut uas = Sipp::uas("uas", "basic-call-uas.xml", gw.config.target_port).spawn(&dir);
    let mut live = Sipp::uac("live-uac", "basic-call-uac.xml", gw.sip_addr())
        .pause_ms(3000)
        .spawn(&dir);

    // 1 s in: SIGTERM.
    thread::sleep(Duration::from_secs(1));
    assert!(
        live.try_exit().is_none(),
        "the live call ended before SIGTERM\n{}\n{}",
        live.diagnostics(),
        gw.diagnostics()
    );
    let sigterm_at = Instant::now();
    gw.sigterm();
    thread::sleep(Duration::from_millis(300));

    // A new call while draining is refused with 503.
    let mut refused = Sipp::uac("new-uac", "expect-503-uac.xml", gw.sip_addr())
        .timeout_secs(10)
        .spawn(&dir);
    refused.expect_success(Duration::from_secs(20), &gw.diagnostics());

    // The live call completes normally (BYE / 200 through the gateway).
    live.expect_success(Duration::from_secs(20), &gw.diagnostics());
    uas.expect_success(Duration::from_secs(10), &gw.diagnostics());

    // Then the gateway exits 0, within the grace period (plus a margin).
    let limit = grace + Duration::from_secs(5);
    let status = gw.wait_exit(limit.saturating_sub(sigterm_at.elapsed()));
    match status {
        Some(s) if s.success() => {}
        Some(s) => panic!(
            "gateway exited with {s} after SIGTERM\n{}",
            gw.diagnostics()
        ),
        None => panic!(
            "gateway still running {:?} after SIGTERM (grace {grace:?})\n{}",
            sigterm_at.elapsed(),
            gw.diagnostics()
        ),
    }
}

#[test]
fn metrics_and_healthz() {
    let (dir, gw) = setup("metrics_and_healthz", GatewayConfig::new());

    let (status, body) = gw.get("/healthz").expect("GET /healthz");
    assert_eq!(status, 200, "GET /healthz: {body:?}");
    assert_eq!(body.trim(), "ok", "GET /healthz body");

    let uas = Sipp::uas("uas", "basic-call-uas.xml", gw.config.target_port);
    let uac = Sipp::uac("uac", "basic-call-uac.xml", gw.sip_addr()).pause_ms(200);
    call_through(&dir, &gw, &uas, &uac);

    let (status, text) = http_get(gw.config.api_addr(), "/metrics").expect("GET /metrics");
    assert_eq!(status, 200, "GET /metrics:\n{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("hotline_sip_messages_received_total")),
        "no hotline_sip_messages_received_total sample in /metrics:\n{text}"
    );
    // Every sample line is `name[{labels}] value` (Prometheus text format).
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let value = line.rsplit(' ').next().unwrap_or_default();
        assert!(
            value.parse::<f64>().is_ok() || ["NaN", "+Inf", "-Inf"].contains(&value),
            "not a Prometheus sample line: {line:?}"
        );
    }
}

#[test]
fn trunk_over_its_cps_cap_gets_503() {
    // A second trunk for 127.0.0.1 alone (its /32 beats the generated
    // trunk's 127.0.0.0/8) with max_cps = 5; SIPp offers 20 calls/s.
    let mut config = GatewayConfig::new();
    config.extra_toml =
        "\n[[trunks]]\nname = \"capped\"\nsources = [\"127.0.0.1/32\"]\nmax_cps = 5\n".into();
    let (dir, gw) = setup("trunk_over_its_cps_cap_gets_503", config);
    let uas = Sipp::uas("uas", "basic-call-uas.xml", gw.config.target_port)
        .calls(40)
        .spawn(&dir);
    let mut uac = Sipp::uac("uac", "trunk-limit-uac.xml", gw.sip_addr())
        .calls(40)
        .arg("-r")
        .arg("20")
        .pause_ms(200)
        .timeout_secs(30)
        .spawn(&dir);
    uac.expect_success(
        Duration::from_secs(45),
        &format!("{}\n{}", uas.diagnostics(), gw.diagnostics()),
    );
    let finals = uac.received_final_statuses();
    let answered = finals.iter().filter(|s| **s == 200).count();
    let refused = finals.iter().filter(|s| **s == 503).count();
    // 40 INVITEs over ~2 s against a bucket of 5 refilled at 5/s: about 15
    // answered (the burst plus the refill), the rest refused. The 200s of
    // the BYEs count too: each answered call has two.
    assert!(
        answered >= 2 * 5 && refused >= 10 && answered / 2 + refused == 40,
        "answered (INVITE + BYE 200s) {answered}, refused {refused}: {finals:?}\n{}",
        gw.diagnostics()
    );
    let trace = std::fs::read_to_string(dir.join("sipp-uac-messages.log")).unwrap_or_default();
    assert!(
        trace.contains("Retry-After: 1"),
        "no Retry-After: 1 in the 503s"
    );
    assert!(trace.contains("text=\"Trunk rate limit\""));

    let (status, text) = http_get(gw.config.api_addr(), "/metrics").expect("GET /metrics");
    assert_eq!(status, 200);
    let sample = |prefix: &str| {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
    };
    let rejected = sample("hotline_trunk_rejected_total{trunk=\"capped\",reason=\"cps_limit\"}");
    assert_eq!(rejected, Some(refused as f64), "{text}");
    let by_outcome =
        sample("hotline_calls_total{tenant=\"none\",line=\"none\",outcome=\"trunk_cps_limit\"}");
    assert_eq!(by_outcome, Some(refused as f64), "{text}");
    // The UAS saw only the answered calls (fewer than its -m 40): it is
    // stopped when dropped.
    drop(uas);
}

#[test]
fn trunk_keepalive_shows_up_on_metrics() {
    // A second trunk (its sources are never used here) whose outbound
    // address is a SIPp answering OPTIONS with 200, pinged every second.
    common::e2e::require_sipp();
    let dir = TestDir::new("trunk_keepalive_shows_up_on_metrics");
    let sbc_port = common::e2e::free_port();
    let sbc = Sipp::uas("sbc", "options-responder-uas.xml", sbc_port)
        .calls(1000)
        .timeout_secs(60)
        .spawn(&dir);
    let mut config = GatewayConfig::new();
    config.extra_toml = format!(
        "\n[[trunks]]\nname = \"ka\"\nsources = [\"127.0.0.2/32\"]\n\
         outbound = \"127.0.0.1:{sbc_port}\"\nkeepalive_secs = 1\n"
    );
    let gw = Gateway::start(&dir, config);
    let sample = |text: &str, prefix: &str| {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
    };
    let started = Instant::now();
    let mut last = String::new();
    let up = loop {
        if let Ok((200, text)) = http_get(gw.config.api_addr(), "/metrics") {
            last = text;
            if sample(&last, "hotline_trunk_up{trunk=\"ka\"}") == Some(1.0) {
                break true;
            }
        }
        if started.elapsed() > Duration::from_secs(15) {
            break false;
        }
        thread::sleep(Duration::from_millis(200));
    };
    assert!(
        up,
        "hotline_trunk_up{{trunk=\"ka\"}} not 1 within 15 s:\n{}\n{}\n{}",
        last.lines()
            .filter(|l| l.contains("trunk"))
            .collect::<Vec<_>>()
            .join("\n"),
        sbc.diagnostics(),
        gw.diagnostics()
    );
    let ok = sample(
        &last,
        "hotline_trunk_keepalive_total{trunk=\"ka\",result=\"ok\"}",
    );
    assert!(ok.is_some_and(|n| n >= 1.0), "{last}");
    // The generated trunk has no outbound: no keepalive state at all.
    assert_eq!(sample(&last, "hotline_trunk_up{trunk=\"sipp\"}"), None);
    drop(sbc);
}
