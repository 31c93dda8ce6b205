//! The `redis` adapter's publish queue is bounded: while Redis does not read, what
//! the socket does not take queues up to `MAX_PENDING_PUBLISHES` (100 000) and the rest
//! are dropped and counted, instead of growing memory without limit; every publish that
//! was not dropped is answered once Redis reads again.

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

    // Redis stops reading: the kernel's socket buffers take what they can (some
    // megabytes), the queue takes its bound, the rest is dropped.
    redis.pause();
    let total = BOUND * 4;
    for i in 0..total {
        node.ns().emit("n", json!(i));
    }
    let dropped = health.publish_dropped.load(Ordering::Relaxed);
    assert!(
        (1..=total - BOUND).contains(&dropped),
        "{dropped} of {total} dropped: the queue holds {BOUND}"
    );
    assert_eq!(health.publish_errors.load(Ordering::Relaxed), dropped);

    // Once Redis reads again, every publish not dropped is answered, in order.
    redis.resume();
    eventually("every publish not dropped is answered", || async {
        health.published.load(Ordering::Relaxed) == total - dropped
    })
    .await;
    node.ns().emit("after", json!(0));
    eventually("publishing goes on", || async {
        health.published.load(Ordering::Relaxed) == total - dropped + 1
    })
    .await;
    assert_eq!(health.publish_errors.load(Ordering::Relaxed), dropped);
}

/// The `redis-streams` writer's queue is bounded in bytes too: while Redis does not
/// read, 200 events of 1 MB take at most 64 MiB of it, and the rest are dropped and
/// counted (a count of 100,000 alone would have kept them all); once Redis reads again
/// every write kept is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_writes_beyond_the_queues_bytes_are_dropped_and_counted() {
    let redis = RedisServer::start().await;
    let node = Node::start(&redis, NodeOptions::new(AdapterKind::RedisStreams, "one")).await;
    let health = node.cluster.health().unwrap().clone();
    let before = health.published.load(Ordering::Relaxed);
    redis.pause();
    let total = 200;
    let big = "x".repeat(1 << 20);
    for _ in 0..total {
        node.ns().emit("n", json!(big));
    }
    let dropped = health.publish_dropped.load(Ordering::Relaxed);
    assert!(
        (total - 64..total).contains(&dropped),
        "{dropped} of {total} dropped: the queue holds 64 MiB"
    );
    redis.resume();
    eventually("every write kept is sent", || async {
        health.published.load(Ordering::Relaxed) == before + total - dropped
    })
    .await;
}
