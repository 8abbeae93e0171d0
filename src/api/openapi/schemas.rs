//! The shapes of the answers and request bodies that the handlers build as JSON on the spot
//! (`json!`), written down as types so that `utoipa` can describe them. They are never built by
//! the server: the handlers own their answers, and `tests/openapi.rs` holds these types to what
//! the handlers really send (every answer of a running cluster is validated against them).
//!
//! The records themselves (`RegisterBrokerRecord`, ..., `LogRecord`) are the model's own types
//! with `ToSchema` derived where they are defined.

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

mod bodies;
pub use bodies::*;

use crate::metadata::record::{
    BrokerRegistrationChangeBrokerRecord, LogRecord, PartitionChangeRecord, PartitionRecord,
    ProducerIdsRecord, RegisterBrokerRecord, TopicRecord,
};

/// API.md's one error shape: `{"error": kind, "message": text}`.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// The kind, a short machine-readable word (`bad_request`, `not_found`, `conflict`,
    /// `stale_broker_epoch`, `stale_partition_epoch`, `not_leader_for_partition`,
    /// `unauthorized`, `unavailable`, `unknown_outcome`, `cluster_mismatch`, ...).
    pub error: String,
    /// What went wrong, for a person.
    pub message: String,
}

/// `409` of `/broker_heartbeat/{broker_id}`: the broker is CLOSED (`conflict`) or the heartbeat
/// names another registration's broker epoch (`stale_broker_epoch`).
#[derive(Serialize, ToSchema)]
pub struct HeartbeatConflict {
    /// `stale_broker_epoch` or `conflict`.
    #[schema(pattern = "^(stale_broker_epoch|conflict)$")]
    pub error: String,
    /// What went wrong, for a person.
    pub message: String,
}

/// `409` of `/alter_partition`: a stale broker epoch or partition epoch, a broker that does not
/// lead the partition, or a CLOSED broker (`conflict`).
#[derive(Serialize, ToSchema)]
pub struct AlterPartitionConflict {
    /// `stale_broker_epoch`, `stale_partition_epoch`, `not_leader_for_partition` or `conflict`.
    #[schema(
        pattern = "^(stale_broker_epoch|stale_partition_epoch|not_leader_for_partition|conflict)$"
    )]
    pub error: String,
    /// What went wrong, for a person.
    pub message: String,
}

/// `410` of time travel: the point is older than what the node can rebuild.
#[derive(Serialize, ToSchema)]
pub struct CompactedError {
    /// `compacted`.
    pub error: String,
    /// What went wrong, for a person.
    pub message: String,
    /// The oldest offset this node can still rebuild.
    pub oldest_offset: u64,
}

/// `416`: an offset past the end of the committed log.
#[derive(Serialize, ToSchema)]
pub struct OutOfRangeError {
    /// `offset_out_of_range`.
    pub error: String,
    /// What went wrong, for a person.
    pub message: String,
    /// The offset after the last committed record.
    pub log_end_offset: u64,
}

/// The image: the current state of each entity under its record name, and the change records.
#[derive(Serialize, ToSchema)]
pub struct MetadataImage {
    /// Every broker ever registered, in its current state.
    #[serde(rename = "RegisterBrokerRecord")]
    pub register_broker_record: Vec<RegisterBrokerRecord>,
    /// Every topic.
    #[serde(rename = "TopicRecord")]
    pub topic_record: Vec<TopicRecord>,
    /// Every partition, in its current state.
    #[serde(rename = "PartitionRecord")]
    pub partition_record: Vec<PartitionRecord>,
    /// Every producer id handed out.
    #[serde(rename = "ProducerIdsRecord")]
    pub producer_ids_record: Vec<ProducerIdsRecord>,
    /// Every broker change record, in log order.
    #[serde(rename = "BrokerRegistrationChangeBrokerRecord")]
    pub broker_registration_change_broker_record: Vec<BrokerRegistrationChangeBrokerRecord>,
    /// Every partition change record, in log order.
    #[serde(rename = "PartitionChangeRecord")]
    pub partition_change_record: Vec<PartitionChangeRecord>,
}

/// `/get_metadata`'s answer (also time travel's, and a snapshot's body).
#[derive(Serialize, ToSchema)]
pub struct MetadataAnswer {
    /// The last offset the image includes.
    pub offset: u64,
    /// The Raft term of that offset.
    pub epoch: u64,
    /// The image.
    pub metadata: MetadataImage,
}

/// `{"metadata": [brokers]}`.
#[derive(Serialize, ToSchema)]
pub struct BrokerList {
    /// Brokers not `CLOSED`, by id.
    pub metadata: Vec<RegisterBrokerRecord>,
}

