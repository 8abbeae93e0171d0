//! `yakt status`: the cluster as one node's `/cluster` shows it, with each member's own view
//! (role, term, offsets) and its lag behind the leader, as a table or as JSON.

use std::fmt::Write;

use serde_json::{json, Value};

use super::{AdminClient, AdminError};

/// One member of the membership and what it answered about itself.
#[derive(Debug)]
pub struct MemberStatus {
    /// The member as the asked node's membership lists it (`id`, `addr`, `voter`).
    pub member: Value,
    /// Its own `/cluster`, or why it could not be asked.
    pub own: Result<Value, AdminError>,
}

/// The cluster as seen from one node.
#[derive(Debug)]
pub struct Status {
    /// The node asked.
    pub from: String,
    /// Its `/cluster`.
    pub view: Value,
    /// Every member of its membership, each asked in turn.
    pub members: Vec<MemberStatus>,
}

/// Asks the node at `addr` for its `/cluster`, then every member it lists for theirs; fails
/// only when `addr` itself cannot be asked.
pub async fn status(client: &AdminClient, addr: &str) -> Result<Status, AdminError> {
    let view = client.get(addr, "/cluster").await?;
    let mut members = Vec::new();
    for member in view["members"].as_array().cloned().unwrap_or_default() {
        let own = client
            .get(member["addr"].as_str().unwrap_or_default(), "/cluster")
            .await;
        members.push(MemberStatus { member, own });
    }
    Ok(Status {
        from: addr.to_string(),
        view,
        members,
    })
}

fn num(v: &Value) -> String {
    v.as_u64().map_or("-".into(), |n| n.to_string())
}

impl Status {
    /// The raw answers: the asked node's `/cluster` and each member's.
    pub fn to_json(&self) -> Value {
        let per_node: Vec<Value> = self
            .members
            .iter()
            .map(|m| {
                let (id, addr) = (&m.member["id"], &m.member["addr"]);
                match &m.own {
                    Ok(v) => json!({"id": id, "addr": addr, "cluster": v}),
                    Err(e) => json!({"id": id, "addr": addr, "error": e.to_string()}),
                }
            })
            .collect();
        json!({"from": self.from, "cluster": self.view, "members": per_node})
    }

    /// A header line (who leads, the term) and one row per member, lag counted from the
    /// leader's last log offset.
    pub fn table(&self) -> String {
        let view = &self.view;
        let leader_last = self
            .members
            .iter()
            .filter_map(|m| m.own.as_ref().ok())
            .find(|v| v["role"] == "leader")
            .and_then(|v| v["last_log_offset"].as_u64());
        let mut out = String::new();
        let _ = writeln!(
            out,
            "cluster seen from {} (node {}): leader {}, term {}",
            self.from,
            num(&view["node_id"]),
            match (view["leader_id"].as_u64(), view["leader_addr"].as_str()) {
                (Some(id), Some(a)) => format!("{id} at {a}"),
                _ => "none".into(),
            },
            num(&view["term"]),
        );
        let _ = writeln!(
            out,
            "{:<4} {:<22} {:<6} {:<10} {:>6} {:>10} {:>10} {:>10} {:>6}",
            "ID", "ADDR", "VOTER", "ROLE", "TERM", "LOG_START", "COMMIT", "APPLIED", "LAG"
        );
        for MemberStatus { member: m, own } in &self.members {
            let voter = if m["voter"] == true { "yes" } else { "no" };
            let (id, addr) = (num(&m["id"]), m["addr"].as_str().unwrap_or("-"));
            let _ = match own {
                Ok(v) => {
                    let lag = match (leader_last, v["last_log_offset"].as_u64()) {
                        (Some(l), Some(n)) => l.saturating_sub(n).to_string(),
                        _ => "-".into(),
                    };
                    writeln!(
                        out,
                        "{id:<4} {addr:<22} {voter:<6} {:<10} {:>6} {:>10} {:>10} {:>10} {lag:>6}",
                        v["role"].as_str().unwrap_or("-"),
                        num(&v["term"]),
                        num(&v["log_start_offset"]),
                        num(&v["commit_offset"]),
                        num(&v["applied_offset"]),
                    )
                }
                Err(e) => writeln!(out, "{id:<4} {addr:<22} {voter:<6} unreachable: {e}"),
            };
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_shows_each_members_lag_behind_the_leader_and_who_is_unreachable() {
        let leader = json!({"role": "leader", "term": 3, "log_start_offset": 1,
            "commit_offset": 90, "applied_offset": 90, "last_log_offset": 90});
        let behind = json!({"role": "follower", "term": 3, "log_start_offset": 1,
            "commit_offset": 80, "applied_offset": 80, "last_log_offset": 84});
        let s = Status {
            from: "127.0.0.1:5010".into(),
            view: json!({"node_id": 1, "leader_id": 1, "leader_addr": "127.0.0.1:5010", "term": 3}),
            members: vec![
                MemberStatus {
                    member: json!({"id": 1, "addr": "127.0.0.1:5010", "voter": true}),
                    own: Ok(leader),
                },
                MemberStatus {
                    member: json!({"id": 2, "addr": "127.0.0.1:5020", "voter": true}),
                    own: Ok(behind),
                },
                MemberStatus {
                    member: json!({"id": 3, "addr": "127.0.0.1:5030", "voter": false}),
                    own: Err(AdminError::Refused {
                        what: "GET /cluster".into(),
                        status: reqwest::StatusCode::SERVICE_UNAVAILABLE,
                        message: "down".into(),
                    }),
                },
            ],
        };
        let table = s.table();
        let lines: Vec<&str> = table.lines().collect();
        assert!(
            lines[0].contains("leader 1 at 127.0.0.1:5010, term 3"),
            "{table}"
        );
        assert!(
            lines[2].starts_with("1 ") && lines[2].trim_end().ends_with(" 0"),
            "{table}"
        );
        assert!(
            lines[3].starts_with("2 ") && lines[3].trim_end().ends_with(" 6"),
            "{table}"
        );
        assert!(
            lines[4].contains("no     unreachable: GET /cluster: 503"),
            "{table}"
        );
        assert_eq!(
            s.to_json()["members"][2]["error"],
            "GET /cluster: 503 Service Unavailable: down"
        );
    }
}
