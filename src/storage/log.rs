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

use std::fs::{self, File};
use std::path::{Path, PathBuf};
#[cfg(test)]
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{
    Arc, Condvar, Mutex, MutexGuard, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard,
};
use std::thread::JoinHandle;
use std::time::Duration;

use super::frame::scan_segment;
use super::frame::{encode_frame, FRAME_HEADER_LEN};
use super::meta_file::{create_dir_durably, fsync_dir, io_err, AtomicFile};
use super::segment::{parse_segment_file_name, Segment};
use super::slot_file::SlotFile;
use super::truncation::TruncationIntent;
use super::StorageError;
use crate::metrics::Histogram;

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

/// Name of the acknowledged-watermark file inside the log directory.
pub const ACKED_FILE_NAME: &str = "acked";
/// Slot magic of the acknowledged-watermark file: `b"YKAK"` as a little-endian u32.
pub const ACKED_MAGIC: u32 = u32::from_le_bytes(*b"YKAK");

/// Name of the last-purged file inside the log directory.
pub const LAST_PURGED_FILE_NAME: &str = "last_purged";
/// Magic of the last-purged file: `b"YKLP"` as a little-endian u32.
pub const LAST_PURGED_MAGIC: u32 = u32::from_le_bytes(*b"YKLP");

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

/// Rebuilds a same-meaning error for each of several callbacks (`StorageError` is not `Clone`).
fn duplicate(e: &StorageError) -> StorageError {
    match e {
        StorageError::Io { op, path, source } => StorageError::Io {
            op,
            path: path.clone(),
            source: std::io::Error::new(source.kind(), source.to_string()),
        },
        StorageError::Corrupt {
            path,
            offset,
            reason,
        } => StorageError::Corrupt {
            path: path.clone(),
            offset: *offset,
            reason: reason.clone(),
        },
        StorageError::DamagedLog {
            path,
            offset,
            index,
            reason,
        } => damaged(path, *offset, *index, reason.clone()),
        StorageError::SnapshotsDoNotCoverLog {
            last_purged,
            newest_verified,
            skipped,
        } => StorageError::SnapshotsDoNotCoverLog {
            last_purged: *last_purged,
            newest_verified: newest_verified.clone(),
            skipped: skipped.clone(),
        },
        StorageError::Invalid(s) => StorageError::Invalid(s.clone()),
        StorageError::Locked { path } => StorageError::Locked { path: path.clone() },
        StorageError::Purged { start, last_purged } => StorageError::Purged {
            start: *start,
            last_purged: *last_purged,
        },
    }
}

fn decode_purged(body: &[u8], path: &Path) -> Result<EntryId, StorageError> {
    if body.len() != 16 {
        return Err(corrupt(
            path,
            16,
            format!("last-purged body is {} bytes, expected 16", body.len()),
        ));
    }
    let mut i = [0u8; 8];
    let mut t = [0u8; 8];
    i.copy_from_slice(&body[..8]);
    t.copy_from_slice(&body[8..]);
    Ok(EntryId {
        index: u64::from_le_bytes(i),
        term: u64::from_le_bytes(t),
    })
}

/// Decodes the body of the last-purged file (index u64 LE, term u64 LE); for `yakt-dump`.
pub fn decode_last_purged(body: &[u8]) -> Option<EntryId> {
    decode_purged(body, Path::new("")).ok()
}

