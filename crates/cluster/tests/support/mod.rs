//! What the cluster tests share: a real `redis-server` per test, Switchboard nodes
//! clustered over it, and long-polling clients that talk to a node through its HTTP
//! handler (`Io::handle`) — real Engine.IO sessions and Socket.IO sockets, no network
//! client.
//!
//! - [`RedisServer`] (from `switchboard-test-support`): `redis-server` on a free port
//!   of 127.0.0.1, in its own temporary directory; killed, restarted on the same port,
//!   paused and resumed by the tests. Without a `redis-server` the test fails and says
//!   how to install one: these tests never pass by skipping.
//! - [`Node`]: one `Io` on its own [`Cluster`] (adapter factory, node tag, polling
//!   forwarding), with a `join` event that puts the socket in the named room and the
//!   node's name as every socket's data.
//! - [`Client`]: a polling client; [`Client::via`] sends its requests to another node.
//! - [`eventually`] and [`within`] (also from `switchboard-test-support`): how tests
//!   wait, on conditions rather than clocks; [`without_hanging`] for a test whose
//!   failure would be a deadlock.
//!
//! Every wait has a generous deadline ([`DEADLINE`]) so a broken build fails with a
//! message instead of hanging; no test depends on how fast anything happens.

// Each test binary uses part of this module.
#![allow(dead_code, unused_imports)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use switchboard_cluster::{AdapterKind, Cluster, ClusterConfig, ClusterSecret};
use switchboard_engine::shutdown::{self, ShutdownTrigger};
use switchboard_engine::sio::RecoveryConfig;
use switchboard_engine::{EngineConfig, Io, Metrics, Namespace, SocketIoConfig};
pub(crate) use switchboard_test_support::{
    DEADLINE, RedisServer, eventually, within, without_hanging,
};

/// A plain connection to `redis` for a test's own commands, which waits for answers
/// as long as [`DEADLINE`]: the client library's default gives up after 500 ms, which
/// a command writing many megabytes can take on a machine busy with other tests.
pub(crate) async fn patient_conn(redis: &RedisServer) -> redis::aio::MultiplexedConnection {
    let mut conn = redis::Client::open(redis.url())
        .expect("a Redis URL")
        .get_multiplexed_async_connection()
        .await
        .expect("a connection to Redis");
    conn.set_response_timeout(DEADLINE);
    conn
}

/// How long Redis will still keep the stored session of `pid` (ms), under the
/// default session key prefix; `None` when it has none.
pub(crate) async fn session_ttl(redis: &RedisServer, pid: &str) -> Option<i64> {
    let mut conn = patient_conn(redis).await;
    let ttl: i64 = redis::cmd("PTTL")
        .arg(format!("sio:session:{pid}"))
        .query_async(&mut conn)
        .await
        .expect("PTTL answered");
    (ttl >= 0).then_some(ttl)
}

// --------------------------------------------------------------------------------- nodes

/// The cluster secret every test node shares.
pub(crate) const SECRET: &str = "test secret of the cluster tests, 32+ bytes long";

/// [`SECRET`] as the cluster takes it.
pub(crate) fn secret() -> ClusterSecret {
    ClusterSecret::new(SECRET).expect("a long enough secret")
}

/// How to build a [`Node`].
#[derive(Debug, Clone)]
pub(crate) struct NodeOptions {
    /// The cluster adapter.
    pub(crate) adapter: AdapterKind,
    /// Connection state recovery on `/` (Node's `connectionStateRecovery`).
    pub(crate) recovery: bool,
    /// The node's name, set as every socket's data: `{"node": name}`.
    pub(crate) name: String,
    /// With recovery: most bytes one client is replayed.
    pub(crate) max_replay_bytes: usize,
    /// With recovery: whether a resumed session skips the middleware (Node's
    /// `skipMiddlewares`, the default).
    pub(crate) skip_middlewares: bool,
}

impl NodeOptions {
    pub(crate) fn new(adapter: AdapterKind, name: &str) -> Self {
        NodeOptions {
            adapter,
            recovery: false,
            name: name.to_owned(),
            max_replay_bytes: RecoveryConfig::default().max_replay_bytes,
            skip_middlewares: true,
        }
    }

    /// Recovery on, a resuming client's middleware run too (`skip_middlewares =
    /// false`).
    pub(crate) fn verifying_resumes(mut self) -> Self {
        self.recovery = true;
        self.skip_middlewares = false;
        self
    }

