//! Broadcasts outside the main namespace: with either adapter, an event emitted in
//! `/chat` on one node reaches the `/chat` sockets of another node as a `/chat`
//! packet. (The streams adapter, like Node's, writes the packet without its namespace;
//! the reader takes it from the entry.)

#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use serde_json::json;
use support::{Client, Node, NodeOptions, RedisServer, eventually};
use switchboard_cluster::AdapterKind;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcast_in_a_namespace_arrives_in_that_namespace() {
    for adapter in [AdapterKind::Redis, AdapterKind::RedisStreams] {
        let redis = RedisServer::start().await;
        let one = Node::start(&redis, NodeOptions::new(adapter, "one")).await;
        let two = Node::start(&redis, NodeOptions::new(adapter, "two")).await;
        let chats = [one.io.of("/chat"), two.io.of("/chat")];
        for chat in &chats {
            eventually(&format!("{adapter:?}: /chat spans both nodes"), || async {
                chat.server_count().await.unwrap_or(0) == 2
            })
            .await;
        }

        let client = Client::handshake(&two.io).await;
        client.post("40/chat,").await;
        let answer = client.get().await;
        assert!(answer.starts_with("40/chat,{\"sid\":"), "{answer}");

        one.io.of("/chat").emit("news", json!(1));
        assert_eq!(client.get().await, r#"42/chat,["news",1]"#, "{adapter:?}");
        assert_eq!(two.ns().socket_count(), 0, "nothing joined /");
    }
}
