//! Per message, by size: framing (encode, decode) and the session crypto
//! (seal, open) of one frame, both as the server does them.

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use protocol::crypto::{Psk, SessionKeys};
use protocol::frame::FrameCodec;

const SIZES: [usize; 4] = [64, 256, 1024, 4096];

fn keys() -> SessionKeys {
    let _ = Psk::generate();
    SessionKeys::derive(&[7u8; 32], &[9u8; 32])
}

fn frames(c: &mut Criterion) {
    let codec = FrameCodec::new(1 << 20);
    let mut g = c.benchmark_group("frame");
    for size in SIZES {
        let payload = vec![b'x'; size];
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::new("encode", size), &payload, |b, p| {
            let mut buf = BytesMut::with_capacity(size + 4);
            b.iter(|| {
                buf.clear();
                codec.encode(black_box(p), &mut buf).expect("fits");
            });
        });
        let frame = codec.to_frame(&payload).expect("fits");
        g.bench_with_input(BenchmarkId::new("decode", size), &frame, |b, f| {
            b.iter(|| {
                let mut buf = BytesMut::from(&f[..]);
                black_box(codec.decode(&mut buf).expect("valid"));
            });
        });
    }
    g.finish();
}

fn crypto(c: &mut Criterion) {
    let keys = keys();
    let mut g = c.benchmark_group("session crypto");
    for size in SIZES {
        let message = vec![b'm'; size];
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::new("seal into buffer", size), &message, |b, m| {
            let (mut sealer, _) = keys.server_text();
            let mut out = Vec::with_capacity(2 * size + 128);
            b.iter(|| {
                out.clear();
                sealer.seal_into(black_box(m), &mut out);
            });
        });
        g.bench_with_input(BenchmarkId::new("open", size), &message, |b, m| {
            // Openers insist on consecutive frames: open a fresh run each time.
            b.iter_custom(|iters| {
                let (mut sealer, _) = keys.server_text();
                let (_, mut opener) = keys.client_text();
                let tokens: Vec<String> = (0..iters).map(|_| sealer.seal(m)).collect();
                let t = std::time::Instant::now();
                for token in &tokens {
                    black_box(opener.open(token.as_bytes()).expect("authentic"));
                }
                t.elapsed()
            });
        });
    }
    g.finish();
}

criterion_group!(benches, frames, crypto);
criterion_main!(benches);
