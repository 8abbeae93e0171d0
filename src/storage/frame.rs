//! The on-disk frame of one log entry: encoding and a pure, panic-free decoder.
//!
//! Layout (all little-endian, see `segments-format.md`):
//!
//! ```text
//! 0  magic u32 = FRAME_MAGIC     4  crc u32          8  length u32 (payload bytes)
//! 12 version u8 = 1              13 flags u8 = 0     14 reserved u16 = 0
//! 16 index u64                   24 term u64         32 timestamp_ms u64
//! 40 payload[length]
//! ```
//!
//! The CRC-32 (IEEE) covers bytes 8..40 of the header followed by the payload.

/// Magic number opening every frame: the bytes `b"YKF1"` read as a little-endian u32.
pub const FRAME_MAGIC: u32 = u32::from_le_bytes(*b"YKF1");
/// Size of the fixed frame header in bytes.
pub const FRAME_HEADER_LEN: usize = 40;
/// The only frame version this code writes and reads.
pub const FRAME_VERSION: u8 = 1;

/// A decoded frame borrowing its payload from the buffer it was decoded from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Raft log index.
    pub index: u64,
    /// Raft term.
    pub term: u64,
    /// Milliseconds since the Unix epoch; 0 = none.
    pub timestamp_ms: u64,
    /// The CRC stored in the header (already verified when returned by [`decode_frame`]).
    pub crc: u32,
    /// The payload bytes (opaque to storage).
    pub payload: &'a [u8],
}

impl Frame<'_> {
    /// Total bytes the frame occupies on disk (header + payload).
    pub fn encoded_len(&self) -> usize {
        FRAME_HEADER_LEN + self.payload.len()
    }
}

/// Why bytes at a position are not a valid frame.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The header is all zeros: the end of written data in a preallocated segment.
    #[error("zero header (end of data)")]
    Zero,
    /// Fewer bytes than the header, or than the header's length field, remain.
    #[error("frame cut short: need {needed} bytes, {available} available")]
    Truncated {
        /// Bytes the frame needs.
        needed: u64,
        /// Bytes present.
        available: u64,
    },
    /// The magic number is wrong.
    #[error("bad magic {0:#010x}")]
    BadMagic(u32),
    /// Unknown version or non-zero reserved bits.
    #[error("unsupported frame version {version} / flags {flags} / reserved {reserved}")]
    Unsupported {
        /// Version byte found.
        version: u8,
        /// Flags byte found.
        flags: u8,
        /// Reserved field found.
        reserved: u16,
    },
    /// The checksum does not match; `index` is the (unverified) index field.
    #[error("crc mismatch: stored {stored:#010x}, computed {computed:#010x} (unverified index field {index})")]
    BadCrc {
        /// CRC stored in the header.
        stored: u32,
        /// CRC computed over the bytes.
        computed: u32,
        /// The unverified index field.
        index: u64,
    },
}

fn u16_at(buf: &[u8], at: usize) -> u16 {
    let mut b = [0u8; 2];
    b.copy_from_slice(&buf[at..at + 2]);
    u16::from_le_bytes(b)
}

fn u32_at(buf: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&buf[at..at + 4]);
    u32::from_le_bytes(b)
}

fn u64_at(buf: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[at..at + 8]);
    u64::from_le_bytes(b)
}

/// Computes the frame CRC: header bytes 8..40 then the payload.
fn frame_crc(header_tail: &[u8], payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(header_tail);
    h.update(payload);
    h.finalize()
}

/// Decodes the frame at the start of `buf` (trailing bytes are ignored).
///
/// Pure and total: never panics and never allocates, whatever the bytes, so fuzzers and the
/// dump tool can call it on arbitrary input.
pub fn decode_frame(buf: &[u8]) -> Result<Frame<'_>, FrameError> {
    if buf.len() < FRAME_HEADER_LEN {
        if buf.iter().all(|&b| b == 0) {
            return Err(FrameError::Zero);
        }
        return Err(FrameError::Truncated {
            needed: FRAME_HEADER_LEN as u64,
            available: buf.len() as u64,
        });
    }
    let header = &buf[..FRAME_HEADER_LEN];
    if header.iter().all(|&b| b == 0) {
        return Err(FrameError::Zero);
    }
    let magic = u32_at(header, 0);
    if magic != FRAME_MAGIC {
        return Err(FrameError::BadMagic(magic));
    }
    let stored = u32_at(header, 4);
    let len = u32_at(header, 8) as usize;
    let version = header[12];
    let flags = header[13];
    let reserved = u16_at(header, 14);
    if version != FRAME_VERSION || flags != 0 || reserved != 0 {
        return Err(FrameError::Unsupported {
            version,
            flags,
            reserved,
        });
    }
    let index = u64_at(header, 16);
    let available = buf.len() - FRAME_HEADER_LEN;
    if len > available {
        return Err(FrameError::Truncated {
            needed: (FRAME_HEADER_LEN + len) as u64,
            available: buf.len() as u64,
        });
    }
    let payload = &buf[FRAME_HEADER_LEN..FRAME_HEADER_LEN + len];
    let computed = frame_crc(&header[8..], payload);
    if computed != stored {
        return Err(FrameError::BadCrc {
            stored,
            computed,
            index,
        });
    }
    Ok(Frame {
        index,
        term: u64_at(header, 24),
        timestamp_ms: u64_at(header, 32),
        crc: stored,
        payload,
    })
}

