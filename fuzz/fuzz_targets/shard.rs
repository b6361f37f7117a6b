//! Any datagrams into a media shard with two connected legs, one of them
//! in a conference, commands and ticks between: never a panic; a relayed
//! packet always parses as RTP with the peer leg's payload types and goes
//! to the peer leg's socket.
//!
//! Input: records `[op, len, bytes…]`; op picks the leg (A, B, an unknown
//! port), a tick, or a command (play, digit, join/leave, hold, close and
//! reopen), and the time step.
#![no_main]

use hotline::media::rtp::Rtp;
use hotline::media::shard::{
    Forward, LegParams, MediaCommand, Playable, Shard, ShardConfig,
};
use hotline::media::tone::{Tone, ToneSignal};
use hotline::media::Codec;
use libfuzzer_sys::fuzz_target;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

const A: u16 = 10_000;
const B: u16 = 10_002;

fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(hotline::time::now)
}

fn params(remote: &str, codec: Codec, event: u8, send: bool) -> LegParams {
    LegParams {
        remote: remote.parse().ok(),
        codec,
        voice_pt: codec.payload_type(),
        event_pt: Some(event),
        send,
        recv: true,
        remote_rtcp: None,
        rtcp_mux: event == 96,
    }
}

fn open(s: &mut Shard, now: Instant) {
    for (leg, r, c, e) in [
        (A, "10.0.0.1:4000", Codec::Pcma, 101),
        (B, "10.0.0.2:5000", Codec::Pcmu, 96),
    ] {
        s.handle_command(MediaCommand::Open { leg }, now);
        s.handle_command(
            MediaCommand::Update {
                leg,
                params: params(r, c, e, true),
            },
            now,
        );
    }
    s.handle_command(MediaCommand::Connect { a: A, b: B }, now);
}

fuzz_target!(|data: &[u8]| {
    let mut now = base();
    let mut s = Shard::new(ShardConfig::default(), A, 10_010, 3, now);
    open(&mut s, now);
    static RING: OnceLock<Arc<ToneSignal>> = OnceLock::new();
    let ring = RING.get_or_init(|| Arc::new(ToneSignal::new(Tone::Ringback)));
    let mut i = 0;
    while i + 2 <= data.len() {
        let op = data[i];
        let len = usize::from(data[i + 1]).min(data.len() - i - 2);
        let mut bytes = data[i + 2..i + 2 + len].to_vec();
        i += 2 + len;
        now += Duration::from_millis(u64::from(op >> 4) * 7);
        let (leg, from): (u16, SocketAddr) = match op % 16 {
            0..=4 => (A, "10.0.0.1:4000".parse().unwrap()),
            5..=8 => (B, "10.0.0.2:5000".parse().unwrap()),
            9 => (10_004, "10.0.0.3:6000".parse().unwrap()),
            10 => {
                s.handle_timeout(now);
                while let Some(t) = s.poll_transmit() {
                    assert!(Rtp::parse(&t.data).is_ok());
                }
                continue;
            }
            11 => {
                let cmd = match len % 6 {
                    0 => MediaCommand::Play {
                        leg: A,
                        what: Playable::Tone(ring.clone()),
                        repeat: len % 2 == 0,
                        barge_in: true,
                    },
                    1 => MediaCommand::SendDigit {
                        leg: B,
                        digit: '7',
                        duration: Duration::from_millis(100),
                    },
                    2 => MediaCommand::Join { conf: 1, leg: A },
                    3 => MediaCommand::Leave { leg: A },
                    4 => MediaCommand::Update {
                        leg: B,
                        params: params("10.0.0.2:5000", Codec::Pcmu, 96, len % 4 == 0),
                    },
                    _ => MediaCommand::Close { leg: A },
                };
                s.handle_command(cmd, now);
                if !s.has_leg(A) {
                    open(&mut s, now);
                }
                continue;
            }
            _ => (A, "198.51.100.9:999".parse().unwrap()),
        };
        let n = bytes.len();
        if let Forward::Send { leg: out, len, .. } = s.handle_rtp(leg, from, &mut bytes, n, now) {
            assert!(out == A || out == B);
            assert_ne!(out, leg);
            let p = Rtp::parse(&bytes[..len]).expect("relayed packets parse");
            let pt = p.payload_type();
            if out == B {
                assert!(pt == 0 || pt == 96, "pt {pt} to B");
            } else {
                assert!(pt == 8 || pt == 101, "pt {pt} to A");
            }
        }
        while s.poll_event().is_some() {}
    }
});
