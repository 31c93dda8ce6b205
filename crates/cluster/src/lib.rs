//! Switchboard's cluster: adapters that connect the nodes through Redis, speaking the
//! wire formats of the Node.js Socket.IO adapters so Switchboard nodes and Node.js
//! servers can share one cluster (DESIGN §3, §5).
//!
//! - [`AdapterKind::Redis`]: `@socket.io/redis-adapter` 8.x (classic pub/sub,
//!   notepack). At most once, like Node: what is published while Redis is down is
//!   lost; recovery stays per node.
//! - [`AdapterKind::RedisStreams`]: `@socket.io/redis-streams-adapter` 0.3 (XADD /
//!   XREAD on one stream, `sio:session:<pid>` keys). Durable: broadcasts are delivered
//!   in stream order on every node and a client resumes on any node, even after its
//!   node was SIGKILLed, because sessions are written when they change, not only when
//!   a socket disconnects.
//!
//! Layout: `connect` (the Redis client a URL makes: TLS, credentials, the URL as it
//! may be printed), `sentinel` and `redis_cluster` (the other kinds of URL), `broker`
//! (connections, reconnect, health), `requests` (pending cross-node requests), `common`
//! (what the adapters do alike: broadcasts with acks, answers to server-side emits),
//! `exchange` (the requests and answers of `socket.io-adapter`'s `ClusterAdapter`, which
//! `streams` and `sharded` share), `pubsub`, `streams` and `sharded` (the adapters, on the
//! wire types of `switchboard_protocol::cluster`), `convert` (engine types to and from
//! those wire types), `forward` (serving long-polling requests through the node that owns
//! the session, in frames signed with the [`ClusterSecret`]), `questions` (what one
//! Switchboard node asks the others beyond the Node adapters' protocol: the HTTP API's
//! diagnosis for the whole cluster), `sign` (the signature both put on their frames),
//! [`admin_sessions`] (the Socket.IO Admin UI's login sessions, in the key scheme of
//! its Node package's Redis store).

/// The room-index half of [`Adapter`](switchboard_engine::adapter::Adapter), for a
/// cluster adapter that keeps its local index in a `MemoryAdapter` field `index`.
macro_rules! delegate_room_index {
    () => {
        fn add_all(&self, sid: Sid, rooms: &[&str]) -> Vec<Room> {
            self.index.add_all(sid, rooms)
        }
        fn del(&self, sid: Sid, room: &str) -> bool {
            self.index.del(sid, room)
        }
        fn del_all(&self, sid: Sid) -> Vec<Room> {
            self.index.del_all(sid)
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
    };
}

pub mod admin_sessions;
mod broker;
mod common;
mod connect;
mod convert;
mod exchange;
mod forward;
mod pub_conn;
mod pubsub;
mod questions;
mod redis_cluster;
mod requests;
mod sentinel;
mod sharded;
mod sign;
mod streams;
mod sub_conn;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use switchboard_engine::Shutdown;
use switchboard_engine::adapter::{AdapterFactory, memory_factory};
use switchboard_engine::config::NodeTag;
use switchboard_engine::eio::server::EngineServer;

pub use broker::{Health, MAX_PEER_MESSAGE_BYTES};
pub use connect::{check_ca_file, check_redis_url, is_tls_url, ping, redact_url};
pub use convert::without_credentials;
pub use questions::Answerer;
pub use redis_cluster::check_key_name;

/// Which adapter connects the nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AdapterKind {
    /// One node, rooms in memory (the embedded default).
    #[default]
    Memory,
    /// Redis pub/sub, wire-compatible with `@socket.io/redis-adapter` 8.x.
    Redis,
    /// Redis Streams, wire-compatible with `@socket.io/redis-streams-adapter` 0.3.
    RedisStreams,
    /// Sharded pub/sub (`SSUBSCRIBE`/`SPUBLISH`, Redis 7), wire-compatible with
    /// `@socket.io/redis-adapter` 8.x's `createShardedAdapter`: for a Redis Cluster,
    /// where classic pub/sub sends every message to every node of the cluster.
    RedisSharded,
}

