//! Long-polling payloads: several packets in one HTTP body, separated by `\x1e`, with
//! binary messages as `b` + base64.

use bytes::Bytes;

use super::packet::{DecodeError, Packet, encode_binary_for_polling};

/// The record separator between packets of a polling payload.
pub const SEPARATOR: u8 = 0x1e;

/// A borrowed, already-encoded packet, as a polling response is assembled from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameRef<'a> {
    /// A text packet, type digit included (`42["ev"]`, `2`, `6`…). Valid UTF-8.
    Text(&'a [u8]),
    /// A binary message (raw bytes, no type prefix), sent as `b` + base64.
    Binary(&'a [u8]),
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
pub fn encode<'a>(frames: impl IntoIterator<Item = FrameRef<'a>>) -> Bytes {
    let mut out = Vec::new();
    for (i, frame) in frames.into_iter().enumerate() {
        if i > 0 {
            out.push(SEPARATOR);
        }
        match frame {
            FrameRef::Text(t) => out.extend_from_slice(t),
            FrameRef::Binary(b) => encode_binary_for_polling(b, &mut out),
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
        let frames = [FrameRef::Text(b"4hello"), FrameRef::Binary(&[1, 2, 3, 4])];
        assert_eq!(&encode(frames)[..], b"4hello\x1ebAQIDBA==");
    }
}
