//! Redis going away and coming back on the same port: nodes report not ready and count
//! what failed meanwhile, then reconnect, resubscribe and carry broadcasts again —
//! for the `redis` adapter (what was published meanwhile is lost, as in Node) and the
//! `redis-streams` adapter (what was emitted meanwhile is delivered once Redis is back).

#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::json;
use support::{Client, Node, NodeOptions, RedisServer, eventually, formed, names, within};
use switchboard_cluster::AdapterKind;

/// Counters of a node's broker health.
fn health(node: &Node) -> (u64, u64) {
    let health = node.cluster.health().unwrap();
    (
        health.publish_errors.load(Ordering::Relaxed),
        health.reconnects.load(Ordering::Relaxed),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubsub_nodes_recover_from_a_redis_restart() {
    let mut redis = RedisServer::start().await;
    let adapter = AdapterKind::Redis;
    let one = Node::start(&redis, NodeOptions::new(adapter, "one")).await;
    let two = Node::start(&redis, NodeOptions::new(adapter, "two")).await;
    formed(&[&one, &two]).await;
    let (client, _) = Client::connected(&two.io).await;
    assert_eq!(health(&one), (0, 0));

    redis.kill();
    for node in [&one, &two] {
        eventually(&format!("{} is not ready", node.name), || async {
            !node.cluster.is_ready()
        })
        .await;
    }
    // Publishing while Redis is down fails, and is counted.
    eventually("a failed publish is counted", || async {
        one.ns().emit("lost", json!(0));
        tokio::time::sleep(Duration::from_millis(50)).await;
        health(&one).0 > 0
    })
    .await;

    redis.restart().await;
    for node in [&one, &two] {
        eventually(&format!("{} is ready again", node.name), || async {
            node.cluster.is_ready() && health(node).1 > 0
        })
        .await;
    }
    formed(&[&one, &two]).await;

    // Broadcasts flow again. At most once: keep emitting until one arrives. (A publish
    // that was waiting for the connection when Redis came back may arrive too.)
    let poll = tokio::spawn({
        let client = client.clone();
        async move {
            loop {
                let events = client.events().await;
                if names(&events).contains(&"back") {
                    return events;
                }
            }
        }
    });
    within("a broadcast after the restart", async {
        while !poll.is_finished() {
            one.ns().emit("back", json!(1));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let events = poll.await.unwrap();
    assert!(
        names(&events).iter().all(|n| ["back", "lost"].contains(n)),
        "{events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_nodes_deliver_what_was_emitted_while_redis_restarted() {
    let mut redis = RedisServer::start().await;
    let adapter = AdapterKind::RedisStreams;
    let one = Node::start(&redis, NodeOptions::new(adapter, "one").recovery()).await;
    let two = Node::start(&redis, NodeOptions::new(adapter, "two").recovery()).await;
    formed(&[&one, &two]).await;
    let (client, _) = Client::connected(&two.io).await;

    redis.kill();
    for node in [&one, &two] {
        eventually(&format!("{} is not ready", node.name), || async {
            !node.cluster.is_ready()
        })
        .await;
    }
    // Queued in order on node one until Redis is back.
    let first = tokio::spawn(one.ns().all().emit_durable("while-down", json!(1)));
    let second = tokio::spawn(one.ns().all().emit_durable("while-down", json!(2)));

    redis.restart().await;
    for node in [&one, &two] {
        eventually(&format!("{} is ready again", node.name), || async {
            node.cluster.is_ready() && health(node).1 > 0
        })
        .await;
    }
    for durable in [first, second] {
        within("the queued emits", durable).await.unwrap().unwrap();
    }
    let mut events = Vec::new();
    within("the events emitted while Redis was down", async {
        while events.len() < 2 {
            events.extend(client.events().await);
        }
    })
    .await;
    assert_eq!(
        events.iter().map(|e| e[1].clone()).collect::<Vec<_>>(),
        [json!(1), json!(2)],
        "each once, in order: {events:?}"
    );
    one.ns().emit("after", json!(3));
    assert_eq!(names(&client.events().await), ["after"]);
}
