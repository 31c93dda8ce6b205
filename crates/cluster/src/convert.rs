//! Conversions between the engine's adapter types and the Node adapters' wire types of
//! `switchboard_protocol::cluster`, and what this node accepts from the wire; no IO.
//!
//! The wire types model what Node holds (MessagePack values, optional flags); the
//! engine works with JSON values and binary attachments. Binary survives where Node
//! keeps it (broadcast packets, acknowledgement arguments); elsewhere (socket data,
//! server-side events) the engine has none to give.

use std::time::Duration;

use serde_json::Value;
use switchboard_engine::Payload;
use switchboard_engine::adapter::{
    BroadcastFlags, BroadcastOptions, Room, SocketInfo, SocketsPage,
};
use switchboard_protocol::cluster::msgpack::{self, MsgValue};
use switchboard_protocol::cluster::{self as wire, RemoteSocket};
use switchboard_protocol::socketio::{Packet, PacketType};

/// The longest a node waits for its clients' acknowledgements of another node's
/// broadcast with acks, whatever timeout the message names. The message comes from
/// Redis, where anyone who can publish may name years; each targeted socket keeps
/// an entry until then. (Node's `setTimeout` makes any delay past 2^31 − 1 ms, about
/// 24.8 days, one millisecond.) A minute is far above the seconds applications give
/// `timeout()`.
pub(crate) const MAX_PEER_ACK_TIMEOUT: Duration = Duration::from_secs(60);

/// The engine's options for a target read from the wire. Flags Node left undefined
/// are off; a timeout is at most [`MAX_PEER_ACK_TIMEOUT`].
pub(crate) fn engine_opts(opts: &wire::BroadcastOpts) -> BroadcastOptions {
    BroadcastOptions {
        rooms: rooms(&opts.rooms),
        except: rooms(&opts.except),
        flags: BroadcastFlags {
            volatile: opts.flags.volatile == Some(true),
            local: opts.flags.local == Some(true),
            timeout: opts
                .flags
                .timeout
                .map(|ms| Duration::from_millis(ms).min(MAX_PEER_ACK_TIMEOUT)),
        },
    }
}

/// A target as Node writes it: flags that are off are left out (undefined), as
/// Node's `BroadcastOperator` only sets the ones the application chained.
pub(crate) fn wire_opts(opts: &BroadcastOptions) -> wire::BroadcastOpts {
    let names = |rooms: &[Room]| rooms.iter().map(|r| r.to_string()).collect();
    wire::BroadcastOpts {
        rooms: names(&opts.rooms),
        except: names(&opts.except),
        flags: wire::BroadcastFlags {
            volatile: opts.flags.volatile.then_some(true),
            local: opts.flags.local.then_some(true),
            timeout: opts
                .flags
                .timeout
                .map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
            ..wire::BroadcastFlags::default()
        },
    }
}

/// A page of a socket listing as a request carries it (`None`: every socket, the
/// request as Node sends it).
pub(crate) fn wire_page(page: &SocketsPage) -> Option<wire::SocketsPage> {
    (page != &SocketsPage::default()).then(|| wire::SocketsPage {
        after: page.after.clone(),
        limit: page.limit.map(|n| u64::try_from(n).unwrap_or(u64::MAX)),
        brief: page.brief,
    })
}

/// The page a request asks for (`None`: every socket).
pub(crate) fn engine_page(page: Option<wire::SocketsPage>) -> SocketsPage {
    page.map_or_else(SocketsPage::default, |page| SocketsPage {
        after: page.after,
        limit: page.limit.map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
        brief: page.brief,
    })
}

/// Room names as the engine's rooms.
pub(crate) fn rooms(names: &[String]) -> Vec<Room> {
    names.iter().map(|r| Room::from(r.as_str())).collect()
}

/// Whether a broadcast packet from another node is one this node relays to clients:
/// an event or an acknowledgement with an argument list. Anything else (a connect or
/// disconnect packet, missing data) only a misbehaving peer publishes.
pub(crate) fn relayable(packet: &Packet) -> bool {
    matches!(packet.kind, PacketType::Event | PacketType::Ack)
        && matches!(packet.data, Some(Value::Array(_)))
}

