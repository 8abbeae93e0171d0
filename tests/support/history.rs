//! A history checker for fault tests: concurrent writers record every `create_topic` request
//! and its outcome (acknowledged at an offset, definitely failed, or unknown), and `check` then
//! reads every node back and verifies that nothing acknowledged was lost, that all nodes hold the
//! same records at the same offsets, that nothing was applied twice, that failed writes are
//! absent, and that every node's image equals the fold of its log.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{eventually, Cluster};

/// What one write request came to, as its client saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// `200` with the record's offset: it must be in every log, at that offset.
    Acked(u64),
    /// A definite refusal (a refused connection, a 4xx, or a 503 `unavailable`, which the API
    /// gives only when nothing was proposed): it must be in no log.
    Failed(String),
    /// No definite answer (timeout, reset, 503 `unknown_outcome`): at most once in the log.
    Unknown(String),
}

/// One request in the history.
#[derive(Clone, Debug)]
pub struct Op {
    /// The unique topic name the request created.
    pub name: String,
    /// The address it was sent to.
    pub addr: String,
    pub outcome: Outcome,
    /// When the answer arrived.
    pub at: Instant,
}

/// The shared history of a test.
#[derive(Clone, Default)]
pub struct History {
    ops: Arc<Mutex<Vec<Op>>>,
    acked: Arc<AtomicU64>,
}

impl History {
    pub fn push(&self, op: Op) {
        if matches!(op.outcome, Outcome::Acked(_)) {
            self.acked.fetch_add(1, Ordering::SeqCst);
        }
        self.ops.lock().unwrap().push(op);
    }
    /// Acknowledged writes so far.
    pub fn acked(&self) -> u64 {
        self.acked.load(Ordering::SeqCst)
    }
    pub fn ops(&self) -> Vec<Op> {
        self.ops.lock().unwrap().clone()
    }
    /// The first acknowledgement at or after `t`.
    pub fn first_ack_after(&self, t: Instant) -> Option<Instant> {
        self.ops
            .lock()
            .unwrap()
            .iter()
            .filter(|o| matches!(o.outcome, Outcome::Acked(_)) && o.at >= t)
            .map(|o| o.at)
            .min()
    }
    /// Waits until `n` more writes than `from` are acknowledged.
    pub async fn wait_acked(&self, from: u64, n: u64, timeout: Duration, what: &str) {
        eventually(timeout, what, || async {
            (self.acked() >= from + n).then_some(())
        })
        .await
    }
}

/// Waits until the nodes `among` agree on a leader that is one of them and says it leads.
/// Unlike `Cluster::leader_among`, it never asks a node outside `among` (a paused or
/// partitioned node would hold each poll for the client's whole timeout).
pub async fn leader_of(c: &Cluster, among: &[usize], timeout: Duration) -> usize {
    let found = tokio::time::timeout(timeout, find_leader(c, among, timeout)).await;
    match found {
        Ok(i) => i,
        Err(_) => {
            let mut state = String::new();
            for &i in among {
                let l = c.nodes[i].log();
                // The first panic or error, if any, else the tail.
                let first = ["panicked at", "ERROR"]
                    .iter()
                    .find_map(|m| l.find(m))
                    .map(|p| p.saturating_sub(1500));
                let mut k = first.unwrap_or(l.len().saturating_sub(4000));
                while !l.is_char_boundary(k) {
                    k += 1;
                }
                state.push_str(&format!(
                    "\n--- node {}: {:?}\n{}",
                    c.nodes[i].id,
                    c.cluster_view(i).await,
                    &l[k..(k + 4000).min(l.len())]
                ));
            }
            panic!("no leader among {among:?} after {timeout:?}:{state}");
        }
    }
}

