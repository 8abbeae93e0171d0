//! Record types. STUB.

use serde::{Deserialize, Serialize};

/// One metadata record with all server-set fields decided.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Record {}

impl Record {
    /// The record type's name as in API.md.
    pub fn name(&self) -> &'static str {
        match *self {}
    }
    /// The record's fields as JSON, API.md's names.
    pub fn fields_json(&self) -> serde_json::Value {
        match *self {}
    }
}

/// What one Raft entry carries: a record and the leader's timestamp.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetadataCommand {
    pub timestamp_ms: u64,
    pub record: Record,
}

/// A record as it appears in the log, stream and catch-up answers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogRecord {
    pub offset: u64,
    pub epoch: u64,
    pub timestamp: u64,
    pub name: String,
    pub fields: serde_json::Value,
}

impl LogRecord {
    /// STUB
    pub fn new(_offset: u64, _epoch: u64, _cmd: &MetadataCommand) -> Self {
        todo!()
    }
}
