//! One `#[utoipa::path]` per endpoint the router answers: method, path, parameters, body and
//! every answer with its status. The functions are never called; they carry the description
//! (kept here rather than on the handlers so that the handlers' modules stay as they are).
//! Errors every write or every protected endpoint shares (401, 413, 415, 503) are added to
//! each operation by [`super::document`], not repeated here.

#![allow(dead_code)]

use super::schemas::*;
use crate::api::liveness::AlterPartitionBody;
use crate::raft::liveness::{Heartbeat, HeartbeatAnswer};

// Patterns are literals in the attributes below (utoipa takes no constant there): the
// timestamp forms are Unix seconds (fractional too) or milliseconds, `YYYY-MM-DD_HH:MM:SS` (UTC),
// or RFC 3339 with its offset; `names` is a comma-separated list of record names.

const CONSISTENT: &str =
    "`true` makes the read linearizable: the node first learns the leader's commit index and \
     waits until it has applied it (503 without a leader).";

/// The whole image, or the image at an older point (time travel).
#[utoipa::path(get, path = "/get_metadata", tag = "metadata",
    params(
        ("consistent" = Option<bool>, Query, description = CONSISTENT),
        ("at_offset" = Option<u64>, Query, description = "The image right after this offset (time travel)."),
        ("at" = Option<String>, Query, pattern = r"^([0-9]{1,13}(\.[0-9]{1,3})?|[12][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])(_([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]|T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])))$", description = "The image at this time: `YYYY-MM-DD_HH:MM:SS` (UTC), Unix seconds or milliseconds, or RFC 3339."),
    ),
    responses(
        (status = 200, description = "The image", body = MetadataAnswer),
        (status = 400, description = "A bad or unknown parameter, or both `at_offset` and `at`", body = ErrorBody),
        (status = 410, description = "Older than what this node can rebuild", body = CompactedError),
        (status = 416, description = "Past the end of the committed log", body = OutOfRangeError),
        (status = 503, description = "`consistent=true` and no leader", body = ErrorBody),
    ))]
pub fn get_metadata() {}

/// Registers a broker (appends a RegisterBrokerRecord). The answer's `brokerEpoch` is what
/// heartbeats and `/alter_partition` name; registering `FENCED` opts the broker into liveness.
#[utoipa::path(post, path = "/register_broker", tag = "metadata",
    request_body = RegisterBrokerBody,
    responses(
        (status = 200, description = "Committed", body = RegisterBrokerAnswer),
        (status = 400, description = "Invalid fields", body = ErrorBody),
        (status = 409, description = "`brokerId` already registered and not CLOSED", body = ErrorBody),
    ))]
pub fn register_broker() {}

/// Brokers not CLOSED.
#[utoipa::path(get, path = "/get_all_brokers", tag = "metadata",
    params(("consistent" = Option<bool>, Query, description = CONSISTENT)),
    responses(
        (status = 200, description = "The brokers", body = BrokerList),
        (status = 400, description = "An unknown parameter", body = ErrorBody),
        (status = 503, description = "`consistent=true` and no leader", body = ErrorBody),
    ))]
pub fn get_all_brokers() {}

/// One broker.
#[utoipa::path(get, path = "/get_broker/{broker_id}", tag = "metadata",
    params(
        ("broker_id" = i32, Path, minimum = 0, description = "The broker's id"),
        ("consistent" = Option<bool>, Query, description = CONSISTENT),
    ),
    responses(
        (status = 200, description = "The broker", body = OneBroker),
        (status = 400, description = "Not an integer", body = ErrorBody),
        (status = 404, description = "Never registered", body = ErrorBody),
        (status = 503, description = "`consistent=true` and no leader", body = ErrorBody),
    ))]
pub fn get_broker() {}

/// Closes a broker (appends a change record with `brokerStatus: CLOSED`).
#[utoipa::path(put, path = "/delete_broker/{broker_id}", tag = "metadata",
    params(("broker_id" = i32, Path, minimum = 0, description = "The broker's id")),
    responses(
        (status = 200, description = "Committed", body = DeleteBrokerAnswer),
        (status = 400, description = "Not an integer", body = ErrorBody),
        (status = 404, description = "Never registered", body = ErrorBody),
        (status = 409, description = "Already CLOSED", body = ErrorBody),
    ))]
pub fn delete_broker() {}

/// Creates a topic (appends a TopicRecord).
#[utoipa::path(post, path = "/create_topic", tag = "metadata",
    request_body = CreateTopicBody,
    responses(
        (status = 200, description = "Committed", body = CreateTopicAnswer),
        (status = 400, description = "Invalid name", body = ErrorBody),
        (status = 409, description = "The name is taken", body = ErrorBody),
    ))]
