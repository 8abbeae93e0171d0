//! `brokers`: N simulated KRaft brokers against a cluster. Each registers `FENCED`, heartbeats
//! every 2 s with the offset the shared `/stream` reader has reached, is unfenced, leads
//! partitions; then some stop heartbeating and some shut down in a controlled way. Reported:
//! heartbeat latency, unfence and fence delays, controlled-shutdown time, false fences (brokers
//! fenced while they kept heartbeating; the goal is zero), and the leader's CPU. With
//! `--tailers N`, N more `/stream` readers (spread over the nodes, as a fleet of consumers would
//! be) tail the log the whole time: the heartbeat latency is then measured under that fan-out.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures::StreamExt;
use serde_json::{json, Value};

use crate::common::{percentile, scheme};

/// How often a simulated broker heartbeats (KRaft's default).
const HEARTBEAT_EVERY: Duration = Duration::from_secs(2);

/// What the run is given.
pub struct Setup<'a> {
    pub http: &'a reqwest::Client,
    pub addrs: &'a [String],
    pub leader: &'a str,
    /// The leader's process id, when this run spawned it (for its CPU).
    pub leader_pid: Option<u32>,
    pub brokers: usize,
    /// `/stream` readers tailing the log meanwhile, spread over the nodes.
    pub tailers: usize,
    /// Seconds of steady heartbeating measured (leader CPU, false fences).
    pub steady_secs: u64,
    /// The nodes' session timeout (for the report).
    pub session_timeout: Duration,
    pub quiet: bool,
}

/// One simulated broker's state, shared between its heartbeat task and the driver.
struct Broker {
    id: i32,
    epoch: u64,
    /// Stop heartbeating (simulates a crash).
    stopped: AtomicBool,
    /// Ask for a controlled shutdown in the next heartbeats.
    shut_down: AtomicBool,
    /// Unix ms of the last answered heartbeat.
    last_ok_ms: AtomicU64,
    /// When the first heartbeat went out, and when one first answered `isFenced: false`.
    first_sent: Mutex<Option<Instant>>,
    unfenced_at: Mutex<Option<Instant>>,
    /// When a heartbeat first answered `shouldShutDown: true`.
    shut_down_at: Mutex<Option<Instant>>,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// CPU seconds (user + system) a process has used, from `/proc/<pid>/stat`.
fn cpu_secs(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let (utime, stime): (f64, f64) = (f.get(11)?.parse().ok()?, f.get(12)?.parse().ok()?);
    // SAFETY: sysconf has no preconditions.
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some((utime + stime) / tick.max(1.0))
}

/// The shared stream reader: the newest offset read, and every `FENCED` change by broker id
/// (Unix ms when read).
struct Tail {
    offset: AtomicU64,
    fenced: Mutex<BTreeMap<i32, Vec<u64>>>,
    moves: AtomicU64,
}

async fn read_stream(addr: String, tail: Arc<Tail>) -> anyhow::Result<()> {
    let http = crate::common::client_builder().no_proxy().build()?;
    let url = format!("{}://{addr}/stream?offset=end", scheme());
    let resp = http.get(&url).send().await?.error_for_status()?;
    let mut body = resp.bytes_stream();
    let mut parser = yakt::client::sse::Parser::new(64 << 20);
    while let Some(chunk) = body.next().await {
        parser.feed(&chunk?)?;
        while let Some(ev) = parser.next_event()? {
            if let Some(id) = ev.id.as_deref().and_then(|i| i.parse::<u64>().ok()) {
                tail.offset.fetch_max(id, Ordering::Relaxed);
            }
            if ev.event != "record" {
                continue;
            }
            let v: Value = serde_json::from_str(&ev.data).unwrap_or(Value::Null);
            if v["name"] == "PartitionChangeRecord" {
                tail.moves.fetch_add(1, Ordering::Relaxed);
            }
            if v["name"] == "BrokerRegistrationChangeBrokerRecord"
                && v["fields"]["brokerStatus"] == "FENCED"
            {
                if let Some(b) = v["fields"]["brokerId"].as_i64() {
                    tail.fenced
                        .lock()
                        .unwrap()
                        .entry(b as i32)
                        .or_default()
                        .push(now_ms());
                }
            }
        }
    }
    bail!("the stream from {addr} ended")
}

/// Heartbeats every 2 s until stopped; latencies (µs) go to `lat`.
async fn heartbeat_loop(
    http: reqwest::Client,
    addrs: Vec<String>,
    b: Arc<Broker>,
    tail: Arc<Tail>,
    lat: Arc<Mutex<Vec<u64>>>,
    errors: Arc<AtomicU64>,
    done: Arc<AtomicBool>,
) {
    let mut at = b.id as usize % addrs.len();
    // Spread the brokers over the 2 s period.
    let jitter = (b.id as u64 * 7919) % HEARTBEAT_EVERY.as_millis() as u64;
    tokio::time::sleep(Duration::from_millis(jitter)).await;
    let mut ticker = tokio::time::interval(HEARTBEAT_EVERY);
    while !done.load(Ordering::Relaxed) {
        ticker.tick().await;
        if b.stopped.load(Ordering::Relaxed) {
            continue;
        }
        let body = json!({
            "brokerEpoch": b.epoch,
            "currentMetadataOffset": tail.offset.load(Ordering::Relaxed),
            "wantShutDown": b.shut_down.load(Ordering::Relaxed),
        });
        b.first_sent
            .lock()
            .unwrap()
            .get_or_insert_with(Instant::now);
        let t0 = Instant::now();
        let url = format!("{}://{}/broker_heartbeat/{}", scheme(), addrs[at], b.id);
        match http.post(&url).json(&body).send().await {
            Ok(r) if r.status().is_success() => {
                let v: Value = r.json().await.unwrap_or(Value::Null);
                lat.lock().unwrap().push(t0.elapsed().as_micros() as u64);
                b.last_ok_ms.store(now_ms(), Ordering::Relaxed);
                if v["isFenced"] == false {
                    b.unfenced_at
                        .lock()
                        .unwrap()
                        .get_or_insert_with(Instant::now);
                }
                if v["shouldShutDown"] == true {
                    b.shut_down_at
                        .lock()
                        .unwrap()
                        .get_or_insert_with(Instant::now);
                    return;
                }
            }
            _ => {
                errors.fetch_add(1, Ordering::Relaxed);
                at = (at + 1) % addrs.len();
            }
        }
    }
}

/// Runs `f` over `items` with at most `n` at a time.
async fn in_parallel<T, F, Fut, R>(items: Vec<T>, n: usize, f: F) -> Vec<R>
where
    F: Fn(T) -> Fut,
    Fut: std::future::Future<Output = R>,
{
    futures::stream::iter(items.into_iter().map(f))
        .buffer_unordered(n)
        .collect()
        .await
}

async fn post(
    http: &reqwest::Client,
    addr: &str,
    path: &str,
    body: Value,
) -> anyhow::Result<Value> {
    let r = http
        .post(format!("{}://{addr}{path}", scheme()))
        .json(&body)
        .send()
        .await?;
    let status = r.status();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("{path}: {status} {v}");
    }
    Ok(v)
}

