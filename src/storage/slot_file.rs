//! A file holding one durable log position (an entry id) that is rewritten in place often:
//! the persisted commit index (`committed`) and the acknowledged watermark of the log
//! (`log/acked`).
//!
//! Layout (64 bytes): two 32-byte slots written alternately, one write in flight at a time,
//! each `magic u32 LE | crc32 u32 LE | sequence u64 LE | index u64 LE | term u64 LE`, the CRC
//! (crc32fast) covering the 24 bytes after it. A write can tear only the slot it writes; the
//! other still holds the previous value. An all-zero slot is empty. The slot with the highest
//! sequence that verifies wins; two damaged slots are corruption.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::log::EntryId;
use super::meta_file::{fsync_dir, io_err};
use super::StorageError;

/// Size of one slot.
pub const SLOT_LEN: usize = 32;

/// One decoded slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Slot {
    seq: u64,
    id: EntryId,
}

fn encode_slot(magic: u32, seq: u64, id: EntryId) -> [u8; SLOT_LEN] {
    let mut b = [0u8; SLOT_LEN];
    b[0..4].copy_from_slice(&magic.to_le_bytes());
    b[8..16].copy_from_slice(&seq.to_le_bytes());
    b[16..24].copy_from_slice(&id.index.to_le_bytes());
    b[24..32].copy_from_slice(&id.term.to_le_bytes());
    let crc = crc32fast::hash(&b[8..32]);
    b[4..8].copy_from_slice(&crc.to_le_bytes());
    b
}

