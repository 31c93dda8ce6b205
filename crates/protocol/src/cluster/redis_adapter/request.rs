//! Requests published on `socket.io-request#/nsp#`.

use crate::cluster::CodecError;
use crate::cluster::SocketsPage;
use crate::cluster::js::stringify;
use crate::cluster::msgpack::{self, MsgValue};
use crate::cluster::node_packet;
use crate::cluster::opts::BroadcastOpts;
use crate::cluster::read::{self, Obj, ObjBuilder, strings, take};
use crate::socketio::Packet;

/// The `type` of requests and of the responses that carry one (`RequestType` in
/// `@socket.io/redis-adapter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestType {
    /// `0`: socket ids in some rooms (sent by adapters before 8.0).
    Sockets,
    /// `1`: every room of the namespace.
    AllRooms,
    /// `2`: make sockets join rooms.
    RemoteJoin,
    /// `3`: make sockets leave rooms.
    RemoteLeave,
    /// `4`: disconnect sockets.
    RemoteDisconnect,
    /// `5`: `fetchSockets()`.
    RemoteFetch,
    /// `6`: `serverSideEmit()`, and its acknowledgements.
    ServerSideEmit,
    /// `7`: a broadcast expecting client acknowledgements.
    Broadcast,
    /// `8`: response: how many clients a node sent a [`RequestType::Broadcast`] to.
    BroadcastClientCount,
    /// `9`: response: one client's acknowledgement of a [`RequestType::Broadcast`].
    BroadcastAck,
}

impl RequestType {
    /// The wire number.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The type with wire number `code`.
    pub fn from_code(code: i64) -> Option<Self> {
        use RequestType::*;
        Some(match code {
            0 => Sockets,
            1 => AllRooms,
            2 => RemoteJoin,
            3 => RemoteLeave,
            4 => RemoteDisconnect,
            5 => RemoteFetch,
            6 => ServerSideEmit,
            7 => Broadcast,
            8 => BroadcastClientCount,
            9 => BroadcastAck,
            _ => return None,
        })
    }
}

/// A request from one node to the others.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The requesting node; receivers ignore their own `SERVER_SIDE_EMIT`. `None` for
    /// emitters' `socketsJoin`/`socketsLeave`/`disconnectSockets` and the requests of
    /// adapters before 7.2.
    pub uid: Option<String>,
    /// What is asked.
    pub body: RequestBody,
}

/// The request kinds. Operations on sockets come in two forms: by filter (what 8.x and
/// emitters send; no response) and by socket id (adapters before 8.0; answered with
/// [`super::Response::Done`]).
#[derive(Debug, Clone, PartialEq)]
pub enum RequestBody {
    /// `SOCKETS`: the ids of the sockets in `rooms` (all when empty).
    Sockets {
        /// Correlates the responses.
        request_id: String,
        /// The rooms.
        rooms: Vec<String>,
    },
    /// `ALL_ROOMS`: every room.
    AllRooms {
        /// Correlates the responses.
        request_id: String,
    },
    /// `REMOTE_JOIN` by filter: matching sockets join `rooms`.
    SocketsJoin {
        /// Which sockets (flags are not sent).
        opts: BroadcastOpts,
        /// The rooms to join.
        rooms: Vec<String>,
    },
    /// `REMOTE_JOIN` of one socket.
    RemoteJoin {
        /// Correlates the response.
        request_id: String,
        /// The socket.
        sid: String,
        /// The room to join.
        room: String,
    },
    /// `REMOTE_LEAVE` by filter: matching sockets leave `rooms`.
    SocketsLeave {
        /// Which sockets (flags are not sent).
        opts: BroadcastOpts,
        /// The rooms to leave.
        rooms: Vec<String>,
    },
    /// `REMOTE_LEAVE` of one socket.
    RemoteLeave {
        /// Correlates the response.
        request_id: String,
        /// The socket.
        sid: String,
        /// The room to leave.
        room: String,
    },
    /// `REMOTE_DISCONNECT` by filter.
    DisconnectSockets {
        /// Which sockets (flags are not sent).
        opts: BroadcastOpts,
        /// Whether to close the underlying connection too.
        close: bool,
    },
    /// `REMOTE_DISCONNECT` of one socket.
    RemoteDisconnect {
        /// Correlates the response.
        request_id: String,
        /// The socket.
        sid: String,
        /// Whether to close the underlying connection too.
        close: bool,
    },
    /// `REMOTE_FETCH`: details of the matching sockets.
    FetchSockets {
        /// Correlates the responses.
        request_id: String,
        /// Which sockets (flags are not sent).
        opts: BroadcastOpts,
        /// Switchboard's `page` field: only this page of them (Node ignores it).
        page: Option<SocketsPage>,
    },
    /// `SERVER_SIDE_EMIT`: an event for the other servers; with a `request_id` each
    /// answers once.
    ServerSideEmit {
        /// Present when the emitter waits for acknowledgements.
        request_id: Option<String>,
        /// The event name and arguments. Sent as JSON, so Node turns binary into
        /// `{"type":"Buffer","data":[..]}` and so does this codec.
        data: Vec<MsgValue>,
    },
    /// `BROADCAST`: a broadcast whose clients acknowledge it (sent as notepack).
    Broadcast {
        /// Correlates the responses.
        request_id: String,
        /// The packet, `{type, data, nsp}`; the id is assigned by each receiver.
        packet: Packet,
        /// The target, flags included.
        opts: BroadcastOpts,
    },
}

