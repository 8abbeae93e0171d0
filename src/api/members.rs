//! `POST /cluster/members` and `DELETE /cluster/members/{id}`: an operator adds or removes a
//! node (`yakt member add|remove` call these). Only the leader changes the membership; a
//! follower forwards the request to it.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, post};
use axum::{Json, Router};
use serde_json::json;

use super::error::ApiError;
use super::metadata::{forward, require_json, Incoming, FORWARDED_HEADER};
use crate::raft::proposer::ProposeError;
use crate::raft::{MembershipError, Node, NodeId};

/// The membership routes.
pub fn routes() -> Router<Arc<Node>> {
    Router::new()
        .route("/cluster/members", post(add))
        .route("/cluster/members/{id}", delete(remove))
}

/// A body of `POST /cluster/members`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AddMember {
    id: NodeId,
    addr: String,
}

fn parse_add(body: &[u8]) -> Result<AddMember, ApiError> {
    let req: AddMember = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "the body must be {{\"id\": <node id>, \"addr\": \"HOST:PORT\"}}: {e}"
        ))
    })?;
    let valid_addr = req
        .addr
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0));
    if !valid_addr {
        return Err(ApiError::bad_request(format!(
            "addr must be HOST:PORT, got {:?}",
            req.addr
        )));
    }
    Ok(req)
}

fn parse_id(s: &str) -> Result<NodeId, ApiError> {
    s.parse().map_err(|_| {
        ApiError::bad_request(format!("node id in the path must be an integer, got {s:?}"))
    })
}

/// Runs `change` on the leader; on a follower, forwards the request there once.
async fn on_leader(
    node: &Arc<Node>,
    incoming: &Incoming,
    result: Result<(), MembershipError>,
) -> Result<Option<Response>, ApiError> {
    match result {
        Ok(()) => Ok(None),
        Err(MembershipError::Raft(ProposeError::NotLeader {
            leader: Some((id, addr)),
        })) if id != node.id && !incoming.headers.contains_key(FORWARDED_HEADER) => {
            Ok(Some(forward(node, incoming, &addr).await?))
        }
        Err(e) => Err(e.into()),
    }
}

async fn add(State(node): State<Arc<Node>>, incoming: Incoming) -> Result<Response, ApiError> {
    require_json(&incoming.headers, &incoming.body)?;
    let req = parse_add(&incoming.body)?;
    let result = node.add_member(req.id, req.addr.clone()).await;
    if let Some(forwarded) = on_leader(&node, &incoming, result).await? {
        return Ok(forwarded);
    }
    Ok(Json(json!({
        "message": format!("node {} is a voter", req.id),
        "id": req.id,
        "addr": req.addr,
    }))
    .into_response())
}

async fn remove(
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
    incoming: Incoming,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let result = node.remove_member(id).await;
    if let Some(forwarded) = on_leader(&node, &incoming, result).await? {
        return Ok(forwarded);
    }
    Ok(Json(json!({"message": format!("node {id} removed"), "id": id})).into_response())
}
