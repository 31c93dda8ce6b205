//! Nodes whose subscriber connection is their own (plain TCP or a Unix socket, see
//! `sub_conn`), against a real `redis-server` with a `requirepass` and an ACL user:
//! the cluster forms with either adapter, broadcasts cross, and so does a broadcast
//! larger than one read of the connection.

#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use serde_json::json;
use support::{Client, Node, NodeOptions, RedisServer, formed};
use switchboard_cluster::{AdapterKind, ClusterConfig};

const USER: &str = "app";
const USER_PASSWORD: &str = "app-password-0123456789";
const DEFAULT_PASSWORD: &str = "default-password-0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_forms_with_credentials_over_tcp_and_over_a_unix_socket() {
    let password = format!(">{USER_PASSWORD}");
    let redis = RedisServer::builder()
        .args(["--requirepass", DEFAULT_PASSWORD])
        .args(["--user", USER, "on", &password, "~*", "&*", "+@all"])
        .start()
        .await;
    let port = redis.port();
    let urls = [
        format!("redis://{USER}:{USER_PASSWORD}@127.0.0.1:{port}"),
        format!("redis://:{DEFAULT_PASSWORD}@127.0.0.1:{port}"),
        format!("{}?user={USER}&pass={USER_PASSWORD}", redis.unix_url()),
    ];
    for url in urls {
        for adapter in [AdapterKind::Redis, AdapterKind::RedisStreams] {
            let config = ClusterConfig {
                redis_url: url.clone(),
                ..ClusterConfig::default()
            };
            let one = Node::start_with(config.clone(), NodeOptions::new(adapter, "one")).await;
            let two = Node::start_with(config, NodeOptions::new(adapter, "two")).await;
            formed(&[&one, &two]).await;

            let (on_two, _) = Client::connected(&two.io).await;
            // Larger than the subscriber's 64 KiB reads.
            let big = "x".repeat(300_000);
            one.ns().emit("small", json!(adapter.as_str()));
            one.ns().emit("big", json!(big));
            let mut events = Vec::new();
            while events.len() < 2 {
                events.extend(on_two.events().await);
            }
            assert_eq!(
                events,
                [json!(["small", adapter.as_str()]), json!(["big", big])],
                "{url} {adapter:?}"
            );
        }
    }
}
