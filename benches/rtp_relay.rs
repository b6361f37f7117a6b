//! Media hot path per packet: parse + rewrite of one 172-byte PCMA packet
//! (12-byte header, 160 bytes = 20 ms) through `OutStream::relay`, and the
//! RFC 4733 receiver per telephone-event packet. At 2,000 relayed calls,
//! both directions, a shard sees 200,000 packets a second.
//!
//! And the whole per-packet decision of a media shard (`Shard::handle_rtp`:
//! leg lookup, RTP/RTCP demux, parse, latching check, receive statistics,
//! payload-type classification, peer lookup, payload-type rewrite, the
//! outgoing stream rewrite), same codec and with PCMA→PCMU transcoding.
//!
//! `cargo bench --bench rtp_relay -- --warm-up-time 1 --measurement-time 3`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hotline::media::rfc4733::{DtmfReceiver, TelephoneEvent};
use hotline::media::rtp::{write_header, OutStream, Relayed, Rtp};
use hotline::media::shard::{Forward, LegParams, MediaCommand, Shard, ShardConfig};
use hotline::media::Codec;
use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Duration;

fn relay(c: &mut Criterion) {
    let t0 = hotline::time::now();
    let mut g = c.benchmark_group("rtp");
    g.throughput(Throughput::Elements(1));

    let mut pkt = [0xd5u8; 172];
    let _ = write_header(&mut pkt, 8, false, 0, 0, 0x1234_5678);
    g.bench_function("parse_172B", |b| {
        b.iter(|| {
            let p = Rtp::parse(black_box(&pkt)).unwrap();
            black_box((p.sequence(), p.timestamp(), p.payload().len()))
        })
    });

    let mut out = OutStream::new(0x5eed, 8000, 1, 2);
    out.map_payload_type(101, 96);
    let (mut seq, mut ts) = (0u16, 0u32);
    let mut now = t0;
    g.bench_function("relay_pcma_172B", |b| {
        b.iter(|| {
            seq = seq.wrapping_add(1);
            ts = ts.wrapping_add(160);
            now += Duration::from_millis(20);
            // The header as it arrives from the peer, then the rewrite.
            let _ = write_header(&mut pkt, 8, false, seq, ts, 0x1234_5678);
            let r = out.relay(black_box(&mut pkt), now).unwrap();
            debug_assert_eq!(r, Relayed::Send);
            black_box(r)
        })
    });

    let mut rx = DtmfReceiver::new(8000);
    let (mut ev_ts, mut k) = (0u32, 0u16);
    g.bench_function("dtmf_receiver_packet", |b| {
        b.iter(|| {
            // Events of 10 packets: 7 updates, 3 ends, then a new timestamp.
            k = (k + 1) % 10;
            if k == 0 {
                ev_ts = ev_ts.wrapping_add(8000);
            }
            let payload = TelephoneEvent {
                event: 5,
                end: k >= 7,
                volume: 10,
                duration: k.min(7) * 160,
            }
            .to_bytes();
            now += Duration::from_millis(20);
            rx.handle_packet(ev_ts, k == 0, black_box(&payload), now)
                .unwrap();
            black_box(rx.poll_digit())
        })
    });
    g.finish();
}

fn shard_with(b_codec: Codec) -> Shard {
    let t0 = hotline::time::now();
    let mut s = Shard::new(ShardConfig::default(), 20_000, 29_998, 1, t0);
    let legs = [
        (20_000, "192.0.2.10:4000", Codec::Pcma),
        (20_002, "192.0.2.20:5000", b_codec),
    ];
    for (leg, remote, codec) in legs {
        s.handle_command(MediaCommand::Open { leg }, t0);
        s.handle_command(
            MediaCommand::Update {
                leg,
                params: LegParams {
                    remote: remote.parse().ok(),
                    codec,
                    voice_pt: codec.payload_type(),
                    event_pt: Some(101),
                    send: true,
                    recv: true,
                    remote_rtcp: None,
                    rtcp_mux: false,
                },
            },
            t0,
        );
    }
    s.handle_command(
        MediaCommand::Connect {
            a: 20_000,
            b: 20_002,
        },
        t0,
    );
    s
}

fn shard(c: &mut Criterion) {
    let mut g = c.benchmark_group("shard");
    g.throughput(Throughput::Elements(1));
    let from: SocketAddr = "192.0.2.10:4000".parse().unwrap();
    for (name, codec) in [
        ("handle_rtp_relay_172B", Codec::Pcma),
        ("handle_rtp_transcode_172B", Codec::Pcmu),
    ] {
        let mut s = shard_with(codec);
        let mut now = hotline::time::now();
        let mut pkt = [0xd5u8; 172];
        let (mut seq, mut ts) = (0u16, 0u32);
        g.bench_function(name, |b| {
            b.iter(|| {
                seq = seq.wrapping_add(1);
                ts = ts.wrapping_add(160);
                now += Duration::from_millis(20);
                let _ = write_header(&mut pkt, 8, false, seq, ts, 0x1234_5678);
                let f = s.handle_rtp(20_000, from, black_box(&mut pkt), 172, now);
                debug_assert!(matches!(f, Forward::Send { .. }));
                black_box(f)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, relay, shard);
criterion_main!(benches);
