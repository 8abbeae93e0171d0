//! The committed file: a durable lower bound of the highest log entry this node knew to be
//! committed.
//!
//! It serves two purposes. At restart the node replays its log up to it before serving, so an
//! image is never older than one it served before. And it is the watermark of what this node
//! had acknowledged: a log that now ends before it has lost entries that a quorum counted on,
//! and the node must not vote until a leader has brought it past that point.
//!
//! Raft advances the commit index with every replicated batch, so the file is written behind:
//! [`CommittedFile::save`] only records the newest value, and a background thread writes it at
//! most once every [`MIN_INTERVAL`] and fdatasyncs it. The durable value therefore lags the
//! real one a little, which is safe: a lower watermark asks less of the log, never something it
//! never had.
//!
//! The file is a [`SlotFile`](super::slot_file) with slot magic `YKCM`.

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use super::log::EntryId;
use super::meta_file::io_err;
use super::slot_file::{decode_slot_file, SlotFile};
use super::StorageError;

/// Name of the committed file inside the data directory.
pub const COMMITTED_FILE_NAME: &str = "committed";
/// Magic at the start of each slot: `b"YKCM"` as a little-endian u32.
pub const COMMITTED_MAGIC: u32 = u32::from_le_bytes(*b"YKCM");
/// The shortest time between two writes of the file.
pub const MIN_INTERVAL: Duration = Duration::from_millis(20);

/// Decodes a whole committed file (see [`super::slot_file`]).
pub fn decode_committed(buf: &[u8]) -> Result<Option<EntryId>, (u64, String)> {
    decode_slot_file(COMMITTED_MAGIC, buf)
}

struct State {
    /// The newest value asked for.
    wanted: Option<EntryId>,
    /// The value last made durable.
    durable: Option<EntryId>,
    /// A write or fdatasync failed: nothing more is written.
    failed: bool,
    shutdown: bool,
}

struct Inner {
    file: SlotFile,
    state: Mutex<State>,
    cv: Condvar,
}

/// The committed file and its writer thread. See the module documentation.
pub struct CommittedFile {
    inner: Arc<Inner>,
    writer: Option<JoinHandle<()>>,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Inner {
    /// Persists the newest wanted value if it is not durable yet. Returns false once failed.
    fn persist_once(&self) -> bool {
        let id = {
            let st = lock(&self.state);
            if st.failed {
                return false;
            }
            match st.wanted {
                Some(w) if st.durable != Some(w) => w,
                _ => return true,
            }
        };
        let res = self.file.write(id);
        let mut st = lock(&self.state);
        match res {
            Ok(()) => {
                if st.durable.is_none_or(|d| d.index <= id.index) {
                    st.durable = Some(id);
                }
                true
            }
            Err(e) => {
                // Never retried: after a failed fdatasync the kernel may have dropped the pages,
                // and a later success would not prove they reached the disk.
                tracing::error!(error = %e, "cannot persist the commit index; it stays at its last durable value");
                st.failed = true;
                false
            }
        }
    }

    fn writer_loop(self: Arc<Self>) {
        loop {
            {
                let mut st = lock(&self.state);
                while !st.shutdown && (st.failed || st.wanted == st.durable) {
                    st = self.cv.wait(st).unwrap_or_else(|e| e.into_inner());
                }
                if st.shutdown {
                    drop(st);
                    self.persist_once();
                    return;
                }
            }
            self.persist_once();
            std::thread::sleep(MIN_INTERVAL);
        }
    }
}

impl CommittedFile {
    /// Opens (creating if needed) `<dir>/committed` and starts its writer thread; also returns
    /// the value it held.
    pub fn open(dir: &Path) -> Result<(Self, Option<EntryId>), StorageError> {
        let (file, loaded) = SlotFile::open(dir, COMMITTED_FILE_NAME, COMMITTED_MAGIC)?;
        let inner = Arc::new(Inner {
            file,
            state: Mutex::new(State {
                wanted: loaded,
                durable: loaded,
                failed: false,
                shutdown: false,
            }),
            cv: Condvar::new(),
        });
        let thread_inner = inner.clone();
        let writer = std::thread::Builder::new()
            .name("yakt-committed".into())
            .spawn(move || thread_inner.writer_loop())
            .map_err(io_err("spawn writer thread", dir))?;
        Ok((
            Self {
                inner,
                writer: Some(writer),
            },
            loaded,
        ))
    }

    /// Records `id` as committed; it is made durable shortly after, in the background. A value
    /// below the one already recorded is ignored (the commit index never goes back).
    pub fn save(&self, id: EntryId) {
        let mut st = lock(&self.inner.state);
        if st.wanted.is_none_or(|w| w.index < id.index) {
            st.wanted = Some(id);
            self.inner.cv.notify_one();
        }
    }

    /// Makes the newest recorded value durable now.
    pub fn flush(&self) -> Result<(), StorageError> {
        if self.inner.persist_once() {
            Ok(())
        } else {
            Err(StorageError::Invalid(format!(
                "{} could not be written",
                self.inner.file.path().display()
            )))
        }
    }

    /// The newest value recorded (durable or about to be); at open, the loaded value.
    pub fn latest(&self) -> Option<EntryId> {
        lock(&self.inner.state).wanted
    }

    /// The value last made durable.
    pub fn durable(&self) -> Option<EntryId> {
        lock(&self.inner.state).durable
    }
}

impl Drop for CommittedFile {
    fn drop(&mut self) {
        lock(&self.inner.state).shutdown = true;
        self.inner.cv.notify_all();
        if let Some(t) = self.writer.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(index: u64, term: u64) -> EntryId {
        EntryId { index, term }
    }

    #[test]
    fn saved_values_survive_a_reopen_and_never_go_back() {
        let d = tempfile::tempdir().expect("tempdir");
        let (f, loaded) = CommittedFile::open(d.path()).expect("open");
        assert_eq!(loaded, None);
        f.save(id(5, 1));
        f.save(id(9, 2));
        f.save(id(7, 2));
        f.flush().expect("flush");
        assert_eq!(f.durable(), Some(id(9, 2)));
        drop(f);
        let (f, loaded) = CommittedFile::open(d.path()).expect("reopen");
        assert_eq!(loaded, Some(id(9, 2)));
        f.save(id(12, 3));
        drop(f);
        let (_, loaded) = CommittedFile::open(d.path()).expect("reopen");
        assert_eq!(loaded, Some(id(12, 3)));
    }

    #[test]
    fn decode_never_panics_on_short_or_long_input() {
        for n in 0..80 {
            let _ = decode_committed(&vec![0xA5; n]);
        }
        assert_eq!(decode_committed(&[]), Ok(None));
        assert_eq!(decode_committed(&[0u8; 64]), Ok(None));
    }
}
