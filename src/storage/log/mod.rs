//! The segment log: Raft's log as preallocated, CRC-framed segment files.
//!
//! Concurrency: `SegmentLog` is `Send + Sync` and every method takes `&self`.
//! - `writer` (a `Mutex<()>`) serialises mutations: append, truncate, purge.
//! - `state` (an `RwLock`) holds the segment list and in-memory indexes; readers take it shared,
//!   mutators take it exclusively only to publish (never across an fsync).
//! - `unsynced` records which files have writes not yet fdatasynced and up to which index.
//! - `group` coordinates group commit: one fdatasync round at a time; callers arriving during a
//!   round wait for the next one, which covers them.
//! - a flusher thread (started at open, stopped on drop) completes `on_durable` callbacks in
//!   batches, one sync round per batch.
//!
//! One job per file: `types` (entries, options, reports), `recovery` (open), `write` (append,
//! truncate, purge), `read`, `group_commit` (sync rounds, the flusher thread, poisoning) and
//! `purged` (the last-purged file); this file holds the shared state they work on.

use std::fs::File;
use std::path::{Path, PathBuf};
#[cfg(test)]
use std::sync::atomic::AtomicBool;
use std::sync::{
    Arc, Condvar, Mutex, MutexGuard, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard,
};
use std::thread::JoinHandle;

use super::meta_file::AtomicFile;
use super::segment::Segment;
use super::slot_file::SlotFile;
use super::truncation::TruncationIntent;
use super::StorageError;
use crate::metrics::Histogram;

mod group_commit;
mod purged;
mod read;
mod recovery;
mod types;
mod write;

pub use purged::{decode_last_purged, LAST_PURGED_FILE_NAME, LAST_PURGED_MAGIC};
pub use types::{EntryId, LogOptions, RecoveryReport, SegmentInfo, StoredEntry, TruncatedTail};

/// Name of the acknowledged-watermark file inside the log directory.
pub const ACKED_FILE_NAME: &str = "acked";
/// Slot magic of the acknowledged-watermark file: `b"YKAK"` as a little-endian u32.
pub const ACKED_MAGIC: u32 = u32::from_le_bytes(*b"YKAK");

type DurableCallback = Box<dyn FnOnce(Result<(), StorageError>) + Send>;

struct State {
    segments: Vec<Segment>,
    last_purged: Option<EntryId>,
}

impl State {
    fn last_index(&self) -> Option<u64> {
        self.segments.iter().rev().find_map(|s| s.last_index())
    }
    fn first_index(&self) -> Option<u64> {
        let first = self.segments.iter().find(|s| s.len() > 0).map(|s| s.base)?;
        let last = self.last_index()?;
        let first = match self.last_purged {
            Some(p) => first.max(p.index.saturating_add(1)),
            None => first,
        };
        (first <= last).then_some(first)
    }
    fn segment_for(&self, index: u64) -> Option<&Segment> {
        let n = self.segments.partition_point(|s| s.base <= index);
        let seg = self.segments.get(n.checked_sub(1)?)?;
        (index - seg.base < seg.len()).then_some(seg)
    }
}

#[derive(Default)]
struct Unsynced {
    files: Vec<(Arc<File>, PathBuf)>,
    last: Option<u64>,
    /// The term of entry `last` (recorded with the acknowledged watermark).
    last_term: u64,
    /// Bumped by truncation so an in-flight sync round does not claim truncated indexes.
    epoch: u64,
}

#[derive(Default)]
struct Group {
    running: bool,
    started: u64,
    done: u64,
    durable: Option<u64>,
    /// Error of round `done`, if it failed: (path, kind, message).
    failed: Option<(PathBuf, std::io::ErrorKind, String)>,
}

#[derive(Default)]
struct Pending {
    callbacks: Vec<(u64, DurableCallback)>,
    shutdown: bool,
}

struct Inner {
    dir: PathBuf,
    opts: LogOptions,
    purged_file: AtomicFile,
    truncation: TruncationIntent,
    /// The acknowledged watermark (`log/acked`) and the index it last recorded: raised after
    /// each sync round before anything is reported durable, lowered before a truncation.
    acked: Mutex<(SlotFile, u64)>,
    /// The watermark as found at open (see [`SegmentLog::acked_at_open`]).
    acked_at_open: Option<EntryId>,
    writer: Mutex<()>,
    /// Set by the first failed fdatasync/fsync: (path, kind, message). After it nothing is
    /// reported durable again (a retried fsync can succeed for pages the kernel already
    /// dropped), appends and truncations refuse, and every durability callback gets an error.
    poisoned: OnceLock<(PathBuf, std::io::ErrorKind, String)>,
    /// Test hook: the next fdatasync of a segment fails as if the device had reported EIO.
    #[cfg(test)]
    fail_next_sync: AtomicBool,
    state: RwLock<State>,
    unsynced: Mutex<Unsynced>,
    group: Mutex<Group>,
    group_cv: Condvar,
    pending: Mutex<Pending>,
    pending_cv: Condvar,
    /// fdatasync rounds by duration (their number is the histogram's count).
    sync_latency: Histogram,
}

/// The log.
pub struct SegmentLog {
    inner: Arc<Inner>,
    flusher: Option<JoinHandle<()>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn corrupt(path: &Path, offset: u64, reason: impl Into<String>) -> StorageError {
    StorageError::Corrupt {
        path: path.to_path_buf(),
        offset,
        reason: reason.into(),
    }
}

fn damaged(
    path: &Path,
    offset: u64,
    index: Option<u64>,
    reason: impl Into<String>,
) -> StorageError {
    StorageError::DamagedLog {
        path: path.to_path_buf(),
        offset,
        index,
        reason: reason.into(),
    }
}

impl Inner {
    fn read_state(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }
    fn write_state(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for SegmentLog {
    fn drop(&mut self) {
        lock(&self.inner.pending).shutdown = true;
        self.inner.pending_cv.notify_all();
        if let Some(h) = self.flusher.take() {
            let _ = h.join();
        }
    }
}
