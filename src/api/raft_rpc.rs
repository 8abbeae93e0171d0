//! `/raft/...`: node-to-node RPC. MessagePack in, MessagePack out (see `raft::network`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use openraft::raft::{AppendEntriesRequest, TransferLeaderRequest, VoteRequest};
use openraft::type_config::async_runtime::WatchReceiver;
use serde::Serialize;

use super::error::ApiError;
use crate::raft::codec::{decode_named, encode_named};
use crate::raft::network::{decode_snapshot_body, MSGPACK};
use crate::raft::node::JoinRequest;
use crate::raft::proposer::ProposeError;
use crate::raft::snapshot_check::check_snapshot_header;
use crate::raft::{MembershipError, Node, TypeConfig, CLUSTER_ID_HEADER};

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

/// Refuses Raft traffic from another cluster. A directory from before cluster ids (not a new
/// one, and one that was part of a cluster) takes the id of the first leader that writes to it;
/// a node that never joined learns its cluster id only from the leader that admits it.
fn check_cluster(node: &Node, headers: &HeaderMap) -> Result<(), ApiError> {
    let theirs = headers
        .get(CLUSTER_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<uuid::Uuid>().ok());
    match (node.identity.cluster_id(), theirs) {
        (Some(ours), Some(theirs)) if ours == theirs => Ok(()),
        (None, Some(theirs)) if !node.recovery.needs_rejoin() && !node.never_joined() => {
            node.identity.set_cluster_id(theirs).map_err(|e| {
                ApiError::new(StatusCode::CONFLICT, "cluster_mismatch", e.to_string())
            })?;
            tracing::info!(cluster_id = %theirs, "adopted the cluster id of the leader");
            Ok(())
        }
        (None, Some(_)) => {
            // A node that has not joined yet: it learns its cluster from the leader that admits
            // it (`/raft/join`), not from whoever writes to it first. Not a mismatch, and not
            // worth a warning on every heartbeat until the join completes.
            tracing::debug!(
                node = node.id,
                "refusing Raft traffic before joining a cluster"
            );
            Err(recovering(format!(
                "node {} has not joined a cluster yet",
                node.id
            )))
        }
        (ours, theirs) => {
            let message = format!(
                "refusing Raft traffic from cluster {}: this node belongs to {}",
                theirs.map_or("(none given)".to_string(), |t| t.to_string()),
                ours.map_or("no cluster yet".to_string(), |o| o.to_string()),
            );
            tracing::warn!(node = node.id, "{message}");
            Err(ApiError::new(
                StatusCode::CONFLICT,
                "cluster_mismatch",
                message,
            ))
        }
    }
}

/// A Raft RPC's request: from this node's cluster (see [`check_cluster`]), and decodable.
fn request<T: serde::de::DeserializeOwned>(
    node: &Node,
    headers: &HeaderMap,
    what: &'static str,
    body: &[u8],
) -> Result<T, ApiError> {
    check_cluster(node, headers)?;
    decode_named(what, body).map_err(|e| ApiError::bad_request(e.to_string()))
}

/// The answer of a call that only fails when the Raft core has stopped.
fn answer<T: Serialize>(res: Result<T, openraft::errors::Fatal<TypeConfig>>) -> Response {
    msgpack(&res.map_err(openraft::errors::RaftError::<TypeConfig>::Fatal))
}

fn recovering(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "recovering", e.to_string())
}

async fn append(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: AppendEntriesRequest<TypeConfig> = request(&node, &headers, "append request", &body)?;
    node.recovery.admit(&req.vote).map_err(recovering)?;
    Ok(msgpack(&node.raft.append_entries(req).await))
}

async fn vote(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: VoteRequest<TypeConfig> = request(&node, &headers, "vote request", &body)?;
    let membership = node
        .raft
        .metrics()
        .borrow_watched()
        .membership_config
        .clone();
    if !node
        .recovery
        .may_grant(req.last_log_id.as_ref(), membership.membership())
    {
        return Err(recovering(format!(
            "node {} grants no vote until a leader has caught it up: {}",
            node.id,
            node.recovery.reason_now()
        )));
    }
    Ok(msgpack(&node.raft.vote(req).await))
}

async fn snapshot(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    check_cluster(&node, &headers)?;
    let (header, data) = decode_snapshot_body(&body).map_err(ApiError::bad_request)?;
    check_snapshot_header(&header).map_err(|e| ApiError::bad_request(e.to_string()))?;
    node.recovery.admit(&header.vote).map_err(recovering)?;
    let snapshot = openraft::storage::Snapshot {
        meta: header.meta,
        snapshot: std::io::Cursor::new(data),
    };
    Ok(answer(
        node.raft.install_full_snapshot(header.vote, snapshot).await,
    ))
}

/// A leader that is stopping asks this node to take over (see `raft::handoff`). A node that
/// does not vote yet cannot lead either.
async fn transfer_leader(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: TransferLeaderRequest<TypeConfig> =
        request(&node, &headers, "transfer leader request", &body)?;
    if !node.recovery.is_voting() {
        return Err(recovering(format!(
            "node {} cannot take over: it does not vote yet ({})",
            node.id,
            node.recovery.reason()
        )));
    }
    Ok(answer(node.raft.handle_transfer_leader(req).await))
}

async fn join(
    State(node): State<Arc<Node>>,
    Json(req): Json<JoinRequest>,
) -> Result<Response, ApiError> {
    match node.admit(req).await {
        Ok(answer) => Ok(Json(answer).into_response()),
        Err(MembershipError::Raft(ProposeError::NotLeader { leader: Some((id, addr)) })) => Ok((
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
