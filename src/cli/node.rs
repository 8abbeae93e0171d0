//! `yakt node`: run one node (the original YAKt start line, `-i ID -a HOST:PORT -e ...`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;

use yakt::api::{self, ApiOptions};
use yakt::raft::{Node, NodeOptions};

/// How long in-flight requests may take to finish after SIGTERM.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a stopping leader waits for another node to take over before it stops anyway.
const HANDOFF_TIMEOUT: Duration = Duration::from_secs(2);
/// The exit status when the Raft core stopped on its own (EX_SOFTWARE): the process must not
/// outlive it, answering from an image that no longer moves.
pub const CORE_STOPPED_EXIT_CODE: i32 = 70;

/// Flags of `yakt node`.
#[derive(Args, Debug)]
pub struct NodeArgs {
    /// This node's id, unique in the cluster.
    #[arg(short = 'i', long = "id", env = "YAKT_ID")]
    pub id: u64,
    /// Address to listen on and to be reached at (HOST:PORT). Loopback unless told otherwise.
    #[arg(
        short = 'a',
        long = "addr",
        env = "YAKT_ADDR",
        default_value = "127.0.0.1:5010"
    )]
    pub addr: String,
    /// Address peers and redirected clients should use to reach this node, when it differs
    /// from `-a` (behind NAT, a proxy or a port mapping) [default: the `-a` address].
    #[arg(long, env = "YAKT_ADVERTISE_ADDR")]
    pub advertise_addr: Option<String>,
    /// Existing members to join through: ID/HOST:PORT[,ID/HOST:PORT...]. Without it, a node with
    /// an empty data directory starts a new one-node cluster. Ignored once the node has state.
    #[arg(
        short = 'e',
        long = "existing",
        env = "YAKT_EXISTING",
        value_delimiter = ','
    )]
    pub existing: Vec<String>,
    /// Data directory [default: ./data/node-<id>].
    #[arg(long, env = "YAKT_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Take a snapshot after at least this many log entries (for an image of more than 16x this
    /// many entities, after entities/16 entries, so a large image is not re-encoded constantly).
    #[arg(long, env = "YAKT_SNAPSHOT_EVERY", default_value_t = 10_000)]
    pub snapshot_every: u64,
    /// Log entries kept below a snapshot for slow followers.
    #[arg(long, env = "YAKT_KEEP_AFTER_SNAPSHOT", default_value_t = 1_000)]
    pub keep_after_snapshot: u64,
    /// Snapshot files kept (at least 2). The log is never purged past the oldest one, so a
    /// newest snapshot that fails verification at start falls back to the one before it.
    #[arg(long, env = "YAKT_KEEP_SNAPSHOTS", default_value_t = 2, value_parser = clap::value_parser!(u64).range(2..))]
    pub keep_snapshots: u64,
    /// Minimum election timeout, ms.
    #[arg(long, env = "YAKT_ELECTION_TIMEOUT_MIN_MS", default_value_t = 1_000)]
    pub election_timeout_min_ms: u64,
    /// Maximum election timeout, ms.
    #[arg(long, env = "YAKT_ELECTION_TIMEOUT_MAX_MS", default_value_t = 2_000)]
    pub election_timeout_max_ms: u64,
    /// Heartbeat interval, ms.
    #[arg(long, env = "YAKT_HEARTBEAT_MS", default_value_t = 250)]
    pub heartbeat_ms: u64,
    /// Segment file size, bytes.
    #[arg(long, env = "YAKT_SEGMENT_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub segment_bytes: u64,
    /// Largest accepted request body, bytes.
    #[arg(long, env = "YAKT_MAX_BODY", default_value_t = api::DEFAULT_BODY_LIMIT)]
    pub max_body: usize,
    /// Catch-up window of /broker_mgmt and /client_mgmt (e.g. 600, 90s, 10m, 250ms).
    #[arg(long, env = "YAKT_CATCHUP_WINDOW", default_value = "10m", value_parser = parse_duration)]
    pub catchup_window: Duration,
    /// Bearer token required on writes and /raft/ routes, and used between nodes.
    #[arg(long, env = "YAKT_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Require the token on reads too.
    #[arg(long, env = "YAKT_PROTECT_READS")]
    pub protect_reads: bool,
    /// Cut off an SSE reader whose buffer stays full this long (e.g. 10s, 500ms).
    #[arg(long, env = "YAKT_SLOW_READER_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub slow_reader_timeout: Duration,
}

