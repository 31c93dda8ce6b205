//! [`Packet`] as the JavaScript object Node adapters exchange: `{type, data, nsp, id}`,
//! binary left in place as `Buffer`s.

use super::CodecError;
use super::msgpack::{self, MsgValue};
use super::read::{Obj, ObjBuilder, take};
use crate::socketio::{Packet, PacketType};

/// The packet object: `{type, data}` then `nsp` (the Redis adapter sets it before
/// publishing; the cluster adapter publishes before it is set) then `id` when present.
/// Binary stays type 2/3, the Buffers inside `data`: `socket.io-parser` only promotes
/// to 5/6 when encoding for a client.
pub(crate) fn to_value(packet: &Packet, with_nsp: bool) -> MsgValue {
    let kind: i64 = match packet.kind {
        PacketType::Connect => 0,
        PacketType::Disconnect => 1,
        PacketType::Event | PacketType::BinaryEvent => 2,
        PacketType::Ack | PacketType::BinaryAck => 3,
        PacketType::ConnectError => 4,
    };
    ObjBuilder::new()
        .field("type", kind)
        .opt_field(
            "data",
            packet
                .data
                .as_ref()
                .map(|data| msgpack::from_json(data, &packet.attachments)),
        )
        .opt_field("nsp", with_nsp.then_some(packet.nsp.as_str()))
        .opt_field("id", packet.id)
        .build()
}

/// Reads a packet object; `nsp` defaults to `default_nsp`. Types 5 and 6 read as 2 and 3
/// (the kind is promoted again by [`Packet::wire_type`] when attachments are present).
pub(crate) fn from_value(mut value: MsgValue, default_nsp: &str) -> Result<Packet, CodecError> {
    let obj = Obj::new(&value, "packet")?;
    let kind = match obj.kind()? {
        0 => PacketType::Connect,
        1 => PacketType::Disconnect,
        2 | 5 => PacketType::Event,
        3 | 6 => PacketType::Ack,
        4 => PacketType::ConnectError,
        other => return Err(CodecError::UnknownType(other)),
    };
    let id = match obj.get("id") {
        None => None,
        Some(id) => Some(id.as_u64().ok_or(CodecError::Field("id"))?),
    };
    let nsp = obj
        .opt_str("nsp")?
        .unwrap_or_else(|| default_nsp.to_owned());
    // A value that reads as `null` (an extension type has no JSON form) is absent, as
    // `null` itself is: re-encoded, the packet has no `data` either way.
    let (data, attachments) = match take(&mut value, "data").map(msgpack::to_json) {
        Some((json, attachments)) if !json.is_null() => (Some(json), attachments),
        _ => (None, Vec::new()),
    };
    Ok(Packet {
        kind,
        nsp,
        id,
        data,
        attachments,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::js::stringify;
    use bytes::Bytes;
    use serde_json::json;

    #[test]
    fn data_that_reads_as_null_is_absent_as_null_is() {
        // `{type: 2, data: <fixext 2>, nsp: "/"}`, found by the redis_adapter fuzzer:
        // the extension read as `null` and was written back as `data: nil`, which then
        // read as absent, so the second encoding differed from the first.
        let ext = MsgValue::Ext(-111, bytes::Bytes::from_static(&[0xa1, 0x6e]));
        for data in [ext, MsgValue::Nil] {
            let value = ObjBuilder::new()
                .field("type", 2i64)
                .field("data", data)
                .field("nsp", "/")
                .build();
            let packet = from_value(value, "/").expect("a packet");
            assert_eq!(packet.data, None);
            let again = from_value(to_value(&packet, true), "/").expect("it reads back");
            assert_eq!(again, packet);
        }
    }

    #[test]
    fn binary_events_stay_type_2() {
        let mut packet = Packet::new(
            PacketType::BinaryEvent,
            "/chat",
            Some(json!(["file", crate::socketio::placeholder(0)])),
        );
        packet.attachments = vec![Bytes::from_static(&[1, 2])];
        let value = to_value(&packet, true);
        assert_eq!(
            stringify(&value),
            r#"{"type":2,"data":["file",{"type":"Buffer","data":[1,2]}],"nsp":"/chat"}"#
        );
        let back = from_value(value, "/").unwrap();
        assert_eq!(back.kind, PacketType::Event);
        assert_eq!(back.wire_type(), PacketType::BinaryEvent);
        assert_eq!(back.data, packet.data);
        assert_eq!(back.attachments, packet.attachments);
    }

    #[test]
    fn defaults_and_errors() {
        let value = ObjBuilder::new()
            .field("type", 6i64)
            .field("id", 4u64)
            .build();
        let packet = from_value(value, "/x").unwrap();
        assert_eq!(
            (packet.kind, packet.nsp.as_str(), packet.id),
            (PacketType::Ack, "/x", Some(4))
        );
        let bad = ObjBuilder::new().field("type", 7i64).build();
        assert_eq!(from_value(bad, "/"), Err(CodecError::UnknownType(7)));
        let bad_id = ObjBuilder::new()
            .field("type", 2i64)
            .field("id", -1i64)
            .build();
        assert_eq!(from_value(bad_id, "/"), Err(CodecError::Field("id")));
        assert_eq!(
            from_value(MsgValue::Nil, "/"),
            Err(CodecError::Field("packet"))
        );
    }
}
