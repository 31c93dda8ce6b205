//! The wire format of `@socket.io/redis-streams-adapter` 0.3: the cluster messages of
//! `socket.io-adapter`'s `ClusterAdapter`, carried as Redis stream entries or pub/sub
//! payloads, plus the connection-state-recovery session.
//!
//! - Durable messages (broadcasts without acknowledgement, `socketsJoin`,
//!   `socketsLeave`, `disconnectSockets`, heartbeats, close) are `XADD`ed to the stream
//!   (default `socket.io`) as fields `uid`, `nsp`, `type`, `data`
//!   ([`ClusterMessage::to_stream_fields`]).
//! - Ephemeral messages ([`ClusterMessage::is_ephemeral`]) are published whole,
//!   `@msgpack/msgpack`-encoded, on `socket.io#/nsp#`; responses on the requester's
//!   `socket.io#/nsp#<uid>#` ([`ClusterMessage::encode_pubsub`]).
//! - A disconnected socket's session is stored at `sio:session:<pid>`
//!   ([`PersistedSession`]); a reconnecting client's offset is a stream id
//!   ([`StreamId`]) and missed broadcasts are filtered with [`should_include_packet`].

mod entry;
mod session;
mod stream_id;

use super::msgpack::MsgValue;
use super::node_packet;
use super::opts::BroadcastOpts;
use super::read::{Obj, ObjBuilder, strings, take, take_raw};
use super::{CodecError, RemoteSocket};
use crate::cluster::SocketsPage;
use crate::socketio::Packet;

pub use entry::{
    DEFAULT_CHANNEL_PREFIX, DEFAULT_STREAM_NAME, looks_like_socket_id, private_channel,
    public_channel, room_channel, stream_name,
};
pub use session::{
    DEFAULT_SESSION_KEY_PREFIX, JOINED_FIELD, LEFT_FIELD, PersistedSession, SessionMemberships,
    session_key, should_include_packet,
};
pub use stream_id::StreamId;

/// The message types of `socket.io-adapter`'s `ClusterAdapter` (`MessageType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// `1`: a node started; others answer with a heartbeat.
    InitialHeartbeat = 1,
    /// `2`: a node is alive.
    Heartbeat,
    /// `3`: a broadcast.
    Broadcast,
    /// `4`: `socketsJoin()`.
    SocketsJoin,
    /// `5`: `socketsLeave()`.
    SocketsLeave,
    /// `6`: `disconnectSockets()`.
    DisconnectSockets,
    /// `7`: `fetchSockets()`.
    FetchSockets,
    /// `8`: answer to [`MessageType::FetchSockets`].
    FetchSocketsResponse,
    /// `9`: `serverSideEmit()`.
    ServerSideEmit,
    /// `10`: acknowledgement of a [`MessageType::ServerSideEmit`].
    ServerSideEmitResponse,
    /// `11`: how many clients a node sent an acknowledged broadcast to.
    BroadcastClientCount,
    /// `12`: one client's acknowledgement of a broadcast.
    BroadcastAck,
    /// `13`: a node is shutting down.
    AdapterClose,
}

impl MessageType {
    /// The wire number.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The type with wire number `code`.
    pub fn from_code(code: i64) -> Option<Self> {
        use MessageType::*;
        Some(match code {
            1 => InitialHeartbeat,
            2 => Heartbeat,
            3 => Broadcast,
            4 => SocketsJoin,
            5 => SocketsLeave,
            6 => DisconnectSockets,
            7 => FetchSockets,
            8 => FetchSocketsResponse,
            9 => ServerSideEmit,
            10 => ServerSideEmitResponse,
            11 => BroadcastClientCount,
            12 => BroadcastAck,
            13 => AdapterClose,
            _ => return None,
        })
    }

    /// Whether this answers a request (and is published on the requester's channel).
    pub fn is_response(self) -> bool {
        matches!(
            self,
            MessageType::FetchSocketsResponse
                | MessageType::ServerSideEmitResponse
                | MessageType::BroadcastClientCount
                | MessageType::BroadcastAck
        )
    }

