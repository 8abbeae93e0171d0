//! Storage errors, each with the context an operator needs.

use std::path::PathBuf;

/// Everything that can go wrong in the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// An I/O call failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// The operation that failed (e.g. `fdatasync`).
        op: &'static str,
        /// The file or directory it was applied to.
        path: PathBuf,
        #[source]
        /// The OS error.
        source: std::io::Error,
    },
    /// A checksum failed (or a frame is malformed) somewhere other than a torn tail.
    #[error("corrupt data in {path} at byte {offset}: {reason}. This is disk corruption, not a torn write. Remove the node from the cluster (`yakt member remove ID`), wipe its data directory, and start it again: it rejoins as a new incarnation (see docs/operations.md)")]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// Byte offset of the damaged frame or field in that file.
        offset: u64,
        /// What check failed.
        reason: String,
    },
    /// The segment log is damaged in a way no torn write explains (a complete frame that fails
    /// its checks, bad bytes before valid ones, a gap): the node must not start on it, since
    /// entries it acknowledged may be gone. The message says how to bring the node back.
    #[error("this node's log is damaged: {path} at byte {offset}{}: {reason}. Remove the node from the cluster (`yakt member remove ID`), wipe its data directory, and start it again: it rejoins as a new incarnation (see docs/operations.md)", fmt_index(*.index))]
    DamagedLog {
        /// The damaged segment file.
        path: PathBuf,
        /// Byte offset of the damaged frame in that file.
        offset: u64,
        /// The entry index in the damaged frame's header, when the header is readable.
        index: Option<u64>,
        /// What check failed.
        reason: String,
    },
    /// The log is purged past every snapshot that verifies (or purged with no snapshot at all):
    /// the entries in between exist nowhere on this node, so it must not start (it would serve
    /// an image without them). The message names the snapshot files and how to recover.
    #[error("no snapshot that verifies covers the purged log: entries up to {last_purged} were purged, {}; {}. Remove the node from the cluster (`yakt member remove ID`), wipe its data directory, and start it again: it rejoins as a new incarnation and receives a snapshot from the leader (see docs/operations.md)", fmt_newest(newest_verified), fmt_skipped(skipped))]
    SnapshotsDoNotCoverLog {
        /// Last purged log index.
        last_purged: u64,
        /// The newest snapshot that verified, and its offset.
        newest_verified: Option<(PathBuf, u64)>,
        /// Newer snapshot files that failed verification, with why.
        skipped: Vec<(PathBuf, String)>,
    },
    /// Another process holds the data directory's lock file.
    #[error("{path} is locked: another yakt process is using this data directory (stop it, or give this node its own --data-dir)")]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// A read started at or below the last purged index: those entries are gone from this log
    /// (a snapshot holds them). Reported rather than skipped, so a reader never passes over
    /// records without knowing.
    #[error("entries from {start} on were asked for, but the log is purged up to {last_purged}")]
    Purged {
        /// The first index asked for.
        start: u64,
        /// The last purged index.
        last_purged: u64,
    },
    /// The caller broke an invariant (non-contiguous append, read of a purged index, ...).
    #[error("invalid operation: {0}")]
    Invalid(String),
}

fn fmt_index(index: Option<u64>) -> String {
    index
        .map(|i| format!(" (entry index {i})"))
        .unwrap_or_default()
}

fn fmt_newest(newest: &Option<(PathBuf, u64)>) -> String {
    match newest {
        Some((path, offset)) => format!(
            "the newest snapshot that verifies is {} at offset {offset}",
            path.display()
        ),
        None => "no snapshot file verifies".into(),
    }
}

fn fmt_skipped(skipped: &[(PathBuf, String)]) -> String {
    if skipped.is_empty() {
        return "no snapshot file failed verification".into();
    }
    let files: Vec<String> = skipped
        .iter()
        .map(|(p, why)| format!("{} ({why})", p.display()))
        .collect();
    format!("failed verification: {}", files.join(", "))
}
