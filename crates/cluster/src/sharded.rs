//! The `redis-sharded` adapter: `@socket.io/redis-adapter` 8.x's `createShardedAdapter`
//! on the wire, for a Redis Cluster (Redis 7 sharded pub/sub; a single Redis 7 works
//! too).
//!
//! Classic pub/sub on a Redis Cluster sends every message to every node of the cluster
//! over its bus, so adding Redis nodes adds no pub/sub capacity. Shard channels live on
//! the master of their slot only, and in the dynamic modes a room's broadcasts go to a
//! channel of their own that only the nodes where the room has members subscribe to.
//!
//! - Every node serving namespace `/nsp` `SSUBSCRIBE`s `socket.io#/nsp#` (requests and
//!   broadcasts to all) and `socket.io#/nsp#<uid>#` (answers to it).
//! - [`SubscriptionMode::Dynamic`] (the default): a node also subscribes
//!   `socket.io#/nsp#<room>#` while a public room (not a socket's own) has a member
//!   here, and a broadcast to exactly one such room, without acks, is `SPUBLISH`ed there.
//!   `DynamicPrivate` does the same for sockets' own rooms; `Static` never does.
//! - Messages are `socket.io-adapter`'s `ClusterAdapter` messages (`{type, data, uid,
//!   nsp}`), JSON unless they carry binary (then notepack), as
//!   [`ClusterMessage::encode_sharded`] writes them.
//! - The server count is `PUBSUB SHARDNUMSUB socket.io#/nsp#`.
//!
//! Delivery is at most once, as with classic pub/sub: what is published while a
//! master fails over is lost; recovery stays per node.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde_json::Value;
use switchboard_engine::Shutdown;
use switchboard_engine::adapter::{
    Adapter, AdapterError, AdapterFactory, BoxFuture, BroadcastOptions, ClusterOp, MemoryAdapter,
    NodeAnswers, Room, SocketInfo, SocketsPage,
};
use switchboard_engine::sio::Namespace;
use switchboard_protocol::Sid;
use switchboard_protocol::cluster::streams::{
    ClusterMessage, MessageBody, looks_like_socket_id, private_channel, public_channel,
    room_channel,
};
use switchboard_protocol::socketio::Packet;

use crate::broker::{Broker, Publish, Sub, handler_of};
use crate::common::Namespaces;
use crate::convert::{engine_opts, relayable, rooms, wire_opts};
use crate::exchange::Exchange;
use crate::questions;
use crate::{ClusterConfig, ClusterError, NodeHandle, SubscriptionMode};

/// One node's membership of a `redis-sharded` cluster.
pub(crate) struct ShardedNode {
    config: ClusterConfig,
    broker: OnceLock<Arc<Broker>>,
    /// Questions to the other Switchboard nodes (set by `Cluster::start`).
    questions: questions::Slot,
    namespaces: Namespaces,
    /// Requests and answers (over shard channels), and this node's uid.
    exchange: Exchange,
}

impl std::fmt::Debug for ShardedNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardedNode")
            .field("uid", &self.uid())
            .finish_non_exhaustive()
    }
}

impl NodeHandle for ShardedNode {
    fn uid(&self) -> &str {
        self.exchange.uid()
    }
    fn broker(&self) -> Option<&Arc<Broker>> {
        self.broker.get()
    }
    fn questions(&self) -> &questions::Slot {
        &self.questions
    }
}

impl ShardedNode {
    pub(crate) fn start(
        config: &ClusterConfig,
        shutdown: Shutdown,
    ) -> Result<Arc<ShardedNode>, ClusterError> {
        let node = Arc::new(ShardedNode {
            config: config.clone(),
            broker: OnceLock::new(),
            questions: OnceLock::new(),
            namespaces: Namespaces::default(),
            exchange: Exchange::new(
                // `ClusterAdapter`'s uid: 8 random bytes in hex.
                format!("{:016x}", rand::random::<u64>()),
                &config.key_prefix,
                config.request_timeout,
                Publish::Shard,
                ClusterMessage::encode_sharded,
            ),
        });
        let on_message = handler_of(&node, |node: &ShardedNode, _channel, payload| {
            node.on_message(&payload);
        });
        let broker = Broker::start(config, on_message, shutdown)?;
        let _ = node.broker.set(broker);
        Ok(node)
    }

    fn broker(&self) -> &Arc<Broker> {
        self.broker.get().expect("broker set at start")
    }