impl Inner {
    fn read_state(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }
    fn write_state(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Poisons the log after a failed fsync (logged at ERROR once) and returns the error.
    fn poison(&self, e: StorageError) -> StorageError {
        let (path, kind, msg) = match &e {
            StorageError::Io { path, source, .. } => {
                (path.clone(), source.kind(), source.to_string())
            }
            other => (
                self.dir.clone(),
                std::io::ErrorKind::Other,
                other.to_string(),
            ),
        };
        if self.poisoned.set((path, kind, msg)).is_ok() {
            tracing::error!(dir = %self.dir.display(), error = %e, "fsync failed: the log reports nothing durable any more and refuses writes; this process must restart (and recover from what is on disk)");
        }
        e
    }

    /// The error every operation returns once the log is poisoned.
    fn poisoned_err(&self) -> Option<StorageError> {
        self.poisoned
            .get()
            .map(|(path, kind, msg)| StorageError::Io {
                op: "fdatasync (failed earlier; the log is poisoned)",
                path: path.clone(),
                source: std::io::Error::new(*kind, msg.clone()),
            })
    }

    fn check_poisoned(&self) -> Result<(), StorageError> {
        self.poisoned_err().map_or(Ok(()), Err)
    }

    fn mark_unsynced(&self, seg_file: &Arc<File>, path: &Path, last: EntryId) {
        let mut u = lock(&self.unsynced);
        if !u.files.iter().any(|(_, p)| p == path) {
            u.files.push((Arc::clone(seg_file), path.to_path_buf()));
        }
        u.last = Some(last.index);
        u.last_term = last.term;
    }

    /// One fdatasync round over every file with unsynced writes. Returns the index it covers
    /// and the truncation epoch it was captured in.
    fn sync_round(&self) -> Result<(Option<u64>, u64), StorageError> {
        let (files, last, epoch) = {
            let mut u = lock(&self.unsynced);
            let last_id = u.last.map(|index| EntryId {
                index,
                term: u.last_term,
            });
            (std::mem::take(&mut u.files), last_id, u.epoch)
        };
        let last_id = last;
        let last = last_id.map(|l| l.index);
        if files.is_empty() {
            return Ok((last, epoch));
        }
        let started = std::time::Instant::now();
        let result = self
            .sync_files(&files)
            .and_then(|()| self.raise_acked(last_id, epoch));
        self.sync_latency.observe(started.elapsed().as_secs_f64());
        result.map(|()| (last, epoch))
    }

    /// Records durably that every entry up to `last` is on disk, before any of it is reported
    /// durable (and so acknowledged). Skipped when a truncation started since the round began.
    fn raise_acked(&self, last: Option<EntryId>, epoch: u64) -> Result<(), StorageError> {
        let Some(last) = last else { return Ok(()) };
        let mut acked = lock(&self.acked);
        if last.index <= acked.1 || lock(&self.unsynced).epoch != epoch {
            return Ok(());
        }
        acked.0.write(last).map_err(|e| self.poison(e))?;
        acked.1 = last.index;
        Ok(())
    }

    /// Brings the acknowledged watermark down to `to` durably (before a truncation).
    fn lower_acked(&self, to: EntryId) -> Result<(), StorageError> {
        let mut acked = lock(&self.acked);
        if acked.1 <= to.index {
            return Ok(());
        }
        acked.0.write(to)?;
        acked.1 = to.index;
        Ok(())
    }

    /// fdatasync of each file. A failure poisons the log: it is never retried, because after
    /// a failed fsync the kernel may have dropped the dirty pages and a retry would report
    /// success for data that is not on disk.
    fn sync_files(&self, files: &[(Arc<File>, PathBuf)]) -> Result<(), StorageError> {
        for (file, path) in files {
            #[cfg(test)]
            if self.fail_next_sync.swap(false, Ordering::SeqCst) {
                return Err(self.poison(StorageError::Io {
                    op: "fdatasync",
                    path: path.clone(),
                    source: std::io::Error::other("injected fdatasync failure"),
                }));
            }
            if let Err(source) = file.sync_data() {
                return Err(self.poison(StorageError::Io {
                    op: "fdatasync",
                    path: path.clone(),
                    source,
                }));
            }
        }
        Ok(())
    }

    fn sync(&self) -> Result<Option<u64>, StorageError> {
        self.check_poisoned()?;
        let mut g = lock(&self.group);
        let target = g.started + 1;
        loop {
            if g.done >= target {
                if let Some(e) = self.poisoned_err() {
                    return Err(e);
                }
                return match &g.failed {
                    Some((path, kind, msg)) => Err(StorageError::Io {
                        op: "fdatasync",
                        path: path.clone(),
                        source: std::io::Error::new(*kind, msg.clone()),
                    }),
                    None => Ok(g.durable),
                };
            }
            if g.running {
                g = self.group_cv.wait(g).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            g.running = true;
            g.started += 1;
            let round = g.started;
            drop(g);
            let res = self.sync_round();
            g = lock(&self.group);
            g.running = false;
            g.done = round;
            let out = match res {
                Ok((last, epoch)) => {
                    g.failed = None;
                    if lock(&self.unsynced).epoch == epoch && last > g.durable {
                        g.durable = last;
                    }
                    Ok(g.durable)
                }
                Err(e) => {
                    if let StorageError::Io { path, source, .. } = &e {
                        g.failed = Some((path.clone(), source.kind(), source.to_string()));
                    }
                    Err(e)
                }
            };
            self.group_cv.notify_all();
            return out;
        }
    }

    fn durable_index(&self) -> Option<u64> {
        lock(&self.group).durable
    }

    fn flusher_loop(self: Arc<Self>) {
        loop {
            let (batch, shutdown) = {
                let mut p = lock(&self.pending);
                while p.callbacks.is_empty() && !p.shutdown {
                    p = self.pending_cv.wait(p).unwrap_or_else(|e| e.into_inner());
                }
                (std::mem::take(&mut p.callbacks), p.shutdown)
            };
            if batch.is_empty() && shutdown {
                return;
            }
            let max = batch.iter().map(|(i, _)| *i).max();
            let res = if let Some(e) = self.poisoned_err() {
                Err(e)
            } else if max <= self.durable_index() {
                Ok(self.durable_index())
            } else {
                self.sync()
            };
            let mut leftover = Vec::new();
            match res {
                Ok(durable) => {
                    for (idx, cb) in batch {
                        if Some(idx) <= durable {
                            cb(Ok(()));
                        } else if shutdown {
                            cb(Err(StorageError::Invalid(format!(
                                "log closed before index {idx} was appended and made durable"
                            ))));
                        } else {
                            leftover.push((idx, cb));
                        }
                    }
                }
                Err(e) => {
                    for (_, cb) in batch {
                        cb(Err(duplicate(&e)));
                    }
                }
            }
            if shutdown {
                continue;
            }
            if !leftover.is_empty() {
                // Callbacks for indexes not appended yet: wait a little for appends.
                let mut p = lock(&self.pending);
                leftover.append(&mut p.callbacks);
                p.callbacks = leftover;
                let (p, _) = self
                    .pending_cv
                    .wait_timeout(p, Duration::from_millis(5))
                    .unwrap_or_else(|e| e.into_inner());
                drop(p);
            }
        }
    }
}

impl SegmentLog {
    /// Opens (creating if needed) the log in `dir`, recovering from a crash: cuts a torn tail
    /// of the newest segment, refuses corruption anywhere else, rebuilds the indexes, and
    /// fdatasyncs what it keeps so that everything readable after open is durable.
    pub fn open(dir: &Path, opts: LogOptions) -> Result<(Self, RecoveryReport), StorageError> {
        if opts.segment_bytes < FRAME_HEADER_LEN as u64 {
            return Err(StorageError::Invalid(format!(
                "segment_bytes {} is smaller than a frame header",
                opts.segment_bytes
            )));
        }
        create_dir_durably(dir)?;
        let purged_file = AtomicFile::open(dir, LAST_PURGED_FILE_NAME, LAST_PURGED_MAGIC)?;
        let last_purged = match purged_file.load()? {
            Some(body) => Some(decode_purged(&body, purged_file.path())?),
            None => None,
        };
        let mut report = RecoveryReport::default();
        let mut names = Vec::new();
        for e in fs::read_dir(dir).map_err(io_err("read dir", dir))? {
            let e = e.map_err(io_err("read dir", dir))?;
            if let Some(base) = parse_segment_file_name(&e.file_name().to_string_lossy()) {
                names.push((base, e.path()));
            }
        }
        names.sort();
        let mut opened = Vec::new();
        let mut dir_dirty = false;
        for (base, path) in names {
            match Segment::open(&path, base)? {
                Some(s) => opened.push(s),
                None => {
                    tracing::warn!(path = %path.display(), "removing zero-length segment left by a crash during creation");
                    Segment::remove_file(&path)?;
                    report.removed_empty_segments.push(path);
                    dir_dirty = true;
                }
            }
        }
        // Finish a truncation a crash interrupted, before anything is classified: its half-zeroed
        // tail is no damage.
        let truncation = TruncationIntent::open(dir)?;
        let (acked_file, mut acked_at_open) = SlotFile::open(dir, ACKED_FILE_NAME, ACKED_MAGIC)?;
        let mut acked_at_open_index = acked_at_open.map(|a| a.index);
        if let Some(keep) = truncation.load()? {
            // The entries the truncation removes were never committed (Raft truncates only a
            // conflicting tail), so the watermark comes down with them.
            let keep_index = keep.unwrap_or(0);
            if acked_at_open_index.is_some_and(|a| a > keep_index) {
                let keep_term = opened
                    .iter()
                    .rev()
                    .flat_map(|(_, scan)| scan.frames.iter().rev())
                    .find(|f| f.index == keep_index)
                    .map_or(0, |f| f.term);
                let kept = EntryId {
                    index: keep_index,
                    term: keep_term,
                };
                acked_file.write(kept)?;
                acked_at_open = Some(kept);
                acked_at_open_index = Some(keep_index);
            }
            tracing::warn!(keep_up_to = ?keep, "finishing a truncation interrupted by a crash");
            while let Some((seg, _)) = opened.last() {
                if keep.is_some_and(|k| seg.base <= k) {
                    break;
                }
                let path = seg.path.clone();
                opened.pop();
                Segment::remove_file(&path)?;
                fsync_dir(dir)?;
            }
            if let (Some(k), Some((seg, scan))) = (keep, opened.last_mut()) {
                if let Some(end) = scan.frames.iter().find(|f| f.index == k).map(|f| f.end()) {
                    if scan.written_end > end {
                        seg.zero_range_durably(end, scan.written_end)?;
                        *scan = scan_segment(&seg.map);
                    }
                }
            }
            truncation.clear()?;
        }
        // Torn tails: only at the end of the newest segment; a newest segment left without any
        // entry is deleted and the one before becomes the newest.
        while let Some((seg, scan)) = opened.last_mut() {
            if let Some(bad) = scan.corrupt.first() {
                return Err(damaged(&seg.path, bad.pos, bad.index, bad.reason.clone()));
            }
            if let Some(torn) = scan.torn_tail.take() {
                tracing::warn!(file = %seg.path.display(), offset = torn.pos, bytes_dropped = torn.len, reason = %torn.reason, "truncating torn tail of the newest segment");
                seg.zero_range_durably(torn.pos, scan.written_end)?;
                report.truncated_bytes += torn.len;
                report.truncated.push(TruncatedTail {
                    path: seg.path.clone(),
                    offset: torn.pos,
                    bytes: torn.len,
                    reason: torn.reason,
                });
            }
            if !scan.frames.is_empty() {
                break;
            }
            let path = seg.path.clone();
            opened.pop();
            tracing::warn!(path = %path.display(), "removing empty newest segment");
            Segment::remove_file(&path)?;
            report.removed_empty_segments.push(path);
            dir_dirty = true;
        }
        // Everything else must be clean, and each segment's frames contiguous from its base.
        let mut segments: Vec<Segment> = Vec::with_capacity(opened.len());
        for (mut seg, scan) in opened {
            if let Some(bad) = scan.corrupt.first() {
                return Err(damaged(&seg.path, bad.pos, bad.index, bad.reason.clone()));
            }
            if let Some(bad) = scan.torn_tail.as_ref() {
                return Err(damaged(
                    &seg.path,
                    bad.pos,
                    bad.index,
                    format!("{} (not at the tail of the newest segment)", bad.reason),
                ));
            }
            for (k, f) in scan.frames.iter().enumerate() {
                let want = seg.base + k as u64;
                if f.index != want {
                    return Err(damaged(
                        &seg.path,
                        f.pos,
                        Some(f.index),
                        format!(
                            "frame has index {} but index {want} was expected here",
                            f.index
                        ),
                    ));
                }
                seg.positions.push(f.pos);
                seg.time.observe(f.index, f.timestamp_ms, f.pos);
            }
            seg.write_pos = scan.data_end;
            segments.push(seg);
        }
        // Finish a purge interrupted after last_purged was persisted.
        if let Some(p) = last_purged {
            let mut kept = Vec::with_capacity(segments.len());
            for s in segments {
                if s.last_index().is_none_or(|l| l <= p.index) {
                    tracing::info!(path = %s.path.display(), "removing segment wholly below last_purged left by an interrupted purge");
                    Segment::remove_file(&s.path)?;
                    report.removed_purged_segments.push(s.path.clone());
                    dir_dirty = true;
                } else {
                    kept.push(s);
                }
            }
            segments = kept;
            if let Some(first) = segments.first() {
                if first.base > p.index.saturating_add(1) {
                    return Err(damaged(
                        &first.path,
                        0,
                        None,
                        format!(
                            "entries {}..{} are missing (last purged is {})",
                            p.index + 1,
                            first.base,
                            p.index
                        ),
                    ));
                }
            }
        }
        // Segments must follow each other without gaps.
        for w in segments.windows(2) {
            let exp = w[0].base + w[0].len();
            if w[1].base != exp {
                return Err(damaged(
                    &w[1].path,
                    0,
                    None,
                    format!(
                        "segment starts at index {} but the previous segment ends at {}",
                        w[1].base,
                        exp.wrapping_sub(1)
                    ),
                ));
            }
        }
        if dir_dirty {
            fsync_dir(dir)?;
        }
        for s in &segments {
            s.file.sync_data().map_err(io_err("fdatasync", &s.path))?;
        }
        let state = State {
            segments,
            last_purged,
        };
        let last = state.last_index().or(last_purged.map(|p| p.index));
        report.segments = state.segments.len();
        report.entries = state.segments.iter().map(|s| s.len()).sum();
        let inner = Arc::new(Inner {
            dir: dir.to_path_buf(),
            opts,
            purged_file,
            truncation,
            acked: Mutex::new((acked_file, acked_at_open_index.unwrap_or(0))),
            acked_at_open,
            writer: Mutex::new(()),
            poisoned: OnceLock::new(),
            #[cfg(test)]
            fail_next_sync: AtomicBool::new(false),
            state: RwLock::new(state),
            unsynced: Mutex::new(Unsynced {
                last,
                ..Default::default()
            }),
            group: Mutex::new(Group {
                durable: last,
                ..Default::default()
            }),
            group_cv: Condvar::new(),
            pending: Mutex::new(Pending::default()),
            pending_cv: Condvar::new(),
            sync_latency: Histogram::default(),
        });
        let for_thread = Arc::clone(&inner);
        let flusher = std::thread::Builder::new()
            .name("yakt-log-flusher".into())
            .spawn(move || for_thread.flusher_loop())
            .map_err(io_err("spawn flusher thread", dir))?;
        Ok((
            Self {
                inner,
                flusher: Some(flusher),
            },
            report,
        ))
    }

    /// Appends contiguous entries; readable on return, not durable (see [`SegmentLog::sync`]).
    /// Never fsyncs data; rolling to a new segment fsyncs the directory (creation is durable).
    pub fn append(&self, entries: &[StoredEntry]) -> Result<(), StorageError> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        let inner = &*self.inner;
        let _w = lock(&inner.writer);
        inner.check_poisoned()?;
        let expected = {
            let st = inner.read_state();
            match (st.last_index(), st.last_purged) {
                (Some(l), _) => l.checked_add(1),
                (None, Some(p)) => p.index.checked_add(1),
                (None, None) => None,
            }
        };
        if let Some(exp) = expected {
            if first.index != exp {
                return Err(StorageError::Invalid(format!(
                    "append at index {} but the next index is {exp}",
                    first.index
                )));
            }
        }
        for w in entries.windows(2) {
            if w[0].index.checked_add(1) != Some(w[1].index) {
                return Err(StorageError::Invalid(format!(
                    "append batch not contiguous: {} then {}",
                    w[0].index, w[1].index
                )));
            }
        }
        let mut buf = Vec::new();
        let mut i = 0;
        while i < entries.len() {
            // Pick the segment for entries[i]: the active one if the frame fits, else a new one.
            let need = (FRAME_HEADER_LEN + entries[i].payload.len()) as u64;
            let (seg_idx, mut pos, capacity) = {
                let st = inner.read_state();
                match st.segments.last() {
                    Some(s) if s.len() > 0 && s.write_pos + need <= s.capacity => {
                        (st.segments.len() - 1, s.write_pos, s.capacity)
                    }
                    _ => (usize::MAX, 0, 0),
                }
            };
            if seg_idx == usize::MAX {
                // An empty last segment (left by a failed append) is replaced, not reused.
                let stale = {
                    let mut st = inner.write_state();
                    match st.segments.last() {
                        Some(s) if s.len() == 0 => st.segments.pop().map(|s| s.path),
                        _ => None,
                    }
                };
                if let Some(p) = stale {
                    lock(&inner.unsynced).files.retain(|(_, q)| *q != p);
                    Segment::remove_file(&p)?;
                    fsync_dir(&inner.dir)?;
                }
            }
            let (seg_idx, capacity) = if seg_idx == usize::MAX {
                // The old segment's data is durable before the new one gets its first byte: a
                // crash after the roll can then never leave a torn tail in the old segment with
                // valid frames after it in the new one (that would be corruption at open).
                inner.sync()?;
                let cap = inner.opts.segment_bytes.max(need);
                let seg = Segment::create(&inner.dir, entries[i].index, cap)?;
                let mut st = inner.write_state();
                st.segments.push(seg);
                pos = 0;
                (st.segments.len() - 1, cap)
            } else {
                (seg_idx, capacity)
            };
            // Encode as many entries as fit in this segment.
            buf.clear();
            let mut frames = Vec::new();
            let start_pos = pos;
            while i < entries.len() {
                let e = &entries[i];
                let len = (FRAME_HEADER_LEN + e.payload.len()) as u64;
                if pos + len > capacity {
                    break;
                }
                encode_frame(e.index, e.term, e.timestamp_ms, &e.payload, &mut buf)
                    .map_err(StorageError::Invalid)?;
                frames.push((e.index, e.timestamp_ms, pos));
                pos += len;
                i += 1;
            }
            let (file, path) = {
                let st = inner.read_state();
                let seg = &st.segments[seg_idx];
                seg.write_at(start_pos, &buf)?;
                (Arc::clone(&seg.file), seg.path.clone())
            };
            let last = {
                let mut st = inner.write_state();
                let seg = &mut st.segments[seg_idx];
                for (index, ts, p) in &frames {
                    seg.positions.push(*p);
                    seg.time.observe(*index, *ts, *p);
                }
                seg.write_pos = pos;
                seg.last_index()
            };
            let last_term = entries[i - 1].term;
            if let Some(last) = last {
                inner.mark_unsynced(
                    &file,
                    &path,
                    EntryId {
                        index: last,
                        term: last_term,
                    },
                );
            }
        }
        // Wake the flusher in case callbacks wait for these indexes.
        inner.pending_cv.notify_one();
        Ok(())
    }

    /// Makes everything appended so far durable (fdatasync of every segment with unsynced
    /// writes) and returns the last durable index. Concurrent callers share rounds.
    pub fn sync(&self) -> Result<Option<u64>, StorageError> {
        self.inner.sync()
    }

    /// Runs `done` on the flusher thread once every entry <= `index` is durable (or with the
    /// error if the sync fails). Callbacks are batched: one sync round per batch.
    pub fn on_durable(&self, index: u64, done: Box<dyn FnOnce(Result<(), StorageError>) + Send>) {
        let mut p = lock(&self.inner.pending);
        p.callbacks.push((index, done));
        drop(p);
        self.inner.pending_cv.notify_one();
    }

    /// The last index known durable (None if nothing was ever durable).
    pub fn durable_index(&self) -> Option<u64> {
        self.inner.durable_index()
    }

    /// Number of fdatasync rounds run by `sync`/the flusher since open (for tests and metrics).
    pub fn sync_count(&self) -> u64 {
        self.inner.sync_latency.count()
    }

    /// How long those fdatasync rounds took (for metrics).
    pub fn sync_latency(&self) -> &Histogram {
        &self.inner.sync_latency
    }

    /// Entries in `[start, end)` that exist, at least one if any; `max_bytes` bounds payload bytes.
    /// A range that starts at or below the last purged index is [`StorageError::Purged`]: the
    /// log never answers a later start than asked for because a purge ran.
    pub fn read_range(
        &self,
        start: u64,
        end: u64,
        max_bytes: Option<usize>,
    ) -> Result<Vec<StoredEntry>, StorageError> {
        let st = self.inner.read_state();
        if let Some(p) = st.last_purged.filter(|p| start < end && start <= p.index) {
            return Err(StorageError::Purged {
                start,
                last_purged: p.index,
            });
        }
        let (Some(first), Some(last)) = (st.first_index(), st.last_index()) else {
            return Ok(Vec::new());
        };
        let from = start.max(first);
        let to = end.min(last.saturating_add(1));
        let mut out = Vec::new();
        let mut bytes = 0usize;
        let mut idx = from;
        while idx < to {
            let Some(seg) = st.segment_for(idx) else {
                break;
            };
            let f = seg.frame_at(seg.positions[(idx - seg.base) as usize])?;
            if f.index != idx {
                return Err(corrupt(
                    &seg.path,
                    seg.positions[(idx - seg.base) as usize],
                    format!("frame has index {} but {idx} was expected", f.index),
                ));
            }
            if let Some(max) = max_bytes {
                if !out.is_empty() && bytes + f.payload.len() > max {
                    break;
                }
            }
            bytes += f.payload.len();
            out.push(StoredEntry {
                index: f.index,
                term: f.term,
                timestamp_ms: f.timestamp_ms,
                payload: f.payload.to_vec(),
            });
            idx += 1;
        }
        Ok(out)
    }

    /// Removes every entry with index > `index` (`None`: all entries; `last_purged` stays).
    /// Durable before return, and safe against a crash at any point: the intent is persisted
    /// first (recovery finishes it), later segments are deleted newest first with a directory
    /// fsync after each, the tail is zeroed and fdatasynced, everything kept is fdatasynced, and
    /// only then is the intent removed.
    pub fn truncate_after(&self, index: Option<u64>) -> Result<(), StorageError> {
        let inner = &*self.inner;
        let _w = lock(&inner.writer);
        inner.check_poisoned()?;
        inner.truncation.save(index)?;
        // Once the intent is saved, a failure must stop every later write: an append after it
        // would be cut by recovery finishing the intent. So any error here poisons the log.
        self.truncate_with_intent(index)
            .map_err(|e| inner.poison(e))
    }

    /// The body of `truncate_after`, run with the writer lock held and the intent saved.
    fn truncate_with_intent(&self, index: Option<u64>) -> Result<(), StorageError> {
        let inner = &*self.inner;
        // 1. Publish the shorter log to readers (no I/O under the state lock but a rescan).
        let (removed, zero, new_last) = {
            let mut st = inner.write_state();
            let split = st
                .segments
                .partition_point(|s| index.is_some_and(|i| s.base <= i));
            let removed: Vec<PathBuf> = st.segments.drain(split..).map(|s| s.path).collect();
            let mut zero = None;
            if let (Some(i), Some(seg)) = (index, st.segments.last_mut()) {
                let keep = (i - seg.base + 1).min(seg.len()) as usize;
                if keep < seg.positions.len() {
                    let new_end = seg.positions[keep];
                    zero = Some((new_end, seg.write_pos));
                    seg.positions.truncate(keep);
                    seg.write_pos = new_end;
                    seg.time.truncate_after(i);
                    rescan_time(seg)?;
                }
            }
            let mut removed = removed;
            if let Some(p) = st.last_purged {
                if st.last_index().is_none_or(|l| l <= p.index) {
                    // Only logically purged entries are left: drop those segments too, so the
                    // next append (at last_purged + 1) starts a fresh segment.
                    let older: Vec<PathBuf> = st.segments.drain(..).map(|s| s.path).collect();
                    removed.splice(0..0, older);
                    zero = None;
                }
            }
            (
                removed,
                zero,
                st.last_index().or(st.last_purged.map(|p| p.index)),
            )
        };
        // 2. Stop in-flight sync rounds from claiming truncated indexes, and bring the
        //    acknowledged watermark down with the log (the removed entries were never committed).
        {
            let mut u = lock(&inner.unsynced);
            u.epoch += 1;
            u.last = new_last;
            u.files.retain(|(_, p)| !removed.contains(p));
        }
        let new_last_id = self
            .last_entry_id()
            .or(self.last_purged())
            .unwrap_or(EntryId {
                index: new_last.unwrap_or(0),
                term: 0,
            });
        {
            let mut u = lock(&inner.unsynced);
            u.last_term = new_last_id.term;
        }
        inner.lower_acked(new_last_id)?;
        {
            let mut g = lock(&inner.group);
            g.durable = g.durable.min(new_last);
        }
        // 3. Make it durable: delete later segments (newest first), then zero the tail.
        for p in removed.iter().rev() {
            Segment::remove_file(p)?;
            fsync_dir(&inner.dir)?;
        }
        if let Some((from, to)) = zero {
            let st = inner.read_state();
            if let Some(seg) = st.segments.last() {
                seg.zero_range_durably(from, to)?;
            }
        }
        // 4. Everything kept is durable too (waits for any in-flight round, then runs one).
        inner.sync()?;
        // 5. Done: recovery need not finish anything.
        inner.truncation.clear()
    }

    /// The acknowledged watermark found at open: the highest index this log had made durable
    /// (and so could have acknowledged) before the process stopped. A log that now ends before
    /// it lost entries it had acknowledged (a disk that lied, or bytes cut by hand).
    pub fn acked_at_open(&self) -> Option<EntryId> {
        self.inner.acked_at_open
    }

    /// Whether an fdatasync/fsync has failed: the log then refuses every write and reports
    /// nothing durable; the process must restart and recover from what is on disk.
    pub fn failed(&self) -> bool {
        self.inner.poisoned.get().is_some()
    }

    /// Test hook: makes the next fdatasync of a segment fail like a device error.
    #[cfg(test)]
    pub(crate) fn inject_sync_failure(&self) {
        self.inner.fail_next_sync.store(true, Ordering::SeqCst);
    }

    /// Logically removes every entry <= `id.index`, persisting `last_purged = id` durably before
    /// deleting segments whose every entry is <= `id.index`. `id` may lie beyond the last entry.
    pub fn purge_upto(&self, id: EntryId) -> Result<(), StorageError> {
        let inner = &*self.inner;
        let _w = lock(&inner.writer);
        inner.check_poisoned()?;
        if inner
            .read_state()
            .last_purged
            .is_some_and(|p| p.index > id.index)
        {
            return Ok(());
        }
        let mut body = Vec::with_capacity(16);
        body.extend_from_slice(&id.index.to_le_bytes());
        body.extend_from_slice(&id.term.to_le_bytes());
        inner.purged_file.save(&body)?;
        let removed: Vec<PathBuf> = {
            let mut st = inner.write_state();
            st.last_purged = Some(id);
            let n = st
                .segments
                .iter()
                .take_while(|s| s.last_index().is_none_or(|l| l <= id.index))
                .count();
            st.segments.drain(..n).map(|s| s.path).collect()
        };
        if !removed.is_empty() {
            lock(&inner.unsynced)
                .files
                .retain(|(_, p)| !removed.contains(p));
            for p in &removed {
                Segment::remove_file(p)?;
            }
            fsync_dir(&inner.dir)?;
        }
        if inner.read_state().last_index().is_none() {
            // Nothing left: everything up to the purge point counts as durable.
            let mut g = lock(&inner.group);
            g.durable = g.durable.max(Some(id.index));
            let mut u = lock(&inner.unsynced);
            u.last = u.last.max(Some(id.index));
        }
        Ok(())
    }

    /// The first index present (> last_purged), None if the log holds no entry.
    pub fn first_index(&self) -> Option<u64> {
        self.inner.read_state().first_index()
    }

    /// The last entry present, None if the log holds no entry (combine with `last_purged`).
    pub fn last_entry_id(&self) -> Option<EntryId> {
        let st = self.inner.read_state();
        st.first_index()?;
        let seg = st.segments.iter().rev().find(|s| s.len() > 0)?;
        let pos = *seg.positions.last()?;
        seg.frame_at(pos).ok().map(|f| EntryId {
            index: f.index,
            term: f.term,
        })
    }

    /// The persisted last purged id (read from the meta file at open, never derived).
    pub fn last_purged(&self) -> Option<EntryId> {
        self.inner.read_state().last_purged
    }

    /// Index of the first entry with `timestamp_ms >= ts_ms`, ignoring untimestamped (0) entries.
    pub fn find_index_by_timestamp(&self, ts_ms: u64) -> Result<Option<u64>, StorageError> {
        let st = self.inner.read_state();
        let Some(first) = st.first_index() else {
            return Ok(None);
        };
        for seg in &st.segments {
            if seg.time.last_ts.is_none_or(|l| l < ts_ms) {
                continue;
            }
            let start = seg
                .time
                .scan_start(ts_ms)
                .unwrap_or(seg.base)
                .max(first)
                .max(seg.base);
            for idx in start..seg.base + seg.len() {
                let pos = seg.positions[(idx - seg.base) as usize];
                let f = seg.frame_at(pos)?;
                if f.timestamp_ms != 0 && f.timestamp_ms >= ts_ms {
                    return Ok(Some(idx));
                }
            }
        }
        Ok(None)
    }

    /// A summary of every segment file, oldest first.
    pub fn segments(&self) -> Vec<SegmentInfo> {
        let st = self.inner.read_state();
        st.segments
            .iter()
            .map(|s| SegmentInfo {
                path: s.path.clone(),
                base_index: s.base,
                first_index: (s.len() > 0).then_some(s.base),
                last_index: s.last_index(),
                entries: s.len(),
                bytes: s.write_pos,
                capacity: s.capacity,
                first_timestamp_ms: s.time.first_ts,
                last_timestamp_ms: s.time.last_ts,
            })
            .collect()
    }

    /// The directory holding the segment files.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }
}

/// Recomputes a truncated segment's last timestamp by scanning from its last time-index point.
fn rescan_time(seg: &mut Segment) -> Result<(), StorageError> {
    let from = seg
        .time
        .last_point()
        .map_or(0, |p| (p.index - seg.base) as usize);
    let mut first = None;
    let mut last = None;
    for k in from..seg.positions.len() {
        let f = seg.frame_at(seg.positions[k])?;
        if f.timestamp_ms != 0 {
            first = first.or(Some(f.timestamp_ms));
            last = Some(f.timestamp_ms);
        }
    }
    seg.time.reset_last_ts(first, last);
    Ok(())
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
