//! Typed settings of the engine, each default a named constant with the reason for it.

use std::time::Duration;

pub use crate::eio::client_ip::Cidr;
use switchboard_protocol::engineio::TransportKind;
pub use switchboard_protocol::sid::NodeTag;

/// Engine.IO's default: a ping every 25 s keeps NAT and proxy idle timers (often 30–60 s)
/// from dropping quiet connections.
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(25);
/// Engine.IO's default: 20 s tolerates a slow mobile network before declaring a peer dead.
pub const DEFAULT_PING_TIMEOUT: Duration = Duration::from_secs(20);
/// Engine.IO's default `maxPayload` (1 MB): large enough for chat and game payloads,
/// small enough that one client cannot make the server buffer much.
pub const DEFAULT_MAX_PAYLOAD: usize = 1_000_000;
/// Engine.IO's default: a probe that does not complete in 10 s is abandoned.
pub const DEFAULT_UPGRADE_TIMEOUT: Duration = Duration::from_secs(10);
/// Socket.IO's default: a connection that joins no namespace in 45 s is closed.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(45);
/// Outbound packets queued per connection before it counts as a slow consumer. A
/// healthy client drains its queue every few milliseconds; 1024 packets absorbs a burst.
pub const DEFAULT_MAX_QUEUED_PACKETS: usize = 1024;
/// Outbound bytes queued per connection before it counts as a slow consumer: 4 MiB
/// bounds a stuck client's cost while leaving room for a few maximum-size payloads.
pub const DEFAULT_MAX_QUEUED_BYTES: usize = 4 * 1024 * 1024;
/// Open Engine.IO sessions per process. One process may hold ~20,000 files on the
/// target machines, so the default stays under that with room for listeners and logs.
pub const DEFAULT_MAX_CONNECTIONS: usize = 19_000;
/// Largest CONNECT payload (`auth` in `socket.io-client`), in bytes of JSON. A token
/// and a few fields take well under 4 KiB; 16 KiB leaves room for large JWTs while
/// keeping what a client makes the server parse, verify and hold per socket small.
pub const DEFAULT_MAX_CONNECT_AUTH: usize = 16 * 1024;

/// Default most namespaces patterns may create at once. Each costs about 1.8 KiB while
/// it waits out a recovery window with no socket (measured: 20,000 emptied namespaces
/// raised a server's RSS by 36 MiB, `hostile.test.mjs` 2b without the cap), Redis
/// subscriptions in a cluster, and a series in `/metrics`: ten thousand tenants'
/// namespaces cost about 18 MiB.
pub const DEFAULT_MAX_PATTERN_NAMESPACES: usize = 10_000;
/// Open TCP connections per process beyond [`DEFAULT_MAX_CONNECTIONS`] sessions: room
/// for connections that are not (or not yet) a session of their own — handshakes, a
/// polling client's POST beside its pending GET, health checks, metrics scrapes and API
/// calls on the same listener — so a full house of sessions still answers them, while
/// a flood of idle sockets stops at the cap instead of the process's file limit.
pub const TCP_CONNECTION_HEADROOM: usize = 1000;
/// Open TCP connections per process (every HTTP connection and every WebSocket, for
/// its whole life); one more is closed at once. See [`TCP_CONNECTION_HEADROOM`].
pub const DEFAULT_MAX_TCP_CONNECTIONS: usize = DEFAULT_MAX_CONNECTIONS + TCP_CONNECTION_HEADROOM;
/// Time for a polling POST body to arrive whole, from the end of its headers. The
/// same 10 s as the HTTP API's body timeout and the header read timeout: a client
/// posting `maxPayload` (1 MB) needs only ~100 KB/s, and a slow-body (slowloris) POST
/// cannot hold a connection, a session and a growing buffer for longer.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// Bytes of messages on their way in, every session together (see
/// [`EngineConfig::max_inbound_bytes`]): 256 MiB, room for 256 messages of the default
/// `max_payload` arriving at once. A message that arrives in one read holds none of
/// it, so only large or slow messages ever share it.
pub const DEFAULT_MAX_INBOUND_BYTES: usize = 256 << 20;
/// Default path, as in Socket.IO.
pub const DEFAULT_PATH: &str = "/socket.io/";
/// Default path of the Server-Sent Events endpoint.
pub const DEFAULT_SSE_PATH: &str = "/sse";
/// A heartbeat comment every 15 s: proxies and load balancers commonly drop a
/// response that sends nothing for 30–60 s, and an SSE client cannot answer pings, so
/// a heartbeat is also how a reader that stopped reading is noticed.
pub const DEFAULT_SSE_HEARTBEAT: Duration = Duration::from_secs(15);
/// The `retry:` an SSE stream sets: browsers default to about 3 s; 2 s brings a
/// listener back sooner after a node restart, and the server's `max_connections` and
/// drain pacing bound the herd.
pub const DEFAULT_SSE_RETRY: Duration = Duration::from_secs(2);

