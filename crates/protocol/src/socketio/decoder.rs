//! The Socket.IO decoder: text packets are parsed and validated like Node's
//! `socket.io-parser`; binary packets wait for their attachments.

use bytes::Bytes;
use serde_json::Value;

use super::packet::{Packet, PacketType, is_reserved_event};

/// Default cap on attachments announced by one packet: Node's `socket.io-parser`
/// default (10). The official clients' parser refuses more, so a larger cap would only
/// let one client send packets that break the others; it also stops a client from
/// making the server wait for (and buffer) an unbounded number of binary frames.
pub const DEFAULT_MAX_ATTACHMENTS: usize = 10;

/// Why a Socket.IO packet was rejected. Every variant closes the connection, as in Node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The packet is empty.
    #[error("empty packet")]
    Empty,
    /// The type digit is not 0–6.
    #[error("unknown packet type")]
    UnknownType,
    /// The attachment count is malformed or above the limit.
    #[error("illegal attachments")]
    IllegalAttachments,
    /// The JSON is malformed, too deep, or not the shape this packet type requires
    /// (e.g. an event that is not an array starting with a non-reserved name).
    #[error("invalid payload")]
    InvalidPayload,
    /// A binary message arrived while no binary packet awaited attachments
    /// (more attachments than announced).
    #[error("got binary data when not reconstructing a packet")]
    UnexpectedBinary,
    /// A text packet arrived while a binary packet still awaited attachments.
    #[error("got plaintext data when reconstructing a packet")]
    UnexpectedText,
}

/// Streaming decoder for one connection.
#[derive(Debug)]
pub struct Decoder {
    /// A binary packet waiting for `expected` attachments.
    pending: Option<(Packet, usize)>,
    max_attachments: usize,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new(DEFAULT_MAX_ATTACHMENTS)
    }
}

impl Decoder {
    /// A decoder accepting at most `max_attachments` per packet.
    pub fn new(max_attachments: usize) -> Self {
        Decoder {
            pending: None,
            max_attachments,
        }
    }

    /// Decodes a text message. Returns `Ok(None)` when a binary packet now waits for its
    /// attachments.
    pub fn decode_text(&mut self, text: &str) -> Result<Option<Packet>, DecodeError> {
        if self.pending.is_some() {
            return Err(DecodeError::UnexpectedText);
        }
        let (packet, expected) = parse(text, self.max_attachments)?;
        if expected == 0 {
            return Ok(Some(packet));
        }
        self.pending = Some((packet, expected));
        Ok(None)
    }

    /// Adds a binary attachment. Returns the packet once all attachments arrived.
    pub fn decode_binary(&mut self, data: Bytes) -> Result<Option<Packet>, DecodeError> {
        let (mut packet, expected) = self.pending.take().ok_or(DecodeError::UnexpectedBinary)?;
        packet.attachments.push(data);
        if packet.attachments.len() < expected {
            self.pending = Some((packet, expected));
            return Ok(None);
        }
        if let Some(data) = &packet.data {
            check_placeholders(data, &mut vec![false; expected])?;
        }
        Ok(Some(packet))
    }

    /// Whether a binary packet is waiting for attachments.
    pub fn is_reconstructing(&self) -> bool {
        self.pending.is_some()
    }
}

