//! The one door through which readers above Raft (`/stream`, `/fetch`, catch-up) read the log:
//! from an offset, either the image (when the offset lies below what the log still holds) or
//! committed records up to the applied offset, never anything uncommitted or unapplied.
//!
//! Like KRaft's listener interface (a snapshot when the next offset is below the log start,
//! else committed batches), the caller never sees the segment log: a purge that runs between
//! two reads comes back as a snapshot, not as records silently skipped.

use std::sync::{Arc, Mutex, Weak};

use serde_json::json;

use super::codec::{stored_to_command, CodecError};
use super::state_machine::MetaState;
use crate::metadata::{Image, LogRecord, MetadataCommand};
use crate::metrics::Histogram;
use crate::storage::{SegmentLog, StorageError, StoredEntry};

/// Why a committed read failed.
#[derive(Debug, thiserror::Error)]
pub enum CommittedError {
    /// The segment log could not be read.
    #[error("reading the log: {0}")]
    Log(#[source] StorageError),
    /// An entry did not decode.
    #[error("undecodable entry at offset {offset}: {source}")]
    Undecodable {
        /// The entry's offset.
        offset: u64,
        #[source]
        /// Why it did not decode.
        source: CodecError,
    },
    /// The log answered other offsets than asked for.
    #[error("the log returned offset {got} where {want} was expected")]
    Misread {
        /// The offset asked for.
        want: u64,
        /// The offset the log answered with.
        got: u64,
    },
}

/// One committed entry, decoded.
#[derive(Clone, Debug, PartialEq)]
pub struct CommittedEntry {
    /// Its offset (Raft index).
    pub offset: u64,
    /// The term it was written in.
    pub epoch: u64,
    /// The metadata record; `None` for Raft's own entries (blank, membership), which take an
    /// offset but carry no record.
    pub command: Option<MetadataCommand>,
}

impl CommittedEntry {
    /// The record as the log, stream and catch-up endpoints show it; `None` for Raft's own.
    pub fn log_record(&self) -> Option<LogRecord> {
        self.command
            .as_ref()
            .map(|cmd| LogRecord::new(self.offset, self.epoch, cmd))
    }
}

/// The image as a reader below the log start receives it: a private copy, shared by every
/// reader that asks at the same applied offset, so it can be encoded piece by piece without
/// holding the state machine's lock and without one JSON tree per reader.
#[derive(Clone, Debug)]
pub struct ImageSnapshot {
    /// The applied offset the image is at.
    pub offset: u64,
    /// The term of that entry.
    pub epoch: u64,
    /// The image at `offset` (never changed: a copy taken under the read lock).
    pub image: Arc<Image>,
}

impl ImageSnapshot {
    /// `{"offset", "epoch", "metadata"}` as one JSON tree: only for answers that are one JSON
    /// document anyway (`/fetch`); the stream sends the image in chunks instead.
    pub fn to_json(&self) -> serde_json::Value {
        json!({"offset": self.offset, "epoch": self.epoch, "metadata": self.image.metadata_json()})
    }
}

/// What one read from an offset found.
#[derive(Debug)]
pub enum Batch {
    /// The offset lies below the log start (or below the floor of an installed snapshot), or
    /// was purged during the read: the image; read on after its offset.
    Snapshot(ImageSnapshot),
    /// Consecutive committed entries from the offset asked for; none when nothing at or after
    /// it is applied (or allowed by the caller's bound) yet.
    Entries(Vec<CommittedEntry>),
}

/// Whether the log still holds every committed record stamped at or after a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Since {
    /// It does: they start at this offset (`None`: no record is stamped that late yet).
    From(Option<u64>),
    /// Some may have been purged: only the image answers.
    Lost,
}

/// Committed reads of this node's log (see the module documentation).
pub struct CommittedLog {
    log: Arc<SegmentLog>,
    state: Arc<MetaState>,
    /// The last copy of the image handed out (offset, epoch, copy), while a reader still holds
    /// it: readers arriving at the same applied offset share it instead of each copying the
    /// image, and no copy outlives its last reader.
    shared: Mutex<Option<(u64, u64, Weak<Image>)>>,
}

impl CommittedLog {
    /// Reads `log` up to what `state` has applied.
    pub fn new(log: Arc<SegmentLog>, state: Arc<MetaState>) -> Self {
        Self {
            log,
            state,
            shared: Mutex::new(None),
        }
    }

    /// Committed entries from `from`, at most up to `up_to` (and never past the applied
    /// offset), at most about `max_bytes` of payload (at least one entry); or the image when
    /// `from` is no longer in the log.
    pub fn read(&self, from: u64, up_to: u64, max_bytes: usize) -> Result<Batch, CommittedError> {
        let applied = self.state.applied().offset;
        if let Some(image) = self.image_below_start(from, applied) {
            return Ok(Batch::Snapshot(image));
        }
        let end = up_to.min(applied);
        if from > end {
            return Ok(Batch::Entries(Vec::new()));
        }
        let stored = match self.log.read_range(from, end + 1, Some(max_bytes)) {
            Ok(stored) => stored,
            // Applied covers `from` (checked above), so the image at applied does too.
            Err(StorageError::Purged { .. }) => return Ok(Batch::Snapshot(self.image())),
            Err(e) => return Err(CommittedError::Log(e)),
        };
        if let Some(first) = stored.first().filter(|e| e.index != from) {
            return Err(CommittedError::Misread {
                want: from,
                got: first.index,
            });
        }
        stored
            .iter()
            .map(decode)
            .collect::<Result<_, _>>()
            .map(Batch::Entries)
    }