/// `Ok(None)` for an empty (all-zero) slot, `Err` for a damaged one.
fn decode_slot(magic: u32, b: &[u8]) -> Result<Option<Slot>, String> {
    if b.iter().all(|&x| x == 0) {
        return Ok(None);
    }
    if b.len() != SLOT_LEN {
        return Err(format!("slot is {} bytes", b.len()));
    }
    let u32_at = |a: usize| u32::from_le_bytes([b[a], b[a + 1], b[a + 2], b[a + 3]]);
    let u64_at = |a: usize| {
        let mut x = [0u8; 8];
        x.copy_from_slice(&b[a..a + 8]);
        u64::from_le_bytes(x)
    };
    if u32_at(0) != magic {
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

/// The newest verifying slot of a whole file, with its sequence; `(byte offset, reason)` when
/// no slot verifies and none is empty (both damaged).
fn decode_newest(magic: u32, buf: &[u8]) -> Result<Option<Slot>, (u64, String)> {
    let mut best: Option<Slot> = None;
    let mut damaged = None;
    let mut valid_or_empty = 0;
    for k in 0..2 {
        let at = k * SLOT_LEN;
        let slot = buf.get(at..(at + SLOT_LEN).min(buf.len())).unwrap_or(&[]);
        if slot.is_empty() {
            valid_or_empty += 1;
            continue;
        }
        match decode_slot(magic, slot) {
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
        (Some(s), _) => Ok(Some(s)),
        (None, Some(d)) if valid_or_empty == 0 => Err(d),
        // One slot empty, the other torn: the very first write was cut.
        (None, _) => Ok(None),
    }
}

/// Decodes a whole slot file with slot magic `magic`: the newest valid slot's entry id, `None`
/// when no slot was ever written, or `(byte offset, reason)` when both slots are damaged.
pub fn decode_slot_file(magic: u32, buf: &[u8]) -> Result<Option<EntryId>, (u64, String)> {
    decode_newest(magic, buf).map(|s| s.map(|s| s.id))
}

/// An open slot file. Writes are synchronous and serialised.
pub struct SlotFile {
    file: File,
    path: PathBuf,
    magic: u32,
    /// Sequence number of the last slot written; held across a write.
    seq: Mutex<u64>,
}

impl SlotFile {
    /// Opens (creating durably if needed) `dir/name`; also returns the value it holds.
    pub fn open(
        dir: &Path,
        name: &str,
        magic: u32,
    ) -> Result<(Self, Option<EntryId>), StorageError> {
        let path = dir.join(name);
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
        if len > 2 * SLOT_LEN as u64 {
            return Err(StorageError::Corrupt {
                path,
                offset: 0,
                reason: format!("file is {len} bytes, expected at most {}", 2 * SLOT_LEN),
            });
        }
        let mut buf = vec![0u8; len as usize];
        file.read_exact_at(&mut buf, 0)
            .map_err(io_err("read", &path))?;
        let newest =
            decode_newest(magic, &buf).map_err(|(offset, reason)| StorageError::Corrupt {
                path: path.clone(),
                offset,
                reason: format!("{reason} (both slots are damaged)"),
            })?;
        let seq = newest.map_or(0, |s| s.seq);
        Ok((
            Self {
                file,
                path,
                magic,
                seq: Mutex::new(seq),
            },
            newest.map(|s| s.id),
        ))
    }

    /// Writes `id` into the slot that does not hold the current value, and fdatasyncs it.
    pub fn write(&self, id: EntryId) -> Result<(), StorageError> {
        let mut seq = self.seq.lock().unwrap_or_else(|e| e.into_inner());
        let next = *seq + 1;
        let slot = encode_slot(self.magic, next, id);
        let at = (next % 2) * SLOT_LEN as u64;
        self.file
            .write_all_at(&slot, at)
            .map_err(io_err("write", &self.path))?;
        self.file
            .sync_data()
            .map_err(io_err("fdatasync", &self.path))?;
        *seq = next;
        Ok(())
    }

    /// Where the file lives (for diagnostics).
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAGIC: u32 = u32::from_le_bytes(*b"TEST");

    fn id(index: u64, term: u64) -> EntryId {
        EntryId { index, term }
    }

    #[test]
    fn a_torn_slot_falls_back_to_the_other_and_two_are_corrupt() {
        let d = tempfile::tempdir().expect("tempdir");
        let (f, v) = SlotFile::open(d.path(), "x", MAGIC).expect("open");
        assert_eq!(v, None);
        f.write(id(3, 1)).expect("write");
        f.write(id(4, 1)).expect("write");
        let path = f.path().to_path_buf();
        drop(f);
        let mut raw = std::fs::read(&path).expect("read");
        // Sequence 2 (the newest) sits in slot 0.
        raw[20] ^= 0xff;
        std::fs::write(&path, &raw).expect("write");
        let (f, v) = SlotFile::open(d.path(), "x", MAGIC).expect("reopen");
        assert_eq!(v, Some(id(3, 1)));
        drop(f);
        raw[SLOT_LEN + 20] ^= 0xff;
        std::fs::write(&path, &raw).expect("write");
        match SlotFile::open(d.path(), "x", MAGIC) {
            Err(StorageError::Corrupt { path: p, .. }) => assert_eq!(p, path),
            other => panic!("expected Corrupt, got {:?}", other.map(|(_, v)| v)),
        }
    }

    #[test]
    fn writes_alternate_and_the_newest_wins_after_reopen() {
        let d = tempfile::tempdir().expect("tempdir");
        let (f, _) = SlotFile::open(d.path(), "x", MAGIC).expect("open");
        for i in 1..=5 {
            f.write(id(i, 1)).expect("write");
        }
        drop(f);
        let (f, v) = SlotFile::open(d.path(), "x", MAGIC).expect("reopen");
        assert_eq!(v, Some(id(5, 1)));
        f.write(id(2, 1))
            .expect("a lower value is written as asked");
        drop(f);
        let (_, v) = SlotFile::open(d.path(), "x", MAGIC).expect("reopen");
        assert_eq!(v, Some(id(2, 1)));
    }

    #[test]
    fn decode_never_panics_and_reads_empty_files_as_none() {
        for n in 0..80 {
            let _ = decode_slot_file(MAGIC, &vec![0xA5; n]);
        }
        assert_eq!(decode_slot_file(MAGIC, &[]), Ok(None));
        assert_eq!(decode_slot_file(MAGIC, &[0u8; 64]), Ok(None));
    }
}
