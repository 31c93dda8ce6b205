//! Long-polling payloads: several packets in one HTTP body, separated by `\x1e`, with
//! binary messages as `b` + base64.

use bytes::Bytes;

use super::packet::{DecodeError, Packet, encode_binary_for_polling};

/// The record separator between packets of a polling payload.
pub const SEPARATOR: u8 = 0x1e;

/// One already-encoded packet waiting to be written to a client.
///
/// Broadcasts encode a packet once into `Bytes` and share the same frame with every
/// recipient; only the polling transport turns a binary frame into base64 at flush time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A text packet, type digit included (`42["ev"]`, `2`, `6`…). Valid UTF-8.
    Text(Bytes),
    /// A binary message (raw bytes, no type prefix).
    Binary(Bytes),
}

impl Frame {
    /// Bytes this frame occupies in memory, for queue accounting.
    pub fn len(&self) -> usize {
        match self {
            Frame::Text(b) | Frame::Binary(b) => b.len(),
        }
    }

    /// Whether the frame carries no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Decodes a polling request body into packets.
pub fn decode(body: Bytes) -> Result<Vec<Packet>, DecodeError> {
    let mut packets = Vec::new();
    let mut start = 0;
    for (i, b) in body.iter().enumerate() {
        if *b == SEPARATOR {
            packets.push(Packet::decode_text(body.slice(start..i))?);
            start = i + 1;
        }
    }
    packets.push(Packet::decode_text(body.slice(start..))?);
    Ok(packets)
}

/// Encodes frames into one polling response body.
pub fn encode<'a>(frames: impl IntoIterator<Item = &'a Frame>) -> Bytes {
    let mut out = Vec::new();
    for (i, frame) in frames.into_iter().enumerate() {
        if i > 0 {
            out.push(SEPARATOR);
        }
        match frame {
            Frame::Text(t) => out.extend_from_slice(t),
            Frame::Binary(b) => encode_binary_for_polling(b, &mut out),
        }
    }
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_mixed_payload() {
        let body = Bytes::from_static(b"4hello\x1ebAQIDBA==\x1e2");
        assert_eq!(
            decode(body).unwrap(),
            vec![
                Packet::Message(Bytes::from_static(b"hello")),
                Packet::Binary(Bytes::from_static(&[1, 2, 3, 4])),
                Packet::Ping(Bytes::new()),
            ]
        );
    }

    #[test]
    fn empty_element_is_an_error() {
        assert_eq!(
            decode(Bytes::from_static(b"4a\x1e")),
            Err(DecodeError::Empty)
        );
    }

    #[test]
    fn encodes_text_and_binary() {
        let frames = [
            Frame::Text(Bytes::from_static(b"4hello")),
            Frame::Binary(Bytes::from_static(&[1, 2, 3, 4])),
        ];
        assert_eq!(&encode(&frames)[..], b"4hello\x1ebAQIDBA==");
    }
}
