//! The original YAKt endpoints: writes go through the leader's proposer (forwarded there from a
//! follower), reads answer from this node's image.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ApiError;
use super::image_copy::with_copy;
use crate::metadata::record::RecordFields;
use crate::metadata::request::parse_topic_uuid;
use crate::metadata::MetadataAnswer;
use crate::metadata::{Record, WriteRequest};
use crate::raft::proposer::{Committed, ProposeError};
use crate::raft::Node;

/// Header a forwarded write carries, so a write is forwarded at most once.
pub const FORWARDED_HEADER: &str = "x-yakt-forwarded-by";

/// The fourteen original routes (catch-up ones in `catchup`).
pub fn routes() -> Router<Arc<Node>> {
    Router::new()
        .route("/get_metadata", get(get_metadata))
        .route("/register_broker", post(register_broker))
        .route("/get_all_brokers", get(get_all_brokers))
        .route("/get_broker/{broker_id}", get(get_broker))
        .route("/delete_broker/{broker_id}", put(delete_broker))
        .route("/create_topic", post(create_topic))
        .route("/get_topic/{topic_name}", get(get_topic))
        .route("/create_partition", post(create_partition))
        .route("/get_partitions", get(get_partitions))
        .route("/register_producer/{broker_id}", post(register_producer))
        .route("/get_producer_ids", get(get_producer_ids))
        .route(
            "/broker_registration_change",
            put(broker_registration_change),
        )
}

/// `415` unless the body is JSON (or has no content type at all, as the original clients send).
pub fn require_json(headers: &HeaderMap, body: &Bytes) -> Result<(), ApiError> {
    let Some(ct) = headers.get(axum::http::header::CONTENT_TYPE) else {
        return Ok(());
    };
    let ct = ct.to_str().unwrap_or("").to_ascii_lowercase();
    let mime = ct.split(';').next().unwrap_or("").trim();
    if mime == "application/json" || mime.ends_with("+json") || (body.is_empty() && mime.is_empty())
    {
        Ok(())
    } else {
        Err(ApiError::with_status(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("the body must be JSON (Content-Type: application/json), got {mime:?}"),
        ))
    }
}

/// One write request as it arrived, kept to forward it verbatim to the leader.
pub struct Incoming {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Proposes on the leader; on a follower, forwards the original request to the leader and
/// relays its answer.
pub async fn write_through_leader(
    node: &Arc<Node>,
    incoming: &Incoming,
    req: WriteRequest,
) -> Result<Result<Committed, Response>, ApiError> {
    match node.propose(req).await {
        Ok(c) => Ok(Ok(c)),
        Err(ProposeError::NotLeader {
            leader: Some((id, addr)),
        }) if id != node.id && !incoming.headers.contains_key(FORWARDED_HEADER) => {
            Ok(Err(forward(node, incoming, &addr).await?))
        }
        Err(e) => Err(e.into()),
    }
}

pub(crate) async fn forward(
    node: &Arc<Node>,
    incoming: &Incoming,
    leader_addr: &str,
) -> Result<Response, ApiError> {
    let path = incoming
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let url = node.url(leader_addr, path);
    let mut req = node
        .http()
        .request(incoming.method.clone(), &url)
        .header(FORWARDED_HEADER, node.id.to_string())
        .timeout(Duration::from_secs(10))
        .body(incoming.body.clone());
    for name in [
        axum::http::header::CONTENT_TYPE,
        axum::http::header::AUTHORIZATION,
    ] {
        if let Some(v) = incoming.headers.get(&name) {
            req = req.header(name, v.clone());
        }
    }
    let resp = req.send().await.map_err(|e| {
        let mut err = ApiError::unavailable(format!(
            "the leader at {leader_addr} did not answer the forwarded write: {e}"
        ));
        // Only a refused connection proves the leader never saw the write; after a timeout or
        // a reset it may have committed it.
        if !e.is_connect() {
            err.kind = "unknown_outcome";
        }
        err
    })?;
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let retry_after = resp.headers().get("retry-after").cloned();
    let body = resp.bytes().await.map_err(|e| {
        let mut err = ApiError::unavailable(format!("the forwarded write's answer broke off: {e}"));
        err.kind = "unknown_outcome";
        err
    })?;
    let mut out = (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response();
    if let Some(r) = retry_after {
        out.headers_mut().insert(axum::http::header::RETRY_AFTER, r);
    }
    out.headers_mut().insert(
        "x-yakt-leader",
        HeaderValue::from_str(leader_addr).unwrap_or(HeaderValue::from_static("")),
    );
    Ok(out)
}

async fn write(
    node: Arc<Node>,
    incoming: Incoming,
    parse: impl FnOnce(&[u8]) -> Result<WriteRequest, crate::metadata::MetadataError>,
    message: &str,
) -> Result<Response, ApiError> {
    require_json(&incoming.headers, &incoming.body)?;
    let req = parse(&incoming.body)?;
    match write_through_leader(&node, &incoming, req).await? {
        Err(forwarded) => Ok(forwarded),
        Ok(c) => Ok(Json(Written {
            message,
            metadata: RecordFields(&c.record),
            offset: c.offset,
        })
        .into_response()),
    }
}

/// A write's answer, `{"message", "metadata", "offset"}`, printed straight from the committed
/// record (no `serde_json::Value` built per write). The fields are declared in the sorted order
/// a `Value` object prints, so the bytes are those of `json!({...})` with `fields_json()`.
#[derive(serde::Serialize)]
struct Written<'a> {
    message: &'a str,
    metadata: RecordFields<'a>,
    offset: u64,
}

/// Reads the whole request as an [`Incoming`]: every write handler needs the body to parse and
/// the rest to forward it.
impl<S: Send + Sync> FromRequest<S> for Incoming {
    /// axum's own rejection (a body over the limit, a broken body); the `json_errors` middleware
    /// gives it the API's error shape.
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        // Moved out, not cloned (a clone of the parts copies every header and extension per
        // write): reading the body needs only the parts' extensions (the body limit).
        let method = parts.method.clone();
        let uri = std::mem::take(&mut parts.uri);
        let headers = std::mem::take(&mut parts.headers);
        let body = Bytes::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(Incoming {
            method,
            uri,
            headers,
            body,
        })
    }
}

