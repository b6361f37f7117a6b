//! Media load generator: N concurrent G.711 calls through the gateway with
//! RTP both ways, measuring loss and end-to-end latency of the relay.
//!
//! The generator is both ends of every call:
//!
//! ```text
//!   UAC (carrier)  SIP --INVITE 12345--> gateway --INVITE--> UAS (callee)  SIP
//!   UAC RTP socket  <====== A leg ======> gateway <==== B leg ====> UAS RTP socket
//! ```
//!
//! - The UAC sends INVITEs at `--cps` with one SDP offer (PCMA 8 +
//!   telephone-event 101, ptime 20) whose port is ONE shared RTP socket for
//!   all calls; on 200 it reads the gateway's A-leg RTP address from the
//!   answer and ACKs to the 200's Contact (RFC 3261 §13.2.2.4, route set
//!   from Record-Route). 100/180/183 are tolerated; a non-2xx final is ACKed
//!   in its transaction and counted as a failed setup.
//! - The UAS answers INVITE with 200 + SDP (one shared RTP socket), learns
//!   the gateway's B-leg address from the offer, retransmits the 200 until
//!   the ACK, answers BYE with 200 and a retransmitted INVITE with the same
//!   200. The B leg is matched to its call by the caller number in From
//!   (`139` + 8 digits of the call index), which the gateway passes on.
//! - Once a call is up, one thread sends every 20 ms one 172-byte RTP packet
//!   (PT 8, 160-byte payload) per call and direction, spread over the round
//!   in `--slots` slots. The first payload bytes are: call id with the
//!   direction in bit 31 (4), send time in ns since the generator started
//!   (8), the packet's number in its stream (4), a magic (4); the rest is
//!   A-law near-silence. The gateway rewrites SSRC/seq/timestamp but not the
//!   payload of a same-codec relay, so the receivers (one thread per RTP
//!   socket) demultiplex by the payload and count received, duplicates,
//!   reordered and foreign packets, and record receive time − send time in
//!   HDR histograms (whole run, and the hold phase alone).
//! - Receivers poll (drain, sleep `--recv-poll-us`, default 1 ms) rather
//!   than block per packet: on loopback the *sender* of a datagram pays for
//!   waking a blocked receiver, so blocking receivers charged the gateway
//!   ~14 points of a core at 500 calls (70 % vs 56 %). The price: latency
//!   includes up to one poll interval; `--recv-poll-us 0` blocks instead.
//!   Either way the end-to-end figure includes the generator's scheduling
//!   on a shared box; `--direct` measures that floor without the gateway.
//! - After `--duration` seconds with every call up, sending stops, in-flight
//!   packets drain, then every call gets a BYE (at `--cps`), expecting 200.
//!
//! Output: a human summary, then one `RESULT key=value ...` line.
//! Progress lines `media_load: phase=<setup|hold|drain|bye|done>` go to
//! stderr (sip-scenarios/load-media.sh samples the gateway by phase).
//!
//! `cargo bench --bench media_load -- --gateway 127.0.0.1:26060 --uas-sip-port 15070 --calls 2000 --duration 60`
//! (the gateway's route for the dialled number must point to the UAS port;
//! `sip-scenarios/load-media.sh` sets that up). `--help` lists the options.
#![allow(clippy::disallowed_methods)] // real sockets: the wall clock is the point

use hdrhistogram::Histogram;
use hotline::sip::msg::{
    self, Hdr, Message, Method, NameAddr, Request, Response, SipHeaders, SipUri,
};
use hotline::sip::sdp;
use socket2::{Domain, Protocol, Socket, Type};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

const PCMA: u8 = 8;
const PACKET: usize = 172;
const PAYLOAD: usize = 160;
const FRAME: Duration = Duration::from_millis(20);
const MAGIC: u32 = 0x484c_4d47; // "HLMG"
const DIR_B2A: u32 = 1 << 31;
const T1: Duration = Duration::from_millis(500);
const RTP_BUFFER: usize = 4 << 20;

const USAGE: &str = "\
media_load: N concurrent G.711 calls through the gateway, RTP both ways

  cargo bench --bench media_load -- --gateway IP:PORT [options]

  --gateway IP:PORT     the gateway's SIP address (required)
  --calls N             concurrent calls (2000)
  --duration S          seconds of media with every call up (60)
  --cps R               INVITEs (and BYEs) per second (200)
  --number DIGITS       dialled number (12345)
  --ip IP               local address for all sockets (127.0.0.1)
  --uac-sip-port P      the carrier's SIP port (0: any)
  --uas-sip-port P      the callee's SIP port, where the gateway's route points (15070)
  --uac-rtp-port P      the carrier's shared RTP port (0: any)
  --uas-rtp-port P      the callee's shared RTP port (0: any)
  --setup-timeout S     give up on calls not up this long after the last INVITE (30)
  --slots K             sending slots per 20 ms round (40)
  --drain-ms MS         wait after the last RTP send before counting (500)
  --recv-poll-us US     the receivers drain their socket, then sleep US (1000):
                        latency includes up to US of waiting, but the gateway
                        is not charged for waking a blocked receiver per
                        packet (on loopback the sender pays the wakeup);
                        0: block per packet (exact latency, more CPU on both)
  --direct              no gateway, no SIP: each side sends straight to the
                        other's RTP socket (the generator's own floor of
                        latency, loss and CPU on this box)
