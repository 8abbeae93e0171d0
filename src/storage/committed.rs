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
//! Layout (64 bytes): two 32-byte slots written alternately, each
//! `magic "YKCM" u32 LE | crc32 u32 LE | sequence u64 LE | index u64 LE | term u64 LE`, the CRC
//! (crc32fast) covering the 24 bytes after it. A write can tear only the slot it writes; the
//! other still holds the previous value. An all-zero slot is empty. The slot with the highest
//! sequence that verifies wins; two damaged slots are corruption.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use super::log::EntryId;
use super::meta_file::{fsync_dir, io_err};
use super::StorageError;

/// Name of the committed file inside the data directory.
pub const COMMITTED_FILE_NAME: &str = "committed";
/// Magic at the start of each slot: `b"YKCM"` as a little-endian u32.
pub const COMMITTED_MAGIC: u32 = u32::from_le_bytes(*b"YKCM");
/// Size of one slot.
pub const COMMITTED_SLOT_LEN: usize = 32;
/// The shortest time between two writes of the file.
pub const MIN_INTERVAL: Duration = Duration::from_millis(20);

/// One decoded slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Slot {
    seq: u64,
    id: EntryId,
}

fn encode_slot(seq: u64, id: EntryId) -> [u8; COMMITTED_SLOT_LEN] {
    let mut b = [0u8; COMMITTED_SLOT_LEN];
    b[0..4].copy_from_slice(&COMMITTED_MAGIC.to_le_bytes());
    b[8..16].copy_from_slice(&seq.to_le_bytes());
    b[16..24].copy_from_slice(&id.index.to_le_bytes());
    b[24..32].copy_from_slice(&id.term.to_le_bytes());
    let crc = crc32fast::hash(&b[8..32]);
    b[4..8].copy_from_slice(&crc.to_le_bytes());
    b
}

/// `Ok(None)` for an empty (all-zero) slot, `Err` for a damaged one.
fn decode_slot(b: &[u8]) -> Result<Option<Slot>, String> {
    if b.iter().all(|&x| x == 0) {
        return Ok(None);
    }
    if b.len() != COMMITTED_SLOT_LEN {
        return Err(format!("slot is {} bytes", b.len()));
    }
    let u32_at = |a: usize| u32::from_le_bytes([b[a], b[a + 1], b[a + 2], b[a + 3]]);
    let u64_at = |a: usize| {
        let mut x = [0u8; 8];
        x.copy_from_slice(&b[a..a + 8]);
        u64::from_le_bytes(x)
    };
    if u32_at(0) != COMMITTED_MAGIC {
        return Err(format!("bad magic {:#010x}", u32_at(0)));
    }
    if crc32fast::hash(&b[8..32]) != u32_at(4) {
        return Err("CRC mismatch".into());
    }
    Ok(Some(Slot {
        seq: u64_at(8),
        id: EntryId {
            index: u64_at(16),
            term: u64_at(24),
        },
    }))
}

/// Decodes a whole committed file: the newest valid slot's entry id, `None` when both slots
/// are empty, or `(byte offset, reason)` when no slot verifies and at least one is damaged.
pub fn decode_committed(buf: &[u8]) -> Result<Option<EntryId>, (u64, String)> {
    let mut best: Option<Slot> = None;
    let mut damaged = None;
    let mut valid_or_empty = 0;
    for k in 0..2 {
        let at = k * COMMITTED_SLOT_LEN;
        let slot = buf.get(at..at + COMMITTED_SLOT_LEN).unwrap_or(&[]);
        if slot.is_empty() {
            valid_or_empty += 1;
            continue;
        }
        match decode_slot(slot) {
            Ok(Some(s)) => {
                valid_or_empty += 1;
                if best.is_none_or(|b| s.seq > b.seq) {
                    best = Some(s);
                }
            }
            Ok(None) => valid_or_empty += 1,
            Err(reason) => damaged = Some((at as u64, reason)),
        }
    }
    match (best, damaged) {
        (Some(s), _) => Ok(Some(s.id)),
        (None, Some(d)) if valid_or_empty == 0 => Err(d),
        // One slot empty, the other torn: the very first write was cut.
        (None, _) => Ok(None),
    }
}

struct State {
    /// The newest value asked for.
    wanted: Option<EntryId>,
    /// The value last made durable.
    durable: Option<EntryId>,
    /// Sequence number of the last slot written.
    seq: u64,
    /// A write or fdatasync failed: nothing more is written.
    failed: bool,
    shutdown: bool,
}

