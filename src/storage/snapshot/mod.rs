//! Snapshot files: `<dir>/<20-digit offset>-<term>.snap`, written atomically and verified on read.
//!
//! Layout (little-endian): magic u32 `b"YKSN"`, version u16 = 1, flags u16 = 0, offset u64,
//! term u64, meta_len u64, payload_len u64, crc u32 (over header bytes 0..40, meta, payload),
//! then `meta_len` meta bytes and `payload_len` payload bytes. Nothing follows.

use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use super::meta_file::{create_dir_durably, fsync_dir, io_err};
use super::StorageError;

/// Magic of a snapshot file: `b"YKSN"` as a little-endian u32.
pub const SNAPSHOT_MAGIC: u32 = u32::from_le_bytes(*b"YKSN");
/// Header size of a snapshot file.
pub const SNAPSHOT_HEADER_LEN: usize = 44;
/// Version written in the header.
pub const SNAPSHOT_VERSION: u16 = 1;

/// Where a snapshot file is and what it covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// Last log index the snapshot includes.
    pub offset: u64,
    /// Term of that entry.
    pub term: u64,
    /// The `.snap` file.
    pub path: PathBuf,
    /// File size in bytes.
    pub size: u64,
}

/// A snapshot read back and verified.
#[derive(Clone, Debug)]
pub struct SnapshotFile {
    /// Last log index the snapshot includes.
    pub offset: u64,
    /// Term of that entry.
    pub term: u64,
    /// Raft layer's snapshot metadata (opaque here).
    pub meta: Vec<u8>,
    /// The serialised image.
    pub payload: Vec<u8>,
}

/// A decoded snapshot borrowing from the file bytes (what [`decode_snapshot`] returns).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotView<'a> {
    /// Last log index the snapshot includes.
    pub offset: u64,
    /// Term of that entry.
    pub term: u64,
    /// The verified CRC.
    pub crc: u32,
    /// Raft layer's snapshot metadata.
    pub meta: &'a [u8],
    /// The serialised image.
    pub payload: &'a [u8],
}

/// The header fields of a snapshot, readable even when the CRC fails (for `yakt-dump`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotHeader {
    /// Last log index the snapshot includes.
    pub offset: u64,
    /// Term of that entry.
    pub term: u64,
    /// Length of the meta section.
    pub meta_len: u64,
    /// Length of the payload section.
    pub payload_len: u64,
    /// Stored CRC (not verified by the header parse).
    pub crc: u32,
}

fn u64_at(b: &[u8], a: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[a..a + 8]);
    u64::from_le_bytes(x)
}

/// Parses the header only (magic, version, fields); does not check lengths or CRC.
pub fn decode_snapshot_header(buf: &[u8]) -> Result<SnapshotHeader, (u64, String)> {
    if buf.len() < SNAPSHOT_HEADER_LEN {
        return Err((
            0,
            format!(
                "{} bytes, shorter than the {SNAPSHOT_HEADER_LEN}-byte header",
                buf.len()
            ),
        ));
    }
    let magic = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if magic != SNAPSHOT_MAGIC {
        return Err((0, format!("bad magic {magic:#010x}")));
    }
    let version = u16::from_le_bytes([buf[4], buf[5]]);
    let flags = u16::from_le_bytes([buf[6], buf[7]]);
    if version != SNAPSHOT_VERSION || flags != 0 {
        return Err((4, format!("unsupported version {version} / flags {flags}")));
    }
    Ok(SnapshotHeader {
        offset: u64_at(buf, 8),
        term: u64_at(buf, 16),
        meta_len: u64_at(buf, 24),
        payload_len: u64_at(buf, 32),
        crc: u32::from_le_bytes([buf[40], buf[41], buf[42], buf[43]]),
    })
}

