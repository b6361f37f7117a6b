//! The tokio driver: sockets, the clock, the HTTP API, signals, systemd.
//!
//! Thin by design (CONVENTIONS §10): the core loop only moves bytes between
//! sockets and [`Gateway`], sleeps until the core's next deadline, and
//! measures how long the core took per input. Shutdown is injected
//! (mini-redis `run(listener, shutdown)`): on it the core drains, and the
//! loop ends when no call is left or `node.shutdown_grace` has passed.

pub mod api;
pub mod metrics;
pub mod net;
pub mod systemd;

use crate::config::Config;
use crate::gateway::{Gateway, Input, Output};
use crate::sip::transport::{Transmit, Transport};
use crate::time::{self, Duration, Instant};
use net::{NetEvent, Network};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// Why the driver could not run.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// A listener could not be bound.
    #[error("cannot listen on {addr} (config key `{key}`): {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The config key that set it.
        key: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// The runtime could not start.
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    /// The metrics recorder could not be installed.
    #[error("cannot install the metrics recorder: {0}")]
    Metrics(String),
}

/// State shared with the HTTP API (read-only facts about the core).
#[derive(Debug, Default)]
pub struct Shared {
    /// The node is draining.
    pub draining: AtomicBool,
    /// Live calls, updated by the core loop.
    pub live_calls: AtomicUsize,
}

/// Run until shutdown on a new multi-threaded runtime; SIGTERM/SIGINT drain.
pub fn run_blocking(config: Config) -> Result<(), DriverError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("hotline")
        .build()
        .map_err(DriverError::Runtime)?;
    rt.block_on(run(config, shutdown_signal()))
}

/// Resolves on the first SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut t), Ok(mut i)) => {
            tokio::select! {
                _ = t.recv() => tracing::info!("SIGTERM: draining"),
                _ = i.recv() => tracing::info!("SIGINT: draining"),
            }
        }
        _ => {
            // Without signal handlers we can still be stopped by ctrl-c.
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Run the gateway until `shutdown` resolves and the drain completes.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), DriverError> {
    let handle = metrics::install()?;
    let config = Arc::new(config);
    let shared = Arc::new(Shared::default());

    let api_listener = tokio::net::TcpListener::bind(config.api.listen)
        .await
        .map_err(|source| DriverError::Bind {
            addr: config.api.listen,
            key: "api.listen",
            source,
        })?;
    let (mut network, mut events) = Network::bind(&config).await?;
    tokio::spawn(api::serve(api_listener, handle.clone(), shared.clone()));
    tokio::spawn(metrics::upkeep(handle));

    let seed = {
        let t = time::unix_now();
        t.as_nanos() as u64 ^ (u64::from(std::process::id()) << 32)
    };
    let now = time::now();
    let mut gw = Gateway::new(config.clone(), seed, now);
    tracing::info!(
        node = %config.node.name,
        sip = %config.sip.listen,
        api = %config.api.listen,
        "hotline gateway serving ({} routes)",
        config.routes.len()
    );
    systemd::ready();

    let mut outbox: Vec<Transmit> = Vec::with_capacity(64);
    let mut deadline = drain_outputs(&mut gw, &mut network);
    let mut watchdog = systemd::watchdog_interval().map(tokio::time::interval);
    tokio::pin!(shutdown);
    let mut drain_started: Option<Instant> = None;
    let grace = config.node.shutdown_grace;

    loop {
        shared.live_calls.store(gw.live_calls(), Ordering::Relaxed);
        if let Some(started) = drain_started {
            if gw.live_calls() == 0 {
                tracing::info!("drained: no live calls");
                break;
            }
            if time::now().duration_since(started) >= grace {
                tracing::warn!(
                    calls = gw.live_calls(),
                    "shutdown grace elapsed with live calls"
                );
                break;
            }
        }
        let sleep_until = match drain_started {
            Some(s) => deadline.min(s + grace),
            None => deadline,
        };
        tokio::select! {
            biased;
            ev = events.recv() => {
                let Some(ev) = ev else { break };
                // The core's own time per input (parse, transactions, B2BUA,
                // outputs built) is measured apart from the socket writes.
                let t0 = time::now();
                let mut n = 1;
                feed(&mut gw, &mut network, ev, t0);
                // Cheap batch: whatever else already arrived.
                while n < 64 {
                    let Ok(ev) = events.try_recv() else { break };
                    feed(&mut gw, &mut network, ev, t0);
                    n += 1;
                }
                deadline = collect_outputs(&mut gw, &mut outbox);
                metrics::processing(time::now().duration_since(t0), n);
                for t in outbox.drain(..) {
                    metrics::sent(&t);
                    network.send(t);
                }
            }
            _ = tokio::time::sleep_until(sleep_until.into()) => {
                let now = time::now();
                gw.handle_timeout(now);
                deadline = drain_outputs(&mut gw, &mut network);
            }
            _ = &mut shutdown, if drain_started.is_none() => {
                drain_started = Some(time::now());
                shared.draining.store(true, Ordering::Relaxed);
                systemd::stopping();
                gw.handle_input(Input::Drain, time::now());
                deadline = drain_outputs(&mut gw, &mut network);
                tracing::info!(calls = gw.live_calls(), grace_s = grace.as_secs(), "draining");
            }
            _ = async { if let Some(w) = watchdog.as_mut() { w.tick().await; } else { std::future::pending::<()>().await } } => {
                // Pinged from the core loop: a stuck core stops pinging.
                systemd::watchdog();
                systemd::status(&format!("{} live calls{}", gw.live_calls(), if drain_started.is_some() { ", draining" } else { "" }));
            }
        }
    }
    // Let the last datagrams leave.
    network.flush().await;
    Ok(())
}

/// Hand one network event to the core.
fn feed(gw: &mut Gateway, network: &mut Network, ev: NetEvent, now: Instant) {
    match ev {
        NetEvent::Packet(p) => {
            metrics::received(&p);
            gw.handle_input(Input::Packet(p), now);
        }
        NetEvent::Closed(id) => {
            network.closed(id);
            gw.handle_input(Input::ConnClosed(id), now);
        }
        NetEvent::Opened(conn) => network.opened(conn),
    }
}

/// The loop contract: drain outputs until the core names its next deadline.
fn drain_outputs(gw: &mut Gateway, network: &mut Network) -> Instant {
    let mut out = Vec::new();
    let at = collect_outputs(gw, &mut out);
    for t in out {
        metrics::sent(&t);
        network.send(t);
    }
    at
}

/// Drain the core's outputs into `out`; return its next deadline.
fn collect_outputs(gw: &mut Gateway, out: &mut Vec<Transmit>) -> Instant {
    loop {
        match gw.poll_output() {
            Output::Transmit(t) => out.push(t),
            Output::Timeout(at, reason) => {
                tracing::trace!(?reason, "next wake");
                // Never sleep longer than a minute: a bounded loop is easier
                // to reason about (and `far_future` is only a marker).
                let cap = time::now() + Duration::from_secs(60);
                return at.min(cap);
            }
        }
    }
}

/// Transport label for metrics.
pub fn transport_label(t: Transport) -> &'static str {
    match t {
        Transport::Udp => "udp",
        Transport::Tcp => "tcp",
    }
}