    /// Recovery on, replaying at most `bytes` to one client.
    pub(crate) fn replaying_at_most(mut self, bytes: usize) -> Self {
        self.recovery = true;
        self.max_replay_bytes = bytes;
        self
    }

    pub(crate) fn recovery(mut self) -> Self {
        self.recovery = true;
        self
    }
}

/// One Switchboard node of a cluster, in this process.
pub(crate) struct Node {
    pub(crate) io: Io,
    pub(crate) cluster: Cluster,
    pub(crate) name: String,
    /// Dropping the trigger would stop the node: held for the node's life.
    trigger: Option<ShutdownTrigger>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").field("name", &self.name).finish()
    }
}

impl Node {
    /// Starts a node on `redis` and waits until it is ready (connected, subscribed,
    /// and for streams reading the stream).
    pub(crate) async fn start(redis: &RedisServer, options: NodeOptions) -> Node {
        Node::start_with(
            ClusterConfig {
                redis_url: redis.url(),
                ..ClusterConfig::default()
            },
            options,
        )
        .await
    }

    /// [`Node::start`] on the Redis of `config` (its URL and TLS settings); the
    /// adapter and the secret are the test's.
    pub(crate) async fn start_with(config: ClusterConfig, options: NodeOptions) -> Node {
        let (trigger, shutdown) = shutdown::channel();
        let config = ClusterConfig {
            adapter: options.adapter,
            secret: Some(secret()),
            ..config
        };
        let cluster = Cluster::start(&config, shutdown.clone()).expect("cluster starts");
        let sio = SocketIoConfig {
            recovery: options.recovery.then(|| RecoveryConfig {
                max_disconnection_duration: Duration::from_secs(120),
                max_replay_bytes: options.max_replay_bytes,
                skip_middlewares: options.skip_middlewares,
                ..RecoveryConfig::default()
            }),
            engine: EngineConfig {
                node_tag: cluster.node_tag(),
                ..EngineConfig::default()
            },
            ..SocketIoConfig::default()
        };
        let io = Io::with_adapter(
            sio,
            cluster.adapter_factory(),
            Arc::new(Metrics::default()),
            shutdown,
        );
        cluster.serve_forwarded(io.engine());
        let ns = io.of("/");
        let name = options.name.clone();
        ns.on_connection(move |socket| socket.set_data(json!({ "node": name })));
        ns.on("join", |ev| {
            if let Some(room) = ev.payload.args.first().and_then(Value::as_str) {
                ev.socket.join(&[room]);
            }
        });
        let node = Node {
            io,
            cluster,
            name: options.name,
            trigger: Some(trigger),
        };
        eventually(&format!("{} is ready", node.name), || async {
            node.cluster.is_ready()
        })
        .await;
        node
    }

    /// The main namespace.
    pub(crate) fn ns(&self) -> Arc<Namespace> {
        self.io.of("/")
    }

    /// The number of nodes this node counts in the cluster (0 when it cannot tell).
    pub(crate) async fn server_count(&self) -> usize {
        self.ns().server_count().await.unwrap_or(0)
    }

    /// Stops the node: its connections to Redis close, its tasks end.
    pub(crate) fn shut_down(&mut self) {
        if let Some(trigger) = self.trigger.take() {
            trigger.trigger();
        }
    }
}

/// Waits until every node counts `nodes.len()` servers: each has subscribed to the
/// namespace's channels, so a broadcast or request from any of them reaches all.
pub(crate) async fn formed(nodes: &[&Node]) {
    for node in nodes {
        eventually(
            &format!("{} counts {} nodes", node.name, nodes.len()),
            || async { node.server_count().await == nodes.len() },
        )
        .await;
    }
}

// ------------------------------------------------------------------------------- clients

/// What a node answers on `GET` for an Engine.IO session it does not know.
pub(crate) const UNKNOWN_SID: &str = r#"{"code":1,"message":"Session ID unknown"}"#;

/// One HTTP exchange with `io`: status and body.
pub(crate) async fn request(
    io: &Io,
    method: Method,
    query: &str,
    body: &str,
) -> (StatusCode, String) {
    request_with_headers(io, method, query, body, &[]).await
}