/// Decodes and verifies a whole snapshot file's bytes. Pure, panic-free, allocation-free.
/// The error is `(byte offset, reason)`.
pub fn decode_snapshot(buf: &[u8]) -> Result<SnapshotView<'_>, (u64, String)> {
    let h = decode_snapshot_header(buf)?;
    let body = (buf.len() - SNAPSHOT_HEADER_LEN) as u64;
    match h.meta_len.checked_add(h.payload_len) {
        Some(n) if n == body => {}
        _ => {
            return Err((
                24,
                format!(
                    "meta_len {} + payload_len {} does not match the {body} bytes after the header",
                    h.meta_len, h.payload_len
                ),
            ))
        }
    }
    let meta_end = SNAPSHOT_HEADER_LEN + h.meta_len as usize;
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&buf[..40]);
    hasher.update(&buf[SNAPSHOT_HEADER_LEN..]);
    let computed = hasher.finalize();
    if computed != h.crc {
        return Err((
            40,
            format!(
                "crc mismatch: stored {:#010x}, computed {computed:#010x}",
                h.crc
            ),
        ));
    }
    Ok(SnapshotView {
        offset: h.offset,
        term: h.term,
        crc: h.crc,
        meta: &buf[SNAPSHOT_HEADER_LEN..meta_end],
        payload: &buf[meta_end..],
    })
}

/// Encodes a snapshot file's bytes.
pub fn encode_snapshot(offset: u64, term: u64, meta: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(SNAPSHOT_HEADER_LEN + meta.len() + payload.len());
    out.extend_from_slice(&SNAPSHOT_MAGIC.to_le_bytes());
    out.extend_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&offset.to_le_bytes());
    out.extend_from_slice(&term.to_le_bytes());
    out.extend_from_slice(&(meta.len() as u64).to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&out[..40]);
    hasher.update(meta);
    hasher.update(payload);
    out.extend_from_slice(&hasher.finalize().to_le_bytes());
    out.extend_from_slice(meta);
    out.extend_from_slice(payload);
    out
}

/// The file name of the snapshot at `offset`/`term`.
pub fn snapshot_file_name(offset: u64, term: u64) -> String {
    format!("{offset:020}-{term}.snap")
}

/// Parses `<20 digits>-<term>.snap` into `(offset, term)`.
pub fn parse_snapshot_file_name(name: &str) -> Option<(u64, u64)> {
    let stem = name.strip_suffix(".snap")?;
    let (o, t) = stem.split_once('-')?;
    if o.len() != 20
        || !o.bytes().all(|b| b.is_ascii_digit())
        || t.is_empty()
        || !t.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    Some((o.parse().ok()?, t.parse().ok()?))
}

/// Lists the `.snap` files of a snapshot directory by name, highest `(offset, term)` first
/// (unverified), without opening it as a [`SnapshotStore`] (which tidies the directory): an
/// offline reader of a running node's directory must not change it. A file deleted while the
/// listing runs (snapshot retention) is left out.
pub fn list_snapshot_files(dir: &Path) -> Result<Vec<SnapshotInfo>, StorageError> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).map_err(io_err("read dir", dir))? {
        let e = e.map_err(io_err("read dir", dir))?;
        let name = e.file_name();
        if let Some((offset, term)) = parse_snapshot_file_name(&name.to_string_lossy()) {
            let size = match e.metadata() {
                Ok(m) => m.len(),
                Err(err) if err.kind() == ErrorKind::NotFound => continue,
                Err(err) => return Err(io_err("stat", &e.path())(err)),
            };
            out.push(SnapshotInfo {
                offset,
                term,
                path: e.path(),
                size,
            });
        }
    }
    out.sort_by_key(|s| std::cmp::Reverse((s.offset, s.term)));
    Ok(out)
}

/// Snapshot files kept by default: the newest and the one before, so that a newest snapshot
/// that fails verification at start has a fallback the log still covers.
pub const DEFAULT_KEEP_SNAPSHOTS: usize = 2;
/// Fewest snapshot files kept, whatever is asked: one file alone has no fallback.
pub const MIN_KEEP_SNAPSHOTS: usize = 2;

/// The snapshot chosen at start by [`SnapshotStore::load_newest_verified`].
pub struct ChosenSnapshot<T> {
    /// The newest snapshot that verified, its contents and what the caller decoded from it.
    pub loaded: Option<(SnapshotInfo, SnapshotFile, T)>,
    /// Newer snapshot files that failed verification, with why (already logged at WARN).
    pub skipped: Vec<(SnapshotInfo, String)>,
}

