//! DTMF as RTP events: the telephone-event payload (RFC 4733 §2.3), a
//! receiver that reports each digit exactly once, and a sender that makes
//! the packet sequence for one digit.
//!
//! The receiver is sans-IO: feed it packets with
//! [`DtmfReceiver::handle_packet`], take digits from
//! [`DtmfReceiver::poll_digit`], and wake it at
//! [`DtmfReceiver::poll_timeout`] through [`DtmfReceiver::handle_timeout`]
//! so a digit whose end packets were all lost is still reported.

use std::collections::VecDeque;

use crate::time::{Duration, Instant};

/// Bytes of one event in the payload.
pub const EVENT_LEN: usize = 4;

/// Why a telephone-event payload is malformed (the peer's fault).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rfc4733Error {
    /// The payload is not one or more whole 4-byte events.
    #[error("telephone-event payload of {len} bytes: not a multiple of 4, or empty")]
    Length {
        /// The payload's length.
        len: usize,
    },
}

/// One event block (RFC 4733 §2.3, Figure 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// Event code: 0–15 are the DTMF digits (RFC 4733 §3.2).
    pub event: u8,
    /// E: the event has ended.
    pub end: bool,
    /// Power level as −dBm0, 0–63 (6 bits).
    pub volume: u8,
    /// Duration so far in RTP clock units from the event's timestamp.
    pub duration: u16,
}

impl TelephoneEvent {
    /// Parse a payload holding exactly one event. The reserved R bit is
    /// ignored (RFC 4733 §2.3).
    pub fn parse(payload: &[u8]) -> Result<TelephoneEvent, Rfc4733Error> {
        match *payload {
            [event, flags, d0, d1] => Ok(TelephoneEvent {
                event,
                end: flags & 0x80 != 0,
                volume: flags & 0x3f,
                duration: u16::from_be_bytes([d0, d1]),
            }),
            _ => Err(Rfc4733Error::Length { len: payload.len() }),
        }
    }

    /// The 4 payload bytes (R is sent as 0; volume is masked to 6 bits).
    pub fn to_bytes(&self) -> [u8; EVENT_LEN] {
        let d = self.duration.to_be_bytes();
        [
            self.event,
            (if self.end { 0x80 } else { 0 }) | (self.volume & 0x3f),
            d[0],
            d[1],
        ]
    }

    /// The DTMF digit, for events 0–15.
    pub fn digit(&self) -> Option<char> {
        digit_for_event(self.event)
    }
}

/// The events of a payload: one, or several packed back to back
/// (RFC 4733 §2.5.1.5), each 4 bytes. Checks the length before yielding.
pub fn events(payload: &[u8]) -> Result<impl Iterator<Item = TelephoneEvent> + '_, Rfc4733Error> {
    if payload.is_empty() || !payload.len().is_multiple_of(EVENT_LEN) {
        return Err(Rfc4733Error::Length { len: payload.len() });
    }
    Ok(payload
        .chunks_exact(EVENT_LEN)
        .filter_map(|c| TelephoneEvent::parse(c).ok()))
}

const DIGITS: &[u8; 16] = b"0123456789*#ABCD";

/// The DTMF digit of an event code (RFC 4733 §3.2: 0–9, 10 `*`, 11 `#`,
/// 12–15 `A`–`D`).
pub fn digit_for_event(event: u8) -> Option<char> {
    DIGITS.get(usize::from(event)).map(|&b| b as char)
}

/// The event code of a DTMF digit (`a`–`d` accepted as `A`–`D`).
pub fn event_for_digit(digit: char) -> Option<u8> {
    let up = digit.to_ascii_uppercase();
    DIGITS
        .iter()
        .position(|&b| b as char == up)
        .map(|i| i as u8)
}

/// A digit the receiver saw, once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Digit {
    /// `0`–`9`, `*`, `#`, `A`–`D`.
    pub digit: char,
    /// How long it was pressed, as far as the packets that arrived tell.
    pub duration_ms: u32,
}

/// How long the receiver waits after an event's last packet before it
/// reports the digit without having seen an end packet. Senders update at
/// least every 50 ms (RFC 4733 §2.5.1.2); a digit reported by timeout only
/// loses precision in its duration, never its identity (later packets of
/// the same event are still recognised and ignored).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(250);

/// A segment boundary of a long event (RFC 4733 §2.5.1.3) only comes once
/// the duration field is near its 16-bit maximum; a new timestamp after a
/// shorter segment is a new event.
const MIN_SEGMENT: u64 = 0x8000;

/// Timestamps of finished events remembered to ignore their stragglers
/// (the retransmitted end packets, late updates).
const RECENT: usize = 8;

/// The event in progress.
#[derive(Debug, Clone, Copy)]
struct Current {
    /// Timestamp of the current segment.
    ts: u32,
    event: u8,
    /// Duration of earlier segments (long events).
    before: u64,
    /// Highest duration seen in this segment, extended past 16 bits for
    /// senders that let the field wrap.
    seg_max: u64,
    /// Last raw duration field seen and the number of wraps.
    raw_last: u16,
    wraps: u64,
    /// Already reported (by timeout); later packets are absorbed.
    reported: bool,
    last_at: Instant,
}

