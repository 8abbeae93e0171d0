//! `yakt member list | add | remove`: the membership as `/cluster` lists it, and changes through
//! `/cluster/members` (a follower forwards them to the leader).

use std::fmt::Write;

use serde_json::{json, Value};

use super::{AdminClient, AdminError};
use crate::raft::NodeId;

/// The cluster id and one line per member (id, address, voter or learner, incarnation).
pub async fn list(client: &AdminClient, addr: &str) -> Result<String, AdminError> {
    let view = client.get(addr, "/cluster").await?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "cluster {}",
        view["cluster_id"].as_str().unwrap_or("(no id yet)")
    );
    let _ = writeln!(out, "{:<4} {:<22} {:<8} INCARNATION", "ID", "ADDR", "ROLE");
    for m in view["members"].as_array().cloned().unwrap_or_default() {
        let role = if m["voter"] == true {
            "voter"
        } else {
            "learner"
        };
        let _ = writeln!(
            out,
            "{:<4} {:<22} {role:<8} {}",
            m["id"],
            m["addr"].as_str().unwrap_or("-"),
            m["incarnation"].as_str().unwrap_or("-"),
        );
    }
    Ok(out)
}

/// Adds node `id` reachable at `member_addr` (a learner, then a voter once caught up); returns
/// the leader's message once it votes.
pub async fn add(
    client: &AdminClient,
    addr: &str,
    id: NodeId,
    member_addr: &str,
) -> Result<String, AdminError> {
    let body = json!({"id": id, "addr": member_addr});
    let answer = client.post(addr, "/cluster/members", &body).await?;
    Ok(message(&answer, "added"))
}

/// Removes node `id`; returns the leader's message.
pub async fn remove(client: &AdminClient, addr: &str, id: NodeId) -> Result<String, AdminError> {
    let answer = client
        .delete(addr, &format!("/cluster/members/{id}"))
        .await?;
    Ok(message(&answer, "removed"))
}

fn message(answer: &Value, otherwise: &str) -> String {
    answer["message"].as_str().unwrap_or(otherwise).to_string()
}
