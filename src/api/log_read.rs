//! The one read loop over committed records by offset, shared by `/stream`, `/fetch` and
//! catch-up: from an offset, the image when the offset is no longer in the log, else committed
//! records up to what this node has applied, through [`crate::raft::committed`] (the only door
//! to the log). What differs between the three is only when a reader stops ([`Follow`]) and what
//! it makes of the entries ([`Decoder`]).

use openraft::type_config::async_runtime::WatchReceiver;
use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::BytesMut;
use serde_json::json;
use tokio::sync::watch;
use tokio::time::Instant;

use super::error::kind_for_status;
use super::event_cache::{push_run, CachedEntry, EventCache, Framed, Run};
use super::sse;
use super::ApiError;
use crate::metadata::RECORD_NAMES;
use crate::raft::committed::{Batch, CommittedEntry, CommittedError, ImageSnapshot};
use crate::raft::state_machine::Applied;
use crate::raft::Node;

/// Payload bytes read from the log per batch.
const READ_BATCH_BYTES: usize = 1024 * 1024;
/// Most entries taken from the event cache at once (bounds the time its lock is held).
const CACHE_BATCH: usize = 1024;

/// Why a read of the log failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The committed log could not be read.
    #[error(transparent)]
    Committed(#[from] CommittedError),
    /// A record could not be printed as JSON (not expected: records are plain data).
    #[error("unprintable record at offset {offset}: {source}")]
    Unprintable {
        /// The record's offset.
        offset: u64,
        #[source]
        /// Why it could not be printed.
        source: serde_json::Error,
    },
}

impl From<ReadError> for ApiError {
    fn from(e: ReadError) -> Self {
        ApiError::unavailable(e.to_string())
    }
}

/// A name filter from `?names=A,B`: a bit per [`RECORD_NAMES`] entry; none set means all.
#[derive(Clone, Copy, Default)]
pub struct NameFilter(u8);

impl NameFilter {
    /// Parses `names=`; an unknown name is a 400.
    pub fn parse(names: Option<&str>) -> Result<Self, ApiError> {
        let Some(names) = names else {
            return Ok(Self::default());
        };
        let mut bits = 0u8;
        for n in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match RECORD_NAMES.iter().position(|k| *k == n) {
                Some(i) => bits |= 1 << i,
                None => {
                    return Err(ApiError::bad_request(format!(
                        "unknown record name {n:?} in names; known: {}",
                        RECORD_NAMES.join(", ")
                    )))
                }
            }
        }
        Ok(Self(bits))
    }

    /// Whether records named `name` pass.
    pub fn allows(&self, name: &str) -> bool {
        self.0 == 0
            || RECORD_NAMES
                .iter()
                .position(|k| *k == name)
                .is_some_and(|i| self.0 & (1 << i) != 0)
    }
}

/// The first offset past the committed log as this node knows it: a reader may ask for any
/// offset up to this one (and waits there for the next record); beyond it is `416`.
///
/// The end is this node's commit offset, not its applied offset: a follower that is behind in
/// applying still accepts a reader resuming from what another node already sent (the reader
/// waits until this node has applied that far). A follower that has not even *learned* of that
/// commit yet answers `416`, and the reader moves on to another node.
pub fn log_end(node: &Node) -> u64 {
    let committed = node
        .raft
        .metrics()
        .borrow_watched()
        .local_committed
        .map_or(0, |c| c.index);
    committed.max(node.state.applied().offset) + 1
}

/// The answer to a read from `from` beyond [`log_end`] `end`:
/// `416 {"error": "offset_out_of_range", "message", "log_end_offset"}`.
pub fn out_of_range(from: u64, end: u64) -> Response {
    let status = StatusCode::RANGE_NOT_SATISFIABLE;
    let body = json!({
        "error": kind_for_status(status),
        "message": format!(
            "offset {from} is beyond the end of the committed log ({end} is the next offset to be written)"
        ),
        "log_end_offset": end,
    });
    (status, Json(body)).into_response()
}