/// A JSON value (no binary) as the wire value Node would hold.
pub(crate) fn to_wire(value: &Value) -> MsgValue {
    msgpack::from_json(value, &[])
}

/// A wire value as JSON. Binary inside becomes dangling placeholders: only for values
/// that the engine keeps as plain JSON (socket data, server-side event arguments).
pub(crate) fn to_json(value: MsgValue) -> Value {
    msgpack::to_json(value).0
}

/// Request headers never sent to other nodes: the client's credentials, which
/// whoever reads the Redis (or runs another node's application code) has no business
/// with.
const PRIVATE_HEADERS: [&str; 3] = ["cookie", "authorization", "proxy-authorization"];

/// The CONNECT `auth` object is never sent to other nodes: a node forgets it (`{}`)
/// once the socket's connection handlers ran, and one read while they ran carried
/// whatever credential the client sent in it, under whatever key: `auth.token`, a
/// namespace's own (`[namespaces.auth] token_sources`), the SSE query parameters
/// copied into it (`sse.auth_params`), the Admin UI's login, a resuming client's
/// `pid` (a bearer secret with `recovery.skip_middlewares`). Before 2026-12-07 only
/// `token`, `password` and `sessionId` were taken out.
/// A socket in a `fetchSockets()` answer, as Node serializes it, without the client's
/// credentials ([`PRIVATE_HEADERS`], and `auth` emptied: see [`without_credentials`]).
pub(crate) fn remote_socket(socket: SocketInfo) -> RemoteSocket {
    RemoteSocket {
        id: socket.id,
        handshake: without_credentials(socket.handshake),
        rooms: socket.rooms,
        data: to_wire(&socket.data),
    }
}

/// Node's handshake object without the [`PRIVATE_HEADERS`] and with `auth` emptied
/// (`{}`, as a node holds it once the connection handlers ran): what a handshake may
/// carry beyond this node (a `fetchSockets` answer, the Admin UI's events, both
/// through Redis).
pub fn without_credentials(mut handshake: Value) -> Value {
    if let Some(headers) = handshake.get_mut("headers").and_then(Value::as_object_mut) {
        headers.retain(|name, _| {
            !PRIVATE_HEADERS
                .iter()
                .any(|private| name.eq_ignore_ascii_case(private))
        });
    }
    if let Some(auth) = handshake.get_mut("auth") {
        *auth = Value::Object(serde_json::Map::new());
    }
    handshake
}

/// A socket of another node's `fetchSockets()` answer.
pub(crate) fn socket_info(socket: RemoteSocket) -> SocketInfo {
    SocketInfo {
        id: socket.id,
        handshake: socket.handshake,
        rooms: socket.rooms,
        data: to_json(socket.data),
    }
}

/// A client's acknowledgement as the Node adapters relay it: its first argument
/// (`undefined`, i.e. nil, when it sent none), binary included.
pub(crate) fn ack_argument(payload: Payload) -> MsgValue {
    let Payload { args, binary } = payload;
    args.into_iter()
        .next()
        .map_or(MsgValue::Nil, |first| msgpack::from_json(&first, &binary))
}

/// An acknowledgement relayed by another node: the one argument it carries.
pub(crate) fn ack_payload(argument: MsgValue) -> Payload {
    let (arg, binary) = msgpack::to_json(argument);
    Payload {
        args: vec![arg],
        binary,
    }
}

