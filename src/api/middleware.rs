//! Cross-cutting HTTP concerns: bearer-token auth and per-route request metrics.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::ApiOptions;
use crate::raft::Node;

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// With a token configured: writes and `/raft/` always need `Authorization: Bearer <token>`;
/// reads need it only with `--protect-reads`.
pub async fn auth(State(opts): State<ApiOptions>, req: Request, next: Next) -> Response {
    let Some(token) = opts.token.as_deref() else {
        return next.run(req).await;
    };
    let is_read = req.method() == Method::GET || req.method() == Method::HEAD;
    let is_raft = req.uri().path().starts_with("/raft/");
    let needs = is_raft || !is_read || opts.protect_reads;
    if !needs {
        return next.run(req).await;
    }
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match presented {
        Some(p) if constant_time_eq(p.as_bytes(), token.as_bytes()) => next.run(req).await,
        Some(_) => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the bearer token is wrong",
        )
        .into_response(),
        None => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "this endpoint needs Authorization: Bearer <token>",
        )
        .into_response(),
    }
}

/// Counts every request by its route pattern and status, with its latency.
pub async fn record_metrics(State(node): State<Arc<Node>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let start = Instant::now();
    let resp = next.run(req).await;
    node.metrics.http.record(
        &route,
        resp.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    resp
}
