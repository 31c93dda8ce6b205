//! Responses published on `socket.io-response#/nsp#` (or the requester's specific
//! response channel).
//!
//! Most responses carry no `type`: Node matches them to the pending request by
//! `requestId` and reads them according to that request's type. Decoding therefore
//! happens in two steps, [`RawResponse::decode`] then [`RawResponse::into_response`].

use super::RequestType;
use crate::cluster::CodecError;
use crate::cluster::RemoteSocket;
use crate::cluster::js::stringify;
use crate::cluster::msgpack::{self, MsgValue};
use crate::cluster::read::{self, Obj, ObjBuilder, strings, take, take_raw};

/// A response to a [`super::Request`].
#[derive(Debug, Clone, PartialEq)]
pub enum Response {
    /// To `SOCKETS`: `{requestId, sockets}` (socket ids).
    Sockets {
        /// The request's id.
        request_id: String,
        /// Ids of the matching local sockets.
        sockets: Vec<String>,
    },
    /// To `ALL_ROOMS`: `{requestId, rooms}`.
    AllRooms {
        /// The request's id.
        request_id: String,
        /// The node's rooms.
        rooms: Vec<String>,
    },
    /// To `REMOTE_JOIN`/`REMOTE_LEAVE`/`REMOTE_DISCONNECT` of one socket: `{requestId}`,
    /// sent by the node that has the socket.
    Done {
        /// The request's id.
        request_id: String,
    },
    /// To `REMOTE_FETCH`: `{requestId, sockets}` (socket details).
    FetchSockets {
        /// The request's id.
        request_id: String,
        /// The matching local sockets.
        sockets: Vec<RemoteSocket>,
    },
    /// To `SERVER_SIDE_EMIT` with a request id: `{type: 6, requestId, data}`, the one
    /// argument the receiving handler acknowledged with.
    ServerSideEmit {
        /// The request's id.
        request_id: String,
        /// The acknowledgement argument; `None` when it was `undefined` (the key is
        /// then absent).
        data: Option<MsgValue>,
    },
    /// To `BROADCAST`: `{type: 8, requestId, clientCount}`, how many clients a node sent
    /// the packet to.
    BroadcastClientCount {
        /// The request's id.
        request_id: String,
        /// The number of clients.
        client_count: u64,
    },
    /// To `BROADCAST`: notepack `{type: 9, requestId, packet}`, one client's
    /// acknowledgement (its first argument, binary kept).
    BroadcastAck {
        /// The request's id.
        request_id: String,
        /// The first acknowledgement argument; `None` when `undefined`.
        packet: Option<MsgValue>,
    },
}

impl Response {
    /// The id of the request this answers.
    pub fn request_id(&self) -> &str {
        match self {
            Response::Sockets { request_id, .. }
            | Response::AllRooms { request_id, .. }
            | Response::Done { request_id }
            | Response::FetchSockets { request_id, .. }
            | Response::ServerSideEmit { request_id, .. }
            | Response::BroadcastClientCount { request_id, .. }
            | Response::BroadcastAck { request_id, .. } => request_id,
        }
    }

    /// The bytes Node publishes: JSON with Node's key order, except
    /// [`Response::BroadcastAck`], which is notepack.
    pub fn encode(&self) -> Vec<u8> {
        let value = self.to_value();
        match self {
            Response::BroadcastAck { .. } => msgpack::encode_notepack(&value),
            _ => stringify(&value).into_bytes(),
        }
    }