/// Parses `600` (seconds), `90s`, `10m`, `1h` or `250ms`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (e.g. 600, 90s, 10m, 250ms)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        other => {
            return Err(format!(
                "unknown duration unit {other:?} (use ms, s, m or h)"
            ))
        }
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("{s:?} is not a duration"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn parse_seed(s: &str) -> anyhow::Result<(u64, String)> {
    let (id, addr) = s
        .split_once('/')
        .with_context(|| format!("-e entry {s:?} is not ID/HOST:PORT"))?;
    let id = id
        .trim()
        .parse()
        .with_context(|| format!("-e entry {s:?}: {id:?} is not a node id"))?;
    if addr.trim().is_empty() {
        bail!("-e entry {s:?} has no address");
    }
    Ok((id, addr.trim().to_string()))
}

/// Runs the node until SIGTERM or SIGINT.
pub async fn run(args: NodeArgs) -> anyhow::Result<()> {
    let seeds = args
        .existing
        .iter()
        .filter(|s| !s.is_empty())
        .map(|s| parse_seed(s))
        .collect::<Result<Vec<_>, _>>()?;
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("./data/node-{}", args.id)));
    let advertise = args
        .advertise_addr
        .clone()
        .filter(|a| !a.trim().is_empty())
        .unwrap_or_else(|| args.addr.clone());
    let mut opts = NodeOptions::new(args.id, advertise, data_dir.clone());
    // Outgoing connections leave from the IP this node listens on (unless it listens on all).
    opts.bind_ip = args
        .addr
        .parse::<std::net::SocketAddr>()
        .ok()
        .map(|a| a.ip())
        .filter(|ip| !ip.is_unspecified());
    opts.snapshot_every = args.snapshot_every;
    opts.keep_after_snapshot = args.keep_after_snapshot;
    opts.keep_snapshots = usize::try_from(args.keep_snapshots).unwrap_or(usize::MAX);
    opts.election_timeout_ms = (args.election_timeout_min_ms, args.election_timeout_max_ms);
    opts.heartbeat_ms = args.heartbeat_ms;
    opts.segment_bytes = args.segment_bytes;
    opts.token = args.token.clone().filter(|t| !t.is_empty());

    let listener = tokio::net::TcpListener::bind(&args.addr)
        .await
        .with_context(|| format!("cannot listen on {}", args.addr))?;
    let opts_token = opts.token.clone();
    let node = Node::start(opts).await?;
    let app = api::router(
        node.clone(),
        ApiOptions {
            body_limit: args.max_body,
            catchup_window: args.catchup_window,
            token: opts_token,
            protect_reads: args.protect_reads,
            slow_reader_timeout: args.slow_reader_timeout,
        },
    );
    tracing::info!(node = args.id, addr = %args.addr, data_dir = %data_dir.display(), "node listening");

    // On SIGTERM/SIGINT: stop accepting connections, end the SSE streams (they never end by
    // themselves, and graceful shutdown waits for every open connection), let in-flight
    // requests (writes waiting for their commit) finish, then stop Raft and flush the log.
    spawn_core_watch(node.clone());
    let stopping = node.clone();
    let server = tokio::spawn(serve(listener, app, async move {
        shutdown_signal().await;
        hand_over(&stopping).await;
        tracing::info!(
            node = stopping.id,
            "shutdown requested: finishing in-flight requests"
        );
        stopping.begin_shutdown();
    }));
    node.bootstrap(seeds).await?;
    // In-flight requests get a bounded time to finish (a write waiting on a lost quorum must
    // not hold the process forever).
    let mut stopping = node.shutdown_signal();
    let drain_deadline = async move {
        let _ = stopping.wait_for(|s| *s).await;
        tokio::time::sleep(DRAIN_TIMEOUT).await;
    };
    let mut server = server;
    tokio::select! {
        r = &mut server => r.context("server task")?.context("server")?,
        _ = drain_deadline => {
            tracing::warn!(node = args.id, secs = DRAIN_TIMEOUT.as_secs(), "in-flight requests did not finish in time; closing them");
            server.abort();
        }
    }
    tracing::info!(node = args.id, "requests drained; stopping raft");
    let _ = tokio::time::timeout(Duration::from_secs(5), node.raft.shutdown()).await;
    if let Err(e) = node.flush_log().await {
        tracing::error!(error = %e, "final log flush failed");
    }
    tracing::info!(node = args.id, "stopped");
    Ok(())
}