impl AdapterKind {
    /// The name as configured (`memory`, `redis`, `redis-streams`).
    pub fn as_str(self) -> &'static str {
        match self {
            AdapterKind::Memory => "memory",
            AdapterKind::Redis => "redis",
            AdapterKind::RedisStreams => "redis-streams",
            AdapterKind::RedisSharded => "redis-sharded",
        }
    }
}

impl std::str::FromStr for AdapterKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "memory" => Ok(AdapterKind::Memory),
            "redis" => Ok(AdapterKind::Redis),
            "redis-streams" => Ok(AdapterKind::RedisStreams),
            "redis-sharded" => Ok(AdapterKind::RedisSharded),
            other => Err(format!(
                "unknown adapter {other:?} (expected memory, redis, redis-streams or redis-sharded)"
            )),
        }
    }
}

/// Which channels the `redis-sharded` adapter publishes on (`subscriptionMode` of
/// `createShardedAdapter`; every node of a cluster must use the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SubscriptionMode {
    /// Two channels per namespace: every node hears every broadcast.
    Static,
    /// Also one channel per public room, subscribed by the nodes where the room has
    /// members: a broadcast to one room reaches only those nodes (the default).
    #[default]
    Dynamic,
    /// Like `Dynamic`, and one channel per socket's own room too (1:1 messages).
    DynamicPrivate,
}

impl SubscriptionMode {
    /// The name as configured.
    pub fn as_str(self) -> &'static str {
        match self {
            SubscriptionMode::Static => "static",
            SubscriptionMode::Dynamic => "dynamic",
            SubscriptionMode::DynamicPrivate => "dynamic-private",
        }
    }
}

impl std::str::FromStr for SubscriptionMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "static" => Ok(SubscriptionMode::Static),
            "dynamic" => Ok(SubscriptionMode::Dynamic),
            "dynamic-private" => Ok(SubscriptionMode::DynamicPrivate),
            other => Err(format!(
                "unknown subscription mode {other:?} (expected static, dynamic or dynamic-private)"
            )),
        }
    }
}

/// Settings of the cluster. `Debug` shows the URL redacted and never the secret.
#[derive(Clone, PartialEq)]
pub struct ClusterConfig {
    /// The adapter.
    pub adapter: AdapterKind,
    /// `redis://[user][:password@]host[:port][/db]`, `rediss://…` for TLS;
    /// `redis+sentinel://…` for Sentinels, `redis+cluster://…` for a Redis Cluster.
    pub redis_url: String,
    /// Extra CA certificates (PEM) trusted for a `rediss://` URL, besides the system's.
    pub redis_ca_file: Option<PathBuf>,
    /// Signs what nodes send each other beyond the Node adapters' protocol (forwarded
    /// polling requests, node questions). Required by the Redis adapters:
    /// [`Cluster::start`] refuses to run one without it.
    pub secret: Option<ClusterSecret>,
    /// Channel prefix (Node's `key` / `channelPrefix`), `socket.io` by default.
    pub key_prefix: String,
    /// The stream's name (streams adapter), `socket.io` by default.
    pub stream_name: String,
    /// Approximate most entries kept in the stream (`MAXLEN ~`), 10 000 by default
    /// as in Node. Recovery reaches back at most this far.
    pub stream_max_len: usize,
    /// Recovery session key prefix, `sio:session:` by default.
    pub session_key_prefix: String,
    /// How long a cross-node request waits for every node (Node: 5 s).
    pub request_timeout: Duration,
    /// `redis-streams`: replicas that must hold an event (`WAIT`) before it counts as
    /// written and is acknowledged; 0 (the default) does not wait. With Sentinel, 1
    /// keeps a failover from losing an acknowledged event.
    pub replicas_to_ack: usize,
    /// `redis-sharded`: which channels broadcasts go to.
    pub subscription_mode: SubscriptionMode,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            adapter: AdapterKind::Memory,
            redis_url: "redis://127.0.0.1:6379".to_owned(),
            redis_ca_file: None,
            secret: None,
            key_prefix: "socket.io".to_owned(),
            stream_name: "socket.io".to_owned(),
            stream_max_len: 10_000,
            session_key_prefix: "sio:session:".to_owned(),
            request_timeout: Duration::from_secs(5),
            replicas_to_ack: 0,
            subscription_mode: SubscriptionMode::Dynamic,
        }
    }
}

