//! What other nodes (Switchboard or Node.js) publish through Redis: MessagePack values,
//! the classic adapter's broadcasts, requests, responses and channel names, the streams
//! adapter's entries and pub/sub payloads, and the stored recovery sessions.
//!
//! The codecs normalize as Node does (integral floats become integers, map keys are put
//! in JavaScript property order…), so a decoded message is not always equal to what a
//! re-encoding decodes to. What must hold is that re-encoding is stable: the bytes of a
//! decoded message, decoded and encoded again, are the same bytes (up to a float's last
//! bits when JSON is involved; see `support`).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use switchboard_protocol::cluster::msgpack::{self as codec, MsgValue};
use switchboard_protocol::cluster::redis_adapter::{
    BroadcastMessage, ChannelKind, ChannelTarget, Channels, DEFAULT_KEY, RawResponse, Request,
    RequestBody, RequestType, parse_channel,
};
use switchboard_protocol::cluster::resp::{self, Frame, Item, Push};
use switchboard_protocol::cluster::streams::{
    ClusterMessage, MessageBody, PersistedSession, StreamId,
};

use crate::support::{assert_same_wire, has_placeholder_lookalike, msg_close, select};

/// `msgpack::decode`. For both encoders, a decoded value encodes to bytes that decode
/// and encode to the same bytes; `@msgpack/msgpack`'s encoding (which never wraps
/// numbers) also keeps the value. The JSON form of a value reads back to itself.
pub fn msgpack(data: &[u8]) {
    let Ok(value) = codec::decode(data) else {
        return;
    };
    for (name, encode) in [
        ("msgpack", codec::encode_msgpack as fn(&MsgValue) -> Vec<u8>),
        ("notepack", codec::encode_notepack),
    ] {
        let first = encode(&value);
        let again = codec::decode(&first).expect("an encoded value decodes");
        if name == "msgpack" {
            assert!(msg_close(&value, &again), "{value:?} became {again:?}");
        }
        // notepack keeps the low 64 bits of huge integral floats under an `int 64`
        // marker, which reads back as a small integer with a shorter encoding: stable
        // from the second encoding on.
        let second = encode(&again);
        let third = codec::decode(&second).expect("an encoded value decodes");
        assert!(
            msg_close(&third, &again),
            "{name}: {again:?} became {third:?}"
        );
        assert_eq!(encode(&third), second, "{name}: encoding is not stable");
    }
    // Placeholders read with no attachments stay objects, so the JSON is unchanged.
    let (json, attachments) = codec::to_json(value);
    let (again, none) = codec::to_json(codec::from_json(&json, &[]));
    assert!(none.is_empty() && again == json, "{json} became {again}");
    assert!(attachments.len() <= data.len());
}

/// The classic Redis adapter; the first byte picks the decoder: broadcast message,
/// request, response (typed as the answer to every request type) or channel name.
pub fn redis_adapter(data: &[u8]) {
    let (which, rest) = select(data);
    match which % 4 {
        0 => broadcast_message(rest),
        1 => request(rest),
        2 => response(rest),
        _ => channel(rest),
    }
}

fn broadcast_message(data: &[u8]) {
    let Ok(message) = BroadcastMessage::decode(data) else {
        return;
    };
    let first = message.encode();
    let again = BroadcastMessage::decode(&first).expect("an encoded broadcast decodes");
    assert_eq!((&again.uid, &again.opts), (&message.uid, &message.opts));
    if !packet_lookalike(message.packet.data.as_ref()) {
        assert_same_wire(&first, &again.encode(), "broadcast");
    }
}

fn request(data: &[u8]) {
    let Ok(request) = Request::decode(data) else {
        return;
    };
    let first = request.encode();
    let again = Request::decode(&first).expect("an encoded request decodes");
    assert_eq!(again.uid, request.uid);
    assert_eq!(again.body.request_type(), request.body.request_type());
    assert_eq!(again.body.request_id(), request.body.request_id());
    let lookalike = match &request.body {
        RequestBody::Broadcast { packet, .. } => packet_lookalike(packet.data.as_ref()),
        _ => false,
    };
    if !lookalike {
        assert_same_wire(&first, &again.encode(), "request");
    }
}

