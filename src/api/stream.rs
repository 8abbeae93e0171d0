//! Reading the log by offset: `GET /stream` (server-sent events) and `GET /fetch` (JSON pages,
//! long-polling), the way a KRaft broker fetches `__cluster_metadata`.
//!
//! Both read committed records from the segment files up to what this node has applied
//! ([`super::log_read`]). `/stream` encodes each record as its event once: the events of the most
//! recent offsets are shared by all readers through [`super::event_cache`], so readers at the
//! tail do not each decode and print the same records. A reader whose offset was purged below the
//! log start first gets the image in chunks (`snapshot_begin`, `snapshot_chunk`s of at most
//! 1 MiB, `snapshot_end`), then the records after it. A reader with nothing to receive gets
//! `progress` events saying how far it has read; a node without a leader for `--stale-after`
//! ends its streams (`stream_error` `no_leader`), and an offset beyond the committed log is
//! `416`. See docs/streaming.md.

use openraft::type_config::async_runtime::WatchReceiver;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::header::{self, HeaderName};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Extension;
use axum::Router;
use bytes::{Bytes, BytesMut};
use futures::Stream;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::error::ApiError;
use super::event_cache::{EventCache, Run};
use super::log_read::{log_end, out_of_range, Events, Follow, NameFilter, Reader, Step};
use super::sse::event as sse_event;
use super::ApiOptions;
use crate::raft::committed::ImageSnapshot;
use crate::raft::Node;

mod buffer;
pub mod chunks;
mod fetch;
mod leader_clock;
pub mod walk;

use buffer::Undelivered;
use chunks::{chunk_image, CHUNK_TARGET, SSE_FRAME};
pub use fetch::{FETCH_MAX_RECORDS, FETCH_MAX_WAIT_MS};
pub use leader_clock::LeaderClock;
use walk::WalkError;

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
        .route("/fetch", get(fetch::fetch))
}

/// `/stream`'s query. Unknown parameters are refused (`?ofset=5` must not stream from 0);
/// `access_token` is read by the auth layer; `require_leader=false` keeps the stream open on a
/// node without a leader (see `--stale-after`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StreamQuery {
    offset: Option<String>,
    names: Option<String>,
    #[allow(dead_code)]
    access_token: Option<String>,
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

/// What a stream needs besides the node: its settings and the node-wide leader clock.
struct StreamSettings {
    slow_after: Duration,
    progress_interval: Duration,
    /// `None` with `require_leader=false`: the stream stays open without a leader.
    stale_after: Option<Duration>,
    clock: Arc<LeaderClock>,
}

/// `require_leader=`: `true` (the default) or `false`.
fn parse_require_leader(raw: Option<&str>) -> Result<bool, ApiError> {
    match raw {
        None | Some("") | Some("true") | Some("1") => Ok(true),
        Some("false") | Some("0") => Ok(false),
        Some(other) => Err(ApiError::bad_request(format!(
            "require_leader must be true or false, got {other:?}"
        ))),
    }
}

/// The offset a stream starts at: after `Last-Event-ID` when sent, else `offset=`.
fn start_offset(headers: &HeaderMap, q: &StreamQuery, node: &Node) -> Result<u64, ApiError> {
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    match resume {
        Some(id) => id
            .parse::<u64>()
            .ok()
            .and_then(|k| k.checked_add(1))
            .ok_or_else(|| {
                ApiError::bad_request(format!("Last-Event-ID must be an offset, got {id:?}"))
            }),
        None => parse_offset(q.offset.as_deref(), node),
    }
}

