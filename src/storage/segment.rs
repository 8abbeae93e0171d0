//! One segment file: creation (preallocated), opening with a raw scan, positional writes and
//! zeroing, and the read-only shared memory map readers decode frames from.
//!
//! Writes go through `pwrite` (`FileExt::write_at`) on the file; reads go through a read-only
//! `MAP_SHARED` mapping of the whole preallocated file. On Linux both use the same page cache,
//! so bytes written with `write_at` are visible through the mapping as soon as the call returns.
//! The file is never shrunk while mapped (truncation zeroes bytes), so the mapping stays valid.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::Mmap;

use super::frame::{decode_frame, scan_segment, SegmentScan};
use super::meta_file::{fsync_dir, io_err};
use super::time_index::TimeIndex;
use super::StorageError;

/// File name of the segment whose first index is `base`.
pub fn segment_file_name(base: u64) -> String {
    format!("{base:020}.log")
}

/// Parses a segment file name back into its base index.
pub fn parse_segment_file_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(".log")?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// An open segment and the in-memory index over it.
pub(crate) struct Segment {
    pub base: u64,
    pub path: PathBuf,
    pub file: Arc<File>,
    pub map: Arc<Mmap>,
    pub capacity: u64,
    /// Byte position of entry `base + i`.
    pub positions: Vec<u64>,
    /// End of the last frame: where the next frame goes.
    pub write_pos: u64,
    pub time: TimeIndex,
}

fn preallocate(file: &File, path: &Path, len: u64) -> Result<(), StorageError> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let off = libc::off_t::try_from(len)
            .map_err(|_| StorageError::Invalid(format!("segment size {len} too large")))?;
        // SAFETY: fallocate on a valid, open file descriptor; no memory is passed.
        let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, off) };
        if rc == 0 {
            return Ok(());
        }
        // Filesystems without fallocate (e.g. some overlay/tmpfs setups) fall back to set_len.
    }
    file.set_len(len).map_err(io_err("preallocate", path))
}

fn map(file: &File, path: &Path) -> Result<Mmap, StorageError> {
    // SAFETY: the mapping is read-only; this process only changes the file through write_at
    // (visible through the shared mapping) and never shrinks it while mapped. Another process
    // truncating the file would fault readers; the data directory belongs to this node alone.
    unsafe { Mmap::map(file) }.map_err(io_err("mmap", path))
}

/// Drops a mapping's pages from this process's resident set: the scan at open touches every page
/// of every segment (the zero tail too), and only the newest few are read again soon. The page
/// cache keeps the data; a later read faults the page back in from it.
fn release_pages(map: &Mmap) {
    // SAFETY: the mapping is shared, file-backed and read-only. MADV_DONTNEED on such a mapping
    // only unmaps the pages: the next access, including through a slice a reader holds now,
    // reads what the page cache holds for the file, exactly what the mapping showed before
    // (it is `MAP_SHARED`, so it never had private copies to lose).
    let _ = unsafe { map.unchecked_advise(memmap2::UncheckedAdvice::DontNeed) };
}

/// A segment's map, held to drop its pages from the resident set after the log's lock is released
/// (see [`Segment::mapped_pages`]). Holding it keeps the mapping valid even if the segment is
/// purged meanwhile.
pub(crate) struct MappedPages(Arc<Mmap>);

impl MappedPages {
    /// Drops the pages from the resident set; the bytes stay in the page cache.
    pub fn release(&self) {
        release_pages(&self.0);
    }
}