    /// Whether the data of this type may hold binary, in which case the stream entry
    /// carries it as base64 MessagePack rather than JSON.
    fn may_contain_binary(self) -> bool {
        matches!(
            self,
            MessageType::Broadcast
                | MessageType::FetchSocketsResponse
                | MessageType::ServerSideEmit
                | MessageType::ServerSideEmitResponse
                | MessageType::BroadcastAck
        )
    }
}

/// A message between cluster nodes.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterMessage {
    /// The sending node (random hex in Node; `emitter` for emitters).
    pub uid: String,
    /// The namespace.
    pub nsp: String,
    /// The type and its data.
    pub body: MessageBody,
}

/// Each message type with the shape of its `data`. Acknowledgement arguments are
/// [`MsgValue::Nil`] when `undefined`: MessagePack cannot tell the two apart.
#[derive(Debug, Clone, PartialEq)]
pub enum MessageBody {
    /// No data.
    InitialHeartbeat,
    /// No data.
    Heartbeat,
    /// `{packet, requestId?, opts}`; with a request id the clients' acknowledgements are
    /// awaited (and the message is ephemeral).
    Broadcast {
        /// `{type, data}`: the cluster adapter publishes before Node sets `nsp` (read
        /// back, the message's namespace fills it in).
        packet: Packet,
        /// Present for broadcasts with acknowledgements.
        request_id: Option<String>,
        /// The target (`{rooms, except, flags}`).
        opts: BroadcastOpts,
    },
    /// `{opts, rooms}`.
    SocketsJoin {
        /// Which sockets.
        opts: BroadcastOpts,
        /// Rooms to join.
        rooms: Vec<String>,
    },
    /// `{opts, rooms}`.
    SocketsLeave {
        /// Which sockets.
        opts: BroadcastOpts,
        /// Rooms to leave.
        rooms: Vec<String>,
    },
    /// `{opts, close}`.
    DisconnectSockets {
        /// Which sockets.
        opts: BroadcastOpts,
        /// Whether to close the underlying connections.
        close: bool,
    },
    /// `{opts, requestId}`, and Switchboard's `page` (Node ignores it).
    FetchSockets {
        /// Which sockets.
        opts: BroadcastOpts,
        /// Correlates the responses.
        request_id: String,
        /// Only this page of them.
        page: Option<SocketsPage>,
    },
    /// `{requestId, sockets}`.
    FetchSocketsResponse {
        /// The request's id.
        request_id: String,
        /// The matching local sockets.
        sockets: Vec<RemoteSocket>,
    },
    /// `{requestId?, packet}`.
    ServerSideEmit {
        /// Present when acknowledgements are awaited.
        request_id: Option<String>,
        /// The event name and arguments.
        packet: Vec<MsgValue>,
    },
    /// `{requestId, packet}`.
    ServerSideEmitResponse {
        /// The request's id.
        request_id: String,
        /// The acknowledgement argument.
        packet: MsgValue,
    },
    /// `{requestId, clientCount}`.
    BroadcastClientCount {
        /// The broadcast's request id.
        request_id: String,
        /// Clients the node sent the packet to.
        client_count: u64,
    },
    /// `{requestId, packet}`.
    BroadcastAck {
        /// The broadcast's request id.
        request_id: String,
        /// The client's first acknowledgement argument.
        packet: MsgValue,
    },
    /// No data.
    AdapterClose,
}

impl MessageBody {
    /// The wire type.
    pub fn message_type(&self) -> MessageType {
        match self {
            MessageBody::InitialHeartbeat => MessageType::InitialHeartbeat,
            MessageBody::Heartbeat => MessageType::Heartbeat,
            MessageBody::Broadcast { .. } => MessageType::Broadcast,
            MessageBody::SocketsJoin { .. } => MessageType::SocketsJoin,
            MessageBody::SocketsLeave { .. } => MessageType::SocketsLeave,
            MessageBody::DisconnectSockets { .. } => MessageType::DisconnectSockets,
            MessageBody::FetchSockets { .. } => MessageType::FetchSockets,
            MessageBody::FetchSocketsResponse { .. } => MessageType::FetchSocketsResponse,
            MessageBody::ServerSideEmit { .. } => MessageType::ServerSideEmit,
            MessageBody::ServerSideEmitResponse { .. } => MessageType::ServerSideEmitResponse,
            MessageBody::BroadcastClientCount { .. } => MessageType::BroadcastClientCount,
            MessageBody::BroadcastAck { .. } => MessageType::BroadcastAck,
            MessageBody::AdapterClose => MessageType::AdapterClose,
        }
    }

