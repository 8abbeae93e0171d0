//! `catchup` and `restart`: a one-node cluster holding a log of R records (pre-filled by C
//! concurrent writers, or reused from `--data-root`), then one reader from offset 0 over
//! `/stream` and over `/fetch` pages; or a restart of the node on that data directory.

use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::json;

use crate::common::{self, applied_offset, median, rss_mib, spawn_node, Spawned};
use crate::sse::{self, Tally};
use crate::write;

/// What both modes are given: where the log lives and how to build it, how often to measure.
#[derive(Clone, Copy)]
pub struct LogBench<'a> {
    pub root: &'a Path,
    pub records: u64,
    pub concurrency: usize,
    /// Extra flags for the spawned node.
    pub extra: &'a [String],
    pub repeat: usize,
    pub quiet: bool,
}

/// Starts (or restarts) node 1 alone on `root`, waits for it to lead, and fills its log up to
/// `records` records if it holds fewer.
pub async fn prepare(http: &reqwest::Client, b: &LogBench<'_>) -> anyhow::Result<(Spawned, u64)> {
    let LogBench {
        root,
        records,
        concurrency,
        extra,
        quiet,
        ..
    } = *b;
    let fresh = !root.join("node-1").exists();
    let addr_file = root.join("bench-addr");
    let addr = match std::fs::read_to_string(&addr_file) {
        Ok(a) if !fresh => a.trim().to_string(),
        _ => {
            std::fs::create_dir_all(root)?;
            let a = format!("127.0.0.1:{}", yakt::client::loopback::free_port()?);
            std::fs::write(&addr_file, &a)?;
            a
        }
    };
    let child = spawn_node(root, 1, &addr, &[], extra)?;
    let spawned = Spawned {
        children: vec![child],
        addrs: vec![addr.clone()],
        _dir: None,
    };
    common::wait_ready(http, &spawned.addrs, 1).await?;
    // A reused log is replayed after the node leads: wait until everything in it is applied.
    // (Waiting for the applied offset to stand still is not enough: a replay can pause for
    // seconds, and the bench then pre-filled a second million records on top of the first.)
    if !fresh {
        common::wait_applied_to_log_end(http, &addr).await?;
    }
    let have = applied_offset(http, &addr).await?;
    if have < records {
        let need = records - have;
        if !quiet {
            eprintln!("pre-filling {need} records with {concurrency} writers on {addr}");
        }
        let setup = write::setup(http, &addr).await?;
        let c = write::Counters::default();
        let start = Instant::now();
        let tasks = write::start(
            http,
            std::slice::from_ref(&addr),
            concurrency,
            None,
            Some(need),
            &setup,
            &c,
        );
        let p = write::progress(c.ok.clone(), "committed", quiet);
        let w = write::finish(tasks, &c, start, concurrency).await;
        p.abort();
        if !quiet {
            eprintln!(
                "pre-fill: {:.0} records/s",
                w["records_per_sec"].as_f64().unwrap_or(0.0)
            );
        }
    }
    let last = applied_offset(http, &addr).await?;
    Ok((spawned, last))
}

#[derive(Deserialize)]
struct Page {
    records: Vec<serde::de::IgnoredAny>,
    next_offset: u64,
    high_watermark: u64,
}

pub async fn catchup(
    http: &reqwest::Client,
    b: &LogBench<'_>,
) -> anyhow::Result<serde_json::Value> {
    let (spawned, last) = prepare(http, b).await?;
    let LogBench { repeat, quiet, .. } = *b;
    let addr = spawned.addrs[0].clone();
    let pid = spawned.children[0].id();
    let rss = rss_mib(pid);
    let memory_after_prefill = common::memory_json(pid);
    if !quiet {
        eprintln!("catch-up node after the pre-fill: {memory_after_prefill}");
    }
    let mut stream_rates = Vec::new();
    let mut stream_runs = Vec::new();
    for i in 0..repeat {
        let seen = Arc::new(AtomicU64::new(0));
        let tally = Arc::new(Mutex::new(Tally::default()));
        let p = write::progress(seen.clone(), "received", quiet);
        let t0 = Instant::now();
        let r = sse::read(
            http,
            &addr,
            0,
            Arc::new(AtomicU64::new(last)),
            false,
            seen,
            tally.clone(),
        )
        .await;
        let secs = t0.elapsed().as_secs_f64();
        p.abort();
        r?;
        let t = tally.lock().unwrap();
        let rate = t.records as f64 / secs;
        if !quiet {
            eprintln!("catchup /stream run {}: {} records (+{} snapshots) in {secs:.2}s = {rate:.0} records/s", i + 1, t.records, t.snapshots);
        }
        stream_rates.push(rate);
        stream_runs.push(json!({"records": t.records, "snapshots": t.snapshots, "seconds": secs, "records_per_sec": rate}));
    }
    let memory_after_stream = common::memory_json(pid);
    if !quiet {
        eprintln!("catch-up node after the /stream reads: {memory_after_stream}");
    }
    let mut fetch_rates = Vec::new();
    let mut fetch_runs = Vec::new();
    for i in 0..repeat {
        let t0 = Instant::now();
        let mut next = 0u64;
        let mut n = 0u64;
        let mut pages = 0u64;
        loop {
            let page: Page = http
                .get(format!(
                    "http://{addr}/fetch?offset={next}&max_records=10000"
                ))
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            pages += 1;
            n += page.records.len() as u64;
            next = page.next_offset;
            if next > last || next >= page.high_watermark {
                break;
            }
        }
        let secs = t0.elapsed().as_secs_f64();
        let rate = n as f64 / secs;
        if !quiet {
            eprintln!("catchup /fetch run {}: {n} records in {pages} pages in {secs:.2}s = {rate:.0} records/s", i + 1);
        }
        fetch_rates.push(rate);
        fetch_runs
            .push(json!({"records": n, "pages": pages, "seconds": secs, "records_per_sec": rate}));
    }
    Ok(json!({
        "mode": "catchup",
        "last_offset": last,
        "rss_mib": rss,
        "memory_after_prefill": memory_after_prefill,
        "memory_after_stream": memory_after_stream,
        "memory_after_fetch": common::memory_json(pid),
        "stream_records_per_sec_median": median(&mut stream_rates),
        "fetch_records_per_sec_median": median(&mut fetch_rates),
        "stream_runs": stream_runs,
        "fetch_runs": fetch_runs,
    }))
}