Unknown flags (cargo's --bench) are ignored.";

// ------------------------------------------------------------------ args --

struct Args {
    gateway: SocketAddr,
    calls: usize,
    duration: u64,
    cps: u32,
    number: String,
    ip: IpAddr,
    uac_sip_port: u16,
    uas_sip_port: u16,
    uac_rtp_port: u16,
    uas_rtp_port: u16,
    setup_timeout: u64,
    slots: usize,
    drain_ms: u64,
    recv_poll_us: u64,
    direct: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        gateway: SocketAddr::from(([127, 0, 0, 1], 0)),
        calls: 2000,
        duration: 60,
        cps: 200,
        number: "12345".into(),
        ip: IpAddr::from([127, 0, 0, 1]),
        uac_sip_port: 0,
        uas_sip_port: 15070,
        uac_rtp_port: 0,
        uas_rtp_port: 0,
        setup_timeout: 30,
        slots: 40,
        drain_ms: 500,
        recv_poll_us: 1000,
        direct: false,
    };
    let mut have_gw = false;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
            _ => (flag.clone(), None),
        };
        let known = [
            "--gateway",
            "--calls",
            "--duration",
            "--cps",
            "--number",
            "--ip",
            "--uac-sip-port",
            "--uas-sip-port",
            "--uac-rtp-port",
            "--uas-rtp-port",
            "--setup-timeout",
            "--slots",
            "--drain-ms",
            "--recv-poll-us",
        ];
        if name == "--direct" {
            a.direct = true;
            have_gw = true;
            continue;
        }
        if name == "-h" || name == "--help" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        if !known.contains(&name.as_str()) {
            continue; // cargo passes --bench; ignore what we do not know
        }
        let v = match inline {
            Some(v) => v,
            None => it.next().ok_or_else(|| format!("{name} needs a value"))?,
        };
        let bad = |e: &dyn std::fmt::Display| format!("{name} {v}: {e}");
        match name.as_str() {
            "--gateway" => {
                a.gateway = v.parse().map_err(|e| bad(&e))?;
                have_gw = true;
            }
            "--calls" => a.calls = v.parse().map_err(|e| bad(&e))?,
            "--duration" => a.duration = v.parse().map_err(|e| bad(&e))?,
            "--cps" => a.cps = v.parse().map_err(|e| bad(&e))?,
            "--number" => a.number = v.clone(),
            "--ip" => a.ip = v.parse().map_err(|e| bad(&e))?,
            "--uac-sip-port" => a.uac_sip_port = v.parse().map_err(|e| bad(&e))?,
            "--uas-sip-port" => a.uas_sip_port = v.parse().map_err(|e| bad(&e))?,
            "--uac-rtp-port" => a.uac_rtp_port = v.parse().map_err(|e| bad(&e))?,
            "--uas-rtp-port" => a.uas_rtp_port = v.parse().map_err(|e| bad(&e))?,
            "--setup-timeout" => a.setup_timeout = v.parse().map_err(|e| bad(&e))?,
            "--slots" => a.slots = v.parse().map_err(|e| bad(&e))?,
            "--drain-ms" => a.drain_ms = v.parse().map_err(|e| bad(&e))?,
            "--recv-poll-us" => a.recv_poll_us = v.parse().map_err(|e| bad(&e))?,
            _ => {}
        }
    }
    if !have_gw {
        return Err("--gateway IP:PORT is required (try --help)".into());
    }
    if a.calls == 0 || a.calls >= (DIR_B2A as usize) || a.calls > 99_999_999 {
        return Err("--calls must be 1..99999999".into());
    }
    if a.cps == 0 {
        return Err("--cps must be positive".into());
    }
    if a.slots == 0 || a.slots > 20_000 {
        return Err("--slots must be 1..20000".into());
    }
    Ok(a)
}

// ------------------------------------------------------------- helpers --

fn bind_udp(ip: IpAddr, port: u16, buffer: Option<usize>) -> io::Result<UdpSocket> {
    let addr = SocketAddr::new(ip, port);
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if let Some(b) = buffer {
        // Best effort: the kernel caps at rmem_max/wmem_max.
        let _ = s.set_recv_buffer_size(b);
        let _ = s.set_send_buffer_size(b);
    }
    s.bind(&addr.into())?;
    Ok(s.into())
}

/// utime + stime of this process, seconds (USER_HZ is 100 in /proc).
fn cpu_seconds() -> f64 {
    let Ok(s) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    let Some(rest) = s.rsplit_once(") ").map(|x| x.1) else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of the whole line are 12 and 13 after "comm) ".
    let t = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (t(11) + t(12)) / 100.0
}

/// Datagrams the kernel dropped on our UDP sockets bound to `port`
/// (last column of /proc/net/udp{,6}).
fn kernel_drops(port: u16) -> u64 {
    let want = format!(":{port:04X}");
    let mut n = 0;
    for f in ["/proc/net/udp", "/proc/net/udp6"] {
        let Ok(t) = std::fs::read_to_string(f) else {
            continue;
        };
        for l in t.lines().skip(1) {
            let c: Vec<&str> = l.split_whitespace().collect();
            if c.len() > 12 && c[1].ends_with(&want) {
                n += c[c.len() - 1].parse::<u64>().unwrap_or(0);
            }
        }
    }
    n
}

fn hist() -> Histogram<u64> {
    #[allow(clippy::expect_used, clippy::unwrap_used)]
    Histogram::new_with_bounds(1, 60_000_000_000, 3).unwrap()
}

fn phase(start: Instant, p: &str) {
    eprintln!(
        "media_load: phase={p} t={:.1}",
        start.elapsed().as_secs_f64()
    );
}

fn token(seed: u64, i: usize) -> String {
    format!("{:x}{:x}", seed & 0xffff_ffff, i)
}

/// The `sip:` URI's host:port as a socket address (IP literals only).
fn uri_addr(uri: &str, default: SocketAddr) -> SocketAddr {
    let Ok(u) = SipUri::parse(uri) else {
        return default;
    };
    let host = u.host.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<IpAddr>() {
        Ok(ip) => SocketAddr::new(ip, u.port.unwrap_or(5060)),
        Err(_) => default,
    }
}

/// The first audio m= line's RTP address.
fn sdp_rtp(body: &[u8]) -> Option<(SocketAddr, Option<u8>)> {
    let d = sdp::parse(body).ok()?;
    let m = d.media.iter().find(|m| m.kind == "audio" && m.port != 0)?;
    let ev = m
        .codecs
        .iter()
        .find(|c| c.name.eq_ignore_ascii_case("telephone-event"))
        .map(|c| c.pt);
    Some((SocketAddr::new(m.connection?, m.port), ev))
}

fn sdp_body(ip: IpAddr, port: u16, session: u64, event_pt: u8) -> String {
    let fam = if ip.is_ipv4() { "IP4" } else { "IP6" };
    format!(
        "v=0\r\no=- {session} 1 IN {fam} {ip}\r\ns=-\r\nc=IN {fam} {ip}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP {PCMA} {event_pt}\r\na=rtpmap:{PCMA} PCMA/8000\r\n\
         a=rtpmap:{event_pt} telephone-event/8000\r\na=fmtp:{event_pt} 0-15\r\n\
         a=ptime:20\r\na=sendrecv\r\n"
    )
}

fn host(a: SocketAddr) -> String {
    a.to_string()
}

// ---------------------------------------------------------------- RTP --

/// A call whose media is up: where each side sends.
struct Start {
    idx: usize,
    /// The gateway's A-leg RTP address (the UAC sends there).
    a: SocketAddr,
    /// The gateway's B-leg RTP address (the UAS sends there).
    b: SocketAddr,
}

struct SendResult {
    /// Per call: packets sent A→B (from the UAC) and B→A (from the UAS).
    sent: Vec<[u32; 2]>,
    errors: u64,
    /// Worst lateness of a slot against its schedule.
    max_lag: Duration,
    /// Slots started more than 5 ms late.
    late_slots: u64,
}

struct Stream {
    a: SocketAddr,
    b: SocketAddr,
    seq: [u16; 2],
    ts: [u32; 2],
    ssrc: [u32; 2],
}

