//! The thin driver (CONVENTIONS §10): tokio sockets, timers, the HTTP API,
//! signals and systemd around the sans-IO [`Gateway`].
//!
//! # The core loop
//! One task owns the [`Gateway`] (single owner: no locks, no races). Each
//! turn it sends what the core asked for, then waits for the first of:
//!
//! 1. the shutdown future (SIGTERM/SIGINT): [`Input::Drain`];
//! 2. the core's deadline: [`Gateway::handle_timeout`];
//! 3. the tick (1 s; half the systemd watchdog interval when that is
//!    shorter): `WATCHDOG=1`, `STATUS=`, gauges. Pinged from this loop, so
//!    a stuck core stops pinging;
//! 4. received messages (from the UDP receive task and the TCP connection
//!    tasks) and accepted connections, up to [`BATCH`] per wake;
//! 5. a TCP connection task ending: [`Input::ConnClosed`].
//!
//! UDP is read by its own task, not by the core loop: it drains the
//! kernel buffer while the core works, so a burst waits in a deep channel
//! instead of overflowing the socket's receive buffer (`SO_RCVBUF`, set
//! from `sip.udp_buffer_bytes`; what the kernel still drops is counted in
//! `hotline_sip_udp_kernel_drops_total`).
//! Sends go out from the core loop (`try_send_to`).
//!
//! The order is `biased`: a due timer is never starved by a packet flood
//! (the timer arm only wins when it is due, so it costs nothing otherwise).
//!
//! After every input the loop drains [`Gateway::poll_output`] to its
//! `Timeout` (the loop contract, see [`crate::gateway`]) and records how long
//! that took: in `hotline_sip_processing_seconds` for a message, in
//! `hotline_sip_timer_seconds` for a timer wake (which handles every timer
//! due by then, so it may be a batch). The sends happen after the
//! measurement, so it measures the core, not the kernel.
//!
//! # Records before datagrams
//! The core emits call records ([`Output::Record`]) beside datagrams. A
//! turn's records are committed to the outbox (one SQLite transaction on
//! its own thread) **before** that turn's datagrams are sent, so the 200 to
//! a BYE leaves only once the call's record is on disk. The loop does not
//! wait for the commit: it goes on taking input while one commit is in
//! flight; what later turns produce waits for the next commit (records are
//! grouped, datagrams keep their order). A turn with no records and no
//! commit in flight sends at once.
//!
//! # Shutdown (CONVENTIONS §11)
//! The shutdown future is injected ([`run`]); [`run_blocking`] wires it to
//! SIGTERM/SIGINT. On it: [`Input::Drain`] (the core answers new INVITEs
//! 503), `/healthz` answers 503, `STOPPING=1`; the loop ends once
//! [`Gateway::live_calls`] is 0 (after the last outputs went out) or
//! `node.shutdown_grace` has passed; TCP connections get a moment to write
//! what is queued, and [`run`] returns `Ok`. A second signal exits the
//! process at once with status 1. SIGHUP re-reads and checks the
//! configuration file (applied at the next start).

pub mod api;
pub mod latency;
pub mod log;
pub mod media;
pub mod metrics;
pub mod net;
pub mod outbox;
pub mod systemd;
pub mod webhook;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{mpsc, oneshot};

use crate::config::Config;
use crate::gateway::{Gateway, Input, Output, Reason};
use crate::sip::transport::{Packet, Transmit, Transport};
use crate::time::{self, Instant};

use self::metrics::{RecordMetrics, SipMetrics};
use self::net::{Conns, NetEvent};
use self::outbox::NewItem;
use self::systemd::Notifier;
use self::webhook::{RecordSink, Records};
use crate::call::record::RecordItem;

/// Most network events handled per wake of the core loop.
pub const BATCH: usize = 64;
/// Capacity of the channel from the socket tasks to the core loop.
const EVENT_QUEUE: usize = 8192;
/// At exit, how long TCP connections may take to write what is queued.
const TCP_FLUSH_AT_EXIT: Duration = Duration::from_secs(1);
/// At exit, how long the HTTP API may take to finish its requests.
const API_STOP: Duration = Duration::from_secs(1);
/// Requests from the operators' API waiting for the core loop (more wait in
/// their handlers: the API never overtakes calls).
const API_QUEUE: usize = 64;

