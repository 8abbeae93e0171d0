//! The HTTP API: the original YAKt endpoints, the log read by offset (SSE and fetch), the
//! operating endpoints, and node-to-node Raft RPC, all on the node's one address.

pub mod catchup;
pub mod cors;
pub mod error;
pub mod event_cache;
pub mod history;
pub mod image_copy;
pub mod liveness;
pub mod log_read;
pub mod members;
pub mod metadata;
pub mod middleware;
pub mod openapi;
pub mod ops;
pub mod raft_rpc;
pub mod server;
pub mod sse;
pub mod stream;
pub mod ui;

use std::sync::Arc;
use std::time::Duration;

use crate::config::Defaults;

use axum::extract::DefaultBodyLimit;
use axum::http::{Method, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::{Extension, Router};

pub use error::ApiError;

use crate::raft::Node;

/// Settings of the HTTP layer.
#[derive(Clone, Debug)]
pub struct ApiOptions {
    /// Largest accepted request body, bytes.
    pub body_limit: usize,
    /// Catch-up answers switch to snapshot mode beyond this.
    pub catchup_window: Duration,
    /// Bearer token required on writes and `/raft/` when set.
    pub token: Option<String>,
    /// Require the token on reads too.
    pub protect_reads: bool,
    /// How long an SSE reader's buffer may stay full before the reader is cut off.
    pub slow_reader_timeout: Duration,
    /// Longest a stream reader goes without an event before a `progress` event.
    pub progress_interval: Duration,
    /// A node without a leader this long ends its streams (unless `require_leader=false`).
    pub stale_after: Duration,
    /// A catch-up delta of more records than this is answered in snapshot mode.
    pub catchup_max_records: u64,
    /// `/raft/*` only from connections whose client certificate the peer CA signed (set by
    /// [`server::run`] when the node serves TLS with a peer CA).
    pub require_peer_cert: bool,
    /// `--cors-origin`: origins a browser page may call every endpoint from (see [`cors`]).
    pub cors_origins: Vec<String>,
}

impl Default for ApiOptions {
    fn default() -> Self {
        Self {
            body_limit: Defaults::MAX_BODY,
            catchup_window: Defaults::CATCHUP_WINDOW,
            token: None,
            protect_reads: false,
            slow_reader_timeout: Defaults::SLOW_READER_TIMEOUT,
            progress_interval: Defaults::PROGRESS_INTERVAL,
            stale_after: Defaults::STALE_AFTER,
            catchup_max_records: Defaults::CATCHUP_MAX_RECORDS,
            require_peer_cert: false,
            cors_origins: Vec::new(),
        }
    }
}

/// The whole router of a node.
pub fn router(node: Arc<Node>, opts: ApiOptions) -> Router {
    let leader_clock = Arc::new(stream::LeaderClock::default());
    if tokio::runtime::Handle::try_current().is_ok() {
        leader_clock.watch(&node);
    }
    Router::new()
        .merge(metadata::routes())
        .merge(liveness::routes())
        .merge(catchup::routes())
        .merge(ops::routes())
        .merge(members::routes())
        .merge(stream::routes())
        .merge(ui::routes())
        .merge(openapi::routes())
        .layer(DefaultBodyLimit::max(opts.body_limit))
        .merge(
            raft_rpc::routes()
                .layer(DefaultBodyLimit::max(512 * 1024 * 1024))
                .layer(axum::middleware::from_fn_with_state(
                    opts.clone(),
                    middleware::require_peer_cert,
                )),
        )
        .fallback(unknown_path)
        .method_not_allowed_fallback(wrong_method)
        .layer(axum::middleware::from_fn_with_state(
            middleware::Edge::new(node.clone(), &opts),
            middleware::edge,
        ))
        .layer(Extension(opts))
        .layer(Extension(Arc::new(event_cache::EventCache::default())))
        .layer(Extension(leader_clock))
        .with_state(node)
}

async fn unknown_path(method: Method, uri: Uri) -> impl IntoResponse {
    ApiError::not_found(format!("no endpoint {method} {}", uri.path()))
}

async fn wrong_method(method: Method, uri: Uri) -> impl IntoResponse {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} does not accept {method}", uri.path()),
    )
}
