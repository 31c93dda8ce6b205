//! What the `redis` and `redis-streams` adapters do alike around their own wire
//! formats: sending this node's broadcasts with acks, and answering another node's
//! server-side emit. Each adapter only says how its messages are built and encoded.

use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use switchboard_engine::adapter::{AckReport, AckSink, BroadcastOptions, ServerAck};

use crate::broker::Reply;
use crate::requests::{Requests, relay_acks};

/// Sends one of this node's broadcasts with acks to the other nodes: registers
/// `request_id` in `acks` (so the reports find their way back), publishes the request
/// with `publish`, and relays the reports to `sink` until the broadcast's own timeout,
/// else `request_timeout`.
pub(crate) fn request_acks(
    acks: &Requests<AckReport>,
    request_id: String,
    publish: impl FnOnce(String),
    opts: &BroadcastOptions,
    sink: &AckSink,
    request_timeout: Duration,
) {
    let (registration, rx) = acks.register(request_id.clone());
    publish(request_id);
    let timeout = opts.flags.timeout.unwrap_or(request_timeout);
    relay_acks(registration, rx, sink.clone(), timeout);
}

/// The callback that answers another node's server-side emit with an ack: publishes
/// the answer, encoded by `encode` in the adapter's format, to `reply`.
pub(crate) fn server_ack(
    reply: Reply,
    encode: impl FnOnce(Value) -> Vec<u8> + Send + 'static,
) -> ServerAck {
    Box::new(move |answer: Value| reply.send(Bytes::from(encode(answer))))
}
