//! The identity file: who this data directory is (its incarnation) and which cluster it
//! belongs to (the cluster id).
//!
//! The incarnation is a UUID made once, when the data directory is created; a wiped directory
//! gets a new one, so the cluster can tell a node that kept its log from one that lost it (the
//! directory id of Kafka's KIP-853). The cluster id is fixed when a cluster is first started and
//! copied into every directory that joins it; a node refuses Raft traffic from another cluster.
//!
//! The file is `<dir>/identity`, a small CRC-checked file replaced atomically (see `meta_file`);
//! its body is 33 bytes: the incarnation (16), a flag byte (1 when a cluster id follows), the
//! cluster id (16, zero when absent).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use uuid::Uuid;

use super::meta_file::AtomicFile;
use super::StorageError;

/// Magic of the identity file: `b"YKID"` as a little-endian u32.
pub const IDENTITY_MAGIC: u32 = u32::from_le_bytes(*b"YKID");
/// Name of the identity file inside the data directory.
pub const IDENTITY_FILE_NAME: &str = "identity";
/// Length of the identity file's body.
pub const IDENTITY_BODY_LEN: usize = 33;

/// Whether the data directory was new when the identity file was opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The directory held no state: a first start, or a wiped directory. Such a node may have
    /// lost whatever it had acknowledged as an earlier incarnation, so it must not vote until a
    /// leader has caught it up.
    Fresh,
    /// The directory held state but no identity file (made by a yakt from before incarnations):
    /// an incarnation was made now for the state it already had.
    Upgraded,
    /// The identity file was there.
    Existing,
}

/// A data directory's identity: its incarnation and, once known, its cluster id.
pub struct Identity {
    file: AtomicFile,
    incarnation: Uuid,
    cluster_id: Mutex<Option<Uuid>>,
}

fn encode(incarnation: Uuid, cluster_id: Option<Uuid>) -> Vec<u8> {
    let mut body = Vec::with_capacity(IDENTITY_BODY_LEN);
    body.extend_from_slice(incarnation.as_bytes());
    body.push(u8::from(cluster_id.is_some()));
    body.extend_from_slice(cluster_id.unwrap_or(Uuid::nil()).as_bytes());
    body
}

/// Decodes an identity body: `(incarnation, cluster id)`.
pub fn decode_identity(body: &[u8]) -> Result<(Uuid, Option<Uuid>), String> {
    if body.len() != IDENTITY_BODY_LEN {
        return Err(format!(
            "identity body is {} bytes, expected {IDENTITY_BODY_LEN}",
            body.len()
        ));
    }
    let uuid_at = |at: usize| {
        let mut b = [0u8; 16];
        b.copy_from_slice(&body[at..at + 16]);
        Uuid::from_bytes(b)
    };
    let cluster_id = match body[16] {
        0 => None,
        1 => Some(uuid_at(17)),
        x => return Err(format!("identity cluster-id flag is {x}, expected 0 or 1")),
    };
    Ok((uuid_at(0), cluster_id))
}

impl Identity {
    /// Opens the identity of the data directory `dir`, making one durably if there is none.
    /// `has_state` says whether the directory already holds Raft state (a log, a vote or
    /// snapshots); it decides between [`Origin::Fresh`] and [`Origin::Upgraded`].
    pub fn open(dir: &Path, has_state: bool) -> Result<(Self, Origin), StorageError> {
        let file = AtomicFile::open(dir, IDENTITY_FILE_NAME, IDENTITY_MAGIC)?;
        if let Some(body) = file.load()? {
            let (incarnation, cluster_id) =
                decode_identity(&body).map_err(|reason| StorageError::Corrupt {
                    path: file.path().to_path_buf(),
                    offset: 0,
                    reason,
                })?;
            let id = Self {
                file,
                incarnation,
                cluster_id: Mutex::new(cluster_id),
            };
            return Ok((id, Origin::Existing));
        }
        let incarnation = Uuid::new_v4();
        file.save(&encode(incarnation, None))?;
        let origin = if has_state {
            Origin::Upgraded
        } else {
            Origin::Fresh
        };
        let id = Self {
            file,
            incarnation,
            cluster_id: Mutex::new(None),
        };
        Ok((id, origin))
    }

    /// Where the file lives (for diagnostics).
    pub fn path(&self) -> PathBuf {
        self.file.path().to_path_buf()
    }

    /// This data directory's incarnation.
    pub fn incarnation(&self) -> Uuid {
        self.incarnation
    }

    /// The cluster this directory belongs to, once known.
    pub fn cluster_id(&self) -> Option<Uuid> {
        *self.cluster_id.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records the cluster id durably. Setting the id it already has is a no-op; setting a
    /// different one is refused (a directory never changes clusters).
    pub fn set_cluster_id(&self, id: Uuid) -> Result<(), StorageError> {
        let mut current = self.cluster_id.lock().unwrap_or_else(|e| e.into_inner());
        match *current {
            Some(c) if c == id => Ok(()),
            Some(c) => Err(StorageError::Invalid(format!(
                "this data directory belongs to cluster {c}, not {id}"
            ))),
            None => {
                self.file.save(&encode(self.incarnation, Some(id)))?;
                *current = Some(id);
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_once_then_kept_and_cluster_id_fixed() {
        let d = tempfile::tempdir().expect("tempdir");
        let (a, origin) = Identity::open(d.path(), false).expect("open");
        assert_eq!(origin, Origin::Fresh);
        assert_eq!(a.cluster_id(), None);
        let cluster = Uuid::new_v4();
        a.set_cluster_id(cluster).expect("set");
        a.set_cluster_id(cluster).expect("same again");
        assert!(a.set_cluster_id(Uuid::new_v4()).is_err());
        let (b, origin) = Identity::open(d.path(), true).expect("reopen");
        assert_eq!(origin, Origin::Existing);
        assert_eq!(b.incarnation(), a.incarnation());
        assert_eq!(b.cluster_id(), Some(cluster));
    }

    #[test]
    fn a_directory_with_state_but_no_identity_is_upgraded() {
        let d = tempfile::tempdir().expect("tempdir");
        let (_, origin) = Identity::open(d.path(), true).expect("open");
        assert_eq!(origin, Origin::Upgraded);
    }

    #[test]
    fn a_damaged_identity_refuses_to_open() {
        let d = tempfile::tempdir().expect("tempdir");
        let (a, _) = Identity::open(d.path(), false).expect("open");
        let mut raw = std::fs::read(a.path()).expect("read");
        let last = raw.len() - 3;
        raw[last] ^= 0x10;
        std::fs::write(a.path(), &raw).expect("write");
        assert!(matches!(
            Identity::open(d.path(), true),
            Err(StorageError::Corrupt { .. })
        ));
    }

    #[test]
    fn decode_rejects_bad_bodies() {
        assert!(decode_identity(&[0u8; 5]).is_err());
        let mut body = encode(Uuid::new_v4(), None);
        body[16] = 7;
        assert!(decode_identity(&body).is_err());
    }
}