fn response(data: &[u8]) {
    // A node skips a response whose peeked id is not one of its requests: the id
    // peeked, when there is one, must be the decoded one.
    let peeked = RawResponse::peek_request_id(data);
    let Ok(raw) = RawResponse::decode(data) else {
        return;
    };
    if let Some(id) = &peeked {
        assert_eq!(raw.request_id(), Some(id.as_str()), "peeked {id}");
    }
    for code in 0..=9 {
        let kind = RequestType::from_code(code).expect("codes 0 to 9 are request types");
        let Ok(response) = raw.clone().into_response(kind) else {
            continue;
        };
        assert_eq!(raw.request_id(), Some(response.request_id()));
        let first = response.encode();
        let again = RawResponse::decode(&first).expect("an encoded response decodes");
        assert_eq!(again.request_id(), Some(response.request_id()));
        let again = again
            .into_response(kind)
            .expect("an encoded response reads as the same type");
        assert_same_wire(&first, &again.encode(), "response");
    }
}

/// `parse_channel`: `<key>\0<channel>` (the default key when there is no `\0`). What a
/// channel is parsed as, the channel names of that namespace reproduce.
fn channel(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (key, channel) = text.split_once('\0').unwrap_or((DEFAULT_KEY, &text));
    match parse_channel(key, channel) {
        Some(ChannelKind::Broadcast { nsp, target }) => {
            let names = Channels::new(key, nsp);
            assert!(!nsp.contains('#'));
            assert_eq!(names.parse_broadcast(channel), Some(target));
            // The room is what lies between the namespace's channel and the last character.
            let tail = channel
                .strip_prefix(names.broadcast())
                .map(|rest| match target {
                    ChannelTarget::Room(room) => rest.strip_prefix(room).map(|t| t.chars().count()),
                    ChannelTarget::All => Some(rest.chars().count()),
                });
            assert!(
                matches!(tail, Some(Some(0 | 1))),
                "{channel:?} as {target:?}"
            );
        }
        Some(ChannelKind::Request { nsp }) => {
            assert_eq!(Channels::new(key, nsp).request(), channel);
        }
        Some(ChannelKind::Response { nsp }) => {
            assert!(!nsp.contains('#'));
            assert!(channel.starts_with(Channels::new(key, nsp).response()));
        }
        None => {}
    }
}

/// The streams adapter; the first byte picks the decoder: a stream entry (the rest
/// split on `\0` into field, value, field, value…) or a pub/sub payload.
pub fn streams(data: &[u8]) {
    let (which, rest) = select(data);
    if which % 2 == 0 {
        stream_entry(rest);
    } else {
        pubsub_message(rest);
    }
}

fn stream_entry(data: &[u8]) {
    let parts: Vec<&[u8]> = data.split(|b| *b == 0).collect();
    let fields = parts.chunks_exact(2).map(|pair| (pair[0], pair[1]));
    let Ok(message) = ClusterMessage::from_stream_fields(fields) else {
        return;
    };
    assert!(!message.nsp.is_empty());
    let first = message.to_stream_fields();
    let again = ClusterMessage::from_stream_fields(first.iter().map(|(k, v)| (*k, v.as_str())))
        .expect("encoded stream fields decode");
    assert_eq!((&again.uid, &again.nsp), (&message.uid, &message.nsp));
    assert_eq!(again.body.message_type(), message.body.message_type());
    if body_lookalike(&message.body) {
        return;
    }
    let second = again.to_stream_fields();
    assert_eq!(first.len(), second.len());
    for ((key, a), (other, b)) in first.iter().zip(&second) {
        assert_eq!(key, other);
        match *key {
            "data" => assert_same_wire(&entry_data(a), &entry_data(b), "stream entry data"),
            _ => assert_eq!(a, b),
        }
    }
}

/// A stream entry's `data`: JSON, or base64 MessagePack.
fn entry_data(text: &str) -> Vec<u8> {
    if text.starts_with('{') {
        text.as_bytes().to_vec()
    } else {
        STANDARD.decode(text).expect("our base64 decodes")
    }
}

fn pubsub_message(data: &[u8]) {
    let Ok(message) = ClusterMessage::decode_pubsub(data) else {
        return;
    };
    let first = message.encode_pubsub();
    let again = ClusterMessage::decode_pubsub(&first).expect("an encoded message decodes");
    assert_eq!((&again.uid, &again.nsp), (&message.uid, &message.nsp));
    if !body_lookalike(&message.body) {
        assert_same_wire(&first, &again.encode_pubsub(), "pub/sub message");
    }
}

