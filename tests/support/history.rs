//! A history checker for fault tests (issue 13). Clients on every node issue writes that
//! collide (the same topic names from several clients, registrations, changes and deletes of the
//! same broker ids) and `?consistent=true` reads; one `/stream` reader per node records every
//! event it receives. Each request is recorded with its send time, answer time and outcome.
//! `check` then reads every node's final log and hands everything to [`verify::verify`], which
//! reports each broken rule with the requests involved (the rules: `docs/fault-tolerance.md`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{json, Value};
use yakt::client::sse;

use super::{eventually, Cluster};

/// The pure checker: recorded history + final logs -> violations.
pub mod verify;
#[allow(unused_imports)]
pub use verify::{verify, Evidence, Kind, NodeLog, Stats, Violation};

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

/// One request of the workload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Req {
    /// `POST /create_topic`.
    CreateTopic { name: String },
    /// `POST /register_broker`; `host` is unique to this request, so its record is identifiable.
    RegisterBroker { id: i32, host: String },
    /// `PUT /broker_registration_change` with a unique `host` and a status.
    ChangeBroker {
        id: i32,
        host: String,
        status: String,
    },
    /// `PUT /delete_broker/{id}`.
    DeleteBroker { id: i32 },
    /// `POST /register_producer/{broker}` (the server allocates the id).
    RegisterProducer { broker: i32 },
    /// `GET /get_topic/{name}?consistent=true`.
    GetTopic { name: String },
    /// `GET /get_broker/{id}?consistent=true`.
    GetBroker { id: i32 },
    /// `GET /get_metadata?consistent=true`.
    GetMetadata,
}

impl Req {
    /// Whether the request appends a record.
    pub fn is_write(&self) -> bool {
        !matches!(
            self,
            Req::GetTopic { .. } | Req::GetBroker { .. } | Req::GetMetadata
        )
    }
}

/// What a request came to.
#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    /// A write's outcome.
    Write(Outcome),
    /// A read answered `200` or `404`: its status and body.
    Read(u16, Value),
    /// A read with no usable answer (an error status, a timeout): nothing to check.
    NoRead(String),
}

/// One request in the history.
#[derive(Clone, Debug)]
pub struct Call {
    /// Which client sent it (`{prefix}-{n}`), for messages.
    pub client: String,
    /// The node address it was sent to.
    pub node: String,
    pub req: Req,
    /// When it was sent, and when its answer (or failure) arrived.
    pub sent: Instant,
    pub answered: Instant,
    pub answer: Answer,
    /// The answer's JSON body (`Null` when there was none).
    pub body: Value,
}

/// A `create_topic` recorded by hand, in the form tests used before issue 13. Its send time is
/// unknown, so it is recorded as sent when the history began (it then never counts as sent after
/// another write was acknowledged).
#[derive(Clone, Debug)]
pub struct Op {
    pub name: String,
    pub addr: String,
    pub outcome: Outcome,
    /// When the answer arrived.
    pub at: Instant,
}

/// One server-sent event a stream reader received.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamEvent {
    /// The `id:` line: the record's offset.
    pub id: u64,
    /// The `event:` line (`record` or `snapshot`).
    pub kind: String,
    /// The `data:` line, parsed.
    pub data: Value,
    /// Which connection of the reader (1, 2, ...) it came on; a reader reconnects with
    /// `Last-Event-ID` after its node dies.
    pub connection: u32,
}

/// Everything one `/stream` reader received, in order.
#[derive(Clone, Debug, Default)]
pub struct StreamLog {
    pub node: String,
    pub events: Vec<StreamEvent>,
    /// Why connections ended, for messages.
    pub notes: Vec<String>,
}

/// The shared history of a test: calls, and the stream readers' logs.
#[derive(Clone)]
pub struct History {
    calls: Arc<Mutex<Vec<Call>>>,
    acked: Arc<AtomicU64>,
    streams: Arc<Mutex<Vec<Arc<Mutex<StreamLog>>>>>,
    readers: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    began: Instant,
}

