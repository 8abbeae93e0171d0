//! `stall`: a one-node cluster holding an image of `--entities` entities (pre-filled by C
//! writers, or reused from `--data-root`), then writers at a steady `--rate` while the node takes
//! snapshots (`--snapshot-every 1` unless given: one every entities/16 entries) and a loop of
//! full `/get_metadata` reads runs: the write latency while both happen, and how many of each
//! happened in the window. Before the image was copy-on-write, each snapshot encode and each
//! full read held the image's lock and apply (so every write) waited behind it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::catchup::{self, LogBench};
use crate::common::{median, scheme};
use crate::write;

/// What a stall run is given besides the pre-fill.
pub struct StallRun {
    /// Total writes/s of the steady writers.
    pub rate: f64,
    /// Steady writers.
    pub concurrency: usize,
    /// Seconds of the measured window.
    pub secs: u64,
    /// Full `/get_metadata` loops running at once (0: none, for a baseline of the same writes).
    pub metadata_readers: usize,
}

/// Newest snapshot offset the node reports in `/cluster` (0 when none).
async fn snapshot_offset(http: &reqwest::Client, addr: &str) -> Option<u64> {
    let v: serde_json::Value = http
        .get(format!("{}://{addr}/cluster", scheme()))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    Some(v["snapshot"]["offset"].as_u64().unwrap_or(0))
}

/// Full `/get_metadata` reads one after another until `stop`: (count, ms each, bytes of the last).
async fn read_loop(
    http: reqwest::Client,
    addr: String,
    stop: Arc<AtomicBool>,
) -> (u64, Vec<f64>, u64) {
    let (mut ms, mut bytes) = (Vec::new(), 0);
    while !stop.load(Ordering::Relaxed) {
        let t0 = Instant::now();
        let body = match http
            .get(format!("{}://{addr}/get_metadata", scheme()))
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => r.bytes().await.ok(),
            _ => None,
        };
        match body {
            Some(b) => {
                bytes = b.len() as u64;
                ms.push(t0.elapsed().as_secs_f64() * 1000.0);
            }
            None => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    (ms.len() as u64, ms, bytes)
}

/// Counts the snapshots the node reports taking until `stop` (polled every 50 ms).
async fn snapshot_watch(
    http: reqwest::Client,
    addr: String,
    stop: Arc<AtomicBool>,
    taken: Arc<AtomicU64>,
) {
    let mut last = snapshot_offset(&http, &addr).await.unwrap_or(0);
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if let Some(now) = snapshot_offset(&http, &addr).await {
            if now > last {
                taken.fetch_add(1, Ordering::Relaxed);
                last = now;
            }
        }
    }
}

/// Pre-fills (or reuses) the node, then measures the window.
pub async fn run(
    http: &reqwest::Client,
    long: &reqwest::Client,
    bench: &LogBench<'_>,
    run: &StallRun,
) -> anyhow::Result<serde_json::Value> {
    let (spawned, start_offset) = catchup::prepare(long, bench).await?;
    let addr = spawned.addrs[0].clone();
    let pid = spawned.children[0].id();
    if !bench.quiet {
        eprintln!(
            "image at offset {start_offset}; {} writes/s for {} s with snapshots and /get_metadata in a loop",
            run.rate, run.secs
        );
    }
    let setup = write::setup(http, &addr).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let taken = Arc::new(AtomicU64::new(0));
    let reads: Vec<_> = (0..run.metadata_readers)
        .map(|_| tokio::spawn(read_loop(long.clone(), addr.clone(), stop.clone())))
        .collect();
    let watch = tokio::spawn(snapshot_watch(
        http.clone(),
        addr.clone(),
        stop.clone(),
        taken.clone(),
    ));
    let w = write::run_for(
        http,
        std::slice::from_ref(&addr),
        run.concurrency,
        Some(run.rate),
        run.secs as f64,
        &setup,
        bench.quiet,
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    let (mut reads_done, mut read_ms, mut body_bytes) = (0, Vec::new(), 0);
    for r in reads {
        let (n, ms, bytes) = r.await?;
        reads_done += n;
        read_ms.extend(ms);
        body_bytes = body_bytes.max(bytes);
    }
    let _ = watch.await;
    read_ms.sort_by(f64::total_cmp);
    let rss = crate::common::rss_mib(pid);
    drop(spawned);
    Ok(json!({
        "mode": "stall",
        "start_offset": start_offset,
        "rate": run.rate,
        "metadata_readers": run.metadata_readers,
        "seconds": run.secs,
        "write": w,
        "snapshots_taken": taken.load(Ordering::Relaxed),
        "get_metadata": {
            "reads": reads_done,
            "median_ms": if read_ms.is_empty() { 0.0 } else { median(&mut read_ms) },
            "max_ms": read_ms.last().copied().unwrap_or(0.0),
            "body_bytes": body_bytes,
        },
        "rss_mib_after": rss,
    }))
}

/// One line for a human.
pub fn print(r: &serde_json::Value) {
    let w = &r["write"];
    println!(
        "stall: image at offset {}; {} writes at {} /s: latency ms p50 {:.2} p99 {:.2} max {:.2} ({} failed); {} snapshots, {} full /get_metadata (median {:.0} ms, {} bytes)",
        r["start_offset"],
        w["committed"],
        r["rate"],
        w["latency_ms"]["p50"].as_f64().unwrap_or(0.0),
        w["latency_ms"]["p99"].as_f64().unwrap_or(0.0),
        w["latency_ms"]["max"].as_f64().unwrap_or(0.0),
        w["failed"],
        r["snapshots_taken"],
        r["get_metadata"]["reads"],
        r["get_metadata"]["median_ms"].as_f64().unwrap_or(0.0),
        r["get_metadata"]["body_bytes"],
    );
}
