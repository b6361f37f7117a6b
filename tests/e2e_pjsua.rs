//! End to end with a real SIP/RTP stack we did not write: PJSIP (pjsua2,
//! PyPI `pjsua2-python`, driven by `tests/pjsua/ua.py`) on both sides of
//! the gateway.
//!
//! The caller (a pjsua2 UA) calls 12345 through the gateway to the callee
//! (another pjsua2 UA) that rings 1.5 s and answers. Each side plays its own
//! tone into the call (caller 1000 Hz, callee 600 Hz) and records what it
//! hears to a WAV file. PJSIP offers its whole codec list (Speex, iLBC, GSM,
//! G.722, ...) and RTCP; the gateway must pick G.711 and bridge the audio
//! both ways. The recordings say:
//! - the caller heard our ringback (450 Hz) while the callee rang, then the
//!   callee's 600 Hz;
//! - the callee heard the caller's 1000 Hz.
//!
//! Needs python3 with pjsua2 (`./scripts/install-test-deps` installs it):
//! without it the test FAILS, saying so.
#![allow(clippy::disallowed_methods)] // real processes: the wall clock is the point

mod common;

use common::e2e::{free_media_port, free_port, Gateway, GatewayConfig, TestDir};
use common::rtp_sink::tone_ratio;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn require_pjsua2() {
    let ok = Command::new("python3")
        .args(["-c", "import pjsua2"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "python3 with pjsua2 is needed: run ./scripts/install-test-deps (pip install pjsua2-python)"
    );
}

fn ua_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pjsua/ua.py")
}

/// Start `ua.py` and wait for its `{"ready": true}` line.
fn spawn_ua(
    dir: &TestDir,
    role: &str,
    args: &[String],
) -> (Child, BufReader<std::process::ChildStdout>) {
    let log = std::fs::File::create(dir.join(&format!("{role}.stderr.log"))).expect("log file");
    let mut child = Command::new("python3")
        .arg(ua_script())
        .arg(role)
        .args(args)
        .arg("--out")
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("spawn python3");
    let stdout = child.stdout.take().expect("stdout");
    let mut reader = BufReader::new(stdout);
    let mut line = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        if line.contains("\"ready\"") {
            return (child, reader);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!(
        "{role} UA did not start:\n{}",
        common::e2e::tail(&dir.join(&format!("{role}.stderr.log")), 40)
    );
}

/// The UA's final JSON line.
fn result(
    dir: &TestDir,
    role: &str,
    mut child: Child,
    mut reader: BufReader<std::process::ChildStdout>,
) -> serde_json::Value {
    let mut line = String::new();
    let mut last = None;
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                if line.contains("\"role\"") {
                    last = serde_json::from_str(line.trim()).ok();
                }
            }
        }
    }
    let _ = child.wait();
    last.unwrap_or_else(|| {
        panic!(
            "{role} UA printed no result:\n{}",
            common::e2e::tail(&dir.join(&format!("{role}.stderr.log")), 40)
        )
    })
}

/// 16-bit PCM samples of a WAV file (the `data` chunk).
fn wav_samples(path: &Path) -> (u32, Vec<i16>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(bytes.len() > 44 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WAVE");
    let mut rate = 0;
    let mut i = 12;
    while i + 8 <= bytes.len() {
        let id = &bytes[i..i + 4];
        let len =
            u32::from_le_bytes([bytes[i + 4], bytes[i + 5], bytes[i + 6], bytes[i + 7]]) as usize;
        let body = &bytes[i + 8..(i + 8 + len).min(bytes.len())];
        if id == b"fmt " {
            rate = u32::from_le_bytes([body[4], body[5], body[6], body[7]]);
        } else if id == b"data" {
            let s = body
                .chunks_exact(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]]))
                .collect();
            return (rate, s);
        }
        i += 8 + len + (len & 1);
    }
    panic!("{}: no data chunk", path.display());
}

