//! Engine.IO: one packet (a WebSocket text frame), a long-polling body, and the
//! handshake's query string with the request classification built on it.

use bytes::Bytes;
use switchboard_protocol::Sid;
use switchboard_protocol::engineio::handshake::{Method, Query, RequestKind, classify};
use switchboard_protocol::engineio::payload::{self, FrameRef};
use switchboard_protocol::engineio::{DecodeError, EngineErrorCode, Packet, TransportKind};
use switchboard_protocol::sid::{MAX_TAG_LEN, owner_tag};

use crate::support::select;

/// `Packet::decode_text`: an accepted packet re-encodes to one that decodes equal; data
/// packets re-encode to the very input; errors match the input.
pub fn engineio_packet(data: &[u8]) {
    match Packet::decode_text(Bytes::copy_from_slice(data)) {
        Ok(packet @ Packet::Binary(_)) => {
            assert_eq!(data.first(), Some(&b'b'));
            assert_eq!(reencode(std::slice::from_ref(&packet)), [packet]);
        }
        Ok(packet) => {
            let text = packet.encode_text().expect("text packets encode as text");
            if matches!(
                packet,
                Packet::Open(_) | Packet::Ping(_) | Packet::Pong(_) | Packet::Message(_)
            ) {
                assert_eq!(&text[..], data, "data packets keep every byte");
            }
            assert_eq!(Packet::decode_text(text), Ok(packet));
        }
        Err(DecodeError::Empty) => assert!(data.is_empty()),
        Err(DecodeError::InvalidUtf8) => assert!(std::str::from_utf8(data).is_err()),
        Err(DecodeError::UnknownType(b)) => assert_eq!(data.first(), Some(&b)),
        Err(DecodeError::InvalidBase64) => assert_eq!(data.first(), Some(&b'b')),
    }
}

/// `payload::decode`: one packet per `\x1e`-separated element, and the packets encode
/// into a body that decodes to the same packets.
pub fn engineio_payload(data: &[u8]) {
    let Ok(packets) = payload::decode(Bytes::copy_from_slice(data)) else {
        return;
    };
    let separators = data.iter().filter(|b| **b == payload::SEPARATOR).count();
    assert_eq!(packets.len(), separators + 1);
    assert_eq!(reencode(&packets), packets);
}

/// Encodes `packets` into one polling body and decodes it back.
fn reencode(packets: &[Packet]) -> Vec<Packet> {
    let texts: Vec<Option<Bytes>> = packets.iter().map(Packet::encode_text).collect();
    let frames = packets
        .iter()
        .zip(&texts)
        .map(|(packet, text)| match (packet, text) {
            (Packet::Binary(data), _) => FrameRef::Binary(data),
            (_, Some(text)) => FrameRef::Text(text),
            (_, None) => unreachable!("only binary packets lack a text encoding"),
        });
    payload::decode(payload::encode(frames)).expect("an encoded body decodes")
}

/// `Query::parse` and `classify`. The first byte picks the method, whether the request
/// is a WebSocket upgrade and which transports are enabled; the rest is the query.
/// The parsed query survives being written out and parsed again, and the
/// classification agrees with the query it was made from.
pub fn engineio_handshake(data: &[u8]) {
    let (flags, rest) = select(data);
    let Ok(raw) = std::str::from_utf8(rest) else {
        return;
    };
    let method = [Method::Get, Method::Post, Method::Other, Method::Get][usize::from(flags & 3)];
    let is_websocket = flags & 4 != 0;
    let enabled: &[TransportKind] = match (flags >> 3) & 3 {
        0 => &[TransportKind::Polling, TransportKind::Websocket],
        1 => &[TransportKind::Polling],
        2 => &[TransportKind::Websocket],
        _ => &[],
    };
    let query = Query::parse(raw);
    for value in [query.eio, query.transport, query.sid]
        .into_iter()
        .flatten()
    {
        assert!(!value.contains('&') && raw.contains(value));
    }
    let rewritten = rewrite(&query);
    assert_eq!(Query::parse(&rewritten), query, "{rewritten}");
    if let Some(Ok(sid)) = query.sid.map(str::parse::<Sid>) {
        assert_eq!(Some(sid.as_str()), query.sid);
        for len in 1..=MAX_TAG_LEN {
            assert_eq!(owner_tag(sid.as_str(), len), Some(&sid.as_str()[..len]));
        }
    }
    let transport = query
        .transport
        .filter(|t| enabled.iter().any(|e| e.as_str() == *t));
    match classify(method, &query, is_websocket, enabled) {
        Ok(RequestKind::Handshake(kind)) => {
            assert_eq!(transport, Some(kind.as_str()));
            assert_eq!(
                (method, query.sid, query.eio),
                (Method::Get, None, Some("4"))
            );
            assert!(kind == TransportKind::Polling || is_websocket);
        }
        Ok(RequestKind::Polling { sid, read }) => {
            assert_eq!(transport, Some("polling"));
            assert_eq!(query.sid, Some(sid.as_str()));
            assert!(!is_websocket);
            assert_eq!(read, method == Method::Get);
        }
        Ok(RequestKind::Upgrade(sid)) => {
            assert_eq!(transport, Some("websocket"));
            assert_eq!(query.sid, Some(sid.as_str()));
            assert!(is_websocket && method == Method::Get);
        }
        Err(code) => {
            assert_eq!(
                code == EngineErrorCode::UnknownTransport,
                transport.is_none()
            );
            let body: serde_json::Value =
                serde_json::from_str(&code.json_body()).expect("error bodies are JSON");
            assert_eq!(body["code"], code as u8);
        }
    }
}

/// The query with only the three parameters Engine.IO reads.
fn rewrite(query: &Query<'_>) -> String {
    [
        ("EIO", query.eio),
        ("transport", query.transport),
        ("sid", query.sid),
    ]
    .into_iter()
    .filter_map(|(k, v)| Some(format!("{k}={}", v?)))
    .collect::<Vec<_>>()
    .join("&")
}
