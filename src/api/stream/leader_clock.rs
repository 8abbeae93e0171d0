//! How long this node has been without a leader, for `--stale-after`: a stream on a node that
//! sees no leader may fall behind the cluster without knowing it, so after a while it ends and
//! its reader moves to another node.

use openraft::type_config::async_runtime::WatchReceiver;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::raft::Node;

/// Since when this node has seen no leader; watched from the Raft metrics by one task per node,
/// started by the first stream that asks.
#[derive(Default)]
pub struct LeaderClock {
    since: Arc<Mutex<Option<Instant>>>,
    started: OnceLock<()>,
}

impl LeaderClock {
    /// How long `node` has been without a leader (`None` while it has one). The clock starts
    /// when the node loses its leader, or, for a node already without one when the first stream
    /// asks, at that first question.
    pub fn leaderless_for(&self, node: &Arc<Node>) -> Option<Duration> {
        self.started.get_or_init(|| self.start(node));
        let since = self.since.lock().unwrap_or_else(|p| p.into_inner());
        since.map(|s| s.elapsed())
    }

    fn start(&self, node: &Arc<Node>) {
        let mut metrics = node.raft.metrics();
        let since = self.since.clone();
        let note = move |has_leader: bool| {
            let mut s = since.lock().unwrap_or_else(|p| p.into_inner());
            match (has_leader, *s) {
                (true, _) => *s = None,
                (false, None) => *s = Some(Instant::now()),
                (false, Some(_)) => {}
            }
        };
        note(metrics.borrow_and_update().current_leader.is_some());
        tokio::spawn(async move {
            // Ends with the Raft core (its metrics sender is dropped).
            while metrics.changed().await.is_ok() {
                note(metrics.borrow_and_update().current_leader.is_some());
            }
        });
    }
}
