//! Broker liveness endpoints (API.md "Broker liveness"): `POST /broker_heartbeat/{broker_id}` and
//! `POST /alter_partition`. Both are answered by the leader's liveness controller
//! ([`crate::raft::liveness`]); a follower forwards the request there, as it forwards writes.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::error::ApiError;
use super::metadata::{forward, require_json, Incoming, FORWARDED_HEADER};
use crate::metadata::{parse_broker_id_path, WriteRequest};
use crate::raft::liveness::{Heartbeat, LivenessError};
use crate::raft::proposer::ProposeError;
use crate::raft::Node;

/// The two liveness routes.
pub fn routes() -> Router<Arc<Node>> {
    Router::new()
        .route("/broker_heartbeat/{broker_id}", post(broker_heartbeat))
        .route("/alter_partition", post(alter_partition))
}

/// An `/alter_partition` body, API.md's field names (also its schema in `/openapi.json`).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AlterPartitionBody {
    /// The broker asking: the partition's leader.
    #[serde(rename = "brokerId")]
    #[schema(minimum = 0)]
    broker_id: i32,
    /// The asking broker's current broker epoch (its registration's `brokerEpoch`).
    #[serde(rename = "brokerEpoch")]
    broker_epoch: u64,
    /// The partition's topic.
    #[serde(rename = "topicUUID")]
    topic_uuid: Uuid,
    /// The partition, within its topic.
    #[serde(rename = "partitionId")]
    #[schema(minimum = 0)]
    partition_id: i32,
    /// The partition's epoch as the leader last saw it.
    #[serde(rename = "partitionEpoch")]
    partition_epoch: u64,
    /// The new in-sync replicas: replicas of the partition, none fenced, no repeats.
    #[serde(rename = "ISR")]
    #[schema(min_items = 1, value_type = Vec<u32>)]
    isr: Vec<i32>,
}

/// A JSON body read into `T`, or a 400 naming the endpoint and serde's reason.
fn body<T: serde::de::DeserializeOwned>(inc: &Incoming, what: &str) -> Result<T, ApiError> {
    require_json(&inc.headers, &inc.body)?;
    serde_json::from_slice(&inc.body)
        .map_err(|e| ApiError::bad_request(format!("{what} body: {e}")))
}

/// The controller's answer, or the request forwarded to the leader when this node is not it.
async fn answer_or_forward<T: serde::Serialize>(
    node: &Arc<Node>,
    inc: &Incoming,
    outcome: Result<T, LivenessError>,
) -> Result<Response, ApiError> {
    match outcome {
        Ok(v) => Ok(Json(v).into_response()),
        Err(LivenessError::Propose(ProposeError::NotLeader {
            leader: Some((id, addr)),
        })) if id != node.id && !inc.headers.contains_key(FORWARDED_HEADER) => {
            forward(node, inc, &addr).await
        }
        Err(LivenessError::Propose(e)) => Err(e.into()),
        Err(LivenessError::Refused(e)) => Err(e.into()),
    }
}

async fn broker_heartbeat(
    State(node): State<Arc<Node>>,
    Path(broker_id): Path<String>,
    inc: Incoming,
) -> Result<Response, ApiError> {
    let broker_id = parse_broker_id_path(&broker_id)?;
    let hb: Heartbeat = body(&inc, "broker_heartbeat")?;
    let outcome = node.liveness().heartbeat(&node, broker_id, hb).await;
    answer_or_forward(&node, &inc, outcome).await
}

async fn alter_partition(
    State(node): State<Arc<Node>>,
    inc: Incoming,
) -> Result<Response, ApiError> {
    let b: AlterPartitionBody = body(&inc, "alter_partition")?;
    let req = WriteRequest::AlterPartition {
        broker_id: b.broker_id,
        topic_uuid: b.topic_uuid,
        partition_id: b.partition_id,
        partition_epoch: b.partition_epoch,
        isr: b.isr,
    };
    req.validate()?;
    let outcome = node
        .liveness()
        .alter_partition(&node, b.broker_epoch, req)
        .await
        .map(|c| {
            json!({"message": "partition changed", "offset": c.offset,
                   "metadata": c.record.fields_json()})
        });
    answer_or_forward(&node, &inc, outcome).await
}