/// Waits until `cond` holds (polled every 100 ms), at most `limit`.
async fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cond()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn summary(mut v: Vec<u64>) -> Value {
    v.sort_unstable();
    json!({"n": v.len(), "p50_ms": percentile(&v, 0.5), "p99_ms": percentile(&v, 0.99),
           "max_ms": percentile(&v, 1.0)})
}

pub async fn run(s: &Setup<'_>) -> anyhow::Result<Value> {
    let say = |m: String| {
        if !s.quiet {
            eprintln!("brokers: {m}");
        }
    };
    let tail = Arc::new(Tail {
        offset: AtomicU64::new(0),
        fenced: Mutex::new(BTreeMap::new()),
        moves: AtomicU64::new(0),
    });
    // The shared reader follows a follower when there is one (as brokers would spread out).
    let read_addr = s
        .addrs
        .iter()
        .find(|a| *a != s.leader)
        .unwrap_or(&s.addrs[0])
        .clone();
    let reader = tokio::spawn(read_stream(read_addr, tail.clone()));
    let tailers = Tailers::start(s).await?;
    if s.tailers > 0 {
        say(format!(
            "{} /stream tailers over {} nodes",
            s.tailers,
            s.addrs.len()
        ));
    }

    say(format!("registering {} brokers FENCED", s.brokers));
    let registered = in_parallel((0..s.brokers as i32).collect(), 64, |id| async move {
        let v = post(
            s.http,
            &s.addrs[id as usize % s.addrs.len()],
            "/register_broker",
            json!({"brokerId": id, "brokerHost": format!("sim-{id}"), "brokerPort": 9092,
                   "brokerStatus": "FENCED"}),
        )
        .await?;
        let epoch = v["brokerEpoch"].as_u64().context("brokerEpoch")?;
        anyhow::Ok(Arc::new(Broker {
            id,
            epoch,
            stopped: AtomicBool::new(false),
            shut_down: AtomicBool::new(false),
            last_ok_ms: AtomicU64::new(0),
            first_sent: Mutex::new(None),
            unfenced_at: Mutex::new(None),
            shut_down_at: Mutex::new(None),
        }))
    })
    .await;
    let mut brokers = registered.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    brokers.sort_by_key(|b| b.id);

    let hb_http = crate::common::client_builder()
        .no_proxy()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(s.brokers)
        .timeout(Duration::from_secs(30))
        .build()?;
    let lat = Arc::new(Mutex::new(Vec::new()));
    let errors = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = brokers
        .iter()
        .map(|b| {
            tokio::spawn(heartbeat_loop(
                hb_http.clone(),
                s.addrs.to_vec(),
                b.clone(),
                tail.clone(),
                lat.clone(),
                errors.clone(),
                done.clone(),
            ))
        })
        .collect();

    say("waiting until every broker is unfenced".into());
    let all_unfenced = wait_for(Duration::from_secs(300), || {
        brokers
            .iter()
            .all(|b| b.unfenced_at.lock().unwrap().is_some())
    })
    .await;
    if !all_unfenced {
        bail!("not every broker was unfenced within 300 s");
    }
    let unfence: Vec<u64> = brokers
        .iter()
        .filter_map(|b| {
            let (a, z) = (
                *b.first_sent.lock().unwrap(),
                *b.unfenced_at.lock().unwrap(),
            );
            Some(z?.duration_since(a?).as_micros() as u64)
        })
        .collect();

    // One partition per broker, led by it, replicated on the next two.
    say(format!("creating {} partitions", s.brokers));
    let topic = post(
        s.http,
        s.leader,
        "/create_topic",
        json!({"name": "bench-liveness"}),
    )
    .await?;
    let t = topic["metadata"]["topicUUID"]
        .as_str()
        .context("topicUUID")?
        .to_string();
    let n = s.brokers as i32;
    let created = in_parallel((0..n).collect(), 32, |i| {
        let t = t.clone();
        async move {
            let replicas: Vec<i32> = (0..3.min(n)).map(|k| (i + k) % n).collect();
            post(
                s.http,
                s.leader,
                "/create_partition",
                json!({"partitionId": i, "topicUUID": t, "replicas": replicas, "leader": i}),
            )
            .await
        }
    })
    .await;
    if let Some(e) = created.into_iter().find_map(Result::err) {
        bail!("create_partition: {e}");
    }

    // Steady state: everyone heartbeats; the leader's CPU over that time.
    lat.lock().unwrap().clear();
    let fenced_before: usize = tail.fenced.lock().unwrap().values().map(Vec::len).sum();
    say(format!("steady heartbeats for {} s", s.steady_secs));
    let cpu0 = s.leader_pid.and_then(cpu_secs);
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(s.steady_secs)).await;
    let steady_wall = t0.elapsed().as_secs_f64();
    let cpu1 = s.leader_pid.and_then(cpu_secs);
    let steady_lat = std::mem::take(&mut *lat.lock().unwrap());
    let steady_hb = steady_lat.len();

    // Stop: 1% of the brokers (at least one) stop heartbeating.
    let k = (s.brokers / 100).max(1);
    let stopped: Vec<Arc<Broker>> = brokers.iter().take(k).cloned().collect();
    let shutting: Vec<Arc<Broker>> = brokers.iter().skip(k).take(k).cloned().collect();
    say(format!("{k} brokers stop heartbeating, {k} shut down"));
    let stop_at = now_ms();
    for b in &stopped {
        b.stopped.store(true, Ordering::Relaxed);
    }
    let shut_from = Instant::now();
    for b in &shutting {
        b.shut_down.store(true, Ordering::Relaxed);
    }
    let limit = s.session_timeout * 3 + Duration::from_secs(10);
    let fenced_all = wait_for(limit, || {
        let f = tail.fenced.lock().unwrap();
        stopped.iter().all(|b| {
            f.get(&b.id)
                .is_some_and(|v| v.iter().any(|t| *t >= stop_at))
        })
    })
    .await;
    let shut_all = wait_for(limit, || {
        shutting
            .iter()
            .all(|b| b.shut_down_at.lock().unwrap().is_some())
    })
    .await;
    let fence_delay: Vec<u64> = {
        let f = tail.fenced.lock().unwrap();
        stopped
            .iter()
            .filter_map(|b| {
                let last = b.last_ok_ms.load(Ordering::Relaxed);
                let at = f.get(&b.id)?.iter().find(|t| **t >= stop_at)?;
                Some(at.saturating_sub(last) * 1000)
            })
            .collect()
    };
    let shut_delay: Vec<u64> = shutting
        .iter()
        .filter_map(|b| {
            let z = (*b.shut_down_at.lock().unwrap())?;
            Some(z.duration_since(shut_from).as_micros() as u64)
        })
        .collect();
    done.store(true, Ordering::Relaxed);
    for t in tasks {
        t.abort();
    }
    reader.abort();
    let tailers = tailers.finish().await;

    // False fences: a FENCED change for a broker that neither stopped nor shut down.
    let expected: HashSet<i32> = stopped.iter().chain(&shutting).map(|b| b.id).collect();
    let false_fences: Vec<i32> = {
        let f = tail.fenced.lock().unwrap();
        f.keys()
            .copied()
            .filter(|id| !expected.contains(id))
            .collect()
    };
    let fenced_total: usize = tail.fenced.lock().unwrap().values().map(Vec::len).sum();
    let cpu = match (cpu0, cpu1) {
        (Some(a), Some(b)) => json!((b - a) / steady_wall * 100.0),
        _ => Value::Null,
    };
    Ok(json!({
        "mode": "brokers",
        "brokers": s.brokers,
        "nodes": s.addrs.len(),
        "session_timeout_ms": ms(s.session_timeout),
        "heartbeat_every_ms": ms(HEARTBEAT_EVERY),
        "steady_secs": steady_wall,
        "steady_heartbeats_per_sec": steady_hb as f64 / steady_wall,
        "heartbeat_latency": summary(steady_lat),
        "unfence_delay_from_first_heartbeat": summary(unfence),
        "fence_delay_from_last_heartbeat": summary(fence_delay),
        "all_stopped_fenced": fenced_all,
        "controlled_shutdown_time": summary(shut_delay),
        "all_shut_down": shut_all,
        "partition_change_records_seen": tail.moves.load(Ordering::Relaxed),
        "fence_records_before_stop": fenced_before,
        "fence_records_total": fenced_total,
        "false_fences": false_fences.len(),
        "false_fenced_brokers": false_fences,
        "heartbeat_errors": errors.load(Ordering::Relaxed),
        "leader_cpu_percent_steady": cpu,
        "tailers": tailers,
    }))
}

