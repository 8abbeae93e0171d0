//! Cross-cutting HTTP concerns: identity headers, CORS, bearer-token auth, the API's error
//! shape, reading the body in time, and per-route request metrics.
//!
//! They run as **one** axum middleware, [`edge`], not one layer each: every `from_fn` layer
//! costs, per request, a clone of the service below it, a boxed service and a boxed future,
//! and with six of them that plumbing was about a quarter of the leader's CPU per committed
//! write (docs/performance-round-three.md). The order is the one the layers had, outermost
//! first: identity, CORS, auth, JSON errors, body, metrics.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::cors::{self, CorsPolicy};
use super::error::ApiError;
use super::ApiOptions;
use crate::raft::Node;

/// What [`edge`] needs, built once per router.
pub struct Edge {
    node: Arc<Node>,
    opts: ApiOptions,
    cors: CorsPolicy,
}

impl Edge {
    /// The edge of a node serving with these options.
    pub fn new(node: Arc<Node>, opts: &ApiOptions) -> Arc<Self> {
        Arc::new(Self {
            node,
            cors: CorsPolicy::new(opts),
            opts: opts.clone(),
        })
    }
}

/// The middleware every route runs behind: see the module doc for what it does, in that order.
pub async fn edge(State(edge): State<Arc<Edge>>, req: Request, next: Next) -> Response {
    let mut resp = with_cors(&edge, req, next).await;
    identify(&edge.node, &mut resp);
    resp
}

/// CORS: answers preflights it allows (`204`), and marks every allowed answer.
async fn with_cors(edge: &Edge, req: Request, next: Next) -> Response {
    let origin = cors::origin_of(&req);
    if let Some(answer) = cors::preflight(&edge.cors, &req, origin.as_deref()) {
        return answer;
    }
    let method = req.method().clone();
    let mut resp = authorized(edge, req, next).await;
    cors::mark(&edge.cors, origin.as_deref(), &method, resp.headers_mut());
    resp
}

/// Auth, then the request itself, its error answers in the API's shape.
async fn authorized(edge: &Edge, req: Request, next: Next) -> Response {
    if let Some(refusal) = auth(&edge.opts, &req) {
        return refusal;
    }
    let resp = match read_body_in_time(&edge.opts, req).await {
        Ok(req) => record_metrics(&edge.node, req, next).await,
        Err(refusal) => refusal,
    };
    json_errors(&edge.opts, resp).await
}

/// Names the cluster and the node on every response (`X-Yakt-Cluster-Id`, `X-Yakt-Node-Id`),
/// so a client can tell which cluster and which node it is talking to, and notice a cluster
/// that was wiped and started anew.
fn identify(node: &Node, resp: &mut Response) {
    let headers = resp.headers_mut();
    if let Some(c) = node.identity.cluster_id() {
        let mut buf = uuid::Uuid::encode_buffer();
        if let Ok(v) = header::HeaderValue::from_str(c.hyphenated().encode_lower(&mut buf)) {
            headers.insert(crate::raft::CLUSTER_ID_HEADER, v);
        }
    }
    headers.insert(
        crate::raft::NODE_ID_HEADER,
        header::HeaderValue::from(node.id),
    );
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// With a peer CA on a TLS node, `/raft/*` (Raft RPCs, joining, read-index forwarding) answers
/// only connections whose client certificate that CA signed: a holder of the token alone, or of
/// a client certificate from another CA, is not a peer. 403 otherwise.
pub async fn require_peer_cert(
    State(opts): State<ApiOptions>,
    req: Request,
    next: Next,
) -> Response {
    let is_peer =
        req.extensions().get::<crate::tls::PeerCert>() == Some(&crate::tls::PeerCert(true));
    if !opts.require_peer_cert || is_peer {
        return next.run(req).await;
    }
    ApiError::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        "node-to-node routes need a client certificate signed by the peer CA",
    )
    .into_response()
}

