//! Socket.IO v5: packets, their text encoding with binary attachments, and the decoder.
//!
//! See <https://github.com/socketio/socket.io/blob/main/docs/socket.io-protocol/v5-current.md>.
//!
//! Binary data stays where it arrived: a packet keeps its JSON with the
//! `{"_placeholder":true,"num":N}` markers and carries the attachments beside it, so an
//! echo or a relay never rebuilds the tree; [`placeholder`] and [`Packet::attachment`]
//! are the helpers for code that wants to build or read binary arguments.

mod decoder;
mod packet;

pub use decoder::{DEFAULT_MAX_ATTACHMENTS, DecodeError, Decoder};
pub use packet::{Packet, PacketType, is_reserved_event, placeholder};
