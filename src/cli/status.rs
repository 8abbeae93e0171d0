//! `yakt status`: the cluster as seen from one node's `/cluster`, with each member's own view
//! (role, term, offsets) and its lag behind the leader.

use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use serde_json::{json, Value};

/// Flags of `yakt status`.
#[derive(Args, Debug)]
pub struct StatusArgs {
    /// Any node of the cluster (HOST:PORT).
    #[arg(short = 'a', long, env = "YAKT_ADDR", default_value = "127.0.0.1:5010")]
    pub addr: String,
    /// Print the raw JSON (this node's /cluster and each member's) instead of a table.
    #[arg(long, env = "YAKT_STATUS_JSON")]
    pub json: bool,
    /// Bearer token, for nodes started with --protect-reads.
    #[arg(long, env = "YAKT_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

async fn get_cluster(
    http: &reqwest::Client,
    addr: &str,
    token: Option<&str>,
) -> anyhow::Result<Value> {
    let mut req = http.get(format!("http://{addr}/cluster"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req
        .send()
        .await
        .with_context(|| format!("cannot reach a yakt node at {addr}"))?;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("{addr} answered {status}: {body}");
    }
    Ok(body)
}

fn num(v: &Value) -> String {
    v.as_u64().map_or("-".into(), |n| n.to_string())
}

/// Prints the cluster; fails when the given node cannot be reached.
pub async fn run(args: StatusArgs) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(5))
        .build()?;
    let token = args.token.as_deref().filter(|t| !t.is_empty());
    let view = get_cluster(&http, &args.addr, token).await?;
    let members = view["members"].as_array().cloned().unwrap_or_default();
    let mut rows = Vec::new();
    for m in &members {
        let addr = m["addr"].as_str().unwrap_or_default().to_string();
        let own = get_cluster(&http, &addr, token).await;
        rows.push((m.clone(), own));
    }
    if args.json {
        let per_node: Vec<Value> = rows
            .iter()
            .map(|(m, own)| match own {
                Ok(v) => json!({"id": m["id"], "addr": m["addr"], "cluster": v}),
                Err(e) => json!({"id": m["id"], "addr": m["addr"], "error": format!("{e:#}")}),
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(
                &json!({"from": args.addr, "cluster": view, "members": per_node})
            )?
        );
        return Ok(());
    }
    let leader_id = view["leader_id"].as_u64();
    let leader_last = rows
        .iter()
        .filter_map(|(_, own)| own.as_ref().ok())
        .find(|v| v["role"] == "leader")
        .and_then(|v| v["last_log_offset"].as_u64());
    println!(
        "cluster seen from {} (node {}): leader {}, term {}",
        args.addr,
        num(&view["node_id"]),
        match (leader_id, view["leader_addr"].as_str()) {
            (Some(id), Some(a)) => format!("{id} at {a}"),
            _ => "none".into(),
        },
        num(&view["term"]),
    );
    println!(
        "{:<4} {:<22} {:<6} {:<10} {:>6} {:>10} {:>10} {:>10} {:>6}",
        "ID", "ADDR", "VOTER", "ROLE", "TERM", "LOG_START", "COMMIT", "APPLIED", "LAG"
    );
    for (m, own) in &rows {
        let voter = if m["voter"] == true { "yes" } else { "no" };
        match own {
            Ok(v) => {
                let lag = match (leader_last, v["last_log_offset"].as_u64()) {
                    (Some(l), Some(n)) => l.saturating_sub(n).to_string(),
                    _ => "-".into(),
                };
                println!(
                    "{:<4} {:<22} {:<6} {:<10} {:>6} {:>10} {:>10} {:>10} {:>6}",
                    num(&m["id"]),
                    m["addr"].as_str().unwrap_or("-"),
                    voter,
                    v["role"].as_str().unwrap_or("-"),
                    num(&v["term"]),
                    num(&v["log_start_offset"]),
                    num(&v["commit_offset"]),
                    num(&v["applied_offset"]),
                    lag,
                );
            }
            Err(e) => println!(
                "{:<4} {:<22} {:<6} unreachable: {e:#}",
                num(&m["id"]),
                m["addr"].as_str().unwrap_or("-"),
                voter,
            ),
        }
    }
    Ok(())
}
