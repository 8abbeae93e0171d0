//! A yakt node: storage opened, openraft started, the operations the API needs (write, join,
//! leader lookup) independent of HTTP routing, and its stop (`Node::shutdown`). The `node/`
//! folder holds its membership side (`join`) and its background tasks (`tasks`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use openraft::type_config::async_runtime::WatchReceiver;
use openraft::{Config, ServerState, SnapshotPolicy};

use super::committed::CommittedLog;
use super::history::online::{History, LiveSource};
use super::liveness::Liveness;
use super::log_store::LogStore;
use super::network::Network;
use super::proposer::{self, Committed, ProposeError, Proposer};
use super::recovery::Recovery;
use super::snapshot_trigger;
use super::state_machine::MetaState;
use super::{Member, NodeId, Raft};
use crate::config::Defaults;
use crate::metadata::{Image, MetadataError, WriteRequest};
use crate::metrics::Metrics;
use crate::storage::{DirLock, Identity, SegmentLog, StorageError};

mod join;
mod open;
mod tasks;
#[cfg(test)]
pub(crate) mod testing;
pub use join::{JoinAnswer, JoinRequest, MembershipError};
use open::{open_storage, Opened};
use tasks::Tasks;

/// How long a stopping node waits for the Raft core to stop before it flushes the log anyway.
const RAFT_STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a follower waits to apply up to the leader's read index before answering 503.
const READ_BARRIER_TIMEOUT: Duration = Duration::from_secs(5);

/// Everything a node is started with.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    /// This node's id (`-i`).
    pub id: NodeId,
    /// The address other nodes and clients reach this node at (`-a`, or `--advertise-addr`
    /// when set): the one written into the membership.
    pub addr: String,
    /// The local IP this node's outgoing connections (Raft RPC, forwarded writes) come from:
    /// the IP it listens on, so that peers (and a fault-injecting proxy) can tell nodes apart
    /// by source address. `None` lets the OS choose.
    pub bind_ip: Option<std::net::IpAddr>,
    /// Where the log, snapshots and vote live.
    pub data_dir: PathBuf,
    /// Take a snapshot after at least this many log entries (more for a large image; see
    /// [`super::snapshot_trigger`]).
    pub snapshot_every: u64,
    /// Entries kept below a snapshot for slow followers before they are purged.
    pub keep_after_snapshot: u64,
    /// Snapshot files kept (at least 2): the log is never purged past the oldest, so a newest
    /// snapshot that fails verification at start falls back to an older one.
    pub keep_snapshots: usize,
    /// Election timeout range, ms.
    pub election_timeout_ms: (u64, u64),
    /// Heartbeat interval, ms.
    pub heartbeat_ms: u64,
    /// Segment file size.
    pub segment_bytes: u64,
    /// Bearer token for node-to-node calls.
    pub token: Option<String>,
    /// TLS for node-to-node calls (Raft RPCs, joining, forwarding): the peer CA to check the
    /// other nodes against and this node's certificate to present. `None`: plain HTTP.
    pub tls: Option<crate::tls::ClientTls>,
    /// How long the leader waits for a watched broker's heartbeat before fencing it.
    pub broker_session_timeout: Duration,
}

impl NodeOptions {
    /// Options with yakt's defaults ([`Defaults`]) for node `id` at `addr`.
    pub fn new(id: NodeId, addr: impl Into<String>, data_dir: PathBuf) -> Self {
        Self {
            id,
            addr: addr.into(),
            bind_ip: None,
            data_dir,
            snapshot_every: Defaults::SNAPSHOT_EVERY,
            keep_after_snapshot: Defaults::KEEP_AFTER_SNAPSHOT,
            keep_snapshots: Defaults::KEEP_SNAPSHOTS,
            election_timeout_ms: (
                Defaults::ELECTION_TIMEOUT_MIN_MS,
                Defaults::ELECTION_TIMEOUT_MAX_MS,
            ),
            heartbeat_ms: Defaults::HEARTBEAT_MS,
            segment_bytes: Defaults::segment_bytes(),
            token: None,
            tls: None,
            broker_session_timeout: Defaults::BROKER_SESSION_TIMEOUT,
        }
    }
}