/// Why the driver could not run.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// A listening socket could not be bound.
    #[error("cannot bind {transport} {addr} (config key `{key}`): {source}{hint}", hint = bind_hint(.key, .source))]
    Bind {
        /// The configuration key that names the address.
        key: &'static str,
        /// `UDP`, `TCP` or `HTTP`.
        transport: &'static str,
        /// The address.
        addr: SocketAddr,
        /// What the OS said.
        source: io::Error,
    },
    /// The tokio runtime could not be built.
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] io::Error),
    /// The signal handlers could not be installed.
    #[error("cannot install the SIGTERM/SIGINT handlers: {0}")]
    Signals(#[source] io::Error),
    /// The call-record outbox (or the webhook client) could not start: the
    /// gateway does not take calls it cannot record.
    #[error("cannot start call records (config key `node.data_dir`): {0}")]
    Records(#[source] webhook::WebhookError),
    /// The media threads could not start.
    #[error("cannot start the media threads (config key `media.shards`): {0}")]
    Media(#[source] io::Error),
}

fn bind_hint(key: &str, e: &io::Error) -> String {
    let flag = format!("--{}", key.replace('.', "-"));
    match e.kind() {
        io::ErrorKind::AddrInUse => {
            format!("\n  help: another process uses this address; change `{key}` or pass {flag}")
        }
        io::ErrorKind::AddrNotAvailable => {
            format!("\n  help: no interface of this host has that address; check `{key}`")
        }
        io::ErrorKind::PermissionDenied => {
            "\n  help: ports below 1024 need CAP_NET_BIND_SERVICE".to_owned()
        }
        _ => String::new(),
    }
}

/// Run the gateway until `shutdown` completes and the drain ends:
/// [`Sockets::bind`], then [`Sockets::run`].
///
/// # Errors
/// A socket cannot be bound ([`DriverError::Bind`] names the address and
/// the config key).
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), DriverError> {
    Sockets::bind(config).await?.run(shutdown).await;
    Ok(())
}

/// Build the runtime, wire SIGTERM/SIGINT as the shutdown, and [`run`].
///
/// The first signal drains (returns `Ok` when done); a second one exits
/// the process at once with status 1.
///
/// # Errors
/// See [`DriverError`].
pub fn run_blocking(config: Config) -> Result<(), DriverError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("hotline-io")
        .enable_all()
        .build()
        .map_err(DriverError::Runtime)?;
    // The core loop runs on this thread (block_on), the socket tasks on
    // the two workers: the UDP reader keeps draining the kernel buffer in
    // parallel while the core works. (Spawned onto the workers instead, the
    // core and the reader end up taking turns on one worker: tokio's LIFO
    // slot wakes the core on the reader's worker, where it cannot be
    // stolen.)
    let result = rt.block_on(async {
        let shutdown = signals(config.origin.clone()).map_err(DriverError::Signals)?;
        run(config, shutdown).await
    });
    rt.shutdown_timeout(Duration::from_secs(1));
    result
}

/// The shutdown future: completes on the first SIGTERM or SIGINT; the
/// second one exits the process with status 1. SIGHUP (`systemctl reload`)
/// re-reads and checks the configuration file `origin`.
fn signals(origin: String) -> io::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let first = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::info!(
            signal = first,
            "shutdown requested (send it again to exit at once)"
        );
        let _ = tx.send(());
        let second = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::warn!(
            signal = second,
            "second signal: exiting now, live calls are cut"
        );
        std::process::exit(1);
    });
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            check_reload(&origin);
        }
    });
    Ok(async {
        let _ = rx.await;
    })
}

/// SIGHUP: re-read and validate the configuration. The core takes its
/// configuration at start only, so a valid file is applied by a restart.
fn check_reload(origin: &str) {
    if origin == crate::config::DEMO_ORIGIN {
        tracing::info!("SIGHUP: running the embedded demo configuration; nothing to re-read");
        return;
    }
    match crate::config::load(std::path::Path::new(origin)) {
        Ok(_) => tracing::warn!(
            config = origin,
            "SIGHUP: the configuration file is valid, but this version applies it only at \
             start: restart to apply changes"
        ),
        Err(e) => tracing::error!(
            "SIGHUP: the configuration file is not usable (still running the old one): {e}"
        ),
    }
}

/// The bound listening sockets, ready to [`run`](Sockets::run). Binding
/// first lets a caller learn the actual addresses (port 0 in tests).
pub struct Sockets {
    config: Config,
    udp: UdpSocket,
    tcp: TcpListener,
    api: TcpListener,
    sink: RecordSink,
    records: Records,
}

impl Sockets {
    /// Bind `sip.listen` (UDP, then TCP on the same address; a port 0
    /// `listen` gets the UDP port for TCP too) and `api.listen`. The
    /// config's listen addresses are updated to the bound ones, so the core
    /// advertises the real port.
    ///
    /// # Errors
    /// [`DriverError::Bind`] names the address and the config key.
    pub async fn bind(mut config: Config) -> Result<Sockets, DriverError> {
        let (udp, tcp) = net::bind(config.sip.listen, config.sip.udp_buffer_bytes)
            .await
            .map_err(|(transport, addr, source)| DriverError::Bind {
                key: "sip.listen",
                transport,
                addr,
                source,
            })?;
        let api = TcpListener::bind(config.api.listen)
            .await
            .map_err(|source| DriverError::Bind {
                key: "api.listen",
                transport: "HTTP",
                addr: config.api.listen,
                source,
            })?;
        let (sink, records) = Records::start(
            config.webhooks.clone(),
            &config.node.data_dir,
            &config.sip.user_agent,
        )
        .await
        .map_err(DriverError::Records)?;
        if let Ok(a) = udp.local_addr() {
            config.sip.listen = a;
        }
        if let Ok(a) = api.local_addr() {
            config.api.listen = a;
        }
        Ok(Sockets {
            config,
            udp,
            tcp,
            api,
            sink,
            records,
        })
    }

