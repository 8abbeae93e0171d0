//! `yakt member list | add ID ADDR | remove ID`: the command-line face of `/cluster` and
//! `/cluster/members`.

use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use serde_json::{json, Value};

/// Flags of `yakt member`.
#[derive(Args, Debug)]
pub struct MemberArgs {
    /// Any node of the cluster (HOST:PORT); changes are forwarded to the leader.
    #[arg(
        short = 'a',
        long,
        global = true,
        env = "YAKT_ADDR",
        default_value = "127.0.0.1:5010"
    )]
    pub addr: String,
    /// Bearer token (needed to add or remove when the cluster has one).
    #[arg(long, global = true, env = "YAKT_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
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

async fn call(
    req: reqwest::RequestBuilder,
    token: Option<&str>,
    what: &str,
) -> anyhow::Result<Value> {
    let req = match token {
        Some(t) => req.bearer_auth(t),
        None => req,
    };
    let resp = req
        .send()
        .await
        .with_context(|| format!("{what}: no answer"))?;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!(
            "{what}: {status}: {}",
            body["message"].as_str().unwrap_or(&body.to_string())
        );
    }
    Ok(body)
}

/// Runs one `yakt member` action; fails with the server's message when it refuses.
pub async fn run(args: MemberArgs) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(90))
        .build()?;
    let token = args.token.as_deref().filter(|t| !t.is_empty());
    let base = format!("http://{}", args.addr);
    match args.action {
        MemberAction::List => {
            let view = call(http.get(format!("{base}/cluster")), token, "GET /cluster").await?;
            println!(
                "cluster {}",
                view["cluster_id"].as_str().unwrap_or("(no id yet)")
            );
            println!("{:<4} {:<22} {:<8} INCARNATION", "ID", "ADDR", "ROLE");
            for m in view["members"].as_array().cloned().unwrap_or_default() {
                println!(
                    "{:<4} {:<22} {:<8} {}",
                    m["id"],
                    m["addr"].as_str().unwrap_or("-"),
                    if m["voter"] == true {
                        "voter"
                    } else {
                        "learner"
                    },
                    m["incarnation"].as_str().unwrap_or("-"),
                );
            }
        }
        MemberAction::Add { id, addr } => {
            let body = json!({"id": id, "addr": addr});
            let answer = call(
                http.post(format!("{base}/cluster/members")).json(&body),
                token,
                "POST /cluster/members",
            )
            .await?;
            println!("{}", answer["message"].as_str().unwrap_or("added"));
        }
        MemberAction::Remove { id } => {
            let answer = call(
                http.delete(format!("{base}/cluster/members/{id}")),
                token,
                "DELETE /cluster/members",
            )
            .await?;
            println!("{}", answer["message"].as_str().unwrap_or("removed"));
        }
    }
    Ok(())
}