/// `/register_broker` answers, besides the record, its offset as `brokerEpoch` (KRaft's broker
/// epoch, which heartbeats name).
async fn register_broker(State(n): State<Arc<Node>>, inc: Incoming) -> Result<Response, ApiError> {
    require_json(&inc.headers, &inc.body)?;
    let req = WriteRequest::parse_register_broker(&inc.body)?;
    match write_through_leader(&n, &inc, req).await? {
        Err(forwarded) => Ok(forwarded),
        Ok(c) => Ok(Json(json!({
            "message": "broker registered",
            "offset": c.offset,
            "brokerEpoch": c.offset,
            "metadata": c.record.fields_json(),
        }))
        .into_response()),
    }
}

async fn create_topic(State(n): State<Arc<Node>>, inc: Incoming) -> Result<Response, ApiError> {
    write(n, inc, WriteRequest::parse_create_topic, "topic created").await
}

async fn create_partition(State(n): State<Arc<Node>>, inc: Incoming) -> Result<Response, ApiError> {
    write(
        n,
        inc,
        WriteRequest::parse_create_partition,
        "partition created",
    )
    .await
}

async fn broker_registration_change(
    State(n): State<Arc<Node>>,
    inc: Incoming,
) -> Result<Response, ApiError> {
    write(
        n,
        inc,
        WriteRequest::parse_broker_change,
        "broker registration changed",
    )
    .await
}

async fn register_producer(
    State(n): State<Arc<Node>>,
    Path(broker_id): Path<String>,
    inc: Incoming,
) -> Result<Response, ApiError> {
    let parse = |body: &[u8]| WriteRequest::parse_register_producer(&broker_id, body);
    write(n, inc, parse, "producer registered").await
}

async fn delete_broker(
    State(node): State<Arc<Node>>,
    Path(broker_id): Path<String>,
    inc: Incoming,
) -> Result<Response, ApiError> {
    let req = WriteRequest::delete_broker(&broker_id)?;
    match write_through_leader(&node, &inc, req).await? {
        Err(forwarded) => Ok(forwarded),
        Ok(c) => {
            let id = match &c.record {
                Record::BrokerChange(r) => Some(r.broker_id),
                _ => None,
            };
            let uuid = id.and_then(|id| {
                node.state
                    .read()
                    .image
                    .broker_record(id)
                    .map(|b| b.internal_uuid.to_string())
            });
            Ok(
                Json(json!({"message": "broker closed", "offset": c.offset, "brokerUUID": uuid}))
                    .into_response(),
            )
        }
    }
}

/// `?consistent=true` on any read (and `/get_partitions`' `?topicUUID=`). A parameter it does
/// not know is a `400`, never silently ignored: a typo must not answer something else.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ReadQuery {
    consistent: Option<String>,
    #[serde(rename = "topicUUID")]
    topic_uuid: Option<String>,
}

/// `/get_metadata`'s query: `?consistent=`, and time travel's `?at_offset=` or `?at=`. Unknown
/// parameters are refused (`?at_ofset=5` must not answer the current image).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct MetadataQuery {
    consistent: Option<String>,
    at_offset: Option<String>,
    at: Option<String>,
}