    /// The address SIP (UDP and TCP) is bound to.
    pub fn sip_addr(&self) -> SocketAddr {
        self.config.sip.listen
    }

    /// The address the HTTP API is bound to.
    pub fn api_addr(&self) -> SocketAddr {
        self.config.api.listen
    }

    /// Serve until `shutdown` completes and the drain ends (module docs).
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let Sockets {
            config,
            udp,
            tcp,
            api,
            sink,
            records,
        } = self;
        let config = Arc::new(config);
        tracing::info!(
            node = %config.node.name,
            config = %config.origin,
            sip = %config.sip.listen,
            advertise = %config.sip.advertise,
            api = %config.api.listen,
            "hotline listening (SIP over UDP and TCP)"
        );
        check_open_files(&config);

        let prometheus = metrics::install();
        let draining = Arc::new(AtomicBool::new(false));
        let (api_stop, api_stopped) = oneshot::channel::<()>();
        let processing = latency::Summary::new(
            metrics::PROCESSING_SECONDS,
            "Time the signalling core spends on one received message, outputs drained",
        );
        let timer = latency::Summary::new(
            metrics::TIMER_SECONDS,
            "Time the signalling core spends on one timer wake, outputs drained",
        );
        let relay = latency::Summary::new(
            media::RELAY_SECONDS,
            "Time from receiving an RTP packet to its relay send returning, in the media threads",
        );
        let (api_core, api_requests) = mpsc::channel::<api::ApiRequest>(API_QUEUE);
        let api_state = api::ApiState {
            metrics: prometheus.clone(),
            summaries: vec![processing.clone(), timer.clone(), relay.clone()],
            draining: draining.clone(),
            core: api_core,
            tokens: Arc::new(config.api.tokens.clone()),
        };
        let api_task = tokio::spawn(api::serve(api, api_state, async {
            let _ = api_stopped.await;
        }));
        let upkeep = tokio::spawn(metrics::upkeep(prometheus, net::socket_inode(&udp)));

        let udp = Arc::new(udp);
        let (events_tx, events_rx) = mpsc::channel(EVENT_QUEUE);
        let accept = tokio::spawn(net::accept_loop(tcp, events_tx.clone()));
        let udp_recv = tokio::spawn(net::udp_loop(
            udp.clone(),
            events_tx.clone(),
            config.sip.max_message_bytes,
        ));
        let conns = Conns::new(
            events_tx,
            config.sip.tcp_max_connections,
            config.sip.max_message_bytes,
            config.sip.tcp_idle_timeout,
        );

        let latency = Latency {
            processing: processing.recorder(),
            timer: timer.recorder(),
        };
        let (media_tx, media_rx) = mpsc::unbounded_channel();
        let core = match Core::new(
            config.clone(),
            SipMetrics::new(),
            latency,
            (media_tx, &relay),
        ) {
            Ok(core) => core,
            Err(e) => {
                tracing::error!(error = %e, "cannot serve");
                accept.abort();
                udp_recv.abort();
                records.shutdown().await;
                let _ = api_stop.send(());
                upkeep.abort();
                return;
            }
        };
        let shards = CoreLoop::new(
            config,
            core,
            udp,
            events_rx,
            media_rx,
            conns,
            draining,
            sink,
            api_requests,
        )
        .run(shutdown, [accept.abort_handle(), udp_recv.abort_handle()])
        .await;
        records.shutdown().await;
        // Blocking joins: the shard threads end as soon as their command
        // channels close.
        let _ = tokio::task::spawn_blocking(move || shards.shutdown()).await;

        let _ = api_stop.send(());
        match tokio::time::timeout(API_STOP, api_task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "http api failed"),
            Ok(Err(e)) => tracing::error!(error = %e, "bug: http api task failed"),
            Err(_) => tracing::debug!("http api stopped with requests in flight"),
        }
        upkeep.abort();
        tracing::info!("stopped");
    }
}

/// Where the core loop records how long the core took.
struct Latency {
    /// Per received message or connection event.
    processing: latency::Recorder,
    /// Per timer wake.
    timer: latency::Recorder,
}

