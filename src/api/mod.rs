//! The HTTP API: the original YAKt endpoints, the log read by offset (SSE and fetch), the
//! operating endpoints, and node-to-node Raft RPC, all on the node's one address.

pub mod catchup;
pub mod error;
pub mod event_cache;
pub mod history;
pub mod liveness;
pub mod log_read;
pub mod members;
pub mod metadata;
pub mod middleware;
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
    /// `/raft/*` only from connections whose client certificate the peer CA signed (set by
    /// [`server::run`] when the node serves TLS with a peer CA).
    pub require_peer_cert: bool,
}

impl Default for ApiOptions {
    fn default() -> Self {
        Self {
            body_limit: Defaults::MAX_BODY,
            catchup_window: Defaults::CATCHUP_WINDOW,
            token: None,
            protect_reads: false,
            slow_reader_timeout: Defaults::SLOW_READER_TIMEOUT,
            require_peer_cert: false,
        }
    }
}

/// The whole router of a node.
pub fn router(node: Arc<Node>, opts: ApiOptions) -> Router {
    Router::new()
        .merge(metadata::routes())
        .merge(liveness::routes())
        .merge(catchup::routes())
        .merge(ops::routes())
        .merge(members::routes())
        .merge(stream::routes())
        .merge(ui::routes())
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
            node.clone(),
            middleware::record_metrics,
        ))
        .layer(axum::middleware::from_fn_with_state(
            opts.clone(),
            middleware::read_body_in_time,
        ))
        .layer(axum::middleware::from_fn_with_state(
            opts.clone(),
            middleware::json_errors,
        ))
        .layer(axum::middleware::from_fn_with_state(
            opts.clone(),
            middleware::auth,
        ))
        .layer(axum::middleware::from_fn_with_state(
            node.clone(),
            middleware::identify,
        ))
        .layer(Extension(opts))
        .layer(Extension(Arc::new(event_cache::EventCache::default())))
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