impl Default for History {
    fn default() -> Self {
        History {
            calls: Arc::default(),
            acked: Arc::default(),
            streams: Arc::default(),
            readers: Arc::default(),
            began: Instant::now(),
        }
    }
}

impl History {
    /// Records a hand-made `create_topic` (see [`Op`]).
    pub fn push(&self, op: Op) {
        let body = match &op.outcome {
            Outcome::Acked(o) => json!({"offset": o}),
            _ => Value::Null,
        };
        self.record(Call {
            client: "test".into(),
            node: op.addr,
            req: Req::CreateTopic { name: op.name },
            sent: self.began,
            answered: op.at,
            answer: Answer::Write(op.outcome),
            body,
        });
    }
    /// Records one call.
    pub fn record(&self, call: Call) {
        if matches!(call.answer, Answer::Write(Outcome::Acked(_))) {
            self.acked.fetch_add(1, Ordering::SeqCst);
        }
        self.calls.lock().unwrap().push(call);
    }
    /// Acknowledged writes so far.
    pub fn acked(&self) -> u64 {
        self.acked.load(Ordering::SeqCst)
    }
    /// Every call so far.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }
    /// What every stream reader received so far.
    pub fn streams(&self) -> Vec<StreamLog> {
        self.streams
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.lock().unwrap().clone())
            .collect()
    }
    /// The first acknowledgement at or after `t`.
    pub fn first_ack_after(&self, t: Instant) -> Option<Instant> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| matches!(c.answer, Answer::Write(Outcome::Acked(_))) && c.answered >= t)
            .map(|c| c.answered)
            .min()
    }
    /// Waits until `n` more writes than `from` are acknowledged.
    pub async fn wait_acked(&self, from: u64, n: u64, timeout: Duration, what: &str) {
        eventually(timeout, what, || async {
            (self.acked() >= from + n).then_some(())
        })
        .await
    }
    /// Starts one `/stream?offset=0` reader per address; each records every event and, when
    /// its connection ends (the node died), reconnects to the same address with
    /// `Last-Event-ID`. They run until `check` stops them.
    pub fn watch_streams(&self, addrs: &[String]) {
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(2))
            .build()
            .expect("client");
        for addr in addrs {
            let log = Arc::new(Mutex::new(StreamLog {
                node: addr.clone(),
                ..StreamLog::default()
            }));
            self.streams.lock().unwrap().push(log.clone());
            let task = tokio::spawn(read_stream(http.clone(), addr.clone(), log));
            self.readers.lock().unwrap().push(task);
        }
    }
    /// Stops the stream readers.
    pub fn stop_streams(&self) {
        for t in self.readers.lock().unwrap().drain(..) {
            t.abort();
        }
    }
    /// The highest event id the reader on `addr` received.
    fn stream_head(&self, addr: &str) -> Option<u64> {
        self.streams
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.lock().unwrap())
            .filter(|s| s.node == addr)
            .filter_map(|s| s.events.last().map(|e| e.id))
            .max()
    }
}