/// The core and what it asked for: feeds inputs, drains outputs, measures.
struct Core {
    gw: Gateway,
    /// The media threads, commanded straight from the drain.
    media: media::MediaShards,
    out: Vec<Transmit>,
    /// Records and events of this turn: committed before `out` is sent.
    records: Vec<RecordItem>,
    next: (Instant, Reason),
    metrics: SipMetrics,
    latency: Latency,
}

impl Core {
    fn new(
        config: Arc<Config>,
        metrics: SipMetrics,
        latency: Latency,
        (media_events, relay): (
            mpsc::UnboundedSender<crate::media::shard::MediaEvent>,
            &latency::Summary,
        ),
    ) -> Result<Self, DriverError> {
        let seed = (time::unix_now().as_nanos() as u64) ^ (u64::from(std::process::id()) << 32);
        let now = time::now();
        let mut gw = Gateway::new(config.clone(), seed, now);
        let media = media::MediaShards::start(&config, gw.media_ranges(), media_events, relay)
            .map_err(DriverError::Media)?;
        gw.handle_input(Input::WallClock(time::unix_now()), now);
        let mut out = Vec::new();
        let mut records = Vec::new();
        let next = drain(&mut gw, &mut out, &mut records, &media);
        Ok(Self {
            gw,
            media,
            out,
            records,
            next,
            metrics,
            latency,
        })
    }

    fn input(&mut self, input: Input) {
        let now = time::now();
        self.gw.handle_input(input, now);
        self.next = drain(&mut self.gw, &mut self.out, &mut self.records, &self.media);
        self.latency
            .processing
            .record(time::now().saturating_duration_since(now));
    }

    fn timeout(&mut self) {
        let now = time::now();
        tracing::trace!(reason = ?self.next.1, "timer");
        self.gw.handle_timeout(now);
        self.next = drain(&mut self.gw, &mut self.out, &mut self.records, &self.media);
        self.latency
            .timer
            .record(time::now().saturating_duration_since(now));
    }

    /// A request from the operators' API: answered from the core, an
    /// agent command carried out like any input.
    fn api(&mut self, req: api::ApiRequest) {
        let now = time::now();
        match req {
            api::ApiRequest::Agents(reply) => {
                let _ = reply.send(self.gw.b2bua().agents_view());
            }
            api::ApiRequest::Queues(reply) => {
                let _ = reply.send(self.gw.b2bua().queues_view(now));
            }
            api::ApiRequest::Agent { id, cmd, reply } => {
                let done = self.gw.agent_command(&id, &cmd, now);
                self.next = drain(&mut self.gw, &mut self.out, &mut self.records, &self.media);
                let after = done.map(|()| {
                    self.gw
                        .b2bua()
                        .agents_view()
                        .into_iter()
                        .find(|a| a.id == id)
                });
                if let Ok(Some(a)) = &after {
                    tracing::info!(agent = %a.id, state = a.state, "agent command from the API");
                }
                let _ = reply.send(after);
            }
        }
    }

    fn packet(&mut self, p: Packet) {
        self.metrics.received(p.transport, p.data.len());
        self.input(Input::Packet(p));
    }
}

/// The loop contract: drain outputs until the core names its next deadline.
fn drain(
    gw: &mut Gateway,
    out: &mut Vec<Transmit>,
    records: &mut Vec<RecordItem>,
    media: &media::MediaShards,
) -> (Instant, Reason) {
    loop {
        match gw.poll_output() {
            Output::Transmit(t) => out.push(t),
            Output::Record(r) => records.push(r),
            Output::Media { shard, cmd } => media.send(shard, cmd),
            Output::Timeout(at, reason) => {
                media.flush();
                return (at, reason);
            }
        }
    }
}

/// The core loop's state: the core and the sockets it drives.
struct CoreLoop {
    config: Arc<Config>,
    core: Core,
    udp: Arc<UdpSocket>,
    events: mpsc::Receiver<NetEvent>,
    media_events: mpsc::UnboundedReceiver<crate::media::shard::MediaEvent>,
    conns: Conns,
    draining: Arc<AtomicBool>,
    notifier: Notifier,
    /// Requests from the operators' API.
    api_requests: mpsc::Receiver<api::ApiRequest>,
    /// The outbox.
    sink: RecordSink,
    /// Items whose commit failed, retried before the next ones (in order).
    unsaved: Vec<NewItem>,
    /// The commit in flight.
    commit: Option<tokio::task::JoinHandle<CommitResult>>,
    /// Datagrams waiting for the commit in flight.
    held: Vec<Transmit>,
    /// Records produced since the commit in flight started.
    next_records: Vec<NewItem>,
    /// Datagrams produced since then: they wait for the next commit.
    held_next: Vec<Transmit>,
    /// After a failed commit, no new one before this (the outbox is not
    /// hammered while its disk is failing).
    retry_at: Option<Instant>,
    record_metrics: RecordMetrics,
}

