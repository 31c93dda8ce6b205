//! The `redis` adapter (`@socket.io/redis-adapter` on the wire) between Switchboard
//! nodes in one process, over a real `redis-server`: broadcasts, `fetchSockets` and
//! the server count, observed through the engine API and polling clients.

#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use std::collections::BTreeSet;

use serde_json::json;
use support::{Client, Node, NodeOptions, RedisServer, eventually, formed, names};
use switchboard_cluster::AdapterKind;

async fn node(redis: &RedisServer, name: &str) -> Node {
    Node::start(redis, NodeOptions::new(AdapterKind::Redis, name)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcast_reaches_room_members_on_other_nodes_except_the_excluded() {
    let redis = RedisServer::start().await;
    let (one, two) = (node(&redis, "one").await, node(&redis, "two").await);
    formed(&[&one, &two]).await;

    // Two members of room `r` on node two, one of them excluded by the sender.
    let (member, _) = Client::connected(&two.io).await;
    let (excluded, excluded_socket) = Client::connected(&two.io).await;
    for client in [&member, &excluded] {
        client.emit("join", &[json!("r")]).await;
    }
    eventually("both joined r on node two", || async {
        two.ns().adapter().room_size("r") == 2
    })
    .await;

    one.ns()
        .to("r")
        .except(excluded_socket.id.as_str())
        .emit("news", json!("hello"));
    // Then a marker for the excluded socket alone. Both are published in order on
    // node one's connection and read in order from node two's: had the broadcast
    // reached the excluded socket, it would come before the marker.
    one.ns()
        .to(excluded_socket.id.as_str())
        .emit("marker", json!(1));

    assert_eq!(member.events().await, [json!(["news", "hello"])]);
    assert_eq!(names(&excluded.events().await), ["marker"]);
}

/// With recovery on, a socket that dropped and resumes on its own node gets what other
/// nodes sent to its rooms meanwhile, even when it was that node's only member of the
/// room (found by the mixed-cluster interop test: the room filter skipped those).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_resuming_on_its_node_gets_what_other_nodes_sent_to_its_rooms_meanwhile() {
    let redis = RedisServer::start().await;
    let options = |name| NodeOptions::new(AdapterKind::Redis, name).recovery();
    let one = Node::start(&redis, options("one")).await;
    let two = Node::start(&redis, options("two")).await;
    formed(&[&one, &two]).await;

    let (client, first) = Client::connected(&one.io).await;
    let pid = first.pid.clone().expect("recovery gives a pid");
    client.emit("join", &[json!("r")]).await;
    eventually("the client joined r", || async {
        one.ns().adapter().room_size("r") == 1
    })
    .await;
    two.ns().to("r").emit("seq", json!(0));
    let seen = client.events().await;
    assert_eq!(names(&seen), ["seq"]);
    let last_seen = seen[0].as_array().unwrap().last().unwrap().clone();

    client.close().await;
    eventually("node one let the socket go", || async {
        one.ns().socket_count() == 0
    })
    .await;
    // Sent from node two while node one has no member of `r` (and none with the
    // socket's id); then a marker to a live socket of node one, published after it on
    // the same connection, so once the marker is in, so is the event.
    let (witness, witness_socket) = Client::connected(&one.io).await;
    two.ns().to("r").emit("seq", json!(1));
    two.ns()
        .to(witness_socket.id.as_str())
        .emit("marker", json!(1));
    assert_eq!(names(&witness.events().await), ["marker"]);

    let back = Client::handshake(&one.io).await;
    let auth = json!({"pid": pid, "offset": last_seen}).to_string();
    let resumed = back.connect(&auth).await;
    assert_eq!(resumed.id, first.id, "same socket id");
    let mut replayed = resumed.events;
    if replayed.is_empty() {
        replayed = back.events().await;
    }
    assert_eq!(
        replayed
            .iter()
            .map(|e| e.as_array().unwrap()[..2].to_vec())
            .collect::<Vec<_>>(),
        [vec![json!("seq"), json!(1)]]
    );
    assert!(one.ns().sockets().iter().any(|s| s.recovered()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_sockets_sees_the_sockets_of_every_node() {
    let redis = RedisServer::start().await;
    let (one, two) = (node(&redis, "one").await, node(&redis, "two").await);
    formed(&[&one, &two]).await;

    let (_a, a) = Client::connected(&one.io).await;
    let (b_client, b) = Client::connected(&two.io).await;
    let (_c, c) = Client::connected(&two.io).await;
    b_client.emit("join", &[json!("r")]).await;
    eventually("b joined r", || async {
        two.ns().adapter().room_size("r") == 1
    })
    .await;

    for asking in [&one, &two] {
        let all = asking.ns().all().fetch_sockets().await.unwrap();
        let ids: BTreeSet<&str> = all.iter().map(|s| s.id.as_str()).collect();
        let expected: BTreeSet<&str> = [&a.id, &b.id, &c.id].map(String::as_str).into();
        assert_eq!(ids, expected, "asked on {}", asking.name);
        // Each socket comes with its own node's data, rooms and handshake.
        let b_info = all.iter().find(|s| s.id == b.id).unwrap();
        assert_eq!(b_info.data, json!({"node": "two"}));
        assert!(b_info.rooms.contains(&"r".to_owned()), "{:?}", b_info.rooms);
        assert_eq!(b_info.handshake["query"]["transport"], "polling");
    }
    let in_r = one.ns().to("r").fetch_sockets().await.unwrap();
    assert_eq!(
        in_r.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        [b.id.as_str()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_count_drops_when_a_node_shuts_down() {
    let redis = RedisServer::start().await;
    let one = node(&redis, "one").await;
    let two = node(&redis, "two").await;
    let mut three = node(&redis, "three").await;
    formed(&[&one, &two, &three]).await;

    three.shut_down();
    for remaining in [&one, &two] {
        eventually(&format!("{} counts 2 nodes", remaining.name), || async {
            remaining.server_count().await == 2
        })
        .await;
    }
    // The stopped node's broker tasks end on their own: the others may count two
    // (Redis saw the connection close) a moment before its health says so.
    eventually("a stopped node is not ready", || async {
        !three.cluster.is_ready()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_fetched_from_another_node_carry_no_credentials() {
    let redis = RedisServer::start().await;
    let (one, two) = (node(&redis, "one").await, node(&redis, "two").await);
    formed(&[&one, &two]).await;

    let client = Client::handshake_with(
        &two.io,
        &[
            ("cookie", "session=s3cret-cookie"),
            ("authorization", "Bearer s3cret-bearer"),
            ("user-agent", "test-agent"),
        ],
    )
    .await;
    let connected = client
        .connect(r#"{"token":"s3cret-token","room":"lobby"}"#)
        .await;
    let all = one.ns().all().fetch_sockets().await.unwrap();
    let info = all.iter().find(|s| s.id == connected.id).unwrap();
    // Other headers cross as Node sends them; the credentials do not.
    assert_eq!(info.handshake["headers"]["user-agent"], "test-agent");
    let sent = info.handshake.to_string();
    for secret in ["s3cret-cookie", "s3cret-bearer", "s3cret-token"] {
        assert!(!sent.contains(secret), "{secret} in {sent}");
    }
}

/// `socketsJoin`, `socketsLeave` and `disconnectSockets` called on one node act on the
/// sockets of the others, over both adapters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_operations_reach_the_sockets_of_other_nodes() {
    for kind in [AdapterKind::Redis, AdapterKind::RedisStreams] {
        let redis = RedisServer::start().await;
        let one = Node::start(&redis, NodeOptions::new(kind, "one")).await;
        let two = Node::start(&redis, NodeOptions::new(kind, "two")).await;
        formed(&[&one, &two]).await;

        let (client, _) = Client::connected(&two.io).await;
        client.emit("join", &[json!("r")]).await;
        eventually("the client joined r on node two", || async {
            two.ns().adapter().room_size("r") == 1
        })
        .await;

        one.ns().to("r").sockets_join(&["x"]);
        eventually("node one's socketsJoin reached node two", || async {
            two.ns().adapter().room_size("x") == 1
        })
        .await;
        one.ns().to("x").sockets_leave("r");
        eventually("node one's socketsLeave reached node two", || async {
            two.ns().adapter().room_size("r") == 0
        })
        .await;
        one.ns().to("x").disconnect_sockets(false);
        eventually("node one's disconnectSockets reached node two", || async {
            two.ns().socket_count() == 0
        })
        .await;
    }
}

/// Anyone who can publish on Redis can send a broadcast of up to 512 MiB, which
/// decoding would expand about 32 times. A node decodes at most 16 MiB: a valid
/// broadcast of 17 MiB published by hand is dropped undecoded and counted, and the
/// next one, of ordinary size, still arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_too_long_to_decode_is_dropped_and_counted() {
    use std::sync::atomic::Ordering;
    use switchboard_protocol::cluster::redis_adapter::BroadcastMessage;
    use switchboard_protocol::socketio::{Packet, PacketType};
    let redis = RedisServer::start().await;
    let one = node(&redis, "one").await;
    formed(&[&one]).await;
    let (client, _) = Client::connected(&one.io).await;
    let health = one.cluster.health().unwrap().clone();
    let mut conn = support::patient_conn(&redis).await;
    for (event, size) in [("big", 17 << 20), ("small", 10)] {
        let message = BroadcastMessage {
            uid: "forged".to_owned(),
            packet: Packet::new(
                PacketType::Event,
                "/",
                Some(json!([event, "x".repeat(size)])),
            ),
            opts: Default::default(),
        };
        let _: usize = redis::cmd("PUBLISH")
            .arg("socket.io#/#")
            .arg(message.encode())
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    assert_eq!(names(&client.events().await), ["small"]);
    assert_eq!(health.oversized.load(Ordering::Relaxed), 1);
}
