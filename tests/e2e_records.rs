//! No call record is lost (issue: call records and events to the backend):
//! SIPp carries calls through the real `hotline` binary, the gateway is
//! killed with SIGKILL in the middle of the run and started again on the
//! same data directory, and a real HTTP receiver (axum, verifying every
//! signature) must end up with a `call.record` for **every call SIPp saw
//! complete** (its BYE answered 200), delivered once per idempotency key,
//! with each call's items in order.
#![allow(clippy::disallowed_methods)] // real processes: the wall clock is the point

mod common;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use common::e2e::{wait_until, Gateway, GatewayConfig, Sipp, TestDir};
use serde_json::Value;

const SECRET: &str = "e2e-records-secret-0123456789abcdef";

#[derive(Default)]
struct Received {
    /// (idempotency key, kind, body) in arrival order, first copy only.
    items: Vec<(String, String, Value)>,
    keys: BTreeSet<String>,
    duplicates: usize,
    bad_signatures: usize,
}

async fn hook(
    State(rx): State<Arc<Mutex<Received>>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let sig = h("x-hotline-signature");
    let t: u64 = sig
        .split(',')
        .find_map(|p| p.strip_prefix("t="))
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let expected = hotline::driver::webhook::signature(SECRET.as_bytes(), t, &body);
    let mut rx = rx.lock().unwrap_or_else(|p| p.into_inner());
    if sig != expected {
        rx.bad_signatures += 1;
        return StatusCode::UNAUTHORIZED;
    }
    let key = h("idempotency-key");
    if !rx.keys.insert(key.clone()) {
        rx.duplicates += 1;
        return StatusCode::OK;
    }
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    rx.items.push((key, h("x-hotline-event"), v));
    StatusCode::OK
}

/// Call-IDs of the calls whose BYE got its 200 at the UAC (SIPp's message
/// trace).
fn completed_calls(messages: &std::path::Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(messages).unwrap_or_default();
    let mut done = BTreeSet::new();
    for block in text.split("-----------------------------------------------") {
        if !block.contains("message received") {
            continue;
        }
        let mut lines = block.lines().skip_while(|l| !l.starts_with("SIP/2.0 "));
        let Some(first) = lines.next() else { continue };
        if !first.starts_with("SIP/2.0 200") {
            continue;
        }
        let rest: Vec<&str> = lines.collect();
        let is_bye = rest
            .iter()
            .any(|l| l.starts_with("CSeq:") && l.trim_end().ends_with("BYE"));
        let call_id = rest
            .iter()
            .find_map(|l| l.strip_prefix("Call-ID:"))
            .map(|v| v.trim().to_owned());
        if let (true, Some(id)) = (is_bye, call_id) {
            done.insert(id);
        }
    }
    done
}

