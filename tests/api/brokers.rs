//! Brokers: registration in every accepted form and every refused one, lookups, closing a
//! broker (and what a CLOSED broker refuses), re-registration, and registration changes.

use serde_json::{json, Value};

use super::common::*;

/// What [`register`] wrote, for the steps after it.
pub struct Brokers {
    /// Broker 1's `internalUUID`.
    pub uuid1: String,
    /// Broker 3's `internalUUID` (its new one once [`reregister`] ran).
    pub uuid3: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brokers_register_close_reregister_and_change() {
    let cx = Ctx::start().await;
    let mut b = register(&cx).await;
    register_errors(&cx, &b).await;
    lookup_errors(&cx).await;
    close(&cx, &b).await;
    closed_errors(&cx).await;
    reregister(&cx, &mut b).await;
    change(&cx).await;
    change_errors(&cx).await;
}

/// Brokers 1 (bare), 2 (envelope, via a follower) and 3 (with `rackId`), then read back.
pub async fn register(cx: &Ctx) -> Brokers {
    let c = &cx.c;
    let (l, f, g) = (cx.l, cx.f, cx.g);
    let (_, b1) = assert_write(
        &ok(
            c,
            l,
            "POST",
            "/register_broker",
            Some(json!({"brokerId": 1, "brokerHost": "kafka-1", "brokerPort": 9092})),
        )
        .await,
        BROKER_KEYS,
        "register broker 1 (bare)",
    );
    assert_eq!(
        b1["securityProtocol"], "PLAINTEXT",
        "default protocol: {b1}"
    );
    assert_eq!(b1["brokerStatus"], "ALIVE", "default status: {b1}");
    assert_eq!(b1["epoch"], 0, "first epoch: {b1}");
    let uuid1 = b1["internalUUID"]
        .as_str()
        .expect("internalUUID")
        .to_string();
    assert_eq!(uuid1.len(), 36, "internalUUID {uuid1}");
    assert_eq!(&uuid1[14..15], "4", "internalUUID {uuid1} is not a v4 UUID");
    // A write sent to a follower reaches the leader.
    let (_, b2) = assert_write(
        &ok(
            c,
            f,
            "POST",
            "/register_broker",
            Some(envelope(
                "RegisterBrokerRecord",
                json!({"brokerId": 2, "brokerHost": "kafka-2", "brokerPort": "9093",
                       "securityProtocol": "SASL_SSL", "brokerStatus": "UNFENCED"}),
            )),
        )
        .await,
        BROKER_KEYS,
        "register broker 2 (envelope, via a follower)",
    );
    assert_eq!(b2["brokerPort"], 9093, "a numeric string port: {b2}");
    assert_eq!(b2["securityProtocol"], "SASL_SSL", "{b2}");
    let mut keys3 = BROKER_KEYS.to_vec();
    keys3.push("rackId");
    let (_, b3) = assert_write(
        &ok(
            c,
            g,
            "POST",
            "/register_broker",
            Some(
                json!({"brokerId": 3, "brokerHost": "kafka-3", "brokerPort": 9094,
                        "rackId": "rack-a"}),
            ),
        )
        .await,
        &keys3,
        "register broker 3 (with rackId, via the other follower)",
    );
    let uuid3 = b3["internalUUID"].as_str().unwrap().to_string();
    // Linearizable read on a follower sees the write just made through the leader.
    let v = ok(c, g, "GET", "/get_broker/2?consistent=true", None).await;
    assert_keys(&v, &["metadata"], "get_broker");
    assert_eq!(v["metadata"], b2, "get_broker/2 on a follower (consistent)");
    let v = ok(c, f, "GET", "/get_all_brokers?consistent=true", None).await;
    assert_keys(&v, &["metadata"], "get_all_brokers");
    let ids: Vec<i64> = v["metadata"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["brokerId"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![1, 2, 3], "get_all_brokers: {v}");
    Brokers { uuid1, uuid3 }
}

/// Every malformed registration is a 400, a second one of a live broker a 409.
pub async fn register_errors(cx: &Ctx, b: &Brokers) {
    let c = &cx.c;
    let (l, f, g) = (cx.l, cx.f, cx.g);
    let uuid1 = &b.uuid1;
    let json_ct = Some("application/json");
    expect_body_error(
        c,
        (l, "POST", "/register_broker"),
        json_ct,
        Some(br#"{"brokerId": 4, "brokerHost": "#),
        400,
        "bad_request",
        "not valid JSON",
    )
    .await;
    expect_body_error(
        c,
        (f, "POST", "/register_broker"),
        json_ct,
        Some(b""),
        400,
        "bad_request",
        "JSON",
    )
    .await;
    for (body, needle) in [
        (
            json!({"brokerId": "4", "brokerHost": "h", "brokerPort": 1}),
            "brokerId",
        ),
        (
            json!({"brokerId": 4.5, "brokerHost": "h", "brokerPort": 1}),
            "brokerId",
        ),
        (
            json!({"brokerId": -1, "brokerHost": "h", "brokerPort": 1}),
            "brokerId",
        ),
        (
            json!({"brokerId": 4, "brokerHost": 7, "brokerPort": 1}),
            "brokerHost",
        ),
        (
            json!({"brokerId": 4, "brokerHost": "h", "brokerPort": true}),
            "brokerPort",
        ),
        (
            json!({"brokerId": 4, "brokerHost": "h", "brokerPort": 0}),
            "brokerPort",
        ),
        (
            json!({"brokerId": 4, "brokerHost": "h", "brokerPort": 65536}),
            "brokerPort",
        ),
        (
            json!({"brokerId": 2147483648_i64, "brokerHost": "h", "brokerPort": 1}),
            "brokerId",
        ),
        (
            json!({"brokerId": 4, "brokerHost": "two words", "brokerPort": 1}),
            "brokerHost",
        ),
        (json!({"brokerId": 4, "brokerPort": 1}), "brokerHost"),
        (json!({"brokerHost": "h", "brokerPort": 1}), "brokerId"),
        (json!({"brokerId": 4, "brokerHost": "h"}), "brokerPort"),
        (
            json!({"brokerId": 4, "brokerHots": "h", "brokerPort": 1}),
            "brokerHots",
        ),
        (
            json!({"brokerId": 4, "brokerHost": "h", "brokerPort": 1,
                "internalUUID": uuid1}),
            "internalUUID",
        ),
        (
            json!({"brokerId": 4, "brokerHost": "h", "brokerPort": 1,
                "securityProtocol": "plaintext"}),
            "securityProtocol",
        ),
        (
            json!({"brokerId": 4, "brokerHost": "h", "brokerPort": 1,
                "brokerStatus": "CLOSED"}),
            "CLOSED",
        ),
        (
            json!({"brokerId": 4, "brokerHost": "h", "brokerPort": 1,
                "brokerStatus": "DEAD"}),
            "brokerStatus",
        ),
        (json!([1, 2]), "object"),
        (
            envelope(
                "TopicRecord",
                json!({"brokerId": 4, "brokerHost": "h", "brokerPort": 1}),
            ),
            "RegisterBrokerRecord",
        ),
        (
            json!({"type": "data", "name": "RegisterBrokerRecord",
                "fields": {"brokerId": 4, "brokerHost": "h", "brokerPort": 1}}),
            "type",
        ),
        (
            json!({"type": "metadata", "name": "RegisterBrokerRecord"}),
            "fields",
        ),
    ] {
        expect_json_error(
            c,
            (f, "POST", "/register_broker"),
            body,
            400,
            "bad_request",
            needle,
        )
        .await;
    }
    // 409: broker 1 is registered and not CLOSED (through the leader and a follower).
    for node in [l, g] {
        expect_json_error(
            c,
            (node, "POST", "/register_broker"),
            json!({"brokerId": 1, "brokerHost": "other", "brokerPort": 1}),
            409,
            "conflict",
            "already registered",
        )
        .await;
    }
}

/// `get_broker` and `delete_broker` with bad or unknown ids.
pub async fn lookup_errors(cx: &Ctx) {
    let c = &cx.c;
    let (l, f, g) = (cx.l, cx.f, cx.g);
    for path in [
        "/get_broker/abc",
        "/get_broker/1.0",
        "/get_broker/-1",
        "/get_broker/99999999999",
    ] {
        expect_error(c, (f, "GET", path), 400, "bad_request", "").await;
    }
    expect_error(c, (f, "GET", "/get_broker/42"), 404, "not_found", "42").await;
    expect_error(c, (l, "PUT", "/delete_broker/x1"), 400, "bad_request", "").await;
    expect_error(c, (g, "PUT", "/delete_broker/42"), 404, "not_found", "42").await;
}

/// Deleting broker 3 closes it: it is still readable, CLOSED, and no longer listed.
pub async fn close(cx: &Ctx, b: &Brokers) {
    let c = &cx.c;
    let (f, g) = (cx.f, cx.g);
    let uuid3 = &b.uuid3;
    let v = ok(c, f, "PUT", "/delete_broker/3", None).await;
    assert_keys(&v, &["message", "offset", "brokerUUID"], "delete_broker");
    assert_eq!(
        v["brokerUUID"],
        uuid3.as_str(),
        "delete_broker answers the broker's UUID"
    );
    let closed = ok(c, g, "GET", "/get_broker/3?consistent=true", None).await["metadata"].clone();
    assert_eq!(
        closed["brokerStatus"], "CLOSED",
        "get_broker answers a CLOSED broker: {closed}"
    );
    assert_eq!(closed["epoch"], 1, "closing bumps the epoch: {closed}");
    let v = ok(c, g, "GET", "/get_all_brokers", None).await;
    assert!(
        v["metadata"]
            .as_array()
            .unwrap()
            .iter()
            .all(|b| b["brokerId"] != 3),
        "get_all_brokers lists a CLOSED broker: {v}"
    );
}

/// A CLOSED broker cannot be deleted, changed or given producer ids.
pub async fn closed_errors(cx: &Ctx) {
    let c = &cx.c;
    let (l, f, g) = (cx.l, cx.f, cx.g);
    for node in [l, f] {
        expect_error(
            c,
            (node, "PUT", "/delete_broker/3"),
            409,
            "conflict",
            "CLOSED",
        )
        .await;
    }
    expect_json_error(
        c,
        (l, "PUT", "/broker_registration_change"),
        json!({"brokerId": 3, "brokerHost": "x"}),
        409,
        "conflict",
        "CLOSED",
    )
    .await;
    expect_error(
        c,
        (g, "POST", "/register_producer/3"),
        409,
        "conflict",
        "CLOSED",
    )
    .await;
}

/// A CLOSED broker registers again with a new UUID and the next epoch.
pub async fn reregister(cx: &Ctx, b: &mut Brokers) {
    let c = &cx.c;
    let f = cx.f;
    let uuid3 = &b.uuid3;
    let (_, b3b) = assert_write(
        &ok(
            c,
            f,
            "POST",
            "/register_broker",
            Some(json!({"brokerId": 3, "brokerHost": "kafka-3b", "brokerPort": 9095})),
        )
        .await,
        BROKER_KEYS,
        "re-register CLOSED broker 3",
    );
    assert_ne!(
        b3b["internalUUID"],
        uuid3.as_str(),
        "a re-registration gets a new internalUUID"
    );
    assert_eq!(
        b3b["epoch"], 2,
        "re-registration: the CLOSED broker's epoch (1) + 1: {b3b}"
    );
    assert_eq!(b3b["brokerStatus"], "ALIVE", "{b3b}");
    let uuid3 = b3b["internalUUID"].as_str().unwrap().to_string();
    b.uuid3 = uuid3;
}

/// Registration changes under the alias, the canonical name and bare; returns the last one.
pub async fn change(cx: &Ctx) -> Value {
    let c = &cx.c;
    let (l, f, g) = (cx.l, cx.f, cx.g);
    let mut change_keys = vec!["brokerId", "brokerHost", "epoch"];
    let (_, ch1) = assert_write(
        &ok(
            c,
            f,
            "PUT",
            "/broker_registration_change",
            Some(envelope(
                "RegistrationChangeBrokerRecord",
                json!({"brokerId": 1, "brokerHost": "kafka-1.new"}),
            )),
        )
        .await,
        &change_keys,
        "broker_registration_change under the alias name",
    );
    assert_eq!(ch1["epoch"], 1, "change: epoch + 1: {ch1}");
    change_keys = vec!["brokerId", "brokerPort", "brokerStatus", "epoch"];
    let (_, ch2) = assert_write(
        &ok(
            c,
            l,
            "PUT",
            "/broker_registration_change",
            Some(envelope(
                "BrokerRegistrationChangeBrokerRecord",
                json!({"brokerId": 1, "brokerPort": "9999", "brokerStatus": "FENCED"}),
            )),
        )
        .await,
        &change_keys,
        "broker_registration_change under the canonical name",
    );
    assert_eq!(ch2["epoch"], 2, "{ch2}");
    let (_, ch3) = assert_write(
        &ok(
            c,
            g,
            "PUT",
            "/broker_registration_change",
            Some(json!({"brokerId": 2, "securityProtocol": "SSL"})),
        )
        .await,
        &["brokerId", "securityProtocol", "epoch"],
        "broker_registration_change (bare)",
    );
    let v = ok(c, f, "GET", "/get_broker/1?consistent=true", None).await["metadata"].clone();
    assert_eq!(
        (
            &v["brokerHost"],
            &v["brokerPort"],
            &v["brokerStatus"],
            &v["epoch"]
        ),
        (
            &json!("kafka-1.new"),
            &json!(9999),
            &json!("FENCED"),
            &json!(2)
        ),
        "broker 1 after two changes: {v}"
    );
    ch3
}

/// Malformed changes are 400s, a change of an unknown broker a 404.
pub async fn change_errors(cx: &Ctx) {
    let c = &cx.c;
    let (l, f) = (cx.l, cx.f);
    for (body, needle) in [
        (json!({"brokerHost": "x"}), "brokerId"),
        (json!({"brokerId": 1, "brokerPort": 0}), "brokerPort"),
        (json!({"brokerId": 1, "epoch": 5}), "epoch"),
        (json!({"brokerId": 1, "rackId": "r"}), "rackId"),
        (
            envelope("RegisterBrokerRecord", json!({"brokerId": 1})),
            "BrokerRegistrationChangeBrokerRecord",
        ),
    ] {
        expect_json_error(
            c,
            (f, "PUT", "/broker_registration_change"),
            body,
            400,
            "bad_request",
            needle,
        )
        .await;
    }
    expect_json_error(
        c,
        (l, "PUT", "/broker_registration_change"),
        json!({"brokerId": 42, "brokerHost": "x"}),
        404,
        "not_found",
        "42",
    )
    .await;
}
