//! The openraft glue: our segment log as openraft's log store, the metadata image as its state
//! machine, HTTP as its network, and the node that ties them together.
//!
//! openraft is pinned to one exact release (see Cargo.toml): the 0.10 line is still in alpha and
//! its storage and network traits change between releases.

pub mod codec;
pub mod committed;
pub mod core_watch;
pub mod handoff;
pub mod history;
pub mod liveness;
pub mod log_agreement;
pub mod log_store;
mod log_tail;
pub mod network;
pub mod node;
pub mod proposer;
pub mod recovery;
pub mod snapshot_check;
pub mod snapshot_trigger;
pub mod state_machine;
mod support;

pub use node::{LeaderInfo, MembershipError, Node, NodeOptions};

/// Header carrying the cluster id: on every node-to-node request (a node refuses Raft traffic
/// from another cluster) and on every response.
pub const CLUSTER_ID_HEADER: &str = "x-yakt-cluster-id";
/// Header naming the node that answered, on every response.
pub const NODE_ID_HEADER: &str = "x-yakt-node-id";

use serde::{Deserialize, Serialize};

use crate::metadata::MetadataCommand;

/// A node's id, as given by `-i`.
pub type NodeId = u64;

/// A member as the membership records it: where to reach it, and which incarnation of its id
/// (the UUID made when its data directory was created) holds the seat. A node whose own
/// incarnation is not the one recorded here lost what that seat had acknowledged, and does
/// not vote until the leader has caught it up and recorded the new incarnation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The address peers and clients reach it at.
    pub addr: String,
    /// The incarnation that holds this id's seat; `None` in memberships written before
    /// incarnations existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incarnation: Option<uuid::Uuid>,
}

impl Member {
    /// A member at `addr` whose seat belongs to `incarnation`.
    pub fn new(addr: impl Into<String>, incarnation: uuid::Uuid) -> Self {
        Self {
            addr: addr.into(),
            incarnation: Some(incarnation),
        }
    }
}

/// What the state machine answers for each applied metadata record.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyOutcome {
    /// The record's offset (its Raft index).
    pub offset: u64,
    /// Why the image refused the record at apply, when it did. It never should (validation
    /// runs against the leader's speculative image before proposing), but if it does the record
    /// changed nothing, and the writer must be told so rather than be answered `200`.
    pub refused: Option<crate::metadata::MetadataError>,
}

openraft::declare_raft_types!(
    /// yakt's openraft types. `leader_id_std` gives one leader per term, so a log id is fully
    /// described by (term, index): exactly the (epoch, offset) of a metadata record.
    pub TypeConfig:
        D = MetadataCommand,
        R = ApplyOutcome,
        NodeId = NodeId,
        Node = Member,
        LeaderId = openraft::impls::leader_id_std::LeaderId<u64, NodeId>,
);

/// The Raft instance of a yakt node.
pub type Raft = openraft::Raft<TypeConfig, state_machine::StateMachine>;
/// A log id (term and index) in our configuration.
pub type LogId = openraft::alias::LogIdOf<TypeConfig>;
/// A vote in our configuration.
pub type Vote = openraft::alias::VoteOf<TypeConfig>;
/// A log entry in our configuration.
pub type Entry = openraft::alias::EntryOf<TypeConfig>;
/// A membership: voters, learners and their [`Member`] records.
pub type Membership = openraft::Membership<NodeId, Member>;
/// Membership as stored with its log id.
pub type StoredMembership = openraft::alias::StoredMembershipOf<TypeConfig>;
/// Snapshot metadata.
pub type SnapshotMeta = openraft::alias::SnapshotMetaOf<TypeConfig>;

/// Builds the log id of an entry from its stored term and index.
pub fn log_id(term: u64, index: u64) -> LogId {
    openraft::LogId::new(
        openraft::vote::leader_id_std::CommittedLeaderId::new(term),
        index,
    )
}
