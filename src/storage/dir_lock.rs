//! One process per data directory: an exclusive `flock` on `<data dir>/LOCK`, held for the
//! process's lifetime.
//!
//! Two nodes on one directory would interleave appends into the same segments and overwrite each
//! other's vote, corrupting the log in ways recovery cannot tell from a torn write. The lock is
//! advisory and released by the kernel when the process exits (SIGKILL included), so a crash
//! never leaves a stale lock behind.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use super::error::StorageError;

/// The lock file's name inside the data directory.
pub const LOCK_FILE_NAME: &str = "LOCK";

/// The held lock; dropping it (or exiting) releases it.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
    path: PathBuf,
}

impl DirLock {
    /// Takes the lock on `dir`, or fails at once naming the directory if another process holds it.
    pub fn acquire(dir: &Path) -> Result<Self, StorageError> {
        let path = dir.join(LOCK_FILE_NAME);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|source| StorageError::Io {
                op: "open lock file",
                path: path.clone(),
                source,
            })?;
        // SAFETY: flock only reads the descriptor, which `file` keeps open.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                return Err(StorageError::Locked { path });
            }
            return Err(StorageError::Io {
                op: "lock",
                path,
                source: err,
            });
        }
        Ok(Self { _file: file, path })
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_on_one_dir_fails_until_the_first_is_dropped() {
        let d = tempfile::tempdir().expect("tempdir");
        let first = DirLock::acquire(d.path()).expect("first lock");
        // flock locks belong to the open file description, so a second open in the same
        // process conflicts exactly as another process would.
        match DirLock::acquire(d.path()) {
            Err(StorageError::Locked { path }) => assert_eq!(path, first.path()),
            other => panic!("expected Locked, got {other:?}"),
        }
        drop(first);
        DirLock::acquire(d.path()).expect("lock after release");
    }
}
