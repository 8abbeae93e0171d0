//! Writers: C concurrent clients over persistent HTTP connections writing a realistic mix
//! (80 % `create_topic`, 10 % `create_partition`, 10 % `broker_registration_change`), unthrottled
//! or paced to a total rate.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::task::JoinHandle;

use crate::common::percentile;

/// Shared counters of a writer run.
#[derive(Clone, Default)]
pub struct Counters {
    pub stop: Arc<AtomicBool>,
    pub ok: Arc<AtomicU64>,
    pub failed: Arc<AtomicU64>,
}

/// What the writers need from the cluster: a broker and a topic to hang partitions on.
pub struct Setup {
    run: String,
    broker_id: i64,
    topic_uuid: String,
}

pub async fn setup(http: &reqwest::Client, leader: &str) -> anyhow::Result<Setup> {
    let run = format!(
        "{:x}",
        std::process::id()
            ^ (std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos() as u32)
    );
    let broker_id = (std::process::id() % 1_000_000) as i64 + 1;
    let _ = http
        .post(format!(
            "{}://{leader}/register_broker",
            crate::common::scheme()
        ))
        .json(&json!({"brokerId": broker_id, "brokerHost": "10.0.0.1", "brokerPort": 9092}))
        .send()
        .await;
    let topic = http
        .post(format!(
            "{}://{leader}/create_topic",
            crate::common::scheme()
        ))
        .json(&json!({"name": format!("bench-{run}")}))
        .send()
        .await?
        .json::<serde_json::Value>()
        .await?;
    let topic_uuid = topic["metadata"]["topicUUID"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    Ok(Setup {
        run,
        broker_id,
        topic_uuid,
    })
}

/// Starts `concurrency` writers against `targets` (round robin). `rate`: total records/s, or
/// unthrottled. `limit`: stop once this many writes succeeded. Each returns its latencies (µs).
pub fn start(
    http: &reqwest::Client,
    targets: &[String],
    concurrency: usize,
    rate: Option<f64>,
    limit: Option<u64>,
    s: &Setup,
    c: &Counters,
) -> Vec<JoinHandle<Vec<u64>>> {
    // Names and partition ids stay unique across several runs on one setup (tail's rate probe
    // then its paced run): a repeated topic name is a 4xx, not a write.
    static GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let gen = GENERATION.fetch_add(1, Ordering::Relaxed);
    let mut tasks = Vec::new();
    for w in 0..concurrency {
        let http = http.clone();
        let target = targets[w % targets.len()].clone();
        let c = c.clone();
        let (run, topic_uuid, broker_id) = (s.run.clone(), s.topic_uuid.clone(), s.broker_id);
        let pace = rate.map(|r| Duration::from_secs_f64(concurrency as f64 / r.max(0.001)));
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut k: u64 = 0;
            // Writers start spread over one pacing interval, not all at once.
            let mut next_at = Instant::now() + pace.map(|p| p.mul_f64(w as f64 / concurrency as f64)).unwrap_or_default();
            while !c.stop.load(Ordering::Relaxed) {
                if let Some(limit) = limit {
                    if c.ok.load(Ordering::Relaxed) >= limit {
                        break;
                    }
                }
                if let Some(p) = pace {
                    tokio::time::sleep_until(next_at.into()).await;
                    next_at += p;
                }
                k += 1;
                let (path, method, body) = match k % 10 {
                    0 if !topic_uuid.is_empty() => (
                        "/create_partition",
                        reqwest::Method::POST,
                        json!({"partitionId": (gen * 100 + w as u64) * 100_000 + k, "topicUUID": topic_uuid,
                               "replicas": [broker_id], "ISR": [broker_id], "leader": broker_id}),
                    ),
                    5 => (
                        "/broker_registration_change",
                        reqwest::Method::PUT,
                        json!({"brokerId": broker_id, "brokerPort": 9000 + (k % 1000)}),
                    ),
                    _ => (
                        "/create_topic",
                        reqwest::Method::POST,
                        json!({"name": format!("t-{run}-{gen}-{w}-{k}")}),
                    ),
                };
                let t0 = Instant::now();
                let res = http
                    .request(method, format!("{}://{target}{path}", crate::common::scheme()))
                    .json(&body)
                    .send()
                    .await;
                match res {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        lat.push(t0.elapsed().as_micros() as u64);
                        c.ok.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        c.failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            lat
        }));
    }
    tasks
}

/// Prints "N committed/s" (or `label`) once a second until aborted.
pub fn progress(counter: Arc<AtomicU64>, label: &'static str, quiet: bool) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut last = 0;
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let now = counter.load(Ordering::Relaxed);
            if !quiet {
                eprintln!("  {:>9} {label}/s  ({now} total)", now - last);
            }
            last = now;
        }
    })
}

/// Joins the writers and summarizes them.
pub async fn finish(
    tasks: Vec<JoinHandle<Vec<u64>>>,
    c: &Counters,
    start: Instant,
    concurrency: usize,
) -> serde_json::Value {
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap_or_default());
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.sort_unstable();
    let committed = c.ok.load(Ordering::Relaxed);
    json!({
        "mode": "write",
        "concurrency": concurrency,
        "seconds": elapsed,
        "committed": committed,
        "failed": c.failed.load(Ordering::Relaxed),
        "records_per_sec": committed as f64 / elapsed,
        "latency_ms": {"p50": percentile(&all, 0.5), "p90": percentile(&all, 0.9), "p99": percentile(&all, 0.99),
                        "max": all.last().map(|m| *m as f64 / 1000.0).unwrap_or(0.0)},
    })
}

/// Runs writers for `secs` seconds and returns the summary.
#[allow(clippy::too_many_arguments)]
pub async fn run_for(
    http: &reqwest::Client,
    targets: &[String],
    concurrency: usize,
    rate: Option<f64>,
    secs: f64,
    s: &Setup,
    quiet: bool,
) -> serde_json::Value {
    let c = Counters::default();
    let start = Instant::now();
    let tasks = start_writers(http, targets, concurrency, rate, None, s, &c);
    let p = progress(c.ok.clone(), "committed", quiet);
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    c.stop.store(true, Ordering::Relaxed);
    let r = finish(tasks, &c, start, concurrency).await;
    p.abort();
    r
}

use start as start_writers;

pub fn print_write(r: &serde_json::Value) {
    println!(
        "write: {} committed in {:.1}s = {:.0} records/s ({} failed); latency ms p50 {:.2} p90 {:.2} p99 {:.2} max {:.2}",
        r["committed"], r["seconds"].as_f64().unwrap_or(0.0), r["records_per_sec"].as_f64().unwrap_or(0.0), r["failed"],
        r["latency_ms"]["p50"], r["latency_ms"]["p90"], r["latency_ms"]["p99"], r["latency_ms"]["max"]
    );
}
