//! Long-polling without sticky sessions: a polling request that reaches a node other
//! than the session's owner is served through the owner over Redis, and a session id
//! whose node tag no live node has is refused at once.

#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use http::{Method, StatusCode};
use support::{Client, Node, NodeOptions, RedisServer, UNKNOWN_SID, formed, request, within};
use switchboard_cluster::AdapterKind;

async fn two_nodes(redis: &RedisServer, adapter: AdapterKind) -> (Node, Node) {
    let one = Node::start(redis, NodeOptions::new(adapter, "one")).await;
    let two = Node::start(redis, NodeOptions::new(adapter, "two")).await;
    formed(&[&one, &two]).await;
    (one, two)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_for_another_nodes_session_are_served_by_its_owner() {
    for adapter in [AdapterKind::Redis, AdapterKind::RedisStreams] {
        let redis = RedisServer::start().await;
        let (one, two) = two_nodes(&redis, adapter).await;
        let tag = one.cluster.node_tag().unwrap();
        let on_one = Client::handshake(&one.io).await;
        assert!(
            on_one.sid.starts_with(tag.as_str()),
            "{} carries {tag:?}",
            on_one.sid
        );

        // POST `40` and the GET for its answer both go to node two.
        let on_two = on_one.via(&two.io);
        let connected = on_two.connect("").await;
        assert_eq!(
            one.ns().socket_count(),
            1,
            "{adapter:?}: the socket is on one"
        );
        assert_eq!(two.ns().socket_count(), 0, "{adapter:?}");
        assert_eq!(two.io.engine().session_count(), 0, "{adapter:?}");
        let socket = one.ns().sockets().pop().unwrap();
        assert_eq!(socket.id().to_string(), connected.id);

        // Frames the owner emits come back through node two as well.
        socket.emit("hi", serde_json::json!("there")).unwrap();
        assert_eq!(on_two.events().await, [serde_json::json!(["hi", "there"])]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_id_with_a_dead_nodes_tag_is_refused_at_once() {
    let redis = RedisServer::start().await;
    let (one, two) = two_nodes(&redis, AdapterKind::Redis).await;
    let tags = [
        one.cluster.node_tag().unwrap(),
        two.cluster.node_tag().unwrap(),
    ];
    // A tag no live node has (node tags are six base64url characters).
    let dead = ["zzzzzz", "yyyyyy"]
        .into_iter()
        .find(|t| tags.iter().all(|tag| tag.as_str() != *t))
        .unwrap();
    let sid = format!("{dead}{}", "A".repeat(14));
    let query = format!("EIO=4&transport=polling&sid={sid}");
    // A forwarded request waits for its owner up to pingInterval + pingTimeout + a
    // margin (50 s with the defaults here); no listener on the dead tag's channel means
    // the answer comes without that wait, well inside `within`'s deadline.
    assert!(one.io.engine().config().longest_poll() > support::DEADLINE);
    for method in [Method::GET, Method::POST] {
        let (status, body) = within(
            "the answer for a dead tag",
            request(&one.io, method.clone(), &query, "40"),
        )
        .await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::BAD_REQUEST, UNKNOWN_SID),
            "{method}"
        );
    }
}
