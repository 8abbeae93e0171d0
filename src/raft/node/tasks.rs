//! The background tasks a node runs (membership and leader watches, the snapshot trigger, the
//! recovery watch, the join loop, admissions), held in one set so that [`super::Node::shutdown`]
//! stops every one of them: none outlives the node.

use std::future::Future;
use std::sync::Mutex;

use openraft::type_config::async_runtime::WatchReceiver;
use tokio::task::JoinSet;

use crate::raft::network::AddressBook;
use crate::raft::{NodeId, Raft};
use crate::storage::SegmentLog;

/// How often the sealed segments' pages are dropped from the resident set.
const RELEASE_SEALED_PAGES_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// Every [`RELEASE_SEALED_PAGES_EVERY`], drops the sealed segments' pages from the node's
/// resident set (see [`SegmentLog::release_sealed_pages`]), so that a replay or a catch-up reader
/// does not leave the whole log counted in the node's RSS.
pub(crate) async fn release_sealed_pages(log: std::sync::Arc<SegmentLog>) {
    let mut every = tokio::time::interval(RELEASE_SEALED_PAGES_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let log = log.clone();
        // madvise over a few mostly unmapped 64 MiB ranges: short, but a system call that walks
        // page tables, so off the runtime's workers.
        let _ = tokio::task::spawn_blocking(move || log.release_sealed_pages()).await;
    }
}

/// The node's background tasks; closed (spawning refused) once stopped.
pub(crate) struct Tasks {
    set: Mutex<Option<JoinSet<()>>>,
}

impl Tasks {
    /// An empty, open set.
    pub(crate) fn new() -> Self {
        Self {
            set: Mutex::new(Some(JoinSet::new())),
        }
    }

    /// Runs `task` until it ends or the node stops. Refused (the task is dropped unrun) once
    /// the node has stopped. Tasks that ended are reaped here, so the set does not grow with
    /// every admission a long-lived leader runs.
    pub(crate) fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let mut guard = self.set.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(set) = guard.as_mut() {
            while set.try_join_next().is_some() {}
            set.spawn(task);
        }
    }

    /// Aborts every task and waits until each has ended; false when already stopped.
    pub(crate) async fn stop(&self) -> bool {
        let set = self.set.lock().unwrap_or_else(|e| e.into_inner()).take();
        match set {
            Some(mut set) => {
                set.shutdown().await;
                true
            }
            None => false,
        }
    }

    /// How many tasks are still running (tests of [`super::Node::shutdown`]).
    pub(crate) fn running(&self) -> usize {
        let mut guard = self.set.lock().unwrap_or_else(|e| e.into_inner());
        match guard.as_mut() {
            Some(set) => {
                while set.try_join_next().is_some() {}
                set.len()
            }
            None => 0,
        }
    }
}

/// Keeps the peers' address book equal to the newest membership this node holds.
///
/// It watches openraft's *server* metrics (vote, role, leader, membership), not the whole
/// metrics: those change at every commit and replication step, and each change would wake this
/// task for nothing (measured: the long-lived watchers were ~1.3 % of a leader's CPU under
/// write load). The same holds for [`watch_leader`].
pub(crate) async fn watch_addresses(raft: Raft, addresses: AddressBook) {
    let mut rx = raft.server_metrics();
    let mut seen = None;
    loop {
        {
            let m = rx.borrow_watched();
            let config = &m.membership_config;
            if seen.as_ref() != Some(config.log_id()) {
                addresses.replace(config.membership().nodes());
                seen = Some(*config.log_id());
            }
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Logs one INFO line each time the leader this node sees changes (with the term).
pub(crate) async fn watch_leader(id: NodeId, raft: Raft) {
    let mut rx = raft.server_metrics();
    let mut last: Option<(Option<NodeId>, u64)> = None;
    loop {
        let (leader, term) = {
            let m = rx.borrow_watched();
            (m.current_leader, m.vote.leader_id.term)
        };
        if last.map(|l| l.0) != Some(leader) {
            match leader {
                Some(l) => {
                    tracing::info!(
                        node = id,
                        term,
                        leader_id = l,
                        is_self = l == id,
                        "leader changed"
                    )
                }
                None if last.is_some() => {
                    tracing::info!(node = id, term, "leader changed: no leader known")
                }
                None => {}
            }
            last = Some((leader, term));
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}
