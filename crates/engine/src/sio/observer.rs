//! A seam for watching what sockets do on this node — connected, disconnected, rooms
//! joined and left, transports upgraded, data set, events received and sent — for tools such as the Socket.IO Admin
//! UI's development mode. One observer per server, installed once; with none the
//! engine pays one atomic load where a call would be.

use std::sync::Arc;

use serde_json::Value;
use switchboard_protocol::Sid;
use switchboard_protocol::engineio::TransportKind;

use crate::reason::DisconnectReason;

use super::Socket;

/// Told what sockets do, from the task where it happens: keep each call quick (queue
/// what it reports and send it from elsewhere; never wait). A call may send (the
/// engine holds no lock of its own when it calls `event_sent`), but what a call
/// sends is not told to `event_sent` again on that thread, so an observer cannot
/// feed itself. Every method defaults to nothing.
pub trait Observer: Send + Sync + 'static {
    /// A socket joined its namespace (after its middleware, before its handlers). Its
    /// CONNECT answer is queued already, so what is sent to it from here follows the
    /// answer. Told under the client's lock (so before any `disconnected` of it) and,
    /// with recovery on, the namespace's recovery lock: with recovery on, sending to
    /// that namespace from here would wait for itself, so queue what it reports, as
    /// the trait asks.
    fn connected(&self, socket: &Arc<Socket>) {
        let _ = socket;
    }

    /// A socket left its namespace.
    fn disconnected(&self, socket: &Socket, reason: DisconnectReason) {
        let _ = (socket, reason);
    }

    /// A socket's connection upgraded to `transport`.
    fn upgraded(&self, socket: &Socket, transport: TransportKind) {
        let _ = (socket, transport);
    }

    /// A socket's `data` was set (`Socket::set_data`).
    fn data_changed(&self, socket: &Socket) {
        let _ = socket;
    }

    /// Socket `id` of namespace `nsp` joined `room`.
    fn joined(&self, nsp: &str, room: &str, id: Sid) {
        let _ = (nsp, room, id);
    }

    /// Socket `id` of namespace `nsp` left `room`.
    fn left(&self, nsp: &str, room: &str, id: Sid) {
        let _ = (nsp, room, id);
    }

    /// A socket's client sent event `name` with `args` (before the handlers run).
    fn event_received(&self, socket: &Socket, name: &str, args: &[Value]) {
        let _ = (socket, name, args);
    }

    /// Event `name` with `args` was sent to this socket: emitted to it alone
    /// (`Socket::emit`), or to it among the first 64 recipients of a broadcast (as
    /// Node's adapter tells each recipient's outgoing listeners; past 64 a broadcast's
    /// recipients are not told, so a room of thousands is not that many events).
    fn event_sent(&self, socket: &Socket, name: &str, args: &[Value]) {
        let _ = (socket, name, args);
    }
}
