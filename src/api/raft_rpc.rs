//! `/raft/...`: node-to-node RPC. MessagePack in, MessagePack out (see `raft::network`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use openraft::raft::{AppendEntriesRequest, TransferLeaderRequest, VoteRequest};
use serde::Serialize;

use super::error::ApiError;
use crate::raft::codec::{decode_named, encode_named};
use crate::raft::network::{decode_snapshot_body, MSGPACK};
use crate::raft::proposer::ProposeError;
use crate::raft::snapshot_check::check_snapshot_header;
use crate::raft::{Node, TypeConfig};

/// The `/raft` routes.
pub fn routes() -> Router<Arc<Node>> {
    Router::new()
        .route("/raft/append", post(append))
        .route("/raft/vote", post(vote))
        .route("/raft/snapshot", post(snapshot))
        .route("/raft/transfer_leader", post(transfer_leader))
        .route("/raft/join", post(join))
        .route("/raft/read_index", post(read_index))
}

fn msgpack<T: Serialize>(value: &T) -> Response {
    match encode_named("raft rpc response", value) {
        Ok(bytes) => ([(header::CONTENT_TYPE, MSGPACK)], bytes).into_response(),
        Err(e) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
            .into_response(),
    }
}

async fn append(State(node): State<Arc<Node>>, body: Bytes) -> Result<Response, ApiError> {
    let req: AppendEntriesRequest<TypeConfig> =
        decode_named("append request", &body).map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(msgpack(&node.raft.append_entries(req).await))
}

async fn vote(State(node): State<Arc<Node>>, body: Bytes) -> Result<Response, ApiError> {
    let req: VoteRequest<TypeConfig> =
        decode_named("vote request", &body).map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(msgpack(&node.raft.vote(req).await))
}

async fn snapshot(State(node): State<Arc<Node>>, body: Bytes) -> Result<Response, ApiError> {
    let (header, data) = decode_snapshot_body(&body).map_err(ApiError::bad_request)?;
    check_snapshot_header(&header).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let snapshot = openraft::storage::Snapshot {
        meta: header.meta,
        snapshot: std::io::Cursor::new(data),
    };
    let res = node.raft.install_full_snapshot(header.vote, snapshot).await;
    Ok(msgpack(
        &res.map_err(openraft::errors::RaftError::<TypeConfig>::Fatal),
    ))
}

/// A leader that is stopping asks this node to take over (see `raft::handoff`).
async fn transfer_leader(State(node): State<Arc<Node>>, body: Bytes) -> Result<Response, ApiError> {
    let req: TransferLeaderRequest<TypeConfig> = decode_named("transfer leader request", &body)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let res = node.raft.handle_transfer_leader(req).await;
    Ok(msgpack(
        &res.map_err(openraft::errors::RaftError::<TypeConfig>::Fatal),
    ))
}

#[derive(serde::Deserialize)]
struct JoinRequest {
    id: u64,
    addr: String,
}

async fn join(
    State(node): State<Arc<Node>>,
    Json(req): Json<JoinRequest>,
) -> Result<Response, ApiError> {
    match node.add_member(req.id, req.addr).await {
        Ok(()) => Ok(Json(serde_json::json!({"message": "joined", "node_id": req.id})).into_response()),
        Err(ProposeError::NotLeader { leader: Some((id, addr)) }) => Ok((
            StatusCode::MISDIRECTED_REQUEST,
            Json(serde_json::json!({"error": "not_leader", "message": format!("node {id} leads"), "leader_id": id, "leader_addr": addr})),
        )
            .into_response()),
        Err(e) => Err(e.into()),
    }
}

async fn read_index(State(node): State<Arc<Node>>) -> Result<Response, ApiError> {
    let index = node.read_index().await?;
    Ok(Json(serde_json::json!({"index": index})).into_response())
}
