//! An RTP sink for end-to-end media tests, and what to measure with it.
//!
//! SIPp 3.6.1 cannot check the audio it receives (TESTING.md), so the test
//! owns the caller's media address: [`RtpSink`] binds a UDP socket on
//! loopback and a background thread records every datagram with its arrival
//! time until the sink is stopped or dropped. The analysis functions then
//! answer what a person on the line would notice:
//!
//! - [`decode`] / [`audio_samples`]: G.711 payloads (PT 0, PT 8) to linear
//!   PCM, with `audio-codec-algorithms` (an independent decoder, not the
//!   gateway's own tables);
//! - [`rms`]: "the caller heard something, not silence";
//! - [`goertzel_power`], [`tone_ratio`], [`dominant_tone`]: "the caller heard
//!   450 Hz ringback";
//! - [`dtmf_events`] / [`dtmf_digits`]: RFC 4733 telephone-events;
//! - [`continuity`]: sequence numbers per SSRC, for "one continuous stream
//!   across a change of source".
//!
//! With `sip-scenarios/media-uac.xml` the sink sits at SIPp's `-mp` port + 1
//! ([`RtpSink::beside_sipp`]): the offer advertises that port and SIPp sends
//! its pcaps from it, so whoever answers to the source of the caller's RTP
//! reaches the sink as well as whoever uses the SDP.
//!
//! Real sockets and the wall clock: exempt from the "only src/time.rs reads
//! the clock" rule, like `e2e.rs`. Nothing here trusts the network: a
//! datagram that is not RTP is counted, never unwrapped.
#![allow(clippy::disallowed_methods)]
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// The G.711 sample rate.
pub const RATE: u32 = 8000;

/// One RTP packet as it arrived.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SinkPacket {
    /// Arrival time since the sink was bound.
    pub at: Duration,
    /// Who sent it.
    pub from: SocketAddr,
    pub pt: u8,
    pub seq: u16,
    pub ts: u32,
    pub ssrc: u32,
    pub marker: bool,
    /// The payload (after CSRCs and any header extension, padding removed).
    pub payload: Vec<u8>,
}

/// Parse an RTP datagram (RFC 3550 §5.1). `None` for anything that is not
/// a well-formed version 2 packet.
pub fn parse_rtp(data: &[u8], at: Duration, from: SocketAddr) -> Option<SinkPacket> {
    let b0 = *data.first()?;
    let b1 = *data.get(1)?;
    if b0 >> 6 != 2 {
        return None;
    }
    let seq = u16::from_be_bytes([*data.get(2)?, *data.get(3)?]);
    let ts = u32::from_be_bytes(data.get(4..8)?.try_into().ok()?);
    let ssrc = u32::from_be_bytes(data.get(8..12)?.try_into().ok()?);
    let mut start = 12 + 4 * usize::from(b0 & 0x0f);
    if b0 & 0x10 != 0 {
        let ext = data.get(start..start + 4)?;
        start += 4 + 4 * usize::from(u16::from_be_bytes([ext[2], ext[3]]));
    }
    let mut end = data.len();
    if b0 & 0x20 != 0 {
        let pad = usize::from(*data.last()?);
        if pad == 0 {
            return None;
        }
        end = end.checked_sub(pad)?;
    }
    let payload = data.get(start..end)?.to_vec();
    Some(SinkPacket {
        at,
        from,
        pt: b1 & 0x7f,
        seq,
        ts,
        ssrc,
        marker: b1 & 0x80 != 0,
        payload,
    })
}

#[derive(Default)]
struct Shared {
    packets: Mutex<Vec<SinkPacket>>,
    /// Datagrams that were not RTP.
    junk: AtomicUsize,
    stop: AtomicBool,
}

