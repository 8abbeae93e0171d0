//! What a [`StreamClient`](super::StreamClient) is given and what it gives back: the items of
//! the log, where to start, its settings, its errors, and the handle that stops it.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;

use crate::metadata::LogRecord;

/// One item of the log as the stream delivers it.
#[derive(Clone, Debug, PartialEq)]
pub enum StreamItem {
    /// The whole image at `offset`: the reader's position was below the node's log start
    /// (purged after a snapshot). Replace what you hold with it; records after it follow.
    Snapshot {
        /// The last log offset the image includes.
        offset: u64,
        /// The Raft term of that offset.
        epoch: u64,
        /// The image in `/get_metadata`'s `metadata` form.
        metadata: Value,
    },
    /// One committed metadata record.
    Record(LogRecord),
    /// The node has sent everything up to `offset` (its applied offset): nothing in between
    /// passed the reader's filter. Yielded only with [`StreamOptions::progress`]; the client
    /// resumes after it either way.
    Progress(Progress),
}

/// An `event: progress`: where the node that sent it stands.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
pub struct Progress {
    /// The event's id: everything up to here has been sent.
    #[serde(skip)]
    pub offset: u64,
    /// The node's applied offset.
    pub applied_offset: u64,
    /// The node's commit offset.
    pub commit_offset: u64,
    /// The leader the node sees, if any.
    pub leader_id: Option<u64>,
    /// The node's Raft term.
    pub term: u64,
    /// The node's id.
    pub node_id: u64,
}

impl StreamItem {
    /// The item's offset (a snapshot's is the last offset it includes, a progress event's the
    /// offset up to which everything has been sent).
    pub fn offset(&self) -> u64 {
        match self {
            StreamItem::Snapshot { offset, .. } => *offset,
            StreamItem::Record(r) => r.offset,
            StreamItem::Progress(p) => p.offset,
        }
    }
}

/// Where a new [`StreamClient`] starts reading.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StartAt {
    /// The start of the log (a snapshot first if the start was purged).
    #[default]
    Beginning,
    /// The first record at or after this offset.
    Offset(u64),
    /// Only records committed after the client first reaches a node: the position is fixed
    /// then (`/fetch?offset=end`), so a reconnect before the first record loses nothing.
    End,
}

/// Settings of a [`StreamClient`].
#[derive(Clone, Debug)]
pub struct StreamOptions {
    /// Where to start.
    pub start: StartAt,
    /// Record names to receive (`?names=`); empty means all.
    pub names: Vec<String>,
    /// First wait before reconnecting after a failure; doubles per failure in a row.
    pub backoff_min: Duration,
    /// Longest wait between reconnects.
    pub backoff_max: Duration,
    /// A connection that delivers no byte (not even a keep-alive, sent every 10 s) for this long
    /// is treated as dead.
    pub idle_timeout: Duration,
    /// Limit on establishing one connection.
    pub connect_timeout: Duration,
    /// Give up ([`ClientError::Unavailable`]) after this many failures in a row without an item
    /// yielded in between; `None` retries forever.
    pub max_failures: Option<u32>,
    /// Largest event accepted (snapshot chunks are at most 1 MiB).
    pub max_event_bytes: usize,
    /// Bearer token sent with every request (nodes started with `--protect-reads`).
    pub token: Option<String>,
    /// Yield `progress` events as [`StreamItem::Progress`] (off: they only move the resume point).
    pub progress: bool,
    /// Ask `/cluster` for the members and add them to the nodes to fail over to.
    pub learn_members: bool,
}

impl Default for StreamOptions {
    fn default() -> Self {
        Self {
            start: StartAt::Beginning,
            names: Vec::new(),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(35),
            connect_timeout: Duration::from_secs(3),
            max_failures: None,
            max_event_bytes: 64 * 1024 * 1024,
            token: None,
            progress: false,
            learn_members: true,
        }
    }
}

/// Why [`StreamClient::next`] returned no item.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// [`StreamClient::stop`] or a [`StopHandle`] was used.
    #[error("the stream client was stopped")]
    Stopped,
    /// The client was given no node address.
    #[error("no node addresses given")]
    NoNodes,
    /// A node refused the request itself (a 4xx other than 408/429, e.g. an unknown record name
    /// in `names`): retrying elsewhere would not help.
    #[error("{node} refused the stream request: {status} {body}")]
    Rejected {
        /// The node's base URL.
        node: String,
        /// The HTTP status.
        status: u16,
        /// The response body (the API's JSON error).
        body: String,
    },
    /// [`StreamOptions::max_failures`] failures in a row.
    #[error("gave up after {attempts} failures in a row; last: {last}")]
    Unavailable {
        /// Failures counted.
        attempts: u32,
        /// The last failure.
        last: String,
    },
    /// The HTTP client could not be built.
    #[error("building the HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    /// A stream item could not be folded ([`ImageFold`]).
    #[error("cannot fold stream item: {0}")]
    Fold(String),
}

/// Stops a [`StreamClient`] from another task: its pending and future `next` calls return
/// [`ClientError::Stopped`].
#[derive(Clone, Debug)]
pub struct StopHandle(pub(crate) Arc<watch::Sender<bool>>);

impl StopHandle {
    /// Stops the client.
    pub fn stop(&self) {
        self.0.send_replace(true);
    }
}
