//! `yakt member list | add ID ADDR | remove ID`: the command-line face of `/cluster` and
//! `/cluster/members`.

use std::time::Duration;

use clap::{Args, Subcommand};
use yakt::admin::{members, AdminClient};
use yakt::config::Defaults;

/// Flags of `yakt member`.
#[derive(Args, Debug)]
pub struct MemberArgs {
    /// Any node of the cluster (HOST:PORT); changes are forwarded to the leader.
    #[arg(
        short = 'a',
        long,
        global = true,
        env = "YAKT_ADDR",
        default_value = Defaults::ADDR
    )]
    pub addr: String,
    /// Bearer token (needed to add or remove when the cluster has one).
    #[arg(long, global = true, env = "YAKT_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    #[command(flatten)]
    pub tls: super::tls::ClientTlsArgs,
    #[command(subcommand)]
    pub action: MemberAction,
}

/// What to do with the membership.
#[derive(Subcommand, Debug)]
pub enum MemberAction {
    /// List the members: id, address, voter or learner, incarnation.
    List,
    /// Add the node ID reachable at ADDR (it must be running): first a learner, then a voter
    /// once caught up. Returns when it votes.
    Add {
        /// The node's id (`-i`).
        id: u64,
        /// The node's address (HOST:PORT).
        addr: String,
    },
    /// Remove node ID from the cluster.
    Remove {
        /// The node's id.
        id: u64,
    },
}

/// Runs one `yakt member` action; fails with the server's message when it refuses.
pub async fn run(args: MemberArgs) -> anyhow::Result<()> {
    // Adding returns once the node votes: allow it the leader's 60 s and then some.
    let client = AdminClient::new(
        args.token.as_deref(),
        Duration::from_secs(90),
        args.tls.client_tls()?.as_ref(),
    )?;
    let out = match args.action {
        MemberAction::List => members::list(&client, &args.addr).await?,
        MemberAction::Add { id, addr } => {
            members::add(&client, &args.addr, id, &addr).await? + "\n"
        }
        MemberAction::Remove { id } => members::remove(&client, &args.addr, id).await? + "\n",
    };
    print!("{out}");
    Ok(())
}
