//! The two Node adapters' message shapes, on top of the pure msgpack codec of
//! `switchboard_protocol::cluster::msgpack`: channel names, broadcast messages,
//! requests and responses (`@socket.io/redis-adapter` 8.x), cluster messages, stream
//! entries and stored sessions (`@socket.io/redis-streams-adapter` 0.3).
//!
//! JSON objects are built in Node's key order (`serde_json` keeps insertion order),
//! so what Node would `JSON.stringify` comes out the same.

use base64::Engine as _;
use bytes::Bytes;
use serde_json::{Map, Value, json};
use switchboard_engine::adapter::SocketInfo;
use switchboard_protocol::cluster::msgpack::{
    self, encode_msgpack, encode_notepack, from_json, to_json,
};
use switchboard_protocol::socketio::{Packet, PacketType};

/// A message that does not have the shape its channel or stream promises.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WireError {
    #[error("msgpack: {0}")]
    Msgpack(#[from] switchboard_protocol::cluster::CodecError),
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    #[error("base64")]
    Base64,
    #[error("missing or bad field {0}")]
    Field(&'static str),
    #[error("unknown type {0}")]
    UnknownType(u64),
}

/// Node's `BroadcastOptions` on the wire.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct BroadcastOpts {
    pub(crate) rooms: Vec<String>,
    pub(crate) except: Vec<String>,
    pub(crate) flags: BroadcastFlags,
}

/// Node's `BroadcastFlags` (only those that matter across nodes).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct BroadcastFlags {
    pub(crate) volatile: bool,
    pub(crate) local: bool,
    /// Milliseconds.
    pub(crate) timeout: Option<u64>,
}

impl BroadcastOpts {
    fn to_json(&self, with_flags: bool) -> Value {
        let mut o = Map::new();
        o.insert("rooms".into(), json!(self.rooms));
        o.insert("except".into(), json!(self.except));
        if with_flags {
            let mut f = Map::new();
            if self.flags.volatile {
                f.insert("volatile".into(), Value::Bool(true));
            }
            if self.flags.local {
                f.insert("local".into(), Value::Bool(true));
            }
            if let Some(t) = self.flags.timeout {
                f.insert("timeout".into(), json!(t));
            }
            o.insert("flags".into(), Value::Object(f));
        }
        Value::Object(o)
    }

