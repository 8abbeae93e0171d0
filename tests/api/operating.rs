//! The operating endpoints: `/cluster` and `/health` on a follower name the leader and the seats.

use super::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_and_health_on_followers_name_the_leader_and_the_seats() {
    let cx = Ctx::start().await;
    operating(&cx).await;
}

/// `/cluster` and `/health` on the two followers.
pub async fn operating(cx: &Ctx) {
    let c = &cx.c;
    let (l, f, g) = (cx.l, cx.f, cx.g);
    let v = ok(c, f, "GET", "/cluster", None).await;
    for k in [
        "cluster_id",
        "node_id",
        "incarnation",
        "voting",
        "role",
        "leader_id",
        "leader_addr",
        "term",
        "members",
        "commit_offset",
        "applied_offset",
        "log_start_offset",
        "snapshot",
    ] {
        assert!(v.get(k).is_some(), "/cluster lacks {k}: {v}");
    }
    assert_eq!(v["leader_id"], c.nodes[l].id, "/cluster on a follower: {v}");
    assert_eq!(v["members"].as_array().map(Vec::len), Some(3), "{v}");
    for m in v["members"].as_array().unwrap() {
        assert_keys(
            m,
            &["id", "addr", "voter", "incarnation"],
            "/cluster members",
        );
        assert!(
            m["incarnation"].is_string(),
            "every seat names its incarnation: {m}"
        );
    }
    let v = ok(c, g, "GET", "/health", None).await;
    assert_eq!(v["leader_id"], c.nodes[l].id, "/health: {v}");
}
