//! Engine.IO v4: packets, long-polling payloads, the handshake and the heartbeat.
//!
//! See <https://github.com/socketio/socket.io/blob/main/docs/engine.io-protocol/v4-current.md>.

pub mod handshake;
mod heartbeat;
mod packet;
pub mod payload;

pub use handshake::{EngineErrorCode, OpenPacket, TransportKind};
pub use heartbeat::{Heartbeat, HeartbeatEvent};
pub use packet::{DecodeError, Packet, PacketType};
