//! `yakt node`: run one node (the original YAKt start line, `-i ID -a HOST:PORT -e ...`).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::Args;

use yakt::api::server::{self, ServerError, ServerOptions};
use yakt::api::ApiOptions;
use yakt::config::{Defaults, HumanDuration};
use yakt::raft::{Node, NodeOptions};
use yakt::tls::server::ServerTlsFiles;
use yakt::tls::{CertStore, ClientTls, ServerTls};

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
        default_value = Defaults::ADDR
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
    #[arg(long, env = "YAKT_SNAPSHOT_EVERY", default_value_t = Defaults::SNAPSHOT_EVERY)]
    pub snapshot_every: u64,
    /// Log entries kept below a snapshot for slow followers.
    #[arg(long, env = "YAKT_KEEP_AFTER_SNAPSHOT", default_value_t = Defaults::KEEP_AFTER_SNAPSHOT)]
    pub keep_after_snapshot: u64,
    /// Snapshot files kept (at least 2). The log is never purged past the oldest one, so a
    /// newest snapshot that fails verification at start falls back to the one before it.
    #[arg(long, env = "YAKT_KEEP_SNAPSHOTS", default_value_t = Defaults::KEEP_SNAPSHOTS as u64, value_parser = clap::value_parser!(u64).range(2..))]
    pub keep_snapshots: u64,
    /// Minimum election timeout, ms.
    #[arg(long, env = "YAKT_ELECTION_TIMEOUT_MIN_MS", default_value_t = Defaults::ELECTION_TIMEOUT_MIN_MS)]
    pub election_timeout_min_ms: u64,
    /// Maximum election timeout, ms.
    #[arg(long, env = "YAKT_ELECTION_TIMEOUT_MAX_MS", default_value_t = Defaults::ELECTION_TIMEOUT_MAX_MS)]
    pub election_timeout_max_ms: u64,
    /// Heartbeat interval, ms.
    #[arg(long, env = "YAKT_HEARTBEAT_MS", default_value_t = Defaults::HEARTBEAT_MS)]
    pub heartbeat_ms: u64,
    /// Segment file size, bytes.
    #[arg(long, env = "YAKT_SEGMENT_BYTES", default_value_t = Defaults::segment_bytes())]
    pub segment_bytes: u64,
    /// Largest accepted request body, bytes.
    #[arg(long, env = "YAKT_MAX_BODY", default_value_t = Defaults::MAX_BODY)]
    pub max_body: usize,
    /// Catch-up window of /broker_mgmt and /client_mgmt (e.g. 600, 90s, 10m, 250ms).
    #[arg(long, env = "YAKT_CATCHUP_WINDOW", default_value_t = HumanDuration(Defaults::CATCHUP_WINDOW))]
    pub catchup_window: HumanDuration,
    /// Fence a watched broker after this long without a heartbeat (KRaft's
    /// broker.session.timeout.ms; e.g. 9s, 2s, 500ms).
    #[arg(long, env = "YAKT_BROKER_SESSION_TIMEOUT", default_value_t = HumanDuration(Defaults::BROKER_SESSION_TIMEOUT))]
    pub broker_session_timeout: HumanDuration,
    /// Bearer token required on writes and /raft/ routes, and used between nodes.
    #[arg(long, env = "YAKT_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Require the token on reads too.
    #[arg(long, env = "YAKT_PROTECT_READS")]
    pub protect_reads: bool,
    /// Let a browser page from this origin (e.g. https://console.example:8443) call every
    /// endpoint, preflight included; repeatable. Reads are open to every origin anyway unless
    /// --protect-reads.
    #[arg(
        long = "cors-origin",
        value_name = "ORIGIN",
        env = "YAKT_CORS_ORIGIN",
        value_delimiter = ','
    )]
    pub cors_origin: Vec<String>,
    /// Cut off an SSE reader whose buffer stays full this long (e.g. 10s, 500ms).
    #[arg(long, env = "YAKT_SLOW_READER_TIMEOUT", default_value_t = HumanDuration(Defaults::SLOW_READER_TIMEOUT))]
    pub slow_reader_timeout: HumanDuration,
    /// Send a /stream reader a `progress` event after this long without any other (e.g. 500ms).
    #[arg(long, env = "YAKT_PROGRESS_INTERVAL", default_value_t = HumanDuration(Defaults::PROGRESS_INTERVAL))]
    pub progress_interval: HumanDuration,
    /// End this node's streams (`stream_error` `no_leader`) once it has had no leader this long,
    /// so readers move to a node that has one; `?require_leader=false` keeps a stream open.
    #[arg(long, env = "YAKT_STALE_AFTER", default_value_t = HumanDuration(Defaults::STALE_AFTER))]
    pub stale_after: HumanDuration,
    /// Answer a catch-up delta of more records than this in snapshot mode.
    #[arg(long, env = "YAKT_CATCHUP_MAX_RECORDS", default_value_t = Defaults::CATCHUP_MAX_RECORDS)]
    pub catchup_max_records: u64,
    /// Serve HTTPS (and only HTTPS) with this certificate chain (PEM); re-read when the file
    /// changes or on SIGHUP. Needs --tls-key.
    #[arg(long, env = "YAKT_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, env = "YAKT_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Require every client of the API to present a certificate signed by this CA (PEM):
    /// mutual TLS. The token, when set, is still checked on top.
    #[arg(long, env = "YAKT_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
    /// Talk to the other nodes over TLS: their certificates must be signed by this CA (PEM),
    /// and /raft/* accepts only clients presenting such a certificate. This node presents
    /// --peer-cert/--peer-key (by default --tls-cert/--tls-key).
    #[arg(long, env = "YAKT_PEER_CA", requires = "tls_cert")]
    pub peer_ca: Option<PathBuf>,
    /// The certificate this node presents to its peers [default: --tls-cert].
    #[arg(long, env = "YAKT_PEER_CERT", requires_all = ["peer_key", "peer_ca"])]
    pub peer_cert: Option<PathBuf>,
    /// The key of --peer-cert [default: --tls-key].
    #[arg(long, env = "YAKT_PEER_KEY", requires_all = ["peer_cert", "peer_ca"])]
    pub peer_key: Option<PathBuf>,
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

