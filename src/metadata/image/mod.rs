//! The image: the current metadata, the fold of the log in offset order, and the views of it
//! the API shows; the snapshot encoding and the rebuild from `/get_metadata`'s JSON.
//!
//! Files: `prepare.rs` (leader: request to record), `fold.rs` (the rules a record must pass and
//! how it is folded), `reads.rs` (typed reads), `view.rs` (the API's JSON), `rebuild.rs` (an
//! image from that JSON), `codec.rs` (the snapshot payload), `seq.rs` (a serializer helper).
//!
//! `prepare` (leader, before proposing) validates a request against the image and decides every
//! server-set field; `apply` (every node, in offset order) folds a committed record. Both run the
//! same checks ([`Image::check`]), so a record `prepare` produced applies on the image it was
//! prepared on, and a record that no longer fits (another record committed in between) is refused
//! without touching the image, identically on every node.
//!
//! Decisions where API.md is silent (also in the README):
//! - A `CLOSED` broker cannot be a replica or leader of a new partition: NotFound, as it is not in
//!   `/get_all_brokers` either. `FENCED`/`INIT` brokers can be replicas; they can lead a new
//!   partition only when they did not register as `FENCED` (a broker registered `FENCED` asked for
//!   KRaft's liveness: until the controller unfences it, it leads nothing; Conflict).
//! - Liveness (API.md "Broker liveness"): a broker *can lead* and *can join an ISR* only when it
//!   is `ALIVE` or `UNFENCED`; `INIT`, `FENCED` and `CLOSED` count as fenced. A
//!   `PartitionChangeRecord` is checked against that at apply: its leader, when it changes, and
//!   every broker it adds to the ISR must be able to; its epochs must be the partition's + 1.
//! - A `CLOSED` broker cannot be changed (Conflict): only a new registration brings it back, with
//!   a new `internalUUID`. A change record may itself set `brokerStatus: CLOSED` (like delete).
//! - `/get_broker/{id}` answers a `CLOSED` broker too (its status says so).
//! - A producer id given explicitly may be any free one; the next allocated id is always above
//!   every id ever registered, so no id is handed out twice.
//! - `ProducerIdsRecord.brokerEpoch` must equal the broker's epoch when applied (Kafka's fencing):
//!   a change committed between prepare and apply makes the record refused.
//! - `apply` advances `last_offset` even when it refuses a record: the entry was consumed.

mod codec;
pub mod election;
mod fold;
mod name;
mod partition;
mod prepare;
mod reads;
mod rebuild;
mod runs;
mod seq;
#[cfg(test)]
mod tests;
pub mod view;

use imbl::{OrdMap, Vector};

use uuid::Uuid;

use super::record::{
    BrokerRegistrationChangeBrokerRecord, PartitionChangeRecord, ProducerIdsRecord,
    RegisterBrokerRecord,
};

use name::TopicName;
use partition::StoredPartition;
use runs::RunMap;
pub use view::{MetadataAnswer, MetadataView};

/// The current metadata, the fold of the log.
///
/// Topics are the bulk of a large image (a million-record log is mostly topics), so each one
/// costs about its own bytes: a 40-byte entry in `topics` (its name inline, see [`TopicName`],
/// and its UUID) and a 16-byte one in `topic_uuids`, both [`RunMap`]s of exact-size runs; the
/// snapshot encoding lives in `codec.rs`. `docs/performance-round-three.md` ("a compact image") has the
/// measured cost of each part.
///
/// Every collection is a persistent one (`imbl`: B+trees of 16, an RRB vector; runs of at most
/// 64 entries shared between copies), so
/// `clone()` copies a handful of pointers, not the image: a snapshot or a full `/get_metadata`
/// takes a copy under the state's lock and encodes it after releasing it, while apply goes on
/// changing the original (which copies only the nodes on the path it changes, and only while a
/// copy still shares them). Iteration is in key order as with `BTreeMap`, so the snapshot bytes
/// and the JSON views are the same as before (`tests/golden.rs`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Image {
    /// Current state of every broker ever registered, by id (CLOSED ones included).
    pub(super) brokers: OrdMap<i32, RegisterBrokerRecord>,
    /// Topic UUIDs by topic name.
    pub(super) topics: RunMap<TopicName, Uuid>,
    /// Every topic UUID in `topics` (the index partitions and new topics are checked against),
    /// as a set: sorted runs of bare UUIDs (a hash trie's fixed 32-slot nodes held each UUID
    /// with its hash, 59 bytes a topic).
    pub(super) topic_uuids: RunMap<Uuid, ()>,
    /// Partitions by (topicUUID, partitionId): one flat map, in the order the nested map of
    /// before iterated, because a map per topic would cost a whole B-tree leaf (16 slots) for
    /// each of a million one-partition topics. Each is kept compact ([`StoredPartition`]: no
    /// copy of its key, its lists in one block); the reads give `PartitionRecord`s back.
    pub(super) partitions: OrdMap<(Uuid, i32), StoredPartition>,
    /// Producer id registrations by producerId.
    pub(super) producers: OrdMap<i64, ProducerIdsRecord>,
    /// The id the next allocation hands out: above every id ever registered.
    pub(super) next_producer_id: i64,
    /// Every applied BrokerRegistrationChangeBrokerRecord, in offset order.
    pub(super) broker_changes: Vector<BrokerRegistrationChangeBrokerRecord>,
    /// What each broker's latest registration record left that the record itself does not say:
    /// its offset (KRaft's broker epoch) and whether it asked for liveness. Not in the JSON view.
    pub(super) registrations: OrdMap<i32, Registration>,
    /// Every applied PartitionChangeRecord, in offset order.
    pub(super) partition_changes: Vector<PartitionChangeRecord>,
    /// Offset (Raft index) of the last entry applied; set by `apply` or by the caller for entries
    /// that carry no record.
    pub last_offset: u64,
    /// Epoch (Raft term) of the last entry applied; set by `apply_entry` or by the caller.
    pub last_epoch: u64,
    /// Largest record timestamp applied, so a new leader never proposes an earlier one.
    pub(super) last_timestamp_ms: u64,
}

/// A broker's latest registration as the liveness controller needs it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Registration {
    /// The offset of the registration record: KRaft's broker epoch, which a heartbeat must name.
    /// The leader's *speculative* image folds records at offset 0, so only an applied image
    /// answers it truthfully; heartbeats and `/alter_partition` check it against that.
    #[serde(rename = "brokerEpoch")]
    pub broker_epoch: u64,
    /// The broker registered as `FENCED`: it asked for KRaft's liveness, so it may lead only once
    /// the controller has unfenced it, and a new leader of the cluster watches it from the start.
    pub watched: bool,
}

impl Image {
    /// An empty image, the fold of an empty log.
    pub fn new() -> Self {
        Self::default()
    }
}

/// The range of `partitions` keys that holds every partition of one topic.
pub(super) fn topic_range(topic_uuid: Uuid) -> std::ops::RangeInclusive<(Uuid, i32)> {
    (topic_uuid, i32::MIN)..=(topic_uuid, i32::MAX)
}