    /// The `data` object, keys in Node's order; `None` for types without data.
    fn data(&self) -> Option<MsgValue> {
        use MessageBody::*;
        let obj = ObjBuilder::new();
        Some(
            match self {
                InitialHeartbeat | Heartbeat | AdapterClose => return None,
                Broadcast {
                    packet,
                    request_id,
                    opts,
                } => obj
                    .field("packet", node_packet::to_value(packet, false))
                    .opt_field("requestId", request_id.as_deref())
                    .field("opts", opts.to_value()),
                SocketsJoin { opts, rooms } | SocketsLeave { opts, rooms } => obj
                    .field("opts", opts.to_value())
                    .field("rooms", strings(rooms)),
                DisconnectSockets { opts, close } => {
                    obj.field("opts", opts.to_value()).field("close", *close)
                }
                FetchSockets {
                    opts,
                    request_id,
                    page,
                } => obj
                    .field("opts", opts.to_value())
                    .field("requestId", request_id.as_str())
                    .opt_field("page", page.as_ref().map(SocketsPage::to_value)),
                FetchSocketsResponse {
                    request_id,
                    sockets,
                } => obj
                    .field("requestId", request_id.as_str())
                    .field("sockets", RemoteSocket::list_to_value(sockets)),
                ServerSideEmit { request_id, packet } => obj
                    .opt_field("requestId", request_id.as_deref())
                    .field("packet", MsgValue::Array(packet.clone())),
                ServerSideEmitResponse { request_id, packet }
                | BroadcastAck { request_id, packet } => obj
                    .field("requestId", request_id.as_str())
                    .field("packet", packet.clone()),
                BroadcastClientCount {
                    request_id,
                    client_count,
                } => obj
                    .field("requestId", request_id.as_str())
                    .field("clientCount", *client_count),
            }
            .build(),
        )
    }

    /// Reads the body of a message of type `kind` in namespace `nsp` from its `data`.
    fn from_data(kind: MessageType, data: Option<MsgValue>, nsp: &str) -> Result<Self, CodecError> {
        use MessageBody as B;
        match kind {
            MessageType::InitialHeartbeat => return Ok(B::InitialHeartbeat),
            MessageType::Heartbeat => return Ok(B::Heartbeat),
            MessageType::AdapterClose => return Ok(B::AdapterClose),
            _ => {}
        }
        let mut data = data.ok_or(CodecError::Field("data"))?;
        let obj = Obj::new(&data, "data")?;
        let opts = || BroadcastOpts::from_value(obj.get("opts").ok_or(CodecError::Field("opts"))?);
        let request_id = || obj.str("requestId");
        Ok(match kind {
            MessageType::Broadcast => {
                let request_id = obj.opt_str("requestId")?;
                let opts = opts()?;
                let packet = take(&mut data, "packet").ok_or(CodecError::Field("packet"))?;
                B::Broadcast {
                    packet: node_packet::from_value(packet, nsp)?,
                    request_id,
                    opts,
                }
            }
            MessageType::SocketsJoin => B::SocketsJoin {
                opts: opts()?,
                rooms: obj.rooms("rooms")?,
            },
            MessageType::SocketsLeave => B::SocketsLeave {
                opts: opts()?,
                rooms: obj.rooms("rooms")?,
            },
            MessageType::DisconnectSockets => B::DisconnectSockets {
                opts: opts()?,
                close: obj.truthy("close"),
            },
            MessageType::FetchSockets => B::FetchSockets {
                opts: opts()?,
                request_id: request_id()?,
                page: SocketsPage::read(&obj)?,
            },
            MessageType::FetchSocketsResponse => {
                let request_id = request_id()?;
                B::FetchSocketsResponse {
                    request_id,
                    sockets: RemoteSocket::list_from(take(&mut data, "sockets"))?,
                }
            }
            MessageType::ServerSideEmit => {
                let request_id = obj.opt_str("requestId")?;
                let Some(MsgValue::Array(packet)) = take(&mut data, "packet") else {
                    return Err(CodecError::Field("packet"));
                };
                B::ServerSideEmit { request_id, packet }
            }
            MessageType::ServerSideEmitResponse => {
                let request_id = request_id()?;
                B::ServerSideEmitResponse {
                    request_id,
                    packet: take_raw(&mut data, "packet").unwrap_or_default(),
                }
            }
            MessageType::BroadcastClientCount => B::BroadcastClientCount {
                request_id: request_id()?,
                client_count: obj.u64("clientCount")?,
            },
            MessageType::BroadcastAck => {
                let request_id = request_id()?;
                B::BroadcastAck {
                    request_id,
                    packet: take_raw(&mut data, "packet").unwrap_or_default(),
                }
            }
            // Returned above, before requiring data.
            MessageType::InitialHeartbeat => B::InitialHeartbeat,
            MessageType::Heartbeat => B::Heartbeat,
            MessageType::AdapterClose => B::AdapterClose,
        })
    }
}