/// Server-Sent Events: a one-way stream of a namespace's events to clients that only
/// listen (an `EventSource`, `curl -N`), with the same rooms, auth and recovery as
/// Socket.IO clients (see `eio::sse`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseConfig {
    /// The endpoint's path, e.g. `/sse`; outside [`EngineConfig::path`].
    pub path: String,
    /// Interval between heartbeat comments; a listener that has not taken the last
    /// one within [`EngineConfig::ping_timeout`] after it is closed (`ping timeout`).
    pub heartbeat: Duration,
    /// The reconnection delay the stream asks the client to use.
    pub retry: Duration,
    /// Query parameters copied into the CONNECT `auth` object under their own names,
    /// for clients that cannot set headers (a browser's `EventSource`): with
    /// `["token"]`, `/sse?token=…` authenticates as `io({ auth: { token } })` would.
    /// Empty by default: a token in a URL ends up in access logs.
    pub auth_params: Vec<String>,
}

impl Default for SseConfig {
    fn default() -> Self {
        SseConfig {
            path: DEFAULT_SSE_PATH.to_owned(),
            heartbeat: DEFAULT_SSE_HEARTBEAT,
            retry: DEFAULT_SSE_RETRY,
            auth_params: Vec::new(),
        }
    }
}

/// Which origins may connect from a browser.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AllowedOrigins {
    /// Any origin (`*`). Requests without an `Origin` header are always allowed.
    #[default]
    Any,
    /// Only these exact origins, e.g. `https://app.example.com`.
    List(Vec<String>),
}

impl AllowedOrigins {
    /// Whether a request with this `Origin` header may proceed.
    pub fn allows(&self, origin: &str) -> bool {
        match self {
            AllowedOrigins::Any => true,
            AllowedOrigins::List(list) => list.iter().any(|o| o == origin),
        }
    }
}

/// CORS for long-polling and the Origin check for every handshake and WebSocket upgrade.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CorsConfig {
    /// Origins allowed to connect. A browser request from another origin is refused
    /// with 403 (`{"code":4,"message":"Forbidden"}`), which also stops cross-site
    /// WebSocket hijacking.
    pub allowed_origins: AllowedOrigins,
    /// Send `Access-Control-Allow-Credentials: true` (cookies on cross-origin polling).
    pub credentials: bool,
}

/// Bounds of each connection's outbound queue (DESIGN §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimits {
    /// Most packets queued.
    pub max_packets: usize,
    /// Most bytes queued.
    pub max_bytes: usize,
}

impl Default for QueueLimits {
    fn default() -> Self {
        QueueLimits {
            max_packets: DEFAULT_MAX_QUEUED_PACKETS,
            max_bytes: DEFAULT_MAX_QUEUED_BYTES,
        }
    }
}

/// Engine.IO settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    /// URL path prefix that the engine serves, with leading and trailing `/`.
    pub path: String,
    /// Interval between server pings.
    pub ping_interval: Duration,
    /// How long to wait for a pong.
    pub ping_timeout: Duration,
    /// Largest accepted message (WebSocket) or body (polling), in bytes.
    pub max_payload: usize,
    /// How long a polling → WebSocket upgrade may take.
    pub upgrade_timeout: Duration,
    /// Transports accepted, in upgrade order.
    pub transports: Vec<TransportKind>,
    /// CORS and Origin policy.
    pub cors: CorsConfig,
    /// Outbound queue bounds per connection.
    pub queue: QueueLimits,
    /// Most concurrent sessions; further handshakes get 503. A WebSocket handshake
    /// holds its slot from the upgrade request on, before the session exists.
    pub max_connections: usize,
    /// Most open TCP connections on the engine's listener (HTTP connections and the
    /// WebSockets they became); one more is closed as soon as it is accepted.
    pub max_tcp_connections: usize,
    /// How long a polling POST body (or one to forward) may take to arrive; a slower
    /// one is answered 408 and its session closed ("transport error").
    pub body_timeout: Duration,
    /// Bytes of unfinished messages (polling POST bodies being read, WebSocket
    /// messages whose frames have not all arrived, Socket.IO packets waiting for their
    /// binary attachments), every session together. A read that would pass it first
    /// makes the message unfinished longest give way (if older than a tenth of
    /// `body_timeout` and than the reader's); failing that, it closes its own session
    /// (`server overloaded`; a polling POST gets 503). A WebSocket message, and a
    /// packet's attachments, must also be whole within `body_timeout`.
    pub max_inbound_bytes: usize,
    /// Most sessions (with WebSocket handshakes in flight) one client address may hold
    /// on this node: an IPv4 address, or an IPv6 /64. `0` (the default): no bound but
    /// `max_connections`. Further handshakes from the address get 429.
    pub max_sessions_per_ip: usize,
    /// New sessions one client address (counted as for `max_sessions_per_ip`) may
    /// open over time, on this node: a handshake past it gets 429 with `Retry-After`.
    /// A rate of 0 (the default): no bound.
    pub handshake_rate_per_ip: HandshakeRate,
    /// Proxies whose `X-Forwarded-For` says who the client is (for
    /// `max_sessions_per_ip` and `handshake_rate_per_ip`); from anyone else the header
    /// is ignored. Empty (the
    /// default): the TCP peer is the client.
    pub trusted_proxies: Vec<Cidr>,
    /// This node's name in a cluster, written at the start of every session id it
    /// creates so that other nodes can forward a session's polling requests here
    /// (see [`crate::eio::Forwarder`]). `None` (the default): plain random ids, and
    /// no forwarding.
    pub node_tag: Option<NodeTag>,
    /// Server-Sent Events, when served (`None`, the default: not served).
    pub sse: Option<SseConfig>,
    /// How much of a client's IP address the log lines about connections show
    /// (hooks follow it too); reports and timelines never hold one.
    pub client_ips: crate::scrub::ClientIps,
}