async fn stream(
    State(node): State<Arc<Node>>,
    Extension(opts): Extension<ApiOptions>,
    Extension(cache): Extension<Arc<EventCache>>,
    Extension(clock): Extension<Arc<LeaderClock>>,
    headers: HeaderMap,
    Query(q): Query<StreamQuery>,
) -> Response {
    let filter = match NameFilter::parse(q.names.as_deref()) {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    let require_leader = match parse_require_leader(q.require_leader.as_deref()) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let start = match start_offset(&headers, &q, &node) {
        Ok(o) => o,
        Err(e) => return e.into_response(),
    };
    let end = log_end(&node);
    if start > end {
        return out_of_range(start, end);
    }
    let (tx, rx) = buffer::buffer(READER_BUFFER);
    // The browser's reconnection delay, before anything else.
    let _ = tx.try_send(Bytes::from_static(RETRY), 1);
    let (cut_tx, cut_rx) = oneshot::channel();
    node.metrics.sse_readers.inc();
    let guard = ReaderGuard(node.clone());
    let settings = StreamSettings {
        slow_after: opts.slow_reader_timeout,
        progress_interval: opts.progress_interval.max(MIN_PROGRESS_INTERVAL),
        stale_after: require_leader.then_some(opts.stale_after),
        clock,
    };
    let producer = Producer {
        node,
        tx,
        cut: Some(cut_tx),
        settings,
        last_id: start.checked_sub(1),
        last_sent: Instant::now(),
    };
    tokio::spawn(producer.run(cache, start, filter));
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
            (HeaderName::from_static("x-accel-buffering"), "no"),
        ],
        Body::from_stream(consume(rx, cut_rx, guard)),
    )
        .into_response()
}

/// This node's commit offset, the leader it sees and its term, read without copying the rest
/// of the Raft metrics.
fn raft_position(node: &Node) -> (u64, Option<u64>, u64) {
    let metrics = node.raft.metrics();
    let m = metrics.borrow_watched();
    (
        m.local_committed.map_or(0, |c| c.index),
        m.current_leader,
        m.current_term,
    )
}

/// The first bytes of every stream: reconnect after a second (EventSource's default is 3 s).
const RETRY: &[u8] = b"retry: 1000\n\n";
/// The shortest progress interval honoured (a smaller setting would flood readers).
const MIN_PROGRESS_INTERVAL: Duration = Duration::from_millis(10);

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

/// Reads the log (or the shared cache of recent events) ahead of one SSE reader into its
/// bounded buffer, with progress events while it has nothing else to send.
struct Producer {
    node: Arc<Node>,
    tx: buffer::Sender,
    cut: Option<oneshot::Sender<Cutoff>>,
    settings: StreamSettings,
    /// The highest `id:` the reader has (or resumed from).
    last_id: Option<u64>,
    /// When an event last went into the reader's buffer.
    last_sent: Instant,
}

impl Producer {
    async fn run(mut self, cache: Arc<EventCache>, from: u64, filter: NameFilter) {
        let mut reader = Reader::new(
            self.node.clone(),
            from,
            Follow::Forever,
            Events::new(cache, filter),
        );
        let interval = self.settings.progress_interval;
        // One timer for the whole stream, moved on only when it fires: setting a new one for
        // every step costs a clock read and a timer-wheel entry per batch, per reader.
        let idle = tokio::time::sleep_until(self.last_sent + interval);
        tokio::pin!(idle);
        loop {
            let step = tokio::select! {
                biased;
                _ = self.tx.closed() => return,
                step = reader.step() => Some(step),
                _ = &mut idle => None,
            };
            let sent = match step {
                None => {
                    let due = self.last_sent + interval;
                    if due > Instant::now() {
                        // Something was sent since the timer was set.
                        idle.as_mut().reset(due);
                        continue;
                    }
                    let r = self.on_idle(&reader).await;
                    idle.as_mut().reset(self.last_sent + interval);
                    r
                }
                Some(Ok(Some(Step::Snapshot(snap)))) => self.send_snapshot(snap).await,
                Some(Ok(Some(Step::Items(runs)))) => self.send_records(runs).await,
                Some(Ok(None)) => {
                    if *self.node.shutdown_signal().borrow() {
                        // Tell the reader why the stream ends, so it reconnects elsewhere (or
                        // later) with Last-Event-ID.
                        let data = json!({"message": "this node is shutting down; reconnect with Last-Event-ID"});
                        let _ = self
                            .tx
                            .try_send(sse_event(None, "shutdown", &data.to_string()), 1);
                    }
                    return;
                }
                Some(Err(e)) => Err(Cutoff {
                    kind: "read_failed",
                    message: e.to_string(),
                }),
            };
            if let Err(why) = sent {
                self.end(why, &reader);
                return;
            }
            // Caught up: everything applied is in the reader's buffer. Say so with a progress
            // event, unless the last event sent already stands at this offset.
            let at = reader.next_offset().checked_sub(1);
            if reader.next_offset() > self.node.state.applied().offset && at > self.last_id {
                if let Err(why) = self.send_progress(at).await {
                    self.end(why, &reader);
                    return;
                }
            }
        }
    }

