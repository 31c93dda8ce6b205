//! The `redis-sharded` adapter's subscriber (RESP3 pushes) on one Redis 7: a room's
//! shard channel given back and taken again at once does not make it reconnect.

#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use std::sync::atomic::Ordering;

use serde_json::json;
use support::{
    Client, Node, NodeOptions, RedisServer, eventually, formed, names, patient_conn, within,
};
use switchboard_cluster::AdapterKind;

/// Subscribers of `channel` on Redis (`PUBSUB SHARDNUMSUB`).
async fn shard_subscribers(redis: &mut redis::aio::MultiplexedConnection, channel: &str) -> i64 {
    let answer: Vec<redis::Value> = redis::cmd("PUBSUB")
        .arg("SHARDNUMSUB")
        .arg(channel)
        .query_async(redis)
        .await
        .unwrap();
    match answer.get(1) {
        Some(redis::Value::Int(n)) => *n,
        other => panic!("SHARDNUMSUB answered {other:?}"),
    }
}

/// With RESP3 the connection passes its own `SUNSUBSCRIBE`'s confirmation on as a
/// push, just like Redis taking a channel back because its slot moved. A room whose
/// last member left and that is joined again before that push was read (a page
/// reload) is subscribed again first: the push then named a channel the subscriber
/// held, it took it for a moved slot, and made its whole connection again (every
/// subscription dropped, the node not ready meanwhile). Here the room is left until
/// Redis has no subscriber of its channel, then joined at once, many times: the
/// subscriber never reconnects, and the room's broadcasts still arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_left_and_joined_again_at_once_does_not_reconnect_the_subscriber() {
    let redis = RedisServer::start().await;
    let adapter = AdapterKind::RedisSharded;
    let one = Node::start(&redis, NodeOptions::new(adapter, "one")).await;
    let two = Node::start(&redis, NodeOptions::new(adapter, "two")).await;
    formed(&[&one, &two]).await;
    let conn = patient_conn(&redis).await;
    let (client, _) = Client::connected(&two.io).await;
    let socket = two.ns().sockets().pop().unwrap();
    let channel = "socket.io#/#churn#";
    let reconnects = || {
        two.cluster
            .health()
            .unwrap()
            .reconnects
            .load(Ordering::Relaxed)
    };

    for round in 0..40 {
        socket.join(&["churn"]);
        eventually(&format!("round {round}: subscribed"), || async {
            shard_subscribers(&mut conn.clone(), channel).await == 1
        })
        .await;
        socket.leave("churn");
        eventually(&format!("round {round}: given back"), || async {
            shard_subscribers(&mut conn.clone(), channel).await == 0
        })
        .await;
    }
    socket.join(&["churn"]);
    eventually("subscribed at the end", || async {
        shard_subscribers(&mut conn.clone(), channel).await == 1
    })
    .await;
    assert_eq!(reconnects(), 0, "the subscriber made its connection again");
    assert!(two.cluster.is_ready());

    one.ns().to("churn").emit("after", json!(1));
    within("the room's broadcast arrives", async {
        while !names(&client.events().await).contains(&"after") {}
    })
    .await;
    assert_eq!(reconnects(), 0);
}