/// `tone_ratio` of `freq` in `[from, to)` seconds of `samples` (8 kHz).
fn share(samples: &[i16], from: f64, to: f64, freq: f64) -> f64 {
    let a = ((from * 8000.0) as usize).min(samples.len());
    let b = ((to * 8000.0) as usize).min(samples.len());
    tone_ratio(&samples[a..b], freq)
}

#[test]
fn pjsip_to_pjsip_through_the_gateway_hears_ringback_and_both_tones() {
    require_pjsua2();
    let dir = TestDir::new("pjsip_to_pjsip_through_the_gateway_hears_ringback_and_both_tones");
    let gw = Gateway::start(&dir, GatewayConfig::new());
    let callee_args: Vec<String> = [
        "--sip-port".to_string(),
        gw.config.target_port.to_string(),
        "--rtp-port".into(),
        free_media_port().to_string(),
        "--tone".into(),
        "600".into(),
        "--ring-ms".into(),
        "1500".into(),
    ]
    .into();
    let (callee, callee_out) = spawn_ua(&dir, "callee", &callee_args);
    let caller_args: Vec<String> = [
        "--sip-port".to_string(),
        free_port().to_string(),
        "--rtp-port".into(),
        free_media_port().to_string(),
        "--tone".into(),
        "1000".into(),
        "--talk-ms".into(),
        "3000".into(),
        "--to".into(),
        format!("sip:12345@{}", gw.sip_addr()),
    ]
    .into();
    let (caller, caller_out) = spawn_ua(&dir, "caller", &caller_args);
    let caller_res = result(&dir, "caller", caller, caller_out);
    let callee_res = result(&dir, "callee", callee, callee_out);
    let ctx = || {
        format!(
            "caller: {caller_res}\ncallee: {callee_res}\n{}",
            gw.diagnostics()
        )
    };
    for r in [&caller_res, &callee_res] {
        assert_eq!(r["confirmed"], true, "{}", ctx());
        assert_eq!(r["disconnected"], true, "{}", ctx());
        assert!(r["error"].is_null(), "{}", ctx());
        // The gateway offers and answers G.711 only.
        let codec = r["codec"].as_str().unwrap_or("");
        assert!(
            codec == "PCMA" || codec == "PCMU",
            "codec {codec}\n{}",
            ctx()
        );
    }

    let (rate, heard) = wav_samples(Path::new(caller_res["record_path"].as_str().unwrap_or("")));
    assert_eq!(rate, 8000);
    // The caller's recording starts with the early media of the 180: the
    // first second of ringback is 450 Hz.
    let ring = share(&heard, 0.1, 0.9, 450.0);
    assert!(
        ring > 0.8,
        "caller heard no ringback: 450 Hz share {ring:.2}\n{}",
        ctx()
    );
    // After the answer (1.5 s of ringing), the callee's 600 Hz.
    let confirmed = caller_res["confirmed_ms"].as_f64().unwrap_or(0.0) / 1000.0;
    let started = caller_res["record_started_ms"].as_f64().unwrap_or(0.0) / 1000.0;
    let answer_at = confirmed - started;
    let talk = share(&heard, answer_at + 0.3, answer_at + 2.5, 600.0);
    assert!(
        talk > 0.8,
        "caller did not hear the callee: 600 Hz share {talk:.2}\n{}",
        ctx()
    );

    let (_, callee_heard) =
        wav_samples(Path::new(callee_res["record_path"].as_str().unwrap_or("")));
    let talk = share(&callee_heard, 0.3, 2.5, 1000.0);
    assert!(
        talk > 0.8,
        "callee did not hear the caller: 1000 Hz share {talk:.2}\n{}",
        ctx()
    );
    eprintln!(
        "caller: ringback 450 Hz share {ring:.2}, codec {}; callee heard 1000 Hz share {talk:.2}",
        caller_res["codec"]
    );
}