/// Parses `<type>[<attachments>-][<nsp>,][<id>][<json>]`.
fn parse(text: &str, max_attachments: usize) -> Result<(Packet, usize), DecodeError> {
    let bytes = text.as_bytes();
    let kind = PacketType::from_byte(*bytes.first().ok_or(DecodeError::Empty)?)
        .ok_or(DecodeError::UnknownType)?;
    let mut i = 1;
    let mut expected = 0;
    if kind.is_binary() {
        let digits = count_digits(&bytes[i..]);
        let n: usize = text[i..i + digits]
            .parse()
            .map_err(|_| DecodeError::IllegalAttachments)?;
        if bytes.get(i + digits) != Some(&b'-') || n == 0 || n > max_attachments {
            return Err(DecodeError::IllegalAttachments);
        }
        expected = n;
        i += digits + 1;
    }
    let mut nsp = "/";
    if bytes.get(i) == Some(&b'/') {
        let end = text[i..].find(',').map_or(bytes.len(), |p| i + p);
        nsp = &text[i..end];
        i = (end + 1).min(bytes.len());
    }
    let digits = count_digits(&bytes[i..]);
    let id = if digits > 0 {
        let id = text[i..i + digits]
            .parse::<u64>()
            .map_err(|_| DecodeError::InvalidPayload)?;
        i += digits;
        Some(id)
    } else {
        None
    };
    let data = if i < bytes.len() {
        let value: Value =
            serde_json::from_str(&text[i..]).map_err(|_| DecodeError::InvalidPayload)?;
        Some(value)
    } else {
        None
    };
    if !payload_is_valid(kind, data.as_ref()) {
        return Err(DecodeError::InvalidPayload);
    }
    let packet = Packet {
        kind,
        nsp: nsp.to_owned(),
        id,
        data,
        attachments: Vec::new(),
    };
    Ok((packet, expected))
}

fn count_digits(bytes: &[u8]) -> usize {
    bytes.iter().take_while(|b| b.is_ascii_digit()).count()
}

/// The shape rules of Node's `socket.io-parser` `isPayloadValid`.
fn payload_is_valid(kind: PacketType, data: Option<&Value>) -> bool {
    match kind {
        PacketType::Connect => matches!(data, None | Some(Value::Object(_))),
        PacketType::Disconnect => data.is_none(),
        PacketType::ConnectError => matches!(data, Some(Value::String(_) | Value::Object(_))),
        PacketType::Event | PacketType::BinaryEvent => match data {
            Some(Value::Array(items)) => match items.first() {
                Some(Value::String(name)) => !is_reserved_event(name),
                Some(Value::Number(_)) => true,
                _ => false,
            },
            _ => false,
        },
        PacketType::Ack | PacketType::BinaryAck => matches!(data, Some(Value::Array(_))),
    }
}

