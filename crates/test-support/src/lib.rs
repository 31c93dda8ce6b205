//! What the workspace's tests share, written once: a real `redis-server` per test, and
//! how tests wait — on conditions, never on clocks. A dev-dependency only
//! (`publish = false`); it depends on no other Switchboard crate, so any crate's tests
//! can use it.
//!
//! # Layout
//! - `wait`: [`eventually`], [`within`] and [`without_hanging`] for tokio tests, each
//!   bounded by [`DEADLINE`] so a broken build fails with a message instead of hanging.
//! - [`blocking`]: `eventually` for tests without a runtime (the binary's end-to-end
//!   tests drive a child process with blocking IO).
//! - `redis_server`: [`RedisServer`], a `redis-server` process in its own temporary
//!   directory: killed, restarted on the same port, paused and resumed by the test.
//!
//! Temporary files and directories come from the `tempfile` crate, which tests use
//! directly (`tempfile::tempdir()`): removed on drop, even when the test fails.

pub mod blocking;
mod redis_server;
mod wait;

pub use redis_server::{RedisBuilder, RedisServer, redis_server_bin};
pub use wait::{DEADLINE, eventually, within, without_hanging};
