//! Call records and events to the backend: the [`RecordSink`] the rest of
//! the driver appends to, and the delivery task that drives the
//! [`Delivery`] core with the [`Outbox`] and HTTP (reqwest).
//!
//! ```text
//!  RecordSink::append ──> outbox thread: INSERT + COMMIT (fsync) ──> returns
//!                                   │ Item (in commit order)
//!                                   v
//!  delivery task:  Delivery core ── poll_post ──> POST to every URL (JoinSet)
//!                    ^  handle_result <──────────── status / timeout / error
//!                    └─ poll_event ──> outbox: delivered / failure / dead
//! ```
//!
//! Every POST carries `Content-Type: application/json`, `User-Agent`,
//! `X-Hotline-Event: <kind>`, `Idempotency-Key: <key>` and
//! `X-Hotline-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret,
//! "<t>.<body>")>`; `docs/webhooks.md` is the receiver's side. Redirects
//! are not followed (a 3xx is not a delivery).
//!
//! With several URLs, an item is delivered once each URL answered 2xx; a
//! URL that already did is not posted again while this process runs (after
//! a restart it may be, with the same idempotency key).
//!
//! With no `[webhooks]` section there is no delivery task: items stay in
//! the outbox (the demo), for the CLI to show.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;

use crate::config::Webhooks;
use crate::delivery::{
    DeadCause, Delivery, Event, History, Item, ItemId, Outcome, Policy, Verdict,
};
use crate::rng::Rng;
use crate::time;

use super::metrics as m;
use super::outbox::{Failure, NewItem, Outbox, OutboxError, StoredItem};

/// The signature header.
pub const SIGNATURE_HEADER: &str = "X-Hotline-Signature";
/// The header naming the item's kind.
pub const EVENT_HEADER: &str = "X-Hotline-Event";
/// The idempotency key header: the same value on every attempt of an item.
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";
/// How often the backlog gauges are refreshed.
const GAUGE_INTERVAL: Duration = Duration::from_secs(5);
/// How often delivered items past their retention are purged.
const PURGE_INTERVAL: Duration = Duration::from_secs(3600);

/// Why the records machinery could not start.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The outbox could not be opened or read.
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    /// The HTTP client could not be built (TLS roots, ...).
    #[error("cannot build the webhook HTTP client: {0}")]
    Client(#[source] reqwest::Error),
}