/// Why a node could not start or do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Opening the data directory failed (corruption included).
    #[error("cannot open the data directory {dir}: {source}")]
    Storage {
        dir: PathBuf,
        #[source]
        source: StorageError,
    },
    /// The state machine could not load its snapshot.
    #[error("cannot load the newest snapshot: {0}")]
    Snapshot(#[source] std::io::Error),
    /// openraft refused the configuration or failed to start.
    #[error("raft: {0}")]
    Raft(String),
    /// Asked to found a cluster on a directory that already belongs to one.
    #[error("{0}")]
    LostMembership(String),
    /// The final flush of the log, when the node stopped, failed.
    #[error("final flush of the log in {dir}: {source}")]
    Flush {
        dir: PathBuf,
        #[source]
        source: StorageError,
    },
}

/// The running node.
pub struct Node {
    /// This node's id.
    pub id: NodeId,
    /// This node's address.
    pub addr: String,
    /// The openraft handle.
    pub raft: Raft,
    /// The image and applied position.
    pub state: Arc<MetaState>,
    /// The segment log (openraft's log store writes it; readers go through `committed`).
    log: Arc<SegmentLog>,
    /// Committed reads of the log, the only way past Raft to it (see [`Node::committed`]).
    committed: CommittedLog,
    /// The image as of older offsets, rebuilt from snapshots and the log (see [`Node::history`]).
    history: History,
    /// Counters and histograms for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// This data directory's incarnation and cluster id.
    pub identity: Arc<Identity>,
    /// Whether this node votes yet, and whom it accepts replication from until it does.
    pub recovery: Arc<Recovery>,
    /// Ids whose admission (learner, promotion, new incarnation) the leader is working on.
    admitting: std::sync::Mutex<BTreeSet<NodeId>>,
    /// One membership change at a time: openraft refuses a second while one is under way.
    membership_change: tokio::sync::Mutex<()>,
    proposer: Proposer,
    /// Broker sessions and fencing, while this node leads (see [`super::liveness`]).
    liveness: Liveness,
    http: reqwest::Client,
    /// `http` or `https`, for the URLs of the calls above.
    scheme: &'static str,
    token: Option<String>,
    /// Set once the node is shutting down (SSE streams end on it).
    shutdown: tokio::sync::watch::Sender<bool>,
    /// Every background task this node runs; [`Node::shutdown`] stops them.
    tasks: Tasks,
    /// The data directory (named in errors).
    data_dir: PathBuf,
    /// Held while the node lives: no second process opens this data directory.
    _dir_lock: DirLock,
}

/// Who leads, as this node sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderInfo {
    pub id: NodeId,
    pub addr: String,
}