/// A wire count (at most 2⁵³ from Node) as a `usize`.
pub(crate) fn count(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use bytes::Bytes;
    use serde_json::json;

    #[test]
    fn options_round_trip_and_unset_flags_stay_undefined() {
        let opts = BroadcastOptions {
            rooms: rooms(&["a".into(), "b".into()]),
            except: rooms(&["sid".into()]),
            flags: BroadcastFlags {
                volatile: true,
                local: false,
                timeout: Some(Duration::from_millis(1500)),
            },
        };
        let wire = wire_opts(&opts);
        assert_eq!(wire.flags.volatile, Some(true));
        assert_eq!(wire.flags.local, None, "off is left undefined");
        assert_eq!(wire.flags.timeout, Some(1500));
        assert_eq!(engine_opts(&wire), opts);
        assert_eq!(
            wire_opts(&BroadcastOptions::default()).flags,
            wire::BroadcastFlags::default()
        );
    }

    /// A peer's broadcast with acks naming any timeout keeps the local sockets' entries
    /// a minute at most.
    #[test]
    fn a_peers_ack_timeout_is_a_minute_at_most() {
        let mut wire = wire::BroadcastOpts::default();
        wire.flags.timeout = Some(1_000_000_000_000_000);
        assert_eq!(engine_opts(&wire).flags.timeout, Some(MAX_PEER_ACK_TIMEOUT));
        wire.flags.timeout = Some(u64::MAX);
        assert_eq!(engine_opts(&wire).flags.timeout, Some(MAX_PEER_ACK_TIMEOUT));
        wire.flags.timeout = Some(10_000);
        assert_eq!(
            engine_opts(&wire).flags.timeout,
            Some(Duration::from_secs(10))
        );
    }

    #[test]
    fn acknowledgements_keep_their_binary() {
        let mut payload = Payload::new(vec![]);
        let file = payload.binary_arg(Bytes::from_static(b"\x01\x02"));
        payload.args = vec![json!({"file": file}), json!("dropped")];
        let arg = ack_argument(payload);
        assert!(arg.has_binary());
        let back = ack_payload(arg);
        assert_eq!(back.args, vec![json!({"file": file})]);
        assert_eq!(back.binary, vec![Bytes::from_static(b"\x01\x02")]);
        assert_eq!(ack_argument(Payload::new(vec![])), MsgValue::Nil);
        assert_eq!(ack_payload(MsgValue::Nil).args, vec![Value::Null]);
    }

    #[test]
    fn only_events_and_acks_with_arguments_are_relayed() {
        let packet = |kind, data| Packet::new(kind, "/", data);
        assert!(relayable(&packet(PacketType::Event, Some(json!(["e"])))));
        assert!(relayable(&packet(PacketType::Ack, Some(json!([])))));
        assert!(!relayable(&packet(PacketType::Event, None)));
        assert!(!relayable(&packet(PacketType::Event, Some(json!({})))));
        assert!(!relayable(&packet(PacketType::Connect, Some(json!([])))));
        assert!(!relayable(&packet(PacketType::Disconnect, None)));
    }

    #[test]
    fn sockets_convert_both_ways() {
        let info = SocketInfo {
            id: "s1".into(),
            handshake: json!({"headers": {}, "query": {"a": "1"}}),
            rooms: vec!["s1".into(), "r".into()],
            data: json!({"user": "ann", "n": 2}),
        };
        assert_eq!(socket_info(remote_socket(info.clone())), info);
    }

    #[test]
    fn credentials_never_leave_the_node() {
        let info = SocketInfo {
            id: "s1".into(),
            handshake: json!({
                "headers": {
                    "cookie": "sid=secret",
                    "Authorization": "Bearer secret",
                    "proxy-authorization": "Basic secret",
                    "user-agent": "node-XMLHttpRequest",
                },
                "query": {"EIO": "4"},
                "auth": {
                    "token": "secret",
                    "room": "lobby",
                    "username": "admin",
                    "password": "secret",
                    "sessionId": "secret",
                    "jwt": "secret",
                    "access_token": "secret",
                    "pid": "secret",
                },
            }),
            rooms: vec!["s1".into()],
            data: json!(null),
        };
        let sent = remote_socket(info);
        assert_eq!(
            sent.handshake,
            json!({
                "headers": {"user-agent": "node-XMLHttpRequest"},
                "query": {"EIO": "4"},
                "auth": {},
            })
        );
        assert!(!sent.handshake.to_string().contains("secret"));
    }
}
