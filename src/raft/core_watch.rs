//! Notices when openraft's core has stopped, so that the process does not outlive it.
//!
//! The core is a task inside the process. When it panics or hits a fatal storage error it ends,
//! but the HTTP server, the image and the log stay up: without a watch the node keeps answering
//! reads from an image that no longer moves, and writes with 503s, as a "zombie". Whoever runs
//! the node waits on [`core_stopped`] and exits.

use openraft::type_config::async_runtime::WatchReceiver;
use openraft::ServerState;

use super::Raft;

/// Resolves once the Raft core has stopped, with why: its fatal error, `stopped` after a
/// requested shutdown, or a panic (its task ended without reporting a state).
pub async fn core_stopped(raft: &Raft) -> String {
    // The core drops its metrics senders when its task ends, by a return or a panic; only then
    // is there anything to read. The server metrics are watched because they change with the
    // role and the leader, not at every commit as the whole metrics do (see `watch_addresses`).
    let mut server = raft.server_metrics();
    while server.changed().await.is_ok() {}
    // The core reports `Shutdown` (with why) in the whole metrics before it ends normally.
    let all = raft.metrics();
    let m = all.borrow_watched();
    if m.state == ServerState::Shutdown {
        return match &m.running_state {
            Err(e) => e.to_string(),
            Ok(()) => "stopped".into(),
        };
    }
    "the Raft core task ended without reporting a state (it panicked)".into()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::core_stopped;
    use crate::metadata::WriteRequest;
    use crate::raft::node::testing::one_node_leader;

    /// The watch ends when the core ends, with the core's own word for why, and not before:
    /// writes (which change the whole metrics at every commit) leave it waiting.
    #[tokio::test]
    async fn the_watch_ends_with_the_core_and_not_before() {
        let dir = tempfile::tempdir().expect("tempdir");
        let node = one_node_leader(dir.path()).await;
        let raft = node.raft.clone();
        let watch = tokio::spawn(async move { core_stopped(&raft).await });
        for k in 0..20 {
            let name = format!("t-{k}");
            node.propose(WriteRequest::CreateTopic { name })
                .await
                .expect("write");
        }
        assert!(!watch.is_finished(), "the core still runs");
        node.raft.shutdown().await.expect("stops");
        let why = tokio::time::timeout(Duration::from_secs(20), watch)
            .await
            .expect("the watch ends once the core has ended")
            .expect("the watch task");
        assert_eq!(
            why, "raft stopped",
            "openraft's Fatal::Stopped, as the core reported it"
        );
    }
}
