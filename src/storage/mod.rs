//! On-disk storage: the segment log (`log/`), snapshot files, and the small files (vote, identity,
//! committed watermark); bytes, indexes, terms and timestamps, nothing of Raft or HTTP types.
//!
//! Every rule in `segments-format.md` is implemented here.

#![warn(missing_docs)]

pub mod committed;
pub mod dir_lock;
pub mod error;
pub mod frame;
pub mod identity;
pub mod log;
mod meta_file;
pub mod recovering;
mod segment;
pub mod slot_file;
pub mod snapshot;
mod time_index;
pub mod truncation;
pub mod vote;

#[cfg(test)]
mod tests;

pub use committed::CommittedFile;
pub use dir_lock::DirLock;
pub use error::StorageError;
pub use frame::{decode_frame, scan_segment, Frame, FrameError, SegmentScan};
pub use identity::{Identity, Origin};
pub use log::{
    EntryId, LogOptions, RecoveryReport, SegmentInfo, SegmentLog, StoredEntry, TruncatedTail,
};
pub use meta_file::{decode_meta, META_HEADER_LEN};
pub use recovering::{RecoveringMark, Unproven};
pub use segment::{parse_segment_file_name, segment_file_name};
pub use snapshot::{
    decode_snapshot, ChosenSnapshot, SnapshotFile, SnapshotInfo, SnapshotStore,
    DEFAULT_KEEP_SNAPSHOTS,
};
pub use vote::VoteFile;
