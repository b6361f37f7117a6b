//! End to end: the gateway's own ACD, the real `hotline` binary between
//! real SIPp peers on loopback.
//!
//! Agents' phones are SIPp (`sip-scenarios/agent-uas.xml` with `-oocsf`
//! the same file): each registers with digest auth (`-au`/`-ap`, MD5: the
//! gateway is configured with `sip.digest_algorithms = ["MD5"]`, SIPp
//! reads only the first challenge), then takes the gateway's INVITEs.
//! Agents log in with the feature code `*21` (`feature-code-uac.xml`: 407,
//! then the INVITE with `Proxy-Authorization`, answered 200; the phone
//! hears the confirmation and the gateway hangs up).
//! Callers are `line-uac.xml` dialling a `[[lines]]` number whose flow
//! plays a greeting and queues the call.
//!
//! Covered: the longest-idle agent is chosen; ring-no-answer moves on to
//! the next agent; a priority caller jumps the queue; an escalation step
//! (`drop_skill`) widens the agents eligible; the survey after the agent
//! hangs up first, rated with an RFC 2833 key.
//!
//! Which agent got a call is read twice: from the record (`agent`,
//! `offers`, the callee leg's Call-ID) and from the agents' SIPp message
//! traces (the INVITEs each phone received). Records come from the outbox
//! through `hotline records`; figures from `/metrics`.
//!
//! The generated gateway config always has a `[[routes]]` entry for 12345
//! (`tests/common/e2e.rs`), and a line may not share a route's number, so
//! the lines here are 12300 (main) and 12301 (a line with priority 5).
//!
//! These tests need `sipp` (and root or CAP_NET_RAW for the survey key,
//! sent as a pcap): without it they FAIL, naming
//! `./scripts/install-test-deps`, like the other e2e tests.
#![allow(clippy::disallowed_methods)] // real processes: the wall clock is the point

mod common;

use common::e2e::{
    cue_line_uac, hotline_bin, http_get, locked_rtp_range, require_sipp, scenario,
    sipp_exit_meaning, wait_until, Gateway, GatewayConfig, Sipp, SippProc, TestDir,
};
use common::rtp_sink::{decode, goertzel_power, RtpSink, SinkPacket};
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

/// The main line (survey per test) and a line whose calls get priority 5.
const MAIN: &str = "12300";
const PRIORITY_LINE: &str = "12301";
/// SIPp's caller number in `line-uac.xml`.
const CALLER: &str = "13800138000";
/// Every agent's password (the registrar wants 8 characters or more).
const PASSWORD: &str = "e2e-secret-42";
/// The queue's ring-no-answer timeout (the smallest allowed is 3 s).
const RING_TIMEOUT_SECS: u64 = 4;

/// The test's prompts: name, tone (Hz), length (ms).
const TONES: [(&str, u32, u32); 4] = [
    ("greeting", GREETING, PROMPT_MS),
    ("hold_music", MUSIC, 1000),
    ("survey", SURVEY, PROMPT_MS),
    ("thank_you", THANK_YOU, PROMPT_MS),
];
const PROMPT_MS: u32 = 400;
const GREETING: u32 = 500;
const MUSIC: u32 = 600;
const SURVEY: u32 = 1100;
const THANK_YOU: u32 = 1300;
/// China's ringback (GB/T 3380) while an agent's phone rings.
const RINGBACK: u32 = 450;
/// 20 ms packets in one prompt.
const PROMPT_PACKETS: usize = (PROMPT_MS / 20) as usize;

// ---------------------------------------------------------------------------
// prompts, config, gateway
// ---------------------------------------------------------------------------

/// A WAV file (8 kHz, mono, 16-bit PCM) of a `freq_hz` sine lasting `ms`.
fn tone_wav(freq_hz: u32, ms: u32) -> Vec<u8> {
    let n = 8 * ms;
    let data_len = 2 * n;
    let mut w = Vec::with_capacity(44 + data_len as usize);
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(36 + data_len).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes()); // PCM
    w.extend_from_slice(&1u16.to_le_bytes()); // mono
    w.extend_from_slice(&8000u32.to_le_bytes());
    w.extend_from_slice(&16000u32.to_le_bytes()); // bytes per second
    w.extend_from_slice(&2u16.to_le_bytes()); // block align
    w.extend_from_slice(&16u16.to_le_bytes()); // bits per sample
    w.extend_from_slice(b"data");
    w.extend_from_slice(&data_len.to_le_bytes());
    for i in 0..n {
        let t = f64::from(i) / 8000.0;
        let s = 8000.0 * (2.0 * std::f64::consts::PI * f64::from(freq_hz) * t).sin();
        w.extend_from_slice(&(s.round() as i16).to_le_bytes());
    }
    w
}