/// [`request`] with request headers.
pub(crate) async fn request_with_headers(
    io: &Io,
    method: Method,
    query: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, String) {
    let mut req = Request::builder()
        .method(method)
        .uri(format!("/socket.io/?{query}"));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let req = req
        .body(Full::new(Bytes::from(body.to_owned())))
        .expect("a valid request");
    let remote: SocketAddr = "127.0.0.1:9".parse().expect("an address");
    let res = io.handle(req, remote).await;
    let status = res.status();
    let body = res
        .into_body()
        .collect()
        .await
        .expect("a response body")
        .to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// A long-polling client of one Engine.IO session; its requests go to `io`.
#[derive(Clone)]
pub(crate) struct Client {
    io: Io,
    /// The Engine.IO session id.
    pub(crate) sid: String,
}

/// The CONNECT answer of `/`: the Socket.IO socket id and, with recovery, the pid.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Connected {
    pub(crate) id: String,
    pub(crate) pid: Option<String>,
    /// Event packets that came in the same response, after the answer.
    pub(crate) events: Vec<Value>,
}

impl Client {
    /// Opens a session on `io`.
    pub(crate) async fn handshake(io: &Io) -> Client {
        Client::handshake_with(io, &[]).await
    }

    /// Opens a session on `io` with these request headers.
    pub(crate) async fn handshake_with(io: &Io, headers: &[(&str, &str)]) -> Client {
        let (status, body) =
            request_with_headers(io, Method::GET, "EIO=4&transport=polling", "", headers).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let open: Value = serde_json::from_str(body.strip_prefix('0').expect("an OPEN packet"))
            .expect("OPEN JSON");
        Client {
            io: io.clone(),
            sid: open["sid"].as_str().expect("a sid").to_owned(),
        }
    }

    /// Opens a session on `io` and joins `/`.
    pub(crate) async fn connected(io: &Io) -> (Client, Connected) {
        let client = Client::handshake(io).await;
        let connected = client.connect("").await;
        (client, connected)
    }

    /// The same session, its requests sent to `io` instead.
    pub(crate) fn via(&self, io: &Io) -> Client {
        Client {
            io: io.clone(),
            sid: self.sid.clone(),
        }
    }

    /// Joins `/` with `auth` (JSON, or empty) and reads the answer.
    pub(crate) async fn connect(&self, auth: &str) -> Connected {
        self.post(&format!("40{auth}")).await;
        let body = self.get().await;
        let mut packets = body.split('\x1e');
        let answer = packets.next().unwrap_or_default();
        let answer: Value = serde_json::from_str(
            answer
                .strip_prefix("40")
                .unwrap_or_else(|| panic!("a CONNECT answer, got {body:?}")),
        )
        .expect("CONNECT JSON");
        Connected {
            id: answer["sid"].as_str().expect("a socket id").to_owned(),
            pid: answer["pid"].as_str().map(str::to_owned),
            events: packets.filter_map(event).collect(),
        }
    }

    fn query(&self) -> String {
        format!("EIO=4&transport=polling&sid={}", self.sid)
    }

    pub(crate) async fn get_raw(&self) -> (StatusCode, String) {
        within("a GET", request(&self.io, Method::GET, &self.query(), "")).await
    }

    /// A GET that must succeed: waits for the next frames.
    pub(crate) async fn get(&self) -> String {
        let (status, body) = self.get_raw().await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    pub(crate) async fn post_raw(&self, body: &str) -> (StatusCode, String) {
        within(
            "a POST",
            request(&self.io, Method::POST, &self.query(), body),
        )
        .await
    }

    /// A POST that must be accepted.
    pub(crate) async fn post(&self, body: &str) {
        let (status, answer) = self.post_raw(body).await;
        assert_eq!((status, answer.as_str()), (StatusCode::OK, "ok"));
    }

    /// Emits event `name` with `args`.
    pub(crate) async fn emit(&self, name: &str, args: &[Value]) {
        let mut packet = vec![json!(name)];
        packet.extend_from_slice(args);
        self.post(&format!("42{}", Value::Array(packet))).await;
    }

    /// The events of the next GET, as `[name, args..]` arrays.
    pub(crate) async fn events(&self) -> Vec<Value> {
        self.get().await.split('\x1e').filter_map(event).collect()
    }

    /// Closes the Engine.IO session as a client whose transport closed would: the
    /// socket leaves with a reason that keeps its session for recovery.
    pub(crate) async fn close(&self) {
        self.post("1").await;
    }
}

/// An event packet (`42[...]`) of a polling body as its JSON array.
fn event(packet: &str) -> Option<Value> {
    serde_json::from_str(packet.strip_prefix("42")?).ok()
}

/// The names of `events`.
pub(crate) fn names(events: &[Value]) -> Vec<&str> {
    events.iter().filter_map(|e| e[0].as_str()).collect()
}