/// Exits the process when the Raft core stops on its own (a panic, a fatal storage error), with
/// an ERROR line saying so; a stop that shutdown asked for is not watched.
fn spawn_core_watch(node: std::sync::Arc<Node>) {
    tokio::spawn(async move {
        let why = yakt::raft::core_watch::core_stopped(&node.raft).await;
        if *node.shutdown_signal().borrow() {
            return;
        }
        tracing::error!(
            node = node.id,
            reason = %why,
            exit_code = CORE_STOPPED_EXIT_CODE,
            "the Raft core stopped; exiting instead of serving a state that no longer moves"
        );
        std::process::exit(CORE_STOPPED_EXIT_CODE);
    });
}

/// Before a leader stops serving: hands leadership to the most caught-up voter and waits (up to
/// `HANDOFF_TIMEOUT`) until another node leads, so that writes pause for a leader transfer
/// rather than an election timeout. Still serving meanwhile: requests keep being answered (and
/// forwarded to the new leader once it is known).
async fn hand_over(node: &Node) {
    use yakt::raft::handoff::{hand_over_leadership, Handoff};
    let started = std::time::Instant::now();
    let outcome = hand_over_leadership(&node.raft, node.id, HANDOFF_TIMEOUT).await;
    let ms = started.elapsed().as_millis() as u64;
    match outcome {
        Handoff::NotLeader | Handoff::NoOtherVoter => {}
        Handoff::HandedTo(to) => {
            tracing::info!(
                node = node.id,
                to,
                ms,
                "leadership handed over before stopping"
            )
        }
        Handoff::TimedOut { target } => tracing::warn!(
            node = node.id,
            target,
            ms,
            "no other node took over leadership in time; stopping anyway"
        ),
        Handoff::CoreStopped(e) => {
            tracing::warn!(node = node.id, error = %e, "leadership hand-over failed")
        }
    }
}

/// How long a client may take to send a request's headers (and an idle keep-alive connection
/// may wait for its next request) before its connection is closed.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves `app` on `listener` until `shutdown` completes, then lets open requests finish (for
/// at most 10 s). This is `axum::serve` plus a hyper timer, which `axum::serve` does not set, so
/// that a client that sends part of its headers and stops (slowloris) is disconnected after
/// [`HEADER_READ_TIMEOUT`] instead of holding its connection forever.
async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (open_tx, open_rx) = tokio::sync::mpsc::channel::<()>(1);
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning; the next accept retries.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let svc = TowerToHyperService::new(app.clone());
        let mut stop = stop_rx.clone();
        let open = open_tx.clone();
        tokio::spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), svc)
                .with_upgrades();
            tokio::pin!(conn);
            let mut stopping = false;
            loop {
                tokio::select! {
                    r = conn.as_mut() => {
                        if let Err(e) = r {
                            tracing::debug!(error = %e, "connection ended with an error");
                        }
                        break;
                    }
                    _ = stop.wait_for(|s| *s), if !stopping => {
                        stopping = true;
                        conn.as_mut().graceful_shutdown();
                    }
                }
            }
            drop(open);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(open_tx);
    let mut open_rx = open_rx;
    // recv() returns None once every connection task has dropped its sender.
    let _ = tokio::time::timeout(Duration::from_secs(10), open_rx.recv()).await;
    Ok(())
}

/// Resolves on the first SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut t), Ok(mut i)) => {
            tokio::select! { _ = t.recv() => {}, _ = i.recv() => {} }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