pub fn create_topic() {}

/// One topic with its partitions.
#[utoipa::path(get, path = "/get_topic/{topic_name}", tag = "metadata",
    params(
        ("topic_name" = String, Path, description = "The topic's name"),
        ("consistent" = Option<bool>, Query, description = CONSISTENT),
    ),
    responses(
        (status = 200, description = "The topic", body = OneTopic),
        (status = 400, description = "An unknown parameter", body = ErrorBody),
        (status = 404, description = "No such topic", body = ErrorBody),
        (status = 503, description = "`consistent=true` and no leader", body = ErrorBody),
    ))]
pub fn get_topic() {}

/// Creates a partition (appends a PartitionRecord).
#[utoipa::path(post, path = "/create_partition", tag = "metadata",
    request_body = CreatePartitionBody,
    responses(
        (status = 200, description = "Committed", body = CreatePartitionAnswer),
        (status = 400, description = "Invalid fields", body = ErrorBody),
        (status = 404, description = "Unknown topic or broker", body = ErrorBody),
        (status = 409, description = "(`topicUUID`, `partitionId`) is taken", body = ErrorBody),
    ))]
pub fn create_partition() {}

/// Every partition, or one topic's.
#[utoipa::path(get, path = "/get_partitions", tag = "metadata",
    params(
        ("topicUUID" = Option<uuid::Uuid>, Query, description = "Only this topic's partitions"),
        ("consistent" = Option<bool>, Query, description = CONSISTENT),
    ),
    responses(
        (status = 200, description = "The partitions", body = PartitionList),
        (status = 400, description = "A bad `topicUUID` or an unknown parameter", body = ErrorBody),
        (status = 503, description = "`consistent=true` and no leader", body = ErrorBody),
    ))]
pub fn get_partitions() {}

/// Hands a producer id to a broker (appends a ProducerIdsRecord).
#[utoipa::path(post, path = "/register_producer/{broker_id}", tag = "metadata",
    params(("broker_id" = i32, Path, minimum = 0, description = "The broker's id")),
    request_body = RegisterProducerBody,
    responses(
        (status = 200, description = "Committed", body = RegisterProducerAnswer),
        (status = 400, description = "Invalid fields", body = ErrorBody),
        (status = 404, description = "Unknown broker", body = ErrorBody),
        (status = 409, description = "The broker is CLOSED or the id is taken", body = ErrorBody),
    ))]
pub fn register_producer() {}

/// Every producer registration.
#[utoipa::path(get, path = "/get_producer_ids", tag = "metadata",
    params(("consistent" = Option<bool>, Query, description = CONSISTENT)),
    responses(
        (status = 200, description = "The producer ids", body = ProducerIdList),
        (status = 400, description = "An unknown parameter", body = ErrorBody),
        (status = 503, description = "`consistent=true` and no leader", body = ErrorBody),
    ))]
pub fn get_producer_ids() {}

/// Changes a broker's registration (appends a BrokerRegistrationChangeBrokerRecord).
#[utoipa::path(put, path = "/broker_registration_change", tag = "metadata",
    request_body = BrokerChangeBody,
    responses(
        (status = 200, description = "Committed", body = BrokerChangeAnswer),
        (status = 400, description = "Invalid fields", body = ErrorBody),
        (status = 404, description = "Unknown broker", body = ErrorBody),
        (status = 409, description = "The change conflicts with the broker's state", body = ErrorBody),
    ))]
pub fn broker_registration_change() {}

/// A watched broker's heartbeat (KRaft's BrokerHeartbeat). Not written to the log: the leader
/// keeps the session in memory, and writes only what the heartbeat changes (unfencing a broker
/// caught up to its `brokerEpoch`, fencing one that asks `wantFence`, moving leadership off one
/// that asks `wantShutDown`). Any node takes it: a follower forwards it to the leader and
/// relays the leader's answer (whose `leaderId` names the leader).
#[utoipa::path(post, path = "/broker_heartbeat/{broker_id}", tag = "liveness",
    params(("broker_id" = i32, Path, minimum = 0, description = "The broker's id")),
    request_body = Heartbeat,
    responses(
        (status = 200, description = "The broker's standing after the heartbeat", body = HeartbeatAnswer),
        (status = 400, description = "A bad body or broker id", body = ErrorBody),
        (status = 404, description = "No such broker is registered", body = ErrorBody),
        (status = 409, description = "`stale_broker_epoch`: `brokerEpoch` is not the broker's current registration's; `conflict`: the broker is CLOSED", body = HeartbeatConflict),
        (status = 503, description = "No leader (or the leader could not be reached, or a write it needed did not commit): retry", body = ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds"))),
    ))]