    pub(crate) fn factory(self: &Arc<Self>) -> AdapterFactory {
        let node = self.clone();
        Arc::new(move |nsp: &str| {
            Arc::new(ShardedAdapter {
                node: node.clone(),
                nsp: nsp.to_owned(),
                public: public_channel(&node.config.key_prefix, nsp),
                private: private_channel(&node.config.key_prefix, nsp, node.uid()),
                index: MemoryAdapter::default(),
                room_subs: Mutex::default(),
            }) as Arc<dyn Adapter>
        })
    }

    fn namespace(&self, nsp: &str) -> Option<Arc<Namespace>> {
        self.namespaces.get(nsp)
    }

    fn message(&self, nsp: &str, body: MessageBody) -> ClusterMessage {
        self.exchange.message(nsp, body)
    }

    fn publish(&self, channel: String, message: &ClusterMessage) {
        self.exchange.publish(self.broker(), channel, message);
    }

    /// Every message of every channel this node subscribed to.
    fn on_message(&self, payload: &[u8]) {
        let message = match ClusterMessage::decode_sharded(payload) {
            Ok(m) => m,
            Err(err) => {
                tracing::debug!(error = %err, "ignoring malformed cluster message");
                return;
            }
        };
        if message.uid == self.uid() {
            return;
        }
        let Some(ns) = self.namespace(&message.nsp) else {
            return;
        };
        let Some(message) = self.exchange.on_message(self.broker(), &ns, message) else {
            return;
        };
        match message.body {
            MessageBody::Broadcast {
                packet,
                opts,
                request_id: None,
            } if relayable(&packet) => {
                ns.broadcast_local(packet, &engine_opts(&opts));
            }
            MessageBody::SocketsJoin { opts, rooms: names } => {
                ns.add_sockets_local(&engine_opts(&opts), &rooms(&names));
            }
            MessageBody::SocketsLeave { opts, rooms: names } => {
                ns.del_sockets_local(&engine_opts(&opts), &rooms(&names));
            }
            MessageBody::DisconnectSockets { opts, close } => {
                ns.disconnect_sockets_local(&engine_opts(&opts), close);
            }
            _ => {}
        }
    }
}

/// One namespace's adapter in a `redis-sharded` cluster.
#[derive(Debug)]
struct ShardedAdapter {
    node: Arc<ShardedNode>,
    nsp: String,
    public: String,
    private: String,
    index: MemoryAdapter,
    /// The rooms whose own channel this node subscribed to (dynamic modes): exactly
    /// these are given back when they empty or the namespace closes.
    room_subs: Mutex<HashSet<Room>>,
}

impl ShardedAdapter {
    fn mode(&self) -> SubscriptionMode {
        self.node.config.subscription_mode
    }

    /// Whether `room`, created by `sid` joining it, gets a channel of its own: in the
    /// dynamic mode only a public room, i.e. not a socket's own room (Node: not the id
    /// of a socket of this node).
    fn own_channel(&self, room: &str, sid: Sid) -> bool {
        match self.mode() {
            SubscriptionMode::Static => false,
            SubscriptionMode::DynamicPrivate => true,
            SubscriptionMode::Dynamic => {
                room != sid.as_str()
                    && room
                        .parse::<Sid>()
                        .map_or(true, |other| self.index.socket_rooms(other).is_empty())
            }
        }
    }

    fn lock_room_subs(&self) -> std::sync::MutexGuard<'_, HashSet<Room>> {
        self.room_subs.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn room_sub(&self, room: &str) -> Sub {
        Sub::Shard(room_channel(&self.node.config.key_prefix, &self.nsp, room))
    }

    /// Gives back the channels of `emptied` rooms this node subscribed to.
    fn rooms_emptied(&self, emptied: &[Room]) {
        let mut subs = self.lock_room_subs();
        for room in emptied {
            if subs.remove(room) {
                self.node.broker().unsubscribe(self.room_sub(room));
            }
        }
    }

    /// The channel a broadcast goes to (`computeChannel` in Node): a room's own for a
    /// broadcast to exactly one room that has one, the namespace's otherwise.
    fn channel_for(&self, rooms: &[String]) -> String {
        let dynamic = match (self.mode(), rooms) {
            (SubscriptionMode::Dynamic, [room]) => !looks_like_socket_id(room),
            (SubscriptionMode::DynamicPrivate, [_]) => true,
            _ => false,
        };
        match rooms {
            [room] if dynamic => room_channel(&self.node.config.key_prefix, &self.nsp, room),
            _ => self.public.clone(),
        }
    }
}

