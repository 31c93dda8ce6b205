//! What the cluster adapters do alike around their own wire
//! formats: sending this node's broadcasts with acks, and answering another node's
//! server-side emit. Each adapter only says how its messages are built and encoded.

use std::collections::HashMap;
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use switchboard_engine::adapter::{AckReport, AckSink, BroadcastOptions, ServerAck};
use switchboard_engine::sio::Namespace;

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

/// The namespaces a pub/sub node serves, by name, for the messages it hears. Weak: a
/// namespace owns its adapter, which holds the node.
#[derive(Debug, Default)]
pub(crate) struct Namespaces(RwLock<HashMap<String, Weak<Namespace>>>);

impl Namespaces {
    /// The live namespace named `nsp`.
    pub(crate) fn get(&self, nsp: &str) -> Option<Arc<Namespace>> {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(nsp)
            .and_then(Weak::upgrade)
    }

    /// Serves `ns` from now on (an adapter's `init`).
    pub(crate) fn insert(&self, ns: &Arc<Namespace>) {
        self.0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(ns.name().to_owned(), Arc::downgrade(ns));
    }

    /// Forgets `ns` (an adapter's `close`). The engine closes under its registry lock, so
    /// a namespace of the same name created next may already be here: only this
    /// instance is removed.
    pub(crate) fn remove(&self, ns: &Namespace) {
        let mut namespaces = self.0.write().unwrap_or_else(|e| e.into_inner());
        if namespaces
            .get(ns.name())
            .is_some_and(|known| std::ptr::eq(known.as_ptr(), ns))
        {
            namespaces.remove(ns.name());
        }
    }
}
