//! `yakt-bench`: the load tool. C concurrent writers over persistent HTTP connections for D
//! seconds write realistic records (topics, partitions, broker changes) to a running cluster (or
//! one it starts itself with `--spawn N`), then it prints committed records/s and latency
//! percentiles. `--json` prints the result as one JSON object.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Parser, ValueEnum};
use serde_json::json;

/// Load generator for a yakt cluster.
#[derive(Parser, Debug)]
#[command(name = "yakt-bench", version, about)]
struct Args {
    /// What to measure.
    #[arg(value_enum, default_value_t = Mode::Write)]
    mode: Mode,
    /// Node addresses (HOST:PORT), comma-separated; writers spread over them.
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:5010")]
    addrs: Vec<String>,
    /// Start a local cluster of this many nodes in a temporary directory instead.
    #[arg(long)]
    spawn: Option<usize>,
    /// Concurrent writers.
    #[arg(short = 'c', long, default_value_t = 64)]
    concurrency: usize,
    /// Seconds to run.
    #[arg(short = 'd', long, default_value_t = 10)]
    duration: u64,
    /// Send writes to the leader only (as a client that follows redirects would).
    #[arg(long)]
    leader_only: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// Benchmark modes.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Mode {
    /// Committed writes/s and latency.
    Write,
}

/// A spawned local cluster, killed on drop.
struct Spawned {
    children: Vec<Child>,
    _dir: tempfile::TempDir,
}

impl Drop for Spawned {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn spawn_cluster(n: usize) -> anyhow::Result<(Spawned, Vec<String>)> {
    let exe = std::env::current_exe()?;
    let yakt: PathBuf = exe.with_file_name("yakt");
    if !yakt.exists() {
        bail!(
            "--spawn needs the yakt binary next to yakt-bench ({})",
            yakt.display()
        );
    }
    let dir = tempfile::tempdir()?;
    let mut addrs: Vec<String> = Vec::new();
    let mut children = Vec::new();
    for id in 1..=n {
        let addr = format!("127.0.0.1:{}", free_port()?);
        let mut cmd = Command::new(&yakt);
        cmd.args(["node", "-i", &id.to_string(), "-a", &addr, "--data-dir"])
            .arg(dir.path().join(format!("node-{id}")))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if !addrs.is_empty() {
            let seeds: Vec<String> = addrs
                .iter()
                .enumerate()
                .map(|(i, a)| format!("{}/{a}", i + 1))
                .collect();
            cmd.args(["-e", &seeds.join(",")]);
        }
        children.push(cmd.spawn().context("spawn yakt node")?);
        addrs.push(addr);
    }
    Ok((
        Spawned {
            children,
            _dir: dir,
        },
        addrs,
    ))
}

async fn wait_ready(
    http: &reqwest::Client,
    addrs: &[String],
    voters: usize,
) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        for a in addrs {
            if let Ok(r) = http.get(format!("http://{a}/cluster")).send().await {
                if let Ok(v) = r.json::<serde_json::Value>().await {
                    let n = v["members"]
                        .as_array()
                        .map(|m| m.iter().filter(|x| x["voter"] == true).count())
                        .unwrap_or(0);
                    if v["role"] == "leader" && n >= voters {
                        return Ok(a.clone());
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("the cluster did not elect a leader with {voters} voters within 60 s")
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64 / 1000.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let http = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(args.concurrency.max(1))
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(10))
        .build()?;
    let (_spawned, addrs) = match args.spawn {
        Some(n) => {
            let (s, a) = spawn_cluster(n)?;
            (Some(s), a)
        }
        None => (None, args.addrs.clone()),
    };
    let voters = args.spawn.unwrap_or(1);
    let leader = wait_ready(&http, &addrs, voters).await?;
    let targets = if args.leader_only {
        vec![leader.clone()]
    } else {
        addrs.clone()
    };

    // One broker for partitions to name as their replica.
    let run = format!(
        "{:x}",
        std::process::id() ^ (Instant::now().elapsed().as_nanos() as u32)
    );
    let broker_id = (std::process::id() % 1_000_000) as i64 + 1;
    let _ = http
        .post(format!("http://{leader}/register_broker"))
        .json(&json!({"brokerId": broker_id, "brokerHost": "10.0.0.1", "brokerPort": 9092}))
        .send()
        .await;
    let topic = http
        .post(format!("http://{leader}/create_topic"))
        .json(&json!({"name": format!("bench-{run}")}))
        .send()
        .await?
        .json::<serde_json::Value>()
        .await?;
    let topic_uuid = topic["metadata"]["topicUUID"]
        .as_str()
        .unwrap_or_default()
        .to_string();

    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..args.concurrency {
        let http = http.clone();
        let target = targets[w % targets.len()].clone();
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        let (run, topic_uuid) = (run.clone(), topic_uuid.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut k: u64 = 0;
            while !stop.load(Ordering::Relaxed) {
                k += 1;
                // A realistic mix: mostly topics, some partitions, a few broker changes.
                let (path, method, body) = match k % 10 {
                    0 if !topic_uuid.is_empty() => (
                        "/create_partition",
                        reqwest::Method::POST,
                        json!({"partitionId": (w as u64) * 1_000_000 + k, "topicUUID": topic_uuid,
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
                        json!({"name": format!("t-{run}-{w}-{k}")}),
                    ),
                };
                let t0 = Instant::now();
                let res = http
                    .request(method, format!("http://{target}{path}"))
                    .json(&body)
                    .send()
                    .await;
                match res {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        lat.push(t0.elapsed().as_micros() as u64);
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            lat
        }));
    }
    let progress = {
        let ok = ok.clone();
        let quiet = args.json;
        tokio::spawn(async move {
            let mut last = 0;
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let now = ok.load(Ordering::Relaxed);
                if !quiet {
                    eprintln!("  {:>8} committed/s", now - last);
                }
                last = now;
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(args.duration)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap_or_default());
    }
    progress.abort();
    let elapsed = start.elapsed().as_secs_f64();
    all.sort_unstable();
    let committed = ok.load(Ordering::Relaxed);
    let result = json!({
        "mode": "write",
        "concurrency": args.concurrency,
        "seconds": elapsed,
        "committed": committed,
        "failed": failed.load(Ordering::Relaxed),
        "records_per_sec": committed as f64 / elapsed,
        "latency_ms": {"p50": percentile(&all, 0.5), "p90": percentile(&all, 0.9), "p99": percentile(&all, 0.99),
                        "max": all.last().map(|m| *m as f64 / 1000.0).unwrap_or(0.0)},
    });
    if args.json {
        println!("{result}");
    } else {
        println!(
            "write: {} committed in {:.1}s = {:.0} records/s ({} failed); latency ms p50 {:.2} p90 {:.2} p99 {:.2} max {:.2}",
            committed, elapsed, result["records_per_sec"].as_f64().unwrap_or(0.0), result["failed"],
            result["latency_ms"]["p50"], result["latency_ms"]["p90"], result["latency_ms"]["p99"], result["latency_ms"]["max"]
        );
    }
    Ok(())
}