/// When a reader stops reading.
#[derive(Clone, Copy, Debug)]
pub enum Follow {
    /// At this offset (inclusive) or the applied offset, whichever is lower, without waiting:
    /// catch-up answers up to the applied offset it read first.
    UpTo(u64),
    /// Once caught up at this instant (a long-polling `/fetch`); a shutdown ends the wait.
    Until(Instant),
    /// Never while the node runs: it waits for every new apply (`/stream`), and ends at once
    /// when the node shuts down.
    Forever,
}

/// What a [`Decoder`] found at an offset.
pub enum Filled {
    /// The offset is no longer in the log: the image.
    Snapshot(ImageSnapshot),
    /// Items for the entries before this offset were appended (none when it is the offset read
    /// from: nothing new is applied).
    Next(u64),
}

/// How a reader turns committed entries into what it sends.
pub trait Decoder {
    /// One item per entry.
    type Item;
    /// Appends the items of the entries from `next` on, up to `up_to` (inclusive) and the
    /// applied offset.
    fn fill(
        &self,
        node: &Node,
        next: u64,
        up_to: u64,
        out: &mut Vec<Self::Item>,
    ) -> Result<Filled, ReadError>;
}

/// The entries as they are (for `/fetch` and catch-up).
pub struct Entries;

impl Decoder for Entries {
    type Item = CommittedEntry;

    fn fill(
        &self,
        node: &Node,
        next: u64,
        up_to: u64,
        out: &mut Vec<CommittedEntry>,
    ) -> Result<Filled, ReadError> {
        match node.committed().read(next, up_to, READ_BATCH_BYTES)? {
            Batch::Snapshot(snap) => Ok(Filled::Snapshot(snap)),
            Batch::Entries(entries) => {
                let n = next + entries.len() as u64;
                out.extend(entries);
                Ok(Filled::Next(n))
            }
        }
    }
}

/// The entries as `/stream` events, taken from the shared [`EventCache`] when it holds them,
/// else read, encoded and offered to the cache; only the records that pass the filter, joined
/// into [`Run`]s (a reader at the tail without a filter gets a whole batch as one run).
pub struct Events {
    cache: Arc<EventCache>,
    filter: NameFilter,
}

impl Events {
    /// Events from `cache` (and the log), of the records `filter` lets through.
    pub fn new(cache: Arc<EventCache>, filter: NameFilter) -> Self {
        Self { cache, filter }
    }

    fn add(&self, runs: &mut Vec<Run>, offset: u64, entry: &CachedEntry) {
        if let CachedEntry::Record { name, event } = entry {
            if self.filter.allows(name) {
                push_run(runs, offset, event);
            }
        }
    }
}

impl Decoder for Events {
    type Item = Run;

    fn fill(
        &self,
        node: &Node,
        next: u64,
        up_to: u64,
        out: &mut Vec<Run>,
    ) -> Result<Filled, ReadError> {
        let committed = node.committed();
        let applied = node.state.applied().offset.min(up_to);
        if let Some(snap) = committed.image_below_start(next, applied) {
            return Ok(Filled::Snapshot(snap));
        }
        if next > applied {
            return Ok(Filled::Next(next));
        }
        let hit = self
            .cache
            .visit(next, applied, CACHE_BATCH, |o, e| self.add(out, o, e));
        if hit > next {
            return Ok(Filled::Next(hit));
        }
        let entries = match committed.read(next, applied, READ_BATCH_BYTES)? {
            Batch::Snapshot(snap) => return Ok(Filled::Snapshot(snap)),
            Batch::Entries(entries) => entries,
        };
        let mut encoded = Vec::with_capacity(entries.len());
        encode(&entries, &mut encoded)?;
        self.cache.insert(next, &encoded, applied);
        for (offset, e) in (next..).zip(&encoded) {
            self.add(out, offset, e);
        }
        Ok(Filled::Next(next + entries.len() as u64))
    }
}

