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

/// Decodes a polling request body into packets, all at once (tests and tools; the
/// server reads bodies with [`packets`]).
pub fn decode(body: Bytes) -> Result<Vec<Packet>, DecodeError> {
    packets(body).collect()
}

/// The packets of a polling request body, decoded one at a time.
///
/// A body of up to `maxPayload` bytes can hold hundreds of thousands of one-byte
/// packets; decoding them lazily lets the caller act on each (and stop at the first it
/// refuses) without ever holding them all. After an element that does not decode, the
/// iterator yields that error and then ends.
pub fn packets(body: Bytes) -> Packets {
    Packets {
        body,
        start: 0,
        done: false,
    }
}

/// Iterator returned by [`packets`].
#[derive(Debug, Clone)]
pub struct Packets {
    body: Bytes,
    start: usize,
    done: bool,
}

impl Iterator for Packets {
    type Item = Result<Packet, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let rest = &self.body[self.start..];
        let end = match rest.iter().position(|b| *b == SEPARATOR) {
            Some(len) => self.start + len,
            None => {
                self.done = true;
                self.body.len()
            }
        };
        let element = self.body.slice(self.start..end);
        self.start = end + 1;
        let packet = Packet::decode_text(element);
        if packet.is_err() {
            self.done = true;
        }
        Some(packet)
    }
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
    fn packets_are_decoded_one_at_a_time_and_stop_at_an_error() {
        let mut it = packets(Bytes::from_static(b"4a\x1e\x1e4b"));
        assert_eq!(
            it.next(),
            Some(Ok(Packet::Message(Bytes::from_static(b"a"))))
        );
        assert_eq!(it.next(), Some(Err(DecodeError::Empty)));
        assert_eq!(it.next(), None);
        let all: Vec<_> = packets(Bytes::from_static(b"2\x1e2\x1e2")).collect();
        assert_eq!(all.len(), 3);
        assert_eq!(packets(Bytes::new()).count(), 1, "one empty element");
    }

    #[test]
    fn encodes_text_and_binary() {
        let frames = [FrameRef::Text(b"4hello"), FrameRef::Binary(&[1, 2, 3, 4])];
        assert_eq!(&encode(frames)[..], b"4hello\x1ebAQIDBA==");
    }
}
