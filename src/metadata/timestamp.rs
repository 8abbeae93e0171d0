//! Timestamp forms accepted in paths. STUB.