impl RequestBody {
    /// The wire type.
    pub fn request_type(&self) -> RequestType {
        match self {
            RequestBody::Sockets { .. } => RequestType::Sockets,
            RequestBody::AllRooms { .. } => RequestType::AllRooms,
            RequestBody::SocketsJoin { .. } | RequestBody::RemoteJoin { .. } => {
                RequestType::RemoteJoin
            }
            RequestBody::SocketsLeave { .. } | RequestBody::RemoteLeave { .. } => {
                RequestType::RemoteLeave
            }
            RequestBody::DisconnectSockets { .. } | RequestBody::RemoteDisconnect { .. } => {
                RequestType::RemoteDisconnect
            }
            RequestBody::FetchSockets { .. } => RequestType::RemoteFetch,
            RequestBody::ServerSideEmit { .. } => RequestType::ServerSideEmit,
            RequestBody::Broadcast { .. } => RequestType::Broadcast,
        }
    }

    /// The id responses will carry, if any are expected.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            RequestBody::Sockets { request_id, .. }
            | RequestBody::AllRooms { request_id }
            | RequestBody::RemoteJoin { request_id, .. }
            | RequestBody::RemoteLeave { request_id, .. }
            | RequestBody::RemoteDisconnect { request_id, .. }
            | RequestBody::FetchSockets { request_id, .. }
            | RequestBody::Broadcast { request_id, .. } => Some(request_id),
            RequestBody::ServerSideEmit { request_id, .. } => request_id.as_deref(),
            RequestBody::SocketsJoin { .. }
            | RequestBody::SocketsLeave { .. }
            | RequestBody::DisconnectSockets { .. } => None,
        }
    }
}

impl Request {
    /// The bytes Node publishes: `JSON.stringify` of the request object with Node's key
    /// order (`uid` first when present, then `requestId`, `type`, the rest), except
    /// [`RequestBody::Broadcast`], which is notepack.
    pub fn encode(&self) -> Vec<u8> {
        let value = self.to_value();
        match self.body {
            RequestBody::Broadcast { .. } => msgpack::encode_notepack(&value),
            _ => stringify(&value).into_bytes(),
        }
    }

    fn to_value(&self) -> MsgValue {
        use RequestBody::*;
        let obj = ObjBuilder::new().opt_field("uid", self.uid.as_deref());
        let code = i64::from(self.body.request_type().code());
        match &self.body {
            Sockets { request_id, rooms } => obj
                .field("requestId", request_id.as_str())
                .field("type", code)
                .field("rooms", strings(rooms)),
            AllRooms { request_id } => obj
                .field("requestId", request_id.as_str())
                .field("type", code),
            SocketsJoin { opts, rooms } | SocketsLeave { opts, rooms } => obj
                .field("type", code)
                .field("opts", opts.to_value_without_flags())
                .field("rooms", strings(rooms)),
            RemoteJoin {
                request_id,
                sid,
                room,
            }
            | RemoteLeave {
                request_id,
                sid,
                room,
            } => obj
                .field("requestId", request_id.as_str())
                .field("type", code)
                .field("sid", sid.as_str())
                .field("room", room.as_str()),
            DisconnectSockets { opts, close } => obj
                .field("type", code)
                .field("opts", opts.to_value_without_flags())
                .field("close", *close),
            RemoteDisconnect {
                request_id,
                sid,
                close,
            } => obj
                .field("requestId", request_id.as_str())
                .field("type", code)
                .field("sid", sid.as_str())
                .field("close", *close),
            FetchSockets {
                request_id,
                opts,
                page,
            } => obj
                .field("requestId", request_id.as_str())
                .field("type", code)
                .field("opts", opts.to_value_without_flags())
                .opt_field("page", page.as_ref().map(SocketsPage::to_value)),
            ServerSideEmit { request_id, data } => obj
                .opt_field("requestId", request_id.as_deref())
                .field("type", code)
                .field("data", MsgValue::Array(data.clone())),
            Broadcast {
                request_id,
                packet,
                opts,
            } => obj
                .field("requestId", request_id.as_str())
                .field("type", code)
                .field("packet", node_packet::to_value(packet, true))
                .field("opts", opts.to_value()),
        }
        .build()
    }