fn sender(
    uac: UdpSocket,
    uas: UdpSocket,
    calls: usize,
    slots: usize,
    start: Instant,
    new: mpsc::Receiver<Start>,
    stop: Arc<AtomicBool>,
) -> SendResult {
    let mut streams: Vec<Option<Stream>> = (0..calls).map(|_| None).collect();
    let mut res = SendResult {
        sent: vec![[0, 0]; calls],
        errors: 0,
        max_lag: Duration::ZERO,
        late_slots: 0,
    };
    let mut pkt = [0u8; PACKET];
    // A-law near-silence: 0xD5 with the low bits varied.
    for (i, b) in pkt[12..].iter_mut().enumerate() {
        *b = 0xd5 ^ ((i as u8).wrapping_mul(7) & 0x03);
    }
    pkt[0] = 0x80;
    pkt[1] = PCMA;
    let slot_len = FRAME / slots as u32;
    let mut next = Instant::now();
    let mut slot = 0usize;
    while !stop.load(Ordering::Relaxed) {
        while let Ok(s) = new.try_recv() {
            if s.idx < calls {
                let x = s.idx as u32;
                streams[s.idx] = Some(Stream {
                    a: s.a,
                    b: s.b,
                    seq: [
                        (x.wrapping_mul(7919)) as u16,
                        (x.wrapping_mul(104_729)) as u16,
                    ],
                    ts: [x.wrapping_mul(160_000), x.wrapping_mul(320_000)],
                    ssrc: [0x1000_0000 | x, 0x2000_0000 | x],
                });
            }
        }
        let mut idx = slot;
        while idx < calls {
            if let Some(st) = streams[idx].as_mut() {
                for dir in 0..2 {
                    let n = res.sent[idx][dir];
                    pkt[2..4].copy_from_slice(&st.seq[dir].to_be_bytes());
                    pkt[4..8].copy_from_slice(&st.ts[dir].to_be_bytes());
                    pkt[8..12].copy_from_slice(&st.ssrc[dir].to_be_bytes());
                    let id = idx as u32 | if dir == 1 { DIR_B2A } else { 0 };
                    pkt[12..16].copy_from_slice(&id.to_be_bytes());
                    pkt[24..28].copy_from_slice(&n.to_be_bytes());
                    pkt[28..32].copy_from_slice(&MAGIC.to_be_bytes());
                    let t = start.elapsed().as_nanos() as u64;
                    pkt[16..24].copy_from_slice(&t.to_be_bytes());
                    let r = if dir == 0 {
                        uac.send_to(&pkt, st.a)
                    } else {
                        uas.send_to(&pkt, st.b)
                    };
                    if r.is_ok() {
                        res.sent[idx][dir] = n + 1;
                    } else {
                        res.errors += 1;
                    }
                    st.seq[dir] = st.seq[dir].wrapping_add(1);
                    st.ts[dir] = st.ts[dir].wrapping_add(PAYLOAD as u32);
                }
            }
            idx += slots;
        }
        slot += 1;
        if slot == slots {
            slot = 0;
        }
        next += slot_len;
        let now = Instant::now();
        if next > now {
            thread::sleep(next - now);
        } else {
            let lag = now - next;
            res.max_lag = res.max_lag.max(lag);
            if lag > Duration::from_millis(5) {
                res.late_slots += 1;
            }
            if lag > Duration::from_millis(200) {
                // Hopelessly behind: do not burst to catch up.
                next = now;
            }
        }
    }
    res
}

#[derive(Clone, Default)]
struct StreamRx {
    received: u32,
    dups: u32,
    reordered: u32,
    highest: Option<u32>,
    seen: Vec<u64>,
}

struct RecvResult {
    per_call: Vec<StreamRx>,
    latency: Histogram<u64>,
    /// Only packets received while every call was up (the hold phase).
    hold_latency: Histogram<u64>,
    foreign: u64,
    wrong_dir: u64,
}

/// Reads one RTP socket until `stop`; `dir` is what it should get
/// (0: A→B, at the UAS; 1: B→A, at the UAC).
fn receiver(
    sock: UdpSocket,
    dir: u32,
    calls: usize,
    start: Instant,
    poll: Option<Duration>,
    hold: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) -> RecvResult {
    let mut r = RecvResult {
        per_call: vec![StreamRx::default(); calls],
        latency: hist(),
        hold_latency: hist(),
        foreign: 0,
        wrong_dir: 0,
    };
    match poll {
        Some(_) => {
            let _ = sock.set_nonblocking(true);
        }
        None => {
            let _ = sock.set_read_timeout(Some(Duration::from_millis(100)));
        }
    }
    let mut buf = [0u8; 2048];
    let want = if dir == 1 { DIR_B2A } else { 0 };
    loop {
        let n = match sock.recv(&mut buf) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                if let Some(d) = poll {
                    thread::sleep(d);
                }
                continue;
            }
            Err(_) => continue, // ICMP errors of earlier sends
        };
        let now = start.elapsed().as_nanos() as u64;
        let p = &buf[..n];
        // RTP header length: 12 + CSRCs + extension.
        if n < 12 || p[0] >> 6 != 2 {
            r.foreign += 1;
            continue;
        }
        let mut off = 12 + 4 * (p[0] & 0x0f) as usize;
        if p[0] & 0x10 != 0 && n >= off + 4 {
            off += 4 + 4 * u16::from_be_bytes([p[off + 2], p[off + 3]]) as usize;
        }
        if n < off + 20 {
            r.foreign += 1;
            continue;
        }
        let q = &p[off..];
        let be32 = |i: usize| u32::from_be_bytes([q[i], q[i + 1], q[i + 2], q[i + 3]]);
        if be32(16) != MAGIC {
            r.foreign += 1;
            continue;
        }
        let id = be32(0);
        let sent = (u64::from(be32(4)) << 32) | u64::from(be32(8));
        let num = be32(12);
        if id & DIR_B2A != want {
            r.wrong_dir += 1;
            continue;
        }
        let idx = (id & !DIR_B2A) as usize;
        let Some(s) = r.per_call.get_mut(idx) else {
            r.foreign += 1;
            continue;
        };
        let (w, bit) = ((num / 64) as usize, num % 64);
        if s.seen.len() <= w {
            s.seen.resize(w + 64, 0);
        }
        if s.seen[w] & (1 << bit) != 0 {
            s.dups += 1;
            continue;
        }
        s.seen[w] |= 1 << bit;
        s.received += 1;
        match s.highest {
            Some(h) if num < h => s.reordered += 1,
            _ => s.highest = Some(num),
        }
        let l = now.saturating_sub(sent).max(1);
        let _ = r.latency.record(l);
        if hold.load(Ordering::Relaxed) {
            let _ = r.hold_latency.record(l);
        }
    }
    r
}

// ---------------------------------------------------------------- SIP --

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum St {
    Idle,
    Inviting,
    Up,
    Failed,
    Byeing,
    Done,
    ByeFailed,
}

struct Retx {
    data: Vec<u8>,
    to: SocketAddr,
    next: Instant,
    interval: Duration,
    until: Instant,
}

