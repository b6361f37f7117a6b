//! Call records and events reach the backend, and none is lost (issue 7,
//! "Delivery"), against a real HTTP receiver on 127.0.0.1:
//!
//! - every request carries a valid `X-Hotline-Signature` (HMAC-SHA256 over
//!   `<t>.<body>`, checked here independently with a constant-time compare
//!   and a timestamp tolerance; a bad one gets 401 and fails the test);
//! - each item is accepted once (the receiver dedupes by `Idempotency-Key`),
//!   and per stream in append order;
//! - a receiver answering 500, then down (listener closed), then slow (past
//!   the request timeout) is retried until it answers 2xx; nothing leaves
//!   the pending state before a 2xx;
//! - a restart of the delivery task on the same SQLite file delivers what
//!   was pending;
//! - with no webhook configured, items stay in the store.
//!
//! Backoffs are configured short (tens of milliseconds) so this stays a few
//! seconds of real time; the long stretches (days) are the virtual-time
//! tests of `src/delivery.rs`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use hotline::config::{Secret, Webhooks};
use hotline::driver::outbox::{NewItem, OutboxError, State as ItemState, StoredItem};
use hotline::driver::webhook::{RecordSink, Records};

const SECRET: &str = "a-test-secret-of-32-bytes-length";
/// How far the signature's timestamp may be from the receiver's clock.
const TOLERANCE_SECS: u64 = 300;
/// Bound on every wait for a condition (a hang fails, it does not time).
const PATIENCE: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Ok,
    Fail500,
    /// Sleep past the client's timeout, then answer 200.
    Slow,
}

#[derive(Debug, Default)]
struct Seen {
    /// Accepted items by key, with their body.
    accepted: HashMap<String, String>,
    /// Accepted keys, in arrival order.
    order: Vec<String>,
    /// Requests for a key already accepted (allowed: same key).
    duplicates: usize,
    /// Requests answered 500.
    failed: usize,
    /// Requests whose signature or headers did not verify.
    bad: Vec<String>,
}

struct Receiver {
    mode: Mutex<Mode>,
    seen: Mutex<Seen>,
}

impl Receiver {
    fn set(&self, mode: Mode) {
        *lock(&self.mode) = mode;
    }

