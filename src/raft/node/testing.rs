//! Unit tests' way to a real node: one process-local `Node` on its own data directory, leading a
//! one-node cluster, for tests of the pieces that need a live Raft core.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::{Node, NodeOptions};

/// Starts a node in `dir`, bootstraps it alone and waits (up to 20 s) until it leads. Its
/// address is never dialled: a one-node cluster sends nothing.
pub(crate) async fn one_node_leader(dir: &Path) -> Arc<Node> {
    let opts = NodeOptions::new(1, "127.0.0.1:9", dir.to_path_buf());
    let node = Node::start(opts).await.expect("starts");
    node.bootstrap(Vec::new()).await.expect("bootstraps");
    node.raft
        .wait(Some(Duration::from_secs(20)))
        .state(openraft::ServerState::Leader, "the node leads")
        .await
        .expect("leads");
    node
}
