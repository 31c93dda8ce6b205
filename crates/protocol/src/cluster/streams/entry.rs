//! Cluster messages as stream entry fields and as pub/sub payloads (the streams
//! adapter's MessagePack, and the sharded Redis adapter's JSON or notepack); channel
//! and stream names.

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use super::{ClusterMessage, MessageBody, MessageType};
use crate::cluster::CodecError;
use crate::cluster::js::stringify;
use crate::cluster::msgpack::{self, MsgValue};
use crate::cluster::read::{self, Obj, ObjBuilder, take};

/// Default stream name (`streamName` option), also the prefix when `streamCount > 1`.
pub const DEFAULT_STREAM_NAME: &str = "socket.io";

/// Default pub/sub channel prefix (`channelPrefix` option).
pub const DEFAULT_CHANNEL_PREFIX: &str = "socket.io";

/// Standard base64 as Node's `Buffer` writes it; decoding accepts missing padding, as
/// `Buffer.from(s, "base64")` does.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The channel every node of namespace `nsp` subscribes to: `socket.io#/nsp#`.
pub fn public_channel(prefix: &str, nsp: &str) -> String {
    format!("{prefix}#{nsp}#")
}

/// The channel responses to node `uid` go to: `socket.io#/nsp#<uid>#`.
pub fn private_channel(prefix: &str, nsp: &str, uid: &str) -> String {
    format!("{prefix}#{nsp}#{uid}#")
}

/// The channel of one room in the sharded adapter's dynamic modes:
/// `socket.io#/nsp#room#`, subscribed by the nodes where the room has members.
pub fn room_channel(prefix: &str, nsp: &str, room: &str) -> String {
    format!("{prefix}#{nsp}#{room}#")
}

/// Whether the sharded adapter takes `room` for a socket's own room when it picks a
/// channel: 20 characters long, as JavaScript counts them (UTF-16 units).
pub fn looks_like_socket_id(room: &str) -> bool {
    room.encode_utf16().count() == 20
}

/// The stream namespace `nsp` is routed to: `name` itself when `count <= 1`, else
/// `name-<i>` with `i = hashCode(nsp) % count` computed as JavaScript does — a 32-bit
/// wrapping Java-style hash over UTF-16 units, and a remainder that keeps the hash's
/// sign (so `socket.io--1` is a possible name).
pub fn stream_name(name: &str, count: u32, nsp: &str) -> String {
    if count <= 1 {
        return name.to_owned();
    }
    let hash = nsp.encode_utf16().fold(0i32, |h, unit| {
        h.wrapping_mul(31).wrapping_add(i32::from(unit))
    });
    format!("{name}-{}", i64::from(hash) % i64::from(count))
}

