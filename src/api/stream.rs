//! Reading the log by offset: `GET /stream` (server-sent events) and `GET /fetch` (JSON pages,
//! long-polling), the way a KRaft broker fetches `__cluster_metadata`.
//!
//! Both read committed records from the segment files up to what this node has applied
//! ([`super::log_read`]). `/stream` encodes each record as its event once: the events of the most
//! recent offsets are shared by all readers through [`super::event_cache`], so readers at the
//! tail do not each decode and print the same records. A reader whose offset was purged below the
//! log start first gets the image as a snapshot, then the records after it.

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
use tokio::sync::mpsc::error::{SendTimeoutError, TryRecvError, TrySendError};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;

use super::error::ApiError;
use super::event_cache::{CachedEntry, EventCache};
use super::log_read::{snapshot_event, Entries, Events, Follow, NameFilter, Reader, Step};
use super::sse::event as sse_event;
use super::ApiOptions;
use crate::metadata::LogRecord;
use crate::raft::Node;

/// Events buffered per SSE reader before it counts as slow.
const READER_BUFFER: usize = 1024;
/// Keep-alive comment interval.
const KEEP_ALIVE: Duration = Duration::from_secs(10);
/// Most bytes of already-buffered events written to a reader's connection as one body chunk.
const COALESCE_BYTES: usize = 256 * 1024;

/// The stream and fetch routes.
pub fn routes() -> Router<Arc<Node>> {
    Router::new()
        .route("/stream", get(stream))
        .route("/fetch", get(fetch))
}

/// `/stream`'s query. Unknown parameters are refused (`?ofset=5` must not stream from 0);
/// `access_token` is read by the auth layer, and `require_leader` is accepted because a stream
/// already stays open without a leader (what `require_leader=false` asks for).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StreamQuery {
    offset: Option<String>,
    names: Option<String>,
    #[allow(dead_code)]
    access_token: Option<String>,
    #[allow(dead_code)]
    require_leader: Option<String>,
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
    Extension(cache): Extension<Arc<EventCache>>,
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
        cache,
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

/// Why an event could not be handed to the reader's side.
enum Undelivered {
    /// The reader is gone.
    Closed,
    /// Its buffer stayed full for the slow-reader timeout.
    Slow,
}

/// Puts one event into the reader's buffer, waiting at most `slow_after` for room.
async fn deliver(
    tx: &mpsc::Sender<Bytes>,
    ev: Bytes,
    slow_after: Duration,
) -> Result<(), Undelivered> {
    // Room at once is the common case; `send_timeout` would start a timer for every event.
    let ev = match tx.try_send(ev) {
        Ok(()) => return Ok(()),
        Err(TrySendError::Closed(_)) => return Err(Undelivered::Closed),
        Err(TrySendError::Full(ev)) => ev,
    };
    match tx.send_timeout(ev, slow_after).await {
        Ok(()) => Ok(()),
        Err(SendTimeoutError::Closed(_)) => Err(Undelivered::Closed),
        Err(SendTimeoutError::Timeout(_)) => Err(Undelivered::Slow),
    }
}