impl CoreLoop {
    #[allow(clippy::too_many_arguments)]
    fn new(
        config: Arc<Config>,
        core: Core,
        udp: Arc<UdpSocket>,
        events: mpsc::Receiver<NetEvent>,
        media_events: mpsc::UnboundedReceiver<crate::media::shard::MediaEvent>,
        conns: Conns,
        draining: Arc<AtomicBool>,
        sink: RecordSink,
        api_requests: mpsc::Receiver<api::ApiRequest>,
    ) -> Self {
        Self {
            api_requests,
            sink,
            unsaved: Vec::new(),
            commit: None,
            held: Vec::new(),
            next_records: Vec::new(),
            held_next: Vec::new(),
            retry_at: None,
            record_metrics: RecordMetrics::new(),
            core,
            config,
            udp,
            events,
            media_events,
            conns,
            draining,
            notifier: Notifier::new(),
        }
    }

    /// Serve until the drain ends; then abort the socket tasks (`readers`)
    /// and close the TCP connections. Returns the media threads (to stop).
    async fn run(
        mut self,
        shutdown: impl Future<Output = ()>,
        readers: [tokio::task::AbortHandle; 2],
    ) -> media::MediaShards {
        tokio::pin!(shutdown);
        let mut tick = tokio::time::interval(self.notifier.tick_interval());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut drain_until: Option<Instant> = None;
        self.notifier.ready("serving: 0 calls");

        loop {
            self.flush().await;
            if let Some(until) = drain_until {
                let live = self.core.gw.live_calls();
                if live == 0 {
                    tracing::info!("drained: no live calls");
                    break;
                }
                if time::now() >= until {
                    tracing::warn!(
                        live,
                        grace = ?self.config.node.shutdown_grace,
                        "shutdown grace over: exiting with live calls"
                    );
                    break;
                }
            }
            let deadline = tokio::time::Instant::from_std(self.core.next.0);
            let grace_over = drain_until.map(tokio::time::Instant::from_std);
            tokio::select! {
                biased;
                () = &mut shutdown, if drain_until.is_none() => {
                    drain_until = Some(time::now() + self.config.node.shutdown_grace);
                    self.start_drain();
                }
                done = commit_wait(&mut self.commit) => self.commit_done(done).await,
                () = tokio::time::sleep_until(deadline) => self.core.timeout(),
                _ = tick.tick() => self.tick(drain_until.is_some()),
                ev = self.events.recv() => {
                    // Never None while `conns` holds a sender.
                    let Some(first) = ev else { continue };
                    self.net_event(first);
                    // Up to BATCH in all; take one off the channel only
                    // when it will be handled (a taken event must not be
                    // dropped at the end of the batch).
                    for _ in 1..BATCH {
                        match self.events.try_recv() {
                            Ok(ev) => self.net_event(ev),
                            Err(_) => break,
                        }
                    }
                }
                Some(ev) = self.media_events.recv() => {
                    self.core.input(Input::Media(ev));
                    while let Ok(ev) = self.media_events.try_recv() {
                        self.core.input(Input::Media(ev));
                    }
                }
                Some(req) = self.api_requests.recv() => self.core.api(req),
                closed = self.conns.next_closed() => {
                    if let Some(id) = closed {
                        self.core.input(Input::ConnClosed(id));
                    }
                }
                () = sleep_until_opt(grace_over) => {}
            }
        }

        // Stop reading, let queued TCP writes out, close.
        for r in readers {
            r.abort();
        }
        self.settle_commits().await;
        let CoreLoop {
            events,
            conns,
            core,
            ..
        } = self;
        drop(events);
        conns.shutdown(TCP_FLUSH_AT_EXIT).await;
        core.media
    }

    fn net_event(&mut self, ev: NetEvent) {
        match ev {
            NetEvent::Packet(p) => self.core.packet(p),
            NetEvent::Accepted(stream, peer) => self.conns.accepted(stream, peer),
        }
    }

    fn start_drain(&mut self) {
        let live = self.core.gw.live_calls();
        tracing::info!(
            live,
            grace = ?self.config.node.shutdown_grace,
            "draining: new calls are refused, live calls go on"
        );
        self.draining.store(true, Ordering::Relaxed);
        self.notifier.stopping(&format!("draining: {live} calls"));
        self.core.metrics.calls(live, true);
        self.core.input(Input::Drain);
    }

    fn tick(&mut self, draining: bool) {
        self.notifier.watchdog();
        let now = time::now();
        self.core.input(Input::WallClock(time::unix_now()));
        self.core.latency.processing.publish(now);
        self.core.latency.timer.publish(now);
        let live = self.core.gw.live_calls();
        self.core.metrics.calls(live, draining);
        self.core.gw.b2bua().export_queue_metrics(now);
        let state = if draining { "draining" } else { "serving" };
        self.notifier.status(&format!("{state}: {live} calls"));
    }