impl EngineConfig {
    /// The longest a long-polling GET can stay unanswered: the server pings within
    /// `ping_interval`, and a client that does not answer is closed `ping_timeout`
    /// later, which also answers the GET. Whatever carries forwarded requests between
    /// nodes must wait longer than this before giving up on one.
    pub fn longest_poll(&self) -> Duration {
        self.ping_interval + self.ping_timeout
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            path: DEFAULT_PATH.to_owned(),
            ping_interval: DEFAULT_PING_INTERVAL,
            ping_timeout: DEFAULT_PING_TIMEOUT,
            max_payload: DEFAULT_MAX_PAYLOAD,
            upgrade_timeout: DEFAULT_UPGRADE_TIMEOUT,
            transports: vec![TransportKind::Polling, TransportKind::Websocket],
            cors: CorsConfig::default(),
            queue: QueueLimits::default(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_tcp_connections: DEFAULT_MAX_TCP_CONNECTIONS,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            max_inbound_bytes: DEFAULT_MAX_INBOUND_BYTES,
            max_sessions_per_ip: 0,
            handshake_rate_per_ip: HandshakeRate::default(),
            trusted_proxies: Vec::new(),
            node_tag: None,
            sse: None,
            client_ips: crate::scrub::ClientIps::Keep,
        }
    }
}

/// A token bucket's shape: `per_second` tokens a second in the long run, `burst` at
/// once. A `per_second` of 0 turns the bound off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandshakeRate {
    /// Handshakes a second in the long run; 0: no bound.
    pub per_second: u32,
    /// Handshakes that may come at once (the bucket's size; at least 1).
    pub burst: u32,
}

impl Default for HandshakeRate {
    /// Off: no bound.
    fn default() -> Self {
        HandshakeRate {
            per_second: 0,
            burst: 1,
        }
    }
}

/// Socket.IO settings on top of the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketIoConfig {
    /// Engine.IO settings.
    pub engine: EngineConfig,
    /// How long a connection may stay without joining a namespace.
    pub connect_timeout: Duration,
    /// Most binary attachments in one packet.
    pub max_attachments: usize,
    /// Largest CONNECT payload in bytes of JSON; a larger one is refused with a
    /// CONNECT_ERROR (`auth payload too large`).
    pub max_connect_auth: usize,
    /// Most namespaces patterns may have created at once (declared ones do not count).
    /// At the cap, a CONNECT that would create one removes the namespace emptied
    /// longest ago that waits out its recovery window (its kept sessions go), or, when
    /// none does, is refused with a CONNECT_ERROR (`too many namespaces on this
    /// server`).
    pub max_pattern_namespaces: usize,
    /// Connection state recovery; `None` disables it (as in Node, it is opt-in).
    pub recovery: Option<crate::sio::RecoveryConfig>,
    /// Disconnect reports kept ([`crate::Io::disconnect_reports`]), the oldest dropped
    /// first; 0 keeps none.
    pub max_disconnect_reports: usize,
    /// Steps of each socket's timeline kept ([`crate::breadcrumbs`]), the oldest
    /// dropped first; 0 keeps none.
    pub breadcrumbs: usize,
}

impl Default for SocketIoConfig {
    fn default() -> Self {
        SocketIoConfig {
            engine: EngineConfig::default(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            max_attachments: switchboard_protocol::socketio::DEFAULT_MAX_ATTACHMENTS,
            max_connect_auth: DEFAULT_MAX_CONNECT_AUTH,
            max_pattern_namespaces: DEFAULT_MAX_PATTERN_NAMESPACES,
            recovery: None,
            max_disconnect_reports: crate::diagnosis::MAX_REPORTS,
            breadcrumbs: crate::breadcrumbs::DEFAULT_STEPS,
        }
    }
}