    /// Ends the stream with `why` as its `stream_error` (nothing for a reader that is gone).
    fn end(&mut self, why: Cutoff, reader: &Reader<Events>) {
        if why.kind == "closed" {
            return;
        }
        if why.kind == "slow_reader" {
            tracing::warn!(
                next_offset = reader.next_offset(),
                timeout_ms = self.settings.slow_after.as_millis() as u64,
                "slow_reader: cut off an SSE reader whose buffer stayed full"
            );
        }
        if let Some(cut) = self.cut.take() {
            let _ = cut.send(why);
        }
    }

    /// The progress interval passed without an event: end the stream when the node has been
    /// without a leader too long, else send where the reader stands.
    async fn on_idle(&mut self, reader: &Reader<Events>) -> Result<(), Cutoff> {
        if let Some(stale_after) = self.settings.stale_after {
            if let Some(for_) = self.settings.clock.leaderless_for(&self.node) {
                if for_ >= stale_after {
                    return Err(Cutoff {
                        kind: "no_leader",
                        message: format!(
                            "node {} has had no leader for {:?} (--stale-after {:?}): its log may be behind the cluster's; reconnect to another node with Last-Event-ID, or add require_leader=false to read it anyway",
                            self.node.id, for_, stale_after
                        ),
                    });
                }
            }
        }
        self.send_progress(reader.next_offset().checked_sub(1))
            .await
    }

    /// `event: progress`, `id:` `at` (the last offset the reader has been sent everything up
    /// to; none before offset 0).
    async fn send_progress(&mut self, at: Option<u64>) -> Result<(), Cutoff> {
        let (commit, leader, term) = raft_position(&self.node);
        let data = json!({
            "applied_offset": self.node.state.applied().offset,
            "commit_offset": commit,
            "leader_id": leader,
            "term": term,
            "node_id": self.node.id,
        });
        self.send(sse_event(at, "progress", &data.to_string()), false)
            .await?;
        self.last_id = self.last_id.max(at);
        Ok(())
    }

    /// One event into the reader's buffer.
    async fn send(&mut self, ev: Bytes, large: bool) -> Result<(), Cutoff> {
        if large {
            let r = self
                .tx
                .send_when_drained(ev, self.settings.slow_after)
                .await;
            self.sent(r)
        } else {
            self.send_run(ev, 1).await
        }
    }

    /// `events` whole events, as one piece of bytes, into the reader's buffer.
    async fn send_run(&mut self, bytes: Bytes, events: usize) -> Result<(), Cutoff> {
        let r = self.tx.send(bytes, events, self.settings.slow_after).await;
        self.sent(r)
    }

    /// What a send's outcome means for the stream.
    fn sent(&mut self, r: Result<(), Undelivered>) -> Result<(), Cutoff> {
        let slow_after = self.settings.slow_after;
        match r {
            Ok(()) => {
                self.last_sent = Instant::now();
                Ok(())
            }
            Err(Undelivered::Closed) => Err(Cutoff {
                kind: "closed",
                message: String::new(),
            }),
            Err(Undelivered::Slow) => Err(Cutoff {
                kind: "slow_reader",
                message: format!(
                    "this reader did not keep up (buffer full for {slow_after:?}); reconnect with Last-Event-ID to resume"
                ),
            }),
        }
    }