    /// Reads a request: JSON when the first byte is `{`, notepack otherwise (as Node
    /// decides). Operations on sockets are by filter when `opts` is present.
    pub fn decode(msg: &[u8]) -> Result<Self, CodecError> {
        let mut value = read::json_or_msgpack(msg)?;
        let obj = Obj::new(&value, "request")?;
        let uid = obj.opt_str("uid")?;
        let code = obj.kind()?;
        let kind = RequestType::from_code(code).ok_or(CodecError::UnknownType(code))?;
        let opts = || BroadcastOpts::from_value(obj.get("opts").ok_or(CodecError::Field("opts"))?);
        let by_filter = obj.get("opts").is_some();
        let request_id = || obj.str("requestId");
        let body = match kind {
            RequestType::Sockets => RequestBody::Sockets {
                request_id: request_id()?,
                rooms: obj.rooms("rooms")?,
            },
            RequestType::AllRooms => RequestBody::AllRooms {
                request_id: request_id()?,
            },
            RequestType::RemoteJoin if by_filter => RequestBody::SocketsJoin {
                opts: opts()?,
                rooms: obj.rooms("rooms")?,
            },
            RequestType::RemoteJoin => RequestBody::RemoteJoin {
                request_id: request_id()?,
                sid: obj.room("sid")?,
                room: obj.room("room")?,
            },
            RequestType::RemoteLeave if by_filter => RequestBody::SocketsLeave {
                opts: opts()?,
                rooms: obj.rooms("rooms")?,
            },
            RequestType::RemoteLeave => RequestBody::RemoteLeave {
                request_id: request_id()?,
                sid: obj.room("sid")?,
                room: obj.room("room")?,
            },
            RequestType::RemoteDisconnect if by_filter => RequestBody::DisconnectSockets {
                opts: opts()?,
                close: obj.truthy("close"),
            },
            RequestType::RemoteDisconnect => RequestBody::RemoteDisconnect {
                request_id: request_id()?,
                sid: obj.room("sid")?,
                close: obj.truthy("close"),
            },
            RequestType::RemoteFetch => RequestBody::FetchSockets {
                request_id: request_id()?,
                opts: opts()?,
                page: SocketsPage::read(&obj)?,
            },
            RequestType::ServerSideEmit => {
                let request_id = obj.opt_str("requestId")?;
                let Some(MsgValue::Array(data)) = take(&mut value, "data") else {
                    return Err(CodecError::Field("data"));
                };
                RequestBody::ServerSideEmit { request_id, data }
            }
            RequestType::Broadcast => {
                let request_id = request_id()?;
                let opts = opts()?;
                let packet = take(&mut value, "packet").ok_or(CodecError::Field("packet"))?;
                RequestBody::Broadcast {
                    request_id,
                    packet: node_packet::from_value(packet, "/")?,
                    opts,
                }
            }
            RequestType::BroadcastClientCount | RequestType::BroadcastAck => {
                return Err(CodecError::UnknownType(code));
            }
        };
        Ok(Request { uid, body })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(uid: Option<&str>, body: RequestBody) -> Request {
        Request {
            uid: uid.map(str::to_owned),
            body,
        }
    }

    /// Switchboard's `page` rides in the request object, where Node's adapter ignores
    /// it, and reads back.
    #[test]
    fn a_fetch_carries_its_page() -> Result<(), CodecError> {
        let page = Some(SocketsPage {
            after: Some("abc".into()),
            limit: Some(5),
            brief: false,
        });
        let fetch = req(
            Some("u"),
            RequestBody::FetchSockets {
                request_id: "r2".into(),
                opts: BroadcastOpts::default(),
                page: page.clone(),
            },
        );
        let bytes = fetch.encode();
        assert_eq!(
            String::from_utf8_lossy(&bytes),
            r#"{"uid":"u","requestId":"r2","type":5,"opts":{"rooms":[],"except":[]},"page":{"after":"abc","limit":5}}"#
        );
        match Request::decode(&bytes)?.body {
            RequestBody::FetchSockets { page: back, .. } => assert_eq!(back, page),
            other => panic!("{other:?}"),
        }
        Ok(())
    }

    #[test]
    fn json_key_order_matches_node() {
        let fetch = req(
            Some("abc"),
            RequestBody::FetchSockets {
                request_id: "r1".into(),
                opts: BroadcastOpts {
                    rooms: vec!["a".into()],
                    ..Default::default()
                },
                page: None,
            },
        );
        assert_eq!(
            String::from_utf8(fetch.encode()).unwrap(),
            r#"{"uid":"abc","requestId":"r1","type":5,"opts":{"rooms":["a"],"except":[]}}"#
        );
        let join = req(
            None,
            RequestBody::SocketsJoin {
                opts: BroadcastOpts::default(),
                rooms: vec!["x".into()],
            },
        );
        assert_eq!(
            String::from_utf8(join.encode()).unwrap(),
            r#"{"type":2,"opts":{"rooms":[],"except":[]},"rooms":["x"]}"#
        );
    }

    /// Found by the `redis_adapter` fuzz target: a server-side emit read from MessagePack
    /// with data nested deeper than `serde_json`'s 128 went out as JSON that did not read
    /// back. Both forms now nest to `msgpack::MAX_DEPTH`.
    #[test]
    fn a_deep_server_side_emit_read_from_msgpack_reads_back_from_json() {
        let mut data = MsgValue::Str("leaf".into());
        for _ in 0..msgpack::MAX_DEPTH - 3 {
            data = MsgValue::Array(vec![data]);
        }
        let request = req(
            Some("u"),
            RequestBody::ServerSideEmit {
                request_id: Some("r".into()),
                data: vec![data],
            },
        );
        let packed = msgpack::encode_notepack(&request.to_value());
        let read = Request::decode(&packed).expect("the MessagePack form reads");
        let json = read.encode();
        assert_eq!(json.first(), Some(&b'{'));
        assert_eq!(Request::decode(&json), Ok(request));
    }

    #[test]
    fn both_join_forms_decode() {
        let by_sid = br#"{"uid":"u","requestId":"r","type":2,"sid":"s1","room":"room"}"#;
        assert_eq!(
            Request::decode(by_sid),
            Ok(req(
                Some("u"),
                RequestBody::RemoteJoin {
                    request_id: "r".into(),
                    sid: "s1".into(),
                    room: "room".into()
                }
            ))
        );
        let by_opts = br#"{"type":2,"opts":{"rooms":["a"],"except":[]},"rooms":["b"]}"#;
        assert_eq!(
            Request::decode(by_opts),
            Ok(req(
                None,
                RequestBody::SocketsJoin {
                    opts: BroadcastOpts {
                        rooms: vec!["a".into()],
                        ..Default::default()
                    },
                    rooms: vec!["b".into()]
                }
            ))
        );
    }

    #[test]
    fn every_body_round_trips() {
        let opts = BroadcastOpts {
            rooms: vec!["r".into()],
            except: vec!["e".into()],
            ..Default::default()
        };
        let bodies = [
            RequestBody::Sockets {
                request_id: "1".into(),
                rooms: vec!["a".into()],
            },
            RequestBody::AllRooms {
                request_id: "1".into(),
            },
            RequestBody::SocketsLeave {
                opts: opts.clone(),
                rooms: vec!["a".into()],
            },
            RequestBody::RemoteLeave {
                request_id: "1".into(),
                sid: "s".into(),
                room: "a".into(),
            },
            RequestBody::DisconnectSockets {
                opts: opts.clone(),
                close: true,
            },
            RequestBody::RemoteDisconnect {
                request_id: "1".into(),
                sid: "s".into(),
                close: false,
            },
            RequestBody::ServerSideEmit {
                request_id: None,
                data: vec!["ev".into(), MsgValue::Int(1)],
            },
            RequestBody::Broadcast {
                request_id: "1".into(),
                packet: Packet::new(
                    crate::socketio::PacketType::Event,
                    "/",
                    Some(serde_json::json!(["x"])),
                ),
                opts,
            },
        ];
        for body in bodies {
            let r = req(Some("u"), body);
            assert_eq!(Request::decode(&r.encode()).as_ref(), Ok(&r));
        }
    }

    #[test]
    fn rejects_malformed_requests() {
        assert_eq!(
            Request::decode(br#"{"type":42}"#),
            Err(CodecError::UnknownType(42))
        );
        assert_eq!(
            Request::decode(br#"{"type":"5"}"#),
            Err(CodecError::Field("type"))
        );
        assert_eq!(
            Request::decode(br#"{"type":5,"requestId":"r"}"#),
            Err(CodecError::Field("opts"))
        );
        assert_eq!(
            Request::decode(br#"{"type":6,"data":{}}"#),
            Err(CodecError::Field("data"))
        );
        assert_eq!(
            Request::decode(br#"{"type":8,"requestId":"r"}"#),
            Err(CodecError::UnknownType(8))
        );
        assert_eq!(Request::decode(b"[1]"), Err(CodecError::TrailingBytes(2)));
        assert_eq!(Request::decode(br#"{"type":1"#), Err(CodecError::Json));
        assert_eq!(Request::decode(b"{nope"), Err(CodecError::Json));
    }
}
