//! Cross-origin reads and writes from browsers (CORS).
//!
//! API.md: `GET` endpoints answer `Access-Control-Allow-Origin: *` unless reads are protected by
//! the token; `--cors-origin ORIGIN` (repeatable) allows that origin on every endpoint and every
//! method, its preflight (`OPTIONS`) included. Written here rather than with tower-http's
//! `CorsLayer` because the policy depends on the method: `*` for reads, named origins for the
//! rest, which one static `CorsLayer` cannot say.

use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};

use super::ApiOptions;

/// Methods a listed origin may use (what the API has).
const ALLOW_METHODS: &str = "GET, HEAD, POST, PUT, DELETE";
/// Request headers a browser may send: the token, a JSON body, and `EventSource`'s resume.
const ALLOW_HEADERS: &str = "authorization, content-type, last-event-id";
/// Response headers a page may read besides the CORS-safelisted ones.
const EXPOSE_HEADERS: &str =
    "x-yakt-cluster-id, x-yakt-node-id, x-yakt-leader, retry-after, content-length";
/// How long a browser may cache a preflight answer, seconds.
const PREFLIGHT_MAX_AGE: &str = "600";

/// Who may read and write from another origin: built from [`ApiOptions`].
#[derive(Clone, Debug)]
pub struct CorsPolicy {
    /// `--cors-origin` values, exactly as a browser sends `Origin` (scheme://host[:port]).
    origins: Vec<String>,
    /// Reads answer `*`: nothing protects them.
    open_reads: bool,
}

impl CorsPolicy {
    /// The policy of a node with these options.
    pub fn new(opts: &ApiOptions) -> Self {
        Self {
            origins: opts
                .cors_origins
                .iter()
                .map(|o| o.trim().trim_end_matches('/').to_string())
                .filter(|o| !o.is_empty())
                .collect(),
            open_reads: opts.token.is_none() || !opts.protect_reads,
        }
    }

    /// The `Access-Control-Allow-Origin` value for a request with `origin` and `method`, or
    /// `None` when that origin may not use that method.
    pub fn allow(&self, origin: Option<&str>, method: &Method) -> Option<HeaderValue> {
        if let Some(o) = origin.filter(|o| self.origins.iter().any(|l| l == o)) {
            return HeaderValue::from_str(o).ok();
        }
        let is_read = method == Method::GET || method == Method::HEAD;
        (self.open_reads && is_read).then(|| HeaderValue::from_static("*"))
    }

    /// Whether the answer depends on `Origin` (so caches must key on it).
    fn varies(&self) -> bool {
        !self.origins.is_empty()
    }
}

/// The `Origin` a request names, if any (kept to mark the answer once the request is served).
pub fn origin_of(req: &Request) -> Option<String> {
    req.headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// The CORS answer to a preflight this policy allows (`204`), or `None`: then the request goes
/// on to the router like any other, and a preflight it does not allow gets the usual `405`, so
/// the browser refuses the real request. Part of the `edge` middleware (`super::middleware`).
pub fn preflight(policy: &CorsPolicy, req: &Request, origin: Option<&str>) -> Option<Response> {
    let preflight_for = (req.method() == Method::OPTIONS)
        .then(|| {
            req.headers()
                .get(header::ACCESS_CONTROL_REQUEST_METHOD)
                .and_then(|v| Method::from_bytes(v.as_bytes()).ok())
        })
        .flatten();
    let (Some(wanted), Some(_)) = (&preflight_for, origin) else {
        return None;
    };
    let allowed = policy.allow(origin, wanted)?;
    let mut resp = StatusCode::NO_CONTENT.into_response();
    let h = resp.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allowed);
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(ALLOW_METHODS),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(ALLOW_HEADERS),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static(PREFLIGHT_MAX_AGE),
    );
    vary(h, policy);
    Some(resp)
}

/// Marks the answer to a request from `origin` with `method` as readable by that origin, when
/// the policy allows it.
pub fn mark(policy: &CorsPolicy, origin: Option<&str>, method: &Method, h: &mut HeaderMap) {
    if origin.is_some() {
        if let Some(allowed) = policy.allow(origin, method) {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allowed);
            h.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static(EXPOSE_HEADERS),
            );
        }
    }
    vary(h, policy);
}

fn vary(h: &mut HeaderMap, policy: &CorsPolicy) {
    if policy.varies() {
        h.append(header::VARY, HeaderValue::from_static("origin"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(origins: &[&str], token: bool, protect_reads: bool) -> CorsPolicy {
        CorsPolicy::new(&ApiOptions {
            cors_origins: origins.iter().map(|o| o.to_string()).collect(),
            token: token.then(|| "t".to_string()),
            protect_reads,
            ..ApiOptions::default()
        })
    }

    #[test]
    fn reads_are_open_to_every_origin_unless_the_token_protects_them() {
        let open = policy(&[], false, false);
        assert_eq!(
            open.allow(Some("http://a.test"), &Method::GET)
                .as_ref()
                .map(|v| v.as_bytes()),
            Some(&b"*"[..])
        );
        assert_eq!(open.allow(Some("http://a.test"), &Method::POST), None);
        let writes_only = policy(&[], true, false);
        assert!(writes_only
            .allow(Some("http://a.test"), &Method::GET)
            .is_some());
        let protected = policy(&[], true, true);
        assert_eq!(protected.allow(Some("http://a.test"), &Method::GET), None);
    }

    #[test]
    fn a_listed_origin_may_use_every_method_and_is_echoed() {
        let p = policy(&["http://ui.test:8080/"], true, true);
        for m in [Method::GET, Method::POST, Method::PUT, Method::DELETE] {
            assert_eq!(
                p.allow(Some("http://ui.test:8080"), &m),
                Some(HeaderValue::from_static("http://ui.test:8080")),
                "{m}"
            );
        }
        assert_eq!(p.allow(Some("http://other.test"), &Method::GET), None);
        assert_eq!(p.allow(None, &Method::POST), None);
    }
}