impl Retx {
    fn new(data: Vec<u8>, to: SocketAddr, now: Instant, until: Duration) -> Retx {
        Retx {
            data,
            to,
            next: now + T1,
            interval: T1,
            until: now + until,
        }
    }
}

struct Call {
    st: St,
    invited: Option<Instant>,
    branch: String,
    to_tag: Option<String>,
    /// Where in-dialog requests go and their Request-URI and Route set.
    target_uri: String,
    dest: SocketAddr,
    routes: Vec<String>,
    a_rtp: Option<SocketAddr>,
    b_rtp: Option<SocketAddr>,
    media_started: bool,
    retx: Option<Retx>,
    ack: Option<Vec<u8>>,
    fail_status: u16,
}

struct UasLeg {
    ok: Vec<u8>,
    retx: Option<Retx>,
}

struct Sip {
    a: Args,
    seed: u64,
    uac: UdpSocket,
    uas: UdpSocket,
    uac_addr: SocketAddr,
    uas_addr: SocketAddr,
    uac_rtp: SocketAddr,
    uas_rtp: SocketAddr,
    calls: Vec<Call>,
    legs: HashMap<String, UasLeg>,
    media: mpsc::Sender<Start>,
    setup: Histogram<u64>,
    // Counters.
    up: usize,
    failed: usize,
    fail_codes: HashMap<u16, usize>,
    provisional: u64,
    retransmits: u64,
    uas_invites: u64,
    uas_invite_retx: u64,
    uas_byes: u64,
    gateway_byes_to_uac: u64,
    bye_ok: usize,
    bye_failed: usize,
    unmatched: u64,
    parse_errors: u64,
}

impl Sip {
    fn call_id(&self, i: usize) -> String {
        format!("ml-{}@{}", token(self.seed, i), self.a.ip)
    }

    fn idx_of(&self, call_id: &str) -> Option<usize> {
        let p = format!("ml-{:x}", self.seed & 0xffff_ffff);
        let rest = call_id.strip_prefix(&p)?;
        let hex = rest.split('@').next()?;
        usize::from_str_radix(hex, 16)
            .ok()
            .filter(|&i| i < self.calls.len())
    }

    fn caller_hdr(&self, i: usize) -> String {
        format!(
            "<sip:139{i:08}@{}>;tag={}",
            host(self.uac_addr),
            token(self.seed, i)
        )
    }

    fn send_invite(&mut self, i: usize, now: Instant) {
        let gw = self.a.gateway;
        let branch = format!("z9hG4bK-ml-{}", token(self.seed, i));
        let body = sdp_body(self.a.ip, self.uac_rtp.port(), i as u64 + 1, 101);
        let mut m = String::with_capacity(900);
        let _ = write!(
            m,
            "INVITE sip:{num}@{gw} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {me};branch={branch};rport\r\n\
             Max-Forwards: 70\r\n\
             From: {from}\r\n\
             To: <sip:{num}@{gw}>\r\n\
             Call-ID: {cid}\r\n\
             CSeq: 1 INVITE\r\n\
             Contact: <sip:carrier@{me}>\r\n\
             Content-Type: application/sdp\r\n\
             Content-Length: {len}\r\n\r\n{body}",
            num = self.a.number,
            me = host(self.uac_addr),
            from = self.caller_hdr(i),
            cid = self.call_id(i),
            len = body.len(),
        );
        let data = m.into_bytes();
        let _ = self.uac.send_to(&data, gw);
        let c = &mut self.calls[i];
        c.st = St::Inviting;
        c.invited = Some(now);
        c.branch = branch;
        c.retx = Some(Retx::new(data, gw, now, T1 * 64));
    }

    /// ACK or BYE within the dialog of call `i`.
    fn in_dialog(&self, i: usize, method: &str, cseq: u32, branch: &str) -> Vec<u8> {
        let c = &self.calls[i];
        let mut m = String::with_capacity(600);
        let _ = write!(
            m,
            "{method} {uri} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {me};branch={branch};rport\r\n\
             Max-Forwards: 70\r\n",
            uri = c.target_uri,
            me = host(self.uac_addr),
        );
        for r in &c.routes {
            let _ = write!(m, "Route: {r}\r\n");
        }
        let _ = write!(
            m,
            "From: {from}\r\n\
             To: <sip:{num}@{gw}>;tag={tag}\r\n\
             Call-ID: {cid}\r\n\
             CSeq: {cseq} {method}\r\n\
             Content-Length: 0\r\n\r\n",
            from = self.caller_hdr(i),
            num = self.a.number,
            gw = self.a.gateway,
            tag = c.to_tag.as_deref().unwrap_or(""),
            cid = self.call_id(i),
        );
        m.into_bytes()
    }

    fn maybe_start_media(&mut self, i: usize) {
        let c = &mut self.calls[i];
        if c.media_started || c.st != St::Up {
            return;
        }
        if let (Some(a), Some(b)) = (c.a_rtp, c.b_rtp) {
            c.media_started = true;
            let _ = self.media.send(Start { idx: i, a, b });
        }
    }

    fn on_uac_datagram(&mut self, data: &[u8], now: Instant) {
        let resp = match msg::parse(data) {
            Ok(p) => match p.message {
                Message::Response(r) => r,
                Message::Request(r) => {
                    self.on_uac_request(r);
                    return;
                }
            },
            Err(_) => {
                self.parse_errors += 1;
                return;
            }
        };
        let Some(i) = resp.call_id().and_then(|c| self.idx_of(c)) else {
            self.unmatched += 1;
            return;
        };
        let Some((_, method)) = resp.cseq() else {
            self.unmatched += 1;
            return;
        };
        match method {
            Method::Invite => self.on_invite_response(i, &resp, now),
            Method::Bye => {
                if resp.status < 200 {
                    return;
                }
                let c = &mut self.calls[i];
                if c.st == St::Byeing {
                    c.retx = None;
                    if resp.status < 300 {
                        c.st = St::Done;
                        self.bye_ok += 1;
                    } else {
                        c.st = St::ByeFailed;
                        self.bye_failed += 1;
                    }
                }
            }
            _ => {}
        }
    }

