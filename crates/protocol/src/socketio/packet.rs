//! The Socket.IO packet and its text encoding.

use bytes::Bytes;
use serde_json::Value;

/// The seven Socket.IO packet types, by their wire digit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketType {
    /// `0`: connect to a namespace (client) or accept the connection (server).
    Connect,
    /// `1`: leave a namespace.
    Disconnect,
    /// `2`: an event.
    Event,
    /// `3`: an acknowledgement.
    Ack,
    /// `4`: the namespace connection was refused.
    ConnectError,
    /// `5`: an event with binary attachments.
    BinaryEvent,
    /// `6`: an acknowledgement with binary attachments.
    BinaryAck,
}

impl PacketType {
    pub(crate) fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            b'0' => Self::Connect,
            b'1' => Self::Disconnect,
            b'2' => Self::Event,
            b'3' => Self::Ack,
            b'4' => Self::ConnectError,
            b'5' => Self::BinaryEvent,
            b'6' => Self::BinaryAck,
            _ => return None,
        })
    }

    fn digit(self) -> u8 {
        match self {
            Self::Connect => b'0',
            Self::Disconnect => b'1',
            Self::Event => b'2',
            Self::Ack => b'3',
            Self::ConnectError => b'4',
            Self::BinaryEvent => b'5',
            Self::BinaryAck => b'6',
        }
    }

    /// Whether this type carries binary attachments.
    pub fn is_binary(self) -> bool {
        matches!(self, Self::BinaryEvent | Self::BinaryAck)
    }
}

/// Event names a client may not emit and a server may not send, as in Node.
const RESERVED_EVENTS: &[&str] = &[
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
];

/// Whether `name` is reserved by Socket.IO.
pub fn is_reserved_event(name: &str) -> bool {
    RESERVED_EVENTS.contains(&name)
}

/// The JSON marker that stands for attachment `num` inside a binary packet's data.
pub fn placeholder(num: usize) -> Value {
    serde_json::json!({ "_placeholder": true, "num": num })
}

/// A Socket.IO packet.
#[derive(Debug, Clone, PartialEq)]
pub struct Packet {
    /// The packet type. [`PacketType::Event`] and [`PacketType::Ack`] are promoted to
    /// their binary forms when encoded with attachments.
    pub kind: PacketType,
    /// The namespace, `/` by default.
    pub nsp: String,
    /// The acknowledgement id.
    pub id: Option<u64>,
    /// The JSON data (for binary packets, with placeholders).
    pub data: Option<Value>,
    /// Binary attachments referenced by placeholders in `data`.
    pub attachments: Vec<Bytes>,
}

impl Packet {
    /// A packet without id or attachments.
    pub fn new(kind: PacketType, nsp: impl Into<String>, data: Option<Value>) -> Self {
        Packet {
            kind,
            nsp: nsp.into(),
            id: None,
            data,
            attachments: Vec::new(),
        }
    }

    /// The event name of an event packet.
    pub fn event_name(&self) -> Option<&str> {
        match (&self.kind, &self.data) {
            (PacketType::Event | PacketType::BinaryEvent, Some(Value::Array(a))) => {
                a.first().and_then(Value::as_str)
            }
            _ => None,
        }
    }

    /// The attachment a placeholder value stands for, if `value` is one.
    pub fn attachment(&self, value: &Value) -> Option<&Bytes> {
        let obj = value.as_object()?;
        if obj.get("_placeholder")?.as_bool()? {
            let num = usize::try_from(obj.get("num")?.as_u64()?).ok()?;
            return self.attachments.get(num);
        }
        None
    }

    /// The wire type, promoted to binary when attachments are present.
    pub fn wire_type(&self) -> PacketType {
        match (self.kind, self.attachments.is_empty()) {
            (PacketType::Event, false) => PacketType::BinaryEvent,
            (PacketType::Ack, false) => PacketType::BinaryAck,
            (PacketType::BinaryEvent, true) => PacketType::Event,
            (PacketType::BinaryAck, true) => PacketType::Ack,
            (kind, _) => kind,
        }
    }

    /// Appends the text encoding (without attachments) to `out`. The caller sends
    /// `self.attachments` as separate binary messages right after.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let kind = self.wire_type();
        out.push(kind.digit());
        if kind.is_binary() {
            push_decimal(out, self.attachments.len() as u64);
            out.push(b'-');
        }
        if self.nsp != "/" {
            out.extend_from_slice(self.nsp.as_bytes());
            out.push(b',');
        }
        if let Some(id) = self.id {
            push_decimal(out, id);
        }
        if let Some(data) = &self.data {
            // Serializing a `Value` into a Vec cannot fail.
            crate::json::write(out, data);
        }
    }

    /// The text encoding as a string.
    pub fn encode_to_string(&self) -> String {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

fn push_decimal(out: &mut Vec<u8>, n: u64) {
    use std::io::Write as _;
    // Writing to a Vec cannot fail.
    let _ = write!(out, "{n}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn enc(p: &Packet) -> String {
        p.encode_to_string()
    }

    #[test]
    fn encodes_like_the_spec_examples() {
        let connect = Packet::new(PacketType::Connect, "/", Some(json!({"sid": "abc"})));
        assert_eq!(enc(&connect), r#"0{"sid":"abc"}"#);
        let disconnect = Packet::new(PacketType::Disconnect, "/admin", None);
        assert_eq!(enc(&disconnect), "1/admin,");
        let mut event = Packet::new(PacketType::Event, "/", Some(json!(["foo", 1])));
        event.id = Some(12);
        assert_eq!(enc(&event), r#"212["foo",1]"#);
        let err = Packet::new(
            PacketType::ConnectError,
            "/x",
            Some(json!({"message": "Invalid namespace"})),
        );
        assert_eq!(enc(&err), r#"4/x,{"message":"Invalid namespace"}"#);
    }

    #[test]
    fn binary_packets_are_promoted_and_counted() {
        let mut ack = Packet::new(PacketType::Ack, "/admin", Some(json!([placeholder(0)])));
        ack.id = Some(456);
        ack.attachments = vec![Bytes::from_static(&[1, 2, 3])];
        assert_eq!(enc(&ack), r#"61-/admin,456[{"_placeholder":true,"num":0}]"#);
        assert_eq!(
            ack.attachment(&placeholder(0)),
            Some(&Bytes::from_static(&[1, 2, 3]))
        );
        assert_eq!(ack.attachment(&placeholder(1)), None);
    }

    #[test]
    fn reserved_names() {
        assert!(is_reserved_event("disconnect"));
        assert!(!is_reserved_event("message"));
    }
}
