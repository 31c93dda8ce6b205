//! Deterministic engine tests: the real engine driven in-process through its HTTP
//! handler with in-memory request bodies, under tokio's paused clock, so heartbeats,
//! timeouts and queue limits are exercised without sockets or wall-clock waits.

#![allow(clippy::unwrap_used, missing_docs)]

#[path = "common/in_process.rs"]
mod in_process;

mod deterministic {
    mod acks;
    mod connect_order;
    mod drain;
    mod forwarding;
    pub(crate) mod harness;
    mod heartbeat;
    mod limits;
    mod namespaces;
    mod observer;
    mod polling;
    mod pressure;
    mod recovery;
    mod refusals;
    mod sse;
    mod take_over;
}
