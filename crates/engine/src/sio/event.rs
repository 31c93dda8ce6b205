//! Payloads, received events, acknowledgements and the errors of emitting.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;

use crate::diagnosis::Category;
use switchboard_protocol::socketio::{Packet, PacketType};

use super::socket::Socket;

/// Arguments of an event or an acknowledgement.
///
/// Binary arguments travel as attachments: `args` holds
/// `{"_placeholder":true,"num":N}` markers ([`Payload::binary_arg`] makes one) and
/// `binary[N]` holds the bytes, exactly as on the wire, so echoing or relaying a
/// payload never rebuilds it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Payload {
    /// JSON arguments.
    pub args: Vec<Value>,
    /// Binary attachments referenced by placeholders in `args`.
    pub binary: Vec<Bytes>,
}

impl Payload {
    /// A payload of JSON arguments.
    pub fn new(args: Vec<Value>) -> Self {
        Payload {
            args,
            binary: Vec::new(),
        }
    }

    /// Adds a binary attachment and returns the placeholder to put in `args`.
    pub fn binary_arg(&mut self, data: impl Into<Bytes>) -> Value {
        self.binary.push(data.into());
        switchboard_protocol::socketio::placeholder(self.binary.len() - 1)
    }

    /// The memory the payload holds, estimated by walking its arguments (no
    /// allocation) and adding its attachments' bytes: what a bound on payloads kept
    /// waiting (forwarded events waiting for the backend) charges it.
    pub fn heap_bytes(&self) -> usize {
        self.args
            .iter()
            .map(|v| std::mem::size_of::<Value>() + super::recovery::value_heap(v))
            .sum::<usize>()
            + self.binary.iter().map(Bytes::len).sum::<usize>()
    }

    /// The bytes behind a placeholder argument.
    pub fn binary_of(&self, value: &Value) -> Option<&Bytes> {
        let obj = value.as_object()?;
        if obj.get("_placeholder")?.as_bool()? {
            return self
                .binary
                .get(usize::try_from(obj.get("num")?.as_u64()?).ok()?);
        }
        None
    }
}

impl From<Vec<Value>> for Payload {
    fn from(args: Vec<Value>) -> Self {
        Payload::new(args)
    }
}

impl From<Value> for Payload {
    /// One JSON argument.
    fn from(arg: Value) -> Self {
        Payload::new(vec![arg])
    }
}

impl From<()> for Payload {
    /// No arguments.
    fn from((): ()) -> Self {
        Payload::default()
    }
}

/// Builds the packet of an event.
pub(crate) fn event_packet(nsp: &str, event: &str, payload: Payload, id: Option<u64>) -> Packet {
    let mut data = Vec::with_capacity(payload.args.len() + 1);
    data.push(Value::String(event.to_owned()));
    data.extend(payload.args);
    Packet {
        kind: PacketType::Event,
        nsp: nsp.to_owned(),
        id,
        data: Some(Value::Array(data)),
        attachments: payload.binary,
    }
}

/// An event received from a client.
#[derive(Debug)]
pub struct Event {
    /// The socket that sent it.
    pub socket: Arc<Socket>,
    /// The event name.
    pub name: String,
    /// Its arguments.
    pub payload: Payload,
    ack: Option<AckSender>,
}

impl Event {
    pub(crate) fn new(
        socket: Arc<Socket>,
        name: String,
        payload: Payload,
        ack: Option<AckSender>,
    ) -> Self {
        Event {
            socket,
            name,
            payload,
            ack,
        }
    }

    /// The acknowledgement callback, if the client asked for one. Taking it lets a
    /// handler answer later, from another task.
    pub fn take_ack(&mut self) -> Option<AckSender> {
        self.ack.take()
    }

    /// Whether the client expects an acknowledgement.
    pub fn wants_ack(&self) -> bool {
        self.ack.is_some()
    }
}

/// Answers one client acknowledgement; consumed by [`AckSender::send`].
#[derive(Debug)]
pub struct AckSender {
    socket: Arc<Socket>,
    id: u64,
}

impl AckSender {
    pub(crate) fn new(socket: Arc<Socket>, id: u64) -> Self {
        AckSender { socket, id }
    }

    /// Sends the acknowledgement with these arguments.
    pub fn send(self, payload: impl Into<Payload>) -> Result<(), EmitError> {
        let payload = payload.into();
        let packet = Packet {
            kind: PacketType::Ack,
            nsp: self.socket.namespace().to_owned(),
            id: Some(self.id),
            data: Some(Value::Array(payload.args)),
            attachments: payload.binary,
        };
        self.socket.send_packet(&packet, false)
    }
}

/// Why an emit failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EmitError {
    /// The event name is reserved by Socket.IO (`connect`, `disconnect`, …).
    #[error("reserved event name")]
    ReservedEvent,
    /// The socket is disconnected.
    #[error("socket disconnected")]
    Disconnected,
    /// The client's queue was full; it has been disconnected as a slow consumer.
    #[error("slow consumer")]
    SlowConsumer,
}

/// Why an acknowledgement from the client did not arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AckError {
    /// The timeout elapsed first.
    #[error("acknowledgement timed out")]
    Timeout,
    /// The socket disconnected first.
    #[error("socket disconnected before acknowledging")]
    Disconnected,
    /// The emit itself failed.
    #[error(transparent)]
    Emit(#[from] EmitError),
    /// [`MAX_PENDING_ACKS`](crate::sio::MAX_PENDING_ACKS) acknowledgements of this
    /// socket are already waiting: the event was not sent.
    #[error("too many acknowledgements waiting for this socket")]
    TooManyWaiting,
}

/// A middleware's refusal: sent to the client as `CONNECT_ERROR`
/// `{"message": …, "data": …}`, which `socket.io-client` raises as `connect_error`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectError {
    /// Shown to the client as `err.message`.
    pub message: String,
    /// Optional details, shown as `err.data`.
    pub data: Option<Value>,
    /// What kind of refusal, for its report (not sent): `policy` unless said.
    pub category: Category,
}

impl ConnectError {
    /// A refusal with a message.
    pub fn new(message: impl Into<String>) -> Self {
        ConnectError {
            message: message.into(),
            data: None,
            category: Category::Policy,
        }
    }

    /// Adds details.
    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }

    /// Says what kind of refusal it is, for its report (`auth` for credentials).
    pub fn with_category(mut self, category: Category) -> Self {
        self.category = category;
        self
    }

    /// The code its report names: `data.code` when it is a string, else the message.
    pub(crate) fn code(&self) -> &str {
        self.data
            .as_ref()
            .and_then(|d| d.get("code"))
            .and_then(Value::as_str)
            .unwrap_or(&self.message)
    }

    pub(crate) fn to_value(&self) -> Value {
        let mut obj = serde_json::Map::new();
        obj.insert("message".into(), Value::String(self.message.clone()));
        if let Some(data) = &self.data {
            obj.insert("data".into(), data.clone());
        }
        Value::Object(obj)
    }
}
