//! Full reads of the image that do not hold its lock while they run: a copy of the image and
//! its position is taken under the read lock (a few pointers: the image's maps are persistent,
//! see [`crate::metadata::Image`]), the lock is released, and the answer is built from the copy,
//! on a blocking thread when the image is large. Apply, which needs the write lock, never waits
//! for a serialization.

use axum::http::StatusCode;

use super::error::ApiError;
use crate::raft::state_machine::{ImageAt, MetaState};

/// Below this many entities an answer is built on the request's own task: moving it to a
/// blocking thread would cost more than building it.
pub const INLINE_ENTITIES: u64 = 10_000;

/// Runs `build` on a copy of the image and its applied position, without the lock; the copy is
/// also dropped there (a copy that apply has diverged from frees its own nodes on drop).
pub async fn with_copy<T, F>(state: &MetaState, build: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&ImageAt) -> T + Send + 'static,
{
    let at = state.read().clone();
    if at.image.entity_count() < INLINE_ENTITIES {
        return Ok(build(&at));
    }
    tokio::task::spawn_blocking(move || build(&at))
        .await
        .map_err(|e| {
            ApiError::with_status(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the read of the image failed: {e}"),
            )
        })
}