/// Runs the node until SIGTERM or SIGINT; exits the process with
/// [`CORE_STOPPED_EXIT_CODE`] if the Raft core stops on its own.
pub async fn run(args: NodeArgs) -> anyhow::Result<()> {
    let seeds = args
        .existing
        .iter()
        .filter(|s| !s.is_empty())
        .map(|s| parse_seed(s))
        .collect::<Result<Vec<_>, _>>()?;
    let (node_opts, server_opts) = options(&args)?;
    let listener = tokio::net::TcpListener::bind(&args.addr)
        .await
        .with_context(|| format!("cannot listen on {}", args.addr))?;
    let data_dir = node_opts.data_dir.clone();
    let node: Arc<Node> = Node::start(node_opts).await?;
    node.bootstrap(seeds).await?;
    tracing::info!(node = args.id, addr = %args.addr, data_dir = %data_dir.display(), "node listening");
    match server::run(
        listener,
        node.clone(),
        server_opts,
        server::terminate_signal(),
    )
    .await
    {
        Ok(()) => Ok(node.shutdown().await?),
        Err(ServerError::CoreStopped { .. }) => std::process::exit(CORE_STOPPED_EXIT_CODE),
    }
}

/// The listener's TLS and the peers' client TLS from the flags (`None`s: plain HTTP).
fn tls(args: &NodeArgs) -> anyhow::Result<(Option<ServerTls>, Option<ClientTls>)> {
    let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) else {
        return Ok((None, None));
    };
    let files = ServerTlsFiles {
        cert: cert.clone(),
        key: key.clone(),
        client_ca: args.tls_client_ca.clone(),
        peer_ca: args.peer_ca.clone(),
    };
    let server = ServerTls::new(&files).context("TLS of the listener")?;
    let client = match &args.peer_ca {
        None => None,
        Some(ca) => {
            // The node's identity towards its peers: the served pair (reloaded with it) unless
            // a separate one is given.
            let identity = match (&args.peer_cert, &args.peer_key) {
                (Some(c), Some(k)) => CertStore::load(c, k).context("--peer-cert/--peer-key")?,
                _ => server.certs.clone(),
            };
            Some(ClientTls::new(ca, Some(identity)).context("TLS towards the peers")?)
        }
    };
    Ok((Some(server), client))
}

/// The library's options from the flags.
fn options(args: &NodeArgs) -> anyhow::Result<(NodeOptions, ServerOptions)> {
    let (server_tls, peer_tls) = tls(args)?;
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("./data/node-{}", args.id)));
    let advertise = args
        .advertise_addr
        .clone()
        .filter(|a| !a.trim().is_empty())
        .unwrap_or_else(|| args.addr.clone());
    let token = args.token.clone().filter(|t| !t.is_empty());
    let mut node = NodeOptions::new(args.id, advertise, data_dir);
    // Outgoing connections leave from the IP this node listens on (unless it listens on all).
    node.bind_ip = args
        .addr
        .parse::<std::net::SocketAddr>()
        .ok()
        .map(|a| a.ip())
        .filter(|ip| !ip.is_unspecified());
    node.snapshot_every = args.snapshot_every;
    node.keep_after_snapshot = args.keep_after_snapshot;
    node.keep_snapshots = usize::try_from(args.keep_snapshots).unwrap_or(usize::MAX);
    node.election_timeout_ms = (args.election_timeout_min_ms, args.election_timeout_max_ms);
    node.heartbeat_ms = args.heartbeat_ms;
    node.segment_bytes = args.segment_bytes;
    node.token = token.clone();
    node.tls = peer_tls;
    node.broker_session_timeout = args.broker_session_timeout.into();
    let server = ServerOptions {
        api: ApiOptions {
            body_limit: args.max_body,
            catchup_window: args.catchup_window.into(),
            token,
            protect_reads: args.protect_reads,
            slow_reader_timeout: args.slow_reader_timeout.into(),
            progress_interval: args.progress_interval.into(),
            stale_after: args.stale_after.into(),
            catchup_max_records: args.catchup_max_records,
            require_peer_cert: false,
            cors_origins: args.cors_origin.clone(),
        },
        tls: server_tls,
        ..ServerOptions::default()
    };
    Ok((node, server))
}