/// Appends the encoded frame for one entry to `out`.
///
/// Fails only if the payload does not fit the u32 length field.
pub fn encode_frame(
    index: u64,
    term: u64,
    timestamp_ms: u64,
    payload: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), String> {
    let len = u32::try_from(payload.len()).map_err(|_| {
        format!(
            "payload of {} bytes exceeds the u32 frame length",
            payload.len()
        )
    })?;
    let mut header = [0u8; FRAME_HEADER_LEN];
    header[0..4].copy_from_slice(&FRAME_MAGIC.to_le_bytes());
    header[8..12].copy_from_slice(&len.to_le_bytes());
    header[12] = FRAME_VERSION;
    header[16..24].copy_from_slice(&index.to_le_bytes());
    header[24..32].copy_from_slice(&term.to_le_bytes());
    header[32..40].copy_from_slice(&timestamp_ms.to_le_bytes());
    let crc = frame_crc(&header[8..], payload);
    header[4..8].copy_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(payload);
    Ok(())
}

/// Where a valid frame was found by [`scan_segment`] (payload is `buf[payload_pos..][..payload_len]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScannedFrame {
    /// Byte offset of the frame in the segment.
    pub pos: u64,
    /// Raft log index.
    pub index: u64,
    /// Raft term.
    pub term: u64,
    /// Milliseconds since the Unix epoch; 0 = none.
    pub timestamp_ms: u64,
    /// Payload length in bytes.
    pub payload_len: u32,
}

impl ScannedFrame {
    /// Byte range of the payload inside the scanned buffer.
    pub fn payload_range(&self) -> std::ops::Range<usize> {
        let start = self.pos as usize + FRAME_HEADER_LEN;
        start..start + self.payload_len as usize
    }
    /// Position just after this frame.
    pub fn end(&self) -> u64 {
        self.pos + FRAME_HEADER_LEN as u64 + u64::from(self.payload_len)
    }
}

/// A run of bytes that is not a valid frame, starting where a frame was expected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadRegion {
    /// Byte offset where the bad frame starts.
    pub pos: u64,
    /// Bytes up to the next valid frame (or to the last non-zero byte for a torn tail).
    pub len: u64,
    /// The (unverified) index field, when the header was readable.
    pub index: Option<u64>,
    /// Why the frame there is invalid.
    pub reason: String,
}

/// Everything a raw scan of one segment's bytes found; shared by recovery and `yakt-dump`.
#[derive(Clone, Debug, Default)]
pub struct SegmentScan {
    /// Valid frames in file order.
    pub frames: Vec<ScannedFrame>,
    /// Bad regions that no torn write explains: followed by a valid frame, or a last frame
    /// that [`is_torn_write`] rejects (complete on disk yet failing its checks).
    pub corrupt: Vec<BadRegion>,
    /// A last bad region shaped like an interrupted write ([`is_torn_write`]): a torn tail if in
    /// the newest segment.
    pub torn_tail: Option<BadRegion>,
    /// End of the last valid frame (0 if none): where the next frame would be written.
    pub data_end: u64,
    /// One past the last non-zero byte of the buffer (0 if all zeros).
    pub written_end: u64,
}

/// Sector size the torn-write rule assumes: a device persists a write in whole sectors of at
/// least this size (4 KiB sectors are whole multiples of it, so their boundaries are included).
pub const SECTOR_BYTES: u64 = 512;

/// Whether the bad frame at `pos`, the last thing in `buf` (`written_end` is one past the last
/// non-zero byte of `buf`), is what an interrupted write can leave behind.
///
/// An interrupted write persists some sectors of the frame and leaves the rest as they were:
/// zero, since segments are preallocated with zeros and truncation zeroes. So the frame is torn
/// if it is cut short by the end of the file (its header, or the length its header declares,
/// runs past the file), or if from some sector boundary strictly inside its extent to the end
/// of the file every byte is zero. A frame whose every sector holds written bytes and that still
/// fails its checks (a flipped bit, a bad CRC) is no torn write: it is corruption.
pub fn is_torn_write(buf: &[u8], pos: usize, written_end: usize) -> bool {
    let len = buf.len() as u64;
    let pos64 = pos as u64;
    // The frame's extent: the declared length when the header is readable, the header otherwise.
    let header_end = pos64 + FRAME_HEADER_LEN as u64;
    let frame_end = match buf.get(pos..pos + FRAME_HEADER_LEN) {
        Some(h) if u32_at(h, 0) == FRAME_MAGIC => header_end + u64::from(u32_at(h, 8)),
        _ => header_end,
    };
    if frame_end > len {
        return true;
    }
    // The first sector boundary after `pos` from which the rest of the file is all zero.
    let zero_from = (written_end.max(pos + 1) as u64).div_ceil(SECTOR_BYTES) * SECTOR_BYTES;
    zero_from < frame_end
}