impl Current {
    fn new(ts: u32, ev: TelephoneEvent, now: Instant) -> Current {
        Current {
            ts,
            event: ev.event,
            before: 0,
            seg_max: u64::from(ev.duration),
            raw_last: ev.duration,
            wraps: 0,
            reported: false,
            last_at: now,
        }
    }

    fn update(&mut self, duration: u16, now: Instant) {
        if duration < self.raw_last && self.raw_last - duration > 0x8000 {
            self.wraps += 1;
        }
        self.raw_last = duration;
        self.seg_max = self
            .seg_max
            .max(self.wraps * 0x1_0000 + u64::from(duration));
        self.last_at = now;
    }

    fn total(&self) -> u64 {
        self.before + self.seg_max
    }
}

/// Receives RFC 4733 DTMF and reports each digit exactly once.
///
/// - All packets of an event share its RTP timestamp: that is the event's
///   identity. Retransmitted end packets (RFC 4733 §2.5.1.4) and late
///   updates of a finished event are ignored.
/// - The digit is reported at its end packet; if the end packets were
///   lost, when a packet with a new timestamp arrives or at
///   [`DtmfReceiver::poll_timeout`]. A lost first (marker) packet changes
///   nothing.
/// - The same digit pressed again has a new timestamp: a second digit.
/// - A long event split into segments (RFC 4733 §2.5.1.3: a new timestamp
///   without the marker, the same event code, contiguous with a segment
///   that reached at least 0x8000 units) stays one digit; a duration field
///   that wraps within a segment is extended past 16 bits.
/// - Packed events (RFC 4733 §2.5.1.5) start at the packet's timestamp
///   plus the durations of the events before them.
/// - Event codes above 15 (not DTMF) are ignored.
#[derive(Debug)]
pub struct DtmfReceiver {
    clock_rate: u32,
    timeout: Duration,
    current: Option<Current>,
    recent: [Option<u32>; RECENT],
    recent_next: usize,
    out: VecDeque<Digit>,
}

impl DtmfReceiver {
    /// A receiver for events with `clock_rate` (8000 with G.711) and
    /// [`DEFAULT_TIMEOUT`].
    pub fn new(clock_rate: u32) -> DtmfReceiver {
        DtmfReceiver {
            clock_rate: clock_rate.max(1),
            timeout: DEFAULT_TIMEOUT,
            current: None,
            recent: [None; RECENT],
            recent_next: 0,
            out: VecDeque::new(),
        }
    }

    /// Set how long to wait for a lost end packet.
    pub fn with_timeout(mut self, timeout: Duration) -> DtmfReceiver {
        self.timeout = timeout;
        self
    }

    /// Feed one telephone-event packet: its RTP timestamp and marker and
    /// its payload. A malformed payload changes nothing.
    pub fn handle_packet(
        &mut self,
        ts: u32,
        marker: bool,
        payload: &[u8],
        now: Instant,
    ) -> Result<(), Rfc4733Error> {
        let mut start = ts;
        for (i, ev) in events(payload)?.enumerate() {
            self.handle_event(start, marker && i == 0, ev, now);
            start = start.wrapping_add(u32::from(ev.duration));
        }
        Ok(())
    }

    /// The next digit to hand on.
    #[must_use]
    pub fn poll_digit(&mut self) -> Option<Digit> {
        self.out.pop_front()
    }

    /// When to call [`DtmfReceiver::handle_timeout`]: an event in progress
    /// not yet reported, `timeout` after its last packet.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.current
            .filter(|c| !c.reported)
            .map(|c| c.last_at + self.timeout)
    }

    /// Report an event whose end never came, once its deadline has passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        let timeout = self.timeout;
        if let Some(c) = self.current.as_mut() {
            if !c.reported && now >= c.last_at + timeout {
                c.reported = true;
                let c = *c;
                self.report(&c);
            }
        }
    }

    fn handle_event(&mut self, ts: u32, marker: bool, ev: TelephoneEvent, now: Instant) {
        if ev.event > 15 || self.recent.contains(&Some(ts)) {
            return;
        }
        match self.current {
            Some(mut c) if c.ts == ts => {
                c.update(ev.duration, now);
                self.current = Some(c);
            }
            Some(mut c) if !marker && c.event == ev.event && continues(&c, ts) => {
                // The next segment of a long event.
                self.remember(c.ts);
                c.before += c.seg_max;
                c.ts = ts;
                c.seg_max = u64::from(ev.duration);
                c.raw_last = ev.duration;
                c.wraps = 0;
                c.last_at = now;
                self.current = Some(c);
            }
            other => {
                if let Some(c) = other {
                    // Its end packets were lost: it is over now.
                    self.finish(c);
                }
                self.current = Some(Current::new(ts, ev, now));
            }
        }
        if ev.end {
            if let Some(c) = self.current {
                self.finish(c);
            }
        }
    }

    fn finish(&mut self, c: Current) {
        if !c.reported {
            self.report(&c);
        }
        self.remember(c.ts);
        self.current = None;
    }

    fn report(&mut self, c: &Current) {
        if let Some(digit) = digit_for_event(c.event) {
            let ms = c.total() * 1000 / u64::from(self.clock_rate);
            self.out.push_back(Digit {
                digit,
                duration_ms: u32::try_from(ms).unwrap_or(u32::MAX),
            });
        }
    }

    fn remember(&mut self, ts: u32) {
        self.recent[self.recent_next] = Some(ts);
        self.recent_next = (self.recent_next + 1) % RECENT;
    }
}

