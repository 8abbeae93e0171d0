//! Clients of a yakt cluster's HTTP API, for programs that consume the metadata log.
//!
//! This layer sits above [`crate::api`]: it speaks HTTP to nodes and uses the
//! [`crate::metadata`] types, never the server's internals.
//!
//! - [`stream`]: tail the log over `GET /stream` (server-sent events), failing over between
//!   nodes and resuming with `Last-Event-ID`, each record delivered once.

#![warn(missing_docs)]

pub mod stream;

pub use stream::{
    ClientError, ImageFold, StartAt, StopHandle, StreamClient, StreamItem, StreamOptions,
};
