//! `yakt cluster`: a local cluster of `yakt node` child processes, started with the original
//! YAKt start lines (node 1 alone, the others with `-e` naming the earlier ones), their logs
//! prefixed with `[node-N]`, all stopped together on Ctrl-C or SIGTERM.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use yakt::admin::local_cluster::{self, LocalCluster};
use yakt::api::server::terminate_signal;

use super::LogFormat;

/// Flags of `yakt cluster`.
#[derive(Args, Debug)]
pub struct ClusterArgs {
    /// Number of nodes to start.
    #[arg(long, env = "YAKT_NODES", default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=50))]
    pub nodes: u64,
    /// Port of node 1; node N listens on BASE_PORT + 10*(N-1).
    #[arg(long, env = "YAKT_BASE_PORT", default_value_t = 5010)]
    pub base_port: u16,
    /// Directory holding each node's data (node-1, node-2, ...). A second run reuses it.
    #[arg(long, env = "YAKT_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Host (IP or name) every node listens on and is reached at.
    #[arg(long, env = "YAKT_HOST", default_value = "127.0.0.1")]
    pub host: String,
    /// Bearer token passed to every node (see `yakt node --help`).
    #[arg(long, env = "YAKT_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// HTTPS and node-to-node TLS, with a throwaway CA and node certificates made under
    /// DATA_DIR/tls (clients: `--cacert DATA_DIR/tls/ca.crt`).
    #[arg(long, env = "YAKT_CLUSTER_TLS")]
    pub tls: bool,
    /// Extra `yakt node` flags for every node, after `--` (e.g. `-- --protect-reads`).
    #[arg(last = true)]
    pub node_args: Vec<String>,
}

/// Runs the cluster until Ctrl-C or SIGTERM, then stops every node and waits for them.
pub async fn run(args: ClusterArgs, log_format: LogFormat) -> anyhow::Result<()> {
    let opts = LocalCluster {
        exe: std::env::current_exe().context("cannot find the yakt executable")?,
        nodes: args.nodes,
        base_port: args.base_port,
        data_dir: args.data_dir,
        host: args.host,
        token: args.token,
        node_args: args.node_args,
        json_logs: log_format == LogFormat::Json,
        tls: args.tls,
    };
    Ok(local_cluster::run(opts, terminate_signal()).await?)
}
