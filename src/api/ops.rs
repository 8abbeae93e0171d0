//! Operating endpoints: `/cluster` and `/health`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use openraft::type_config::async_runtime::WatchReceiver;
use serde_json::json;

use crate::raft::Node;

/// The operating routes.
pub fn routes() -> Router<Arc<Node>> {
    Router::new()
        .route("/cluster", get(cluster))
        .route("/health", get(health))
}

/// The cluster as this node sees it (also used by `yakt status`).
pub fn cluster_view(node: &Node) -> serde_json::Value {
    let m = node.raft.metrics().borrow_watched().clone();
    let membership = m.membership_config.membership();
    let voters: std::collections::BTreeSet<u64> = membership.voter_ids().collect();
    let members: Vec<_> = membership
        .nodes()
        .map(|(id, n)| json!({"id": id, "addr": n.addr, "voter": voters.contains(id)}))
        .collect();
    let leader = node.leader();
    let snapshot = node
        .state
        .snapshot()
        .map(|s| json!({"offset": s.offset, "epoch": s.term}));
    json!({
        "node_id": node.id,
        "role": node.role(),
        "leader_id": leader.as_ref().map(|l| l.id),
        "leader_addr": leader.as_ref().map(|l| l.addr.clone()),
        "term": m.current_term,
        "members": members,
        "commit_offset": m.local_committed.map(|c| c.index),
        "applied_offset": m.last_applied.map(|c| c.index),
        "last_log_offset": m.last_log_index,
        "log_start_offset": node.log.first_index(),
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
