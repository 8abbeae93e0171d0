//! The state machine: the metadata image, folded from committed records in offset order, and
//! its snapshots in the snapshot files.
//!
//! The image lives behind [`MetaState`], shared with the HTTP layer, which answers reads from it
//! and learns of every applied offset through a watch channel (the stream and fetch endpoints
//! wait on it).

use std::io::{self, Cursor};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::UNIX_EPOCH;

use futures::{Stream, StreamExt};
use openraft::entry::RaftEntry;
use openraft::storage::{EntryResponder, RaftSnapshotBuilder, RaftStateMachine, Snapshot};
use openraft::EntryPayload;
use tokio::sync::watch;

use super::codec::{decode_snapshot_meta, encode_snapshot_meta};
use super::support::{io_err, now_ms};
use super::{ApplyOutcome, LogId, SnapshotMeta, StoredMembership, TypeConfig};
use crate::metadata::Image;
use crate::storage::{EntryId, SnapshotInfo, SnapshotStore, StorageError};

/// The applied position: the last applied log id, published on every apply batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Index of the last applied entry (0 when nothing is applied yet).
    pub offset: u64,
    /// Its term.
    pub term: u64,
}

/// Where the newest snapshot is, for `/cluster` and `/metrics`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SnapshotPoint {
    pub offset: u64,
    pub term: u64,
    /// When this node wrote or installed it, ms since the Unix epoch.
    pub taken_at_ms: u64,
}

/// The image together with the log position it reflects: read both under one lock so a reader
/// can continue from exactly the next offset after the image.
#[derive(Clone, Debug, Default)]
pub struct ImageAt {
    /// The folded metadata.
    pub image: Image,
    /// The last applied entry (record or Raft's own).
    pub applied: Applied,
    /// How many record entries this process has applied (refused ones included; an installed
    /// snapshot leaves it as it was). The leader's proposer compares it with how many records
    /// it has proposed, to know when this image holds everything it proposed.
    pub records_applied: u64,
}

/// The image and applied position, shared between the state machine and the API.
pub struct MetaState {
    image: RwLock<ImageAt>,
    applied: watch::Sender<Applied>,
    snapshot: watch::Sender<Option<SnapshotPoint>>,
    /// The newest record timestamp applied, so a new leader never stamps a smaller one.
    last_timestamp_ms: AtomicU64,
    /// The lowest offset readers may take from the segment log; below it they get the image.
    /// See [`MetaState::log_floor`].
    log_floor: AtomicU64,
}

impl MetaState {
    fn new(image: Image, applied: Applied, snapshot: Option<SnapshotPoint>) -> Self {
        Self {
            image: RwLock::new(ImageAt {
                image,
                applied,
                records_applied: 0,
            }),
            applied: watch::channel(applied).0,
            snapshot: watch::channel(snapshot).0,
            last_timestamp_ms: AtomicU64::new(0),
            log_floor: AtomicU64::new(0),
        }
    }

    /// Read access to the current image and its position. Hold it briefly: apply waits for it.
    pub fn read(&self) -> RwLockReadGuard<'_, ImageAt> {
        self.image.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, ImageAt> {
        self.image.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The last applied position now.
    pub fn applied(&self) -> Applied {
        *self.applied.borrow()
    }

    /// A receiver that wakes on every newly applied batch.
    pub fn subscribe_applied(&self) -> watch::Receiver<Applied> {
        self.applied.subscribe()
    }

    /// The newest snapshot this node holds.
    pub fn snapshot(&self) -> Option<SnapshotPoint> {
        *self.snapshot.borrow()
    }

    /// The newest record timestamp applied.
    pub fn last_timestamp_ms(&self) -> u64 {
        self.last_timestamp_ms.load(Ordering::Relaxed)
    }

    /// The lowest offset whose bytes in the segment log are known to be the committed ones:
    /// readers (`/stream`, `/fetch`, catch-up) read the log only from here on and answer the
    /// image below it.
    ///
    /// It is above 0 only after a snapshot was installed from the leader. openraft installs it
    /// (and this node publishes the new applied offset) *before* it purges the log below it, so
    /// for a moment the log still holds whatever this node had there, such as the uncommitted
    /// entries of a deposed leader, below an applied offset that says "committed". Entries at or
    /// above the floor are only ever applied after openraft has made the log agree with the
    /// leader's. A restart needs no floor: at open, [`super::log_agreement`] purges a log that
    /// does not agree with the newest snapshot, before the node serves.
    pub fn log_floor(&self) -> u64 {
        self.log_floor.load(Ordering::Acquire)
    }

    /// Raises the floor; called before the applied offset past it is published.
    fn raise_log_floor(&self, floor: u64) {
        self.log_floor.fetch_max(floor, Ordering::AcqRel);
    }
}

#[cfg(test)]
impl MetaState {
    /// An empty image at `applied`, for tests of the readers.
    pub(crate) fn at(applied: Applied) -> Self {
        Self::new(Image::default(), applied, None)
    }

