//! Group commit: one fdatasync round at a time over every segment file with unsynced writes,
//! shared by every caller that arrives while it runs; the acknowledged watermark raised after
//! each round; the flusher thread that completes `on_durable` callbacks in batches; and the
//! poisoning that makes the first failed fsync final.

use std::fs::File;
use std::path::{Path, PathBuf};
#[cfg(test)]
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::{damaged, lock, EntryId, Inner, SegmentLog};
use crate::metrics::Histogram;
use crate::storage::StorageError;

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

impl Inner {
    /// Poisons the log after a failed fsync (logged at ERROR once) and returns the error.
    pub(super) fn poison(&self, e: StorageError) -> StorageError {
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
    pub(super) fn poisoned_err(&self) -> Option<StorageError> {
        self.poisoned
            .get()
            .map(|(path, kind, msg)| StorageError::Io {
                op: "fdatasync (failed earlier; the log is poisoned)",
                path: path.clone(),
                source: std::io::Error::new(*kind, msg.clone()),
            })
    }

    pub(super) fn check_poisoned(&self) -> Result<(), StorageError> {
        self.poisoned_err().map_or(Ok(()), Err)
    }

    pub(super) fn mark_unsynced(&self, seg_file: &Arc<File>, path: &Path, last: EntryId) {
        let mut u = lock(&self.unsynced);
        if !u.files.iter().any(|(_, p)| p == path) {
            u.files.push((Arc::clone(seg_file), path.to_path_buf()));
        }
        u.last = Some(last.index);
        u.last_term = last.term;
    }

    /// One fdatasync round over every file with unsynced writes. Returns the index it covers
    /// and the truncation epoch it was captured in.
    pub(super) fn sync_round(&self) -> Result<(Option<u64>, u64), StorageError> {
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
    pub(super) fn raise_acked(
        &self,
        last: Option<EntryId>,
        epoch: u64,
    ) -> Result<(), StorageError> {
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
    pub(super) fn lower_acked(&self, to: EntryId) -> Result<(), StorageError> {
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
    pub(super) fn sync_files(&self, files: &[(Arc<File>, PathBuf)]) -> Result<(), StorageError> {
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

    pub(super) fn sync(&self) -> Result<Option<u64>, StorageError> {
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

    pub(super) fn durable_index(&self) -> Option<u64> {
        lock(&self.group).durable
    }

    pub(super) fn flusher_loop(self: Arc<Self>) {
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
}