    /// Read what arrived; fails the test at once if any request did not
    /// verify.
    fn seen<T>(&self, f: impl FnOnce(&Seen) -> T) -> T {
        let seen = lock(&self.seen);
        assert!(seen.bad.is_empty(), "bad requests: {:?}", seen.bad);
        f(&seen)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// Check `X-Hotline-Signature: t=<secs>,v1=<hex>` the way a receiver
/// should: parse, bound the timestamp, HMAC `<t>.<body>`, compare in
/// constant time.
fn verify(headers: &HeaderMap, body: &[u8], now_secs: u64) -> Result<(), String> {
    use aws_lc_rs::hmac;
    let value = headers
        .get("x-hotline-signature")
        .and_then(|v| v.to_str().ok())
        .ok_or("no X-Hotline-Signature")?;
    let mut t = None;
    let mut v1 = None;
    for part in value.split(',') {
        match part.split_once('=') {
            Some(("t", x)) => t = x.parse::<u64>().ok(),
            Some(("v1", x)) => v1 = Some(x),
            _ => {}
        }
    }
    let (t, v1) = t
        .zip(v1)
        .ok_or_else(|| format!("malformed signature {value:?}"))?;
    if t.abs_diff(now_secs) > TOLERANCE_SECS {
        return Err(format!("timestamp {t} too far from {now_secs}"));
    }
    let tag = hex_decode(v1).ok_or_else(|| format!("bad hex in {value:?}"))?;
    let key = hmac::Key::new(hmac::HMAC_SHA256, SECRET.as_bytes());
    let mut signed = format!("{t}.").into_bytes();
    signed.extend_from_slice(body);
    hmac::verify(&key, &signed, &tag).map_err(|_| "signature mismatch".to_owned())
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn unix_secs() -> u64 {
    hotline::time::unix_now().as_secs()
}

async fn hook(State(rx): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    if let Err(why) = verify(&headers, &body, unix_secs()) {
        lock(&rx.seen).bad.push(why);
        return StatusCode::UNAUTHORIZED;
    }
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (Some(key), Some(_kind), Some("application/json")) = (
        header("idempotency-key"),
        header("x-hotline-event"),
        header("content-type").as_deref(),
    ) else {
        lock(&rx.seen)
            .bad
            .push(format!("missing headers: {headers:?}"));
        return StatusCode::BAD_REQUEST;
    };
    let mode = *lock(&rx.mode);
    match mode {
        Mode::Fail500 => {
            lock(&rx.seen).failed += 1;
            return StatusCode::INTERNAL_SERVER_ERROR;
        }
        Mode::Slow => tokio::time::sleep(Duration::from_secs(2)).await,
        Mode::Ok => {}
    }
    let mut seen = lock(&rx.seen);
    if seen.accepted.contains_key(&key) {
        seen.duplicates += 1;
    } else {
        seen.accepted
            .insert(key.clone(), String::from_utf8_lossy(&body).into_owned());
        seen.order.push(key);
    }
    StatusCode::NO_CONTENT
}

/// A receiver that can be taken down (listener closed) and brought back on
/// the same port.
struct Server {
    receiver: Arc<Receiver>,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Server {
    async fn start(mode: Mode) -> Server {
        let receiver = Arc::new(Receiver {
            mode: Mutex::new(mode),
            seen: Mutex::new(Seen::default()),
        });
        let listener = ok(TcpListener::bind("127.0.0.1:0").await);
        let addr = ok(listener.local_addr());
        let mut server = Server {
            receiver,
            addr,
            stop: None,
            task: None,
        };
        server.serve(listener);
        server
    }

    fn serve(&mut self, listener: TcpListener) {
        let app = Router::new()
            .route("/hook", post(hook))
            .with_state(Arc::clone(&self.receiver));
        let (stop, stopped) = oneshot::channel::<()>();
        self.stop = Some(stop);
        self.task = Some(tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        }));
    }

    async fn down(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            // graceful shutdown waits for open connections; bound it
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }

    async fn up(&mut self) {
        let listener = ok(TcpListener::bind(self.addr).await);
        self.serve(listener);
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }
}

fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    }
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!(
            "hotline-webhook-{name}-{}-{}",
            std::process::id(),
            hotline::time::unix_now().as_nanos()
        ));
        ok(std::fs::create_dir_all(&path));
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn webhooks(url: &str) -> Webhooks {
    Webhooks {
        urls: vec![ok(reqwest::Url::parse(url))],
        secret: Secret::new(SECRET),
        timeout: Duration::from_millis(500),
        retry_for: Duration::from_secs(3600),
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        concurrency: 4,
        retention: Duration::from_secs(86_400),
    }
}

async fn start(url: Option<&str>, dir: &TempDir) -> (RecordSink, Records) {
    ok(Records::start(url.map(webhooks), &dir.0, "hotline-test").await)
}

/// Items `1..=per_stream` of each stream, appended interleaved.
async fn append_all(sink: &RecordSink, streams: &[&str], per_stream: u32) -> Vec<String> {
    let mut keys = Vec::new();
    for n in 1..=per_stream {
        for s in streams {
            let key = format!("{s}:{n}");
            let item = NewItem {
                stream: (*s).to_owned(),
                key: key.clone(),
                kind: "call.event".to_owned(),
                body: format!("{{\"call\":\"{s}\",\"n\":{n}}}"),
            };
            ok(sink.append(item).await);
            keys.push(key);
        }
    }
    keys
}

async fn items(sink: &RecordSink, state: ItemState) -> Vec<StoredItem> {
    ok(sink.outbox().call(move |s| s.list(state, 10_000)).await)
}

