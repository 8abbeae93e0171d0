//! Operating endpoints: `/cluster`, `/health` and `/metrics`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use openraft::type_config::async_runtime::WatchReceiver;
use serde_json::json;

use crate::metrics::{write_histogram, write_metric};
use crate::raft::Node;

/// The operating routes.
pub fn routes() -> Router<Arc<Node>> {
    Router::new()
        .route("/cluster", get(cluster))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
}

/// The cluster as this node sees it (also used by `yakt status`).
pub fn cluster_view(node: &Node) -> serde_json::Value {
    let m = node.raft.metrics().borrow_watched().clone();
    let membership = m.membership_config.membership();
    let voters: std::collections::BTreeSet<u64> = membership.voter_ids().collect();
    let members: Vec<_> = membership
        .nodes()
        .map(|(id, n)| {
            json!({"id": id, "addr": n.addr, "voter": voters.contains(id), "incarnation": n.incarnation})
        })
        .collect();
    let leader = node.leader();
    let snapshot = node
        .state
        .snapshot()
        .map(|s| json!({"offset": s.offset, "epoch": s.term}));
    json!({
        "cluster_id": node.identity.cluster_id(),
        "node_id": node.id,
        "incarnation": node.identity.incarnation(),
        "voting": node.recovery.is_voting(),
        "recovering": (!node.recovery.is_voting() && node.recovery.needs_rejoin())
            .then(|| node.recovery.reason().to_string()),
        "role": node.role(),
        "leader_id": leader.as_ref().map(|l| l.id),
        "leader_addr": leader.as_ref().map(|l| l.addr.clone()),
        "term": m.current_term,
        "members": members,
        "commit_offset": m.local_committed.map(|c| c.index),
        "applied_offset": m.last_applied.map(|c| c.index),
        "last_log_offset": m.last_log_index,
        "log_start_offset": node.committed().first_offset(),
        "snapshot": snapshot,
    })
}

async fn cluster(State(node): State<Arc<Node>>) -> Json<serde_json::Value> {
    Json(cluster_view(&node))
}

async fn health(State(node): State<Arc<Node>>) -> Response {
    match node.leader() {
        Some(l) => Json(json!({"status": "ok", "leader_id": l.id})).into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(axum::http::header::RETRY_AFTER, "1")],
            Json(json!({"error": "unavailable", "message": "this node sees no leader"})),
        )
            .into_response(),
    }
}

/// Everything `/metrics` reports, in Prometheus text format.
pub fn render_metrics(node: &Node) -> String {
    let m = node.raft.metrics().borrow_watched().clone();
    let mut out = String::new();
    let role = node.role();
    let roles: Vec<(String, f64)> = ["leader", "follower", "candidate", "learner", "shutdown"]
        .iter()
        .map(|r| (format!("role=\"{r}\""), if *r == role { 1.0 } else { 0.0 }))
        .collect();
    let roles: Vec<(&str, f64)> = roles.iter().map(|(l, v)| (l.as_str(), *v)).collect();
    write_metric(
        &mut out,
        "yakt_role",
        "gauge",
        "1 for this node's current Raft role.",
        &roles,
    );
    write_metric(
        &mut out,
        "yakt_term",
        "gauge",
        "Current Raft term.",
        &[("", m.current_term as f64)],
    );
    write_metric(
        &mut out,
        "yakt_leader_id",
        "gauge",
        "Id of the leader this node sees (-1 when none).",
        &[("", m.current_leader.map_or(-1.0, |l| l as f64))],
    );
    let opt = |v: Option<u64>| v.map_or(0.0, |v| v as f64);
    write_metric(
        &mut out,
        "yakt_commit_offset",
        "gauge",
        "Highest offset known committed (0 when none).",
        &[("", opt(m.local_committed.map(|c| c.index)))],
    );
    write_metric(
        &mut out,
        "yakt_applied_offset",
        "gauge",
        "Highest offset applied to the metadata image.",
        &[("", node.state.applied().offset as f64)],
    );
    write_metric(
        &mut out,
        "yakt_last_log_offset",
        "gauge",
        "Offset of the last entry in this node's log (records appended so far).",
        &[("", opt(m.last_log_index))],
    );
    write_metric(
        &mut out,
        "yakt_log_start_offset",
        "gauge",
        "First offset still in the log (0 when the log is empty).",
        &[("", opt(node.committed().first_offset()))],
    );
    let snap = node.state.snapshot();
    write_metric(
        &mut out,
        "yakt_snapshot_offset",
        "gauge",
        "Offset of the newest snapshot (0 when none).",
        &[("", snap.map_or(0.0, |s| s.offset as f64))],
    );
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    write_metric(
        &mut out,
        "yakt_snapshot_age_seconds",
        "gauge",
        "Seconds since this node wrote or installed its newest snapshot (-1 when none).",
        &[(
            "",
            snap.map_or(-1.0, |s| {
                now_ms.saturating_sub(s.taken_at_ms) as f64 / 1000.0
            }),
        )],
    );
    write_metric(
        &mut out,
        "yakt_log_fsyncs_total",
        "counter",
        "fdatasync rounds of the segment log since the process started.",
        &[("", node.committed().fsync_count() as f64)],
    );
    write_histogram(
        &mut out,
        "yakt_log_fsync_duration_seconds",
        "Duration of the segment log's fdatasync rounds.",
        &[("", node.committed().fsync_latency())],
    );
    let last = m.last_log_index.unwrap_or(0);
    let lags: Vec<(String, f64)> = m
        .replication
        .as_ref()
        .map(|r| {
            r.iter()
                .filter(|(id, _)| **id != node.id)
                .map(|(id, matched)| {
                    let matched = matched.as_ref().map_or(0, |l| l.index);
                    (
                        format!("follower=\"{id}\""),
                        last.saturating_sub(matched) as f64,
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let lags: Vec<(&str, f64)> = lags.iter().map(|(l, v)| (l.as_str(), *v)).collect();
    write_metric(
        &mut out,
        "yakt_replication_lag_entries",
        "gauge",
        "On the leader: entries in its log not yet matched by each follower.",
        &lags,
    );
    node.metrics.render_into(&mut out);
    out
}

async fn metrics(State(node): State<Arc<Node>>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        render_metrics(&node),
    )
        .into_response()
}