    /// Move this turn's outputs into the commit pipeline (module docs,
    /// "Records before datagrams"); tell the core about connections the
    /// sends had to close (which may ask for more).
    async fn flush(&mut self) {
        loop {
            let records = std::mem::take(&mut self.core.records);
            let out = std::mem::take(&mut self.core.out);
            self.pipeline(records, out).await;
            let closed = self.conns.take_closed();
            if closed.is_empty() {
                return;
            }
            for id in closed {
                self.core.input(Input::ConnClosed(id));
            }
        }
    }

    /// A turn's records and datagrams. With no commit in flight: datagrams
    /// of a turn without records go out at once; otherwise a commit starts
    /// and the datagrams wait for it. With a commit in flight, both wait
    /// for the next one (so datagrams keep their order).
    async fn pipeline(&mut self, records: Vec<RecordItem>, out: Vec<Transmit>) {
        let records = records.into_iter().map(|r| NewItem {
            stream: r.stream,
            key: r.key,
            kind: r.kind.to_owned(),
            body: r.body,
        });
        if self.commit.is_some() {
            self.next_records.extend(records);
            self.held_next.extend(out);
            return;
        }
        if self.retry_at.is_some_and(|at| time::now() < at) {
            // The outbox failed a moment ago: keep the records for the
            // retry; holding the datagrams would not save them.
            self.unsaved.extend(records);
            self.cap_unsaved();
            self.record_metrics.unsaved(self.unsaved.len());
            self.send(out).await;
            return;
        }
        self.next_records.extend(records);
        if self.next_records.is_empty() && self.unsaved.is_empty() {
            self.send(out).await;
            return;
        }
        self.held = out;
        self.start_commit();
    }

    /// Commit `unsaved` + `next_records` in one transaction on the outbox
    /// thread.
    fn start_commit(&mut self) {
        let mut items = std::mem::take(&mut self.unsaved);
        items.append(&mut self.next_records);
        if items.is_empty() {
            return;
        }
        let sink = self.sink.clone();
        let started = time::now();
        self.commit = Some(tokio::spawn(async move {
            // The copy is what survives a failure: the items handed to the
            // outbox thread are gone if that thread is (OutboxError::Closed).
            let result = sink.append_all(items.clone()).await;
            (result, items, started)
        }));
    }

    /// The commit in flight ended: release the datagrams it held; start the
    /// next commit if records are waiting (their datagrams wait for it). A
    /// failed commit (disk full, ...) keeps its records in memory, retried
    /// with the next commit, up to [`UNSAVED_MAX`] (beyond that the oldest
    /// are lost and counted, loudly); its datagrams go out anyway, since
    /// holding the calls would not save the records.
    async fn commit_done(&mut self, done: Result<CommitResult, tokio::task::JoinError>) {
        self.commit = None;
        match done {
            Ok((Ok(n), _, started)) => {
                self.retry_at = None;
                self.record_metrics
                    .committed(n, time::now().saturating_duration_since(started));
            }
            Ok((Err(e), items, _)) => {
                tracing::error!(
                    error = %e,
                    waiting = items.len(),
                    retry_in = ?COMMIT_RETRY,
                    "call records could not be committed; kept in memory and retried"
                );
                self.record_metrics.write_error();
                self.retry_at = Some(time::now() + COMMIT_RETRY);
                // Failed items go first: they are older than any kept meanwhile.
                let newer = std::mem::replace(&mut self.unsaved, items);
                self.unsaved.extend(newer);
                self.cap_unsaved();
            }
            Err(e) => tracing::error!(error = %e, "bug: the record commit task failed"),
        }
        self.record_metrics.unsaved(self.unsaved.len());
        let held = std::mem::take(&mut self.held);
        self.send(held).await;
        let next = std::mem::take(&mut self.held_next);
        if self.retry_at.is_some() && !self.next_records.is_empty() {
            // Not again at once: they join the retry.
            self.unsaved.append(&mut self.next_records);
            self.cap_unsaved();
        }
        if self.next_records.is_empty() {
            self.send(next).await;
        } else {
            self.held = next;
            self.start_commit();
        }
    }

    /// Keep at most [`UNSAVED_MAX`] items in memory; beyond that the oldest
    /// are lost, counted and logged loudly.
    fn cap_unsaved(&mut self) {
        if self.unsaved.len() > UNSAVED_MAX {
            let lost = self.unsaved.len() - UNSAVED_MAX;
            tracing::error!(
                lost,
                "call records lost: the outbox has failed for too long"
            );
            self.record_metrics.lost(lost);
            self.unsaved.drain(..lost);
        }
    }

