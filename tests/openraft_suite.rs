//! openraft's own storage test suite, run against our segment log store and state machine.

use std::sync::Arc;

use openraft::testing::log::{StoreBuilder, Suite};
use openraft::type_config::TypeConfigExt;
use openraft::StorageError;
use yakt::raft::log_store::LogStore;
use yakt::raft::state_machine::StateMachine;
use yakt::raft::TypeConfig;
use yakt::storage::{CommittedFile, LogOptions, SegmentLog, SnapshotStore, VoteFile};

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for Builder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError<TypeConfig>> {
        let dir =
            tempfile::tempdir().map_err(|e| StorageError::read(TypeConfig::err_from_error(&e)))?;
        // Small segments so the suite's purges and truncations cross segment boundaries.
        let (log, _) = SegmentLog::open(&dir.path().join("log"), LogOptions { segment_bytes: 512 })
            .map_err(|e| StorageError::read(TypeConfig::err_from_error(&e)))?;
        let vote = VoteFile::open(dir.path())
            .map_err(|e| StorageError::read(TypeConfig::err_from_error(&e)))?;
        let snaps = SnapshotStore::open(&dir.path().join("snapshots"))
            .map_err(|e| StorageError::read(TypeConfig::err_from_error(&e)))?;
        let sm = StateMachine::open(Arc::new(snaps), None)
            .map_err(|e| StorageError::read(TypeConfig::err_from_error(&e)))?;
        let (committed, _) = CommittedFile::open(dir.path())
            .map_err(|e| StorageError::read(TypeConfig::err_from_error(&e)))?;
        Ok((
            dir,
            LogStore::new(Arc::new(log), Arc::new(vote), Arc::new(committed)),
            sm,
        ))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_storage_suite() {
    if let Err(e) = Suite::test_all(Builder).await {
        panic!("openraft storage suite failed: {e:?}");
    }
}