/// Reads the log (or the shared cache of recent events) ahead of one SSE reader into its
/// bounded buffer.
async fn produce(
    node: Arc<Node>,
    cache: Arc<EventCache>,
    next: u64,
    filter: NameFilter,
    tx: mpsc::Sender<Bytes>,
    cut: oneshot::Sender<Cutoff>,
    slow_after: Duration,
) {
    let mut reader = Reader::new(node.clone(), next, Follow::Forever, Events(cache));
    loop {
        let step = tokio::select! {
            step = reader.step() => step,
            _ = tx.closed() => return,
        };
        let (snapshot, batch) = match step {
            Ok(Some(Step::Snapshot(snap))) => (Some(snapshot_event(&snap)), Vec::new()),
            Ok(Some(Step::Items(batch))) => (None, batch),
            Ok(None) => {
                if *node.shutdown_signal().borrow() {
                    // Tell the reader why the stream ends, so it reconnects elsewhere (or
                    // later) with Last-Event-ID.
                    let data = json!({"message": "this node is shutting down; reconnect with Last-Event-ID"});
                    let _ = tx.try_send(sse_event(None, "shutdown", &data.to_string()));
                }
                return;
            }
            Err(e) => {
                let _ = cut.send(Cutoff {
                    kind: "read_failed",
                    message: e.to_string(),
                });
                return;
            }
        };
        let records = batch.into_iter().filter_map(|e| match e {
            CachedEntry::Record { name, event } if filter.allows(name) => Some(event),
            _ => None,
        });
        for ev in snapshot.into_iter().chain(records) {
            match deliver(&tx, ev, slow_after).await {
                Ok(()) => {}
                Err(Undelivered::Closed) => return,
                Err(Undelivered::Slow) => {
                    tracing::warn!(
                        next_offset = reader.next_offset(),
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

/// The next buffered event, without starting a keep-alive timer when one is already there;
/// `Err` after `KEEP_ALIVE` without one.
async fn next_event(events: &mut ReceiverStream<Bytes>) -> Result<Option<Bytes>, ()> {
    match events.as_mut().try_recv() {
        Ok(ev) => Ok(Some(ev)),
        Err(TryRecvError::Disconnected) => Ok(None),
        Err(TryRecvError::Empty) => tokio::time::timeout(KEEP_ALIVE, events.next())
            .await
            .map_err(|_| ()),
    }
}

/// Room the reader's side keeps for coalescing events; reused once the connection has written
/// what was split off it, so a reader at the tail does not allocate per batch.
const COALESCE_RESERVE: usize = 16 * 1024;

/// The reader's side of one stream.
struct ReaderSide {
    /// What the producer buffered for this reader, as a stream.
    events: ReceiverStream<Bytes>,
    cut: Option<oneshot::Receiver<Cutoff>>,
    buf: BytesMut,
    _guard: ReaderGuard,
}

impl ReaderSide {
    /// `first` and whatever else is buffered already, up to `COALESCE_BYTES`, as one chunk.
    fn coalesce(&mut self, first: Bytes) -> Bytes {
        let Ok(mut more) = self.events.as_mut().try_recv() else {
            return first;
        };
        self.buf
            .reserve(COALESCE_RESERVE.max(first.len() + more.len()));
        self.buf.extend_from_slice(&first);
        loop {
            self.buf.extend_from_slice(&more);
            if self.buf.len() >= COALESCE_BYTES {
                break;
            }
            match self.events.as_mut().try_recv() {
                Ok(ev) => more = ev,
                Err(_) => break,
            }
        }
        self.buf.split().freeze()
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
    let side = ReaderSide {
        events: ReceiverStream::new(rx),
        cut: Some(cut),
        buf: BytesMut::new(),
        _guard: guard,
    };
    futures::stream::unfold(side, |mut side| async move {
        match next_event(&mut side.events).await {
            Err(()) => return Some((Ok(Bytes::from_static(b":\n\n")), side)),
            Ok(Some(first)) => {
                let chunk = side.coalesce(first);
                return Some((Ok(chunk), side));
            }
            Ok(None) => {}
        }
        // The producer is gone: say why, once, if it was a cutoff.
        let reason = side.cut.take()?.await.ok()?;
        let data = json!({"error": reason.kind, "message": reason.message});
        Some((Ok(sse_event(None, "error", &data.to_string())), side))
    })
}

/// `/fetch`'s query; unknown parameters are refused, `access_token` is read by the auth layer.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FetchQuery {
    offset: Option<String>,
    max_records: Option<String>,
    wait_ms: Option<String>,
    names: Option<String>,
    #[allow(dead_code)]
    access_token: Option<String>,
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
    let page = |records: Vec<LogRecord>, next: u64, snapshot: Option<serde_json::Value>| {
        let mut body = json!({
            "records": records,
            "next_offset": next,
            "high_watermark": node.state.applied().offset + 1,
            "log_start_offset": node.committed().read_start().unwrap_or(next),
        });
        if let Some(s) = snapshot {
            body["snapshot"] = s;
        }
        Json(body)
    };
    let mut reader = Reader::new(node.clone(), offset, Follow::Until(deadline), Entries);
    loop {
        let from = reader.next_offset();
        match reader.step().await? {
            None => return Ok(page(Vec::new(), reader.next_offset(), None)),
            Some(Step::Snapshot(snap)) => {
                return Ok(page(Vec::new(), snap.offset + 1, Some(snap.to_json())));
            }
            Some(Step::Items(entries)) => {
                let mut records = Vec::new();
                let mut cursor = from;
                for entry in &entries {
                    if records.len() >= max_records {
                        break;
                    }
                    cursor = entry.offset + 1;
                    if let Some(r) = entry.log_record().filter(|r| filter.allows(&r.name)) {
                        records.push(r);
                    }
                }
                // Only Raft's own or filtered-out entries: read on while the wait lasts.
                if !records.is_empty() || tokio::time::Instant::now() >= deadline {
                    return Ok(page(records, cursor, None));
                }
            }
        }
    }
}
