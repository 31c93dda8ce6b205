//! One Engine.IO connection seen by Socket.IO: decodes packets (reassembling binary
//! attachments) and routes them to the connection's sockets, one per namespace.

use std::sync::{Arc, Mutex, MutexGuard};

use switchboard_protocol::socketio::{Decoder, Packet, PacketType};

use crate::eio::{Message, Session, SessionHandler};
use crate::reason::DisconnectReason;

use super::event::ConnectError;
use super::namespace::auth_or_empty;
use super::server::IoInner;
use super::socket::Socket;

/// Per-connection state. Touched by the connection's read path and, briefly, by
/// middleware tasks completing a connect; a `std` mutex never held across `.await`.
#[derive(Debug)]
struct State {
    decoder: Decoder,
    /// Connected sockets by namespace; a connection rarely has more than a few.
    sockets: Vec<(String, Arc<Socket>)>,
    /// Namespaces whose CONNECT is running middleware.
    connecting: Vec<String>,
}

/// Shared between the [`Client`] handler, its sockets and middleware tasks.
#[derive(Debug)]
pub(crate) struct ClientShared {
    io: Arc<IoInner>,
    state: Mutex<State>,
}

impl ClientShared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn remove_socket(&self, nsp: &str) {
        self.lock().sockets.retain(|(n, _)| n != nsp);
    }

    fn socket(&self, nsp: &str) -> Option<Arc<Socket>> {
        self.lock()
            .sockets
            .iter()
            .find(|(n, _)| n == nsp)
            .map(|(_, s)| s.clone())
    }

    /// Whether the connection has joined (or is joining) any namespace.
    pub(crate) fn has_namespaces(&self) -> bool {
        let state = self.lock();
        !state.sockets.is_empty() || !state.connecting.is_empty()
    }
}

/// The [`SessionHandler`] of a Socket.IO connection.
#[derive(Debug)]
pub(crate) struct Client {
    shared: Arc<ClientShared>,
}

impl Client {
    pub(crate) fn new(io: Arc<IoInner>) -> Self {
        let max = io.config.max_attachments;
        Client {
            shared: Arc::new(ClientShared {
                io,
                state: Mutex::new(State {
                    decoder: Decoder::new(max),
                    sockets: Vec::new(),
                    connecting: Vec::new(),
                }),
            }),
        }
    }

    pub(crate) fn shared(&self) -> &Arc<ClientShared> {
        &self.shared
    }

    fn on_packet(&self, session: &Arc<Session>, packet: Packet) {
        if packet.kind == PacketType::Connect {
            return self.connect(session, packet);
        }
        let Some(socket) = self.shared.socket(&packet.nsp) else {
            // A packet for a namespace this client has not joined: close, as Node does.
            tracing::debug!(sid = %session.sid(), nsp = %packet.nsp, "packet for unjoined namespace");
            return session.close(DisconnectReason::ParseError);
        };
        match packet.kind {
            PacketType::Event | PacketType::BinaryEvent => socket.on_event(packet),
            PacketType::Ack | PacketType::BinaryAck => socket.on_ack(packet),
            PacketType::Disconnect => {
                self.shared.remove_socket(&packet.nsp);
                socket.on_closed(DisconnectReason::ClientNamespaceDisconnect);
            }
            PacketType::Connect | PacketType::ConnectError => {
                session.close(DisconnectReason::ParseError)
            }
        }
    }

    fn connect(&self, session: &Arc<Session>, packet: Packet) {
        let nsp = packet.nsp;
        {
            let mut state = self.shared.lock();
            if state.sockets.iter().any(|(n, _)| *n == nsp) || state.connecting.contains(&nsp) {
                drop(state);
                return session.close(DisconnectReason::ParseError);
            }
            state.connecting.push(nsp.clone());
        }
        let Some(ns) = self.shared.io.namespace_for(&nsp) else {
            self.shared.lock().connecting.retain(|n| *n != nsp);
            let err = ConnectError::new("Invalid namespace");
            let _ = session.send(&connect_error(&nsp, &err), false);
            return;
        };
        let socket = Socket::new(
            ns.clone(),
            session.clone(),
            self.shared.clone(),
            auth_or_empty(packet.data),
        );
        let middleware = ns.handlers().middleware();
        if middleware.is_empty() {
            return finish_connect(&self.shared, socket);
        }
        let shared = self.shared.clone();
        tokio::spawn(async move {
            for m in middleware {
                if let Err(err) = m(socket.clone()).await {
                    shared
                        .lock()
                        .connecting
                        .retain(|n| *n != socket.namespace());
                    let _ = socket.send_frames(&connect_error(socket.namespace(), &err), false);
                    return;
                }
            }
            finish_connect(&shared, socket);
        });
    }
}

fn connect_error(nsp: &str, err: &ConnectError) -> Vec<crate::eio::Frame> {
    let packet = Packet::new(PacketType::ConnectError, nsp, Some(err.to_value()));
    super::broadcast::encode(&packet)
}

/// Accepts a socket: registers it, answers CONNECT with its id, runs connection handlers.
fn finish_connect(shared: &Arc<ClientShared>, socket: Arc<Socket>) {
    let nsp = socket.namespace().to_owned();
    {
        let mut state = shared.lock();
        state.connecting.retain(|n| *n != nsp);
        if socket.connection_closed() {
            return;
        }
        // Marked and registered under the client lock, so a concurrent close either
        // sees the socket (and removes it) or ran before (and we stopped above).
        socket.mark_connected();
        socket.ns().insert(socket.clone());
        state.sockets.push((nsp.clone(), socket.clone()));
    }
    let data = serde_json::json!({ "sid": socket.id().as_str() });
    let packet = Packet::new(PacketType::Connect, nsp, Some(data));
    let _ = socket.send_packet(&packet, false);
    socket.ns().handlers().run_connect(&socket);
}

impl SessionHandler for Client {
    fn on_message(&self, session: &Arc<Session>, message: Message) {
        let decoded = {
            let mut state = self.shared.lock();
            match message {
                Message::Text(text) => match std::str::from_utf8(&text) {
                    Ok(text) => state.decoder.decode_text(text),
                    Err(_) => Err(switchboard_protocol::socketio::DecodeError::InvalidPayload),
                },
                Message::Binary(data) => state.decoder.decode_binary(data),
            }
        };
        match decoded {
            Ok(Some(packet)) => self.on_packet(session, packet),
            Ok(None) => {}
            Err(err) => {
                tracing::debug!(sid = %session.sid(), error = %err, "malformed socket.io packet");
                session.close(DisconnectReason::ParseError);
            }
        }
    }

    fn on_close(&self, _session: &Arc<Session>, reason: DisconnectReason) {
        let sockets = std::mem::take(&mut self.shared.lock().sockets);
        for (_, socket) in sockets {
            socket.on_closed(reason);
        }
    }
}