    fn from_json(v: &Value) -> BroadcastOpts {
        let strings = |key: &str| -> Vec<String> {
            v.get(key)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .map(|r| match r {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        let flags = v.get("flags");
        let flag = |k: &str| flags.and_then(|f| f.get(k)).and_then(Value::as_bool) == Some(true);
        BroadcastOpts {
            rooms: strings("rooms"),
            except: strings("except"),
            flags: BroadcastFlags {
                volatile: flag("volatile"),
                local: flag("local"),
                timeout: flags
                    .and_then(|f| f.get("timeout"))
                    .and_then(Value::as_f64)
                    .map(|t| t.max(0.0) as u64),
            },
        }
    }
}

/// Node's packet object `{type, data, nsp, id?}` with binary as placeholders.
fn packet_json(packet: &Packet) -> Value {
    let kind = match packet.kind {
        PacketType::BinaryEvent => PacketType::Event,
        PacketType::BinaryAck => PacketType::Ack,
        k => k,
    };
    let mut o = Map::new();
    o.insert("type".into(), json!(kind as u8));
    o.insert("data".into(), packet.data.clone().unwrap_or(Value::Null));
    o.insert("nsp".into(), Value::String(packet.nsp.clone()));
    if let Some(id) = packet.id {
        o.insert("id".into(), json!(id));
    }
    Value::Object(o)
}

fn packet_from_json(v: &Value, attachments: Vec<Bytes>) -> Result<Packet, WireError> {
    let kind = match v.get("type").and_then(Value::as_u64) {
        Some(2 | 5) => PacketType::Event,
        Some(3 | 6) => PacketType::Ack,
        _ => return Err(WireError::Field("packet.type")),
    };
    let data = v.get("data").cloned();
    if !matches!(data, Some(Value::Array(_))) {
        return Err(WireError::Field("packet.data"));
    }
    Ok(Packet {
        kind,
        nsp: v
            .get("nsp")
            .and_then(Value::as_str)
            .unwrap_or("/")
            .to_owned(),
        id: v.get("id").and_then(Value::as_u64),
        data,
        attachments,
    })
}

/// Parses JSON (first byte `{`) or msgpack into JSON with binary placeholders.
fn parse(payload: &[u8]) -> Result<(Value, Vec<Bytes>), WireError> {
    if payload.first() == Some(&b'{') {
        return Ok((serde_json::from_slice(payload)?, Vec::new()));
    }
    Ok(to_json(msgpack::decode(payload)?))
}

fn str_field(v: &Value, key: &'static str) -> Result<String, WireError> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or(WireError::Field(key))
}

fn strings(v: &Value, key: &'static str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// A socket in a fetch-sockets answer: the engine's [`SocketInfo`], in Node's shape
/// `{id, handshake, rooms, data}`.
fn socket_json(s: &SocketInfo) -> Value {
    json!({"id": s.id, "handshake": s.handshake, "rooms": s.rooms, "data": s.data})
}

fn sockets_from_json(v: Option<&Value>) -> Vec<SocketInfo> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| {
                    Some(SocketInfo {
                        id: s.get("id")?.as_str()?.to_owned(),
                        handshake: s.get("handshake").cloned().unwrap_or(Value::Null),
                        rooms: strings(s, "rooms"),
                        data: s.get("data").cloned().unwrap_or(Value::Null),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `@socket.io/redis-adapter` 8.x.
pub(crate) mod redis_adapter {
    use super::*;

    /// The channels of one namespace.
    #[derive(Debug, Clone)]
    pub(crate) struct Channels {
        pub(crate) broadcast: String,
        pub(crate) pattern: String,
        pub(crate) request: String,
        pub(crate) response: String,
    }

    impl Channels {
        pub(crate) fn new(prefix: &str, nsp: &str) -> Self {
            let broadcast = format!("{prefix}#{nsp}#");
            Channels {
                pattern: format!("{broadcast}*"),
                broadcast,
                request: format!("{prefix}-request#{nsp}#"),
                response: format!("{prefix}-response#{nsp}#"),
            }
        }

        /// The channel of a broadcast to exactly one room.
        pub(crate) fn room(&self, room: &str) -> String {
            format!("{}{room}#", self.broadcast)
        }

        /// Where answers for node `uid` may also go (`publishOnSpecificResponseChannel`).
        pub(crate) fn specific_response(&self, uid: &str) -> String {
            format!("{}{uid}#", self.response)
        }
    }

    /// What a received channel is.
    #[derive(Debug, PartialEq)]
    pub(crate) enum ChannelKind {
        Broadcast { nsp: String, room: Option<String> },
        Request { nsp: String },
        Response,
    }

    /// Classifies a channel of this prefix. Namespace names never contain `#`.
    pub(crate) fn classify_channel(prefix: &str, channel: &str) -> Option<ChannelKind> {
        if let Some(rest) = channel.strip_prefix(&format!("{prefix}-request#")) {
            return Some(ChannelKind::Request {
                nsp: rest.strip_suffix('#')?.to_owned(),
            });
        }
        if channel.starts_with(&format!("{prefix}-response#")) {
            return Some(ChannelKind::Response);
        }
        let rest = channel
            .strip_prefix(&format!("{prefix}#"))?
            .strip_suffix('#')?;
        Some(match rest.split_once('#') {
            Some((nsp, room)) => ChannelKind::Broadcast {
                nsp: nsp.to_owned(),
                room: Some(room.to_owned()),
            },
            None => ChannelKind::Broadcast {
                nsp: rest.to_owned(),
                room: None,
            },
        })
    }

    /// A broadcast: notepack `[uid, packet, opts]`.
    #[derive(Debug, Clone)]
    pub(crate) struct BroadcastMessage {
        pub(crate) uid: String,
        pub(crate) packet: Packet,
        pub(crate) opts: BroadcastOpts,
    }

    impl BroadcastMessage {
        pub(crate) fn encode(&self) -> Vec<u8> {
            let value = json!([self.uid, packet_json(&self.packet), self.opts.to_json(true)]);
            encode_notepack(&from_json(&value, &self.packet.attachments))
        }

        pub(crate) fn decode(payload: &[u8]) -> Result<Self, WireError> {
            let (value, attachments) = to_json(msgpack::decode(payload)?);
            let Value::Array(parts) = value else {
                return Err(WireError::Field("message"));
            };
            let [uid, packet, opts] = parts.as_slice() else {
                return Err(WireError::Field("message"));
            };
            Ok(BroadcastMessage {
                uid: uid.as_str().unwrap_or_default().to_owned(),
                packet: packet_from_json(packet, attachments)?,
                opts: BroadcastOpts::from_json(opts),
            })
        }
    }

    /// Who a remote join/leave/disconnect targets.
    #[derive(Debug, Clone)]
    pub(crate) enum Target {
        Opts(BroadcastOpts),
        Socket { request_id: String, sid: String },
    }

    /// A request on the request channel.
    #[derive(Debug, Clone)]
    pub(crate) enum Request {
        Sockets {
            request_id: String,
            rooms: Vec<String>,
        },
        AllRooms {
            uid: String,
            request_id: String,
        },
        RemoteJoin {
            uid: String,
            target: Target,
            rooms: Vec<String>,
        },
        RemoteLeave {
            uid: String,
            target: Target,
            rooms: Vec<String>,
        },
        RemoteDisconnect {
            uid: String,
            target: Target,
            close: bool,
        },
        RemoteFetch {
            uid: String,
            request_id: String,
            opts: BroadcastOpts,
        },
        ServerSideEmit {
            uid: String,
            request_id: Option<String>,
            data: Vec<Value>,
        },
        Broadcast {
            uid: String,
            request_id: String,
            packet: Packet,
            opts: BroadcastOpts,
        },
    }

    fn target_json(o: &mut Map<String, Value>, target: &Target) {
        match target {
            Target::Opts(opts) => {
                o.insert("opts".into(), opts.to_json(false));
            }
            Target::Socket { request_id, sid } => {
                o.insert("requestId".into(), json!(request_id));
                o.insert("sid".into(), json!(sid));
            }
        }
    }

    impl Request {
        pub(crate) fn encode(&self) -> Vec<u8> {
            let mut o = Map::new();
            match self {
                Request::Sockets { request_id, rooms } => {
                    o.insert("requestId".into(), json!(request_id));
                    o.insert("type".into(), json!(0));
                    o.insert("rooms".into(), json!(rooms));
                }
                Request::AllRooms { uid, request_id } => {
                    o.insert("uid".into(), json!(uid));
                    o.insert("requestId".into(), json!(request_id));
                    o.insert("type".into(), json!(1));
                }
                Request::RemoteJoin { uid, target, rooms }
                | Request::RemoteLeave { uid, target, rooms } => {
                    let kind = if matches!(self, Request::RemoteJoin { .. }) {
                        2
                    } else {
                        3
                    };
                    o.insert("uid".into(), json!(uid));
                    o.insert("type".into(), json!(kind));
                    target_json(&mut o, target);
                    o.insert("rooms".into(), json!(rooms));
                }
                Request::RemoteDisconnect { uid, target, close } => {
                    o.insert("uid".into(), json!(uid));
                    o.insert("type".into(), json!(4));
                    target_json(&mut o, target);
                    o.insert("close".into(), json!(close));
                }
                Request::RemoteFetch {
                    uid,
                    request_id,
                    opts,
                } => {
                    o.insert("uid".into(), json!(uid));
                    o.insert("requestId".into(), json!(request_id));
                    o.insert("type".into(), json!(5));
                    o.insert("opts".into(), opts.to_json(false));
                }
                Request::ServerSideEmit {
                    uid,
                    request_id,
                    data,
                } => {
                    o.insert("uid".into(), json!(uid));
                    if let Some(id) = request_id {
                        o.insert("requestId".into(), json!(id));
                    }
                    o.insert("type".into(), json!(6));
                    o.insert("data".into(), json!(data));
                }
                Request::Broadcast {
                    uid,
                    request_id,
                    packet,
                    opts,
                } => {
                    o.insert("uid".into(), json!(uid));
                    o.insert("requestId".into(), json!(request_id));
                    o.insert("type".into(), json!(7));
                    o.insert("packet".into(), packet_json(packet));
                    o.insert("opts".into(), opts.to_json(true));
                    return encode_notepack(&from_json(&Value::Object(o), &packet.attachments));
                }
            }
            Value::Object(o).to_string().into_bytes()
        }

        pub(crate) fn decode(payload: &[u8]) -> Result<Self, WireError> {
            let (v, attachments) = parse(payload)?;
            let uid = v
                .get("uid")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let request_id = v
                .get("requestId")
                .and_then(Value::as_str)
                .map(str::to_owned);
            let target = || match (&request_id, v.get("opts")) {
                (_, Some(opts)) => Ok(Target::Opts(BroadcastOpts::from_json(opts))),
                (Some(id), None) => Ok(Target::Socket {
                    request_id: id.clone(),
                    sid: str_field(&v, "sid")?,
                }),
                (None, None) => Err(WireError::Field("opts")),
            };
            let rooms = || {
                let mut r = strings(&v, "rooms");
                if let Some(room) = v.get("room").and_then(Value::as_str) {
                    r.push(room.to_owned());
                }
                r
            };
            let id = || request_id.clone().ok_or(WireError::Field("requestId"));
            Ok(match v.get("type").and_then(Value::as_u64) {
                Some(0) => Request::Sockets {
                    request_id: id()?,
                    rooms: rooms(),
                },
                Some(1) => Request::AllRooms {
                    uid,
                    request_id: id()?,
                },
                Some(2) => Request::RemoteJoin {
                    uid,
                    target: target()?,
                    rooms: rooms(),
                },
                Some(3) => Request::RemoteLeave {
                    uid,
                    target: target()?,
                    rooms: rooms(),
                },
                Some(4) => Request::RemoteDisconnect {
                    uid,
                    target: target()?,
                    close: v.get("close").and_then(Value::as_bool).unwrap_or(false),
                },
                Some(5) => Request::RemoteFetch {
                    uid,
                    request_id: id()?,
                    opts: BroadcastOpts::from_json(v.get("opts").unwrap_or(&Value::Null)),
                },
                Some(6) => Request::ServerSideEmit {
                    uid,
                    request_id,
                    data: v
                        .get("data")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default(),
                },
                Some(7) => Request::Broadcast {
                    uid,
                    request_id: id()?,
                    packet: packet_from_json(v.get("packet").unwrap_or(&Value::Null), attachments)?,
                    opts: BroadcastOpts::from_json(v.get("opts").unwrap_or(&Value::Null)),
                },
                Some(other) => return Err(WireError::UnknownType(other)),
                None => return Err(WireError::Field("type")),
            })
        }
    }

    /// An answer on a response channel.
    #[derive(Debug, Clone)]
    pub(crate) enum Response {
        Sockets {
            request_id: String,
            sockets: Vec<String>,
        },
        AllRooms {
            request_id: String,
            rooms: Vec<String>,
        },
        Done {
            request_id: String,
        },
        RemoteFetch {
            request_id: String,
            sockets: Vec<SocketInfo>,
        },
        ServerSideEmit {
            request_id: String,
            data: Value,
        },
        BroadcastClientCount {
            request_id: String,
            client_count: usize,
        },
        BroadcastAck {
            request_id: String,
            packet: Value,
        },
    }

    impl Response {
        pub(crate) fn encode(&self) -> Vec<u8> {
            let v = match self {
                Response::Sockets {
                    request_id,
                    sockets,
                } => {
                    json!({"requestId": request_id, "sockets": sockets})
                }
                Response::AllRooms { request_id, rooms } => {
                    json!({"requestId": request_id, "rooms": rooms})
                }
                Response::Done { request_id } => json!({"requestId": request_id}),
                Response::RemoteFetch {
                    request_id,
                    sockets,
                } => json!({
                    "requestId": request_id,
                    "sockets": sockets.iter().map(socket_json).collect::<Vec<_>>(),
                }),
                Response::ServerSideEmit { request_id, data } => {
                    json!({"type": 6, "requestId": request_id, "data": data})
                }
                Response::BroadcastClientCount {
                    request_id,
                    client_count,
                } => {
                    json!({"type": 8, "requestId": request_id, "clientCount": client_count})
                }
                Response::BroadcastAck { request_id, packet } => {
                    let v = json!({"type": 9, "requestId": request_id, "packet": packet});
                    return encode_notepack(&from_json(&v, &[]));
                }
            };
            v.to_string().into_bytes()
        }

        /// Decodes an answer. Answers without a type are told apart by their fields,
        /// as Node matches them to the request they answer.
        pub(crate) fn decode(payload: &[u8]) -> Result<Self, WireError> {
            let (v, _) = parse(payload)?;
            let request_id = str_field(&v, "requestId")?;
            Ok(match v.get("type").and_then(Value::as_u64) {
                Some(6) => Response::ServerSideEmit {
                    request_id,
                    data: v.get("data").cloned().unwrap_or(Value::Null),
                },
                Some(8) => Response::BroadcastClientCount {
                    request_id,
                    client_count: v
                        .get("clientCount")
                        .and_then(Value::as_u64)
                        .and_then(|n| usize::try_from(n).ok())
                        .unwrap_or(0),
                },
                Some(9) => Response::BroadcastAck {
                    request_id,
                    packet: v.get("packet").cloned().unwrap_or(Value::Null),
                },
                _ => match (v.get("sockets"), v.get("rooms")) {
                    (Some(Value::Array(s)), _)
                        if s.iter().all(Value::is_string) && !s.is_empty() =>
                    {
                        Response::Sockets {
                            request_id,
                            sockets: strings(&v, "sockets"),
                        }
                    }
                    (Some(s), _) => Response::RemoteFetch {
                        request_id,
                        sockets: sockets_from_json(Some(s)),
                    },
                    (None, Some(_)) => Response::AllRooms {
                        request_id,
                        rooms: strings(&v, "rooms"),
                    },
                    (None, None) => Response::Done { request_id },
                },
            })
        }
    }
}

/// `@socket.io/redis-streams-adapter` 0.3 (socket.io-adapter's `ClusterAdapter`).
pub(crate) mod streams {
    use super::*;

    /// Requests and broadcasts of namespace `nsp`.
    pub(crate) fn public_channel(prefix: &str, nsp: &str) -> String {
        format!("{prefix}#{nsp}#")
    }

    /// Answers for node `uid`.
    pub(crate) fn private_channel(prefix: &str, nsp: &str, uid: &str) -> String {
        format!("{prefix}#{nsp}#{uid}#")
    }

    /// A cluster message (Node's `ClusterMessage` / `ClusterResponse`).
    #[derive(Debug, Clone)]
    pub(crate) struct ClusterMessage {
        pub(crate) uid: String,
        pub(crate) nsp: String,
        pub(crate) body: MessageBody,
    }

    /// The typed `type` + `data` of a cluster message.
    #[derive(Debug, Clone)]
    pub(crate) enum MessageBody {
        Broadcast {
            packet: Packet,
            opts: BroadcastOpts,
            request_id: Option<String>,
        },
        SocketsJoin {
            opts: BroadcastOpts,
            rooms: Vec<String>,
        },
        SocketsLeave {
            opts: BroadcastOpts,
            rooms: Vec<String>,
        },
        DisconnectSockets {
            opts: BroadcastOpts,
            close: bool,
        },
        FetchSockets {
            opts: BroadcastOpts,
            request_id: String,
        },
        FetchSocketsResponse {
            request_id: String,
            sockets: Vec<SocketInfo>,
        },
        ServerSideEmit {
            request_id: Option<String>,
            packet: Vec<Value>,
        },
        ServerSideEmitResponse {
            request_id: String,
            packet: Value,
        },
        BroadcastClientCount {
            request_id: String,
            client_count: usize,
        },
        BroadcastAck {
            request_id: String,
            packet: Value,
        },
        /// Heartbeats, adapter close and anything newer: no data we use.
        Other(u64),
    }

    impl MessageBody {
        fn kind(&self) -> u64 {
            match self {
                MessageBody::Broadcast { .. } => 3,
                MessageBody::SocketsJoin { .. } => 4,
                MessageBody::SocketsLeave { .. } => 5,
                MessageBody::DisconnectSockets { .. } => 6,
                MessageBody::FetchSockets { .. } => 7,
                MessageBody::FetchSocketsResponse { .. } => 8,
                MessageBody::ServerSideEmit { .. } => 9,
                MessageBody::ServerSideEmitResponse { .. } => 10,
                MessageBody::BroadcastClientCount { .. } => 11,
                MessageBody::BroadcastAck { .. } => 12,
                MessageBody::Other(k) => *k,
            }
        }

        /// `data` as JSON with placeholders, and the attachments they reference.
        fn data(&self) -> Option<(Value, &[Bytes])> {
            Some(match self {
                MessageBody::Broadcast {
                    packet,
                    opts,
                    request_id,
                } => {
                    let mut o = Map::new();
                    o.insert("packet".into(), packet_json(packet));
                    if let Some(id) = request_id {
                        o.insert("requestId".into(), json!(id));
                    }
                    o.insert("opts".into(), opts.to_json(true));
                    (Value::Object(o), packet.attachments.as_slice())
                }
                MessageBody::SocketsJoin { opts, rooms }
                | MessageBody::SocketsLeave { opts, rooms } => {
                    (json!({"opts": opts.to_json(true), "rooms": rooms}), &[])
                }
                MessageBody::DisconnectSockets { opts, close } => {
                    (json!({"opts": opts.to_json(true), "close": close}), &[])
                }
                MessageBody::FetchSockets { opts, request_id } => (
                    json!({"opts": opts.to_json(true), "requestId": request_id}),
                    &[],
                ),
                MessageBody::FetchSocketsResponse {
                    request_id,
                    sockets,
                } => (
                    json!({"requestId": request_id,
                           "sockets": sockets.iter().map(socket_json).collect::<Vec<_>>()}),
                    &[],
                ),
                MessageBody::ServerSideEmit { request_id, packet } => {
                    let mut o = Map::new();
                    if let Some(id) = request_id {
                        o.insert("requestId".into(), json!(id));
                    }
                    o.insert("packet".into(), json!(packet));
                    (Value::Object(o), &[])
                }
                MessageBody::ServerSideEmitResponse { request_id, packet }
                | MessageBody::BroadcastAck { request_id, packet } => {
                    (json!({"requestId": request_id, "packet": packet}), &[])
                }
                MessageBody::BroadcastClientCount {
                    request_id,
                    client_count,
                } => (
                    json!({"requestId": request_id, "clientCount": client_count}),
                    &[],
                ),
                MessageBody::Other(_) => return None,
            })
        }

        fn from_data(kind: u64, data: Value, attachments: Vec<Bytes>) -> Result<Self, WireError> {
            let opts = || BroadcastOpts::from_json(data.get("opts").unwrap_or(&Value::Null));
            let request_id = data
                .get("requestId")
                .and_then(Value::as_str)
                .map(str::to_owned);
            let id = || request_id.clone().ok_or(WireError::Field("requestId"));
            Ok(match kind {
                3 => MessageBody::Broadcast {
                    packet: packet_from_json(
                        data.get("packet").unwrap_or(&Value::Null),
                        attachments,
                    )?,
                    opts: opts(),
                    request_id: request_id.clone(),
                },
                4 => MessageBody::SocketsJoin {
                    opts: opts(),
                    rooms: strings(&data, "rooms"),
                },
                5 => MessageBody::SocketsLeave {
                    opts: opts(),
                    rooms: strings(&data, "rooms"),
                },
                6 => MessageBody::DisconnectSockets {
                    opts: opts(),
                    close: data.get("close").and_then(Value::as_bool).unwrap_or(false),
                },
                7 => MessageBody::FetchSockets {
                    opts: opts(),
                    request_id: id()?,
                },
                8 => MessageBody::FetchSocketsResponse {
                    request_id: id()?,
                    sockets: sockets_from_json(data.get("sockets")),
                },
                9 => MessageBody::ServerSideEmit {
                    request_id: request_id.clone(),
                    packet: data
                        .get("packet")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default(),
                },
                10 => MessageBody::ServerSideEmitResponse {
                    request_id: id()?,
                    packet: data.get("packet").cloned().unwrap_or(Value::Null),
                },
                11 => MessageBody::BroadcastClientCount {
                    request_id: id()?,
                    client_count: data
                        .get("clientCount")
                        .and_then(Value::as_u64)
                        .and_then(|n| usize::try_from(n).ok())
                        .unwrap_or(0),
                },
                12 => MessageBody::BroadcastAck {
                    request_id: id()?,
                    packet: data.get("packet").cloned().unwrap_or(Value::Null),
                },
                other => MessageBody::Other(other),
            })
        }
    }

    impl ClusterMessage {
        /// Stream entry fields: `uid`, `nsp`, `type`, `data` (JSON, or base64 msgpack
        /// when the data carries binary).
        pub(crate) fn encode_entry(&self) -> Vec<(&'static str, String)> {
            let mut fields = vec![
                ("uid", self.uid.clone()),
                ("nsp", self.nsp.clone()),
                ("type", self.body.kind().to_string()),
            ];
            if let Some((data, attachments)) = self.body.data() {
                let encoded = if attachments.is_empty() {
                    data.to_string()
                } else {
                    base64::engine::general_purpose::STANDARD
                        .encode(encode_msgpack(&from_json(&data, attachments)))
                };
                fields.push(("data", encoded));
            }
            fields
        }

        pub(crate) fn decode_entry(fields: &[(String, Vec<u8>)]) -> Result<Self, WireError> {
            let get = |k: &'static str| {
                fields
                    .iter()
                    .find(|(name, _)| name == k)
                    .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            };
            let uid = get("uid").ok_or(WireError::Field("uid"))?;
            let nsp = get("nsp").ok_or(WireError::Field("nsp"))?;
            let kind: u64 = get("type")
                .and_then(|t| t.parse().ok())
                .ok_or(WireError::Field("type"))?;
            let (data, attachments) = match get("data") {
                None => (Value::Null, Vec::new()),
                Some(d) if d.starts_with('{') => (serde_json::from_str(&d)?, Vec::new()),
                Some(d) => {
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(d.as_bytes())
                        .map_err(|_| WireError::Base64)?;
                    to_json(msgpack::decode(&bytes)?)
                }
            };
            Ok(ClusterMessage {
                uid,
                nsp,
                body: MessageBody::from_data(kind, data, attachments)?,
            })
        }

        /// The whole message msgpack'd, as sent over pub/sub.
        pub(crate) fn encode_pubsub(&self) -> Vec<u8> {
            let mut o = Map::new();
            o.insert("type".into(), json!(self.body.kind()));
            let mut attachments: &[Bytes] = &[];
            if let Some((data, a)) = self.body.data() {
                o.insert("data".into(), data);
                attachments = a;
            }
            o.insert("uid".into(), json!(self.uid));
            o.insert("nsp".into(), json!(self.nsp));
            encode_msgpack(&from_json(&Value::Object(o), attachments))
        }

        pub(crate) fn decode_pubsub(payload: &[u8]) -> Result<Self, WireError> {
            let (v, attachments) = to_json(msgpack::decode(payload)?);
            let kind = v
                .get("type")
                .and_then(Value::as_u64)
                .ok_or(WireError::Field("type"))?;
            Ok(ClusterMessage {
                uid: str_field(&v, "uid")?,
                nsp: str_field(&v, "nsp")?,
                body: MessageBody::from_data(
                    kind,
                    v.get("data").cloned().unwrap_or(Value::Null),
                    attachments,
                )?,
            })
        }
    }

    /// The value at `sio:session:<pid>`: base64 of msgpack `{sid, pid, rooms, data}`,
    /// plus `offset` (where the socket connected), which Node ignores.
    #[derive(Debug, Clone, PartialEq)]
    pub(crate) struct StoredSession {
        pub(crate) sid: String,
        pub(crate) pid: String,
        pub(crate) rooms: Vec<String>,
        pub(crate) data: Value,
        pub(crate) offset: Option<String>,
    }

    impl StoredSession {
        pub(crate) fn encode(&self) -> String {
            let mut o = Map::new();
            o.insert("sid".into(), json!(self.sid));
            o.insert("pid".into(), json!(self.pid));
            o.insert("rooms".into(), json!(self.rooms));
            o.insert("data".into(), self.data.clone());
            if let Some(offset) = &self.offset {
                o.insert("offset".into(), json!(offset));
            }
            base64::engine::general_purpose::STANDARD
                .encode(encode_msgpack(&from_json(&Value::Object(o), &[])))
        }

        pub(crate) fn decode(raw: &str) -> Result<Self, WireError> {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(raw.trim())
                .map_err(|_| WireError::Base64)?;
            let (v, _) = to_json(msgpack::decode(&bytes)?);
            Ok(StoredSession {
                sid: str_field(&v, "sid")?,
                pid: str_field(&v, "pid")?,
                rooms: strings(&v, "rooms"),
                data: v.get("data").cloned().unwrap_or(Value::Null),
                offset: v.get("offset").and_then(Value::as_str).map(str::to_owned),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::redis_adapter::*;
    use super::streams::*;
    use super::*;

    fn packet(binary: bool) -> Packet {
        let mut p = Packet::new(PacketType::Event, "/", Some(json!(["ev", 1, {"a": "b"}])));
        if binary {
            p.data = Some(json!(["ev", {"_placeholder": true, "num": 0}]));
            p.attachments = vec![Bytes::from_static(b"\x01\x02")];
        }
        p
    }

    #[test]
    fn channels_classify_back() {
        let c = Channels::new("socket.io", "/chat");
        assert_eq!(
            classify_channel("socket.io", &c.room("r1")),
            Some(ChannelKind::Broadcast {
                nsp: "/chat".into(),
                room: Some("r1".into())
            })
        );
        assert_eq!(
            classify_channel("socket.io", &c.broadcast),
            Some(ChannelKind::Broadcast {
                nsp: "/chat".into(),
                room: None
            })
        );
        assert_eq!(
            classify_channel("socket.io", &c.request),
            Some(ChannelKind::Request {
                nsp: "/chat".into()
            })
        );
        assert_eq!(
            classify_channel("socket.io", &c.specific_response("abc")),
            Some(ChannelKind::Response)
        );
        assert_eq!(classify_channel("socket.io", "other#x#"), None);
    }

    #[test]
    fn broadcasts_round_trip_with_binary() {
        for binary in [false, true] {
            let m = BroadcastMessage {
                uid: "abc".into(),
                packet: packet(binary),
                opts: BroadcastOpts {
                    rooms: vec!["r".into()],
                    ..Default::default()
                },
            };
            let back = BroadcastMessage::decode(&m.encode()).unwrap();
            assert_eq!(back.packet, m.packet);
            assert_eq!(back.opts, m.opts);
        }
    }

    #[test]
    fn stream_entries_and_pubsub_messages_round_trip() {
        for binary in [false, true] {
            let m = ClusterMessage {
                uid: "u".into(),
                nsp: "/".into(),
                body: MessageBody::Broadcast {
                    packet: packet(binary),
                    opts: BroadcastOpts::default(),
                    request_id: None,
                },
            };
            let fields: Vec<(String, Vec<u8>)> = m
                .encode_entry()
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.into_bytes()))
                .collect();
            let back = ClusterMessage::decode_entry(&fields).unwrap();
            let MessageBody::Broadcast { packet: p, .. } = back.body else {
                panic!()
            };
            assert_eq!(p, packet(binary));
            let back = ClusterMessage::decode_pubsub(&m.encode_pubsub()).unwrap();
            assert!(matches!(back.body, MessageBody::Broadcast { .. }));
        }
    }

    #[test]
    fn sessions_round_trip_and_garbage_is_an_error() {
        let s = StoredSession {
            sid: "s".into(),
            pid: "p".into(),
            rooms: vec!["s".into(), "r".into()],
            data: json!({"n": 1}),
            offset: Some("1-0".into()),
        };
        assert_eq!(StoredSession::decode(&s.encode()).unwrap(), s);
        assert!(StoredSession::decode("!!!").is_err());
        assert!(Request::decode(b"{nope").is_err());
        assert!(Response::decode(b"\xc1").is_err());
    }
}