    fn on_invite_response(&mut self, i: usize, resp: &Response, now: Instant) {
        let st = self.calls[i].st;
        if resp.status < 200 {
            self.provisional += 1;
            let c = &mut self.calls[i];
            if st == St::Inviting {
                // A provisional ends INVITE retransmission (Timer A).
                if let Some(r) = c.retx.as_mut() {
                    r.next = r.until;
                }
            }
            return;
        }
        if resp.status >= 300 {
            // ACK in the INVITE transaction: same branch, the response's To.
            let to = resp.headers.get(Hdr::To).unwrap_or("").to_string();
            let c = &self.calls[i];
            let m = format!(
                "ACK sip:{num}@{gw} SIP/2.0\r\n\
                 Via: SIP/2.0/UDP {me};branch={branch};rport\r\n\
                 Max-Forwards: 70\r\n\
                 From: {from}\r\n\
                 To: {to}\r\n\
                 Call-ID: {cid}\r\n\
                 CSeq: 1 ACK\r\n\
                 Content-Length: 0\r\n\r\n",
                num = self.a.number,
                gw = self.a.gateway,
                me = host(self.uac_addr),
                branch = c.branch,
                from = self.caller_hdr(i),
                cid = self.call_id(i),
            );
            let _ = self.uac.send_to(m.as_bytes(), self.a.gateway);
            if st == St::Inviting {
                let c = &mut self.calls[i];
                c.st = St::Failed;
                c.retx = None;
                c.fail_status = resp.status;
                self.failed += 1;
                *self.fail_codes.entry(resp.status).or_default() += 1;
            }
            return;
        }
        // 2xx.
        if st != St::Inviting {
            // A retransmitted 200: ACK again.
            if let Some(ack) = self.calls[i].ack.clone() {
                let _ = self.uac.send_to(&ack, self.calls[i].dest);
            }
            return;
        }
        let gw = self.a.gateway;
        let contact = resp
            .headers
            .get(Hdr::Contact)
            .and_then(|c| NameAddr::parse(c).ok())
            .map(|n| n.uri);
        let mut routes: Vec<String> = resp
            .headers
            .all(Hdr::RecordRoute)
            .flat_map(msg::split_list)
            .map(|s| s.trim().to_string())
            .collect();
        routes.reverse();
        let target_uri = contact.unwrap_or_else(|| format!("sip:{}@{gw}", self.a.number));
        let dest = match routes.first() {
            Some(r) => NameAddr::parse(r)
                .map(|n| uri_addr(&n.uri, gw))
                .unwrap_or(gw),
            None => uri_addr(&target_uri, gw),
        };
        let a_rtp = sdp_rtp(&resp.body).map(|x| x.0);
        {
            let c = &mut self.calls[i];
            c.to_tag = resp.to_tag();
            c.target_uri = target_uri;
            c.routes = routes;
            c.dest = dest;
            c.a_rtp = a_rtp;
            c.retx = None;
        }
        let ack = self.in_dialog(i, "ACK", 1, &format!("z9hG4bK-mla-{}", token(self.seed, i)));
        let _ = self.uac.send_to(&ack, dest);
        let invited = self.calls[i].invited.unwrap_or(now);
        let _ = self.setup.record((now - invited).as_micros().max(1) as u64);
        let c = &mut self.calls[i];
        c.ack = Some(ack);
        if a_rtp.is_none() {
            c.st = St::Failed;
            c.fail_status = 2000; // 2xx without a usable SDP answer
            self.failed += 1;
            *self.fail_codes.entry(2000).or_default() += 1;
            return;
        }
        c.st = St::Up;
        self.up += 1;
        self.maybe_start_media(i);
    }

    /// A request from the gateway to the carrier: BYE (the gateway ended
    /// the call), OPTIONS; answer 200.
    fn on_uac_request(&mut self, req: Request) {
        if req.method == Method::Ack {
            return;
        }
        if req.method == Method::Bye {
            self.gateway_byes_to_uac += 1;
            if let Some(i) = req.call_id().and_then(|c| self.idx_of(c)) {
                let c = &mut self.calls[i];
                if c.st == St::Up {
                    c.st = St::Done;
                }
            }
        }
        let r = Response::to(&req, 200);
        let to = req
            .top_via()
            .and_then(Result::ok)
            .map(|v| via_dest(&v, self.a.gateway));
        let _ = self
            .uac
            .send_to(&r.to_bytes(), to.unwrap_or(self.a.gateway));
    }

    fn on_uas_datagram(&mut self, data: &[u8], from: SocketAddr, now: Instant) {
        let req = match msg::parse(data) {
            Ok(p) => match p.message {
                Message::Request(r) => r,
                Message::Response(_) => return, // nothing we sent asks for one
            },
            Err(_) => {
                self.parse_errors += 1;
                return;
            }
        };
        let cid = req.call_id().unwrap_or("").to_string();
        let to = req
            .top_via()
            .and_then(Result::ok)
            .map(|v| via_dest(&v, from))
            .unwrap_or(from);
        match req.method {
            Method::Invite => {
                if let Some(leg) = self.legs.get(&cid) {
                    self.uas_invite_retx += 1;
                    let _ = self.uas.send_to(&leg.ok, to);
                    return;
                }
                self.uas_invites += 1;
                let idx = req
                    .headers
                    .get(Hdr::From)
                    .and_then(|f| NameAddr::parse(f).ok())
                    .and_then(|n| SipUri::parse(&n.uri).ok())
                    .and_then(|u| u.user)
                    .and_then(|u| u.strip_prefix("139").and_then(|d| d.parse::<usize>().ok()))
                    .filter(|&i| i < self.calls.len());
                let offer = sdp_rtp(&req.body);
                let (Some(idx), Some((b_rtp, ev))) = (idx, offer) else {
                    let mut r = Response::to(&req, 488);
                    r.set_to_tag("mlx");
                    let _ = self.uas.send_to(&r.to_bytes(), to);
                    self.unmatched += 1;
                    return;
                };
                let body = sdp_body(
                    self.a.ip,
                    self.uas_rtp.port(),
                    idx as u64 + 1_000_000,
                    ev.unwrap_or(101),
                );
                let mut r = Response::to(&req, 200);
                r.set_to_tag(&format!("b{}", token(self.seed, idx)));
                r.headers
                    .push("Contact", format!("<sip:callee@{}>", host(self.uas_addr)));
                r.headers.push("Content-Type", "application/sdp");
                r.body = body.into_bytes().into();
                let ok = r.to_bytes().to_vec();
                let _ = self.uas.send_to(&ok, to);
                self.legs.insert(
                    cid,
                    UasLeg {
                        ok: ok.clone(),
                        retx: Some(Retx::new(ok, to, now, T1 * 64)),
                    },
                );
                self.calls[idx].b_rtp = Some(b_rtp);
                self.maybe_start_media(idx);
            }
            Method::Ack => {
                if let Some(leg) = self.legs.get_mut(&cid) {
                    leg.retx = None;
                }
            }
            Method::Bye => {
                self.uas_byes += 1;
                let r = Response::to(&req, 200);
                let _ = self.uas.send_to(&r.to_bytes(), to);
                if let Some(leg) = self.legs.get_mut(&cid) {
                    leg.retx = None;
                }
            }
            Method::Cancel => {
                let r = Response::to(&req, 200);
                let _ = self.uas.send_to(&r.to_bytes(), to);
            }
            _ => {
                let r = Response::to(&req, 200);
                let _ = self.uas.send_to(&r.to_bytes(), to);
            }
        }
    }

