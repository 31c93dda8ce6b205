//! The `redis` adapter's publish queue is bounded: while Redis does not answer,
//! broadcasts queue up to `MAX_PENDING_PUBLISHES` (100 000) and the rest are dropped
//! and counted, instead of growing memory without limit.

#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use std::sync::atomic::Ordering;

use serde_json::json;
use support::{Node, NodeOptions, RedisServer, eventually};
use switchboard_cluster::AdapterKind;

/// The queue's bound (the crate's `broker::MAX_PENDING_PUBLISHES`).
const BOUND: u64 = 100_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcasts_beyond_the_queue_are_dropped_and_counted() {
    let redis = RedisServer::start().await;
    let node = Node::start(&redis, NodeOptions::new(AdapterKind::Redis, "one")).await;
    let health = node.cluster.health().unwrap().clone();
    assert_eq!(health.publish_dropped.load(Ordering::Relaxed), 0);

    // Redis stops answering: the publisher waits on its first batch (at most 256).
    redis.pause();
    let extra = 5_000;
    for i in 0..BOUND + extra {
        node.ns().emit("n", json!(i));
    }
    let dropped = health.publish_dropped.load(Ordering::Relaxed);
    assert!(
        (extra - 256 * 4..=extra).contains(&dropped),
        "{dropped} of {extra} over the bound dropped"
    );
    assert!(health.publish_errors.load(Ordering::Relaxed) >= dropped);

    // Once Redis answers again, publishing goes on.
    redis.resume();
    let published = health.published.load(Ordering::Relaxed);
    eventually("publishing resumes", || async {
        node.ns().emit("after", json!(0));
        health.published.load(Ordering::Relaxed) > published
    })
    .await;
}
