//! Black-box conformance tests: every case of the official Engine.IO v4 (25) and
//! Socket.IO v5 (32) test suites, rewritten as our own code, plus bad-input cases.
//!
//! One test target keeps link time low; the scenarios live in `tests/protocol/*.rs`, one
//! file per behaviour. Each test spawns its own `protocol_fixture` (build it first:
//! `cargo build --workspace --examples`), or uses the server named by
//! `CONFORMANCE_EIO_URL` / `CONFORMANCE_SIO_URL` / `CONFORMANCE_CLUSTER_URL`.
//!
//! Where Node.js (the reference the official clients are tested against) and the written
//! spec disagree, the tests follow Node.js and say why at the assertion.

#![allow(clippy::unwrap_used)]

/// Runs a scenario `async fn NAME(mode: Mode)` as two tests, `NAME::engine_io` and
/// `NAME::socket_io`, because both official suites repeat their Engine.IO cases: against
/// the `engineio` fixture on `/engine.io/` and the `socketio` fixture on `/socket.io/`.
macro_rules! in_both_modes {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn engine_io() {
                super::$name(switchboard_conformance::Mode::EngineIo).await
            }

            #[tokio::test]
            async fn socket_io() {
                super::$name(switchboard_conformance::Mode::SocketIo).await
            }
        }
    )*};
}

mod protocol {
    mod bad_input_http;
    mod bad_input_packets;
    mod cluster_fixture;
    mod engineio_handshake;
    mod engineio_heartbeat;
    mod engineio_polling;
    mod engineio_upgrade;
    mod engineio_websocket;
    mod socketio_binary;
    mod socketio_connect;
    mod socketio_events_acks;
}