/// Write the test's prompts into `dir/prompts`; returns that directory.
fn write_prompts(dir: &TestDir) -> std::path::PathBuf {
    let prompts = dir.join("prompts");
    std::fs::create_dir_all(&prompts).expect("create prompts dir");
    for (name, hz, ms) in TONES {
        std::fs::write(prompts.join(format!("{name}.wav")), tone_wav(hz, ms))
            .expect("write prompt");
    }
    prompts
}

/// One agent of the config: its id and its `skills` table (TOML inline).
struct AgentSpec {
    id: &'static str,
    skills: &'static str,
}

const fn agent(id: &'static str) -> AgentSpec {
    AgentSpec { id, skills: "{}" }
}

/// What differs between the tests' configs.
struct Setup {
    /// More keys of the queue "general" (may end with
    /// `[[queues.escalation]]` tables).
    queue: &'static str,
    /// The agents, in config order.
    agents: Vec<AgentSpec>,
    /// Whether [`MAIN`] runs the survey when the agent hangs up first.
    survey: bool,
}

/// One tenant, one ACD queue "general" (ring timeout
/// [`RING_TIMEOUT_SECS`], wrap-up 1 s), one flow (greeting, then the
/// queue), two lines into it ([`MAIN`], [`PRIORITY_LINE`]), the agents.
fn acd_toml(prompts: &Path, setup: &Setup) -> String {
    let mut agents = String::new();
    for a in &setup.agents {
        agents.push_str(&format!(
            "\n[[agents]]\nid = \"{id}\"\npassword = \"{PASSWORD}\"\ntenant = \"city\"\nskills = {skills}\n",
            id = a.id,
            skills = a.skills
        ));
    }
    format!(
        r#"
[prompts]
dir = "{prompts}"

[[tenants]]
name = "city"

[[flows]]
name = "intake"
entry = "greeting"
[[flows.nodes]]
name = "greeting"
kind = "play"
prompt = "greeting"
next = "queue"
[[flows.nodes]]
name = "queue"
kind = "queue"
queue = "general"

[[lines]]
number = "{MAIN}"
tenant = "city"
mode = "main"
flow = "intake"
survey = {survey}

[[lines]]
number = "{PRIORITY_LINE}"
tenant = "city"
mode = "dual"
flow = "intake"
priority = 5
survey = false
{agents}
[[queues]]
name = "general"
tenant = "city"
ring_timeout_secs = {RING_TIMEOUT_SECS}
wrap_up_secs = 1
{queue}
"#,
        prompts = prompts.display(),
        survey = setup.survey,
        queue = setup.queue,
    )
}

/// A gateway with the ACD config of `setup` in a fresh directory.
fn start(test: &str, setup: &Setup) -> (TestDir, Gateway) {
    require_sipp();
    let dir = TestDir::new(test);
    let prompts = write_prompts(&dir);
    let gw = Gateway::start(
        &dir,
        GatewayConfig {
            extra_toml: acd_toml(&prompts, setup),
            sip_toml: "digest_algorithms = [\"MD5\"]".into(),
            // Every call here anchors media: no RTP range shared with a
            // test process running beside this one.
            media_ports: locked_rtp_range(),
            rust_log: "info,hotline=debug".into(),
            ..GatewayConfig::new()
        },
    );
    (dir, gw)
}

// ---------------------------------------------------------------------------
// SIPp peers
// ---------------------------------------------------------------------------

/// How an agent's phone answers the gateway's INVITEs.
#[derive(Clone, Copy)]
enum Answer {
    /// Ring 300 ms, answer, hang up after `hold_ms` (the agent ends the
    /// call).
    HangsUpAfter(u64),
    /// Ring 300 ms, answer, wait for the gateway's BYE (the caller ends
    /// the call).
    WaitsForBye,
    /// Ring until the gateway's CANCEL.
    Never,
}

