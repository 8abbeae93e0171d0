//! Reading and damaging a stopped node's files the way a bad disk or a power loss would,
//! written from `segments-format.md` alone (no yakt code), so the tests also check the spec.

use std::path::{Path, PathBuf};

/// Frame magic `YKF1`.
const FRAME_MAGIC: u32 = u32::from_le_bytes(*b"YKF1");
/// Frame header length.
const FRAME_HEADER: usize = 40;

/// The segment files of a data directory, oldest first.
pub fn segments(data_dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(data_dir.join("log"))
        .expect("read log dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    out.sort();
    out
}

/// One frame of a segment: where it starts, its payload length and its index.
#[derive(Clone, Copy, Debug)]
pub struct FrameAt {
    pub pos: usize,
    pub len: usize,
    pub index: u64,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

/// The frames of a segment file, read from byte 0 until a header is not a frame's.
pub fn frames(path: &Path) -> Vec<FrameAt> {
    let bytes = std::fs::read(path).expect("read segment");
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + FRAME_HEADER <= bytes.len() && u32_at(&bytes, pos) == FRAME_MAGIC {
        let len = u32_at(&bytes, pos + 8) as usize;
        if pos + FRAME_HEADER + len > bytes.len() {
            break;
        }
        out.push(FrameAt {
            pos,
            len,
            index: u64_at(&bytes, pos + 16),
        });
        pos += FRAME_HEADER + len;
    }
    out
}

/// The newest segment that holds a frame, with its frames.
pub fn newest_frames(data_dir: &Path) -> (PathBuf, Vec<FrameAt>) {
    for seg in segments(data_dir).into_iter().rev() {
        let f = frames(&seg);
        if !f.is_empty() {
            return (seg, f);
        }
    }
    panic!("{} holds no frame", data_dir.display());
}

fn write_at(path: &Path, at: usize, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open segment for writing");
    f.write_all_at(bytes, at as u64).expect("write segment");
    f.sync_all().expect("sync segment");
}

/// Flips three bytes in the middle of the last frame's payload (a complete frame whose CRC
/// now fails: corruption, not a torn write). Returns the file and the frame's index.
pub fn flip_last_frame(data_dir: &Path) -> (PathBuf, u64) {
    let (seg, f) = newest_frames(data_dir);
    let last = *f.last().expect("a frame");
    assert!(
        last.len >= 8,
        "the last frame's payload is too short to damage"
    );
    let mid = last.pos + FRAME_HEADER + last.len / 2 - 1;
    let bytes = std::fs::read(&seg).expect("read");
    let flipped: Vec<u8> = bytes[mid..mid + 3].iter().map(|b| b ^ 0x5a).collect();
    write_at(&seg, mid, &flipped);
    (seg, last.index)
}

/// Zeroes the last `n` frames of the newest segment, as if they had never reached the disk
/// (a disk that lied about fsync). Returns the index of the first entry lost.
pub fn lose_last_frames(data_dir: &Path, n: usize) -> u64 {
    let (seg, f) = newest_frames(data_dir);
    assert!(f.len() >= n, "fewer than {n} frames in the newest segment");
    let first = f[f.len() - n];
    let last = f[f.len() - 1];
    let end = last.pos + FRAME_HEADER + last.len;
    write_at(&seg, first.pos, &vec![0u8; end - first.pos]);
    first.index
}

/// Writes a torn partial frame after the last whole frame of the newest segment, as a power
/// loss leaves one (segments-format.md, "Torn tail versus corruption"): a frame that crosses the
/// next 512-byte sector boundary, of which only the bytes before that boundary reached the disk
/// (the sectors after it stay zero, as preallocated).
pub fn append_torn_frame(data_dir: &Path) {
    let (seg, f) = newest_frames(data_dir);
    let last = *f.last().expect("a frame");
    let at = last.pos + FRAME_HEADER + last.len;
    // The first sector boundary after the header; the frame runs 100 bytes past it.
    let boundary = (at + FRAME_HEADER + 1).div_ceil(512) * 512;
    let payload = boundary - at - FRAME_HEADER + 100;
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&FRAME_MAGIC.to_le_bytes());
    bytes.extend_from_slice(&0xdead_beefu32.to_le_bytes());
    bytes.extend_from_slice(&(payload as u32).to_le_bytes());
    bytes.extend_from_slice(&[1, 0, 0, 0]);
    bytes.extend_from_slice(&(last.index + 1).to_le_bytes());
    bytes.extend_from_slice(&1u64.to_le_bytes());
    bytes.extend_from_slice(&1u64.to_le_bytes());
    bytes.extend(std::iter::repeat_n(0x2a, boundary - at - FRAME_HEADER));
    write_at(&seg, at, &bytes);
}

/// The persisted commit index of a data directory (`committed`: two 32-byte slots, the valid
/// one with the higher sequence wins), if any.
pub fn persisted_commit(data_dir: &Path) -> Option<u64> {
    let bytes = std::fs::read(data_dir.join("committed")).ok()?;
    let mut best: Option<(u64, u64)> = None;
    for k in 0..2 {
        let s = bytes.get(k * 32..k * 32 + 32)?;
        if u32_at(s, 0) != u32::from_le_bytes(*b"YKCM") {
            continue;
        }
        if crc32fast::hash(&s[8..32]) != u32_at(s, 4) {
            continue;
        }
        let (seq, index) = (u64_at(s, 8), u64_at(s, 16));
        if best.is_none_or(|(bs, _)| seq > bs) {
            best = Some((seq, index));
        }
    }
    best.map(|(_, index)| index)
}
