//! The Socket.IO v5 layer on top of Engine.IO: namespaces, sockets, rooms, events,
//! acknowledgements and broadcasts.
//!
//! - [`server`]: [`Io`], the entry point that owns namespaces and the engine;
//! - `client`: one Engine.IO connection's packet decoding and namespace sockets;
//! - [`namespace`]: handlers, middleware and the sockets of one namespace;
//! - [`socket`]: one socket in one namespace;
//! - [`broadcast`]: emitting to rooms with `except` and `volatile`;
//! - [`event`]: payloads, events and acknowledgements;
//! - [`recovery`]: connection state recovery (offsets, sessions, replay).

pub mod broadcast;
mod client;
pub mod event;
mod memory;
pub mod namespace;
pub mod observer;
pub mod recovery;
pub mod server;
pub mod socket;

pub use broadcast::{BroadcastOperator, DurableEmitError};
pub(crate) use client::{AUTH_TOO_LARGE, TOO_MANY_SERVER_NAMESPACES};
pub use event::{AckError, AckSender, ConnectError, EmitError, Event, Payload};
pub use namespace::{Handlers, Namespace, Resume};
pub use observer::Observer;
pub use recovery::{RecoveryConfig, RecoveryUsage};
pub use server::Io;
pub use socket::{MAX_PENDING_ACKS, Socket};