impl<T> ChosenSnapshot<T> {
    /// Whether the chosen snapshot covers every purged log entry (`last_purged`: the log's
    /// last purged index): if not, entries exist nowhere on this node and it must not start.
    pub fn covers(&self, last_purged: Option<u64>) -> Result<(), StorageError> {
        let Some(purged) = last_purged else {
            return Ok(());
        };
        let newest = self
            .loaded
            .as_ref()
            .map(|(i, _, _)| (i.path.clone(), i.offset));
        if newest.as_ref().is_some_and(|(_, offset)| *offset >= purged) {
            return Ok(());
        }
        Err(StorageError::SnapshotsDoNotCoverLog {
            last_purged: purged,
            newest_verified: newest,
            skipped: self
                .skipped
                .iter()
                .map(|(i, why)| (i.path.clone(), why.clone()))
                .collect(),
        })
    }
}

/// The `snapshots/` directory.
pub struct SnapshotStore {
    dir: PathBuf,
    keep: usize,
}

impl SnapshotStore {
    /// Opens `dir` keeping [`DEFAULT_KEEP_SNAPSHOTS`] snapshot files.
    pub fn open(dir: &Path) -> Result<Self, StorageError> {
        Self::open_keeping(dir, DEFAULT_KEEP_SNAPSHOTS)
    }