    /// The runs of records a step found (consecutive records of one encoded block each, see
    /// [`Run`]): for a reader at the tail without a filter, a whole batch is one
    /// reference-counted slice of the bytes every other reader gets too, one hand-over to its
    /// connection and one write.
    async fn send_records(&mut self, runs: Vec<Run>) -> Result<(), Cutoff> {
        for r in runs {
            self.send_run(r.bytes.bytes(), r.events).await?;
            self.last_id = Some(r.last);
        }
        Ok(())
    }

    /// The image in chunks: `snapshot_begin`, `snapshot_chunk`s of at most a megabyte each
    /// (encoded on a blocking thread from the shared copy, one chunk ahead of the reader), then
    /// `snapshot_end` with the image's offset as its id.
    async fn send_snapshot(&mut self, snap: ImageSnapshot) -> Result<(), Cutoff> {
        let head = json!({"offset": snap.offset, "epoch": snap.epoch}).to_string();
        self.send(sse_event(None, "snapshot_begin", &head), false)
            .await?;
        let (chunk_tx, mut chunk_rx) = mpsc::channel::<Vec<u8>>(1);
        let image = snap.image.clone();
        let encoder = tokio::task::spawn_blocking(move || {
            chunk_image(&image, CHUNK_TARGET, SSE_FRAME, |c| {
                chunk_tx
                    .blocking_send(c)
                    .map_err(|_| WalkError::Stopped("the reader is gone".into()))
            })
        });
        while let Some(chunk) = chunk_rx.recv().await {
            self.send(Bytes::from(chunk), true).await?;
        }
        match encoder.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                return Err(Cutoff {
                    kind: "read_failed",
                    message: format!("encoding the image at {}: {e}", snap.offset),
                })
            }
            Err(e) => {
                return Err(Cutoff {
                    kind: "read_failed",
                    message: format!("encoding the image at {}: {e}", snap.offset),
                })
            }
        }
        self.send(sse_event(Some(snap.offset), "snapshot_end", &head), false)
            .await?;
        self.last_id = Some(snap.offset);
        Ok(())
    }
}

/// The next buffered event, without starting a keep-alive timer when one is already there;
/// `Err` after `KEEP_ALIVE` without one.
async fn next_event(events: &mut buffer::Receiver) -> Result<Option<Bytes>, ()> {
    match events.try_recv() {
        Ok(ev) => Ok(Some(ev)),
        Err(TryRecvError::Disconnected) => Ok(None),
        Err(TryRecvError::Empty) => tokio::time::timeout(KEEP_ALIVE, events.recv())
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
    events: buffer::Receiver,
    cut: Option<oneshot::Receiver<Cutoff>>,
    buf: BytesMut,
    _guard: ReaderGuard,
}

impl ReaderSide {
    /// `first` and whatever else is buffered already, up to `COALESCE_BYTES`, as one chunk.
    fn coalesce(&mut self, first: Bytes) -> Bytes {
        // A large event (a snapshot chunk) goes out as it is, not copied.
        if first.len() >= COALESCE_BYTES {
            return first;
        }
        let Ok(mut more) = self.events.try_recv() else {
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
            match self.events.try_recv() {
                Ok(ev) => more = ev,
                Err(_) => break,
            }
        }
        self.buf.split().freeze()
    }
}

/// The reader's side: buffered events, then a final `event: stream_error` if it was cut off; a
/// keep-alive comment after `KEEP_ALIVE` without events.
///
/// Events already buffered go out together as one body chunk (up to `COALESCE_BYTES`): one
/// write per batch instead of one per event is what lets a reader catching up on a long log
/// receive hundreds of thousands of records per second.
fn consume(
    rx: buffer::Receiver,
    cut: oneshot::Receiver<Cutoff>,
    guard: ReaderGuard,
) -> impl Stream<Item = Result<Bytes, Infallible>> {
    let side = ReaderSide {
        events: rx,
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
        Some((Ok(sse_event(None, "stream_error", &data.to_string())), side))
    })
}