/// `Cluster::start`, but waits up to 60 s (eight three-node tests share two cores) and on
/// timeout says what each node saw and logged, instead of only that it timed out.
pub async fn start_cluster(n: usize, extra: &[&str]) -> Cluster {
    let mut c = Cluster::empty(extra);
    for _ in 0..n {
        c.add_node();
    }
    let voters = async {
        eventually(Duration::from_secs(120), "voters", || async {
            for i in 0..c.nodes.len() {
                if let Some(v) = c.cluster_view(i).await {
                    if v["role"] == "leader" {
                        let k = v["members"]
                            .as_array()?
                            .iter()
                            .filter(|m| m["voter"] == true)
                            .count();
                        return (k >= n).then_some(());
                    }
                }
            }
            None
        })
        .await
    };
    if tokio::time::timeout(Duration::from_secs(60), voters)
        .await
        .is_err()
    {
        let all: Vec<usize> = (0..n).collect();
        panic!(
            "{n} nodes did not become voters within 60 s:{}",
            describe(&mut c, &all).await
        );
    }
    c
}

/// Each node's view, whether it runs, and its first panic or error (else its log's tail).
pub async fn describe(c: &mut Cluster, nodes: &[usize]) -> String {
    let mut state = String::new();
    for &i in nodes {
        let running = c.nodes[i].running();
        let l = c.nodes[i].log();
        let first = ["panicked at", "ERROR", "yakt:"]
            .iter()
            .find_map(|m| l.find(m))
            .map(|p| p.saturating_sub(1500));
        let mut k = first.unwrap_or(l.len().saturating_sub(4000));
        while !l.is_char_boundary(k) {
            k += 1;
        }
        let mut e = (k + 4000).min(l.len());
        while !l.is_char_boundary(e) {
            e += 1;
        }
        state.push_str(&format!(
            "\n--- node {} (running: {running}): {:?}\n{}",
            c.nodes[i].id,
            c.cluster_view(i).await,
            &l[k..e]
        ));
    }
    state
}

async fn find_leader(c: &Cluster, among: &[usize], timeout: Duration) -> usize {
    eventually(timeout * 2, "a leader among the given nodes", || async {
        let mut leader = None;
        for &i in among {
            let v = c.cluster_view(i).await?;
            let l = v["leader_id"].as_u64()?;
            if leader.is_some_and(|x| x != l) {
                return None;
            }
            leader = Some(l);
        }
        let idx = c.nodes.iter().position(|n| Some(n.id) == leader)?;
        if !among.contains(&idx) {
            return None;
        }
        let v = c.cluster_view(idx).await?;
        (v["role"] == "leader").then_some(idx)
    })
    .await
}

/// Sends one `create_topic` and classifies the answer.
pub async fn create_topic_once(http: &reqwest::Client, addr: &str, name: &str) -> Outcome {
    let resp = http
        .post(format!("http://{addr}/create_topic"))
        .json(&json!({ "name": name }))
        .send()
        .await;
    let resp = match resp {
        // The connection was never made: the request was never seen by anyone.
        Err(e) if e.is_connect() => return Outcome::Failed(format!("connect: {e}")),
        Err(e) => return Outcome::Unknown(format!("transport: {e}")),
        Ok(r) => r,
    };
    let status = resp.status().as_u16();
    let body: Value = match resp.json().await {
        Ok(v) => v,
        Err(e) => return Outcome::Unknown(format!("{status} with an unreadable body: {e}")),
    };
    match status {
        200 => match body["offset"].as_u64() {
            Some(o) => Outcome::Acked(o),
            None => Outcome::Unknown(format!("200 without an offset: {body}")),
        },
        503 if body["error"] == "unavailable" => Outcome::Failed(format!("503 {body}")),
        503 => Outcome::Unknown(format!("503 {body}")),
        400..=499 => Outcome::Failed(format!("{status} {body}")),
        _ => panic!("create_topic {name} via {addr} answered {status} {body}: never allowed"),
    }
}

/// Concurrent writers, each creating topics with unique names through random nodes.
pub struct Writers {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    pub history: History,
}

impl Writers {
    /// Starts `n` writers over `addrs`; names are `{prefix}-{writer}-{seq}`.
    pub fn start(n: usize, addrs: Vec<String>, prefix: &str) -> Writers {
        Self::start_into(n, addrs, prefix, History::default())
    }