/// An agent's phone (`agent-uas.xml`, registration plus calls), started
/// and registered: returns once the registrar's 200 has arrived.
fn agent_phone(dir: &TestDir, gw: &Gateway, id: &str, answer: Answer) -> SippProc {
    let sf = scenario("agent-uas.xml");
    let mut sipp = Sipp::uac(&format!("agent-{id}"), "agent-uas.xml", gw.sip_addr())
        .dial(id)
        .arg("-oocsf")
        .arg(&sf.to_string_lossy())
        .arg("-au")
        .arg(id)
        .arg("-ap")
        .arg(PASSWORD)
        .arg("-rtp_echo")
        .set("ring_ms", "300")
        // Registered (and taking calls) for longer than any test runs; the
        // test ends it.
        .set("stay_ms", "50000")
        .timeout_secs(60);
    sipp = match answer {
        Answer::HangsUpAfter(ms) => sipp.set("hold_ms", &ms.to_string()),
        Answer::WaitsForBye => sipp,
        Answer::Never => sipp.set("answer", "none"),
    };
    let mut proc = sipp.spawn(dir);
    let ok = wait_until(Duration::from_secs(10), || {
        proc.try_exit().is_some() || registered(&proc)
    });
    assert!(
        ok && proc.try_exit().is_none(),
        "agent {id}'s phone did not register (exit {:?})\n{}\n{}",
        proc.try_exit(),
        proc.diagnostics(),
        gw.diagnostics()
    );
    proc
}

/// The agent dials a feature code (`*21` …): the gateway answers, plays
/// the confirmation and hangs up (SIPp fails on anything else); returns
/// whether the gateway carried it out (`hotline_agent_feature_codes_total`
/// counted it `done`, not `refused`).
fn feature_code(dir: &TestDir, gw: &Gateway, id: &str, code: &str) -> bool {
    let done = |gw: &Gateway| {
        metric(
            gw,
            "hotline_agent_feature_codes_total",
            &[("result", "done")],
        )
    };
    let before = done(gw);
    let mut p = Sipp::uac(
        &format!("feature-{id}-{}", code.trim_start_matches('*')),
        "feature-code-uac.xml",
        gw.sip_addr(),
    )
    .dial(code)
    .arg("-au")
    .arg(id)
    .arg("-ap")
    .arg(PASSWORD)
    .timeout_secs(15)
    .spawn(dir);
    p.expect_success(Duration::from_secs(25), &gw.diagnostics());
    let answered = received(&p)
        .iter()
        .any(|m| m.start.starts_with("SIP/2.0 200") && m.cseq.ends_with("INVITE"));
    assert!(
        answered,
        "{code} for {id} answered 200\n{}",
        gw.diagnostics()
    );
    done(gw) > before
}

/// Log `id` in with `*21` and check it was done.
fn log_in(dir: &TestDir, gw: &Gateway, id: &str) {
    assert!(
        feature_code(dir, gw, id, "*21"),
        "*21 for {id}\n{}",
        gw.diagnostics()
    );
}

/// A caller (`line-uac.xml`) dialling `number`, its media at the sink
/// beside `mp` (from [`RtpSink::beside_sipp`]), with a Call-ID of our
/// choosing (for [`cue`]). By default it waits for the gateway's BYE.
fn caller(gw: &Gateway, label: &str, number: &str, mp: u16) -> Sipp {
    Sipp::uac(label, "line-uac.xml", gw.sip_addr())
        .dial(number)
        .arg("-mp")
        .arg(&mp.to_string())
        .arg("-cid_str")
        .arg(&call_id(number, mp))
}

/// The Call-ID [`caller`] gives its call.
fn call_id(number: &str, mp: u16) -> String {
    format!("acd-{number}-{mp}@127.0.0.1")
}

/// One message SIPp received, from its `-trace_msg` file.
#[derive(Debug, Clone)]
struct Received {
    /// The start line (`INVITE sip:… SIP/2.0`, `SIP/2.0 200 OK`).
    start: String,
    /// The Call-ID header's value.
    call_id: String,
    /// The CSeq header's value.
    cseq: String,
}

