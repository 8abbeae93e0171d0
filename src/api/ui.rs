//! The web console: one page, built into the binary, that every node serves at `/ui/`.
//!
//! The page's files (plain HTML, CSS and JavaScript modules under `src/api/ui/`) are compiled in
//! with `include_bytes!`, so a node needs no network and no build step beyond `cargo build`.
//! Besides the files, the console has two small JSON answers of its own:
//! - `/ui/api/settings`: whether the cluster has a token and whether reads need it, so the page
//!   knows whether to ask for one (open, like the page itself);
//! - `/ui/api/members`: every member's own `/cluster` view, gathered by this node (as `yakt
//!   status` does), since a page may only talk to the node that served it. A read like any other:
//!   it needs the token when reads are protected.
//!
//! The brokers, topics and partitions are not here: the page folds them from `/stream`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde_json::{json, Value};

use super::error::ApiError;
use super::ops::cluster_view;
use super::ApiOptions;
use crate::raft::Node;

/// One file of the page.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

/// One [`Asset`] from a file under `src/api/ui/`, its content type given by its kind.
macro_rules! asset {
    ($name:literal, $kind:ident) => {
        Asset {
            name: $name,
            content_type: $kind,
            bytes: include_bytes!(concat!("ui/", $name)),
        }
    };
}

const HTML: &str = "text/html; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";

/// The page's files; `index.html` is served at `/ui/`, the others at `/ui/<name>`.
const ASSETS: &[Asset] = &[
    asset!("index.html", HTML),
    asset!("style.css", CSS),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("events.js", JS),
    asset!("fold.js", JS),
    asset!("vlist.js", JS),
    asset!("cluster.js", JS),
    asset!("entities.js", JS),
    asset!("records.js", JS),
];

/// The page only loads its own files and talks only to its own node.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// How long the page waits for one member's `/cluster` before showing it unreachable.
const MEMBER_TIMEOUT: Duration = Duration::from_millis(1500);

/// The console's routes.
pub fn routes() -> Router<Arc<Node>> {
    Router::new()
        .route("/", get(to_console))
        .route("/ui", get(to_console))
        .route("/ui/", get(index))
        .route("/ui/{file}", get(asset))
        .route("/ui/api/settings", get(settings))
        .route("/ui/api/members", get(members))
}

/// Whether a request is for a part of the console that anyone may load: the page's files and
/// its settings. `auth` lets these through without a token, because the page is what asks for
/// the token; everything the page then reads goes through `auth` as usual.
pub fn is_open(method: &Method, path: &str) -> bool {
    if !(method == Method::GET || method == Method::HEAD) {
        return false;
    }
    match path {
        "/" | "/ui" | "/ui/" | "/ui/api/settings" => true,
        _ => path
            .strip_prefix("/ui/")
            .is_some_and(|name| ASSETS.iter().any(|a| a.name == name)),
    }
}

async fn to_console() -> Redirect {
    Redirect::to("/ui/")
}

async fn index(headers: HeaderMap) -> Response {
    serve(&ASSETS[0], &headers)
}

async fn asset(Path(file): Path<String>, headers: HeaderMap) -> Response {
    match ASSETS.iter().find(|a| a.name == file) {
        Some(a) => serve(a, &headers),
        None => ApiError::not_found(format!("the console has no file {file:?}")).into_response(),
    }
}

/// The validator of a file: a checksum of its bytes, so that a node running a new binary
/// answers a page that changed with the new bytes, and an unchanged one with `304`.
fn etag(a: &Asset) -> String {
    format!("\"{:08x}-{:x}\"", crc32fast::hash(a.bytes), a.bytes.len())
}

/// One file, with `Cache-Control: no-cache` (the browser keeps it but asks each time whether it
/// changed), its `ETag`, and the page's security headers.
fn serve(a: &Asset, headers: &HeaderMap) -> Response {
    let tag = etag(a);
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag));
    let mut resp = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, a.content_type)], a.bytes).into_response()
    };
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(&tag) {
        h.insert(header::ETAG, v);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    resp
}

/// `{"token": "none" | "writes" | "reads"}`: what the cluster's token protects.
async fn settings(Extension(opts): Extension<ApiOptions>) -> Response {
    let token = match (&opts.token, opts.protect_reads) {
        (None, _) => "none",
        (Some(_), false) => "writes",
        (Some(_), true) => "reads",
    };
    (
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({"token": token})),
    )
        .into_response()
}

/// This node's `/cluster` view and each member's own, fetched at the same time, each within
/// [`MEMBER_TIMEOUT`]: `{"node_id", "cluster": {...}, "members": [{"id", "addr", "voter",
/// "incarnation", "view": {...} | null, "error": string | null}]}`.
async fn members(
    State(node): State<Arc<Node>>,
    Extension(opts): Extension<ApiOptions>,
) -> Response {
    let own = cluster_view(&node);
    let listed = own["members"].as_array().cloned().unwrap_or_default();
    let token = opts.token.as_deref();
    let views = futures::future::join_all(listed.iter().map(|m| {
        let own = &own;
        let node = &node;
        async move {
            let id = m["id"].as_u64();
            let addr = m["addr"].as_str().unwrap_or_default();
            let (view, error) = if id == Some(node.id) {
                (own.clone(), Value::Null)
            } else {
                match member_view(node.http(), &node.url(addr, "/cluster"), token).await {
                    Ok(v) => (v, Value::Null),
                    Err(e) => (Value::Null, Value::String(e)),
                }
            };
            json!({
                "id": m["id"], "addr": m["addr"], "voter": m["voter"],
                "incarnation": m["incarnation"], "view": view, "error": error,
            })
        }
    }))
    .await;
    (
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({"node_id": node.id, "cluster": own, "members": views})),
    )
        .into_response()
}

/// One member's `/cluster`, or why it could not be had (for a person: shown in the page).
async fn member_view(
    http: &reqwest::Client,
    url: &str,
    token: Option<&str>,
) -> Result<Value, String> {
    let mut req = http.get(url).timeout(MEMBER_TIMEOUT);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req
        .send()
        .await
        .map_err(|e| format!("unreachable: {}", short_reason(&e)))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(format!("answered {status}"));
    }
    resp.json::<Value>()
        .await
        .map_err(|e| format!("answered something that is not JSON: {e}"))
}

/// reqwest's error without the URL it repeats.
fn short_reason(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "no answer in time"
    } else if e.is_connect() {
        "connection refused or failed"
    } else {
        "request failed"
    }
}