    /// Wait for every commit (at exit), then send what they held.
    async fn settle_commits(&mut self) {
        while let Some(handle) = self.commit.take() {
            let done = handle.await;
            self.commit_done(done).await;
        }
        if !self.unsaved.is_empty() || !self.next_records.is_empty() {
            self.start_commit();
            if let Some(handle) = self.commit.take() {
                let done = handle.await;
                self.commit_done(done).await;
            }
        }
    }

    async fn send(&mut self, out: Vec<Transmit>) {
        for t in out {
            match t.transport {
                Transport::Udp => net::send_udp(&self.udp, &t, &self.core.metrics).await,
                Transport::Tcp => self.conns.send(t, &self.core.metrics),
            }
        }
    }
}

/// What a commit task returns: the result, its items (kept if it failed),
/// when it started.
type CommitResult = (Result<usize, outbox::OutboxError>, Vec<NewItem>, Instant);

async fn commit_wait(
    commit: &mut Option<tokio::task::JoinHandle<CommitResult>>,
) -> Result<CommitResult, tokio::task::JoinError> {
    match commit {
        Some(handle) => handle.await,
        None => std::future::pending().await,
    }
}

/// Most records kept in memory while the outbox cannot commit.
const UNSAVED_MAX: usize = 100_000;
/// After a failed commit, how long before the next attempt.
const COMMIT_RETRY: Duration = Duration::from_secs(1);

async fn sleep_until_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    fn local_config() -> Config {
        let mut c = crate::config::demo();
        c.sip.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        c.api.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        c.node.data_dir = std::env::temp_dir().join(format!(
            "hotline-driver-test-{}-{}",
            std::process::id(),
            time::unix_now().as_nanos()
        ));
        c
    }

    const OPTIONS: &str = "OPTIONS sip:12345@127.0.0.1 SIP/2.0\r\n\
        Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-drv-1\r\n\
        Max-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=1\r\n\
        To: <sip:12345@127.0.0.1>\r\nCall-ID: drv-1@127.0.0.1\r\n\
        CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";

    #[tokio::test]
    async fn serves_health_counts_messages_and_drains_on_shutdown() {
        let sockets = match Sockets::bind(local_config()).await {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        };
        let (sip, api) = (sockets.sip_addr(), sockets.api_addr());
        assert_ne!(sip.port(), 0);
        assert_ne!(api.port(), 0);
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(sockets.run(async {
            let _ = stopped.await;
        }));

        let health = api::tests::get(api, "/healthz").await;
        assert!(health.starts_with("HTTP/1.1 200"), "{health}");

        let udp = match UdpSocket::bind("127.0.0.1:0").await {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        };
        assert!(udp.send_to(OPTIONS.as_bytes(), sip).await.is_ok());
        let mut tcp = match tokio::net::TcpStream::connect(sip).await {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        };
        let over_tcp = OPTIONS.replace("SIP/2.0/UDP", "SIP/2.0/TCP");
        assert!(tcp.write_all(over_tcp.as_bytes()).await.is_ok());

        let mut seen = String::new();
        for _ in 0..100 {
            seen = api::tests::get(api, "/metrics").await;
            if seen.contains("hotline_sip_messages_received_total{transport=\"udp\"}")
                && seen.contains("hotline_sip_messages_received_total{transport=\"tcp\"}")
                && seen.contains("hotline_sip_processing_seconds_count")
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            seen.contains("hotline_sip_messages_received_total{transport=\"tcp\"}"),
            "{seen}"
        );

        // No live calls: the drain ends at once.
        let _ = stop.send(());
        let done = tokio::time::timeout(Duration::from_secs(5), server).await;
        assert!(matches!(done, Ok(Ok(()))), "did not stop");
    }

    /// A burst larger than one batch: every queued message is handled,
    /// none is taken off the channel and dropped at a batch boundary.
    #[tokio::test]
    async fn a_burst_of_several_batches_loses_nothing() {
        const N: usize = BATCH * 3 + 5;
        let config = Arc::new(local_config());
        let gw_udp = match UdpSocket::bind("127.0.0.1:0").await {
            Ok(s) => Arc::new(s),
            Err(e) => panic!("{e}"),
        };
        // A receive buffer big enough for the whole burst of answers.
        let client = match net::udp_socket(SocketAddr::from(([127, 0, 0, 1], 0)), 1 << 22)
            .and_then(UdpSocket::from_std)
        {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        };
        let client_addr = match client.local_addr() {
            Ok(a) => a,
            Err(e) => panic!("{e}"),
        };
        let (tx, rx) = mpsc::channel(N + 1);
        // The whole burst is queued before the loop first wakes.
        for i in 0..N {
            let msg = OPTIONS
                .replace("z9hG4bK-drv-1", &format!("z9hG4bK-burst-{i};rport"))
                .replace("drv-1@", &format!("burst-{i}@"));
            let p = Packet {
                transport: Transport::Udp,
                source: client_addr,
                conn: None,
                data: bytes::Bytes::from(msg),
            };
            assert!(tx.try_send(NetEvent::Packet(p)).is_ok());
        }
        let conns = Conns::new(tx, 4, 65_535, Duration::from_secs(60));
        let processing = latency::Summary::new("p_seconds", "test");
        let timer = latency::Summary::new("t_seconds", "test");
        let lat = Latency {
            processing: processing.recorder(),
            timer: timer.recorder(),
        };
        let draining = Arc::new(AtomicBool::new(false));
        let (sink, _records) = match Records::start(None, &config.node.data_dir, "test").await {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        };
        let relay = latency::Summary::new("r_seconds", "test");
        let (media_tx, media_rx) = mpsc::unbounded_channel();
        let core = match Core::new(config.clone(), SipMetrics::new(), lat, (media_tx, &relay)) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        let (_api_tx, api_rx) = mpsc::channel(1);
        let core_loop = CoreLoop::new(
            config, core, gw_udp, rx, media_rx, conns, draining, sink, api_rx,
        );
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(core_loop.run(
            async {
                let _ = stopped.await;
            },
            [tokio::spawn(std::future::pending::<()>()).abort_handle(), {
                tokio::spawn(std::future::pending::<()>()).abort_handle()
            }],
        ));

        let mut answered = std::collections::HashSet::new();
        let mut buf = vec![0u8; 4096];
        while answered.len() < N {
            let got = tokio::time::timeout(Duration::from_secs(5), client.recv(&mut buf)).await;
            let n = match got {
                Ok(Ok(n)) => n,
                _ => break,
            };
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if let Some(i) = text.find("z9hG4bK-burst-") {
                let id: String = text[i..]
                    .chars()
                    .take_while(|c| *c != ';' && *c != '\r')
                    .collect();
                answered.insert(id);
            }
        }
        let _ = stop.send(());
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        assert_eq!(answered.len(), N, "some OPTIONS of the burst got no answer");
    }

    #[tokio::test]
    async fn bind_failure_names_the_key_and_address() {
        let taken = match UdpSocket::bind("127.0.0.1:0").await {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        };
        let mut c = local_config();
        c.sip.listen = match taken.local_addr() {
            Ok(a) => a,
            Err(e) => panic!("{e}"),
        };
        let err = match Sockets::bind(c.clone()).await {
            Ok(_) => panic!("bound a taken address"),
            Err(e) => e,
        };
        let text = err.to_string();
        assert!(text.contains("`sip.listen`"), "{text}");
        assert!(text.contains(&c.sip.listen.to_string()), "{text}");
        assert!(text.contains("--sip-listen"), "{text}");
    }
}

