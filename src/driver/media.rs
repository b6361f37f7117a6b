//! The media shards' threads: sockets and time around each sans-IO
//! [`Shard`].
//!
//! One OS thread per shard, each with its own single-threaded tokio
//! runtime, so a shard's legs never contend with the signalling loop or
//! with each other. The first [`MediaCommand::Open`] of a port binds it
//! and the RTCP port above it right away, in the signalling loop's drain:
//! the SDP naming the port leaves only after the port is bound, so a
//! peer's first packet never meets a closed port. The sockets then stay
//! bound for the life of the process and serve every later leg on that
//! port: a call costs no socket system calls to set up or tear down (a
//! stray packet for a closed leg is counted and dropped). The shard thread
//! registers the sockets and starts one reader task per socket; a reader drains its socket on each wake and hands every
//! datagram to the shard, then sends the rewritten buffer on from the
//! peer leg's socket: a relayed packet is never copied. The shard's 20 ms
//! tick sends what it generates (prompts, tones, DTMF, conferences).
//!
//! The time from a datagram's receipt to its relay send returning is
//! recorded in `hotline_media_relay_seconds`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::rc::Rc;
use std::thread::JoinHandle;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use crate::config::Config;
use crate::media::shard::{
    Forward, LegId, MediaCommand, MediaEvent, Shard, ShardConfig, ShardStats,
};
use crate::time;

use super::latency;

/// The relay latency summary's name.
pub const RELAY_SECONDS: &str = "hotline_media_relay_seconds";

/// Largest datagram read (RTP with G.711 at ptime 30 is 252 bytes; jumbo
/// packets are cut and dropped as malformed by the shard).
const MAX_DATAGRAM: usize = 1500;

/// How often a shard publishes its counters and latency.
const PUBLISH_EVERY: Duration = Duration::from_secs(1);

/// The running shards: where to send their commands.
pub struct MediaShards {
    senders: Vec<mpsc::UnboundedSender<Vec<ShardMsg>>>,
    /// Commands of the current turn per shard, sent by [`MediaShards::flush`]
    /// (one wake-up of a shard thread per turn, not per command).
    pending: std::cell::RefCell<Vec<Vec<ShardMsg>>>,
    threads: Vec<JoinHandle<()>>,
    events: mpsc::UnboundedSender<MediaEvent>,
    ip: IpAddr,
    buffer: usize,
    /// Ports bound and handed to their shard (kept for reuse).
    bound: std::cell::RefCell<std::collections::HashSet<LegId>>,
}

/// What the signalling loop hands a shard thread.
enum ShardMsg {
    /// A leg's sockets, bound: register them and open the leg.
    Open {
        leg: LegId,
        rtp: std::net::UdpSocket,
        rtcp: std::net::UdpSocket,
    },
    /// Any other command.
    Command(MediaCommand),
}

impl MediaShards {
    /// Start one thread per range. Reports come back on `events`.
    ///
    /// # Errors
    /// When a thread cannot be spawned.
    pub fn start(
        config: &Config,
        ranges: Vec<RangeInclusive<u16>>,
        events: mpsc::UnboundedSender<MediaEvent>,
        relay: &latency::Summary,
    ) -> io::Result<MediaShards> {
        let mut senders = Vec::with_capacity(ranges.len());
        let mut threads = Vec::with_capacity(ranges.len());
        let seed = time::unix_now().as_nanos() as u64;
        for (i, range) in ranges.into_iter().enumerate() {
            let (tx, rx) = mpsc::unbounded_channel();
            let cfg = ShardConfig {
                rtp_timeout: config.media.rtp_timeout,
                latching: config.media.latching,
                inband_dtmf: config.media.inband_dtmf,
                ..ShardConfig::default()
            };
            let setup = ShardSetup {
                index: i,
                range,
                config: cfg,
                seed: seed ^ ((i as u64) << 56),
                latency: relay.recorder(),
            };
            let events = events.clone();
            let handle = std::thread::Builder::new()
                .name(format!("media-{i}"))
                .spawn(move || run_thread(setup, rx, events))?;
            senders.push(tx);
            threads.push(handle);
        }
        Ok(MediaShards {
            senders,
            events,
            ip: config.media.listen,
            buffer: config.media.udp_buffer_bytes,
            bound: std::cell::RefCell::default(),
            pending: std::cell::RefCell::new((0..threads.len()).map(|_| Vec::new()).collect()),
            threads,
        })
    }

    /// Queue `cmd` for shard `shard` (sent by [`MediaShards::flush`]). An
    /// `Open` binds the leg's ports first, now (a failure comes back as
    /// [`MediaEvent::OpenFailed`]).
    pub fn send(&self, shard: usize, cmd: MediaCommand) {
        let msg = match cmd {
            MediaCommand::Open { leg } if self.bound.borrow().contains(&leg) => {
                ShardMsg::Command(MediaCommand::Open { leg })
            }
            MediaCommand::Open { leg } => match bind_pair(self.ip, leg, self.buffer) {
                Ok((rtp, rtcp)) => {
                    self.bound.borrow_mut().insert(leg);
                    ShardMsg::Open { leg, rtp, rtcp }
                }
                Err(e) => {
                    metrics::counter!("hotline_media_bind_failures_total").increment(1);
                    let _ = self.events.send(MediaEvent::OpenFailed {
                        leg,
                        error: format!("cannot bind {} ports {leg}/{}: {e}", self.ip, leg + 1),
                    });
                    return;
                }
            },
            other => ShardMsg::Command(other),
        };
        match self.pending.borrow_mut().get_mut(shard) {
            Some(q) => q.push(msg),
            None => tracing::error!(shard, "bug: command for a media shard that does not exist"),
        }
    }

