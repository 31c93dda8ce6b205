//! The wire format of `@socket.io/redis-adapter` 8 (classic Redis pub/sub) and
//! `@socket.io/redis-emitter` 5: channel names, the broadcast message, and the
//! requests and responses between nodes.
//!
//! Per namespace, with the default key prefix `socket.io`:
//!
//! | channel | payload |
//! |---|---|
//! | `socket.io#/nsp#` | broadcast to the whole namespace: [`BroadcastMessage`] (notepack) |
//! | `socket.io#/nsp#room#` | broadcast to exactly one room (same payload) |
//! | `socket.io-request#/nsp#` | [`Request`]: JSON, except `BROADCAST` (notepack) |
//! | `socket.io-response#/nsp#` | [`Response`]: JSON, except `BROADCAST_ACK` (notepack) |
//! | `socket.io-response#/nsp#<uid>#` | the same, when the requester's peers publish on specific channels |
//!
//! Nodes subscribe to the pattern `socket.io#/nsp#*` and drop messages whose `uid` is
//! their own. Emitters publish with the uid [`EMITTER_UID`] and no uid at all on
//! `socketsJoin`/`socketsLeave`/`disconnectSockets` requests.

mod request;
mod response;

use super::CodecError;
use super::msgpack::{self, MsgValue};
use super::opts::BroadcastOpts;
use crate::socketio::Packet;

pub use request::{Request, RequestBody, RequestType};
pub use response::{RawResponse, Response};

/// Default key prefix (`key` option) of the adapter and the emitter.
pub const DEFAULT_KEY: &str = "socket.io";

/// The uid `@socket.io/redis-emitter` publishes with.
pub const EMITTER_UID: &str = "emitter";

/// The channel names of one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channels {
    /// `<key>#<nsp>#`.
    broadcast: String,
    /// `<key>-request#<nsp>#`.
    request: String,
    /// `<key>-response#<nsp>#`.
    response: String,
}

/// Where a message received on the broadcast pattern was published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelTarget<'a> {
    /// The namespace channel: the message's own rooms decide.
    All,
    /// A single-room channel. Node drops the message unless a local socket is in the
    /// room (checking the number a numeric room stands for too).
    Room(&'a str),
}

impl Channels {
    /// The channels for key prefix `key` (usually [`DEFAULT_KEY`]) and namespace `nsp`.
    pub fn new(key: &str, nsp: &str) -> Self {
        Channels {
            broadcast: format!("{key}#{nsp}#"),
            request: format!("{key}-request#{nsp}#"),
            response: format!("{key}-response#{nsp}#"),
        }
    }

    /// Broadcasts to the whole namespace: `socket.io#/nsp#`.
    pub fn broadcast(&self) -> &str {
        &self.broadcast
    }

    /// Broadcasts to exactly one room: `socket.io#/nsp#room#`.
    pub fn room(&self, room: &str) -> String {
        format!("{}{room}#", self.broadcast)
    }

    /// The channel Node publishes a broadcast on: the room's when `opts` target exactly
    /// one room, the namespace's otherwise.
    pub fn for_opts(&self, opts: &BroadcastOpts) -> String {
        match opts.single_room() {
            Some(room) => self.room(room),
            None => self.broadcast.clone(),
        }
    }

    /// The pattern to `PSUBSCRIBE` to: `socket.io#/nsp#*`. Like Node, glob characters in
    /// the key or namespace are not escaped.
    pub fn pattern(&self) -> String {
        format!("{}*", self.broadcast)
    }

    /// Requests: `socket.io-request#/nsp#`.
    pub fn request(&self) -> &str {
        &self.request
    }

    /// Responses: `socket.io-response#/nsp#`.
    pub fn response(&self) -> &str {
        &self.response
    }

    /// Responses for node `uid` only: `socket.io-response#/nsp#<uid>#`.
    pub fn specific_response(&self, uid: &str) -> String {
        format!("{}{uid}#", self.response)
    }

    /// Where a message delivered by the pattern subscription was published; `None` when
    /// the channel is not this namespace's. As in Node, the room is what lies between the
    /// namespace channel and the channel's last character, and an empty room means
    /// [`ChannelTarget::All`].
    pub fn parse_broadcast<'a>(&self, channel: &'a str) -> Option<ChannelTarget<'a>> {
        let rest = channel.strip_prefix(self.broadcast.as_str())?;
        let mut chars = rest.chars();
        chars.next_back();
        match chars.as_str() {
            "" => Some(ChannelTarget::All),
            room => Some(ChannelTarget::Room(room)),
        }
    }
}