impl Segment {
    /// Creates a preallocated, durable (file and directory fsynced) empty segment.
    pub fn create(dir: &Path, base: u64, capacity: u64) -> Result<Self, StorageError> {
        let path = dir.join(segment_file_name(base));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io_err("create segment", &path))?;
        preallocate(&file, &path, capacity)?;
        file.sync_all().map_err(io_err("fsync", &path))?;
        fsync_dir(dir)?;
        let map = map(&file, &path)?;
        Ok(Self {
            base,
            path,
            file: Arc::new(file),
            map: Arc::new(map),
            capacity,
            positions: Vec::new(),
            write_pos: 0,
            time: TimeIndex::default(),
        })
    }

    /// Opens an existing segment and scans it raw. The caller decides what the scan means.
    /// Returns `None` for a zero-length file (a crash between create and preallocate).
    pub fn open(path: &Path, base: u64) -> Result<Option<(Self, SegmentScan)>, StorageError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(io_err("open segment", path))?;
        let capacity = file.metadata().map_err(io_err("stat", path))?.len();
        if capacity == 0 {
            return Ok(None);
        }
        let map = map(&file, path)?;
        let scan = scan_segment(&map);
        release_pages(&map);
        let seg = Self {
            base,
            path: path.to_path_buf(),
            file: Arc::new(file),
            map: Arc::new(map),
            capacity,
            positions: Vec::new(),
            write_pos: 0,
            time: TimeIndex::default(),
        };
        Ok(Some((seg, scan)))
    }

    /// A handle for dropping this segment's pages from the process's resident set once it is
    /// sealed (a newer segment took over the appends). Readers of old offsets are few (catch-up,
    /// followers far behind); without this, every page ever read through the map stays counted
    /// in the node's RSS until the segment is purged. The bytes stay in the page cache, and a
    /// later read faults them back in, the same bytes. The handle outlives the log's lock, so
    /// the release (a system call walking the page tables) holds up no append or reader.
    pub fn mapped_pages(&self) -> MappedPages {
        MappedPages(Arc::clone(&self.map))
    }

    /// Number of entries in the segment.
    pub fn len(&self) -> u64 {
        self.positions.len() as u64
    }

    /// Index of the last entry, if any.
    pub fn last_index(&self) -> Option<u64> {
        (self.len() > 0).then(|| self.base + self.len() - 1)
    }

    /// Writes bytes at `pos` (not durable).
    pub fn write_at(&self, pos: u64, bytes: &[u8]) -> Result<(), StorageError> {
        self.file
            .write_all_at(bytes, pos)
            .map_err(|source| StorageError::Io {
                op: "write",
                path: self.path.clone(),
                source,
            })
    }

    /// Overwrites `[from, to)` with zeros and fdatasyncs.
    pub fn zero_range_durably(&self, from: u64, to: u64) -> Result<(), StorageError> {
        let zeros = vec![0u8; 64 * 1024];
        let mut pos = from;
        while pos < to {
            let n = (to - pos).min(zeros.len() as u64) as usize;
            self.write_at(pos, &zeros[..n])?;
            pos += n as u64;
        }
        self.file
            .sync_data()
            .map_err(io_err("fdatasync", &self.path))
    }

    /// Decodes the frame at `pos` with full verification, naming the file and offset on failure.
    pub fn frame_at(&self, pos: u64) -> Result<super::frame::Frame<'_>, StorageError> {
        let end = self.write_pos.min(self.map.len() as u64) as usize;
        let start = pos as usize;
        let buf = self.map.get(start..end).unwrap_or(&[]);
        decode_frame(buf).map_err(|e| StorageError::Corrupt {
            path: self.path.clone(),
            offset: pos,
            reason: e.to_string(),
        })
    }

    /// Deletes the file (the caller fsyncs the directory).
    pub fn remove_file(path: &Path) -> Result<(), StorageError> {
        match fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("remove segment", path)(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(segment_file_name(1), "00000000000000000001.log");
        assert_eq!(parse_segment_file_name("00000000000000000001.log"), Some(1));
        assert_eq!(parse_segment_file_name("1.log"), None);
        assert_eq!(
            parse_segment_file_name("00000000000000000001.log.tmp"),
            None
        );
    }

    #[test]
    fn writes_visible_through_map() {
        let d = tempfile::tempdir().expect("tempdir");
        let s = Segment::create(d.path(), 5, 4096).expect("create");
        assert_eq!(fs::metadata(&s.path).expect("stat").len(), 4096);
        s.write_at(10, b"abc").expect("write");
        assert_eq!(&s.map[10..13], b"abc");
        s.zero_range_durably(0, 4096).expect("zero");
        assert_eq!(&s.map[10..13], &[0, 0, 0]);
    }

    /// The safety argument of [`MappedPages::release`]: a slice a reader holds into
    /// the map across the release reads the same bytes afterwards (faulted back in from the page
    /// cache), and bytes written after the release show through it too.
    #[test]
    fn a_slice_held_across_a_release_reads_the_file_before_and_after() {
        let d = tempfile::tempdir().expect("tempdir");
        let s = Segment::create(d.path(), 1, 64 * 1024).expect("create");
        let pattern: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
        s.write_at(0, &pattern).expect("write");
        let held: &[u8] = &s.map[..];
        assert_eq!(held, &pattern[..], "the premise: the map shows the file");
        s.mapped_pages().release();
        assert_eq!(held, &pattern[..], "the same bytes after the release");
        s.mapped_pages().release();
        s.write_at(4096, b"after").expect("write");
        assert_eq!(&held[4096..4101], b"after", "a later write shows through");
    }
}
