//! When a relayed upgrade is done: the relaying node copies bytes it does not read,
//! except at the start, where it follows the client's WebSocket frames until the
//! Engine.IO `upgrade` packet (`5`) goes by.
//!
//! Why it must know: once the owner answered `2probe` with `3probe`, the official
//! client pauses polling (it sends no GET or POST any more) and waits to send `5` on
//! the new WebSocket. Cut then, the WebSocket only counts as a failed probe: the client
//! stays paused, hearing nothing, until its ping timeout (`pingInterval +
//! pingTimeout`, 45 s by default). Cut after `5`, it is the client's transport, and its
//! close makes the client reconnect at once. So the drain of a relaying node waits for
//! the upgrades it relays to get past `5` before its shutdown ends them.
//!
//! What it reads (RFC 6455 §5.2): frame headers, at most 14 bytes each, and the one
//! payload byte of a final, unfragmented, uncompressed text frame of length 1. Every
//! other payload is skipped without being buffered, whatever length a header claims;
//! the watch keeps a few bytes of state and allocates nothing.
//!
//! The bytes are the client's, so the watch is fuzzed (the `relay_watch` target,
//! [`fuzz`]): against tungstenite's reading of the same frames, and cut into reads
//! every way.

use crate::eio::ws_frame::{Header, HeaderBytes, fuzz_reads};

/// Follows the bytes a client sends on a relayed WebSocket until its `upgrade`
/// packet has gone by.
#[derive(Debug, Clone)]
pub(crate) struct UpgradeWatch {
    state: State,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading a frame header.
    Header(HeaderBytes),
    /// Skipping what is left of a payload that is not the `upgrade` packet.
    Skip { left: u64 },
    /// The one payload byte of a text frame of length 1, masked with `mask`.
    OneByte { mask: u8 },
    /// The `upgrade` packet went by.
    Upgraded,
}

impl Default for UpgradeWatch {
    fn default() -> Self {
        Self {
            state: State::Header(HeaderBytes::default()),
        }
    }
}

impl UpgradeWatch {
    /// Follows `bytes`, the next the client sent. Returns whether the `upgrade`
    /// packet has gone by, in them or before.
    pub(crate) fn feed(&mut self, mut bytes: &[u8]) -> bool {
        while let Some((&byte, rest)) = bytes.split_first() {
            match &mut self.state {
                State::Upgraded => break,
                State::Header(header) => {
                    bytes = rest;
                    if let Some(header) = header.push(byte) {
                        self.state = after_header(&header);
                    }
                }
                State::Skip { left } => {
                    let n = usize::try_from(*left).map_or(bytes.len(), |l| l.min(bytes.len()));
                    // `n` ≤ `left`: the payload's rest, or all of `bytes`.
                    *left -= n as u64;
                    bytes = &bytes[n..];
                    if *left == 0 {
                        self.state = State::Header(HeaderBytes::default());
                    }
                }
                State::OneByte { mask } => {
                    self.state = if byte ^ *mask == b'5' {
                        State::Upgraded
                    } else {
                        State::Header(HeaderBytes::default())
                    };
                    bytes = rest;
                }
            }
        }
        self.state == State::Upgraded
    }
}

/// What follows a complete `header`.
fn after_header(header: &Header) -> State {
    match header.len {
        0 => State::Header(HeaderBytes::default()),
        1 if header.fin && header.rsv == 0 && header.opcode == 0x1 => State::OneByte {
            mask: header.mask[0],
        },
        left => State::Skip { left },
    }
}

/// The `relay_watch` fuzz target's body (through [`crate::fuzz_relay_watch`]): the
/// first bytes of `data` say how the rest is cut into reads ([`fuzz_reads`]),
/// the rest is what a client sent. Asserts, beyond "no panic":
/// - the answer after each read is the answer for every byte up to its end, fed one at
///   a time (how the bytes arrive in reads never changes what the watch sees), and once
///   yes it stays yes;
/// - the watch says yes exactly at the end of the first final, uncompressed text frame
///   whose payload is `5`, as tungstenite's own frame header parser reads the bytes;
///   after a frame tungstenite refuses (a reserved opcode) nothing is compared but the
///   above.
pub(crate) fn fuzz(data: &[u8]) {
    let (sent, reads) = fuzz_reads(data);
    // Byte by byte: after which byte (if any) the watch says yes.
    let mut watch = UpgradeWatch::default();
    let mut yes_after = None;
    for (at, byte) in sent.iter().enumerate() {
        let yes = watch.feed(std::slice::from_ref(byte));
        match yes_after {
            None if yes => yes_after = Some(at + 1),
            Some(_) => assert!(yes, "once upgraded it stays so"),
            None => {}
        }
    }
    // In the reads the input chose.
    let mut watch = UpgradeWatch::default();
    for (start, end) in reads {
        let yes = watch.feed(&sent[start..end]);
        assert_eq!(
            yes,
            yes_after.is_some_and(|after| after <= end),
            "the read ending at {end} answered otherwise than byte by byte"
        );
    }
    match reference_upgrade_end(sent) {
        Reference::At(after) => assert_eq!(yes_after, Some(after)),
        Reference::Never => assert_eq!(yes_after, None),
        Reference::Unknown { from } => assert!(yes_after.is_none_or(|after| after > from)),
    }
}