/// Every placeholder must point at an attachment that exists, each attachment at most
/// once (`named[i]`: attachment `i` has a placeholder). `socket.io-parser` numbers a
/// packet's buffers one placeholder each; a packet naming one attachment thousands of
/// times would be small here but that many copies of it wherever it is written out
/// whole (a cluster message carries binary inline).
fn check_placeholders(value: &Value, named: &mut [bool]) -> Result<(), DecodeError> {
    match value {
        Value::Array(items) => items.iter().try_for_each(|v| check_placeholders(v, named)),
        Value::Object(map) => {
            if map.get("_placeholder").and_then(Value::as_bool) == Some(true) {
                let num = map.get("num").and_then(Value::as_u64);
                let slot = num
                    .and_then(|n| usize::try_from(n).ok())
                    .and_then(|n| named.get_mut(n));
                return match slot {
                    Some(seen) if !*seen => {
                        *seen = true;
                        Ok(())
                    }
                    _ => Err(DecodeError::IllegalAttachments),
                };
            }
            map.values().try_for_each(|v| check_placeholders(v, named))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn one(text: &str) -> Result<Option<Packet>, DecodeError> {
        Decoder::default().decode_text(text)
    }

    #[test]
    fn decodes_plain_packets() {
        let p = one(r#"2/admin,12["hello",{"a":1}]"#).unwrap().unwrap();
        assert_eq!(p.kind, PacketType::Event);
        assert_eq!(p.nsp, "/admin");
        assert_eq!(p.id, Some(12));
        assert_eq!(p.event_name(), Some("hello"));
        let c = one(r#"0{"token":"x"}"#).unwrap().unwrap();
        assert_eq!((c.kind, c.nsp.as_str()), (PacketType::Connect, "/"));
        assert_eq!(c.data, Some(json!({"token": "x"})));
        let c = one("0/custom,").unwrap().unwrap();
        assert_eq!((c.nsp.as_str(), c.data), ("/custom", None));
        let d = one("1/custom,").unwrap().unwrap();
        assert_eq!(d.kind, PacketType::Disconnect);
        let a = one("3/x,7[]").unwrap().unwrap();
        assert_eq!((a.kind, a.id), (PacketType::Ack, Some(7)));
    }

    #[test]
    fn rejects_what_node_rejects() {
        for bad in [
            "",
            "9",
            "2",
            "2[]",
            r#"2{"a":1}"#,
            r#"2["disconnect"]"#,
            "2[true]",
            r#"0"str""#,
            "0[]",
            "1{}",
            "3{}",
            "2[\"a\"",
            "4",
            "5-[\"a\"]",
            "5x-[\"a\"]",
            "51[\"a\"]",
            "50-[\"a\"]",
        ] {
            assert!(one(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn deep_json_is_rejected_not_a_stack_overflow() {
        let deep = format!("2[\"a\",{}{}]", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(one(&deep), Err(DecodeError::InvalidPayload));
    }

    #[test]
    fn reassembles_binary_packets() {
        let mut d = Decoder::default();
        let text = r#"52-["ev",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#;
        assert_eq!(d.decode_text(text), Ok(None));
        assert!(d.is_reconstructing());
        assert_eq!(d.decode_text("2[\"x\"]"), Err(DecodeError::UnexpectedText));
        let mut d = Decoder::default();
        d.decode_text(text).unwrap();
        assert_eq!(d.decode_binary(Bytes::from_static(b"a")), Ok(None));
        let p = d.decode_binary(Bytes::from_static(b"b")).unwrap().unwrap();
        assert_eq!(p.kind, PacketType::BinaryEvent);
        assert_eq!(p.attachments.len(), 2);
        assert_eq!(
            d.decode_binary(Bytes::from_static(b"extra")),
            Err(DecodeError::UnexpectedBinary)
        );
    }

    #[test]
    fn placeholder_out_of_range_is_rejected() {
        let mut d = Decoder::default();
        d.decode_text(r#"51-["ev",{"_placeholder":true,"num":3}]"#)
            .unwrap();
        assert_eq!(
            d.decode_binary(Bytes::from_static(b"a")),
            Err(DecodeError::IllegalAttachments)
        );
    }

    #[test]
    fn an_attachment_named_twice_is_rejected() {
        // One small buffer named by many placeholders would be written out once per
        // placeholder wherever the packet is carried with its binary inline.
        for text in [
            r#"51-["ev",{"_placeholder":true,"num":0},{"_placeholder":true,"num":0}]"#,
            r#"62-7[[{"a":{"_placeholder":true,"num":1}},{"_placeholder":true,"num":1}]]"#,
        ] {
            let mut d = Decoder::default();
            assert_eq!(d.decode_text(text).unwrap(), None);
            let mut last = d.decode_binary(Bytes::from_static(b"a"));
            if d.is_reconstructing() {
                last = d.decode_binary(Bytes::from_static(b"b"));
            }
            assert_eq!(last, Err(DecodeError::IllegalAttachments), "{text}");
        }
        // Each attachment named once, in any order, is fine.
        let mut d = Decoder::default();
        let text = r#"52-["ev",{"_placeholder":true,"num":1},{"_placeholder":true,"num":0}]"#;
        assert_eq!(d.decode_text(text).unwrap(), None);
        assert_eq!(d.decode_binary(Bytes::from_static(b"a")).unwrap(), None);
        assert!(d.decode_binary(Bytes::from_static(b"b")).unwrap().is_some());
    }

    #[test]
    fn attachment_cap() {
        let mut d = Decoder::new(2);
        assert_eq!(
            d.decode_text(r#"53-["ev"]"#),
            Err(DecodeError::IllegalAttachments)
        );
    }

    #[test]
    fn encode_decode_round_trip() {
        let mut p = Packet::new(PacketType::Event, "/chat", Some(json!(["m", 1, "x"])));
        p.id = Some(3);
        let text = p.encode_to_string();
        assert_eq!(one(&text).unwrap().unwrap(), p);
    }
}
