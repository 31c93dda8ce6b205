//! The Engine.IO v4 server: HTTP long-polling, WebSocket, the upgrade between them, the
//! heartbeat and per-session bounded outbound queues.
//!
//! - [`session`]: one session's state and outbound queue, shared by its transports;
//! - `driver`: the task that owns a session's timers and, once upgraded, its WebSocket;
//! - `polling`: the long-polling GET/POST handlers;
//! - [`forward`]: serving polling requests of sessions other nodes own (no sticky
//!   sessions);
//! - `relay`: WebSocket upgrades of sessions other nodes own, relayed to them;
//! - `inbound` and `reframe`: what a client's messages on their way in may hold (one
//!   budget for the node, a deadline per message, no read buffer kept at the size of
//!   a long frame);
//! - `sse`: Server-Sent Events, a one-way transport beside Engine.IO's two;
//! - `drain`: closing the sessions in paced batches before shutdown;
//! - `registry`: the live sessions by id;
//! - `server`: request routing, handshakes, CORS.

mod body;
pub(crate) mod client_ip;
mod cors;
mod drain;
mod driver;
pub mod forward;
mod handshake_rate;
pub(crate) mod inbound;
mod polling;
pub(crate) mod reframe;
mod registry;
pub(crate) mod relay;
mod sse;
pub use relay::is_address as is_relay_address;
pub mod server;
pub mod session;
mod wake;
mod websocket;
mod ws_frame;

pub use body::{ReadError, read_capped};
pub use forward::{ForwardError, ForwardedRequest, ForwardedResponse, Forwarder};
pub use server::{Body, EngineServer};
pub use session::{
    EngineHandler, Frame, HandshakeInfo, Message, SendError, Session, SessionHandler, decode_query,
};
