//! Black-box conformance harness: drives a Socket.IO server over real sockets, the way the
//! official Engine.IO v4 and Socket.IO v5 test suites do, with clients of our own.
//!
//! The server under test is `protocol_fixture` (see
//! `crates/cluster/examples/protocol_fixture/README.md`), spawned once per test on
//! `127.0.0.1:0`, or an already-running server named by `CONFORMANCE_EIO_URL` /
//! `CONFORMANCE_SIO_URL` (how the tests run against the Node.js reference).
//!
//! # Running
//!
//! ```text
//! cargo build --workspace --examples        # the fixture; `cargo test --workspace` also builds it
//! cargo test -p switchboard-conformance
//! ```
//!
//! Environment:
//!
//! - `PROTOCOL_FIXTURE_BIN`: the fixture binary, instead of
//!   `<target>/debug/examples/protocol_fixture` (`CARGO_TARGET_DIR` is honoured);
//! - `CONFORMANCE_EIO_URL`, `CONFORMANCE_SIO_URL`, `CONFORMANCE_CLUSTER_URL`
//!   (`http://HOST:PORT`): test an already-running server for that mode instead;
//!   `tests/conformance/run-against-node` (CI stage `conformance-node`) runs every test
//!   against the Node.js reference this way, with its list of expected differences;
//! - `CONFORMANCE_FIXTURE_LOG`: let the fixture's stderr through.
//!
//! # Layout
//!
//! - [`fixture`]: finds, spawns and kills the server under test, or points at a running one.
//! - [`http`]: a minimal HTTP/1.1 client, one TCP connection per request, plus raw writes.
//! - [`ws`]: a WebSocket client whose every read is bounded by [`SAFETY_TIMEOUT`].
//! - [`eio`]: Engine.IO helpers: the open packet, polling payloads, long-polling sessions.
//! - [`sio`]: Socket.IO helpers: namespace connection over WebSocket, `CONNECT` replies.
//! - [`check`]: the server still serves a fresh client (the end of every bad-input test).

pub mod check;
pub mod eio;
pub mod fixture;
pub mod http;
pub mod sio;
pub mod ws;

use std::time::Duration;

pub use fixture::{Fixture, Mode};

/// Upper bound on any single wait (a response, a frame, a close).
///
/// A safety net only: no test asserts on elapsed time. It is generous because two cores are
/// shared with other builds, and the slowest legitimate wait (the 1 s Socket.IO connect
/// timeout of the fixture) is well below it.
pub const SAFETY_TIMEOUT: Duration = Duration::from_secs(10);

/// The fixture's `pingInterval` in the `engineio` and `socketio` modes, in milliseconds.
pub const PING_INTERVAL_MS: u64 = 300;

/// The fixture's `pingTimeout` in the `engineio` and `socketio` modes, in milliseconds.
pub const PING_TIMEOUT_MS: u64 = 200;

/// The fixture's `maxPayload`: the largest polling body and WebSocket message it accepts.
pub const MAX_PAYLOAD: usize = 1_000_000;