/// One reader: connect, record events, reconnect after the last id when the connection ends.
async fn read_stream(http: reqwest::Client, addr: String, log: Arc<Mutex<StreamLog>>) {
    let mut connection = 0u32;
    loop {
        connection += 1;
        let last = log.lock().unwrap().events.last().map(|e| e.id);
        let mut req = http.get(format!("http://{addr}/stream?offset=0"));
        if let Some(id) = last {
            req = req.header("Last-Event-ID", id.to_string());
        }
        let note = match req.send().await {
            Ok(resp) if resp.status() == 200 => {
                let mut body = resp.bytes_stream();
                let mut parser = sse::Parser::new(1 << 24);
                // A chunked snapshot is recorded as one `snapshot` event, at `snapshot_end`.
                let mut parts = yakt::client::SnapshotAssembly::default();
                'read: loop {
                    match body.next().await {
                        Some(Ok(chunk)) => {
                            if let Err(e) = parser.feed(&chunk) {
                                break format!("connection {connection}: {e}");
                            }
                        }
                        Some(Err(e)) => break format!("connection {connection}: {e}"),
                        None => break format!("connection {connection} ended"),
                    }
                    loop {
                        let ev = match parser.next_event() {
                            Ok(Some(ev)) => ev,
                            Ok(None) => break,
                            Err(e) => break 'read format!("connection {connection}: {e}"),
                        };
                        let ev = match ev.event.as_str() {
                            // Where the reader stands, not a record: nothing to check.
                            "progress" => continue,
                            "snapshot_begin" | "snapshot_chunk" => {
                                let r = if ev.event == "snapshot_begin" {
                                    parts.begin(&ev.data)
                                } else {
                                    parts.chunk(&ev.data)
                                };
                                if let Err(e) = r {
                                    break 'read format!("connection {connection}: {e}");
                                }
                                continue;
                            }
                            "snapshot_end" => match parts.end(&ev.data) {
                                Ok(yakt::client::StreamItem::Snapshot {
                                    offset,
                                    epoch,
                                    metadata,
                                }) => sse::Event {
                                    id: ev.id,
                                    event: "snapshot".into(),
                                    data: serde_json::json!({"offset": offset, "epoch": epoch, "metadata": metadata}).to_string(),
                                },
                                Ok(_) => continue,
                                Err(e) => break 'read format!("connection {connection}: {e}"),
                            },
                            _ => ev,
                        };
                        match ev.id.and_then(|id| id.parse::<u64>().ok()) {
                            Some(id) => {
                                let data = serde_json::from_str(&ev.data)
                                    .unwrap_or_else(|_| Value::String(ev.data.clone()));
                                log.lock().unwrap().events.push(StreamEvent {
                                    id,
                                    kind: ev.event,
                                    data,
                                    connection,
                                });
                            }
                            // `event: shutdown` / `event: stream_error` carry no id: why the
                            // connection ends, not a record. (An id-only event has no data
                            // and is not dispatched: it moves the position past offsets
                            // without a record; nothing to check.)
                            None => log.lock().unwrap().notes.push(format!(
                                "connection {connection}: event {}: {}",
                                ev.event, ev.data
                            )),
                        }
                    }
                }
            }
            Ok(resp) => format!("connection {connection}: status {}", resp.status()),
            Err(e) => format!("connection {connection}: {e}"),
        };
        {
            let mut l = log.lock().unwrap();
            if l.notes.len() < 200 {
                l.notes.push(note);
            }
        }
        // Pacing, not synchronization: do not spin on a node that is down.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Sends one request and classifies the answer: (what it came to, the body).
pub async fn perform(http: &reqwest::Client, addr: &str, req: &Req) -> (Answer, Value) {
    let base = format!("http://{addr}");
    let r = match req {
        Req::CreateTopic { name } => http
            .post(format!("{base}/create_topic"))
            .json(&json!({ "name": name })),
        Req::RegisterBroker { id, host } => http
            .post(format!("{base}/register_broker"))
            .json(&json!({"brokerId": id, "brokerHost": host, "brokerPort": 9092})),
        Req::ChangeBroker { id, host, status } => http
            .put(format!("{base}/broker_registration_change"))
            .json(&json!({"brokerId": id, "brokerHost": host, "brokerStatus": status})),
        Req::DeleteBroker { id } => http.put(format!("{base}/delete_broker/{id}")),
        Req::RegisterProducer { broker } => http.post(format!("{base}/register_producer/{broker}")),
        Req::GetTopic { name } => http.get(format!("{base}/get_topic/{name}?consistent=true")),
        Req::GetBroker { id } => http.get(format!("{base}/get_broker/{id}?consistent=true")),
        Req::GetMetadata => http.get(format!("{base}/get_metadata?consistent=true")),
    };
    let write = req.is_write();
    let resp = match r.send().await {
        // The connection was never made: the request was never seen by anyone.
        Err(e) if e.is_connect() && write => {
            return (
                Answer::Write(Outcome::Failed(format!("connect: {e}"))),
                Value::Null,
            )
        }
        Err(e) if write => {
            return (
                Answer::Write(Outcome::Unknown(format!("transport: {e}"))),
                Value::Null,
            )
        }
        Err(e) => return (Answer::NoRead(format!("transport: {e}")), Value::Null),
        Ok(r) => r,
    };
    let status = resp.status().as_u16();
    let body: Value = match resp.json().await {
        Ok(v) => v,
        Err(e) => {
            let why = format!("{status} with an unreadable body: {e}");
            return if write {
                (Answer::Write(Outcome::Unknown(why)), Value::Null)
            } else {
                (Answer::NoRead(why), Value::Null)
            };
        }
    };
    if !write {
        return match status {
            200 | 404 => (Answer::Read(status, body.clone()), body),
            s => (Answer::NoRead(format!("status {s} {body}")), body),
        };
    }
    let outcome = match status {
        200 => match body["offset"].as_u64() {
            Some(o) => Outcome::Acked(o),
            None => Outcome::Unknown(format!("200 without an offset: {body}")),
        },
        503 if body["error"] == "unavailable" => Outcome::Failed(format!("503 {body}")),
        400..=499 => Outcome::Failed(format!("{status} {body}")),
        // `503 unknown_outcome`; any other 5xx is an answer the API never gives, which the
        // checker reports (`Kind::BadStatus`).
        s => Outcome::Unknown(format!("status {s} {body}")),
    };
    (Answer::Write(outcome), body)
}

/// Sends one request, records it in `history`, and returns what it came to.
pub async fn perform_recorded(
    http: &reqwest::Client,
    addr: &str,
    client: &str,
    req: Req,
    history: &History,
) -> Answer {
    let sent = Instant::now();
    let (answer, body) = perform(http, addr, &req).await;
    history.record(Call {
        client: client.to_string(),
        node: addr.to_string(),
        req,
        sent,
        answered: Instant::now(),
        answer: answer.clone(),
        body,
    });
    answer
}

/// Sends one `create_topic` and classifies the answer (not recorded).
pub async fn create_topic_once(http: &reqwest::Client, addr: &str, name: &str) -> Outcome {
    match perform(http, addr, &Req::CreateTopic { name: name.into() })
        .await
        .0
    {
        Answer::Write(o) => o,
        other => Outcome::Unknown(format!("{other:?}")),
    }
}

/// The HTTP client of the workload: its timeout is longer than any server-side path (forward
/// 10 s over commit 5 s), so a write still being worked on is not abandoned by the client.
fn workload_http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .connect_timeout(Duration::from_secs(2))
        .build()
        .expect("client")
}