/// The `--tailers` readers: plain `/stream` tails from the end, each on its own connection.
struct Tailers {
    tallies: Vec<Arc<Mutex<crate::sse::Tally>>>,
    tasks: Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
    /// Set to 0 to make every tailer stop (and add up what it saw).
    until: Arc<AtomicU64>,
}

impl Tailers {
    async fn start(s: &Setup<'_>) -> anyhow::Result<Self> {
        let mut me = Self {
            tallies: Vec::new(),
            tasks: Vec::new(),
            until: Arc::new(AtomicU64::new(u64::MAX)),
        };
        if s.tailers == 0 {
            return Ok(me);
        }
        let http = crate::common::client_builder()
            .no_proxy()
            .tcp_nodelay(true)
            .pool_max_idle_per_host(s.tailers)
            .build()?;
        let mut from = u64::MAX;
        for a in s.addrs {
            from = from.min(crate::common::applied_offset(s.http, a).await? + 1);
        }
        let seen = Arc::new(AtomicU64::new(0));
        for i in 0..s.tailers {
            let t = Arc::new(Mutex::new(crate::sse::Tally::default()));
            me.tallies.push(t.clone());
            let (http, addr, seen, until) = (
                http.clone(),
                s.addrs[i % s.addrs.len()].clone(),
                seen.clone(),
                me.until.clone(),
            );
            me.tasks.push(tokio::spawn(async move {
                crate::sse::read(&http, &addr, from, until, true, seen, t).await
            }));
        }
        Ok(me)
    }

