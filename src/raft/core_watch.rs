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
    let mut rx = raft.metrics();
    loop {
        {
            let m = rx.borrow_watched();
            if m.state == ServerState::Shutdown {
                return match &m.running_state {
                    Err(e) => e.to_string(),
                    Ok(()) => "stopped".into(),
                };
            }
        }
        // The core owns the sending side: it is gone when the core task ended by a panic.
        if rx.changed().await.is_err() {
            return "the Raft core task ended without reporting a state (it panicked)".into();
        }
    }
}
