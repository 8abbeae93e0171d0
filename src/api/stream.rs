//! Reading the log by offset: `GET /stream` (server-sent events) and `GET /fetch` (JSON pages,
//! long-polling), the way a KRaft broker fetches `__cluster_metadata`.
//!
//! Both read committed records from the segment files (never from an in-memory copy of the log)
//! up to what this node has applied. A reader whose offset was purged below the log start first
//! gets the image as a snapshot, then the records after it.

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::header;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Extension;
use axum::{Json, Router};
use bytes::{Bytes, BytesMut};
use futures::Stream;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::{mpsc, oneshot};

use super::error::ApiError;
use super::ApiOptions;
use crate::metadata::LogRecord;
use crate::raft::codec::stored_to_log_record;
use crate::raft::Node;

/// Events buffered per SSE reader before it counts as slow.
const READER_BUFFER: usize = 1024;
/// How long a reader's buffer may stay full before it is cut off, by default
/// (`--slow-reader-timeout`).
pub const SLOW_READER_TIMEOUT: Duration = Duration::from_secs(10);
/// Payload bytes read from the log per batch.
const READ_BATCH_BYTES: usize = 1024 * 1024;
/// Keep-alive comment interval.
const KEEP_ALIVE: Duration = Duration::from_secs(10);
/// Most bytes of already-buffered events written to a reader's connection as one body chunk.
const COALESCE_BYTES: usize = 256 * 1024;

/// One server-sent event, as text: `id: ..`, `event: ..`, `data: ..`, blank line. `data` is one
/// line of JSON (compact JSON has no raw newlines).
fn sse_event(id: Option<u64>, event: &str, data: &str) -> Bytes {
    debug_assert!(!data.contains(['\n', '\r']));
    let mut b = BytesMut::with_capacity(data.len() + event.len() + 40);
    if let Some(id) = id {
        b.extend_from_slice(b"id: ");
        b.extend_from_slice(id.to_string().as_bytes());
        b.extend_from_slice(b"\n");
    }
    b.extend_from_slice(b"event: ");
    b.extend_from_slice(event.as_bytes());
    b.extend_from_slice(b"\ndata: ");
    b.extend_from_slice(data.as_bytes());
    b.extend_from_slice(b"\n\n");
    b.freeze()
}

/// The stream and fetch routes.
pub fn routes() -> Router<Arc<Node>> {
    Router::new()
        .route("/stream", get(stream))
        .route("/fetch", get(fetch))
}

/// What one read of the log found.
enum Chunk {
    /// The offset is below the log start: the image at `offset`, continue after it.
    Snapshot {
        offset: u64,
        epoch: u64,
        metadata: serde_json::Value,
    },
    /// Records (already filtered) and the next offset to read.
    Records { records: Vec<LogRecord>, next: u64 },
}

/// A name filter from `?names=A,B`; empty means everything.
#[derive(Clone, Default)]
struct NameFilter(HashSet<String>);

impl NameFilter {
    fn parse(names: Option<&str>) -> Result<Self, ApiError> {
        let Some(names) = names else {
            return Ok(Self::default());
        };
        let known = [
            "RegisterBrokerRecord",
            "TopicRecord",
            "PartitionRecord",
            "ProducerIdsRecord",
            "BrokerRegistrationChangeBrokerRecord",
        ];
        let mut set = HashSet::new();
        for n in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if !known.contains(&n) {
                return Err(ApiError::bad_request(format!(
                    "unknown record name {n:?} in names; known: {}",
                    known.join(", ")
                )));
            }
            set.insert(n.to_string());
        }
        Ok(Self(set))
    }

    fn allows(&self, name: &str) -> bool {
        self.0.is_empty() || self.0.contains(name)
    }
}