    /// What installing a snapshot from the leader at `applied` does to the readers' view, in
    /// the order [`StateMachine::install_snapshot`] does it: the floor first, then the image
    /// (empty here) and the applied offset.
    pub(crate) fn install_at(&self, applied: Applied) {
        self.raise_log_floor(applied.offset + 1);
        let mut at = self.write();
        at.image = Image::default();
        at.applied = applied;
        drop(at);
        self.applied.send_replace(applied);
    }
}

/// The state machine handed to openraft.
pub struct StateMachine {
    shared: Arc<MetaState>,
    snapshots: Arc<SnapshotStore>,
    last_applied: Option<LogId>,
    membership: StoredMembership,
    /// The snapshot file loaded at open, kept for openraft's first `get_current_snapshot` (which
    /// it calls at startup) so the file is not read and verified a second time.
    loaded: Option<(SnapshotMeta, Vec<u8>)>,
    /// The snapshot files newer than the loaded one that failed verification at open, with
    /// why: renamed by [`StateMachine::quarantine_set_aside`] once the log has been checked
    /// against the newest of them (see `raft::log_agreement::settle_past_set_aside`), so a
    /// crash in between does not forget where it stood.
    set_aside: Vec<(SnapshotInfo, String)>,
}

fn to_applied(lid: Option<LogId>) -> Applied {
    lid.map(|l| Applied {
        offset: l.index,
        term: l.leader_id.term,
    })
    .unwrap_or_default()
}

fn bad_data(what: &str, e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("{what}: {e}"))
}

impl StateMachine {
    /// Opens the state machine from the newest snapshot on disk that verifies (CRC, header and
    /// a decodable image), falling back past newer files that fail (each logged at WARN, then
    /// renamed `*.corrupt`). openraft then replays the committed log after it.
    ///
    /// `log_last_purged` is the segment log's last purged index: when no verified snapshot
    /// reaches it, the purged entries exist nowhere here and opening refuses (an error naming
    /// the snapshot files) rather than serving an image without them.
    pub fn open(snapshots: Arc<SnapshotStore>, log_last_purged: Option<u64>) -> io::Result<Self> {
        let mut sm = Self {
            shared: Arc::new(MetaState::new(Image::default(), Applied::default(), None)),
            snapshots,
            last_applied: None,
            membership: StoredMembership::default(),
            loaded: None,
            set_aside: Vec::new(),
        };
        let chosen = sm
            .snapshots
            .load_newest_verified(|f| {
                let meta = decode_snapshot_meta(&f.meta).map_err(|e| e.to_string())?;
                let image = Image::decode(&f.payload).map_err(|e| e.to_string())?;
                Ok((meta, image))
            })
            .map_err(io_err)?;
        chosen.covers(log_last_purged).map_err(io_err)?;
        sm.set_aside = chosen.skipped;
        if let Some((info, file, (meta, image))) = chosen.loaded {
            let taken = std::fs::metadata(&info.path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0);
            sm.replace(image, &meta, taken);
            sm.loaded = Some((meta, file.payload));
        }
        Ok(sm)
    }

    /// The newest snapshot that failed verification at open, newer than the loaded one: its
    /// name still says which entry the cluster committed at its offset.
    pub fn set_aside(&self) -> Option<EntryId> {
        self.set_aside
            .iter()
            .map(|(info, _)| EntryId {
                index: info.offset,
                term: info.term,
            })
            .max_by_key(|id| (id.index, id.term))
    }

