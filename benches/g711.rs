//! G.711 cost per 20 ms frame (160 samples): encode and decode for each law,
//! and A↔µ transcoding of a frame in place (what the relay does when the two
//! legs disagree). Also the encoder we did not ship, a leading-zeros segment
//! search (the same algorithm as the `const fn` in `src/media/g711.rs` that
//! builds the tables), so the table-vs-search choice stays measured.
//!
//! `cargo bench --bench g711 -- --warm-up-time 1 --measurement-time 3`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hotline::media::g711;
use hotline::media::FRAME_SAMPLES;
use std::hint::black_box;

/// Speech-like frame: a decaying mix spanning every segment of both laws.
fn frame() -> [i16; FRAME_SAMPLES] {
    let mut f = [0i16; FRAME_SAMPLES];
    for (i, s) in f.iter_mut().enumerate() {
        let t = i as f64 / 8000.0;
        let v = 12_000.0 * (2.0 * std::f64::consts::PI * 440.0 * t).sin()
            + 6_000.0
                * (2.0 * std::f64::consts::PI * 1_330.0 * t).sin()
                * (1.0 - i as f64 / FRAME_SAMPLES as f64);
        *s = v as i16;
    }
    f
}

fn alaw_encode_search(sample: i16) -> u8 {
    let (magnitude, sign) = if sample >= 0 {
        ((sample >> 4) as u16, 0x80u8)
    } else {
        ((!sample >> 4) as u16, 0x00u8)
    };
    let shift = (15 - (magnitude | 0x10).leading_zeros()) - 4;
    let segment = shift + u32::from(magnitude >= 0x10);
    let step = (magnitude >> shift) & 0x0F;
    ((segment << 4) as u8 | step as u8 | sign) ^ 0x55
}

fn ulaw_encode_search(sample: i16) -> u8 {
    let (magnitude, sign) = if sample >= 0 {
        ((sample >> 2) as u16, 0x80u8)
    } else {
        ((!sample >> 2) as u16, 0x00u8)
    };
    let biased = (magnitude + 33).min(0x1FFF);
    let segment = (15 - biased.leading_zeros()) - 5;
    let step = (biased >> (segment + 1)) & 0x0F;
    ((segment << 4) as u8 | step as u8 | sign) ^ 0x7F
}

fn bench(c: &mut Criterion) {
    let pcm = frame();
    let mut alaw = [0u8; FRAME_SAMPLES];
    let mut ulaw = [0u8; FRAME_SAMPLES];
    g711::encode_alaw(&pcm, &mut alaw).expect("same length");
    g711::encode_ulaw(&pcm, &mut ulaw).expect("same length");
    for (i, &s) in pcm.iter().enumerate() {
        assert_eq!(
            alaw_encode_search(s),
            alaw[i],
            "bench search encoder drifted"
        );
        assert_eq!(
            ulaw_encode_search(s),
            ulaw[i],
            "bench search encoder drifted"
        );
    }

    let mut g = c.benchmark_group("g711_frame");
    g.throughput(Throughput::Elements(FRAME_SAMPLES as u64));

    g.bench_function("alaw_encode", |b| {
        let mut out = [0u8; FRAME_SAMPLES];
        b.iter(|| {
            g711::encode_alaw(black_box(&pcm), &mut out).expect("same length");
            black_box(&out);
        });
    });
    g.bench_function("alaw_encode_search", |b| {
        let mut out = [0u8; FRAME_SAMPLES];
        b.iter(|| {
            for (o, &s) in out.iter_mut().zip(black_box(&pcm)) {
                *o = alaw_encode_search(s);
            }
            black_box(&out);
        });
    });
    g.bench_function("alaw_decode", |b| {
        let mut out = [0i16; FRAME_SAMPLES];
        b.iter(|| {
            g711::decode_alaw(black_box(&alaw), &mut out).expect("same length");
            black_box(&out);
        });
    });
    g.bench_function("ulaw_encode", |b| {
        let mut out = [0u8; FRAME_SAMPLES];
        b.iter(|| {
            g711::encode_ulaw(black_box(&pcm), &mut out).expect("same length");
            black_box(&out);
        });
    });
    g.bench_function("ulaw_encode_search", |b| {
        let mut out = [0u8; FRAME_SAMPLES];
        b.iter(|| {
            for (o, &s) in out.iter_mut().zip(black_box(&pcm)) {
                *o = ulaw_encode_search(s);
            }
            black_box(&out);
        });
    });
    g.bench_function("ulaw_decode", |b| {
        let mut out = [0i16; FRAME_SAMPLES];
        b.iter(|| {
            g711::decode_ulaw(black_box(&ulaw), &mut out).expect("same length");
            black_box(&out);
        });
    });
    g.bench_function("alaw_to_ulaw", |b| {
        let mut buf = alaw;
        b.iter(|| {
            g711::transcode_alaw_to_ulaw(black_box(&mut buf));
        });
    });
    g.bench_function("ulaw_to_alaw", |b| {
        let mut buf = ulaw;
        b.iter(|| {
            g711::transcode_ulaw_to_alaw(black_box(&mut buf));
        });
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
