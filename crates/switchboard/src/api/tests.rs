//! Router tests: requests built in memory, answered by `router(state)` over a real
//! in-process `Io` with real long-polling sessions, no socket.
//!
//! - `support`: the harness (router, server, polling clients);
//! - `guard`: what every request goes through — routing, keys, rate limit, body
//!   limits, metrics;
//! - `emit`, `sockets`, `inspect`: the endpoints;
//! - `cluster`: the endpoints when the other nodes cannot be reached;
//! - `openapi`: the document against the routes and the handlers.

mod cluster;
mod emit;
mod guard;
mod inspect;
mod openapi;
mod sockets;
mod support;