/// Finds the first position >= `from` where a valid frame decodes.
fn resync(buf: &[u8], from: usize) -> Option<usize> {
    let magic = FRAME_MAGIC.to_le_bytes();
    let mut q = from;
    while q + FRAME_HEADER_LEN <= buf.len() {
        if buf[q..q + 4] == magic && decode_frame(&buf[q..]).is_ok() {
            return Some(q);
        }
        q += 1;
    }
    None
}

fn bad_index(err: &FrameError, at: &[u8]) -> Option<u64> {
    match err {
        FrameError::BadCrc { index, .. } => Some(*index),
        FrameError::Truncated { .. } | FrameError::Unsupported { .. }
            if at.len() >= 24 && u32_at(at, 0) == FRAME_MAGIC =>
        {
            Some(u64_at(at, 16))
        }
        _ => None,
    }
}

/// Scans a whole segment's bytes, tolerating damage: returns every valid frame, every bad
/// region followed by valid data (corruption) and a final bad region with nothing valid after
/// it (torn tail). Zeros after the last frame are the normal end of data.
pub fn scan_segment(buf: &[u8]) -> SegmentScan {
    let written_end = buf.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
    let mut scan = SegmentScan {
        written_end: written_end as u64,
        ..Default::default()
    };
    let mut pos = 0usize;
    while pos < written_end {
        match decode_frame(&buf[pos..]) {
            Ok(f) => {
                scan.frames.push(ScannedFrame {
                    pos: pos as u64,
                    index: f.index,
                    term: f.term,
                    timestamp_ms: f.timestamp_ms,
                    payload_len: f.payload.len() as u32,
                });
                pos += f.encoded_len();
                scan.data_end = pos as u64;
            }
            Err(e) => {
                let index = bad_index(&e, &buf[pos..]);
                match resync(buf, pos + 1) {
                    Some(q) => {
                        scan.corrupt.push(BadRegion {
                            pos: pos as u64,
                            len: (q - pos) as u64,
                            index,
                            reason: e.to_string(),
                        });
                        pos = q;
                    }
                    None => {
                        let torn = is_torn_write(buf, pos, written_end);
                        let region = BadRegion {
                            pos: pos as u64,
                            len: (written_end - pos) as u64,
                            index,
                            reason: if torn {
                                e.to_string()
                            } else {
                                format!("{e}; the last frame is complete on disk, so this is no torn write")
                            },
                        };
                        if torn {
                            scan.torn_tail = Some(region);
                        } else {
                            scan.corrupt.push(region);
                        }
                        break;
                    }
                }
            }
        }
    }
    scan
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn enc(index: u64, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        encode_frame(index, 3, 1000 + index, payload, &mut v).expect("encode");
        v
    }

    #[test]
    fn round_trip() {
        let v = enc(7, b"hello");
        let f = decode_frame(&v).expect("decode");
        assert_eq!(
            (f.index, f.term, f.timestamp_ms, f.payload),
            (7, 3, 1007, &b"hello"[..])
        );
        assert_eq!(f.encoded_len(), v.len());
    }

    #[test]
    fn errors() {
        assert_eq!(decode_frame(&[0u8; 100]), Err(FrameError::Zero));
        assert_eq!(decode_frame(&[0u8; 3]), Err(FrameError::Zero));
        let v = enc(7, b"hello");
        assert!(matches!(
            decode_frame(&v[..v.len() - 1]),
            Err(FrameError::Truncated { .. })
        ));
        let mut bad = v.clone();
        bad[FRAME_HEADER_LEN + 1] ^= 1;
        assert!(matches!(
            decode_frame(&bad),
            Err(FrameError::BadCrc { index: 7, .. })
        ));
        let mut bad = v;
        bad[0] ^= 1;
        assert!(matches!(decode_frame(&bad), Err(FrameError::BadMagic(_))));
    }

    #[test]
    fn scan_classifies() {
        let mut buf = Vec::new();
        for i in 1..=3 {
            buf.extend(enc(i, &[i as u8; 10]));
        }
        let second = enc(1, &[1; 10]).len();
        let mut corrupt = buf.clone();
        corrupt.extend([0u8; 64]);
        corrupt[second + 45] ^= 0xff;
        let s = scan_segment(&corrupt);
        assert_eq!(s.frames.len(), 2);
        assert_eq!(s.corrupt.len(), 1);
        assert_eq!(s.corrupt[0].pos, second as u64);
        assert_eq!(s.corrupt[0].index, Some(2));
        assert!(s.torn_tail.is_none());

        // A flipped byte in the last frame's last bytes: complete on disk, so corruption.
        let mut flipped = buf.clone();
        let n = flipped.len();
        flipped[n - 2] ^= 0xff;
        flipped.extend([0u8; 64]);
        let s = scan_segment(&flipped);
        assert_eq!(s.frames.len(), 2);
        assert!(s.torn_tail.is_none());
        assert_eq!(s.corrupt.len(), 1);
        assert_eq!(s.corrupt[0].pos, 2 * second as u64);
        assert_eq!(s.corrupt[0].index, Some(3));
        assert_eq!(s.data_end, 2 * second as u64);
    }

    /// A segment: a 300-byte-payload frame at 0..340, then a 1000-byte one at 340..1380,
    /// preallocated to 4096 bytes. Sector boundaries inside the last frame: 512 and 1024.
    fn two_frames() -> Vec<u8> {
        let mut buf = enc(1, &[0x11; 300]);
        buf.extend(enc(2, &[0x22; 1000]));
        assert_eq!(buf.len(), 1380);
        buf.resize(4096, 0);
        buf
    }

    fn classify(buf: &[u8]) -> (&'static str, Option<u64>) {
        let s = scan_segment(buf);
        let bad = usize::from(s.torn_tail.is_some()) + s.corrupt.len();
        assert_eq!(s.frames.len() + bad, 2, "the first frame always survives");
        match (&s.torn_tail, s.corrupt.as_slice()) {
            (Some(t), []) => ("torn", Some(t.pos)),
            (None, [c]) => ("corrupt", Some(c.pos)),
            (None, []) => ("clean", None),
            other => panic!("unexpected scan {other:?}"),
        }
    }

    #[test]
    fn torn_versus_corrupt_last_frame() {
        // Intact.
        assert_eq!(classify(&two_frames()), ("clean", None));
        // Three bytes flipped in the middle of the last payload: corruption, at the tail too.
        let mut b = two_frames();
        for x in &mut b[800..803] {
            *x ^= 0x5a;
        }
        assert_eq!(classify(&b), ("corrupt", Some(340)));
        // Cut at a sector boundary, the rest zero (the last sectors were never written): torn.
        for boundary in [512usize, 1024] {
            let mut b = two_frames();
            b[boundary..].fill(0);
            assert_eq!(classify(&b), ("torn", Some(340)), "zero from {boundary}");
        }
        // The header is whole, its length runs into zeros (no payload sector written): torn.
        let mut b = enc(1, &[0x11; 432]);
        assert_eq!(b.len(), 472);
        b.extend(enc(2, &[0x22; 1000]));
        b.resize(4096, 0);
        b[512..].fill(0);
        assert_eq!(classify(&b), ("torn", Some(472)));
        // The header itself straddles the boundary and its second half is zero: torn.
        let mut b = enc(1, &[0x11; 450]);
        b.extend(enc(2, &[0x22; 1000]));
        b.resize(4096, 0);
        b[512..].fill(0);
        assert_eq!(classify(&b), ("torn", Some(490)));
        // Cut short by the end of the file (the header's length runs past it): torn.
        let b = two_frames();
        assert_eq!(classify(&b[..1000]), ("torn", Some(340)));
        assert_eq!(classify(&b[..360]), ("torn", Some(340)));
        // Zeros from a sector boundary, but a flipped bit in the last sector: no torn write
        // leaves a lone non-zero byte in a sector it never wrote.
        let mut b = two_frames();
        b[1024..].fill(0);
        b[1200] = 0x01;
        assert_eq!(classify(&b), ("corrupt", Some(340)));
        // Zeros only inside the last sector (from 1100, not a boundary): that sector holds
        // written bytes, so the damage is not an unwritten sector: corruption.
        let mut b = two_frames();
        b[1100..1380].fill(0);
        assert_eq!(classify(&b), ("corrupt", Some(340)));
        // Garbage after the end of the last frame: corruption.
        let mut b = two_frames();
        b[1300] ^= 1;
        b[2000] = 7;
        assert_eq!(classify(&b), ("corrupt", Some(340)));
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_frame(&bytes);
            let _ = scan_segment(&bytes);
        }

        #[test]
        fn decode_mutated_never_panics(payload in proptest::collection::vec(any::<u8>(), 0..64), at in 0usize..104, x in 1u8..=255) {
            let mut v = enc(1, &payload);
            let at = at % v.len();
            v[at] ^= x;
            prop_assert!(decode_frame(&v).is_err());
        }
    }
}
