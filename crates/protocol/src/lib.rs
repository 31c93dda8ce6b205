//! Engine.IO v4 and Socket.IO v5 codecs and session state machines; no IO.
//!
//! Everything here is pure: bytes and `Instant`s go in, packets, events and the next
//! deadline come out. There is no tokio and no socket in this crate, which is what makes
//! it cheap to unit-test, property-test and fuzz (the model is quinn-proto).
//!
//! # Layout
//!
//! - [`engineio`]: Engine.IO v4 — packet codec ([`engineio::Packet`]), long-polling
//!   payloads ([`engineio::payload`]), the handshake and its HTTP error codes
//!   ([`engineio::handshake`]) and the heartbeat state machine ([`engineio::Heartbeat`]).
//! - [`socketio`]: Socket.IO v5 — packet codec ([`socketio::Packet`]), the streaming
//!   decoder that reassembles binary attachments ([`socketio::Decoder`]) and namespace
//!   name rules.
//! - [`sid`]: session and socket identifiers.
//! - [`sse`]: Server-Sent Events framing of Socket.IO events.
//! - [`json`]: JSON written back no longer than it was read (floats).

pub mod cluster;
pub mod engineio;
pub mod json;
pub mod sid;
pub mod socketio;
pub mod sse;

pub use sid::Sid;
