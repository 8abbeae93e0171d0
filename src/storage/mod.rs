//! On-disk storage: the segment log, snapshot files and the vote file.
//!
//! This layer knows bytes, indexes, terms and timestamps, nothing of Raft or HTTP types.
//! Every rule in `segments-format.md` is implemented here.

pub mod error;
pub mod log;
pub mod snapshot;
pub mod vote;

pub use error::StorageError;
pub use log::{EntryId, LogOptions, RecoveryReport, SegmentInfo, SegmentLog, StoredEntry};
pub use snapshot::{SnapshotFile, SnapshotInfo, SnapshotStore};
pub use vote::VoteFile;
