//! Requests refused before they reach a record: unsupported media types, bodies over
//! `--max-body`, unknown paths, wrong methods, and inputs that reach axum's extractors. Every one
//! is a JSON error, never a 500, and appends nothing.

use serde_json::json;

use super::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_media_big_bodies_unknown_paths_and_wrong_methods_are_json_errors() {
    let cx = Ctx::start().await;
    bodies(&cx).await;
    paths_and_extractors(&cx).await;
}

/// 415 for a body that is not JSON, 413 for one over `--max-body` (4096).
pub async fn bodies(cx: &Ctx) {
    let c = &cx.c;
    let (l, f) = (cx.l, cx.f);
    let json_ct = Some("application/json");
    // 415: not JSON.
    expect_body_error(
        c,
        (l, "POST", "/register_broker"),
        Some("text/plain"),
        Some(br#"{"brokerId": 4, "brokerHost": "h", "brokerPort": 1}"#),
        415,
        "unsupported_media_type",
        "JSON",
    )
    .await;
    expect_body_error(
        c,
        (f, "POST", "/create_topic"),
        Some("application/x-www-form-urlencoded"),
        Some(b"name=t"),
        415,
        "unsupported_media_type",
        "JSON",
    )
    .await;
    // 413: a body over --max-body (4096), on the leader and on a follower.
    let big = json!({"name": "x".repeat(5000)}).to_string().into_bytes();
    for node in [l, f] {
        expect_body_error(
            c,
            (node, "POST", "/create_topic"),
            json_ct,
            Some(&big),
            413,
            "payload_too_large",
            "4096",
        )
        .await;
    }
}

/// 404 and 405 as JSON; bad query strings, paths, deep JSON and `Last-Event-ID`.
pub async fn paths_and_extractors(cx: &Ctx) {
    let c = &cx.c;
    let (l, f, g) = (cx.l, cx.f, cx.g);
    let json_ct = Some("application/json");
    expect_error(
        c,
        (f, "GET", "/no/such/path"),
        404,
        "not_found",
        "/no/such/path",
    )
    .await;
    expect_json_error(
        c,
        (l, "POST", "/topics"),
        json!({"name": "t"}),
        404,
        "not_found",
        "/topics",
    )
    .await;
    for (method, path) in [
        ("GET", "/register_broker"),
        ("POST", "/get_metadata"),
        ("DELETE", "/delete_broker/1"),
        ("POST", "/broker_registration_change"),
        ("PUT", "/create_topic"),
        ("POST", "/broker_mgmt/0"),
    ] {
        expect_error(c, (g, method, path), 405, "method_not_allowed", path).await;
    }
    expect_error(
        c,
        (f, "GET", "/get_metadata?consistent=maybe"),
        400,
        "bad_request",
        "consistent",
    )
    .await;

    // ---- a query parameter an endpoint does not know is refused, never ignored ----
    for path in [
        "/stream?ofset=5",
        "/fetch?ofset=5",
        "/get_metadata?at_ofset=5",
        "/get_topic/x?consistant=true",
        "/get_partitions?topicUuid=x",
    ] {
        expect_error(c, (f, "GET", path), 400, "bad_request", "unknown field").await;
    }

    // ---- inputs that reach axum's extractors or edge cases, never a 500 ----
    expect_error(c, (f, "GET", "/get_topic/%FF"), 400, "bad_request", "").await;
    expect_error(
        c,
        (g, "GET", "/get_metadata?consistent=true&consistent=true"),
        400,
        "bad_request",
        "",
    )
    .await;
    let deep = format!("{}{}", "[".repeat(2000), "]".repeat(2000)).into_bytes();
    expect_body_error(
        c,
        (l, "POST", "/create_topic"),
        json_ct,
        Some(&deep),
        400,
        "bad_request",
        "JSON",
    )
    .await;
    for id in ["18446744073709551615", "x"] {
        let url = format!("http://{}/stream", c.nodes[f].addr);
        let resp = c
            .http
            .get(&url)
            .header("last-event-id", id)
            .send()
            .await
            .expect("stream with Last-Event-ID");
        let r = Raw {
            status: resp.status().as_u16(),
            content_type: resp.headers()["content-type"].to_str().unwrap().to_string(),
            retry_after: None,
            body: resp.text().await.unwrap_or_default(),
        };
        assert_error(
            &r,
            400,
            "bad_request",
            "Last-Event-ID",
            &format!("Last-Event-ID {id}"),
        );
    }
}