impl Adapter for ShardedAdapter {
    fn add_all(&self, sid: Sid, rooms: &[&str]) -> Vec<Room> {
        let created = self.index.add_all(sid, rooms);
        if self.mode() != SubscriptionMode::Static {
            let mut subs = self.lock_room_subs();
            for room in &created {
                if self.own_channel(room, sid) && subs.insert(room.clone()) {
                    self.node.broker().subscribe(self.room_sub(room));
                }
            }
        }
        created
    }
    fn del(&self, sid: Sid, room: &str) -> bool {
        let emptied = self.index.del(sid, room);
        if emptied {
            self.rooms_emptied(&[Room::from(room)]);
        }
        emptied
    }
    fn del_all(&self, sid: Sid) -> Vec<Room> {
        let emptied = self.index.del_all(sid);
        self.rooms_emptied(&emptied);
        emptied
    }
    fn socket_rooms(&self, sid: Sid) -> Vec<Room> {
        self.index.socket_rooms(sid)
    }
    fn is_in(&self, sid: Sid, room: &str) -> bool {
        self.index.is_in(sid, room)
    }
    fn socket_room_count(&self, sid: Sid) -> usize {
        self.index.socket_room_count(sid)
    }
    fn sockets_in(&self, rooms: &[Room], out: &mut Vec<Sid>) {
        self.index.sockets_in(rooms, out);
    }
    fn rooms(&self) -> Vec<Room> {
        self.index.rooms()
    }
    fn room_size(&self, room: &str) -> usize {
        self.index.room_size(room)
    }

    fn init(&self, ns: &Arc<Namespace>) {
        self.node.namespaces.insert(ns);
        self.node.broker().subscribe_all([
            Sub::Shard(self.public.clone()),
            Sub::Shard(self.private.clone()),
        ]);
    }

    /// Undoes `init` (see the `redis` adapter's `close` on ordering).
    fn close(&self, ns: &Namespace) {
        self.node.namespaces.remove(ns);
        let rooms: Vec<Room> = self.lock_room_subs().drain().collect();
        let broker = self.node.broker();
        broker.unsubscribe_all(rooms.iter().map(|room| self.room_sub(room)));
        broker.unsubscribe_all([
            Sub::Shard(self.public.clone()),
            Sub::Shard(self.private.clone()),
        ]);
    }

    fn broadcast(&self, ns: &Arc<Namespace>, packet: Packet, opts: BroadcastOptions) -> usize {
        if !opts.flags.local {
            let wire = wire_opts(&opts);
            let channel = self.channel_for(&wire.rooms);
            let message = self.node.message(
                &self.nsp,
                MessageBody::Broadcast {
                    packet: packet.clone(),
                    opts: wire,
                    request_id: None,
                },
            );
            self.node.publish(channel, &message);
        }
        ns.broadcast_local(packet, &opts)
    }

    /// Room operations, and broadcasts with acks (every node must count its clients),
    /// on the namespace's channel, as in Node.
    fn publish_op(&self, _ns: &Arc<Namespace>, opts: &BroadcastOptions, op: ClusterOp<'_>) {
        let body = match op {
            ClusterOp::Join(rooms) => MessageBody::SocketsJoin {
                opts: wire_opts(opts),
                rooms: rooms.iter().map(|r| r.to_string()).collect(),
            },
            ClusterOp::Leave(rooms) => MessageBody::SocketsLeave {
                opts: wire_opts(opts),
                rooms: rooms.iter().map(|r| r.to_string()).collect(),
            },
            ClusterOp::Disconnect { close } => MessageBody::DisconnectSockets {
                opts: wire_opts(opts),
                close,
            },
            ClusterOp::BroadcastWithAck { packet, sink } => {
                let node = &self.node;
                node.exchange.broadcast_with_ack(
                    node.broker(),
                    &self.nsp,
                    &self.public,
                    packet,
                    opts,
                    sink,
                );
                return;
            }
        };
        let message = self.node.message(&self.nsp, body);
        self.node.publish(self.public.clone(), &message);
    }