/// Reads committed records from `next`, at most `max_records`, up to the applied offset.
fn read_chunk(
    node: &Node,
    next: u64,
    max_records: usize,
    filter: &NameFilter,
) -> Result<Chunk, ApiError> {
    let applied = node.state.applied().offset;
    let below_start = match node.log.first_index() {
        Some(first) => next < first,
        None => node.log.last_purged().is_some_and(|p| next <= p.index),
    };
    if below_start && next <= applied {
        let at = node.state.read();
        return Ok(Chunk::Snapshot {
            offset: at.applied.offset,
            epoch: at.applied.term,
            metadata: at.image.metadata_json(),
        });
    }
    if next > applied {
        return Ok(Chunk::Records {
            records: Vec::new(),
            next,
        });
    }
    let entries = node
        .log
        .read_range(next, applied + 1, Some(READ_BATCH_BYTES))
        .map_err(|e| ApiError::unavailable(format!("reading the log: {e}")))?;
    if entries.first().is_some_and(|e| e.index > next)
        && node.log.last_purged().is_some_and(|p| next <= p.index)
    {
        // A purge ran between the check above and this read: `read_range` starts at the new log
        // start, so reading on would skip records silently. Serve the image instead.
        let at = node.state.read();
        return Ok(Chunk::Snapshot {
            offset: at.applied.offset,
            epoch: at.applied.term,
            metadata: at.image.metadata_json(),
        });
    }
    let mut records = Vec::new();
    let mut cursor = next;
    for entry in &entries {
        if records.len() >= max_records {
            break;
        }
        cursor = entry.index + 1;
        match stored_to_log_record(entry) {
            Ok(Some(r)) if filter.allows(&r.name) => records.push(r),
            Ok(_) => {}
            Err(e) => {
                return Err(ApiError::unavailable(format!(
                    "undecodable entry at offset {}: {e}",
                    entry.index
                )))
            }
        }
    }
    Ok(Chunk::Records {
        records,
        next: cursor,
    })
}

#[derive(Deserialize)]
struct StreamQuery {
    offset: Option<String>,
    names: Option<String>,
}

fn parse_offset(raw: Option<&str>, node: &Node) -> Result<u64, ApiError> {
    match raw {
        None | Some("") | Some("start") | Some("earliest") => Ok(0),
        Some("end") | Some("latest") => Ok(node.state.applied().offset + 1),
        Some(n) => n.parse::<u64>().map_err(|_| {
            ApiError::bad_request(format!(
                "offset must be a non-negative integer or \"end\", got {n:?}"
            ))
        }),
    }
}

async fn stream(
    State(node): State<Arc<Node>>,
    Extension(opts): Extension<ApiOptions>,
    headers: HeaderMap,
    Query(q): Query<StreamQuery>,
) -> Response {
    let filter = match NameFilter::parse(q.names.as_deref()) {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    let start = match resume {
        Some(id) => match id.parse::<u64>().ok().and_then(|k| k.checked_add(1)) {
            Some(k) => k,
            None => {
                return ApiError::bad_request(format!(
                    "Last-Event-ID must be an offset, got {id:?}"
                ))
                .into_response()
            }
        },
        None => match parse_offset(q.offset.as_deref(), &node) {
            Ok(o) => o,
            Err(e) => return e.into_response(),
        },
    };
    let (tx, rx) = mpsc::channel(READER_BUFFER);
    let (cut_tx, cut_rx) = oneshot::channel();
    node.metrics.sse_readers.inc();
    let guard = ReaderGuard(node.clone());
    tokio::spawn(produce(
        node,
        start,
        filter,
        tx,
        cut_tx,
        opts.slow_reader_timeout,
    ));
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(consume(rx, cut_rx, guard)),
    )
        .into_response()
}

/// Counts an open reader until its stream is dropped.
struct ReaderGuard(Arc<Node>);

impl Drop for ReaderGuard {
    fn drop(&mut self) {
        self.0.metrics.sse_readers.dec();
    }
}

/// Why a reader's stream ended early.
struct Cutoff {
    kind: &'static str,
    message: String,
}

