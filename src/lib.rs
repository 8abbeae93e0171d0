//! yakt — Yet Another KRaft.
//!
//! A Raft-replicated metadata service for Kafka-like clusters. The replicated Raft log *is* the
//! metadata topic: every change is a record whose Raft index is its offset.
//!
//! Layers, imported one way only:
//! - [`storage`]: segment files, snapshot files, the vote file. Bytes and indexes only.
//! - [`metadata`]: the record types, the image they fold into, and validation.
//! - [`raft`]: openraft glue — log store, state machine, network.
//! - [`api`]: the HTTP API and the SSE stream (axum).
//! - [`client`]: a client of the HTTP API (tailing the log), above `api`.
//! - [`admin`]: what the operator subcommands do (status, membership changes, a local cluster
//!   of child processes), above `api`.
//! - [`config`]: every tunable's default, written once (read by the option structs and the CLI).
//! - [`tls`]: HTTPS and node-to-node TLS (rustls), reloadable certificates, a throwaway CA.
//! - the `yakt` binary: the CLI; it parses arguments and calls the library, nothing else.

pub mod admin;
pub mod api;
pub mod client;
pub mod config;
pub mod metadata;
pub mod metrics;
pub mod raft;
pub mod storage;
pub mod tls;