pub fn broker_heartbeat() {}

/// The partition's leader sets its ISR (KRaft's AlterPartition): appends a
/// PartitionChangeRecord. Any node takes it: a follower forwards it to the leader and relays
/// the leader's answer.
#[utoipa::path(post, path = "/alter_partition", tag = "liveness",
    request_body = AlterPartitionBody,
    responses(
        (status = 200, description = "Committed", body = AlterPartitionAnswer),
        (status = 400, description = "A bad body, or an ISR that is not a subset of the replicas or names a fenced broker", body = ErrorBody),
        (status = 404, description = "No such broker, or no such partition", body = ErrorBody),
        (status = 409, description = "`stale_broker_epoch`, `stale_partition_epoch` (the partition changed since), `not_leader_for_partition` (asked by anyone but its leader), or `conflict` (the broker is CLOSED)", body = AlterPartitionConflict),
        (status = 503, description = "No leader (or the leader could not be reached, or the write did not commit): retry", body = ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds"))),
    ))]
pub fn alter_partition() {}

/// What a broker needs to catch up since a time.
#[utoipa::path(get, path = "/broker_mgmt/{timestamp}", tag = "catch-up",
    params(("timestamp" = String, Path, pattern = r"^([0-9]{1,13}(\.[0-9]{1,3})?|[12][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])(_([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]|T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])))$", description = "`YYYY-MM-DD_HH:MM:SS` (UTC), Unix seconds or milliseconds, or RFC 3339")),
    responses(
        (status = 200, description = "Delta or snapshot", body = CatchUpAnswer),
        (status = 400, description = "A bad timestamp", body = ErrorBody),
        (status = 503, description = "The log could not be read", body = ErrorBody),
    ))]
pub fn broker_mgmt() {}

/// What a producer or consumer needs to catch up since a time (no ProducerIdsRecord).
#[utoipa::path(get, path = "/client_mgmt/{timestamp}", tag = "catch-up",
    params(("timestamp" = String, Path, pattern = r"^([0-9]{1,13}(\.[0-9]{1,3})?|[12][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])(_([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]|T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])))$", description = "As `/broker_mgmt`")),
    responses(
        (status = 200, description = "Delta or snapshot", body = CatchUpAnswer),
        (status = 400, description = "A bad timestamp", body = ErrorBody),
        (status = 503, description = "The log could not be read", body = ErrorBody),
    ))]
pub fn client_mgmt() {}

/// The log as server-sent events: `event: record` (`id:` the offset, `data:` a LogRecord),
/// below the log start the image in pieces (`snapshot_begin`, `snapshot_chunk`s,
/// `snapshot_end` with `id:` its offset), `event: progress` when caught up,
/// `event: stream_error` before the stream ends on an error. Resumes with `Last-Event-ID`.
#[utoipa::path(get, path = "/stream", tag = "log",
    params(
        ("offset" = Option<String>, Query, pattern = r"^([0-9]+|start|earliest|end|latest)$", description = "First offset (default: the log start); `end` for only what comes next"),
        ("names" = Option<String>, Query, pattern = r"^(RegisterBrokerRecord|TopicRecord|PartitionRecord|ProducerIdsRecord|BrokerRegistrationChangeBrokerRecord|PartitionChangeRecord)(,(RegisterBrokerRecord|TopicRecord|PartitionRecord|ProducerIdsRecord|BrokerRegistrationChangeBrokerRecord|PartitionChangeRecord))*$", description = "Comma-separated record names to keep"),
        ("access_token" = Option<String>, Query, description = "The token, for `EventSource` (which cannot send headers)"),
        ("require_leader" = Option<String>, Query, description = "`false` keeps the stream open on a node without a leader"),
        ("Last-Event-ID" = Option<String>, Header, pattern = r"^[0-9]+$", description = "Resume after this id"),
    ),
    responses(
        (status = 200, description = "An endless `text/event-stream`", body = String, content_type = "text/event-stream"),
        (status = 400, description = "A bad parameter", body = ErrorBody),
        (status = 416, description = "Beyond the end of the committed log", body = OutOfRangeError),
    ))]
pub fn stream() {}