impl Node {
    /// Opens the data directory and starts openraft. The node does not yet initialize or join:
    /// call [`Node::bootstrap`] once the HTTP server is listening.
    pub async fn start(opts: NodeOptions) -> Result<Arc<Node>, NodeError> {
        let dir = opts.data_dir.clone();
        let Opened {
            dir_lock,
            identity,
            committed,
            log,
            recovery,
            vote,
            snapshots,
            sm,
        } = open_storage(&opts)?;
        let state = sm.shared();

        let config = Config {
            cluster_name: "yakt".into(),
            election_timeout_min: opts.election_timeout_ms.0,
            election_timeout_max: opts.election_timeout_ms.1,
            heartbeat_interval: opts.heartbeat_ms,
            install_snapshot_timeout: 30_000,
            // Snapshots are requested by `snapshot_trigger`, which sizes the interval by the image.
            snapshot_policy: SnapshotPolicy::Never,
            max_in_snapshot_log_to_keep: opts.keep_after_snapshot,
            max_payload_entries: 4096,
            // A follower whose log went backwards (wiped, or cut below what it acknowledged)
            // is not something to paper over: it recovers (see `recovery`), announces itself
            // to the leader, and the leader resets its progress for that node once
            // (`allow_next_revert`). Everything else is a bug openraft should shout about.
            allow_log_reversion: Some(false),
            // Elections start switched off: `Recovery` switches them on once this node may
            // vote (at once for a node whose log and seat are intact).
            enable_elect: false,
            // A restarted leader stands for election rather than resuming its old term: its
            // first entry of the new term then bounds every read index.
            enable_leader_restore: Some(false),
            ..Default::default()
        };
        let config = Arc::new(
            config
                .validate()
                .map_err(|e| NodeError::Raft(e.to_string()))?,
        );
        let network = Network::new(
            opts.token.clone(),
            opts.bind_ip,
            identity.clone(),
            opts.tls.as_ref(),
        )
        .map_err(|e| NodeError::Raft(format!("the HTTP client for peers: {e}")))?;
        let addresses = network.addresses();
        let raft = Raft::new(
            opts.id,
            config,
            network,
            LogStore::new(log.clone(), vote, Arc::new(committed)).with_snapshots(snapshots.clone()),
            sm,
        )
        .await
        .map_err(|e| NodeError::Raft(e.to_string()))?;
        let mut http = reqwest::Client::builder();
        if let Some(tls) = &opts.tls {
            http = tls.apply(http);
        }
        let http = http
            .no_proxy()
            .local_address(opts.bind_ip)
            // Below the servers' 30 s header read timeout (see network.rs).
            .pool_idle_timeout(Duration::from_secs(20))
            .connect_timeout(Duration::from_millis(500))
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| NodeError::Raft(format!("http client: {e}")))?;
        let tasks = Tasks::new();
        let durable_log = log.clone();
        tasks.spawn(recovery.clone().watch(raft.clone(), move || {
            durable_log.durable_index().unwrap_or(0)
        }));
        tasks.spawn(tasks::watch_addresses(raft.clone(), addresses));
        tasks.spawn(tasks::watch_leader(opts.id, raft.clone()));
        tasks.spawn(snapshot_trigger::run(
            raft.clone(),
            state.clone(),
            opts.snapshot_every,
        ));
        tasks.spawn(tasks::release_sealed_pages(log.clone()));
        Ok(Arc::new(Node {
            id: opts.id,
            addr: opts.addr,
            raft,
            committed: CommittedLog::new(log.clone(), state.clone()),
            history: History::new(LiveSource::new(log.clone(), snapshots, state.clone())),
            log,
            state,
            metrics: Arc::new(Metrics::default()),
            identity,
            recovery,
            admitting: std::sync::Mutex::new(BTreeSet::new()),
            membership_change: tokio::sync::Mutex::new(()),
            proposer: Proposer::default(),
            liveness: Liveness::new(opts.broker_session_timeout),
            http,
            scheme: crate::tls::client::scheme(opts.tls.as_ref()),
            token: opts.token,
            shutdown: tokio::sync::watch::channel(false).0,
            tasks,
            data_dir: dir,
            _dir_lock: dir_lock,
        }))
    }

    /// Starts a new one-node cluster (no seeds, nothing on disk), or sets off the join loop
    /// that announces this node to the leader until it holds its own voting seat (a new node,
    /// a wiped one, or one whose log lost acknowledged entries). A node that restarts intact
    /// does neither: its persisted membership wins over `-e`.
    pub async fn bootstrap(
        self: &Arc<Self>,
        seeds: Vec<(NodeId, String)>,
    ) -> Result<(), NodeError> {
        self.start_liveness();
        let initialized = self
            .raft
            .is_initialized()
            .await
            .map_err(|e| NodeError::Raft(e.to_string()))?;
        if !initialized && seeds.is_empty() {
            // A directory that knows a cluster id but holds no membership joined a cluster (a
            // join records the id before the leader sends anything), lost its Raft state, or is
            // a founder cut short between recording its id and initializing. Founding a
            // one-node cluster under that id could acknowledge writes the real cluster never
            // sees, whose leader would later overwrite them under an image that kept them; and
            // an initialized directory without an id is what a directory from before cluster ids
            // looks like, which adopts the id of the first leader that writes to it. So the id
            // comes first, and a directory with an id and no membership is refused.
            if let Some(cluster_id) = self.identity.cluster_id() {
                let dir = self.identity.path();
                let dir = dir.parent().unwrap_or(&dir);
                return Err(NodeError::LostMembership(format!(
                    "the data directory {} belongs to cluster {cluster_id} but holds no Raft state{}: \
                     start it with -e naming the other nodes to join that cluster (as a node that lost its data, if it had any); \
                     if it never served (a first start cut short), wipe the directory and start it again \
                     (see docs/operations.md, \"Recovering a node step by step\")",
                    dir.display(),
                    if self.recovery.unproven().lost_data {
                        format!(" ({})", self.recovery.reason())
                    } else {
                        String::new()
                    }
                )));
            }
            let cluster_id = uuid::Uuid::new_v4();
            self.identity
                .set_cluster_id(cluster_id)
                .map_err(|source| NodeError::Storage {
                    dir: self.identity.path(),
                    source,
                })?;
            let mut members = BTreeMap::new();
            members.insert(
                self.id,
                Member::new(self.addr.clone(), self.identity.incarnation()),
            );
            self.raft
                .initialize(members)
                .await
                .map_err(|e| NodeError::Raft(e.to_string()))?;
            tracing::warn!(
                node = self.id,
                %cluster_id,
                "initialized a NEW one-node cluster (no -e and an empty data directory); to rejoin an existing cluster instead, start with -e"
            );
            return Ok(());
        }
        if initialized {
            tracing::info!(
                node = self.id,
                "restarting from persisted state; -e ignored"
            );
        }
        self.tasks.spawn(self.clone().join_loop(seeds));
        Ok(())
    }

    /// Starts the broker session timer (it acts only while this node leads).
    fn start_liveness(self: &Arc<Self>) {
        self.tasks.spawn(super::liveness::run(
            Arc::downgrade(self),
            self.liveness.timeout(),
        ));
    }

    /// The broker liveness controller.
    pub fn liveness(&self) -> &Liveness {
        &self.liveness
    }

    /// Commits the writes a plan makes, consecutively (see [`Proposer::propose_plan`]).
    ///
    /// The plan runs in a task of its own, so a caller that stops waiting does not cut it off
    /// halfway. A heartbeat's fence plan is the case: its HTTP handler is dropped when the
    /// broker's connection closes, and a plan cut there would leave the broker fenced while
    /// partitions still name it leader, the leadership moves never proposed and nobody told.
    /// Once started, a plan is proposed to its end (or to a refusal or a lost leadership),
    /// whether or not anyone is still waiting for its results.
    ///
    /// `held` (a lane's guard) is kept by the plan's task until the plan has ended, not by the
    /// caller: whoever waits for that lane waits for the plan, even when its caller has gone.
    pub async fn propose_plan<H: Send + 'static>(
        self: &Arc<Self>,
        next: impl FnMut(&Image) -> Option<Result<WriteRequest, MetadataError>> + Send + 'static,
        held: H,
    ) -> Result<Vec<Result<Committed, ProposeError>>, ProposeError> {
        let node = Arc::clone(self);
        let whole = tokio::spawn(async move {
            let results = node
                .proposer
                .propose_plan(&node.raft, &node.state, next)
                .await;
            drop(held);
            if let Ok(results) = &results {
                let ok = results.iter().filter(|r| r.is_ok()).count();
                node.metrics.records_proposed.add(ok as u64);
            }
            results
        });
        whole.await.map_err(|e| ProposeError::Unavailable {
            message: format!("internal: the plan's task ended early: {e}"),
            maybe_committed: true,
        })?
    }

    /// Validates and commits one metadata write; only the leader can.
    pub async fn propose(&self, req: WriteRequest) -> Result<Committed, ProposeError> {
        let committed = self.proposer.propose(&self.raft, &self.state, req).await?;
        self.metrics.records_proposed.inc();
        Ok(committed)
    }

    /// Leader side of a linearizable read: confirm leadership with a quorum and return the
    /// commit index every read must see (the read index).
    pub async fn read_index(&self) -> Result<u64, ProposeError> {
        if !self.raft.is_leader() {
            return Err(self.not_leader());
        }
        let read = self
            .raft
            .ensure_linearizable(openraft::ReadPolicy::ReadIndex)
            .await
            .map_err(|e| match e {
                openraft::errors::RaftError::APIError(
                    openraft::errors::LinearizableReadError::ForwardToLeader(_),
                ) => self.not_leader(),
                other => ProposeError::Unavailable {
                    message: format!("read index: {other}"),
                    maybe_committed: false,
                },
            })?;
        Ok(read.index())
    }

    /// Makes the next read here linearizable: waits until this node has applied the leader's
    /// read index (asked of the leader over HTTP when this node follows).
    pub async fn read_barrier(&self) -> Result<(), ProposeError> {
        let index = if self.raft.is_leader() {
            self.read_index().await?
        } else {
            let leader = self.leader().ok_or_else(|| self.not_leader())?;
            let mut req = self
                .http
                .post(self.url(&leader.addr, "/raft/read_index"))
                .timeout(Duration::from_secs(5));
            if let Some(t) = &self.token {
                req = req.bearer_auth(t);
            }
            let unavailable = |m: String| ProposeError::Unavailable {
                message: m,
                maybe_committed: false,
            };
            let resp = req
                .send()
                .await
                .map_err(|e| unavailable(format!("asking the leader for a read index: {e}")))?;
            if !resp.status().is_success() {
                return Err(unavailable(format!(
                    "the leader refused a read index: {}",
                    resp.status()
                )));
            }
            let body: serde_json::Value = resp
                .json()
                .await
                .map_err(|e| unavailable(format!("read index answer: {e}")))?;
            body.get("index")
                .and_then(|i| i.as_u64())
                .ok_or_else(|| unavailable("read index answer has no index".into()))?
        };
        proposer::wait_applied(&self.state, 0, index, READ_BARRIER_TIMEOUT, || {
            format!("this node has not applied up to the read index {index} in time")
        })
        .await
    }

    /// The leader as this node sees it.
    pub fn leader(&self) -> Option<LeaderInfo> {
        proposer::current_leader(&self.raft).map(|(id, addr)| LeaderInfo { id, addr })
    }

    /// A `NotLeader` error naming the leader when known.
    pub fn not_leader(&self) -> ProposeError {
        proposer::not_leader(&self.raft)
    }

    /// Committed reads of the log by offset, for `/stream`, `/fetch` and catch-up.
    pub fn committed(&self) -> &CommittedLog {
        &self.committed
    }

    /// Time travel: the image as of an older offset or time (`/get_metadata?at_offset=`).
    pub fn history(&self) -> &History {
        &self.history
    }

    /// This node's role now.
    pub fn role(&self) -> &'static str {
        match self.raft.metrics().borrow_watched().state {
            ServerState::Leader => "leader",
            ServerState::Follower => "follower",
            ServerState::Candidate => "candidate",
            ServerState::Learner => "learner",
            ServerState::Shutdown => "shutdown",
        }
    }

    /// The shared HTTP client (forwarding writes to the leader).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// `http` or `https`: how this node reaches its peers (HTTPS when it has a peer CA).
    pub fn scheme(&self) -> &'static str {
        self.scheme
    }

    /// The URL of `path` (starting with `/`) on the node at `addr`, in this node's scheme.
    pub fn url(&self, addr: &str, path: &str) -> String {
        format!("{}://{addr}{path}", self.scheme)
    }

    /// Marks the node as shutting down: open SSE streams send a final event and end, and a
    /// Raft core that stops from now on is not reported as a failure. The first step of
    /// [`Node::shutdown`]; a server calls it earlier, when it starts draining requests.
    pub fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// True once [`Node::begin_shutdown`] (or [`Node::shutdown`]) was called.
    pub fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Stops the node: marks it shutting down, stops every background task it spawned, stops
    /// the Raft core (waiting at most 5 s), and flushes the log. Call it once the HTTP server
    /// has drained (see [`crate::api::server::run`]); a second call does nothing. The node
    /// releases its data directory once the last handle to it is dropped.
    pub async fn shutdown(&self) -> Result<(), NodeError> {
        self.begin_shutdown();
        if !self.tasks.stop().await {
            return Ok(());
        }
        tracing::info!(node = self.id, "stopping raft");
        match tokio::time::timeout(RAFT_STOP_TIMEOUT, self.raft.shutdown()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(node = self.id, error = %e, "stopping raft failed"),
            Err(_) => tracing::warn!(
                node = self.id,
                secs = RAFT_STOP_TIMEOUT.as_secs(),
                "raft did not stop in time; flushing the log anyway"
            ),
        }
        let log = self.log.clone();
        let flushed = tokio::task::spawn_blocking(move || log.sync())
            .await
            .map_err(|e| NodeError::Flush {
                dir: self.data_dir.clone(),
                source: StorageError::Io {
                    op: "join the flush task",
                    path: self.data_dir.clone(),
                    source: std::io::Error::other(e),
                },
            })?;
        flushed.map_err(|source| NodeError::Flush {
            dir: self.data_dir.clone(),
            source,
        })?;
        tracing::info!(node = self.id, "stopped");
        Ok(())
    }

    /// How many background tasks the node still runs (0 once stopped).
    pub fn background_tasks(&self) -> usize {
        self.tasks.running()
    }

    /// A receiver that turns `true` when the node begins shutting down.
    pub fn shutdown_signal(&self) -> tokio::sync::watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// The token nodes present to each other, if any.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }
}
