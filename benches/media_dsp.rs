//! Media-plane DSP costs per 20 ms tick: in-band DTMF detection of one
//! 160-sample frame (speech-like input, so every block runs all checks it
//! reaches), mixing one frame for 3 and 8 parties, and the statistics
//! update for one received packet.
//!
//! `cargo bench --bench media_dsp -- --warm-up-time 1 --measurement-time 3`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hotline::media::inband::InbandDetector;
use hotline::media::mixer::{Frame, Mixer};
use hotline::media::stats::RtpStats;
use hotline::media::FRAME_SAMPLES;
use std::hint::black_box;
use std::time::Duration;

/// One second of a two-tone signal plus a little deterministic "noise",
/// in 160-sample frames.
fn signal() -> Vec<Frame> {
    let mut x = 12_345u32;
    (0..50)
        .map(|f| {
            let mut frame = [0i16; FRAME_SAMPLES];
            for (n, s) in frame.iter_mut().enumerate() {
                let t = (f * FRAME_SAMPLES + n) as f64 / 8000.0;
                x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let noise = f64::from((x >> 20) as i32 - 2048) * 0.5;
                let tone = 4000.0 * (2.0 * std::f64::consts::PI * 770.0 * t).sin()
                    + 4000.0 * (2.0 * std::f64::consts::PI * 1336.0 * t).sin();
                *s = if f % 10 < 5 {
                    tone + noise
                } else {
                    noise * 8.0
                } as i16;
            }
            frame
        })
        .collect()
}

fn inband(c: &mut Criterion) {
    let frames = signal();
    let mut g = c.benchmark_group("inband");
    g.throughput(Throughput::Elements(1));
    g.bench_function("detect_frame_160", |b| {
        let mut det = InbandDetector::new();
        let mut i = 0;
        b.iter(|| {
            det.push(black_box(&frames[i % frames.len()]));
            i += 1;
            black_box(det.poll_digit())
        })
    });
    g.finish();
}

fn mixer(c: &mut Criterion) {
    let frames = signal();
    let mut g = c.benchmark_group("mixer");
    g.throughput(Throughput::Elements(1));
    for n in [3u8, 8] {
        g.bench_function(format!("frame_{n}_parties"), |b| {
            let mut m = Mixer::new();
            for id in 0..n {
                m.join(id).expect("join");
            }
            b.iter(|| {
                for id in 0..n {
                    m.put(id, &frames[usize::from(id)]).expect("put");
                }
                let mut acc = 0i32;
                for (_, out) in m.mix() {
                    acc += i32::from(out[0]);
                }
                black_box(acc)
            })
        });
    }
    g.finish();
}

fn stats(c: &mut Criterion) {
    let mut g = c.benchmark_group("stats");
    g.throughput(Throughput::Elements(1));
    g.bench_function("on_receive_packet", |b| {
        let mut st = RtpStats::new();
        let base = hotline::time::now();
        let mut i = 0u64;
        b.iter(|| {
            // Mostly in order; a gap every 50th packet, a repeat every 97th.
            i += 1;
            let seq = if i.is_multiple_of(97) {
                i - 1
            } else if i.is_multiple_of(50) {
                i + 1
            } else {
                i
            };
            let now = base + Duration::from_micros(20_000 * i + (i * 7919) % 3000);
            black_box(st.on_receive(now, 0x1234, seq as u16, (seq as u32).wrapping_mul(160), 160))
        })
    });
    g.finish();
}

criterion_group!(benches, inband, mixer, stats);
criterion_main!(benches);