/// What a channel of the adapter carries, read from its name alone (see
/// [`parse_channel`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelKind<'a> {
    /// `<key>#<nsp>#` or `<key>#<nsp>#<room>#`: a [`BroadcastMessage`].
    Broadcast {
        /// The namespace.
        nsp: &'a str,
        /// The whole namespace, or the one room the channel names.
        target: ChannelTarget<'a>,
    },
    /// `<key>-request#<nsp>#`: a [`Request`].
    Request {
        /// The namespace.
        nsp: &'a str,
    },
    /// `<key>-response#<nsp>#`, or a node's own `<key>-response#<nsp>#<uid>#`: a
    /// [`Response`].
    Response {
        /// The namespace.
        nsp: &'a str,
    },
}

/// Which namespace a channel of key prefix `key` belongs to and what it carries, for a
/// node that serves every namespace over one subscriber connection (Node has one
/// handler per namespace, each checking [`Channels`]). `None` for other channels.
///
/// Namespace names are taken to contain no `#`: on a broadcast channel the namespace
/// ends at the first `#` after the key, and the rest is read as
/// [`Channels::parse_broadcast`] reads it (a room may contain `#`).
pub fn parse_channel<'a>(key: &str, channel: &'a str) -> Option<ChannelKind<'a>> {
    let rest = channel.strip_prefix(key)?;
    if let Some(rest) = rest.strip_prefix("-request#") {
        return Some(ChannelKind::Request {
            nsp: rest.strip_suffix('#')?,
        });
    }
    if let Some(rest) = rest.strip_prefix("-response#") {
        return Some(ChannelKind::Response {
            nsp: rest.split_once('#')?.0,
        });
    }
    let (nsp, tail) = rest.strip_prefix('#')?.split_once('#')?;
    let mut chars = tail.chars();
    chars.next_back();
    let target = match chars.as_str() {
        "" => ChannelTarget::All,
        room => ChannelTarget::Room(room),
    };
    Some(ChannelKind::Broadcast { nsp, target })
}

/// A broadcast: notepack `[uid, packet, opts]`.
#[derive(Debug, Clone, PartialEq)]
pub struct BroadcastMessage {
    /// The publishing node ([`EMITTER_UID`] for emitters).
    pub uid: String,
    /// The packet; its `nsp` is the namespace (Node's receiver ignores other
    /// namespaces; a missing `nsp` means `/`).
    pub packet: Packet,
    /// The target.
    pub opts: BroadcastOpts,
}

impl BroadcastMessage {
    /// The bytes `RedisAdapter#broadcast` publishes: the packet as
    /// `{type, data, nsp[, id]}` with binary as `bin`, opts as `{rooms, except, flags}`.
    pub fn encode(&self) -> Vec<u8> {
        let value = MsgValue::Array(vec![
            self.uid.as_str().into(),
            super::node_packet::to_value(&self.packet, true),
            self.opts.to_value(),
        ]);
        msgpack::encode_notepack(&value)
    }

