//! The segment log. STUB: the storage work replaces the bodies.

use std::path::{Path, PathBuf};

use super::StorageError;

/// An entry's position: its index and the term it was written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntryId {
    pub index: u64,
    pub term: u64,
}

/// One log entry as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredEntry {
    pub index: u64,
    pub term: u64,
    /// Milliseconds since the Unix epoch; 0 means "no timestamp" (not in the time index).
    pub timestamp_ms: u64,
    pub payload: Vec<u8>,
}

/// Tunables of the segment log.
#[derive(Clone, Debug)]
pub struct LogOptions {
    pub segment_bytes: u64,
}

impl Default for LogOptions {
    fn default() -> Self {
        Self {
            segment_bytes: 64 * 1024 * 1024,
        }
    }
}

/// What recovery did at open.
#[derive(Clone, Debug, Default)]
pub struct RecoveryReport {
    pub truncated_bytes: u64,
}

/// A summary of one segment file.
#[derive(Clone, Debug)]
pub struct SegmentInfo {
    pub path: PathBuf,
    pub base_index: u64,
}

/// The log.
pub struct SegmentLog {}

impl SegmentLog {
    pub fn open(_dir: &Path, _opts: LogOptions) -> Result<(Self, RecoveryReport), StorageError> {
        todo!()
    }
    pub fn append(&self, _entries: &[StoredEntry]) -> Result<(), StorageError> {
        todo!()
    }
    pub fn sync(&self) -> Result<Option<u64>, StorageError> {
        todo!()
    }
    pub fn on_durable(&self, _index: u64, _done: Box<dyn FnOnce(Result<(), StorageError>) + Send>) {
        todo!()
    }
    pub fn durable_index(&self) -> Option<u64> {
        todo!()
    }
    pub fn read_range(
        &self,
        _start: u64,
        _end: u64,
        _max_bytes: Option<usize>,
    ) -> Result<Vec<StoredEntry>, StorageError> {
        todo!()
    }
    pub fn truncate_after(&self, _index: Option<u64>) -> Result<(), StorageError> {
        todo!()
    }
    pub fn purge_upto(&self, _id: EntryId) -> Result<(), StorageError> {
        todo!()
    }
    pub fn first_index(&self) -> Option<u64> {
        todo!()
    }
    pub fn last_entry_id(&self) -> Option<EntryId> {
        todo!()
    }
    pub fn last_purged(&self) -> Option<EntryId> {
        todo!()
    }
    pub fn find_index_by_timestamp(&self, _ts_ms: u64) -> Result<Option<u64>, StorageError> {
        todo!()
    }
    pub fn segments(&self) -> Vec<SegmentInfo> {
        todo!()
    }
}