/// A field value as text, U+FFFD in place of what is not UTF-8. Stream values are
/// text, so the fast check comes first and the lossy pass only when it fails.
fn text(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

impl ClusterMessage {
    /// The fields `XADD`ed for this message, in Node's order: `uid`, `nsp`, `type`
    /// (decimal) and, for types with data, `data`: base64 of the `@msgpack/msgpack`
    /// encoding when the type may carry binary and does, JSON otherwise.
    pub fn to_stream_fields(&self) -> Vec<(&'static str, String)> {
        let kind = self.body.message_type();
        let mut fields = vec![
            ("uid", self.uid.clone()),
            ("nsp", self.nsp.clone()),
            ("type", kind.code().to_string()),
        ];
        if let Some(data) = self.body.data() {
            let encoded = if kind.may_contain_binary() && data.has_binary() {
                BASE64.encode(msgpack::encode_msgpack(&data))
            } else {
                stringify(&data)
            };
            fields.push(("data", encoded));
        }
        fields
    }

    /// Reads a stream entry from its field/value pairs (a later duplicate field wins).
    /// Node skips entries without a (non-empty) `nsp`; here they are
    /// [`CodecError::Field`]`("nsp")`. `data` starting with `{` is JSON, anything else
    /// base64 MessagePack. Text that is not UTF-8 reads with U+FFFD in its place.
    ///
    /// The values may be borrowed (a reader walking a Redis reply in place): `data`,
    /// the large one, is read where it lies unless it needs that replacement.
    pub fn from_stream_fields<K, V>(
        fields: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self, CodecError>
    where
        K: AsRef<[u8]>,
        V: AsRef<[u8]>,
    {
        let (mut uid, mut nsp, mut kind, mut data) = (None, None, None, None);
        for (k, v) in fields {
            let slot = match k.as_ref() {
                b"uid" => &mut uid,
                b"nsp" => &mut nsp,
                b"type" => &mut kind,
                b"data" => &mut data,
                _ => continue,
            };
            *slot = Some(v);
        }
        let nsp = nsp
            .map(|n| text(n.as_ref()).into_owned())
            .filter(|n| !n.is_empty())
            .ok_or(CodecError::Field("nsp"))?;
        let uid = uid
            .map(|u| text(u.as_ref()).into_owned())
            .ok_or(CodecError::Field("uid"))?;
        let code: i64 = kind
            .and_then(|k| text(k.as_ref()).parse().ok())
            .ok_or(CodecError::Field("type"))?;
        let kind = MessageType::from_code(code).ok_or(CodecError::UnknownType(code))?;
        let data = data.as_ref().map(|d| text(d.as_ref()));
        let data = match data.as_deref().filter(|d| !d.is_empty()) {
            None => None,
            Some(d) if d.starts_with('{') => Some(read::json(d.as_bytes())?),
            Some(d) => {
                let bytes = BASE64
                    .decode(d.trim_end())
                    .map_err(|_| CodecError::Base64)?;
                Some(msgpack::decode(&bytes)?)
            }
        };
        let body = MessageBody::from_data(kind, data, &nsp)?;
        Ok(ClusterMessage { uid, nsp, body })
    }

    /// The pub/sub payload: the whole message `{type, data, uid, nsp}` (the order the
    /// cluster adapter builds it in) encoded with `@msgpack/msgpack`.
    pub fn encode_pubsub(&self) -> Vec<u8> {
        let value = ObjBuilder::new()
            .field("type", i64::from(self.body.message_type().code()))
            .opt_field("data", self.body.data())
            .field("uid", self.uid.as_str())
            .field("nsp", self.nsp.as_str())
            .build();
        msgpack::encode_msgpack(&value)
    }

    /// The sharded adapter's payload (`createShardedAdapter` of
    /// `@socket.io/redis-adapter` 8.x): the whole message `{type, data, uid, nsp}` as
    /// JSON, or notepack MessagePack when its type may carry binary and does.
    pub fn encode_sharded(&self) -> Vec<u8> {
        let kind = self.body.message_type();
        let data = self.body.data();
        let binary = kind.may_contain_binary() && data.as_ref().is_some_and(MsgValue::has_binary);
        let value = ObjBuilder::new()
            .field("type", i64::from(kind.code()))
            .opt_field("data", data)
            .field("uid", self.uid.as_str())
            .field("nsp", self.nsp.as_str())
            .build();
        if binary {
            msgpack::encode_notepack(&value)
        } else {
            stringify(&value).into_bytes()
        }
    }

    /// Reads a sharded adapter's payload: JSON when it starts with `{`, MessagePack
    /// otherwise, as Node reads it.
    pub fn decode_sharded(msg: &[u8]) -> Result<Self, CodecError> {
        Self::from_value(read::json_or_msgpack(msg)?)
    }

    /// Reads a pub/sub payload (a request or a response).
    pub fn decode_pubsub(msg: &[u8]) -> Result<Self, CodecError> {
        Self::from_value(msgpack::decode(msg)?)
    }

    /// The message a decoded payload holds.
    fn from_value(mut value: MsgValue) -> Result<Self, CodecError> {
        let obj = Obj::new(&value, "message")?;
        let uid = obj.str("uid")?;
        let nsp = obj.str("nsp")?;
        let code = obj.kind()?;
        let kind = MessageType::from_code(code).ok_or(CodecError::UnknownType(code))?;
        let data: Option<MsgValue> = take(&mut value, "data");
        let body = MessageBody::from_data(kind, data, &nsp)?;
        Ok(ClusterMessage { uid, nsp, body })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::BroadcastOpts;
    use crate::socketio::{Packet, PacketType};
    use bytes::Bytes;
    use serde_json::json;

    fn broadcast(attachments: Vec<Bytes>) -> ClusterMessage {
        let data = if attachments.is_empty() {
            json!(["ev", 1])
        } else {
            json!(["ev", crate::socketio::placeholder(0)])
        };
        let mut packet = Packet::new(PacketType::Event, "/chat", Some(data));
        packet.attachments = attachments;
        ClusterMessage {
            uid: "u1".into(),
            nsp: "/chat".into(),
            body: MessageBody::Broadcast {
                packet,
                request_id: None,
                opts: BroadcastOpts::default(),
            },
        }
    }

    #[test]
    fn json_entry() {
        let msg = broadcast(vec![]);
        let fields = msg.to_stream_fields();
        assert_eq!(
            fields,
            [
                ("uid", "u1".to_owned()),
                ("nsp", "/chat".to_owned()),
                ("type", "3".to_owned()),
                (
                    "data",
                    r#"{"packet":{"type":2,"data":["ev",1]},"opts":{"rooms":[],"except":[],"flags":{}}}"#.to_owned()
                ),
            ]
        );
        assert_eq!(ClusterMessage::from_stream_fields(fields), Ok(msg));
    }

    #[test]
    fn binary_entry_is_base64_msgpack() {
        let msg = broadcast(vec![Bytes::from_static(&[1, 2, 3])]);
        let fields = msg.to_stream_fields();
        assert!(fields[3].1.starts_with('g'), "{}", fields[3].1);
        assert_eq!(ClusterMessage::from_stream_fields(fields), Ok(msg));
    }

    #[test]
    fn entries_without_nsp_or_with_garbage_are_rejected() {
        let fields = [("uid", "u"), ("type", "2")];
        assert_eq!(
            ClusterMessage::from_stream_fields(fields),
            Err(CodecError::Field("nsp"))
        );
        let fields = [("uid", "u"), ("nsp", "/"), ("type", "x")];
        assert_eq!(
            ClusterMessage::from_stream_fields(fields),
            Err(CodecError::Field("type"))
        );
        let fields = [("uid", "u"), ("nsp", "/"), ("type", "99")];
        assert_eq!(
            ClusterMessage::from_stream_fields(fields),
            Err(CodecError::UnknownType(99))
        );
        let fields = [("uid", "u"), ("nsp", "/"), ("type", "3"), ("data", "!!!")];
        assert_eq!(
            ClusterMessage::from_stream_fields(fields),
            Err(CodecError::Base64)
        );
        let fields = [("uid", "u"), ("nsp", "/"), ("type", "3"), ("data", "{]")];
        assert_eq!(
            ClusterMessage::from_stream_fields(fields),
            Err(CodecError::Json)
        );
        let fields = [("uid", "u"), ("nsp", "/"), ("type", "3")];
        assert_eq!(
            ClusterMessage::from_stream_fields(fields),
            Err(CodecError::Field("data"))
        );
        let fields = [("uid", "u"), ("nsp", "/"), ("type", "2"), ("extra", "x")];
        assert!(ClusterMessage::from_stream_fields(fields).is_ok());
    }

    /// Borrowed values read as owned ones do; text that is not UTF-8 gets U+FFFD, and
    /// a later duplicate field wins.
    #[test]
    fn borrowed_fields_and_text_that_is_not_utf8() {
        let msg = broadcast(vec![]);
        let owned = msg.to_stream_fields();
        let borrowed = owned.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes()));
        assert_eq!(
            ClusterMessage::from_stream_fields(borrowed),
            Ok(msg.clone())
        );

        let data = b"{\"packet\":{\"type\":2,\"data\":[\"\xff\"]},\"opts\":{}}";
        let fields: [(&[u8], &[u8]); 5] = [
            (b"uid", b"u\xff"),
            (b"nsp", b"/x"),
            (b"nsp", b"/chat"),
            (b"type", b"3"),
            (b"data", data),
        ];
        let read = ClusterMessage::from_stream_fields(fields).expect("an entry");
        assert_eq!(
            (read.uid.as_str(), read.nsp.as_str()),
            ("u\u{fffd}", "/chat")
        );
        let MessageBody::Broadcast { packet, .. } = read.body else {
            panic!("a broadcast: {:?}", read.body);
        };
        assert_eq!(packet.data, Some(json!(["\u{fffd}"])));
        let fields: [(&[u8], &[u8]); 3] = [(b"uid", b"u"), (b"nsp", b"/"), (b"type", b"\xff")];
        assert_eq!(
            ClusterMessage::from_stream_fields(fields),
            Err(CodecError::Field("type"))
        );
    }

    #[test]
    fn pubsub_round_trip() {
        let msg = ClusterMessage {
            uid: "u".into(),
            nsp: "/".into(),
            body: MessageBody::BroadcastAck {
                request_id: "r".into(),
                packet: MsgValue::Bin(Bytes::from_static(b"x")),
            },
        };
        assert_eq!(ClusterMessage::decode_pubsub(&msg.encode_pubsub()), Ok(msg));
        // A broadcast with acknowledgements travels over pub/sub, binary kept.
        let mut with_ack = broadcast(vec![Bytes::from_static(&[9, 8])]);
        if let MessageBody::Broadcast { request_id, .. } = &mut with_ack.body {
            *request_id = Some("r1".into());
        }
        assert!(with_ack.is_ephemeral());
        assert_eq!(
            ClusterMessage::decode_pubsub(&with_ack.encode_pubsub()),
            Ok(with_ack)
        );
        assert_eq!(
            ClusterMessage::decode_pubsub(&[0x80]),
            Err(CodecError::Field("uid"))
        );
    }

    #[test]
    fn sharded_payloads_are_json_unless_binary() -> Result<(), CodecError> {
        let text = broadcast(Vec::new());
        let encoded = text.encode_sharded();
        assert_eq!(encoded.first(), Some(&b'{'));
        let json: serde_json::Value =
            serde_json::from_slice(&encoded).map_err(|_| CodecError::Json)?;
        assert_eq!(json["type"], 3);
        assert_eq!(json["uid"], text.uid.as_str());
        assert_eq!(json["nsp"], text.nsp.as_str());
        let keys: Vec<&String> = json
            .as_object()
            .map(|o| o.keys().collect())
            .unwrap_or_default();
        assert_eq!(keys.len(), 4);
        assert_eq!(ClusterMessage::decode_sharded(&encoded)?, text);
        let binary = broadcast(vec![Bytes::from_static(b"\x01\x02")]);
        let encoded = binary.encode_sharded();
        assert_ne!(encoded.first(), Some(&b'{'), "notepack");
        assert_eq!(ClusterMessage::decode_sharded(&encoded)?, binary);
        assert!(ClusterMessage::decode_sharded(b"").is_err());
        assert!(ClusterMessage::decode_sharded(b"{\"type\":3}").is_err());
        Ok(())
    }

    #[test]
    fn room_channels_and_socket_ids() {
        assert_eq!(room_channel("socket.io", "/", "news"), "socket.io#/#news#");
        assert!(looks_like_socket_id("AAAAAAAAAAAAAAAAAAAA"));
        assert!(!looks_like_socket_id("news"));
        // 20 UTF-16 units, 40 bytes.
        assert!(looks_like_socket_id(&"é".repeat(20)));
    }

    #[test]
    fn names() {
        assert_eq!(public_channel("socket.io", "/"), "socket.io#/#");
        assert_eq!(private_channel("socket.io", "/a", "u1"), "socket.io#/a#u1#");
        assert_eq!(stream_name("s", 1, "/anything"), "s");
        // hashCode("/") = 47.
        assert_eq!(stream_name("s", 10, "/"), "s-7");
    }
}
