//! A client that ends its own session (`socket.disconnect()` in the official client: a
//! Socket.IO DISCONNECT) and connects again at once, keeping its `pid`, starts afresh
//! on whichever node it reaches, as with Node, however far behind the node it left
//! is with its stream writes: with `redis-streams` recovery the session saved while
//! it was connected is deleted at once, not behind those writes. Over a real
//! `redis-server`.

#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use serde_json::json;
use support::{Client, Node, NodeOptions, RedisServer, eventually, formed};
use switchboard_cluster::{AdapterKind, ClusterConfig};
use tokio::time::Instant;

fn options(name: &str) -> NodeOptions {
    NodeOptions::new(AdapterKind::RedisStreams, name).recovery()
}

/// How long Redis will still keep the session `pid` (ms); `None` when it has none.
async fn session_ttl(redis: &RedisServer, pid: &str) -> Option<i64> {
    let mut conn = support::patient_conn(redis).await;
    let ttl: i64 = redis::cmd("PTTL")
        .arg(format!("sio:session:{pid}"))
        .query_async(&mut conn)
        .await
        .unwrap();
    (ttl >= 0).then_some(ttl)
}

/// How many entries the cluster's stream holds.
async fn stream_len(redis: &RedisServer) -> u64 {
    let mut conn = support::patient_conn(redis).await;
    redis::cmd("XLEN")
        .arg(ClusterConfig::default().stream_name)
        .query_async(&mut conn)
        .await
        .unwrap()
}

/// A client on `one` in room `a`, once Redis holds its session with that room (read
/// through `two`, without taking it): the client and its CONNECT answer.
async fn in_room_a(one: &Node, two: &Node) -> (Client, support::Connected) {
    let (client, first) = Client::connected(&one.io).await;
    let pid = first.pid.clone().expect("recovery gives a pid");
    client.emit("join", &[json!("a")]).await;
    let store = two.ns().adapter().session_store().unwrap();
    eventually("Redis holds the session in room a", || async {
        store
            .peek(&pid)
            .await
            .ok()
            .flatten()
            .is_some_and(|s| s.rooms.contains(&"a".to_owned()))
    })
    .await;
    (client, first)
}

/// The client ends its session: a DISCONNECT of `/`, its Engine.IO session left open
/// (as `socket.disconnect()` on one of several namespaces); returns once `node` let
/// the socket go, and so has asked for the session's deletion.
async fn ends_its_session(client: &Client, node: &Node) {
    client.post("41").await;
    eventually("the node let the socket go", || async {
        node.ns().socket_count() == 0
    })
    .await;
}

/// The client of `first` connects to `node` again with its `pid`: it must start
/// afresh, with a new socket, outside the room it was in.
async fn starts_afresh(node: &Node, first: &support::Connected) {
    let pid = first.pid.as_deref().unwrap();
    let back = Client::handshake(&node.io).await;
    let again = back.connect(&json!({ "pid": pid }).to_string()).await;
    assert_ne!(
        again.id, first.id,
        "a session its client ended is not resumed"
    );
    let socket = || {
        node.ns()
            .sockets()
            .into_iter()
            .find(|s| s.id().as_str() == again.id)
    };
    eventually("the new socket is listed", || async { socket().is_some() }).await;
    let socket = socket().unwrap();
    assert!(!socket.recovered());
    assert!(
        !socket.rooms().contains(&"a".to_owned()),
        "{:?}",
        socket.rooms()
    );
}

/// Node one's writer is held up for the whole test: it waits for a replica that does
/// not exist (`replicas_to_ack = 1` against a Redis without replicas, as when the
/// replicas are down), so the batch of a broadcast's entry is sent again and again
/// and every write queued behind it waits as long. A busy publisher's backlog holds a
/// deletion up the same way, but only for as long as it lasts; this holds it until
/// the test is over. Before, the deletion waited in that queue: the session stayed in
/// Redis, and the client connecting to node two resumed it (`recovered`, back in room
/// `a`). Now it is written at once, while the entry still waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_its_client_ended_is_deleted_while_the_nodes_stream_writes_wait() {
    let redis = RedisServer::start().await;
    let waits_for_a_replica = ClusterConfig {
        redis_url: redis.url(),
        replicas_to_ack: 1,
        ..ClusterConfig::default()
    };
    let one = Node::start_with(waits_for_a_replica, options("one")).await;
    let two = Node::start(&redis, options("two")).await;
    formed(&[&one, &two]).await;
    let (client, first) = in_room_a(&one, &two).await;
    let pid = first.pid.clone().unwrap();

    // No replica will ever acknowledge the entry. Once it is in the stream, the
    // writer has sent its batch (and sends it again and again): the deletion cannot
    // be in that batch, and waits behind it if it is queued.
    let before = stream_len(&redis).await;
    one.ns().to("a").emit("news", json!("held up"));
    let redis = &redis;
    eventually("node one's writer sent the entry", || async {
        stream_len(redis).await > before
    })
    .await;
    assert!(
        one.cluster.flush_writes(Instant::now()).await > 0,
        "node one's stream writes wait"
    );

    ends_its_session(&client, &one).await;
    eventually("the ended session is deleted from Redis", || async {
        session_ttl(redis, &pid).await.is_none()
    })
    .await;
    assert!(
        one.cluster.flush_writes(Instant::now()).await > 0,
        "deleted while node one's stream writes still wait"
    );
    starts_afresh(&two, &first).await;
}

/// A deletion Redis could not take when it was asked for (Redis was down) is not lost:
/// it is queued and written once Redis is back, and counted as unsent meanwhile (a
/// drain waits for it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_ended_while_redis_is_down_is_deleted_once_it_is_back() {
    let mut redis = RedisServer::start().await;
    let (one, two) = (
        Node::start(&redis, options("one")).await,
        Node::start(&redis, options("two")).await,
    );
    formed(&[&one, &two]).await;
    let (client, first) = in_room_a(&one, &two).await;
    let pid = first.pid.clone().unwrap();

    redis.kill();
    ends_its_session(&client, &one).await;
    assert!(
        one.cluster.flush_writes(Instant::now()).await > 0,
        "the deletion is unsent while Redis is down"
    );
    redis.restart().await;
    let redis = &redis;
    eventually(
        "the ended session is deleted once Redis is back",
        || async { session_ttl(redis, &pid).await.is_none() },
    )
    .await;
    assert_eq!(
        one.cluster
            .flush_writes(Instant::now() + support::DEADLINE)
            .await,
        0,
        "nothing left unsent"
    );
    starts_afresh(&two, &first).await;
}
