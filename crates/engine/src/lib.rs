//! Switchboard's Socket.IO engine: transports, namespaces, sockets, rooms and fan-out,
//! over the pure codecs of `switchboard-protocol`.
//!
//! # Layout
//!
//! - [`eio`]: the Engine.IO v4 server — long-polling, WebSocket, upgrade, heartbeat,
//!   bounded per-session outbound queues;
//! - [`sio`]: the Socket.IO v5 layer — [`Io`], namespaces, sockets, events, acks,
//!   broadcasts;
//! - [`adapter`]: the room index seam (in-memory now; the cluster adapters later);
//! - [`config`]: typed settings and their defaults;
//! - [`bucket`]: a token bucket for per-node rates;
//! - [`diagnosis`], [`breadcrumbs`], [`scrub`]: why sockets left, the trail before it,
//!   and what must not leave the node;
//! - [`metrics`]: counters and gauges;
//! - [`pressure`]: memory pressure tiers against a budget;
//! - [`reason`]: the classified disconnect reasons;
//! - [`shutdown`]: the shutdown signal every loop listens to;
//! - [`untrusted`]: client-chosen strings made safe to log;
//! - [`serve()`]: the accept loop, which hands every request outside the engine path
//!   to a [`Site`].

pub mod adapter;
pub mod breadcrumbs;
pub mod bucket;
pub mod capacity;
pub mod config;
pub mod diagnosis;
pub mod eio;
pub mod metrics;
pub mod pressure;
pub mod reason;
pub mod scrub;
mod serve;
pub mod shutdown;
pub mod sid_map;
pub mod sio;
pub mod untrusted;

pub use config::{
    AllowedOrigins, CorsConfig, EngineConfig, QueueLimits, SocketIoConfig, SseConfig,
};
pub use metrics::Metrics;
pub use reason::DisconnectReason;
pub use serve::{
    HEADER_READ_TIMEOUT, MAX_BUF_BYTES, MAX_HEADER_BYTES, MIN_USER_TIMEOUT, Site, WriteBounded,
    drop_when_unacknowledged, not_found, serve,
};
pub use shutdown::Shutdown;
pub use sio::{AckError, ConnectError, EmitError, Event, Io, Namespace, Payload, Socket};
pub use switchboard_protocol as protocol;

/// The relay's upgrade watch (which follows a relayed client's WebSocket frames until
/// its `upgrade` packet, `eio::relay`), for the `relay_watch` fuzz target
/// (`crates/fuzz-targets`); not an API. The first bytes of `data` choose how the rest
/// is cut into reads.
#[doc(hidden)]
pub fn fuzz_relay_watch(data: &[u8]) {
    eio::relay::watch::fuzz(data);
}

/// The inbound watch (which counts the bytes of a client's unfinished WebSocket
/// message, `eio::inbound`), for the `inbound_watch` fuzz target
/// (`crates/fuzz-targets`); not an API. The first bytes of `data` choose how the rest
/// is cut into reads.
#[doc(hidden)]
pub fn fuzz_inbound_watch(data: &[u8]) {
    eio::inbound::fuzz(data);
}

/// The reframer (which cuts a client's long WebSocket frames into pieces before
/// tungstenite reads them, `eio::reframe`), for the `reframe` fuzz target
/// (`crates/fuzz-targets`); not an API. The first bytes of `data` choose the piece
/// length and how the rest is cut into reads.
#[doc(hidden)]
pub fn fuzz_reframe(data: &[u8]) {
    eio::reframe::fuzz(data);
}