/// The sharded adapter's payload (`createShardedAdapter`): JSON when it starts with
/// `{`, MessagePack otherwise. What decodes encodes, and decodes again to the same
/// message; a re-encoding is stable.
pub fn sharded(data: &[u8]) {
    let Ok(message) = ClusterMessage::decode_sharded(data) else {
        return;
    };
    let first = message.encode_sharded();
    let again = ClusterMessage::decode_sharded(&first).expect("an encoded message decodes");
    assert_eq!((&again.uid, &again.nsp), (&message.uid, &message.nsp));
    assert_eq!(again.body.message_type(), message.body.message_type());
    if !body_lookalike(&message.body) {
        assert_same_wire(&first, &again.encode_sharded(), "sharded message");
    }
}

/// Recovery state read back from Redis; the first byte picks: a stored session, or a
/// stream id (the offset a reconnecting client presents).
pub fn session(data: &[u8]) {
    let (which, rest) = select(data);
    if which % 2 == 0 {
        persisted_session(rest);
    } else {
        stream_id(rest);
    }
}

fn persisted_session(data: &[u8]) {
    let Ok(session) = PersistedSession::decode(data) else {
        return;
    };
    for (key, _) in &session.extra {
        assert!(!matches!(key.as_str(), "sid" | "pid" | "rooms" | "data"));
    }
    let first = session.encode();
    let again = PersistedSession::decode(first.as_bytes()).expect("an encoded session decodes");
    assert_eq!(
        (&again.sid, &again.pid, &again.rooms),
        (&session.sid, &session.pid, &session.rooms)
    );
    assert!(msg_close(&again.data, &session.data));
    let [first, second] = [first, again.encode()].map(|s| STANDARD.decode(s).expect("base64"));
    assert_same_wire(&first, &second, "session");
    // Switchboard's memberships: what is read back is what was set, whatever else the
    // session held under those names.
    let memberships = session.memberships();
    let mut rewritten = session.clone();
    rewritten.set_memberships(memberships.clone());
    let read = PersistedSession::decode(rewritten.encode()).expect("an encoded session decodes");
    assert_eq!(read.memberships(), memberships);
}

fn stream_id(data: &[u8]) {
    let Ok(Ok(id)) = std::str::from_utf8(data).map(str::parse::<StreamId>) else {
        return;
    };
    assert_eq!(id.to_string().parse::<StreamId>(), Ok(id));
    let next = id.next();
    assert!(next > id || (id.ms, id.seq) == (u64::MAX, u64::MAX));
}

fn packet_lookalike(data: Option<&serde_json::Value>) -> bool {
    data.is_some_and(has_placeholder_lookalike)
}

fn body_lookalike(body: &MessageBody) -> bool {
    match body {
        MessageBody::Broadcast { packet, .. } => packet_lookalike(packet.data.as_ref()),
        _ => false,
    }
}

/// RESP2 as a node's subscriber connection reads it from Redis (`resp::parse`,
/// `resp::push`): a frame lies within the input and every range within the frame; the
/// frame alone parses to the same frame, and every shorter prefix of it is incomplete
/// (never an error: the reader waits for more); a message's channel and payload,
/// written as a `message` push, read back the same.
pub fn resp(data: &[u8]) {
    let Ok(Some((frame, n))) = resp::parse(data) else {
        return;
    };
    assert!(n <= data.len());
    assert_eq!(resp::parse(&data[..n]), Ok(Some((frame.clone(), n))));
    // Every prefix for short frames; a spread of them for long ones.
    let step = (n / 256).max(1);
    for end in (0..n).step_by(step).chain(n.checked_sub(1)) {
        assert_eq!(
            resp::parse(&data[..end]),
            Ok(None),
            "prefix of {end} of {n}"
        );
    }
    let inside = |r: &std::ops::Range<usize>| assert!(r.start <= r.end && r.end <= n, "{r:?}");
    match &frame {
        Frame::Status(r) | Frame::Error(r) | Frame::Bulk(r) => inside(r),
        Frame::Array(items) => {
            for item in items.as_slice() {
                if let Item::Str(r) = item {
                    inside(r);
                }
            }
        }
        Frame::Int(_) | Frame::Nil => {}
    }
    if let Push::Message { channel, payload } = resp::push(data, &frame) {
        let (channel, payload) = (&data[channel], &data[payload]);
        let mut out = Vec::new();
        resp::command(&mut out, &[b"message", channel, payload]);
        let (again, m) = resp::parse(&out)
            .expect("a written push parses")
            .expect("and is complete");
        assert_eq!(m, out.len());
        let Push::Message {
            channel: c,
            payload: p,
        } = resp::push(&out, &again)
        else {
            panic!("a written message reads back as one");
        };
        assert_eq!((&out[c], &out[p]), (channel, payload));
    }
}