impl ClusterMessage {
    /// Whether Node sends this over pub/sub (`socket.io#/nsp#`) instead of the stream:
    /// broadcasts with acknowledgements, `serverSideEmit` and `fetchSockets` requests.
    /// Responses (see [`MessageType::is_response`]) go to the requester's channel.
    pub fn is_ephemeral(&self) -> bool {
        match &self.body {
            MessageBody::Broadcast { request_id, .. } => request_id.is_some(),
            MessageBody::ServerSideEmit { .. } | MessageBody::FetchSockets { .. } => true,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_codes_round_trip() {
        for code in 1..=13 {
            let kind = MessageType::from_code(code).unwrap();
            assert_eq!(i64::from(kind.code()), code);
        }
        assert_eq!(MessageType::from_code(0), None);
        assert_eq!(MessageType::from_code(14), None);
    }

    /// Switchboard's `page` rides in a fetch's data, where Node's adapters ignore it,
    /// through both the pub/sub and the sharded encodings.
    #[test]
    fn a_fetch_carries_its_page() -> Result<(), CodecError> {
        let page = Some(SocketsPage {
            after: None,
            limit: Some(7),
            brief: true,
        });
        let message = ClusterMessage {
            uid: "u".into(),
            nsp: "/".into(),
            body: MessageBody::FetchSockets {
                opts: BroadcastOpts::default(),
                request_id: "r".into(),
                page: page.clone(),
            },
        };
        let pubsub = ClusterMessage::decode_pubsub(&message.encode_pubsub())?;
        let sharded = ClusterMessage::decode_sharded(&message.encode_sharded())?;
        for back in [pubsub, sharded] {
            assert_eq!(back, message);
        }
        Ok(())
    }

    #[test]
    fn ephemeral_rules() {
        let msg = |body| ClusterMessage {
            uid: "u".into(),
            nsp: "/".into(),
            body,
        };
        let broadcast = |request_id: Option<&str>| MessageBody::Broadcast {
            packet: Packet::new(crate::socketio::PacketType::Event, "/", None),
            request_id: request_id.map(str::to_owned),
            opts: BroadcastOpts::default(),
        };
        assert!(!msg(broadcast(None)).is_ephemeral());
        assert!(msg(broadcast(Some("r"))).is_ephemeral());
        assert!(
            msg(MessageBody::ServerSideEmit {
                request_id: None,
                packet: vec![]
            })
            .is_ephemeral()
        );
        assert!(!msg(MessageBody::Heartbeat).is_ephemeral());
        assert!(MessageType::BroadcastAck.is_response());
        assert!(!MessageType::FetchSockets.is_response());
    }
}