/// Reads the log ahead of one SSE reader into its bounded buffer.
async fn produce(
    node: Arc<Node>,
    mut next: u64,
    filter: NameFilter,
    tx: mpsc::Sender<Bytes>,
    cut: oneshot::Sender<Cutoff>,
    slow_after: Duration,
) {
    let mut applied_rx = node.state.subscribe_applied();
    let mut shutdown = node.shutdown_signal();
    loop {
        if *shutdown.borrow_and_update() {
            // Tell the reader why the stream ends, so it reconnects elsewhere (or later)
            // with Last-Event-ID.
            let data =
                json!({"message": "this node is shutting down; reconnect with Last-Event-ID"});
            let _ = tx.try_send(sse_event(None, "shutdown", &data.to_string()));
            return;
        }
        let chunk = match read_chunk(&node, next, usize::MAX, &filter) {
            Ok(c) => c,
            Err(e) => {
                let _ = cut.send(Cutoff {
                    kind: "read_failed",
                    message: e.message,
                });
                return;
            }
        };
        let events: Vec<Bytes> = match chunk {
            Chunk::Snapshot {
                offset,
                epoch,
                metadata,
            } => {
                next = offset + 1;
                let data = json!({"offset": offset, "epoch": epoch, "metadata": metadata});
                vec![sse_event(Some(offset), "snapshot", &data.to_string())]
            }
            Chunk::Records { records, next: n } => {
                let idle = n == next;
                next = n;
                if idle {
                    // Caught up: wait for the next apply (or the reader going away).
                    tokio::select! {
                        changed = applied_rx.changed() => if changed.is_err() { return },
                        _ = shutdown.changed() => {}
                        _ = tx.closed() => return,
                    }
                    continue;
                }
                records
                    .iter()
                    .map(|r| {
                        let data = serde_json::to_string(r).unwrap_or_default();
                        sse_event(Some(r.offset), "record", &data)
                    })
                    .collect()
            }
        };
        for ev in events {
            match tx.send_timeout(ev, slow_after).await {
                Ok(()) => {}
                Err(mpsc::error::SendTimeoutError::Closed(_)) => return,
                Err(mpsc::error::SendTimeoutError::Timeout(_)) => {
                    tracing::warn!(
                        next_offset = next,
                        timeout_ms = slow_after.as_millis() as u64,
                        "slow_reader: cut off an SSE reader whose buffer stayed full"
                    );
                    let _ = cut.send(Cutoff {
                        kind: "slow_reader",
                        message: format!(
                            "this reader did not keep up (buffer full for {:?}); reconnect with Last-Event-ID to resume",
                            slow_after
                        ),
                    });
                    return;
                }
            }
        }
    }
}

/// The reader's side: buffered events, then a final `event: error` if it was cut off; a
/// keep-alive comment after `KEEP_ALIVE` without events.
///
/// Events already buffered go out together as one body chunk (up to `COALESCE_BYTES`): one
/// write per batch instead of one per event is what lets a reader catching up on a long log
/// receive hundreds of thousands of records per second.
fn consume(
    rx: mpsc::Receiver<Bytes>,
    cut: oneshot::Receiver<Cutoff>,
    guard: ReaderGuard,
) -> impl Stream<Item = Result<Bytes, Infallible>> {
    futures::stream::unfold((rx, Some(cut), guard), |(mut rx, cut, guard)| async move {
        match tokio::time::timeout(KEEP_ALIVE, rx.recv()).await {
            Err(_) => return Some((Ok(Bytes::from_static(b":\n\n")), (rx, cut, guard))),
            Ok(Some(first)) => {
                let mut more = match rx.try_recv() {
                    Ok(ev) => ev,
                    Err(_) => return Some((Ok(first), (rx, cut, guard))),
                };
                let mut buf = BytesMut::with_capacity(COALESCE_BYTES.min(64 * first.len()));
                buf.extend_from_slice(&first);
                loop {
                    buf.extend_from_slice(&more);
                    if buf.len() >= COALESCE_BYTES {
                        break;
                    }
                    match rx.try_recv() {
                        Ok(ev) => more = ev,
                        Err(_) => break,
                    }
                }
                return Some((Ok(buf.freeze()), (rx, cut, guard)));
            }
            Ok(None) => {}
        }
        // The producer is gone: say why, once, if it was a cutoff.
        let reason = match cut {
            Some(c) => c.await.ok(),
            None => None,
        }?;
        let data = json!({"error": reason.kind, "message": reason.message});
        Some((
            Ok(sse_event(None, "error", &data.to_string())),
            (rx, None, guard),
        ))
    })
}