/// Every message `p` received, in order (retransmissions included).
fn received(p: &SippProc) -> Vec<Received> {
    let text = std::fs::read_to_string(&p.messages).unwrap_or_default();
    let mut out = Vec::new();
    // Each message starts with a line of dashes and a timestamp, then
    // "UDP message received [N] bytes :" (or "sent"), a blank line, and
    // the message.
    for block in text.split("\n----------------------------------------------- ") {
        let mut lines = block.lines();
        let Some(head) = lines.by_ref().find(|l| l.contains("message ")) else {
            continue;
        };
        if !head.contains("message received") {
            continue;
        }
        let mut lines = lines.skip_while(|l| l.trim().is_empty());
        let Some(start) = lines.next() else { continue };
        let mut m = Received {
            start: start.trim().to_owned(),
            call_id: String::new(),
            cseq: String::new(),
        };
        for l in lines {
            let l = l.trim();
            if l.is_empty() {
                break;
            }
            let Some((name, value)) = l.split_once(':') else {
                continue;
            };
            let name = name.trim().to_ascii_lowercase();
            if name == "call-id" || name == "i" {
                m.call_id = value.trim().to_owned();
            } else if name == "cseq" {
                m.cseq = value.trim().to_owned();
            }
        }
        out.push(m);
    }
    out
}

/// Whether the phone's REGISTER got its 200.
fn registered(p: &SippProc) -> bool {
    received(p)
        .iter()
        .any(|m| m.start.starts_with("SIP/2.0 200") && m.cseq.ends_with("REGISTER"))
}

/// The Call-IDs of the new INVITEs the phone received, in order (each
/// once: retransmissions dropped).
fn invites(p: &SippProc) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for m in received(p) {
        if m.start.starts_with("INVITE ") && !ids.contains(&m.call_id) {
            ids.push(m.call_id);
        }
    }
    ids
}

/// Calls the phone took that SIPp aborted (an unexpected message).
fn aborted_calls(p: &SippProc) -> usize {
    std::fs::read_to_string(&p.errors)
        .unwrap_or_default()
        .matches("Aborting call")
        .count()
}

/// Wait up to `secs` for SIPp to exit 0; else panic with its logs and
/// `ctx()`.
fn succeeds(p: &mut SippProc, secs: u64, ctx: impl Fn() -> String) {
    match p.wait(Duration::from_secs(secs)) {
        Some(status) if status.success() => {}
        Some(status) => panic!(
            "SIPp {} failed with {status} ({}): the call did not follow the scenario\n{}\n{}",
            p.label,
            sipp_exit_meaning(status.code()),
            p.diagnostics(),
            ctx()
        ),
        None => panic!(
            "SIPp {} still running after {secs} s; killed\n{}\n{}",
            p.label,
            p.diagnostics(),
            ctx()
        ),
    }
}

/// Failure context: the SIPps' logs and the gateway's config and log.
fn why(gw: &Gateway, procs: &[&SippProc]) -> String {
    let mut s = String::new();
    for p in procs {
        s.push_str(&p.diagnostics());
    }
    s.push_str(&gw.diagnostics());
    s
}

// ---------------------------------------------------------------------------
// what the caller heard
// ---------------------------------------------------------------------------

const CANDIDATES: [u32; 5] = [RINGBACK, GREETING, MUSIC, SURVEY, THANK_YOU];

/// The tone of one 20 ms packet: the candidate holding more than 60 % of
/// its energy, or `None`.
fn packet_tone(p: &SinkPacket) -> Option<u32> {
    let samples = decode(p.pt, &p.payload);
    if samples.len() < 80 {
        return None;
    }
    let energy: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    if energy / (samples.len() as f64) < 10_000.0 {
        return None;
    }
    let n = samples.len() as f64;
    CANDIDATES
        .iter()
        .map(|&f| {
            (
                f,
                2.0 * goertzel_power(&samples, f64::from(f), 8000) / n / energy,
            )
        })
        .filter(|&(_, share)| share > 0.6)
        .map(|(f, _)| f)
        .next()
}

/// What the caller heard, in order: runs of at least 4 packets of a tone.
fn heard(packets: &[SinkPacket]) -> Vec<u32> {
    let mut raw: Vec<(u32, usize)> = Vec::new();
    for p in packets {
        let Some(t) = packet_tone(p) else { continue };
        match raw.last_mut() {
            Some((last, n)) if *last == t => *n += 1,
            _ => raw.push((t, 1)),
        }
    }
    let mut runs: Vec<u32> = Vec::new();
    for (t, _) in raw.into_iter().filter(|&(_, n)| n >= 4) {
        if runs.last() != Some(&t) {
            runs.push(t);
        }
    }
    runs
}

// ---------------------------------------------------------------------------
// records and metrics
// ---------------------------------------------------------------------------

