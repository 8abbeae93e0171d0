//! Client write requests. STUB.

/// A validated-for-shape client write.
#[derive(Clone, Debug)]
pub enum WriteRequest {}