    /// Send the turn's commands, one batch per shard that has any.
    pub fn flush(&self) {
        let mut pending = self.pending.borrow_mut();
        for (shard, q) in pending.iter_mut().enumerate() {
            if q.is_empty() {
                continue;
            }
            let batch = std::mem::take(q);
            let sent = self
                .senders
                .get(shard)
                .is_some_and(|tx| tx.send(batch).is_ok());
            if !sent {
                tracing::error!(shard, "bug: media shard thread is gone");
            }
        }
    }

    /// Stop the threads (their legs are closed) and wait for them.
    pub fn shutdown(self) {
        drop(self.senders);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

struct ShardSetup {
    index: usize,
    range: RangeInclusive<u16>,
    config: ShardConfig,
    seed: u64,
    latency: latency::Recorder,
}

fn run_thread(
    setup: ShardSetup,
    commands: mpsc::UnboundedReceiver<Vec<ShardMsg>>,
    events: mpsc::UnboundedSender<MediaEvent>,
) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(shard = setup.index, error = %e, "media shard runtime failed to start");
            return;
        }
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, shard_main(setup, commands, events));
}

/// A port's sockets and reader tasks (kept while the process runs).
struct LegIo {
    rtp: Rc<UdpSocket>,
    rtcp: Rc<UdpSocket>,
    readers: [AbortHandle; 2],
}

/// What the reader tasks and the main task share (one thread: no locks).
struct State {
    index: usize,
    shard: Shard,
    legs: HashMap<LegId, LegIo>,
    events: mpsc::UnboundedSender<MediaEvent>,
    latency: latency::Recorder,
    send_errors: u64,
}

impl State {
    fn flush_events(&mut self) {
        while let Some(ev) = self.shard.poll_event() {
            let _ = self.events.send(ev);
        }
    }

    fn send_generated(&mut self) {
        while let Some(t) = self.shard.poll_transmit() {
            match self.legs.get(&t.leg) {
                Some(io) => {
                    let sock = if t.rtcp { &io.rtcp } else { &io.rtp };
                    if sock.try_send_to(&t.data, t.to).is_err() {
                        self.send_errors += 1;
                    }
                }
                None => self.send_errors += 1,
            }
        }
    }

    fn publish(&mut self) {
        let s: &ShardStats = self.shard.stats();
        let shard = self.index.to_string();
        let c = |name: &'static str, v: u64| {
            metrics::counter!(name, "shard" => shard.clone()).absolute(v);
        };
        c("hotline_media_packets_received_on_legs_total", s.received);
        c("hotline_media_packets_relayed_total", s.relayed);
        c("hotline_media_packets_transcoded_total", s.transcoded);
        c("hotline_media_packets_generated_total", s.generated);
        c("hotline_media_rtcp_received_total", s.rtcp);
        c("hotline_media_rtcp_sent_total", s.rtcp_sent);
        c("hotline_media_latched_total", s.latched);
        c("hotline_media_rtp_timeouts_total", s.rtp_timeouts);
        for (reason, v) in [
            ("unknown_leg", s.unknown_leg),
            ("malformed", s.malformed),
            ("unknown_pt", s.unknown_pt),
            ("unconfigured", s.unconfigured),
            ("foreign_source", s.foreign_source),
            ("not_forwarded", s.not_forwarded),
            ("stream", s.stream_dropped),
        ] {
            metrics::counter!("hotline_media_packets_dropped_total", "shard" => shard.clone(), "reason" => reason)
                .absolute(v);
        }
        c("hotline_media_send_errors_total", self.send_errors);
        metrics::gauge!("hotline_media_legs", "shard" => shard).set(self.shard.open_legs() as f64);
        self.latency.publish(time::now());
        self.shard.set_wall_clock(time::now(), time::unix_now());
    }
}

