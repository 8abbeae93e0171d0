//! The command line: each subcommand's flags (every one also a `YAKT_...` environment variable,
//! defaults from `yakt::config::Defaults`), turned into a call of the library; nothing else.

mod cluster;
mod member;
mod node;
mod status;
mod tls;

use clap::{Parser, Subcommand, ValueEnum};

/// yakt — a Raft-replicated Kafka cluster-metadata service.
#[derive(Parser, Debug)]
#[command(name = "yakt", version, about, long_about = None)]
pub struct Cli {
    /// Log format: human-readable text, or one JSON object per line.
    #[arg(long, global = true, env = "YAKT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The subcommands. Parsed once at start and matched at once, so the size of the largest
/// variant (a node's flags) costs nothing worth boxing it for.
#[derive(Subcommand, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Run one node of a cluster.
    Node(node::NodeArgs),
    /// Run a local cluster: `yakt node` child processes on BASE_PORT, +10, +20, ... with data
    /// under DATA_DIR/node-N; Ctrl-C or SIGTERM stops them all.
    Cluster(cluster::ClusterArgs),
    /// Show a cluster: members, roles, term, offsets and lag, as seen from one node.
    Status(status::StatusArgs),
    /// List, add or remove cluster members (`/cluster/members`).
    Member(member::MemberArgs),
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only on a terminal: piped logs (`yakt cluster`, files) stay plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

/// Runs the parsed command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    init_logging(cli.log_format);
    let result = match cli.command {
        Command::Node(args) => node::run(args).await,
        Command::Cluster(args) => cluster::run(args, cli.log_format).await,
        Command::Status(args) => status::run(args).await,
        Command::Member(args) => member::run(args).await,
    };
    if let (Err(e), LogFormat::Json) = (&result, cli.log_format) {
        // Keep stderr one JSON object per line: report the failure as a log line and exit
        // here rather than letting main print a plain-text line.
        tracing::error!(error = %format!("{e:#}"), "yakt failed");
        std::process::exit(1);
    }
    result
}