    /// Reads a broadcast from a node or an emitter. Binary arrives as attachments with
    /// placeholders in the packet data.
    pub fn decode(msg: &[u8]) -> Result<Self, CodecError> {
        let MsgValue::Array(items) = msgpack::decode(msg)? else {
            return Err(CodecError::Field("message"));
        };
        let mut items = items.into_iter();
        let (Some(uid), Some(packet), Some(opts)) = (items.next(), items.next(), items.next())
        else {
            return Err(CodecError::Field("message"));
        };
        let MsgValue::Str(uid) = uid else {
            return Err(CodecError::Field("uid"));
        };
        Ok(BroadcastMessage {
            uid,
            packet: super::node_packet::from_value(packet, "/")?,
            opts: BroadcastOpts::from_value(&opts)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::socketio::PacketType;
    use serde_json::json;

    #[test]
    fn channel_names() {
        let ch = Channels::new(DEFAULT_KEY, "/chat");
        assert_eq!(ch.broadcast(), "socket.io#/chat#");
        assert_eq!(ch.room("r1"), "socket.io#/chat#r1#");
        assert_eq!(ch.pattern(), "socket.io#/chat#*");
        assert_eq!(ch.request(), "socket.io-request#/chat#");
        assert_eq!(ch.response(), "socket.io-response#/chat#");
        assert_eq!(ch.specific_response("abc"), "socket.io-response#/chat#abc#");
        let one = BroadcastOpts {
            rooms: vec!["r1".into()],
            ..Default::default()
        };
        assert_eq!(ch.for_opts(&one), "socket.io#/chat#r1#");
        assert_eq!(ch.for_opts(&BroadcastOpts::default()), "socket.io#/chat#");
    }

    #[test]
    fn parses_broadcast_channels_like_node() {
        let ch = Channels::new("k", "/");
        assert_eq!(ch.parse_broadcast("k#/#"), Some(ChannelTarget::All));
        assert_eq!(
            ch.parse_broadcast("k#/#room#"),
            Some(ChannelTarget::Room("room"))
        );
        assert_eq!(
            ch.parse_broadcast("k#/#a#b#"),
            Some(ChannelTarget::Room("a#b"))
        );
        assert_eq!(ch.parse_broadcast("k#/#é#"), Some(ChannelTarget::Room("é")));
        // Node slices off the last character whatever it is.
        assert_eq!(ch.parse_broadcast("k#/#x"), Some(ChannelTarget::All));
        assert_eq!(ch.parse_broadcast("k#/chat#r#"), None);
        assert_eq!(ch.parse_broadcast("k-request#/#"), None);
    }

    #[test]
    fn parses_every_channel_of_a_key() {
        let ch = Channels::new(DEFAULT_KEY, "/chat");
        fn parse(channel: &str) -> Option<ChannelKind<'_>> {
            parse_channel(DEFAULT_KEY, channel)
        }
        assert_eq!(
            parse(ch.broadcast()),
            Some(ChannelKind::Broadcast {
                nsp: "/chat",
                target: ChannelTarget::All
            })
        );
        assert_eq!(
            parse(&ch.room("r#1")),
            Some(ChannelKind::Broadcast {
                nsp: "/chat",
                target: ChannelTarget::Room("r#1")
            })
        );
        assert_eq!(
            parse(ch.request()),
            Some(ChannelKind::Request { nsp: "/chat" })
        );
        for response in [ch.response().to_owned(), ch.specific_response("abc")] {
            assert_eq!(
                parse(&response),
                Some(ChannelKind::Response { nsp: "/chat" })
            );
        }
        // Node slices off the last character of a broadcast channel, whatever it is.
        assert_eq!(
            parse("socket.io#/#x"),
            Some(ChannelKind::Broadcast {
                nsp: "/",
                target: ChannelTarget::All
            })
        );
        for other in [
            "other#/chat#",
            "socket.io#/chat",
            "socket.io-request#/chat",
            "socket.io-other#/chat#",
            "socket.iox#/#",
        ] {
            assert_eq!(parse(other), None, "{other}");
        }
    }

    #[test]
    fn broadcast_with_binary_round_trips() {
        let mut packet = Packet::new(
            PacketType::Event,
            "/chat",
            Some(json!(["file", crate::socketio::placeholder(0), {"n": 1}])),
        );
        packet.attachments = vec![bytes::Bytes::from_static(&[1, 2, 3])];
        let msg = BroadcastMessage {
            uid: "abc".into(),
            packet,
            opts: BroadcastOpts {
                rooms: vec!["r".into()],
                except: vec!["s".into()],
                ..Default::default()
            },
        };
        assert_eq!(BroadcastMessage::decode(&msg.encode()), Ok(msg));
    }

    #[test]
    fn broadcast_round_trip() {
        let msg = BroadcastMessage {
            uid: "abc123".into(),
            packet: Packet::new(PacketType::Event, "/", Some(json!(["hi", 1]))),
            opts: BroadcastOpts::default(),
        };
        assert_eq!(BroadcastMessage::decode(&msg.encode()), Ok(msg));
    }

    #[test]
    fn broadcast_garbage() {
        let two = msgpack::encode_notepack(&MsgValue::Array(vec!["a".into(), MsgValue::Nil]));
        assert_eq!(
            BroadcastMessage::decode(&two),
            Err(CodecError::Field("message"))
        );
        let bad_uid = msgpack::encode_notepack(&MsgValue::Array(vec![
            MsgValue::Int(1),
            MsgValue::Map(vec![]),
            MsgValue::Map(vec![]),
        ]));
        assert_eq!(
            BroadcastMessage::decode(&bad_uid),
            Err(CodecError::Field("uid"))
        );
        assert_eq!(
            BroadcastMessage::decode(b"{}"),
            Err(CodecError::TrailingBytes(1))
        );
    }
}
