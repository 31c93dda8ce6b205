//! The Engine.IO v4 server: HTTP long-polling, WebSocket, the upgrade between them, the
//! heartbeat and per-session bounded outbound queues.
//!
//! - [`session`]: one session's state and outbound queue, shared by its transports;
//! - `driver`: the task that owns a session's timers and, once upgraded, its WebSocket;
//! - `polling`: the long-polling GET/POST handlers;
//! - `server`: request routing, handshakes, CORS, the session registry.

mod cors;
mod driver;
mod polling;
pub mod server;
pub mod session;
mod websocket;

pub use server::{Body, EngineServer};
pub use session::{
    EngineHandler, Frame, HandshakeInfo, Message, SendError, Session, SessionHandler,
};
