//! The JSON bodies POSTed to the backend and their ids. The shapes are the contract
//! with receivers and are documented in the crate's README; change both together.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde_json::{Value, json};

use crate::event::{ForwardedEvent, LifecycleEvent};
use crate::signature::hex;

/// A new idempotency key: `evt_` and 32 hex digits (128 random bits), unique per event
/// without coordination between nodes.
pub(crate) fn new_id() -> String {
    let bits: [u8; 16] = rand::random();
    format!("evt_{}", hex(&bits))
}

/// Milliseconds since the unix epoch (0 for times before it).
pub(crate) fn unix_millis(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The body of a lifecycle event.
pub(crate) fn lifecycle(id: &str, event: &LifecycleEvent) -> Bytes {
    let data = match event {
        LifecycleEvent::Connected {
            namespace,
            socket_id,
            transport,
            address,
            claims,
            ..
        } => json!({
            "namespace": namespace,
            "socket_id": socket_id,
            "transport": transport,
            "address": address,
            "claims": claims,
        }),
        LifecycleEvent::Disconnected {
            namespace,
            socket_id,
            transport,
            reason,
            diagnosis,
            ..
        } => json!({
            "namespace": namespace,
            "socket_id": socket_id,
            "transport": transport,
            "diagnosis": diagnosis,
            "reason": reason,
        }),
        LifecycleEvent::RoomOccupied {
            namespace, room, ..
        }
        | LifecycleEvent::RoomVacated {
            namespace, room, ..
        } => json!({
            "namespace": namespace,
            "room": room,
        }),
        LifecycleEvent::Refused {
            stage,
            namespace,
            transport,
            reason,
            diagnosis,
            ..
        } => json!({
            "stage": stage,
            "namespace": namespace,
            "transport": transport,
            "reason": reason,
            "diagnosis": diagnosis,
        }),
        LifecycleEvent::Pressure {
            from,
            tier,
            rss,
            budget,
            ..
        } => json!({
            "from": from,
            "tier": tier,
            "rss": rss,
            "budget": budget,
        }),
    };
    envelope(id, event.kind(), event.at(), data)
}

/// The body of a forwarded event; binary attachments are base64 (standard alphabet,
/// padded) strings in `data.binary`, in placeholder order.
pub(crate) fn forwarded(id: &str, event: &ForwardedEvent) -> Bytes {
    let binary: Vec<Value> = event
        .binary
        .iter()
        .map(|b| Value::String(STANDARD.encode(b)))
        .collect();
    let data = json!({
        "namespace": event.namespace,
        "socket_id": event.socket_id,
        "event": event.event,
        "args": event.args,
        "binary": binary,
        "claims": event.claims,
    });
    envelope(id, ForwardedEvent::KIND, event.at, data)
}

fn envelope(id: &str, kind: &str, at: SystemTime, data: Value) -> Bytes {
    let body = json!({
        "id": id,
        "type": kind,
        "timestamp": unix_millis(at),
        "data": data,
    });
    // Compact JSON, numbers as short as they came (`switchboard_protocol::json`): a
    // client's `1e15`s would otherwise reach the backend, and the dead-letter store,
    // four times as long.
    let mut out = Vec::new();
    switchboard_protocol::json::write(&mut out, &body);
    // Held until delivered (a forwarded event's until its reply): not with up to as
    // much again of spare room the buffer grew by.
    out.shrink_to_fit();
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn parse(body: &Bytes) -> Value {
        serde_json::from_slice(body).unwrap_or(Value::Null)
    }

    #[test]
    fn lifecycle_bodies_have_the_documented_shape() {
        let at = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let body = lifecycle(
            "evt_1",
            &LifecycleEvent::Connected {
                namespace: "/chat".into(),
                socket_id: "abc".into(),
                transport: "websocket".into(),
                address: None,
                claims: Some(json!({"sub": "u1"})),
                at,
            },
        );
        assert_eq!(
            parse(&body),
            json!({"id": "evt_1", "type": "connection", "timestamp": 1_700_000_000_123_u64,
                   "data": {"namespace": "/chat", "socket_id": "abc", "transport": "websocket", "address": null,
                            "claims": {"sub": "u1"}}})
        );
        let body = lifecycle(
            "evt_2",
            &LifecycleEvent::Disconnected {
                namespace: "/".into(),
                socket_id: "abc".into(),
                transport: "sse".into(),
                reason: "ping timeout".into(),
                diagnosis: Some(
                    json!({"category": "heartbeat", "confidence": 1.0, "evidence": ["x"]}),
                ),
                at,
            },
        );
        assert_eq!(parse(&body)["type"], "disconnection");
        assert_eq!(parse(&body)["data"]["reason"], "ping timeout");
        assert_eq!(parse(&body)["data"]["transport"], "sse");
        assert_eq!(parse(&body)["data"]["diagnosis"]["category"], "heartbeat");
        let body = lifecycle(
            "evt_3",
            &LifecycleEvent::RoomVacated {
                namespace: "/".into(),
                room: "r".into(),
                by: "s1".into(),
                at,
            },
        );
        assert_eq!(parse(&body)["data"], json!({"namespace": "/", "room": "r"}));
    }

    #[test]
    fn forwarded_binary_travels_as_base64() {
        let body = forwarded(
            "evt_4",
            &ForwardedEvent {
                namespace: "/".into(),
                socket_id: "s".into(),
                event: "upload".into(),
                args: vec![json!("name"), json!({"_placeholder": true, "num": 0})],
                binary: vec![Bytes::from_static(b"\x00\x01hi")],
                claims: None,
                at: UNIX_EPOCH,
            },
        );
        let v = parse(&body);
        assert_eq!(v["type"], "event");
        assert_eq!(v["data"]["binary"], json!(["AAFoaQ=="]));
        assert_eq!(
            v["data"]["args"][1],
            json!({"_placeholder": true, "num": 0})
        );
    }

    /// A client's numbers reach the backend as short as they came.
    #[test]
    fn forwarded_numbers_are_written_short() {
        let body = forwarded(
            "evt_5",
            &ForwardedEvent {
                namespace: "/".into(),
                socket_id: "s".into(),
                event: "n".into(),
                args: vec![json!(1e15), json!(0.5)],
                binary: vec![],
                claims: None,
                at: UNIX_EPOCH,
            },
        );
        let text = String::from_utf8_lossy(&body);
        assert!(text.contains(r#""args":[1e15,0.5]"#), "{text}");
    }

    #[test]
    fn ids_are_unique_and_well_formed() {
        let (a, b) = (new_id(), new_id());
        assert_ne!(a, b);
        assert_eq!(a.len(), 4 + 32);
        assert!(a.starts_with("evt_"));
    }
}
