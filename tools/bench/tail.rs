//! `tail`: S SSE readers on one node (or spread round-robin over several) while writers run at a
//! fixed rate; delivery lag from the leader's record timestamp to receipt (same machine, same
//! clock), and records/s per reader.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::{applied_offset, percentile};
use crate::sse::{self, Tally};
use crate::write;

#[allow(clippy::too_many_arguments)]
pub async fn run(
    http: &reqwest::Client,
    leader: &str,
    read_addrs: &[String],
    write_targets: &[String],
    readers: usize,
    rate: Option<f64>,
    concurrency: usize,
    secs: u64,
    quiet: bool,
) -> anyhow::Result<serde_json::Value> {
    let setup = write::setup(http, leader).await?;
    // The rate: given, or half of what an unthrottled 5 s write run reaches now.
    let (rate, max_rate) = match rate {
        Some(r) => (r, None),
        None => {
            if !quiet {
                eprintln!("tail: measuring the unthrottled write rate for 5 s");
            }
            let w =
                write::run_for(http, write_targets, concurrency, None, 5.0, &setup, quiet).await;
            let max = w["records_per_sec"].as_f64().unwrap_or(1000.0);
            (max / 2.0, Some(max))
        }
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    // From the lowest applied offset among the read nodes, so no reader starts past its node.
    let mut from = u64::MAX;
    for a in read_addrs {
        from = from.min(applied_offset(http, a).await? + 1);
    }
    let until = Arc::new(AtomicU64::new(u64::MAX));
    let seen = Arc::new(AtomicU64::new(0));
    let mut tallies = Vec::new();
    let mut tasks = Vec::new();
    // Readers on their own connections (a client whose pool never shares them).
    let rhttp = crate::common::client_builder()
        .no_proxy()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(readers)
        .build()?;
    for i in 0..readers {
        let t = Arc::new(Mutex::new(Tally::default()));
        tallies.push(t.clone());
        let (rhttp, addr, until, seen) = (
            rhttp.clone(),
            read_addrs[i % read_addrs.len()].clone(),
            until.clone(),
            seen.clone(),
        );
        tasks.push(tokio::spawn(async move {
            sse::read(&rhttp, &addr, from, until, true, seen, t).await
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    if !quiet {
        eprintln!(
            "tail: {readers} readers on {} from offset {from}; writers at {rate:.0} records/s for {secs} s",
            read_addrs.join(",")
        );
    }
    let c = write::Counters::default();
    let start = Instant::now();
    let wtasks = write::start(
        http,
        write_targets,
        concurrency,
        Some(rate),
        None,
        &setup,
        &c,
    );
    let p = write::progress(seen.clone(), "received (all readers)", quiet);
    tokio::time::sleep(Duration::from_secs(secs)).await;
    c.stop.store(true, Ordering::Relaxed);
    let w = write::finish(wtasks, &c, start, concurrency).await;
    let write_secs = start.elapsed().as_secs_f64();
    // Every reader should reach the last offset the read node has applied once writes stop.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let last = applied_offset(http, leader).await?;
    until.store(last, Ordering::Relaxed);
    let mut errors = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    for t in tasks {
        match tokio::time::timeout_at(deadline, t).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => errors.push(e.to_string()),
            Ok(Err(e)) => errors.push(e.to_string()),
            Err(_) => errors.push("reader did not reach the last offset within 30 s".into()),
        }
    }
    p.abort();
    let mut lags: Vec<u64> = Vec::new();
    let mut per_reader: Vec<u64> = Vec::new();
    let mut complete = 0;
    let committed = c.ok.load(Ordering::Relaxed);
    for t in &tallies {
        let t = t.lock().unwrap();
        per_reader.push(t.records);
        if t.records >= committed && t.last_offset >= last {
            complete += 1;
        }
        lags.extend(t.lags_ms.iter().map(|&l| l as u64 * 1000));
    }
    lags.sort_unstable();
    per_reader.sort_unstable();
    errors.sort();
    errors.dedup();
    Ok(json!({
        "mode": "tail",
        "readers": readers,
        "read_node": read_addrs.join(","),
        "rate_target": rate,
        "max_write_rate": max_rate,
        "write": w,
        "records_written": committed,
        "writes_failed": c.failed.load(Ordering::Relaxed),
        "readers_complete": complete,
        "records_per_reader_min": per_reader.first(),
        "records_per_reader_max": per_reader.last(),
        "records_per_sec_per_reader": per_reader.first().map(|&m| m as f64 / write_secs),
        "lag_ms": {"p50": percentile(&lags, 0.5), "p90": percentile(&lags, 0.9), "p99": percentile(&lags, 0.99),
                   "max": lags.last().map(|m| *m as f64 / 1000.0).unwrap_or(0.0), "samples": lags.len()},
        "errors": errors,
    }))
}

pub fn print(r: &serde_json::Value) {
    println!(
        "tail: {} readers on {}, writers at {:.0} records/s ({} written, {} failed); {} of {} readers got every record; per reader {} records = {:.0} records/s; lag ms p50 {} p90 {} p99 {} max {}{}",
        r["readers"], r["read_node"].as_str().unwrap_or(""), r["rate_target"].as_f64().unwrap_or(0.0), r["records_written"], r["writes_failed"],
        r["readers_complete"], r["readers"], r["records_per_reader_min"], r["records_per_sec_per_reader"].as_f64().unwrap_or(0.0),
        r["lag_ms"]["p50"], r["lag_ms"]["p90"], r["lag_ms"]["p99"], r["lag_ms"]["max"],
        if r["errors"].as_array().is_some_and(|e| !e.is_empty()) { format!("; errors: {}", r["errors"]) } else { String::new() }
    );
}
