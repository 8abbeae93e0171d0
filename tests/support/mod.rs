//! Test harness: real `yakt node` processes on free loopback ports, each with its own data
//! directory, and the means to find the leader, SIGKILL, SIGSTOP/SIGCONT, restart and corrupt
//! them. Every wait is a poll with a deadline.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The yakt binary under test.
pub const YAKT: &str = env!("CARGO_BIN_EXE_yakt");
/// The dump tool under test.
pub const YAKT_DUMP: &str = env!("CARGO_BIN_EXE_yakt-dump");

/// Flags that make tests fast: short election timeouts.
pub const FAST: &[&str] = &[
    "--election-timeout-min-ms",
    "600",
    "--election-timeout-max-ms",
    "1200",
    "--heartbeat-ms",
    "150",
];

/// A free loopback port ([`yakt::client::loopback::free_port`], which the bench uses too).
pub fn free_port() -> u16 {
    yakt::client::loopback::free_port().expect("bind an ephemeral loopback port")
}

/// The number of voters in a `/cluster` view if it is the leader's (the membership that counts).
pub fn leaders_voters(view: &Value) -> Option<usize> {
    if view["role"] != "leader" {
        return None;
    }
    let members = view["members"].as_array()?;
    Some(members.iter().filter(|m| m["voter"] == true).count())
}

/// Node flags that snapshot and purge after a few entries (small segments, so whole ones fall
/// below the snapshot): for tests of readers below the log start.
pub const PURGE_SOON: &[&str] = &[
    "--snapshot-every",
    "20",
    "--keep-after-snapshot",
    "5",
    "--segment-bytes",
    "4096",
];

/// An HTTP client that sends `Authorization: Bearer <token>` on every request: a [`Cluster`]'s
/// `http` for nodes started with `--token ... --protect-reads` (else it cannot even see them up).
pub fn http_with_token(token: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().expect("a header value"),
    );
    reqwest::Client::builder()
        .no_proxy()
        .default_headers(headers)
        .timeout(Duration::from_secs(15))
        .build()
        .expect("client")
}

/// An HTTP client without a whole-request timeout, for streams that stay open across faults.
pub fn stream_http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("http client")
}

/// Polls `f` until it returns `Some`, or panics with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    match poll_until(timeout, f).await {
        Some(v) => v,
        None => panic!("timed out after {timeout:?} waiting for: {what}"),
    }
}