#[derive(Deserialize)]
struct FetchQuery {
    offset: Option<String>,
    max_records: Option<String>,
    wait_ms: Option<String>,
    names: Option<String>,
}

fn parse_num(raw: Option<&str>, name: &str, default: u64, max: u64) -> Result<u64, ApiError> {
    match raw {
        None | Some("") => Ok(default),
        Some(s) => match s.parse::<u64>() {
            Ok(v) => Ok(v.min(max)),
            Err(_) => Err(ApiError::bad_request(format!(
                "{name} must be a non-negative integer, got {s:?}"
            ))),
        },
    }
}

/// Most records one fetch returns.
pub const FETCH_MAX_RECORDS: u64 = 10_000;
/// Longest a fetch waits for new records.
pub const FETCH_MAX_WAIT_MS: u64 = 30_000;

async fn fetch(
    State(node): State<Arc<Node>>,
    Query(q): Query<FetchQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let filter = NameFilter::parse(q.names.as_deref())?;
    let offset = parse_offset(q.offset.as_deref(), &node)?;
    let max_records = parse_num(
        q.max_records.as_deref(),
        "max_records",
        1000,
        FETCH_MAX_RECORDS,
    )?
    .max(1) as usize;
    let wait_ms = parse_num(q.wait_ms.as_deref(), "wait_ms", 0, FETCH_MAX_WAIT_MS)?;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(wait_ms);
    let mut applied_rx = node.state.subscribe_applied();
    let mut shutdown = node.shutdown_signal();
    let mut next = offset;
    loop {
        applied_rx.borrow_and_update();
        let chunk = read_chunk(&node, next, max_records, &filter)?;
        let page = |records: Vec<LogRecord>, next: u64, snapshot: Option<serde_json::Value>| {
            let mut body = json!({
                "records": records,
                "next_offset": next,
                "high_watermark": node.state.applied().offset + 1,
                "log_start_offset": node.log.first_index().unwrap_or(next),
            });
            if let Some(s) = snapshot {
                body["snapshot"] = s;
            }
            Json(body)
        };
        match chunk {
            Chunk::Snapshot {
                offset,
                epoch,
                metadata,
            } => {
                let snap = json!({"offset": offset, "epoch": epoch, "metadata": metadata});
                return Ok(page(Vec::new(), offset + 1, Some(snap)));
            }
            Chunk::Records { records, next: n } if !records.is_empty() || n != next => {
                // Progress (records, or only Raft's own / filtered-out entries skipped).
                if records.is_empty() && tokio::time::Instant::now() < deadline {
                    next = n;
                    continue;
                }
                return Ok(page(records, n, None));
            }
            Chunk::Records { next: n, .. } => {
                // A long poll answers at once when the node shuts down, so it does not hold
                // the graceful shutdown up.
                if tokio::time::Instant::now() >= deadline || *shutdown.borrow_and_update() {
                    return Ok(page(Vec::new(), n, None));
                }
                tokio::select! {
                    _ = tokio::time::timeout_at(deadline, applied_rx.changed()) => {}
                    _ = shutdown.changed() => {}
                }
            }
        }
    }
}