/// Workload clients started so far in this process (names them uniquely).
static WORKLOADS: AtomicU64 = AtomicU64::new(0);

/// How many broker ids the workload's clients fight over.
const BROKER_IDS: u64 = 5;
const STATUSES: [&str; 4] = ["FENCED", "UNFENCED", "ALIVE", "INIT"];

/// The colliding workload: clients, each sending requests to random nodes, drawn from a mix of
/// writes on a small, slowly growing set of topic names and five broker ids, and consistent
/// reads of the same names and ids.
pub struct Workload {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    pub history: History,
}

impl Workload {
    /// Starts `n` clients over `addrs`, recording into `history`; topic names are
    /// `{prefix}-{k}` with `k` drawn from a pool that grows by one every three requests.
    pub fn start(n: usize, addrs: Vec<String>, prefix: &str, history: History) -> Workload {
        let stop = Arc::new(AtomicBool::new(false));
        let http = workload_http();
        let count = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for w in 0..n {
            let (stop, history, http, addrs, count) = (
                stop.clone(),
                history.clone(),
                http.clone(),
                addrs.clone(),
                count.clone(),
            );
            let prefix = prefix.to_string();
            // Unique across every workload of the process, so that `brokerHost` values are.
            let client = format!("{prefix}-w{}c{w}", WORKLOADS.fetch_add(1, Ordering::SeqCst));
            tasks.push(tokio::spawn(async move {
                let mut rng = 0x9E3779B97F4A7C15u64
                    ^ (w as u64 + 1).wrapping_mul(0xD1B54A32D192ED03)
                    ^ (std::process::id() as u64).rotate_left(32);
                let mut next = move || {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    rng
                };
                let mut seq = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    let addr = &addrs[(next() % addrs.len() as u64) as usize];
                    let k = count.fetch_add(1, Ordering::SeqCst);
                    let name = format!("{prefix}-{}", next() % (4 + k / 3));
                    let id = (next() % BROKER_IDS) as i32;
                    let host = format!("h-{client}-{seq}");
                    seq += 1;
                    let req = match next() % 100 {
                        0..=34 => Req::CreateTopic { name },
                        35..=44 => Req::RegisterBroker { id, host },
                        45..=56 => Req::ChangeBroker {
                            id,
                            host,
                            status: STATUSES[(next() % 4) as usize].into(),
                        },
                        57..=61 => Req::DeleteBroker { id },
                        62..=65 => Req::RegisterProducer { broker: id },
                        66..=79 => Req::GetTopic { name },
                        80..=91 => Req::GetBroker { id },
                        _ => Req::GetMetadata,
                    };
                    let answer = perform_recorded(&http, addr, &client, req, &history).await;
                    let pace = match &answer {
                        Answer::Write(Outcome::Failed(w)) => {
                            w.starts_with("connect") || w.starts_with("503")
                        }
                        Answer::Write(Outcome::Unknown(_)) | Answer::NoRead(_) => true,
                        _ => false,
                    };
                    if pace {
                        // Pacing, not synchronization: do not spin on a node that is down.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }));
        }
        Workload {
            stop,
            tasks,
            history,
        }
    }

    /// Stops the clients and waits for every request in flight to get its answer.
    pub async fn stop(self) -> History {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.tasks {
            t.await.expect("workload client");
        }
        self.history
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
                state.push_str(&format!(
                    "\n--- node {}: {:?}\n{}",
                    c.nodes[i].id,
                    c.cluster_view(i).await,
                    log_excerpt(&c.nodes[i].log())
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
    let voters = c.wait_voters(n, Duration::from_secs(120));
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

/// 4000 bytes of a node's log from a little before its first panic or error, else its tail.
fn log_excerpt(l: &str) -> &str {
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
    &l[k..e]
}

/// Each node's view, whether it runs, and its first panic or error (else its log's tail).
pub async fn describe(c: &mut Cluster, nodes: &[usize]) -> String {
    let mut state = String::new();
    for &i in nodes {
        let running = c.nodes[i].running();
        state.push_str(&format!(
            "\n--- node {} (running: {running}): {:?}\n{}",
            c.nodes[i].id,
            c.cluster_view(i).await,
            log_excerpt(&c.nodes[i].log())
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

/// Counts found by [`check`], for the test's report.
#[derive(Debug, Default)]
pub struct Report {
    pub acked: usize,
    pub failed: usize,
    pub unknown: usize,
    /// Unknown writes that turned out committed (those with an identifiable record).
    pub unknown_committed: usize,
    /// Consistent reads answered, and how many of them were compared with an image of the log.
    pub reads: usize,
    pub reads_checked: usize,
    /// Stream events received and compared.
    pub stream_events: usize,
    /// Records the image refused at apply (none of them acknowledged).
    pub refused: usize,
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
            "{} acknowledged, {} failed, {} unknown ({} of them committed); {} consistent reads ({} compared with an image of the log); {} stream events; {} records from offset {} to {} identical on every node ({} refused at apply)",
            self.acked,
            self.failed,
            self.unknown,
            self.unknown_committed,
            self.reads,
            self.reads_checked,
            self.stream_events,
            self.records,
            self.log_start,
            self.applied,
            self.refused,
        )
    }
}

/// Writes a barrier record through `leader` (retrying until one is acknowledged, each attempt
/// recorded); returns its offset.
async fn barrier(c: &Cluster, leader: usize, history: &History) -> u64 {
    let http = workload_http();
    let addr = c.nodes[leader].addr.clone();
    let mut n = 0;
    eventually(Duration::from_secs(60), "a barrier write", || {
        n += 1;
        let name = format!("barrier-{}-{n}", std::process::id());
        let (http, addr) = (http.clone(), addr.clone());
        async move {
            let req = Req::CreateTopic { name };
            match perform_recorded(&http, &addr, "checker", req, history).await {
                Answer::Write(Outcome::Acked(o)) => Some(o),
                _ => None,
            }
        }
    })
    .await
}

/// Checks the history against the nodes `nodes` of `c` (all must be running): writes a barrier
/// record, waits until every node has applied it and the stream readers on those nodes have
/// received it, reads every node's log, and panics listing every violation found.
pub async fn check(c: &Cluster, nodes: &[usize], history: &History) -> Report {
    let leader = leader_of(c, nodes, Duration::from_secs(30)).await;
    let barrier = barrier(c, leader, history).await;
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
    // The readers on the checked nodes receive the barrier (a reader that does not is reported
    // below by what it missed, if anything; it is not a violation to be slow).
    let addrs: Vec<String> = nodes.iter().map(|&i| c.nodes[i].addr.clone()).collect();
    let watched = !history.streams().is_empty();
    if watched {
        let _ = tokio::time::timeout(
            Duration::from_secs(30),
            eventually(
                Duration::from_secs(30),
                "readers at the barrier",
                || async {
                    addrs
                        .iter()
                        .all(|a| history.stream_head(a).is_some_and(|h| h >= barrier))
                        .then_some(())
                },
            ),
        )
        .await;
    }
    history.stop_streams();

    let mut log_start = 1;
    for &i in nodes {
        let v = c.cluster_view(i).await.expect("cluster view");
        log_start = log_start.max(v["log_start_offset"].as_u64().unwrap_or(1));
    }
    let mut logs = Vec::new();
    for &i in nodes {
        let records: Vec<Value> = c
            .records_from(i, log_start)
            .await
            .into_iter()
            .filter(|r| r["offset"].as_u64().is_some_and(|o| o <= applied))
            .collect();
        logs.push(NodeLog {
            node: c.nodes[i].addr.clone(),
            records,
        });
    }
    let calls = history.calls();
    let streams = history.streams();
    let evidence = Evidence {
        calls: &calls,
        streams: &streams,
        logs: &logs,
        log_start,
        applied,
        image: Some(&image["metadata"]),
    };
    let (violations, stats) = verify(&evidence);
    let report = Report {
        acked: stats.acked,
        failed: stats.failed,
        unknown: stats.unknown,
        unknown_committed: stats.unknown_committed,
        reads: stats.reads,
        reads_checked: stats.reads_checked_against_images,
        stream_events: stats.stream_events,
        refused: stats.refused,
        records: stats.records,
        applied,
        log_start,
    };
    if watched {
        for s in &streams {
            let head = s.events.last().map(|e| e.id);
            if addrs.contains(&s.node) && head.is_none_or(|h| h < barrier) {
                println!(
                    "note: the reader on {} reached {head:?}, not the barrier at {barrier}; its connections: {:?}",
                    s.node,
                    s.notes.iter().rev().take(5).collect::<Vec<_>>()
                );
            }
        }
    }
    if !violations.is_empty() {
        let shown: Vec<String> = violations.iter().take(40).map(|v| v.to_string()).collect();
        panic!(
            "the history checker found {} violation(s) ({report}):\n{}",
            violations.len(),
            shown.join("\n")
        );
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
