//! Namespaces a pattern creates go away with their last socket, in Redis too: with
//! either adapter, the node unsubscribes from the namespace's channels (as Redis's
//! `PUBSUB CHANNELS` / `PUBSUB NUMPAT` show), does not subscribe to them again after a
//! Redis restart, and subscribes afresh when the namespace is created again — so
//! clients creating namespaces cannot grow a node's subscriptions without bound.

#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use std::sync::atomic::Ordering;

use redis::aio::MultiplexedConnection;
use serde_json::json;
use support::{
    Client, Node, NodeOptions, RedisServer, eventually, formed, names, within, without_hanging,
};
use switchboard_cluster::AdapterKind;

/// The namespace the tests create and remove.
const TENANT: &str = "/tenant-x";

/// Starts a node that creates `/tenant-*` namespaces on demand.
async fn tenant_node(redis: &RedisServer, adapter: AdapterKind, name: &str) -> Node {
    let node = Node::start(redis, NodeOptions::new(adapter, name)).await;
    node.io.of_matching(|name| name.starts_with("/tenant-"));
    node
}

/// A plain connection to `redis`, outside any node.
async fn observer(redis: &RedisServer) -> MultiplexedConnection {
    redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// What Redis says the cluster listens to: the channels of [`TENANT`], and how many
/// distinct patterns any connection subscribes to.
async fn listened(conn: &mut MultiplexedConnection) -> (Vec<String>, usize) {
    let channels: Vec<String> = redis::cmd("PUBSUB")
        .arg("CHANNELS")
        .arg("*")
        .query_async(conn)
        .await
        .unwrap();
    let numpat: usize = redis::cmd("PUBSUB")
        .arg("NUMPAT")
        .query_async(conn)
        .await
        .unwrap();
    let tenant = format!("#{TENANT}#");
    let mut channels: Vec<String> = channels
        .into_iter()
        .filter(|c| c.contains(&tenant))
        .collect();
    channels.sort();
    (channels, numpat)
}

/// The patterns a node subscribes per namespace: the broadcast pattern with the
/// `redis` adapter, none with `redis-streams`.
fn patterns_per_namespace(adapter: AdapterKind) -> usize {
    match adapter {
        AdapterKind::Redis => 1,
        _ => 0,
    }
}

/// The channels of [`TENANT`] Redis lists while both nodes serve it: request,
/// response and each node's own response channel (`redis`); the public channel and
/// each node's private one (`redis-streams`).
fn tenant_channels(adapter: AdapterKind) -> usize {
    match adapter {
        AdapterKind::Redis => 4,
        _ => 3,
    }
}

/// Joins [`TENANT`] on `client`'s session and reads the answer.
async fn join_tenant(client: &Client) {
    client.post(&format!("40{TENANT},")).await;
    let answer = client.get().await;
    assert!(
        answer.starts_with(&format!("40{TENANT},{{\"sid\":")),
        "{answer}"
    );
}

/// Two nodes with a socket each in [`TENANT`], its channels subscribed on both.
struct Tenants {
    redis: RedisServer,
    observer: MultiplexedConnection,
    nodes: [Node; 2],
    clients: [Client; 2],
    /// Distinct patterns before [`TENANT`] existed (the main namespace's).
    base_patterns: usize,
}

impl Tenants {
    async fn start(adapter: AdapterKind) -> Tenants {
        let redis = RedisServer::start().await;
        let mut observer = observer(&redis).await;
        let nodes = [
            tenant_node(&redis, adapter, "one").await,
            tenant_node(&redis, adapter, "two").await,
        ];
        formed(&[&nodes[0], &nodes[1]]).await;
        let (channels, base_patterns) = listened(&mut observer).await;
        assert_eq!(channels, Vec::<String>::new());
        let clients = [
            Client::handshake(&nodes[0].io).await,
            Client::handshake(&nodes[1].io).await,
        ];
        let tenants = Tenants {
            redis,
            observer,
            nodes,
            clients,
            base_patterns,
        };
        tenants.join_all(adapter).await;
        tenants
    }

    /// Every client joins [`TENANT`]; returns once both nodes hear it.
    async fn join_all(&self, adapter: AdapterKind) {
        for client in &self.clients {
            join_tenant(client).await;
        }
        let observer = self.observer.clone();
        eventually("both nodes subscribe to the tenant's channels", || {
            let mut observer = observer.clone();
            async move {
                let (channels, patterns) = listened(&mut observer).await;
                channels.len() == tenant_channels(adapter)
                    && patterns == self.base_patterns + patterns_per_namespace(adapter)
            }
        })
        .await;
    }

    /// Waits until no node listens to [`TENANT`] any more.
    async fn unsubscribed(&self, what: &str) {
        let observer = self.observer.clone();
        eventually(what, || {
            let mut observer = observer.clone();
            async move { listened(&mut observer).await == (Vec::new(), self.base_patterns) }
        })
        .await;
        for node in &self.nodes {
            assert!(
                node.io.namespace(TENANT).is_none(),
                "{} removed it",
                node.name
            );
        }
    }
}

/// The last sockets leave: both nodes unsubscribe. The namespace created again
/// subscribes again, and a broadcast from the other node reaches it.
async fn leaving_unsubscribes_and_coming_back_resubscribes(adapter: AdapterKind) {
    let tenants = Tenants::start(adapter).await;
    for client in &tenants.clients {
        client.post(&format!("41{TENANT},")).await;
    }
    tenants
        .unsubscribed("the tenant's channels are unsubscribed")
        .await;

    tenants.join_all(adapter).await;
    let [one, two] = &tenants.nodes;
    let tenant = one.io.namespace(TENANT).unwrap();
    eventually("the new namespace spans both nodes", || async {
        tenant.server_count().await.unwrap_or(0) == 2
    })
    .await;
    tenant.emit("news", json!(1));
    assert_eq!(
        tenants.clients[1].get().await,
        format!(r#"42{TENANT},["news",1]"#),
        "{adapter:?}: {} hears {}",
        two.name,
        one.name
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubsub_leaving_unsubscribes_and_coming_back_resubscribes() {
    leaving_unsubscribes_and_coming_back_resubscribes(AdapterKind::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_leaving_unsubscribes_and_coming_back_resubscribes() {
    leaving_unsubscribes_and_coming_back_resubscribes(AdapterKind::RedisStreams).await;
}

/// A removed namespace is not subscribed again when the nodes reconnect after a
/// Redis restart, while the main namespace is.
async fn a_removed_namespace_stays_unsubscribed_after_a_restart(adapter: AdapterKind) {
    let mut tenants = Tenants::start(adapter).await;
    for client in &tenants.clients {
        client.post(&format!("41{TENANT},")).await;
    }
    tenants
        .unsubscribed("the tenant's channels are unsubscribed")
        .await;

    tenants.redis.kill();
    for node in &tenants.nodes {
        eventually(&format!("{} is not ready", node.name), || async {
            !node.cluster.is_ready()
        })
        .await;
    }
    tenants.redis.restart().await;
    for node in &tenants.nodes {
        // Ready after a reconnect: the subscriber has resubscribed to all it holds.
        eventually(&format!("{} resubscribed", node.name), || async {
            let health = node.cluster.health().unwrap();
            node.cluster.is_ready() && health.reconnects.load(Ordering::Relaxed) > 0
        })
        .await;
    }
    let [one, two] = &tenants.nodes;
    formed(&[one, two]).await;
    let mut observer = observer(&tenants.redis).await;
    assert_eq!(
        listened(&mut observer).await,
        (Vec::new(), tenants.base_patterns),
        "{adapter:?}: the tenant's channels stay unsubscribed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubsub_a_removed_namespace_stays_unsubscribed_after_a_restart() {
    a_removed_namespace_stays_unsubscribed_after_a_restart(AdapterKind::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_a_removed_namespace_stays_unsubscribed_after_a_restart() {
    a_removed_namespace_stays_unsubscribed_after_a_restart(AdapterKind::RedisStreams).await;
}

/// Another node disconnects the tenant's sockets: the last one leaves while this
/// node is handling the cluster's message (for `redis-streams`, on the stream reader
/// under its routes lock), and the namespace is removed there without stalling the
/// node — broadcasts on `/` still arrive.
async fn a_remote_disconnect_removes_the_namespace(adapter: AdapterKind) {
    let tenants = Tenants::start(adapter).await;
    let [one, two] = &tenants.nodes;
    let (main, _) = Client::connected(&two.io).await;
    one.io
        .namespace(TENANT)
        .unwrap()
        .all()
        .disconnect_sockets(false);
    assert_eq!(
        tenants.clients[1].get().await,
        format!("41{TENANT},"),
        "{adapter:?}: {} disconnects its socket",
        two.name
    );
    tenants
        .unsubscribed("the tenant's channels are unsubscribed")
        .await;
    within("a broadcast on / after the removal", async {
        loop {
            one.ns().emit("alive", json!(1));
            if names(&main.events().await).contains(&"alive") {
                return;
            }
        }
    })
    .await;
}

// A deadlock here would stop the runtime's timers: bounded from outside the runtime.
#[test]
fn pubsub_a_remote_disconnect_removes_the_namespace() {
    without_hanging(a_remote_disconnect_removes_the_namespace(
        AdapterKind::Redis,
    ));
}

#[test]
fn streams_a_remote_disconnect_removes_the_namespace() {
    without_hanging(a_remote_disconnect_removes_the_namespace(
        AdapterKind::RedisStreams,
    ));
}
