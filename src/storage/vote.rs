//! The vote file. STUB.

use std::path::Path;

use super::StorageError;

/// A small CRC-checked file replaced atomically.
pub struct VoteFile {}

impl VoteFile {
    pub fn open(_dir: &Path) -> Result<Self, StorageError> {
        todo!()
    }
    pub fn load(&self) -> Result<Option<Vec<u8>>, StorageError> {
        todo!()
    }
    pub fn save(&self, _bytes: &[u8]) -> Result<(), StorageError> {
        todo!()
    }
}
