//! The two per-byte costs of receiving, alone: unmasking (`wsproto::internals::apply_mask`) and UTF-8
//! validation (`core::str::from_utf8`, and `simdutf8` as the reference the fastest peers use),
//! each beside a memcpy of the same bytes.
//!
//! `cargo bench -p wsproto-benches --bench primitives`

mod common;

use common::Rng;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

const SIZES: &[(&str, usize)] = &[
    ("16B", 16),
    ("1KiB", 1 << 10),
    ("64KiB", 64 << 10),
    ("1MiB", 1 << 20),
];

/// The byte loop every masking implementation starts from, for scale.
fn mask_bytewise(buf: &mut [u8], key: [u8; 4]) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b ^= key[i % 4];
    }
}

fn bench_mask(c: &mut Criterion) {
    let mut rng = Rng::new(3);
    let key = [0x37, 0xfa, 0x21, 0x3d];
    for &(label, size) in SIZES {
        let src = rng.bytes(size + 1);
        let mut buf = src.clone();
        let mut group = c.benchmark_group(format!("mask_{label}"));
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function("apply_mask", |b| {
            b.iter(|| wsproto::internals::apply_mask(black_box(&mut buf[..size]), key, 0))
        });
        // A payload that starts one byte into the buffer, as after a 2-byte header + key.
        group.bench_function("apply_mask-unaligned", |b| {
            b.iter(|| wsproto::internals::apply_mask(black_box(&mut buf[1..=size]), key, 1))
        });
        group.bench_function("bytewise", |b| {
            b.iter(|| mask_bytewise(black_box(&mut buf[..size]), key))
        });
        group.bench_function("memcpy", |b| {
            b.iter(|| black_box(&mut buf[..size]).copy_from_slice(black_box(&src[..size])))
        });
        group.finish();
    }
}

fn bench_utf8(c: &mut Criterion) {
    let mut rng = Rng::new(4);
    for (kind, text) in [
        ("ascii", common::ascii_text(&mut rng, 1 << 20)),
        ("multibyte", common::multibyte_text(&mut rng, 1 << 20)),
    ] {
        for &(label, size) in &SIZES[1..] {
            // A prefix cut on a character boundary.
            let mut end = size;
            while std::str::from_utf8(&text[..end]).is_err() {
                end -= 1;
            }
            let bytes = &text[..end];
            let mut dst = vec![0; end];
            let mut group = c.benchmark_group(format!("utf8_{kind}_{label}"));
            group.throughput(Throughput::Bytes(end as u64));
            group.bench_function("core::str::from_utf8", |b| {
                b.iter(|| core::str::from_utf8(black_box(bytes)).is_ok())
            });
            group.bench_function("simdutf8::basic", |b| {
                b.iter(|| simdutf8::basic::from_utf8(black_box(bytes)).is_ok())
            });
            group.bench_function("simdutf8::compat", |b| {
                b.iter(|| simdutf8::compat::from_utf8(black_box(bytes)).is_ok())
            });
            group.bench_function("memcpy", |b| {
                b.iter(|| black_box(&mut dst[..]).copy_from_slice(black_box(bytes)))
            });
            group.finish();
        }
    }
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = bench_mask, bench_utf8
}
criterion_main!(benches);