    fn pump(&mut self, now: Instant) -> bool {
        let mut buf = [0u8; 65536];
        let mut any = false;
        loop {
            match self.uac.recv_from(&mut buf) {
                Ok((n, _)) => {
                    any = true;
                    let d = buf[..n].to_vec();
                    self.on_uac_datagram(&d, now);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => continue,
            }
        }
        loop {
            match self.uas.recv_from(&mut buf) {
                Ok((n, from)) => {
                    any = true;
                    let d = buf[..n].to_vec();
                    self.on_uas_datagram(&d, from, now);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => continue,
            }
        }
        any
    }

    fn retransmit(&mut self, now: Instant) {
        for i in 0..self.calls.len() {
            let c = &mut self.calls[i];
            let Some(r) = c.retx.as_mut() else { continue };
            if now < r.next {
                continue;
            }
            if now >= r.until {
                c.retx = None;
                match c.st {
                    St::Inviting => {
                        c.st = St::Failed;
                        c.fail_status = 408;
                        self.failed += 1;
                        *self.fail_codes.entry(408).or_default() += 1;
                    }
                    St::Byeing => {
                        c.st = St::ByeFailed;
                        self.bye_failed += 1;
                    }
                    _ => {}
                }
                continue;
            }
            let _ = self.uac.send_to(&r.data, r.to);
            self.retransmits += 1;
            r.interval = (r.interval * 2).min(Duration::from_secs(4));
            r.next = now + r.interval;
        }
        for leg in self.legs.values_mut() {
            let Some(r) = leg.retx.as_mut() else { continue };
            if now >= r.until {
                leg.retx = None;
                continue;
            }
            if now >= r.next {
                let _ = self.uas.send_to(&r.data, r.to);
                self.retransmits += 1;
                r.interval = (r.interval * 2).min(Duration::from_secs(4));
                r.next = now + r.interval;
            }
        }
    }

    fn send_bye(&mut self, i: usize, now: Instant) {
        let bye = self.in_dialog(i, "BYE", 2, &format!("z9hG4bK-mlb-{}", token(self.seed, i)));
        let dest = self.calls[i].dest;
        let _ = self.uac.send_to(&bye, dest);
        let c = &mut self.calls[i];
        c.st = St::Byeing;
        c.retx = Some(Retx::new(bye, dest, now, T1 * 64));
    }

    /// Run `f` until `done` or `deadline`, pumping SIP and retransmitting.
    fn run_until(
        &mut self,
        deadline: Instant,
        idle_sleep: Duration,
        mut step: impl FnMut(&mut Sip, Instant) -> bool,
    ) {
        let mut last_retx = Instant::now();
        loop {
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            let busy = self.pump(now);
            if now - last_retx >= Duration::from_millis(20) {
                self.retransmit(now);
                last_retx = now;
            }
            if step(self, now) {
                return;
            }
            if !busy {
                thread::sleep(idle_sleep);
            }
        }
    }
}

/// Where a response to a request with this Via goes (RFC 3261 §18.2.2,
/// RFC 3581): received/rport when present, else the Via's sent-by.
fn via_dest(v: &msg::Via, src: SocketAddr) -> SocketAddr {
    let ip = v
        .received
        .as_deref()
        .and_then(|r| r.parse::<IpAddr>().ok())
        .or_else(|| v.host.trim_matches(['[', ']']).parse::<IpAddr>().ok())
        .unwrap_or(src.ip());
    let port = match v.rport {
        Some(Some(p)) => p,
        _ => v.port.unwrap_or(5060),
    };
    SocketAddr::new(ip, port)
}

// --------------------------------------------------------------- main --

fn pct(n: u64, d: u64) -> f64 {
    if d == 0 {
        0.0
    } else {
        n as f64 * 100.0 / d as f64
    }
}

fn main() {
    if std::env::args().len() <= 1 {
        // `cargo test --all-targets` runs bench binaries without arguments:
        // a load run needs a gateway, so there is nothing to test here.
        eprintln!(
            "media_load: no arguments, nothing to run (see --help; sip-scenarios/load-media.sh)"
        );
        return;
    }
    let a = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("media_load: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(a) {
        eprintln!("media_load: {e}");
        std::process::exit(1);
    }
}

fn run(a: Args) -> io::Result<()> {
    let start = Instant::now();
    let cpu0 = cpu_seconds();
    let seed = hotline::time::unix_now().as_nanos() as u64 ^ u64::from(std::process::id()) << 32;
    let uac = bind_udp(a.ip, a.uac_sip_port, Some(4 << 20))?;
    let uas = bind_udp(a.ip, a.uas_sip_port, Some(4 << 20)).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("UAS SIP port {}:{}: {e}", a.ip, a.uas_sip_port),
        )
    })?;
    let uac_rtp = bind_udp(a.ip, a.uac_rtp_port, Some(RTP_BUFFER))?;
    let uas_rtp = bind_udp(a.ip, a.uas_rtp_port, Some(RTP_BUFFER))?;
    uac.set_nonblocking(true)?;
    uas.set_nonblocking(true)?;
    let (uac_addr, uas_addr) = (uac.local_addr()?, uas.local_addr()?);
    let (uac_rtp_addr, uas_rtp_addr) = (uac_rtp.local_addr()?, uas_rtp.local_addr()?);
    eprintln!(
        "media_load: {} calls via {} (UAC SIP {uac_addr} RTP {uac_rtp_addr}; UAS SIP {uas_addr} RTP {uas_rtp_addr}), {} cps, {} s",
        a.calls, a.gateway, a.cps, a.duration
    );
    let drops0 = [
        kernel_drops(uac_rtp_addr.port()),
        kernel_drops(uas_rtp_addr.port()),
        kernel_drops(uac_addr.port()) + kernel_drops(uas_addr.port()),
    ];

    let stop_send = Arc::new(AtomicBool::new(false));
    let stop_recv = Arc::new(AtomicBool::new(false));
    let in_hold = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let calls = a.calls;
    let slots = a.slots;
    let poll = (a.recv_poll_us > 0).then(|| Duration::from_micros(a.recv_poll_us));
    let direct = a.direct;
    let sender_t = {
        let (u1, u2) = (uac_rtp.try_clone()?, uas_rtp.try_clone()?);
        let stop = stop_send.clone();
        thread::Builder::new()
            .name("rtp-send".into())
            .spawn(move || sender(u1, u2, calls, slots, start, rx, stop))?
    };
    // At the UAS arrives A→B (dir 0); at the UAC, B→A (dir 1).
    let recv_ab = {
        let s = uas_rtp.try_clone()?;
        let stop = stop_recv.clone();
        let hold = in_hold.clone();
        thread::Builder::new()
            .name("rtp-recv-ab".into())
            .spawn(move || receiver(s, 0, calls, start, poll, hold, stop))?
    };
    let recv_ba = {
        let s = uac_rtp.try_clone()?;
        let stop = stop_recv.clone();
        let hold = in_hold.clone();
        thread::Builder::new()
            .name("rtp-recv-ba".into())
            .spawn(move || receiver(s, 1, calls, start, poll, hold, stop))?
    };

    let mut sip = Sip {
        seed,
        uac,
        uas,
        uac_addr,
        uas_addr,
        uac_rtp: uac_rtp_addr,
        uas_rtp: uas_rtp_addr,
        calls: (0..a.calls)
            .map(|_| Call {
                st: St::Idle,
                invited: None,
                branch: String::new(),
                to_tag: None,
                target_uri: String::new(),
                dest: a.gateway,
                routes: Vec::new(),
                a_rtp: None,
                b_rtp: None,
                media_started: false,
                retx: None,
                ack: None,
                fail_status: 0,
            })
            .collect(),
        legs: HashMap::new(),
        media: tx,
        setup: hist(),
        up: 0,
        failed: 0,
        fail_codes: HashMap::new(),
        provisional: 0,
        retransmits: 0,
        uas_invites: 0,
        uas_invite_retx: 0,
        uas_byes: 0,
        gateway_byes_to_uac: 0,
        bye_ok: 0,
        bye_failed: 0,
        unmatched: 0,
        parse_errors: 0,
        a,
    };

    // --- setup: INVITEs at cps ---------------------------------------------
    phase(start, "setup");
    let setup_start = Instant::now();
    let interval = Duration::from_secs(1) / sip.a.cps;
    let mut next_call = 0usize;
    let far = setup_start + Duration::from_secs(86_400);
    let mut last_invite = setup_start;
    let setup_timeout = Duration::from_secs(sip.a.setup_timeout);
    let mut last_report = setup_start;
    sip.run_until(far, Duration::from_micros(500), |s, now| {
        while next_call < s.calls.len() && now >= setup_start + interval * next_call as u32 {
            if direct {
                // No gateway: each side sends to the other's RTP socket.
                let c = &mut s.calls[next_call];
                c.st = St::Up;
                c.media_started = true;
                s.up += 1;
                let (a, b) = (s.uas_rtp, s.uac_rtp);
                let _ = s.media.send(Start {
                    idx: next_call,
                    a,
                    b,
                });
            } else {
                s.send_invite(next_call, now);
            }
            next_call += 1;
            last_invite = now;
        }
        if now - last_report >= Duration::from_secs(5) {
            last_report = now;
            eprintln!(
                "media_load: setup {}/{} up, {} failed, {} sent",
                s.up,
                s.calls.len(),
                s.failed,
                next_call
            );
        }
        let settled = s.up + s.failed == s.calls.len();
        settled || (next_call == s.calls.len() && now - last_invite >= setup_timeout)
    });
    let setup_secs = setup_start.elapsed().as_secs_f64();
    for c in sip.calls.iter_mut().filter(|c| c.st == St::Inviting) {
        c.st = St::Failed;
        c.fail_status = 408;
        c.retx = None;
        sip.failed += 1;
        *sip.fail_codes.entry(408).or_default() += 1;
    }
    let media_missing = sip
        .calls
        .iter()
        .filter(|c| c.st == St::Up && !c.media_started)
        .count();

    // --- hold: media with every call up -----------------------------------
    phase(start, "hold");
    in_hold.store(true, Ordering::Relaxed);
    let hold_start = Instant::now();
    let cpu_hold0 = cpu_seconds();
    let hold_end = hold_start + Duration::from_secs(sip.a.duration);
    let mut last_report = hold_start;
    sip.run_until(hold_end, Duration::from_millis(5), |s, now| {
        if now - last_report >= Duration::from_secs(10) {
            last_report = now;
            eprintln!(
                "media_load: hold {:.0}/{} s, {} calls up, gateway BYEs to carrier {}",
                (now - hold_start).as_secs_f64(),
                s.a.duration,
                s.calls.iter().filter(|c| c.st == St::Up).count(),
                s.gateway_byes_to_uac
            );
        }
        false
    });
    let hold_secs = hold_start.elapsed().as_secs_f64();
    let cpu_hold = cpu_seconds() - cpu_hold0;

    // --- drain: stop sending, let in-flight packets arrive ------------------
    phase(start, "drain");
    in_hold.store(false, Ordering::Relaxed);
    stop_send.store(true, Ordering::Relaxed);
    let sent = sender_t
        .join()
        .map_err(|_| io::Error::other("the RTP sender panicked"))?;
    let drain_end = Instant::now() + Duration::from_millis(sip.a.drain_ms);
    sip.run_until(drain_end, Duration::from_millis(5), |_, _| false);
    stop_recv.store(true, Ordering::Relaxed);
    let rab = recv_ab
        .join()
        .map_err(|_| io::Error::other("the A→B receiver panicked"))?;
    let rba = recv_ba
        .join()
        .map_err(|_| io::Error::other("the B→A receiver panicked"))?;
    let drops = [
        kernel_drops(uac_rtp_addr.port()).saturating_sub(drops0[0]),
        kernel_drops(uas_rtp_addr.port()).saturating_sub(drops0[1]),
        (kernel_drops(uac_addr.port()) + kernel_drops(uas_addr.port())).saturating_sub(drops0[2]),
    ];

    // --- bye ---------------------------------------------------------------
    phase(start, "bye");
    let up: Vec<usize> = (0..sip.calls.len())
        .filter(|&i| sip.calls[i].st == St::Up && !direct)
        .collect();
    let bye_start = Instant::now();
    let mut k = 0usize;
    let bye_deadline = bye_start + interval * up.len() as u32 + Duration::from_secs(40);
    sip.run_until(bye_deadline, Duration::from_micros(500), |s, now| {
        while k < up.len() && now >= bye_start + interval * k as u32 {
            s.send_bye(up[k], now);
            k += 1;
        }
        k == up.len() && !s.calls.iter().any(|c| c.st == St::Byeing)
    });
    // Let the gateway's BYEs to the callee arrive and be answered.
    let tail = Instant::now() + Duration::from_millis(if direct { 0 } else { 500 });
    sip.run_until(tail, Duration::from_millis(2), |_, _| false);
    let bye_missing = sip.calls.iter().filter(|c| c.st == St::Byeing).count();
    phase(start, "done");

    // --- report ------------------------------------------------------------
    let total_secs = start.elapsed().as_secs_f64();
    let cpu_total = cpu_seconds() - cpu0;
    let mut lat = rab.latency.clone();
    let _ = lat.add(&rba.latency);
    let mut hlat = rab.hold_latency.clone();
    let _ = hlat.add(&rba.hold_latency);
    let sum = |r: &RecvResult, dir: usize| {
        let mut t = [0u64; 4]; // sent, received, dups, reordered
        for (i, s) in r.per_call.iter().enumerate() {
            t[0] += u64::from(sent.sent[i][dir]);
            t[1] += u64::from(s.received);
            t[2] += u64::from(s.dups);
            t[3] += u64::from(s.reordered);
        }
        t
    };
    let ab = sum(&rab, 0);
    let ba = sum(&rba, 1);
    let lost_ab = ab[0].saturating_sub(ab[1]);
    let lost_ba = ba[0].saturating_sub(ba[1]);
    let calls_with_loss = (0..calls)
        .filter(|&i| {
            u64::from(rab.per_call[i].received) < u64::from(sent.sent[i][0])
                || u64::from(rba.per_call[i].received) < u64::from(sent.sent[i][1])
        })
        .count();
    let sent_total = ab[0] + ba[0];
    let lost_total = lost_ab + lost_ba;
    let us = |v: u64| v as f64 / 1000.0;
    let q = |h: &Histogram<u64>, p: f64| {
        if h.is_empty() {
            0.0
        } else {
            us(h.value_at_quantile(p))
        }
    };
    let ms = |h: &Histogram<u64>, p: f64| {
        if h.is_empty() {
            0.0
        } else {
            h.value_at_quantile(p) as f64 / 1000.0
        }
    };
    let mut codes: Vec<_> = sip.fail_codes.iter().collect();
    codes.sort();
    let codes: Vec<String> = codes.iter().map(|(c, n)| format!("{c}:{n}")).collect();
    let gen_cpu = cpu_total / total_secs * 100.0;
    let gen_cpu_hold = if hold_secs > 0.0 {
        cpu_hold / hold_secs * 100.0
    } else {
        0.0
    };

    println!();
    let via = if direct {
        "direct, no gateway".to_string()
    } else {
        format!("via {}", sip.a.gateway)
    };
    let rx_mode = match poll {
        Some(d) => format!("receivers poll every {} us", d.as_micros()),
        None => "receivers block per packet".to_string(),
    };
    println!("== media_load: {calls} calls {via}, {rx_mode} ==");
    println!(
        "calls      up {} / {}, failed {} [{}], setup {:.1} s at {} cps; setup INVITE->200 p50 {:.1} ms p99 {:.1} ms max {:.1} ms",
        sip.up,
        calls,
        sip.failed,
        codes.join(" "),
        setup_secs,
        sip.a.cps,
        ms(&sip.setup, 0.5),
        ms(&sip.setup, 0.99),
        if sip.setup.is_empty() { 0.0 } else { sip.setup.max() as f64 / 1000.0 },
    );
    println!(
        "sip        provisional {} retransmits {} callee INVITEs {} (retx {}), callee BYEs {}, gateway BYEs to carrier {}, unmatched {}, unparsable {}",
        sip.provisional,
        sip.retransmits,
        sip.uas_invites,
        sip.uas_invite_retx,
        sip.uas_byes,
        sip.gateway_byes_to_uac,
        sip.unmatched,
        sip.parse_errors
    );
    println!(
        "bye        ok {} failed {} unanswered {}; up calls without media {}",
        sip.bye_ok, sip.bye_failed, bye_missing, media_missing
    );
    println!("hold       {hold_secs:.1} s with all set-up calls sending");
    for (name, t, lost, r) in [("A->B", ab, lost_ab, &rab), ("B->A", ba, lost_ba, &rba)] {
        println!(
            "rtp {name}   sent {} received {} lost {} ({:.6} %) dups {} reordered {} foreign {} wrong-dir {}",
            t[0],
            t[1],
            lost,
            pct(lost, t[0]),
            t[2],
            t[3],
            r.foreign,
            r.wrong_dir
        );
    }
    println!(
        "loss       {} of {} ({:.3e}); calls with loss {}; kernel drops on our sockets: carrier RTP {} callee RTP {} SIP {}",
        lost_total,
        sent_total,
        if sent_total > 0 { lost_total as f64 / sent_total as f64 } else { 0.0 },
        calls_with_loss,
        drops[0],
        drops[1],
        drops[2]
    );
    println!("latency    end to end: send -> [gateway ->] receive, incl. the generator's own scheduling, us");
    for (name, h) in [
        ("hold, both ways", &hlat),
        ("hold, A->B", &rab.hold_latency),
        ("hold, B->A", &rba.hold_latency),
        ("whole run", &lat),
    ] {
        println!(
            "  {name:<16} p50 {:.1} p99 {:.1} p99.9 {:.1} max {:.1} (n={})",
            q(h, 0.5),
            q(h, 0.99),
            q(h, 0.999),
            if h.is_empty() { 0.0 } else { us(h.max()) },
            h.len()
        );
    }
    println!(
        "sender     max lag {:.2} ms, slots > 5 ms late {}, send errors {}",
        sent.max_lag.as_secs_f64() * 1000.0,
        sent.late_slots,
        sent.errors
    );
    println!(
        "generator  CPU {gen_cpu:.1} % of one core over {total_secs:.1} s ({gen_cpu_hold:.1} % during hold)"
    );
    println!(
        "RESULT direct={} recv_poll_us={} calls={calls} up={} failed={} bye_ok={} bye_failed={} bye_missing={} \
         a2b_sent={} a2b_recv={} a2b_lost={} b2a_sent={} b2a_recv={} b2a_lost={} \
         lost={lost_total} sent={sent_total} loss_ratio={:.3e} dups={} reordered={} foreign={} \
         calls_with_loss={calls_with_loss} gen_kdrop={} \
         lat_p50_us={:.1} lat_p99_us={:.1} lat_p999_us={:.1} lat_max_us={:.1} run_lat_p99_us={:.1} run_lat_max_us={:.1} \
         setup_p50_ms={:.1} setup_p99_ms={:.1} sender_max_lag_ms={:.2} late_slots={} send_errors={} \
         hold_s={hold_secs:.1} gen_cpu={gen_cpu:.1} gen_cpu_hold={gen_cpu_hold:.1}",
        u8::from(direct),
        poll.map_or(0, |d| d.as_micros()),
        sip.up,
        sip.failed,
        sip.bye_ok,
        sip.bye_failed,
        bye_missing,
        ab[0],
        ab[1],
        lost_ab,
        ba[0],
        ba[1],
        lost_ba,
        if sent_total > 0 { lost_total as f64 / sent_total as f64 } else { 0.0 },
        ab[2] + ba[2],
        ab[3] + ba[3],
        rab.foreign + rba.foreign,
        drops[0] + drops[1] + drops[2],
        q(&hlat, 0.5),
        q(&hlat, 0.99),
        q(&hlat, 0.999),
        if hlat.is_empty() { 0.0 } else { us(hlat.max()) },
        q(&lat, 0.99),
        if lat.is_empty() { 0.0 } else { us(lat.max()) },
        ms(&sip.setup, 0.5),
        ms(&sip.setup, 0.99),
        sent.max_lag.as_secs_f64() * 1000.0,
        sent.late_slots,
        sent.errors,
    );
    Ok(())
}
