//! The log's mutations, serialised by the writer lock: append (readable at once, durable after
//! the next sync round), truncation of a conflicting tail, and purge of the front after a
//! snapshot. Each is safe against a crash at any point (recovery finishes what was started).

use std::path::PathBuf;
use std::sync::Arc;

use super::purged::encode_purged;
use super::{lock, EntryId, SegmentLog, StoredEntry};
use crate::storage::frame::{encode_frame, FRAME_HEADER_LEN};
use crate::storage::meta_file::fsync_dir;
use crate::storage::segment::Segment;
use crate::storage::StorageError;

impl SegmentLog {
    /// Appends contiguous entries; readable on return, not durable (see [`SegmentLog::sync`]).
    /// An entry is due for the next sync round before readers can see it, so a `sync` that
    /// starts after an entry became visible covers it. Never fsyncs data; rolling to a new
    /// segment fsyncs the directory (creation is durable).
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
                let sealed = st.segments.last().map(Segment::mapped_pages);
                st.segments.push(seg);
                pos = 0;
                let at = (st.segments.len() - 1, cap);
                drop(st);
                if let Some(sealed) = sealed {
                    sealed.release();
                }
                at
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
            // Marked for the next sync round *before* readers can see the entries: whatever
            // `last_entry_id` shows, a `sync` started afterwards covers (the bytes are written
            // already, so a round that runs in between fsyncs them even if not yet published).
            if let Some(&(last, _, _)) = frames.last() {
                inner.mark_unsynced(
                    &file,
                    &path,
                    EntryId {
                        index: last,
                        term: entries[i - 1].term,
                    },
                );
            }
            {
                let mut st = inner.write_state();
                let seg = &mut st.segments[seg_idx];
                for (index, ts, p) in &frames {
                    seg.positions.push(*p);
                    seg.time.observe(*index, *ts, *p);
                }
                seg.write_pos = pos;
            }
        }
        // Wake the flusher in case callbacks wait for these indexes.
        inner.pending_cv.notify_one();
        Ok(())
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
        inner.purged_file.save(&encode_purged(id))?;
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