/// Makes a read linearizable when asked: learn the leader's commit index (read index) and wait
/// until this node has applied it.
pub async fn maybe_consistent(node: &Arc<Node>, q: &ReadQuery) -> Result<(), ApiError> {
    match q.consistent.as_deref() {
        None | Some("false") | Some("0") | Some("") => Ok(()),
        Some("true") | Some("1") => node.read_barrier().await.map_err(ApiError::from),
        Some(other) => Err(ApiError::bad_request(format!(
            "consistent must be true or false, got {other:?}"
        ))),
    }
}

/// The whole image, serialized straight into the body (no `Value` tree: for a large image that
/// tree is many times the size of the body) from a copy taken under the read lock, after the
/// lock is released and on a blocking thread for a large image: apply never waits for it.
async fn get_metadata(
    State(node): State<Arc<Node>>,
    Query(mq): Query<MetadataQuery>,
) -> Result<Response, ApiError> {
    let point = super::history::point(mq.at_offset.as_deref(), mq.at.as_deref())?;
    let q = ReadQuery {
        consistent: mq.consistent,
        topic_uuid: None,
    };
    maybe_consistent(&node, &q).await?;
    if let Some(point) = point {
        return super::history::image_at(&node, point).await;
    }
    let body = with_copy(&node.state, |at| {
        serde_json::to_vec(&MetadataAnswer {
            image: &at.image,
            offset: at.applied.offset,
            epoch: at.applied.term,
        })
    })
    .await?
    .map_err(|e| {
        ApiError::with_status(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("could not encode the image: {e}"),
        )
    })?;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response())
}

async fn get_all_brokers(
    State(node): State<Arc<Node>>,
    Query(q): Query<ReadQuery>,
) -> Result<Json<Value>, ApiError> {
    maybe_consistent(&node, &q).await?;
    let brokers = with_copy(&node.state, |at| at.image.brokers_not_closed()).await?;
    Ok(Json(json!({"metadata": brokers})))
}

async fn get_broker(
    State(node): State<Arc<Node>>,
    Path(broker_id): Path<String>,
    Query(q): Query<ReadQuery>,
) -> Result<Json<Value>, ApiError> {
    let id = crate::metadata::request::parse_broker_id_path(&broker_id)?;
    maybe_consistent(&node, &q).await?;
    let broker = node.state.read().image.broker(id)?;
    Ok(Json(json!({"metadata": broker})))
}

async fn get_topic(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
    Query(q): Query<ReadQuery>,
) -> Result<Json<Value>, ApiError> {
    maybe_consistent(&node, &q).await?;
    let topic = node.state.read().image.topic(&name)?;
    Ok(Json(json!({"metadata": topic})))
}

async fn get_partitions(
    State(node): State<Arc<Node>>,
    Query(q): Query<ReadQuery>,
) -> Result<Json<Value>, ApiError> {
    let filter = match q.topic_uuid.as_deref() {
        Some(s) => Some(parse_topic_uuid(s)?),
        None => None,
    };
    maybe_consistent(&node, &q).await?;
    let partitions = match filter {
        // One topic's partitions: a range of the map, read under the lock.
        Some(_) => node.state.read().image.partitions(filter),
        None => with_copy(&node.state, move |at| at.image.partitions(None)).await?,
    };
    Ok(Json(json!({"metadata": partitions})))
}

async fn get_producer_ids(
    State(node): State<Arc<Node>>,
    Query(q): Query<ReadQuery>,
) -> Result<Json<Value>, ApiError> {
    maybe_consistent(&node, &q).await?;
    let producers = with_copy(&node.state, |at| at.image.producer_ids()).await?;
    Ok(Json(json!({"metadata": producers})))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::metadata::record::{PartitionRecord, TopicRecord};

    #[test]
    fn a_write_answer_prints_the_bytes_the_value_tree_printed() {
        let records = [
            Record::Topic(TopicRecord {
                name: "t\"1".into(),
                topic_uuid: uuid::Uuid::from_u128(9),
            }),
            Record::Partition(PartitionRecord {
                isr: vec![1],
                adding_replicas: vec![],
                leader: 1,
                leader_epoch: 2,
                partition_epoch: 3,
                partition_id: 0,
                removing_replicas: vec![2],
                replicas: vec![1, 2],
                topic_uuid: uuid::Uuid::from_u128(9),
            }),
        ];
        for record in records {
            let old = json!({"message": "m", "offset": 7, "metadata": record.fields_json()});
            let new = Written {
                message: "m",
                metadata: RecordFields(&record),
                offset: 7,
            };
            assert_eq!(
                serde_json::to_vec(&new).expect("serializes"),
                serde_json::to_vec(&old).expect("serializes")
            );
        }
    }
}