pub async fn restart(
    http: &reqwest::Client,
    b: &LogBench<'_>,
) -> anyhow::Result<serde_json::Value> {
    let (mut spawned, last) = prepare(http, b).await?;
    let LogBench {
        root,
        extra,
        repeat,
        quiet,
        ..
    } = *b;
    let addr = spawned.addrs[0].clone();
    let rss_before = rss_mib(spawned.children[0].id());
    common::stop_child(&mut spawned.children[0]);
    spawned.children.clear();
    let mut times = Vec::new();
    let mut rsss = Vec::new();
    let mut dumps = Vec::new();
    let mut runs = Vec::new();
    for i in 0..repeat {
        let t0 = Instant::now();
        let mut child = spawn_node(root, 1, &addr, &[], extra)?;
        let pid = child.id();
        // Serving reads: the applied offset has reached the pre-stop offset and a read answered
        // from the image succeeds.
        let served = loop {
            if t0.elapsed() > Duration::from_secs(300) {
                break None;
            }
            if applied_offset(http, &addr).await.is_ok_and(|o| o >= last) {
                let read = http
                    .get(format!("http://{addr}/get_all_brokers"))
                    .send()
                    .await;
                if read.is_ok_and(|r| r.status().is_success()) {
                    break Some(t0.elapsed().as_secs_f64());
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        tokio::time::sleep(Duration::from_millis(500)).await;
        let rss = rss_mib(pid);
        let memory = common::memory_json(pid);
        // Then the heaviest read there is: the whole image as JSON.
        let t1 = Instant::now();
        let dump = match http.get(format!("http://{addr}/get_metadata")).send().await {
            Ok(r) if r.status().is_success() => r.bytes().await.ok().map(|b| b.len()),
            _ => None,
        };
        let dump_ms = t1.elapsed().as_secs_f64() * 1000.0;
        let peak = common::peak_rss_mib(pid);
        common::stop_child(&mut child);
        let Some(secs) = served else {
            anyhow::bail!("the restarted node did not serve reads at offset {last} within 300 s");
        };
        let Some(dump_bytes) = dump else {
            anyhow::bail!("/get_metadata failed after the restart");
        };
        if !quiet {
            eprintln!(
                "restart run {}: serving at offset {last} after {:.0} ms; VmRSS {:.1} MiB; /get_metadata {dump_bytes} bytes in {dump_ms:.0} ms; VmHWM {:.1} MiB",
                i + 1,
                secs * 1000.0,
                rss.unwrap_or(0.0),
                peak.unwrap_or(0.0)
            );
        }
        times.push(secs * 1000.0);
        rsss.push(rss.unwrap_or(0.0));
        dumps.push(dump_ms);
        runs.push(json!({
            "ms_to_serve": secs * 1000.0, "rss_mib": rss, "get_metadata_ms": dump_ms,
            "get_metadata_bytes": dump_bytes, "peak_rss_mib": peak, "memory": memory,
        }));
    }
    Ok(json!({
        "mode": "restart",
        "last_offset": last,
        "rss_mib_before_stop": rss_before,
        "ms_to_serve_median": median(&mut times),
        "rss_mib_median": median(&mut rsss),
        "get_metadata_ms_median": median(&mut dumps),
        "runs": runs,
    }))
}