/// Whether a new timestamp `ts` continues `c` as its next segment.
fn continues(c: &Current, ts: u32) -> bool {
    let delta = u64::from(ts.wrapping_sub(c.ts));
    c.seg_max >= MIN_SEGMENT && delta >= c.seg_max.min(0xffff) && delta <= 0xffff
}

/// Why a digit cannot be sent (a caller's mistake, not the peer's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DtmfSendError {
    /// Not one of `0`–`9`, `*`, `#`, `A`–`D`.
    #[error("{0:?} is not a DTMF digit")]
    Digit(char),
    /// Volume above 63 (−dBm0, 6 bits).
    #[error("volume {0} out of 0..=63")]
    Volume(u8),
    /// Zero duration or interval, or a duration that needs segments.
    #[error("duration {duration} with update interval {interval} clock units not sendable")]
    Duration {
        /// The digit's duration in clock units.
        duration: u64,
        /// The update interval in clock units.
        interval: u64,
    },
}

/// One packet of a generated event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventPacket {
    /// When to send it, from the event's first packet.
    pub at: Duration,
    /// The event's first packet (RTP marker).
    pub start: bool,
    /// Timestamp offset from the event's start: always 0, as every packet
    /// of one event carries the start timestamp (RFC 4733 §2.5.1.1).
    pub ts_offset: u32,
    /// The payload's duration field, in clock units.
    pub duration: u16,
    /// The payload.
    pub payload: [u8; EVENT_LEN],
}

/// The packets for one DTMF digit (RFC 4733 §2.5.1): a first packet with
/// the marker, an update every `interval` (20 ms by default, the shard's
/// tick: RFC 4733 §2.5.1.2 lets updates follow the audio packetisation),
/// each carrying the duration so far, the last update with E set, and that
/// end packet twice more on the next ticks (§2.5.1.4): three end packets.
///
/// Wrap each with [`crate::media::rtp::OutStream::generated_event`]
/// (`start`, `duration`), which gives them all the event's timestamp.
#[derive(Debug, Clone)]
pub struct DtmfSender {
    event: u8,
    volume: u8,
    total: u32,
    interval: u32,
    tick: Duration,
    next: u32,
}

/// The volume the sender uses unless told: 10 (−10 dBm0), what SIPp and
/// most phones send.
pub const DEFAULT_VOLUME: u8 = 10;

impl DtmfSender {
    /// The packets for `digit` pressed for `duration`, updated every
    /// `interval`, at `clock_rate`.
    pub fn new(
        digit: char,
        duration: Duration,
        interval: Duration,
        clock_rate: u32,
    ) -> Result<DtmfSender, DtmfSendError> {
        let event = event_for_digit(digit).ok_or(DtmfSendError::Digit(digit))?;
        let units = |d: Duration| d.as_nanos() * u128::from(clock_rate) / 1_000_000_000;
        let (total, step) = (units(duration), units(interval));
        let err = DtmfSendError::Duration {
            duration: u64::try_from(total).unwrap_or(u64::MAX),
            interval: u64::try_from(step).unwrap_or(u64::MAX),
        };
        if total == 0 || step == 0 || total > 0xffff {
            return Err(err);
        }
        Ok(DtmfSender {
            event,
            volume: DEFAULT_VOLUME,
            total: total as u32,
            interval: u32::try_from(step.min(0xffff)).map_err(|_| err)?,
            tick: interval,
            next: 0,
        })
    }

    /// Use `volume` (−dBm0, 0–63) instead of [`DEFAULT_VOLUME`].
    pub fn with_volume(mut self, volume: u8) -> Result<DtmfSender, DtmfSendError> {
        if volume > 63 {
            return Err(DtmfSendError::Volume(volume));
        }
        self.volume = volume;
        Ok(self)
    }

    fn updates(&self) -> u32 {
        self.total.div_ceil(self.interval)
    }
}

impl Iterator for DtmfSender {
    type Item = EventPacket;

    fn next(&mut self) -> Option<EventPacket> {
        let k = self.next;
        let updates = self.updates();
        if k >= updates + 2 {
            return None;
        }
        self.next += 1;
        let duration = ((k + 1) * self.interval).min(self.total) as u16;
        let ev = TelephoneEvent {
            event: self.event,
            end: k + 1 >= updates,
            volume: self.volume,
            duration,
        };
        Some(EventPacket {
            at: self.tick * k,
            start: k == 0,
            ts_offset: 0,
            duration,
            payload: ev.to_bytes(),
        })
    }
}

#[cfg(test)]
mod tests;
