//! Snapshot files. STUB.

use std::path::{Path, PathBuf};

use super::StorageError;

/// Where a snapshot file is and what it covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotInfo {
    pub offset: u64,
    pub term: u64,
    pub path: PathBuf,
    pub size: u64,
}

/// A snapshot read back and verified.
#[derive(Clone, Debug)]
pub struct SnapshotFile {
    pub offset: u64,
    pub term: u64,
    pub meta: Vec<u8>,
    pub payload: Vec<u8>,
}

/// The `snapshots/` directory.
pub struct SnapshotStore {}

impl SnapshotStore {
    pub fn open(_dir: &Path) -> Result<Self, StorageError> {
        todo!()
    }
    pub fn write(
        &self,
        _offset: u64,
        _term: u64,
        _meta: &[u8],
        _payload: &[u8],
    ) -> Result<SnapshotInfo, StorageError> {
        todo!()
    }
    pub fn latest(&self) -> Result<Option<SnapshotInfo>, StorageError> {
        todo!()
    }
    pub fn read(&self, _info: &SnapshotInfo) -> Result<SnapshotFile, StorageError> {
        todo!()
    }
    pub fn read_file(_path: &Path) -> Result<SnapshotFile, StorageError> {
        todo!()
    }
}