/// Where tungstenite's reading of `sent` puts the end of the `upgrade` packet.
enum Reference {
    /// After this many bytes.
    At(usize),
    /// Not in `sent`.
    Never,
    /// Not before `from`, where tungstenite refused a frame header.
    Unknown { from: usize },
}

fn reference_upgrade_end(sent: &[u8]) -> Reference {
    use std::io::Cursor;
    use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

    let mut cursor = Cursor::new(sent);
    loop {
        let from = cursor.position() as usize;
        let (header, len) = match FrameHeader::parse(&mut cursor) {
            Ok(Some(parsed)) => parsed,
            Ok(None) => return Reference::Never,
            Err(_) => return Reference::Unknown { from },
        };
        let payload_at = cursor.position();
        let Some(payload_end) = payload_at.checked_add(len) else {
            return Reference::Never;
        };
        if payload_end > sent.len() as u64 {
            return Reference::Never;
        }
        let is_upgrade = header.is_final
            && !(header.rsv1 || header.rsv2 || header.rsv3)
            && header.opcode == OpCode::Data(Data::Text)
            && len == 1
            && sent[payload_at as usize] ^ header.mask.map_or(0, |m| m[0]) == b'5';
        if is_upgrade {
            return Reference::At(payload_end as usize);
        }
        cursor.set_position(payload_end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

    /// A data frame as a client sends it (masked), encoded by tungstenite.
    fn client_frame(opcode: OpCode, payload: &[u8], fin: bool) -> Vec<u8> {
        masked(Frame::message(payload.to_vec(), opcode, fin))
    }

    fn masked(mut frame: Frame) -> Vec<u8> {
        frame.header_mut().mask = Some([0x37, 0xfa, 0x21, 0x3d]);
        let mut out = Vec::new();
        frame.format(&mut out).unwrap();
        out
    }

    fn text(payload: &str) -> Vec<u8> {
        client_frame(OpCode::Data(Data::Text), payload.as_bytes(), true)
    }

    /// The watch's answer after each chunk.
    fn answers(chunks: &[&[u8]]) -> Vec<bool> {
        let mut watch = UpgradeWatch::default();
        chunks.iter().map(|c| watch.feed(c)).collect()
    }

    #[test]
    fn the_upgrade_packet_after_the_probe_completes_the_upgrade() {
        let (probe, upgrade) = (text("2probe"), text("5"));
        assert_eq!(answers(&[&probe, &upgrade]), [false, true]);
        // Both in one read, and whatever follows them.
        let all = [probe.clone(), upgrade.clone(), text("42[\"a\"]")].concat();
        assert_eq!(answers(&[&all]), [true]);
        // Once upgraded, it stays so.
        assert_eq!(answers(&[&all, &text("2probe")]), [true, true]);
    }

    #[test]
    fn byte_by_byte_gives_the_same_answer() {
        let all = [text("2probe"), text("5")].concat();
        let bytes: Vec<&[u8]> = all.chunks(1).collect();
        let got = answers(&bytes);
        assert_eq!(got.iter().filter(|&&done| done).count(), 1);
        assert_eq!(got.last(), Some(&true));
    }

    #[test]
    fn only_a_final_text_frame_of_exactly_5_is_the_upgrade_packet() {
        for not_it in [
            text("52"),
            text("4"),
            text(""),
            client_frame(OpCode::Data(Data::Binary), b"5", true),
            client_frame(OpCode::Data(Data::Text), b"5", false),
            masked(Frame::ping(b"5".to_vec())),
        ] {
            assert_eq!(answers(&[&not_it]), [false], "{not_it:?}");
            // And the frame after it is read from its own first byte.
            assert_eq!(answers(&[&[not_it, text("5")].concat()]), [true]);
        }
        // Compressed (RSV1): not a literal `5`.
        let mut compressed = text("5");
        compressed[0] |= 0x40;
        assert_eq!(answers(&[&compressed]), [false]);
    }

    #[test]
    fn long_payloads_are_skipped_not_buffered() {
        // 16-bit and 64-bit extended lengths, payloads full of `5`.
        let medium = text(&"5".repeat(300));
        let long = text(&"5".repeat(70_000));
        let all = [medium, long, text("5")].concat();
        assert_eq!(answers(&[&all]), [true]);
        assert_eq!(
            answers(&all.chunks(4096).collect::<Vec<_>>()).last(),
            Some(&true)
        );
        // A header claiming an enormous payload: everything after it is that payload.
        let mut huge = vec![0x81, 0x80 | 127];
        huge.extend_from_slice(&u64::MAX.to_be_bytes());
        huge.extend_from_slice(&[0, 0, 0, 0]);
        let mut watch = UpgradeWatch::default();
        assert!(!watch.feed(&huge));
        assert!(!watch.feed(&text("5")));
    }

    #[test]
    fn an_unmasked_frame_is_read_too() {
        let mut frame = Frame::message(b"5".to_vec(), OpCode::Data(Data::Text), true);
        frame.header_mut().mask = None;
        let mut out = Vec::new();
        frame.format(&mut out).unwrap();
        assert_eq!(answers(&[&out]), [true]);
    }
}