    /// [`Writers::start`], recording into an existing history.
    pub fn start_into(n: usize, addrs: Vec<String>, prefix: &str, history: History) -> Writers {
        let stop = Arc::new(AtomicBool::new(false));
        // Longer than any server-side path (forward 10 s over commit 5 s), so that a write
        // still being worked on by the server is not abandoned by the client.
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(2))
            .build()
            .expect("client");
        let mut tasks = Vec::new();
        for w in 0..n {
            let (stop, history, http, addrs) =
                (stop.clone(), history.clone(), http.clone(), addrs.clone());
            let prefix = prefix.to_string();
            tasks.push(tokio::spawn(async move {
                let mut rng =
                    0x9E3779B97F4A7C15u64 ^ (w as u64 + 1).wrapping_mul(0xD1B54A32D192ED03);
                let mut seq = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    let addr = &addrs[(rng % addrs.len() as u64) as usize];
                    let name = format!("{prefix}-{w}-{seq}");
                    seq += 1;
                    let outcome = create_topic_once(&http, addr, &name).await;
                    let ok = matches!(outcome, Outcome::Acked(_));
                    history.push(Op {
                        name,
                        addr: addr.clone(),
                        outcome,
                        at: Instant::now(),
                    });
                    if !ok {
                        // Pacing, not synchronization: do not spin on a node that is down.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }));
        }
        Writers {
            stop,
            tasks,
            history,
        }
    }

    /// Stops the writers and waits for every request in flight to get its answer.
    pub async fn stop(self) -> History {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.tasks {
            t.await.expect("writer task");
        }
        self.history
    }
}

/// Counts found by [`check`], for the test's report.
#[derive(Debug, Default)]
pub struct Report {
    pub acked: usize,
    pub failed: usize,
    pub unknown: usize,
    /// Unknown writes that turned out committed.
    pub unknown_committed: usize,
    /// Records compared on every node.
    pub records: usize,
    /// The offset every node had applied when compared.
    pub applied: u64,
    /// The common log start the records were compared from.
    pub log_start: u64,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} acknowledged, {} failed, {} unknown ({} of them committed); {} records from offset {} to {} identical on every node",
            self.acked,
            self.failed,
            self.unknown,
            self.unknown_committed,
            self.records,
            self.log_start,
            self.applied
        )
    }
}

/// The topic name of a TopicRecord in the log (None for other records).
fn topic_name(rec: &Value) -> Option<&str> {
    (rec["name"] == "TopicRecord")
        .then(|| rec["fields"]["name"].as_str())
        .flatten()
}