fn lock(m: &Mutex<Vec<SinkPacket>>) -> MutexGuard<'_, Vec<SinkPacket>> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A UDP socket on 127.0.0.1 that records every RTP packet it receives.
pub struct RtpSink {
    addr: SocketAddr,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl RtpSink {
    /// Bind an ephemeral loopback port.
    pub fn bind() -> RtpSink {
        Self::bind_port(0).unwrap_or_else(|e| panic!("rtp sink: bind 127.0.0.1:0: {e}"))
    }

    /// Bind `127.0.0.1:port` (0: ephemeral).
    pub fn bind_port(port: u16) -> io::Result<RtpSink> {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, port))?;
        // Short timeout: the thread notices `stop` within 20 ms.
        socket.set_read_timeout(Some(Duration::from_millis(20)))?;
        let addr = socket.local_addr()?;
        let shared = Arc::new(Shared::default());
        let started = Instant::now();
        let thread = {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name(format!("rtp-sink-{}", addr.port()))
                .spawn(move || receive(&socket, &shared, started))?
        };
        Ok(RtpSink {
            addr,
            shared,
            thread: Some(thread),
        })
    }

    /// A sink for `sip-scenarios/media-uac.xml`: returns the sink and the
    /// `-mp` port to give that SIPp. The sink is at `-mp` + 1, the port the
    /// scenario advertises and sends its pcaps from; SIPp binds `-mp` and
    /// `-mp` + 2 itself. The window comes from
    /// [`super::e2e::free_media_port`], so no other SIPp of this process
    /// gets it.
    pub fn beside_sipp() -> (RtpSink, u16) {
        let mut last = None;
        for _ in 0..20 {
            let mp = super::e2e::free_media_port();
            match RtpSink::bind_port(mp + 1) {
                Ok(sink) => return (sink, mp),
                Err(e) => last = Some(e),
            }
        }
        panic!("rtp sink: no media port window with -mp + 1 bindable: {last:?}");
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A copy of everything received so far, in arrival order.
    pub fn packets(&self) -> Vec<SinkPacket> {
        lock(&self.shared.packets).clone()
    }

    /// How many RTP packets arrived so far.
    pub fn count(&self) -> usize {
        lock(&self.shared.packets).len()
    }

    /// Datagrams that arrived but were not RTP version 2.
    pub fn junk(&self) -> usize {
        self.shared.junk.load(Ordering::Relaxed)
    }

    /// Poll every 20 ms until `cond` holds on the packets so far or
    /// `timeout` passes; returns whether it held.
    pub fn wait_for(&self, timeout: Duration, mut cond: impl FnMut(&[SinkPacket]) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if cond(&lock(&self.shared.packets)) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stop receiving (the port stays bound until drop) and return
    /// everything received.
    pub fn stop(&mut self) -> Vec<SinkPacket> {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.packets()
    }

    /// A one-line-per-stream summary for failure messages.
    pub fn summary(&self) -> String {
        let packets = self.packets();
        let mut s = format!(
            "rtp sink {}: {} RTP packets, {} non-RTP datagrams\n",
            self.addr,
            packets.len(),
            self.junk()
        );
        for st in streams(&packets) {
            s.push_str(&format!("  {st:?}\n"));
        }
        s
    }
}

impl Drop for RtpSink {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn receive(socket: &UdpSocket, shared: &Shared, started: Instant) {
    let mut buf = vec![0u8; 65536];
    while !shared.stop.load(Ordering::Relaxed) {
        match socket.recv_from(&mut buf) {
            Ok((n, from)) => {
                let at = started.elapsed();
                match buf.get(..n).and_then(|d| parse_rtp(d, at, from)) {
                    Some(p) => lock(&shared.packets).push(p),
                    None => {
                        shared.junk.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            // ICMP errors surface as ECONNREFUSED on some kernels; keep going.
            Err(_) => thread::sleep(Duration::from_millis(5)),
        }
    }
}

// ---------------------------------------------------------------------------
// audio
// ---------------------------------------------------------------------------

/// Decode a G.711 payload: PT 0 (PCMU) or PT 8 (PCMA). Any other payload
/// type decodes to nothing.
pub fn decode(pt: u8, payload: &[u8]) -> Vec<i16> {
    match pt {
        0 => payload
            .iter()
            .map(|&b| audio_codec_algorithms::decode_ulaw(b))
            .collect(),
        8 => payload
            .iter()
            .map(|&b| audio_codec_algorithms::decode_alaw(b))
            .collect(),
        _ => Vec::new(),
    }
}

/// The packets of payload type `pt` whose arrival is within `window`
/// (since the sink was bound), in arrival order.
pub fn in_window(
    packets: &[SinkPacket],
    pt: u8,
    window: std::ops::Range<Duration>,
) -> Vec<&SinkPacket> {
    packets
        .iter()
        .filter(|p| p.pt == pt && window.contains(&p.at))
        .collect()
}

/// The decoded audio of every packet of payload type `pt` (0 or 8),
/// concatenated in arrival order (no reordering, no gap filling).
pub fn audio_samples(packets: &[SinkPacket], pt: u8) -> Vec<i16> {
    packets
        .iter()
        .filter(|p| p.pt == pt)
        .flat_map(|p| decode(p.pt, &p.payload))
        .collect()
}

/// Root mean square of the samples (0.0 for none). G.711 silence is below
/// 10; speech is in the hundreds to thousands.
pub fn rms(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let sum: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    (sum / samples.len() as f64).sqrt()
}

/// Goertzel: |X(f)|² of the samples at `freq_hz` (need not be a DFT bin).
/// A sine of amplitude A over N samples gives about (A·N/2)².
pub fn goertzel_power(samples: &[i16], freq_hz: f64, rate: u32) -> f64 {
    let w = 2.0 * std::f64::consts::PI * freq_hz / f64::from(rate);
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s0 = f64::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    s1 * s1 + s2 * s2 - coeff * s1 * s2
}

/// Block length for [`tone_ratio`]: 20 ms at 8 kHz, so every multiple of
/// 50 Hz (450 Hz ringback, 425 Hz, 400 Hz...) is an exact bin.
pub const TONE_BLOCK: usize = 160;

/// The share of the signal's energy at `freq_hz`, about 1.0 for a pure
/// tone there, near 0 for silence, noise or another tone. Computed on
/// [`TONE_BLOCK`]-sample blocks (a trailing partial block is ignored), so
/// on/off cadences and a wandering phase do not matter. Bins are 50 Hz
/// wide: a tone 25 Hz away still scores about 0.4.
pub fn tone_ratio(samples: &[i16], freq_hz: f64) -> f64 {
    let mut tone = 0.0;
    let mut total = 0.0;
    for block in samples.chunks_exact(TONE_BLOCK) {
        let n = block.len() as f64;
        tone += 2.0 * goertzel_power(block, freq_hz, RATE) / n;
        total += block
            .iter()
            .map(|&s| f64::from(s) * f64::from(s))
            .sum::<f64>();
    }
    if total <= 0.0 {
        0.0
    } else {
        tone / total
    }
}

/// The strongest frequency between 100 and 3800 Hz in 10 Hz steps and its
/// [`tone_ratio`]-like share of the energy, measured on 100 ms blocks
/// (10 Hz resolution). `None` for fewer than 800 samples or silence.
pub fn dominant_tone(samples: &[i16]) -> Option<(f64, f64)> {
    const BLOCK: usize = 800;
    let total: f64 = samples
        .chunks_exact(BLOCK)
        .flatten()
        .map(|&s| f64::from(s) * f64::from(s))
        .sum();
    if total <= 0.0 {
        return None;
    }
    let mut best: Option<(f64, f64)> = None;
    for step in 10..=380 {
        let f = f64::from(step) * 10.0;
        let power: f64 = samples
            .chunks_exact(BLOCK)
            .map(|b| 2.0 * goertzel_power(b, f, RATE) / BLOCK as f64)
            .sum();
        let share = power / total;
        if best.is_none_or(|(_, s)| share > s) {
            best = Some((f, share));
        }
    }
    best
}

// ---------------------------------------------------------------------------
// RFC 4733 telephone-events
// ---------------------------------------------------------------------------

/// One telephone-event (RFC 4733 §2.3), summarised over its packets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DtmfEvent {
    /// 0-9 digits, 10 `*`, 11 `#`, 12-15 A-D.
    pub event: u8,
    pub ssrc: u32,
    /// The RTP timestamp: the event's start, shared by all its packets.
    pub ts: u32,
    /// How many packets carried it (end packets are sent three times).
    pub packets: usize,
    /// Whether a packet with the E bit arrived.
    pub ended: bool,
    /// The largest duration seen, in timestamp units.
    pub duration: u16,
    /// Arrival of its first packet.
    pub first_at: Duration,
}

/// The telephone-events carried on payload type `pt`, one per (SSRC, RTP
/// timestamp), in order of first arrival. Payloads shorter than 4 bytes are
/// skipped.
pub fn dtmf_events(packets: &[SinkPacket], pt: u8) -> Vec<DtmfEvent> {
    let mut events: Vec<DtmfEvent> = Vec::new();
    for p in packets.iter().filter(|p| p.pt == pt) {
        let [event, flags, d0, d1] = match p.payload.get(..4) {
            Some(&[a, b, c, d]) => [a, b, c, d],
            _ => continue,
        };
        let duration = u16::from_be_bytes([d0, d1]);
        let ended = flags & 0x80 != 0;
        match events
            .iter_mut()
            .find(|e| e.ssrc == p.ssrc && e.ts == p.ts && e.event == event)
        {
            Some(e) => {
                e.packets += 1;
                e.ended |= ended;
                e.duration = e.duration.max(duration);
            }
            None => events.push(DtmfEvent {
                event,
                ssrc: p.ssrc,
                ts: p.ts,
                packets: 1,
                ended,
                duration,
                first_at: p.at,
            }),
        }
    }
    events
}

/// Just the event codes of [`dtmf_events`], in order.
pub fn dtmf_digits(packets: &[SinkPacket], pt: u8) -> Vec<u8> {
    dtmf_events(packets, pt).iter().map(|e| e.event).collect()
}

// ---------------------------------------------------------------------------
// stream continuity
// ---------------------------------------------------------------------------

/// One SSRC's packets, in arrival order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamStats {
    pub ssrc: u32,
    /// Payload types seen, ascending.
    pub pts: Vec<u8>,
    pub packets: usize,
    pub first_seq: u16,
    pub last_seq: u16,
    /// Steps of more than +1 (lost or skipped numbers), and how many
    /// numbers were skipped in all.
    pub gaps: usize,
    pub skipped: u32,
    /// The same number again (RFC 4733 end packets are sent this way).
    pub repeats: usize,
    /// A step backwards (reordering, or a sequence restart).
    pub backwards: usize,
    pub first_at: Duration,
    pub last_at: Duration,
}

/// Per-SSRC statistics, ordered by first arrival.
pub fn streams(packets: &[SinkPacket]) -> Vec<StreamStats> {
    let mut order: Vec<u32> = Vec::new();
    let mut by_ssrc: BTreeMap<u32, StreamStats> = BTreeMap::new();
    for p in packets {
        match by_ssrc.get_mut(&p.ssrc) {
            None => {
                order.push(p.ssrc);
                by_ssrc.insert(
                    p.ssrc,
                    StreamStats {
                        ssrc: p.ssrc,
                        pts: vec![p.pt],
                        packets: 1,
                        first_seq: p.seq,
                        last_seq: p.seq,
                        gaps: 0,
                        skipped: 0,
                        repeats: 0,
                        backwards: 0,
                        first_at: p.at,
                        last_at: p.at,
                    },
                );
            }
            Some(s) => {
                let step = p.seq.wrapping_sub(s.last_seq);
                match step {
                    0 => s.repeats += 1,
                    1 => {}
                    // Forward by less than half the number space: a gap.
                    2..=0x7fff => {
                        s.gaps += 1;
                        s.skipped += u32::from(step - 1);
                    }
                    _ => s.backwards += 1,
                }
                if step != 0 && step <= 0x7fff {
                    s.last_seq = p.seq;
                }
                if !s.pts.contains(&p.pt) {
                    s.pts.push(p.pt);
                    s.pts.sort_unstable();
                }
                s.packets += 1;
                s.last_at = p.at;
            }
        }
    }
    order
        .into_iter()
        .filter_map(|ssrc| by_ssrc.remove(&ssrc))
        .collect()
}

/// What a listener's jitter buffer would make of the packets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Continuity {
    /// Distinct SSRCs (1 for one continuous stream).
    pub ssrcs: usize,
    pub gaps: usize,
    pub skipped: u32,
    pub repeats: usize,
    pub backwards: usize,
}

impl Continuity {
    /// One SSRC whose sequence numbers only ever step by +1 (repeats, as
    /// RFC 4733 end packets, allowed).
    pub fn is_one_continuous_stream(&self) -> bool {
        self.ssrcs == 1 && self.gaps == 0 && self.backwards == 0
    }
}

/// Sequence continuity of `packets` (filter them first, e.g. by PT or by
/// arrival window): within each SSRC the sequence number should step by
/// exactly 1 in arrival order.
pub fn continuity(packets: &[SinkPacket]) -> Continuity {
    let st = streams(packets);
    Continuity {
        ssrcs: st.len(),
        gaps: st.iter().map(|s| s.gaps).sum(),
        skipped: st.iter().map(|s| s.skipped).sum(),
        repeats: st.iter().map(|s| s.repeats).sum(),
        backwards: st.iter().map(|s| s.backwards).sum(),
    }
}

/// Shorthand: one SSRC, sequence numbers stepping by exactly 1.
pub fn seq_continuous(packets: &[SinkPacket]) -> bool {
    continuity(packets).is_one_continuous_stream()
}

// ---------------------------------------------------------------------------
// synthetic signals (for tests of the analysis itself)
// ---------------------------------------------------------------------------

/// `n` samples of a sine at `freq_hz`, peak `amplitude`.
pub fn sine(freq_hz: f64, amplitude: f64, n: usize) -> Vec<i16> {
    (0..n)
        .map(|i| {
            let t = i as f64 / f64::from(RATE);
            (amplitude * (2.0 * std::f64::consts::PI * freq_hz * t).sin()).round() as i16
        })
        .collect()
}

/// `n` samples of deterministic white-ish noise (xorshift), peak about
/// `amplitude`.
pub fn noise(amplitude: f64, n: usize, seed: u64) -> Vec<i16> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let u = (x >> 11) as f64 / (1u64 << 53) as f64; // [0, 1)
            (amplitude * (2.0 * u - 1.0)).round() as i16
        })
        .collect()
}