/// Run `hotline records ARGS --config <gateway's config>`: stdout.
fn records_cli(gw: &Gateway, args: &[&str]) -> String {
    let out = std::process::Command::new(hotline_bin())
        .arg("records")
        .args(args)
        .arg("--config")
        .arg(&gw.config_path)
        .output()
        .unwrap_or_else(|e| panic!("cannot run hotline records: {e}"));
    assert!(
        out.status.success(),
        "hotline records {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The bodies of the outbox's `call.record` items.
fn call_records(gw: &Gateway) -> Vec<Value> {
    records_cli(gw, &["list", "--json"])
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|i| i["kind"] == "call.record")
        .filter_map(|i| i["id"].as_u64())
        .map(|id| {
            let shown = records_cli(gw, &["show", "--json", &id.to_string()]);
            let item: Value = serde_json::from_str(shown.trim())
                .unwrap_or_else(|e| panic!("records show {id}: {e}: {shown}"));
            item["body"].clone()
        })
        .collect()
}

/// Exactly `n` call records (polled for up to 10 s).
fn records(gw: &Gateway, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let records = call_records(gw);
        if records.len() == n {
            return records;
        }
        if records.len() > n || Instant::now() >= deadline {
            panic!(
                "{} call records, expected {n}: {records:#?}\n{}",
                records.len(),
                gw.diagnostics()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The offers of a record as (agent, outcome).
fn offers(rec: &Value) -> Vec<(String, String)> {
    rec["offers"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|o| {
                    (
                        o["agent"].as_str().unwrap_or_default().to_owned(),
                        o["outcome"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The SIP Call-ID of the record's callee leg (the agent's INVITE).
fn callee_call_id(rec: &Value) -> String {
    rec["legs"]
        .as_array()
        .and_then(|legs| legs.iter().find(|l| l["role"] == "callee"))
        .and_then(|l| l["sip_call_id"].as_str())
        .unwrap_or_default()
        .to_owned()
}

/// The sum of the samples of `name` whose labels include all of `labels`
/// (0 when there is none).
fn metric(gw: &Gateway, name: &str, labels: &[(&str, &str)]) -> f64 {
    let (status, text) = http_get(gw.config.api_addr(), "/metrics").expect("GET /metrics");
    assert_eq!(status, 200, "{text}");
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Wait (up to 10 s; the gauges are exported once a second) until
/// `metric(name, labels) == value`.
fn wait_metric(gw: &Gateway, name: &str, labels: &[(&str, &str)], value: f64) {
    let ok = wait_until(Duration::from_secs(10), || {
        metric(gw, name, labels) == value
    });
    assert!(
        ok,
        "{name}{labels:?} is {}, expected {value}\n{}\n{}",
        metric(gw, name, labels),
        gw.get("/metrics").map(|r| r.1).unwrap_or_default(),
        gw.diagnostics()
    );
}

/// Agents of the tenant in `state` (`hotline_agents`).
fn agents_in(gw: &Gateway, state: &str, n: f64) {
    wait_metric(
        gw,
        "hotline_agents",
        &[("tenant", "city"), ("state", state)],
        n,
    );
}

// ---------------------------------------------------------------------------
// the tests
// ---------------------------------------------------------------------------

#[test]
fn the_longest_idle_agent_rings_and_answers() {
    // 1001 comes first in the config and registers first, but 1002 logs
    // in first: 1002 has been ready longest.
    let (dir, gw) = start(
        "longest_idle",
        &Setup {
            queue: "",
            agents: vec![agent("1001"), agent("1002")],
            survey: false,
        },
    );
    let a1 = agent_phone(&dir, &gw, "1001", Answer::HangsUpAfter(1000));
    let a2 = agent_phone(&dir, &gw, "1002", Answer::HangsUpAfter(1000));
    agents_in(&gw, "logged_out", 2.0);
    log_in(&dir, &gw, "1002");
    log_in(&dir, &gw, "1001");
    agents_in(&gw, "ready", 2.0);
    wait_metric(
        &gw,
        "hotline_queue_agents",
        &[("queue", "general"), ("state", "ready")],
        2.0,
    );

    // The caller waits for the gateway's BYE (after the agent's).
    let (_sink, mp) = RtpSink::beside_sipp();
    let mut uac = caller(&gw, "caller", MAIN, mp).spawn(&dir);
    succeeds(&mut uac, 30, || why(&gw, &[&a1, &a2]));

    let rec = records(&gw, 1).remove(0);
    let ctx = || format!("{rec:#}\n{}", why(&gw, &[&a1, &a2, &uac]));
    assert_eq!(rec["agent"], "1002", "{}", ctx());
    assert_eq!(
        offers(&rec),
        [("1002".into(), "answered".into())],
        "{}",
        ctx()
    );
    assert_eq!(rec["queue"]["name"], "general", "{}", ctx());
    assert_eq!(rec["end"]["cause"], "callee_hangup", "{}", ctx());
    // 1002's phone got the call's INVITE; 1001's none.
    assert_eq!(invites(&a2), [callee_call_id(&rec)], "{}", ctx());
    assert!(invites(&a1).is_empty(), "{}", ctx());
    assert_eq!(aborted_calls(&a2), 0, "{}", ctx());

    wait_metric(
        &gw,
        "hotline_queue_answered_total",
        &[("queue", "general"), ("line", MAIN)],
        1.0,
    );
    // After the call and 1 s of wrap-up, both ready again.
    agents_in(&gw, "ready", 2.0);
}

#[test]
fn ring_no_answer_moves_on_to_the_next_agent() {
    // 1001 (ready longest) never answers: after the ring timeout its phone
    // is cancelled and it goes not_ready(no_answer); 1002 answers.
    let (dir, gw) = start(
        "ring_no_answer",
        &Setup {
            queue: "",
            agents: vec![agent("1001"), agent("1002")],
            survey: false,
        },
    );
    let a1 = agent_phone(&dir, &gw, "1001", Answer::Never);
    let a2 = agent_phone(&dir, &gw, "1002", Answer::HangsUpAfter(1000));
    log_in(&dir, &gw, "1001");
    log_in(&dir, &gw, "1002");
    agents_in(&gw, "ready", 2.0);

    let (_sink, mp) = RtpSink::beside_sipp();
    let mut uac = caller(&gw, "caller", MAIN, mp).spawn(&dir);
    succeeds(&mut uac, 30, || why(&gw, &[&a1, &a2]));

    let rec = records(&gw, 1).remove(0);
    let ctx = || format!("{rec:#}\n{}", why(&gw, &[&a1, &a2, &uac]));
    assert_eq!(
        offers(&rec),
        [
            ("1001".into(), "no_answer".into()),
            ("1002".into(), "answered".into())
        ],
        "{}",
        ctx()
    );
    assert_eq!(rec["agent"], "1002", "{}", ctx());
    assert_eq!(invites(&a1).len(), 1, "{}", ctx());
    assert_eq!(invites(&a2), [callee_call_id(&rec)], "{}", ctx());
    // 1001's phone was cancelled: it answered the CANCEL and 487.
    let cancelled = received(&a1).iter().any(|m| m.start.starts_with("CANCEL "));
    assert!(cancelled, "{}", ctx());
    assert_eq!(aborted_calls(&a1) + aborted_calls(&a2), 0, "{}", ctx());
    // The caller waited at least the ring timeout.
    let wait_ms = rec["wait_ms"].as_u64().unwrap_or_default();
    assert!(wait_ms >= RING_TIMEOUT_SECS * 1000, "{}", ctx());

    agents_in(&gw, "not_ready", 1.0);
    agents_in(&gw, "ready", 1.0);
    wait_metric(
        &gw,
        "hotline_queue_answered_total",
        &[("queue", "general"), ("line", MAIN)],
        1.0,
    );
}

#[test]
fn a_priority_caller_is_served_before_an_earlier_one() {
    // No agent ready: a caller to the main line waits, then one to the
    // priority line. Then the agent logs in: the priority caller first.
    //
    // The callers hang up (each when the test cues it, once its call is
    // answered), not the agent: agent-uas.xml gives every call's BYE the
    // same Via branch (SIPp numbers all out-of-call calls 0), so a
    // second BYE from one phone within Timer J (32 s) matches the first
    // BYE's server transaction (RFC 3261 17.2.3: branch, sent-by, method)
    // and gets its 200 again, for the first call's Call-ID; the second
    // call then lasts until the gateway's RTP timeout.
    let (dir, gw) = start(
        "priority",
        &Setup {
            queue: "",
            agents: vec![agent("1001")],
            survey: false,
        },
    );
    let a1 = agent_phone(&dir, &gw, "1001", Answer::WaitsForBye);

    let (_sink1, mp1) = RtpSink::beside_sipp();
    let plain_sipp = caller(&gw, "caller-plain", MAIN, mp1)
        .set("cue", "1")
        .set("hangup", "caller")
        .set("hold_ms", "200")
        .timeout_secs(45);
    let mut plain = plain_sipp.spawn(&dir);
    wait_metric(&gw, "hotline_queue_waiting", &[("queue", "general")], 1.0);
    let (_sink2, mp2) = RtpSink::beside_sipp();
    let urgent_sipp = caller(&gw, "caller-priority", PRIORITY_LINE, mp2)
        .set("cue", "1")
        .set("hangup", "caller")
        .set("hold_ms", "200")
        .timeout_secs(45);
    let mut urgent = urgent_sipp.spawn(&dir);
    wait_metric(&gw, "hotline_queue_waiting", &[("queue", "general")], 2.0);

    log_in(&dir, &gw, "1001");
    // The first call answered is the priority line's.
    let answered = |line: &str| {
        metric(
            &gw,
            "hotline_queue_answered_total",
            &[("queue", "general"), ("line", line)],
        )
    };
    let first = wait_until(Duration::from_secs(15), || {
        answered(MAIN) + answered(PRIORITY_LINE) >= 1.0
    });
    assert!(
        first,
        "no call answered\n{}",
        why(&gw, &[&a1, &plain, &urgent])
    );
    assert_eq!(
        (answered(PRIORITY_LINE), answered(MAIN)),
        (1.0, 0.0),
        "the earlier, plain caller was answered first\n{}",
        why(&gw, &[&a1, &plain, &urgent])
    );
    cue_line_uac(CALLER, &urgent_sipp, &call_id(PRIORITY_LINE, mp2));
    succeeds(&mut urgent, 20, || why(&gw, &[&a1, &plain]));
    // Then the plain caller (after the agent's 1 s of wrap-up).
    wait_metric(
        &gw,
        "hotline_queue_answered_total",
        &[("queue", "general"), ("line", MAIN)],
        1.0,
    );
    cue_line_uac(CALLER, &plain_sipp, &call_id(MAIN, mp1));
    succeeds(&mut plain, 20, || why(&gw, &[&a1, &urgent]));

    let recs = records(&gw, 2);
    let by_line = |n: &str| {
        recs.iter()
            .find(|r| r["line"]["number"] == n)
            .cloned()
            .unwrap_or(Value::Null)
    };
    let (p, q) = (by_line(PRIORITY_LINE), by_line(MAIN));
    let ctx = || format!("{recs:#?}\n{}", why(&gw, &[&a1, &plain, &urgent]));
    assert_eq!(p["queue"]["priority"], 5, "{}", ctx());
    assert_eq!(q["queue"]["priority"], 0, "{}", ctx());
    assert_eq!(p["agent"], "1001", "{}", ctx());
    assert_eq!(q["agent"], "1001", "{}", ctx());
    // The plain caller queued first…
    let queued = |r: &Value| r["queue"]["at"].as_str().unwrap_or_default().to_owned();
    assert!(queued(&q) < queued(&p), "{}", ctx());
    // …but the agent's phone rang with the priority call first.
    assert_eq!(
        invites(&a1),
        [callee_call_id(&p), callee_call_id(&q)],
        "{}",
        ctx()
    );
    assert_eq!(
        offers(&p),
        [("1001".into(), "answered".into())],
        "{}",
        ctx()
    );
    assert_eq!(
        offers(&q),
        [("1001".into(), "answered".into())],
        "{}",
        ctx()
    );
    for r in [&p, &q] {
        assert_eq!(r["end"]["cause"], "caller_hangup", "{}", ctx());
    }
    assert_eq!(aborted_calls(&a1), 0, "{}", ctx());
}

#[test]
fn escalation_drops_a_skill_and_reaches_an_agent_without_it() {
    // The queue wants skill "tax"; the only agent has "water" alone. After
    // 3 s of waiting the escalation drops "tax": then the agent rings.
    let (dir, gw) = start(
        "escalation",
        &Setup {
            queue: "skills = { tax = 2 }\n\n[[queues.escalation]]\nafter_secs = 3\ndrop_skill = \"tax\"\n",
            agents: vec![AgentSpec {
                id: "1001",
                skills: "{ water = 3 }",
            }],
            survey: false,
        },
    );
    let a1 = agent_phone(&dir, &gw, "1001", Answer::HangsUpAfter(1000));
    log_in(&dir, &gw, "1001");
    agents_in(&gw, "ready", 1.0);
    // Ready, but not eligible for the queue.
    wait_metric(
        &gw,
        "hotline_queue_agents",
        &[("queue", "general"), ("state", "ready")],
        0.0,
    );

    let (_sink, mp) = RtpSink::beside_sipp();
    let mut uac = caller(&gw, "caller", MAIN, mp).spawn(&dir);
    succeeds(&mut uac, 30, || why(&gw, &[&a1]));

    let rec = records(&gw, 1).remove(0);
    let ctx = || format!("{rec:#}\n{}", why(&gw, &[&a1, &uac]));
    assert_eq!(rec["agent"], "1001", "{}", ctx());
    assert_eq!(
        offers(&rec),
        [("1001".into(), "answered".into())],
        "{}",
        ctx()
    );
    assert_eq!(invites(&a1), [callee_call_id(&rec)], "{}", ctx());
    // The steps: queued, escalated, then offered (and never offered
    // before the escalation).
    let kinds: Vec<&str> = rec["segments"]
        .as_array()
        .map(|s| s.iter().filter_map(|s| s["kind"].as_str()).collect())
        .unwrap_or_default();
    let at = |k: &str| kinds.iter().position(|x| *x == k);
    let (queued, escalated, offered) = (at("queued"), at("escalated"), at("offered"));
    assert!(
        queued.is_some() && queued < escalated && escalated < offered,
        "{kinds:?}\n{}",
        ctx()
    );
    // The escalation came after its 3 s.
    let wait_ms = rec["wait_ms"].as_u64().unwrap_or_default();
    assert!(wait_ms >= 3000, "{}", ctx());
    wait_metric(
        &gw,
        "hotline_queue_answered_total",
        &[("queue", "general"), ("line", MAIN)],
        1.0,
    );
}

#[test]
fn agent_hangs_up_first_and_the_caller_rates_the_call() {
    let (dir, gw) = start(
        "survey",
        &Setup {
            queue: "",
            agents: vec![agent("1001")],
            survey: true,
        },
    );
    let a1 = agent_phone(&dir, &gw, "1001", Answer::HangsUpAfter(1000));
    log_in(&dir, &gw, "1001");
    agents_in(&gw, "ready", 1.0);

    // Key 4 once the question has played, then the gateway's BYE (after
    // the thanks).
    let (mut sink, mp) = RtpSink::beside_sipp();
    let uac_sipp = caller(&gw, "caller", MAIN, mp)
        .set("cue", "1")
        .set("keys", "4");
    let mut uac = uac_sipp.spawn(&dir);
    let count = |p: &[SinkPacket]| p.iter().filter(|p| packet_tone(p) == Some(SURVEY)).count();
    let question = sink.wait_for(Duration::from_secs(20), |p| count(p) >= PROMPT_PACKETS - 1);
    assert!(
        question,
        "the caller did not hear the survey question; heard {:?}\n{}",
        heard(&sink.packets()),
        why(&gw, &[&a1, &uac])
    );
    cue_line_uac(CALLER, &uac_sipp, &call_id(MAIN, mp));
    succeeds(&mut uac, 25, || why(&gw, &[&a1]));
    let packets = sink.stop();

    let rec = records(&gw, 1).remove(0);
    let ctx = || {
        format!(
            "heard {:?}\n{rec:#}\n{}",
            heard(&packets),
            why(&gw, &[&a1, &uac])
        )
    };
    let tones = heard(&packets);
    assert_eq!(tones.first(), Some(&GREETING), "{}", ctx());
    assert_eq!(
        tones[tones.len().saturating_sub(2)..],
        [SURVEY, THANK_YOU],
        "{}",
        ctx()
    );
    assert_eq!(rec["agent"], "1001", "{}", ctx());
    assert_eq!(
        offers(&rec),
        [("1001".into(), "answered".into())],
        "{}",
        ctx()
    );
    assert_eq!(rec["survey"]["level"], 4, "{}", ctx());
    assert_eq!(rec["survey"]["outcome"], "rated", "{}", ctx());
    assert_eq!(rec["survey"]["callback"], true, "{}", ctx());
    assert_eq!(rec["end"]["cause"], "callee_hangup", "{}", ctx());
    assert_eq!(rec["end"]["by"], "callee", "{}", ctx());
    assert_eq!(aborted_calls(&a1), 0, "{}", ctx());
    // The agent is in wrap-up, then ready again.
    agents_in(&gw, "ready", 1.0);
    wait_metric(
        &gw,
        "hotline_queue_answered_total",
        &[("queue", "general"), ("line", MAIN)],
        1.0,
    );
}
