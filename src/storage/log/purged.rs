//! The last-purged file (`log/last_purged`): the id of the newest entry removed from the front
//! of the log, written durably before any segment is deleted, and its codec (16 bytes: index
//! u64 LE, term u64 LE; see segments-format.md).

use std::path::Path;

use super::{corrupt, EntryId};
use crate::storage::StorageError;

/// Name of the last-purged file inside the log directory.
pub const LAST_PURGED_FILE_NAME: &str = "last_purged";
/// Magic of the last-purged file: `b"YKLP"` as a little-endian u32.
pub const LAST_PURGED_MAGIC: u32 = u32::from_le_bytes(*b"YKLP");

/// The body of the last-purged file for `id`.
pub(super) fn encode_purged(id: EntryId) -> Vec<u8> {
    let mut body = Vec::with_capacity(16);
    body.extend_from_slice(&id.index.to_le_bytes());
    body.extend_from_slice(&id.term.to_le_bytes());
    body
}

pub(super) fn decode_purged(body: &[u8], path: &Path) -> Result<EntryId, StorageError> {
    if body.len() != 16 {
        return Err(corrupt(
            path,
            16,
            format!("last-purged body is {} bytes, expected 16", body.len()),
        ));
    }
    let mut i = [0u8; 8];
    let mut t = [0u8; 8];
    i.copy_from_slice(&body[..8]);
    t.copy_from_slice(&body[8..]);
    Ok(EntryId {
        index: u64::from_le_bytes(i),
        term: u64::from_le_bytes(t),
    })
}

/// Decodes the body of the last-purged file (index u64 LE, term u64 LE); for `yakt-dump`.
pub fn decode_last_purged(body: &[u8]) -> Option<EntryId> {
    decode_purged(body, Path::new("")).ok()
}
