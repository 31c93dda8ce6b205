//! One socket in an answer to `fetchSockets()`, as every adapter serializes it.

use super::CodecError;
use super::msgpack::{self, MsgValue};
use super::read::{Obj, ObjBuilder, strings, take};

/// A socket living on another node: `{id, handshake, rooms, data}` (Node removes
/// `handshake.sessionStore` first).
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteSocket {
    /// The socket id.
    pub id: String,
    /// The handshake details (`headers`, `time`, `address`, `xdomain`, `secure`,
    /// `issued`, `url`, `query`, `auth`), kept as JSON: they never carry binary.
    pub handshake: serde_json::Value,
    /// The rooms the socket is in (its own id included).
    pub rooms: Vec<String>,
    /// `socket.data`; `Nil` when Node left it `undefined`.
    pub data: MsgValue,
}

impl RemoteSocket {
    pub(crate) fn to_value(&self) -> MsgValue {
        ObjBuilder::new()
            .field("id", self.id.as_str())
            .field("handshake", msgpack::from_json(&self.handshake, &[]))
            .field("rooms", strings(&self.rooms))
            .field("data", self.data.clone())
            .build()
    }

    pub(crate) fn from_value(mut value: MsgValue) -> Result<Self, CodecError> {
        let obj = Obj::new(&value, "sockets")?;
        let id = obj.room("id")?;
        let rooms = obj.rooms("rooms")?;
        // Binary inside a handshake is impossible (it is built from HTTP request data);
        // were it there, its placeholders would dangle.
        let handshake = take(&mut value, "handshake")
            .map_or(serde_json::Value::Null, |h| msgpack::to_json(h).0);
        let data = take(&mut value, "data").unwrap_or_default();
        Ok(RemoteSocket {
            id,
            handshake,
            rooms,
            data,
        })
    }

    /// Reads the `sockets` array of a response; absent means none.
    pub(crate) fn list_from(value: Option<MsgValue>) -> Result<Vec<Self>, CodecError> {
        match value {
            None => Ok(Vec::new()),
            Some(MsgValue::Array(items)) => {
                items.into_iter().map(RemoteSocket::from_value).collect()
            }
            Some(_) => Err(CodecError::Field("sockets")),
        }
    }

    pub(crate) fn list_to_value(sockets: &[RemoteSocket]) -> MsgValue {
        MsgValue::Array(sockets.iter().map(RemoteSocket::to_value).collect())
    }
}