/// Wait until `cond` holds, polling; panic after [`PATIENCE`].
async fn wait_for<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let give_up = tokio::time::Instant::now() + PATIENCE;
    while !cond().await {
        assert!(
            tokio::time::Instant::now() < give_up,
            "gave up waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every key accepted once, and per stream in append order.
fn assert_delivered_in_order(server: &Server, keys: &[String]) {
    server.receiver.seen(|seen| {
        assert!(seen.bad.is_empty(), "bad requests: {:?}", seen.bad);
        assert_eq!(seen.accepted.len(), keys.len(), "accepted {:?}", seen.order);
        for k in keys {
            assert!(seen.accepted.contains_key(k), "{k} never accepted");
        }
        let mut last: HashMap<&str, u32> = HashMap::new();
        for key in &seen.order {
            let Some((stream, n)) = key.split_once(':') else {
                panic!("odd key {key}")
            };
            let n: u32 = ok(n.parse());
            let prev = last.insert(stream, n).unwrap_or(0);
            assert_eq!(
                n,
                prev + 1,
                "{stream}: {n} arrived after {prev}: {:?}",
                seen.order
            );
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivered_once_each_in_stream_order_through_500_and_down_phases() {
    let handle = hotline::driver::metrics::install();
    let mut server = Server::start(Mode::Fail500).await;
    let dir = TempDir::new("phases");
    let (sink, records) = start(Some(&server.url()), &dir).await;
    let keys = append_all(&sink, &["call-a", "call-b", "call-c"], 5).await;

    // 500s: retried, and nothing is delivered or deleted meanwhile
    wait_for("a dozen 500s", || async {
        server.receiver.seen(|s| s.failed >= 12)
    })
    .await;
    assert_eq!(items(&sink, ItemState::Pending).await.len(), keys.len());
    assert!(items(&sink, ItemState::Delivered).await.is_empty());
    assert!(items(&sink, ItemState::Dead).await.is_empty());
    let failed = items(&sink, ItemState::Pending).await;
    assert!(failed.iter().any(|i| i.last_status == Some(500)));

    // down: connection errors, retried
    server.down().await;
    wait_for("a connection failure recorded", || async {
        items(&sink, ItemState::Pending)
            .await
            .iter()
            .any(|i| i.attempts > 0 && i.last_status.is_none())
    })
    .await;
    assert_eq!(items(&sink, ItemState::Pending).await.len(), keys.len());

    // back up: everything delivered, in order, once
    server.receiver.set(Mode::Ok);
    server.up().await;
    wait_for("everything delivered", || async {
        items(&sink, ItemState::Delivered).await.len() == keys.len()
    })
    .await;
    assert_delivered_in_order(&server, &keys);
    let stored = items(&sink, ItemState::Delivered).await;
    assert!(stored.iter().all(|i| i.attempts >= 1));
    for item in &stored {
        let body = server.receiver.seen(|s| s.accepted.get(&item.key).cloned());
        assert_eq!(body.as_deref(), Some(item.body.as_str()), "body as stored");
    }

    records.shutdown().await;
    handle.run_upkeep();
    let text = handle.render();
    for want in [
        "hotline_webhook_deliveries_total{outcome=\"delivered\"}",
        "hotline_webhook_deliveries_total{outcome=\"error\"}",
        "hotline_webhook_deliveries_total{outcome=\"connection\"}",
        "hotline_webhook_backlog",
        "hotline_webhook_oldest_undelivered_seconds",
    ] {
        assert!(text.contains(want), "missing {want} in\n{text}");
    }
    server.down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_receiver_times_out_and_is_retried() {
    let mut server = Server::start(Mode::Slow).await;
    let dir = TempDir::new("slow");
    let (sink, records) = start(Some(&server.url()), &dir).await;
    let keys = append_all(&sink, &["call-s"], 2).await;
    wait_for("a timeout recorded", || async {
        items(&sink, ItemState::Pending).await.iter().any(|i| {
            i.last_error
                .as_deref()
                .is_some_and(|e| e.contains("no answer within"))
        })
    })
    .await;
    server.receiver.set(Mode::Ok);
    wait_for("everything delivered", || async {
        items(&sink, ItemState::Delivered).await.len() == keys.len()
    })
    .await;
    // a slow answer may have been accepted after the client gave up: then
    // the retry is a duplicate with the same key, which the receiver dedupes
    assert_delivered_in_order(&server, &keys);
    records.shutdown().await;
    server.down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_on_the_same_file_delivers_what_was_pending() {
    let mut server = Server::start(Mode::Fail500).await;
    let dir = TempDir::new("restart");
    let (sink, records) = start(Some(&server.url()), &dir).await;
    let keys = append_all(&sink, &["call-r1", "call-r2"], 3).await;
    wait_for("failures recorded", || async {
        items(&sink, ItemState::Pending)
            .await
            .iter()
            .filter(|i| i.attempts >= 2)
            .count()
            >= 2
    })
    .await;
    records.shutdown().await;
    drop(sink);

    server.receiver.set(Mode::Ok);
    let (sink, records) = start(Some(&server.url()), &dir).await;
    wait_for("everything delivered after the restart", || async {
        items(&sink, ItemState::Delivered).await.len() == keys.len()
    })
    .await;
    assert_delivered_in_order(&server, &keys);
    // attempts from before the restart were kept
    let delivered = items(&sink, ItemState::Delivered).await;
    assert!(delivered.iter().any(|i| i.attempts >= 3), "{delivered:?}");
    records.shutdown().await;
    server.down().await;
}

#[tokio::test]
async fn without_a_webhook_items_stay_in_the_store() {
    let dir = TempDir::new("none");
    let (sink, records) = start(None, &dir).await;
    let keys = append_all(&sink, &["call-x"], 3).await;
    let pending = items(&sink, ItemState::Pending).await;
    assert_eq!(pending.len(), keys.len());
    assert!(pending.iter().all(|i| i.attempts == 0));
    let dup = sink
        .append(NewItem {
            stream: "call-x".into(),
            key: keys[0].clone(),
            kind: "call.event".into(),
            body: "{}".into(),
        })
        .await;
    assert!(matches!(dup, Err(OutboxError::DuplicateKey(_))), "{dup:?}");
    // operators can park and replay
    let id = pending[0].id;
    assert!(ok(sink.dead_letter(id).await));
    assert_eq!(items(&sink, ItemState::Dead).await.len(), 1);
    assert!(ok(sink.replay(id).await));
    assert_eq!(items(&sink, ItemState::Pending).await.len(), keys.len());
    records.shutdown().await;
}

#[tokio::test]
async fn the_receiver_rejects_a_bad_signature() {
    // proves the checks above verify for real
    let mut server = Server::start(Mode::Ok).await;
    let client = reqwest::Client::new();
    let body = "{\"n\":1}";
    let good = hotline::driver::webhook::signature(SECRET.as_bytes(), unix_secs(), body.as_bytes());
    let send = |sig: String, body: &'static str| {
        client
            .post(server.url())
            .header("content-type", "application/json")
            .header("x-hotline-event", "call.event")
            .header("idempotency-key", "k")
            .header("x-hotline-signature", sig)
            .body(body)
            .send()
    };
    let tampered = ok(send(good.clone(), "{\"n\":2}").await);
    assert_eq!(tampered.status().as_u16(), 401);
    let old =
        hotline::driver::webhook::signature(SECRET.as_bytes(), unix_secs() - 3600, body.as_bytes());
    assert_eq!(ok(send(old, body).await).status().as_u16(), 401);
    assert_eq!(ok(send(good, body).await).status().as_u16(), 204);
    assert_eq!(lock(&server.receiver.seen).bad.len(), 2);
    server.down().await;
}