/// With a token configured: writes and `/raft/` always need `Authorization: Bearer <token>`;
/// reads need it only with `--protect-reads`. `/stream` and `/fetch` also take it as
/// `?access_token=`, because a browser's `EventSource` cannot send headers; the header wins
/// when both are given. The web console's own files are open (the page asks for the token).
/// `Some` is the refusal to answer.
fn auth(opts: &ApiOptions, req: &Request) -> Option<Response> {
    let token = opts.token.as_deref()?;
    let is_read = req.method() == Method::GET || req.method() == Method::HEAD;
    let is_raft = req.uri().path().starts_with("/raft/");
    let needs = is_raft || !is_read || opts.protect_reads;
    if !needs || super::ui::is_open(req.method(), req.uri().path()) {
        return None;
    }
    let from_header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|v| v.trim().to_string());
    let in_query = is_read && matches!(req.uri().path(), "/stream" | "/fetch");
    let presented = from_header.or_else(|| {
        let query = axum::extract::Query::<std::collections::HashMap<String, String>>::try_from_uri;
        in_query
            .then(|| query(req.uri()).ok())
            .flatten()
            .and_then(|axum::extract::Query(mut q)| q.remove("access_token"))
    });
    match presented.as_deref() {
        Some(p) if constant_time_eq(p.as_bytes(), token.as_bytes()) => None,
        Some(_) => Some(
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "the bearer token is wrong",
            )
            .into_response(),
        ),
        None => Some(
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "this endpoint needs Authorization: Bearer <token>",
            )
            .into_response(),
        ),
    }
}

/// Counts every request by its route pattern and status, with its latency.
async fn record_metrics(node: &Node, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().cloned();
    let start = Instant::now();
    let resp = next.run(req).await;
    node.metrics.http.record(
        route.as_ref().map_or("unmatched", MatchedPath::as_str),
        resp.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    resp
}

/// Turns the plain-text rejections of axum's extractors (a body over the limit, a query or path
/// that does not deserialize) into API.md's `{"error", "message"}` shape, so that every error a
/// client can see has the one shape. Answers that already are JSON pass unchanged.
async fn json_errors(opts: &ApiOptions, resp: Response) -> Response {
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    if is_json {
        return resp;
    }
    let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
        format!(
            "the request body is over the limit of {} bytes (--max-body)",
            opts.body_limit
        )
    } else {
        let bytes = axum::body::to_bytes(resp.into_body(), 64 * 1024)
            .await
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes).trim().to_string();
        if text.is_empty() {
            status
                .canonical_reason()
                .unwrap_or("request failed")
                .to_string()
        } else {
            text
        }
    };
    ApiError::with_status(status, message).into_response()
}

/// How long a client may take to send a request body (slowloris guard).
pub const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Reads the body of a client request (not `/raft/`) up front, within the body limit and within
/// [`BODY_READ_TIMEOUT`]: a declared `Content-Length` over the limit is a `413` before a byte
/// of the body is read, a body that grows past the limit is cut off at the limit with a `413`,
/// and a client that stops sending mid-body gets a `408` and its connection closed, instead of
/// holding a handler (and its memory) forever. hyper has no body read timeout of its own, and
/// axum's `serve` sets no timer, so nothing else would end such a request.
/// `Ok` is the request with its body read; `Err` the answer to it.
async fn read_body_in_time(opts: &ApiOptions, req: Request) -> Result<Request, Response> {
    if req.uri().path().starts_with("/raft/")
        || matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS)
    {
        return Ok(req);
    }
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!(
                "the request body is over the limit of {} bytes (--max-body)",
                opts.body_limit
            ),
        )
        .into_response()
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > opts.body_limit as u64) {
        return Err(close(too_large()));
    }
    let (parts, body) = req.into_parts();
    match tokio::time::timeout(
        BODY_READ_TIMEOUT,
        axum::body::to_bytes(body, opts.body_limit),
    )
    .await
    {
        Ok(Ok(bytes)) => Ok(Request::from_parts(parts, axum::body::Body::from(bytes))),
        Ok(Err(e)) => {
            // axum reports the limit as a `LengthLimitError` ("length limit exceeded").
            let over = e.to_string().contains("length limit");
            if over {
                Err(close(too_large()))
            } else {
                Err(close(
                    ApiError::bad_request(format!("reading the request body failed: {e}"))
                        .into_response(),
                ))
            }
        }
        Err(_) => Err(close(
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                format!(
                    "the request body did not arrive within {} s",
                    BODY_READ_TIMEOUT.as_secs()
                ),
            )
            .into_response(),
        )),
    }
}

/// Marks a response as the last on its connection (the rest of the body is never read).
fn close(mut resp: Response) -> Response {
    resp.headers_mut().insert(
        header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
    resp
}
