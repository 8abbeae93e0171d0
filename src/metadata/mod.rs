//! The metadata model: the five record types, the image they fold into, and validation.
//!
//! Storage does not know this module; the raft, api and CLI layers use it.

pub mod error;
pub mod image;
pub mod record;
pub mod request;
pub mod timestamp;

pub use error::{ErrorKind, MetadataError};
pub use image::Image;
pub use record::{LogRecord, MetadataCommand, Record};
pub use request::WriteRequest;
