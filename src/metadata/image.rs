//! The image. STUB.

use serde::{Deserialize, Serialize};

use super::{MetadataCommand, MetadataError, Record, WriteRequest};

/// The current metadata, the fold of the log.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Image {}

impl Image {
    /// Validates a request against this image and decides the server-set fields.
    pub fn prepare(&self, _req: WriteRequest) -> Result<Record, MetadataError> {
        todo!()
    }
    /// Folds one committed record into the image.
    pub fn apply(&mut self, _offset: u64, _cmd: &MetadataCommand) -> Result<(), MetadataError> {
        todo!()
    }
}

impl Image {
    /// STUB
    pub fn encode(&self) -> Vec<u8> {
        todo!()
    }
    /// STUB
    pub fn decode(_b: &[u8]) -> Result<Self, MetadataError> {
        todo!()
    }
    /// STUB
    pub fn last_timestamp_ms(&self) -> u64 {
        todo!()
    }
}
impl Image {
    /// STUB
    pub fn metadata_json(&self) -> serde_json::Value {
        todo!()
    }
}
