//! One body per decoder of client or peer bytes: each takes arbitrary bytes, decodes
//! them and asserts what must hold for every input the decoder accepts (a re-encoding
//! reads back to the same thing; the outcome agrees with the input), panicking
//! otherwise. The cargo-fuzz targets in `fuzz/` call these functions, and
//! `tests/corpus.rs` feeds them the checked-in seed corpus plus mutations from a fixed
//! seed, so the same checks run in `cargo test` without a nightly toolchain.
//!
//! # Layout
//!
//! - [`engineio`]: Engine.IO packets, long-polling payloads, the handshake query.
//! - [`socketio`]: the Socket.IO decoder fed sequences of text and binary messages.
//! - [`cluster`]: MessagePack, the Redis adapter's messages and channel names, the
//!   streams adapter's entries and pub/sub payloads, persisted recovery sessions,
//!   stream ids, and RESP2 as the subscriber connection reads it from Redis.
//! - [`auth`]: the whole JWT verification path with a fixed HMAC key.
//! - [`hooks`]: a backend's reply to a forwarded event.
//! - [`sse`]: a Socket.IO event framed as a Server-Sent Event.
//! - [`forward_frame`]: the frames nodes forward long-polling requests with.
//! - [`question_frame`]: the frames of the questions nodes ask each other (the
//!   cluster-wide diagnosis API).
//! - [`TARGETS`]: every body by its fuzz target's name.
//! - `support` (private): input framing and float-tolerant comparisons.

pub mod auth;
pub mod cluster;
pub mod engineio;
pub mod hooks;
pub mod socketio;
pub mod sse;
mod support;

pub use auth::jwt;
pub use cluster::{msgpack, redis_adapter, resp, session, sharded, streams};
pub use engineio::{engineio_handshake, engineio_packet, engineio_payload};
pub use hooks::hook_reply;
pub use socketio::socketio_decoder;
pub use sse::sse_frame;

/// A fuzz target body: any bytes in, a panic when a property fails.
pub type Body = fn(&[u8]);

/// Every body by the name of its cargo-fuzz target (and of its seed corpus folder,
/// `fuzz/corpus/<name>/`).
pub const TARGETS: &[(&str, Body)] = &[
    ("engineio_packet", engineio_packet),
    ("engineio_payload", engineio_payload),
    ("engineio_handshake", engineio_handshake),
    ("socketio_decoder", socketio_decoder),
    ("msgpack", msgpack),
    ("redis_adapter", redis_adapter),
    ("streams", streams),
    ("sharded", sharded),
    ("resp", resp),
    ("session", session),
    ("jwt", jwt),
    ("hook_reply", hook_reply),
    ("forward_frame", forward_frame),
    ("question_frame", question_frame),
    ("sse_frame", sse_frame),
    ("relay_watch", relay_watch),
    ("inbound_watch", inbound_watch),
    ("reframe", reframe),
];

/// What a client sends on a WebSocket another node's session relays through this one,
/// as the relay's upgrade watch follows it (the first bytes choose how the rest is cut
/// into reads). The body lives beside the private watch
/// (`switchboard_engine::fuzz_relay_watch`): every cut into reads gives the answers of
/// byte-by-byte feeding, a yes stays yes, and the watch says yes exactly where
/// tungstenite's frame header parser finds the end of the first `upgrade` packet.
pub fn relay_watch(data: &[u8]) {
    switchboard_engine::fuzz_relay_watch(data);
}

/// What a client sends on its WebSocket, as the inbound watch follows it to count the
/// bytes of its unfinished message against `engine.max_inbound_bytes` (the first bytes
/// choose how the rest is cut into reads). The body lives beside the private watch
/// (`switchboard_engine::fuzz_inbound_watch`): every cut into reads counts what
/// byte-by-byte feeding counts, it never counts more than was read, and it counts
/// something exactly where tungstenite's frame header parser finds a message
/// unfinished.
pub fn inbound_watch(data: &[u8]) {
    switchboard_engine::fuzz_inbound_watch(data);
}

/// What a client sends on its WebSocket, cut into short frames before tungstenite
/// reads it (the first byte chooses the piece length, the next ones how the rest is
/// cut into reads). The body lives beside the private reframer
/// (`switchboard_engine::fuzz_reframe`): tungstenite makes the same messages of the
/// cut bytes as of the bytes as sent, reads of any size cut alike, and no masked data
/// frame within the frame bound is left longer than a piece.
pub fn reframe(data: &[u8]) {
    switchboard_engine::fuzz_reframe(data);
}

/// The forwarding frames Switchboard nodes exchange over Redis, as the parser sees
/// them once their signature checked: the rest of the frame after its tag. The body
/// lives beside the private frame types (`switchboard_cluster::fuzz_forward_frame`):
/// a frame under a tag not made with the secret never opens; one signed with it
/// opens as parsed, and what opens seals and opens again to the same envelope.
pub fn forward_frame(data: &[u8]) {
    switchboard_cluster::fuzz_forward_frame(data);
}

/// The node questions' frames (`switchboard_cluster::fuzz_question_frame`), as the
/// parser sees them once their signature checked: a frame under a tag not made with
/// the secret never opens; one signed with it opens as parsed (names checked), and
/// what opens seals and opens again to the same frame (floats within rounding: a long
/// number literal reads back one bit off).
pub fn question_frame(data: &[u8]) {
    if let Some((first, again)) = switchboard_cluster::fuzz_question_frame(data) {
        assert!(
            support::json_close(&first, &again),
            "a question frame's body changed through seal and open: {first} then {again}"
        );
    }
}
