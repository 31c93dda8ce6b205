//! What the engine hands to a hook sink: lifecycle events and forwarded client events.
//! Plain data, no behaviour beyond naming the event's wire `type`.

use std::time::SystemTime;

use bytes::Bytes;
use serde_json::Value;

/// Something that happened to a socket or a room, delivered to the backend
/// asynchronously (the engine does not wait for it).
#[derive(Debug, Clone, PartialEq)]
pub enum LifecycleEvent {
    /// A socket connected to a namespace (after authentication succeeded).
    Connected {
        /// The namespace, e.g. `/chat`.
        namespace: String,
        /// The Socket.IO socket id.
        socket_id: String,
        /// The transport it connected over: `polling`, `websocket` or `sse`.
        transport: String,
        /// The client's address, when the deployment allows sharing it.
        address: Option<String>,
        /// The verified token's claims, already scrubbed of what must not leave.
        claims: Option<Value>,
        /// When it happened.
        at: SystemTime,
    },
    /// A socket left a namespace.
    Disconnected {
        /// The namespace.
        namespace: String,
        /// The Socket.IO socket id.
        socket_id: String,
        /// The transport it used last: `polling`, `websocket` or `sse`.
        transport: String,
        /// The classified disconnect reason (see the engine's `DisconnectReason`).
        reason: String,
        /// The diagnosis: `{"category","confidence","evidence"}` (docs/diagnosis.md).
        diagnosis: Option<Value>,
        /// When it happened.
        at: SystemTime,
    },
    /// A room got its first member (cluster-wide when the adapter knows it).
    RoomOccupied {
        /// The namespace.
        namespace: String,
        /// The room.
        room: String,
        /// The socket whose join or leave changed the room. Not in the body: the
        /// webhook sink holds each socket's room events within a share of its queue,
        /// so one socket joining and leaving made-up rooms in a loop cannot take the
        /// room other sockets' events need.
        by: String,
        /// When it happened.
        at: SystemTime,
    },
    /// A handshake or a CONNECT was refused (at most 20 reported a second per node).
    Refused {
        /// `handshake` or `connect`.
        stage: String,
        /// The namespace asked for (empty for a handshake).
        namespace: String,
        /// The transport of the request.
        transport: String,
        /// `handshake refused` or `connect refused`.
        reason: String,
        /// `{"category","confidence","evidence"}`: the refusal's code first.
        diagnosis: Value,
        /// When it happened.
        at: SystemTime,
    },
    /// The node's memory pressure changed tier (`normal`, `elevated`, `critical`,
    /// `imminent`): sent once per transition.
    Pressure {
        /// The tier before.
        from: String,
        /// The tier now.
        tier: String,
        /// Resident memory, in bytes.
        rss: u64,
        /// The memory budget (`limits.memory`), in bytes.
        budget: u64,
        /// When it happened.
        at: SystemTime,
    },
    /// A room lost its last member.
    RoomVacated {
        /// The namespace.
        namespace: String,
        /// The room.
        room: String,
        /// The socket whose join or leave changed the room. Not in the body: the
        /// webhook sink holds each socket's room events within a share of its queue,
        /// so one socket joining and leaving made-up rooms in a loop cannot take the
        /// room other sockets' events need.
        by: String,
        /// When it happened.
        at: SystemTime,
    },
}

impl LifecycleEvent {
    /// The body's `type` field for this event: `connection`, `disconnection`,
    /// `room_occupied`, `room_vacated`, `pressure` or `refusal`.
    pub fn kind(&self) -> &'static str {
        match self {
            LifecycleEvent::Connected { .. } => "connection",
            LifecycleEvent::Disconnected { .. } => "disconnection",
            LifecycleEvent::RoomOccupied { .. } => "room_occupied",
            LifecycleEvent::RoomVacated { .. } => "room_vacated",
            LifecycleEvent::Pressure { .. } => "pressure",
            LifecycleEvent::Refused { .. } => "refusal",
        }
    }

    /// The socket whose join or leave made a room event (`None` for the others).
    pub fn room_source(&self) -> Option<&str> {
        match self {
            LifecycleEvent::RoomOccupied { by, .. } | LifecycleEvent::RoomVacated { by, .. } => {
                Some(by)
            }
            _ => None,
        }
    }

    /// When the event happened.
    pub fn at(&self) -> SystemTime {
        match self {
            LifecycleEvent::Connected { at, .. }
            | LifecycleEvent::Disconnected { at, .. }
            | LifecycleEvent::RoomOccupied { at, .. }
            | LifecycleEvent::Pressure { at, .. }
            | LifecycleEvent::Refused { at, .. }
            | LifecycleEvent::RoomVacated { at, .. } => *at,
        }
    }
}

/// A client event that the namespace rules send to the backend; the client may be
/// waiting for the acknowledgement the backend's reply carries.
#[derive(Debug, Clone, PartialEq)]
pub struct ForwardedEvent {
    /// The namespace.
    pub namespace: String,
    /// The sender's socket id.
    pub socket_id: String,
    /// The event name.
    pub event: String,
    /// The event's arguments; binary arguments appear as Socket.IO placeholders
    /// `{"_placeholder": true, "num": N}` pointing into `binary`.
    pub args: Vec<Value>,
    /// Binary attachments, in placeholder order.
    pub binary: Vec<Bytes>,
    /// The sender's verified claims, already scrubbed.
    pub claims: Option<Value>,
    /// When the event was received.
    pub at: SystemTime,
}

impl ForwardedEvent {
    /// The body's `type` field for forwarded events.
    pub const KIND: &'static str = "event";
}
