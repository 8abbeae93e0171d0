//! Time travel on a running node: [`History`] answers the image as of an offset or a time,
//! rebuilt off the apply path (`spawn_blocking`), with concurrent requests for the same offset
//! sharing one rebuild and at most [`MAX_CONCURRENT_REBUILDS`] rebuilds running at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::future::{BoxFuture, FutureExt, Shared};
use tokio::sync::Semaphore;

use super::{answer_json, rebuild_at, HistoryError, HistorySource, CHUNK_BYTES};
use crate::metadata::Image;
use crate::raft::state_machine::MetaState;
use crate::storage::{SegmentLog, SnapshotInfo, SnapshotStore, StoredEntry};

/// Rebuilds running at once (each holds one image): more wait for a turn, so a burst of
/// requests for different offsets cannot hold many images in memory together.
pub const MAX_CONCURRENT_REBUILDS: usize = 2;

/// The node's own files as a [`HistorySource`]: its snapshot store and segment log, read up to
/// what it has applied.
pub struct LiveSource {
    log: Arc<SegmentLog>,
    snapshots: Arc<SnapshotStore>,
    state: Arc<MetaState>,
}

impl LiveSource {
    /// Reads `log` and `snapshots` up to what `state` has applied.
    pub fn new(log: Arc<SegmentLog>, snapshots: Arc<SnapshotStore>, state: Arc<MetaState>) -> Self {
        Self {
            log,
            snapshots,
            state,
        }
    }
}

impl HistorySource for LiveSource {
    fn end(&self) -> Result<u64, HistoryError> {
        Ok(self.state.applied().offset)
    }

    fn log_base(&self) -> Result<Option<u64>, HistoryError> {
        let purged = self.log.last_purged().map(|p| p.index);
        // Below an installed snapshot's floor the log may still hold entries never committed.
        let floor = self.state.log_floor().checked_sub(1);
        Ok(match (purged, floor) {
            (None, None) => None,
            (a, b) => a.max(b),
        })
    }

    fn snapshots(&self) -> Result<Vec<SnapshotInfo>, HistoryError> {
        Ok(self.snapshots.list()?)
    }

    fn entries(&self, from: u64, to: u64) -> Result<Vec<StoredEntry>, HistoryError> {
        // Never past what this node has applied, whatever the caller asks.
        let to = to.min(self.state.applied().offset);
        Ok(self
            .log
            .read_range(from, to.saturating_add(1), Some(CHUNK_BYTES))?)
    }
}

/// What a time-travel request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Point {
    /// The image right after this offset.
    Offset(u64),
    /// The image right after the last record stamped at or before this time (ms since the epoch).
    Time(u64),
}

/// A rebuilt image, as `/get_metadata` answers it.
#[derive(Debug)]
pub struct Answer {
    /// The last record at or below the offset asked for.
    pub offset: u64,
    /// Its term.
    pub epoch: u64,
    /// The newest record timestamp folded into the image.
    pub last_timestamp_ms: u64,
    /// `{"epoch", "metadata", "offset"}`, serialized once for every request sharing it.
    pub body: Bytes,
}

/// A rebuild's outcome, shared by every request waiting on it.
pub type Outcome = Result<Arc<Answer>, Arc<HistoryError>>;

type SharedRebuild = Shared<BoxFuture<'static, Outcome>>;

/// Time-travel reads of a running node (see the module documentation).
pub struct History {
    source: Arc<LiveSource>,
    in_flight: Arc<Mutex<HashMap<u64, SharedRebuild>>>,
    permits: Arc<Semaphore>,
}

impl History {
    /// Answers from `source`.
    pub fn new(source: LiveSource) -> Self {
        Self {
            source: Arc::new(source),
            in_flight: Arc::new(Mutex::new(HashMap::new())),
            permits: Arc::new(Semaphore::new(MAX_CONCURRENT_REBUILDS)),
        }
    }

    /// The oldest offset this node can rebuild now (`None`: none at all).
    pub fn oldest_offset(&self) -> Result<Option<u64>, HistoryError> {
        super::oldest_offset(self.source.as_ref())
    }

    /// The image as of `point`.
    pub async fn image_at(&self, point: Point) -> Outcome {
        let (n, before) = match point {
            Point::Offset(n) => (n, None),
            Point::Time(ms) => (self.offset_at_time(ms).await?, Some(ms)),
        };
        let end = self.source.state.applied().offset;
        if n > end {
            return Err(Arc::new(HistoryError::OutOfRange { asked: n, end }));
        }
        let answer = self.shared_rebuild(n).await?;
        // The last record at or before the time lies below what can be rebuilt: the oldest
        // image already holds a later record.
        if let Some(ms) = before.filter(|&ms| answer.last_timestamp_ms > ms) {
            let oldest = self.oldest_offset().map_err(Arc::new)?.unwrap_or(end);
            tracing::debug!(
                at_ms = ms,
                oldest,
                "time-travel time older than the history"
            );
            return Err(Arc::new(HistoryError::Compacted { asked: n, oldest }));
        }
        Ok(answer)
    }

    /// The offset of the last entry stamped at or before `ms` (through the time index), capped
    /// at the applied offset.
    async fn offset_at_time(&self, ms: u64) -> Result<u64, Arc<HistoryError>> {
        let source = self.source.clone();
        tokio::task::spawn_blocking(move || {
            let applied = source.state.applied().offset;
            let first_after = source
                .log
                .find_index_by_timestamp(ms.saturating_add(1))
                .map_err(HistoryError::Storage)?;
            Ok(first_after.map_or(applied, |i| i.saturating_sub(1).min(applied)))
        })
        .await
        .map_err(|e| Arc::new(HistoryError::Task(e.to_string())))?
        .map_err(Arc::new)
    }

    /// One rebuild of offset `n`, joined by every request for `n` while it runs.
    fn shared_rebuild(&self, n: u64) -> SharedRebuild {
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(running) = in_flight.get(&n) {
            return running.clone();
        }
        let source = self.source.clone();
        let permits = self.permits.clone();
        let registry = self.in_flight.clone();
        // Spawned, so it finishes (and leaves the registry) even if every requester goes away.
        let task = tokio::spawn(async move {
            let outcome = match permits.acquire_owned().await {
                Ok(permit) => tokio::task::spawn_blocking(move || {
                    let _permit = permit;
                    rebuild_answer(source.as_ref(), n)
                })
                .await
                .unwrap_or_else(|e| Err(HistoryError::Task(e.to_string()))),
                Err(e) => Err(HistoryError::Task(e.to_string())),
            };
            registry
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&n);
            outcome.map(Arc::new).map_err(Arc::new)
        });
        let shared = task
            .map(|joined| {
                joined.unwrap_or_else(|e| Err(Arc::new(HistoryError::Task(e.to_string()))))
            })
            .boxed()
            .shared();
        in_flight.insert(n, shared.clone());
        shared
    }

    /// Rebuilds in-flight now (for tests and `/metrics`).
    pub fn in_flight(&self) -> usize {
        self.in_flight.lock().map(|m| m.len()).unwrap_or(0)
    }
}

/// Rebuilds the image at `n` and serializes it; the image is dropped before returning.
fn rebuild_answer(source: &dyn HistorySource, n: u64) -> Result<Answer, HistoryError> {
    let image: Image = rebuild_at(source, n)?;
    let body = answer_json(&image).map_err(|e| HistoryError::Task(format!("encoding: {e}")))?;
    Ok(Answer {
        offset: image.last_offset,
        epoch: image.last_epoch,
        last_timestamp_ms: image.last_timestamp_ms(),
        body: Bytes::from(body),
    })
}