/// Polls `f` until it returns `Some`, or answers `None` after `timeout` (for a caller that has
/// more to say than [`eventually`]'s panic).
pub async fn poll_until<T, F, Fut>(timeout: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One `yakt node` process.
pub struct NodeProc {
    pub id: u64,
    pub addr: String,
    pub data_dir: PathBuf,
    pub args: Vec<String>,
    pub child: Option<Child>,
    pub log_path: PathBuf,
}

impl NodeProc {
    /// Starts (or restarts) the process with its arguments.
    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("open node log");
        let child = Command::new(YAKT)
            .args(&self.args)
            .env("RUST_LOG", "info,openraft=warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn yakt node");
        self.child = Some(child);
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends a signal to the running process.
    pub fn signal(&self, sig: i32) {
        if let Some(c) = &self.child {
            unsafe {
                libc::kill(c.id() as i32, sig);
            }
        }
    }

    /// SIGTERM and wait for the exit status (None if still running after `timeout`).
    pub fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        self.signal(libc::SIGTERM);
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    self.child = None;
                    return Some(st);
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// The node's stderr so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The node's log directory.
    pub fn log_dir(&self) -> PathBuf {
        self.data_dir.join("log")
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        self.signal(libc::SIGCONT);
        self.kill();
    }
}

/// A cluster of real node processes.
pub struct Cluster {
    pub nodes: Vec<NodeProc>,
    pub dir: tempfile::TempDir,
    pub http: reqwest::Client,
    pub extra: Vec<String>,
    /// `http`, or `https` for a cluster started with TLS flags (then `http` must trust its CA).
    pub scheme: &'static str,
    /// Flags for one node only (its own certificate), from the cluster directory and its id.
    pub node_args: Option<fn(&Path, u64) -> Vec<String>>,
}

/// The `-e` argument naming the given nodes.
fn seeds(nodes: &[NodeProc]) -> String {
    nodes
        .iter()
        .map(|n| format!("{}/{}", n.id, n.addr))
        .collect::<Vec<_>>()
        .join(",")
}

impl Cluster {
    /// A cluster with no nodes yet: a fresh temporary directory and an HTTP client; every node
    /// added later gets `extra` on its command line.
    pub fn empty(extra: &[&str]) -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(15))
            .build()
            .expect("client");
        Cluster {
            nodes: Vec::new(),
            dir,
            http,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            scheme: "http",
            node_args: None,
        }
    }

    /// Starts `n` nodes with the original start lines (node 1 alone, the others with `-e`
    /// naming the earlier ones) and waits until all are voters under one leader.
    pub async fn start(n: usize, extra: &[&str]) -> Cluster {
        let mut c = Cluster::empty(extra);
        for _ in 0..n {
            let i = c.add_node();
            c.wait_listening(i).await;
        }
        let timeout = Duration::from_secs(30);
        if poll_until(timeout, || c.voters_seen(n)).await.is_none() {
            let all: Vec<usize> = (0..n).collect();
            panic!(
                "timed out after {timeout:?} waiting for {n} voters{}",
                c.log_tails(&all)
            );
        }
        c
    }

    /// Waits until node `i` listens on its address. Its port was free a moment before the
    /// node bound it (`free_port`), but another process, or an outgoing connection's source
    /// port, may take it in between: a node that exited because its address was in use is
    /// started again on a fresh port (before any later node names it as a seed).
    pub async fn wait_listening(&mut self, i: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if self.bound(i)
                && tokio::net::TcpStream::connect(&self.nodes[i].addr)
                    .await
                    .is_ok()
            {
                return;
            }
            if !self.nodes[i].running() {
                assert!(
                    self.nodes[i].log().contains("in use"),
                    "node {} exited at start:{}",
                    self.nodes[i].id,
                    self.log_tails(&[i])
                );
                let node = &mut self.nodes[i];
                // The same host: a node of a `ProxiedCluster` has its own loopback IP.
                let host = node.addr.rsplit_once(':').map_or("127.0.0.1", |(h, _)| h);
                let addr = format!("{host}:{}", free_port());
                if let Some(a) = node.args.iter().position(|a| a == "-a") {
                    node.args[a + 1] = addr.clone();
                }
                node.addr = addr;
                node.spawn();
            }
            assert!(
                Instant::now() < deadline,
                "node {} does not listen on {}:{}",
                self.nodes[i].id,
                self.nodes[i].addr,
                self.log_tails(&[i])
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Whether node `i`'s newest process holds its address: its log says `node listening` after
    /// its last `cannot listen`. A connection alone proves nothing: when this node lost the race
    /// for a free port, the process that won it (another test's node) answers.
    fn bound(&self, i: usize) -> bool {
        let log = self.nodes[i].log();
        match (log.rfind("node listening"), log.rfind("cannot listen")) {
            (Some(listening), Some(refused)) => listening > refused,
            (Some(_), None) => true,
            (None, _) => false,
        }
    }

    /// The last log lines of the given nodes, for a failure message.
    pub fn log_tails(&self, nodes: &[usize]) -> String {
        let mut tails = String::new();
        for &i in nodes {
            let log = self.nodes[i].log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(40)..].join("\n");
            tails.push_str(&format!("\n--- node index {i}, last log lines ---\n{tail}"));
        }
        tails
    }

    /// Starts one more node that joins through the existing ones; returns its index.
    pub fn add_node(&mut self) -> usize {
        let id = self.nodes.len() as u64 + 1;
        let addr = format!("127.0.0.1:{}", free_port());
        let data_dir = self.dir.path().join(format!("node-{id}"));
        let mut args = vec![
            "node".to_string(),
            "-i".into(),
            id.to_string(),
            "-a".into(),
            addr.clone(),
        ];
        if !self.nodes.is_empty() {
            args.push("-e".into());
            args.push(seeds(&self.nodes));
        }
        args.push("--data-dir".into());
        args.push(data_dir.display().to_string());
        args.extend(FAST.iter().map(|s| s.to_string()));
        args.extend(self.extra.iter().cloned());
        if let Some(f) = self.node_args {
            args.extend(f(self.dir.path(), id));
        }
        let log_path = self.dir.path().join(format!("node-{id}.log"));
        let mut node = NodeProc {
            id,
            addr,
            data_dir,
            args,
            child: None,
            log_path,
        };
        node.spawn();
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    /// GET a path on node `i`: status and JSON body (Null when not JSON or unreachable).
    pub async fn get(&self, i: usize, path: &str) -> (u16, Value) {
        self.request(i, reqwest::Method::GET, path, None).await
    }

    /// POST JSON to node `i`.
    pub async fn post(&self, i: usize, path: &str, body: Value) -> (u16, Value) {
        self.request(i, reqwest::Method::POST, path, Some(body))
            .await
    }

    /// PUT JSON to node `i`.
    pub async fn put(&self, i: usize, path: &str, body: Value) -> (u16, Value) {
        self.request(i, reqwest::Method::PUT, path, Some(body))
            .await
    }

    /// Any request; status 0 when the node did not answer.
    pub async fn request(
        &self,
        i: usize,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let url = format!("{}://{}{}", self.scheme, self.nodes[i].addr, path);
        let mut req = self.http.request(method, &url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        match req.send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let v = resp.json().await.unwrap_or(Value::Null);
                (status, v)
            }
            Err(_) => (0, Value::Null),
        }
    }

    /// Node `i`'s `/cluster` view, if it answers.
    pub async fn cluster_view(&self, i: usize) -> Option<Value> {
        let (s, v) = self.get(i, "/cluster").await;
        (s == 200).then_some(v)
    }

    /// Waits until every running node agrees on one leader; returns the leader's index.
    pub async fn leader(&self, timeout: Duration) -> usize {
        self.leader_among(&(0..self.nodes.len()).collect::<Vec<_>>(), timeout)
            .await
    }

    /// Waits until the given nodes agree on one leader among them.
    /// On a timeout it panics with the last lines of each of those nodes' logs, so that a
    /// cluster that did not elect says why.
    pub async fn leader_among(&self, among: &[usize], timeout: Duration) -> usize {
        let found = poll_until(timeout, || async {
            let mut leader = None;
            for &i in among {
                let v = self.cluster_view(i).await?;
                let l = v["leader_id"].as_u64()?;
                if leader.is_some_and(|x| x != l) {
                    return None;
                }
                leader = Some(l);
            }
            // One of them: right after a partition the others may still name the old leader.
            let idx = among
                .iter()
                .copied()
                .find(|&i| Some(self.nodes[i].id) == leader)?;
            let v = self.cluster_view(idx).await?;
            (v["role"] == "leader").then_some(idx)
        })
        .await;
        if let Some(idx) = found {
            return idx;
        }
        let tails = self.log_tails(among);
        panic!("timed out after {timeout:?} waiting for one leader that nodes {among:?} agree on{tails}");
    }

    /// Waits until `n` voters are in the membership as seen by the leader.
    pub async fn wait_voters(&self, n: usize, timeout: Duration) {
        eventually(timeout, &format!("{n} voters"), || self.voters_seen(n)).await
    }

    /// `Some` once a node that leads counts at least `n` voters.
    async fn voters_seen(&self, n: usize) -> Option<()> {
        for i in 0..self.nodes.len() {
            if let Some(voters) = self.cluster_view(i).await.as_ref().and_then(leaders_voters) {
                return (voters >= n).then_some(());
            }
        }
        None
    }

    /// Waits until node `i` has applied `offset`.
    pub async fn wait_applied(&self, i: usize, offset: u64, timeout: Duration) {
        eventually(
            timeout,
            &format!("node {} applied {offset}", self.nodes[i].id),
            || async {
                let v = self.cluster_view(i).await?;
                (v["applied_offset"].as_u64()? >= offset).then_some(())
            },
        )
        .await
    }

    /// Creates a topic through node `i`, retrying while there is no leader; returns its offset.
    pub async fn create_topic(&self, i: usize, name: &str) -> u64 {
        eventually(
            Duration::from_secs(20),
            &format!("topic {name} created via node {i}"),
            || async {
                let (s, v) = self
                    .post(i, "/create_topic", serde_json::json!({"name": name}))
                    .await;
                match s {
                    200 => v["offset"].as_u64(),
                    503 | 0 => None,
                    other => panic!("create_topic {name}: {other} {v}"),
                }
            },
        )
        .await
    }

    /// Creates topics `prefix-0..n` through node `i`, eight at a time; returns the largest
    /// offset.
    pub async fn create_topics(&self, i: usize, prefix: &str, n: usize) -> u64 {
        let mut head = 0;
        let names: Vec<String> = (0..n).map(|k| format!("{prefix}-{k}")).collect();
        for chunk in names.chunks(8) {
            let offs =
                futures::future::join_all(chunk.iter().map(|t| self.create_topic(i, t))).await;
            head = head.max(offs.into_iter().max().unwrap_or(0));
        }
        head
    }

    /// Every record node `i` holds from `from`, read page by page with `/fetch`.
    pub async fn records_from(&self, i: usize, from: u64) -> Vec<Value> {
        let mut out = Vec::new();
        let mut next = from;
        loop {
            let (s, v) = self
                .get(i, &format!("/fetch?offset={next}&max_records=10000"))
                .await;
            assert_eq!(s, 200, "fetch on node {i}: {v}");
            assert!(
                v.get("snapshot").is_none(),
                "offset {next} is below node {i}'s log start"
            );
            let recs = v["records"].as_array().cloned().unwrap_or_default();
            let n = v["next_offset"].as_u64().expect("next_offset");
            if recs.is_empty() && n == next {
                return out;
            }
            out.extend(recs);
            next = n;
        }
    }

    /// Waits until node `i`'s process has exited (panics after `timeout`); returns its status.
    pub fn wait_exit(&mut self, i: usize, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            let child = self.nodes[i].child.as_mut().expect("a started process");
            if let Some(st) = child.try_wait().expect("try_wait") {
                self.nodes[i].child = None;
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "node {} still runs after {timeout:?}",
                self.nodes[i].id
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Path of a node's data directory.
    pub fn data_dir(&self, i: usize) -> &Path {
        &self.nodes[i].data_dir
    }
}

/// Runs `yakt-dump` with arguments; returns (exit code, stdout, stderr).
pub fn dump(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(YAKT_DUMP)
        .args(args)
        .output()
        .expect("run yakt-dump");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A base port such that `base`, `base + 10`, ... (`n` ports spaced by 10) are all free now
/// (what `yakt cluster --base-port` needs).
pub fn free_base_port(n: u16) -> u16 {
    for _ in 0..200 {
        let base = free_port();
        if base as u32 + 10 * n as u32 > u16::MAX as u32 {
            continue;
        }
        let all_free =
            (0..n).all(|k| std::net::TcpListener::bind(("127.0.0.1", base + 10 * k)).is_ok());
        if all_free {
            return base;
        }
    }
    panic!("no free base port with {n} free ports spaced by 10");
}

/// Whether something accepts TCP connections at `addr`.
pub fn port_open(addr: &str) -> bool {
    let addr: std::net::SocketAddr = addr.parse().expect("socket address");
    std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_ok()
}

/// A `yakt` process started by a test; SIGKILLed when dropped, so a failing test leaves no
/// process behind (a `yakt cluster`'s nodes follow it through their parent-death signal).
pub struct YaktProcess(Child);

impl std::ops::Deref for YaktProcess {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for YaktProcess {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for YaktProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Starts `yakt` with `args`, stdout and stderr appended to `log_path`, `RUST_LOG` at info.
pub fn spawn_yakt(args: &[String], log_path: &Path) -> YaktProcess {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .expect("open log");
    Command::new(YAKT)
        .args(args)
        .env("RUST_LOG", "info,openraft=warn")
        .stdout(log.try_clone().expect("clone log handle"))
        .stderr(log)
        .spawn()
        .map(YaktProcess)
        .expect("spawn yakt")
}

/// SIGTERM `child` and wait for its exit status (None if still running after `timeout`).
pub fn terminate_child(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(Some(st)) = child.try_wait() {
            return Some(st);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// Reading and damaging a stopped node's files (issue 12).
pub mod disk;
/// The history checker of the fault tests (issue 6).
pub mod history;
/// Network partitions through per-node proxies (issue 6).
pub mod netfault;