/// `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
#[must_use]
pub fn signature(secret: &[u8], unix_secs: u64, body: &[u8]) -> String {
    use aws_lc_rs::hmac;
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(unix_secs.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    let tag = ctx.sign();
    let mut hex = String::with_capacity(64);
    for b in tag.as_ref() {
        hex.push(char::from(HEX[usize::from(b >> 4)]));
        hex.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    format!("t={unix_secs},v1={hex}")
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// What the delivery task is told.
#[derive(Debug)]
enum Command {
    /// A committed item (sent from the outbox thread, in commit order).
    Appended(Item),
    /// A dead item made pending again.
    Replayed(Item),
    /// An operator parks an item; the answer says whether it was pending.
    DeadLetter(ItemId, oneshot::Sender<Result<bool, OutboxError>>),
}

/// Where the driver appends call records and events. Cheap to clone.
#[derive(Debug, Clone)]
pub struct RecordSink {
    outbox: Outbox,
    commands: Option<mpsc::UnboundedSender<Command>>,
}

impl RecordSink {
    /// Store `item`; returns after the SQLite commit (on disk), so the
    /// caller may release the call. Delivery happens later.
    ///
    /// # Errors
    /// A duplicate idempotency key, or an SQLite failure (a full disk among
    /// them): the item is then *not* stored.
    pub async fn append(&self, item: NewItem) -> Result<ItemId, OutboxError> {
        let notify = self.commands.clone();
        let now_ms = unix_ms();
        self.outbox
            .call(move |store| {
                let stored = store.append(&item, now_ms)?;
                let id = stored.id;
                if let Some(n) = notify {
                    // The task may have stopped (shutdown): the item is
                    // stored and the next start delivers it.
                    let _ = n.send(Command::Appended(stored));
                }
                Ok(id)
            })
            .await
    }

    /// Store `items` in one transaction (group commit); returns after the
    /// commit. Items whose key is already stored are skipped.
    ///
    /// # Errors
    /// An SQLite failure (a full disk among them): then none is stored.
    pub async fn append_all(&self, items: Vec<NewItem>) -> Result<usize, OutboxError> {
        let notify = self.commands.clone();
        let now_ms = unix_ms();
        self.outbox
            .call(move |store| {
                let stored = store.append_all(&items, now_ms)?;
                let n = stored.len();
                if let Some(c) = notify {
                    for item in stored {
                        let _ = c.send(Command::Appended(item));
                    }
                }
                Ok(n)
            })
            .await
    }

    /// The outbox, for listing and showing items.
    #[must_use]
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// Make dead item `id` pending again with a fresh retry window. Returns
    /// whether it was dead.
    ///
    /// # Errors
    /// SQLite failed.
    pub async fn replay(&self, id: ItemId) -> Result<bool, OutboxError> {
        let replayed = self.outbox.call(move |s| s.replay(id)).await?;
        let Some(stored) = replayed else {
            return Ok(false);
        };
        if let Some(c) = &self.commands {
            let _ = c.send(Command::Replayed(stored.item()));
        }
        Ok(true)
    }

    /// Park pending item `id` (kept, replayable, no longer tried). Returns
    /// whether it was pending. An item in flight is parked when its attempt
    /// ends, unless that attempt delivers it.
    ///
    /// # Errors
    /// SQLite failed.
    pub async fn dead_letter(&self, id: ItemId) -> Result<bool, OutboxError> {
        if let Some(c) = &self.commands {
            let (tx, rx) = oneshot::channel();
            if c.send(Command::DeadLetter(id, tx)).is_ok() {
                if let Ok(answer) = rx.await {
                    return answer;
                }
            }
        }
        let now_ms = unix_ms();
        self.outbox
            .call(move |s| s.dead_letter(id, now_ms, Some("dead-lettered by an operator")))
            .await
    }
}

/// The running delivery task (if webhooks are configured).
#[derive(Debug)]
pub struct Records {
    task: Option<(watch::Sender<bool>, tokio::task::JoinHandle<()>)>,
}

impl Records {
    /// Open the outbox under `data_dir` and, when `webhooks` is set, start
    /// delivering: pending items from an earlier run first (in per-stream
    /// order), then what is appended.
    ///
    /// # Errors
    /// The outbox cannot be opened or read, or the HTTP client cannot be
    /// built.
    pub async fn start(
        webhooks: Option<Webhooks>,
        data_dir: &Path,
        user_agent: &str,
    ) -> Result<(RecordSink, Records), WebhookError> {
        let outbox = Outbox::open(data_dir).await?;
        let Some(config) = webhooks else {
            tracing::info!(
                "no [webhooks] configured: call records stay in the outbox under {}",
                data_dir.display()
            );
            let sink = RecordSink {
                outbox,
                commands: None,
            };
            return Ok((sink, Records { task: None }));
        };
        let client = reqwest::Client::builder()
            .user_agent(user_agent)
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(WebhookError::Client)?;
        let (commands, rx) = mpsc::unbounded_channel();
        // Pending items are loaded after the channel exists and before the
        // task runs, so an append racing the start is either loaded here or
        // sent on the channel (the core ignores an id it already holds).
        let sink = RecordSink {
            outbox: outbox.clone(),
            commands: Some(commands),
        };
        let pending = outbox.call(|s| s.load_pending()).await?;
        let seed = u64::try_from(time::unix_now().as_nanos() & u128::from(u64::MAX)).unwrap_or(1);
        let core = Delivery::new(
            Policy {
                concurrency: config.concurrency,
                initial_backoff: config.initial_backoff,
                max_backoff: config.max_backoff,
                retry_for: config.retry_for,
            },
            Rng::new(seed),
        );
        let mut task = Task {
            core,
            outbox,
            client,
            config: Arc::new(config),
            posts: JoinSet::new(),
            post_ids: HashMap::new(),
            acked: HashMap::new(),
            results: HashMap::new(),
        };
        task.resume(pending);
        let (stop, stop_rx) = watch::channel(false);
        let handle = tokio::spawn(task.run(rx, stop_rx));
        Ok((
            sink,
            Records {
                task: Some((stop, handle)),
            },
        ))
    }

    /// Stop delivering: attempts in flight are abandoned (their items stay
    /// pending and are posted again, with the same key, at the next start).
    pub async fn shutdown(self) {
        if let Some((stop, handle)) = self.task {
            let _ = stop.send(true);
            if let Err(e) = handle.await {
                tracing::error!("webhook delivery task ended abnormally: {e}");
            }
        }
    }
}

/// What one attempt (to every URL still owed) came to.
struct Attempt {
    id: ItemId,
    started_ms: i64,
    created_ms: Option<i64>,
    outcome: Outcome,
    /// For `last_error` and logs; empty on success.
    error: String,
    /// Which URLs answered 2xx this time.
    acked: Vec<usize>,
}

struct Task {
    core: Delivery,
    outbox: Outbox,
    client: reqwest::Client,
    config: Arc<Webhooks>,
    posts: JoinSet<Attempt>,
    post_ids: HashMap<tokio::task::Id, ItemId>,
    /// URLs (by index) that already answered 2xx, per item in flight.
    acked: HashMap<ItemId, Vec<bool>>,
    /// The attempt behind the next event about an item.
    results: HashMap<ItemId, Attempt>,
}

impl Task {
    fn resume(&mut self, pending: Vec<StoredItem>) {
        let now = time::now();
        let now_ms = unix_ms();
        for stored in pending {
            let history = History {
                attempts: stored.attempts,
                since_first_attempt: stored
                    .first_attempt_ms
                    .map(|f| Duration::from_millis(now_ms.saturating_sub(f).unsigned_abs())),
            };
            self.core.resume(stored.item(), history, now);
        }
    }

    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut gauges = tokio::time::interval(GAUGE_INTERVAL);
        let mut purge = tokio::time::interval(PURGE_INTERVAL);
        gauges.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        purge.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            self.drain().await;
            let deadline = self
                .core
                .poll_timeout()
                .map(|(at, _reason)| tokio::time::Instant::from_std(at));
            tokio::select! {
                biased;
                _ = stop.changed() => break,
                Some(joined) = self.posts.join_next_with_id(), if !self.posts.is_empty() => {
                    self.finished(joined);
                }
                Some(command) = commands.recv() => self.command(command).await,
                () = sleep_until(deadline) => self.core.handle_timeout(time::now()),
                _ = gauges.tick() => self.gauges().await,
                _ = purge.tick() => self.purge().await,
            }
        }
        self.posts.abort_all();
    }

    /// The loop contract: persist every event, start every post allowed.
    async fn drain(&mut self) {
        loop {
            if let Some(event) = self.core.poll_event() {
                self.persist(event).await;
                continue;
            }
            let Some(id) = self.core.poll_post(time::now()) else {
                return;
            };
            self.start_post(id);
        }
    }

    fn start_post(&mut self, id: ItemId) {
        let urls: Vec<(usize, reqwest::Url)> = {
            let acked = self
                .acked
                .entry(id)
                .or_insert_with(|| vec![false; self.config.urls.len()]);
            self.config
                .urls
                .iter()
                .enumerate()
                .filter(|(i, _)| !acked.get(*i).copied().unwrap_or(false))
                .map(|(i, u)| (i, u.clone()))
                .collect()
        };
        let outbox = self.outbox.clone();
        let client = self.client.clone();
        let config = Arc::clone(&self.config);
        let handle = self
            .posts
            .spawn(async move { attempt(id, urls, outbox, client, config).await });
        self.post_ids.insert(handle.id(), id);
    }

    fn finished(&mut self, joined: Result<(tokio::task::Id, Attempt), tokio::task::JoinError>) {
        let attempt = match joined {
            Ok((task, attempt)) => {
                self.post_ids.remove(&task);
                attempt
            }
            Err(e) => {
                // A panic in the HTTP stack: a bug, but the item must not
                // be stuck in flight.
                let Some(id) = self.post_ids.remove(&e.id()) else {
                    return;
                };
                tracing::error!(item = id, "webhook post task failed: {e}");
                Attempt {
                    id,
                    started_ms: unix_ms(),
                    created_ms: None,
                    outcome: Outcome::Connection,
                    error: format!("post task failed: {e}"),
                    acked: Vec::new(),
                }
            }
        };
        let id = attempt.id;
        if let Some(acked) = self.acked.get_mut(&id) {
            for i in &attempt.acked {
                if let Some(a) = acked.get_mut(*i) {
                    *a = true;
                }
            }
        }
        let label = match (attempt.outcome.verdict(), attempt.outcome) {
            (Verdict::Delivered, _) => "delivered",
            (Verdict::Rejected, _) => "rejected",
            (Verdict::Transient, Outcome::Timeout) => "timeout",
            (Verdict::Transient, Outcome::Connection) => "connection",
            (Verdict::Transient, Outcome::Status { .. }) => "error",
        };
        metrics::counter!(m::WEBHOOK_DELIVERIES, "outcome" => label).increment(1);
        let outcome = attempt.outcome;
        self.results.insert(id, attempt);
        if let Err(e) = self.core.handle_result(id, outcome, time::now()) {
            tracing::error!("{e}");
            self.results.remove(&id);
        }
    }

    async fn command(&mut self, command: Command) {
        let now = time::now();
        match command {
            Command::Appended(item) => self.core.enqueue(item, now),
            Command::Replayed(item) => {
                tracing::info!(item = item.id, key = %item.key, "replaying a dead-lettered item");
                self.core.enqueue(item, now);
            }
            Command::DeadLetter(id, answer) => {
                let result = if self.core.handle_dead_letter(id) {
                    // the event (now or when its attempt ends) persists it
                    Ok(true)
                } else {
                    let now_ms = unix_ms();
                    self.outbox
                        .call(move |s| {
                            s.dead_letter(id, now_ms, Some("dead-lettered by an operator"))
                        })
                        .await
                };
                let _ = answer.send(result);
            }
        }
    }

    async fn persist(&mut self, event: Event) {
        let now_ms = unix_ms();
        let (id, result) = match event {
            Event::Delivered { id, attempts } => {
                self.acked.remove(&id);
                let attempt = self.results.remove(&id);
                let status = match attempt.as_ref().map(|a| a.outcome) {
                    Some(Outcome::Status { code, .. }) => code,
                    _ => 200,
                };
                if let Some(created) = attempt.and_then(|a| a.created_ms) {
                    let age = now_ms.saturating_sub(created).max(0);
                    metrics::histogram!(m::WEBHOOK_DELIVERY_SECONDS).record(age as f64 / 1000.0);
                }
                tracing::debug!(item = id, attempts, status, "delivered");
                let r = self
                    .outbox
                    .call(move |s| s.mark_delivered(id, now_ms, status))
                    .await;
                (id, r)
            }
            Event::Retrying {
                id,
                attempts,
                after,
                outcome,
                rejected,
            } => {
                let attempt = self.results.remove(&id);
                let (started_ms, error) =
                    attempt.map_or((now_ms, String::new()), |a| (a.started_ms, a.error));
                if rejected {
                    tracing::warn!(
                        item = id,
                        attempts,
                        retry_in_ms = after.as_millis() as u64,
                        "the webhook receiver rejected the item ({error}); retrying, since \
                         nothing is dropped before a 2xx (an operator can dead-letter it)"
                    );
                } else {
                    tracing::info!(
                        item = id,
                        attempts,
                        retry_in_ms = after.as_millis() as u64,
                        "webhook delivery failed ({error}); will retry"
                    );
                }
                let failure = Failure {
                    attempt_ms: started_ms,
                    next_attempt_ms: now_ms
                        .saturating_add(i64::try_from(after.as_millis()).unwrap_or(i64::MAX)),
                    status: match outcome {
                        Outcome::Status { code, .. } => Some(code),
                        _ => None,
                    },
                    error,
                };
                let r = self
                    .outbox
                    .call(move |s| s.record_failure(id, &failure))
                    .await;
                (id, r)
            }
            Event::DeadLettered {
                id,
                attempts,
                cause,
            } => {
                self.acked.remove(&id);
                let attempt = self.results.remove(&id);
                metrics::counter!(m::WEBHOOK_DELIVERIES, "outcome" => "dead_lettered").increment(1);
                let reason = match cause {
                    DeadCause::RetryWindowClosed => format!(
                        "retry window closed after {attempts} attempts; last: {}",
                        attempt.map_or_else(String::new, |a| a.error)
                    ),
                    DeadCause::Operator => "dead-lettered by an operator".to_owned(),
                };
                tracing::warn!(item = id, attempts, "dead-lettered: {reason}");
                let r = self
                    .outbox
                    .call(move |s| s.dead_letter(id, now_ms, Some(&reason)))
                    .await;
                (id, r)
            }
        };
        if let Err(e) = result {
            // The core has moved on; the store has not. At the next start
            // the item is loaded as it was stored and tried again (same
            // key): a possible duplicate, never a loss.
            tracing::error!(item = id, "cannot record the delivery state: {e}");
        }
    }

    async fn gauges(&mut self) {
        match self.outbox.call(|s| s.backlog()).await {
            Ok(b) => {
                metrics::gauge!(m::WEBHOOK_BACKLOG).set(b.pending as f64);
                metrics::gauge!(m::WEBHOOK_DEAD_LETTERS).set(b.dead as f64);
                let age = b
                    .oldest_pending_ms
                    .map_or(0, |c| unix_ms().saturating_sub(c).max(0));
                metrics::gauge!(m::WEBHOOK_OLDEST_UNDELIVERED).set(age as f64 / 1000.0);
            }
            Err(e) => tracing::error!("cannot count the webhook backlog: {e}"),
        }
    }

    async fn purge(&mut self) {
        let retention = i64::try_from(self.config.retention.as_millis()).unwrap_or(i64::MAX);
        let before = unix_ms().saturating_sub(retention);
        match self.outbox.call(move |s| s.purge_delivered(before)).await {
            Ok(0) => {}
            Ok(n) => tracing::info!("purged {n} delivered items past their retention"),
            Err(e) => tracing::error!("cannot purge delivered items: {e}"),
        }
    }
}

/// POST item `id` to `urls`; the worst outcome wins.
async fn attempt(
    id: ItemId,
    urls: Vec<(usize, reqwest::Url)>,
    outbox: Outbox,
    client: reqwest::Client,
    config: Arc<Webhooks>,
) -> Attempt {
    let started_ms = unix_ms();
    let mut result = Attempt {
        id,
        started_ms,
        created_ms: None,
        outcome: Outcome::Status {
            code: 200,
            retry_after: None,
        },
        error: String::new(),
        acked: Vec::new(),
    };
    let stored = match outbox.call(move |s| s.get(id)).await {
        Ok(Some(stored)) => stored,
        Ok(None) => {
            result.outcome = Outcome::Connection;
            result.error = format!("item {id} is missing from the outbox");
            return result;
        }
        Err(e) => {
            result.outcome = Outcome::Connection;
            result.error = format!("cannot read the item from the outbox: {e}");
            return result;
        }
    };
    result.created_ms = Some(stored.created_ms);
    let mut failed: Option<(Outcome, String)> = None;
    for (index, url) in urls {
        let t = time::unix_now().as_secs();
        let sig = signature(config.secret.reveal(), t, stored.body.as_bytes());
        let sent = client
            .post(url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(EVENT_HEADER, &stored.kind)
            .header(IDEMPOTENCY_HEADER, &stored.key)
            .header(SIGNATURE_HEADER, sig)
            .body(stored.body.clone())
            .send()
            .await;
        let (outcome, error) = match sent {
            Ok(response) => {
                let code = response.status().as_u16();
                let retry_after = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                // Drain the body so the connection can be reused; its content
                // does not matter.
                let _ = response.bytes().await;
                (
                    Outcome::Status { code, retry_after },
                    format!("{url} answered {code}"),
                )
            }
            Err(e) if e.is_timeout() => (
                Outcome::Timeout,
                format!("{url}: no answer within {} s", config.timeout.as_secs_f64()),
            ),
            Err(e) => (Outcome::Connection, format!("{url}: {}", error_chain(&e))),
        };
        if outcome.verdict() == Verdict::Delivered {
            result.acked.push(index);
            result.outcome = outcome;
        } else {
            failed = Some(match failed {
                None => (outcome, error),
                // keep the first failure, but honour the longest Retry-After
                Some((first, mut text)) => {
                    text.push_str("; ");
                    text.push_str(&error);
                    (longest_retry_after(first, outcome), text)
                }
            });
        }
    }
    if let Some((outcome, error)) = failed {
        result.outcome = outcome;
        result.error = error;
    }
    result
}

fn longest_retry_after(first: Outcome, other: Outcome) -> Outcome {
    match (first, other) {
        (
            Outcome::Status {
                code,
                retry_after: a,
            },
            Outcome::Status { retry_after: b, .. },
        ) => Outcome::Status {
            code,
            retry_after: a.max(b),
        },
        (first, _) => first,
    }
}

/// "error sending request: connection refused" rather than the first link only.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn unix_ms() -> i64 {
    i64::try_from(time::unix_now().as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_python_hmac() {
        // python3 -c 'import hmac,hashlib; print(hmac.new(b"Jefe",
        //   b"1700000000.{\"a\":1}", hashlib.sha256).hexdigest())'
        assert_eq!(
            signature(b"Jefe", 1_700_000_000, br#"{"a":1}"#),
            "t=1700000000,v1=fa5f6481efc59da48b19c9dc10196c9953e5651f8304b3a318b6b87d70272e0a"
        );
    }

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        use aws_lc_rs::hmac;
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"Jefe");
        let tag = hmac::sign(&key, b"what do ya want for nothing?");
        let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