    /// Renames the snapshot files that failed verification `*.corrupt` (no longer listed,
    /// counted in retention or offered to followers). Called at open once the log has been
    /// checked against them, before Raft starts.
    pub fn quarantine_set_aside(&mut self) -> io::Result<()> {
        for (info, why) in std::mem::take(&mut self.set_aside) {
            let to = self.snapshots.quarantine(&info).map_err(io_err)?;
            tracing::warn!(from = %info.path.display(), to = %to.display(), reason = %why, "snapshot set aside; started from an older one");
        }
        Ok(())
    }

    /// The state shared with the API.
    pub fn shared(&self) -> Arc<MetaState> {
        self.shared.clone()
    }

    fn replace(&mut self, image: Image, meta: &SnapshotMeta, taken_at_ms: u64) {
        let ts = image.last_timestamp_ms();
        self.last_applied = meta.last_log_id;
        {
            let mut at = self.shared.write();
            at.image = image;
            at.applied = to_applied(self.last_applied);
        }
        self.shared
            .last_timestamp_ms
            .fetch_max(ts, Ordering::Relaxed);
        self.membership = meta.last_membership.clone();
        let point = meta.last_log_id.map(|l| SnapshotPoint {
            offset: l.index,
            term: l.leader_id.term,
            taken_at_ms,
        });
        self.shared.snapshot.send_replace(point);
        self.publish_applied();
    }

    fn publish_applied(&self) {
        self.shared
            .applied
            .send_replace(to_applied(self.last_applied));
    }
}

/// Writes one snapshot of the image as it was when the builder was made.
///
/// The builder holds a copy of the image, taken under the read lock in
/// [`RaftStateMachine::get_snapshot_builder`]: the image's maps are persistent (see
/// [`Image`]), so the copy is a few pointers, and apply, which changes the original afterwards,
/// copies only the tree nodes it changes while this copy still shares them. The copy is encoded
/// in [`RaftSnapshotBuilder::build_snapshot`], on a blocking thread, with no lock held.
pub struct SnapshotBuilder {
    image: Image,
    meta: SnapshotMeta,
    snapshots: Arc<SnapshotStore>,
    shared: Arc<MetaState>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    type SnapshotData = Cursor<Vec<u8>>;