/// The log as JSON pages (long poll).
#[utoipa::path(get, path = "/fetch", tag = "log",
    params(
        ("offset" = Option<String>, Query, pattern = r"^([0-9]+|start|earliest|end|latest)$", description = "First offset (default: the log start); `end` for only what comes next"),
        ("max_records" = Option<u64>, Query, minimum = 1, description = "Most records in the page (default 1000; more than 10000 reads 10000)"),
        ("wait_ms" = Option<u64>, Query, description = "How long to wait for new records when there are none (more than 30000 waits 30000)"),
        ("names" = Option<String>, Query, pattern = r"^(RegisterBrokerRecord|TopicRecord|PartitionRecord|ProducerIdsRecord|BrokerRegistrationChangeBrokerRecord|PartitionChangeRecord)(,(RegisterBrokerRecord|TopicRecord|PartitionRecord|ProducerIdsRecord|BrokerRegistrationChangeBrokerRecord|PartitionChangeRecord))*$", description = "Comma-separated record names to keep"),
        ("access_token" = Option<String>, Query, description = "The token, as for `/stream`"),
    ),
    responses(
        (status = 200, description = "A page", body = FetchAnswer),
        (status = 400, description = "A bad parameter", body = ErrorBody),
        (status = 416, description = "Beyond the end of the committed log", body = OutOfRangeError),
    ))]
pub fn fetch() {}

/// The cluster as this node sees it.
#[utoipa::path(get, path = "/cluster", tag = "operating",
    responses((status = 200, description = "The view", body = ClusterView)))]
pub fn cluster() {}

/// Whether this node sees a leader.
#[utoipa::path(get, path = "/health", tag = "operating",
    responses(
        (status = 200, description = "A leader is seen", body = Health),
        (status = 503, description = "No leader", body = ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds"))),
    ))]
pub fn health() {}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "operating",
    responses((status = 200, description = "Prometheus text format 0.0.4", body = String,
        content_type = "text/plain; version=0.0.4; charset=utf-8")))]
pub fn metrics() {}

/// Adds a node: a learner first, a voter once caught up.
#[utoipa::path(post, path = "/cluster/members", tag = "membership",
    request_body = AddMemberBody,
    responses(
        (status = 200, description = "The node votes", body = MemberAdded),
        (status = 400, description = "A bad body or address", body = ErrorBody),
        (status = 409, description = "Refused: another cluster, or an impossible change", body = ErrorBody),
    ))]
pub fn add_member() {}

/// Removes a node.
#[utoipa::path(delete, path = "/cluster/members/{id}", tag = "membership",
    params(("id" = u64, Path, description = "The node's id")),
    responses(
        (status = 200, description = "Removed", body = MemberRemoved),
        (status = 400, description = "Not an integer", body = ErrorBody),
        (status = 404, description = "Not a member", body = ErrorBody),
        (status = 409, description = "Refused (e.g. the last voter)", body = ErrorBody),
    ))]
pub fn remove_member() {}

/// The web console: redirects to `/ui/`.
#[utoipa::path(get, path = "/", tag = "console",
    responses((status = 303, description = "To `/ui/`", headers(("Location" = String)))))]
pub fn root() {}

/// The web console: redirects to `/ui/`.
#[utoipa::path(get, path = "/ui", tag = "console",
    responses((status = 303, description = "To `/ui/`", headers(("Location" = String)))))]
pub fn ui_redirect() {}

/// The web console's page.
#[utoipa::path(get, path = "/ui/", tag = "console",
    responses(
        (status = 200, description = "The page", body = String, content_type = "text/html; charset=utf-8"),
        (status = 304, description = "Unchanged (`If-None-Match`)"),
    ))]
pub fn ui_index() {}

/// One of the console's files (built into the binary).
#[utoipa::path(get, path = "/ui/{file}", tag = "console",
    params(("file" = String, Path, description = "`index.html`, `style.css`, `*.js`")),
    responses(
        (status = 200, description = "The file", content(
            (String = "text/html; charset=utf-8"),
            (String = "text/css; charset=utf-8"),
            (String = "text/javascript; charset=utf-8"),
        )),
        (status = 304, description = "Unchanged (`If-None-Match`)"),
        (status = 404, description = "No such file", body = ErrorBody),
    ))]
pub fn ui_file() {}

/// What the token protects, for the console (open without the token).
#[utoipa::path(get, path = "/ui/api/settings", tag = "console",
    responses((status = 200, description = "The settings", body = ConsoleSettings)))]
pub fn ui_settings() {}

/// This node's view and every member's own, for the console.
#[utoipa::path(get, path = "/ui/api/members", tag = "console",
    responses((status = 200, description = "The members", body = ConsoleMembers)))]
pub fn ui_members() {}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "operating",
    responses((status = 200, description = "OpenAPI 3.1", body = Object)))]
pub fn openapi_json() {}
