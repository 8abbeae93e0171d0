//! The plain values the segment log takes and gives: entries, their ids, options, and what
//! recovery and the segment listing report.

use std::path::PathBuf;

/// An entry's position: its index and the term it was written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntryId {
    /// Raft log index (the record's offset).
    pub index: u64,
    /// Raft term (the record's epoch).
    pub term: u64,
}

/// One log entry as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredEntry {
    /// Raft log index (the record's offset).
    pub index: u64,
    /// Raft term (the record's epoch).
    pub term: u64,
    /// Milliseconds since the Unix epoch; 0 means "no timestamp" (not in the time index).
    pub timestamp_ms: u64,
    /// Opaque bytes defined by the Raft layer.
    pub payload: Vec<u8>,
}

/// Tunables of the segment log.
#[derive(Clone, Debug)]
pub struct LogOptions {
    /// Preallocated size of each segment file; a frame that does not fit rolls a new segment.
    pub segment_bytes: u64,
}

impl Default for LogOptions {
    fn default() -> Self {
        Self {
            segment_bytes: 64 * 1024 * 1024,
        }
    }
}

/// A torn tail cut at open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TruncatedTail {
    /// The segment file cut.
    pub path: PathBuf,
    /// Byte offset where the torn frame started (the new end of data).
    pub offset: u64,
    /// Bytes zeroed (up to the last non-zero byte).
    pub bytes: u64,
    /// Why the frame at `offset` was invalid.
    pub reason: String,
}

/// What recovery did at open.
#[derive(Clone, Debug, Default)]
pub struct RecoveryReport {
    /// Total bytes zeroed by torn-tail truncation.
    pub truncated_bytes: u64,
    /// Each torn tail cut (at most one per segment; more than one only when the newest
    /// segments were left empty by the crash).
    pub truncated: Vec<TruncatedTail>,
    /// Newest segments that held no entry (after cutting their torn tail) and were deleted.
    pub removed_empty_segments: Vec<PathBuf>,
    /// Segments wholly at or below `last_purged` that a crashed purge left behind, deleted.
    pub removed_purged_segments: Vec<PathBuf>,
    /// Segments and entries present after recovery.
    pub segments: usize,
    /// Entries present after recovery (including logically purged ones still on disk).
    pub entries: u64,
}

/// A summary of one segment file.
#[derive(Clone, Debug)]
pub struct SegmentInfo {
    /// The segment file.
    pub path: PathBuf,
    /// The index in the file name (first index the file holds).
    pub base_index: u64,
    /// First/last entry index present in the file (may include logically purged entries).
    pub first_index: Option<u64>,
    /// Last entry index present in the file.
    pub last_index: Option<u64>,
    /// Number of frames in the file.
    pub entries: u64,
    /// Bytes of frames written (the preallocated size is `capacity`).
    pub bytes: u64,
    /// Preallocated file size.
    pub capacity: u64,
    /// First/last non-zero timestamps.
    pub first_timestamp_ms: Option<u64>,
    /// Last non-zero timestamp.
    pub last_timestamp_ms: Option<u64>,
}
