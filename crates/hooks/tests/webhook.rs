//! End-to-end tests of the webhook sink against real HTTP receivers on `127.0.0.1:0`,
//! under tokio's paused clock so retries, backoff and timeouts take no wall time.
//! One binary, one module per behaviour.

#![allow(clippy::unwrap_used, missing_docs)]

mod webhook {
    pub(crate) mod receiver;
    pub(crate) mod setup;

    mod dead_letters;
    mod delivery;
    mod forward;
    mod overflow;
    mod retries;
    mod shutdown;
    mod tls;
}