impl std::fmt::Debug for ClusterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterConfig")
            .field("adapter", &self.adapter)
            .field("redis_url", &redact_url(&self.redis_url))
            .field("redis_ca_file", &self.redis_ca_file)
            .field("secret", &self.secret)
            .field("key_prefix", &self.key_prefix)
            .field("stream_name", &self.stream_name)
            .field("stream_max_len", &self.stream_max_len)
            .field("session_key_prefix", &self.session_key_prefix)
            .field("request_timeout", &self.request_timeout)
            .field("replicas_to_ack", &self.replicas_to_ack)
            .field("subscription_mode", &self.subscription_mode)
            .finish()
    }
}

/// The forwarding frames' parser behind their signature check, for the `forward_frame`
/// fuzz target (`crates/fuzz-targets`); not an API. `unsigned` is a frame after its tag.
#[doc(hidden)]
pub fn fuzz_forward_frame(unsigned: &[u8]) {
    forward::frame::fuzz(unsigned);
}

/// The node questions' frame parser behind its signature check, for a fuzz target;
/// not an API. `unsigned` is a frame after its tag. Returns the body of the frame that
/// opened and of the same frame sealed and opened again, for the target to compare.
#[doc(hidden)]
pub fn fuzz_question_frame(unsigned: &[u8]) -> Option<(serde_json::Value, serde_json::Value)> {
    questions::frame::fuzz(unsigned)
}

/// The secret every node of a cluster shares, to seal the forwarding frames (encrypted
/// and authenticated) and sign the node questions they send each other over Redis
/// (see the `forward`, `questions` and `sign` modules): whoever can read or publish on
/// the Redis but does not know it cannot read a forwarded request (its session id
/// included), make a node run a polling request or answer one, nor ask a node for its
/// disconnect reports or slip forged ones into an answer. At least [`ClusterSecret::MIN_LEN`] bytes; never
/// printed.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterSecret(Arc<str>);

impl ClusterSecret {
    /// Shortest secret accepted: 32 bytes, the HMAC-SHA256 key size, so a random
    /// secret of that length cannot be guessed.
    pub const MIN_LEN: usize = 32;

    /// The secret, if it is long enough.
    pub fn new(secret: &str) -> Result<ClusterSecret, String> {
        if secret.len() < Self::MIN_LEN {
            return Err(format!(
                "must be at least {} bytes (e.g. `openssl rand -hex 32`)",
                Self::MIN_LEN
            ));
        }
        Ok(ClusterSecret(secret.into()))
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl std::fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterSecret(***)")
    }
}

/// Why the cluster could not start.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The Redis URL does not parse (shown redacted).
    #[error("invalid redis url: {0}")]
    BadUrl(String),
    /// The CA file for TLS cannot be read or holds no certificate.
    #[error("redis CA file {0}")]
    CaFile(String),
    /// A Redis adapter was asked for without the cluster secret.
    #[error("a redis adapter needs the cluster secret (`cluster.secret`)")]
    NoSecret,
    /// Redis refused the credentials of the URL.
    #[error("redis refused the credentials of the redis url: {0}")]
    Auth(String),
    /// A Redis command failed.
    #[error("redis: {0}")]
    Redis(String),
    /// No Sentinel answered (each unreachable, or silent); the last one's failure.
    #[error("no Sentinel answered: {0}")]
    SentinelsUnreachable(String),
}