/// `{"metadata": broker}`.
#[derive(Serialize, ToSchema)]
pub struct OneBroker {
    /// The broker (a `CLOSED` one too).
    pub metadata: RegisterBrokerRecord,
}

/// A topic with its partitions.
#[derive(Serialize, ToSchema)]
pub struct TopicWithPartitions {
    /// The topic's name.
    pub name: String,
    /// The topic's id.
    #[serde(rename = "topicUUID")]
    pub topic_uuid: Uuid,
    /// Its partitions.
    pub partitions: Vec<PartitionRecord>,
}

/// `{"metadata": topic}`.
#[derive(Serialize, ToSchema)]
pub struct OneTopic {
    /// The topic.
    pub metadata: TopicWithPartitions,
}

/// `{"metadata": [partitions]}`.
#[derive(Serialize, ToSchema)]
pub struct PartitionList {
    /// Partitions, each in its current state.
    pub metadata: Vec<PartitionRecord>,
}

/// `{"metadata": [producer ids]}`.
#[derive(Serialize, ToSchema)]
pub struct ProducerIdList {
    /// Every producer registration.
    pub metadata: Vec<ProducerIdsRecord>,
}

/// Declares the answer of a write: `{"message", "offset", "metadata": <record fields>}`.
macro_rules! write_answer {
    ($(#[$doc:meta])* $name:ident, $record:ty $(, $(#[$fdoc:meta])* $extra:ident : $ty:ty as $wire:tt)*) => {
        $(#[$doc])*
        #[derive(Serialize, ToSchema)]
        pub struct $name {
            /// What was done, for a person.
            pub message: String,
            /// The offset of the record in the log.
            pub offset: u64,
            /// The record's fields as committed, server-set ones included.
            pub metadata: $record,
            $($(#[$fdoc])* #[serde(rename = $wire)] pub $extra: $ty,)*
        }
    };
}

write_answer!(
    /// `POST /register_broker`'s answer.
    RegisterBrokerAnswer,
    RegisterBrokerRecord,
    /// The offset of the registration record: KRaft's broker epoch, which heartbeats and
    /// `/alter_partition` name.
    broker_epoch: u64 as "brokerEpoch"
);
write_answer!(
    /// `POST /create_topic`'s answer.
    CreateTopicAnswer,
    TopicRecord
);
write_answer!(
    /// `POST /create_partition`'s answer.
    CreatePartitionAnswer,
    PartitionRecord
);
write_answer!(
    /// `POST /register_producer/{broker_id}`'s answer.
    RegisterProducerAnswer,
    ProducerIdsRecord
);
write_answer!(
    /// `PUT /broker_registration_change`'s answer.
    BrokerChangeAnswer,
    BrokerRegistrationChangeBrokerRecord
);
write_answer!(
    /// `POST /alter_partition`'s answer: the change record committed.
    AlterPartitionAnswer,
    PartitionChangeRecord
);

/// `PUT /delete_broker/{broker_id}`'s answer.
#[derive(Serialize, ToSchema)]
pub struct DeleteBrokerAnswer {
    /// What was done.
    pub message: String,
    /// The offset of the change record.
    pub offset: u64,
    /// The closed broker's `internalUUID`.
    #[serde(rename = "brokerUUID")]
    pub broker_uuid: Option<Uuid>,
}

/// Catch-up's mode.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CatchUpMode {
    /// Every record at or after the time.
    Delta,
    /// The whole image.
    Snapshot,
}

/// `/broker_mgmt/{timestamp}` and `/client_mgmt/{timestamp}`.
#[derive(Serialize, ToSchema)]
pub struct CatchUpAnswer {
    /// Delta or snapshot.
    pub mode: CatchUpMode,
    /// The time asked for, ms since the Unix epoch.
    pub since: u64,
    /// The applied offset the answer reflects.
    pub offset: u64,
    /// The timestamp of the newest record included (the next call's `{timestamp}`); `since`
    /// when a delta has no record.
    pub until: u64,
    /// By record name: the records (delta mode, each a `LogRecord`) or the entities (snapshot
    /// mode, as in `/get_metadata`). `client_mgmt` leaves out `ProducerIdsRecord`.
    pub metadata: BTreeMap<String, Vec<serde_json::Value>>,
}

/// A snapshot in a `/fetch` answer: the image below the log start.
#[derive(Serialize, ToSchema)]
pub struct SnapshotBody {
    /// The snapshot's last offset.
    pub offset: u64,
    /// Its Raft term.
    pub epoch: u64,
    /// The image at that offset.
    pub metadata: MetadataImage,
}

/// `/fetch`'s page.
#[derive(Serialize, ToSchema)]
pub struct FetchAnswer {
    /// Committed records from the offset asked for (filtered by `names`).
    pub records: Vec<LogRecord>,
    /// Where the next fetch starts.
    pub next_offset: u64,
    /// One past the last offset this node has applied.
    pub high_watermark: u64,
    /// The first offset still in the log.
    pub log_start_offset: u64,
    /// The commit offset this node knows (0 before it knows any).
    pub commit_offset: u64,
    /// The leader this node sees; `null` when it sees none.
    #[schema(required = true)]
    pub leader_id: Option<u64>,
    /// Present when the offset asked for lies below the log start: the image to start from.
    pub snapshot: Option<SnapshotBody>,
}

/// A node's Raft role.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Leads.
    Leader,
    /// Follows a leader.
    Follower,
    /// Campaigns.
    Candidate,
    /// Replicates without a vote.
    Learner,
    /// Stopping.
    Shutdown,
}

/// A member of the cluster in `/cluster`.
#[derive(Serialize, ToSchema)]
pub struct ClusterMember {
    /// Node id.
    pub id: u64,
    /// HOST:PORT it serves on.
    pub addr: String,
    /// Votes (else a learner).
    pub voter: bool,
    /// The UUID made when that member's data directory was created.
    pub incarnation: Option<Uuid>,
}

/// The newest snapshot's point.
#[derive(Serialize, ToSchema)]
pub struct SnapshotPoint {
    /// Its last offset.
    pub offset: u64,
    /// Its Raft term.
    pub epoch: u64,
}

/// `/cluster`: the cluster as this node sees it.
#[derive(Serialize, ToSchema)]
pub struct ClusterView {
    /// The cluster's UUID, fixed when it was first started, the same on every node (`null`
    /// only on a node that has not joined yet).
    pub cluster_id: Option<Uuid>,
    /// This node's id.
    pub node_id: u64,
    /// This node's data directory's UUID.
    pub incarnation: Uuid,
    /// Whether this node counts toward quorums.
    pub voting: bool,
    /// Why this node is recovering, when it is.
    pub recovering: Option<String>,
    /// This node's Raft role.
    pub role: Role,
    /// The leader this node sees.
    pub leader_id: Option<u64>,
    /// The leader's address.
    pub leader_addr: Option<String>,
    /// Current Raft term.
    pub term: u64,
    /// Voters and learners.
    pub members: Vec<ClusterMember>,
    /// Highest offset known committed.
    pub commit_offset: Option<u64>,
    /// Highest offset applied to the image.
    pub applied_offset: Option<u64>,
    /// The last offset in this node's log.
    pub last_log_offset: Option<u64>,
    /// The first offset still in the log.
    pub log_start_offset: Option<u64>,
    /// The newest snapshot.
    pub snapshot: Option<SnapshotPoint>,
}

/// `/health` when a leader is seen.
#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: String,
    /// The leader.
    pub leader_id: u64,
}

/// `POST /cluster/members`'s body.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddMemberBody {
    /// The new node's id.
    pub id: u64,
    /// HOST:PORT it serves on.
    #[schema(
        pattern = r"^[^:]+:([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])$"
    )]
    pub addr: String,
}