/// Files the gateway may hold at once with this configuration: a socket
/// per RTP and RTCP port of the media range (a port's two sockets stay
/// bound once used), the SIP TCP connections, and some room for the rest.
fn open_files_needed(config: &Config) -> u64 {
    let ports = u64::from(config.media.port_max.saturating_sub(config.media.port_min)) + 1;
    ports + config.sip.tcp_max_connections as u64 + 1024
}

/// The soft "Max open files" limit from `/proc/self/limits` (Linux), if
/// it can be read and is not unlimited.
fn open_files_limit(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Warn at start when the open-files limit is below what the media range
/// can hold: calls would then fail with `media_failed` under load.
fn check_open_files(config: &Config) {
    let Ok(limits) = std::fs::read_to_string("/proc/self/limits") else {
        return;
    };
    let Some(limit) = open_files_limit(&limits) else {
        return;
    };
    let need = open_files_needed(config);
    if limit < need {
        tracing::warn!(
            limit,
            need,
            port_min = config.media.port_min,
            port_max = config.media.port_max,
            "the open-files limit is below what the RTP range can use: calls will fail \
             (media_failed) once it is reached; raise LimitNOFILE (systemd) or ulimit -n to \
             at least {need}, or narrow media.port_min..port_max"
        );
    }
}

#[cfg(test)]
mod open_files_tests {
    use super::*;

    #[test]
    fn the_soft_limit_is_read_from_proc_self_limits() {
        let text = "Limit                     Soft Limit           Hard Limit           Units\n\
                    Max cpu time              unlimited            unlimited            seconds\n\
                    Max open files            20000                20000                files\n";
        assert_eq!(open_files_limit(text), Some(20_000));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(open_files_limit(unlimited), None);
        assert_eq!(open_files_limit(""), None);
    }

    #[test]
    fn the_demo_needs_a_file_per_port_and_room() {
        let demo = crate::config::demo();
        let ports = u64::from(demo.media.port_max - demo.media.port_min) + 1;
        assert_eq!(
            open_files_needed(&demo),
            ports + demo.sip.tcp_max_connections as u64 + 1024
        );
        assert!(
            open_files_needed(&demo) < 65_536,
            "the systemd unit's LimitNOFILE covers it"
        );
    }
}
