//! The truncation intent: what `truncate_after` is about to cut, persisted before it cuts.
//!
//! Zeroing the tail of a segment is one write that the kernel may write back in any order of
//! pages; a crash in the middle can leave zeroed sectors followed by frames that were not zeroed
//! yet, which recovery must (and does) call corruption. So truncation first saves the index it
//! keeps up to in `<log dir>/truncating` (a small CRC-checked file replaced atomically), then
//! deletes and zeroes, then removes the file. Recovery that finds the file finishes the cut
//! before it classifies anything: every crash point leaves a prefix of the log.

use std::path::Path;

use super::meta_file::AtomicFile;
use super::StorageError;

/// Name of the truncation-intent file inside the log directory.
pub const TRUNCATING_FILE_NAME: &str = "truncating";
/// Magic of the truncation-intent file: `b"YKTR"` as a little-endian u32.
pub const TRUNCATING_MAGIC: u32 = u32::from_le_bytes(*b"YKTR");

/// The persisted intent of an unfinished `truncate_after`.
pub(crate) struct TruncationIntent {
    file: AtomicFile,
}

impl TruncationIntent {
    /// Opens the intent file of the log in `dir` (it need not exist).
    pub(crate) fn open(dir: &Path) -> Result<Self, StorageError> {
        Ok(Self {
            file: AtomicFile::open(dir, TRUNCATING_FILE_NAME, TRUNCATING_MAGIC)?,
        })
    }

    /// Records durably that every entry after `keep` (all entries for `None`) is being removed.
    pub(crate) fn save(&self, keep: Option<u64>) -> Result<(), StorageError> {
        // Body: 0u8 for "none", or 1u8 followed by the index (u64 LE).
        let mut body = Vec::with_capacity(9);
        match keep {
            None => body.push(0),
            Some(i) => {
                body.push(1);
                body.extend_from_slice(&i.to_le_bytes());
            }
        }
        self.file.save(&body)
    }

    /// The unfinished truncation, if any: `Some(keep)` where `keep` is as given to `save`.
    pub(crate) fn load(&self) -> Result<Option<Option<u64>>, StorageError> {
        let Some(body) = self.file.load()? else {
            return Ok(None);
        };
        match body.as_slice() {
            [0] => Ok(Some(None)),
            [1, rest @ ..] if rest.len() == 8 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(rest);
                Ok(Some(Some(u64::from_le_bytes(b))))
            }
            _ => Err(StorageError::Corrupt {
                path: self.file.path().to_path_buf(),
                offset: 16,
                reason: format!(
                    "truncation intent body of {} bytes is malformed",
                    body.len()
                ),
            }),
        }
    }

    /// Marks the truncation finished (the file is removed, directory fsynced).
    pub(crate) fn clear(&self) -> Result<(), StorageError> {
        self.file.remove()
    }
}