/// Committed entries as the stream sends them, appended to `out`: the events of all records
/// are encoded one after the other into one block, each entry a range of it, so the events of
/// consecutive records go to a reader as one piece without a copy.
fn encode(entries: &[CommittedEntry], out: &mut Vec<CachedEntry>) -> Result<(), ReadError> {
    let mut block = BytesMut::with_capacity(entries.len().saturating_mul(256));
    let mut spans = Vec::with_capacity(entries.len());
    for entry in entries {
        let Some(cmd) = &entry.command else {
            spans.push(None);
            continue;
        };
        let start = block.len();
        sse::put_record_event(&mut block, entry.offset, entry.epoch, cmd).map_err(|source| {
            ReadError::Unprintable {
                offset: entry.offset,
                source,
            }
        })?;
        spans.push(Some((cmd.record.name(), start..block.len())));
    }
    let block = block.freeze();
    out.reserve(spans.len());
    out.extend(spans.into_iter().map(|span| match span {
        None => CachedEntry::Skip,
        Some((name, range)) => CachedEntry::Record {
            name,
            event: Framed::new(block.clone(), range),
        },
    }));
    Ok(())
}

/// What one step of a [`Reader`] found.
pub enum Step<T> {
    /// The offset read from is no longer in the log: the image; the reader goes on after it.
    Snapshot(ImageSnapshot),
    /// Items for consecutive entries (at least one entry).
    Items(Vec<T>),
}

/// The read loop: a cursor over the committed log that waits for new applies as its
/// [`Follow`] says.
pub struct Reader<D> {
    node: Arc<Node>,
    decoder: D,
    next: u64,
    follow: Follow,
    applied: watch::Receiver<Applied>,
    shutdown: watch::Receiver<bool>,
}

impl<D: Decoder> Reader<D> {
    /// A reader from offset `from`.
    pub fn new(node: Arc<Node>, from: u64, follow: Follow, decoder: D) -> Self {
        Self {
            applied: node.state.subscribe_applied(),
            shutdown: node.shutdown_signal(),
            node,
            decoder,
            next: from,
            follow,
        }
    }

    /// The offset the next step reads from.
    pub fn next_offset(&self) -> u64 {
        self.next
    }

    /// The next step; `None` once the reader is done (see [`Follow`]). Cancel-safe: the cursor
    /// only moves when a step is returned.
    pub async fn step(&mut self) -> Result<Option<Step<D::Item>>, ReadError> {
        let up_to = match self.follow {
            Follow::UpTo(o) => o,
            Follow::Until(_) | Follow::Forever => u64::MAX,
        };
        loop {
            if matches!(self.follow, Follow::Forever) && *self.shutdown.borrow_and_update() {
                return Ok(None);
            }
            // Seen before reading: an apply during the read wakes the wait below at once.
            self.applied.borrow_and_update();
            let mut items = Vec::new();
            match self
                .decoder
                .fill(&self.node, self.next, up_to, &mut items)?
            {
                Filled::Snapshot(snap) => {
                    self.next = snap.offset + 1;
                    return Ok(Some(Step::Snapshot(snap)));
                }
                Filled::Next(n) if n > self.next => {
                    self.next = n;
                    return Ok(Some(Step::Items(items)));
                }
                Filled::Next(_) => {}
            }
            // Caught up.
            match self.follow {
                Follow::UpTo(_) => return Ok(None),
                Follow::Until(deadline) => {
                    // A long poll answers at once when the node shuts down, so it does not
                    // hold the graceful shutdown up.
                    if Instant::now() >= deadline || *self.shutdown.borrow_and_update() {
                        return Ok(None);
                    }
                    tokio::select! {
                        _ = tokio::time::timeout_at(deadline, self.applied.changed()) => {}
                        _ = self.shutdown.changed() => {}
                    }
                }
                Follow::Forever => {
                    tokio::select! {
                        changed = self.applied.changed() => if changed.is_err() { return Ok(None) },
                        _ = self.shutdown.changed() => {}
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_filter() {
        let all = NameFilter::parse(None).unwrap();
        assert!(all.allows("TopicRecord") && all.allows("anything"));
        let some = NameFilter::parse(Some("TopicRecord, PartitionRecord,")).unwrap();
        assert!(some.allows("TopicRecord") && some.allows("PartitionRecord"));
        assert!(!some.allows("RegisterBrokerRecord") && !some.allows("nope"));
        assert!(NameFilter::parse(Some("TopicRecrod")).is_err());
        assert!(NameFilter::parse(Some(""))
            .unwrap()
            .allows("ProducerIdsRecord"));
    }
}
