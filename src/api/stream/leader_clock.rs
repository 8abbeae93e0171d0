//! How long this node has been without a leader, for `--stale-after`: a stream on a node that
//! sees no leader may fall behind the cluster without knowing it, so after a while it ends and
//! its reader moves to another node.
//!
//! "A leader" means one that a quorum still follows. On a follower that is whatever openraft's
//! metrics say. A leader cut off from the others keeps calling itself leader (openraft has no
//! check-quorum step-down), so while this node leads, its own leadership counts only as long as a
//! quorum confirms it: a probe asks for a read index (one heartbeat round) every
//! [`PROBE_INTERVAL`], and a probe that fails or takes longer than [`PROBE_TIMEOUT`] starts the
//! clock.

use openraft::type_config::async_runtime::WatchReceiver;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use crate::raft::Node;

/// How often a leading node confirms its leadership with a quorum.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// How long a confirmation may take before the node counts as without a leader.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Since when this node has seen no leader; watched from the Raft metrics (and, while this node
/// leads, by a quorum probe) by tasks that start with the first stream that asks and end with
/// the node.
#[derive(Default)]
pub struct LeaderClock {
    since: Arc<Mutex<Option<Instant>>>,
    started: OnceLock<()>,
}

/// Records whether a leader is known now: the clock starts at the first "no", stops at a "yes".
fn note(since: &Mutex<Option<Instant>>, has_leader: bool) {
    let mut s = since.lock().unwrap_or_else(|p| p.into_inner());
    match (has_leader, *s) {
        (true, _) => *s = None,
        (false, None) => *s = Some(Instant::now()),
        (false, Some(_)) => {}
    }
}

impl LeaderClock {
    /// Starts watching `node` (once; later calls do nothing), so that a node without a leader
    /// before its first stream is timed from then. Needs a tokio runtime.
    pub fn watch(&self, node: &Arc<Node>) {
        self.started.get_or_init(|| self.start(node));
    }

    /// How long `node` has been without a leader (`None` while it has one). The clock starts
    /// when the node loses its leader, or, for a node already without one when the clock was
    /// started ([`Self::watch`], else the first stream that asks), at that start.
    pub fn leaderless_for(&self, node: &Arc<Node>) -> Option<Duration> {
        self.watch(node);
        let since = self.since.lock().unwrap_or_else(|p| p.into_inner());
        since.map(|s| s.elapsed())
    }

    fn start(&self, node: &Arc<Node>) {
        let me = node.id;
        // Server metrics change with the leader, not at every commit (see `watch_addresses`).
        let mut metrics = node.raft.server_metrics();
        // Another node as leader, or none, is decided here; this node as leader by the probe.
        let seen = move |leader: Option<u64>| (leader != Some(me)).then_some(leader.is_some());
        if let Some(has) = seen(metrics.borrow_and_update().current_leader) {
            note(&self.since, has);
        }
        let since = self.since.clone();
        tokio::spawn(async move {
            // Ends with the Raft core (its metrics sender is dropped).
            while metrics.changed().await.is_ok() {
                if let Some(has) = seen(metrics.borrow_and_update().current_leader) {
                    note(&since, has);
                }
            }
        });
        tokio::spawn(confirm_own_leadership(
            Arc::downgrade(node),
            self.since.clone(),
        ));
    }
}

/// While `node` leads, asks a quorum to confirm it every [`PROBE_INTERVAL`]; ends with the node.
async fn confirm_own_leadership(node: Weak<Node>, since: Arc<Mutex<Option<Instant>>>) {
    let mut tick = tokio::time::interval(PROBE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(node) = node.upgrade() else { return };
        if node.is_shutting_down() {
            return;
        }
        if node.leader().map(|l| l.id) != Some(node.id) {
            continue;
        }
        let confirmed = tokio::time::timeout(PROBE_TIMEOUT, node.read_index())
            .await
            .is_ok_and(|r| r.is_ok());
        // Still this node's term to judge: a leader that lost its seat meanwhile is the
        // metrics watcher's to report.
        if node.leader().map(|l| l.id) == Some(node.id) {
            note(&since, confirmed);
        }
    }
}
