//! Producer ids: allocation, explicit ids, and every refused request.

use serde_json::{json, Value};

use super::common::*;
use super::topics::brokers_with_broker_3_reregistered;

/// What [`register`] wrote.
pub struct Producers {
    pub pr0: Value,
    pub pr1: Value,
    pub pr2: Value,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producer_ids_are_allocated_given_refused_and_read() {
    let cx = Ctx::start().await;
    brokers_with_broker_3_reregistered(&cx).await;
    let p = register(&cx).await;
    errors_and_reads(&cx, &p).await;
}

/// Producer ids for brokers 1 (allocated), 3 (explicit 1000, epoch 2) and 2 (above 1000).
pub async fn register(cx: &Ctx) -> Producers {
    let c = &cx.c;
    let (l, f, g) = (cx.l, cx.f, cx.g);
    let (_, pr0) = assert_write(
        &ok(c, f, "POST", "/register_producer/1", None).await,
        PRODUCER_KEYS,
        "register_producer with an empty body",
    );
    assert_eq!(pr0["brokerId"], 1, "{pr0}");
    assert_eq!(pr0["brokerEpoch"], 0, "{pr0}");
    let allocated = pr0["producerId"].as_i64().expect("an allocated producerId");
    assert!(allocated >= 0, "{pr0}");
    let (_, pr1) = assert_write(
        &ok(
            c,
            l,
            "POST",
            "/register_producer/3",
            Some(envelope("ProducerIdsRecord", json!({"producerId": 1000}))),
        )
        .await,
        PRODUCER_KEYS,
        "register_producer (envelope, explicit id)",
    );
    assert_eq!(
        pr1,
        json!({"brokerId": 3, "brokerEpoch": 2, "producerId": 1000})
    );
    let (_, pr2) = assert_write(
        &ok(
            c,
            g,
            "POST",
            "/register_producer/2",
            Some(json!({"brokerId": 2})),
        )
        .await,
        PRODUCER_KEYS,
        "register_producer (bare, brokerId equal to the path)",
    );
    assert_eq!(
        pr2["producerId"], 1001,
        "allocation goes above every id ever used: {pr2}"
    );
    Producers { pr0, pr1, pr2 }
}

/// A used id is a 409, an unknown broker a 404, bad bodies 400s; then `get_producer_ids`.
pub async fn errors_and_reads(cx: &Ctx, p: &Producers) {
    let c = &cx.c;
    let (l, f, g) = (cx.l, cx.f, cx.g);
    let Producers { pr0, pr1, pr2 } = p;
    expect_json_error(
        c,
        (f, "POST", "/register_producer/2"),
        json!({"producerId": 1000}),
        409,
        "conflict",
        "1000",
    )
    .await;
    expect_error(
        c,
        (l, "POST", "/register_producer/42"),
        404,
        "not_found",
        "42",
    )
    .await;
    expect_error(
        c,
        (l, "POST", "/register_producer/one"),
        400,
        "bad_request",
        "",
    )
    .await;
    for (body, needle) in [
        (json!({"producerId": -1}), "producerId"),
        (json!({"producerId": "7"}), "producerId"),
        (json!({"brokerId": 3}), "brokerId"),
        (json!({"brokerEpoch": 0}), "brokerEpoch"),
        (envelope("TopicRecord", json!({})), "ProducerIdsRecord"),
    ] {
        expect_json_error(
            c,
            (g, "POST", "/register_producer/2"),
            body,
            400,
            "bad_request",
            needle,
        )
        .await;
    }
    let v = ok(c, f, "GET", "/get_producer_ids?consistent=true", None).await;
    assert_keys(&v, &["metadata"], "get_producer_ids");
    assert_eq!(v["metadata"], json!([pr0, pr1, pr2]), "get_producer_ids");
}