struct Inner {
    file: File,
    /// Held across one slot write: two writes in flight could tear both slots at once.
    writing: Mutex<()>,
    path: PathBuf,
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
    /// Writes `id` into the next slot and fdatasyncs it.
    fn write(&self, seq: u64, id: EntryId) -> Result<(), StorageError> {
        let slot = encode_slot(seq, id);
        let at = (seq % 2) * COMMITTED_SLOT_LEN as u64;
        self.file
            .write_all_at(&slot, at)
            .map_err(io_err("write", &self.path))?;
        self.file
            .sync_data()
            .map_err(io_err("fdatasync", &self.path))
    }

    /// Persists the newest wanted value if it is not durable yet. Returns false once failed.
    fn persist_once(&self) -> bool {
        let _writing = self.writing.lock().unwrap_or_else(|e| e.into_inner());
        let (seq, id) = {
            let mut st = lock(&self.state);
            if st.failed {
                return false;
            }
            match st.wanted {
                Some(w) if st.durable != Some(w) => {
                    st.seq += 1;
                    (st.seq, w)
                }
                _ => return true,
            }
        };
        let res = self.write(seq, id);
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
        let path = dir.join(COMMITTED_FILE_NAME);
        let existed = path.exists();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err("open", &path))?;
        if !existed {
            file.sync_all().map_err(io_err("fsync", &path))?;
            fsync_dir(dir)?;
        }
        let len = file.metadata().map_err(io_err("stat", &path))?.len();
        if len > 2 * COMMITTED_SLOT_LEN as u64 {
            return Err(StorageError::Corrupt {
                path,
                offset: 0,
                reason: format!("file is {len} bytes, expected at most 64"),
            });
        }
        let mut buf = vec![0u8; len as usize];
        file.read_exact_at(&mut buf, 0)
            .map_err(io_err("read", &path))?;
        let loaded = decode_committed(&buf).map_err(|(offset, reason)| StorageError::Corrupt {
            path: path.clone(),
            offset,
            reason: format!("{reason} (both slots of the persisted commit index are damaged)"),
        })?;
        // The next write goes to the slot that does not hold the loaded value.
        let seq = [0usize, 1]
            .iter()
            .filter_map(|k| {
                let at = k * COMMITTED_SLOT_LEN;
                decode_slot(buf.get(at..at + COMMITTED_SLOT_LEN)?)
                    .ok()
                    .flatten()
            })
            .map(|s| s.seq)
            .max()
            .unwrap_or(0);
        let inner = Arc::new(Inner {
            file,
            writing: Mutex::new(()),
            path,
            state: Mutex::new(State {
                wanted: loaded,
                durable: loaded,
                seq,
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
                self.inner.path.display()
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
    fn a_torn_slot_falls_back_to_the_other() {
        let d = tempfile::tempdir().expect("tempdir");
        let (f, _) = CommittedFile::open(d.path()).expect("open");
        f.save(id(3, 1));
        f.flush().expect("flush");
        f.save(id(4, 1));
        f.flush().expect("flush");
        drop(f);
        let path = d.path().join(COMMITTED_FILE_NAME);
        let mut raw = std::fs::read(&path).expect("read");
        // Tear the slot that holds the newest value.
        let newest = (0..2)
            .find(|k| {
                let at = k * COMMITTED_SLOT_LEN;
                decode_slot(&raw[at..at + COMMITTED_SLOT_LEN])
                    .expect("valid slot")
                    .is_some_and(|s| s.id == id(4, 1))
            })
            .expect("a slot holds the newest value");
        let other = 1 - newest;
        raw[newest * COMMITTED_SLOT_LEN + 20] ^= 0xff;
        std::fs::write(&path, &raw).expect("write");
        let (_, loaded) = CommittedFile::open(d.path()).expect("reopen");
        assert_eq!(loaded, Some(id(3, 1)));
        // Both damaged: corruption, named.
        raw[other * COMMITTED_SLOT_LEN + 20] ^= 0xff;
        std::fs::write(&path, &raw).expect("write");
        match CommittedFile::open(d.path()) {
            Err(StorageError::Corrupt { path: p, .. }) => assert_eq!(p, path),
            other => panic!("expected Corrupt, got {:?}", other.map(|(_, l)| l)),
        }
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
