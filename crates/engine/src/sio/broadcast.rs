//! Broadcasting: choose recipients by rooms and exclusions, encode the packet once,
//! and push the same frames into every recipient's queue (DESIGN §4).

use std::sync::Arc;

use serde_json::Value;
use switchboard_protocol::Sid;
use switchboard_protocol::socketio::{Packet, is_reserved_event};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::adapter::Room;
use crate::eio::Frame;
use crate::eio::session::now;

use super::event::{Payload, event_packet};
use super::namespace::Namespace;
use super::recovery::{Audience, RecoveryBuffer};

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
        match self.ns.recovery() {
            Some(buffer) if !self.volatile => self.send_recorded(buffer, packet),
            _ => self.deliver(&encode(&packet)),
        }
    }

    /// With recovery on: appends the next offset to the packet, stores it and delivers
    /// it, all under the buffer lock so a concurrent restore sees it exactly once.
    fn send_recorded(&self, buffer: &RecoveryBuffer, mut packet: Packet) -> usize {
        let mut state = buffer.lock();
        let offset = RecoveryBuffer::next_offset(&state);
        if let Some(Value::Array(data)) = &mut packet.data {
            data.push(Value::String(buffer.offset_string(offset)));
        }
        let frames = encode(&packet);
        let audience = Audience {
            rooms: self.rooms.clone(),
            except: self
                .except_rooms
                .iter()
                .cloned()
                .chain(self.except_sockets.iter().map(|s| Room::from(s.as_str())))
                .collect(),
        };
        buffer.store(&mut state, audience, frames.clone(), now());
        self.deliver(&frames)
    }

    /// Pushes the same frames to every recipient.
    fn deliver(&self, frames: &[Frame]) -> usize {
        let excluded = self.excluded();
        let mut count = 0;
        let mut deliver = |s: &Arc<super::Socket>| {
            if !excluded.contains(&s.id()) && s.send_frames(frames, self.volatile).is_ok() {
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

    /// The connected sockets this selection targets (Node's `fetchSockets`).
    pub fn sockets(&self) -> Vec<Arc<super::Socket>> {
        let excluded = self.excluded();
        let mut out = Vec::new();
        let mut keep = |s: &Arc<super::Socket>| {
            if !excluded.contains(&s.id()) {
                out.push(s.clone());
            }
        };
        if self.rooms.is_empty() {
            self.ns.for_each_socket(&mut keep);
        } else {
            let targets = self.resolve(&self.rooms);
            self.ns.for_sockets(&targets, &mut keep);
        }
        out
    }

    /// Makes every targeted socket join `rooms` (Node's `socketsJoin`); returns how
    /// many sockets were affected.
    pub fn sockets_join(&self, rooms: &[&str]) -> usize {
        let sockets = self.sockets();
        for s in &sockets {
            s.join(rooms);
        }
        sockets.len()
    }

    /// Makes every targeted socket leave `room` (Node's `socketsLeave`).
    pub fn sockets_leave(&self, room: &str) -> usize {
        let sockets = self.sockets();
        for s in &sockets {
            s.leave(room);
        }
        sockets.len()
    }

    /// Disconnects every targeted socket (Node's `disconnectSockets`): from the
    /// namespace only, or with `close` the whole underlying connection.
    pub fn disconnect_sockets(&self, close: bool) -> usize {
        let sockets = self.sockets();
        for s in &sockets {
            if close {
                s.close_connection(crate::DisconnectReason::ForcedClose);
            } else {
                s.disconnect();
            }
        }
        sockets.len()
    }

    /// Sockets in `rooms`: named rooms from the adapter, plus sockets named by id.
    fn resolve(&self, rooms: &[Room]) -> Vec<Sid> {
        let mut out = Vec::new();
        self.ns.adapter().sockets_in(rooms, &mut out);
        for room in rooms {
            if let Ok(sid) = room.parse::<Sid>()
                && self.ns.socket(sid).is_some()
                && !out.contains(&sid)
            {
                out.push(sid);
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use bytes::Bytes;
    use http::Request;
    use http_body_util::{BodyExt, Full};
    use serde_json::json;

    use crate::eio::Frame;
    use crate::{Io, Shutdown, SocketIoConfig};

    async fn call(io: &Io, method: &str, query: &str, body: &str) -> String {
        let req = Request::builder()
            .method(method)
            .uri(format!("/socket.io/?EIO=4&transport=polling{query}"))
            .body(Full::new(Bytes::from(body.to_owned())))
            .unwrap();
        let res = io.handle(req, "127.0.0.1:9".parse().unwrap()).await;
        let body = res.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(body.to_vec()).unwrap()
    }

    async fn connect(io: &Io) {
        let open = call(io, "GET", "", "").await;
        let sid = &open[9..29];
        call(io, "POST", &format!("&sid={sid}"), "40").await;
        call(io, "GET", &format!("&sid={sid}"), "").await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_broadcast_is_encoded_once_and_shared_by_every_recipient() {
        let io = Io::new(SocketIoConfig::default(), Shutdown::never());
        for _ in 0..3 {
            connect(&io).await;
        }
        let ns = io.of("/");
        let mut payload = crate::Payload::new(vec![json!("x".repeat(100))]);
        let bin = payload.binary_arg(vec![7u8; 64]);
        payload.args.push(bin);
        assert_eq!(ns.emit("ev", payload), 3);
        let queued: Vec<Vec<Frame>> = ns
            .sockets()
            .iter()
            .map(|s| s.session().lock().queue.iter().cloned().collect())
            .collect();
        let ptrs = |frames: &[Frame]| -> Vec<*const u8> {
            frames
                .iter()
                .map(|f| match f {
                    Frame::Text(t) => t.as_str().as_ptr(),
                    Frame::Binary(b) => b.as_ptr(),
                })
                .collect()
        };
        assert_eq!(queued[0].len(), 2, "one text frame and one attachment");
        assert_eq!(ptrs(&queued[0]), ptrs(&queued[1]));
        assert_eq!(ptrs(&queued[1]), ptrs(&queued[2]));
    }
}
