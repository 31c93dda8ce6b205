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

use crate::MAX_PEER_MESSAGE_BYTES;
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

/// Most bytes of one node's answer listing its sockets (`fetchSockets`) to a request
/// without a page (Node's, or an application's own whole list). Past
/// [`MAX_PEER_MESSAGE_BYTES`] every receiver drops an answer unread, so the request
/// timed out every time; past Redis' pub/sub output bound (32 MB by default) a shared
/// response channel cut every node's subscriber. Handshakes are a client's to fill
/// (headers, query, `auth`): a couple of thousand sockets of large ones got there.
/// Node's adapters have no bound.
pub(crate) const MAX_SOCKETS_ANSWER_BYTES: usize = 4 << 20;

/// `encode(sockets)`, the answer to a `fetchSockets` request, or `None` when it must
/// not be sent.
///
/// To a request without a page (`paged` false) the answer is kept within
/// [`MAX_SOCKETS_ANSWER_BYTES`]: the last sockets are left out (logged) until it fits.
/// A paged request (Switchboard's API, counts and Admin UI: `SocketsPage`) cannot be
/// told its page was cut — the requester would take a short page for the last one, or
/// page past the sockets left out — so its answer goes whole, or, past
/// [`MAX_PEER_MESSAGE_BYTES`], which every receiver drops unread, not at all: the
/// request times out, as it would have, without the oversized message on Redis.
pub(crate) fn sockets_answer<T: Clone>(
    sockets: Vec<T>,
    paged: bool,
    encode: impl Fn(Vec<T>) -> Vec<u8>,
) -> Option<Vec<u8>> {
    let total = sockets.len();
    if paged {
        let answer = encode(sockets);
        if answer.len() > MAX_PEER_MESSAGE_BYTES {
            tracing::warn!(
                total,
                bytes = answer.len(),
                max_bytes = MAX_PEER_MESSAGE_BYTES,
                "a page of fetchSockets is too long to send: ask for fewer sockets a page"
            );
            return None;
        }
        return Some(answer);
    }
    let mut answer = encode(sockets.clone());
    let mut kept = total;
    while answer.len() > MAX_SOCKETS_ANSWER_BYTES && kept > 0 {
        // In proportion to the excess, a tenth under, at least one fewer each time.
        let fit = kept as u128 * MAX_SOCKETS_ANSWER_BYTES as u128 * 9 / (answer.len() as u128 * 10);
        kept = usize::try_from(fit).unwrap_or(0).min(kept - 1);
        answer = encode(sockets[..kept].to_vec());
    }
    if kept < total {
        tracing::warn!(
            total,
            kept,
            max_bytes = MAX_SOCKETS_ANSWER_BYTES,
            "a fetchSockets answer was cut to its bound: page the request to see every socket"
        );
    }
    Some(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One byte per socket of `size` bytes plus a small envelope.
    fn encode(sockets: Vec<usize>) -> Vec<u8> {
        let mut out = vec![b'{'; 16];
        for size in sockets {
            out.extend(std::iter::repeat_n(b'x', size));
        }
        out
    }

    #[test]
    fn an_answer_within_the_bound_is_whole() {
        let sockets = vec![1000; 100];
        let whole = Some(encode(sockets.clone()));
        assert_eq!(sockets_answer(sockets.clone(), false, encode), whole);
        assert_eq!(sockets_answer(sockets, true, encode), whole);
    }

    #[test]
    fn a_longer_answer_leaves_out_the_last_sockets_until_it_fits() {
        // 3,000 sockets of 8 KiB of handshake each: 24 MiB whole.
        let sockets: Vec<usize> = vec![8 << 10; 3000];
        let answer = sockets_answer(sockets.clone(), false, encode).unwrap_or_default();
        assert!(answer.len() <= MAX_SOCKETS_ANSWER_BYTES, "{}", answer.len());
        let kept = (answer.len() - 16) / (8 << 10);
        assert!(kept > 400, "most that fit are kept: {kept}");
        // One socket larger than the bound: an empty list, not an unbounded answer.
        let one = sockets_answer(vec![MAX_SOCKETS_ANSWER_BYTES + 1], false, encode);
        assert_eq!(one.map(|a| a.len()), Some(16));
        // A page is never cut (its requester could not tell a cut page from the last):
        // whole, or not sent past what a receiver reads.
        let page = sockets_answer(vec![8 << 10; 1000], true, encode);
        assert_eq!(page.map(|a| a.len()), Some(16 + 1000 * 8192));
        let too_long = vec![8 << 10; (MAX_PEER_MESSAGE_BYTES >> 13) + 1];
        assert_eq!(sockets_answer(too_long, true, encode), None);
    }
}
