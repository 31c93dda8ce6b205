//! Wire codecs for the Node.js Socket.IO Redis adapters, so a Switchboard node can share
//! a Redis with Node servers and emitters; no IO.
//!
//! Everything here turns typed messages into the exact bytes the Node packages publish
//! and back. Redis commands, subscriptions and timers belong to the driver.
//!
//! # Layout
//!
//! - [`msgpack`]: the MessagePack value model ([`msgpack::MsgValue`]), a bounded decoder,
//!   encoders byte-compatible with `notepack.io` 3 and `@msgpack/msgpack` 2.8, and the
//!   conversions to and from JSON with binary placeholders.
//! - [`redis_adapter`]: `@socket.io/redis-adapter` 8 (classic pub/sub) and
//!   `@socket.io/redis-emitter` 5 — channel names, the broadcast message, requests and
//!   responses between nodes.
//! - [`streams`]: `@socket.io/redis-streams-adapter` 0.3 on top of `socket.io-adapter`'s
//!   `ClusterAdapter` — cluster messages as stream entries and pub/sub payloads, the
//!   connection-state-recovery session, stream ids.
//! - [`resp`]: RESP2 as a subscribed connection reads it — messages and confirmations
//!   parsed in place, so a message's payload is a slice of the read buffer.
//! - [`BroadcastOpts`] and [`BroadcastFlags`]: the broadcast target both adapters share;
//!   [`RemoteSocket`]: one socket in a `fetchSockets()` answer; [`CodecError`]: why bytes
//!   were rejected.
//!
//! Numbers follow JavaScript: Node has one number type, so an integral float and an
//! integer are the same value and encode to the same bytes.

mod error;
mod js;
mod node_packet;
mod opts;
mod read;
mod remote_socket;

pub mod msgpack;
pub mod redis_adapter;
pub mod resp;
pub mod streams;

pub use error::CodecError;
pub use opts::{BroadcastFlags, BroadcastOpts, SocketsPage};
pub use remote_socket::RemoteSocket;
