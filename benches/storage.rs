//! Storage throughput: appends with and without a durable flush per batch, and a sequential read.
//!
//! Run: `cargo bench --bench storage`. Each append sample uses a fresh log in a temp dir so
//! disk usage stays bounded; criterion reports records/s (Throughput::Elements).

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use yakt::storage::{LogOptions, SegmentLog, StoredEntry};

const PAYLOAD: usize = 200;

fn batch(start: u64, n: usize) -> Vec<StoredEntry> {
    (0..n as u64)
        .map(|k| StoredEntry {
            index: start + k,
            term: 1,
            timestamp_ms: 1_700_000_000_000 + start + k,
            payload: vec![0xAB; PAYLOAD],
        })
        .collect()
}

fn append(c: &mut Criterion) {
    let mut g = c.benchmark_group("append");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    for durable in [false, true] {
        for n in [1usize, 64, 1024] {
            g.throughput(Throughput::Elements(n as u64));
            let name = if durable {
                "sync_each_batch"
            } else {
                "no_sync"
            };
            g.bench_with_input(BenchmarkId::new(name, n), &n, |b, &n| {
                b.iter_custom(|iters| {
                    let dir = tempfile::tempdir().expect("tempdir");
                    let (log, _) =
                        SegmentLog::open(dir.path(), LogOptions::default()).expect("open");
                    // Build batches outside the timed loop.
                    let batches: Vec<_> = (0..iters).map(|i| batch(1 + i * n as u64, n)).collect();
                    let t = Instant::now();
                    for b in &batches {
                        log.append(b).expect("append");
                        if durable {
                            log.sync().expect("sync");
                        }
                    }
                    t.elapsed()
                })
            });
        }
    }
    g.finish();
}

fn read(c: &mut Criterion) {
    const N: u64 = 100_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, _) = SegmentLog::open(dir.path(), LogOptions::default()).expect("open");
    for start in (1..=N).step_by(1000) {
        log.append(&batch(start, 1000)).expect("append");
    }
    log.sync().expect("sync");
    let mut g = c.benchmark_group("read");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(3));
    g.throughput(Throughput::Elements(N));
    g.bench_function("sequential_100k", |b| {
        b.iter(|| {
            let mut next = 1;
            let mut total = 0usize;
            while next <= N {
                let got = log.read_range(next, N + 1, Some(1 << 20)).expect("read");
                next += got.len() as u64;
                total += got.len();
            }
            assert_eq!(total as u64, N);
        })
    });
    g.finish();
}

criterion_group!(benches, append, read);
criterion_main!(benches);