/// How often [`Cluster::flush_writes`] looks at the write queue.
const FLUSH_POLL_INTERVAL: Duration = Duration::from_millis(10);

/// A running cluster membership: the adapter factory to build the server with, and
/// the broker's health.
#[derive(Clone)]
pub struct Cluster {
    factory: AdapterFactory,
    health: Option<Arc<Health>>,
    node: Option<Arc<dyn NodeHandle>>,
    /// The node's questions to the other Switchboard nodes and its answers to theirs
    /// (a Redis adapter only). Held here: the node's adapters hold them weakly.
    questions: Option<Arc<questions::Questions>>,
    key_prefix: String,
    kind: AdapterKind,
    /// Signs the forwarding frames (always set with a Redis adapter).
    secret: Option<ClusterSecret>,
    /// Starts this node's session ids (random, 6 base64url characters: one in 69
    /// billion that two nodes draw the same).
    tag: Option<NodeTag>,
    /// Ends the tasks started later ([`Cluster::serve_forwarded`]'s owner watch).
    shutdown: Shutdown,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").finish_non_exhaustive()
    }
}

/// What the rest of the process may ask of a running adapter node.
trait NodeHandle: Send + Sync {
    /// This node's id on the wire (`uid`).
    fn uid(&self) -> &str;
    /// Whether the node takes part in the cluster yet (e.g. reads the stream).
    fn joined(&self) -> bool {
        true
    }
    /// The node's Redis connections (set once the node started).
    fn broker(&self) -> Option<&Arc<broker::Broker>>;
    /// Where the node's adapters find its questions (set by [`Cluster::start`]).
    fn questions(&self) -> &questions::Slot;
    /// Bytes of ordered writes (stream entries, session saves and deletions) queued
    /// and not yet taken by Redis.
    fn unsent_bytes(&self) -> usize {
        0
    }
}

impl Cluster {
    /// Starts the cluster membership (connects lazily: Redis may come up later). A
    /// Redis adapter needs [`ClusterConfig::secret`].
    pub fn start(config: &ClusterConfig, shutdown: Shutdown) -> Result<Cluster, ClusterError> {
        if config.adapter != AdapterKind::Memory && config.secret.is_none() {
            return Err(ClusterError::NoSecret);
        }
        let secret = config.secret.clone();
        let (factory, node) = match config.adapter {
            AdapterKind::Memory => {
                return Ok(Cluster {
                    factory: memory_factory(),
                    health: None,
                    node: None,
                    questions: None,
                    key_prefix: config.key_prefix.clone(),
                    kind: config.adapter,
                    secret: None,
                    tag: None,
                    shutdown,
                });
            }
            AdapterKind::Redis => {
                let node = pubsub::PubSubNode::start(config, shutdown.clone())?;
                (node.factory(), node as Arc<dyn NodeHandle>)
            }
            AdapterKind::RedisSharded => {
                let node = sharded::ShardedNode::start(config, shutdown.clone())?;
                (node.factory(), node as Arc<dyn NodeHandle>)
            }
            AdapterKind::RedisStreams => {
                let node = streams::StreamsNode::start(config, shutdown.clone())?;
                (node.factory(), node as Arc<dyn NodeHandle>)
            }
        };
        let questions = node
            .broker()
            .and_then(|broker| questions::Questions::start(broker, config, node.uid()));
        if let Some(questions) = &questions {
            let _ = node.questions().set(Arc::downgrade(questions));
        }
        Ok(Cluster {
            factory,
            health: node.broker().map(|b| b.health().clone()),
            node: Some(node),
            questions,
            key_prefix: config.key_prefix.clone(),
            kind: config.adapter,
            secret,
            tag: new_tag(),
            shutdown,
        })
    }