    /// Stops the tailers; how many were still reading, what they received, their lag.
    async fn finish(mut self) -> Value {
        if self.tasks.is_empty() {
            return json!({"n": 0});
        }
        let ended_early = self.tasks.iter().filter(|t| t.is_finished()).count();
        self.until.store(0, Ordering::Relaxed);
        let mut errors = Vec::new();
        for t in self.tasks.iter_mut() {
            match tokio::time::timeout(Duration::from_secs(5), t).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => errors.push(e.to_string()),
                Ok(Err(e)) => errors.push(e.to_string()),
                Err(_) => errors.push("did not stop within 5 s".into()),
            }
        }
        errors.sort();
        errors.dedup();
        let mut records: Vec<u64> = Vec::new();
        let mut lags: Vec<u64> = Vec::new();
        for t in &self.tallies {
            let t = t.lock().unwrap();
            records.push(t.records);
            lags.extend(t.lags_ms.iter().map(|&l| l as u64 * 1000));
        }
        records.sort_unstable();
        lags.sort_unstable();
        json!({
            "n": self.tasks.len(),
            "ended_early": ended_early,
            "errors": errors,
            "records_min": records.first(),
            "records_max": records.last(),
            "lag_ms": {"p50": percentile(&lags, 0.5), "p99": percentile(&lags, 0.99),
                       "max": percentile(&lags, 1.0), "samples": lags.len()},
        })
    }
}

/// Prints a result for a person.
pub fn print(r: &Value) {
    println!("{}", serde_json::to_string_pretty(r).unwrap_or_default());
}
