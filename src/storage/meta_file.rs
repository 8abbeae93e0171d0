//! Small CRC-checked files replaced atomically (the vote file, the last-purged file).
//!
//! Layout (little-endian): magic u32, version u16 = 1, flags u16 = 0, length u32, crc u32, then
//! `length` body bytes. The CRC-32 covers header bytes 0..12 and the body. The file is replaced
//! by writing `<name>.tmp`, fsyncing it, renaming it over `<name>` and fsyncing the directory.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use super::StorageError;

/// Header size of a small atomic file.
pub const META_HEADER_LEN: usize = 16;
/// Version written in the header.
pub const META_VERSION: u16 = 1;
/// Largest body accepted when reading (these files hold a few dozen bytes).
pub const META_MAX_BODY: usize = 1 << 20;

pub(crate) fn io_err(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StorageError {
    let path = path.to_path_buf();
    move |source| StorageError::Io { op, path, source }
}

/// Fsyncs a directory so that creations, renames and deletions in it are durable.
pub(crate) fn fsync_dir(dir: &Path) -> Result<(), StorageError> {
    let f = File::open(dir).map_err(io_err("open dir", dir))?;
    f.sync_all().map_err(io_err("fsync dir", dir))
}

/// Creates `dir` and any missing ancestors durably: each new directory's parent is fsynced, so
/// a power loss cannot take away a directory (and the files in it) that later writes counted
/// as durable.
pub(crate) fn create_dir_durably(dir: &Path) -> Result<(), StorageError> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dir_durably(parent)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(io_err("create dir", dir)(e)),
    }
    match dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => fsync_dir(parent),
        None => Ok(()),
    }
}

/// Encodes a small file: header then body.
pub fn encode_meta(magic: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(META_HEADER_LEN + body.len());
    out.extend_from_slice(&magic.to_le_bytes());
    out.extend_from_slice(&META_VERSION.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    let mut h = crc32fast::Hasher::new();
    h.update(&out[0..12]);
    h.update(body);
    out.extend_from_slice(&h.finalize().to_le_bytes());
    out.extend_from_slice(body);
    out
}

/// Decodes a small file; pure and panic-free. The error is `(byte offset, reason)`.
pub fn decode_meta(magic: u32, buf: &[u8]) -> Result<&[u8], (u64, String)> {
    if buf.len() < META_HEADER_LEN {
        return Err((
            0,
            format!(
                "file is {} bytes, shorter than the {META_HEADER_LEN}-byte header",
                buf.len()
            ),
        ));
    }
    let rd = |a: usize| u32::from_le_bytes([buf[a], buf[a + 1], buf[a + 2], buf[a + 3]]);
    let got = rd(0);
    if got != magic {
        return Err((0, format!("bad magic {got:#010x}, expected {magic:#010x}")));
    }
    let version = u16::from_le_bytes([buf[4], buf[5]]);
    let flags = u16::from_le_bytes([buf[6], buf[7]]);
    if version != META_VERSION || flags != 0 {
        return Err((4, format!("unsupported version {version} / flags {flags}")));
    }
    let len = rd(8) as usize;
    if len != buf.len() - META_HEADER_LEN {
        return Err((
            8,
            format!(
                "length field {len} but {} body bytes present",
                buf.len() - META_HEADER_LEN
            ),
        ));
    }
    let body = &buf[META_HEADER_LEN..];
    let mut h = crc32fast::Hasher::new();
    h.update(&buf[0..12]);
    h.update(body);
    let computed = h.finalize();
    let stored = rd(12);
    if computed != stored {
        return Err((
            12,
            format!("crc mismatch: stored {stored:#010x}, computed {computed:#010x}"),
        ));
    }
    Ok(body)
}

/// A small atomically replaced file at `dir/name`.
#[derive(Debug, Clone)]
pub(crate) struct AtomicFile {
    dir: PathBuf,
    path: PathBuf,
    tmp: PathBuf,
    magic: u32,
}

impl AtomicFile {
    /// Creates `dir` if needed and removes a leftover `<name>.tmp` from an interrupted save.
    pub(crate) fn open(dir: &Path, name: &str, magic: u32) -> Result<Self, StorageError> {
        create_dir_durably(dir)?;
        let f = Self {
            dir: dir.to_path_buf(),
            path: dir.join(name),
            tmp: dir.join(format!("{name}.tmp")),
            magic,
        };
        match fs::remove_file(&f.tmp) {
            Ok(()) => fsync_dir(dir)?,
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("remove", &f.tmp)(e)),
        }
        Ok(f)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Reads and verifies the body; `Ok(None)` if the file does not exist.
    pub(crate) fn load(&self) -> Result<Option<Vec<u8>>, StorageError> {
        let len = match fs::metadata(&self.path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("stat", &self.path)(e)),
        };
        if len > (META_HEADER_LEN + META_MAX_BODY) as u64 {
            return Err(StorageError::Corrupt {
                path: self.path.clone(),
                offset: 0,
                reason: format!("file is {len} bytes, too large"),
            });
        }
        let buf = match fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("read", &self.path)(e)),
        };
        decode_meta(self.magic, &buf)
            .map(|b| Some(b.to_vec()))
            .map_err(|(offset, reason)| StorageError::Corrupt {
                path: self.path.clone(),
                offset,
                reason,
            })
    }

    /// Deletes the file durably (directory fsynced); a missing file is not an error.
    pub(crate) fn remove(&self) -> Result<(), StorageError> {
        match fs::remove_file(&self.path) {
            Ok(()) => fsync_dir(&self.dir),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("remove", &self.path)(e)),
        }
    }

    /// Replaces the file durably: write tmp, fsync, rename, fsync dir.
    pub(crate) fn save(&self, body: &[u8]) -> Result<(), StorageError> {
        if body.len() > META_MAX_BODY {
            return Err(StorageError::Invalid(format!(
                "{} bytes is too large for {}",
                body.len(),
                self.path.display()
            )));
        }
        let bytes = encode_meta(self.magic, body);
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&self.tmp)
            .map_err(io_err("create", &self.tmp))?;
        f.write_all(&bytes).map_err(io_err("write", &self.tmp))?;
        f.sync_all().map_err(io_err("fsync", &self.tmp))?;
        drop(f);
        fs::rename(&self.tmp, &self.path).map_err(io_err("rename", &self.tmp))?;
        fsync_dir(&self.dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn directories_are_created_with_their_ancestors() {
        let d = tempfile::tempdir().expect("tempdir");
        let deep = d.path().join("a").join("b").join("c");
        create_dir_durably(&deep).expect("create");
        assert!(deep.is_dir());
        create_dir_durably(&deep).expect("exists already");
    }

    #[test]
    fn save_load_corrupt() {
        let d = tempfile::tempdir().expect("tempdir");
        let f = AtomicFile::open(d.path(), "x", 0x1234_5678).expect("open");
        assert_eq!(f.load().expect("load"), None);
        f.save(b"abc").expect("save");
        assert_eq!(f.load().expect("load"), Some(b"abc".to_vec()));
        f.save(b"").expect("save");
        assert_eq!(f.load().expect("load"), Some(vec![]));
        let mut raw = fs::read(f.path()).expect("read");
        raw[5] ^= 1;
        fs::write(f.path(), &raw).expect("write");
        assert!(matches!(f.load(), Err(StorageError::Corrupt { .. })));
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode_meta(0x1234_5678, &bytes);
        }
    }
}
