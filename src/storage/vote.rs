//! The vote file: Raft's persisted vote, durable before `save` returns.
//!
//! The bytes are opaque to storage (the Raft layer serialises its vote). The file is
//! `<dir>/vote`, a small CRC-checked file replaced atomically (see `meta_file`).

use std::path::{Path, PathBuf};

use super::meta_file::AtomicFile;
use super::StorageError;

/// Magic of the vote file: `b"YKVT"` as a little-endian u32.
pub const VOTE_MAGIC: u32 = u32::from_le_bytes(*b"YKVT");
/// Name of the vote file inside the data directory.
pub const VOTE_FILE_NAME: &str = "vote";

/// A small CRC-checked file replaced atomically, holding Raft's vote.
pub struct VoteFile {
    file: AtomicFile,
}

impl VoteFile {
    /// Opens (creating `dir` if needed) the vote file in `dir`; removes a leftover `vote.tmp`.
    pub fn open(dir: &Path) -> Result<Self, StorageError> {
        Ok(Self {
            file: AtomicFile::open(dir, VOTE_FILE_NAME, VOTE_MAGIC)?,
        })
    }

    /// Where the vote file lives (for diagnostics).
    pub fn path(&self) -> PathBuf {
        self.file.path().to_path_buf()
    }

    /// Returns the saved bytes, `Ok(None)` if never saved, `Corrupt` if the file fails its checks.
    pub fn load(&self) -> Result<Option<Vec<u8>>, StorageError> {
        self.file.load()
    }

    /// Replaces the vote durably (tmp file, fsync, rename, fsync dir) before returning.
    pub fn save(&self, bytes: &[u8]) -> Result<(), StorageError> {
        self.file.save(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_load_reopen_corrupt() {
        let d = tempfile::tempdir().expect("tempdir");
        let v = VoteFile::open(d.path()).expect("open");
        assert_eq!(v.load().expect("load"), None);
        v.save(b"term=3,node=1").expect("save");
        v.save(b"term=4,node=2").expect("save");
        let v = VoteFile::open(d.path()).expect("reopen");
        assert_eq!(v.load().expect("load"), Some(b"term=4,node=2".to_vec()));
        assert!(!d.path().join("vote.tmp").exists());

        let mut raw = std::fs::read(v.path()).expect("read");
        let last = raw.len() - 1;
        raw[last] ^= 0x40;
        std::fs::write(v.path(), &raw).expect("write");
        match v.load() {
            Err(StorageError::Corrupt { path, offset, .. }) => {
                assert_eq!(path, v.path());
                assert_eq!(offset, 12);
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
        std::fs::write(v.path(), &raw[..5]).expect("write");
        assert!(matches!(v.load(), Err(StorageError::Corrupt { .. })));
    }

    #[test]
    fn leftover_tmp_is_removed() {
        let d = tempfile::tempdir().expect("tempdir");
        std::fs::write(d.path().join("vote.tmp"), b"junk").expect("write");
        let v = VoteFile::open(d.path()).expect("open");
        assert!(!d.path().join("vote.tmp").exists());
        assert_eq!(v.load().expect("load"), None);
    }
}