    /// Encodes the copy and writes the file.
    ///
    /// Why this no longer holds up apply: openraft 0.10.0-alpha.37's state-machine worker (its
    /// `core::sm::worker`, `Command::BuildSnapshot`) awaits only `get_snapshot_builder` (here: a
    /// copy of the image under the read lock, O(1)); it then *spawns* a task that awaits this
    /// method and goes back to applying entries at once. The encode (hundreds of milliseconds
    /// at a million entities) runs here on a blocking thread, so it takes no runtime worker
    /// either, and it reads only the builder's own copy, never the shared image or its lock.
    async fn build_snapshot(
        &mut self,
    ) -> Result<openraft::alias::SnapshotOf<TypeConfig, Cursor<Vec<u8>>>, io::Error> {
        let image = std::mem::take(&mut self.image);
        let meta_bytes = encode_snapshot_meta(&self.meta)?;
        let (offset, term) = self
            .meta
            .last_log_id
            .map(|l| (l.index, l.leader_id.term))
            .unwrap_or((0, 0));
        let store = self.snapshots.clone();
        let (payload, encode_ms, superseded) = tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            let payload = image.encode();
            let encode_ms = started.elapsed().as_millis() as u64;
            drop(image);
            // A snapshot installed from the leader while this one encoded is newer: writing
            // this file now would count it among the kept snapshots, pushing out an older one,
            // though the install purged the log it would need behind it.
            let superseded = store.latest()?.is_some_and(|l| l.offset > offset);
            if !superseded {
                store.write(offset, term, &meta_bytes, &payload)?;
            }
            Ok::<_, StorageError>((payload, encode_ms, superseded))
        })
        .await
        .map_err(|e| io::Error::other(format!("snapshot task failed: {e}")))?
        .map_err(io_err)?;
        if superseded {
            tracing::info!(
                offset,
                term,
                encode_ms,
                "snapshot not written: a newer one was installed while it encoded"
            );
        } else {
            tracing::info!(
                offset,
                term,
                bytes = payload.len(),
                encode_ms,
                "snapshot written"
            );
        }
        // openraft spawns this build and goes on: a snapshot installed from the leader meanwhile
        // is newer than this one, and stays the newest this node reports.
        self.shared.snapshot.send_if_modified(|point| {
            if point.is_some_and(|p| p.offset > offset) {
                return false;
            }
            *point = Some(SnapshotPoint {
                offset,
                term,
                taken_at_ms: now_ms(),
            });
            true
        });
        Ok(Snapshot {
            meta: self.meta.clone(),
            snapshot: Cursor::new(payload),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = Cursor<Vec<u8>>;
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        Ok((self.last_applied, self.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>>
            + Unpin
            + openraft::OptionalSend,
    {
        while let Some(item) = entries.next().await {
            let (entry, responder) = item?;
            let lid = entry.log_id();
            let mut outcome = ApplyOutcome {
                offset: lid.index,
                refused: None,
            };
            let position = to_applied(Some(lid));
            match entry.payload {
                EntryPayload::Blank => self.shared.write().applied = position,
                EntryPayload::Membership(m) => {
                    self.membership = StoredMembership::new(Some(lid), m);
                    self.shared.write().applied = position;
                }
                EntryPayload::Normal(cmd) => {
                    let res = {
                        let mut at = self.shared.write();
                        at.applied = position;
                        at.records_applied += 1;
                        at.image.apply_entry(lid.index, lid.leader_id.term, &cmd)
                    };
                    self.shared
                        .last_timestamp_ms
                        .fetch_max(cmd.timestamp_ms, Ordering::Relaxed);
                    if let Err(e) = res {
                        // Validation ran against this same image before the record was proposed,
                        // so this is a bug, never a client error. The record stays in the log.
                        tracing::error!(offset = lid.index, error = %e, "record did not apply to the image");
                        outcome.refused = Some(e);
                    }
                }
            }
            self.last_applied = Some(lid);
            // Every responder is answered, or the writer waiting on it would never return.
            if let Some(r) = responder {
                r.send(outcome);
            }
        }
        self.publish_applied();
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        // A copy of the persistent image: the lock is held for a few pointer copies, not for
        // the encode (which `build_snapshot` does later, off this worker).
        let image = self.shared.read().image.clone();
        SnapshotBuilder {
            image,
            meta: SnapshotMeta {
                last_log_id: self.last_applied,
                last_membership: self.membership.clone(),
            },
            snapshots: self.snapshots.clone(),
            shared: self.shared.clone(),
        }
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Cursor<Vec<u8>>,
    ) -> Result<(), io::Error> {
        let payload = snapshot.into_inner();
        let image = Image::decode(&payload).map_err(|e| bad_data("received snapshot image", e))?;
        let meta_bytes = encode_snapshot_meta(meta)?;
        let (offset, term) = meta
            .last_log_id
            .map(|l| (l.index, l.leader_id.term))
            .unwrap_or((0, 0));
        let store = self.snapshots.clone();
        tokio::task::spawn_blocking(move || store.write(offset, term, &meta_bytes, &payload))
            .await
            .map_err(|e| io::Error::other(format!("snapshot task failed: {e}")))?
            .map_err(io_err)?;
        tracing::info!(offset, term, "snapshot installed from the leader");
        self.loaded = None;
        // Before the applied offset moves to the snapshot: until openraft purges the log below
        // it, those log positions may hold entries that were never committed.
        self.shared.raise_log_floor(offset + 1);
        self.replace(image, meta, now_ms());
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<openraft::alias::SnapshotOf<TypeConfig, Cursor<Vec<u8>>>>, io::Error> {
        if let Some((meta, payload)) = self.loaded.take() {
            let newest = self.shared.snapshot().map(|p| p.offset);
            if newest == meta.last_log_id.map(|l| l.index) {
                return Ok(Some(Snapshot {
                    meta,
                    snapshot: Cursor::new(payload),
                }));
            }
        }
        let store = self.snapshots.clone();
        let file = tokio::task::spawn_blocking(move || -> Result<_, StorageError> {
            match store.latest()? {
                Some(info) => Ok(Some(store.read(&info)?)),
                None => Ok(None),
            }
        })
        .await
        .map_err(|e| io::Error::other(format!("snapshot task failed: {e}")))?
        .map_err(io_err)?;
        match file {
            None => Ok(None),
            Some(f) => Ok(Some(Snapshot {
                meta: decode_snapshot_meta(&f.meta)?,
                snapshot: Cursor::new(f.payload),
            })),
        }
    }
}

#[cfg(test)]
mod tests;