/// `POST /cluster/members`'s answer.
#[derive(Serialize, ToSchema)]
pub struct MemberAdded {
    /// What was done.
    pub message: String,
    /// The node's id.
    pub id: u64,
    /// Its address.
    pub addr: String,
}

/// `DELETE /cluster/members/{id}`'s answer.
#[derive(Serialize, ToSchema)]
pub struct MemberRemoved {
    /// What was done.
    pub message: String,
    /// The node's id.
    pub id: u64,
}

/// What the cluster's token protects.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TokenScope {
    /// No token.
    None,
    /// Writes need the token.
    Writes,
    /// Reads need it too.
    Reads,
}

/// `/ui/api/settings`.
#[derive(Serialize, ToSchema)]
pub struct ConsoleSettings {
    /// What the token protects.
    pub token: TokenScope,
}

/// One member in `/ui/api/members`, with its own `/cluster` view.
#[derive(Serialize, ToSchema)]
pub struct ConsoleMember {
    /// Node id.
    pub id: u64,
    /// Its address.
    pub addr: String,
    /// Votes.
    pub voter: bool,
    /// Its data directory's UUID.
    pub incarnation: Option<Uuid>,
    /// Its `/cluster`, when it answered in time.
    pub view: Option<ClusterView>,
    /// Why it did not, for a person.
    pub error: Option<String>,
}

/// `/ui/api/members`: this node's view and each member's own.
#[derive(Serialize, ToSchema)]
pub struct ConsoleMembers {
    /// The node that answered.
    pub node_id: u64,
    /// Its `/cluster`.
    pub cluster: ClusterView,
    /// Every member.
    pub members: Vec<ConsoleMember>,
}
