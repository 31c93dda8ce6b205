//! One Engine.IO packet: its type byte, text or binary data, and its two encodings
//! (WebSocket frame and long-polling payload element).

use base64::Engine as _;
use bytes::{BufMut, Bytes, BytesMut};

/// The seven Engine.IO packet types, by their wire digit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum PacketType {
    /// `0`: sent by the server with the handshake data.
    Open = b'0',
    /// `1`: the transport should be closed.
    Close = b'1',
    /// `2`: heartbeat request (server → client), or upgrade probe (client → server).
    Ping = b'2',
    /// `3`: heartbeat answer.
    Pong = b'3',
    /// `4`: application data.
    Message = b'4',
    /// `5`: completes the polling → WebSocket upgrade.
    Upgrade = b'5',
    /// `6`: flushes a pending long-polling request during an upgrade.
    Noop = b'6',
}

impl PacketType {
    fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            b'0' => Self::Open,
            b'1' => Self::Close,
            b'2' => Self::Ping,
            b'3' => Self::Pong,
            b'4' => Self::Message,
            b'5' => Self::Upgrade,
            b'6' => Self::Noop,
            _ => return None,
        })
    }
}

/// A decoded Engine.IO packet.
///
/// Text data is kept as `Bytes` that are known to be valid UTF-8, so decoding a
/// WebSocket text frame or a polling body slices it without copying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// Handshake data (JSON), server → client.
    Open(Bytes),
    /// Close the transport.
    Close,
    /// Ping with optional data (`probe` during an upgrade).
    Ping(Bytes),
    /// Pong with optional data (`probe` during an upgrade).
    Pong(Bytes),
    /// A text message; always valid UTF-8.
    Message(Bytes),
    /// A binary message.
    Binary(Bytes),
    /// Upgrade completion.
    Upgrade,
    /// No-op.
    Noop,
}

/// Why bytes could not be decoded as an Engine.IO packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The packet is empty.
    #[error("empty packet")]
    Empty,
    /// The first byte is not a packet type.
    #[error("unknown packet type {0:#04x}")]
    UnknownType(u8),
    /// The text is not valid UTF-8.
    #[error("invalid UTF-8")]
    InvalidUtf8,
    /// A `b`-prefixed binary packet is not valid base64.
    #[error("invalid base64 in binary packet")]
    InvalidBase64,
}

impl Packet {
    /// Decodes one packet from text (a WebSocket text frame or one element of a polling
    /// payload). `b<base64>` is accepted as a binary message, as polling clients send it.
    pub fn decode_text(text: Bytes) -> Result<Packet, DecodeError> {
        std::str::from_utf8(&text).map_err(|_| DecodeError::InvalidUtf8)?;
        let first = *text.first().ok_or(DecodeError::Empty)?;
        if first == b'b' {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(&text[1..])
                .map_err(|_| DecodeError::InvalidBase64)?;
            return Ok(Packet::Binary(Bytes::from(raw)));
        }
        let kind = PacketType::from_byte(first).ok_or(DecodeError::UnknownType(first))?;
        let data = text.slice(1..);
        Ok(match kind {
            PacketType::Open => Packet::Open(data),
            PacketType::Close => Packet::Close,
            PacketType::Ping => Packet::Ping(data),
            PacketType::Pong => Packet::Pong(data),
            PacketType::Message => Packet::Message(data),
            PacketType::Upgrade => Packet::Upgrade,
            PacketType::Noop => Packet::Noop,
        })
    }

    /// The packet type; binary messages are [`PacketType::Message`].
    pub fn packet_type(&self) -> PacketType {
        match self {
            Packet::Open(_) => PacketType::Open,
            Packet::Close => PacketType::Close,
            Packet::Ping(_) => PacketType::Ping,
            Packet::Pong(_) => PacketType::Pong,
            Packet::Message(_) | Packet::Binary(_) => PacketType::Message,
            Packet::Upgrade => PacketType::Upgrade,
            Packet::Noop => PacketType::Noop,
        }
    }

    /// Encodes a text packet as it goes into a WebSocket text frame (type digit followed
    /// by data). Returns `None` for [`Packet::Binary`], which travels as a binary frame.
    pub fn encode_text(&self) -> Option<Bytes> {
        let data: &[u8] = match self {
            Packet::Open(d) | Packet::Ping(d) | Packet::Pong(d) | Packet::Message(d) => d,
            Packet::Binary(_) => return None,
            _ => &[],
        };
        let mut buf = BytesMut::with_capacity(1 + data.len());
        buf.put_u8(self.packet_type() as u8);
        buf.put_slice(data);
        Some(buf.freeze())
    }
}

/// Appends a binary message to a polling payload as `b` + base64.
pub(crate) fn encode_binary_for_polling(data: &[u8], out: &mut Vec<u8>) {
    out.push(b'b');
    let start = out.len();
    let needed = base64::encoded_len(data.len(), true).unwrap_or(0);
    out.resize(start + needed, 0);
    let written = base64::engine::general_purpose::STANDARD
        .encode_slice(data, &mut out[start..])
        .unwrap_or(0);
    out.truncate(start + written);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_every_packet_type() {
        let cases: &[(&str, Packet)] = &[
            ("0{}", Packet::Open(Bytes::from_static(b"{}"))),
            ("1", Packet::Close),
            ("2probe", Packet::Ping(Bytes::from_static(b"probe"))),
            ("3", Packet::Pong(Bytes::new())),
            ("4héllo", Packet::Message(Bytes::from("héllo"))),
            ("5", Packet::Upgrade),
            ("6", Packet::Noop),
            ("bAQID", Packet::Binary(Bytes::from_static(&[1, 2, 3]))),
        ];
        for (text, expected) in cases {
            assert_eq!(&Packet::decode_text(Bytes::from(*text)).unwrap(), expected);
        }
    }

    #[test]
    fn rejects_bad_packets() {
        assert_eq!(Packet::decode_text(Bytes::new()), Err(DecodeError::Empty));
        assert_eq!(
            Packet::decode_text(Bytes::from_static(b"7")),
            Err(DecodeError::UnknownType(b'7'))
        );
        assert_eq!(
            Packet::decode_text(Bytes::from_static(b"b!!")),
            Err(DecodeError::InvalidBase64)
        );
        assert_eq!(
            Packet::decode_text(Bytes::from_static(&[b'4', 0xff])),
            Err(DecodeError::InvalidUtf8)
        );
    }

    #[test]
    fn encodes_text_packets_and_round_trips() {
        for p in [
            Packet::Ping(Bytes::new()),
            Packet::Pong(Bytes::from_static(b"probe")),
            Packet::Message(Bytes::from_static(b"hi")),
            Packet::Noop,
            Packet::Close,
        ] {
            let encoded = p.encode_text().unwrap();
            assert_eq!(Packet::decode_text(encoded).unwrap(), p);
        }
        assert_eq!(Packet::Binary(Bytes::new()).encode_text(), None);
    }
}