async fn shard_main(
    setup: ShardSetup,
    mut commands: mpsc::UnboundedReceiver<Vec<ShardMsg>>,
    events: mpsc::UnboundedSender<MediaEvent>,
) {
    let now = time::now();
    let shard = Shard::new(
        setup.config,
        *setup.range.start(),
        *setup.range.end(),
        setup.seed,
        now,
    );
    let mut shard = shard;
    shard.set_wall_clock(now, time::unix_now());
    let state = Rc::new(RefCell::new(State {
        index: setup.index,
        shard,
        legs: HashMap::new(),
        events,
        latency: setup.latency,
        send_errors: 0,
    }));
    let mut publish = tokio::time::interval(PUBLISH_EVERY);
    publish.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let tick = tokio::time::Instant::from_std(state.borrow().shard.poll_timeout());
        tokio::select! {
            biased;
            () = tokio::time::sleep_until(tick) => {
                let mut st = state.borrow_mut();
                st.shard.handle_timeout(time::now());
                st.send_generated();
                st.flush_events();
            }
            batch = commands.recv() => {
                let Some(batch) = batch else { break };
                for msg in batch {
                    command(&state, msg);
                }
            }
            _ = publish.tick() => state.borrow_mut().publish(),
        }
    }
    // The signalling core is gone: close everything.
    let mut st = state.borrow_mut();
    let legs: Vec<LegId> = st.legs.keys().copied().collect();
    for leg in legs {
        if let Some(io) = st.legs.remove(&leg) {
            for r in io.readers {
                r.abort();
            }
        }
    }
}

fn command(state: &Rc<RefCell<State>>, msg: ShardMsg) {
    match msg {
        ShardMsg::Open { leg, rtp, rtcp } => {
            if let Some(old) = state.borrow_mut().legs.remove(&leg) {
                for r in old.readers {
                    r.abort();
                }
            }
            match UdpSocket::from_std(rtp).and_then(|r| Ok((r, UdpSocket::from_std(rtcp)?))) {
                Ok((rtp, rtcp)) => {
                    let rtp = Rc::new(rtp);
                    let rtcp = Rc::new(rtcp);
                    let r1 = tokio::task::spawn_local(rtp_reader(leg, rtp.clone(), state.clone()));
                    let r2 =
                        tokio::task::spawn_local(rtcp_reader(leg, rtcp.clone(), state.clone()));
                    let mut st = state.borrow_mut();
                    st.legs.insert(
                        leg,
                        LegIo {
                            rtp,
                            rtcp,
                            readers: [r1.abort_handle(), r2.abort_handle()],
                        },
                    );
                    st.shard
                        .handle_command(MediaCommand::Open { leg }, time::now());
                }
                Err(e) => {
                    let st = state.borrow();
                    let _ = st.events.send(MediaEvent::OpenFailed {
                        leg,
                        error: format!("cannot register ports {leg}/{}: {e}", leg + 1),
                    });
                }
            }
        }
        ShardMsg::Command(MediaCommand::Close { leg }) => close(state, leg),
        ShardMsg::Command(other) => {
            let mut st = state.borrow_mut();
            st.shard.handle_command(other, time::now());
            st.flush_events();
        }
    }
}

/// Close the leg; its sockets stay bound for the next leg on the port.
fn close(state: &Rc<RefCell<State>>, leg: LegId) {
    let mut st = state.borrow_mut();
    st.shard
        .handle_command(MediaCommand::Close { leg }, time::now());
    st.flush_events();
}

/// Bind the RTP port and the RTCP port above it (non-blocking, for the
/// shard thread's runtime to register).
fn bind_pair(
    ip: IpAddr,
    port: u16,
    buffer: usize,
) -> io::Result<(std::net::UdpSocket, std::net::UdpSocket)> {
    let rtp = bind_one(SocketAddr::new(ip, port), buffer)?;
    let rtcp = bind_one(SocketAddr::new(ip, port.wrapping_add(1)), buffer)?;
    Ok((rtp, rtcp))
}

fn bind_one(addr: SocketAddr, buffer: usize) -> io::Result<std::net::UdpSocket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    // Best effort: the kernel caps at rmem_max/wmem_max.
    let _ = s.set_recv_buffer_size(buffer);
    let _ = s.set_send_buffer_size(buffer);
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    Ok(s.into())
}

async fn rtp_reader(leg: LegId, sock: Rc<UdpSocket>, state: Rc<RefCell<State>>) {
    let mut buf = [0u8; MAX_DATAGRAM];
    loop {
        if sock.readable().await.is_err() {
            return;
        }
        // Drain what is queued, then wait again.
        loop {
            let (n, from) = match sock.try_recv_from(&mut buf) {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                // ICMP errors from earlier sends (port unreachable) surface
                // here; they say nothing about this socket.
                Err(_) => continue,
            };
            let t0 = time::now();
            let mut st = state.borrow_mut();
            if let Forward::Send { leg: out, to, len } =
                st.shard.handle_rtp(leg, from, &mut buf, n, t0)
            {
                let sent = match st.legs.get(&out) {
                    Some(io) => io.rtp.try_send_to(&buf[..len], to).is_ok(),
                    None => false,
                };
                if sent {
                    st.latency.record(time::now().saturating_duration_since(t0));
                } else {
                    st.send_errors += 1;
                }
            }
            st.flush_events();
        }
    }
}

async fn rtcp_reader(leg: LegId, sock: Rc<UdpSocket>, state: Rc<RefCell<State>>) {
    let mut buf = [0u8; MAX_DATAGRAM];
    loop {
        match sock.recv_from(&mut buf).await {
            Ok((n, from)) => {
                state
                    .borrow_mut()
                    .shard
                    .handle_rtcp(leg, from, &buf[..n], time::now())
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => {}
        }
    }
}