    fn to_value(&self) -> MsgValue {
        let code = |t: RequestType| i64::from(t.code());
        match self {
            Response::Sockets {
                request_id,
                sockets,
            } => ObjBuilder::new()
                .field("requestId", request_id.as_str())
                .field("sockets", strings(sockets)),
            Response::AllRooms { request_id, rooms } => ObjBuilder::new()
                .field("requestId", request_id.as_str())
                .field("rooms", strings(rooms)),
            Response::Done { request_id } => {
                ObjBuilder::new().field("requestId", request_id.as_str())
            }
            Response::FetchSockets {
                request_id,
                sockets,
            } => ObjBuilder::new()
                .field("requestId", request_id.as_str())
                .field("sockets", RemoteSocket::list_to_value(sockets)),
            Response::ServerSideEmit { request_id, data } => ObjBuilder::new()
                .field("type", code(RequestType::ServerSideEmit))
                .field("requestId", request_id.as_str())
                .opt_field("data", data.clone()),
            Response::BroadcastClientCount {
                request_id,
                client_count,
            } => ObjBuilder::new()
                .field("type", code(RequestType::BroadcastClientCount))
                .field("requestId", request_id.as_str())
                .field("clientCount", *client_count),
            Response::BroadcastAck { request_id, packet } => ObjBuilder::new()
                .field("type", code(RequestType::BroadcastAck))
                .field("requestId", request_id.as_str())
                .opt_field("packet", packet.clone()),
        }
        .build()
    }
}

/// A response parsed but not yet typed: look up the pending request by
/// [`RawResponse::request_id`], then type it with [`RawResponse::into_response`].
#[derive(Debug, Clone, PartialEq)]
pub struct RawResponse {
    /// The parsed object.
    value: MsgValue,
    /// Its `requestId`.
    request_id: Option<String>,
}

impl RawResponse {
    /// Parses a response: JSON when the first byte is `{`, notepack otherwise.
    pub fn decode(msg: &[u8]) -> Result<Self, CodecError> {
        let value = read::json_or_msgpack(msg)?;
        let request_id = Obj::new(&value, "response")?.opt_str("requestId")?;
        Ok(RawResponse { value, request_id })
    }

    /// A response's `requestId` read without decoding the rest: MessagePack by
    /// skipping every other field ([`msgpack::peek_str`]), JSON by parsing it with
    /// every other value ignored (nothing allocated for them). `None` when it cannot be
    /// read so (no such string, a repeated key, malformed): then decode it whole.
    ///
    /// Every node reads every answer on the shared response channel, most of them to
    /// other nodes' requests, and each up to 16 MiB that decodes to as much as 32
    /// times that: a node looks at the id first and decodes only its own.
    pub fn peek_request_id(msg: &[u8]) -> Option<String> {
        #[derive(serde::Deserialize)]
        struct Peek {
            #[serde(rename = "requestId")]
            request_id: Option<String>,
        }
        match msg.first()? {
            b'{' => serde_json::from_slice::<Peek>(msg).ok()?.request_id,
            _ => msgpack::peek_str(msg, "requestId"),
        }
    }

    /// The `requestId`; Node ignores responses without one.
    pub fn request_id(&self) -> Option<&str> {
        self.request_id.as_deref()
    }