/// Checks the history against the nodes `nodes` of `c` (all must be running). Writes a barrier
/// record first, so that everything committed before it is applied everywhere.
pub async fn check(c: &Cluster, nodes: &[usize], history: &History) -> Report {
    let leader = leader_of(c, nodes, Duration::from_secs(30)).await;
    let barrier = c
        .create_topic(leader, &format!("barrier-{}", std::process::id()))
        .await;
    // Every node applies the barrier, and then all agree on one applied offset and one image.
    let (applied, image) = eventually(
        Duration::from_secs(30),
        "every node applied the same offset with the same image",
        || async {
            let mut first: Option<(u64, Value)> = None;
            for &i in nodes {
                let v = c.cluster_view(i).await?;
                let a = v["applied_offset"].as_u64()?;
                if a < barrier {
                    return None;
                }
                let (s, m) = c.get(i, "/get_metadata").await;
                if s != 200 || m["offset"].as_u64()? != a {
                    return None;
                }
                match &first {
                    None => first = Some((a, m)),
                    Some((fa, fm)) => {
                        if *fa != a || fm != &m {
                            return None;
                        }
                    }
                }
            }
            first
        },
    )
    .await;

    let mut log_start = 1;
    for &i in nodes {
        let v = c.cluster_view(i).await.expect("cluster view");
        log_start = log_start.max(v["log_start_offset"].as_u64().unwrap_or(1));
    }
    let mut logs = Vec::new();
    for &i in nodes {
        let recs: Vec<Value> = c
            .records_from(i, log_start)
            .await
            .into_iter()
            .filter(|r| r["offset"].as_u64().is_some_and(|o| o <= applied))
            .collect();
        logs.push(recs);
    }
    for (k, &i) in nodes.iter().enumerate().skip(1) {
        if logs[k] != logs[0] {
            let a: BTreeMap<u64, &Value> = logs[0]
                .iter()
                .map(|r| (r["offset"].as_u64().unwrap(), r))
                .collect();
            let b: BTreeMap<u64, &Value> = logs[k]
                .iter()
                .map(|r| (r["offset"].as_u64().unwrap(), r))
                .collect();
            let diff = a
                .keys()
                .chain(b.keys())
                .find(|o| a.get(o) != b.get(o))
                .copied();
            panic!(
                "node {} and node {} hold different records from offset {log_start}: first difference at {diff:?}: {:?} vs {:?}",
                c.nodes[nodes[0]].id,
                c.nodes[i].id,
                diff.and_then(|o| a.get(&o)),
                diff.and_then(|o| b.get(&o)),
            );
        }
    }
    let log = &logs[0];

    // Offsets grow; no topic name appears twice.
    let mut by_name: HashMap<&str, u64> = HashMap::new();
    let mut last = 0;
    for r in log {
        let o = r["offset"].as_u64().expect("offset");
        assert!(o > last, "offsets do not grow at {o} (after {last})");
        last = o;
        if let Some(n) = topic_name(r) {
            if let Some(prev) = by_name.insert(n, o) {
                panic!("topic {n} is in the log twice: at {prev} and at {o}");
            }
        }
    }
    let by_offset: HashMap<u64, &Value> = log
        .iter()
        .map(|r| (r["offset"].as_u64().unwrap(), r))
        .collect();

    // The image is the fold of the log: the same topics with the same ids.
    let image_topics: HashMap<&str, &Value> = image["metadata"]["TopicRecord"]
        .as_array()
        .expect("TopicRecord list")
        .iter()
        .map(|t| (t["name"].as_str().expect("topic name"), t))
        .collect();
    for r in log {
        if let Some(n) = topic_name(r) {
            let t = image_topics
                .get(n)
                .unwrap_or_else(|| panic!("topic {n} at {} is not in the image", r["offset"]));
            assert_eq!(
                t["topicUUID"], r["fields"]["topicUUID"],
                "topic {n}: image and log disagree on its id"
            );
        }
    }
    if log_start <= 1 {
        let from_log: BTreeSet<&str> = by_name.keys().copied().collect();
        let in_image: BTreeSet<&str> = image_topics.keys().copied().collect();
        assert_eq!(
            from_log, in_image,
            "the image's topics are not the fold of the log"
        );
    }

    // Every request against the log and the image.
    let mut report = Report {
        applied,
        log_start,
        records: log.len(),
        ..Report::default()
    };
    for op in history.ops() {
        let in_log = by_name.get(op.name.as_str()).copied();
        let in_image = image_topics.contains_key(op.name.as_str());
        match &op.outcome {
            Outcome::Acked(o) => {
                report.acked += 1;
                assert!(
                    in_image,
                    "acknowledged write {} (offset {o}, via {}) is lost: not in the image",
                    op.name, op.addr
                );
                if *o >= log_start {
                    let rec = by_offset.get(o).unwrap_or_else(|| {
                        panic!(
                            "acknowledged write {} at offset {o}: no record there",
                            op.name
                        )
                    });
                    assert_eq!(
                        topic_name(rec),
                        Some(op.name.as_str()),
                        "acknowledged write {} at offset {o}: the log holds {rec} there",
                        op.name
                    );
                }
            }
            Outcome::Failed(why) => {
                report.failed += 1;
                assert!(
                    in_log.is_none() && !in_image,
                    "write {} failed definitely ({why}) but is in the log at {in_log:?} / image {in_image}",
                    op.name
                );
            }
            Outcome::Unknown(_) => {
                report.unknown += 1;
                if in_image {
                    report.unknown_committed += 1;
                }
            }
        }
    }
    report
}

/// The records of a data directory as `yakt-dump --json` sees them (node stopped).
pub fn dump_entries(data_dir: &std::path::Path) -> Vec<Value> {
    let (code, out, err) = super::dump(&["--json", &data_dir.display().to_string()]);
    assert!(code == 0 || code == 1, "yakt-dump failed: {err}");
    out.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect()
}
