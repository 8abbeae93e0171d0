//! Clients of a yakt cluster's HTTP API, for programs that consume the metadata log.
//! It sits above [`crate::api`]: it speaks HTTP to nodes and uses the [`crate::metadata`] types.
//!
//! - [`stream`]: tail the log over `GET /stream` (server-sent events), failing over between
//!   nodes and resuming with `Last-Event-ID`, each record delivered once.
//! - [`sse`]: the server-sent-events parser the stream client (and any other reader) uses.
//! - [`fold`]: fold the stream's items into a metadata image, as the nodes do.
//! - [`options`]: the stream client's items, settings and errors.
//! - [`loopback`]: free loopback ports, for programs that start local nodes.

#![warn(missing_docs)]

pub mod fold;
pub mod loopback;
pub mod options;
pub mod sse;
pub mod stream;

pub use fold::{ImageFold, SnapshotAssembly};
pub use options::{ClientError, Progress, StartAt, StopHandle, StreamItem, StreamOptions};
pub use stream::StreamClient;
