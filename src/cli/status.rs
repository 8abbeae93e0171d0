//! `yakt status`: the cluster as seen from one node's `/cluster`, with each member's own view
//! (role, term, offsets) and its lag behind the leader.

use std::time::Duration;

use clap::Args;
use yakt::admin::{status, AdminClient};
use yakt::config::Defaults;

/// Flags of `yakt status`.
#[derive(Args, Debug)]
pub struct StatusArgs {
    /// Any node of the cluster (HOST:PORT).
    #[arg(short = 'a', long, env = "YAKT_ADDR", default_value = Defaults::ADDR)]
    pub addr: String,
    /// Print the raw JSON (this node's /cluster and each member's) instead of a table.
    #[arg(long, env = "YAKT_STATUS_JSON")]
    pub json: bool,
    /// Bearer token, for nodes started with --protect-reads.
    #[arg(long, env = "YAKT_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    #[command(flatten)]
    pub tls: super::tls::ClientTlsArgs,
}

/// Prints the cluster; fails when the given node cannot be reached.
pub async fn run(args: StatusArgs) -> anyhow::Result<()> {
    let client = AdminClient::new(
        args.token.as_deref(),
        Duration::from_secs(5),
        args.tls.client_tls()?.as_ref(),
    )?;
    let status = status::status(&client, &args.addr).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&status.to_json())?);
    } else {
        print!("{}", status.table());
    }
    Ok(())
}