#[test]
fn every_completed_call_is_delivered_across_a_kill_9() {
    common::e2e::require_sipp();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => panic!("{e}"),
    };
    let received = Arc::new(Mutex::new(Received::default()));
    let app = Router::new()
        .route("/hook", post(hook))
        .with_state(received.clone());
    let listener = match rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")) {
        Ok(l) => l,
        Err(e) => panic!("{e}"),
    };
    let hook_addr = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => panic!("{e}"),
    };
    rt.spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let dir = TestDir::new("every_completed_call_is_delivered_across_a_kill_9");
    let config = GatewayConfig {
        extra_toml: format!(
            "\n[webhooks]\nurl = \"http://{hook_addr}/hook\"\nsecret = \"{SECRET}\"\n\
             max_backoff_secs = 1\ntimeout_secs = 5\n"
        ),
        ..GatewayConfig::new()
    };
    let mut gw = Gateway::start(&dir, config.clone());
    // A call the kill catches between its 180 and its 200 waits for a 200
    // that never comes (the restarted gateway does not know it): SIPp's
    // global timeout ends the run then, so keep it short.
    let uas = Sipp::uas("uas", "load-uas.xml", config.target_port)
        .calls(100_000)
        .timeout_secs(30);
    let uac = Sipp::uac("uac", "load-uac.xml", gw.sip_addr())
        .calls(400)
        .timeout_secs(20)
        .arg("-r")
        .arg("100")
        .arg("-d")
        .arg("200");
    let mut uas_proc = uas.spawn(&dir);
    let mut uac_proc = uac.spawn(&dir);

    // Kill the gateway in the middle of the run (calls arriving, ringing,
    // answered, hanging up), then start it again on the same data dir.
    std::thread::sleep(Duration::from_millis(1800));
    let killed = gw.kill9();
    assert!(killed.is_some(), "the gateway did not die");
    let gw = Gateway::start(&dir, config);

    // The UAC ends when its 400 calls are done or failed.
    let _ = uac_proc.wait(Duration::from_secs(100));
    let _ = uas_proc.try_exit();
    let completed = completed_calls(&uac_proc.messages);
    assert!(
        completed.len() >= 100,
        "too few calls completed to prove anything ({}); {}",
        completed.len(),
        uac_proc.diagnostics()
    );

    let recorded = |rx: &Received| -> BTreeSet<String> {
        rx.items
            .iter()
            .filter(|(_, kind, _)| kind == "call.record")
            .filter_map(|(_, _, v)| v["legs"][0]["sip_call_id"].as_str().map(str::to_owned))
            .collect()
    };
    let all_in = wait_until(Duration::from_secs(60), || {
        let rx = received.lock().unwrap_or_else(|p| p.into_inner());
        completed.is_subset(&recorded(&rx))
    });
    let rx = received.lock().unwrap_or_else(|p| p.into_inner());
    let have = recorded(&rx);
    let missing: Vec<&String> = completed.difference(&have).collect();
    assert!(
        all_in && missing.is_empty(),
        "{} of {} completed calls have no delivered record, e.g. {:?}\n{}",
        missing.len(),
        completed.len(),
        missing.iter().take(5).collect::<Vec<_>>(),
        gw.diagnostics()
    );
    assert_eq!(rx.bad_signatures, 0);

    // Per call, the items arrived in their order (seq 1, 2, ...) and the
    // record came last.
    let mut last_seq: HashMap<String, u64> = HashMap::new();
    for (key, kind, v) in &rx.items {
        let Some((stream, seq)) = key.rsplit_once('/') else {
            panic!("key {key}");
        };
        let seq: u64 = seq.parse().unwrap_or(0);
        let prev = last_seq.insert(stream.to_owned(), seq).unwrap_or(0);
        assert!(seq > prev, "{key} ({kind}) arrived after seq {prev}");
        if kind != "call.record" {
            assert_eq!(v["seq"].as_u64(), Some(seq), "{v}");
        }
    }
    eprintln!(
        "completed {} calls, {} items delivered ({} duplicate deliveries absorbed)",
        completed.len(),
        rx.items.len(),
        rx.duplicates
    );
}

/// Run `hotline records ...` and return (exit code, stdout).
fn records_cli(args: &[&str]) -> (i32, String) {
    let out = std::process::Command::new(common::e2e::hotline_bin())
        .arg("records")
        .args(args)
        .output();
    match out {
        Ok(o) => (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr),
        ),
        Err(e) => panic!("cannot run hotline: {e}"),
    }
}

#[test]
fn without_a_webhook_records_stay_in_the_outbox_and_the_cli_shows_them() {
    common::e2e::require_sipp();
    let dir = TestDir::new("without_a_webhook_records_stay_in_the_outbox");
    let gw = Gateway::start(&dir, GatewayConfig::new());
    let uas = Sipp::uas("uas", "basic-call-uas.xml", gw.config.target_port);
    let uac = Sipp::uac("uac", "basic-call-uac.xml", gw.sip_addr()).pause_ms(200);
    common::e2e::call_through(&dir, &gw, &uas, &uac);
    let config = gw.config_path.to_string_lossy().into_owned();

    let (code, out) = records_cli(&["list", "--config", &config, "--json"]);
    assert_eq!(code, 0, "{out}");
    let items: Vec<Value> = out
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    // Newest first.
    let kinds: Vec<&str> = items.iter().filter_map(|i| i["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        ["call.record", "call.ended", "call.answered", "call.arrived"],
        "{out}"
    );
    assert!(items.iter().all(|i| i["state"] == "pending"), "{out}");

    let id = items[0]["id"].as_u64().unwrap_or(0).to_string();
    let (code, shown) = records_cli(&["show", "--config", &config, &id]);
    assert_eq!(code, 0, "{shown}");
    assert!(shown.contains("kind:          call.record"), "{shown}");
    assert!(
        shown.contains("\"schema\": \"hotline.call_record.v1\""),
        "{shown}"
    );

    let (code, table) = records_cli(&["list", "--config", &config]);
    assert_eq!(code, 0);
    assert!(table.lines().count() >= 5, "{table}");
    let (code, dead) = records_cli(&["dead-letters", "--config", &config]);
    assert_eq!(code, 0);
    assert!(dead.contains("(no dead items)"), "{dead}");
    let (code, missing) = records_cli(&["show", "--config", &config, "999999"]);
    assert_ne!(code, 0);
    assert!(missing.contains("no item 999999"), "{missing}");
}