    /// Reads the response as the answer to a request of type `request`. For
    /// [`RequestType::Broadcast`] (and its two response types) the response's own
    /// `type` tells a client count from an acknowledgement. Missing `sockets`/`rooms`
    /// lists read as empty: Node counts such a response without using it.
    pub fn into_response(mut self, request: RequestType) -> Result<Response, CodecError> {
        let request_id = self
            .request_id
            .take()
            .ok_or(CodecError::Field("requestId"))?;
        let obj = Obj::new(&self.value, "response")?;
        Ok(match request {
            RequestType::Sockets => Response::Sockets {
                request_id,
                sockets: obj.rooms("sockets")?,
            },
            RequestType::AllRooms => Response::AllRooms {
                request_id,
                rooms: obj.rooms("rooms")?,
            },
            RequestType::RemoteJoin | RequestType::RemoteLeave | RequestType::RemoteDisconnect => {
                Response::Done { request_id }
            }
            RequestType::RemoteFetch => Response::FetchSockets {
                request_id,
                sockets: RemoteSocket::list_from(take(&mut self.value, "sockets"))?,
            },
            RequestType::ServerSideEmit => Response::ServerSideEmit {
                request_id,
                data: take_raw(&mut self.value, "data"),
            },
            RequestType::Broadcast
            | RequestType::BroadcastClientCount
            | RequestType::BroadcastAck => {
                let code = obj.kind()?;
                match RequestType::from_code(code) {
                    Some(RequestType::BroadcastClientCount) => Response::BroadcastClientCount {
                        request_id,
                        client_count: obj.u64("clientCount")?,
                    },
                    Some(RequestType::BroadcastAck) => Response::BroadcastAck {
                        request_id,
                        packet: take_raw(&mut self.value, "packet"),
                    },
                    _ => return Err(CodecError::UnknownType(code)),
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn typed(msg: &[u8], request: RequestType) -> Result<Response, CodecError> {
        RawResponse::decode(msg)?.into_response(request)
    }

    #[test]
    fn untyped_responses_are_read_by_request_type() {
        let msg = br#"{"requestId":"r","sockets":[]}"#;
        assert_eq!(
            typed(msg, RequestType::Sockets),
            Ok(Response::Sockets {
                request_id: "r".into(),
                sockets: vec![]
            })
        );
        assert_eq!(
            typed(msg, RequestType::RemoteFetch),
            Ok(Response::FetchSockets {
                request_id: "r".into(),
                sockets: vec![]
            })
        );
        assert_eq!(
            typed(br#"{"requestId":"r"}"#, RequestType::RemoteLeave),
            Ok(Response::Done {
                request_id: "r".into()
            })
        );
        assert_eq!(
            typed(br#"{"requestId":"r"}"#, RequestType::AllRooms),
            Ok(Response::AllRooms {
                request_id: "r".into(),
                rooms: vec![]
            })
        );
    }

    #[test]
    fn broadcast_responses_carry_their_type() {
        let count = Response::BroadcastClientCount {
            request_id: "r".into(),
            client_count: 3,
        };
        assert_eq!(
            String::from_utf8(count.encode()).unwrap(),
            r#"{"type":8,"requestId":"r","clientCount":3}"#
        );
        assert_eq!(typed(&count.encode(), RequestType::Broadcast), Ok(count));
        let ack = Response::BroadcastAck {
            request_id: "r".into(),
            packet: Some(MsgValue::Bin(Bytes::from_static(&[1]))),
        };
        assert_eq!(ack.encode()[0], 0x83);
        assert_eq!(typed(&ack.encode(), RequestType::Broadcast), Ok(ack));
        let undefined = Response::BroadcastAck {
            request_id: "r".into(),
            packet: None,
        };
        assert_eq!(
            typed(&undefined.encode(), RequestType::Broadcast),
            Ok(undefined)
        );
        assert_eq!(
            typed(br#"{"type":6,"requestId":"r"}"#, RequestType::Broadcast),
            Err(CodecError::UnknownType(6))
        );
    }

    #[test]
    fn server_side_emit_keeps_null_apart_from_undefined() {
        assert_eq!(
            typed(
                br#"{"type":6,"requestId":"r","data":null}"#,
                RequestType::ServerSideEmit
            ),
            Ok(Response::ServerSideEmit {
                request_id: "r".into(),
                data: Some(MsgValue::Nil)
            })
        );
        assert_eq!(
            typed(
                br#"{"type":6,"requestId":"r"}"#,
                RequestType::ServerSideEmit
            ),
            Ok(Response::ServerSideEmit {
                request_id: "r".into(),
                data: None
            })
        );
    }

    #[test]
    fn malformed_responses() {
        assert_eq!(
            RawResponse::decode(b"[]").unwrap_err(),
            CodecError::TrailingBytes(1)
        );
        assert_eq!(
            RawResponse::decode(&[0xc1]).unwrap_err(),
            CodecError::InvalidMarker(0xc1)
        );
        assert_eq!(
            RawResponse::decode(&[0x90]).unwrap_err(),
            CodecError::Field("response")
        );
        let raw = RawResponse::decode(br#"{"sockets":[]}"#).unwrap();
        assert_eq!(raw.request_id(), None);
        assert_eq!(
            raw.into_response(RequestType::Sockets),
            Err(CodecError::Field("requestId"))
        );
        assert_eq!(
            typed(
                br#"{"requestId":"r","sockets":[{"rooms":[]}]}"#,
                RequestType::RemoteFetch
            ),
            Err(CodecError::Field("id"))
        );
    }
}
