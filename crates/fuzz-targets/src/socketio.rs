//! The Socket.IO decoder of one connection, fed a sequence of messages, so the
//! reassembly of binary attachments is driven through every order of text and binary
//! frames.

use bytes::Bytes;
use serde_json::Value;
use switchboard_protocol::socketio::{DecodeError, Decoder, Packet};

use crate::support::json_close;

/// Separates the messages of one fuzz input (a byte that never occurs in UTF-8).
const MESSAGE_SEPARATOR: u8 = 0xff;
/// Starts a binary message (an attachment); any other message is a text frame.
const BINARY_MARK: u8 = 0x00;

/// Splits the input on `0xff` into messages: `0x00` + bytes is a binary message, any
/// other is a text message (invalid UTF-8 replaced, as only valid text frames reach the
/// decoder). Checks the decoder's state machine after each message, and that every
/// packet it completes re-encodes into messages that decode to an equal packet. After
/// an error (which closes a real connection) decoding starts again on a new decoder.
pub fn socketio_decoder(data: &[u8]) {
    let mut decoder = Decoder::default();
    for message in data.split(|b| *b == MESSAGE_SEPARATOR) {
        let was_reconstructing = decoder.is_reconstructing();
        // The length of the text the decoder read (invalid UTF-8 replaced, each byte
        // by three), for `check_growth`.
        let mut text_len = 0;
        let outcome = match message.split_first() {
            Some((&BINARY_MARK, attachment)) => {
                let outcome = decoder.decode_binary(Bytes::copy_from_slice(attachment));
                assert_eq!(
                    outcome == Err(DecodeError::UnexpectedBinary),
                    !was_reconstructing
                );
                outcome
            }
            _ => {
                let text = String::from_utf8_lossy(message);
                text_len = text.len();
                let outcome = decoder.decode_text(&text);
                assert_eq!(
                    outcome == Err(DecodeError::UnexpectedText),
                    was_reconstructing
                );
                outcome
            }
        };
        match outcome {
            Ok(Some(packet)) => {
                assert!(!decoder.is_reconstructing());
                check_packet(&packet);
                if !was_reconstructing {
                    check_growth(text_len, &packet);
                }
            }
            Ok(None) => assert!(decoder.is_reconstructing()),
            Err(_) => decoder = Decoder::default(),
        }
    }
}

/// A packet read from one text message of `len` bytes is written back at most 1.5
/// times as long (`switchboard_protocol::json`: a float grows by at most 2 bytes and
/// takes at least 4 with its separator), plus a few bytes for what the text may leave
/// out (`2/,` for `2`): every event passed on is written again, and must not grow past
/// the receivers' queues.
fn check_growth(len: usize, packet: &Packet) {
    let written = packet.encode_to_string().len();
    assert!(
        written <= len * 3 / 2 + 8,
        "{len} bytes read, {written} written: {}",
        packet.encode_to_string()
    );
}

/// What holds for every complete packet: attachments exactly when the type is binary,
/// every placeholder of a binary packet pointing at one (in a plain packet a
/// lookalike is just data, as in Node), and a re-encoding that decodes equal.
fn check_packet(packet: &Packet) {
    assert_eq!(packet.kind.is_binary(), !packet.attachments.is_empty());
    assert_eq!(packet.wire_type(), packet.kind);
    assert!(packet.nsp.starts_with('/') && !packet.nsp.contains(','));
    if let (true, Some(data)) = (packet.kind.is_binary(), &packet.data) {
        check_placeholders(packet, data);
    }
    let mut decoder = Decoder::default();
    let mut outcome = decoder.decode_text(&packet.encode_to_string());
    for attachment in &packet.attachments {
        assert_eq!(outcome, Ok(None), "waits for its attachments");
        outcome = decoder.decode_binary(attachment.clone());
    }
    let again = outcome
        .expect("a decoded packet re-encodes validly")
        .expect("complete after its attachments");
    assert!(
        again.kind == packet.kind
            && again.nsp == packet.nsp
            && again.id == packet.id
            && again.attachments == packet.attachments
            && match (&again.data, &packet.data) {
                (Some(a), Some(b)) => json_close(a, b),
                (a, b) => a == b,
            },
        "{packet:?} re-decoded as {again:?}"
    );
}

/// Every placeholder of a binary packet resolves to one of its attachments.
fn check_placeholders(packet: &Packet, value: &Value) {
    match value {
        Value::Array(items) => items.iter().for_each(|v| check_placeholders(packet, v)),
        Value::Object(map) => {
            if map.get("_placeholder") == Some(&Value::Bool(true)) {
                assert!(
                    packet.attachment(value).is_some(),
                    "dangling placeholder {value}"
                );
            } else {
                map.values().for_each(|v| check_placeholders(packet, v));
            }
        }
        _ => {}
    }
}
