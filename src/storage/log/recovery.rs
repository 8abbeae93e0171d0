//! Opening the log: recovery from a crash at any point. Finishes an interrupted truncation and
//! an interrupted purge, cuts a torn tail of the newest segment, refuses damage anywhere else,
//! and rebuilds the in-memory indexes.

use std::fs;
use std::path::Path;
#[cfg(test)]
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Condvar, Mutex, OnceLock, RwLock};

use super::purged::{decode_purged, LAST_PURGED_FILE_NAME, LAST_PURGED_MAGIC};
use super::{
    damaged, EntryId, Group, Inner, LogOptions, Pending, RecoveryReport, SegmentLog, State,
    TruncatedTail, Unsynced, ACKED_FILE_NAME, ACKED_MAGIC,
};
use crate::metrics::Histogram;
use crate::storage::frame::{scan_segment, FRAME_HEADER_LEN};
use crate::storage::meta_file::{create_dir_durably, fsync_dir, io_err, AtomicFile};
use crate::storage::segment::{parse_segment_file_name, Segment};
use crate::storage::slot_file::SlotFile;
use crate::storage::truncation::TruncationIntent;
use crate::storage::StorageError;

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
}