    /// Opens `dir` (creating it), removes temp files left by an interrupted `write`, and keeps
    /// the newest `keep` snapshot files from now on (at least [`MIN_KEEP_SNAPSHOTS`]).
    pub fn open_keeping(dir: &Path, keep: usize) -> Result<Self, StorageError> {
        create_dir_durably(dir)?;
        let mut removed = false;
        for e in fs::read_dir(dir).map_err(io_err("read dir", dir))? {
            let e = e.map_err(io_err("read dir", dir))?;
            if e.file_name().to_string_lossy().ends_with(".tmp") {
                fs::remove_file(e.path()).map_err(io_err("remove", &e.path()))?;
                removed = true;
            }
        }
        if removed {
            fsync_dir(dir)?;
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            keep: keep.max(MIN_KEEP_SNAPSHOTS),
        })
    }

    /// How many snapshot files this store keeps.
    pub fn keep(&self) -> usize {
        self.keep
    }

    /// The oldest snapshot file kept (by name, unverified): the log must not be purged past its
    /// offset, or falling back to it would leave a hole between it and the log.
    pub fn oldest_kept(&self) -> Result<Option<SnapshotInfo>, StorageError> {
        Ok(self.list()?.pop())
    }

    /// Loads the newest snapshot that verifies: its CRC and header, and `decode` (the caller's
    /// check that the contents decode, returning what it decoded). Each newer file that fails is
    /// logged at WARN and reported in `skipped`.
    pub fn load_newest_verified<T>(
        &self,
        decode: impl Fn(&SnapshotFile) -> Result<T, String>,
    ) -> Result<ChosenSnapshot<T>, StorageError> {
        let mut skipped = Vec::new();
        for info in self.list()? {
            let why = match Self::read_file(&info.path) {
                Ok(f) if f.offset != info.offset || f.term != info.term => format!(
                    "header says offset {} term {}, the file name says {} {}",
                    f.offset, f.term, info.offset, info.term
                ),
                Ok(f) => match decode(&f) {
                    Ok(t) => {
                        return Ok(ChosenSnapshot {
                            loaded: Some((info, f, t)),
                            skipped,
                        })
                    }
                    Err(e) => format!("contents do not decode: {e}"),
                },
                Err(e) => e.to_string(),
            };
            tracing::warn!(path = %info.path.display(), reason = %why, "snapshot fails verification; trying the one before it");
            skipped.push((info, why));
        }
        Ok(ChosenSnapshot {
            loaded: None,
            skipped,
        })
    }

    /// Renames a snapshot file that failed verification to `<name>.corrupt`: kept for
    /// inspection, no longer listed, counted in retention or offered to followers.
    pub fn quarantine(&self, info: &SnapshotInfo) -> Result<PathBuf, StorageError> {
        let mut name = info.path.as_os_str().to_owned();
        name.push(".corrupt");
        let to = PathBuf::from(name);
        fs::rename(&info.path, &to).map_err(io_err("rename", &info.path))?;
        fsync_dir(&self.dir)?;
        Ok(to)
    }

    /// Lists `.snap` files by name, highest `(offset, term)` first (unverified).
    pub fn list(&self) -> Result<Vec<SnapshotInfo>, StorageError> {
        list_snapshot_files(&self.dir)
    }

    /// Writes a snapshot durably (tmp, fsync, rename, fsync dir), then deletes the files beyond
    /// the newest `keep` (directory fsynced).
    pub fn write(
        &self,
        offset: u64,
        term: u64,
        meta: &[u8],
        payload: &[u8],
    ) -> Result<SnapshotInfo, StorageError> {
        let name = snapshot_file_name(offset, term);
        let path = self.dir.join(&name);
        let tmp = self.dir.join(format!("{name}.tmp"));
        let bytes = encode_snapshot(offset, term, meta, payload);
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(io_err("create", &tmp))?;
        f.write_all(&bytes).map_err(io_err("write", &tmp))?;
        f.sync_all().map_err(io_err("fsync", &tmp))?;
        drop(f);
        fs::rename(&tmp, &path).map_err(io_err("rename", &tmp))?;
        fsync_dir(&self.dir)?;
        let mut deleted = false;
        for old in self.list()?.into_iter().skip(self.keep) {
            match fs::remove_file(&old.path) {
                Ok(()) => deleted = true,
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("remove", &old.path)(e)),
            }
        }
        if deleted {
            fsync_dir(&self.dir)?;
        }
        Ok(SnapshotInfo {
            offset,
            term,
            path,
            size: bytes.len() as u64,
        })
    }

    /// The highest snapshot that verifies; files that fail verification are skipped with a warning.
    pub fn latest(&self) -> Result<Option<SnapshotInfo>, StorageError> {
        Ok(self.latest_file()?.map(|(info, _)| info))
    }

    /// The highest snapshot that verifies, with its contents: each file is read once (a large
    /// snapshot is tens of megabytes; reading it to verify and again to load doubled restart time).
    pub fn latest_file(&self) -> Result<Option<(SnapshotInfo, SnapshotFile)>, StorageError> {
        for info in self.list()? {
            match Self::read_file(&info.path) {
                Ok(s) if s.offset == info.offset && s.term == info.term => {
                    return Ok(Some((info, s)))
                }
                Ok(s) => {
                    tracing::warn!(path = %info.path.display(), header_offset = s.offset, header_term = s.term, "snapshot header does not match its file name; skipping")
                }
                Err(e) => {
                    tracing::warn!(path = %info.path.display(), error = %e, "snapshot fails verification; skipping")
                }
            }
        }
        Ok(None)
    }

    /// Reads and verifies the snapshot described by `info`.
    pub fn read(&self, info: &SnapshotInfo) -> Result<SnapshotFile, StorageError> {
        Self::read_file(&info.path)
    }

    /// Reads and verifies any snapshot file (used by `yakt-dump` too).
    ///
    /// Allocates only the file's actual size; the header's lengths are checked against it.
    pub fn read_file(path: &Path) -> Result<SnapshotFile, StorageError> {
        let mut buf = fs::read(path).map_err(io_err("read", path))?;
        let v = decode_snapshot(&buf).map_err(|(offset, reason)| StorageError::Corrupt {
            path: path.to_path_buf(),
            offset,
            reason,
        })?;
        let (offset, term, meta) = (v.offset, v.term, v.meta.to_vec());
        // The payload is the file's tail: keep the buffer rather than copying it.
        let start = buf.len() - v.payload.len();
        buf.drain(..start);
        Ok(SnapshotFile {
            offset,
            term,
            meta,
            payload: buf,
        })
    }
}

#[cfg(test)]
mod tests;