    /// Waits, until `until` at most, for the node's queued writes to Redis to be
    /// written (`redis-streams`: stream entries, and the sessions saved when a drain
    /// closed their sockets); the bytes still unsent then (0: all written; always 0
    /// for the other adapters, which queue no such writes). For a drain: the process
    /// exits next, and a write still queued is lost.
    pub async fn flush_writes(&self, until: tokio::time::Instant) -> usize {
        let Some(node) = &self.node else { return 0 };
        loop {
            let unsent = node.unsent_bytes();
            if unsent == 0 || tokio::time::Instant::now() >= until {
                return unsent;
            }
            tokio::time::sleep(FLUSH_POLL_INTERVAL).await;
        }
    }

    /// The adapter factory for [`switchboard_engine::Io::with_adapter`].
    pub fn adapter_factory(&self) -> AdapterFactory {
        self.factory.clone()
    }

    /// Whether the broker is reachable (always true in memory mode).
    pub fn is_ready(&self) -> bool {
        self.health.as_ref().is_none_or(|h| h.is_up())
            && self.node.as_ref().is_none_or(|n| n.joined())
    }

    /// The broker's health counters (none in memory mode).
    pub fn health(&self) -> Option<&Arc<Health>> {
        self.health.as_ref()
    }

    /// The adapter this node runs.
    pub fn adapter(&self) -> AdapterKind {
        self.kind
    }

    /// This node's id on the wire, if clustered.
    pub fn uid(&self) -> Option<&str> {
        self.node.as_ref().map(|n| n.uid())
    }

    /// The tag this node puts at the start of its Engine.IO session ids
    /// ([`EngineConfig::node_tag`](switchboard_engine::EngineConfig::node_tag)), so any
    /// node can tell which one owns a polling session. None in memory mode.
    pub fn node_tag(&self) -> Option<NodeTag> {
        self.tag.clone()
    }

    /// The Socket.IO Admin UI's login sessions in Redis (none in memory mode).
    pub fn admin_sessions(&self) -> Option<admin_sessions::AdminSessions> {
        let broker = self.node.as_ref().and_then(|n| n.broker())?;
        Some(admin_sessions::AdminSessions::new(broker.clone()))
    }

    /// Answers the questions other Switchboard nodes ask this one
    /// ([`Adapter::ask_nodes`](switchboard_engine::adapter::Adapter::ask_nodes) there)
    /// with `answerer`, and names this node `name` in its answers and in its adapters'
    /// [`Adapter::node_name`](switchboard_engine::adapter::Adapter::node_name). Until it
    /// is called this node answers no question (askers see it as not answering) and is
    /// named by its uid. Once: later calls change nothing. Does nothing in memory mode.
    pub fn answer_nodes(&self, name: String, answerer: Answerer) {
        if let Some(questions) = &self.questions {
            questions.answer_with(name, answerer);
        }
    }

    /// Serves long-polling without sticky sessions: polling requests `engine` gets for
    /// sessions of other nodes are forwarded to their owner over Redis, and requests
    /// other nodes forward here are run by `engine`. `engine` must have been built
    /// with [`Cluster::node_tag`] as its `node_tag`. Does nothing in memory mode.
    pub fn serve_forwarded(&self, engine: &Arc<EngineServer>) {
        let broker = self.node.as_ref().and_then(|n| n.broker());
        if let (Some(broker), Some(tag), Some(secret)) = (broker, &self.tag, &self.secret) {
            forward::RedisForwarder::attach(
                broker,
                &self.key_prefix,
                tag.clone(),
                secret,
                engine,
                self.shutdown.clone(),
            );
        }
    }
}

/// A random node tag (see [`Cluster::node_tag`]); six characters of the base64url
/// alphabet always make a valid one.
fn new_tag() -> Option<NodeTag> {
    NodeTag::new(&random_uid(6)).ok()
}

/// A random node id: 6 base64url characters, as Node's `uid2(6)`.
pub(crate) fn random_uid(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    (0..len)
        .map(|_| char::from(ALPHABET[usize::from(rand::random::<u8>() & 63)]))
        .collect()
}