    fn fetch_remote_sockets<'a>(
        &'a self,
        _ns: &'a Arc<Namespace>,
        opts: BroadcastOptions,
        page: &'a SocketsPage,
    ) -> BoxFuture<'a, Result<Vec<SocketInfo>, AdapterError>> {
        let node = &self.node;
        Box::pin(async move {
            node.exchange
                .fetch_sockets(node.broker(), &self.nsp, &self.public, &opts, page)
                .await
        })
    }

    fn server_side_emit(&self, _ns: &Arc<Namespace>, args: Vec<Value>) {
        let node = &self.node;
        node.exchange
            .server_side_emit(node.broker(), &self.nsp, &self.public, &args);
    }

    fn server_side_emit_with_ack<'a>(
        &'a self,
        _ns: &'a Arc<Namespace>,
        args: Vec<Value>,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Vec<Value>, AdapterError>> {
        let node = &self.node;
        Box::pin(async move {
            node.exchange
                .server_side_emit_with_ack(node.broker(), &self.nsp, &self.public, &args, timeout)
                .await
        })
    }

    fn server_count(&self) -> BoxFuture<'_, Result<usize, AdapterError>> {
        Box::pin(
            self.node
                .broker()
                .server_count(Publish::Shard, &self.public),
        )
    }

    fn node_name(&self) -> Option<String> {
        questions::node_name(&self.node.questions)
    }

    fn ask_nodes<'a>(&'a self, question: &'a Value) -> BoxFuture<'a, NodeAnswers> {
        questions::ask(&self.node.questions, question)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An adapter of namespace `/` with `mode`; its node's Redis is never reached.
    fn adapter(mode: SubscriptionMode) -> ShardedAdapter {
        let config = ClusterConfig {
            adapter: crate::AdapterKind::RedisSharded,
            redis_url: "redis://127.0.0.1:1".to_owned(),
            subscription_mode: mode,
            ..ClusterConfig::default()
        };
        let node = ShardedNode::start(&config, Shutdown::never()).expect("a node");
        ShardedAdapter {
            nsp: "/".to_owned(),
            public: public_channel("socket.io", "/"),
            private: private_channel("socket.io", "/", node.uid()),
            node,
            index: MemoryAdapter::default(),
            room_subs: Mutex::default(),
        }
    }

    fn rooms(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    #[tokio::test]
    async fn broadcasts_go_to_the_channels_node_picks() {
        let sid = "AAAAAAAAAAAAAAAAAAAA";
        let dynamic = adapter(SubscriptionMode::Dynamic);
        assert_eq!(dynamic.channel_for(&rooms(&["news"])), "socket.io#/#news#");
        assert_eq!(
            dynamic.channel_for(&rooms(&[sid])),
            "socket.io#/#",
            "a socket's own room"
        );
        assert_eq!(dynamic.channel_for(&rooms(&["a", "b"])), "socket.io#/#");
        assert_eq!(dynamic.channel_for(&[]), "socket.io#/#");
        let private = adapter(SubscriptionMode::DynamicPrivate);
        assert_eq!(
            private.channel_for(&rooms(&[sid])),
            format!("socket.io#/#{sid}#")
        );
        let fixed = adapter(SubscriptionMode::Static);
        assert_eq!(fixed.channel_for(&rooms(&["news"])), "socket.io#/#");
    }

    #[tokio::test]
    async fn a_node_holds_the_channels_of_its_public_rooms_while_they_have_members() {
        let a = adapter(SubscriptionMode::Dynamic);
        let sid: Sid = "AAAAAAAAAAAAAAAAAAAA".parse().expect("a sid");
        let other: Sid = "BBBBBBBBBBBBBBBBBBBB".parse().expect("a sid");
        a.add_all(sid, &[sid.as_str(), "news"]);
        a.add_all(other, &[other.as_str(), "news", sid.as_str()]);
        let held = |a: &ShardedAdapter| {
            let mut rooms: Vec<String> = a.lock_room_subs().iter().map(|r| r.to_string()).collect();
            rooms.sort();
            rooms
        };
        // A socket's own room has no channel, even when another socket joins it.
        assert_eq!(held(&a), ["news"]);
        a.del(sid, "news");
        assert_eq!(held(&a), ["news"], "`other` is still in it");
        a.del_all(other);
        assert!(held(&a).is_empty(), "given back once empty");
        let fixed = adapter(SubscriptionMode::Static);
        fixed.add_all(sid, &["news"]);
        assert!(held(&fixed).is_empty());
    }
}
