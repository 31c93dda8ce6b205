//! Broadcasting: choose recipients by rooms and exclusions, encode the packet once,
//! and push the same frames into every recipient's queue (DESIGN §4).

use std::sync::Arc;

use switchboard_protocol::Sid;
use switchboard_protocol::socketio::{Packet, is_reserved_event};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::adapter::Room;
use crate::eio::Frame;

use super::event::{Payload, event_packet};
use super::namespace::Namespace;

/// Encodes a packet into its Engine.IO frames: one text message, then one binary
/// message per attachment.
pub(crate) fn encode(packet: &Packet) -> Vec<Frame> {
    let mut text = Vec::with_capacity(64);
    text.push(b'4');
    packet.encode_into(&mut text);
    let text = String::from_utf8(text).unwrap_or_default();
    let mut frames = Vec::with_capacity(1 + packet.attachments.len());
    frames.push(Frame::Text(Utf8Bytes::from(text)));
    frames.extend(packet.attachments.iter().cloned().map(Frame::Binary));
    frames
}

/// Chooses the recipients of a broadcast. Built by [`Namespace::to`],
/// [`super::Socket::to`] and friends; nothing is sent until [`BroadcastOperator::emit`].
#[derive(Debug, Clone)]
pub struct BroadcastOperator {
    ns: Arc<Namespace>,
    rooms: Vec<Room>,
    except_rooms: Vec<Room>,
    except_sockets: Vec<Sid>,
    volatile: bool,
}

impl BroadcastOperator {
    pub(crate) fn new(ns: Arc<Namespace>) -> Self {
        BroadcastOperator {
            ns,
            rooms: Vec::new(),
            except_rooms: Vec::new(),
            except_sockets: Vec::new(),
            volatile: false,
        }
    }

    /// Adds a target room (a socket id also names that socket's own room).
    pub fn to(mut self, room: impl Into<Room>) -> Self {
        self.rooms.push(room.into());
        self
    }

    /// Excludes the sockets in `room`.
    pub fn except(mut self, room: impl Into<Room>) -> Self {
        self.except_rooms.push(room.into());
        self
    }

    pub(crate) fn except_socket(mut self, sid: Sid) -> Self {
        self.except_sockets.push(sid);
        self
    }

    /// Drops the packet for recipients that are not ready to receive it right now.
    pub fn volatile(mut self) -> Self {
        self.volatile = true;
        self
    }

    /// Emits the event; returns the number of sockets it was queued for.
    pub fn emit(self, event: &str, payload: impl Into<Payload>) -> usize {
        if is_reserved_event(event) {
            return 0;
        }
        let packet = event_packet(self.ns.name(), event, payload.into(), None);
        self.send(&packet)
    }

    /// Sends an encoded-once packet to every recipient.
    fn send(self, packet: &Packet) -> usize {
        let frames = encode(packet);
        let excluded = self.excluded();
        let mut count = 0;
        let mut deliver = |s: &Arc<super::Socket>| {
            if !excluded.contains(&s.id()) && s.send_frames(&frames, self.volatile).is_ok() {
                count += 1;
            }
        };
        if self.rooms.is_empty() {
            self.ns.for_each_socket(&mut deliver);
        } else {
            let targets = self.resolve(&self.rooms);
            self.ns.for_sockets(&targets, &mut deliver);
        }
        count
    }

    /// Sockets in `rooms`: named rooms from the adapter, plus sockets named by id.
    fn resolve(&self, rooms: &[Room]) -> Vec<Sid> {
        let mut out = Vec::new();
        self.ns.adapter().sockets_in(rooms, &mut out);
        for room in rooms {
            if let Ok(sid) = room.parse::<Sid>() {
                if self.ns.socket(sid).is_some() && !out.contains(&sid) {
                    out.push(sid);
                }
            }
        }
        out
    }

    fn excluded(&self) -> std::collections::HashSet<Sid> {
        let mut set: std::collections::HashSet<Sid> = self.except_sockets.iter().copied().collect();
        if !self.except_rooms.is_empty() {
            set.extend(self.resolve(&self.except_rooms));
        }
        set
    }
}
