//! The recovering mark: a directory that has not yet shown it holds what its seat needs.
//!
//! Whether a node may vote is decided at start from what its directory holds (new, a log cut
//! below what it acknowledged, a vote file gone). That decision must survive a restart: a wiped
//! directory is new only at its first start, and a node that lost entries and was killed before
//! a leader caught it up may look whole at its next start (its vote file rewritten, a watermark
//! file recreated). So the node saves this mark, durably and before it takes part in Raft, while
//! it is recovering, and removes it once it votes again. The body is one flag byte.

use std::path::Path;

use super::meta_file::AtomicFile;
use super::StorageError;

/// Name of the recovering mark inside the data directory.
pub const RECOVERING_FILE_NAME: &str = "recovering";
/// Magic of the recovering mark: `b"YKRC"` as a little-endian u32.
pub const RECOVERING_MAGIC: u32 = u32::from_le_bytes(*b"YKRC");

const NEW_DIRECTORY: u8 = 1;
const LOST_DATA: u8 = 2;

/// What a recovering directory has not shown yet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Unproven {
    /// The directory was created empty (a first start, or a wipe): nothing an earlier holder of
    /// its id acknowledged is in it.
    pub new_directory: bool,
    /// It lost something it had acknowledged (log entries, its vote, its watermark).
    pub lost_data: bool,
}

impl Unproven {
    /// True when there is nothing to prove.
    pub fn is_empty(self) -> bool {
        !self.new_directory && !self.lost_data
    }

    /// Both marks together.
    pub fn union(self, other: Unproven) -> Unproven {
        Unproven {
            new_directory: self.new_directory || other.new_directory,
            lost_data: self.lost_data || other.lost_data,
        }
    }

    fn to_byte(self) -> u8 {
        (if self.new_directory { NEW_DIRECTORY } else { 0 })
            | (if self.lost_data { LOST_DATA } else { 0 })
    }
}

/// Decodes a recovering mark's body (one flag byte of 1, 2 or 3); pure, for `yakt-dump` too.
pub fn decode_recovering(body: &[u8]) -> Result<Unproven, String> {
    match body {
        [b] if *b != 0 && *b & !(NEW_DIRECTORY | LOST_DATA) == 0 => Ok(Unproven {
            new_directory: b & NEW_DIRECTORY != 0,
            lost_data: b & LOST_DATA != 0,
        }),
        _ => Err(format!(
            "recovering mark body {body:?} is not one flag byte of 1, 2 or 3"
        )),
    }
}

/// The mark file of one data directory.
pub struct RecoveringMark {
    file: AtomicFile,
}

impl RecoveringMark {
    /// Opens the mark of the data directory `dir` (it need not exist).
    pub fn open(dir: &Path) -> Result<Self, StorageError> {
        Ok(Self {
            file: AtomicFile::open(dir, RECOVERING_FILE_NAME, RECOVERING_MAGIC)?,
        })
    }

    /// What an earlier start had not shown yet (empty when there is no mark).
    pub fn load(&self) -> Result<Unproven, StorageError> {
        let Some(body) = self.file.load()? else {
            return Ok(Unproven::default());
        };
        decode_recovering(&body).map_err(|reason| StorageError::Corrupt {
            path: self.file.path().to_path_buf(),
            offset: 16,
            reason,
        })
    }

    /// Records `what` durably (removes the mark when it is empty).
    pub fn save(&self, what: Unproven) -> Result<(), StorageError> {
        if what.is_empty() {
            return self.clear();
        }
        self.file.save(&[what.to_byte()])
    }

    /// Removes the mark durably: the node has shown what it had to.
    pub fn clear(&self) -> Result<(), StorageError> {
        self.file.remove()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_survives_reopening_until_cleared() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mark = RecoveringMark::open(dir.path()).expect("open");
        assert!(mark.load().expect("load").is_empty());
        let both = Unproven {
            new_directory: true,
            lost_data: false,
        }
        .union(Unproven {
            new_directory: false,
            lost_data: true,
        });
        mark.save(both).expect("save");
        let again = RecoveringMark::open(dir.path()).expect("reopen");
        assert_eq!(again.load().expect("load"), both);
        again.clear().expect("clear");
        assert!(RecoveringMark::open(dir.path())
            .and_then(|m| m.load())
            .expect("load")
            .is_empty());
    }

    #[test]
    fn a_malformed_mark_is_corruption_naming_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mark = RecoveringMark::open(dir.path()).expect("open");
        mark.file.save(&[9]).expect("save raw");
        let err = mark.load().expect_err("flag 9 is not a mark");
        assert!(err.to_string().contains(RECOVERING_FILE_NAME), "{err}");
    }
}