    /// The image, when `from` is applied yet lies below the log start (purged after a
    /// snapshot), or below the floor of an installed snapshot whose log below it is not yet
    /// purged: there the log may still hold what this node had before, such as a deposed
    /// leader's uncommitted entries (see [`MetaState::log_floor`]).
    ///
    /// Readers that keep recent entries elsewhere (the stream's event cache) ask this before
    /// they look there, so every reader below the log start gets the image.
    pub fn image_below_start(&self, from: u64, applied: u64) -> Option<ImageSnapshot> {
        let below_start = match self.log.first_index() {
            Some(first) => from < first,
            None => self.log.last_purged().is_some_and(|p| from <= p.index),
        };
        ((below_start || from < self.state.log_floor()) && from <= applied).then(|| self.image())
    }

    /// The image and the applied position it reflects, read together: a copy taken under the
    /// state's read lock (a memory copy, no encoding), or the copy another reader took at the
    /// same applied offset. Encoding it happens later, without any lock.
    pub fn image(&self) -> ImageSnapshot {
        let mut shared = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        let applied = self.state.applied();
        if let Some((offset, epoch, weak)) = shared.as_ref().filter(|s| s.0 == applied.offset) {
            if let Some(image) = weak.upgrade() {
                return ImageSnapshot {
                    offset: *offset,
                    epoch: *epoch,
                    image,
                };
            }
        }
        tracing::debug!(
            offset = applied.offset,
            "copying the image for readers below the log start"
        );
        let snap = {
            let at = self.state.read();
            ImageSnapshot {
                offset: at.applied.offset,
                epoch: at.applied.term,
                image: Arc::new(at.image.clone()),
            }
        };
        *shared = Some((snap.offset, snap.epoch, Arc::downgrade(&snap.image)));
        snap
    }

    /// The first offset readers take from the log: the log start, or the floor of an installed
    /// snapshot when that is higher. `None` when the log holds no entry.
    pub fn read_start(&self) -> Option<u64> {
        self.log
            .first_index()
            .map(|first| first.max(self.state.log_floor()))
    }

    /// The first entry the segment log holds (for `/cluster` and `/metrics`).
    pub fn first_offset(&self) -> Option<u64> {
        self.log.first_index()
    }

    /// Whether anything was ever removed from below the log (purged after a snapshot), or an
    /// installed snapshot's floor hides part of it: then an old enough reader needs the image.
    pub fn was_purged(&self) -> bool {
        self.log.last_purged().is_some() || self.state.log_floor() > 0
    }

    /// The first offset readers may take whose record is stamped at or after `ts_ms` (found
    /// through the segment log's time index), `None` when no record is.
    pub fn offset_at_or_after(&self, ts_ms: u64) -> Result<Option<u64>, CommittedError> {
        let found = self
            .log
            .find_index_by_timestamp(ts_ms)
            .map_err(CommittedError::Log)?;
        Ok(found.map(|i| i.max(self.state.log_floor())))
    }

    /// Where the committed records stamped at or after `ts_ms` start, when the log still holds
    /// every one of them (catch-up's delta mode); [`Since::Lost`] when some may have been purged.
    ///
    /// Timestamps never decrease along the log, but many records share a millisecond. Once
    /// anything was purged, only a record still in the log (up to `applied`) stamped strictly
    /// before `ts_ms` proves that nothing purged was stamped at or after it: a first record
    /// stamped exactly `ts_ms` may have had purged neighbours of the same millisecond. The
    /// proof is read *after* the start is found, so a purge between the two moves the log
    /// start the proof is read from, never past a record it would have needed.
    pub fn records_since(&self, ts_ms: u64, applied: u64) -> Result<Since, CommittedError> {
        let start = self.offset_at_or_after(ts_ms)?;
        if !self.was_purged() {
            return Ok(Since::From(start));
        }
        let Some(mut next) = self.read_start() else {
            return Ok(Since::Lost);
        };
        while next <= applied {
            let batch = match self.log.read_range(next, applied + 1, Some(1 << 20)) {
                Ok(batch) => batch,
                Err(StorageError::Purged { .. }) => return Ok(Since::Lost),
                Err(e) => return Err(CommittedError::Log(e)),
            };
            let Some(last) = batch.last() else { break };
            next = last.index + 1;
            if let Some(first) = batch.iter().find(|e| e.timestamp_ms != 0) {
                return Ok(if first.timestamp_ms < ts_ms {
                    Since::From(start)
                } else {
                    Since::Lost
                });
            }
        }
        Ok(Since::Lost)
    }

    /// fdatasync rounds of the segment log since the process started.
    pub fn fsync_count(&self) -> u64 {
        self.log.sync_count()
    }

    /// How long those rounds took.
    pub fn fsync_latency(&self) -> &Histogram {
        self.log.sync_latency()
    }
}

fn decode(stored: &StoredEntry) -> Result<CommittedEntry, CommittedError> {
    let command = stored_to_command(stored).map_err(|source| CommittedError::Undecodable {
        offset: stored.index,
        source,
    })?;
    Ok(CommittedEntry {
        offset: stored.index,
        epoch: stored.term,
        command,
    })
}

#[cfg(test)]
pub(crate) mod tests;
